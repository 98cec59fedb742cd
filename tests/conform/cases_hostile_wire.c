/*
 * Hostile requests (test_it_hostile, PROTOCOL.md §2, §3): well-framed messages no library
 * would send, on this domain's own raw stream, in every domain at once (cf_hostile_everywhere).
 */
#include "tests/conform/raw.h"

static void before_hello_attack(void)
{
	uint8_t hid[16] = {0};
	struct cf_raw r;
	ServerMsg *s;
	Query q;
	ClientMsg m = cf_raw_query_msg(&q, hid, 16);
	int why;

	cf_raw_start(&r);
	m.id = 41;
	CHECK_EQ(cf_raw_send(&r, &m), 0);
	s = cf_raw_recv(&r, CF_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 41);
	CHECK_EQ(s->error, EPROTO);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY__NOT_SET);
	server_msg__free_unpacked(s, NULL);
	CF_RAW_DROPPED(&r, NULL);
}
CF_HOSTILE_CASE(request_before_hello, before_hello_attack)

/* Hello's rules: a wrong version is EPROTO and the hang-up; a second Hello is EPROTO on the
 * host's socket and a new session on a VM's stream (PROTOCOL.md §2: a guest's channel, where
 * a new Hello is a new process); control is the host's only. None is a protocol error (the
 * count cf_hostile_everywhere checks). */
static void hello_attack(void)
{
	ClientMsg m = CLIENT_MSG__INIT, c = CLIENT_MSG__INIT;
	Hello hello = HELLO__INIT;
	Control ctl = CONTROL__INIT;
	struct cf_raw r;
	ServerMsg *s;

	cf_raw_start(&r);
	hello.version = HBP_PROTOCOL_VERSION + 1;
	CF_MSG(m, HELLO, hello, &hello);
	CHECK_EQ(CF_RAW_ERR(&r, &m), EPROTO);
	CHECK(cf_raw_wait_closed(&r, CF_WAIT_MS));
	cf_raw_drop(&r);

	cf_raw_session(&r);
	hello.version = HBP_PROTOCOL_VERSION;
	s = CF_RAW_CALL(&r, &m);
	if (cf_domain() == 0) {
		CHECK_EQ(s->error, EPROTO);
	} else {
		CHECK_EQ(s->error, 0);
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_WELCOME);
	}
	server_msg__free_unpacked(s, NULL);
	CF_RAW_ALIVE(&r);

	ctl.what = cf_domain() == 0 ? HBP_CTL_STATUS : HBP_CTL_STATS;
	CF_MSG(c, CONTROL, control, &ctl);
	if (cf_domain() == 0) {
		/* A control session may ask for the daemon's status. */
		cf_raw_stop(&r);
		cf_raw_start(&r);
		server_msg__free_unpacked(cf_raw_hello(&r, HBP_ROLE_CONTROL), NULL);
		s = CF_RAW_CALL(&r, &c);
		CHECK_EQ(s->error, 0);
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_CONTROL);
		CHECK(strcmp(s->control->version, HB_VERSION_STRING) == 0);
		server_msg__free_unpacked(s, NULL);
	} else {
		/* Control from a guest: EPERM, in a client session or as a Hello. */
		CHECK_EQ(CF_RAW_ERR(&r, &c), EPERM);
		CF_RAW_ALIVE(&r);
		hello.role = HBP_ROLE_CONTROL;
		CHECK_EQ(CF_RAW_ERR(&r, &m), EPERM);
	}
	cf_raw_stop(&r);
}
CF_HOSTILE_CASE(hello_rules, hello_attack)

static void id_zero_attack(void)
{
	uint8_t hid[16] = {9};
	struct cf_raw r;
	Query q;
	ClientMsg m = cf_raw_query_msg(&q, hid, 16);

	cf_raw_session(&r);
	m.id = 0;
	CHECK_EQ(cf_raw_send(&r, &m), 0);
	CF_RAW_DROPPED(&r, NULL);
}
CF_HOSTILE_CASE(request_id_zero, id_zero_attack)

/* One frame, its reply: this id, EOPNOTSUPP. */
static void expect_eopnotsupp(struct cf_raw *r, const uint8_t *frame, size_t len, uint32_t id)
{
	ServerMsg *s;
	int why;

	CHECK_EQ(cf_raw_send_frame(r, frame, len, UINT64_MAX), 0);
	s = cf_raw_recv(r, CF_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, id);
	CHECK_EQ(s->error, EOPNOTSUPP);
	server_msg__free_unpacked(s, NULL);
}

/* A body this daemon does not know: EOPNOTSUPP, not a drop. */
static void unknown_body_attack(void)
{
	/* id = 5 (field 1), then field 99 as a varint 1 */
	static const uint8_t varint_body[] = {0x08, 0x05, 0x98, 0x06, 0x01};
	/* id = 6, then field 50 as 3 bytes */
	static const uint8_t bytes_body[] = {0x08, 0x06, 0x92, 0x03, 0x03, 'a', 'b', 'c'};
	/* id = 7 and no body at all */
	static const uint8_t no_body[] = {0x08, 0x07};
	struct cf_raw r;

	cf_raw_session(&r);
	expect_eopnotsupp(&r, varint_body, sizeof(varint_body), 5);
	expect_eopnotsupp(&r, bytes_body, sizeof(bytes_body), 6);
	expect_eopnotsupp(&r, no_body, sizeof(no_body), 7);
	r.next_id = 100;
	CF_RAW_ALIVE(&r);
	cf_raw_stop(&r);
}
CF_HOSTILE_CASE(unknown_body, unknown_body_attack)

/* A hid of any length but 16 in Import, Query or Unexport is a violation. */
static void hid_length_attack(void)
{
	static const size_t lens[] = {0, 1, 15, 17, 32};
	uint8_t hid[32] = {1, 0, 0, 0, 5};
	struct cf_raw r;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		ClientMsg m = CLIENT_MSG__INIT;
		Import im = IMPORT__INIT;
		Unexport un = UNEXPORT__INIT;
		Query q;

		cf_raw_session(&r);
		im.hid.data = hid;
		im.hid.len = lens[i];
		CF_MSG(m, IMPORT, import, &im);
		m.id = 3;
		CHECK_EQ(cf_raw_send(&r, &m), 0);
		CF_RAW_DROPPED(&r, NULL);

		cf_raw_session(&r);
		m = cf_raw_query_msg(&q, hid, lens[i]);
		m.id = 3;
		CHECK_EQ(cf_raw_send(&r, &m), 0);
		CF_RAW_DROPPED(&r, NULL);

		cf_raw_session(&r);
		un.hid.data = hid;
		un.hid.len = lens[i];
		CF_MSG(m, UNEXPORT, unexport, &un);
		m.id = 3;
		CHECK_EQ(cf_raw_send(&r, &m), 0);
		CF_RAW_DROPPED(&r, NULL);
	}
}
CF_HOSTILE_CASE(wrong_length_hid, hid_length_attack)

/* Metadata over HBP_META_LIMIT makes the Export itself invalid, whatever the library checks
 * and whatever the buffer: dropped. (The original's EMSGSIZE under a lower meta_max is a
 * config variant.) */
static void meta_limit_attack(void)
{
	static uint8_t meta[HBP_META_LIMIT + 1];
	ClientMsg m = CLIENT_MSG__INIT;
	Export e = EXPORT__INIT;
	struct cf_raw r;

	cf_raw_session(&r);
	e.buffer = 1;
	e.meta.data = meta;
	e.meta.len = sizeof(meta);
	CF_MSG(m, EXPORT, export, &e);
	m.id = 999;
	CHECK_EQ(cf_raw_send(&r, &m), 0);
	CF_RAW_DROPPED(&r, NULL);
}
CF_HOSTILE_CASE(daemon_checks_meta_max, meta_limit_attack)

/* ---- foreign handles ------------------------------------------------------------------------ */

/* Free, Export and Release of every small handle and a few large ones, on a raw session that
 * owns nothing: ENOENT each, whoever owns a buffer or an import of that number. */
static void try_handles(void)
{
	static const uint64_t big[] = {UINT64_MAX, UINT64_MAX - 1, 1ull << 32, 1000};
	long long errs = cf_stat("errors_protocol");
	struct cf_raw r;

	cf_raw_session(&r);
	for (uint64_t i = 0; i < 64 + sizeof(big) / sizeof(big[0]); i++) {
		uint64_t h = i < 64 ? i : big[i - 64];
		ClientMsg m = CLIENT_MSG__INIT;
		Free f = FREE__INIT;
		Export e = EXPORT__INIT;
		Release rel = RELEASE__INIT;

		f.buffer = h;
		CF_MSG(m, FREE, free, &f);
		CHECK_EQ(CF_RAW_ERR(&r, &m), ENOENT);
		e.buffer = h;
		CF_MSG(m, EXPORT, export, &e);
		CHECK_EQ(CF_RAW_ERR(&r, &m), ENOENT);
		rel.import = h;
		CF_MSG(m, RELEASE, release, &rel);
		CHECK_EQ(CF_RAW_ERR(&r, &m), ENOENT);
	}
	CF_RAW_ALIVE(&r);
	cf_raw_stop(&r);
	CHECK_EQ(cf_stat("errors_protocol"), errs);
}

/* The host: a buffer for vm2 and, once vm1 tried, a raw session of its own domain tries too
 * (another session of the same domain owns nothing either). */
static void foreign_host(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_id id;

	cf_fill(hb_buffer_data(b), 4096, 41);
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("host", &id);
	cf_barrier("held");
	cf_barrier("vm1_tried");
	try_handles();
	cf_barrier("host_tried");
	cf_barrier("done");
	hb_buffer_free(b);
}

static void foreign_vm1(void)
{
	cf_barrier("held");
	try_handles();
	cf_barrier("vm1_tried");
	cf_barrier("host_tried");
	cf_barrier("done");
}

/* vm2 owns a buffer and an import; after the attacks both still work for it. */
static void foreign_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 1, 4096, 0);
	struct hb_import *im;
	struct hb_id id, host, again;

	CF_EXPORT(b, NULL, 0, &id);
	cf_get_id("host", &host);
	im = CF_IMPORT(c, &host, 0);
	cf_barrier("held");
	cf_barrier("vm1_tried");
	cf_barrier("host_tried");
	CF_CHECK_PATTERN(hb_import_data(im), 4096, 41);
	CF_EXPORT(b, "again", 5, &again);
	CHECK(memcmp(&id, &again, sizeof(id)) == 0);
	hb_import_release(im);
	hb_buffer_free(b);
	cf_barrier("done");
}
CF_CASE(foreign_handles, {0, foreign_host}, {1, foreign_vm1}, {2, foreign_owner})
