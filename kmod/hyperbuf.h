/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hyperbuf.ko internals. The module has two halves that share nothing but this header:
 *
 * - pool.c: a PCI driver for ivshmem devices whose BAR2 carries a hyperbuf pool (KVM guests).
 *   It gives the BAR struct pages (memremap_pages, MEMORY_DEVICE_GENERIC), offers a cached
 *   mmap of the pool and makes dma-bufs of page lists (dmabuf.c).
 * - main.c + fence.c: /dev/hyperbuf/ctl, on every machine (host or guest, no device needed):
 *   dma_fences that user space signals (sync_files), and read-only views of dma-bufs
 *   (dmabuf.c).
 *
 * Lifetimes: a dma-buf holds the module (the dma-buf core's owner reference), its pool (kref)
 * and the pool's dev_pagemap (get_dev_pagemap), so neither rmmod nor a device removal can pull
 * pages from under it: rmmod is refused while one exists, and a hot-unplug waits for the last
 * one in memunmap_pages. A fence holds the module until it is freed (an RCU callback drops it,
 * after the grace period delete_module waits for).
 */
#ifndef HYPERBUF_INTERNAL_H
#define HYPERBUF_INTERNAL_H

#include <linux/dma-buf.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/memremap.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/version.h>

#include "hyperbuf_kmod.h"

/* vm_flags became read-only in 6.3; the helpers did not exist before. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define hb_vm_flags_set(vma, f)   vm_flags_set(vma, f)
#define hb_vm_flags_clear(vma, f) vm_flags_clear(vma, f)
#else
#define hb_vm_flags_set(vma, f)   ((vma)->vm_flags |= (f))
#define hb_vm_flags_clear(vma, f) ((vma)->vm_flags &= ~(f))
#endif

/* A pool device's MSI-X vectors at most (QEMU's ivshmem-doorbell takes vectors=N). */
#define HB_MAX_BELLS 8

struct hb_pool;

/* One MSI-X vector: the eventfd its interrupts signal, and the file that attached it. */
struct hb_bell {
	struct hb_pool *pool;
	struct eventfd_ctx __rcu *ctx;
	struct file *owner; /* under pool->bell_lock */
};

struct hb_pool {
	struct kref ref;
	struct pci_dev *pdev;
	phys_addr_t base;
	resource_size_t size;
	unsigned long npages;
	bool has_pages; /* memremap_pages succeeded: pgmap is live */
	bool dead;      /* removed: no new mmap, no new dma-buf (READ_ONCE/WRITE_ONCE) */
	struct dev_pagemap pgmap;
	struct hyperbuf_pool_info info;
	struct miscdevice misc;
	/* bell.c: BAR0's registers, this device's ivshmem peer id, its vectors */
	void __iomem *regs;
	u32 peer;
	unsigned int vectors;
	struct mutex bell_lock; /* attaching and detaching eventfds */
	struct hb_bell bell[HB_MAX_BELLS];
	char name[48];
	char nodename[64];
};

/* main.c: module parameters */
extern unsigned int hb_fence_timeout_ms;
extern unsigned int hb_max_fences;

/* pool.c */
int hb_pool_driver_register(void);
void hb_pool_driver_unregister(void);
void hb_pool_put(struct hb_pool *pool);

/* bell.c: doorbells (MSI-X vectors to eventfds, the Doorbell register) */
void hb_bells_setup(struct pci_dev *pdev, struct hb_pool *pool);
void hb_bells_remove(struct pci_dev *pdev, struct hb_pool *pool);
void hb_bells_release(struct hb_pool *pool, struct file *file);
long hb_bell_info(struct hb_pool *pool, void __user *uarg);
long hb_bell_irqfd(struct hb_pool *pool, struct file *file, void __user *uarg);
long hb_bell_ring(struct hb_pool *pool, struct file *file, void __user *uarg);

/* dmabuf.c */
long hb_pool_dmabuf(struct hb_pool *pool, struct file *file, void __user *uarg);
long hb_dmabuf_rdonly(void __user *uarg);
/* Installs buf's file at a new O_CLOEXEC fd after *out was copied to user space; on failure
 * puts the dma-buf (its release undoes everything). */
int hb_dmabuf_install(struct dma_buf *buf, __s32 __user *out);

/* fence.c: one context per open /dev/hyperbuf/ctl */
struct hb_fence_ctx;
struct hb_fence_ctx *hb_fence_ctx_new(void);
void hb_fence_ctx_release(struct hb_fence_ctx *ctx);
long hb_fence_create(struct hb_fence_ctx *ctx, void __user *uarg);
long hb_fence_signal(struct hb_fence_ctx *ctx, void __user *uarg);

#endif
