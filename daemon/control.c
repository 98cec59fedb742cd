/* What hyperbufctl sees: status, domains, exports, imports and counters (docs/PROTOCOL.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

static int add_stats(struct hbd *d, ControlReply *r)
{
	struct stat_list l = {0};
	const struct hbd_stats *s = &d->stats;
	struct hbd_domain *dom;
	uint64_t buffers = 0, orphans = 0, exports = 0, imports = 0, bytes_mapped = 0;
	uint64_t timelines = 0, fence_waits = 0, commits, compactions;
	struct hbd_session *ss;
	struct hbd_import *im;

	hbc_list_for_each_safe(ss, &d->sessions, struct hbd_session, link)
	{
		buffers += hbc_list_length(&ss->buffers);
		timelines += hbc_list_length(&ss->timelines);
		fence_waits += hbc_list_length(&ss->waits);
		hbc_list_for_each_safe(im, &ss->imports, struct hbd_import, link)
		{
			imports++;
			bytes_mapped += im->buf->mem.size;
		}
	}
	hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link) exports += dom->exports;

	put_stat(&l, "sessions", d->n_sessions);
	orphans = hbc_list_length(&d->orphans);
	put_stat(&l, "buffers", buffers);
	put_stat(&l, "buffers_orphaned", orphans);
	put_stat(&l, "exports", exports);
	put_stat(&l, "imports", imports);
	put_stat(&l, "bytes_mapped", bytes_mapped);
	put_stat(&l, "bytes_shared_total", s->bytes_shared_total);
	put_stat(&l, "bytes_copied", s->bytes_copied);
	put_stat(&l, "messages_in", s->messages_in);
	put_stat(&l, "messages_out", s->messages_out);
	put_stat(&l, "events_sent", s->events_sent);
	put_stat(&l, "events_dropped", s->events_dropped);
	put_stat(&l, "errors_protocol", s->errors_protocol);
	put_stat(&l, "errors_request", s->errors_request);
	put_stat(&l, "sessions_total", s->sessions_total);
	put_stat(&l, "exports_total", s->exports_total);
	put_stat(&l, "imports_total", s->imports_total);
	put_stat(&l, "timelines", timelines);
	put_stat(&l, "fence_waits", fence_waits);
	put_stat(&l, "timelines_total", s->timelines_total);
	put_stat(&l, "fences_completed", s->fences_completed);
	put_stat(&l, "fence_sessions_dropped", s->fence_sessions_dropped);
	put_stat(&l, "refused_credentials", s->refused_credentials);
	put_stat(&l, "refused_limits", s->refused_limits);
	put_stat(&l, "loop_turns", s->loop_turns);
	put_stat(&l, "write_waits", s->write_waits);
	put_stat(&l, "ctl_list_truncated", d->ctl_truncated);
	hbd_state_stats(d, &commits, &compactions);
	put_stat(&l, "state_kept", hbd_state_on(d));
	put_stat(&l, "state_commits", commits);
	put_stat(&l, "state_compactions", compactions);
	put_stat(&l, "sessions_restored", d->restored);
	put_stat(&l, "sessions_detached", detached_sessions(d));
	put_stat(&l, "restore_ms", d->restore_ms);
	d->backend->stats(d->backend_state, put_stat, &l);
	r->stats = l.v;
	r->n_stats = l.n;
	return l.err;
}

static int add_domains(struct hbd *d, ControlReply *r)
{
	struct hbd_domain *dom;
	size_t n = 0;

	n = hbc_list_length(&d->domains);
	r->domains = calloc(n ? n : 1, sizeof(*r->domains));
	if (!r->domains)
		return -ENOMEM;
	hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
	{
		CtlDomain *cd = calloc(1, sizeof(*cd));
		if (!cd)
			return -ENOMEM;
		ctl_domain__init(cd);
		r->domains[r->n_domains++] = cd;
		cd->id = dom->id;
		cd->name = dom->name;
		cd->connected = dom->present;
		cd->sessions = dom->sessions;
		cd->exports = dom->exports;
		cd->imports = dom->imports;
		cd->pages_used = dom->pages;
	}
	return 0;
}

/* "WIDTHxHEIGHT FOURCC": two u32 in decimal, a space, four characters and a NUL. */
#define CTL_IMAGE_MAX 32

static int add_export(ControlReply *r, size_t *cap, struct hbd_buffer *b)
{
	CtlExport *ce;

	if (!b->has_hid)
		return 0;
	if (r->n_exports >= HBD_CTL_LIST_MAX)
		return 1;
	if (r->n_exports == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		CtlExport **v = realloc(r->exports, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->exports = v;
		*cap = ncap;
	}
	/* The image summary lives in the same allocation, so hbd_control_free frees it too. */
	ce = calloc(1, sizeof(*ce) + CTL_IMAGE_MAX);
	if (!ce)
		return -ENOMEM;
	ctl_export__init(ce);
	ce->image = (char *)(ce + 1);
	hbp_image_summary(b->meta, b->meta_len, b->mem.size, ce->image, CTL_IMAGE_MAX);
	r->exports[r->n_exports++] = ce;
	ce->hid.data = b->hid.bytes;
	ce->hid.len = sizeof(b->hid.bytes);
	ce->exporter = b->mem.exporter;
	ce->peer = b->mem.peer;
	ce->size = b->mem.size;
	ce->pages = b->mem.data_pages;
	ce->importers = b->gen_importers;
	ce->state = (char *)hbd_export_state_name(b->state);
	ce->group = b->mem.group;
	return 0;
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
			CtlImport *ci;
			if (r->n_imports >= HBD_CTL_LIST_MAX) {
				truncated = 1;
				break;
			}
			if (r->n_imports == icap) {
				size_t ncap = icap ? icap * 2 : 16;
				CtlImport **v = realloc(r->imports, ncap * sizeof(*v));
				if (!v)
					return -ENOMEM;
				r->imports = v;
				icap = ncap;
			}
			ci = calloc(1, sizeof(*ci));
			if (!ci)
				return -ENOMEM;
			ctl_import__init(ci);
			r->imports[r->n_imports++] = ci;
			ci->hid.data = im->buf->hid.bytes;
			ci->hid.len = im->buf->has_hid ? sizeof(im->buf->hid.bytes) : 0;
			ci->importer = s->dom->id;
			ci->exporter = im->buf->mem.exporter;
			ci->size = im->buf->mem.size;
			ci->writable = im->writable;
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

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		hbc_list_for_each_safe(tl, &s->timelines, struct hbd_timeline, owner_link)
		{
			CtlTimeline *ct;

			if (r->n_timelines == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				CtlTimeline **v = realloc(r->timelines, ncap * sizeof(*v));
				if (!v)
					return -ENOMEM;
				r->timelines = v;
				cap = ncap;
			}
			ct = calloc(1, sizeof(*ct));
			if (!ct)
				return -ENOMEM;
			ctl_timeline__init(ct);
			r->timelines[r->n_timelines++] = ct;
			ct->id = tl->id;
			ct->owner = s->dom->id;
			ct->owner_session = s->label;
			ct->value = tl->value;
			ct->pending = tl->n_heap > UINT32_MAX ? UINT32_MAX : (uint32_t)tl->n_heap;
		}
	}
	return 0;
}

int hbd_control(struct hbd_session *s, uint32_t what, ControlReply **out)
{
	struct hbd *d = s->d;
	ControlReply *r;
	int err;

	if (s->dom->id != 0)
		return -EPERM;
	if (what < HBP_CTL_STATUS || what > HBP_CTL_TIMELINES)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	control_reply__init(r);
	r->version = (char *)HB_VERSION_STRING;
	r->backend = (char *)d->backend->name;
	r->uptime_ms = hbc_now_ms() - d->start_ms;
	/* Everything, whatever `what` asked: the views are bounded and hyperbufctl picks. The
	 * export/import listing goes last: its result says whether it was cut. */
	if ((err = add_domains(d, r)) < 0 || (err = add_timelines(d, r)) < 0 ||
	    (err = add_exports_imports(d, r)) < 0)
		goto err;
	d->ctl_truncated = err;
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
	free(r);
}
