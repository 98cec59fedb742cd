/*
 * Unit tests for protocol/image.c: the wire form of an image description (a round trip, the
 * exact bytes docs/PROTOCOL.md gives), layouts of known formats, and hostile descriptions:
 * every one is refused with -EBADMSG, none is read past its end, and a random fuzz never
 * makes the checker accept a plane outside the buffer.
 */
#include <stdint.h>

#include "protocol/image.h"
#include "tests/harness.h"

#define XR24 0x34325258u
#define NV12 0x3231564eu

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | p[n];
	return v;
}

static struct hb_image frame_1080p(void)
{
	struct hb_image img;
	int err = 0;

	CHECK_EQ(hbp_image_layout(&img, XR24, 1920, 1080, 0, &err), 1920u * 4 * 1080);
	img.pts = 1000;
	img.duration = 33333333;
	img.sequence = 7;
	img.flags = HB_IMAGE_DISCONT;
	img.color = (struct hb_image_color){HB_COLOR_RANGE_FULL, 0, 13, 1};
	img.fence = (struct hb_fence){.timeline = 0x1122334455667788ull, .value = 9};
	return img;
}

TEST(round_trip_and_bytes)
{
	struct hb_image img = frame_1080p(), back;
	uint8_t w[HBP_IMAGE_SIZE + 8];

	CHECK_EQ(hbp_image_encode(&img, w, sizeof(w)), HBP_IMAGE_SIZE);
	/* The layout of docs/PROTOCOL.md, field by field. */
	CHECK(memcmp(w, "HBIM", 4) == 0);
	CHECK_EQ(le(w + 4, 2), 1);
	CHECK_EQ(le(w + 6, 2), HBP_IMAGE_SIZE);
	CHECK_EQ(le(w + 8, 4), XR24);
	CHECK_EQ(le(w + 12, 4), 1920);
	CHECK_EQ(le(w + 16, 4), 1080);
	CHECK_EQ(w[20], 1);
	CHECK(w[21] == 1 && w[22] == 0 && w[23] == 13 && w[24] == 1);
	CHECK_EQ(le(w + 28, 4), HB_IMAGE_DISCONT);
	CHECK_EQ(le(w + 32, 8), 0);
	CHECK_EQ(le(w + 40, 8), 1000);
	CHECK_EQ(le(w + 48, 8), 33333333);
	CHECK_EQ(le(w + 56, 8), 7);
	CHECK_EQ(le(w + 64, 8), 0x1122334455667788ll);
	CHECK_EQ(le(w + 72, 8), 9);
	CHECK_EQ(le(w + 80, 8), 0);
	CHECK_EQ(le(w + 88, 4), 7680);
	CHECK_EQ(hbp_image_decode(w, HBP_IMAGE_SIZE, &back), HBP_IMAGE_SIZE);
	CHECK(memcmp(&img, &back, sizeof(img)) == 0);
	CHECK_EQ(hbp_image_check(&back, 1920u * 4 * 1080), 0);
	CHECK_EQ(hbp_image_encode(&img, w, HBP_IMAGE_SIZE - 1), -ENOSPC);
}

TEST(not_a_description)
{
	struct hb_image img;
	uint8_t w[HBP_IMAGE_SIZE] = "an app's own blob";

	CHECK_EQ(hbp_image_decode(w, sizeof(w), &img), -ENOMSG);
	CHECK_EQ(hbp_image_decode(w, 0, &img), -ENOMSG);
	CHECK_EQ(hbp_image_decode(NULL, 0, &img), -ENOMSG);
}

TEST(later_fields_and_versions)
{
	struct hb_image img = frame_1080p(), back;
	uint8_t w[HBP_IMAGE_SIZE + 32] = {0};

	CHECK_EQ(hbp_image_encode(&img, w, sizeof(w)), HBP_IMAGE_SIZE);
	/* A later writer of version 1 appends fields: the reader takes them as its length. */
	w[6] = HBP_IMAGE_SIZE + 16;
	CHECK_EQ(hbp_image_decode(w, sizeof(w), &back), HBP_IMAGE_SIZE + 16);
	/* ...but not past the metadata, and never shorter than version 1. */
	CHECK_EQ(hbp_image_decode(w, HBP_IMAGE_SIZE + 15, &back), -EBADMSG);
	w[6] = HBP_IMAGE_SIZE - 1;
	CHECK_EQ(hbp_image_decode(w, sizeof(w), &back), -EBADMSG);
	w[6] = HBP_IMAGE_SIZE;
	w[4] = 2;
	CHECK_EQ(hbp_image_decode(w, sizeof(w), &back), -EPROTONOSUPPORT);
	w[4] = 1;
	for (size_t n = 4; n < HBP_IMAGE_SIZE; n++)
		CHECK_EQ(hbp_image_decode(w, n, &back), -EBADMSG);
	/* Flags of a later version are not passed on as if understood. */
	w[28] = 0xff;
	w[29] = 0xff;
	CHECK_EQ(hbp_image_decode(w, sizeof(w), &back), HBP_IMAGE_SIZE);
	CHECK_EQ(back.flags, HBP_IMAGE_FLAGS & 0xffff);
}

TEST(layouts)
{
	struct hb_image img;
	int err = 0;

	/* NV12 at an odd width: strides round up, the chroma plane holds ceil(h/2) rows. */
	CHECK_EQ(hbp_image_layout(&img, NV12, 1917, 1079, 0, &err), 1920u * 1079 + 1920u * 540);
	CHECK_EQ(img.n_planes, 2);
	CHECK_EQ(img.planes[0].stride, 1920);
	CHECK_EQ(img.planes[1].offset, 1920u * 1079);
	CHECK_EQ(img.planes[1].stride, 1920);
	CHECK_EQ(hbp_image_check(&img, 1920u * 1079 + 1920u * 540), 0);
	/* The last chroma row needs 1918 of its 1920 bytes: two bytes short is the limit. */
	CHECK_EQ(hbp_image_check(&img, 1920u * 1079 + 1920u * 540 - 2), 0);
	CHECK_EQ(hbp_image_check(&img, 1920u * 1079 + 1920u * 540 - 3), -EBADMSG);
	/* A stride alignment of 64, as GPUs like it. */
	CHECK_EQ(hbp_image_layout(&img, XR24, 1917, 2, 64, &err), 7680u * 2);
	CHECK_EQ(hbp_image_layout(&img, XR24, 1917, 2, 3, &err), 0);
	CHECK_EQ(err, EINVAL);
	CHECK_EQ(hbp_image_layout(&img, 0x20202020, 16, 16, 0, &err), 0);
	CHECK_EQ(hbp_image_layout(&img, XR24, UINT32_MAX, UINT32_MAX, 0, &err), 0);
	CHECK_EQ(err, EOVERFLOW);
}

TEST(hostile_descriptions)
{
	struct hb_image img = frame_1080p(), bad;
	const uint64_t size = 1920u * 4 * 1080;

	bad = img, bad.planes[0].stride = 1920 * 4 - 1; /* shorter than a row */
	CHECK_EQ(hbp_image_check(&bad, size), -EBADMSG);
	bad = img, bad.planes[0].offset = 1; /* the last row ends past the buffer */
	CHECK_EQ(hbp_image_check(&bad, size), -EBADMSG);
	bad = img, bad.planes[0].offset = UINT64_MAX - 100; /* wraps around */
	CHECK_EQ(hbp_image_check(&bad, size), -EBADMSG);
	bad = img, bad.planes[0].stride = UINT32_MAX, bad.height = UINT32_MAX;
	CHECK_EQ(hbp_image_check(&bad, UINT64_MAX), 0); /* huge, but it adds up */
	bad.planes[0].offset = UINT64_MAX / 2;          /* and now it does not */
	CHECK_EQ(hbp_image_check(&bad, UINT64_MAX), -EBADMSG);
	bad = img, bad.width = 0;
	CHECK_EQ(hbp_image_check(&bad, size), -EBADMSG);
	bad = img, bad.n_planes = 2; /* XR24 has one */
	CHECK_EQ(hbp_image_check(&bad, size), -EBADMSG);
	bad = img, bad.n_planes = 5;
	CHECK_EQ(hbp_image_check(&bad, size), -EBADMSG);
	/* A tiled modifier: rows unknown, but planes must start inside. */
	bad = img, bad.modifier = 0x0100000000000001ull;
	CHECK_EQ(hbp_image_check(&bad, size), 0);
	bad.planes[0].offset = size;
	CHECK_EQ(hbp_image_check(&bad, size), -EBADMSG);
}

/* Random bytes after a valid header: whatever the checker accepts lies inside the buffer. */
TEST(fuzz_never_accepts_outside)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;
	struct hb_image img = frame_1080p(), back;
	uint8_t w[HBP_IMAGE_SIZE];

	for (int i = 0; i < 200000; i++) {
		uint64_t size = 1 + (s % (64u << 20));

		CHECK_EQ(hbp_image_encode(&img, w, sizeof(w)), HBP_IMAGE_SIZE);
		for (int k = 0; k < 6; k++) {
			s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
			w[8 + (s * 0x2545f4914f6cdd1dull >> 32) % (HBP_IMAGE_SIZE - 8)] =
			    (uint8_t)s;
		}
		if (hbp_image_decode(w, sizeof(w), &back) < 0 || hbp_image_check(&back, size) < 0)
			continue;
		for (uint32_t p = 0; p < back.n_planes; p++)
			CHECK(back.planes[p].offset < size);
		if (back.format == XR24 && back.modifier == 0)
			CHECK((unsigned __int128)back.planes[0].stride * (back.height - 1) +
				  (uint64_t)back.width * 4 + back.planes[0].offset <=
			      size);
	}
}

TEST(summary)
{
	struct hb_image img = frame_1080p();
	uint8_t w[HBP_IMAGE_SIZE];
	char out[32];

	CHECK_EQ(hbp_image_encode(&img, w, sizeof(w)), HBP_IMAGE_SIZE);
	hbp_image_summary(w, sizeof(w), 1920u * 4 * 1080, out, sizeof(out));
	CHECK(strcmp(out, "1920x1080 XR24") == 0);
	hbp_image_summary(w, sizeof(w), 4096, out, sizeof(out)); /* does not fit: no summary */
	CHECK(strcmp(out, "") == 0);
	hbp_image_summary((const uint8_t *)"blob", 4, 4096, out, sizeof(out));
	CHECK(strcmp(out, "") == 0);
}
