/* A Xen domU's raw stream: see cf_raw.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/backend.h"
#include "tests/xen/cf_raw.h"

/* The relay's buffer each way, and how long it sleeps at most: a vchan's event says "new
 * data", and this bounds what a missed one costs. */
#define RELAY_BUF     65536
#define RELAY_POLL_MS 20

/* Moves what sock holds onto the vchan, as far as the vchan takes it: false once it broke. */
static bool relay_out(struct hbb_transport *t, uint8_t *out, size_t *out_len)
{
	while (*out_len > 0) {
		ssize_t n = t->ops->send(t, out, *out_len);

		if (n == -EAGAIN)
			return true;
		if (n <= 0)
			return false;
		memmove(out, out + n, *out_len - (size_t)n);
		*out_len -= (size_t)n;
	}
	return true;
}

/* Moves what the daemon sent into sock, as far as sock takes it: the role may not read (a
 * slow reader is a case of its own), and then the vchan fills and the daemon sees a slow
 * reader, while the role's requests still go through. 0, or 1 once the daemon ended the
 * stream (or it broke). */
static int relay_in(struct hbb_transport *t, int sock, uint8_t *in, size_t *in_len)
{
	for (;;) {
		int fds[HBB_FRAME_FDS];
		unsigned nfds = 0;
		ssize_t n;

		while (*in_len > 0) {
			n = send(sock, in, *in_len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n <= 0)
				return 1;
			memmove(in, in + n, *in_len - (size_t)n);
			*in_len -= (size_t)n;
		}
		n = t->ops->recv(t, in, RELAY_BUF, fds, &nfds, HBB_FRAME_FDS);
		if (n == -EAGAIN)
			return 0;
		if (n <= 0)
			return 1; /* the daemon ended the stream (0), or it broke */
		*in_len = (size_t)n;
	}
}

/* Moves what the daemon sent into sock, and what sock holds onto the vchan, until the daemon
 * ends the stream. The role half-closing sock is the transport's shutdown (the daemon sees
 * the client gone and ends the stream, which ends this). */
static void relay_run(struct hbb_transport *t, int sock)
{
	static uint8_t out[RELAY_BUF], in[RELAY_BUF];
	size_t out_len = 0, in_len = 0;
	bool sock_eof = false, shut = false;

	for (;;) {
		struct pollfd p[2] = {{.fd = t->fd}, {.fd = sock}};

		if (relay_in(t, sock, in, &in_len) != 0 || !relay_out(t, out, &out_len))
			return;
		if (sock_eof && out_len == 0 && !shut) {
			t->ops->shutdown(t);
			shut = true;
		}
		/* The vchan's fd says "new data" or "room again", and stays readable until recv
		 * takes the event: while sock is full it is not watched (the timeout retries). */
		if (in_len == 0)
			p[0].events = POLLIN;
		if (in_len > 0)
			p[1].events |= POLLOUT;
		if (!sock_eof && out_len < sizeof(out))
			p[1].events |= POLLIN;
		if (poll(p, 2, RELAY_POLL_MS) < 0 && errno != EINTR)
			return;
		if ((p[1].events & POLLIN) && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = read(sock, out + out_len, sizeof(out) - out_len);

			if (r > 0)
				out_len += (size_t)r;
			else if (r == 0 || (errno != EINTR && errno != EAGAIN))
				sock_eof = true;
		}
	}
}

/* The relay's process: opens the vchan as the library does (reporting the result on
 * status), then pumps. It keeps only its end of the socketpair and status: the role's other
 * descriptors (its stream to the hub) must not stay open here. */
static void relay_main(int sock, int status)
{
	struct hbb_transport t;
	int r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	/* Above 4 first, so that neither dup2 overwrites the other's source. */
	sock = fcntl(sock, F_DUPFD, 10);
	status = fcntl(status, F_DUPFD, 10);
	if (sock < 0 || status < 0 || dup2(sock, 3) < 0 || dup2(status, 4) < 0)
		_exit(1);
	close_range(5, ~0u, 0);
	r = hbx_vchan_open(&t);
	if (write(4, &r, sizeof(r)) != (ssize_t)sizeof(r) || r < 0)
		_exit(1);
	close(4);
	relay_run(&t, 3);
	t.ops->close(&t, false);
	_exit(0);
}

int cfx_raw_open(pid_t *pid)
{
	int sv[2], st[2], r = -EIO;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (pipe2(st, O_CLOEXEC) < 0) {
		r = -errno;
		goto err_pair;
	}
	fflush(stdout);
	fflush(stderr);
	*pid = fork();
	if (*pid < 0) {
		r = -errno;
		goto err_pipe;
	}
	if (*pid == 0)
		relay_main(sv[1], st[1]);
	close(sv[1]);
	close(st[1]);
	if (read(st[0], &r, sizeof(r)) != (ssize_t)sizeof(r) || r < 0) {
		close(st[0]);
		close(sv[0]);
		waitpid(*pid, NULL, 0);
		return r < 0 ? r : -EIO;
	}
	close(st[0]);
	return sv[0];
err_pipe:
	close(st[0]);
	close(st[1]);
err_pair:
	close(sv[0]);
	close(sv[1]);
	return r;
}
