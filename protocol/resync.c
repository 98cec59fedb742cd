/* VM channel resync markers: see resync.h and docs/PROTOCOL.md §1.1. */
#include <errno.h>
#include <string.h>

#include "resync.h"

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

void hb_resync_pack(uint8_t out[HB_RESYNC_LEN], const struct hb_resync *m)
{
	memcpy(out, HB_RESYNC_MAGIC, HB_RESYNC_MAGIC_LEN);
	put_le32(out + 8, m->version);
	put_le32(out + 12, m->status);
	memcpy(out + 16, m->nonce, HB_RESYNC_NONCE_LEN);
}

int hb_resync_unpack(const uint8_t in[HB_RESYNC_LEN], struct hb_resync *m)
{
	if (memcmp(in, HB_RESYNC_MAGIC, HB_RESYNC_MAGIC_LEN) != 0)
		return -EPROTO;
	m->version = get_le32(in + 8);
	m->status = get_le32(in + 12);
	memcpy(m->nonce, in + 16, HB_RESYNC_NONCE_LEN);
	return 0;
}

size_t hb_resync_scan(const uint8_t *p, size_t len, bool *whole)
{
	const uint8_t *hit = len >= HB_RESYNC_MAGIC_LEN
				 ? memmem(p, len, HB_RESYNC_MAGIC, HB_RESYNC_MAGIC_LEN)
				 : NULL;
	size_t k;

	*whole = hit != NULL;
	if (hit)
		return (size_t)(hit - p);
	for (k = len < HB_RESYNC_MAGIC_LEN ? len : HB_RESYNC_MAGIC_LEN - 1; k > 0; k--) {
		if (memcmp(p + len - k, HB_RESYNC_MAGIC, k) == 0)
			return len - k;
	}
	return len;
}

bool hb_resync_meta_unsafe(const uint8_t *meta, size_t len)
{
	bool whole;
	size_t at;

	if (!meta || len == 0)
		return false;
	at = hb_resync_scan(meta, len, &whole);
	return whole || len - at >= HB_RESYNC_MAGIC_LEN - 2;
}
