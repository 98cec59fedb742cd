/*
 * Re-exports (docs/PROTOCOL.md §3 "Re-exports"): hb_export with HB_EXPORT_NOWAIT of a buffer
 * whose export the daemon keeps sends a quiet Export naming its hid and returns without an
 * answer (without the flag it waits, as always); the peer
 * hears every one, in order. After hb_unexport the next export asks again (a new hid, or the
 * same one while a delayed unexport was pending). A restart in between loses nothing and
 * repeats nothing. The daemon's side of a stale or forged hid is in test_it_hostile.
 */
#include <signal.h>

#include "tests/it_common.h"

struct rx {
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
};

static void rx_start(struct rx *x, bool held)
{
	if (held)
		hbt_daemon_start_held(&x->d, NULL);
	else
		hbt_daemon_start(&x->d, NULL);
	x->v1 = IT_CONNECT(hbt_addr_vm(&x->d, 1));
	x->v2 = IT_CONNECT(hbt_addr_vm(&x->d, 2));
	it_drain(x->v1);
	it_drain(x->v2);
	x->b = IT_ALLOC(x->v1, 2, 4096, 0);
	it_fill(x->b, 0x4e);
}

static void rx_stop(struct rx *x)
{
	hb_buffer_free(x->b);
	IT_CHECK_STAT(&x->d, "pages_used", 0);
	hb_disconnect(x->v1);
	hb_disconnect(x->v2);
	IT_STOP(&x->d);
}

/* vm2's next event: EXPORTED of id, with one byte of metadata, seq. */
static void expect_exported(struct hb_client *c, const struct hb_id *id, uint8_t seq)
{
	struct hb_event ev;

	IT_WAIT_EVENT(c, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, id));
	CHECK_EQ(ev.meta_len, 1);
	CHECK_EQ(ev.meta[0], seq);
}

/* The first export asks; of the next 20, eight in nine are sent and not waited for (on a VM
 * channel one poll each, for a restart's marker), the ninth waits for the answer that covers
 * them all: 2 frames read for 20. More metadata than any meta_max allows for sure
 * (HBP_META_MAX_FLOOR) asks again. */
TEST(a_reexport_does_not_wait)
{
	struct hb_counters c0, c1;
	struct hb_event ev;
	struct hb_id id, again;
	struct hb_import *im;
	struct rx x;
	uint8_t seq = 0;

	rx_start(&x, false);
	CHECK_EQ(hb_counters(x.v1, &c0), 0);
	IT_EXPORT(x.b, &seq, 1, &id);
	CHECK_EQ(hb_counters(x.v1, &c1), 0);
	CHECK_EQ(c1.frames_in - c0.frames_in, 1);
	for (seq = 1; seq <= 20; seq++) {
		CHECK_EQ(hb_export(x.b, &seq, 1, HB_EXPORT_NOWAIT, &again), 0);
		CHECK(hb_id_equal(&again, &id));
	}
	CHECK_EQ(hb_counters(x.v1, &c0), 0);
	CHECK_EQ(c0.frames_out - c1.frames_out, 20);
	CHECK_EQ(c0.frames_in - c1.frames_in, 2);
	CHECK(c0.polls - c1.polls <= 20);
	for (seq = 0; seq <= 20; seq++)
		expect_exported(x.v2, &id, seq);
	{
		static uint8_t big[HBP_META_MAX_FLOOR + 1];

		CHECK_EQ(hb_export(x.b, big, sizeof(big), HB_EXPORT_NOWAIT, &again), 0);
		CHECK_EQ(hb_counters(x.v1, &c1), 0);
		CHECK_EQ(c1.frames_in - c0.frames_in, 1);
		CHECK(hb_id_equal(&again, &id));
		it_wait_event_at(__FILE__, __LINE__, x.v2, HB_EVENT_EXPORTED, &ev, IT_WAIT_MS);
		CHECK_EQ(ev.meta_len, sizeof(big));
		seq = 20;
		CHECK_EQ(hb_export(x.b, &seq, 1, HB_EXPORT_NOWAIT, &again), 0);
		expect_exported(x.v2, &id, seq);
	}
	/* Without HB_EXPORT_NOWAIT a re-export is done when it returns, for everybody. */
	CHECK_EQ(hb_counters(x.v1, &c0), 0);
	seq = 21;
	CHECK_EQ(hb_export(x.b, &seq, 1, 0, &again), 0);
	CHECK_EQ(hb_counters(x.v1, &c1), 0);
	CHECK_EQ(c1.frames_in - c0.frames_in, 1);
	expect_exported(x.v2, &id, seq);
	CHECK_ERR(hb_export(x.b, &seq, 1, 2, &again), EINVAL);
	IT_CHECK_STAT(&x.d, "exports", 1);
	im = IT_IMPORT(x.v2, &id, 0);
	IT_CHECK_IMPORT(im, 4096, 0x4e);
	CHECK_EQ(hb_import_metadata(im, &seq, 1), 1);
	CHECK_EQ(seq, 21);
	hb_import_release(im);
	rx_stop(&x);
}

/* hb_unexport ends the export: the next one asks, and gets a new hid (or, while a delayed
 * unexport is pending, keeps its hid and cancels it). */
TEST(export_after_unexport_asks)
{
	struct hb_counters c0, c1;
	struct hb_id id, id2, id3;
	struct hb_event ev;
	struct rx x;
	uint8_t seq = 1;

	rx_start(&x, false);
	IT_EXPORT(x.b, &seq, 1, &id);
	expect_exported(x.v2, &id, seq);
	CHECK_EQ(hb_unexport(x.v1, &id, 0), 0);
	IT_WAIT_EVENT(x.v2, HB_EVENT_UNEXPORTED, &ev);
	CHECK_EQ(hb_counters(x.v1, &c0), 0);
	IT_EXPORT(x.b, &seq, 1, &id2);
	CHECK_EQ(hb_counters(x.v1, &c1), 0);
	CHECK_EQ(c1.frames_in - c0.frames_in, 1);
	CHECK(!hb_id_equal(&id2, &id));
	expect_exported(x.v2, &id2, seq);

	/* Delayed: the re-export asks, keeps the hid, and the export stays. */
	CHECK_EQ(hb_unexport(x.v1, &id2, 200), 0);
	seq = 2;
	IT_EXPORT(x.b, &seq, 1, &id3);
	CHECK(hb_id_equal(&id3, &id2));
	expect_exported(x.v2, &id2, seq);
	IT_EXPECT_QUIET(x.v2, 400);
	IT_CHECK_STAT(&x.d, "exports", 1);
	/* Live again: the next one is sent without waiting. */
	CHECK_EQ(hb_counters(x.v1, &c0), 0);
	seq = 3;
	CHECK_EQ(hb_export(x.b, &seq, 1, HB_EXPORT_NOWAIT, &id3), 0);
	CHECK_EQ(hb_counters(x.v1, &c1), 0);
	CHECK_EQ(c1.frames_in - c0.frames_in, 0);
	expect_exported(x.v2, &id2, seq);
	rx_stop(&x);
}

/* The daemon killed before a re-export reaches it: the library resumes and sends it again,
 * and the peer hears it once. */
TEST(reexport_across_a_restart)
{
	struct hb_info info;
	struct hb_id id, again;
	struct rx x;
	uint8_t seq = 1;

	rx_start(&x, true);
	IT_EXPORT(x.b, &seq, 1, &id);
	expect_exported(x.v2, &id, seq);
	hbt_daemon_crash(&x.d);
	seq = 2;
	CHECK_EQ(hb_export(x.b, &seq, 1, HB_EXPORT_NOWAIT, &again), 0);
	CHECK(hb_id_equal(&again, &id));
	/* A call after it: whatever the first send met, the re-export is in by its answer. */
	IT_QUERY(x.v1, &id, &info);
	expect_exported(x.v2, &id, seq);
	IT_EXPECT_QUIET(x.v2, 300);
	IT_CHECK_STAT(&x.d, "exports", 1);
	rx_stop(&x);
}

/* A producer whose last re-export the daemon never read (stopped, then killed) and that
 * disconnects at once: the disconnect resumes, sends it again, and the peer hears it. */
TEST(a_reexport_right_before_a_disconnect_is_not_lost)
{
	struct hb_id id, again;
	struct rx x;
	uint8_t seq = 1;

	rx_start(&x, true);
	IT_EXPORT(x.b, &seq, 1, &id);
	expect_exported(x.v2, &id, seq);
	CHECK_EQ(kill(x.d.spawn.main_pid, SIGSTOP), 0);
	seq = 2;
	CHECK_EQ(hb_export(x.b, &seq, 1, HB_EXPORT_NOWAIT, &again), 0);
	hbt_daemon_crash(&x.d);
	hb_disconnect(x.v1);
	x.v1 = NULL;
	expect_exported(x.v2, &id, seq);
	hb_disconnect(x.v2);
	IT_STOP(&x.d);
}
