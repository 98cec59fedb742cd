/*
 * Hostile fence requests on a raw stream (test_it_timeline hostile_fence_requests,
 * test_it_fence_buffers c39's wire half, test_it_fence_selftests test_alloc_fence_negative's
 * forged signal): requests no library would send, from a guest's own stream and the host's.
 */
#include "tests/conform/raw.h"

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* vm1 owns a timeline (shared with every domain) and a buffer exported to vm2; once the raw
 * requests are done it signals the last value and vm2 still gets CPU access. */
static void fence_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_id id;

	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("buf", &id);
	cf_barrier("fuzzed");
	/* The fuzzing may have attached this timeline at values up to 2^64 - 1. */
	CHECK_EQ(hb_timeline_signal(t, UINT64_MAX), 0);
	cf_barrier("signalled");
	cf_barrier("done");
	hb_buffer_free(b);
	hb_timeline_destroy(t);
}

/* One random fence request on tl (or a random timeline), the buffer's hid. */
static void random_request(ClientMsg *m, uint64_t *seed, uint64_t tl, uint8_t *hid, void *body)
{
	uint64_t x = rnd(seed), val = rnd(seed) % 64;
	ProtobufCBinaryData h = {16, hid};

	if (x % 5 == 0)
		tl = rnd(seed);
	if (x % 7 == 0)
		val = rnd(seed);
	switch ((x >> 8) % 7) {
	case 0:
		timeline_create__init(body);
		CF_MSG(*m, TIMELINE_CREATE, timeline_create, body);
		break;
	case 1: {
		TimelineSignal *ts = body;

		timeline_signal__init(ts);
		ts->timeline = tl;
		ts->value = val;
		ts->error = (uint32_t)(rnd(seed) % 5000);
		CF_MSG(*m, TIMELINE_SIGNAL, timeline_signal, ts);
		break;
	}
	case 2: {
		TimelineDestroy *td = body;

		timeline_destroy__init(td);
		td->timeline = tl;
		CF_MSG(*m, TIMELINE_DESTROY, timeline_destroy, td);
		break;
	}
	case 3: {
		SyncOpen *so = body;

		sync_open__init(so);
		so->timeline = tl;
		so->value = val;
		CF_MSG(*m, SYNC_OPEN, sync_open, so);
		break;
	}
	case 4: {
		SyncClose *sc = body;

		sync_close__init(sc);
		sc->wait = rnd(seed) % 5000;
		CF_MSG(*m, SYNC_CLOSE, sync_close, sc);
		break;
	}
	case 5: {
		FenceAttach *fa = body;

		fence_attach__init(fa);
		fa->hid = h;
		fa->timeline = tl;
		fa->value = val;
		fa->usage = (uint32_t)(rnd(seed) % 6);
		CF_MSG(*m, FENCE_ATTACH, fence_attach, fa);
		break;
	}
	default: {
		CpuAccess *ca = body;

		cpu_access__init(ca);
		ca->hid = h;
		ca->access = (uint32_t)(rnd(seed) % 6);
		CF_MSG(*m, CPU_ACCESS, cpu_access, ca);
		break;
	}
	}
}

/* vm2: 1000 random fence requests on vm1's timeline, nobody's, 0, 2^64 - 1 and its own; then
 * a 15-byte hid drops the session, and nobody else notices. */
static void fence_fuzzer(void)
{
	long long errs = cf_stat("errors_protocol");
	uint64_t seed = 0x5eed, ids[3] = {cf_get_u64("tl"), 0, UINT64_MAX};
	union {
		TimelineSignal ts;
		TimelineDestroy td;
		SyncOpen so;
		SyncClose sc;
		FenceAttach fa;
		CpuAccess ca;
	} body;
	uint8_t short_hid[15] = {0};
	struct hb_client *c;
	struct cf_raw r;
	struct hb_id id;

	cf_get_id("buf", &id);
	cf_raw_session(&r);
	for (int i = 0; i < 1000; i++) {
		ClientMsg m = CLIENT_MSG__INIT;
		ServerMsg *s;

		random_request(&m, &seed, ids[rnd(&seed) % 3], id.bytes, &body);
		s = CF_RAW_CALL(&r, &m);
		if (s->error == 0 && s->body_case == SERVER_MSG__BODY_TIMELINE)
			ids[2] = s->timeline->timeline; /* its own: signal and destroy it too */
		server_msg__free_unpacked(s, NULL);
	}
	{
		ClientMsg m = CLIENT_MSG__INIT;

		cpu_access__init(&body.ca);
		body.ca.hid = (ProtobufCBinaryData){sizeof(short_hid), short_hid};
		body.ca.access = HB_ACCESS_READ;
		CF_MSG(m, CPU_ACCESS, cpu_access, &body.ca);
		m.id = r.next_id++;
		CHECK_EQ(cf_raw_send(&r, &m), 0);
		CF_RAW_DROPPED(&r, &errs);
	}
	cf_barrier("fuzzed");
	cf_barrier("signalled");
	c = cf_connect();
	CHECK_EQ(hb_begin_cpu_access(c, &id, HB_ACCESS_READ | HB_ACCESS_WRITE, CF_WAIT_MS), 0);
	CHECK_EQ(hb_end_cpu_access(c, &id, HB_ACCESS_READ | HB_ACCESS_WRITE), 0);
	cf_barrier("done");
}

static void fence_bystander(void)
{
	cf_barrier("fuzzed");
	cf_barrier("signalled");
	cf_barrier("done");
}
CF_CASE(hostile_fence_requests, {1, fence_owner}, {2, fence_fuzzer}, {0, fence_bystander})

/* ---- c39's wire half ------------------------------------------------------------------------ */

static void put_varint(uint8_t *buf, size_t *n, uint64_t v)
{
	while (v >= 0x80) {
		buf[(*n)++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	buf[(*n)++] = (uint8_t)v;
}

/* SyncOpen{tl, value = 5, field 9 = 42 (unknown)} in ClientMsg{id = 100, sync_open}, plus an
 * unknown field 99 in ClientMsg itself: accepted (a newer client's fields are skipped). */
static void unknown_fields(struct cf_raw *r, uint64_t tl)
{
	uint8_t frame[64], inner[32];
	size_t n = 0, ni = 0;
	ServerMsg *s;
	int why;

	inner[ni++] = 0x08;
	put_varint(inner, &ni, tl);
	inner[ni++] = 0x10;
	put_varint(inner, &ni, 5);
	inner[ni++] = 0x48;
	inner[ni++] = 42;
	frame[n++] = 0x08;
	put_varint(frame, &n, 100);
	frame[n++] = 0x7a;
	put_varint(frame, &n, ni);
	memcpy(frame + n, inner, ni);
	n += ni;
	put_varint(frame, &n, (99u << 3) | 0);
	frame[n++] = 1;
	CHECK_EQ(cf_raw_send_frame(r, frame, n, UINT64_MAX), 0);
	s = cf_raw_recv(r, CF_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 100);
	CHECK_EQ(s->error, 0);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_SYNC);
	CHECK_EQ(s->sync->status, 0); /* point 5, pending */
	CHECK(s->sync->wait != 0);
	CHECK_EQ(s->sync->owner, 1);
	server_msg__free_unpacked(s, NULL);
}

/* vm2 (and the host after it), raw: missing fields take their defaults, an errno out of
 * range is EINVAL, CPU access without bits is EINVAL, a 15-byte hid drops the session. */
static void c39_wire(void)
{
	long long errs;
	uint64_t tl = cf_get_u64("tl");
	uint8_t short_hid[15] = {0};
	ClientMsg m = CLIENT_MSG__INIT;
	SyncOpen so = SYNC_OPEN__INIT;
	TimelineSignal ts = TIMELINE_SIGNAL__INIT;
	TimelineCreate tc = TIMELINE_CREATE__INIT;
	CpuAccess ca = CPU_ACCESS__INIT;
	struct cf_raw r;
	struct hb_id id;
	ServerMsg *s;

	cf_get_id("buf", &id);
	if (cf_domain() == 0)
		cf_barrier("vm2_done");
	errs = cf_stat("errors_protocol");
	cf_raw_session(&r);
	unknown_fields(&r, tl);
	so.timeline = tl;
	CF_MSG(m, SYNC_OPEN, sync_open, &so);
	s = CF_RAW_CALL(&r, &m);
	CHECK_EQ(s->error, 0);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_SYNC);
	CHECK_EQ(s->sync->status, 1);
	CHECK_EQ(s->sync->wait, 0);
	server_msg__free_unpacked(s, NULL);
	m = (ClientMsg)CLIENT_MSG__INIT;
	CF_MSG(m, TIMELINE_CREATE, timeline_create, &tc);
	s = CF_RAW_CALL(&r, &m);
	CHECK_EQ(s->error, 0);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_TIMELINE);
	ts.timeline = s->timeline->timeline;
	server_msg__free_unpacked(s, NULL);
	ts.value = 1;
	ts.error = 4096;
	m = (ClientMsg)CLIENT_MSG__INIT;
	CF_MSG(m, TIMELINE_SIGNAL, timeline_signal, &ts);
	CHECK_EQ(CF_RAW_ERR(&r, &m), EINVAL);
	ca.hid.data = id.bytes;
	ca.hid.len = 16;
	ca.access = 0;
	m = (ClientMsg)CLIENT_MSG__INIT;
	CF_MSG(m, CPU_ACCESS, cpu_access, &ca);
	CHECK_EQ(CF_RAW_ERR(&r, &m), EINVAL);
	ca.hid.data = short_hid;
	ca.hid.len = 15;
	ca.access = HB_ACCESS_READ;
	m = (ClientMsg)CLIENT_MSG__INIT;
	m.id = 77;
	CF_MSG(m, CPU_ACCESS, cpu_access, &ca);
	CHECK_EQ(cf_raw_send(&r, &m), 0);
	CF_RAW_DROPPED(&r, &errs);
	if (cf_domain() == 2)
		cf_barrier("vm2_done");
	cf_barrier("done");
}

static void c39_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_id id;

	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("buf", &id);
	cf_barrier("vm2_done");
	cf_barrier("done");
	hb_buffer_free(b);
	hb_timeline_destroy(t);
}
CF_CASE(c39_request_abi_wire, {1, c39_owner}, {2, c39_wire}, {0, c39_wire})

/* ---- a forged signal --------------------------------------------------------------------------
 */

/* vm1's timeline, signalled and failed by raw sessions of the host and of vm2, which see it:
 * EPERM each, and the timeline did not move (a point opened after the replies is pending). */
static void forged_signal(void)
{
	uint64_t tl = cf_get_u64("tl");
	ClientMsg m = CLIENT_MSG__INIT;
	TimelineSignal ts = TIMELINE_SIGNAL__INIT;
	struct hb_client *c;
	struct hb_sync *s;
	struct cf_raw r;

	if (cf_domain() == 0)
		cf_barrier("vm2_forged");
	cf_raw_session(&r);
	ts.timeline = tl;
	ts.value = 5;
	CF_MSG(m, TIMELINE_SIGNAL, timeline_signal, &ts);
	CHECK_EQ(CF_RAW_ERR(&r, &m), EPERM);
	ts.error = EIO;
	CHECK_EQ(CF_RAW_ERR(&r, &m), EPERM);
	cf_raw_stop(&r);
	c = cf_connect();
	s = CF_OPEN(c, tl, 1);
	CHECK_EQ(hb_sync_status(s), 0);
	hb_sync_close(s);
	if (cf_domain() == 2)
		cf_barrier("vm2_forged");
	cf_barrier("done");
}

static void forged_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("vm2_forged");
	cf_barrier("done");
	hb_timeline_destroy(t);
}
CF_CASE(forged_timeline_signal, {1, forged_owner}, {2, forged_signal}, {0, forged_signal})
