/*
 * Conformance cases: export and events (ported from test_it_export and test_it_events;
 * docs/TESTING.md lists them). Written once for every target (tests/conform/conform.h). A
 * role that expects events connects and drains before the barrier "connected", so that it
 * cannot miss the first.
 */
#include "tests/conform/conform.h"

static struct hb_client *connect_ready(void)
{
	struct hb_client *c = cf_connect();

	cf_drain(c);
	cf_barrier("connected");
	return c;
}

/* ---- reexport_same_id_new_metadata (test_it_export) -----------------------------------------
 * A re-export keeps the id and replaces the metadata (a shorter one does not overlay); the
 * peer hears each, and query and import see the latest. */
static void reexp_vm1(void)
{
	struct hb_client *c = connect_ready();
	struct hb_buffer *b = CF_ALLOC(c, 2, 10000, 0);
	struct hb_info info;
	struct hb_id id, id2;

	CF_EXPORT(b, "frame-1", 7, &id);
	cf_put_id("id", &id);
	cf_get("heard-1");
	CF_EXPORT(b, "frame-22", 8, &id2);
	CHECK(hb_id_equal(&id, &id2));
	cf_get("imported");
	CF_EXPORT(b, "f3", 2, &id2);
	CHECK(hb_id_equal(&id, &id2));
	memset(&info, 0x5a, sizeof(info));
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.meta_len, 2);
	CHECK(memcmp(info.meta, "f3", 2) == 0);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void reexp_vm2(void)
{
	struct hb_client *c = connect_ready();
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;
	char got[16];

	cf_get_id("id", &id);
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);
	CHECK_EQ(ev.size, 10000);
	CHECK_EQ(ev.meta_len, 7);
	CHECK(memcmp(ev.meta, "frame-1", 7) == 0);
	cf_put("heard-1", "1");
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.meta_len, 8);
	CHECK(memcmp(ev.meta, "frame-22", 8) == 0);
	memset(&info, 0x5a, sizeof(info));
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.meta_len, 8);
	CHECK(memcmp(info.meta, "frame-22", 8) == 0);
	im = CF_IMPORT(c, &id, 0);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 8);
	CHECK(memcmp(got, "frame-22", 8) == 0);
	cf_put("imported", "1");
	cf_barrier("done");
	hb_import_release(im);
}

CF_CASE(reexport_same_id_new_metadata, {1, reexp_vm1}, {2, reexp_vm2})

/* ---- unexport_zero_delay_and_new_id (test_it_export) ----------------------------------------
 * An unexport without delay is heard at once and the id is gone; a second unexport is a
 * no-op; exporting the buffer again gives a fresh id with the same content. */
static void unexp_vm1(void)
{
	struct hb_client *c = connect_ready();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_id id, id2;

	cf_fill(hb_buffer_data(b), 4096, 77);
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	cf_get("heard");
	CHECK_EQ(hb_unexport(c, &id, 0), 0);
	cf_get("gone");
	CHECK_EQ(hb_unexport(c, &id, 0), 0);
	CHECK_EQ(hb_unexport(c, &id, 500), 0);
	cf_barrier("quiet");
	CF_EXPORT(b, NULL, 0, &id2);
	CHECK(!hb_id_equal(&id, &id2));
	cf_put_id("id2", &id2);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void unexp_vm2(void)
{
	struct hb_client *c = connect_ready();
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id, id2;

	cf_get_id("id", &id);
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	cf_put("heard", "1");
	CF_EXPECT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	cf_put("gone", "1");
	CF_EXPECT_QUIET(c, 200);
	cf_barrier("quiet");
	cf_get_id("id2", &id2);
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	im = CF_IMPORT(c, &id2, 0);
	CF_CHECK_PATTERN(hb_import_data(im), 4096, 77);
	hb_import_release(im);
	cf_barrier("done");
}

CF_CASE(unexport_zero_delay_and_new_id, {1, unexp_vm1}, {2, unexp_vm2})

/* ---- event_lifecycle_fields (test_it_events) ------------------------------------------------
 * EXPORTED to the peer with id, domain, size and metadata; IMPORTED to the exporter on every
 * import; RELEASED only when the peer's last import goes; UNEXPORTED to the peer; nobody else
 * (the host) hears anything. (One session per domain: a guest's second session would need a
 * second port; the original's second sessions are emulated-only.) */
static void life_vm1(void)
{
	struct hb_client *c = connect_ready();
	struct hb_buffer *b = CF_ALLOC(c, 2, 7777, 0);
	struct hb_event ev;
	struct hb_id id;

	CF_EXPORT(b, "hello", 5, &id);
	cf_put_id("id", &id);
	for (int i = 0; i < 2; i++) {
		CF_EXPECT_EVENT(c, HB_EVENT_IMPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &id));
		CHECK_EQ(ev.domain, 2);
		CHECK_EQ(ev.size, 7777);
	}
	cf_put("imported", "1");
	cf_get("released-one");
	CF_EXPECT_QUIET(c, 300);
	cf_put("quiet", "1");
	CF_EXPECT_EVENT(c, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 2);
	CHECK_EQ(hb_unexport(c, &id, 0), 0);
	cf_barrier("unexported");
	CF_EXPECT_QUIET(c, 100);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void life_vm2(void)
{
	struct hb_client *c = connect_ready();
	struct hb_import *im1, *im2;
	struct hb_event ev;
	struct hb_id id;

	cf_get_id("id", &id);
	CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);
	CHECK_EQ(ev.size, 7777);
	CHECK_EQ(ev.meta_len, 5);
	CHECK(memcmp(ev.meta, "hello", 5) == 0);
	im1 = CF_IMPORT(c, &id, 0);
	im2 = CF_IMPORT(c, &id, 0);
	cf_get("imported");
	hb_import_release(im1);
	cf_put("released-one", "1");
	cf_get("quiet");
	hb_import_release(im2);
	cf_barrier("unexported");
	CF_EXPECT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);
	CF_EXPECT_QUIET(c, 100);
	cf_barrier("done");
}

static void life_host(void)
{
	struct hb_client *c = connect_ready();

	cf_barrier("unexported");
	CF_EXPECT_QUIET(c, 100);
	cf_barrier("done");
}

CF_CASE(event_lifecycle_fields, {1, life_vm1}, {2, life_vm2}, {0, life_host})

/* ---- events_keep_order (test_it_events) -----------------------------------------------------
 * Five exports are heard in order, and the five unexports of their frees too. */
static void order_vm1(void)
{
	struct hb_client *c = connect_ready();
	struct hb_buffer *b[5];
	struct hb_id id;
	char m[16];

	for (int i = 0; i < 5; i++) {
		b[i] = CF_ALLOC(c, 2, 4096 * (size_t)(i + 1), 0);
		snprintf(m, sizeof(m), "m%d", i);
		CF_EXPORT(b[i], m, strlen(m), &id);
		snprintf(m, sizeof(m), "id%d", i);
		cf_put_id(m, &id);
	}
	cf_get("heard");
	for (int i = 4; i >= 0; i--)
		hb_buffer_free(b[i]);
	cf_barrier("done");
}

static void order_vm2(void)
{
	struct hb_client *c = connect_ready();
	struct hb_event ev;
	struct hb_id id[5];
	char key[16];

	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "id%d", i);
		cf_get_id(key, &id[i]);
	}
	for (int i = 0; i < 5; i++) {
		CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &id[i]));
		CHECK_EQ(ev.size, 4096 * (i + 1));
		CHECK_EQ(ev.meta[1], '0' + i);
	}
	cf_put("heard", "1");
	for (int i = 4; i >= 0; i--) {
		CF_EXPECT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &id[i]));
	}
	cf_barrier("done");
}

CF_CASE(events_keep_order, {1, order_vm1}, {2, order_vm2})

/* ---- domain_gone (test_it_events) -----------------------------------------------------------
 * A VM whose last session ends while no ivshmem connection is bound to it is gone for every
 * domain it shares a group with (PROTOCOL.md §6): vm2 goes, the host and vm1 hear DOMAIN_GONE
 * naming it. (The original's vm3, which shares nothing with vm1, and its "nobody else hears"
 * checks need a topology the conformance one is not.) Not on QEMU: there QEMU holds the
 * ivshmem connections, so the domain goes only with QEMU, which lives for the whole run. Not
 * on Xen: a domU is gone when it dies (test_sh_xen's domain_destroyed). */
static void gone_vm2(void)
{
	struct hb_client *c = connect_ready();

	(void)c;
	/* The role's client is disconnected when it returns. */
}

static void gone_watcher(void)
{
	struct hb_client *c = connect_ready();
	struct hb_event ev;

	CF_WAIT_EVENT(c, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 2);
}

CF_CASE_EXCEPT(
    domain_gone, CF_QEMU | CF_XEN,
    "a guest's domain is gone only when the guest ends (KVM: its QEMU exits, PROTOCOL.md "
    "6; Xen: the domain dies, docs/XEN.md), not when its last process disconnects; the "
    "guests live for the whole run",
    {2, gone_vm2}, {1, gone_watcher}, {0, gone_watcher})
