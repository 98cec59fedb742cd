/*
 * Fence conformance, part 1: shared/research/fences.md §5.7 assertions 1-26 (fence basics,
 * ordering, errors, waits and timeouts, merge, handles), one case per assertion, named cNN_...
 * after its number. Parts 2-4: test_it_fence_failure.c (27-32), test_it_fence_buffers.c
 * (33-39), test_it_fence_stress.c (40-43). The contract is include/hyperbuf.h's fence section.
 *
 * Layout: VM A = vm1, an emulated VM in its own process (an agent, tests/fence_common.h), owns
 * the timelines; VM B = vm2, this process, opens and waits; VM C = another agent (vm3, or the
 * host, which may see every timeline). "Not yet" checks come after a barrier (a point the owner
 * just reached, opened and waited for in B), so a late notification cannot pass for a correct
 * one; "signalled" checks wait with a generous timeout.
 *
 * Where the API has no call for what §5.7 names (member lists, timestamps: there is no
 * SYNC_IOC_FILE_INFO equivalent), the case checks the observable behaviour instead and says so.
 */
#include "tests/fence_common.h"

struct fx {
	struct hbt_daemon d;
	struct fence_agent a; /* VM A: vm1 */
	struct hb_client *b;  /* VM B: vm2 */
	int ta;               /* A's timeline (index in A) */
	uint64_t tl;          /* its id */
};

static void fx_start(struct fx *x, const char *extra)
{
	hbt_daemon_start(&x->d, extra);
	FENCE_AGENT_START(&x->a, hbt_addr_vm(&x->d, 1), "A(vm1)");
	x->b = IT_CONNECT(hbt_addr_vm(&x->d, 2));
	x->ta = FA_TIMELINE(&x->a, &x->tl);
	it_drain(x->b);
}

static void fx_stop(struct fx *x)
{
	FENCE_AGENT_STOP(&x->a);
	hb_disconnect(x->b);
	IT_STOP(&x->d);
}

/* The next HB_EVENT_FENCE of c (other events skipped): 0 with *f, or -1 within ms. */
static int next_fence_event(struct hb_client *c, struct hb_fence *f, uint32_t *domain, int ms)
{
	struct hb_event ev;

	if (it_wait_event_at(__FILE__, __LINE__, c, HB_EVENT_FENCE, &ev, ms) != 0)
		return -1;
	CHECK_EQ(hb_event_fence(&ev, f), 0);
	CHECK_EQ(ev.size, f->value);
	CHECK_EQ(ev.meta_len, 0);
	if (domain)
		*domain = ev.domain;
	return 0;
}

/* ---- fence basics ------------------------------------------------------------------------- */

/* 1. A new point above the timeline value is pending: status 0, a zero-timeout poll of its fd
 * is not ready (even after dispatching), a zero-timeout wait times out. */
TEST(c01_new_point_is_pending)
{
	struct fx x;
	struct hb_sync *s;

	fx_start(&x, NULL);
	FA_SIGNAL(&x.a, x.ta, 3);
	FENCE_BARRIER(x.b, x.tl, 3);
	s = FENCE_OPEN(x.b, x.tl, 4);
	FENCE_STATUS(s, 0);
	CHECK(!FENCE_FD_READY(s));
	CHECK_EQ(FENCE_POLL_WAIT(x.b, s, 0), 0);
	CHECK_EQ(FENCE_POLL_WAIT(x.b, s, 100), 0);
	FENCE_NOT_YET(s);
	FENCE_STATUS(s, 0);
	hb_sync_close(s);
	fx_stop(&x);
}

/* 2. A point at or below the value is born signalled: status 1 and a readable fd at once
 * (no dispatch needed, no wait), in the owner's domain and in another. No HB_EVENT_FENCE is
 * queued for it (the header's rule). The API has no timestamp to check. */
TEST(c02_point_at_or_below_value_born_signalled)
{
	struct fx x;
	struct hb_sync *s[3];
	struct hb_fence f;
	int sa, i;

	fx_start(&x, NULL);
	/* Point 0 on a fresh timeline (value 0) is already reached. */
	s[0] = FENCE_OPEN(x.b, x.tl, 0);
	FA_SIGNAL(&x.a, x.ta, 10);
	FENCE_BARRIER(x.b, x.tl, 10);
	it_drain(x.b);
	s[1] = FENCE_OPEN(x.b, x.tl, 10);
	s[2] = FENCE_OPEN(x.b, x.tl, 7);
	for (i = 0; i < 3; i++) {
		FENCE_STATUS(s[i], 1);
		CHECK(FENCE_FD_READY(s[i]));
		CHECK_EQ(hb_sync_wait(s[i], 0), 0);
	}
	sa = FA_OPEN(&x.a, x.tl, 9);
	CHECK_EQ(FA_STATUS(&x.a, sa), 1);
	CHECK_EQ(next_fence_event(x.b, &f, NULL, 300), -1);
	for (i = 0; i < 3; i++)
		hb_sync_close(s[i]);
	fx_stop(&x);
}

/* 3. Advancing to exactly N signals N and every point up to it; points above N stay pending.
 * No reply overtakes a completion (PROTOCOL.md): when the owner's signal returns, its own
 * handles up to N are complete, fds readable with no further call; when B's open of point N is
 * born complete, B's handles up to N are too. Each completed point a client holds a sync on is
 * reported once by HB_EVENT_FENCE, with the timeline, the value and the owner's domain. */
TEST(c03_advance_to_exactly_n)
{
	struct fx x;
	struct hb_sync *s[8], *born;
	struct hb_fence f;
	uint32_t dom;
	int i, events = 0, own[8];

	fx_start(&x, NULL);
	for (i = 0; i < 8; i++) {
		s[i] = FENCE_OPEN(x.b, x.tl, (uint64_t)i + 1); /* points 1..8 */
		own[i] = FA_OPEN(&x.a, x.tl, (uint64_t)i + 1);
	}
	FA_SIGNAL(&x.a, x.ta, 5);
	for (i = 0; i < 8; i++)
		CHECK_EQ(FA_CALL(&x.a, FA_FDREADY, own[i], 0, 0, 0, NULL).ret, i < 5);
	born = FENCE_OPEN(x.b, x.tl, 5);
	FENCE_STATUS(born, 1);
	for (i = 0; i < 8; i++)
		CHECK_EQ(FENCE_FD_READY(s[i]), i < 5);
	hb_sync_close(born);
	for (i = 0; i < 8; i++) {
		FENCE_STATUS(s[i], i < 5 ? 1 : 0);
		CHECK_EQ(FENCE_FD_READY(s[i]), i < 5);
	}
	FENCE_NOT_YET(s[5]);
	/* Events: points 1..5 exactly once each, in order, naming A's timeline and domain. */
	while (next_fence_event(x.b, &f, &dom, 300) == 0) {
		CHECK_EQ(f.timeline, x.tl);
		CHECK_EQ(dom, 1);
		CHECK_EQ(f.value, (uint64_t)events + 1);
		events++;
	}
	CHECK_EQ(events, 5);
	FA_SIGNAL(&x.a, x.ta, 8);
	FENCE_WAIT_DONE(s[7]);
	for (i = 0; i < 8; i++) {
		FENCE_STATUS(s[i], 1);
		CHECK_EQ(FA_STATUS(&x.a, own[i]), 1);
	}
	for (i = 0; i < 8; i++) {
		hb_sync_close(s[i]);
		FA_CLOSE(&x.a, own[i]);
	}
	fx_stop(&x);
}

/* 4. Signalled stays signalled: further advances, repeated waits and polls keep reporting
 * ready; signalling the same or a lower value again is a no-op that returns 0; a failure
 * aimed at an already reached value changes nothing. */
TEST(c04_signalled_stays_signalled)
{
	struct fx x;
	struct hb_sync *s;
	struct fa_rep r;
	int i;

	fx_start(&x, NULL);
	s = FENCE_OPEN(x.b, x.tl, 2);
	FA_SIGNAL(&x.a, x.ta, 2);
	FENCE_WAIT_DONE(s);
	for (i = 0; i < 3; i++) {
		r = FA_CALL(&x.a, FA_TL_SIGNAL, x.ta, 2, 0, 0, NULL); /* the same value */
		CHECK_EQ(r.ret, 0);
		r = FA_CALL(&x.a, FA_TL_SIGNAL, x.ta, 1, 0, 0, NULL); /* a lower one */
		CHECK_EQ(r.ret, 0);
		r = FA_CALL(&x.a, FA_TL_FAIL, x.ta, 2, (uint64_t)(int64_t)-EIO, 0, NULL);
		CHECK_EQ(r.ret, 0);
	}
	FA_SIGNAL(&x.a, x.ta, 100);
	FENCE_BARRIER(x.b, x.tl, 100);
	for (i = 0; i < 20; i++) {
		CHECK_EQ(hb_sync_wait(s, 0), 0);
		CHECK_EQ(hb_sync_wait(s, 10), 0);
		CHECK(FENCE_FD_READY(s));
		CHECK_EQ(FENCE_POLL_WAIT(x.b, s, 0), 1);
		FENCE_STATUS(s, 1);
	}
	hb_sync_close(s);
	fx_stop(&x);
}

/* 5. Two opens of one (timeline, value) are one fence: both complete together, with the same
 * status, including an error, and an open after the point failed is born with that error; a
 * merge of the two behaves as the point itself. (No API exposes fence identity or member
 * counts: this is the observable part.) */
TEST(c05_same_point_is_one_fence)
{
	struct fx x;
	struct hb_sync *s1, *s2, *m, *e1, *e2;

	fx_start(&x, NULL);
	s1 = FENCE_OPEN(x.b, x.tl, 3);
	s2 = FENCE_OPEN(x.b, x.tl, 3);
	m = FENCE_MERGE(s1, s2);
	e1 = FENCE_OPEN(x.b, x.tl, 5);
	e2 = FENCE_OPEN(x.b, x.tl, 5);
	FA_SIGNAL(&x.a, x.ta, 2);
	FENCE_BARRIER(x.b, x.tl, 2);
	FENCE_NOT_YET(s1);
	FENCE_NOT_YET(s2);
	FENCE_NOT_YET(m);
	FA_SIGNAL(&x.a, x.ta, 3);
	FENCE_WAIT_DONE(s1);
	FENCE_STATUS(s2, 1);
	CHECK(FENCE_FD_READY(s2));
	FENCE_STATUS(m, 1);
	FA_FAIL(&x.a, x.ta, 5, -ECANCELED);
	FENCE_WAIT_DONE(e1);
	FENCE_STATUS(e1, -ECANCELED);
	FENCE_STATUS(e2, -ECANCELED);
	/* Opened again after it failed: still that fence, born with its error (not with 1). */
	hb_sync_close(e2);
	e2 = FENCE_OPEN(x.b, x.tl, 5);
	FENCE_STATUS(e2, -ECANCELED);
	CHECK(FENCE_FD_READY(e2));
	hb_sync_close(s1);
	hb_sync_close(s2);
	hb_sync_close(m);
	hb_sync_close(e1);
	hb_sync_close(e2);
	fx_stop(&x);
}

/* 6. Timeline ids are unique across domains and never reused: many created in three domains,
 * destroyed, created again, and again after a daemon restart: all distinct, none 0. */
TEST(c06_timeline_ids_unique_never_reused)
{
	enum { PER = 20 };
	static uint64_t ids[2][3 * 2 * PER];
	struct hbt_daemon d;
	int run, n, i, j;

	for (run = 0; run < 2; run++) {
		struct fence_agent ag[3];
		int k;

		hbt_daemon_start(&d, NULL);
		FENCE_AGENT_START(&ag[0], hbt_addr_vm(&d, 1), "vm1");
		FENCE_AGENT_START(&ag[1], hbt_addr_vm(&d, 2), "vm2");
		FENCE_AGENT_START(&ag[2], hbt_addr_host(&d), "host");
		n = 0;
		for (k = 0; k < 3; k++) {
			int pass;

			for (pass = 0; pass < 2; pass++) {
				int t[PER];

				for (i = 0; i < PER; i++)
					t[i] = FA_TIMELINE(&ag[k], &ids[run][n++]);
				for (i = 0; i < PER; i++)
					FA_DESTROY(&ag[k], t[i]);
			}
			FENCE_AGENT_STOP(&ag[k]);
		}
		IT_STOP(&d);
	}
	for (i = 0; i < 2 * 3 * 2 * PER; i++) {
		uint64_t v = ids[i / (3 * 2 * PER)][i % (3 * 2 * PER)];

		CHECK(v != 0);
		for (j = i + 1; j < 2 * 3 * 2 * PER; j++) {
			if (ids[j / (3 * 2 * PER)][j % (3 * 2 * PER)] == v)
				hbt_fail(__FILE__, __LINE__, "timeline id %#llx handed out twice",
					 (unsigned long long)v);
		}
	}
}

/* 7. 64-bit values: points above 2^32 order correctly, an advance of more than 2^31 in one call
 * works, and values near 2^64 do not wrap. */
TEST(c07_64bit_values_no_wrap)
{
	static const uint64_t pts[] = {
	    (1ull << 31) + 2,     (1ull << 32) - 1,    1ull << 32,          (1ull << 32) + 5,
	    (1ull << 33) + 1,     (1ull << 63) - 1,    1ull << 63,          (1ull << 63) + 1,
	    UINT64_MAX - 1,       UINT64_MAX,
	};
	enum { N = sizeof(pts) / sizeof(pts[0]) };
	struct fx x;
	struct hb_sync *s[N], *lo;
	int i;

	fx_start(&x, NULL);
	for (i = 0; i < N; i++)
		s[i] = FENCE_OPEN(x.b, x.tl, pts[i]);
	lo = FENCE_OPEN(x.b, x.tl, 5);
	/* From 1 to 2^31 + 2 in one call: more than 2^31. */
	FA_SIGNAL(&x.a, x.ta, 1);
	FA_SIGNAL(&x.a, x.ta, (1ull << 31) + 2);
	FENCE_WAIT_DONE(s[0]);
	FENCE_STATUS(lo, 1);
	for (i = 1; i < N; i++)
		FENCE_NOT_YET(s[i]);
	/* 2^32 + 4: 2^32 - 1 and 2^32 done, 2^32 + 5 not (no 32-bit truncation to 4). */
	FA_SIGNAL(&x.a, x.ta, (1ull << 32) + 4);
	FENCE_WAIT_DONE(s[2]);
	FENCE_BARRIER(x.b, x.tl, (1ull << 32) + 4);
	FENCE_STATUS(s[1], 1);
	for (i = 3; i < N; i++)
		FENCE_NOT_YET(s[i]);
	/* 2^63: everything up to it; a signed comparison would get this wrong. */
	FA_SIGNAL(&x.a, x.ta, 1ull << 63);
	FENCE_WAIT_DONE(s[6]);
	FENCE_BARRIER(x.b, x.tl, 1ull << 63);
	for (i = 0; i < N; i++)
		FENCE_STATUS(s[i], i <= 6 ? 1 : 0);
	FA_SIGNAL(&x.a, x.ta, UINT64_MAX - 1);
	FENCE_WAIT_DONE(s[8]);
	FENCE_BARRIER(x.b, x.tl, UINT64_MAX - 1);
	FENCE_NOT_YET(s[9]);
	FA_SIGNAL(&x.a, x.ta, UINT64_MAX);
	FENCE_WAIT_DONE(s[9]);
	for (i = 0; i < N; i++)
		hb_sync_close(s[i]);
	hb_sync_close(lo);
	fx_stop(&x);
}

/* ---- ordering ----------------------------------------------------------------------------- */

/*
 * 8. Across VMs, no importer ever sees point N complete while an earlier point of the same
 * timeline is pending: A advances one timeline by random steps (some large, some 1, with
 * failures mixed in); two observers in two other domains (vm2 and the host), each its own
 * process, hold every point open (opened in a shuffled order) and keep checking, highest
 * first, that completion is a prefix; their HB_EVENT_FENCE events for the timeline arrive in
 * increasing value order.
 */
#define ORDER_POINTS 1000

struct order_arg {
	const char *addr;
	int sock;
};

static int order_observer(void *p)
{
	struct order_arg *o = p;
	struct hb_client *c = hb_connect(o->addr);
	static struct hb_sync *s[ORDER_POINTS + 1];
	uint64_t tl, last_ev = 0, checks = 0, t_end;
	char ok = 'K';
	int i, ret = 0;

	if (!c || it_pipe_read(o->sock, &tl, sizeof(tl), FENCE_WAIT_MS) != 0)
		return 20;
	/* Opened in a shuffled order: value order must not come from opening order. */
	{
		static int perm[ORDER_POINTS + 1];
		uint64_t seed = (uint64_t)getpid();

		for (i = 1; i <= ORDER_POINTS; i++)
			perm[i] = i;
		for (i = ORDER_POINTS; i > 1; i--) {
			int j = 1 + (int)(it_rand(&seed) % (uint64_t)i), t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
		for (i = 1; i <= ORDER_POINTS; i++) {
			struct hb_fence f = {.timeline = tl, .value = (uint64_t)perm[i]};

			s[perm[i]] = hb_sync_open(c, &f);
			if (!s[perm[i]])
				return 21;
		}
	}
	if (write(o->sock, &ok, 1) != 1)
		return 22;
	t_end = hbt_now_ms() + 30000;
	for (;;) {
		struct hb_event ev;
		struct hb_fence f;
		int highest_done = 0;

		hb_dispatch(c, 1);
		while (hb_next_event(c, &ev) == 0) {
			if (ev.type != HB_EVENT_FENCE || hb_event_fence(&ev, &f) != 0)
				continue;
			if (f.timeline == tl) {
				if (f.value <= last_ev) {
					fprintf(stderr, "%s: event for %llu after %llu\n", o->addr,
						(unsigned long long)f.value,
						(unsigned long long)last_ev);
					ret = 1;
				}
				last_ev = f.value;
			}
		}
		/* Highest first: once a point is seen complete, every lower one must be. */
		for (i = ORDER_POINTS; i >= 1; i--) {
			int st = hb_sync_status(s[i]);

			if (st != 0 && !highest_done)
				highest_done = i;
			if (st == 0 && highest_done) {
				fprintf(stderr, "%s: point %d pending while %d is complete\n",
					o->addr, i, highest_done);
				ret = 1;
				break;
			}
		}
		checks++;
		/* The signaller pauses now and then until each observer has taken one more
		 * snapshot, so the check sees intermediate states however loaded the machine. */
		{
			char req;

			if (recv(o->sock, &req, 1, MSG_DONTWAIT) == 1 && write(o->sock, "A", 1) != 1)
				ret = 1;
		}
		if (highest_done == ORDER_POINTS || ret || hbt_now_ms() > t_end)
			break;
	}
	if (checks < 20) {
		fprintf(stderr, "%s: only %llu snapshots: the check saw too little\n", o->addr,
			(unsigned long long)checks);
		ret = 1;
	}
	if (hb_sync_status(s[ORDER_POINTS]) == 0) {
		fprintf(stderr, "%s: the last point never completed\n", o->addr);
		ret = 1;
	}
	printf("%s: %llu consistent snapshots\n", o->addr, (unsigned long long)checks);
	for (i = 1; i <= ORDER_POINTS; i++)
		hb_sync_close(s[i]);
	hb_disconnect(c);
	return ret;
}

TEST(c08_importers_see_points_in_order)
{
	struct hbt_daemon d;
	struct fence_agent a;
	struct order_arg o[2];
	pid_t pid[2];
	uint64_t tl, v = 0, seed = 0x0bde7 ^ (uint64_t)getpid();
	int sock[2], k, ta;
	char ok;

	hbt_daemon_start(&d, NULL);
	for (k = 0; k < 2; k++) {
		int sv[2];

		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		o[k].addr = k == 0 ? hbt_addr_vm(&d, 2) : hbt_addr_host(&d);
		o[k].sock = sv[1];
		pid[k] = hbt_fork(order_observer, &o[k]);
		close(sv[1]);
		sock[k] = sv[0];
	}
	FENCE_AGENT_START(&a, hbt_addr_vm(&d, 1), "A(vm1)");
	ta = FA_TIMELINE(&a, &tl);
	for (k = 0; k < 2; k++) {
		it_pipe_write(sock[k], &tl, sizeof(tl));
		CHECK_EQ(it_pipe_read(sock[k], &ok, 1, FENCE_WAIT_MS), 0);
	}
	while (v < ORDER_POINTS) {
		uint64_t r = it_rand(&seed) % 16, step = r < 8 ? 1 : r < 14 ? 1 + r : 40;

		v = v + step > ORDER_POINTS ? ORDER_POINTS : v + step;
		if (r == 3)
			FA_FAIL(&a, ta, v, -EIO);
		else
			FA_SIGNAL(&a, ta, v);
		/* Pauses now and then until both observers took a snapshot of this state, so
		 * they see many intermediate states on any machine (not only an idle one). */
		if (r % 2 == 0 && v < ORDER_POINTS) {
			for (k = 0; k < 2; k++)
				it_pipe_write(sock[k], "S", 1);
			for (k = 0; k < 2; k++)
				CHECK_EQ(it_pipe_read(sock[k], &ok, 1, FENCE_WAIT_MS), 0);
		}
	}
	for (k = 0; k < 2; k++) {
		CHECK_EQ(hbt_wait_child(pid[k]), 0);
		close(sock[k]);
	}
	FA_DESTROY(&a, ta);
	FENCE_AGENT_STOP(&a);
	IT_STOP(&d);
}

/* 9. A failure up to V gives every pending point <= V the error, oldest first (events in
 * value order), and never alters points already complete; later points stay pending. */
TEST(c09_fail_respects_order)
{
	struct fx x;
	struct hb_sync *s[12];
	struct hb_fence f;
	int i;

	fx_start(&x, NULL);
	for (i = 11; i >= 0; i--)
		s[i] = FENCE_OPEN(x.b, x.tl, (uint64_t)i + 1); /* points 12..1: not in value order */
	FA_SIGNAL(&x.a, x.ta, 3);
	FENCE_WAIT_DONE(s[2]);
	it_drain(x.b);
	FA_FAIL(&x.a, x.ta, 7, -EIO);
	FENCE_WAIT_DONE(s[6]);
	for (i = 0; i < 12; i++)
		FENCE_STATUS(s[i], i < 3 ? 1 : i < 7 ? -EIO : 0);
	for (i = 4; i <= 7; i++) {
		CHECK_EQ(next_fence_event(x.b, &f, NULL, IT_WAIT_MS), 0);
		CHECK_EQ(f.value, (uint64_t)i);
	}
	FA_SIGNAL(&x.a, x.ta, 10);
	FENCE_WAIT_DONE(s[9]);
	/* A failure over completed points only touches the pending ones (11, 12). */
	FA_FAIL(&x.a, x.ta, 12, -EBUSY);
	FENCE_WAIT_DONE(s[11]);
	for (i = 0; i < 12; i++)
		FENCE_STATUS(s[i], i < 3 ? 1 : i < 7 ? -EIO : i < 10 ? 1 : -EBUSY);
	for (i = 0; i < 12; i++)
		hb_sync_close(s[i]);
	fx_stop(&x);
}

/* ---- errors ------------------------------------------------------------------------------- */

/* 10. The status is exactly the error given (any -4095..-1), and 0 until then; errors out of
 * range are EINVAL and change nothing. */
TEST(c10_error_status_exact)
{
	static const int errs[] = {-1, -EIO, -ETIMEDOUT, -ENOMEM, -4095};
	enum { N = sizeof(errs) / sizeof(errs[0]) };
	struct fx x;
	struct hb_sync *s[N];
	struct fa_rep r;
	int i;

	fx_start(&x, NULL);
	for (i = 0; i < N; i++) {
		s[i] = FENCE_OPEN(x.b, x.tl, (uint64_t)i + 1);
		FENCE_STATUS(s[i], 0);
	}
	r = FA_CALL(&x.a, FA_TL_FAIL, x.ta, 1, 0, 0, NULL);
	CHECK(r.ret == -1 && r.err == EINVAL);
	r = FA_CALL(&x.a, FA_TL_FAIL, x.ta, 1, (uint64_t)(int64_t)EIO, 0, NULL);
	CHECK(r.ret == -1 && r.err == EINVAL);
	r = FA_CALL(&x.a, FA_TL_FAIL, x.ta, 1, (uint64_t)(int64_t)-4096, 0, NULL);
	CHECK(r.ret == -1 && r.err == EINVAL);
	FENCE_NOT_YET(s[0]);
	for (i = 0; i < N; i++) {
		FENCE_STATUS(s[i], 0);
		FA_FAIL(&x.a, x.ta, (uint64_t)i + 1, errs[i]);
		FENCE_WAIT_DONE(s[i]);
		FENCE_STATUS(s[i], errs[i]);
	}
	for (i = 0; i < N; i++)
		hb_sync_close(s[i]);
	fx_stop(&x);
}

/* 11. An error completion is a completion: the fd says POLLIN (never POLLERR/POLLHUP), the
 * wait returns 0, wait_any counts it; only the status tells the error. */
TEST(c11_error_completion_is_ready_not_pollerr)
{
	struct fx x;
	struct hb_sync *s, *v[2];
	struct pollfd p;
	size_t idx = 99;

	fx_start(&x, NULL);
	s = FENCE_OPEN(x.b, x.tl, 1);
	v[0] = FENCE_OPEN(x.b, x.tl, 2);
	v[1] = s;
	FA_FAIL(&x.a, x.ta, 1, -EPROTO);
	CHECK_EQ(hb_sync_wait(s, FENCE_WAIT_MS), 0);
	p.fd = hb_sync_fd(s);
	p.events = POLLIN | POLLOUT | POLLPRI;
	p.revents = 0;
	CHECK_EQ(poll(&p, 1, 0), 1);
	CHECK_EQ(p.revents, POLLIN);
	CHECK_EQ(FENCE_POLL_WAIT(x.b, s, 0), 1);
	CHECK_EQ(hb_sync_wait_any(v, 2, 0, &idx), 0);
	CHECK_EQ(idx, 1);
	FENCE_STATUS(s, -EPROTO);
	hb_sync_close(s);
	hb_sync_close(v[0]);
	fx_stop(&x);
}

/* 12. A merge keeps errors: a member that failed before the merge, and one that fails after
 * it, both make the merged status negative (never 1). */
TEST(c12_merge_keeps_errors)
{
	struct fx x;
	struct hb_sync *early, *ok1, *m1, *late, *ok2, *m2, *m3;

	fx_start(&x, NULL);
	early = FENCE_OPEN(x.b, x.tl, 1);
	ok1 = FENCE_OPEN(x.b, x.tl, 2);
	FA_FAIL(&x.a, x.ta, 1, -EIO);
	FA_SIGNAL(&x.a, x.ta, 2);
	FENCE_WAIT_DONE(ok1);
	FENCE_STATUS(early, -EIO);
	FENCE_STATUS(ok1, 1);
	/* Failed before the merge: the kernel drops signalled members and loses this error; the
	 * contract keeps it. */
	m1 = FENCE_MERGE(ok1, early);
	CHECK_EQ(hb_sync_wait(m1, FENCE_WAIT_MS), 0);
	FENCE_STATUS(m1, -EIO);
	CHECK(FENCE_FD_READY(m1));
	/* Fails after the merge. */
	late = FENCE_OPEN(x.b, x.tl, 3);
	ok2 = FENCE_OPEN(x.b, x.tl, 4);
	m2 = FENCE_MERGE(late, ok2);
	m3 = FENCE_MERGE(ok1, m2);
	FA_FAIL(&x.a, x.ta, 3, -ENODEV);
	FA_SIGNAL(&x.a, x.ta, 4);
	FENCE_WAIT_DONE(m2);
	FENCE_STATUS(m2, -ENODEV);
	FENCE_WAIT_DONE(m3);
	FENCE_STATUS(m3, -ENODEV);
	hb_sync_close(early);
	hb_sync_close(ok1);
	hb_sync_close(m1);
	hb_sync_close(late);
	hb_sync_close(ok2);
	hb_sync_close(m2);
	hb_sync_close(m3);
	fx_stop(&x);
}

/* 13. Status encoding, per member and aggregate: 0 / 1 / -errno; a merge is 0 while any member
 * is pending, even if another already failed; once all are done, the first error in time (the
 * header's rule), whatever the member order; else 1. */
TEST(c13_status_encoding_member_and_aggregate)
{
	struct fx x;
	struct fence_agent c;
	struct hb_sync *a1, *c1, *a2, *ab, *ba, *okm;
	uint64_t tlc;
	int tc;

	fx_start(&x, NULL);
	FENCE_AGENT_START(&c, hbt_addr_vm(&x.d, 3), "C(vm3)");
	tc = FA_TIMELINE(&c, &tlc);
	a1 = FENCE_OPEN(x.b, x.tl, 1);
	a2 = FENCE_OPEN(x.b, x.tl, 2);
	c1 = FENCE_OPEN(x.b, tlc, 1);
	ab = FENCE_MERGE(a1, c1);
	ba = FENCE_MERGE(c1, a1);
	okm = FENCE_MERGE(a2, a2);
	FENCE_STATUS(ab, 0);
	FENCE_STATUS(ba, 0);
	FA_FAIL(&x.a, x.ta, 1, -EIO); /* first in time */
	FENCE_WAIT_DONE(a1);
	FENCE_STATUS(a1, -EIO);
	/* c1 still pending: both merges still pending. */
	FENCE_NOT_YET(ab);
	FENCE_NOT_YET(ba);
	FENCE_STATUS(ab, 0);
	FENCE_STATUS(ba, 0);
	FA_FAIL(&c, tc, 1, -ENOENT); /* second in time */
	FENCE_WAIT_DONE(c1);
	FENCE_STATUS(c1, -ENOENT);
	FENCE_WAIT_DONE(ab);
	FENCE_WAIT_DONE(ba);
	FENCE_STATUS(ab, -EIO);
	FENCE_STATUS(ba, -EIO);
	FA_SIGNAL(&x.a, x.ta, 2);
	FENCE_WAIT_DONE(okm);
	FENCE_STATUS(okm, 1);
	FENCE_STATUS(a2, 1);
	hb_sync_close(a1);
	hb_sync_close(a2);
	hb_sync_close(c1);
	hb_sync_close(ab);
	hb_sync_close(ba);
	hb_sync_close(okm);
	FENCE_AGENT_STOP(&c);
	fx_stop(&x);
}

/* ---- waits and timeouts ------------------------------------------------------------------- */

struct later_signal {
	struct fence_agent *a;
	int t;
	uint64_t v;
	unsigned delay_ms;
};

/* Sends "sleep, then signal" to an agent without waiting for the reply. */
static void send_later(const struct later_signal *l)
{
	fa_send_at(__FILE__, __LINE__, l->a, FA_TL_SIGNAL, l->t, l->v, 0, l->delay_ms, NULL);
}

/* 14. wait(0) never blocks; wait(T) on a never-signalled fence times out after >= T (and not
 * absurdly later); wait(-1) returns when the fence is signalled; other negative timeouts are
 * EINVAL. */
TEST(c14_wait_timeouts)
{
	struct fx x;
	struct hb_sync *s, *s2;
	struct later_signal l;
	struct fa_rep r;
	uint64_t t0, dt;
	int i;

	fx_start(&x, NULL);
	s = FENCE_OPEN(x.b, x.tl, 1);
	for (i = 0; i < 50; i++) {
		t0 = hbt_now_ms();
		FENCE_NOT_YET(s);
		dt = hbt_now_ms() - t0;
		CHECK(dt < 1000);
	}
	t0 = hbt_now_ms();
	fence_wait_timeout_at(__FILE__, __LINE__, s, 300);
	dt = hbt_now_ms() - t0;
	CHECK(dt >= 300);
	CHECK(dt < 300 + 5000);
	CHECK_ERR(hb_sync_wait(s, -2), EINVAL);
	CHECK_ERR(hb_sync_wait(NULL, 0), EINVAL);
	FENCE_STATUS(s, 0);
	/* Forever: returns once A signals, 300 ms from now. */
	l = (struct later_signal){&x.a, x.ta, 1, 300};
	t0 = hbt_now_ms();
	send_later(&l);
	CHECK_EQ(hb_sync_wait(s, -1), 0);
	CHECK(hbt_now_ms() - t0 >= 250);
	FENCE_STATUS(s, 1);
	CHECK_EQ(fa_recv(&x.a, &r, FENCE_WAIT_MS), 0);
	CHECK_EQ(r.ret, 0);
	/* A long timeout returns early too. */
	s2 = FENCE_OPEN(x.b, x.tl, 2);
	l.v = 2;
	l.delay_ms = 100;
	t0 = hbt_now_ms();
	send_later(&l);
	CHECK_EQ(hb_sync_wait(s2, 60000), 0);
	CHECK(hbt_now_ms() - t0 < 30000);
	CHECK_EQ(fa_recv(&x.a, &r, FENCE_WAIT_MS), 0);
	hb_sync_close(s);
	hb_sync_close(s2);
	fx_stop(&x);
}

/* 15. A signal delivered during a wait: the wait either returns -1/EINTR or keeps waiting to
 * its own timeout (-1/ETIME), never claims completion, never changes the fence; retrying
 * works and completes once A signals. The same for hb_begin_cpu_access (restartable). */
static volatile sig_atomic_t c15_hits;

static void c15_handler(int sig)
{
	(void)sig;
	c15_hits++;
}

struct c15_storm {
	pthread_t target;
	volatile int stop;
};

static void *c15_storm_fn(void *p)
{
	struct c15_storm *st = p;

	while (!st->stop) {
		pthread_kill(st->target, SIGUSR1);
		it_sleep_ms(15);
	}
	return NULL;
}

TEST(c15_interrupted_wait_is_restartable)
{
	struct fx x;
	struct hb_sync *s;
	struct sigaction sa;
	struct c15_storm storm = {.target = pthread_self()};
	pthread_t th;
	struct fa_rep r;
	uint64_t end;
	struct hb_id hid;
	int eintr = 0, etime = 0, rr, tw, b_eintr = 0, b_etime = 0;

	fx_start(&x, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = c15_handler; /* no SA_RESTART: poll() inside may see EINTR */
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	s = FENCE_OPEN(x.b, x.tl, 1);
	/* A buffer A exports to B with a pending WRITE fence on it, for begin_cpu_access. */
	r = FA_OK_CALL(&x.a, FA_ALLOC, 0, 2, 4096, 0, NULL);
	hid = r.id;
	tw = FA_TIMELINE(&x.a, &r.val);
	FA_OK_CALL(&x.a, FA_ATTACH, 0, r.val, 1, HB_ACCESS_WRITE, &hid);

	CHECK(pthread_create(&th, NULL, c15_storm_fn, &storm) == 0);
	end = hbt_now_ms() + 1500;
	while (hbt_now_ms() < end) {
		errno = 0;
		rr = hb_sync_wait(s, 200);
		if (rr == 0)
			hbt_fail(__FILE__, __LINE__, "an unsignalled fence's wait returned 0");
		CHECK(errno == EINTR || errno == ETIME);
		errno == EINTR ? eintr++ : etime++;
		FENCE_STATUS(s, 0);
		errno = 0;
		rr = hb_begin_cpu_access(x.b, &hid, HB_ACCESS_READ, 100);
		CHECK_EQ(rr, -1);
		CHECK(errno == EINTR || errno == EAGAIN || errno == ETIME);
		errno == ETIME ? b_etime++ : b_eintr++;
	}
	storm.stop = 1;
	CHECK(pthread_join(th, NULL) == 0);
	printf("%d signals: wait %d EINTR / %d ETIME, begin_cpu_access %d EINTR-EAGAIN / %d ETIME\n",
	       (int)c15_hits, eintr, etime, b_eintr, b_etime);
	CHECK(c15_hits > 0);
	/* Retries complete normally. */
	FA_SIGNAL(&x.a, x.ta, 1);
	FENCE_WAIT_DONE(s);
	FENCE_STATUS(s, 1);
	FA_SIGNAL(&x.a, tw, 1);
	CHECK_EQ(hb_begin_cpu_access(x.b, &hid, HB_ACCESS_READ, FENCE_WAIT_MS), 0);
	CHECK_EQ(hb_end_cpu_access(x.b, &hid, HB_ACCESS_READ), 0);
	hb_sync_close(s);
	fx_stop(&x);
}

/* 16. wait_any: none complete -> ETIME after the timeout; several already complete -> 0 at
 * once with the lowest such index; one completing later -> its index; handles of two clients
 * mixed; n == 0 or a NULL entry -> EINVAL. */
TEST(c16_wait_any)
{
	struct fx x;
	struct hb_client *b2;
	struct hb_sync *v[5];
	struct later_signal l;
	struct fa_rep r;
	size_t idx = 99;
	uint64_t t0;
	int i;

	fx_start(&x, NULL);
	b2 = IT_CONNECT(hbt_addr_vm(&x.d, 2));
	/* v[i] = point 10 - 2i: v[4] = 2, v[3] = 4, ... v[0] = 10; odd slots on the 2nd client. */
	for (i = 0; i < 5; i++)
		v[i] = FENCE_OPEN(i % 2 ? b2 : x.b, x.tl, 10 - 2 * (uint64_t)i);
	t0 = hbt_now_ms();
	CHECK_ERR(hb_sync_wait_any(v, 5, 200, &idx), ETIME);
	CHECK(hbt_now_ms() - t0 >= 200);
	CHECK_ERR(hb_sync_wait_any(v, 5, 0, &idx), ETIME);
	CHECK_ERR(hb_sync_wait_any(v, 0, 0, &idx), EINVAL);
	{
		struct hb_sync *w[2] = {v[0], NULL};

		CHECK_ERR(hb_sync_wait_any(w, 2, 0, &idx), EINVAL);
	}
	/* One completes later: point 2 (v[4]). */
	l = (struct later_signal){&x.a, x.ta, 2, 200};
	send_later(&l);
	CHECK_EQ(hb_sync_wait_any(v, 5, FENCE_WAIT_MS, &idx), 0);
	CHECK_EQ(idx, 4);
	CHECK_EQ(fa_recv(&x.a, &r, FENCE_WAIT_MS), 0);
	/* Points up to 8: v[1..4] complete, v[0] not: the lowest complete index is 1, at once. */
	FA_SIGNAL(&x.a, x.ta, 8);
	FENCE_WAIT_DONE(v[1]);
	CHECK_EQ(hb_sync_wait(v[2], FENCE_WAIT_MS), 0);
	t0 = hbt_now_ms();
	idx = 99;
	CHECK_EQ(hb_sync_wait_any(v, 5, 0, &idx), 0);
	CHECK_EQ(idx, 1);
	CHECK_EQ(hb_sync_wait_any(v + 2, 3, -1, &idx), 0);
	CHECK_EQ(idx, 0);
	CHECK(hbt_now_ms() - t0 < 1000);
	FENCE_STATUS(v[0], 0);
	for (i = 0; i < 5; i++)
		hb_sync_close(v[i]);
	hb_disconnect(b2);
	fx_stop(&x);
}

/* 17. Cross-VM latency: from A's signal request leaving to B's blocked wait returning, the
 * median of 40 samples must be under the selftest's 100 ms (a bound that only a lost or stuck
 * notification misses; typical figures are printed). */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

TEST(c17_cross_vm_signal_to_wake_latency)
{
	enum { N = 40 };
	struct fx x;
	uint64_t lat[N];
	int i;

	fx_start(&x, NULL);
	for (i = 0; i < N; i++) {
		struct hb_sync *s = FENCE_OPEN(x.b, x.tl, (uint64_t)i + 1);
		struct fa_rep r;
		uint64_t woke;

		fa_send_at(__FILE__, __LINE__, &x.a, FA_TL_SIGNAL, x.ta, (uint64_t)i + 1, 0, 1,
			   NULL);
		CHECK_EQ(hb_sync_wait(s, FENCE_WAIT_MS), 0);
		woke = fence_now_ns();
		CHECK_EQ(fa_recv(&x.a, &r, FENCE_WAIT_MS), 0);
		CHECK_EQ(r.ret, 0);
		CHECK(woke >= r.val);
		lat[i] = woke - r.val;
		hb_sync_close(s);
	}
	qsort(lat, N, sizeof(lat[0]), cmp_u64);
	printf("signal in vm1 -> wake in vm2: min %.3f ms, median %.3f ms, max %.3f ms\n",
	       lat[0] / 1e6, lat[N / 2] / 1e6, lat[N - 1] / 1e6);
	CHECK(lat[N / 2] < 100000000ull);
	fx_stop(&x);
}

/* ---- merge and info ----------------------------------------------------------------------- */

/* 18. A merge is a union: it completes only once every member has, across three timelines in
 * three domains; the inputs stay valid and unchanged (their own fds and statuses). */
TEST(c18_merge_is_union_inputs_unchanged)
{
	struct fx x;
	struct fence_agent c;
	struct hb_sync *a, *cc, *own, *m1, *m;
	struct hb_timeline *tb;
	uint64_t tlc;
	int tc, fda, fdc;

	fx_start(&x, NULL);
	FENCE_AGENT_START(&c, hbt_addr_vm(&x.d, 3), "C(vm3)");
	tc = FA_TIMELINE(&c, &tlc);
	tb = FENCE_TL(x.b);
	a = FENCE_OPEN(x.b, x.tl, 4);
	cc = FENCE_OPEN(x.b, tlc, 4);
	own = FENCE_OPEN(x.b, hb_timeline_id(tb), 4);
	fda = hb_sync_fd(a);
	fdc = hb_sync_fd(cc);
	m1 = FENCE_MERGE(a, cc);
	m = FENCE_MERGE(m1, own);
	CHECK_EQ(hb_sync_fd(a), fda);
	CHECK_EQ(hb_sync_fd(cc), fdc);
	FA_SIGNAL(&x.a, x.ta, 4);
	FENCE_WAIT_DONE(a);
	FENCE_NOT_YET(m1);
	FENCE_NOT_YET(m);
	FENCE_STATUS(cc, 0);
	FENCE_SIGNAL(tb, 4);
	FENCE_WAIT_DONE(own);
	FENCE_NOT_YET(m);
	FA_SIGNAL(&c, tc, 4);
	FENCE_WAIT_DONE(m);
	FENCE_STATUS(m, 1);
	FENCE_STATUS(m1, 1);
	CHECK_EQ(hb_sync_fd(a), fda);
	FENCE_STATUS(a, 1);
	FENCE_STATUS(cc, 1);
	CHECK(fcntl(fda, F_GETFD) >= 0 && fcntl(fdc, F_GETFD) >= 0);
	hb_sync_close(m);
	hb_sync_close(m1);
	/* Closing the merges left the inputs alone. */
	CHECK(fcntl(fda, F_GETFD) >= 0);
	CHECK_EQ(hb_sync_wait(a, 0), 0);
	hb_sync_close(a);
	hb_sync_close(cc);
	hb_sync_close(own);
	hb_timeline_destroy(tb);
	FENCE_AGENT_STOP(&c);
	fx_stop(&x);
}

/* 19. Points of one timeline collapse to the latest: a merge of points 1..200 of A's timeline
 * with point 7 of C's depends on exactly A's 200 and C's 7 (A at 199 with C done: pending;
 * A at 200: complete). No member-count API; this is the behaviour the count stands for. */
TEST(c19_same_timeline_collapses_to_latest)
{
	struct fx x;
	struct fence_agent c;
	struct hb_sync *m = NULL;
	uint64_t tlc, seed = 19;
	int tc, i;

	fx_start(&x, NULL);
	FENCE_AGENT_START(&c, hbt_addr_vm(&x.d, 3), "C(vm3)");
	tc = FA_TIMELINE(&c, &tlc);
	for (i = 0; i < 200; i++) {
		/* A shuffled order: the latest wins whatever the order of merging. */
		uint64_t v = i == 100 ? 200 : 1 + it_rand(&seed) % 199;
		struct hb_sync *s = FENCE_OPEN(x.b, x.tl, v), *n;

		if (!m) {
			m = s;
			continue;
		}
		n = FENCE_MERGE(i % 2 ? m : s, i % 2 ? s : m);
		hb_sync_close(m);
		hb_sync_close(s);
		m = n;
	}
	{
		struct hb_sync *s = FENCE_OPEN(x.b, tlc, 7), *n = FENCE_MERGE(m, s);

		hb_sync_close(s);
		hb_sync_close(m);
		m = n;
	}
	FA_SIGNAL(&c, tc, 7);
	FENCE_BARRIER(x.b, tlc, 7);
	FA_SIGNAL(&x.a, x.ta, 199);
	FENCE_BARRIER(x.b, x.tl, 199);
	FENCE_NOT_YET(m);
	FA_SIGNAL(&x.a, x.ta, 200);
	FENCE_WAIT_DONE(m);
	FENCE_STATUS(m, 1);
	hb_sync_close(m);
	FENCE_AGENT_STOP(&c);
	fx_stop(&x);
}

/* 20. A merge of members that all completed is complete at birth: status 1 and a readable fd
 * without any wait or dispatch; with a failed member, that member's error. (No timestamps in
 * the API.) */
TEST(c20_merge_of_complete_members_is_complete)
{
	struct fx x;
	struct hb_sync *p0, *p1, *p2, *m, *mf;

	fx_start(&x, NULL);
	FA_SIGNAL(&x.a, x.ta, 5);
	FENCE_BARRIER(x.b, x.tl, 5);
	p0 = FENCE_OPEN(x.b, x.tl, 0);
	p1 = FENCE_OPEN(x.b, x.tl, 3);
	m = FENCE_MERGE(p0, p1);
	FENCE_STATUS(m, 1);
	CHECK(FENCE_FD_READY(m));
	CHECK_EQ(hb_sync_wait(m, 0), 0);
	p2 = FENCE_OPEN(x.b, x.tl, 6);
	FA_FAIL(&x.a, x.ta, 6, -EFAULT);
	FENCE_WAIT_DONE(p2);
	mf = FENCE_MERGE(m, p2);
	CHECK(FENCE_FD_READY(mf));
	FENCE_STATUS(mf, -EFAULT);
	hb_sync_close(p0);
	hb_sync_close(p1);
	hb_sync_close(p2);
	hb_sync_close(m);
	hb_sync_close(mf);
	fx_stop(&x);
}

/* 21. Nested merges flatten: a binary tree of merges (depth 6) over points of three domains'
 * timelines, and a chain of 2000 merges, complete exactly when the last member does. */
TEST(c21_nested_merges_flatten)
{
	struct fx x;
	struct fence_agent c;
	struct hb_sync *level[64], *chain, *s;
	struct hb_timeline *tb;
	uint64_t tlc, tl[3];
	int tc, n, i;

	fx_start(&x, NULL);
	FENCE_AGENT_START(&c, hbt_addr_vm(&x.d, 3), "C(vm3)");
	tc = FA_TIMELINE(&c, &tlc);
	tb = FENCE_TL(x.b);
	tl[0] = x.tl;
	tl[1] = tlc;
	tl[2] = hb_timeline_id(tb);
	for (i = 0; i < 64; i++)
		level[i] = FENCE_OPEN(x.b, tl[i % 3], 1 + (uint64_t)i);
	for (n = 64; n > 1; n /= 2) {
		for (i = 0; i < n / 2; i++) {
			struct hb_sync *m = FENCE_MERGE(level[2 * i], level[2 * i + 1]);

			hb_sync_close(level[2 * i]);
			hb_sync_close(level[2 * i + 1]);
			level[i] = m;
		}
	}
	s = FENCE_OPEN(x.b, x.tl, 1000);
	chain = FENCE_MERGE(s, s);
	for (i = 0; i < 2000; i++) {
		struct hb_sync *m = FENCE_MERGE(chain, i % 2 ? s : level[0]);

		hb_sync_close(chain);
		chain = m;
	}
	/* Tree points: A has 1, 4, .., 64; C 2, 5, .., 62; B 3, 6, .., 63. */
	FENCE_SIGNAL(tb, 63);
	FA_SIGNAL(&c, tc, 62);
	FA_SIGNAL(&x.a, x.ta, 63);
	FENCE_BARRIER(x.b, tlc, 62);
	FENCE_BARRIER(x.b, tl[2], 63);
	FENCE_BARRIER(x.b, x.tl, 63);
	FENCE_NOT_YET(level[0]);
	FENCE_NOT_YET(chain);
	FA_SIGNAL(&x.a, x.ta, 64);
	FENCE_WAIT_DONE(level[0]);
	FENCE_STATUS(level[0], 1);
	FENCE_NOT_YET(chain); /* waits for A's 1000 too */
	FA_SIGNAL(&x.a, x.ta, 999);
	FENCE_BARRIER(x.b, x.tl, 999);
	FENCE_NOT_YET(chain);
	FA_SIGNAL(&x.a, x.ta, 1000);
	FENCE_WAIT_DONE(chain);
	FENCE_STATUS(chain, 1);
	hb_sync_close(chain);
	hb_sync_close(level[0]);
	hb_sync_close(s);
	hb_timeline_destroy(tb);
	FENCE_AGENT_STOP(&c);
	fx_stop(&x);
}

/*
 * 22. Info. The API's whole info call is hb_sync_status (no member list, so no two-call
 * protocol, no per-member timestamps). What §22 asks of it that applies: the query is a
 * non-blocking read that still makes progress (a busy-wait on hb_sync_status alone, without
 * hb_dispatch or hb_sync_wait, sees the completion: the header's promise), and it agrees with
 * the fd at every step (0 <=> not readable).
 */
TEST(c22_status_query_makes_progress_and_agrees_with_fd)
{
	struct fx x;
	struct hb_sync *s[20];
	int i, k;

	fx_start(&x, NULL);
	for (i = 0; i < 20; i++)
		s[i] = FENCE_OPEN(x.b, x.tl, (uint64_t)i + 1);
	for (i = 0; i < 20; i++) {
		uint64_t end = hbt_now_ms() + FENCE_WAIT_MS;

		if (i % 3 == 2)
			FA_FAIL(&x.a, x.ta, (uint64_t)i + 1, -EAGAIN);
		else
			FA_SIGNAL(&x.a, x.ta, (uint64_t)i + 1);
		while (hb_sync_status(s[i]) == 0) {
			if (hbt_now_ms() > end)
				hbt_fail(__FILE__, __LINE__,
					 "point %d: the status alone never made progress", i + 1);
		}
		for (k = 0; k < 20; k++) {
			int st = hb_sync_status(s[k]);

			CHECK_EQ(FENCE_FD_READY(s[k]), st != 0);
			if (k <= i)
				CHECK_EQ(st, k % 3 == 2 ? -EAGAIN : 1);
		}
	}
	for (i = 0; i < 20; i++)
		hb_sync_close(s[i]);
	fx_stop(&x);
}

/* 23. Invalid arguments fail cleanly with EINVAL (the kernel's merge-with-a-non-fence is
 * ENOENT; here a foreign handle is one of another client, which the header makes EINVAL). */
TEST(c23_invalid_arguments)
{
	struct fx x;
	struct hb_client *b2;
	struct hb_sync *s, *s2;
	struct hb_timeline *tb;
	struct hb_event ev;
	struct hb_fence f;
	size_t idx;

	fx_start(&x, NULL);
	b2 = IT_CONNECT(hbt_addr_vm(&x.d, 2));
	s = FENCE_OPEN(x.b, x.tl, 1);
	s2 = FENCE_OPEN(b2, x.tl, 1);
	tb = FENCE_TL(x.b);
	CHECK_ERR(hb_sync_merge(s, s2), EINVAL);
	CHECK_ERR(hb_sync_merge(s, NULL), EINVAL);
	CHECK_ERR(hb_sync_merge(NULL, s), EINVAL);
	CHECK_ERR(hb_sync_wait(s, -5), EINVAL);
	CHECK_ERR(hb_sync_wait_any(NULL, 1, 0, &idx), EINVAL);
	CHECK_ERR(hb_timeline_fail(tb, 1, 0), EINVAL);
	CHECK_ERR(hb_timeline_fail(tb, 1, 5), EINVAL);
	CHECK_ERR(hb_timeline_fail(tb, 1, -4096), EINVAL);
	CHECK_ERR(hb_timeline_fail(tb, 1, INT32_MIN), EINVAL);
	CHECK_ERR(hb_timeline_create(NULL), EINVAL);
	f.timeline = 0;
	f.value = 0;
	CHECK_ERR(hb_sync_open(x.b, &f), EINVAL);
	memset(&ev, 0, sizeof(ev));
	ev.type = HB_EVENT_EXPORTED;
	CHECK_ERR(hb_event_fence(&ev, &f), EINVAL);
	CHECK_ERR(hb_event_fence(NULL, &f), EINVAL);
	/* Nothing changed: the handles work. */
	FENCE_STATUS(s, 0);
	FA_SIGNAL(&x.a, x.ta, 1);
	FENCE_WAIT_DONE(s);
	FENCE_WAIT_DONE(s2);
	FENCE_SIGNAL(tb, 1);
	hb_sync_close(s);
	hb_sync_close(s2);
	hb_timeline_destroy(tb);
	hb_disconnect(b2);
	fx_stop(&x);
}

/* ---- handles and lifetime ----------------------------------------------------------------- */

/* 24. Closing one importer's handle affects nobody else: B's second handle, C's handle and
 * A's own still complete; handles closed while pending and a destroyed timeline leave nothing
 * behind (the daemon's leak check at exit and its counters). */
TEST(c24_close_is_local_and_leaks_nothing)
{
	struct fx x;
	struct fence_agent c;
	struct hb_sync *s1, *s2, *many[100];
	struct fa_rep r;
	int sc, sa, i, t2;
	uint64_t tl2;

	fx_start(&x, NULL);
	FENCE_AGENT_START(&c, hbt_addr_host(&x.d), "C(host)");
	s1 = FENCE_OPEN(x.b, x.tl, 2);
	s2 = FENCE_OPEN(x.b, x.tl, 2);
	sc = FA_OPEN(&c, x.tl, 2);
	sa = FA_OPEN(&x.a, x.tl, 2);
	hb_sync_close(s1);
	FA_SIGNAL(&x.a, x.ta, 2);
	FENCE_WAIT_DONE(s2);
	FENCE_STATUS(s2, 1);
	r = FA_WAIT(&c, sc, FENCE_WAIT_MS);
	CHECK(r.ret == 0 && r.val == 1);
	r = FA_WAIT(&x.a, sa, FENCE_WAIT_MS);
	CHECK(r.ret == 0 && r.val == 1);
	hb_sync_close(s2);
	FA_CLOSE(&c, sc);
	FA_CLOSE(&x.a, sa);
	/* Pending handles closed, then the timeline destroyed. */
	t2 = FA_TIMELINE(&x.a, &tl2);
	for (i = 0; i < 100; i++)
		many[i] = FENCE_OPEN(x.b, tl2, 10 + (uint64_t)(i % 7));
	for (i = 0; i < 100; i++)
		hb_sync_close(many[i]);
	FA_DESTROY(&x.a, t2);
	FENCE_AGENT_STOP(&c);
	fx_stop(&x); /* the daemon must exit 0: no leak */
}

/* 25. The fd is latched and never read by the library: four threads blocked in poll() and
 * two epoll sets (one edge-triggered) all see it readable, and so do two more threads blocked
 * in hb_sync_wait on the same client at the same time; it stays readable through many later
 * library calls and polls. */
struct poller {
	int fd;
	int epfd;           /* -1: plain poll, -2: hb_sync_wait on s */
	struct hb_sync *s;  /* for -2 */
	volatile int saw;
};

static void *poller_fn(void *p)
{
	struct poller *pl = p;

	if (pl->epfd == -2) {
		if (hb_sync_wait(pl->s, FENCE_WAIT_MS) == 0 && hb_sync_status(pl->s) == 1)
			pl->saw = 1;
	} else if (pl->epfd < 0) {
		struct pollfd q = {.fd = pl->fd, .events = POLLIN};

		if (poll(&q, 1, FENCE_WAIT_MS) == 1 && q.revents == POLLIN)
			pl->saw = 1;
	} else {
		struct epoll_event ev;

		if (epoll_wait(pl->epfd, &ev, 1, FENCE_WAIT_MS) == 1 && (ev.events & EPOLLIN) &&
		    !(ev.events & (EPOLLERR | EPOLLHUP)))
			pl->saw = 1;
	}
	return NULL;
}

TEST(c25_fd_latched_many_pollers)
{
	struct fx x;
	struct hb_sync *s;
	struct poller pl[8];
	pthread_t th[8];
	struct epoll_event ev;
	int i, k;

	fx_start(&x, NULL);
	s = FENCE_OPEN(x.b, x.tl, 1);
	for (i = 0; i < 8; i++) {
		pl[i].fd = hb_sync_fd(s);
		pl[i].epfd = i >= 6 ? -2 : -1;
		pl[i].s = s;
		pl[i].saw = 0;
		if (i >= 4 && i < 6) {
			pl[i].epfd = epoll_create1(EPOLL_CLOEXEC);
			CHECK(pl[i].epfd >= 0);
			ev.events = EPOLLIN | (i == 5 ? EPOLLET : 0);
			ev.data.u64 = 0;
			CHECK(epoll_ctl(pl[i].epfd, EPOLL_CTL_ADD, pl[i].fd, &ev) == 0);
		}
		CHECK(pthread_create(&th[i], NULL, poller_fn, &pl[i]) == 0);
	}
	it_sleep_ms(100); /* let them block */
	FA_SIGNAL(&x.a, x.ta, 1);
	FENCE_WAIT_DONE(s); /* this thread reads the daemon's message */
	for (i = 0; i < 8; i++) {
		CHECK(pthread_join(th[i], NULL) == 0);
		if (!pl[i].saw)
			hbt_fail(__FILE__, __LINE__, "poller %d never saw POLLIN", i);
	}
	for (k = 0; k < 50; k++) {
		hb_dispatch(x.b, 0);
		FENCE_STATUS(s, 1);
		CHECK_EQ(hb_sync_wait(s, 0), 0);
		CHECK(FENCE_FD_READY(s));
	}
	/* Level-triggered epoll keeps reporting it. */
	CHECK_EQ(epoll_wait(pl[4].epfd, &ev, 1, 0), 1);
	CHECK_EQ(epoll_wait(pl[4].epfd, &ev, 1, 0), 1);
	close(pl[4].epfd);
	close(pl[5].epfd);
	hb_sync_close(s);
	fx_stop(&x);
}

/* 26. The status is set before the fd becomes readable: a thread that polls only the fd and
 * reads the status the moment it wakes always reads non-zero (200 rounds, the library driven
 * by hb_dispatch in this thread meanwhile). */
struct c26_arg {
	struct hb_sync *s;
	volatile int done;
	int status;
};

static void *c26_fn(void *p)
{
	struct c26_arg *a = p;
	struct pollfd q = {.fd = hb_sync_fd(a->s), .events = POLLIN};

	if (poll(&q, 1, FENCE_WAIT_MS) == 1)
		a->status = hb_sync_status(a->s);
	else
		a->status = 1000; /* never woke */
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST(c26_status_set_before_fd_readable)
{
	struct fx x;
	int i, mode;

	fx_start(&x, NULL);
	for (i = 0; i < 200; i++) {
		struct c26_arg a = {.s = FENCE_OPEN(x.b, x.tl, (uint64_t)i + 1)};
		struct fa_rep r;
		pthread_t th;

		mode = i % 2;
		CHECK(pthread_create(&th, NULL, c26_fn, &a) == 0);
		if (mode)
			fa_send_at(__FILE__, __LINE__, &x.a, FA_TL_SIGNAL, x.ta, (uint64_t)i + 1, 0,
				   0, NULL);
		else
			fa_send_at(__FILE__, __LINE__, &x.a, FA_TL_FAIL, x.ta, (uint64_t)i + 1,
				   (uint64_t)(int64_t)-EIO, 0, NULL);
		while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
			hb_dispatch(x.b, 5);
		CHECK(pthread_join(th, NULL) == 0);
		CHECK_EQ(fa_recv(&x.a, &r, FENCE_WAIT_MS), 0);
		CHECK_EQ(r.ret, 0);
		if (a.status != (mode ? 1 : -EIO))
			hbt_fail(__FILE__, __LINE__, "round %d: woken poller read status %d", i,
				 a.status);
		hb_sync_close(a.s);
	}
	fx_stop(&x);
}
