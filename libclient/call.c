/* Requests and their replies (see call.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sock.h"
#include "libclient/client.h"
#include "protocol/limits.h"

size_t hbl_pollfds(const struct hb_client *c, struct pollfd *pfd, size_t max)
{
	size_t n = 0;

	pfd[n++] = (struct pollfd){.fd = c->conn.tp.fd, .events = POLLIN};
	if (c->mem.ops && c->mem.ops->pollfds)
		n += c->mem.ops->pollfds(c->mem.state, pfd + n, max - n - 1);
	if (c->fences.stall_fd >= 0)
		pfd[n++] = (struct pollfd){.fd = c->fences.stall_fd, .events = POLLIN};
	return n;
}

/* Waits up to timeout_ms for something to read (and, with POLLOUT, for room to write). */
static int wait_io(struct hb_client *c, short extra, int timeout_ms)
{
	struct pollfd pfd[HBL_POLLFDS_MAX];
	size_t n = hbl_pollfds(c, pfd, sizeof(pfd) / sizeof(pfd[0]));

	/* A vchan's event channel never says "writable": room shows up as an input event. */
	if (c->conn.tp.ops->pollout)
		pfd[0].events |= extra;
	hbl_count(&c->conn.n_polls);
	if (poll(pfd, n, timeout_ms) < 0) {
		if (errno != EINTR)
			return -errno;
		return 0;
	}
	hbl_polled(c, pfd, n);
	return 0;
}

/* Sends conn.tx whole. While the transport is full it keeps reading, so that neither side can
 * end up waiting for the other to drain. */
static int send_all(struct hb_client *c)
{
	uint32_t resumes = c->resume.resumes;
	size_t off = 0;
	int r;

	while ((r = hbl_conn_flush(&c->conn, &off)) == -EAGAIN) {
		r = wait_io(c, POLLOUT, HBL_WAIT_SLICE_MS);
		if (r == 0)
			r = c->calls.pump(c, HBL_DISPATCH_BATCH);
		/* The pump resumed on a new stream: the request went again with the others. */
		if (r >= 0 && c->resume.resumes != resumes)
			return 0;
		/* Half a frame on the wire cannot be taken back: the stream is lost. */
		if (r < 0)
			return off > 0 ? hbl_conn_break(&c->conn, ECONNRESET) : r;
	}
	/* Lost while sending: resuming sends every request in flight again, this one too. */
	if (r == -HBL_LOST && !c->resume.active)
		r = hbl_resume(c);
	return r;
}

/* No timeout: the daemon answers every request, and a broken connection ends the wait
 * through the pump. It polls first: after a send, a reply cannot be there yet unless the
 * transport shows it (a whole frame already read is handled at once). */
static int wait_reply(struct hb_client *c, struct hbl_request *q)
{
	bool read_first = !hbl_conn_polls_all(&c->conn);
	int r;

	for (;; read_first = false) {
		if (!q->done && !read_first && !hbl_conn_has_frame(&c->conn)) {
			r = wait_io(c, 0, HBL_WAIT_SLICE_MS);
			if (r < 0)
				return r;
		}
		r = c->calls.pump(c, HBL_DISPATCH_BATCH);
		if (r < 0)
			return r;
		if (q->done)
			return 0;
	}
}

static uint32_t next_id(struct hbl_calls *calls)
{
	uint32_t id = calls->next_id++;

	if (calls->next_id == 0)
		calls->next_id = 1;
	return id;
}

/* With more than one reply outstanding, whose fds came in is only clear frame by frame. */
static void set_exact(struct hb_client *c)
{
	c->conn.exact = c->calls.pending && c->calls.pending->next;
}

static void forget(struct hb_client *c, struct hbl_request *q)
{
	struct hbl_request **pp;

	for (pp = &c->calls.pending; *pp != q; pp = &(*pp)->next)
		;
	*pp = q->next;
	set_exact(c);
}

/* Gives msg a fresh id and appends its frame to conn.tx; with a resumable connection, *frame
 * is a copy of it (a resume after a daemon restart sends it again). */
static int put_request(struct hb_client *c, ClientMsg *msg, uint32_t *id, uint8_t **frame,
		       size_t *frame_len)
{
	size_t at = c->conn.tx.len;
	int r;

	*id = next_id(&c->calls);
	msg->id = *id;
	r = hbp_frame_put_client(&c->conn.tx, msg, c->conn.frame_max);
	if (r < 0)
		return r;
	hbl_count(&c->conn.n_frames_out);
	if (c->conn.resumable && !c->resume.active) {
		*frame_len = c->conn.tx.len - at;
		*frame = malloc(*frame_len);
		if (!*frame) {
			c->conn.tx.len = at;
			return -ENOMEM;
		}
		memcpy(*frame, c->conn.tx.data + at, *frame_len);
	}
	log_debug("-> %s #%u (%zu bytes)", hbp_client_body_name(msg->body_case), *id,
		  c->conn.tx.len - at);
	return 0;
}

/* put_request, and q goes on the pending list. */
static int queue_request(struct hb_client *c, ClientMsg *msg, struct hbl_request *q)
{
	int r = put_request(c, msg, &q->id, &q->frame, &q->frame_len);

	if (r < 0)
		return r;
	q->next = c->calls.pending;
	c->calls.pending = q;
	set_exact(c);
	return 0;
}

/* The reply's verdict: 0, -error from the daemon (explained), or EPROTO (a wrong body). */
static int reply_verdict(struct hb_client *c, const ClientMsg *msg, ServerMsg__BodyCase want,
			 const struct hbl_request *q)
{
	int r;

	if (q->err)
		return q->err;
	if (q->reply.msg->error != 0) {
		/* A positive errno for the caller; anything that cannot be one is nonsense. */
		r = q->reply.msg->error < HBP_ERRNO_LIMIT ? -(int)q->reply.msg->error : -EPROTO;
		hbl_explain_reply(c, msg->body_case, -r, q->reply.msg->reason);
		return r;
	}
	if (want != SERVER_MSG__BODY__NOT_SET && q->reply.msg->body_case != want)
		return hbl_conn_break(&c->conn, EPROTO);
	return 0;
}

int hbl_call(struct hb_client *c, ClientMsg *msg, ServerMsg__BodyCase want, struct hbb_reply *reply)
{
	struct hbl_request q = {0};
	int r;

	memset(reply, 0, sizeof(*reply));
	/* A hold taken before this request is the daemon's to know first (hold.c). */
	hbl_holds_send_takes(c);
	r = hbl_conn_broken(&c->conn);
	if (r < 0)
		return r;
	hbp_bytes_consume(&c->conn.tx, c->conn.tx.len);
	r = queue_request(c, msg, &q);
	if (r < 0)
		return r;
	r = send_all(c);
	if (r == 0)
		r = wait_reply(c, &q);
	forget(c, &q);
	free(q.frame);
	if (r == 0)
		r = reply_verdict(c, msg, want, &q);
	if (r < 0) {
		hbl_reply_free(&q.reply);
		return r;
	}
	*reply = q.reply;
	return 0;
}

int hbl_call_batch(struct hb_client *c, ClientMsg *const *msgs, size_t n, ServerMsg__BodyCase want,
		   struct hbl_request *qs, int *errs)
{
	size_t queued = 0;
	int r;

	if (n > HBL_FLIGHT_MAX)
		return -EINVAL;
	memset(qs, 0, n * sizeof(*qs));
	hbl_holds_send_takes(c);
	r = hbl_conn_broken(&c->conn);
	if (r < 0)
		return r;
	hbp_bytes_consume(&c->conn.tx, c->conn.tx.len);
	while (queued < n && (r = queue_request(c, msgs[queued], &qs[queued])) == 0)
		queued++;
	/* Nothing was sent yet: what was queued goes again at the next call's start. */
	if (r == 0)
		r = send_all(c);
	for (size_t i = 0; i < queued && r == 0; i++)
		r = wait_reply(c, &qs[i]);
	for (size_t i = 0; i < queued; i++) {
		forget(c, &qs[i]);
		free(qs[i].frame);
		qs[i].frame = NULL;
		errs[i] = r < 0 ? r : reply_verdict(c, msgs[i], want, &qs[i]);
		if (errs[i] < 0)
			hbl_reply_free(&qs[i].reply);
	}
	for (size_t i = queued; i < n; i++)
		errs[i] = r;
	return r;
}

int hbl_call_simple(struct hb_client *c, ClientMsg *msg)
{
	struct hbb_reply reply;
	int r = hbl_call(c, msg, SERVER_MSG__BODY__NOT_SET, &reply);

	if (r == 0)
		hbl_reply_free(&reply);
	return r;
}

void hbl_reply_free(struct hbb_reply *reply)
{
	if (reply->msg)
		server_msg__free_unpacked(reply->msg, NULL);
	reply->msg = NULL;
	hbc_close_fds(reply->fds, &reply->nfds);
}

/* ---- posted requests -------------------------------------------------------------------- */

int hbl_post(struct hb_client *c, ClientMsg *msg)
{
	return hbl_post_tagged(c, msg, (struct hbl_posted){0});
}

int hbl_post_hold(struct hb_client *c, ClientMsg *msg, uint64_t hold)
{
	return hbl_post_tagged(c, msg, (struct hbl_posted){.hold = hold});
}

int hbl_post_tagged(struct hb_client *c, ClientMsg *msg, struct hbl_posted tag)
{
	hbl_holds_send_takes(c);
	struct hbl_calls *calls = &c->calls;
	struct hbl_posted *p;
	int r = hbl_conn_broken(&c->conn);

	if (r < 0)
		return r;
	if (calls->n_posted == HBL_POSTED_MAX)
		return -EAGAIN;
	hbp_bytes_consume(&c->conn.tx, c->conn.tx.len);
	p = &calls->posted[calls->n_posted];
	*p = (struct hbl_posted){.hold = tag.hold, .reexport = tag.reexport};
	r = put_request(c, msg, &p->id, &p->frame, &p->frame_len);
	if (r < 0)
		return r;
	/* Listed before it leaves: a resume while it is sent sends it again with the rest. */
	calls->n_posted++;
	return send_all(c);
}

static void posted_drop(struct hbl_calls *calls, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(calls->posted[i].frame);
	memmove(calls->posted, calls->posted + n, (calls->n_posted - n) * sizeof(*calls->posted));
	calls->n_posted -= n;
}

/* How many posted requests, oldest first, have ids up to id (ids grow, wrapping, never 0). */
static unsigned posted_upto(const struct hbl_calls *calls, uint32_t id)
{
	unsigned n = 0;

	while (n < calls->n_posted && (int32_t)(calls->posted[n].id - id) <= 0)
		n++;
	return n;
}

/* Reply m arrived: the daemon handles a session's requests in order and commits each before
 * its reply leaves, so every request posted before m's is handled (and kept) too. A reply to a
 * posted request itself is a refusal: logged, since the library posts only what cannot fail.
 * Returns whether m was such a reply (then it is consumed). */
static bool posted_reply(struct hb_client *c, ServerMsg *m)
{
	struct hbl_calls *calls = &c->calls;
	unsigned n = posted_upto(calls, m->id);
	bool ours = n > 0 && calls->posted[n - 1].id == m->id;
	uint64_t reexport = ours ? calls->posted[n - 1].reexport : 0;

	/* A resume's own calls go to a daemon that has not seen the posted requests yet. */
	if (c->resume.active && !ours)
		return false;
	posted_drop(calls, n);
	if (!ours)
		return false;
	if (m->error)
		log_err("the daemon refused request #%u, sent without waiting: %s%s%s", m->id,
			strerror(m->error < HBP_ERRNO_LIMIT ? (int)m->error : EPROTO),
			m->reason && m->reason[0] ? ": " : "", m->reason ? m->reason : "");
	/* Whatever the reason, that buffer's next export asks, and hears it. */
	if (m->error && reexport)
		hbl_reexport_refused(c, reexport);
	server_msg__free_unpacked(m, NULL);
	return true;
}

int hbl_posted_send_again(struct hb_client *c, uint32_t last)
{
	struct hbl_calls *calls = &c->calls;

	posted_drop(calls, last ? posted_upto(calls, last) : 0);
	for (unsigned i = 0; i < calls->n_posted; i++) {
		const struct hbl_posted *p = &calls->posted[i];
		int r;

		if (!p->frame)
			continue;
		r = hbl_conn_write_all(&c->conn, p->frame, p->frame_len, HBL_WAIT_SLICE_MS * 10);
		if (r < 0)
			return r;
	}
	return 0;
}

void hbl_calls_fini(struct hb_client *c)
{
	posted_drop(&c->calls, c->calls.n_posted);
}

int hbl_call_complete(struct hb_client *c, ServerMsg *m, int *fds, unsigned nfds)
{
	struct hbl_request *q;

	if (c->calls.n_posted && posted_reply(c, m)) {
		/* Only replies to Attach carry fds, and Attach is never posted (nor made while
		 * anything is: hb_connect makes it). */
		hbc_close_fds(fds, &nfds);
		return HBL_POSTED_REPLY;
	}

	for (q = c->calls.pending; q; q = q->next)
		if (q->id == m->id && !q->done)
			break;
	if (!q) {
		server_msg__free_unpacked(m, NULL);
		hbc_close_fds(fds, &nfds);
		return hbl_conn_break(&c->conn, EPROTO);
	}
	q->reply.msg = m;
	memcpy(q->reply.fds, fds, nfds * sizeof(int));
	q->reply.nfds = nfds;
	q->done = true;
	return 0;
}
