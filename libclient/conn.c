/* The connection to the daemon: transport, framing, sticky errors (see conn.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cred.h"
#include "common/log.h"
#include "common/sock.h"
#include "libclient/conn.h"
#include "protocol/limits.h"
#include "protocol/resync.h"

int hbl_conn_broken(const struct hbl_conn *conn)
{
	/* Read without the lock by hb_get_fd and hb_dispatch's unlocked poll. */
	return -__atomic_load_n(&conn->broken, __ATOMIC_ACQUIRE);
}

int hbl_conn_break(struct hbl_conn *conn, int err)
{
	if (!conn->broken) {
		__atomic_store_n(&conn->broken, err, __ATOMIC_RELEASE);
		/* Shut down rather than close: the fd number stays ours until hb_disconnect, and
		 * whoever polls it (another thread in hb_dispatch, the application's loop) wakes
		 * up to an EOF instead of waiting for a daemon that will never speak again. The
		 * daemon sees the same EOF and ends the session. */
		conn->tp.ops->shutdown(&conn->tp);
		/* No completion can arrive any more: every pending fence completes now, with
		 * this errno, so no poller of a sync fd hangs (fences.md §5.5). */
		if (conn->on_break)
			conn->on_break(conn->ctx, err);
	}
	return -conn->broken;
}

/* Bytes asked of a greedy recvmsg: a few frames' worth; a short answer means "empty". */
#define HBL_RX_CHUNK 16384

/* The sticky errno a transport failure leaves behind. */
static int io_error(int err)
{
	return err == EPIPE ? EPIPE : ECONNRESET;
}

int hbl_conn_lose(struct hbl_conn *conn, int err, bool restarted)
{
	if (!conn->resumable || conn->broken)
		return hbl_conn_break(conn, err);
	if (!conn->lost) {
		conn->lost = true;
		conn->lost_err = err;
		conn->restarted = restarted;
	}
	return -HBL_LOST;
}

void hbl_conn_reset_input(struct hbl_conn *conn)
{
	hbp_bytes_consume(&conn->rx, conn->rx.len);
	hbc_close_fds(conn->rx_fds, &conn->rx_nfds);
	conn->scan_from = 0;
}

void hbl_conn_replace(struct hbl_conn *conn, const struct hbb_transport *tp)
{
	struct epoll_event ev = {.events = EPOLLIN};

	if (conn->tp.ops) {
		if (conn->pub_fd >= 0)
			epoll_ctl(conn->pub_fd, EPOLL_CTL_DEL, conn->tp.fd, NULL);
		conn->tp.ops->close(&conn->tp, true);
	}
	conn->tp = *tp;
	ev.data.fd = conn->tp.fd;
	if (conn->pub_fd >= 0)
		epoll_ctl(conn->pub_fd, EPOLL_CTL_ADD, conn->tp.fd, &ev);
	hbl_conn_reset_input(conn);
}

/* ---- the socket transport (unix:, vm:) -------------------------------------------------- */

static ssize_t sock_recv(struct hbb_transport *t, void *buf, size_t len, int *fds, unsigned *nfds,
			 unsigned max)
{
	ssize_t n = hbc_recv_fds(t->fd, buf, len, fds, nfds, max);

	return n == -EWOULDBLOCK ? -EAGAIN : n;
}

static ssize_t sock_send(struct hbb_transport *t, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(t->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

static void sock_shutdown(struct hbb_transport *t)
{
	shutdown(t->fd, SHUT_RDWR);
}

static void sock_close(struct hbb_transport *t, bool broken)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

static const struct hbb_transport_ops socket_transport = {
    .version = HBB_GUEST_VERSION,
    .recv = sock_recv,
    .send = sock_send,
    .shutdown = sock_shutdown,
    .close = sock_close,
    .pollout = true,
};

int hbl_conn_open_socket(struct hbl_conn *conn, const char *path)
{
	int fd = hbc_unix_connect(path), r;
	uid_t uid;

	if (fd < 0) {
		log_debug("%s: %s", path, strerror(-fd));
		return fd;
	}
	/* Nothing is sent before we know the daemon is the daemon: whoever could put a socket
	 * in its place must not learn what we would say, nor answer it. */
	r = hbc_server_check(fd, &uid);
	if (r < 0) {
		log_debug("%s is served by uid %u, not by hyperbufd (root, this user, or "
			  "$HYPERBUF_DAEMON_UID): refusing to talk to it",
			  path, (unsigned)uid);
		close(fd);
		return r;
	}
	conn->tp = (struct hbb_transport){.ops = &socket_transport, .fd = fd};
	return 0;
}

void hbl_conn_close(struct hbl_conn *conn)
{
	if (conn->tp.ops)
		conn->tp.ops->close(&conn->tp, conn->broken != 0);
	conn->tp.ops = NULL;
	if (conn->pub_fd >= 0)
		close(conn->pub_fd);
	conn->pub_fd = -1;
	hbc_close_fds(conn->rx_fds, &conn->rx_nfds);
	hbp_bytes_free(&conn->rx);
	hbp_bytes_free(&conn->tx);
}

/* ---- frames ------------------------------------------------------------------------------ */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Receives into the input: want bytes exactly while the connection is read exactly, else as
 * much as has arrived (at least want). 1 when something came, 0 when the transport has
 * nothing (or came back short before: see conn.h), or what hbl_conn_lose returns.
 */
static int rx_more(struct hbl_conn *conn, size_t want)
{
	size_t ask = conn->exact || want > HBL_RX_CHUNK ? want : HBL_RX_CHUNK;
	ssize_t got;
	int r;

	if (conn->rx_dry)
		return 0;
	r = hbp_bytes_reserve(&conn->rx, ask);
	if (r < 0)
		return r;
	hbl_count(&conn->n_recvs);
	got = conn->tp.ops->recv(&conn->tp, conn->rx.data + conn->rx.len, ask, conn->rx_fds,
				 &conn->rx_nfds, HBB_FRAME_FDS);
	if (got == -EAGAIN)
		return 0;
	if (got <= 0)
		return hbl_conn_lose(conn, got == 0 ? EPIPE : io_error((int)-got), false);
	conn->rx.len += (size_t)got;
	if (!conn->exact && (size_t)got < ask && hbl_conn_polls_all(conn))
		conn->rx_dry = true;
	return 1;
}

/*
 * A channel's input (vm:, kvm:) is scanned for resync markers wherever they land, as the daemon
 * scans its side (protocol/resync.c): a marker saying the daemon restarted may cut the frame
 * the last daemon was sending. Whatever follows such a marker is the resync's to discard.
 */
static size_t channel_want(const struct hbl_conn *conn)
{
	long l;

	if (conn->rx.len < HBP_FRAME_HEADER)
		return HBP_FRAME_HEADER - conn->rx.len;
	l = hbp_frame_peek(conn->rx.data, conn->rx.len, HBP_FRAME_MAX, NULL);
	if (l >= 0)
		return HBP_FRAME_HEADER + (size_t)le32(conn->rx.data) - conn->rx.len;
	/* Not a frame's length: the start of a marker, whose end is on its way. */
	return conn->rx.len < HBP_RESYNC_LEN ? HBP_RESYNC_LEN - conn->rx.len : 0;
}

static long rx_channel(struct hbl_conn *conn, const uint8_t **payload)
{
	for (;;) {
		struct hbp_resync m;
		size_t n = 0, want;
		long l;
		int r;

		switch (hbp_resync_split(conn->rx.data, conn->rx.len, &conn->scan_from, &n, &m)) {
		case HBP_SPLIT_FRAME:
			l = hbp_frame_peek(conn->rx.data, conn->rx.len, HBP_FRAME_MAX, payload);
			if (l > 0)
				return l;
			/* Bytes that fail the length check may be a marker still arriving. */
			if (l < 0 && conn->scan_from >= HBP_FRAME_HEADER)
				return hbl_conn_break(conn, EPROTO);
			break;
		case HBP_SPLIT_WAIT:
			break;
		case HBP_SPLIT_DROP:
			hbl_conn_consume(conn, n);
			continue;
		case HBP_SPLIT_MARKER:
			hbl_conn_consume(conn, n);
			if (m.status == HBP_RESYNC_RESTARTED)
				return hbl_conn_lose(conn, ECONNRESET, true);
			continue; /* an answer to a marker of ours we no longer wait for */
		}
		want = channel_want(conn);
		if (!want)
			return hbl_conn_break(conn, EPROTO);
		r = rx_more(conn, want);
		if (r <= 0)
			return r;
	}
}

void hbl_conn_consume(struct hbl_conn *conn, size_t n)
{
	hbp_bytes_consume(&conn->rx, n);
	conn->scan_from = conn->scan_from > n ? conn->scan_from - n : 0;
}

/* Receives the rest of the current frame. Returns its payload length, 0 if the transport has
 * nothing more for now, -HBL_LOST, or a negative errno (broken, except -ENOMEM). */
static long rx_frame(struct hbl_conn *conn, const uint8_t **payload)
{
	if (conn->channel)
		return rx_channel(conn, payload);
	for (;;) {
		size_t want;
		long l;
		int r;

		if (conn->rx.len >= HBP_FRAME_HEADER) {
			/* The length is checked here, before the payload gets any memory. */
			l = hbp_frame_peek(conn->rx.data, conn->rx.len, HBP_FRAME_MAX, payload);
			if (l != 0)
				return l < 0 ? hbl_conn_break(conn, EPROTO) : l;
			want = HBP_FRAME_HEADER + le32(conn->rx.data) - conn->rx.len;
		} else {
			want = HBP_FRAME_HEADER - conn->rx.len;
		}
		r = rx_more(conn, want);
		if (r <= 0)
			return r;
	}
}

void hbl_conn_rearm(struct hbl_conn *conn)
{
	conn->rx_dry = false;
}

bool hbl_conn_has_frame(const struct hbl_conn *conn)
{
	struct hbp_resync m;
	size_t scan_from = conn->scan_from, n = 0;

	if (!conn->channel || !conn->rx.len)
		return hbp_frame_peek(conn->rx.data, conn->rx.len, HBP_FRAME_MAX, NULL) > 0;
	/* A channel's input: a marker (the daemon restarted) or stale bytes to drop are work
	 * for the reader too, and no poll would show them. */
	switch (hbp_resync_split(conn->rx.data, conn->rx.len, &scan_from, &n, &m)) {
	case HBP_SPLIT_WAIT:
		return false;
	case HBP_SPLIT_FRAME:
		return hbp_frame_peek(conn->rx.data, conn->rx.len, HBP_FRAME_MAX, NULL) > 0;
	default:
		return true;
	}
}

int hbl_conn_read_frame(struct hbl_conn *conn, ServerMsg **msg, int *fds, unsigned *nfds)
{
	const uint8_t *payload = NULL;
	long plen = rx_frame(conn, &payload);

	if (plen <= 0)
		return (int)plen;
	*msg = hbp_frame_get_server(payload, (size_t)plen);
	hbl_count(&conn->n_frames_in);
	*nfds = 0;
	/* Read greedily, the fds received are the reply's (conn.h), wherever it is. */
	if (conn->exact || (*msg && (*msg)->id != 0)) {
		memcpy(fds, conn->rx_fds, sizeof(conn->rx_fds));
		*nfds = conn->rx_nfds;
		conn->rx_nfds = 0;
	}
	hbl_conn_consume(conn, HBP_FRAME_HEADER + (size_t)plen);
	if (!*msg) {
		hbc_close_fds(fds, nfds);
		return hbl_conn_break(conn, EPROTO);
	}
	return 1;
}

/*
 * The daemon refuses a connection with one frame, ServerMsg{id 0, error}, and hangs up: a
 * send that fails then has that frame waiting to be read, and its errno is the one to keep
 * (EACCES, EUSERS), not the EPIPE the hang-up made. 0 if no such frame is there.
 */
static int pending_refusal(struct hbl_conn *conn)
{
	const uint8_t *payload = NULL;
	long plen;
	ServerMsg *m;
	int err = 0;

	conn->rx_dry = false;
	plen = rx_frame(conn, &payload);
	if (plen <= 0)
		return 0;
	m = hbp_frame_get_server(payload, (size_t)plen);
	if (m && m->id == 0 && m->error && m->body_case == SERVER_MSG__BODY__NOT_SET)
		err = (int)m->error;
	if (m)
		server_msg__free_unpacked(m, NULL);
	hbl_conn_consume(conn, HBP_FRAME_HEADER + (size_t)plen);
	return err;
}

int hbl_conn_flush(struct hbl_conn *conn, size_t *off)
{
	while (*off < conn->tx.len) {
		ssize_t n;
		int refusal;

		hbl_count(&conn->n_sends);
		n = conn->tp.ops->send(&conn->tp, conn->tx.data + *off, conn->tx.len - *off);
		if (n == -EAGAIN)
			return -EAGAIN;
		if (n < 0) {
			refusal = pending_refusal(conn);
			if (refusal) {
				log_debug("the daemon refused the connection: %s",
					  strerror(refusal));
				return hbl_conn_break(conn, refusal);
			}
			return hbl_conn_lose(conn, io_error((int)-n), false);
		}
		*off += (size_t)n;
	}
	return 0;
}

int hbl_conn_write_all(struct hbl_conn *conn, const void *buf, size_t len, int timeout_ms)
{
	size_t off = 0;

	while (off < len) {
		struct pollfd pfd = {.fd = conn->tp.fd, .events = POLLOUT};
		ssize_t n = conn->tp.ops->send(&conn->tp, (const char *)buf + off, len - off);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (n != -EAGAIN)
			return (int)n;
		/* A vchan's event channel never says "writable": room shows up as an event. */
		if (!conn->tp.ops->pollout)
			pfd.events = POLLIN;
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
	}
	return 0;
}
