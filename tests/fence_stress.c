/*
 * The ported stress selftests, shared by two suites: see tests/fence_stress.h.
 */
#include "tests/fence_stress.h"

/* ---- §3.8: two parties, one counter ------------------------------------------------------- */

struct stress2_arg {
	const struct stress2_cfg *cfg;
	int sock; /* A -> B: A's timeline id and the buffer's hid; B -> A: B's timeline id */
};

struct stress2_hello {
	uint64_t tl;
	struct hb_id hid;
};

/*
 * One side's loop. Side 0 waits the other's point i (point 0 is born signalled), side 1 the
 * other's point i + 1; each then requires counter == 2i + side inside a RW CPU-access bracket,
 * bumps it (a plain load and store: only the fences order the two sides) and signals its own
 * timeline to i + 1.
 */
static int stress2_loop(struct hb_client *c, struct hb_timeline *mine, uint64_t theirs,
			const struct hb_id *hid, volatile uint64_t *counter, int side,
			unsigned rounds, char *why, size_t whylen)
{
	unsigned i;

	for (i = 0; i < rounds; i++) {
		struct hb_fence f = {.timeline = theirs, .value = side == 0 ? i : i + 1};
		struct hb_sync *s = hb_sync_open(c, &f);
		struct hb_event ev;
		uint64_t v;

		if (!s) {
			snprintf(why, whylen, "round %u: hb_sync_open: %s", i, strerror(errno));
			return -1;
		}
		if (side == 0 && i == 0 && hb_sync_status(s) != 1) {
			snprintf(why, whylen, "point 0 is not born signalled (status %d)",
				 hb_sync_status(s));
			hb_sync_close(s);
			return -1;
		}
		if (hb_sync_wait(s, FENCE_WAIT_MS) != 0 || hb_sync_status(s) != 1) {
			snprintf(why, whylen, "round %u: wait: %s, status %d", i, strerror(errno),
				 hb_sync_status(s));
			hb_sync_close(s);
			return -1;
		}
		hb_sync_close(s);
		if (hb_begin_cpu_access(c, hid, HB_ACCESS_READ | HB_ACCESS_WRITE, FENCE_WAIT_MS)) {
			snprintf(why, whylen, "round %u: begin_cpu_access: %s", i, strerror(errno));
			return -1;
		}
		v = *counter;
		if (v != 2ull * i + (uint64_t)side) {
			snprintf(why, whylen, "round %u (side %d): counter %llu, want %llu", i,
				 side, (unsigned long long)v, 2ull * i + (uint64_t)side);
			return -1;
		}
		*counter = v + 1;
		if (hb_end_cpu_access(c, hid, HB_ACCESS_READ | HB_ACCESS_WRITE) != 0 ||
		    hb_timeline_signal(mine, i + 1) != 0) {
			snprintf(why, whylen, "round %u: end/signal: %s", i, strerror(errno));
			return -1;
		}
		while (hb_next_event(c, &ev) == 0)
			; /* HB_EVENT_FENCE per point: not needed here */
	}
	return 0;
}

static int stress2_side_a(void *p)
{
	struct stress2_arg *arg = p;
	struct stress2_hello hello;
	struct hb_client *c = hb_connect(arg->cfg->addr_a);
	struct hb_timeline *t;
	struct hb_buffer *buf;
	uint64_t theirs;
	char why[200] = "";
	int ret = 0;

	if (!c)
		return 20;
	t = hb_timeline_create(c);
	if (t)
		hbt_timeline_share_all(t);
	buf = hb_buffer_alloc(c, arg->cfg->dom_b, 4096, HB_BUFFER_PEER_WRITABLE);
	if (!t || !buf || hb_export(buf, NULL, 0, 0, &hello.hid) != 0)
		return 21;
	hello.tl = hb_timeline_id(t);
	if (write(arg->sock, &hello, sizeof(hello)) != (ssize_t)sizeof(hello) ||
	    it_pipe_read(arg->sock, &theirs, sizeof(theirs), FENCE_WAIT_MS) != 0)
		return 22;
	if (stress2_loop(c, t, theirs, &hello.hid, (volatile uint64_t *)hb_buffer_data(buf), 0,
			 arg->cfg->rounds, why, sizeof(why)) != 0) {
		fprintf(stderr, "side A (%s): %s\n", arg->cfg->addr_a, why);
		ret = 1;
	}
	/* B checks the final count itself; stay until it says so. */
	if (it_pipe_read(arg->sock, &theirs, sizeof(theirs), 60000) != 0)
		ret = ret ? ret : 23;
	hb_timeline_destroy(t);
	hb_buffer_free(buf);
	hb_disconnect(c);
	return ret;
}

void fence_stress_two_party(const struct stress2_cfg *cfg)
{
	struct stress2_arg arg = {.cfg = cfg};
	struct stress2_hello hello;
	struct hb_client *b;
	struct hb_timeline *t;
	struct hb_import *im;
	uint64_t mine, t0 = hbt_now_ms();
	char why[200] = "";
	int sv[2];
	pid_t pa;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	arg.sock = sv[1];
	pa = hbt_fork(stress2_side_a, &arg);
	close(sv[1]);
	b = IT_CONNECT(cfg->addr_b);
	t = FENCE_TL(b);
	CHECK_EQ(it_pipe_read(sv[0], &hello, sizeof(hello), FENCE_WAIT_MS), 0);
	im = IT_IMPORT(b, &hello.hid, HB_IMPORT_WRITE);
	mine = hb_timeline_id(t);
	it_pipe_write(sv[0], &mine, sizeof(mine));
	if (stress2_loop(b, t, hello.tl, &hello.hid, (volatile uint64_t *)hb_import_data(im), 1,
			 cfg->rounds, why, sizeof(why)) != 0)
		hbt_fail(__FILE__, __LINE__, "side B (%s): %s", cfg->addr_b, why);
	/* A's last bump is its round rounds-1: once its point `rounds` is reached, the count is
	 * final. */
	FENCE_BARRIER(b, hello.tl, cfg->rounds);
	CHECK_EQ(hb_begin_cpu_access(b, &hello.hid, HB_ACCESS_READ, FENCE_WAIT_MS), 0);
	CHECK_EQ(*(volatile uint64_t *)hb_import_data(im), 2ull * cfg->rounds);
	CHECK_EQ(hb_end_cpu_access(b, &hello.hid, HB_ACCESS_READ), 0);
	it_pipe_write(sv[0], &mine, sizeof(mine));
	CHECK_EQ(hbt_wait_child(pa), 0);
	printf("%u rounds x 2 parties (%s, %s): %llu ms\n", cfg->rounds, cfg->addr_a, cfg->addr_b,
	       (unsigned long long)(hbt_now_ms() - t0));
	close(sv[0]);
	hb_import_release(im);
	hb_timeline_destroy(t);
	hb_disconnect(b);
}

/* ---- §3.9: five producers, one consumer -------------------------------------------------- */

struct cons_slots {
	uint64_t count;
	uint64_t slot[CONS_PRODUCERS];
};

struct cons_arg {
	const char *addr;
	int id;
	int sock; /* gets: consumer timeline id + its buffer's hid; sends: own timeline id */
	unsigned rounds;
};

struct cons_hello {
	uint64_t tl;
	struct hb_id hid;
};

/* Waits in one of the selftest's two styles: 0 polls the sync fd (with the client's fd, as an
 * event loop must), 1 busy-polls the status. Returns the status (0: timed out, -1000: the fd
 * said something other than POLLIN). */
int hbt_cons_wait(struct hb_client *c, struct hb_sync *s, int style)
{
	if (style == 0) {
		uint64_t end = hbt_now_ms() + FENCE_WAIT_MS;

		while (hbt_now_ms() < end) {
			struct pollfd p[2] = {{.fd = hb_sync_fd(s), .events = POLLIN},
					      {.fd = hb_get_fd(c), .events = POLLIN}};

			if (poll(p, 2, 100) < 0 && errno != EINTR)
				return 0;
			if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
				return -1000;
			if (p[0].revents & POLLIN)
				return hb_sync_status(s);
			if (p[1].revents)
				hb_dispatch(c, 0);
		}
		return 0;
	}
	return fence_status_wait(c, s, FENCE_WAIT_MS);
}

static int cons_producer(void *p)
{
	struct cons_arg *a = p;
	struct cons_hello hello;
	struct hb_client *c = hb_connect(a->addr);
	struct hb_timeline *t;
	struct hb_import *im;
	struct cons_slots *sl;
	uint64_t mine;
	unsigned i;
	int ret = 0;

	if (!c)
		return 20;
	t = hb_timeline_create(c);
	if (!t || it_pipe_read(a->sock, &hello, sizeof(hello), FENCE_WAIT_MS) != 0)
		return 21;
	hbt_timeline_share_all(t);
	im = hb_import(c, &hello.hid, HB_IMPORT_WRITE);
	if (!im)
		return 22;
	sl = hb_import_data(im);
	mine = hb_timeline_id(t);
	if (write(a->sock, &mine, sizeof(mine)) != (ssize_t)sizeof(mine))
		return 23;
	for (i = 0; i < a->rounds; i++) {
		struct hb_fence f = {.timeline = hello.tl, .value = i};
		struct hb_sync *s = hb_sync_open(c, &f);
		struct hb_event ev;
		int st;

		if (!s) {
			fprintf(stderr, "producer %d round %u: hb_sync_open: %s\n", a->id, i,
				strerror(errno));
			ret = 1;
			break;
		}
		/* The style really varies per round (the selftest's choice was constant). */
		st = hbt_cons_wait(c, s, (int)((i + (unsigned)a->id) % 2));
		hb_sync_close(s);
		if (st != 1) {
			fprintf(stderr, "producer %d round %u: consumer point status %d\n", a->id,
				i, st);
			ret = 1;
			break;
		}
		if (hb_begin_cpu_access(c, &hello.hid, HB_ACCESS_WRITE, FENCE_WAIT_MS) != 0) {
			fprintf(stderr, "producer %d: begin: %s\n", a->id, strerror(errno));
			ret = 1;
			break;
		}
		__atomic_fetch_add(&sl->count, 1, __ATOMIC_RELAXED);
		sl->slot[a->id]++;
		if (hb_end_cpu_access(c, &hello.hid, HB_ACCESS_WRITE) != 0 ||
		    hb_timeline_signal(t, i + 1) != 0) {
			fprintf(stderr, "producer %d: end/signal: %s\n", a->id, strerror(errno));
			ret = 1;
			break;
		}
		while (hb_next_event(c, &ev) == 0)
			;
	}
	/* Stay until the consumer is done with our timeline. */
	if (it_pipe_read(a->sock, &mine, sizeof(mine), 120000) != 0 && !ret)
		ret = 24;
	hb_import_release(im);
	hb_timeline_destroy(t);
	hb_disconnect(c);
	return ret;
}

void fence_stress_consumer(const struct cons_cfg *cfg)
{
	struct cons_arg args[CONS_PRODUCERS];
	struct hb_client *c;
	struct hb_timeline *t;
	struct hb_buffer *buf[2];
	struct hb_id hid[2];
	volatile struct cons_slots *sl[2];
	uint64_t tl[CONS_PRODUCERS], t0 = hbt_now_ms();
	int sock[CONS_PRODUCERS], k, polled = 0, busy = 0;
	pid_t pid[CONS_PRODUCERS];
	unsigned it;

	for (k = 0; k < CONS_PRODUCERS; k++) {
		int sv[2];

		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		args[k].addr = cfg->prod_addr[k];
		args[k].id = k;
		args[k].sock = sv[1];
		args[k].rounds = cfg->rounds;
		pid[k] = hbt_fork(cons_producer, &args[k]);
		close(sv[1]);
		sock[k] = sv[0];
	}
	c = IT_CONNECT(cfg->consumer_addr);
	t = FENCE_TL(c);
	for (k = 0; k < 2; k++) {
		buf[k] =
		    IT_ALLOC(c, cfg->peer[k], sizeof(struct cons_slots), HB_BUFFER_PEER_WRITABLE);
		IT_EXPORT(buf[k], NULL, 0, &hid[k]);
		sl[k] = hb_buffer_data(buf[k]);
	}
	for (k = 0; k < CONS_PRODUCERS; k++) {
		struct cons_hello hello = {.tl = hb_timeline_id(t), .hid = hid[cfg->prod_buf[k]]};

		it_pipe_write(sock[k], &hello, sizeof(hello));
		CHECK_EQ(it_pipe_read(sock[k], &tl[k], sizeof(tl[k]), FENCE_WAIT_MS), 0);
	}
	for (it = 1; it <= cfg->rounds; it++) {
		struct hb_sync *m = NULL;
		struct hb_event ev;
		int st, style = (int)(it % 2);

		for (k = 0; k < CONS_PRODUCERS; k++) {
			struct hb_sync *s = FENCE_OPEN(c, tl[k], it);

			if (m) {
				struct hb_sync *n = FENCE_MERGE(m, s);

				hb_sync_close(m);
				hb_sync_close(s);
				m = n;
			} else {
				m = s;
			}
		}
		CHECK(fcntl(hb_sync_fd(m), F_GETFD) >= 0);
		st = hbt_cons_wait(c, m, style);
		if (st != 1)
			hbt_fail(__FILE__, __LINE__, "round %u: merged producers' status %d (%s)",
				 it, st, style ? "status polling" : "fd polling");
		style ? busy++ : polled++;
		hb_sync_close(m);
		for (k = 0; k < 2; k++)
			CHECK_EQ(hb_begin_cpu_access(c, &hid[k], HB_ACCESS_READ, FENCE_WAIT_MS), 0);
		if (sl[0]->count + sl[1]->count != 5ull * it)
			hbt_fail(__FILE__, __LINE__, "round %u: count %llu + %llu, want %u", it,
				 (unsigned long long)sl[0]->count, (unsigned long long)sl[1]->count,
				 5 * it);
		for (k = 0; k < CONS_PRODUCERS; k++) {
			uint64_t v = sl[cfg->prod_buf[k]]->slot[k];

			if (v != it)
				hbt_fail(__FILE__, __LINE__, "round %u: producer %d's slot is %llu",
					 it, k, (unsigned long long)v);
		}
		for (k = 0; k < 2; k++)
			CHECK_EQ(hb_end_cpu_access(c, &hid[k], HB_ACCESS_READ), 0);
		FENCE_SIGNAL(t, it);
		while (hb_next_event(c, &ev) == 0)
			;
	}
	for (k = 0; k < CONS_PRODUCERS; k++) {
		uint64_t bye = 1;

		it_pipe_write(sock[k], &bye, sizeof(bye));
		CHECK_EQ(hbt_wait_child(pid[k]), 0);
		close(sock[k]);
	}
	CHECK(polled > 0 && busy > 0);
	printf("%u rounds, 5 producers, consumer %s: %llu ms\n", cfg->rounds, cfg->consumer_addr,
	       (unsigned long long)(hbt_now_ms() - t0));
	hb_buffer_free(buf[0]);
	hb_buffer_free(buf[1]);
	hb_timeline_destroy(t);
	hb_disconnect(c);
}

/* ---- §3.10: random merges over 32 timelines in three domains ------------------------------- */

#define MERGE_TIMELINES 32

/*
 * Timelines i % 3 == 0 in vm1, == 1 in vm3 (agents), == 2 in vm2 (this process); all merging in
 * vm2. Points are vmin + rand % vrange. The start "point 0 of timeline 0, born signalled" is
 * kept. Then, timeline by timeline: after a barrier on the previous one, the merge must be
 * pending; the timeline goes to just below its largest point (still pending: the merge depends
 * on the maximum, i.e. the per-timeline dedup keeps the latest point), then to it. Finally
 * complete. If nest, every 64 merges the accumulated fence is merged with a merge of itself
 * (containers of containers).
 */
void fence_stress_random_merge(const struct hbt_daemon *d, unsigned rounds, uint64_t vmin,
			       uint64_t vrange, bool nest)
{
	struct fence_agent ag[2];
	struct hb_client *b;
	struct hb_timeline *own[MERGE_TIMELINES];
	struct hb_sync *acc;
	uint64_t id[MERGE_TIMELINES], maxv[MERGE_TIMELINES];
	uint64_t seed = 0x5eed0000u ^ (uint64_t)getpid() ^ hbt_now_ms(), seed0 = seed;
	int where[MERGE_TIMELINES], idx[MERGE_TIMELINES] = {0}, used, i, prev = -1;
	bool seen[MERGE_TIMELINES] = {false};
	uint64_t t0 = hbt_now_ms();
	unsigned r;

	FENCE_AGENT_START(&ag[0], hbt_addr_vm(d, 1), "A(vm1)");
	FENCE_AGENT_START(&ag[1], hbt_addr_vm(d, 3), "C(vm3)");
	b = IT_CONNECT(hbt_addr_vm(d, 2));
	for (i = 0; i < MERGE_TIMELINES; i++) {
		where[i] = i % 3;
		own[i] = NULL;
		if (where[i] == 2) {
			own[i] = FENCE_TL(b);
			id[i] = hb_timeline_id(own[i]);
		} else {
			idx[i] = FA_TIMELINE(&ag[where[i]], &id[i]);
		}
		maxv[i] = 0;
	}
	acc = FENCE_OPEN(b, id[0], 0);
	FENCE_STATUS(acc, 1); /* born signalled */
	seen[0] = true;
	used = 1;
	for (r = 0; r < rounds; r++) {
		int k = (int)(it_rand(&seed) % MERGE_TIMELINES);
		uint64_t v = vmin + it_rand(&seed) % vrange;
		struct hb_sync *s, *n;

		if (v > maxv[k])
			maxv[k] = v;
		if (!seen[k]) {
			seen[k] = true;
			used++;
		}
		s = FENCE_OPEN(b, id[k], v);
		n = FENCE_MERGE(acc, s);
		hb_sync_close(acc);
		hb_sync_close(s);
		acc = n;
		if (nest && r % 64 == 63) {
			struct hb_sync *self = FENCE_MERGE(acc, acc),
				       *both = FENCE_MERGE(self, acc);

			hb_sync_close(acc);
			hb_sync_close(self);
			acc = both;
		}
		if (r % 512 == 0)
			it_drain(b);
	}
	CHECK(fcntl(hb_sync_fd(acc), F_GETFD) >= 0);
	printf("%u merges over %d timelines, points %#llx + [0, %#llx) (seed %#llx)\n", rounds,
	       used, (unsigned long long)vmin, (unsigned long long)vrange,
	       (unsigned long long)seed0);
	for (i = 0; i < MERGE_TIMELINES; i++) {
		if (!seen[i] || maxv[i] == 0)
			continue;
		if (prev >= 0)
			FENCE_BARRIER(b, id[prev], maxv[prev]);
		FENCE_NOT_YET(acc);
		if (where[i] == 2)
			FENCE_SIGNAL(own[i], maxv[i] - 1);
		else
			FA_SIGNAL(&ag[where[i]], idx[i], maxv[i] - 1);
		FENCE_BARRIER(b, id[i], maxv[i] - 1);
		FENCE_NOT_YET(acc);
		FENCE_STATUS(acc, 0);
		if (where[i] == 2)
			FENCE_SIGNAL(own[i], maxv[i]);
		else
			FA_SIGNAL(&ag[where[i]], idx[i], maxv[i]);
		prev = i;
	}
	FENCE_WAIT_DONE(acc);
	FENCE_STATUS(acc, 1);
	hb_sync_close(acc);
	printf("done in %llu ms\n", (unsigned long long)(hbt_now_ms() - t0));
	for (i = 0; i < MERGE_TIMELINES; i++) {
		if (where[i] == 2)
			hb_timeline_destroy(own[i]);
	}
	FENCE_AGENT_STOP(&ag[0]);
	FENCE_AGENT_STOP(&ag[1]);
	hb_disconnect(b);
}
