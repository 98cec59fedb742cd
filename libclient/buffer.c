/* Buffers: allocate, map, free; export, unexport and query the handles they get. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "libclient/client.h"
#include "protocol/resync.h"

/* Gives a buffer handle back to the daemon (which unexports it first if needed). */
static int send_free(struct hb_client *c, uint64_t handle)
{
	Free f = FREE__INIT;
	ClientMsg m = CLIENT_MSG__INIT;

	f.buffer = handle;
	m.body_case = CLIENT_MSG__BODY_FREE;
	m.free = &f;
	return hbl_call_simple(c, &m);
}

HBL_PUBLIC struct hb_buffer *hb_buffer_alloc(struct hb_client *c, uint32_t peer_domain, size_t size,
					     uint32_t flags)
{
	Alloc a = ALLOC__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	struct hb_buffer *b;
	uint64_t handle;
	int r;

	if (!c || size == 0 || (flags & ~HB_BUFFER_PEER_WRITABLE))
		return errno = EINVAL, NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return errno = ENOMEM, NULL;
	b->client = c;
	hbc_list_init(&b->link);

	hbl_lock(c);
	a.peer = peer_domain;
	a.size = size;
	a.flags = flags;
	m.body_case = CLIENT_MSG__BODY_ALLOC;
	m.alloc = &a;
	r = hbl_call(c, &m, SERVER_MSG__BODY_ALLOC, &reply);
	if (r < 0)
		goto err_unlock;
	handle = reply.msg->alloc->buffer;
	/* Local limits (Xen: gntalloc's) after the daemon's: what can never fit is EFBIG and an
	 * unknown peer ENODEV, as on every backend, before a limit of this domain says ENOSPC. */
	r = c->mem.ops->alloc_check ? c->mem.ops->alloc_check(c->mem.state, size) : 0;
	if (r == 0)
		r = c->mem.ops->alloc(c->mem.state, reply.msg->alloc, peer_domain, size, flags,
				      &b->map);
	hbl_reply_free(&reply);
	if (r < 0)
		goto err_free;
	b->handle = handle;
	hbc_list_insert_tail(&c->buffers, &b->link);
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
	struct hbl_memory *mem = &b->client->mem;

	hbc_list_remove(&b->link);
	hbl_dmabufs_close(&b->dmabufs);
	mem->ops->unmap(mem->state, &b->map);
	free(b);
}

HBL_PUBLIC void hb_buffer_free(struct hb_buffer *b)
{
	const struct hbb_guest_ops *ops;
	struct hb_client *c;
	int saved = errno;

	if (!b)
		return;
	c = b->client;
	ops = c->mem.ops;
	hbl_lock(c);
	/* A dma-buf of it that is still held keeps it (docs/DMABUF.md). */
	if (hbl_buffer_linger(b)) {
		hbl_unlock(c);
		errno = saved;
		return;
	}
	/* Free unexports with delay 0 on the daemon's side. Its failure cannot be reported
	 * from here, and a broken client has nobody to tell: either way the mapping goes. Xen:
	 * the grants must outlive every importer's mapping, so the pages wait, parked, for the
	 * daemon's word that nobody maps them (RECLAIMED, which may come right away, ahead of
	 * the reply to Free); nobody is left to send it if the Free fails. */
	if (hbl_conn_broken(&c->conn) == 0) {
		if (ops->park)
			ops->park(c->mem.state, b->handle, &b->map);
		if (send_free(c, b->handle) < 0 && ops->reclaimed)
			ops->reclaimed(c->mem.state, b->handle);
	}
	hbl_buffer_destroy(b);
	hbl_unlock(c);
	errno = saved;
}

/* What an export's metadata must be before it is sent: 0 or -errno (explained). */
static int export_check(struct hb_client *c, const void *meta, size_t meta_len, uint32_t flags)
{
	/* Refused, never truncated: metadata is the producer's message to the consumer. */
	if (meta_len > HB_META_MAX || meta_len > c->meta_max) {
		hbl_explain(c, EMSGSIZE,
			    "hb_export: metadata of %zu bytes is over the %s of %u bytes", meta_len,
			    c->meta_max < HB_META_MAX ? "daemon's meta_max" : "HB_META_MAX",
			    c->meta_max < HB_META_MAX ? c->meta_max : HB_META_MAX);
		return -EMSGSIZE;
	}
	if ((!meta && meta_len > 0) || (flags & ~HB_EXPORT_NOWAIT))
		return -EINVAL;
	/* Both ends of a VM channel restart the stream where they see a resync marker, wherever
	 * it is, and metadata reaches channels in the peer's events and imports: whoever exports,
	 * it must not carry one (PROTOCOL.md §1.1, §8). */
	if (hbp_resync_meta_unsafe(meta, meta_len))
		return -EINVAL;
	return 0;
}

/* The Export request for b (its body lives in e). */
static void export_msg(ClientMsg *m, Export *e, const struct hb_buffer *b, const void *meta,
		       size_t meta_len)
{
	e->buffer = b->handle;
	e->meta.len = meta_len;
	e->meta.data = (uint8_t *)meta;
	m->body_case = CLIENT_MSG__BODY_EXPORT;
	m->export = e;
}

/* b is exported under the hid of reply (the frame codec checked that it is 16 bytes). */
static void export_done(struct hb_buffer *b, const struct hbb_reply *reply, struct hb_id *id)
{
	memcpy(id->bytes, reply->msg->export->hid.data, sizeof(id->bytes));
	b->hid = *id;
	b->exported = true;
	b->export_live = true;
}

/* A channel the daemon keeps across its restart takes what we write even while it is away,
 * and drops it until we resume: what it sent (a restart's marker) is read now, as a blocking
 * call would, so that the resume sends the re-export again without waiting for a later call.
 * A socket's write fails instead, and resumes at once. */
static void read_restart(struct hb_client *c)
{
	struct pollfd pfd = {.fd = c->conn.tp.fd, .events = POLLIN};

	if (!c->conn.channel || !hbl_conn_polls_all(&c->conn) || hbl_conn_broken(&c->conn) < 0)
		return;
	hbl_count(&c->conn.n_polls);
	if (poll(&pfd, 1, 0) > 0)
		hbl_pump(c, HBL_DISPATCH_BATCH);
}

/* Quiet re-exports a client sends before one waits for its answer: the daemon handles what a
 * read brings in one turn, so this bounds the events one producer can put in a peer's queue
 * at once (event_queue is at least 16, 256 by default) to fewer than it holds. */
#define HBL_REEXPORTS_MAX 8u

static unsigned reexports_unanswered(const struct hb_client *c)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->calls.n_posted; i++)
		n += c->calls.posted[i].reexport != 0;
	return n;
}

/*
 * A re-export of b, whose export the daemon keeps under b->hid, sent without waiting
 * (PROTOCOL.md §3 "Re-exports"): nothing the daemon checks can fail but its memory, since
 * export_check ran, only this session can end the export, and no meta_max refuses metadata
 * of HBP_META_MAX_FLOOR bytes. A refusal is logged when it comes, and b's next export asks.
 * -EAGAIN when it must be asked for instead (an older daemon, too many posted, more metadata).
 */
static int export_post(struct hb_client *c, struct hb_buffer *b, const void *meta, size_t meta_len)
{
	Export e = EXPORT__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	int r;

	if (!b->export_live || !(c->features & HBP_FEATURE_QUIET_EXPORT) ||
	    meta_len > HBP_META_MAX_FLOOR || reexports_unanswered(c) >= HBL_REEXPORTS_MAX)
		return -EAGAIN;
	export_msg(&m, &e, b, meta, meta_len);
	e.hid = hbl_wire_hid(&b->hid);
	e.quiet = true;
	r = hbl_post_tagged(c, &m, (struct hbl_posted){.reexport = b->handle});
	if (r == 0)
		read_restart(c);
	return r;
}

void hbl_reexport_refused(struct hb_client *c, uint64_t handle)
{
	struct hb_buffer *b;

	hbc_list_for_each_safe(b, &c->buffers, struct hb_buffer, link)
	{
		if (b->handle == handle)
			b->export_live = false;
	}
}

/* An awaited Query of hid: its answer, whatever it says, tells that every request before it
 * is handled. */
static void settle_query(struct hb_client *c, const struct hb_id *hid)
{
	Query q = QUERY__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;

	q.hid = hbl_wire_hid(hid);
	m.body_case = CLIENT_MSG__BODY_QUERY;
	m.query = &q;
	if (hbl_call(c, &m, SERVER_MSG__BODY_QUERY, &reply) == 0)
		hbl_reply_free(&reply);
}

void hbl_reexports_settle(struct hb_client *c)
{
	const struct hbl_calls *calls = &c->calls;

	if (hbl_conn_broken(&c->conn) < 0)
		return;
	for (unsigned i = calls->n_posted; i-- > 0;) {
		struct hb_buffer *b;

		if (!calls->posted[i].reexport)
			continue;
		hbc_list_for_each_safe(b, &c->buffers, struct hb_buffer, link)
		{
			if (b->handle == calls->posted[i].reexport && b->exported) {
				settle_query(c, &b->hid);
				return;
			}
		}
	}
}

HBL_PUBLIC int hb_export(struct hb_buffer *b, const void *meta, size_t meta_len, uint32_t flags,
			 struct hb_id *id)
{
	Export e = EXPORT__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	struct hb_client *c;
	int r;

	if (!b || !id)
		return hbl_fail(-EINVAL);
	c = b->client;
	r = export_check(c, meta, meta_len, flags);
	if (r < 0)
		return hbl_fail(r);
	hbl_lock(c);
	r = flags & HB_EXPORT_NOWAIT ? export_post(c, b, meta, meta_len) : -EAGAIN;
	if (r == 0) {
		*id = b->hid;
	} else if (r == -EAGAIN) {
		export_msg(&m, &e, b, meta, meta_len);
		r = hbl_call(c, &m, SERVER_MSG__BODY_EXPORT, &reply);
		if (r == 0) {
			export_done(b, &reply, id);
			hbl_reply_free(&reply);
		}
	}
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

/* Requests in flight at once in hb_export_batch: past a few dozen, more gain nothing. */
#define EXPORT_FLIGHT HBL_FLIGHT_MAX

/* One flight of hb_export_batch (n <= EXPORT_FLIGHT items, checked): how many exported. */
static size_t export_flight(struct hb_client *c, struct hb_export_item *items, size_t n)
{
	Export e[EXPORT_FLIGHT];
	ClientMsg m[EXPORT_FLIGHT], *msgs[EXPORT_FLIGHT];
	struct hbl_request qs[EXPORT_FLIGHT];
	struct hb_export_item *sent[EXPORT_FLIGHT];
	int errs[EXPORT_FLIGHT];
	size_t k = 0, done = 0;

	for (size_t i = 0; i < n; i++) {
		struct hb_export_item *it = &items[i];

		it->error = -export_check(c, it->meta, it->meta_len, 0);
		if (it->error)
			continue;
		e[k] = (Export)EXPORT__INIT;
		m[k] = (ClientMsg)CLIENT_MSG__INIT;
		export_msg(&m[k], &e[k], it->buffer, it->meta, it->meta_len);
		msgs[k] = &m[k];
		sent[k++] = it;
	}
	if (k == 0)
		return 0;
	hbl_call_batch(c, msgs, k, SERVER_MSG__BODY_EXPORT, qs, errs);
	for (size_t i = 0; i < k; i++) {
		sent[i]->error = -errs[i];
		if (errs[i] == 0) {
			export_done(sent[i]->buffer, &qs[i].reply, &sent[i]->id);
			hbl_reply_free(&qs[i].reply);
			done++;
		}
	}
	return done;
}

HBL_PUBLIC int hb_export_batch(struct hb_client *c, struct hb_export_item *items, size_t n)
{
	size_t done = 0;
	int r;

	if (!c || (!items && n > 0) || n > INT_MAX)
		return hbl_fail(-EINVAL);
	for (size_t i = 0; i < n; i++) {
		if (!items[i].buffer || items[i].buffer->client != c)
			return hbl_fail(-EINVAL);
		memset(&items[i].id, 0, sizeof(items[i].id));
		items[i].error = 0;
	}
	hbl_lock(c);
	for (size_t at = 0; at < n; at += EXPORT_FLIGHT)
		done +=
		    export_flight(c, items + at, n - at < EXPORT_FLIGHT ? n - at : EXPORT_FLIGHT);
	r = hbl_conn_broken(&c->conn);
	hbl_unlock(c);
	/* The connection's error, once no item got through, is the call's. */
	if (done == 0 && r < 0)
		return hbl_fail(r);
	for (size_t i = 0; i < n && done < n; i++) {
		if (items[i].error) {
			errno = items[i].error; /* the first failure's, for a caller that counts */
			break;
		}
	}
	return (int)done;
}

/* The export of ours under id ends (at once or after a delay): its next export asks. */
static void export_ended(struct hb_client *c, const struct hb_id *id)
{
	struct hb_buffer *b;

	hbc_list_for_each_safe(b, &c->buffers, struct hb_buffer, link)
	{
		if (b->exported && hb_id_equal(&b->hid, id))
			b->export_live = false;
	}
}

HBL_PUBLIC int hb_unexport(struct hb_client *c, const struct hb_id *id, uint32_t delay_ms)
{
	Unexport u = UNEXPORT__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	int r;

	if (!c || !id)
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	export_ended(c, id);
	u.hid = hbl_wire_hid(id);
	u.delay_ms = delay_ms;
	m.body_case = CLIENT_MSG__BODY_UNEXPORT;
	m.unexport = &u;
	r = hbl_call_simple(c, &m);
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

HBL_PUBLIC int hb_query(struct hb_client *c, const struct hb_id *id, struct hb_info *info)
{
	Query q = QUERY__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	const QueryReply *qr;
	int r;

	if (!c || !id || !info)
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	q.hid = hbl_wire_hid(id);
	m.body_case = CLIENT_MSG__BODY_QUERY;
	m.query = &q;
	r = hbl_call(c, &m, SERVER_MSG__BODY_QUERY, &reply);
	if (r < 0)
		goto out;
	qr = reply.msg->query;
	/* The frame codec bounded the metadata by HBP_META_LIMIT == HB_META_MAX. */
	info->exporter = qr->exporter;
	info->peer = qr->peer;
	info->size = qr->size;
	info->pages = qr->pages;
	info->importers = qr->importers;
	info->flags = qr->flags;
	info->meta_len = (uint32_t)qr->meta.len;
	if (qr->meta.len)
		memcpy(info->meta, qr->meta.data, qr->meta.len);
	hbl_reply_free(&reply);
out:
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}
