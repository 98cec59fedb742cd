/*
 * The requests of the fuzz_daemon seeds (tests/fuzz/gen_corpus.h): one function per ClientMsg
 * body, written as a record of an input (tests/fuzz/formats.h) with the connection's next
 * request id. The first frame of each body is also a fuzz_frame seed.
 */
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

void hbt_frame(struct hbt_scen *s, unsigned conn, ClientMsg *m)
{
	size_t len;
	uint8_t *payload;

	m->id = ++s->id[conn];
	frame_seed(m);
	len = client_msg__get_packed_size(m);
	payload = malloc(len);
	if (!payload)
		exit(1);
	client_msg__pack(m, payload);
	hbt_append_u8(&s->b, (uint8_t)(HBT_OP_FRAME | conn));
	hbt_append_u16(&s->b, (uint16_t)len);
	hbt_append(&s->b, payload, len);
	free(payload);
}

void hbt_raw(struct hbt_scen *s, unsigned conn, const void *data, size_t len)
{
	hbt_append_u8(&s->b, (uint8_t)(HBT_OP_RAW | conn));
	hbt_append_u16(&s->b, (uint16_t)len);
	hbt_append(&s->b, data, len);
}

void hbt_hello(struct hbt_scen *s, unsigned conn, uint32_t role)
{
	hbt_hello_features(s, conn, role, 0);
}

void hbt_hello_features(struct hbt_scen *s, unsigned conn, uint32_t role, uint32_t features)
{
	CLIENT(m, hello, CLIENT_MSG__BODY_HELLO, Hello, HELLO__INIT);
	m_body.version = HBP_PROTOCOL_VERSION;
	m_body.role = role;
	m_body.features = features;
	hbt_frame(s, conn, &m);
}

void hbt_attach(struct hbt_scen *s, unsigned conn, uint32_t group, uint32_t peer)
{
	CLIENT(m, attach, CLIENT_MSG__BODY_ATTACH, Attach, ATTACH__INIT);
	m_body.group = group;
	m_body.ivshmem_peer = peer;
	hbt_frame(s, conn, &m);
}

void hbt_alloc(struct hbt_scen *s, unsigned conn, uint32_t peer, uint64_t size, uint32_t flags)
{
	CLIENT(m, alloc, CLIENT_MSG__BODY_ALLOC, Alloc, ALLOC__INIT);
	m_body.peer = peer;
	m_body.size = size;
	m_body.flags = flags;
	hbt_frame(s, conn, &m);
}

void hbt_free_buf(struct hbt_scen *s, unsigned conn, uint64_t buffer)
{
	CLIENT(m, free, CLIENT_MSG__BODY_FREE, Free, FREE__INIT);
	m_body.buffer = buffer;
	hbt_frame(s, conn, &m);
}

void hbt_export(struct hbt_scen *s, unsigned conn, uint64_t buffer, const char *meta)
{
	CLIENT(m, export, CLIENT_MSG__BODY_EXPORT, Export, EXPORT__INIT);
	m_body.buffer = buffer;
	m_body.meta = (ProtobufCBinaryData){strlen(meta), (uint8_t *)meta};
	hbt_frame(s, conn, &m);
}

void hbt_unexport(struct hbt_scen *s, unsigned conn, unsigned hid, uint32_t delay_ms)
{
	CLIENT(m, unexport, CLIENT_MSG__BODY_UNEXPORT, Unexport, UNEXPORT__INIT);
	m_body.hid = hid_of(hid);
	m_body.delay_ms = delay_ms;
	hbt_frame(s, conn, &m);
}

void hbt_import(struct hbt_scen *s, unsigned conn, unsigned hid, uint32_t flags)
{
	CLIENT(m, import, CLIENT_MSG__BODY_IMPORT, Import, IMPORT__INIT);
	m_body.hid = hid_of(hid);
	m_body.flags = flags;
	hbt_frame(s, conn, &m);
}

void hbt_release(struct hbt_scen *s, unsigned conn, uint64_t handle)
{
	CLIENT(m, release, CLIENT_MSG__BODY_RELEASE, Release, RELEASE__INIT);
	m_body.import = handle;
	hbt_frame(s, conn, &m);
}

void hbt_query(struct hbt_scen *s, unsigned conn, unsigned hid)
{
	CLIENT(m, query, CLIENT_MSG__BODY_QUERY, Query, QUERY__INIT);
	m_body.hid = hid_of(hid);
	hbt_frame(s, conn, &m);
}

void hbt_control(struct hbt_scen *s, unsigned conn, uint32_t what)
{
	CLIENT(m, control, CLIENT_MSG__BODY_CONTROL, Control, CONTROL__INIT);
	m_body.what = what;
	hbt_frame(s, conn, &m);
}

void hbt_tl_create(struct hbt_scen *s, unsigned conn)
{
	CLIENT(m, timeline_create, CLIENT_MSG__BODY_TIMELINE_CREATE, TimelineCreate,
	       TIMELINE_CREATE__INIT);
	hbt_frame(s, conn, &m);
}

void hbt_tl_signal(struct hbt_scen *s, unsigned conn, unsigned tl, uint64_t value, uint32_t err)
{
	CLIENT(m, timeline_signal, CLIENT_MSG__BODY_TIMELINE_SIGNAL, TimelineSignal,
	       TIMELINE_SIGNAL__INIT);
	m_body.timeline = timeline_of(tl);
	m_body.value = value;
	m_body.error = err;
	hbt_frame(s, conn, &m);
}

void hbt_tl_destroy(struct hbt_scen *s, unsigned conn, unsigned tl)
{
	CLIENT(m, timeline_destroy, CLIENT_MSG__BODY_TIMELINE_DESTROY, TimelineDestroy,
	       TIMELINE_DESTROY__INIT);
	m_body.timeline = timeline_of(tl);
	hbt_frame(s, conn, &m);
}

void hbt_sync_open(struct hbt_scen *s, unsigned conn, unsigned tl, uint64_t value)
{
	CLIENT(m, sync_open, CLIENT_MSG__BODY_SYNC_OPEN, SyncOpen, SYNC_OPEN__INIT);
	m_body.timeline = timeline_of(tl);
	m_body.value = value;
	hbt_frame(s, conn, &m);
}

void hbt_sync_close(struct hbt_scen *s, unsigned conn, uint64_t wait)
{
	CLIENT(m, sync_close, CLIENT_MSG__BODY_SYNC_CLOSE, SyncClose, SYNC_CLOSE__INIT);
	m_body.wait = wait;
	hbt_frame(s, conn, &m);
}

void hbt_fence_attach(struct hbt_scen *s, unsigned conn, unsigned hid, unsigned tl, uint64_t value,
		      uint32_t usage)
{
	CLIENT(m, fence_attach, CLIENT_MSG__BODY_FENCE_ATTACH, FenceAttach, FENCE_ATTACH__INIT);
	m_body.hid = hid_of(hid);
	m_body.timeline = timeline_of(tl);
	m_body.value = value;
	m_body.usage = usage;
	hbt_frame(s, conn, &m);
}

void hbt_cpu_access(struct hbt_scen *s, unsigned conn, unsigned hid, uint32_t access)
{
	CLIENT(m, cpu_access, CLIENT_MSG__BODY_CPU_ACCESS, CpuAccess, CPU_ACCESS__INIT);
	m_body.hid = hid_of(hid);
	m_body.access = access;
	hbt_frame(s, conn, &m);
}

void hbt_grant(struct hbt_scen *s, unsigned conn, uint64_t buffer)
{
	BufferDesc desc = BUFFER_DESC__INIT;
	CLIENT(m, grant, CLIENT_MSG__BODY_GRANT, Grant, GRANT__INIT);
	desc.root_ref = 8;
	desc.depth = 1;
	desc.pages = 1;
	desc.size = 4096;
	m_body.buffer = buffer;
	m_body.desc = &desc;
	hbt_frame(s, conn, &m);
}

void hbt_op(struct hbt_scen *s, uint8_t o)
{
	hbt_append_u8(&s->b, o);
}

void hbt_marker(struct hbt_scen *s, unsigned conn, uint32_t version, uint8_t nonce)
{
	struct hbp_resync m = {.version = version};
	uint8_t out[HBP_RESYNC_LEN];

	memset(m.nonce, nonce, sizeof(m.nonce));
	hbp_resync_pack(out, &m);
	hbt_raw(s, conn, out, sizeof(out));
}

void hbt_put_scen(struct hbt_scen *s, const char *name)
{
	hbt_put_file("daemon", name, s->b.data, s->b.len);
	hbp_bytes_free(&s->b);
	memset(s, 0, sizeof(*s));
}
