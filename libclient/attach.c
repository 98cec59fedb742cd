/*
 * Groups: reaching each pool (host fd passing, or the ivshmem client protocol as QEMU speaks
 * it for an emulated VM), and mapping buffers described by reference directories in them.
 *
 * The ivshmem protocol (QEMU docs/specs/ivshmem-spec.rst, PROTOCOL.md §5) only ever flows from
 * the server to us: 8-byte little-endian signed integers, each with at most one fd. First 0
 * (the version), then our peer id, then -1 with the pool fd; peers' ids with eventfds
 * (connect) or without (disconnect) may come before the -1 and any time after it. We accept
 * exactly what QEMU 7.2 accepts, and close every eventfd: doorbells are not used yet.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/xen/client.h"
#include "libclient/private.h"

/* The highest ivshmem peer id QEMU takes (HBK_IVSHMEM_MAX_PEERS). */
#define HBL_IVSHMEM_MAX_PEER 65535
/* Messages one drain reads per group at most; the rest waits for the next dispatch. */
#define HBL_IVSHMEM_DRAIN_BATCH 256

void hbl_group_close(struct hbl_group *g)
{
	if (g->iv_msg_fd >= 0)
		close(g->iv_msg_fd);
	g->iv_msg_fd = -1;
	if (g->iv_fd >= 0)
		close(g->iv_fd);
	g->iv_fd = -1;
	g->iv_ready = false;
	hbk_pool_window_close(&g->win);
}

/*
 * Receives the rest of the current 8-byte message. Returns 1 with *val and *fd (-1 if none
 * came), 0 if the socket has nothing more for now, or a negative errno ready to be the
 * client's sticky one: -EPIPE at EOF, -ECONNRESET on a socket error, -EPROTO for a message
 * carrying more than one fd.
 */
static int iv_recv(struct hbl_group *g, int64_t *val, int *fd)
{
	while (g->iv_got < sizeof(g->iv_msg)) {
		int fds[HBL_FRAME_FDS];
		unsigned nfds = 0;
		ssize_t n = hbc_recv_fds(g->iv_fd, g->iv_msg + g->iv_got,
					sizeof(g->iv_msg) - g->iv_got, fds, &nfds, HBL_FRAME_FDS);
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
static int iv_message(struct hbl_group *g, int64_t val, int fd)
{
	if (fd >= 0)
		close(fd);
	/* QEMU rejects these too: ids out of range, a second pool, its own id leaving. */
	if (val < -1 || val > HBL_IVSHMEM_MAX_PEER || val == -1)
		return -EPROTO;
	if (fd < 0 && (uint64_t)val == g->iv_peer)
		return -EPROTO;
	return 0;
}

int hbl_ivshmem_drain(struct hb_client *c)
{
	for (size_t i = 0; i < c->n_groups; i++) {
		struct hbl_group *g = &c->groups[i];

		if (g->iv_fd < 0 || !g->iv_ready)
			continue;
		for (int k = 0; k < HBL_IVSHMEM_DRAIN_BATCH; k++) {
			int64_t val;
			int fd, r;

			r = iv_recv(g, &val, &fd);
			if (r == 0)
				break;
			if (r > 0)
				r = iv_message(g, val, fd);
			/* The daemon never closes a live VM's ivshmem connection, and QEMU could
			 * not reconnect either: losing it ends the client. */
			if (r < 0)
				return hbl_break(c, -r);
		}
	}
	return 0;
}

/* The next handshake message, waiting for it. The channel is read meanwhile, so that events
 * the daemon sends during our handshake are queued and a dead daemon is noticed. */
static int iv_next(struct hb_client *c, struct hbl_group *g, int64_t *val, int *fd)
{
	for (;;) {
		struct pollfd pfd[2] = {
		    {.fd = g->iv_fd, .events = POLLIN},
		    {.fd = c->fd, .events = POLLIN},
		};
		int r = iv_recv(g, val, fd);

		if (r != 0)
			return r;
		if (poll(pfd, 2, HBL_WAIT_SLICE_MS) < 0 && errno != EINTR)
			return -errno;
		if (pfd[1].revents) {
			r = hbl_read_available(c, HBL_DISPATCH_BATCH);
			if (r < 0)
				return r;
		}
	}
}

/* Version, our id, then (after any early peer messages, as QEMU allows) -1 with the pool. */
static int iv_handshake(struct hb_client *c, struct hbl_group *g)
{
	int64_t val = 0;
	int fd = -1, r;

	r = iv_next(c, g, &val, &fd);
	if (r < 0)
		return r;
	if (val != 0 || fd >= 0)
		goto err_proto;
	r = iv_next(c, g, &val, &fd);
	if (r < 0)
		return r;
	if (val < 0 || val > HBL_IVSHMEM_MAX_PEER || fd >= 0)
		goto err_proto;
	g->iv_peer = (uint32_t)val;
	for (;;) {
		r = iv_next(c, g, &val, &fd);
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

int hbl_send_attach(struct hb_client *c, struct hbl_group *g, uint32_t peer, struct hbl_reply *reply)
{
	Attach a = ATTACH__INIT;
	ClientMsg m = CLIENT_MSG__INIT;

	a.group = g->id;
	a.ivshmem_peer = peer;
	m.body_case = CLIENT_MSG__BODY_ATTACH;
	m.attach = &a;
	return hbl_call(c, &m, SERVER_MSG__BODY__NOT_SET, reply);
}

static int attach_vm(struct hb_client *c, struct hbl_group *g, const GroupInfo *gi)
{
	struct hbl_reply reply;
	int r;

	if (!gi->ivshmem_path || gi->ivshmem_path[0] != '/')
		return -EPROTO;
	r = hbc_unix_connect(gi->ivshmem_path);
	if (r < 0)
		return r;
	g->iv_fd = r;
	r = iv_handshake(c, g);
	if (r < 0)
		return r;
	g->iv_ready = true;
	/* Tells the daemon which ivshmem peer is us; an fd on this reply would be unexpected
	 * and is closed with it. */
	r = hbl_send_attach(c, g, g->iv_peer, &reply);
	if (r < 0)
		return r;
	hbl_reply_free(&reply);
	return 0;
}

static int attach_host(struct hb_client *c, struct hbl_group *g)
{
	struct hbl_reply reply;
	int fd, r;

	r = hbl_send_attach(c, g, 0, &reply);
	if (r < 0)
		return r;
	if (reply.nfds != 1) {
		hbl_reply_free(&reply);
		return -EPROTO;
	}
	fd = reply.fds[0];
	reply.nfds = 0;
	hbl_reply_free(&reply);
	return hbk_pool_window_open(&g->win, fd, g->id, g->pool_size, g->pool_instance,
				   HBK_POOL_WINDOW_SEALED);
}

int hbl_attach_groups(struct hb_client *c, const Welcome *w)
{
	if (c->port)
		return hbl_kvm_attach_groups(c);
	for (size_t i = 0; i < c->n_groups; i++) {
		int r = c->vm ? attach_vm(c, &c->groups[i], w->groups[i])
			      : attach_host(c, &c->groups[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static struct hbl_group *find_group(struct hb_client *c, uint32_t id)
{
	for (size_t i = 0; i < c->n_groups; i++)
		if (c->groups[i].id == id && c->groups[i].win.base)
			return &c->groups[i];
	return NULL;
}

int hbl_map_desc(struct hb_client *c, const BufferDesc *desc, bool writable, struct hbl_mapping *m)
{
	struct hbl_group *g;
	struct hbp_refdir d;
	uint32_t *refs;
	void *base;
	int r;

	memset(m, 0, sizeof(*m));
	/* The descriptor comes from the daemon: wrong here means a daemon bug (EPROTO). The
	 * directory is in shared memory: wrong there means a hostile or broken peer (EBADMSG). */
	if (!desc)
		return -EPROTO;
	g = find_group(c, desc->group);
	if (!g)
		return -EPROTO;
	if (desc->size == 0 || desc->size >= g->win.size || desc->first_offset >= HBP_PAGE_SIZE)
		return -EPROTO;
	if (desc->pages != (desc->first_offset + desc->size + HBP_PAGE_SIZE - 1) / HBP_PAGE_SIZE ||
	    desc->pages >= g->win.pages)
		return -EPROTO;

	refs = malloc((size_t)desc->pages * sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	d = (struct hbp_refdir){
	    .root = desc->root_ref,
	    .depth = desc->depth,
	    .pages = desc->pages,
	    .first_offset = desc->first_offset,
	    .size = desc->size,
	};
	r = hbk_pool_window_walk(&g->win, &d, refs);
	if (r < 0) {
		r = r == -ENOMEM ? r : -EBADMSG;
		goto err_refs;
	}
	r = hbk_pool_window_map(&g->win, refs, desc->pages, writable, &base);
	if (r < 0)
		goto err_refs;
	free(refs);

	m->group = g;
	m->base = base;
	m->len = (size_t)desc->pages * HBP_PAGE_SIZE;
	m->data = (uint8_t *)base + desc->first_offset;
	m->size = (size_t)desc->size;
	return 0;

err_refs:
	free(refs);
	return r;
}

void hbl_unmap(struct hbl_mapping *m)
{
	if (m->xen.kind != HBX_MAP_NONE)
		hbx_unmap(m);
	else
		hbk_pool_window_unmap(m->base, m->len);
	memset(m, 0, sizeof(*m));
}
