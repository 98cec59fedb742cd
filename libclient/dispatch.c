/*
 * The frame router: the one place that decides who a frame from the daemon is for. A reply
 * goes to the request that waits for it (call.c), a fence completion to its point (sync.c),
 * an event to the queue (events.c) after the backend has seen what concerns its memory
 * (RECLAIMED never reaches the application; DOMAIN_GONE may change imports first). Anything
 * else from the daemon is a protocol violation. hb_dispatch, the application's entry, is here.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sock.h"
#include "libclient/client.h"
#include "protocol/limits.h"

/* An event from the daemon. */
static void route_event(struct hb_client *c, const Event *ev)
{
	const struct hbl_memory *mem = &c->mem;

	/* A restarted daemon sends again the events it cannot know we took: once is enough. */
	if (ev->seq) {
		if (ev->seq <= c->events.last_seq) {
			hbl_hold_drop(c, ev->hold);
			return;
		}
		c->events.last_seq = ev->seq;
	}

	/* Ours, not the application's: a parked buffer's pages may go. */
	if (ev->type == HBP_WIRE_EVENT_RECLAIMED) {
		if (mem->ops && mem->ops->reclaimed)
			mem->ops->reclaimed(mem->state, ev->buffer);
		return;
	}
	/* Xen: nothing may keep a dead domain's pages mapped, or it cannot finish dying. The
	 * imports from it become private copies before anybody hears of its death. */
	if (ev->type == HB_EVENT_DOMAIN_GONE)
		hbl_imports_peer_gone(c, ev->domain);
	hbl_events_push(c, ev);
}

/* Hands one frame to whoever it is for: 1 for a reply (its caller acts on it first), 0 for
 * anything else, or a negative errno (the client is broken). */
static int route(struct hb_client *c, ServerMsg *m, int *fds, unsigned nfds)
{
	int r = 0;

	/* HYPERBUF_DEBUG=1: every frame, whatever the transport carried it, by its name. */
	log_debug("<- %s #%u%s%s", hbp_server_body_name(m->body_case), m->id, m->error ? ": " : "",
		  m->error ? strerror((int)m->error) : "");
	/* A posted request's answer (call.c) is taken care of: reading goes on. */
	if (m->id != 0) {
		r = hbl_call_complete(c, m, fds, nfds);
		return r < 0 ? r : r == HBL_POSTED_REPLY ? 0 : 1;
	}
	/* Events and fence completions never carry fds. */
	hbc_close_fds(fds, &nfds);
	if (m->error != 0) {
		/* The daemon refuses this connection, and says why (the frame codec bounded it). */
		hbl_explain(c, (int)m->error, "hyperbufd refused the connection: %s%s%s",
			    strerror((int)m->error), m->reason[0] ? ": " : "", m->reason);
		r = hbl_conn_break(&c->conn, (int)m->error);
	} else if (m->body_case == SERVER_MSG__BODY_FENCE)
		hbl_fence_done(c, m->fence);
	else if (m->body_case == SERVER_MSG__BODY_TIMELINE_VALUE)
		hbl_timeline_value(c, m->timeline_value);
	else if (m->body_case == SERVER_MSG__BODY_TIMELINE_SLOT)
		hbl_timeline_slot(c, m->timeline_slot);
	else if (m->body_case == SERVER_MSG__BODY_TIMELINE_LAZY)
		hbl_timeline_lazy(c, m->timeline_lazy);
	else if (m->body_case == SERVER_MSG__BODY_EVENT)
		route_event(c, m->event);
	else
		r = hbl_conn_break(&c->conn, EPROTO);
	server_msg__free_unpacked(m, NULL);
	return r;
}

/* Reads and routes frames until the transport has nothing more (or max, or a reply). */
static int route_frames(struct hb_client *c, int max)
{
	int fds[HBB_FRAME_FDS];
	unsigned nfds = 0;
	ServerMsg *m;
	int handled, r;

	for (handled = 0; handled < max; handled++) {
		r = hbl_conn_read_frame(&c->conn, &m, fds, &nfds);
		/* The daemon restarted: resume and carry on reading the new stream. */
		if (r == -HBL_LOST && !c->resume.active) {
			r = hbl_resume(c);
			if (r == 0)
				continue;
		}
		if (r <= 0)
			return r < 0 ? r : handled;
		r = route(c, m, fds, nfds);
		if (r < 0)
			return r;
		/* Nothing past a reply: its caller acts on it first. A sync's point must exist
		 * before the completion that may follow the reply is read. */
		if (r == 1)
			return handled + 1;
	}
	return handled;
}

int hbl_pump(struct hb_client *c, int max)
{
	int r;

	r = hbl_conn_broken(&c->conn);
	if (r < 0)
		return r;
	if (c->mem.ops && c->mem.ops->drain && !c->mem_quiet) {
		/* The daemon never closes a live VM's ivshmem connection, and QEMU could not
		 * reconnect either: losing it ends the client. */
		r = c->mem.ops->drain(c->mem.state);
		if (r < 0)
			return hbl_conn_break(&c->conn, -r);
		__atomic_fetch_add(&c->conn.n_recvs, (uint64_t)r, __ATOMIC_RELAXED);
	}
	c->mem_quiet = false;
	if (!c->chan_quiet || !hbl_conn_polls_all(&c->conn))
		hbl_conn_rearm(&c->conn);
	c->chan_quiet = false;
	r = route_frames(c, max);
	/* What slots say needs no frame: a doorbell, or a value that moved by itself; and a
	 * ring read here took our bit, which goes back while points are pending. */
	hbl_slots_arm(c);
	return r;
}

void hbl_route_buffered(struct hb_client *c)
{
	if (hbl_conn_broken(&c->conn) < 0 || !hbl_conn_has_frame(&c->conn))
		return;
	/* Reading nothing: errors break the client, which every later call reports. */
	c->conn.rx_dry = true;
	route_frames(c, HBL_DISPATCH_BATCH);
	c->conn.rx_dry = false;
}

void hbl_polled(struct hb_client *c, const struct pollfd *pfd, size_t n)
{
	bool quiet = true;

	for (size_t i = 1; i < n; i++)
		if (pfd[i].revents)
			quiet = false;
	c->mem_quiet = quiet;
	c->chan_quiet = n > 0 && pfd[0].revents == 0;
	if (!quiet && c->mem.ops && c->mem.ops->polled)
		c->mem.ops->polled(c->mem.state, pfd + 1, n - 1);
}

/* What epoll_wait said of hb_get_fd's set, as hbl_polled takes it: the reads that follow skip
 * the fds with nothing (a doorbell rang: no recvmsg on the channel; a frame came: no read of
 * the ivshmem socket; nothing at all: no read). Ready fds that are none of the client's (an
 * answer that says nothing useful) leave everything to be read. */
static void dispatch_polled(struct hb_client *c, const struct epoll_event *ev, int nev)
{
	struct pollfd pfd[HBL_POLLFDS_MAX];
	size_t n = hbl_pollfds(c, pfd, HBL_POLLFDS_MAX);
	bool named = false;

	for (size_t i = 0; i < n; i++) {
		pfd[i].revents = 0;
		for (int k = 0; k < nev; k++)
			if (ev[k].data.fd == pfd[i].fd) {
				/* EPOLLIN, EPOLLERR and EPOLLHUP have poll's values. */
				uint32_t e = ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP);

				pfd[i].revents = (short)e;
				named = true;
			}
	}
	if (named || nev == 0)
		hbl_polled(c, pfd, n);
}

void hbl_pump_ready(struct hb_client *c)
{
	struct epoll_event ev[HBL_POLLFDS_MAX];
	int nev =
	    hbl_conn_polls_all(&c->conn) ? epoll_wait(c->conn.pub_fd, ev, HBL_POLLFDS_MAX, 0) : -1;

	hbl_lock(c);
	if (nev >= 0)
		dispatch_polled(c, ev, nev);
	hbl_pump(c, HBL_DISPATCH_BATCH);
	/* A watch whose slot stopped telling asks the daemon now, or a loop never ends. */
	hbl_watches_settle(c);
	hbl_unlock(c);
}

HBL_PUBLIC int hb_dispatch(struct hb_client *c, int timeout_ms)
{
	struct epoll_event ev[HBL_POLLFDS_MAX];
	uint64_t deadline = 0;
	int nev, r;

	if (!c)
		return hbl_fail(-EINVAL);
	/* Buffers and imports whose dma-bufs nobody holds any more go now. */
	hbl_dmabufs_reap(c);
	if (timeout_ms > 0)
		deadline = hbc_now_ms() + (uint64_t)timeout_ms;
	/* One epoll_wait says what to read, where reading every fd would cost a call each; a
	 * vchan is read anyway (hbl_conn_polls_all), and has no other fd beside it. */
	nev =
	    hbl_conn_polls_all(&c->conn) ? epoll_wait(c->conn.pub_fd, ev, HBL_POLLFDS_MAX, 0) : -1;
	for (;;) {
		int wait = timeout_ms;
		bool queued;

		hbl_lock(c);
		if (nev >= 0)
			dispatch_polled(c, ev, nev);
		r = hbl_pump(c, HBL_DISPATCH_BATCH);
		hbl_watches_settle(c);
		/* Events a blocking call already read from the socket leave the fd quiet:
		 * never sleep on it while they wait in the queue. */
		queued = hbl_events_queued(c);
		hbl_unlock(c);
		if (r != 0)
			return r < 0 ? hbl_fail(r) : r;
		if (timeout_ms == 0 || queued)
			return 0;
		if (timeout_ms > 0) {
			uint64_t now = hbc_now_ms();

			if (now >= deadline)
				return 0;
			wait = (int)(deadline - now);
		}
		/* Wait without the lock, so other threads' calls are not held up by a long
		 * dispatch. Whatever woke us may have been taken by one of those calls (its
		 * events are queued all the same): then we simply wait again. The epoll set of
		 * every fd the client reads is the same fd for the client's life, even when a
		 * resume replaces the transport in it. */
		nev = epoll_wait(c->conn.pub_fd, ev, HBL_POLLFDS_MAX, wait);
		if (nev < 0 && errno != EINTR)
			return -1;
	}
}
