/*
 * Deterministic test content: a byte stream for blobs and a moving picture for frames.
 *
 * Both are pure functions of their inputs so that a writer and a reader in different domains
 * agree on every byte without exchanging anything but a seed or a frame number.
 */
#include "tools/pattern.h"

#include <endian.h>
#include <string.h>

/* ---- byte stream ------------------------------------------------------------------------ */

#define GOLDEN 0x9e3779b97f4a7c15ull

/* splitmix64's finaliser: a cheap bijective mix, good enough that any stuck, shifted or
 * swapped page shows up, and fast enough (two multiplies per 8 bytes) to verify 64 MiB in a
 * few milliseconds. */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Mixing the seed first keeps streams of nearby seeds (seed and seed + GOLDEN) from being
 * shifted copies of each other. */
static inline uint64_t stream_base(uint64_t seed)
{
	return mix64(seed ^ 0x6a09e667f3bcc909ull);
}

/* Word i of the stream, as the 8 bytes at offset 8 * i (little-endian on every host, so that
 * two domains of different endianness would still agree). */
static inline uint64_t stream_word(uint64_t base, uint64_t i)
{
	return htole64(mix64(base + (i + 1) * GOLDEN));
}

void tool_pattern_fill(void *dst, size_t len, uint64_t seed)
{
	unsigned char *p = dst;
	uint64_t base = stream_base(seed);
	size_t words = len / 8, i;

	/* memcpy instead of a uint64_t store: dst may have any alignment, and the compiler turns
	 * an 8-byte memcpy into one unaligned move. */
	for (i = 0; i < words; i++) {
		uint64_t w = stream_word(base, i);
		memcpy(p + i * 8, &w, 8);
	}
	if (len % 8) {
		uint64_t w = stream_word(base, words);
		memcpy(p + words * 8, &w, len % 8);
	}
}

size_t tool_pattern_check(const void *src, size_t len, uint64_t seed)
{
	const unsigned char *p = src;
	uint64_t base = stream_base(seed);
	size_t words = len / 8, i = 0, b;
	uint64_t w, have;

	/* The common case is "all good": compare 8 words at a time with the differences OR-ed
	 * together so the loop has one well-predicted branch per 64 bytes, and only walk bytes
	 * once a block is known to be bad. */
	for (; i + 8 <= words; i += 8) {
		uint64_t diff = 0;
		for (unsigned k = 0; k < 8; k++) {
			memcpy(&have, p + (i + k) * 8, 8);
			diff |= have ^ stream_word(base, i + k);
		}
		if (diff)
			break;
	}
	for (; i < words; i++) {
		w = stream_word(base, i);
		if (memcmp(p + i * 8, &w, 8) != 0) {
			for (b = 0; b < 8; b++)
				if (p[i * 8 + b] != ((unsigned char *)&w)[b])
					return i * 8 + b;
		}
	}
	if (len % 8) {
		w = stream_word(base, words);
		for (b = 0; b < len % 8; b++)
			if (p[words * 8 + b] != ((unsigned char *)&w)[b])
				return words * 8 + b;
	}
	return len;
}

/* ---- moving test picture ---------------------------------------------------------------- */

/*
 * The picture, top to bottom:
 *   rows [0, bars_end)         seven 75% colour bars (white, yellow, cyan, green, magenta,
 *                              red, blue), SMPTE order
 *   rows [bars_end, grad_end)  a grey ramp across the width that scrolls 2 levels per frame
 *   rows [grad_end, h)         the frame number's low 32 bits as blocks, most significant on
 *                              the left: white is 1, dark grey 0; red gaps mark byte
 *                              boundaries, black gaps bit boundaries
 * and a white box of side h/6 bouncing over the bars and the ramp. Every pixel is
 * 0xff000000 | RGB (XRGB8888, X set so that an ARGB reader sees it opaque), stored
 * little-endian as DRM's XR24 says.
 */

#define PX(rgb)      (0xff000000u | (rgb))
#define COUNTER_BITS 32u
#define BOX_STEP_X   12u /* pixels per frame */
#define BOX_STEP_Y   7u
#define GRAD_STEP    2u    /* grey levels per frame */
#define CHUNK        1024u /* pixels generated at a time, on the stack */

static const uint32_t bar_rgb[7] = {
    0xc0c0c0, 0xc0c000, 0x00c0c0, 0x00c000, 0xc000c0, 0xc00000, 0x0000c0,
};

struct frame_geo {
	uint32_t w, h;
	uint64_t frame;
	uint32_t bars_end, grad_end;
	uint32_t band_top, band_bot; /* rows of the counter band that carry blocks */
	uint32_t bar_x[8];           /* bar i covers columns [bar_x[i], bar_x[i + 1]) */
	uint32_t grad_inc;           /* 16.16 grey levels per column */
	uint32_t grad_shift;
	uint32_t box_x, box_y, box_s;
};

/* Position on a triangle wave of period 2 * range: 0, step, ... range, ... back to 0. */
static uint32_t bounce(uint64_t frame, uint32_t step, uint32_t range)
{
	uint64_t t;

	if (range == 0)
		return 0;
	t = (frame * step) % (2ull * range); /* wraps harmlessly: still a pure function */
	return (uint32_t)(t <= range ? t : 2ull * range - t);
}

static void geo_init(struct frame_geo *g, uint32_t w, uint32_t h, uint64_t frame)
{
	uint32_t margin;

	g->w = w;
	g->h = h;
	g->frame = frame;
	g->bars_end = (uint32_t)((uint64_t)h * 2 / 3);
	g->grad_end = g->bars_end + h / 6;
	margin = (h - g->grad_end) / 6;
	g->band_top = g->grad_end + margin;
	g->band_bot = h - margin;
	/* Boundaries computed once per frame, so a row is a handful of constant spans and no
	 * pixel needs a division. */
	for (unsigned i = 0; i <= 7; i++)
		g->bar_x[i] = (uint32_t)((uint64_t)w * i / 7);
	g->grad_inc = (uint32_t)((256ull << 16) / w);
	g->grad_shift = (uint32_t)(frame * GRAD_STEP);
	g->box_s = h / 6;
	if (g->box_s > g->grad_end)
		g->box_s = g->grad_end;
	if (g->box_s > w)
		g->box_s = w;
	g->box_x = bounce(frame, BOX_STEP_X, w - g->box_s);
	g->box_y = bounce(frame, BOX_STEP_Y, g->grad_end - g->box_s);
}

/* Writes value v to the columns of [a, b) that fall in the chunk [x0, x0 + n). */
static void span(uint32_t *out, uint32_t x0, uint32_t n, uint32_t a, uint32_t b, uint32_t v)
{
	if (a < x0)
		a = x0;
	if (b > x0 + n)
		b = x0 + n;
	for (uint32_t x = a; x < b; x++)
		out[x - x0] = v;
}

static void counter_row(const struct frame_geo *g, uint32_t *out, uint32_t x0, uint32_t n)
{
	for (uint32_t i = 0; i < COUNTER_BITS; i++) {
		uint32_t a = (uint32_t)((uint64_t)g->w * i / COUNTER_BITS);
		uint32_t b = (uint32_t)((uint64_t)g->w * (i + 1) / COUNTER_BITS);
		uint32_t gap = (b - a) / 8 ? (b - a) / 8 : 1;
		int bit = (int)((g->frame >> (COUNTER_BITS - 1 - i)) & 1);

		if (b <= x0 || a >= x0 + n || a == b)
			continue;
		if (gap > b - a)
			gap = b - a;
		span(out, x0, n, a, a + gap, PX(i % 8 == 0 ? 0xc00000 : 0x000000));
		span(out, x0, n, a + gap, b, PX(bit ? 0xffffff : 0x303030));
	}
}

/* Pixels [x0, x0 + n) of row y, in host order; the caller stores them little-endian. */
static void gen_span(const struct frame_geo *g, uint32_t y, uint32_t x0, uint32_t n, uint32_t *out)
{
	if (y < g->bars_end) {
		for (unsigned i = 0; i < 7; i++)
			span(out, x0, n, g->bar_x[i], g->bar_x[i + 1], PX(bar_rgb[i]));
	} else if (y < g->grad_end) {
		for (uint32_t x = x0; x < x0 + n; x++) {
			uint32_t v = (((x * (uint64_t)g->grad_inc) >> 16) + g->grad_shift) & 0xff;
			out[x - x0] = PX(v << 16 | v << 8 | v);
		}
	} else if (y >= g->band_top && y < g->band_bot) {
		counter_row(g, out, x0, n);
	} else {
		span(out, x0, n, 0, g->w, PX(0));
	}
	if (g->box_s && y >= g->box_y && y - g->box_y < g->box_s)
		span(out, x0, n, g->box_x, g->box_x + g->box_s, PX(0xffffff));
	for (uint32_t i = 0; i < n; i++)
		out[i] = htole32(out[i]);
}

void tool_pattern_frame(void *pixels, uint32_t width, uint32_t height, uint32_t stride,
			uint64_t frame)
{
	struct frame_geo g;
	uint32_t buf[CHUNK];

	/* A stride shorter than a row would make rows overlap: nothing sensible to draw. */
	if (!width || !height || stride / 4 < width)
		return;
	geo_init(&g, width, height, frame);
	for (uint32_t y = 0; y < height; y++) {
		unsigned char *row = (unsigned char *)pixels + (size_t)y * stride;

		/* Generated in a local buffer and copied: pixels and stride need not be 4-byte
		 * aligned, and a 4 KiB memcpy from L1 costs next to nothing. */
		for (uint32_t x = 0; x < width; x += CHUNK) {
			uint32_t n = width - x < CHUNK ? width - x : CHUNK;
			gen_span(&g, y, x, n, buf);
			memcpy(row + (size_t)x * 4, buf, (size_t)n * 4);
		}
	}
}

long tool_pattern_frame_check(const void *pixels, uint32_t width, uint32_t height, uint32_t stride,
			      uint64_t frame)
{
	struct frame_geo g;
	uint32_t buf[CHUNK];

	if (!width || !height)
		return -1;
	if (stride / 4 < width)
		return 0; /* no layout can hold this frame: call the first pixel wrong */
	geo_init(&g, width, height, frame);
	for (uint32_t y = 0; y < height; y++) {
		const unsigned char *row = (const unsigned char *)pixels + (size_t)y * stride;

		for (uint32_t x = 0; x < width; x += CHUNK) {
			uint32_t n = width - x < CHUNK ? width - x : CHUNK;

			gen_span(&g, y, x, n, buf);
			if (memcmp(row + (size_t)x * 4, buf, (size_t)n * 4) == 0)
				continue;
			for (uint32_t i = 0; i < n; i++)
				if (memcmp(row + (size_t)(x + i) * 4, &buf[i], 4) != 0)
					return (long)y * width + x + i;
		}
	}
	return -1;
}
