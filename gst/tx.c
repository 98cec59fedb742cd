/*
 * hyperbufsink's flow (gst/tx.h): the consumer's hello, frames out, frames back. The consumer
 * says it is done with frames by signalling its timeline; this side keeps one fence open on
 * it (the probe), whose status it can read without a round trip, and opens one only when the
 * pool runs dry. Waits
 * are cut in WAIT_SLICE_MS slices so that flushing and the timeout are noticed.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "gst/tx.h"

#define WAIT_SLICE_MS 50
#define RING_SIZE     (2 * HBG_MAX_BUFFERS) /* a caps change may leave two pools in flight */
#define MARKER_SIZE   4096u
#define MAPPED_MAX    RING_SIZE /* buffers the consumer is known to keep mapped */

struct inflight {
	GstBuffer *buf;
	uint64_t seq;
	struct hb_id id;
	gboolean mapped; /* the consumer has imported this buffer (it keeps it mapped) */
};

struct hbg_tx {
	gint refs;
	GMutex lock; /* all below; taken by render and by the pool's acquire */
	struct hb_client *c;
	struct hb_timeline *tl; /* ours: its end tells the consumer we are gone */
	uint32_t peer;
	guint buffers, timeout_ms;
	uint64_t consumer; /* the consumer's timeline, 0 until its hello */
	struct inflight ring[RING_SIZE];
	guint head, count;
	struct hb_sync *probe; /* (consumer, ring[head + probe_at].seq + 1), see open_probe */
	guint probe_at;
	uint64_t next_seq;
	gint flushing; /* atomic */
	gboolean closed, peer_gone;
	struct hb_id mapped[MAPPED_MAX]; /* hids the consumer imported, the oldest replaced */
	guint n_mapped;
	struct hb_buffer *marker; /* carries the EOS description */
	char why[256];
	struct hb_event ev;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static enum hbg_tx_status fail(struct hbg_tx *tx, enum hbg_tx_status st, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static enum hbg_tx_status fail(struct hbg_tx *tx, enum hbg_tx_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tx->why, sizeof(tx->why), fmt, ap);
	va_end(ap);
	return st;
}

/* A call failed: a lost connection (sticky) reads differently from a refused request. */
static enum hbg_tx_status call_failed(struct hbg_tx *tx, const char *call)
{
	int e = errno;

	if (e == EPIPE || e == ECONNRESET)
		return fail(tx, HBG_TX_ERROR, "lost the connection to hyperbufd (%s: %s)", call,
			    g_strerror(e));
	return fail(tx, HBG_TX_ERROR, "%s: %s", call, g_strerror(e));
}

struct hbg_tx *hbg_tx_open(const char *address, uint32_t peer, guint buffers, guint timeout_ms,
			   char **err)
{
	struct hbg_tx *tx = g_new0(struct hbg_tx, 1);

	tx->refs = 1;
	g_mutex_init(&tx->lock);
	tx->peer = peer;
	tx->buffers = buffers;
	tx->timeout_ms = timeout_ms;
	tx->c = hb_connect(address);
	if (!tx->c) {
		*err =
		    g_strdup_printf("cannot connect to hyperbufd at %s: %s",
				    address ? address : "the default address", g_strerror(errno));
		goto err;
	}
	if (hb_self_domain(tx->c) == peer) {
		*err = g_strdup_printf("peer %u is this domain", peer);
		goto err;
	}
	tx->tl = hb_timeline_create(tx->c);
	if (!tx->tl) {
		*err = g_strdup_printf("hb_timeline_create: %s", g_strerror(errno));
		goto err;
	}
	/* Its id travels in the frames' metadata: the consumer must be let see it. */
	if (hb_timeline_share(tx->tl, peer) < 0) {
		*err = g_strdup_printf("cannot share a timeline with domain %u: %s", peer,
				       g_strerror(errno));
		goto err;
	}
	return tx;
err:
	hbg_tx_unref(tx);
	return NULL;
}

struct hbg_tx *hbg_tx_ref(struct hbg_tx *tx)
{
	g_atomic_int_inc(&tx->refs);
	return tx;
}

void hbg_tx_unref(struct hbg_tx *tx)
{
	if (!tx || !g_atomic_int_dec_and_test(&tx->refs))
		return;
	/* The last pooled memory is gone: nothing of ours is left for the library to free. */
	hbg_tx_close(tx);
	hb_timeline_destroy(tx->tl);
	if (tx->c)
		hb_disconnect(tx->c);
	g_mutex_clear(&tx->lock);
	g_free(tx);
}

void hbg_tx_close(struct hbg_tx *tx)
{
	g_mutex_lock(&tx->lock);
	tx->closed = TRUE;
	hb_sync_close(tx->probe);
	tx->probe = NULL;
	/* Unreferenced outside the lock: a pool that is gone frees the buffer, and its memory
	 * drops a reference on tx. */
	while (tx->count) {
		GstBuffer *buf = tx->ring[tx->head].buf;

		tx->head = (tx->head + 1) % RING_SIZE;
		tx->count--;
		g_mutex_unlock(&tx->lock);
		gst_buffer_unref(buf);
		g_mutex_lock(&tx->lock);
	}
	if (tx->marker)
		hb_buffer_free(tx->marker);
	tx->marker = NULL;
	g_mutex_unlock(&tx->lock);
}

const char *hbg_tx_why(struct hbg_tx *tx)
{
	return tx->why;
}

struct hb_client *hbg_tx_client(struct hbg_tx *tx)
{
	return tx->c;
}

uint32_t hbg_tx_peer(const struct hbg_tx *tx)
{
	return tx->peer;
}

void hbg_tx_set_flushing(struct hbg_tx *tx, gboolean flushing)
{
	g_atomic_int_set(&tx->flushing, flushing);
}

static gboolean is_mapped(const struct hbg_tx *tx, const struct hb_id *id)
{
	for (guint i = 0; i < MIN(tx->n_mapped, MAPPED_MAX); i++)
		if (hb_id_equal(&tx->mapped[i], id))
			return TRUE;
	return FALSE;
}

/* The consumer imported id: it maps it from now on, whatever we do with the buffer. */
static void imported(struct hbg_tx *tx, const struct hb_id *id)
{
	if (!is_mapped(tx, id))
		tx->mapped[tx->n_mapped++ % MAPPED_MAX] = *id;
	for (guint i = 0; i < tx->count; i++) {
		struct inflight *f = &tx->ring[(tx->head + i) % RING_SIZE];

		if (hb_id_equal(&f->id, id))
			f->mapped = TRUE;
	}
}

/* Hellos name the consumer; imports say what it maps; its domain's end means it is gone. */
static void read_events(struct hbg_tx *tx)
{
	while (hb_next_event(tx->c, &tx->ev) == 0) {
		uint64_t tl;

		if (tx->ev.domain != tx->peer)
			continue;
		if (tx->ev.type == HB_EVENT_IMPORTED) {
			imported(tx, &tx->ev.id);
		} else if (tx->ev.type == HB_EVENT_EXPORTED) {
			tl = hbg_hello_unpack(tx->ev.meta, tx->ev.meta_len);
			if (tl && !tx->consumer) {
				GST_INFO("consumer in domain %u: timeline %" G_GUINT64_FORMAT,
					 tx->peer, tl);
				tx->consumer = tl;
			}
		} else if (tx->ev.type == HB_EVENT_DOMAIN_GONE && tx->consumer) {
			tx->peer_gone = TRUE;
		}
	}
}

/* The wait's end: 0 to go on, or why it must stop (flushing, the deadline, the peer). */
static enum hbg_tx_status check_wait(struct hbg_tx *tx, uint64_t deadline, const char *what)
{
	if (g_atomic_int_get(&tx->flushing) || tx->closed)
		return HBG_TX_FLUSHING;
	if (tx->peer_gone)
		return fail(tx, HBG_TX_PEER_GONE, "the consumer's domain %u went away", tx->peer);
	if (deadline && now_ms() >= deadline)
		return fail(tx, HBG_TX_ERROR, "%s within timeout-ms (%u ms)", what, tx->timeout_ms);
	return HBG_TX_OK;
}

static uint64_t deadline_of(const struct hbg_tx *tx)
{
	return tx->timeout_ms ? now_ms() + tx->timeout_ms : 0;
}

static enum hbg_tx_status wait_consumer(struct hbg_tx *tx)
{
	uint64_t deadline = deadline_of(tx);
	enum hbg_tx_status st;

	for (;;) {
		read_events(tx);
		if (tx->consumer)
			return HBG_TX_OK;
		st = check_wait(tx, deadline, "no hyperbufsrc said hello");
		if (st != HBG_TX_OK)
			return st;
		if (hb_dispatch(tx->c, WAIT_SLICE_MS) < 0)
			return call_failed(tx, "hb_dispatch");
	}
}

/*
 * The probe: one fence on the consumer's timeline, for the frame at ring index `probe_at`. A
 * fast consumer has usually released all but its newest frame by the time the pool runs dry,
 * so the first probe asks about the second newest: one round trip gives back every frame up
 * to it. If that one is still held, the probe moves to the oldest, the one to wait for.
 */
static enum hbg_tx_status open_probe(struct hbg_tx *tx, guint at)
{
	struct hb_fence f = {.timeline = tx->consumer,
			     .value = tx->ring[(tx->head + at) % RING_SIZE].seq + 1};

	tx->probe = hb_sync_open(tx->c, &f);
	tx->probe_at = at;
	if (tx->probe)
		return HBG_TX_OK;
	if (errno == ENOENT) /* the timeline ended before we asked */
		return fail(tx, HBG_TX_PEER_GONE, "the consumer in domain %u went away", tx->peer);
	return call_failed(tx, "hb_sync_open");
}

/* What the probe says: 0 pending, 1 done (frames up to it given back), or a failure. */
static enum hbg_tx_status read_probe(struct hbg_tx *tx, guint *released, gboolean *pending)
{
	int status = hb_sync_status(tx->probe);

	*pending = status == 0;
	if (status == 0)
		return HBG_TX_OK;
	hb_sync_close(tx->probe);
	tx->probe = NULL;
	/* A lost connection fails every fence too: which one was it? */
	if (status < 0 && hb_dispatch(tx->c, 0) < 0)
		return call_failed(tx, "hb_dispatch");
	if (status < 0)
		return fail(tx, HBG_TX_PEER_GONE, "the consumer in domain %u went away (%s)",
			    tx->peer, g_strerror(-status));
	/* The caller holds a reference on tx, so a pool that frees one of these buffers cannot
	 * drop the last one while we hold the lock. */
	for (guint i = 0; i <= tx->probe_at; i++) {
		gst_buffer_unref(tx->ring[tx->head].buf);
		tx->head = (tx->head + 1) % RING_SIZE;
		tx->count--;
		(*released)++;
	}
	return HBG_TX_OK;
}

/* Gives back what the consumer is done with. Without ask, only what an open probe already
 * says (no round trip); with it, probes as above until something comes back or the probe of
 * the oldest is pending. */
static enum hbg_tx_status release_done(struct hbg_tx *tx, gboolean ask, guint *released)
{
	enum hbg_tx_status st;
	gboolean pending;

	if (!tx->probe) {
		if (!ask || !tx->count)
			return HBG_TX_OK;
		st = open_probe(tx, tx->count >= 3 ? tx->count - 2 : 0);
		if (st != HBG_TX_OK)
			return st;
	}
	st = read_probe(tx, released, &pending);
	if (st != HBG_TX_OK || !pending || tx->probe_at == 0 || !ask)
		return st;
	/* The second newest is still held: the oldest is the one to wait for. */
	hb_sync_close(tx->probe);
	tx->probe = NULL;
	st = open_probe(tx, 0);
	return st != HBG_TX_OK ? st : read_probe(tx, released, &pending);
}

static enum hbg_tx_status reclaim_locked(struct hbg_tx *tx, gboolean block)
{
	uint64_t deadline = deadline_of(tx);
	enum hbg_tx_status st;
	guint released = 0;

	for (;;) {
		read_events(tx);
		st = release_done(tx, block, &released);
		if (st != HBG_TX_OK || !block || released || !tx->count)
			return st;
		st = check_wait(tx, deadline, "the consumer released no frame");
		if (st != HBG_TX_OK)
			return st;
		if (hb_sync_wait(tx->probe, WAIT_SLICE_MS) < 0 && errno != ETIME)
			return call_failed(tx, "hb_sync_wait");
	}
}

enum hbg_tx_status hbg_tx_reclaim(struct hbg_tx *tx, gboolean block)
{
	enum hbg_tx_status st;

	g_mutex_lock(&tx->lock);
	st = tx->closed ? HBG_TX_FLUSHING : reclaim_locked(tx, block);
	g_mutex_unlock(&tx->lock);
	return st;
}

/* flags: HB_EXPORT_NOWAIT for a frame. The pool's buffers are exported again and again, and
 * the consumer learns of each from its EXPORTED event, which comes after the export whether
 * or not we wait: waiting only held up the streaming thread for a round trip per frame. The
 * EOS marker waits: the element may stop right after it. */
static enum hbg_tx_status export_locked(struct hbg_tx *tx, struct hb_buffer *b,
					struct hb_image *img, struct hbg_frame_extra *x,
					uint32_t flags, struct hb_id *id)
{
	uint8_t extra[HBG_FRAME_EXTRA];

	img->sequence = tx->next_seq;
	img->fence.timeline = hb_timeline_id(tx->tl);
	img->fence.value = 0; /* written before it is sent: complete at export */
	x->consumer = tx->consumer;
	hbg_extra_pack(x, extra);
	if (hb_export_image_flags(b, img, extra, sizeof(extra), flags, id) < 0)
		return call_failed(tx, "hb_export_image");
	tx->next_seq++;
	return HBG_TX_OK;
}

enum hbg_tx_status hbg_tx_send(struct hbg_tx *tx, GstBuffer *buf, struct hb_buffer *b,
			       struct hb_image *img, struct hbg_frame_extra *x)
{
	enum hbg_tx_status st = HBG_TX_FLUSHING;
	struct inflight *slot;

	g_mutex_lock(&tx->lock);
	if (tx->closed)
		goto out;
	st = wait_consumer(tx);
	if (st == HBG_TX_OK && tx->count == RING_SIZE)
		st = reclaim_locked(tx, TRUE);
	if (st != HBG_TX_OK)
		goto out;
	slot = &tx->ring[(tx->head + tx->count) % RING_SIZE];
	st = export_locked(tx, b, img, x, HB_EXPORT_NOWAIT, &slot->id);
	if (st != HBG_TX_OK)
		goto out;
	slot->buf = gst_buffer_ref(buf);
	slot->seq = img->sequence;
	slot->mapped = is_mapped(tx, &slot->id);
	tx->count++;
	st = reclaim_locked(tx, FALSE);
out:
	g_mutex_unlock(&tx->lock);
	return st;
}

static gboolean all_mapped(const struct hbg_tx *tx)
{
	for (guint i = 0; i < tx->count; i++)
		if (!tx->ring[(tx->head + i) % RING_SIZE].mapped)
			return FALSE;
	return TRUE;
}

/*
 * Waits until the consumer maps every frame in flight (or gives it back): the element stops
 * right after EOS and frees its buffers, and a buffer withdrawn before the consumer imported
 * it would be a lost frame. Frames it already mapped stay readable, whatever we do.
 */
static enum hbg_tx_status wait_mapped(struct hbg_tx *tx)
{
	uint64_t deadline = deadline_of(tx);
	enum hbg_tx_status st;
	guint released = 0;

	for (;;) {
		read_events(tx);
		st = release_done(tx, TRUE, &released);
		if (st != HBG_TX_OK || all_mapped(tx))
			return st;
		st = check_wait(tx, deadline, "the consumer did not map the last frames");
		if (st != HBG_TX_OK)
			return st;
		if (hb_dispatch(tx->c, WAIT_SLICE_MS) < 0)
			return call_failed(tx, "hb_dispatch");
	}
}

enum hbg_tx_status hbg_tx_send_eos(struct hbg_tx *tx)
{
	struct hbg_frame_extra x = {0};
	enum hbg_tx_status st = HBG_TX_OK;
	struct hb_image img;
	struct hb_id id;

	g_mutex_lock(&tx->lock);
	/* Nobody listened: nobody to tell. */
	if (tx->closed || !tx->consumer || tx->peer_gone)
		goto out;
	st = wait_mapped(tx);
	if (st != HBG_TX_OK)
		goto out;
	if (!tx->marker)
		tx->marker = hb_buffer_alloc(tx->c, tx->peer, MARKER_SIZE, 0);
	if (!tx->marker) {
		st = call_failed(tx, "hb_buffer_alloc");
		goto out;
	}
	hb_image_init(&img, 0x34325258u /* XR24 */, 1, 1, 0);
	img.flags = HB_IMAGE_EOS;
	st = export_locked(tx, tx->marker, &img, &x, 0, &id);
out:
	g_mutex_unlock(&tx->lock);
	return st;
}
