/* A minimal PNG writer for the demo: what a consumer saw, as a file a person can open. */
#ifndef HB_TOOLS_PNG_H
#define HB_TOOLS_PNG_H

#include <stdint.h>

/*
 * Writes w x h XRGB8888 pixels (little-endian, as DRM's XR24; stride in bytes) to path as an
 * 8-bit RGB PNG without alpha. Returns 0, or -errno (-EIO when libpng itself fails); a partly
 * written file is removed.
 */
int tool_png_write_xrgb(const char *path, const void *pixels, uint32_t w, uint32_t h,
			uint32_t stride);

#endif
