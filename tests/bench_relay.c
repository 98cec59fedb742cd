/*
 * make bench, (c): the relay path's own figures (issue 12, goal 3). The client's system calls
 * come from hb_counters (the library counts them itself, so a regression shows without strace);
 * the daemon's CPU time from /proc/PID/schedstat (nanoseconds on the CPU, kept by the
 * scheduler). A plain request round trip is hb_query on an export: one frame each way.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/bench_relay.h"
#include "tests/bench_util.h"
#include "tools/spawn.h"

static char ctl_cmd[512];

void relay_cost_daemon(const char *hyperbufctl, const char *socket)
{
	snprintf(ctl_cmd, sizeof(ctl_cmd), "'%s' -s '%s' stats", hyperbufctl, socket);
}

/* One hyperbufctl stats: a control session, a few messages of its own in the counts. */
static void daemon_stats(struct relay_cost *c)
{
	char line[256], key[64];
	unsigned long long v;
	FILE *f = ctl_cmd[0] ? popen(ctl_cmd, "r") : NULL;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63[a-z_.]: %llu", key, &v) != 2)
			continue;
		if (!strcmp(key, "loop_turns"))
			c->d_turns = v;
		else if (!strcmp(key, "socket_calls"))
			c->d_calls = v;
		else if (!strcmp(key, "write_waits"))
			c->d_waits = v;
		else if (!strcmp(key, "messages_in") || !strcmp(key, "messages_out"))
			c->d_msgs += v;
	}
	if (f)
		pclose(f);
}

void relay_cost_take(struct relay_cost *c, struct hb_client *client, pid_t daemon)
{
	memset(c, 0, sizeof(*c));
	daemon_stats(c);
	hb_counters(client, &c->lib);
	c->daemon_cpu_ns = daemon > 0 ? bench_cpu_ns(daemon) : 0;
}

double relay_cost_daemon_calls(const struct relay_cost *a, const struct relay_cost *b)
{
	uint64_t calls =
	    (b->d_turns - a->d_turns) + (b->d_calls - a->d_calls) + 2 * (b->d_waits - a->d_waits);

	return b->d_msgs > a->d_msgs ? (double)calls / (double)(b->d_msgs - a->d_msgs) : 0;
}

void relay_cost_print(const char *what, const struct relay_cost *a, const struct relay_cost *b,
		      unsigned rounds)
{
	double n = rounds ? rounds : 1;

	printf("    %s, per round: vm1's library %.1f syscalls (%.1f recv, %.1f send, %.1f poll, "
	       "%.1f wake) for %.1f frames in; hyperbufd %.1f us of CPU, %.1f messages, %.2f "
	       "syscalls per message\n",
	       what, relay_cost_syscalls(a, b, rounds), (b->lib.recvs - a->lib.recvs) / n,
	       (b->lib.sends - a->lib.sends) / n, (b->lib.polls - a->lib.polls) / n,
	       (b->lib.wakes - a->lib.wakes) / n, (b->lib.frames_in - a->lib.frames_in) / n,
	       relay_cost_daemon_us(a, b, rounds), (b->d_msgs - a->d_msgs) / n,
	       relay_cost_daemon_calls(a, b));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int relay_request_rt(struct hb_client *c, const struct hb_id *id, unsigned rounds, uint64_t *p50,
		     uint64_t *p99)
{
	uint64_t *t = calloc(rounds ? rounds : 1, sizeof(*t));
	struct hb_info info;

	if (!t)
		return -ENOMEM;
	for (unsigned i = 0; i < rounds; i++) {
		uint64_t t0 = tool_now_ns();

		if (hb_query(c, id, &info) < 0) {
			fprintf(stderr, "bench: hb_query: %s\n", strerror(errno));
			free(t);
			return -1;
		}
		t[i] = tool_now_ns() - t0;
	}
	qsort(t, rounds, sizeof(*t), cmp_u64);
	*p50 = t[rounds / 2];
	*p99 = t[(size_t)(rounds * 0.99)];
	free(t);
	return 0;
}

double relay_cost_syscalls(const struct relay_cost *a, const struct relay_cost *b, unsigned rounds)
{
	uint64_t n = (b->lib.recvs - a->lib.recvs) + (b->lib.sends - a->lib.sends) +
		     (b->lib.polls - a->lib.polls) + (b->lib.wakes - a->lib.wakes);

	return (double)n / (rounds ? rounds : 1);
}

double fence_wait_syscalls(const struct relay_cost *a, const struct relay_cost *b, unsigned rounds,
			   double per_request)
{
	double n = rounds ? rounds : 1;
	double in = (double)(b->lib.frames_in - a->lib.frames_in) / n;
	double awaited = in > 1 ? in - 1 : 0;
	double out = (double)(b->lib.frames_out - a->lib.frames_out) / n;
	double rings = (double)(b->lib.wakes - a->lib.wakes) / n;

	/* Every frame out is one send (a request's or a quiet signal's), every wake a doorbell
	 * rung for a signal; a request costs per_request with its send. */
	return relay_cost_syscalls(a, b, rounds) - out - rings - awaited * (per_request - 1);
}

double relay_cost_daemon_us(const struct relay_cost *a, const struct relay_cost *b, unsigned rounds)
{
	return (double)(b->daemon_cpu_ns - a->daemon_cpu_ns) / (rounds ? rounds : 1) / 1e3;
}

void relay_goals_print(const struct relay_goals *g)
{
	char f[64];

	printf("\n(goals of issue 12, docs/PERFORMANCE.md: the figure of this run, the goal)\n");
	snprintf(f, sizeof(f), "%.2fx a socketpair rt", g->fence_rt_ratio);
	bench_goal("1 fenced round trip, emulated VMs", f, "<= 1.5x", g->fence_rt_ratio <= 1.5);
	snprintf(f, sizeof(f), "%.2fx a socketpair rt", g->fence_lazy_rt_ratio);
	bench_goal("1 the same with lazy records", f, "<= 1.5x", g->fence_lazy_rt_ratio <= 1.5);
	snprintf(f, sizeof(f), "%.2fx a socketpair rt", g->fence_host_rt_ratio);
	bench_goal("1 fenced round trip, VM and host", f, "<= 1.5x", g->fence_host_rt_ratio <= 1.5);
	printf("    %-44s in bench-vm vm_fence_vs_doorbell, after the host benches\n",
	       "2 fenced round trip, QEMU guests");
	snprintf(f, sizeof(f), "%.2fx a socketpair rt", g->request_rt_ratio);
	bench_goal("3 request round trip through the daemon", f, "<= 2x", g->request_rt_ratio <= 2);
	snprintf(f, sizeof(f), "%.2f (epoll_wait, recv, send)", g->daemon_calls_per_msg);
	bench_goal("3 daemon system calls per message", f, "<= 2", g->daemon_calls_per_msg <= 2);
	snprintf(f, sizeof(f), "%.1f", g->lib_per_request);
	bench_goal("3 library system calls per request", f, "<= 3", g->lib_per_request <= 3.05);
	snprintf(f, sizeof(f), "%.1f, no descriptor made", g->lib_per_wait);
	bench_goal("3 library system calls per hb_sync_wait", f, "<= 3", g->lib_per_wait <= 3.05);
	snprintf(f, sizeof(f), "%.2fx mmap+populate", g->share_4k_ratio);
	bench_goal("4 4 KiB export -> event -> import, holds", f, "<= 3x", g->share_4k_ratio <= 3);
	snprintf(f, sizeof(f), "%.2fx mmap+populate", g->share_4k_asked);
	bench_goal("4 the same, imported by asking", f, "<= 3x", g->share_4k_asked <= 3);
	printf("    %-44s in (e) below\n", "5 exports/s at 64k live, bytes per export");
	printf("    %-44s %.1f us per fence round of %.1f messages (schedstat); 60 fps x 16 "
	       "pairs in (f) below\n",
	       "6 daemon CPU", g->daemon_us_per_fence_round, g->daemon_msgs_per_fence_round);
}
