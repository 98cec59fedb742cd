/*
 * The conformance suite's raw streams (conform.h, cf_raw_open): this role's domain's own way
 * to the daemon, as bytes. A socket for an address the target gave (the host's socket, an
 * emulated VM's channel); in a guest what its program set (cf_raw_guest): the library's own
 * transport, opened as the library opens it, a KVM guest's virtio port (tests/kvm/conform.c,
 * after the resync marker every process of a channel starts with) or a Xen domU's vchan
 * pumped through a socketpair (tests/xen/cf_raw.c). The bytes a role writes reach the
 * daemon's session code through the real transport, unchecked.
 */
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol/limits.h"
#include "protocol/resync.h"
#include "tests/conform/conform.h"
#include "tests/raw_wire.h"

#define CF_RAW_MAX 16

enum raw_kind { RAW_NONE, RAW_SOCKET, RAW_PORT, RAW_RELAY };

static struct {
	int fd;
	enum raw_kind kind;
	pid_t relay;
} streams[CF_RAW_MAX];

/* ---- opening and closing ---------------------------------------------------------------- */

static int (*guest_open)(pid_t *relay);
static bool guest_port;

void cf_raw_guest(int (*open)(pid_t *relay), bool port)
{
	guest_open = open;
	guest_port = port;
}

/* One try: the fd, or -errno. */
static int open_once(enum raw_kind *kind, pid_t *relay)
{
	const char *address = cf_address();
	int r;

	if (address) {
		const char *colon = strchr(address, ':');

		*kind = RAW_SOCKET;
		r = hbw_unix_connect(colon ? colon + 1 : address);
		return r < 0 ? -errno : r;
	}
	if (!guest_open)
		return -ENOTSUP;
	*relay = 0;
	r = guest_open(relay);
	*kind = guest_port ? RAW_PORT : *relay ? RAW_RELAY : RAW_SOCKET;
	return r;
}

int cf_raw_open(void)
{
	uint64_t end = hbw_now_ms() + CF_WAIT_MS;
	enum raw_kind kind = RAW_NONE;
	pid_t relay = 0;
	int slot, fd;

	for (slot = 0; slot < CF_RAW_MAX && streams[slot].kind != RAW_NONE; slot++)
		;
	if (slot == CF_RAW_MAX) {
		errno = EMFILE;
		return -1;
	}
	/* A port the daemon just hung up on is back when QEMU reconnects; a port is busy
	 * while another process of the guest holds it. */
	while ((fd = open_once(&kind, &relay)) == -ECONNREFUSED || fd == -EBUSY) {
		if (hbw_now_ms() > end)
			break;
		cf_sleep_ms(50);
	}
	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	streams[slot].fd = fd;
	streams[slot].kind = kind;
	streams[slot].relay = relay;
	return fd;
}

/* A port the daemon hung up on (POLLHUP: QEMU's chardev is away) is usable again once QEMU
 * reconnected it: polled, as a state, up to CF_WAIT_MS. */
static void port_wait_back(int fd)
{
	uint64_t end = hbw_now_ms() + CF_WAIT_MS;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};

		if (poll(&p, 1, 0) < 0 || !(p.revents & POLLHUP))
			return;
		if (hbw_now_ms() > end)
			cf_fail(__FILE__, __LINE__, "the port did not come back within %d ms",
				CF_WAIT_MS);
		cf_sleep_ms(50);
	}
}

/* A guest's port is nonblocking, and a loaded host drains its virtqueue late: a full one is
 * EAGAIN, not a refusal. Waits up to CF_WAIT_MS for room. */
static int port_write_all(int fd, const void *buf, size_t len)
{
	ssize_t n;

	while ((n = write(fd, buf, len)) < 0 && (errno == EAGAIN || errno == EINTR)) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};

		if (poll(&p, 1, CF_WAIT_MS) == 0) {
			errno = EAGAIN;
			return -1;
		}
	}
	return n == (ssize_t)len ? 0 : -1;
}

static void close_stream(int fd, bool goodbye)
{
	int slot;

	for (slot = 0; slot < CF_RAW_MAX; slot++) {
		if (streams[slot].kind != RAW_NONE && streams[slot].fd == fd)
			break;
	}
	if (slot == CF_RAW_MAX)
		cf_fail(__FILE__, __LINE__, "fd %d is no raw stream", fd);
	if (streams[slot].kind == RAW_PORT) {
		struct hbp_resync m = {.version = HBP_PROTOCOL_VERSION};
		uint8_t mk[HBP_RESYNC_LEN];

		port_wait_back(fd);
		/* What hb_disconnect sends: its session ends at once. */
		hbp_resync_pack(mk, &m);
		if (goodbye && port_write_all(fd, mk, sizeof(mk)) < 0)
			cf_fail(__FILE__, __LINE__, "the port took no goodbye marker: %s",
				strerror(errno));
	}
	close(fd);
	if (streams[slot].kind == RAW_RELAY) {
		/* It ends once the daemon ended the stream. */
		while (waitpid(streams[slot].relay, NULL, 0) < 0 && errno == EINTR)
			;
	}
	streams[slot].kind = RAW_NONE;
}

void cf_raw_close(int fd)
{
	close_stream(fd, true);
}

void cf_raw_abandon(int fd)
{
	close_stream(fd, false);
}
