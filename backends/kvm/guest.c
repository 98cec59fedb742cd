/*
 * The KVM backend, guest side: struct hbb_guest_ops for libhyperbuf (see guest.h). The daemon
 * places every buffer in a pool and writes its reference directory there; this side walks the
 * directory (treating every ref as hostile, since every group member can write the pool) and
 * maps the pages into one contiguous range.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/guest.h"
#include "protocol/desc.h"
#include "protocol/limits.h"

static void group_close(struct hbk_group *g)
{
	if (g->iv_msg_fd >= 0)
		close(g->iv_msg_fd);
	g->iv_msg_fd = -1;
	if (g->iv_fd >= 0)
		close(g->iv_fd);
	g->iv_fd = -1;
	g->iv_ready = false;
	hbk_bells_close(g);
	hbk_pool_window_close(&g->win);
}

static void kvm_close(void *state)
{
	struct hbk_guest *k = state;

	if (!k)
		return;
	for (size_t i = 0; i < k->n_groups; i++)
		group_close(&k->groups[i]);
	hbk_dmabuf_close(k);
	free(k->groups);
	free(k);
}

/* The groups the welcome lists, after checking what we rely on. */
static int take_groups(struct hbk_guest *k, const Welcome *w)
{
	if (w->n_groups > HBP_MAX_GROUPS)
		return -EPROTO;
	if (w->n_groups == 0)
		return 0;
	k->groups = calloc(w->n_groups, sizeof(*k->groups));
	if (!k->groups)
		return -ENOMEM;
	for (size_t i = 0; i < w->n_groups; i++) {
		struct hbk_group *g = &k->groups[i];

		hbk_pool_window_init(&g->win);
		g->iv_fd = -1;
		g->iv_msg_fd = -1;
		g->bell = -1;
	}
	k->n_groups = w->n_groups;
	for (size_t i = 0; i < w->n_groups; i++) {
		const GroupInfo *gi = w->groups[i];

		for (size_t j = 0; j < i; j++)
			if (k->groups[j].id == gi->id)
				return -EPROTO;
		k->groups[i].id = gi->id;
		k->groups[i].pool_size = gi->pool_size;
		k->groups[i].pool_instance = gi->pool_instance;
	}
	return 0;
}

static int attach_groups(struct hbk_guest *k, const Welcome *w, enum hbb_attach_mode mode)
{
	if (mode == HBB_ATTACH_GUEST)
		return hbk_bars_attach(k);
	for (size_t i = 0; i < k->n_groups; i++) {
		int r = mode == HBB_ATTACH_EMULATED
			    ? hbk_ivshmem_attach(k, &k->groups[i], w->groups[i]->ivshmem_path)
			    : hbk_host_attach(k, &k->groups[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int kvm_open(const struct hbb_guest_services *svc, const Welcome *w,
		    enum hbb_attach_mode mode, void **state)
{
	struct hbk_guest *k = calloc(1, sizeof(*k));
	int r;

	if (!k)
		return -ENOMEM;
	k->svc = svc;
	k->mode = mode;
	k->udmabuf_fd = -1;
	r = take_groups(k, w);
	if (r == 0)
		r = attach_groups(k, w, mode);
	if (r < 0) {
		kvm_close(k);
		return r;
	}
	*state = k;
	return 0;
}

static struct hbk_group *find_group(struct hbk_guest *k, uint32_t id)
{
	for (size_t i = 0; i < k->n_groups; i++)
		if (k->groups[i].id == id && k->groups[i].win.base)
			return &k->groups[i];
	return NULL;
}

/* A small read-only buffer in one run of pages is read where the pool's own read-only mapping
 * already has it: no mmap, no page fault for pages read before. A bigger or writable one, or
 * one in pieces, gets a mapping of its own. */
static int map_pages(struct hbk_group *g, struct hbk_pages *pages, bool writable, void **base)
{
	uint32_t i;

	for (i = 1; i < pages->n && pages->refs[i] == pages->refs[0] + i; i++)
		;
	if (writable || pages->n > HBP_INLINE_REFS_MAX || i < pages->n)
		return hbk_pool_window_map(&g->win, pages->refs, pages->n, writable, base);
	pages->window = true;
	*base = (void *)(g->win.base + (size_t)pages->refs[0] * HBP_PAGE_SIZE);
	return 0;
}

/* Checks desc, walks its directory and maps its pages. The descriptor comes from the daemon:
 * wrong here means a daemon bug (EPROTO). The directory is in shared memory: wrong there
 * means a hostile or broken peer (EBADMSG). */
static int map_desc(struct hbk_guest *k, const BufferDesc *desc, bool writable,
		    struct hbb_mapping *m)
{
	struct hbk_group *g;
	struct hbp_refdir d;
	struct hbk_pages *pages;
	void *base;
	int r;

	memset(m, 0, sizeof(*m));
	if (hbp_desc_to_refdir(desc, &d) < 0)
		return -EPROTO;
	g = find_group(k, desc->group);
	if (!g || d.size >= g->win.size || d.pages >= g->win.pages)
		return -EPROTO;
	/* The pages stay with the mapping: a dma-buf of it is made of exactly these. */
	pages = malloc(sizeof(*pages) + (size_t)d.pages * sizeof(pages->refs[0]));
	if (!pages)
		return -ENOMEM;
	pages->group = g->id;
	pages->n = d.pages;
	pages->window = false;
	r = hbk_pool_window_walk(&g->win, &d, pages->refs);
	if (r < 0) {
		r = r == -ENOMEM ? r : -EBADMSG;
		goto err_pages;
	}
	r = map_pages(g, pages, writable, &base);
	if (r < 0)
		goto err_pages;
	m->base = base;
	m->len = (size_t)d.pages * HBP_PAGE_SIZE;
	m->data = (uint8_t *)base + d.first_offset;
	m->size = (size_t)d.size;
	m->priv = pages;
	return 0;

err_pages:
	free(pages);
	return r;
}

/* The daemon placed the buffer; exactly the size asked for, or it and we disagree about it. */
static int kvm_alloc(void *state, const AllocReply *ar, uint32_t peer, uint64_t size,
		     uint32_t flags, struct hbb_mapping *m)
{
	memset(m, 0, sizeof(*m));
	if (!ar->desc || ar->desc->size != size)
		return -EPROTO;
	return map_desc(state, ar->desc, true, m);
}

/* Read-only unless asked: the mapping itself enforces it, a write faults. */
static int kvm_import(void *state, const ImportReply *ir, bool writable, struct hbb_mapping *m)
{
	return map_desc(state, ir->desc, writable, m);
}

static void kvm_unmap(void *state, struct hbb_mapping *m)
{
	const struct hbk_pages *pages = m->priv;

	if (!pages || !pages->window)
		hbk_pool_window_unmap(m->base, m->len);
	free(m->priv);
	memset(m, 0, sizeof(*m));
}

static size_t kvm_pollfds(void *state, struct pollfd *pfd, size_t max)
{
	return hbk_ivshmem_pollfds(state, pfd, max);
}

static int kvm_drain(void *state)
{
	return hbk_ivshmem_drain(state);
}

const struct hbb_guest_ops hbk_guest_ops = {
    .version = HBB_GUEST_VERSION,
    .name = "kvm",
    .open = kvm_open,
    .close = kvm_close,
    .alloc = kvm_alloc,
    .import = kvm_import,
    .unmap = kvm_unmap,
    .pollfds = kvm_pollfds,
    .drain = kvm_drain,
    .dmabuf = hbk_dmabuf,
    .slot = hbk_slot,
    .slot_bit = hbk_slot_bit,
    .ring = hbk_ring,
    .polled = hbk_ivshmem_polled,
};
