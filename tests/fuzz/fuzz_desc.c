/*
 * libFuzzer target: the descriptor checks. A Xen client describes the pages it granted in a
 * BufferDesc (Grant), which the daemon checks with hbx_desc_check (backends/xen/desc.c, no Xen
 * library needed) before any importer sees it; every receiver turns a wire BufferDesc into a
 * directory with hbp_desc_to_refdir (protocol/desc.c). The input is a directory and the size
 * it was reserved with (fixed fields, zero when the input is short), and the rest of it a
 * packed BufferDesc. Oracles: what the checks accept is self-consistent (the depth is the
 * smallest for the pages, the pages what size and offset span, hbx_desc_pages counts them)
 * and the two checks agree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/xen/desc.h"
#include "protocol/desc.h"
#include "protocol/limits.h"
#include "protocol/refdir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "fuzz_desc: " __VA_ARGS__);                                        \
		fprintf(stderr, "\n");                                                             \
		abort();                                                                           \
	} while (0)

struct fields {
	uint32_t root, depth, pages, first_offset;
	uint64_t size, reserved;
} __attribute__((packed));

/* Pages spanned, in arithmetic that cannot overflow: the oracle for hbp_refdir_span. */
static uint64_t exact_span(uint64_t size, uint32_t first_offset)
{
	unsigned __int128 end = (unsigned __int128)size + first_offset + HBP_PAGE_SIZE - 1;
	unsigned __int128 pages = end / HBP_PAGE_SIZE;

	return pages > UINT64_MAX ? UINT64_MAX : (uint64_t)pages;
}

/* What hbx_desc_check accepted is a directory a walker takes and a receiver converts. */
static void check_xen(const struct hbp_refdir *d, uint64_t reserved)
{
	BufferDesc wire = BUFFER_DESC__INIT;
	struct hbp_refdir back;
	uint64_t total = hbx_desc_pages(reserved);

	if (hbx_desc_check(d, reserved) != 0)
		return;
	if (d->size != reserved || d->first_offset >= HBP_PAGE_SIZE ||
	    d->pages != exact_span(d->size, d->first_offset))
		FAIL("hbx_desc_check accepted an inconsistent directory");
	if (d->depth == 0) {
		/* Inline: at most 64 refs, none reserved; no directory page to count. */
		if (!d->inline_refs || d->root || d->pages > HBP_INLINE_REFS_MAX)
			FAIL("hbx_desc_check accepted an inconsistent inline form");
		for (uint32_t i = 0; i < d->pages; i++)
			if (d->inline_refs[i] < HBX_FIRST_GRANT_REF)
				FAIL("hbx_desc_check accepted a reserved inline ref");
		return;
	}
	if (hbp_refdir_depth(d->pages) != (int)d->depth || d->root < HBX_FIRST_GRANT_REF)
		FAIL("hbx_desc_check accepted an inconsistent directory");
	hbp_desc_from_refdir(&wire, d, 0);
	if (hbp_desc_to_refdir(&wire, &back) != 0 || memcmp(&back, d, sizeof(back)) != 0)
		FAIL("a directory hbx_desc_check accepted does not survive the wire");
	if (d->first_offset == 0 && total != (uint64_t)d->pages + hbp_refdir_dir_pages(d->pages))
		FAIL("hbx_desc_pages(%llu) = %llu, not the pages the directory takes",
		     (unsigned long long)reserved, (unsigned long long)total);
}

/* A wire descriptor: what hbp_desc_to_refdir accepts has a size, an offset in the first page
 * and exactly the pages they span; it goes back to the same BufferDesc. */
static void check_wire(const uint8_t *data, size_t len)
{
	BufferDesc *in = buffer_desc__unpack(NULL, len, data), back = BUFFER_DESC__INIT;
	struct hbp_refdir d;

	if (!in)
		return;
	if (hbp_desc_to_refdir(in, &d) == 0) {
		if (!d.size || d.first_offset >= HBP_PAGE_SIZE ||
		    d.pages != exact_span(d.size, d.first_offset))
			FAIL("hbp_desc_to_refdir accepted an inconsistent BufferDesc");
		hbp_desc_from_refdir(&back, &d, in->group);
		if (back.root_ref != in->root_ref || back.depth != in->depth ||
		    back.pages != in->pages || back.first_offset != in->first_offset ||
		    back.size != in->size || back.group != in->group || back.n_refs != in->n_refs ||
		    (back.n_refs && memcmp(back.refs, in->refs, back.n_refs * 4) != 0))
			FAIL("a BufferDesc does not come back from its directory");
		/* As the daemon's Grant handler sees it: reserved with the size it names. */
		check_xen(&d, in->size);
	}
	buffer_desc__free_unpacked(in, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fields f = {0};
	size_t n = size < sizeof(f) ? size : sizeof(f);
	struct hbp_refdir d;

	memcpy(&f, data, n);
	d = (struct hbp_refdir){.root = f.root,
				.depth = f.depth,
				.pages = f.pages,
				.first_offset = f.first_offset,
				.size = f.size};
	check_xen(&d, f.reserved);
	hbx_desc_pages(f.size);
	check_wire(data + n, size - n);
	/*
	 * Image descriptions: their check is to come (another part of the isolation work). When
	 * it exists, call it here on the same bytes, with its own oracles, and add its seeds to
	 * tests/fuzz/corpus/desc/ (tests/fuzz/gen_corpus.c).
	 */
	return 0;
}
