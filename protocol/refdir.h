/*
 * The multi-level reference directory: one root reference describes any number of pages.
 *
 * A directory page holds HBP_REFS_PER_PAGE (1024) little-endian 32-bit refs. Depth 1: the root
 * lists the data pages (up to 1024 pages = 4 MiB). Depth 2: the root lists level-1 pages that
 * list data pages (up to 2^20 pages = 4 GiB). Depth 3: one more level (up to 2^30 pages).
 * The depth is the smallest that fits. Each directory page is filled from the front; the
 * last page of a level holds ((n - 1) % 1024) + 1 entries and the rest of it is zero.
 *
 * Refs are opaque 32-bit numbers: KVM pool page numbers, Xen grant refs.
 * Directory pages usually live in memory a hostile peer can write, so the walker reads each
 * ref exactly once into private memory and checks it with a validator the caller supplies.
 */
#ifndef HB_PROTOCOL_REFDIR_H
#define HB_PROTOCOL_REFDIR_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/limits.h"

struct hbp_refdir {
	uint32_t root;         /* ref of the root directory page */
	uint32_t depth;        /* 1..3 */
	uint32_t pages;        /* data pages, >= 1 */
	uint32_t first_offset; /* data starts this many bytes into the first page (< page size) */
	uint64_t size;         /* exact byte size; must fit in pages * page - first_offset */
	/* Depth 0 (root 0): no directory, these are the `pages` data refs, at most
	 * HBP_INLINE_REFS_MAX. Not owned: the buffer's refs, or a received message's. */
	const uint32_t *inline_refs;
};

/* Whether d describes pages yet: a directory, or refs inline. A zeroed one does not (a Xen
 * buffer before its Grant). */
static inline int hbp_refdir_described(const struct hbp_refdir *d)
{
	return d->depth != 0 || d->inline_refs != NULL;
}

/* Data pages a buffer of size bytes spans when it starts first_offset bytes into its first
 * page: the one formula for a descriptor's page count. Exact for every size a peer can write:
 * first_offset + size would wrap past 2^64 and make a huge size span one page. */
static inline uint64_t hbp_refdir_span(uint64_t size, uint32_t first_offset)
{
	return size / HBP_PAGE_SIZE +
	       (size % HBP_PAGE_SIZE + first_offset + HBP_PAGE_SIZE - 1) / HBP_PAGE_SIZE;
}

/* Smallest depth for n data pages (1..3), or -EFBIG if n is 0 or over 2^30. */
int hbp_refdir_depth(uint64_t pages);

/* Number of directory pages a directory for n data pages needs at its depth (0 if invalid). */
uint64_t hbp_refdir_dir_pages(uint64_t pages);

/*
 * Build. The caller has allocated hbp_refdir_dir_pages(n) directory pages; dir_refs[] are their
 * refs and dir_mem[] pointers to their (writable) memory, in any order the builder chooses to
 * use them: the root is dir_refs[0], then level after level. Fills the pages and *out (size and
 * first_offset are copied from the arguments). Returns 0 or -EINVAL (bad counts, size not fitting).
 */
int hbp_refdir_build(const uint32_t *data_refs, uint32_t n, const uint32_t *dir_refs,
		     void *const *dir_mem, uint64_t size, uint32_t first_offset,
		     struct hbp_refdir *out);

/* The inline form (depth 0) for n <= HBP_INLINE_REFS_MAX data refs: *out names data_refs,
 * which must outlive it. Returns 0 or -EINVAL (bad count, size not fitting). */
int hbp_refdir_inline(const uint32_t *data_refs, uint32_t n, uint64_t size, uint32_t first_offset,
		      struct hbp_refdir *out);

/* Walker callbacks. */
struct hbp_refdir_ops {
	/* Returns the memory of directory page ref, and its readable length in *len (a page
	 * shorter than HBP_PAGE_SIZE is rejected). NULL on failure. */
	const void *(*map)(void *ctx, uint32_t ref, size_t *len);
	/* Undoes map (may be NULL). */
	void (*unmap)(void *ctx, uint32_t ref, const void *mem);
	/* 0 if ref may be used as a directory page (is_dir=1) or data page (is_dir=0), else
	 * a negative errno that the walk returns. */
	int (*validate)(void *ctx, uint32_t ref, int is_dir);
	void *ctx;
	/* Optional, for mappings that cost a hypercall each (Xen grants): maps the n directory
	 * pages refs[] in one batch, contiguously (n * HBP_PAGE_SIZE bytes), NULL on failure (errno
	 * as for map). When set, the walker maps each level with one call, root first, and
	 * unmap_many (required then) undoes it; map and unmap are not used. */
	const void *(*map_many)(void *ctx, const uint32_t *refs, uint32_t n);
	void (*unmap_many)(void *ctx, const void *mem, uint32_t n);
};

/*
 * Walks d and writes its d->pages data refs to out[]. Checks the descriptor (depth matches the
 * page count, size fits, offset below a page), every ref through ops->validate, rejects a
 * directory page that appears twice (a cycle, -ELOOP), a data ref equal to a directory ref
 * (-ELOOP), short pages and non-zero slack in a partial directory page (-EBADMSG).
 * With ops->map_many, a level's pages are mapped together only once every ref of the level
 * has passed validate and the cycle check. Depth 0 maps nothing: each inline ref passes
 * validate as data. Returns 0 or a negative errno.
 */
int hbp_refdir_walk(const struct hbp_refdir *d, const struct hbp_refdir_ops *ops, uint32_t *out);

#endif
