/*
 * Conformance cases: timelines (ported from test_it_timeline; docs/TESTING.md lists them, and
 * the cases that stay host-side). vm1 owns, vm2 waits, the host is the third domain. Written
 * once for every target (tests/conform/conform.h).
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/conform/conform.h"

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/* ---- completions_in_value_order (test_it_timeline) ------------------------------------------
 * 250 points opened in vm2; vm1 advances in random steps: one FENCE event per point, in value
 * order, each after its status is set. */
#define ORDER_N 250

static void cvo_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	uint64_t seed = 7, v = 0;

	cf_barrier("opened");
	while (v < ORDER_N) {
		v += 1 + lcg(&seed) % 17;
		CHECK_EQ(hb_timeline_signal(t, v), 0);
	}
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void cvo_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl"), last = 0;
	static struct hb_sync *s[ORDER_N + 1];
	struct hb_event ev;
	struct hb_fence f;
	int seen = 0;

	cf_drain(c);
	for (int i = 1; i <= ORDER_N; i++)
		s[i] = CF_OPEN(c, tl, (uint64_t)i);
	cf_barrier("opened");
	while (seen < ORDER_N) {
		CF_WAIT_EVENT(c, HB_EVENT_FENCE, &ev);
		CHECK_EQ(hb_event_fence(&ev, &f), 0);
		CHECK_EQ(f.value, last + 1);
		last = f.value;
		CHECK_EQ(hb_sync_status(s[f.value]), 1);
		seen++;
	}
	for (int i = 1; i <= ORDER_N; i++)
		hb_sync_close(s[i]);
	cf_barrier("done");
}

CF_CASE(completions_in_value_order, {1, cvo_owner}, {2, cvo_waiter})

/* ---- timeline_ids_random_and_private (test_it_timeline) -------------------------------------
 * 64 timelines of vm1 and the host: every bit of the ids is set in some and clear in some
 * (random ids; a 64 * 2^-63 chance of a false failure); vm2 guessing around each of vm1's ids
 * finds nothing; a timeline vm1 attached to a buffer for vm2 is vm2's to see, not the host's. */
#define IDS_HALF 32

static void idr_maker(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t[IDS_HALF];
	char key[32], val[CF_VAL_MAX];

	for (int k = 0; k < IDS_HALF / 8; k++) {
		int len = 0;

		for (int i = k * 8; i < k * 8 + 8; i++) {
			t[i] = hb_timeline_create(c);
			CHECK(t[i] != NULL);
			len += snprintf(val + len, sizeof(val) - (size_t)len, "%llx ",
					(unsigned long long)hb_timeline_id(t[i]));
		}
		snprintf(key, sizeof(key), "ids-%u-%d", cf_domain(), k);
		cf_put(key, "%s", val);
	}
	if (cf_domain() == 1) {
		struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
		struct hb_fence f = {.timeline = hb_timeline_id(t[0]), .value = 5};
		struct hb_id id;

		CF_EXPORT(b, NULL, 0, &id);
		cf_get("guessed"); /* attaching shows the timeline to vm2 */
		CHECK_EQ(hb_attach_fence(c, &id, &f, HB_ACCESS_WRITE), 0);
		cf_put("attached", "1");
		cf_barrier("done");
		hb_buffer_free(b);
	} else {
		uint64_t tl0 = strtoull(cf_get("ids-1-0"), NULL, 16);
		struct hb_fence f = {.timeline = tl0, .value = 5};

		cf_get("attached");
		CHECK_ERR(hb_sync_open(c, &f), ENOENT);
		cf_barrier("done");
	}
	for (int i = 0; i < IDS_HALF; i++)
		hb_timeline_destroy(t[i]);
}

static void idr_ids(uint32_t dom, uint64_t *ids)
{
	char key[32];

	for (int k = 0; k < IDS_HALF / 8; k++) {
		const char *p;

		snprintf(key, sizeof(key), "ids-%u-%d", dom, k);
		p = cf_get(key);
		for (int i = 0; i < 8; i++) {
			char *end;

			ids[k * 8 + i] = strtoull(p, &end, 16);
			CHECK(end != p);
			p = end;
		}
	}
}

static void idr_guesser(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *mine = hb_timeline_create(c);
	uint64_t ids[2 * IDS_HALF], ors = 0, ands = ~0ull;
	struct hb_fence f;
	struct hb_sync *s;
	int found = 0;

	CHECK(mine != NULL);
	idr_ids(1, ids);
	idr_ids(0, ids + IDS_HALF);
	for (int i = 0; i < 2 * IDS_HALF; i++) {
		ors |= ids[i];
		ands &= ids[i];
	}
	CHECK(ors == ~0ull && ands == 0);
	for (int i = 0; i < IDS_HALF; i++) {
		for (int k = -32; k <= 32; k++) {
			f = (struct hb_fence){.timeline = ids[i] + (uint64_t)(int64_t)k,
					      .value = 1};
			s = f.timeline == hb_timeline_id(mine) ? NULL : hb_sync_open(c, &f);
			found += s != NULL;
			if (s)
				hb_sync_close(s);
		}
	}
	CHECK_EQ(found, 0);
	cf_put("guessed", "1");
	/* Attached by its owner to a buffer exported to vm2: vm2 sees it. */
	cf_get("attached");
	f = (struct hb_fence){.timeline = ids[0], .value = 5};
	s = hb_sync_open(c, &f);
	CHECK(s != NULL);
	hb_sync_close(s);
	hb_timeline_destroy(mine);
	cf_barrier("done");
}

CF_CASE(timeline_ids_random_and_private, {1, idr_maker}, {0, idr_maker}, {2, idr_guesser})

/* ---- born_signalled (test_it_timeline) ------------------------------------------------------
 * At or below the value: complete at birth, fd readable at once; above it pending, and closing
 * it closes its wait in the daemon. */
static void bs_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");

	CHECK_EQ(hb_timeline_signal(t, 7), 0);
	cf_put("seven", "1");
	cf_barrier("done");
	hb_timeline_destroy(t);
}

static void bs_waiter(void)
{
	static const uint64_t vals[] = {0, 1, 6, 7};
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl");
	struct hb_sync *s;

	cf_get("seven");
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		s = CF_OPEN(c, tl, vals[i]);
		CHECK_EQ(hb_sync_status(s), 1);
		CHECK(cf_fd_ready(s));
		CHECK_EQ(hb_sync_wait(s, 0), 0);
		hb_sync_close(s);
	}
	s = CF_OPEN(c, tl, 8);
	CHECK_EQ(hb_sync_status(s), 0);
	hb_sync_close(s);
	CF_STAT_BECOMES("fence_waits", 0); /* closing the pending one closed its wait */
	cf_barrier("done");
}

CF_CASE(born_signalled, {1, bs_owner}, {2, bs_waiter})

/* ---- owner_sigkill_oldest_first (test_it_timeline) ------------------------------------------
 * The owner, a process of vm1's at 1, is SIGKILLed: vm2's points 2..5 (opened in a scrambled
 * order) complete with -EPIPE, with FENCE events in value order; point 1 keeps status 1 and
 * the daemon holds no timeline. After the kill the role connects: in a KVM guest that ends
 * the dead process's session (docs/KVM.md). */
static void osk_owner(void)
{
	int pfd[2], status;
	pid_t pid;
	char ok;

	CHECK(pipe(pfd) == 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct hb_client *c = cf_connect();
		struct hb_timeline *t = cf_timeline_for(c, "tl");

		CHECK_EQ(hb_timeline_signal(t, 1), 0);
		if (write(pfd[1], "K", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(pfd[1]);
	CHECK_EQ(read(pfd[0], &ok, 1), 1);
	close(pfd[0]);
	cf_barrier("opened");
	CHECK_EQ(kill(pid, SIGKILL), 0);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	cf_connect();
	cf_barrier("done");
}

static void osk_waiter(void)
{
	struct hb_client *c = cf_connect();
	uint64_t tl = cf_get_u64("tl"), last = 1;
	struct hb_sync *s[6];
	struct hb_event ev;
	struct hb_fence f;

	cf_drain(c);
	/* Opened in a scrambled order: completion order must still be by value. */
	for (int i = 5; i >= 1; i -= 2)
		s[i] = CF_OPEN(c, tl, (uint64_t)i);
	for (int i = 4; i >= 2; i -= 2)
		s[i] = CF_OPEN(c, tl, (uint64_t)i);
	CHECK_EQ(hb_sync_status(s[1]), 1);
	cf_barrier("opened");
	for (int seen = 0; seen < 4; seen++) {
		CF_WAIT_EVENT(c, HB_EVENT_FENCE, &ev);
		CHECK_EQ(hb_event_fence(&ev, &f), 0);
		CHECK_EQ(f.timeline, tl);
		CHECK_EQ(f.value, last + 1);
		last = f.value;
	}
	CHECK_EQ(hb_sync_status(s[1]), 1);
	for (int i = 2; i <= 5; i++)
		CHECK_EQ(hb_sync_status(s[i]), -EPIPE);
	for (int i = 1; i <= 5; i++)
		hb_sync_close(s[i]);
	CF_STAT_BECOMES("timelines", 0);
	cf_barrier("done");
}

CF_CASE(owner_sigkill_oldest_first, {1, osk_owner}, {2, osk_waiter})

/* ---- wait_any_and_long_merge_chains (test_it_timeline) --------------------------------------
 * wait_any reports the lowest complete index; a long chain of merges (each closing the
 * previous handle) completes, with the status of its failed member; closing the top of a
 * pending chain frees every node and closes the daemon's waits. Chains of 2000 (the original
 * 20000: every link opens a point, a round trip to the daemon, slow from a TCG guest). */
#define CHAIN 2000

static void chain_owner(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl-t"), *u = cf_timeline_for(c, "tl-u");

	cf_barrier("opened");
	CHECK_EQ(hb_timeline_signal(u, 1), 0);
	cf_barrier("u1");
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	cf_barrier("chained");
	CHECK_EQ(hb_timeline_signal(t, 52), 0);
	cf_barrier("52");
	CHECK_EQ(hb_timeline_fail(t, 53, -ECANCELED), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
	hb_timeline_destroy(u);
}

static struct hb_sync *chain_build(struct hb_client *c, uint64_t tl, uint64_t base, int mod,
				   bool leaf_first)
{
	struct hb_sync *acc = CF_OPEN(c, tl, base);

	for (int i = 0; i < CHAIN; i++) {
		struct hb_sync *leaf = CF_OPEN(c, tl, base + (uint64_t)(i % mod));
		struct hb_sync *next = leaf_first ? CF_MERGE(leaf, acc) : CF_MERGE(acc, leaf);

		hb_sync_close(acc);
		hb_sync_close(leaf);
		acc = next;
	}
	return acc;
}

static void chain_waiter(void)
{
	/* It counts the daemon's waits a chain holds. */
	struct hb_client *c = cf_connect_waits();
	uint64_t t = cf_get_u64("tl-t"), u = cf_get_u64("tl-u");
	struct hb_sync *v[3] = {CF_OPEN(c, t, 3), CF_OPEN(c, t, 2), CF_OPEN(c, u, 1)}, *acc;
	size_t idx = 99;

	CHECK_ERR(hb_sync_wait_any(v, 3, 0, &idx), ETIME);
	CHECK_ERR(hb_sync_wait_any(v, 3, 30, &idx), ETIME);
	CHECK_ERR(hb_sync_wait_any(v, 0, 0, &idx), EINVAL);
	cf_barrier("opened");
	CHECK_EQ(hb_sync_wait_any(v, 3, CF_WAIT_MS, &idx), 0);
	CHECK_EQ(idx, 2);
	cf_barrier("u1");
	CF_WAIT_DONE(v[0]);
	CHECK_EQ(hb_sync_wait_any(v, 3, 0, &idx), 0);
	CHECK_EQ(idx, 0);
	for (int i = 0; i < 3; i++)
		hb_sync_close(v[i]);
	/* A long chain that completes: one member per link, 50 points of one timeline. */
	acc = chain_build(c, t, 4, 50, false);
	CHECK_EQ(cf_stat("fence_waits"), 50);
	cf_barrier("chained");
	CF_REACHED(c, t, 52);
	CHECK_ERR(hb_sync_wait(acc, 0), ETIME);
	cf_barrier("52");
	CF_WAIT_DONE(acc);
	CHECK_EQ(hb_sync_status(acc), -ECANCELED);
	hb_sync_close(acc);
	/* A long chain closed while pending: everything goes, the daemon's waits too. */
	acc = chain_build(c, u, 100, 10, true);
	CHECK_EQ(cf_stat("fence_waits"), 10);
	hb_sync_close(acc);
	CF_STAT_BECOMES("fence_waits", 0);
	cf_barrier("done");
}

CF_CASE(wait_any_and_long_merge_chains, {1, chain_owner}, {2, chain_waiter})

/* ---- attach_begin_end (test_it_timeline) ----------------------------------------------------
 * CPU-access brackets against fences between vm1 (exporter) and vm2 (importer), one side
 * acting between two steps, the other looking after: an idle buffer starts at once; a WRITE
 * fence holds readers (a timed-out start leaves no daemon wait behind), END never waits; data
 * written under the bracket is seen after the signal; a READ fence holds writers only; later
 * points replace an entry and a READ never downgrades a WRITE; failed and completed fences count
 * as complete; a destroyed timeline completes its fences; neither side of the share (the host)
 * gets ENOENT, bad bits EINVAL; HB_RESV_MAX pending timelines fill the reservation. */
#define ABE_SIZE (3 * 4096 + 5)
#define R        HB_ACCESS_READ
#define W        HB_ACCESS_WRITE

static void abe_step(int n)
{
	char key[16];

	snprintf(key, sizeof(key), "s%d", n);
	cf_barrier(key);
}

static void abe_attach_at(int line, struct hb_client *c, const struct hb_id *id, uint64_t tl,
			  uint64_t v, uint32_t usage)
{
	struct hb_fence f = {.timeline = tl, .value = v};

	if (hb_attach_fence(c, id, &f, usage) != 0)
		cf_fail(__FILE__, line, "hb_attach_fence(%llu, %#x): %s", (unsigned long long)v,
			usage, strerror(errno));
}
#define ABE_ATTACH(c, id, tl, v, u) abe_attach_at(__LINE__, (c), (id), (tl), (v), (u))

/* Refusals from vm1 (the exporter): unknown hids ENOENT, bad bits EINVAL. */
static void abe_refusals(struct hb_client *c, const struct hb_id *id, uint64_t tw)
{
	struct hb_fence f = {.timeline = tw, .value = 400};
	struct hb_id bogus;

	for (size_t i = 0; i < sizeof(bogus.bytes); i++)
		bogus.bytes[i] = (uint8_t)(0xab ^ (i * 29));
	CHECK_ERR(hb_begin_cpu_access(c, &bogus, R, 0), ENOENT);
	CHECK_ERR(hb_end_cpu_access(c, &bogus, R), ENOENT);
	CHECK_ERR(hb_attach_fence(c, &bogus, &f, R), ENOENT);
	CHECK_ERR(hb_begin_cpu_access(c, id, 0, 0), EINVAL);
	CHECK_ERR(hb_begin_cpu_access(c, id, 4, 0), EINVAL);
	CHECK_ERR(hb_end_cpu_access(c, id, 0), EINVAL);
	CHECK_ERR(hb_end_cpu_access(c, id, R | 8), EINVAL);
	CHECK_ERR(hb_attach_fence(c, id, &f, 0), EINVAL);
	CHECK_ERR(hb_attach_fence(c, id, &f, 16), EINVAL);
	CHECK_ERR(hb_begin_cpu_access(c, id, R, -2), EINVAL);
}

/* HB_RESV_MAX distinct pending timelines fill the reservation; the next is ENOSPC; a
 * completed entry makes room. */
static void abe_fill(struct hb_client *c, const struct hb_id *id)
{
	struct hb_timeline *many[HB_RESV_MAX + 1];
	struct hb_fence f;

	for (int i = 0; i <= HB_RESV_MAX; i++) {
		many[i] = hb_timeline_create(c);
		CHECK(many[i] != NULL);
		CHECK_EQ(hb_timeline_share(many[i], 2), 0);
		f = (struct hb_fence){.timeline = hb_timeline_id(many[i]), .value = 1};
		if (i < HB_RESV_MAX)
			CHECK_EQ(hb_attach_fence(c, id, &f, W), 0);
		else
			CHECK_ERR(hb_attach_fence(c, id, &f, W), ENOSPC);
	}
	CHECK_EQ(hb_timeline_signal(many[0], 1), 0);
	ABE_ATTACH(c, id, hb_timeline_id(many[HB_RESV_MAX]), 1, W);
	for (int i = 0; i <= HB_RESV_MAX; i++)
		hb_timeline_destroy(many[i]);
}

static void abe_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, ABE_SIZE, HB_BUFFER_PEER_WRITABLE);
	struct hb_timeline *tw = cf_timeline_for(c, "tw");
	uint64_t w = hb_timeline_id(tw);
	struct hb_id id;

	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	/* An idle buffer: both accesses start at once. */
	CHECK_EQ(hb_begin_cpu_access(c, &id, R | W, 0), 0);
	CHECK_EQ(hb_end_cpu_access(c, &id, R | W), 0);
	abe_step(0);
	/* vm1 starts writing and publishes its write's completion as a WRITE fence. */
	CHECK_EQ(hb_begin_cpu_access(c, &id, W, 0), 0);
	ABE_ATTACH(c, &id, w, 1, W);
	CHECK_ERR(hb_begin_cpu_access(c, &id, R, 0), ETIME);
	abe_step(1); /* vm2: held */
	abe_step(2);
	cf_fill(hb_buffer_data(b), ABE_SIZE, 3);
	CHECK_EQ(hb_end_cpu_access(c, &id, W), 0);
	CHECK_EQ(hb_timeline_signal(tw, 1), 0);
	abe_step(3); /* vm2: reads, attaches a READ fence */
	abe_step(4);
	CHECK_EQ(hb_begin_cpu_access(c, &id, R, 0), 0);
	CHECK_ERR(hb_begin_cpu_access(c, &id, W, 50), ETIME);
	CHECK_ERR(hb_begin_cpu_access(c, &id, R | W, 0), ETIME);
	abe_step(5); /* vm2: signals its READ fence */
	abe_step(6);
	CHECK_EQ(hb_begin_cpu_access(c, &id, W, CF_WAIT_MS), 0);
	/* Replacement: many later points never fill it; a READ never downgrades a WRITE. */
	for (uint64_t v = 2; v < 2 + 3 * HB_RESV_MAX; v++)
		ABE_ATTACH(c, &id, w, v, W);
	ABE_ATTACH(c, &id, w, 200, W);
	ABE_ATTACH(c, &id, w, 200, R);
	CHECK_EQ(hb_timeline_signal(tw, 199), 0);
	abe_step(7); /* vm2: readers held by point 200 */
	abe_step(8);
	CHECK_EQ(hb_timeline_signal(tw, 200), 0);
	abe_step(9); /* vm2: free */
	abe_step(10);
	ABE_ATTACH(c, &id, w, 300, W);
	CHECK_EQ(hb_timeline_fail(tw, 300, -EIO), 0);
	ABE_ATTACH(c, &id, w, 5, W); /* completed: accepted, changes nothing */
	abe_step(11);                /* vm2: free; attaches a WRITE fence of its own */
	abe_step(12);
	CHECK_ERR(hb_begin_cpu_access(c, &id, R, 0), ETIME);
	abe_step(13); /* vm2: destroys its timeline */
	abe_step(14);
	CHECK_EQ(hb_begin_cpu_access(c, &id, R, CF_WAIT_MS), 0);
	abe_refusals(c, &id, w);
	hb_timeline_destroy(tw);
	abe_fill(c, &id);
	abe_step(15); /* vm2: free again */
	abe_step(16);
	hb_buffer_free(b);
}

static void abe_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *tr = hb_timeline_create(c);
	uint64_t w = cf_get_u64("tw");
	struct hb_import *im;
	struct hb_fence f;
	struct hb_id id;
	long long waits;

	CHECK(tr != NULL);
	CHECK_EQ(hb_timeline_share(tr, 1), 0);
	cf_get_id("id", &id);
	im = CF_IMPORT(c, &id, HB_IMPORT_WRITE);
	CHECK_EQ(hb_begin_cpu_access(c, &id, R, 0), 0);
	CHECK_EQ(hb_end_cpu_access(c, &id, R), 0);
	abe_step(0);
	abe_step(1);
	waits = cf_stat("fence_waits");
	CHECK_ERR(hb_begin_cpu_access(c, &id, R, 100), ETIME);
	CF_STAT_BECOMES("fence_waits", waits); /* nothing left behind */
	CHECK_ERR(hb_begin_cpu_access(c, &id, R, 0), ETIME);
	CHECK_ERR(hb_begin_cpu_access(c, &id, W, 0), ETIME);
	CHECK_EQ(hb_end_cpu_access(c, &id, R), 0); /* END never waits */
	abe_step(2);
	abe_step(3);
	CHECK_EQ(hb_begin_cpu_access(c, &id, R, CF_WAIT_MS), 0);
	CF_CHECK_PATTERN(hb_import_data(im), ABE_SIZE, 3);
	CHECK_EQ(hb_end_cpu_access(c, &id, R), 0);
	ABE_ATTACH(c, &id, hb_timeline_id(tr), 1, R);
	abe_step(4);
	abe_step(5);
	CHECK_EQ(hb_timeline_signal(tr, 1), 0);
	abe_step(6);
	abe_step(7);
	CF_REACHED(c, w, 199);
	CHECK_ERR(hb_begin_cpu_access(c, &id, R, 0), ETIME);
	abe_step(8);
	abe_step(9);
	CHECK_EQ(hb_begin_cpu_access(c, &id, R | W, CF_WAIT_MS), 0);
	abe_step(10);
	abe_step(11);
	CHECK_EQ(hb_begin_cpu_access(c, &id, R, CF_WAIT_MS), 0); /* the failed fence */
	CHECK_EQ(hb_begin_cpu_access(c, &id, W, CF_WAIT_MS), 0);
	ABE_ATTACH(c, &id, hb_timeline_id(tr), 10, W);
	abe_step(12);
	abe_step(13);
	hb_timeline_destroy(tr); /* completes its fences: nobody hangs on a dead timeline */
	f = (struct hb_fence){.timeline = cf_get_u64("th"), .value = 1};
	CHECK_ERR(hb_attach_fence(c, &id, &f, R), ENOENT); /* a timeline vm1 cannot see */
	abe_step(14);
	abe_step(15);
	CHECK_EQ(hb_begin_cpu_access(c, &id, W, CF_WAIT_MS), 0);
	hb_import_release(im);
	abe_step(16);
}

/* The host: neither side of the share (and its timeline shared with vm2 only). */
static void abe_host(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *th = hb_timeline_create(c);
	struct hb_fence f = {.timeline = cf_get_u64("tw"), .value = 400};
	struct hb_id id;

	CHECK(th != NULL);
	CHECK_EQ(hb_timeline_share(th, 2), 0);
	cf_put_u64("th", hb_timeline_id(th));
	cf_get_id("id", &id);
	CHECK_ERR(hb_begin_cpu_access(c, &id, R, 0), ENOENT);
	CHECK_ERR(hb_end_cpu_access(c, &id, R), ENOENT);
	CHECK_ERR(hb_attach_fence(c, &id, &f, R), ENOENT);
	for (int i = 0; i <= 16; i++)
		abe_step(i);
	hb_timeline_destroy(th);
}

CF_CASE(attach_begin_end, {1, abe_vm1}, {2, abe_vm2}, {0, abe_host})
