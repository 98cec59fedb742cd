/*
 * libFuzzer target: the reference directory walk (protocol/refdir.c) over directory pages the
 * input makes up (tests/fuzz/formats.h), through map/unmap or map_many/unmap_many, and the
 * conversion of a wire BufferDesc into the directory it names (protocol/desc.c). Every page the
 * walker maps is a heap block of exactly the length map reports, freed by unmap, so the
 * sanitizers see any read outside it or after it. Oracles: a walk that succeeds read a
 * canonical directory, the very one hbp_refdir_build writes for the refs it returned, and no
 * data ref is a directory ref.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/desc.h"
#include "protocol/limits.h"
#include "protocol/refdir.h"
#include "tests/fuzz/formats.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the input formats are little-endian, and so is this harness"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "fuzz_refdir: " __VA_ARGS__);                                      \
		fprintf(stderr, "\n");                                                             \
		abort();                                                                           \
	} while (0)

/* Enough data refs for the smallest depth-3 directories (over 2^20 pages). */
#define OUT_CAP    ((1u << 20) + 2048u)
#define MAX_BODIES 64u
/* Directory pages a walk may map: a depth-3 directory of OUT_CAP pages has 1 + 1 + 1027. */
#define LOG_CAP 2048u

struct fake {
	const struct hbt_refdir_header *h;
	const uint8_t *body[MAX_BODIES];
	size_t body_len[MAX_BODIES];
	unsigned n_bodies;
	uint32_t log[LOG_CAP]; /* directory refs in the order they were mapped */
	unsigned n_log;
	unsigned mapped; /* mappings not undone yet */
};

static uint32_t *out;
static bool verbose; /* HB_FUZZ_VERBOSE: say what each walk returned (for writing seeds) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	verbose = getenv("HB_FUZZ_VERBOSE") != NULL;
	out = malloc(OUT_CAP * sizeof(*out));
	if (!out)
		abort();
	return 0;
}

/* The bytes of directory page ref, or false if there is none. */
static bool page_of(const struct fake *f, uint32_t ref, uint8_t page[HBP_PAGE_SIZE])
{
	uint32_t k = ref - f->h->base;

	memset(page, 0, HBP_PAGE_SIZE);
	if (k < f->n_bodies) {
		memcpy(page, f->body[k], f->body_len[k]);
		return true;
	}
	if (!(f->h->flags & HBT_REFDIR_SYNTH))
		return false;
	for (uint32_t i = 0; i < f->h->fill && i < HBP_REFS_PER_PAGE; i++) {
		uint32_t v = ref * HBP_REFS_PER_PAGE + i + 1;

		memcpy(page + 4 * i, &v, sizeof(v));
	}
	return true;
}

static void log_ref(struct fake *f, uint32_t ref)
{
	if (f->n_log == LOG_CAP)
		FAIL("the walker mapped more directory pages than any directory has");
	f->log[f->n_log++] = ref;
}

static const void *fake_map(void *ctx, uint32_t ref, size_t *len)
{
	struct fake *f = ctx;
	uint8_t page[HBP_PAGE_SIZE], *mem;

	log_ref(f, ref);
	if (!page_of(f, ref, page)) {
		errno = EFAULT;
		return NULL;
	}
	*len = (f->h->flags & HBT_REFDIR_SHORT) && (ref & 1) ? HBP_PAGE_SIZE / 2 : HBP_PAGE_SIZE;
	mem = malloc(*len);
	if (!mem)
		abort();
	memcpy(mem, page, *len);
	f->mapped++;
	return mem;
}

static void fake_unmap(void *ctx, uint32_t ref, const void *mem)
{
	struct fake *f = ctx;

	f->mapped--;
	free((void *)mem);
}

static const void *fake_map_many(void *ctx, const uint32_t *refs, uint32_t n)
{
	struct fake *f = ctx;
	uint8_t *mem = malloc((size_t)n * HBP_PAGE_SIZE);

	if (!mem)
		abort();
	for (uint32_t i = 0; i < n; i++) {
		log_ref(f, refs[i]);
		if (!page_of(f, refs[i], mem + (size_t)i * HBP_PAGE_SIZE)) {
			free(mem);
			errno = EFAULT;
			return NULL;
		}
	}
	f->mapped++;
	return mem;
}

static void fake_unmap_many(void *ctx, const void *mem, uint32_t n)
{
	struct fake *f = ctx;

	f->mapped--;
	free((void *)mem);
}

static int fake_validate(void *ctx, uint32_t ref, int is_dir)
{
	struct fake *f = ctx;

	if ((f->h->flags & HBT_REFDIR_ZERO) && ref == 0)
		return -EINVAL;
	if (f->h->limit && ref >= f->h->limit)
		return -EPERM;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* A walk that succeeded read what hbp_refdir_build writes for the same refs. */
/* Depth 0: nothing mapped, the refs exactly the inline ones, and they build the same form. */
static void check_inline(struct fake *f, const struct hbp_refdir *d)
{
	struct hbp_refdir again;

	if (f->n_log)
		FAIL("a walk of inline refs mapped %u pages", f->n_log);
	if (memcmp(out, d->inline_refs, d->pages * sizeof(*out)) != 0)
		FAIL("a walk of inline refs gave other refs");
	if (hbp_refdir_inline(out, d->pages, d->size, d->first_offset, &again) < 0 ||
	    again.pages != d->pages || again.size != d->size || again.depth != 0)
		FAIL("the refs of a good inline walk do not build the same descriptor");
}

static void check_canonical(struct fake *f, const struct hbp_refdir *d)
{
	uint64_t ndir = hbp_refdir_dir_pages(d->pages);
	uint8_t page[HBP_PAGE_SIZE];
	struct hbp_refdir again;
	uint32_t sorted[LOG_CAP];
	void **mem;

	if (ndir != f->n_log || f->log[0] != d->root)
		FAIL("a walk of %llu directory pages mapped %u", (unsigned long long)ndir,
		     f->n_log);
	mem = calloc(ndir, sizeof(*mem));
	for (uint64_t i = 0; mem && i < ndir; i++)
		if (!(mem[i] = malloc(HBP_PAGE_SIZE)))
			abort();
	if (!mem ||
	    hbp_refdir_build(out, d->pages, f->log, mem, d->size, d->first_offset, &again) < 0)
		FAIL("the refs of a good walk do not build");
	if (memcmp(&again, d, sizeof(again)) != 0)
		FAIL("the refs of a good walk build another descriptor");
	for (uint64_t i = 0; i < ndir; i++) {
		if (!page_of(f, f->log[i], page) || memcmp(page, mem[i], HBP_PAGE_SIZE) != 0)
			FAIL("directory page %llu (ref %u) is not what the builder writes",
			     (unsigned long long)i, f->log[i]);
		free(mem[i]);
	}
	free(mem);
	memcpy(sorted, f->log, ndir * sizeof(*sorted));
	qsort(sorted, ndir, sizeof(*sorted), cmp_u32);
	for (uint64_t i = 1; i < ndir; i++)
		if (sorted[i] == sorted[i - 1])
			FAIL("directory ref %u twice", sorted[i]);
	/* The walker makes this check itself; repeating it for a million refs doubles the time
	 * of a depth-3 walk for nothing. */
	for (uint32_t i = 0; i < d->pages && d->pages <= 65536; i++)
		if (bsearch(&out[i], sorted, ndir, sizeof(*sorted), cmp_u32))
			FAIL("data ref %u is a directory ref", out[i]);
}

/* Pages spanned, in arithmetic that cannot overflow (the oracle for hbp_refdir_span). */
static unsigned __int128 exact_span(uint64_t size, uint32_t first_offset)
{
	return ((unsigned __int128)size + first_offset + HBP_PAGE_SIZE - 1) / HBP_PAGE_SIZE;
}

/* The directory a packed BufferDesc names; false if the desc is refused. */
static bool from_desc(const uint8_t *data, size_t len, struct hbp_refdir *d)
{
	BufferDesc *in = buffer_desc__unpack(NULL, len, data), back = BUFFER_DESC__INIT;
	bool ok;

	if (!in)
		return false;
	ok = hbp_desc_to_refdir(in, d) == 0;
	if (ok && d->inline_refs) {
		/* d must outlive in: the walk below reads the refs. */
		static uint32_t copy[HBP_INLINE_REFS_MAX];

		memcpy(copy, d->inline_refs, d->pages * sizeof(*copy));
		d->inline_refs = copy;
	}
	if (ok) {
		hbp_desc_from_refdir(&back, d, in->group);
		if (back.group != in->group || back.root_ref != in->root_ref ||
		    back.depth != in->depth || back.pages != in->pages ||
		    back.first_offset != in->first_offset || back.size != in->size ||
		    d->pages != exact_span(d->size, d->first_offset))
			FAIL("a BufferDesc and its directory differ");
	}
	buffer_desc__free_unpacked(in, NULL);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fake f;
	struct hbt_refdir_header h = {0};
	struct hbp_refdir d;
	struct hbp_refdir_ops ops = {.validate = fake_validate, .ctx = &f};
	size_t pos = size < sizeof(h) ? size : sizeof(h), len;
	int r;

	memcpy(&h, data, pos);
	d = (struct hbp_refdir){.root = h.root,
				.depth = h.depth,
				.pages = h.pages,
				.first_offset = h.first_offset,
				.size = (uint64_t)h.size_hi << 32 | h.size_lo};
	if (h.flags & HBT_REFDIR_DESC) {
		len = pos < size ? data[pos++] : 0;
		len = len < size - pos ? len : size - pos;
		if (!from_desc(data + pos, len, &d))
			return 0;
		pos += len;
	}
	/* Past 2^30 pages the walker refuses the descriptor before it writes a ref; below, out
	 * must hold them all. */
	if (d.pages > OUT_CAP && d.pages <= (1u << 30))
		return 0;
	memset(&f, 0, sizeof(f));
	f.h = &h;
	while (f.n_bodies < MAX_BODIES && pos + 2 <= size) {
		len = data[pos] | (size_t)data[pos + 1] << 8;
		pos += 2;
		len = len < size - pos ? len : size - pos;
		f.body[f.n_bodies] = data + pos;
		f.body_len[f.n_bodies++] = len < HBP_PAGE_SIZE ? len : HBP_PAGE_SIZE;
		pos += len;
	}
	if (h.flags & HBT_REFDIR_MANY) {
		ops.map_many = fake_map_many;
		ops.unmap_many = fake_unmap_many;
	} else {
		ops.map = fake_map;
		ops.unmap = fake_unmap;
	}
	r = hbp_refdir_walk(&d, &ops, out);
	if (verbose)
		fprintf(stderr, "fuzz_refdir: depth %u, %u pages: %s\n", d.depth, d.pages,
			strerror(-r));
	if (f.mapped)
		FAIL("%u mappings left after a walk", f.mapped);
	if (r == 0 && d.depth == 0)
		check_inline(&f, &d);
	else if (r == 0)
		check_canonical(&f, &d);
	else if (r != -EINVAL && r != -EBADMSG && r != -ELOOP && r != -EPERM && r != -ENOMEM)
		FAIL("the walk returned %d", r);
	return 0;
}
