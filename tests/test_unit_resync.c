/* Unit tests for protocol/resync.c: VM channel resync markers (docs/PROTOCOL.md §1.1). */
#include <stdint.h>

#include "protocol/frame.h"
#include "tests/harness.h"
#include "protocol/limits.h"
#include "protocol/resync.h"

static const uint8_t magic[] = HBP_RESYNC_MAGIC;

TEST(pack_unpack_round_trip)
{
	struct hbp_resync m = {.version = 1, .status = 71}, got;
	uint8_t buf[HBP_RESYNC_LEN];

	for (unsigned i = 0; i < HBP_RESYNC_NONCE_LEN; i++)
		m.nonce[i] = (uint8_t)(0xa0 + i);
	hbp_resync_pack(buf, &m);
	CHECK(memcmp(buf, magic, HBP_RESYNC_MAGIC_LEN) == 0);
	/* Little-endian fields after the magic. */
	CHECK_EQ(buf[8], 1);
	CHECK_EQ(buf[11], 0);
	CHECK_EQ(buf[12], 71);
	CHECK_EQ(buf[16], 0xa0);
	CHECK_EQ(buf[31], 0xaf);
	CHECK_EQ(hbp_resync_unpack(buf, &got), 0);
	CHECK_EQ(got.version, 1);
	CHECK_EQ(got.status, 71);
	CHECK(memcmp(got.nonce, m.nonce, sizeof(m.nonce)) == 0);
	buf[3] ^= 1;
	CHECK_EQ(hbp_resync_unpack(buf, &got), -EPROTO);
}

/* At a frame boundary a marker can never pass for a frame: its first four bytes are a length
 * far above the limit. */
TEST(magic_is_no_frame)
{
	uint8_t buf[HBP_RESYNC_LEN] = {0};
	struct hbp_resync m = {.version = 1};

	hbp_resync_pack(buf, &m);
	CHECK_EQ(hbp_frame_peek(buf, sizeof(buf), HBP_FRAME_MAX, NULL), -EMSGSIZE);
	/* Nor can it start inside a valid frame header: a header's byte 2 is at most 4 and its
	 * byte 3 is 0, and the magic has no such byte in the places that would need them. */
	for (unsigned k = 1; k < 4; k++) {
		for (unsigned j = 0; k + j < 4; j++) {
			unsigned b = j + k;
			if (b == 2)
				CHECK(magic[j] > 4);
			if (b == 3)
				CHECK(magic[j] != 0);
		}
	}
}

TEST(scan_finds_whole_and_partial)
{
	uint8_t buf[64];
	bool whole;

	memset(buf, 'x', sizeof(buf));
	CHECK_EQ(hbp_resync_scan(buf, sizeof(buf), &whole), sizeof(buf));
	CHECK(!whole);
	CHECK_EQ(hbp_resync_scan(buf, 0, &whole), 0);
	CHECK(!whole);

	memcpy(buf + 20, magic, HBP_RESYNC_MAGIC_LEN);
	CHECK_EQ(hbp_resync_scan(buf, sizeof(buf), &whole), 20);
	CHECK(whole);
	/* The first of two. */
	memcpy(buf + 40, magic, HBP_RESYNC_MAGIC_LEN);
	CHECK_EQ(hbp_resync_scan(buf, sizeof(buf), &whole), 20);
	/* Cut short at every length: the tail that could still become a magic is reported. */
	for (size_t k = 1; k < HBP_RESYNC_MAGIC_LEN; k++) {
		memset(buf, 'x', sizeof(buf));
		memcpy(buf + 30, magic, k);
		CHECK_EQ(hbp_resync_scan(buf, 30 + k, &whole), 30);
		CHECK(!whole);
		/* ...and once a wrong byte follows, it cannot. */
		buf[30 + k] = 'y';
		CHECK_EQ(hbp_resync_scan(buf, 31 + k, &whole), 31 + k);
	}
	/* Shorter than the magic. */
	CHECK_EQ(hbp_resync_scan(magic, 3, &whole), 0);
	CHECK(!whole);
	CHECK_EQ(hbp_resync_scan((const uint8_t *)"ab", 2, &whole), 2);
	/* A magic split at any point inside a run of its own first byte. */
	memset(buf, magic[0], 10);
	memcpy(buf + 10, magic + 1, HBP_RESYNC_MAGIC_LEN - 1);
	CHECK_EQ(hbp_resync_scan(buf, 10 + HBP_RESYNC_MAGIC_LEN - 1, &whole), 9);
	CHECK(whole);
}

TEST(meta_guard)
{
	uint8_t meta[100];

	memset(meta, 0, sizeof(meta));
	CHECK(!hbp_resync_meta_unsafe(meta, sizeof(meta)));
	CHECK(!hbp_resync_meta_unsafe(NULL, 0));
	/* The whole magic anywhere. */
	memcpy(meta + 50, magic, HBP_RESYNC_MAGIC_LEN);
	CHECK(hbp_resync_meta_unsafe(meta, sizeof(meta)));
	/* All but one or two bytes at the end: the next frame's length could finish it. */
	memset(meta, 0, sizeof(meta));
	memcpy(meta + 94, magic, 6);
	CHECK(hbp_resync_meta_unsafe(meta, 100));
	memcpy(meta + 93, magic, 7);
	CHECK(hbp_resync_meta_unsafe(meta, 100));
	/* Five bytes cannot be finished by a valid frame header. */
	memset(meta, 0, sizeof(meta));
	memcpy(meta + 95, magic, 5);
	CHECK(!hbp_resync_meta_unsafe(meta, 100));
	/* Not at the end: harmless. */
	memcpy(meta + 10, magic, 7);
	CHECK(!hbp_resync_meta_unsafe(meta, 100));
}
