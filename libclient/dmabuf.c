/*
 * dma-bufs of buffers and imports (docs/DMABUF.md): hb_buffer_dmabuf, hb_import_dmabuf, and
 * the rule that a dma-buf holds what it was made of (dmabuf.h).
 *
 * The backend makes the dma-buf (udmabuf on the host and in emulated VMs, hyperbuf.ko in KVM
 * guests); the library makes at most one per buffer or import and access mode, keeps a
 * reference of its own, and gives every caller a new fd of it. Each call also carries the
 * buffer's reservation into the dma-buf's own: every pending fence of it becomes a sync_file
 * imported with DMA_BUF_IOCTL_IMPORT_SYNC_FILE (writers' as writes, readers' as reads), so
 * DMA_BUF_IOCTL_EXPORT_SYNC_FILE, DMA_BUF_IOCTL_SYNC and a GPU driver's implicit sync wait for
 * hyperbuf's writers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/log.h"
#include "libclient/client.h"

void hbl_kernel_init(struct hbl_kernel *k)
{
	k->ctl_fd = -1;
	hbc_list_init(&k->lingering_buffers);
	hbc_list_init(&k->lingering_imports);
}

void hbl_dmabufs_close(struct hbl_dmabufs *ds)
{
	for (int i = 0; i < 2; i++)
		if (ds->have & (1u << i))
			close(ds->fd[i]);
	ds->have = 0;
}

void hbl_kernel_destroy(struct hb_client *c)
{
	struct hb_buffer *b;
	struct hb_import *im;

	hbc_list_for_each_safe(b, &c->kern.lingering_buffers, struct hb_buffer, link)
	    hbl_buffer_destroy(b);
	hbc_list_for_each_safe(im, &c->kern.lingering_imports, struct hb_import, link)
	    hbl_import_destroy(im);
	if (c->kern.ctl_fd >= 0)
		close(c->kern.ctl_fd);
	c->kern.ctl_fd = -1;
}

/* ---- holders ---------------------------------------------------------------------------- */

/* The dma-buf's own count of references (fds, mappings, importers), from its fdinfo: -1 if
 * unknown. */
static long dmabuf_refs(int fd)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "\ncount:");
	return p ? strtol(p + 7, NULL, 10) : -1;
}

/* Whether anybody but the library holds one of ds's dma-bufs. Unknown counts as held. */
static bool held_elsewhere(const struct hbl_dmabufs *ds)
{
	for (int i = 0; i < 2; i++) {
		long n = ds->have & (1u << i) ? dmabuf_refs(ds->fd[i]) : 1;

		if (n != 1)
			return true;
	}
	return false;
}

static int send_unexport(struct hb_client *c, const struct hb_id *id)
{
	Unexport u = UNEXPORT__INIT;
	ClientMsg m = CLIENT_MSG__INIT;

	u.hid = hbl_wire_hid(id);
	u.delay_ms = 0;
	m.body_case = CLIENT_MSG__BODY_UNEXPORT;
	m.unexport = &u;
	return hbl_call_simple(c, &m);
}

bool hbl_buffer_linger(struct hb_buffer *b)
{
	struct hb_client *c = b->client;

	if (!b->dmabufs.have || hbl_conn_broken(&c->conn) < 0 || !held_elsewhere(&b->dmabufs))
		return false;
	/* Freed as far as anybody can see: withdrawn now, unmapped; the pages stay. */
	if (b->exported)
		send_unexport(c, &b->hid);
	b->exported = false;
	b->export_live = false;
	c->mem.ops->unmap(c->mem.state, &b->map);
	hbc_list_remove(&b->link);
	hbc_list_insert_tail(&c->kern.lingering_buffers, &b->link);
	log_debug("dma-buf: buffer %llu stays until nobody holds its dma-buf",
		  (unsigned long long)b->handle);
	return true;
}

bool hbl_import_linger(struct hb_import *im)
{
	struct hb_client *c = im->client;

	if (!im->dmabufs.have || hbl_conn_broken(&c->conn) < 0 || !held_elsewhere(&im->dmabufs))
		return false;
	c->mem.ops->unmap(c->mem.state, &im->map);
	hbc_list_remove(&im->link);
	hbc_list_insert_tail(&c->kern.lingering_imports, &im->link);
	log_debug("dma-buf: import %llu stays until nobody holds its dma-buf",
		  (unsigned long long)im->handle);
	return true;
}

void hbl_dmabufs_reap(struct hb_client *c)
{
	struct hbc_list bufs, imps;
	struct hb_buffer *b;
	struct hb_import *im;

	hbc_list_init(&bufs);
	hbc_list_init(&imps);
	hbl_lock(c);
	hbc_list_for_each_safe(b, &c->kern.lingering_buffers, struct hb_buffer, link)
	{
		if (held_elsewhere(&b->dmabufs) && hbl_conn_broken(&c->conn) == 0)
			continue;
		hbl_dmabufs_close(&b->dmabufs);
		hbc_list_remove(&b->link);
		hbc_list_insert_tail(&bufs, &b->link);
	}
	hbc_list_for_each_safe(im, &c->kern.lingering_imports, struct hb_import, link)
	{
		if (held_elsewhere(&im->dmabufs) && hbl_conn_broken(&c->conn) == 0)
			continue;
		hbl_dmabufs_close(&im->dmabufs);
		hbc_list_remove(&im->link);
		hbc_list_insert_tail(&imps, &im->link);
	}
	hbl_unlock(c);
	/* Nobody holds them: the ordinary free and release, which lock by themselves. */
	hbc_list_for_each_safe(b, &bufs, struct hb_buffer, link) hb_buffer_free(b);
	hbc_list_for_each_safe(im, &imps, struct hb_import, link) hb_import_release(im);
}

/* ---- making them ------------------------------------------------------------------------ */

/* One pending fence of the reservation into the dma-buf's own, as a sync_file. */
static int import_fence(struct hb_client *c, const struct hb_fence *f, bool write, int dmabuf)
{
	struct dma_buf_import_sync_file is = {.flags =
						  write ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_READ};
	struct hb_sync *s;
	int r;

	r = hbl_sync_open_locked(c, f, &s);
	if (r == -ENOENT)
		return 0; /* destroyed since the answer: complete */
	if (r < 0)
		return r;
	/* Complete already: nothing to wait for. */
	r = hbl_sync_status(s) == 0 ? hbl_sync_file_locked(c, s) : -ENOENT;
	hbl_sync_close_locked(s);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	is.fd = r;
	r = ioctl(dmabuf, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &is) < 0 ? -errno : 0;
	close(is.fd);
	return r;
}

/* The reservation of the buffer behind id into the dma-buf's: READ asks the daemon for the
 * writers' fences, WRITE for all of them; the difference is the readers'. */
static int import_resv(struct hb_client *c, const struct hb_id *id, int dmabuf)
{
	struct hb_fence writers[HB_RESV_MAX], all[HB_RESV_MAX];
	size_t nw = 0, na = 0;
	int r;

	r = hbl_resv_query(c, id, HB_ACCESS_READ, writers, &nw);
	if (r == 0)
		r = hbl_resv_query(c, id, HB_ACCESS_WRITE, all, &na);
	/* Unexported since: nobody can attach fences to it any more. */
	if (r == -ENOENT)
		return 0;
	for (size_t i = 0; r == 0 && i < na; i++) {
		bool write = false;

		for (size_t j = 0; j < nw && !write; j++)
			write = writers[j].timeline == all[i].timeline &&
				writers[j].value == all[i].value;
		r = import_fence(c, &all[i], write, dmabuf);
	}
	return r;
}

/* A new fd of m's dma-buf for this access mode, made once; with the reservation of id (if
 * any) carried into it. */
static int dmabuf_fd(struct hb_client *c, const struct hbb_mapping *m, struct hbl_dmabufs *ds,
		     bool writable, const struct hb_id *id)
{
	const struct hbb_guest_ops *ops = c->mem.ops;
	int r, fd;

	r = hbl_conn_broken(&c->conn);
	if (r < 0)
		return r;
	if (!(ds->have & (1u << writable))) {
		if (ops->version < 2 || !ops->dmabuf) {
			log_warn("dma-buf: the %s backend makes no dma-bufs", ops->name);
			return -ENODEV;
		}
		r = ops->dmabuf(c->mem.state, m, writable);
		if (r < 0)
			return r;
		ds->fd[writable] = r;
		ds->have |= 1u << writable;
	}
	if (id) {
		r = import_resv(c, id, ds->fd[writable]);
		if (r < 0)
			return r;
	}
	fd = fcntl(ds->fd[writable], F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

HBL_PUBLIC int hb_buffer_dmabuf(struct hb_buffer *b, uint32_t flags)
{
	struct hb_client *c;
	int r;

	if (!b || (flags & ~HB_DMABUF_READ_ONLY))
		return hbl_fail(-EINVAL);
	c = b->client;
	hbl_dmabufs_reap(c);
	hbl_lock(c);
	r = dmabuf_fd(c, &b->map, &b->dmabufs, !(flags & HB_DMABUF_READ_ONLY),
		      b->exported ? &b->hid : NULL);
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : r;
}

HBL_PUBLIC int hb_import_dmabuf(struct hb_import *im, uint32_t flags)
{
	struct hb_client *c;
	int r;

	if (!im || (flags & ~HB_DMABUF_READ_ONLY))
		return hbl_fail(-EINVAL);
	c = im->client;
	hbl_dmabufs_reap(c);
	hbl_lock(c);
	r = dmabuf_fd(c, &im->map, &im->dmabufs, im->writable && !(flags & HB_DMABUF_READ_ONLY),
		      &im->hid);
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : r;
}
