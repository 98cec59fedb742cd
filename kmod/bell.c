// SPDX-License-Identifier: GPL-2.0
/*
 * Doorbells of a pool's ivshmem device (docs/DMABUF.md, "Doorbells"): the device's MSI-X
 * vectors, each delivered to an eventfd that one open file of the pool's node attached
 * (POOL_IRQFD), and its Doorbell register, which rings a vector of another member of the group
 * (POOL_RING). QEMU's ivshmem-doorbell raises nothing but MSI-X, and only once a driver
 * enabled it: user space cannot take these interrupts through sysfs or uio_pci_generic.
 *
 * The interrupt handler only reads an RCU-protected eventfd pointer and signals it; attaching
 * and detaching take bell_lock and wait for a grace period before putting the old eventfd, so
 * a handler never signals a freed one. A ring writes BAR0 under bell_lock, which removal takes
 * before it unmaps it. A pool without MSI-X (or with no BAR0) binds as before,
 * without doorbells (POOL_BELL_INFO says vectors 0).
 */
#include <linux/eventfd.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/uaccess.h>

#include "hyperbuf.h"

#define HB_REGS_BAR      0
#define HB_REG_IVPOS     0x08
#define HB_REG_DOORBELL  0x0c
#define HB_REGS_LEN      0x10
#define HB_MAX_PEER      0xffffu
#define HB_MAX_VECTOR    0xffffu

static irqreturn_t hb_bell_irq(int irq, void *data)
{
	struct hb_bell *bell = data;
	struct eventfd_ctx *ctx;

	rcu_read_lock();
	ctx = rcu_dereference(bell->ctx);
	if (ctx)
		eventfd_signal(ctx, 1);
	rcu_read_unlock();
	return IRQ_HANDLED;
}

/* Best effort: a pool whose device has no MSI-X keeps working without doorbells. */
void hb_bells_setup(struct pci_dev *pdev, struct hb_pool *pool)
{
	int n, k;

	mutex_init(&pool->bell_lock);
	if (pci_resource_len(pdev, HB_REGS_BAR) < HB_REGS_LEN)
		return;
	pool->regs = pci_iomap(pdev, HB_REGS_BAR, HB_REGS_LEN);
	if (!pool->regs)
		return;
	pool->peer = readl(pool->regs + HB_REG_IVPOS);
	n = pci_msix_vec_count(pdev);
	if (n <= 0)
		return;
	n = min(n, HB_MAX_BELLS);
	/* An MSI is a memory write by the device: without bus mastering the platform drops it
	 * (QEMU does, silently). */
	pci_set_master(pdev);
	n = pci_alloc_irq_vectors(pdev, 1, n, PCI_IRQ_MSIX);
	if (n < 0) {
		dev_info(&pdev->dev, "no MSI-X vectors (%d): no doorbells\n", n);
		return;
	}
	for (k = 0; k < n; k++) {
		pool->bell[k].pool = pool;
		if (request_irq(pci_irq_vector(pdev, k), hb_bell_irq, 0, pool->name,
				&pool->bell[k]))
			break;
	}
	if (k < n) {
		dev_info(&pdev->dev, "cannot take vector %d: no doorbells\n", k);
		while (k--)
			free_irq(pci_irq_vector(pdev, k), &pool->bell[k]);
		pci_free_irq_vectors(pdev);
		return;
	}
	pool->vectors = n;
}

static void hb_bell_set(struct hb_pool *pool, unsigned int k, struct eventfd_ctx *ctx,
			struct file *owner)
{
	struct eventfd_ctx *old = rcu_dereference_protected(pool->bell[k].ctx,
							    lockdep_is_held(&pool->bell_lock));

	rcu_assign_pointer(pool->bell[k].ctx, ctx);
	pool->bell[k].owner = owner;
	if (old) {
		/* No handler still holds old once the grace period is over. */
		synchronize_rcu();
		eventfd_ctx_put(old);
	}
}

void hb_bells_remove(struct pci_dev *pdev, struct hb_pool *pool)
{
	void __iomem *regs;
	unsigned int k;

	for (k = 0; k < pool->vectors; k++)
		free_irq(pci_irq_vector(pdev, k), &pool->bell[k]);
	if (pool->vectors)
		pci_free_irq_vectors(pdev);
	mutex_lock(&pool->bell_lock);
	for (k = 0; k < pool->vectors; k++)
		hb_bell_set(pool, k, NULL, NULL);
	pool->vectors = 0;
	/* A ring in flight holds bell_lock while it writes: none writes to an unmapped BAR0. */
	regs = pool->regs;
	pool->regs = NULL;
	mutex_unlock(&pool->bell_lock);
	if (regs)
		pci_iounmap(pdev, regs);
}

/* A file's eventfds go with the file. */
void hb_bells_release(struct hb_pool *pool, struct file *file)
{
	unsigned int k;

	mutex_lock(&pool->bell_lock);
	for (k = 0; k < pool->vectors; k++)
		if (pool->bell[k].owner == file)
			hb_bell_set(pool, k, NULL, NULL);
	mutex_unlock(&pool->bell_lock);
}

long hb_bell_info(struct hb_pool *pool, void __user *uarg)
{
	struct hyperbuf_pool_bell_info info = {
	    .peer = pool->peer,
	    .vectors = READ_ONCE(pool->dead) ? 0 : pool->vectors,
	};

	if (copy_to_user(uarg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

long hb_bell_irqfd(struct hb_pool *pool, struct file *file, void __user *uarg)
{
	struct hyperbuf_pool_irqfd a;
	struct eventfd_ctx *ctx = NULL;
	long r = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.reserved || a.fd < -1)
		return -EINVAL;
	if (a.fd >= 0) {
		ctx = eventfd_ctx_fdget(a.fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	}
	mutex_lock(&pool->bell_lock);
	if (READ_ONCE(pool->dead) || a.vector >= pool->vectors)
		r = READ_ONCE(pool->dead) || !pool->vectors ? -ENODEV : -EINVAL;
	else if (pool->bell[a.vector].owner && pool->bell[a.vector].owner != file)
		r = -EBUSY;
	else if (ctx || pool->bell[a.vector].owner == file)
		hb_bell_set(pool, a.vector, ctx, ctx ? file : NULL);
	mutex_unlock(&pool->bell_lock);
	if (r && ctx)
		eventfd_ctx_put(ctx);
	return r;
}

long hb_bell_ring(struct hb_pool *pool, struct file *file, void __user *uarg)
{
	struct hyperbuf_pool_ring a;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.reserved || a.peer > HB_MAX_PEER || a.vector > HB_MAX_VECTOR)
		return -EINVAL;
	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	/* Under bell_lock: a device being removed unmaps BAR0 only after the last ring. */
	mutex_lock(&pool->bell_lock);
	if (READ_ONCE(pool->dead) || !pool->regs) {
		mutex_unlock(&pool->bell_lock);
		return -ENODEV;
	}
	/* QEMU drops a ring for a peer or vector it does not know. */
	writel(a.peer << 16 | a.vector, pool->regs + HB_REG_DOORBELL);
	mutex_unlock(&pool->bell_lock);
	return 0;
}
