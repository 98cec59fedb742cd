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
};

/* Takes a snapshot now. */
void relay_cost_take(struct relay_cost *c, struct hb_client *client, pid_t daemon);
/* Prints, per round between two snapshots, the client's system calls and the daemon's CPU. */
void relay_cost_print(const char *what, const struct relay_cost *a, const struct relay_cost *b,
		      unsigned rounds);
/* Times `rounds` hb_query calls on id (one request and its reply each): p50 and p99 in ns. */
int relay_request_rt(struct hb_client *c, const struct hb_id *id, unsigned rounds, uint64_t *p50,
		     uint64_t *p99);

#endif
