/*
 * Lazy records (docs/PROTOCOL.md §3 "Lazy records", hb_timeline_set_lazy): while every waiter
 * of a timeline reads it from a fence slot, an owner that asked for it sends the daemon one
 * signal in 64; a waiter that needs the daemon makes the owner send what it kept, and so do
 * destroying the timeline, turning lazy records off and disconnecting. vm1 owns t, vm2 waits
 * through group b's slot; a second vm2 client with HYPERBUF_SIGNALS=watched (no slots) is the
 * waiter that needs the daemon.
 */
#include <poll.h>
#include <stdlib.h>

#include "tests/it_common.h"

#define ROUNDS 130

struct lx {
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
	uint64_t value; /* the last value signalled */
};

/* vm1's t, shared with vm2, lazy; a first fence round, which gives vm2 its slot. */
static void lx_start_held(struct lx *x, bool held)
{
	if (held)
		hbt_daemon_start_held_extra(&x->d, NULL);
	else
		hbt_daemon_start(&x->d, NULL);
	x->v1 = IT_CONNECT(hbt_addr_vm(&x->d, 1));
	x->v2 = IT_CONNECT(hbt_addr_vm(&x->d, 2));
	x->t = IT_TIMELINE(x->v1, 2);
	CHECK_EQ(hb_timeline_set_lazy(x->t, 1), 0);
	x->value = 0;
}

static void lx_start(struct lx *x)
{
	lx_start_held(x, false);
}

static void lx_stop(struct lx *x)
{
	if (x->t)
		hb_timeline_destroy(x->t);
	hb_disconnect(x->v2);
	if (x->v1)
		hb_disconnect(x->v1);
	IT_STOP(&x->d);
}

/* n fence rounds: vm2 opens the next point, vm1 signals it, vm2's wait returns with 1. */
static void rounds(struct lx *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct hb_sync *s = IT_SYNC(x->v2, x->t, x->value + 1);

		CHECK_EQ(hb_timeline_signal(x->t, ++x->value), 0);
		CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
		CHECK_EQ(hb_sync_status(s), 1);
		hb_sync_close(s);
	}
}

/* The daemon's leave to keep signals (TimelineLazy) comes with the answer to a signal, and
 * the waiter's slot may be quicker: until the owner has read it, its signals go. A first
 * round, then the owner's event loop reads the leave. */
static void lazy_from_now(struct hb_client *owner)
{
	struct pollfd pfd = {.fd = hb_get_fd(owner), .events = POLLIN};

	CHECK_EQ(poll(&pfd, 1, IT_WAIT_MS), 1);
	CHECK(hb_dispatch(owner, 0) >= 0);
}

static uint64_t frames_out(struct hb_client *c)
{
	struct hb_counters n;

	CHECK_EQ(hb_counters(c, &n), 0);
	return n.frames_out;
}

/* A client of vm2 whose fences the daemon tells (no slots). */
static struct hb_client *watched_client(struct lx *x)
{
	struct hb_client *c;

	CHECK_EQ(setenv("HYPERBUF_SIGNALS", "watched", 1), 0);
	c = IT_CONNECT(hbt_addr_vm(&x->d, 2));
	unsetenv("HYPERBUF_SIGNALS");
	return c;
}

/* Rounds with the daemon's leave read, so that the last ten values are kept. */
static void kept_rounds(struct lx *x)
{
	rounds(x, 1);
	lazy_from_now(x->v1);
	rounds(x, 10);
}

/* Kept rounds, then a waiter without a slot on the last value: *w's sync. */
static struct hb_sync *kept_and_awaited(struct lx *x, struct hb_client **w)
{
	kept_rounds(x);
	*w = watched_client(x);
	return IT_SYNC(*w, x->t, x->value);
}

/* s completes with status, and is closed. */
static void check_done(struct hb_sync *s, int status)
{
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s), status);
	hb_sync_close(s);
}

/* Every waiter reads the slot: the first signal asks, the daemon answers, and from then on
 * one signal in 64 reaches it. The waits all complete with 1. */
TEST(a_lazy_owner_sends_one_signal_in_64)
{
	struct lx x;
	uint64_t out0;
	long long sig0;

	lx_start(&x);
	rounds(&x, 1);
	lazy_from_now(x.v1);
	out0 = frames_out(x.v1);
	sig0 = IT_STAT(&x.d, "timeline_signals");
	rounds(&x, ROUNDS);
	/* The round that read the daemon's TimelineLazy, then 64 signals per record. */
	CHECK(frames_out(x.v1) - out0 <= 1 + ROUNDS / 64 + 1);
	CHECK(IT_STAT(&x.d, "timeline_signals") - sig0 <= 1 + ROUNDS / 64 + 1);
	CHECK(IT_STAT(&x.d, "lazy_changes") >= 1);
	lx_stop(&x);
}

/* Without hb_timeline_set_lazy, every signal is a record, as before. */
TEST(an_owner_that_did_not_ask_sends_every_signal)
{
	struct lx x;
	uint64_t out0;

	lx_start(&x);
	CHECK_EQ(hb_timeline_set_lazy(x.t, 0), 0);
	rounds(&x, 1);
	out0 = frames_out(x.v1);
	rounds(&x, 20);
	CHECK_EQ(frames_out(x.v1) - out0, 20);
	CHECK_EQ(IT_STAT(&x.d, "lazy_changes"), 0);
	CHECK_EQ(hb_timeline_set_lazy(x.t, 2), -1);
	CHECK_EQ(errno, EINVAL);
	lx_stop(&x);
}

/* A waiter without a slot: the daemon takes the leave back, which makes the owner's fd
 * readable; its event loop's dispatch sends the kept value, and the wait completes. */
TEST(a_waiter_without_a_slot_gets_the_kept_value_from_the_event_loop)
{
	struct lx x;
	struct hb_client *w;
	struct hb_sync *s;
	struct pollfd pfd;

	lx_start(&x);
	s = kept_and_awaited(&x, &w);
	/* The daemon's record is behind: nothing tells this waiter yet. */
	CHECK_EQ(hb_sync_wait(s, 200), -1);
	CHECK_EQ(errno, ETIME);
	pfd = (struct pollfd){.fd = hb_get_fd(x.v1), .events = POLLIN};
	CHECK_EQ(poll(&pfd, 1, IT_WAIT_MS), 1);
	CHECK(hb_dispatch(x.v1, 0) >= 0);
	check_done(s, 1);
	/* From here every signal goes: the watched waiter needs each one. */
	s = IT_SYNC(w, x.t, x.value + 1);
	CHECK_EQ(hb_timeline_signal(x.t, ++x.value), 0);
	check_done(s, 1);
	hb_disconnect(w);
	lx_stop(&x);
}

/* The owner's next signal also reads the daemon's word and sends everything. */
TEST(the_next_signal_sends_what_was_kept)
{
	struct lx x;
	struct hb_client *w;
	struct hb_sync *s;

	lx_start(&x);
	s = kept_and_awaited(&x, &w);
	CHECK_EQ(hb_sync_wait(s, 200), -1);
	rounds(&x, 1);
	check_done(s, 1);
	hb_disconnect(w);
	lx_stop(&x);
}

/* What was kept completes the daemon's points when the timeline goes, the owner disconnects
 * or turns lazy records off: 1, not -EPIPE. */
static void kept_then(struct lx *x, int how)
{
	struct hb_client *w;
	struct hb_sync *s;

	s = kept_and_awaited(x, &w);
	if (how == 0) {
		hb_timeline_destroy(x->t);
		x->t = NULL;
	} else if (how == 1) {
		hb_disconnect(x->v1);
		x->v1 = NULL;
		x->t = NULL;
	} else {
		CHECK_EQ(hb_timeline_set_lazy(x->t, 0), 0);
	}
	check_done(s, 1);
	hb_disconnect(w);
}

TEST(destroying_the_timeline_sends_what_was_kept)
{
	struct lx x;

	lx_start(&x);
	kept_then(&x, 0);
	lx_stop(&x);
}

TEST(disconnecting_sends_what_was_kept)
{
	struct lx x;

	lx_start(&x);
	kept_then(&x, 1);
	lx_stop(&x);
}

TEST(turning_lazy_off_sends_what_was_kept)
{
	struct lx x;

	lx_start(&x);
	kept_then(&x, 2);
	lx_stop(&x);
}

/* A daemon that restarts has the values the owner sent, not those it kept: the owner's
 * library sends them when it resumes (here, in its event loop's dispatch). */
TEST(a_restart_loses_nothing_that_was_kept)
{
	struct lx x;
	struct hb_client *w;
	struct hb_sync *s;
	int i;

	lx_start_held(&x, true);
	kept_rounds(&x);
	hbt_daemon_crash(&x.d);
	w = watched_client(&x);
	s = IT_SYNC(w, x.t, x.value);
	for (i = 0; i < 100 && hb_sync_status(s) == 0; i++) {
		CHECK(hb_dispatch(x.v1, 50) >= 0);
		hb_sync_wait(s, 50);
	}
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	hb_disconnect(w);
	/* And the rounds go on, lazily again. */
	rounds(&x, 70);
	lx_stop(&x);
}

/* A failure fails the points above the daemon's record: those kept in the slots go first, as
 * the successes they were. */
TEST(a_failure_after_kept_values_fails_only_its_own_points)
{
	struct lx x;
	struct hb_client *w;
	struct hb_sync *kept, *failed;

	lx_start(&x);
	kept_rounds(&x);
	CHECK_EQ(hb_timeline_fail(x.t, x.value + 5, -EIO), 0);
	w = watched_client(&x);
	kept = IT_SYNC(w, x.t, x.value);
	failed = IT_SYNC(w, x.t, x.value + 1);
	check_done(kept, 1);
	check_done(failed, -EIO);
	hb_disconnect(w);
	lx_stop(&x);
}

/* The daemon's word about one timeline, read while signalling another, is acted on before
 * that signal returns: the read left hb_get_fd quiet, so nothing else would. */
TEST(a_value_owed_is_sent_by_the_call_that_read_the_request)
{
	struct lx x;
	struct hb_timeline *t2;
	struct hb_client *w;
	struct hb_sync *s;
	uint64_t v2 = 0;

	lx_start(&x);
	t2 = IT_TIMELINE(x.v1, 2);
	CHECK_EQ(hb_timeline_set_lazy(t2, 1), 0);
	for (int i = 0; i < 10; i++) {
		s = IT_SYNC(x.v2, t2, ++v2);
		CHECK_EQ(hb_timeline_signal(t2, v2), 0);
		CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
		hb_sync_close(s);
		if (i == 0)
			lazy_from_now(x.v1);
	}
	rounds(&x, 2);
	w = watched_client(&x);
	s = IT_SYNC(w, t2, v2);
	CHECK_EQ(hb_sync_wait(s, 200), -1);
	/* A signal of the other timeline reads TimelineLazy{false} for t2. */
	it_sleep_ms(100);
	rounds(&x, 1);
	check_done(s, 1);
	hb_disconnect(w);
	hb_timeline_destroy(t2);
	lx_stop(&x);
}

/* A waiter in another group gets a new slot, which holds the daemon's value: the owner writes
 * what it kept there when it hears of the slot, and rings it, so the waiter is not left to
 * its stall (which would ask the daemon, which would wait for the owner). */
TEST(a_new_slot_gets_the_kept_value)
{
	struct lx x;
	struct hb_client *h;
	struct hb_sync *s;
	struct pollfd pfd;

	lx_start(&x);
	CHECK_EQ(hb_timeline_share(x.t, 0), 0);
	kept_rounds(&x);
	h = IT_CONNECT(hbt_addr_host(&x.d));
	s = IT_SYNC(h, x.t, x.value);
	pfd = (struct pollfd){.fd = hb_get_fd(x.v1), .events = POLLIN};
	CHECK_EQ(poll(&pfd, 1, IT_WAIT_MS), 1);
	CHECK(hb_dispatch(x.v1, 0) >= 0);
	check_done(s, 1);
	hb_disconnect(h);
	lx_stop(&x);
}
