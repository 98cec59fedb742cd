/* make bench, (c): what the relay path costs per round, from the library's and the kernel's own
 * counters, and a plain request round trip (tests/bench_relay.c). */
#ifndef HB_TESTS_BENCH_RELAY_H
#define HB_TESTS_BENCH_RELAY_H

#include <stdint.h>
#include <sys/types.h>

#include "hyperbuf.h"

/* A snapshot of what a round costs: the client's hb_counters and the daemon's CPU time. */
struct relay_cost {
	struct hb_counters lib;
	uint64_t daemon_cpu_ns;
	/* hyperbufctl stats (0 without relay_cost_daemon): loop_turns, socket_calls,
	 * write_waits, messages_in + messages_out. */
	uint64_t d_turns, d_calls, d_waits, d_msgs;
};

/* Where relay_cost_take reads the daemon's own counters: hyperbufctl and the daemon's socket. */
void relay_cost_daemon(const char *hyperbufctl, const char *socket);
/* The daemon's system calls per message between two snapshots: an epoll_wait per loop turn,
 * its recv and send calls, an epoll_ctl to arm and one to disarm per write wait. 0 if not
 * known. */
double relay_cost_daemon_calls(const struct relay_cost *a, const struct relay_cost *b);

/* Takes a snapshot now. */
void relay_cost_take(struct relay_cost *c, struct hb_client *client, pid_t daemon);
/* Prints, per round between two snapshots, the client's system calls and the daemon's CPU. */
void relay_cost_print(const char *what, const struct relay_cost *a, const struct relay_cost *b,
		      unsigned rounds);
/* Issue 12's goals (docs/PERFORMANCE.md), from figures measured in this run. */
struct relay_goals {
	double fence_rt_ratio;      /* fenced round trip p50 / socketpair round trip p50 */
	double fence_host_rt_ratio; /* the same between vm1 and a host client */
	double fence_lazy_rt_ratio; /* the same between emulated VMs, with lazy records */
	double request_rt_ratio;    /* hb_query round trip p50 / socketpair round trip p50 */
	double lib_per_request;     /* library system calls per request */
	double lib_per_wait;        /* per hb_sync_wait: a fence round's, less its two requests' */
	double share_4k_ratio;      /* 4 KiB export -> import / mmap+populate, with holds */
	double share_4k_asked;      /* the same when the importer asks (hb_set_holds off) */
	double daemon_us_per_fence_round;
	double daemon_msgs_per_fence_round; /* messages in and out (hyperbufctl stats) */
	double daemon_calls_per_msg;        /* requests: the daemon's system calls per message */
};

/* Per round between two snapshots: the library's system calls and the daemon's CPU in us. */
double relay_cost_syscalls(const struct relay_cost *a, const struct relay_cost *b, unsigned rounds);
double relay_cost_daemon_us(const struct relay_cost *a, const struct relay_cost *b,
			    unsigned rounds);
/* A fence round's library system calls less those of its requests and signals: what its
 * hb_sync_wait cost. A round reads at most one completion frame (none through a fence slot);
 * every other frame in answers a request (per_request system calls, its send included), every
 * frame out is one send, and every wake a doorbell the signal rang. */
double fence_wait_syscalls(const struct relay_cost *a, const struct relay_cost *b, unsigned rounds,
			   double per_request);
/* One line per goal: the figure, the goal, met or not (or why it is not measured). */
void relay_goals_print(const struct relay_goals *g);
/* Times `rounds` hb_query calls on id (one request and its reply each): p50 and p99 in ns. */
int relay_request_rt(struct hb_client *c, const struct hb_id *id, unsigned rounds, uint64_t *p50,
		     uint64_t *p99);

#endif
