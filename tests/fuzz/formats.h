/*
 * The input formats of the fuzz targets that are more than plain bytes, shared by the targets
 * and by the program that writes their seed corpora (tests/fuzz/gen_corpus.c). Every format
 * takes any byte string: what is missing reads as zero, what is left over is ignored, so the
 * fuzzer never wastes a run on an input the harness refuses. docs/FUZZING.md describes them.
 */
#ifndef HB_TESTS_FUZZ_FORMATS_H
#define HB_TESTS_FUZZ_FORMATS_H

#include <stdint.h>

/* ---- fuzz_daemon ---------------------------------------------------------------------------
 *
 * An input is a sequence of records, each an op byte and its operands. The low bits of the op
 * name a connection or a peer (taken modulo their number):
 *   HBT_OP_FRAME | k, u16 len (LE), len bytes: the bytes go to connection k as one frame (the
 *       harness writes the 4-byte length in front of them)
 *   HBT_OP_RAW | k, u16 len, len bytes: written to connection k as they are
 *   HBT_OP_HANGUP | k: connection k hangs up
 *   HBT_OP_PEER_GONE | k: ivshmem peer k hangs up (its QEMU went away)
 *   HBT_OP_MUTE | k: the harness stops reading connection k, or starts again
 *   HBT_OP_SPIN: the harness sleeps HBT_SPIN_SLEEP_US (so that timers of a millisecond are
 *       due), then the loop turns up to HBT_SPIN_LONG rounds; only the first HBT_SPIN_BUDGET
 *       of an input do, the others are skipped
 * After each record the loop turns until it is quiet (no more bytes come back), at most
 * HBT_SPIN_SHORT rounds.
 * Any other op is skipped. A length running past the end is cut to what is there.
 */
#define HBT_OP_KIND(op)   ((op)&0xe0u)
#define HBT_OP_ARG(op)    ((op)&0x1fu)
#define HBT_OP_FRAME      0x00u
#define HBT_OP_RAW        0x20u
#define HBT_OP_HANGUP     0x40u
#define HBT_OP_PEER_GONE  0x60u
#define HBT_OP_MUTE       0x80u
#define HBT_OP_SPIN       0xa0u
#define HBT_SPIN_SHORT    4
#define HBT_SPIN_LONG     64
#define HBT_SPIN_SLEEP_US 1100
#define HBT_SPIN_BUDGET   32

/* The connections every input starts with: socketpairs handed to hbd_session_new, and two
 * that come in through the daemon's own listening sockets. */
enum hbt_conn {
	HBT_CONN_HOST_A,    /* host (domain 0) */
	HBT_CONN_HOST_B,    /* host */
	HBT_CONN_VM1_A,     /* vm1's channel (domain 1) */
	HBT_CONN_VM1_B,     /* vm1's channel, a second port */
	HBT_CONN_VM2,       /* vm2's channel (domain 2) */
	HBT_CONN_VM3,       /* vm3's channel (domain 3) */
	HBT_CONN_HOST_SOCK, /* host, connected to host.sock */
	HBT_CONN_VM2_SOCK,  /* vm2, connected to its channel socket vm2.sock */
	HBT_N_CONNS,
};

/*
 * The emulated QEMUs every input starts with, connected in this order (so their ivshmem peer
 * ids are 1, 2, 3, 4: the daemon hands out the lowest free id). The topology (the rig's
 * config, tests/fuzz/daemon_rig.c):
 *   group a (id 1): host, vm1        shared socket a.sock
 *   group b (id 2): vm1, vm2         one socket per VM, b-{vm}.sock
 *   group c (id 3): host, vm2, vm3   shared socket c.sock, 2 vectors
 */
enum hbt_peer {
	HBT_PEER_A,     /* a.sock: nobody's until a VM session names it in Attach */
	HBT_PEER_B_VM1, /* b-vm1.sock: vm1's */
	HBT_PEER_B_VM2, /* b-vm2.sock: vm2's */
	HBT_PEER_C,     /* c.sock */
	HBT_N_PEERS,
};

/* The rig makes getrandom() deterministic while an input runs, so that an input does the same
 * every time: the hid of the n-th export of an input has the serial n + 1 and these 12 bytes. */
#define HBT_RANDOM_BYTE(i) ((uint8_t)(0xa0u + (i)))
/* Timeline ids of an input: HBT_TIMELINE_EPOCH << 32 | n for the n-th timeline (from 1). */
#define HBT_TIMELINE_EPOCH 0x7e57u

/* ---- fuzz_refdir ---------------------------------------------------------------------------
 *
 * An input is a header, then (with HBT_REFDIR_DESC) a u8 length and that many bytes of a
 * packed BufferDesc whose directory replaces the header's, then the bodies of the directory
 * pages: each a u16 length (LE) and that many bytes, zero-padded to a page. Body k is the page
 * of ref base + k. Refs outside those pages are refused by map (EFAULT), unless
 * HBT_REFDIR_SYNTH: then they read as pages whose first fill entries are ref * 1024 + i + 1
 * (made up, distinct, so that deep directories need no big input).
 */
#define HBT_REFDIR_MANY  0x01u /* the walker gets map_many/unmap_many, not map/unmap */
#define HBT_REFDIR_DESC  0x02u /* the directory comes from a packed BufferDesc */
#define HBT_REFDIR_SYNTH 0x04u
#define HBT_REFDIR_SHORT 0x08u /* map says odd refs are shorter than a page */
#define HBT_REFDIR_ZERO  0x10u /* validate refuses ref 0 */

struct hbt_refdir_header {
	uint8_t flags;
	uint8_t pad;
	uint16_t fill; /* entries of a made-up page (at most 1024) */
	uint32_t root, depth, pages, first_offset;
	uint32_t base;  /* ref of body 0 */
	uint32_t limit; /* validate refuses refs at or above it (0: no limit) */
	uint32_t size_lo, size_hi;
} __attribute__((packed));

#endif
