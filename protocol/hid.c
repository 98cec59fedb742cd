/*
 * Export handles. Bytes 0..3 are the serial (little-endian, never 0) and bytes 4..15 come
 * from getrandom(): the random part is what makes a hid unguessable, so it is never derived
 * from anything a peer could predict.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "protocol/hid.h"

#define HID_LEN        16u
#define HID_SERIAL_LEN 4u

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fill_random(uint8_t *p, size_t len)
{
	while (len > 0) {
		/* Never block the daemon's loop: before the kernel's pool is ready at early
		 * boot this fails with EAGAIN, and the export fails with it rather than stall
		 * every other client. */
		ssize_t r = getrandom(p, len, GRND_NONBLOCK);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int hbp_hid_generate(uint32_t serial, struct hb_id *out)
{
	int r;

	if (!out || serial == 0)
		return -EINVAL;
	out->bytes[0] = (uint8_t)serial;
	out->bytes[1] = (uint8_t)(serial >> 8);
	out->bytes[2] = (uint8_t)(serial >> 16);
	out->bytes[3] = (uint8_t)(serial >> 24);
	/* All 128 bits set is reserved as implausible; a 2^-96 chance, but never hand it out. */
	do {
		r = fill_random(out->bytes + HID_SERIAL_LEN, HID_LEN - HID_SERIAL_LEN);
		if (r < 0)
			return r;
	} while (!hbp_hid_plausible(out));
	return 0;
}

int hbp_hid_from_wire(const uint8_t *data, size_t len, struct hb_id *out)
{
	if (!data || !out || len != HID_LEN)
		return -EINVAL;
	memcpy(out->bytes, data, HID_LEN);
	return 0;
}

bool hbp_hid_plausible(const struct hb_id *id)
{
	size_t i;

	if (!id || get_le32(id->bytes) == 0)
		return false;
	for (i = 0; i < HID_LEN; i++)
		if (id->bytes[i] != 0xff)
			return true;
	return false;
}

static uint32_t rotl32(uint32_t v, unsigned n)
{
	return (v << n) | (v >> (32 - n));
}

uint32_t hbp_hid_hash(const struct hb_id *id, unsigned bits)
{
	uint32_t h;

	if (bits == 0)
		return 0;
	if (bits > 32)
		bits = 32;
	/* The random part is uniform for hids we made. Fold all 96 bits and mix, so the top bits
	 * used for the bucket depend on every byte (a forged hid only costs a failed lookup). */
	h = get_le32(id->bytes + 4) ^ rotl32(get_le32(id->bytes + 8), 11) ^
	    rotl32(get_le32(id->bytes + 12), 22);
	h *= 0x9e3779b1u;
	h ^= h >> 15;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return bits == 32 ? h : h >> (32 - bits);
}
