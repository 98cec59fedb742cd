/*
 * Inside a KVM guest (kvm:): the channel is a virtio-serial port, the pools are the BAR2 of the
 * guest's ivshmem-doorbell devices, mapped through sysfs. docs/KVM.md has the VM side.
 *
 * Ports: a VM has ports org.hyperbuf.0..N-1, found by name under /sys/class/virtio-ports. The
 * guest driver lets one process open a port at a time (a second open fails with EBUSY), so the
 * first free one wins and N processes can be clients at once. A port outlives its processes,
 * and QEMU tells the daemon nothing when one closes it: each process starts with a resync
 * marker and leaves with one (protocol/resync.h).
 *
 * Pools: every ivshmem device is PCI 1af4:1110, so a device is told apart by the header in the
 * first page of its BAR2 (group, size, instance). Every member of a group can write that
 * header, so it is only a hint: Attach names the device's IVPosition register (BAR0 offset 8,
 * set by QEMU from the id the daemon gave this VM's connection), and the daemon accepts it
 * only if that id is this VM's peer in that group. A device whose header lies is skipped.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libclient/private.h"
#include "protocol/resync.h"

#define VPORTS_DIR     "/sys/class/virtio-ports"
#define PCI_DIR        "/sys/bus/pci/devices"
#define PORT_PREFIX    "org.hyperbuf."
#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
#define IVPOSITION_OFF 8
/* The daemon answers a resync at once; what takes time is reading whatever stale bytes the
 * previous process left in the port. */
#define RESYNC_TIMEOUT_MS 10000

struct port {
	unsigned n;    /* N of org.hyperbuf.N */
	char dev[64];  /* vportXpY */
	char name[64]; /* org.hyperbuf.N */
};

struct ivdev {
	char bdf[64];
	uint64_t size; /* BAR2 */
	uint32_t ivposition;
	bool taken;
};

static int now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* The first line of a small sysfs file, without its newline. */
static int read_line(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int port_cmp(const void *a, const void *b)
{
	const struct port *x = a, *y = b;

	return (x->n > y->n) - (x->n < y->n);
}

/* The ports named org.hyperbuf.N, by N. Returns how many (0 if none), or -ENOMEM. */
static int list_ports(struct port **out)
{
	struct port *ports = NULL, *grown;
	struct dirent *e;
	size_t n = 0, cap = 0;
	DIR *dir;

	*out = NULL;
	dir = opendir(VPORTS_DIR);
	if (!dir)
		return 0;
	while ((e = readdir(dir))) {
		char path[512], name[64], *end;
		const char *digits = name + strlen(PORT_PREFIX);
		unsigned long num;

		if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(ports->dev))
			continue;
		snprintf(path, sizeof(path), VPORTS_DIR "/%s/name", e->d_name);
		if (read_line(path, name, sizeof(name)) < 0 ||
		    strncmp(name, PORT_PREFIX, strlen(PORT_PREFIX)) != 0)
			continue;
		if (!isdigit((unsigned char)*digits))
			continue;
		errno = 0;
		num = strtoul(digits, &end, 10);
		if (*end || errno || num > 1000000)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			grown = realloc(ports, cap * sizeof(*ports));
			if (!grown) {
				free(ports);
				closedir(dir);
				return -ENOMEM;
			}
			ports = grown;
		}
		ports[n].n = (unsigned)num;
		memcpy(ports[n].dev, e->d_name, strlen(e->d_name) + 1); /* length checked above */
		snprintf(ports[n].name, sizeof(ports[n].name), "%s", name);
		n++;
	}
	closedir(dir);
	if (n)
		qsort(ports, n, sizeof(*ports), port_cmp);
	*out = ports;
	return (int)n;
}

/* Writes all of buf to the port, waiting for room until deadline. */
static int port_write(int fd, const uint8_t *buf, size_t len, int deadline)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int left = deadline - now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			return -errno;
		if (pfd.revents & POLLHUP)
			return -ECONNRESET;
	}
	return 0;
}

/*
 * Sends a marker with a fresh random nonce and reads until the daemon's marker with that nonce:
 * whatever comes before it (the tail of what the daemon was sending the previous process, or
 * markers answering others) is dropped. The nonce cannot be guessed, so nothing a peer put in
 * metadata that the previous process never read can pass for the answer.
 */
static int resync(int fd)
{
	struct hbp_resync m = {.version = HBP_PROTOCOL_VERSION}, got;
	uint8_t buf[4096 + HBP_RESYNC_LEN];
	int deadline = now_ms() + RESYNC_TIMEOUT_MS, r;
	size_t have = 0;

	if (getrandom(m.nonce, sizeof(m.nonce), 0) != (ssize_t)sizeof(m.nonce))
		return -errno;
	hbp_resync_pack(buf, &m);
	r = port_write(fd, buf, HBP_RESYNC_LEN, deadline);
	if (r < 0)
		return r;
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int left;
		ssize_t n;

		for (;;) {
			bool whole;
			size_t at = hbp_resync_scan(buf, have, &whole);

			if (whole && have - at >= HBP_RESYNC_LEN) {
				hbp_resync_unpack(buf + at, &got);
				if (memcmp(got.nonce, m.nonce, sizeof(m.nonce)) == 0) {
					/* The daemon sends nothing more before our Hello. */
					if (have > at + HBP_RESYNC_LEN)
						return -EPROTO;
					return got.status ? -EPROTO : 0;
				}
				at++; /* somebody else's: skip its magic */
			}
			memmove(buf, buf + at, have - at);
			have -= at;
			if (!whole || at == 0)
				break;
		}
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			return -errno;
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n == 0)
			return -ECONNRESET; /* the daemon's end of the port went away */
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n > 0)
			have += (size_t)n;
	}
}

/* A port just opened: is the daemon there (QEMU's chardev connected to it), then resync. */
static int start_port(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};

	if (poll(&pfd, 1, 0) < 0)
		return -errno;
	if (pfd.revents & POLLHUP)
		return -ECONNREFUSED;
	return resync(fd);
}

static int open_port(const struct port *p)
{
	char path[160];
	int fd;

	/* udev's stable name, else the node devtmpfs makes. */
	snprintf(path, sizeof(path), "/dev/virtio-ports/%s", p->name);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT) {
		snprintf(path, sizeof(path), "/dev/%s", p->dev);
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	}
	return fd < 0 ? -errno : fd;
}

int hbl_kvm_open(const char *path)
{
	struct port *ports;
	int n, fd, r, err = 0;

	if (path) {
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return -errno;
		r = start_port(fd);
		if (r < 0) {
			close(fd);
			return r;
		}
		return fd;
	}
	n = list_ports(&ports);
	if (n <= 0)
		return n < 0 ? n : -ENOENT;
	for (int i = 0; i < n; i++) {
		fd = open_port(&ports[i]);
		if (fd == -EBUSY)
			continue; /* another process's */
		if (fd >= 0) {
			r = start_port(fd);
			if (r == 0) {
				free(ports);
				return fd;
			}
			close(fd);
			fd = r;
		}
		/* A port without a daemon behind it (QEMU reconnecting) or that we may not
		 * open: try the others, and report this if none works. */
		if (fd != -ECONNREFUSED && fd != -EACCES && fd != -EPERM && fd != -ENOENT) {
			free(ports);
			return fd;
		}
		if (!err)
			err = fd;
	}
	free(ports);
	return err ? err : -EBUSY;
}

void hbl_kvm_goodbye(int fd)
{
	struct hbp_resync m = {.version = HBP_PROTOCOL_VERSION};
	uint8_t buf[HBP_RESYNC_LEN];

	/* A marker ends our session at once, as a socket's EOF would; the daemon's answer is
	 * left for the next process to skip. If the port is full, the next process's own
	 * marker ends the session instead. */
	hbp_resync_pack(buf, &m);
	if (write(fd, buf, sizeof(buf)) < 0)
		return;
}

static bool is_ivshmem(const char *bdf)
{
	char path[512], v[32], d[32];

	snprintf(path, sizeof(path), PCI_DIR "/%s/vendor", bdf);
	if (read_line(path, v, sizeof(v)) < 0)
		return false;
	snprintf(path, sizeof(path), PCI_DIR "/%s/device", bdf);
	if (read_line(path, d, sizeof(d)) < 0)
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

/* BAR2 as a file to map: write-combining where the kernel offers it (a prefetchable BAR),
 * else uncached. Neither is cached memory: see the limits in docs/KVM.md. */
static int open_bar2(const char *bdf)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), PCI_DIR "/%s/resource2_wc", bdf);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		snprintf(path, sizeof(path), PCI_DIR "/%s/resource2", bdf);
		fd = open(path, O_RDWR | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

/* Tries dev for group g: its header must say g, and the daemon must agree it is ours. */
static int try_device(struct hb_client *c, struct hbl_group *g, struct ivdev *dev)
{
	struct hbl_reply reply;
	int fd, r;

	fd = open_bar2(dev->bdf);
	if (fd < 0)
		return fd;
	r = hbk_pool_window_open(&g->win, fd, g->id, g->pool_size, g->pool_instance, 0);
	if (r < 0)
		return r; /* -EPROTO: another group's pool, or an older daemon's */
	r = hbl_send_attach(c, g, dev->ivposition, &reply);
	if (r < 0) {
		hbk_pool_window_close(&g->win);
		/* ENOENT or EBUSY: that id is not this VM's peer in g, so the header lied. */
		return r == -ENOENT || r == -EBUSY ? -EPROTO : r;
	}
	hbl_reply_free(&reply);
	dev->taken = true;
	return 0;
}

int hbl_kvm_attach_groups(struct hb_client *c)
{
	struct ivdev *devs;
	int n, r = 0;

	if (c->n_groups == 0)
		return 0;
	n = list_ivdevs(&devs);
	if (n < 0)
		return n;
	for (size_t i = 0; i < c->n_groups && r == 0; i++) {
		struct hbl_group *g = &c->groups[i];

		r = -ENODEV; /* the VM has no device for this group */
		for (int k = 0; k < n && r != 0; k++) {
			if (devs[k].taken || devs[k].size != g->pool_size)
				continue;
			r = try_device(c, g, &devs[k]);
			if (r < 0 && r != -EPROTO)
				break;
			if (r == -EPROTO)
				r = -ENODEV;
		}
	}
	free(devs);
	return r;
}

bool hbl_kvm_guest(void)
{
	char type[32];
	struct port *ports;
	struct dirent *e;
	DIR *dir;
	bool found = false;
	int n;

	/* A Xen guest, even one with virtio devices, talks to dom0 instead. */
	if (read_line("/sys/hypervisor/type", type, sizeof(type)) == 0 && strcmp(type, "xen") == 0)
		return false;
	/* A machine running the daemon is a host, even if it is itself a guest of another. */
	if (access(HBL_DEFAULT_ADDRESS + strlen("unix:"), F_OK) == 0)
		return false;
	n = list_ports(&ports);
	free(ports);
	if (n > 0)
		return true;
	dir = opendir(PCI_DIR);
	if (!dir)
		return false;
	while (!found && (e = readdir(dir)))
		found = e->d_name[0] != '.' && is_ivshmem(e->d_name);
	closedir(dir);
	return found;
}
