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
#include <stdlib.h>

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

void hbl_watch_take_slot(struct hb_client *c, struct hbl_watch *w, const FenceSlot *fs)
{
	const struct hbb_guest_ops *ops = slot_ops(c);
	int bit = ops && ops->slot_bit ? ops->slot_bit(c->mem.state, fs->group) : -1;

	if (bit < 0 || !slot_map(c, fs, &w->slot))
		return;
	/* Its doorbell must wake hb_get_fd's pollers too; without it, no slot. */
	if (hbl_pub_fd_sync(c) < 0) {
		w->slot.p = NULL;
		return;
	}
	w->slot_bit = bit;
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

	if (!w->slot.p || !w->points)
		return;
	if (!slot_read(&w->slot, &value)) {
		hbl_watch_slot_drop(c, w);
		return;
	}
	if (value > w->value)
		w->value = value;
	while (w->points && w->points->value <= value) {
		struct hbl_point *p = w->points;
		uint64_t timeline = p->timeline, v = p->value;

		/* Completing unhashes it, which takes it off the watch. */
		hbl_point_complete(c, p, 1);
		hbl_events_push_fence(c, timeline, v, w->owner);
	}
}

/* Calls fn for every slotted watch; fn may drop the slot, never the watch. */
static void for_slotted(struct hb_client *c, void (*fn)(struct hb_client *, struct hbl_watch *))
{
	if (!c->fences.slotted)
		return;
	for (size_t i = 0; i < HBL_WATCH_BUCKETS; i++)
		for (struct hbl_watch *w = c->fences.watches[i]; w; w = w->hnext)
			if (w->slot.p)
				fn(c, w);
}

void hbl_slots_check(struct hb_client *c)
{
	for_slotted(c, hbl_watch_slot_check);
}

static void slot_arm(struct hb_client *c, struct hbl_watch *w)
{
	if (!w->points)
		return;
	__atomic_fetch_or(&w->slot.p->waiters, 1ull << w->slot_bit, __ATOMIC_SEQ_CST);
	hbl_watch_slot_check(c, w);
}

void hbl_slots_arm(struct hb_client *c)
{
	for_slotted(c, slot_arm);
}

static void slot_stalled(struct hb_client *c, struct hbl_watch *w)
{
	if (!w->points || w->stalled)
		return;
	w->stalled = true;
	hbl_watch_set_idle(c, w);
}

void hbl_slots_stalled(struct hb_client *c)
{
	for_slotted(c, slot_stalled);
}

/* ---- the owner's side ---------------------------------------------------------------------- */

void hbl_timeline_slot(struct hb_client *c, const TimelineSlot *ts)
{
	struct hb_timeline *t;
	struct hbl_slot s, *v;

	hbc_list_for_each_safe(t, &c->timelines, struct hb_timeline, link)
	{
		if (t->id != ts->timeline)
			continue;
		if (!slot_map(c, ts->slot, &s))
			return;
		/* One per group: a newer one replaces it. */
		for (unsigned i = 0; i < t->n_slots; i++) {
			if (t->slots[i].group == s.group) {
				t->slots[i] = s;
				return;
			}
		}
		v = realloc(t->slots, (t->n_slots + 1) * sizeof(*v));
		if (!v)
			return; /* the daemon writes it anyway, a little later */
		t->slots = v;
		t->slots[t->n_slots++] = s;
		return;
	}
}

/* Raises the slot's value to value; gives up to another writer that keeps changing it. */
static void slot_raise(struct hbp_fence_slot *p, uint64_t value)
{
	uint64_t old = __atomic_load_n(&p->value, __ATOMIC_SEQ_CST);

	for (int i = 0; i < 8 && old < value; i++)
		if (__atomic_compare_exchange_n(&p->value, &old, value, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			break;
}

bool hbl_timeline_slots_store(struct hb_client *c, struct hb_timeline *t, uint64_t value,
			      bool error)
{
	const struct hbb_guest_ops *ops = slot_ops(c);
	bool stale = false;

	for (unsigned i = 0; ops && i < t->n_slots; i++) {
		struct hbl_slot *s = &t->slots[i];
		uint64_t mask;

		/* Not ours any more: only a new daemon takes a slot from a live timeline. */
		if (__atomic_load_n(&s->p->gen, __ATOMIC_SEQ_CST) != s->gen) {
			stale = true;
			continue;
		}
		if (error)
			__atomic_fetch_or(&s->p->flags, HBP_SLOT_POISON, __ATOMIC_SEQ_CST);
		else
			slot_raise(s->p, value);
		/* After the store: a waiter that set its bit later reads the new value. */
		mask = __atomic_exchange_n(&s->p->waiters, 0, __ATOMIC_SEQ_CST);
		if (mask) {
			/* About one eventfd write per waiter: counted as wakes. */
			__atomic_fetch_add(&c->conn.n_wakes, (uint64_t)__builtin_popcountll(mask),
					   __ATOMIC_RELAXED);
			ops->ring(c->mem.state, s->group, mask);
		}
	}
	return stale;
}

void hbl_timeline_slots_free(struct hb_timeline *t)
{
	free(t->slots);
	t->slots = NULL;
	t->n_slots = 0;
}
