/*
 * What the KVM backend keeps across a daemon restart (docs/RESTART.md).
 *
 * QEMU cannot reconnect to an ivshmem server, so a VM keeps its pool only if its connection
 * never closes: every pool memfd, ivshmem socket, accepted connection and eventfd goes into
 * the fd store under a name that says what it is ("pool.<group>", "ivl.<group>.<vm>",
 * "ivp.<peer>.<group>.<vm>", "ivi/ivd.<peer>.<vector>"), and a restarted daemon takes them
 * back as they were (ivshmem.c). The restart state adds what names cannot say: which VM
 * claimed a connection of a shared socket (a record per claim), and which pages each buffer
 * holds (the daemon's buffers, handed back through restore_buffer).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/host.h"

#define CLAIM_KEY(id) ((1ull << 32) | (id)) /* a claim record's key: the peer id, tagged */

static void pool_name(const struct kvm_group *g, char *out, size_t len)
{
	snprintf(out, len, "pool.%u", g->cfg.id);
}

int hbk_pool_open(struct kvm_group *g)
{
	const struct hbb_host_services *svc = g->svc;
	char name[32];
	int fd = -1, r = -EINVAL;

	pool_name(g, name, sizeof(name));
	if (svc->restoring)
		fd = svc->fd_take(svc->ctx, name);
	if (fd >= 0) {
		r = hbk_pool_adopt(&g->pool, fd, g->cfg.id, g->cfg.size);
		if (r < 0) {
			log_warn("group %s: the pool the last daemon kept is not this group's any "
				 "more (size or header); making a new one: VMs must restart",
				 g->cfg.name);
			svc->fd_forget(svc->ctx, name);
			close(fd);
		}
	}
	if (r < 0) {
		r = hbk_pool_init(&g->pool, g->cfg.name, g->cfg.id, g->cfg.size);
		if (r < 0) {
			log_err("group %s: cannot create its %llu-byte pool: %s", g->cfg.name,
				(unsigned long long)g->cfg.size, strerror(-r));
			return r;
		}
	}
	svc->fd_keep(svc->ctx, g->pool.fd, name);
	return 0;
}

void hbk_pool_close(struct kvm_group *g)
{
	char name[32];

	if (g->pool.fd >= 0 && g->svc) {
		pool_name(g, name, sizeof(name));
		g->svc->fd_forget(g->svc->ctx, name);
	}
	hbk_pool_fini(&g->pool);
}

void hbk_claim_keep(struct kvm_group *g, struct hbk_ivshmem_peer *p)
{
	uint8_t data[4] = {(uint8_t)p->domain, (uint8_t)(p->domain >> 8),
			   (uint8_t)(p->domain >> 16), (uint8_t)(p->domain >> 24)};

	p->claimed = true;
	g->svc->state_put(g->svc->ctx, CLAIM_KEY(p->id), data, sizeof(data));
}

void hbk_claim_forget(struct kvm_group *g, struct hbk_ivshmem_peer *p)
{
	if (!p->claimed)
		return;
	p->claimed = false;
	g->svc->state_drop(g->svc->ctx, CLAIM_KEY(p->id));
}

void hbk_save(void *state, void (*put)(void *ctx, uint64_t key, const void *data, size_t len),
	      void *ctx)
{
	struct kvm_backend *k = state;
	struct hbk_ivshmem_peer *p;

	for (unsigned i = 0; i < k->n_groups; i++) {
		hbc_list_for_each_safe(p, &k->groups[i].srv.peers, struct hbk_ivshmem_peer, link)
		{
			uint8_t data[4] = {(uint8_t)p->domain, (uint8_t)(p->domain >> 8),
					   (uint8_t)(p->domain >> 16), (uint8_t)(p->domain >> 24)};

			if (p->claimed)
				put(ctx, CLAIM_KEY(p->id), data, sizeof(data));
		}
	}
	hbk_ivshmem_waits_save(&k->ids, put, ctx);
	for (unsigned i = 0; i < k->n_groups; i++)
		hbk_ivshmem_parked_save(&k->groups[i].srv, put, ctx);
}

int hbk_restore_buffer(void *state, struct hbb_buffer *b)
{
	struct kvm_group *g = hbk_group(state, b->group);
	uint32_t n = b->data_pages + b->dir_pages;

	if (!g || !b->refs || hbk_member(g, b->exporter) < 0 || hbk_member(g, b->peer) < 0 ||
	    hbk_pool_take(&g->pool, b->refs, n) < 0)
		return -EBADMSG;
	hbk_share_take(g, b->exporter, n);
	return 0;
}

/* A claim: the peer exists in a group whose member the VM (or the host) is, and nobody else
 * has it. */
int hbk_restore_record(void *state, uint64_t key, const void *data, size_t len)
{
	struct kvm_backend *k = state;
	const uint8_t *v = data;
	uint32_t domain;

	if (((key >> 32) != 1 && (key >> 32) != 2) || len != 4)
		return -EBADMSG;
	domain = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
	/* An id that waits (ivshmem_ids.c): its data is its group. */
	if ((key >> 32) == 2) {
		struct kvm_group *g = hbk_group(k, domain);

		if (!g || (uint32_t)key > HBK_IVSHMEM_MAX_ID)
			return -EBADMSG;
		return hbk_ivshmem_wait_restore(&g->srv, (uint16_t)key) < 0 ? -EBADMSG : 0;
	}
	for (unsigned i = 0; i < k->n_groups; i++) {
		struct kvm_group *g = &k->groups[i];
		struct hbk_ivshmem_peer *p = hbk_ivshmem_peer(&g->srv, (uint32_t)key);

		if (!p)
			continue;
		if (p->bound || hbk_member(g, domain) < 0)
			return -EBADMSG;
		/* Its QEMU died while no daemon ran: the connection was not kept, nothing to do.
		 * The host's (a host session's doorbells) links nothing. */
		if (domain && g->svc->domain_link(g->svc->ctx, domain, true) < 0)
			return -ENOMEM;
		hbk_ivshmem_bind(p, domain);
		p->claimed = true;
		/* A host session's: whose it was is not kept, so it is not parked when it goes. */
		if (!domain)
			p->cred.uid = (uid_t)-1;
		return 0;
	}
	return 0; /* the connection closed while no daemon ran: the claim went with it */
}

void hbk_restore_done(void *state, bool ok)
{
	struct kvm_backend *k = state;

	for (unsigned i = 0; i < k->n_groups; i++)
		hbk_ivshmem_start_claims(&k->groups[i].srv);
}
