/*
 * Fence slots (docs/PROTOCOL.md §3 "Fence slots"): between two emulated VMs that share a pool
 * (vm1 and vm2 in group b of the standard topology), a watched timeline's value is in page 0
 * of the pool and its owner's library rings the waiter's doorbell, so a fence round sends the
 * daemon nothing but the owner's quiet signal, and the waiter receives nothing at all. A
 * failure, the owner's end, a restart and a member scribbling on the slot all fall back to what
 * the daemon tells.
 */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/kvm/host.h"
#include "protocol/limits.h"
#include "tests/it_common.h"

/* vm1 owns t, shared with vm2, which waits on it. */
struct sx {
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
};

/* The cast (the daemon under the holder if held, for a restart), and a first fence on t (a
 * request: the watch and its slot), signalled; then the owner reads what the daemon sent it,
 * which tells it the slot (before that, the daemon writes the slot when the signal reaches
 * it). */
static void sx_start(struct sx *x, bool held)
{
	struct hb_sync *s;

	if (held)
		hbt_daemon_start_held_extra(&x->d, NULL);
	else
		hbt_daemon_start(&x->d, NULL);
	x->v1 = IT_CONNECT(hbt_addr_vm(&x->d, 1));
	x->v2 = IT_CONNECT(hbt_addr_vm(&x->d, 2));
	x->t = IT_TIMELINE(x->v1, 2);
	s = IT_SYNC(x->v2, x->t, 1);
	CHECK_EQ(hb_timeline_signal(x->t, 1), 0);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	CHECK(hb_dispatch(x->v1, 0) >= 0);
}

static void sx_stop(struct sx *x)
{
	hb_timeline_destroy(x->t);
	hb_disconnect(x->v2);
	hb_disconnect(x->v1);
	IT_STOP(&x->d);
}

static struct hb_counters counters(struct hb_client *c)
{
	struct hb_counters n;

	CHECK_EQ(hb_counters(c, &n), 0);
	return n;
}

/* Signals t to value after ms, from another thread, while the test's thread waits. */
struct later {
	pthread_t th;
	struct hb_timeline *t;
	uint64_t value;
	unsigned ms;
	int error;                   /* 0: a signal; else hb_timeline_fail's */
	struct hbp_fence_slot *page; /* set: a member scribbles on every slot, before the
				      * signal and for 1.5 s (a wait slice and more) after */
};

/* A member of the group writing what it likes: every slot's waiters cleared and value 0. */
static void scribble(struct hbp_fence_slot *page)
{
	for (unsigned i = 1; i <= HBP_SLOTS; i++) {
		__atomic_store_n(&page[i].waiters, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&page[i].value, 0, __ATOMIC_SEQ_CST);
	}
}

static void *later_main(void *arg)
{
	struct later *l = arg;

	it_sleep_ms(l->ms);
	if (l->page)
		scribble(l->page);
	if (l->error)
		hb_timeline_fail(l->t, l->value, l->error);
	else
		hb_timeline_signal(l->t, l->value);
	/* The daemon writes the value too, a moment later: zeroed again and again. */
	for (int i = 0; l->page && i < 1500; i++) {
		scribble(l->page);
		it_sleep_ms(1);
	}
	return NULL;
}

static void later_start(struct later *l)
{
	CHECK_EQ(pthread_create(&l->th, NULL, later_main, l), 0);
}

static void later_join(struct later *l)
{
	CHECK_EQ(pthread_join(l->th, NULL), 0);
}

/* Page 0 of group name's pool, read-write, from a descriptor of it this process holds (an
 * emulated VM's own ivshmem memfd): what any member of the group can do. */
static struct hbp_fence_slot *pool_page0(const char *name)
{
	char want[64], link[128], path[300];
	struct dirent *e;
	DIR *dir = opendir("/proc/self/fd");
	void *p = MAP_FAILED;

	CHECK(dir != NULL);
	snprintf(want, sizeof(want), "/memfd:hyperbuf-%s ", name);
	while (p == MAP_FAILED && (e = readdir(dir))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strncmp(link, want, strlen(want)) == 0)
			p = mmap(NULL, HBP_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
				 atoi(e->d_name), 0);
	}
	closedir(dir);
	CHECK(p != MAP_FAILED);
	return p;
}

/* Rounds of a blocked wait, woken by a signal from another thread; values from first on. */
static void blocked_rounds(struct hb_client *waiter, struct hb_timeline *t, uint64_t first)
{
	for (uint64_t r = first; r < first + 10; r++) {
		struct hb_sync *s = IT_SYNC(waiter, t, r);
		struct later l = {.t = t, .value = r, .ms = 20};

		later_start(&l);
		CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
		CHECK_EQ(hb_sync_status(s), 1);
		later_join(&l);
		hb_sync_close(s);
	}
}

/* No frame reaches the waiter and it sends none (a missed doorbell would end in a WatchArm
 * after a whole wait slice); the owner sends its quiet signals. */
TEST(a_fence_round_between_vms_takes_no_frame_to_the_waiter)
{
	struct sx x;
	struct hb_counters w0, w1, o0, o1;

	sx_start(&x, false);
	w0 = counters(x.v2);
	o0 = counters(x.v1);
	blocked_rounds(x.v2, x.t, 2);
	w1 = counters(x.v2);
	o1 = counters(x.v1);
	CHECK_EQ(w1.frames_in - w0.frames_in, 0);
	CHECK_EQ(w1.frames_out - w0.frames_out, 0);
	CHECK_EQ(o1.frames_out - o0.frames_out, 10);
	/* One doorbell per round, rung by the owner (counted with its wakes), read by the
	 * waiter (counted with its receive calls). */
	CHECK(o1.wakes - o0.wakes >= 10);
	CHECK(w1.recvs - w0.recvs >= 10);
	sx_stop(&x);
}

/* One side of a ping-pong: waits for the other's round r, checks that the other really got
 * there (its counter, written before its signal), and answers with r. */
struct side {
	pthread_t th;
	struct hb_client *c;
	struct hb_timeline *mine, *theirs;
	uint64_t done;        /* rounds signalled, written before each signal */
	const uint64_t *peer; /* the other side's done */
	bool first;           /* signals before it waits */
	int bad;              /* rounds whose wait returned before the other signalled */
};

#define PING_ROUNDS 2000

static void *side_main(void *arg)
{
	struct side *sd = arg;

	for (uint64_t r = 1; r <= PING_ROUNDS; r++) {
		struct hb_fence f = {hb_timeline_id(sd->theirs), r};
		struct hb_sync *s = hb_sync_open(sd->c, &f);

		if (sd->first) {
			__atomic_store_n(&sd->done, r, __ATOMIC_SEQ_CST);
			hb_timeline_signal(sd->mine, r);
		}
		if (!s || hb_sync_wait(s, IT_WAIT_MS) < 0 || hb_sync_status(s) != 1 ||
		    __atomic_load_n(sd->peer, __ATOMIC_SEQ_CST) < r)
			sd->bad++;
		hb_sync_close(s);
		if (!sd->first) {
			__atomic_store_n(&sd->done, r, __ATOMIC_SEQ_CST);
			hb_timeline_signal(sd->mine, r);
		}
	}
	return NULL;
}

/* Thousands of rounds through the slots, each side checking that every wait returned only
 * after the other side signalled: a slot never completes a point early. */
TEST(a_ping_pong_never_completes_a_point_early)
{
	struct sx x;
	struct hb_timeline *t2;
	struct side a = {0}, b = {0};
	struct hb_counters w0, w1;
	struct hb_sync *s;

	sx_start(&x, false);
	t2 = IT_TIMELINE(x.v2, 1);
	/* Both timelines at 1 already (sx_start's round), and t2 watched with its slot. */
	s = IT_SYNC(x.v1, t2, 1);
	CHECK_EQ(hb_timeline_signal(t2, 1), 0);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	hb_sync_close(s);
	a = (struct side){.c = x.v1, .mine = x.t, .theirs = t2, .peer = &b.done, .first = true};
	b = (struct side){.c = x.v2, .mine = t2, .theirs = x.t, .peer = &a.done};
	a.done = b.done = 1;
	w0 = counters(x.v2);
	CHECK_EQ(pthread_create(&a.th, NULL, side_main, &a), 0);
	CHECK_EQ(pthread_create(&b.th, NULL, side_main, &b), 0);
	CHECK_EQ(pthread_join(a.th, NULL), 0);
	CHECK_EQ(pthread_join(b.th, NULL), 0);
	w1 = counters(x.v2);
	CHECK_EQ(a.bad, 0);
	CHECK_EQ(b.bad, 0);
	/* Through the slots: vm2 was told nothing by the daemon. Its only frames answer the
	 * one signal in 64 that waits for the daemon (the window of quiet ones, call.h). */
	CHECK(w1.frames_in - w0.frames_in <= PING_ROUNDS / 64 + 1);
	hb_timeline_destroy(t2);
	sx_stop(&x);
}

/* A failure poisons the slot: the failed points get their error from the daemon, and the
 * points after it still complete (through the watch). */
TEST(a_failure_is_told_with_its_error)
{
	struct sx x;
	struct hb_sync *s2, *s3, *s5;
	struct later l;

	sx_start(&x, false);
	s2 = IT_SYNC(x.v2, x.t, 2);
	s3 = IT_SYNC(x.v2, x.t, 3);
	s5 = IT_SYNC(x.v2, x.t, 5);
	l = (struct later){.t = x.t, .value = 3, .ms = 20, .error = -EIO};
	later_start(&l);
	CHECK_EQ(hb_sync_wait(s3, IT_WAIT_MS), 0);
	later_join(&l);
	CHECK_EQ(hb_sync_status(s2), -EIO);
	CHECK_EQ(hb_sync_status(s3), -EIO);
	CHECK_EQ(hb_sync_status(s5), 0);
	l = (struct later){.t = x.t, .value = 5, .ms = 20};
	later_start(&l);
	CHECK_EQ(hb_sync_wait(s5, IT_WAIT_MS), 0);
	later_join(&l);
	CHECK_EQ(hb_sync_status(s5), 1);
	hb_sync_close(s2);
	hb_sync_close(s3);
	hb_sync_close(s5);
	sx_stop(&x);
}

/* A member that clears every waiter bit and zeroes every value, around the owner's signal,
 * delays the wait by a wait slice at most: the watch then asks the daemon (one WatchArm),
 * whose record is not in the pool. */
TEST(a_member_scribbling_on_the_slot_only_delays_a_wait)
{
	struct sx x;
	struct hb_sync *s;
	struct hb_counters w0, w1;
	struct later l;

	sx_start(&x, false);
	s = IT_SYNC(x.v2, x.t, 2);
	w0 = counters(x.v2);
	l = (struct later){.t = x.t, .value = 2, .ms = 50, .page = pool_page0("b")};
	later_start(&l);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	later_join(&l);
	CHECK_EQ(hb_sync_status(s), 1);
	w1 = counters(x.v2);
	CHECK_EQ(w1.frames_out - w0.frames_out, 1);
	CHECK(w1.frames_in - w0.frames_in >= 1);
	munmap(l.page, HBP_PAGE_SIZE);
	hb_sync_close(s);
	sx_stop(&x);
}

/* An event loop on hb_get_fd: polls it, dispatches, and looks at the status, until s ends.
 * Its status, or 0 if a poll ran out (IT_WAIT_MS): nothing woke the loop, neither a doorbell
 * nor the library's stall timer. */
static int loop_until_done(struct hb_client *c, struct hb_sync *s)
{
	struct pollfd pfd = {.fd = hb_get_fd(c), .events = POLLIN};

	for (int i = 0; i < 1000 && hb_sync_status(s) == 0; i++) {
		struct hb_event ev;

		if (poll(&pfd, 1, IT_WAIT_MS) <= 0 || hb_dispatch(c, 0) < 0)
			return 0;
		while (hb_next_event(c, &ev) == 0)
			;
	}
	return hb_sync_status(s);
}

/* A waiter that never calls hb_sync_wait is woken by its doorbell through hb_get_fd, and by
 * the stall timer when a member scribbles on the slot (no wait slice of its own to end). */
TEST(an_event_loop_is_woken_by_the_doorbell_and_after_a_stall)
{
	struct sx x;
	struct hb_counters w0, w1;
	struct hb_sync *s;
	struct later l;

	sx_start(&x, false);
	w0 = counters(x.v2);
	s = IT_SYNC(x.v2, x.t, 2);
	l = (struct later){.t = x.t, .value = 2, .ms = 20};
	later_start(&l);
	CHECK_EQ(loop_until_done(x.v2, s), 1);
	later_join(&l);
	hb_sync_close(s);
	w1 = counters(x.v2);
	CHECK_EQ(w1.frames_in - w0.frames_in, 0);
	CHECK_EQ(w1.frames_out - w0.frames_out, 0);
	s = IT_SYNC(x.v2, x.t, 3);
	l = (struct later){.t = x.t, .value = 3, .ms = 50, .page = pool_page0("b")};
	later_start(&l);
	CHECK_EQ(loop_until_done(x.v2, s), 1);
	later_join(&l);
	munmap(l.page, HBP_PAGE_SIZE);
	hb_sync_close(s);
	sx_stop(&x);
}

/* A client of vm2 that joined after the owner last read anything: the owner has no doorbell of
 * it yet, so it leaves its bit, and the daemon rings it when the signal arrives (counted in
 * pool.b.fence_rings). Without that, the waiter would sleep a whole slice. */
TEST(a_waiter_the_owner_does_not_know_yet_is_rung_by_the_daemon)
{
	struct sx x;
	struct hb_client *late;
	struct hb_counters w0, w1;
	struct hb_sync *s;
	struct later l;

	uint64_t rings0;

	sx_start(&x, false);
	late = IT_CONNECT(hbt_addr_vm(&x.d, 2));
	s = IT_SYNC(late, x.t, 2);
	w0 = counters(late);
	rings0 = IT_STAT(&x.d, "pool.b.fence_rings");
	l = (struct later){.t = x.t, .value = 2, .ms = 20};
	later_start(&l);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	later_join(&l);
	CHECK_EQ(hb_sync_status(s), 1);
	/* The daemon rang it (a slice later, the stall timer would have woken it instead). */
	CHECK(IT_STAT(&x.d, "pool.b.fence_rings") - rings0 >= 1);
	w1 = counters(late);
	CHECK_EQ(w1.frames_out - w0.frames_out, 0);
	CHECK_EQ(w1.frames_in - w0.frames_in, 0);
	hb_sync_close(s);
	hb_disconnect(late);
	sx_stop(&x);
}

/* The owner leaves with a point pending: the slot is poisoned and freed (hyperbufctl stats
 * counts the pool's slots in use), and the point fails with -EPIPE, as a wait's would. */
TEST(the_owners_end_fails_a_slotted_point)
{
	struct sx x;
	struct hb_sync *s;

	sx_start(&x, false);
	CHECK_EQ(IT_STAT(&x.d, "pool.b.fence_slots"), 1);
	s = IT_SYNC(x.v2, x.t, 7);
	hb_disconnect(x.v1);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s), -EPIPE);
	CHECK_EQ(IT_STAT(&x.d, "pool.b.fence_slots"), 0);
	hb_sync_close(s);
	hb_disconnect(x.v2);
	IT_STOP(&x.d);
}

/* Across a daemon restart the old slots are poisoned; the resumed watch gets a new slot and
 * the point completes when the owner signals after it. The owner does nothing else: its
 * library sees its slot taken back and sends that signal as a call, which resumes it (an
 * owner without slots sends its signals at its next call, docs/RESTART.md). */
TEST(a_slotted_point_survives_a_restart)
{
	struct sx x;
	struct hb_sync *s;
	struct later l = {.value = 4, .ms = 20};

	sx_start(&x, true);
	s = IT_SYNC(x.v2, x.t, 4);
	hbt_daemon_crash(&x.d);
	CHECK_EQ(hb_timeline_signal(x.t, 3), 0);
	CHECK_ERR(hb_sync_wait(s, 50), ETIME);
	l.t = x.t;
	later_start(&l);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	later_join(&l);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	sx_stop(&x);
}

/* Owner o's timeline at domain, and waiter w's first round on it (the watch and its slot);
 * then o reads what the daemon sent it, which tells it the slot. */
static struct hb_timeline *slotted(struct hb_client *o, struct hb_client *w, uint32_t domain)
{
	struct hb_timeline *t = IT_TIMELINE(o, domain);

	blocked_rounds(w, t, 1);
	CHECK(hb_dispatch(o, 0) >= 0);
	return t;
}

/* Ten blocked rounds from first: no frame reaches the waiter, and the owner rang it itself
 * (its wakes), or (!by_owner) left it to the daemon. */
static void rung_rounds(struct hb_client *o, struct hb_client *w, struct hb_timeline *t,
			uint64_t first, bool by_owner)
{
	struct hb_counters o0 = counters(o), w0 = counters(w), o1, w1;

	blocked_rounds(w, t, first);
	o1 = counters(o);
	w1 = counters(w);
	CHECK_EQ(w1.frames_in - w0.frames_in, 0);
	CHECK_EQ(w1.frames_out - w0.frames_out, 0);
	CHECK(by_owner ? o1.wakes - o0.wakes >= 10 : o1.wakes == o0.wakes);
}

/* A host process gets doorbells of its own with Attach (an ivshmem connection, PROTOCOL.md §3
 * "Attach"): a VM rings a host waiter, and a host owner rings a VM, neither through the
 * daemon, and neither waiter is sent a frame. */
TEST(a_host_and_a_vm_ring_each_other)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *tv, *th;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	tv = slotted(v1, h, 0);
	th = slotted(h, v1, 1);
	rung_rounds(v1, h, tv, 11, true);
	rung_rounds(h, v1, th, 11, true);
	hb_timeline_destroy(th);
	hb_timeline_destroy(tv);
	hb_disconnect(v1);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* After a restart the new slot is told to the owner once its session resumed (a restored
 * session's features are unknown until its Hello), and the owner rings again. */
TEST(an_owner_rings_again_after_a_restart)
{
	struct sx x;

	sx_start(&x, true);
	hbt_daemon_crash(&x.d);
	/* Both resume, and the watch gets a new slot. */
	blocked_rounds(x.v2, x.t, 2);
	CHECK(hb_dispatch(x.v1, 0) >= 0);
	rung_rounds(x.v1, x.v2, x.t, 12, true);
	sx_stop(&x);
}

/* The host's ivshmem connection is kept across a restart and bound to the host again (its
 * claim): the host's library keeps its doorbell, and the rounds after the restart take no
 * frame either. */
TEST(a_host_doorbell_survives_a_restart)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *tv;

	hbt_daemon_start_held_extra(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	tv = slotted(v1, h, 0);
	hbt_daemon_crash(&d);
	/* The first rounds resume both sides, and the watch gets a new slot. */
	blocked_rounds(h, tv, 11);
	CHECK(hb_dispatch(v1, 0) >= 0);
	rung_rounds(v1, h, tv, 21, true);
	hb_timeline_destroy(tv);
	hb_disconnect(v1);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* A waiter with HYPERBUF_SIGNALS=watched, and a host waiter past the group's host doorbells
 * (HBK_HOST_DOORBELLS: it got the pool memfd), are told by the watch: a TimelineValue per
 * round. */
static void rounds_take_frames(struct hb_client *owner, struct hb_client *waiter, uint32_t domain)
{
	struct hb_timeline *t = IT_TIMELINE(owner, domain);
	struct hb_counters w0, w1;

	w0 = counters(waiter);
	blocked_rounds(waiter, t, 1);
	w1 = counters(waiter);
	CHECK(w1.frames_in - w0.frames_in >= 10);
	hb_timeline_destroy(t);
}

#define HOSTS (HBK_HOST_DOORBELLS + 1)

TEST(without_a_doorbell_the_watch_tells)
{
	struct hbt_daemon d;
	struct hb_client *h[HOSTS], *v1, *v2;

	hbt_daemon_start(&d, NULL);
	for (unsigned i = 0; i < HOSTS; i++)
		h[i] = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	setenv("HYPERBUF_SIGNALS", "watched", 1);
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	unsetenv("HYPERBUF_SIGNALS");
	rounds_take_frames(v1, h[HOSTS - 1], 0);
	rounds_take_frames(v1, v2, 2);
	/* The ones before it have doorbells. */
	rung_rounds(v1, h[0], slotted(v1, h[0], 0), 11, true);
	hb_disconnect(v1);
	hb_disconnect(v2);
	for (unsigned i = 0; i < HOSTS; i++)
		hb_disconnect(h[i]);
	IT_STOP(&d);
}
