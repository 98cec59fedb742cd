/*
 * Conformance cases on the "limits" config variant (tests/conform/variants.c): the per-domain
 * quotas of [limits] (hyperbuf.conf(5)) for pages, exports, imports and metadata, from
 * test_it_export and test_it_import. Each case runs on a daemon with pages_per_domain = 100,
 * exports_per_domain = 4, imports_per_domain = 3, meta_max = 4096 (and the fence and event
 * limits of cases_limits_more.c). A guest has one client per role, so "per domain, not per
 * session" is left to the originals (docs/TESTING.md).
 */
#include "tests/conform/conform.h"

#define PAGE 4096

/* ---- alloc_edquot_pages (test_it_export) ----------------------------------------------------
 * pages_per_domain = 100: counted over every peer of the domain; EDQUOT past it, room again
 * after a free; another domain has a quota of its own. */
static void pages_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *a, *b, *d;

	a = CF_ALLOC(c, 2, 50 * PAGE, 0);
	CHECK_ERR(hb_buffer_alloc(c, 2, 60 * PAGE, 0), EDQUOT);
	CHECK_ERR(hb_buffer_alloc(c, 0, 60 * PAGE, 0), EDQUOT);
	CHECK_ERR(hb_buffer_alloc(c, 2, 200 * PAGE, 0), EDQUOT);
	b = CF_ALLOC(c, 0, 40 * PAGE, 0);
	CHECK_ERR(hb_buffer_alloc(c, 2, 20 * PAGE, 0), EDQUOT);
	/* vm2 is not held back by vm1's pages. */
	cf_barrier("vm1_full");
	cf_barrier("vm2_done");
	hb_buffer_free(a);
	CF_STAT_BECOMES("buffers", 1);
	d = CF_ALLOC(c, 2, 50 * PAGE, 0);
	hb_buffer_free(b);
	hb_buffer_free(d);
	CF_STAT_BECOMES("pages_used", 0);
}

static void pages_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;

	cf_barrier("vm1_full");
	b = CF_ALLOC(c, 1, 90 * PAGE, 0);
	CHECK_ERR(hb_buffer_alloc(c, 0, 20 * PAGE, 0), EDQUOT);
	hb_buffer_free(b);
	CF_STAT_BECOMES("buffers", 2);
	cf_barrier("vm2_done");
}

CF_CASE_IN("limits", alloc_edquot_pages, {1, pages_vm1}, {2, pages_vm2})

/* ---- export_edquot (test_it_export) ---------------------------------------------------------
 * exports_per_domain = 4: the fifth export of a domain (to any peer) is EDQUOT; a re-export is
 * not a new export; an unexport makes room; another domain has a quota of its own. */
static void exports_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b[6];
	struct hb_id id[6], again;

	for (int i = 0; i < 6; i++)
		b[i] = CF_ALLOC(c, i % 2 ? 0 : 2, PAGE, 0);
	for (int i = 0; i < 4; i++)
		CF_EXPORT(b[i], NULL, 0, &id[i]);
	CHECK_ERR(hb_export(b[4], NULL, 0, 0, &id[4]), EDQUOT);
	CHECK_ERR(hb_export(b[5], "m", 1, 0, &id[5]), EDQUOT);
	/* A re-export is not a new export. */
	CF_EXPORT(b[3], "again", 5, &again);
	CHECK(hb_id_equal(&again, &id[3]));
	CHECK_EQ(cf_stat("exports"), 4);
	cf_barrier("vm1_full");
	cf_barrier("vm2_done");
	/* Withdrawing one makes room. */
	CHECK_EQ(hb_unexport(c, &id[0], 0), 0);
	CF_STAT_BECOMES("exports", 3);
	CF_EXPORT(b[4], NULL, 0, &id[4]);
	CHECK_ERR(hb_export(b[5], NULL, 0, 0, &id[5]), EDQUOT);
	for (int i = 0; i < 6; i++)
		hb_buffer_free(b[i]);
	CF_STAT_BECOMES("exports", 0);
}

static void exports_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;
	struct hb_id id;

	cf_barrier("vm1_full");
	b = CF_ALLOC(c, 0, PAGE, 0);
	CF_EXPORT(b, NULL, 0, &id);
	hb_buffer_free(b);
	CF_STAT_BECOMES("exports", 4);
	cf_barrier("vm2_done");
}

CF_CASE_IN("limits", export_edquot, {1, exports_vm1}, {2, exports_vm2})

/* ---- imports_per_domain_edquot (test_it_import) ---------------------------------------------
 * imports_per_domain = 3: counted per import (the same buffer twice is two) and per domain;
 * EDQUOT past it; a release makes room; another domain has a quota of its own. 3 imports of 4
 * exports (exports_per_domain = 4 here), not 5 of 6. */
#define IMPORTS 3

static void imports_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b[IMPORTS + 1];
	struct hb_import *back;
	struct hb_id id;
	char key[16];

	for (int i = 0; i <= IMPORTS; i++) {
		b[i] = CF_ALLOC(c, 2, PAGE + (size_t)i, 0);
		cf_fill(hb_buffer_data(b[i]), PAGE + (size_t)i, 0x1000 + (uint64_t)i);
		CF_EXPORT(b[i], NULL, 0, &id);
		snprintf(key, sizeof(key), "id%d", i);
		cf_put_id(key, &id);
	}
	/* vm1's own quota: vm2's imports do not count against it. */
	cf_get_id("back", &id);
	back = CF_IMPORT(c, &id, 0);
	hb_import_release(back);
	cf_barrier("done");
	for (int i = 0; i <= IMPORTS; i++)
		hb_buffer_free(b[i]);
}

static void imports_importer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im[IMPORTS + 1];
	struct hb_id id[IMPORTS + 1], back_id;
	struct hb_buffer *back;
	char key[16];

	for (int i = 0; i <= IMPORTS; i++) {
		snprintf(key, sizeof(key), "id%d", i);
		cf_get_id(key, &id[i]);
	}
	for (int i = 0; i < IMPORTS; i++)
		im[i] = CF_IMPORT(c, &id[i], 0);
	CHECK_ERR(hb_import(c, &id[IMPORTS], 0), EDQUOT);
	CHECK_ERR(hb_import(c, &id[0], 0), EDQUOT); /* per import, not per buffer */
	CHECK_EQ(cf_stat("imports"), IMPORTS);
	back = CF_ALLOC(c, 1, PAGE, 0);
	CF_EXPORT(back, NULL, 0, &back_id);
	cf_put_id("back", &back_id);
	/* One released: importing works again (the release is ordered before the import). */
	hb_import_release(im[0]);
	im[IMPORTS] = CF_IMPORT(c, &id[IMPORTS], 0);
	CF_CHECK_PATTERN(hb_import_data(im[IMPORTS]), PAGE + IMPORTS, 0x1000 + IMPORTS);
	CHECK_ERR(hb_import(c, &id[0], 0), EDQUOT);
	for (int i = 1; i <= IMPORTS; i++)
		hb_import_release(im[i]);
	cf_barrier("done");
	hb_buffer_free(back);
	CF_STAT_BECOMES("imports", 0);
}

CF_CASE_IN("limits", imports_per_domain_edquot, {1, imports_exporter}, {2, imports_importer})

/* ---- export_metadata_meta_max_4096 (test_it_export) -----------------------------------------
 * meta_max = 4096: HB_META_MAX bytes of metadata go through whole (event, query, import), one
 * more is EMSGSIZE. */
static uint8_t meta_byte(size_t i)
{
	return (uint8_t)(i ^ (i >> 8));
}

static void meta_exporter(void)
{
	static uint8_t meta[HB_META_MAX + 1];
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;
	struct hb_info info;
	struct hb_id id;

	for (size_t i = 0; i < sizeof(meta); i++)
		meta[i] = meta_byte(i);
	b = CF_ALLOC(c, 2, PAGE, 0);
	cf_barrier("listening");
	CHECK_ERR(hb_export(b, meta, HB_META_MAX + 1, 0, &id), EMSGSIZE);
	CF_EXPORT(b, meta, HB_META_MAX, &id);
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.meta_len, HB_META_MAX);
	CHECK(memcmp(info.meta, meta, HB_META_MAX) == 0);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void meta_importer(void)
{
	static uint8_t got[HB_META_MAX + 8];
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;

	cf_drain(c);
	cf_barrier("listening");
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.meta_len, HB_META_MAX);
	for (size_t i = 0; i < HB_META_MAX; i++) {
		if (((const uint8_t *)ev.meta)[i] != meta_byte(i))
			cf_fail(__FILE__, __LINE__, "the event's metadata differs at byte %zu", i);
	}
	CHECK_EQ(hb_query(c, &ev.id, &info), 0);
	CHECK_EQ(info.meta_len, HB_META_MAX);
	im = CF_IMPORT(c, &ev.id, 0);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), HB_META_MAX);
	for (size_t i = 0; i < HB_META_MAX; i++) {
		if (got[i] != meta_byte(i))
			cf_fail(__FILE__, __LINE__, "the import's metadata differs at byte %zu", i);
	}
	hb_import_release(im);
	CF_EXPECT_QUIET(c, 200);
	cf_barrier("done");
}

CF_CASE_IN("limits", export_metadata_meta_max_4096, {1, meta_exporter}, {2, meta_importer})
