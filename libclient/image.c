/*
 * Image descriptions (hyperbuf.h, "Images"): struct hb_image to and from the start of an
 * export's metadata. The wire form and the checks are protocol/image.c's; this file adds only
 * what the library knows: the size of the buffer a description must fit. It is built on the
 * public calls alone, so it takes no lock of its own.
 */
#include <errno.h>
#include <string.h>

#include "libclient/client.h"
#include "protocol/image.h"

HBL_PUBLIC size_t hb_image_init(struct hb_image *img, uint32_t format, uint32_t width,
				uint32_t height, uint32_t stride_align)
{
	int err = 0;
	uint64_t size = hbp_image_layout(img, format, width, height, stride_align, &err);

	if (size == 0 || size > SIZE_MAX) {
		errno = size ? EOVERFLOW : err;
		return 0;
	}
	return (size_t)size;
}

HBL_PUBLIC int hb_image_check(const struct hb_image *img, size_t buffer_size)
{
	int r;

	if (!img)
		return hbl_fail(-EINVAL);
	r = hbp_image_check(img, buffer_size);
	return r < 0 ? hbl_fail(r) : 0;
}

HBL_PUBLIC ssize_t hb_image_encode(const struct hb_image *img, void *out, size_t len)
{
	ssize_t n = hbp_image_encode(img, out, len);

	return n < 0 ? hbl_fail((int)n) : n;
}

HBL_PUBLIC ssize_t hb_image_decode(const void *meta, size_t len, size_t buffer_size,
				   struct hb_image *img)
{
	ssize_t n;
	int r;

	if ((!meta && len > 0) || !img)
		return hbl_fail(-EINVAL);
	n = hbp_image_decode(meta, len, img);
	if (n < 0)
		return hbl_fail((int)n);
	r = hbp_image_check(img, buffer_size);
	return r < 0 ? hbl_fail(r) : n;
}

HBL_PUBLIC int hb_export_image_flags(struct hb_buffer *b, const struct hb_image *img,
				     const void *extra, size_t extra_len, uint32_t flags,
				     struct hb_id *id)
{
	uint8_t meta[HB_META_MAX];
	ssize_t n;

	if (!b || !img || (!extra && extra_len > 0))
		return hbl_fail(-EINVAL);
	if (extra_len > HB_META_MAX - HB_IMAGE_WIRE_SIZE)
		return hbl_fail(-EMSGSIZE);
	/* Our own mistake is caught here, not by every consumer. */
	if (hbp_image_check(img, hb_buffer_size(b)) < 0)
		return hbl_fail(-EBADMSG);
	n = hbp_image_encode(img, meta, sizeof(meta));
	if (n < 0)
		return hbl_fail((int)n);
	if (extra_len)
		memcpy(meta + n, extra, extra_len);
	return hb_export(b, meta, (size_t)n + extra_len, flags, id);
}

HBL_PUBLIC int hb_export_image(struct hb_buffer *b, const struct hb_image *img, const void *extra,
			       size_t extra_len, struct hb_id *id)
{
	return hb_export_image_flags(b, img, extra, extra_len, 0, id);
}

HBL_PUBLIC int hb_event_image(const struct hb_event *ev, struct hb_image *img)
{
	if (!ev || ev->type != HB_EVENT_EXPORTED || ev->meta_len > HB_META_MAX)
		return hbl_fail(-EINVAL);
	if (ev->size > SIZE_MAX)
		return hbl_fail(-EBADMSG);
	return hb_image_decode(ev->meta, ev->meta_len, (size_t)ev->size, img) < 0 ? -1 : 0;
}

HBL_PUBLIC int hb_import_image(const struct hb_import *im, struct hb_image *img)
{
	uint8_t meta[HB_META_MAX];
	ssize_t len = hb_import_metadata(im, meta, sizeof(meta));

	if (len < 0)
		return -1;
	return hb_image_decode(meta, (size_t)len, hb_import_size(im), img) < 0 ? -1 : 0;
}

HBL_PUBLIC char *hb_image_format_name(uint32_t format, char out[5])
{
	return out ? hbp_image_format_name(format, out) : NULL;
}
