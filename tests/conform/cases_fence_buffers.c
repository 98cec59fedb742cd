/*
 * Conformance cases: fences on buffers and CPU access (ported from test_it_fence_buffers
 * c33-c36; docs/TESTING.md lists them). vm1 (A) exports a buffer to vm2 (B), writable, which
 * B imports; each owns a timeline. Written once for every target (tests/conform/conform.h).
 */
#include <pthread.h>
#include <time.h>

#include "tests/conform/conform.h"

#define R HB_ACCESS_READ
#define W HB_ACCESS_WRITE

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct side {
	struct hb_client *c;
	struct hb_timeline *t;
	uint64_t mine, theirs; /* timeline ids */
	struct hb_id id;       /* A's buffer */
	struct hb_buffer *b;   /* A: the buffer */
	struct hb_import *im;  /* B: its import */
};

/* A: connects, makes its timeline and the buffer (size bytes, writable by vm2). */
static void side_a(struct side *s, size_t size)
{
	s->c = cf_connect();
	s->t = cf_timeline_for(s->c, "tl-a");
	s->mine = hb_timeline_id(s->t);
	s->b = CF_ALLOC(s->c, 2, size, HB_BUFFER_PEER_WRITABLE);
	CF_EXPORT(s->b, NULL, 0, &s->id);
	cf_put_id("id", &s->id);
	s->theirs = cf_get_u64("tl-b");
	s->im = NULL;
}

/* B: connects, makes its timeline and imports A's buffer writable. waits: every fence B opens
 * is a wait in the daemon (a case that counts them). */
static void side_b(struct side *s, bool waits)
{
	s->c = waits ? cf_connect_waits() : cf_connect();
	s->t = cf_timeline_for(s->c, "tl-b");
	s->mine = hb_timeline_id(s->t);
	s->theirs = cf_get_u64("tl-a");
	cf_get_id("id", &s->id);
	s->im = CF_IMPORT(s->c, &s->id, HB_IMPORT_WRITE);
	s->b = NULL;
}

static void side_end(struct side *s)
{
	cf_barrier("end");
	if (s->im)
		hb_import_release(s->im);
	if (s->b)
		hb_buffer_free(s->b);
	hb_timeline_destroy(s->t);
}

static void attach_at(int line, struct side *s, uint64_t tl, uint64_t v, uint32_t usage)
{
	struct hb_fence f = {.timeline = tl, .value = v};

	if (hb_attach_fence(s->c, &s->id, &f, usage) != 0)
		cf_fail(__FILE__, line, "hb_attach_fence(%llu, %#x): %s", (unsigned long long)v,
			usage, strerror(errno));
}
#define ATTACH(s, tl, v, usage) attach_at(__LINE__, (s), (tl), (v), (usage))

/* begin_cpu_access(access, 0): 1 if it did not have to wait (and ended it), 0 if it timed
 * out. */
static int free_now_at(int line, struct side *s, uint32_t access)
{
	errno = 0;
	if (hb_begin_cpu_access(s->c, &s->id, access, 0) == 0) {
		if (hb_end_cpu_access(s->c, &s->id, access) != 0)
			cf_fail(__FILE__, line, "hb_end_cpu_access: %s", strerror(errno));
		return 1;
	}
	if (errno != ETIME)
		cf_fail(__FILE__, line, "hb_begin_cpu_access(%#x, 0): %s", access, strerror(errno));
	return 0;
}
#define FREE_NOW(s, acc) free_now_at(__LINE__, (s), (acc))

/* ---- c33_begin_waits_for_fences (test_it_fence_buffers c33) ---------------------------------
 * START(READ) blocks until the other side's outstanding WRITE fence signals; START(WRITE)
 * until every READ and WRITE fence has; a reader does not wait for a reader; END never
 * blocks, with fences pending. (The original's upper bounds on times are left out.) */
static void bw_a(void)
{
	struct side s;

	side_a(&s, 8192);
	ATTACH(&s, s.mine, 1, W);
	cf_barrier("attached");
	cf_barrier("blocked"); /* B is (about to be) in its START(READ, -1) */
	CHECK_EQ(hb_timeline_signal(s.t, 1), 0);
	cf_barrier("b-read-fence");
	/* B reads under its own READ fence: A may read, not write. */
	CHECK_EQ(hb_begin_cpu_access(s.c, &s.id, R, 0), 0);
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, R), 0);
	CHECK_ERR(hb_begin_cpu_access(s.c, &s.id, W, 200), ETIME);
	CHECK_ERR(hb_begin_cpu_access(s.c, &s.id, R | W, 0), ETIME);
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, W), 0); /* no wait, B's fence pending */
	cf_barrier("a-checked");
	/* Blocked until B signals (after this barrier). */
	CHECK_EQ(hb_begin_cpu_access(s.c, &s.id, W, CF_WAIT_MS), 0);
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, W), 0);
	side_end(&s);
}

static void bw_b(void)
{
	struct side s;
	struct hb_fence f;
	uint64_t t0;

	side_b(&s, false);
	cf_barrier("attached");
	t0 = ms_now();
	CHECK_ERR(hb_begin_cpu_access(s.c, &s.id, R, 200), ETIME);
	CHECK(ms_now() - t0 >= 200);
	CHECK_ERR(hb_begin_cpu_access(s.c, &s.id, W, 0), ETIME);
	CHECK_ERR(hb_begin_cpu_access(s.c, &s.id, R | W, 0), ETIME);
	/* END does not wait, with a WRITE fence pending. */
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, R), 0);
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, W), 0);
	cf_barrier("blocked");
	CHECK_EQ(hb_begin_cpu_access(s.c, &s.id, R, -1), 0);
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, R), 0);
	f = (struct hb_fence){.timeline = s.mine, .value = 1};
	CHECK_EQ(hb_attach_fence(s.c, &s.id, &f, R), 0);
	cf_barrier("b-read-fence");
	cf_barrier("a-checked");
	CHECK_EQ(hb_timeline_signal(s.t, 1), 0);
	side_end(&s);
}

CF_CASE(c33_begin_waits_for_fences, {1, bw_a}, {2, bw_b})

/* ---- c34_data_written_before_signal_visible_after_wait (test_it_fence_buffers c34) ----------
 * A ping-pong: A writes a fresh pattern over all of P (64 KiB + 123 bytes, exported to B) and
 * signals; B waits, checks every byte of P, answers with a pattern over all of Q (its export to
 * A) and signals; A checks every byte of Q. Each side attaches the fence of its access, so the
 * START brackets also order the reuse. 500 rounds (the original 2000). */
#define PP_ROUNDS 500
#define PP_SIZE   (65536 + 123)

static uint64_t pp_seed(int side, unsigned r)
{
	return ((uint64_t)side << 40) ^ (0x9e37u * (uint64_t)r + 1);
}

static void pp_a_check(struct hb_client *c, uint64_t tlb, const struct hb_id *qid,
		       struct hb_import *q, unsigned r)
{
	struct hb_sync *s = CF_OPEN(c, tlb, r);

	CF_WAIT_DONE(s);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	CHECK_EQ(hb_begin_cpu_access(c, qid, R, CF_WAIT_MS), 0);
	CF_CHECK_PATTERN(hb_import_data(q), PP_SIZE, pp_seed(1, r - 1));
	CHECK_EQ(hb_end_cpu_access(c, qid, R), 0);
}

static void pp_a(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl-a");
	struct hb_buffer *pb = CF_ALLOC(c, 2, PP_SIZE, 0);
	uint64_t tlb;
	struct hb_id pid, qid;
	struct hb_import *q;

	CF_EXPORT(pb, NULL, 0, &pid);
	cf_put_id("p", &pid);
	tlb = cf_get_u64("tl-b");
	cf_get_id("q", &qid);
	q = CF_IMPORT(c, &qid, 0);
	for (unsigned r = 0; r < PP_ROUNDS; r++) {
		struct hb_fence f = {.timeline = hb_timeline_id(t), .value = r + 1};
		struct hb_event ev;

		if (r > 0)
			pp_a_check(c, tlb, &qid, q, r);
		/* Waits for B's READ fence of the previous round on P (implicit sync). */
		CHECK_EQ(hb_begin_cpu_access(c, &pid, W, CF_WAIT_MS), 0);
		CHECK_EQ(hb_attach_fence(c, &pid, &f, W), 0);
		cf_fill(hb_buffer_data(pb), PP_SIZE, pp_seed(0, r));
		CHECK_EQ(hb_end_cpu_access(c, &pid, W), 0);
		CHECK_EQ(hb_timeline_signal(t, r + 1), 0);
		while (hb_next_event(c, &ev) == 0)
			; /* a FENCE event per point: not needed here */
	}
	pp_a_check(c, tlb, &qid, q, PP_ROUNDS);
	cf_barrier("done");
	hb_import_release(q);
	hb_buffer_free(pb);
	hb_timeline_destroy(t);
}

static void pp_b(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl-b");
	struct hb_buffer *qb = CF_ALLOC(c, 1, PP_SIZE, 0);
	uint64_t tla = cf_get_u64("tl-a");
	struct hb_id pid, qid;
	struct hb_import *p;

	CF_EXPORT(qb, NULL, 0, &qid);
	cf_put_id("q", &qid);
	cf_get_id("p", &pid);
	p = CF_IMPORT(c, &pid, 0);
	for (unsigned r = 0; r < PP_ROUNDS; r++) {
		struct hb_sync *s = CF_OPEN(c, tla, r + 1);
		struct hb_fence rf = {.timeline = hb_timeline_id(t), .value = r + 1};
		struct hb_event ev;

		CF_WAIT_DONE(s);
		CHECK_EQ(hb_sync_status(s), 1);
		hb_sync_close(s);
		CHECK_EQ(hb_attach_fence(c, &pid, &rf, R), 0);
		CHECK_EQ(hb_begin_cpu_access(c, &pid, R, CF_WAIT_MS), 0);
		CF_CHECK_PATTERN(hb_import_data(p), PP_SIZE, pp_seed(0, r));
		CHECK_EQ(hb_end_cpu_access(c, &pid, R), 0);
		CHECK_EQ(hb_begin_cpu_access(c, &qid, W, CF_WAIT_MS), 0);
		CHECK_EQ(hb_attach_fence(c, &qid, &rf, W), 0);
		cf_fill(hb_buffer_data(qb), PP_SIZE, pp_seed(1, r));
		CHECK_EQ(hb_end_cpu_access(c, &qid, W), 0);
		CHECK_EQ(hb_timeline_signal(t, r + 1), 0);
		while (hb_next_event(c, &ev) == 0)
			; /* a FENCE event per point: not needed here */
	}
	cf_barrier("done");
	hb_import_release(p);
	hb_buffer_free(qb);
	hb_timeline_destroy(t);
}

CF_CASE(c34_data_written_before_signal_visible_after_wait, {1, pp_a}, {2, pp_b})

/* ---- c35_bad_flags_and_restartable_start (test_it_fence_buffers c35) ------------------------
 * Bad access flags and usages are EINVAL, and so are a negative timeout and NULL arguments; a
 * START that timed out changed nothing and a retry is correct; END without START, and a
 * double START, are accepted (the bracket keeps no state). */
static void bf_a(void)
{
	struct side s;

	side_a(&s, 4096);
	cf_barrier("checked");
	ATTACH(&s, s.mine, 1, W);
	cf_barrier("attached");
	cf_barrier("retried");
	CHECK_EQ(hb_timeline_signal(s.t, 1), 0);
	side_end(&s);
}

static void bf_b(void)
{
	static const uint32_t bad[] = {0, 4, 8, 0x80000000u, 0xffffffffu};
	struct side s;
	struct hb_fence f;

	side_b(&s, false);
	f = (struct hb_fence){.timeline = s.theirs, .value = 1};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_ERR(hb_begin_cpu_access(s.c, &s.id, bad[i], 0), EINVAL);
		CHECK_ERR(hb_end_cpu_access(s.c, &s.id, bad[i]), EINVAL);
		CHECK_ERR(hb_attach_fence(s.c, &s.id, &f, bad[i]), EINVAL);
	}
	CHECK_ERR(hb_begin_cpu_access(s.c, &s.id, R, -2), EINVAL);
	CHECK_ERR(hb_begin_cpu_access(s.c, NULL, R, 0), EINVAL);
	CHECK_ERR(hb_attach_fence(s.c, &s.id, NULL, R), EINVAL);
	CHECK_ERR(hb_attach_fence(s.c, NULL, &f, R), EINVAL);
	/* Nothing of that was attached: the buffer is idle. */
	CHECK(FREE_NOW(&s, R | W));
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, R | W), 0);
	cf_barrier("checked");
	cf_barrier("attached");
	for (int k = 0; k < 5; k++)
		CHECK_ERR(hb_begin_cpu_access(s.c, &s.id, R, 20), ETIME);
	cf_barrier("retried");
	CHECK_EQ(hb_begin_cpu_access(s.c, &s.id, R, CF_WAIT_MS), 0);
	CHECK_EQ(hb_begin_cpu_access(s.c, &s.id, R, 0), 0); /* a double START: fine */
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, R), 0);
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, R), 0);
	side_end(&s);
}

CF_CASE(c35_bad_flags_and_restartable_start, {1, bf_a}, {2, bf_b})

/* ---- c36_start_covers_the_right_fences (test_it_fence_buffers c36) --------------------------
 * An idle buffer needs no wait; READ covers the writers only; WRITE covers readers and
 * writers; a START already waiting waits for the fences it found: one attached meanwhile is
 * not added to it (a snapshot), though a later START sees it. The waiting START is known to
 * have taken its snapshot once the daemon holds its wait (fence_waits one up). */
struct begin_bg {
	struct side *s;
	int ret, err;
};

static void *begin_bg_fn(void *p)
{
	struct begin_bg *g = p;

	errno = 0;
	g->ret = hb_begin_cpu_access(g->s->c, &g->s->id, R, CF_WAIT_MS);
	g->err = errno;
	return NULL;
}

static void cov_a(void)
{
	struct side s;
	struct hb_timeline *t2;

	side_a(&s, 4096);
	cf_barrier("idle");
	ATTACH(&s, s.mine, 1, R);
	cf_barrier("reader");
	cf_barrier("reader-checked");
	CHECK_EQ(hb_timeline_signal(s.t, 1), 0);
	cf_barrier("reader-done");
	cf_barrier("free-checked");
	ATTACH(&s, s.mine, 2, W);
	t2 = cf_timeline_for(s.c, "tl2");
	cf_barrier("writer");
	cf_get("started");
	ATTACH(&s, hb_timeline_id(t2), 1, W);
	CHECK_EQ(hb_timeline_signal(s.t, 2), 0);
	cf_barrier("snapshot");
	CHECK_EQ(hb_timeline_signal(t2, 1), 0);
	cf_barrier("newer-done");
	side_end(&s);
	hb_timeline_destroy(t2); /* after B's last look at it */
}

static void cov_b(void)
{
	struct side s;
	struct begin_bg g;
	pthread_t th;
	long long waits;
	uint64_t end;

	side_b(&s, true);
	CHECK(FREE_NOW(&s, R));
	CHECK(FREE_NOW(&s, W));
	CHECK(FREE_NOW(&s, R | W));
	cf_barrier("idle");
	cf_barrier("reader");
	CHECK(FREE_NOW(&s, R));
	CHECK(!FREE_NOW(&s, W));
	CHECK(!FREE_NOW(&s, R | W));
	cf_barrier("reader-checked");
	cf_barrier("reader-done");
	CF_REACHED(s.c, s.theirs, 1);
	CHECK(FREE_NOW(&s, W));
	cf_barrier("free-checked");
	cf_barrier("writer");
	CHECK(!FREE_NOW(&s, R));
	CHECK(!FREE_NOW(&s, W));
	waits = cf_stat("fence_waits");
	g = (struct begin_bg){.s = &s};
	CHECK(pthread_create(&th, NULL, begin_bg_fn, &g) == 0);
	end = ms_now() + CF_WAIT_MS;
	while (cf_stat("fence_waits") != waits + 1) {
		if (ms_now() > end)
			cf_fail(__FILE__, __LINE__, "the blocked START holds no daemon wait");
		cf_sleep_ms(20); /* polling a value, not waiting for an event */
	}
	cf_put("started", "1");
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_EQ(g.ret, 0);
	CHECK_EQ(hb_end_cpu_access(s.c, &s.id, R), 0);
	/* A new start sees the newer fence. */
	CHECK(!FREE_NOW(&s, R));
	cf_barrier("snapshot");
	cf_barrier("newer-done");
	CF_REACHED(s.c, cf_get_u64("tl2"), 1);
	CHECK(FREE_NOW(&s, R | W));
	side_end(&s);
}

CF_CASE(c36_start_covers_the_right_fences, {1, cov_a}, {2, cov_b})
