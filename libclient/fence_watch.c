/*
 * Watched timelines (docs/PROTOCOL.md §3 "Watches"). The first fence opened on a timeline asks
 * the daemon to keep this client told of the timeline's progress; from then on a fence on it
 * is a local point: born complete if the timeline has passed it, else completed by the
 * TimelineValue that passes it. No open, no completion and no close travel per fence.
 *
 * A watch lasts as long as its timeline and this connection. A resume forgets them all: the
 * new daemon has none, and their pending points are opened again as plain waits.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "common/clock.h"
#include "libclient/client.h"
#include "protocol/limits.h"

static size_t watch_bucket(uint64_t timeline)
{
	return (size_t)((timeline * 0x9e3779b97f4a7c15ull) >> 58) % HBL_WATCH_BUCKETS;
}

struct hbl_watch *hbl_watch_find(struct hb_client *c, uint64_t timeline)
{
	struct hbl_watch *w = c->fences.watches[watch_bucket(timeline)];

	while (w && w->timeline != timeline)
		w = w->hnext;
	return w;
}

void hbl_watch_insert(struct hb_client *c, struct hbl_watch *w)
{
	size_t b = watch_bucket(w->timeline);

	w->hnext = c->fences.watches[b];
	c->fences.watches[b] = w;
}

static void watch_remove(struct hb_client *c, struct hbl_watch *w)
{
	struct hbl_watch **pp = &c->fences.watches[watch_bucket(w->timeline)];

	while (*pp && *pp != w)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = w->hnext;
	if (w->idle)
		c->fences.idle_watches--;
	if (w->slot.p)
		c->fences.slotted--;
	/* Its points stay pending, with no wait: whoever dropped it opens them again. */
	while (w->points) {
		struct hbl_point *p = w->points;

		w->points = p->wnext;
		p->watch = NULL;
		p->wnext = NULL;
	}
	free(w);
}

/* WatchArm: without waiting for an answer (there is none), or as a call when too many
 * requests are posted already. An error is the connection's, and ends every point anyway. */
static void watch_arm(struct hb_client *c, struct hbl_watch *w, uint64_t value)
{
	WatchArm wa = WATCH_ARM__INIT;
	ClientMsg m = CLIENT_MSG__INIT;

	wa.timeline = w->timeline;
	wa.value = value;
	wa.quiet = true;
	m.body_case = CLIENT_MSG__BODY_WATCH_ARM;
	m.watch_arm = &wa;
	w->armed = value;
	if (hbl_post(c, &m) == -EAGAIN) {
		wa.quiet = false;
		hbl_call_simple(c, &m);
	}
}

void hbl_watch_attach(struct hb_client *c, struct hbl_watch *w, struct hbl_point *p)
{
	struct hbl_point **pp = &w->points;

	/* Waiting on its slot from now: a slice of stillness from here is a stall. */
	if (!w->points)
		w->still_since = hbc_now_ms();
	/* Ascending: a TimelineValue completes a prefix, in value order. */
	while (*pp && (*pp)->value < p->value)
		pp = &(*pp)->wnext;
	p->wnext = *pp;
	*pp = p;
	p->watch = w;
	/* A slot tells without the daemon: our bit goes into it now, for whoever sleeps. */
	if (w->slot.p) {
		__atomic_fetch_or(&w->slot.p->waiters, 1ull << w->slot_bit, __ATOMIC_SEQ_CST);
		hbl_watch_slot_check(c, w);
	} else if (w->armed && p->value < w->armed) {
		watch_arm(c, w, p->value);
	}
}

void hbl_watch_granted(struct hb_client *c, struct hbl_watch *w, const struct hb_fence *f,
		       const SyncReply *sr)
{
	*w = (struct hbl_watch){.timeline = f->timeline, .owner = sr->owner};
	w->base = w->value = sr->value;
	/* The daemon armed it at this point if pending (hbd_sync_open). */
	w->armed = sr->status == 0 ? f->value : 0;
	hbl_watch_insert(c, w);
	if (!sr->slot)
		return;
	/* The daemon armed it past everything: the slot tells, or (if we cannot use it)
	 * settle arms it at its first point. */
	w->armed = UINT64_MAX;
	hbl_watch_take_slot(c, w, sr->slot);
	if (!w->slot.p)
		hbl_watch_set_idle(c, w);
}

void hbl_watch_set_idle(struct hb_client *c, struct hbl_watch *w)
{
	if (!w->idle) {
		w->idle = true;
		c->fences.idle_watches++;
	}
}

/* Where an idle watch is armed: past everything while its slot tells, else its first point. */
static uint64_t arm_target(const struct hbl_watch *w)
{
	if ((w->slot.p && !w->stalled) || !w->points)
		return UINT64_MAX;
	return w->points->value;
}

static struct hbl_watch *first_idle(struct hb_client *c)
{
	for (size_t i = 0; i < HBL_WATCH_BUCKETS; i++)
		for (struct hbl_watch *w = c->fences.watches[i]; w; w = w->hnext)
			if (w->idle)
				return w;
	return NULL;
}

void hbl_watches_settle(struct hb_client *c)
{
	struct hbl_watch *w;

	/* Values the daemon asked for again go first: a consumer waits on them. */
	hbl_timelines_flush(c);
	/* Only where a request may be sent: not from inside another one's reading. Sending
	 * may read (a full socket, a resume, a call when too many are posted), which may free
	 * any watch: so each one is found afresh. */
	while (c->fences.idle_watches && !c->calls.pending && !c->resume.active &&
	       (w = first_idle(c))) {
		uint64_t target = arm_target(w);

		w->idle = false;
		c->fences.idle_watches--;
		/* Told of any progress still, or armed past a point its slot no longer tells:
		 * only when it passes the first point. */
		if (w->armed == 0 || w->armed > target)
			watch_arm(c, w, target);
	}
	hbl_slots_arm(c);
}

void hbl_watch_detach(struct hbl_point *p)
{
	struct hbl_point **pp;

	if (!p->watch)
		return;
	pp = &p->watch->points;
	while (*pp && *pp != p)
		pp = &(*pp)->wnext;
	if (*pp)
		*pp = p->wnext;
	p->watch = NULL;
	p->wnext = NULL;
}

void hbl_timeline_value(struct hb_client *c, const TimelineValue *tv)
{
	struct hbl_watch *w = hbl_watch_find(c, tv->timeline);
	bool completed = false;

	/* None: it ended, or the daemon is confused, and this client can do nothing with it. */
	if (!w)
		return;
	if (tv->value > w->value)
		w->value = tv->value;
	w->stalled = false;
	/* Framing it re-armed the watch for any progress, after every WatchArm up to here. */
	if (tv->value >= w->armed)
		w->armed = 0;
	/* Which points failed, and with what, is the daemon's to say from here down; its slot
	 * is poisoned already. */
	if (tv->status < 0) {
		w->base = w->value;
		hbl_watch_slot_drop(c, w);
	}
	while (w->points && (w->points->value <= tv->value || tv->ended)) {
		struct hbl_point *p = w->points;
		uint64_t timeline = p->timeline, value = p->value;
		int status = value <= tv->value ? tv->status : -EPIPE;

		/* Unhashing takes it off the watch. */
		hbl_point_complete(c, p, status);
		hbl_events_push_fence(c, timeline, value, w->owner);
		completed = true;
	}
	if (tv->ended) {
		watch_remove(c, w);
		return;
	}
	/* News nobody waited for: a timeline its client stopped waiting on should not wake it
	 * at every signal. Armed from outside this read (hbl_watches_settle). */
	if (!completed && w->armed == 0)
		hbl_watch_set_idle(c, w);
}

/* Brings w up to its slot (its value, and its points the slot passed, in order): true if w
 * (may be NULL) has a slot still trusted. */
static bool slot_fresh(struct hb_client *c, struct hbl_watch *w)
{
	if (!w || !w->slot.p)
		return false;
	hbl_watch_slot_check(c, w);
	return w->slot.p != NULL;
}

struct hbl_watch *hbl_watch_current(struct hb_client *c, uint64_t timeline)
{
	struct pollfd pfd[HBL_POLLFDS_MAX];
	struct hbl_watch *w;
	size_t n;

	if (!hbl_watch_find(c, timeline))
		return NULL;
	/* Frames read already first (a batch's rest), then one poll when nothing else came: a
	 * vchan's poll does not show what its ring holds. */
	hbl_route_buffered(c);
	/* A slot still trusted is a timeline not destroyed yet: the daemon frees the slot
	 * before it tells the end. No poll for it. */
	w = hbl_watch_find(c, timeline);
	if (slot_fresh(c, w))
		return w;
	n = hbl_pollfds(c, pfd, HBL_POLLFDS_MAX);
	if (hbl_conn_polls_all(&c->conn)) {
		hbl_count(&c->conn.n_polls);
		if (poll(pfd, n, 0) <= 0)
			return w;
		hbl_polled(c, pfd, n);
	}
	hbl_pump(c, HBL_DISPATCH_BATCH);
	/* Reading may have ended it, or resumed on a daemon that has none. */
	w = hbl_watch_find(c, timeline);
	slot_fresh(c, w);
	return w;
}

void hbl_watches_drop(struct hb_client *c)
{
	struct hb_timeline *t;

	for (size_t i = 0; i < HBL_WATCH_BUCKETS; i++)
		while (c->fences.watches[i])
			watch_remove(c, c->fences.watches[i]);
	/* So were our own timelines' slots: a new daemon gives new ones, or none, and knows
	 * only the values it was sent. */
	hbc_list_for_each_safe(t, &c->timelines, struct hb_timeline, link)
	{
		hbl_timeline_slots_free(t);
		t->lazy = false;
		hbl_timeline_owe(c, t);
	}
}
