/*
 * Fence conformance, part 4: shared/research/fences.md §5.7 assertions 40-43 (stress). 40-42
 * are the ported stress selftests (test_it_fence_selftests.c runs them in their §3 layout);
 * here each runs in another layout, so the two together cover more pairs of transports:
 *   40: the ping-pong between the host (unix:) and vm1, the host being the "daemon-side" owner
 *       §3.8 suggests;
 *   41: the consumer in vm2, producers in vm1 and vm3 (three domains, two groups);
 *   42: random merges of 64-bit points (above 2^32) with merges of merges nested in;
 *   43: the kunit callback race across two VMs: each signals its own point and waits for the
 *       other's at the same time, 10000 times: no lost wakeup.
 * Iterations are scaled to a 2-core machine but never below 1000.
 */
#include "tests/fence_stress.h"

/* 40. Two-party ping-pong over fences, 2 x 4096 rounds, the counter in shared memory exact at
 * every step and at the end; host <-> vm1. */
TEST(c40_two_party_ping_pong_host_vm1)
{
	struct hbt_daemon d;
	struct stress2_cfg cfg = {.dom_b = 0, .rounds = 4096};

	hbt_daemon_start(&d, NULL);
	cfg.addr_a = hbt_addr_vm(&d, 1);
	cfg.addr_b = hbt_addr_host(&d);
	fence_stress_two_party(&cfg);
	IT_STOP(&d);
}

/* 41. Five producers in two VMs (3 in vm1, 2 in vm3), one consumer (vm2), 2048 rounds, both
 * wait styles everywhere, no error status, the counters checked every round. */
TEST(c41_multi_producer_single_consumer_vm2)
{
	struct hbt_daemon d;
	struct cons_cfg cfg = {.peer = {1, 3}, .prod_buf = {0, 0, 0, 1, 1}, .rounds = 2048};
	int k;

	hbt_daemon_start(&d, NULL);
	cfg.consumer_addr = hbt_addr_vm(&d, 2);
	for (k = 0; k < CONS_PRODUCERS; k++)
		cfg.prod_addr[k] = k < 3 ? hbt_addr_vm(&d, 1) : hbt_addr_vm(&d, 3);
	fence_stress_consumer(&cfg);
	IT_STOP(&d);
}

/* 42. 32 timelines over three VMs, 8192 random merges of points in [2^32, 2^32 + 2^62), with
 * merges of merges every 64; pending before each last advance (and just below it), signalled
 * after the last. */
TEST(c42_random_merge_64bit_nested)
{
	struct hbt_daemon d;

	hbt_daemon_start(&d, NULL);
	fence_stress_random_merge(&d, 8192, 1ull << 32, 1ull << 62, true);
	IT_STOP(&d);
}

/*
 * 43. The notification race: A (vm1, its own process) and B (vm2, this process) run the same
 * loop 10000 times: signal my point r, then wait for the other's point r. Each signals while
 * the other may be registering its wait (the kunit "signal mine / add callback on yours" race,
 * run for a count rather than a time so both sides stop at the same round). A lost wakeup is a
 * wait that does not return, or returns only after RACE_LOST_MS (the library re-checks every
 * 1 s, which would hide a lost notification). A waits with hb_sync_wait, B alternates fd
 * polling and status polling.
 */
#define RACE_ROUNDS 10000

struct race_arg {
	const char *addr;
	int sock;
};

/* A wait this long means the wakeup was lost and only the library's periodic re-check (its
 * 1 s wait slice) found the completion: a push notification takes microseconds. */
#define RACE_LOST_MS 800

static int race_loop(struct hb_client *c, struct hb_timeline *mine, uint64_t theirs, int style)
{
	uint64_t r, worst = 0;

	for (r = 1; r <= RACE_ROUNDS; r++) {
		struct hb_fence f = {.timeline = theirs, .value = r};
		struct hb_sync *s;
		struct hb_event ev;
		uint64_t t0, dt;
		int st;

		if (hb_timeline_signal(mine, r) != 0)
			return -1;
		s = hb_sync_open(c, &f);
		if (!s)
			return -2;
		t0 = hbt_now_ms();
		if (style < 0)
			st = hb_sync_wait(s, FENCE_WAIT_MS) == 0 ? hb_sync_status(s) : 0;
		else
			st = hbt_cons_wait(c, s, (int)(r % 2));
		dt = hbt_now_ms() - t0;
		worst = dt > worst ? dt : worst;
		hb_sync_close(s);
		if (dt >= RACE_LOST_MS) {
			fprintf(stderr, "race: round %llu: the wait took %llu ms: a lost wakeup\n",
				(unsigned long long)r, (unsigned long long)dt);
			return -4;
		}
		while (hb_next_event(c, &ev) == 0)
			;
		if (st != 1) {
			fprintf(stderr, "race: round %llu: the other's point has status %d\n",
				(unsigned long long)r, st);
			return -3;
		}
	}
	printf("race (%s): longest wait %llu ms\n", style < 0 ? "hb_sync_wait" : "fd/status polling",
	       (unsigned long long)worst);
	return 0;
}

static int race_side_a(void *p)
{
	struct race_arg *a = p;
	struct hb_client *c = hb_connect(a->addr);
	struct hb_timeline *t;
	uint64_t mine, theirs;
	int ret;

	if (!c)
		return 20;
	t = hb_timeline_create(c);
	if (!t)
		return 21;
	hbt_timeline_share_all(t);
	mine = hb_timeline_id(t);
	if (write(a->sock, &mine, sizeof(mine)) != (ssize_t)sizeof(mine) ||
	    it_pipe_read(a->sock, &theirs, sizeof(theirs), FENCE_WAIT_MS) != 0)
		return 22;
	ret = race_loop(c, t, theirs, -1);
	/* Stay until B is done: it may still be opening our last point. */
	if (it_pipe_read(a->sock, &theirs, sizeof(theirs), 60000) != 0 && !ret)
		ret = 24;
	hb_timeline_destroy(t);
	hb_disconnect(c);
	return ret ? 1 : 0;
}

TEST(c43_notification_race_no_lost_wakeup)
{
	struct hbt_daemon d;
	struct race_arg arg;
	struct hb_client *b;
	struct hb_timeline *t;
	uint64_t mine, theirs, t0;
	int sv[2];
	pid_t pa;

	hbt_daemon_start(&d, NULL);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	arg.addr = hbt_addr_vm(&d, 1);
	arg.sock = sv[1];
	pa = hbt_fork(race_side_a, &arg);
	close(sv[1]);
	b = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = FENCE_TL(b);
	mine = hb_timeline_id(t);
	CHECK_EQ(it_pipe_read(sv[0], &theirs, sizeof(theirs), FENCE_WAIT_MS), 0);
	t0 = hbt_now_ms();
	it_pipe_write(sv[0], &mine, sizeof(mine));
	if (race_loop(b, t, theirs, 0) != 0)
		hbt_fail(__FILE__, __LINE__, "B(vm2): a lost wakeup or an error status");
	it_pipe_write(sv[0], &mine, sizeof(mine));
	CHECK_EQ(hbt_wait_child(pa), 0);
	printf("%d rounds of simultaneous signal-and-wait, no lost wakeup: %llu ms\n",
	       RACE_ROUNDS, (unsigned long long)(hbt_now_ms() - t0));
	close(sv[0]);
	hb_timeline_destroy(t);
	hb_disconnect(b);
	IT_STOP(&d);
}
