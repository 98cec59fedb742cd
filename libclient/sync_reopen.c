/*
 * Fence waits after a resume (resume.c, docs/RESTART.md): waits are not in the daemon's state,
 * so the library opens every pending point again on the new daemon. This runs inside the
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

/* Opens point p's wait again: still pending (a new wait id), complete by now (it completes),
 * or gone (its timeline ended with its owner while the daemon was away: -EPIPE, as for an
 * owner's death). Returns -HBL_LOST if the daemon went away again, else 0. */
static int point_reopen(struct hb_client *c, struct hbl_point *p)
{
	struct hbb_reply reply;
	int r = hbl_sync_open_call(c, p->timeline, p->value, false, &reply);

	if (r == -HBL_LOST)
		return r;
	if (r == 0 && reply.msg->sync->wait) {
		p->wait = reply.msg->sync->wait;
	} else if (r == 0 || r == -ENOENT) {
		uint64_t timeline = p->timeline, value = p->value;
		uint32_t owner = p->owner;

		hbl_point_complete(c, p, r == 0 ? reply.msg->sync->status : -EPIPE);
		hbl_events_push_fence(c, timeline, value, owner);
	}
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
