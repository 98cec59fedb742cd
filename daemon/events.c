/*
 * A session's event queue (PROTOCOL.md §3, Event): bounded by event_queue, the oldest kept, one
 * OVERFLOW where the loss happened. Events are framed by the writer (session.c) while the
 * output is nearly empty, so the queue, not the byte buffer, absorbs a slow reader.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/hyperbufd.h"

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
