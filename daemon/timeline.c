/*
 * Fences in the daemon (docs/PROTOCOL.md §3 "Fences", §7.4): timelines owned by one session,
 * waits that sessions open on (timeline, value) and the completions they are owed. Watches are
 * in fence_watch.c; the per-export reservations that give CPU access its implicit sync in
 * resv.c.
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
	for (size_t i = 0; i < sizeof(d->fence_watches) / sizeof(d->fence_watches[0]); i++)
		hbc_list_init(&d->fence_watches[i]);
}

void hbd_timeline_insert(struct hbd *d, struct hbd_timeline *tl)
{
	hbc_list_init(&tl->fence_watches);
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
bool hbd_timeline_visible(struct hbd *d, const struct hbd_timeline *tl, uint32_t domain)
{
	if (domain == tl->owner->dom->id)
		return true;
	for (unsigned i = 0; i < tl->n_seen_by; i++)
		if (tl->seen_by[i] == domain)
			return true;
	return false;
}

/* Lets domain see tl. -ENOSPC past HBD_SEEN_BY_MAX domains, -ENOMEM. */
int hbd_timeline_show(struct hbd_timeline *tl, uint32_t domain)
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
	hbd_fence_slots_put(tl);
	hbd_fence_watches_end(tl);
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

	if (!tl || !hbd_timeline_visible(s->d, tl, s->dom->id))
		return -ENOENT;
	if (tl->owner != s)
		return -EPERM;
	*out = tl;
	return 0;
}

/* Records that lo..hi failed with err: extends the newest range when it continues it with the
 * same error, else adds one, forgetting the oldest when HBD_FAIL_RANGES are held. Allocation
 * failure only forgets (false: a late opener then reads 1): the signal itself must not fail. */
static bool remember_fail(struct hbd_timeline *tl, uint64_t lo, uint64_t hi, int32_t err)
{
	struct hbd_fail_range *last = tl->n_fails ? &tl->fails[tl->n_fails - 1] : NULL;

	if (last && last->hi + 1 == lo && last->err == err) {
		last->hi = hi;
		return true;
	}
	if (!tl->fails) {
		tl->fails = calloc(HBD_FAIL_RANGES, sizeof(*tl->fails));
		if (!tl->fails)
			return false;
	}
	if (tl->n_fails == HBD_FAIL_RANGES) {
		memmove(&tl->fails[0], &tl->fails[1], sizeof(tl->fails[0]) * (HBD_FAIL_RANGES - 1));
		tl->n_fails--;
	}
	tl->fails[tl->n_fails++] = (struct hbd_fail_range){lo, hi, err};
	return true;
}

/* The first remembered failed range that ends at or above value (n_fails if none). */
static unsigned fail_at_or_above(const struct hbd_timeline *tl, uint64_t value)
{
	unsigned lo = 0, hi = tl->n_fails;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (tl->fails[mid].hi < value)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The status of a point the timeline has passed: the error of a remembered failed range that
 * holds it, else 1. */
static int32_t passed_status(const struct hbd_timeline *tl, uint64_t value)
{
	unsigned i = fail_at_or_above(tl, value);

	return i < tl->n_fails && tl->fails[i].lo <= value ? tl->fails[i].err : 1;
}

uint64_t hbd_timeline_run(const struct hbd_timeline *tl, uint64_t from, int32_t *status)
{
	unsigned i = fail_at_or_above(tl, from + 1);
	uint64_t end = tl->value;

	*status = 1;
	if (i < tl->n_fails && tl->fails[i].lo <= from + 1) {
		*status = tl->fails[i].err;
		end = tl->fails[i].hi;
	} else if (i < tl->n_fails && tl->fails[i].lo - 1 < end) {
		end = tl->fails[i].lo - 1;
	}
	return end < tl->value ? end : tl->value;
}

int hbd_timeline_signal(struct hbd_session *s, uint64_t id, uint64_t value, uint32_t error,
			bool lazy)
{
	struct hbd_timeline *tl;
	int r;

	if (error >= HBP_ERRNO_LIMIT)
		return -EINVAL;
	r = owned_timeline(s, id, &tl);
	if (r < 0)
		return r;
	s->d->stats.timeline_signals++;
	tl->lazy_wanted = lazy;
	if (value <= tl->value)
		return 0; /* values only move forward; a late or repeated signal changes nothing */
	if (error) {
		/* No slot may vouch for a point at or below value from here on. */
		hbd_fence_slots_signal(tl, true);
		/* Watches tell statuses from the remembered ranges: what they have not told yet
		 * goes now if one may be forgotten (or none can be kept), while it is known. */
		if (!tl->fails || tl->n_fails == HBD_FAIL_RANGES)
			hbd_fence_watches_flush(tl);
		if (!remember_fail(tl, tl->value + 1, value, -(int32_t)error))
			hbd_fence_watches_tell_failed(tl, value, -(int32_t)error);
	}
	tl->value = value;
	if (!error)
		hbd_fence_slots_signal(tl, false);
	hbd_state_mark_timeline(tl);
	/* A fail sets the error on each point as it completes it: the status travels in the
	 * same message as the completion, so no waiter can see the one without the other. */
	complete_upto(s->d, tl, value, error ? -(int32_t)error : 1);
	hbd_fence_watches_signal(s->d, tl);
	/* Told here, where the owner is sending records anyway: a timeline whose every waiter
	 * reads its slots needs no more of them. */
	hbd_fence_lazy_check(tl);
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
	return hbd_timeline_show(tl, domain);
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

int hbd_sync_open(struct hbd_session *s, struct hbd_sync_open *o)
{
	struct hbd *d = s->d;
	struct hbd_timeline *tl = hbd_timeline_find(d, o->timeline);
	uint64_t timeline = o->timeline, value = o->value;
	struct hbd_wait *w;
	int r;

	if (!tl || !hbd_timeline_visible(d, tl, s->dom->id))
		return -ENOENT;
	o->owner = tl->owner->dom->id;
	o->wait = 0;
	o->status = value <= tl->value ? passed_status(tl, value) : 0; /* else pending */
	/* Watched, the library keeps the point itself: nothing more here. */
	/* Its first news when the point it opens passes; after each, news of any progress
	 * until the library arms it further (PROTOCOL.md §3 "Watches"). */
	if (o->watch && hbd_fence_watch_open(s, tl, o->status ? 0 : value) == 0) {
		o->watched = true;
		o->told = tl->value;
		/* With a slot the library hears it there, and arms the watch only if it stalls
		 * or stops being trusted. */
		if (hbd_fence_slot_for(s, tl, &o->slot) == 0)
			hbd_fence_watch_arm(s, tl->id, UINT64_MAX);
		else
			o->slot.gen = 0; /* none: the watch alone tells */
		/* One the daemon tells needs its record. */
		if (tl->n_told)
			hbd_fence_lazy_end(tl);
		return 0;
	}
	if (value <= tl->value)
		return 0; /* born complete */
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
	o->wait = w->id;
	/* The value is the daemon's to tell now. */
	hbd_fence_lazy_end(tl);
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

	/* Its own waits and watches first, so that destroying its timelines below queues
	 * nothing for it. */
	hbd_session_fence_watches_close(s);
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
