/*
 * The Xen backend, guest side: grant-based buffers (struct hbb_guest_ops for libhyperbuf),
 * for every client whose daemon is Xen (Welcome.memory == HBP_MEMORY_GRANTS), dom0's
 * unix-socket clients included. An exporter allocates its pages with gntalloc, grants them to
 * the peer (read-only unless HB_BUFFER_PEER_WRITABLE) and describes them in a reference
 * directory of read-only granted pages (protocol/refdir.c); an importer maps the directory one
 * level per batched grant map, then the data in one more.
 *
 * HYPERBUF_DEBUG=1 in the environment makes the library say on stderr why a Xen limit or
 * device refused something (errno alone cannot name the sysfs knob to turn).
 *
 * dma-bufs: gntdev's, of writable imports, where the kernel has them (xen_dmabuf).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <xengnttab.h>

#include <xen/sys/gntdev.h> /* after <stdint.h>, which it uses without including */

#include "backends/backend.h"
#include "backends/xen/desc.h"
#include "common/file.h"
#include "common/log.h"
#include "hyperbuf.h"
#include "protocol/desc.h"
#include "protocol/refdir.h"

#define HBX_GNTALLOC_LIMIT "/sys/module/xen_gntalloc/parameters/limit"
#define HBX_GNTDEV_LIMIT   "/sys/module/xen_gntdev/parameters/limit"

/* Buffers freed by the application whose grants wait for RECLAIMED. */
struct hbx_parked {
	struct hbx_parked *next;
	uint64_t handle;
	void *data, *dir;
	uint32_t pages, dir_pages;
};

struct hbx_guest {
	const struct hbb_guest_services *svc;
	bool inline_refs; /* the daemon takes small buffers' refs inline (Welcome.features) */
	xengnttab_handle *gt;
	xengntshr_handle *gs;
	struct hbx_parked *parked;
};

/* A mapping's struct hbb_mapping.priv: how to give its pages back. */
enum hbx_map_kind {
	HBX_MAP_EXPORT = 1, /* our pages, granted to the peer (gntalloc) */
	HBX_MAP_IMPORT,     /* the exporter's pages (gntdev) */
	HBX_MAP_COPY,       /* a private copy that replaced an import when its exporter died */
};

struct hbx_map {
	enum hbx_map_kind kind;
	bool writable;
	uint32_t domid; /* import: the exporting domain */
	uint32_t pages;
	uint32_t *refs; /* import: the data pages' grant refs, for a dma-buf of them */
	void *dir;      /* export: the directory pages */
	uint32_t dir_pages;
};

/* A domain without the grant devices can still connect; its allocations and imports then fail
 * with ENODEV. */
static int xen_open(const struct hbb_guest_services *svc, const Welcome *w,
		    enum hbb_attach_mode mode, void **state)
{
	struct hbx_guest *x;

	/* We grant and map pages ourselves; there are no pools. */
	if (w->n_groups)
		return -EPROTO;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->svc = svc;
	x->inline_refs = w->features & HBP_FEATURE_INLINE_REFS;
	x->gt = xengnttab_open(NULL, 0);
	if (x->gt)
		x->gs = xengntshr_open(NULL, 0);
	if (!x->gt || !x->gs)
		log_debug("xen: /dev/xen/%s: %s; sharing needs xen-gntdev and xen-gntalloc loaded",
			  x->gt ? "gntalloc" : "gntdev", strerror(errno ? errno : ENODEV));
	*state = x;
	return 0;
}

static void end_grants(struct hbx_guest *x, void *data, uint32_t pages, void *dir,
		       uint32_t dir_pages)
{
	/* A page some importer still maps is kept by the kernel and its grant ended late. */
	if (data)
		xengntshr_unshare(x->gs, data, pages);
	if (dir)
		xengntshr_unshare(x->gs, dir, dir_pages);
}

/* Ends every parked grant and closes the devices. */
static void xen_close(void *state)
{
	struct hbx_guest *x = state;

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
	free(x);
}

/* Local limits first, so a buffer that cannot be granted costs no round trip. */
static int xen_alloc_check(void *state, uint64_t size)
{
	struct hbx_guest *x = state;
	uint64_t pages = hbx_buffer_pages(size, x->inline_refs);
	long limit;

	if (!x->gs)
		return -ENODEV;
	if (!pages || pages > UINT32_MAX)
		return -EFBIG;
	limit = hbc_read_long(HBX_GNTALLOC_LIMIT);
	if (limit >= 0 && pages > (uint64_t)limit) {
		log_debug("xen: %llu bytes need %llu granted pages, over this domain's gntalloc "
			  "limit of %ld: raise %s (docs/XEN.md)",
			  (unsigned long long)size, (unsigned long long)pages, limit,
			  HBX_GNTALLOC_LIMIT);
		return -ENOSPC;
	}
	return 0;
}

static int send_grant(struct hbx_guest *x, uint64_t handle, const struct hbp_refdir *d)
{
	Grant g = GRANT__INIT;
	BufferDesc desc = BUFFER_DESC__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	int r;

	hbp_desc_from_refdir(&desc, d, 0);
	g.buffer = handle;
	g.desc = &desc;
	m.body_case = CLIENT_MSG__BODY_GRANT;
	m.grant = &g;
	r = x->svc->request(x->svc->ctx, &m, SERVER_MSG__BODY__NOT_SET, &reply);
	if (r == 0)
		x->svc->reply_free(&reply);
	return r;
}

/* Fresh zeroed pages, writable by the peer only if it may import them so: a read-only grant
 * cannot be mapped writable whatever the importer's library does. Then the directory, in
 * read-only granted pages. */
static int grant_pages(struct hbx_guest *x, uint32_t peer, uint32_t flags, struct hbx_map *xm,
		       uint32_t *refs, uint32_t *drefs, uint8_t **data)
{
	int r;

	*data = xengntshr_share_pages(x->gs, peer, xm->pages, refs,
				      (flags & HB_BUFFER_PEER_WRITABLE) != 0);
	if (*data && xm->dir_pages)
		xm->dir = xengntshr_share_pages(x->gs, peer, xm->dir_pages, drefs, 0);
	if (*data && (xm->dir || !xm->dir_pages))
		return 0;
	r = -errno;
	log_debug("xen: granting %u+%u pages to dom%u: %s%s", xm->pages, xm->dir_pages, peer,
		  strerror(-r),
		  r == -ENOSPC ? " (the domain's gntalloc limit, " HBX_GNTALLOC_LIMIT
				 ", is used up; docs/XEN.md)"
			       : "");
	end_grants(x, *data, xm->pages, xm->dir, xm->dir_pages);
	*data = NULL;
	xm->dir = NULL;
	return r == -ENOMEM || r == -ENOSPC ? r : -ENOSPC;
}

/* The daemon reserved buffer ar->buffer; its pages are ours to allocate, grant and describe.
 * On failure nothing stays granted. */
static int xen_alloc(void *state, const AllocReply *ar, uint32_t peer, uint64_t size,
		     uint32_t flags, struct hbb_mapping *m)
{
	struct hbx_guest *x = state;
	struct hbx_map *xm = calloc(1, sizeof(*xm));
	uint32_t *refs = NULL, *drefs = NULL;
	void **dir_mem = NULL;
	uint8_t *data = NULL;
	struct hbp_refdir d;
	int r = -ENOMEM;

	memset(m, 0, sizeof(*m));
	if (!x->gs) {
		free(xm);
		return -ENODEV;
	}
	if (!xm)
		return -ENOMEM;
	*xm = (struct hbx_map){.kind = HBX_MAP_EXPORT, .writable = true, .domid = peer};
	xm->pages = (uint32_t)hbp_refdir_span(size, 0);
	/* What the daemon reserved: no directory page for a small buffer, if it takes them so. */
	xm->dir_pages = (uint32_t)(hbx_buffer_pages(size, x->inline_refs) - xm->pages);
	refs = malloc((size_t)xm->pages * sizeof(*refs));
	drefs = malloc((size_t)(xm->dir_pages + 1) * sizeof(*drefs));
	dir_mem = malloc((size_t)(xm->dir_pages + 1) * sizeof(*dir_mem));
	if (!refs || !drefs || !dir_mem)
		goto out;
	r = grant_pages(x, peer, flags, xm, refs, drefs, &data);
	if (r < 0)
		goto out;
	for (uint32_t i = 0; i < xm->dir_pages; i++)
		dir_mem[i] = (uint8_t *)xm->dir + (size_t)i * HBP_PAGE_SIZE;
	r = xm->dir_pages ? hbp_refdir_build(refs, xm->pages, drefs, dir_mem, size, 0, &d)
			  : hbp_refdir_inline(refs, xm->pages, size, 0, &d);
	if (r == 0)
		r = send_grant(x, ar->buffer, &d);
	if (r < 0) {
		end_grants(x, data, xm->pages, xm->dir, xm->dir_pages);
		goto out;
	}
	*m = (struct hbb_mapping){
	    .base = data,
	    .len = (size_t)xm->pages * HBP_PAGE_SIZE,
	    .data = data,
	    .size = (size_t)size,
	    .priv = xm,
	};
	xm = NULL;
out:
	free(xm);
	free(refs);
	free(drefs);
	free(dir_mem);
	return r;
}

/* hb_buffer_free: the grants of m wait for RECLAIMED (the pages leave m). */
static void xen_park(void *state, uint64_t handle, struct hbb_mapping *m)
{
	struct hbx_guest *x = state;
	struct hbx_map *xm = m->priv;
	struct hbx_parked *p;

	if (!xm || xm->kind != HBX_MAP_EXPORT)
		return;
	p = malloc(sizeof(*p));
	if (!p)
		return; /* the mapping is unshared at unmap, and the kernel ends busy grants late */
	*p = (struct hbx_parked){
	    .next = x->parked,
	    .handle = handle,
	    .data = m->base,
	    .dir = xm->dir,
	    .pages = xm->pages,
	    .dir_pages = xm->dir_pages,
	};
	x->parked = p;
	m->base = NULL;
	xm->dir = NULL;
}

/* RECLAIMED: nobody maps buffer handle any more; its grants end. */
static void xen_reclaimed(void *state, uint64_t handle)
{
	struct hbx_guest *x = state;

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

static void xen_unmap(void *state, struct hbb_mapping *m)
{
	struct hbx_guest *x = state;
	struct hbx_map *xm = m->priv;

	switch (xm ? xm->kind : 0) {
	case HBX_MAP_EXPORT:
		end_grants(x, m->base, xm->pages, xm->dir, xm->dir_pages);
		break;
	case HBX_MAP_IMPORT:
		if (m->base)
			xengnttab_unmap(x->gt, m->base, xm->pages);
		break;
	case HBX_MAP_COPY:
		if (m->base)
			munmap(m->base, m->len);
		break;
	}
	if (xm)
		free(xm->refs);
	free(xm);
	memset(m, 0, sizeof(*m));
}

struct walk_ctx {
	struct hbx_guest *x;
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

/* The directory is the exporter's, so hostile: refs are checked, and a ref not granted to us
 * makes its batch fail. Then the data, in one more batch. *refs_out: the data's refs. */
static int map_grants(struct hbx_guest *x, const struct hbp_refdir *d, uint32_t exporter,
		      bool writable, void **data, uint32_t **refs_out)
{
	struct walk_ctx w = {.x = x, .domid = exporter};
	const struct hbp_refdir_ops ops = {
	    .validate = walk_validate,
	    .map_many = walk_map_many,
	    .unmap_many = walk_unmap_many,
	    .ctx = &w,
	};
	uint32_t *refs = malloc((size_t)d->pages * sizeof(*refs));
	int r;

	if (!refs)
		return -ENOMEM;
	r = hbp_refdir_walk(d, &ops, refs);
	if (r < 0) {
		free(refs);
		return r == -ENOMEM ? r : r == -EINVAL ? -EPROTO : -EBADMSG;
	}
	*data = xengnttab_map_domain_grant_refs(x->gt, d->pages, exporter, refs,
						writable ? PROT_READ | PROT_WRITE : PROT_READ);
	r = *data ? 0 : -errno;
	if (r < 0) {
		free(refs);
		log_debug("xen: mapping %u pages of dom%u: %s", d->pages, exporter, strerror(-r));
		return r == -ENOMEM ? r : -EBADMSG;
	}
	*refs_out = refs;
	return 0;
}

/* EPROTO for a descriptor the daemon should never have sent (it checked the exporter's
 * Grant), EBADMSG for a directory that is corrupt or names pages not granted to us, EFBIG over
 * the gntdev per-map limit, ENODEV without gntdev. */
static int xen_import(void *state, const ImportReply *ir, bool writable, struct hbb_mapping *m)
{
	struct hbx_guest *x = state;
	struct hbx_map *xm;
	struct hbp_refdir d;
	uint32_t *refs;
	void *data;
	long limit;
	int r;

	memset(m, 0, sizeof(*m));
	if (!x->gt)
		return -ENODEV;
	if (!ir->desc || ir->desc->group != 0 || hbp_desc_to_refdir(ir->desc, &d) < 0)
		return -EPROTO;
	limit = hbc_read_long(HBX_GNTDEV_LIMIT);
	if (limit > 0 && d.pages > (uint64_t)limit) {
		log_debug("xen: importing %u pages in one mapping is over gntdev's limit of %ld: "
			  "raise %s (docs/XEN.md)",
			  d.pages, limit, HBX_GNTDEV_LIMIT);
		return -EFBIG;
	}
	xm = malloc(sizeof(*xm));
	if (!xm)
		return -ENOMEM;
	r = map_grants(x, &d, ir->exporter, writable, &data, &refs);
	if (r < 0) {
		free(xm);
		return r;
	}
	*xm = (struct hbx_map){
	    .kind = HBX_MAP_IMPORT,
	    .writable = writable,
	    .domid = ir->exporter,
	    .pages = d.pages,
	    .refs = refs,
	};
	*m = (struct hbb_mapping){
	    .base = data,
	    .len = (size_t)d.pages * HBP_PAGE_SIZE,
	    .data = (uint8_t *)data + d.first_offset,
	    .size = (size_t)d.size,
	    .priv = xm,
	};
	return 0;
}

/* No memory for a copy: the grants must go all the same; the range reads zeros from now. */
static int detach_without_copy(struct hbx_guest *x, struct hbb_mapping *m, struct hbx_map *xm)
{
	void *fill;

	xengnttab_unmap(x->gt, m->base, xm->pages);
	fill = mmap(m->base, m->len, xm->writable ? PROT_READ | PROT_WRITE : PROT_READ,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (fill != m->base) {
		if (fill != MAP_FAILED)
			munmap(fill, m->len);
		m->base = NULL;
	}
	xm->kind = HBX_MAP_COPY;
	return -ENOMEM;
}

/*
 * An import of a dead domain's pages becomes a private copy where it was: the copy is made
 * from the grants while they are still mapped, moved over them with one mremap (so the
 * address range is never empty for another thread to take), and gntdev is then told to drop
 * its record of the grants, which the mremap already unmapped.
 */
static int detach(struct hbx_guest *x, struct hbb_mapping *m, struct hbx_map *xm)
{
	struct ioctl_gntdev_get_offset_for_vaddr q = {.vaddr = (uintptr_t)m->base};
	struct ioctl_gntdev_unmap_grant_ref u = {0};
	int fd = xengnttab_fd(x->gt);
	void *copy;

	if (ioctl(fd, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, &q) < 0)
		return -errno;
	copy = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (copy == MAP_FAILED)
		return detach_without_copy(x, m, xm);
	memcpy(copy, m->base, m->len);
	if (!xm->writable)
		mprotect(copy, m->len, PROT_READ);
	if (mremap(copy, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED, m->base) == MAP_FAILED) {
		int r = -errno;

		munmap(copy, m->len);
		return r;
	}
	u.index = q.offset;
	u.count = q.count;
	ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &u);
	xm->kind = HBX_MAP_COPY;
	return 0;
}

/* DOMAIN_GONE: nothing may keep a dead domain's pages mapped, or it cannot finish dying. */
static void xen_peer_gone(void *state, uint32_t domid, struct hbb_mapping *m)
{
	struct hbx_map *xm = m->priv;
	int r;

	if (!xm || xm->kind != HBX_MAP_IMPORT || xm->domid != domid)
		return;
	r = detach(state, m, xm);
	if (r < 0)
		log_debug("xen: import from dead dom%u: %s", domid, strerror(-r));
	else
		log_debug("xen: dom%u died; an import of it is now a private copy", domid);
}

/*
 * A dma-buf of an import: gntdev maps its grants once more, into a dma-buf
 * (IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS), where the kernel can: built with
 * CONFIG_XEN_GNTDEV_DMABUF (Debian 12's is not) and in a PVH or HVM domain (gntdev refuses
 * it to PV domains). It maps them read-write: a read-only import's grants cannot be mapped
 * so, and a read-only dma-buf is not offered. The exporter's own pages are not grants it
 * could map: buffers get none.
 */
static int xen_dmabuf(void *state, const struct hbb_mapping *m, bool writable)
{
	struct hbx_guest *x = state;
	struct hbx_map *xm = m->priv;
	uint32_t fd;
	int e;

	if (!xm || xm->kind != HBX_MAP_IMPORT || !xm->refs) {
		log_warn("xen: no dma-buf of this domain's own pages: gntdev makes them of another "
			 "domain's grants (imports) only");
		return -ENODEV;
	}
	if (!xm->writable || !writable) {
		log_warn("xen: gntdev maps a dma-buf's grants read-write: only a writable import "
			 "(HB_IMPORT_WRITE) without HB_DMABUF_READ_ONLY can become one");
		return -EACCES;
	}
	if (xengnttab_dmabuf_exp_from_refs(x->gt, xm->domid, 0, xm->pages, xm->refs, &fd) < 0) {
		e = errno;
		log_warn("xen: gntdev made no dma-buf (%s): it needs a kernel built with "
			 "CONFIG_XEN_GNTDEV_DMABUF (Debian 12's is not) and a PVH or HVM domain "
			 "(docs/DMABUF.md)",
			 strerror(e));
		return e == ENOTTY || e == ENOSYS || e == EOPNOTSUPP || e == EINVAL ? -ENODEV : -e;
	}
	fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	return (int)fd;
}

const struct hbb_guest_ops hbx_guest_ops = {
    .version = HBB_GUEST_VERSION,
    .name = "xen",
    .open = xen_open,
    .close = xen_close,
    .alloc_check = xen_alloc_check,
    .alloc = xen_alloc,
    .import = xen_import,
    .park = xen_park,
    .reclaimed = xen_reclaimed,
    .unmap = xen_unmap,
    .peer_gone = xen_peer_gone,
    .dmabuf = xen_dmabuf,
};
