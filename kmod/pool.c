// SPDX-License-Identifier: GPL-2.0
/*
 * The guest half: a PCI driver for ivshmem devices (1af4:1110) whose BAR2 holds a hyperbuf
 * pool. It binds only a device whose first page has the pool header (so other ivshmem users
 * are left alone), gives BAR2 struct pages with memremap_pages (MEMORY_DEVICE_GENERIC, as
 * Looking Glass's KVMFR does), and makes /dev/hyperbuf/pool-<PCI address>:
 *
 *   mmap   the pool, write-back cached, PROT_WRITE only through a file opened read-write
 *   ioctl  POOL_INFO, POOL_DMABUF (dmabuf.c), POOL_BELL_INFO, POOL_IRQFD, POOL_RING (bell.c)
 *
 * BAR2 is guest-physical memory QEMU maps from the pool memfd: RAM to the host, so a cached
 * mapping is coherent with the host and the other guests. (Once BAR2 is registered write-back
 * here, the PCI core's sysfs resource2/resource2_wc mappings, uncached and write-combining, are
 * refused by PAT: libhyperbuf uses this node instead when it exists.)
 *
 * Binding and unbinding through sysfs is disabled (suppress_bind_attrs): the device goes away
 * only with the module, which cannot be unloaded while a file or a dma-buf of it is open, or
 * by a hot-unplug, which waits in memunmap_pages for the last dma-buf's pagemap reference.
 */
#include <linux/io.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "hyperbuf.h"

#define HB_IVSHMEM_VENDOR 0x1af4
#define HB_IVSHMEM_DEVICE 0x1110
#define HB_POOL_BAR       2

static void hb_pool_free(struct kref *ref)
{
	struct hb_pool *pool = container_of(ref, struct hb_pool, ref);

	pci_dev_put(pool->pdev);
	kfree(pool);
}

void hb_pool_put(struct hb_pool *pool)
{
	kref_put(&pool->ref, hb_pool_free);
}

static int hb_pool_open(struct inode *inode, struct file *file)
{
	/* misc_open holds misc_mtx: the device cannot be deregistered under us. */
	struct hb_pool *pool = container_of(file->private_data, struct hb_pool, misc);

	kref_get(&pool->ref);
	file->private_data = pool;
	return 0;
}

static int hb_pool_release(struct inode *inode, struct file *file)
{
	hb_bells_release(file->private_data, file);
	hb_pool_put(file->private_data);
	return 0;
}

static int hb_pool_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct hb_pool *pool = file->private_data;
	unsigned long len = vma->vm_end - vma->vm_start;

	if (READ_ONCE(pool->dead))
		return -ENODEV;
	/* Shared only (a read-only file's shared mapping has VM_MAYSHARE without VM_SHARED). */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff >= pool->npages || len >> PAGE_SHIFT > pool->npages - vma->vm_pgoff)
		return -EINVAL;
	/* vm_page_prot is the shared default: write-back. remap_pfn_range sets VM_IO, VM_PFNMAP,
	 * VM_DONTEXPAND and VM_DONTDUMP. */
	return remap_pfn_range(vma, vma->vm_start, PHYS_PFN(pool->base) + vma->vm_pgoff, len,
			       vma->vm_page_prot);
}

static long hb_pool_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct hb_pool *pool = file->private_data;

	switch (cmd) {
	case HYPERBUF_IOC_POOL_INFO:
		if (READ_ONCE(pool->dead))
			return -ENODEV;
		if (copy_to_user((void __user *)arg, &pool->info, sizeof(pool->info)))
			return -EFAULT;
		return 0;
	case HYPERBUF_IOC_POOL_DMABUF:
		return hb_pool_dmabuf(pool, file, (void __user *)arg);
	case HYPERBUF_IOC_POOL_BELL_INFO:
		return hb_bell_info(pool, (void __user *)arg);
	case HYPERBUF_IOC_POOL_IRQFD:
		return hb_bell_irqfd(pool, file, (void __user *)arg);
	case HYPERBUF_IOC_POOL_RING:
		return hb_bell_ring(pool, file, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations hb_pool_fops = {
	.owner = THIS_MODULE,
	.open = hb_pool_open,
	.release = hb_pool_release,
	.mmap = hb_pool_mmap,
	.unlocked_ioctl = hb_pool_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/* Reads the header in the BAR's first page; 0 if it is a hyperbuf pool of this BAR's size. */
static int hb_pool_check_header(struct pci_dev *pdev, struct hb_pool *pool)
{
	struct hyperbuf_pool_header h;
	void __iomem *p = pci_iomap_range(pdev, HB_POOL_BAR, 0, PAGE_SIZE);

	if (!p)
		return -ENOMEM;
	memcpy_fromio(&h, p, sizeof(h));
	pci_iounmap(pdev, p);
	if (memcmp(h.magic, HYPERBUF_POOL_MAGIC, sizeof(h.magic)) ||
	    le32_to_cpu(h.layout) != HYPERBUF_POOL_LAYOUT || le64_to_cpu(h.size) != pool->size ||
	    le32_to_cpu(h.page_size) != PAGE_SIZE)
		return -ENODEV;
	pool->info.group = le32_to_cpu(h.group);
	pool->info.instance = le32_to_cpu(h.instance);
	return 0;
}

/* struct pages for the BAR, so importers get scatterlists. memory hotplug works in 2 MiB
 * subsections: a smaller or unaligned BAR still gets the cached mmap, without dma-bufs. */
static void hb_pool_add_pages(struct pci_dev *pdev, struct hb_pool *pool)
{
	void *addr;

	if (!IS_ALIGNED(pool->base, SZ_2M) || !IS_ALIGNED(pool->size, SZ_2M)) {
		dev_info(&pdev->dev, "pool of %llu bytes is not 2 MiB aligned: no dma-bufs\n",
			 (unsigned long long)pool->size);
		return;
	}
	pool->pgmap.type = MEMORY_DEVICE_GENERIC;
	pool->pgmap.range.start = pool->base;
	pool->pgmap.range.end = pool->base + pool->size - 1;
	pool->pgmap.nr_range = 1;
	addr = memremap_pages(&pool->pgmap, dev_to_node(&pdev->dev));
	if (IS_ERR(addr)) {
		dev_warn(&pdev->dev, "memremap_pages failed (%ld): no dma-bufs\n", PTR_ERR(addr));
		return;
	}
	pool->has_pages = true;
	pool->info.flags |= HYPERBUF_POOL_PAGES;
}

static int hb_pool_setup(struct pci_dev *pdev, struct hb_pool *pool)
{
	int r;

	pool->base = pci_resource_start(pdev, HB_POOL_BAR);
	pool->size = pci_resource_len(pdev, HB_POOL_BAR);
	if (!(pci_resource_flags(pdev, HB_POOL_BAR) & IORESOURCE_MEM) ||
	    pool->size < 2 * PAGE_SIZE || !is_power_of_2(pool->size))
		return -ENODEV;
	pool->npages = pool->size >> PAGE_SHIFT;
	r = hb_pool_check_header(pdev, pool);
	if (r)
		return r;
	pool->info.size = pool->size;
	pool->info.page_size = PAGE_SIZE;
	pool->info.abi = HYPERBUF_KMOD_ABI;
	r = pci_request_region(pdev, HB_POOL_BAR, "hyperbuf");
	if (r)
		return r;
	hb_pool_add_pages(pdev, pool);
	snprintf(pool->name, sizeof(pool->name), "hyperbuf-pool-%s", pci_name(pdev));
	snprintf(pool->nodename, sizeof(pool->nodename), "hyperbuf/pool-%s", pci_name(pdev));
	pool->misc.minor = MISC_DYNAMIC_MINOR;
	pool->misc.name = pool->name;
	pool->misc.nodename = pool->nodename;
	pool->misc.mode = 0600; /* configs/99-hyperbuf.rules: group hyperbuf */
	pool->misc.fops = &hb_pool_fops;
	pool->misc.parent = &pdev->dev;
	hb_bells_setup(pdev, pool);
	r = misc_register(&pool->misc);
	if (r) {
		hb_bells_remove(pdev, pool);
		if (pool->has_pages)
			memunmap_pages(&pool->pgmap);
		pci_release_region(pdev, HB_POOL_BAR);
	}
	return r;
}

static int hb_pool_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct hb_pool *pool;
	int r;

	r = pcim_enable_device(pdev);
	if (r)
		return r;
	pool = kzalloc(sizeof(*pool), GFP_KERNEL);
	if (!pool)
		return -ENOMEM;
	kref_init(&pool->ref);
	pool->pdev = pci_dev_get(pdev);
	r = hb_pool_setup(pdev, pool);
	if (r) {
		if (r == -ENODEV)
			dev_info(&pdev->dev, "BAR2 holds no hyperbuf pool: not binding\n");
		hb_pool_put(pool);
		return r;
	}
	pci_set_drvdata(pdev, pool);
	dev_info(&pdev->dev, "hyperbuf pool of group %u, %llu MiB%s: /dev/%s\n", pool->info.group,
		 (unsigned long long)(pool->size >> 20),
		 pool->has_pages ? ", dma-bufs" : "", pool->nodename);
	return 0;
}

static void hb_pool_remove(struct pci_dev *pdev)
{
	struct hb_pool *pool = pci_get_drvdata(pdev);

	WRITE_ONCE(pool->dead, true);
	misc_deregister(&pool->misc);
	hb_bells_remove(pdev, pool);
	/* Waits for every dma-buf of the pool to be released (each holds a pagemap ref). */
	if (pool->has_pages)
		memunmap_pages(&pool->pgmap);
	pci_release_region(pdev, HB_POOL_BAR);
	hb_pool_put(pool);
}

static const struct pci_device_id hb_pool_ids[] = {
	{ PCI_DEVICE(HB_IVSHMEM_VENDOR, HB_IVSHMEM_DEVICE) },
	{ 0 }
};
MODULE_DEVICE_TABLE(pci, hb_pool_ids);

static struct pci_driver hb_pool_driver = {
	.name = "hyperbuf",
	.id_table = hb_pool_ids,
	.probe = hb_pool_probe,
	.remove = hb_pool_remove,
	.driver.suppress_bind_attrs = true,
};

int hb_pool_driver_register(void)
{
	return pci_register_driver(&hb_pool_driver);
}

void hb_pool_driver_unregister(void)
{
	pci_unregister_driver(&hb_pool_driver);
}
