/*
 * The KVM backend, host side (struct hbb_host_ops for hyperbufd): one sealed memfd pool per
 * [group], served to QEMU (and to emulated VMs) by an ivshmem-doorbell server, and to host
 * sessions by fd passing. A buffer lives in a pool whose members may all see it: the smallest
 * group holding both domains.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/host.h"
#include "protocol/limits.h"

static bool group_has(const struct kvm_group *g, uint32_t domain)
{
	return hbk_member(g, domain) >= 0;
}

struct kvm_group *hbk_group(struct kvm_backend *k, uint32_t id)
{
	for (unsigned i = 0; i < k->n_groups; i++)
		if (k->groups[i].cfg.id == id)
			return &k->groups[i];
	return NULL;
}

/* A peer on a VM's own socket is that VM's QEMU from the start: the VM is present before
 * any guest process says Hello, and its going is noticed even if none ever did. */
static void on_peer_join(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_peer *p)
{
	struct kvm_group *g = srv->data;

	/* Out of memory: treat it as a peer of the shared kind. */
	/* The host is never gone: its connections are doorbells only. */
	if (p->bound && p->domain && g->svc->domain_link(g->svc->ctx, p->domain, true) < 0)
		p->bound = false;
	hbk_slots_direct(g);
}

/*
 * The VM's last ivshmem connection closed: its QEMU is gone (or its devices were unplugged).
 * Peers hear DOMAIN_GONE, and the VM's sessions end as a disconnect would, which unexports
 * what it exported and releases what it imported: pages come back once nobody maps them.
 * Closing the channel makes a live QEMU reconnect (reconnect=) and its guest process see EOF.
 */
static void on_peer_gone(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_peer *p)
{
	struct kvm_group *g = srv->data;

	hbk_claim_forget(g, p);
	if (p->bound && p->domain)
		g->svc->domain_link(g->svc->ctx, p->domain, false);
	hbk_slots_direct(g);
}

/* A VM's own ivshmem socket is its QEMU's user's, 0600 (0660 when only its group is known). */
static struct hbc_sock_owner owner_of(const struct hbc_config_vm *vm)
{
	return (struct hbc_sock_owner){
	    .uid = vm->uid != HBC_ID_UNSET ? (uid_t)vm->uid : (uid_t)-1,
	    .gid = vm->sock_gid != HBC_ID_UNSET ? (gid_t)vm->sock_gid : (gid_t)-1,
	    .mode = vm->uid == HBC_ID_UNSET && vm->sock_gid != HBC_ID_UNSET ? 0660 : 0600,
	};
}

/* The group's ivshmem sockets: one per member VM for a {vm} path, else one shared. */
static int kvm_listen(struct kvm_backend *k, struct kvm_group *g)
{
	char path[HBC_SUN_PATH_MAX];
	struct hbc_sock_owner owner;
	int r;

	if (!g->cfg.ivshmem_per_vm) {
		/* The daemon's user only: with VMs of their own users, use {vm} sockets. */
		owner = (struct hbc_sock_owner){(uid_t)-1, (gid_t)-1, 0600};
		r = hbk_ivshmem_listen(&g->srv, g->cfg.ivshmem, false, 0, &owner,
				       HBK_CLAIM_SECONDS);
		if (r < 0)
			log_err("group %s: ivshmem server on %s: %s", g->cfg.name, g->cfg.ivshmem,
				strerror(-r));
		return r;
	}
	for (unsigned m = 0; m < g->cfg.n_members; m++) {
		const struct hbc_config_vm *vm =
		    hbc_config_vm_by_id(k->svc->cfg, g->cfg.members[m]);

		if (!vm)
			continue; /* the host maps the pool from its fd */
		owner = owner_of(vm);
		r = hbc_config_ivshmem_path(&g->cfg, vm, path);
		if (r == 0)
			r = hbk_ivshmem_listen(&g->srv, path, true, vm->id, &owner, 0);
		if (r < 0) {
			log_err("group %s: ivshmem server for vm %s on %s: %s", g->cfg.name,
				vm->name, path, strerror(-r));
			return r;
		}
	}
	return 0;
}

static void kvm_stop(void *state)
{
	struct kvm_backend *k = state;

	if (!k)
		return;
	for (unsigned i = 0; i < k->n_groups; i++) {
		hbk_ivshmem_stop(&k->groups[i].srv);
		hbk_pool_close(&k->groups[i]);
	}
	hbk_ivshmem_ids_free(&k->ids);
	free(k->groups);
	free(k);
}

static int kvm_start(const struct hbb_host_services *svc, void **state)
{
	const struct hbc_config *cfg = svc->cfg;
	struct kvm_backend *k = calloc(1, sizeof(*k));
	int r;

	if (!k)
		return -ENOMEM;
	k->svc = svc;
	k->groups = calloc(cfg->n_groups ? cfg->n_groups : 1, sizeof(*k->groups));
	if (!k->groups) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned i = 0; i < cfg->n_groups; i++) {
		struct kvm_group *g = &k->groups[i];

		g->svc = svc;
		g->cfg = cfg->groups[i];
		k->n_groups++;
		r = hbk_pool_open(g);
		if (r < 0)
			goto err;
		r = hbk_ivshmem_start(&g->srv, svc, g->cfg.id, g->cfg.name, &k->ids, g->pool.fd,
				      g->cfg.vectors);
		if (r < 0)
			goto err;
		g->srv.data = g;
		g->srv.on_join = on_peer_join;
		g->srv.on_gone = on_peer_gone;
		hbk_policy_init(g);
		r = kvm_listen(k, g);
		if (r < 0)
			goto err;
		/* QEMUs the last daemon served keep their connections: they never noticed. */
		if (svc->restoring)
			hbk_ivshmem_adopt(&g->srv);
		log_info("group %s (id %u): %llu MiB pool, ivshmem server %s", g->cfg.name,
			 g->cfg.id, (unsigned long long)(g->cfg.size >> 20), g->cfg.ivshmem);
	}
	*state = k;
	return 0;

err:
	kvm_stop(k);
	return r;
}

static bool domain_known(const struct kvm_backend *k, uint32_t id)
{
	return id == 0 || hbc_config_vm_by_id(k->svc->cfg, id);
}

static int kvm_can_share(void *state, uint32_t a, uint32_t b)
{
	struct kvm_backend *k = state;

	if (!domain_known(k, a) || !domain_known(k, b))
		return -ENODEV;
	for (unsigned i = 0; i < k->n_groups; i++)
		if (group_has(&k->groups[i], a) && group_has(&k->groups[i], b))
			return 0;
	return -EPERM;
}

/* The most private pool both domains are in and the session attached to. */
static struct kvm_group *choose_group(struct kvm_backend *k, const struct hbb_caller *who,
				      uint32_t peer)
{
	struct kvm_group *best = NULL;

	for (unsigned i = 0; i < k->n_groups; i++) {
		struct kvm_group *g = &k->groups[i];

		if (!group_has(g, who->domain) || !group_has(g, peer) ||
		    !(who->attached & (1ull << (g->cfg.id - 1))))
			continue;
		if (!best || g->cfg.n_members < best->cfg.n_members)
			best = g;
	}
	return best;
}

static int kvm_alloc(void *state, const struct hbb_caller *who, struct hbb_buffer *b)
{
	struct kvm_group *g = choose_group(state, who, b->peer);
	uint64_t data = hbp_refdir_span(b->size, 0);
	/* A small buffer is described in the replies themselves, for a library that reads that:
	 * no directory page to take from the pool, none for an importer to read. */
	bool inline_refs =
	    (who->features & HBP_FEATURE_INLINE_REFS) && data <= HBP_INLINE_REFS_MAX;
	uint64_t dir = inline_refs ? 0 : hbp_refdir_dir_pages(data);
	void **dir_mem = NULL;
	int r;

	if (!g)
		return -ENODEV; /* a group exists (can_share said so) but this session has no pool
				 */
	if (data + dir > g->pool.pages - 1)
		return -EFBIG;
	/* A full pool is ENOSPC whoever asks; a member over its share of it is EDQUOT. */
	if (data + dir > g->pool.pages - 1 - g->pool.used)
		return -ENOSPC;
	r = hbk_share_charge(g, b->exporter, (int64_t)(data + dir));
	if (r < 0)
		return r;
	b->refs = malloc((data + dir) * sizeof(uint32_t));
	if (dir)
		dir_mem = calloc(dir, sizeof(void *));
	if (!b->refs || (dir && !dir_mem)) {
		r = -ENOMEM;
		goto err;
	}
	r = hbk_pool_alloc(&g->pool, (uint32_t)(data + dir), b->refs);
	if (r < 0)
		goto err;
	b->group = g->cfg.id;
	b->data_pages = (uint32_t)data;
	b->dir_pages = (uint32_t)dir;
	for (uint64_t i = 0; i < dir; i++)
		dir_mem[i] = hbk_pool_page(&g->pool, b->refs[data + i]);
	r = inline_refs ? hbp_refdir_inline(b->refs, (uint32_t)data, b->size, 0, &b->desc)
			: hbp_refdir_build(b->refs, (uint32_t)data, b->refs + data, dir_mem,
					   b->size, 0, &b->desc);
	if (r < 0) {
		hbk_pool_free(&g->pool, b->refs, (uint32_t)(data + dir), true);
		goto err;
	}
	free(dir_mem);
	return 0;

err:
	hbk_share_charge(g, b->exporter, -(int64_t)(data + dir));
	free(dir_mem);
	free(b->refs);
	b->refs = NULL;
	return r;
}

static void kvm_release(void *state, struct hbb_buffer *b, bool shutdown)
{
	struct kvm_group *g = hbk_group(state, b->group);

	if (g && b->refs) {
		hbk_pool_free(&g->pool, b->refs, b->data_pages + b->dir_pages, !shutdown);
		hbk_share_charge(g, b->exporter, -(int64_t)(b->data_pages + b->dir_pages));
	}
	free(b->refs);
	b->refs = NULL;
}

static bool host_parked(struct kvm_group *g, uid_t uid)
{
	const struct hbk_ivshmem_peer *p;

	hbc_list_for_each_safe(p, &g->srv.parked, struct hbk_ivshmem_peer, link)
	{
		if (p->cred.uid == uid)
			return true;
	}
	return false;
}

/* A host session's ivshmem connection (PROTOCOL.md §3, "Attach"): bound to the host from the
 * start and claimed for the next daemon, so that a restart binds it again. */
static bool host_doorbell(struct kvm_group *g, const struct hbb_caller *who, int *fd_out)
{
	struct hbc_cred cred = {.pid = who->pid, .uid = who->uid, .gid = (gid_t)-1};
	struct hbk_ivshmem_peer *p;
	unsigned n;

	if (!(who->features & HBP_FEATURE_SLOTS) || g->srv.vectors == 0)
		return false;
	/* Live and parked ones; a parked one of another user makes room (its user's next
	 * session gets the memfd, or a new id). */
	n = hbk_ivshmem_count(&g->srv, true, 0) + g->srv.n_parked;
	if (n >= HBK_HOST_DOORBELLS && !host_parked(g, who->uid) &&
	    hbk_ivshmem_evict_parked(&g->srv))
		n--;
	if (n >= HBK_HOST_DOORBELLS && !host_parked(g, who->uid)) {
		log_info_limited(&g->srv.refused,
				 "%s: group %s has %u host doorbells already (the most): the pool "
				 "memfd instead, fences told by the daemon",
				 who->label, g->cfg.name, n);
		return false;
	}
	p = hbk_ivshmem_local(&g->srv, &cred, fd_out);
	if (!p)
		return false;
	hbk_claim_keep(g, p);
	return true;
}

static int kvm_attach(void *state, const struct hbb_caller *who, uint32_t group, uint32_t peer_id,
		      int *fd_out)
{
	struct kvm_group *g = hbk_group(state, group);
	struct hbk_ivshmem_peer *p;
	int r;

	if (!g || !group_has(g, who->domain))
		return -ENOENT;
	/* Once per group: this bounds the pool fds a session can have queued. */
	if (who->attached & (1ull << (group - 1)))
		return -EALREADY;
	if (who->domain == 0) {
		/* A host process that can use fence slots gets an ivshmem connection of its
		 * own (its doorbells); else, or past the limit, the pool memfd. */
		if (host_doorbell(g, who, fd_out))
			return 0;
		*fd_out = fcntl(g->pool.fd, F_DUPFD_CLOEXEC, 3);
		if (*fd_out < 0)
			return -errno;
	} else {
		/* A VM proves which ivshmem connection is its own by naming the id the server
		 * gave it; identity still comes from the channel the session arrived on. Ids are
		 * daemon-wide, so a guest that took another group's BAR for this one names a
		 * peer this group does not have. */
		p = hbk_ivshmem_peer(&g->srv, peer_id);
		if (!p)
			return -ENOENT;
		/* QEMU opens both its channel and its ivshmem sockets, and so does an emulated
		 * VM: a session may only claim an ivshmem connection of its own process, or any
		 * VM could take over another's by guessing small ids. */
		if (p->pid > 0 && who->pid > 0 && p->pid != who->pid)
			return -EPERM;
		if (p->bound && p->domain != who->domain)
			return -EBUSY;
		if (!p->bound) {
			r = hbk_policy_claim(g, p, who->domain);
			if (r == 0)
				r = g->svc->domain_link(g->svc->ctx, who->domain, true);
			if (r < 0)
				return r;
			hbk_ivshmem_bind(p, who->domain);
			hbk_claim_keep(g, p);
		}
	}
	return 0;
}

static void kvm_welcome_free(void *state, Welcome *w)
{
	for (size_t i = 0; i < w->n_groups; i++) {
		if (!w->groups[i])
			continue;
		free(w->groups[i]->members);
		free(w->groups[i]);
	}
	free(w->groups);
	w->groups = NULL;
	w->n_groups = 0;
}

static int kvm_welcome(void *state, uint32_t domain, Welcome *w)
{
	struct kvm_backend *k = state;

	w->groups = calloc(k->n_groups ? k->n_groups : 1, sizeof(*w->groups));
	if (!w->groups)
		return -ENOMEM;
	for (unsigned i = 0; i < k->n_groups; i++) {
		struct kvm_group *g = &k->groups[i];
		GroupInfo *gi;

		if (!group_has(g, domain))
			continue;
		gi = calloc(1, sizeof(*gi));
		if (!gi)
			goto err;
		group_info__init(gi);
		w->groups[w->n_groups++] = gi;
		gi->members = calloc(g->cfg.n_members, sizeof(uint32_t));
		if (!gi->members)
			goto err;
		gi->id = g->cfg.id;
		gi->name = g->cfg.name;
		gi->pool_size = g->pool.size;
		memcpy(gi->members, g->cfg.members, g->cfg.n_members * sizeof(uint32_t));
		gi->n_members = g->cfg.n_members;
		/* The socket this domain connects to; the host has none in a {vm} group. */
		gi->ivshmem_path = (char *)hbk_ivshmem_path(&g->srv, domain);
		if (!gi->ivshmem_path)
			gi->ivshmem_path = "";
		gi->pool_instance = g->pool.instance;
	}
	return 0;

err:
	kvm_welcome_free(k, w);
	return -ENOMEM;
}

static void kvm_stats(void *state, void (*put)(void *ctx, const char *key, uint64_t v), void *ctx)
{
	struct kvm_backend *k = state;
	uint64_t used = 0, total = 0, punched = 0;
	char key[128];

	for (unsigned i = 0; i < k->n_groups; i++) {
		used += k->groups[i].pool.used;
		total += k->groups[i].pool.pages - 1;
		punched += k->groups[i].pool.punched;
	}
	put(ctx, "pages_used", used);
	put(ctx, "pages_total", total);
	put(ctx, "pages_punched", punched);
	for (unsigned i = 0; i < k->n_groups; i++) {
		struct kvm_group *g = &k->groups[i];

		snprintf(key, sizeof(key), "pool.%s.pages_used", g->cfg.name);
		put(ctx, key, g->pool.used);
		snprintf(key, sizeof(key), "pool.%s.pages_total", g->cfg.name);
		put(ctx, key, g->pool.pages - 1);
		snprintf(key, sizeof(key), "pool.%s.ivshmem_peers", g->cfg.name);
		put(ctx, key, g->srv.n_peers);
		snprintf(key, sizeof(key), "pool.%s.fence_slots", g->cfg.name);
		put(ctx, key, (uint64_t)__builtin_popcountll(g->pool.slots_used));
		snprintf(key, sizeof(key), "pool.%s.fence_rings", g->cfg.name);
		put(ctx, key, g->pool.slot_rings);
	}
}

const struct hbb_host_ops hbk_host_ops = {
    .version = HBB_HOST_VERSION,
    .name = "kvm",
    .start = kvm_start,
    .stop = kvm_stop,
    .can_share = kvm_can_share,
    .alloc = kvm_alloc,
    .release = kvm_release,
    .attach = kvm_attach,
    .welcome = kvm_welcome,
    .welcome_free = kvm_welcome_free,
    .stats = kvm_stats,
    .save = hbk_save,
    .restore_buffer = hbk_restore_buffer,
    .restore_record = hbk_restore_record,
    .restore_done = hbk_restore_done,
    .slot_take = hbk_slot_take,
    .slot_signal = hbk_slot_signal,
    .slot_poison = hbk_slot_poison,
    .slot_put = hbk_slot_put,
};
