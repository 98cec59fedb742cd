/*
 * dma-bufs of a buffer's or an import's pool pages: the KVM dmabuf op (backends/backend.h,
 * docs/DMABUF.md). The pages are the ones the mapping was made of (struct hbk_pages), never a
 * fresh walk of the directory, which any group member may have rewritten since.
 *
 * - The host and emulated VMs hold the pool memfd itself: udmabuf turns its page runs into a
 *   dma-buf (UDMABUF_CREATE_LIST). The pool is sealed against shrinking and not against
 *   writing, which is what udmabuf asks of a memfd. udmabuf has no read-only mode, so a
 *   read-only dma-buf is hyperbuf.ko's read-only view of the udmabuf one.
 * - A KVM guest maps its BARs through hyperbuf.ko's pool device when the module is loaded
 *   (bars.c), and asks it for the dma-buf (POOL_DMABUF); through sysfs there is none.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/udmabuf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backends/kvm/guest.h"
#include "common/file.h"
#include "common/log.h"
#include "kmod/hyperbuf_kmod.h"
#include "protocol/limits.h"

#define UDMABUF_DEV    "/dev/udmabuf"
#define UDMABUF_PARAMS "/sys/module/udmabuf/parameters/"

static struct hbk_group *group_of(struct hbk_guest *k, uint32_t id)
{
	for (size_t i = 0; i < k->n_groups; i++)
		if (k->groups[i].id == id && k->groups[i].win.fd >= 0)
			return &k->groups[i];
	return NULL;
}

static int open_udmabuf(struct hbk_guest *k)
{
	int fd;

	if (k->udmabuf_fd >= 0)
		return k->udmabuf_fd;
	fd = open(UDMABUF_DEV, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT || e == ENXIO || e == ENODEV) {
			log_warn("dma-buf: no %s: this kernel has no udmabuf (CONFIG_UDMABUF; "
				 "Debian 12's kernel is built without it: docs/DMABUF.md)",
				 UDMABUF_DEV);
			return -ENODEV;
		}
		log_warn("dma-buf: %s: %s", UDMABUF_DEV, strerror(e));
		return -e;
	}
	k->udmabuf_fd = fd;
	return fd;
}

void hbk_dmabuf_close(struct hbk_guest *k)
{
	if (k->udmabuf_fd >= 0)
		close(k->udmabuf_fd);
	k->udmabuf_fd = -1;
}

static uint32_t count_runs(const struct hbk_pages *p)
{
	uint32_t runs = 1;

	for (uint32_t i = 1; i < p->n; i++)
		runs += p->refs[i] != p->refs[i - 1] + 1;
	return runs;
}

/* udmabuf answers EINVAL for both of its limits; say which one, and how to raise it. */
static int check_limits(uint32_t runs, uint32_t pages)
{
	long list = hbc_read_long(UDMABUF_PARAMS "list_limit");
	long mb = hbc_read_long(UDMABUF_PARAMS "size_limit_mb");

	if (list > 0 && runs > (uint64_t)list) {
		log_warn("dma-buf: %u page runs, over udmabuf's list_limit of %ld (raise it: "
			 "udmabuf.list_limit=N)",
			 runs, list);
		return -E2BIG;
	}
	if (mb > 0 && (uint64_t)pages * HBP_PAGE_SIZE > ((uint64_t)mb << 20)) {
		log_warn("dma-buf: %u pages, over udmabuf's size_limit_mb of %ld (raise it: "
			 "udmabuf.size_limit_mb=N)",
			 pages, mb);
		return -E2BIG;
	}
	return 0;
}

static int udmabuf_of(struct hbk_guest *k, const struct hbk_group *g, const struct hbk_pages *p)
{
	struct udmabuf_create_list *head;
	uint32_t runs = count_runs(p), j = 0;
	int dev = open_udmabuf(k), fd, r;

	if (dev < 0)
		return dev;
	r = check_limits(runs, p->n);
	if (r < 0)
		return r;
	head = calloc(1, sizeof(*head) + (size_t)runs * sizeof(head->list[0]));
	if (!head)
		return -ENOMEM;
	head->flags = UDMABUF_FLAGS_CLOEXEC;
	head->count = runs;
	for (uint32_t i = 0; i < p->n; i++) {
		if (i > 0 && p->refs[i] == p->refs[i - 1] + 1) {
			head->list[j - 1].size += HBP_PAGE_SIZE;
			continue;
		}
		head->list[j].memfd = (uint32_t)g->win.fd;
		head->list[j].offset = (uint64_t)p->refs[i] * HBP_PAGE_SIZE;
		head->list[j].size = HBP_PAGE_SIZE;
		j++;
	}
	fd = ioctl(dev, UDMABUF_CREATE_LIST, head);
	r = fd < 0 ? -errno : fd;
	free(head);
	if (r < 0)
		log_warn("dma-buf: udmabuf refused %u pages in %u runs: %s", p->n, runs,
			 strerror(-r));
	return r;
}

/* Takes fd; returns a read-only view of it, made by hyperbuf.ko. */
static int rdonly_view(int fd)
{
	struct hyperbuf_dmabuf_rdonly a = {.fd = fd};
	int ctl = open(HYPERBUF_CTL_PATH, O_RDWR | O_CLOEXEC), r;

	if (ctl < 0) {
		r = errno == ENOENT || errno == ENXIO ? -ENODEV : -errno;
		log_warn(
		    "dma-buf: udmabuf has no read-only mode and %s is missing (%s): a read-only "
		    "dma-buf needs hyperbuf.ko (docs/DMABUF.md)",
		    HYPERBUF_CTL_PATH, strerror(errno));
		close(fd);
		return r;
	}
	r = ioctl(ctl, HYPERBUF_IOC_DMABUF_RDONLY, &a) < 0 ? -errno : a.out_fd;
	close(ctl);
	close(fd);
	return r;
}

static int pool_dmabuf(const struct hbk_group *g, const struct hbk_pages *p, bool writable)
{
	struct hyperbuf_pool_dmabuf a = {
	    .pages = (uintptr_t)p->refs,
	    .count = p->n,
	    .flags = writable ? HYPERBUF_DMABUF_WRITE : 0,
	};

	if (!g->kmod) {
		log_warn(
		    "dma-buf: group %u's pool is mapped through sysfs, which makes no dma-bufs: "
		    "load hyperbuf.ko (docs/DMABUF.md)",
		    g->id);
		return -ENODEV;
	}
	if (ioctl(g->win.fd, HYPERBUF_IOC_POOL_DMABUF, &a) < 0) {
		int e = errno;

		log_warn("dma-buf: hyperbuf.ko refused %u pages of group %u: %s", p->n, g->id,
			 strerror(e));
		return -e;
	}
	return a.fd;
}

int hbk_dmabuf(void *state, const struct hbb_mapping *m, bool writable)
{
	struct hbk_guest *k = state;
	const struct hbk_pages *p = m->priv;
	const struct hbk_group *g;
	int fd;

	if (!p || p->n == 0)
		return -EINVAL;
	g = group_of(k, p->group);
	if (!g)
		return -ENODEV;
	if (k->mode == HBB_ATTACH_GUEST)
		return pool_dmabuf(g, p, writable);
	fd = udmabuf_of(k, g, p);
	return fd < 0 || writable ? fd : rdonly_view(fd);
}
