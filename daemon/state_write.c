/*
 * Keeping the restart state while the daemon runs (see state.h, journal.h).
 *
 * Changes mark objects; a commit writes every marked object whole, then makes the transaction
 * durable with one store. Ends of objects are written when they happen (the object is gone by
 * the commit). hbd_request commits before a reply leaves, and the loop commits before it
 * sleeps, so nothing a client or a peer has seen is ever missing from the state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/fdstore.h"
#include "daemon/hyperbufd.h"
#include "daemon/journal.h"
#include "daemon/state.h"
#include "protocol/desc.h"

struct hbd_state {
	struct hbd_journal j;
	struct hbc_list dirty;
	uint64_t counters[4]; /* as last written: next_handle, next_session, next_serial, event */
	unsigned gen;         /* kept as "state.<gen>" */
	char fdname[HBD_FDNAME_MAX];
	bool broken; /* it could not be written: nothing more is kept */
};

/* ---- the snapshot: every live object ------------------------------------------------------ */

/* A session the state keeps: a client's, not a control session, not ending. */
static bool kept(const struct hbd_session *s)
{
	return s->hello && !s->control && !s->closing;
}

static int snapshot_buffer(struct hbd_journal *j, const struct hbd_buffer *b)
{
	int r = hbd_st_put_placement(j, b);

	return r < 0 ? r : hbd_st_put_buffer_state(j, b);
}

static int snapshot_session(struct hbd_journal *j, const struct hbd_session *s)
{
	struct hbd_buffer *b;
	struct hbd_import *im;
	struct hbd_timeline *tl;
	struct hbd_event *ev;
	int r = hbd_st_put_session(j, s);

	hbc_list_for_each_safe(b, &s->buffers, struct hbd_buffer, owner_link) if (r == 0) r =
	    snapshot_buffer(j, b);
	hbc_list_for_each_safe(im, &s->imports, struct hbd_import, link) if (r == 0) r =
	    hbd_st_put_import(j, s, im);
	hbc_list_for_each_safe(tl, &s->timelines, struct hbd_timeline, owner_link) if (r == 0) r =
	    hbd_st_put_timeline(j, tl);
	hbc_list_for_each_safe(ev, &s->events, struct hbd_event, link) if (r == 0 && ev->st_key) r =
	    hbd_st_put_event(j, s, ev);
	return r;
}

struct backend_put {
	struct hbd_journal *j;
	int r;
};

static void backend_put(void *ctx, uint64_t key, const void *data, size_t len)
{
	struct backend_put *bp = ctx;

	if (bp->r == 0)
		bp->r = hbd_st_put_backend(bp->j, key, data, len);
}

static int snapshot(void *ctx, struct hbd_journal *j)
{
	struct hbd *d = ctx;
	struct backend_put bp = {.j = j};
	struct hbd_session *s;
	struct hbd_buffer *b;
	int r = hbd_st_put_counters(j, d);

	/* Sessions first: the imports and timelines of one may name another's buffers, and the
	 * reader checks references only once everything is read. */
	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link) if (r == 0 && kept(s)) r =
	    snapshot_session(j, s);
	hbc_list_for_each_safe(b, &d->orphans, struct hbd_buffer, owner_link) if (r == 0) r =
	    snapshot_buffer(j, b);
	if (r == 0 && d->backend->version >= 2 && d->backend->save) {
		d->backend->save(d->backend_state, backend_put, &bp);
		r = bp.r;
	}
	return r;
}

/* After a snapshot every live object is known and none is dirty. */
static void mark_all_known(struct hbd *d)
{
	struct hbd_session *s;
	struct hbd_buffer *b;
	struct hbd_import *im;
	struct hbd_timeline *tl;
	struct hbd_st_mark *m;

	hbc_list_for_each_safe(m, &d->state->dirty, struct hbd_st_mark, link)
	{
		hbc_list_remove(&m->link);
		m->dirty = 0;
	}
	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		if (!kept(s))
			continue;
		s->st.known = true;
		hbc_list_for_each_safe(b, &s->buffers, struct hbd_buffer, owner_link) b->st.known =
		    true;
		hbc_list_for_each_safe(im, &s->imports, struct hbd_import, link) im->st_known =
		    true;
		hbc_list_for_each_safe(tl, &s->timelines, struct hbd_timeline, owner_link)
		    tl->st.known = true;
	}
	hbc_list_for_each_safe(b, &d->orphans, struct hbd_buffer, owner_link) b->st.known = true;
}

/* ---- marks and commits -------------------------------------------------------------------- */

bool hbd_state_on(const struct hbd *d)
{
	return d->state && !d->state->broken;
}

static void mark(struct hbd *d, struct hbd_st_mark *m, enum hbd_st_kind kind, uint8_t what)
{
	if (!hbd_state_on(d))
		return;
	if (!m->dirty)
		hbc_list_insert_tail(&d->state->dirty, &m->link);
	m->dirty |= what;
	m->kind = (uint8_t)kind;
}

void hbd_state_mark_session(struct hbd_session *s)
{
	if (kept(s))
		mark(s->d, &s->st, HBD_ST_SESSION, HBD_ST_DIRTY);
}

void hbd_state_mark_buffer(struct hbd_buffer *b, bool placed)
{
	mark(b->d, &b->st, HBD_ST_BUFFER, HBD_ST_DIRTY | (placed ? HBD_ST_DIRTY_PLACE : 0));
}

void hbd_state_mark_timeline(struct hbd_timeline *tl)
{
	mark(tl->owner->d, &tl->st, HBD_ST_TIMELINE, HBD_ST_DIRTY);
}

/* A write the journal refused: nothing more is kept, and the next daemon starts afresh. */
static void broken(struct hbd *d, int err)
{
	struct hbd_state *st = d->state;

	log_err("restart state: cannot write it (%s); this daemon keeps nothing more for a "
		"restart",
		strerror(-err));
	st->broken = true;
	hbd_journal_abort(&st->j);
	hbd_fdstore_forget(d->fds, st->fdname);
}

void hbd_state_import_new(struct hbd_session *s, struct hbd_import *im)
{
	struct hbd *d = s->d;
	int r;

	if (!hbd_state_on(d) || !kept(s))
		return;
	r = hbd_st_put_import(&d->state->j, s, im);
	if (r < 0)
		broken(d, r);
	im->st_known = r == 0;
}

void hbd_state_event_new(struct hbd_session *s, struct hbd_event *ev)
{
	struct hbd *d = s->d;
	int r;

	if (!hbd_state_on(d) || !kept(s))
		return;
	ev->st_key = ++d->next_event;
	r = hbd_st_put_event(&d->state->j, s, ev);
	if (r < 0) {
		ev->st_key = 0;
		broken(d, r);
	}
}

void hbd_state_forget_event(struct hbd *d, struct hbd_event *ev)
{
	uint64_t key = ev->st_key;
	int r;

	ev->st_key = 0;
	if (!key || !hbd_state_on(d))
		return;
	r = hbd_st_put_drop(&d->state->j, HBD_ST_EVENT, key);
	if (r < 0)
		broken(d, r);
}

static void forget(struct hbd *d, struct hbd_st_mark *m, enum hbd_st_kind kind, uint64_t key)
{
	int r;

	if (!hbd_state_on(d))
		return;
	if (m->dirty) {
		hbc_list_remove(&m->link);
		m->dirty = 0;
	}
	if (!m->known)
		return;
	m->known = false;
	r = hbd_st_put_drop(&d->state->j, kind, key);
	if (r < 0)
		broken(d, r);
}

void hbd_state_forget_session(struct hbd_session *s)
{
	forget(s->d, &s->st, HBD_ST_SESSION, s->serial);
}

void hbd_state_forget_buffer(struct hbd_buffer *b)
{
	forget(b->d, &b->st, HBD_ST_BUFFER, b->mem.handle);
}

void hbd_state_forget_timeline(struct hbd *d, struct hbd_timeline *tl)
{
	forget(d, &tl->st, HBD_ST_TIMELINE, tl->id);
}

void hbd_state_forget_import(struct hbd *d, struct hbd_import *im)
{
	int r;

	if (!hbd_state_on(d) || !im->st_known)
		return;
	im->st_known = false;
	r = hbd_st_put_drop(&d->state->j, HBD_ST_IMPORT, im->handle);
	if (r < 0)
		broken(d, r);
}

void hbd_state_backend_put(struct hbd *d, uint64_t key, const void *data, size_t len)
{
	int r;

	if (!hbd_state_on(d))
		return;
	r = hbd_st_put_backend(&d->state->j, key, data, len);
	if (r < 0)
		broken(d, r);
}

void hbd_state_backend_drop(struct hbd *d, uint64_t key)
{
	int r;

	if (!hbd_state_on(d))
		return;
	r = hbd_st_put_drop(&d->state->j, HBD_ST_BACKEND, key);
	if (r < 0)
		broken(d, r);
}

/* Writes one marked object. */
static int flush_mark(struct hbd_journal *j, struct hbd_st_mark *m)
{
	struct hbd_buffer *b;
	int r = 0;

	switch (m->kind) {
	case HBD_ST_SESSION:
		r = hbd_st_put_session(j, hbc_container_of(m, struct hbd_session, st));
		break;
	case HBD_ST_BUFFER:
		b = hbc_container_of(m, struct hbd_buffer, st);
		if (m->dirty & HBD_ST_DIRTY_PLACE || !m->known)
			r = hbd_st_put_placement(j, b);
		if (r == 0)
			r = hbd_st_put_buffer_state(j, b);
		break;
	case HBD_ST_TIMELINE:
		r = hbd_st_put_timeline(j, hbc_container_of(m, struct hbd_timeline, st));
		break;
	}
	return r;
}

static int flush_marks(struct hbd *d)
{
	struct hbd_state *st = d->state;
	uint64_t counters[4] = {d->next_handle, d->next_session + 1, d->next_serial,
				d->next_event + 1};
	struct hbd_st_mark *m;
	int r = 0;

	hbc_list_for_each_safe(m, &st->dirty, struct hbd_st_mark, link)
	{
		if (r == 0)
			r = flush_mark(&st->j, m);
		hbc_list_remove(&m->link);
		m->dirty = 0;
		m->known = true;
	}
	if (r == 0 && memcmp(counters, st->counters, sizeof(counters)) != 0) {
		r = hbd_st_put_counters(&st->j, d);
		memcpy(st->counters, counters, sizeof(counters));
	}
	return r;
}

int hbd_state_commit(struct hbd *d)
{
	struct hbd_state *st = d->state;
	uint64_t compactions;
	int r;

	if (!hbd_state_on(d) || (hbc_list_empty(&st->dirty) && !hbd_journal_dirty(&st->j)))
		return 0;
	r = flush_marks(d);
	compactions = st->j.compactions;
	if (r == 0)
		r = hbd_journal_commit(&st->j, snapshot, d);
	if (r < 0) {
		broken(d, r);
		return r;
	}
	if (st->j.compactions != compactions) {
		mark_all_known(d);
		/* The area just left is garbage: give its memory back. */
		fallocate(st->j.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(HBD_JOURNAL_HEADER +
				  !((struct hbd_jheader *)st->j.map)->active * st->j.area_size),
			  (off_t)st->j.area_size);
	}
	return 0;
}

bool hbd_state_pending(const struct hbd *d)
{
	return hbd_state_on(d) &&
	       (!hbc_list_empty(&d->state->dirty) || hbd_journal_dirty(&d->state->j));
}

/* ---- the journal's life ------------------------------------------------------------------- */

/* Room for the largest state the configuration allows, give or take: the memfd is sparse, so
 * only what is written costs memory. */
static size_t area_size_for(const struct hbc_config *cfg)
{
	uint64_t bytes = 16ull << 20, domains = cfg->n_vms + 1;

	if (cfg->backend == HBC_BACKEND_XEN)
		domains += 64;
	for (unsigned i = 0; i < cfg->n_groups; i++)
		bytes += cfg->groups[i].size / HBP_PAGE_SIZE * 6;
	bytes += domains * cfg->exports_per_domain * (uint64_t)(cfg->meta_max + 512);
	bytes += domains * cfg->timelines_per_domain * 512ull;
	bytes += domains * cfg->imports_per_domain * 48ull;
	if (bytes > (1ull << 30))
		bytes = 1ull << 30;
	return (size_t)((bytes + 65535) & ~65535ull);
}

/*
 * A new journal holding the daemon's state as it is now, kept as "state.<gen>" before the one
 * it replaces (named old, "" if none) leaves the store: a restart in between finds both and
 * reads the newer, which is readable only once whole.
 */
int hbd_state_start(struct hbd *d, unsigned gen, uint64_t lineage, const char *old)
{
	struct hbd_state *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return -ENOMEM;
	hbc_list_init(&st->dirty);
	if (!lineage && getrandom(&lineage, sizeof(lineage), 0) != sizeof(lineage))
		lineage = (uint64_t)getpid() << 32 ^ hbc_now_ms();
	r = hbd_journal_create(&st->j, "hyperbufd-state", area_size_for(d->cfg), lineage);
	if (r < 0)
		goto err;
	d->state = st;
	st->gen = gen;
	snprintf(st->fdname, sizeof(st->fdname), "state.%u", gen);
	r = hbd_journal_commit_snapshot(&st->j, snapshot, d);
	if (r < 0)
		goto err;
	mark_all_known(d);
	st->counters[0] = d->next_handle;
	st->counters[1] = d->next_session + 1;
	st->counters[2] = d->next_serial;
	st->counters[3] = d->next_event + 1;
	r = hbd_fdstore_keep(d->fds, st->j.fd, st->fdname);
	if (r < 0)
		goto err;
	if (old && old[0])
		hbd_fdstore_forget(d->fds, old);
	log_info("restart state: kept as %s (%zu MiB areas, sparse)", st->fdname,
		 st->j.area_size >> 20);
	return 0;

err:
	log_err("restart state: cannot start it: %s; nothing is kept for a restart", strerror(-r));
	hbd_journal_close(&st->j);
	free(st);
	d->state = NULL;
	return r;
}

void hbd_state_stop(struct hbd *d)
{
	struct hbd_state *st = d->state;
	struct hbd_st_mark *m;

	if (!st)
		return;
	hbc_list_for_each_safe(m, &st->dirty, struct hbd_st_mark, link)
	{
		hbc_list_remove(&m->link);
		m->dirty = 0;
	}
	/* A clean stop ends every session, and the store goes with the service; a handover
	 * leaves the journal as the next daemon will read it. */
	hbd_journal_close(&st->j);
	free(st);
	d->state = NULL;
}

void hbd_state_stats(const struct hbd *d, uint64_t *commits, uint64_t *compactions)
{
	*commits = d->state ? d->state->j.commits : 0;
	*compactions = d->state ? d->state->j.compactions : 0;
}
