/*
 * sync_files for hyperbuf fences (docs/DMABUF.md): hb_sync_file, and the kernel fences the
 * library signals when a sync completes.
 *
 * hyperbuf.ko's /dev/hyperbuf/ctl makes a dma_fence per request, handed out as a sync_file,
 * that only the file which made it can signal. The library opens it once per client and
 * signals each fence when the daemon's completion of the hyperbuf fence reaches it, that is
 * inside a library call on the client, as for hb_sync_fd. If the process dies (or calls
 * hb_disconnect) first, the kernel errors the fences with EPIPE: a sync_file never hangs
 * because its signaller is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/log.h"
#include "kmod/hyperbuf_kmod.h"
#include "libclient/client.h"

struct hbl_kfences {
	size_t n, cap;
	uint64_t id[];
};

static int ctl_open(struct hb_client *c)
{
	int fd, e;

	if (c->kern.ctl_fd >= 0)
		return c->kern.ctl_fd;
	fd = open(HYPERBUF_CTL_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		log_warn("sync_file: %s: %s: sync_files need hyperbuf.ko (docs/DMABUF.md)",
			 HYPERBUF_CTL_PATH, strerror(e));
		return e == ENOENT || e == ENXIO ? -ENODEV : -e;
	}
	c->kern.ctl_fd = fd;
	return fd;
}

static void kfence_signal(struct hb_client *c, uint64_t id, int status)
{
	struct hyperbuf_fence_signal sig = {.id = id, .status = status < 0 ? status : 0};

	/* ENOENT: it timed out in the kernel already (fence_timeout_ms). */
	if (ioctl(c->kern.ctl_fd, HYPERBUF_IOC_FENCE_SIGNAL, &sig) < 0 && errno != ENOENT)
		log_warn("sync_file: signalling fence %llu: %s", (unsigned long long)id,
			 strerror(errno));
}

/* Room for one more id, so that adding it cannot fail later. */
static int kfences_reserve(struct hb_sync *s)
{
	struct hbl_kfences *kf = s->kf, *grown;
	size_t cap;

	if (kf && kf->n < kf->cap)
		return 0;
	cap = kf ? kf->cap * 2 : 2;
	grown = realloc(kf, sizeof(*kf) + cap * sizeof(kf->id[0]));
	if (!grown)
		return -ENOMEM;
	if (!kf)
		grown->n = 0;
	grown->cap = cap;
	s->kf = grown;
	return 0;
}

int hbl_sync_file_locked(struct hb_client *c, struct hb_sync *s)
{
	struct hyperbuf_fence_create fc = {0};
	int ctl = ctl_open(c), st;

	if (ctl < 0)
		return ctl;
	if (kfences_reserve(s) < 0)
		return -ENOMEM;
	/* The timeline name SYNC_IOC_FILE_INFO shows: which hyperbuf fence it is. */
	if (s->point)
		snprintf(fc.name, sizeof(fc.name), "hb:%llx:%llu",
			 (unsigned long long)s->point->timeline,
			 (unsigned long long)s->point->value);
	else
		snprintf(fc.name, sizeof(fc.name), "hyperbuf");
	if (ioctl(ctl, HYPERBUF_IOC_FENCE_CREATE, &fc) < 0)
		return -errno;
	st = hbl_sync_status(s);
	if (st != 0) {
		kfence_signal(c, fc.id, st);
		return fc.fd;
	}
	/* The sync stays alive, even once its handle is closed, until it signals this. */
	if (s->kf->n == 0)
		s->refs++;
	s->kf->id[s->kf->n++] = fc.id;
	return fc.fd;
}

unsigned hbl_kfences_complete(struct hb_client *c, struct hb_sync *s, int status)
{
	struct hbl_kfences *kf = s->kf;

	if (!kf || kf->n == 0)
		return 0;
	for (size_t i = 0; i < kf->n; i++)
		kfence_signal(c, kf->id[i], status);
	kf->n = 0;
	return 1;
}

void hbl_kfences_free(struct hbl_kfences *kf)
{
	free(kf);
}

HBL_PUBLIC int hb_sync_file(struct hb_sync *s)
{
	struct hb_client *c;
	int r;

	if (!s || !s->open)
		return hbl_fail(-EINVAL);
	c = s->client;
	hbl_lock(c);
	r = hbl_sync_file_locked(c, s);
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : r;
}
