/*
 * What hyperbufsink and hyperbufsrc say to each other beyond the image description, in plain C
 * (the tests speak it too, as a hostile producer would). docs/GSTREAMER.md has the exchange:
 *
 *   hello  (consumer -> producer) the metadata of a small export to the producer's domain:
 *          HBG_HELLO_MAGIC, then the consumer's timeline id (u64). The consumer signals that
 *          timeline to v when it holds no frame below sequence v any more: the producer reuses a
 *          buffer whose frame was s once the timeline reaches s + 1, and a timeline that ends
 *          (-EPIPE) says the consumer is gone. Re-exported every HBG_HELLO_MS until the first
 *          frame arrives, so a producer that connects later still hears it.
 *   frame  (producer -> consumer) an export with the image description, then HBG_FRAME_EXTRA
 *          bytes: HBG_FRAME_MAGIC, framerate and pixel aspect ratio (4 x u32), and the id of
 *          the consumer timeline it is meant for (u64), so a consumer ignores frames of other
 *          streams in its domain. The description's fence names the producer's timeline: the
 *          consumer watches it to learn that the producer is gone. A description with
 *          HB_IMAGE_EOS carries no frame: the stream ended.
 */
#ifndef HB_GST_WIRE_H
#define HB_GST_WIRE_H

#include <stdint.h>
#include <string.h>

#define HBG_HELLO_MAGIC "HBGSTC01"
#define HBG_HELLO_SIZE  16u
#define HBG_HELLO_MS    200
#define HBG_FRAME_MAGIC "HBGV"
#define HBG_FRAME_EXTRA 28u

struct hbg_frame_extra {
	uint32_t fps_n, fps_d, par_n, par_d;
	uint64_t consumer; /* the consumer's timeline */
};

static inline void hbg_put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t hbg_get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline void hbg_hello_pack(uint64_t timeline, uint8_t out[HBG_HELLO_SIZE])
{
	memcpy(out, HBG_HELLO_MAGIC, 8);
	hbg_put_le(out + 8, timeline, 8);
}

/* The timeline a hello names, or 0 if meta is not a hello. */
static inline uint64_t hbg_hello_unpack(const uint8_t *meta, uint32_t len)
{
	if (len != HBG_HELLO_SIZE || memcmp(meta, HBG_HELLO_MAGIC, 8) != 0)
		return 0;
	return hbg_get_le(meta + 8, 8);
}

static inline void hbg_extra_pack(const struct hbg_frame_extra *x, uint8_t out[HBG_FRAME_EXTRA])
{
	memcpy(out, HBG_FRAME_MAGIC, 4);
	hbg_put_le(out + 4, x->fps_n, 4);
	hbg_put_le(out + 8, x->fps_d, 4);
	hbg_put_le(out + 12, x->par_n, 4);
	hbg_put_le(out + 16, x->par_d, 4);
	hbg_put_le(out + 20, x->consumer, 8);
}

/* The bytes after a description of desc_len bytes: 0, or -1 if they are not ours. */
static inline int hbg_extra_unpack(const uint8_t *meta, uint32_t len, size_t desc_len,
				   struct hbg_frame_extra *x)
{
	const uint8_t *p = meta + desc_len;

	if (len < desc_len || len - desc_len != HBG_FRAME_EXTRA || memcmp(p, HBG_FRAME_MAGIC, 4))
		return -1;
	x->fps_n = (uint32_t)hbg_get_le(p + 4, 4);
	x->fps_d = (uint32_t)hbg_get_le(p + 8, 4);
	x->par_n = (uint32_t)hbg_get_le(p + 12, 4);
	x->par_d = (uint32_t)hbg_get_le(p + 16, 4);
	x->consumer = hbg_get_le(p + 20, 8);
	return 0;
}

#endif
