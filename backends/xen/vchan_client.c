/*
 * The Xen backend, guest side: the xen: transport. A process in a guest domain claims the
 * vchan listener hyperbufd publishes for its domain (backends/xen/vchan.c is the other end)
 * and moves frames through the rings (ring.c checks every index the daemon's side wrote).
 * Links libxenevtchn, libxengnttab and libxenstore only (stable sonames, usable in any
 * domain); libxenctrl is dom0's and stays in the daemon.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#include "backends/backend.h"
#include "backends/xen/ring.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"

#define HBX_CONNECT_TIMEOUT_MS 10000
#define HBX_VCHAN_BASE         "/local/domain/0/data/hyperbuf"

/* The transport's own state (struct hbb_transport.priv). */
struct hbx_vchan {
	xenevtchn_handle *evtchn;
	xengnttab_handle *gt;
	evtchn_port_t port;
	bool bound;
	struct hbx_vchan_page *page;
	void *left, *right;
	uint32_t ring_pages;
	struct hbx_ring tx, rx;
	size_t rx_off, rx_len;
	uint8_t rxbuf[HBX_RING_SIZE];
};

bool hbx_in_guest(void)
{
	if (!hbc_file_has("/sys/hypervisor/type", "xen"))
		return false;
	/* dom0 says control_d where xenfs is mounted; without xenfs, dom0 is where the
	 * daemon's host socket is. */
	if (access("/proc/xen/capabilities", R_OK) == 0)
		return !hbc_file_has("/proc/xen/capabilities", "control_d");
	return access("/run/hyperbuf/hyperbufd.sock", F_OK) != 0;
}

/* Consumes every pending event and unmasks the port. Called before the rings are looked at:
 * whatever the daemon does after that raises a new event. */
static void drain_events(struct hbx_vchan *x)
{
	int fd = xenevtchn_fd(x->evtchn);

	for (int k = 0; k < 64; k++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		xenevtchn_port_or_error_t port;

		if (poll(&p, 1, 0) != 1)
			return;
		port = xenevtchn_pending(x->evtchn);
		if (port < 0)
			return;
		xenevtchn_unmask(x->evtchn, (evtchn_port_t)port);
	}
}

static ssize_t vchan_recv(struct hbb_transport *t, void *buf, size_t len, int *fds, unsigned *nfds,
			  unsigned max)
{
	struct hbx_vchan *x = t->priv;
	size_t n;

	if (x->rx_off == x->rx_len) {
		uint8_t srv;
		long got;

		drain_events(x);
		/* srv_live first: the daemon fills the ring before it says goodbye, so once
		 * "gone" is seen an empty ring is the end. */
		srv = hbx_live_load(&x->page->srv_live);
		got = hbx_ring_read(&x->rx, x->rxbuf, sizeof(x->rxbuf));
		if (got < 0)
			return -EPROTO;
		if (got == 0)
			return srv == HBX_LIVE_UP ? -EAGAIN : 0;
		/* Room for the daemon. */
		xenevtchn_notify(x->evtchn, x->port);
		x->rx_off = 0;
		x->rx_len = (size_t)got;
	}
	n = x->rx_len - x->rx_off < len ? x->rx_len - x->rx_off : len;
	memcpy(buf, x->rxbuf + x->rx_off, n);
	x->rx_off += n;
	return (ssize_t)n;
}

static ssize_t vchan_send(struct hbb_transport *t, const void *buf, size_t len)
{
	struct hbx_vchan *x = t->priv;
	long w = hbx_ring_write(&x->tx, buf, len);

	if (w < 0)
		return -EPROTO;
	if (w > 0) {
		xenevtchn_notify(x->evtchn, x->port);
		return w;
	}
	return hbx_live_load(&x->page->srv_live) == HBX_LIVE_UP ? -EAGAIN : -EPIPE;
}

static void vchan_shutdown(struct hbb_transport *t)
{
	struct hbx_vchan *x = t->priv;

	if (x && x->page) {
		hbx_live_store(&x->page->cli_live, HBX_LIVE_GONE);
		xenevtchn_notify(x->evtchn, x->port);
	}
}

/* Unmaps the rings and the control page (its unmap-notify zeroes cli_live and signals the
 * daemon), then unbinds. */
static void vchan_release(struct hbx_vchan *x)
{
	if (x->left)
		xengnttab_unmap(x->gt, x->left, x->ring_pages);
	if (x->right)
		xengnttab_unmap(x->gt, x->right, x->ring_pages);
	if (x->page)
		xengnttab_unmap(x->gt, x->page, 1);
	if (x->bound)
		xenevtchn_unbind(x->evtchn, x->port);
	x->left = x->right = NULL;
	x->page = NULL;
	x->bound = false;
}

/* Everything: the rings, the event channel, the handles, x itself. */
static void vchan_free(struct hbx_vchan *x)
{
	vchan_release(x);
	if (x->evtchn)
		xenevtchn_close(x->evtchn);
	if (x->gt)
		xengnttab_close(x->gt);
	free(x);
}

static void vchan_close(struct hbb_transport *t, bool broken)
{
	if (t->priv)
		vchan_free(t->priv);
	t->priv = NULL;
	t->fd = -1;
}

static const struct hbb_transport_ops vchan_transport = {
    .version = HBB_GUEST_VERSION,
    .recv = vchan_recv,
    .send = vchan_send,
    .shutdown = vchan_shutdown,
    .close = vchan_close,
    .pollout = false,
};

static int read_ulong(struct xs_handle *xs, xs_transaction_t t, const char *path,
		      unsigned long *out)
{
	unsigned len;
	char *v = xs_read(xs, t, path, &len), *end;
	int r = 0;

	if (!v)
		return -errno;
	errno = 0;
	*out = strtoul(v, &end, 10);
	if (end == v || *end || errno)
		r = -EPROTO;
	free(v);
	return r;
}

/*
 * One attempt at claiming the listener published in dir: -EAGAIN when there is none yet, or
 * another client of this domain took it first (an unbound port accepts one binding).
 */
static int vchan_claim(struct hbx_vchan *x, struct xs_handle *xs, const char *dir)
{
	uint32_t lrefs[1u << (HBX_RING_ORDER_MAX - 12)], rrefs[1u << (HBX_RING_ORDER_MAX - 12)];
	unsigned long ref = 0, remote = 0;
	char path[128];
	xs_transaction_t t;
	xenevtchn_port_or_error_t port;
	int order, r;

	t = xs_transaction_start(xs);
	if (t == XBT_NULL)
		return -EAGAIN;
	snprintf(path, sizeof(path), "%s/ring-ref", dir);
	r = read_ulong(xs, t, path, &ref);
	snprintf(path, sizeof(path), "%s/event-channel", dir);
	if (r == 0)
		r = read_ulong(xs, t, path, &remote);
	if (!xs_transaction_end(xs, t, r < 0) && r == 0)
		return -EAGAIN;
	if (r < 0 || ref > UINT32_MAX || remote > UINT32_MAX)
		return -EAGAIN;

	port = xenevtchn_bind_interdomain(x->evtchn, 0, (evtchn_port_t)remote);
	if (port < 0)
		return -EAGAIN;
	x->port = (evtchn_port_t)port;
	x->bound = true;
	x->page =
	    xengnttab_map_grant_ref_notify(x->gt, 0, (uint32_t)ref, PROT_READ | PROT_WRITE,
					   offsetof(struct hbx_vchan_page, cli_live), x->port);
	if (!x->page)
		goto err;
	if (hbx_live_load(&x->page->srv_live) != HBX_LIVE_UP ||
	    hbx_live_load(&x->page->cli_live) != HBX_LIVE_WAITING)
		goto err;
	order = hbx_vchan_page_read(x->page, lrefs, rrefs);
	if (order < 0)
		goto err;
	x->ring_pages = 1u << (order - 12);
	x->left =
	    xengnttab_map_domain_grant_refs(x->gt, x->ring_pages, 0, lrefs, PROT_READ | PROT_WRITE);
	x->right = xengnttab_map_domain_grant_refs(x->gt, x->ring_pages, 0, rrefs, PROT_READ);
	if (!x->left || !x->right)
		goto err;
	hbx_ring_init(&x->tx, &x->page->left, x->left, 1u << order, true, x->page->left.prod);
	hbx_ring_init(&x->rx, &x->page->right, x->right, 1u << order, false, x->page->right.cons);
	hbx_live_store(&x->page->cli_live, HBX_LIVE_UP);
	xenevtchn_notify(x->evtchn, x->port);
	return 0;

err:
	/* Unmapping zeroes cli_live: the daemon drops this listener and offers a fresh one. */
	vchan_release(x);
	return -EAGAIN;
}

/* Opens the handles and claims this domain's listener, waiting up to 10 s for one. */
static int vchan_connect(struct hbx_vchan *x)
{
	struct xs_handle *xs;
	unsigned long self;
	uint64_t deadline;
	unsigned delay_us = 10000;
	char dir[96];
	int r;

	x->evtchn = xenevtchn_open(NULL, 0);
	if (!x->evtchn) {
		r = -errno;
		log_debug("xen: /dev/xen/evtchn: %s (not a Xen domain, or xen-evtchn not loaded)",
			  strerror(-r));
		return r;
	}
	x->gt = xengnttab_open(NULL, 0);
	if (!x->gt) {
		r = -errno;
		log_debug("xen: /dev/xen/gntdev: %s (load xen-gntdev)", strerror(-r));
		return r;
	}
	xs = xs_open(0);
	if (!xs) {
		r = -errno;
		log_debug("xen: xenstore: %s", strerror(-r));
		return r;
	}
	r = read_ulong(xs, XBT_NULL, "domid", &self);
	if (r < 0) {
		xs_close(xs);
		log_debug("xen: cannot read this domain's id from xenstore");
		return r == -EPROTO ? r : -ENOENT;
	}
	snprintf(dir, sizeof(dir), "%s/%lu", HBX_VCHAN_BASE, self);
	/* Polled rather than watched: a watch would start libxenstore's thread, and the
	 * library owns none. */
	deadline = hbc_now_ms() + HBX_CONNECT_TIMEOUT_MS;
	while ((r = vchan_claim(x, xs, dir)) == -EAGAIN && hbc_now_ms() < deadline) {
		usleep(delay_us);
		if (delay_us < 200000)
			delay_us *= 2;
	}
	xs_close(xs);
	if (r < 0) {
		log_debug("xen: no vchan from hyperbufd at %s (is it running in dom0 and serving "
			  "this domain?)",
			  dir);
		return -ETIMEDOUT;
	}
	return 0;
}

int hbx_vchan_open(struct hbb_transport *t)
{
	struct hbx_vchan *x = calloc(1, sizeof(*x));
	int r;

	if (!x)
		return -ENOMEM;
	r = vchan_connect(x);
	if (r < 0) {
		vchan_free(x);
		return r;
	}
	*t = (struct hbb_transport){
	    .ops = &vchan_transport,
	    .fd = xenevtchn_fd(x->evtchn),
	    .priv = x,
	};
	return 0;
}
