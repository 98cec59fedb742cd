/* Frames by hand on a byte stream: see raw_wire.h. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol/limits.h"
#include "tests/raw_wire.h"

uint64_t hbw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int hbw_unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

int hbw_wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n > 0;
}

/* Milliseconds left until end, 0 once past it. */
static int left_ms(uint64_t end)
{
	uint64_t now = hbw_now_ms();

	return now >= end ? 0 : (int)(end - now);
}

int hbw_send_all(int fd, const void *p, size_t n, int timeout_ms)
{
	const uint8_t *b = p;
	uint64_t end = hbw_now_ms() + (uint64_t)timeout_ms;

	while (n > 0) {
		/* send() for MSG_NOSIGNAL (a daemon that hung up must not kill the test); a
		 * virtio port is no socket. */
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == ENOTSOCK)
			w = write(fd, b, n);
		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			if (!hbw_wait_fd(fd, POLLOUT, left_ms(end)) && left_ms(end) == 0)
				return -1;
			continue;
		}
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int hbw_send_frame(int fd, const void *payload, size_t len, uint64_t len_override, int timeout_ms)
{
	uint32_t l = len_override != UINT64_MAX ? (uint32_t)len_override : (uint32_t)len;
	uint8_t hdr[4] = {(uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24)};

	if (hbw_send_all(fd, hdr, 4, timeout_ms) < 0)
		return -1;
	return len ? hbw_send_all(fd, payload, len, timeout_ms) : 0;
}

void hbw_hello(ClientMsg *m, Hello *h, uint32_t role, uint32_t features)
{
	*m = (ClientMsg)CLIENT_MSG__INIT;
	*h = (Hello)HELLO__INIT;
	h->version = HBP_PROTOCOL_VERSION;
	h->role = role;
	h->features = features;
	m->body_case = CLIENT_MSG__BODY_HELLO;
	m->hello = h;
}

int hbw_send(int fd, const ClientMsg *m, int timeout_ms)
{
	size_t n = client_msg__get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	int ret;

	if (!buf)
		return -1;
	client_msg__pack(m, buf);
	ret = hbw_send_frame(fd, buf, n, UINT64_MAX, timeout_ms);
	free(buf);
	return ret;
}

bool hbw_put_frame(uint8_t *buf, size_t cap, size_t *len, const ClientMsg *m)
{
	size_t n = client_msg__get_packed_size(m);

	if (*len + 4 + n > cap)
		return false;
	buf[*len] = (uint8_t)n;
	buf[*len + 1] = (uint8_t)(n >> 8);
	buf[*len + 2] = (uint8_t)(n >> 16);
	buf[*len + 3] = (uint8_t)(n >> 24);
	client_msg__pack(m, buf + *len + 4);
	*len += 4 + n;
	return true;
}

/* Keeps the first descriptor that came in mh in *passed (if passed and that is -1), closes
 * the rest, counts them all in *nfds (if not NULL). */
static void take_fds(struct msghdr *mh, int *passed, int *nfds)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		int cnt;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int k = 0; k < cnt; k++) {
			int got;

			memcpy(&got, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
			if (nfds)
				(*nfds)++;
			if (passed && *passed < 0)
				*passed = got;
			else
				close(got);
		}
	}
}

/* One read of at most n bytes into b; on a socket (sock), its descriptors go to take_fds. */
static ssize_t read_some(int fd, uint8_t *b, size_t n, bool sock, int *passed, int *nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = b, .iov_len = n};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	ssize_t r;

	if (!sock)
		return read(fd, b, n);
	r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (r > 0)
		take_fds(&mh, passed, nfds);
	return r;
}

/* Exactly n bytes within timeout_ms (see hbw_recv_full). */
static int recv_exactly(int fd, void *p, size_t n, int timeout_ms, bool sock, int *passed,
			int *nfds)
{
	uint8_t *b = p;
	uint64_t end = hbw_now_ms() + (uint64_t)timeout_ms;

	while (n > 0) {
		ssize_t got;

		if (left_ms(end) == 0)
			return HBW_TIMEOUT;
		if (!hbw_wait_fd(fd, POLLIN, left_ms(end)))
			continue;
		got = read_some(fd, b, n, sock, passed, nfds);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			return HBW_CLOSED;
		b += got;
		n -= (size_t)got;
	}
	return 1;
}

int hbw_recv_full(int fd, void *p, size_t n, int timeout_ms, int *passed)
{
	return recv_exactly(fd, p, n, timeout_ms, passed != NULL, passed, NULL);
}

int hbw_recv_fds(int fd, void *p, size_t n, int timeout_ms, int *passed, int *nfds)
{
	return recv_exactly(fd, p, n, timeout_ms, true, passed, nfds);
}

ServerMsg *hbw_recv(int fd, int timeout_ms, int rest_ms, int *why, int *passed)
{
	uint8_t hdr[4], *payload;
	ServerMsg *m;
	uint32_t l;
	int st;

	st = hbw_recv_full(fd, hdr, 4, timeout_ms, passed);
	if (st <= 0) {
		*why = st;
		return NULL;
	}
	l = hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	if (l == 0 || l > HBP_FRAME_MAX) {
		*why = HBW_BAD_FRAME;
		return NULL;
	}
	payload = malloc(l);
	if (!payload) {
		*why = HBW_BAD_FRAME;
		return NULL;
	}
	st = hbw_recv_full(fd, payload, l, rest_ms, NULL);
	m = st > 0 ? server_msg__unpack(NULL, l, payload) : NULL;
	free(payload);
	if (!m)
		*why = st == HBW_CLOSED ? HBW_CLOSED : HBW_BAD_FRAME;
	return m;
}

ServerMsg *hbw_call(int fd, uint32_t *next_id, ClientMsg *m, int timeout_ms, int *why, int *passed)
{
	uint64_t end = hbw_now_ms() + (uint64_t)timeout_ms;

	m->id = (*next_id)++;
	if (hbw_send(fd, m, timeout_ms) != 0) {
		*why = HBW_SEND;
		return NULL;
	}
	for (;;) {
		ServerMsg *s;

		if (passed && *passed >= 0) {
			close(*passed); /* an earlier frame's */
			*passed = -1;
		}
		s = hbw_recv(fd, left_ms(end), timeout_ms, why, passed);

		if (!s || s->id == m->id)
			return s;
		if (s->id != 0) {
			server_msg__free_unpacked(s, NULL);
			*why = HBW_OTHER_ID;
			return NULL;
		}
		server_msg__free_unpacked(s, NULL);
	}
}

const char *hbw_why(int why)
{
	switch (why) {
	case HBW_CLOSED:
		return "connection closed";
	case HBW_TIMEOUT:
		return "timeout";
	case HBW_BAD_FRAME:
		return "bad frame";
	case HBW_SEND:
		return "could not send";
	case HBW_OTHER_ID:
		return "a reply to another request";
	}
	return "?";
}

bool hbw_wait_closed(int fd, int timeout_ms)
{
	uint64_t end = hbw_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		char buf[4096];
		ssize_t n;

		if (left_ms(end) == 0)
			return false;
		if (!hbw_wait_fd(fd, POLLIN, left_ms(end)))
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}
