/* Buffers: allocate, map, free; export, unexport and query the handles they get. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/xen/client.h"
#include "libclient/private.h"
#include "protocol/resync.h"

static void link_buffer(struct hb_client *c, struct hb_buffer *b)
{
	b->prev = NULL;
	b->next = c->buffers;
	if (c->buffers)
		c->buffers->prev = b;
	c->buffers = b;
}

static void unlink_buffer(struct hb_client *c, struct hb_buffer *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		c->buffers = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->prev = b->next = NULL;
}

static ProtobufCBinaryData wire_hid(const struct hb_id *id)
{
	return (ProtobufCBinaryData){.len = sizeof(id->bytes), .data = (uint8_t *)id->bytes};
}

/* Gives a buffer handle back to the daemon (which unexports it first if needed). */
static int send_free(struct hb_client *c, uint64_t handle)
{
	Free f = FREE__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbl_reply reply;
	int r;

	f.buffer = handle;
	m.body_case = CLIENT_MSG__BODY_FREE;
	m.free = &f;
	r = hbl_call(c, &m, SERVER_MSG__BODY__NOT_SET, &reply);
	if (r == 0)
		hbl_reply_free(&reply);
	return r;
}

HBL_PUBLIC struct hb_buffer *hb_buffer_alloc(struct hb_client *c, uint32_t peer_domain, size_t size,
					    uint32_t flags)
{
	Alloc a = ALLOC__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbl_reply reply;
	struct hb_buffer *b;
	uint64_t handle;
	int r;

	if (!c || size == 0 || (flags & ~HB_BUFFER_PEER_WRITABLE))
		return errno = EINVAL, NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return errno = ENOMEM, NULL;
	b->client = c;

	hbl_lock(c);
	/* Xen: local limits first, so a buffer that cannot be granted costs no round trip. */
	if (c->grants) {
		r = hbx_alloc_check(c, size);
		if (r < 0)
			goto err_unlock;
	}
	a.peer = peer_domain;
	a.size = size;
	a.flags = flags;
	m.body_case = CLIENT_MSG__BODY_ALLOC;
	m.alloc = &a;
	r = hbl_call(c, &m, SERVER_MSG__BODY_ALLOC, &reply);
	if (r < 0)
		goto err_unlock;
	handle = reply.msg->alloc->buffer;
	if (c->grants) {
		/* The daemon reserved it; the pages are ours to allocate, grant and describe. */
		hbl_reply_free(&reply);
		r = hbx_buffer_make(c, handle, peer_domain, size, flags, &b->map);
	} else {
		/* Exactly the size asked for, or the daemon and we disagree about the buffer. */
		if (!reply.msg->alloc->desc || reply.msg->alloc->desc->size != size)
			r = -EPROTO;
		else
			r = hbl_map_desc(c, reply.msg->alloc->desc, true, &b->map);
		hbl_reply_free(&reply);
	}
	if (r < 0)
		goto err_free;
	b->handle = handle;
	link_buffer(c, b);
	hbl_unlock(c);
	return b;

err_free:
	/* Don't leave the daemon holding pages nobody can reach. */
	send_free(c, handle);
err_unlock:
	hbl_unlock(c);
	free(b);
	errno = -r;
	return NULL;
}

HBL_PUBLIC void *hb_buffer_data(struct hb_buffer *b)
{
	if (!b)
		return errno = EINVAL, NULL;
	return b->map.data;
}

HBL_PUBLIC size_t hb_buffer_size(const struct hb_buffer *b)
{
	if (!b) {
		errno = EINVAL;
		return 0;
	}
	return b->map.size;
}

void hbl_buffer_destroy(struct hb_buffer *b)
{
	unlink_buffer(b->client, b);
	hbl_unmap(&b->map);
	free(b);
}

HBL_PUBLIC void hb_buffer_free(struct hb_buffer *b)
{
	struct hb_client *c;
	int saved = errno;

	if (!b)
		return;
	c = b->client;
	hbl_lock(c);
	/* Xen: the grants must outlive every importer's mapping, so the pages wait, parked,
	 * for the daemon's word that nobody maps them (RECLAIMED, which may come right away,
	 * ahead of the reply to Free). */
	if (b->map.xen.kind == HBX_MAP_EXPORT && hbl_broken(c) == 0) {
		hbx_buffer_park(c, b->handle, &b->map);
		if (send_free(c, b->handle) < 0)
			hbx_reclaimed(c, b->handle); /* nobody left to wait for */
		hbl_buffer_destroy(b);
		hbl_unlock(c);
		errno = saved;
		return;
	}
	/* Free unexports with delay 0 on the daemon's side. Its failure cannot be reported
	 * from here, and a broken client has nobody to tell: either way the mapping goes. */
	if (hbl_broken(c) == 0)
		send_free(c, b->handle);
	hbl_buffer_destroy(b);
	hbl_unlock(c);
	errno = saved;
}

HBL_PUBLIC int hb_export(struct hb_buffer *b, const void *meta, size_t meta_len, uint32_t flags,
			struct hb_id *id)
{
	Export e = EXPORT__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbl_reply reply;
	struct hb_client *c;
	int r;

	if (!b || !id)
		return hbl_fail(-EINVAL);
	c = b->client;
	/* Refused, never truncated: metadata is the producer's message to the consumer. */
	if (meta_len > HB_META_MAX || meta_len > c->meta_max)
		return hbl_fail(-EMSGSIZE);
	if ((!meta && meta_len > 0) || flags != 0)
		return hbl_fail(-EINVAL);
	/* A VM channel's daemon restarts the session where it sees a resync marker, wherever
	 * it is: metadata must not put one on the wire (PROTOCOL.md §1.1). */
	if ((c->vm || c->port) && hbp_resync_meta_unsafe(meta, meta_len))
		return hbl_fail(-EINVAL);

	hbl_lock(c);
	e.buffer = b->handle;
	e.meta.len = meta_len;
	e.meta.data = (uint8_t *)meta;
	e.flags = flags;
	m.body_case = CLIENT_MSG__BODY_EXPORT;
	m.export = &e;
	r = hbl_call(c, &m, SERVER_MSG__BODY_EXPORT, &reply);
	if (r < 0)
		goto out;
	if (reply.msg->export->hid.len != sizeof(id->bytes)) {
		r = hbl_break(c, EPROTO);
	} else {
		memcpy(id->bytes, reply.msg->export->hid.data, sizeof(id->bytes));
		b->hid = *id;
		b->exported = true;
	}
	hbl_reply_free(&reply);
out:
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

HBL_PUBLIC int hb_unexport(struct hb_client *c, const struct hb_id *id, uint32_t delay_ms)
{
	Unexport u = UNEXPORT__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbl_reply reply;
	int r;

	if (!c || !id)
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	u.hid = wire_hid(id);
	u.delay_ms = delay_ms;
	m.body_case = CLIENT_MSG__BODY_UNEXPORT;
	m.unexport = &u;
	r = hbl_call(c, &m, SERVER_MSG__BODY__NOT_SET, &reply);
	if (r == 0)
		hbl_reply_free(&reply);
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

HBL_PUBLIC int hb_query(struct hb_client *c, const struct hb_id *id, struct hb_info *info)
{
	Query q = QUERY__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbl_reply reply;
	const QueryReply *qr;
	int r;

	if (!c || !id || !info)
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	q.hid = wire_hid(id);
	m.body_case = CLIENT_MSG__BODY_QUERY;
	m.query = &q;
	r = hbl_call(c, &m, SERVER_MSG__BODY_QUERY, &reply);
	if (r < 0)
		goto out;
	qr = reply.msg->query;
	if (qr->meta.len > HB_META_MAX) {
		r = hbl_break(c, EPROTO);
	} else {
		info->exporter = qr->exporter;
		info->peer = qr->peer;
		info->size = qr->size;
		info->pages = qr->pages;
		info->importers = qr->importers;
		info->flags = qr->flags;
		info->meta_len = (uint32_t)qr->meta.len;
		if (qr->meta.len)
			memcpy(info->meta, qr->meta.data, qr->meta.len);
	}
	hbl_reply_free(&reply);
out:
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}
