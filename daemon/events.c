/*
 * A session's event queue (PROTOCOL.md §3, Event): bounded by event_queue, the oldest kept, one
 * OVERFLOW where the loss happened. Events and fence completions are framed here when the
 * writer (session.c) asks, while the output is nearly empty, so the queue, not the byte buffer,
 * absorbs a slow reader.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/hyperbufd.h"

/* Events are serialised only while less than this is waiting in the output buffer, so the
 * bounded event queue, not the byte buffer, absorbs a slow reader. */
#define HBD_EVENT_LOW_WATER 65536u

static struct hbd_event *event_new(uint32_t type, const struct hb_id *hid, uint32_t domain,
				   uint64_t size, const uint8_t *meta, uint32_t meta_len)
{
	struct hbd_event *ev = calloc(1, sizeof(*ev) + meta_len);

	if (!ev)
		return NULL;
	ev->type = type;
	if (hid) {
		ev->hid = *hid;
		ev->has_hid = true;
	}
	ev->domain = domain;
	ev->size = size;
	ev->meta_len = meta_len;
	if (meta_len)
		memcpy(ev->meta, meta, meta_len);
	return ev;
}

static bool queue_ends_in_overflow(const struct hbd_session *s)
{
	return !hbc_list_empty(&s->events) &&
	       hbc_container_of(s->events.prev, struct hbd_event, link)->type == HB_EVENT_OVERFLOW;
}

void hbd_session_event(struct hbd_session *s, uint32_t type, const struct hb_id *hid,
		       uint32_t domain, uint64_t size, const uint8_t *meta, uint32_t meta_len)
{
	struct hbd_event *ev = NULL;

	if (s->closing)
		return;
	if (s->n_events < s->d->cfg->event_queue)
		ev = event_new(type, hid, domain, size, meta, meta_len);
	if (!ev) {
		/* Keep the oldest: they say what happened first. One OVERFLOW marker goes right
		 * after them, where the loss happened, and tells the client to resynchronise
		 * with hb_query. It is the one node allowed beyond the limit. */
		s->d->stats.events_dropped++;
		if (!queue_ends_in_overflow(s)) {
			ev = event_new(HB_EVENT_OVERFLOW, NULL, 0, 0, NULL, 0);
			if (!ev)
				return; /* nothing can be queued: the next event tries again */
			hbc_list_insert_tail(&s->events, &ev->link);
			hbd_state_event_new(s, ev);
		}
		hbd_session_want_write(s);
		return;
	}
	hbc_list_insert_tail(&s->events, &ev->link);
	s->n_events++;
	/* Kept until it is framed: a restart in between sends it still (docs/RESTART.md). */
	hbd_state_event_new(s, ev);
	hbd_session_want_write(s);
}

void hbd_session_event_free(struct hbd_session *s, struct hbd_event *ev)
{
	hbc_list_remove(&ev->link);
	if (ev->type != HB_EVENT_OVERFLOW && s->n_events)
		s->n_events--;
	hbd_state_forget_event(s->d, ev);
	free(ev);
}

int hbd_session_event_restore(struct hbd_session *s, uint64_t key, uint32_t type,
			      const struct hb_id *hid, uint32_t domain, uint64_t size,
			      const uint8_t *meta, uint32_t meta_len)
{
	struct hbd_event *ev = event_new(type, hid, domain, size, meta, meta_len);

	if (!ev)
		return -ENOMEM;
	ev->st_key = key;
	hbc_list_insert_tail(&s->events, &ev->link);
	if (type != HB_EVENT_OVERFLOW)
		s->n_events++;
	return 0;
}

/* ---- framing what a session is owed (its writer is session.c) --------------------------- */

/* Frames a queued completion and frees it; a watch's record is the watch's, framed from its
 * timeline's state. */
static int frame_fence(struct hbd_session *s, struct hbd_wait *w)
{
	ServerMsg msg = SERVER_MSG__INIT;
	FenceDone f = FENCE_DONE__INIT;
	int r;

	if (w->fwatch)
		return hbd_fence_watch_frame(s, w->fwatch);
	msg.body_case = SERVER_MSG__BODY_FENCE;
	msg.fence = &f;
	f.wait = w->id;
	f.timeline = w->timeline;
	f.value = w->value;
	f.status = w->status;
	r = hbd_session_send(s, &msg, -1);
	hbd_wait_free(w);
	return r;
}

int hbd_session_flush_fences(struct hbd_session *s)
{
	struct hbd_wait *w;
	int r;

	while ((w = hbd_session_next_done(s))) {
		r = frame_fence(s, w);
		if (r < 0)
			return r;
	}
	return 0;
}

static int put_event(struct hbd_session *s, const struct hbd_event *ev)
{
	ServerMsg msg = SERVER_MSG__INIT;
	Event e = EVENT__INIT;
	BufferDesc desc = BUFFER_DESC__INIT;

	msg.body_case = SERVER_MSG__BODY_EVENT;
	msg.event = &e;
	e.type = ev->type;
	if (ev->has_hid) {
		e.hid.data = (uint8_t *)ev->hid.bytes;
		e.hid.len = sizeof(ev->hid.bytes);
	}
	e.domain = ev->domain;
	e.size = ev->size;
	e.meta.data = (uint8_t *)ev->meta;
	e.meta.len = ev->meta_len;
	e.seq = ev->st_key;
	hbd_hold_put(s, &e, &desc);
	s->d->stats.events_sent++;
	return hbd_session_send(s, &msg, -1);
}

/* Moves queued fence completions, then events, into a nearly empty output buffer. */
int hbd_session_fill(struct hbd_session *s)
{
	struct hbd_event *ev;
	struct hbd_wait *w;
	int r;

	while (s->out.len < HBD_EVENT_LOW_WATER && (w = hbd_session_next_done(s))) {
		r = frame_fence(s, w);
		if (r < 0)
			return r;
	}

	hbc_list_for_each_safe(ev, &s->events, struct hbd_event, link)
	{
		if (s->out.len >= HBD_EVENT_LOW_WATER)
			return 0;
		r = put_event(s, ev);
		if (r < 0)
			return r;
		hbd_session_event_free(s, ev);
	}
	return 0;
}
