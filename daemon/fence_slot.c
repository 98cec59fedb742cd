/*
 * Fence slots (docs/PROTOCOL.md §3 "Fence slots"): a watched timeline's value in the shared
 * memory of a group that its owner and the watcher both attached, so that the owner's library
 * wakes the waiter directly through its doorbell and this daemon is off the path.
 *
 * The daemon stays the record. It gives slots out and frees them (backend), writes every value
 * it learns into them and rings who still waits (an owner that has not heard of its slot yet
 * writes nothing), poisons them before a failure moves the value, and tells the owner each
 * slot once (TimelineSlot). It never reads one: any member of the group can write there.
 */
#include <errno.h>
#include <stdlib.h>

#include "daemon/hyperbufd.h"
#include "protocol/limits.h"

static bool have_slots(const struct hbd *d)
{
	return d->backend->version >= 3 && d->backend->slot_take;
}

/* TimelineSlot to the owner, if its library can use it. A session that cannot be sent a
 * frame goes, as for a completion it cannot be sent. */
static void tell_owner(struct hbd_timeline *tl, const struct hbd_fence_slot *slot)
{
	struct hbd_session *o = tl->owner;
	ServerMsg msg = SERVER_MSG__INIT;
	TimelineSlot ts = TIMELINE_SLOT__INIT;
	FenceSlot fs = FENCE_SLOT__INIT;

	if (!(o->features & HBP_FEATURE_SLOTS) || o->closing || o->doomed)
		return;
	fs.group = slot->group;
	fs.index = slot->index;
	fs.gen = slot->gen;
	ts.timeline = tl->id;
	ts.slot = &fs;
	msg.body_case = SERVER_MSG__BODY_TIMELINE_SLOT;
	msg.timeline_slot = &ts;
	if (hbd_session_send(o, &msg, -1) < 0)
		hbd_session_drop_later(o, "cannot frame its timeline's fence slot");
}

static int slot_new(struct hbd_timeline *tl, uint32_t group, struct hbd_fence_slot *out)
{
	struct hbd *d = tl->owner->d;
	struct hbd_fence_slot *v, slot = {.group = group};
	int r;

	v = realloc(tl->slots, (tl->n_slots + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	tl->slots = v;
	r = d->backend->slot_take(d->backend_state, group, tl->value, &slot.index, &slot.gen);
	if (r < 0)
		return r;
	tl->slots[tl->n_slots++] = slot;
	*out = slot;
	tell_owner(tl, &slot);
	return 0;
}

int hbd_fence_slot_for(struct hbd_session *s, struct hbd_timeline *tl, struct hbd_fence_slot *out)
{
	uint64_t common = s->attached & tl->owner->attached;

	if (!(s->features & HBP_FEATURE_SLOTS) || !have_slots(s->d))
		return -ENOTSUP;
	/* A timeline that failed already has statuses a slot cannot tell. */
	if (tl->n_fails)
		return -ENOTSUP;
	for (unsigned i = 0; i < tl->n_slots; i++) {
		if (common & (1ull << (tl->slots[i].group - 1))) {
			*out = tl->slots[i];
			return 0;
		}
	}
	if (!common)
		return -ENOENT;
	/* The lowest group both attached: any one does, the waiter rings through it. */
	return slot_new(tl, (uint32_t)__builtin_ctzll(common) + 1, out);
}

void hbd_fence_slots_signal(struct hbd_timeline *tl, bool error)
{
	struct hbd *d = tl->owner->d;

	/* Its watches were armed past everything while the slots told. */
	if (error && tl->n_slots)
		hbd_fence_watches_unslot(tl);

	for (unsigned i = 0; i < tl->n_slots; i++) {
		const struct hbd_fence_slot *sl = &tl->slots[i];

		if (error)
			d->backend->slot_poison(d->backend_state, sl->group, sl->index, sl->gen);
		else
			d->backend->slot_signal(d->backend_state, sl->group, sl->index, sl->gen,
						tl->value);
	}
}

void hbd_fence_slots_put(struct hbd_timeline *tl)
{
	struct hbd *d = tl->owner->d;

	for (unsigned i = 0; i < tl->n_slots; i++)
		d->backend->slot_put(d->backend_state, tl->slots[i].group, tl->slots[i].index,
				     tl->slots[i].gen);
	free(tl->slots);
	tl->slots = NULL;
	tl->n_slots = 0;
}

void hbd_fence_slots_retell(struct hbd_session *s)
{
	struct hbd_timeline *tl;

	hbc_list_for_each_safe(tl, &s->timelines, struct hbd_timeline, owner_link)
	{
		for (unsigned i = 0; i < tl->n_slots && !s->closing; i++)
			tell_owner(tl, &tl->slots[i]);
		/* Its library starts eager again after a resume: told anew at the next record. */
		tl->lazy = false;
	}
}

/* ---- lazy records (PROTOCOL.md §3 "Lazy records") ---------------------------------------- */

/* Whether every consumer of tl's value reads it from a slot: no wait in the daemon, and every
 * watch left to its slot (armed past everything). Then nobody needs the daemon's record but
 * the record itself, and the owner may keep its signals until asked. */
static bool lazy_allowed(const struct hbd_timeline *tl)
{
	const struct hbd_session *o = tl->owner;

	return tl->lazy_wanted && (o->features & HBP_FEATURE_LAZY) && !o->closing && !o->doomed &&
	       tl->n_slots && !tl->n_fails && !tl->n_heap && !tl->n_told;
}

static void tell_lazy(struct hbd_timeline *tl, bool lazy)
{
	struct hbd_session *o = tl->owner;
	ServerMsg msg = SERVER_MSG__INIT;
	TimelineLazy tz = TIMELINE_LAZY__INIT;

	tl->lazy = lazy;
	if (o->closing || o->doomed)
		return;
	tz.timeline = tl->id;
	tz.lazy = lazy;
	msg.body_case = SERVER_MSG__BODY_TIMELINE_LAZY;
	msg.timeline_lazy = &tz;
	o->d->stats.lazy_changes++;
	if (hbd_session_send(o, &msg, -1) < 0)
		hbd_session_drop_later(o, "cannot frame its timeline's lazy records");
}

void hbd_fence_lazy_check(struct hbd_timeline *tl)
{
	bool allowed = lazy_allowed(tl);

	if (allowed != tl->lazy)
		tell_lazy(tl, allowed);
}

void hbd_fence_lazy_end(struct hbd_timeline *tl)
{
	if (tl->lazy)
		tell_lazy(tl, false);
}
