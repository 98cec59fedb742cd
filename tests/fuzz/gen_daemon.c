/*
 * The fuzz_daemon seeds (tests/fuzz/formats.h): sessions of the rig's topology that say Hello,
 * attach, share, import, fence, restart a VM channel, lose a QEMU, hit the quotas and break
 * the rules, each request with the handles, hids and timeline ids the daemon hands out in a
 * deterministic input. The first frame of each ClientMsg body is also a fuzz_frame seed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hyperbuf.h"
#include "protocol/frame.h"
#include "protocol/limits.h"
#include "protocol/resync.h"
#include "tests/fuzz/formats.h"
#include "tests/fuzz/gen_corpus.h"

/* ---- messages ----------------------------------------------------------------------------- */

/* The hid of the n-th export of a fuzz_daemon input (formats.h). */
static ProtobufCBinaryData hid_of(unsigned n)
{
	static uint8_t hids[16][16];
	uint8_t *h = hids[n % 16];
	uint32_t serial = n + 1;

	for (unsigned i = 0; i < 4; i++)
		h[i] = (uint8_t)(serial >> (8 * i));
	for (unsigned i = 0; i < 12; i++)
		h[4 + i] = HBT_RANDOM_BYTE(i);
	return (ProtobufCBinaryData){16, h};
}

static uint64_t timeline_of(unsigned n)
{
	return (uint64_t)HBT_TIMELINE_EPOCH << 32 | n;
}

/* One ClientMsg of each body, built on the stack by the macro's caller. */
#define CLIENT(var, body_field, bcase, type, init)                                                 \
	ClientMsg var = CLIENT_MSG__INIT;                                                          \
	type var##_body = init;                                                                    \
	var.body_case = bcase;                                                                     \
	var.body_field = &var##_body

static struct hbp_bytes packed;

/* The payload of m, in `packed` (valid until the next call). */
static void pack_client(const ClientMsg *m)
{
	packed.len = 0;
	if (hbp_bytes_reserve(&packed, client_msg__get_packed_size(m)) < 0)
		exit(1);
	packed.len = client_msg__pack(m, packed.data);
}

/* ---- fuzz_daemon scenarios --------------------------------------------------------------- */

struct scen {
	struct hbp_bytes b;
	uint32_t id[HBT_N_CONNS]; /* the next request id of each connection */
};

/* The first frame of each body also goes to fuzz_frame's corpus, as client-BODY. */
static void frame_seed(const ClientMsg *m)
{
	static bool done[64];
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field(&client_msg__descriptor, m->body_case);
	struct hbp_bytes b = {0};
	char name[64];

	if ((unsigned)m->body_case >= 64 || done[m->body_case] || !f)
		return;
	done[m->body_case] = true;
	if (hbp_frame_put_client(&b, m, HBP_FRAME_MAX) < 0)
		exit(1);
	snprintf(name, sizeof(name), "client-%s", f->name);
	hbt_put_file("frame", name, b.data, b.len);
	hbp_bytes_free(&b);
}

static void frame(struct scen *s, unsigned conn, ClientMsg *m)
{
	m->id = ++s->id[conn];
	frame_seed(m);
	pack_client(m);
	hbt_append_u8(&s->b, (uint8_t)(HBT_OP_FRAME | conn));
	hbt_append_u16(&s->b, (uint16_t)packed.len);
	hbt_append(&s->b, packed.data, packed.len);
}

static void raw(struct scen *s, unsigned conn, const void *data, size_t len)
{
	hbt_append_u8(&s->b, (uint8_t)(HBT_OP_RAW | conn));
	hbt_append_u16(&s->b, (uint16_t)len);
	hbt_append(&s->b, data, len);
}

static void hello(struct scen *s, unsigned conn, uint32_t role)
{
	CLIENT(m, hello, CLIENT_MSG__BODY_HELLO, Hello, HELLO__INIT);
	m_body.version = HBP_PROTOCOL_VERSION;
	m_body.role = role;
	frame(s, conn, &m);
}

static void attach(struct scen *s, unsigned conn, uint32_t group, uint32_t peer)
{
	CLIENT(m, attach, CLIENT_MSG__BODY_ATTACH, Attach, ATTACH__INIT);
	m_body.group = group;
	m_body.ivshmem_peer = peer;
	frame(s, conn, &m);
}

static void alloc(struct scen *s, unsigned conn, uint32_t peer, uint64_t size, uint32_t flags)
{
	CLIENT(m, alloc, CLIENT_MSG__BODY_ALLOC, Alloc, ALLOC__INIT);
	m_body.peer = peer;
	m_body.size = size;
	m_body.flags = flags;
	frame(s, conn, &m);
}

static void free_buf(struct scen *s, unsigned conn, uint64_t buffer)
{
	CLIENT(m, free, CLIENT_MSG__BODY_FREE, Free, FREE__INIT);
	m_body.buffer = buffer;
	frame(s, conn, &m);
}

static void export(struct scen *s, unsigned conn, uint64_t buffer, const char *meta)
{
	CLIENT(m, export, CLIENT_MSG__BODY_EXPORT, Export, EXPORT__INIT);
	m_body.buffer = buffer;
	m_body.meta = (ProtobufCBinaryData){strlen(meta), (uint8_t *)meta};
	frame(s, conn, &m);
}

static void unexport(struct scen *s, unsigned conn, unsigned hid, uint32_t delay_ms)
{
	CLIENT(m, unexport, CLIENT_MSG__BODY_UNEXPORT, Unexport, UNEXPORT__INIT);
	m_body.hid = hid_of(hid);
	m_body.delay_ms = delay_ms;
	frame(s, conn, &m);
}

static void import(struct scen *s, unsigned conn, unsigned hid, uint32_t flags)
{
	CLIENT(m, import, CLIENT_MSG__BODY_IMPORT, Import, IMPORT__INIT);
	m_body.hid = hid_of(hid);
	m_body.flags = flags;
	frame(s, conn, &m);
}

static void release(struct scen *s, unsigned conn, uint64_t handle)
{
	CLIENT(m, release, CLIENT_MSG__BODY_RELEASE, Release, RELEASE__INIT);
	m_body.import = handle;
	frame(s, conn, &m);
}

static void query(struct scen *s, unsigned conn, unsigned hid)
{
	CLIENT(m, query, CLIENT_MSG__BODY_QUERY, Query, QUERY__INIT);
	m_body.hid = hid_of(hid);
	frame(s, conn, &m);
}

static void control(struct scen *s, unsigned conn, uint32_t what)
{
	CLIENT(m, control, CLIENT_MSG__BODY_CONTROL, Control, CONTROL__INIT);
	m_body.what = what;
	frame(s, conn, &m);
}

static void tl_create(struct scen *s, unsigned conn)
{
	CLIENT(m, timeline_create, CLIENT_MSG__BODY_TIMELINE_CREATE, TimelineCreate,
	       TIMELINE_CREATE__INIT);
	frame(s, conn, &m);
}

static void tl_signal(struct scen *s, unsigned conn, unsigned tl, uint64_t value, uint32_t err)
{
	CLIENT(m, timeline_signal, CLIENT_MSG__BODY_TIMELINE_SIGNAL, TimelineSignal,
	       TIMELINE_SIGNAL__INIT);
	m_body.timeline = timeline_of(tl);
	m_body.value = value;
	m_body.error = err;
	frame(s, conn, &m);
}

static void tl_destroy(struct scen *s, unsigned conn, unsigned tl)
{
	CLIENT(m, timeline_destroy, CLIENT_MSG__BODY_TIMELINE_DESTROY, TimelineDestroy,
	       TIMELINE_DESTROY__INIT);
	m_body.timeline = timeline_of(tl);
	frame(s, conn, &m);
}

static void sync_open(struct scen *s, unsigned conn, unsigned tl, uint64_t value)
{
	CLIENT(m, sync_open, CLIENT_MSG__BODY_SYNC_OPEN, SyncOpen, SYNC_OPEN__INIT);
	m_body.timeline = timeline_of(tl);
	m_body.value = value;
	frame(s, conn, &m);
}

static void sync_close(struct scen *s, unsigned conn, uint64_t wait)
{
	CLIENT(m, sync_close, CLIENT_MSG__BODY_SYNC_CLOSE, SyncClose, SYNC_CLOSE__INIT);
	m_body.wait = wait;
	frame(s, conn, &m);
}

static void fence_attach(struct scen *s, unsigned conn, unsigned hid, unsigned tl, uint64_t value,
			 uint32_t usage)
{
	CLIENT(m, fence_attach, CLIENT_MSG__BODY_FENCE_ATTACH, FenceAttach, FENCE_ATTACH__INIT);
	m_body.hid = hid_of(hid);
	m_body.timeline = timeline_of(tl);
	m_body.value = value;
	m_body.usage = usage;
	frame(s, conn, &m);
}

static void cpu_access(struct scen *s, unsigned conn, unsigned hid, uint32_t access)
{
	CLIENT(m, cpu_access, CLIENT_MSG__BODY_CPU_ACCESS, CpuAccess, CPU_ACCESS__INIT);
	m_body.hid = hid_of(hid);
	m_body.access = access;
	frame(s, conn, &m);
}

static void grant(struct scen *s, unsigned conn, uint64_t buffer)
{
	BufferDesc desc = BUFFER_DESC__INIT;
	CLIENT(m, grant, CLIENT_MSG__BODY_GRANT, Grant, GRANT__INIT);
	desc.root_ref = 8;
	desc.depth = 1;
	desc.pages = 1;
	desc.size = 4096;
	m_body.buffer = buffer;
	m_body.desc = &desc;
	frame(s, conn, &m);
}

static void op(struct scen *s, uint8_t o)
{
	hbt_append_u8(&s->b, o);
}

static void marker(struct scen *s, unsigned conn, uint32_t version, uint8_t nonce)
{
	struct hbp_resync m = {.version = version};
	uint8_t out[HBP_RESYNC_LEN];

	memset(m.nonce, nonce, sizeof(m.nonce));
	hbp_resync_pack(out, &m);
	raw(s, conn, out, sizeof(out));
}

static void put_scen(struct scen *s, const char *name)
{
	hbt_put_file("daemon", name, s->b.data, s->b.len);
	hbp_bytes_free(&s->b);
	memset(s, 0, sizeof(*s));
}

/* The host and vm1 share through group a: attach (the VM names its ivshmem peer), allocate,
 * export with metadata, import, query, release, unexport, free. */
static void scen_share(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	alloc(&s, HBT_CONN_HOST_A, 1, 10000, 0);
	export(&s, HBT_CONN_HOST_A, 1, "frame-0");
	import(&s, HBT_CONN_VM1_A, 1, 0);
	query(&s, HBT_CONN_VM1_A, 1);
	query(&s, HBT_CONN_HOST_A, 1);
	release(&s, HBT_CONN_VM1_A, 2);
	unexport(&s, HBT_CONN_HOST_A, 1, 0);
	free_buf(&s, HBT_CONN_HOST_A, 1);
	put_scen(&s, "share-host-vm1");
}

/* vm1 and vm2 through group b (each VM's own ivshmem socket): a writable share, an import
 * that outlives its exporter (an orphan), a delayed unexport. */
static void scen_orphan(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 2, 1 + HBT_PEER_B_VM1);
	hello(&s, HBT_CONN_VM2, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM2, 2, 1 + HBT_PEER_B_VM2);
	alloc(&s, HBT_CONN_VM1_A, 2, 3 * 4096 + 5, HB_BUFFER_PEER_WRITABLE);
	export(&s, HBT_CONN_VM1_A, 1, "");
	import(&s, HBT_CONN_VM2, 1, HB_IMPORT_WRITE);
	cpu_access(&s, HBT_CONN_VM2, 1, HB_ACCESS_WRITE);
	unexport(&s, HBT_CONN_VM1_A, 1, 1);
	op(&s, HBT_OP_SPIN);
	op(&s, HBT_OP_HANGUP | HBT_CONN_VM1_A);
	query(&s, HBT_CONN_VM2, 1);
	release(&s, HBT_CONN_VM2, 2);
	put_scen(&s, "orphan-vm1-vm2");
}

/* Timelines: waits that complete, fail, are born failed, are closed; a reservation on a
 * shared buffer and the CPU access that waits for it. */
static void scen_fences(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hello(&s, HBT_CONN_HOST_B, HBP_ROLE_CLIENT);
	tl_create(&s, HBT_CONN_HOST_A);
	sync_open(&s, HBT_CONN_HOST_B, 1, 2);
	sync_open(&s, HBT_CONN_HOST_B, 1, 5);
	tl_signal(&s, HBT_CONN_HOST_A, 1, 2, 0);
	tl_signal(&s, HBT_CONN_HOST_A, 1, 4, EIO);
	sync_open(&s, HBT_CONN_HOST_B, 1, 3);
	sync_close(&s, HBT_CONN_HOST_B, 2);
	attach(&s, HBT_CONN_HOST_A, 3, 0);
	hello(&s, HBT_CONN_VM2, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM2, 3, 1 + HBT_PEER_C);
	alloc(&s, HBT_CONN_HOST_A, 2, 4096, 0);
	export(&s, HBT_CONN_HOST_A, 3, "f");
	tl_create(&s, HBT_CONN_HOST_A);
	fence_attach(&s, HBT_CONN_HOST_A, 1, 2, 1, HB_ACCESS_WRITE);
	cpu_access(&s, HBT_CONN_VM2, 1, HB_ACCESS_READ);
	sync_open(&s, HBT_CONN_VM2, 2, 1);
	tl_signal(&s, HBT_CONN_HOST_A, 2, 1, 0);
	tl_destroy(&s, HBT_CONN_HOST_A, 1);
	put_scen(&s, "fences");
}

/* hyperbufctl's view: a control session asks for everything, on the host socket. */
static void scen_control(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	alloc(&s, HBT_CONN_HOST_A, 1, 4096, 0);
	export(&s, HBT_CONN_HOST_A, 1, "m");
	tl_create(&s, HBT_CONN_HOST_A);
	hello(&s, HBT_CONN_HOST_SOCK, HBP_ROLE_CONTROL);
	for (uint32_t what = HBP_CTL_STATUS; what <= HBP_CTL_TIMELINES; what++)
		control(&s, HBT_CONN_HOST_SOCK, what);
	put_scen(&s, "control");
}

/* A VM channel used by one guest process after another: resync markers, a frame cut short by
 * a process that died, a new Hello in place. */
static void scen_resync(void)
{
	static const uint8_t cut[] = {40, 0, 0, 0, 8, 1, 18};
	struct scen s = {0};

	marker(&s, HBT_CONN_VM1_A, HBP_PROTOCOL_VERSION, 0x11);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	raw(&s, HBT_CONN_VM1_A, cut, sizeof(cut));
	marker(&s, HBT_CONN_VM1_A, HBP_PROTOCOL_VERSION, 0x22);
	s.id[HBT_CONN_VM1_A] = 0;
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	marker(&s, HBT_CONN_VM2_SOCK, 7, 0x33);
	hello(&s, HBT_CONN_VM2_SOCK, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM2_SOCK, 3, 1 + HBT_PEER_C);
	put_scen(&s, "resync");
}

/* What a hostile client tries: a request before Hello, a bad version, a control role from a
 * VM, a frame longer than the limit, a body this build does not know, Grant on KVM. */
static void scen_rules(void)
{
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0x7f, 1, 2, 3};
	static const uint8_t unknown[] = {0x08, 0x01, 0xf2, 0x01, 0x00}; /* id 1, field 30 */
	struct scen s = {0};

	alloc(&s, HBT_CONN_HOST_B, 1, 4096, 0);
	hello(&s, HBT_CONN_VM3, HBP_ROLE_CONTROL);
	raw(&s, HBT_CONN_VM1_B, huge, sizeof(huge));
	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_append_u8(&s.b, HBT_OP_FRAME | HBT_CONN_HOST_A);
	hbt_append_u16(&s.b, sizeof(unknown));
	hbt_append(&s.b, unknown, sizeof(unknown));
	grant(&s, HBT_CONN_HOST_A, 1);
	attach(&s, HBT_CONN_HOST_A, 2, 0);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	alloc(&s, HBT_CONN_HOST_A, 3, 4096, 0);
	alloc(&s, HBT_CONN_HOST_A, 1, 1ull << 40, 0);
	import(&s, HBT_CONN_HOST_A, 7, 0);
	put_scen(&s, "rules");
}

/* The quotas of the rig's [limits]: exports, pages, timelines, imports, fence waits. */
static void scen_quota(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	for (unsigned i = 1; i <= 8; i++)
		alloc(&s, HBT_CONN_HOST_A, 1, 40 * 4096, 0); /* 1..6, then the pool is full */
	for (unsigned i = 1; i <= 5; i++) {
		export(&s, HBT_CONN_HOST_A, i, "q"); /* hids 1..4, then EDQUOT */
		tl_create(&s, HBT_CONN_HOST_A);      /* timelines 1..4, then EDQUOT */
	}
	for (unsigned i = 1; i <= 5; i++)
		import(&s, HBT_CONN_VM1_A, i, 0); /* handles 7..10, then ENOENT */
	for (unsigned i = 0; i < 10; i++)
		sync_open(&s, HBT_CONN_VM1_A, 1, 10 + i); /* waits 11..18, then EDQUOT */
	put_scen(&s, "quota");
}

/* A QEMU goes: vm1's sessions end, vm2 hears DOMAIN_GONE and keeps its import. A client that
 * does not read its events overflows its queue. */
static void scen_gone(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 2, 1 + HBT_PEER_B_VM1);
	hello(&s, HBT_CONN_VM2, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM2, 2, 1 + HBT_PEER_B_VM2);
	op(&s, HBT_OP_MUTE | HBT_CONN_VM2);
	alloc(&s, HBT_CONN_VM1_A, 2, 4096, 0);
	for (unsigned i = 1; i <= 10; i++) {
		export(&s, HBT_CONN_VM1_A, 1, "again");
		unexport(&s, HBT_CONN_VM1_A, i, 0);
	}
	export(&s, HBT_CONN_VM1_A, 1, "last");
	import(&s, HBT_CONN_VM2, 11, 0);
	op(&s, HBT_OP_MUTE | HBT_CONN_VM2);
	op(&s, HBT_OP_PEER_GONE | HBT_PEER_B_VM1);
	op(&s, HBT_OP_SPIN);
	release(&s, HBT_CONN_VM2, 2);
	put_scen(&s, "peer-gone");
}

/* A client that stops reading: its socket fills with replies (Control, Query with a kilobyte
 * of metadata), then its fence completions pile up until it is dropped, and its events until
 * they overflow. */
static void scen_backpressure(void)
{
	static char meta[1025];
	struct scen s = {0};

	memset(meta, 'm', sizeof(meta) - 1);
	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hello(&s, HBT_CONN_HOST_B, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_HOST_B, 1, 0);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	tl_create(&s, HBT_CONN_HOST_B);
	alloc(&s, HBT_CONN_HOST_B, 1, 4096, 0);
	export(&s, HBT_CONN_HOST_B, 1, meta);
	op(&s, HBT_OP_MUTE | HBT_CONN_HOST_A);
	op(&s, HBT_OP_MUTE | HBT_CONN_VM1_A);
	for (unsigned i = 0; i < 300; i++) {
		control(&s, HBT_CONN_HOST_A, HBP_CTL_STATUS);
		query(&s, HBT_CONN_VM1_A, 1);
	}
	for (unsigned i = 1; i <= 10; i++) {
		sync_open(&s, HBT_CONN_HOST_A, 1, i);
		tl_signal(&s, HBT_CONN_HOST_B, 1, i, 0);
		unexport(&s, HBT_CONN_HOST_B, i, 0);
		export(&s, HBT_CONN_HOST_B, 1, "again");
	}
	op(&s, HBT_OP_SPIN);
	op(&s, HBT_OP_MUTE | HBT_CONN_VM1_A);
	op(&s, HBT_OP_SPIN);
	put_scen(&s, "backpressure");
}

/* A host client that does not read gets the pool fd of its Attach queued behind a full socket,
 * then hangs up: the fd must be closed with the session (the rig counts descriptors). */
static void scen_fd_queued(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	op(&s, HBT_OP_MUTE | HBT_CONN_HOST_A);
	for (unsigned i = 0; i < 300; i++)
		control(&s, HBT_CONN_HOST_A, HBP_CTL_STATS);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	attach(&s, HBT_CONN_HOST_A, 3, 0);
	op(&s, HBT_OP_HANGUP | HBT_CONN_HOST_A);
	put_scen(&s, "fd-queued");
}

/* A guest process that leaves everything behind: vm1 owns a timeline the host waits on and a
 * buffer the host imported with a fence on it; the next process's resync marker ends all of it
 * (the wait fails with EPIPE, the import outlives its exporter), and a new Hello does it once
 * more. */
static void scen_restart(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	tl_create(&s, HBT_CONN_VM1_A);
	sync_open(&s, HBT_CONN_HOST_A, 1, 3);
	alloc(&s, HBT_CONN_VM1_A, 0, 5000, HB_BUFFER_PEER_WRITABLE);
	export(&s, HBT_CONN_VM1_A, 2, "restart");
	fence_attach(&s, HBT_CONN_VM1_A, 1, 1, 3, HB_ACCESS_WRITE);
	import(&s, HBT_CONN_HOST_A, 1, HB_IMPORT_WRITE);
	unexport(&s, HBT_CONN_VM1_A, 1, 1000);
	marker(&s, HBT_CONN_VM1_A, HBP_PROTOCOL_VERSION, 0x44);
	s.id[HBT_CONN_VM1_A] = 0;
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	cpu_access(&s, HBT_CONN_HOST_A, 1, HB_ACCESS_WRITE);
	tl_create(&s, HBT_CONN_VM1_A);
	sync_open(&s, HBT_CONN_HOST_A, 2, 1);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	release(&s, HBT_CONN_HOST_A, 3);
	put_scen(&s, "restart-with-state");
}

/* vm2's QEMU goes while vm2 owns a timeline others wait on and a buffer vm1 imported. */
static void scen_gone_fences(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_VM2, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM2, 2, 1 + HBT_PEER_B_VM2);
	attach(&s, HBT_CONN_VM2, 3, 1 + HBT_PEER_C);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 2, 1 + HBT_PEER_B_VM1);
	hello(&s, HBT_CONN_HOST_B, HBP_ROLE_CLIENT);
	tl_create(&s, HBT_CONN_VM2);
	sync_open(&s, HBT_CONN_VM1_A, 1, 1);
	sync_open(&s, HBT_CONN_HOST_B, 1, 2);
	alloc(&s, HBT_CONN_VM2, 1, 8192, 0);
	export(&s, HBT_CONN_VM2, 3, "gone");
	import(&s, HBT_CONN_VM1_A, 1, 0);
	op(&s, HBT_OP_PEER_GONE | HBT_PEER_B_VM2);
	op(&s, HBT_OP_PEER_GONE | HBT_PEER_C);
	query(&s, HBT_CONN_VM1_A, 1);
	release(&s, HBT_CONN_VM1_A, 4);
	put_scen(&s, "gone-with-fences");
}

/* A buffer's reservation: fences replaced and appended until it is full, a reader's and a
 * writer's CPU access; a timeline that fails more ranges than it remembers, and late openers
 * of points it passed. */
static void scen_reservations(void)
{
	struct scen s = {0};

	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	alloc(&s, HBT_CONN_HOST_A, 1, 4096, 0);
	export(&s, HBT_CONN_HOST_A, 1, "resv");
	tl_create(&s, HBT_CONN_HOST_A);
	tl_create(&s, HBT_CONN_VM1_A);
	fence_attach(&s, HBT_CONN_HOST_A, 1, 2, 5, HB_ACCESS_READ);
	fence_attach(&s, HBT_CONN_VM1_A, 1, 2, 6, HB_ACCESS_WRITE | HB_ACCESS_READ);
	for (unsigned i = 0; i < 34; i++)
		fence_attach(&s, HBT_CONN_HOST_A, 1, 1, 100 - i, HB_ACCESS_WRITE);
	cpu_access(&s, HBT_CONN_VM1_A, 1, HB_ACCESS_READ);
	cpu_access(&s, HBT_CONN_HOST_A, 1, HB_ACCESS_WRITE);
	tl_signal(&s, HBT_CONN_HOST_A, 1, 90, 0);
	fence_attach(&s, HBT_CONN_HOST_A, 1, 1, 200, HB_ACCESS_WRITE);
	for (unsigned i = 1; i <= 70; i++)
		tl_signal(&s, HBT_CONN_VM1_A, 2, 10 + 2 * i, i % 3 ? EIO : 0);
	for (unsigned i = 0; i < 4; i++)
		sync_open(&s, HBT_CONN_HOST_A, 2, 1 + 37 * i);
	tl_signal(&s, HBT_CONN_VM1_A, 2, UINT64_MAX, ECANCELED);
	sync_open(&s, HBT_CONN_HOST_A, 2, UINT64_MAX);
	put_scen(&s, "reservations");
}

/* Export and import rules: flags, metadata over the limit, a write import of a read-only
 * buffer, a pending unexport seen by query and control, the pages quota across two pools. */
static void scen_export_rules(void)
{
	static char big[2000];
	struct scen s = {0};
	CLIENT(m, export, CLIENT_MSG__BODY_EXPORT, Export, EXPORT__INIT);

	memset(big, 'b', sizeof(big) - 1);
	hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_HOST_A, 1, 0);
	attach(&s, HBT_CONN_HOST_A, 3, 0);
	hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	alloc(&s, HBT_CONN_HOST_A, 1, 4096, 0);
	m_body.buffer = 1;
	m_body.flags = 1;
	frame(&s, HBT_CONN_HOST_A, &m);
	export(&s, HBT_CONN_HOST_A, 1, big);
	export(&s, HBT_CONN_HOST_A, 1, "ok");
	import(&s, HBT_CONN_VM1_A, 1, HB_IMPORT_WRITE);
	unexport(&s, HBT_CONN_HOST_A, 1, 60000);
	query(&s, HBT_CONN_VM1_A, 1);
	import(&s, HBT_CONN_VM1_A, 1, 0);
	control(&s, HBT_CONN_HOST_A, HBP_CTL_EXPORTS);
	export(&s, HBT_CONN_HOST_A, 1, "again");
	unexport(&s, HBT_CONN_VM1_A, 1, 0);
	alloc(&s, HBT_CONN_HOST_A, 1, 200 * 4096, 0);
	alloc(&s, HBT_CONN_HOST_A, 3, 200 * 4096, 0);
	control(&s, HBT_CONN_HOST_A, HBP_CTL_DOMAINS);
	put_scen(&s, "export-rules");
}

void hbt_gen_daemon(void)
{
	scen_share();
	scen_orphan();
	scen_fences();
	scen_control();
	scen_resync();
	scen_rules();
	scen_quota();
	scen_gone();
	scen_backpressure();
	scen_fd_queued();
	scen_restart();
	scen_gone_fences();
	scen_reservations();
	scen_export_rules();
	hbp_bytes_free(&packed);
}
