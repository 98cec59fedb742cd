/*
 * Conformance cases: allocation errors, unexport delays, hids (ported from test_it_export;
 * docs/TESTING.md lists them, and the cases that stay host-side). Written once for every
 * target (tests/conform/conform.h). Delays are long enough that a slow guest still makes its
 * checks inside them; a check that depends on being inside one says so when it is not.
 */
#include <time.h>

#include "tests/conform/conform.h"

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- alloc_einval (test_it_export) ----------------------------------------------------------
 * Size 0, this domain as the peer, unknown flags: EINVAL, from every domain, and nothing
 * allocated (the hub's counters after the case). */
static void einval_role(void)
{
	struct hb_client *c = cf_connect();
	uint32_t other = cf_domain() == 2 ? 1 : 2;

	CHECK_ERR(hb_buffer_alloc(c, other, 0, 0), EINVAL);
	CHECK_ERR(hb_buffer_alloc(c, cf_domain(), 4096, 0), EINVAL);
	CHECK_ERR(hb_buffer_alloc(c, cf_domain(), 0, 0), EINVAL);
	CHECK_ERR(hb_buffer_alloc(c, other, 4096, 0x80), EINVAL);
	CHECK_ERR(hb_buffer_alloc(c, other, 4096, ~HB_BUFFER_PEER_WRITABLE), EINVAL);
}

CF_CASE(alloc_einval, {0, einval_role}, {1, einval_role}, {2, einval_role})

/* ---- alloc_enodev_efbig (test_it_export alloc_eperm_enodev_efbig) ---------------------------
 * No such domain: ENODEV; larger than any pool the two share or any grant budget: EFBIG. (The original's EPERM
 * needs two domains without a group: every two domains share one here.) */
static void enodev_role(void)
{
	struct hb_client *c = cf_connect();
	uint32_t other = cf_domain() == 2 ? 1 : 2;

	CHECK_ERR(hb_buffer_alloc(c, 99, 4096, 0), ENODEV);
	CHECK_ERR(hb_buffer_alloc(c, 4, 4096, 0), ENODEV);
	CHECK_ERR(hb_buffer_alloc(c, 0xffffffffu, 4096, 0), ENODEV);
	/* Over any pool (KVM: 16 MiB groups here) and any grant budget (Xen: 3/4 of a domain's
	 * grant table, 96 MiB by default). */
	CHECK_ERR(hb_buffer_alloc(c, other, 1u << 30, 0), EFBIG);
	CHECK_ERR(hb_buffer_alloc(c, other, (size_t)1 << 40, 0), EFBIG);
	CHECK_ERR(hb_buffer_alloc(c, other, SIZE_MAX, 0), EFBIG);
}

CF_CASE(alloc_enodev_efbig, {0, enodev_role}, {1, enodev_role}, {2, enodev_role})

/* ---- unexport_delay_honoured (test_it_export) -----------------------------------------------
 * During an unexport's delay the buffer is still importable and marked pending (until the
 * delay passed, on the exporter's clock); UNEXPORTED comes; then it is ENOENT, and the imports made
 * before and during the delay stay valid. (8 s, the original 3 s: a guest under TCG must make its
 * checks inside it.) */
#define DELAY_MS 8000

static void delay_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 8192, 0);
	struct hb_info info;
	struct hb_id id;
	uint64_t t0;

	cf_fill(hb_buffer_data(b), 8192, 5);
	cf_barrier("listening");
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	cf_barrier("imported");
	t0 = ms_now();
	CHECK_EQ(hb_unexport(c, &id, DELAY_MS), 0);
	cf_put("unexporting", "1");
	/* Pending until the delay passed, on this side's clock (the daemon's delay started
	 * after t0). */
	for (;;) {
		CHECK_EQ(hb_query(c, &id, &info), 0);
		if (info.flags & HB_INFO_UNEXPORTED)
			break;
		CHECK(info.flags & HB_INFO_UNEXPORT_PENDING);
		if (ms_now() - t0 > DELAY_MS + CF_WAIT_MS)
			cf_fail(__FILE__, __LINE__, "still not unexported");
		cf_sleep_ms(50); /* polling a state, not waiting for an event */
	}
	CHECK(ms_now() - t0 >= DELAY_MS - 100); /* the original's slack */
	CHECK(!(info.flags & HB_INFO_UNEXPORT_PENDING));
	cf_barrier("unexported");
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.importers, 2);
	cf_barrier("counted");
	cf_barrier("done");
	hb_buffer_free(b);
}

static void delay_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im1, *im2;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;
	uint64_t t0;

	cf_drain(c);
	cf_barrier("listening");
	cf_get_id("id", &id);
	CF_WAIT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	im1 = CF_IMPORT(c, &id, 0);
	cf_barrier("imported");
	cf_get("unexporting");
	t0 = ms_now(); /* after the unexport: the delay ends no sooner than DELAY_MS from here */
	im2 = CF_IMPORT(c, &id, 0);
	CF_CHECK_PATTERN(hb_import_data(im2), 8192, 5);
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK(info.flags & HB_INFO_UNEXPORT_PENDING);
	CHECK(!(info.flags & HB_INFO_UNEXPORTED));
	/* Too slow a target fails here with a clear message, not on a check above. */
	if (ms_now() - t0 >= DELAY_MS - 500)
		cf_fail(__FILE__, __LINE__, "the checks took %llu ms: not inside the delay",
			(unsigned long long)(ms_now() - t0));
	if (cf_next_event_at(__FILE__, __LINE__, c, &ev, DELAY_MS + CF_WAIT_MS) != 0)
		cf_fail(__FILE__, __LINE__, "no UNEXPORTED event");
	CHECK_EQ(ev.type, HB_EVENT_UNEXPORTED);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	CF_CHECK_PATTERN(hb_import_data(im1), 8192, 5);
	CF_CHECK_PATTERN(hb_import_data(im2), 8192, 5);
	cf_barrier("unexported");
	cf_barrier("counted"); /* the exporter counted our two imports */
	hb_import_release(im1);
	hb_import_release(im2);
	cf_barrier("done");
}

CF_CASE(unexport_delay_honoured, {1, delay_exporter}, {2, delay_peer})

/* ---- unexport_twice_keeps_first_delay (test_it_export) --------------------------------------
 * A second unexport, with delay 0, does not cut the first one's delay short; exactly one
 * UNEXPORTED comes, after it. */
static void twice_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_info info;
	struct hb_id id;
	uint64_t t0;

	cf_barrier("listening");
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	cf_barrier("seen");
	t0 = ms_now();
	CHECK_EQ(hb_unexport(c, &id, DELAY_MS), 0);
	CHECK_EQ(hb_unexport(c, &id, 0), 0); /* does not cut the delay short */
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK(info.flags & HB_INFO_UNEXPORT_PENDING);
	cf_put("unexporting", "1");
	do {
		CHECK_EQ(hb_query(c, &id, &info), 0);
		if (ms_now() - t0 > DELAY_MS + CF_WAIT_MS)
			cf_fail(__FILE__, __LINE__, "still not unexported");
		if (!(info.flags & HB_INFO_UNEXPORTED))
			cf_sleep_ms(50); /* polling a state, not waiting for an event */
	} while (!(info.flags & HB_INFO_UNEXPORTED));
	CHECK(ms_now() - t0 >= DELAY_MS - 100); /* the original's slack */
	cf_barrier("done");
	hb_buffer_free(b);
}

static void twice_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;

	cf_drain(c);
	cf_barrier("listening");
	cf_get_id("id", &id);
	CF_WAIT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	cf_barrier("seen");
	cf_get("unexporting");
	im = CF_IMPORT(c, &id, 0); /* still inside the delay */
	if (cf_next_event_at(__FILE__, __LINE__, c, &ev, DELAY_MS + CF_WAIT_MS) != 0)
		cf_fail(__FILE__, __LINE__, "no UNEXPORTED event");
	CHECK_EQ(ev.type, HB_EVENT_UNEXPORTED);
	CF_EXPECT_QUIET(c, 300); /* exactly one */
	hb_import_release(im);
	cf_barrier("done");
}

CF_CASE(unexport_twice_keeps_first_delay, {1, twice_exporter}, {2, twice_peer})

/* ---- reexport_cancels_pending_unexport (test_it_export) -------------------------------------
 * A re-export during an unexport's delay cancels it: the same id, not pending, a new EXPORTED;
 * well past the cancelled delay no UNEXPORTED came and the buffer is importable. */
static void cancel_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_info info;
	struct hb_id id, id2;

	cf_barrier("listening");
	CF_EXPORT(b, "a", 1, &id);
	cf_put_id("id", &id);
	cf_barrier("seen");
	CHECK_EQ(hb_unexport(c, &id, 1000), 0);
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK(info.flags & HB_INFO_UNEXPORT_PENDING);
	CF_EXPORT(b, "b", 1, &id2);
	CHECK(hb_id_equal(&id, &id2));
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK(!(info.flags & (HB_INFO_UNEXPORT_PENDING | HB_INFO_UNEXPORTED)));
	cf_barrier("done");
	hb_buffer_free(b);
}

static void cancel_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	cf_drain(c);
	cf_barrier("listening");
	cf_get_id("id", &id);
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	cf_barrier("seen");
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.meta[0], 'b');
	/* Well past the cancelled delay: still exported, no UNEXPORTED. */
	CF_EXPECT_QUIET(c, 2000);
	im = CF_IMPORT(c, &id, 0);
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.flags & (HB_INFO_UNEXPORT_PENDING | HB_INFO_UNEXPORTED), 0);
	hb_import_release(im);
	cf_barrier("done");
}

CF_CASE(reexport_cancels_pending_unexport, {1, cancel_exporter}, {2, cancel_peer})

/* ---- free_cuts_pending_unexport (test_it_export) --------------------------------------------
 * Freeing a buffer whose unexport waits out a 60 s delay unexports it at once. */
static void cut_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_id id;

	cf_barrier("listening");
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	cf_barrier("seen");
	CHECK_EQ(hb_unexport(c, &id, 60000), 0);
	hb_buffer_free(b);
	cf_barrier("done");
}

static void cut_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_event ev;
	struct hb_id id;

	cf_drain(c);
	cf_barrier("listening");
	cf_get_id("id", &id);
	CF_WAIT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	cf_barrier("seen");
	CF_WAIT_EVENT(c, HB_EVENT_UNEXPORTED, &ev); /* within CF_WAIT_MS, half the delay */
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	cf_barrier("done");
}

CF_CASE(free_cuts_pending_unexport, {1, cut_exporter}, {2, cut_peer})

/* ---- export_to_absent_peer (test_it_export) -------------------------------------------------
 * A peer with no session yet can be shared with; it imports when it comes. */
static void absent_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 6000, 0);
	struct hb_id id;

	cf_fill(hb_buffer_data(b), 6000, 8);
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void absent_peer(void)
{
	struct hb_client *c;
	struct hb_import *im;
	struct hb_id id;

	cf_get_id("id", &id); /* not connected before the export */
	c = cf_connect();
	im = CF_IMPORT(c, &id, 0);
	CF_CHECK_PATTERN(hb_import_data(im), 6000, 8);
	hb_import_release(im);
	cf_barrier("done");
}

CF_CASE(export_to_absent_peer, {1, absent_exporter}, {2, absent_peer})

/* ---- hids_are_random (test_it_export) -------------------------------------------------------
 * Hids: a 32-bit serial and at least 96 random bits. Over 64 exports every bit of the random
 * part takes both values (a fixed bit would do so with probability 2^-63). */
static void hids_role(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b[64];
	struct hb_id id[64];
	int ones[128] = {0};

	for (int i = 0; i < 64; i++) {
		b[i] = CF_ALLOC(c, 2, 64, 0);
		CF_EXPORT(b[i], NULL, 0, &id[i]);
		for (int j = 0; j < i; j++)
			CHECK(!hb_id_equal(&id[i], &id[j]));
		for (int bit = 0; bit < 128; bit++)
			ones[bit] += (id[i].bytes[bit / 8] >> (bit % 8)) & 1;
	}
	for (int bit = 32; bit < 128; bit++) {
		if (ones[bit] == 0 || ones[bit] == 64)
			cf_fail(__FILE__, __LINE__, "hid bit %d is always %d", bit,
				ones[bit] ? 1 : 0);
	}
	for (int i = 0; i < 64; i++)
		CHECK(id[i].bytes[0] | id[i].bytes[1] | id[i].bytes[2] | id[i].bytes[3]);
	for (int i = 0; i < 64; i++)
		hb_buffer_free(b[i]);
}

CF_CASE(hids_are_random, {1, hids_role})

/* ---- unexport_after_free_is_noop (test_it_export) -------------------------------------------
 * An unexport after free (the orphan still imported) is a no-op for the exporting domain and
 * EPERM for the peer; the import stays valid; once released the orphan is gone and the
 * unexport ENOENT. (The original's second vm1 session: two clients in a guest.) */
#define ORPHAN_SIZE (3 * 4096 + 5)

static void orphan_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, ORPHAN_SIZE, 0);
	struct hb_id id;

	cf_fill(hb_buffer_data(b), ORPHAN_SIZE, 0x5eed);
	CF_EXPORT(b, "orphan", 6, &id);
	cf_put_id("id", &id);
	cf_barrier("imported");
	hb_buffer_free(b); /* an orphan now: vm2 still maps it */
	CHECK_EQ(hb_unexport(c, &id, 0), 0);
	CHECK_EQ(hb_unexport(c, &id, 100), 0);
	cf_barrier("freed");
	cf_barrier("released");
	CF_STAT_BECOMES("buffers_orphaned", 0);
	CHECK_ERR(hb_unexport(c, &id, 0), ENOENT); /* gone with its pages */
}

static void orphan_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_info info;
	struct hb_id id;

	cf_get_id("id", &id);
	im = CF_IMPORT(c, &id, 0);
	cf_barrier("imported");
	cf_barrier("freed");
	CHECK_ERR(hb_unexport(c, &id, 0), EPERM); /* the peer still may not */
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK(info.flags & HB_INFO_UNEXPORTED);
	CHECK_EQ(info.importers, 1);
	CF_CHECK_PATTERN(hb_import_data(im), ORPHAN_SIZE, 0x5eed);
	CHECK_EQ(cf_stat("buffers_orphaned"), 1);
	hb_import_release(im);
	cf_barrier("released");
}

CF_CASE(unexport_after_free_is_noop, {1, orphan_exporter}, {2, orphan_peer})

/* ---- pool_share_is_fair (test_it_export) ----------------------------------------------------
 * Each member of a group may hold half of its pool: in a 16 MiB group (4095 pages), 2047 pages
 * each. vm1 cannot take 8 MiB (2048 data pages and a directory), takes 7 MiB and then no 1 MiB
 * more; vm2's half is all there. (The original's group is 128 MiB and it reads the daemon's log
 * line, a host file.) The share is the KVM backend's (its ivshmem pools). */
static void fair_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;

	CHECK_ERR(hb_buffer_alloc(c, 2, 8u << 20, 0), EDQUOT);
	b = CF_ALLOC(c, 2, 7u << 20, 0);
	CHECK_ERR(hb_buffer_alloc(c, 2, 1u << 20, 0), EDQUOT);
	cf_barrier("vm1-full");
	cf_barrier("done");
	hb_buffer_free(b);
}

static void fair_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;

	cf_barrier("vm1-full");
	b = CF_ALLOC(c, 1, 7u << 20, 0);
	cf_barrier("done");
	hb_buffer_free(b);
}

CF_CASE_EXCEPT(pool_share_is_fair, CF_XEN, "pool shares are the KVM backend's (ivshmem pools)",
	       {1, fair_vm1}, {2, fair_vm2})

/* ---- forged_hids (test_it_hostile) ----------------------------------------------------------
 * Forged hids through the library, from both sides of a share: random ones, and the real one
 * with any one bit of its 96 random bits flipped, are ENOENT for import, query and unexport;
 * the real one is untouched by all that. */
static void forge_id(struct hb_id *f, uint64_t *seed)
{
	for (size_t i = 0; i < sizeof(f->bytes); i++) {
		*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
		f->bytes[i] = (uint8_t)(*seed >> 56);
	}
}

static void forged_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_info info;
	struct hb_id id, f;
	uint64_t seed = 0xf0f0;

	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	for (int i = 0; i < 100; i++) {
		forge_id(&f, &seed);
		CHECK_ERR(hb_query(c, &f, &info), ENOENT);
		CHECK_ERR(hb_unexport(c, &f, 0), ENOENT);
	}
	for (int i = 32; i < 128; i++) {
		f = id;
		f.bytes[i / 8] ^= (uint8_t)(1u << (i % 8));
		CHECK_ERR(hb_unexport(c, &f, 0), ENOENT);
	}
	cf_barrier("forged");
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.flags, 0);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void forged_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_info info;
	struct hb_id id, f;
	uint64_t seed = 0x0f0f;

	cf_get_id("id", &id);
	for (int i = 0; i < 100; i++) {
		forge_id(&f, &seed);
		CHECK_ERR(hb_import(c, &f, 0), ENOENT);
	}
	for (int i = 32; i < 128; i++) {
		f = id;
		f.bytes[i / 8] ^= (uint8_t)(1u << (i % 8));
		CHECK_ERR(hb_import(c, &f, 0), ENOENT);
		CHECK_ERR(hb_query(c, &f, &info), ENOENT);
	}
	cf_barrier("forged");
	im = CF_IMPORT(c, &id, 0);
	hb_import_release(im);
	cf_barrier("done");
}

CF_CASE(forged_hids, {1, forged_exporter}, {2, forged_peer})
