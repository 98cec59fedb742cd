/* VM channel resync markers: see resync.h and docs/PROTOCOL.md §1.1. */
#include <errno.h>
#include <string.h>

#include "protocol/frame.h"
#include "protocol/limits.h"
#include "protocol/resync.h"

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void hbp_resync_pack(uint8_t out[HBP_RESYNC_LEN], const struct hbp_resync *m)
{
	memcpy(out, HBP_RESYNC_MAGIC, HBP_RESYNC_MAGIC_LEN);
	put_le32(out + 8, m->version);
	put_le32(out + 12, m->status);
	memcpy(out + 16, m->nonce, HBP_RESYNC_NONCE_LEN);
}

int hbp_resync_unpack(const uint8_t in[HBP_RESYNC_LEN], struct hbp_resync *m)
{
	if (memcmp(in, HBP_RESYNC_MAGIC, HBP_RESYNC_MAGIC_LEN) != 0)
		return -EPROTO;
	m->version = get_le32(in + 8);
	m->status = get_le32(in + 12);
	memcpy(m->nonce, in + 16, HBP_RESYNC_NONCE_LEN);
	return 0;
}

size_t hbp_resync_scan(const uint8_t *p, size_t len, bool *whole)
{
	const uint8_t *hit = len >= HBP_RESYNC_MAGIC_LEN
				 ? memmem(p, len, HBP_RESYNC_MAGIC, HBP_RESYNC_MAGIC_LEN)
				 : NULL;
	size_t k;

	*whole = hit != NULL;
	if (hit)
		return (size_t)(hit - p);
	for (k = len < HBP_RESYNC_MAGIC_LEN ? len : HBP_RESYNC_MAGIC_LEN - 1; k > 0; k--) {
		if (memcmp(p + len - k, HBP_RESYNC_MAGIC, k) == 0)
			return len - k;
	}
	return len;
}

bool hbp_resync_meta_unsafe(const uint8_t *meta, size_t len)
{
	bool whole;
	size_t at;

	if (!meta || len == 0)
		return false;
	at = hbp_resync_scan(meta, len, &whole);
	return whole || len - at >= HBP_RESYNC_MAGIC_LEN - 2;
}

enum hbp_split hbp_resync_split(const uint8_t *buf, size_t len, size_t *scan_from, size_t *n,
				struct hbp_resync *m)
{
	size_t at, next, lim;
	bool whole;
	long l;

	at = *scan_from + hbp_resync_scan(buf + *scan_from, len - *scan_from, &whole);
	if (!whole) {
		*scan_from = at;
		return HBP_SPLIT_FRAME;
	}
	if (at > 0) {
		l = hbp_frame_peek(buf, len, HBP_FRAME_MAX, NULL);
		if (l > 0 && HBP_FRAME_HEADER + (size_t)l <= at) {
			*scan_from = at; /* a whole frame before the marker goes first */
			return HBP_SPLIT_FRAME;
		}
		*n = at;
		return HBP_SPLIT_DROP;
	}
	lim = len < HBP_RESYNC_LEN ? len : HBP_RESYNC_LEN;
	next = 1 + hbp_resync_scan(buf + 1, lim - 1, &whole);
	if (whole) {
		*n = next;
		return HBP_SPLIT_DROP;
	}
	if (len < HBP_RESYNC_LEN)
		return HBP_SPLIT_WAIT;
	hbp_resync_unpack(buf, m);
	*n = HBP_RESYNC_LEN;
	return HBP_SPLIT_MARKER;
}
