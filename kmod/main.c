// SPDX-License-Identifier: GPL-2.0
/*
 * hyperbuf.ko: dma-bufs and sync_files for hyperbuf (docs/DMABUF.md). This file: the module,
 * its parameters and /dev/hyperbuf/ctl, the half that needs no device.
 */
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "hyperbuf.h"

unsigned int hb_fence_timeout_ms = 10000;
module_param_named(fence_timeout_ms, hb_fence_timeout_ms, uint, 0644);
MODULE_PARM_DESC(fence_timeout_ms,
		 "A fence not signalled within this time errors with -ETIMEDOUT (0: never; default 10000, as vgem)");

unsigned int hb_max_fences = 65536;
module_param_named(max_fences, hb_max_fences, uint, 0644);
MODULE_PARM_DESC(max_fences, "Pending fences one open /dev/hyperbuf/ctl may have (default 65536)");

static int hb_ctl_open(struct inode *inode, struct file *file)
{
	struct hb_fence_ctx *ctx = hb_fence_ctx_new();

	if (!ctx)
		return -ENOMEM;
	file->private_data = ctx;
	return 0;
}

static int hb_ctl_release(struct inode *inode, struct file *file)
{
	hb_fence_ctx_release(file->private_data);
	return 0;
}

static long hb_ctl_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case HYPERBUF_IOC_FENCE_CREATE:
		return hb_fence_create(file->private_data, uarg);
	case HYPERBUF_IOC_FENCE_SIGNAL:
		return hb_fence_signal(file->private_data, uarg);
	case HYPERBUF_IOC_DMABUF_RDONLY:
		return hb_dmabuf_rdonly(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations hb_ctl_fops = {
	.owner = THIS_MODULE,
	.open = hb_ctl_open,
	.release = hb_ctl_release,
	.unlocked_ioctl = hb_ctl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/* Root's by default; configs/99-hyperbuf.rules gives it to the group hyperbuf. */
static struct miscdevice hb_ctl = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "hyperbuf-ctl",
	.nodename = "hyperbuf/ctl",
	.mode = 0600,
	.fops = &hb_ctl_fops,
};

static int __init hb_init(void)
{
	int r = misc_register(&hb_ctl);

	if (r)
		return r;
	r = hb_pool_driver_register();
	if (r)
		misc_deregister(&hb_ctl);
	return r;
}

static void __exit hb_exit(void)
{
	hb_pool_driver_unregister();
	misc_deregister(&hb_ctl);
	/* Fences are freed by RCU callbacks in this module's text. */
	rcu_barrier();
}

module_init(hb_init);
module_exit(hb_exit);

MODULE_DESCRIPTION("hyperbuf: dma-bufs of ivshmem pools, and sync_files signalled from user space");
MODULE_LICENSE("GPL");
MODULE_VERSION("0.1.0");
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
MODULE_IMPORT_NS("DMA_BUF");
#else
MODULE_IMPORT_NS(DMA_BUF);
#endif
