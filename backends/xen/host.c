/*
 * The Xen backend, daemon side (see xen.h): which guests are served, when they die, budgets,
 * and the ops the daemon core calls. Buffers are grant-based: the exporting client allocates
 * its pages with gntalloc, grants them to the peer domain and describes them with Grant; the
 * daemon reserves, checks, keeps the registry and tells the exporter (RECLAIMED) when no
 * importer maps the pages any more, so that it ends its grants only then.
 *
 * Domain death: @releaseDomain fires (for shutdown, crash, destruction; not reliably for the
 * final disappearance), so every firing rescans with xc_domain_getinfo and treats a domain
 * that is shutting down, dying or missing as dead, at once: its sessions end (exports
 * withdrawn, imports released, DOMAIN_GONE to its peers, whose libraries then unmap what they
 * mapped from it, so the domain can finish dying), its vchans close.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/xen/desc.h"
#include "backends/xen/xen.h"
#include "common/log.h"
#include "protocol/desc.h"
#include "protocol/limits.h"

/* Xen's defaults, when a domain's own numbers cannot be read. */
#define HBX_DEFAULT_GRANT_FRAMES     64u     /* gnttab_max_frames */
#define HBX_DEFAULT_MAPTRACK_HANDLES 262144u /* gnttab_max_maptrack_frames 1024 * 256 */
#define HBX_SCAN_BATCH               64u

static bool allowed(const struct hbc_config *cfg, uint32_t domid)
{
	if (domid == 0 || cfg->xen_all_domains)
		return true;
	for (unsigned i = 0; i < cfg->n_xen_domains; i++)
		if (cfg->xen_domains[i] == domid)
			return true;
	return false;
}

/* info for exactly domid; -ENODEV if it does not exist. */
static int domain_info(struct xen_backend *xb, uint32_t domid, xc_dominfo_t *info)
{
	int n = xc_domain_getinfo(xb->xc, domid, 1, info);

	if (n < 0)
		return -errno;
	/* getinfo returns the next domain at or after domid: it must be this one. */
	if (n != 1 || info->domid != domid)
		return -ENODEV;
	return 0;
}

static bool dead(const xc_dominfo_t *info)
{
	return info->dying || info->shutdown || info->crashed;
}

/* Grant refs a domain's table can hold (its max frames, v1 or v2 entries). */
static uint64_t grant_ceiling(struct xen_backend *xb, uint32_t domid)
{
	struct gnttab_query_size q = {.dom = (domid_t)domid};
	uint64_t per_frame = 4096 / 8; /* v1 entries are 8 bytes */

	if (xc_gnttab_get_version(xb->xc, domid) == 2)
		per_frame = 4096 / 16;
	if (xc_gnttab_query_size(xb->xc, &q) < 0 || q.status != GNTST_okay || !q.max_nr_frames)
		return HBX_DEFAULT_GRANT_FRAMES * per_frame;
	return (uint64_t)q.max_nr_frames * per_frame;
}

/* Pages domid may have granted through hyperbuf: 3/4 of its table, or less if configured.
 * The rest is for its PV frontends, and a grant allocation that runs into the ceiling must
 * never happen (research/xen.md: Linux 6.1 then fails every later one until reboot). */
static uint64_t grant_budget(struct xen_backend *xb, uint32_t domid)
{
	uint64_t cap = grant_ceiling(xb, domid) / 4 * 3;
	uint64_t cfg = xb->svc->cfg->xen_grant_budget;

	return cfg && cfg < cap ? cfg : cap;
}

/* Pages domid may have mapped: half of the default maptrack table, each page costing two
 * handles in a PV domain (gntdev maps the user PTE and the kernel alias). */
static uint64_t maptrack_budget(struct xen_backend *xb, uint32_t domid)
{
	xc_dominfo_t info;
	bool pv = domain_info(xb, domid, &info) < 0 || !info.hvm;

	if (xb->svc->cfg->xen_maptrack_budget)
		return xb->svc->cfg->xen_maptrack_budget;
	return HBX_DEFAULT_MAPTRACK_HANDLES / 2 / (pv ? 2 : 1);
}

static struct xen_domain *domain_find(struct xen_backend *xb, uint32_t domid)
{
	struct xen_domain *dom;

	hbc_list_for_each_safe(dom, &xb->domains, struct xen_domain, link)
	{
		if (dom->domid == domid)
			return dom;
	}
	return NULL;
}

static void domain_serve(struct xen_backend *xb, uint32_t domid)
{
	struct xen_domain *dom = calloc(1, sizeof(*dom));

	if (!dom) {
		log_err("dom%u: out of memory", domid);
		return;
	}
	dom->xb = xb;
	dom->domid = domid;
	dom->seen = true;
	hbc_list_init(&dom->conns);
	hbc_list_insert_tail(&xb->domains, &dom->link);
	if (hbx_listen(dom) == 0)
		log_info("dom%u: serving it (vchan at %s/%u)", domid, xb->base, domid);
}

/* A served domain died: everything of it goes now. */
static void domain_gone(struct xen_backend *xb, struct xen_domain *dom, const char *why)
{
	log_info("dom%u: %s; ending its sessions", dom->domid, why);
	xb->domains_died++;
	xb->svc->domain_dead(xb->svc->ctx, dom->domid, why);
	hbx_domain_close(dom);
	hbc_list_remove(&dom->link);
	free(dom);
}

/* Which guests exist: new allowed ones get a listener, served ones that are shutting down,
 * dying or gone are dead. A failed scan changes nothing. */
static void rescan(struct xen_backend *xb)
{
	xc_dominfo_t info[HBX_SCAN_BATCH];
	struct xen_domain *dom;
	uint32_t next = 1;
	int n;

	hbc_list_for_each_safe(dom, &xb->domains, struct xen_domain, link) dom->seen = false;
	do {
		n = xc_domain_getinfo(xb->xc, next, HBX_SCAN_BATCH, info);
		if (n < 0) {
			log_warn("xc_domain_getinfo: %s; domains not rescanned", strerror(errno));
			hbc_list_for_each_safe(dom, &xb->domains, struct xen_domain, link)
			    dom->seen = true;
			return;
		}
		for (int i = 0; i < n; i++) {
			next = info[i].domid + 1;
			if (dead(&info[i]))
				continue;
			dom = domain_find(xb, info[i].domid);
			if (dom)
				dom->seen = true;
			else if (allowed(xb->svc->cfg, info[i].domid))
				domain_serve(xb, info[i].domid);
		}
	} while (n == (int)HBX_SCAN_BATCH);
	hbc_list_for_each_safe(dom, &xb->domains, struct xen_domain, link)
	{
		if (!dom->seen)
			domain_gone(xb, dom, "domain shut down, dying or destroyed");
	}
}

static void on_xs(struct ev_loop *loop, ev_io *w, int revents)
{
	struct xen_backend *xb = w->data;
	unsigned num;
	char **v;
	bool fired = false;

	/* Watches fire for @introduceDomain and @releaseDomain, and spuriously: each firing is
	 * only a reason to look. */
	while ((v = xs_check_watch(xb->xs)) != NULL) {
		free(v);
		fired = true;
	}
	(void)num;
	if (fired)
		rescan(xb);
}

static void on_evtchn(struct ev_loop *loop, ev_io *w, int revents)
{
	struct xen_backend *xb = w->data;
	int fd = xenevtchn_fd(xb->evtchn);

	/* One pending port per read; the kernel masked it, so unmask before serving: an event
	 * that comes while we serve is then delivered again. */
	for (int k = 0; k < 256; k++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		xenevtchn_port_or_error_t port;

		if (poll(&p, 1, 0) != 1)
			break;
		port = xenevtchn_pending(xb->evtchn);
		if (port < 0)
			break;
		xenevtchn_unmask(xb->evtchn, (evtchn_port_t)port);
		hbx_port_event(xb, (evtchn_port_t)port);
	}
}

static void xen_stop(void *state)
{
	struct xen_backend *xb = state;
	struct xen_domain *dom;

	if (!xb)
		return;
	xb->stopping = true;
	ev_io_stop(xb->svc->loop, &xb->xs_io);
	ev_io_stop(xb->svc->loop, &xb->evtchn_io);
	if (xb->domains.next) {
		hbc_list_for_each_safe(dom, &xb->domains, struct xen_domain, link)
		{
			hbx_domain_close(dom);
			hbc_list_remove(&dom->link);
			free(dom);
		}
	}
	if (xb->xs) {
		xs_rm(xb->xs, XBT_NULL, xb->base);
		xs_unwatch(xb->xs, "@introduceDomain", "introduce");
		xs_unwatch(xb->xs, "@releaseDomain", "release");
		xs_close(xb->xs);
	}
	if (xb->gntshr)
		xengntshr_close(xb->gntshr);
	if (xb->evtchn)
		xenevtchn_close(xb->evtchn);
	if (xb->xc)
		xc_interface_close(xb->xc);
	free(xb);
}

static int xen_start(const struct hbb_host_services *svc, void **state)
{
	const struct hbc_config *cfg = svc->cfg;
	struct xen_backend *xb = calloc(1, sizeof(*xb));
	int r;

	if (!xb)
		return -ENOMEM;
	xb->svc = svc;
	hbc_list_init(&xb->domains);
	snprintf(xb->base, sizeof(xb->base), "/local/domain/0/data/hyperbuf");
	xb->xc = xc_interface_open(NULL, NULL, 0);
	if (!xb->xc) {
		r = -errno;
		log_err("libxenctrl: %s (the xen backend runs in dom0, with xen-privcmd loaded)",
			strerror(-r));
		goto err;
	}
	xb->xs = xs_open(0);
	if (!xb->xs) {
		r = -errno;
		log_err("xenstore: %s (is xenstored running?)", strerror(-r));
		goto err;
	}
	xb->evtchn = xenevtchn_open(NULL, 0);
	xb->gntshr = xengntshr_open(NULL, 0);
	if (!xb->evtchn || !xb->gntshr) {
		r = -errno;
		log_err("%s: %s (load xen-evtchn and xen-gntalloc; see docs/XEN.md)",
			xb->evtchn ? "/dev/xen/gntalloc" : "/dev/xen/evtchn", strerror(-r));
		goto err;
	}
	/* Whatever a previous daemon published is stale. */
	xs_rm(xb->xs, XBT_NULL, xb->base);
	if (!xs_watch(xb->xs, "@introduceDomain", "introduce") ||
	    !xs_watch(xb->xs, "@releaseDomain", "release")) {
		r = -errno;
		log_err("xenstore watches: %s", strerror(-r));
		goto err;
	}
	ev_io_init(&xb->xs_io, on_xs, xs_fileno(xb->xs), EV_READ);
	ev_io_init(&xb->evtchn_io, on_evtchn, xenevtchn_fd(xb->evtchn), EV_READ);
	xb->xs_io.data = xb->evtchn_io.data = xb;
	ev_io_start(svc->loop, &xb->xs_io);
	ev_io_start(svc->loop, &xb->evtchn_io);
	rescan(xb);
	log_info("xen: dom0 grant budget %llu pages; guests: %s",
		 (unsigned long long)grant_budget(xb, 0),
		 cfg->xen_all_domains ? "all"
		 : cfg->n_xen_domains ? "listed"
				      : "none");
	*state = xb;
	return 0;

err:
	xen_stop(xb);
	return r;
}

/* A domain outside [xen] domains is not one of the daemon's: ENODEV, as a VM outside the
 * configuration is on KVM (PROTOCOL.md, Alloc); whether it exists is xen_alloc's question. */
static int xen_can_share(void *state, uint32_t a, uint32_t b)
{
	struct xen_backend *xb = state;

	return allowed(xb->svc->cfg, a) && allowed(xb->svc->cfg, b) ? 0 : -ENODEV;
}

/* Reserves: the pages themselves are the client's to allocate and grant. */
static int xen_alloc(void *state, const struct hbb_caller *who, struct hbb_buffer *b)
{
	struct xen_backend *xb = state;
	/* A client that describes small buffers inline grants no directory page for them. */
	uint64_t pages = hbx_buffer_pages(b->size, !!(who->features & HBP_FEATURE_INLINE_REFS));
	uint64_t budget, held;
	xc_dominfo_t info;
	int r;

	if (!pages)
		return -EFBIG;
	r = domain_info(xb, b->peer, &info);
	if (r < 0 || dead(&info))
		return -ENODEV;
	budget = grant_budget(xb, who->domain);
	if (pages > budget)
		return -EFBIG;
	held = xb->svc->pages_held(xb->svc->ctx, who->domain);
	if (held + pages > budget) {
		log_info("%s: %llu more pages would exceed dom%u's grant budget (%llu pages)",
			 who->label, (unsigned long long)pages, who->domain,
			 (unsigned long long)budget);
		return -ENOSPC;
	}
	b->group = 0;
	b->refs = NULL;
	b->data_pages = (uint32_t)hbp_refdir_span(b->size, 0);
	b->dir_pages = (uint32_t)(pages - b->data_pages);
	memset(&b->desc, 0, sizeof(b->desc)); /* depth 0: not exportable before Grant */
	return 0;
}

static int xen_grant(void *state, const struct hbb_caller *who, struct hbb_buffer *b,
		     const BufferDesc *m)
{
	struct hbp_refdir desc;

	if (hbp_refdir_described(&b->desc))
		return -EBUSY;
	/* The form is the one the reservation counted: inline exactly when no directory page
	 * was reserved. */
	if (m->group != 0 || hbp_desc_to_refdir(m, &desc) < 0 ||
	    hbx_desc_check(&desc, b->size) < 0 || desc.pages != b->data_pages ||
	    (desc.depth == 0) != (b->dir_pages == 0)) {
		log_info("%s: Grant for buffer %llu: a descriptor that does not fit it", who->label,
			 (unsigned long long)b->handle);
		return -EINVAL;
	}
	if (desc.depth == 0) {
		/* The refs live in the message: the buffer keeps its own copy. */
		b->refs = malloc((size_t)desc.pages * sizeof(uint32_t));
		if (!b->refs)
			return -ENOMEM;
		memcpy(b->refs, desc.inline_refs, (size_t)desc.pages * sizeof(uint32_t));
		desc.inline_refs = b->refs;
	}
	b->desc = desc;
	return 0;
}

/* The pages are no longer mapped by any importer: the allocating session may end its grants
 * (PROTOCOL.md, RECLAIMED). Sent straight into its output, ahead of any reply in progress,
 * so a client that is waiting for the reply to Free handles it first. */
static void xen_release(void *state, struct hbb_buffer *b, bool shutdown)
{
	struct xen_backend *xb = state;

	if (!shutdown && b->creator)
		xb->svc->reclaimed(xb->svc->ctx, b);
	free(b->refs); /* inline refs (Grant, or a restart's record) */
	b->refs = NULL;
}

static int xen_can_import(void *state, const struct hbb_caller *who, const struct hbb_buffer *b)
{
	struct xen_backend *xb = state;
	uint64_t budget = maptrack_budget(xb, who->domain);
	/* What the domain maps now, over all its sessions, plus this buffer and its directory
	 * (mapped for the walk). */
	uint64_t mapped = xb->svc->pages_mapped(xb->svc->ctx, who->domain);

	if (mapped + b->data_pages + b->dir_pages > budget) {
		log_info("%s: importing %u pages would exceed dom%u's maptrack budget (%llu pages, "
			 "%llu mapped)",
			 who->label, b->data_pages, who->domain, (unsigned long long)budget,
			 (unsigned long long)mapped);
		return -ENOSPC;
	}
	return 0;
}

static int xen_attach(void *state, const struct hbb_caller *who, uint32_t group, uint32_t peer_id,
		      int *fd_out)
{
	return -ENOENT; /* no groups on Xen */
}

static int xen_welcome(void *state, uint32_t domain, Welcome *w)
{
	w->memory = HBP_MEMORY_GRANTS;
	return 0;
}

static void xen_welcome_free(void *state, Welcome *w)
{
}

static void xen_stats(void *state, void (*put)(void *ctx, const char *key, uint64_t v), void *ctx)
{
	struct xen_backend *xb = state;
	struct xen_domain *dom;
	uint64_t served = 0, conns = 0;
	/* pages_used, as on KVM, is what the buffers hold: here the pages the domains granted,
	 * counted against their grant budgets until every importer let go. dom0 is not served. */
	uint64_t used = xb->svc->pages_held(xb->svc->ctx, 0);

	hbc_list_for_each_safe(dom, &xb->domains, struct xen_domain, link)
	{
		served++;
		conns += dom->n_conns;
		used += xb->svc->pages_held(xb->svc->ctx, dom->domid);
	}
	put(ctx, "pages_used", used);
	put(ctx, "xen.domains_served", served);
	put(ctx, "xen.vchans_connected", conns);
	put(ctx, "xen.vchans_total", xb->conns_total);
	put(ctx, "xen.vchans_refused", xb->conns_refused);
	put(ctx, "xen.ring_violations", xb->violations);
	put(ctx, "xen.domains_died", xb->domains_died);
}

const struct hbb_host_ops hbx_host_ops = {
    .version = HBB_HOST_VERSION,
    .name = "xen",
    .start = xen_start,
    .stop = xen_stop,
    .can_share = xen_can_share,
    .alloc = xen_alloc,
    .release = xen_release,
    .attach = xen_attach,
    .welcome = xen_welcome,
    .welcome_free = xen_welcome_free,
    .stats = xen_stats,
    .grant = xen_grant,
    .can_import = xen_can_import,
};
