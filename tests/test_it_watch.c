/*
 * Watches (docs/PROTOCOL.md §3 "Watches"): after the first fence opened on a timeline, the
 * daemon keeps the client told of the timeline's progress, and further fences on it are
 * opened, completed and closed without a request. What they complete with is what a wait
 * would have completed with: failed ranges keep their errors, a point signalled just before
 * its timeline went keeps its status, and a client that does not read is not dropped for it.
 */
#include <stdlib.h>

#include "tests/it_common.h"

/* The watch itself: its clients use no fence slots (test_it_slot has those), or a watch with
 * a slot would never be told anything these cases count. */
__attribute__((constructor)) static void watch_path_only(void)
{
	setenv("HYPERBUF_SIGNALS", "watched", 1);
}

/* The usual cast: the host owns t, shared with vm1, which waits on it. */
struct wx {
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
};

static void wx_start(struct wx *x, const char *extra)
{
	hbt_daemon_start(&x->d, extra);
	x->h = IT_CONNECT(hbt_addr_host(&x->d));
	x->v1 = IT_CONNECT(hbt_addr_vm(&x->d, 1));
	x->t = IT_TIMELINE(x->h, 1);
}

static void wx_stop(struct wx *x)
{
	hb_timeline_destroy(x->t);
	hb_disconnect(x->v1);
	hb_disconnect(x->h);
	IT_STOP(&x->d);
}

/* s completes, with 1; then it is closed. */
static void completes(struct hb_sync *s)
{
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
}

static uint64_t frames_out(struct hb_client *c)
{
	struct hb_counters n;

	CHECK_EQ(hb_counters(c, &n), 0);
	return n.frames_out;
}

/* One request for the first fence; none for the next ones, pending or passed, nor for
 * closing them. */
TEST(fences_after_the_first_on_a_timeline_send_nothing)
{
	struct wx x;
	struct hb_sync *s[4];
	uint64_t out0;

	wx_start(&x, NULL);
	out0 = frames_out(x.v1);
	s[0] = IT_SYNC(x.v1, x.t, 1);
	CHECK_EQ(frames_out(x.v1) - out0, 1);
	s[1] = IT_SYNC(x.v1, x.t, 2);
	s[2] = IT_SYNC(x.v1, x.t, 3);
	CHECK_EQ(frames_out(x.v1) - out0, 1);
	CHECK_EQ(hb_timeline_signal(x.t, 2), 0);
	CHECK_EQ(hb_sync_wait(s[1], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s[0]), 1);
	CHECK_EQ(hb_sync_status(s[1]), 1);
	CHECK_ERR(hb_sync_wait(s[2], 50), ETIME);
	/* Passed: born complete, here. */
	s[3] = IT_SYNC(x.v1, x.t, 2);
	CHECK_EQ(hb_sync_status(s[3]), 1);
	hb_sync_close(s[3]);
	hb_sync_close(s[2]);
	CHECK_EQ(frames_out(x.v1) - out0, 1);
	/* A closed point is not completed later, and a new one on its value completes. */
	s[2] = IT_SYNC(x.v1, x.t, 3);
	CHECK_EQ(hb_timeline_signal(x.t, 3), 0);
	CHECK_EQ(hb_sync_wait(s[2], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s[2]), 1);
	CHECK_EQ(frames_out(x.v1) - out0, 1);
	for (int i = 0; i < 3; i++)
		hb_sync_close(s[i]);
	wx_stop(&x);
}

/* Ranges told together keep their own statuses, and a point at or below a failure is asked
 * for again rather than guessed. */
TEST(failed_ranges_keep_their_errors)
{
	static const int want[] = {1, -EIO, -EIO, 1, 1, 1};
	struct wx x;
	struct hb_sync *s[6], *late;

	wx_start(&x, NULL);
	for (int i = 0; i < 6; i++)
		s[i] = IT_SYNC(x.v1, x.t, (uint64_t)i + 1);
	CHECK_EQ(hb_timeline_signal(x.t, 1), 0);
	CHECK_EQ(hb_timeline_fail(x.t, 3, -EIO), 0);
	CHECK_EQ(hb_timeline_signal(x.t, 6), 0);
	for (int i = 0; i < 6; i++) {
		CHECK_EQ(hb_sync_wait(s[i], IT_WAIT_MS), 0);
		CHECK_EQ(hb_sync_status(s[i]), want[i]);
		hb_sync_close(s[i]);
	}
	for (uint64_t v = 1; v <= 6; v++) {
		late = IT_SYNC(x.v1, x.t, v);
		CHECK_EQ(hb_sync_status(late), want[v - 1]);
		hb_sync_close(late);
	}
	wx_stop(&x);
}

/* The owner signals and leaves before the watcher reads anything: what was signalled
 * completes with 1, the rest with -EPIPE, and the timeline is gone for the next open. */
TEST(a_signal_right_before_the_timeline_goes_keeps_its_status)
{
	struct wx x;
	struct hb_sync *s[2];
	struct hb_fence f;

	wx_start(&x, NULL);
	f.timeline = hb_timeline_id(x.t);
	s[0] = IT_SYNC(x.v1, x.t, 5);
	s[1] = IT_SYNC(x.v1, x.t, 9);
	CHECK_EQ(hb_timeline_signal(x.t, 5), 0);
	hb_disconnect(x.h);
	CHECK_EQ(hb_sync_wait(s[1], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s[0]), 1);
	CHECK_EQ(hb_sync_status(s[1]), -EPIPE);
	f.value = 9;
	CHECK(hb_sync_open(x.v1, &f) == NULL && errno == ENOENT);
	hb_sync_close(s[0]);
	hb_sync_close(s[1]);
	hb_disconnect(x.v1);
	IT_STOP(&x.d);
}

/* A watcher that reads nothing while its timeline moves 5000 times holds one queued record,
 * not 5000 completions: it is not dropped, and its fence completes when it reads. */
TEST(a_watcher_that_does_not_read_is_not_dropped)
{
	struct wx x;
	struct hb_sync *s;

	wx_start(&x, NULL);
	s = IT_SYNC(x.v1, x.t, 5000);
	for (uint64_t v = 1; v <= 5000; v++)
		CHECK_EQ(hb_timeline_signal(x.t, v), 0);
	CHECK_EQ(hb_timeline_share(x.t, 1), 0); /* an awaited call: the daemon has them all */
	CHECK_EQ(IT_STAT(&x.d, "fence_sessions_dropped"), 0);
	completes(s);
	wx_stop(&x);
}

/* Without the feature (HYPERBUF_SIGNALS=awaited) every fence is a request, as before. */
TEST(without_watches_every_fence_is_a_request)
{
	struct wx x;
	struct hb_sync *s[2];
	uint64_t out0;

	wx_start(&x, NULL);
	hb_disconnect(x.v1);
	it_fences_as_waits(true);
	x.v1 = IT_CONNECT(hbt_addr_vm(&x.d, 1));
	it_fences_as_waits(false);
	out0 = frames_out(x.v1);
	s[0] = IT_SYNC(x.v1, x.t, 1);
	s[1] = IT_SYNC(x.v1, x.t, 2);
	CHECK_EQ(frames_out(x.v1) - out0, 2);
	CHECK_EQ(hb_timeline_signal(x.t, 2), 0);
	CHECK_EQ(hb_sync_wait(s[1], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s[0]), 1);
	hb_sync_close(s[0]);
	hb_sync_close(s[1]);
	wx_stop(&x);
}

/* Two requests of c's that wait for their answers: whatever the daemon framed for c before
 * it handled them has been read when this returns. */
static void round_trip(struct hb_client *c)
{
	struct hb_timeline *t = hb_timeline_create(c);

	CHECK(t != NULL);
	hb_timeline_destroy(t);
}

/* A client that stopped waiting on a timeline is told once more at most, then arms its watch
 * past everything: the owner's next 200 signals reach it as nothing. Its next fence arms it
 * back, and completes. */
TEST(a_watch_nobody_waits_on_stays_quiet)
{
	struct wx x;
	struct hb_counters c0, c1;
	struct hb_sync *s;

	wx_start(&x, NULL);
	s = IT_SYNC(x.v1, x.t, 1);
	CHECK_EQ(hb_timeline_signal(x.t, 1), 0);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	hb_sync_close(s);
	/* Told of 2, which nobody waits for: read (before the reply to a call of x.v1's), and the
	 * next hb_dispatch arms the watch past everything. */
	CHECK_EQ(hb_timeline_signal(x.t, 2), 0);
	CHECK_EQ(hb_timeline_share(x.t, 1), 0); /* an awaited call: the daemon has the signal */
	round_trip(x.v1);
	CHECK(hb_dispatch(x.v1, 0) >= 0);
	round_trip(x.v1); /* the WatchArm went without an answer: now the daemon has it */
	CHECK_EQ(hb_counters(x.v1, &c0), 0);
	for (uint64_t v = 3; v <= 202; v++)
		CHECK_EQ(hb_timeline_signal(x.t, v), 0);
	CHECK_EQ(hb_timeline_share(x.t, 1), 0);
	round_trip(x.v1);
	CHECK_EQ(hb_counters(x.v1, &c1), 0);
	/* The two replies of round_trip, nothing else. */
	CHECK_EQ(c1.frames_in - c0.frames_in, 2);
	/* A new fence arms it again, without waiting for an answer. */
	s = IT_SYNC(x.v1, x.t, 205);
	CHECK_EQ(hb_counters(x.v1, &c0), 0);
	CHECK_EQ(c0.frames_out - c1.frames_out, 1);
	CHECK_EQ(c0.frames_in - c1.frames_in, 0);
	CHECK_EQ(hb_timeline_signal(x.t, 205), 0);
	completes(s);
	wx_stop(&x);
}

/* Watches have a quota of their own, fence_waits_per_domain of them per domain, however many
 * fences each holds; past it an open is a wait, and past the waits' quota it is EDQUOT. */
TEST(watches_have_a_quota_of_their_own)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t[3];
	struct hb_sync *s[11];
	struct hb_fence f;

	hbt_daemon_start(&d, "[limits]\nfence_waits_per_domain = 2\n");
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	for (int i = 0; i < 3; i++)
		t[i] = IT_TIMELINE(h, 1);
	for (int i = 0; i < 8; i++)
		s[i] = IT_SYNC(v1, t[0], 1 + (uint64_t)i);
	s[8] = IT_SYNC(v1, t[1], 1);
	CHECK_EQ(IT_STAT(&d, "fence_watches"), 2);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 0);
	s[9] = IT_SYNC(v1, t[2], 1);
	s[10] = IT_SYNC(v1, t[2], 2);
	CHECK_EQ(IT_STAT(&d, "fence_watches"), 2);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 2);
	f = (struct hb_fence){hb_timeline_id(t[2]), 3};
	CHECK_ERR(hb_sync_open(v1, &f), EDQUOT);
	CHECK_EQ(hb_timeline_signal(t[0], 8), 0);
	CHECK_EQ(hb_timeline_signal(t[2], 2), 0);
	CHECK_EQ(hb_sync_wait(s[7], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_wait(s[10], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s[9]), 1);
	CHECK_EQ(hb_sync_status(s[0]), 1);
	for (int i = 0; i < 11; i++)
		hb_sync_close(s[i]);
	for (int i = 0; i < 3; i++)
		hb_timeline_destroy(t[i]);
	hb_disconnect(v1);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* More points on one watch than the quota lets be waits, across a restart: the resume opens
 * the timeline's lowest point again with a watch and puts the others on it, one request in
 * all, and every point completes when signalled, the ones signalled while the daemon was away
 * included. */
TEST(points_on_a_watch_survive_a_restart)
{
	enum { N = 3000 };
	static struct hb_sync *s[N];
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
	struct hb_counters c0, c1;

	hbt_daemon_start_held_extra(&d, "[limits]\nfence_waits_per_domain = 100\n");
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	t = IT_TIMELINE(h, 1);
	for (int i = 0; i < N; i++)
		s[i] = IT_SYNC(v1, t, 1 + (uint64_t)i);
	hbt_daemon_crash(&d);
	CHECK_EQ(hb_timeline_signal(t, 10), 0); /* the owner resumes first */
	CHECK_EQ(hb_timeline_share(t, 1), 0);   /* an awaited call: the daemon has the signal */
	CHECK_EQ(hb_counters(v1, &c0), 0);
	CHECK_ERR(hb_sync_wait(s[N - 1], 100), ETIME); /* v1 resumes in here */
	CHECK_EQ(hb_counters(v1, &c1), 0);
	/* Hello, and a SyncOpen for each point the timeline passed while the daemon was away
	 * (their statuses are the daemon's to say; the first one got the watch): nothing for the
	 * other 2990. */
	CHECK_EQ(c1.frames_out - c0.frames_out, 1 + 10);
	CHECK_EQ(hb_sync_status(s[9]), 1);
	CHECK_EQ(hb_sync_status(s[10]), 0);
	CHECK_EQ(IT_STAT(&d, "fence_watches"), 1);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 0);
	CHECK_EQ(hb_timeline_signal(t, N), 0);
	CHECK_EQ(hb_sync_wait(s[N - 1], IT_WAIT_MS), 0);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(hb_sync_status(s[i]), 1);
		hb_sync_close(s[i]);
	}
	hb_timeline_destroy(t);
	hb_disconnect(v1);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* hyperbufctl timelines shows a timeline's watchers: their fences are not waits, and PENDING
 * alone would say nobody waits. */
TEST(hyperbufctl_lists_a_timelines_watchers)
{
	struct wx x;
	struct hb_sync *s;
	char out[8192];

	wx_start(&x, NULL);
	s = IT_SYNC(x.v1, x.t, 5);
	CHECK_EQ(hbt_ctl(&x.d, out, sizeof(out), "timelines"), 0);
	CHECK(strstr(out, "PENDING") && strstr(out, "WATCHERS"));
	CHECK_EQ(hbt_ctl(&x.d, out, sizeof(out), "--json timelines"), 0);
	CHECK(it_json_ok(out));
	CHECK(strstr(out, "\"pending\":0") && strstr(out, "\"watchers\":1"));
	hb_sync_close(s);
	wx_stop(&x);
}

/*
 * A watcher whose output is full (it reads nothing while 256 exports' events with 4 KiB of
 * metadata each wait for it) cannot be told of its timeline when it moves; meanwhile the owner
 * fails 70 separate ranges, more than the 64 a timeline remembers. The watch tells what it owes
 * before the first ranges are forgotten, so v1's points in them still fail with their error
 * (they would read 1 if the statuses were taken from the timeline when v1 reads).
 */
TEST(a_congested_watcher_keeps_the_errors_of_forgotten_ranges)
{
	static char meta[4096];
	struct hb_buffer *b[256];
	struct hb_sync *s[3];
	struct hb_id id;
	struct wx x;

	wx_start(&x, NULL);
	for (int i = 0; i < 3; i++)
		s[i] = IT_SYNC(x.v1, x.t, 1 + 2 * (uint64_t)i); /* 1, 3, 5: each will fail */
	for (int i = 0; i < 256; i++) {
		b[i] = IT_ALLOC(x.h, 1, 4096, 0);
		IT_EXPORT(b[i], meta, sizeof(meta), &id);
	}
	for (uint64_t v = 1; v <= 140; v += 2) {
		CHECK_EQ(hb_timeline_fail(x.t, v, -EIO), 0);
		CHECK_EQ(hb_timeline_signal(x.t, v + 1), 0);
	}
	CHECK_EQ(hb_timeline_share(x.t, 1), 0); /* an awaited call: the daemon has them all */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(hb_sync_wait(s[i], IT_WAIT_MS), 0);
		CHECK_EQ(hb_sync_status(s[i]), -EIO);
		hb_sync_close(s[i]);
	}
	for (int i = 0; i < 256; i++)
		hb_buffer_free(b[i]);
	wx_stop(&x);
}
