/*
 * Per-export reservations (docs/PROTOCOL.md §3 "Fences": FenceAttach, CpuAccess; fences.md §2,
 * §5.6): the fences attached to a buffer, which give CPU access its implicit sync. The daemon
 * keeps no state for an access: CpuAccess is a snapshot the library waits on.
 */
#include <errno.h>
#include <stdlib.h>

#include "daemon/hyperbufd.h"
#include "protocol/limits.h"

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
	if (!tl || !hbd_timeline_visible(d, tl, s->dom->id))
		return -ENOENT;
	/* Both sides of the share must be able to wait on it: a fence the other side could not
	 * open would make its CPU access wait on something it cannot see. The owner attaching
	 * its fence gives it to both sides; anybody else may only attach what they see. */
	if (tl->owner->dom == s->dom) {
		int r = hbd_timeline_show(tl, b->mem.exporter);

		if (r == 0)
			r = hbd_timeline_show(tl, b->mem.peer);
		if (r < 0)
			return r;
	} else if (!hbd_timeline_visible(d, tl, b->mem.exporter) ||
		   !hbd_timeline_visible(d, tl, b->mem.peer)) {
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
