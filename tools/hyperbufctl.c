/*
 * hyperbufctl: asks a running hyperbufd what it is doing, over the daemon's host socket.
 *
 *   hyperbufctl [-s SOCKET] [--json] status | domains | exports | imports | timelines | stats
 *
 * One session per run: Hello (role control), one Control request, print, exit. The daemon
 * fills every view of its ControlReply whatever we ask for; `what` says which one we print.
 * Exit status 0, or 1 with "hyperbufctl: reason" on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol/frame.h"
#include "protocol/limits.h"

#ifndef HB_VERSION_STRING
#define HB_VERSION_STRING "unknown"
#endif

#define DEFAULT_SOCKET "/run/hyperbuf/hyperbufd.sock"
#define SOCKET_ENV     "HYPERBUFD_SOCKET"
/* The daemon answers from its loop at once; a silent one is stuck, not slow. */
#define TIMEOUT_MS 10000
#define READ_CHUNK 65536
#define HELLO_ID   1u
#define CONTROL_ID 2u

struct conn {
	int fd;
	const char *path;
	struct hbp_bytes in;
	uint64_t deadline_ms;
};

static void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "hyperbufctl: ", the message, then tail, on stderr: errmsg and usage_error. */
static void vsay(const char *tail, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vsay(const char *tail, const char *fmt, va_list ap)
{
	fputs("hyperbufctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
}

static void errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("\n", fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits for events on the socket until the deadline; 0, or -1 with the reason printed. */
static int wait_fd(struct conn *c, short events)
{
	struct pollfd pfd = {.fd = c->fd, .events = events};
	uint64_t now;
	int r;

	for (;;) {
		now = now_ms();
		if (now >= c->deadline_ms) {
			errmsg("%s: no answer from hyperbufd within %d s", c->path,
			       TIMEOUT_MS / 1000);
			return -1;
		}
		r = poll(&pfd, 1, (int)(c->deadline_ms - now));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			errmsg("poll: %s", strerror(errno));
			return -1;
		}
	}
}

static int conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);

	c->path = path;
	c->deadline_ms = now_ms() + TIMEOUT_MS;
	if (len == 0 || len >= sizeof(sa.sun_path)) {
		errmsg("%s: not a socket path (1 to %zu bytes)", path, sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, len + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		errmsg("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		errmsg("cannot connect to %s: %s%s", path, strerror(e),
		       e == ENOENT || e == ECONNREFUSED ? " (is hyperbufd running?)" : "");
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static int conn_send(struct conn *c, const ClientMsg *m)
{
	struct hbp_bytes out = {0};
	size_t off = 0;
	ssize_t w;
	int r;

	r = hbp_frame_put_client(&out, m, HBP_FRAME_MAX);
	if (r < 0) {
		errmsg("cannot encode a request: %s", strerror(-r));
		goto err;
	}
	while (off < out.len) {
		/* MSG_NOSIGNAL: a daemon that hangs up is an error message, not a SIGPIPE death. */
		w = send(c->fd, out.data + off, out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c, POLLOUT) < 0)
				goto err;
			continue;
		}
		errmsg("%s: send: %s", c->path, w < 0 ? strerror(errno) : "nothing written");
		goto err;
	}
	hbp_bytes_free(&out);
	return 0;
err:
	hbp_bytes_free(&out);
	return -1;
}

/* The next reply from the daemon (events, which a control session should not even get, are
 * skipped). NULL with the reason printed on EOF, timeout or anything malformed. */
static ServerMsg *conn_recv(struct conn *c)
{
	const uint8_t *payload;
	ServerMsg *m;
	ssize_t n;
	long len;

	for (;;) {
		len = hbp_frame_peek(c->in.data, c->in.len, HBP_FRAME_MAX, &payload);
		if (len < 0) {
			errmsg("%s: protocol error: a frame with a bad length", c->path);
			return NULL;
		}
		if (len > 0) {
			m = hbp_frame_get_server(payload, (size_t)len);
			hbp_bytes_consume(&c->in, HBP_FRAME_HEADER + (size_t)len);
			if (!m) {
				errmsg("%s: protocol error: a malformed message", c->path);
				return NULL;
			}
			if (m->id == 0) {
				server_msg__free_unpacked(m, NULL);
				continue;
			}
			return m;
		}
		if (hbp_bytes_reserve(&c->in, READ_CHUNK) < 0) {
			errmsg("out of memory");
			return NULL;
		}
		n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, MSG_DONTWAIT);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0) {
			errmsg("%s: hyperbufd closed the connection", c->path);
			return NULL;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (wait_fd(c, POLLIN) < 0)
				return NULL;
			continue;
		}
		errmsg("%s: recv: %s", c->path, strerror(errno));
		return NULL;
	}
}

/* Sends a request and returns its reply, checked to answer it with the expected body. */
static ServerMsg *request(struct conn *c, const ClientMsg *req, ServerMsg__BodyCase want,
			  const char *what)
{
	ServerMsg *m;

	if (conn_send(c, req) < 0)
		return NULL;
	m = conn_recv(c);
	if (!m)
		return NULL;
	if (m->id != req->id) {
		errmsg("%s: protocol error: reply %u to request %u", c->path, m->id, req->id);
		goto err;
	}
	if (m->error) {
		/* The daemon speaks errno; a value we cannot name is still worth showing. */
		errmsg("%s: hyperbufd refused %s: %s", c->path, what,
		       m->error < 4096 ? strerror((int)m->error) : "unknown error");
		goto err;
	}
	if (m->body_case != want) {
		errmsg("%s: protocol error: unexpected reply to %s", c->path, what);
		goto err;
	}
	return m;
err:
	server_msg__free_unpacked(m, NULL);
	return NULL;
}

/* ---- output -------------------------------------------------------------------------------- */

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
			errmsg("out of memory");
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
enum field_kind { F_U32, F_U64, F_BOOL, F_STR, F_HID };

struct field {
	const char *key;    /* JSON member name, or NULL: text only */
	const char *header; /* text column header, or NULL: JSON only */
	enum field_kind kind;
	size_t off;           /* offsetof the field in the row message */
	const char *yes, *no; /* F_BOOL: the text cell */
};

struct view {
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

static void print_view_json(const struct view *v, const ControlReply *r)
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
	fputs("]}\n", stdout);
}

static int print_view_text(const struct view *v, const ControlReply *r)
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

static int print_view(const struct view *v, const ControlReply *r, bool json)
{
	if (!json)
		return print_view_text(v, r);
	print_view_json(v, r);
	return 0;
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
};

static const struct field import_fields[] = {
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
};

/* Timeline ids are 64-bit (a random epoch and a counter): printed in full, in decimal, as
 * hb_timeline_id() returns them. OWNER is the owning session, "domain#serial". */
static const struct field timeline_fields[] = {
    {.key = "id", .header = "ID", .kind = F_U64, .off = offsetof(CtlTimeline, id)},
    {.key = "owner", .kind = F_U32, .off = offsetof(CtlTimeline, owner)},
    {.key = "owner_session",
     .header = "OWNER",
     .kind = F_STR,
     .off = offsetof(CtlTimeline, owner_session)},
    {.key = "value", .header = "VALUE", .kind = F_U64, .off = offsetof(CtlTimeline, value)},
    {.key = "pending", .header = "PENDING", .kind = F_U32, .off = offsetof(CtlTimeline, pending)},
};

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct view domains_view = {"domains", domain_fields, LEN(domain_fields), domain_row};
static const struct view exports_view = {"exports", export_fields, LEN(export_fields), export_row};
static const struct view imports_view = {"imports", import_fields, LEN(import_fields), import_row};
static const struct view timelines_view = {"timelines", timeline_fields, LEN(timeline_fields),
					   timeline_row};

static int print_status(const ControlReply *r, bool json)
{
	if (json) {
		fputs("{\"version\":", stdout);
		put_json_str(r->version);
		fputs(",\"backend\":", stdout);
		put_json_str(r->backend);
		printf(",\"uptime_ms\":%llu,\"domains\":%zu,\"exports\":%zu,\"imports\":%zu}\n",
		       (unsigned long long)r->uptime_ms, r->n_domains, r->n_exports, r->n_imports);
		return 0;
	}
	fputs("version: ", stdout);
	put_text(r->version);
	fputs("\nbackend: ", stdout);
	put_text(r->backend);
	printf("\nuptime: %llu s\ndomains: %zu\nexports: %zu\nimports: %zu\n",
	       (unsigned long long)(r->uptime_ms / 1000), r->n_domains, r->n_exports, r->n_imports);
	return 0;
}

static int print_stats(const ControlReply *r, bool json)
{
	size_t i;

	/* In the daemon's order: it groups related counters. */
	if (json) {
		fputs("{\"stats\":{", stdout);
		for (i = 0; i < r->n_stats; i++) {
			fputs(i ? "," : "", stdout);
			put_json_str(r->stats[i]->key);
			printf(":%llu", (unsigned long long)r->stats[i]->value);
		}
		fputs("}}\n", stdout);
		return 0;
	}
	for (i = 0; i < r->n_stats; i++) {
		put_text(r->stats[i]->key);
		printf(": %llu\n", (unsigned long long)r->stats[i]->value);
	}
	return 0;
}

/* A command prints either a list view or, for status and stats, with its own printer. */
static const struct command {
	const char *name;
	uint32_t what;
	const struct view *view;
	int (*print)(const ControlReply *r, bool json);
} commands[] = {
    {.name = "status", .what = HBP_CTL_STATUS, .print = print_status},
    {.name = "domains", .what = HBP_CTL_DOMAINS, .view = &domains_view},
    {.name = "exports", .what = HBP_CTL_EXPORTS, .view = &exports_view},
    {.name = "imports", .what = HBP_CTL_IMPORTS, .view = &imports_view},
    {.name = "timelines", .what = HBP_CTL_TIMELINES, .view = &timelines_view},
    {.name = "stats", .what = HBP_CTL_STATS, .print = print_stats},
};

#define COMMANDS "status | domains | exports | imports | timelines | stats"
#define SYNOPSIS "usage: hyperbufctl [-s SOCKET] [--json] " COMMANDS "\n"

static void help(void)
{
	printf(SYNOPSIS
	       "  -s, --socket SOCKET  hyperbufd's socket (default $" SOCKET_ENV
	       ", else " DEFAULT_SOCKET ")\n"
	       "      --json           print one JSON document\n"
	       "  -h, --help           this help\n"
	       "  -V, --version        print the version\n"
	       "\n"
	       "  status     version, backend, uptime and counts\n"
	       "  domains    the host and the VMs: connected, exports, imports, pages used\n"
	       "  exports    live exports: handle, exporter, peer, size, importers, state\n"
	       "  imports    live imports: handle, importer, exporter, size, mode\n"
	       "  timelines  fence timelines: id, owning session, value, pending waits\n"
	       "  stats      the daemon's counters as key: value lines\n");
}

/* A usage mistake: the reason and the synopsis, not the whole help. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("\n" SYNOPSIS, fmt, ap);
	va_end(ap);
	return 1;
}

static int run(const char *path, const struct command *cmd, bool json)
{
	ClientMsg req = CLIENT_MSG__INIT;
	Hello hello = HELLO__INIT;
	Control control = CONTROL__INIT;
	struct conn c = {.fd = -1};
	ServerMsg *m;
	int status = 1;

	if (conn_open(&c, path) < 0)
		return 1;

	hello.version = HBP_PROTOCOL_VERSION;
	hello.role = HBP_ROLE_CONTROL;
	req.id = HELLO_ID;
	req.body_case = CLIENT_MSG__BODY_HELLO;
	req.hello = &hello;
	m = request(&c, &req, SERVER_MSG__BODY_WELCOME, "hello");
	if (!m)
		goto err_close;
	if (m->welcome->version != HBP_PROTOCOL_VERSION) {
		errmsg("%s: hyperbufd speaks protocol %u, hyperbufctl %u", path,
		       m->welcome->version, HBP_PROTOCOL_VERSION);
		server_msg__free_unpacked(m, NULL);
		goto err_close;
	}
	server_msg__free_unpacked(m, NULL);

	control.what = cmd->what;
	req.id = CONTROL_ID;
	req.body_case = CLIENT_MSG__BODY_CONTROL;
	req.control = &control;
	m = request(&c, &req, SERVER_MSG__BODY_CONTROL, cmd->name);
	if (!m)
		goto err_close;
	if ((cmd->view ? print_view(cmd->view, m->control, json) : cmd->print(m->control, json)) ==
	    0)
		status = 0;
	server_msg__free_unpacked(m, NULL);

err_close:
	hbp_bytes_free(&c.in);
	close(c.fd);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = getenv(SOCKET_ENV);
	const struct command *cmd = NULL;
	bool json = false;
	size_t i;
	int opt, status;

	if (!path || !*path)
		path = DEFAULT_SOCKET;
	opterr = 0; /* our messages say "hyperbufctl:", whatever argv[0] is */
	while ((opt = getopt_long(argc, argv, ":s:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("hyperbufctl %s (protocol %u)\n", HB_VERSION_STRING,
			       HBP_PROTOCOL_VERSION);
			return 0;
		case ':':
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				return usage_error("option %s needs an argument", argv[optind - 1]);
			return usage_error("option -%c needs an argument", optopt);
		default:
			/* optopt is the bad letter of a short option, 0 for a long one */
			if (optopt)
				return usage_error("unknown option -%c", optopt);
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind == argc)
		return usage_error("no command given");
	if (optind + 1 != argc)
		return usage_error("one command at a time, not also '%s'", argv[optind + 1]);
	for (i = 0; i < LEN(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command '%s'", argv[optind]);

	status = run(path, cmd, json);
	/* Output that never reached its reader (a full disk, a closed pipe) is a failure. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		errmsg("cannot write the output: %s", strerror(errno));
		status = 1;
	}
	return status;
}
