/* Frames by hand on a raw stream (tests/conform/raw.h): tests/raw_wire.c, failing the role. */
#include "tests/conform/raw.h"
#include "tests/raw_wire.h"

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

int cf_raw_send_all(struct cf_raw *r, const void *p, size_t n)
{
	return hbw_send_all(r->fd, p, n, CF_WAIT_MS);
}

int cf_raw_send_frame(struct cf_raw *r, const void *payload, size_t len, uint64_t len_override)
{
	return hbw_send_frame(r->fd, payload, len, len_override, CF_WAIT_MS);
}

int cf_raw_send(struct cf_raw *r, const ClientMsg *m)
{
	return hbw_send(r->fd, m, CF_WAIT_MS);
}

void cf_raw_put_frame(uint8_t *buf, size_t cap, size_t *len, const ClientMsg *m)
{
	if (!hbw_put_frame(buf, cap, len, m))
		cf_fail(__FILE__, __LINE__, "a frame of %zu bytes past %zu of %zu",
			client_msg__get_packed_size(m) + 4, *len, cap);
}

ServerMsg *cf_raw_recv(struct cf_raw *r, int timeout_ms, int *why)
{
	uint64_t end = hbw_now_ms() + (uint64_t)timeout_ms;
	int dummy;

	for (;;) {
		uint64_t now = hbw_now_ms();
		ServerMsg *s = hbw_recv(r->fd, now >= end ? 0 : (int)(end - now), CF_WAIT_MS,
					why ? why : &dummy, NULL);

		/* Events (id 0 with a body: other domains' sessions come and go meanwhile) are
		 * not what a case waits for; a refusal (id 0, no body) is. */
		if (!s || s->id != 0 || s->body_case == SERVER_MSG__BODY__NOT_SET)
			return s;
		server_msg__free_unpacked(s, NULL);
	}
}

ServerMsg *cf_raw_call_at(const char *file, int line, struct cf_raw *r, ClientMsg *m)
{
	int why;
	ServerMsg *s = hbw_call(r->fd, &r->next_id, m, CF_WAIT_MS, &why, NULL);

	if (!s)
		cf_fail(file, line, "request %u: no reply (%s)", m->id, hbw_why(why));
	return s;
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
	ClientMsg m;
	Hello h;
	ServerMsg *s;

	hbw_hello(&m, &h, role, HBP_FEATURE_INLINE_REFS);
	s = CF_RAW_CALL(r, &m);
	if (s->error != 0 || s->body_case != SERVER_MSG__BODY_WELCOME)
		cf_fail(__FILE__, __LINE__, "Hello: error %u, body %d", s->error, s->body_case);
	return s;
}

bool cf_raw_wait_closed(struct cf_raw *r, int timeout_ms)
{
	return hbw_wait_closed(r->fd, timeout_ms);
}
