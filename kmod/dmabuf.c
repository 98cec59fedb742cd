// SPDX-License-Identifier: GPL-2.0
/*
 * The module's two kinds of dma-buf:
 *
 * - pool dma-bufs (POOL_DMABUF): a list of pages of a pool's BAR2, which has struct pages
 *   (pool.c). Importers get a scatterlist of those pages; a CPU mmap inserts their PFNs
 *   (VM_PFNMAP: no struct page reference counts are touched in user mappings). The BAR is
 *   memory QEMU maps for the guest, coherent with the CPU: begin/end_cpu_access have nothing
 *   to flush, and the dma-buf core still waits for the reservation's fences in
 *   DMA_BUF_IOCTL_SYNC.
 * - read-only views (DMABUF_RDONLY): a dma-buf that forwards to another one, except that its
 *   mmap refuses writing. udmabuf, which the host and emulated VMs use, has no read-only mode.
 *
 * "Read-only" is a property of CPU mappings: a device an importer programs can still be told
 * to write (DMA is not mediated here), exactly as a read-only hyperbuf import is enforced by
 * the importer's page tables and not by the hypervisor.
 */
#include <linux/file.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "hyperbuf.h"

/* ---- installing a dma-buf's fd ------------------------------------------------------ */

int hb_dmabuf_install(struct dma_buf *buf, __s32 __user *out)
{
	int fd = get_unused_fd_flags(O_CLOEXEC);

	if (fd < 0) {
		dma_buf_put(buf);
		return fd;
	}
	if (put_user(fd, out)) {
		put_unused_fd(fd);
		dma_buf_put(buf);
		return -EFAULT;
	}
	fd_install(fd, buf->file);
	return 0;
}

/* ---- pool dma-bufs --------------------------------------------------------------------- */

struct hb_pool_buf {
	struct hb_pool *pool;
	struct dev_pagemap *pgmap;
	struct page **pages;
	unsigned long count;
	bool writable;
};

static struct sg_table *hb_pool_map(struct dma_buf_attachment *at, enum dma_data_direction dir)
{
	struct hb_pool_buf *buf = at->dmabuf->priv;
	struct sg_table *sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	int r;

	if (!sgt)
		return ERR_PTR(-ENOMEM);
	r = sg_alloc_table_from_pages(sgt, buf->pages, buf->count, 0, buf->count << PAGE_SHIFT,
				      GFP_KERNEL);
	if (r)
		goto err_free;
	r = dma_map_sgtable(at->dev, sgt, dir, 0);
	if (r)
		goto err_table;
	return sgt;

err_table:
	sg_free_table(sgt);
err_free:
	kfree(sgt);
	return ERR_PTR(r);
}

static void hb_pool_unmap(struct dma_buf_attachment *at, struct sg_table *sgt,
			  enum dma_data_direction dir)
{
	dma_unmap_sgtable(at->dev, sgt, dir, 0);
	sg_free_table(sgt);
	kfree(sgt);
}

/* Also undoes a half-made one (no pgmap or pool yet). */
static void hb_pool_buf_free(struct hb_pool_buf *buf)
{
	if (buf->pgmap)
		put_dev_pagemap(buf->pgmap);
	if (buf->pool)
		hb_pool_put(buf->pool);
	kvfree(buf->pages);
	kfree(buf);
}

static void hb_pool_buf_release(struct dma_buf *dmabuf)
{
	hb_pool_buf_free(dmabuf->priv);
}

static vm_fault_t hb_pool_fault(struct vm_fault *vmf)
{
	struct hb_pool_buf *buf = vmf->vma->vm_private_data;

	if (vmf->pgoff >= buf->count)
		return VM_FAULT_SIGBUS;
	return vmf_insert_pfn(vmf->vma, vmf->address, page_to_pfn(buf->pages[vmf->pgoff]));
}

static const struct vm_operations_struct hb_pool_vm_ops = {
	.fault = hb_pool_fault,
};

static int hb_pool_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	struct hb_pool_buf *buf = dmabuf->priv;

	/* A read-only file's shared mapping has VM_MAYSHARE without VM_SHARED. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (!buf->writable) {
		if (vma->vm_flags & VM_WRITE)
			return -EACCES;
		hb_vm_flags_clear(vma, VM_MAYWRITE);
	}
	hb_vm_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &hb_pool_vm_ops;
	vma->vm_private_data = buf;
	return 0;
}

static int hb_pool_cpu_access(struct dma_buf *dmabuf, enum dma_data_direction dir)
{
	return 0;
}

static const struct dma_buf_ops hb_pool_buf_ops = {
	.cache_sgt_mapping = true,
	.map_dma_buf = hb_pool_map,
	.unmap_dma_buf = hb_pool_unmap,
	.release = hb_pool_buf_release,
	.mmap = hb_pool_mmap,
	.begin_cpu_access = hb_pool_cpu_access,
	.end_cpu_access = hb_pool_cpu_access,
};

/* Reads and checks the page list: every page inside the BAR, not the header, not twice. */
static int hb_pool_pages(struct hb_pool *pool, const struct hyperbuf_pool_dmabuf *arg,
			 struct page **pages)
{
	unsigned long *seen;
	u32 *list;
	unsigned long i;
	int r = 0;

	list = kvmalloc_array(arg->count, sizeof(*list), GFP_KERNEL);
	seen = kvcalloc(BITS_TO_LONGS(pool->npages), sizeof(unsigned long), GFP_KERNEL);
	if (!list || !seen) {
		r = -ENOMEM;
		goto out;
	}
	if (copy_from_user(list, u64_to_user_ptr(arg->pages), (size_t)arg->count * sizeof(*list))) {
		r = -EFAULT;
		goto out;
	}
	for (i = 0; i < arg->count; i++) {
		if (list[i] == 0 || list[i] >= pool->npages) {
			r = -ERANGE;
			break;
		}
		if (__test_and_set_bit(list[i], seen)) {
			r = -EEXIST;
			break;
		}
		pages[i] = pfn_to_page(PHYS_PFN(pool->base) + list[i]);
	}
out:
	kvfree(seen);
	kvfree(list);
	return r;
}

static int hb_pool_buf_fill(struct hb_pool *pool, const struct hyperbuf_pool_dmabuf *arg,
			    struct hb_pool_buf *buf)
{
	int r;

	buf->count = arg->count;
	buf->writable = arg->flags & HYPERBUF_DMABUF_WRITE;
	buf->pages = kvmalloc_array(arg->count, sizeof(*buf->pages), GFP_KERNEL);
	if (!buf->pages)
		return -ENOMEM;
	r = hb_pool_pages(pool, arg, buf->pages);
	if (r)
		return r;
	/* Fails once the device is being removed: its pages are going away. */
	buf->pgmap = get_dev_pagemap(PHYS_PFN(pool->base), NULL);
	if (!buf->pgmap)
		return -ENODEV;
	kref_get(&pool->ref);
	buf->pool = pool;
	return 0;
}

long hb_pool_dmabuf(struct hb_pool *pool, struct file *file, void __user *uarg)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	struct hyperbuf_pool_dmabuf arg;
	struct hyperbuf_pool_dmabuf __user *u = uarg;
	struct hb_pool_buf *buf;
	struct dma_buf *dmabuf;
	int r;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if ((arg.flags & ~HYPERBUF_DMABUF_WRITE) || arg.reserved || arg.count == 0)
		return -EINVAL;
	if (arg.count > pool->npages - 1)
		return -E2BIG;
	if ((arg.flags & HYPERBUF_DMABUF_WRITE) && !(file->f_mode & FMODE_WRITE))
		return -EACCES;
	if (READ_ONCE(pool->dead) || !pool->has_pages)
		return -ENODEV;
	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	r = hb_pool_buf_fill(pool, &arg, buf);
	if (r) {
		hb_pool_buf_free(buf);
		return r;
	}
	exp.exp_name = "hyperbuf-pool";
	exp.ops = &hb_pool_buf_ops;
	exp.size = buf->count << PAGE_SHIFT;
	exp.flags = buf->writable ? O_RDWR : O_RDONLY;
	exp.priv = buf;
	dmabuf = dma_buf_export(&exp);
	if (IS_ERR(dmabuf)) {
		hb_pool_buf_free(buf);
		return PTR_ERR(dmabuf);
	}
	return hb_dmabuf_install(dmabuf, &u->fd);
}

/* ---- read-only views ------------------------------------------------------------------- */

static int hb_ro_attach(struct dma_buf *dmabuf, struct dma_buf_attachment *at)
{
	struct dma_buf_attachment *inner = dma_buf_attach(dmabuf->priv, at->dev);

	if (IS_ERR(inner))
		return PTR_ERR(inner);
	at->priv = inner;
	return 0;
}

static void hb_ro_detach(struct dma_buf *dmabuf, struct dma_buf_attachment *at)
{
	dma_buf_detach(dmabuf->priv, at->priv);
}

/* The inner dma-buf is not dynamic (checked at creation): no reservation lock is needed. */
static struct sg_table *hb_ro_map(struct dma_buf_attachment *at, enum dma_data_direction dir)
{
	return dma_buf_map_attachment(at->priv, dir);
}

static void hb_ro_unmap(struct dma_buf_attachment *at, struct sg_table *sgt,
			enum dma_data_direction dir)
{
	dma_buf_unmap_attachment(at->priv, sgt, dir);
}

static void hb_ro_release(struct dma_buf *dmabuf)
{
	dma_buf_put(dmabuf->priv);
}

static int hb_ro_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	if (vma->vm_flags & VM_WRITE)
		return -EACCES;
	hb_vm_flags_clear(vma, VM_MAYWRITE);
	/* Points the VMA at the inner dma-buf's file; VM_MAYWRITE stays cleared. */
	return dma_buf_mmap(dmabuf->priv, vma, vma->vm_pgoff);
}

static int hb_ro_begin(struct dma_buf *dmabuf, enum dma_data_direction dir)
{
	return dma_buf_begin_cpu_access(dmabuf->priv, dir);
}

static int hb_ro_end(struct dma_buf *dmabuf, enum dma_data_direction dir)
{
	return dma_buf_end_cpu_access(dmabuf->priv, dir);
}

static const struct dma_buf_ops hb_ro_ops = {
	.attach = hb_ro_attach,
	.detach = hb_ro_detach,
	.map_dma_buf = hb_ro_map,
	.unmap_dma_buf = hb_ro_unmap,
	.release = hb_ro_release,
	.mmap = hb_ro_mmap,
	.begin_cpu_access = hb_ro_begin,
	.end_cpu_access = hb_ro_end,
};

long hb_dmabuf_rdonly(void __user *uarg)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	struct hyperbuf_dmabuf_rdonly arg;
	struct hyperbuf_dmabuf_rdonly __user *u = uarg;
	struct dma_buf *inner, *dmabuf;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved)
		return -EINVAL;
	inner = dma_buf_get(arg.fd);
	if (IS_ERR(inner))
		return PTR_ERR(inner);
	if (dma_buf_is_dynamic(inner)) {
		dma_buf_put(inner);
		return -EOPNOTSUPP;
	}
	exp.exp_name = "hyperbuf-rdonly";
	exp.ops = &hb_ro_ops;
	exp.size = inner->size;
	exp.flags = O_RDONLY;
	exp.priv = inner;
	dmabuf = dma_buf_export(&exp);
	if (IS_ERR(dmabuf)) {
		dma_buf_put(inner);
		return PTR_ERR(dmabuf);
	}
	return hb_dmabuf_install(dmabuf, &u->out_fd);
}
