/*
 * hyperbufsrc's flow (gst/rx.h). Every export from the producer's domain is looked at: a
 * frame is one whose last bytes name our timeline (gst/wire.h), so frames of other streams in
 * that domain are left alone; its description is checked by the library against the buffer
 * before anything maps it (EBADMSG: an error, never a crash). The producer is watched with a
 * fence on its timeline that is never signalled: it completes, with -EPIPE, only when the
 * producer is gone, however it went.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "gst/rx.h"

#define WAIT_SLICE_MS 50
#define CACHE_SIZE    64  /* distinct buffers mapped at once: the producer's pools */
#define HELD_MAX      256 /* frames downstream may hold at once */

struct cached_import {
	struct hb_id id;
	struct hb_import *im;
	guint refs;     /* frames of it downstream holds */
	gboolean stale; /* unexported: release once nobody holds it */
};

struct hbg_rx {
	gint refs;
	GMutex lock; /* all below; taken by hbg_rx_next and by releases from any thread */
	struct hb_client *c;
	struct hb_timeline *tl;
	struct hb_buffer *hello;
	uint32_t peer;
	uint64_t producer;     /* the producer's timeline, from its first frame */
	struct hb_sync *watch; /* (producer, never): completes when the producer is gone */
	struct cached_import cache[CACHE_SIZE];
	uint64_t held[HELD_MAX]; /* sequences of the frames downstream holds */
	guint n_held;
	uint64_t next_seq;  /* past the newest frame handed out */
	uint64_t signalled; /* our timeline's value */
	gboolean got_frame, closed;
	gint flushing; /* atomic */
	uint64_t hello_ms;
	char why[256];
	struct hb_event ev;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static enum hbg_rx_status fail(struct hbg_rx *rx, enum hbg_rx_status st, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static enum hbg_rx_status fail(struct hbg_rx *rx, enum hbg_rx_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rx->why, sizeof(rx->why), fmt, ap);
	va_end(ap);
	return st;
}

static enum hbg_rx_status call_failed(struct hbg_rx *rx, const char *call)
{
	int e = errno;

	if (e == EPIPE || e == ECONNRESET)
		return fail(rx, HBG_RX_ERROR, "lost the connection to hyperbufd (%s: %s)", call,
			    g_strerror(e));
	return fail(rx, HBG_RX_ERROR, "%s: %s", call, g_strerror(e));
}

/* (Re-)exports the hello; re-exporting tells a producer that connected since. */
static int say_hello(struct hbg_rx *rx)
{
	uint8_t hello[HBG_HELLO_SIZE];
	struct hb_id id;

	hbg_hello_pack(hb_timeline_id(rx->tl), hello);
	rx->hello_ms = now_ms();
	return hb_export(rx->hello, hello, sizeof(hello), 0, &id);
}

struct hbg_rx *hbg_rx_open(const char *address, uint32_t peer, char **err)
{
	struct hbg_rx *rx = g_new0(struct hbg_rx, 1);

	rx->refs = 1;
	g_mutex_init(&rx->lock);
	rx->peer = peer;
	rx->c = hb_connect(address);
	if (!rx->c) {
		*err =
		    g_strdup_printf("cannot connect to hyperbufd at %s: %s",
				    address ? address : "the default address", g_strerror(errno));
		goto err;
	}
	rx->tl = hb_timeline_create(rx->c);
	/* Its id travels in the hello's metadata: the producer must be let see it. */
	if (rx->tl && hb_timeline_share(rx->tl, peer) < 0) {
		*err = g_strdup_printf("cannot share a timeline with domain %u: %s", peer,
				       g_strerror(errno));
		goto err;
	}
	rx->hello = rx->tl ? hb_buffer_alloc(rx->c, peer, 64, 0) : NULL;
	if (!rx->hello || say_hello(rx) < 0) {
		*err =
		    g_strdup_printf("cannot say hello to domain %u: %s", peer, g_strerror(errno));
		goto err;
	}
	return rx;
err:
	hbg_rx_unref(rx);
	return NULL;
}

struct hbg_rx *hbg_rx_ref(struct hbg_rx *rx)
{
	g_atomic_int_inc(&rx->refs);
	return rx;
}

void hbg_rx_unref(struct hbg_rx *rx)
{
	if (!rx || !g_atomic_int_dec_and_test(&rx->refs))
		return;
	hbg_rx_close(rx);
	/* Our end tells the producer we are gone (its fences on our timeline fail). */
	hb_timeline_destroy(rx->tl);
	if (rx->c)
		hb_disconnect(rx->c); /* releases whatever import is left */
	g_mutex_clear(&rx->lock);
	g_free(rx);
}

static void forget(struct cached_import *e)
{
	hb_import_release(e->im);
	memset(e, 0, sizeof(*e));
}

void hbg_rx_close(struct hbg_rx *rx)
{
	g_mutex_lock(&rx->lock);
	rx->closed = TRUE;
	if (rx->hello)
		hb_buffer_free(rx->hello);
	rx->hello = NULL;
	hb_sync_close(rx->watch);
	rx->watch = NULL;
	for (guint i = 0; i < CACHE_SIZE; i++)
		if (rx->cache[i].im && rx->cache[i].refs == 0)
			forget(&rx->cache[i]);
	g_mutex_unlock(&rx->lock);
}

void hbg_rx_set_flushing(struct hbg_rx *rx, gboolean flushing)
{
	g_atomic_int_set(&rx->flushing, flushing);
}

const char *hbg_rx_why(struct hbg_rx *rx)
{
	return rx->why;
}

/* Moves our timeline to the lowest frame downstream still holds: the producer may reuse the
 * buffers of every frame below it. */
static void signal_released(struct hbg_rx *rx)
{
	uint64_t v = rx->next_seq;

	for (guint i = 0; i < rx->n_held; i++)
		v = MIN(v, rx->held[i]);
	if (v > rx->signalled && !rx->closed && hb_timeline_signal(rx->tl, v) == 0)
		rx->signalled = v;
}

void hbg_rx_release(struct hbg_rx *rx, const struct hbg_rx_frame *f)
{
	struct cached_import *e = &rx->cache[f->slot];

	g_mutex_lock(&rx->lock);
	for (guint i = 0; i < rx->n_held; i++) {
		if (rx->held[i] == f->seq) {
			rx->held[i] = rx->held[--rx->n_held];
			break;
		}
	}
	if (e->refs && --e->refs == 0 && (e->stale || rx->closed))
		forget(e);
	signal_released(rx);
	g_mutex_unlock(&rx->lock);
}

/* The cache slot of id, importing it on its first frame; -1 if it cannot be (*st says). */
static int lookup(struct hbg_rx *rx, const struct hb_id *id, uint64_t size, enum hbg_rx_status *st)
{
	int free_slot = -1;

	for (int i = 0; i < CACHE_SIZE; i++) {
		if (rx->cache[i].im && hb_id_equal(&rx->cache[i].id, id))
			return i;
		if (!rx->cache[i].im && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0) {
		*st = fail(rx, HBG_RX_ERROR, "more than %d buffers in flight", CACHE_SIZE);
		return -1;
	}
	rx->cache[free_slot].im = hb_import(rx->c, id, 0);
	if (!rx->cache[free_slot].im) {
		/* Unexported before we got to it (ENOENT): that frame is lost, not the stream. */
		*st = errno == ENOENT ? HBG_RX_TIMEOUT : call_failed(rx, "hb_import");
		return -1;
	}
	if (hb_import_size(rx->cache[free_slot].im) != size) {
		forget(&rx->cache[free_slot]);
		*st = fail(rx, HBG_RX_ERROR, "an export changed size while mapped");
		return -1;
	}
	rx->cache[free_slot].id = *id;
	return free_slot;
}

/* The first frame names the producer's timeline: watch it. */
static enum hbg_rx_status watch_producer(struct hbg_rx *rx, uint64_t timeline)
{
	struct hb_fence never = {.timeline = timeline, .value = UINT64_MAX};

	if (rx->producer || !timeline)
		return HBG_RX_FRAME;
	rx->producer = timeline;
	rx->watch = hb_sync_open(rx->c, &never);
	if (!rx->watch && errno == ENOENT)
		return fail(rx, HBG_RX_PEER_GONE, "the producer in domain %u went away", rx->peer);
	return rx->watch ? HBG_RX_FRAME : call_failed(rx, "hb_sync_open");
}

/* An EXPORTED event from the producer's domain: a frame for us, the end, or nothing (-1). */
static int take_frame(struct hbg_rx *rx, struct hbg_rx_frame *f)
{
	const struct hb_event *ev = &rx->ev;
	enum hbg_rx_status st = HBG_RX_FRAME;
	int slot;

	if (ev->meta_len < HBG_FRAME_EXTRA ||
	    hbg_extra_unpack(ev->meta, ev->meta_len, ev->meta_len - HBG_FRAME_EXTRA, &f->x) < 0 ||
	    f->x.consumer != hb_timeline_id(rx->tl))
		return -1;
	if (hb_event_image(ev, &f->img) < 0)
		return fail(rx, HBG_RX_ERROR, "a bad image description from domain %u: %s",
			    rx->peer, g_strerror(errno));
	if (f->img.flags & HB_IMAGE_EOS)
		return HBG_RX_EOS;
	st = watch_producer(rx, f->img.fence.timeline);
	if (st != HBG_RX_FRAME)
		return st;
	slot = lookup(rx, &ev->id, ev->size, &st);
	if (slot < 0 && st == HBG_RX_TIMEOUT) {
		/* Skipped, not held: the producer may have that buffer back. */
		rx->next_seq = MAX(rx->next_seq, f->img.sequence + 1);
		return -1;
	}
	if (slot < 0)
		return st;
	if (rx->n_held == HELD_MAX)
		return fail(rx, HBG_RX_ERROR, "downstream holds more than %d frames", HELD_MAX);
	rx->cache[slot].refs++;
	rx->held[rx->n_held++] = f->img.sequence;
	rx->next_seq = MAX(rx->next_seq, f->img.sequence + 1);
	rx->got_frame = TRUE;
	f->data = hb_import_data(rx->cache[slot].im);
	f->size = hb_import_size(rx->cache[slot].im);
	f->slot = (unsigned)slot;
	f->seq = f->img.sequence;
	return HBG_RX_FRAME;
}

/* A withdrawn buffer is released once downstream holds none of its frames. */
static void unexported(struct hbg_rx *rx, const struct hb_id *id)
{
	for (guint i = 0; i < CACHE_SIZE; i++) {
		struct cached_import *e = &rx->cache[i];

		if (e->im && hb_id_equal(&e->id, id)) {
			e->stale = TRUE;
			if (e->refs == 0)
				forget(e);
		}
	}
}

/* Queued events: a status to return, or -1 when they held nothing for us. */
static int read_events(struct hbg_rx *rx, struct hbg_rx_frame *f)
{
	int st;

	while (hb_next_event(rx->c, &rx->ev) == 0) {
		if (rx->ev.type == HB_EVENT_OVERFLOW)
			return fail(rx, HBG_RX_ERROR,
				    "events were lost (the event queue overflowed)");
		if (rx->ev.domain != rx->peer)
			continue;
		if (rx->ev.type == HB_EVENT_EXPORTED) {
			st = take_frame(rx, f);
			if (st >= 0)
				return st;
		} else if (rx->ev.type == HB_EVENT_UNEXPORTED) {
			unexported(rx, &rx->ev.id);
		} else if (rx->ev.type == HB_EVENT_DOMAIN_GONE && rx->got_frame) {
			return fail(rx, HBG_RX_PEER_GONE, "the producer's domain %u went away",
				    rx->peer);
		}
	}
	return -1;
}

/* One look at what arrived: a status, or -1 to wait for more. */
static int poll_once(struct hbg_rx *rx, uint64_t deadline, struct hbg_rx_frame *f)
{
	int st;

	if (g_atomic_int_get(&rx->flushing) || rx->closed)
		return HBG_RX_FLUSHING;
	st = read_events(rx, f);
	if (st >= 0)
		return st;
	if (rx->watch && hb_sync_status(rx->watch) < 0) {
		/* A lost connection fails every fence too: which one was it? */
		if (hb_dispatch(rx->c, 0) < 0)
			return call_failed(rx, "hb_dispatch");
		return fail(rx, HBG_RX_PEER_GONE, "the producer in domain %u went away", rx->peer);
	}
	/* Until a producer answers, the hello is repeated for one that connects later. */
	if (!rx->got_frame && now_ms() - rx->hello_ms >= HBG_HELLO_MS && say_hello(rx) < 0)
		return call_failed(rx, "hb_export(hello)");
	if (deadline && now_ms() >= deadline)
		return fail(rx, HBG_RX_TIMEOUT, "no frame from domain %u within timeout-ms",
			    rx->peer);
	return -1;
}

enum hbg_rx_status hbg_rx_next(struct hbg_rx *rx, guint timeout_ms, struct hbg_rx_frame *f)
{
	uint64_t deadline = timeout_ms ? now_ms() + timeout_ms : 0;
	int st, r;

	for (;;) {
		g_mutex_lock(&rx->lock);
		st = poll_once(rx, deadline, f);
		g_mutex_unlock(&rx->lock);
		if (st >= 0)
			return (enum hbg_rx_status)st;
		/* Without our lock: releases from downstream threads go on meanwhile. */
		r = hb_dispatch(rx->c, WAIT_SLICE_MS);
		if (r < 0) {
			g_mutex_lock(&rx->lock);
			st = call_failed(rx, "hb_dispatch");
			g_mutex_unlock(&rx->lock);
			return (enum hbg_rx_status)st;
		}
	}
}
