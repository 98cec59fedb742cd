/*
 * An emulated VM's side of a group's ivshmem socket, exactly as QEMU speaks it (QEMU
 * docs/specs/ivshmem-spec.rst, PROTOCOL.md §5). The protocol only ever flows from the server to
 * us: 8-byte little-endian signed integers, each with at most one fd. First 0 (the version),
 * then our peer id, then -1 with the pool fd; peers' ids with eventfds (connect) or without
 * (disconnect) may come before the -1 and any time after it. We accept exactly what QEMU 7.2
 * accepts, and keep vector 0's eventfds as doorbells (doorbell.c).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/guest.h"
#include "common/cred.h"
#include "common/log.h"
#include "common/sock.h"

/* The highest ivshmem peer id QEMU takes (IVSHMEM_MAX_PEERS in hw/misc/ivshmem.c). */
#define HBK_IVSHMEM_MAX_PEER 65535
/* Messages one drain reads per group at most; the rest waits for the next dispatch. */
#define HBK_IVSHMEM_DRAIN_BATCH 256
/* A handshake waits in slices of this length, keeping the channel moving meanwhile. */
#define HBK_WAIT_SLICE_MS 1000

/*
 * Receives the rest of the current 8-byte message. Returns 1 with *val and *fd (-1 if none
 * came), 0 if the socket has nothing more for now, or a negative errno ready to be the
 * client's sticky one: -EPIPE at EOF, -ECONNRESET on a socket error, -EPROTO for a message
 * carrying more than one fd.
 */
static int iv_recv(struct hbk_group *g, int64_t *val, int *fd)
{
	while (g->iv_got < sizeof(g->iv_msg)) {
		int fds[HBB_FRAME_FDS];
		unsigned nfds = 0;
		ssize_t n = hbc_recv_fds(g->iv_fd, g->iv_msg + g->iv_got,
					 sizeof(g->iv_msg) - g->iv_got, fds, &nfds, HBB_FRAME_FDS);
		if (nfds > 0 && (nfds > 1 || g->iv_msg_fd >= 0)) {
			hbc_close_fds(fds, &nfds);
			return -EPROTO;
		}
		if (nfds == 1)
			g->iv_msg_fd = fds[0];
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return 0;
		if (n < 0)
			return n == -EPIPE ? -EPIPE : -ECONNRESET;
		if (n == 0)
			return -EPIPE;
		g->iv_got += (size_t)n;
	}
	uint64_t le;
	memcpy(&le, g->iv_msg, sizeof(le));
	*val = (int64_t)le64toh(le);
	*fd = g->iv_msg_fd;
	g->iv_msg_fd = -1;
	g->iv_got = 0;
	return 1;
}

/* A message after the handshake: peers coming (id + eventfd) and going (id alone). */
static int iv_message(struct hbk_group *g, int64_t val, int fd)
{
	/* QEMU rejects these too: ids out of range, a second pool, its own id leaving. */
	if (val < -1 || val > HBK_IVSHMEM_MAX_PEER || val == -1 ||
	    (fd < 0 && (uint64_t)val == g->iv_peer)) {
		if (fd >= 0)
			close(fd);
		return -EPROTO;
	}
	return hbk_bell_message(g, (uint32_t)val, fd);
}

/* What g's connection holds now (a batch at most), without blocking. */
static int drain_group(struct hbk_group *g)
{
	for (int n = 0; n < HBK_IVSHMEM_DRAIN_BATCH; n++) {
		int64_t val;
		int fd, r;

		r = iv_recv(g, &val, &fd);
		if (r == 0)
			break;
		if (r > 0)
			r = iv_message(g, val, fd);
		/* The daemon never closes a live VM's ivshmem connection, and QEMU could not
		 * reconnect either: losing it ends the client. */
		if (r < 0)
			return r;
	}
	return 0;
}

int hbk_ivshmem_drain(struct hbk_guest *k)
{
	int bells = 0;

	for (size_t i = 0; i < k->n_groups; i++) {
		struct hbk_group *g = &k->groups[i];

		/* After a poll, only what it found ready: a read of a quiet fd is a wasted call. */
		if (!k->polled || g->bell_readable)
			bells += hbk_bell_drain(g);
		if (g->iv_fd < 0 || !g->iv_ready || (k->polled && !g->iv_readable))
			continue;
		int r = drain_group(g);

		if (r < 0)
			return r;
	}
	k->polled = false;
	return bells;
}

/* The next handshake message, waiting for it. The channel is read meanwhile, so that events
 * the daemon sends during our handshake are queued and a dead daemon is noticed. */
static int iv_next(struct hbk_guest *k, struct hbk_group *g, int64_t *val, int *fd)
{
	const struct hbb_guest_services *svc = k->svc;

	for (;;) {
		struct pollfd pfd[2] = {
		    {.fd = g->iv_fd, .events = POLLIN},
		    {.fd = svc->channel_fd, .events = POLLIN},
		};
		int r = iv_recv(g, val, fd);

		if (r != 0)
			return r;
		if (poll(pfd, 2, HBK_WAIT_SLICE_MS) < 0 && errno != EINTR)
			return -errno;
		if (pfd[1].revents) {
			r = svc->pump(svc->ctx);
			if (r < 0)
				return r;
		}
	}
}

/* Version, our id, then (after any early peer messages, as QEMU allows) -1 with the pool. */
static int iv_handshake(struct hbk_guest *k, struct hbk_group *g)
{
	int64_t val = 0;
	int fd = -1, r;

	r = iv_next(k, g, &val, &fd);
	if (r < 0)
		return r;
	if (val != 0 || fd >= 0)
		goto err_proto;
	r = iv_next(k, g, &val, &fd);
	if (r < 0)
		return r;
	if (val < 0 || val > HBK_IVSHMEM_MAX_PEER || fd >= 0)
		goto err_proto;
	g->iv_peer = (uint32_t)val;
	for (;;) {
		r = iv_next(k, g, &val, &fd);
		if (r < 0)
			return r;
		if (val == -1)
			break;
		r = iv_message(g, val, fd);
		if (r < 0)
			return r;
	}
	if (fd < 0)
		return -EPROTO;
	/* The window checks st_size (a power of two, the announced pool size), seals and
	 * header, and owns fd from here on. */
	return hbk_pool_window_open(&g->win, fd, g->id, g->pool_size, g->pool_instance,
				    HBK_POOL_WINDOW_SEALED);

err_proto:
	if (fd >= 0)
		close(fd);
	return -EPROTO;
}

int hbk_ivshmem_attach(struct hbk_guest *k, struct hbk_group *g, const char *ivshmem_path)
{
	struct hbb_reply reply;
	uid_t uid;
	int r;

	if (!ivshmem_path || ivshmem_path[0] != '/')
		return -EPROTO;
	r = hbc_unix_connect(ivshmem_path);
	if (r < 0)
		return r;
	g->iv_fd = r;
	/* The pool comes from whoever answers: it must be the daemon. */
	if (hbc_server_check(g->iv_fd, &uid) < 0) {
		log_debug("%s is served by uid %u, not by hyperbufd: refusing its pool",
			  ivshmem_path, (unsigned)uid);
		return -EACCES;
	}
	r = iv_handshake(k, g);
	if (r < 0)
		return r;
	g->iv_ready = true;
	/* The rest of the greeting is there already: the peers' doorbells and, last, ours, which
	 * a slot needs from the first watch on. */
	r = drain_group(g);
	if (r < 0)
		return r;
	/* Tells the daemon which ivshmem peer is us; an fd on this reply would be unexpected
	 * and is closed with it (an emulated VM is no host). */
	r = hbk_send_attach(k, g, g->iv_peer, &reply);
	if (r < 0)
		return r;
	k->svc->reply_free(&reply);
	return 0;
}

void hbk_ivshmem_polled(void *state, const struct pollfd *pfd, size_t n)
{
	struct hbk_guest *k = state;

	for (size_t i = 0; i < k->n_groups; i++)
		k->groups[i].iv_readable = k->groups[i].bell_readable = false;
	for (size_t j = 0; j < n; j++) {
		for (size_t i = 0; pfd[j].revents && i < k->n_groups; i++) {
			struct hbk_group *g = &k->groups[i];

			g->iv_readable |= pfd[j].fd == g->iv_fd;
			g->bell_readable |= pfd[j].fd == g->bell;
		}
	}
	k->polled = true;
}

size_t hbk_ivshmem_pollfds(struct hbk_guest *k, struct pollfd *pfd, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < k->n_groups && n < max; i++) {
		const struct hbk_group *g = &k->groups[i];

		if (g->iv_fd >= 0 && g->iv_ready)
			pfd[n++] = (struct pollfd){.fd = g->iv_fd, .events = POLLIN};
		/* Only once a fence slot is in use: nothing else rings it. */
		if (g->bell >= 0 && g->slots && n < max)
			pfd[n++] = (struct pollfd){.fd = g->bell, .events = POLLIN};
	}
	return n;
}

int hbk_ivshmem_adopt_fd(struct hbk_guest *k, struct hbk_group *g, int fd)
{
	int flags = fcntl(fd, F_GETFL);
	int r;

	g->iv_fd = fd;
	/* Read as a connect of ours would be: without blocking. */
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	r = iv_handshake(k, g);
	if (r < 0)
		return r;
	g->iv_ready = true;
	/* The rest of the greeting, our own doorbell last (see hbk_ivshmem_attach). */
	return drain_group(g);
}
