/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * hyperbuf.ko's ioctl ABI: what user space (libhyperbuf, backends/kvm/dmabuf.c) and the module
 * (kmod/) agree on. docs/DMABUF.md describes it; every field here is checked by the module as
 * hostile input.
 *
 * Two kinds of device nodes:
 *
 *   /dev/hyperbuf/pool-DDDD:BB:DD.F   one per ivshmem PCI device (1af4:1110) whose BAR2 holds a
 *                                     hyperbuf pool (KVM guests). mmap: the pool, cached.
 *                                     ioctls: POOL_INFO, POOL_DMABUF; doorbells:
 *                                     POOL_BELL_INFO, POOL_IRQFD, POOL_RING.
 *   /dev/hyperbuf/ctl                 always (host and guest): per open file, a set of dma_fences
 *                                     this file signals (FENCE_CREATE, FENCE_SIGNAL), and
 *                                     read-only views of dma-bufs (DMABUF_RDONLY).
 *
 * All structs are the same size and layout for 32- and 64-bit callers. Reserved fields and
 * unknown flag bits must be 0 (EINVAL otherwise), so they can be given a meaning later.
 */
#ifndef HYPERBUF_KMOD_H
#define HYPERBUF_KMOD_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define HYPERBUF_KMOD_ABI 1

#define HYPERBUF_CTL_PATH  "/dev/hyperbuf/ctl"
#define HYPERBUF_POOL_PATH "/dev/hyperbuf/pool-" /* + the PCI address: pool-0000:00:04.0 */

/* The pool header in page 0 of a BAR, which the module checks before it binds the device:
 * protocol/limits.h's struct hbp_pool_header (tests/test_unit_kmod.c holds them together). */
#define HYPERBUF_POOL_MAGIC  "HYPERBUF"
#define HYPERBUF_POOL_LAYOUT 1
struct hyperbuf_pool_header {
	char magic[8]; /* HYPERBUF_POOL_MAGIC, no NUL */
	__le32 layout; /* HYPERBUF_POOL_LAYOUT */
	__le32 group;
	__le64 size; /* BAR2 bytes */
	__le32 page_size;
	__le32 instance;
	char name[32];
};

#define HYPERBUF_IOC_MAGIC 0xB8

/* POOL_INFO: what the module found at probe. group and instance are copied from the header,
 * which every group member can write: hints, as in user space. */
struct hyperbuf_pool_info {
	__u64 size;      /* BAR2 bytes */
	__u32 page_size; /* PAGE_SIZE; the pool's pages are this size */
	__u32 flags;     /* HYPERBUF_POOL_* */
	__u32 group;
	__u32 instance;
	__u32 abi; /* HYPERBUF_KMOD_ABI */
	__u32 reserved;
};
#define HYPERBUF_POOL_PAGES 0x1u /* the BAR has struct pages: POOL_DMABUF works */

/*
 * POOL_DMABUF: a dma-buf over `count` pages of the pool, in the order given. pages is a user
 * pointer to __u32 page numbers (offset / page_size). Errors: EINVAL (count 0, unknown flags,
 * reserved not 0), E2BIG (more pages than the pool has besides its header), EFAULT, ERANGE (a
 * page beyond the BAR, or page 0, the header), EEXIST (a page listed twice), EACCES (WRITE on a
 * file opened read-only), ENODEV (the device is gone, or has no struct pages), EMFILE, ENOMEM.
 * The fd is O_CLOEXEC; its CPU mmap is read-only unless WRITE was given.
 */
struct hyperbuf_pool_dmabuf {
	__u64 pages;
	__u32 count;
	__u32 flags; /* HYPERBUF_DMABUF_WRITE */
	__s32 fd;    /* out */
	__u32 reserved;
};
#define HYPERBUF_DMABUF_WRITE 0x1u

/*
 * FENCE_CREATE: a new dma_fence, unsignalled, returned as a sync_file (fd, O_CLOEXEC) and an
 * id that only this open file can signal. The fence signals when this file signals it, with
 * -EPIPE when this file is closed first (its process died), with -ETIMEDOUT after the module's
 * fence_timeout_ms (0: never). name: shown as the timeline name by SYNC_IOC_FILE_INFO, NUL
 * terminated. Errors: EINVAL, EFAULT, ENOSPC (max_fences pending on this file), EMFILE, ENOMEM.
 */
struct hyperbuf_fence_create {
	__u64 id; /* out */
	__s32 fd; /* out */
	__u32 flags;
	char name[32];
};

/* FENCE_SIGNAL: signals fence id, with error status if status < 0 (-4095..-1). Errors: EINVAL
 * (status out of range, flags), ENOENT (not a pending fence of this file), EFAULT. */
struct hyperbuf_fence_signal {
	__u64 id;
	__s32 status;
	__u32 flags;
};

/* DMABUF_RDONLY: a new dma-buf (O_RDONLY, O_CLOEXEC) over the same memory as dma-buf fd, whose
 * CPU mmap refuses PROT_WRITE, through its own fd and through any importer's mmap. It holds
 * the original until it is released. Errors: EINVAL (not a dma-buf, flags), EBADF, EOPNOTSUPP
 * (a dynamic dma-buf, one that can move), EMFILE, ENOMEM. */
struct hyperbuf_dmabuf_rdonly {
	__s32 fd;
	__s32 out_fd; /* out */
	__u32 flags;
	__u32 reserved;
};

/*
 * Doorbells: the pool device's MSI-X vectors and its Doorbell register (QEMU's
 * ivshmem-doorbell; docs/DMABUF.md, "Doorbells").
 *
 * POOL_BELL_INFO: this device's ivshmem peer id (its IVPosition register: what another member
 * rings) and its vectors (0: the device has no MSI-X, or the module could not take it).
 */
struct hyperbuf_pool_bell_info {
	__u32 peer;
	__u32 vectors;
	__u32 flags;
	__u32 reserved;
};

/* POOL_IRQFD: every interrupt on vector `vector` adds 1 to eventfd `fd` (an eventfd(2)), until
 * this file detaches it (fd -1) or is closed. One file holds a vector at a time; the same file
 * may replace its eventfd. Errors: EINVAL (vector >= vectors, fd < -1, flags, reserved), EBADF
 * or EINVAL (fd is no eventfd), EBUSY (another file holds the vector), ENODEV (no doorbells,
 * or the device is gone), EFAULT. */
struct hyperbuf_pool_irqfd {
	__s32 fd;
	__u32 vector;
	__u32 flags;
	__u32 reserved;
};

/* POOL_RING: rings vector `vector` of ivshmem peer `peer` in this pool's group (the Doorbell
 * register; QEMU drops a ring for a peer or vector it does not know). Needs a file opened
 * read-write. Errors: EINVAL (peer or vector over 65535, flags, reserved), EBADF (read-only
 * file), ENODEV, EFAULT. */
struct hyperbuf_pool_ring {
	__u32 peer;
	__u32 vector;
	__u32 flags;
	__u32 reserved;
};

#define HYPERBUF_IOC_POOL_INFO     _IOR(HYPERBUF_IOC_MAGIC, 0x00, struct hyperbuf_pool_info)
#define HYPERBUF_IOC_POOL_DMABUF   _IOWR(HYPERBUF_IOC_MAGIC, 0x01, struct hyperbuf_pool_dmabuf)
#define HYPERBUF_IOC_POOL_BELL_INFO _IOR(HYPERBUF_IOC_MAGIC, 0x02, struct hyperbuf_pool_bell_info)
#define HYPERBUF_IOC_POOL_IRQFD     _IOW(HYPERBUF_IOC_MAGIC, 0x03, struct hyperbuf_pool_irqfd)
#define HYPERBUF_IOC_POOL_RING      _IOW(HYPERBUF_IOC_MAGIC, 0x04, struct hyperbuf_pool_ring)
#define HYPERBUF_IOC_FENCE_CREATE  _IOWR(HYPERBUF_IOC_MAGIC, 0x10, struct hyperbuf_fence_create)
#define HYPERBUF_IOC_FENCE_SIGNAL  _IOW(HYPERBUF_IOC_MAGIC, 0x11, struct hyperbuf_fence_signal)
#define HYPERBUF_IOC_DMABUF_RDONLY _IOWR(HYPERBUF_IOC_MAGIC, 0x20, struct hyperbuf_dmabuf_rdonly)

#endif
