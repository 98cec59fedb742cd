/*
 * VM channels as real QEMU guests use them: several ports per VM, and per-VM ivshmem sockets
 * that tell the daemon which QEMU is which VM.
 *
 * The channel sockets are driven by hand here, as QEMU's chardev would carry a guest's bytes.
 */
#include "tests/it_common.h"

static const char topology[] = "[daemon]\nbackend = kvm\nsocket = host.sock\nlog = debug\n\n"
			       "[vm vm1]\nid = 1\nchannel = vm1-{port}.sock\nports = 2\n\n"
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

static uint32_t raw_attach(struct it_raw *r, uint32_t group, uint32_t peer)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Attach a = ATTACH__INIT;

	a.group = group;
	a.ivshmem_peer = peer;
	IT_MSG(m, ATTACH, attach, &a);
	return IT_RAW_ERR(r, &m);
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

TEST(ports_and_per_vm_sockets)
{
	struct hbt_daemon d;
	struct it_raw r0, r1, rh;
	struct it_ivsh q;
	struct hb_pool_header hdr;
	ServerMsg *w;
	const GroupInfo *g;

	start(&d);
	/* Both ports are vm1. */
	it_raw_open(&r0, hbt_path(&d, "vm1-0.sock"));
	it_raw_open(&r1, hbt_path(&d, "vm1-1.sock"));
	w = it_raw_hello(&r1, HB_ROLE_CLIENT);
	server_msg__free_unpacked(w, NULL);
	w = it_raw_hello(&r0, HB_ROLE_CLIENT);
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
	w = it_raw_hello(&rh, HB_ROLE_CLIENT);
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
	w = it_raw_hello(&r2, HB_ROLE_CLIENT);
	g = group_id(w, "g");
	p = group_id(w, "p");
	server_msg__free_unpacked(w, NULL);
	CHECK_EQ(raw_attach(&r2, g, (uint32_t)q1.id), EBUSY); /* vm1's */
	CHECK_EQ(raw_attach(&r2, p, (uint32_t)q2.id), ENOENT); /* group g's id, not p's */
	CHECK_EQ(raw_attach(&r2, g, (uint32_t)q2.id), 0);
	it_raw_open(&r1, hbt_path(&d, "vm1-1.sock"));
	w = it_raw_hello(&r1, HB_ROLE_CLIENT);
	server_msg__free_unpacked(w, NULL);
	CHECK_EQ(raw_attach(&r1, p, (uint32_t)q1.id), ENOENT);
	CHECK_EQ(raw_attach(&r1, p, (uint32_t)q1p.id), 0);
	it_raw_close(&r1);
	CHECK_EQ(IT_STAT(&d, "pool.g.ivshmem_peers"), 2);

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
	w = it_raw_hello(&r, HB_ROLE_CLIENT);
	CHECK_EQ(raw_attach(&r, group_id(w, "g"), (uint32_t)q.id), 0);
	server_msg__free_unpacked(w, NULL);
	id = raw_share(&r, 0, 3 * 4096);
	IT_WAIT_EVENT(h, HB_EVENT_EXPORTED, &ev);
	im = IT_IMPORT(h, &id, 0);
	CHECK_EQ(IT_STAT(&d, "pages_used"), 4);

	it_ivsh_close(&q);
	IT_WAIT_EVENT(h, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 1);
	CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	it_raw_close(&r);
	/* The host keeps its mapping until it lets go; then the pages come back. */
	CHECK_EQ(IT_STAT(&d, "pages_used"), 4);
	hb_import_release(im);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(h);
	IT_STOP(&d);
}
