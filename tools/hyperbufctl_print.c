/*
 * hyperbufctl's output: the daemon's ControlReply as text (tables, "key: value" lines) or as
 * one JSON document per run. Strings come from the daemon and are treated as hostile: control
 * characters never reach the terminal, and the JSON always parses.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hyperbufctl.h"

/* Text output: daemon-supplied strings must not drive the terminal. */
static void put_text(const char *s)
{
	for (; *s; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string: quotes, backslashes and control characters escaped, invalid UTF-8 replaced by
 * U+FFFD so the document always parses. */
static void put_json_str(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;

	putchar('"');
	while (*s) {
		if (*s == '"' || *s == '\\') {
			putchar('\\');
			putchar(*s++);
		} else if (*s == '\n') {
			fputs("\\n", stdout);
			s++;
		} else if (*s == '\t') {
			fputs("\\t", stdout);
			s++;
		} else if (*s < 0x20 || *s == 0x7f) {
			printf("\\u%04x", *s++);
		} else if ((n = utf8_len(s)) > 0) {
			fwrite(s, 1, n, stdout);
			s += n;
		} else {
			fputs("\\ufffd", stdout);
			s++;
		}
	}
	putchar('"');
}

static void hid_hex(const ProtobufCBinaryData *hid, char out[2 * 16 + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	/* Views may carry no hid (frame.c allows empty); 16 bytes otherwise. */
	if (hid->len != 16 || !hid->data) {
		strcpy(out, "-");
		return;
	}
	for (i = 0; i < 16; i++) {
		out[2 * i] = digits[hid->data[i] >> 4];
		out[2 * i + 1] = digits[hid->data[i] & 15];
	}
	out[32] = '\0';
}

/* The hid as a JSON value: a string of 32 hex digits, or null when the view carries none. */
static void put_json_hid(const ProtobufCBinaryData *hid)
{
	char hex[33];

	hid_hex(hid, hex);
	if (hex[0] == '-')
		fputs("null", stdout);
	else
		printf("\"%s\"", hex);
}

/* A text table: cells collected row by row, printed with columns as wide as their widest cell. */
#define TABLE_MAX_COLS 8
#define CELL_MAX       80

struct table {
	unsigned cols;
	size_t rows, cap;
	char (*cells)[CELL_MAX]; /* rows * cols, row-major; the first row is the header */
};

/* Adds a row of t->cols cells; 0, or -1 with the reason printed. */
static int table_row(struct table *t, const char *const cells[])
{
	unsigned i;

	if (t->rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		void *v = realloc(t->cells, cap * t->cols * sizeof(*t->cells));
		if (!v) {
			tool_ctl_errmsg("out of memory");
			return -1;
		}
		t->cells = v;
		t->cap = cap;
	}
	for (i = 0; i < t->cols; i++)
		snprintf(t->cells[t->rows * t->cols + i], CELL_MAX, "%s", cells[i]);
	t->rows++;
	return 0;
}

static void table_print(struct table *t)
{
	size_t width[TABLE_MAX_COLS] = {0}, r, len;
	unsigned i;

	for (r = 0; r < t->rows; r++)
		for (i = 0; i < t->cols; i++) {
			len = strlen(t->cells[r * t->cols + i]);
			if (len > width[i])
				width[i] = len;
		}
	for (r = 0; r < t->rows; r++) {
		for (i = 0; i < t->cols; i++) {
			const char *cell = t->cells[r * t->cols + i];

			put_text(cell);
			if (i + 1 < t->cols)
				printf("%*s", (int)(width[i] - strlen(cell) + 2), "");
		}
		putchar('\n');
	}
}

/*
 * The list views (domains, exports, imports, timelines) are described, not coded: each is a
 * list of the fields of its row message, and one printer walks the rows for both outputs. A
 * field with a key is a JSON member, one with a header a text column, in the order given.
 * Text shows an empty string as "-", a missing hid as "-", a bool as its yes/no word.
 */
/* F_ID: a 64-bit id, a string in JSON: jq and JavaScript round numbers past 2^53. */
enum field_kind { F_U32, F_U64, F_ID, F_BOOL, F_STR, F_HID };

struct field {
	const char *key;    /* JSON member name, or NULL: text only */
	const char *header; /* text column header, or NULL: JSON only */
	enum field_kind kind;
	size_t off;           /* offsetof the field in the row message */
	const char *yes, *no; /* F_BOOL: the text cell */
};

struct tool_ctl_view {
	const char *name; /* the JSON document's one member */
	const struct field *fields;
	size_t n_fields;
	/* Row i of the reply, or NULL past the last. */
	const void *(*row)(const ControlReply *r, size_t i);
};

/* A field's text cell, in buf (CELL_MAX bytes), or a string constant or the field itself. */
static const char *field_text(const struct field *f, const void *row, char *buf)
{
	const char *p = (const char *)row + f->off;
	const char *s;

	switch (f->kind) {
	case F_U32:
		snprintf(buf, CELL_MAX, "%u", *(const uint32_t *)p);
		return buf;
	case F_U64:
	case F_ID:
		snprintf(buf, CELL_MAX, "%llu", (unsigned long long)*(const uint64_t *)p);
		return buf;
	case F_BOOL:
		return *(const protobuf_c_boolean *)p ? f->yes : f->no;
	case F_STR:
		s = *(char *const *)p;
		return s[0] ? s : "-";
	case F_HID:
		hid_hex((const ProtobufCBinaryData *)p, buf);
		return buf;
	}
	return "";
}

static void field_json(const struct field *f, const void *row)
{
	const char *p = (const char *)row + f->off;

	switch (f->kind) {
	case F_U32:
		printf("%u", *(const uint32_t *)p);
		break;
	case F_U64:
		printf("%llu", (unsigned long long)*(const uint64_t *)p);
		break;
	case F_ID:
		printf("\"%llu\"", (unsigned long long)*(const uint64_t *)p);
		break;
	case F_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "true" : "false", stdout);
		break;
	case F_STR:
		put_json_str(*(char *const *)p);
		break;
	case F_HID:
		put_json_hid((const ProtobufCBinaryData *)p);
		break;
	}
}

static void print_view_json(const struct tool_ctl_view *v, const ControlReply *r, const char *next)
{
	const void *row;
	size_t i, j;
	bool first;

	printf("{\"%s\":[", v->name);
	for (i = 0; (row = v->row(r, i)) != NULL; i++) {
		fputs(i ? ",{" : "{", stdout);
		first = true;
		for (j = 0; j < v->n_fields; j++) {
			if (!v->fields[j].key)
				continue;
			printf("%s\"%s\":", first ? "" : ",", v->fields[j].key);
			field_json(&v->fields[j], row);
			first = false;
		}
		putchar('}');
	}
	putchar(']');
	if (next) {
		fputs(",\"next\":", stdout);
		put_json_str(next);
	}
	fputs("}\n", stdout);
}

static int print_view_text(const struct tool_ctl_view *v, const ControlReply *r)
{
	char bufs[TABLE_MAX_COLS][CELL_MAX];
	const char *cells[TABLE_MAX_COLS];
	struct table t = {0};
	const void *row;
	size_t i, j;
	int status = -1;

	for (j = 0; j < v->n_fields; j++)
		if (v->fields[j].header)
			cells[t.cols++] = v->fields[j].header;
	if (table_row(&t, cells) < 0)
		goto out;
	for (i = 0; (row = v->row(r, i)) != NULL; i++) {
		t.cols = 0;
		for (j = 0; j < v->n_fields; j++)
			if (v->fields[j].header) {
				cells[t.cols] = field_text(&v->fields[j], row, bufs[t.cols]);
				t.cols++;
			}
		if (table_row(&t, cells) < 0)
			goto out;
	}
	table_print(&t);
	status = 0;
out:
	free(t.cells);
	return status;
}

int tool_ctl_print_page(const struct tool_ctl_view *v, const ControlReply *r, const char *next,
			bool json)
{
	if (!json)
		return print_view_text(v, r);
	print_view_json(v, r, next);
	return 0;
}

int tool_ctl_print_view(const struct tool_ctl_view *v, const ControlReply *r, bool json)
{
	return tool_ctl_print_page(v, r, NULL, json);
}

static const void *domain_row(const ControlReply *r, size_t i)
{
	return i < r->n_domains ? r->domains[i] : NULL;
}

static const void *export_row(const ControlReply *r, size_t i)
{
	return i < r->n_exports ? r->exports[i] : NULL;
}

static const void *import_row(const ControlReply *r, size_t i)
{
	return i < r->n_imports ? r->imports[i] : NULL;
}

static const void *timeline_row(const ControlReply *r, size_t i)
{
	return i < r->n_timelines ? r->timelines[i] : NULL;
}

static const struct field domain_fields[] = {
    {.key = "id", .header = "ID", .kind = F_U32, .off = offsetof(CtlDomain, id)},
    {.key = "name", .header = "NAME", .kind = F_STR, .off = offsetof(CtlDomain, name)},
    {.key = "connected",
     .header = "CONNECTED",
     .kind = F_BOOL,
     .off = offsetof(CtlDomain, connected),
     .yes = "yes",
     .no = "no"},
    {.key = "sessions", .kind = F_U32, .off = offsetof(CtlDomain, sessions)},
    {.key = "exports", .header = "EXPORTS", .kind = F_U32, .off = offsetof(CtlDomain, exports)},
    {.key = "imports", .header = "IMPORTS", .kind = F_U32, .off = offsetof(CtlDomain, imports)},
    {.key = "pages_used", .header = "PAGES", .kind = F_U64, .off = offsetof(CtlDomain, pages_used)},
};

static const struct field export_fields[] = {
    {.key = "hid", .header = "HID", .kind = F_HID, .off = offsetof(CtlExport, hid)},
    {.key = "exporter", .header = "EXPORTER", .kind = F_U32, .off = offsetof(CtlExport, exporter)},
    {.key = "peer", .header = "PEER", .kind = F_U32, .off = offsetof(CtlExport, peer)},
    {.key = "size", .header = "SIZE", .kind = F_U64, .off = offsetof(CtlExport, size)},
    {.key = "pages", .header = "PAGES", .kind = F_U32, .off = offsetof(CtlExport, pages)},
    {.key = "importers",
     .header = "IMPORTERS",
     .kind = F_U32,
     .off = offsetof(CtlExport, importers)},
    {.key = "state", .header = "STATE", .kind = F_STR, .off = offsetof(CtlExport, state)},
    {.key = "group", .kind = F_U32, .off = offsetof(CtlExport, group)},
    {.key = "image", .header = "IMAGE", .kind = F_STR, .off = offsetof(CtlExport, image)},
};

static const struct field import_fields[] = {
    {.key = "id", .header = "ID", .kind = F_ID, .off = offsetof(CtlImport, id)},
    {.key = "hid", .header = "HID", .kind = F_HID, .off = offsetof(CtlImport, hid)},
    {.key = "importer", .header = "IMPORTER", .kind = F_U32, .off = offsetof(CtlImport, importer)},
    {.key = "exporter", .header = "EXPORTER", .kind = F_U32, .off = offsetof(CtlImport, exporter)},
    {.key = "size", .header = "SIZE", .kind = F_U64, .off = offsetof(CtlImport, size)},
    {.key = "writable",
     .header = "MODE",
     .kind = F_BOOL,
     .off = offsetof(CtlImport, writable),
     .yes = "rw",
     .no = "ro"},
    /* A hold the importer has not taken yet: it may go back unused (PROTOCOL.md §3). */
    {.key = "held",
     .header = "TAKEN",
     .kind = F_BOOL,
     .off = offsetof(CtlImport, held),
     .yes = "no",
     .no = "yes"},
};

/* Timeline ids are 64-bit (a random epoch and a counter): printed in full, in decimal, as
 * hb_timeline_id() returns them (strings in JSON). OWNER is the owning session, "domain#serial". */
static const struct field timeline_fields[] = {
    {.key = "id", .header = "ID", .kind = F_ID, .off = offsetof(CtlTimeline, id)},
    {.key = "owner", .kind = F_U32, .off = offsetof(CtlTimeline, owner)},
    {.key = "owner_session",
     .header = "OWNER",
     .kind = F_STR,
     .off = offsetof(CtlTimeline, owner_session)},
    {.key = "value", .header = "VALUE", .kind = F_U64, .off = offsetof(CtlTimeline, value)},
    {.key = "pending", .header = "PENDING", .kind = F_U32, .off = offsetof(CtlTimeline, pending)},
    {.key = "watchers",
     .header = "WATCHERS",
     .kind = F_U32,
     .off = offsetof(CtlTimeline, watchers)},
};

const struct tool_ctl_view tool_ctl_domains_view = {"domains", domain_fields,
						    CTL_LEN(domain_fields), domain_row};
const struct tool_ctl_view tool_ctl_exports_view = {"exports", export_fields,
						    CTL_LEN(export_fields), export_row};
const struct tool_ctl_view tool_ctl_imports_view = {"imports", import_fields,
						    CTL_LEN(import_fields), import_row};
const struct tool_ctl_view tool_ctl_timelines_view = {"timelines", timeline_fields,
						      CTL_LEN(timeline_fields), timeline_row};

/* key/value pairs (stats, limits) as one JSON object, in the daemon's order. */
static void put_pairs_json(CtlStat *const *v, size_t n)
{
	putchar('{');
	for (size_t i = 0; i < n; i++) {
		fputs(i ? "," : "", stdout);
		put_json_str(v[i]->key);
		printf(":%llu", (unsigned long long)v[i]->value);
	}
	putchar('}');
}

void tool_ctl_put_text(const char *s)
{
	put_text(s);
}

void tool_ctl_put_json_str(const char *s)
{
	put_json_str(s);
}

void tool_ctl_hid_hex(const ProtobufCBinaryData *hid, char out[33])
{
	hid_hex(hid, out);
}

int tool_ctl_print_domains(const ControlReply *r)
{
	return print_view_text(&tool_ctl_domains_view, r);
}

int tool_ctl_print_status(const ControlReply *r, bool json)
{
	if (json) {
		fputs("{\"version\":", stdout);
		put_json_str(r->version);
		fputs(",\"backend\":", stdout);
		put_json_str(r->backend);
		printf(",\"uptime_ms\":%llu,\"domains\":%zu,\"exports\":%zu,\"imports\":%zu",
		       (unsigned long long)r->uptime_ms, r->n_domains, r->n_exports, r->n_imports);
		fputs(",\"limits\":", stdout);
		put_pairs_json(r->limits, r->n_limits);
		fputs("}\n", stdout);
		return 0;
	}
	fputs("version: ", stdout);
	put_text(r->version);
	fputs("\nbackend: ", stdout);
	put_text(r->backend);
	printf("\nuptime: %llu s\ndomains: %zu\nexports: %zu\nimports: %zu\n",
	       (unsigned long long)(r->uptime_ms / 1000), r->n_domains, r->n_exports, r->n_imports);
	/* The limits in force, as the daemon's config set them ([limits], hyperbuf.conf(5)). */
	if (r->n_limits)
		fputs("limits:\n", stdout);
	for (size_t i = 0; i < r->n_limits; i++) {
		fputs("  ", stdout);
		put_text(r->limits[i]->key);
		printf(": %llu\n", (unsigned long long)r->limits[i]->value);
	}
	return 0;
}

int tool_ctl_print_stats(const ControlReply *r, bool json)
{
	size_t i;

	/* In the daemon's order: it groups related counters. */
	if (json) {
		fputs("{\"stats\":", stdout);
		put_pairs_json(r->stats, r->n_stats);
		fputs("}\n", stdout);
		return 0;
	}
	for (i = 0; i < r->n_stats; i++) {
		put_text(r->stats[i]->key);
		printf(": %llu\n", (unsigned long long)r->stats[i]->value);
	}
	return 0;
}
