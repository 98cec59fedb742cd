/*
 * Resynchronising a VM channel (docs/PROTOCOL.md §1.1). A virtio-serial port is one byte
 * stream for the life of the VM, used by one guest process after another: a process that dies
 * in the middle of a frame leaves half of it in the stream, and the daemon's answers to it may
 * still be on their way when the next process opens the port. So a guest process starts with
 * a resync marker; the daemon finds it wherever it lands (even inside the unfinished frame),
 * ends the session the dead process left, drops everything before the marker and answers with
 * a marker of its own carrying the process's random nonce, which the process looks for among
 * whatever stale bytes reach it first.
 *
 * A marker is 32 bytes: the magic, then version, status and a 16-byte nonce, little-endian.
 * The magic's first four bytes read as a frame length far above HBP_FRAME_MAX, so at a frame
 * boundary a marker can never be taken for a frame. No I/O here.
 */
#ifndef HB_PROTOCOL_RESYNC_H
#define HB_PROTOCOL_RESYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HBP_RESYNC_MAGIC     "\x89HBSYNC\n"
#define HBP_RESYNC_MAGIC_LEN 8u
#define HBP_RESYNC_LEN       32u
#define HBP_RESYNC_NONCE_LEN 16u

struct hbp_resync {
	uint32_t version; /* HBP_PROTOCOL_VERSION */
	uint32_t status;  /* client: 0; daemon: 0, or an errno when it refuses (EPROTO) */
	uint8_t nonce[HBP_RESYNC_NONCE_LEN];
};

void hbp_resync_pack(uint8_t out[HBP_RESYNC_LEN], const struct hbp_resync *m);
/* Returns 0, or -EPROTO if in does not start with the magic. */
int hbp_resync_unpack(const uint8_t in[HBP_RESYNC_LEN], struct hbp_resync *m);

/*
 * Looks for the magic in p[0..len). Returns the offset of the first whole magic with *whole
 * set; else the offset where the longest tail of p that is a proper prefix of the magic starts
 * (len if none), with *whole clear: up to there, no later byte can complete a magic.
 */
size_t hbp_resync_scan(const uint8_t *p, size_t len, bool *whole);

/*
 * True if sending these metadata bytes in an Export would put the magic on the wire: they
 * contain it, or end with all of it but the last one or two bytes (which the length of a
 * following frame could supply, since metadata can be the last field of a message). The
 * library refuses such metadata on VM channels; by chance it happens once in 2^48.
 */
bool hbp_resync_meta_unsafe(const uint8_t *meta, size_t len);

#endif
