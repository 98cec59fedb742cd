/*
 * Fences in the daemon (docs/PROTOCOL.md §3 "Fences", §7.4): timelines owned by one session,
 * waits that sessions open on (timeline, value), the completions they are owed, and the
 * per-export reservations that give CPU access its implicit sync.
 *
 * Rules this file keeps, and why:
 * - Values only move forward and a signal pops waits in (value, id) order, so every session
 *   receives a timeline's completions in value order: nobody sees N complete while N-1 is
 *   pending (fences.md §1.2, §5.4).
 * - The signal path never blocks and never closes anything: a completion is the wait itself
 *   moved to its session's bounded queue (no allocation, so no failure), and a session whose
 *   queue is full is dropped from the next loop iteration instead of being waited for. Its
 *   library sees the connection end and fails every pending fence, so no completion is lost
 *   silently.
 * - Timeline ids are 64 random bits (getrandom), so a domain cannot find another's timelines
 *   by counting, and ids are not reused by this daemon nor, barring a 2^-64 coincidence, by
 *   the next one. A timeline is visible only to its owner's domain and to the domains the
 *   owner gave a fence to (attached to a buffer shared with them, or shared explicitly);
 *   everybody else is told ENOENT, as for an id that does not exist.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "daemon/hyperbufd.h"
#include "protocol/limits.h"

static struct hbc_list *timeline_bucket(struct hbd *d, uint64_t id)
{
	return &d->timelines[(id * 0x9e3779b97f4a7c15ull) >> (64 - HBD_TIMELINE_BUCKET_BITS)];
}

static struct hbc_list *wait_bucket(struct hbd *d, uint64_t id)
{
	return &d->waits[(id * 0x9e3779b97f4a7c15ull) >> (64 - HBD_WAIT_BUCKET_BITS)];
}

/* A fresh id: 64 random bits, never 0 (no timeline) and never one in use. */
static int random_id(struct hbd *d, uint64_t *id)
{
	do {
		if (getrandom(id, sizeof(*id), 0) != (ssize_t)sizeof(*id))
			return errno ? -errno : -EAGAIN;
	} while (*id == 0 || hbd_timeline_find(d, *id));
	return 0;
}

void hbd_timelines_init(struct hbd *d)
{
	for (size_t i = 0; i < sizeof(d->timelines) / sizeof(d->timelines[0]); i++)
		hbc_list_init(&d->timelines[i]);
	for (size_t i = 0; i < sizeof(d->waits) / sizeof(d->waits[0]); i++)
		hbc_list_init(&d->waits[i]);
}

void hbd_timeline_insert(struct hbd *d, struct hbd_timeline *tl)
{
	hbc_list_insert_tail(timeline_bucket(d, tl->id), &tl->hash_link);
	hbc_list_insert_tail(&tl->owner->timelines, &tl->owner_link);
	tl->owner->dom->timelines++;
}

struct hbd_timeline *hbd_timeline_find(struct hbd *d, uint64_t id)
{
	struct hbd_timeline *tl;

	if (id == 0)
		return NULL;
	hbc_list_for_each_safe(tl, timeline_bucket(d, id), struct hbd_timeline, hash_link)
	{
		if (tl->id == id)
			return tl;
	}
	return NULL;
}

/* Who may wait on a timeline: its owner's domain and the domains it was shared with. */
static bool timeline_visible(struct hbd *d, const struct hbd_timeline *tl, uint32_t domain)
{
	if (domain == tl->owner->dom->id)
		return true;
	for (unsigned i = 0; i < tl->n_seen_by; i++)
		if (tl->seen_by[i] == domain)
			return true;
	return false;
}

/* Lets domain see tl. -ENOSPC past HBD_SEEN_BY_MAX domains, -ENOMEM. */
static int timeline_show(struct hbd_timeline *tl, uint32_t domain)
{
	uint32_t *v;
	unsigned cap;

	if (domain == tl->owner->dom->id)
		return 0;
	for (unsigned i = 0; i < tl->n_seen_by; i++)
		if (tl->seen_by[i] == domain)
			return 0;
	if (tl->n_seen_by == tl->cap_seen_by) {
		if (tl->cap_seen_by >= HBD_SEEN_BY_MAX)
			return -ENOSPC;
		cap = tl->cap_seen_by ? tl->cap_seen_by * 2 : 4;
		v = realloc(tl->seen_by, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		tl->seen_by = v;
		tl->cap_seen_by = cap;
	}
	tl->seen_by[tl->n_seen_by++] = domain;
	hbd_state_mark_timeline(tl);
	return 0;
}

/* ---- the wait heap ---------------------------------------------------------------------- */

static bool wait_before(const struct hbd_wait *a, const struct hbd_wait *b)
{
	return a->value < b->value || (a->value == b->value && a->id < b->id);
}

static void heap_set(struct hbd_timeline *tl, size_t i, struct hbd_wait *w)
{
	tl->heap[i] = w;
	w->heap_index = i;
}

static void heap_up(struct hbd_timeline *tl, size_t i)
{
	struct hbd_wait *w = tl->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!wait_before(w, tl->heap[parent]))
			break;
		heap_set(tl, i, tl->heap[parent]);
		i = parent;
	}
	heap_set(tl, i, w);
}

static void heap_down(struct hbd_timeline *tl, size_t i)
{
	struct hbd_wait *w = tl->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = l;
		if (l >= tl->n_heap)
			break;
		if (r < tl->n_heap && wait_before(tl->heap[r], tl->heap[l]))
			m = r;
		if (!wait_before(tl->heap[m], w))
			break;
		heap_set(tl, i, tl->heap[m]);
		i = m;
	}
	heap_set(tl, i, w);
}

static int heap_push(struct hbd_timeline *tl, struct hbd_wait *w)
{
	if (tl->n_heap == tl->cap_heap) {
		size_t cap = tl->cap_heap ? tl->cap_heap * 2 : 8;
		struct hbd_wait **v = realloc(tl->heap, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		tl->heap = v;
		tl->cap_heap = cap;
	}
	heap_set(tl, tl->n_heap++, w);
	heap_up(tl, tl->n_heap - 1);
	return 0;
}

static void heap_remove(struct hbd_timeline *tl, struct hbd_wait *w)
{
	size_t i = w->heap_index;
	struct hbd_wait *last = tl->heap[--tl->n_heap];

	if (i == tl->n_heap)
		return;
	heap_set(tl, i, last);
	heap_up(tl, i);
	heap_down(tl, last->heap_index);
}

/* ---- waits ------------------------------------------------------------------------------ */

/* Takes a pending wait out of everything that finds it as pending. */
static void wait_unlink_pending(struct hbd_wait *w)
{
	struct hbd_domain *dom = w->s->dom;

	heap_remove(w->tl, w);
	w->tl = NULL;
	hbc_list_remove(&w->hash_link);
	hbc_list_remove(&w->session_link);
	if (dom->fence_waits)
		dom->fence_waits--;
}

/*
 * A wait completes with status: it leaves the pending structures and is queued for its
 * session, or (session already being dropped, or too far behind) freed. Never blocks, never
 * closes a session, never allocates.
 */
static void wait_complete(struct hbd *d, struct hbd_wait *w, int32_t status)
{
	struct hbd_session *s = w->s;

	wait_unlink_pending(w);
	w->status = status;
	d->stats.fences_completed++;
	if (s->doomed || s->closing) {
		hbd_wait_free(w);
		return;
	}
	if (s->n_done >= d->cfg->fence_waits_per_domain) {
		/* The queue is full: this client does not read. Waiting for it would let one
		 * slow reader hold every signaller back, so it goes; its library then fails
		 * every fence it still waits on (the completion is not lost silently). */
		hbd_wait_free(w);
		d->stats.fence_sessions_dropped++;
		hbd_session_drop_later(s, "fence completions queue full: the client does not "
					  "read them");
		return;
	}
	hbc_list_insert_tail(&s->done, &w->session_link);
	s->n_done++;
	hbd_session_want_write(s);
}

/* Completes every pending wait of tl at or below value, lowest first. */
static void complete_upto(struct hbd *d, struct hbd_timeline *tl, uint64_t value, int32_t status)
{
	while (tl->n_heap > 0 && tl->heap[0]->value <= value)
		wait_complete(d, tl->heap[0], status);
}

/* ---- timelines -------------------------------------------------------------------------- */

static void timeline_destroy(struct hbd *d, struct hbd_timeline *tl, const char *why)
{
	struct hbd_domain *dom = tl->owner->dom;

	log_debug("%s: timeline %llu %s at value %llu, %zu waits pending", tl->owner->label,
		  (unsigned long long)tl->id, why, (unsigned long long)tl->value, tl->n_heap);
	/* Oldest first, as a signal would: the owner is gone, so everybody still waiting learns
	 * it through the same ordered path (fences.md §4.1, §5.5). */
	complete_upto(d, tl, UINT64_MAX, -EPIPE);
	hbc_list_remove(&tl->hash_link);
	hbc_list_remove(&tl->owner_link);
	if (dom->timelines)
		dom->timelines--;
	hbd_state_forget_timeline(d, tl);
	free(tl->heap);
	free(tl->fails);
	free(tl->seen_by);
	free(tl);
}

int hbd_timeline_create(struct hbd_session *s, uint64_t *id)
{
	struct hbd *d = s->d;
	struct hbd_timeline *tl;
	int r;

	if (s->dom->timelines >= d->cfg->timelines_per_domain)
		return -EDQUOT;
	tl = calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	r = random_id(d, &tl->id);
	if (r < 0) {
		free(tl);
		return r;
	}
	tl->owner = s;
	hbd_timeline_insert(d, tl);
	d->stats.timelines_total++;
	hbd_state_mark_timeline(tl);
	*id = tl->id;
	log_debug("%s: timeline %llu created", s->label, (unsigned long long)tl->id);
	return 0;
}

/* The timeline a session names for an owner-only operation: ENOENT if it may not even see
 * it, EPERM if it sees it but does not own it. */
static int owned_timeline(struct hbd_session *s, uint64_t id, struct hbd_timeline **out)
{
	struct hbd_timeline *tl = hbd_timeline_find(s->d, id);

	if (!tl || !timeline_visible(s->d, tl, s->dom->id))
		return -ENOENT;
	if (tl->owner != s)
		return -EPERM;
	*out = tl;
	return 0;
}

/* Records that lo..hi failed with err: extends the newest range when it continues it with the
 * same error, else adds one, forgetting the oldest when HBD_FAIL_RANGES are held. Allocation
 * failure only forgets (a late opener then reads 1): the signal itself must not fail. */
static void remember_fail(struct hbd_timeline *tl, uint64_t lo, uint64_t hi, int32_t err)
{
	struct hbd_fail_range *last = tl->n_fails ? &tl->fails[tl->n_fails - 1] : NULL;

	if (last && last->hi + 1 == lo && last->err == err) {
		last->hi = hi;
		return;
	}
	if (!tl->fails) {
		tl->fails = calloc(HBD_FAIL_RANGES, sizeof(*tl->fails));
		if (!tl->fails)
			return;
	}
	if (tl->n_fails == HBD_FAIL_RANGES) {
		memmove(&tl->fails[0], &tl->fails[1], sizeof(tl->fails[0]) * (HBD_FAIL_RANGES - 1));
		tl->n_fails--;
	}
	tl->fails[tl->n_fails++] = (struct hbd_fail_range){lo, hi, err};
}

/* The status of a point the timeline has passed: the error of a remembered failed range that
 * holds it, else 1. */
static int32_t passed_status(const struct hbd_timeline *tl, uint64_t value)
{
	unsigned lo = 0, hi = tl->n_fails;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		const struct hbd_fail_range *r = &tl->fails[mid];

		if (value < r->lo)
			hi = mid;
		else if (value > r->hi)
			lo = mid + 1;
		else
			return r->err;
	}
	return 1;
}

int hbd_timeline_signal(struct hbd_session *s, uint64_t id, uint64_t value, uint32_t error)
{
	struct hbd_timeline *tl;
	int r;

	if (error >= HBP_ERRNO_LIMIT)
		return -EINVAL;
	r = owned_timeline(s, id, &tl);
	if (r < 0)
		return r;
	if (value <= tl->value)
		return 0; /* values only move forward; a late or repeated signal changes nothing */
	if (error)
		remember_fail(tl, tl->value + 1, value, -(int32_t)error);
	tl->value = value;
	hbd_state_mark_timeline(tl);
	/* A fail sets the error on each point as it completes it: the status travels in the
	 * same message as the completion, so no waiter can see the one without the other. */
	complete_upto(s->d, tl, value, error ? -(int32_t)error : 1);
	return 0;
}

int hbd_timeline_share(struct hbd_session *s, uint64_t id, uint32_t domain)
{
	struct hbd_timeline *tl;
	int r = owned_timeline(s, id, &tl);

	if (r < 0)
		return r;
	if (domain != s->dom->id &&
	    s->d->backend->can_share(s->d->backend_state, s->dom->id, domain) < 0)
		return -EPERM;
	return timeline_show(tl, domain);
}

int hbd_timeline_destroy_req(struct hbd_session *s, uint64_t id)
{
	struct hbd_timeline *tl;
	int r = owned_timeline(s, id, &tl);

	if (r < 0)
		return r;
	timeline_destroy(s->d, tl, "destroyed");
	return 0;
}

int hbd_sync_open(struct hbd_session *s, uint64_t timeline, uint64_t value, uint64_t *wait,
		  int32_t *status, uint32_t *owner)
{
	struct hbd *d = s->d;
	struct hbd_timeline *tl = hbd_timeline_find(d, timeline);
	struct hbd_wait *w;
	int r;

	if (!tl || !timeline_visible(d, tl, s->dom->id))
		return -ENOENT;
	*owner = tl->owner->dom->id;
	if (value <= tl->value) {
		*wait = 0; /* born complete */
		*status = passed_status(tl, value);
		return 0;
	}
	*status = 0;
	if (s->dom->fence_waits >= d->cfg->fence_waits_per_domain)
		return -EDQUOT;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->id = d->next_handle++;
	w->s = s;
	w->tl = tl;
	w->timeline = timeline;
	w->value = value;
	r = heap_push(tl, w);
	if (r < 0) {
		free(w);
		return r;
	}
	hbc_list_insert_tail(wait_bucket(d, w->id), &w->hash_link);
	hbc_list_insert_tail(&s->waits, &w->session_link);
	s->dom->fence_waits++;
	*wait = w->id;
	return 0;
}

int hbd_sync_close(struct hbd_session *s, uint64_t id)
{
	struct hbd_wait *w;

	hbc_list_for_each_safe(w, wait_bucket(s->d, id), struct hbd_wait, hash_link)
	{
		/* Another session's wait id is as unknown to this one as a made-up one. */
		if (w->id == id && w->s == s) {
			wait_unlink_pending(w);
			hbd_wait_free(w);
			return 0;
		}
	}
	/* Also the answer for a wait that completed and whose completion is on its way: the
	 * library ignores it for exactly that reason. */
	return -ENOENT;
}

void hbd_session_fences_close(struct hbd_session *s)
{
	struct hbd_timeline *tl;
	struct hbd_wait *w;

	/* Its own waits first, so that destroying its timelines below queues nothing for it. */
	hbc_list_for_each_safe(w, &s->waits, struct hbd_wait, session_link)
	{
		wait_unlink_pending(w);
		hbd_wait_free(w);
	}
	while ((w = hbd_session_next_done(s)))
		hbd_wait_free(w);
	hbc_list_for_each_safe(tl, &s->timelines, struct hbd_timeline, owner_link)
	{
		timeline_destroy(s->d, tl, "lost its owner");
	}
}

/* ---- reservations ----------------------------------------------------------------------- */

/* An entry whose fence has completed: its timeline moved past it or no longer exists (a
 * destroyed timeline completed everything). */
static bool entry_done(struct hbd *d, const struct hbd_resv_entry *e)
{
	const struct hbd_timeline *tl = hbd_timeline_find(d, e->timeline);

	return !tl || e->value <= tl->value;
}

/* Usage strength as dma_resv orders it: WRITE (1) before READ (2); lower is stronger. */
static unsigned usage_rank(uint32_t usage)
{
	return usage == HB_ACCESS_WRITE ? 1 : 2;
}

/* The buffer a session names for fence purposes: either side of the share, by hid; anybody
 * else gets ENOENT, as hb_query does. */
static struct hbd_buffer *share_lookup(struct hbd_session *s, const struct hb_id *hid)
{
	struct hbd_buffer *b = hbd_hid_lookup(s->d, hid);

	if (!b || (b->mem.exporter != s->dom->id && b->mem.peer != s->dom->id))
		return NULL;
	return b;
}

int hbd_fence_attach(struct hbd_session *s, const struct hb_id *hid, uint64_t timeline,
		     uint64_t value, uint32_t usage)
{
	struct hbd *d = s->d;
	struct hbd_buffer *b;
	struct hbd_timeline *tl;
	struct hbd_resv_entry e;

	if (usage == 0 || (usage & ~(HB_ACCESS_READ | HB_ACCESS_WRITE)))
		return -EINVAL;
	b = share_lookup(s, hid);
	if (!b)
		return -ENOENT;
	tl = hbd_timeline_find(d, timeline);
	if (!tl || !timeline_visible(d, tl, s->dom->id))
		return -ENOENT;
	/* Both sides of the share must be able to wait on it: a fence the other side could not
	 * open would make its CPU access wait on something it cannot see. The owner attaching
	 * its fence gives it to both sides; anybody else may only attach what they see. */
	if (tl->owner->dom == s->dom) {
		int r = timeline_show(tl, b->mem.exporter);

		if (r == 0)
			r = timeline_show(tl, b->mem.peer);
		if (r < 0)
			return r;
	} else if (!timeline_visible(d, tl, b->mem.exporter) ||
		   !timeline_visible(d, tl, b->mem.peer)) {
		return -ENOENT;
	}
	if (value <= tl->value)
		return 0; /* already complete: nobody would ever wait for it */
	e.timeline = timeline;
	e.value = value;
	e.usage = usage & HB_ACCESS_WRITE ? HB_ACCESS_WRITE : HB_ACCESS_READ;
	if (!b->resv) {
		b->resv = calloc(HBP_RESV_LIMIT, sizeof(*b->resv));
		if (!b->resv)
			return -ENOMEM;
	}
	/* dma_resv_add_fence: replace the first entry that is the same timeline, not a
	 * downgrade and not later than the new fence, or that has completed; else append. */
	for (unsigned i = 0; i < b->n_resv; i++) {
		struct hbd_resv_entry *old = &b->resv[i];

		if ((old->timeline == e.timeline && usage_rank(old->usage) >= usage_rank(e.usage) &&
		     e.value >= old->value) ||
		    entry_done(d, old)) {
			*old = e;
			hbd_state_mark_buffer(b, false);
			return 0;
		}
	}
	if (b->n_resv == HBP_RESV_LIMIT)
		return -ENOSPC;
	b->resv[b->n_resv++] = e;
	hbd_state_mark_buffer(b, false);
	return 0;
}

int hbd_cpu_access(struct hbd_session *s, const struct hb_id *hid, uint32_t access,
		   struct hbd_resv_entry *out, unsigned *n)
{
	struct hbd *d = s->d;
	struct hbd_buffer *b;

	*n = 0;
	if (access == 0 || (access & ~(HB_ACCESS_READ | HB_ACCESS_WRITE)))
		return -EINVAL;
	b = share_lookup(s, hid);
	if (!b)
		return -ENOENT;
	for (unsigned i = 0; i < b->n_resv; i++) {
		const struct hbd_resv_entry *e = &b->resv[i];
		unsigned j;

		/* A reader waits for the writers only; a writer waits for everybody. */
		if (!(access & HB_ACCESS_WRITE) && e->usage != HB_ACCESS_WRITE)
			continue;
		if (entry_done(d, e))
			continue;
		/* One per timeline, the highest: its points complete in order, so waiting for the
		 * last one waits for them all. */
		for (j = 0; j < *n && out[j].timeline != e->timeline; j++)
			;
		if (j == *n)
			out[(*n)++] = *e;
		else if (e->value > out[j].value)
			out[j].value = e->value;
	}
	return 0;
}
