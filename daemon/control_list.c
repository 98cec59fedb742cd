/*
 * One page of a hyperbufctl listing (PROTOCOL.md §3 Control, paging): the rows of the listing
 * Control.what names whose keys come after Control.after, at most Control.limit of them, in
 * the order of their keys. A key is a row's identity packed big-endian, so that memcmp orders
 * keys as numbers: a domain's id (4 bytes), an export's hid (16), an import's handle (8), a
 * timeline's id (8). Rows come and go between pages; the order of keys, not of the daemon's
 * lists, is what makes every row that lives through a paged listing appear exactly once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/control.h"
#include "daemon/hyperbufd.h"

/* A row that may go on the page: its key, and what it is made of. */
struct cand {
	uint8_t key[HBP_CTL_KEY_MAX];
	const void *a, *b;
};

struct page {
	const Control *req;
	size_t key_len;
	struct cand *v;
	size_t n, cap;
};

static void put_be(uint8_t *out, uint64_t v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(v >> (8 * (len - 1 - i)));
}

/* Keeps a row whose key comes after Control.after. 0 or -ENOMEM. */
static int offer(struct page *p, const uint8_t *key, const void *a, const void *b)
{
	const ProtobufCBinaryData *after = &p->req->after;

	if (after->len && memcmp(key, after->data, p->key_len) <= 0)
		return 0;
	if (p->n == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 64;
		struct cand *v = realloc(p->v, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = ncap;
	}
	memcpy(p->v[p->n].key, key, p->key_len);
	p->v[p->n].a = a;
	p->v[p->n].b = b;
	p->n++;
	return 0;
}

static size_t sort_key_len;

static int cand_cmp(const void *x, const void *y)
{
	return memcmp(((const struct cand *)x)->key, ((const struct cand *)y)->key, sort_key_len);
}

static int offer_domains(struct hbd *d, struct page *p)
{
	struct hbd_domain *dom;
	uint8_t key[HBP_CTL_KEY_MAX];
	int err;

	hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
	{
		put_be(key, dom->id, p->key_len);
		if ((err = offer(p, key, dom, NULL)) < 0)
			return err;
	}
	return 0;
}

static int offer_exports(struct hbd *d, struct page *p)
{
	struct hbd_session *s;
	struct hbd_buffer *b;
	int err;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		hbc_list_for_each_safe(b, &s->buffers, struct hbd_buffer, owner_link)
		{
			if (b->has_hid && (err = offer(p, b->hid.bytes, b, NULL)) < 0)
				return err;
		}
	}
	hbc_list_for_each_safe(b, &d->orphans, struct hbd_buffer, owner_link)
	{
		if (b->has_hid && (err = offer(p, b->hid.bytes, b, NULL)) < 0)
			return err;
	}
	return 0;
}

static int offer_imports(struct hbd *d, struct page *p)
{
	struct hbd_session *s;
	struct hbd_import *im;
	uint8_t key[HBP_CTL_KEY_MAX];
	int err;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		hbc_list_for_each_safe(im, &s->imports, struct hbd_import, link)
		{
			put_be(key, im->handle, p->key_len);
			if ((err = offer(p, key, s, im)) < 0)
				return err;
		}
	}
	return 0;
}

static int offer_timelines(struct hbd *d, struct page *p)
{
	struct hbd_session *s;
	struct hbd_timeline *tl;
	uint8_t key[HBP_CTL_KEY_MAX];
	int err;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		hbc_list_for_each_safe(tl, &s->timelines, struct hbd_timeline, owner_link)
		{
			put_be(key, tl->id, p->key_len);
			if ((err = offer(p, key, s, tl)) < 0)
				return err;
		}
	}
	return 0;
}

/* The rows of the page, made from its first n candidates. */
static int make_rows(const struct page *p, size_t n, ControlReply *r)
{
	size_t cap = 0;
	int err = 0;

	for (size_t i = 0; i < n && err == 0; i++) {
		const struct cand *c = &p->v[i];

		switch (p->req->what) {
		case HBP_CTL_DOMAINS:
			err = HBD_CTL_PUSH(r->domains, r->n_domains, cap, hbd_ctl_domain(c->a));
			break;
		case HBP_CTL_EXPORTS:
			err = HBD_CTL_PUSH(r->exports, r->n_exports, cap, hbd_ctl_export(c->a));
			break;
		case HBP_CTL_IMPORTS:
			err =
			    HBD_CTL_PUSH(r->imports, r->n_imports, cap, hbd_ctl_import(c->a, c->b));
			break;
		default:
			err = HBD_CTL_PUSH(r->timelines, r->n_timelines, cap,
					   hbd_ctl_timeline(c->a, c->b));
			break;
		}
	}
	return err;
}

static size_t key_len_of(uint32_t what)
{
	switch (what) {
	case HBP_CTL_DOMAINS:
		return 4;
	case HBP_CTL_EXPORTS:
		return 16;
	case HBP_CTL_IMPORTS:
	case HBP_CTL_TIMELINES:
		return 8;
	default:
		return 0; /* status and stats: no listing, only the counters and the limits */
	}
}

int hbd_control_page(struct hbd *d, const Control *req, ControlReply *r)
{
	struct page p = {.req = req, .key_len = key_len_of(req->what)};
	size_t n;
	int err;

	if (!p.key_len)
		return 0;
	/* A key is exactly as long as the listing's: anything else is not one of ours. */
	if (req->after.len && req->after.len != p.key_len)
		return -EINVAL;
	switch (req->what) {
	case HBP_CTL_DOMAINS:
		err = offer_domains(d, &p);
		break;
	case HBP_CTL_EXPORTS:
		err = offer_exports(d, &p);
		break;
	case HBP_CTL_IMPORTS:
		err = offer_imports(d, &p);
		break;
	default:
		err = offer_timelines(d, &p);
		break;
	}
	if (err < 0)
		goto out;
	sort_key_len = p.key_len;
	if (p.n) /* qsort wants an array, even of nothing */
		qsort(p.v, p.n, sizeof(*p.v), cand_cmp);
	n = p.n < req->limit ? p.n : req->limit;
	if (n > HBP_CTL_PAGE_MAX)
		n = HBP_CTL_PAGE_MAX;
	if ((err = make_rows(&p, n, r)) < 0)
		goto out;
	if (n < p.n) {
		r->next.data = malloc(p.key_len);
		if (!r->next.data) {
			err = -ENOMEM;
			goto out;
		}
		memcpy(r->next.data, p.v[n - 1].key, p.key_len);
		r->next.len = p.key_len;
	}
out:
	free(p.v);
	return err;
}
