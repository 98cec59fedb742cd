/*
 * Conformance cases on config variants (tests/conform/variants.c), continued: the fence bounds
 * (timelines_per_domain = 4, fence_waits_per_domain = 8) and the bounded event queues
 * (event_queue = 16) of the "limits" variant, from test_it_fence_failure, test_it_timeline and
 * test_it_events; and a pool one member may fill ("share100": share = 100%), from
 * test_it_export. A guest has one client per role, so "per domain, not per session" is left
 * to the originals (docs/TESTING.md).
 */
#include "tests/conform/conform.h"

/* ---- per_domain_bounds (test_it_timeline) ---------------------------------------------------
 * EDQUOT past timelines_per_domain and fence_waits_per_domain; a domain's bound is its own;
 * a reopen of a pending point and a born-signalled open cost nothing; a completion and a
 * close each free a slot. Bounds 4 and 8, not 2 and 3 (the variant's, c32's). */
static void bounds_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t[4];
	struct hb_sync *own;

	t[0] = cf_timeline_for(c, "tl");
	for (int i = 1; i < 4; i++) {
		t[i] = hb_timeline_create(c);
		CHECK(t[i] != NULL);
	}
	CHECK_ERR(hb_timeline_create(c), EDQUOT);
	/* Destroying one frees its slot. */
	hb_timeline_destroy(t[3]);
	t[3] = hb_timeline_create(c);
	CHECK(t[3] != NULL);
	cf_barrier("timelines");
	cf_barrier("waits");
	/* vm2's waits are not vm1's. */
	own = CF_OPEN(c, hb_timeline_id(t[0]), 100);
	hb_sync_close(own);
	CHECK_EQ(hb_timeline_signal(t[0], 1), 0);
	cf_barrier("signalled");
	cf_barrier("done");
	for (int i = 0; i < 4; i++)
		hb_timeline_destroy(t[i]);
}

static void bounds_waiter(void)
{
	struct hb_client *c = cf_connect_waits();
	uint64_t tl = cf_get_u64("tl");
	struct hb_timeline *t[4];
	struct hb_sync *s[8], *dup, *x;
	struct hb_fence f = {.timeline = tl, .value = 9};

	cf_barrier("timelines");
	/* vm2 has four of its own, while vm1 holds its four. */
	for (int i = 0; i < 4; i++) {
		t[i] = hb_timeline_create(c);
		CHECK(t[i] != NULL);
	}
	CHECK_ERR(hb_timeline_create(c), EDQUOT);
	for (int i = 0; i < 8; i++)
		s[i] = CF_OPEN(c, tl, 1 + (uint64_t)i);
	CHECK_ERR(hb_sync_open(c, &f), EDQUOT);
	/* The same pending point again: the library shares the daemon's wait. */
	dup = CF_OPEN(c, tl, 2);
	CHECK_EQ(cf_stat("fence_waits"), 8);
	cf_barrier("waits");
	cf_barrier("signalled");
	/* A completion frees a slot: exactly one. */
	CF_WAIT_DONE(s[0]);
	CHECK_EQ(hb_sync_status(s[0]), 1);
	x = CF_OPEN(c, tl, 9);
	f.value = 10;
	CHECK_ERR(hb_sync_open(c, &f), EDQUOT);
	/* Born signalled: no wait held. */
	for (int i = 0; i < 10; i++) {
		struct hb_sync *born = CF_OPEN(c, tl, 1);

		CHECK_EQ(hb_sync_status(born), 1);
		hb_sync_close(born);
	}
	/* Closing a pending one frees its slot. */
	hb_sync_close(s[2]);
	s[2] = CF_OPEN(c, tl, 10);
	for (int i = 0; i < 8; i++)
		hb_sync_close(s[i]);
	hb_sync_close(dup);
	hb_sync_close(x);
	CF_STAT_BECOMES("fence_waits", 0);
	for (int i = 0; i < 4; i++)
		hb_timeline_destroy(t[i]);
	cf_barrier("done");
}

CF_CASE_IN("limits", per_domain_bounds, {1, bounds_owner}, {2, bounds_waiter})

/* ---- c32_resource_limits (test_it_fence_failure c32) ----------------------------------------
 * With timelines_per_domain = 4 and fence_waits_per_domain = 8: the owner's fifth timeline and
 * the waiter's ninth wait are EDQUOT; what exists keeps working; a reopen is the same wait; a
 * point already reached holds none; room comes back as waits complete or close, and a
 * destroyed timeline's slot as well. The waiter's eight waits on one client, not two. */
static void c32_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t[4];
	char key[16];

	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "tl%d", i);
		t[i] = cf_timeline_for(c, key);
	}
	CHECK_ERR(hb_timeline_create(c), EDQUOT);
	cf_barrier("waits");
	CHECK_EQ(hb_timeline_signal(t[3], 50), 0);
	cf_barrier("reached");
	cf_barrier("more");
	/* Existing fences still work, quotas notwithstanding. */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(hb_timeline_signal(t[i], 2000), 0);
	cf_barrier("signalled");
	cf_barrier("reopened");
	/* A destroyed timeline's slot is free at once. */
	hb_timeline_destroy(t[0]);
	t[0] = hb_timeline_create(c);
	CHECK(t[0] != NULL);
	cf_barrier("done");
	for (int i = 0; i < 4; i++)
		hb_timeline_destroy(t[i]);
}

static void c32_waiter(void)
{
	struct hb_client *c = cf_connect_waits();
	struct hb_sync *s[8], *dup, *born, *more[2];
	struct hb_fence f;
	uint64_t tl[4];
	char key[16];

	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "tl%d", i);
		tl[i] = cf_get_u64(key);
	}
	for (int i = 0; i < 8; i++)
		s[i] = CF_OPEN(c, tl[i % 4], 1 + (uint64_t)i);
	f = (struct hb_fence){.timeline = tl[0], .value = 100};
	CHECK_ERR(hb_sync_open(c, &f), EDQUOT);
	dup = CF_OPEN(c, tl[0], 1); /* the same point: the same wait */
	cf_barrier("waits");
	cf_barrier("reached");
	/* tl3 reached 50: s[3] (4) and s[7] (8) complete; a point below holds no wait. */
	CF_WAIT_DONE(s[3]);
	CF_WAIT_DONE(s[7]);
	born = CF_OPEN(c, tl[3], 40);
	CHECK_EQ(hb_sync_status(born), 1);
	/* Two waits completed: room for exactly two more. */
	more[0] = CF_OPEN(c, tl[1], 1000);
	more[1] = CF_OPEN(c, tl[2], 1000);
	CHECK_ERR(hb_sync_open(c, &f), EDQUOT);
	cf_barrier("more");
	cf_barrier("signalled");
	for (int i = 0; i < 8; i++) {
		CF_WAIT_DONE(s[i]);
		CHECK_EQ(hb_sync_status(s[i]), 1);
	}
	CF_WAIT_DONE(dup);
	CF_WAIT_DONE(more[0]);
	CF_WAIT_DONE(more[1]);
	CF_STAT_BECOMES("fence_waits", 0);
	/* And the quota is whole again. */
	for (int i = 0; i < 8; i++) {
		hb_sync_close(s[i]);
		s[i] = CF_OPEN(c, tl[1 + i % 2], 3000 + (uint64_t)i);
	}
	f = (struct hb_fence){.timeline = tl[1], .value = 9000};
	CHECK_ERR(hb_sync_open(c, &f), EDQUOT);
	cf_barrier("reopened");
	for (int i = 0; i < 8; i++)
		hb_sync_close(s[i]);
	hb_sync_close(dup);
	hb_sync_close(born);
	hb_sync_close(more[0]);
	hb_sync_close(more[1]);
	CF_STAT_BECOMES("fence_waits", 0);
	cf_barrier("done");
}

CF_CASE_IN("limits", c32_resource_limits, {1, c32_owner}, {2, c32_waiter})

/* ---- event_overflow_keeps_oldest, daemon_queue_overflow_keeps_oldest (test_it_events) -------
 * event_queue = 16 and a peer that stops reading: a library client that does not call
 * hb_dispatch (the library reads only when called). The exporter re-exports with a number in
 * the metadata; afterwards the reader gets EXPORTED 0, 1, 2... from the first on, at least 16
 * of them before anything is lost, and wherever events were lost exactly one OVERFLOW, in
 * place (a gap only right after it). Which queue dropped (the daemon's, once the transport is
 * full; the library's, once it read more than 16) depends on the transport's buffers: the
 * small burst may fit them, the big one (2.4 MB) must fill them, so the daemon drops
 * (events_dropped). At the end, once the reader has read everything, one more event arrives
 * as usual. */
#define SENTINEL 0x7fffffff

static void export_numbered(struct hb_buffer *b, uint8_t *meta, size_t len, uint32_t n,
			    struct hb_id *id)
{
	memcpy(meta, &n, sizeof(n));
	CF_EXPORT(b, meta, len, id);
}

static void burst(uint32_t count, size_t meta_len)
{
	static uint8_t meta[HB_META_MAX];
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	long long dropped = cf_stat("events_dropped");
	struct hb_id id;

	cf_barrier("listening");
	for (uint32_t i = 0; i < count; i++)
		export_numbered(b, meta, meta_len, i, &id);
	/* The reader has not read: a burst bigger than its transport must have filled it. */
	if (meta_len * count > 2000000)
		CHECK(cf_stat("events_dropped") > dropped);
	cf_barrier("exported");
	cf_barrier("drained");
	export_numbered(b, meta, meta_len, SENTINEL, &id);
	cf_barrier("done");
	hb_buffer_free(b);
}

/* Reads until the sentinel, checking the order; returns how many were read before the first
 * OVERFLOW. quiet_ms: a pause after which everything sent before is taken as read. */
static uint32_t read_numbered(struct hb_client *c, uint32_t count, size_t meta_len)
{
	uint32_t expect = 0, before = 0, n;
	bool marker = false, any_marker = false, drained = false;
	struct hb_event ev;

	cf_drain(c);
	cf_barrier("listening");
	cf_barrier("exported");
	for (;;) {
		/* Quiet for 3 s: the burst is read; the sentinel follows (or is late: 30 s). */
		if (cf_next_event_at(__FILE__, __LINE__, c, &ev, drained ? CF_WAIT_MS : 3000)) {
			CHECK(!drained);
			drained = true;
			cf_barrier("drained");
			continue;
		}
		if (ev.type == HB_EVENT_OVERFLOW) {
			CHECK(!marker); /* exactly one per loss */
			CHECK_EQ(ev.domain, 0);
			marker = any_marker = true;
			continue;
		}
		if (ev.type != HB_EVENT_EXPORTED)
			cf_fail(__FILE__, __LINE__, "%s after %u, want EXPORTED",
				cf_event_name(ev.type), expect);
		CHECK_EQ(ev.meta_len, meta_len);
		memcpy(&n, ev.meta, sizeof(n));
		if (n == SENTINEL)
			break;
		if (n != expect && !(marker && n > expect))
			cf_fail(__FILE__, __LINE__, "EXPORTED %u after %u (OVERFLOW before: %d)", n,
				expect, marker);
		CHECK(n < count);
		if (!any_marker)
			before++;
		marker = false;
		expect = n + 1;
	}
	if (!drained)
		cf_barrier("drained");
	CHECK(any_marker);
	CHECK(before >= 16);
	CHECK_ERR(hb_next_event(c, &ev), EAGAIN);
	cf_barrier("done");
	return before;
}

static void small_burst(void)
{
	burst(40, 16);
}

static void small_reader(void)
{
	read_numbered(cf_connect(), 40, 16);
}

CF_CASE_IN("limits", event_overflow_keeps_oldest, {1, small_burst}, {2, small_reader})

#define BIG_COUNT 600
#define BIG_META  HB_META_MAX

static void big_burst(void)
{
	burst(BIG_COUNT, BIG_META);
}

static void big_reader(void)
{
	uint32_t before = read_numbered(cf_connect(), BIG_COUNT, BIG_META);

	CHECK(before < BIG_COUNT);
}

CF_CASE_IN("limits", daemon_queue_overflow_keeps_oldest, {1, big_burst}, {2, big_reader})

/* ---- alloc_enospc (test_it_export) ----------------------------------------------------------
 * share = 100% on the group vv (vm1, vm2; 16 MiB = 4096 pages, page 0 the pool's header): vm1
 * fills it exactly, then ENOSPC; another group's pool is unaffected; a free makes room, and
 * the pages come back zeroed. Pool pages: a KVM pool's; Xen has none (below). */
static void enospc_vm1(void)
{
	const size_t four_m = 4u << 20; /* 1024 data pages + 1 directory page */
	struct hb_client *c = cf_connect();
	struct hb_buffer *b[4], *last;

	for (int i = 0; i < 3; i++)
		b[i] = CF_ALLOC(c, 2, four_m, 0);
	CHECK_EQ(cf_stat("pages_used"), 3 * 1025);
	/* 4095 - 3075 = 1020 pages left. */
	CHECK_ERR(hb_buffer_alloc(c, 2, four_m, 0), ENOSPC);
	CHECK_ERR(hb_buffer_alloc(c, 2, 1020 * 4096, 0), ENOSPC); /* + 1 directory page */
	last = CF_ALLOC(c, 2, 1019 * 4096, 0);
	CHECK_EQ(cf_stat("pages_used"), 4095);
	CHECK_ERR(hb_buffer_alloc(c, 2, 1, 0), ENOSPC);
	/* The group with the host is another pool: unaffected. */
	b[3] = CF_ALLOC(c, 0, four_m, 0);
	hb_buffer_free(b[3]);
	/* Freeing makes room again. */
	hb_buffer_free(b[1]);
	CF_STAT_BECOMES("pages_used", 2 * 1025 + 1020);
	b[1] = CF_ALLOC(c, 2, four_m, 0);
	for (size_t i = 0; i < four_m; i++) {
		if (((const uint8_t *)hb_buffer_data(b[1]))[i] != 0)
			cf_fail(__FILE__, __LINE__, "byte %zu of a reused buffer is not zero", i);
	}
	for (int i = 0; i < 3; i++)
		hb_buffer_free(b[i]);
	hb_buffer_free(last);
	CF_STAT_BECOMES("pages_used", 0);
}

CF_CASE_IN_EXCEPT("share100", alloc_enospc, CF_XEN,
		  "Xen grants have no pool to fill: a domain's pages are bounded by its grant "
		  "budget and gntalloc limit (test_sh_xen limits_clear_errors)",
		  {1, enospc_vm1})
