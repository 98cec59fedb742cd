/*
 * Conformance cases: lifecycles and event delivery (ported from test_it_lifecycle and
 * test_it_events; docs/TESTING.md lists them). Written once for every target
 * (tests/conform/conform.h).
 */
#include "tests/conform/conform.h"

/* ---- share_cycles_leave_nothing (test_it_lifecycle) -----------------------------------------
 * Many share cycles both ways between vm1 and vm2, freeing the exporter's buffer first or
 * the import first, leave nothing in the daemon (the hub's after-case check) and copy nothing.
 * (60 cycles rather than 150: each is two side-channel round trips, slow in a TCG guest.) */
#define CYCLES 60

static void cycles_role(void)
{
	struct hb_client *c = cf_connect();
	uint32_t self = cf_domain(), peer = self == 1 ? 2 : 1;
	char key[32];

	for (int i = 0; i < CYCLES; i++) {
		size_t size = 1 + (size_t)i * 7919;
		uint32_t exporter = i % 2 ? 2 : 1;
		struct hb_id id;

		snprintf(key, sizeof(key), "id-%d", i);
		if (self == exporter) {
			struct hb_buffer *b = CF_ALLOC(c, peer, size, 0);

			cf_fill(hb_buffer_data(b), size, (uint64_t)i);
			CF_EXPORT(b, &i, sizeof(i), &id);
			cf_put_id(key, &id);
			snprintf(key, sizeof(key), "imported-%d", i);
			/* Imported, and for two cycles in three already released: the buffer
			 * goes last, or (every third) first. */
			cf_get(key);
			hb_buffer_free(b);
			snprintf(key, sizeof(key), "freed-%d", i);
			cf_put(key, "1");
		} else {
			struct hb_import *im;
			int meta = -1;

			cf_get_id(key, &id);
			im = CF_IMPORT(c, &id, 0);
			CF_CHECK_PATTERN(hb_import_data(im), size, (uint64_t)i);
			CHECK_EQ(hb_import_metadata(im, &meta, sizeof(meta)), sizeof(meta));
			CHECK_EQ(meta, i);
			if (i % 3 != 0)
				hb_import_release(im);
			snprintf(key, sizeof(key), "imported-%d", i);
			cf_put(key, "1");
			snprintf(key, sizeof(key), "freed-%d", i);
			cf_get(key);
			/* Freed by the exporter first: the mapping still holds the bytes. */
			if (i % 3 == 0) {
				CF_CHECK_PATTERN(hb_import_data(im), size, (uint64_t)i);
				hb_import_release(im);
			}
		}
	}
	cf_barrier("done");
}

static void cycles_host(void)
{
	long long copied = cf_stat("bytes_copied");

	cf_barrier("done");
	/* Zero-copy, whatever the target: nothing the daemon copied. */
	CHECK_EQ(cf_stat("bytes_copied"), copied);
}

CF_CASE(share_cycles_leave_nothing, {1, cycles_role}, {2, cycles_role}, {0, cycles_host})

/* ---- disconnect_with_exports_and_imports (test_it_lifecycle) --------------------------------
 * A client that disconnects holding an export and an import: its buffer is unexported (the
 * importer keeps its mapping and content, the id is gone), its import is released (the
 * exporter hears RELEASED). */
static void disc_vm1(void)
{
	struct hb_client *mine = cf_connect();
	struct hb_buffer *b1 = CF_ALLOC(mine, 2, 9000, 0);
	struct hb_import *im2;
	struct hb_id id1, id2;

	cf_fill(hb_buffer_data(b1), 9000, 1);
	CF_EXPORT(b1, NULL, 0, &id1);
	cf_put_id("id1", &id1);
	cf_get_id("id2", &id2);
	im2 = CF_IMPORT(mine, &id2, 0);
	(void)im2; /* left for the disconnect to release */
	cf_get("imported");
	/* The role returns: its client is disconnected, b1 and im2 with it. */
}

static void disc_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b2 = CF_ALLOC(c, 1, 9000, 0);
	struct hb_import *im1;
	struct hb_event ev;
	struct hb_id id1, id2;

	CF_EXPORT(b2, NULL, 0, &id2);
	cf_put_id("id2", &id2);
	cf_get_id("id1", &id1);
	im1 = CF_IMPORT(c, &id1, 0);
	cf_drain(c);
	cf_put("imported", "1");
	CF_WAIT_EVENT(c, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	CF_CHECK_PATTERN(hb_import_data(im1), 9000, 1);
	CHECK_ERR(hb_import(c, &id1, 0), ENOENT);
	hb_import_release(im1);
	hb_buffer_free(b2);
}

CF_CASE(disconnect_with_exports_and_imports, {1, disc_vm1}, {2, disc_vm2})

/* ---- next_event_eagain (test_it_events) -----------------------------------------------------
 * With nothing queued, hb_next_event says EAGAIN, again and again, in every domain. */
static void eagain_role(void)
{
	struct hb_client *c = cf_connect();
	struct hb_event ev;

	cf_drain(c);
	for (int i = 0; i < 3; i++)
		CHECK_ERR(hb_next_event(c, &ev), EAGAIN);
}

CF_CASE(next_event_eagain, {0, eagain_role}, {1, eagain_role}, {2, eagain_role})

/* ---- events_queued_by_blocking_calls (test_it_events) ---------------------------------------
 * Blocking calls read what arrives while they wait: an event sent before a reply is queued by
 * the call that waits for the reply, and hb_next_event returns it with no hb_dispatch. */
static void queued_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	cf_drain(c);
	cf_barrier("drained");
	b = CF_ALLOC(c, 2, 4096, 0);
	CF_EXPORT(b, "e", 1, &id); /* EXPORTED is on its way to vm2 before vm2 learns the id */
	cf_put_id("id", &id);
	cf_get("imported"); /* IMPORTED is on its way to us before our next reply */
	memset(&info, 0x5a, sizeof(info));
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.importers, 1);
	CHECK_EQ(hb_next_event(c, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_IMPORTED);
	CHECK_EQ(ev.domain, 2);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void queued_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	cf_drain(c);
	cf_barrier("drained");
	cf_get_id("id", &id);
	memset(&info, 0x5a, sizeof(info));
	CHECK_EQ(hb_query(c, &id, &info), 0); /* its reply comes after the event */
	CHECK_EQ(hb_next_event(c, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	CHECK(hb_id_equal(&ev.id, &id));
	im = CF_IMPORT(c, &id, 0);
	cf_put("imported", "1");
	cf_barrier("done");
	hb_import_release(im);
}

CF_CASE(events_queued_by_blocking_calls, {1, queued_vm1}, {2, queued_vm2})
