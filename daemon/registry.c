/*
 * The export registry: buffers, their export state and hid, imports, delayed unexports, and
 * the rule that pages go back to the pool only when nobody maps them any more.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hyperbufd.h"
#include "protocol/hid.h"
#include "protocol/limits.h"

/* Fibonacci hashing: handles count up from 1, so neighbours must land far apart. */
static struct hbc_list *handle_bucket(struct hbc_list *table, uint64_t handle)
{
	return &table[(handle * 0x9e3779b97f4a7c15ull) >> (64 - HBD_HANDLE_BUCKET_BITS)];
}

void hbd_handles_init(struct hbd *d)
{
	for (size_t i = 0; i < (1u << HBD_HANDLE_BUCKET_BITS); i++) {
		hbc_list_init(&d->buffer_handles[i]);
		hbc_list_init(&d->import_handles[i]);
	}
}

void hbd_buffer_handle_add(struct hbd_buffer *b)
{
	hbc_list_insert_tail(handle_bucket(b->d->buffer_handles, b->mem.handle), &b->handle_link);
}

void hbd_import_handle_add(struct hbd *d, struct hbd_import *im)
{
	hbc_list_insert_tail(handle_bucket(d->import_handles, im->handle), &im->handle_link);
}

struct hbd_buffer *hbd_buffer_by_handle(struct hbd *d, uint64_t handle)
{
	struct hbc_list *bucket = handle_bucket(d->buffer_handles, handle);
	struct hbd_buffer *b;

	hbc_list_for_each_safe(b, bucket, struct hbd_buffer, handle_link)
	{
		if (b->mem.handle == handle)
			return b;
	}
	return NULL;
}

static struct hbc_list *hid_bucket(struct hbd *d, const struct hb_id *hid)
{
	return &d->hids[hbp_hid_hash(hid, HBD_HID_BUCKET_BITS)];
}

struct hbd_buffer *hbd_hid_lookup(struct hbd *d, const struct hb_id *hid)
{
	struct hbd_buffer *b;

	if (!hbp_hid_plausible(hid))
		return NULL;
	hbc_list_for_each_safe(b, hid_bucket(d, hid), struct hbd_buffer, hash_link)
	{
		/* All 128 bits, every time: the random part is what makes hids unguessable. */
		if (memcmp(b->hid.bytes, hid->bytes, sizeof(hid->bytes)) == 0)
			return b;
	}
	return NULL;
}

static void hid_forget(struct hbd_buffer *b)
{
	if (!b->has_hid)
		return;
	hbc_list_remove(&b->hash_link);
	b->has_hid = false;
}

static int hid_assign(struct hbd_buffer *b)
{
	struct hbd *d = b->d;
	int r;

	hid_forget(b);
	/* Imports made under the previous hid keep the pages alive but no longer count as
	 * importers of this one. */
	b->gen++;
	b->gen_importers = 0;
	do {
		if (++d->next_serial == 0 || d->next_serial == UINT32_MAX)
			d->next_serial = 1;
		r = hbp_hid_generate(d->next_serial, &b->hid);
		if (r < 0)
			return r;
	} while (hbd_hid_lookup(d, &b->hid));
	hbc_list_insert_tail(hid_bucket(d, &b->hid), &b->hash_link);
	b->has_hid = true;
	return 0;
}

uint32_t hbd_buffer_info_flags(const struct hbd_buffer *b)
{
	uint32_t f = 0;

	if (b->state == HBD_EXPORT_DONE || b->state == HBD_EXPORT_NONE)
		f |= HB_INFO_UNEXPORTED;
	if (b->state == HBD_EXPORT_PENDING)
		f |= HB_INFO_UNEXPORT_PENDING;
	if (b->mem.flags & HB_BUFFER_PEER_WRITABLE)
		f |= HB_INFO_PEER_WRITABLE;
	return f;
}

const char *hbd_export_state_name(enum hbd_export_state st)
{
	switch (st) {
	case HBD_EXPORT_NONE:
		return "allocated";
	case HBD_EXPORT_LIVE:
		return "exported";
	case HBD_EXPORT_PENDING:
		return "unexport-pending";
	case HBD_EXPORT_DONE:
		return "unexported";
	}
	return "?";
}

int hbd_buffer_alloc(struct hbd_session *s, uint32_t peer, uint64_t size, uint32_t flags,
		     struct hbd_buffer **out)
{
	struct hbd *d = s->d;
	struct hbb_caller who;
	struct hbd_buffer *b;
	uint64_t pages;
	int r;

	if (size == 0 || peer == s->dom->id || (flags & ~HB_BUFFER_PEER_WRITABLE))
		return -EINVAL;
	r = d->backend->can_share(d->backend_state, s->dom->id, peer);
	if (r < 0)
		return r;
	if (size > ((uint64_t)1 << 30) * HBP_PAGE_SIZE)
		return -EFBIG;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->d = d;
	b->mem.exporter = s->dom->id;
	b->mem.peer = peer;
	b->mem.size = size;
	b->mem.flags = flags;
	hbc_list_init(&b->hash_link);
	who = hbd_session_caller(s);
	r = d->backend->alloc(d->backend_state, &who, &b->mem);
	if (r < 0)
		goto err_free;
	/* The quota is checked once the backend has said the size is possible at all, so a
	 * buffer larger than any pool is EFBIG, not EDQUOT. */
	pages = (uint64_t)b->mem.data_pages + b->mem.dir_pages;
	if (s->dom->pages + pages > d->cfg->pages_per_domain) {
		d->backend->release(d->backend_state, &b->mem, false);
		r = -EDQUOT;
		goto err_free;
	}
	b->mem.handle = d->next_handle++;
	b->owner = s;
	b->mem.creator = s->serial;
	s->dom->pages += b->mem.data_pages + b->mem.dir_pages;
	hbc_list_insert_tail(&s->buffers, &b->owner_link);
	hbd_buffer_handle_add(b);
	hbd_state_mark_buffer(b, true);
	log_debug("%s: buffer %llu: %llu bytes for domain %u, %u+%u pages in group %u", s->label,
		  (unsigned long long)b->mem.handle, (unsigned long long)size, peer,
		  b->mem.data_pages, b->mem.dir_pages, b->mem.group);
	*out = b;
	return 0;

err_free:
	free(b);
	return r;
}

struct hbd_buffer *hbd_buffer_find(struct hbd_session *s, uint64_t handle)
{
	struct hbd_buffer *b = hbd_buffer_by_handle(s->d, handle);

	/* Handles are private to the session that allocated the buffer. */
	return b && b->owner == s ? b : NULL;
}

/* Pages go back only when no owner and no import is left. */
static void buffer_reclaim_if_unused(struct hbd_buffer *b)
{
	struct hbd *d = b->d;
	struct hbd_domain *dom;

	if (b->owner || b->importers)
		return;
	hbc_list_remove(&b->owner_link);
	hid_forget(b);
	ev_timer_stop(d->loop, &b->unexport_timer);
	dom = hbd_domain_get(d, b->mem.exporter);
	if (dom)
		dom->pages -= b->mem.data_pages + b->mem.dir_pages;
	hbd_state_forget_buffer(b);
	d->backend->release(d->backend_state, &b->mem, d->stopping);
	log_debug("buffer %llu: pages returned to group %u", (unsigned long long)b->mem.handle,
		  b->mem.group);
	free(b->meta);
	free(b->resv);
	free(b);
}

/* The unexport takes effect: no new imports, the peer hears about it. */
static void unexport_now(struct hbd_buffer *b)
{
	struct hbd *d = b->d;
	struct hbd_domain *dom;

	if (b->state != HBD_EXPORT_LIVE && b->state != HBD_EXPORT_PENDING)
		return;
	ev_timer_stop(d->loop, &b->unexport_timer);
	b->state = HBD_EXPORT_DONE;
	hbd_state_mark_buffer(b, false);
	dom = hbd_domain_get(d, b->mem.exporter);
	if (dom && dom->exports)
		dom->exports--;
	hbd_domain_event(d, b->mem.peer, HB_EVENT_UNEXPORTED, &b->hid, b->mem.exporter, b->mem.size,
			 NULL, 0);
}

static void on_unexport_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hbd_buffer *b = w->data;

	unexport_now(b);
	buffer_reclaim_if_unused(b);
}

void hbd_buffer_arm_unexport(struct hbd_buffer *b, uint32_t delay_ms)
{
	ev_timer_init(&b->unexport_timer, on_unexport_timer, delay_ms / 1000.0, 0.);
	b->unexport_timer.data = b;
	ev_timer_start(b->d->loop, &b->unexport_timer);
}

void hbd_buffer_free(struct hbd_buffer *b)
{
	struct hbd *d = b->d;

	unexport_now(b);
	if (b->owner) {
		hbc_list_remove(&b->owner_link);
		hbc_list_remove(&b->handle_link);
		b->owner = NULL;
		hbc_list_insert_tail(&d->orphans, &b->owner_link);
		hbd_state_mark_buffer(b, false);
	}
	buffer_reclaim_if_unused(b);
}

int hbd_export(struct hbd_buffer *b, const uint8_t *meta, size_t meta_len, struct hb_id *hid)
{
	struct hbd *d = b->d;
	struct hbd_domain *dom = b->owner->dom;
	bool fresh = b->state == HBD_EXPORT_NONE || b->state == HBD_EXPORT_DONE;
	uint8_t *copy = NULL;
	int r;

	/* A grant-based buffer whose pages were never described (no Grant yet). */
	if (!hbp_refdir_described(&b->mem.desc))
		return -EINVAL;
	if (fresh && dom->exports >= d->cfg->exports_per_domain)
		return -EDQUOT;
	if (meta_len) {
		copy = malloc(meta_len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, meta, meta_len);
	}
	if (fresh) {
		r = hid_assign(b);
		if (r < 0) {
			free(copy);
			return r;
		}
		dom->exports++;
		d->stats.exports_total++;
	}
	/* A re-export during the delay cancels the pending unexport. */
	ev_timer_stop(d->loop, &b->unexport_timer);
	b->state = HBD_EXPORT_LIVE;
	free(b->meta);
	b->meta = copy;
	b->meta_len = (uint32_t)meta_len;
	*hid = b->hid;
	hbd_state_mark_buffer(b, false);
	hbd_domain_event(d, b->mem.peer, HB_EVENT_EXPORTED, &b->hid, b->mem.exporter, b->mem.size,
			 b->meta, b->meta_len);
	return 0;
}

bool hbd_export_live_as(const struct hbd_buffer *b, const uint8_t *hid)
{
	return b->has_hid && b->state == HBD_EXPORT_LIVE &&
	       memcmp(b->hid.bytes, hid, sizeof(b->hid.bytes)) == 0;
}

int hbd_unexport(struct hbd_session *s, const struct hb_id *hid, uint32_t delay_ms)
{
	struct hbd_buffer *b = hbd_hid_lookup(s->d, hid);

	if (!b || (b->mem.exporter != s->dom->id && b->mem.peer != s->dom->id))
		return -ENOENT;
	/* Pending or done: the first unexport stands, and asking again is a no-op even once
	 * the buffer was freed (an orphan has no owner to compare with). */
	if (b->mem.exporter == s->dom->id && b->state != HBD_EXPORT_LIVE &&
	    (b->owner == s || !b->owner))
		return 0;
	if (b->owner != s)
		return -EPERM;
	if (delay_ms == 0) {
		unexport_now(b);
		return 0;
	}
	b->state = HBD_EXPORT_PENDING;
	b->unexport_at_ms = hbc_now_ms() + delay_ms;
	hbd_buffer_arm_unexport(b, delay_ms);
	hbd_state_mark_buffer(b, false);
	return 0;
}

/* Whether s may import b: the same rules for an Import and for a hold. */
int hbd_import_check(struct hbd_session *s, struct hbd_buffer *b, bool writable)
{
	struct hbd *d = s->d;

	/* Unknown, forged, withdrawn, or for somebody else: one answer for all of them. */
	if (!b || b->mem.peer != s->dom->id ||
	    (b->state != HBD_EXPORT_LIVE && b->state != HBD_EXPORT_PENDING))
		return -ENOENT;
	if (writable && !(b->mem.flags & HB_BUFFER_PEER_WRITABLE))
		return -EACCES;
	if (b->mem.group && !(s->attached & (1ull << (b->mem.group - 1))))
		return -ENOENT;
	if (s->dom->imports >= d->cfg->imports_per_domain)
		return -EDQUOT;
	if (b->mem.desc.inline_refs && !(s->features & HBP_FEATURE_INLINE_REFS)) {
		hbd_reason(
		    s,
		    "the buffer's %u pages are described inline (PROTOCOL.md §3), which this "
		    "client's library does not announce: update libhyperbuf in %s",
		    b->mem.data_pages, s->dom->name);
		return -EPROTONOSUPPORT;
	}
	if (d->backend->can_import) {
		struct hbb_caller who = hbd_session_caller(s);
		int r = d->backend->can_import(d->backend_state, &who, &b->mem);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A new import of b by s, journaled. A hold (held) keeps the pages like any import, but
 * counts for the exporter (IMPORTED, RELEASED, Query's importers) only once taken. */
struct hbd_import *hbd_import_new(struct hbd_session *s, struct hbd_buffer *b, bool writable,
				  bool held)
{
	struct hbd_import *im = calloc(1, sizeof(*im));

	if (!im)
		return NULL;
	im->handle = s->d->next_handle++;
	im->buf = b;
	im->gen = b->gen;
	im->writable = writable;
	im->held = held;
	im->session = s->serial;
	hbc_list_insert_tail(&s->imports, &im->link);
	hbd_import_handle_add(s->d, im);
	hbd_state_import_new(s, im);
	b->importers++;
	s->dom->imports++;
	if (held)
		s->n_held++;
	else
		hbd_import_counted(s, im);
	return im;
}

/* im counts as an import of its buffer from now on: the exporter hears of it. */
void hbd_import_counted(struct hbd_session *s, struct hbd_import *im)
{
	struct hbd_buffer *b = im->buf;

	s->d->stats.imports_total++;
	s->d->stats.bytes_shared_total += b->mem.size;
	/* A hold taken after the buffer was exported again counts for that hid, which is gone. */
	if (im->gen != b->gen)
		return;
	b->gen_importers++;
	if (b->owner)
		hbd_session_event(b->owner, HB_EVENT_IMPORTED, &b->hid, s->dom->id, b->mem.size,
				  NULL, 0);
}

int hbd_import(struct hbd_session *s, const struct hb_id *hid, uint32_t flags,
	       struct hbd_import **out)
{
	struct hbd_buffer *b = hbd_hid_lookup(s->d, hid);
	bool writable = flags & HB_IMPORT_WRITE;
	int r;

	if (flags & ~HB_IMPORT_WRITE)
		return -EINVAL;
	r = hbd_import_check(s, b, writable);
	if (r < 0)
		return r;
	*out = hbd_import_new(s, b, writable, false);
	return *out ? 0 : -ENOMEM;
}

struct hbd_import *hbd_import_find(struct hbd_session *s, uint64_t handle)
{
	struct hbc_list *bucket = handle_bucket(s->d->import_handles, handle);
	struct hbd_import *im;

	hbc_list_for_each_safe(im, bucket, struct hbd_import, handle_link)
	{
		if (im->handle == handle)
			return im->session == s->serial ? im : NULL;
	}
	return NULL;
}

void hbd_import_release(struct hbd_session *s, struct hbd_import *im)
{
	struct hbd_buffer *b = im->buf;
	/* A hold never counted: its end is nobody's business but ours. */
	bool current = !im->held && im->gen == b->gen;

	hbc_list_remove(&im->link);
	hbc_list_remove(&im->handle_link);
	hbd_state_forget_import(s->d, im);
	s->dom->imports--;
	s->n_held -= im->held;
	b->importers--;
	free(im);
	if (current)
		b->gen_importers--;
	if (current && b->gen_importers == 0 && b->owner && b->has_hid)
		hbd_session_event(b->owner, HB_EVENT_RELEASED, &b->hid, s->dom->id, b->mem.size,
				  NULL, 0);
	buffer_reclaim_if_unused(b);
}
