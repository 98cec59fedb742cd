// SPDX-License-Identifier: GPL-2.0
/*
 * Fences user space signals: each open /dev/hyperbuf/ctl is a context of pending dma_fences,
 * each handed out as a sync_file. libhyperbuf creates one per hyperbuf fence a caller wants as
 * a sync_file and signals it (with the fence's error, if any) when the daemon says that fence
 * completed.
 *
 * Exactly one of three things ends a pending fence, whoever takes it out of the context first:
 * FENCE_SIGNAL from the context's owner, the timeout (fence_timeout_ms), or the context's file
 * being closed (its process exited or died: -EPIPE). So no fence outlives its signaller
 * unsignalled, and none is signalled twice. Nothing here busy-waits: the timeout is a delayed
 * work item, a waiter sleeps in the dma_fence core.
 *
 * Every fence has its own fence context: hyperbuf fences complete in any order, and the
 * dma_fence core assumes that fences of one context signal in seqno order.
 */
#include <linux/dma-fence.h>
#include <linux/file.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sync_file.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "hyperbuf.h"

struct hb_fence_ctx {
	struct mutex lock; /* fences, pending, next_id */
	struct xarray fences;
	unsigned int pending;
	u64 next_id;
};

struct hb_fence {
	struct dma_fence base;
	spinlock_t lock;
	struct hb_fence_ctx *ctx; /* valid while the fence is in ctx->fences */
	u64 id;
	struct delayed_work timeout;
	char name[32];
};

static const char *hb_fence_driver_name(struct dma_fence *fence)
{
	return "hyperbuf";
}

static const char *hb_fence_timeline_name(struct dma_fence *fence)
{
	struct hb_fence *f = container_of(fence, struct hb_fence, base);

	return f->name[0] ? f->name : "hyperbuf";
}

static void hb_fence_free_rcu(struct rcu_head *rcu)
{
	struct dma_fence *fence = container_of(rcu, struct dma_fence, rcu);

	kfree(container_of(fence, struct hb_fence, base));
	/* Runs as an RCU callback: delete_module waits for a grace period before it frees our
	 * text, so returning from here after the put is safe. */
	module_put(THIS_MODULE);
}

static void hb_fence_release(struct dma_fence *fence)
{
	call_rcu(&fence->rcu, hb_fence_free_rcu);
}

static const struct dma_fence_ops hb_fence_ops = {
	.get_driver_name = hb_fence_driver_name,
	.get_timeline_name = hb_fence_timeline_name,
	.release = hb_fence_release,
};

/* Signals f, which the caller took out of its context (or never put there). */
static void hb_fence_end(struct hb_fence *f, int status)
{
	if (status < 0)
		dma_fence_set_error(&f->base, status);
	dma_fence_signal(&f->base);
}

/* Takes fence id out of ctx: the caller then owns the context's reference and must end it. */
static struct hb_fence *hb_fence_take(struct hb_fence_ctx *ctx, u64 id)
{
	struct hb_fence *f = NULL;

	if (id == 0 || id > ULONG_MAX)
		return NULL;
	mutex_lock(&ctx->lock);
	f = xa_erase(&ctx->fences, (unsigned long)id);
	if (f)
		ctx->pending--;
	mutex_unlock(&ctx->lock);
	return f;
}

static void hb_fence_timeout(struct work_struct *work)
{
	struct hb_fence *f = container_of(to_delayed_work(work), struct hb_fence, timeout);
	struct hb_fence_ctx *ctx = f->ctx;
	bool mine = false;

	/* The context lives until its release has cancelled this work. */
	mutex_lock(&ctx->lock);
	if (xa_load(&ctx->fences, (unsigned long)f->id) == f) {
		xa_erase(&ctx->fences, (unsigned long)f->id);
		ctx->pending--;
		mine = true;
	}
	mutex_unlock(&ctx->lock);
	if (mine) {
		hb_fence_end(f, -ETIMEDOUT);
		dma_fence_put(&f->base);
	}
}

struct hb_fence_ctx *hb_fence_ctx_new(void)
{
	struct hb_fence_ctx *ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);

	if (!ctx)
		return NULL;
	mutex_init(&ctx->lock);
	xa_init(&ctx->fences);
	return ctx;
}

/* The signaller is gone: every fence it still had errors with -EPIPE, now. */
void hb_fence_ctx_release(struct hb_fence_ctx *ctx)
{
	struct hb_fence *f;
	unsigned long id;

	mutex_lock(&ctx->lock);
	xa_for_each(&ctx->fences, id, f) {
		xa_erase(&ctx->fences, id);
		ctx->pending--;
		mutex_unlock(&ctx->lock);
		cancel_delayed_work_sync(&f->timeout);
		hb_fence_end(f, -EPIPE);
		dma_fence_put(&f->base);
		mutex_lock(&ctx->lock);
	}
	mutex_unlock(&ctx->lock);
	xa_destroy(&ctx->fences);
	mutex_destroy(&ctx->lock);
	kfree(ctx);
}

static struct hb_fence *hb_fence_new(const char *name)
{
	struct hb_fence *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (!f)
		return NULL;
	spin_lock_init(&f->lock);
	dma_fence_init(&f->base, &hb_fence_ops, &f->lock, dma_fence_context_alloc(1), 1);
	/* Released by hb_fence_free_rcu, whatever happens from here on. */
	__module_get(THIS_MODULE);
	INIT_DELAYED_WORK(&f->timeout, hb_fence_timeout);
	strscpy(f->name, name, sizeof(f->name));
	return f;
}

/* Publishes f in ctx (taking the creation reference) and tells user space its id and fd. */
static int hb_fence_publish(struct hb_fence_ctx *ctx, struct hb_fence *f,
			    struct hyperbuf_fence_create *arg, void __user *uarg)
{
	int r;

	mutex_lock(&ctx->lock);
	if (ctx->pending >= READ_ONCE(hb_max_fences)) {
		r = -ENOSPC;
		goto out;
	}
	arg->id = ++ctx->next_id;
	if (copy_to_user(uarg, arg, sizeof(*arg))) {
		r = -EFAULT;
		goto out;
	}
	r = xa_insert(&ctx->fences, (unsigned long)arg->id, f, GFP_KERNEL);
	if (r)
		goto out;
	ctx->pending++;
	f->ctx = ctx;
	f->id = arg->id;
	if (READ_ONCE(hb_fence_timeout_ms))
		schedule_delayed_work(&f->timeout,
				      msecs_to_jiffies(READ_ONCE(hb_fence_timeout_ms)));
out:
	mutex_unlock(&ctx->lock);
	return r;
}

long hb_fence_create(struct hb_fence_ctx *ctx, void __user *uarg)
{
	struct hyperbuf_fence_create arg;
	struct sync_file *sf;
	struct hb_fence *f;
	int fd, r;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || !memchr(arg.name, '\0', sizeof(arg.name)))
		return -EINVAL;
	f = hb_fence_new(arg.name);
	if (!f)
		return -ENOMEM;
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		r = fd;
		goto err_fence;
	}
	sf = sync_file_create(&f->base);
	if (!sf) {
		r = -ENOMEM;
		goto err_fd;
	}
	arg.fd = fd;
	r = hb_fence_publish(ctx, f, &arg, uarg);
	if (r)
		goto err_file;
	fd_install(fd, sf->file);
	return 0;

err_file:
	fput(sf->file);
err_fd:
	put_unused_fd(fd);
err_fence:
	hb_fence_end(f, -ECANCELED);
	dma_fence_put(&f->base);
	return r;
}

long hb_fence_signal(struct hb_fence_ctx *ctx, void __user *uarg)
{
	struct hyperbuf_fence_signal arg;
	struct hb_fence *f;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.status > 0 || arg.status < -MAX_ERRNO)
		return -EINVAL;
	f = hb_fence_take(ctx, arg.id);
	if (!f)
		return -ENOENT;
	cancel_delayed_work_sync(&f->timeout);
	hb_fence_end(f, arg.status);
	dma_fence_put(&f->base);
	return 0;
}
