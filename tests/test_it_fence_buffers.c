/*
 * Fence conformance, part 3: shared/research/fences.md §5.7 assertions 33-39 (buffers and CPU
 * access), the cross-VM form of the dmabuf-heaps selftest (§3.11) and of DMA_BUF_IOCTL_SYNC /
 * dma_resv (§2): hb_attach_fence, hb_begin_cpu_access, hb_end_cpu_access.
 *
 * Layout: A = vm1 (an agent, or a dedicated process for the ping-pong) exports a buffer to B =
 * vm2 (this process), writable unless said otherwise; fences come from A's timelines, B's own,
 * or another domain's.
 */
#include "tests/fence_common.h"

struct bx {
	struct hbt_daemon d;
	struct fence_agent a;  /* A: vm1 */
	struct hb_client *b;   /* B: vm2 */
	struct hb_timeline *tb; /* B's timeline */
	uint64_t tlb;
	int ta;                /* A's timeline */
	uint64_t tla;
	int buf;               /* A's buffer (index in A) */
	struct hb_id hid;
	struct hb_import *im;  /* B's import of it */
};

static void bx_start(struct bx *x, const char *extra, size_t size)
{
	struct fa_rep r;

	hbt_daemon_start(&x->d, extra);
	FENCE_AGENT_START(&x->a, hbt_addr_vm(&x->d, 1), "A(vm1)");
	x->b = IT_CONNECT(hbt_addr_vm(&x->d, 2));
	x->ta = FA_TIMELINE(&x->a, &x->tla);
	x->tb = FENCE_TL(x->b);
	x->tlb = hb_timeline_id(x->tb);
	r = FA_OK_CALL(&x->a, FA_ALLOC, 0, 2, size, HB_BUFFER_PEER_WRITABLE, NULL);
	x->buf = (int)r.ret;
	x->hid = r.id;
	x->im = IT_IMPORT(x->b, &x->hid, HB_IMPORT_WRITE);
}

static void bx_stop(struct bx *x)
{
	hb_import_release(x->im);
	hb_timeline_destroy(x->tb);
	FENCE_AGENT_STOP(&x->a);
	hb_disconnect(x->b);
	IT_STOP(&x->d);
}

/* A attaches (tl, v) with usage to the shared buffer. */
#define A_ATTACH(x, tl, v, usage) FA_OK_CALL(&(x)->a, FA_ATTACH, 0, (tl), (v), (usage), &(x)->hid)
/* A's begin_cpu_access: the reply (ret, err). */
#define A_BEGIN(x, acc, ms) FA_CALL(&(x)->a, FA_BEGIN, 0, (acc), (uint64_t)(int64_t)(ms), 0, &(x)->hid)
#define A_END(x, acc)       FA_OK_CALL(&(x)->a, FA_END, 0, (acc), 0, 0, &(x)->hid)

/* B's begin_cpu_access(access, 0): 1 if it did not have to wait, 0 if it timed out. */
static int b_free_now_at(const char *file, int line, struct bx *x, uint32_t access)
{
	int r;

	errno = 0;
	r = hb_begin_cpu_access(x->b, &x->hid, access, 0);
	if (r == 0) {
		if (hb_end_cpu_access(x->b, &x->hid, access) != 0)
			hbt_fail(file, line, "hb_end_cpu_access: %s", strerror(errno));
		return 1;
	}
	if (errno != ETIME)
		hbt_fail(file, line, "hb_begin_cpu_access(%#x, 0): %s", access, strerror(errno));
	return 0;
}
#define B_FREE(x, acc) b_free_now_at(__FILE__, __LINE__, (x), (acc))
#define R HB_ACCESS_READ
#define W HB_ACCESS_WRITE

/* Waits until B has seen (tl, v) complete, so later begin checks are not racing it. */
#define SEEN(x, tl, v) FENCE_BARRIER((x)->b, (tl), (v))

/*
 * 33. START(READ) in B blocks until A's outstanding WRITE fence signals (timed out at 200 ms
 * first; then returns once A signals, 300 ms later); START(WRITE) blocks until every READ and
 * WRITE fence has; a reader does not wait for a reader; END never blocks, with fences pending.
 */
TEST(c33_begin_waits_for_fences)
{
	struct bx x;
	struct fa_rep r;
	uint64_t t0;

	bx_start(&x, NULL, 8192);
	A_ATTACH(&x, x.tla, 1, W);
	t0 = hbt_now_ms();
	CHECK_ERR(hb_begin_cpu_access(x.b, &x.hid, R, 200), ETIME);
	CHECK(hbt_now_ms() - t0 >= 200);
	CHECK_ERR(hb_begin_cpu_access(x.b, &x.hid, W, 0), ETIME);
	CHECK_ERR(hb_begin_cpu_access(x.b, &x.hid, R | W, 0), ETIME);
	/* END does not wait, with a WRITE fence pending. */
	t0 = hbt_now_ms();
	CHECK_EQ(hb_end_cpu_access(x.b, &x.hid, R), 0);
	CHECK_EQ(hb_end_cpu_access(x.b, &x.hid, W), 0);
	CHECK(hbt_now_ms() - t0 < 1000);
	/* Blocked, until A signals 300 ms from now. */
	fa_send_at(__FILE__, __LINE__, &x.a, FA_TL_SIGNAL, x.ta, 1, 0, 300, NULL);
	t0 = hbt_now_ms();
	CHECK_EQ(hb_begin_cpu_access(x.b, &x.hid, R, -1), 0);
	CHECK(hbt_now_ms() - t0 >= 250);
	CHECK_EQ(hb_end_cpu_access(x.b, &x.hid, R), 0);
	CHECK_EQ(fa_recv(&x.a, &r, FENCE_WAIT_MS), 0);
	CHECK_EQ(r.ret, 0);
	/* B reads under its own READ fence: A may read, A may not write. */
	CHECK_EQ(hb_attach_fence(x.b, &x.hid, &(struct hb_fence){x.tlb, 1}, R), 0);
	r = A_BEGIN(&x, R, 0);
	CHECK_EQ(r.ret, 0);
	A_END(&x, R);
	r = A_BEGIN(&x, W, 200);
	CHECK(r.ret == -1 && r.err == ETIME);
	r = A_BEGIN(&x, R | W, 0);
	CHECK(r.ret == -1 && r.err == ETIME);
	/* A's END with B's fence pending: no wait. */
	t0 = hbt_now_ms();
	A_END(&x, W);
	CHECK(hbt_now_ms() - t0 < 1000);
	/* A's WRITE start blocks until B signals, 300 ms later. */
	fa_send_at(__FILE__, __LINE__, &x.a, FA_BEGIN, 0, W, (uint64_t)(int64_t)-1, 0, &x.hid);
	it_sleep_ms(300);
	CHECK(fa_recv(&x.a, &r, 0) != 0); /* still blocked */
	FENCE_SIGNAL(x.tb, 1);
	CHECK_EQ(fa_recv(&x.a, &r, FENCE_WAIT_MS), 0);
	CHECK_EQ(r.ret, 0);
	A_END(&x, W);
	bx_stop(&x);
}

/*
 * 34. Data written between START(WRITE) and END, then signalled, is what the other VM reads
 * after its wait and START(READ): a ping-pong of 2000 rounds between two processes that share
 * nothing but the daemon. A (vm1) writes a fresh pattern over all of P (64 KiB + 123 bytes) and
 * signals; B (vm2) waits, checks every byte of P, answers with a pattern over all of Q (its own
 * export to A) and signals; A checks every byte of Q. Each side attaches the fence of its
 * access (A: WRITE on P; B: READ on P, WRITE on Q), so START brackets also order the reuse.
 */
#define PP_ROUNDS 2000
#define PP_SIZE   (65536 + 123)

struct pp_hello {
	uint64_t tl;
	struct hb_id hid;
};

static uint64_t pp_seed(int side, unsigned r)
{
	return ((uint64_t)side << 40) ^ (0x9e37u * (uint64_t)r + 1);
}

static int pp_side_a(void *p)
{
	int sock = *(int *)p;
	struct hb_client *c = hb_connect(getenv("FENCE_PP_ADDR"));
	struct pp_hello mine, theirs;
	struct hb_timeline *t;
	struct hb_buffer *pb;
	struct hb_import *q;
	unsigned r;
	int ret = 0;

	if (!c)
		return 20;
	t = hb_timeline_create(c);
	if (t)
		hbt_timeline_share_all(t);
	pb = hb_buffer_alloc(c, 2, PP_SIZE, 0);
	if (!t || !pb || hb_export(pb, NULL, 0, 0, &mine.hid) != 0)
		return 21;
	mine.tl = hb_timeline_id(t);
	if (write(sock, &mine, sizeof(mine)) != (ssize_t)sizeof(mine) ||
	    it_pipe_read(sock, &theirs, sizeof(theirs), FENCE_WAIT_MS) != 0)
		return 22;
	q = hb_import(c, &theirs.hid, 0);
	if (!q)
		return 23;
	for (r = 0; r <= PP_ROUNDS && !ret; r++) {
		struct hb_fence f = {.timeline = mine.tl, .value = r + 1};
		struct hb_event ev;

		if (r > 0) {
			/* B's answer to round r - 1. */
			struct hb_fence bf = {.timeline = theirs.tl, .value = r};
			struct hb_sync *s = hb_sync_open(c, &bf);
			size_t off;

			if (!s || hb_sync_wait(s, FENCE_WAIT_MS) != 0 || hb_sync_status(s) != 1) {
				fprintf(stderr, "A: round %u: B's point: %s\n", r, strerror(errno));
				ret = 1;
			}
			hb_sync_close(s);
			if (ret || hb_begin_cpu_access(c, &theirs.hid, HB_ACCESS_READ,
						       FENCE_WAIT_MS) != 0) {
				ret = 1;
				break;
			}
			off = tool_pattern_check(hb_import_data(q), PP_SIZE, pp_seed(1, r - 1));
			if (off != PP_SIZE) {
				fprintf(stderr, "A: round %u: Q differs at byte %zu\n", r - 1, off);
				ret = 1;
			}
			hb_end_cpu_access(c, &theirs.hid, HB_ACCESS_READ);
		}
		if (r == PP_ROUNDS)
			break;
		/* Waits for B's READ fence of the previous round on P (implicit sync). */
		if (hb_begin_cpu_access(c, &mine.hid, HB_ACCESS_WRITE, FENCE_WAIT_MS) != 0 ||
		    hb_attach_fence(c, &mine.hid, &f, HB_ACCESS_WRITE) != 0) {
			fprintf(stderr, "A: round %u: begin/attach: %s\n", r, strerror(errno));
			ret = 1;
			break;
		}
		tool_pattern_fill(hb_buffer_data(pb), PP_SIZE, pp_seed(0, r));
		if (hb_end_cpu_access(c, &mine.hid, HB_ACCESS_WRITE) != 0 ||
		    hb_timeline_signal(t, r + 1) != 0) {
			fprintf(stderr, "A: round %u: end/signal: %s\n", r, strerror(errno));
			ret = 1;
		}
		while (hb_next_event(c, &ev) == 0)
			;
	}
	if (it_pipe_read(sock, &theirs.tl, sizeof(theirs.tl), 60000) != 0 && !ret)
		ret = 24;
	hb_import_release(q);
	hb_buffer_free(pb);
	hb_timeline_destroy(t);
	hb_disconnect(c);
	return ret;
}

TEST(c34_data_written_before_signal_visible_after_wait)
{
	struct hbt_daemon d;
	struct pp_hello a, mine;
	struct hb_client *b;
	struct hb_timeline *t;
	struct hb_buffer *qb;
	struct hb_import *pim;
	uint64_t t0 = hbt_now_ms(), bye = 1;
	int sv[2];
	unsigned r;
	pid_t pa;

	hbt_daemon_start(&d, NULL);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	setenv("FENCE_PP_ADDR", hbt_addr_vm(&d, 1), 1);
	pa = hbt_fork(pp_side_a, &sv[1]);
	close(sv[1]);
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = FENCE_TL(b);
	qb = IT_ALLOC(b, 1, PP_SIZE, 0);
	IT_EXPORT(qb, NULL, 0, &mine.hid);
	mine.tl = hb_timeline_id(t);
	CHECK_EQ(it_pipe_read(sv[0], &a, sizeof(a), FENCE_WAIT_MS), 0);
	it_pipe_write(sv[0], &mine, sizeof(mine));
	pim = IT_IMPORT(b, &a.hid, 0);
	for (r = 0; r < PP_ROUNDS; r++) {
		struct hb_sync *s = FENCE_OPEN(b, a.tl, r + 1);
		struct hb_fence rf = {.timeline = mine.tl, .value = r + 1};
		struct hb_event ev;
		size_t off;

		FENCE_WAIT_DONE(s);
		FENCE_STATUS(s, 1);
		hb_sync_close(s);
		CHECK_EQ(hb_attach_fence(b, &a.hid, &rf, HB_ACCESS_READ), 0);
		CHECK_EQ(hb_begin_cpu_access(b, &a.hid, HB_ACCESS_READ, FENCE_WAIT_MS), 0);
		off = tool_pattern_check(hb_import_data(pim), PP_SIZE, pp_seed(0, r));
		if (off != PP_SIZE)
			hbt_fail(__FILE__, __LINE__, "round %u: P differs at byte %zu of %u", r, off,
				 PP_SIZE);
		CHECK_EQ(hb_end_cpu_access(b, &a.hid, HB_ACCESS_READ), 0);
		CHECK_EQ(hb_begin_cpu_access(b, &mine.hid, HB_ACCESS_WRITE, FENCE_WAIT_MS), 0);
		CHECK_EQ(hb_attach_fence(b, &mine.hid, &rf, HB_ACCESS_WRITE), 0);
		tool_pattern_fill(hb_buffer_data(qb), PP_SIZE, pp_seed(1, r));
		CHECK_EQ(hb_end_cpu_access(b, &mine.hid, HB_ACCESS_WRITE), 0);
		FENCE_SIGNAL(t, r + 1);
		while (hb_next_event(b, &ev) == 0)
			;
	}
	it_pipe_write(sv[0], &bye, sizeof(bye));
	CHECK_EQ(hbt_wait_child(pa), 0);
	printf("%u rounds of %u bytes each way, every byte checked: %llu ms\n", PP_ROUNDS,
	       PP_SIZE, (unsigned long long)(hbt_now_ms() - t0));
	close(sv[0]);
	hb_import_release(pim);
	hb_buffer_free(qb);
	hb_timeline_destroy(t);
	hb_disconnect(b);
	IT_STOP(&d);
}

/*
 * 35. Bad access flags are EINVAL (0, unknown bits, and the same for usages and a negative
 * timeout); a START that timed out changed nothing and a retry is correct (ETIME again while
 * the fence is pending, 0 once it signalled); END without START is accepted (the bracket keeps
 * no state, as DMA_BUF_IOCTL_SYNC). EINTR during START is c15's.
 */
TEST(c35_bad_flags_and_restartable_start)
{
	static const uint32_t bad[] = {0, 4, 8, 0x80000000u, 0xffffffffu};
	struct bx x;
	struct hb_fence f;
	unsigned i;
	int k;

	bx_start(&x, NULL, 4096);
	f.timeline = x.tla;
	f.value = 1;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_ERR(hb_begin_cpu_access(x.b, &x.hid, bad[i], 0), EINVAL);
		CHECK_ERR(hb_end_cpu_access(x.b, &x.hid, bad[i]), EINVAL);
		CHECK_ERR(hb_attach_fence(x.b, &x.hid, &f, bad[i]), EINVAL);
	}
	CHECK_ERR(hb_begin_cpu_access(x.b, &x.hid, R, -2), EINVAL);
	CHECK_ERR(hb_begin_cpu_access(x.b, NULL, R, 0), EINVAL);
	CHECK_ERR(hb_attach_fence(x.b, &x.hid, NULL, R), EINVAL);
	CHECK_ERR(hb_attach_fence(x.b, NULL, &f, R), EINVAL);
	/* Nothing of that was attached: the buffer is idle. */
	CHECK(B_FREE(&x, R | W));
	CHECK_EQ(hb_end_cpu_access(x.b, &x.hid, R | W), 0);
	A_ATTACH(&x, x.tla, 1, W);
	for (k = 0; k < 5; k++)
		CHECK_ERR(hb_begin_cpu_access(x.b, &x.hid, R, 20), ETIME);
	FA_SIGNAL(&x.a, x.ta, 1);
	CHECK_EQ(hb_begin_cpu_access(x.b, &x.hid, R, FENCE_WAIT_MS), 0);
	CHECK_EQ(hb_begin_cpu_access(x.b, &x.hid, R, 0), 0); /* a double START: fine */
	CHECK_EQ(hb_end_cpu_access(x.b, &x.hid, R), 0);
	CHECK_EQ(hb_end_cpu_access(x.b, &x.hid, R), 0);
	bx_stop(&x);
}

/*
 * 36. What a START covers (the EXPORT_SYNC_FILE snapshot of §2.4, the API having no export
 * call): an idle buffer needs no wait; READ covers the writers only; WRITE covers readers and
 * writers; a START that is already waiting waits for the fences it found: one attached while it
 * waits is not added to it (snapshot), though a later START sees it.
 */
struct begin_bg {
	struct hb_client *c;
	const struct hb_id *hid;
	uint32_t access;
	int ret, err;
};

static void *begin_bg_fn(void *p)
{
	struct begin_bg *g = p;

	errno = 0;
	g->ret = hb_begin_cpu_access(g->c, g->hid, g->access, FENCE_WAIT_MS);
	g->err = errno;
	return NULL;
}

TEST(c36_start_covers_the_right_fences)
{
	struct bx x;
	struct begin_bg g;
	pthread_t th;
	uint64_t tl2, waits;
	int t2;

	/* It sees B's blocked start by its wait in the daemon: B's fences are waits. */
	it_fences_as_waits(true);
	bx_start(&x, NULL, 4096);
	CHECK(B_FREE(&x, R));
	CHECK(B_FREE(&x, W));
	CHECK(B_FREE(&x, R | W));
	/* A reader's fence: writers wait, readers do not. */
	A_ATTACH(&x, x.tla, 1, R);
	CHECK(B_FREE(&x, R));
	CHECK(!B_FREE(&x, W));
	CHECK(!B_FREE(&x, R | W));
	FA_SIGNAL(&x.a, x.ta, 1);
	SEEN(&x, x.tla, 1);
	CHECK(B_FREE(&x, W));
	/* A writer's fence: everybody waits. */
	A_ATTACH(&x, x.tla, 2, W);
	CHECK(!B_FREE(&x, R));
	CHECK(!B_FREE(&x, W));
	/* Snapshot: B's READ start, blocked on (A, 2), gets a second writer fence while it waits;
	 * it still returns once (A, 2) signals. */
	t2 = FA_TIMELINE(&x.a, &tl2);
	waits = (uint64_t)IT_STAT(&x.d, "fence_waits");
	g = (struct begin_bg){.c = x.b, .hid = &x.hid, .access = R};
	CHECK(pthread_create(&th, NULL, begin_bg_fn, &g) == 0);
	/* The start has asked the daemon once its wait shows in the counters. */
	if (it_wait_stat(&x.d, "fence_waits", (long long)waits + 1) != (long long)waits + 1)
		hbt_fail(__FILE__, __LINE__, "B's blocked start holds no daemon wait");
	A_ATTACH(&x, tl2, 1, W);
	FA_SIGNAL(&x.a, x.ta, 2);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_EQ(g.ret, 0);
	CHECK_EQ(hb_end_cpu_access(x.b, &x.hid, R), 0);
	/* A new start sees the newer fence. */
	CHECK(!B_FREE(&x, R));
	FA_SIGNAL(&x.a, t2, 1);
	SEEN(&x, tl2, 1);
	CHECK(B_FREE(&x, R | W));
	bx_stop(&x);
	it_fences_as_waits(false);
}

/*
 * 37. Attach rules (dma_resv_add_fence): READ makes writers wait, not readers; WRITE makes
 * everyone wait; a later point of the same timeline replaces the entry (100 attaches of one
 * timeline never fill the reservation; waiting is for the latest); an earlier point is added,
 * not replacing the later one; a usage is never downgraded (WRITE then READ of one point
 * still blocks readers) but is promoted (READ then WRITE blocks readers); a completed fence
 * (signalled or failed) is accepted and changes nothing; HB_RESV_MAX distinct pending
 * timelines fill it (ENOSPC), completed entries make room again; attaching is for the two
 * sides of the share only, with a timeline both can see (ENOENT otherwise).
 */
TEST(c37_attach_rules)
{
	struct bx x;
	struct fence_agent c, h;
	struct hb_fence f;
	struct fa_rep r;
	uint64_t tls[HB_RESV_MAX + 1], tlh;
	int ts[HB_RESV_MAX + 1], i, th;

	bx_start(&x, NULL, 4096);
	/* Same timeline, later points: replaced, never full. */
	for (i = 1; i <= 100; i++)
		CHECK_EQ(hb_attach_fence(x.b, &x.hid, &(struct hb_fence){x.tlb, (uint64_t)i}, W), 0);
	FENCE_SIGNAL(x.tb, 99);
	CHECK(!B_FREE(&x, R));
	FENCE_SIGNAL(x.tb, 100);
	CHECK(B_FREE(&x, R | W));
	/* An earlier point after a later one: both held; the later still counts. */
	A_ATTACH(&x, x.tla, 5, W);
	A_ATTACH(&x, x.tla, 3, W);
	FA_SIGNAL(&x.a, x.ta, 3);
	SEEN(&x, x.tla, 3);
	CHECK(!B_FREE(&x, R));
	FA_SIGNAL(&x.a, x.ta, 5);
	SEEN(&x, x.tla, 5);
	CHECK(B_FREE(&x, R));
	/* Never downgraded: WRITE then READ of the same point. */
	A_ATTACH(&x, x.tla, 10, W);
	A_ATTACH(&x, x.tla, 10, R);
	CHECK(!B_FREE(&x, R));
	FA_SIGNAL(&x.a, x.ta, 10);
	SEEN(&x, x.tla, 10);
	CHECK(B_FREE(&x, R));
	/* Promoted: READ then WRITE. */
	A_ATTACH(&x, x.tla, 20, R);
	CHECK(B_FREE(&x, R));
	A_ATTACH(&x, x.tla, 20, W);
	CHECK(!B_FREE(&x, R));
	/* A failed fence is a completed one. */
	FA_FAIL(&x.a, x.ta, 20, -EIO);
	{
		struct hb_sync *s = FENCE_OPEN(x.b, x.tla, 20);

		FENCE_WAIT_DONE(s);
		FENCE_STATUS(s, -EIO);
		hb_sync_close(s);
	}
	CHECK(B_FREE(&x, R | W));
	/* Completed fences are accepted and change nothing. */
	A_ATTACH(&x, x.tla, 7, W);
	CHECK_EQ(hb_attach_fence(x.b, &x.hid, &(struct hb_fence){x.tlb, 1}, W), 0);
	CHECK(B_FREE(&x, R | W));
	/* HB_RESV_MAX distinct pending timelines fill the reservation. */
	for (i = 0; i <= HB_RESV_MAX; i++)
		ts[i] = FA_TIMELINE(&x.a, &tls[i]);
	for (i = 0; i < HB_RESV_MAX; i++)
		A_ATTACH(&x, tls[i], 1, i % 2 ? R : W);
	r = FA_CALL(&x.a, FA_ATTACH, 0, tls[HB_RESV_MAX], 1, W, &x.hid);
	CHECK(r.ret == -1 && r.err == ENOSPC);
	f.timeline = tls[HB_RESV_MAX];
	f.value = 1;
	CHECK_ERR(hb_attach_fence(x.b, &x.hid, &f, R), ENOSPC);
	/* A later point of a timeline already in it still fits (it replaces). */
	A_ATTACH(&x, tls[0], 2, W);
	/* The existing ones still work; completed ones make room. */
	CHECK(!B_FREE(&x, R));
	FA_SIGNAL(&x.a, ts[0], 2);
	for (i = 1; i < HB_RESV_MAX; i++)
		FA_SIGNAL(&x.a, ts[i], 1);
	for (i = 0; i < HB_RESV_MAX; i++)
		SEEN(&x, tls[i], i == 0 ? 2 : 1);
	CHECK(B_FREE(&x, R | W));
	A_ATTACH(&x, tls[HB_RESV_MAX], 1, W);
	CHECK(!B_FREE(&x, R));
	FA_SIGNAL(&x.a, ts[HB_RESV_MAX], 1);
	SEEN(&x, tls[HB_RESV_MAX], 1);
	CHECK(B_FREE(&x, R));
	/* Only the two sides, only with a timeline both see. */
	FENCE_AGENT_START(&c, hbt_addr_vm(&x.d, 3), "C(vm3)");
	FENCE_AGENT_START(&h, hbt_addr_host(&x.d), "host");
	r = FA_CALL(&c, FA_ATTACH, 0, x.tla, 100, W, &x.hid);
	CHECK(r.ret == -1 && r.err == ENOENT);
	r = FA_CALL(&c, FA_BEGIN, 0, R, 0, 0, &x.hid);
	CHECK(r.ret == -1 && r.err == ENOENT);
	th = FA_TIMELINE(&h, &tlh); /* vm1 sees the host's timelines, vm2 does not */
	r = FA_CALL(&x.a, FA_ATTACH, 0, tlh, 1, W, &x.hid);
	CHECK(r.ret == -1 && r.err == ENOENT);
	f.timeline = tlh;
	CHECK_ERR(hb_attach_fence(x.b, &x.hid, &f, W), ENOENT);
	f.timeline = x.tla ^ 0x77;
	CHECK_ERR(hb_attach_fence(x.b, &x.hid, &f, W), ENOENT);
	CHECK(B_FREE(&x, R | W));
	FA_DESTROY(&h, th);
	FENCE_AGENT_STOP(&c);
	FENCE_AGENT_STOP(&h);
	bx_stop(&x);
}

/*
 * 38. Freshly allocated buffers are zero in any VM, including memory another VM just freed
 * (heap tests 2 and 3): A fills 32 x 4 KiB and 8 x 1 MiB under WRITE brackets, frees them; B
 * allocates as many and reads zeros under READ brackets, and A, importing them, does too.
 */
TEST(c38_fresh_buffers_zero_across_vms)
{
	static const size_t sizes[2] = {4096, 1u << 20};
	static const int counts[2] = {32, 8};
	struct hbt_daemon d;
	struct fence_agent a;
	struct hb_client *b;
	int k, i;

	hbt_daemon_start(&d, NULL);
	FENCE_AGENT_START(&a, hbt_addr_vm(&d, 1), "A(vm1)");
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (k = 0; k < 2; k++) {
		struct hb_buffer *bb[32];
		struct hb_id ids[32];
		int idx[32];

		for (i = 0; i < counts[k]; i++) {
			struct fa_rep r = FA_OK_CALL(&a, FA_ALLOC, 0, 2, sizes[k], 0, NULL);

			idx[i] = (int)r.ret;
			ids[i] = r.id;
			FA_OK_CALL(&a, FA_BEGIN, 0, W, 0, 0, &ids[i]);
			FA_OK_CALL(&a, FA_FILL, idx[i], 0, 0xff00 + (uint64_t)i, 0, NULL);
			FA_OK_CALL(&a, FA_END, 0, W, 0, 0, &ids[i]);
			if (i == FA_MAX_BUF - 1 || i == counts[k] - 1) {
				/* The agent's table is small: free in batches. */
				int j;

				for (j = 0; j <= i % FA_MAX_BUF; j++)
					FA_OK_CALL(&a, FA_FREE, j, 0, 0, 0, NULL);
			}
		}
		IT_CHECK_STAT(&d, "pool.b.pages_used", 0);
		for (i = 0; i < counts[k]; i++) {
			struct fa_rep r;

			bb[i] = IT_ALLOC(b, 1, sizes[k], 0);
			IT_EXPORT(bb[i], NULL, 0, &ids[i]);
			CHECK_EQ(hb_begin_cpu_access(b, &ids[i], R, FENCE_WAIT_MS), 0);
			if (!it_all_bytes(hb_buffer_data(bb[i]), sizes[k], 0))
				hbt_fail(__FILE__, __LINE__, "vm2's new buffer %d of %zu bytes is not zero",
					 i, sizes[k]);
			CHECK_EQ(hb_end_cpu_access(b, &ids[i], R), 0);
			if (i < FA_MAX_BUF) {
				int im;

				r = FA_OK_CALL(&a, FA_IMPORT, 0, 0, 0, 0, &ids[i]);
				im = (int)r.ret;
				FA_OK_CALL(&a, FA_BEGIN, 0, R, 0, 0, &ids[i]);
				/* The all-zero pattern check: a GET64 of a few words is cheap and
				 * the full check was just done in vm2 on the same pages. */
				r = FA_OK_CALL(&a, FA_GET64, im, 1, sizes[k] - 8, 0, NULL);
				CHECK_EQ(r.val, 0);
				r = FA_OK_CALL(&a, FA_GET64, im, 1, 0, 0, NULL);
				CHECK_EQ(r.val, 0);
				FA_OK_CALL(&a, FA_END, 0, R, 0, 0, &ids[i]);
				FA_OK_CALL(&a, FA_RELEASE, im, 0, 0, 0, NULL);
			}
		}
		for (i = 0; i < counts[k]; i++)
			hb_buffer_free(bb[i]);
	}
	FENCE_AGENT_STOP(&a);
	hb_disconnect(b);
	IT_STOP(&d);
}

/*
 * 39. Request ABI (heap tests 4 and 5): invalid sizes, flags and handles are rejected with
 * their errors; on the wire, a fence request with an unknown extra field is accepted (newer
 * client, older daemon: protobuf skips it), one with fields missing takes their zero defaults
 * (SyncOpen without a value: point 0, born signalled), an errno out of range is EINVAL, and
 * hids must be 16 bytes.
 */
static void put_varint(uint8_t *buf, size_t *n, uint64_t v)
{
	while (v >= 0x80) {
		buf[(*n)++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	buf[(*n)++] = (uint8_t)v;
}

TEST(c39_request_abi_and_invalid_requests)
{
	struct bx x;
	struct it_raw r;
	struct hb_id nobody;
	struct hb_fence f = {0};
	uint64_t seed = 39;
	uint8_t frame[64], inner[32];
	size_t n = 0, ni = 0;
	ServerMsg *s;
	int why;

	bx_start(&x, NULL, 4096);
	CHECK_ERR(hb_buffer_alloc(x.b, 1, 0, 0), EINVAL);
	CHECK_ERR(hb_buffer_alloc(x.b, 1, 4096, 0x80), EINVAL);
	CHECK_ERR(hb_buffer_alloc(x.b, 2, 4096, 0), EINVAL); /* itself */
	it_random_id(&nobody, &seed);
	f.timeline = x.tla;
	f.value = 1;
	CHECK_ERR(hb_attach_fence(x.b, &nobody, &f, W), ENOENT);
	CHECK_ERR(hb_begin_cpu_access(x.b, &nobody, R, 0), ENOENT);
	CHECK_ERR(hb_end_cpu_access(x.b, &nobody, R), ENOENT);

	hbt_raw_session(&r, x.d.socket, HBP_ROLE_CLIENT);
	/* SyncOpen{timeline, value = 5, field 9 = 42 (unknown)} in ClientMsg{id = 100,
	 * sync_open = 15}, plus an unknown field 99 in ClientMsg itself. */
	inner[ni++] = 0x08;
	put_varint(inner, &ni, x.tla);
	inner[ni++] = 0x10;
	put_varint(inner, &ni, 5);
	inner[ni++] = 0x48;
	inner[ni++] = 42;
	frame[n++] = 0x08;
	put_varint(frame, &n, 100);
	frame[n++] = 0x7a;
	put_varint(frame, &n, ni);
	memcpy(frame + n, inner, ni);
	n += ni;
	put_varint(frame, &n, (99u << 3) | 0);
	frame[n++] = 1;
	CHECK_EQ(it_raw_send_frame(&r, frame, n, UINT64_MAX), 0);
	s = it_raw_recv(&r, IT_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 100);
	CHECK_EQ(s->error, 0);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_SYNC);
	CHECK_EQ(s->sync->status, 0); /* point 5, pending */
	CHECK(s->sync->wait != 0);
	CHECK_EQ(s->sync->owner, 1);
	server_msg__free_unpacked(s, NULL);
	{
		ClientMsg m = CLIENT_MSG__INIT;
		SyncOpen so = SYNC_OPEN__INIT;
		TimelineSignal ts = TIMELINE_SIGNAL__INIT;
		TimelineCreate tc = TIMELINE_CREATE__INIT;
		CpuAccess ca = CPU_ACCESS__INIT;
		uint8_t short_hid[15] = {0};

		/* No value: point 0, born signalled. */
		so.timeline = x.tla;
		IT_MSG(m, SYNC_OPEN, sync_open, &so);
		s = IT_RAW_CALL(&r, &m);
		CHECK_EQ(s->error, 0);
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_SYNC);
		CHECK_EQ(s->sync->status, 1);
		CHECK_EQ(s->sync->wait, 0);
		server_msg__free_unpacked(s, NULL);
		/* An errno out of range on our own timeline. */
		m = (ClientMsg)CLIENT_MSG__INIT;
		IT_MSG(m, TIMELINE_CREATE, timeline_create, &tc);
		s = IT_RAW_CALL(&r, &m);
		CHECK_EQ(s->error, 0);
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_TIMELINE);
		ts.timeline = s->timeline->timeline;
		server_msg__free_unpacked(s, NULL);
		ts.value = 1;
		ts.error = 4096;
		m = (ClientMsg)CLIENT_MSG__INIT;
		IT_MSG(m, TIMELINE_SIGNAL, timeline_signal, &ts);
		CHECK_EQ(IT_RAW_ERR(&r, &m), EINVAL);
		/* CPU access with no access bits. */
		ca.hid.data = x.hid.bytes;
		ca.hid.len = 16;
		ca.access = 0;
		m = (ClientMsg)CLIENT_MSG__INIT;
		IT_MSG(m, CPU_ACCESS, cpu_access, &ca);
		CHECK_EQ(IT_RAW_ERR(&r, &m), EINVAL);
		/* A 15-byte hid is a protocol violation: the session is dropped. */
		ca.hid.data = short_hid;
		ca.hid.len = 15;
		ca.access = HB_ACCESS_READ;
		m = (ClientMsg)CLIENT_MSG__INIT;
		m.id = 77;
		IT_MSG(m, CPU_ACCESS, cpu_access, &ca);
		CHECK_EQ(it_raw_send(&r, &m), 0);
		CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	}
	it_raw_close(&r);
	bx_stop(&x);
}
