/*
 * The daemon's events for hyperbufctl (PROTOCOL.md §10): a control session that sent Subscribe
 * gets a CtlEvent frame for every session that starts or ends, export, unexport, import,
 * release, domain that comes or goes, timeline created or destroyed, refused connection,
 * refused request and reload. Nothing here may slow the daemon down or grow without bound: an
 * event is framed straight into the subscriber's output, and a subscriber whose output holds
 * more than HBD_WATCH_BACKLOG bytes misses events, counted and told with the next one it gets.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/hyperbufd.h"

/* Unread bytes a subscriber may have before its events are dropped (a few thousand events). */
#define HBD_WATCH_BACKLOG (256u * 1024u)

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int hbd_watch_subscribe(struct hbd_session *s)
{
	if (!s->control)
		return -EPERM; /* a client session's events are its own (Event) */
	if (!s->subscribed) {
		s->subscribed = true;
		s->d->n_subscribed++;
	}
	return 0;
}

void hbd_watch_session_end(struct hbd_session *s, const char *reason)
{
	struct hbd_watch_ev ev = {
	    .what = "session_end", .s = s, .domain = s->dom->id, .detail = reason};

	if (s->subscribed) {
		s->subscribed = false;
		s->d->n_subscribed--;
	}
	/* A control session that ends is nobody's business but its own. */
	if (s->hello && !s->control)
		hbd_watch_emit(s->d, &ev);
}

/* One subscriber's copy of an event, or a count of one more it missed. */
static void watch_send(struct hbd_session *s, CtlEvent *e)
{
	ServerMsg msg = SERVER_MSG__INIT;

	if (s->out.len >= HBD_WATCH_BACKLOG) {
		s->watch_dropped++;
		return;
	}
	e->seq = ++s->watch_seq;
	e->dropped = s->watch_dropped;
	msg.body_case = SERVER_MSG__BODY_CTL_EVENT;
	msg.ctl_event = e;
	/* A frame that cannot be queued is one more missed event, not a reason to drop the
	 * session: the daemon's work goes on whoever watches it. */
	if (hbd_session_send(s, &msg, -1) < 0)
		s->watch_dropped++;
	else
		s->watch_dropped = 0;
}

void hbd_watch_emit(struct hbd *d, const struct hbd_watch_ev *ev)
{
	CtlEvent e = CTL_EVENT__INIT;
	struct hbd_session *s;
	char detail[HBP_CTL_DETAIL_MAX + 1];

	if (!d->n_subscribed)
		return;
	e.time_ms = wall_ms();
	e.what = (char *)ev->what;
	e.session = ev->s ? (char *)ev->s->label : (char *)"";
	e.domain = ev->domain;
	e.peer = ev->peer;
	if (ev->hid) {
		e.hid.data = (uint8_t *)ev->hid->bytes;
		e.hid.len = sizeof(ev->hid->bytes);
	}
	e.size = ev->size;
	e.timeline = ev->timeline;
	e.value = ev->value;
	/* Bounded as the frame codec wants it; the words come from the daemon's own messages. */
	snprintf(detail, sizeof(detail), "%s", ev->detail ? ev->detail : "");
	e.detail = detail;
	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		if (s->subscribed && !s->closing)
			watch_send(s, &e);
	}
}

/* The hid of a request's body, if it names one (16 bytes after frame validation). */
static const struct hb_id *wire_hid(ProtobufCBinaryData b, struct hb_id *out)
{
	if (b.len != sizeof(out->bytes))
		return NULL;
	memcpy(out->bytes, b.data, sizeof(out->bytes));
	return out;
}

void hbd_watch_done(struct hbd_session *s, const ClientMsg *cm, const ServerMsg *reply)
{
	struct hbd_watch_ev ev = {.s = s, .domain = s->dom->id};
	struct hb_id hid;
	struct hbd_buffer *b;

	if (!s->d->n_subscribed)
		return;
	switch (cm->body_case) {
	case CLIENT_MSG__BODY_HELLO:
		ev.what = s->control ? NULL : "session";
		break;
	case CLIENT_MSG__BODY_EXPORT:
		b = hbd_buffer_find(s, cm->export->buffer);
		ev.what = "export";
		ev.hid = wire_hid(reply->export->hid, &hid);
		ev.peer = b ? b->mem.peer : 0;
		ev.size = b ? b->mem.size : 0;
		break;
	case CLIENT_MSG__BODY_UNEXPORT:
		ev.what = "unexport";
		ev.hid = wire_hid(cm->unexport->hid, &hid);
		break;
	case CLIENT_MSG__BODY_IMPORT:
		ev.what = "import";
		ev.hid = wire_hid(cm->import->hid, &hid);
		ev.peer = reply->import->exporter;
		ev.size = reply->import->desc ? reply->import->desc->size : 0;
		break;
	case CLIENT_MSG__BODY_RELEASE:
		ev.what = "release";
		break;
	case CLIENT_MSG__BODY_TIMELINE_CREATE:
		ev.what = "timeline";
		ev.timeline = reply->timeline->timeline;
		break;
	default:
		break;
	}
	if (ev.what)
		hbd_watch_emit(s->d, &ev);
}
