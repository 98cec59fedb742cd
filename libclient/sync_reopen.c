/*
 * Fence waits after a resume (resume.c, docs/RESTART.md): waits and watches are not in the
 * daemon's state, so the library opens every pending point again on the new daemon: a
 * timeline's first point asks for a watch again, and the others go on it. This runs inside the
 * resume, before it ends: if the daemon goes away again meanwhile, the resume starts over
 * (and opens them all again) instead of a resume nesting inside another one's calls.
 */
#include <errno.h>
#include <stdlib.h>

#include "libclient/client.h"

struct hbl_point_key {
	uint64_t timeline, value;
};

/* The pending points, by key (a key outlives a point that completes meanwhile): 0 or -ENOMEM. */
static int point_keys(struct hb_client *c, struct hbl_point_key **out, size_t *n_out)
{
	struct hbl_point_key *v = NULL, *g;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < HBL_POINT_BUCKETS; i++) {
		for (struct hbl_point *p = c->fences.points[i]; p; p = p->hnext) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				g = realloc(v, cap * sizeof(*v));
				if (!g) {
					free(v);
					return -ENOMEM;
				}
				v = g;
			}
			v[n++] = (struct hbl_point_key){p->timeline, p->value};
		}
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* Keys by timeline, then value: a timeline's lowest point is opened first, and the watch it
 * gets is armed there, so the points after it need no WatchArm (nothing is posted inside a
 * resume). */
static int key_order(const void *a, const void *b)
{
	const struct hbl_point_key *x = a, *y = b;

	if (x->timeline != y->timeline)
		return x->timeline < y->timeline ? -1 : 1;
	return x->value < y->value ? -1 : x->value > y->value;
}

static void point_done(struct hb_client *c, struct hbl_point *p, int status)
{
	uint64_t timeline = p->timeline, value = p->value;
	uint32_t owner = p->owner;

	hbl_point_complete(c, p, status);
	hbl_events_push_fence(c, timeline, value, owner);
}

/* p goes on w: passed already (status 1: above base), or pending on it. */
static void point_on_watch(struct hb_client *c, struct hbl_watch *w, struct hbl_point *p)
{
	p->wait = 0; /* the old daemon's */
	if (p->value <= w->value)
		point_done(c, p, 1);
	else
		hbl_watch_attach(c, w, p);
}

/* The watch a reopening open was granted (spare, filled in and filed), or NULL. */
static struct hbl_watch *watch_granted(struct hb_client *c, struct hbl_watch *spare,
				       const struct hbl_point *p, const SyncReply *sr)
{
	const struct hb_fence f = {.timeline = p->timeline, .value = p->value};

	if (!spare || !sr->watched)
		return NULL;
	hbl_watch_granted(c, spare, &f, sr);
	return spare;
}

/* Opens point p again: on the watch an earlier point of its timeline got, or through the
 * daemon: still pending (a new wait id, or a watch), complete by now (it completes), gone
 * (its timeline ended with its owner while the daemon was away: -EPIPE, as for an owner's
 * death), or refused (EDQUOT: it completes with that, rather than hang). Returns -HBL_LOST if
 * the daemon went away again, else 0. */
static int point_reopen(struct hb_client *c, struct hbl_point *p)
{
	struct hbl_watch *w = hbl_watch_find(c, p->timeline), *spare = NULL;
	struct hbb_reply reply;
	int r;

	if (w && p->value > w->base) {
		point_on_watch(c, w, p);
		return 0;
	}
	if (!w && (c->features & HBP_FEATURE_WATCH))
		spare = calloc(1, sizeof(*spare)); /* none: a wait */
	r = hbl_sync_open_call(c, p->timeline, p->value, spare != NULL, &reply);
	if (r == -HBL_LOST) {
		free(spare);
		return r;
	}
	w = r == 0 ? watch_granted(c, spare, p, reply.msg->sync) : NULL;
	if (w)
		spare = NULL;
	free(spare);
	if (r == 0 && w && reply.msg->sync->status == 0)
		point_on_watch(c, w, p);
	else if (r == 0 && reply.msg->sync->wait)
		p->wait = reply.msg->sync->wait;
	else
		point_done(c, p, r == 0 ? reply.msg->sync->status : r == -ENOENT ? -EPIPE : r);
	if (r == 0)
		hbl_reply_free(&reply);
	return 0;
}

int hbl_fences_reopen(struct hb_client *c)
{
	struct hbl_point_key *keys;
	size_t n;
	int r = point_keys(c, &keys, &n);

	if (r < 0)
		return r;
	if (n > 1)
		qsort(keys, n, sizeof(*keys), key_order);
	for (size_t i = 0; i < n && r == 0; i++) {
		/* A completion read meanwhile may have taken it. */
		struct hbl_point *p = hbl_point_find(c, keys[i].timeline, keys[i].value);

		if (p)
			r = point_reopen(c, p);
		if (r == 0)
			r = hbl_conn_broken(&c->conn);
	}
	free(keys);
	return r;
}
