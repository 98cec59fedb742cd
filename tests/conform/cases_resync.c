/*
 * Resync markers (test_it_channel, PROTOCOL.md §1.1): a VM's session restarts in place when a
 * marker arrives, wherever it lands in the stream. That is how the next process of a KVM guest
 * takes over its port from one that died; the daemon treats every VM session as a channel, so
 * a Xen domU's vchan and an emulated VM's socket answer markers alike. The markers are written
 * by hand on the domain's own raw stream (conform.h, cf_raw_open). Written once for every
 * target (tests/conform/conform.h).
 */
#include <poll.h>
#include <unistd.h>

#include "protocol/resync.h"
#include "tests/conform/raw.h"

static void marker(uint8_t out[HBP_RESYNC_LEN], uint32_t version, uint8_t nonce_byte)
{
	struct hbp_resync m = {.version = version};

	memset(m.nonce, nonce_byte, sizeof(m.nonce));
	hbp_resync_pack(out, &m);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* One byte of the daemon's output, within CF_WAIT_MS. */
static uint8_t next_byte(struct cf_raw *r)
{
	uint8_t b;

	if (!readable(r->fd, CF_WAIT_MS) || read(r->fd, &b, 1) != 1)
		cf_fail(__FILE__, __LINE__, "the daemon said nothing more within %d ms",
			CF_WAIT_MS);
	return b;
}

/* Reads until the daemon's marker with this nonce (what comes before it is the old session's:
 * *skipped counts it) and returns its status. Nothing may follow it until we speak. */
static uint32_t await_marker(struct cf_raw *r, uint8_t nonce_byte, size_t *skipped)
{
	static uint8_t buf[1 << 16];
	size_t have = 0;

	*skipped = 0;
	for (;;) {
		bool whole;
		size_t at = hbp_resync_scan(buf, have, &whole);

		if (whole && have - at >= HBP_RESYNC_LEN) {
			struct hbp_resync m;
			uint8_t want[HBP_RESYNC_NONCE_LEN];

			CHECK_EQ(hbp_resync_unpack(buf + at, &m), 0);
			memset(want, nonce_byte, sizeof(want));
			if (memcmp(m.nonce, want, sizeof(want)) == 0) {
				CHECK_EQ(have, at + HBP_RESYNC_LEN);
				CHECK(!readable(r->fd, 50));
				*skipped += at;
				return m.status;
			}
			at++;
		}
		*skipped += at;
		memmove(buf, buf + at, have - at);
		have -= at;
		if (whole && at)
			continue;
		CHECK(have < sizeof(buf));
		buf[have++] = next_byte(r);
	}
}

/* A marker, its answer, then Hello, as a new guest process starts: the Welcome names us. */
static void resync_hello(struct cf_raw *r, uint8_t nonce_byte)
{
	uint8_t mk[HBP_RESYNC_LEN];
	ServerMsg *w;
	size_t skipped;

	marker(mk, HBP_PROTOCOL_VERSION, nonce_byte);
	CHECK_EQ(cf_raw_send_all(r, mk, sizeof(mk)), 0);
	CHECK_EQ(await_marker(r, nonce_byte, &skipped), 0);
	r->next_id = 1;
	w = cf_raw_hello(r, HBP_ROLE_CLIENT);
	CHECK_EQ(w->welcome->domain, cf_domain());
	server_msg__free_unpacked(w, NULL);
}

static ClientMsg query(Query *q, uint8_t hid[16], uint32_t id)
{
	ClientMsg m = CLIENT_MSG__INIT;

	q->hid.data = hid;
	q->hid.len = 16;
	CF_MSG(m, QUERY, query, q);
	m.id = id;
	return m;
}

/* ---- resync_drops_stale_output (test_it_channel) --------------------------------------------
 * What the daemon still owed the old session does not reach the new one after its marker:
 * replies already on their way come first and are skipped; replies not sent yet are dropped.
 * (The original slept so that the replies were sent; here the first one arriving is enough.) */
static void stale_output_role(void)
{
	static uint8_t burst[200 * 64 + HBP_RESYNC_LEN];
	long long errs = cf_stat("errors_protocol");
	uint8_t hid[16] = {1}, mk[HBP_RESYNC_LEN];
	struct cf_raw r;
	size_t skipped, n = 0;

	cf_raw_session(&r);
	for (uint32_t i = 0; i < 200; i++) {
		Query q = QUERY__INIT;
		ClientMsg m = query(&q, hid, 100 + i);

		CHECK_EQ(cf_raw_send(&r, &m), 0);
	}
	CHECK(readable(r.fd, CF_WAIT_MS));
	marker(mk, HBP_PROTOCOL_VERSION, 0x17);
	CHECK_EQ(cf_raw_send_all(&r, mk, sizeof(mk)), 0);
	CHECK_EQ(await_marker(&r, 0x17, &skipped), 0);
	CHECK(skipped > 0);
	r.next_id = 1;
	server_msg__free_unpacked(cf_raw_hello(&r, HBP_ROLE_CLIENT), NULL);
	CF_RAW_ALIVE(&r);
	/* Requests and the marker in one write: the marker's answer is the first thing after
	 * whatever stale bytes, and the Welcome the next frame. */
	for (uint32_t i = 0; i < 200; i++) {
		Query q = QUERY__INIT;
		ClientMsg m = query(&q, hid, 500 + i);

		cf_raw_put_frame(burst, sizeof(burst) - HBP_RESYNC_LEN, &n, &m);
	}
	marker(burst + n, HBP_PROTOCOL_VERSION, 0x18);
	n += HBP_RESYNC_LEN;
	CHECK_EQ(cf_raw_send_all(&r, burst, n), 0);
	CHECK_EQ(await_marker(&r, 0x18, &skipped), 0);
	r.next_id = 1;
	server_msg__free_unpacked(cf_raw_hello(&r, HBP_ROLE_CLIENT), NULL);
	CF_RAW_ALIVE(&r);
	cf_raw_stop(&r);
	CHECK_EQ(cf_stat("errors_protocol"), errs);
}

CF_CASE(resync_drops_stale_output, {2, stale_output_role})

/* ---- resync_split_and_cut_markers (test_it_channel) -----------------------------------------
 * A marker that arrives a byte at a time right after two bytes of a frame header, and a marker
 * cut short by a later one (its writer died at byte 20): the later one is answered, and
 * nothing counts as a protocol error. */
static void split_markers_role(void)
{
	long long errs = cf_stat("errors_protocol");
	uint8_t buf[2 * HBP_RESYNC_LEN], hello[64];
	Hello h = HELLO__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct cf_raw r;
	size_t skipped, n = 0;
	ServerMsg *s;

	cf_raw_start(&r);
	CHECK_EQ(cf_raw_send_all(&r, "\x10\x00", 2), 0);
	marker(buf, HBP_PROTOCOL_VERSION, 0x33);
	for (unsigned i = 0; i < HBP_RESYNC_LEN; i++) {
		CHECK_EQ(cf_raw_send_all(&r, buf + i, 1), 0);
		cf_sleep_ms(2); /* pacing, so the bytes travel apart: not a synchronisation */
	}
	CHECK_EQ(await_marker(&r, 0x33, &skipped), 0);
	r.next_id = 1;
	server_msg__free_unpacked(cf_raw_hello(&r, HBP_ROLE_CLIENT), NULL);
	CF_RAW_ALIVE(&r);
	cf_raw_stop(&r);

	cf_raw_start(&r);
	marker(buf, HBP_PROTOCOL_VERSION, 0x01);
	marker(buf + 20, HBP_PROTOCOL_VERSION, 0x02);
	h.version = HBP_PROTOCOL_VERSION;
	CF_MSG(m, HELLO, hello, &h);
	m.id = 1;
	cf_raw_put_frame(hello, sizeof(hello), &n, &m);
	CHECK_EQ(cf_raw_send_all(&r, buf, 20 + HBP_RESYNC_LEN), 0);
	CHECK_EQ(await_marker(&r, 0x02, &skipped), 0);
	CHECK_EQ(cf_raw_send_all(&r, hello, n), 0);
	s = cf_raw_recv(&r, CF_WAIT_MS, NULL);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 1);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_WELCOME);
	server_msg__free_unpacked(s, NULL);
	r.next_id = 2;
	CF_RAW_ALIVE(&r);
	cf_raw_stop(&r);
	CHECK_EQ(cf_stat("errors_protocol"), errs);
}

CF_CASE(resync_split_and_cut_markers, {1, split_markers_role})

/* ---- resync_inside_a_whole_frame (test_it_channel) ------------------------------------------
 * The marker restarts the session wherever it is, even inside a frame that arrived whole:
 * that frame is never handled (no reply to request 77). */
static void inside_frame_role(void)
{
	uint8_t hid[16], mk[HBP_RESYNC_LEN], *frame;
	Query q = QUERY__INIT;
	ClientMsg m;
	struct cf_raw r;
	size_t n, skipped;

	cf_raw_session(&r);
	marker(mk, HBP_PROTOCOL_VERSION, 0x55);
	memset(hid, 0, 8);
	memcpy(hid + 8, mk, 8); /* the magic ends the frame; the rest of the marker follows */
	m = query(&q, hid, 77);
	n = client_msg__get_packed_size(&m);
	frame = malloc(4 + n + HBP_RESYNC_LEN - 8);
	CHECK(frame != NULL);
	frame[0] = (uint8_t)n;
	frame[1] = frame[2] = frame[3] = 0;
	client_msg__pack(&m, frame + 4);
	CHECK(memcmp(frame + 4 + n - 8, HBP_RESYNC_MAGIC, 8) == 0);
	memcpy(frame + 4 + n, mk + 8, HBP_RESYNC_LEN - 8);
	CHECK_EQ(cf_raw_send_all(&r, frame, 4 + n + HBP_RESYNC_LEN - 8), 0);
	free(frame);
	CHECK_EQ(await_marker(&r, 0x55, &skipped), 0);
	CHECK_EQ(skipped, 0);
	r.next_id = 1;
	server_msg__free_unpacked(cf_raw_hello(&r, HBP_ROLE_CLIENT), NULL);
	CF_RAW_ALIVE(&r);
	cf_raw_stop(&r);
}

CF_CASE(resync_inside_a_whole_frame, {2, inside_frame_role})

/* ---- resync_refuses_another_version (test_it_channel) ---------------------------------------
 * A marker of another protocol version is answered EPROTO, and the channel stays usable by a
 * process that speaks this one. */
static void other_version_role(void)
{
	uint8_t mk[HBP_RESYNC_LEN];
	struct cf_raw r;
	size_t skipped;

	cf_raw_start(&r);
	marker(mk, HBP_PROTOCOL_VERSION + 1, 0x66);
	CHECK_EQ(cf_raw_send_all(&r, mk, sizeof(mk)), 0);
	CHECK_EQ(await_marker(&r, 0x66, &skipped), EPROTO);
	resync_hello(&r, 0x67);
	CF_RAW_ALIVE(&r);
	cf_raw_stop(&r);
}

CF_CASE(resync_refuses_another_version, {1, other_version_role}, {2, other_version_role})

/* ---- resync_after_a_partial_share_frame (test_it_channel resync_after_a_partial_frame) ------
 * A guest process made a share with raw requests (its session Attached the group by its
 * ivshmem peer id first, as the library does), then died in the middle of a frame: 100 bytes
 * of a 500-byte one. The next process's marker lands inside that frame: the daemon finds it,
 * ends the old session (the host hears UNEXPORTED, the page comes back), answers it; the
 * Welcome names the domain, and nothing counts as a protocol error. The marker goes on the
 * same stream on every target: that is what the next process of a KVM guest writes on the
 * port (hbk_port_open), and what it would write on an emulated VM's channel, its QEMU's
 * chardev; a new connection there would be QEMU reconnecting, another story
 * (truncated_frame_then_eof). The new session then Attaches the same peer id again, as every
 * next process of a guest does. */
static uint32_t raw_attach(struct cf_raw *r, const struct cf_pool *p)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Attach a = ATTACH__INIT;

	a.group = p->group;
	a.ivshmem_peer = p->peer_id;
	CF_MSG(m, ATTACH, attach, &a);
	return CF_RAW_ERR(r, &m);
}

/* Alloc for peer and Export: the hid. */
static void raw_share(struct cf_raw *r, uint32_t peer, uint64_t size, struct hb_id *id)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Alloc al = ALLOC__INIT;
	Export ex = EXPORT__INIT;
	ServerMsg *s;

	al.peer = peer;
	al.size = size;
	CF_MSG(m, ALLOC, alloc, &al);
	s = CF_RAW_CALL(r, &m);
	CHECK_EQ(s->error, 0);
	ex.buffer = s->alloc->buffer;
	server_msg__free_unpacked(s, NULL);
	m = (ClientMsg)CLIENT_MSG__INIT;
	CF_MSG(m, EXPORT, export, &ex);
	s = CF_RAW_CALL(r, &m);
	CHECK_EQ(s->error, 0);
	CHECK_EQ(s->export->hid.len, sizeof(id->bytes));
	memcpy(id->bytes, s->export->hid.data, sizeof(id->bytes));
	server_msg__free_unpacked(s, NULL);
}

static void partial_share_vm1(void)
{
	static const uint8_t junk[100] = {0x08, 0x05, 0x22};
	long long errs = cf_stat("errors_protocol");
	struct cf_pool p;
	struct cf_raw r;
	struct hb_id id;

	CHECK_EQ(cf_pool_open(0, &p), 0); /* the group hv1's peer id of this domain */
	cf_barrier("pool");
	cf_barrier("ready");
	cf_raw_session(&r);
	CHECK_EQ(raw_attach(&r, &p), 0);
	raw_share(&r, 0, 4096, &id);
	cf_put_id("id", &id);
	CHECK_EQ(cf_stat("pages_used"), 1);

	CHECK_EQ(cf_raw_send_frame(&r, NULL, 0, 500), 0);
	CHECK_EQ(cf_raw_send_all(&r, junk, sizeof(junk)), 0);
	cf_sleep_ms(100); /* pacing, so the frame's bytes arrive before the marker: not a sync */
	resync_hello(&r, 0x42);
	CF_STAT_BECOMES("pages_used", 0);
	CF_RAW_ALIVE(&r);
	CHECK_EQ(raw_attach(&r, &p), 0);
	cf_barrier("unexported");
	cf_barrier("quiet");
	cf_raw_stop(&r);
	CHECK_EQ(cf_stat("errors_protocol"), errs);
	/* Emulated, the VM's last ivshmem connection: vm1 is gone now, as a QEMU that exits. */
	cf_pool_close(&p);
}

static void partial_share_host(void)
{
	struct hb_client *c;
	struct hb_event ev;
	struct hb_id id;

	/* After vm1's look at its groups: on an emulated VM a session that attached nothing
	 * ends as the VM does (DOMAIN_GONE), as any of its processes that did not map a pool. */
	cf_barrier("pool");
	c = cf_connect();
	cf_drain(c);
	cf_barrier("ready");
	CF_WAIT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	cf_get_id("id", &id);
	CHECK(hb_id_equal(&ev.id, &id));
	CF_EXPECT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	cf_barrier("unexported");
	/* vm1 never went: its QEMU (or emulated VM) is still there. */
	CF_EXPECT_QUIET(c, 200);
	cf_barrier("quiet");
}

CF_CASE_EXCEPT(resync_after_a_partial_share_frame, CF_XEN,
	       "a raw session cannot share on Xen: a buffer's grants are made by the domU's "
	       "library through gntalloc, and Xen has no groups to Attach",
	       {0, partial_share_host}, {1, partial_share_vm1})
