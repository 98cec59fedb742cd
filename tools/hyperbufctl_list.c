/*
 * hyperbufctl's listings, page by page (PROTOCOL.md §3 Control, paging): a reply is one frame,
 * so a listing of any length comes in pages of at most HBP_CTL_PAGE_MAX rows, each asking for
 * the rows after the last key of the one before. The pages' rows are gathered into one reply
 * and printed as one table or one JSON document.
 *
 * A key on the command line (--after) and on stderr is what the listing shows of its rows: a
 * domain's id, an import's or a timeline's id in decimal, an export's hid in hex.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/limits.h"
#include "tools/hyperbufctl.h"

#define FIRST_PAGE_ID 2u /* after the Hello */

/* The key's length for a listing (the daemon's, control_list.c). */
static size_t key_len(uint32_t what)
{
	return what == HBP_CTL_DOMAINS ? 4 : what == HBP_CTL_EXPORTS ? 16 : 8;
}

/* --after's text as the listing's key; 0, or -1 with the reason printed. */
static int key_parse(uint32_t what, const char *text, uint8_t *key)
{
	size_t len = key_len(what), i;
	unsigned long long v;
	char *end;

	if (what == HBP_CTL_EXPORTS) {
		if (strlen(text) != 32)
			goto bad;
		for (i = 0; i < 16; i++) {
			if (sscanf(text + 2 * i, "%2hhx", &key[i]) != 1 ||
			    !strchr("0123456789abcdefABCDEF", text[2 * i]) ||
			    !strchr("0123456789abcdefABCDEF", text[2 * i + 1]))
				goto bad;
		}
		return 0;
	}
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || !*text || text[0] == '-' || (len == 4 && v > UINT32_MAX))
		goto bad;
	for (i = 0; i < len; i++)
		key[i] = (uint8_t)(v >> (8 * (len - 1 - i)));
	return 0;
bad:
	tool_ctl_errmsg("--after %s: not a %s", text,
			what == HBP_CTL_EXPORTS ? "hid (32 hex digits)" : "decimal id");
	return -1;
}

/* A key from the daemon as --after takes it; "" if it is not one of the listing's. */
static void key_format(uint32_t what, const ProtobufCBinaryData *key, char *out, size_t n)
{
	uint64_t v = 0;

	out[0] = '\0';
	if (key->len != key_len(what))
		return;
	if (what == HBP_CTL_EXPORTS) {
		for (size_t i = 0; i < 16 && 2 * i + 2 < n; i++)
			snprintf(out + 2 * i, n - 2 * i, "%02x", key->data[i]);
		return;
	}
	for (size_t i = 0; i < key->len; i++)
		v = v << 8 | key->data[i];
	snprintf(out, n, "%" PRIu64, v);
}

/* Appends m's rows to the listing's reply. 0 or -1 (out of memory, printed). */
static int take_rows(ControlReply *all, uint32_t what, const ControlReply *r)
{
	void ***dst, **src;
	size_t *n, m;
	void **v;

	switch (what) {
	case HBP_CTL_DOMAINS:
		dst = (void ***)&all->domains, n = &all->n_domains;
		src = (void **)r->domains, m = r->n_domains;
		break;
	case HBP_CTL_EXPORTS:
		dst = (void ***)&all->exports, n = &all->n_exports;
		src = (void **)r->exports, m = r->n_exports;
		break;
	case HBP_CTL_IMPORTS:
		dst = (void ***)&all->imports, n = &all->n_imports;
		src = (void **)r->imports, m = r->n_imports;
		break;
	default:
		dst = (void ***)&all->timelines, n = &all->n_timelines;
		src = (void **)r->timelines, m = r->n_timelines;
		break;
	}
	if (!m)
		return 0;
	v = realloc(*dst, (*n + m) * sizeof(*v));
	if (!v) {
		tool_ctl_errmsg("out of memory");
		return -1;
	}
	memcpy(v + *n, src, m * sizeof(*v));
	*dst = v;
	*n += m;
	return 0;
}

/* The pages' replies, kept until the rows they hold are printed. */
struct pages {
	ServerMsg **v;
	size_t n;
	ControlReply all;
};

static void pages_free(struct pages *p)
{
	free(p->all.domains);
	free(p->all.exports);
	free(p->all.imports);
	free(p->all.timelines);
	for (size_t i = 0; i < p->n; i++)
		server_msg__free_unpacked(p->v[i], NULL);
	free(p->v);
}

/* Asks for the next page; the reply is kept in p. NULL with the reason printed. */
static const ControlReply *page(struct tool_ctl_conn *c, struct pages *p, uint32_t what,
				uint32_t limit, const ProtobufCBinaryData *after)
{
	ClientMsg req = CLIENT_MSG__INIT;
	Control control = CONTROL__INIT;
	ServerMsg **v, *m;

	control.what = what;
	control.limit = limit;
	control.after = *after;
	req.id = FIRST_PAGE_ID + (uint32_t)p->n;
	req.body_case = CLIENT_MSG__BODY_CONTROL;
	req.control = &control;
	v = realloc(p->v, (p->n + 1) * sizeof(*v));
	if (!v) {
		tool_ctl_errmsg("out of memory");
		return NULL;
	}
	p->v = v;
	m = tool_ctl_request(c, &req, SERVER_MSG__BODY_CONTROL, "a listing");
	if (!m)
		return NULL;
	p->v[p->n++] = m;
	return m->control;
}

int tool_ctl_list(struct tool_ctl_conn *c, const struct tool_ctl_view *v, uint32_t what,
		  const struct tool_ctl_paging *pg, bool json)
{
	uint8_t first[16];
	ProtobufCBinaryData after = {0};
	const ControlReply *r = NULL;
	struct pages p = {0};
	unsigned long got = 0, want;
	char next[40] = "";
	int status = -1;

	control_reply__init(&p.all);
	if (pg->after) {
		if (key_parse(what, pg->after, first) < 0)
			return -1;
		after = (ProtobufCBinaryData){.len = key_len(what), .data = first};
	}
	for (;;) {
		want = pg->limit ? pg->limit - got : HBP_CTL_PAGE_MAX;
		r = page(c, &p, what, want < HBP_CTL_PAGE_MAX ? (uint32_t)want : HBP_CTL_PAGE_MAX,
			 &after);
		if (!r || take_rows(&p.all, what, r) < 0)
			goto out;
		got = p.all.n_domains + p.all.n_exports + p.all.n_imports + p.all.n_timelines;
		/* The daemon's key must move on, or a hostile one could keep us here. */
		if (!r->next.len || (after.len && r->next.len == after.len &&
				     memcmp(r->next.data, after.data, after.len) <= 0))
			break;
		after = r->next;
		if (pg->limit && got >= pg->limit) {
			key_format(what, &r->next, next, sizeof(next));
			break;
		}
	}
	if (next[0] && !json)
		tool_ctl_errmsg("more rows follow: --after %s", next);
	status = tool_ctl_print_page(v, &p.all, next[0] ? next : NULL, json);
out:
	pages_free(&p);
	return status;
}
