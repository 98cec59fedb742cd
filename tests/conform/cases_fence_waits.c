/*
 * Conformance cases: fence ids, order, statuses and waits (ported from
 * test_it_fence_conformance c06, c08, c11, c13-c16; docs/TESTING.md lists them). Written once
 * for every target (tests/conform/conform.h). The owner passes its timeline's id on the side
 * channel; "not yet" checks come after a point the waiter saw complete (CF_REACHED) or before
 * the owner could act (a barrier still ahead of it).
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "tests/conform/conform.h"

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/* ---- c06_timeline_ids_unique_never_reused (test_it_fence_conformance c06) -------------------
 * Every domain creates 20 timelines and destroys them, twice: no id is 0 and none is handed
 * out twice, in one domain or across domains. (The original also restarts the daemon between
 * two such runs: a host-side step, and all cases share one daemon.) */
#define IDS_PER_DOM 40
#define IDS_PER_KEY 8

static void ids_role(void)
{
	struct hb_client *c = cf_connect();
	uint64_t mine[IDS_PER_DOM], all[3 * IDS_PER_DOM];
	char key[32], val[CF_VAL_MAX];
	int n = 0;

	for (int pass = 0; pass < 2; pass++) {
		struct hb_timeline *t[IDS_PER_DOM / 2];

		for (int i = 0; i < IDS_PER_DOM / 2; i++) {
			t[i] = hb_timeline_create(c);
			CHECK(t[i] != NULL);
			mine[n++] = hb_timeline_id(t[i]);
		}
		for (int i = 0; i < IDS_PER_DOM / 2; i++)
			hb_timeline_destroy(t[i]);
	}
	for (int k = 0; k < IDS_PER_DOM / IDS_PER_KEY; k++) {
		int len = 0;

		for (int i = 0; i < IDS_PER_KEY; i++)
			len += snprintf(val + len, sizeof(val) - (size_t)len, "%llx ",
					(unsigned long long)mine[k * IDS_PER_KEY + i]);
		snprintf(key, sizeof(key), "ids-%u-%d", cf_domain(), k);
		cf_put(key, "%s", val);
	}
	n = 0;
	for (uint32_t dom = 0; dom <= 2; dom++) {
		for (int k = 0; k < IDS_PER_DOM / IDS_PER_KEY; k++) {
			const char *p;

			snprintf(key, sizeof(key), "ids-%u-%d", dom, k);
			p = cf_get(key);
			for (int i = 0; i < IDS_PER_KEY; i++) {
				char *end;

				all[n++] = strtoull(p, &end, 16);
				CHECK(end != p);
				p = end;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		CHECK(all[i] != 0);
		for (int j = i + 1; j < n; j++) {
			if (all[i] == all[j])
				cf_fail(__FILE__, __LINE__, "timeline id %#llx handed out twice",
					(unsigned long long)all[i]);
		}
	}
	cf_barrier("done");
}

CF_CASE(c06_timeline_ids_unique_never_reused, {0, ids_role}, {1, ids_role}, {2, ids_role})

/* ---- c08_importers_see_points_in_order (test_it_fence_conformance c08) ----------------------
 * vm1 advances a timeline of ORDER_POINTS points in random steps (failures mixed in); two
 * observers in the other domains hold every point open (opened in a shuffled order) and keep
 * checking, highest first, that completion is a prefix; their FENCE events for the timeline
 * arrive in increasing value order. The owner moves a round at a time and the observers take
 * snapshots while it moves, until the round's last point completed, so they see intermediate
 * states however slow the target. (The original has 1000 points: 500 keep a guest's fds well
 * under its limit.) */
#define ORDER_POINTS 500
#define ORDER_ROUND  20

static void order_signaller(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	uint64_t v = 0, seed = 0x0bde7;
	char key[16];

	for (int r = 0; r < ORDER_POINTS / ORDER_ROUND; r++) {
		uint64_t target = (uint64_t)(r + 1) * ORDER_ROUND;

		snprintf(key, sizeof(key), "r%d", r);
		cf_barrier(key);
		while (v < target) {
			uint64_t x = lcg(&seed) % 16, step = x < 8 ? 1 : x < 14 ? 1 + x : 40;

			v = v + step > target ? target : v + step;
			if (x == 3)
				CHECK_EQ(hb_timeline_fail(t, v, -EIO), 0);
			else
				CHECK_EQ(hb_timeline_signal(t, v), 0);
		}
	}
	cf_barrier("done");
	hb_timeline_destroy(t);
}

struct order_obs {
	struct hb_client *c;
	uint64_t tl, last_ev, snapshots;
	struct hb_sync *s[ORDER_POINTS + 1];
};

static void order_snapshot(struct order_obs *o)
{
	struct hb_event ev;
	struct hb_fence f;
	int highest = 0;

	CHECK(hb_dispatch(o->c, 1) >= 0);
	while (hb_next_event(o->c, &ev) == 0) {
		if (ev.type != HB_EVENT_FENCE || hb_event_fence(&ev, &f) != 0 ||
		    f.timeline != o->tl)
			continue;
		if (f.value <= o->last_ev)
			cf_fail(__FILE__, __LINE__, "event for %llu after %llu",
				(unsigned long long)f.value, (unsigned long long)o->last_ev);
		o->last_ev = f.value;
	}
	/* Highest first: once a point is seen complete, every lower one must be. */
	for (int i = ORDER_POINTS; i >= 1; i--) {
		int st = hb_sync_status(o->s[i]);

		if (st != 0 && !highest)
			highest = i;
		if (st == 0 && highest)
			cf_fail(__FILE__, __LINE__, "point %d pending while %d is complete", i,
				highest);
	}
	o->snapshots++;
}

static void order_observer(void)
{
	static struct order_obs o;
	static int perm[ORDER_POINTS + 1];
	uint64_t seed = 17 + cf_domain();
	char key[16];

	o.c = cf_connect();
	o.tl = cf_get_u64("tl");
	for (int i = 1; i <= ORDER_POINTS; i++)
		perm[i] = i;
	for (int i = ORDER_POINTS; i > 1; i--) {
		int j = 1 + (int)(lcg(&seed) % (uint64_t)i), x = perm[i];

		perm[i] = perm[j];
		perm[j] = x;
	}
	/* Opened in a shuffled order: value order must not come from opening order. */
	for (int i = 1; i <= ORDER_POINTS; i++)
		o.s[perm[i]] = CF_OPEN(o.c, o.tl, (uint64_t)perm[i]);
	for (int r = 0; r < ORDER_POINTS / ORDER_ROUND; r++) {
		struct hb_sync *last = o.s[(r + 1) * ORDER_ROUND];
		uint64_t end;

		snprintf(key, sizeof(key), "r%d", r);
		cf_barrier(key);
		end = ms_now() + CF_WAIT_MS;
		while (hb_sync_status(last) == 0) {
			order_snapshot(&o);
			if (ms_now() > end)
				cf_fail(__FILE__, __LINE__, "point %d never completed",
					(r + 1) * ORDER_ROUND);
		}
		order_snapshot(&o);
	}
	printf("domain %u: %llu consistent snapshots\n", cf_domain(),
	       (unsigned long long)o.snapshots);
	for (int i = 1; i <= ORDER_POINTS; i++)
		hb_sync_close(o.s[i]);
	cf_barrier("done");
}

CF_CASE(c08_importers_see_points_in_order, {1, order_signaller}, {2, order_observer},
	{0, order_observer})

/* ---- c11_error_completion_is_ready_not_pollerr (test_it_fence_conformance c11) --------------
 * An error completion is a completion: the fd says POLLIN (never POLLERR or POLLHUP), the wait
 * returns 0, wait_any counts it; only the status tells the error. */
static void perr_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_fail(t, 1, -EPROTO), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void perr_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s = CF_OPEN(c, tl, 1), *v[2] = {CF_OPEN(c, tl, 2), s};
	struct pollfd p;
	size_t idx = 99;

	cf_barrier("opened");
	CF_WAIT_DONE(s);
	p.fd = hb_sync_fd(s);
	p.events = POLLIN | POLLOUT | POLLPRI;
	p.revents = 0;
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLIN);
	CHECK_EQ(hb_sync_wait_any(v, 2, 0, &idx), 0);
	CHECK_EQ(idx, 1);
	CHECK_EQ(hb_sync_status(s), -EPROTO);
	CHECK_EQ(hb_sync_status(v[0]), 0);
	hb_sync_close(s);
	hb_sync_close(v[0]);
	cf_barrier("done");
}

CF_CASE(c11_error_completion_is_ready_not_pollerr, {1, perr_owner}, {2, perr_waiter})

/* ---- c13_status_encoding_member_and_aggregate (test_it_fence_conformance c13) ---------------
 * A merge is 0 while any member is pending, even if another already failed; once all are
 * done, the first error in time, whatever the member order; else 1. Owners: vm1 (A) and the
 * host (C, the original's vm3); the waiter vm2. */
static void enc_owner(void)
{
	struct hb_client *c = cf_connect();
	bool a = cf_domain() == 1;
	struct hb_timeline *t = cf_timeline_for(c, a ? "tl-a" : "tl-c");

	cf_barrier("opened");
	if (a)
		CHECK_EQ(hb_timeline_fail(t, 1, -EIO), 0); /* first in time */
	cf_barrier("a-failed");
	cf_barrier("checked");
	if (!a)
		CHECK_EQ(hb_timeline_fail(t, 1, -ENOENT), 0); /* second in time */
	cf_barrier("c-failed");
	if (a)
		CHECK_EQ(hb_timeline_signal(t, 2), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void enc_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t ta = cf_get_u64("tl-a"), tc = cf_get_u64("tl-c");
	struct hb_sync *a1 = CF_OPEN(c, ta, 1), *a2 = CF_OPEN(c, ta, 2), *c1 = CF_OPEN(c, tc, 1);
	struct hb_sync *ab = CF_MERGE(a1, c1), *ba = CF_MERGE(c1, a1), *okm = CF_MERGE(a2, a2);

	CHECK_EQ(hb_sync_status(ab), 0);
	CHECK_EQ(hb_sync_status(ba), 0);
	cf_barrier("opened");
	cf_barrier("a-failed");
	CF_WAIT_DONE(a1);
	CHECK_EQ(hb_sync_status(a1), -EIO);
	/* c1 still pending (C fails it after "checked"): both merges pending. */
	CHECK_ERR(hb_sync_wait(ab, 0), ETIME);
	CHECK_ERR(hb_sync_wait(ba, 0), ETIME);
	CHECK_EQ(hb_sync_status(ab), 0);
	CHECK_EQ(hb_sync_status(ba), 0);
	cf_barrier("checked");
	cf_barrier("c-failed");
	CF_WAIT_DONE(c1);
	CHECK_EQ(hb_sync_status(c1), -ENOENT);
	CF_WAIT_DONE(ab);
	CF_WAIT_DONE(ba);
	CHECK_EQ(hb_sync_status(ab), -EIO);
	CHECK_EQ(hb_sync_status(ba), -EIO);
	CF_WAIT_DONE(okm);
	CHECK_EQ(hb_sync_status(okm), 1);
	CHECK_EQ(hb_sync_status(a2), 1);
	hb_sync_close(a1);
	hb_sync_close(a2);
	hb_sync_close(c1);
	hb_sync_close(ab);
	hb_sync_close(ba);
	hb_sync_close(okm);
	cf_barrier("done");
}

CF_CASE(c13_status_encoding_member_and_aggregate, {1, enc_owner}, {0, enc_owner}, {2, enc_waiter})

/* ---- c14_wait_timeouts (test_it_fence_conformance c14) --------------------------------------
 * wait(0) never blocks; wait(T) on a pending fence times out, not before T; wait(-1) returns
 * once the fence is signalled, and so does a long timeout; other negative timeouts are
 * EINVAL. (The original's upper bounds on the times are left out: no timed asserts.) */
static void tmo_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("forever");
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("long");
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void tmo_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl"), t0;
	struct hb_sync *s = CF_OPEN(c, tl, 1), *s2 = CF_OPEN(c, tl, 2);

	for (int i = 0; i < 50; i++)
		CHECK_ERR(hb_sync_wait(s, 0), ETIME);
	t0 = ms_now();
	CHECK_ERR(hb_sync_wait(s, 300), ETIME);
	CHECK(ms_now() - t0 >= 300);
	CHECK_ERR(hb_sync_wait(s, -2), EINVAL);
	CHECK_ERR(hb_sync_wait(NULL, 0), EINVAL);
	CHECK_EQ(hb_sync_status(s), 0);
	cf_barrier("forever");
	CHECK_EQ(hb_sync_wait(s, -1), 0);
	CHECK_EQ(hb_sync_status(s), 1);
	cf_barrier("long");
	/* Returns 0 only if woken: without the notification it would time out after 60 s. */
	CHECK_EQ(hb_sync_wait(s2, 60000), 0);
	CHECK_EQ(hb_sync_status(s2), 1);
	hb_sync_close(s);
	hb_sync_close(s2);
	cf_barrier("done");
}

CF_CASE(c14_wait_timeouts, {1, tmo_owner}, {2, tmo_waiter})

/* ---- c15_interrupted_wait_is_restartable (test_it_fence_conformance c15) --------------------
 * Signals delivered during waits: hb_sync_wait returns EINTR or ETIME, never completion, and
 * the fence is unchanged; hb_begin_cpu_access on a buffer with a pending WRITE fence returns
 * EINTR, EAGAIN or ETIME; retries complete once the owner signals. */
static volatile sig_atomic_t intr_hits;
static volatile int intr_stop;

static void intr_handler(int sig)
{
	(void)sig;
	intr_hits++;
}

static void *intr_storm(void *p)
{
	pthread_t target = *(pthread_t *)p;

	while (!intr_stop) {
		pthread_kill(target, SIGUSR1);
		cf_sleep_ms(15); /* a rate, not a wait for anything */
	}
	return NULL;
}

static void intr_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl"), *tw = hb_timeline_create(c);
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_fence f;
	struct hb_id id;

	CHECK(tw != NULL);
	CF_EXPORT(b, NULL, 0, &id);
	f = (struct hb_fence){.timeline = hb_timeline_id(tw), .value = 1};
	CHECK_EQ(hb_attach_fence(c, &id, &f, HB_ACCESS_WRITE), 0);
	cf_put_id("id", &id);
	cf_barrier("stormed");
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	CHECK_EQ(hb_timeline_signal(tw, 1), 0);
	cf_barrier("done");
	hb_buffer_free(b);
	hb_timeline_destroy(tw);
	hb_timeline_destroy(t);
}

static void intr_waiter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *s = CF_OPEN(c, cf_get_u64("tl"), 1);
	pthread_t self = pthread_self(), th;
	struct sigaction sa;
	struct hb_id id;
	uint64_t end;

	cf_get_id("id", &id);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = intr_handler; /* no SA_RESTART: poll() inside may see EINTR */
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	CHECK(pthread_create(&th, NULL, intr_storm, &self) == 0);
	end = ms_now() + 1500;
	while (ms_now() < end) {
		errno = 0;
		if (hb_sync_wait(s, 200) == 0)
			cf_fail(__FILE__, __LINE__, "an unsignalled fence's wait returned 0");
		CHECK(errno == EINTR || errno == ETIME);
		CHECK_EQ(hb_sync_status(s), 0);
		errno = 0;
		CHECK_EQ(hb_begin_cpu_access(c, &id, HB_ACCESS_READ, 100), -1);
		CHECK(errno == EINTR || errno == EAGAIN || errno == ETIME);
	}
	intr_stop = 1;
	CHECK(pthread_join(th, NULL) == 0);
	sa.sa_handler = SIG_IGN;
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	CHECK(intr_hits > 0);
	cf_barrier("stormed");
	CF_WAIT_DONE(s);
	CHECK_EQ(hb_sync_status(s), 1);
	CHECK_EQ(hb_begin_cpu_access(c, &id, HB_ACCESS_READ, CF_WAIT_MS), 0);
	CHECK_EQ(hb_end_cpu_access(c, &id, HB_ACCESS_READ), 0);
	hb_sync_close(s);
	cf_barrier("done");
}

CF_CASE(c15_interrupted_wait_is_restartable, {1, intr_owner}, {2, intr_waiter})

/* ---- c16_wait_any (test_it_fence_conformance c16) -------------------------------------------
 * None complete: ETIME, not before the timeout; one completing later: its index; several
 * complete: 0 at once with the lowest such index; n == 0 or a NULL entry: EINVAL. (The
 * original mixes two clients' handles: two clients in one domain, which a guest has not.) */
static void any_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("two");
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	cf_barrier("eight");
	CHECK_EQ(hb_timeline_signal(t, 8), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void any_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl"), t0;
	struct hb_sync *v[5], *w[2];
	size_t idx = 99;

	/* v[i] = point 10 - 2i: v[4] = 2, v[3] = 4, ... v[0] = 10. */
	for (int i = 0; i < 5; i++)
		v[i] = CF_OPEN(c, tl, 10 - 2 * (uint64_t)i);
	t0 = ms_now();
	CHECK_ERR(hb_sync_wait_any(v, 5, 200, &idx), ETIME);
	CHECK(ms_now() - t0 >= 200);
	CHECK_ERR(hb_sync_wait_any(v, 5, 0, &idx), ETIME);
	CHECK_ERR(hb_sync_wait_any(v, 0, 0, &idx), EINVAL);
	w[0] = v[0];
	w[1] = NULL;
	CHECK_ERR(hb_sync_wait_any(w, 2, 0, &idx), EINVAL);
	cf_barrier("two");
	CHECK_EQ(hb_sync_wait_any(v, 5, CF_WAIT_MS, &idx), 0);
	CHECK_EQ(idx, 4);
	cf_barrier("eight");
	CF_WAIT_DONE(v[1]);
	CF_WAIT_DONE(v[2]);
	idx = 99;
	CHECK_EQ(hb_sync_wait_any(v, 5, 0, &idx), 0);
	CHECK_EQ(idx, 1);
	CHECK_EQ(hb_sync_wait_any(v + 2, 3, -1, &idx), 0);
	CHECK_EQ(idx, 0);
	CHECK_EQ(hb_sync_status(v[0]), 0);
	for (int i = 0; i < 5; i++)
		hb_sync_close(v[i]);
	cf_barrier("done");
}

CF_CASE(c16_wait_any, {1, any_owner}, {2, any_waiter})
