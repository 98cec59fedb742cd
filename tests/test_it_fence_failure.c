/*
 * Fence conformance, part 2: shared/research/fences.md §5.7 assertions 27-32 (failure): the
 * owner killed with SIGKILL mid-wait, an explicit destroy, the daemon stopped mid-wait, an
 * importer killed, no watchdog by default, and the per-domain limits. Layout as in
 * test_it_fence_conformance.c: A = vm1 agent owns, B = vm2 waits (this process or an agent),
 * C = another domain's agent. "Mid-wait" means the waiter is blocked in hb_sync_wait(-1) (or
 * polling) when the failure happens; every wait here has a bound, so a hang is a failure.
 */
#include "tests/fence_common.h"

/* Errors a lost daemon connection may leave (the header: EPIPE or ECONNRESET). */
static bool conn_error(int e)
{
	return e == EPIPE || e == ECONNRESET;
}

struct waiter {
	struct hb_sync *s;
	int timeout_ms;
	int ret, err, status;
	uint64_t woke_ms;
};

static void *waiter_fn(void *p)
{
	struct waiter *w = p;

	errno = 0;
	w->ret = hb_sync_wait(w->s, w->timeout_ms);
	w->err = errno;
	w->status = hb_sync_status(w->s);
	w->woke_ms = hbt_now_ms();
	return NULL;
}

struct delayed_kill {
	pid_t pid;
	int sig;
	unsigned delay_ms;
	uint64_t at_ms;
};

static void *delayed_kill_fn(void *p)
{
	struct delayed_kill *k = p;

	it_sleep_ms(k->delay_ms);
	k->at_ms = hbt_now_ms();
	kill(k->pid, k->sig);
	return NULL;
}

/*
 * 27. The owner's process dies (SIGKILL) while B blocks in hb_sync_wait(-1) on its point 6 and
 * C (the host, another process) blocks on point 5: both wake within the bound; every pending
 * point completes with -EPIPE, oldest first (B's events 3, 4, 5, 6 in order); the points
 * already signalled (1, 2) keep status 1; the timeline is gone (ENOENT) and the daemon holds
 * no timeline and no wait for it.
 */
TEST(c27_owner_killed_mid_wait)
{
	struct hbt_daemon d;
	struct fence_agent a, c;
	struct hb_client *b;
	struct hb_sync *s[6];
	struct waiter w;
	struct delayed_kill k;
	struct hb_event ev;
	struct hb_fence f;
	struct fa_rep r;
	pthread_t th;
	uint64_t tl, next = 3;
	int ta, sc, i;

	hbt_daemon_start(&d, NULL);
	FENCE_AGENT_START(&a, hbt_addr_vm(&d, 1), "A(vm1)");
	FENCE_AGENT_START(&c, hbt_addr_host(&d), "C(host)");
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	ta = FA_TIMELINE(&a, &tl);
	for (i = 0; i < 6; i++)
		s[i] = FENCE_OPEN(b, tl, (uint64_t)i + 1);
	sc = FA_OPEN(&c, tl, 5);
	FA_SIGNAL(&a, ta, 2);
	FENCE_WAIT_DONE(s[1]);
	it_drain(b);
	fa_send_at(__FILE__, __LINE__, &c, FA_WAIT, sc, (uint64_t)(int64_t)-1, 0, 0, NULL);
	k = (struct delayed_kill){.pid = a.pid, .sig = SIGKILL, .delay_ms = 300};
	CHECK(pthread_create(&th, NULL, delayed_kill_fn, &k) == 0);
	w = (struct waiter){.s = s[5], .timeout_ms = -1};
	waiter_fn(&w); /* this thread, blocked until the owner's death completes the point */
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_EQ(w.ret, 0);
	CHECK_EQ(w.status, -EPIPE);
	CHECK(w.woke_ms >= k.at_ms);
	printf("owner killed -> waiter in vm2 woke after %llu ms\n",
	       (unsigned long long)(w.woke_ms - k.at_ms));
	CHECK_EQ(hbt_wait_child(a.pid), 128 + SIGKILL);
	close(a.sock);
	for (i = 0; i < 6; i++)
		FENCE_STATUS(s[i], i < 2 ? 1 : -EPIPE);
	while (IT_NEXT_EVENT(b, &ev, 200) == 0) {
		if (ev.type != HB_EVENT_FENCE)
			continue;
		CHECK_EQ(hb_event_fence(&ev, &f), 0);
		CHECK_EQ(f.timeline, tl);
		CHECK_EQ(f.value, next);
		next++;
	}
	CHECK_EQ(next, 7);
	CHECK_EQ(fa_recv(&c, &r, FENCE_WAIT_MS), 0);
	CHECK_EQ(r.ret, 0);
	CHECK_EQ((int64_t)r.val, -EPIPE);
	f.timeline = tl;
	f.value = 7;
	CHECK_ERR(hb_sync_open(b, &f), ENOENT);
	for (i = 0; i < 6; i++)
		hb_sync_close(s[i]);
	FA_CLOSE(&c, sc);
	IT_CHECK_STAT(&d, "timelines", 0);
	IT_CHECK_STAT(&d, "fence_waits", 0);
	FENCE_AGENT_STOP(&c);
	hb_disconnect(b);
	IT_STOP(&d);
}

/*
 * 28. Destroying a timeline with pending points behaves like the owner's death: B, blocked on
 * its point 5, wakes; pending points get -EPIPE (the header's choice; sw_sync says -ENOENT),
 * completed ones keep 1; the id is gone (ENOENT) and never comes back for a new timeline.
 */
struct later_destroy {
	struct fence_agent *a;
	int t;
	unsigned delay_ms;
};

static void *later_destroy_fn(void *p)
{
	struct later_destroy *l = p;

	it_sleep_ms(l->delay_ms);
	fa_send_at(__FILE__, __LINE__, l->a, FA_TL_DESTROY, l->t, 0, 0, 0, NULL);
	return NULL;
}

TEST(c28_destroy_with_pending_points)
{
	struct hbt_daemon d;
	struct fence_agent a;
	struct hb_client *b;
	struct hb_sync *s[5];
	struct later_destroy l;
	struct waiter w;
	struct hb_fence f;
	struct fa_rep r;
	pthread_t th;
	uint64_t tl, tl2;
	int ta, i;

	hbt_daemon_start(&d, NULL);
	FENCE_AGENT_START(&a, hbt_addr_vm(&d, 1), "A(vm1)");
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	ta = FA_TIMELINE(&a, &tl);
	for (i = 0; i < 5; i++)
		s[i] = FENCE_OPEN(b, tl, (uint64_t)i + 1);
	FA_SIGNAL(&a, ta, 2);
	FENCE_WAIT_DONE(s[1]);
	CHECK_EQ(IT_STAT(&d, "timelines"), 1);
	l = (struct later_destroy){&a, ta, 300};
	CHECK(pthread_create(&th, NULL, later_destroy_fn, &l) == 0);
	w = (struct waiter){.s = s[4], .timeout_ms = -1};
	waiter_fn(&w);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_EQ(fa_recv(&a, &r, FENCE_WAIT_MS), 0);
	CHECK_EQ(r.ret, 0);
	CHECK_EQ(w.ret, 0);
	for (i = 0; i < 5; i++)
		FENCE_STATUS(s[i], i < 2 ? 1 : -EPIPE);
	f.timeline = tl;
	f.value = 1; /* even a point that had been reached: the timeline is gone */
	CHECK_ERR(hb_sync_open(b, &f), ENOENT);
	IT_CHECK_STAT(&d, "timelines", 0);
	FA_TIMELINE(&a, &tl2);
	CHECK(tl2 != tl);
	for (i = 0; i < 5; i++)
		hb_sync_close(s[i]);
	IT_CHECK_STAT(&d, "fence_waits", 0);
	FENCE_AGENT_STOP(&a);
	hb_disconnect(b);
	IT_STOP(&d);
}

/*
 * 29. The daemon goes away (stopped) while three waiters block: an agent in vm2 in
 * hb_sync_wait(-1), a thread of this process (vm2 as well) in hb_sync_wait(-1), and the host's
 * agent. Every wait returns 0 (a completion) with the connection's error as the status, the
 * fds are readable, nothing hangs. New calls fail cleanly with the sticky error (open, create,
 * signal, begin_cpu_access). After a new daemon starts, the old handles stay failed and a new
 * connection works.
 */
TEST(c29_daemon_stopped_mid_wait)
{
	struct hbt_daemon d, d2;
	struct fence_agent a, bb, c;
	struct hb_client *b, *nb;
	struct hb_timeline *tb, *nt;
	struct hb_sync *s, *s2, *ns;
	struct waiter w;
	struct hb_fence f;
	struct fa_rep r;
	struct hb_id hid;
	pthread_t th;
	uint64_t tl, t0;
	int ta, sb, sc, st;

	hbt_daemon_start(&d, NULL);
	FENCE_AGENT_START(&a, hbt_addr_vm(&d, 1), "A(vm1)");
	FENCE_AGENT_START(&bb, hbt_addr_vm(&d, 2), "B'(vm2)");
	FENCE_AGENT_START(&c, hbt_addr_host(&d), "C(host)");
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	ta = FA_TIMELINE(&a, &tl);
	r = FA_OK_CALL(&a, FA_ALLOC, 0, 2, 4096, 0, NULL);
	hid = r.id;
	FA_OK_CALL(&a, FA_ATTACH, 0, tl, 10, HB_ACCESS_WRITE, &hid);
	tb = FENCE_TL(b);
	s = FENCE_OPEN(b, tl, 3);
	s2 = FENCE_OPEN(b, tl, 1);
	sb = FA_OPEN(&bb, tl, 3);
	sc = FA_OPEN(&c, tl, 3);
	FA_SIGNAL(&a, ta, 1);
	FENCE_WAIT_DONE(s2);
	fa_send_at(__FILE__, __LINE__, &bb, FA_WAIT, sb, (uint64_t)(int64_t)-1, 0, 0, NULL);
	fa_send_at(__FILE__, __LINE__, &c, FA_WAIT, sc, (uint64_t)(int64_t)-1, 0, 0, NULL);
	w = (struct waiter){.s = s, .timeout_ms = -1};
	CHECK(pthread_create(&th, NULL, waiter_fn, &w) == 0);
	it_sleep_ms(300); /* all three blocked */
	t0 = hbt_now_ms();
	IT_STOP(&d); /* SIGTERM; it must exit 0 (leak check) with all of them connected */
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_EQ(w.ret, 0);
	CHECK(w.status < 0 && conn_error(-w.status));
	CHECK_EQ(fa_recv(&bb, &r, FENCE_WAIT_MS), 0);
	CHECK_EQ(r.ret, 0);
	CHECK((int64_t)r.val < 0 && conn_error((int)-(int64_t)r.val));
	CHECK_EQ(fa_recv(&c, &r, FENCE_WAIT_MS), 0);
	CHECK_EQ(r.ret, 0);
	CHECK((int64_t)r.val < 0 && conn_error((int)-(int64_t)r.val));
	printf("daemon stopped -> all three waiters back within %llu ms\n",
	       (unsigned long long)(hbt_now_ms() - t0));
	CHECK(FENCE_FD_READY(s));
	FENCE_STATUS(s2, 1); /* completed before: unchanged */
	st = hb_sync_status(s);
	CHECK(st < 0 && conn_error(-st));
	/* New calls fail with the sticky error. */
	f.timeline = tl;
	f.value = 9;
	errno = 0;
	CHECK(hb_sync_open(b, &f) == NULL && conn_error(errno));
	errno = 0;
	CHECK(hb_timeline_create(b) == NULL && conn_error(errno));
	errno = 0;
	CHECK(hb_timeline_signal(tb, 5) == -1 && conn_error(errno));
	errno = 0;
	CHECK(hb_begin_cpu_access(b, &hid, HB_ACCESS_READ, 0) == -1 && conn_error(errno));
	r = FA_CALL(&a, FA_TL_SIGNAL, ta, 5, 0, 0, NULL);
	CHECK(r.ret == -1 && conn_error(r.err));
	/* A new daemon: old handles stay failed, a new connection works. */
	hbt_daemon_start(&d2, NULL);
	nb = IT_CONNECT(hbt_addr_vm(&d2, 2));
	nt = FENCE_TL(nb);
	CHECK(hb_timeline_id(nt) != tl && hb_timeline_id(nt) != hb_timeline_id(tb));
	ns = FENCE_OPEN(nb, hb_timeline_id(nt), 1);
	FENCE_SIGNAL(nt, 1);
	FENCE_WAIT_DONE(ns);
	FENCE_STATUS(ns, 1);
	st = hb_sync_status(s);
	CHECK(st < 0 && conn_error(-st));
	errno = 0;
	CHECK(hb_sync_open(b, &f) == NULL && conn_error(errno));
	hb_sync_close(ns);
	hb_timeline_destroy(nt);
	hb_disconnect(nb);
	hb_sync_close(s);
	hb_sync_close(s2);
	hb_timeline_destroy(tb);
	hb_disconnect(b);
	FENCE_AGENT_STOP(&a);
	FENCE_AGENT_STOP(&bb);
	FENCE_AGENT_STOP(&c);
	IT_STOP(&d2);
}

/*
 * 30. An importer's death disturbs nobody: C (the host) holds 50 pending waits on A's timeline
 * and is SIGKILLed while blocked in one; the daemon drops its waits, and A's timeline and B's
 * handles carry on normally (status 1, not an error).
 */
TEST(c30_importer_death_harmless)
{
	struct hbt_daemon d;
	struct fence_agent a, c;
	struct hb_client *b;
	struct hb_sync *s[3];
	uint64_t tl, tl2;
	int ta, i, last = -1;

	/* It counts the daemon's waits: B's and C's fences are waits, not points on watches. */
	it_fences_as_waits(true);
	hbt_daemon_start(&d, NULL);
	FENCE_AGENT_START(&a, hbt_addr_vm(&d, 1), "A(vm1)");
	FENCE_AGENT_START(&c, hbt_addr_host(&d), "C(host)");
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	ta = FA_TIMELINE(&a, &tl);
	for (i = 0; i < 3; i++)
		s[i] = FENCE_OPEN(b, tl, (uint64_t)i + 1);
	for (i = 0; i < 50; i++)
		last = FA_OPEN(&c, tl, 1 + (uint64_t)i);
	IT_CHECK_STAT(&d, "fence_waits", 53);
	fa_send_at(__FILE__, __LINE__, &c, FA_WAIT, last, (uint64_t)(int64_t)-1, 0, 0, NULL);
	it_sleep_ms(200);
	fence_agent_kill(&c);
	/* Only B's three waits remain (C's last 47 points were distinct from B's). */
	IT_CHECK_STAT(&d, "fence_waits", 3);
	FA_SIGNAL(&a, ta, 1);
	FENCE_WAIT_DONE(s[0]);
	FENCE_STATUS(s[0], 1);
	FENCE_NOT_YET(s[1]);
	FA_SIGNAL(&a, ta, 3);
	FENCE_WAIT_DONE(s[2]);
	for (i = 0; i < 3; i++) {
		FENCE_STATUS(s[i], 1);
		hb_sync_close(s[i]);
	}
	FA_TIMELINE(&a, &tl2); /* the owner still works */
	FENCE_AGENT_STOP(&a);
	hb_disconnect(b);
	IT_STOP(&d);
	it_fences_as_waits(false);
}

/*
 * 31. Watchdog: the API and the daemon have none (fences.md §5.5: "disabled by default for
 * pure userspace pipelines"). What that promises, checked: a point left pending for 2 s is
 * still pending (no spurious -ETIME or other completion), its fd not ready, and it still
 * signals normally afterwards.
 */
TEST(c31_no_watchdog_pending_point_stays_pending)
{
	struct hbt_daemon d;
	struct fence_agent a;
	struct hb_client *b;
	struct hb_sync *s;
	uint64_t tl, t0;
	int ta;

	hbt_daemon_start(&d, NULL);
	FENCE_AGENT_START(&a, hbt_addr_vm(&d, 1), "A(vm1)");
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	ta = FA_TIMELINE(&a, &tl);
	s = FENCE_OPEN(b, tl, 1);
	t0 = hbt_now_ms();
	fence_wait_timeout_at(__FILE__, __LINE__, s, 2000);
	CHECK(hbt_now_ms() - t0 >= 2000);
	FENCE_STATUS(s, 0);
	CHECK(!FENCE_FD_READY(s));
	/* Held in the daemon: a wait, or the watch of its timeline. */
	CHECK_EQ(IT_STAT(&d, "fence_waits") + IT_STAT(&d, "fence_watches"), 1);
	FA_SIGNAL(&a, ta, 1);
	FENCE_WAIT_DONE(s);
	FENCE_STATUS(s, 1);
	hb_sync_close(s);
	FENCE_AGENT_STOP(&a);
	hb_disconnect(b);
	IT_STOP(&d);
}

/*
 * 32. Limits: with timelines_per_domain = 4 and fence_waits_per_domain = 8, the 5th timeline
 * of a domain and the 9th pending wait of a domain (across its sessions) fail with EDQUOT;
 * another domain is not affected; what exists keeps working; a second open of a point already
 * waited for is the same wait and costs nothing; a born-signalled open holds no wait; room
 * comes back when things complete or close.
 */
#define LIMITS "[limits]\ntimelines_per_domain = 4\nfence_waits_per_domain = 8\n"

TEST(c32_resource_limits)
{
	struct hbt_daemon d;
	struct fence_agent a;
	struct hb_client *b, *b2;
	struct hb_timeline *tb[4];
	struct hb_sync *s[8], *dup, *born, *more[2];
	struct hb_fence f;
	struct fa_rep r;
	uint64_t tl[4];
	int ta[4], i;

	/* The quota of waits: vm2's fences are waits, not points on watches. */
	it_fences_as_waits(true);
	hbt_daemon_start(&d, LIMITS);
	FENCE_AGENT_START(&a, hbt_addr_vm(&d, 1), "A(vm1)");
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	b2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i < 4; i++)
		ta[i] = FA_TIMELINE(&a, &tl[i]);
	r = FA_CALL(&a, FA_TL_CREATE, 0, 0, 0, 0, NULL);
	CHECK(r.ret == -1 && r.err == EDQUOT);
	/* vm2 has its own four. */
	for (i = 0; i < 4; i++)
		tb[i] = FENCE_TL(i < 2 ? b : b2);
	CHECK_ERR(hb_timeline_create(b2), EDQUOT);
	CHECK_ERR(hb_timeline_create(b), EDQUOT);
	/* Eight pending waits for vm2, over its two sessions. */
	for (i = 0; i < 8; i++)
		s[i] = FENCE_OPEN(i % 2 ? b2 : b, tl[i % 4], 1 + (uint64_t)i);
	f.timeline = tl[0];
	f.value = 100;
	CHECK_ERR(hb_sync_open(b, &f), EDQUOT);
	CHECK_ERR(hb_sync_open(b2, &f), EDQUOT);
	/* The same point again: the same wait, allowed. */
	dup = FENCE_OPEN(b, tl[0], 1);
	/* A point already reached holds no wait. */
	FA_SIGNAL(&a, ta[3], 50);
	FENCE_WAIT_DONE(s[3]);
	FENCE_WAIT_DONE(s[7]);
	born = FENCE_OPEN(b, tl[3], 40);
	FENCE_STATUS(born, 1);
	/* Two waits completed: room for exactly two more. */
	more[0] = FENCE_OPEN(b2, tl[1], 1000);
	more[1] = FENCE_OPEN(b, tl[2], 1000);
	CHECK_ERR(hb_sync_open(b, &f), EDQUOT);
	/* Existing fences still work, quotas notwithstanding. */
	for (i = 0; i < 3; i++)
		FA_SIGNAL(&a, ta[i], 2000);
	for (i = 0; i < 8; i++) {
		FENCE_WAIT_DONE(s[i]);
		FENCE_STATUS(s[i], 1);
	}
	FENCE_WAIT_DONE(dup);
	FENCE_WAIT_DONE(more[0]);
	FENCE_WAIT_DONE(more[1]);
	IT_CHECK_STAT(&d, "fence_waits", 0);
	/* And the quota is whole again. */
	for (i = 0; i < 8; i++) {
		hb_sync_close(s[i]);
		s[i] = FENCE_OPEN(b, tl[1 + i % 2], 3000 + (uint64_t)i);
	}
	f.timeline = tl[1];
	f.value = 9000;
	CHECK_ERR(hb_sync_open(b2, &f), EDQUOT);
	/* Destroy frees a timeline slot. */
	FA_DESTROY(&a, ta[0]);
	ta[0] = FA_TIMELINE(&a, &tl[0]);
	for (i = 0; i < 8; i++)
		hb_sync_close(s[i]);
	hb_sync_close(dup);
	hb_sync_close(born);
	hb_sync_close(more[0]);
	hb_sync_close(more[1]);
	for (i = 0; i < 4; i++)
		hb_timeline_destroy(tb[i]);
	FENCE_AGENT_STOP(&a);
	hb_disconnect(b);
	hb_disconnect(b2);
	IT_STOP(&d);
	it_fences_as_waits(false);
}
