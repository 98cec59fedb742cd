/*
 * Quiet signals (docs/PROTOCOL.md §3 "Quiet signals"): the owner's TimelineSignal goes without
 * waiting for an answer, and the daemon answers one only to refuse it. Its waiters complete as
 * before; the owner's own waits still have completed when its signal returns; a signal the
 * daemon never read before it died goes again when the owner resumes.
 */
#include <signal.h>

#include "tests/it_common.h"

/* 100 signals: 100 frames out, one reply read in the owner, none framed for the others by the
 * daemon; vm1's wait on the last value completes. */
TEST(a_signal_is_sent_without_waiting_for_its_answer)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_counters c0, c1;
	struct hb_timeline *t;
	struct hb_sync *s;
	uint64_t out0;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	t = IT_TIMELINE(h, 1);
	s = IT_SYNC(v1, t, 100);
	/* The host has doorbells (PROTOCOL.md "Attach"): what vm1's arrival and watch brought it
	 * (an ivshmem announcement, a TimelineSlot) is read first. */
	CHECK(hb_dispatch(h, 100) >= 1);
	CHECK_EQ(hb_counters(h, &c0), 0);
	out0 = IT_STAT(&d, "messages_out");
	for (uint64_t v = 1; v <= 100; v++)
		CHECK_EQ(hb_timeline_signal(t, v), 0);
	CHECK_EQ(hb_counters(h, &c1), 0);
	/* One signal in 65 waits for its answer: 64 unanswered are as many as the library keeps
	 * for a resume, and the answer accounts for all of them. */
	CHECK_EQ(c1.frames_out - c0.frames_out, 100);
	CHECK_EQ(c1.frames_in - c0.frames_in, 1);
	CHECK_EQ(c1.polls - c0.polls, 1);
	CHECK_EQ(c1.recvs - c0.recvs, 1);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s), 1);
	/* vm1's completion, and hyperbufctl's own replies; never one per signal. */
	CHECK(IT_STAT(&d, "messages_out") - out0 < 10);
	/* The next call's reply is the first frame the owner reads. */
	CHECK_EQ(hb_timeline_share(t, 1), 0);
	CHECK_EQ(hb_counters(h, &c0), 0);
	CHECK_EQ(c0.frames_in - c1.frames_in, 1);
	hb_sync_close(s);
	hb_timeline_destroy(t);
	hb_disconnect(v1);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* An owner that waits on its own timeline gets the signal's answer, which comes after its own
 * completions: its wait is complete when the signal returns. */
TEST(an_owner_waiting_on_itself_still_sees_its_signal_complete)
{
	struct hbt_daemon d;
	struct hb_client *h;
	struct hb_timeline *t;
	struct hb_sync *s;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	t = IT_TIMELINE(h, 1);
	for (uint64_t v = 1; v <= 50; v++) {
		s = IT_SYNC(h, t, v);
		CHECK_EQ(hb_timeline_signal(t, v), 0);
		CHECK_EQ(hb_sync_status(s), 1);
		hb_sync_close(s);
	}
	hb_timeline_destroy(t);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* A raw session on the host socket that announces every feature (the daemon must have quiet
 * signals) and owns a fresh timeline: its id. */
static uint64_t raw_owner(struct it_raw *r, const char *socket)
{
	ClientMsg m = CLIENT_MSG__INIT;
	TimelineCreate tc = TIMELINE_CREATE__INIT;
	ServerMsg *w;
	uint64_t id;

	it_raw_open(r, socket);
	w = it_raw_hello_features(r, HBP_ROLE_CLIENT, HBP_FEATURES_KNOWN);
	CHECK(w && w->welcome);
	CHECK_EQ(w->welcome->features & HBP_FEATURE_QUIET_SIGNAL, HBP_FEATURE_QUIET_SIGNAL);
	server_msg__free_unpacked(w, NULL);
	IT_MSG(m, TIMELINE_CREATE, timeline_create, &tc);
	w = IT_RAW_CALL(r, &m);
	CHECK(w && w->timeline);
	id = w->timeline->timeline;
	server_msg__free_unpacked(w, NULL);
	return id;
}

/* The raw protocol: a quiet signal is answered only when refused, with its id; a successful one
 * leaves the next request's reply as the next frame. */
TEST(a_quiet_signal_is_answered_only_when_refused)
{
	struct hbt_daemon d;
	struct it_raw r;
	ClientMsg m = CLIENT_MSG__INIT;
	TimelineSignal ts = TIMELINE_SIGNAL__INIT;
	ServerMsg *s;
	uint64_t id;

	hbt_daemon_start(&d, NULL);
	id = raw_owner(&r, d.socket);

	ts.timeline = id;
	ts.value = 3;
	ts.quiet = true;
	IT_MSG(m, TIMELINE_SIGNAL, timeline_signal, &ts);
	m.id = 500;
	CHECK_EQ(it_raw_send(&r, &m), 0);
	/* Refused: somebody else's (here: nobody's) timeline. */
	ts.timeline = id ^ 1;
	m.id = 501;
	CHECK_EQ(it_raw_send(&r, &m), 0);
	s = it_raw_recv(&r, IT_WAIT_MS, NULL);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 501);
	CHECK_EQ(s->error, ENOENT);
	server_msg__free_unpacked(s, NULL);
	/* The accepted one moved the timeline: a loud signal at 3 is a no-op, answered. */
	ts.timeline = id;
	ts.quiet = false;
	s = IT_RAW_CALL(&r, &m);
	CHECK(s && s->error == 0);
	server_msg__free_unpacked(s, NULL);
	it_raw_close(&r);
	IT_STOP(&d);
}

/*
 * A held daemon, stopped, never reads h's signal of value; it is killed and comes back. vm1
 * resumes first, inside a wait on value that the new daemon cannot complete (an owner gone
 * before vm1 reopens its wait would leave nothing to open: the fence would fail -EPIPE,
 * docs/RESTART.md). Returns vm1's sync; the signal is lost unless h sends it again.
 */
static struct hb_sync *signal_unread_by_a_killed_daemon(struct hbt_daemon *d, struct hb_client **h,
							struct hb_client **v1,
							struct hb_timeline **t, uint64_t value)
{
	struct hb_sync *s;

	hbt_daemon_start_held(d, NULL);
	*h = IT_CONNECT(hbt_addr_host(d));
	*v1 = IT_CONNECT(hbt_addr_vm(d, 1));
	*t = IT_TIMELINE(*h, 1);
	s = IT_SYNC(*v1, *t, value);
	CHECK_EQ(kill(d->spawn.main_pid, SIGSTOP), 0);
	CHECK_EQ(hb_timeline_signal(*t, value), 0);
	hbt_daemon_crash(d);
	CHECK_ERR(hb_sync_wait(s, 300), ETIME);
	return s;
}

/* vm1's reopened wait stays pending until the owner resumes and sends the signal again. */
TEST(a_signal_the_daemon_never_read_goes_again_after_a_restart)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
	struct hb_sync *s = signal_unread_by_a_killed_daemon(&d, &h, &v1, &t, 7);

	/* Any call of the owner resumes it, and the signal goes with the resume. */
	CHECK_EQ(hb_timeline_share(t, 1), 0);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	hb_timeline_destroy(t);
	hb_disconnect(v1);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* A producer that signals its last frame and disconnects at once: the signal still takes
 * effect before the owner's end fails what is left. */
TEST(a_signal_right_before_a_disconnect_is_not_lost)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
	struct hb_sync *s[2];

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	for (int round = 0; round < 20; round++) {
		h = IT_CONNECT(hbt_addr_host(&d));
		t = IT_TIMELINE(h, 1);
		s[0] = IT_SYNC(v1, t, 1);
		s[1] = IT_SYNC(v1, t, 2);
		CHECK_EQ(hb_timeline_signal(t, 1), 0);
		hb_disconnect(h);
		CHECK_EQ(hb_sync_wait(s[0], IT_WAIT_MS), 0);
		CHECK_EQ(hb_sync_status(s[0]), 1);
		CHECK_EQ(hb_sync_wait(s[1], IT_WAIT_MS), 0);
		CHECK_EQ(hb_sync_status(s[1]), -EPIPE);
		hb_sync_close(s[0]);
		hb_sync_close(s[1]);
	}
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* HYPERBUF_SIGNALS=awaited: the library does not offer quiet signals, and every signal waits
 * for its answer (the path test_sh_awaited runs the fence suites on). */
TEST(awaited_signals_on_request)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_counters c0, c1;
	struct hb_timeline *t;
	struct hb_sync *s;

	hbt_daemon_start(&d, NULL);
	CHECK_EQ(setenv("HYPERBUF_SIGNALS", "awaited", 1), 0);
	h = IT_CONNECT(hbt_addr_host(&d));
	CHECK_EQ(unsetenv("HYPERBUF_SIGNALS"), 0);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	t = IT_TIMELINE(h, 1);
	s = IT_SYNC(v1, t, 10);
	CHECK_EQ(hb_counters(h, &c0), 0);
	for (uint64_t v = 1; v <= 10; v++)
		CHECK_EQ(hb_timeline_signal(t, v), 0);
	CHECK_EQ(hb_counters(h, &c1), 0);
	CHECK_EQ(c1.frames_in - c0.frames_in, 10);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	hb_timeline_destroy(t);
	hb_disconnect(v1);
	hb_disconnect(h);
	IT_STOP(&d);
}

/*
 * The daemon writes to a client that has closed its end (here: the completion of the raw owner's
 * wait on its own timeline, which its first signal completes) and the write fails. Its second
 * quiet signal, sent before it closed, is still handled: nothing it sent is dropped with its
 * output.
 */
TEST(signals_sent_before_a_hang_up_survive_a_failed_write)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_sync *s[3];
	struct it_raw r;
	ClientMsg m = CLIENT_MSG__INIT;
	TimelineShare sh = TIMELINE_SHARE__INIT;
	SyncOpen so = SYNC_OPEN__INIT;
	TimelineSignal ts = TIMELINE_SIGNAL__INIT;
	uint64_t id;

	hbt_daemon_start_held(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	id = raw_owner(&r, d.socket);
	sh.timeline = id;
	sh.domain = 1;
	IT_MSG(m, TIMELINE_SHARE, timeline_share, &sh);
	CHECK_EQ(IT_RAW_ERR(&r, &m), 0);
	so.timeline = id;
	so.value = 1;
	IT_MSG(m, SYNC_OPEN, sync_open, &so);
	CHECK_EQ(IT_RAW_ERR(&r, &m), 0);
	for (int i = 0; i < 3; i++) {
		struct hb_fence f = {id, (uint64_t)i + 1};

		s[i] = hb_sync_open(v1, &f);
		CHECK(s[i] != NULL);
	}

	/* Both signals and the hang-up are in the socket before the daemon reads any. */
	CHECK_EQ(kill(d.spawn.main_pid, SIGSTOP), 0);
	ts.timeline = id;
	ts.quiet = true;
	IT_MSG(m, TIMELINE_SIGNAL, timeline_signal, &ts);
	for (uint64_t v = 1; v <= 2; v++) {
		ts.value = v;
		m.id = 100 + (uint32_t)v;
		CHECK_EQ(it_raw_send(&r, &m), 0);
	}
	it_raw_close(&r);
	CHECK_EQ(kill(d.spawn.main_pid, SIGCONT), 0);

	CHECK_EQ(hb_sync_wait(s[0], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s[0]), 1);
	CHECK_EQ(hb_sync_wait(s[1], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s[1]), 1);
	CHECK_EQ(hb_sync_wait(s[2], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s[2]), -EPIPE);
	for (int i = 0; i < 3; i++)
		hb_sync_close(s[i]);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* hb_disconnect waits until the daemon has every signal sent without waiting: one the daemon
 * never read before it was killed goes again, and its waiter completes instead of failing. */
TEST(a_disconnect_across_a_restart_keeps_the_last_signal)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
	struct hb_sync *s = signal_unread_by_a_killed_daemon(&d, &h, &v1, &t, 3);

	hb_disconnect(h);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	hb_disconnect(v1);
	IT_STOP(&d);
}
