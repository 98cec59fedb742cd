/*
 * Inside a KVM guest (kvm:): the channel to the daemon is a virtio-serial port.
 *
 * Ports: a VM has ports org.hyperbuf.0..N-1, found by name under /sys/class/virtio-ports. The
 * guest driver lets one process open a port at a time (a second open fails with EBUSY), so the
 * first free one wins and N processes can be clients at once. A port outlives its processes,
 * and QEMU tells the daemon nothing when one closes it: each process starts with a resync
 * marker and leaves with one (protocol/resync.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backends/kvm/guest.h"
#include "common/file.h"
#include "protocol/limits.h"
#include "protocol/resync.h"

#define VPORTS_DIR  "/sys/class/virtio-ports"
#define PORT_PREFIX "org.hyperbuf."
/* The daemon answers a resync at once; what takes time is reading whatever stale bytes the
 * previous process left in the port. */
#define RESYNC_TIMEOUT_MS 10000
/* Where a host's daemon listens: a machine that has it is a host, whatever else it is. */
#define HOST_SOCKET "/run/hyperbuf/hyperbufd.sock"

struct port {
	unsigned n;    /* N of org.hyperbuf.N */
	char dev[64];  /* vportXpY */
	char name[64]; /* org.hyperbuf.N */
};

static int now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
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
		if (hbc_read_line(path, name, sizeof(name)) < 0 ||
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
		/* A channel socket (an emulated VM) must not raise SIGPIPE; a port is no socket. */
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, buf, len);

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
 * Sends a marker with a fresh random nonce and reads until the daemon's marker with that nonce
 * (backend.h; a port, or an emulated VM's channel socket after a daemon restart):
 * whatever comes before it (the tail of what the daemon was sending the previous process, or
 * markers answering others) is dropped. The nonce cannot be guessed, so nothing a peer put in
 * metadata that the previous process never read can pass for the answer.
 */
int hbk_channel_resync(int fd, int timeout_ms)
{
	struct hbp_resync m = {.version = HBP_PROTOCOL_VERSION}, got;
	uint8_t buf[4096 + HBP_RESYNC_LEN];
	int deadline = now_ms() + timeout_ms, r;
	size_t have = 0;

again:
	if (getrandom(m.nonce, sizeof(m.nonce), 0) != (ssize_t)sizeof(m.nonce))
		return -errno;
	{
		uint8_t mk[HBP_RESYNC_LEN];

		hbp_resync_pack(mk, &m);
		r = port_write(fd, mk, HBP_RESYNC_LEN, deadline);
	}
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
				/* A daemon that restarted since took our marker with the last
				 * one's input: ask again (PROTOCOL.md §8). */
				if (got.status == HBP_RESYNC_RESTARTED) {
					have = 0;
					goto again;
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
	return hbk_channel_resync(fd, RESYNC_TIMEOUT_MS);
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

static int port_open(const char *path)
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

static void port_goodbye(int fd)
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

/* One read of the port: the count, 0 at the end, or -errno (-EAGAIN: nothing there). */
static ssize_t port_read(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

/*
 * The port as a transport: a character device, plain read and write, no fds. A read of a
 * virtio port returns one of the host's buffers at most (about one of the daemon's writes),
 * so read on while there is room and data: like a socket's recv, a short answer then means
 * the port is empty (libclient/conn.h), and hb_dispatch handles everything that arrived, on
 * a port as on a socket (a client that did not dispatch for a while gets its event queue's
 * bound and OVERFLOW, not every event the port's buffers held).
 */
static ssize_t port_recv(struct hbb_transport *t, void *buf, size_t len, int *fds, unsigned *nfds,
			 unsigned max)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = port_read(t->fd, (char *)buf + got, len - got);

		if (n <= 0)
			return got ? (ssize_t)got : n;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static ssize_t port_send(struct hbb_transport *t, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(t->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

/* A port cannot be shut down: put /dev/null (always readable, at EOF) in its place, which also
 * frees the port for the next process. */
static void port_shutdown(struct hbb_transport *t)
{
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (nul >= 0) {
		dup3(nul, t->fd, O_CLOEXEC);
		close(nul);
	}
}

/* A port gives the daemon no EOF (it stays open on the host for the next process): say
 * goodbye instead, unless the connection already broke. */
static void port_close(struct hbb_transport *t, bool broken)
{
	if (t->fd >= 0 && !broken)
		port_goodbye(t->fd);
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

static const struct hbb_transport_ops port_transport = {
    .version = HBB_GUEST_VERSION,
    .recv = port_recv,
    .send = port_send,
    .shutdown = port_shutdown,
    .close = port_close,
    .pollout = true,
};

int hbk_port_open(const char *path, struct hbb_transport *t)
{
	int fd = port_open(path);

	if (fd < 0)
		return fd;
	*t = (struct hbb_transport){.ops = &port_transport, .fd = fd};
	return 0;
}

bool hbk_in_guest(void)
{
	char type[32];
	struct port *ports;
	int n;

	/* A Xen guest, even one with virtio devices, talks to dom0 instead. */
	if (hbc_read_line("/sys/hypervisor/type", type, sizeof(type)) == 0 &&
	    strcmp(type, "xen") == 0)
		return false;
	/* A machine running the daemon is a host, even if it is itself a guest of another. */
	if (access(HOST_SOCKET, F_OK) == 0)
		return false;
	n = list_ports(&ports);
	free(ports);
	return n > 0 || hbk_bars_present();
}
