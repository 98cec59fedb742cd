/*
 * The event queue and the dispatch entry point.
 *
 * The queue has the daemon's rule (PROTOCOL.md §3, Event): at most event_depth events; when
 * full, the new one is dropped, the oldest are kept, and one OVERFLOW is queued after them.
 * The OVERFLOW node may exceed the depth by one, so that the loss is always reported.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/xen/client.h"
#include "libclient/private.h"

static void append(struct hb_client *c, struct hbl_event_node *n)
{
	n->next = NULL;
	if (c->ev_tail)
		c->ev_tail->next = n;
	else
		c->ev_head = n;
	c->ev_tail = n;
	c->ev_count++;
}

/* Queues an OVERFLOW unless the newest queued event already is one: a run of losses (ours,
 * the daemon's, or both) is reported once. */
static void queue_overflow(struct hb_client *c)
{
	struct hbl_event_node *n;

	if (c->ev_tail && c->ev_tail->type == HB_EVENT_OVERFLOW)
		return;
	n = malloc(sizeof(*n));
	if (!n) {
		/* The node kept in reserve for exactly this. */
		n = c->ev_spare;
		c->ev_spare = NULL;
		if (!n)
			return;
	}
	memset(n, 0, sizeof(*n));
	n->type = HB_EVENT_OVERFLOW;
	append(c, n);
}

int hbl_event_push(struct hb_client *c, const Event *ev)
{
	struct hbl_event_node *n;

	if ((ev->hid.len != 0 && ev->hid.len != sizeof(n->id.bytes)) || ev->meta.len > HB_META_MAX)
		return hbl_break(c, EPROTO);
	/* Ours, not the application's: a parked buffer's grants may end. */
	if (ev->type == HBP_WIRE_EVENT_RECLAIMED) {
		if (c->grants)
			hbx_reclaimed(c, ev->buffer);
		return 0;
	}
	/* Xen: nothing may keep a dead domain's pages mapped, or it cannot finish dying. The
	 * imports from it become private copies before anybody hears of its death. */
	if (ev->type == HB_EVENT_DOMAIN_GONE && c->grants)
		hbx_domain_gone(c, ev->domain);
	/* A newer daemon may know more event types than we do: skip them, they are not ours
	 * to report. */
	if (ev->type < HB_EVENT_EXPORTED || ev->type > HB_EVENT_OVERFLOW)
		return 0;
	/* Fence events are the library's own (hbl_event_push_fence), made from FenceDone
	 * messages; an Event of that type from the daemon would be a forgery. */
	if (ev->type == HB_EVENT_FENCE)
		return 0;
	if (ev->type == HB_EVENT_OVERFLOW || c->ev_count >= c->event_depth) {
		queue_overflow(c);
		return 0;
	}
	n = malloc(sizeof(*n) + ev->meta.len);
	if (!n) {
		queue_overflow(c);
		return 0;
	}
	memset(n, 0, sizeof(*n));
	n->type = (enum hb_event_type)ev->type;
	if (ev->hid.len)
		memcpy(n->id.bytes, ev->hid.data, sizeof(n->id.bytes));
	n->domain = ev->domain;
	n->size = ev->size;
	n->meta_len = (uint32_t)ev->meta.len;
	if (ev->meta.len)
		memcpy(n->meta, ev->meta.data, ev->meta.len);
	append(c, n);
	return 0;
}

void hbl_event_push_fence(struct hb_client *c, uint64_t timeline, uint64_t value, uint32_t owner)
{
	struct hbl_event_node *n;

	if (c->ev_count >= c->event_depth) {
		queue_overflow(c);
		return;
	}
	n = malloc(sizeof(*n));
	if (!n) {
		queue_overflow(c);
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
	append(c, n);
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

void hbl_events_free(struct hb_client *c)
{
	while (c->ev_head) {
		struct hbl_event_node *n = c->ev_head;
		c->ev_head = n->next;
		free(n);
	}
	c->ev_tail = NULL;
	c->ev_count = 0;
	free(c->ev_spare);
	c->ev_spare = NULL;
}

HBL_PUBLIC int hb_next_event(struct hb_client *c, struct hb_event *ev)
{
	struct hbl_event_node *n;
	int r;

	if (!c || !ev)
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	n = c->ev_head;
	if (!n) {
		/* Events that arrived before a break are still handed out; after them, the
		 * break itself is the answer. */
		r = hbl_broken(c);
		hbl_unlock(c);
		return hbl_fail(r < 0 ? r : -EAGAIN);
	}
	c->ev_head = n->next;
	if (!c->ev_head)
		c->ev_tail = NULL;
	c->ev_count--;
	if (!c->ev_spare)
		c->ev_spare = malloc(sizeof(*c->ev_spare));
	hbl_unlock(c);

	ev->type = n->type;
	ev->id = n->id;
	ev->domain = n->domain;
	ev->size = n->size;
	ev->meta_len = n->meta_len < HB_META_MAX ? n->meta_len : HB_META_MAX;
	memcpy(ev->meta, n->meta, ev->meta_len);
	free(n);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

HBL_PUBLIC int hb_dispatch(struct hb_client *c, int timeout_ms)
{
	struct pollfd pfd[1 + HBP_MAX_GROUPS];
	int64_t deadline = 0;
	size_t npfd;
	int r;

	if (!c)
		return hbl_fail(-EINVAL);
	/* The fds never change after hb_connect, so the set is built once, without the lock. */
	npfd = hbl_pollfds(c, pfd, sizeof(pfd) / sizeof(pfd[0]));
	if (timeout_ms > 0)
		deadline = now_ms() + timeout_ms;
	for (;;) {
		int wait = timeout_ms;
		bool queued;

		hbl_lock(c);
		r = hbl_read_available(c, HBL_DISPATCH_BATCH);
		/* Events a blocking call already read from the socket leave the fd quiet:
		 * never sleep on it while they wait in the queue. */
		queued = c->ev_head != NULL;
		hbl_unlock(c);
		if (r != 0)
			return r < 0 ? hbl_fail(r) : r;
		if (timeout_ms == 0 || queued)
			return 0;
		if (timeout_ms > 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return 0;
			wait = (int)left;
		}
		/* Wait without the lock, so other threads' calls are not held up by a long
		 * dispatch. Whatever woke us may have been taken by one of those calls (its
		 * events are queued all the same): then we simply wait again. */
		if (poll(pfd, npfd, wait) < 0 && errno != EINTR)
			return -1;
	}
}
