/*
 * Conformance cases: a buffer's reservation, fresh buffers and invalid requests (ported from
 * test_it_fence_buffers c37-c39; docs/TESTING.md lists them). vm1 (A) exports a buffer to vm2
 * (B), writable, which B imports; the host is the domain outside that share. Written once for
 * every target (tests/conform/conform.h).
 */
#include "tests/conform/conform.h"

#define R HB_ACCESS_READ
#define W HB_ACCESS_WRITE

/* Steps every role of a case meets in order: one acts before step n, the others look after
 * it, and nobody acts again before the next. */
static void step(int n)
{
	char key[32];

	snprintf(key, sizeof(key), "s%d", n);
	cf_barrier(key);
}

static void attach_at(int line, struct hb_client *c, const struct hb_id *id, uint64_t tl,
		      uint64_t v, uint32_t usage)
{
	struct hb_fence f = {.timeline = tl, .value = v};

	if (hb_attach_fence(c, id, &f, usage) != 0)
		cf_fail(__FILE__, line, "hb_attach_fence(%llu, %#x): %s", (unsigned long long)v,
			usage, strerror(errno));
}
#define ATTACH(c, id, tl, v, usage) attach_at(__LINE__, (c), (id), (tl), (v), (usage))

/* begin_cpu_access(access, 0): 1 if it did not have to wait (and ended it), 0 if it timed
 * out. */
static int free_now_at(int line, struct hb_client *c, const struct hb_id *id, uint32_t access)
{
	errno = 0;
	if (hb_begin_cpu_access(c, id, access, 0) == 0) {
		if (hb_end_cpu_access(c, id, access) != 0)
			cf_fail(__FILE__, line, "hb_end_cpu_access: %s", strerror(errno));
		return 1;
	}
	if (errno != ETIME)
		cf_fail(__FILE__, line, "hb_begin_cpu_access(%#x, 0): %s", access, strerror(errno));
	return 0;
}
#define FREE_NOW(c, id, acc) free_now_at(__LINE__, (c), (id), (acc))

/* ---- c37_attach_rules (test_it_fence_buffers c37) -------------------------------------------
 * READ makes writers wait, not readers; WRITE makes everyone wait; a later point of the same
 * timeline replaces the entry (100 attaches never fill the reservation); an earlier point is
 * added, not replacing the later one; a usage is never downgraded but is promoted; a completed
 * fence (signalled or failed) is accepted and changes nothing; HB_RESV_MAX distinct pending
 * timelines fill it (ENOSPC), completed entries make room; attaching and CPU access are for
 * the two sides of the share only, with a timeline both can see (ENOENT otherwise). */
#define N_STEPS 18

static void rules_a(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl-a"), *ts[HB_RESV_MAX + 1];
	uint64_t tla = hb_timeline_id(t);
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, HB_BUFFER_PEER_WRITABLE);
	struct hb_fence f;
	struct hb_id id;
	char key[32];

	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	step(0); /* B: the same timeline's later points */
	ATTACH(c, &id, tla, 5, W);
	ATTACH(c, &id, tla, 3, W);
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	step(1); /* B: the later one still counts */
	step(2);
	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	ATTACH(c, &id, tla, 10, W);
	ATTACH(c, &id, tla, 10, R);
	step(3); /* B: never downgraded */
	step(4);
	CHECK_EQ(hb_timeline_signal(t, 10), 0);
	ATTACH(c, &id, tla, 20, R);
	step(5); /* B: a reader's fence */
	step(6);
	ATTACH(c, &id, tla, 20, W);
	step(7); /* B: promoted */
	step(8);
	CHECK_EQ(hb_timeline_fail(t, 20, -EIO), 0);
	ATTACH(c, &id, tla, 7, W); /* completed: accepted, changes nothing */
	step(9);                   /* B: a failed fence is a completed one */
	for (int i = 0; i <= HB_RESV_MAX; i++) {
		snprintf(key, sizeof(key), "r%d", i);
		ts[i] = cf_timeline_for(c, key);
	}
	for (int i = 0; i < HB_RESV_MAX; i++)
		ATTACH(c, &id, hb_timeline_id(ts[i]), 1, i % 2 ? R : W);
	f = (struct hb_fence){.timeline = hb_timeline_id(ts[HB_RESV_MAX]), .value = 1};
	CHECK_ERR(hb_attach_fence(c, &id, &f, W), ENOSPC);
	/* A later point of a timeline already in it still fits (it replaces). */
	ATTACH(c, &id, hb_timeline_id(ts[0]), 2, W);
	step(10); /* B: full, and waits */
	step(11);
	CHECK_EQ(hb_timeline_signal(ts[0], 2), 0);
	for (int i = 1; i < HB_RESV_MAX; i++)
		CHECK_EQ(hb_timeline_signal(ts[i], 1), 0);
	step(12); /* B: all complete */
	step(13);
	ATTACH(c, &id, hb_timeline_id(ts[HB_RESV_MAX]), 1, W); /* room again */
	step(14);                                              /* B: it waits */
	step(15);
	CHECK_EQ(hb_timeline_signal(ts[HB_RESV_MAX], 1), 0);
	f = (struct hb_fence){.timeline = cf_get_u64("tl-h"), .value = 1};
	CHECK_ERR(hb_attach_fence(c, &id, &f, W), ENOENT); /* vm2 cannot see it */
	step(16); /* B: free; the host's and unknown timelines refused */
	step(17);
	for (int i = 0; i <= HB_RESV_MAX; i++)
		hb_timeline_destroy(ts[i]);
	hb_timeline_destroy(t);
	hb_buffer_free(b);
}

static void rules_b_first(struct hb_client *c, const struct hb_id *id)
{
	struct hb_timeline *tb = hb_timeline_create(c);
	struct hb_fence f;

	CHECK(tb != NULL);
	/* Same timeline, later points: replaced, never full. */
	for (int i = 1; i <= 100; i++)
		ATTACH(c, id, hb_timeline_id(tb), (uint64_t)i, W);
	CHECK_EQ(hb_timeline_signal(tb, 99), 0);
	CHECK(!FREE_NOW(c, id, R));
	CHECK_EQ(hb_timeline_signal(tb, 100), 0);
	CHECK(FREE_NOW(c, id, R | W));
	f = (struct hb_fence){.timeline = hb_timeline_id(tb), .value = 1};
	CHECK_EQ(hb_attach_fence(c, id, &f, W), 0); /* completed: accepted */
	CHECK(FREE_NOW(c, id, R | W));
	hb_timeline_destroy(tb);
}

static void rules_b(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tla = cf_get_u64("tl-a");
	struct hb_import *im;
	struct hb_fence f;
	struct hb_sync *s;
	struct hb_id id;
	char key[32];

	cf_get_id("id", &id);
	im = CF_IMPORT(c, &id, HB_IMPORT_WRITE);
	rules_b_first(c, &id);
	step(0);
	step(1);
	CF_REACHED(c, tla, 3);
	CHECK(!FREE_NOW(c, &id, R));
	step(2);
	step(3);
	CF_REACHED(c, tla, 5);
	CHECK(FREE_NOW(c, &id, R | W) == 0);
	CHECK(!FREE_NOW(c, &id, R)); /* WRITE then READ of point 10: still WRITE */
	step(4);
	step(5);
	CF_REACHED(c, tla, 10);
	CHECK(FREE_NOW(c, &id, R));
	CHECK(!FREE_NOW(c, &id, W));
	step(6);
	step(7);
	CHECK(!FREE_NOW(c, &id, R));
	step(8);
	step(9);
	s = CF_OPEN(c, tla, 20);
	CF_WAIT_DONE(s);
	CHECK_EQ(hb_sync_status(s), -EIO);
	hb_sync_close(s);
	CHECK(FREE_NOW(c, &id, R | W));
	step(10);
	f = (struct hb_fence){.timeline = cf_get_u64("r32"), .value = 1};
	CHECK_ERR(hb_attach_fence(c, &id, &f, R), ENOSPC);
	CHECK(!FREE_NOW(c, &id, R));
	step(11);
	step(12);
	for (int i = 0; i < HB_RESV_MAX; i++) {
		snprintf(key, sizeof(key), "r%d", i);
		CF_REACHED(c, cf_get_u64(key), i == 0 ? 2 : 1);
	}
	CHECK(FREE_NOW(c, &id, R | W));
	step(13);
	step(14);
	CHECK(!FREE_NOW(c, &id, R));
	step(15);
	step(16);
	CF_REACHED(c, f.timeline, 1);
	CHECK(FREE_NOW(c, &id, R));
	f = (struct hb_fence){.timeline = cf_get_u64("tl-h"), .value = 1};
	CHECK_ERR(hb_attach_fence(c, &id, &f, W), ENOENT);
	f.timeline = tla ^ 0x77;
	CHECK_ERR(hb_attach_fence(c, &id, &f, W), ENOENT);
	CHECK(FREE_NOW(c, &id, R | W));
	step(17);
	hb_import_release(im);
}

/* The host: no side of the share. It may not attach to the buffer nor bracket it; its own
 * timeline, shared with vm1 only, cannot go on the buffer either (vm2 would not see it). */
static void rules_host(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *th = hb_timeline_create(c);
	struct hb_fence f = {.timeline = cf_get_u64("tl-a"), .value = 100};
	struct hb_id id;

	CHECK(th != NULL);
	CHECK_EQ(hb_timeline_share(th, 1), 0);
	cf_put_u64("tl-h", hb_timeline_id(th));
	cf_get_id("id", &id);
	CHECK_ERR(hb_attach_fence(c, &id, &f, W), ENOENT);
	CHECK_ERR(hb_begin_cpu_access(c, &id, R, 0), ENOENT);
	for (int i = 0; i < N_STEPS; i++)
		step(i);
	hb_timeline_destroy(th);
}

CF_CASE(c37_attach_rules, {1, rules_a}, {2, rules_b}, {0, rules_host})

/* ---- c38_fresh_buffers_zero_across_vms (test_it_fence_buffers c38) --------------------------
 * Fresh buffers are zero in any domain, including memory another just freed: vm1 fills 32 x
 * 4 KiB and 6 x 1 MiB under WRITE brackets and frees them; vm2 allocates as many and reads
 * zeros under READ brackets, and vm1, importing them, does too. (The original's 8 x 1 MiB pass
 * a member's share of a 16 MiB group: half of it, less the pool's own pages.) */
static const size_t zsizes[2] = {4096, 1u << 20};
static const int zcounts[2] = {32, 6};

static void zero_a(void)
{
	struct hb_client *c = cf_connect();
	char key[32];

	for (int k = 0; k < 2; k++) {
		struct hb_buffer *b[32];
		struct hb_id id;

		for (int i = 0; i < zcounts[k]; i++) {
			b[i] = CF_ALLOC(c, 2, zsizes[k], 0);
			CF_EXPORT(b[i], NULL, 0, &id);
			CHECK_EQ(hb_begin_cpu_access(c, &id, W, CF_WAIT_MS), 0);
			cf_fill(hb_buffer_data(b[i]), zsizes[k], 0xff00 + (uint64_t)i);
			CHECK_EQ(hb_end_cpu_access(c, &id, W), 0);
		}
		for (int i = 0; i < zcounts[k]; i++)
			hb_buffer_free(b[i]);
		CF_STAT_BECOMES("pages_used", 0);
		snprintf(key, sizeof(key), "freed-%d", k);
		cf_barrier(key);
		for (int i = 0; i < zcounts[k]; i++) {
			struct hb_import *im;
			const uint8_t *p;

			snprintf(key, sizeof(key), "id-%d-%d", k, i);
			cf_get_id(key, &id);
			im = CF_IMPORT(c, &id, 0);
			CHECK_EQ(hb_begin_cpu_access(c, &id, R, CF_WAIT_MS), 0);
			p = hb_import_data(im);
			for (size_t j = 0; j < zsizes[k]; j++) {
				if (p[j] != 0)
					cf_fail(__FILE__, __LINE__,
						"vm2's buffer %d: byte %zu is %#x", i, j, p[j]);
			}
			CHECK_EQ(hb_end_cpu_access(c, &id, R), 0);
			hb_import_release(im);
		}
		snprintf(key, sizeof(key), "checked-%d", k);
		cf_barrier(key);
	}
}

static void zero_b(void)
{
	struct hb_client *c = cf_connect();
	char key[32];

	for (int k = 0; k < 2; k++) {
		struct hb_buffer *b[32];

		snprintf(key, sizeof(key), "freed-%d", k);
		cf_barrier(key);
		for (int i = 0; i < zcounts[k]; i++) {
			const uint8_t *p;
			struct hb_id id;

			b[i] = CF_ALLOC(c, 1, zsizes[k], 0);
			CF_EXPORT(b[i], NULL, 0, &id);
			CHECK_EQ(hb_begin_cpu_access(c, &id, R, CF_WAIT_MS), 0);
			p = hb_buffer_data(b[i]);
			for (size_t j = 0; j < zsizes[k]; j++) {
				if (p[j] != 0)
					cf_fail(__FILE__, __LINE__,
						"vm2's new buffer %d: byte %zu is %#x", i, j, p[j]);
			}
			CHECK_EQ(hb_end_cpu_access(c, &id, R), 0);
			snprintf(key, sizeof(key), "id-%d-%d", k, i);
			cf_put_id(key, &id);
		}
		snprintf(key, sizeof(key), "checked-%d", k);
		cf_barrier(key);
		for (int i = 0; i < zcounts[k]; i++)
			hb_buffer_free(b[i]);
	}
}

CF_CASE(c38_fresh_buffers_zero_across_vms, {1, zero_a}, {2, zero_b})

/* ---- c39_invalid_requests (test_it_fence_buffers c39_request_abi_and_invalid_requests) ------
 * Invalid sizes, flags, peers and ids are refused with their errors, from any domain. (The
 * original's wire half, hand-made frames with unknown or missing fields, is host-side: it stays
 * in test_it_fence_buffers.) */
static void inval_role(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = hb_timeline_create(c);
	uint32_t other = cf_domain() == 1 ? 2 : 1;
	struct hb_id nobody;
	struct hb_fence f;

	CHECK(t != NULL);
	for (size_t i = 0; i < sizeof(nobody.bytes); i++)
		nobody.bytes[i] = (uint8_t)(0x39 + 7 * i + cf_domain());
	CHECK_ERR(hb_buffer_alloc(c, other, 0, 0), EINVAL);
	CHECK_ERR(hb_buffer_alloc(c, other, 4096, 0x80), EINVAL);
	CHECK_ERR(hb_buffer_alloc(c, cf_domain(), 4096, 0), EINVAL); /* itself */
	f = (struct hb_fence){.timeline = hb_timeline_id(t), .value = 1};
	CHECK_ERR(hb_attach_fence(c, &nobody, &f, W), ENOENT);
	CHECK_ERR(hb_begin_cpu_access(c, &nobody, R, 0), ENOENT);
	CHECK_ERR(hb_end_cpu_access(c, &nobody, R), ENOENT);
	hb_timeline_destroy(t);
}

CF_CASE(c39_invalid_requests, {0, inval_role}, {1, inval_role}, {2, inval_role})
