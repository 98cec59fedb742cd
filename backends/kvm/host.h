/*
 * The KVM backend, host side: private to backends/kvm/host.c (the ops) and policy.c (who may
 * join a group's pool, and how much of it each member may hold).
 */
#ifndef HB_BACKENDS_KVM_HOST_H
#define HB_BACKENDS_KVM_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/kvm/ivshmem.h"
#include "backends/kvm/pool.h"
#include "common/log.h"

/* How long a connection to a group's shared ivshmem socket may stay unclaimed by a session. */
#define HBK_CLAIM_SECONDS HBK_IVSHMEM_CLAIM_S
/* Host sessions with doorbells (an ivshmem connection of their own) per group; later ones get
 * the pool memfd, and their fences are told by the daemon. */
#define HBK_HOST_DOORBELLS 16u

struct kvm_group {
	const struct hbb_host_services *svc;
	struct hbc_config_group cfg;
	struct hbk_pool pool;
	struct hbk_ivshmem_server srv;
	/* Pages each member holds (cfg.members order) and the most one may hold. */
	uint32_t held[HBC_CONFIG_MAX_MEMBERS];
	uint32_t share_pages;
	struct hbc_ratelimit quota_log;
};

struct kvm_backend {
	const struct hbb_host_services *svc;
	struct kvm_group *groups;
	unsigned n_groups;
	struct hbk_ivshmem_ids ids; /* peer ids, unique across the groups */
};

/* host.c */
struct kvm_group *hbk_group(struct kvm_backend *k, uint32_t id);

/* restore.c: what a restart keeps of the backend (docs/RESTART.md) */
/* The pool the last daemon kept for g, if it is still g's; else a new one. Kept either way. */
int hbk_pool_open(struct kvm_group *g);
void hbk_pool_close(struct kvm_group *g);
/* A session claimed p (Attach on a shared socket): the restart state remembers for whom. */
void hbk_claim_keep(struct kvm_group *g, struct hbk_ivshmem_peer *p);
/* p goes: so does its claim. */
void hbk_claim_forget(struct kvm_group *g, struct hbk_ivshmem_peer *p);
void hbk_save(void *state, void (*put)(void *ctx, uint64_t key, const void *data, size_t len),
	      void *ctx);
int hbk_restore_buffer(void *state, struct hbb_buffer *b);
int hbk_restore_record(void *state, uint64_t key, const void *data, size_t len);
void hbk_restore_done(void *state, bool ok);

/* slots.c: the host ops of fence slots (struct hbb_host_ops, version 3) */
int hbk_slot_take(void *state, uint32_t group, uint64_t value, uint32_t *index, uint32_t *gen);
void hbk_slot_signal(void *state, uint32_t group, uint32_t index, uint32_t gen, uint64_t value);
void hbk_slot_poison(void *state, uint32_t group, uint32_t index, uint32_t gen);
void hbk_slot_put(void *state, uint32_t group, uint32_t index, uint32_t gen);
/* Rewrites every taken slot's direct bits: g's peers changed. */
void hbk_slots_direct(struct kvm_group *g);

/* policy.c */
/* Sets up g's admission (the ivshmem server's admit callback) and its members' shares. */
void hbk_policy_init(struct kvm_group *g);
/* The member index of domain in g, or -1. */
int hbk_member(const struct kvm_group *g, uint32_t domain);
/* Charges (pages > 0) or gives back (< 0) pages to domain's share of g's pool. Charging over
 * the share is -EDQUOT, logged with the group, the domain and the limit. */
int hbk_share_charge(struct kvm_group *g, uint32_t domain, int64_t pages);
/* A restored buffer's pages count against its exporter's share, whatever the share is now. */
void hbk_share_take(struct kvm_group *g, uint32_t domain, uint32_t pages);
/* A session of domain claims ivshmem peer p of g (Attach on a shared socket): -EBUSY over
 * the VM's ivshmem_connections. */
int hbk_policy_claim(struct kvm_group *g, struct hbk_ivshmem_peer *p, uint32_t domain);

#endif
