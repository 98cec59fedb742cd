/*
 * Watches (docs/PROTOCOL.md §3 "Watches"): a session told of a timeline's progress, so that
 * its library opens further fences on the timeline without a request, and the daemon handles
 * one message per signal and watcher instead of an open, a completion and a close per fence.
 *
 * Rules this file keeps, and why:
 * - A watch holds one record (its push), queued on the session's completion queue while it
 *   has something to tell. Signals meanwhile only move the timeline: the record is framed
 *   from the timeline's state when the writer gets to it, so a reader that falls behind costs
 *   one queued record per watch, never a growing queue, and is never dropped for it.
 * - What it tells is exact: one TimelineValue per run of points that ended with the same
 *   status, from the timeline's remembered failed ranges (the same memory a late opener's
 *   born-complete status comes from).
 * - A session gets a watch only while it has no wait pending (hbd_fence_watch_open refuses),
 *   so a completion and a TimelineValue of one timeline never overtake each other.
 * - It tells when the timeline reaches the value it is armed at (the opened point, then any
 *   progress after each TimelineValue, or what WatchArm says), so a client that stopped
 *   waiting is not woken at every signal.
 * - When the timeline goes, each watch frames what it still owes at once, then an ended
 *   record: nothing refers to a freed timeline, and a point signalled just before its owner
 *   left completes with its real status, not with -EPIPE.
 */
#include <errno.h>
#include <stdlib.h>

#include "daemon/hyperbufd.h"

/* Watches are found by (session, timeline) in a hash, so that a WatchArm costs the same
 * however many sessions watch the timeline. */
static struct hbc_list *watch_bucket(struct hbd *d, const struct hbd_session *s, uint64_t tl)
{
	uint64_t h = (tl ^ (s->serial * 0xff51afd7ed558ccdull)) * 0x9e3779b97f4a7c15ull;

	return &d->fence_watches[h >> (64 - HBD_WAIT_BUCKET_BITS)];
}

static struct hbd_fence_watch *watch_find(struct hbd_session *s, struct hbd_timeline *tl)
{
	struct hbd_fence_watch *w;

	hbc_list_for_each_safe(w, watch_bucket(s->d, s, tl->id), struct hbd_fence_watch, hash_link)
	{
		if (w->s == s && w->tl == tl)
			return w;
	}
	return NULL;
}

/* Every change of a watch's arm: its timeline counts the watches its slots do not tell, so
 * that whether it may be lazy (fence_slot.c) is known without a walk. */
static void set_arm(struct hbd_fence_watch *w, uint64_t arm)
{
	if (w->arm != UINT64_MAX && arm == UINT64_MAX)
		w->tl->n_told--;
	else if (w->arm == UINT64_MAX && arm != UINT64_MAX)
		w->tl->n_told++;
	w->arm = arm;
}

static void unqueue(struct hbd_fence_watch *w)
{
	if (!w->queued)
		return;
	hbc_list_remove(&w->push.session_link);
	w->s->n_done--;
	w->queued = false;
}

static void watch_free(struct hbd_fence_watch *w)
{
	struct hbd_domain *dom = w->s->dom;

	unqueue(w);
	set_arm(w, UINT64_MAX);
	hbc_list_remove(&w->session_link);
	hbc_list_remove(&w->tl_link);
	hbc_list_remove(&w->hash_link);
	if (dom->fence_watches)
		dom->fence_watches--;
	free(w);
}

int hbd_fence_watch_open(struct hbd_session *s, struct hbd_timeline *tl, uint64_t arm)
{
	struct hbd_fence_watch *w = watch_find(s, tl);

	if (w) {
		/* The library lost track of it (it asks only when it has none): start over. */
		unqueue(w);
		w->told = tl->value;
		set_arm(w, arm);
		return 0;
	}
	/* Any wait, not only one on tl: looking for one there would cost a walk of the
	 * session's waits per open, which a client could repeat at will. A watching library
	 * has waits only for a while after a resume or a refusal. */
	if (!hbc_list_empty(&s->waits))
		return -EBUSY;
	if (s->dom->fence_watches >= s->d->cfg->fence_waits_per_domain)
		return -EDQUOT;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->s = s;
	w->tl = tl;
	w->told = tl->value;
	w->arm = UINT64_MAX; /* counted from there */
	set_arm(w, arm);
	w->push.fwatch = w;
	w->push.timeline = tl->id;
	hbc_list_insert_tail(&s->fence_watches, &w->session_link);
	hbc_list_insert_tail(&tl->fence_watches, &w->tl_link);
	hbc_list_insert_tail(watch_bucket(s->d, s, tl->id), &w->hash_link);
	s->dom->fence_watches++;
	return 0;
}

/* Queues w to tell its session, if it has something the session asked to hear. */
static void watch_queue(struct hbd *d, struct hbd_fence_watch *w)
{
	struct hbd_session *s = w->s;

	if (w->queued || s->doomed || s->closing || w->told >= w->tl->value ||
	    w->tl->value < w->arm)
		return;
	if (s->n_done >= d->cfg->fence_waits_per_domain) {
		/* Full of completions it does not read: as wait_complete does. */
		d->stats.fence_sessions_dropped++;
		hbd_session_drop_later(s, "fence completions queue full: the client does not "
					  "read them");
		return;
	}
	hbc_list_insert_tail(&s->done, &w->push.session_link);
	s->n_done++;
	w->queued = true;
	hbd_session_want_write(s);
}

void hbd_fence_watches_signal(struct hbd *d, struct hbd_timeline *tl)
{
	struct hbd_fence_watch *w;

	hbc_list_for_each_safe(w, &tl->fence_watches, struct hbd_fence_watch, tl_link)
	{
		watch_queue(d, w);
	}
}

void hbd_fence_watch_arm(struct hbd_session *s, uint64_t timeline, uint64_t value)
{
	struct hbd_timeline *tl = hbd_timeline_find(s->d, timeline);
	struct hbd_fence_watch *w = tl ? watch_find(s, tl) : NULL;

	/* None: the timeline ended (its last TimelineValue is on its way), or nonsense. */
	if (!w)
		return;
	set_arm(w, value);
	/* Reached already: told now. Not reached: what is queued waits for it (framing looks). */
	watch_queue(s->d, w);
	/* Armed at a point, the daemon tells it: its owner must send values again. */
	if (value != UINT64_MAX)
		hbd_fence_lazy_end(tl);
}

static int send_value(struct hbd_session *s, uint64_t timeline, uint64_t from, uint64_t value,
		      int32_t status, bool ended)
{
	ServerMsg msg = SERVER_MSG__INIT;
	TimelineValue tv = TIMELINE_VALUE__INIT;

	msg.body_case = SERVER_MSG__BODY_TIMELINE_VALUE;
	msg.timeline_value = &tv;
	tv.timeline = timeline;
	tv.from = from;
	tv.value = value;
	tv.status = status;
	tv.ended = ended;
	s->d->stats.fences_completed++;
	return hbd_session_send(s, &msg, -1);
}

/* Tells every run of equal status between w->told and the timeline's value. */
static int tell_runs(struct hbd_session *s, struct hbd_fence_watch *w)
{
	while (w->told < w->tl->value) {
		int32_t status;
		uint64_t end = hbd_timeline_run(w->tl, w->told, &status);
		int r = send_value(s, w->tl->id, w->told, end, status, false);

		if (r < 0)
			return r;
		w->told = end;
	}
	return 0;
}

int hbd_fence_watch_frame(struct hbd_session *s, struct hbd_fence_watch *w)
{
	/* hbd_session_next_done took it off the queue. Armed further since it was queued:
	 * nothing yet. */
	w->queued = false;
	if (w->tl->value < w->arm)
		return 0;
	set_arm(w, 0);
	return tell_runs(s, w);
}

/* Tells now, ahead of the session's queue (nothing else of this timeline is in it: a watching
 * session has no wait), what the queue would tell later; a session that cannot be told goes. */
static void tell_now(struct hbd_fence_watch *w)
{
	struct hbd_session *s = w->s;

	if (!s->doomed && !s->closing && tell_runs(s, w) < 0)
		hbd_session_drop_later(s, "cannot frame what a fence watch owes it");
}

void hbd_fence_watches_unslot(struct hbd_timeline *tl)
{
	struct hbd_fence_watch *w;

	hbc_list_for_each_safe(w, &tl->fence_watches, struct hbd_fence_watch, tl_link)
	{
		/* Past everything: its slot was telling (or nobody waited, and being told of a
		 * failure once costs that client one message). */
		if (w->arm == UINT64_MAX)
			set_arm(w, 0);
	}
	hbd_fence_lazy_end(tl);
}

void hbd_fence_watches_flush(struct hbd_timeline *tl)
{
	struct hbd_fence_watch *w;

	hbc_list_for_each_safe(w, &tl->fence_watches, struct hbd_fence_watch, tl_link)
	{
		tell_now(w);
	}
}

void hbd_fence_watches_tell_failed(struct hbd_timeline *tl, uint64_t value, int32_t status)
{
	struct hbd_fence_watch *w;

	hbc_list_for_each_safe(w, &tl->fence_watches, struct hbd_fence_watch, tl_link)
	{
		struct hbd_session *s = w->s;

		if (s->doomed || s->closing || w->told != tl->value)
			continue;
		if (send_value(s, tl->id, w->told, value, status, false) < 0)
			hbd_session_drop_later(s, "cannot frame what a fence watch owes it");
		w->told = value;
	}
}

void hbd_fence_watches_end(struct hbd_timeline *tl)
{
	struct hbd_fence_watch *w;

	hbc_list_for_each_safe(w, &tl->fence_watches, struct hbd_fence_watch, tl_link)
	{
		struct hbd_session *s = w->s;

		/* Its library would wait forever for what it cannot be told: it goes, and
		 * fails every fence it waits on. */
		if (!s->doomed && !s->closing &&
		    (tell_runs(s, w) < 0 ||
		     send_value(s, tl->id, w->told, UINT64_MAX, -EPIPE, true) < 0))
			hbd_session_drop_later(s, "cannot frame what a fence watch owes it");
		watch_free(w);
	}
}

void hbd_session_fence_watches_close(struct hbd_session *s)
{
	struct hbd_fence_watch *w;

	hbc_list_for_each_safe(w, &s->fence_watches, struct hbd_fence_watch, session_link)
	{
		watch_free(w);
	}
}
