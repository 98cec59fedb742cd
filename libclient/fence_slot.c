/*
 * Fence slots (docs/PROTOCOL.md §3 "Fence slots"): a watched timeline's value in page 0 of a
 * pool its owner and this client share, written by the owner's library before its signal
 * leaves, with a doorbell to wake the waiters who set their bit. While it works the waiter
 * gets no message per fence (the owner's quiet signal still goes to the daemon, which stays
 * the record); the watch (fence_watch.c) is what this falls back to.
 *
 * What a slot says is trusted only while its generation is the one the daemon gave and POISON
 * is clear: any member of the group can write it, and a point that failed is told by the
 * watch, never by a slot. A waiter sets its bit before it sleeps and reads the value again
 * after (the owner stores the value before it takes the bits), so a signal is never missed;
 * a slot that stays still for a whole wait slice makes the watch ask the daemon as well, so a
 * member that clears bits or lowers values delays a wait, never hangs it.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "libclient/client.h"
#include "protocol/limits.h"

static const struct hbb_guest_ops *slot_ops(const struct hb_client *c)
{
	const struct hbb_guest_ops *ops = c->mem.ops;

	return ops && ops->version >= 3 && ops->slot && ops->ring ? ops : NULL;
}

static bool slot_map(struct hb_client *c, const FenceSlot *fs, struct hbl_slot *out)
{
	const struct hbb_guest_ops *ops = slot_ops(c);
	struct hbp_fence_slot *p = ops ? ops->slot(c->mem.state, fs->group, fs->index) : NULL;

	if (!p)
		return false;
	*out = (struct hbl_slot){.p = p, .group = fs->group, .gen = fs->gen};
	return true;
}

/* The slot's value, if it may be believed. */
static bool slot_read(const struct hbl_slot *s, uint64_t *value)
{
	*value = __atomic_load_n(&s->p->value, __ATOMIC_SEQ_CST);
	/* After the value: the daemon changes gen before it reuses the slot. */
	return __atomic_load_n(&s->p->gen, __ATOMIC_SEQ_CST) == s->gen &&
	       !(__atomic_load_n(&s->p->flags, __ATOMIC_SEQ_CST) & HBP_SLOT_POISON);
}

bool hbl_slot_value(struct hb_client *c, struct hbl_watch *w, uint64_t *value)
{
	if (slot_read(&w->slot, value))
		return true;
	hbl_watch_slot_drop(c, w);
	return false;
}

/* ---- the stall timer --------------------------------------------------------------------- */

/* A one-shot timerfd in hbl_pollfds, armed a wait slice ahead while a slotted point is pending:
 * it wakes whoever polls (hb_sync_wait, an event loop on hb_get_fd) so that a slot that stayed
 * still is noticed even where nothing else would wake them. */
static int stall_timer_open(struct hb_client *c)
{
	if (c->fences.stall_fd < 0)
		c->fences.stall_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	return c->fences.stall_fd < 0 ? -errno : 0;
}

static void stall_timer_arm(struct hb_client *c, uint64_t now)
{
	struct itimerspec its = {
	    .it_value = {.tv_sec = HBL_WAIT_SLICE_MS / 1000,
			 .tv_nsec = (long)(HBL_WAIT_SLICE_MS % 1000) * 1000000L},
	};

	if (timerfd_settime(c->fences.stall_fd, 0, &its, NULL) == 0)
		c->fences.stall_due = now + HBL_WAIT_SLICE_MS;
}

/* Empties the timer once it is due (a read that finds it not fired yet changes nothing), and
 * arms it again while points are pending. */
static void stall_timer_update(struct hb_client *c, size_t pending, uint64_t now)
{
	struct hbl_fences *f = &c->fences;
	uint64_t fired;

	if (f->stall_fd < 0)
		return;
	/* Milliseconds truncate: the timer may fire a little before now reaches due. */
	if (f->stall_due && now + 2 >= f->stall_due &&
	    read(f->stall_fd, &fired, sizeof(fired)) == sizeof(fired))
		f->stall_due = 0;
	if (pending && !f->stall_due)
		stall_timer_arm(c, now);
}

void hbl_slots_close(struct hb_client *c)
{
	if (c->fences.stall_fd >= 0)
		close(c->fences.stall_fd);
	c->fences.stall_fd = -1;
	c->fences.stall_due = 0;
}

/* ---- the waiter's side ---------------------------------------------------------------------- */

void hbl_watch_take_slot(struct hb_client *c, struct hbl_watch *w, const FenceSlot *fs)
{
	const struct hbb_guest_ops *ops = slot_ops(c);
	int bit = ops && ops->slot_bit ? ops->slot_bit(c->mem.state, fs->group) : -1;

	if (bit < 0 || stall_timer_open(c) < 0 || !slot_map(c, fs, &w->slot))
		return;
	/* Its doorbell and the stall timer must wake hb_get_fd's pollers too; else no slot. */
	if (hbl_pub_fd_sync(c) < 0) {
		w->slot.p = NULL;
		return;
	}
	w->slot_bit = bit;
	w->still_since = hbc_now_ms();
	c->fences.slotted++;
}

void hbl_watch_slot_drop(struct hb_client *c, struct hbl_watch *w)
{
	if (!w->slot.p)
		return;
	w->slot.p = NULL;
	c->fences.slotted--;
	/* Armed past everything while the slot told: settle arms it at its first point. */
	hbl_watch_set_idle(c, w);
}

void hbl_watch_slot_check(struct hb_client *c, struct hbl_watch *w)
{
	uint64_t value;

	if (!hbl_slot_value(c, w, &value))
		return;
	if (value > w->value) {
		w->value = value;
		w->still_since = hbc_now_ms();
	}
	/* In value order, as the watch would: a prefix of its points. */
	while (w->points && w->points->value <= value) {
		struct hbl_point *p = w->points;
		uint64_t timeline = p->timeline, v = p->value;

		/* Completing unhashes it, which takes it off the watch. */
		hbl_point_complete(c, p, 1);
		hbl_events_push_fence(c, timeline, v, w->owner);
	}
}

void hbl_slots_arm(struct hb_client *c)
{
	size_t pending = 0;
	uint64_t now;

	if (!c->fences.slotted && !c->fences.stall_due)
		return;
	now = hbc_now_ms();
	for (size_t i = 0; i < HBL_WATCH_BUCKETS && c->fences.slotted; i++) {
		/* Checking may drop a slot (never a watch) and complete points. */
		for (struct hbl_watch *w = c->fences.watches[i]; w; w = w->hnext) {
			if (!w->slot.p || !w->points)
				continue;
			/* What the slot passed first: a waiter woken for its point sets no bit
			 * again (an owner finding a bit still set after its ring takes it for
			 * one it could not ring, and sends its signal). */
			hbl_watch_slot_check(c, w);
			if (!w->slot.p || !w->points)
				continue;
			__atomic_fetch_or(&w->slot.p->waiters, 1ull << w->slot_bit,
					  __ATOMIC_SEQ_CST);
			hbl_watch_slot_check(c, w);
			if (!w->slot.p || !w->points)
				continue;
			pending++;
			/* Still for a whole slice: the daemon is asked too (settle arms it). */
			if (!w->stalled && now - w->still_since >= HBL_WAIT_SLICE_MS) {
				w->stalled = true;
				hbl_watch_set_idle(c, w);
			}
		}
	}
	stall_timer_update(c, pending, now);
}

/* ---- the owner's side ---------------------------------------------------------------------- */

/* Raises the slot's value to value; gives up to another writer that keeps changing it. */
static void slot_raise(struct hbp_fence_slot *p, uint64_t value)
{
	uint64_t old = __atomic_load_n(&p->value, __ATOMIC_SEQ_CST);

	for (int i = 0; i < 8 && old < value; i++)
		if (__atomic_compare_exchange_n(&p->value, &old, value, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			break;
}

/* A slot we cannot write: the daemon writes it, from records, so none may be kept (and none
 * asked for) until the slots are given anew. */
static void slot_lost(struct hb_client *c, struct hb_timeline *t)
{
	t->slot_lost = true;
	t->lazy = false;
	hbl_timeline_owe(c, t);
}

/* A new slot holds what the daemon knew when it gave it: the values we kept go there now,
 * and its waiters are rung (those we cannot ring need the daemon, and our value). */
/* Rings the waiters of s that we have a doorbell of, after a store (a waiter that set its bit
 * later reads the new value): true if a bit that was set is left, a peer we cannot ring,
 * which the daemon rings when a signal reaches it (a bit set after the ring belongs to a
 * waiter that read the new value before sleeping, and needs nobody). Each ring is an eventfd
 * or Doorbell write: counted as wakes. */
static bool slot_ring(struct hb_client *c, const struct hbb_guest_ops *ops, struct hbl_slot *s)
{
	uint64_t left = 0;
	unsigned rung;

	if (!__atomic_load_n(&s->p->waiters, __ATOMIC_SEQ_CST))
		return false;
	rung = ops->ring(c->mem.state, s->group, &s->p->waiters, &left);
	__atomic_fetch_add(&c->conn.n_wakes, (uint64_t)rung, __ATOMIC_RELAXED);
	return left != 0;
}

static void slot_catch_up(struct hb_client *c, struct hb_timeline *t, struct hbl_slot *s)
{
	const struct hbb_guest_ops *ops = slot_ops(c);

	if (!ops || t->value <= t->sent)
		return;
	slot_raise(s->p, t->value);
	if (slot_ring(c, ops, s))
		hbl_timeline_owe(c, t);
}

void hbl_timeline_slot(struct hb_client *c, const TimelineSlot *ts)
{
	struct hb_timeline *t;
	struct hbl_slot s, *v;

	hbc_list_for_each_safe(t, &c->timelines, struct hb_timeline, link)
	{
		if (t->id != ts->timeline)
			continue;
		if (!slot_map(c, ts->slot, &s)) {
			slot_lost(c, t);
			return;
		}
		/* Given before the daemon handled a fail we sent: no value of ours may go there. */
		if (t->failed) {
			__atomic_fetch_or(&s.p->flags, HBP_SLOT_POISON, __ATOMIC_SEQ_CST);
			return;
		}
		t->slots_epoch++;
		/* One per group: a newer one replaces it. */
		for (unsigned i = 0; i < t->n_slots; i++) {
			if (t->slots[i].group == s.group) {
				t->slots[i] = s;
				slot_catch_up(c, t, &t->slots[i]);
				return;
			}
		}
		v = realloc(t->slots, (t->n_slots + 1) * sizeof(*v));
		if (!v) {
			slot_lost(c, t);
			return;
		}
		t->slots = v;
		t->slots[t->n_slots++] = s;
		slot_catch_up(c, t, &t->slots[t->n_slots - 1]);
		return;
	}
}

unsigned hbl_timeline_slots_store(struct hb_client *c, struct hb_timeline *t, uint64_t value,
				  bool error)
{
	const struct hbb_guest_ops *ops = slot_ops(c);
	unsigned how = 0;

	for (unsigned i = 0; ops && i < t->n_slots; i++) {
		struct hbl_slot *s = &t->slots[i];

		/* Not ours any more: only a new daemon takes a slot from a live timeline. */
		if (__atomic_load_n(&s->p->gen, __ATOMIC_SEQ_CST) != s->gen) {
			how |= HBL_SLOTS_STALE;
			continue;
		}
		if (error || t->failed)
			__atomic_fetch_or(&s->p->flags, HBP_SLOT_POISON, __ATOMIC_SEQ_CST);
		else
			slot_raise(s->p, value);
		if (slot_ring(c, ops, s))
			how |= HBL_SLOTS_UNRUNG;
	}
	return how;
}

void hbl_timeline_slots_free(struct hb_timeline *t)
{
	t->slots_epoch++;
	t->slot_lost = false;
	free(t->slots);
	t->slots = NULL;
	t->n_slots = 0;
}
