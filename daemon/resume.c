/*
 * Resuming a session after a restart (docs/PROTOCOL.md §8, docs/RESTART.md). A restored
 * session waits detached, with everything it owns, until its client says Hello with the
 * session's token on a new connection (or, on a VM channel, on the same one after a resync).
 * The connection's own session, which has not said Hello yet, then takes over the restored
 * one: its serial, token, buffers, imports, timelines, and the events queued meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "daemon/hyperbufd.h"

/* The restored session a token names, if the connection may take it: the same domain, and on
 * the host socket the same user. Anything else looks like an unknown token. */
static struct hbd_session *find(struct hbd *d, const struct hbd_session *s, const uint8_t *token)
{
	struct hbd_session *r;

	hbc_list_for_each_safe(r, &d->sessions, struct hbd_session, link)
	{
		if (!r->detached || r->closing || memcmp(r->token, token, HBP_TOKEN_LEN) != 0)
			continue;
		if (r->dom != s->dom || (r->door == HBD_DOOR_HOST && r->uid != s->uid))
			return NULL;
		return r;
	}
	return NULL;
}

static void move_list(struct hbc_list *to, struct hbc_list *from)
{
	while (!hbc_list_empty(from)) {
		struct hbc_list *n = from->next;

		hbc_list_remove(n);
		hbc_list_insert_tail(to, n);
	}
}

/* s takes over everything r owns and is; r is freed (it never had a connection). */
static void adopt(struct hbd_session *s, struct hbd_session *r)
{
	struct hbd *d = s->d;
	struct hbd_buffer *b;
	struct hbd_timeline *tl;

	s->serial = r->serial;
	memcpy(s->token, r->token, HBP_TOKEN_LEN);
	snprintf(s->label, sizeof(s->label), "%s", r->label);
	s->attached = r->attached;
	s->holds_on = r->holds_on;
	s->n_held = r->n_held;
	s->last_request = r->last_request;
	hbp_bytes_free(&s->last_reply);
	s->last_reply = r->last_reply;
	memset(&r->last_reply, 0, sizeof(r->last_reply));
	s->reply_fd_group = r->reply_fd_group;
	move_list(&s->buffers, &r->buffers);
	hbc_list_for_each_safe(b, &s->buffers, struct hbd_buffer, owner_link) b->owner = s;
	move_list(&s->imports, &r->imports);
	move_list(&s->timelines, &r->timelines);
	hbc_list_for_each_safe(tl, &s->timelines, struct hbd_timeline, owner_link) tl->owner = s;
	move_list(&s->events, &r->events);
	s->n_events = r->n_events;
	/* What was framed for it while detached (RECLAIMED) goes out after the welcome. */
	s->pending_out = r->out;
	memset(&r->out, 0, sizeof(r->out));
	/* The journal knows the session by its serial: s is r now. */
	if (r->st.dirty)
		hbc_list_remove(&r->st.link);
	s->st.known = r->st.known;
	s->st.dirty = 0;
	/* r stops counting among its domain's sessions; s counts once it is marked as hello'd. */
	r->dom->sessions--;
	ev_timer_stop(d->loop, &r->resume_timer);
	hbc_list_remove(&r->link);
	d->n_sessions--;
	hbp_bytes_free(&r->in);
	free(r);
}

int hbd_session_resume(struct hbd_session *s, const Hello *h, Welcome *w, int *resend_fd_group)
{
	struct hbd_session *r = find(s->d, s, h->resume.data);

	*resend_fd_group = -1;
	if (!r) {
		log_info("%s: resume with a token that names no session of this domain here",
			 s->label);
		return -ENOENT;
	}
	adopt(s, r);
	log_info("%s: resumed (pid %d)", s->label, (int)s->pid);
	/* A hold framed in an event the client never read would keep its pages for good. */
	hbd_holds_prune(s, h->holds, h->n_holds);
	w->resumed = true;
	w->last_request = s->last_request;
	/* The one request whose effects were kept while its reply was lost: it again. */
	if (h->pending && h->pending == s->last_request && s->last_reply.len)
		*resend_fd_group = (int)s->reply_fd_group;
	return 0;
}

/* A new client session's token. */
int hbd_session_new_token(struct hbd_session *s)
{
	if (getrandom(s->token, HBP_TOKEN_LEN, 0) != (ssize_t)HBP_TOKEN_LEN)
		return -EAGAIN;
	return 0;
}

/* After a resume's welcome: the reply the client missed, then what was framed for the session
 * while it waited. */
void hbd_session_resend(struct hbd_session *s, int fd_group)
{
	struct hbb_caller who = hbd_session_caller(s);
	ServerMsg *m;
	int fd = -1;

	if (fd_group >= 0) {
		m = server_msg__unpack(NULL, s->last_reply.len, s->last_reply.data);
		/* The pool fd an Attach's reply carried: the host gets a new one, as Attach does.
		 */
		if (m && fd_group > 0) {
			who.attached &= ~(1ull << (fd_group - 1));
			if (s->d->backend->attach(s->d->backend_state, &who, (uint32_t)fd_group, 0,
						  &fd) < 0)
				fd = -1;
		}
		if (m && hbd_session_send(s, m, fd) < 0)
			hbd_session_close(s, "cannot queue the reply it missed");
		if (m)
			server_msg__free_unpacked(m, NULL);
		if (fd >= 0)
			close(fd);
	}
	if (!s->closing && s->pending_out.len &&
	    hbp_bytes_reserve(&s->out, s->pending_out.len) == 0) {
		memcpy(s->out.data + s->out.len, s->pending_out.data, s->pending_out.len);
		s->out.len += s->pending_out.len;
		hbd_session_want_write(s);
	}
	hbp_bytes_free(&s->pending_out);
	hbd_fence_slots_retell(s);
}
