/*
 * Timelines, syncs and CPU access with the real daemon and emulated VMs: the first set of
 * cases of issue 3 (the conformance suite of fences.md §5.7 lives in test_it_fence*.c).
 * vm1 owns timelines, vm2 (which shares group b with vm1) waits on them, vm3 (no group with
 * vm1) must not see them, the host sees everything.
 */
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "tests/it_common.h"

#define TL_CREATE(c)        tl_create_at(__FILE__, __LINE__, (c))
#define SYNC_OPEN(c, tl, v) sync_open_at(__FILE__, __LINE__, (c), (tl), (v))

static struct hb_timeline *tl_create_at(const char *file, int line, struct hb_client *c)
{
	struct hb_timeline *t = hb_timeline_create(c);

	if (!t)
		hbt_fail(file, line, "hb_timeline_create: %s", strerror(errno));
	if (hb_timeline_id(t) == 0)
		hbt_fail(file, line, "timeline id 0");
	hbt_timeline_share_all(t);
	return t;
}

static struct hb_sync *sync_open_at(const char *file, int line, struct hb_client *c,
				    uint64_t timeline, uint64_t value)
{
	struct hb_fence f = {timeline, value};
	struct hb_sync *s = hb_sync_open(c, &f);

	if (!s)
		hbt_fail(file, line, "hb_sync_open(%llu, %llu): %s", (unsigned long long)timeline,
			 (unsigned long long)value, strerror(errno));
	return s;
}

/* 1 if the sync's fd polls readable right now, 0 if not. */
static int fd_ready(const struct hb_sync *s)
{
	struct pollfd p = {.fd = hb_sync_fd(s), .events = POLLIN};
	int r = poll(&p, 1, 0);

	CHECK(r >= 0);
	CHECK(!(p.revents & (POLLERR | POLLNVAL)));
	return r > 0 && (p.revents & POLLIN);
}

/* Control-session Control request: the ControlReply (free with server_msg__free_unpacked). */
static ServerMsg *ctl_reply(const struct hbt_daemon *d)
{
	struct it_raw r;
	ClientMsg m = CLIENT_MSG__INIT;
	Control ctl = CONTROL__INIT;
	ServerMsg *s;

	hbt_raw_session(&r, d->socket, HBP_ROLE_CONTROL);
	ctl.what = HBP_CTL_TIMELINES;
	IT_MSG(m, CONTROL, control, &ctl);
	s = IT_RAW_CALL(&r, &m);
	it_raw_close(&r);
	CHECK_EQ(s->error, 0);
	CHECK(s->body_case == SERVER_MSG__BODY_CONTROL);
	return s;
}

/* Basic cross-VM signal and wait: pending, not ready, signalled in order, latched. */
TEST(signal_and_wait_across_vms)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
	struct hb_sync *s5, *s3, *s5b;
	struct hb_event ev;
	struct hb_fence f;
	uint64_t id;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	t = TL_CREATE(v1);
	id = hb_timeline_id(t);
	s5 = SYNC_OPEN(v2, id, 5);
	s3 = SYNC_OPEN(v2, id, 3);
	s5b = SYNC_OPEN(v2, id, 5); /* the same fence: one daemon wait */
	/* Two waits, or the watch of the timeline that tells of both. */
	if (it_fences_watched())
		CHECK(IT_STAT(&d, "fence_waits") == 0 && IT_STAT(&d, "fence_watches") == 1);
	else
		CHECK_EQ(IT_STAT(&d, "fence_waits"), 2);
	CHECK_EQ(hb_sync_status(s5), 0);
	CHECK_EQ(fd_ready(s5), 0);
	CHECK_ERR(hb_sync_wait(s5, 0), ETIME);
	{
		uint64_t t0 = hbt_now_ms();
		CHECK_ERR(hb_sync_wait(s5, 100), ETIME);
		CHECK(hbt_now_ms() - t0 >= 100);
	}

	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	CHECK_EQ(hb_sync_wait(s3, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s3), 1);
	CHECK_EQ(hb_sync_status(s5), 0);
	CHECK_EQ(fd_ready(s3), 1);
	CHECK_EQ(fd_ready(s5), 0);
	IT_WAIT_EVENT(v2, HB_EVENT_FENCE, &ev);
	CHECK_EQ(hb_event_fence(&ev, &f), 0);
	CHECK_EQ(f.timeline, id);
	CHECK_EQ(f.value, 3);
	CHECK_EQ(ev.domain, 1);
	CHECK_EQ(ev.size, 3);

	/* Lower and equal values are no-ops. */
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	CHECK_ERR(hb_sync_wait(s5, 50), ETIME);

	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	CHECK_EQ(hb_sync_wait(s5, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s5), 1);
	CHECK_EQ(hb_sync_status(s5b), 1);
	CHECK_EQ(fd_ready(s5b), 1);
	IT_WAIT_EVENT(v2, HB_EVENT_FENCE, &ev);
	CHECK_EQ(hb_event_fence(&ev, &f), 0);
	CHECK_EQ(f.value, 5);

	/* Latched: stays ready after the timeline moves on and after repeated waits. */
	CHECK_EQ(hb_timeline_signal(t, 1000), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(hb_sync_wait(s5, 0), 0);
		CHECK_EQ(fd_ready(s5), 1);
	}
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 0);
	hb_sync_close(s5);
	hb_sync_close(s3);
	hb_sync_close(s5b);
	hb_timeline_destroy(t);
	CHECK_EQ(IT_STAT(&d, "timelines"), 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* Many points, random advances: every completion arrives in value order. (N stays below the
 * event queue's 256, so no FENCE event is lost to an overflow.) */
TEST(completions_in_value_order)
{
	enum { N = 250 };
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
	struct hb_sync *s[N + 1];
	struct hb_event ev;
	struct hb_fence f;
	uint64_t seed = 7, v = 0, last = 0, id;
	int seen = 0;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	t = TL_CREATE(v1);
	id = hb_timeline_id(t);
	for (int i = 1; i <= N; i++)
		s[i] = SYNC_OPEN(v2, id, (uint64_t)i);
	while (v < N) {
		v += 1 + it_rand(&seed) % 17;
		CHECK_EQ(hb_timeline_signal(t, v), 0);
	}
	while (seen < N) {
		if (IT_NEXT_EVENT(v2, &ev, IT_WAIT_MS) != 0)
			hbt_fail(__FILE__, __LINE__, "only %d of %d fence events", seen, N);
		if (ev.type != HB_EVENT_FENCE)
			continue;
		CHECK_EQ(hb_event_fence(&ev, &f), 0);
		CHECK_EQ(f.value, last + 1);
		last = f.value;
		CHECK_EQ(hb_sync_status(s[f.value]), 1);
		seen++;
	}
	for (int i = 1; i <= N; i++) {
		CHECK_EQ(hb_sync_status(s[i]), 1);
		hb_sync_close(s[i]);
	}
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* Visibility: a timeline is the owner's domain's until the owner shares it (ENOENT for everybody
 * else, as for an id that does not exist); a domain it was shared with may wait but not signal
 * (EPERM); the owner may share only with domains it can share buffers with. */
TEST(owner_only_and_visibility)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2, *v3, *h;
	struct hb_timeline *t;
	struct hb_sync *s;
	struct hb_fence f;
	struct it_raw r;
	ClientMsg m = CLIENT_MSG__INIT;
	TimelineSignal ts = TIMELINE_SIGNAL__INIT;
	TimelineDestroy td = TIMELINE_DESTROY__INIT;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v3 = IT_CONNECT(hbt_addr_vm(&d, 3));
	h = IT_CONNECT(hbt_addr_host(&d));
	t = hb_timeline_create(v1); /* not shared with anybody yet */
	CHECK(t != NULL);
	f.timeline = hb_timeline_id(t);
	f.value = 1;

	/* Nobody but vm1 sees it: vm2 and the host share groups with vm1, and still ENOENT. */
	CHECK_ERR(hb_sync_open(v2, &f), ENOENT);
	CHECK_ERR(hb_sync_open(h, &f), ENOENT);
	hbt_raw_session(&r, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT);
	ts.timeline = f.timeline;
	ts.value = 1;
	IT_MSG(m, TIMELINE_SIGNAL, timeline_signal, &ts);
	CHECK_EQ(IT_RAW_ERR(&r, &m), ENOENT);

	/* Shared with vm2: it sees the timeline, but does not own it. */
	CHECK_EQ(hb_timeline_share(t, 2), 0);
	CHECK_EQ(hb_timeline_share(t, 2), 0); /* again: a no-op */
	CHECK_EQ(IT_RAW_ERR(&r, &m), EPERM);
	ts.error = EIO;
	CHECK_EQ(IT_RAW_ERR(&r, &m), EPERM);
	td.timeline = f.timeline;
	IT_MSG(m, TIMELINE_DESTROY, timeline_destroy, &td);
	CHECK_EQ(IT_RAW_ERR(&r, &m), EPERM);
	td.timeline = f.timeline ^ 1; /* unknown */
	CHECK_EQ(IT_RAW_ERR(&r, &m), ENOENT);
	it_raw_close(&r);

	/* vm3 shares no group with vm1: it may not be given the timeline, and does not see it. */
	CHECK_ERR(hb_timeline_share(t, 3), EPERM);
	CHECK_ERR(hb_timeline_share(NULL, 3), EINVAL);
	hbt_raw_session(&r, hbt_path(&d, "vm3.sock"), HBP_ROLE_CLIENT);
	ts.error = 0;
	IT_MSG(m, TIMELINE_SIGNAL, timeline_signal, &ts);
	CHECK_EQ(IT_RAW_ERR(&r, &m), ENOENT);
	it_raw_close(&r);
	CHECK_ERR(hb_sync_open(v3, &f), ENOENT);

	/* Bad errors: the owner's own fail with a non-errno is EINVAL in the library. */
	CHECK_ERR(hb_timeline_fail(t, 1, 0), EINVAL);
	CHECK_ERR(hb_timeline_fail(t, 1, 5), EINVAL);
	CHECK_ERR(hb_timeline_fail(t, 1, -4096), EINVAL);
	f.timeline = 0;
	CHECK_ERR(hb_sync_open(v2, &f), EINVAL);
	f.timeline = hb_timeline_id(t) + 12345;
	CHECK_ERR(hb_sync_open(v2, &f), ENOENT);
	f.timeline = hb_timeline_id(t);

	/* Shared with the host, it may wait; the owner's own domain always may. */
	CHECK_EQ(hb_timeline_share(t, 0), 0);
	s = hb_sync_open(h, &f);
	CHECK(s != NULL);
	hb_sync_close(s);
	s = hb_sync_open(v1, &f);
	CHECK(s != NULL);
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	/* The owner's own sync is complete when its signal returns. */
	CHECK_EQ(hb_sync_wait(s, 0), 0);
	CHECK_EQ(hb_sync_status(s), 1);
	hb_sync_close(s);
	hb_disconnect(v1);
	hb_disconnect(v2);
	hb_disconnect(v3);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* Ids are 64 random bits: a domain that knows one finds no other by counting around it, and
 * an attached fence gives the timeline to both sides of the share, nobody else. */
TEST(timeline_ids_random_and_private)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2, *h;
	struct hb_timeline *t[64], *mine;
	struct hb_buffer *b;
	struct hb_id id;
	struct hb_fence f;
	struct hb_sync *s;
	uint64_t ors = 0, ands = ~0ull;
	int found = 0;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	h = IT_CONNECT(hbt_addr_host(&d));
	for (int i = 0; i < 64; i++) {
		t[i] = hb_timeline_create(i % 2 ? h : v1);
		CHECK(t[i] != NULL);
		ors |= hb_timeline_id(t[i]);
		ands &= hb_timeline_id(t[i]);
	}
	/* 64 random ids: every bit is set in some and clear in some (a 64 * 2^-63 chance of a
	 * false failure); sequential or epoch-based ids would fail this. */
	CHECK(ors == ~0ull && ands == 0);
	/* vm2, which shares a group with vm1, guesses around each of vm1's ids: nothing. */
	mine = hb_timeline_create(v2);
	CHECK(mine != NULL);
	for (int i = 0; i < 64; i += 2)
		for (int k = -32; k <= 32; k++) {
			f.timeline = hb_timeline_id(t[i]) + (uint64_t)(int64_t)k;
			f.value = 1;
			s = f.timeline == hb_timeline_id(mine) ? NULL : hb_sync_open(v2, &f);
			found += s != NULL;
			if (s)
				hb_sync_close(s);
		}
	CHECK_EQ(found, 0);
	/* Attached by its owner to a buffer exported to vm2: both sides see it; the host not. */
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);
	f.timeline = hb_timeline_id(t[0]);
	f.value = 5;
	CHECK_EQ(hb_attach_fence(v1, &id, &f, HB_ACCESS_WRITE), 0);
	s = hb_sync_open(v2, &f);
	CHECK(s != NULL);
	hb_sync_close(s);
	CHECK_ERR(hb_sync_open(h, &f), ENOENT);
	hb_buffer_free(b);
	for (int i = 0; i < 64; i++)
		hb_timeline_destroy(t[i]);
	hb_timeline_destroy(mine);
	hb_disconnect(v1);
	hb_disconnect(v2);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* At or below the current value: complete at birth, fd readable at once. */
TEST(born_signalled)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
	struct hb_sync *s;
	uint64_t vals[] = {0, 1, 6, 7};

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = TL_CREATE(v1);
	CHECK_EQ(hb_timeline_signal(t, 7), 0);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		s = SYNC_OPEN(v2, hb_timeline_id(t), vals[i]);
		CHECK_EQ(hb_sync_status(s), 1);
		CHECK_EQ(fd_ready(s), 1);
		CHECK_EQ(hb_sync_wait(s, 0), 0);
		hb_sync_close(s);
	}
	s = SYNC_OPEN(v2, hb_timeline_id(t), 8);
	CHECK_EQ(hb_sync_status(s), 0);
	hb_sync_close(s);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 0); /* closing the pending one closed its wait */
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* fail sets the error on pending points <= v, not on completed ones or later ones; merges keep
 * errors, even from a member that failed before the merge. */
TEST(fail_sets_error)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
	struct hb_sync *s1, *s2, *s3, *s5, *m, *m2, *ok;
	uint64_t id;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = TL_CREATE(v1);
	id = hb_timeline_id(t);
	s1 = SYNC_OPEN(v2, id, 1);
	s2 = SYNC_OPEN(v2, id, 2);
	s3 = SYNC_OPEN(v2, id, 3);
	s5 = SYNC_OPEN(v2, id, 5);
	m = hb_sync_merge(s3, s5);
	CHECK(m != NULL);
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	CHECK_EQ(hb_timeline_fail(t, 3, -EIO), 0);
	CHECK_EQ(hb_sync_wait(s3, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s1), 1);
	CHECK_EQ(hb_sync_status(s2), -EIO);
	CHECK_EQ(hb_sync_status(s3), -EIO);
	CHECK_EQ(hb_sync_status(s5), 0);
	CHECK_EQ(hb_sync_status(m), 0); /* still waits for 5 */
	CHECK_EQ(fd_ready(s2), 1);      /* an error completion is a completion */
	/* Opened late, a failed point is born with its error; a signalled one with 1. */
	{
		struct hb_sync *late2 = SYNC_OPEN(v2, id, 2), *late1 = SYNC_OPEN(v2, id, 1);

		CHECK_EQ(hb_sync_status(late2), -EIO);
		CHECK_EQ(hb_sync_status(late1), 1);
		CHECK_EQ(fd_ready(late2), 1);
		hb_sync_close(late2);
		hb_sync_close(late1);
	}

	/* Merging a member that already failed: the error is inherited. */
	m2 = hb_sync_merge(s2, s5);
	CHECK(m2 != NULL);
	CHECK_EQ(hb_sync_status(m2), 0);
	ok = hb_sync_merge(s1, s1);
	CHECK(ok != NULL);
	CHECK_EQ(hb_sync_status(ok), 1);

	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	CHECK_EQ(hb_sync_wait(m, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_wait(m2, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s5), 1);
	CHECK_EQ(hb_sync_status(m), -EIO);
	CHECK_EQ(hb_sync_status(m2), -EIO);
	/* A further fail changes nothing already complete. */
	CHECK_EQ(hb_timeline_fail(t, 5, -ENODEV), 0);
	CHECK_EQ(hb_sync_status(s5), 1);
	hb_sync_close(m);
	hb_sync_close(m2);
	hb_sync_close(ok);
	hb_sync_close(s1);
	hb_sync_close(s2);
	hb_sync_close(s3);
	hb_sync_close(s5);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* Destroy completes pending points with -EPIPE; the id is never handed out again. */
TEST(destroy_gives_epipe)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t, *t2;
	struct hb_sync *s2, *s4, *s1;
	struct hb_fence f;
	uint64_t id;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = TL_CREATE(v1);
	id = hb_timeline_id(t);
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	s1 = SYNC_OPEN(v2, id, 1);
	s2 = SYNC_OPEN(v2, id, 2);
	s4 = SYNC_OPEN(v2, id, 4);
	hb_timeline_destroy(t);
	CHECK_EQ(hb_sync_wait(s4, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s1), 1);
	CHECK_EQ(hb_sync_status(s2), -EPIPE);
	CHECK_EQ(hb_sync_status(s4), -EPIPE);
	f.timeline = id;
	f.value = 1;
	CHECK_ERR(hb_sync_open(v2, &f), ENOENT);
	for (int i = 0; i < 50; i++) {
		t2 = TL_CREATE(v1);
		CHECK(hb_timeline_id(t2) != id);
		hb_timeline_destroy(t2);
	}
	CHECK_EQ(IT_STAT(&d, "timelines"), 0);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 0);
	hb_sync_close(s1);
	hb_sync_close(s2);
	hb_sync_close(s4);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

struct owner_arg {
	const char *addr;
	int pipe_w;
};

/* Creates a timeline, signals 1, reports its id, then waits to be killed. */
static int owner_child(void *p)
{
	struct owner_arg *a = p;
	struct hb_client *c = hb_connect(a->addr);
	struct hb_timeline *t;
	uint64_t id;

	if (!c || !(t = hb_timeline_create(c)) || hb_timeline_signal(t, 1) != 0)
		return 10;
	hbt_timeline_share_all(t);
	id = hb_timeline_id(t);
	if (write(a->pipe_w, &id, sizeof(id)) != sizeof(id))
		return 11;
	for (;;)
		pause();
}

/* SIGKILL of the owner: pending points complete with -EPIPE, oldest first; completed ones
 * stay signalled. */
TEST(owner_sigkill_oldest_first)
{
	struct hbt_daemon d;
	struct hb_client *v2;
	struct hb_sync *s[6];
	struct owner_arg arg;
	struct hb_event ev;
	struct hb_fence f;
	int pfd[2], seen = 0;
	uint64_t id, last = 1;
	pid_t pid;

	hbt_daemon_start(&d, NULL);
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	CHECK(pipe(pfd) == 0);
	arg.addr = hbt_addr_vm(&d, 1);
	arg.pipe_w = pfd[1];
	pid = hbt_fork(owner_child, &arg);
	if (it_pipe_read(pfd[0], &id, sizeof(id), IT_WAIT_MS) != 0) {
		kill(pid, SIGKILL);
		hbt_fail(__FILE__, __LINE__, "the owner did not report its timeline");
	}
	/* Opened in a scrambled order: completion order must still be by value. */
	for (int i = 5; i >= 1; i -= 2)
		s[i] = SYNC_OPEN(v2, id, (uint64_t)i);
	for (int i = 4; i >= 2; i -= 2)
		s[i] = SYNC_OPEN(v2, id, (uint64_t)i);
	CHECK_EQ(hb_sync_status(s[1]), 1);
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK_EQ(hbt_wait_child(pid), 128 + SIGKILL);
	while (seen < 4) {
		if (IT_NEXT_EVENT(v2, &ev, IT_WAIT_MS) != 0)
			hbt_fail(__FILE__, __LINE__, "only %d of 4 fence events", seen);
		if (ev.type != HB_EVENT_FENCE)
			continue;
		CHECK_EQ(hb_event_fence(&ev, &f), 0);
		CHECK_EQ(f.timeline, id);
		CHECK_EQ(f.value, last + 1);
		last = f.value;
		seen++;
	}
	CHECK_EQ(hb_sync_status(s[1]), 1);
	for (int i = 2; i <= 5; i++)
		CHECK_EQ(hb_sync_status(s[i]), -EPIPE);
	for (int i = 1; i <= 5; i++)
		hb_sync_close(s[i]);
	CHECK_EQ(IT_STAT(&d, "timelines"), 0);
	close(pfd[0]);
	close(pfd[1]);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* A lost daemon: pending handles complete with the sticky errno, waits return, new calls fail;
 * a new daemon does not know the old ids. */
TEST(lost_daemon_fails_pending)
{
	struct hbt_daemon d, d2;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
	struct hb_sync *s, *done, *m;
	struct hb_fence f;
	int st;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = TL_CREATE(v1);
	f.timeline = hb_timeline_id(t);
	CHECK_EQ(hb_timeline_signal(t, 1), 0);
	done = SYNC_OPEN(v2, f.timeline, 1);
	s = SYNC_OPEN(v2, f.timeline, 9);
	m = hb_sync_merge(s, done);
	CHECK(m != NULL);
	IT_STOP(&d);
	CHECK_EQ(hb_sync_wait(s, IT_WAIT_MS), 0);
	st = hb_sync_status(s);
	CHECK(st == -EPIPE || st == -ECONNRESET);
	CHECK_EQ(hb_sync_status(m), st);
	CHECK_EQ(fd_ready(s), 1);
	CHECK_EQ(fd_ready(m), 1);
	CHECK_EQ(hb_sync_status(done), 1);
	f.value = 2;
	CHECK_ERR(hb_sync_open(v2, &f), -st);
	CHECK_ERR(hb_timeline_signal(t, 3), -st);
	CHECK(hb_timeline_create(v2) == NULL);
	hb_sync_close(s);
	hb_sync_close(m);
	hb_sync_close(done);
	hb_timeline_destroy(t);
	hb_disconnect(v1);
	hb_disconnect(v2);

	hbt_daemon_start(&d2, NULL);
	v2 = IT_CONNECT(hbt_addr_vm(&d2, 2));
	CHECK_ERR(hb_sync_open(v2, &f), ENOENT);
	hb_disconnect(v2);
	IT_STOP(&d2);
}

/* hyperbufctl timelines and stats show what exists. */
TEST(ctl_lists_timelines)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
	struct hb_sync *s;
	ServerMsg *m;
	char out[8192], want[64];

	/* PENDING counts the daemon's waits: v2's fence is one, not a point on a watch. */
	it_fences_as_waits(true);
	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = TL_CREATE(v1);
	CHECK_EQ(hb_timeline_signal(t, 41), 0);
	s = SYNC_OPEN(v2, hb_timeline_id(t), 50);
	m = ctl_reply(&d);
	CHECK_EQ(m->control->n_timelines, 1);
	CHECK_EQ(m->control->timelines[0]->id, hb_timeline_id(t));
	CHECK_EQ(m->control->timelines[0]->owner, 1);
	CHECK_EQ(m->control->timelines[0]->value, 41);
	CHECK_EQ(m->control->timelines[0]->pending, 1);
	CHECK(strncmp(m->control->timelines[0]->owner_session, "vm1#", 4) == 0);
	server_msg__free_unpacked(m, NULL);

	CHECK_EQ(hbt_ctl(&d, out, sizeof(out), "timelines"), 0);
	CHECK(strstr(out, "ID") && strstr(out, "OWNER") && strstr(out, "VALUE") &&
	      strstr(out, "PENDING"));
	snprintf(want, sizeof(want), "%llu", (unsigned long long)hb_timeline_id(t));
	CHECK(strstr(out, want) != NULL);
	CHECK(strstr(out, "vm1#") != NULL);
	CHECK_EQ(hbt_ctl(&d, out, sizeof(out), "--json timelines"), 0);
	CHECK(it_json_ok(out));
	/* A string: 64 random bits that jq would round as a number. */
	snprintf(want, sizeof(want), "\"id\":\"%llu\"", (unsigned long long)hb_timeline_id(t));
	CHECK(strstr(out, want) != NULL);
	CHECK(strstr(out, "\"value\":41") && strstr(out, "\"pending\":1") &&
	      strstr(out, "\"owner\":1"));
	CHECK_EQ(IT_STAT(&d, "timelines"), 1);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 1);
	CHECK_EQ(IT_STAT(&d, "timelines_total"), 1);
	hb_sync_close(s);
	hb_disconnect(v1);
	IT_CHECK_STAT(&d, "timelines", 0);
	CHECK_EQ(hbt_ctl(&d, out, sizeof(out), "--json timelines"), 0);
	CHECK(strstr(out, "{\"timelines\":[]}") != NULL);
	hb_disconnect(v2);
	IT_STOP(&d);
	it_fences_as_waits(false);
}

/*
 * Implicit sync on a share vm1 -> vm2: READ waits for WRITE fences only, WRITE waits for all;
 * a timed-out begin changes nothing and can be retried; end never waits; data written under
 * a WRITE bracket before a signal is seen after the wait and a READ begin.
 */
TEST(attach_begin_end)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2, *v3, *h;
	struct hb_timeline *tw, *tr;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_id id, bogus;
	struct hb_fence fw, fr;
	uint64_t waits, seed = 3;
	uint64_t t0;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v3 = IT_CONNECT(hbt_addr_vm(&d, 3));
	h = IT_CONNECT(hbt_addr_host(&d));
	b = IT_ALLOC(v1, 2, 3 * 4096 + 5, HB_BUFFER_PEER_WRITABLE);
	IT_EXPORT(b, NULL, 0, &id);
	im = IT_IMPORT(v2, &id, HB_IMPORT_WRITE);
	tw = TL_CREATE(v1);
	tr = TL_CREATE(v2);
	fw = (struct hb_fence){hb_timeline_id(tw), 1};
	fr = (struct hb_fence){hb_timeline_id(tr), 1};

	/* An idle buffer: both accesses start at once, from both sides. */
	CHECK_EQ(hb_begin_cpu_access(v1, &id, HB_ACCESS_READ | HB_ACCESS_WRITE, 0), 0);
	CHECK_EQ(hb_end_cpu_access(v1, &id, HB_ACCESS_READ | HB_ACCESS_WRITE), 0);
	CHECK_EQ(hb_begin_cpu_access(v2, &id, HB_ACCESS_READ, 0), 0);
	CHECK_EQ(hb_end_cpu_access(v2, &id, HB_ACCESS_READ), 0);

	/* vm1 starts writing and publishes its write's completion as a WRITE fence, which
	 * makes vm2's READ wait (vm1's own later starts would wait for it too). */
	CHECK_EQ(hb_begin_cpu_access(v1, &id, HB_ACCESS_WRITE, 0), 0);
	CHECK_EQ(hb_attach_fence(v1, &id, &fw, HB_ACCESS_WRITE), 0);
	CHECK_ERR(hb_begin_cpu_access(v1, &id, HB_ACCESS_READ, 0), ETIME);
	waits = (uint64_t)IT_STAT(&d, "fence_waits");
	t0 = hbt_now_ms();
	CHECK_ERR(hb_begin_cpu_access(v2, &id, HB_ACCESS_READ, 100), ETIME);
	CHECK(hbt_now_ms() - t0 >= 100);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), (long long)waits); /* nothing left behind */
	CHECK_ERR(hb_begin_cpu_access(v2, &id, HB_ACCESS_READ, 0), ETIME);
	CHECK_ERR(hb_begin_cpu_access(v2, &id, HB_ACCESS_WRITE, 0), ETIME);
	/* end never waits, even with the fence pending. */
	t0 = hbt_now_ms();
	CHECK_EQ(hb_end_cpu_access(v2, &id, HB_ACCESS_READ), 0);
	CHECK(hbt_now_ms() - t0 < 1000);

	/* vm1 writes under its bracket, then signals: vm2 sees the bytes. */
	it_fill(b, seed);
	CHECK_EQ(hb_end_cpu_access(v1, &id, HB_ACCESS_WRITE), 0);
	CHECK_EQ(hb_timeline_signal(tw, 1), 0);
	CHECK_EQ(hb_begin_cpu_access(v2, &id, HB_ACCESS_READ, IT_WAIT_MS), 0);
	IT_CHECK_IMPORT(im, 3 * 4096 + 5, seed);
	CHECK_EQ(hb_end_cpu_access(v2, &id, HB_ACCESS_READ), 0);

	/* vm2 reads: its READ fence does not hold readers, but holds writers. */
	CHECK_EQ(hb_attach_fence(v2, &id, &fr, HB_ACCESS_READ), 0);
	CHECK_EQ(hb_begin_cpu_access(v1, &id, HB_ACCESS_READ, 0), 0);
	CHECK_ERR(hb_begin_cpu_access(v1, &id, HB_ACCESS_WRITE, 50), ETIME);
	CHECK_ERR(hb_begin_cpu_access(v1, &id, HB_ACCESS_READ | HB_ACCESS_WRITE, 0), ETIME);
	CHECK_EQ(hb_timeline_signal(tr, 1), 0);
	CHECK_EQ(hb_begin_cpu_access(v1, &id, HB_ACCESS_WRITE, IT_WAIT_MS), 0);

	/* Replacement: a later point of the same timeline replaces its entry, so many never
	 * fill the reservation; a READ never downgrades a WRITE entry. */
	for (uint64_t v = 2; v < 2 + 3 * HB_RESV_MAX; v++) {
		fw.value = v;
		CHECK_EQ(hb_attach_fence(v1, &id, &fw, HB_ACCESS_WRITE), 0);
	}
	fw.value = 200;
	CHECK_EQ(hb_attach_fence(v1, &id, &fw, HB_ACCESS_WRITE), 0);
	CHECK_EQ(hb_attach_fence(v1, &id, &fw, HB_ACCESS_READ), 0);
	CHECK_EQ(hb_timeline_signal(tw, 199), 0);
	CHECK_ERR(hb_begin_cpu_access(v2, &id, HB_ACCESS_READ, 0), ETIME);
	CHECK_EQ(hb_timeline_signal(tw, 200), 0);
	CHECK_EQ(hb_begin_cpu_access(v2, &id, HB_ACCESS_READ | HB_ACCESS_WRITE, IT_WAIT_MS), 0);

	/* A failed fence counts as complete for CPU access. */
	fw.value = 300;
	CHECK_EQ(hb_attach_fence(v1, &id, &fw, HB_ACCESS_WRITE), 0);
	CHECK_EQ(hb_timeline_fail(tw, 300, -EIO), 0);
	CHECK_EQ(hb_begin_cpu_access(v2, &id, HB_ACCESS_READ, IT_WAIT_MS), 0);
	/* A completed fence is accepted and changes nothing. */
	fw.value = 5;
	CHECK_EQ(hb_attach_fence(v1, &id, &fw, HB_ACCESS_WRITE), 0);
	CHECK_EQ(hb_begin_cpu_access(v2, &id, HB_ACCESS_WRITE, 0), 0);

	/* The owner dying completes its fences: nobody's access hangs on a dead timeline. */
	fr.value = 10;
	CHECK_EQ(hb_attach_fence(v2, &id, &fr, HB_ACCESS_WRITE), 0);
	CHECK_ERR(hb_begin_cpu_access(v1, &id, HB_ACCESS_READ, 0), ETIME);
	hb_timeline_destroy(tr);
	CHECK_EQ(hb_begin_cpu_access(v1, &id, HB_ACCESS_READ, IT_WAIT_MS), 0);

	/* Neither side of the share (vm3, and the host, which could see the timeline): ENOENT;
	 * an unknown hid too; bad bits EINVAL. */
	fw.value = 400;
	CHECK_ERR(hb_begin_cpu_access(v3, &id, HB_ACCESS_READ, 0), ENOENT);
	CHECK_ERR(hb_end_cpu_access(v3, &id, HB_ACCESS_READ), ENOENT);
	CHECK_ERR(hb_attach_fence(v3, &id, &fw, HB_ACCESS_READ), ENOENT);
	CHECK_ERR(hb_begin_cpu_access(h, &id, HB_ACCESS_READ, 0), ENOENT);
	CHECK_ERR(hb_attach_fence(h, &id, &fw, HB_ACCESS_READ), ENOENT);
	it_random_id(&bogus, &seed);
	CHECK_ERR(hb_begin_cpu_access(v1, &bogus, HB_ACCESS_READ, 0), ENOENT);
	CHECK_ERR(hb_end_cpu_access(v1, &bogus, HB_ACCESS_READ), ENOENT);
	CHECK_ERR(hb_attach_fence(v1, &bogus, &fw, HB_ACCESS_READ), ENOENT);
	CHECK_ERR(hb_begin_cpu_access(v1, &id, 0, 0), EINVAL);
	CHECK_ERR(hb_begin_cpu_access(v1, &id, 4, 0), EINVAL);
	CHECK_ERR(hb_end_cpu_access(v1, &id, 0), EINVAL);
	CHECK_ERR(hb_end_cpu_access(v1, &id, HB_ACCESS_READ | 8), EINVAL);
	CHECK_ERR(hb_attach_fence(v1, &id, &fw, 0), EINVAL);
	CHECK_ERR(hb_attach_fence(v1, &id, &fw, 16), EINVAL);
	CHECK_ERR(hb_begin_cpu_access(v1, &id, HB_ACCESS_READ, -2), EINVAL);
	/* A timeline the other side cannot see (vm3's: vm1 shares no group with vm3). */
	{
		struct hb_timeline *t3 = TL_CREATE(v3);
		struct hb_fence f3 = {hb_timeline_id(t3), 1};

		CHECK_ERR(hb_attach_fence(v2, &id, &f3, HB_ACCESS_READ), ENOENT);
		hb_timeline_destroy(t3);
	}

	/* HB_RESV_MAX distinct pending timelines fill it; the next is ENOSPC. */
	{
		struct hb_timeline *many[HB_RESV_MAX + 1];
		int i;

		hb_timeline_destroy(tw);
		for (i = 0; i <= HB_RESV_MAX; i++) {
			struct hb_fence f;

			many[i] = TL_CREATE(v1);
			f = (struct hb_fence){hb_timeline_id(many[i]), 1};
			if (i < HB_RESV_MAX)
				CHECK_EQ(hb_attach_fence(v1, &id, &f, HB_ACCESS_WRITE), 0);
			else
				CHECK_ERR(hb_attach_fence(v1, &id, &f, HB_ACCESS_WRITE), ENOSPC);
		}
		CHECK_EQ(hb_timeline_signal(many[0], 1), 0);
		{
			struct hb_fence f = {hb_timeline_id(many[HB_RESV_MAX]), 1};
			CHECK_EQ(hb_attach_fence(v1, &id, &f, HB_ACCESS_WRITE), 0);
		}
		for (i = 0; i <= HB_RESV_MAX; i++)
			hb_timeline_destroy(many[i]);
		CHECK_EQ(hb_begin_cpu_access(v2, &id, HB_ACCESS_WRITE, IT_WAIT_MS), 0);
	}
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	hb_disconnect(v3);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* Per-domain bounds: EDQUOT past timelines_per_domain and fence_waits_per_domain, shared by
 * the domain's sessions; born-signalled opens and reopens of a pending point cost nothing;
 * closing frees a slot. */
TEST(per_domain_bounds)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v1b, *v2, *v2b;
	struct hb_timeline *t[3];
	struct hb_sync *s[4], *extra;
	struct hb_fence f;

	/* The quota of waits: the fences are waits, not points on watches. */
	it_fences_as_waits(true);
	hbt_daemon_start(&d, "[limits]\ntimelines_per_domain = 2\nfence_waits_per_domain = 3\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v1b = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v2b = IT_CONNECT(hbt_addr_vm(&d, 2));
	t[0] = TL_CREATE(v1);
	t[1] = TL_CREATE(v1b);
	CHECK_ERR(hb_timeline_create(v1), EDQUOT);
	CHECK_ERR(hb_timeline_create(v1b), EDQUOT);
	t[2] = TL_CREATE(v2); /* another domain's own quota */
	hb_timeline_destroy(t[1]);
	t[1] = TL_CREATE(v1);

	f.timeline = hb_timeline_id(t[0]);
	s[0] = SYNC_OPEN(v2, f.timeline, 1);
	s[1] = SYNC_OPEN(v2, f.timeline, 2);
	s[2] = SYNC_OPEN(v2b, f.timeline, 3);
	f.value = 4;
	CHECK_ERR(hb_sync_open(v2, &f), EDQUOT);
	CHECK_ERR(hb_sync_open(v2b, &f), EDQUOT);
	/* The same pending point again: the library shares the daemon's wait. */
	s[3] = SYNC_OPEN(v2, f.timeline, 2);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 3);
	/* vm1's own quota is separate. */
	extra = SYNC_OPEN(v1, f.timeline, 9);
	hb_sync_close(extra);
	/* Completions free slots; born-signalled opens never take one. */
	CHECK_EQ(hb_timeline_signal(t[0], 1), 0);
	CHECK_EQ(hb_sync_wait(s[0], IT_WAIT_MS), 0);
	extra = SYNC_OPEN(v2, f.timeline, 4);
	hb_sync_close(extra);
	for (int i = 0; i < 10; i++) {
		extra = SYNC_OPEN(v2, f.timeline, 1);
		CHECK_EQ(hb_sync_status(extra), 1);
		hb_sync_close(extra);
	}
	/* Closing a pending one frees its slot. */
	hb_sync_close(s[2]);
	extra = SYNC_OPEN(v2, f.timeline, 5);
	hb_sync_close(extra);
	for (int i = 0; i < 4; i++)
		if (i != 2)
			hb_sync_close(s[i]);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 0);
	hb_disconnect(v1);
	hb_disconnect(v1b);
	hb_disconnect(v2);
	hb_disconnect(v2b);
	IT_STOP(&d);
	it_fences_as_waits(false);
}

/*
 * A client that does not read its fence completions is dropped, not waited for: a raw vm2
 * session opens waits in rounds and never reads; vm1 signals past them each round. Every
 * signal returns at once, the raw session is cut off once fence_waits_per_domain completions
 * are queued for it, and a healthy waiter on the host still gets its completion.
 */
TEST(slow_client_dropped_not_waited_for)
{
	enum { WAITS = 200, ROUNDS = 400 };
	struct hbt_daemon d;
	struct hb_client *v1, *h;
	struct hb_timeline *t;
	struct hb_sync *healthy;
	struct it_raw r;
	uint64_t v = 0, worst = 0;
	bool dropped = false;
	int round;
	char ext[96];

	snprintf(ext, sizeof(ext), "[limits]\nfence_waits_per_domain = %d\n", WAITS);
	/* A reader of completions it never reads: waits (a watch holds one record, never drops). */
	it_fences_as_waits(true);
	hbt_daemon_start(&d, ext);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	h = IT_CONNECT(hbt_addr_host(&d));
	t = TL_CREATE(v1);
	healthy = SYNC_OPEN(h, hb_timeline_id(t), (uint64_t)WAITS * ROUNDS + 1);

	hbt_raw_session(&r, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT);
	for (round = 0; round < ROUNDS && !dropped; round++) {
		ClientMsg m = CLIENT_MSG__INIT;
		SyncOpen so = SYNC_OPEN__INIT;
		/* No POLLIN: our unread bytes must not end the wait for the hang-up. */
		struct pollfd p = {.fd = r.fd, .events = 0};
		uint64_t t0, dt, end;
		int outq = 1;

		IT_MSG(m, SYNC_OPEN, sync_open, &so);
		so.timeline = hb_timeline_id(t);
		for (int i = 1; i <= WAITS; i++) {
			so.value = v + (uint64_t)i;
			m.id = r.next_id++;
			CHECK_EQ(it_raw_send(&r, &m), 0);
		}
		/* The daemon has read (and so handled) every request once nothing is left in
		 * our send queue; the signal below is then handled after them. */
		end = hbt_now_ms() + IT_WAIT_MS;
		while (outq > 0 && hbt_now_ms() < end) {
			CHECK(ioctl(r.fd, SIOCOUTQ, &outq) == 0);
			if (outq > 0)
				it_sleep_ms(1);
		}
		CHECK_EQ(outq, 0);
		v += WAITS;
		t0 = hbt_now_ms();
		CHECK_EQ(hb_timeline_signal(t, v), 0);
		dt = hbt_now_ms() - t0;
		if (dt > worst)
			worst = dt;
		/* A peer's close shows as POLLHUP even with our unread bytes in the way. */
		if (poll(&p, 1, 20) > 0 && (p.revents & POLLHUP))
			dropped = true;
	}
	if (!dropped)
		hbt_fail(__FILE__, __LINE__, "the non-reading session survived %d rounds", ROUNDS);
	printf("dropped after %d rounds; slowest signal %llu ms\n", round,
	       (unsigned long long)worst);
	CHECK(worst < 2000);
	CHECK_EQ(IT_STAT(&d, "fence_sessions_dropped"), 1);
	IT_CHECK_STAT(&d, "fence_waits", 1); /* only the healthy one is left */
	it_raw_close(&r);

	CHECK_EQ(hb_sync_status(healthy), 0);
	CHECK_EQ(hb_timeline_signal(t, (uint64_t)WAITS * ROUNDS + 1), 0);
	CHECK_EQ(hb_sync_wait(healthy, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(healthy), 1);
	hb_sync_close(healthy);
	hb_disconnect(h);
	hb_disconnect(v1);
	IT_STOP(&d);
	it_fences_as_waits(false);
}

/*
 * wait_any reports the lowest complete index; a chain of many merges (each closing the
 * previous handle) completes and frees through worklists, not recursion; closing the top of a
 * pending chain frees every node and closes the daemon's waits.
 */
TEST(wait_any_and_long_merge_chains)
{
	enum { CHAIN = 20000 };
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t, *u;
	struct hb_sync *v[3], *acc, *leaf, *next;
	size_t idx = 99;

	/* It counts the daemon's waits a chain holds: the fences are waits. */
	it_fences_as_waits(true);
	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = TL_CREATE(v1);
	u = TL_CREATE(v1);
	v[0] = SYNC_OPEN(v2, hb_timeline_id(t), 3);
	v[1] = SYNC_OPEN(v2, hb_timeline_id(t), 2);
	v[2] = SYNC_OPEN(v2, hb_timeline_id(u), 1);
	CHECK_ERR(hb_sync_wait_any(v, 3, 0, &idx), ETIME);
	CHECK_ERR(hb_sync_wait_any(v, 3, 30, &idx), ETIME);
	CHECK_ERR(hb_sync_wait_any(v, 0, 0, &idx), EINVAL);
	CHECK_EQ(hb_timeline_signal(u, 1), 0);
	CHECK_EQ(hb_sync_wait_any(v, 3, IT_WAIT_MS, &idx), 0);
	CHECK_EQ(idx, 2);
	CHECK_EQ(hb_timeline_signal(t, 3), 0);
	CHECK_EQ(hb_sync_wait(v[0], IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_wait_any(v, 3, 0, &idx), 0);
	CHECK_EQ(idx, 0);
	for (int i = 0; i < 3; i++)
		hb_sync_close(v[i]);

	/* A long chain that completes: one member per link, all on one timeline. */
	acc = SYNC_OPEN(v2, hb_timeline_id(t), 4);
	for (int i = 0; i < CHAIN; i++) {
		leaf = SYNC_OPEN(v2, hb_timeline_id(t), 4 + (uint64_t)(i % 50));
		next = hb_sync_merge(acc, leaf);
		CHECK(next != NULL);
		hb_sync_close(acc);
		hb_sync_close(leaf);
		acc = next;
	}
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 50);
	CHECK_EQ(hb_timeline_signal(t, 52), 0);
	CHECK_ERR(hb_sync_wait(acc, 50), ETIME);
	CHECK_EQ(hb_timeline_fail(t, 53, -ECANCELED), 0);
	CHECK_EQ(hb_sync_wait(acc, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(acc), -ECANCELED);
	hb_sync_close(acc);

	/* A long chain closed while pending: everything goes, the daemon's waits too. */
	acc = SYNC_OPEN(v2, hb_timeline_id(u), 100);
	for (int i = 0; i < CHAIN; i++) {
		leaf = SYNC_OPEN(v2, hb_timeline_id(u), 100 + (uint64_t)(i % 10));
		next = hb_sync_merge(leaf, acc);
		CHECK(next != NULL);
		hb_sync_close(acc);
		hb_sync_close(leaf);
		acc = next;
	}
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 10);
	hb_sync_close(acc);
	CHECK_EQ(IT_STAT(&d, "fence_waits"), 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
	it_fences_as_waits(false);
}

/*
 * Hostile fence requests from a raw session: random bodies with random fields, some naming
 * real timelines, waits and hids. The session may get errors but never crashes or wedges the
 * daemon; a hid of the wrong length is a violation that drops only that session.
 */
TEST(hostile_fence_requests)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_timeline *t;
	struct hb_buffer *b;
	struct hb_id id;
	struct it_raw r;
	uint64_t seed = 0x5eed, ids[3];
	uint8_t short_hid[15] = {0};

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	t = TL_CREATE(v1);
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);
	ids[0] = hb_timeline_id(t);
	ids[1] = 0;
	ids[2] = UINT64_MAX;

	hbt_raw_session(&r, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT);
	for (int i = 0; i < 3000; i++) {
		ClientMsg m = CLIENT_MSG__INIT;
		TimelineCreate tc = TIMELINE_CREATE__INIT;
		TimelineSignal ts = TIMELINE_SIGNAL__INIT;
		TimelineDestroy td = TIMELINE_DESTROY__INIT;
		SyncOpen so = SYNC_OPEN__INIT;
		SyncClose sc = SYNC_CLOSE__INIT;
		FenceAttach fa = FENCE_ATTACH__INIT;
		CpuAccess ca = CPU_ACCESS__INIT;
		uint64_t x = it_rand(&seed), tl = ids[x % 3], val = it_rand(&seed) % 64;
		ProtobufCBinaryData hid = {sizeof(id.bytes), id.bytes};
		ServerMsg *s;

		if (x % 5 == 0)
			tl = it_rand(&seed);
		if (x % 7 == 0)
			val = it_rand(&seed);
		switch ((x >> 8) % 7) {
		case 0:
			IT_MSG(m, TIMELINE_CREATE, timeline_create, &tc);
			break;
		case 1:
			ts.timeline = tl;
			ts.value = val;
			ts.error = (uint32_t)(it_rand(&seed) % 5000);
			IT_MSG(m, TIMELINE_SIGNAL, timeline_signal, &ts);
			break;
		case 2:
			td.timeline = tl;
			IT_MSG(m, TIMELINE_DESTROY, timeline_destroy, &td);
			break;
		case 3:
			so.timeline = tl;
			so.value = val;
			IT_MSG(m, SYNC_OPEN, sync_open, &so);
			break;
		case 4:
			sc.wait = it_rand(&seed) % 5000;
			IT_MSG(m, SYNC_CLOSE, sync_close, &sc);
			break;
		case 5:
			fa.hid = hid;
			fa.timeline = tl;
			fa.value = val;
			fa.usage = (uint32_t)(it_rand(&seed) % 6);
			IT_MSG(m, FENCE_ATTACH, fence_attach, &fa);
			break;
		default:
			ca.hid = hid;
			ca.access = (uint32_t)(it_rand(&seed) % 6);
			IT_MSG(m, CPU_ACCESS, cpu_access, &ca);
			break;
		}
		s = IT_RAW_CALL(&r, &m);
		if (s->error == 0 && s->body_case == SERVER_MSG__BODY_TIMELINE)
			ids[2] = s->timeline->timeline; /* its own: signal and destroy it too */
		server_msg__free_unpacked(s, NULL);
	}
	/* A 15-byte hid is a violation: that session goes, nobody else notices. */
	{
		ClientMsg m = CLIENT_MSG__INIT;
		CpuAccess ca = CPU_ACCESS__INIT;

		ca.hid = (ProtobufCBinaryData){sizeof(short_hid), short_hid};
		ca.access = HB_ACCESS_READ;
		IT_MSG(m, CPU_ACCESS, cpu_access, &ca);
		m.id = r.next_id++;
		CHECK_EQ(it_raw_send(&r, &m), 0);
		CHECK(it_raw_wait_closed(&r, IT_WAIT_MS));
	}
	it_raw_close(&r);
	/* Everybody else carries on. (The fuzzing attached vm1's timeline at values up to
	 * 2^64 - 1, so only the last value frees the buffer.) */
	CHECK_EQ(hb_timeline_signal(t, UINT64_MAX), 0);
	CHECK_EQ(hb_begin_cpu_access(v2, &id, HB_ACCESS_READ | HB_ACCESS_WRITE, IT_WAIT_MS), 0);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}
