/* The conformance suite's side stream on Xen: see cf_stream.h. */
#include <errno.h>
#include <libxenvchan.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/raw_wire.h"
#include "tests/xen/cf_stream.h"

/* Ring sizes asked of the server: the lines are short, one request and one answer at a time. */
#define CFX_RING 4096
/* Events are the relay's wake-up; this bounds a lost one's cost. */
#define CFX_POLL_MS 500
/* The socket is blocking: a write waits for room (the bound is for a non-blocking one). */
#define CFX_WRITE_MS 60000

/* What the vchan holds, into the socket: 0, or -1 when the socket is gone. data_ready also
 * asks the peer for an event at its next write. */
static int vchan_to_sock(struct libxenvchan *v, int sock)
{
	char buf[CFX_RING];
	int n;

	while ((n = libxenvchan_data_ready(v)) > 0) {
		n = libxenvchan_read(v, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
		if (n <= 0)
			break;
		if (hbw_send_all(sock, buf, (size_t)n, CFX_WRITE_MS) < 0)
			return -1;
	}
	return 0;
}

/* Pumps both ways until one side closes. The vchan is non-blocking: a write takes what fits
 * and the rest waits in out. */
static void relay(struct libxenvchan *v, int sock)
{
	char out[CFX_RING];
	size_t out_len = 0;
	bool sock_eof = false;
	int efd = libxenvchan_fd_for_select(v);

	v->blocking = 0;
	for (;;) {
		struct pollfd p[2] = {{.fd = efd, .events = POLLIN}, {.fd = sock}};
		int n;

		if (vchan_to_sock(v, sock) < 0)
			return;
		if (out_len) {
			n = libxenvchan_write(v, out, out_len);
			if (n < 0)
				return;
			memmove(out, out + n, out_len - (size_t)n);
			out_len -= (size_t)n;
		}
		if ((sock_eof && !out_len) || !libxenvchan_is_open(v))
			return;
		if (!sock_eof && out_len < sizeof(out))
			p[1].events = POLLIN;
		if (poll(p, 2, CFX_POLL_MS) < 0 && errno != EINTR)
			return;
		/* Consumes the event and unmasks the port; it would block without one. */
		if (p[0].revents & POLLIN)
			libxenvchan_wait(v);
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(sock, out + out_len, sizeof(out) - out_len);

			if (r > 0)
				out_len += (size_t)r;
			else if (r == 0 || errno != EINTR)
				sock_eof = true;
		}
	}
}

/* The relay's process: the vchan (server for domid in dom0, else dom0's client), then the
 * pump. Keeps only its end of the socketpair: the caller's other descriptors (a hub's other
 * streams) must not stay open here, or their far ends would never see EOF. */
static void relay_main(bool server, int domid, int timeout_ms, int sock)
{
	struct libxenvchan *v = NULL;
	char path[128];
	uint64_t end = hbw_now_ms() + (uint64_t)timeout_ms;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (dup2(sock, 3) < 0)
		_exit(1);
	close_range(4, ~0u, 0);
	snprintf(path, sizeof(path), "%s/%d", CFX_PATH, domid);
	if (server) {
		v = libxenvchan_server_init(NULL, domid, path, CFX_RING, CFX_RING);
	} else {
		/* Until dom0 has published it. */
		while (!(v = libxenvchan_client_init(NULL, 0, path)) && hbw_now_ms() < end)
			usleep(200000);
	}
	if (!v) {
		fprintf(stderr, "cf_stream: no vchan at %s: %s\n", path, strerror(errno));
		_exit(1);
	}
	relay(v, 3);
	libxenvchan_close(v);
	_exit(0);
}

static int start(bool server, int domid, int timeout_ms, pid_t *relay_pid)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0)
		relay_main(server, domid, timeout_ms, sv[1]);
	close(sv[1]);
	*relay_pid = pid;
	return sv[0];
}

int cfx_stream_serve(int domid, pid_t *relay_pid)
{
	return start(true, domid, 0, relay_pid);
}

int cfx_stream_connect(int domid, int timeout_ms, pid_t *relay_pid)
{
	return start(false, domid, timeout_ms, relay_pid);
}
