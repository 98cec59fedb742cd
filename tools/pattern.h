/*
 * Deterministic test content shared by the demo, the tests and the benchmarks: a writer and a
 * reader that agree without talking, so a consumer can verify every byte it was shared.
 */
#ifndef HB_TOOLS_PATTERN_H
#define HB_TOOLS_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* Fills len bytes with a pseudo-random stream determined by seed (any len, any alignment). */
void tool_pattern_fill(void *dst, size_t len, uint64_t seed);
/* Offset of the first byte that differs from tool_pattern_fill(seed), or len if all match. */
size_t tool_pattern_check(const void *src, size_t len, uint64_t seed);

/* XRGB8888 moving test pattern (colour bars, a moving box, a frame counter band): pixel value
 * is a pure function of (x, y, frame, width, height). stride is in bytes. */
void tool_pattern_frame(void *pixels, uint32_t width, uint32_t height, uint32_t stride,
			uint64_t frame);
/* Index (y * width + x) of the first wrong pixel, or -1 if the frame is exactly right. */
long tool_pattern_frame_check(const void *pixels, uint32_t width, uint32_t height, uint32_t stride,
			      uint64_t frame);

/* The frame the demo and the benchmarks share: 1080p XRGB8888, rows packed. */
#define TOOL_FRAME_W      1920u
#define TOOL_FRAME_H      1080u
#define TOOL_FRAME_STRIDE (TOOL_FRAME_W * 4u)
#define TOOL_FRAME_BYTES  ((size_t)TOOL_FRAME_STRIDE * TOOL_FRAME_H) /* 8 294 400 */

/* vmdisplay-style metadata the demo puts in each export (little-endian, packed by hand). */
struct tool_frame_meta {
	uint32_t version; /* 1 */
	uint32_t width, height, stride;
	uint32_t format;      /* DRM fourcc, XR24 */
	uint32_t slot;        /* which of the producer's buffers */
	uint64_t frame;       /* frame number */
	uint64_t produced_ns; /* CLOCK_MONOTONIC when the producer finished the frame */
	char surface[32];     /* surface name */
};

#define TOOL_FOURCC_XRGB8888 0x34325258u /* 'X' 'R' '2' '4' */

#endif
