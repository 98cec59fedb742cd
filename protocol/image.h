/*
 * Image descriptions (docs/PROTOCOL.md, "Image descriptions"): the wire form of struct hb_image
 * at the start of an export's metadata, and the checks a received one must pass. Pure: no I/O,
 * no allocation. The library's hb_image_* calls and the daemon's export listing use it.
 */
#ifndef HB_PROTOCOL_IMAGE_H
#define HB_PROTOCOL_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hyperbuf.h"

#define HBP_IMAGE_MAGIC   0x4d494248u /* "HBIM" as bytes on the wire */
#define HBP_IMAGE_VERSION 1u
#define HBP_IMAGE_SIZE    HB_IMAGE_WIRE_SIZE
#define HBP_IMAGE_FLAGS   (HB_IMAGE_DISCONT | HB_IMAGE_DELTA | HB_IMAGE_EOS)

/* img's wire form into out: HBP_IMAGE_SIZE, or -EINVAL (flags, n_planes) or -ENOSPC. */
ssize_t hbp_image_encode(const struct hb_image *img, uint8_t *out, size_t len);

/* The description at the start of meta into *img, unchecked against any buffer: the bytes it
 * takes, or -ENOMSG (no magic), -EBADMSG (short, malformed), -EPROTONOSUPPORT (version). */
ssize_t hbp_image_decode(const uint8_t *meta, size_t len, struct hb_image *img);

/* 0 if img fits a buffer of buffer_size bytes (hb_image_check says what is checked), else
 * -EBADMSG. */
int hbp_image_check(const struct hb_image *img, uint64_t buffer_size);

/* A linear layout of a known format (hb_image_init): the buffer size, or 0 with *err set to
 * EINVAL or EOVERFLOW. */
uint64_t hbp_image_layout(struct hb_image *img, uint32_t format, uint32_t width, uint32_t height,
			  uint32_t stride_align, int *err);

/* The format's four characters and a NUL, '?' for what is not printable. */
char *hbp_image_format_name(uint32_t format, char out[5]);

/* "1920x1080 XR24" for metadata that starts with a valid description of a buffer of size bytes,
 * "" otherwise (an application's blob, or a description that does not fit). */
void hbp_image_summary(const uint8_t *meta, size_t len, uint64_t size, char *out, size_t outlen);

#endif
