/* Unit tests for protocol/hid.c: generation, wire form, plausibility, hashing. */
#include <stdint.h>

#include "tests/harness.h"
#include "protocol/hid.h"

#define N_IDS 1000

static uint32_t serial_of(const struct hb_id *id)
{
	return (uint32_t)id->bytes[0] | (uint32_t)id->bytes[1] << 8 | (uint32_t)id->bytes[2] << 16 |
	       (uint32_t)id->bytes[3] << 24;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct hb_id));
}

TEST(generated_are_distinct)
{
	static struct hb_id ids[N_IDS], random_parts[N_IDS];
	int i;

	for (i = 0; i < N_IDS; i++) {
		CHECK_EQ(hbp_hid_generate(5, &ids[i]), 0);
		CHECK_EQ(serial_of(&ids[i]), 5);
		CHECK(hbp_hid_plausible(&ids[i]));
		/* The same serial every time: only the random part tells them apart. */
		memset(&random_parts[i], 0, sizeof(random_parts[i]));
		memcpy(random_parts[i].bytes, ids[i].bytes + 4, 12);
	}
	qsort(ids, N_IDS, sizeof(ids[0]), cmp_id);
	qsort(random_parts, N_IDS, sizeof(random_parts[0]), cmp_id);
	for (i = 1; i < N_IDS; i++) {
		CHECK(memcmp(&ids[i - 1], &ids[i], sizeof(ids[i])) != 0);
		CHECK(memcmp(&random_parts[i - 1], &random_parts[i], 12) != 0);
	}
}

TEST(serial_preserved_little_endian)
{
	static const uint32_t serials[] = {1, 2, 0xff, 0x100, 0x12345678, 0x80000000, UINT32_MAX};
	struct hb_id id;
	size_t i;

	for (i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
		CHECK_EQ(hbp_hid_generate(serials[i], &id), 0);
		CHECK_EQ(serial_of(&id), serials[i]);
		CHECK(hbp_hid_plausible(&id));
	}
	CHECK_EQ(hbp_hid_generate(0x12345678, &id), 0);
	CHECK_EQ(id.bytes[0], 0x78);
	CHECK_EQ(id.bytes[3], 0x12);
	/* Serial 0 is never handed out. */
	CHECK_EQ(hbp_hid_generate(0, &id), -EINVAL);
}

TEST(plausible_checks)
{
	struct hb_id id;

	memset(&id, 0, sizeof(id));
	CHECK(!hbp_hid_plausible(&id));
	/* serial 0, random part set: still implausible */
	memset(id.bytes + 4, 0x5a, 12);
	CHECK(!hbp_hid_plausible(&id));
	id.bytes[2] = 1;
	CHECK(hbp_hid_plausible(&id));
	/* all bits set */
	memset(&id, 0xff, sizeof(id));
	CHECK(!hbp_hid_plausible(&id));
	/* one bit clear anywhere makes it well-formed again */
	id.bytes[15] = 0xfe;
	CHECK(hbp_hid_plausible(&id));
	memset(&id, 0xff, sizeof(id));
	id.bytes[0] = 0x7f;
	CHECK(hbp_hid_plausible(&id));
	/* serial all ones is fine when the rest is not */
	memset(&id, 0, sizeof(id));
	memset(id.bytes, 0xff, 4);
	CHECK(hbp_hid_plausible(&id));
	CHECK(!hbp_hid_plausible(NULL));
}

TEST(from_wire_length_exact)
{
	uint8_t wire[17];
	struct hb_id id;
	int i;

	for (i = 0; i < 17; i++)
		wire[i] = (uint8_t)(i + 1);
	memset(&id, 0, sizeof(id));
	CHECK_EQ(hbp_hid_from_wire(wire, 15, &id), -EINVAL);
	CHECK_EQ(hbp_hid_from_wire(wire, 17, &id), -EINVAL);
	CHECK_EQ(hbp_hid_from_wire(wire, 0, &id), -EINVAL);
	CHECK_EQ(hbp_hid_from_wire(NULL, 16, &id), -EINVAL);
	CHECK_EQ(id.bytes[0], 0);
	CHECK_EQ(hbp_hid_from_wire(wire, 16, &id), 0);
	CHECK(memcmp(id.bytes, wire, 16) == 0);
}

TEST(hash_within_range_and_spread)
{
	static struct hb_id ids[N_IDS];
	unsigned counts[64] = {0};
	unsigned bits, i, empty = 0, most = 0;
	struct hb_id a, b;

	for (i = 0; i < N_IDS; i++)
		CHECK_EQ(hbp_hid_generate(i + 1, &ids[i]), 0);
	for (bits = 0; bits <= 32; bits++) {
		for (i = 0; i < N_IDS; i++) {
			uint32_t h = hbp_hid_hash(&ids[i], bits);

			if (bits < 32)
				CHECK(h < (1ull << bits));
		}
	}
	for (i = 0; i < N_IDS; i++) {
		CHECK_EQ(hbp_hid_hash(&ids[i], 0), 0);
		counts[hbp_hid_hash(&ids[i], 6)]++;
	}
	/* 1000 over 64 buckets is about 16 each; these bounds fail only when something is
	 * badly wrong (odds of a false alarm far below 1e-6). */
	for (i = 0; i < 64; i++) {
		if (counts[i] == 0)
			empty++;
		if (counts[i] > most)
			most = counts[i];
	}
	CHECK(empty <= 2);
	CHECK(most < 45);

	/* The hash comes from the random part: the serial does not move it. */
	CHECK_EQ(hbp_hid_generate(1, &a), 0);
	b = a;
	b.bytes[0] = 0x99;
	b.bytes[3] = 0x42;
	CHECK_EQ(hbp_hid_hash(&a, 20), hbp_hid_hash(&b, 20));
	/* and each random byte does */
	for (i = 4; i < 16; i++) {
		b = a;
		b.bytes[i] ^= 0x01;
		CHECK(hbp_hid_hash(&a, 32) != hbp_hid_hash(&b, 32));
	}
}
