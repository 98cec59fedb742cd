/*
 * Conformance cases: fences across domains (ported from test_it_timeline and
 * test_it_fence_conformance; docs/TESTING.md lists them). Written once for every target
 * (tests/conform/conform.h). The owner passes its timeline's id on the side channel, as an
 * application passes fences in metadata, and shares the timeline with the domain that opens
 * it. "Not yet" checks come after a point the waiter saw complete, so that a late
 * notification cannot pass for a correct one.
 */
#include <poll.h>

#include "tests/conform/conform.h"

static struct hb_timeline *timeline_for(struct hb_client *c, const char *key)
{
	struct hb_timeline *t = hb_timeline_create(c);

	CHECK(t != NULL);
	for (uint32_t dom = 0; dom <= 2; dom++) {
		if (dom != cf_domain())
			CHECK_EQ(hb_timeline_share(t, dom), 0);
	}
	cf_put_u64(key, hb_timeline_id(t));
	return t;
}

static struct hb_sync *open_at(int line, struct hb_client *c, uint64_t tl, uint64_t value)
{
	struct hb_fence f = {.timeline = tl, .value = value};
	struct hb_sync *s = hb_sync_open(c, &f);

	if (!s)
		cf_fail(__FILE__, line, "hb_sync_open(%llu): %s", (unsigned long long)value,
			strerror(errno));
	return s;
}
#define OPEN(c, tl, v) open_at(__LINE__, (c), (tl), (v))

static bool fd_ready(const struct hb_sync *s)
{
	struct pollfd p = {.fd = hb_sync_fd(s), .events = POLLIN};

	return poll(&p, 1, 0) == 1;
}

static void wait_done_at(int line, struct hb_sync *s)
{
	if (hb_sync_wait(s, CF_WAIT_MS) != 0)
		cf_fail(__FILE__, line, "hb_sync_wait: %s", strerror(errno));
}
#define WAIT_DONE(s) wait_done_at(__LINE__, (s))

/* The next HB_EVENT_FENCE (others skipped). */
static void fence_event_at(int line, struct hb_client *c, struct hb_fence *f, uint32_t *dom)
{
	struct hb_event ev;

	cf_wait_event_at(__FILE__, line, c, HB_EVENT_FENCE, &ev);
	CHECK_EQ(hb_event_fence(&ev, f), 0);
	CHECK_EQ(ev.size, f->value);
	*dom = ev.domain;
}
#define FENCE_EVENT(c, f, dom) fence_event_at(__LINE__, (c), (f), (dom))

/* ---- signal_and_wait_across_vms (test_it_timeline) ------------------------------------------
 * Points opened in another domain are pending and not ready; a signal completes the points up
 * to it (and no further), with one FENCE event each naming the owner; lower and equal values
 * are no-ops; completions are latched. */
static void sw_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	cf_barrier("three");
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	cf_barrier("noops");
	cf_barrier("checked");
	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	cf_barrier("five");
	CHECK_EQ(hb_timeline_signal(t, 1000), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void sw_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s5 = OPEN(c, tl, 5), *s3 = OPEN(c, tl, 3), *s5b = OPEN(c, tl, 5);
	struct hb_fence f;
	uint32_t dom;

	CHECK_EQ(hb_sync_status(s5), 0);
	CHECK(!fd_ready(s5));
	CHECK_ERR(hb_sync_wait(s5, 0), ETIME);
	CHECK_ERR(hb_sync_wait(s5, 100), ETIME);
	cf_barrier("opened");
	WAIT_DONE(s3);
	CHECK_EQ(hb_sync_status(s3), 1);
	CHECK_EQ(hb_sync_status(s5), 0);
	CHECK(fd_ready(s3));
	CHECK(!fd_ready(s5));
	FENCE_EVENT(c, &f, &dom);
	CHECK_EQ(f.timeline, tl);
	CHECK_EQ(f.value, 3);
	CHECK_EQ(dom, 1);
	cf_barrier("three");
	cf_barrier("noops");
	CHECK_ERR(hb_sync_wait(s5, 50), ETIME);
	cf_barrier("checked");
	cf_barrier("five");
	WAIT_DONE(s5);
	CHECK_EQ(hb_sync_status(s5), 1);
	CHECK_EQ(hb_sync_status(s5b), 1);
	CHECK(fd_ready(s5b));
	FENCE_EVENT(c, &f, &dom);
	CHECK_EQ(f.value, 5);
	cf_barrier("done");
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(hb_sync_wait(s5, 0), 0);
		CHECK(fd_ready(s5));
	}
	hb_sync_close(s5);
	hb_sync_close(s3);
	hb_sync_close(s5b);
}

CF_CASE(signal_and_wait_across_vms, {1, sw_owner}, {2, sw_waiter})

/* ---- c02/c01: born signalled, and pending (test_it_fence_conformance) -----------------------
 * A point at or below the value is complete at once in any domain (status 1, fd readable, a
 * zero wait returns), with no FENCE event; a point above it is pending, its fd not ready even
 * after dispatching. */
static void born_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	CHECK_EQ(hb_timeline_signal(t, 10), 0);
	cf_put("signalled", "1");
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void born_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s[3], *later;
	struct hb_event ev;

	cf_get("signalled");
	/* The owner's signal returned: a point it reached is born complete here. */
	s[0] = OPEN(c, tl, 0);
	s[1] = OPEN(c, tl, 10);
	s[2] = OPEN(c, tl, 7);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(hb_sync_status(s[i]), 1);
		CHECK(fd_ready(s[i]));
		CHECK_EQ(hb_sync_wait(s[i], 0), 0);
	}
	later = OPEN(c, tl, 11);
	CHECK_EQ(hb_sync_status(later), 0);
	CHECK(!fd_ready(later));
	CHECK(hb_dispatch(c, 100) >= 0);
	CHECK(!fd_ready(later));
	CHECK_ERR(hb_sync_wait(later, 0), ETIME);
	while (cf_next_event_at(__FILE__, __LINE__, c, &ev, 300) == 0)
		CHECK(ev.type != HB_EVENT_FENCE);
	for (int i = 0; i < 3; i++)
		hb_sync_close(s[i]);
	hb_sync_close(later);
	cf_barrier("done");
}

CF_CASE(fence_born_signalled_and_pending, {1, born_owner}, {2, born_waiter}, {0, born_waiter})

/* ---- c03_advance_to_exactly_n (test_it_fence_conformance) -----------------------------------
 * Advancing to N completes exactly the points up to N, each reported once by a FENCE event, in
 * order, naming the owner's timeline and domain; the points above stay pending until reached. */
static void adv_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	cf_barrier("five");
	CHECK_EQ(hb_timeline_signal(t, 8), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void adv_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s[8], *born;
	struct hb_fence f;
	uint32_t dom;

	for (int i = 0; i < 8; i++)
		s[i] = OPEN(c, tl, (uint64_t)i + 1);
	cf_barrier("opened");
	WAIT_DONE(s[4]);
	/* A point the owner reached is born complete, so every earlier one is complete too. */
	born = OPEN(c, tl, 5);
	CHECK_EQ(hb_sync_status(born), 1);
	hb_sync_close(born);
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(hb_sync_status(s[i]), i < 5 ? 1 : 0);
		CHECK_EQ(fd_ready(s[i]), i < 5);
	}
	for (int i = 0; i < 5; i++) {
		FENCE_EVENT(c, &f, &dom);
		CHECK_EQ(f.timeline, tl);
		CHECK_EQ(dom, 1);
		CHECK_EQ(f.value, (uint64_t)i + 1);
	}
	CHECK_ERR(hb_sync_wait(s[5], 100), ETIME);
	cf_barrier("five");
	WAIT_DONE(s[7]);
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(hb_sync_status(s[i]), 1);
		hb_sync_close(s[i]);
	}
	cf_barrier("done");
}

CF_CASE(c03_advance_to_exactly_n, {1, adv_owner}, {2, adv_waiter})

/* ---- fail_sets_error (test_it_timeline) -----------------------------------------------------
 * hb_timeline_fail completes the pending points up to its value with the error, in another
 * domain too; points already complete keep their status, later ones complete normally, and a
 * failed point opened later is born with the error. */
static void fail_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("opened");
	CHECK_EQ(hb_timeline_fail(t, 3, -EIO), 0);
	cf_barrier("failed");
	CHECK_EQ(hb_timeline_signal(t, 4), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void fail_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s[5], *late;

	for (int i = 1; i <= 4; i++)
		s[i] = OPEN(c, tl, (uint64_t)i);
	WAIT_DONE(s[1]);
	cf_barrier("opened");
	WAIT_DONE(s[3]);
	CHECK_EQ(hb_sync_status(s[1]), 1);
	CHECK_EQ(hb_sync_status(s[2]), -EIO);
	CHECK_EQ(hb_sync_status(s[3]), -EIO);
	CHECK_EQ(hb_sync_status(s[4]), 0);
	CHECK(fd_ready(s[3]));
	late = OPEN(c, tl, 2);
	CHECK_EQ(hb_sync_status(late), -EIO);
	hb_sync_close(late);
	cf_barrier("failed");
	WAIT_DONE(s[4]);
	CHECK_EQ(hb_sync_status(s[4]), 1);
	for (int i = 1; i <= 4; i++)
		hb_sync_close(s[i]);
	cf_barrier("done");
}

CF_CASE(fail_sets_error, {1, fail_owner}, {2, fail_waiter})

/* ---- destroy_gives_epipe (test_it_timeline) -------------------------------------------------
 * Destroying a timeline completes its pending points with -EPIPE in every domain that waits,
 * and its id is gone (ENOENT) for any new open. */
static void destroy_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	cf_barrier("opened");
	hb_timeline_destroy(t);
	cf_barrier("destroyed");
}

static void destroy_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *done = OPEN(c, tl, 2), *a = OPEN(c, tl, 3), *b = OPEN(c, tl, 9);
	struct hb_fence f = {.timeline = tl, .value = 1};

	cf_barrier("opened");
	cf_barrier("destroyed");
	WAIT_DONE(b);
	WAIT_DONE(a);
	CHECK_EQ(hb_sync_status(done), 1);
	CHECK_EQ(hb_sync_status(a), -EPIPE);
	CHECK_EQ(hb_sync_status(b), -EPIPE);
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	hb_sync_close(done);
	hb_sync_close(a);
	hb_sync_close(b);
}

CF_CASE(destroy_gives_epipe, {1, destroy_owner}, {2, destroy_waiter}, {0, destroy_waiter})

/* ---- owner gone (test_it_timeline owner_sigkill_oldest_first, as a disconnect) --------------
 * The owner's client goes: its pending points complete with -EPIPE elsewhere and its timeline
 * is gone. (The original SIGKILLs the owner: in a KVM guest a dead process's session lasts
 * until the next process opens its port, docs/KVM.md.) */
static void gone_owner(void)
{
	struct hb_client *c = cf_connect();

	timeline_for(c, "tl");
	cf_barrier("opened");
	/* The role returns: its client is disconnected, the timeline with it. */
}

static void gone_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *a = OPEN(c, tl, 1), *b = OPEN(c, tl, 2);
	struct hb_fence f = {.timeline = tl, .value = 1};

	cf_barrier("opened");
	WAIT_DONE(b);
	WAIT_DONE(a);
	CHECK_EQ(hb_sync_status(a), -EPIPE);
	CHECK_EQ(hb_sync_status(b), -EPIPE);
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	hb_sync_close(a);
	hb_sync_close(b);
}

CF_CASE(owner_disconnect_gives_epipe, {2, gone_owner}, {1, gone_waiter}, {0, gone_waiter})

/* ---- visibility (test_it_timeline owner_only_and_visibility) --------------------------------
 * A timeline is invisible (ENOENT, as an unknown id) to a domain its owner did not share it
 * with, and visible after hb_timeline_share. */
static void vis_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = hb_timeline_create(c);

	CHECK(t != NULL);
	cf_put_u64("tl", hb_timeline_id(t));
	cf_get("refused");
	CHECK_EQ(hb_timeline_share(t, 2), 0);
	CHECK_EQ(hb_timeline_share(t, 2), 0); /* again: a no-op */
	cf_put("shared", "1");
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void vis_other(void)
{
	struct hb_client *c = cf_connect();
	struct hb_fence f = {.timeline = cf_get_u64("tl"), .value = 1};
	struct hb_sync *s;

	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	f.value = 0;
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	cf_put("refused", "1");
	cf_get("shared");
	s = OPEN(c, f.timeline, 1);
	CHECK_EQ(hb_sync_status(s), 0);
	hb_sync_close(s);
	cf_barrier("done");
}

CF_CASE(timeline_visibility, {1, vis_owner}, {2, vis_other})

/* ---- c16_wait_any and c18 merge, across owners (test_it_fence_conformance) ------------------
 * vm2 waits on fences of two owners (the host and vm1): wait_any returns the lowest complete
 * index, a merge completes only when both members have, and the members stay as they were. */
static void two_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, cf_domain() == 0 ? "tl0" : "tl1");

	cf_barrier("opened");
	if (cf_domain() == 1)
		CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("first");
	if (cf_domain() == 0)
		CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void two_waiter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *v[2], *m;
	size_t idx = 99;

	v[0] = OPEN(c, cf_get_u64("tl0"), 1);
	v[1] = OPEN(c, cf_get_u64("tl1"), 1);
	m = hb_sync_merge(v[0], v[1]);
	CHECK(m != NULL);
	CHECK_ERR(hb_sync_wait_any(v, 2, 0, &idx), ETIME);
	cf_barrier("opened");
	CHECK_EQ(hb_sync_wait_any(v, 2, CF_WAIT_MS, &idx), 0);
	CHECK_EQ(idx, 1);
	CHECK_EQ(hb_sync_status(v[0]), 0);
	CHECK_EQ(hb_sync_status(m), 0);
	CHECK(!fd_ready(m));
	cf_barrier("first");
	WAIT_DONE(m);
	CHECK_EQ(hb_sync_status(m), 1);
	CHECK_EQ(hb_sync_status(v[0]), 1);
	CHECK_EQ(hb_sync_status(v[1]), 1);
	CHECK_EQ(hb_sync_wait_any(v, 2, 0, &idx), 0);
	CHECK_EQ(idx, 0);
	hb_sync_close(m);
	hb_sync_close(v[0]);
	hb_sync_close(v[1]);
	cf_barrier("done");
}

CF_CASE(wait_any_and_merge_across_owners, {0, two_owner}, {1, two_owner}, {2, two_waiter})

/* ---- c04_signalled_stays_signalled (test_it_fence_conformance) ------------------------------
 * A completed point stays complete: signalling the same or a lower value, failing it, moving
 * the timeline on change nothing in the other domain; waits and polls keep returning at once. */
static void stay_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	cf_get("done-2");
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(hb_timeline_signal(t, 2), 0);
		CHECK_EQ(hb_timeline_signal(t, 1), 0);
		CHECK_EQ(hb_timeline_fail(t, 2, -EIO), 0);
	}
	CHECK_EQ(hb_timeline_signal(t, 100), 0);
	cf_put("moved", "1");
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void stay_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s = OPEN(c, tl, 2), *top;

	WAIT_DONE(s);
	cf_put("done-2", "1");
	cf_get("moved");
	/* "moved" came over the hub, not through the daemon: the owner's signal may still be on
	 * its way (a quiet signal, or a slot the daemon writes when it arrives). */
	top = OPEN(c, tl, 100);
	WAIT_DONE(top);
	for (int i = 0; i < 20; i++) {
		CHECK_EQ(hb_sync_wait(s, 0), 0);
		CHECK_EQ(hb_sync_wait(s, 10), 0);
		CHECK(fd_ready(s));
		CHECK_EQ(hb_sync_status(s), 1);
	}
	hb_sync_close(top);
	hb_sync_close(s);
	cf_barrier("done");
}

CF_CASE(c04_signalled_stays_signalled, {1, stay_owner}, {2, stay_waiter})

/* ---- c07_64bit_values_no_wrap (test_it_fence_conformance) -----------------------------------
 * Values are 64-bit everywhere on the way: jumps of more than 2^31, no truncation at 2^32, no
 * signed comparison at 2^63, up to UINT64_MAX. */
static const uint64_t pts[] = {
    (1ull << 31) + 2, (1ull << 32) - 1, 1ull << 32,       (1ull << 32) + 5, (1ull << 33) + 1,
    (1ull << 63) - 1, 1ull << 63,       (1ull << 63) + 1, UINT64_MAX - 1,   UINT64_MAX,
};
#define N_PTS (sizeof(pts) / sizeof(pts[0]))
/* The owner's steps, and the last point each completes. */
static const uint64_t steps[] = {(1ull << 31) + 2, (1ull << 32) + 4, 1ull << 63, UINT64_MAX - 1,
				 UINT64_MAX};
static const int last_done[] = {0, 2, 6, 8, 9};

static void wide_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");
	char key[16];

	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		snprintf(key, sizeof(key), "step-%zu", k);
		cf_barrier(key);
		CHECK_EQ(hb_timeline_signal(t, steps[k]), 0);
	}
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void wide_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s[N_PTS];
	char key[16];

	for (size_t i = 0; i < N_PTS; i++)
		s[i] = OPEN(c, tl, pts[i]);
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct hb_sync *born;

		snprintf(key, sizeof(key), "step-%zu", k);
		cf_barrier(key);
		WAIT_DONE(s[last_done[k]]);
		/* The owner reached steps[k]: a point there is born complete, so every point
		 * up to it is complete here, and none above. */
		born = OPEN(c, tl, steps[k]);
		CHECK_EQ(hb_sync_status(born), 1);
		hb_sync_close(born);
		for (int i = 0; i < (int)N_PTS; i++)
			CHECK_EQ(hb_sync_status(s[i]), i <= last_done[k] ? 1 : 0);
	}
	for (size_t i = 0; i < N_PTS; i++)
		hb_sync_close(s[i]);
	cf_barrier("done");
}

CF_CASE(c07_64bit_values_no_wrap, {1, wide_owner}, {2, wide_waiter})

/* ---- c12_merge_keeps_errors (test_it_fence_conformance) -------------------------------------
 * A merge keeps a member's error, whether the member failed before the merge or after it, and
 * a merge of merges too. */
static void merr_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_fail(t, 1, -EIO), 0);
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	cf_barrier("merged");
	CHECK_EQ(hb_timeline_fail(t, 3, -ENODEV), 0);
	CHECK_EQ(hb_timeline_signal(t, 4), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void merr_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *early = OPEN(c, tl, 1), *ok1 = OPEN(c, tl, 2), *m1, *late, *ok2, *m2, *m3;

	cf_barrier("opened");
	WAIT_DONE(ok1);
	CHECK_EQ(hb_sync_status(early), -EIO);
	CHECK_EQ(hb_sync_status(ok1), 1);
	m1 = hb_sync_merge(ok1, early);
	CHECK(m1 != NULL);
	WAIT_DONE(m1);
	CHECK_EQ(hb_sync_status(m1), -EIO);
	CHECK(fd_ready(m1));
	late = OPEN(c, tl, 3);
	ok2 = OPEN(c, tl, 4);
	m2 = hb_sync_merge(late, ok2);
	CHECK(m2 != NULL);
	m3 = hb_sync_merge(ok1, m2);
	CHECK(m3 != NULL);
	cf_barrier("merged");
	WAIT_DONE(m2);
	CHECK_EQ(hb_sync_status(m2), -ENODEV);
	WAIT_DONE(m3);
	CHECK_EQ(hb_sync_status(m3), -ENODEV);
	hb_sync_close(early);
	hb_sync_close(ok1);
	hb_sync_close(m1);
	hb_sync_close(late);
	hb_sync_close(ok2);
	hb_sync_close(m2);
	hb_sync_close(m3);
	cf_barrier("done");
}

CF_CASE(c12_merge_keeps_errors, {1, merr_owner}, {2, merr_waiter})

/* ---- c23_invalid_arguments (test_it_fence_conformance) --------------------------------------
 * Invalid arguments are EINVAL and change nothing: the handles still complete. (The original's
 * merge of two clients' handles needs two clients in one domain: a guest's second port.) */
static void inval_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	cf_barrier("checked");
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void inval_waiter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *s = OPEN(c, cf_get_u64("tl"), 1);
	struct hb_timeline *mine = hb_timeline_create(c);
	struct hb_fence f = {0, 0};
	struct hb_event ev;
	size_t idx;

	CHECK(mine != NULL);
	CHECK_ERR(hb_sync_merge(s, NULL), EINVAL);
	CHECK_ERR(hb_sync_merge(NULL, s), EINVAL);
	CHECK_ERR(hb_sync_wait(s, -5), EINVAL);
	CHECK_ERR(hb_sync_wait_any(NULL, 1, 0, &idx), EINVAL);
	CHECK_ERR(hb_timeline_fail(mine, 1, 0), EINVAL);
	CHECK_ERR(hb_timeline_fail(mine, 1, 5), EINVAL);
	CHECK_ERR(hb_timeline_fail(mine, 1, -4096), EINVAL);
	CHECK_ERR(hb_timeline_fail(mine, 1, INT32_MIN), EINVAL);
	CHECK_ERR(hb_timeline_create(NULL), EINVAL);
	CHECK_ERR(hb_sync_open(c, &f), EINVAL);
	memset(&ev, 0, sizeof(ev));
	ev.type = HB_EVENT_EXPORTED;
	CHECK_ERR(hb_event_fence(&ev, &f), EINVAL);
	CHECK_ERR(hb_event_fence(NULL, &f), EINVAL);
	CHECK_EQ(hb_sync_status(s), 0);
	cf_barrier("checked");
	WAIT_DONE(s);
	CHECK_EQ(hb_sync_status(s), 1);
	CHECK_EQ(hb_timeline_signal(mine, 1), 0);
	hb_sync_close(s);
	hb_timeline_destroy(mine);
	cf_barrier("done");
}

CF_CASE(c23_invalid_arguments, {1, inval_owner}, {2, inval_waiter})

/* The owner reached value v: a point there, opened and waited for here. After it, a point
 * above v still pending is pending for good reason, not for a late notification. */
static void reached_at(int line, struct hb_client *c, uint64_t tl, uint64_t v)
{
	struct hb_sync *s = open_at(line, c, tl, v);

	wait_done_at(line, s);
	hb_sync_close(s);
}
#define REACHED(c, tl, v) reached_at(__LINE__, (c), (tl), (v))

/* ---- c05_same_point_is_one_fence (test_it_fence_conformance) --------------------------------
 * Two opens of one point are one fence: both complete together with the same status, an error
 * included, and a merge of the two behaves as the point; an open after the point failed is
 * born with that error. */
static void same_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	cf_barrier("two");
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	cf_barrier("three");
	CHECK_EQ(hb_timeline_fail(t, 5, -ECANCELED), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void same_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s1 = OPEN(c, tl, 3), *s2 = OPEN(c, tl, 3), *m, *e1 = OPEN(c, tl, 5),
		       *e2 = OPEN(c, tl, 5);

	m = hb_sync_merge(s1, s2);
	CHECK(m != NULL);
	cf_barrier("opened");
	REACHED(c, tl, 2);
	CHECK_EQ(hb_sync_status(s1), 0);
	CHECK_EQ(hb_sync_status(s2), 0);
	CHECK_EQ(hb_sync_status(m), 0);
	cf_barrier("two");
	WAIT_DONE(s1);
	CHECK_EQ(hb_sync_status(s2), 1);
	CHECK(fd_ready(s2));
	CHECK_EQ(hb_sync_status(m), 1);
	cf_barrier("three");
	WAIT_DONE(e1);
	CHECK_EQ(hb_sync_status(e1), -ECANCELED);
	CHECK_EQ(hb_sync_status(e2), -ECANCELED);
	hb_sync_close(e2);
	e2 = OPEN(c, tl, 5);
	CHECK_EQ(hb_sync_status(e2), -ECANCELED);
	CHECK(fd_ready(e2));
	hb_sync_close(s1);
	hb_sync_close(s2);
	hb_sync_close(m);
	hb_sync_close(e1);
	hb_sync_close(e2);
	cf_barrier("done");
}

CF_CASE(c05_same_point_is_one_fence, {1, same_owner}, {2, same_waiter})

/* ---- c09_fail_respects_order (test_it_fence_conformance) ------------------------------------
 * A fail completes the pending points up to its value with the error, in value order (points
 * opened out of order), reported by FENCE events in order; a fail over completed points only
 * touches the pending ones. */
static void order_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	cf_barrier("three");
	CHECK_EQ(hb_timeline_fail(t, 7, -EIO), 0);
	cf_barrier("seven");
	CHECK_EQ(hb_timeline_signal(t, 10), 0);
	cf_barrier("ten");
	CHECK_EQ(hb_timeline_fail(t, 12, -EBUSY), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void order_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s[12];
	struct hb_fence f;
	uint32_t dom;

	for (int i = 11; i >= 0; i--)
		s[i] = OPEN(c, tl, (uint64_t)i + 1); /* points 12..1: not in value order */
	cf_barrier("opened");
	WAIT_DONE(s[2]);
	cf_drain(c);
	cf_barrier("three");
	WAIT_DONE(s[6]);
	for (int i = 0; i < 12; i++)
		CHECK_EQ(hb_sync_status(s[i]), i < 3 ? 1 : i < 7 ? -EIO : 0);
	for (int i = 4; i <= 7; i++) {
		FENCE_EVENT(c, &f, &dom);
		CHECK_EQ(f.value, (uint64_t)i);
	}
	cf_barrier("seven");
	WAIT_DONE(s[9]);
	cf_barrier("ten");
	WAIT_DONE(s[11]);
	for (int i = 0; i < 12; i++)
		CHECK_EQ(hb_sync_status(s[i]), i < 3 ? 1 : i < 7 ? -EIO : i < 10 ? 1 : -EBUSY);
	for (int i = 0; i < 12; i++)
		hb_sync_close(s[i]);
	cf_barrier("done");
}

CF_CASE(c09_fail_respects_order, {1, order_owner}, {2, order_waiter})

/* ---- c10_error_status_exact (test_it_fence_conformance) -------------------------------------
 * The status is exactly the error given (any of -4095..-1), 0 until then; errors out of range
 * are EINVAL and change nothing. */
static const int errs[] = {-1, -EIO, -ETIMEDOUT, -ENOMEM, -4095};
#define N_ERRS (sizeof(errs) / sizeof(errs[0]))

static void exact_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");
	char key[16];

	cf_barrier("opened");
	CHECK_ERR(hb_timeline_fail(t, 1, 0), EINVAL);
	CHECK_ERR(hb_timeline_fail(t, 1, EIO), EINVAL);
	CHECK_ERR(hb_timeline_fail(t, 1, -4096), EINVAL);
	cf_barrier("refused");
	for (size_t i = 0; i < N_ERRS; i++) {
		snprintf(key, sizeof(key), "fail-%zu", i);
		cf_barrier(key);
		CHECK_EQ(hb_timeline_fail(t, (uint64_t)i + 1, errs[i]), 0);
	}
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void exact_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s[N_ERRS];
	char key[16];

	for (size_t i = 0; i < N_ERRS; i++)
		s[i] = OPEN(c, tl, (uint64_t)i + 1);
	cf_barrier("opened");
	cf_barrier("refused");
	CHECK_ERR(hb_sync_wait(s[0], 100), ETIME);
	for (size_t i = 0; i < N_ERRS; i++) {
		CHECK_EQ(hb_sync_status(s[i]), 0);
		snprintf(key, sizeof(key), "fail-%zu", i);
		cf_barrier(key);
		WAIT_DONE(s[i]);
		CHECK_EQ(hb_sync_status(s[i]), errs[i]);
	}
	for (size_t i = 0; i < N_ERRS; i++)
		hb_sync_close(s[i]);
	cf_barrier("done");
}

CF_CASE(c10_error_status_exact, {1, exact_owner}, {2, exact_waiter})

/* ---- c20_merge_of_complete_members_is_complete (test_it_fence_conformance) ------------------
 * A merge of complete members is complete at once (readable, a zero wait returns), and a merge
 * with a failed member is born with its error. */
static void full_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, "tl");

	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	cf_put("five", "1");
	cf_barrier("opened");
	CHECK_EQ(hb_timeline_fail(t, 6, -EFAULT), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void full_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *p0, *p1, *p2, *m, *mf;

	cf_get("five");
	p0 = OPEN(c, tl, 0);
	p1 = OPEN(c, tl, 3);
	m = hb_sync_merge(p0, p1);
	CHECK(m != NULL);
	CHECK_EQ(hb_sync_status(m), 1);
	CHECK(fd_ready(m));
	CHECK_EQ(hb_sync_wait(m, 0), 0);
	p2 = OPEN(c, tl, 6);
	cf_barrier("opened");
	WAIT_DONE(p2);
	mf = hb_sync_merge(m, p2);
	CHECK(mf != NULL);
	CHECK(fd_ready(mf));
	CHECK_EQ(hb_sync_status(mf), -EFAULT);
	hb_sync_close(p0);
	hb_sync_close(p1);
	hb_sync_close(p2);
	hb_sync_close(m);
	hb_sync_close(mf);
	cf_barrier("done");
}

CF_CASE(c20_merge_of_complete_members_is_complete, {1, full_owner}, {2, full_waiter})

/* ---- c21_nested_merges_flatten (test_it_fence_conformance) ----------------------------------
 * A binary tree of merges (depth 6) over points of three domains' timelines (vm1's, the
 * host's and vm2's own), and a chain of 2000 merges, complete exactly when the last member
 * does. */
static void nest_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = timeline_for(c, cf_domain() == 1 ? "tl-a" : "tl-c");

	cf_barrier("built");
	CHECK_EQ(hb_timeline_signal(t, cf_domain() == 1 ? 63 : 62), 0);
	cf_barrier("most");
	if (cf_domain() == 1)
		CHECK_EQ(hb_timeline_signal(t, 64), 0);
	cf_barrier("tree");
	if (cf_domain() == 1)
		CHECK_EQ(hb_timeline_signal(t, 999), 0);
	cf_barrier("999");
	if (cf_domain() == 1)
		CHECK_EQ(hb_timeline_signal(t, 1000), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static struct hb_sync *merge_at(int line, struct hb_sync *a, struct hb_sync *b)
{
	struct hb_sync *m = hb_sync_merge(a, b);

	if (!m)
		cf_fail(__FILE__, line, "hb_sync_merge: %s", strerror(errno));
	return m;
}
#define MERGE(a, b) merge_at(__LINE__, (a), (b))

static void nest_waiter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *own = hb_timeline_create(c);
	struct hb_sync *level[64], *chain, *s;
	uint64_t tl[3];

	CHECK(own != NULL);
	tl[0] = cf_get_u64("tl-a");
	tl[1] = cf_get_u64("tl-c");
	tl[2] = hb_timeline_id(own);
	for (int i = 0; i < 64; i++)
		level[i] = OPEN(c, tl[i % 3], 1 + (uint64_t)i);
	for (int n = 64; n > 1; n /= 2) {
		for (int i = 0; i < n / 2; i++) {
			struct hb_sync *m = MERGE(level[2 * i], level[2 * i + 1]);

			hb_sync_close(level[2 * i]);
			hb_sync_close(level[2 * i + 1]);
			level[i] = m;
		}
	}
	s = OPEN(c, tl[0], 1000);
	chain = MERGE(s, s);
	for (int i = 0; i < 2000; i++) {
		struct hb_sync *m = MERGE(chain, i % 2 ? s : level[0]);

		hb_sync_close(chain);
		chain = m;
	}
	cf_barrier("built");
	/* Tree points: vm1 has 1, 4, .., 64; the host 2, 5, .., 62; vm2 3, 6, .., 63. */
	CHECK_EQ(hb_timeline_signal(own, 63), 0);
	REACHED(c, tl[1], 62);
	REACHED(c, tl[0], 63);
	CHECK_EQ(hb_sync_status(level[0]), 0);
	CHECK_EQ(hb_sync_status(chain), 0);
	cf_barrier("most");
	WAIT_DONE(level[0]);
	CHECK_EQ(hb_sync_status(level[0]), 1);
	CHECK_EQ(hb_sync_status(chain), 0); /* waits for vm1's 1000 too */
	cf_barrier("tree");
	REACHED(c, tl[0], 999);
	CHECK_EQ(hb_sync_status(chain), 0);
	cf_barrier("999");
	WAIT_DONE(chain);
	CHECK_EQ(hb_sync_status(chain), 1);
	hb_sync_close(chain);
	hb_sync_close(level[0]);
	hb_sync_close(s);
	hb_timeline_destroy(own);
	cf_barrier("done");
}

CF_CASE(c21_nested_merges_flatten, {1, nest_owner}, {0, nest_owner}, {2, nest_waiter})
