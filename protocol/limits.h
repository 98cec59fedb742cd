/* Protocol-wide constants shared by the daemon and the library. */
#ifndef HB_PROTOCOL_LIMITS_H
#define HB_PROTOCOL_LIMITS_H

#include <stdint.h>

#define HBP_PROTOCOL_VERSION 1u

/* Every frame is a 4-byte little-endian length and that many payload bytes. A length above
 * HBP_FRAME_MAX is a protocol violation, detected before anything is allocated. */
#define HBP_FRAME_HEADER 4u
#define HBP_FRAME_MAX    (256u * 1024u)

/* Pages and reference directories. */
#define HBP_PAGE_SIZE        4096u
#define HBP_PAGE_SHIFT       12u
#define HBP_REFS_PER_PAGE    (HBP_PAGE_SIZE / 4u) /* 1024 32-bit refs per directory page */
#define HBP_REFDIR_MAX_DEPTH 3u
/* A buffer of up to this many pages is described inline (BufferDesc.refs, depth 0): it takes
 * no directory page, and an importer reads no shared memory to find its pages. 64 refs are
 * 256 bytes of a reply; a bigger buffer's directory page is a small part of it. */
#define HBP_INLINE_REFS_MAX 64u

/* Hello.features: what a client's library understands beyond version 1's first form. */
#define HBP_FEATURE_INLINE_REFS  1u  /* BufferDesc of depth 0 (refs inline) */
#define HBP_FEATURE_QUIET_SIGNAL 2u  /* TimelineSignal.quiet: no reply unless refused */
#define HBP_FEATURE_WATCH        4u  /* SyncOpen.watch and TimelineValue */
#define HBP_FEATURE_SLOTS        8u  /* SyncReply.slot, TimelineSlot: a doorbell to wake it */
#define HBP_FEATURE_LAZY         16u /* TimelineLazy: an owner may keep its signals to itself */
#define HBP_FEATURE_HOLDS        32u /* Event.hold: EXPORTED carries an import made for us */
#define HBP_FEATURE_QUIET_EXPORT 64u /* Export.hid and .quiet: a re-export nobody waits for */
/* What this daemon and library understand; the daemon keeps the bits both do. */
#define HBP_FEATURES_KNOWN                                                                         \
	(HBP_FEATURE_INLINE_REFS | HBP_FEATURE_QUIET_SIGNAL | HBP_FEATURE_WATCH |                  \
	 HBP_FEATURE_SLOTS | HBP_FEATURE_LAZY | HBP_FEATURE_HOLDS | HBP_FEATURE_QUIET_EXPORT)

/* Holds (PROTOCOL.md §3 "Holds"): a session has at most HBP_HOLDS_MAX imports made for its
 * EXPORTED events and not yet taken or released; a resuming Hello names at most
 * HBP_HELLO_HOLDS_MAX (those, and the ones its posted Imports took). */
#define HBP_HOLDS_MAX       16u
#define HBP_HELLO_HOLDS_MAX 128u

/* Hard ceilings a configuration can't exceed. */
#define HBP_META_LIMIT        4096u /* == HB_META_MAX in hyperbuf.h */
/* The smallest meta_max a daemon may be configured with: metadata this size or smaller is
 * never refused for its size, whatever a reload or a restart brings (a quiet re-export). */
#define HBP_META_MAX_FLOOR 1024u
#define HBP_EVENT_QUEUE_LIMIT 65536u
#define HBP_MAX_GROUPS        64u
#define HBP_RESV_LIMIT        32u   /* == HB_RESV_MAX in hyperbuf.h: pending fences per buffer */
#define HBP_ERRNO_LIMIT       4096u /* errnos on the wire are 1..HBP_ERRNO_LIMIT-1 */

/* Welcome.memory: where buffer pages come from. */
#define HBP_MEMORY_POOL   0u /* KVM: the daemon allocates pool pages and builds the directory */
#define HBP_MEMORY_GRANTS 1u /* Xen: the client allocates, grants and describes them (Grant) */

/* Event types that never reach the application (PROTOCOL.md §3, Event). */
#define HBP_WIRE_EVENT_RECLAIMED 64u /* Xen: no importer maps the buffer; end its grants */

/* A session's resume token (Welcome.token, Hello.resume; PROTOCOL.md §8). */
#define HBP_TOKEN_LEN 16u

/* Session roles in Hello. */
#define HBP_ROLE_CLIENT  0u
#define HBP_ROLE_CONTROL 1u

/* Control.what */
#define HBP_CTL_STATUS    1u
#define HBP_CTL_DOMAINS   2u
#define HBP_CTL_EXPORTS   3u
#define HBP_CTL_IMPORTS   4u
#define HBP_CTL_STATS     5u
#define HBP_CTL_TIMELINES 6u

/* ServerMsg.reason: the words that come with an error (PROTOCOL.md §2). */
#define HBP_REASON_MAX 256u
/* Control paging (PROTOCOL.md §3 Control): a page holds at most this many rows (a reply must
 * fit one frame), and a key (Control.after, ControlReply.next) at most HBP_CTL_KEY_MAX bytes. */
#define HBP_CTL_PAGE_MAX 1500u
#define HBP_CTL_KEY_MAX  16u
/* CtlEvent (PROTOCOL.md §10): the longest `what` and `detail`. */
#define HBP_CTL_WHAT_MAX   32u
#define HBP_CTL_DETAIL_MAX 256u

/* The pool header in page 0 of every KVM group pool. All fields little-endian. Guests use it
 * to tell their ivshmem BARs apart; nobody trusts it for anything else, since every member can
 * write the pool. instance (Welcome's GroupInfo.pool_instance) tells a pool from the one a
 * previous daemon made for the same group: QEMU cannot reconnect to an ivshmem server, so a VM
 * that outlived a daemon restart still has the old pool as its BAR. */
#define HBP_POOL_MAGIC          "HYPERBUF"
#define HBP_POOL_LAYOUT_VERSION 1u
struct hbp_pool_header {
	char magic[8];   /* HBP_POOL_MAGIC, no NUL */
	uint32_t layout; /* HBP_POOL_LAYOUT_VERSION */
	uint32_t group;  /* group id, as in Welcome.groups */
	uint64_t size;   /* pool bytes, a power of two */
	uint32_t page_size;
	uint32_t instance; /* random, non-zero, new for every pool the daemon creates */
	char name[32];     /* group name, NUL padded */
};

/*
 * Fence slots (PROTOCOL.md §3 "Fence slots"): the rest of page 0, after the header, holds
 * HBP_SLOTS 64-byte slots, slot i at byte 64 * i (i = 1..63). Every field little-endian,
 * naturally aligned, accessed atomically. Every member of the group can write them: a value
 * is trusted only while gen is the one the daemon gave and POISON is clear, and only by the
 * group's members, for the group's own timelines.
 */
#define HBP_SLOTS       63u
#define HBP_SLOT_POISON 1u /* flags: a point failed; statuses come from the watch */
struct hbp_fence_slot {
	uint64_t value;   /* the highest value known to have succeeded */
	uint32_t gen;     /* given by the daemon with the slot; 0 when free */
	uint32_t flags;   /* HBP_SLOT_POISON */
	uint64_t waiters; /* bit (ivshmem peer id % 64): a waiter about to sleep */
	/* Written by the daemon: the bits of waiters that name exactly one peer of the group,
	 * the one whose id is the bit, so that a KVM guest (which knows no peer ids) may ring
	 * them by id. */
	uint64_t direct;
	uint64_t reserved[4];
};
_Static_assert(sizeof(struct hbp_fence_slot) == 64, "a fence slot is 64 bytes");
_Static_assert(sizeof(struct hbp_pool_header) <= 64, "the header fits before slot 1");

#endif
