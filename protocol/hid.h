/*
 * Export handles (hids): 128 bits = a 32-bit little-endian serial (never 0) + 96 bits from
 * getrandom(). Lookups compare all 128 bits; the serial only spreads them over a hash table.
 */
#ifndef HB_PROTOCOL_HID_H
#define HB_PROTOCOL_HID_H

#include <stdbool.h>
#include <stdint.h>

#include "hyperbuf.h"

/* Makes a fresh hid with the given serial. Returns 0, or -errno if getrandom fails. */
int hbp_hid_generate(uint32_t serial, struct hb_id *out);
/* Copies 16 wire bytes into *out; -EINVAL if len != 16. */
int hbp_hid_from_wire(const uint8_t *data, size_t len, struct hb_id *out);
/* A well-formed hid: serial != 0 and not all bits set. Forged ones may still be well-formed. */
bool hbp_hid_plausible(const struct hb_id *id);
/* Hash for a table of 2^bits buckets, from the random part. */
uint32_t hbp_hid_hash(const struct hb_id *id, unsigned bits);

#endif
