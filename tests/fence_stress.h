/*
 * The three ported stress selftests (fences.md §3.8, §3.9, §3.10), parameterised by who plays
 * which part, so the selftest port (test_it_fence_selftests.c) and the conformance variants
 * (test_it_fence_stress.c, §5.7 40-42) share one implementation. Defined in
 * tests/fence_stress.c, linked into those two suites.
 */
#ifndef HB_FENCE_STRESS_H
#define HB_FENCE_STRESS_H

#include "tests/fence_common.h"

/* ---- §3.8: two parties, one counter ------------------------------------------------------- */

struct stress2_cfg {
	const char *addr_a; /* side 0, its own process: owns the counter buffer */
	const char *addr_b; /* side 1, this process */
	uint32_t dom_b;     /* side 1's domain: the buffer's peer */
	unsigned rounds;
};

/*
 * The ping-pong: side A (a child process) exports a counter buffer to side B (this process);
 * round after round each waits for the other's timeline point, requires the counter to hold
 * exactly the number of bumps so far inside a CPU-access bracket, bumps it and signals its own
 * timeline. Fails the test on any wrong count, error status or timeout; prints the time taken.
 */
void fence_stress_two_party(const struct stress2_cfg *cfg);

/* ---- §3.9: five producers, one consumer -------------------------------------------------- */

#define CONS_PRODUCERS 5

struct cons_cfg {
	const char *consumer_addr;             /* this process */
	uint32_t peer[2];                      /* the two counter buffers' peer domains */
	const char *prod_addr[CONS_PRODUCERS]; /* each producer its own process */
	int prod_buf[CONS_PRODUCERS];          /* which buffer (0 or 1) it counts in */
	unsigned rounds;
};

/* Waits in one of the selftest's two styles: 0 polls the sync fd (with the client's fd, as an
 * event loop must), 1 busy-polls the status. Returns the status (0: timed out, -1000: the fd
 * said something other than POLLIN). */
int hbt_cons_wait(struct hb_client *c, struct hb_sync *s, int style);

/*
 * Five producer processes count in two buffers the consumer (this process) exports; each round
 * the consumer merges the producers' points, waits for the merge in either style, checks every
 * counter and signals its own timeline, which the producers wait for. Fails the test on any
 * wrong count or status; prints the time taken.
 */
void fence_stress_consumer(const struct cons_cfg *cfg);

/* ---- §3.10: random merges over 32 timelines in three domains ------------------------------- */

/*
 * Timelines i % 3 == 0 in vm1, == 1 in vm3 (agents), == 2 in vm2 (this process); all merging in
 * vm2. Points are vmin + rand % vrange. The start "point 0 of timeline 0, born signalled" is
 * kept. Then, timeline by timeline: after a barrier on the previous one, the merge must be
 * pending; the timeline goes to just below its largest point (still pending: the merge depends
 * on the maximum, i.e. the per-timeline dedup keeps the latest point), then to it. Finally
 * complete. If nest, every 64 merges the accumulated fence is merged with a merge of itself
 * (containers of containers).
 */
void fence_stress_random_merge(const struct hbt_daemon *d, unsigned rounds, uint64_t vmin,
			       uint64_t vrange, bool nest);

#endif
