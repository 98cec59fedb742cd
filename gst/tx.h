/*
 * The sending side of hyperbufsink: a connection, the consumer it found, and the frames in
 * flight. A frame is a pooled GstBuffer whose memory is a hyperbuf buffer for the peer; it is
 * exported with its description and kept (a reference) until the consumer's timeline says it
 * is done with it; only then can the pool hand it out again. So a consumer that reads slowly
 * holds the producer at `buffers` frames in flight: the pool runs dry and upstream waits.
 *
 * Reference counted: the element holds one reference, and so does every pooled memory (its
 * hyperbuf buffer must be freed through the connection), so the connection outlives the last
 * pooled buffer whatever order GStreamer tears things down in.
 */
#ifndef HB_GST_TX_H
#define HB_GST_TX_H

#include "gst/hbgst.h"

struct hbg_tx;

/* What a call that failed saw: the element turns it into EOS or an error message. */
enum hbg_tx_status {
	HBG_TX_OK = 0,
	HBG_TX_FLUSHING,  /* the element is flushing or stopping */
	HBG_TX_PEER_GONE, /* the consumer went away */
	HBG_TX_ERROR,     /* anything else: hbg_tx_why says what */
};

/* Connects to address (NULL: as hb_connect(NULL)) to send to domain peer. NULL with *err set
 * to a message (g_free it) on failure. */
struct hbg_tx *hbg_tx_open(const char *address, uint32_t peer, guint buffers, guint timeout_ms,
			   char **err);
struct hbg_tx *hbg_tx_ref(struct hbg_tx *tx);
void hbg_tx_unref(struct hbg_tx *tx);
/* Lets go of every frame in flight and refuses new ones: the element is stopping. */
void hbg_tx_close(struct hbg_tx *tx);

/* The last failure's reason, valid until the next call. */
const char *hbg_tx_why(struct hbg_tx *tx);
struct hb_client *hbg_tx_client(struct hbg_tx *tx);
uint32_t hbg_tx_peer(const struct hbg_tx *tx);
/* Wakes and fails every wait (HBG_TX_FLUSHING) while flushing is TRUE. */
void hbg_tx_set_flushing(struct hbg_tx *tx, gboolean flushing);

/* Sends frame buf (its only memory is a pooled hyperbuf buffer, b), described by img (its
 * sequence and fence are set here) and x. Waits for the consumer's hello first. buf is kept
 * (a reference is taken) until the consumer is done with it. */
enum hbg_tx_status hbg_tx_send(struct hbg_tx *tx, GstBuffer *buf, struct hb_buffer *b,
			       struct hb_image *img, struct hbg_frame_extra *x);
/* Gives back to the pool the frames the consumer is done with; with block, waits (up to the
 * timeout) until at least one is, when any is in flight. */
enum hbg_tx_status hbg_tx_reclaim(struct hbg_tx *tx, gboolean block);
/* Tells the consumer the stream ended (a description with HB_IMAGE_EOS). */
enum hbg_tx_status hbg_tx_send_eos(struct hbg_tx *tx);

/* A buffer pool of hyperbuf buffers for tx's peer, of info's frames (pool.c). Its acquire waits
 * for the consumer (hbg_tx_reclaim) when every buffer is in flight. */
GstBufferPool *hbg_pool_new(struct hbg_tx *tx);
/* The hyperbuf buffer behind mem if it is one of tx's pooled memories, else NULL. */
struct hb_buffer *hbg_pool_memory_buffer(GstMemory *mem, struct hbg_tx *tx);

#endif
