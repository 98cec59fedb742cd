/* The event queue (see events.h) and the public calls that read it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "libclient/client.h"
#include "protocol/limits.h"

/* The frame codec bounds metadata by HBP_META_LIMIT; an event's copy must fit HB_META_MAX. */
_Static_assert(HB_META_MAX == HBP_META_LIMIT, "HB_META_MAX must equal HBP_META_LIMIT");

static void append(struct hbl_events *q, struct hbl_event_node *n)
{
	n->next = NULL;
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->count++;
}

/* Queues an OVERFLOW unless the newest queued event already is one: a run of losses (ours,
 * the daemon's, or both) is reported once. */
static void queue_overflow(struct hbl_events *q)
{
	struct hbl_event_node *n;

	if (q->tail && q->tail->type == HB_EVENT_OVERFLOW)
		return;
	n = malloc(sizeof(*n));
	if (!n) {
		/* The node kept in reserve for exactly this. */
		n = q->spare;
		q->spare = NULL;
		if (!n)
			return;
	}
	memset(n, 0, sizeof(*n));
	n->type = HB_EVENT_OVERFLOW;
	append(q, n);
}

int hbl_events_init(struct hbl_events *q, uint32_t depth)
{
	q->depth = depth;
	q->spare = malloc(sizeof(*q->spare));
	return q->spare ? 0 : -ENOMEM;
}

bool hbl_events_queued(const struct hb_client *c)
{
	return c->events.head != NULL;
}

void hbl_events_push(struct hb_client *c, const Event *ev)
{
	struct hbl_events *q = &c->events;
	struct hbl_event_node *n;
	size_t desc_len;

	/* A newer daemon may know more event types than we do: skip them, they are not ours
	 * to report. Fence events are the library's own (hbl_events_push_fence), made from
	 * FenceDone messages; an Event of that type from the daemon would be a forgery. */
	if (ev->type < HB_EVENT_EXPORTED || ev->type > HB_EVENT_OVERFLOW ||
	    ev->type == HB_EVENT_FENCE)
		return;
	if (ev->type == HB_EVENT_OVERFLOW || q->count >= q->depth) {
		hbl_hold_drop(c, ev->hold);
		queue_overflow(q);
		return;
	}
	/* The frame codec let a hold through only with its desc (frame.c). */
	desc_len = ev->hold ? buffer_desc__get_packed_size(ev->desc) : 0;
	n = malloc(sizeof(*n) + ev->meta.len + desc_len);
	if (!n) {
		hbl_hold_drop(c, ev->hold);
		queue_overflow(q);
		return;
	}
	memset(n, 0, sizeof(*n));
	if (ev->hold) {
		n->hold = ev->hold;
		n->hold_info = ev->flags;
		n->desc = n->meta + ev->meta.len;
		n->desc_len = (uint32_t)buffer_desc__pack(ev->desc, n->desc);
	}
	n->type = (enum hb_event_type)ev->type;
	if (ev->hid.len)
		memcpy(n->id.bytes, ev->hid.data, sizeof(n->id.bytes));
	n->domain = ev->domain;
	n->size = ev->size;
	n->meta_len = (uint32_t)ev->meta.len;
	if (ev->meta.len)
		memcpy(n->meta, ev->meta.data, ev->meta.len);
	append(q, n);
}

void hbl_events_push_fence(struct hb_client *c, uint64_t timeline, uint64_t value, uint32_t owner)
{
	struct hbl_events *q = &c->events;
	struct hbl_event_node *n;

	if (q->count >= q->depth) {
		queue_overflow(q);
		return;
	}
	n = malloc(sizeof(*n));
	if (!n) {
		queue_overflow(q);
		return;
	}
	memset(n, 0, sizeof(*n));
	n->type = HB_EVENT_FENCE;
	for (int i = 0; i < 8; i++) {
		n->id.bytes[i] = (uint8_t)(timeline >> (8 * i));
		n->id.bytes[8 + i] = (uint8_t)(value >> (8 * i));
	}
	n->domain = owner;
	n->size = value;
	append(q, n);
}

void hbl_events_push_restarted(struct hb_client *c)
{
	struct hbl_events *q = &c->events;
	struct hbl_event_node *n = q->count < q->depth ? malloc(sizeof(*n)) : NULL;

	if (!n) {
		queue_overflow(q);
		return;
	}
	memset(n, 0, sizeof(*n));
	n->type = HB_EVENT_RESTARTED;
	n->domain = c->domain;
	append(q, n);
}

HBL_PUBLIC int hb_event_fence(const struct hb_event *ev, struct hb_fence *f)
{
	if (!ev || !f || ev->type != HB_EVENT_FENCE)
		return hbl_fail(-EINVAL);
	f->timeline = 0;
	f->value = 0;
	for (int i = 7; i >= 0; i--) {
		f->timeline = f->timeline << 8 | ev->id.bytes[i];
		f->value = f->value << 8 | ev->id.bytes[8 + i];
	}
	return 0;
}

void hbl_events_free(struct hbl_events *q)
{
	while (q->head) {
		struct hbl_event_node *n = q->head;
		q->head = n->next;
		free(n);
	}
	q->tail = NULL;
	q->count = 0;
	free(q->spare);
	q->spare = NULL;
}

HBL_PUBLIC int hb_next_event(struct hb_client *c, struct hb_event *ev)
{
	struct hbl_event_node *n;
	int r;

	if (!c || !ev)
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	/* The hold of the event handed out before is not wanted any more (hold.c). */
	hbl_holds_given(c, NULL);
	n = c->events.head;
	if (!n) {
		/* Events that arrived before a break are still handed out; after them, the
		 * break itself is the answer. */
		r = hbl_conn_broken(&c->conn);
		hbl_unlock(c);
		return hbl_fail(r < 0 ? r : -EAGAIN);
	}
	c->events.head = n->next;
	if (!c->events.head)
		c->events.tail = NULL;
	c->events.count--;
	if (!c->events.spare)
		c->events.spare = malloc(sizeof(*c->events.spare));
	ev->type = n->type;
	ev->id = n->id;
	ev->domain = n->domain;
	ev->size = n->size;
	ev->meta_len = n->meta_len < HB_META_MAX ? n->meta_len : HB_META_MAX;
	memcpy(ev->meta, n->meta, ev->meta_len);
	/* One with a hold is kept for hb_import until the next event is asked for. */
	if (n->hold)
		hbl_holds_given(c, n);
	else
		free(n);
	hbl_unlock(c);
	return 0;
}
