/*
 * The Xen backend, client side (see client.h): the xen: vchan transport and grant-based
 * buffers. Links libxenevtchn, libxengnttab and libxenstore only (stable sonames, usable in
 * any domain); libxenctrl is dom0's and stays in the daemon.
 *
 * HYPERBUF_DEBUG=1 in the environment makes the library say on stderr why a Xen limit or
 * device refused something (errno alone cannot name the sysfs knob to turn).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#include <xen/sys/gntdev.h> /* after <stdint.h>, which it uses without including */

#include "backends/xen/client.h"
#include "backends/xen/desc.h"
#include "backends/xen/ring.h"
#include "libclient/private.h"
#include "protocol/refdir.h"

#define HBX_CONNECT_TIMEOUT_MS 10000
#define HBX_VCHAN_BASE         "/local/domain/0/data/hyperbuf"
#define HBX_GNTALLOC_LIMIT     "/sys/module/xen_gntalloc/parameters/limit"
#define HBX_GNTDEV_LIMIT       "/sys/module/xen_gntdev/parameters/limit"

/* Buffers freed by the application whose grants wait for RECLAIMED. */
struct hbx_parked {
	struct hbx_parked *next;
	uint64_t handle;
	void *data, *dir;
	uint32_t pages, dir_pages;
};

struct hbx_client {
	/* The vchan (xen: clients only). */
	xenevtchn_handle *evtchn;
	evtchn_port_t port;
	bool bound;
	struct hbx_vchan_page *page;
	void *left, *right;
	uint32_t ring_pages;
	struct hbx_ring tx, rx;
	size_t rx_off, rx_len;
	uint8_t rxbuf[HBX_RING_SIZE];

	/* Grants. gt also maps the vchan pages. */
	xengnttab_handle *gt;
	xengntshr_handle *gs;
	int grants_err; /* positive errno when gs could not be opened */
	struct hbx_parked *parked;
};

__attribute__((format(printf, 1, 2))) static void why(const char *fmt, ...)
{
	va_list ap;

	if (!getenv("HYPERBUF_DEBUG"))
		return;
	va_start(ap, fmt);
	fputs("libhyperbuf: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* A number from a sysfs file, or -1. */
static long sysfs_long(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

static bool file_has(const char *path, const char *word)
{
	char buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, word) != NULL;
}

bool hbx_in_guest(void)
{
	if (!file_has("/sys/hypervisor/type", "xen"))
		return false;
	/* dom0 says control_d where xenfs is mounted; without xenfs, dom0 is where the
	 * daemon's host socket is. */
	if (access("/proc/xen/capabilities", R_OK) == 0)
		return !file_has("/proc/xen/capabilities", "control_d");
	return access("/run/hyperbuf/hyperbufd.sock", F_OK) != 0;
}

static struct hbx_client *xen_state(struct hb_client *c)
{
	if (!c->xen)
		c->xen = calloc(1, sizeof(*c->xen));
	return c->xen;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the vchan transport ---------------------------------------------------------------- */

/* Consumes every pending event and unmasks the port. Called before the rings are looked at:
 * whatever the daemon does after that raises a new event. */
static void drain_events(struct hbx_client *x)
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

static ssize_t vchan_recv(struct hb_client *c, void *buf, size_t len, int *fds, unsigned *nfds,
			  unsigned max)
{
	struct hbx_client *x = c->xen;
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

static ssize_t vchan_send(struct hb_client *c, const void *buf, size_t len)
{
	struct hbx_client *x = c->xen;
	long w = hbx_ring_write(&x->tx, buf, len);

	if (w < 0)
		return -EPROTO;
	if (w > 0) {
		xenevtchn_notify(x->evtchn, x->port);
		return w;
	}
	return hbx_live_load(&x->page->srv_live) == HBX_LIVE_UP ? -EAGAIN : -EPIPE;
}

static void vchan_shutdown(struct hb_client *c)
{
	struct hbx_client *x = c->xen;

	if (x && x->page) {
		hbx_live_store(&x->page->cli_live, HBX_LIVE_GONE);
		xenevtchn_notify(x->evtchn, x->port);
	}
}

/* Unmaps the rings and the control page (its unmap-notify zeroes cli_live and signals the
 * daemon), then unbinds. */
static void vchan_release(struct hbx_client *x)
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

static void vchan_close(struct hb_client *c)
{
	struct hbx_client *x = c->xen;

	if (x) {
		vchan_release(x);
		if (x->evtchn)
			xenevtchn_close(x->evtchn);
		x->evtchn = NULL;
	}
	c->fd = -1;
}

static const struct hbl_transport_ops vchan_transport = {
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
static int vchan_claim(struct hbx_client *x, struct xs_handle *xs, const char *dir)
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

int hbx_connect(struct hb_client *c)
{
	struct hbx_client *x = xen_state(c);
	struct xs_handle *xs;
	unsigned long self;
	int64_t deadline;
	unsigned delay_us = 10000;
	char dir[96];
	int r;

	if (!x)
		return -ENOMEM;
	c->tp = &vchan_transport;
	x->evtchn = xenevtchn_open(NULL, 0);
	if (!x->evtchn) {
		r = -errno;
		why("xen: /dev/xen/evtchn: %s (not a Xen domain, or xen-evtchn not loaded)",
		    strerror(-r));
		return r;
	}
	x->gt = xengnttab_open(NULL, 0);
	if (!x->gt) {
		r = -errno;
		why("xen: /dev/xen/gntdev: %s (load xen-gntdev)", strerror(-r));
		return r;
	}
	xs = xs_open(0);
	if (!xs) {
		r = -errno;
		why("xen: xenstore: %s", strerror(-r));
		return r;
	}
	r = read_ulong(xs, XBT_NULL, "domid", &self);
	if (r < 0) {
		xs_close(xs);
		why("xen: cannot read this domain's id from xenstore");
		return r == -EPROTO ? r : -ENOENT;
	}
	snprintf(dir, sizeof(dir), "%s/%lu", HBX_VCHAN_BASE, self);
	/* Polled rather than watched: a watch would start libxenstore's thread, and the
	 * library owns none. */
	deadline = now_ms() + HBX_CONNECT_TIMEOUT_MS;
	while ((r = vchan_claim(x, xs, dir)) == -EAGAIN && now_ms() < deadline) {
		usleep(delay_us);
		if (delay_us < 200000)
			delay_us *= 2;
	}
	xs_close(xs);
	if (r < 0) {
		why("xen: no vchan from hyperbufd at %s (is it running in dom0 and serving "
		    "this domain?)",
		    dir);
		return -ETIMEDOUT;
	}
	c->fd = xenevtchn_fd(x->evtchn);
	return 0;
}

/* ---- grants ------------------------------------------------------------------------------ */

int hbx_grants_open(struct hb_client *c)
{
	struct hbx_client *x = xen_state(c);

	if (!x)
		return -ENOMEM;
	if (!x->gt)
		x->gt = xengnttab_open(NULL, 0);
	if (x->gt)
		x->gs = xengntshr_open(NULL, 0);
	if (!x->gt || !x->gs) {
		x->grants_err = errno ? errno : ENODEV;
		why("xen: /dev/xen/%s: %s; sharing needs xen-gntdev and xen-gntalloc loaded",
		    x->gt ? "gntalloc" : "gntdev", strerror(x->grants_err));
	}
	return 0;
}

static void end_grants(struct hbx_client *x, void *data, uint32_t pages, void *dir, uint32_t dir_pages)
{
	/* A page some importer still maps is kept by the kernel and its grant ended late. */
	if (data)
		xengntshr_unshare(x->gs, data, pages);
	if (dir)
		xengntshr_unshare(x->gs, dir, dir_pages);
}

void hbx_fini(struct hb_client *c)
{
	struct hbx_client *x = c->xen;

	if (!x)
		return;
	while (x->parked) {
		struct hbx_parked *p = x->parked;

		x->parked = p->next;
		end_grants(x, p->data, p->pages, p->dir, p->dir_pages);
		free(p);
	}
	if (x->gs)
		xengntshr_close(x->gs);
	if (x->gt)
		xengnttab_close(x->gt);
	if (x->evtchn)
		xenevtchn_close(x->evtchn);
	free(x);
	c->xen = NULL;
}

int hbx_alloc_check(struct hb_client *c, uint64_t size)
{
	struct hbx_client *x = c->xen;
	uint64_t pages = hbx_desc_pages(size);
	long limit;

	if (!x || !x->gs)
		return -ENODEV;
	if (!pages || pages > UINT32_MAX)
		return -EFBIG;
	limit = sysfs_long(HBX_GNTALLOC_LIMIT);
	if (limit >= 0 && pages > (uint64_t)limit) {
		why("xen: %llu bytes need %llu granted pages, over this domain's gntalloc limit "
		    "of %ld: raise %s (docs/XEN.md)",
		    (unsigned long long)size, (unsigned long long)pages, limit, HBX_GNTALLOC_LIMIT);
		return -ENOSPC;
	}
	return 0;
}

static int send_grant(struct hb_client *c, uint64_t handle, const struct hbp_refdir *d)
{
	Grant g = GRANT__INIT;
	BufferDesc desc = BUFFER_DESC__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbl_reply reply;
	int r;

	desc.group = 0;
	desc.root_ref = d->root;
	desc.depth = d->depth;
	desc.pages = d->pages;
	desc.first_offset = d->first_offset;
	desc.size = d->size;
	g.buffer = handle;
	g.desc = &desc;
	m.body_case = CLIENT_MSG__BODY_GRANT;
	m.grant = &g;
	r = hbl_call(c, &m, SERVER_MSG__BODY__NOT_SET, &reply);
	if (r == 0)
		hbl_reply_free(&reply);
	return r;
}

int hbx_buffer_make(struct hb_client *c, uint64_t handle, uint32_t peer, uint64_t size,
		       uint32_t flags, struct hbl_mapping *m)
{
	struct hbx_client *x = c->xen;
	uint32_t n = (uint32_t)((size + HBP_PAGE_SIZE - 1) / HBP_PAGE_SIZE);
	uint32_t nd = (uint32_t)hbp_refdir_dir_pages(n);
	uint32_t *refs = NULL, *drefs = NULL;
	void **dir_mem = NULL;
	uint8_t *data = NULL, *dir = NULL;
	struct hbp_refdir d;
	int r;

	memset(m, 0, sizeof(*m));
	if (!x || !x->gs)
		return -ENODEV;
	refs = malloc((size_t)n * sizeof(*refs));
	drefs = malloc((size_t)nd * sizeof(*drefs));
	dir_mem = malloc((size_t)nd * sizeof(*dir_mem));
	if (!refs || !drefs || !dir_mem) {
		r = -ENOMEM;
		goto err;
	}
	/* Fresh zeroed pages, writable by the peer only if it may import them so: a read-only
	 * grant cannot be mapped writable whatever the importer's library does. */
	data = xengntshr_share_pages(x->gs, peer, n, refs, (flags & HB_BUFFER_PEER_WRITABLE) != 0);
	if (data)
		dir = xengntshr_share_pages(x->gs, peer, nd, drefs, 0);
	if (!data || !dir) {
		r = -errno;
		why("xen: granting %u+%u pages to dom%u: %s%s", n, nd, peer, strerror(-r),
		    r == -ENOSPC ? " (the domain's gntalloc limit, " HBX_GNTALLOC_LIMIT
				   ", is used up; docs/XEN.md)"
				 : "");
		if (r != -ENOMEM && r != -ENOSPC)
			r = -ENOSPC;
		goto err;
	}
	for (uint32_t i = 0; i < nd; i++)
		dir_mem[i] = dir + (size_t)i * HBP_PAGE_SIZE;
	r = hbp_refdir_build(refs, n, drefs, dir_mem, size, 0, &d);
	if (r == 0)
		r = send_grant(c, handle, &d);
	if (r < 0)
		goto err;
	free(refs);
	free(drefs);
	free(dir_mem);
	m->base = data;
	m->len = (size_t)n * HBP_PAGE_SIZE;
	m->data = data;
	m->size = (size_t)size;
	m->xen = (struct hbx_map){
	    .x = x,
	    .kind = HBX_MAP_EXPORT,
	    .writable = true,
	    .domid = peer,
	    .pages = n,
	    .dir = dir,
	    .dir_pages = nd,
	};
	return 0;

err:
	end_grants(x, data, n, dir, nd);
	free(refs);
	free(drefs);
	free(dir_mem);
	return r;
}

void hbx_buffer_park(struct hb_client *c, uint64_t handle, struct hbl_mapping *m)
{
	struct hbx_client *x = c->xen;
	struct hbx_parked *p = malloc(sizeof(*p));

	if (!p)
		return; /* the mapping is unshared now, and the kernel ends busy grants late */
	*p = (struct hbx_parked){
	    .next = x->parked,
	    .handle = handle,
	    .data = m->base,
	    .dir = m->xen.dir,
	    .pages = m->xen.pages,
	    .dir_pages = m->xen.dir_pages,
	};
	x->parked = p;
	m->base = NULL;
	m->xen.dir = NULL;
}

void hbx_reclaimed(struct hb_client *c, uint64_t handle)
{
	struct hbx_client *x = c->xen;

	if (!x)
		return;
	for (struct hbx_parked **pp = &x->parked; *pp; pp = &(*pp)->next) {
		struct hbx_parked *p = *pp;

		if (p->handle != handle)
			continue;
		*pp = p->next;
		end_grants(x, p->data, p->pages, p->dir, p->dir_pages);
		free(p);
		return;
	}
}

struct walk_ctx {
	struct hbx_client *x;
	uint32_t domid;
};

static int walk_validate(void *ctx, uint32_t ref, int is_dir)
{
	return ref < HBX_FIRST_GRANT_REF ? -EBADMSG : 0;
}

/* One batched grant map per directory level. */
static const void *walk_map_many(void *ctx, const uint32_t *refs, uint32_t n)
{
	struct walk_ctx *w = ctx;

	return xengnttab_map_domain_grant_refs(w->x->gt, n, w->domid, (uint32_t *)refs, PROT_READ);
}

static void walk_unmap_many(void *ctx, const void *mem, uint32_t n)
{
	struct walk_ctx *w = ctx;

	xengnttab_unmap(w->x->gt, (void *)mem, n);
}

int hbx_import_map(struct hb_client *c, const BufferDesc *desc, uint32_t exporter, bool writable,
		      struct hbl_mapping *m)
{
	struct hbx_client *x = c->xen;
	struct walk_ctx w = {.x = x, .domid = exporter};
	const struct hbp_refdir_ops ops = {
	    .validate = walk_validate,
	    .map_many = walk_map_many,
	    .unmap_many = walk_unmap_many,
	    .ctx = &w,
	};
	struct hbp_refdir d;
	uint64_t pages;
	uint32_t *refs;
	long limit;
	void *data;
	int r;

	memset(m, 0, sizeof(*m));
	if (!x || !x->gt)
		return -ENODEV;
	/* From the daemon, which checked the exporter's Grant: wrong means a daemon bug. */
	if (!desc || desc->group != 0 || desc->size == 0 || desc->first_offset >= HBP_PAGE_SIZE)
		return -EPROTO;
	pages = (desc->first_offset + desc->size + HBP_PAGE_SIZE - 1) / HBP_PAGE_SIZE;
	if (desc->pages != pages)
		return -EPROTO;
	limit = sysfs_long(HBX_GNTDEV_LIMIT);
	if (limit > 0 && pages > (uint64_t)limit) {
		why("xen: importing %llu pages in one mapping is over gntdev's limit of %ld: "
		    "raise %s (docs/XEN.md)",
		    (unsigned long long)pages, limit, HBX_GNTDEV_LIMIT);
		return -EFBIG;
	}
	refs = malloc(pages * sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	d = (struct hbp_refdir){
	    .root = desc->root_ref,
	    .depth = desc->depth,
	    .pages = desc->pages,
	    .first_offset = desc->first_offset,
	    .size = desc->size,
	};
	/* The directory is the exporter's, so hostile: refs are checked, and a ref not granted
	 * to us makes its batch fail. */
	r = hbp_refdir_walk(&d, &ops, refs);
	if (r < 0) {
		free(refs);
		return r == -ENOMEM ? r : r == -EINVAL ? -EPROTO : -EBADMSG;
	}
	data = xengnttab_map_domain_grant_refs(x->gt, (uint32_t)pages, exporter, refs,
					       writable ? PROT_READ | PROT_WRITE : PROT_READ);
	r = -errno;
	free(refs);
	if (!data) {
		why("xen: mapping %llu pages of dom%u: %s", (unsigned long long)pages, exporter,
		    strerror(-r));
		return r == -ENOMEM ? r : -EBADMSG;
	}
	m->base = data;
	m->len = (size_t)pages * HBP_PAGE_SIZE;
	m->data = (uint8_t *)data + desc->first_offset;
	m->size = (size_t)desc->size;
	m->xen = (struct hbx_map){
	    .x = x,
	    .kind = HBX_MAP_IMPORT,
	    .writable = writable,
	    .domid = exporter,
	    .pages = (uint32_t)pages,
	};
	return 0;
}

void hbx_unmap(struct hbl_mapping *m)
{
	struct hbx_client *x = m->xen.x;

	switch (m->xen.kind) {
	case HBX_MAP_EXPORT:
		end_grants(x, m->base, m->xen.pages, m->xen.dir, m->xen.dir_pages);
		break;
	case HBX_MAP_IMPORT:
		if (m->base)
			xengnttab_unmap(x->gt, m->base, m->xen.pages);
		break;
	case HBX_MAP_COPY:
		if (m->base)
			munmap(m->base, m->len);
		break;
	case HBX_MAP_NONE:
		break;
	}
	memset(&m->xen, 0, sizeof(m->xen));
}

/*
 * An import of a dead domain's pages becomes a private copy where it was: the copy is made
 * from the grants while they are still mapped, moved over them with one mremap (so the
 * address range is never empty for another thread to take), and gntdev is then told to drop
 * its record of the grants, which the mremap already unmapped.
 */
static int detach(struct hbx_client *x, struct hbl_mapping *m)
{
	struct ioctl_gntdev_get_offset_for_vaddr q = {.vaddr = (uintptr_t)m->base};
	struct ioctl_gntdev_unmap_grant_ref u = {0};
	int fd = xengnttab_fd(x->gt);
	void *copy;

	if (ioctl(fd, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, &q) < 0)
		return -errno;
	copy = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (copy == MAP_FAILED) {
		/* No memory for a copy: the grants must go all the same. */
		xengnttab_unmap(x->gt, m->base, m->xen.pages);
		copy = mmap(m->base, m->len, m->xen.writable ? PROT_READ | PROT_WRITE : PROT_READ,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (copy != m->base) {
			if (copy != MAP_FAILED)
				munmap(copy, m->len);
			m->base = NULL;
		}
		m->xen.kind = HBX_MAP_COPY;
		return -ENOMEM;
	}
	memcpy(copy, m->base, m->len);
	if (!m->xen.writable)
		mprotect(copy, m->len, PROT_READ);
	if (mremap(copy, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED, m->base) == MAP_FAILED) {
		int r = -errno;

		munmap(copy, m->len);
		return r;
	}
	u.index = q.offset;
	u.count = q.count;
	ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &u);
	m->xen.kind = HBX_MAP_COPY;
	return 0;
}

void hbx_domain_gone(struct hb_client *c, uint32_t domid)
{
	struct hbx_client *x = c->xen;
	unsigned n = 0;

	if (!x)
		return;
	for (struct hb_import *im = c->imports; im; im = im->next) {
		if (im->map.xen.kind != HBX_MAP_IMPORT || im->map.xen.domid != domid)
			continue;
		int r = detach(x, &im->map);
		if (r < 0)
			why("xen: import from dead dom%u: %s", domid, strerror(-r));
		n++;
	}
	if (n)
		why("xen: dom%u died; %u import(s) now private copies", domid, n);
}
