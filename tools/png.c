/* XRGB8888 -> RGB PNG with libpng, for the demo's "last frame" pictures. */
#include "tools/png.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void destroy(png_structp png, png_infop info)
{
	png_destroy_write_struct(&png, info ? &info : NULL);
}

int tool_png_write_xrgb(const char *path, const void *pixels, uint32_t w, uint32_t h,
			uint32_t stride)
{
	/* volatile: these change after setjmp and are read again after a longjmp from libpng. */
	png_structp volatile png = NULL;
	png_infop volatile info = NULL;
	unsigned char *volatile row = NULL;
	FILE *volatile f = NULL;
	int ret;

	if (!path || !pixels || !w || !h || stride / 4 < w || w > 0x7fffffff || h > 0x7fffffff)
		return -EINVAL;
	row = malloc((size_t)w * 3);
	if (!row)
		return -ENOMEM;
	f = fopen(path, "wb");
	if (!f) {
		ret = -errno;
		goto err_row;
	}
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	if (!png) {
		ret = -ENOMEM;
		goto err_file;
	}
	info = png_create_info_struct(png);
	if (!info) {
		ret = -ENOMEM;
		goto err_png;
	}
	/* libpng reports errors by longjmp; everything it can fail on lands here. */
	if (setjmp(png_jmpbuf(png))) {
		ret = -EIO;
		goto err_png;
	}
	png_init_io(png, f);
	/* Speed over size: the demo writes two 1080p pictures at the end of a timed run. */
	png_set_compression_level(png, 1);
	png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (uint32_t y = 0; y < h; y++) {
		const unsigned char *src = (const unsigned char *)pixels + (size_t)y * stride;

		/* XR24 is B, G, R, X in memory. */
		for (uint32_t x = 0; x < w; x++) {
			row[x * 3 + 0] = src[x * 4 + 2];
			row[x * 3 + 1] = src[x * 4 + 1];
			row[x * 3 + 2] = src[x * 4 + 0];
		}
		png_write_row(png, row);
	}
	png_write_end(png, NULL);
	destroy(png, info);
	free(row);
	if (fclose(f) != 0) {
		ret = -errno;
		unlink(path);
		return ret;
	}
	return 0;

err_png:
	destroy(png, info);
err_file:
	fclose(f);
	unlink(path);
err_row:
	free(row);
	return ret;
}
