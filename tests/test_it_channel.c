/*
 * VM channels as real QEMU guests use them (docs/PROTOCOL.md §1.1, docs/KVM.md): several
 * ports per VM, per-VM ivshmem sockets that tell the daemon which QEMU is which VM, and the
 * session restarting in place on one connection: a resync marker, wherever it lands, or a new
 * Hello ends the previous guest process's session exactly as a disconnect would.
 *
 * The channel sockets are driven by hand here, as QEMU's chardev would carry a guest's bytes.
 */
#include "protocol/resync.h"
#include "tests/it_common.h"

static const char topology[] = "[daemon]\nbackend = kvm\nsocket = host.sock\nlog = debug\n\n"
			       "[vm vm1]\nid = 1\nchannel = vm1-{port}.sock\nports = 2\n"
			       /* two ports: two emulated guest processes, each joining the pools */
			       "ivshmem_connections = 2\n\n"
			       "[vm vm2]\nid = 2\nchannel = vm2.sock\n\n"
			       "[group g]\nmembers = host, vm1, vm2\nsize = 16M\n"
			       "ivshmem = g-{vm}.sock\n\n"
			       "[group p]\nmembers = vm1, vm2\nsize = 4M\nivshmem = p-{vm}.sock\n";

static void start(struct hbt_daemon *d)
{
	hbt_daemon_start_config(d, topology);
}

static uint32_t group_id(const ServerMsg *w, const char *name)
{
	return it_welcome_group(w, name)->id;
}

/* Alloc for peer and export; returns the hid. */
static struct hb_id raw_share(struct it_raw *r, uint32_t peer, uint64_t size)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Alloc al = ALLOC__INIT;
	Export ex = EXPORT__INIT;
	ServerMsg *s;
	struct hb_id id;

	al.peer = peer;
	al.size = size;
	IT_MSG(m, ALLOC, alloc, &al);
	s = IT_RAW_CALL(r, &m);
	CHECK_EQ(s->error, 0);
	ex.buffer = s->alloc->buffer;
	server_msg__free_unpacked(s, NULL);
	m = (ClientMsg)CLIENT_MSG__INIT;
	IT_MSG(m, EXPORT, export, &ex);
	s = IT_RAW_CALL(r, &m);
	CHECK_EQ(s->error, 0);
	memcpy(id.bytes, s->export->hid.data, 16);
	server_msg__free_unpacked(s, NULL);
	return id;
}

/* A Query for an unknown hid gets ENOENT: the session is alive and in step. */
static void check_alive(struct it_raw *r)
{
	uint8_t hid[16] = {9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	ClientMsg m = CLIENT_MSG__INIT;
	Query q = QUERY__INIT;

	q.hid.data = hid;
	q.hid.len = 16;
	IT_MSG(m, QUERY, query, &q);
	CHECK_EQ(IT_RAW_ERR(r, &m), ENOENT);
}

static void marker(uint8_t out[HBP_RESYNC_LEN], uint32_t version, uint8_t nonce_byte)
{
	struct hbp_resync m = {.version = version};

	memset(m.nonce, nonce_byte, sizeof(m.nonce));
	hbp_resync_pack(out, &m);
}

/* The Hello frame a guest sends after its marker, with request id 1. */
static size_t hello_frame(uint8_t *out, size_t cap)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Hello h = HELLO__INIT;
	size_t n = 0;

	h.version = HBP_PROTOCOL_VERSION;
	IT_MSG(m, HELLO, hello, &h);
	m.id = 1;
	hbt_put_frame(out, cap, &n, &m);
	return n;
}

/*
 * Reads until the daemon's marker with this nonce (what comes before is the dead session's,
 * and dropped); returns its status. Fails the test if none comes within IT_WAIT_MS.
 */
static uint32_t await_marker(struct it_raw *r, uint8_t nonce_byte, size_t *skipped)
{
	uint8_t buf[1 << 16];
	size_t have = 0;
	uint64_t end = hbt_now_ms() + IT_WAIT_MS;

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
				/* Nothing follows until the guest speaks. */
				CHECK_EQ(have, at + HBP_RESYNC_LEN);
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
		CHECK(hbt_now_ms() < end);
		CHECK(have < sizeof(buf));
		CHECK(it_recv_full(r->fd, buf + have, 1, IT_WAIT_MS, NULL, NULL) == 1);
		have++;
	}
}

/* Marker then Hello on r, as a new guest process would; returns the Welcome. */
static ServerMsg *resync_hello(struct it_raw *r, uint8_t nonce_byte)
{
	uint8_t buf[HBP_RESYNC_LEN];
	size_t skipped;
	ServerMsg *w;

	marker(buf, HBP_PROTOCOL_VERSION, nonce_byte);
	CHECK_EQ(it_send_all(r->fd, buf, sizeof(buf)), 0);
	CHECK_EQ(await_marker(r, nonce_byte, &skipped), 0);
	r->next_id = 1;
	w = it_raw_hello(r, HBP_ROLE_CLIENT);
	return w;
}

TEST(ports_and_per_vm_sockets)
{
	struct hbt_daemon d;
	struct it_raw r0, r1, rh;
	struct it_ivsh q;
	struct hbp_pool_header hdr;
	ServerMsg *w;
	const GroupInfo *g;

	start(&d);
	/* Both ports are vm1. */
	it_raw_open(&r0, hbt_path(&d, "vm1-0.sock"));
	hbt_raw_session(&r1, hbt_path(&d, "vm1-1.sock"), HBP_ROLE_CLIENT);
	w = it_raw_hello(&r0, HBP_ROLE_CLIENT);
	CHECK_EQ(w->welcome->domain, 1);
	CHECK_EQ(w->welcome->n_groups, 2);
	/* vm1's own ivshmem socket of each group. */
	g = it_welcome_group(w, "g");
	CHECK(strcmp(g->ivshmem_path, hbt_path(&d, "g-vm1.sock")) == 0);
	CHECK(strcmp(it_welcome_group(w, "p")->ivshmem_path, hbt_path(&d, "p-vm1.sock")) == 0);
	/* The pool instance in the welcome is the one in the header. */
	CHECK(g->pool_instance != 0);
	it_ivsh_join(&q, g->ivshmem_path);
	CHECK_EQ(pread(q.pool_fd, &hdr, sizeof(hdr), 0), sizeof(hdr));
	CHECK_EQ(hdr.instance, g->pool_instance);
	CHECK_EQ(hdr.group, g->id);
	it_ivsh_close(&q);
	server_msg__free_unpacked(w, NULL);
	/* The host has no ivshmem socket in a {vm} group: it gets the pool fd. */
	it_raw_open(&rh, d.socket);
	w = it_raw_hello(&rh, HBP_ROLE_CLIENT);
	CHECK_EQ(w->welcome->n_groups, 1);
	CHECK(strcmp(it_welcome_group(w, "g")->ivshmem_path, "") == 0);
	server_msg__free_unpacked(w, NULL);
	it_raw_close(&rh);
	it_raw_close(&r0);
	it_raw_close(&r1);

	/* The library on both ports: one domain, two clients. */
	{
		char a0[400], a1[400];
		struct hb_client *c0, *c1, *v2;
		struct hb_buffer *b;
		struct hb_import *im;
		struct hb_id id;

		snprintf(a0, sizeof(a0), "vm:%s", hbt_path(&d, "vm1-0.sock"));
		snprintf(a1, sizeof(a1), "vm:%s", hbt_path(&d, "vm1-1.sock"));
		c0 = IT_CONNECT(a0);
		c1 = IT_CONNECT(a1);
		v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
		CHECK_EQ(hb_self_domain(c0), 1);
		CHECK_EQ(hb_self_domain(c1), 1);
		b = IT_ALLOC(c1, 2, 100000, 0);
		it_fill(b, 7);
		IT_EXPORT(b, "x", 1, &id);
		im = IT_IMPORT(v2, &id, 0);
		IT_CHECK_IMPORT(im, 100000, 7);
		hb_import_release(im);
		hb_buffer_free(b);
		hb_disconnect(v2);
		hb_disconnect(c1);
		hb_disconnect(c0);
	}
	IT_STOP(&d);
}

/* On its own socket a QEMU is its VM before any guest process speaks: its going is that VM
 * going, and nobody else can claim it. */
TEST(ivshmem_socket_is_its_vm)
{
	struct hbt_daemon d;
	struct hb_client *h;
	struct it_ivsh q1, q1p, q2;
	struct it_raw r1, r2;
	struct hb_event ev;
	ServerMsg *w;
	uint32_t g, p;

	start(&d);
	h = IT_CONNECT(hbt_addr_host(&d));
	it_drain(h);
	it_ivsh_join(&q1, hbt_path(&d, "g-vm1.sock"));
	it_ivsh_join(&q1p, hbt_path(&d, "p-vm1.sock"));
	it_ivsh_join(&q2, hbt_path(&d, "g-vm2.sock"));
	/* Ids are unique across groups, so an IVPosition names one device. */
	CHECK(q1.id != q1p.id && q1.id != q2.id && q1p.id != q2.id);

	it_raw_open(&r2, hbt_path(&d, "vm2.sock"));
	w = it_raw_hello(&r2, HBP_ROLE_CLIENT);
	g = group_id(w, "g");
	p = group_id(w, "p");
	server_msg__free_unpacked(w, NULL);
	CHECK_EQ(hbt_raw_attach(&r2, g, (uint32_t)q1.id), EBUSY);  /* vm1's */
	CHECK_EQ(hbt_raw_attach(&r2, p, (uint32_t)q2.id), ENOENT); /* group g's id, not p's */
	CHECK_EQ(hbt_raw_attach(&r2, g, (uint32_t)q2.id), 0);
	hbt_raw_session(&r1, hbt_path(&d, "vm1-1.sock"), HBP_ROLE_CLIENT);
	CHECK_EQ(hbt_raw_attach(&r1, p, (uint32_t)q1.id), ENOENT);
	CHECK_EQ(hbt_raw_attach(&r1, p, (uint32_t)q1p.id), 0);
	it_raw_close(&r1);
	/* vm1's and vm2's, and the host client's doorbells (its Attach). */
	CHECK_EQ(IT_STAT(&d, "pool.g.ivshmem_peers"), 3);

	/* vm1's QEMU goes (its session went already): vm1 is gone for the host and vm2. */
	it_ivsh_close(&q1);
	IT_EXPECT_QUIET(h, 300); /* it still has its pool p */
	it_ivsh_close(&q1p);
	IT_WAIT_EVENT(h, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 1);
	/* A QEMU whose guest never said a word is still a VM that goes. */
	it_raw_close(&r2);
	IT_EXPECT_QUIET(h, 300); /* vm2's QEMU is still there */
	it_ivsh_close(&q2);
	IT_WAIT_EVENT(h, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 2);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* The VM's last ivshmem connection closing revokes what it shared: its sessions end. */
TEST(pool_loss_ends_the_vms_sessions)
{
	struct hbt_daemon d;
	struct hb_client *h;
	struct it_ivsh q;
	struct it_raw r;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;
	ServerMsg *w;

	start(&d);
	h = IT_CONNECT(hbt_addr_host(&d));
	it_ivsh_join(&q, hbt_path(&d, "g-vm1.sock"));
	it_raw_open(&r, hbt_path(&d, "vm1-0.sock"));
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	CHECK_EQ(hbt_raw_attach(&r, group_id(w, "g"), (uint32_t)q.id), 0);
	server_msg__free_unpacked(w, NULL);
	id = raw_share(&r, 0, 3 * 4096);
	IT_WAIT_EVENT(h, HB_EVENT_EXPORTED, &ev);
	im = IT_IMPORT(h, &id, 0);
	CHECK_EQ(IT_STAT(&d, "pages_used"), 3);

	it_ivsh_close(&q);
	IT_WAIT_EVENT(h, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 1);
	CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	it_raw_close(&r);
	/* The host keeps its mapping until it lets go; then the pages come back. */
	CHECK_EQ(IT_STAT(&d, "pages_used"), 3);
	hb_import_release(im);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(h);
	IT_STOP(&d);
}

/*
 * A guest process died in the middle of a frame and left its session behind: the next one's
 * marker lands inside that frame. The daemon finds it there, ends the old session (its export
 * is withdrawn, its pages come back) and answers the marker; then the Welcome.
 */
TEST(resync_after_a_partial_frame)
{
	static const uint8_t junk[100] = {0x08, 0x05, 0x22};
	struct hbt_daemon d;
	struct hb_client *h;
	struct it_ivsh q;
	struct it_raw r;
	struct hb_event ev;
	struct hb_id id;
	ServerMsg *w;

	start(&d);
	h = IT_CONNECT(hbt_addr_host(&d));
	it_ivsh_join(&q, hbt_path(&d, "g-vm1.sock"));
	it_raw_open(&r, hbt_path(&d, "vm1-0.sock"));
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	CHECK_EQ(hbt_raw_attach(&r, group_id(w, "g"), (uint32_t)q.id), 0);
	server_msg__free_unpacked(w, NULL);
	id = raw_share(&r, 0, 4096);
	IT_WAIT_EVENT(h, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(IT_STAT(&d, "pages_used"), 1);

	/* 100 bytes of a 500-byte frame, then nothing more from that process. */
	CHECK_EQ(it_raw_send_frame(&r, NULL, 0, 500), 0);
	CHECK_EQ(it_send_all(r.fd, junk, sizeof(junk)), 0);
	it_sleep_ms(100);
	w = resync_hello(&r, 0x42);
	CHECK_EQ(w->welcome->domain, 1);
	server_msg__free_unpacked(w, NULL);
	IT_WAIT_EVENT(h, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	IT_CHECK_STAT(&d, "pages_used", 0);
	check_alive(&r);
	/* vm1 never went: its QEMU is still there. */
	IT_EXPECT_QUIET(h, 200);
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), 0);

	it_raw_close(&r);
	it_ivsh_close(&q);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* What the daemon still owed the old session does not reach the new one after its marker. */
TEST(resync_drops_stale_output)
{
	struct hbt_daemon d;
	struct it_raw r;
	ServerMsg *w;
	size_t skipped;
	uint8_t buf[HBP_RESYNC_LEN];
	int i;

	start(&d);
	hbt_raw_session(&r, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT);
	/* Requests whose replies nobody reads. */
	for (i = 0; i < 200; i++) {
		uint8_t hid[16] = {1};
		ClientMsg m = CLIENT_MSG__INIT;
		Query q = QUERY__INIT;

		q.hid.data = hid;
		q.hid.len = 16;
		IT_MSG(m, QUERY, query, &q);
		m.id = (uint32_t)(100 + i);
		CHECK_EQ(it_raw_send(&r, &m), 0);
	}
	/* Give the daemon time to answer them: the answers then sit in the socket, where a
	 * restart cannot take them back, ahead of the marker's answer. */
	it_sleep_ms(300);
	marker(buf, HBP_PROTOCOL_VERSION, 0x17);
	CHECK_EQ(it_send_all(r.fd, buf, sizeof(buf)), 0);
	CHECK_EQ(await_marker(&r, 0x17, &skipped), 0);
	CHECK(skipped > 0); /* stale replies came first, and were skipped */
	r.next_id = 1;
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	CHECK_EQ(w->welcome->domain, 2);
	server_msg__free_unpacked(w, NULL);
	check_alive(&r);
	/* Requests and the marker in one write: the daemon may handle the requests first, and
	 * then drops their answers before they are sent. Either way the marker's answer is the
	 * first thing after the stale bytes, and the Welcome the next frame. */
	{
		static uint8_t burst[200 * 64 + HBP_RESYNC_LEN];
		size_t n = 0;

		for (i = 0; i < 200; i++) {
			uint8_t hid[16] = {2};
			ClientMsg m = CLIENT_MSG__INIT;
			Query q = QUERY__INIT;

			q.hid.data = hid;
			q.hid.len = 16;
			IT_MSG(m, QUERY, query, &q);
			m.id = (uint32_t)(500 + i);
			/* Room is left for the marker. */
			hbt_put_frame(burst, sizeof(burst) - HBP_RESYNC_LEN, &n, &m);
		}
		marker(burst + n, HBP_PROTOCOL_VERSION, 0x18);
		n += HBP_RESYNC_LEN;
		CHECK_EQ(it_send_all(r.fd, burst, n), 0);
		CHECK_EQ(await_marker(&r, 0x18, &skipped), 0);
		r.next_id = 1;
		w = it_raw_hello(&r, HBP_ROLE_CLIENT);
		server_msg__free_unpacked(w, NULL);
		check_alive(&r);
	}
	it_raw_close(&r);
	IT_STOP(&d);
}

/* Markers that arrive a byte at a time, right after two bytes of a frame header (which, as a
 * length, are out of range once the marker's first bytes follow), and a marker cut short by a
 * later one: the later one is answered. */
TEST(resync_split_and_cut_markers)
{
	struct hbt_daemon d;
	struct it_raw r;
	uint8_t buf[2 * HBP_RESYNC_LEN], hello[64];
	size_t skipped, n;
	ServerMsg *s;

	start(&d);
	it_raw_open(&r, hbt_path(&d, "vm2.sock"));
	CHECK_EQ(it_send_all(r.fd, "\x10\x00", 2), 0);
	marker(buf, HBP_PROTOCOL_VERSION, 0x33);
	for (unsigned i = 0; i < HBP_RESYNC_LEN; i++) {
		CHECK_EQ(it_send_all(r.fd, buf + i, 1), 0);
		it_sleep_ms(2);
	}
	CHECK_EQ(await_marker(&r, 0x33, &skipped), 0);
	s = it_raw_hello(&r, HBP_ROLE_CLIENT);
	server_msg__free_unpacked(s, NULL);
	check_alive(&r);
	it_raw_close(&r);

	it_raw_open(&r, hbt_path(&d, "vm2.sock"));
	marker(buf, HBP_PROTOCOL_VERSION, 0x01);
	marker(buf + 20, HBP_PROTOCOL_VERSION, 0x02); /* the first one's writer died at byte 20 */
	n = hello_frame(hello, sizeof(hello));
	CHECK_EQ(it_send_all(r.fd, buf, 20 + HBP_RESYNC_LEN), 0);
	CHECK_EQ(await_marker(&r, 0x02, &skipped), 0);
	CHECK_EQ(it_send_all(r.fd, hello, n), 0);
	s = it_raw_recv(&r, IT_WAIT_MS, NULL);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 1);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_WELCOME);
	server_msg__free_unpacked(s, NULL);
	r.next_id = 2;
	check_alive(&r);
	it_raw_close(&r);
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), 0);
	IT_STOP(&d);
}

/* The marker restarts the session wherever it is, even inside a frame that arrived whole:
 * that frame is never handled. Only the sender's own session is affected. */
TEST(resync_inside_a_whole_frame)
{
	struct hbt_daemon d;
	struct it_raw r;
	uint8_t hid[16], mk[HBP_RESYNC_LEN], *frame;
	ClientMsg m = CLIENT_MSG__INIT;
	Query q = QUERY__INIT;
	size_t n, skipped;
	ServerMsg *w;

	start(&d);
	hbt_raw_session(&r, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT);
	marker(mk, HBP_PROTOCOL_VERSION, 0x55);
	memset(hid, 0, 8);
	memcpy(hid + 8, mk, 8); /* the magic ends the frame; the rest of the marker follows */
	q.hid.data = hid;
	q.hid.len = 16;
	IT_MSG(m, QUERY, query, &q);
	m.id = 77;
	n = client_msg__get_packed_size(&m);
	frame = malloc(4 + n + HBP_RESYNC_LEN - 8);
	CHECK(frame != NULL);
	frame[0] = (uint8_t)n;
	frame[1] = frame[2] = frame[3] = 0;
	client_msg__pack(&m, frame + 4);
	CHECK(memcmp(frame + 4 + n - 8, HBP_RESYNC_MAGIC, 8) == 0);
	memcpy(frame + 4 + n, mk + 8, HBP_RESYNC_LEN - 8);
	CHECK_EQ(it_send_all(r.fd, frame, 4 + n + HBP_RESYNC_LEN - 8), 0);
	free(frame);
	CHECK_EQ(await_marker(&r, 0x55, &skipped), 0);
	CHECK_EQ(skipped, 0); /* no reply to request 77 */
	r.next_id = 1;
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	server_msg__free_unpacked(w, NULL);
	check_alive(&r);
	it_raw_close(&r);
	IT_STOP(&d);
}

TEST(resync_refuses_another_version)
{
	struct hbt_daemon d;
	struct it_raw r;
	uint8_t buf[HBP_RESYNC_LEN];
	size_t skipped;
	ServerMsg *w;

	start(&d);
	it_raw_open(&r, hbt_path(&d, "vm2.sock"));
	marker(buf, HBP_PROTOCOL_VERSION + 1, 0x66);
	CHECK_EQ(it_send_all(r.fd, buf, sizeof(buf)), 0);
	CHECK_EQ(await_marker(&r, 0x66, &skipped), EPROTO);
	/* The channel is still usable by a process that speaks this version. */
	w = resync_hello(&r, 0x67);
	server_msg__free_unpacked(w, NULL);
	check_alive(&r);
	it_raw_close(&r);
	IT_STOP(&d);
}

/* On a VM channel a new Hello is a new guest process: the old session's import is released
 * (the exporter hears RELEASED), and the new session starts clean. A host socket still
 * refuses a second Hello (test_it_hostile.c). */
TEST(hello_restarts_a_channel_session)
{
	struct hbt_daemon d;
	struct hb_client *h;
	struct hb_buffer *b;
	struct it_ivsh q;
	struct it_raw r;
	struct hb_event ev;
	struct hb_id id;
	ServerMsg *w, *s;
	ClientMsg m = CLIENT_MSG__INIT;
	Import im = IMPORT__INIT;

	start(&d);
	h = IT_CONNECT(hbt_addr_host(&d));
	b = IT_ALLOC(h, 2, 8192, 0);
	IT_EXPORT(b, NULL, 0, &id);
	it_ivsh_join(&q, hbt_path(&d, "g-vm2.sock"));
	it_raw_open(&r, hbt_path(&d, "vm2.sock"));
	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	CHECK_EQ(hbt_raw_attach(&r, group_id(w, "g"), (uint32_t)q.id), 0);
	server_msg__free_unpacked(w, NULL);
	im.hid.data = id.bytes;
	im.hid.len = 16;
	IT_MSG(m, IMPORT, import, &im);
	s = IT_RAW_CALL(&r, &m);
	CHECK_EQ(s->error, 0);
	server_msg__free_unpacked(s, NULL);
	IT_WAIT_EVENT(h, HB_EVENT_IMPORTED, &ev);

	w = it_raw_hello(&r, HBP_ROLE_CLIENT);
	CHECK_EQ(w->welcome->domain, 2);
	server_msg__free_unpacked(w, NULL);
	IT_WAIT_EVENT(h, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	/* A fresh session: nothing attached yet. */
	s = IT_RAW_CALL(&r, &m);
	CHECK_EQ(s->error, ENOENT);
	server_msg__free_unpacked(s, NULL);

	it_raw_close(&r);
	it_ivsh_close(&q);
	hb_buffer_free(b);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* Nobody puts the magic on a VM channel inside metadata: the library and the daemon refuse it. */
TEST(metadata_cannot_carry_a_marker)
{
	struct hbt_daemon d;
	struct hb_client *v2, *h;
	struct hb_buffer *b, *hb;
	struct hb_id id;
	uint8_t meta[64] = {0};

	start(&d);
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	h = IT_CONNECT(hbt_addr_host(&d));
	b = IT_ALLOC(v2, 1, 4096, 0);
	memcpy(meta + 10, HBP_RESYNC_MAGIC, 8);
	CHECK_ERR(hb_export(b, meta, sizeof(meta), 0, &id), EINVAL);
	memset(meta, 0, sizeof(meta));
	memcpy(meta + 57, HBP_RESYNC_MAGIC, 7);
	CHECK_ERR(hb_export(b, meta, sizeof(meta), 0, &id), EINVAL);
	memcpy(meta + 57, "harmless", 7);
	IT_EXPORT(b, meta, sizeof(meta), &id);
	/* Nor does anybody else's metadata reach a channel with one: the host's peer is a VM, whose
	 * library finds markers wherever they are in its input (PROTOCOL.md §8). */
	hb = IT_ALLOC(h, 2, 4096, 0);
	memcpy(meta + 10, HBP_RESYNC_MAGIC, 8);
	CHECK_ERR(hb_export(hb, meta, sizeof(meta), 0, &id), EINVAL);
	hb_buffer_free(hb);
	hb_buffer_free(b);
	hb_disconnect(h);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/*
 * After a restart, an adopted channel drops what was meant for the last daemon until the
 * guest's marker. A whole stale frame and the marker in one write (one read for the daemon):
 * the marker behind the dropped frame is still answered, not left waiting in the buffer.
 */
TEST(adopted_channel_finds_the_marker_behind_a_stale_frame)
{
	struct hbt_daemon d;
	struct it_raw r;
	uint8_t hid[16] = {1}, buf[512];
	ClientMsg m = CLIENT_MSG__INIT;
	Query q = QUERY__INIT;
	size_t n = 0, skipped;

	hbt_daemon_start_held(&d, topology);
	hbt_raw_session(&r, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT);
	hbt_daemon_crash(&d);
	q.hid.data = hid;
	q.hid.len = 16;
	IT_MSG(m, QUERY, query, &q);
	m.id = 7;
	hbt_put_frame(buf, sizeof(buf), &n, &m);
	CHECK(n + HBP_RESYNC_LEN <= sizeof(buf));
	marker(buf + n, HBP_PROTOCOL_VERSION, 0x5a);
	CHECK_EQ(it_send_all(r.fd, buf, n + HBP_RESYNC_LEN), 0);
	/* The RESTARTED marker comes first, then the answer to ours. */
	CHECK_EQ(await_marker(&r, 0x5a, &skipped), 0);
	CHECK(skipped >= HBP_RESYNC_LEN);
	r.next_id = 1;
	server_msg__free_unpacked(it_raw_hello(&r, HBP_ROLE_CLIENT), NULL);
	check_alive(&r);
	it_raw_close(&r);
	IT_STOP(&d);
}
