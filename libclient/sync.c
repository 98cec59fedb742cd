/*
 * Sync handles: what a client waits on (docs/PROTOCOL.md §3 "Fences", fences.md §5.2).
 *
 * A leaf sync waits for one fence point; the library keeps one daemon wait per pending
 * (timeline, value) however many leaves share it. A merge waits for two members and is a
 * node of a DAG, never a flattened copy, so merging costs O(1) whatever the members hold.
 * Completion flows up the DAG through a worklist and freeing flows down through another:
 * neither recurses, because applications build chains of merges as long as they like.
 *
 * The contract of every handle: an eventfd that the library writes once, after the status
 * is stored, and never reads (a latched POLLIN, as a sync_file's); a status that is 0 until
 * completion and then 1 or a negative errno forever. A lost connection completes every
 * pending point with the sticky errno, so nobody polls a handle that can never complete.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "libclient/client.h"

/*
 * What a completion writes into the eventfd: the largest count it can hold. It reads as
 * POLLIN, like any non-zero count, and as not writable, because not even 1 more fits: so a
 * completed handle polls exactly POLLIN, as a signalled sync_file does, whatever events are
 * asked for (a pending one does say POLLOUT if asked, which a sync_file would not).
 */
#define HBL_SYNC_EFD_DONE 0xfffffffffffffffeull

/* ---- the point table -------------------------------------------------------------------- */

static size_t point_bucket(uint64_t timeline, uint64_t value)
{
	uint64_t h = (timeline ^ (value * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;

	return (size_t)(h >> 54) % HBL_POINT_BUCKETS;
}

struct hbl_point *hbl_point_find(struct hb_client *c, uint64_t timeline, uint64_t value)
{
	struct hbl_point *p = c->fences.points[point_bucket(timeline, value)];

	while (p && (p->timeline != timeline || p->value != value))
		p = p->hnext;
	return p;
}

static void point_hash(struct hb_client *c, struct hbl_point *p)
{
	size_t b = point_bucket(p->timeline, p->value);

	p->hnext = c->fences.points[b];
	c->fences.points[b] = p;
	if (p->owner == c->domain)
		c->fences.own_domain_points++;
}

static void point_unhash(struct hb_client *c, struct hbl_point *p)
{
	struct hbl_point **pp = &c->fences.points[point_bucket(p->timeline, p->value)];

	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = p->hnext;
		if (p->owner == c->domain)
			c->fences.own_domain_points--;
	}
	p->hnext = NULL;
	hbl_watch_detach(p);
}

static void point_free(struct hbl_point *p)
{
	free(p->leaves);
	free(p);
}

/* Room for one more leaf, so adding it later cannot fail. */
static int point_reserve(struct hbl_point *p)
{
	struct hb_sync **v;
	size_t cap;

	if (p->n_leaves < p->cap_leaves)
		return 0;
	cap = p->cap_leaves ? p->cap_leaves * 2 : 4;
	v = realloc(p->leaves, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	p->leaves = v;
	p->cap_leaves = cap;
	return 0;
}

/* ---- sync nodes ------------------------------------------------------------------------- */

static int sync_new(struct hb_client *c, struct hb_sync **out)
{
	struct hb_sync *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->efd = -1; /* made when hb_sync_fd asks: most syncs are only waited on */
	s->client = c;
	s->open = true;
	s->refs = 1;
	hbc_list_insert_tail(&c->fences.syncs, &s->link);
	*out = s;
	return 0;
}

static void sync_free(struct hb_sync *s)
{
	hbc_list_remove(&s->link);
	if (s->efd >= 0)
		close(s->efd);
	hbl_kfences_free(s->kf);
	free(s->parents);
	free(s);
}

/* Room for k more parents, so adding them later cannot fail. */
static int parents_reserve(struct hb_sync *m, size_t k)
{
	struct hb_sync **v;
	size_t cap = m->cap_parents ? m->cap_parents : 2;

	while (cap - m->n_parents < k)
		cap *= 2;
	if (cap == m->cap_parents)
		return 0;
	v = realloc(m->parents, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	m->parents = v;
	m->cap_parents = cap;
	return 0;
}

static void parents_remove(struct hb_sync *m, struct hb_sync *p)
{
	for (size_t i = 0; i < m->n_parents; i++) {
		if (m->parents[i] == p) {
			m->parents[i] = m->parents[--m->n_parents];
			return;
		}
	}
}

/*
 * Completes every node on the worklist: status (from ->error) first, then the eventfd, then
 * the parents, which join the worklist when their last member is done. A completed node no
 * longer needs its parents' references to its members, so nodes nobody holds are freed here.
 */
static void complete_run(struct hb_client *c, struct hb_sync *work)
{
	uint64_t seq = ++c->fences.seq;

	hbl_wake_waiters(c);
	while (work) {
		struct hb_sync *n = work;
		int st = n->error ? n->error : 1;

		work = n->work;
		n->work = NULL;
		n->done_seq = seq;
		/* The status is visible before the fd wakes anybody (fences.md §1.4, §5.2). */
		__atomic_store_n(&n->status, st, __ATOMIC_RELEASE);
		if (n->efd >= 0) {
			hbl_count(&c->conn.n_wakes);
			eventfd_write(n->efd, HBL_SYNC_EFD_DONE);
		}
		/* Its sync_files signal too; the reference they held goes with them. */
		n->refs -= hbl_kfences_complete(c, n, st);
		for (size_t i = 0; i < n->n_parents; i++) {
			struct hb_sync *p = n->parents[i];

			if (p->member[0] == n)
				p->member[0] = NULL;
			else if (p->member[1] == n)
				p->member[1] = NULL;
			/* Members complete in time order, so the first error seen is the first. */
			if (st < 0 && !p->error)
				p->error = st;
			if (--p->pending == 0) {
				p->work = work;
				work = p;
			}
		}
		n->refs -= (unsigned)n->n_parents;
		n->n_parents = 0;
		if (n->refs == 0)
			sync_free(n);
	}
}

/* A point completed: its leaves complete with its status, and so on up. */
void hbl_point_complete(struct hb_client *c, struct hbl_point *p, int status)
{
	struct hb_sync *work = NULL;

	point_unhash(c, p);
	for (size_t i = 0; i < p->n_leaves; i++) {
		struct hb_sync *l = p->leaves[i];

		l->point = NULL;
		l->pending = 0;
		if (status < 0)
			l->error = status;
		l->work = work;
		work = l;
	}
	point_free(p);
	complete_run(c, work);
}

/*
 * Drops one reference. A node nobody holds is freed; if it was still pending it lets go of its
 * members (which may be freed in turn) and of its point. Points left without leaves are
 * unhashed and chained on *cancel (through hnext): the caller closes their daemon waits once
 * the graph is consistent again, since that talks to the daemon.
 */
static void sync_unref(struct hb_sync *s, struct hbl_point **cancel)
{
	struct hb_sync *work = s;

	if (--s->refs > 0)
		return;
	s->work = NULL;
	while (work) {
		struct hb_sync *n = work;
		struct hbl_point *p = n->point;

		work = n->work;
		if (p) {
			for (size_t i = 0; i < p->n_leaves; i++) {
				if (p->leaves[i] == n) {
					p->leaves[i] = p->leaves[--p->n_leaves];
					break;
				}
			}
			if (p->n_leaves == 0) {
				point_unhash(n->client, p);
				p->hnext = *cancel;
				*cancel = p;
			}
		}
		for (int k = 0; k < 2; k++) {
			struct hb_sync *m = n->member[k];

			if (!m)
				continue;
			n->member[k] = NULL;
			parents_remove(m, n);
			if (--m->refs == 0) {
				m->work = work;
				work = m;
			}
		}
		sync_free(n);
	}
}

/* Closes the daemon waits of points nobody wants any more. A completion already on its way
 * finds no point and is ignored, which is also why ENOENT here is no error. */
static void cancel_points(struct hb_client *c, struct hbl_point *cancel)
{
	uint32_t resumes = c->resume.resumes;

	while (cancel) {
		struct hbl_point *p = cancel;
		SyncClose sc = SYNC_CLOSE__INIT;
		ClientMsg m = CLIENT_MSG__INIT;

		cancel = p->hnext;
		/* After a resume these waits were the old daemon's (out of the table, nobody
		 * opened them again), and the new one may have given their ids to other waits.
		 * A point on a watch has no wait to close. */
		if (p->wait && hbl_conn_broken(&c->conn) == 0 && c->resume.resumes == resumes) {
			sc.wait = p->wait;
			m.body_case = CLIENT_MSG__BODY_SYNC_CLOSE;
			m.sync_close = &sc;
			hbl_call_simple(c, &m);
		}
		point_free(p);
	}
}

void hbl_fence_done(struct hb_client *c, const FenceDone *f)
{
	struct hbl_point *p = hbl_point_find(c, f->timeline, f->value);
	uint32_t owner;

	/* Unknown: a point closed while its completion was in flight (or nonsense from the
	 * daemon, which this client cannot do anything with either). */
	if (!p || p->wait != f->wait)
		return;
	owner = p->owner;
	hbl_point_complete(c, p, f->status);
	hbl_events_push_fence(c, f->timeline, f->value, owner);
}

void hbl_fences_fail_all(struct hb_client *c, int err)
{
	for (size_t i = 0; i < HBL_POINT_BUCKETS; i++)
		while (c->fences.points[i])
			hbl_point_complete(c, c->fences.points[i], err);
}

void hbl_fences_init(struct hbl_fences *f)
{
	hbc_list_init(&f->syncs);
	hbc_list_init(&f->waiters);
	f->stall_fd = -1;
}

void hbl_fences_destroy(struct hb_client *c)
{
	struct hb_sync *s;

	hbl_watches_drop(c);
	hbl_slots_close(c);
	for (size_t i = 0; i < HBL_POINT_BUCKETS; i++) {
		while (c->fences.points[i]) {
			struct hbl_point *p = c->fences.points[i];
			c->fences.points[i] = p->hnext;
			point_free(p);
		}
	}
	hbc_list_for_each_safe(s, &c->fences.syncs, struct hb_sync, link) sync_free(s);
}

int hbl_sync_open_call(struct hb_client *c, uint64_t timeline, uint64_t value, bool watch,
		       struct hbb_reply *reply)
{
	SyncOpen so = SYNC_OPEN__INIT;
	ClientMsg m = CLIENT_MSG__INIT;

	so.timeline = timeline;
	so.value = value;
	so.watch = watch;
	m.body_case = CLIENT_MSG__BODY_SYNC_OPEN;
	m.sync_open = &so;
	return hbl_call(c, &m, SERVER_MSG__BODY_SYNC, reply);
}

/* ---- the public calls ------------------------------------------------------------------- */

/* hbl_sync_open_call for a point not in the table yet. After a resume inside the call, the
 * reply may be the old daemon's (kept and sent again), and the reopening of the other points
 * read past it, this wait's completion perhaps included, while the point did not exist: asked
 * again (the first wait completes unseen, its id matching no point). */
static int open_across_resumes(struct hb_client *c, const struct hb_fence *f, bool watch,
			       struct hbb_reply *reply)
{
	for (;;) {
		uint32_t resumes = c->resume.resumes;
		int r = hbl_sync_open_call(c, f->timeline, f->value, watch, reply);

		if (r < 0 || c->resume.resumes == resumes)
			return r;
		hbl_reply_free(reply);
	}
}

/*
 * Asks the daemon for (timeline, value), and for a watch of the timeline if there is none
 * (*watch: allocated by the caller; taken if granted, else left). Returns 1 if the point is
 * pending (fresh filled in: a wait, or its watch), 0 if it was born complete (s->error set if
 * it failed), or a negative errno.
 */
static int open_remote(struct hb_client *c, const struct hb_fence *f, struct hbl_point *fresh,
		       struct hbl_watch **watch, struct hb_sync *s)
{
	struct hbb_reply reply;
	const SyncReply *sr;
	int r = open_across_resumes(c, f, *watch != NULL, &reply);

	if (r < 0)
		return r;
	sr = reply.msg->sync;
	fresh->wait = sr->wait;
	fresh->owner = sr->owner;
	if (sr->watched && *watch) {
		hbl_watch_granted(c, *watch, f, sr);
		fresh->watch = *watch;
		*watch = NULL;
	}
	if (sr->status < 0)
		s->error = sr->status;
	r = sr->status == 0;
	hbl_reply_free(&reply);
	return r;
}

/* Opens a point for f that is not in the table yet: on the timeline's watch if this client
 * has one that covers f, else through the daemon. Same returns as open_remote. */
static int open_point(struct hb_client *c, const struct hb_fence *f, struct hbl_point *fresh,
		      struct hb_sync *s)
{
	struct hbl_watch *w = hbl_watch_current(c, f->timeline), *spare = NULL;
	int r;

	r = hbl_conn_broken(&c->conn);
	if (r < 0)
		return r;
	if (w && f->value > w->base) {
		/* The watch tells: passed (with status 1, above base), or pending on it. */
		fresh->owner = w->owner;
		fresh->watch = w;
		return f->value > w->value;
	}
	if (!w && (c->features & HBP_FEATURE_WATCH)) {
		spare = calloc(1, sizeof(*spare));
		if (!spare)
			return -ENOMEM;
	}
	r = open_remote(c, f, fresh, &spare, s);
	free(spare);
	return r;
}

int hbl_sync_open_locked(struct hb_client *c, const struct hb_fence *f, struct hb_sync **out)
{
	struct hbl_point *p, *fresh = NULL;
	struct hb_sync *s;
	int r;

	r = hbl_conn_broken(&c->conn);
	if (r < 0)
		return r;
	hbl_watches_settle(c);
	r = sync_new(c, &s);
	if (r < 0)
		return r;
	p = hbl_point_find(c, f->timeline, f->value);
	if (!p) {
		/* Allocated before asking, so that a wait the daemon opened always has a point
		 * to complete. */
		fresh = calloc(1, sizeof(*fresh));
		if (!fresh || point_reserve(fresh) < 0) {
			r = -ENOMEM;
			goto err;
		}
		r = open_point(c, f, fresh, s);
		if (r < 0)
			goto err;
		if (r == 0) {
			/* Born complete: at or below the timeline's value (with the error its
			 * point failed with, if the daemon remembers one). */
			point_free(fresh);
			complete_run(c, s);
			*out = s;
			return 0;
		}
		fresh->timeline = f->timeline;
		fresh->value = f->value;
		point_hash(c, fresh);
		p = fresh;
	} else if (point_reserve(p) < 0) {
		r = -ENOMEM;
		goto err;
	}
	p->leaves[p->n_leaves++] = s;
	s->point = p;
	s->pending = 1;
	*out = s;
	/* Last: arming it may read its completion. */
	if (p == fresh && fresh->watch)
		hbl_watch_attach(c, fresh->watch, fresh);
	return 0;

err:
	if (fresh)
		point_free(fresh);
	sync_free(s);
	return r;
}

HBL_PUBLIC struct hb_sync *hb_sync_open(struct hb_client *c, const struct hb_fence *f)
{
	struct hb_sync *s = NULL;
	int r;

	if (!c || !f || f->timeline == 0)
		return errno = EINVAL, NULL;
	hbl_lock(c);
	r = hbl_sync_open_locked(c, f, &s);
	hbl_unlock(c);
	if (r < 0)
		return errno = -r, NULL;
	return s;
}

HBL_PUBLIC struct hb_sync *hb_sync_merge(struct hb_sync *a, struct hb_sync *b)
{
	struct hb_sync *in[2] = {a, b}, *s, *first_err = NULL;
	size_t need_a, need_b;
	struct hb_client *c;
	int r;

	if (!a || !b || a->client != b->client || !a->open || !b->open)
		return errno = EINVAL, NULL;
	c = a->client;
	hbl_lock(c);
	r = sync_new(c, &s);
	if (r < 0)
		goto err_unlock;
	/* Every allocation first: past this point the merge cannot fail half-way. */
	need_a = a->status == 0;
	need_b = b->status == 0;
	if (a == b)
		r = parents_reserve(a, need_a + need_b);
	else if ((r = parents_reserve(a, need_a)) == 0)
		r = parents_reserve(b, need_b);
	if (r < 0) {
		sync_free(s);
		goto err_unlock;
	}
	for (int k = 0; k < 2; k++) {
		struct hb_sync *m = in[k];

		if (m->status == 0) {
			m->parents[m->n_parents++] = s;
			m->refs++;
			s->member[k] = m;
			s->pending++;
		} else if (m->status < 0 && (!first_err || m->done_seq < first_err->done_seq)) {
			/* An error from before the merge still counts (fences.md §5.3): the
			 * earliest one, which no later member can displace. */
			first_err = m;
		}
	}
	if (first_err)
		s->error = first_err->status;
	if (s->pending == 0)
		complete_run(c, s);
	hbl_unlock(c);
	return s;

err_unlock:
	hbl_unlock(c);
	return errno = -r, NULL;
}

HBL_PUBLIC int hb_sync_fd(const struct hb_sync *cs)
{
	struct hb_sync *s = (struct hb_sync *)cs; /* the fd is the library's, made here */
	int r = 0;

	if (!s)
		return hbl_fail(-EINVAL);
	hbl_lock(s->client);
	if (!s->open)
		r = -EINVAL;
	else if (s->efd < 0) {
		/* Non-blocking and not a semaphore: one write makes it readable for good, and
		 * nobody can block on it by mistake. */
		s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (s->efd < 0)
			r = -errno;
		else if (hbl_sync_status(s) != 0)
			eventfd_write(s->efd, HBL_SYNC_EFD_DONE);
	}
	hbl_unlock(s->client);
	return r < 0 ? hbl_fail(r) : s->efd;
}

void hbl_sync_close_locked(struct hb_sync *s)
{
	struct hb_client *c = s->client;
	struct hbl_point *cancel = NULL;

	s->open = false;
	if (s->efd >= 0) {
		close(s->efd);
		s->efd = -1;
	}
	sync_unref(s, &cancel);
	cancel_points(c, cancel);
}

HBL_PUBLIC void hb_sync_close(struct hb_sync *s)
{
	struct hb_client *c;
	int saved = errno;

	if (!s)
		return;
	c = s->client;
	hbl_lock(c);
	hbl_sync_close_locked(s);
	hbl_unlock(c);
	errno = saved;
}
