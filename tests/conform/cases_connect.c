/*
 * Conformance cases: a client's own domain, its fd and hb_dispatch (ported from
 * test_it_connect; docs/TESTING.md lists them). What the library does over each target's
 * transport: a unix socket on the host and emulated, a virtio port in a KVM guest. Written
 * once for every target (tests/conform/conform.h).
 */
#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "tests/conform/conform.h"

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* ---- self_domain (test_it_connect) ----------------------------------------------------------
 * hb_self_domain is the domain the client speaks for, in every domain. (The original's second
 * vm1 session: two clients in a guest.) */
static void self_role(void)
{
	struct hb_client *c = cf_connect();

	CHECK_EQ(hb_self_domain(c), cf_domain());
}

CF_CASE(self_domain, {0, self_role}, {1, self_role}, {2, self_role})

/* ---- get_fd_pollable (test_it_connect) ------------------------------------------------------
 * hb_get_fd is stable and polls readable when an event is on its way, and not once
 * hb_dispatch handled it. */
static void pollable_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;
	struct hb_id id;

	CHECK(hb_get_fd(c) >= 0);
	cf_barrier("quiet");
	b = CF_ALLOC(c, 2, 100, 0);
	CF_EXPORT(b, "x", 1, &id);
	cf_put_id("id", &id);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void pollable_peer(void)
{
	struct hb_client *c = cf_connect();
	int fd = hb_get_fd(c);
	struct hb_event ev;
	struct hb_id id;

	CHECK(fd >= 0);
	CHECK_EQ(hb_get_fd(c), fd);
	cf_drain(c);
	CHECK(!readable(fd, 100));
	cf_barrier("quiet");
	CHECK(readable(fd, CF_WAIT_MS));
	CHECK(hb_dispatch(c, 0) >= 1);
	CHECK_EQ(hb_next_event(c, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	cf_get_id("id", &id);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_next_event(c, &ev), EAGAIN);
	CHECK(!readable(fd, 100));
	cf_barrier("done");
}

CF_CASE(get_fd_pollable, {1, pollable_exporter}, {2, pollable_peer})

/* ---- dispatch_timeouts_and_counts (test_it_connect) -----------------------------------------
 * With nothing to do hb_dispatch(0) returns 0 and a timeout waits (not less, with the
 * original's slack); three events are three messages handled, in whatever number of calls;
 * -1 waits until something comes. (Its upper bounds on times are left out.) */
static void counts_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b[4];
	struct hb_id id;

	cf_barrier("idle");
	for (int i = 0; i < 3; i++) {
		b[i] = CF_ALLOC(c, 2, 4096, 0);
		CF_EXPORT(b[i], NULL, 0, &id);
	}
	cf_barrier("counted");
	b[3] = CF_ALLOC(c, 2, 4096, 0);
	CF_EXPORT(b[3], NULL, 0, &id);
	cf_put_id("last", &id);
	cf_barrier("done");
	for (int i = 0; i < 4; i++)
		hb_buffer_free(b[i]);
}

static void counts_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_event ev;
	struct hb_id id;
	uint64_t t0;
	int total = 0;

	cf_drain(c);
	CHECK_EQ(hb_dispatch(c, 0), 0);
	t0 = ms_now();
	CHECK_EQ(hb_dispatch(c, 150), 0);
	CHECK(ms_now() - t0 >= 140);
	CHECK_ERR(hb_next_event(c, &ev), EAGAIN);
	cf_barrier("idle");
	t0 = ms_now();
	while (total < 3 && ms_now() - t0 < CF_WAIT_MS) {
		int n = hb_dispatch(c, 500);

		CHECK(n >= 0);
		total += n;
	}
	CHECK_EQ(total, 3);
	CHECK_EQ(hb_dispatch(c, 50), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(hb_next_event(c, &ev), 0);
		CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	}
	CHECK_ERR(hb_next_event(c, &ev), EAGAIN);
	cf_barrier("counted");
	CHECK(hb_dispatch(c, -1) >= 1);
	CHECK_EQ(hb_next_event(c, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	cf_get_id("last", &id);
	CHECK(hb_id_equal(&ev.id, &id));
	cf_barrier("done");
}

CF_CASE(dispatch_timeouts_and_counts, {1, counts_exporter}, {2, counts_peer})

/* ---- client_shared_by_threads (test_it_connect) ---------------------------------------------
 * "One struct hb_client may be used from several threads; calls on it are serialised": four
 * threads of vm1's role share and free buffers on its one client while a fifth dispatches;
 * vm2 hears every EXPORTED and UNEXPORTED. 4 x 20 rounds: 160 events stay within the default
 * queue; client_shared_by_threads_full is the original's 4 x 40 on a daemon of event_queue =
 * 4096 (the config variant "queues"). */
#define SHARE_THREADS 4

static int share_rounds = 20;

struct worker {
	struct hb_client *c;
	int index;
	int *stop;
	int failures;
	char why[120];
};

static void *share_worker(void *p)
{
	struct worker *w = p;

	for (int i = 0; i < share_rounds; i++) {
		size_t size = 4096 * (size_t)(1 + (i + w->index) % 4) + (size_t)w->index;
		struct hb_buffer *b = hb_buffer_alloc(w->c, 2, size, 0);
		struct hb_info info;
		struct hb_id id;

		if (!b) {
			snprintf(w->why, sizeof(w->why), "alloc: %s", strerror(errno));
			w->failures++;
			continue;
		}
		cf_fill(hb_buffer_data(b), size, (uint64_t)(w->index * 1000 + i));
		if (hb_export(b, &i, sizeof(i), 0, &id) != 0) {
			snprintf(w->why, sizeof(w->why), "export: %s", strerror(errno));
			w->failures++;
		} else if (hb_query(w->c, &id, &info) != 0 || info.size != size ||
			   info.meta_len != sizeof(i)) {
			snprintf(w->why, sizeof(w->why), "query: %s", strerror(errno));
			w->failures++;
		}
		hb_buffer_free(b);
	}
	return NULL;
}

static void *dispatch_worker(void *p)
{
	struct worker *w = p;
	struct hb_event ev;

	while (!__atomic_load_n(w->stop, __ATOMIC_ACQUIRE)) {
		if (hb_dispatch(w->c, 5) < 0) {
			snprintf(w->why, sizeof(w->why), "dispatch: %s", strerror(errno));
			w->failures++;
			break;
		}
		while (hb_next_event(w->c, &ev) == 0)
			;
	}
	return NULL;
}

static void threads_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct worker w[SHARE_THREADS + 1];
	pthread_t t[SHARE_THREADS + 1];
	int stop = 0;

	cf_barrier("listening");
	for (int i = 0; i <= SHARE_THREADS; i++) {
		w[i] = (struct worker){.c = c, .index = i, .stop = &stop};
		CHECK(pthread_create(&t[i], NULL,
				     i < SHARE_THREADS ? share_worker : dispatch_worker,
				     &w[i]) == 0);
	}
	for (int i = 0; i < SHARE_THREADS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	CHECK(pthread_join(t[SHARE_THREADS], NULL) == 0);
	for (int i = 0; i <= SHARE_THREADS; i++) {
		if (w[i].failures)
			cf_fail(__FILE__, __LINE__, "thread %d: %d failures, last: %s", i,
				w[i].failures, w[i].why);
	}
	cf_barrier("done");
}

static void threads_vm2(void)
{
	struct hb_client *c = cf_connect();
	int exported = 0, unexported = 0;
	struct hb_event ev;

	cf_drain(c);
	cf_barrier("listening");
	while (exported < SHARE_THREADS * share_rounds ||
	       unexported < SHARE_THREADS * share_rounds) {
		if (cf_next_event_at(__FILE__, __LINE__, c, &ev, CF_WAIT_MS) != 0)
			cf_fail(__FILE__, __LINE__, "heard %d EXPORTED and %d UNEXPORTED of %d",
				exported, unexported, SHARE_THREADS * share_rounds);
		CHECK(ev.type == HB_EVENT_EXPORTED || ev.type == HB_EVENT_UNEXPORTED);
		ev.type == HB_EVENT_EXPORTED ? exported++ : unexported++;
	}
	cf_barrier("done");
}

CF_CASE(client_shared_by_threads, {1, threads_vm1}, {2, threads_vm2})

static void threads_vm1_full(void)
{
	share_rounds = 40;
	threads_vm1();
}

static void threads_vm2_full(void)
{
	share_rounds = 40;
	threads_vm2();
}

CF_CASE_IN("queues", client_shared_by_threads_full, {1, threads_vm1_full}, {2, threads_vm2_full})
