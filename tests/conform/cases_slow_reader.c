/*
 * A client that does not read is dropped, not waited for (test_it_timeline
 * `slow_client_dropped_not_waited_for`), on the "queues" variant (fence_waits_per_domain =
 * 1000). The slow reader is vm2's raw stream (conform.h, cf_raw_open): it pipelines fence opens
 * and never reads a byte back, so everything the daemon sends it piles up in its transport
 * (the socket, QEMU's chardev and the guest's virtio queue, or the vchan and dom0's relay)
 * and then in the daemon. Written once for every target (tests/conform/conform.h).
 */
#include "tests/conform/raw.h"

/* Waits opened per round: the variant's fence_waits_per_domain, so that one round of
 * completions the transport cannot take is enough to drop the reader. */
#define SLOW_WAITS 1000
/* Rounds at most (two side-channel keys each): the transports hold a few MiB at most, and a
 * round queues about 40 KiB of replies and completions. */
#define SLOW_ROUNDS 200
/* The host's healthy waiter waits past every round. */
#define SLOW_HEALTHY ((uint64_t)SLOW_WAITS * SLOW_ROUNDS + 1)

/* One round's SyncOpens for values from+1 .. from+SLOW_WAITS, in one write. */
static void open_round(struct cf_raw *r, uint64_t tl, uint64_t from)
{
	static uint8_t buf[SLOW_WAITS * 48];
	size_t n = 0;

	for (uint64_t i = 1; i <= SLOW_WAITS; i++) {
		ClientMsg m = CLIENT_MSG__INIT;
		SyncOpen so = SYNC_OPEN__INIT;

		so.timeline = tl;
		so.value = from + i;
		CF_MSG(m, SYNC_OPEN, sync_open, &so);
		m.id = r->next_id++;
		cf_raw_put_frame(buf, sizeof(buf), &n, &m);
	}
	CHECK_EQ(cf_raw_send_all(r, buf, n), 0);
}

/* vm2: opens a round of waits, lets vm1 signal past them, and never reads, until the daemon
 * drops it. "opened<i>" is the round's top value, or 0 once the reader was dropped. */
static void slow_reader(void)
{
	uint64_t tl = cf_get_u64("tl"), v = 0;
	long long waits, dropped0 = cf_stat("fence_sessions_dropped");
	struct cf_raw r;
	char key[32];
	int round;

	cf_barrier("healthy");
	waits = cf_stat("fence_waits");
	cf_raw_session(&r);
	for (round = 0; round < SLOW_ROUNDS; round++) {
		open_round(&r, tl, v);
		/* Every open is pending once the daemon read them all; the signal then comes
		 * after them. */
		CF_STAT_BECOMES("fence_waits", waits + SLOW_WAITS);
		v += SLOW_WAITS;
		snprintf(key, sizeof(key), "opened%d", round);
		cf_put_u64(key, v);
		snprintf(key, sizeof(key), "signalled%d", round);
		cf_get(key);
		if (cf_stat("fence_sessions_dropped") > dropped0)
			break;
	}
	if (round == SLOW_ROUNDS)
		cf_fail(__FILE__, __LINE__, "the non-reading session survived %d rounds of %d",
			SLOW_ROUNDS, SLOW_WAITS);
	snprintf(key, sizeof(key), "opened%d", round + 1);
	cf_put_u64(key, 0);
	printf("dropped after %d rounds of %d completions\n", round + 1, SLOW_WAITS);
	CHECK_EQ(cf_stat("fence_sessions_dropped"), dropped0 + 1);
	/* The daemon hangs up (what it sent before is read and dropped on the way). */
	if (!cf_raw_wait_closed(&r, CF_WAIT_MS))
		cf_fail(__FILE__, __LINE__, "the daemon did not hang up within %d ms", CF_WAIT_MS);
	cf_raw_drop(&r);
	CF_STAT_BECOMES("fence_waits", waits); /* the healthy one is left */
	cf_barrier("dropped");
	cf_barrier("checked");
	cf_barrier("done");
}

/* vm1: owns the timeline and signals past each round. Every signal returns: the daemon does
 * not wait for the reader. */
static void slow_signaller(void)
{
	struct hb_client *c = cf_connect();
	struct hb_timeline *t = cf_timeline_for(c, "tl");
	char key[32];

	cf_barrier("healthy");
	for (int round = 0;; round++) {
		uint64_t v;

		snprintf(key, sizeof(key), "opened%d", round);
		v = cf_get_u64(key);
		if (v == 0)
			break;
		CHECK_EQ(hb_timeline_signal(t, v), 0);
		snprintf(key, sizeof(key), "signalled%d", round);
		cf_put(key, "1");
	}
	cf_barrier("dropped");
	cf_barrier("checked");
	CHECK_EQ(hb_timeline_signal(t, SLOW_HEALTHY), 0);
	cf_barrier("done");
	hb_timeline_destroy(t);
}

/* The host: a healthy waiter past every round still gets its completion. */
static void slow_healthy(void)
{
	struct hb_client *c = cf_connect();
	struct hb_sync *s = CF_OPEN(c, cf_get_u64("tl"), SLOW_HEALTHY);

	cf_barrier("healthy");
	cf_barrier("dropped");
	CHECK_EQ(hb_sync_status(s), 0);
	cf_barrier("checked");
	CF_WAIT_DONE(s);
	CHECK_EQ(hb_sync_status(s), 1);
	cf_barrier("done");
	hb_sync_close(s);
}

CF_CASE_IN("queues", slow_client_dropped_not_waited_for, {0, slow_healthy}, {1, slow_signaller},
	   {2, slow_reader})
