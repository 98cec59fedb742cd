/*
 * Holds (PROTOCOL.md §3 "Holds"). An importer's usual way to a buffer is the EXPORTED event,
 * then Import and its reply: two trips through this daemon before the first byte. For a
 * client that asks (HBP_FEATURE_HOLDS), the EXPORTED event of a pool buffer carries an import
 * made for it as the event is framed, with the descriptor an ImportReply would carry. Its
 * library maps the pages straight from the event and tells us it took the hold with a quiet
 * Import; one it does not want goes back with Release.
 *
 * A hold keeps the pages like any import (an exporter's free waits for it), and counts
 * against imports_per_domain; it is not an import for the exporter (no IMPORTED, no
 * RELEASED, not in Query's importers) until it is taken. Holds are made for small buffers
 * only, and at most HBP_HOLDS_MAX per session wait to be taken or released: a client that
 * never reads its events pins 16 buffers of at most 256 KiB, and gets its events without
 * holds beyond them.
 */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hyperbufd.h"
#include "protocol/desc.h"
#include "protocol/limits.h"

void hbd_hold_put(struct hbd_session *s, Event *e, BufferDesc *desc)
{
	struct hb_id hid;
	struct hbd_buffer *b;
	struct hbd_import *im;

	if (!s->holds_on || !(s->features & HBP_FEATURE_HOLDS) || s->n_held >= HBP_HOLDS_MAX ||
	    e->type != HB_EVENT_EXPORTED || e->hid.len != sizeof(hid.bytes))
		return;
	memcpy(hid.bytes, e->hid.data, sizeof(hid.bytes));
	b = hbd_hid_lookup(s->d, &hid);
	/* Only a small pool buffer (refs inline: at most HBP_INLINE_REFS_MAX pages), where the
	 * round trip is most of the cost and a hold pins little; Xen buffers are the exporter's
	 * grants, which an importer maps by asking (group 0). None for a buffer this hid is
	 * imported under already: a re-export to an importer that keeps its mapping (a cache
	 * of frames) would only give it back. */
	if (!b || !b->mem.group || !b->mem.desc.inline_refs || b->gen_importers ||
	    hbd_import_check(s, b, false) < 0)
		return;
	im = hbd_import_new(s, b, false, true);
	if (!im)
		return;
	s->d->stats.holds_made++;
	hbp_desc_from_refdir(desc, &b->mem.desc, b->mem.group);
	e->hold = im->handle;
	e->desc = desc;
	e->flags = hbd_buffer_info_flags(b);
}

int hbd_holds_set(struct hbd_session *s, bool on)
{
	if (!(s->features & HBP_FEATURE_HOLDS)) {
		hbd_reason(s, "holds need a library that announces them (HBP_FEATURE_HOLDS)");
		return -EPROTONOSUPPORT;
	}
	s->holds_on = on;
	hbd_state_mark_session(s);
	return 0;
}

int hbd_hold_take(struct hbd_session *s, const Import *m, struct hbd_import **out)
{
	struct hbd_import *im = hbd_import_find(s, m->hold);

	/* The import was made with the event: whatever the exporter did since (a new hid, a
	 * withdrawal, a free) it stands, as an import made then would. Read-only. */
	if (!im || !im->held)
		return -ENOENT;
	if (m->flags)
		return -EINVAL;
	im->held = false;
	s->n_held--;
	s->d->stats.holds_taken++;
	hbd_state_import_new(s, im);
	hbd_import_counted(s, im);
	*out = im;
	return 0;
}

void hbd_holds_prune(struct hbd_session *s, const uint64_t *keep, size_t n)
{
	struct hbd_import *im;
	unsigned dropped = 0;

	hbc_list_for_each_safe(im, &s->imports, struct hbd_import, link)
	{
		size_t i;

		if (!im->held)
			continue;
		for (i = 0; i < n && keep[i] != im->handle; i++)
			;
		if (i < n)
			continue;
		hbd_import_release(s, im);
		dropped++;
	}
	if (dropped)
		log_info("%s: %u holds its library never heard of released", s->label, dropped);
}
