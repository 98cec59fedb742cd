/*
 * Conformance cases: fence failures (ported from test_it_fence_failure c27, c28, c30, c31;
 * docs/TESTING.md lists them, and why c29 and c32 are not). Written once for every target
 * (tests/conform/conform.h).
 *
 * A process killed mid-share is a child of its role, holding the domain's only connection
 * while it lives (a guest has one port). In a KVM guest a dead process's session lasts until
 * the next process opens the port (docs/KVM.md), so after the kill the role connects: on every
 * target the session of the dead process is over once that connect returned.
 */
#include <time.h>
#include <unistd.h>

#include "tests/conform/conform.h"

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- c27_owner_killed_mid_wait (test_it_fence_failure c27) ----------------------------------
 * The owner (a process of vm1's) is SIGKILLed while vm2 blocks on its point 6 and the host on
 * point 5: both wake; every pending point completes with -EPIPE, oldest first (vm2's events
 * 3, 4, 5, 6 in order); points 1 and 2, signalled before, keep status 1; the timeline is gone
 * (ENOENT) and the daemon holds no wait for it. */
static void killed_owner_child(void *arg)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	(void)arg;
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
}

static void killed_owner(void)
{
	pid_t pid = cf_victim_start(killed_owner_child, NULL);

	cf_barrier("opened");
	cf_victim_kill(pid);
	cf_barrier("killed");
	cf_barrier("done");
}

static void killed_b(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl"), next = 3;
	struct hb_fence f = {.timeline = tl, .value = 7};
	struct hb_sync *s[6];
	struct hb_event ev;

	for (int i = 0; i < 6; i++)
		s[i] = CF_OPEN(c, tl, (uint64_t)i + 1);
	CF_WAIT_DONE(s[1]);
	cf_drain(c);
	cf_barrier("opened");
	CF_WAIT_DONE(s[5]); /* blocked until the owner's death completes it */
	CHECK_EQ(hb_sync_status(s[5]), -EPIPE);
	for (int i = 0; i < 6; i++)
		CHECK_EQ(hb_sync_status(s[i]), i < 2 ? 1 : -EPIPE);
	while (cf_next_event_at(__FILE__, __LINE__, c, &ev, 200) == 0) {
		if (ev.type != HB_EVENT_FENCE)
			continue;
		CHECK_EQ(hb_event_fence(&ev, &f), 0);
		CHECK_EQ(f.timeline, tl);
		CHECK_EQ(f.value, next);
		next++;
	}
	CHECK_EQ(next, 7);
	f = (struct hb_fence){.timeline = tl, .value = 7};
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	for (int i = 0; i < 6; i++)
		hb_sync_close(s[i]);
	cf_barrier("killed");
	cf_barrier("done");
}

static void killed_c(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *s = CF_OPEN(c, cf_get_u64("tl"), 5);

	cf_barrier("opened");
	CF_WAIT_DONE(s);
	CHECK_EQ(hb_sync_status(s), -EPIPE);
	hb_sync_close(s);
	cf_barrier("killed");
	/* Every handle closed and the owner gone: the daemon waits for nothing. */
	CF_STAT_BECOMES("fence_waits", 0);
	CHECK_EQ(cf_stat("timelines"), 0);
	cf_barrier("done");
}

CF_CASE(c27_owner_killed_mid_wait, {1, killed_owner}, {2, killed_b}, {0, killed_c})

/* ---- c28_destroy_with_pending_points (test_it_fence_failure c28) ----------------------------
 * Destroying a timeline with pending points behaves like the owner's death: vm2, blocked on
 * its point 5, wakes; pending points get -EPIPE, completed ones keep 1; the id is gone
 * (ENOENT, even for a point that had been reached) and a new timeline gets another. */
static void dpp_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl"), *t2;

	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	cf_barrier("opened");
	hb_timeline_destroy(t);
	cf_barrier("destroyed");
	t2 = cf_timeline_for(c, "tl2");
	cf_barrier("done");
	hb_timeline_destroy(t2);
}

static void dpp_b(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_fence f = {.timeline = tl, .value = 1};
	struct hb_sync *s[5];

	for (int i = 0; i < 5; i++)
		s[i] = CF_OPEN(c, tl, (uint64_t)i + 1);
	CF_WAIT_DONE(s[1]);
	CHECK_EQ(cf_stat("timelines"), 1);
	cf_barrier("opened");
	CF_WAIT_DONE(s[4]); /* blocked until the destroy completes it */
	for (int i = 0; i < 5; i++)
		CHECK_EQ(hb_sync_status(s[i]), i < 2 ? 1 : -EPIPE);
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	cf_barrier("destroyed");
	CHECK(cf_get_u64("tl2") != tl);
	for (int i = 0; i < 5; i++)
		hb_sync_close(s[i]);
	cf_barrier("done");
}

CF_CASE(c28_destroy_with_pending_points, {1, dpp_owner}, {2, dpp_b})

/* ---- c30_importer_death_harmless (test_it_fence_failure c30) --------------------------------
 * An importer's death disturbs nobody: a process of the host's holds 50 pending waits on
 * vm1's timeline and is SIGKILLed; the daemon drops its waits, and the timeline and vm2's
 * handles carry on normally (status 1, not an error). */
static void ihd_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("killed");
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("one");
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
	hb_timeline_destroy(cf_timeline_for(c, "tl2")); /* the owner still works */
}

/* vm2 and the victim count the daemon's waits: theirs are waits, not points on watches. */
static void ihd_b(void)
{
	struct hb_client *c = cf_connect_waits();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s[3];

	for (int i = 0; i < 3; i++)
		s[i] = CF_OPEN(c, tl, (uint64_t)i + 1);
	cf_put("opened", "1");
	cf_barrier("killed");
	CF_WAIT_DONE(s[0]);
	CHECK_EQ(hb_sync_status(s[0]), 1);
	CHECK_ERR(hb_sync_wait(s[1], 0), ETIME);
	cf_barrier("one");
	CF_WAIT_DONE(s[2]);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(hb_sync_status(s[i]), 1);
		hb_sync_close(s[i]);
	}
	cf_barrier("done");
}

static void ihd_child(void *arg)
{
	struct hb_client *c = cf_connect_waits();
	uint64_t tl = *(uint64_t *)arg;

	for (int i = 0; i < 50; i++)
		CF_OPEN(c, tl, 1 + (uint64_t)i); /* held until the kill */
}

static void ihd_c(void)
{
	uint64_t tl = cf_get_u64("tl");
	pid_t pid;

	cf_get("opened");
	pid = cf_victim_start(ihd_child, &tl);
	CHECK_EQ(cf_stat("fence_waits"), 53);
	cf_victim_kill(pid);
	/* Only vm2's three waits remain (the dead process's were its own). */
	CF_STAT_BECOMES("fence_waits", 3);
	cf_barrier("killed");
	cf_barrier("one");
	cf_barrier("done");
}

CF_CASE(c30_importer_death_harmless, {1, ihd_owner}, {2, ihd_b}, {0, ihd_c})

/* ---- c31_no_watchdog_pending_point_stays_pending (test_it_fence_failure c31) ----------------
 * There is no watchdog: a point left pending for 2 s is still pending (no spurious completion),
 * its fd not ready, one wait held in the daemon; it still signals normally afterwards. */
static void nwd_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("waited");
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void nwd_b(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *s = CF_OPEN(c, cf_get_u64("tl"), 1);
	uint64_t t0 = ms_now();

	CHECK_ERR(hb_sync_wait(s, 2000), ETIME);
	CHECK(ms_now() - t0 >= 2000);
	CHECK_EQ(hb_sync_status(s), 0);
	CHECK(!cf_fd_ready(s));
	/* Held in the daemon: a wait, or the watch of its timeline. */
	CHECK_EQ(cf_stat("fence_waits") + cf_stat("fence_watches"), 1);
	cf_barrier("waited");
	CF_WAIT_DONE(s);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	cf_barrier("done");
}

CF_CASE(c31_no_watchdog_pending_point_stays_pending, {1, nwd_owner}, {2, nwd_b})
