/*
 * Client sessions: framing in, replies and events out, and the cleanup when a session ends.
 * Every byte a peer sends is hostile: lengths are checked before allocating, a violation drops
 * that session with a logged reason, and nothing a client does can stall the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sock.h"
#include "daemon/fdstore.h"
#include "daemon/hyperbufd.h"
#include "protocol/resync.h"

#define HBD_READ_CHUNK 65536u

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_hello_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static void on_drop(struct ev_loop *loop, ev_timer *w, int revents);
static void on_resume_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void ungate(struct hbd_session *s);

void hbd_session_want_write(struct hbd_session *s)
{
	/* A detached session has nowhere to write: what it is owed waits for its client. A
	 * session already waiting for room is written when it has some. */
	if (s->detached || s->closing || s->flush_queued || ev_is_active(&s->wio))
		return;
	s->flush_queued = true;
	hbc_list_insert_tail(&s->d->flushq, &s->flush_link);
}

struct hbd_session *hbd_session_new(struct hbd *d, int fd, struct hbd_domain *dom,
				    enum hbd_door door, struct hbd_user *user,
				    const struct hbc_cred *cred)
{
	struct hbd_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->d = d;
	s->fd = fd;
	s->dom = dom;
	s->door = door;
	s->user = user;
	s->serial = ++d->next_session;
	s->pid = cred->pid;
	s->uid = cred->uid;
	/* Every domain but the host reaches us over its VM's channel sockets. */
	s->channel = dom->id != 0;
	snprintf(s->label, sizeof(s->label), "%s#%llu", dom->name, (unsigned long long)s->serial);
	hbc_list_init(&s->events);
	hbc_list_init(&s->buffers);
	hbc_list_init(&s->imports);
	hbc_list_init(&s->timelines);
	hbc_list_init(&s->waits);
	hbc_list_init(&s->done);
	hbc_list_init(&s->fence_watches);
	ev_timer_init(&s->hello_timer, on_hello_timeout, d->cfg->hello_timeout_ms / 1000.0, 0.);
	s->hello_timer.data = s;
	/* Host and control connections must say Hello promptly. A VM channel is QEMU's,
	 * connected at VM start and idle until a guest process opens the port, however long
	 * that takes. */
	if (door != HBD_DOOR_VM)
		ev_timer_start(d->loop, &s->hello_timer);
	dom->conns++;
	ev_io_init(&s->rio, on_read, fd, EV_READ);
	ev_io_init(&s->wio, on_write, fd, EV_WRITE);
	ev_timer_init(&s->drop_timer, on_drop, 0., 0.);
	ev_timer_init(&s->resume_timer, on_resume_timeout, 0., 0.);
	s->rio.data = s->wio.data = s->drop_timer.data = s->resume_timer.data = s;
	if (fd >= 0)
		ev_io_start(d->loop, &s->rio);
	hbc_list_insert_tail(&d->sessions, &s->link);
	d->n_sessions++;
	d->stats.sessions_total++;
	log_debug("%s: connected (pid %d uid %u)", s->label, (int)s->pid, (unsigned)s->uid);
	return s;
}

static void event_free_all(struct hbd_session *s)
{
	struct hbd_event *ev;

	hbc_list_for_each_safe(ev, &s->events, struct hbd_event, link)
	    hbd_session_event_free(s, ev);
	s->n_events = 0;
}

/* What ending a session gives back (PROTOCOL.md §6): what it owns (d->session_release) and
 * its queued events. */
static void session_release(struct hbd_session *s)
{
	s->d->session_release(s);
	event_free_all(s);
}

void hbd_wait_free(struct hbd_wait *w)
{
	free(w);
}

struct hbd_wait *hbd_session_next_done(struct hbd_session *s)
{
	struct hbd_wait *w;

	if (hbc_list_empty(&s->done))
		return NULL;
	w = hbc_container_of(s->done.next, struct hbd_wait, session_link);
	hbc_list_remove(&w->session_link);
	s->n_done--;
	return w;
}

void hbd_session_close(struct hbd_session *s, const char *reason)
{
	struct hbd *d = s->d;

	if (s->closing)
		return;
	s->closing = true;
	log_info("%s: session ended: %s", s->label, reason);
	hbd_watch_session_end(s, reason);
	ev_io_stop(d->loop, &s->rio);
	ev_io_stop(d->loop, &s->wio);
	ev_timer_stop(d->loop, &s->drop_timer);
	ev_timer_stop(d->loop, &s->hello_timer);
	ev_timer_stop(d->loop, &s->resume_timer);
	if (s->flush_queued) {
		hbc_list_remove(&s->flush_link);
		s->flush_queued = false;
	}
	if (!s->detached)
		s->dom->conns--;
	if (s->user) {
		if (s->hello)
			s->user->sessions--;
		else
			s->user->pending--;
		hbd_user_put(d, s->user);
		s->user = NULL;
	}

	session_release(s);
	hbd_state_forget_session(s);
	for (unsigned i = 0; i < s->n_out_fds; i++)
		close(s->out_fds[i].fd);
	hbp_bytes_free(&s->in);
	hbp_bytes_free(&s->out);
	hbp_bytes_free(&s->last_reply);
	hbp_bytes_free(&s->pending_out);
	if (s->fdname[0])
		hbd_fdstore_forget(d->fds, s->fdname);
	if (s->fd >= 0)
		close(s->fd);
	hbc_list_remove(&s->link);
	hbc_list_init(&s->link);
	d->n_sessions--;
	/* A session closed from inside its own read handler is freed when that returns. */
	if (!s->busy)
		free(s);
}

void hbd_session_restart(struct hbd_session *s, const char *reason)
{
	struct hbd *d = s->d;

	if (s->closing)
		return;
	if (s->hello)
		log_info("%s: session ended: %s", s->label, reason);
	session_release(s);
	hbd_state_forget_session(s);
	hbp_bytes_consume(&s->last_reply, s->last_reply.len);
	s->last_request = 0;
	s->reply_fd_group = 0;
	s->holds_on = false; /* the next process on the channel asks for itself */
	/* Nobody is left to read what the old session was owed; a frame already partly on the
	 * wire is finished, so that the stream stays cut at frame boundaries. */
	if (s->out.len > s->out_unsent)
		s->out.len = s->out_unsent;
	for (unsigned i = 0; i < s->n_out_fds; i++)
		close(s->out_fds[i].fd);
	s->n_out_fds = 0;
	s->serial = ++d->next_session;
	snprintf(s->label, sizeof(s->label), "%s#%llu", s->dom->name,
		 (unsigned long long)s->serial);
	d->stats.sessions_total++;
}

/* Drops a session for a protocol violation. */
static void session_violation(struct hbd_session *s, const char *what)
{
	s->d->stats.errors_protocol++;
	log_warn("%s: protocol violation: %s; dropping the session", s->label, what);
	hbd_session_close(s, what);
}

static void on_drop(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hbd_session *s = w->data;

	hbd_session_close(s, "dropped: it does not read its fence completions");
}

void hbd_session_drop_later(struct hbd_session *s, const char *reason)
{
	if (s->doomed || s->closing)
		return;
	s->doomed = true;
	log_warn("%s: %s; dropping the session", s->label, reason);
	/* Nothing more from it; the close itself waits for the loop, out of the caller's way. */
	ev_io_stop(s->d->loop, &s->rio);
	ev_timer_start(s->d->loop, &s->drop_timer);
}

int hbd_session_send(struct hbd_session *s, const ServerMsg *msg, int fd)
{
	size_t offset = s->out.len;
	int dup_fd = -1, r;

	if (s->closing)
		return -EPIPE;
	if (fd >= 0) {
		if (s->n_out_fds == sizeof(s->out_fds) / sizeof(s->out_fds[0]))
			return -ENOBUFS;
		/* Duplicate first: a reply must never go out without the fd it promises. */
		dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (dup_fd < 0)
			return -errno;
	}
	r = hbp_frame_put_server(&s->out, msg, HBP_FRAME_MAX);
	if (r < 0) {
		log_err("%s: cannot frame a reply: %s", s->label, strerror(-r));
		if (dup_fd >= 0)
			close(dup_fd);
		return r;
	}
	if (dup_fd >= 0) {
		s->out_fds[s->n_out_fds].offset = offset;
		s->out_fds[s->n_out_fds].fd = dup_fd;
		s->n_out_fds++;
	}
	s->d->stats.messages_out++;
	hbd_session_want_write(s);
	return 0;
}

/* Writes as much as the socket takes. An fd goes out with the first byte of its frame, and
 * a sendmsg never spans into the next fd's frame. */
static int flush_out(struct hbd_session *s)
{
	/* Nobody reads any more (write_failed): what it is owed goes nowhere. */
	if (s->hung_up) {
		for (unsigned i = 0; i < s->n_out_fds; i++)
			close(s->out_fds[i].fd);
		s->n_out_fds = 0;
		hbp_bytes_consume(&s->out, s->out.len);
	}
	while (s->out.len) {
		size_t len = s->out.len;
		bool with_fd = s->n_out_fds && s->out_fds[0].offset == 0;
		ssize_t n;

		if (s->n_out_fds > (with_fd ? 1u : 0u))
			len = s->out_fds[with_fd ? 1 : 0].offset;
		n = hbc_send_with_fd(s->fd, s->out.data, len, with_fd ? s->out_fds[0].fd : -1);
		s->d->stats.socket_calls++;
		if (n < 0) {
			if (n == -EAGAIN || n == -EINTR)
				return 0;
			return (int)n;
		}
		if (s->channel)
			hbd_channel_sent(s, (size_t)n);
		if (with_fd) {
			close(s->out_fds[0].fd);
			memmove(&s->out_fds[0], &s->out_fds[1],
				sizeof(s->out_fds[0]) * (s->n_out_fds - 1));
			s->n_out_fds--;
		}
		hbp_bytes_consume(&s->out, (size_t)n);
		for (unsigned i = 0; i < s->n_out_fds; i++)
			s->out_fds[i].offset -= (size_t)n;
	}
	return 0;
}

static void handle_frames(struct hbd_session *s);

/*
 * A write to the client failed: it closed its end. What it sent before is still in the socket,
 * and some of it needs no answer (a quiet signal, PROTOCOL.md §3), so it is handled, its output
 * dropped, before the session ends: a producer that signals its last frame and exits loses
 * nothing.
 */
static void write_failed(struct hbd_session *s, int err)
{
	if ((err == -EPIPE || err == -ECONNRESET) && !s->hung_up) {
		s->hung_up = true;
		flush_out(s);
		s->busy++;
		handle_frames(s);
		while (!s->closing && hbp_bytes_reserve(&s->in, HBD_READ_CHUNK) == 0) {
			ssize_t n =
			    recv(s->fd, s->in.data + s->in.len, HBD_READ_CHUNK, MSG_DONTWAIT);

			if (n <= 0)
				break;
			s->in.len += (size_t)n;
			handle_frames(s);
		}
		s->busy--;
	}
	hbd_session_close(s, strerror(-err));
}

/*
 * Writes what the session is owed until it is all out or the socket is full; only then is the
 * write watcher armed (and disarmed once it drained): a session that keeps up costs one send
 * per loop turn and no epoll_ctl. The caller committed the state: nothing leaves before the
 * state holds what it tells (docs/RESTART.md).
 */
static void session_write(struct hbd_session *s)
{
	struct ev_loop *loop = s->d->loop;
	int r;

	for (;;) {
		r = hbd_session_fill(s);
		/* The holds framed in events are in the state before the events leave (a state
		 * that cannot be written is given up on and logged there, not this client's). */
		hbd_state_commit(s->d);
		if (r == 0)
			r = flush_out(s);
		if (r < 0) {
			write_failed(s, r);
			return;
		}
		if (s->out.len) {
			s->d->stats.write_waits += !ev_is_active(&s->wio);
			ev_io_start(loop, &s->wio); /* the socket is full: wait for room */
			break;
		}
		if (hbc_list_empty(&s->events) && hbc_list_empty(&s->done)) {
			ev_io_stop(loop, &s->wio);
			break;
		}
	}
	if (s->gated && !s->out.len)
		ungate(s);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hbd_session *s = w->data;

	hbd_state_commit(s->d);
	s->busy++;
	session_write(s);
	s->busy--;
	if (s->closing && !s->busy)
		free(s);
}

void hbd_sessions_flush(struct hbd *d)
{
	while (!hbc_list_empty(&d->flushq)) {
		struct hbd_session *s =
		    hbc_container_of(d->flushq.next, struct hbd_session, flush_link);

		hbc_list_remove(&s->flush_link);
		s->flush_queued = false;
		s->busy++;
		session_write(s);
		s->busy--;
		if (s->closing && !s->busy)
			free(s);
	}
}

void hbd_session_consume(struct hbd_session *s, size_t n)
{
	hbp_bytes_consume(&s->in, n);
	s->scan_from = s->scan_from > n ? s->scan_from - n : 0;
}

/*
 * While the restart state is kept, a session's next request waits until the reply to the last
 * one is in the kernel's hands: a daemon killed then has at most one request per session whose
 * effects are kept but whose reply is lost, and a resuming client gets that one again
 * (docs/RESTART.md). The reply goes out at once; only a full socket makes the session wait.
 */
static bool gate(struct hbd_session *s)
{
	int r = hbd_state_commit(s->d);

	if (r < 0) {
		hbd_session_close(s, strerror(-r));
		return true;
	}
	r = flush_out(s);
	if (r < 0) {
		write_failed(s, r);
		return true;
	}
	if (!s->out.len)
		return false;
	s->gated = true;
	ev_io_stop(s->d->loop, &s->rio);
	hbd_session_want_write(s);
	return true;
}

/* The reply is out: the next request may be handled. */
static void ungate(struct hbd_session *s)
{
	s->gated = false;
	ev_io_start(s->d->loop, &s->rio);
	s->busy++;
	handle_frames(s);
	s->busy--;
	if (s->closing && !s->busy)
		free(s);
}

/* Handles every whole frame in the input buffer. */
static void handle_frames(struct hbd_session *s)
{
	const uint8_t *payload;
	ClientMsg *msg;
	long n;
	int r;

	while (!s->closing) {
		if (s->channel) {
			r = hbd_channel_input(s);
			if (r > 0)
				continue;
			if (r < 0)
				return;
		}
		n = hbp_frame_peek(s->in.data, s->in.len, HBP_FRAME_MAX, &payload);
		if (n == 0)
			break;
		if (n < 0) {
			/* Those bytes may be the start of a marker that is still arriving. */
			if (s->channel && s->scan_from < HBP_FRAME_HEADER)
				return;
			session_violation(s, "frame length out of range");
			return;
		}
		msg = hbp_frame_get_client(payload, (size_t)n);
		if (!msg) {
			session_violation(s, "malformed message");
			return;
		}
		hbd_session_consume(s, HBP_FRAME_HEADER + (size_t)n);
		s->d->stats.messages_in++;
		s->d->handle_request(s, msg);
		client_msg__free_unpacked(msg, NULL);
		if (!s->closing && hbd_state_on(s->d) && gate(s))
			return;
		/* Replies only grow here: a client that sends but never reads is cut off
		 * before it can make the daemon hold an unbounded backlog for it. */
		if (!s->closing && s->out.len > HBD_OUT_MAX) {
			session_violation(s, "client does not read its replies");
			return;
		}
	}
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hbd_session *s = w->data;
	ssize_t n;
	int r;

	r = hbp_bytes_reserve(&s->in, HBD_READ_CHUNK);
	if (r < 0) {
		hbd_session_close(s, "out of memory");
		return;
	}
	n = recv(s->fd, s->in.data + s->in.len, HBD_READ_CHUNK, MSG_DONTWAIT);
	s->d->stats.socket_calls++;
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		hbd_session_close(s, strerror(errno));
		return;
	}
	if (n == 0) {
		if (s->in.len)
			s->d->stats.errors_protocol++;
		hbd_session_close(s, s->in.len ? "disconnected in the middle of a frame"
					       : "disconnected");
		return;
	}
	s->in.len += (size_t)n;
	s->busy++;
	handle_frames(s);
	s->busy--;
	if (s->closing)
		free(s);
}

static void on_hello_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hbd_session *s = w->data;

	s->d->stats.errors_protocol++;
	hbd_session_close(s, "no Hello in time (hello_timeout_ms)");
}

struct hbb_caller hbd_session_caller(const struct hbd_session *s)
{
	return (struct hbb_caller){
	    .domain = s->dom->id,
	    .pid = s->pid,
	    .uid = s->uid,
	    .session = s->serial,
	    .attached = s->attached,
	    .features = s->features,
	    .label = s->label,
	};
}

static void on_resume_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hbd_session *s = w->data;

	hbd_session_close(s, "its client did not resume it in time (resume_timeout_ms)");
}
