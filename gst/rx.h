/*
 * The receiving side of hyperbufsrc: a connection, the hello that tells the producer about us,
 * a cache of imports (a producer re-exports the same few buffers, so each is mapped once), and
 * the frames downstream still holds. When downstream lets go of a frame, the consumer timeline
 * moves to the lowest sequence still held: that is what lets the producer reuse the buffer.
 *
 * Reference counted: the element holds one reference and every frame handed downstream holds
 * one, so the mapping (and the connection) outlives the element if a buffer does.
 */
#ifndef HB_GST_RX_H
#define HB_GST_RX_H

#include "gst/hbgst.h"

struct hbg_rx;

enum hbg_rx_status {
	HBG_RX_FRAME = 0,
	HBG_RX_EOS,       /* the producer ended its stream */
	HBG_RX_PEER_GONE, /* the producer went away */
	HBG_RX_FLUSHING,
	HBG_RX_TIMEOUT,
	HBG_RX_ERROR, /* hbg_rx_why says what */
};

/* A frame, mapped read-only, checked against its buffer. */
struct hbg_rx_frame {
	struct hb_image img;
	struct hbg_frame_extra x;
	const uint8_t *data;
	size_t size;
	/* for hbg_rx_release */
	unsigned slot;
	uint64_t seq;
};

/* Connects to address (NULL: as hb_connect(NULL)) to receive from domain peer, and says hello.
 * NULL with *err set (g_free it) on failure. */
struct hbg_rx *hbg_rx_open(const char *address, uint32_t peer, char **err);
struct hbg_rx *hbg_rx_ref(struct hbg_rx *rx);
void hbg_rx_unref(struct hbg_rx *rx);
/* Withdraws the hello and refuses new frames: the element is stopping. */
void hbg_rx_close(struct hbg_rx *rx);
void hbg_rx_set_flushing(struct hbg_rx *rx, gboolean flushing);
const char *hbg_rx_why(struct hbg_rx *rx);

/* The next frame, waiting up to timeout_ms (0: forever). A frame must be given back with
 * hbg_rx_release, from any thread. */
enum hbg_rx_status hbg_rx_next(struct hbg_rx *rx, guint timeout_ms, struct hbg_rx_frame *f);
void hbg_rx_release(struct hbg_rx *rx, const struct hbg_rx_frame *f);

#endif
