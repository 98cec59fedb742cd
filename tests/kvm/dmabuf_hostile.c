/*
 * hyperbuf.ko's ioctls with hostile input (docs/DMABUF.md, "The ioctl ABI"): every case gets
 * its errno and leaves the kernel log clean (check_dmesg runs after). Then the module refuses
 * to unload while a dma-buf or a sync_file of it exists, and unloads once none does.
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/sync_file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kmod/hyperbuf_kmod.h"
#include "tests/kvm/dmabuf.h"

#define PARAMS "/sys/module/hyperbuf/parameters/"

static void pool_path(char *path, size_t len)
{
	struct dirent *e;
	DIR *d = opendir("/dev/hyperbuf");

	GCHECK(d != NULL);
	path[0] = '\0';
	while (!path[0] && (e = readdir(d)))
		if (strncmp(e->d_name, "pool-", 5) == 0)
			snprintf(path, len, "/dev/hyperbuf/%s", e->d_name);
	closedir(d);
	GCHECK(path[0]);
}

static int pool_dmabuf(int pool, const uint32_t *pages, uint32_t count, uint32_t flags)
{
	struct hyperbuf_pool_dmabuf a = {.pages = (uintptr_t)pages, .count = count, .flags = flags};

	return ioctl(pool, HYPERBUF_IOC_POOL_DMABUF, &a) < 0 ? -1 : a.fd;
}

static void write_param(const char *name, unsigned value)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), PARAMS "%s", name);
	f = fopen(path, "w");
	GCHECK(f && fprintf(f, "%u\n", value) > 0 && fclose(f) == 0);
}

static void hostile_page_lists(int pool, uint32_t npages)
{
	uint32_t ok[3] = {5, 9, 6}, bad[3];
	struct hyperbuf_pool_dmabuf a = {.pages = (uintptr_t)ok, .count = 1, .reserved = 1};
	void *gone;

	GCHECK_ERR(pool_dmabuf(pool, ok, 0, 0), EINVAL);
	GCHECK_ERR(pool_dmabuf(pool, ok, 1, 0x80), EINVAL);
	GCHECK_ERR(ioctl(pool, HYPERBUF_IOC_POOL_DMABUF, &a), EINVAL);
	GCHECK_ERR(pool_dmabuf(pool, ok, npages, 0), E2BIG);
	GCHECK_ERR(pool_dmabuf(pool, ok, 0xffffffffu, 0), E2BIG);
	GCHECK_ERR(pool_dmabuf(pool, NULL, 1, 0), EFAULT);
	GCHECK_ERR(pool_dmabuf(pool, (const uint32_t *)1, 1, 0), EFAULT);
	/* A list longer than the memory behind it, and one in memory that is gone. */
	gone = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	GCHECK(gone != MAP_FAILED && munmap((char *)gone + PAGE, PAGE) == 0);
	GCHECK_ERR(pool_dmabuf(pool, gone, PAGE / 4 + 1, 0), EFAULT);
	GCHECK(munmap(gone, PAGE) == 0);
	GCHECK_ERR(pool_dmabuf(pool, gone, 1, 0), EFAULT);
	GCHECK_ERR(ioctl(pool, HYPERBUF_IOC_POOL_DMABUF, NULL), EFAULT);
	bad[0] = npages; /* just past the BAR */
	GCHECK_ERR(pool_dmabuf(pool, bad, 1, 0), ERANGE);
	bad[0] = 0xffffffffu;
	GCHECK_ERR(pool_dmabuf(pool, bad, 1, 0), ERANGE);
	bad[0] = 0; /* the header */
	GCHECK_ERR(pool_dmabuf(pool, bad, 1, 0), ERANGE);
	memcpy(bad, (uint32_t[]){5, 6, 5}, sizeof(bad)); /* overlapping */
	GCHECK_ERR(pool_dmabuf(pool, bad, 3, 0), EEXIST);
	GCHECK_ERR(ioctl(pool, _IO(HYPERBUF_IOC_MAGIC, 0x7f)), ENOTTY);
	say("HBVM-STEP hostile page lists: EINVAL, E2BIG, EFAULT, ERANGE, EEXIST, ENOTTY");
}

static void hostile_mappings(int pool, int pool_ro, uint64_t size)
{
	uint32_t pages[3] = {5, 9, 6};
	int fd = pool_dmabuf(pool_ro, pages, 3, 0);
	void *p;

	GCHECK_ERR(pool_dmabuf(pool_ro, pages, 3, HYPERBUF_DMABUF_WRITE), EACCES);
	GCHECK(fd >= 0);
	GCHECK(mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED &&
	       errno == EACCES);
	GCHECK(mmap(NULL, 3 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED);
	GCHECK(mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
	GCHECK(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 3 * PAGE) == MAP_FAILED);
	p = mmap(NULL, 3 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
	GCHECK(p != MAP_FAILED);
	GCHECK(mprotect(p, 3 * PAGE, PROT_READ | PROT_WRITE) < 0 && errno == EACCES);
	munmap(p, 3 * PAGE);
	close(fd);
	/* The pool's own mapping: shared only, inside the BAR, writable only if opened so. */
	GCHECK(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, pool, (off_t)size) == MAP_FAILED);
	GCHECK(mmap(NULL, (size_t)size + PAGE, PROT_READ, MAP_SHARED, pool, 0) == MAP_FAILED);
	GCHECK(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, pool, 0) == MAP_FAILED);
	GCHECK(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, pool_ro, 0) == MAP_FAILED &&
	       errno == EACCES);
	/* Many at once, and gone again. */
	for (int i = 0; i < 200; i++) {
		fd = pool_dmabuf(pool, pages, 3, HYPERBUF_DMABUF_WRITE);
		GCHECK(fd >= 0);
		close(fd);
	}
	say("HBVM-STEP hostile mappings: read-only stays read-only, nothing outside the BAR");
}

static int fence_create(int ctl, uint64_t *id)
{
	struct hyperbuf_fence_create fc = {.name = "hostile"};

	if (ioctl(ctl, HYPERBUF_IOC_FENCE_CREATE, &fc) < 0)
		return -1;
	*id = fc.id;
	return fc.fd;
}

static int fence_signal(int ctl, uint64_t id, int32_t status, uint32_t flags)
{
	struct hyperbuf_fence_signal s = {.id = id, .status = status, .flags = flags};

	return ioctl(ctl, HYPERBUF_IOC_FENCE_SIGNAL, &s);
}

static void hostile_fences(void)
{
	struct hyperbuf_fence_create fc = {.flags = 1};
	int ctl = open(HYPERBUF_CTL_PATH, O_RDWR | O_CLOEXEC), sf[5];
	uint64_t id, ids[5];

	GCHECK(ctl >= 0);
	GCHECK_ERR(ioctl(ctl, HYPERBUF_IOC_FENCE_CREATE, &fc), EINVAL);
	fc.flags = 0;
	memset(fc.name, 'x', sizeof(fc.name)); /* no NUL */
	GCHECK_ERR(ioctl(ctl, HYPERBUF_IOC_FENCE_CREATE, &fc), EINVAL);
	GCHECK_ERR(ioctl(ctl, HYPERBUF_IOC_FENCE_CREATE, (void *)8), EFAULT);
	sf[0] = fence_create(ctl, &id);
	GCHECK(sf[0] >= 0);
	GCHECK_ERR(fence_signal(ctl, id + 1000, 0, 0), ENOENT);
	GCHECK_ERR(fence_signal(ctl, 0, 0, 0), ENOENT);
	GCHECK_ERR(fence_signal(ctl, id, 1, 0), EINVAL);
	GCHECK_ERR(fence_signal(ctl, id, -4096, 0), EINVAL);
	GCHECK_ERR(fence_signal(ctl, id, 0, 2), EINVAL);
	GCHECK(fence_signal(ctl, id, -EIO, 0) == 0);
	GCHECK_ERR(fence_signal(ctl, id, 0, 0), ENOENT); /* twice */
	GCHECK(readable(sf[0]) && sync_file_status(sf[0]) == -EIO);
	close(sf[0]);
	/* max_fences pending per file, then ENOSPC. */
	write_param("max_fences", 4);
	for (int i = 0; i < 4; i++)
		GCHECK((sf[i] = fence_create(ctl, &ids[i])) >= 0);
	GCHECK_ERR(fence_create(ctl, &id), ENOSPC);
	write_param("max_fences", 65536);
	/* The timeout: the fence errors by itself, and is gone for its signaller. */
	write_param("fence_timeout_ms", 100);
	GCHECK((sf[4] = fence_create(ctl, &ids[4])) >= 0);
	sleep_ms(1000);
	GCHECK(readable(sf[4]) && sync_file_status(sf[4]) == -ETIMEDOUT);
	GCHECK_ERR(fence_signal(ctl, ids[4], 0, 0), ENOENT);
	write_param("fence_timeout_ms", 120000);
	/* The signaller goes away: every fence it had errors with EPIPE. */
	close(ctl);
	for (int i = 0; i < 4; i++) {
		GCHECK(readable(sf[i]) && sync_file_status(sf[i]) == -EPIPE);
		close(sf[i]);
	}
	close(sf[4]);
	say("HBVM-STEP hostile fences: EINVAL, EFAULT, ENOENT, ENOSPC; timeout ETIMEDOUT; "
	    "closed signaller EPIPE");
}

static void hostile_rdonly(int pool)
{
	struct hyperbuf_dmabuf_rdonly a = {.fd = -1};
	uint32_t pages[2] = {7, 8};
	int ctl = open(HYPERBUF_CTL_PATH, O_RDWR | O_CLOEXEC), fd, vgem;
	struct hbvm_drm_prime_handle imp = {0};
	void *p;

	GCHECK(ctl >= 0);
	GCHECK_ERR(ioctl(ctl, HYPERBUF_IOC_DMABUF_RDONLY, &a), EBADF);
	a.fd = ctl; /* not a dma-buf */
	GCHECK_ERR(ioctl(ctl, HYPERBUF_IOC_DMABUF_RDONLY, &a), EINVAL);
	fd = pool_dmabuf(pool, pages, 2, HYPERBUF_DMABUF_WRITE);
	GCHECK(fd >= 0);
	a = (struct hyperbuf_dmabuf_rdonly){.fd = fd, .flags = 4};
	GCHECK_ERR(ioctl(ctl, HYPERBUF_IOC_DMABUF_RDONLY, &a), EINVAL);
	a.flags = 0;
	GCHECK(ioctl(ctl, HYPERBUF_IOC_DMABUF_RDONLY, &a) == 0);
	close(fd);
	GCHECK(mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, a.out_fd, 0) ==
		   MAP_FAILED &&
	       errno == EACCES);
	p = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, a.out_fd, 0);
	GCHECK(p != MAP_FAILED);
	munmap(p, 2 * PAGE);
	/* A DRM importer gets the inner dma-buf's pages through the view. */
	vgem = vgem_open();
	imp.fd = a.out_fd;
	GCHECK(ioctl(vgem, HBVM_DRM_IOCTL_PRIME_FD_TO_HANDLE, &imp) == 0);
	vgem_close(vgem, imp.handle);
	close(vgem);
	close(a.out_fd);
	close(ctl);
	say("HBVM-STEP read-only views: EBADF, EINVAL; the view refuses PROT_WRITE, vgem imports "
	    "it");
}

void hostile_ioctls(void)
{
	struct hyperbuf_pool_info info;
	char path[300];
	int pool, pool_ro;

	pool_path(path, sizeof(path));
	pool = open(path, O_RDWR | O_CLOEXEC);
	pool_ro = open(path, O_RDONLY | O_CLOEXEC);
	GCHECK(pool >= 0 && pool_ro >= 0);
	GCHECK(ioctl(pool, HYPERBUF_IOC_POOL_INFO, &info) == 0);
	GCHECK(info.abi == HYPERBUF_KMOD_ABI && (info.flags & HYPERBUF_POOL_PAGES));
	GCHECK_ERR(ioctl(pool, HYPERBUF_IOC_POOL_INFO, (void *)16), EFAULT);
	hostile_page_lists(pool, (uint32_t)(info.size / PAGE));
	hostile_mappings(pool, pool_ro, info.size);
	hostile_rdonly(pool);
	hostile_fences();
	close(pool_ro);
	close(pool);
}

void unload_refused_while_used(void)
{
	char path[300];
	uint32_t page = 3;
	int pool, fd, ctl, sf;
	uint64_t id;
	bool gone = false;

	pool_path(path, sizeof(path));
	pool = open(path, O_RDWR | O_CLOEXEC);
	GCHECK(pool >= 0);
	fd = pool_dmabuf(pool, &page, 1, 0);
	GCHECK(fd >= 0);
	close(pool);
	GCHECK(!unload_module("hyperbuf")); /* a dma-buf is alive */
	close(fd);
	ctl = open(HYPERBUF_CTL_PATH, O_RDWR | O_CLOEXEC);
	GCHECK(ctl >= 0);
	sf = fence_create(ctl, &id);
	GCHECK(sf >= 0);
	close(ctl); /* the fence errors, and lives on in its sync_file */
	GCHECK(!unload_module("hyperbuf"));
	close(sf);
	/* The last fence is freed after an RCU grace period. */
	for (int i = 0; i < 50 && !gone; i++) {
		gone = unload_module("hyperbuf");
		if (!gone)
			sleep_ms(100);
	}
	GCHECK(gone && access("/dev/hyperbuf/ctl", F_OK) != 0);
	say("HBVM-STEP rmmod refused while a dma-buf or a sync_file lives, done once none does");
}
