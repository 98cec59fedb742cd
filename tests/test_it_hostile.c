/*
 * Hostile input (PROTOCOL.md §2, §4): raw frames the library would never send, forged and
 * foreign handles, a group member rewriting the shared reference directory, and a VM opening
 * connections by the hundred (sessions_per_domain). Each attack
 * gets a clean error or a dropped session, counted in errors_protocol, while honest clients
 * carry on: after each one they still allocate, export, import and verify.
 */
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "tests/it_common.h"

/* ---- honest bystanders -------------------------------------------------------------------- */

struct honest {
	struct hb_client *v1, *v2;
	uint64_t round;
};

static void honest_open(struct honest *h, const struct hbt_daemon *d)
{
	h->v1 = IT_CONNECT(hbt_addr_vm(d, 1));
	h->v2 = IT_CONNECT(hbt_addr_vm(d, 2));
	h->round = 0;
}

/* A whole share, vm1 -> vm2, checked byte for byte. */
static void honest_check_at(const char *file, int line, struct honest *h)
{
	struct hb_buffer *b = it_alloc_at(file, line, h->v1, 2, 3 * 4096 + 11, 0);
	struct hb_import *im;
	struct hb_id id;

	it_fill(b, 0xabc0 + h->round);
	it_export_at(file, line, b, "ok", 2, &id);
	im = it_import_at(file, line, h->v2, &id, 0);
	it_check_import_at(file, line, im, 3 * 4096 + 11, 0xabc0 + h->round);
	hb_import_release(im);
	hb_buffer_free(b);
	h->round++;
}
#define HONEST_CHECK(h) honest_check_at(__FILE__, __LINE__, (h))

static void honest_close(struct honest *h)
{
	it_drain(h->v1);
	it_drain(h->v2);
	hb_disconnect(h->v1);
	hb_disconnect(h->v2);
}

/* ---- raw sessions ------------------------------------------------------------------------- */

/* The daemon hung up on r, and counted it as one more protocol error. */
#define CHECK_DROPPED(d, r, before)                                                                \
	do {                                                                                       \
		CHECK(it_raw_wait_closed((r), IT_WAIT_MS));                                        \
		CHECK_EQ(IT_STAT((d), "errors_protocol"), (before) + 1);                           \
		(before)++;                                                                        \
		it_raw_close(r);                                                                   \
	} while (0)

static ClientMsg query_msg(Query *q, uint8_t *hid, size_t hid_len)
{
	ClientMsg m = CLIENT_MSG__INIT;

	query__init(q);
	q->hid.data = hid;
	q->hid.len = hid_len;
	IT_MSG(m, QUERY, query, q);
	return m;
}

/* A Query for an unknown hid gets ENOENT: proof the session is alive and in sync. */
static void check_alive(struct it_raw *r)
{
	uint8_t hid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	Query q;
	ClientMsg m = query_msg(&q, hid, 16);

	CHECK_EQ(IT_RAW_ERR(r, &m), ENOENT);
}

TEST(frame_length_violations)
{
	static const uint64_t lens[] = {0, HBP_FRAME_MAX + 1, 0xffffffffu, 0x80000000u};
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	long long errs;
	size_t i;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	CHECK_EQ(errs, 0);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		/* After Hello, and as the very first bytes. The payload is never sent: the daemon
		 * must decide on the header alone. */
		hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
		CHECK_EQ(it_raw_send_frame(&r, NULL, 0, lens[i]), 0);
		CHECK_DROPPED(&d, &r, errs);
		it_raw_open(&r, hbt_path(&d, "vm3.sock"));
		CHECK_EQ(it_raw_send_frame(&r, NULL, 0, lens[i]), 0);
		CHECK_DROPPED(&d, &r, errs);
		HONEST_CHECK(&h);
	}
	honest_close(&h);
	IT_STOP(&d);
}

TEST(truncated_frame_then_eof)
{
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	uint8_t junk[10] = {0x08, 0x01, 0x52, 0x12};

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
	CHECK_EQ(it_raw_send_frame(&r, junk, sizeof(junk), 100), 0);
	CHECK(shutdown(r.fd, SHUT_WR) == 0);
	CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	it_raw_close(&r);
	/* Half a header. */
	hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
	CHECK_EQ(it_send_all(r.fd, "\x10\x00", 2), 0);
	CHECK(shutdown(r.fd, SHUT_WR) == 0);
	CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	it_raw_close(&r);
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

TEST(garbage_protobuf)
{
	static const struct {
		const char *bytes;
		size_t len;
	} bad[] = {
	    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11}, /* a varint that never ends */
	    {"\x0f\x01\x02\x03", 4},                              /* wire type 7 */
	    {"\x08\x07\x52\x10\x0a\x10\x01", 7}, /* a field longer than the frame */
	    {"\x08\x07\x12\x05\x08", 5},         /* a truncated Hello */
	    {"\x08", 1},
	};
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	long long errs;
	size_t i;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
		CHECK_EQ(it_raw_send_frame(&r, bad[i].bytes, bad[i].len, UINT64_MAX), 0);
		CHECK_DROPPED(&d, &r, errs);
		HONEST_CHECK(&h);
	}
	honest_close(&h);
	IT_STOP(&d);
}

TEST(request_before_hello)
{
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	uint8_t hid[16] = {0};
	ServerMsg *s;
	long long errs;
	Query q;
	ClientMsg m;
	int why;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	it_raw_open(&r, d.socket);
	m = query_msg(&q, hid, 16);
	m.id = 41;
	CHECK_EQ(it_raw_send(&r, &m), 0);
	s = it_raw_recv(&r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 41);
	CHECK_EQ(s->error, EPROTO);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY__NOT_SET);
	server_msg__free_unpacked(s, NULL);
	CHECK_DROPPED(&d, &r, errs);
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

TEST(hello_rules)
{
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	ClientMsg m = CLIENT_MSG__INIT;
	Hello hello = HELLO__INIT;
	ServerMsg *s;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	/* A wrong version: EPROTO, then the daemon closes. */
	it_raw_open(&r, d.socket);
	hello.version = HBP_PROTOCOL_VERSION + 1;
	IT_MSG(m, HELLO, hello, &hello);
	CHECK_EQ(IT_RAW_ERR(&r, &m), EPROTO);
	CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	it_raw_close(&r);
	/* A second Hello: EPROTO, the session goes on. */
	hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
	hello.version = HBP_PROTOCOL_VERSION;
	CHECK_EQ(IT_RAW_ERR(&r, &m), EPROTO);
	check_alive(&r);
	/* A control session may ask for the daemon's status. */
	it_raw_close(&r);
	hbt_raw_session(&r, d.socket, HBP_ROLE_CONTROL);
	{
		ClientMsg c = CLIENT_MSG__INIT;
		Control ctl = CONTROL__INIT;

		ctl.what = HBP_CTL_STATUS;
		IT_MSG(c, CONTROL, control, &ctl);
		s = IT_RAW_CALL(&r, &c);
		CHECK_EQ(s->error, 0);
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_CONTROL);
		CHECK(strcmp(s->control->version, HB_VERSION_STRING) == 0);
		server_msg__free_unpacked(s, NULL);
	}
	it_raw_close(&r);
	/* Control from a VM: EPERM. */
	hbt_raw_session(&r, hbt_path(&d, "vm1.sock"), HBP_ROLE_CLIENT);
	{
		ClientMsg c = CLIENT_MSG__INIT;
		Control ctl = CONTROL__INIT;

		ctl.what = HBP_CTL_STATS;
		IT_MSG(c, CONTROL, control, &ctl);
		CHECK_EQ(IT_RAW_ERR(&r, &c), EPERM);
	}
	check_alive(&r);
	it_raw_close(&r);
	HONEST_CHECK(&h);
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), 0);
	honest_close(&h);
	IT_STOP(&d);
}

TEST(request_id_zero)
{
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	uint8_t hid[16] = {9};
	long long errs;
	Query q;
	ClientMsg m;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
	m = query_msg(&q, hid, 16);
	m.id = 0;
	CHECK_EQ(it_raw_send(&r, &m), 0);
	CHECK_DROPPED(&d, &r, errs);
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

/* A ClientMsg whose body is a field this daemon does not know: EOPNOTSUPP, not a drop. */
TEST(unknown_body)
{
	/* id = 5 (field 1), then field 99 as a varint 1 */
	static const uint8_t varint_body[] = {0x08, 0x05, 0x98, 0x06, 0x01};
	/* id = 6, then field 50 as 3 bytes */
	static const uint8_t bytes_body[] = {0x08, 0x06, 0x92, 0x03, 0x03, 'a', 'b', 'c'};
	/* id = 7 and no body at all */
	static const uint8_t no_body[] = {0x08, 0x07};
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	ServerMsg *s;
	long long errs;
	int why;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
	CHECK_EQ(it_raw_send_frame(&r, varint_body, sizeof(varint_body), UINT64_MAX), 0);
	s = it_raw_recv(&r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 5);
	CHECK_EQ(s->error, EOPNOTSUPP);
	server_msg__free_unpacked(s, NULL);
	CHECK_EQ(it_raw_send_frame(&r, bytes_body, sizeof(bytes_body), UINT64_MAX), 0);
	s = it_raw_recv(&r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 6);
	CHECK_EQ(s->error, EOPNOTSUPP);
	server_msg__free_unpacked(s, NULL);
	CHECK_EQ(it_raw_send_frame(&r, no_body, sizeof(no_body), UINT64_MAX), 0);
	s = it_raw_recv(&r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 7);
	CHECK_EQ(s->error, EOPNOTSUPP);
	server_msg__free_unpacked(s, NULL);
	r.next_id = 100;
	check_alive(&r);
	it_raw_close(&r);
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), errs);
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

TEST(wrong_length_hid)
{
	static const size_t lens[] = {0, 1, 15, 17, 32};
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	uint8_t hid[32] = {1, 0, 0, 0, 5};
	long long errs;
	size_t i;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		ClientMsg m = CLIENT_MSG__INIT;
		Import im = IMPORT__INIT;
		Unexport un = UNEXPORT__INIT;
		Query q;

		hbt_raw_session(&r, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT);
		im.hid.data = hid;
		im.hid.len = lens[i];
		IT_MSG(m, IMPORT, import, &im);
		m.id = 3;
		CHECK_EQ(it_raw_send(&r, &m), 0);
		CHECK_DROPPED(&d, &r, errs);

		hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
		m = query_msg(&q, hid, lens[i]);
		m.id = 3;
		CHECK_EQ(it_raw_send(&r, &m), 0);
		CHECK_DROPPED(&d, &r, errs);

		hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
		un.hid.data = hid;
		un.hid.len = lens[i];
		IT_MSG(m, UNEXPORT, unexport, &un);
		m.id = 3;
		CHECK_EQ(it_raw_send(&r, &m), 0);
		CHECK_DROPPED(&d, &r, errs);
	}
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

/* ---- a host session that holds buffers, by hand ------------------------------------------ */

/* Hello + Attach to group a (the reply's pool fd is closed); returns the group id. */
static uint32_t raw_host_attached(struct it_raw *r, const struct hbt_daemon *d)
{
	ServerMsg *w;
	uint32_t group;

	it_raw_open(r, d->socket);
	w = it_raw_hello(r, HBP_ROLE_CLIENT);
	group = it_welcome_group(w, "a")->id;
	server_msg__free_unpacked(w, NULL);
	CHECK_EQ(hbt_raw_attach(r, group, 0), 0);
	return group;
}

static uint64_t raw_alloc(struct it_raw *r, uint32_t peer, uint64_t size)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Alloc a = ALLOC__INIT;
	ServerMsg *s;
	uint64_t h;

	a.peer = peer;
	a.size = size;
	IT_MSG(m, ALLOC, alloc, &a);
	s = IT_RAW_CALL(r, &m);
	CHECK_EQ(s->error, 0);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_ALLOC);
	CHECK(s->alloc->desc != NULL);
	CHECK_EQ(s->alloc->desc->size, size);
	CHECK_EQ(s->alloc->desc->pages, IT_PAGES(size));
	h = s->alloc->buffer;
	server_msg__free_unpacked(s, NULL);
	return h;
}

/* Export by hand; returns the error, and the hid in hid (if non-NULL) on success. */
static uint32_t raw_export(struct it_raw *r, uint64_t buffer, size_t meta_len, uint8_t hid[16])
{
	static uint8_t meta[8192];
	ClientMsg m = CLIENT_MSG__INIT;
	Export e = EXPORT__INIT;
	ServerMsg *s;
	uint32_t err;

	e.buffer = buffer;
	e.meta.data = meta;
	e.meta.len = meta_len;
	IT_MSG(m, EXPORT, export, &e);
	s = IT_RAW_CALL(r, &m);
	err = s->error;
	if (!err) {
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_EXPORT);
		CHECK_EQ(s->export->hid.len, 16);
		if (hid)
			memcpy(hid, s->export->hid.data, 16);
	}
	server_msg__free_unpacked(s, NULL);
	return err;
}

static uint32_t raw_release(struct it_raw *r, uint64_t import)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Release rel = RELEASE__INIT;

	rel.import = import;
	IT_MSG(m, RELEASE, release, &rel);
	return IT_RAW_ERR(r, &m);
}

/* Import by hand; returns the error and the import handle in *import. */
static uint32_t raw_import(struct it_raw *r, const uint8_t hid[16], uint64_t *import)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Import im = IMPORT__INIT;
	ServerMsg *s;
	uint32_t err;

	im.hid.data = (uint8_t *)hid;
	im.hid.len = 16;
	IT_MSG(m, IMPORT, import, &im);
	s = IT_RAW_CALL(r, &m);
	err = s->error;
	if (!err) {
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_IMPORT);
		*import = s->import->import;
	}
	server_msg__free_unpacked(s, NULL);
	return err;
}

/* The daemon applies meta_max itself, whatever a client library checks. */
/* A quiet re-export (Export.hid, .quiet) by hand; returns the refusal's error, or 0 when no
 * answer came before the answer to the Query sent after it. */
static uint32_t raw_reexport(struct it_raw *r, uint64_t buffer, const uint8_t hid[16])
{
	ClientMsg m = CLIENT_MSG__INIT, qm;
	Export e = EXPORT__INIT;
	Query q;
	ServerMsg *s;
	uint32_t err = 0;
	int why;

	e.buffer = buffer;
	e.hid.data = (uint8_t *)hid;
	e.hid.len = 16;
	e.quiet = true;
	IT_MSG(m, EXPORT, export, &e);
	m.id = 700;
	CHECK_EQ(it_raw_send(r, &m), 0);
	qm = query_msg(&q, (uint8_t *)hid, 16);
	qm.id = 701;
	CHECK_EQ(it_raw_send(r, &qm), 0);
	s = it_raw_recv(r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	if (s->id == 700) {
		err = s->error;
		CHECK(err != 0);
		server_msg__free_unpacked(s, NULL);
		s = it_raw_recv(r, IT_WAIT_MS, &why);
		CHECK(s != NULL);
	}
	CHECK_EQ(s->id, 701);
	server_msg__free_unpacked(s, NULL);
	return err;
}

/* A re-export must name the hid its buffer's export is live under: another buffer's, or one
 * unexported, is ESTALE and exports nothing; the right one is applied without an answer. A
 * quiet export that names no hid is not a valid message. */
TEST(reexport_names_its_live_hid)
{
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	uint64_t a, b;
	uint8_t hid_a[16], hid_b[16];
	long long errs;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	raw_host_attached(&r, &d);
	a = raw_alloc(&r, 1, 4096);
	b = raw_alloc(&r, 1, 4096);
	CHECK_EQ(raw_export(&r, a, 0, hid_a), 0);
	CHECK_EQ(raw_export(&r, b, 0, hid_b), 0);
	CHECK_EQ(raw_reexport(&r, a, hid_b), ESTALE);
	CHECK_EQ(raw_reexport(&r, a, hid_a), 0);
	CHECK_EQ(IT_STAT(&d, "exports_total"), 2);
	{
		ClientMsg m = CLIENT_MSG__INIT;
		Unexport u = UNEXPORT__INIT;

		u.hid.data = hid_a;
		u.hid.len = 16;
		IT_MSG(m, UNEXPORT, unexport, &u);
		CHECK_EQ(IT_RAW_ERR(&r, &m), 0);
	}
	CHECK_EQ(raw_reexport(&r, a, hid_a), ESTALE);
	CHECK_EQ(IT_STAT(&d, "exports"), 1);
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), errs);
	{
		ClientMsg m = CLIENT_MSG__INIT;
		Export e = EXPORT__INIT;

		e.buffer = b;
		e.quiet = true;
		IT_MSG(m, EXPORT, export, &e);
		m.id = 702;
		CHECK_EQ(it_raw_send(&r, &m), 0);
	}
	CHECK_DROPPED(&d, &r, errs);
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

TEST(daemon_checks_meta_max)
{
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	uint64_t buf;
	uint8_t hid[16], hid2[16];
	long long errs;

	hbt_daemon_start(&d, "[limits]\nmeta_max = 1024\n");
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	raw_host_attached(&r, &d);
	buf = raw_alloc(&r, 1, 5000);
	CHECK_EQ(raw_export(&r, buf, 1025, NULL), EMSGSIZE);
	CHECK_EQ(raw_export(&r, buf, 4096, NULL), EMSGSIZE);
	/* Logged with both sizes, for whoever has to change one of them. */
	CHECK(it_file_has(d.log, "metadata of 1025 bytes, over meta_max 1024"));
	CHECK_EQ(IT_STAT(&d, "exports"), 0);
	CHECK_EQ(raw_export(&r, buf, 1024, hid), 0);
	CHECK_EQ(raw_export(&r, buf, 0, hid2), 0);
	CHECK(memcmp(hid, hid2, 16) == 0);
	/* Over HBP_META_LIMIT the message itself is invalid: dropped. */
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), errs);
	{
		static uint8_t meta[HBP_META_LIMIT + 1];
		ClientMsg m = CLIENT_MSG__INIT;
		Export e = EXPORT__INIT;

		e.buffer = buf;
		e.meta.data = meta;
		e.meta.len = sizeof(meta);
		IT_MSG(m, EXPORT, export, &e);
		m.id = 999;
		CHECK_EQ(it_raw_send(&r, &m), 0);
		CHECK_DROPPED(&d, &r, errs);
	}
	/* The dropped session's buffer went with it. */
	IT_CHECK_STAT(&d, "buffers", 0);
	IT_CHECK_STAT(&d, "exports", 0);
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

/* A frame of exactly HBP_FRAME_MAX bytes is legal (unknown fields pad it out). */
TEST(frame_max_is_inclusive)
{
	struct hbt_daemon d;
	struct it_raw r;
	uint8_t hid[16] = {7, 7, 7};
	uint8_t *frame;
	size_t base, pad;
	ServerMsg *s;
	Query q;
	ClientMsg m;
	int why;

	hbt_daemon_start(&d, NULL);
	hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
	m = query_msg(&q, hid, 16);
	m.id = 77;
	base = client_msg__get_packed_size(&m);
	/* field 1000, wire type 2: tag 2 bytes, length 3 bytes, then pad bytes */
	pad = HBP_FRAME_MAX - base - 5;
	CHECK(pad >= (1u << 14) && pad < (1u << 21));
	frame = calloc(1, HBP_FRAME_MAX);
	CHECK(frame != NULL);
	client_msg__pack(&m, frame);
	frame[base] = 0xc2;
	frame[base + 1] = 0x3e;
	frame[base + 2] = (uint8_t)(0x80 | (pad & 0x7f));
	frame[base + 3] = (uint8_t)(0x80 | ((pad >> 7) & 0x7f));
	frame[base + 4] = (uint8_t)(pad >> 14);
	CHECK_EQ(it_raw_send_frame(&r, frame, HBP_FRAME_MAX, UINT64_MAX), 0);
	s = it_raw_recv(&r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 77);
	CHECK_EQ(s->error, ENOENT);
	server_msg__free_unpacked(s, NULL);
	check_alive(&r);
	/* One byte more is a violation. */
	CHECK_EQ(it_raw_send_frame(&r, frame, 0, HBP_FRAME_MAX + 1), 0);
	CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	free(frame);
	it_raw_close(&r);
	IT_STOP(&d);
}

/* Frames split anywhere and frames batched together are the same stream. */
TEST(pipelined_and_trickled_frames)
{
	struct hbt_daemon d;
	struct it_raw r;
	uint8_t hid[16] = {3};
	uint8_t *all, one[64];
	size_t len = 0, n, i;
	ServerMsg *s;
	ClientMsg m;
	Query q;
	int why;

	hbt_daemon_start(&d, NULL);
	/* A Hello one byte at a time. */
	it_raw_open(&r, d.socket);
	{
		ClientMsg hm = CLIENT_MSG__INIT;
		Hello hello = HELLO__INIT;

		hello.version = HBP_PROTOCOL_VERSION;
		IT_MSG(hm, HELLO, hello, &hello);
		hm.id = 1;
		n = 0;
		hbt_put_frame(one, sizeof(one), &n, &hm);
		for (i = 0; i < n; i++) {
			CHECK_EQ(it_send_all(r.fd, one + i, 1), 0);
			it_sleep_ms(5);
		}
	}
	s = it_raw_recv(&r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 1);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_WELCOME);
	server_msg__free_unpacked(s, NULL);

	/* 50 queries in one write: 50 replies, in order. */
	all = malloc(50 * 64);
	CHECK(all != NULL);
	for (i = 0; i < 50; i++) {
		m = query_msg(&q, hid, 16);
		m.id = 1000 + (uint32_t)i;
		hbt_put_frame(all, 50 * 64, &len, &m);
	}
	CHECK_EQ(it_send_all(r.fd, all, len), 0);
	for (i = 0; i < 50; i++) {
		s = it_raw_recv(&r, IT_WAIT_MS, &why);
		CHECK(s != NULL);
		CHECK_EQ(s->id, 1000 + i);
		CHECK_EQ(s->error, ENOENT);
		server_msg__free_unpacked(s, NULL);
	}
	free(all);
	it_raw_close(&r);
	IT_STOP(&d);
}

/* Buffer and import handles are private to their session. */
TEST(foreign_handles)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *from_vm1;
	struct it_raw a, b;
	struct hb_id id;
	uint64_t buf, imp;
	uint8_t hid[16];
	long long errs;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	errs = IT_STAT(&d, "errors_protocol");
	raw_host_attached(&a, &d);
	raw_host_attached(&b, &d); /* same domain, another session, owns nothing */
	buf = raw_alloc(&a, 1, 4096);
	from_vm1 = IT_ALLOC(v1, 0, 4096, 0);
	IT_EXPORT(from_vm1, NULL, 0, &id);
	CHECK_EQ(raw_import(&a, id.bytes, &imp), 0);

	CHECK_EQ(it_raw_free(&b, buf), ENOENT);
	CHECK_EQ(raw_export(&b, buf, 0, NULL), ENOENT);
	CHECK_EQ(raw_release(&b, imp), ENOENT);
	CHECK_EQ(raw_release(&b, buf), ENOENT);
	CHECK_EQ(it_raw_free(&b, imp), ENOENT);
	CHECK_EQ(it_raw_free(&a, buf + 1000), ENOENT);
	CHECK_EQ(raw_release(&a, imp + 1000), ENOENT);
	CHECK_EQ(it_raw_free(&a, 0), ENOENT);
	CHECK_EQ(it_raw_free(&a, UINT64_MAX), ENOENT);
	/* Nothing happened to them: their owner still uses them. */
	CHECK_EQ(raw_export(&a, buf, 0, hid), 0);
	CHECK_EQ(raw_release(&a, imp), 0);
	CHECK_EQ(raw_release(&a, imp), ENOENT); /* once only */
	CHECK_EQ(it_raw_free(&a, buf), 0);
	CHECK_EQ(it_raw_free(&a, buf), ENOENT);
	check_alive(&b);
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), errs);
	it_raw_close(&a);
	it_raw_close(&b);
	hb_buffer_free(from_vm1);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* Forged hids, through the library: random ones, and a real one with one bit flipped. */
TEST(forged_hids)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_info info;
	struct hb_id id, f;
	uint64_t seed = 0xf0f0;
	int i;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);
	for (i = 0; i < 100; i++) {
		it_random_id(&f, &seed);
		CHECK_ERR(hb_import(v2, &f, 0), ENOENT);
		CHECK_ERR(hb_query(v1, &f, &info), ENOENT);
		CHECK_ERR(hb_unexport(v1, &f, 0), ENOENT);
	}
	/* The right serial, the random part one bit off (bytes 4..15, and any bit of the 96). */
	for (i = 32; i < 128; i++) {
		f = id;
		f.bytes[i / 8] ^= (uint8_t)(1u << (i % 8));
		CHECK_ERR(hb_import(v2, &f, 0), ENOENT);
		CHECK_ERR(hb_query(v2, &f, &info), ENOENT);
		CHECK_ERR(hb_unexport(v1, &f, 0), ENOENT);
	}
	/* The real one is untouched by all that. */
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.flags, 0);
	im = IT_IMPORT(v2, &id, 0);
	hb_import_release(im);
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), 0);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

static long long vm_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtoll(line + 6, NULL, 10);
	}
	fclose(f);
	return kb;
}

/* Waits (up to 5 s) until the daemon has read everything we sent and our receive queue has
 * stopped growing: the daemon then sits on a full socket. */
static void wait_stalled(int fd)
{
	uint64_t end = hbt_now_ms() + IT_WAIT_MS;
	int queued = -1, stable = 0;

	while (hbt_now_ms() < end && stable < 3) {
		int out = 0, in = 0;

		it_sleep_ms(100);
		if (ioctl(fd, SIOCOUTQ, &out) != 0 || ioctl(fd, FIONREAD, &in) != 0)
			return;
		stable = out == 0 && in == queued ? stable + 1 : 0;
		queued = in;
	}
}

/* True once the daemon closed fd's other end, found without reading (reading would relieve the
 * very pressure under test). */
static bool hung_up(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

/* A client that never reads its replies is dropped before the daemon hoards 8 MiB for it. */
TEST(slow_reader_dropped)
{
	struct hbt_daemon d;
	struct honest h;
	struct it_raw r;
	uint8_t frame[32];
	long long errs;
	uint64_t end;
	size_t n;
	uint32_t i;
	unsigned reply_len, limit;
	bool closed = false;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	errs = IT_STAT(&d, "errors_protocol");
	hbt_raw_session(&r, d.socket, HBP_ROLE_CLIENT);
	{
		ClientMsg m = CLIENT_MSG__INIT;
		Control ctl = CONTROL__INIT;
		ServerMsg *s;

		ctl.what = HBP_CTL_STATS;
		IT_MSG(m, CONTROL, control, &ctl);
		s = IT_RAW_CALL(&r, &m);
		CHECK_EQ(s->error, 0);
		reply_len = (unsigned)server_msg__get_packed_size(s) + 4;
		server_msg__free_unpacked(s, NULL);
	}
	/* Tiny requests, big replies: the replies pile up in the daemon, never read. */
	limit = 2 + (24u << 20) / reply_len; /* three times the 8 MiB the daemon may hold */
	end = hbt_now_ms() + 12000;
	for (i = 2; !closed && i < limit && hbt_now_ms() < end; i++) {
		ClientMsg m = CLIENT_MSG__INIT;
		Control ctl = CONTROL__INIT;
		struct pollfd p = {.fd = r.fd, .events = POLLOUT};

		ctl.what = HBP_CTL_STATS;
		IT_MSG(m, CONTROL, control, &ctl);
		m.id = i;
		n = 0;
		hbt_put_frame(frame, sizeof(frame), &n, &m);
		/* Send only when a whole small frame fits (POLLOUT), so the stream stays framed. */
		if (poll(&p, 1, 200) <= 0)
			continue;
		if (p.revents & (POLLERR | POLLHUP))
			closed = true;
		else if (send(r.fd, frame, n, MSG_NOSIGNAL) < 0)
			closed = errno == EPIPE || errno == ECONNRESET;
		/* Once about 2 MiB of replies are due, let the daemon fill our socket and stall
		 * on it: from then on only its own buffer can grow. */
		if (i == 2 + (2u << 20) / reply_len)
			wait_stalled(r.fd);
	}
	if (!closed && !hung_up(r.fd, IT_WAIT_MS))
		hbt_fail(__FILE__, __LINE__,
			 "%u requests (~%u bytes of replies unread) and the session was not "
			 "dropped; daemon VmRSS %lld kB",
			 i - 2, (i - 2) * reply_len, vm_rss_kb(d.pid));
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), errs + 1);
	it_raw_close(&r);
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

/* ---- a hostile group member rewrites the reference directory ------------------------------ */

struct dir_attack {
	const char *what;
	size_t size;      /* buffer size */
	int level;        /* 1: rewrite the root of a depth-1 directory; 2: of a depth-2 one */
	unsigned index;   /* which entry */
	int64_t value;    /* new ref; -1 = the root itself, -2 = the first level-1 page */
	int err, err_alt; /* hb_import's errno (err_alt also accepted) */
};

/* Finds the directory root of an exported, patterned buffer by scanning the pool. */
static uint32_t find_root(int fd, uint64_t pool_size, struct hb_buffer *b, uint32_t *l1)
{
	uint32_t pages = (uint32_t)IT_PAGES(hb_buffer_size(b));
	int64_t d0, dir, root;

	d0 = it_pool_find_bytes(fd, pool_size, (const uint8_t *)hb_buffer_data(b) + 64, 256);
	CHECK(d0 > 0);
	dir = it_pool_find_dir(fd, pool_size, (uint32_t)d0, pages < 1024 ? pages : 1024);
	CHECK(dir > 0);
	if (pages <= 1024)
		return (uint32_t)dir;
	*l1 = (uint32_t)dir;
	root = it_pool_find_dir(fd, pool_size, (uint32_t)dir, (pages + 1023) / 1024);
	CHECK(root > 0);
	return (uint32_t)root;
}

TEST(hostile_directory)
{
	const struct dir_attack attacks[] = {
	    /* 65 pages: the smallest buffer with a directory (HBP_INLINE_REFS_MAX + 1). */
	    {"data ref to the header page", 65 * 4096, 1, 1, 0, EBADMSG, EBADMSG},
	    {"data ref beyond the pool", 65 * 4096, 1, 2, 32768, EBADMSG, EBADMSG},
	    {"data ref far beyond the pool", 65 * 4096, 1, 0, 0xffffffffu, EBADMSG, EBADMSG},
	    {"data ref to its own directory", 65 * 4096, 1, 0, -1, EBADMSG, ELOOP},
	    {"non-zero slack after the last ref", 65 * 4096, 1, 65, 5, EBADMSG, EBADMSG},
	    {"level-1 ref to the header page", 1100 * 4096, 2, 1, 0, EBADMSG, EBADMSG},
	    {"level-1 page listed twice (cycle)", 1100 * 4096, 2, 1, -2, EBADMSG, ELOOP},
	    {"root listing itself (cycle)", 1100 * 4096, 2, 1, -1, EBADMSG, ELOOP},
	};
	struct hbt_daemon d;
	struct honest h;
	struct it_ivsh p;
	struct hbp_pool_header hdr;
	size_t i;

	hbt_daemon_start(&d, NULL);
	honest_open(&h, &d);
	/* vm1's view of group b's pool, through an ivshmem connection of its own. */
	it_ivsh_join(&p, hbt_path(&d, "group-b.sock"));
	for (i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		const struct dir_attack *a = &attacks[i];
		struct hb_buffer *b = IT_ALLOC(h.v1, 2, a->size, 0);
		uint32_t root, l1 = 0, ref;
		struct hb_id id;
		int e;

		it_fill(b, 0x600d + i);
		IT_EXPORT(b, NULL, 0, &id);
		root = find_root(p.pool_fd, p.pool_size, b, &l1);
		ref = a->value == -1 ? root : a->value == -2 ? l1 : (uint32_t)a->value;
		it_pool_write_ref(p.pool_fd, root, a->index, ref);

		errno = 0;
		if (hb_import(h.v2, &id, 0) != NULL)
			hbt_fail(__FILE__, __LINE__, "%s: import succeeded", a->what);
		e = errno;
		if (e != a->err && e != a->err_alt)
			hbt_fail(__FILE__, __LINE__, "%s: errno %d (%s), want %s", a->what, e,
				 strerror(e), strerror(a->err));
		/* The failed walk leaves no import behind in the daemon. */
		IT_CHECK_STAT(&d, "imports", 0);
		hb_buffer_free(b);
		IT_CHECK_STAT(&d, "pool.b.pages_used", 0);
		HONEST_CHECK(&h);
	}
	/* The daemon never trusted the rewritten pages: the header is intact, nothing leaked. */
	CHECK_EQ(pread(p.pool_fd, &hdr, sizeof(hdr), 0), sizeof(hdr));
	CHECK(memcmp(hdr.magic, HBP_POOL_MAGIC, 8) == 0);
	CHECK_EQ(hdr.size, 128u << 20);
	it_ivsh_close(&p);
	honest_close(&h);
	IT_CHECK_STAT(&d, "pages_used", 0);
	IT_STOP(&d);
}

/* ---- connections per domain ------------------------------------------------------------------ */

/* Hundreds of idle connections (no Hello, half a frame, or a Hello and silence) do not stop
 * honest clients, and all go away cleanly. */
/* One VM opening connections by the hundred gets sessions_per_domain of them; the rest are
 * closed at once, and the other domains — the host included — can still connect and share. */
TEST(many_idle_connections)
{
	enum { N = 200, LIMIT = 32 };
	struct hbt_daemon d;
	struct honest h;
	static struct it_raw r[N];
	struct hb_client *host;
	long long sessions;
	int i;

	hbt_daemon_start(&d, "[limits]\nsessions_per_domain = 32\n");
	honest_open(&h, &d);
	sessions = IT_STAT(&d, "sessions");
	for (i = 0; i < N; i++) {
		it_raw_open(&r[i], hbt_path(&d, "vm3.sock"));
		if (i < LIMIT && i % 2 == 0) {
			ServerMsg *w = it_raw_hello(&r[i], HBP_ROLE_CLIENT);
			server_msg__free_unpacked(w, NULL);
		} else if (i < LIMIT) {
			CHECK_EQ(it_send_all(r[i].fd, "\x20\x00", 2), 0); /* half a header */
		}
	}
	/* Everything past the limit was hung up on; everything within it is still open. */
	for (i = LIMIT; i < N; i++)
		CHECK(it_raw_wait_closed(&r[i], IT_WAIT_MS));
	IT_CHECK_STAT(&d, "sessions", sessions + LIMIT);
	HONEST_CHECK(&h);
	host = IT_CONNECT(hbt_addr_host(&d));
	hb_disconnect(host);
	for (i = 0; i < N; i++)
		it_raw_close(&r[i]);
	IT_CHECK_STAT(&d, "sessions", sessions);
	HONEST_CHECK(&h);
	honest_close(&h);
	IT_STOP(&d);
}

/* "sessions" of domain id in `hyperbufctl --json domains`, or -1 if it is not listed. */
static long long ctl_domain_sessions(const struct hbt_daemon *d, uint32_t id)
{
	static char out[64 * 1024];
	char key[32];
	const char *p, *s;

	CHECK_EQ(hbt_ctl(d, out, sizeof(out), "--json domains"), 0);
	CHECK(it_json_ok(out));
	snprintf(key, sizeof(key), "{\"id\":%u,", id);
	p = strstr(out, key);
	if (!p)
		return -1;
	s = strstr(p, "\"sessions\":");
	CHECK(s != NULL);
	return strtoll(s + strlen("\"sessions\":"), NULL, 10);
}

/* Waits until the daemon's log contains text (reload done, say); fails after IT_WAIT_MS. */
static void wait_log(const struct hbt_daemon *d, const char *text)
{
	uint64_t end = hbt_now_ms() + IT_WAIT_MS;
	static char buf[1 << 20];

	for (;;) {
		FILE *f = fopen(d->log, "r");
		size_t n = 0;

		if (f) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
		}
		buf[n] = '\0';
		if (strstr(buf, text))
			return;
		if (hbt_now_ms() >= end)
			hbt_fail(__FILE__, __LINE__, "no \"%s\" in the daemon log within %d ms",
				 text, IT_WAIT_MS);
		it_sleep_ms(20);
	}
}

/* Hello on a fresh connection: true if welcomed, false if the daemon refused it (its refusal
 * frame, or a hang-up). */
static bool try_hello(struct it_raw *r, const char *path)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Hello h = HELLO__INIT;
	ServerMsg *s;
	bool ok;

	it_raw_open(r, path);
	h.version = HBP_PROTOCOL_VERSION;
	h.role = HBP_ROLE_CLIENT;
	IT_MSG(m, HELLO, hello, &h);
	m.id = r->next_id++;
	if (it_raw_send(r, &m) != 0)
		return false;
	s = it_raw_recv(r, IT_WAIT_MS, NULL);
	if (!s)
		return false;
	/* A refusal (PROTOCOL.md §2): one frame, id 0, EUSERS, then the hang-up. */
	if (s->id == 0 && s->error == EUSERS) {
		server_msg__free_unpacked(s, NULL);
		return false;
	}
	ok = s->id == m.id && s->error == 0 && s->body_case == SERVER_MSG__BODY_WELCOME;
	server_msg__free_unpacked(s, NULL);
	CHECK(ok);
	return true;
}

/* sessions_per_domain counts connections, and sessions only after Hello; a reload lowers the
 * limit for the connections that come next, and a closed one frees its place. */
TEST(sessions_per_domain)
{
	struct hbt_daemon d;
	struct it_raw quiet, hello, third, refused, again;
	char vm3[300];
	long long base;
	uint64_t end;

	hbt_daemon_start(&d, "[limits]\nsessions_per_domain = 4\n");
	snprintf(vm3, sizeof(vm3), "%s", hbt_path(&d, "vm3.sock"));
	base = IT_STAT(&d, "sessions");

	/* A connection that never says Hello is not a client session... */
	it_raw_open(&quiet, vm3);
	CHECK(!it_raw_wait_closed(&quiet, 200));
	CHECK_EQ(ctl_domain_sessions(&d, 3), 0);
	hbt_raw_session(&hello, vm3, HBP_ROLE_CLIENT);
	CHECK_EQ(ctl_domain_sessions(&d, 3), 1);

	/* ...but it counts against sessions_per_domain, which a reload lowers to 3. */
	it_write_file(d.config, IT_TOPOLOGY "[limits]\nsessions_per_domain = 3\n");
	CHECK(kill(d.pid, SIGHUP) == 0);
	wait_log(&d, "reload: configuration applied");
	CHECK(try_hello(&third, vm3)); /* the third connection */
	CHECK_EQ(ctl_domain_sessions(&d, 3), 2);
	it_raw_open(&refused, vm3); /* the fourth: over the new limit */
	CHECK(it_raw_wait_closed(&refused, IT_WAIT_MS));
	it_raw_close(&refused);
	/* Other domains are not affected. */
	{
		struct hb_client *v1 = IT_CONNECT(hbt_addr_vm(&d, 1));

		hb_disconnect(v1);
	}

	/* The silent one going frees its place. */
	it_raw_close(&quiet);
	end = hbt_now_ms() + IT_WAIT_MS;
	for (;;) {
		if (try_hello(&again, vm3))
			break;
		it_raw_close(&again);
		if (hbt_now_ms() >= end)
			hbt_fail(__FILE__, __LINE__, "no vm3 connection accepted after one closed");
		it_sleep_ms(50);
	}
	CHECK_EQ(ctl_domain_sessions(&d, 3), 3);
	it_raw_open(&refused, vm3);
	CHECK(it_raw_wait_closed(&refused, IT_WAIT_MS));
	it_raw_close(&refused);
	it_raw_close(&again);
	it_raw_close(&third);
	it_raw_close(&hello);
	IT_CHECK_STAT(&d, "sessions", base);
	IT_STOP(&d);
}
