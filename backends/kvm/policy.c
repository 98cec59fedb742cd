/*
 * Who may join a group's pool, and how much of it each member may hold (docs/SECURITY.md).
 *
 * Every member of a group can read and write all of its pool: that is what sharing means on
 * KVM. What a member must not do is reach another group or starve its peers:
 * - a VM's own ivshmem socket lets in only that VM's QEMU (the [vm]'s user, group, pid file and
 *   label) and no more connections than the VM may have (ivshmem_connections, default 1);
 * - a group's shared socket lets in only a process that is some member VM's QEMU (when every
 *   member VM names its QEMU), holds no more unclaimed connections than the member VMs may
 *   have, and drops a connection that no session claims within HBK_CLAIM_SECONDS;
 * - each member may hold at most its share of the pool ([group] share, default an equal part).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backends/kvm/host.h"
#include "common/cred.h"

int hbk_member(const struct kvm_group *g, uint32_t domain)
{
	for (unsigned i = 0; i < g->cfg.n_members; i++)
		if (g->cfg.members[i] == domain)
			return (int)i;
	return -1;
}

static const char *domain_name(const struct kvm_group *g, uint32_t domain)
{
	const char *name = hbc_config_domain_name(g->svc->cfg, domain);

	return name ? name : "?";
}

/* A VM's own socket: its QEMU, and no more connections than it may have. */
static int admit_own(struct kvm_group *g, const struct hbk_ivshmem_listener *l,
		     const struct hbc_config_vm *vm, const struct hbc_cred *cred)
{
	char why[HBC_CONFIG_PATH_MAX + 128];
	unsigned n;

	if (hbc_vm_cred_check(vm, cred, why, sizeof(why)) < 0) {
		log_warn_limited(&g->srv.refused,
				 "vm %s: refused a connection on ivshmem %s from pid %d uid %u: %s",
				 vm->name, l->path, (int)cred->pid, (unsigned)cred->uid, why);
		return -EACCES;
	}
	n = hbk_ivshmem_count(&g->srv, true, vm->id);
	if (n >= vm->ivshmem_conns) {
		log_warn_limited(&g->srv.refused,
				 "vm %s: refused pid %d on ivshmem %s: it has %u connection(s) to "
				 "group %s already (ivshmem_connections = %u)",
				 vm->name, (int)cred->pid, l->path, n, g->cfg.name,
				 vm->ivshmem_conns);
		return -EUSERS;
	}
	return 0;
}

/* The shared socket: some member VM's QEMU, and no more unclaimed connections than the member
 * VMs may have between them (their ivshmem_connections, 1 each by default). */
static int admit_shared(struct kvm_group *g, const struct hbk_ivshmem_listener *l,
			const struct hbc_cred *cred)
{
	const struct hbc_config *cfg = g->svc->cfg;
	unsigned vms = 0, open = 0, unclaimed;
	bool matched = false;
	char why[HBC_CONFIG_PATH_MAX + 128];

	for (unsigned i = 0; i < g->cfg.n_members; i++) {
		const struct hbc_config_vm *vm = hbc_config_vm_by_id(cfg, g->cfg.members[i]);

		if (!vm)
			continue;
		vms += vm->ivshmem_conns;
		if (!hbc_vm_has_cred(vm))
			open++;
		else if (hbc_vm_cred_check(vm, cred, why, sizeof(why)) == 0)
			matched = true;
	}
	if (!open && !matched) {
		log_warn_limited(&g->srv.refused,
				 "group %s: refused a connection on ivshmem %s from pid %d uid %u: "
				 "it is no member VM's QEMU",
				 g->cfg.name, l->path, (int)cred->pid, (unsigned)cred->uid);
		return -EACCES;
	}
	unclaimed = hbk_ivshmem_count(&g->srv, false, 0);
	if (unclaimed >= vms) {
		log_warn_limited(
		    &g->srv.refused,
		    "group %s: refused pid %d on ivshmem %s: %u connections wait to be "
		    "claimed already (the member VMs' ivshmem_connections)",
		    g->cfg.name, (int)cred->pid, l->path, unclaimed);
		return -EUSERS;
	}
	return 0;
}

static int admit(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_listener *l,
		 const struct hbc_cred *cred)
{
	struct kvm_group *g = srv->data;
	const struct hbc_config_vm *vm;

	if (!l->bound)
		return admit_shared(g, l, cred);
	vm = hbc_config_vm_by_id(g->svc->cfg, l->domain);
	return vm ? admit_own(g, l, vm, cred) : -EACCES;
}

void hbk_policy_init(struct kvm_group *g)
{
	uint32_t usable = g->pool.pages - 1;
	unsigned pct = g->cfg.share_pct;

	g->srv.admit = admit;
	/* An equal part by default: a two-VM pool gives each half. */
	if (!pct)
		g->share_pages = g->cfg.n_members ? usable / g->cfg.n_members : usable;
	else
		g->share_pages = (uint32_t)((uint64_t)usable * pct / 100);
}

void hbk_share_take(struct kvm_group *g, uint32_t domain, uint32_t pages)
{
	int i = hbk_member(g, domain);

	if (i >= 0)
		g->held[i] += pages;
}

int hbk_share_charge(struct kvm_group *g, uint32_t domain, int64_t pages)
{
	int i = hbk_member(g, domain);

	if (i < 0)
		return -ENOENT;
	if (pages < 0) {
		g->held[i] -= (uint32_t)-pages;
		return 0;
	}
	if (g->held[i] + (uint64_t)pages > g->share_pages) {
		log_info_limited(
		    &g->quota_log,
		    "group %s: %s (domain %u) holds %u pages; %lld more would pass its "
		    "share of the pool (%u pages, %u%%)",
		    g->cfg.name, domain_name(g, domain), domain, g->held[i], (long long)pages,
		    g->share_pages, g->cfg.share_pct ? g->cfg.share_pct : 100 / g->cfg.n_members);
		return -EDQUOT;
	}
	g->held[i] += (uint32_t)pages;
	return 0;
}

int hbk_policy_claim(struct kvm_group *g, struct hbk_ivshmem_peer *p, uint32_t domain)
{
	const struct hbc_config_vm *vm = hbc_config_vm_by_id(g->svc->cfg, domain);
	char why[HBC_CONFIG_PATH_MAX + 128];
	unsigned n;

	if (!vm)
		return -EPERM;
	/* The process is this VM's QEMU (or emulated VM), not another member's. */
	if (hbc_vm_cred_check(vm, &p->cred, why, sizeof(why)) < 0) {
		log_warn_limited(&g->srv.refused,
				 "vm %s: cannot claim ivshmem peer %u of group %s: %s", vm->name,
				 p->id, g->cfg.name, why);
		return -EPERM;
	}
	n = hbk_ivshmem_count(&g->srv, true, domain);
	if (n >= vm->ivshmem_conns) {
		log_warn_limited(
		    &g->srv.refused,
		    "vm %s: cannot claim another ivshmem connection in group %s: it has "
		    "%u (ivshmem_connections = %u)",
		    vm->name, g->cfg.name, n, vm->ivshmem_conns);
		return -EBUSY;
	}
	return 0;
}
