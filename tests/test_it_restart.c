/*
 * Restarts (docs/RESTART.md): hyperbufd killed with SIGKILL, re-executed with SIGUSR2, and
 * started again by tests/hbholder, which keeps its descriptors as systemd's fd store does.
 * Clients resume by themselves: hids, imports, mappings, timelines and waits survive; the one
 * request whose effects were kept but whose reply was lost is answered, never done twice; a
 * client that does not come back loses its session after resume_timeout_ms; a state that was
 * tampered with is refused and the daemon starts clean.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "tests/it_common.h"

#define RESUME_CONFIG IT_TOPOLOGY "[limits]\nresume_timeout_ms = 1500\n"

/* Host and emulated VM share both ways, the daemon dies, both carry on. */
TEST(clients_resume_after_sigkill)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_buffer *b, *b2;
	struct hb_import *im, *im2;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id, id2;

	hbt_daemon_start_held(&d, NULL);
	CHECK_EQ(IT_STAT(&d, "state_kept"), 1);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	b = IT_ALLOC(h, 1, 1u << 20, 0);
	it_fill(b, 7);
	IT_EXPORT(b, "frame", 5, &id);
	IT_WAIT_EVENT(v1, HB_EVENT_EXPORTED, &ev);
	im = IT_IMPORT(v1, &id, 0);

	hbt_daemon_crash(&d);
	CHECK_EQ(IT_STAT(&d, "sessions_restored"), 2);
	/* The first call after the restart resumes, and its answer is the old state's. */
	IT_QUERY(h, &id, &info);
	CHECK_EQ(info.importers, 1);
	CHECK_EQ(info.meta_len, 5);
	IT_WAIT_EVENT(h, HB_EVENT_RESTARTED, &ev);
	IT_WAIT_EVENT(v1, HB_EVENT_RESTARTED, &ev);
	CHECK_EQ(ev.domain, 1);
	IT_CHECK_IMPORT(im, 1u << 20, 7);
	/* New sharing works both ways, on the pool the VM still maps. */
	b2 = IT_ALLOC(v1, 0, 65536, 0);
	it_fill(b2, 9);
	IT_EXPORT(b2, NULL, 0, &id2);
	IT_WAIT_EVENT(h, HB_EVENT_EXPORTED, &ev);
	im2 = IT_IMPORT(h, &id2, 0);
	IT_CHECK_IMPORT(im2, 65536, 9);
	CHECK_EQ(IT_STAT(&d, "sessions_detached"), 0);
	hb_import_release(im2);
	hb_import_release(im);
	hb_buffer_free(b2);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(h);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* A held daemon, the host and vm1 connected, and a timeline of the host's that vm1 may wait on. */
static struct hb_timeline *shared_timeline(struct hbt_daemon *d, struct hb_client **h,
					   struct hb_client **v1)
{
	struct hb_timeline *t;

	hbt_daemon_start_held(d, NULL);
	*h = IT_CONNECT(hbt_addr_host(d));
	*v1 = IT_CONNECT(hbt_addr_vm(d, 1));
	t = hb_timeline_create(*h);
	CHECK(t != NULL);
	CHECK_EQ(hb_timeline_share(t, 1), 0);
	return t;
}

static void shared_timeline_end(struct hbt_daemon *d, struct hb_client *h, struct hb_client *v1,
				struct hb_timeline *t)
{
	hb_timeline_destroy(t);
	hb_disconnect(h);
	hb_disconnect(v1);
	IT_STOP(d);
}

/* c's syncs s[0..n) on t's values first, first + 1, ... */
static void open_syncs(struct hb_client *c, struct hb_timeline *t, struct hb_sync **s, int n,
		       uint64_t first)
{
	for (int i = 0; i < n; i++) {
		struct hb_fence f = {hb_timeline_id(t), first + (uint64_t)i};

		s[i] = hb_sync_open(c, &f);
		CHECK(s[i] != NULL);
	}
}

/* A fence waited on across the restart completes when its owner signals after it. */
TEST(fences_survive_a_restart)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
	struct hb_sync *s5, *s9;
	struct hb_fence f;

	t = shared_timeline(&d, &h, &v1);
	CHECK_EQ(hb_timeline_signal(t, 2), 0);
	f = (struct hb_fence){hb_timeline_id(t), 5};
	s5 = hb_sync_open(v1, &f);
	f.value = 9;
	s9 = hb_sync_open(v1, &f);
	CHECK(s5 && s9);

	hbt_daemon_crash(&d);
	CHECK_EQ(hb_timeline_signal(t, 5), 0);
	CHECK_EQ(hb_sync_wait(s5, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s5), 1);
	CHECK_ERR(hb_sync_wait(s9, 50), ETIME);
	CHECK_EQ(hb_timeline_fail(t, 9, -EIO), 0);
	CHECK_EQ(hb_sync_wait(s9, IT_WAIT_MS), 0);
	CHECK_EQ(hb_sync_status(s9), -EIO);
	hb_sync_close(s5);
	hb_sync_close(s9);
	shared_timeline_end(&d, h, v1, t);
}

/* A child exports to vm1 and dies with the daemon: its session waits resume_timeout_ms, then
 * ends as a disconnect does. */
static int export_and_hang(void *arg)
{
	const struct hbt_daemon *d = arg;
	struct hb_client *c = hb_connect(hbt_addr_host(d));
	struct hb_buffer *b = c ? hb_buffer_alloc(c, 1, 8192, 0) : NULL;
	struct hb_id id;

	if (!b || hb_export(b, NULL, 0, 0, &id) < 0)
		return 1;
	pause();
	return 0;
}

TEST(a_client_that_does_not_resume_loses_its_session)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_import *im;
	struct hb_event ev;
	pid_t child;

	hbt_daemon_start_held(&d, RESUME_CONFIG);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	child = hbt_fork(export_and_hang, &d);
	IT_WAIT_EVENT(v1, HB_EVENT_EXPORTED, &ev);
	im = IT_IMPORT(v1, &ev.id, 0);
	/* Stopped, it cannot resume (nor tell the old daemon it is gone). */
	kill(child, SIGSTOP);
	hbt_daemon_crash(&d);
	/* vm1 resumes; the child's session is still there, detached, until it times out. */
	IT_WAIT_EVENT(v1, HB_EVENT_RESTARTED, &ev);
	CHECK_EQ(IT_STAT(&d, "sessions_detached"), 1);
	IT_WAIT_EVENT(v1, HB_EVENT_UNEXPORTED, &ev);
	CHECK_EQ(IT_STAT(&d, "sessions_detached"), 0);
	CHECK(hbt_count_substr(hbt_daemon_log(&d), "did not resume it in time") >= 1);
	/* The import keeps its pages until released. */
	CHECK(IT_STAT(&d, "pages_used") > 0);
	hb_import_release(im);
	IT_CHECK_STAT(&d, "pages_used", 0);
	kill(child, SIGKILL);
	hbt_wait_child(child);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* ---- a request whose reply was lost ------------------------------------------------------- */

static ServerMsg *raw_hello(struct it_raw *r, const uint8_t *token, uint32_t pending)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Hello h = HELLO__INIT;

	h.version = HBP_PROTOCOL_VERSION;
	if (token) {
		h.resume = (ProtobufCBinaryData){HBP_TOKEN_LEN, (uint8_t *)token};
		h.pending = pending;
	}
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &h;
	return IT_RAW_CALL(r, &m);
}

/* The host's pool of group a: a session allocates only from pools it attached. */
static void raw_attach(struct it_raw *r)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Attach a = ATTACH__INIT;
	ServerMsg *reply;

	a.group = 1;
	m.body_case = CLIENT_MSG__BODY_ATTACH;
	m.attach = &a;
	reply = IT_RAW_CALL(r, &m);
	CHECK(reply && reply->error == 0);
	server_msg__free_unpacked(reply, NULL);
}

static void raw_alloc(struct it_raw *r, uint32_t id)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Alloc a = ALLOC__INIT;

	m.id = id;
	a.peer = 1;
	a.size = 4096;
	m.body_case = CLIENT_MSG__BODY_ALLOC;
	m.alloc = &a;
	CHECK_EQ(it_raw_send(r, &m), 0);
}

/* The reply to request id, skipping events. */
static ServerMsg *raw_reply(struct it_raw *r, uint32_t id)
{
	for (;;) {
		ServerMsg *m = it_raw_recv(r, IT_WAIT_MS, NULL);

		if (!m || m->id == id)
			return m;
		server_msg__free_unpacked(m, NULL);
	}
}

/*
 * Alloc, then SIGKILL at once, unread: the daemon died before the request, or after it with
 * its reply unread. Resuming with the request pending, the client gets the reply either way
 * (sending the request again only when the daemon says it never kept it), and exactly one
 * buffer exists: 20 times, at every moment the timing happens to hit.
 */
TEST(a_lost_reply_is_answered_never_redone)
{
	struct hbt_daemon d;
	uint8_t token[HBP_TOKEN_LEN];
	uint32_t again = 0, resent = 0;

	hbt_daemon_start_held(&d, NULL);
	for (int round = 0; round < 20; round++) {
		struct it_raw r;
		ServerMsg *w, *a;
		uint32_t id = 1000 + (uint32_t)round;

		it_raw_open(&r, d.socket);
		r.next_id = 1;
		w = raw_hello(&r, NULL, 0);
		CHECK(w && w->welcome && w->welcome->token.len == HBP_TOKEN_LEN);
		memcpy(token, w->welcome->token.data, HBP_TOKEN_LEN);
		server_msg__free_unpacked(w, NULL);
		raw_attach(&r);
		raw_alloc(&r, id);
		if (round % 4)
			it_sleep_ms((unsigned)round % 3);
		hbt_daemon_crash(&d);
		it_raw_close(&r);

		it_raw_open(&r, d.socket);
		r.next_id = 2000;
		w = raw_hello(&r, token, id);
		CHECK(w && w->welcome && w->welcome->resumed);
		if (w->welcome->last_request == id) {
			resent++;
		} else {
			raw_alloc(&r, id);
			again++;
		}
		server_msg__free_unpacked(w, NULL);
		a = raw_reply(&r, id);
		CHECK(a && a->error == 0 && a->alloc);
		server_msg__free_unpacked(a, NULL);
		CHECK_EQ(IT_STAT(&d, "buffers"), 1);
		it_raw_close(&r);
		IT_CHECK_STAT(&d, "buffers", 0);
	}
	printf("# lost replies answered %u times, requests sent again %u times\n", resent, again);
	IT_STOP(&d);
}

/* SIGUSR2: the daemon re-executes itself in place; clients resume as after a crash. */
TEST(reexec_in_place)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;
	pid_t pid;

	hbt_daemon_start_held(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	b = IT_ALLOC(v1, 0, 300000, 0);
	it_fill(b, 3);
	IT_EXPORT(b, NULL, 0, &id);
	IT_WAIT_EVENT(h, HB_EVENT_EXPORTED, &ev);
	pid = d.spawn.main_pid;
	CHECK_EQ(hbt_daemon_reexec(&d), 0);
	CHECK_EQ(d.spawn.main_pid, pid); /* the same process, a new program */
	im = IT_IMPORT(h, &id, 0);
	IT_CHECK_IMPORT(im, 300000, 3);
	IT_WAIT_EVENT(v1, HB_EVENT_IMPORTED, &ev);
	CHECK(hbt_count_substr(hbt_daemon_log(&d), "re-exec: handing over") == 1);
	hb_import_release(im);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(h);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* The holder's copy of the state memfd (its process keeps the fd store). */
static int open_held_state(pid_t holder)
{
	char dir[64], path[600], link[256];
	struct dirent *e;
	DIR *dp;
	int fd = -1;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)holder);
	dp = opendir(dir);
	if (!dp)
		return -1;
	while (fd < 0 && (e = readdir(dp))) {
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strstr(link, "memfd:hyperbufd-state"))
			fd = open(path, O_RDWR | O_CLOEXEC);
	}
	closedir(dp);
	return fd;
}

/* A state someone wrote into is refused: the daemon starts clean, clients cannot resume
 * (their calls fail as after any lost daemon), and new clients work. */
TEST(a_tampered_state_is_refused)
{
	struct hbt_daemon d;
	struct hb_client *h, *h2;
	struct hb_buffer *b;
	struct hb_info info;
	struct hb_id id;
	uint8_t junk[64];
	int fd;

	hbt_daemon_start_held(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	b = IT_ALLOC(h, 1, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);
	fd = open_held_state(d.pid);
	CHECK(fd >= 0);
	memset(junk, 0x5a, sizeof(junk));
	/* Into the first record of the active area (the header says which: area 0 here). */
	CHECK_EQ(pwrite(fd, junk, sizeof(junk), 4096 + 24), (ssize_t)sizeof(junk));
	close(fd);
	hbt_daemon_crash(&d);
	CHECK(hbt_count_substr(hbt_daemon_log(&d), "refused") >= 1);
	CHECK_EQ(IT_STAT(&d, "sessions_restored"), 0);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	errno = 0;
	CHECK(hb_query(h, &id, &info) < 0 && (errno == ECONNRESET || errno == EPIPE));
	hb_buffer_free(b);
	h2 = IT_CONNECT(hbt_addr_host(&d));
	hb_disconnect(h2);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* vm1 does not read while the daemon restarts twice: the event queued for its detached session
 * in between is in the state, and reaches it after the second restart. */
TEST(events_queued_for_a_detached_session_survive)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	hbt_daemon_start_held(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	hbt_daemon_crash(&d);
	CHECK_EQ(hb_query(h, &(struct hb_id){{0}}, &info), -1); /* resumes h (ENOENT) */
	b = IT_ALLOC(h, 1, 8192, 0);
	IT_EXPORT(b, "late", 4, &id);
	CHECK_EQ(IT_STAT(&d, "sessions_detached"), 1); /* vm1 has not read anything yet */
	hbt_daemon_crash(&d);
	IT_WAIT_EVENT(v1, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.meta_len, 4);
	CHECK(memcmp(ev.meta, "late", 4) == 0);
	hb_buffer_free(b);
	hb_disconnect(h);
	hb_disconnect(v1);
	IT_STOP(&d);
}

struct crash_arg {
	struct hbt_daemon *d;
	atomic_int crashed; /* 1 once the daemon is back after SIGKILL */
};

static void *crash_soon(void *p)
{
	struct crash_arg *a = p;

	it_sleep_ms(30);
	hbt_daemon_crash(a->d);
	atomic_store(&a->crashed, 1);
	return NULL;
}

/*
 * hb_export_batch while the daemon is killed: 64 requests in flight resume together. The
 * call returns (no request waits forever for a reply the old daemon took with it); each item
 * is exported under the id it had, or fails with ECONNRESET (its effects kept, its reply
 * lost), and hb_export of that buffer then says the same id.
 */
TEST(a_batch_resumes_across_a_restart)
{
	enum { N = 640 };
	static struct hb_export_item it[N];
	static struct hb_buffer *b[N];
	static struct hb_id first[N];
	struct crash_arg a = {0};
	struct hbt_daemon d;
	struct hb_client *v1;
	pthread_t t;
	int rounds = 0, lost = 0, after = 0;

	hbt_daemon_start_held(&d, NULL);
	a.d = &d;
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	for (int i = 0; i < N; i++)
		b[i] = IT_ALLOC(v1, 0, 4096, 0);
	CHECK_EQ(pthread_create(&t, NULL, crash_soon, &a), 0);
	/* Batches until one more has run after the daemon came back. */
	while (after < 2) {
		after += atomic_load(&a.crashed);
		for (int i = 0; i < N; i++)
			it[i] = (struct hb_export_item){.buffer = b[i]};
		CHECK(hb_export_batch(v1, it, N) >= 0);
		for (int i = 0; i < N; i++) {
			struct hb_id id = it[i].id;

			if (it[i].error == ECONNRESET) {
				lost++;
				IT_EXPORT(b[i], NULL, 0, &id);
			} else {
				CHECK_EQ(it[i].error, 0);
			}
			if (rounds == 0)
				first[i] = id;
			CHECK(hb_id_equal(&id, &first[i]));
		}
		rounds++;
	}
	CHECK_EQ(pthread_join(t, NULL), 0);
	printf("# %d batches of %d, %d replies lost to the restart\n", rounds, N, lost);
	CHECK_EQ(IT_STAT(&d, "sessions_restored"), 1);
	IT_CHECK_STAT(&d, "exports", N);
	for (int i = 0; i < N; i++)
		hb_buffer_free(b[i]);
	IT_CHECK_STAT(&d, "exports", 0);
	hb_disconnect(v1);
	IT_STOP(&d);
}

struct reopen_arg {
	struct hb_sync *last;
	int status;
};

static void *wait_last(void *p)
{
	struct reopen_arg *a = p;

	a->status = hb_sync_wait(a->last, IT_WAIT_MS) == 0 ? hb_sync_status(a->last) : -errno;
	return NULL;
}

/*
 * The daemon killed again while a client opens its fence waits again after the first kill:
 * the resume starts over and every wait completes. (A resume used to nest inside the
 * reopening, and the outer one went on with points the inner one had completed and freed: a
 * guest's segfault in vm_daemon_killed_20_times, a use after free here under ASan.)
 */
TEST(a_restart_while_fences_are_opened_again)
{
	enum { N = 2000 };
	static struct hb_sync *s[N];
	struct reopen_arg a = {0};
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
	long long waits = 0;
	pthread_t th;

	/* The waits' reopening, one call each: v1's fences are waits, not points on a watch. */
	it_fences_as_waits(true);
	t = shared_timeline(&d, &h, &v1);
	open_syncs(v1, t, s, N, 1);
	hbt_daemon_crash(&d);
	/* Half of them complete while v1 has not noticed yet. */
	CHECK_EQ(hb_timeline_signal(t, N / 2), 0);
	a.last = s[N - 1];
	CHECK_EQ(pthread_create(&th, NULL, wait_last, &a), 0);
	/* v1 reopens its points one by one: kill the daemon once some are open again. */
	for (int tries = 0; tries < 20000 && waits < N / 8; tries++)
		waits = IT_STAT(&d, "fence_waits");
	printf("# the second kill came with %lld of %d waits open again\n", waits, N / 2);
	hbt_daemon_crash(&d);
	CHECK_EQ(hb_timeline_signal(t, N), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(a.status, 1);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(hb_sync_status(s[i]), 1);
		hb_sync_close(s[i]);
	}
	IT_CHECK_STAT(&d, "fence_waits", 0);
	CHECK_EQ(IT_STAT(&d, "sessions_restored"), 2);
	shared_timeline_end(&d, h, v1, t);
	it_fences_as_waits(false);
}

/* A sync opened in the call that resumes: its reply is read inside the reopening of the other
 * waits, and so is the completion that follows it, before its point exists (the sync used to
 * wait for ever; a kept SyncOpen's reply sent again also named the old daemon's wait). */
struct late_arg {
	struct hbt_daemon *d;
	struct hb_timeline *t;
	uint64_t value;
	long long waits;
};

static void *signal_when_reopening(void *p)
{
	struct late_arg *a = p;

	for (int tries = 0; tries < 200000 && a->waits < 20; tries++)
		a->waits = IT_STAT(a->d, "fence_waits");
	CHECK_EQ(hb_timeline_signal(a->t, a->value), 0);
	return NULL;
}

TEST(a_sync_opened_across_a_restart_sees_its_completion)
{
	enum { N = 2000 };
	static struct hb_sync *s[N];
	struct late_arg a = {0};
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
	struct hb_sync *late;
	struct hb_fence f;
	pthread_t th;

	/* The waits' reopening, one call each: v1's fences are waits, not points on a watch. */
	it_fences_as_waits(true);
	t = shared_timeline(&d, &h, &v1);
	/* Pending points, so that the resume has waits to open again, one call each. */
	open_syncs(v1, t, s, N, 1);
	hbt_daemon_crash(&d);
	a.d = &d;
	a.t = t;
	a.value = N + 1; /* completes every point, the late one too */
	CHECK_EQ(pthread_create(&th, NULL, signal_when_reopening, &a), 0);
	/* This call notices the restart, resumes, sends its SyncOpen again, opens the N waits
	 * again; the signal lands while it does. */
	f = (struct hb_fence){hb_timeline_id(t), N + 1};
	late = hb_sync_open(v1, &f);
	CHECK(late != NULL);
	CHECK_EQ(pthread_join(th, NULL), 0);
	printf("# signalled with %lld waits open\n", a.waits);
	CHECK_EQ(hb_sync_wait(s[N - 1], IT_WAIT_MS), 0);
	/* The late one's value was signalled: it must complete. */
	CHECK_EQ(hb_sync_wait(late, 2000), 0);
	CHECK_EQ(hb_sync_status(late), 1);
	hb_sync_close(late);
	for (int i = 0; i < N; i++)
		hb_sync_close(s[i]);
	shared_timeline_end(&d, h, v1, t);
	it_fences_as_waits(false);
}

/* A merge closed as the daemon dies: its points' waits are closed one call each; a resume
 * inside the first reopens the other points, and the rest of the closes named the old
 * daemon's wait ids, which the new one had given to the reopened waits (199 of 200 never
 * completed). */
TEST(waits_closed_across_a_restart_leave_the_reopened_ones_alone)
{
	enum { K = 200 };
	static struct hb_sync *a[K];
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_timeline *t;
	struct hb_sync *m = NULL;
	int stuck = 0;

	/* The waits' reopening, one call each: v1's fences are waits, not points on a watch. */
	it_fences_as_waits(true);
	t = shared_timeline(&d, &h, &v1);
	/* First K waits: one merge of them all. */
	for (int i = 0; i < K; i++) {
		struct hb_fence f = {hb_timeline_id(t), (uint64_t)i + 1};
		struct hb_sync *s = hb_sync_open(v1, &f), *n;

		CHECK(s != NULL);
		if (!m) {
			m = s;
			continue;
		}
		n = hb_sync_merge(m, s);
		CHECK(n != NULL);
		hb_sync_close(m);
		hb_sync_close(s);
		m = n;
	}
	/* The next K: kept, so the resume opens them again. */
	open_syncs(v1, t, a, K, K + 1);
	hbt_daemon_crash(&d);
	hb_sync_close(m); /* notices the restart in its first SyncClose */
	CHECK_EQ(hb_timeline_signal(t, 2 * K), 0);
	for (int i = 0; i < K; i++) {
		if (hb_sync_wait(a[i], i == 0 ? 2000 : 10) != 0)
			stuck++;
		hb_sync_close(a[i]);
	}
	printf("# %d of %d reopened waits never completed\n", stuck, K);
	CHECK_EQ(stuck, 0);
	shared_timeline_end(&d, h, v1, t);
	it_fences_as_waits(false);
}
