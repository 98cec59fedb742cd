/*
 * Conformance cases: the sync selftests' stress tests across domains (ported from
 * test_it_fence_selftests, whose comments say what each changes from the selftest; the shared
 * implementation there is tests/fence_stress.c; docs/TESTING.md lists them). Fewer rounds than
 * the originals: every target runs them, a guest under TCG among them.
 */
#include <fcntl.h>

#include "tests/conform/conform.h"

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

static void two_a(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl-a");
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, HB_BUFFER_PEER_WRITABLE);
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

CF_CASE(test_stress_two_threads_shared_timeline, {1, two_a}, {2, two_b})

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

/* The largest points, which vm2 puts in two keys ("max-0", "max-1", 16 each). */
static void merge_get_max(uint64_t *maxv)
{
	for (int k = 0; k < 2; k++) {
		const char *p = cf_get(k ? "max-1" : "max-0");

		for (int i = 0; i < MERGE_TIMELINES / 2; i++) {
			char *end;

			maxv[k * MERGE_TIMELINES / 2 + i] = strtoull(p, &end, 16);
			CHECK(end != p);
			p = end;
		}
	}
}

static void merge_put_max(const uint64_t *maxv)
{
	for (int k = 0; k < 2; k++) {
		char val[CF_VAL_MAX];
		int len = 0;

		for (int i = 0; i < MERGE_TIMELINES / 2; i++)
			len += snprintf(val + len, sizeof(val) - (size_t)len, "%llx ",
					(unsigned long long)maxv[k * MERGE_TIMELINES / 2 + i]);
		cf_put(k ? "max-1" : "max-0", "%s", val);
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

static struct hb_sync *merge_build(struct hb_client *c, const uint64_t *id, uint64_t *maxv)
{
	uint64_t seed = 0x5eed0000u;
	struct hb_sync *acc = CF_OPEN(c, id[0], 0);

	CHECK_EQ(hb_sync_status(acc), 1); /* born signalled */
	for (unsigned r = 0; r < MERGE_ROUNDS; r++) {
		int k = (int)(lcg(&seed) % MERGE_TIMELINES);
		uint64_t v = lcg(&seed) % 0x7fffffffu;
		struct hb_sync *s = CF_OPEN(c, id[k], v), *n = CF_MERGE(acc, s);

		if (v > maxv[k])
			maxv[k] = v;
		hb_sync_close(acc);
		hb_sync_close(s);
		acc = n;
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
