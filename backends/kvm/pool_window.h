/*
 * The client side of a KVM group pool: one window on the pool's memory, whatever the fd came
 * from (the pool memfd passed to a host session, the ivshmem socket's fd for an emulated VM,
 * a KVM guest's sysfs resource2 or resource2_wc file of its ivshmem BAR, or hyperbuf.ko's
 * /dev/hyperbuf/pool-<PCI address> for that BAR).
 *
 * The window keeps a read-only mapping of the whole pool that is used for two things only:
 * reading the header in page 0 and walking reference directories. Buffer data is never
 * reached through it; each buffer gets its own contiguous mapping of its pages, read-only or
 * read-write, so that protection is enforced by the MMU and not by good manners.
 *
 * Everything in the pool is writable by every member of the group: the header is copied out
 * once and checked, directory refs are bounds-checked by the walker.
 */
#ifndef HB_KVM_POOL_WINDOW_H
#define HB_KVM_POOL_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/refdir.h"

struct hbk_pool_window {
	int fd;              /* owned; -1 when closed */
	uint32_t group;      /* group id, as in Welcome.groups */
	uint64_t size;       /* pool bytes, a power of two */
	uint64_t pages;      /* size / HBP_PAGE_SIZE; every valid ref is below this */
	const uint8_t *base; /* the whole pool, PROT_READ | MAP_SHARED */
};

/* hbk_pool_window_open flags */
#define HBK_POOL_WINDOW_SEALED 0x1u /* fd is a daemon memfd: F_SEAL_SHRINK must be set */
#define HBK_POOL_WINDOW_DEVICE 0x2u /* fd is hyperbuf.ko's pool node: the caller checked size */

/* An empty window (fd -1), safe to close. */
void hbk_pool_window_init(struct hbk_pool_window *w);

/*
 * Opens a window on fd, which it takes ownership of (closed on failure too). Checks that
 * fstat's size equals size and is a power of two, the seals when asked, and the header in
 * page 0 (magic, layout, group, size, page size, and instance unless it is 0). Returns 0,
 * -EPROTO when the pool is not the one announced, or another negative errno.
 */
int hbk_pool_window_open(struct hbk_pool_window *w, int fd, uint32_t group, uint64_t size,
			 uint32_t instance, unsigned flags);
void hbk_pool_window_close(struct hbk_pool_window *w);

/* Walks d through the window into refs[d->pages]. Returns 0 or the walker's negative errno. */
int hbk_pool_window_walk(const struct hbk_pool_window *w, const struct hbp_refdir *d,
			 uint32_t *refs);

/*
 * Maps the n pages refs[] into one contiguous range, PROT_READ or PROT_READ | PROT_WRITE,
 * MAP_SHARED. Every ref must be a valid page (1 <= ref < pages). Returns 0 with *out, or a
 * negative errno. Undo with hbk_pool_window_unmap(*out, n * HBP_PAGE_SIZE).
 */
int hbk_pool_window_map(const struct hbk_pool_window *w, const uint32_t *refs, uint32_t n,
			bool writable, void **out);
void hbk_pool_window_unmap(void *addr, size_t len);

#endif
