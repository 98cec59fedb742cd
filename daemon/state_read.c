/*
 * Reading a state journal (see state.h): replay every committed record into the last version
 * of each object, then check the objects against each other. Nothing here trusts the bytes:
 * a bad record, a drop of something that does not exist, a dangling reference, an impossible
 * value, and the whole state is refused with the reason.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/hyperbufd.h"
#include "daemon/journal.h"
#include "daemon/state.h"
#include "protocol/desc.h"

/* ---- the key tables ---------------------------------------------------------------------- */

static size_t slot_of(const struct hbd_st_map *m, uint64_t key)
{
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & (m->cap - 1);

	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int map_grow(struct hbd_st_map *m)
{
	struct hbd_st_map bigger = {.cap = m->cap ? m->cap * 2 : 64};

	bigger.keys = calloc(bigger.cap, sizeof(*bigger.keys));
	bigger.vals = calloc(bigger.cap, sizeof(*bigger.vals));
	if (!bigger.keys || !bigger.vals) {
		free(bigger.keys);
		free(bigger.vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = slot_of(&bigger, m->keys[i]);

		bigger.keys[j] = m->keys[i];
		bigger.vals[j] = m->vals[i];
	}
	bigger.n = m->n;
	free(m->keys);
	free(m->vals);
	*m = bigger;
	return 0;
}

static StRecord *map_get(const struct hbd_st_map *m, uint64_t key)
{
	if (!m->cap || !key)
		return NULL;
	size_t i = slot_of(m, key);

	return m->keys[i] ? m->vals[i] : NULL;
}

/* Puts rec under key, freeing the record it replaces. */
static int map_put(struct hbd_st_map *m, uint64_t key, StRecord *rec)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap && map_grow(m) < 0)
		return -ENOMEM;
	i = slot_of(m, key);
	if (m->keys[i])
		st_record__free_unpacked(m->vals[i], NULL);
	else
		m->n++;
	m->keys[i] = key;
	m->vals[i] = rec;
	return 0;
}

/* Removes key (backward-shift deletion keeps every probe chain whole). */
static bool map_drop(struct hbd_st_map *m, uint64_t key)
{
	size_t i, j;

	if (!m->cap || !key)
		return false;
	i = slot_of(m, key);
	if (!m->keys[i])
		return false;
	st_record__free_unpacked(m->vals[i], NULL);
	m->keys[i] = 0;
	m->vals[i] = NULL;
	m->n--;
	for (j = (i + 1) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
		uint64_t k = m->keys[j];
		StRecord *v = m->vals[j];

		m->keys[j] = 0;
		m->vals[j] = NULL;
		m->keys[slot_of(m, k)] = k;
		m->vals[slot_of(m, k)] = v;
	}
	return true;
}

static void map_free(struct hbd_st_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->keys[i])
			st_record__free_unpacked(m->vals[i], NULL);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ---- replay ------------------------------------------------------------------------------- */

struct reader {
	struct hbd_restore *r;
	char *err;
	size_t errlen;
};

static int fail(struct reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct reader *rd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rd->err, rd->errlen, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* The key an upsert is filed under, 0 if the record has none (a violation). */
static uint64_t upsert_key(const StRecord *rec, enum hbd_st_kind *kind)
{
	switch (rec->body_case) {
	case ST_RECORD__BODY_SESSION:
		*kind = HBD_ST_SESSION;
		return rec->session ? rec->session->serial : 0;
	case ST_RECORD__BODY_BUFFER:
		*kind = HBD_ST_BUFFER;
		return rec->buffer ? rec->buffer->handle : 0;
	case ST_RECORD__BODY_IMPORT:
		*kind = HBD_ST_IMPORT;
		return rec->import ? rec->import->handle : 0;
	case ST_RECORD__BODY_TIMELINE:
		*kind = HBD_ST_TIMELINE;
		return rec->timeline ? rec->timeline->id : 0;
	case ST_RECORD__BODY_BACKEND:
		*kind = HBD_ST_BACKEND;
		return rec->backend ? rec->backend->key : 0;
	case ST_RECORD__BODY_EVENT:
		*kind = HBD_ST_EVENT;
		return rec->event ? rec->event->key : 0;
	default:
		return 0;
	}
}

static int replay_drop(struct reader *rd, StRecord *rec)
{
	const StDrop *d = rec->drop;
	struct hbd_restore *r = rd->r;
	bool had;

	if (!d || d->kind < HBD_ST_SESSION || d->kind >= HBD_ST_KINDS)
		return fail(rd, "record %zu: a drop of no known kind", r->records);
	had = map_drop(&r->maps[d->kind], d->key);
	if (d->kind == HBD_ST_BUFFER)
		map_drop(&r->buffer_states, d->key);
	st_record__free_unpacked(rec, NULL);
	if (!had)
		return fail(rd, "record %zu: drops object %llu of kind %u, which does not exist",
			    r->records, (unsigned long long)d->key, d->kind);
	return 0;
}

static int replay(void *ctx, const uint8_t *bytes, size_t len)
{
	struct reader *rd = ctx;
	struct hbd_restore *r = rd->r;
	StRecord *rec = st_record__unpack(NULL, len, bytes);
	enum hbd_st_kind kind = HBD_ST_SESSION;
	uint64_t key;

	r->records++;
	if (!rec)
		return fail(rd, "record %zu: does not unpack", r->records);
	switch (rec->body_case) {
	case ST_RECORD__BODY_COUNTERS:
		if (r->counters)
			st_record__free_unpacked(r->counters, NULL);
		r->counters = rec;
		return 0;
	case ST_RECORD__BODY_DROP:
		return replay_drop(rd, rec);
	case ST_RECORD__BODY_BUFFER_STATE:
		key = rec->buffer_state ? rec->buffer_state->handle : 0;
		if (!map_get(&r->maps[HBD_ST_BUFFER], key)) {
			st_record__free_unpacked(rec, NULL);
			return fail(rd,
				    "record %zu: the state of buffer %llu, which does not exist",
				    r->records, (unsigned long long)key);
		}
		return map_put(&r->buffer_states, key, rec);
	default:
		key = upsert_key(rec, &kind);
		if (!key) {
			st_record__free_unpacked(rec, NULL);
			return fail(rd, "record %zu: no object, or one without a key", r->records);
		}
		return map_put(&r->maps[kind], key, rec);
	}
}

/* ---- checks between objects -------------------------------------------------------------- */

static int check_session(struct reader *rd, const StSession *s)
{
	if (s->token.len != HBP_TOKEN_LEN)
		return fail(rd, "session %llu: a token of %zu bytes", (unsigned long long)s->serial,
			    s->token.len);
	if (s->door != HBD_DOOR_HOST && s->door != HBD_DOOR_VM)
		return fail(rd, "session %llu: door %u", (unsigned long long)s->serial, s->door);
	if ((s->door == HBD_DOOR_HOST) != (s->domain == 0))
		return fail(rd, "session %llu: door %u for domain %u",
			    (unsigned long long)s->serial, s->door, s->domain);
	if (s->last_reply.len > HBP_FRAME_MAX)
		return fail(rd, "session %llu: a reply of %zu bytes", (unsigned long long)s->serial,
			    s->last_reply.len);
	if (s->reply_fd_group > HBP_MAX_GROUPS)
		return fail(rd, "session %llu: reply fd of group %u", (unsigned long long)s->serial,
			    s->reply_fd_group);
	return 0;
}

static int check_desc(struct reader *rd, const StBuffer *b)
{
	struct hbp_refdir d;

	if (!b->desc)
		return b->group ? fail(rd, "buffer %llu: pool pages without a directory",
				       (unsigned long long)b->handle)
				: 0;
	if (hbp_desc_to_refdir(b->desc, &d) < 0 || d.depth > HBP_REFDIR_MAX_DEPTH ||
	    d.pages != b->data_pages || d.size != b->size || b->desc->group != b->group)
		return fail(rd, "buffer %llu: a directory that does not describe it",
			    (unsigned long long)b->handle);
	/* Inline (pool pages, or a Xen client's grants): no directory page, the same refs as the
	 * buffer's. */
	if (d.depth == 0 && (b->dir_pages || b->n_refs != d.pages ||
			     memcmp(d.inline_refs, b->refs, d.pages * sizeof(uint32_t)) != 0))
		return fail(rd, "buffer %llu: inline refs that are not its pages",
			    (unsigned long long)b->handle);
	return 0;
}

static int check_buffer(struct reader *rd, const StBuffer *b)
{
	const struct hbd_restore *r = rd->r;
	StBufferState *st = hbd_restore_buffer_state(r, b->handle);
	unsigned long long h = (unsigned long long)b->handle;

	if (!st)
		return fail(rd, "buffer %llu: no state record", h);
	if (b->size == 0 || b->exporter == b->peer || (b->flags & ~HB_BUFFER_PEER_WRITABLE) ||
	    b->data_pages != hbp_refdir_span(b->size, b->desc ? b->desc->first_offset : 0))
		return fail(rd, "buffer %llu: impossible size, domains or flags", h);
	if (b->group > HBP_MAX_GROUPS ||
	    (b->group && b->n_refs != (size_t)b->data_pages + b->dir_pages) ||
	    /* Grant-based buffers keep refs only when they came inline. */
	    (!b->group && b->n_refs && (!b->desc || b->desc->depth != 0)))
		return fail(rd, "buffer %llu: %zu page refs for %u+%u pages", h, b->n_refs,
			    b->data_pages, b->dir_pages);
	if (st->state > HBD_EXPORT_DONE || (st->hid.len != 0 && st->hid.len != 16) ||
	    ((st->state == HBD_EXPORT_LIVE || st->state == HBD_EXPORT_PENDING) && !st->hid.len))
		return fail(rd, "buffer %llu: export state %u with a hid of %zu bytes", h,
			    st->state, st->hid.len);
	if (st->meta.len > HBP_META_LIMIT || st->n_resv > HBP_RESV_LIMIT)
		return fail(rd, "buffer %llu: %zu bytes of metadata, %zu fences", h, st->meta.len,
			    st->n_resv);
	for (size_t i = 0; i < st->n_resv; i++)
		if (!st->resv[i]->timeline ||
		    (st->resv[i]->usage != HB_ACCESS_READ && st->resv[i]->usage != HB_ACCESS_WRITE))
			return fail(rd, "buffer %llu: a fence of no timeline or usage", h);
	if (st->owner && !hbd_restore_get(r, HBD_ST_SESSION, st->owner))
		return fail(rd, "buffer %llu: owned by session %llu, which does not exist", h,
			    (unsigned long long)st->owner);
	return check_desc(rd, b);
}

static int check_import(struct reader *rd, const StImport *im)
{
	const struct hbd_restore *r = rd->r;
	StBufferState *st = hbd_restore_buffer_state(r, im->buffer);

	if (!hbd_restore_get(r, HBD_ST_SESSION, im->session) || !st || im->gen > st->gen)
		return fail(rd,
			    "import %llu: of session %llu and buffer %llu, one of which does "
			    "not exist",
			    (unsigned long long)im->handle, (unsigned long long)im->session,
			    (unsigned long long)im->buffer);
	return 0;
}

static int check_timeline(struct reader *rd, const StTimeline *t)
{
	if (!hbd_restore_get(rd->r, HBD_ST_SESSION, t->owner))
		return fail(rd, "timeline %016llx: owned by session %llu, which does not exist",
			    (unsigned long long)t->id, (unsigned long long)t->owner);
	if (t->n_fails > HBD_FAIL_RANGES || t->n_seen_by > HBD_SEEN_BY_MAX)
		return fail(rd, "timeline %016llx: %zu failed ranges, seen by %zu domains",
			    (unsigned long long)t->id, t->n_fails, t->n_seen_by);
	for (size_t i = 0; i < t->n_fails; i++)
		if (t->fails[i]->lo > t->fails[i]->hi || t->fails[i]->hi > t->value ||
		    t->fails[i]->err >= 0 || t->fails[i]->err <= -(int32_t)HBP_ERRNO_LIMIT)
			return fail(rd, "timeline %016llx: an impossible failed range",
				    (unsigned long long)t->id);
	return 0;
}

static int check_event(struct reader *rd, const StEvent *ev)
{
	if (!hbd_restore_get(rd->r, HBD_ST_SESSION, ev->session) ||
	    ev->key >= rd->r->counters->counters->next_event)
		return fail(rd,
			    "event %llu: of session %llu, which does not exist, or past the "
			    "counters",
			    (unsigned long long)ev->key, (unsigned long long)ev->session);
	if (ev->type < HB_EVENT_EXPORTED || ev->type > HB_EVENT_OVERFLOW ||
	    ev->type == HB_EVENT_FENCE || (ev->hid.len && ev->hid.len != 16) ||
	    ev->meta.len > HBP_META_LIMIT)
		return fail(rd, "event %llu: type %u, a hid of %zu bytes, %zu bytes of metadata",
			    (unsigned long long)ev->key, ev->type, ev->hid.len, ev->meta.len);
	return 0;
}

static int check_one(void *ctx, const StRecord *rec)
{
	struct reader *rd = ctx;
	const StCounters *c = rd->r->counters->counters;
	uint64_t handle = 0, serial = 0;
	int r = 0;

	switch (rec->body_case) {
	case ST_RECORD__BODY_SESSION:
		serial = rec->session->serial;
		r = check_session(rd, rec->session);
		break;
	case ST_RECORD__BODY_BUFFER:
		handle = rec->buffer->handle;
		r = check_buffer(rd, rec->buffer);
		break;
	case ST_RECORD__BODY_IMPORT:
		handle = rec->import->handle;
		r = check_import(rd, rec->import);
		break;
	case ST_RECORD__BODY_TIMELINE:
		r = check_timeline(rd, rec->timeline);
		break;
	case ST_RECORD__BODY_EVENT:
		r = check_event(rd, rec->event);
		break;
	default:
		break;
	}
	if (r == 0 && (handle >= c->next_handle || serial >= c->next_session))
		r = fail(rd, "handle %llu or serial %llu beyond the counters",
			 (unsigned long long)handle, (unsigned long long)serial);
	return r;
}

static int check_all(struct reader *rd)
{
	int r = 0;

	if (!rd->r->counters || !rd->r->counters->counters)
		return fail(rd, "no counters record");
	for (int k = HBD_ST_SESSION; k < HBD_ST_KINDS && r == 0; k++)
		r = hbd_restore_each(rd->r, (enum hbd_st_kind)k, check_one, rd);
	if (r == 0 && rd->r->buffer_states.n != rd->r->maps[HBD_ST_BUFFER].n)
		r = fail(rd, "%zu buffer states for %zu buffers", rd->r->buffer_states.n,
			 rd->r->maps[HBD_ST_BUFFER].n);
	return r;
}

/* ---- the interface ------------------------------------------------------------------------ */

int hbd_restore_read(const uint8_t *mem, size_t len, struct hbd_restore *out, char *err,
		     size_t errlen)
{
	struct reader rd = {.r = out, .err = err, .errlen = errlen};
	int r;

	memset(out, 0, sizeof(*out));
	r = hbd_journal_read(mem, len, replay, &rd, &out->lineage, &out->seq, err, errlen);
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (r == 0)
		r = check_all(&rd);
	if (r < 0) {
		hbd_restore_free(out);
		memset(out, 0, sizeof(*out));
	}
	return r;
}

void hbd_restore_free(struct hbd_restore *r)
{
	if (r->counters)
		st_record__free_unpacked(r->counters, NULL);
	r->counters = NULL;
	for (int k = 0; k < HBD_ST_KINDS; k++)
		map_free(&r->maps[k]);
	map_free(&r->buffer_states);
}

StRecord *hbd_restore_get(const struct hbd_restore *r, enum hbd_st_kind kind, uint64_t key)
{
	return kind > 0 && kind < HBD_ST_KINDS ? map_get(&r->maps[kind], key) : NULL;
}

StBufferState *hbd_restore_buffer_state(const struct hbd_restore *r, uint64_t handle)
{
	StRecord *rec = map_get(&r->buffer_states, handle);

	return rec ? rec->buffer_state : NULL;
}

int hbd_restore_each(const struct hbd_restore *r, enum hbd_st_kind kind,
		     int (*fn)(void *ctx, const StRecord *rec), void *ctx)
{
	const struct hbd_st_map *m = &r->maps[kind];
	int ret;

	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		ret = fn(ctx, m->vals[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}
