/* Frames by hand on a raw stream (tests/conform/raw.h), as tests/it_common.c's raw session. */
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "tests/conform/raw.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cf_raw_start(struct cf_raw *r)
{
	r->fd = cf_raw_open();
	if (r->fd < 0)
		cf_fail(__FILE__, __LINE__, "no raw stream to the daemon: %s", strerror(errno));
	r->next_id = 1;
}

void cf_raw_session(struct cf_raw *r)
{
	cf_raw_start(r);
	server_msg__free_unpacked(cf_raw_hello(r, HBP_ROLE_CLIENT), NULL);
}

void cf_raw_stop(struct cf_raw *r)
{
	cf_raw_close(r->fd);
	r->fd = -1;
}

void cf_raw_drop(struct cf_raw *r)
{
	cf_raw_abandon(r->fd);
	r->fd = -1;
}

/* Waits until fd polls for events (or hangs up): 1, or 0 after timeout_ms. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n > 0;
}

int cf_raw_send_all(struct cf_raw *r, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t end = now_ms() + CF_WAIT_MS;

	while (n > 0) {
		ssize_t w = write(r->fd, b, n);

		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			uint64_t now = now_ms();

			if (now >= end || !wait_fd(r->fd, POLLOUT, (int)(end - now)))
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

int cf_raw_send_frame(struct cf_raw *r, const void *payload, size_t len, uint64_t len_override)
{
	uint32_t l = len_override != UINT64_MAX ? (uint32_t)len_override : (uint32_t)len;
	uint8_t hdr[4] = {(uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24)};

	if (cf_raw_send_all(r, hdr, 4) < 0)
		return -1;
	return len ? cf_raw_send_all(r, payload, len) : 0;
}

int cf_raw_send(struct cf_raw *r, const ClientMsg *m)
{
	size_t n = client_msg__get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	int ret;

	CHECK(buf != NULL);
	client_msg__pack(m, buf);
	ret = cf_raw_send_frame(r, buf, n, UINT64_MAX);
	free(buf);
	return ret;
}

void cf_raw_put_frame(uint8_t *buf, size_t cap, size_t *len, const ClientMsg *m)
{
	size_t n = client_msg__get_packed_size(m);

	CHECK(*len + 4 + n <= cap);
	buf[*len] = (uint8_t)n;
	buf[*len + 1] = (uint8_t)(n >> 8);
	buf[*len + 2] = (uint8_t)(n >> 16);
	buf[*len + 3] = (uint8_t)(n >> 24);
	client_msg__pack(m, buf + *len + 4);
	*len += 4 + n;
}

/* Exactly n bytes within timeout_ms: 1, 0 on EOF (or a reset), -1 on timeout. */
static int recv_full(int fd, void *p, size_t n, int timeout_ms)
{
	uint8_t *b = p;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	while (n > 0) {
		uint64_t now = now_ms();
		ssize_t got;

		if (now >= end)
			return -1;
		if (!wait_fd(fd, POLLIN, (int)(end - now)))
			continue;
		got = read(fd, b, n);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			return 0;
		b += got;
		n -= (size_t)got;
	}
	return 1;
}

/* The next frame, events included. */
static ServerMsg *recv_any(struct cf_raw *r, int timeout_ms, int *why)
{
	uint8_t hdr[4], *payload;
	ServerMsg *m;
	uint32_t l;
	int st, dummy;

	if (!why)
		why = &dummy;
	st = recv_full(r->fd, hdr, 4, timeout_ms);
	if (st <= 0) {
		*why = st;
		return NULL;
	}
	l = hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	if (l == 0 || l > HBP_FRAME_MAX) {
		*why = -2;
		return NULL;
	}
	payload = malloc(l);
	CHECK(payload != NULL);
	st = recv_full(r->fd, payload, l, CF_WAIT_MS);
	if (st <= 0) {
		free(payload);
		*why = st == 0 ? 0 : -2;
		return NULL;
	}
	m = server_msg__unpack(NULL, l, payload);
	free(payload);
	if (!m)
		*why = -2;
	return m;
}

ServerMsg *cf_raw_recv(struct cf_raw *r, int timeout_ms, int *why)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint64_t now = now_ms();
		ServerMsg *s = recv_any(r, now >= end ? 0 : (int)(end - now), why);

		/* Events (id 0 with a body: other domains' sessions come and go meanwhile) are
		 * not what a case waits for; a refusal (id 0, no body) is. */
		if (!s || s->id != 0 || s->body_case == SERVER_MSG__BODY__NOT_SET)
			return s;
		server_msg__free_unpacked(s, NULL);
	}
}

ServerMsg *cf_raw_call_at(const char *file, int line, struct cf_raw *r, ClientMsg *m)
{
	uint64_t end = now_ms() + CF_WAIT_MS;

	m->id = r->next_id++;
	if (cf_raw_send(r, m) != 0)
		cf_fail(file, line, "sending request %u: %s", m->id, strerror(errno));
	for (;;) {
		uint64_t now = now_ms();
		int why;
		ServerMsg *s = cf_raw_recv(r, now >= end ? 0 : (int)(end - now), &why);

		if (!s)
			cf_fail(file, line, "no reply to request %u (%s)", m->id,
				why == 0    ? "connection closed"
				: why == -1 ? "timeout"
					    : "bad frame");
		if (s->id == m->id)
			return s;
		if (s->id != 0)
			cf_fail(file, line, "reply %u to request %u", s->id, m->id);
		server_msg__free_unpacked(s, NULL);
	}
}

uint32_t cf_raw_err_at(const char *file, int line, struct cf_raw *r, ClientMsg *m)
{
	ServerMsg *s = cf_raw_call_at(file, line, r, m);
	uint32_t e = s->error;

	server_msg__free_unpacked(s, NULL);
	return e;
}

ServerMsg *cf_raw_hello(struct cf_raw *r, uint32_t role)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Hello h = HELLO__INIT;
	ServerMsg *s;

	h.version = HBP_PROTOCOL_VERSION;
	h.role = role;
	h.features = HBP_FEATURE_INLINE_REFS;
	CF_MSG(m, HELLO, hello, &h);
	s = CF_RAW_CALL(r, &m);
	if (s->error != 0 || s->body_case != SERVER_MSG__BODY_WELCOME)
		cf_fail(__FILE__, __LINE__, "Hello: error %u, body %d", s->error, s->body_case);
	return s;
}

bool cf_raw_wait_closed(struct cf_raw *r, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint64_t now = now_ms();
		char buf[4096];
		ssize_t n;

		if (now >= end)
			return false;
		if (!wait_fd(r->fd, POLLIN, (int)(end - now)))
			continue;
		n = read(r->fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}
