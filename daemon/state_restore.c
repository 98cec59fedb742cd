/*
 * Taking the last daemon's state back (see state.h). The state was checked for consistency as
 * it was read; here it is checked against this daemon's configuration and backend (domains
 * and groups that exist, pages inside pools and used once), then turned into objects: every
 * session detached until its client resumes it, with its buffers, imports and timelines.
 * Waits are not kept: a resuming client opens its pending fences again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/fdstore.h"
#include "daemon/hyperbufd.h"
#include "daemon/state.h"
#include "protocol/desc.h"
#include "protocol/hid.h"

/* ---- finding the state -------------------------------------------------------------------- */

static int read_fd(int fd, struct hbd_restore *rs, char *err, size_t errlen)
{
	struct stat st;
	void *mem;
	int r;

	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		snprintf(err, errlen, "empty or unreadable");
		return -EBADMSG;
	}
	mem = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		snprintf(err, errlen, "cannot map it: %s", strerror(errno));
		return -EBADMSG;
	}
	r = hbd_restore_read(mem, (size_t)st.st_size, rs, err, errlen);
	munmap(mem, (size_t)st.st_size);
	return r;
}

int hbd_restore_find(struct hbd *d, struct hbd_restore *restore, unsigned *gen, char *name,
		     size_t namelen)
{
	char names[8][HBD_FDNAME_MAX], err[256];
	size_t cursor = 0, n = 0;
	const char *nm;
	int best = -1, r = 1;

	memset(restore, 0, sizeof(*restore));
	while (n < 8 && (nm = hbd_fdstore_next(d->fds, "state.", &cursor)))
		snprintf(names[n++], sizeof(names[0]), "%s", nm);
	/* The newest that reads whole: an older one is left when a restart came in the middle of
	 * replacing it. */
	for (size_t i = 0; i < n; i++)
		if (best < 0 ||
		    strtoul(names[i] + 6, NULL, 10) > strtoul(names[best] + 6, NULL, 10))
			best = (int)i;
	while (best >= 0) {
		int fd = hbd_fdstore_take(d->fds, names[best]);
		int k = best;

		r = fd < 0 ? -EBADMSG : read_fd(fd, restore, err, sizeof(err));
		if (fd >= 0)
			close(fd);
		if (r == 0) {
			*gen = (unsigned)strtoul(names[best] + 6, NULL, 10);
			snprintf(name, namelen, "%s", names[best]);
			log_info("restart state %s: %zu records, %zu sessions, %zu buffers, %zu "
				 "imports, %zu timelines",
				 name, restore->records, restore->maps[HBD_ST_SESSION].n,
				 restore->maps[HBD_ST_BUFFER].n, restore->maps[HBD_ST_IMPORT].n,
				 restore->maps[HBD_ST_TIMELINE].n);
			return 0;
		}
		log_err("restart state %s refused: %s; starting without it", names[best], err);
		hbd_fdstore_forget(d->fds, names[best]);
		names[k][0] = '\0';
		best = -1;
		for (size_t i = 0; i < n; i++)
			if (names[i][0] && (best < 0 || strtoul(names[i] + 6, NULL, 10) >
							    strtoul(names[best] + 6, NULL, 10)))
				best = (int)i;
	}
	return r;
}

/* ---- building ----------------------------------------------------------------------------- */

struct build {
	struct hbd *d;
	const struct hbd_restore *rs;
	char why[160];
};

static int refuse(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int refuse(struct build *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->why, sizeof(b->why), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static struct hbd_session *session_by_serial(struct hbd *d, uint64_t serial)
{
	struct hbd_session *s;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		if (s->detached && s->serial == serial)
			return s;
	}
	return NULL;
}

static int build_session(void *ctx, const StRecord *rec)
{
	struct build *bd = ctx;
	struct hbd *d = bd->d;
	const StSession *m = rec->session;
	struct hbc_cred cred = {.pid = -1, .uid = m->uid};
	struct hbd_domain *dom;
	struct hbd_session *s;

	if (d->backend->can_share(d->backend_state, m->domain, 0) == -ENODEV)
		return refuse(bd, "session %llu: domain %u is not in the configuration",
			      (unsigned long long)m->serial, m->domain);
	dom = hbd_domain_get(d, m->domain);
	s = dom ? hbd_session_new(d, -1, dom, (enum hbd_door)m->door, NULL, &cred) : NULL;
	if (!s)
		return -ENOMEM;
	ev_timer_stop(d->loop, &s->hello_timer);
	dom->conns--; /* no connection yet */
	s->detached = true;
	s->hello = true;
	dom->sessions++;
	dom->present = true;
	s->serial = m->serial;
	snprintf(s->label, sizeof(s->label), "%s#%llu", dom->name, (unsigned long long)s->serial);
	memcpy(s->token, m->token.data, HBP_TOKEN_LEN);
	s->attached = m->attached;
	s->holds_on = m->holds;
	s->last_request = m->last_request;
	s->reply_fd_group = m->reply_fd_group;
	if (m->last_reply.len) {
		if (hbp_bytes_reserve(&s->last_reply, m->last_reply.len) < 0)
			return -ENOMEM;
		memcpy(s->last_reply.data, m->last_reply.data, m->last_reply.len);
		s->last_reply.len = m->last_reply.len;
	}
	ev_timer_set(&s->resume_timer, d->cfg->resume_timeout_ms / 1000.0, 0.);
	ev_timer_start(d->loop, &s->resume_timer);
	d->restored++;
	return 0;
}

static int buffer_state(struct build *bd, struct hbd_buffer *b, const StBufferState *st)
{
	struct hbd *d = bd->d;
	struct hbd_session *owner = st->owner ? session_by_serial(d, st->owner) : NULL;

	b->owner = owner;
	hbc_list_insert_tail(owner ? &owner->buffers : &d->orphans, &b->owner_link);
	if (owner)
		hbd_buffer_handle_add(b);
	b->state = (enum hbd_export_state)st->state;
	b->gen = st->gen;
	if (st->hid.len) {
		memcpy(b->hid.bytes, st->hid.data, sizeof(b->hid.bytes));
		if (hbd_hid_lookup(d, &b->hid))
			return refuse(bd, "buffer %llu: a hid another buffer has",
				      (unsigned long long)b->mem.handle);
		hbc_list_insert_tail(&d->hids[hbp_hid_hash(&b->hid, HBD_HID_BUCKET_BITS)],
				     &b->hash_link);
		b->has_hid = true;
	}
	if (st->meta.len) {
		b->meta = malloc(st->meta.len);
		if (!b->meta)
			return -ENOMEM;
		memcpy(b->meta, st->meta.data, st->meta.len);
		b->meta_len = (uint32_t)st->meta.len;
	}
	if (st->n_resv) {
		b->resv = calloc(HBP_RESV_LIMIT, sizeof(*b->resv));
		if (!b->resv)
			return -ENOMEM;
		for (size_t i = 0; i < st->n_resv; i++)
			b->resv[i] = (struct hbd_resv_entry){
			    st->resv[i]->timeline, st->resv[i]->value, st->resv[i]->usage};
		b->n_resv = (unsigned)st->n_resv;
	}
	if (b->state == HBD_EXPORT_PENDING) {
		uint64_t now = hbc_now_ms();

		b->unexport_at_ms = st->unexport_at_ms;
		hbd_buffer_arm_unexport(
		    b, st->unexport_at_ms > now ? (uint32_t)(st->unexport_at_ms - now) : 0);
	}
	return 0;
}

static int build_buffer(void *ctx, const StRecord *rec)
{
	struct build *bd = ctx;
	struct hbd *d = bd->d;
	const StBuffer *m = rec->buffer;
	struct hbd_buffer *b = calloc(1, sizeof(*b));
	struct hbd_domain *dom;
	int r;

	if (!b)
		return -ENOMEM;
	b->d = d;
	hbc_list_init(&b->hash_link);
	hbc_list_init(&b->owner_link);
	b->mem = (struct hbb_buffer){.handle = m->handle,
				     .creator = m->creator,
				     .exporter = m->exporter,
				     .peer = m->peer,
				     .size = m->size,
				     .flags = m->flags,
				     .group = m->group,
				     .data_pages = m->data_pages,
				     .dir_pages = m->dir_pages};
	if (m->desc)
		hbp_desc_to_refdir(m->desc, &b->mem.desc);
	if (m->n_refs) {
		b->mem.refs = malloc(m->n_refs * sizeof(uint32_t));
		if (!b->mem.refs) {
			free(b);
			return -ENOMEM;
		}
		memcpy(b->mem.refs, m->refs, m->n_refs * sizeof(uint32_t));
	}
	/* An inline descriptor names the buffer's own refs, not the record's (freed soon). */
	if (b->mem.desc.inline_refs)
		b->mem.desc.inline_refs = b->mem.refs;
	/* The backend checks the placement as hostile input and takes the pages back. */
	r = d->backend->restore_buffer ? d->backend->restore_buffer(d->backend_state, &b->mem)
				       : (m->group ? -EBADMSG : 0);
	if (r < 0) {
		free(b->mem.refs);
		free(b);
		return refuse(bd, "buffer %llu: its pages do not fit this daemon's pools",
			      (unsigned long long)m->handle);
	}
	dom = hbd_domain_get(d, m->exporter);
	if (!dom) {
		d->backend->release(d->backend_state, &b->mem, true);
		free(b);
		return -ENOMEM;
	}
	dom->pages += (uint64_t)m->data_pages + m->dir_pages;
	r = buffer_state(bd, b, hbd_restore_buffer_state(bd->rs, m->handle));
	if (b->state == HBD_EXPORT_LIVE || b->state == HBD_EXPORT_PENDING)
		dom->exports++;
	return r;
}

/* An owned buffer from the handle table, else an orphan (kept alive by imports only). */
static struct hbd_buffer *buffer_by_handle(struct hbd *d, uint64_t handle)
{
	struct hbd_buffer *b = hbd_buffer_by_handle(d, handle);

	if (b)
		return b;
	hbc_list_for_each_safe(b, &d->orphans, struct hbd_buffer,
			       owner_link) if (b->mem.handle == handle) return b;
	return NULL;
}

static int build_import(void *ctx, const StRecord *rec)
{
	struct build *bd = ctx;
	const StImport *m = rec->import;
	struct hbd_session *s = session_by_serial(bd->d, m->session);
	struct hbd_buffer *b = buffer_by_handle(bd->d, m->buffer);
	struct hbd_import *im;

	if (!s || !b)
		return refuse(bd, "import %llu: no session %llu or buffer %llu",
			      (unsigned long long)m->handle, (unsigned long long)m->session,
			      (unsigned long long)m->buffer);
	im = calloc(1, sizeof(*im));
	if (!im)
		return -ENOMEM;
	im->handle = m->handle;
	im->session = s->serial;
	im->buf = b;
	im->gen = m->gen;
	im->writable = m->writable;
	im->held = m->held;
	hbc_list_insert_tail(&s->imports, &im->link);
	hbd_import_handle_add(bd->d, im);
	b->importers++;
	if (im->held)
		s->n_held++;
	else if (im->gen == b->gen)
		b->gen_importers++;
	s->dom->imports++;
	return 0;
}

static int build_timeline(void *ctx, const StRecord *rec)
{
	struct build *bd = ctx;
	struct hbd *d = bd->d;
	const StTimeline *m = rec->timeline;
	struct hbd_session *s = session_by_serial(d, m->owner);
	struct hbd_timeline *tl;

	if (!s || hbd_timeline_find(d, m->id))
		return refuse(bd, "timeline %016llx: no owner, or twice",
			      (unsigned long long)m->id);
	tl = calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	tl->id = m->id;
	tl->owner = s;
	tl->value = m->value;
	hbd_timeline_insert(d, tl);
	if (m->n_fails) {
		tl->fails = calloc(HBD_FAIL_RANGES, sizeof(*tl->fails));
		if (!tl->fails)
			return -ENOMEM;
		for (size_t i = 0; i < m->n_fails; i++)
			tl->fails[i] = (struct hbd_fail_range){m->fails[i]->lo, m->fails[i]->hi,
							       m->fails[i]->err};
		tl->n_fails = (unsigned)m->n_fails;
	}
	if (m->n_seen_by) {
		tl->seen_by = malloc(m->n_seen_by * sizeof(uint32_t));
		if (!tl->seen_by)
			return -ENOMEM;
		memcpy(tl->seen_by, m->seen_by, m->n_seen_by * sizeof(uint32_t));
		tl->n_seen_by = tl->cap_seen_by = (unsigned)m->n_seen_by;
	}
	return 0;
}

struct events {
	const StEvent **v;
	size_t n, cap;
};

static int collect_event(void *ctx, const StRecord *rec)
{
	struct events *e = ctx;

	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 64;
		const StEvent **v = realloc(e->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = rec->event;
	return 0;
}

static int by_key(const void *a, const void *b)
{
	uint64_t x = (*(const StEvent *const *)a)->key, y = (*(const StEvent *const *)b)->key;

	return (x > y) - (x < y);
}

/* The events queued and not sent, back in their sessions' queues in the order they came. */
static int build_events(struct build *bd)
{
	struct events e = {0};
	int r = hbd_restore_each(bd->rs, HBD_ST_EVENT, collect_event, &e);

	if (r == 0 && e.n)
		qsort(e.v, e.n, sizeof(*e.v), by_key);
	for (size_t i = 0; i < e.n && r == 0; i++) {
		const StEvent *ev = e.v[i];
		struct hbd_session *s = session_by_serial(bd->d, ev->session);
		struct hb_id hid;

		if (ev->hid.len)
			memcpy(hid.bytes, ev->hid.data, sizeof(hid.bytes));
		r = s ? hbd_session_event_restore(s, ev->key, ev->type, ev->hid.len ? &hid : NULL,
						  ev->domain, ev->size, ev->meta.data,
						  (uint32_t)ev->meta.len)
		      : refuse(bd, "event %llu: no session %llu", (unsigned long long)ev->key,
			       (unsigned long long)ev->session);
	}
	free(e.v);
	return r;
}

static int build_backend(void *ctx, const StRecord *rec)
{
	struct build *bd = ctx;
	struct hbd *d = bd->d;
	const StBackend *m = rec->backend;

	if (!d->backend->restore_record ||
	    d->backend->restore_record(d->backend_state, m->key, m->data.data, m->data.len) < 0)
		return refuse(bd, "backend record %llu makes no sense to the %s backend",
			      (unsigned long long)m->key, d->backend->name);
	return 0;
}

/* Everything restored goes again, as if every restored session had ended. */
static void undo(struct hbd *d)
{
	struct hbd_session *s;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		if (s->detached)
			hbd_session_close(s, "the restart state was refused");
	}
	d->restored = 0;
}

int hbd_restore_apply(struct hbd *d, const struct hbd_restore *rs)
{
	struct build bd = {.d = d, .rs = rs};
	const StCounters *c = rs->counters->counters;
	int r;

	/* Handles given out after the last commit are not in it: fence waits never are. A
	 * client may still name one (a SyncClose on its way): give none of them again. */
	d->next_handle = c->next_handle + HBD_HANDLE_RESTART_GAP;
	d->next_session = c->next_session;
	d->next_serial = c->next_serial;
	d->next_event = c->next_event ? c->next_event - 1 : 0;
	r = hbd_restore_each(rs, HBD_ST_SESSION, build_session, &bd);
	if (r == 0)
		r = hbd_restore_each(rs, HBD_ST_BUFFER, build_buffer, &bd);
	if (r == 0)
		r = hbd_restore_each(rs, HBD_ST_IMPORT, build_import, &bd);
	if (r == 0)
		r = hbd_restore_each(rs, HBD_ST_TIMELINE, build_timeline, &bd);
	if (r == 0)
		r = build_events(&bd);
	if (r == 0)
		r = hbd_restore_each(rs, HBD_ST_BACKEND, build_backend, &bd);
	if (r < 0) {
		log_err("restart state refused: %s; starting without it",
			r == -ENOMEM ? "out of memory" : bd.why);
		undo(d);
		return r;
	}
	log_info("restart state taken: %u sessions wait for their clients (resume_timeout_ms "
		 "%u)",
		 d->restored, d->cfg->resume_timeout_ms);
	return 0;
}
