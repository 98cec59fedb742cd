/*
 * The channel to the daemon: framing, fd passing, requests and replies, sticky errors.
 * The channel is a socket, or inside a KVM guest a virtio-serial port (c->port), which is a
 * character device: plain read and write, and no fds ever come with it.
 *
 * Frames are received one at a time, never past the end of the current one: the daemon
 * attaches fds to the first byte of a frame, and a recvmsg that stops at the frame's end can
 * only ever collect the fds of that frame. The cost is a second recvmsg per frame.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libclient/private.h"

int hbl_broken(const struct hb_client *c)
{
	/* Read without the lock by hb_get_fd and hb_dispatch's unlocked poll. */
	return -__atomic_load_n(&c->broken, __ATOMIC_ACQUIRE);
}

int hbl_break(struct hb_client *c, int err)
{
	if (!c->broken) {
		__atomic_store_n(&c->broken, err, __ATOMIC_RELEASE);
		/* Shut down rather than close: the fd number stays ours until hb_disconnect, and
		 * whoever polls it (another thread in hb_dispatch, the application's loop) wakes
		 * up to an EOF instead of waiting for a daemon that will never speak again. The
		 * daemon sees the same EOF and ends the session. */
		c->tp->shutdown(c);
		/* No completion can arrive any more: every pending fence completes now, with
		 * this errno, so no poller of a sync fd hangs (fences.md §5.5). */
		hbl_fences_fail_all(c, -err);
	}
	return -c->broken;
}

/* The sticky errno a transport failure leaves behind. */
static int io_error(int err)
{
	return err == EPIPE ? EPIPE : ECONNRESET;
}

static ssize_t sock_recv(struct hb_client *c, void *buf, size_t len, int *fds, unsigned *nfds,
			 unsigned max)
{
	ssize_t n = hbc_recv_fds(c->fd, buf, len, fds, nfds, max);

	return n == -EWOULDBLOCK ? -EAGAIN : n;
}

static ssize_t sock_send(struct hb_client *c, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

static void sock_shutdown(struct hb_client *c)
{
	shutdown(c->fd, SHUT_RDWR);
}

static void sock_close(struct hb_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

const struct hbl_transport_ops hbl_socket_transport = {
    .recv = sock_recv,
    .send = sock_send,
    .shutdown = sock_shutdown,
    .close = sock_close,
    .pollout = true,
};

/* A KVM guest's virtio-serial port (kvm:, libclient/kvm.c): a character device, no fds. */
static ssize_t port_recv(struct hb_client *c, void *buf, size_t len, int *fds, unsigned *nfds,
			 unsigned max)
{
	ssize_t n;

	do
		n = read(c->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

static ssize_t port_send(struct hb_client *c, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(c->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

/* A port cannot be shut down: put /dev/null (always readable, at EOF) in its place, which also
 * frees the port for the next process. */
static void port_shutdown(struct hb_client *c)
{
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (nul >= 0) {
		dup3(nul, c->fd, O_CLOEXEC);
		close(nul);
	}
}

/* A port gives the daemon no EOF (it stays open on the host for the next process): say
 * goodbye instead, unless the connection already broke. */
static void port_close(struct hb_client *c)
{
	if (c->fd >= 0 && !c->broken)
		hbl_kvm_goodbye(c->fd);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

const struct hbl_transport_ops hbl_port_transport = {
	.recv = port_recv,
	.send = port_send,
	.shutdown = port_shutdown,
	.close = port_close,
	.pollout = true,
};

size_t hbl_pollfds(const struct hb_client *c, struct pollfd *pfd, size_t max)
{
	size_t n = 0;

	pfd[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
	for (size_t i = 0; i < c->n_groups && n < max; i++)
		if (c->groups[i].iv_fd >= 0 && c->groups[i].iv_ready)
			pfd[n++] = (struct pollfd){.fd = c->groups[i].iv_fd, .events = POLLIN};
	return n;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Receives the rest of the current frame. Returns 1 with the payload, 0 if the socket has
 * nothing more for now, or a negative errno (the client is then broken, except -ENOMEM). */
static int rx_frame(struct hb_client *c, const uint8_t **payload, size_t *plen)
{
	for (;;) {
		size_t want;
		ssize_t n;
		int r;

		if (c->rx.len >= HBP_FRAME_HEADER) {
			/* The length is checked here, before the payload gets any memory. */
			long l = hbp_frame_peek(c->rx.data, c->rx.len, HBP_FRAME_MAX, payload);
			if (l < 0)
				return hbl_break(c, EPROTO);
			if (l > 0) {
				*plen = (size_t)l;
				return 1;
			}
			want = HBP_FRAME_HEADER + le32(c->rx.data) - c->rx.len;
		} else {
			want = HBP_FRAME_HEADER - c->rx.len;
		}
		r = hbp_bytes_reserve(&c->rx, want);
		if (r < 0)
			return r;
		n = c->tp->recv(c, c->rx.data + c->rx.len, want, c->rx_fds, &c->rx_nfds,
				HBL_FRAME_FDS);
		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return hbl_break(c, io_error((int)-n));
		if (n == 0)
			return hbl_break(c, EPIPE);
		c->rx.len += (size_t)n;
	}
}

static struct hbl_request *find_request(struct hb_client *c, uint32_t id)
{
	for (struct hbl_request *q = c->requests; q; q = q->next)
		if (q->id == id && !q->done)
			return q;
	return NULL;
}

/* Hands one whole frame to whoever waits for it: an event to the queue, a fence completion to
 * its point, a reply to its request (then returns 1). Anything else from the daemon is a
 * protocol violation. */
static int handle_frame(struct hb_client *c, const uint8_t *payload, size_t plen)
{
	ServerMsg *m = hbp_frame_get_server(payload, plen);
	int fds[HBL_FRAME_FDS];
	unsigned nfds = c->rx_nfds;
	struct hbl_request *q;
	int r;

	memcpy(fds, c->rx_fds, sizeof(fds));
	c->rx_nfds = 0;
	hbp_bytes_consume(&c->rx, c->rx.len);
	if (!m) {
		r = hbl_break(c, EPROTO);
		goto err_fds;
	}
	if (m->id == 0) {
		/* Events never carry fds. */
		hbc_close_fds(fds, &nfds);
		if (m->body_case == SERVER_MSG__BODY_FENCE) {
			hbl_fence_done(c, m->fence);
			server_msg__free_unpacked(m, NULL);
			return 0;
		}
		if (m->body_case != SERVER_MSG__BODY_EVENT) {
			r = hbl_break(c, EPROTO);
			goto err_msg;
		}
		r = hbl_event_push(c, m->event);
		server_msg__free_unpacked(m, NULL);
		return r;
	}
	q = find_request(c, m->id);
	if (!q) {
		r = hbl_break(c, EPROTO);
		goto err_msg;
	}
	q->reply = m;
	memcpy(q->fds, fds, sizeof(fds));
	q->nfds = nfds;
	q->done = true;
	return 1;

err_msg:
	server_msg__free_unpacked(m, NULL);
err_fds:
	hbc_close_fds(fds, &nfds);
	return r;
}

int hbl_read_available(struct hb_client *c, int max)
{
	const uint8_t *payload = NULL;
	size_t plen = 0;
	int handled, r;

	r = hbl_broken(c);
	if (r < 0)
		return r;
	r = hbl_ivshmem_drain(c);
	if (r < 0)
		return r;
	for (handled = 0; handled < max; handled++) {
		r = rx_frame(c, &payload, &plen);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		r = handle_frame(c, payload, plen);
		if (r < 0)
			return r;
		/* Nothing past a reply: its caller acts on it first. A sync's point must exist
		 * before the completion that may follow the reply is read. */
		if (r == 1)
			return handled + 1;
	}
	return handled;
}

/* Waits up to timeout_ms for something to read (and, with POLLOUT, for room to write). */
static int wait_io(struct hb_client *c, short extra, int timeout_ms)
{
	struct pollfd pfd[1 + HBP_MAX_GROUPS];
	size_t n = hbl_pollfds(c, pfd, sizeof(pfd) / sizeof(pfd[0]));

	/* A vchan's event channel never says "writable": room shows up as an input event. */
	if (c->tp->pollout)
		pfd[0].events |= extra;
	if (poll(pfd, n, timeout_ms) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* Sends c->tx whole. While the socket is full it keeps reading, so that neither side can end
 * up waiting for the other to drain. */
static int send_all(struct hb_client *c)
{
	size_t off = 0;
	int r;

	while (off < c->tx.len) {
		ssize_t n = c->tp->send(c, c->tx.data + off, c->tx.len - off);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (n != -EAGAIN)
			return hbl_break(c, io_error((int)-n));
		r = wait_io(c, POLLOUT, HBL_WAIT_SLICE_MS);
		if (r == 0)
			r = hbl_read_available(c, HBL_DISPATCH_BATCH);
		/* Half a frame on the wire cannot be taken back: the stream is lost. */
		if (r < 0)
			return off > 0 ? hbl_break(c, ECONNRESET) : r;
	}
	return 0;
}

static int wait_request(struct hb_client *c, struct hbl_request *q)
{
	int r;

	/* No timeout: the daemon answers every request, and a broken connection ends the
	 * wait through hbl_read_available. */
	for (;;) {
		r = hbl_read_available(c, HBL_DISPATCH_BATCH);
		if (r < 0)
			return r;
		if (q->done)
			return 0;
		r = wait_io(c, 0, HBL_WAIT_SLICE_MS);
		if (r < 0)
			return r;
	}
}

static uint32_t next_id(struct hb_client *c)
{
	uint32_t id = c->next_id++;

	if (c->next_id == 0)
		c->next_id = 1;
	return id;
}

int hbl_call(struct hb_client *c, ClientMsg *msg, ServerMsg__BodyCase want, struct hbl_reply *reply)
{
	struct hbl_request q = {0};
	struct hbl_request **pp;
	ServerMsg *m;
	int r;

	memset(reply, 0, sizeof(*reply));
	r = hbl_broken(c);
	if (r < 0)
		return r;
	q.id = next_id(c);
	msg->id = q.id;
	hbp_bytes_consume(&c->tx, c->tx.len);
	r = hbp_frame_put_client(&c->tx, msg, c->frame_max);
	if (r < 0)
		return r;
	q.next = c->requests;
	c->requests = &q;
	r = send_all(c);
	if (r == 0)
		r = wait_request(c, &q);
	for (pp = &c->requests; *pp != &q; pp = &(*pp)->next)
		;
	*pp = q.next;
	if (r < 0)
		goto err;

	m = q.reply;
	if (m->error != 0) {
		/* A positive errno for the caller; anything that cannot be one is nonsense. */
		r = m->error < 4096 ? -(int)m->error : -EPROTO;
		goto err;
	}
	if (want != SERVER_MSG__BODY__NOT_SET && m->body_case != want) {
		r = hbl_break(c, EPROTO);
		goto err;
	}
	reply->msg = m;
	memcpy(reply->fds, q.fds, sizeof(q.fds));
	reply->nfds = q.nfds;
	return 0;

err:
	if (q.reply)
		server_msg__free_unpacked(q.reply, NULL);
	hbc_close_fds(q.fds, &q.nfds);
	return r;
}

void hbl_reply_free(struct hbl_reply *reply)
{
	if (reply->msg)
		server_msg__free_unpacked(reply->msg, NULL);
	reply->msg = NULL;
	hbc_close_fds(reply->fds, &reply->nfds);
}
