/*
 * hb_export_batch on every target (new with the call; test_it_export `export_batch` is the
 * host's stricter version: EDQUOT past a limit, send counts). Written once for every target
 * (tests/conform/conform.h): a KVM guest's port, a Xen domU's vchan and an emulated VM's socket
 * each carry a flight of requests in one write and the replies together.
 */
#include "tests/conform/conform.h"

#define BATCH_N 100 /* two flights of 64 and 36 */

/* vm1: exports BATCH_N patterned pages to vm2 in one call; one item is refused before it is
 * sent (metadata over HB_META_MAX) and the others go through, their ids on the side channel. */
static void batch_exporter(void)
{
	static struct hb_export_item it[BATCH_N];
	static struct hb_buffer *b[BATCH_N];
	static uint32_t seq[BATCH_N];
	struct hb_client *c = cf_connect();
	struct hb_counters before, after;
	char key[16];

	for (uint32_t i = 0; i < BATCH_N; i++) {
		b[i] = CF_ALLOC(c, 2, 4096, 0);
		cf_fill(hb_buffer_data(b[i]), 4096, 0xba00 + i);
		seq[i] = i;
		it[i] = (struct hb_export_item){.buffer = b[i], .meta = &seq[i], .meta_len = 4};
	}
	it[3].meta_len = HB_META_MAX + 1;
	CHECK_EQ(hb_counters(c, &before), 0);
	errno = 0;
	CHECK_EQ(hb_export_batch(c, it, BATCH_N), BATCH_N - 1);
	CHECK_EQ(errno, EMSGSIZE);
	CHECK_EQ(hb_counters(c, &after), 0);
	CHECK_EQ(after.frames_out - before.frames_out, BATCH_N - 1);
	CHECK_EQ(it[3].error, EMSGSIZE);
	for (uint32_t i = 0; i < BATCH_N; i++) {
		if (i == 3)
			continue;
		CHECK_EQ(it[i].error, 0);
		snprintf(key, sizeof(key), "id%u", i);
		cf_put_id(key, &it[i].id);
	}
	cf_barrier("imported");
	for (uint32_t i = 0; i < BATCH_N; i++)
		hb_buffer_free(b[i]);
}

/* vm2: hears every export, in order, under the id the item said, with its metadata; imports
 * every one and finds its bytes. */
static void batch_importer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_event ev;
	struct hb_id id;
	char key[16];

	for (uint32_t i = 0; i < BATCH_N; i++) {
		struct hb_import *im;
		uint32_t meta;

		if (i == 3)
			continue;
		snprintf(key, sizeof(key), "id%u", i);
		cf_get_id(key, &id);
		CF_WAIT_EVENT(c, HB_EVENT_EXPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &id));
		im = CF_IMPORT(c, &id, 0);
		CHECK_EQ(hb_import_metadata(im, &meta, sizeof(meta)), 4);
		CHECK_EQ(meta, i);
		CF_CHECK_PATTERN(hb_import_data(im), 4096, 0xba00 + i);
		hb_import_release(im);
	}
	cf_barrier("imported");
}

CF_CASE(export_batch, {1, batch_exporter}, {2, batch_importer})
