/*
 * hb_strerror: words for a failed call, where errno alone says too little (ENOENT: which
 * socket? EMSGSIZE: over which limit? ENODEV: which domain?). A call that fails writes what it
 * knows into its client (hb_connect, which has no client yet, into its thread); the daemon's
 * own reason (ServerMsg.reason) comes with its errors. The words are kept with the errno they
 * explain, so a later failure that explained nothing never gets an earlier one's words.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "libclient/client.h"

/* hb_connect's, per thread: a failed connect leaves no client to keep them. */
static __thread struct hbl_why connect_why;

/* Words from the daemon are a peer's bytes: nothing that could drive a terminal. */
static void mask_controls(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void vexplain(struct hbl_why *w, int err, const char *fmt, va_list ap)
{
	vsnprintf(w->text, sizeof(w->text), fmt, ap);
	mask_controls(w->text);
	w->err = err;
}

void hbl_explain(struct hb_client *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vexplain(c ? &c->why : &connect_why, err, fmt, ap);
	va_end(ap);
	log_debug("%s", c ? c->why.text : connect_why.text);
}

void hbl_explain_reply(struct hb_client *c, int body_case, int err, const char *reason)
{
	hbl_explain(c, err, "%s refused by hyperbufd: %s%s%s", hbp_client_body_name(body_case),
		    strerror(err), reason && reason[0] ? ": " : "", reason ? reason : "");
}

void hbl_explain_connect(const char *address, const struct hb_client *c, int err)
{
	/* The daemon's or the transport's words from inside the client, if it said any. */
	if (c && c->why.err == err && c->why.text[0]) {
		hbl_explain(NULL, err, "%s: %s", address, c->why.text);
		return;
	}
	switch (err) {
	case ENOENT:
	case ECONNREFUSED:
		hbl_explain(NULL, err,
			    "%s: %s: is hyperbufd running, and is this its socket? (set "
			    "HYPERBUF_ADDRESS or pass the address)",
			    address, strerror(err));
		break;
	case EACCES:
		hbl_explain(
		    NULL, err,
		    "%s: %s: the socket's group and mode say who may connect (socket_group, "
		    "socket_mode in hyperbuf.conf(5))",
		    address, strerror(err));
		break;
	default:
		hbl_explain(NULL, err, "%s: %s", address, strerror(err));
		break;
	}
}

HBL_PUBLIC const char *hb_strerror(const struct hb_client *c)
{
	const struct hbl_why *w = c ? &c->why : &connect_why;

	if (w->text[0] && w->err == errno)
		return w->text;
	return strerror(errno);
}
