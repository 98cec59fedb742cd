/*
 * The connection to the daemon: a transport (a socket for unix: and vm:, a virtio-serial port
 * for kvm:, a vchan for xen:, all behind struct hbb_transport) and the framing on it, with the
 * sticky error that ends it. It knows nothing of what the frames mean.
 *
 * Input is received greedily, as much as has arrived in one recvmsg, and a recvmsg that
 * came back short means the transport is empty until the next poll says otherwise (no
 * recvmsg that returns EAGAIN; not for a vchan: see hbl_conn_polls_all). Fds: the daemon attaches
 * them to the first byte of a reply (only replies carry fds), and the kernel ends a recvmsg right
 * after the fds' bytes. With one request in flight, the fds received can only be its reply's: they
 * are held until a reply frame is read. With more in flight (a resume sends them again) the fds'
 * frame would be ambiguous, so the connection is then read exactly: never past the current frame.
 * Requests posted without waiting (call.h) do not count: only a refusal answers one, without fds,
 * and only Attach replies carry fds, which hb_connect asks for before anything is posted.
 */
#ifndef HB_LIBCLIENT_CONN_H
#define HB_LIBCLIENT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "protocol/frame.h"
#include "protocol/hyperbuf.pb-c.h"

/* What a read or a write returns when the stream is lost but the session may be resumed
 * (the daemon restarted): the caller resumes (resume.c) or breaks. */
#define HBL_LOST ENOTCONN

struct hbl_conn {
	struct hbb_transport tp;
	int broken;         /* sticky positive errno, 0 while healthy; atomic reads */
	uint32_t frame_max; /* largest frame we send (the welcome's, capped by ours) */
	struct hbp_bytes rx;
	int rx_fds[HBB_FRAME_FDS]; /* received, held for the next reply frame */
	unsigned rx_nfds;
	bool exact; /* more than one reply outstanding: read no further than the current frame */
	bool
	    rx_dry; /* a recvmsg came back short: nothing more until the transport polls readable */
	struct hbp_bytes tx;
	/* A VM channel (vm:, kvm:): the daemon's resync markers may arrive anywhere in the
	 * stream (PROTOCOL.md §1.1, §8), so input is scanned for them. */
	bool channel;
	size_t scan_from;
	/* Restarts (docs/RESTART.md): with a token from the welcome, a lost stream is not the
	 * end: -HBL_LOST says so, and lost_err is what breaks the client if resuming fails. */
	bool resumable;
	bool lost, restarted; /* restarted: the daemon's marker said so; the stream is fine */
	int lost_err;
	int pub_fd; /* hb_get_fd: an epoll fd holding the transport's, stable across resumes */
	/* hb_counters: bumped with relaxed atomics (polls happen without the client's lock). */
	uint64_t n_recvs, n_sends, n_polls, n_wakes, n_frames_in, n_frames_out;
	/* Called once, when the connection breaks: no completion can arrive any more, so
	 * every pending fence must complete now (client.c wires it to sync.c). */
	void (*on_break)(void *ctx, int err);
	void *ctx;
};

/* Whether polling the transport shows everything it holds. A socket's or a port's poll does;
 * a vchan's event channel only tells of new data, not of data its ring or buffer still holds
 * (its transport says so with pollout false): it is read before it is polled, and a short read
 * does not mean it is empty. */
static inline bool hbl_conn_polls_all(const struct hbl_conn *conn)
{
	return conn->tp.ops->pollout;
}

/* Counts one more of *counter (hb_counters). */
static inline void hbl_count(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* A connection over a unix socket (unix:PATH, vm:PATH). */
int hbl_conn_open_socket(struct hbl_conn *conn, const char *path);
/* Frees everything, the transport's fd included. */
void hbl_conn_close(struct hbl_conn *conn);

/* -broken if the connection is broken, else 0. Safe without the client's lock. */
int hbl_conn_broken(const struct hbl_conn *conn);
/* Marks the connection broken with err (positive errno) unless it already is, shuts the
 * transport down (pollers wake to an EOF) and calls on_break; returns -broken. */
int hbl_conn_break(struct hbl_conn *conn, int err);

/* The next whole frame, unpacked and validated by the frame codec: 1 with *msg (free with
 * server_msg__free_unpacked) and, for a reply, the fds that came with it moved to fds[]
 * (*nfds), 0 if the transport has nothing more for now, -HBL_LOST, or a negative errno (the
 * connection is then broken, except for -ENOMEM). Receives at most once after the transport
 * came back short, until hbl_conn_rearm: the caller polls in between. */
int hbl_conn_read_frame(struct hbl_conn *conn, ServerMsg **msg, int *fds, unsigned *nfds);
/* The transport may have more (a poll said so, or a caller wants to know): receive again. */
void hbl_conn_rearm(struct hbl_conn *conn);
/* Whether a whole frame waits in the input (a poll would not show it). */
bool hbl_conn_has_frame(const struct hbl_conn *conn);

/* Writes as much of conn->tx from *off as the transport takes now. 0 when all is written,
 * -EAGAIN when it is full, -HBL_LOST, or a negative errno (broken). */
int hbl_conn_flush(struct hbl_conn *conn, size_t *off);
/* Writes buf whole (the transport may be full: waits for room, reading nothing). */
int hbl_conn_write_all(struct hbl_conn *conn, const void *buf, size_t len, int timeout_ms);

/* The stream is gone or the daemon restarted: -HBL_LOST when the session may be resumed, else
 * the connection breaks with err (returns -err). */
int hbl_conn_lose(struct hbl_conn *conn, int err, bool restarted);
/* A new transport in place of the old one (resuming): the old one is closed, the input
 * dropped, and hb_get_fd's epoll set follows. */
void hbl_conn_replace(struct hbl_conn *conn, const struct hbb_transport *tp);
/* Drops the first n bytes of the input. */
void hbl_conn_consume(struct hbl_conn *conn, size_t n);
/* Drops whatever input is buffered (a resync starts the stream afresh). */
void hbl_conn_reset_input(struct hbl_conn *conn);

#endif
