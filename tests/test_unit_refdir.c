/*
 * Unit tests for protocol/refdir.c. A synthetic ref space stands in for a pool: directory pages
 * are refs DIR_BASE.. (their memory in a malloc'ed array indexed by ref), data pages are refs
 * DATA_BASE + i and are never mapped. Hostile cases corrupt a valid directory in place.
 */
#include <stdint.h>

#include "tests/harness.h"
#include "protocol/limits.h"
#include "protocol/desc.h"
#include "protocol/refdir.h"

#define DIR_BASE  1u
#define DATA_BASE 10000000u
#define POOL_END  20000000u
#define MIB_PAGES (1u << 20)

struct env {
	uint8_t **mem;   /* directory page memory by ref - DIR_BASE */
	uint8_t **alloc; /* what to free (mem may be misaligned into it) */
	uint32_t *dir_refs;
	uint32_t *data_refs;
	uint32_t *out;
	uint64_t ndir;
	uint32_t n;
	struct hbp_refdir d;

	/* what the callbacks saw */
	long maps, unmaps, dir_checks, data_checks, mapped_now;
	unsigned *map_count; /* per directory page */

	/* faults to inject */
	uint32_t short_ref;
	size_t short_len;
	uint32_t fail_ref;
	int fail_errno;
	uint32_t reject_ref;
	int strict_kinds; /* directory refs must be below DATA_BASE, data refs at or above */
};

static struct env E;

static const void *env_map(void *ctx, uint32_t ref, size_t *len)
{
	struct env *e = ctx;

	if (ref == e->fail_ref && e->fail_ref) {
		errno = e->fail_errno;
		return NULL;
	}
	if (ref < DIR_BASE || ref - DIR_BASE >= e->ndir) {
		errno = EFAULT;
		return NULL;
	}
	e->maps++;
	e->mapped_now++;
	e->map_count[ref - DIR_BASE]++;
	*len = ref == e->short_ref ? e->short_len : HBP_PAGE_SIZE;
	return e->mem[ref - DIR_BASE];
}

static void env_unmap(void *ctx, uint32_t ref, const void *mem)
{
	struct env *e = ctx;

	CHECK(ref >= DIR_BASE && ref - DIR_BASE < e->ndir);
	CHECK(mem == e->mem[ref - DIR_BASE]);
	e->unmaps++;
	e->mapped_now--;
}

static int env_validate(void *ctx, uint32_t ref, int is_dir)
{
	struct env *e = ctx;

	CHECK(is_dir == 0 || is_dir == 1);
	if (is_dir)
		e->dir_checks++;
	else
		e->data_checks++;
	if (ref == 0 || ref >= POOL_END || (e->reject_ref && ref == e->reject_ref))
		return -ENXIO;
	if (e->strict_kinds && (is_dir ? ref >= DATA_BASE : ref < DATA_BASE))
		return -EPERM;
	return 0;
}

static const struct hbp_refdir_ops ops = {
    .map = env_map,
    .unmap = env_unmap,
    .validate = env_validate,
    .ctx = &E,
};

/* Builds a directory for n data pages; dir refs ascending from DIR_BASE, or descending. */
static void env_build(uint32_t n, uint32_t first_offset, uint64_t size, int reverse, int misalign)
{
	uint64_t i;

	memset(&E, 0, sizeof(E));
	E.n = n;
	E.ndir = hbp_refdir_dir_pages(n);
	CHECK(E.ndir > 0);
	E.mem = calloc(E.ndir, sizeof(*E.mem));
	E.alloc = calloc(E.ndir, sizeof(*E.alloc));
	E.dir_refs = calloc(E.ndir, sizeof(*E.dir_refs));
	E.map_count = calloc(E.ndir, sizeof(*E.map_count));
	E.data_refs = calloc(n, sizeof(*E.data_refs));
	E.out = calloc(n, sizeof(*E.out));
	CHECK(E.mem && E.alloc && E.dir_refs && E.map_count && E.data_refs && E.out);
	for (i = 0; i < E.ndir; i++) {
		E.alloc[i] = aligned_alloc(HBP_PAGE_SIZE, 2 * HBP_PAGE_SIZE);
		CHECK(E.alloc[i]);
		/* Garbage everywhere, so the builder has to zero what it does not use. */
		memset(E.alloc[i], 0xa5, 2 * HBP_PAGE_SIZE);
		E.mem[i] = E.alloc[i] + (misalign ? 1 : 0);
		E.dir_refs[i] =
		    reverse ? (uint32_t)(DIR_BASE + E.ndir - 1 - i) : DIR_BASE + (uint32_t)i;
	}
	for (i = 0; i < n; i++)
		E.data_refs[i] = DATA_BASE + (uint32_t)i;
	/* mem[] is indexed by ref, the builder's dir_mem[] by position: reorder for reverse. */
	{
		void **dir_mem = calloc(E.ndir, sizeof(*dir_mem));

		CHECK(dir_mem);
		for (i = 0; i < E.ndir; i++)
			dir_mem[i] = E.mem[E.dir_refs[i] - DIR_BASE];
		CHECK_EQ(
		    hbp_refdir_build(E.data_refs, n, E.dir_refs, dir_mem, size, first_offset, &E.d),
		    0);
		free(dir_mem);
	}
	CHECK_EQ(E.d.root, E.dir_refs[0]);
	CHECK_EQ(E.d.depth, hbp_refdir_depth(n));
	CHECK_EQ(E.d.pages, n);
	CHECK_EQ(E.d.first_offset, first_offset);
	CHECK(E.d.size == size);
}

static void env_free(void)
{
	uint64_t i;

	for (i = 0; i < E.ndir; i++)
		free(E.alloc[i]);
	free(E.alloc);
	free(E.mem);
	free(E.dir_refs);
	free(E.map_count);
	free(E.data_refs);
	free(E.out);
	memset(&E, 0, sizeof(E));
}

/* Page memory of the directory page at build position pos (0 = root). */
static uint8_t *page_at(uint64_t pos)
{
	return E.mem[E.dir_refs[pos] - DIR_BASE];
}

static uint32_t get_entry(uint64_t pos, unsigned slot)
{
	const uint8_t *p = page_at(pos) + slot * 4u;

	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set_entry(uint64_t pos, unsigned slot, uint32_t v)
{
	uint8_t *p = page_at(pos) + slot * 4u;

	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Walks E.d with the counters reset; every map must have been undone, whatever happened. */
static int walk(void)
{
	int r;

	E.maps = E.unmaps = E.dir_checks = E.data_checks = E.mapped_now = 0;
	memset(E.map_count, 0, E.ndir * sizeof(*E.map_count));
	r = hbp_refdir_walk(&E.d, &ops, E.out);
	CHECK_EQ(E.maps, E.unmaps);
	CHECK_EQ(E.mapped_now, 0);
	return r;
}

/* A successful walk: every data ref back in order, each directory page mapped and checked
 * exactly once, each data ref checked once as data. */
static void walk_ok(void)
{
	uint64_t i;

	CHECK_EQ(walk(), 0);
	CHECK_EQ(E.maps, E.ndir);
	for (i = 0; i < E.ndir; i++)
		CHECK_EQ(E.map_count[i], 1);
	CHECK_EQ(E.dir_checks, E.ndir);
	CHECK_EQ(E.data_checks, E.n);
	for (i = 0; i < E.n; i++) {
		if (E.out[i] != E.data_refs[i])
			CHECK_EQ(E.out[i], E.data_refs[i]);
	}
}

TEST(depth_boundaries)
{
	CHECK_EQ(hbp_refdir_depth(0), -EFBIG);
	CHECK_EQ(hbp_refdir_depth(1), 1);
	CHECK_EQ(hbp_refdir_depth(1024), 1);
	CHECK_EQ(hbp_refdir_depth(1025), 2);
	CHECK_EQ(hbp_refdir_depth(1u << 20), 2);
	CHECK_EQ(hbp_refdir_depth((1u << 20) + 1), 3);
	CHECK_EQ(hbp_refdir_depth(1u << 30), 3);
	CHECK_EQ(hbp_refdir_depth((1u << 30) + 1), -EFBIG);
	CHECK_EQ(hbp_refdir_depth(UINT64_MAX), -EFBIG);
}

TEST(dir_page_counts)
{
	CHECK_EQ(hbp_refdir_dir_pages(0), 0);
	CHECK_EQ(hbp_refdir_dir_pages(1), 1);
	CHECK_EQ(hbp_refdir_dir_pages(1024), 1);
	CHECK_EQ(hbp_refdir_dir_pages(1025), 1 + 2);
	CHECK_EQ(hbp_refdir_dir_pages(2048), 1 + 2);
	CHECK_EQ(hbp_refdir_dir_pages(2049), 1 + 3);
	CHECK_EQ(hbp_refdir_dir_pages(1u << 20), 1 + 1024);
	CHECK_EQ(hbp_refdir_dir_pages((1u << 20) + 1), 1 + 2 + 1025);
	CHECK_EQ(hbp_refdir_dir_pages(1u << 30), 1 + 1024 + (1u << 20));
	CHECK_EQ(hbp_refdir_dir_pages((1u << 30) + 1), 0);
}

TEST(round_trip_depth1)
{
	/* one page, data at its very end */
	env_build(1, HBP_PAGE_SIZE - 1, 1, 0, 0);
	walk_ok();
	CHECK_EQ(get_entry(0, 0), DATA_BASE);
	env_free();

	/* a partial root with an offset and an exact size */
	env_build(7, 100, 6 * HBP_PAGE_SIZE + 1 - 100 + 17, 0, 0);
	walk_ok();
	env_free();

	/* a full root */
	env_build(1024, 0, 1024ull * HBP_PAGE_SIZE, 0, 0);
	walk_ok();
	env_free();
}

TEST(round_trip_depth2)
{
	env_build(1025, 12, 1025ull * HBP_PAGE_SIZE - 12, 0, 0);
	CHECK_EQ(E.d.depth, 2);
	walk_ok();
	/* the root lists the two level-1 pages; the second holds one entry */
	CHECK_EQ(get_entry(0, 0), E.dir_refs[1]);
	CHECK_EQ(get_entry(0, 1), E.dir_refs[2]);
	CHECK_EQ(get_entry(0, 2), 0);
	CHECK_EQ(get_entry(2, 0), DATA_BASE + 1024);
	CHECK_EQ(get_entry(2, 1), 0);
	env_free();

	env_build(5000, 4095, 4999ull * HBP_PAGE_SIZE - 4095 + 1, 1, 0);
	walk_ok();
	env_free();

	env_build(MIB_PAGES, 0, (uint64_t)MIB_PAGES * HBP_PAGE_SIZE, 0, 0);
	CHECK_EQ(E.d.depth, 2);
	walk_ok();
	env_free();
}

TEST(round_trip_depth3)
{
	uint32_t n = MIB_PAGES + 1;

	/* directory refs in descending order, to show nothing depends on their values */
	env_build(n, 1234, (uint64_t)n * HBP_PAGE_SIZE - 1234 - 5, 1, 0);
	CHECK_EQ(E.d.depth, 3);
	CHECK_EQ(E.ndir, 1 + 2 + 1025);
	walk_ok();
	/* root -> two level-2 pages -> 1025 level-1 pages, in build order */
	CHECK_EQ(get_entry(0, 0), E.dir_refs[1]);
	CHECK_EQ(get_entry(0, 1), E.dir_refs[2]);
	CHECK_EQ(get_entry(0, 2), 0);
	CHECK_EQ(get_entry(1, 0), E.dir_refs[3]);
	CHECK_EQ(get_entry(1, 1023), E.dir_refs[3 + 1023]);
	CHECK_EQ(get_entry(2, 0), E.dir_refs[3 + 1024]);
	CHECK_EQ(get_entry(2, 1), 0);
	CHECK_EQ(get_entry(3 + 1024, 0), DATA_BASE + MIB_PAGES);
	CHECK_EQ(get_entry(3 + 1024, 1), 0);
	env_free();
}

/* Directory pages the walker can only read byte by byte. */
TEST(round_trip_misaligned_pages)
{
	env_build(3000, 5, 3000ull * HBP_PAGE_SIZE - 5, 0, 1);
	walk_ok();
	env_free();
}

TEST(build_writes_little_endian_and_zero_slack)
{
	unsigned i;

	env_build(3, 0, 3 * HBP_PAGE_SIZE, 0, 0);
	CHECK_EQ(page_at(0)[0], DATA_BASE & 0xff);
	CHECK_EQ(page_at(0)[1], (DATA_BASE >> 8) & 0xff);
	CHECK_EQ(page_at(0)[2], (DATA_BASE >> 16) & 0xff);
	CHECK_EQ(page_at(0)[3], DATA_BASE >> 24);
	for (i = 3; i < HBP_REFS_PER_PAGE; i++)
		CHECK_EQ(get_entry(0, i), 0);
	env_free();
}

TEST(build_rejects_bad_arguments)
{
	uint32_t data[2] = {DATA_BASE, DATA_BASE + 1}, dirs[1] = {DIR_BASE};
	static uint8_t page[HBP_PAGE_SIZE];
	void *mem[1] = {page}, *nomem[1] = {NULL};
	struct hbp_refdir d;

	CHECK_EQ(hbp_refdir_build(data, 2, dirs, mem, 2 * HBP_PAGE_SIZE, 0, &d), 0);
	CHECK_EQ(hbp_refdir_build(data, 0, dirs, mem, 0, 0, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_build(data, (1u << 30) + 1, dirs, mem, HBP_PAGE_SIZE, 0, &d), -EINVAL);
	/* does not fit */
	CHECK_EQ(hbp_refdir_build(data, 2, dirs, mem, 2 * HBP_PAGE_SIZE + 1, 0, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_build(data, 2, dirs, mem, 2 * HBP_PAGE_SIZE, 1, &d), -EINVAL);
	/* last page unused */
	CHECK_EQ(hbp_refdir_build(data, 2, dirs, mem, HBP_PAGE_SIZE, 0, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_build(data, 2, dirs, mem, HBP_PAGE_SIZE - 1, 1, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_build(data, 2, dirs, mem, HBP_PAGE_SIZE, 1, &d), 0);
	/* offset */
	CHECK_EQ(hbp_refdir_build(data, 1, dirs, mem, 1, HBP_PAGE_SIZE, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_build(data, 1, dirs, mem, 0, 0, &d), -EINVAL);
	/* missing memory or arrays */
	CHECK_EQ(hbp_refdir_build(data, 2, dirs, nomem, 2 * HBP_PAGE_SIZE, 0, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_build(NULL, 2, dirs, mem, 2 * HBP_PAGE_SIZE, 0, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_build(data, 2, NULL, mem, 2 * HBP_PAGE_SIZE, 0, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_build(data, 2, dirs, mem, 2 * HBP_PAGE_SIZE, 0, NULL), -EINVAL);
}

/* A descriptor rejected before anything was looked at. */
static void walk_einval(void)
{
	CHECK_EQ(walk(), -EINVAL);
	CHECK_EQ(E.maps, 0);
	CHECK_EQ(E.dir_checks, 0);
}

TEST(descriptor_checked_before_mapping)
{
	struct hbp_refdir good;

	env_build(2000, 10, 2000ull * HBP_PAGE_SIZE - 10, 0, 0);
	good = E.d;

	E.d.depth = 1;
	walk_einval();
	E.d.depth = 3;
	walk_einval();
	E.d.depth = 0;
	walk_einval();
	E.d.depth = 4;
	walk_einval();
	E.d = good;
	E.d.pages = 1024; /* depth 2 no longer matches */
	walk_einval();
	E.d = good;
	E.d.pages = 0;
	walk_einval();
	E.d = good;
	E.d.pages = (1u << 30) + 1;
	E.d.depth = 3;
	walk_einval();

	/* size does not fit / leaves the last page unused / offset out of the page */
	E.d = good;
	E.d.size++;
	walk_einval();
	E.d = good;
	E.d.size = 1999ull * HBP_PAGE_SIZE - 10;
	walk_einval();
	E.d = good;
	E.d.size = UINT64_MAX;
	walk_einval();
	E.d = good;
	E.d.first_offset = HBP_PAGE_SIZE;
	E.d.size = 2000ull * HBP_PAGE_SIZE - HBP_PAGE_SIZE;
	walk_einval();
	E.d = good;
	E.d.first_offset = UINT32_MAX;
	walk_einval();

	/* the tightest sizes that do fit */
	E.d = good;
	E.d.size = 1999ull * HBP_PAGE_SIZE - 10 + 1;
	walk_ok();
	E.d = good;
	E.d.first_offset = HBP_PAGE_SIZE - 1;
	E.d.size = 2000ull * HBP_PAGE_SIZE - (HBP_PAGE_SIZE - 1);
	walk_ok();
	E.d = good;
	E.d.first_offset = 0;
	E.d.size = 2000ull * HBP_PAGE_SIZE;
	walk_ok();
	env_free();
}

TEST(cycle_root_points_at_itself)
{
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);
	set_entry(0, 1, E.d.root);
	CHECK_EQ(walk(), -ELOOP);
	/* found before the root was mapped a second time */
	CHECK_EQ(E.maps, 1);
	env_free();
}

TEST(cycle_level_page_listed_twice)
{
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);
	set_entry(0, 1, get_entry(0, 0));
	CHECK_EQ(walk(), -ELOOP);
	CHECK_EQ(E.maps, 1);
	env_free();
}

TEST(cycle_depth3_level_page_points_at_root_or_itself)
{
	uint32_t n = MIB_PAGES + 1;

	env_build(n, 0, (uint64_t)n * HBP_PAGE_SIZE, 0, 0);
	/* the second level-2 page lists the root as a level-1 page */
	set_entry(2, 0, E.d.root);
	CHECK_EQ(walk(), -ELOOP);
	CHECK_EQ(E.maps, 3); /* root and both level-2 pages, no level-1 page */
	/* ... or itself */
	set_entry(2, 0, E.dir_refs[2]);
	CHECK_EQ(walk(), -ELOOP);
	CHECK_EQ(E.maps, 3);
	/* ... or a sibling level-1 page a second time */
	set_entry(2, 0, E.dir_refs[3]);
	CHECK_EQ(walk(), -ELOOP);
	CHECK_EQ(E.map_count[E.dir_refs[3] - DIR_BASE], 0);
	env_free();
}

TEST(data_ref_equal_to_directory_ref)
{
	uint32_t n = MIB_PAGES + 1;

	/* depth 1: data page = the root */
	env_build(5, 0, 5 * HBP_PAGE_SIZE, 0, 0);
	set_entry(0, 4, E.d.root);
	CHECK_EQ(walk(), -ELOOP);
	env_free();

	/* depth 2: data page = a level-1 page, then = the root */
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);
	set_entry(2, 975, E.dir_refs[1]);
	CHECK_EQ(walk(), -ELOOP);
	set_entry(2, 975, E.d.root);
	CHECK_EQ(walk(), -ELOOP);
	set_entry(2, 975, DATA_BASE + 1999);
	walk_ok();
	set_entry(1, 0, E.dir_refs[2]);
	CHECK_EQ(walk(), -ELOOP);
	env_free();

	/* depth 3: data page = a level-2 page */
	env_build(n, 0, (uint64_t)n * HBP_PAGE_SIZE, 0, 0);
	set_entry(3 + 1024, 0, E.dir_refs[1]);
	CHECK_EQ(walk(), -ELOOP);
	env_free();
}

TEST(validator_rejects_refs_outside_pool)
{
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);

	/* a data ref */
	set_entry(2, 3, POOL_END + 7);
	CHECK_EQ(walk(), -ENXIO);
	set_entry(2, 3, DATA_BASE + 1024 + 3);
	walk_ok();

	/* a level-1 ref: never mapped */
	set_entry(0, 1, UINT32_MAX);
	CHECK_EQ(walk(), -ENXIO);
	CHECK_EQ(E.maps, 1);
	set_entry(0, 1, E.dir_refs[2]);

	/* the root itself: nothing mapped at all */
	E.d.root = 0;
	CHECK_EQ(walk(), -ENXIO);
	CHECK_EQ(E.maps, 0);
	E.d.root = E.dir_refs[0];

	/* the validator's own verdict on one particular ref */
	E.reject_ref = DATA_BASE + 1999;
	CHECK_EQ(walk(), -ENXIO);
	E.reject_ref = E.dir_refs[2];
	CHECK_EQ(walk(), -ENXIO);
	E.reject_ref = 0;
	walk_ok();
	env_free();
}

TEST(validator_told_the_kind)
{
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);
	E.strict_kinds = 1;
	walk_ok();
	/* a data page offered as a directory page, and the reverse */
	set_entry(0, 1, DATA_BASE + 5);
	CHECK_EQ(walk(), -EPERM);
	set_entry(0, 1, E.dir_refs[2]);
	set_entry(1, 7, 5000);
	CHECK_EQ(walk(), -EPERM);
	env_free();
}

TEST(short_page_rejected)
{
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);
	E.short_ref = E.d.root;
	E.short_len = HBP_PAGE_SIZE - 1;
	CHECK_EQ(walk(), -EBADMSG);
	CHECK_EQ(E.maps, 1);
	E.short_ref = E.dir_refs[2];
	E.short_len = 0;
	CHECK_EQ(walk(), -EBADMSG);
	CHECK_EQ(E.maps, 3);
	E.short_ref = 0;
	walk_ok();
	env_free();
}

TEST(nonzero_slack_rejected)
{
	/* depth 1: right after the last entry, and in the very last slot */
	env_build(10, 0, 10 * HBP_PAGE_SIZE, 0, 0);
	set_entry(0, 10, DATA_BASE + 10);
	CHECK_EQ(walk(), -EBADMSG);
	set_entry(0, 10, 0);
	set_entry(0, 1023, 1);
	CHECK_EQ(walk(), -EBADMSG);
	set_entry(0, 1023, 0);
	walk_ok();
	env_free();

	/* depth 2: in the root, and in the partial level-1 page */
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);
	set_entry(0, 2, E.dir_refs[1]);
	CHECK_EQ(walk(), -EBADMSG);
	set_entry(0, 2, 0);
	set_entry(2, 2000 - 1024, 0x80000000u);
	CHECK_EQ(walk(), -EBADMSG);
	set_entry(2, 2000 - 1024, 0);
	walk_ok();
	env_free();
}

TEST(map_failure)
{
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);
	E.fail_ref = E.d.root;
	E.fail_errno = EFAULT;
	CHECK_EQ(walk(), -EBADMSG);
	CHECK_EQ(E.maps, 0);
	E.fail_ref = E.dir_refs[2];
	CHECK_EQ(walk(), -EBADMSG);
	CHECK_EQ(E.maps, 2);
	E.fail_errno = ENOMEM;
	CHECK_EQ(walk(), -ENOMEM);
	E.fail_errno = 0;
	CHECK_EQ(walk(), -EBADMSG);
	env_free();
}

TEST(unmap_optional)
{
	struct hbp_refdir_ops no_unmap = ops;

	no_unmap.unmap = NULL;
	env_build(1500, 0, 1500ull * HBP_PAGE_SIZE, 0, 0);
	CHECK_EQ(hbp_refdir_walk(&E.d, &no_unmap, E.out), 0);
	CHECK_EQ(E.out[1499], DATA_BASE + 1499);
	CHECK_EQ(E.unmaps, 0);
	env_free();
}

TEST(walk_rejects_missing_callbacks)
{
	struct hbp_refdir_ops bad = ops;
	struct hbp_refdir d = {.root = 1, .depth = 1, .pages = 1, .size = 1};
	uint32_t out[1];

	bad.map = NULL;
	CHECK_EQ(hbp_refdir_walk(&d, &bad, out), -EINVAL);
	bad = ops;
	bad.validate = NULL;
	CHECK_EQ(hbp_refdir_walk(&d, &bad, out), -EINVAL);
	CHECK_EQ(hbp_refdir_walk(NULL, &ops, out), -EINVAL);
	CHECK_EQ(hbp_refdir_walk(&d, NULL, out), -EINVAL);
	CHECK_EQ(hbp_refdir_walk(&d, &ops, NULL), -EINVAL);
}

/* ---- batched walks (map_many, one mapping per level: the Xen importer) ---------------- */

/* A batch is a fresh contiguous copy of its pages, as a batched grant map gives: the walker
 * must read it from there, not from the pages themselves. */
static long batches, batch_pages_now;

static const void *env_map_many(void *ctx, const uint32_t *refs, uint32_t n)
{
	struct env *e = ctx;
	uint8_t *mem;

	for (uint32_t i = 0; i < n; i++) {
		if (refs[i] == e->fail_ref && e->fail_ref) {
			errno = e->fail_errno;
			return NULL;
		}
		if (refs[i] < DIR_BASE || refs[i] - DIR_BASE >= e->ndir) {
			errno = EFAULT;
			return NULL;
		}
	}
	mem = malloc((size_t)n * HBP_PAGE_SIZE);
	CHECK(mem);
	for (uint32_t i = 0; i < n; i++) {
		memcpy(mem + (size_t)i * HBP_PAGE_SIZE, e->mem[refs[i] - DIR_BASE], HBP_PAGE_SIZE);
		e->map_count[refs[i] - DIR_BASE]++;
	}
	batches++;
	batch_pages_now += n;
	return mem;
}

static void env_unmap_many(void *ctx, const void *mem, uint32_t n)
{
	batch_pages_now -= n;
	free((void *)mem);
}

static int walk_batched(void)
{
	struct hbp_refdir_ops b = ops;
	int r;

	b.map = NULL;
	b.unmap = NULL;
	b.map_many = env_map_many;
	b.unmap_many = env_unmap_many;
	batches = batch_pages_now = 0;
	memset(E.map_count, 0, E.ndir * sizeof(*E.map_count));
	r = hbp_refdir_walk(&E.d, &b, E.out);
	CHECK_EQ(batch_pages_now, 0);
	return r;
}

TEST(batched_one_map_per_level)
{
	uint32_t sizes[] = {1, 1024, 1025, 4100, MIB_PAGES, MIB_PAGES + 1};

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint32_t n = sizes[k];

		env_build(n, 0, (uint64_t)n * HBP_PAGE_SIZE, k % 2, 0);
		memset(E.out, 0, n * sizeof(*E.out));
		CHECK_EQ(walk_batched(), 0);
		CHECK_EQ(batches, E.d.depth);
		for (uint64_t i = 0; i < E.ndir; i++)
			CHECK_EQ(E.map_count[i], 1);
		for (uint32_t i = 0; i < n; i++)
			CHECK_EQ(E.out[i], DATA_BASE + i);
		env_free();
	}
}

TEST(batched_still_hostile)
{
	/* a level page listed twice: caught before the level is mapped */
	env_build(2000, 0, 2000ull * HBP_PAGE_SIZE, 0, 0);
	set_entry(0, 1, get_entry(0, 0));
	CHECK_EQ(walk_batched(), -ELOOP);
	CHECK_EQ(batches, 1);
	set_entry(0, 1, E.dir_refs[2]);
	/* a data ref that is a directory page, and slack */
	set_entry(1, 5, E.dir_refs[0]);
	CHECK_EQ(walk_batched(), -ELOOP);
	set_entry(1, 5, DATA_BASE + 5);
	set_entry(2, 2000 - 1024, 7);
	CHECK_EQ(walk_batched(), -EBADMSG);
	set_entry(2, 2000 - 1024, 0);
	CHECK_EQ(walk_batched(), 0);
	/* a failing batch: corrupt, or out of memory */
	E.fail_ref = E.dir_refs[2];
	E.fail_errno = EINVAL;
	CHECK_EQ(walk_batched(), -EBADMSG);
	E.fail_errno = ENOMEM;
	CHECK_EQ(walk_batched(), -ENOMEM);
	env_free();
}

TEST(batched_needs_unmap_many)
{
	struct hbp_refdir_ops b = ops;
	struct hbp_refdir d = {.root = 1, .depth = 1, .pages = 1, .size = 1};
	uint32_t out[1];

	b.map = NULL;
	b.map_many = env_map_many;
	CHECK_EQ(hbp_refdir_walk(&d, &b, out), -EINVAL);
}

/* ---- the inline form (depth 0: the refs in the descriptor, no directory) ------------------ */

static int inline_validate(void *ctx, uint32_t ref, int is_dir)
{
	int *calls = ctx;

	CHECK_EQ(is_dir, 0); /* an inline ref is always data */
	(*calls)++;
	return ref == 0 || ref >= POOL_END ? -EBADMSG : 0;
}

static const void *inline_map(void *ctx, uint32_t ref, size_t *len)
{
	hbt_fail(__FILE__, __LINE__, "an inline walk mapped ref %u", ref);
	return NULL;
}

TEST(inline_walk_maps_nothing_and_checks_every_ref)
{
	uint32_t refs[HBP_INLINE_REFS_MAX + 1], out[HBP_INLINE_REFS_MAX];
	int calls = 0;
	const struct hbp_refdir_ops iops = {
	    .map = inline_map, .validate = inline_validate, .ctx = &calls};
	struct hbp_refdir d;

	for (uint32_t i = 0; i <= HBP_INLINE_REFS_MAX; i++)
		refs[i] = 100 + i * 7;
	CHECK_EQ(hbp_refdir_inline(refs, HBP_INLINE_REFS_MAX, 64ull * HBP_PAGE_SIZE, 0, &d), 0);
	CHECK_EQ(d.depth, 0);
	CHECK_EQ(d.root, 0);
	CHECK(hbp_refdir_described(&d));
	CHECK_EQ(hbp_refdir_walk(&d, &iops, out), 0);
	CHECK_EQ(calls, HBP_INLINE_REFS_MAX);
	CHECK(memcmp(out, refs, sizeof(out)) == 0);
	/* The count, the size and the refs are all checked. */
	CHECK_EQ(hbp_refdir_inline(refs, HBP_INLINE_REFS_MAX + 1, 65ull * HBP_PAGE_SIZE, 0, &d),
		 -EINVAL);
	CHECK_EQ(hbp_refdir_inline(refs, 0, 1, 0, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_inline(refs, 2, HBP_PAGE_SIZE, 0, &d), -EINVAL); /* 1 page's worth */
	CHECK_EQ(hbp_refdir_inline(NULL, 1, 1, 0, &d), -EINVAL);
	CHECK_EQ(hbp_refdir_inline(refs, 3, 3ull * HBP_PAGE_SIZE, 0, &d), 0);
	refs[1] = POOL_END;
	CHECK_EQ(hbp_refdir_walk(&d, &iops, out), -EBADMSG);
	d.inline_refs = NULL; /* depth 0 without refs: nothing described */
	CHECK(!hbp_refdir_described(&d));
	CHECK_EQ(hbp_refdir_walk(&d, &iops, out), -EINVAL);
	d = (struct hbp_refdir){.root = 5, .pages = 1, .size = 1, .inline_refs = refs};
	CHECK_EQ(hbp_refdir_walk(&d, &iops, out), -EINVAL); /* a root with inline refs */
	d = (struct hbp_refdir){.pages = 65, .size = 65ull * HBP_PAGE_SIZE, .inline_refs = refs};
	CHECK_EQ(hbp_refdir_walk(&d, &iops, out), -EINVAL);
}

/* On the wire: refs with depth 0 and only then, one per page, at most HBP_INLINE_REFS_MAX. */
TEST(inline_desc_on_the_wire)
{
	uint32_t refs[HBP_INLINE_REFS_MAX + 1] = {9, 10, 11};
	BufferDesc w = BUFFER_DESC__INIT;
	struct hbp_refdir d, back;

	CHECK_EQ(hbp_refdir_inline(refs, 3, 3ull * HBP_PAGE_SIZE - 5, 0, &d), 0);
	hbp_desc_from_refdir(&w, &d, 2);
	CHECK_EQ(w.n_refs, 3);
	CHECK_EQ(w.depth, 0);
	CHECK_EQ(hbp_desc_to_refdir(&w, &back), 0);
	CHECK(back.inline_refs == refs && back.pages == 3 && back.depth == 0);
	w.n_refs = 2; /* fewer refs than pages */
	CHECK_EQ(hbp_desc_to_refdir(&w, &back), -EPROTO);
	w.n_refs = 3;
	w.root_ref = 4; /* a root as well */
	CHECK_EQ(hbp_desc_to_refdir(&w, &back), -EPROTO);
	w.root_ref = 0;
	w.depth = 1; /* refs with a directory */
	CHECK_EQ(hbp_desc_to_refdir(&w, &back), -EPROTO);
	w.depth = 0;
	w.n_refs = w.pages = HBP_INLINE_REFS_MAX + 1;
	w.size = (uint64_t)w.pages * HBP_PAGE_SIZE;
	CHECK_EQ(hbp_desc_to_refdir(&w, &back), -EPROTO);
	w.n_refs = 0; /* depth 0 and no refs: nothing */
	CHECK_EQ(hbp_desc_to_refdir(&w, &back), -EPROTO);
}
