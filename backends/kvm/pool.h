/*
 * A group's shared pool: a sealed power-of-two memfd with a header page, and the page
 * allocator for it. The allocator's state lives only in daemon memory; the pool itself is
 * writable by every member of the group and trusted for nothing.
 */
#ifndef HB_KVM_POOL_H
#define HB_KVM_POOL_H

#include <stdbool.h>
#include <stdint.h>

struct hbk_pool {
	int fd;
	uint8_t *map; /* the daemon's read-write mapping of the whole pool */
	uint64_t size;
	uint32_t pages;    /* page 0 is the header */
	uint32_t used;     /* allocated pages (header excluded) */
	uint64_t *bitmap;  /* 1 = in use; bit 0 (the header) always set */
	uint32_t hint;     /* where the next first-fit search starts */
	uint64_t punched;  /* pages hole-punched so far */
	uint32_t instance; /* as in the header: random, non-zero */
	/* Fence slots in page 0 (slots.c): bit i for slot i taken; the next generation. */
	uint64_t slots_used;
	uint32_t slot_gen;
	uint32_t slot_gens[64]; /* what each taken slot was given */
	uint64_t slot_rings;    /* doorbells the daemon rang for slots (statistics) */
};

/* Creates the memfd (MFD_CLOEXEC|MFD_ALLOW_SEALING), sizes and seals it (SHRINK|GROW|SEAL),
 * maps it and writes the header. size must be a power of two >= 64 KiB. */
int hbk_pool_init(struct hbk_pool *p, const char *name, uint32_t group, uint64_t size);
void hbk_pool_fini(struct hbk_pool *p);
/* Takes back a pool a previous daemon made (a restart: the fd store), if fd is still group's
 * pool of that size (sealed, its header intact); the allocator starts empty. -EINVAL if not. */
int hbk_pool_adopt(struct hbk_pool *p, int fd, uint32_t group, uint64_t size);
/* Marks refs[0..n) allocated, as a restored buffer holds them: -EBADMSG (nothing marked) if
 * one is outside the pool, the header, or allocated already. */
int hbk_pool_take(struct hbk_pool *p, const uint32_t *refs, uint32_t n);

/* Allocates n pages: one contiguous run when there is one, else scattered pages. The pages
 * are hole-punched first, so they read as zero whatever a group member wrote into free
 * memory. Returns 0, -ENOSPC, or -EFBIG (more pages than the pool has). */
int hbk_pool_alloc(struct hbk_pool *p, uint32_t n, uint32_t *refs);
/* Frees pages and (with punch) punches them: every mapping of the pool reads zeros there
 * afterwards. At shutdown nothing is punched: clients keep what they map. */
void hbk_pool_free(struct hbk_pool *p, const uint32_t *refs, uint32_t n, bool punch);
void *hbk_pool_page(struct hbk_pool *p, uint32_t ref);

/* slots.c: page 0's fence slots, all free, every one a previous daemon gave poisoned and
 * without its generation (a library that has not noticed the restart trusts none of them). */
void hbk_slots_reset(struct hbk_pool *p);

#endif
