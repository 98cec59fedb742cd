/*
 * Holds (docs/PROTOCOL.md §3 "Holds", hb_set_holds): an EXPORTED event brings an import the
 * daemon made for the importer, so hb_import of it asks the daemon nothing. It counts for the
 * exporter once taken; one not taken goes back when the next event is asked for; a writable import
 * is asked for; a session has at most HBP_HOLDS_MAX; holds survive a restart, and the ones a
 * resuming client does not name go back. Forged takes are refused.
 */
#include <poll.h>
#include <signal.h>
#include <string.h>

#include "tests/it_common.h"

struct hx {
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
};

static void hx_start(struct hx *x, bool held)
{
	if (held)
		hbt_daemon_start_held(&x->d, NULL);
	else
		hbt_daemon_start(&x->d, NULL);
	x->v1 = IT_CONNECT(hbt_addr_vm(&x->d, 1));
	x->v2 = IT_CONNECT(hbt_addr_vm(&x->d, 2));
	CHECK_EQ(hb_set_holds(x->v2, 1), 0);
}

/* Every case gives back what it shared: no page of the pools is left in use. */
static void hx_stop(struct hx *x)
{
	IT_CHECK_STAT(&x->d, "pages_used", 0);
	hb_disconnect(x->v1);
	hb_disconnect(x->v2);
	IT_STOP(&x->d);
}

/* vm1 shares size bytes of pattern seed with vm2; vm2 has read the EXPORTED event. */
static struct hb_buffer *share(struct hx *x, size_t size, uint32_t flags, uint64_t seed,
			       struct hb_id *id)
{
	struct hb_buffer *b = IT_ALLOC(x->v1, 2, size, flags);
	struct hb_event ev;

	it_fill(b, seed);
	IT_EXPORT(b, "m", 1, id);
	IT_WAIT_EVENT(x->v2, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, id));
	return b;
}

/* A child that writes where a read-only import maps: it must die of the fault. */
static int write_child(void *p)
{
	it_default_fault_signals();
	((volatile uint8_t *)p)[0] = 0xa5;
	return 0;
}

/* hyperbufctl imports lists the one import, held (not taken yet) or not, in JSON and in its
 * TAKEN column. */
static void ctl_imports_held(struct hx *x, bool held)
{
	char out[4096];

	CHECK_EQ(hbt_ctl(&x->d, out, sizeof(out), "--json imports"), 0);
	if (!strstr(out, held ? "\"held\":true" : "\"held\":false"))
		hbt_fail(__FILE__, __LINE__, "imports --json, held %d expected:\n%s", held, out);
	CHECK_EQ(hbt_ctl(&x->d, out, sizeof(out), "imports"), 0);
	if (!strstr(out, "TAKEN") || !strstr(out, held ? " ro    no" : " ro    yes"))
		hbt_fail(__FILE__, __LINE__, "imports, held %d expected:\n%s", held, out);
}

/* The daemon stopped (SIGSTOP) cannot answer: hb_import of the event's buffer returns anyway,
 * with the right bytes. The exporter hears of the import once the importer's library runs
 * again (its next call) and the daemon too. */
TEST(hold_imports_without_asking_the_daemon)
{
	struct hx x;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;
	char meta[4];

	hx_start(&x, false);
	b = share(&x, 4096, 0, 5, &id);
	CHECK_EQ(IT_STAT(&x.d, "holds_made"), 1);
	/* The control listing tells the hold from an import the importer has. */
	ctl_imports_held(&x, true);
	CHECK_EQ(kill(x.d.pid, SIGSTOP), 0);
	im = hb_import(x.v2, &id, 0);
	CHECK_EQ(kill(x.d.pid, SIGCONT), 0);
	CHECK(im != NULL);
	IT_CHECK_IMPORT(im, 4096, 5);
	CHECK_EQ(hb_import_metadata(im, meta, sizeof(meta)), 1);
	CHECK_EQ(meta[0], 'm');
	/* The daemon hears of the take with the importer's next call into the library. */
	IT_EXPECT_QUIET(x.v1, 100);
	CHECK(hb_dispatch(x.v2, 0) >= 0);
	IT_WAIT_EVENT(x.v1, HB_EVENT_IMPORTED, &ev);
	CHECK_EQ(ev.domain, 2);
	IT_CHECK_STAT(&x.d, "holds_taken", 1);
	ctl_imports_held(&x, false);
	CHECK_EQ(IT_STAT(&x.d, "imports_total"), 1);
	IT_QUERY(x.v1, &id, &info);
	CHECK_EQ(info.importers, 1);
	/* Read-only, as an import asked for without HB_IMPORT_WRITE. */
	CHECK(it_died_of_fault(hbt_wait_child(hbt_fork(write_child, hb_import_data(im)))));
	hb_import_release(im);
	IT_WAIT_EVENT(x.v1, HB_EVENT_RELEASED, &ev);
	hb_buffer_free(b);
	hx_stop(&x);
}

/* Off until asked, and off again when asked: events as before. */
TEST(holds_are_off_by_default)
{
	struct hx x;
	struct hb_buffer *b, *b2;
	struct hb_import *im;
	struct hb_id id, id2;

	hbt_daemon_start(&x.d, NULL);
	x.v1 = IT_CONNECT(hbt_addr_vm(&x.d, 1));
	x.v2 = IT_CONNECT(hbt_addr_vm(&x.d, 2));
	CHECK_ERR(hb_set_holds(x.v2, 2), EINVAL);
	CHECK_ERR(hb_set_holds(NULL, 1), EINVAL);
	b = share(&x, 4096, 0, 1, &id);
	CHECK_EQ(IT_STAT(&x.d, "holds_made"), 0);
	CHECK_EQ(IT_STAT(&x.d, "imports"), 0);
	im = IT_IMPORT(x.v2, &id, 0);
	IT_CHECK_IMPORT(im, 4096, 1);
	hb_import_release(im);
	CHECK_EQ(hb_set_holds(x.v2, 1), 0);
	CHECK_EQ(hb_set_holds(x.v2, 0), 0);
	b2 = share(&x, 4096, 0, 2, &id2);
	CHECK_EQ(IT_STAT(&x.d, "holds_made"), 0);
	hb_buffer_free(b2);
	hb_buffer_free(b);
	hx_stop(&x);
}

/* An event whose buffer is not imported: its hold goes back with the next hb_next_event, and
 * the exporter hears nothing. Until then it keeps the pages of a freed buffer. */
TEST(hold_not_taken_goes_back)
{
	struct hx x;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	hx_start(&x, false);
	b = share(&x, 8192, 0, 6, &id);
	CHECK_EQ(IT_STAT(&x.d, "imports"), 1);
	IT_QUERY(x.v1, &id, &info);
	CHECK_EQ(info.importers, 0);
	hb_buffer_free(b);
	CHECK(IT_STAT(&x.d, "pages_used") > 0);
	CHECK_ERR(hb_next_event(x.v2, &ev), EAGAIN);
	IT_CHECK_STAT(&x.d, "imports", 0);
	IT_CHECK_STAT(&x.d, "pages_used", 0);
	IT_EXPECT_QUIET(x.v1, 200);
	CHECK_EQ(IT_STAT(&x.d, "holds_taken"), 0);
	CHECK_EQ(IT_STAT(&x.d, "imports_total"), 0);
	hx_stop(&x);
}

/* A writable import is asked for; the hold goes back. */
TEST(hold_writable_import_asks)
{
	struct hx x;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_id id;

	hx_start(&x, false);
	b = share(&x, 4096, HB_BUFFER_PEER_WRITABLE, 7, &id);
	im = IT_IMPORT(x.v2, &id, HB_IMPORT_WRITE);
	((volatile uint8_t *)hb_import_data(im))[0] = 0xab;
	CHECK_EQ(((volatile uint8_t *)hb_buffer_data(b))[0], 0xab);
	IT_CHECK_STAT(&x.d, "imports", 1);
	CHECK_EQ(IT_STAT(&x.d, "holds_taken"), 0);
	CHECK_EQ(IT_STAT(&x.d, "imports_total"), 1);
	hb_import_release(im);
	hb_buffer_free(b);
	hx_stop(&x);
}

/* The import was made with the event: withdrawn and freed since, the buffer is still there to
 * read (an Import asked for now would find nothing). */
TEST(hold_stands_after_unexport_and_free)
{
	struct hx x;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_id id;

	hx_start(&x, false);
	b = share(&x, 3 * 4096 + 100, 0, 8, &id);
	CHECK_EQ(hb_unexport(x.v1, &id, 0), 0);
	hb_buffer_free(b);
	im = IT_IMPORT(x.v2, &id, 0);
	IT_CHECK_IMPORT(im, 3 * 4096 + 100, 8);
	CHECK(IT_STAT(&x.d, "pages_used") > 0);
	hb_import_release(im);
	IT_CHECK_STAT(&x.d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&x.d, "holds_taken"), 1);
	IT_EXPECT_QUIET(x.v1, 200);
	hx_stop(&x);
}

/* No hold for a buffer beyond HBP_INLINE_REFS_MAX pages, nor for one the importer already
 * imports under this hid (a re-export to a cache of frames). */
TEST(no_hold_for_big_or_imported_buffers)
{
	struct hx x;
	struct hb_buffer *big, *b;
	struct hb_import *im, *im2;
	struct hb_event ev;
	struct hb_id id, id2;

	hx_start(&x, false);
	big = share(&x, (HBP_INLINE_REFS_MAX + 1) * 4096, 0, 10, &id);
	CHECK_EQ(IT_STAT(&x.d, "holds_made"), 0);
	im = IT_IMPORT(x.v2, &id, 0);
	IT_CHECK_IMPORT(im, (HBP_INLINE_REFS_MAX + 1) * 4096, 10);
	b = share(&x, 4096, 0, 11, &id2);
	CHECK_EQ(IT_STAT(&x.d, "holds_made"), 1);
	im2 = IT_IMPORT(x.v2, &id2, 0);
	CHECK(hb_dispatch(x.v2, 0) >= 0);
	IT_CHECK_STAT(&x.d, "holds_taken", 1);
	/* Exported again, same hid, still imported: the event comes without a hold. */
	IT_EXPORT(b, "n", 1, &id2);
	IT_WAIT_EVENT(x.v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(IT_STAT(&x.d, "holds_made"), 1);
	hb_import_release(im2);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_buffer_free(big);
	hx_stop(&x);
}

/* 20 events for an importer that reads none yet: 16 holds, the rest imported by asking. */
TEST(holds_are_capped)
{
	enum { N = 20 };
	struct hx x;
	struct hb_buffer *b[N];
	struct hb_event ev;
	struct hb_id id[N];

	hx_start(&x, false);
	for (int i = 0; i < N; i++) {
		b[i] = IT_ALLOC(x.v1, 2, 4096, 0);
		it_fill(b[i], 100 + (uint64_t)i);
		IT_EXPORT(b[i], NULL, 0, &id[i]);
	}
	IT_CHECK_STAT(&x.d, "events_sent", N);
	CHECK_EQ(IT_STAT(&x.d, "holds_made"), HBP_HOLDS_MAX);
	CHECK_EQ(IT_STAT(&x.d, "imports"), HBP_HOLDS_MAX);
	for (int i = 0; i < N; i++) {
		struct hb_import *im;

		IT_WAIT_EVENT(x.v2, HB_EVENT_EXPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &id[i]));
		im = IT_IMPORT(x.v2, &id[i], 0);
		IT_CHECK_IMPORT(im, 4096, 100 + (uint64_t)i);
		hb_import_release(im);
	}
	IT_CHECK_STAT(&x.d, "holds_taken", HBP_HOLDS_MAX);
	CHECK_EQ(IT_STAT(&x.d, "imports_total"), N);
	for (int i = 0; i < N; i++)
		hb_buffer_free(b[i]);
	hx_stop(&x);
}

/* The daemon killed with a hold handed out: the resumed session keeps it, and taking it works. */
TEST(hold_survives_a_restart)
{
	struct hx x;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	hx_start(&x, true);
	b = share(&x, 4096, 0, 9, &id);
	hbt_daemon_crash(&x.d);
	CHECK_EQ(IT_STAT(&x.d, "imports"), 1);
	im = IT_IMPORT(x.v2, &id, 0);
	IT_CHECK_IMPORT(im, 4096, 9);
	/* The take went on the old stream: the next call resumes and sends it again first. */
	IT_QUERY(x.v2, &id, &info);
	CHECK_EQ(info.importers, 1);
	CHECK_EQ(IT_STAT(&x.d, "holds_taken"), 1);
	IT_WAIT_EVENT(x.v1, HB_EVENT_IMPORTED, &ev);
	hb_import_release(im);
	/* The session still asks for holds. */
	hb_buffer_free(b);
	b = share(&x, 4096, 0, 10, &id);
	CHECK_EQ(IT_STAT(&x.d, "holds_made"), 1);
	im = IT_IMPORT(x.v2, &id, 0);
	IT_CHECK_IMPORT(im, 4096, 10);
	CHECK(hb_dispatch(x.v2, 0) >= 0);
	IT_CHECK_STAT(&x.d, "holds_taken", 2);
	hb_import_release(im);
	hb_buffer_free(b);
	hx_stop(&x);
}

/* The daemon killed with a hold handed out and not wanted: the next hb_next_event gives it
 * back across the resume (on the host socket, whose send fails and resumes at once), and the
 * pages of the freed buffer come back. */
TEST(hold_given_back_across_a_restart)
{
	struct hx x;
	struct hb_client *h;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_id id;

	hx_start(&x, true);
	h = IT_CONNECT(hbt_addr_host(&x.d));
	CHECK_EQ(hb_set_holds(h, 1), 0);
	b = IT_ALLOC(x.v1, 0, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);
	IT_WAIT_EVENT(h, HB_EVENT_EXPORTED, &ev);
	hb_buffer_free(b);
	hbt_daemon_crash(&x.d);
	CHECK_EQ(IT_STAT(&x.d, "imports"), 1);
	while (hb_next_event(h, &ev) == 0)
		;
	IT_WAIT_EVENT(h, HB_EVENT_RESTARTED, &ev);
	IT_CHECK_STAT(&x.d, "imports", 0);
	IT_CHECK_STAT(&x.d, "pages_used", 0);
	hb_disconnect(h);
	hx_stop(&x);
}

/* ---- raw sessions: what a library that misbehaves gets ------------------------------------ */

static uint32_t raw_holds(struct it_raw *r, bool on)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Holds h = HOLDS__INIT;

	h.on = on;
	m.body_case = CLIENT_MSG__BODY_HOLDS;
	m.holds = &h;
	return IT_RAW_ERR(r, &m);
}

/* A raw host session with holds, attached to group a (host, vm1). */
static void raw_holder(struct it_raw *r, const struct hbt_daemon *d, uint8_t *token)
{
	ServerMsg *w;

	uint32_t group;

	it_raw_open(r, d->socket);
	w = it_raw_hello_features(r, HBP_ROLE_CLIENT, HBP_FEATURE_INLINE_REFS | HBP_FEATURE_HOLDS);
	CHECK(w && w->welcome);
	if (token) {
		CHECK_EQ(w->welcome->token.len, HBP_TOKEN_LEN);
		memcpy(token, w->welcome->token.data, HBP_TOKEN_LEN);
	}
	group = it_welcome_group(w, "a")->id;
	server_msg__free_unpacked(w, NULL);
	CHECK_EQ(hbt_raw_attach(r, group, 0), 0);
	CHECK_EQ(raw_holds(r, true), 0);
}

/* The next EXPORTED event on r; its hold must be there. */
static uint64_t raw_hold(struct it_raw *r)
{
	for (;;) {
		ServerMsg *m = it_raw_recv(r, IT_WAIT_MS, NULL);
		uint64_t hold;

		CHECK(m != NULL);
		if (m->body_case != SERVER_MSG__BODY_EVENT || m->event->type != HB_EVENT_EXPORTED) {
			server_msg__free_unpacked(m, NULL);
			continue;
		}
		CHECK(m->event->desc != NULL);
		CHECK_EQ(m->event->desc->pages, 1);
		hold = m->event->hold;
		server_msg__free_unpacked(m, NULL);
		CHECK(hold != 0);
		return hold;
	}
}

static uint32_t raw_take(struct it_raw *r, uint64_t hold, uint32_t flags)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Import imp = IMPORT__INIT;
	uint8_t hid[16] = {0};

	imp.hid = (ProtobufCBinaryData){sizeof(hid), hid};
	imp.hold = hold;
	imp.flags = flags;
	imp.quiet = true;
	m.body_case = CLIENT_MSG__BODY_IMPORT;
	m.import = &imp;
	return IT_RAW_ERR(r, &m);
}

/* Only the session's own hold, read-only, can be taken; a refused quiet take is answered. */
TEST(hold_forged_takes_are_refused)
{
	struct hbt_daemon d;
	struct it_raw a, b;
	struct hb_client *v1;
	struct hb_buffer *buf;
	struct hb_id id;
	uint64_t hold;

	hbt_daemon_start(&d, NULL);
	raw_holder(&a, &d, NULL);
	raw_holder(&b, &d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	buf = IT_ALLOC(v1, 0, 4096, 0);
	IT_EXPORT(buf, NULL, 0, &id);
	hold = raw_hold(&a);
	CHECK(raw_hold(&b) != hold);
	CHECK_EQ(raw_take(&a, hold + 1000, 0), ENOENT);
	CHECK_EQ(raw_take(&b, hold, 0), ENOENT);
	CHECK_EQ(raw_take(&a, hold, HB_IMPORT_WRITE), EINVAL);
	CHECK_EQ(IT_STAT(&d, "holds_taken"), 0);
	CHECK_EQ(IT_STAT(&d, "imports"), 2);
	it_raw_close(&a);
	it_raw_close(&b);
	IT_CHECK_STAT(&d, "imports", 0);
	hb_buffer_free(buf);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* Holds for a session whose library did not announce them: refused. */
TEST(holds_need_the_feature)
{
	struct hbt_daemon d;
	struct it_raw r;
	ServerMsg *w;

	hbt_daemon_start(&d, NULL);
	it_raw_open(&r, d.socket);
	w = it_raw_hello_features(&r, HBP_ROLE_CLIENT, HBP_FEATURE_INLINE_REFS);
	CHECK(w && w->welcome);
	server_msg__free_unpacked(w, NULL);
	CHECK_EQ(raw_holds(&r, true), EPROTONOSUPPORT);
	it_raw_close(&r);
	IT_STOP(&d);
}

/* A Hello naming more holds than HBP_HELLO_HOLDS_MAX is a protocol violation. */
TEST(hello_with_too_many_holds)
{
	struct hbt_daemon d;
	struct it_raw r;
	ClientMsg m = CLIENT_MSG__INIT;
	Hello h = HELLO__INIT;
	uint64_t holds[HBP_HELLO_HOLDS_MAX + 1] = {0};

	hbt_daemon_start(&d, NULL);
	it_raw_open(&r, d.socket);
	h.version = HBP_PROTOCOL_VERSION;
	h.holds = holds;
	h.n_holds = HBP_HELLO_HOLDS_MAX + 1;
	m.id = 1;
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &h;
	CHECK_EQ(it_raw_send(&r, &m), 0);
	CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), 1);
	it_raw_close(&r);
	IT_STOP(&d);
}

/* A hold in an event its client never read is released when the client resumes without
 * naming it: nothing keeps the pages for good. */
TEST(holds_not_named_on_resume_go_back)
{
	struct hbt_daemon d;
	struct it_raw r;
	struct hb_client *v1;
	struct hb_buffer *buf;
	struct hb_id id;
	uint8_t token[HBP_TOKEN_LEN];
	ClientMsg m = CLIENT_MSG__INIT;
	Hello h = HELLO__INIT;
	ServerMsg *w;

	hbt_daemon_start_held(&d, NULL);
	raw_holder(&r, &d, token);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	buf = IT_ALLOC(v1, 0, 4096, 0);
	IT_EXPORT(buf, NULL, 0, &id);
	CHECK(raw_hold(&r) != 0);
	hb_buffer_free(buf);
	hbt_daemon_crash(&d);
	CHECK_EQ(IT_STAT(&d, "imports"), 1);
	it_raw_close(&r);
	it_raw_open(&r, d.socket);
	h.version = HBP_PROTOCOL_VERSION;
	h.features = HBP_FEATURE_INLINE_REFS | HBP_FEATURE_HOLDS;
	h.resume = (ProtobufCBinaryData){HBP_TOKEN_LEN, token};
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &h;
	w = IT_RAW_CALL(&r, &m);
	CHECK(w->welcome && w->welcome->resumed);
	server_msg__free_unpacked(w, NULL);
	CHECK_EQ(IT_STAT(&d, "imports"), 0);
	IT_CHECK_STAT(&d, "pages_used", 0);
	it_raw_close(&r);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* The daemon's answer to a give-back (a posted Release) and the event behind it come in one
 * read: hb_dispatch routes both. Were it to stop at the answer, as at a call's reply, the event
 * would sit in the library's input where no poll of hb_get_fd shows it. */
TEST(a_posted_answer_does_not_stop_routing)
{
	struct hx x;
	struct hb_buffer *a, *b;
	struct hb_event ev;
	struct hb_id ida, idb;
	struct pollfd pfd;

	hx_start(&x, false);
	a = share(&x, 4096, 0, 8, &ida);
	/* The hold of a, handed out and not imported, goes back: a posted Release. */
	CHECK_ERR(hb_next_event(x.v2, &ev), EAGAIN);
	/* Taken back: the answer is on its way, ahead of the next event. */
	IT_CHECK_STAT(&x.d, "imports", 0);
	b = IT_ALLOC(x.v1, 2, 4096, 0);
	IT_EXPORT(b, "n", 1, &idb);
	pfd = (struct pollfd){.fd = hb_get_fd(x.v2), .events = POLLIN};
	CHECK_EQ(poll(&pfd, 1, 5000), 1);
	CHECK_EQ(hb_dispatch(x.v2, 0), 2);
	CHECK_EQ(hb_next_event(x.v2, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	CHECK(hb_id_equal(&ev.id, &idb));
	CHECK_ERR(hb_next_event(x.v2, &ev), EAGAIN);
	hb_buffer_free(b);
	hb_buffer_free(a);
	hx_stop(&x);
}
