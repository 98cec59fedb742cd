/* Unit tests for protocol/frame.c: framing, round trips, and everything validation rejects. */
#include <stdint.h>

#include "protocol/frame.h"
#include "protocol/limits.h"
#include "tests/harness.h"

static uint8_t hid_bytes[16] = {7, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static ProtobufCBinaryData bin(const void *p, size_t len)
{
	ProtobufCBinaryData b = {.len = len, .data = (uint8_t *)p};

	return b;
}

/* Frames msg into a fresh buffer, cuts it again and checks the framing; returns the bytes. */
static struct hbp_bytes frame_client(const ClientMsg *m)
{
	struct hbp_bytes out = {0};
	const uint8_t *payload = NULL;
	long n;

	CHECK_EQ(hbp_frame_put_client(&out, m, HBP_FRAME_MAX), 0);
	CHECK(out.len > HBP_FRAME_HEADER);
	n = hbp_frame_peek(out.data, out.len, HBP_FRAME_MAX, &payload);
	CHECK_EQ(n, out.len - HBP_FRAME_HEADER);
	CHECK(payload == out.data + HBP_FRAME_HEADER);
	return out;
}

static ClientMsg *client_round_trip(const ClientMsg *m)
{
	struct hbp_bytes out = frame_client(m);
	ClientMsg *back =
	    hbp_frame_get_client(out.data + HBP_FRAME_HEADER, out.len - HBP_FRAME_HEADER);

	hbp_bytes_free(&out);
	return back;
}

static ServerMsg *server_round_trip(const ServerMsg *m)
{
	struct hbp_bytes out = {0};
	const uint8_t *payload = NULL;
	ServerMsg *back;
	long n;

	CHECK_EQ(hbp_frame_put_server(&out, m, HBP_FRAME_MAX), 0);
	n = hbp_frame_peek(out.data, out.len, HBP_FRAME_MAX, &payload);
	CHECK_EQ(n, out.len - HBP_FRAME_HEADER);
	back = hbp_frame_get_server(payload, (size_t)n);
	hbp_bytes_free(&out);
	return back;
}

/* Packs a message without the codec's checks, to feed the decoder what a hostile peer sends. */
static size_t pack_raw(const ProtobufCMessage *m, uint8_t *buf, size_t cap)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	CHECK(n <= cap);
	return protobuf_c_message_pack(m, buf);
}

TEST(client_round_trip_every_body)
{
	ClientMsg m = CLIENT_MSG__INIT, *b;
	Hello hello = HELLO__INIT;
	Attach attach = ATTACH__INIT;
	Alloc alloc = ALLOC__INIT;
	Free fr = FREE__INIT;
	Export ex = EXPORT__INIT;
	Unexport unex = UNEXPORT__INIT;
	Import im = IMPORT__INIT;
	Release rel = RELEASE__INIT;
	Query q = QUERY__INIT;
	Control ctl = CONTROL__INIT;
	uint8_t meta[HBP_META_LIMIT];

	for (size_t i = 0; i < sizeof(meta); i++)
		meta[i] = (uint8_t)(i * 31);

	m.id = 1;
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &hello;
	hello.version = HBP_PROTOCOL_VERSION;
	hello.role = HBP_ROLE_CONTROL;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->id, 1);
	CHECK_EQ(b->body_case, CLIENT_MSG__BODY_HELLO);
	CHECK_EQ(b->hello->version, HBP_PROTOCOL_VERSION);
	CHECK_EQ(b->hello->role, HBP_ROLE_CONTROL);
	client_msg__free_unpacked(b, NULL);

	m.id = 2;
	m.body_case = CLIENT_MSG__BODY_ATTACH;
	m.attach = &attach;
	attach.group = 3;
	attach.ivshmem_peer = 65535;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->attach->group, 3);
	CHECK_EQ(b->attach->ivshmem_peer, 65535);
	client_msg__free_unpacked(b, NULL);

	m.id = UINT32_MAX;
	m.body_case = CLIENT_MSG__BODY_ALLOC;
	m.alloc = &alloc;
	alloc.peer = 2;
	alloc.size = (1ull << 40) + 5;
	alloc.flags = 1;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->id, UINT32_MAX);
	CHECK_EQ(b->alloc->peer, 2);
	CHECK(b->alloc->size == (1ull << 40) + 5);
	CHECK_EQ(b->alloc->flags, 1);
	client_msg__free_unpacked(b, NULL);

	m.id = 4;
	m.body_case = CLIENT_MSG__BODY_FREE;
	m.free = &fr;
	fr.buffer = UINT64_MAX;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK(b->free->buffer == UINT64_MAX);
	client_msg__free_unpacked(b, NULL);

	/* The largest metadata that is allowed travels whole. */
	m.id = 5;
	m.body_case = CLIENT_MSG__BODY_EXPORT;
	m.export = &ex;
	ex.buffer = 9;
	ex.meta = bin(meta, sizeof(meta));
	b = client_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->export->buffer, 9);
	CHECK_EQ(b->export->meta.len, HBP_META_LIMIT);
	CHECK(memcmp(b->export->meta.data, meta, sizeof(meta)) == 0);
	client_msg__free_unpacked(b, NULL);

	m.id = 6;
	m.body_case = CLIENT_MSG__BODY_UNEXPORT;
	m.unexport = &unex;
	unex.hid = bin(hid_bytes, 16);
	unex.delay_ms = 250;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->unexport->hid.len, 16);
	CHECK(memcmp(b->unexport->hid.data, hid_bytes, 16) == 0);
	CHECK_EQ(b->unexport->delay_ms, 250);
	client_msg__free_unpacked(b, NULL);

	m.id = 7;
	m.body_case = CLIENT_MSG__BODY_IMPORT;
	m.import = &im;
	im.hid = bin(hid_bytes, 16);
	im.flags = 1;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK(memcmp(b->import->hid.data, hid_bytes, 16) == 0);
	CHECK_EQ(b->import->flags, 1);
	client_msg__free_unpacked(b, NULL);

	m.id = 8;
	m.body_case = CLIENT_MSG__BODY_RELEASE;
	m.release = &rel;
	rel.import = 77;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->release->import, 77);
	client_msg__free_unpacked(b, NULL);

	m.id = 9;
	m.body_case = CLIENT_MSG__BODY_QUERY;
	m.query = &q;
	q.hid = bin(hid_bytes, 16);
	b = client_round_trip(&m);
	CHECK(b);
	CHECK(memcmp(b->query->hid.data, hid_bytes, 16) == 0);
	client_msg__free_unpacked(b, NULL);

	m.id = 10;
	m.body_case = CLIENT_MSG__BODY_CONTROL;
	m.control = &ctl;
	ctl.what = HBP_CTL_STATS;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->control->what, HBP_CTL_STATS);
	client_msg__free_unpacked(b, NULL);

	/* A body whose fields are all defaults packs as an empty submessage and still arrives
	 * as that body. */
	hello.version = 0;
	hello.role = 0;
	m.id = 11;
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &hello;
	b = client_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->body_case, CLIENT_MSG__BODY_HELLO);
	CHECK(b->hello);
	client_msg__free_unpacked(b, NULL);
}

TEST(server_round_trip_every_body)
{
	ServerMsg m = SERVER_MSG__INIT, *b;
	Welcome w = WELCOME__INIT;
	GroupInfo g1 = GROUP_INFO__INIT, g2 = GROUP_INFO__INIT, *groups[2] = {&g1, &g2};
	uint32_t members[2] = {0, 1};
	AllocReply ar = ALLOC_REPLY__INIT;
	BufferDesc desc = BUFFER_DESC__INIT;
	ExportReply er = EXPORT_REPLY__INIT;
	ImportReply ir = IMPORT_REPLY__INIT;
	QueryReply qr = QUERY_REPLY__INIT;
	Event ev = EVENT__INIT;
	ControlReply cr = CONTROL_REPLY__INIT;
	CtlExport ce = CTL_EXPORT__INIT, *ces[1] = {&ce};
	CtlStat st = CTL_STAT__INIT, *sts[1] = {&st};
	char meta[] = "frame 42";

	m.id = 1;
	m.body_case = SERVER_MSG__BODY_WELCOME;
	m.welcome = &w;
	w.version = 1;
	w.domain = 3;
	w.domain_name = "vm3";
	w.meta_max = 1024;
	w.event_queue = 256;
	w.frame_max = HBP_FRAME_MAX;
	w.n_groups = 2;
	w.groups = groups;
	g1.id = 1;
	g1.name = "a";
	g1.pool_size = 64u << 20;
	g1.n_members = 2;
	g1.members = members;
	g1.ivshmem_path = "/tmp/x/group-a.sock";
	g2.id = 2;
	g2.name = "b";
	b = server_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->body_case, SERVER_MSG__BODY_WELCOME);
	CHECK_EQ(b->welcome->domain, 3);
	CHECK(strcmp(b->welcome->domain_name, "vm3") == 0);
	CHECK_EQ(b->welcome->n_groups, 2);
	CHECK_EQ(b->welcome->groups[0]->n_members, 2);
	CHECK_EQ(b->welcome->groups[0]->members[1], 1);
	CHECK(strcmp(b->welcome->groups[0]->ivshmem_path, "/tmp/x/group-a.sock") == 0);
	CHECK(strcmp(b->welcome->groups[1]->name, "b") == 0);
	server_msg__free_unpacked(b, NULL);

	m.id = 2;
	m.body_case = SERVER_MSG__BODY_ALLOC;
	m.alloc = &ar;
	ar.buffer = 5;
	ar.desc = &desc;
	desc.group = 1;
	desc.root_ref = 100;
	desc.depth = 2;
	desc.pages = 2000;
	desc.first_offset = 12;
	desc.size = 2000ull * 4096 - 100;
	b = server_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->alloc->buffer, 5);
	CHECK_EQ(b->alloc->desc->root_ref, 100);
	CHECK_EQ(b->alloc->desc->depth, 2);
	CHECK_EQ(b->alloc->desc->pages, 2000);
	CHECK_EQ(b->alloc->desc->first_offset, 12);
	CHECK(b->alloc->desc->size == 2000ull * 4096 - 100);
	server_msg__free_unpacked(b, NULL);

	m.id = 3;
	m.body_case = SERVER_MSG__BODY_EXPORT;
	m.export = &er;
	er.hid = bin(hid_bytes, 16);
	b = server_round_trip(&m);
	CHECK(b);
	CHECK(memcmp(b->export->hid.data, hid_bytes, 16) == 0);
	server_msg__free_unpacked(b, NULL);

	m.id = 4;
	m.body_case = SERVER_MSG__BODY_IMPORT;
	m.import = &ir;
	ir.import = 8;
	ir.desc = &desc;
	ir.exporter = 1;
	ir.flags = 4;
	ir.meta = bin(meta, sizeof(meta));
	b = server_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->import->import, 8);
	CHECK_EQ(b->import->desc->pages, 2000);
	CHECK_EQ(b->import->meta.len, sizeof(meta));
	CHECK(memcmp(b->import->meta.data, meta, sizeof(meta)) == 0);
	server_msg__free_unpacked(b, NULL);

	m.id = 5;
	m.body_case = SERVER_MSG__BODY_QUERY;
	m.query = &qr;
	qr.exporter = 1;
	qr.peer = 2;
	qr.importers = 3;
	qr.meta = bin(meta, 3);
	b = server_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->query->importers, 3);
	CHECK_EQ(b->query->meta.len, 3);
	server_msg__free_unpacked(b, NULL);

	m.id = 0;
	m.body_case = SERVER_MSG__BODY_EVENT;
	m.event = &ev;
	ev.type = 1;
	ev.hid = bin(hid_bytes, 16);
	ev.domain = 1;
	ev.size = 4096;
	ev.meta = bin(meta, sizeof(meta));
	b = server_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->id, 0);
	CHECK_EQ(b->event->type, 1);
	CHECK(memcmp(b->event->hid.data, hid_bytes, 16) == 0);
	server_msg__free_unpacked(b, NULL);

	/* OVERFLOW and DOMAIN_GONE name no buffer. */
	ev.type = 7;
	ev.hid = bin(NULL, 0);
	ev.meta = bin(NULL, 0);
	b = server_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->event->type, 7);
	CHECK_EQ(b->event->hid.len, 0);
	server_msg__free_unpacked(b, NULL);

	m.id = 6;
	m.body_case = SERVER_MSG__BODY_CONTROL;
	m.control = &cr;
	cr.version = "0.1.0";
	cr.backend = "kvm";
	cr.n_exports = 1;
	cr.exports = ces;
	ce.hid = bin(hid_bytes, 16);
	ce.state = "exported";
	cr.n_stats = 1;
	cr.stats = sts;
	st.key = "bytes_copied";
	st.value = 0;
	b = server_round_trip(&m);
	CHECK(b);
	CHECK(strcmp(b->control->backend, "kvm") == 0);
	CHECK_EQ(b->control->n_exports, 1);
	CHECK(strcmp(b->control->stats[0]->key, "bytes_copied") == 0);
	server_msg__free_unpacked(b, NULL);

	/* Empty success reply, and an error reply. */
	m.id = 7;
	m.body_case = SERVER_MSG__BODY__NOT_SET;
	b = server_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->id, 7);
	CHECK_EQ(b->error, 0);
	CHECK_EQ(b->body_case, SERVER_MSG__BODY__NOT_SET);
	server_msg__free_unpacked(b, NULL);
	m.error = ENOENT;
	b = server_round_trip(&m);
	CHECK(b);
	CHECK_EQ(b->error, ENOENT);
	server_msg__free_unpacked(b, NULL);
}

/* Two frames back to back; every prefix short of a whole frame asks for more. */
TEST(peek_every_split_point)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Export ex = EXPORT__INIT;
	uint8_t meta[300];
	struct hbp_bytes out = {0}, stream = {0};
	const uint8_t *payload;
	size_t first, k, fed;
	long n;
	int got = 0;

	memset(meta, 0xab, sizeof(meta));
	m.id = 42;
	m.body_case = CLIENT_MSG__BODY_EXPORT;
	m.export = &ex;
	ex.meta = bin(meta, sizeof(meta));
	CHECK_EQ(hbp_frame_put_client(&out, &m, HBP_FRAME_MAX), 0);
	first = out.len;
	m.id = 43;
	ex.meta = bin(meta, 10);
	CHECK_EQ(hbp_frame_put_client(&out, &m, HBP_FRAME_MAX), 0);

	for (k = 0; k < first; k++) {
		payload = NULL;
		CHECK_EQ(hbp_frame_peek(out.data, k, HBP_FRAME_MAX, &payload), 0);
		CHECK(payload == NULL);
	}
	n = hbp_frame_peek(out.data, first, HBP_FRAME_MAX, &payload);
	CHECK_EQ(n, first - HBP_FRAME_HEADER);

	/* Byte by byte through a hbp_bytes, the way a reader would. */
	for (fed = 0; fed < out.len; fed++) {
		CHECK_EQ(hbp_bytes_reserve(&stream, 1), 0);
		stream.data[stream.len++] = out.data[fed];
		n = hbp_frame_peek(stream.data, stream.len, HBP_FRAME_MAX, &payload);
		CHECK(n >= 0);
		if (n > 0) {
			ClientMsg *b = hbp_frame_get_client(payload, (size_t)n);

			CHECK(b);
			CHECK_EQ(b->id, 42 + got);
			CHECK_EQ(b->export->meta.len, got ? 10 : sizeof(meta));
			client_msg__free_unpacked(b, NULL);
			hbp_bytes_consume(&stream, HBP_FRAME_HEADER + (size_t)n);
			got++;
		}
	}
	CHECK_EQ(got, 2);
	CHECK_EQ(stream.len, 0);
	hbp_bytes_free(&stream);
	hbp_bytes_free(&out);
}

/* Bad lengths are refused from the 4 header bytes alone, before a payload byte exists. */
TEST(peek_rejects_bad_length_from_header)
{
	uint8_t hdr[4];
	const uint8_t *payload = NULL;

	memset(hdr, 0, sizeof(hdr));
	CHECK_EQ(hbp_frame_peek(hdr, 4, HBP_FRAME_MAX, &payload), -EMSGSIZE);
	memset(hdr, 0xff, sizeof(hdr));
	CHECK_EQ(hbp_frame_peek(hdr, 4, HBP_FRAME_MAX, &payload), -EMSGSIZE);
	/* HBP_FRAME_MAX + 1, little-endian */
	hdr[0] = 0x01;
	hdr[1] = 0x00;
	hdr[2] = 0x04;
	hdr[3] = 0x00;
	CHECK_EQ(hbp_frame_peek(hdr, 4, HBP_FRAME_MAX, &payload), -EMSGSIZE);
	/* exactly HBP_FRAME_MAX: fine, wants more */
	hdr[0] = 0x00;
	CHECK_EQ(hbp_frame_peek(hdr, 4, HBP_FRAME_MAX, &payload), 0);
	/* a caller's smaller limit applies */
	hdr[0] = 0x11;
	hdr[2] = 0x00; /* 17 */
	CHECK_EQ(hbp_frame_peek(hdr, 4, 16, &payload), -EMSGSIZE);
	CHECK_EQ(hbp_frame_peek(hdr, 4, 17, &payload), 0);
	/* fewer than 4 bytes: nothing to judge yet */
	CHECK_EQ(hbp_frame_peek(hdr, 3, 1, &payload), 0);
	CHECK(payload == NULL);

	CHECK(hbp_frame_get_client(hdr, 0) == NULL);
	CHECK(hbp_frame_get_server(hdr, 0) == NULL);
}

TEST(put_respects_max)
{
	ClientMsg m = CLIENT_MSG__INIT, zero = CLIENT_MSG__INIT;
	ServerMsg s = SERVER_MSG__INIT;
	Export ex = EXPORT__INIT;
	uint8_t meta[200] = {0};
	struct hbp_bytes out = {0};
	size_t size;

	m.id = 1;
	m.body_case = CLIENT_MSG__BODY_EXPORT;
	m.export = &ex;
	ex.meta = bin(meta, sizeof(meta));
	size = client_msg__get_packed_size(&m);
	CHECK_EQ(hbp_frame_put_client(&out, &m, (uint32_t)size - 1), -EMSGSIZE);
	CHECK_EQ(out.len, 0);
	CHECK_EQ(hbp_frame_put_client(&out, &m, (uint32_t)size), 0);
	CHECK_EQ(out.len, size + HBP_FRAME_HEADER);
	/* little-endian length prefix */
	CHECK_EQ(out.data[0], size & 0xff);
	CHECK_EQ(out.data[1], size >> 8);
	CHECK_EQ(out.data[2], 0);
	CHECK_EQ(out.data[3], 0);
	/* An all-default message would be a zero-length frame, which is never valid. */
	CHECK_EQ(hbp_frame_put_client(&out, &zero, HBP_FRAME_MAX), -EMSGSIZE);
	CHECK_EQ(hbp_frame_put_server(&out, &s, HBP_FRAME_MAX), -EMSGSIZE);
	CHECK_EQ(out.len, size + HBP_FRAME_HEADER);
	hbp_bytes_free(&out);
	CHECK(out.data == NULL);
	CHECK_EQ(out.len, 0);
	CHECK_EQ(out.cap, 0);
	hbp_bytes_free(&out); /* twice is harmless */
}

TEST(bytes_reserve_and_consume)
{
	struct hbp_bytes b = {0};

	CHECK_EQ(hbp_bytes_reserve(&b, 0), 0);
	CHECK_EQ(hbp_bytes_reserve(&b, 10), 0);
	CHECK(b.cap >= 10);
	memcpy(b.data, "0123456789", 10);
	b.len = 10;
	hbp_bytes_consume(&b, 3);
	CHECK_EQ(b.len, 7);
	CHECK(memcmp(b.data, "3456789", 7) == 0);
	CHECK_EQ(hbp_bytes_reserve(&b, 100000), 0);
	CHECK(b.cap - b.len >= 100000);
	CHECK(memcmp(b.data, "3456789", 7) == 0);
	CHECK_EQ(hbp_bytes_reserve(&b, SIZE_MAX), -ENOMEM);
	CHECK_EQ(b.len, 7);
	hbp_bytes_consume(&b, 100);
	CHECK_EQ(b.len, 0);
	hbp_bytes_free(&b);
}

TEST(garbage_rejected)
{
	static const uint8_t bad_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
					     0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t wire_type_7[] = {0x0f, 0x01};
	static const uint8_t truncated_len[] = {0x08, 0x01, 0x32, 0x10, 0x08};
	static const uint8_t id_as_bytes[] = {0x0a, 0x01, 0x01};
	static const uint8_t all_ff[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t buf[512];
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int i, accepted = 0;

	CHECK(hbp_frame_get_client(bad_varint, sizeof(bad_varint)) == NULL);
	CHECK(hbp_frame_get_client(wire_type_7, sizeof(wire_type_7)) == NULL);
	CHECK(hbp_frame_get_client(truncated_len, sizeof(truncated_len)) == NULL);
	CHECK(hbp_frame_get_client(id_as_bytes, sizeof(id_as_bytes)) == NULL);
	CHECK(hbp_frame_get_client(all_ff, sizeof(all_ff)) == NULL);
	CHECK(hbp_frame_get_server(bad_varint, sizeof(bad_varint)) == NULL);
	CHECK(hbp_frame_get_server(wire_type_7, sizeof(wire_type_7)) == NULL);
	CHECK(hbp_frame_get_server(truncated_len, sizeof(truncated_len)) == NULL);
	CHECK(hbp_frame_get_server(all_ff, sizeof(all_ff)) == NULL);

	/* Random bytes: whatever the decoder accepts must have passed validation (and the
	 * sanitizers watch the rest). */
	for (i = 0; i < 20000; i++) {
		size_t len = 1 + (size_t)(seed % sizeof(buf)), j;
		ClientMsg *c;
		ServerMsg *s;

		for (j = 0; j < len; j++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			buf[j] = (uint8_t)seed;
		}
		c = hbp_frame_get_client(buf, len);
		if (c) {
			CHECK(c->id != 0);
			accepted++;
			client_msg__free_unpacked(c, NULL);
		}
		s = hbp_frame_get_server(buf, len);
		if (s) {
			CHECK((s->id == 0) == (s->body_case == SERVER_MSG__BODY_EVENT));
			server_msg__free_unpacked(s, NULL);
		}
	}
	CHECK(accepted < 20000);
}

/* Every proper prefix of a message that ends inside a length-delimited field is refused. */
TEST(truncated_message_rejected)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Import im = IMPORT__INIT;
	uint8_t buf[64];
	size_t n, k;

	m.id = 5;
	m.body_case = CLIENT_MSG__BODY_IMPORT;
	m.import = &im;
	im.hid = bin(hid_bytes, 16);
	n = pack_raw(&m.base, buf, sizeof(buf));
	for (k = 1; k < n; k++) {
		ClientMsg *c = hbp_frame_get_client(buf, k);

		/* Only the prefix that ends right after the id is a whole (body-less) message. */
		if (k == 2) {
			CHECK(c);
			CHECK_EQ(c->body_case, CLIENT_MSG__BODY__NOT_SET);
			client_msg__free_unpacked(c, NULL);
		} else {
			CHECK(c == NULL);
		}
	}
	{
		ClientMsg *c = hbp_frame_get_client(buf, n);

		CHECK(c);
		client_msg__free_unpacked(c, NULL);
	}
}

TEST(client_id_zero_rejected)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Hello hello = HELLO__INIT;
	uint8_t buf[64];
	size_t n;

	m.id = 0;
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &hello;
	hello.version = 1;
	n = pack_raw(&m.base, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK(hbp_frame_get_client(buf, n) == NULL);
	m.id = 1;
	n = pack_raw(&m.base, buf, sizeof(buf));
	{
		ClientMsg *c = hbp_frame_get_client(buf, n);

		CHECK(c);
		client_msg__free_unpacked(c, NULL);
	}
}

static int client_hid_len_accepted(ClientMsg__BodyCase body, size_t len)
{
	ClientMsg m = CLIENT_MSG__INIT, *c;
	Unexport un = UNEXPORT__INIT;
	Import im = IMPORT__INIT;
	Query q = QUERY__INIT;
	uint8_t hid[32] = {1, 2, 3};
	uint8_t buf[128];
	size_t n;

	m.id = 1;
	m.body_case = body;
	switch (body) {
	case CLIENT_MSG__BODY_UNEXPORT:
		m.unexport = &un;
		un.hid = bin(hid, len);
		break;
	case CLIENT_MSG__BODY_IMPORT:
		m.import = &im;
		im.hid = bin(hid, len);
		break;
	default:
		m.query = &q;
		q.hid = bin(hid, len);
		break;
	}
	n = pack_raw(&m.base, buf, sizeof(buf));
	c = hbp_frame_get_client(buf, n);
	if (!c)
		return 0;
	client_msg__free_unpacked(c, NULL);
	return 1;
}

TEST(hid_wrong_length_rejected)
{
	static const ClientMsg__BodyCase bodies[] = {
	    CLIENT_MSG__BODY_UNEXPORT, CLIENT_MSG__BODY_IMPORT, CLIENT_MSG__BODY_QUERY};
	static const size_t bad[] = {0, 1, 15, 17, 32};
	ServerMsg s = SERVER_MSG__INIT;
	ExportReply er = EXPORT_REPLY__INIT;
	Event ev = EVENT__INIT;
	ControlReply cr = CONTROL_REPLY__INIT;
	CtlImport ci = CTL_IMPORT__INIT, *cis[1] = {&ci};
	uint8_t hid[17] = {0};
	uint8_t buf[128];
	size_t i, j, n;
	ServerMsg *b;

	for (i = 0; i < 3; i++) {
		CHECK_EQ(client_hid_len_accepted(bodies[i], 16), 1);
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
			CHECK_EQ(client_hid_len_accepted(bodies[i], bad[j]), 0);
	}

	/* Server side: an export reply must carry a whole hid. */
	s.id = 1;
	s.body_case = SERVER_MSG__BODY_EXPORT;
	s.export = &er;
	er.hid = bin(hid, 15);
	n = pack_raw(&s.base, buf, sizeof(buf));
	CHECK(hbp_frame_get_server(buf, n) == NULL);
	er.hid = bin(hid, 0);
	n = pack_raw(&s.base, buf, sizeof(buf));
	CHECK(hbp_frame_get_server(buf, n) == NULL);

	/* Events about a buffer need one; an event about a domain may have none. */
	s.id = 0;
	s.body_case = SERVER_MSG__BODY_EVENT;
	s.event = &ev;
	ev.type = 3; /* IMPORTED */
	n = pack_raw(&s.base, buf, sizeof(buf));
	CHECK(hbp_frame_get_server(buf, n) == NULL);
	ev.hid = bin(hid, 17);
	n = pack_raw(&s.base, buf, sizeof(buf));
	CHECK(hbp_frame_get_server(buf, n) == NULL);
	ev.type = 5; /* DOMAIN_GONE */
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	ev.hid = bin(NULL, 0);
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);

	/* Control views: empty or 16. */
	s.id = 9;
	s.body_case = SERVER_MSG__BODY_CONTROL;
	s.control = &cr;
	cr.n_imports = 1;
	cr.imports = cis;
	ci.hid = bin(hid, 15);
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	ci.hid = bin(hid, 16);
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);
}

/* A hold comes with EXPORTED only, and never without the pages it holds (PROTOCOL.md §3
 * "Holds"); a Hello names at most HBP_HELLO_HOLDS_MAX. */
TEST(holds_in_events_and_hellos)
{
	static uint8_t buf[4096];
	static uint64_t holds[HBP_HELLO_HOLDS_MAX + 1];
	static const uint8_t hid[16] = {2, 0, 0, 0, 1};
	ServerMsg s = SERVER_MSG__INIT, *b;
	ClientMsg m = CLIENT_MSG__INIT, *c;
	Event ev = EVENT__INIT;
	BufferDesc desc = BUFFER_DESC__INIT;
	Hello h = HELLO__INIT;

	s.body_case = SERVER_MSG__BODY_EVENT;
	s.event = &ev;
	ev.type = 1; /* EXPORTED */
	ev.hid = bin(hid, 16);
	ev.hold = 7;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	ev.desc = &desc;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b && b->event->hold == 7 && b->event->desc);
	server_msg__free_unpacked(b, NULL);
	ev.hold = 0; /* pages and no hold */
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	ev.hold = 7;
	ev.type = 3; /* IMPORTED */
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);

	m.id = 1;
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &h;
	h.holds = holds;
	h.n_holds = HBP_HELLO_HOLDS_MAX;
	c = hbp_frame_get_client(buf, pack_raw(&m.base, buf, sizeof(buf)));
	CHECK(c);
	client_msg__free_unpacked(c, NULL);
	h.n_holds = HBP_HELLO_HOLDS_MAX + 1;
	CHECK(hbp_frame_get_client(buf, pack_raw(&m.base, buf, sizeof(buf))) == NULL);
}

/* A re-export's hid is 16 bytes when present, and a quiet export must name one. */
TEST(reexport_names_a_hid)
{
	static uint8_t buf[1024];
	static const uint8_t hid[16] = {2, 0, 0, 0, 1};
	ClientMsg m = CLIENT_MSG__INIT, *c;
	Export ex = EXPORT__INIT;

	m.id = 1;
	m.body_case = CLIENT_MSG__BODY_EXPORT;
	m.export = &ex;
	ex.buffer = 5;
	ex.hid = bin(hid, 16);
	ex.quiet = 1;
	c = hbp_frame_get_client(buf, pack_raw(&m.base, buf, sizeof(buf)));
	CHECK(c && c->export->quiet && c->export->hid.len == 16);
	client_msg__free_unpacked(c, NULL);
	ex.hid = bin(hid, 15);
	CHECK(hbp_frame_get_client(buf, pack_raw(&m.base, buf, sizeof(buf))) == NULL);
	ex.hid = bin(hid, 0);
	CHECK(hbp_frame_get_client(buf, pack_raw(&m.base, buf, sizeof(buf))) == NULL);
	ex.quiet = 0; /* a plain export */
	c = hbp_frame_get_client(buf, pack_raw(&m.base, buf, sizeof(buf)));
	CHECK(c && !c->export->quiet);
	client_msg__free_unpacked(c, NULL);
}

TEST(oversized_meta_rejected)
{
	static uint8_t meta[HBP_META_LIMIT + 1];
	static uint8_t buf[HBP_META_LIMIT + 256];
	ClientMsg m = CLIENT_MSG__INIT, *c;
	Export ex = EXPORT__INIT;
	ServerMsg s = SERVER_MSG__INIT, *b;
	ImportReply ir = IMPORT_REPLY__INIT;
	BufferDesc desc = BUFFER_DESC__INIT;
	QueryReply qr = QUERY_REPLY__INIT;
	Event ev = EVENT__INIT;
	size_t n;

	m.id = 1;
	m.body_case = CLIENT_MSG__BODY_EXPORT;
	m.export = &ex;
	ex.meta = bin(meta, HBP_META_LIMIT);
	n = pack_raw(&m.base, buf, sizeof(buf));
	c = hbp_frame_get_client(buf, n);
	CHECK(c);
	client_msg__free_unpacked(c, NULL);
	ex.meta = bin(meta, HBP_META_LIMIT + 1);
	n = pack_raw(&m.base, buf, sizeof(buf));
	CHECK(hbp_frame_get_client(buf, n) == NULL);

	s.id = 2;
	s.body_case = SERVER_MSG__BODY_IMPORT;
	s.import = &ir;
	ir.desc = &desc;
	ir.meta = bin(meta, HBP_META_LIMIT);
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);
	ir.meta = bin(meta, HBP_META_LIMIT + 1);
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);

	s.body_case = SERVER_MSG__BODY_QUERY;
	s.query = &qr;
	qr.meta = bin(meta, HBP_META_LIMIT + 1);
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);

	s.id = 0;
	s.body_case = SERVER_MSG__BODY_EVENT;
	s.event = &ev;
	ev.type = 1;
	ev.hid = bin(hid_bytes, 16);
	ev.meta = bin(meta, HBP_META_LIMIT + 1);
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	ev.meta = bin(meta, HBP_META_LIMIT);
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);
}

/* A newer client's body this daemon does not know: unpacks with no body, so the daemon can
 * answer EOPNOTSUPP and carry on. */
TEST(unknown_body_accepted_as_not_set)
{
	/* id = 7 (field 1 varint), then field 99 as an empty length-delimited message, then
	 * field 2000 as a varint. (Field 99: the fence bodies took 12..18, and this must stay a
	 * number no ClientMsg body uses.) */
	static const uint8_t unknown[] = {0x08, 0x07, 0x9a, 0x06, 0x00, 0x80, 0x7d, 0x01};
	static const uint8_t unknown_no_id[] = {0x9a, 0x06, 0x00};
	ClientMsg *c;

	c = hbp_frame_get_client(unknown, sizeof(unknown));
	CHECK(c);
	CHECK_EQ(c->id, 7);
	CHECK_EQ(c->body_case, CLIENT_MSG__BODY__NOT_SET);
	client_msg__free_unpacked(c, NULL);
	CHECK(hbp_frame_get_client(unknown_no_id, sizeof(unknown_no_id)) == NULL);
}

TEST(server_structure_rules)
{
	ServerMsg s = SERVER_MSG__INIT;
	AllocReply ar = ALLOC_REPLY__INIT;
	ImportReply ir = IMPORT_REPLY__INIT;
	BufferDesc desc = BUFFER_DESC__INIT;
	Event ev = EVENT__INIT;
	uint8_t buf[256];
	ServerMsg *b;

	/* Replies that need a descriptor must have one. */
	s.id = 1;
	s.body_case = SERVER_MSG__BODY_ALLOC;
	s.alloc = &ar;
	ar.buffer = 3;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	ar.desc = &desc;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);

	s.body_case = SERVER_MSG__BODY_IMPORT;
	s.import = &ir;
	ir.import = 4;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	ir.desc = &desc;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);

	/* An error reply has no body. */
	s.error = EACCES;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	s.body_case = SERVER_MSG__BODY__NOT_SET;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	CHECK_EQ(b->error, EACCES);
	server_msg__free_unpacked(b, NULL);

	/* id 0 is an event, a fence completion, or the one frame of a refused connection (an
	 * error and nothing else, an errno below HBP_ERRNO_LIMIT); an event never has a request
	 * id. */
	s.error = 0;
	s.id = 0;
	s.body_case = SERVER_MSG__BODY_IMPORT;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	s.error = EACCES;
	s.body_case = SERVER_MSG__BODY__NOT_SET;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	CHECK_EQ(b->error, EACCES);
	server_msg__free_unpacked(b, NULL);
	s.error = HBP_ERRNO_LIMIT;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	s.error = 0;
	s.id = 12;
	s.body_case = SERVER_MSG__BODY_EVENT;
	s.event = &ev;
	ev.type = 7;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	s.id = 0;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);
}

/* Watches (PROTOCOL.md §3): a TimelineValue is unsolicited, names a timeline, moves forward
 * (or ends) and carries a completion status; a watched SyncReply has no wait, and is pending
 * or born complete. */
TEST(watch_structure_rules)
{
	ServerMsg s = SERVER_MSG__INIT;
	TimelineValue tv = TIMELINE_VALUE__INIT;
	SyncReply sr = SYNC_REPLY__INIT;
	uint8_t buf[256];
	ServerMsg *b;

	s.body_case = SERVER_MSG__BODY_TIMELINE_VALUE;
	s.timeline_value = &tv;
	tv.timeline = 7;
	tv.from = 3;
	tv.value = 5;
	tv.status = 1;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b && b->timeline_value->value == 5 && b->timeline_value->from == 3);
	server_msg__free_unpacked(b, NULL);
	s.id = 9; /* it answers no request */
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	s.id = 0;
	tv.value = 3; /* not forward */
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	tv.ended = 1; /* an end may say nothing more */
	tv.status = -EPIPE;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b && b->timeline_value->ended);
	server_msg__free_unpacked(b, NULL);
	tv.value = 5;
	tv.status = 0; /* pending is no completion */
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	tv.status = -(int32_t)HBP_ERRNO_LIMIT;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	tv.status = 1;
	tv.timeline = 0;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);

	s.id = 4;
	s.body_case = SERVER_MSG__BODY_SYNC;
	s.sync = &sr;
	sr.watched = 1;
	sr.value = 2; /* pending on the watch */
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b && b->sync->watched && b->sync->status == 0);
	server_msg__free_unpacked(b, NULL);
	sr.status = 1; /* born complete, watched */
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);
	sr.wait = 11; /* a watch and a wait at once */
	sr.status = 0;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	sr.watched = 0; /* a plain pending wait */
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b);
	server_msg__free_unpacked(b, NULL);
	sr.wait = 0; /* neither a wait nor a watch, and not complete */
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
}

/* A fence slot names slot 1..63 of a group's page 0 with a generation, and comes only with a
 * watch (SyncReply) or, unsolicited, to the owner (TimelineSlot). */
TEST(slot_structure_rules)
{
	ServerMsg s = SERVER_MSG__INIT;
	SyncReply sr = SYNC_REPLY__INIT;
	TimelineSlot ts = TIMELINE_SLOT__INIT;
	FenceSlot fs = FENCE_SLOT__INIT;
	/* group, index, gen: no group 0, none past the last; no slot 0 (the header) or 64. */
	static const uint32_t bad[][3] = {
	    {2, 0, 77}, {2, HBP_SLOTS + 1, 77}, {2, 1, 0}, {0, 1, 77}, {HBP_MAX_GROUPS + 1, 1, 77}};
	uint8_t buf[256];
	ServerMsg *b;

	fs.group = 2;
	fs.index = HBP_SLOTS;
	fs.gen = 77;
	s.id = 4;
	s.body_case = SERVER_MSG__BODY_SYNC;
	s.sync = &sr;
	sr.watched = 1;
	sr.slot = &fs;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b && b->sync->slot && b->sync->slot->index == HBP_SLOTS && b->sync->slot->gen == 77);
	server_msg__free_unpacked(b, NULL);
	sr.watched = 0; /* a slot without a watch */
	sr.wait = 11;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	sr.watched = 1;
	sr.wait = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fs.group = bad[i][0];
		fs.index = bad[i][1];
		fs.gen = bad[i][2];
		CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	}
	fs.group = 2;
	fs.index = 1;
	fs.gen = 77;

	s.body_case = SERVER_MSG__BODY_TIMELINE_SLOT;
	s.timeline_slot = &ts;
	ts.timeline = 9;
	ts.slot = &fs;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL); /* id 4 */
	s.id = 0;
	b = hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf)));
	CHECK(b && b->timeline_slot->timeline == 9 && b->timeline_slot->slot->index == 1);
	server_msg__free_unpacked(b, NULL);
	ts.slot = NULL;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
	ts.slot = &fs;
	ts.timeline = 0;
	CHECK(hbp_frame_get_server(buf, pack_raw(&s.base, buf, sizeof(buf))) == NULL);
}
