/*
 * The Xen backend's pure parts, on any machine: the vchan rings (backends/xen/ring.c) with a
 * hostile peer, and the checks of client-built buffer descriptors (backends/xen/desc.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/xen/desc.h"
#include "backends/xen/ring.h"
#include "protocol/limits.h"
#include "tests/harness.h"

/* A control page and two rings, both sides' views of them. */
struct pair {
	struct hbx_vchan_page *page;
	uint8_t *left, *right;
	struct hbx_ring cli_tx, cli_rx, srv_tx, srv_rx;
};

static void pair_init(struct pair *p, uint32_t size)
{
	uint32_t lrefs[16] = {0}, rrefs[16] = {0};

	p->page = aligned_alloc(4096, 4096);
	p->left = malloc(size);
	p->right = malloc(size);
	CHECK(p->page && p->left && p->right);
	for (unsigned i = 0; i < HBX_RING_PAGES; i++) {
		lrefs[i] = 100 + i;
		rrefs[i] = 200 + i;
	}
	hbx_vchan_page_init(p->page, HBX_RING_ORDER, lrefs, rrefs);
	hbx_ring_init(&p->cli_tx, &p->page->left, p->left, size, true, 0);
	hbx_ring_init(&p->srv_rx, &p->page->left, p->left, size, false, 0);
	hbx_ring_init(&p->srv_tx, &p->page->right, p->right, size, true, 0);
	hbx_ring_init(&p->cli_rx, &p->page->right, p->right, size, false, 0);
}

static void pair_free(struct pair *p)
{
	free(p->page);
	free(p->left);
	free(p->right);
}

TEST(page_layout_is_vchans)
{
	struct pair p;
	uint32_t l[16], r[16];

	pair_init(&p, HBX_RING_SIZE);
	CHECK_EQ(p.page->cli_live, HBX_LIVE_WAITING);
	CHECK_EQ(p.page->srv_live, HBX_LIVE_UP);
	CHECK_EQ(hbx_vchan_page_read(p.page, l, r), HBX_RING_ORDER);
	for (unsigned i = 0; i < HBX_RING_PAGES; i++) {
		CHECK_EQ(l[i], 100 + i);
		CHECK_EQ(r[i], 200 + i);
	}
	/* grants[] follows the fixed header at byte 24, left refs first */
	CHECK_EQ(((uint32_t *)p.page)[6], 100);
	CHECK_EQ(((uint32_t *)p.page)[6 + HBX_RING_PAGES], 200);
	/* a server that publishes odd orders is refused */
	p.page->right_order = HBX_RING_ORDER + 1;
	CHECK_EQ(hbx_vchan_page_read(p.page, l, r), -EPROTO);
	p.page->left_order = p.page->right_order = 11;
	CHECK_EQ(hbx_vchan_page_read(p.page, l, r), -EPROTO);
	p.page->left_order = p.page->right_order = HBX_RING_ORDER_MAX + 1;
	CHECK_EQ(hbx_vchan_page_read(p.page, l, r), -EPROTO);
	pair_free(&p);
}

TEST(stream_wraps_and_keeps_order)
{
	struct pair p;
	uint8_t out[5000], in[5000];
	uint64_t sent = 0, got = 0;

	pair_init(&p, 4096);
	/* odd-sized chunks, so the indexes wrap the ring at every possible offset */
	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(round * 37 % 4999) + 1;
		long w, r;

		for (size_t i = 0; i < n; i++)
			out[i] = (uint8_t)(sent + i);
		w = hbx_ring_write(&p.cli_tx, out, n);
		CHECK(w >= 0 && (size_t)w <= n);
		sent += (uint64_t)w;
		CHECK_EQ(hbx_ring_avail(&p.srv_rx), (long)(sent - got));
		r = hbx_ring_read(&p.srv_rx, in, (size_t)(round % 3 ? 4999 : 17));
		CHECK(r >= 0);
		for (long i = 0; i < r; i++)
			CHECK_EQ(in[i], (uint8_t)(got + (uint64_t)i));
		got += (uint64_t)r;
	}
	CHECK(sent > 100000);
	/* full: nothing more goes in; empty: nothing comes out */
	while (hbx_ring_write(&p.srv_tx, out, sizeof(out)) > 0)
		;
	CHECK_EQ(hbx_ring_avail(&p.srv_tx), 0);
	CHECK_EQ(hbx_ring_write(&p.srv_tx, out, 1), 0);
	CHECK_EQ(hbx_ring_avail(&p.cli_rx), 4096);
	while (hbx_ring_read(&p.cli_rx, in, sizeof(in)) > 0)
		;
	CHECK_EQ(hbx_ring_read(&p.cli_rx, in, 1), 0);
	/* the wrong direction is refused */
	CHECK_EQ(hbx_ring_read(&p.cli_tx, in, 1), -EINVAL);
	CHECK_EQ(hbx_ring_write(&p.cli_rx, out, 1), -EINVAL);
	pair_free(&p);
}

TEST(hostile_peer_indexes)
{
	struct pair p;
	uint8_t buf[64] = {0};

	pair_init(&p, 4096);
	/* a client announcing more than a ring's worth of bytes */
	p.page->left.prod = 4097;
	CHECK_EQ(hbx_ring_avail(&p.srv_rx), -EPROTO);
	CHECK_EQ(hbx_ring_read(&p.srv_rx, buf, sizeof(buf)), -EPROTO);
	/* or moving its index backwards */
	p.page->left.prod = (uint32_t)-1;
	CHECK_EQ(hbx_ring_read(&p.srv_rx, buf, sizeof(buf)), -EPROTO);
	/* exactly full is fine, wrapped around 2^32 too */
	p.page->left.prod = 4096;
	CHECK_EQ(hbx_ring_avail(&p.srv_rx), 4096);
	/* a client claiming to have consumed what the server never wrote */
	p.page->right.cons = 10;
	CHECK_EQ(hbx_ring_write(&p.srv_tx, buf, sizeof(buf)), -EPROTO);
	p.page->right.cons = 0;
	CHECK_EQ(hbx_ring_write(&p.srv_tx, buf, sizeof(buf)), (long)sizeof(buf));
	/* rewriting the server's own index does not fool it: it never reads it back */
	p.page->right.prod = 0;
	CHECK_EQ(hbx_ring_avail(&p.srv_tx), 4096 - (long)sizeof(buf));
	pair_free(&p);

	/* indexes near the wrap of u32 */
	pair_init(&p, 4096);
	hbx_ring_init(&p.cli_tx, &p.page->left, p.left, 4096, true, UINT32_MAX - 10);
	hbx_ring_init(&p.srv_rx, &p.page->left, p.left, 4096, false, UINT32_MAX - 10);
	p.page->left.cons = UINT32_MAX - 10;
	CHECK_EQ(hbx_ring_write(&p.cli_tx, "0123456789abcdefghij", 20), 20);
	CHECK_EQ(hbx_ring_read(&p.srv_rx, buf, sizeof(buf)), 20);
	CHECK(memcmp(buf, "0123456789abcdefghij", 20) == 0);
	pair_free(&p);
}

static struct hbp_refdir desc_for(uint64_t size, uint32_t first_offset)
{
	uint64_t pages = (first_offset + size + HBP_PAGE_SIZE - 1) / HBP_PAGE_SIZE;

	return (struct hbp_refdir){
	    .root = 4242,
	    .depth = (uint32_t)hbp_refdir_depth(pages),
	    .pages = (uint32_t)pages,
	    .first_offset = first_offset,
	    .size = size,
	};
}

/* Inline grant refs (depth 0): the pages a small buffer reserves, and the checks of its refs. */
TEST(desc_checks_inline)
{
	uint32_t refs[HBP_INLINE_REFS_MAX + 1];
	struct hbp_refdir d;

	for (uint32_t i = 0; i <= HBP_INLINE_REFS_MAX; i++)
		refs[i] = HBX_FIRST_GRANT_REF + 3 * i;
	CHECK_EQ(hbx_buffer_pages(1, 1), 1);
	CHECK_EQ(hbx_buffer_pages(64 * 4096, 1), 64);
	CHECK_EQ(hbx_buffer_pages(64 * 4096 + 1, 1), 65 + 1);
	CHECK_EQ(hbx_buffer_pages(1, 0), 2);
	CHECK_EQ(hbx_buffer_pages(0, 1), 0);
	CHECK_EQ(hbp_refdir_inline(refs, 3, 3 * 4096 - 9, 0, &d), 0);
	CHECK_EQ(hbx_desc_check(&d, 3 * 4096 - 9), 0);
	CHECK_EQ(hbx_desc_check(&d, 3 * 4096), -EINVAL); /* not the size reserved */
	refs[2] = HBX_FIRST_GRANT_REF - 1;               /* a reserved ref */
	CHECK_EQ(hbx_desc_check(&d, 3 * 4096 - 9), -EINVAL);
	refs[2] = HBX_FIRST_GRANT_REF + 6;
	d.inline_refs = NULL; /* depth 0 without refs */
	CHECK_EQ(hbx_desc_check(&d, 3 * 4096 - 9), -EINVAL);
	d = (struct hbp_refdir){.pages = 65, .size = 65 * 4096, .inline_refs = refs};
	CHECK_EQ(hbx_desc_check(&d, 65 * 4096), -EINVAL); /* more than 64 inline */
}

TEST(desc_checks)
{
	uint64_t sizes[] = {1, 4096, 4097, 1920 * 1080 * 4, 64ull << 20, (4ull << 30) + 1};
	struct hbp_refdir d;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		d = desc_for(sizes[i], 0);
		CHECK_EQ(hbx_desc_check(&d, sizes[i]), 0);
		d = desc_for(sizes[i], 4095);
		CHECK_EQ(hbx_desc_check(&d, sizes[i]), 0);
	}
	d = desc_for(64ull << 20, 0);
	CHECK_EQ(d.depth, 2);
	CHECK_EQ(hbx_desc_pages(64ull << 20), 16384 + 17);
	CHECK_EQ(hbx_desc_pages(1920 * 1080 * 4), 2025 + 3);
	CHECK_EQ(hbx_desc_pages(1), 2);
	CHECK_EQ(hbx_desc_pages(0), 0);

	/* a size other than the one allocated */
	d = desc_for(8192, 0);
	CHECK_EQ(hbx_desc_check(&d, 8191), -EINVAL);
	/* a page too many or too few, with the size right */
	d = desc_for(8192, 0);
	d.pages = 3;
	CHECK_EQ(hbx_desc_check(&d, 8192), -EINVAL);
	d.pages = 1;
	CHECK_EQ(hbx_desc_check(&d, 8192), -EINVAL);
	/* an offset that is not inside the first page */
	d = desc_for(8192, 0);
	d.first_offset = 4096;
	CHECK_EQ(hbx_desc_check(&d, 8192), -EINVAL);
	/* a depth that does not match the pages */
	d = desc_for(5000ull * 4096, 0);
	d.depth = 1;
	CHECK_EQ(hbx_desc_check(&d, 5000ull * 4096), -EINVAL);
	d.depth = 3;
	CHECK_EQ(hbx_desc_check(&d, 5000ull * 4096), -EINVAL);
	/* reserved grant refs as the root */
	d = desc_for(100, 0);
	d.root = HBX_FIRST_GRANT_REF - 1;
	CHECK_EQ(hbx_desc_check(&d, 100), -EINVAL);
	d.root = 0;
	CHECK_EQ(hbx_desc_check(&d, 100), -EINVAL);
	/* nothing */
	d = desc_for(100, 0);
	CHECK_EQ(hbx_desc_check(&d, 0), -EINVAL);
	/* a size so large that size + offset wraps: it spans 2^52 pages, not one (found by
	 * fuzz_desc, tests/fuzz/regress/desc/) */
	d = desc_for(100, 0);
	d.size = UINT64_MAX;
	d.first_offset = 256;
	CHECK_EQ(hbp_refdir_span(UINT64_MAX, 256), (1ull << 52) + 1);
	CHECK_EQ(hbx_desc_check(&d, UINT64_MAX), -EINVAL);
}
