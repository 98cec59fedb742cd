/*
 * hyperbufctl in three files: hyperbufctl.c reads the command line and runs one command,
 * hyperbufctl_conn.c holds the control session with hyperbufd (connect, Hello, one request,
 * its reply), hyperbufctl_print.c prints the reply as text or as one JSON document.
 */
#ifndef HB_TOOLS_HYPERBUFCTL_H
#define HB_TOOLS_HYPERBUFCTL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "protocol/frame.h"

#define CTL_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* "hyperbufctl: ", the message, then tail, on stderr: every message goes through here. */
void tool_ctl_vsay(const char *tail, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* An error message: "hyperbufctl: " and the message, one line on stderr. */
void tool_ctl_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the session (hyperbufctl_conn.c) ----------------------------------------------------- */

struct tool_ctl_conn {
	int fd;           /* -1: not connected */
	const char *path; /* the socket it talks to: control (beside the given one) or given */
	char control[HBC_SUN_PATH_MAX];
	struct hbp_bytes in;
	uint64_t deadline_ms; /* for the request in flight; UINT64_MAX: none (events) */
	bool events;          /* subscribed: CtlEvent frames are for the caller */
};

/* Connects to hyperbufd's socket at path and says Hello as a control client. 0, or -1 with
 * the reason printed; tool_ctl_close either way. */
int tool_ctl_connect(struct tool_ctl_conn *c, const char *path);
/* Sends a request and returns its reply, checked to answer it with the expected body; NULL
 * with the reason printed. what names the request in messages. */
ServerMsg *tool_ctl_request(struct tool_ctl_conn *c, const ClientMsg *req, ServerMsg__BodyCase want,
			    const char *what);
void tool_ctl_close(struct tool_ctl_conn *c);
/* After a Subscribe: the next CtlEvent frame, waiting as long as it takes; NULL with the
 * reason printed when the stream ends. */
ServerMsg *tool_ctl_event(struct tool_ctl_conn *c);

/* ---- watching (hyperbufctl_watch.c) ------------------------------------------------------- */

struct tool_ctl_follow {
	unsigned long count;       /* events, or screens, before exiting; 0: until interrupted */
	unsigned long interval_ms; /* watch: between screens */
	bool json;
};
/* hyperbufctl events: the daemon's events as lines. 0, or -1 with the reason printed. */
int tool_ctl_events(struct tool_ctl_conn *c, const struct tool_ctl_follow *f);
/* hyperbufctl watch: domains, counts and rates, refreshed in place. 0, or -1. */
int tool_ctl_watch(struct tool_ctl_conn *c, const struct tool_ctl_follow *f);

/* ---- listings, page by page (hyperbufctl_list.c) ------------------------------------------ */

struct tool_ctl_view;

struct tool_ctl_paging {
	unsigned long limit; /* 0: every row */
	const char *after;   /* NULL: from the first row */
};

/* Reads the listing `what` (HBP_CTL_DOMAINS...) in pages and prints it with view v. 0, or -1
 * with the reason printed. */
int tool_ctl_list(struct tool_ctl_conn *c, const struct tool_ctl_view *v, uint32_t what,
		  const struct tool_ctl_paging *pg, bool json);

/* ---- the printers (hyperbufctl_print.c) --------------------------------------------------- */

/* A list view (domains, exports, imports, timelines): one described table, two outputs. */
struct tool_ctl_view;
extern const struct tool_ctl_view tool_ctl_domains_view;
extern const struct tool_ctl_view tool_ctl_exports_view;
extern const struct tool_ctl_view tool_ctl_imports_view;
extern const struct tool_ctl_view tool_ctl_timelines_view;

/* Each prints r on stdout, as text or as one JSON document. 0, or -1 with the reason
 * printed. */
int tool_ctl_print_view(const struct tool_ctl_view *v, const ControlReply *r, bool json);
/* The same, with "next" (the key to go on from, or NULL) as a member of the JSON document. */
int tool_ctl_print_page(const struct tool_ctl_view *v, const ControlReply *r, const char *next,
			bool json);
int tool_ctl_print_status(const ControlReply *r, bool json);
int tool_ctl_print_stats(const ControlReply *r, bool json);
/* A daemon's string on stdout: control characters masked (text), or as a JSON string. */
void tool_ctl_put_text(const char *s);
void tool_ctl_put_json_str(const char *s);
/* A hid as 32 hex digits, or "-" when there is none. */
void tool_ctl_hid_hex(const ProtobufCBinaryData *hid, char out[33]);
/* The domains table, as `hyperbufctl domains` prints it. */
int tool_ctl_print_domains(const ControlReply *r);

#endif
