/*
 * Conformance cases: fence merges and handles (ported from test_it_fence_conformance c18,
 * c19, c22, c24-c26; docs/TESTING.md lists them). Written once for every target
 * (tests/conform/conform.h). Owners pass their timelines' ids on the side channel; "not yet"
 * checks come after a point the waiter saw complete (CF_REACHED) or before the owner could
 * act.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "tests/conform/conform.h"

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- c18_merge_is_union_inputs_unchanged (test_it_fence_conformance c18) --------------------
 * A merge completes only once every member has, across three timelines of three domains (vm1's
 * A, the host's C, the waiter's own); the inputs stay valid and unchanged (their fds and
 * statuses), and closing the merges leaves them alone. */
static void union_owner(void)
{
	struct hb_client *c = cf_connect();
	bool a = cf_domain() == 1;
	struct hb_timeline *t = cf_timeline_for(c, a ? "tl-a" : "tl-c");

	cf_barrier("opened");
	if (a)
		CHECK_EQ(hb_timeline_signal(t, 4), 0);
	cf_barrier("a");
	cf_barrier("own");
	if (!a)
		CHECK_EQ(hb_timeline_signal(t, 4), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void union_waiter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *tb = hb_timeline_create(c);
	struct hb_sync *a, *cc, *own, *m1, *m;
	int fda, fdc;

	CHECK(tb != NULL);
	a = CF_OPEN(c, cf_get_u64("tl-a"), 4);
	cc = CF_OPEN(c, cf_get_u64("tl-c"), 4);
	own = CF_OPEN(c, hb_timeline_id(tb), 4);
	fda = hb_sync_fd(a);
	fdc = hb_sync_fd(cc);
	m1 = CF_MERGE(a, cc);
	m = CF_MERGE(m1, own);
	CHECK_EQ(hb_sync_fd(a), fda);
	CHECK_EQ(hb_sync_fd(cc), fdc);
	cf_barrier("opened");
	cf_barrier("a");
	CF_WAIT_DONE(a);
	CHECK_ERR(hb_sync_wait(m1, 0), ETIME);
	CHECK_ERR(hb_sync_wait(m, 0), ETIME);
	CHECK_EQ(hb_sync_status(cc), 0);
	CHECK_EQ(hb_timeline_signal(tb, 4), 0);
	CF_WAIT_DONE(own);
	CHECK_ERR(hb_sync_wait(m, 0), ETIME);
	cf_barrier("own");
	CF_WAIT_DONE(m);
	CHECK_EQ(hb_sync_status(m), 1);
	CHECK_EQ(hb_sync_status(m1), 1);
	CHECK_EQ(hb_sync_fd(a), fda);
	CHECK_EQ(hb_sync_status(a), 1);
	CHECK_EQ(hb_sync_status(cc), 1);
	CHECK(fcntl(fda, F_GETFD) >= 0 && fcntl(fdc, F_GETFD) >= 0);
	hb_sync_close(m);
	hb_sync_close(m1);
	CHECK(fcntl(fda, F_GETFD) >= 0);
	CHECK_EQ(hb_sync_wait(a, 0), 0);
	hb_sync_close(a);
	hb_sync_close(cc);
	hb_sync_close(own);
	hb_timeline_destroy(tb);
	cf_barrier("done");
}

CF_CASE(c18_merge_is_union_inputs_unchanged, {1, union_owner}, {0, union_owner}, {2, union_waiter})

/* ---- c19_same_timeline_collapses_to_latest (test_it_fence_conformance c19) ------------------
 * A merge of points 1..200 of vm1's timeline (merged in a shuffled order) with point 7 of the
 * host's depends on exactly vm1's 200 and the host's 7: vm1 at 199 with the host's done, it is
 * pending; vm1 at 200, complete. */
static void latest_owner(void)
{
	struct hb_client *c = cf_connect();
	bool a = cf_domain() == 1;
	struct hb_timeline *t = cf_timeline_for(c, a ? "tl-a" : "tl-c");

	cf_barrier("built");
	CHECK_EQ(hb_timeline_signal(t, a ? 199 : 7), 0);
	cf_barrier("most");
	cf_barrier("checked");
	if (a)
		CHECK_EQ(hb_timeline_signal(t, 200), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void latest_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t ta = cf_get_u64("tl-a"), tc = cf_get_u64("tl-c"), seed = 19;
	struct hb_sync *m = NULL, *s, *n;

	for (int i = 0; i < 200; i++) {
		uint64_t v;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		v = i == 100 ? 200 : 1 + (seed >> 33) % 199;
		s = CF_OPEN(c, ta, v);
		if (!m) {
			m = s;
			continue;
		}
		n = CF_MERGE(i % 2 ? m : s, i % 2 ? s : m);
		hb_sync_close(m);
		hb_sync_close(s);
		m = n;
	}
	s = CF_OPEN(c, tc, 7);
	n = CF_MERGE(m, s);
	hb_sync_close(s);
	hb_sync_close(m);
	m = n;
	cf_barrier("built");
	cf_barrier("most");
	CF_REACHED(c, tc, 7);
	CF_REACHED(c, ta, 199);
	CHECK_ERR(hb_sync_wait(m, 0), ETIME);
	cf_barrier("checked");
	CF_WAIT_DONE(m);
	CHECK_EQ(hb_sync_status(m), 1);
	hb_sync_close(m);
	cf_barrier("done");
}

CF_CASE(c19_same_timeline_collapses_to_latest, {1, latest_owner}, {0, latest_owner},
	{2, latest_waiter})

/* ---- c22_status_query_makes_progress_and_agrees_with_fd (test_it_fence_conformance c22) -----
 * A busy-wait on hb_sync_status alone (no hb_dispatch, no hb_sync_wait) sees the completion,
 * and the status agrees with the fd at every step (0 <=> not readable). */
#define PROGRESS_POINTS 20

static void prog_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	char key[16];

	for (int i = 0; i < PROGRESS_POINTS; i++) {
		snprintf(key, sizeof(key), "p%d", i);
		cf_barrier(key);
		if (i % 3 == 2)
			CHECK_EQ(hb_timeline_fail(t, (uint64_t)i + 1, -EAGAIN), 0);
		else
			CHECK_EQ(hb_timeline_signal(t, (uint64_t)i + 1), 0);
	}
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void prog_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s[PROGRESS_POINTS];
	char key[16];

	for (int i = 0; i < PROGRESS_POINTS; i++)
		s[i] = CF_OPEN(c, tl, (uint64_t)i + 1);
	for (int i = 0; i < PROGRESS_POINTS; i++) {
		uint64_t end;

		snprintf(key, sizeof(key), "p%d", i);
		cf_barrier(key);
		end = ms_now() + CF_WAIT_MS;
		while (hb_sync_status(s[i]) == 0) {
			if (ms_now() > end)
				cf_fail(__FILE__, __LINE__,
					"point %d: the status alone never made progress", i + 1);
		}
		for (int k = 0; k < PROGRESS_POINTS; k++) {
			int st = hb_sync_status(s[k]);

			CHECK_EQ(cf_fd_ready(s[k]), st != 0);
			if (k <= i)
				CHECK_EQ(st, k % 3 == 2 ? -EAGAIN : 1);
		}
	}
	for (int i = 0; i < PROGRESS_POINTS; i++)
		hb_sync_close(s[i]);
	cf_barrier("done");
}

CF_CASE(c22_status_query_makes_progress_and_agrees_with_fd, {1, prog_owner}, {2, prog_waiter})

/* ---- c24_close_is_local_and_leaks_nothing (test_it_fence_conformance c24) -------------------
 * Closing one handle of vm2's affects nobody else: its second handle, the host's and the
 * owner's own still complete. Pending handles closed, then their timeline destroyed, leave
 * nothing behind (the hub's counters after the case, the daemon's leak check at exit). */
static void close_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl"), *t2;
	struct hb_sync *sa = CF_OPEN(c, hb_timeline_id(t), 2);

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	CF_WAIT_DONE(sa);
	CHECK_EQ(hb_sync_status(sa), 1);
	hb_sync_close(sa);
	t2 = cf_timeline_for(c, "tl2");
	cf_barrier("pending-closed");
	hb_timeline_destroy(t2);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void close_b(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s1 = CF_OPEN(c, tl, 2), *s2 = CF_OPEN(c, tl, 2), *many[100];

	hb_sync_close(s1);
	cf_barrier("opened");
	CF_WAIT_DONE(s2);
	CHECK_EQ(hb_sync_status(s2), 1);
	hb_sync_close(s2);
	tl = cf_get_u64("tl2");
	for (int i = 0; i < 100; i++)
		many[i] = CF_OPEN(c, tl, 10 + (uint64_t)(i % 7));
	for (int i = 0; i < 100; i++)
		hb_sync_close(many[i]);
	cf_barrier("pending-closed");
	cf_barrier("done");
}

static void close_c(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *sc = CF_OPEN(c, cf_get_u64("tl"), 2);

	cf_barrier("opened");
	CF_WAIT_DONE(sc);
	CHECK_EQ(hb_sync_status(sc), 1);
	hb_sync_close(sc);
	cf_barrier("pending-closed");
	cf_barrier("done");
}

CF_CASE(c24_close_is_local_and_leaks_nothing, {1, close_owner}, {2, close_b}, {0, close_c})

/* ---- c25_fd_latched_many_pollers (test_it_fence_conformance c25) ----------------------------
 * The fd is latched and never read by the library: four threads in poll(), two epoll sets
 * (one edge-triggered) and two threads in hb_sync_wait on the same client all see it; it stays
 * readable through many later library calls. (The original sleeps to let the pollers block
 * first; here they may or may not have: either way each must see the completion.) */
struct poller {
	int fd;
	int epfd;          /* -1: plain poll, -2: hb_sync_wait on s */
	struct hb_sync *s; /* for -2 */
	int saw;
};

static void *poller_fn(void *p)
{
	struct poller *pl = p;

	if (pl->epfd == -2) {
		if (hb_sync_wait(pl->s, CF_WAIT_MS) == 0 && hb_sync_status(pl->s) == 1)
			pl->saw = 1;
	} else if (pl->epfd < 0) {
		struct pollfd q = {.fd = pl->fd, .events = POLLIN};

		if (poll(&q, 1, CF_WAIT_MS) == 1 && q.revents == POLLIN)
			pl->saw = 1;
	} else {
		struct epoll_event ev;

		if (epoll_wait(pl->epfd, &ev, 1, CF_WAIT_MS) == 1 && (ev.events & EPOLLIN) &&
		    !(ev.events & (EPOLLERR | EPOLLHUP)))
			pl->saw = 1;
	}
	return NULL;
}

static void latch_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	cf_barrier("polling");
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void latch_waiter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *s = CF_OPEN(c, cf_get_u64("tl"), 1);
	struct poller pl[8];
	pthread_t th[8];
	struct epoll_event ev;

	for (int i = 0; i < 8; i++) {
		pl[i] = (struct poller){.fd = hb_sync_fd(s), .epfd = i >= 6 ? -2 : -1, .s = s};
		if (i >= 4 && i < 6) {
			pl[i].epfd = epoll_create1(EPOLL_CLOEXEC);
			CHECK(pl[i].epfd >= 0);
			ev.events = EPOLLIN | (i == 5 ? EPOLLET : 0);
			ev.data.u64 = 0;
			CHECK(epoll_ctl(pl[i].epfd, EPOLL_CTL_ADD, pl[i].fd, &ev) == 0);
		}
		CHECK(pthread_create(&th[i], NULL, poller_fn, &pl[i]) == 0);
	}
	cf_barrier("polling");
	CF_WAIT_DONE(s); /* this thread reads the daemon's message */
	for (int i = 0; i < 8; i++) {
		CHECK(pthread_join(th[i], NULL) == 0);
		if (!pl[i].saw)
			cf_fail(__FILE__, __LINE__, "poller %d never saw POLLIN", i);
	}
	for (int k = 0; k < 50; k++) {
		CHECK(hb_dispatch(c, 0) >= 0);
		CHECK_EQ(hb_sync_status(s), 1);
		CHECK_EQ(hb_sync_wait(s, 0), 0);
		CHECK(cf_fd_ready(s));
	}
	/* Level-triggered epoll keeps reporting it. */
	CHECK_EQ(epoll_wait(pl[4].epfd, &ev, 1, 0), 1);
	CHECK_EQ(epoll_wait(pl[4].epfd, &ev, 1, 0), 1);
	close(pl[4].epfd);
	close(pl[5].epfd);
	hb_sync_close(s);
	cf_barrier("done");
}

CF_CASE(c25_fd_latched_many_pollers, {1, latch_owner}, {2, latch_waiter})

/* ---- c26_status_set_before_fd_readable (test_it_fence_conformance c26) ----------------------
 * A thread that polls only the fd and reads the status the moment it wakes always reads it
 * non-zero, the library driven by hb_dispatch in the role's main thread meanwhile. (100 rounds,
 * the original's 200 halved: a round is a barrier, slow in a guest.) */
#define LATCH_ROUNDS 100

struct early_arg {
	struct hb_sync *s;
	int done;
	int status;
};

static void *early_fn(void *p)
{
	struct early_arg *a = p;
	struct pollfd q = {.fd = hb_sync_fd(a->s), .events = POLLIN};

	if (poll(&q, 1, CF_WAIT_MS) == 1)
		a->status = hb_sync_status(a->s);
	else
		a->status = 1000; /* never woke */
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void early_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	char key[16];

	for (int i = 0; i < LATCH_ROUNDS; i++) {
		snprintf(key, sizeof(key), "r%d", i);
		cf_barrier(key);
		if (i % 2)
			CHECK_EQ(hb_timeline_signal(t, (uint64_t)i + 1), 0);
		else
			CHECK_EQ(hb_timeline_fail(t, (uint64_t)i + 1, -EIO), 0);
	}
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void early_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	char key[16];

	for (int i = 0; i < LATCH_ROUNDS; i++) {
		struct early_arg a = {.s = CF_OPEN(c, tl, (uint64_t)i + 1)};
		pthread_t th;

		CHECK(pthread_create(&th, NULL, early_fn, &a) == 0);
		snprintf(key, sizeof(key), "r%d", i);
		cf_barrier(key);
		while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
			CHECK(hb_dispatch(c, 5) >= 0);
		CHECK(pthread_join(th, NULL) == 0);
		if (a.status != (i % 2 ? 1 : -EIO))
			cf_fail(__FILE__, __LINE__, "round %d: woken poller read status %d", i,
				a.status);
		hb_sync_close(a.s);
	}
	cf_barrier("done");
}

CF_CASE(c26_status_set_before_fd_readable, {1, early_owner}, {2, early_waiter})
