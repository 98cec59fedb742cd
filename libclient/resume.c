/*
 * Resuming a session after the daemon restarted (docs/RESTART.md, PROTOCOL.md §8), inside
 * whatever call noticed: no thread of our own.
 *
 * The stream is lost in one of two ways: it ends (a socket's EOF, a vchan's end: the daemon
 * died and its connections with it), or, on a VM channel the daemon kept across its restart,
 * a resync marker says RESTARTED. Either way: a new stream to the same place (or a resync on
 * the kept one), Hello with the welcome's token and the id of the request still in flight,
 * then what the old daemon never answered goes again. The daemon answers the one request
 * whose effects it kept but whose reply was lost with that reply, so nothing happens twice.
 * Fences waited on are opened again: their waits were the old daemon's. A daemon that dies
 * during any of it makes one more attempt, never a resume inside a resume. All within the
 * time the daemon keeps a session for its client; after that, the client breaks as it always
 * did.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "libclient/client.h"
#include "protocol/limits.h"

/* The application's requests still waiting for their replies, oldest first: one call's (the
 * client's lock allows one call), which is one request or a batch (hbl_call_batch). Returns
 * how many. */
static size_t in_flight(struct hb_client *c, struct hbl_request **out)
{
	size_t n = 0;

	/* The list is newest first, and a batch queues in id order. */
	for (struct hbl_request *q = c->calls.pending; q && n < HBL_FLIGHT_MAX; q = q->next)
		if (!q->done && q->frame)
			out[n++] = q;
	for (size_t i = 0; i < n / 2; i++) {
		struct hbl_request *t = out[i];

		out[i] = out[n - 1 - i];
		out[n - 1 - i] = t;
	}
	return n;
}

/* A stream to the daemon again: a new connection where the old one ended, or the kept
 * channel resynchronised. */
static int reopen(struct hb_client *c, int left_ms)
{
	struct hbl_conn *conn = &c->conn;
	struct hbb_transport tp;
	int r;

	if (!conn->restarted && c->resume.kind != HBL_ADDR_KVM) {
		r = hbl_open_transport(c, &tp);
		if (r < 0)
			return r;
		hbl_conn_replace(conn, &tp);
		/* A pool's handshake reads the channel while it waits: this one now. */
		c->mem.svc.channel_fd = conn->tp.fd;
	} else {
		hbl_conn_reset_input(conn);
	}
	/* A port the daemon kept answers markers; so does a new channel connection. */
	if (conn->channel) {
		r = hbk_channel_resync(conn->tp.fd, left_ms < 1000 ? 1000 : left_ms);
		if (r < 0)
			return r;
		hbl_conn_reset_input(conn);
	}
	conn->restarted = false;
	return 0;
}

/* Hello with the token. *last: the last request whose effects the daemon kept. */
static int resume_hello(struct hb_client *c, uint32_t pending, uint32_t *last)
{
	Hello h = HELLO__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	uint64_t holds[HBP_HELLO_HOLDS_MAX];
	const Welcome *w;
	int r;

	h.version = HBP_PROTOCOL_VERSION;
	h.role = HBP_ROLE_CLIENT;
	h.features = c->offered;
	h.resume = (ProtobufCBinaryData){HBP_TOKEN_LEN, c->resume.token};
	h.pending = pending;
	/* The daemon gives back every other hold: one in an event we never read would stay. */
	h.holds = holds;
	h.n_holds = hbl_holds_known(c, holds, HBP_HELLO_HOLDS_MAX);
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &h;
	r = hbl_call(c, &m, SERVER_MSG__BODY_WELCOME, &reply);
	if (r < 0)
		return r;
	w = reply.msg->welcome;
	if (!w->resumed || w->domain != c->domain || w->version != HBP_PROTOCOL_VERSION)
		r = -EPROTO;
	if (r == 0) {
		*last = w->last_request;
		hbl_take_resume(c, w);
		hbl_holds_resumed(c);
	}
	hbl_reply_free(&reply);
	return r;
}

/* The oldest of qs still waiting for its reply (the one a Hello names pending), or NULL. */
static struct hbl_request *oldest_waiting(struct hbl_request **qs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!qs[i]->done)
			return qs[i];
	return NULL;
}

/* After the resume's welcome: sends again, in order, what the old daemon never kept (ids after
 * last). The oldest request, named pending in the Hello, gets its reply again if it was last.
 * Any other whose effects were kept lost its reply with the old stream: it fails with
 * ECONNRESET, its outcome unknown to the caller (an export is idempotent: exporting the
 * buffer again says its id). An attempt cut short by another restart is made again from the
 * start: what it decided stays decided. */
static int send_again(struct hb_client *c, struct hbl_request **qs, size_t n, uint32_t last)
{
	struct hbl_request *first = oldest_waiting(qs, n);

	for (size_t i = 0; i < n; i++) {
		struct hbl_request *q = qs[i];
		int r;

		if (q->done)
			continue;
		/* Ids grow (wrapping, never 0); last 0: the daemon kept none of them. */
		if (last == 0 || (int32_t)(q->id - last) > 0) {
			r = hbl_conn_write_all(&c->conn, q->frame, q->frame_len,
					       HBL_WAIT_SLICE_MS * 10);
			if (r < 0)
				return r;
		} else if (q != first || q->id != last) {
			q->done = true;
			q->err = -ECONNRESET;
		}
	}
	return 0;
}

/* An attempt's error that no retry can change. */
static bool final(int r)
{
	return r == -ENOENT || r == -EPROTO || r == -EACCES || r == -EPERM || r == -ENOMEM;
}

static void pause_ms(unsigned ms)
{
	poll(NULL, 0, (int)ms);
}

int hbl_resume(struct hb_client *c)
{
	struct hbl_conn *conn = &c->conn;
	uint64_t deadline = hbc_now_ms() + c->resume.ms;
	struct hbl_request *qs[HBL_FLIGHT_MAX];
	size_t n = in_flight(c, qs);
	unsigned backoff = 5;
	uint32_t last = 0;
	int err = conn->lost_err, r;

	log_debug("the daemon went away (%s); resuming the session for %u ms", strerror(err),
		  c->resume.ms);
	c->resume.active = true;
	for (;;) {
		uint64_t now = hbc_now_ms();

		conn->lost = false;
		/* The watches were the old daemon's: their points are opened again below. */
		hbl_watches_drop(c);
		r = reopen(c, (int)(deadline > now ? deadline - now : 0));
		if (r == 0) {
			struct hbl_request *first = oldest_waiting(qs, n);

			r = resume_hello(c, first ? first->id : 0, &last);
		}
		/* Oldest first: the posted requests went before the call in flight. */
		if (r == 0)
			r = hbl_posted_send_again(c, last);
		if (r == 0)
			r = send_again(c, qs, n, last);
		if (r == 0)
			r = hbl_fences_reopen(c);
		if (r == 0)
			break;
		log_debug("resume: %s", strerror(-r));
		if (final(r) || hbc_now_ms() + backoff >= deadline)
			goto fail;
		pause_ms(backoff);
		backoff = backoff < 250 ? backoff * 2 : 500;
	}
	c->resume.active = false;
	c->resume.resumes++;
	log_debug("resumed the session (resume %u)", c->resume.resumes);
	hbl_events_push_restarted(c);
	return hbl_conn_broken(conn);

fail:
	c->resume.active = false;
	conn->lost = false;
	log_debug("cannot resume the session: %s", strerror(-r));
	return hbl_conn_break(conn, err);
}
