/* vchan rings (see ring.h): byte copies in and out of shared memory, peer indexes checked. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "backends/xen/ring.h"

_Static_assert(offsetof(struct hbx_vchan_page, left_order) == 16, "vchan_interface layout");
_Static_assert(offsetof(struct hbx_vchan_page, cli_live) == 20, "vchan_interface layout");
_Static_assert(offsetof(struct hbx_vchan_page, grants) == 24, "vchan_interface layout");

void hbx_ring_init(struct hbx_ring *r, struct hbx_ring_idx *idx, void *data, uint32_t size,
		   bool writer, uint32_t start)
{
	r->own = writer ? &idx->prod : &idx->cons;
	r->peer = writer ? &idx->cons : &idx->prod;
	r->data = data;
	r->size = size;
	r->mine = start;
	r->writer = writer;
}

long hbx_ring_avail(const struct hbx_ring *r)
{
	/* Acquire: what the peer wrote into the ring before moving its index is visible once
	 * we have seen the index. */
	uint32_t peer = __atomic_load_n(r->peer, __ATOMIC_ACQUIRE);
	uint32_t used = r->writer ? r->mine - peer : peer - r->mine;

	if (used > r->size)
		return -EPROTO;
	return r->writer ? (long)(r->size - used) : (long)used;
}

/* Copies n bytes between the ring at offset `at` (wrapping) and buf. */
static void copy_out(const struct hbx_ring *r, uint32_t at, void *buf, size_t n)
{
	uint32_t off = at & (r->size - 1);
	size_t first = r->size - off < n ? r->size - off : n;

	memcpy(buf, (const uint8_t *)r->data + off, first);
	memcpy((uint8_t *)buf + first, (const uint8_t *)r->data, n - first);
}

static void copy_in(struct hbx_ring *r, uint32_t at, const void *buf, size_t n)
{
	uint32_t off = at & (r->size - 1);
	size_t first = r->size - off < n ? r->size - off : n;

	memcpy((uint8_t *)r->data + off, buf, first);
	memcpy((uint8_t *)r->data, (const uint8_t *)buf + first, n - first);
}

long hbx_ring_read(struct hbx_ring *r, void *buf, size_t len)
{
	long avail = hbx_ring_avail(r);
	size_t n;

	if (avail < 0 || r->writer)
		return avail < 0 ? avail : -EINVAL;
	n = (size_t)avail < len ? (size_t)avail : len;
	if (n == 0)
		return 0;
	copy_out(r, r->mine, buf, n);
	r->mine += (uint32_t)n;
	/* Release: our reads of the ring are done before the peer may reuse the space. */
	__atomic_store_n(r->own, r->mine, __ATOMIC_RELEASE);
	return (long)n;
}

long hbx_ring_write(struct hbx_ring *r, const void *buf, size_t len)
{
	long avail = hbx_ring_avail(r);
	size_t n;

	if (avail < 0 || !r->writer)
		return avail < 0 ? avail : -EINVAL;
	n = (size_t)avail < len ? (size_t)avail : len;
	if (n == 0)
		return 0;
	copy_in(r, r->mine, buf, n);
	r->mine += (uint32_t)n;
	/* Release: the bytes are in the ring before the peer sees the index that covers them. */
	__atomic_store_n(r->own, r->mine, __ATOMIC_RELEASE);
	return (long)n;
}

void hbx_vchan_page_init(struct hbx_vchan_page *p, unsigned order, const uint32_t *left_refs,
			 const uint32_t *right_refs)
{
	unsigned n = 1u << (order - 12);

	memset(p, 0, 4096);
	p->left_order = (uint16_t)order;
	p->right_order = (uint16_t)order;
	p->cli_live = HBX_LIVE_WAITING;
	p->srv_live = HBX_LIVE_UP;
	memcpy(p->grants, left_refs, n * sizeof(uint32_t));
	memcpy(p->grants + n, right_refs, n * sizeof(uint32_t));
	/* Release: the page is complete before anybody can see the listener published. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

int hbx_vchan_page_read(const struct hbx_vchan_page *p, uint32_t *left_refs, uint32_t *right_refs)
{
	const volatile struct hbx_vchan_page *v = p;
	unsigned lo = v->left_order, ro = v->right_order, n;

	if (lo != ro || lo < HBX_RING_ORDER_MIN || lo > HBX_RING_ORDER_MAX)
		return -EPROTO;
	n = 1u << (lo - 12);
	for (unsigned i = 0; i < n; i++) {
		left_refs[i] = v->grants[i];
		right_refs[i] = v->grants[n + i];
	}
	return (int)lo;
}

uint8_t hbx_live_load(const volatile uint8_t *b)
{
	return __atomic_load_n(b, __ATOMIC_ACQUIRE);
}

void hbx_live_store(volatile uint8_t *b, uint8_t v)
{
	__atomic_store_n(b, v, __ATOMIC_RELEASE);
}
