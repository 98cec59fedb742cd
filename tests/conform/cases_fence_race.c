/*
 * Conformance case: the notification race (ported from test_it_fence_stress c43; docs/TESTING.md
 * lists it). Written once for every target (tests/conform/conform.h).
 */
#include <poll.h>
#include <time.h>

#include "tests/conform/conform.h"

/* ---- c43_notification_race_no_lost_wakeup (test_it_fence_stress c43) -----------------------
 * vm1 and vm2 run the same loop: signal my point r, then wait for the other's point r, so
 * each signals while the other may be registering its wait (the kunit "signal mine / add a
 * callback on yours" race). vm1 waits with hb_sync_wait, vm2 alternates fd polling and status
 * polling. Every wait completes with status 1. 2000 rounds (the original 10000); the original's
 * bound on a wait (800 ms: a lost wakeup found only by the library's 1 s re-check) stays
 * there: a guest under TCG can take that long, and this port asserts no times. */
#define RACE_ROUNDS 2000

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* vm2's styles: 0 polls the sync fd with the client's, 1 busy-polls the status. */
static int race_poll(struct hb_client *c, struct hb_sync *s, int style)
{
	uint64_t end = ms_now() + CF_WAIT_MS;

	while (ms_now() < end) {
		if (style == 0) {
			struct pollfd p[2] = {{.fd = hb_sync_fd(s), .events = POLLIN},
					      {.fd = hb_get_fd(c), .events = POLLIN}};

			if (poll(p, 2, 100) < 0 && errno != EINTR)
				return 0;
			if (p[0].revents & POLLIN)
				return hb_sync_status(s);
			if (p[1].revents && hb_dispatch(c, 0) < 0)
				return 0;
		} else if (hb_sync_status(s) != 0) {
			return hb_sync_status(s);
		}
	}
	return 0;
}

static void race_role(void)
{
	struct hb_client *c = cf_connect();
	bool a = cf_domain() == 1;
	struct hb_timeline *t = cf_timeline_for(c, a ? "tl-a" : "tl-b");
	uint64_t theirs = cf_get_u64(a ? "tl-b" : "tl-a"), worst = 0;

	for (uint64_t r = 1; r <= RACE_ROUNDS; r++) {
		struct hb_sync *s;
		struct hb_event ev;
		uint64_t t0;
		int st;

		CHECK_EQ(hb_timeline_signal(t, r), 0);
		s = CF_OPEN(c, theirs, r);
		t0 = ms_now();
		if (a)
			st = hb_sync_wait(s, CF_WAIT_MS) == 0 ? hb_sync_status(s) : 0;
		else
			st = race_poll(c, s, (int)(r % 2));
		if (ms_now() - t0 > worst)
			worst = ms_now() - t0;
		hb_sync_close(s);
		if (st != 1)
			cf_fail(__FILE__, __LINE__, "round %llu: the other's point has status %d",
				(unsigned long long)r, st);
		while (hb_next_event(c, &ev) == 0)
			;
	}
	printf("domain %u: %d rounds, longest wait %llu ms\n", cf_domain(), RACE_ROUNDS,
	       (unsigned long long)worst);
	cf_barrier("done"); /* the other may still be opening our last point */
	hb_timeline_destroy(t);
}

CF_CASE(c43_notification_race_no_lost_wakeup, {1, race_role}, {2, race_role})
