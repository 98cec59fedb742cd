/*
 * Inside a KVM guest: the pools are the BAR2 of the guest's ivshmem-doorbell devices, mapped
 * through sysfs. docs/KVM.md has the VM side.
 *
 * Every ivshmem device is PCI 1af4:1110, so a device is told apart by the header in the first
 * page of its BAR2 (group, size, instance). Every member of a group can write that header, so
 * it is only a hint: Attach names the device's IVPosition register (BAR0 offset 8, set by QEMU
 * from the id the daemon gave this VM's connection), and the daemon accepts it only if that id
 * is this VM's peer in that group. A device whose header lies is skipped.
 *
 * With hyperbuf.ko loaded, a pool's BAR is mapped through the module's node instead of sysfs:
 * cached, and dma-bufs can be made of it (dmabuf.c). Nothing else changes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/kvm/guest.h"
#include "common/file.h"
#include "kmod/hyperbuf_kmod.h"
#include "protocol/limits.h"

#define PCI_DIR        "/sys/bus/pci/devices"
#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
#define IVPOSITION_OFF 8

struct ivdev {
	char bdf[64];
	uint64_t size; /* BAR2 */
	uint32_t ivposition;
	bool taken;
};

static bool is_ivshmem(const char *bdf)
{
	char path[512], v[32], d[32];

	snprintf(path, sizeof(path), PCI_DIR "/%s/vendor", bdf);
	if (hbc_read_line(path, v, sizeof(v)) < 0)
		return false;
	snprintf(path, sizeof(path), PCI_DIR "/%s/device", bdf);
	if (hbc_read_line(path, d, sizeof(d)) < 0)
		return false;
	return strtoul(v, NULL, 16) == IVSHMEM_VENDOR && strtoul(d, NULL, 16) == IVSHMEM_DEVICE;
}

/* IVPosition from BAR0 (a 256-byte register block: 32-bit reads only). */
static int read_ivposition(const char *bdf, uint32_t *out)
{
	char path[512];
	struct stat st;
	void *regs;
	int fd;

	snprintf(path, sizeof(path), PCI_DIR "/%s/resource0", bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size < IVPOSITION_OFF + 4) {
		close(fd);
		return -ENODEV;
	}
	regs = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (regs == MAP_FAILED)
		return -errno;
	*out = *(volatile uint32_t *)((uint8_t *)regs + IVPOSITION_OFF);
	munmap(regs, (size_t)st.st_size);
	return 0;
}

/* The guest's ivshmem devices. Returns how many, or a negative errno (EACCES: the sysfs
 * files are root's unless a udev rule gives them away, see configs/). */
static int list_ivdevs(struct ivdev **out)
{
	struct ivdev *devs = NULL, *grown;
	struct dirent *e;
	size_t n = 0, cap = 0;
	DIR *dir;
	int r = 0;

	*out = NULL;
	dir = opendir(PCI_DIR);
	if (!dir)
		return 0;
	while ((e = readdir(dir))) {
		char path[512];
		struct stat st;
		uint32_t pos = 0;

		if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(devs->bdf) ||
		    !is_ivshmem(e->d_name))
			continue;
		snprintf(path, sizeof(path), PCI_DIR "/%s/resource2", e->d_name);
		if (stat(path, &st) < 0)
			continue; /* no BAR2: not a device we can use */
		r = read_ivposition(e->d_name, &pos);
		if (r < 0)
			break;
		if (n == cap) {
			cap = cap ? 2 * cap : 4;
			grown = realloc(devs, cap * sizeof(*devs));
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			devs = grown;
		}
		memcpy(devs[n].bdf, e->d_name, strlen(e->d_name) + 1); /* length checked above */
		devs[n].size = (uint64_t)st.st_size;
		devs[n].ivposition = pos;
		devs[n].taken = false;
		n++;
	}
	closedir(dir);
	if (r < 0) {
		free(devs);
		return r;
	}
	*out = devs;
	return (int)n;
}

/* BAR2 as a file to map. hyperbuf.ko's node when the module bound the device: cached, and
 * the way to dma-bufs (docs/DMABUF.md); *kmod says so. Else sysfs: write-combining where the
 * kernel offers it (a prefetchable BAR), or uncached (docs/KVM.md, limits). */
static int open_bar2(const char *bdf, uint64_t size, bool *kmod)
{
	struct hyperbuf_pool_info info;
	char path[512];
	int fd;

	snprintf(path, sizeof(path), HYPERBUF_POOL_PATH "%s", bdf);
	fd = open(path, O_RDWR | O_CLOEXEC);
	*kmod = fd >= 0;
	if (fd >= 0) {
		if (ioctl(fd, HYPERBUF_IOC_POOL_INFO, &info) == 0 && info.size == size &&
		    info.page_size == HBP_PAGE_SIZE)
			return fd;
		close(fd);
		return -ENODEV;
	}
	/* Where the module bound the device, sysfs cannot map it (PAT refuses a second memory
	 * type): its node's error is the one to report. */
	if (errno != ENOENT)
		return -errno;
	snprintf(path, sizeof(path), PCI_DIR "/%s/resource2_wc", bdf);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		snprintf(path, sizeof(path), PCI_DIR "/%s/resource2", bdf);
		fd = open(path, O_RDWR | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

/* Tries dev for group g: its header must say g, and the daemon must agree it is ours. */
static int try_device(struct hbk_guest *k, struct hbk_group *g, struct ivdev *dev)
{
	struct hbb_reply reply;
	bool kmod;
	int fd, r;

	fd = open_bar2(dev->bdf, dev->size, &kmod);
	if (fd < 0)
		return fd;
	r = hbk_pool_window_open(&g->win, fd, g->id, g->pool_size, g->pool_instance,
				 kmod ? HBK_POOL_WINDOW_DEVICE : 0);
	if (r < 0)
		return r; /* -EPROTO: another group's pool, or an older daemon's */
	g->kmod = kmod;
	g->iv_peer = dev->ivposition;
	r = hbk_send_attach(k, g, dev->ivposition, &reply);
	if (r < 0) {
		hbk_pool_window_close(&g->win);
		/* ENOENT or EBUSY: that id is not this VM's peer in g, so the header lied. */
		return r == -ENOENT || r == -EBUSY ? -EPROTO : r;
	}
	k->svc->reply_free(&reply);
	dev->taken = true;
	return 0;
}

int hbk_bars_attach(struct hbk_guest *k)
{
	struct ivdev *devs;
	int n, r = 0;

	if (k->n_groups == 0)
		return 0;
	n = list_ivdevs(&devs);
	if (n < 0)
		return n;
	for (size_t i = 0; i < k->n_groups && r == 0; i++) {
		struct hbk_group *g = &k->groups[i];

		r = -ENODEV; /* the VM has no device for this group */
		for (int j = 0; j < n && r != 0; j++) {
			if (devs[j].taken || devs[j].size != g->pool_size)
				continue;
			r = try_device(k, g, &devs[j]);
			if (r < 0 && r != -EPROTO)
				break;
			if (r == -EPROTO)
				r = -ENODEV;
		}
	}
	free(devs);
	return r;
}

bool hbk_bars_present(void)
{
	struct dirent *e;
	bool found = false;
	DIR *dir = opendir(PCI_DIR);

	if (!dir)
		return false;
	while (!found && (e = readdir(dir)))
		found = e->d_name[0] != '.' && is_ivshmem(e->d_name);
	closedir(dir);
	return found;
}
