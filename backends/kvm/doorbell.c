/*
 * Doorbells and fence slots (docs/PROTOCOL.md §3 "Fence slots").
 *
 * An emulated VM: the ivshmem server sends each peer its own interrupt eventfds and every
 * other peer's, one per vector, vector 0 first (QEMU docs/specs/ivshmem-spec.rst): we keep
 * vector 0 of each. Ours is polled next to the channel; a peer's is written to wake it when a
 * fence slot it waits on moves. The server is the daemon (checked when connecting), so these
 * fds are trusted as doorbells; what a peer writes into a slot is not trusted for anything
 * beyond its group's fences.
 *
 * A KVM guest with hyperbuf.ko (docs/DMABUF.md, "Doorbells"): vector 0 of the pool's device
 * into an eventfd of ours (POOL_IRQFD, one file per guest at a time), and the Doorbell register
 * to ring a peer (POOL_RING). A guest knows no peer ids, so it rings only the waiters' bits the
 * daemon marked `direct` in the slot (the one peer with that id), by id; the daemon rings the
 * rest when the owner's signal reaches it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/kvm/guest.h"
#include "kmod/hyperbuf_kmod.h"
#include "protocol/limits.h"

static struct hbk_bell *bell_find(struct hbk_group *g, uint32_t id)
{
	for (size_t i = 0; i < g->n_bells; i++)
		if (g->bells[i].id == id)
			return &g->bells[i];
	return NULL;
}

static int bell_add(struct hbk_group *g, uint32_t id, int fd)
{
	if (g->n_bells == g->cap_bells) {
		size_t cap = g->cap_bells ? 2 * g->cap_bells : 8;
		struct hbk_bell *v = realloc(g->bells, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		g->bells = v;
		g->cap_bells = cap;
	}
	g->bells[g->n_bells++] = (struct hbk_bell){.id = id, .fd = fd};
	return 0;
}

int hbk_bell_message(struct hbk_group *g, uint32_t id, int fd)
{
	struct hbk_bell *b = bell_find(g, id);

	if (fd < 0) {
		/* The peer went: a later peer with its id brings new eventfds. */
		if (b) {
			close(b->fd);
			*b = g->bells[--g->n_bells];
		}
		return 0;
	}
	/* Ours (vector 0 only), or a peer's first (vector 0); not the daemon's own. */
	if (id == g->iv_peer) {
		if (g->own_fds++ == 0 && g->bell < 0) {
			g->bell = fd;
			return 0;
		}
	} else if (id != 0 && !b) {
		if (bell_add(g, id, fd) == 0)
			return 0;
		close(fd);
		return -ENOMEM;
	}
	close(fd);
	return 0;
}

int hbk_bell_drain(struct hbk_group *g)
{
	eventfd_t v;

	/* Polled only once a slot is in use; nonblocking, EAGAIN when it did not ring. */
	if (g->bell < 0 || !g->slots)
		return 0;
	eventfd_read(g->bell, &v);
	return 1;
}

void hbk_bells_close(struct hbk_group *g)
{
	for (size_t i = 0; i < g->n_bells; i++)
		close(g->bells[i].fd);
	free(g->bells);
	g->bells = NULL;
	g->n_bells = g->cap_bells = 0;
	if (g->bell >= 0)
		close(g->bell);
	g->bell = -1;
	if (g->slots)
		munmap(g->slots, HBP_PAGE_SIZE);
	g->slots = NULL;
}

static struct hbk_group *group_of(struct hbk_guest *k, uint32_t group)
{
	for (size_t i = 0; i < k->n_groups; i++)
		if (k->groups[i].id == group)
			return &k->groups[i];
	return NULL;
}

/* A guest's doorbell, the first time a slot asks for it: vector 0 of the pool's device into
 * an eventfd. Another process of this guest may hold the vector (EBUSY): then no slots here,
 * and the watch tells, as without the module's doorbells. */
static void guest_bell_open(struct hbk_group *g)
{
	struct hyperbuf_pool_irqfd a = {.vector = 0};

	if (!g->kmod || g->bell >= 0 || g->bell_failed || g->win.fd < 0)
		return;
	g->bell_failed = true;
	a.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a.fd < 0)
		return;
	if (ioctl(g->win.fd, HYPERBUF_IOC_POOL_IRQFD, &a) < 0) {
		close(a.fd);
		return;
	}
	g->bell = a.fd;
	g->bell_failed = false;
}

struct hbp_fence_slot *hbk_slot(void *state, uint32_t group, uint32_t index)
{
	struct hbk_group *g = group_of(state, group);

	/* A waiter needs a doorbell of its own (hbk_slot_bit); an owner only rings others: a
	 * guest through its device, so its page is enough, and a process with an ivshmem
	 * connection through the peers' eventfds, which come with its own. */
	if (!g || g->win.fd < 0 || index < 1 || index > HBP_SLOTS || (!g->kmod && g->bell < 0))
		return NULL;
	if (!g->slots) {
		void *p =
		    mmap(NULL, HBP_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->win.fd, 0);

		if (p == MAP_FAILED)
			return NULL;
		g->slots = p;
	}
	return &g->slots[index];
}

int hbk_slot_bit(void *state, uint32_t group)
{
	struct hbk_group *g = group_of(state, group);

	if (g)
		guest_bell_open(g);
	return g && g->bell >= 0 ? (int)(g->iv_peer % 64) : -1;
}

/* The direct bits of the slot whose waiters these are (never bit 0: the daemon's id). */
static uint64_t slot_direct(uint64_t *waiters)
{
	struct hbp_fence_slot *s =
	    (struct hbp_fence_slot *)((char *)waiters - offsetof(struct hbp_fence_slot, waiters));

	return __atomic_load_n(&s->direct, __ATOMIC_SEQ_CST) & ~1ull;
}

/* A guest rings by id the direct bits it took; a bit it could not ring goes back for the
 * daemon. */
static unsigned guest_ring(struct hbk_group *g, uint64_t *waiters, uint64_t *left)
{
	uint64_t direct = slot_direct(waiters);
	uint64_t old = __atomic_fetch_and(waiters, ~direct, __ATOMIC_SEQ_CST);
	uint64_t mask = old & direct;
	uint64_t missed = 0;
	unsigned rung = 0;

	while (mask) {
		unsigned b = (unsigned)__builtin_ctzll(mask);
		struct hyperbuf_pool_ring a = {.peer = b, .vector = 0};

		mask &= mask - 1;
		if (ioctl(g->win.fd, HYPERBUF_IOC_POOL_RING, &a) == 0)
			rung++;
		else
			missed |= 1ull << b;
	}
	if (missed)
		__atomic_fetch_or(waiters, missed, __ATOMIC_SEQ_CST);
	*left = (old & ~direct) | missed;
	return rung;
}

unsigned hbk_ring(void *state, uint32_t group, uint64_t *waiters, uint64_t *left)
{
	struct hbk_group *g = group_of(state, group);
	uint64_t known = 0, old, mask;
	unsigned rung = 0;

	*left = 0;
	if (!g) {
		*left = __atomic_load_n(waiters, __ATOMIC_SEQ_CST);
		return 0;
	}
	if (g->kmod)
		return guest_ring(g, waiters, left);
	/* Only bits that name one peer (direct): a peer that joined since our last read of the
	 * ivshmem connection may share a bit with one we know, and would not be rung. */
	for (size_t i = 0; i < g->n_bells; i++)
		known |= 1ull << (g->bells[i].id % 64);
	known &= slot_direct(waiters);
	old = __atomic_fetch_and(waiters, ~known, __ATOMIC_SEQ_CST);
	mask = old & known;
	*left = old & ~known;
	for (size_t i = 0; i < g->n_bells && mask; i++) {
		if (mask & (1ull << (g->bells[i].id % 64))) {
			eventfd_write(g->bells[i].fd, 1);
			rung++;
		}
	}
	return rung;
}
