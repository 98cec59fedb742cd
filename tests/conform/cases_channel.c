/*
 * Conformance cases from test_it_channel (docs/TESTING.md lists them, and why the rest of that
 * suite stays host-side). Written once for every target (tests/conform/conform.h).
 */
#include "protocol/resync.h"
#include "tests/conform/conform.h"

/* ---- metadata_cannot_carry_a_marker (test_it_channel) ---------------------------------------
 * A VM channel's resync marker (PROTOCOL.md §8) never travels inside metadata, whole or cut at
 * the end, whoever exports it: a guest's library would find it in its input wherever it is.
 * The rule is the same on every target, so an application that works on one works on all. */
static void marker_refused(struct hb_buffer *b)
{
	uint8_t meta[64] = {0};
	struct hb_id id;

	memcpy(meta + 10, HBP_RESYNC_MAGIC, HBP_RESYNC_MAGIC_LEN);
	CHECK_ERR(hb_export(b, meta, sizeof(meta), 0, &id), EINVAL);
	memset(meta, 0, sizeof(meta));
	memcpy(meta + 57, HBP_RESYNC_MAGIC, 7);
	CHECK_ERR(hb_export(b, meta, sizeof(meta), 0, &id), EINVAL);
}

static void marker_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 1, 4096, 0);
	uint8_t meta[64] = {0};
	struct hb_id id;

	marker_refused(b);
	memcpy(meta + 57, "harmless", 7);
	CF_EXPORT(b, meta, sizeof(meta), &id);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void marker_host(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);

	marker_refused(b);
	cf_barrier("done");
	hb_buffer_free(b);
}

CF_CASE(metadata_cannot_carry_a_marker, {0, marker_host}, {2, marker_vm2})
