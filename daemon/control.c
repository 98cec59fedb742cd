/* What hyperbufctl sees: status, domains, exports, imports, timelines, counters and limits
 * (docs/PROTOCOL.md §3 Control). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/control.h"
#include "daemon/hyperbufd.h"
#include "protocol/image.h"

/* A control reply must fit one frame (HBP_FRAME_MAX, 256 KiB): listings stop here and the
 * stat ctl_list_truncated says so. An entry takes well under 100 bytes on the wire. */
#define HBD_CTL_LIST_MAX 1500u

struct stat_list {
	CtlStat **v;
	size_t n, cap;
	int err;
};

static void put_stat(void *ctx, const char *key, uint64_t value)
{
	struct stat_list *l = ctx;
	CtlStat *st;

	if (l->err)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		CtlStat **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->err = -ENOMEM;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		l->err = -ENOMEM;
		return;
	}
	ctl_stat__init(st);
	st->key = strdup(key);
	if (!st->key) {
		free(st);
		l->err = -ENOMEM;
		return;
	}
	st->value = value;
	l->v[l->n++] = st;
}

/* Restored sessions still waiting for their clients. */
static uint64_t detached_sessions(struct hbd *d)
{
	struct hbd_session *s;
	uint64_t n = 0;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link) n += s->detached;
	return n;
}

void hbd_stats_walk(struct hbd *d, void (*put)(void *ctx, const char *key, uint64_t value), void *l)
{
	const struct hbd_stats *s = &d->stats;
	struct hbd_domain *dom;
	uint64_t buffers = 0, orphans = 0, exports = 0, imports = 0, bytes_mapped = 0;
	uint64_t timelines = 0, fence_waits = 0, fence_watches = 0, commits, compactions;
	uint64_t connected = 0, domains = 0;
	struct hbd_session *ss;
	struct hbd_import *im;

	hbc_list_for_each_safe(ss, &d->sessions, struct hbd_session, link)
	{
		buffers += hbc_list_length(&ss->buffers);
		timelines += hbc_list_length(&ss->timelines);
		fence_waits += hbc_list_length(&ss->waits);
		fence_watches += hbc_list_length(&ss->fence_watches);
		hbc_list_for_each_safe(im, &ss->imports, struct hbd_import, link)
		{
			imports++;
			bytes_mapped += im->buf->mem.size;
		}
	}
	hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
	{
		exports += dom->exports;
		domains++;
		connected += dom->present;
	}

	put(l, "sessions", d->n_sessions);
	orphans = hbc_list_length(&d->orphans);
	put(l, "domains", domains);
	put(l, "domains_connected", connected);
	put(l, "buffers", buffers);
	put(l, "buffers_orphaned", orphans);
	put(l, "exports", exports);
	put(l, "imports", imports);
	put(l, "bytes_mapped", bytes_mapped);
	put(l, "bytes_shared_total", s->bytes_shared_total);
	put(l, "bytes_copied", s->bytes_copied);
	put(l, "messages_in", s->messages_in);
	put(l, "messages_out", s->messages_out);
	put(l, "events_sent", s->events_sent);
	put(l, "events_dropped", s->events_dropped);
	put(l, "errors_protocol", s->errors_protocol);
	put(l, "errors_request", s->errors_request);
	put(l, "sessions_total", s->sessions_total);
	put(l, "exports_total", s->exports_total);
	put(l, "imports_total", s->imports_total);
	put(l, "holds_made", s->holds_made);
	put(l, "holds_taken", s->holds_taken);
	put(l, "timelines", timelines);
	put(l, "fence_waits", fence_waits);
	put(l, "fence_watches", fence_watches);
	put(l, "timelines_total", s->timelines_total);
	put(l, "fences_completed", s->fences_completed);
	put(l, "fence_sessions_dropped", s->fence_sessions_dropped);
	put(l, "timeline_signals", s->timeline_signals);
	put(l, "lazy_changes", s->lazy_changes);
	put(l, "refused_credentials", s->refused_credentials);
	put(l, "refused_limits", s->refused_limits);
	put(l, "loop_turns", s->loop_turns);
	put(l, "write_waits", s->write_waits);
	put(l, "socket_calls", s->socket_calls);
	put(l, "ctl_list_truncated", d->ctl_truncated);
	hbd_state_stats(d, &commits, &compactions);
	put(l, "state_kept", hbd_state_on(d));
	put(l, "state_commits", commits);
	put(l, "state_compactions", compactions);
	put(l, "sessions_restored", d->restored);
	put(l, "sessions_detached", detached_sessions(d));
	put(l, "restore_ms", d->restore_ms);
	put(l, "uptime_ms", hbc_now_ms() - d->start_ms);
	d->backend->stats(d->backend_state, put, l);
}

void hbd_limits_walk(struct hbd *d, void (*put)(void *ctx, const char *key, uint64_t value),
		     void *l)
{
	const struct hbc_config *c = d->cfg;

	put(l, "meta_max", c->meta_max);
	put(l, "event_queue", c->event_queue);
	put(l, "exports_per_domain", c->exports_per_domain);
	put(l, "pages_per_domain", c->pages_per_domain);
	put(l, "imports_per_domain", c->imports_per_domain);
	put(l, "timelines_per_domain", c->timelines_per_domain);
	put(l, "fence_waits_per_domain", c->fence_waits_per_domain);
	put(l, "sessions_per_domain", c->sessions_per_domain);
	put(l, "sessions_per_uid", c->sessions_per_uid);
	put(l, "pending_per_uid", c->pending_per_uid);
	put(l, "hello_timeout_ms", c->hello_timeout_ms);
	put(l, "resume_timeout_ms", c->resume_timeout_ms);
	put(l, "frame_max", HBP_FRAME_MAX);
}

static int add_stats(struct hbd *d, ControlReply *r)
{
	struct stat_list l = {0}, lim = {0};

	hbd_stats_walk(d, put_stat, &l);
	r->stats = l.v;
	r->n_stats = l.n;
	hbd_limits_walk(d, put_stat, &lim);
	r->limits = lim.v;
	r->n_limits = lim.n;
	return l.err ? l.err : lim.err;
}

/* ---- rows (shared with control_list.c's pages) ------------------------------------------ */

CtlDomain *hbd_ctl_domain(const struct hbd_domain *dom)
{
	CtlDomain *cd = calloc(1, sizeof(*cd));

	if (!cd)
		return NULL;
	ctl_domain__init(cd);
	cd->id = dom->id;
	cd->name = (char *)dom->name;
	cd->connected = dom->present;
	cd->sessions = dom->sessions;
	cd->exports = dom->exports;
	cd->imports = dom->imports;
	cd->pages_used = dom->pages;
	return cd;
}

/* "WIDTHxHEIGHT FOURCC": two u32 in decimal, a space, four characters and a NUL. */
#define CTL_IMAGE_MAX 32

CtlExport *hbd_ctl_export(const struct hbd_buffer *b)
{
	/* The image summary lives in the same allocation, so hbd_control_free frees it too. */
	CtlExport *ce = calloc(1, sizeof(*ce) + CTL_IMAGE_MAX);

	if (!ce)
		return NULL;
	ctl_export__init(ce);
	ce->image = (char *)(ce + 1);
	hbp_image_summary(b->meta, b->meta_len, b->mem.size, ce->image, CTL_IMAGE_MAX);
	ce->hid.data = (uint8_t *)b->hid.bytes;
	ce->hid.len = sizeof(b->hid.bytes);
	ce->exporter = b->mem.exporter;
	ce->peer = b->mem.peer;
	ce->size = b->mem.size;
	ce->pages = b->mem.data_pages;
	ce->importers = b->gen_importers;
	ce->state = (char *)hbd_export_state_name(b->state);
	ce->group = b->mem.group;
	return ce;
}

CtlImport *hbd_ctl_import(const struct hbd_session *s, const struct hbd_import *im)
{
	CtlImport *ci = calloc(1, sizeof(*ci));

	if (!ci)
		return NULL;
	ctl_import__init(ci);
	ci->hid.data = (uint8_t *)im->buf->hid.bytes;
	ci->hid.len = im->buf->has_hid ? sizeof(im->buf->hid.bytes) : 0;
	ci->importer = s->dom->id;
	ci->exporter = im->buf->mem.exporter;
	ci->size = im->buf->mem.size;
	ci->writable = im->writable;
	ci->id = im->handle;
	ci->held = im->held;
	return ci;
}

CtlTimeline *hbd_ctl_timeline(const struct hbd_session *s, const struct hbd_timeline *tl)
{
	CtlTimeline *ct = calloc(1, sizeof(*ct));

	if (!ct)
		return NULL;
	ctl_timeline__init(ct);
	ct->id = tl->id;
	ct->owner = s->dom->id;
	ct->owner_session = (char *)s->label;
	ct->value = tl->value;
	ct->pending = tl->n_heap > UINT32_MAX ? UINT32_MAX : (uint32_t)tl->n_heap;
	ct->watchers = (uint32_t)hbc_list_length(&tl->fence_watches);
	return ct;
}

/* Room for one more entry in a reply's list *listp of n entries (capacity *cap, doubled as it
 * fills). The list's pointer is copied in and out with memcpy: any row type, no aliasing. */
int hbd_ctl_reserve(void *listp, size_t n, size_t *cap)
{
	void *v, *nv;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	memcpy(&v, listp, sizeof(v));
	nv = realloc(v, ncap * sizeof(void *));
	if (!nv)
		return -ENOMEM;
	memcpy(listp, &nv, sizeof(nv));
	*cap = ncap;
	return 0;
}

/* ---- the unpaged reply: every view, each cut at HBD_CTL_LIST_MAX ------------------------- */

static int add_domains(struct hbd *d, ControlReply *r)
{
	struct hbd_domain *dom;
	size_t cap = 0;
	int err;

	hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
	{
		if ((err = HBD_CTL_PUSH(r->domains, r->n_domains, cap, hbd_ctl_domain(dom))) < 0)
			return err;
	}
	return 0;
}

static int add_export(ControlReply *r, size_t *cap, struct hbd_buffer *b)
{
	if (!b->has_hid)
		return 0;
	if (r->n_exports >= HBD_CTL_LIST_MAX)
		return 1;
	return HBD_CTL_PUSH(r->exports, r->n_exports, *cap, hbd_ctl_export(b));
}

/* Returns 1 if a listing was cut at HBD_CTL_LIST_MAX, 0, or -errno. */
static int add_exports_imports(struct hbd *d, ControlReply *r)
{
	size_t ecap = 0, icap = 0;
	int truncated = 0;
	struct hbd_session *s;
	struct hbd_buffer *b;
	struct hbd_import *im;
	int err;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		hbc_list_for_each_safe(b, &s->buffers, struct hbd_buffer, owner_link)
		{
			if ((err = add_export(r, &ecap, b)) < 0)
				return err;
			truncated |= err;
		}
		hbc_list_for_each_safe(im, &s->imports, struct hbd_import, link)
		{
			if (r->n_imports >= HBD_CTL_LIST_MAX) {
				truncated = 1;
				break;
			}
			if ((err = HBD_CTL_PUSH(r->imports, r->n_imports, icap,
						hbd_ctl_import(s, im))) < 0)
				return err;
		}
	}
	hbc_list_for_each_safe(b, &d->orphans, struct hbd_buffer, owner_link)
	{
		if ((err = add_export(r, &ecap, b)) < 0)
			return err;
		truncated |= err;
	}
	return truncated;
}

static int add_timelines(struct hbd *d, ControlReply *r)
{
	size_t cap = 0;
	struct hbd_session *s;
	struct hbd_timeline *tl;
	int err;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		hbc_list_for_each_safe(tl, &s->timelines, struct hbd_timeline, owner_link)
		{
			if ((err = HBD_CTL_PUSH(r->timelines, r->n_timelines, cap,
						hbd_ctl_timeline(s, tl))) < 0)
				return err;
		}
	}
	return 0;
}

int hbd_control(struct hbd_session *s, const Control *req, ControlReply **out)
{
	struct hbd *d = s->d;
	ControlReply *r;
	int err;

	if (s->dom->id != 0)
		return -EPERM;
	if (req->what < HBP_CTL_STATUS || req->what > HBP_CTL_TIMELINES)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	control_reply__init(r);
	r->version = (char *)HB_VERSION_STRING;
	r->backend = (char *)d->backend->name;
	r->uptime_ms = hbc_now_ms() - d->start_ms;
	if (req->limit) {
		/* One page of the listing asked for, with the counters and the limits. */
		if ((err = hbd_control_page(d, req, r)) < 0)
			goto err;
	} else {
		/* Everything, whatever `what` asked: the views are bounded and the client picks.
		 * The export/import listing goes last: its result says whether it was cut. */
		if ((err = add_domains(d, r)) < 0 || (err = add_timelines(d, r)) < 0 ||
		    (err = add_exports_imports(d, r)) < 0)
			goto err;
		d->ctl_truncated = err;
	}
	if ((err = add_stats(d, r)) < 0)
		goto err;
	*out = r;
	return 0;

err:
	hbd_control_free(r);
	return err;
}

void hbd_control_free(ControlReply *r)
{
	for (size_t i = 0; i < r->n_stats; i++) {
		free(r->stats[i]->key);
		free(r->stats[i]);
	}
	free(r->stats);
	for (size_t i = 0; i < r->n_limits; i++) {
		free(r->limits[i]->key);
		free(r->limits[i]);
	}
	free(r->limits);
	for (size_t i = 0; i < r->n_domains; i++)
		free(r->domains[i]);
	free(r->domains);
	for (size_t i = 0; i < r->n_exports; i++)
		free(r->exports[i]);
	free(r->exports);
	for (size_t i = 0; i < r->n_imports; i++)
		free(r->imports[i]);
	free(r->imports);
	for (size_t i = 0; i < r->n_timelines; i++)
		free(r->timelines[i]);
	free(r->timelines);
	free(r->next.data);
	free(r);
}
