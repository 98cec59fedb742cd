/*
 * hyperbufctl's session with hyperbufd: one connection to the control (or host) socket, Hello
 * as a control client, then requests and their replies, each within the session's time limit.
 * Every failure is printed here, once, as "hyperbufctl: reason".
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/cred.h"
#include "protocol/limits.h"
#include "tools/hyperbufctl.h"

/* The daemon answers from its loop at once; a silent one is stuck, not slow. */
#define TIMEOUT_MS 10000
#define READ_CHUNK 65536
#define HELLO_ID   1u

void tool_ctl_vsay(const char *tail, const char *fmt, va_list ap)
{
	fputs("hyperbufctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
}

void tool_ctl_errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tool_ctl_vsay("\n", fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits for events on the socket until the deadline; 0, or -1 with the reason printed. */
static int wait_fd(struct tool_ctl_conn *c, short events)
{
	struct pollfd pfd = {.fd = c->fd, .events = events};
	uint64_t now;
	int r;

	for (;;) {
		now = now_ms();
		if (now >= c->deadline_ms) {
			tool_ctl_errmsg("%s: no answer from hyperbufd within %d s", c->path,
					TIMEOUT_MS / 1000);
			return -1;
		}
		/* UINT64_MAX: events, which come when they come. */
		r = poll(&pfd, 1, c->deadline_ms == UINT64_MAX ? -1 : (int)(c->deadline_ms - now));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			tool_ctl_errmsg("poll: %s", strerror(errno));
			return -1;
		}
	}
}

/* A connection to path, or -errno (nothing printed). */
static int try_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/*
 * The daemon's control socket beside path (hyperbufd-control.sock: root's, never full), else
 * path itself, which also takes control sessions. Whichever answers must be hyperbufd:
 * root, this user, or $HYPERBUF_DAEMON_UID, before anything is sent.
 */
static int conn_open(struct tool_ctl_conn *c, const char *path)
{
	size_t len = strlen(path);
	uid_t uid;
	int fd = -ENOENT;

	c->deadline_ms = now_ms() + TIMEOUT_MS;
	if (len == 0 || len >= HBC_SUN_PATH_MAX) {
		tool_ctl_errmsg("%s: not a socket path (1 to %d bytes)", path,
				HBC_SUN_PATH_MAX - 1);
		return -1;
	}
	if (hbc_config_control_path(path, c->control) == 0)
		fd = try_connect(c->control);
	c->path = fd >= 0 ? c->control : path;
	if (fd < 0)
		fd = try_connect(path);
	if (fd < 0) {
		tool_ctl_errmsg("cannot connect to %s: %s%s", path, strerror(-fd),
				fd == -ENOENT || fd == -ECONNREFUSED ? " (is hyperbufd running?)"
								     : "");
		return -1;
	}
	c->fd = fd;
	if (hbc_server_check(fd, &uid) < 0) {
		tool_ctl_errmsg("%s is served by uid %u, not by hyperbufd (root, user "
				"hyperbuf or uid %u); if it is yours, set HYPERBUF_DAEMON_UID=%u",
				c->path, (unsigned)uid, (unsigned)geteuid(), (unsigned)uid);
		return -1;
	}
	return 0;
}

static int conn_send(struct tool_ctl_conn *c, const ClientMsg *m)
{
	struct hbp_bytes out = {0};
	size_t off = 0;
	ssize_t w;
	int r;

	r = hbp_frame_put_client(&out, m, HBP_FRAME_MAX);
	if (r < 0) {
		tool_ctl_errmsg("cannot encode a request: %s", strerror(-r));
		goto err;
	}
	while (off < out.len) {
		/* MSG_NOSIGNAL: a daemon that hangs up is an error message, not a SIGPIPE death. */
		w = send(c->fd, out.data + off, out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c, POLLOUT) < 0)
				goto err;
			continue;
		}
		tool_ctl_errmsg("%s: send: %s", c->path,
				w < 0 ? strerror(errno) : "nothing written");
		goto err;
	}
	hbp_bytes_free(&out);
	return 0;
err:
	hbp_bytes_free(&out);
	return -1;
}

/* The next reply from the daemon (events, which a control session should not even get, are
 * skipped). NULL with the reason printed on EOF, timeout or anything malformed. */
static ServerMsg *conn_recv(struct tool_ctl_conn *c)
{
	const uint8_t *payload;
	ServerMsg *m;
	ssize_t n;
	long len;

	for (;;) {
		len = hbp_frame_peek(c->in.data, c->in.len, HBP_FRAME_MAX, &payload);
		if (len < 0) {
			tool_ctl_errmsg("%s: protocol error: a frame with a bad length", c->path);
			return NULL;
		}
		if (len > 0) {
			m = hbp_frame_get_server(payload, (size_t)len);
			hbp_bytes_consume(&c->in, HBP_FRAME_HEADER + (size_t)len);
			if (!m) {
				tool_ctl_errmsg("%s: protocol error: a malformed message", c->path);
				return NULL;
			}
			/* Events are skipped unless asked for; a refusal (id 0, an error, no
			 * body) answers whatever we asked. */
			if (m->id == 0 &&
			    !(m->error && m->body_case == SERVER_MSG__BODY__NOT_SET) &&
			    !(c->events && m->body_case == SERVER_MSG__BODY_CTL_EVENT)) {
				server_msg__free_unpacked(m, NULL);
				continue;
			}
			return m;
		}
		if (hbp_bytes_reserve(&c->in, READ_CHUNK) < 0) {
			tool_ctl_errmsg("out of memory");
			return NULL;
		}
		n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, MSG_DONTWAIT);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0) {
			tool_ctl_errmsg("%s: hyperbufd closed the connection", c->path);
			return NULL;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (wait_fd(c, POLLIN) < 0)
				return NULL;
			continue;
		}
		tool_ctl_errmsg("%s: recv: %s", c->path, strerror(errno));
		return NULL;
	}
}

/* The daemon's reason for stderr: its words are a peer's bytes, so no control characters
 * reach the terminal. "" when there is none; else ": " and the words. */
static const char *reason_text(const ServerMsg *m, char *buf, size_t len)
{
	size_t i;

	if (!m->reason[0])
		return "";
	snprintf(buf, len, ": %s", m->reason);
	for (i = 0; buf[i]; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	return buf;
}

ServerMsg *tool_ctl_request(struct tool_ctl_conn *c, const ClientMsg *req, ServerMsg__BodyCase want,
			    const char *what)
{
	char why[HBP_REASON_MAX + 3];
	ServerMsg *m;

	/* Each request has its own TIMEOUT_MS: watch asks again and again. */
	c->deadline_ms = now_ms() + TIMEOUT_MS;
	if (conn_send(c, req) < 0)
		return NULL;
	m = conn_recv(c);
	if (!m)
		return NULL;
	if (m->id == 0) {
		tool_ctl_errmsg("%s: hyperbufd refused the connection: %s%s", c->path,
				m->error < 4096 ? strerror((int)m->error) : "unknown error",
				reason_text(m, why, sizeof(why)));
		goto err;
	}
	if (m->id != req->id) {
		tool_ctl_errmsg("%s: protocol error: reply %u to request %u", c->path, m->id,
				req->id);
		goto err;
	}
	if (m->error) {
		/* The daemon speaks errno; a value we cannot name is still worth showing. */
		tool_ctl_errmsg("%s: hyperbufd refused %s: %s%s", c->path, what,
				m->error < 4096 ? strerror((int)m->error) : "unknown error",
				reason_text(m, why, sizeof(why)));
		goto err;
	}
	if (m->body_case != want) {
		tool_ctl_errmsg("%s: protocol error: unexpected reply to %s", c->path, what);
		goto err;
	}
	return m;
err:
	server_msg__free_unpacked(m, NULL);
	return NULL;
}

ServerMsg *tool_ctl_event(struct tool_ctl_conn *c)
{
	ServerMsg *m;

	c->events = true;
	c->deadline_ms = UINT64_MAX;
	m = conn_recv(c);
	if (m && m->body_case != SERVER_MSG__BODY_CTL_EVENT) {
		tool_ctl_errmsg("%s: hyperbufd ended the event stream: %s", c->path,
				m->error && m->error < 4096 ? strerror((int)m->error)
							    : "unexpected frame");
		server_msg__free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

/* The session's first exchange: Hello, as a control client, in our protocol version. */
static int say_hello(struct tool_ctl_conn *c)
{
	ClientMsg req = CLIENT_MSG__INIT;
	Hello hello = HELLO__INIT;
	ServerMsg *m;
	int ret = 0;

	hello.version = HBP_PROTOCOL_VERSION;
	hello.role = HBP_ROLE_CONTROL;
	req.id = HELLO_ID;
	req.body_case = CLIENT_MSG__BODY_HELLO;
	req.hello = &hello;
	m = tool_ctl_request(c, &req, SERVER_MSG__BODY_WELCOME, "hello");
	if (!m)
		return -1;
	if (m->welcome->version != HBP_PROTOCOL_VERSION) {
		tool_ctl_errmsg("%s: hyperbufd speaks protocol %u, hyperbufctl %u", c->path,
				m->welcome->version, HBP_PROTOCOL_VERSION);
		ret = -1;
	}
	server_msg__free_unpacked(m, NULL);
	return ret;
}

int tool_ctl_connect(struct tool_ctl_conn *c, const char *path)
{
	if (conn_open(c, path) < 0)
		return -1;
	return say_hello(c);
}

void tool_ctl_close(struct tool_ctl_conn *c)
{
	hbp_bytes_free(&c->in);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
