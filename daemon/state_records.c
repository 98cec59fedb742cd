/*
 * The records of the restart state (daemon/state.proto), each an object of the daemon written
 * whole into the journal's open transaction. 0 or a negative errno.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/hyperbufd.h"
#include "daemon/journal.h"
#include "daemon/state.h"
#include "protocol/desc.h"

static int put(struct hbd_journal *j, const StRecord *rec)
{
	size_t len = st_record__get_packed_size(rec);
	uint8_t small[512], *buf = len <= sizeof(small) ? small : malloc(len);
	int r;

	if (!buf)
		return -ENOMEM;
	st_record__pack(rec, buf);
	r = hbd_journal_put(j, buf, len);
	if (buf != small)
		free(buf);
	return r;
}

int hbd_st_put_counters(struct hbd_journal *j, const struct hbd *d)
{
	StRecord rec = ST_RECORD__INIT;
	StCounters m = ST_COUNTERS__INIT;

	m.next_handle = d->next_handle;
	m.next_session = d->next_session + 1;
	m.next_serial = d->next_serial;
	m.next_event = d->next_event + 1;
	rec.body_case = ST_RECORD__BODY_COUNTERS;
	rec.counters = &m;
	return put(j, &rec);
}

int hbd_st_put_session(struct hbd_journal *j, const struct hbd_session *s)
{
	StRecord rec = ST_RECORD__INIT;
	StSession m = ST_SESSION__INIT;

	m.serial = s->serial;
	m.domain = s->dom->id;
	m.door = s->door;
	m.uid = (uint32_t)s->uid;
	m.token = (ProtobufCBinaryData){HBP_TOKEN_LEN, (uint8_t *)s->token};
	m.attached = s->attached;
	m.last_request = s->last_request;
	m.last_reply = (ProtobufCBinaryData){s->last_reply.len, s->last_reply.data};
	m.reply_fd_group = s->reply_fd_group;
	m.holds = s->holds_on;
	rec.body_case = ST_RECORD__BODY_SESSION;
	rec.session = &m;
	return put(j, &rec);
}

int hbd_st_put_placement(struct hbd_journal *j, const struct hbd_buffer *b)
{
	StRecord rec = ST_RECORD__INIT;
	StBuffer m = ST_BUFFER__INIT;
	BufferDesc desc = BUFFER_DESC__INIT;

	m.handle = b->mem.handle;
	m.creator = b->mem.creator;
	m.exporter = b->mem.exporter;
	m.peer = b->mem.peer;
	m.size = b->mem.size;
	m.flags = b->mem.flags;
	m.group = b->mem.group;
	m.refs = b->mem.refs;
	m.n_refs = b->mem.refs ? (size_t)b->mem.data_pages + b->mem.dir_pages : 0;
	m.data_pages = b->mem.data_pages;
	m.dir_pages = b->mem.dir_pages;
	if (hbp_refdir_described(&b->mem.desc)) {
		hbp_desc_from_refdir(&desc, &b->mem.desc, b->mem.group);
		m.desc = &desc;
	}
	rec.body_case = ST_RECORD__BODY_BUFFER;
	rec.buffer = &m;
	return put(j, &rec);
}

int hbd_st_put_buffer_state(struct hbd_journal *j, const struct hbd_buffer *b)
{
	StRecord rec = ST_RECORD__INIT;
	StBufferState m = ST_BUFFER_STATE__INIT;
	StResv resv[HBP_RESV_LIMIT], *pv[HBP_RESV_LIMIT];

	m.handle = b->mem.handle;
	m.owner = b->owner ? b->owner->serial : 0;
	m.state = b->state;
	if (b->has_hid)
		m.hid = (ProtobufCBinaryData){sizeof(b->hid.bytes), (uint8_t *)b->hid.bytes};
	m.meta = (ProtobufCBinaryData){b->meta_len, b->meta};
	m.gen = b->gen;
	m.unexport_at_ms = b->state == HBD_EXPORT_PENDING ? b->unexport_at_ms : 0;
	for (unsigned i = 0; i < b->n_resv; i++) {
		st_resv__init(&resv[i]);
		resv[i].timeline = b->resv[i].timeline;
		resv[i].value = b->resv[i].value;
		resv[i].usage = b->resv[i].usage;
		pv[i] = &resv[i];
	}
	m.resv = pv;
	m.n_resv = b->n_resv;
	rec.body_case = ST_RECORD__BODY_BUFFER_STATE;
	rec.buffer_state = &m;
	return put(j, &rec);
}

int hbd_st_put_import(struct hbd_journal *j, const struct hbd_session *s,
		      const struct hbd_import *im)
{
	StRecord rec = ST_RECORD__INIT;
	StImport m = ST_IMPORT__INIT;

	m.handle = im->handle;
	m.session = s->serial;
	m.buffer = im->buf->mem.handle;
	m.gen = im->gen;
	m.writable = im->writable;
	m.held = im->held;
	rec.body_case = ST_RECORD__BODY_IMPORT;
	rec.import = &m;
	return put(j, &rec);
}

int hbd_st_put_timeline(struct hbd_journal *j, const struct hbd_timeline *tl)
{
	StRecord rec = ST_RECORD__INIT;
	StTimeline m = ST_TIMELINE__INIT;
	StFail fails[HBD_FAIL_RANGES], *pv[HBD_FAIL_RANGES];

	m.id = tl->id;
	m.owner = tl->owner->serial;
	m.value = tl->value;
	for (unsigned i = 0; i < tl->n_fails; i++) {
		st_fail__init(&fails[i]);
		fails[i].lo = tl->fails[i].lo;
		fails[i].hi = tl->fails[i].hi;
		fails[i].err = tl->fails[i].err;
		pv[i] = &fails[i];
	}
	m.fails = pv;
	m.n_fails = tl->n_fails;
	m.seen_by = tl->seen_by;
	m.n_seen_by = tl->n_seen_by;
	rec.body_case = ST_RECORD__BODY_TIMELINE;
	rec.timeline = &m;
	return put(j, &rec);
}

int hbd_st_put_event(struct hbd_journal *j, const struct hbd_session *s, const struct hbd_event *ev)
{
	StRecord rec = ST_RECORD__INIT;
	StEvent m = ST_EVENT__INIT;

	m.key = ev->st_key;
	m.session = s->serial;
	m.type = ev->type;
	if (ev->has_hid)
		m.hid = (ProtobufCBinaryData){sizeof(ev->hid.bytes), (uint8_t *)ev->hid.bytes};
	m.domain = ev->domain;
	m.size = ev->size;
	m.meta = (ProtobufCBinaryData){ev->meta_len, (uint8_t *)ev->meta};
	rec.body_case = ST_RECORD__BODY_EVENT;
	rec.event = &m;
	return put(j, &rec);
}

int hbd_st_put_backend(struct hbd_journal *j, uint64_t key, const void *data, size_t len)
{
	StRecord rec = ST_RECORD__INIT;
	StBackend m = ST_BACKEND__INIT;

	m.key = key;
	m.data = (ProtobufCBinaryData){len, (uint8_t *)data};
	rec.body_case = ST_RECORD__BODY_BACKEND;
	rec.backend = &m;
	return put(j, &rec);
}

int hbd_st_put_drop(struct hbd_journal *j, enum hbd_st_kind kind, uint64_t key)
{
	StRecord rec = ST_RECORD__INIT;
	StDrop m = ST_DROP__INIT;

	m.kind = kind;
	m.key = key;
	rec.body_case = ST_RECORD__BODY_DROP;
	rec.drop = &m;
	return put(j, &rec);
}
