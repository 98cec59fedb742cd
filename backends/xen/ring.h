/*
 * vchan rings: the byte streams between hyperbufd (the server, in dom0) and a client in a Xen
 * domain. Pure memory code, no Xen library: the daemon and the library map the pages, this
 * file moves bytes and checks what the peer wrote.
 *
 * The control page has the layout of libxenvchan's struct vchan_interface (public header
 * xen/io/libxenvchan.h): two {cons, prod} index pairs, the ring orders, a liveness byte per
 * side, two notify bytes and the grant refs of the ring pages. `left` carries client ->
 * server, `right` server -> client. Both rings are 2^HBX_RING_ORDER bytes in their own
 * granted pages, listed in grants[] left first.
 *
 * Indexes are free-running u32 byte counts. Each side keeps its own index in private memory
 * and only ever stores it to the page: the peer can rewrite anything in the page, so the only
 * shared value a side reads is the peer's index, once per operation, and a value that would
 * put more than a ring's worth of bytes in flight is a protocol violation (-EPROTO).
 *
 * Notification: hyperbuf does not use the notify bytes. Each side signals the event channel
 * after every operation that moved bytes, so a waiter never misses a wakeup: the event latches
 * until the waiter reads it, and it re-reads the indexes after consuming the event.
 */
#ifndef HB_XEN_RING_H
#define HB_XEN_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HBX_RING_ORDER     14u /* 16 KiB per direction */
#define HBX_RING_SIZE      (1u << HBX_RING_ORDER)
#define HBX_RING_PAGES     (1u << (HBX_RING_ORDER - 12)) /* 4 granted pages per direction */
#define HBX_RING_ORDER_MIN 12u
#define HBX_RING_ORDER_MAX 16u

/* Liveness bytes (vchan's values). The unmap-notify of each side's mapping zeroes its byte
 * when its process dies. */
#define HBX_LIVE_GONE    0u
#define HBX_LIVE_UP      1u
#define HBX_LIVE_WAITING 2u /* cli_live: no client has claimed this listener yet */

struct hbx_ring_idx {
	uint32_t cons, prod;
};

/* == struct vchan_interface */
struct hbx_vchan_page {
	struct hbx_ring_idx left, right;
	uint16_t left_order, right_order;
	uint8_t cli_live, srv_live;
	uint8_t cli_notify, srv_notify;
	uint32_t grants[];
};

/* One direction as one side sees it. */
struct hbx_ring {
	volatile uint32_t *own;  /* our index in the page: prod if we write, cons if we read */
	volatile uint32_t *peer; /* the peer's index */
	volatile uint8_t *data;  /* size bytes of ring */
	uint32_t size;           /* a power of two */
	uint32_t mine;           /* our index, private */
	bool writer;
};

/* Sets up r over idx and data. start is our initial index (what the server wrote). */
void hbx_ring_init(struct hbx_ring *r, struct hbx_ring_idx *idx, void *data, uint32_t size,
		   bool writer, uint32_t start);

/* Bytes readable (reader) or free space (writer); -EPROTO if the peer's index is impossible. */
long hbx_ring_avail(const struct hbx_ring *r);

/* Copies up to len bytes out of (into) the ring. Returns the count (0: empty/full) or
 * -EPROTO. The data is copied once: a peer rewriting the ring meanwhile can only change
 * bytes, which the frame layer then checks like any other. */
long hbx_ring_read(struct hbx_ring *r, void *buf, size_t len);
long hbx_ring_write(struct hbx_ring *r, const void *buf, size_t len);

/* Server: fills a fresh control page for rings of 2^order bytes whose pages are
 * left_refs[2^(order-12)] and right_refs[...]; cli_live WAITING, srv_live UP, indexes 0. */
void hbx_vchan_page_init(struct hbx_vchan_page *p, unsigned order, const uint32_t *left_refs,
			 const uint32_t *right_refs);

/* Client: reads the orders and ring refs the server published, once each, into private
 * memory. Both orders must be equal and within [HBX_RING_ORDER_MIN, HBX_RING_ORDER_MAX];
 * left_refs and right_refs need room for 2^(HBX_RING_ORDER_MAX-12) refs. Returns the order
 * or -EPROTO. */
int hbx_vchan_page_read(const struct hbx_vchan_page *p, uint32_t *left_refs, uint32_t *right_refs);

/* Loads and stores of the liveness bytes, with the barriers they need. */
uint8_t hbx_live_load(const volatile uint8_t *b);
void hbx_live_store(volatile uint8_t *b, uint8_t v);

#endif
