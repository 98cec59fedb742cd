/*
 * Conformance cases: exports (ported from test_it_export; docs/TESTING.md lists them). Written
 * once for every target (tests/conform/conform.h).
 */
#include "tests/conform/conform.h"

static void query(struct hb_client *c, const struct hb_id *id, struct hb_info *info)
{
	memset(info, 0x5a, sizeof(*info));
	CHECK_EQ(hb_query(c, id, info), 0);
}

static struct hb_client *connect_ready(void)
{
	struct hb_client *c = cf_connect();

	cf_drain(c);
	cf_barrier("connected");
	return c;
}

/* ---- unexport_errors ------------------------------------------------------------------------
 * ENOENT for an unknown or all-zero id; EPERM for the peer, which sees the export but may not
 * withdraw it; ENOENT for a domain that cannot see it (the host, for vm1 -> vm2). Nothing
 * changed; freeing the buffer then unexports it at once. (The original's second vm1 session,
 * EPERM too, needs two clients in one guest.) */
static void unerr_vm1(void)
{
	struct hb_client *c = connect_ready();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_info info;
	struct hb_id id, bad;

	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	memset(&bad, 0x3c, sizeof(bad));
	CHECK_ERR(hb_unexport(c, &bad, 0), ENOENT);
	memset(&bad, 0, sizeof(bad));
	CHECK_ERR(hb_unexport(c, &bad, 0), ENOENT);
	cf_barrier("tried");
	query(c, &id, &info);
	CHECK_EQ(info.flags & (HB_INFO_UNEXPORT_PENDING | HB_INFO_UNEXPORTED), 0);
	hb_buffer_free(b);
	cf_barrier("done");
}

static void unerr_vm2(void)
{
	struct hb_client *c = connect_ready();
	struct hb_event ev;
	struct hb_id id;

	cf_get_id("id", &id);
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK_ERR(hb_unexport(c, &id, 0), EPERM);
	cf_barrier("tried");
	CF_EXPECT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	cf_barrier("done");
}

static void unerr_host(void)
{
	struct hb_client *c = connect_ready();
	struct hb_id id;

	cf_get_id("id", &id);
	CHECK_ERR(hb_unexport(c, &id, 0), ENOENT);
	cf_barrier("tried");
	cf_barrier("done");
}

CF_CASE(unexport_errors, {1, unerr_vm1}, {2, unerr_vm2}, {0, unerr_host})

/* ---- export_flags_einval --------------------------------------------------------------------
 * Unknown export flags are EINVAL, in every domain, and export nothing. */
static void flags_role(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, cf_domain() == 2 ? 0 : cf_domain() + 1, 4096, 0);
	struct hb_id id;

	/* HB_EXPORT_NOWAIT (1) is the one flag. */
	CHECK_ERR(hb_export(b, NULL, 0, 2, &id), EINVAL);
	CHECK_ERR(hb_export(b, NULL, 0, 0x80000000u, &id), EINVAL);
	cf_barrier("tried");
	if (cf_domain() == 0)
		CHECK_EQ(cf_stat("exports"), 0);
	cf_barrier("done");
	hb_buffer_free(b);
}

CF_CASE(export_flags_einval, {0, flags_role}, {1, flags_role}, {2, flags_role})

/* ---- export_metadata_limits -----------------------------------------------------------------
 * The default meta_max (HB_META_MAX, docs/hyperbuf.conf.5): more is EMSGSIZE and exports
 * nothing; exactly that much and none at all are fine; a refused re-export changes nothing. */
static uint8_t meta[HB_META_MAX + 2];

static void meta_fill(void)
{
	for (size_t i = 0; i < sizeof(meta); i++)
		meta[i] = (uint8_t)(i * 7 + 1);
}

static void limits_vm1(void)
{
	struct hb_client *c = connect_ready();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0), *b2 = CF_ALLOC(c, 2, 4096, 0);
	struct hb_id id, id2;

	meta_fill();
	CHECK_ERR(hb_export(b, meta, HB_META_MAX + 1, 0, &id), EMSGSIZE);
	CHECK_ERR(hb_export(b, meta, HB_META_MAX + 2, 0, &id), EMSGSIZE);
	cf_barrier("refused");
	cf_barrier("quiet");
	CF_EXPORT(b, meta, HB_META_MAX, &id);
	cf_put_id("id", &id);
	CF_EXPORT(b2, NULL, 0, &id2);
	cf_put_id("id2", &id2);
	cf_get("heard");
	CHECK_ERR(hb_export(b, meta + 1, HB_META_MAX + 1, 0, &id2), EMSGSIZE);
	cf_barrier("refused-again");
	cf_barrier("done");
	hb_buffer_free(b);
	hb_buffer_free(b2);
}

static void limits_vm2(void)
{
	struct hb_client *c = connect_ready();
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id, id2;

	meta_fill();
	cf_barrier("refused");
	CF_EXPECT_QUIET(c, 200);
	cf_barrier("quiet");
	cf_get_id("id", &id);
	cf_get_id("id2", &id2);
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.meta_len, HB_META_MAX);
	CHECK(memcmp(ev.meta, meta, HB_META_MAX) == 0);
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	CHECK_EQ(ev.meta_len, 0);
	CHECK(!hb_id_equal(&id, &id2));
	cf_put("heard", "1");
	cf_barrier("refused-again");
	query(c, &id, &info);
	CHECK_EQ(info.meta_len, HB_META_MAX);
	CHECK(memcmp(info.meta, meta, HB_META_MAX) == 0);
	CF_EXPECT_QUIET(c, 200);
	cf_barrier("done");
}

CF_CASE(export_metadata_limits, {1, limits_vm1}, {2, limits_vm2})

/* ---- reexport_counts_only_new_imports -------------------------------------------------------
 * After an unexport, exporting the buffer again gives a new id, and the import made under the
 * old id is not an importer of the new one: releasing it says nothing; an import of the new
 * id is heard (IMPORTED, RELEASED) with the new id. (The original's hyperbufctl listing is the
 * emulated suite's.) */
static void recount_vm1(void)
{
	struct hb_client *c = connect_ready();
	struct hb_buffer *b = CF_ALLOC(c, 2, 8192, 0);
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id1, id2;

	cf_fill(hb_buffer_data(b), 8192, 0x6e6);
	CF_EXPORT(b, NULL, 0, &id1);
	cf_put_id("id1", &id1);
	CF_EXPECT_EVENT(c, HB_EVENT_IMPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id1));
	CHECK_EQ(hb_unexport(c, &id1, 0), 0);
	CF_EXPORT(b, NULL, 0, &id2);
	CHECK(!hb_id_equal(&id1, &id2));
	query(c, &id2, &info);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(info.flags, 0);
	cf_put_id("id2", &id2);
	cf_get("released-old");
	CF_EXPECT_QUIET(c, 500);
	cf_put("quiet", "1");
	CF_EXPECT_EVENT(c, HB_EVENT_IMPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	CHECK_EQ(ev.domain, 2);
	CF_EXPECT_EVENT(c, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	CHECK_EQ(ev.domain, 2);
	query(c, &id2, &info);
	CHECK_EQ(info.importers, 0);
	CF_EXPECT_QUIET(c, 200);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void recount_vm2(void)
{
	struct hb_client *c = connect_ready();
	struct hb_import *old, *im;
	struct hb_info info;
	struct hb_id id1, id2;

	cf_get_id("id1", &id1);
	old = CF_IMPORT(c, &id1, 0);
	cf_get_id("id2", &id2);
	query(c, &id2, &info);
	CHECK_EQ(info.importers, 0);
	CF_CHECK_PATTERN(hb_import_data(old), 8192, 0x6e6);
	hb_import_release(old);
	cf_put("released-old", "1");
	cf_get("quiet");
	im = CF_IMPORT(c, &id2, 0);
	CF_CHECK_PATTERN(hb_import_data(im), 8192, 0x6e6);
	hb_import_release(im);
	cf_barrier("done");
}

CF_CASE(reexport_counts_only_new_imports, {1, recount_vm1}, {2, recount_vm2})
