/*
 * make bench, (f): the daemon's CPU per shared fenced frame at 60 fps x 16 VM pairs (issue 12,
 * goal 6). 32 emulated VMs in 16 groups of two; in each pair a producer and a consumer
 * process. Per frame the producer signals point n of its timeline, the consumer's wait on it
 * returns, it signals point n of its own timeline (the frame is released), and the producer's
 * wait on that returns; the producer then sleeps until the next 1/60 s. Buffers are shared
 * once and re-signalled (as the GStreamer elements do), so a frame is its two fences.
 * The figure is the daemon's CPU time (schedstat) over the frames of all pairs, measured with
 * every signal a record and then with lazy records (hb_timeline_set_lazy: both waiters read
 * slots, so one signal in 64 reaches the daemon); the baseline in the same run is the same
 * count of fence rounds back to back between one pair (no pacing), which shows what the
 * pacing itself costs (idle wakeups, nothing batched).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hyperbuf.h"
#include "tests/bench_fps.h"
#include "tests/bench_util.h"
#include "tools/spawn.h"

#define PAIRS    16
#define FPS      60
#define WAIT_MS  5000
#define FRAME_NS (1000000000ull / FPS)

static int write_config(struct bench_place *p)
{
	FILE *f;

	if (bench_place_make(p, "fps") < 0)
		return -errno;
	f = fopen(p->config, "w");
	if (!f)
		return -errno;
	fputs("[daemon]\nbackend = kvm\nsocket = host.sock\nlog = warn\n\n", f);
	for (int i = 1; i <= 2 * PAIRS; i++)
		fprintf(f, "[vm vm%d]\nid = %d\nchannel = vm%d.sock\n\n", i, i, i);
	for (int i = 0; i < PAIRS; i++)
		fprintf(f, "[group p%d]\nmembers = vm%d, vm%d\nsize = 1M\nivshmem = p%d.sock\n\n",
			i, 2 * i + 1, 2 * i + 2, i);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* One side of a pair: its client, its timeline, the peer's timeline id. */
struct side {
	const struct bench_place *p;
	int vm, peer;    /* this side's VM number and the other's */
	int to, from;    /* pipes to and from the other side */
	int ready, go;   /* to and from the parent */
	unsigned frames; /* frames to run */
	bool paced;      /* the producer sleeps to the next 1/60 s between frames */
	bool producer;
	bool lazy; /* hb_timeline_set_lazy: signals stay in the slots while nobody else waits */
};

static int wait_point(struct hb_client *c, uint64_t timeline, uint64_t value)
{
	struct hb_fence f = {.timeline = timeline, .value = value};
	struct hb_sync *s = hb_sync_open(c, &f);
	int r = s && hb_sync_wait(s, WAIT_MS) == 0 && hb_sync_status(s) == 1 ? 0 : -1;

	hb_sync_close(s);
	return r;
}

/* Frames: the producer signals n then waits for the consumer's n; the consumer the other way.
 */
static int run_frames(const struct side *sd, struct hb_client *c, struct hb_timeline *t,
		      uint64_t theirs)
{
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (uint64_t n = 1; n <= sd->frames; n++) {
		if (sd->producer && hb_timeline_signal(t, n) < 0)
			return -1;
		if (wait_point(c, theirs, n) < 0)
			return -1;
		if (!sd->producer && hb_timeline_signal(t, n) < 0)
			return -1;
		if (sd->producer && sd->paced) {
			next.tv_nsec += FRAME_NS;
			if (next.tv_nsec >= 1000000000) {
				next.tv_nsec -= 1000000000;
				next.tv_sec++;
			}
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) ==
			       EINTR)
				;
		}
	}
	return 0;
}

/* Connects as its VM, makes and shares a timeline, trades ids with the other side, waits for
 * the parent's go, runs the frames, says done. */
static int side_main(const void *arg)
{
	const struct side *sd = arg;
	char address[160], byte = 1;
	struct hb_client *c;
	struct hb_timeline *t = NULL;
	uint64_t mine, theirs;
	int r = 1;

	snprintf(address, sizeof(address), "vm:%s/vm%d.sock", sd->p->dir, sd->vm);
	c = hb_connect(address);
	t = c ? hb_timeline_create(c) : NULL;
	if (!t || hb_timeline_share(t, (uint32_t)sd->peer) < 0 ||
	    (sd->lazy && hb_timeline_set_lazy(t, 1) < 0))
		goto out;
	mine = hb_timeline_id(t);
	if (tool_write_full(sd->to, &mine, 8) < 0 || tool_read_full(sd->from, &theirs, 8, 30000) ||
	    tool_write_full(sd->ready, &byte, 1) < 0 || tool_read_full(sd->go, &byte, 1, 60000))
		goto out;
	if (run_frames(sd, c, t, theirs) == 0 && tool_write_full(sd->ready, &byte, 1) == 0)
		r = 0;
	/* The timeline stays until every side is done (the parent's second byte on go): the
	 * other side's last hb_sync_open may still be on its way, and would find it destroyed
	 * (ENOENT). */
	if (r == 0)
		tool_read_full(sd->go, &byte, 1, 300000);
out:
	if (r)
		fprintf(stderr, "bench: (f) vm%d: %s\n", sd->vm, strerror(errno));
	hb_timeline_destroy(t);
	hb_disconnect(c);
	return r;
}

struct fps_run {
	pid_t pid[2 * PAIRS];
	int ready[2 * PAIRS], go[2 * PAIRS];
	unsigned n;
};

static int start_pair(const struct bench_place *p, struct fps_run *run, int pair, unsigned frames,
		      bool paced, bool lazy)
{
	int ab[2], ba[2];

	if (pipe(ab) < 0 || pipe(ba) < 0)
		return -1;
	for (int k = 0; k < 2; k++) {
		int rp[2], gp[2];
		struct side sd = {.p = p,
				  .vm = 2 * pair + 1 + k,
				  .peer = 2 * pair + 2 - k,
				  .to = k ? ba[1] : ab[1],
				  .from = k ? ab[0] : ba[0],
				  .frames = frames,
				  .paced = paced,
				  .producer = k == 0,
				  .lazy = lazy};

		if (pipe(rp) < 0 || pipe(gp) < 0)
			return -1;
		sd.ready = rp[1];
		sd.go = gp[0];
		run->pid[run->n] = tool_fork_call(side_main, &sd);
		close(rp[1]);
		close(gp[0]);
		run->ready[run->n] = rp[0];
		run->go[run->n++] = gp[1];
	}
	for (int i = 0; i < 2; i++) {
		close(ab[i]);
		close(ba[i]);
	}
	return 0;
}

/* Starts every side, waits for all to be ready, says go; returns the daemon's CPU ns over
 * the frames, or 0 on failure. */
static uint64_t run_sides(struct fps_run *run, pid_t daemon, uint64_t *wall)
{
	uint64_t cpu0, t0;
	char byte = 1;
	int status, bad = 0;

	for (unsigned i = 0; i < run->n; i++)
		if (tool_read_full(run->ready[i], &byte, 1, 60000) < 0)
			bad = 1;
	cpu0 = bench_cpu_ns(daemon);
	t0 = tool_now_ns();
	for (unsigned i = 0; i < run->n && !bad; i++)
		if (tool_write_full(run->go[i], &byte, 1) < 0)
			bad = 1;
	for (unsigned i = 0; i < run->n && !bad; i++)
		if (tool_read_full(run->ready[i], &byte, 1, 300000) < 0)
			bad = 1;
	*wall = tool_now_ns() - t0;
	cpu0 = bench_cpu_ns(daemon) - cpu0;
	/* Every side is done: they may destroy their timelines now. (Not by closing go: every
	 * side forked later holds a copy of it.) */
	for (unsigned i = 0; i < run->n; i++)
		tool_write_full(run->go[i], &byte, 1);
	for (unsigned i = 0; i < run->n; i++) {
		close(run->go[i]);
		close(run->ready[i]);
		if (tool_wait_pid(run->pid[i], 60000, &status) != 0 || status)
			bad = 1;
	}
	return bad ? 0 : cpu0;
}

static uint64_t measure(const struct bench_place *p, pid_t daemon, int pairs, unsigned frames,
			bool paced, bool lazy, uint64_t *wall)
{
	struct fps_run run = {.n = 0};

	for (int i = 0; i < pairs; i++)
		if (start_pair(p, &run, i, frames, paced, lazy) < 0)
			return 0;
	return run_sides(&run, daemon, wall);
}

/* The daemon's messages in and loop turns (hyperbufctl stats, built beside the daemon). */
struct fps_counts {
	unsigned long long msgs_in, turns;
};

static struct fps_counts daemon_counts(const char *daemon, const struct bench_place *p)
{
	const char *slash = strrchr(daemon, '/');
	struct fps_counts n = {0, 0};
	char cmd[512], line[256], key[64];
	unsigned long long v;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%.*shyperbufctl' -s '%s/host.sock' stats",
		 slash ? (int)(slash - daemon + 1) : 0, daemon, p->dir);
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63[a-z_.]: %llu", key, &v) != 2)
			continue;
		if (!strcmp(key, "messages_in"))
			n.msgs_in = v;
		else if (!strcmp(key, "loop_turns"))
			n.turns = v;
	}
	if (f)
		pclose(f);
	return n;
}

/* measure, and what the daemon handled per frame meanwhile. */
static uint64_t measure_counted(const char *daemon, const struct bench_place *p, pid_t pid,
				bool lazy, unsigned frames, uint64_t *wall, double *msgs,
				double *turns)
{
	struct fps_counts a = daemon_counts(daemon, p), b;
	uint64_t ns = measure(p, pid, PAIRS, frames, true, lazy, wall);

	b = daemon_counts(daemon, p);
	*msgs = (double)(b.msgs_in - a.msgs_in) / ((double)PAIRS * frames);
	*turns = (double)(b.turns - a.turns) / ((double)PAIRS * frames);
	return ns;
}

int bench_fps(const char *daemon, unsigned seconds)
{
	struct tool_daemon_spawn ds;
	struct bench_place p;
	unsigned frames = seconds * FPS;
	uint64_t paced, lazy = 0, burst, wall_paced = 0, wall_lazy = 0, wall_burst = 0;
	double per_paced, per_lazy, per_burst;
	double msgs[2] = {0, 0}, turns[2] = {0, 0};
	int status;
	char figure[32];

	if (write_config(&p) < 0 || tool_daemon_spawn(daemon, p.config, p.log, 20000, &ds) < 0)
		return -1;
	paced = measure_counted(daemon, &p, ds.main_pid, false, frames, &wall_paced, &msgs[0],
				&turns[0]);
	if (paced)
		lazy = measure_counted(daemon, &p, ds.main_pid, true, frames, &wall_lazy, &msgs[1],
				       &turns[1]);
	burst = lazy ? measure(&p, ds.main_pid, 1, frames * PAIRS, false, false, &wall_burst) : 0;
	tool_daemon_stop(&ds, 10000, &status);
	if (!paced || !lazy || !burst || status != 0) {
		fprintf(stderr, "bench: (f) failed (daemon status 0x%x)\n", status);
		tool_log_tail(p.log, 20);
	}
	bench_place_remove(&p);
	if (!paced || !lazy || !burst || status != 0)
		return -1;
	per_paced = paced / 1e3 / ((double)PAIRS * frames);
	per_lazy = lazy / 1e3 / ((double)PAIRS * frames);
	per_burst = burst / 1e3 / ((double)PAIRS * frames);
	printf(
	    "\n(f) %d VM pairs at %d fps for %u s: per frame the producer signals, the consumer's "
	    "wait returns and it signals back\n",
	    PAIRS, FPS, seconds);
	printf("    paced, %d pairs:   daemon CPU %6.1f us per frame (%.0f frames/s over %.1f s); "
	       "per frame %.2f messages in, %.2f loop turns\n",
	       PAIRS, per_paced, PAIRS * frames / (wall_paced / 1e9), wall_paced / 1e9, msgs[0],
	       turns[0]);
	printf("    the same, lazy records (hb_timeline_set_lazy): daemon CPU %6.1f us per frame "
	       "(%.0f frames/s), ratio %.2fx; per frame %.2f messages in, %.2f loop turns\n",
	       per_lazy, PAIRS * frames / (wall_lazy / 1e9), per_lazy / per_paced, msgs[1],
	       turns[1]);
	printf(
	    "    baseline, 1 pair back to back, as many frames: %6.1f us per frame; ratio %.2fx\n",
	    per_burst, per_paced / per_burst);
	snprintf(figure, sizeof(figure), "%.1f us", per_lazy);
	printf("\n(goal 6 of issue 12)\n");
	bench_goal("6 daemon CPU per fenced frame, 60 fps x 16, lazy", figure, "<= 10 us",
		   per_lazy <= 10);
	return 0;
}
