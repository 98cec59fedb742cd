/*
 * Conformance cases: the Linux sync selftests across domains (ported from
 * test_it_fence_selftests, whose comments say what each changes from the selftest; and
 * docs/TESTING.md lists them). The timeline's owner is vm1 (the selftests' VM A), the waiter
 * vm2 (B); a third place for a timeline is the host. Written once for every target
 * (tests/conform/conform.h).
 */
#include <fcntl.h>

#include "tests/conform/conform.h"

/* ---- test_alloc_timeline --------------------------------------------------------------------
 * A's two timelines and B's have valid, distinct ids; B opens a point on A's; once A destroyed
 * it, opening one is ENOENT. */
static void atl_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl"), *t2 = cf_timeline_for(c, "tl2");

	CHECK(hb_timeline_id(t) != 0 && hb_timeline_id(t2) != 0);
	CHECK(hb_timeline_id(t) != hb_timeline_id(t2));
	cf_barrier("opened");
	hb_timeline_destroy(t);
	hb_timeline_destroy(t2);
	cf_barrier("destroyed");
}

static void atl_b(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *tb = hb_timeline_create(c);
	uint64_t ida = cf_get_u64("tl"), ida2 = cf_get_u64("tl2");
	struct hb_fence f = {.timeline = ida, .value = 1};

	CHECK(tb != NULL);
	CHECK(hb_timeline_id(tb) != 0);
	CHECK(hb_timeline_id(tb) != ida && hb_timeline_id(tb) != ida2);
	hb_sync_close(CF_OPEN(c, ida, 1));
	cf_barrier("opened");
	cf_barrier("destroyed");
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	hb_timeline_destroy(tb);
}

CF_CASE(test_alloc_timeline, {1, atl_owner}, {2, atl_b})

/* ---- test_alloc_fence -----------------------------------------------------------------------
 * A opens point 1 of its timeline (pending); B opens it too and gets a valid fd, not ready;
 * both close, A destroys: nothing is left (the hub's counters after the case). */
static void af_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	struct hb_sync *s = CF_OPEN(c, hb_timeline_id(t), 1);

	CHECK_EQ(hb_sync_status(s), 0);
	cf_barrier("done");
	hb_sync_close(s);
	hb_timeline_destroy(t);
}

static void af_b(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *s = CF_OPEN(c, cf_get_u64("tl"), 1);

	CHECK(hb_sync_fd(s) >= 0);
	CHECK(fcntl(hb_sync_fd(s), F_GETFD) >= 0);
	CHECK(!cf_fd_ready(s));
	CHECK_EQ(hb_sync_status(s), 0);
	hb_sync_close(s);
	cf_barrier("done");
}

CF_CASE(test_alloc_fence, {1, af_owner}, {2, af_b})

/* ---- test_alloc_fence_negative --------------------------------------------------------------
 * A point on a made-up timeline, on timeline 0, on a destroyed timeline and on a timeline not
 * shared with B all fail with the documented errors; the domain it was shared with opens it;
 * NULL arguments are EINVAL and the no-ops are no-ops. (The original's forged signal is a raw
 * protocol session, host-side: test_it_fence_selftests keeps it. And its unseen timeline is
 * the host's, outside vm2's groups; every two domains share a group here, so it is a timeline
 * the host did not share with vm2.) */
static void neg_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("checked");
	hb_timeline_destroy(t);
	cf_barrier("destroyed");
}

static void neg_host(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = hb_timeline_create(c);

	CHECK(t != NULL);
	CHECK_EQ(hb_timeline_share(t, 1), 0);
	cf_put_u64("tlh", hb_timeline_id(t));
	cf_barrier("checked");
	cf_barrier("destroyed");
	hb_timeline_destroy(t);
}

static void neg_b(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl"), tlh = cf_get_u64("tlh");
	struct hb_fence f = {.timeline = 0, .value = 1};

	CHECK_ERR(hb_sync_open(c, NULL), EINVAL);
	CHECK_ERR(hb_sync_open(NULL, &f), EINVAL);
	CHECK_ERR(hb_sync_open(c, &f), EINVAL);
	f.timeline = tl ^ 0x5a5a5a5aull; /* nobody's */
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	f.timeline = tlh; /* not shared with vm2 */
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	cf_barrier("checked");
	cf_barrier("destroyed");
	f.timeline = tl;
	CHECK_ERR(hb_sync_open(c, &f), ENOENT);
	CHECK_ERR(hb_timeline_signal(NULL, 1), EINVAL);
	CHECK_ERR(hb_timeline_fail(NULL, 1, -EIO), EINVAL);
	CHECK_ERR(hb_sync_merge(NULL, NULL), EINVAL);
	hb_timeline_destroy(NULL); /* no-ops */
	hb_sync_close(NULL);
}

/* vm1 may open the host's timeline: the host shared it with vm1. */
static void neg_a(void)
{
	struct hb_client *c = cf_connect();

	hb_sync_close(CF_OPEN(c, cf_get_u64("tlh"), 3));
	neg_owner();
}

CF_CASE(test_alloc_fence_negative, {1, neg_a}, {0, neg_host}, {2, neg_b})

/* ---- test_fence_one_timeline_wait -----------------------------------------------------------
 * Point 5: not yet; A at 1: still not; at 5: signalled; at 15: still signalled (latched). */
static void otw_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("one");
	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	cf_barrier("five");
	CHECK_EQ(hb_timeline_signal(t, 15), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void otw_b(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s = CF_OPEN(c, tl, 5);

	CHECK_ERR(hb_sync_wait(s, 0), ETIME);
	CHECK_EQ(hb_sync_status(s), 0);
	cf_barrier("opened");
	CF_REACHED(c, tl, 1);
	CHECK_ERR(hb_sync_wait(s, 0), ETIME);
	CHECK_EQ(hb_sync_status(s), 0);
	CHECK(!cf_fd_ready(s));
	cf_barrier("one");
	CF_WAIT_DONE(s);
	CHECK_EQ(hb_sync_status(s), 1);
	CHECK(cf_fd_ready(s));
	cf_barrier("five");
	CF_REACHED(c, tl, 15);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(hb_sync_wait(s, 0), 0);
		CHECK_EQ(hb_sync_status(s), 1);
		CHECK(cf_fd_ready(s));
	}
	hb_sync_close(s);
	cf_barrier("done");
}

CF_CASE(test_fence_one_timeline_wait, {1, otw_owner}, {2, otw_b})

/* ---- test_fence_one_timeline_merge ----------------------------------------------------------
 * Points a=1, b=2, c=3; d = merge(c, merge(b, a)): each step of A completes exactly one more of
 * a, b, c, and d only with the last; the inputs are unchanged by the merges. */
static void otm_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	char key[16];

	for (int v = 1; v <= 3; v++) {
		snprintf(key, sizeof(key), "s%d", v);
		cf_barrier(key);
		CHECK_EQ(hb_timeline_signal(t, (uint64_t)v), 0);
	}
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void otm_b(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *fa = CF_OPEN(c, tl, 1), *fb = CF_OPEN(c, tl, 2), *fc = CF_OPEN(c, tl, 3);
	struct hb_sync *inner = CF_MERGE(fb, fa), *fd = CF_MERGE(fc, inner);

	CHECK(hb_sync_fd(inner) >= 0 && hb_sync_fd(fd) >= 0);
	CHECK(hb_sync_fd(fd) != hb_sync_fd(fa) && hb_sync_fd(fd) != hb_sync_fd(inner));
	CHECK_EQ(hb_sync_status(fa), 0);
	CHECK_EQ(hb_sync_status(fb), 0);
	CHECK_EQ(hb_sync_status(fc), 0);
	CHECK_EQ(hb_sync_status(inner), 0);
	CHECK_ERR(hb_sync_wait(fd, 0), ETIME);
	cf_barrier("s1");
	CF_WAIT_DONE(fa);
	CHECK_EQ(hb_sync_status(fa), 1);
	CHECK_ERR(hb_sync_wait(fb, 0), ETIME);
	CHECK_ERR(hb_sync_wait(inner, 0), ETIME);
	CHECK_ERR(hb_sync_wait(fd, 0), ETIME);
	cf_barrier("s2");
	CF_WAIT_DONE(fb);
	CF_WAIT_DONE(inner);
	CHECK_EQ(hb_sync_status(inner), 1);
	CHECK_ERR(hb_sync_wait(fc, 0), ETIME);
	CHECK_ERR(hb_sync_wait(fd, 0), ETIME);
	CHECK(!cf_fd_ready(fd));
	cf_barrier("s3");
	CF_WAIT_DONE(fd);
	CHECK_EQ(hb_sync_status(fc), 1);
	CHECK_EQ(hb_sync_status(fd), 1);
	CHECK(cf_fd_ready(fd));
	CHECK_EQ(hb_sync_status(fa), 1);
	CHECK_EQ(hb_sync_status(fb), 1);
	hb_sync_close(fd);
	hb_sync_close(inner);
	hb_sync_close(fa);
	hb_sync_close(fb);
	hb_sync_close(fc);
	cf_barrier("done");
}

CF_CASE(test_fence_one_timeline_merge, {1, otm_owner}, {2, otm_b})

/* ---- test_fence_merge_same_fence ------------------------------------------------------------
 * merge(f, f) and merge(f, f2), f2 a second open of the same point: both valid, pending until
 * A reaches 5, then signalled. */
static void msf_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_signal(t, 4), 0);
	cf_barrier("four");
	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void msf_b(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *f = CF_OPEN(c, tl, 5), *f2 = CF_OPEN(c, tl, 5);
	struct hb_sync *m1 = CF_MERGE(f, f), *m2 = CF_MERGE(f, f2);

	CHECK(fcntl(hb_sync_fd(m1), F_GETFD) >= 0);
	CHECK(fcntl(hb_sync_fd(m2), F_GETFD) >= 0);
	CHECK_EQ(hb_sync_status(m1), 0);
	CHECK_EQ(hb_sync_status(m2), 0);
	cf_barrier("opened");
	CF_REACHED(c, tl, 4);
	CHECK_ERR(hb_sync_wait(m1, 0), ETIME);
	CHECK_ERR(hb_sync_wait(m2, 0), ETIME);
	CHECK_ERR(hb_sync_wait(f2, 0), ETIME);
	cf_barrier("four");
	CF_WAIT_DONE(m1);
	CF_WAIT_DONE(m2);
	CHECK_EQ(hb_sync_status(m1), 1);
	CHECK_EQ(hb_sync_status(m2), 1);
	CHECK_EQ(hb_sync_status(f), 1);
	CHECK_EQ(hb_sync_status(f2), 1);
	hb_sync_close(m1);
	hb_sync_close(m2);
	hb_sync_close(f);
	hb_sync_close(f2);
	cf_barrier("done");
}

CF_CASE(test_fence_merge_same_fence, {1, msf_owner}, {2, msf_b})

/* ---- test_fence_multi_timeline_wait ---------------------------------------------------------
 * Point 5 on three timelines, merged: each owner's step completes exactly one more member, the
 * merge only with the last. The three places are vm1, the host and vm2 itself (the original's
 * vm1, vm3 and vm4: the conformance topology has two VMs). */
static void mtw_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, cf_domain() == 1 ? "tl0" : "tl1");

	cf_barrier("go0");
	if (cf_domain() == 1)
		CHECK_EQ(hb_timeline_signal(t, 5), 0);
	cf_barrier("checked0");
	if (cf_domain() == 0)
		CHECK_EQ(hb_timeline_signal(t, 5), 0);
	cf_barrier("checked1");
	cf_barrier("done");
	hb_timeline_destroy(t);
}

/* The members' statuses after step i: those up to i complete, the merge only at the end. */
static void mtw_check(struct hb_sync **f, struct hb_sync *merged, int i)
{
	CF_WAIT_DONE(f[i]);
	for (int k = 0; k < 3; k++)
		CHECK_EQ(hb_sync_status(f[k]), k <= i ? 1 : 0);
	if (i < 2) {
		CHECK_ERR(hb_sync_wait(merged, 0), ETIME);
		CHECK_EQ(hb_sync_status(merged), 0);
	}
}

static void mtw_b(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *own = hb_timeline_create(c);
	struct hb_sync *f[3], *m01, *merged;

	CHECK(own != NULL);
	f[0] = CF_OPEN(c, cf_get_u64("tl0"), 5);
	f[1] = CF_OPEN(c, cf_get_u64("tl1"), 5);
	f[2] = CF_OPEN(c, hb_timeline_id(own), 5);
	m01 = CF_MERGE(f[1], f[0]);
	merged = CF_MERGE(f[2], m01);
	hb_sync_close(m01); /* a merge does not need its inputs kept */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(hb_sync_status(f[i]), 0);
	CHECK_ERR(hb_sync_wait(merged, 0), ETIME);
	/* The owners' steps, one after the other: vm1's, the host's, then its own. */
	cf_barrier("go0");
	mtw_check(f, merged, 0);
	cf_barrier("checked0");
	mtw_check(f, merged, 1);
	cf_barrier("checked1");
	CHECK_EQ(hb_timeline_signal(own, 5), 0);
	mtw_check(f, merged, 2);
	CF_WAIT_DONE(merged);
	CHECK_EQ(hb_sync_status(merged), 1);
	hb_sync_close(merged);
	for (int i = 0; i < 3; i++)
		hb_sync_close(f[i]);
	hb_timeline_destroy(own);
	cf_barrier("done");
}

CF_CASE(test_fence_multi_timeline_wait, {1, mtw_owner}, {0, mtw_owner}, {2, mtw_b})
