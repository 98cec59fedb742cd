/*
 * Image descriptions on the wire. Version 1 is HBP_IMAGE_SIZE bytes, little-endian (the table
 * is in docs/PROTOCOL.md). A reader takes a longer description of the same version (later
 * fields are appended, never moved) and says how long it was, so the application's own bytes
 * after it stay reachable. Everything a peer sent is checked with 64-bit arithmetic and
 * explicit overflow tests: a description is hostile input.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "protocol/image.h"

#define FOURCC(a, b, c, d)                                                                         \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* One plane of a format: bytes per block of hsub pixels, and the subsampling. */
struct plane_format {
	uint8_t cpp, hsub, vsub;
};

struct format {
	uint32_t fourcc;
	uint8_t n_planes;
	struct plane_format p[3];
};

#define RGB(a, b, c, d, bytes)                                                                     \
	{                                                                                          \
		FOURCC(a, b, c, d), 1,                                                             \
		{                                                                                  \
			{                                                                          \
				bytes, 1, 1                                                        \
			}                                                                          \
		}                                                                                  \
	}
static const struct format formats[] = {
    RGB('X', 'R', '2', '4', 4),
    RGB('A', 'R', '2', '4', 4),
    RGB('X', 'B', '2', '4', 4),
    RGB('A', 'B', '2', '4', 4),
    RGB('R', 'X', '2', '4', 4),
    RGB('B', 'X', '2', '4', 4),
    RGB('R', 'G', '2', '4', 3),
    RGB('B', 'G', '2', '4', 3),
    RGB('R', 'G', '1', '6', 2),
    RGB('R', '8', ' ', ' ', 1),
    {FOURCC('N', 'V', '1', '2'), 2, {{1, 1, 1}, {2, 2, 2}}},
    {FOURCC('N', 'V', '2', '1'), 2, {{1, 1, 1}, {2, 2, 2}}},
    {FOURCC('N', 'V', '1', '6'), 2, {{1, 1, 1}, {2, 2, 1}}},
    {FOURCC('P', '0', '1', '0'), 2, {{2, 1, 1}, {4, 2, 2}}},
    {FOURCC('Y', 'U', '1', '2'), 3, {{1, 1, 1}, {1, 2, 2}, {1, 2, 2}}},
    {FOURCC('Y', 'V', '1', '2'), 3, {{1, 1, 1}, {1, 2, 2}, {1, 2, 2}}},
    {FOURCC('Y', 'U', 'Y', 'V'), 1, {{4, 2, 1}}},
    {FOURCC('U', 'Y', 'V', 'Y'), 1, {{4, 2, 1}}},
};
#undef RGB

static const struct format *find_format(uint32_t fourcc)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i].fourcc == fourcc)
			return &formats[i];
	return NULL;
}

/* Bytes of one row of plane p and its number of rows, for a width x height image. */
static uint64_t row_bytes(const struct plane_format *p, uint32_t width)
{
	return ((uint64_t)width + p->hsub - 1) / p->hsub * p->cpp;
}

static uint64_t plane_rows(const struct plane_format *p, uint32_t height)
{
	return ((uint64_t)height + p->vsub - 1) / p->vsub;
}

/* ---- the wire ------------------------------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Offsets of the version 1 layout (docs/PROTOCOL.md). */
enum {
	W_MAGIC = 0,
	W_VERSION = 4,
	W_LENGTH = 6,
	W_FORMAT = 8,
	W_WIDTH = 12,
	W_HEIGHT = 16,
	W_PLANES = 20,
	W_RANGE = 21,
	W_MATRIX = 22,
	W_TRANSFER = 23,
	W_PRIMARIES = 24,
	W_FLAGS = 28,
	W_MODIFIER = 32,
	W_PTS = 40,
	W_DURATION = 48,
	W_SEQUENCE = 56,
	W_FENCE_TIMELINE = 64,
	W_FENCE_VALUE = 72,
	W_PLANE0 = 80, /* 4 x {u64 offset, u32 stride, u32 reserved} */
	W_PLANE_SIZE = 16,
};

ssize_t hbp_image_encode(const struct hb_image *img, uint8_t *out, size_t len)
{
	if (!img || !out || img->n_planes < 1 || img->n_planes > HB_IMAGE_MAX_PLANES ||
	    (img->flags & ~HBP_IMAGE_FLAGS))
		return -EINVAL;
	if (len < HBP_IMAGE_SIZE)
		return -ENOSPC;
	memset(out, 0, HBP_IMAGE_SIZE);
	put_le(out + W_MAGIC, HBP_IMAGE_MAGIC, 4);
	put_le(out + W_VERSION, HBP_IMAGE_VERSION, 2);
	put_le(out + W_LENGTH, HBP_IMAGE_SIZE, 2);
	put_le(out + W_FORMAT, img->format, 4);
	put_le(out + W_WIDTH, img->width, 4);
	put_le(out + W_HEIGHT, img->height, 4);
	out[W_PLANES] = (uint8_t)img->n_planes;
	out[W_RANGE] = img->color.range;
	out[W_MATRIX] = img->color.matrix;
	out[W_TRANSFER] = img->color.transfer;
	out[W_PRIMARIES] = img->color.primaries;
	put_le(out + W_FLAGS, img->flags, 4);
	put_le(out + W_MODIFIER, img->modifier, 8);
	put_le(out + W_PTS, img->pts, 8);
	put_le(out + W_DURATION, img->duration, 8);
	put_le(out + W_SEQUENCE, img->sequence, 8);
	put_le(out + W_FENCE_TIMELINE, img->fence.timeline, 8);
	put_le(out + W_FENCE_VALUE, img->fence.value, 8);
	for (uint32_t i = 0; i < img->n_planes; i++) {
		put_le(out + W_PLANE0 + i * W_PLANE_SIZE, img->planes[i].offset, 8);
		put_le(out + W_PLANE0 + i * W_PLANE_SIZE + 8, img->planes[i].stride, 4);
	}
	return HBP_IMAGE_SIZE;
}

ssize_t hbp_image_decode(const uint8_t *meta, size_t len, struct hb_image *img)
{
	size_t length;

	if (!meta || len < 4 || get_le(meta + W_MAGIC, 4) != HBP_IMAGE_MAGIC)
		return -ENOMSG;
	if (len < W_FORMAT)
		return -EBADMSG;
	if (get_le(meta + W_VERSION, 2) != HBP_IMAGE_VERSION)
		return -EPROTONOSUPPORT;
	length = (size_t)get_le(meta + W_LENGTH, 2);
	if (length < HBP_IMAGE_SIZE || length > len)
		return -EBADMSG;
	memset(img, 0, sizeof(*img));
	img->format = (uint32_t)get_le(meta + W_FORMAT, 4);
	img->width = (uint32_t)get_le(meta + W_WIDTH, 4);
	img->height = (uint32_t)get_le(meta + W_HEIGHT, 4);
	img->n_planes = meta[W_PLANES];
	img->color.range = meta[W_RANGE];
	img->color.matrix = meta[W_MATRIX];
	img->color.transfer = meta[W_TRANSFER];
	img->color.primaries = meta[W_PRIMARIES];
	img->flags = (uint32_t)get_le(meta + W_FLAGS, 4);
	img->modifier = get_le(meta + W_MODIFIER, 8);
	img->pts = get_le(meta + W_PTS, 8);
	img->duration = get_le(meta + W_DURATION, 8);
	img->sequence = get_le(meta + W_SEQUENCE, 8);
	img->fence.timeline = get_le(meta + W_FENCE_TIMELINE, 8);
	img->fence.value = get_le(meta + W_FENCE_VALUE, 8);
	if (img->n_planes < 1 || img->n_planes > HB_IMAGE_MAX_PLANES)
		return -EBADMSG;
	for (uint32_t i = 0; i < img->n_planes; i++) {
		img->planes[i].offset = get_le(meta + W_PLANE0 + i * W_PLANE_SIZE, 8);
		img->planes[i].stride = (uint32_t)get_le(meta + W_PLANE0 + i * W_PLANE_SIZE + 8, 4);
	}
	/* Flags this version does not define are a later writer's; they are dropped rather than
	 * passed on as if understood. */
	img->flags &= HBP_IMAGE_FLAGS;
	return (ssize_t)length;
}

/* ---- checks and layouts -------------------------------------------------------------------- */

/* Plane i of a known linear format: its rows end inside the buffer and never overlap. */
static bool plane_fits(const struct hb_image_plane *pl, const struct plane_format *pf,
		       uint32_t width, uint32_t height, uint64_t buffer_size)
{
	uint64_t row = row_bytes(pf, width), rows = plane_rows(pf, height), end;

	if (pl->stride < row)
		return false;
	if (__builtin_mul_overflow((uint64_t)pl->stride, rows - 1, &end) ||
	    __builtin_add_overflow(end, row, &end) || __builtin_add_overflow(end, pl->offset, &end))
		return false;
	return end <= buffer_size;
}

int hbp_image_check(const struct hb_image *img, uint64_t buffer_size)
{
	const struct format *f = find_format(img->format);

	if (img->n_planes < 1 || img->n_planes > HB_IMAGE_MAX_PLANES || img->width == 0 ||
	    img->height == 0)
		return -EBADMSG;
	if (!f || img->modifier != HB_IMAGE_MODIFIER_LINEAR) {
		/* Tiled or unknown: what a row is, we cannot know; where a plane starts, we can. */
		for (uint32_t i = 0; i < img->n_planes; i++)
			if (img->planes[i].offset >= buffer_size)
				return -EBADMSG;
		return 0;
	}
	if (img->n_planes != f->n_planes)
		return -EBADMSG;
	for (uint32_t i = 0; i < img->n_planes; i++)
		if (!plane_fits(&img->planes[i], &f->p[i], img->width, img->height, buffer_size))
			return -EBADMSG;
	return 0;
}

uint64_t hbp_image_layout(struct hb_image *img, uint32_t format, uint32_t width, uint32_t height,
			  uint32_t stride_align, int *err)
{
	const struct format *f = find_format(format);
	uint64_t offset = 0;

	if (stride_align == 0)
		stride_align = 4;
	if (!img || !f || width == 0 || height == 0 || (stride_align & (stride_align - 1))) {
		*err = EINVAL;
		return 0;
	}
	memset(img, 0, sizeof(*img));
	img->format = format;
	img->width = width;
	img->height = height;
	img->n_planes = f->n_planes;
	img->color = (struct hb_image_color){HB_COLOR_RANGE_UNKNOWN, HB_COLOR_UNSPECIFIED,
					     HB_COLOR_UNSPECIFIED, HB_COLOR_UNSPECIFIED};
	img->pts = img->duration = HB_IMAGE_TIME_NONE;
	for (uint32_t i = 0; i < f->n_planes; i++) {
		uint64_t stride =
		    (row_bytes(&f->p[i], width) + stride_align - 1) & ~(uint64_t)(stride_align - 1);
		uint64_t size;

		if (stride > UINT32_MAX ||
		    __builtin_mul_overflow(stride, plane_rows(&f->p[i], height), &size) ||
		    __builtin_add_overflow(offset, size, &size)) {
			*err = EOVERFLOW;
			return 0;
		}
		img->planes[i].offset = offset;
		img->planes[i].stride = (uint32_t)stride;
		offset = size;
	}
	return offset;
}

char *hbp_image_format_name(uint32_t format, char out[5])
{
	for (int i = 0; i < 4; i++) {
		unsigned char ch = (unsigned char)(format >> (8 * i));

		out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	out[4] = '\0';
	return out;
}

void hbp_image_summary(const uint8_t *meta, size_t len, uint64_t size, char *out, size_t outlen)
{
	struct hb_image img;
	char name[5];

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (hbp_image_decode(meta, len, &img) < 0 || hbp_image_check(&img, size) < 0)
		return;
	snprintf(out, outlen, "%ux%u %s", img.width, img.height,
		 hbp_image_format_name(img.format, name));
}
