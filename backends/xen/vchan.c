/*
 * vchan servers (see xen.h). Per served guest domain one listener waits to be claimed; a
 * client claims it by binding its event channel (an unbound port accepts one binding, so two
 * clients of the same domain cannot both take it), maps the control page with unmap-notify on
 * cli_live, sets cli_live = 1 and signals. The daemon then turns the listener into a
 * connection with a session behind a socketpair, and opens the next listener.
 *
 * The guest can write anything into the pages it maps: only cli_live and the two indexes it
 * owns are ever read back, the indexes are checked by ring.c, and the bytes go to the session
 * code, which treats them as hostile like any client's.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/xen/xen.h"
#include "common/log.h"
#include "protocol/frame.h"

#define HBX_PUMP_CHUNK 65536u

struct hbx_conn {
	struct hbc_list link; /* in dom->conns once accepted */
	struct xen_domain *dom;
	evtchn_port_t port; /* ours */
	bool bound;
	uint32_t page_ref;
	struct hbx_vchan_page *page;
	void *left, *right; /* client -> server, server -> client */
	struct hbx_ring rx, tx;
	bool accepted;
	int fd; /* our end of the session's socketpair, -1 while listening */
	ev_io rio, wio;
	struct hbp_bytes to_sess, from_sess;
	bool sess_eof;
	char label[32];
};

static void conn_free(struct hbx_conn *c)
{
	struct xen_backend *xb = c->dom->xb;

	if (c->fd >= 0) {
		ev_io_stop(xb->svc->loop, &c->rio);
		ev_io_stop(xb->svc->loop, &c->wio);
		close(c->fd);
	}
	if (c->page)
		hbx_live_store(&c->page->srv_live, HBX_LIVE_GONE);
	if (c->left)
		xengntshr_unshare(xb->gntshr, c->left, HBX_RING_PAGES);
	if (c->right)
		xengntshr_unshare(xb->gntshr, c->right, HBX_RING_PAGES);
	/* Unsharing the control page zeroes srv_live and signals the port (unmap-notify), so
	 * the port must still be bound here. A client that still maps the pages keeps them
	 * until it unmaps: the kernel ends those grants late. */
	if (c->page)
		xengntshr_unshare(xb->gntshr, c->page, 1);
	if (c->bound)
		xenevtchn_unbind(xb->evtchn, c->port);
	hbp_bytes_free(&c->to_sess);
	hbp_bytes_free(&c->from_sess);
	free(c);
}

static void conn_close(struct hbx_conn *c, const char *why)
{
	struct xen_domain *dom = c->dom;

	log_debug("%s: vchan closed: %s", c->label, why);
	if (c->accepted) {
		hbc_list_remove(&c->link);
		dom->n_conns--;
	} else if (dom->listener == c) {
		dom->listener = NULL;
	}
	conn_free(c);
	/* A domain at its connection limit had no listener; one closed, so offer one. */
	if (!dom->closing && !dom->listener)
		hbx_listen(dom);
}

static int publish(struct hbx_conn *c)
{
	struct xen_backend *xb = c->dom->xb;
	struct xs_permissions perms[2] = {
	    {.id = 0, .perms = XS_PERM_NONE},
	    {.id = c->dom->domid, .perms = XS_PERM_READ},
	};
	char dir[96], path[128], val[16];

	snprintf(dir, sizeof(dir), "%s/%u", xb->base, c->dom->domid);
	for (int tries = 0; tries < 16; tries++) {
		xs_transaction_t t = xs_transaction_start(xb->xs);
		bool ok;

		if (t == XBT_NULL)
			return -errno;
		snprintf(path, sizeof(path), "%s/ring-ref", dir);
		snprintf(val, sizeof(val), "%u", c->page_ref);
		ok = xs_write(xb->xs, t, path, val, strlen(val)) &&
		     xs_set_permissions(xb->xs, t, path, perms, 2);
		snprintf(path, sizeof(path), "%s/event-channel", dir);
		snprintf(val, sizeof(val), "%u", (unsigned)c->port);
		ok = ok && xs_write(xb->xs, t, path, val, strlen(val)) &&
		     xs_set_permissions(xb->xs, t, path, perms, 2) &&
		     xs_set_permissions(xb->xs, t, dir, perms, 2);
		if (!ok) {
			int err = errno;
			xs_transaction_end(xb->xs, t, true);
			return -err;
		}
		if (xs_transaction_end(xb->xs, t, false))
			return 0;
		if (errno != EAGAIN)
			return -errno;
	}
	return -EAGAIN;
}

int hbx_listen(struct xen_domain *dom)
{
	struct xen_backend *xb = dom->xb;
	uint32_t lrefs[HBX_RING_PAGES], rrefs[HBX_RING_PAGES];
	struct hbx_conn *c;
	xenevtchn_port_or_error_t port;
	int r;

	if (dom->n_conns >= HBX_MAX_CONNS_PER_DOMAIN) {
		log_warn("dom%u: %u connections; the next listener waits for one to close",
			 dom->domid, dom->n_conns);
		return -EMFILE;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dom = dom;
	c->fd = -1;
	hbc_list_init(&c->link);
	port = xenevtchn_bind_unbound_port(xb->evtchn, dom->domid);
	if (port < 0)
		goto err_errno;
	c->port = (evtchn_port_t)port;
	c->bound = true;
	snprintf(c->label, sizeof(c->label), "dom%u:port%u", dom->domid, (unsigned)c->port);
	c->page = xengntshr_share_page_notify(xb->gntshr, dom->domid, &c->page_ref, 1,
					      offsetof(struct hbx_vchan_page, srv_live), c->port);
	if (!c->page)
		goto err_errno;
	/* The client writes the left ring and only reads the right one. */
	c->left = xengntshr_share_pages(xb->gntshr, dom->domid, HBX_RING_PAGES, lrefs, 1);
	if (!c->left)
		goto err_errno;
	c->right = xengntshr_share_pages(xb->gntshr, dom->domid, HBX_RING_PAGES, rrefs, 0);
	if (!c->right)
		goto err_errno;
	hbx_vchan_page_init(c->page, HBX_RING_ORDER, lrefs, rrefs);
	hbx_ring_init(&c->rx, &c->page->left, c->left, HBX_RING_SIZE, false, 0);
	hbx_ring_init(&c->tx, &c->page->right, c->right, HBX_RING_SIZE, true, 0);
	r = publish(c);
	if (r < 0) {
		log_err("dom%u: cannot publish the vchan in xenstore: %s", dom->domid,
			strerror(-r));
		goto err;
	}
	dom->listener = c;
	log_debug("%s: listening (ring-ref %u)", c->label, c->page_ref);
	return 0;

err_errno:
	r = -errno;
	log_err("dom%u: cannot set up a vchan: %s (are xen-gntalloc and xen-evtchn loaded? "
		"is the gntalloc limit exhausted?)",
		dom->domid, strerror(-r));
err:
	conn_free(c);
	return r;
}

/* Ring -> session socket. */
static int pump_in(struct hbx_conn *c, bool *moved)
{
	for (;;) {
		if (c->to_sess.len) {
			ssize_t n = send(c->fd, c->to_sess.data, c->to_sess.len,
					 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					ev_io_start(c->dom->xb->svc->loop, &c->wio);
					return 0;
				}
				return -errno;
			}
			hbp_bytes_consume(&c->to_sess, (size_t)n);
			continue;
		}
		int r = hbp_bytes_reserve(&c->to_sess, HBX_RING_SIZE);
		if (r < 0)
			return r;
		long got = hbx_ring_read(&c->rx, c->to_sess.data, HBX_RING_SIZE);
		if (got <= 0)
			return (int)got;
		c->to_sess.len = (size_t)got;
		*moved = true;
	}
}

/* Session socket -> ring. */
static int pump_out(struct hbx_conn *c, bool *moved)
{
	struct ev_loop *loop = c->dom->xb->svc->loop;

	for (;;) {
		if (c->from_sess.len) {
			long w = hbx_ring_write(&c->tx, c->from_sess.data, c->from_sess.len);
			if (w < 0)
				return (int)w;
			if (w == 0) {
				/* Full: read no more until the client consumes (its event). */
				ev_io_stop(loop, &c->rio);
				return 0;
			}
			hbp_bytes_consume(&c->from_sess, (size_t)w);
			*moved = true;
			continue;
		}
		if (c->sess_eof)
			return -EPIPE; /* the session ended and all it said is in the ring */
		int r = hbp_bytes_reserve(&c->from_sess, HBX_PUMP_CHUNK);
		if (r < 0)
			return r;
		ssize_t n = recv(c->fd, c->from_sess.data, HBX_PUMP_CHUNK, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				ev_io_start(loop, &c->rio);
				return 0;
			}
			return -errno;
		}
		if (n == 0)
			c->sess_eof = true;
		c->from_sess.len = (size_t)n;
	}
}

static void conn_pump(struct hbx_conn *c)
{
	struct xen_backend *xb = c->dom->xb;
	bool moved = false;
	int r;

	r = pump_in(c, &moved);
	if (r == -EPROTO) {
		xb->violations++;
		log_warn("%s: the client moved its ring index impossibly; dropping it", c->label);
	}
	if (r == 0)
		r = pump_out(c, &moved);
	if (r == -EPROTO) {
		xb->violations++;
		log_warn("%s: the client moved its ring index impossibly; dropping it", c->label);
	}
	/* Every move is signalled: the client never waits on a notify flag (ring.h). */
	if (moved)
		xenevtchn_notify(xb->evtchn, c->port);
	if (r < 0) {
		conn_close(c, r == -EPIPE ? "session ended" : strerror(-r));
		return;
	}
	if (hbx_live_load(&c->page->cli_live) != HBX_LIVE_UP)
		conn_close(c, "client gone");
}

static void on_sock(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hbx_conn *c = w->data;

	if (w == &c->wio)
		ev_io_stop(loop, w);
	conn_pump(c);
}

/* The listener was claimed and the client says it is up: a session for it. */
static void accept_conn(struct hbx_conn *c)
{
	struct xen_domain *dom = c->dom;
	struct xen_backend *xb = dom->xb;
	const struct hbb_host_services *svc = xb->svc;
	int sv[2], r = 0;

	dom->listener = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
	} else if ((r = svc->session_open(svc->ctx, dom->domid, sv[0])) < 0) {
		close(sv[0]);
		close(sv[1]);
	}
	if (r < 0) {
		xb->conns_refused++;
		log_warn("%s: cannot take a new session: %s", c->label, strerror(-r));
		conn_free(c);
		hbx_listen(dom);
		return;
	}
	c->fd = sv[1];
	c->accepted = true;
	hbc_list_insert_tail(&dom->conns, &c->link);
	dom->n_conns++;
	xb->conns_total++;
	ev_io_init(&c->rio, on_sock, c->fd, EV_READ);
	ev_io_init(&c->wio, on_sock, c->fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	ev_io_start(svc->loop, &c->rio);
	log_debug("%s: vchan connected", c->label);
	hbx_listen(dom);
	conn_pump(c);
}

static void listener_event(struct hbx_conn *c)
{
	switch (hbx_live_load(&c->page->cli_live)) {
	case HBX_LIVE_UP:
		accept_conn(c);
		break;
	case HBX_LIVE_WAITING:
		break; /* claimed, not up yet (or a spurious event) */
	default:
		/* Claimed by a client that went away before it came up: its unmap-notify zeroed
		 * cli_live. The page is spoilt; conn_close offers a fresh one. */
		conn_close(c, "claimed and abandoned");
		break;
	}
}

void hbx_port_event(struct xen_backend *xb, evtchn_port_t port)
{
	struct xen_domain *dom;
	struct hbx_conn *c;

	hbc_list_for_each_safe(dom, &xb->domains, struct xen_domain, link)
	{
		if (dom->listener && dom->listener->port == port) {
			listener_event(dom->listener);
			return;
		}
		hbc_list_for_each_safe(c, &dom->conns, struct hbx_conn, link)
		{
			if (c->port == port) {
				conn_pump(c);
				return;
			}
		}
	}
}

void hbx_domain_close(struct xen_domain *dom)
{
	struct xen_backend *xb = dom->xb;
	struct hbx_conn *c;
	char dir[96];

	dom->closing = true;
	if (dom->listener)
		conn_close(dom->listener, "domain closed");
	hbc_list_for_each_safe(c, &dom->conns, struct hbx_conn, link)
	    conn_close(c, "domain closed");
	snprintf(dir, sizeof(dir), "%s/%u", xb->base, dom->domid);
	xs_rm(xb->xs, XBT_NULL, dir);
}
