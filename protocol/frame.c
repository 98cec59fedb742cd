/*
 * Frame codec. Frames are a 4-byte little-endian length and one protobuf-c message; see
 * frame.h and docs/PROTOCOL.md section 1. Everything here runs on bytes a hostile peer chose,
 * so lengths are checked before anything is allocated and unpacked messages are validated
 * for what protobuf itself cannot express.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/frame.h"
#include "protocol/limits.h"

#define HBP_HID_WIRE_LEN 16u

void hbp_bytes_free(struct hbp_bytes *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int hbp_bytes_reserve(struct hbp_bytes *b, size_t n)
{
	size_t need, cap;
	uint8_t *data;

	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX - b->len)
		return -ENOMEM;
	need = b->len + n;
	/* Grow geometrically so a stream of small appends stays linear. */
	cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	data = realloc(b->data, cap);
	if (!data)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

void hbp_bytes_consume(struct hbp_bytes *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

long hbp_frame_peek(const uint8_t *in, size_t len, uint32_t max, const uint8_t **payload)
{
	uint32_t plen;

	if (len < HBP_FRAME_HEADER)
		return 0;
	/* Judge the announced length as soon as it is complete, so a reader never grows its
	 * buffer for a frame it is going to reject anyway. */
	plen = get_le32(in);
	if (plen == 0 || plen > max)
		return -EMSGSIZE;
	if (len - HBP_FRAME_HEADER < plen)
		return 0;
	if (payload)
		*payload = in + HBP_FRAME_HEADER;
	return (long)plen;
}

static int frame_put(struct hbp_bytes *out, const ProtobufCMessage *msg, uint32_t max)
{
	size_t size, packed;
	uint8_t *p;
	int r;

	size = protobuf_c_message_get_packed_size(msg);
	/* A zero-length frame is a violation on the wire (every valid message has a non-zero
	 * id or a body), so refuse to emit one rather than let the peer drop us. */
	if (size == 0 || size > max || size > UINT32_MAX)
		return -EMSGSIZE;
	r = hbp_bytes_reserve(out, HBP_FRAME_HEADER + size);
	if (r < 0)
		return r;
	p = out->data + out->len;
	put_le32(p, (uint32_t)size);
	packed = protobuf_c_message_pack(msg, p + HBP_FRAME_HEADER);
	if (packed != size)
		return -EMSGSIZE; /* cannot happen with a consistent message; leave out untouched */
	out->len += HBP_FRAME_HEADER + size;
	return 0;
}

int hbp_frame_put_client(struct hbp_bytes *out, const ClientMsg *msg, uint32_t max)
{
	return frame_put(out, &msg->base, max);
}

int hbp_frame_put_server(struct hbp_bytes *out, const ServerMsg *msg, uint32_t max)
{
	return frame_put(out, &msg->base, max);
}

/*
 * A hid the message cannot do without (the one a request names, the one an export returns)
 * must be exactly 16 bytes: consumers copy 16 bytes out of it without looking again. Optional
 * ones (events that concern no buffer, control views) are empty or 16 bytes.
 */
static bool hid_required_ok(const ProtobufCBinaryData *b)
{
	return b->len == HBP_HID_WIRE_LEN && b->data;
}

static bool hid_optional_ok(const ProtobufCBinaryData *b)
{
	return b->len == 0 || hid_required_ok(b);
}

/* A resume token: absent, or exactly HBP_TOKEN_LEN bytes. */
static bool token_ok(const ProtobufCBinaryData *b)
{
	return b->len == 0 || (b->len == HBP_TOKEN_LEN && b->data);
}

static bool meta_ok(const ProtobufCBinaryData *b)
{
	return b->len <= HBP_META_LIMIT && (b->len == 0 || b->data);
}

static bool client_valid(const ClientMsg *m)
{
	if (m->id == 0)
		return false;
	switch (m->body_case) {
	case CLIENT_MSG__BODY__NOT_SET:
		/* A body this build does not know unpacks as unset; the daemon answers it with
		 * EOPNOTSUPP instead of dropping the session, so it is not a violation here. */
		return true;
	case CLIENT_MSG__BODY_HELLO:
		return m->hello && token_ok(&m->hello->resume) &&
		       m->hello->n_holds <= HBP_HELLO_HOLDS_MAX;
	case CLIENT_MSG__BODY_ATTACH:
		return m->attach != NULL;
	case CLIENT_MSG__BODY_ALLOC:
		return m->alloc != NULL;
	case CLIENT_MSG__BODY_FREE:
		return m->free != NULL;
	case CLIENT_MSG__BODY_EXPORT:
		/* A quiet export is a re-export: it names the hid it keeps. */
		return m->export && meta_ok(&m->export->meta) && hid_optional_ok(&m->export->hid) &&
		       (!m->export->quiet || m->export->hid.len);
	case CLIENT_MSG__BODY_UNEXPORT:
		return m->unexport && hid_required_ok(&m->unexport->hid);
	case CLIENT_MSG__BODY_IMPORT:
		return m->import && hid_required_ok(&m->import->hid);
	case CLIENT_MSG__BODY_RELEASE:
		return m->release != NULL;
	case CLIENT_MSG__BODY_QUERY:
		return m->query && hid_required_ok(&m->query->hid);
	case CLIENT_MSG__BODY_CONTROL:
		return m->control && m->control->after.len <= HBP_CTL_KEY_MAX;
	case CLIENT_MSG__BODY_TIMELINE_CREATE:
		return m->timeline_create != NULL;
	case CLIENT_MSG__BODY_TIMELINE_SIGNAL:
		return m->timeline_signal != NULL;
	case CLIENT_MSG__BODY_TIMELINE_DESTROY:
		return m->timeline_destroy != NULL;
	case CLIENT_MSG__BODY_SYNC_OPEN:
		return m->sync_open != NULL;
	case CLIENT_MSG__BODY_SYNC_CLOSE:
		return m->sync_close != NULL;
	case CLIENT_MSG__BODY_FENCE_ATTACH:
		return m->fence_attach && hid_required_ok(&m->fence_attach->hid);
	case CLIENT_MSG__BODY_CPU_ACCESS:
		return m->cpu_access && hid_required_ok(&m->cpu_access->hid);
	case CLIENT_MSG__BODY_GRANT:
		return m->grant && m->grant->desc;
	case CLIENT_MSG__BODY_TIMELINE_SHARE:
		return m->timeline_share != NULL;
	case CLIENT_MSG__BODY_WATCH_ARM:
		return m->watch_arm != NULL;
	case CLIENT_MSG__BODY_HOLDS:
		return m->holds != NULL;
	case CLIENT_MSG__BODY_SUBSCRIBE:
		return m->subscribe != NULL;
	default:
		return false;
	}
}

static bool event_valid(const Event *ev)
{
	if (!meta_ok(&ev->meta))
		return false;
	/* A hold comes with EXPORTED only, and with the pages it holds. */
	if ((ev->hold || ev->desc) && (ev->type != 1 || !ev->hold || !ev->desc))
		return false;
	switch (ev->type) {
	case 1: /* HB_EVENT_EXPORTED .. HB_EVENT_RELEASED name a buffer */
	case 2:
	case 3:
	case 4:
		return hid_required_ok(&ev->hid);
	default:
		return hid_optional_ok(&ev->hid);
	}
}

/* A string a peer sent, at most max bytes (protobuf-c gives "" for an absent one). */
static bool text_ok(const char *s, size_t max)
{
	return s && strnlen(s, max + 1) <= max;
}

static bool control_valid(const ControlReply *c)
{
	size_t i;

	if (c->next.len > HBP_CTL_KEY_MAX)
		return false;
	for (i = 0; i < c->n_limits; i++)
		if (!c->limits[i])
			return false;

	for (i = 0; i < c->n_timelines; i++)
		if (!c->timelines[i])
			return false;

	for (i = 0; i < c->n_exports; i++)
		if (!c->exports[i] || !hid_optional_ok(&c->exports[i]->hid))
			return false;
	for (i = 0; i < c->n_imports; i++)
		if (!c->imports[i] || !hid_optional_ok(&c->imports[i]->hid))
			return false;
	return true;
}

static bool ctl_event_valid(const CtlEvent *e)
{
	return text_ok(e->what, HBP_CTL_WHAT_MAX) && text_ok(e->detail, HBP_CTL_DETAIL_MAX) &&
	       text_ok(e->session, HBP_CTL_DETAIL_MAX) && hid_optional_ok(&e->hid);
}

/* A status as the protocol carries it: 1 (signalled) or a negative errno; 0 (pending) only
 * where allow_pending says so. */
static bool status_ok(int32_t st, bool allow_pending)
{
	return st == 1 || (st < 0 && st > -(int32_t)HBP_ERRNO_LIMIT) || (allow_pending && st == 0);
}

static bool cpu_access_valid(const CpuAccessReply *r)
{
	if (r->n_fences > HBP_RESV_LIMIT)
		return false;
	for (size_t i = 0; i < r->n_fences; i++)
		if (!r->fences[i] || r->fences[i]->timeline == 0)
			return false;
	return true;
}

/* A slot of a group's page 0, with a generation: the library indexes page 0 with it. */
static bool slot_ok(const FenceSlot *s)
{
	return s->group >= 1 && s->group <= HBP_MAX_GROUPS && s->index >= 1 &&
	       s->index <= HBP_SLOTS && s->gen != 0;
}

static bool server_valid(const ServerMsg *m)
{
	bool unsolicited = m->body_case == SERVER_MSG__BODY_EVENT ||
			   m->body_case == SERVER_MSG__BODY_FENCE ||
			   m->body_case == SERVER_MSG__BODY_TIMELINE_VALUE ||
			   m->body_case == SERVER_MSG__BODY_TIMELINE_SLOT ||
			   m->body_case == SERVER_MSG__BODY_TIMELINE_LAZY ||
			   m->body_case == SERVER_MSG__BODY_CTL_EVENT;
	/* The one frame of a connection the daemon refuses: id 0, an error and nothing else. */
	bool refusal = m->id == 0 && m->body_case == SERVER_MSG__BODY__NOT_SET && m->error != 0;

	/* Words come only with an error, and never too many. */
	if (!text_ok(m->reason, HBP_REASON_MAX) || (m->reason[0] && m->error == 0))
		return false;
	if (refusal)
		return m->error < HBP_ERRNO_LIMIT;
	/* id 0 is reserved for events and fence completions, which never answer a request. */
	if ((m->id == 0) != unsolicited)
		return false;
	/* An error reply carries nothing but the error. */
	if (m->error != 0 && m->body_case != SERVER_MSG__BODY__NOT_SET)
		return false;
	switch (m->body_case) {
	case SERVER_MSG__BODY__NOT_SET:
		return true; /* the empty reply of Attach, Free, Unexport, Release, and errors */
	case SERVER_MSG__BODY_WELCOME:
		return m->welcome && token_ok(&m->welcome->token);
	case SERVER_MSG__BODY_ALLOC:
		return m->alloc && m->alloc->desc;
	case SERVER_MSG__BODY_EXPORT:
		return m->export && hid_required_ok(&m->export->hid);
	case SERVER_MSG__BODY_IMPORT:
		return m->import && m->import->desc && meta_ok(&m->import->meta);
	case SERVER_MSG__BODY_QUERY:
		return m->query && meta_ok(&m->query->meta);
	case SERVER_MSG__BODY_EVENT:
		return m->event && event_valid(m->event);
	case SERVER_MSG__BODY_CONTROL:
		return m->control && control_valid(m->control);
	case SERVER_MSG__BODY_TIMELINE:
		return m->timeline && m->timeline->timeline != 0;
	case SERVER_MSG__BODY_SYNC:
		/* Pending exactly when there is a wait to complete later, or a watch (which
		 * may also come with a point born complete). */
		return m->sync && status_ok(m->sync->status, true) &&
		       !(m->sync->watched && m->sync->wait != 0) &&
		       (!m->sync->slot || (m->sync->watched && slot_ok(m->sync->slot))) &&
		       (m->sync->wait != 0 ? m->sync->status == 0
					   : m->sync->watched || m->sync->status != 0);
	case SERVER_MSG__BODY_CPU_ACCESS:
		return m->cpu_access && cpu_access_valid(m->cpu_access);
	case SERVER_MSG__BODY_FENCE:
		return m->fence && m->fence->wait != 0 && m->fence->timeline != 0 &&
		       status_ok(m->fence->status, false);
	case SERVER_MSG__BODY_TIMELINE_VALUE:
		/* It moves forward, and says how the points it passed ended. */
		return m->timeline_value && m->timeline_value->timeline != 0 &&
		       (m->timeline_value->value > m->timeline_value->from ||
			m->timeline_value->ended) &&
		       status_ok(m->timeline_value->status, false);
	case SERVER_MSG__BODY_TIMELINE_SLOT:
		return m->timeline_slot && m->timeline_slot->timeline != 0 &&
		       m->timeline_slot->slot && slot_ok(m->timeline_slot->slot);
	case SERVER_MSG__BODY_TIMELINE_LAZY:
		return m->timeline_lazy && m->timeline_lazy->timeline != 0;
	case SERVER_MSG__BODY_CTL_EVENT:
		return m->ctl_event && ctl_event_valid(m->ctl_event);
	default:
		return false;
	}
}

ClientMsg *hbp_frame_get_client(const uint8_t *payload, size_t len)
{
	ClientMsg *m;

	if (!payload || len == 0 || len > HBP_FRAME_MAX)
		return NULL;
	m = client_msg__unpack(NULL, len, payload);
	if (!m)
		return NULL;
	if (!client_valid(m)) {
		client_msg__free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

ServerMsg *hbp_frame_get_server(const uint8_t *payload, size_t len)
{
	ServerMsg *m;

	if (!payload || len == 0 || len > HBP_FRAME_MAX)
		return NULL;
	m = server_msg__unpack(NULL, len, payload);
	if (!m)
		return NULL;
	if (!server_valid(m)) {
		server_msg__free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

/* The oneof's field for a body case is the field with that number; its message type has the
 * name. Read from protoc-c's descriptors, so a new message is named without a table here. */
static const char *body_name(const ProtobufCMessageDescriptor *desc, int body_case)
{
	const ProtobufCFieldDescriptor *f;

	if (body_case == 0)
		return "(none)";
	f = protobuf_c_message_descriptor_get_field(desc, (unsigned)body_case);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || !f->descriptor)
		return "?";
	return ((const ProtobufCMessageDescriptor *)f->descriptor)->short_name;
}

const char *hbp_client_body_name(int body_case)
{
	return body_name(&client_msg__descriptor, body_case);
}

const char *hbp_server_body_name(int body_case)
{
	return body_name(&server_msg__descriptor, body_case);
}

bool hbp_request_quiet(const ClientMsg *msg)
{
	return (msg->body_case == CLIENT_MSG__BODY_EXPORT && msg->export->quiet) ||
	       (msg->body_case == CLIENT_MSG__BODY_TIMELINE_SIGNAL &&
		msg->timeline_signal->quiet) ||
	       (msg->body_case == CLIENT_MSG__BODY_IMPORT && msg->import->hold &&
		msg->import->quiet) ||
	       (msg->body_case == CLIENT_MSG__BODY_WATCH_ARM && msg->watch_arm->quiet);
}
