/*
 * bench: `make bench`. Measures hyperbuf against the obvious alternatives in the same run, on
 * the same machine, and prints ratios; it asserts nothing (exit 0 unless it could not run).
 *
 *   (a) export + import + verify of 4 KiB .. 64 MiB between two emulated VMs (vm1 -> vm2, the
 *       importer in its own process), against mapping a memfd with MAP_POPULATE and the same
 *       verify: the price of the protocol over raw shared memory.
 *   (b) a 1920x1080 XRGB8888 frame passed back and forth by re-export/import/release, against
 *       sending the same 8 294 400 bytes through a UNIX socketpair: frames/s and latency.
 *   (c) fences between the same two processes: the one-way latency from vm1's
 *       hb_timeline_signal to vm2's hb_sync_wait returning, and a full vm1 -> vm2 -> vm1 round
 *       trip (vm1 signals, vm2 wakes and signals its own timeline, vm1 wakes), against the same
 *       exchange of 8 bytes over a UNIX socketpair and over a pair of eventfds (the floor: a
 *       kernel wakeup and nothing else).
 *
 * The daemon is our own, on a config in a temp folder: host + vm1 + vm2, groups {host, vm1}
 * and {vm1, vm2} of 256 MiB each.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hyperbuf.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/pattern.h"
#include "tests/bench_relay.h"
#include "tests/bench_restart.h"
#include "tests/bench_fps.h"
#include "tests/bench_scale.h"
#include "tools/spawn.h"

#define STEP_MS    30000 /* one step (an event, a record) longer than this is a hang */
#define MAX_FRAMES 100000u
#define LOG_LINES  1000 /* of the daemon's log on failure: all of it, up to 8 KiB */

static const char *argv0 = "bench";
static pid_t daemon_pid = -1, importer_pid = -1, reader_pid = -1;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v in place. q in [0, 1]: 0.5 median, 0.99 p99 (nearest rank). */
static uint64_t quantile(uint64_t *v, size_t n, double q)
{
	size_t rank;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	rank = (size_t)(q * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* A whole-run watchdog: a hang anywhere ends as a failure, and takes our children along. */
static void on_alarm(int sig)
{
	static const char msg[] = "bench: out of time, giving up\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do in a signal handler */
	}
	if (importer_pid > 0)
		kill(importer_pid, SIGKILL);
	if (reader_pid > 0)
		kill(reader_pid, SIGKILL);
	if (daemon_pid > 0)
		kill(daemon_pid, SIGTERM);
	_exit(1);
}

/* ---- the daemon, in a private temp folder ----------------------------------------------- */

struct bench_dir {
	char dir[64];
	char config[96], socket[96], host[96], vm1[96], vm2[96], log[96];
};

static const char config_text[] = "[daemon]\n"
				  "backend = kvm\n"
				  "socket = host.sock\n"
				  "log = warn\n"
				  "\n"
				  "[vm vm1]\n"
				  "id = 1\n"
				  "channel = vm1.sock\n"
				  /* (c)'s watched and relayed fences run on more clients per VM. */
				  "ivshmem_connections = 3\n"
				  "\n"
				  "[vm vm2]\n"
				  "id = 2\n"
				  "channel = vm2.sock\n"
				  "ivshmem_connections = 3\n"
				  "\n"
				  "[group host-vm1]\n"
				  "members = host, vm1\n"
				  "size = 256M\n"
				  "ivshmem = group-host-vm1.sock\n"
				  "\n"
				  "[group vm1-vm2]\n"
				  "members = vm1, vm2\n"
				  "size = 256M\n"
				  "ivshmem = group-vm1-vm2.sock\n";

static int write_config(struct bench_dir *bd)
{
	int fd;

	snprintf(bd->dir, sizeof(bd->dir), "/tmp/hyperbuf-bench-XXXXXX");
	if (!mkdtemp(bd->dir))
		return -errno;
	snprintf(bd->config, sizeof(bd->config), "%s/hyperbufd.conf", bd->dir);
	snprintf(bd->socket, sizeof(bd->socket), "%s/host.sock", bd->dir);
	snprintf(bd->host, sizeof(bd->host), "unix:%s/host.sock", bd->dir);
	snprintf(bd->vm1, sizeof(bd->vm1), "vm:%s/vm1.sock", bd->dir);
	snprintf(bd->vm2, sizeof(bd->vm2), "vm:%s/vm2.sock", bd->dir);
	snprintf(bd->log, sizeof(bd->log), "%s/hyperbufd.log", bd->dir);
	fd = open(bd->config, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (tool_write_full(fd, config_text, sizeof(config_text) - 1) < 0) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

static void remove_dir(const struct bench_dir *bd)
{
	static const char *const names[] = {
	    "hyperbufd.conf", "host.sock",           "vm1.sock",           "vm2.sock",
	    "hyperbufd.log",  "group-host-vm1.sock", "group-vm1-vm2.sock",
	};
	char path[192];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", bd->dir, names[i]);
		unlink(path);
	}
	if (rmdir(bd->dir) < 0)
		fprintf(stderr, "%s: left %s behind: %s\n", argv0, bd->dir, strerror(errno));
}

/* ---- the importer: vm2, in its own process ---------------------------------------------- */

enum {
	CMD_BLOB = 1,
	CMD_FRAME,
	CMD_QUIT,
	CMD_FENCE,
	CMD_PING_SOCK,
	CMD_PING_EFD,
	CMD_FENCE_AWAITED, /* CMD_FENCE on the path before quiet signals and watches */
	CMD_FENCE_HOST,    /* CMD_FENCE between vm1 and a host client in vm2's process */
	CMD_FENCE_WATCHED, /* CMD_FENCE on watches, without fence slots */
	CMD_FENCE_LAZY,    /* CMD_FENCE with lazy records on both timelines */
	CMD_HOLDS,         /* hb_set_holds(seed) in the importer, which answers with a record */
};

/* The host's channel, for CMD_FENCE_HOST; set before the importer is forked. */
static const char *host_address;

static bool is_fence(uint32_t cmd)
{
	return cmd == CMD_FENCE || cmd == CMD_FENCE_AWAITED || cmd == CMD_FENCE_HOST ||
	       cmd == CMD_FENCE_WATCHED || cmd == CMD_FENCE_LAZY;
}

/* The domain vm1's timeline is shared with: vm2, or the host. */
static uint32_t fence_peer(uint32_t cmd)
{
	return cmd == CMD_FENCE_HOST ? 0 : 2;
}

/* The client a fence method runs on: c; for CMD_FENCE_AWAITED one more client of the same
 * domain with HYPERBUF_SIGNALS=awaited (API.md), whose every signal waits for the daemon's
 * answer and every fence is a daemon wait: the path before quiet signals and watches; for
 * CMD_FENCE_WATCHED one with HYPERBUF_SIGNALS=watched, the path before fence slots; in vm2's
 * process for CMD_FENCE_HOST, a host client. NULL (errno set) if it cannot connect.
 * Disconnect it with fence_client_end. */
static struct hb_client *fence_client(struct hb_client *c, const char *address, uint32_t cmd,
				      bool in_vm2)
{
	struct hb_client *a;

	if (cmd == CMD_FENCE_HOST && in_vm2)
		return hb_connect(host_address);
	if (cmd != CMD_FENCE_AWAITED && cmd != CMD_FENCE_WATCHED)
		return c;
	setenv("HYPERBUF_SIGNALS", cmd == CMD_FENCE_AWAITED ? "awaited" : "watched", 1);
	a = hb_connect(address);
	unsetenv("HYPERBUF_SIGNALS");
	return a;
}

static void fence_client_end(struct hb_client *c, struct hb_client *fc)
{
	if (fc && fc != c)
		hb_disconnect(fc);
}

/* What rides in each export's metadata; both ends are this binary on this machine. */
struct bench_meta {
	uint32_t magic;
	uint32_t cmd;
	uint64_t seed;  /* CMD_BLOB: tool_pattern_fill seed; CMD_FRAME: frame number; CMD_FENCE:
			 * vm1's timeline */
	uint64_t size;  /* CMD_FENCE, CMD_PING_*: rounds */
	uint32_t check; /* CMD_FRAME: verify every pixel too */
	uint32_t pad;
	uint64_t t0; /* CLOCK_MONOTONIC just before hb_export */
};

#define META_MAGIC 0x48424e43u

/* One per import, importer -> exporter, through a pipe. */
struct record {
	uint64_t t0, t_imported, t_done;
	int32_t error; /* 0, or errno of a failed import, or -1 for wrong bytes */
	uint32_t pad;
};

/* (c): the extra channels between the same two processes, made before the fork. */
#define MAX_PINGS 100000u
static int ping_sock[2] = {-1, -1};  /* [0] vm1's end, [1] vm2's */
static int efd_ab = -1, efd_ba = -1; /* vm1 -> vm2, vm2 -> vm1 */

/*
 * vm2's side of a (c) run: `rounds` times, wait for vm1's signal, note the time, answer. For
 * CMD_FENCE, vm1's point r is awaited and vm2's own timeline answers with r; the next wait is
 * opened before answering, so vm2 is really blocked when vm1 signals. Afterwards the wake
 * times go back through the record pipe. Returns 0 or -1.
 */
static int importer_ping(struct hb_client *main_c, const char *address,
			 const struct bench_meta *m, int fd)
{
	uint64_t n = m->size, *wake = calloc(n + 1, 8);
	struct hb_client *c = fence_client(main_c, address, m->cmd, true);
	struct hb_timeline *t = NULL;
	struct hb_sync *s = NULL;
	int ret = -1;

	if (!wake || !c || n == 0 || n > MAX_PINGS)
		goto out;
	if (is_fence(m->cmd)) {
		struct hb_fence f = {.timeline = m->seed, .value = 1};
		uint64_t id;

		t = hb_timeline_create(c);
		/* The fences travel in metadata: each side lets the other see its timeline. */
		if (t && (hb_timeline_share(t, 1) < 0 ||
			  hb_timeline_set_lazy(t, m->cmd == CMD_FENCE_LAZY) < 0))
			t = (hb_timeline_destroy(t), NULL);
		s = t ? hb_sync_open(c, &f) : NULL;
		if (!s) {
			fprintf(stderr, "%s: importer: fence setup: %s\n", argv0, strerror(errno));
			goto out;
		}
		id = hb_timeline_id(t);
		if (tool_write_full(fd, &id, sizeof(id)) < 0)
			goto out;
	}
	for (uint64_t r = 1; r <= n; r++) {
		uint64_t v = 1;

		if (is_fence(m->cmd)) {
			struct hb_fence f = {.timeline = m->seed, .value = r + 1};
			struct hb_sync *next;

			if (hb_sync_wait(s, STEP_MS) < 0 || hb_sync_status(s) != 1)
				goto out;
			wake[r] = tool_now_ns();
			hb_sync_close(s);
			s = NULL;
			next = r < n ? hb_sync_open(c, &f) : NULL;
			if ((r < n && !next) || hb_timeline_signal(t, r) < 0)
				goto out;
			s = next;
		} else if (m->cmd == CMD_PING_SOCK) {
			if (tool_read_full(ping_sock[1], &v, 8, STEP_MS) < 0)
				goto out;
			wake[r] = tool_now_ns();
			if (tool_write_full(ping_sock[1], &v, 8) < 0)
				goto out;
		} else {
			/* Blocking eventfd reads: the counter is the doorbell. */
			if (read(efd_ab, &v, 8) != 8)
				goto out;
			wake[r] = tool_now_ns();
			v = 1;
			if (write(efd_ba, &v, 8) != 8)
				goto out;
		}
	}
	if (tool_write_full(fd, wake + 1, 8 * n) == 0)
		ret = 0;
out:
	if (ret < 0)
		fprintf(stderr, "%s: importer: ping (cmd %u) failed: %s\n", argv0, m->cmd,
			strerror(errno));
	hb_sync_close(s);
	hb_timeline_destroy(t);
	fence_client_end(main_c, c);
	free(wake);
	return ret;
}

static int importer_main(const char *address, int fd)
{
	struct hb_client *c;
	struct hb_event ev;
	uint64_t idle_since;
	char ready = 'R';

	alarm(900);
	c = hb_connect(address);
	if (!c) {
		fprintf(stderr, "%s: importer: hb_connect(%s): %s\n", argv0, address,
			strerror(errno));
		return 1;
	}
	tool_write_full(fd, &ready, 1);
	idle_since = tool_now_ns();
	for (;;) {
		while (hb_next_event(c, &ev) == 0) {
			struct record rec = {0};
			struct bench_meta m;
			struct hb_import *im;

			idle_since = tool_now_ns();
			if (ev.type != HB_EVENT_EXPORTED)
				continue;
			if (ev.meta_len != sizeof(m)) {
				fprintf(stderr, "%s: importer: metadata of %u bytes\n", argv0,
					ev.meta_len);
				continue;
			}
			memcpy(&m, ev.meta, sizeof(m));
			if (m.magic != META_MAGIC)
				continue;
			if (m.cmd == CMD_QUIT) {
				hb_disconnect(c);
				return 0;
			}
			if (m.cmd == CMD_HOLDS) {
				rec.error = hb_set_holds(c, (int)m.seed) < 0 ? errno : 0;
				if (tool_write_full(fd, &rec, sizeof(rec)) < 0)
					goto err;
				continue;
			}
			if (is_fence(m.cmd) || m.cmd == CMD_PING_SOCK || m.cmd == CMD_PING_EFD) {
				if (importer_ping(c, address, &m, fd) < 0)
					goto err;
				idle_since = tool_now_ns();
				continue;
			}
			rec.t0 = m.t0;
			im = hb_import(c, &ev.id, 0);
			rec.t_imported = tool_now_ns();
			if (!im) {
				rec.error = errno;
			} else if (m.cmd == CMD_BLOB) {
				if (tool_pattern_check(hb_import_data(im), m.size, m.seed) !=
				    m.size)
					rec.error = -1;
			} else if (m.check) {
				if (tool_pattern_frame_check(hb_import_data(im), TOOL_FRAME_W,
							     TOOL_FRAME_H, TOOL_FRAME_STRIDE,
							     m.seed) != -1)
					rec.error = -1;
			}
			rec.t_done = tool_now_ns();
			if (im)
				hb_import_release(im);
			if (tool_write_full(fd, &rec, sizeof(rec)) < 0)
				goto err;
		}
		if (tool_now_ns() - idle_since > (uint64_t)STEP_MS * 1000000u) {
			fprintf(stderr, "%s: importer: nothing for %d s\n", argv0, STEP_MS / 1000);
			goto err;
		}
		if (hb_dispatch(c, 500) < 0 && errno != EINTR) {
			fprintf(stderr, "%s: importer: hb_dispatch: %s\n", argv0, strerror(errno));
			goto err;
		}
	}
err:
	hb_disconnect(c);
	return 1;
}

/* ---- the socket reader: the baseline of (b), in its own process ------------------------- */

struct sock_run {
	uint32_t frames; /* 0: quit */
	uint32_t check;
};

struct sock_hdr {
	uint64_t t0;
	uint64_t frame;
};

/* Per run: receives frames (header + all bytes), then sends back each frame's latency and the
 * time the last one was complete. */
static int reader_main(int sock)
{
	unsigned char *buf = malloc(TOOL_FRAME_BYTES);
	uint64_t *lat = malloc(sizeof(uint64_t) * MAX_FRAMES);
	struct sock_run run;
	int ret = 1;

	alarm(900);
	if (!buf || !lat)
		goto out;
	/* Touched once up front, so page faults are not billed to the first frames. */
	memset(buf, 0, TOOL_FRAME_BYTES);
	while (tool_read_full(sock, &run, sizeof(run), 600000) == 0) {
		uint64_t t_last = 0;

		if (run.frames == 0 || run.frames > MAX_FRAMES) {
			ret = 0;
			break;
		}
		for (uint32_t i = 0; i < run.frames; i++) {
			struct sock_hdr h;

			if (tool_read_full(sock, &h, sizeof(h), STEP_MS) < 0 ||
			    tool_read_full(sock, buf, TOOL_FRAME_BYTES, STEP_MS) < 0)
				goto out;
			if (run.check &&
			    tool_pattern_frame_check(buf, TOOL_FRAME_W, TOOL_FRAME_H,
						     TOOL_FRAME_STRIDE, h.frame) != -1) {
				fprintf(stderr, "%s: socket reader: frame %" PRIu64 " is wrong\n",
					argv0, h.frame);
				goto out;
			}
			t_last = tool_now_ns();
			lat[i] = t_last - h.t0;
		}
		if (tool_write_full(sock, &t_last, sizeof(t_last)) < 0 ||
		    tool_write_full(sock, lat, sizeof(uint64_t) * run.frames) < 0)
			goto out;
	}
out:
	free(lat);
	free(buf);
	return ret;
}

/* ---- starting the two helpers ------------------------------------------------------------ */

/* What a helper process gets: its end of its channel, and the ends it does not use, which it
 * closes first so that each channel ends (EOF) when the processes that use it are done. */
struct helper_start {
	const char *address; /* the importer's: vm2's channel */
	int fd;              /* the record pipe (importer) or the socketpair (reader) */
	int unused[5];       /* -1: none */
};

static void close_unused(const struct helper_start *h)
{
	for (size_t i = 0; i < sizeof(h->unused) / sizeof(h->unused[0]); i++)
		if (h->unused[i] >= 0)
			close(h->unused[i]);
}

static int importer_start(const void *arg)
{
	const struct helper_start *h = arg;

	close_unused(h);
	return importer_main(h->address, h->fd);
}

static int reader_start(const void *arg)
{
	const struct helper_start *h = arg;

	close_unused(h);
	return reader_main(h->fd);
}

/* ---- the exporter (this process, vm1) --------------------------------------------------- */

struct bench {
	struct hb_client *c;
	const char *address; /* vm1's */
	int rec_fd; /* records from the importer */
	int sock;   /* the socketpair end to the reader */
	struct hb_event ev;
};

/* Exports b with m (t0 stamped here), then waits for the importer's record and for RELEASED,
 * so the next round starts from a quiet system. */
static int share_once(struct bench *bn, struct hb_buffer *b, struct bench_meta *m,
		      struct record *rec)
{
	uint64_t deadline;
	struct hb_id id;
	bool released = false;
	int ret;

	m->magic = META_MAGIC;
	m->t0 = tool_now_ns();
	/* The buffer is exported again each round, as a frame pool's are: it need not wait. */
	if (hb_export(b, m, sizeof(*m), HB_EXPORT_NOWAIT, &id) < 0) {
		fprintf(stderr, "%s: hb_export: %s\n", argv0, strerror(errno));
		return -1;
	}
	ret = tool_read_full(bn->rec_fd, rec, sizeof(*rec), STEP_MS);
	if (ret < 0) {
		fprintf(stderr, "%s: no word from the importer: %s\n", argv0, strerror(-ret));
		return -1;
	}
	deadline = tool_now_ns() + (uint64_t)STEP_MS * 1000000u;
	while (!released) {
		while (hb_next_event(bn->c, &bn->ev) == 0)
			if (bn->ev.type == HB_EVENT_RELEASED && hb_id_equal(&bn->ev.id, &id))
				released = true;
		if (released)
			break;
		if (tool_now_ns() >= deadline) {
			fprintf(stderr, "%s: no RELEASED within %d s\n", argv0, STEP_MS / 1000);
			return -1;
		}
		if (hb_dispatch(bn->c, 100) < 0 && errno != EINTR) {
			fprintf(stderr, "%s: hb_dispatch: %s\n", argv0, strerror(errno));
			return -1;
		}
	}
	if (rec->error) {
		fprintf(stderr, "%s: importer: %s\n", argv0,
			rec->error < 0 ? "wrong bytes" : strerror(rec->error));
		return -1;
	}
	return 0;
}

/* (a) with or without holds (docs/PROTOCOL.md §3 "Holds"): the importer turns them on or off,
 * told through an export of b as every command, and says when it did. */
static int set_holds(struct bench *bn, struct hb_buffer *b, int on)
{
	struct bench_meta m = {.magic = META_MAGIC, .cmd = CMD_HOLDS, .seed = (uint64_t)on};
	struct record rec = {0};
	struct hb_id id;

	if (hb_export(b, &m, sizeof(m), 0, &id) < 0 ||
	    tool_read_full(bn->rec_fd, &rec, sizeof(rec), STEP_MS) < 0 || rec.error) {
		fprintf(stderr, "%s: the importer could not turn holds %s: %s\n", argv0,
			on ? "on" : "off", strerror(rec.error ? rec.error : errno));
		return -1;
	}
	return 0;
}

struct blob_result {
	size_t size;
	unsigned iters;
	uint64_t hb_total, hb_import, hb_verify; /* medians, ns */
	uint64_t base_total, base_map, base_verify;
};

/* (a) for one size: hyperbuf and the memfd baseline, alternating, so that whatever else the
 * machine does hits both alike. */
static int bench_blob(struct bench *bn, size_t size, unsigned iters, struct blob_result *res)
{
	uint64_t *hb_t = calloc(iters, 8), *hb_i = calloc(iters, 8), *hb_v = calloc(iters, 8);
	uint64_t *bs_t = calloc(iters, 8), *bs_m = calloc(iters, 8), *bs_v = calloc(iters, 8);
	struct hb_buffer *b = NULL;
	unsigned char *wmap = MAP_FAILED;
	int fd = -1, ret = -1;

	res->size = size;
	res->iters = iters;
	if (!hb_t || !hb_i || !hb_v || !bs_t || !bs_m || !bs_v)
		goto out;
	b = hb_buffer_alloc(bn->c, 2, size, 0);
	if (!b) {
		fprintf(stderr, "%s: hb_buffer_alloc(%zu): %s\n", argv0, size, strerror(errno));
		goto out;
	}
	fd = memfd_create("bench-baseline", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		goto out;
	wmap = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (wmap == MAP_FAILED)
		goto out;
	for (unsigned it = 0; it < iters; it++) {
		struct bench_meta m = {.cmd = CMD_BLOB, .seed = it + 1, .size = size};
		struct record rec;
		uint64_t t0, t1, t2;
		unsigned char *map;

		/* Writing the content is the producer's business either way: not timed. */
		tool_pattern_fill(hb_buffer_data(b), size, m.seed);
		if (share_once(bn, b, &m, &rec) < 0)
			goto out;
		hb_t[it] = rec.t_done - rec.t0;
		hb_i[it] = rec.t_imported - rec.t0;
		hb_v[it] = rec.t_done - rec.t_imported;

		tool_pattern_fill(wmap, size, m.seed);
		t0 = tool_now_ns();
		map = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
		if (map == MAP_FAILED)
			goto out;
		t1 = tool_now_ns();
		if (tool_pattern_check(map, size, m.seed) != size) {
			fprintf(stderr, "%s: baseline: wrong bytes\n", argv0);
			munmap(map, size);
			goto out;
		}
		t2 = tool_now_ns();
		munmap(map, size);
		bs_t[it] = t2 - t0;
		bs_m[it] = t1 - t0;
		bs_v[it] = t2 - t1;
	}
	res->hb_total = quantile(hb_t, iters, 0.5);
	res->hb_import = quantile(hb_i, iters, 0.5);
	res->hb_verify = quantile(hb_v, iters, 0.5);
	res->base_total = quantile(bs_t, iters, 0.5);
	res->base_map = quantile(bs_m, iters, 0.5);
	res->base_verify = quantile(bs_v, iters, 0.5);
	ret = 0;
out:
	if (wmap != MAP_FAILED)
		munmap(wmap, size);
	if (fd >= 0)
		close(fd);
	if (b)
		hb_buffer_free(b);
	free(hb_t);
	free(hb_i);
	free(hb_v);
	free(bs_t);
	free(bs_m);
	free(bs_v);
	return ret;
}

struct frame_result {
	double fps;
	uint64_t p50, p99; /* ns */
};

/* (b) hyperbuf: one buffer, re-exported per frame; the producer waits for RELEASED before the
 * next re-export (no fences here: (c) measures them), so this is the lock-step worst case. */
static int bench_frames_hb(struct bench *bn, struct hb_buffer *b, unsigned frames, bool check,
			   struct frame_result *res)
{
	uint64_t *lat = calloc(frames, 8), t_start = 0, t_last = 0;
	int ret = -1;

	if (!lat)
		return -1;
	for (unsigned i = 0; i < frames; i++) {
		/* The content stays frame 0: the cost measured is the share, not the drawing. */
		struct bench_meta m = {
		    .cmd = CMD_FRAME, .seed = 0, .size = TOOL_FRAME_BYTES, .check = check};
		struct record rec;

		if (share_once(bn, b, &m, &rec) < 0)
			goto out;
		if (i == 0)
			t_start = rec.t0;
		t_last = rec.t_done;
		lat[i] = rec.t_done - rec.t0;
	}
	res->fps = frames * 1e9 / (double)(t_last - t_start ? t_last - t_start : 1);
	res->p50 = quantile(lat, frames, 0.5);
	res->p99 = quantile(lat, frames, 0.99);
	ret = 0;
out:
	free(lat);
	return ret;
}

/* (b) baseline: the writer streams header + frame through the socketpair; the reader reads
 * every byte (and verifies, if asked). */
static int bench_frames_sock(struct bench *bn, const void *frame, unsigned frames, bool check,
			     struct frame_result *res)
{
	struct sock_run run = {.frames = frames, .check = check};
	uint64_t *lat = calloc(frames, 8), t_start, t_last;
	int ret = -1;

	if (!lat)
		return -1;
	if (tool_write_full(bn->sock, &run, sizeof(run)) < 0)
		goto out;
	t_start = tool_now_ns();
	for (unsigned i = 0; i < frames; i++) {
		struct sock_hdr h = {.t0 = tool_now_ns(), .frame = 0};

		if (tool_write_full(bn->sock, &h, sizeof(h)) < 0 ||
		    tool_write_full(bn->sock, frame, TOOL_FRAME_BYTES) < 0)
			goto out;
	}
	if (tool_read_full(bn->sock, &t_last, sizeof(t_last), STEP_MS) < 0 ||
	    tool_read_full(bn->sock, lat, 8 * (size_t)frames, STEP_MS) < 0) {
		fprintf(stderr, "%s: socket reader gave no result\n", argv0);
		goto out;
	}
	res->fps = frames * 1e9 / (double)(t_last - t_start ? t_last - t_start : 1);
	res->p50 = quantile(lat, frames, 0.5);
	res->p99 = quantile(lat, frames, 0.99);
	ret = 0;
out:
	free(lat);
	return ret;
}

/* (c): medians and p99 of a one-way latency and of a round trip, ns. */
struct ping_result {
	uint64_t one_p50, one_p99, rt_p50, rt_p99;
	struct relay_cost cost[2]; /* before and after the rounds */
	struct hb_id id;           /* the command export, still exported */
};

/*
 * (c) vm1's side, for one method: `rounds` exchanges with the importer, which was told through
 * an export (as every command). CMD_FENCE: a fresh timeline of vm1's per run; vm2 sends the id
 * of its own first.
 */
static int bench_ping(struct bench *bn, struct hb_buffer *cmdb, uint32_t cmd, unsigned rounds,
		      struct ping_result *res)
{
	struct bench_meta m = {.magic = META_MAGIC, .cmd = cmd, .size = rounds};
	uint64_t *sig = calloc(rounds, 8), *rt = calloc(rounds, 8), *wake = calloc(rounds, 8);
	struct hb_client *fc = fence_client(bn->c, bn->address, cmd, false);
	struct hb_timeline *t = NULL;
	uint64_t theirs = 0;
	struct hb_id id;
	int ret = -1;

	if (!sig || !rt || !wake || !fc)
		goto out;
	if (is_fence(cmd)) {
		t = hb_timeline_create(fc);
		if (!t || hb_timeline_share(t, fence_peer(cmd)) < 0 ||
		    hb_timeline_set_lazy(t, cmd == CMD_FENCE_LAZY) < 0) {
			fprintf(stderr, "%s: hb_timeline_create/share: %s\n", argv0, strerror(errno));
			goto out;
		}
		m.seed = hb_timeline_id(t);
	}
	m.t0 = tool_now_ns();
	if (hb_export(cmdb, &m, sizeof(m), 0, &id) < 0) {
		fprintf(stderr, "%s: hb_export: %s\n", argv0, strerror(errno));
		goto out;
	}
	if (is_fence(cmd) && tool_read_full(bn->rec_fd, &theirs, sizeof(theirs), STEP_MS) < 0) {
		fprintf(stderr, "%s: the importer sent no timeline\n", argv0);
		goto out;
	}
	relay_cost_take(&res->cost[0], fc, daemon_pid);
	for (unsigned i = 0; i < rounds; i++) {
		uint64_t r = (uint64_t)i + 1, v = 1;

		if (is_fence(cmd)) {
			/* Opened before signalling: we are blocked when the answer comes. */
			struct hb_fence f = {.timeline = theirs, .value = (uint64_t)i + 1};
			struct hb_sync *s = hb_sync_open(fc, &f);

			if (!s)
				goto out;
			sig[i] = tool_now_ns();
			if (hb_timeline_signal(t, r) < 0 || hb_sync_wait(s, STEP_MS) < 0 ||
			    hb_sync_status(s) != 1) {
				fprintf(stderr, "%s: fence round %u: %s\n", argv0, i,
					strerror(errno));
				hb_sync_close(s);
				goto out;
			}
			rt[i] = tool_now_ns() - sig[i];
			hb_sync_close(s);
		} else if (cmd == CMD_PING_SOCK) {
			sig[i] = tool_now_ns();
			if (tool_write_full(ping_sock[0], &v, 8) < 0 ||
			    tool_read_full(ping_sock[0], &v, 8, STEP_MS) < 0)
				goto out;
			rt[i] = tool_now_ns() - sig[i];
		} else {
			sig[i] = tool_now_ns();
			if (write(efd_ab, &v, 8) != 8 || read(efd_ba, &v, 8) != 8)
				goto out;
			rt[i] = tool_now_ns() - sig[i];
		}
	}
	relay_cost_take(&res->cost[1], fc, daemon_pid);
	res->id = id;
	if (tool_read_full(bn->rec_fd, wake, 8 * (size_t)rounds, STEP_MS) < 0) {
		fprintf(stderr, "%s: the importer sent no wake times\n", argv0);
		goto out;
	}
	for (unsigned i = 0; i < rounds; i++)
		wake[i] = wake[i] >= sig[i] ? wake[i] - sig[i] : 0;
	res->one_p50 = quantile(wake, rounds, 0.5);
	res->one_p99 = quantile(wake, rounds, 0.99);
	res->rt_p50 = quantile(rt, rounds, 0.5);
	res->rt_p99 = quantile(rt, rounds, 0.99);
	ret = 0;
out:
	hb_timeline_destroy(t);
	fence_client_end(bn->c, fc);
	free(sig);
	free(rt);
	free(wake);
	return ret;
}

static const char *size_name(size_t size, char *buf, size_t len)
{
	if (size >= (1u << 20))
		snprintf(buf, len, "%zu MiB", size >> 20);
	else
		snprintf(buf, len, "%zu KiB", size >> 10);
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s --daemon PATH [--holder PATH] [--quick] [--frames N] [--only f]\n"
		"  --daemon PATH  the hyperbufd to start (on a config of our own in /tmp)\n"
		"  --holder PATH  tests/hbholder: also time restarts against cold starts (d)\n"
		"  --quick        a quarter of the iterations\n"
		"  --frames N     frames per run in (b) (default 300)\n"
		"  --only f       section (f) alone (goal 6: daemon CPU per frame)\n",
		argv0);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"daemon", required_argument, NULL, 'd'},
	    {"holder", required_argument, NULL, 'H'},
	    {"quick", no_argument, NULL, 'q'},
	    {"frames", required_argument, NULL, 'n'},
	    {"only", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const size_t sizes[] = {4096, 1u << 20, 8u << 20, 64u << 20};
	static const unsigned iters_full[] = {200, 50, 20, 9};
	struct blob_result blobs[4], asked;
	struct frame_result fr_hb[2], fr_sock[2];
	struct bench bn = {.rec_fd = -1, .sock = -1};
	struct bench_dir bd;
	struct tool_daemon_spawn ds;
	struct helper_start importer, reader;
	struct hb_buffer *fb = NULL, *holdb = NULL;
	const char *daemon = NULL, *holder = NULL;
	unsigned frames = 300, div = 1;
	bool only_fps = false;
	int opt, ret, rec[2], sp[2], status, rc = 1;
	bool ok = false;
	char ready, b1[32], b2[48];

	argv0 = argv[0];
	while ((opt = getopt_long(argc, argv, "d:H:qn:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			daemon = optarg;
			break;
		case 'H':
			holder = optarg;
			break;
		case 'q':
			div = 4;
			break;
		case 'n':
			frames = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'o':
			if (strcmp(optarg, "f") != 0) {
				usage(stderr);
				return 2;
			}
			only_fps = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!daemon || optind != argc || frames < 2 || frames > MAX_FRAMES) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm(900);
	if (only_fps)
		return bench_fps(daemon, div > 1 ? 2 : 5) < 0 ? 1 : 0;

	ret = write_config(&bd);
	if (ret < 0) {
		fprintf(stderr, "%s: temp config: %s\n", argv0, strerror(-ret));
		return 1;
	}
	daemon_pid = tool_daemon_spawn(daemon, bd.config, bd.log, 10000, &ds);
	if (daemon_pid < 0) {
		tool_log_tail(bd.log, LOG_LINES);
		remove_dir(&bd);
		return 1;
	}
	/* (c) reads the daemon's own counters with the hyperbufctl built beside it. */
	{
		const char *slash = strrchr(daemon, '/');
		char ctl[512];

		snprintf(ctl, sizeof(ctl), "%.*shyperbufctl", slash ? (int)(slash - daemon + 1) : 0,
			 daemon);
		relay_cost_daemon(ctl, bd.socket);
	}

	/* Both helpers are forked before this process connects, so neither inherits a client. */
	if (pipe2(rec, O_CLOEXEC) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		goto out_daemon;
	/* (c)'s raw channels between vm1 (this process) and vm2 (the importer). */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ping_sock) < 0 ||
	    (efd_ab = eventfd(0, EFD_CLOEXEC)) < 0 || (efd_ba = eventfd(0, EFD_CLOEXEC)) < 0)
		goto out_daemon;
	host_address = bd.host;
	importer = (struct helper_start){
	    .address = bd.vm2, .fd = rec[1], .unused = {rec[0], sp[0], sp[1], ping_sock[0], -1}};
	importer_pid = tool_fork_call(importer_start, &importer);
	close(rec[1]);
	close(ping_sock[1]);
	bn.rec_fd = rec[0];
	reader = (struct helper_start){.fd = sp[1],
				       .unused = {rec[0], sp[0], ping_sock[0], efd_ab, efd_ba}};
	reader_pid = tool_fork_call(reader_start, &reader);
	close(sp[1]);
	bn.sock = sp[0];
	if (importer_pid < 0 || reader_pid < 0 || tool_read_full(bn.rec_fd, &ready, 1, 10000) < 0) {
		fprintf(stderr, "%s: the importer did not start\n", argv0);
		goto out_children;
	}
	bn.c = hb_connect(bd.vm1);
	bn.address = bd.vm1;
	if (!bn.c) {
		fprintf(stderr, "%s: hb_connect(%s): %s\n", argv0, bd.vm1, strerror(errno));
		goto out_children;
	}

	printf("hyperbuf bench: vm1 -> vm2 (emulated VMs, separate processes), daemon %s\n",
	       daemon);
	printf("\n(a) share and verify every byte, median of N runs\n");
	printf("    hyperbuf: export -> event -> import (read-only) -> tool_pattern_check, "
	       "timed in the importer from just before hb_export\n");
	printf("    the importer turned holds on (hb_set_holds): a small buffer's import comes "
	       "with its event; \"asked\": holds off, hb_import asks the daemon\n");
	printf("    the exporter exports its buffer again each round with HB_EXPORT_NOWAIT\n");
	printf("    baseline: mmap(MAP_SHARED|MAP_POPULATE) of a memfd -> tool_pattern_check, "
	       "one process\n");
	printf("    %-13s %4s | %10s %10s %10s %8s | %10s %10s %8s | %s\n", "size", "N", "hyperbuf",
	       "(import)", "(verify)", "GB/s", "baseline", "(mmap)", "GB/s", "ratio vs baseline");
	holdb = hb_buffer_alloc(bn.c, 2, 4096, 0);
	if (!holdb || set_holds(&bn, holdb, 1) < 0)
		goto out_client;
	for (int i = 0; i < 5; i++) {
		struct blob_result *r = i < 4 ? &blobs[i] : &asked;
		unsigned n = iters_full[i % 4] / div < 3 ? 3 : iters_full[i % 4] / div;

		/* Last, 4 KiB again the way it went before holds; they stay off for (b) and (c). */
		if (i == 4 && set_holds(&bn, holdb, 0) < 0)
			goto out_client;
		if (bench_blob(&bn, sizes[i % 4], n, r) < 0)
			goto out_client;
		snprintf(b2, sizeof(b2), "%s%s", size_name(r->size, b1, sizeof(b1)),
			 i == 4 ? ", asked" : "");
		printf("    %-13s %4u | %8.3fms %8.3fms %8.3fms %8.2f | %8.3fms %8.3fms %8.2f | "
		       "%.2fx the time\n",
		       b2, r->iters, r->hb_total / 1e6, r->hb_import / 1e6, r->hb_verify / 1e6,
		       r->size / (double)r->hb_total, r->base_total / 1e6, r->base_map / 1e6,
		       r->size / (double)r->base_total,
		       (double)r->hb_total / (double)(r->base_total ? r->base_total : 1));
		fflush(stdout);
	}
	hb_buffer_free(holdb);
	holdb = NULL;

	fb = hb_buffer_alloc(bn.c, 2, TOOL_FRAME_BYTES, 0);
	if (!fb) {
		fprintf(stderr, "%s: hb_buffer_alloc(frame): %s\n", argv0, strerror(errno));
		goto out_client;
	}
	tool_pattern_frame(hb_buffer_data(fb), TOOL_FRAME_W, TOOL_FRAME_H, TOOL_FRAME_STRIDE, 0);
	printf("\n(b) %u frames of %ux%u XRGB8888 (%zu bytes), latency from just before the send "
	       "to the frame being usable by the consumer\n",
	       frames, TOOL_FRAME_W, TOOL_FRAME_H, TOOL_FRAME_BYTES);
	printf("    hyperbuf: one buffer, re-export -> event -> import -> release -> RELEASED, "
	       "lock-step, no fences ((c) measures those)\n");
	printf("    baseline: write(header + frame) on a UNIX socketpair, the reader read()s "
	       "every byte, streaming\n");
	printf("    %-22s | %9s %9s %9s | %9s %9s %9s | %s\n", "consumer", "fps", "p50 ms",
	       "p99 ms", "fps", "p50 ms", "p99 ms", "ratio vs baseline (fps, p50 latency)");
	for (int v = 0; v < 2; v++) {
		if (bench_frames_hb(&bn, fb, frames, v == 1, &fr_hb[v]) < 0 ||
		    bench_frames_sock(&bn, hb_buffer_data(fb), frames, v == 1, &fr_sock[v]) < 0)
			goto out_client;
		printf("    %-22s | %9.1f %9.3f %9.3f | %9.1f %9.3f %9.3f | %.2fx fps, %.2fx "
		       "latency\n",
		       v ? "reads every pixel" : "only maps/receives it", fr_hb[v].fps,
		       fr_hb[v].p50 / 1e6, fr_hb[v].p99 / 1e6, fr_sock[v].fps, fr_sock[v].p50 / 1e6,
		       fr_sock[v].p99 / 1e6, fr_hb[v].fps / fr_sock[v].fps,
		       (double)fr_hb[v].p50 / (double)(fr_sock[v].p50 ? fr_sock[v].p50 : 1));
		fflush(stdout);
	}
	printf("\n    (hyperbuf columns first, then the baseline; ratio = hyperbuf / baseline: "
	       "below 1 is faster for times, above 1 is faster for fps)\n");
	fflush(stdout);

	{
		/* Indices 1 and 2 are the baselines; 3 is the path fences took before quiet signals
		 * and watches, 5 the one before fence slots; 4 is vm1 with a host client (goal 1
		 * asks both); 6 has lazy records on both sides. */
		static const uint32_t cmds[7] = {CMD_FENCE,	    CMD_PING_SOCK,
						 CMD_PING_EFD,	    CMD_FENCE_AWAITED,
						 CMD_FENCE_HOST,    CMD_FENCE_WATCHED,
						 CMD_FENCE_LAZY};
		static const char *const names[7] = {"hyperbuf fences", "UNIX socketpair",
						     "eventfd pair",	"fences, relayed",
						     "fences, vm1-host", "fences, watched",
						     "fences, lazy"};
		struct hb_buffer *cmdb = hb_buffer_alloc(bn.c, 2, 4096, 0);
		struct ping_result pr[7];
		struct relay_cost req_cost[2]; /* before and after the hb_query rounds */
		unsigned rounds = 2000 / div;
		uint64_t req_p50 = 0, req_p99 = 0;
		struct relay_goals goals = {0};

		if (!cmdb) {
			fprintf(stderr, "%s: hb_buffer_alloc(4096): %s\n", argv0, strerror(errno));
			goto out_client;
		}
		printf("\n(c) synchronisation between the same two processes, vm1 <-> vm2, %u "
		       "rounds each, median and p99 in microseconds\n",
		       rounds);
		printf("    one way:    vm1 signals (hb_timeline_signal / write) -> vm2's blocked "
		       "wait returns (hb_sync_wait / read)\n");
		printf("    round trip: vm1 signals, vm2 wakes and signals back (its own timeline "
		       "/ write), vm1's wait returns\n");
		printf("    fences, vm1-host: the same with a host client (unix:) in vm2's process "
		       "instead of vm2 (its doorbells come with Attach)\n");
		printf("    %-18s | %9s %9s | %9s %9s | %s\n", "method", "1-way p50", "p99",
		       "rt p50", "p99", "ratio of round trip p50: vs socketpair, vs eventfd");
		for (int v = 0; v < 7; v++) {
			if (bench_ping(&bn, cmdb, cmds[v], rounds, &pr[v]) < 0) {
				hb_buffer_free(cmdb);
				goto out_client;
			}
		}
		for (int v = 0; v < 7; v++)
			printf("    %-18s | %9.1f %9.1f | %9.1f %9.1f | %.2fx, %.2fx\n", names[v],
			       pr[v].one_p50 / 1e3, pr[v].one_p99 / 1e3, pr[v].rt_p50 / 1e3,
			       pr[v].rt_p99 / 1e3,
			       (double)pr[v].rt_p50 / (double)(pr[1].rt_p50 ? pr[1].rt_p50 : 1),
			       (double)pr[v].rt_p50 / (double)(pr[2].rt_p50 ? pr[2].rt_p50 : 1));
		printf("    signal-to-wake: fences %.1f us = %.2fx a socketpair write -> read, "
		       "%.2fx an eventfd doorbell\n",
		       pr[0].one_p50 / 1e3,
		       (double)pr[0].one_p50 / (double)(pr[1].one_p50 ? pr[1].one_p50 : 1),
		       (double)pr[0].one_p50 / (double)(pr[2].one_p50 ? pr[2].one_p50 : 1));
		relay_cost_print("fences", &pr[0].cost[0], &pr[0].cost[1], rounds);
		relay_cost_print("fences, relayed", &pr[3].cost[0], &pr[3].cost[1], rounds);
		relay_cost_print("fences, watched", &pr[5].cost[0], &pr[5].cost[1], rounds);
		relay_cost_print("fences, vm1-host", &pr[4].cost[0], &pr[4].cost[1], rounds);
		relay_cost_print("fences, lazy", &pr[6].cost[0], &pr[6].cost[1], rounds);
		relay_cost_take(&req_cost[0], bn.c, daemon_pid);
		if (relay_request_rt(bn.c, &pr[2].id, rounds, &req_p50, &req_p99) < 0) {
			hb_buffer_free(cmdb);
			goto out_client;
		}
		relay_cost_take(&req_cost[1], bn.c, daemon_pid);
		printf("    a plain request through the daemon (hb_query), round trip: p50 %.1f us, "
		       "p99 %.1f us = %.2fx a socketpair round trip (goal: <= 2x)\n",
		       req_p50 / 1e3, req_p99 / 1e3,
		       (double)req_p50 / (double)(pr[1].rt_p50 ? pr[1].rt_p50 : 1));
		relay_cost_print("requests", &req_cost[0], &req_cost[1], rounds);
		goals.fence_rt_ratio =
		    (double)pr[0].rt_p50 / (double)(pr[1].rt_p50 ? pr[1].rt_p50 : 1);
		goals.fence_lazy_rt_ratio =
		    (double)pr[6].rt_p50 / (double)(pr[1].rt_p50 ? pr[1].rt_p50 : 1);
		goals.fence_host_rt_ratio =
		    (double)pr[4].rt_p50 / (double)(pr[1].rt_p50 ? pr[1].rt_p50 : 1);
		goals.request_rt_ratio =
		    (double)req_p50 / (double)(pr[1].rt_p50 ? pr[1].rt_p50 : 1);
		goals.lib_per_request = relay_cost_syscalls(&req_cost[0], &req_cost[1], rounds);
		goals.lib_per_wait = fence_wait_syscalls(&pr[0].cost[0], &pr[0].cost[1], rounds,
							 goals.lib_per_request);
		goals.daemon_msgs_per_fence_round =
		    (double)(pr[0].cost[1].d_msgs - pr[0].cost[0].d_msgs) / rounds;
		goals.share_4k_ratio = (double)blobs[0].hb_total /
				       (double)(blobs[0].base_total ? blobs[0].base_total : 1);
		goals.share_4k_asked =
		    (double)asked.hb_total / (double)(asked.base_total ? asked.base_total : 1);
		goals.daemon_us_per_fence_round =
		    relay_cost_daemon_us(&pr[0].cost[0], &pr[0].cost[1], rounds);
		goals.daemon_calls_per_msg = relay_cost_daemon_calls(&req_cost[0], &req_cost[1]);
		relay_goals_print(&goals);
		hb_buffer_free(cmdb);
	}
	ok = true;

out_client:
	if (bn.c) {
		/* Tell the importer we are done, through the same path it listens on. */
		struct bench_meta quit = {.magic = META_MAGIC, .cmd = CMD_QUIT};
		struct hb_buffer *qb = fb ? fb : hb_buffer_alloc(bn.c, 2, 4096, 0);
		struct hb_id id;

		if (qb)
			hb_export(qb, &quit, sizeof(quit), 0, &id);
		if (qb && qb != fb)
			hb_buffer_free(qb);
		if (fb)
			hb_buffer_free(fb);
		if (holdb)
			hb_buffer_free(holdb);
		hb_disconnect(bn.c);
	}
out_children:
	if (bn.sock >= 0) {
		struct sock_run run = {0};

		tool_write_full(bn.sock, &run, sizeof(run));
		close(bn.sock);
	}
	for (int k = 0; k < 2; k++) {
		pid_t pid = k == 0 ? importer_pid : reader_pid;

		if (pid <= 0)
			continue;
		tool_wait_pid(pid, 10000, &status);
		if (status != 0) {
			fprintf(stderr, "%s: %s ended with status 0x%x\n", argv0,
				k == 0 ? "importer" : "socket reader", status);
			ok = false;
		}
	}
	importer_pid = reader_pid = -1;
	if (bn.rec_fd >= 0)
		close(bn.rec_fd);
	if (ping_sock[0] >= 0)
		close(ping_sock[0]);
	if (efd_ab >= 0)
		close(efd_ab);
	if (efd_ba >= 0)
		close(efd_ba);
out_daemon:
	tool_daemon_stop(&ds, 10000, &status);
	daemon_pid = -1;
	if (status != 0) {
		fprintf(stderr, "%s: hyperbufd ended with status 0x%x\n", argv0, status);
		ok = false;
	}
	if (!ok)
		tool_log_tail(bd.log, LOG_LINES);
	remove_dir(&bd);
	/* (d): its own daemons, under the holder. */
	if (ok && holder && bench_restart(daemon, holder) < 0)
		ok = false;
	/* (e): 64 VMs of its own. (f): 32 more, in pairs. */
	if (ok && bench_scale(daemon) < 0)
		ok = false;
	if (ok && bench_fps(daemon, div > 1 ? 2 : 5) < 0)
		ok = false;
	rc = ok ? 0 : 1;
	return rc;
}
