/*
 * Fence slots (docs/PROTOCOL.md §3 "Fence slots"): 63 slots of 64 bytes in page 0 of each
 * group pool, after the header. The daemon gives one to a timeline that a member of the group
 * watches, writes the values it learns and rings the members that said they sleep on it; the
 * timeline's owner writes and rings too, before its signal reaches the daemon. Every member
 * can write the page, so the daemon only ever writes here and never decides anything by what
 * it reads: a bounded compare-and-swap for the value, an exchange for the waiters.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "backends/kvm/host.h"
#include "protocol/limits.h"

/* Tries at raising a value another writer keeps changing: then it is their group's fences
 * that go wrong, and the daemon moves on. */
#define SLOT_CAS_TRIES 8

static struct hbp_fence_slot *slot_at(struct hbk_pool *p, uint32_t index)
{
	return (struct hbp_fence_slot *)(p->map + (size_t)index * sizeof(struct hbp_fence_slot));
}

void hbk_slots_reset(struct hbk_pool *p)
{
	/* A random start, so that a generation a previous daemon gave is unlikely to come
	 * back for another timeline while some library still holds it. */
	if (getrandom(&p->slot_gen, sizeof(p->slot_gen), 0) != sizeof(p->slot_gen))
		p->slot_gen = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	p->slots_used = 0;
	for (uint32_t i = 1; i <= HBP_SLOTS; i++) {
		struct hbp_fence_slot *s = slot_at(p, i);

		__atomic_store_n(&s->gen, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&s->flags, HBP_SLOT_POISON, __ATOMIC_SEQ_CST);
	}
}

/* The slot, if it is the one handed out with gen. */
static struct hbp_fence_slot *slot_find(void *state, uint32_t group, uint32_t index, uint32_t gen,
					struct kvm_group **gp)
{
	struct kvm_group *g = hbk_group(state, group);

	/* By the backend's own record: the page may say anything. */
	if (!g || !g->pool.map || index < 1 || index > HBP_SLOTS ||
	    !(g->pool.slots_used & (1ull << index)) || g->pool.slot_gens[index] != gen)
		return NULL;
	*gp = g;
	return slot_at(&g->pool, index);
}

/* Rings, on vector 0, every peer whose bit was set in waiters. */
static void ring_waiters(struct kvm_group *g, struct hbp_fence_slot *s)
{
	uint64_t mask = __atomic_exchange_n(&s->waiters, 0, __ATOMIC_SEQ_CST);
	struct hbk_ivshmem_peer *p;

	if (!mask)
		return;
	hbc_list_for_each_safe(p, &g->srv.peers, struct hbk_ivshmem_peer, link)
	{
		if ((mask & (1ull << (p->id % 64))) && p->irq[0] >= 0) {
			eventfd_write(p->irq[0], 1);
			g->pool.slot_rings++;
		}
	}
}

/* Bit b when the one peer of g whose id is b modulo 64 has id b and a vector 0: a guest
 * that rings peer b reaches the waiter of bit b and nobody else. */
static uint64_t direct_bits(struct kvm_group *g)
{
	uint64_t seen = 0, shared = 0, exact = 0;
	struct hbk_ivshmem_peer *p;

	hbc_list_for_each_safe(p, &g->srv.peers, struct hbk_ivshmem_peer, link)
	{
		uint64_t bit = 1ull << (p->id % 64);

		shared |= seen & bit;
		seen |= bit;
		/* A guest cannot ring an id over 63: those bits stay for the daemon. */
		if (p->id < 64 && p->irq[0] >= 0)
			exact |= bit;
	}
	return exact & ~shared;
}

void hbk_slots_direct(struct kvm_group *g)
{
	uint64_t direct;

	if (!g->pool.map || !g->pool.slots_used)
		return;
	direct = direct_bits(g);
	for (uint32_t i = 1; i <= HBP_SLOTS; i++)
		if (g->pool.slots_used & (1ull << i))
			__atomic_store_n(&slot_at(&g->pool, i)->direct, direct, __ATOMIC_SEQ_CST);
}

int hbk_slot_take(void *state, uint32_t group, uint64_t value, uint32_t *index, uint32_t *gen)
{
	struct kvm_group *g = hbk_group(state, group);
	struct hbp_fence_slot *s;
	uint32_t i;

	if (!g || !g->pool.map)
		return -ENOENT;
	for (i = 1; i <= HBP_SLOTS && (g->pool.slots_used & (1ull << i)); i++)
		;
	if (i > HBP_SLOTS)
		return -ENOSPC;
	if (++g->pool.slot_gen == 0)
		g->pool.slot_gen = 1;
	s = slot_at(&g->pool, i);
	/* Generation first: a reader checks it after the value, so no value of this
	 * timeline passes for the last one's. */
	__atomic_store_n(&s->gen, g->pool.slot_gen, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->value, value, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->waiters, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->direct, direct_bits(g), __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->flags, 0, __ATOMIC_SEQ_CST);
	g->pool.slots_used |= 1ull << i;
	g->pool.slot_gens[i] = g->pool.slot_gen;
	*index = i;
	*gen = g->pool.slot_gen;
	return 0;
}

void hbk_slot_signal(void *state, uint32_t group, uint32_t index, uint32_t gen, uint64_t value)
{
	struct kvm_group *g;
	struct hbp_fence_slot *s = slot_find(state, group, index, gen, &g);
	uint64_t old;

	if (!s)
		return;
	old = __atomic_load_n(&s->value, __ATOMIC_SEQ_CST);
	for (int i = 0; i < SLOT_CAS_TRIES && old < value; i++)
		if (__atomic_compare_exchange_n(&s->value, &old, value, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			break;
	ring_waiters(g, s);
}

void hbk_slot_poison(void *state, uint32_t group, uint32_t index, uint32_t gen)
{
	struct kvm_group *g;
	struct hbp_fence_slot *s = slot_find(state, group, index, gen, &g);

	if (!s)
		return;
	__atomic_or_fetch(&s->flags, HBP_SLOT_POISON, __ATOMIC_SEQ_CST);
	ring_waiters(g, s);
}

void hbk_slot_put(void *state, uint32_t group, uint32_t index, uint32_t gen)
{
	struct kvm_group *g;
	struct hbp_fence_slot *s = slot_find(state, group, index, gen, &g);

	if (!s)
		return;
	/* Poisoned (and its waiters rung) is enough for them to stop trusting it. */
	hbk_slot_poison(state, group, index, gen);
	__atomic_store_n(&s->gen, 0, __ATOMIC_SEQ_CST);
	g->pool.slots_used &= ~(1ull << index);
	g->pool.slot_gens[index] = 0;
}
