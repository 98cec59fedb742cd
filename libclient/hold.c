/*
 * Holds (PROTOCOL.md §3 "Holds"): an EXPORTED event may carry an import the daemon made for
 * us, read-only, with the descriptor an ImportReply would carry. hb_import of that event's
 * buffer maps it from the event and tells the daemon with a posted, quiet Import: no round
 * trip before the first byte. A hold nobody takes goes back (a posted Release) when the
 * application asks for its next event, or as soon as the event is dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "libclient/client.h"

void hbl_hold_drop(struct hb_client *c, uint64_t hold)
{
	struct hbl_holds *h = &c->holds;

	if (!hold)
		return;
	/* More than the daemon ever makes at a time: a daemon bug, and its pages. */
	if (h->n_owed == HBP_HOLDS_MAX) {
		log_err("more than %u holds to give back; hold %llu stays with the session",
			HBP_HOLDS_MAX, (unsigned long long)hold);
		return;
	}
	h->owed[h->n_owed++] = hold;
}

void hbl_holds_given(struct hb_client *c, struct hbl_event_node *n)
{
	struct hbl_event_node *old = c->holds.given;

	c->holds.given = n;
	if (!old)
		return;
	hbl_hold_drop(c, old->hold);
	free(old);
}

static int post_release(struct hb_client *c, uint64_t hold)
{
	Release rel = RELEASE__INIT;
	ClientMsg m = CLIENT_MSG__INIT;

	rel.import = hold;
	m.body_case = CLIENT_MSG__BODY_RELEASE;
	m.release = &rel;
	return hbl_post_hold(c, &m, hold);
}

HBL_PUBLIC int hb_set_holds(struct hb_client *c, int on)
{
	Holds h = HOLDS__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	int r;

	if (!c || (on != 0 && on != 1))
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	if (c->features & HBP_FEATURE_HOLDS) {
		h.on = on;
		m.body_case = CLIENT_MSG__BODY_HOLDS;
		m.holds = &h;
		r = hbl_call_simple(c, &m);
	} else {
		r = -EOPNOTSUPP;
		hbl_explain(c, EOPNOTSUPP, "hyperbufd does not make holds (an older daemon)");
	}
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

/* Tells the daemon a hold is taken: posted and quiet, or awaited when too many are posted. */
static int send_take(struct hb_client *c, const struct hbl_take *t)
{
	Import imp = IMPORT__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	int r;

	imp.hid = hbl_wire_hid(&t->id);
	imp.hold = t->hold;
	imp.quiet = true;
	m.body_case = CLIENT_MSG__BODY_IMPORT;
	m.import = &imp;
	r = hbl_post_hold(c, &m, t->hold);
	if (r != -EAGAIN)
		return r;
	imp.quiet = false;
	return hbl_call_simple(c, &m);
}

void hbl_holds_send_takes(struct hb_client *c)
{
	struct hbl_holds *h = &c->holds;
	unsigned sent = 0;

	if (!h->n_taking || h->sending || c->resume.active)
		return;
	h->sending = true;
	/* Posted or answered (a refusal is logged by call.c), it is done; one that could not be
	 * framed (no memory) stays for a later call; a broken client ends them all. */
	while (sent < h->n_taking) {
		if (send_take(c, &h->taking[sent]) == -ENOMEM && hbl_conn_broken(&c->conn) == 0)
			break;
		sent++;
		if (hbl_conn_broken(&c->conn) < 0)
			sent = h->n_taking;
	}
	memmove(h->taking, h->taking + sent, (h->n_taking - sent) * sizeof(h->taking[0]));
	h->n_taking -= sent;
	h->sending = false;
}

bool hbl_holds_flush(struct hb_client *c)
{
	struct hbl_holds *h = &c->holds;
	unsigned sent = 0, taking = h->n_taking;
	bool fresh = h->fresh;

	h->fresh = false;
	if (c->calls.pending || c->resume.active || hbl_conn_broken(&c->conn) < 0)
		return false;
	if (!fresh)
		hbl_holds_send_takes(c);
	/* Each leaves the array before it is posted: posting may resume, which empties it. */
	while (h->n_owed) {
		uint64_t hold = h->owed[0];
		int r;

		memmove(h->owed, h->owed + 1, (h->n_owed - 1) * sizeof(h->owed[0]));
		h->n_owed--;
		/* HBL_POSTED_MAX wait for a reply, or no memory: it goes with a later call. */
		r = post_release(c, hold);
		if (r == -EAGAIN || r == -ENOMEM || hbl_conn_broken(&c->conn) < 0) {
			if (hbl_conn_broken(&c->conn) == 0)
				hbl_hold_drop(c, hold);
			break;
		}
		sent++;
	}
	return sent > 0 || h->n_taking < taking;
}

/* Maps the pages the event described, as an ImportReply's would be. */
static struct hb_import *map_hold(struct hb_client *c, const struct hbl_event_node *n)
{
	ImportReply ir = IMPORT_REPLY__INIT;
	struct hb_import *im = NULL;
	int r = -ENOMEM;

	ir.desc = buffer_desc__unpack(NULL, n->desc_len, n->desc);
	if (ir.desc) {
		ir.import = n->hold;
		ir.exporter = n->domain;
		ir.flags = n->hold_info;
		ir.meta = (ProtobufCBinaryData){n->meta_len, (uint8_t *)n->meta};
		im = hbl_import_map(c, &ir, &n->id, false, &r);
		buffer_desc__free_unpacked(ir.desc, NULL);
	}
	if (!im)
		log_debug("hold %llu: cannot map it (%s); importing instead",
			  (unsigned long long)n->hold, strerror(-r));
	return im;
}

struct hb_import *hbl_hold_take(struct hb_client *c, const struct hb_id *id, uint32_t flags)
{
	struct hbl_event_node *n = c->holds.given;
	struct hb_import *im;

	/* A hold is read-only: a writable import is asked for, and the hold goes back. A broken
	 * client's session is gone with its holds: the usual path says so. */
	if (!n || !hb_id_equal(&n->id, id) || !c->mem.ops || hbl_conn_broken(&c->conn) < 0)
		return NULL;
	c->holds.given = NULL;
	im = flags ? NULL : map_hold(c, n);
	if (!im) {
		hbl_hold_drop(c, n->hold);
	} else {
		struct hbl_holds *h = &c->holds;

		h->taking[h->n_taking++] = (struct hbl_take){.hold = n->hold, .id = *id};
		h->fresh = true;
		hbc_list_insert_tail(&c->imports, &im->link);
		/* More than the daemon makes at a time (a daemon bug): tell it now. */
		if (h->n_taking == HBP_HOLDS_MAX)
			hbl_holds_send_takes(c);
	}
	free(n);
	return im;
}

size_t hbl_holds_known(struct hb_client *c, uint64_t *out, size_t max)
{
	const struct hbl_calls *calls = &c->calls;
	size_t n = 0;

	if (c->holds.given && n < max)
		out[n++] = c->holds.given->hold;
	for (const struct hbl_event_node *e = c->events.head; e; e = e->next)
		if (e->hold && n < max)
			out[n++] = e->hold;
	for (unsigned i = 0; i < calls->n_posted; i++)
		if (calls->posted[i].hold && n < max)
			out[n++] = calls->posted[i].hold;
	for (unsigned i = 0; i < c->holds.n_taking; i++)
		if (n < max)
			out[n++] = c->holds.taking[i].hold;
	return n;
}

void hbl_holds_resumed(struct hb_client *c)
{
	c->holds.n_owed = 0;
}

void hbl_holds_fini(struct hb_client *c)
{
	free(c->holds.given);
	c->holds.given = NULL;
	c->holds.n_owed = 0;
	c->holds.n_taking = 0;
}
