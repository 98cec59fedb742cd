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

/* A daemon's marker that answers nobody: it restarted, and every session on the channel must
 * resynchronise and resume (docs/PROTOCOL.md §8). Not an errno: errnos stay below 4096. */
#define HBP_RESYNC_RESTARTED 0x10000u

struct hbp_resync {
	uint32_t version; /* HBP_PROTOCOL_VERSION */
	/* client: 0; daemon: 0, an errno when it refuses (EPROTO), or HBP_RESYNC_RESTARTED */
	uint32_t status;
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

/* What the head of a channel's unhandled input is (hbp_resync_split). */
enum hbp_split {
	HBP_SPLIT_WAIT,   /* more bytes are needed to tell */
	HBP_SPLIT_FRAME,  /* a frame, or the start of one: handle it */
	HBP_SPLIT_DROP,   /* *n stale bytes to drop (a dead writer's, or a cut marker) */
	HBP_SPLIT_MARKER, /* a resync marker of *n bytes, unpacked into *m */
};

/*
 * Looks for resync markers in a channel's unhandled input buf[0..len), wherever they are: a
 * frame its writer never finished would otherwise swallow the next writer's first bytes. It
 * consumes nothing: it says what the head of the input is and how many bytes that is. A whole
 * frame before a marker goes first; other bytes before one are dropped; a marker that a later
 * magic cuts short was never written whole, and the later one wins. *scan_from (0 for fresh
 * input) remembers how far no magic can start; the caller moves it back by what it consumes.
 */
enum hbp_split hbp_resync_split(const uint8_t *buf, size_t len, size_t *scan_from, size_t *n,
				struct hbp_resync *m);

/*
 * True if sending these metadata bytes in an Export would put the magic on the wire: they
 * contain it, or end with all of it but the last one or two bytes (which the length of a
 * following frame could supply, since metadata can be the last field of a message). The
 * library refuses such metadata on VM channels; by chance it happens once in 2^48.
 */
bool hbp_resync_meta_unsafe(const uint8_t *meta, size_t len);

#endif
