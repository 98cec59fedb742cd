/*
 * The multi-level reference directory (see refdir.h and docs/PROTOCOL.md section 4).
 *
 * Layout shared by the builder and the walker: level L (1..depth) holds cnt[L] pages, where
 * cnt[0] is the number of data pages and cnt[L] = ceil(cnt[L - 1] / 1024); the root is the only
 * page of level `depth`. The builder takes its directory pages in the order root, then level
 * depth-1, ..., then level 1, and fills each level from the front.
 *
 * The walker treats every directory page as memory a hostile peer can rewrite at any moment:
 * each entry is loaded exactly once (a volatile access, so the compiler cannot load it again)
 * into private memory, and only that copy is checked and used.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/limits.h"
#include "protocol/refdir.h"

#define LEVEL1_MAX ((uint64_t)HBP_REFS_PER_PAGE)
#define LEVEL2_MAX (LEVEL1_MAX * HBP_REFS_PER_PAGE)
#define LEVEL3_MAX (LEVEL2_MAX * HBP_REFS_PER_PAGE)

int hbp_refdir_depth(uint64_t pages)
{
	if (pages == 0)
		return -EFBIG;
	if (pages <= LEVEL1_MAX)
		return 1;
	if (pages <= LEVEL2_MAX)
		return 2;
	if (pages <= LEVEL3_MAX)
		return 3;
	return -EFBIG;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* cnt[0] = data pages, cnt[L] = directory pages at level L; returns the depth or -EFBIG. */
static int level_counts(uint64_t pages, uint64_t cnt[HBP_REFDIR_MAX_DEPTH + 1])
{
	int depth = hbp_refdir_depth(pages);
	int l;

	if (depth < 0)
		return depth;
	cnt[0] = pages;
	for (l = 1; l <= (int)HBP_REFDIR_MAX_DEPTH; l++)
		cnt[l] = l <= depth ? div_up(cnt[l - 1], HBP_REFS_PER_PAGE) : 0;
	return depth;
}

uint64_t hbp_refdir_dir_pages(uint64_t pages)
{
	uint64_t cnt[HBP_REFDIR_MAX_DEPTH + 1];
	int depth = level_counts(pages, cnt);
	uint64_t total = 0;
	int l;

	if (depth < 0)
		return 0;
	for (l = 1; l <= depth; l++)
		total += cnt[l];
	return total;
}

/* The data must start in the first page and end in the last one: no page is wasted, no byte
 * lies outside. */
static bool extent_ok(uint64_t pages, uint32_t first_offset, uint64_t size)
{
	uint64_t room;

	if (first_offset >= HBP_PAGE_SIZE)
		return false;
	room = pages * HBP_PAGE_SIZE - first_offset;
	if (size > room)
		return false;
	return size + first_offset > (pages - 1) * HBP_PAGE_SIZE;
}

static void put_ref(void *page, uint64_t slot, uint32_t ref)
{
	uint32_t le = htole32(ref);

	memcpy((uint8_t *)page + slot * 4, &le, sizeof(le));
}

int hbp_refdir_build(const uint32_t *data_refs, uint32_t n, const uint32_t *dir_refs,
		     void *const *dir_mem, uint64_t size, uint32_t first_offset,
		     struct hbp_refdir *out)
{
	uint64_t cnt[HBP_REFDIR_MAX_DEPTH + 1], base[HBP_REFDIR_MAX_DEPTH + 2];
	uint64_t ndir, i;
	int depth, l;

	if (!data_refs || !dir_refs || !dir_mem || !out)
		return -EINVAL;
	depth = level_counts(n, cnt);
	if (depth < 0)
		return -EINVAL;
	if (!extent_ok(n, first_offset, size))
		return -EINVAL;

	/* base[L]: index in dir_refs[] of the first page of level L. */
	base[depth] = 0;
	for (l = depth - 1; l >= 1; l--)
		base[l] = base[l + 1] + cnt[l + 1];
	ndir = base[1] + cnt[1];

	for (i = 0; i < ndir; i++) {
		if (!dir_mem[i])
			return -EINVAL;
	}
	/* Unused slots must read as zero: the walker rejects anything else as corrupt. */
	for (i = 0; i < ndir; i++)
		memset(dir_mem[i], 0, HBP_PAGE_SIZE);

	for (l = depth; l >= 1; l--) {
		for (i = 0; i < cnt[l - 1]; i++) {
			uint32_t ref = l == 1 ? data_refs[i] : dir_refs[base[l - 1] + i];

			put_ref(dir_mem[base[l] + i / HBP_REFS_PER_PAGE], i % HBP_REFS_PER_PAGE,
				ref);
		}
	}

	out->root = dir_refs[0];
	out->depth = (uint32_t)depth;
	out->pages = n;
	out->first_offset = first_offset;
	out->size = size;
	out->inline_refs = NULL;
	return 0;
}

int hbp_refdir_inline(const uint32_t *data_refs, uint32_t n, uint64_t size, uint32_t first_offset,
		      struct hbp_refdir *out)
{
	if (!data_refs || !out || n == 0 || n > HBP_INLINE_REFS_MAX ||
	    !extent_ok(n, first_offset, size))
		return -EINVAL;
	*out = (struct hbp_refdir){.pages = n,
				   .first_offset = first_offset,
				   .size = size,
				   .inline_refs = data_refs};
	return 0;
}

/* The map callbacks have no error channel but errno. Out of memory stays itself; anything
 * else means a ref does not name a page we can read: corrupt. */
static int map_error(void)
{
	return errno == ENOMEM ? -ENOMEM : -EBADMSG;
}

/* Loads the 1024 entries of a mapped directory page once each, copies the first `used` to dst
 * and checks that the rest are zero. */
static int parse_dir_page(const void *mem, uint32_t used, uint32_t *dst)
{
	uint32_t i, v;

	for (i = 0; i < HBP_REFS_PER_PAGE; i++) {
		if (((uintptr_t)mem & 3u) == 0) {
			v = ((const volatile uint32_t *)mem)[i];
		} else {
			const volatile uint8_t *b = (const volatile uint8_t *)mem + i * 4u;
			uint8_t raw[4] = {b[0], b[1], b[2], b[3]};

			memcpy(&v, raw, sizeof(v));
		}
		v = le32toh(v);
		if (i < used)
			dst[i] = v;
		else if (v != 0)
			return -EBADMSG;
	}
	return 0;
}

/* Maps directory page ref, parses it, unmaps it. */
static int read_dir_page(const struct hbp_refdir_ops *ops, uint32_t ref, uint32_t used,
			 uint32_t *dst)
{
	const void *mem;
	size_t len = 0;
	int r;

	errno = 0;
	mem = ops->map(ops->ctx, ref, &len);
	if (!mem)
		return map_error();
	r = len < HBP_PAGE_SIZE ? -EBADMSG : parse_dir_page(mem, used, dst);
	if (ops->unmap)
		ops->unmap(ops->ctx, ref, mem);
	return r;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Sorts the first n directory refs into sorted[]; -ELOOP if one appears twice. */
static int sort_unique(const uint32_t *refs, uint64_t n, uint32_t *sorted)
{
	uint64_t i;

	memcpy(sorted, refs, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u32);
	for (i = 1; i < n; i++) {
		if (sorted[i] == sorted[i - 1])
			return -ELOOP;
	}
	return 0;
}

/* Depth 0: the refs came with the descriptor, in private memory; each is checked as data. */
static int walk_inline(const struct hbp_refdir *d, const struct hbp_refdir_ops *ops,
		       uint32_t *out)
{
	int r;

	if (!d->inline_refs || d->root != 0 || d->pages == 0 || d->pages > HBP_INLINE_REFS_MAX ||
	    !extent_ok(d->pages, d->first_offset, d->size))
		return -EINVAL;
	for (uint32_t i = 0; i < d->pages; i++) {
		r = ops->validate(ops->ctx, d->inline_refs[i], 0);
		if (r < 0)
			return r;
		out[i] = d->inline_refs[i];
	}
	return 0;
}

int hbp_refdir_walk(const struct hbp_refdir *d, const struct hbp_refdir_ops *ops, uint32_t *out)
{
	uint64_t cnt[HBP_REFDIR_MAX_DEPTH + 1];
	uint64_t ndir, pos, p, i;
	uint32_t *order = NULL, *sorted = NULL;
	const void *level;
	int depth, l, r;

	if (!d || !ops || !ops->validate || !out)
		return -EINVAL;
	if (ops->map_many ? !ops->unmap_many : !ops->map)
		return -EINVAL;
	if (d->depth == 0)
		return walk_inline(d, ops, out);
	depth = level_counts(d->pages, cnt);
	if (depth < 0 || d->depth != (uint32_t)depth)
		return -EINVAL;
	if (!extent_ok(d->pages, d->first_offset, d->size))
		return -EINVAL;

	/*
	 * order[] holds the directory refs in build order (root, then level by level), as they
	 * are read; sorted[] is the set of those known so far, for the cycle checks. At most
	 * 1 + 1024 + 2^20 entries, for 2^30 data pages.
	 */
	ndir = hbp_refdir_dir_pages(d->pages);
	order = malloc(ndir * sizeof(*order));
	sorted = malloc(ndir * sizeof(*sorted));
	if (!order || !sorted) {
		r = -ENOMEM;
		goto err_free;
	}

	r = ops->validate(ops->ctx, d->root, 1);
	if (r < 0)
		goto err_free;
	order[0] = d->root;

	/* pos: index in order[] of the first page of level l. */
	for (pos = 0, l = depth; l >= 1; pos += cnt[l], l--) {
		uint64_t next = pos + cnt[l]; /* where level l - 1 refs go in order[] */

		/* Every directory ref read so far must be new before any of this level's pages is
		 * mapped: a level page pointing back at the root or at itself stops here. */
		r = sort_unique(order, next, sorted);
		if (r < 0)
			goto err_free;

		/* Batched: the whole level in one mapping; every ref in it passed the checks. */
		level = NULL;
		if (ops->map_many) {
			errno = 0;
			level = ops->map_many(ops->ctx, order + pos, (uint32_t)cnt[l]);
			if (!level) {
				r = map_error();
				goto err_free;
			}
		}
		for (p = 0; p < cnt[l]; p++) {
			uint64_t first = p * HBP_REFS_PER_PAGE;
			uint64_t left = cnt[l - 1] - first;
			uint32_t used =
			    left < HBP_REFS_PER_PAGE ? (uint32_t)left : HBP_REFS_PER_PAGE;
			uint32_t *dst = l == 1 ? out + first : order + next + first;

			if (level)
				r = parse_dir_page((const uint8_t *)level + p * HBP_PAGE_SIZE, used,
						   dst);
			else
				r = read_dir_page(ops, order[pos + p], used, dst);
			if (r < 0)
				goto err_level;
			for (i = 0; i < used; i++) {
				r = ops->validate(ops->ctx, dst[i], l > 1);
				if (r < 0)
					goto err_level;
				/* Level 1 comes last: sorted[] now holds every directory ref. */
				if (l == 1 &&
				    bsearch(&dst[i], sorted, ndir, sizeof(*sorted), cmp_u32)) {
					r = -ELOOP;
					goto err_level;
				}
			}
		}
		if (level)
			ops->unmap_many(ops->ctx, level, (uint32_t)cnt[l]);
	}
	r = 0;
	goto err_free;

err_level:
	if (level)
		ops->unmap_many(ops->ctx, level, (uint32_t)cnt[l]);
err_free:
	free(sorted);
	free(order);
	return r;
}
