/*
 * Conformance cases: the sync selftests' stress tests across domains (ported from
 * test_it_fence_selftests, whose comments say what each changes from the selftest; the shared
 * implementation there is tests/fence_stress.c; docs/TESTING.md lists them). Fewer rounds than
 * the originals: every target runs them, a guest under TCG among them.
 */
#include <fcntl.h>
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

/* ---- test_stress_two_threads_shared_timeline ------------------------------------------------
 * vm1 and vm2 alternate strictly on a plain (non-atomic) counter in a buffer vm1 exports to
 * vm2 writable: each waits for the other's point, requires the count so far inside a RW
 * CPU-access bracket, bumps it and signals its own timeline. Signal then wait must give
 * ordering and memory visibility. 1024 rounds (the original 8192, the selftest 65536). */
#define TWO_ROUNDS 1024

static void two_loop(struct hb_client *c, struct hb_timeline *mine, uint64_t theirs,
		     const struct hb_id *id, volatile uint64_t *counter, int side)
{
	for (unsigned i = 0; i < TWO_ROUNDS; i++) {
		struct hb_sync *s = CF_OPEN(c, theirs, side == 0 ? i : i + 1);
		struct hb_event ev;
		uint64_t v;

		if (side == 0 && i == 0)
			CHECK_EQ(hb_sync_status(s), 1); /* point 0 is born signalled */
		CF_WAIT_DONE(s);
		CHECK_EQ(hb_sync_status(s), 1);
		hb_sync_close(s);
		CHECK_EQ(hb_begin_cpu_access(c, id, HB_ACCESS_READ | HB_ACCESS_WRITE, CF_WAIT_MS),
			 0);
		v = *counter;
		if (v != 2ull * i + (uint64_t)side)
			cf_fail(__FILE__, __LINE__, "round %u (side %d): counter %llu, want %llu",
				i, side, (unsigned long long)v, 2ull * i + (uint64_t)side);
		*counter = v + 1;
		CHECK_EQ(hb_end_cpu_access(c, id, HB_ACCESS_READ | HB_ACCESS_WRITE), 0);
		CHECK_EQ(hb_timeline_signal(mine, i + 1), 0);
		while (hb_next_event(c, &ev) == 0)
			; /* a FENCE event per point: not needed here */
	}
}

static void two_a_to(uint32_t peer)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl-a");
	struct hb_buffer *b = CF_ALLOC(c, peer, 4096, HB_BUFFER_PEER_WRITABLE);
	struct hb_id id;

	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	two_loop(c, t, cf_get_u64("tl-b"), &id, hb_buffer_data(b), 0);
	cf_barrier("done"); /* B checks the final count itself */
	hb_timeline_destroy(t);
	hb_buffer_free(b);
}

static void two_b(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl-b");
	uint64_t ta = cf_get_u64("tl-a");
	struct hb_import *im;
	struct hb_id id;

	cf_get_id("id", &id);
	im = CF_IMPORT(c, &id, HB_IMPORT_WRITE);
	two_loop(c, t, ta, &id, hb_import_data(im), 1);
	/* A's last bump is its round TWO_ROUNDS - 1: once its point TWO_ROUNDS is reached, the
	 * count is final. */
	CF_REACHED(c, ta, TWO_ROUNDS);
	CHECK_EQ(hb_begin_cpu_access(c, &id, HB_ACCESS_READ, CF_WAIT_MS), 0);
	CHECK_EQ(*(volatile uint64_t *)hb_import_data(im), 2ull * TWO_ROUNDS);
	CHECK_EQ(hb_end_cpu_access(c, &id, HB_ACCESS_READ), 0);
	hb_import_release(im);
	hb_timeline_destroy(t);
	cf_barrier("done");
}

static void two_a(void)
{
	two_a_to(2);
}

CF_CASE(test_stress_two_threads_shared_timeline, {1, two_a}, {2, two_b})

/* ---- c40_two_party_ping_pong_host_vm1 (test_it_fence_stress c40) ----------------------------
 * The same ping-pong between vm1 and the host (the original: 4096 rounds). */
static void two_a_host(void)
{
	two_a_to(0);
}

CF_CASE(c40_two_party_ping_pong_host_vm1, {1, two_a_host}, {0, two_b})

/* ---- test_merge_stress_random_merge ---------------------------------------------------------
 * 32 timelines spread over three domains (i % 3: vm1, the host, vm2 itself); vm2 merges
 * random points of them into one fence, starting from point 0 of timeline 0 (born
 * signalled). Then timeline by timeline: the merge is pending; the timeline goes to just below
 * its largest point (still pending: the merge keeps the latest point of each timeline), then
 * to it. Finally complete. 4096 merges (the original 32 x 1024: every merge opens a point,
 * a round trip to the daemon, slow from a guest under TCG). */
#define MERGE_TIMELINES 32
#define MERGE_ROUNDS    4096

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

static uint32_t merge_owner_of(int i)
{
	static const uint32_t dom[3] = {1, 0, 2};

	return dom[i % 3];
}

/* Timelines of this role's domain: created, their ids put as "tl-<i>". */
static void merge_create(struct hb_client *c, struct hb_timeline **t)
{
	char key[32];

	for (int i = 0; i < MERGE_TIMELINES; i++) {
		t[i] = NULL;
		if (merge_owner_of(i) != cf_domain())
			continue;
		snprintf(key, sizeof(key), "tl-%d", i);
		t[i] = cf_timeline_for(c, key);
	}
}

/* The largest points, which vm2 puts in four keys ("max-0".."max-3", 8 each). */
#define MAX_PER_KEY 8

static void merge_get_max(uint64_t *maxv)
{
	char key[16];

	for (int k = 0; k < MERGE_TIMELINES / MAX_PER_KEY; k++) {
		const char *p;

		snprintf(key, sizeof(key), "max-%d", k);
		p = cf_get(key);
		for (int i = 0; i < MAX_PER_KEY; i++) {
			char *end;

			maxv[k * MAX_PER_KEY + i] = strtoull(p, &end, 16);
			CHECK(end != p);
			p = end;
		}
	}
}

static void merge_put_max(const uint64_t *maxv)
{
	char key[16];

	for (int k = 0; k < MERGE_TIMELINES / MAX_PER_KEY; k++) {
		char val[CF_VAL_MAX];
		int len = 0;

		for (int i = 0; i < MAX_PER_KEY; i++)
			len += snprintf(val + len, sizeof(val) - (size_t)len, "%llx ",
					(unsigned long long)maxv[k * MAX_PER_KEY + i]);
		snprintf(key, sizeof(key), "max-%d", k);
		cf_put(key, "%s", val);
	}
}

static void merge_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t[MERGE_TIMELINES];
	uint64_t maxv[MERGE_TIMELINES];
	char key[32];

	merge_create(c, t);
	merge_get_max(maxv);
	for (int i = 0; i < MERGE_TIMELINES; i++) {
		if (maxv[i] == 0)
			continue;
		snprintf(key, sizeof(key), "below-%d", i);
		cf_barrier(key);
		if (t[i])
			CHECK_EQ(hb_timeline_signal(t[i], maxv[i] - 1), 0);
		snprintf(key, sizeof(key), "top-%d", i);
		cf_barrier(key);
		if (t[i])
			CHECK_EQ(hb_timeline_signal(t[i], maxv[i]), 0);
	}
	cf_barrier("done");
	for (int i = 0; i < MERGE_TIMELINES; i++)
		hb_timeline_destroy(t[i]);
}

/* The merging: how many, points vmin + [0, vrange), merges of merges every 64 if nest. */
struct merge_cfg {
	unsigned rounds;
	uint64_t vmin, vrange;
	bool nest;
};
static const struct merge_cfg merge_selftest = {MERGE_ROUNDS, 0, 0x7fffffffu, false};
static const struct merge_cfg *merge_how = &merge_selftest;

static struct hb_sync *merge_build(struct hb_client *c, const uint64_t *id, uint64_t *maxv)
{
	uint64_t seed = 0x5eed0000u;
	struct hb_sync *acc = CF_OPEN(c, id[0], 0);

	CHECK_EQ(hb_sync_status(acc), 1); /* born signalled */
	for (unsigned r = 0; r < merge_how->rounds; r++) {
		int k = (int)(lcg(&seed) % MERGE_TIMELINES);
		uint64_t hi = lcg(&seed), lo = lcg(&seed);
		uint64_t v = merge_how->vmin + ((hi << 31 ^ lo) % merge_how->vrange);
		struct hb_sync *s = CF_OPEN(c, id[k], v), *n = CF_MERGE(acc, s);

		if (v > maxv[k])
			maxv[k] = v;
		hb_sync_close(acc);
		hb_sync_close(s);
		acc = n;
		if (merge_how->nest && r % 64 == 63) {
			struct hb_sync *self = CF_MERGE(acc, acc), *both = CF_MERGE(self, acc);

			hb_sync_close(acc);
			hb_sync_close(self);
			acc = both;
		}
		if (r % 512 == 0)
			cf_drain(c);
	}
	CHECK(fcntl(hb_sync_fd(acc), F_GETFD) >= 0);
	return acc;
}

static void merge_b(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t[MERGE_TIMELINES];
	uint64_t id[MERGE_TIMELINES], maxv[MERGE_TIMELINES] = {0};
	struct hb_sync *acc;
	char key[32];
	int prev = -1;

	merge_create(c, t);
	for (int i = 0; i < MERGE_TIMELINES; i++) {
		snprintf(key, sizeof(key), "tl-%d", i);
		id[i] = t[i] ? hb_timeline_id(t[i]) : cf_get_u64(key);
	}
	acc = merge_build(c, id, maxv);
	merge_put_max(maxv);
	for (int i = 0; i < MERGE_TIMELINES; i++) {
		if (maxv[i] == 0)
			continue;
		if (prev >= 0)
			CF_REACHED(c, id[prev], maxv[prev]);
		CHECK_ERR(hb_sync_wait(acc, 0), ETIME);
		snprintf(key, sizeof(key), "below-%d", i);
		cf_barrier(key);
		if (t[i])
			CHECK_EQ(hb_timeline_signal(t[i], maxv[i] - 1), 0);
		CF_REACHED(c, id[i], maxv[i] - 1);
		CHECK_ERR(hb_sync_wait(acc, 0), ETIME);
		CHECK_EQ(hb_sync_status(acc), 0);
		snprintf(key, sizeof(key), "top-%d", i);
		cf_barrier(key);
		if (t[i])
			CHECK_EQ(hb_timeline_signal(t[i], maxv[i]), 0);
		prev = i;
	}
	CF_WAIT_DONE(acc);
	CHECK_EQ(hb_sync_status(acc), 1);
	hb_sync_close(acc);
	cf_barrier("done");
	for (int i = 0; i < MERGE_TIMELINES; i++)
		hb_timeline_destroy(t[i]);
}

CF_CASE(test_merge_stress_random_merge, {1, merge_owner}, {0, merge_owner}, {2, merge_b})

/* ---- c42_random_merge_64bit_nested (test_it_fence_stress c42) -------------------------------
 * The same over points in [2^32, 2^32 + 2^62), with merges of merges every 64; 2048 merges
 * (the original 8192). */
static const struct merge_cfg merge_wide = {2048, 1ull << 32, 1ull << 62, true};

static void merge_b_wide(void)
{
	merge_how = &merge_wide;
	merge_b();
}

CF_CASE(c42_random_merge_64bit_nested, {1, merge_owner}, {0, merge_owner}, {2, merge_b_wide})

/* ---- test_consumer_stress_multi_producer_single_consumer ------------------------------------
 * A consumer (vm1) and five producers, three in vm2 and two on the host, each producer a
 * thread of its domain's role with a timeline of its own on the role's one client (a guest has
 * one port; the original's producers are processes). Each round the producers wait for the
 * consumer's point, bump a count and their slot in the buffer the consumer exports to their
 * domain (inside WRITE brackets), and signal; the consumer waits for the merge of the five
 * points and checks every count and slot inside READ brackets. Every participant alternates
 * the two wait styles (poll the sync fd with the client's; busy-poll the status). 256 rounds
 * (the original 4096). */
#define CONS_PRODUCERS 5
#define CONS_ROUNDS    256

struct cons_slots {
	uint64_t count;
	uint64_t slot[CONS_PRODUCERS];
};

/* Waits for s in one of two styles; its status (0: timed out, -1000: the fd said something
 * other than POLLIN). */
static int cons_wait(struct hb_client *c, struct hb_sync *s, int style)
{
	uint64_t end = ms_now() + CF_WAIT_MS;

	while (ms_now() < end) {
		if (style == 0) {
			struct pollfd p[2] = {{.fd = hb_sync_fd(s), .events = POLLIN},
					      {.fd = hb_get_fd(c), .events = POLLIN}};

			if (poll(p, 2, 100) < 0 && errno != EINTR)
				return 0;
			if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
				return -1000;
			if (p[0].revents & POLLIN)
				return hb_sync_status(s);
			if (p[1].revents && hb_dispatch(c, 0) < 0)
				return 0;
		} else if (hb_sync_status(s) != 0) {
			return hb_sync_status(s);
		}
	}
	return 0;
}

struct producer {
	struct hb_client *c;
	struct hb_timeline *t;
	const struct hb_id *id;
	volatile struct cons_slots *sl;
	uint64_t tlc;
	int k;
	char why[160];
};

static void *producer_fn(void *p)
{
	struct producer *pr = p;

	for (unsigned i = 0; i < CONS_ROUNDS; i++) {
		struct hb_fence f = {.timeline = pr->tlc, .value = i};
		struct hb_sync *s = hb_sync_open(pr->c, &f);
		int st = s ? cons_wait(pr->c, s, (int)((i + (unsigned)pr->k) % 2)) : -1;

		hb_sync_close(s);
		if (st != 1) {
			snprintf(pr->why, sizeof(pr->why), "round %u: consumer's point status %d",
				 i, st);
			return NULL;
		}
		if (hb_begin_cpu_access(pr->c, pr->id, HB_ACCESS_WRITE, CF_WAIT_MS) != 0) {
			snprintf(pr->why, sizeof(pr->why), "round %u: begin: %s", i,
				 strerror(errno));
			return NULL;
		}
		__atomic_fetch_add(&pr->sl->count, 1, __ATOMIC_RELAXED);
		pr->sl->slot[pr->k]++;
		if (hb_end_cpu_access(pr->c, pr->id, HB_ACCESS_WRITE) != 0 ||
		    hb_timeline_signal(pr->t, i + 1) != 0) {
			snprintf(pr->why, sizeof(pr->why), "round %u: end/signal: %s", i,
				 strerror(errno));
			return NULL;
		}
	}
	return NULL;
}

/* Producers k0 .. k0 + n - 1 of this domain, threads on one client. */
static void cons_producers(int k0, int n)
{
	struct hb_client *c = cf_connect();
	struct producer pr[3];
	pthread_t th[3];
	struct hb_import *im;
	struct hb_id id;
	char key[32];

	snprintf(key, sizeof(key), "hid-%u", cf_domain());
	cf_get_id(key, &id);
	im = CF_IMPORT(c, &id, HB_IMPORT_WRITE);
	for (int j = 0; j < n; j++) {
		snprintf(key, sizeof(key), "tl-p%d", k0 + j);
		pr[j] = (struct producer){.c = c,
					  .t = cf_timeline_for(c, key),
					  .id = &id,
					  .sl = hb_import_data(im),
					  .tlc = cf_get_u64("tl-c"),
					  .k = k0 + j};
	}
	for (int j = 0; j < n; j++)
		CHECK(pthread_create(&th[j], NULL, producer_fn, &pr[j]) == 0);
	for (int j = 0; j < n; j++) {
		CHECK(pthread_join(th[j], NULL) == 0);
		if (pr[j].why[0])
			cf_fail(__FILE__, __LINE__, "producer %d: %s", k0 + j, pr[j].why);
	}
	cf_barrier("done"); /* the consumer is done with our timelines */
	for (int j = 0; j < n; j++)
		hb_timeline_destroy(pr[j].t);
	hb_import_release(im);
}

static void cons_three(void)
{
	cons_producers(0, 3);
}

static void cons_two(void)
{
	cons_producers(3, 2);
}

/* Producer k counts in the buffer of its domain: 0-2 the first buffer's, 3-4 the second's. */
static void cons_check(struct hb_client *c, const struct hb_id *id, volatile struct cons_slots **sl,
		       unsigned it)
{
	for (int b = 0; b < 2; b++)
		CHECK_EQ(hb_begin_cpu_access(c, &id[b], HB_ACCESS_READ, CF_WAIT_MS), 0);
	if (sl[0]->count + sl[1]->count != 5ull * it)
		cf_fail(__FILE__, __LINE__, "round %u: count %llu + %llu, want %u", it,
			(unsigned long long)sl[0]->count, (unsigned long long)sl[1]->count, 5 * it);
	for (int k = 0; k < CONS_PRODUCERS; k++) {
		uint64_t v = sl[k < 3 ? 0 : 1]->slot[k];

		if (v != it)
			cf_fail(__FILE__, __LINE__, "round %u: producer %d's slot is %llu", it, k,
				(unsigned long long)v);
	}
	for (int b = 0; b < 2; b++)
		CHECK_EQ(hb_end_cpu_access(c, &id[b], HB_ACCESS_READ), 0);
}

/* The consumer, exporting a buffer to the three producers' domain and one to the two's. */
static void cons_consumer_for(uint32_t three, uint32_t two)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl-c");
	struct hb_buffer *buf[2];
	volatile struct cons_slots *sl[2];
	uint64_t tl[CONS_PRODUCERS];
	struct hb_id id[2];
	char key[32];

	for (int b = 0; b < 2; b++) {
		buf[b] = CF_ALLOC(c, b == 0 ? three : two, sizeof(struct cons_slots),
				  HB_BUFFER_PEER_WRITABLE);
		CF_EXPORT(buf[b], NULL, 0, &id[b]);
		sl[b] = hb_buffer_data(buf[b]);
		snprintf(key, sizeof(key), "hid-%u", b == 0 ? three : two);
		cf_put_id(key, &id[b]);
	}
	for (int k = 0; k < CONS_PRODUCERS; k++) {
		snprintf(key, sizeof(key), "tl-p%d", k);
		tl[k] = cf_get_u64(key);
	}
	for (unsigned it = 1; it <= CONS_ROUNDS; it++) {
		struct hb_sync *m = CF_OPEN(c, tl[0], it);
		struct hb_event ev;
		int st;

		for (int k = 1; k < CONS_PRODUCERS; k++) {
			struct hb_sync *s = CF_OPEN(c, tl[k], it), *n = CF_MERGE(m, s);

			hb_sync_close(m);
			hb_sync_close(s);
			m = n;
		}
		st = cons_wait(c, m, (int)(it % 2));
		if (st != 1)
			cf_fail(__FILE__, __LINE__, "round %u: merged producers' status %d", it,
				st);
		hb_sync_close(m);
		cons_check(c, id, sl, it);
		CHECK_EQ(hb_timeline_signal(t, it), 0);
		while (hb_next_event(c, &ev) == 0)
			; /* a FENCE event per point: not needed here */
	}
	cf_barrier("done");
	hb_buffer_free(buf[0]);
	hb_buffer_free(buf[1]);
	hb_timeline_destroy(t);
}

static void cons_consumer(void)
{
	cons_consumer_for(2, 0);
}

CF_CASE(test_consumer_stress_multi_producer_single_consumer, {1, cons_consumer}, {2, cons_three},
	{0, cons_two})

/* ---- c41_multi_producer_single_consumer_vm2 (test_it_fence_stress c41) ----------------------
 * The same with the consumer in vm2, three producers in vm1 and two on the host (the
 * original's vm3); 256 rounds (the original 2048). */
static void cons_consumer_vm2(void)
{
	cons_consumer_for(1, 0);
}

CF_CASE(c41_multi_producer_single_consumer_vm2, {2, cons_consumer_vm2}, {1, cons_three},
	{0, cons_two})
