/*
 * Conformance cases: sharing (export, import, query, metadata, events, lifecycle), written once
 * for every target (tests/conform/conform.h). Each names the case of the emulated-only suite it
 * was ported from (docs/TESTING.md lists them).
 */
#include <stdlib.h>

#include "tests/conform/conform.h"

static bool all_bytes(const void *p, size_t len, uint8_t v)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++) {
		if (b[i] != v)
			return false;
	}
	return true;
}

/* ---- import_byte_exact (test_it_import) ------------------------------------------------------
 * Byte-exact content over every pair: vm1 to vm2 and to the host in sizes around page and
 * directory boundaries, the host to vm1; a later write by the exporter shows through (the same
 * memory, not a copy). */
static const size_t exact_sizes[] = {1, 3000, 4096, 4099, 100000, (4u << 20) + 17};
#define N_EXACT (sizeof(exact_sizes) / sizeof(exact_sizes[0]))

static void exact_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_id id;
	char key[32];

	for (size_t i = 0; i < N_EXACT; i++) {
		for (uint32_t peer = 0; peer <= 2; peer += 2) {
			struct hb_buffer *b = CF_ALLOC(c, peer, exact_sizes[i], 0);

			cf_fill(hb_buffer_data(b), exact_sizes[i], 1000 * (peer + 1) + i);
			CF_EXPORT(b, NULL, 0, &id);
			snprintf(key, sizeof(key), "id-%u-%zu", peer, i);
			cf_put_id(key, &id);
			snprintf(key, sizeof(key), "done-%u-%zu", peer, i);
			cf_get(key);
			hb_buffer_free(b);
		}
	}
	cf_get_id("host-id", &id);
	im = CF_IMPORT(c, &id, 0);
	CF_CHECK_PATTERN(hb_import_data(im), 123457, 3);
	cf_put("imported", "1");
	cf_get("rewritten");
	CHECK(all_bytes(hb_import_data(im), 123457, 0x3c));
	hb_import_release(im);
}

static void exact_importer(uint32_t self)
{
	struct hb_client *c = cf_connect();
	struct hb_id id;
	char key[32];

	for (size_t i = 0; i < N_EXACT; i++) {
		struct hb_import *im;

		snprintf(key, sizeof(key), "id-%u-%zu", self, i);
		cf_get_id(key, &id);
		im = CF_IMPORT(c, &id, 0);
		CHECK_EQ(hb_import_size(im), exact_sizes[i]);
		CF_CHECK_PATTERN(hb_import_data(im), exact_sizes[i], 1000 * (self + 1) + i);
		hb_import_release(im);
		snprintf(key, sizeof(key), "done-%u-%zu", self, i);
		cf_put(key, "1");
	}
}

static void exact_host(void)
{
	struct hb_client *c;
	struct hb_buffer *b;
	struct hb_id id;

	exact_importer(0);
	c = cf_connect();
	b = CF_ALLOC(c, 1, 123457, 0);
	cf_fill(hb_buffer_data(b), 123457, 3);
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("host-id", &id);
	cf_get("imported");
	memset(hb_buffer_data(b), 0x3c, 123457);
	cf_put("rewritten", "1");
	cf_barrier("end");
	hb_buffer_free(b);
}

static void exact_vm1_end(void)
{
	exact_vm1();
	cf_barrier("end");
}

static void exact_vm2(void)
{
	exact_importer(2);
	cf_barrier("end");
}

CF_CASE(import_byte_exact, {1, exact_vm1_end}, {2, exact_vm2}, {0, exact_host})

/* ---- import_metadata_roundtrip (test_it_import) ---------------------------------------------
 * Binary metadata of 1024 bytes comes back whole, a short buffer gets a prefix and the full
 * length, the metadata seen at import time stays whatever is re-exported later, and a buffer
 * exported without metadata has none. */
static void meta_fill(uint8_t *meta)
{
	for (int i = 0; i < 1024; i++)
		meta[i] = (uint8_t)(255 - i % 256); /* zeros inside, binary */
}

static void meta_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	uint8_t meta[1024];
	struct hb_id id;

	meta_fill(meta);
	CF_EXPORT(b, meta, sizeof(meta), &id);
	cf_put_id("id", &id);
	cf_get("first");
	CF_EXPORT(b, "new", 3, &id);
	cf_put("reexported", "1");
	cf_get("second");
	CF_EXPORT(b, NULL, 0, &id);
	cf_put("bare", "1");
	cf_get("third");
	hb_buffer_free(b);
}

static void meta_vm2(void)
{
	struct hb_client *c = cf_connect();
	uint8_t meta[1024], got[1100];
	struct hb_import *im;
	struct hb_id id;

	meta_fill(meta);
	cf_get_id("id", &id);
	im = CF_IMPORT(c, &id, 0);
	memset(got, 0xcc, sizeof(got));
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 1024);
	CHECK(memcmp(got, meta, 1024) == 0);
	CHECK(all_bytes(got + 1024, sizeof(got) - 1024, 0xcc));
	memset(got, 0xcc, sizeof(got));
	CHECK_EQ(hb_import_metadata(im, got, 10), 1024);
	CHECK(memcmp(got, meta, 10) == 0);
	CHECK(all_bytes(got + 10, sizeof(got) - 10, 0xcc));
	CHECK_EQ(hb_import_metadata(im, NULL, 0), 1024);
	cf_put("first", "1");
	cf_get("reexported");
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 1024);
	CHECK(memcmp(got, meta, 1024) == 0);
	hb_import_release(im);
	im = CF_IMPORT(c, &id, 0);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 3);
	CHECK(memcmp(got, "new", 3) == 0);
	hb_import_release(im);
	cf_put("second", "1");
	cf_get("bare");
	im = CF_IMPORT(c, &id, 0);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 0);
	hb_import_release(im);
	cf_put("third", "1");
}

CF_CASE(import_metadata_roundtrip, {1, meta_vm1}, {2, meta_vm2})

/* ---- alloc_exact_size_zero_filled (test_it_export) ------------------------------------------
 * A buffer has exactly the size asked, comes zero-filled and every byte is writable; the peer's
 * query sees that size and its pages. (The original's 4 MiB sizes do not fit the conformance
 * topology's 16 MiB groups together: 2 MiB ones cross the same directory boundaries.) */
static const size_t zero_sizes[] = {1,     7,     4095,           4096,     4097,
				    12345, 65536, (1u << 20) + 3, 2u << 20, (2u << 20) + 1};
#define N_ZERO (sizeof(zero_sizes) / sizeof(zero_sizes[0]))

static void zero_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b[N_ZERO];
	struct hb_id id;
	char key[16];

	for (size_t i = 0; i < N_ZERO; i++) {
		b[i] = CF_ALLOC(c, 2, zero_sizes[i], 0);
		CHECK_EQ(hb_buffer_size(b[i]), zero_sizes[i]);
		CHECK(hb_buffer_data(b[i]) != NULL);
		CHECK(all_bytes(hb_buffer_data(b[i]), zero_sizes[i], 0));
		memset(hb_buffer_data(b[i]), 0xee, zero_sizes[i]);
		CF_EXPORT(b[i], NULL, 0, &id);
		snprintf(key, sizeof(key), "id-%zu", i);
		cf_put_id(key, &id);
	}
	cf_barrier("queried");
	for (size_t i = 0; i < N_ZERO; i++)
		hb_buffer_free(b[i]);
}

static void zero_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_info info;
	struct hb_id id;
	char key[16];

	for (size_t i = 0; i < N_ZERO; i++) {
		snprintf(key, sizeof(key), "id-%zu", i);
		cf_get_id(key, &id);
		memset(&info, 0x5a, sizeof(info));
		CHECK_EQ(hb_query(c, &id, &info), 0);
		CHECK_EQ(info.size, zero_sizes[i]);
		CHECK_EQ(info.pages, (zero_sizes[i] + 4095) / 4096);
	}
	cf_barrier("queried");
}

CF_CASE(alloc_exact_size_zero_filled, {1, zero_vm1}, {2, zero_vm2})
