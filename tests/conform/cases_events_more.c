/*
 * Conformance cases: event queues, a domain's end, queries (ported from test_it_events and
 * test_it_import; docs/TESTING.md lists them, and the cases that stay host-side). Written
 * once for every target (tests/conform/conform.h).
 */
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/conform/conform.h"

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- event_queue_default_depth (test_it_events) ---------------------------------------------
 * The default queue holds at least 256 (API.md): 200 events sent while vm2 does not read are
 * all delivered, in order. */
static void depth_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0);
	struct hb_id id;
	char m[16];

	cf_barrier("listening");
	for (int i = 0; i < 200; i++) {
		snprintf(m, sizeof(m), "%d", i);
		CF_EXPORT(b, m, strlen(m), &id);
	}
	cf_barrier("sent");
	cf_barrier("done");
	hb_buffer_free(b);
}

static void depth_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_event ev;
	char m[16];

	cf_drain(c);
	cf_barrier("listening");
	cf_barrier("sent"); /* not read until all 200 were sent */
	for (int i = 0; i < 200; i++) {
		CF_EXPECT_EVENT(c, HB_EVENT_EXPORTED, &ev);
		snprintf(m, sizeof(m), "%d", i);
		CHECK_EQ(ev.meta_len, strlen(m));
		CHECK(memcmp(ev.meta, m, strlen(m)) == 0);
	}
	CF_EXPECT_QUIET(c, 200);
	cf_barrier("done");
}

CF_CASE(event_queue_default_depth, {1, depth_exporter}, {2, depth_peer})

/* ---- domain_gone_host (test_it_events) ------------------------------------------------------
 * The host's domain ends with its last session, not before: the VMs (each shares a group with
 * the host) hear DOMAIN_GONE for domain 0 only after the second of its two clients went. (The
 * host is a process on every target, so it may hold two clients; in the original vm2 shares
 * no group with the host and hears nothing.) */
static void dgh_vm(void)
{
	struct hb_client *c = cf_connect();
	struct hb_event ev;

	cf_drain(c);
	cf_barrier("listening");
	cf_barrier("one-left");
	CF_EXPECT_QUIET(c, 300);
	cf_barrier("quiet");
	CF_WAIT_EVENT(c, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 0);
	cf_barrier("done");
}

/* A host client in a child process, so that it can end while the role goes on (the role's
 * own clients are its until it returns). */
struct held_client {
	pid_t pid;
	int go; /* a byte here: disconnect and exit */
};

static void held_start(struct held_client *h)
{
	int ready[2], go[2];
	char ok;

	CHECK(pipe(ready) == 0 && pipe(go) == 0);
	fflush(stdout);
	fflush(stderr);
	h->pid = fork();
	CHECK(h->pid >= 0);
	if (h->pid == 0) {
		struct hb_client *c = cf_connect();

		close(ready[0]);
		close(go[1]);
		if (write(ready[1], "K", 1) != 1 || read(go[0], &ok, 1) != 1)
			_exit(2);
		hb_disconnect(c);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	CHECK_EQ(read(ready[0], &ok, 1), 1);
	close(ready[0]);
	h->go = go[1];
}

static void held_end(struct held_client *h)
{
	int status;

	CHECK_EQ(write(h->go, "G", 1), 1);
	close(h->go);
	CHECK_EQ(waitpid(h->pid, &status, 0), h->pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void dgh_two(void)
{
	struct held_client h, h2;

	held_start(&h);
	held_start(&h2);
	cf_barrier("listening");
	held_end(&h);
	cf_barrier("one-left");
	cf_barrier("quiet");
	held_end(&h2);
	cf_barrier("done");
}

CF_CASE(domain_gone_host, {0, dgh_two}, {1, dgh_vm}, {2, dgh_vm})

/* ---- dispatch_returns_with_queued_events (test_it_events) -----------------------------------
 * hb_dispatch does not sleep while events are queued: an EXPORTED event that a blocking call
 * (hb_query) read and queued makes hb_dispatch return at once. With nothing queued it does
 * wait. (The original's 1.5 s bound becomes "long before its 60 s timeout": no timed asserts
 * beyond what only a sleep would miss.) */
static void drq_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;
	struct hb_id id;

	cf_barrier("waited");
	b = CF_ALLOC(c, 2, 4096, 0);
	CF_EXPORT(b, "q", 1, &id);
	cf_put_id("id", &id);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void drq_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;
	uint64_t t0;

	cf_drain(c);
	t0 = ms_now();
	CHECK_EQ(hb_dispatch(c, 300), 0);
	CHECK(ms_now() - t0 >= 250); /* the original's slack for the poll timeout */
	cf_barrier("waited");
	cf_get_id("id", &id);                 /* EXPORTED is on its way to us... */
	CHECK_EQ(hb_query(c, &id, &info), 0); /* ...and this blocking call reads and queues it */
	t0 = ms_now();
	CHECK(hb_dispatch(c, 60000) >= 0);
	if (ms_now() - t0 >= 30000)
		cf_fail(__FILE__, __LINE__, "hb_dispatch slept %llu ms with an event queued",
			(unsigned long long)(ms_now() - t0));
	CHECK_EQ(hb_next_event(c, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.meta_len, 1);
	CHECK_ERR(hb_next_event(c, &ev), EAGAIN);
	cf_barrier("done");
}

CF_CASE(dispatch_returns_with_queued_events, {1, drq_exporter}, {2, drq_peer})

/* ---- query_fields_and_access (test_it_import) -----------------------------------------------
 * hb_query gives the exporter and the peer every field (importers counted per import), the
 * unexport states as they come; anybody else gets ENOENT, as for an unknown id. (The original
 * also queries from a second vm2 session: two clients in one guest; here the third import is
 * on the same client.) */
static void qf_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 3 * 4096 + 1, HB_BUFFER_PEER_WRITABLE);
	struct hb_info info;
	struct hb_id id;

	CF_EXPORT(b, "meta!", 5, &id);
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.exporter, 1);
	CHECK_EQ(info.peer, 2);
	CHECK_EQ(info.size, 3 * 4096 + 1);
	CHECK_EQ(info.pages, 4);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE);
	CHECK_EQ(info.meta_len, 5);
	CHECK(memcmp(info.meta, "meta!", 5) == 0);
	cf_put_id("id", &id);
	cf_barrier("imported");
	cf_barrier("released-one");
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.importers, 2);
	CHECK_EQ(hb_unexport(c, &id, 60000), 0);
	cf_barrier("pending");
	cf_barrier("pending-seen");
	CF_EXPORT(b, "meta!", 5, &id); /* cancels */
	CHECK_EQ(hb_unexport(c, &id, 0), 0);
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE | HB_INFO_UNEXPORTED);
	CHECK_EQ(info.importers, 2);
	cf_barrier("unexported");
	cf_barrier("released");
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.importers, 0);
	cf_barrier("done");
	hb_buffer_free(b);
}

static void qf_peer(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im[3];
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	cf_get_id("id", &id);
	im[0] = CF_IMPORT(c, &id, 0);
	im[1] = CF_IMPORT(c, &id, HB_IMPORT_WRITE);
	im[2] = CF_IMPORT(c, &id, 0);
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.exporter, 1);
	CHECK_EQ(info.peer, 2);
	CHECK_EQ(info.size, 3 * 4096 + 1);
	CHECK_EQ(info.pages, 4);
	CHECK_EQ(info.importers, 3);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE);
	cf_barrier("imported");
	hb_import_release(im[1]);
	cf_barrier("released-one");
	cf_barrier("pending");
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE | HB_INFO_UNEXPORT_PENDING);
	cf_barrier("pending-seen");
	cf_barrier("unexported");
	CF_WAIT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
	CHECK_EQ(hb_query(c, &id, &info), 0);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE | HB_INFO_UNEXPORTED);
	hb_import_release(im[0]);
	hb_import_release(im[2]);
	cf_barrier("released");
	cf_barrier("done");
}

/* The host is neither side: ENOENT before and after the unexport. */
static void qf_outsider(void)
{
	struct hb_client *c = cf_connect();
	struct hb_info info;
	struct hb_id id;

	cf_get_id("id", &id);
	CHECK_ERR(hb_query(c, &id, &info), ENOENT);
	cf_barrier("imported");
	cf_barrier("released-one");
	cf_barrier("pending");
	cf_barrier("pending-seen");
	cf_barrier("unexported");
	CHECK_ERR(hb_query(c, &id, &info), ENOENT);
	cf_barrier("released");
	cf_barrier("done");
}

CF_CASE(query_fields_and_access, {1, qf_exporter}, {2, qf_peer}, {0, qf_outsider})
