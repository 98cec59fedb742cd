/*
 * Lifecycles and reclamation: page accounting, freed pages coming back zeroed to another
 * domain, and clients that die (SIGKILL) or leave while holding exports and imports.
 */
#include "tests/it_common.h"

TEST(pages_accounting)
{
	static const size_t sizes[] = {1, 4096, 4097, 5 * 4096 + 1, 4u << 20, (4u << 20) + 1};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	struct hbt_daemon d;
	struct hb_client *v1, *v2, *h;
	struct hb_buffer *b[N], *ha;
	struct hb_import *im;
	struct hb_id id;
	long long punched, mapped, sessions;
	uint64_t want = 0;
	size_t i;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	CHECK_EQ(IT_STAT(&d, "pages_used"), 0);
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_total"), 32768 - 1); /* 128M, header excluded */
	CHECK(IT_STAT(&d, "pool.a.pages_total") == 16384 - 1);
	CHECK(IT_STAT(&d, "pool.c.pages_total") == 4096 - 1);
	punched = IT_STAT(&d, "pages_punched");
	for (i = 0; i < N; i++) {
		b[i] = IT_ALLOC(v1, 2, sizes[i], 0);
		want += it_buffer_pages(sizes[i]);
		CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), want);
	}
	/* (4M + 1) needs 1025 data pages: a depth-2 directory of 1 + 2 pages. */
	CHECK_EQ(it_buffer_pages((4u << 20) + 1), 1025 + 3);
	CHECK_EQ(IT_STAT(&d, "pages_used"), want);
	CHECK_EQ(IT_STAT(&d, "buffers"), N);
	ha = IT_ALLOC(h, 1, 10000, 0);
	CHECK_EQ(IT_STAT(&d, "pool.a.pages_used"), 3); /* inline refs: no directory page */
	CHECK_EQ(IT_STAT(&d, "pages_used"), want + 3);

	/* bytes_mapped counts live imports. */
	CHECK_EQ(IT_STAT(&d, "bytes_mapped"), 0);
	IT_EXPORT(b[3], NULL, 0, &id);
	im = IT_IMPORT(v2, &id, 0);
	CHECK_EQ(IT_STAT(&d, "imports"), 1);
	mapped = IT_STAT(&d, "bytes_mapped");
	CHECK(mapped == (long long)sizes[3] || mapped == (long long)IT_PAGES(sizes[3]) * 4096);
	hb_import_release(im);
	IT_CHECK_STAT(&d, "bytes_mapped", 0);
	CHECK_EQ(IT_STAT(&d, "imports"), 0);

	for (i = 0; i < N; i++)
		hb_buffer_free(b[i]);
	hb_buffer_free(ha);
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "pool.a.pages_used"), 0);
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), 0);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	CHECK(IT_STAT(&d, "pages_punched") >= punched + (long long)want + 4);

	/* Sessions come and go. */
	sessions = IT_STAT(&d, "sessions");
	hb_disconnect(v2);
	IT_CHECK_STAT(&d, "sessions", sessions - 1);
	hb_disconnect(h);
	hb_disconnect(v1);
	IT_CHECK_STAT(&d, "sessions", sessions - 3);
	IT_STOP(&d);
}

/* Many share cycles leave nothing behind. */
TEST(share_cycles_leave_nothing)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_event ev;
	int i;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i < 150; i++) {
		size_t size = 1 + (size_t)i * 7919;
		struct hb_buffer *b = IT_ALLOC(i % 2 ? v2 : v1, i % 2 ? 1 : 2, size, 0);
		struct hb_import *im;
		struct hb_id id;

		it_fill(b, (uint64_t)i);
		IT_EXPORT(b, &i, sizeof(i), &id);
		im = IT_IMPORT(i % 2 ? v1 : v2, &id, 0);
		IT_CHECK_IMPORT(im, size, (uint64_t)i);
		if (i % 3 == 0) {
			hb_buffer_free(b); /* exporter first */
			hb_import_release(im);
		} else {
			hb_import_release(im);
			hb_buffer_free(b);
		}
	}
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	CHECK_EQ(IT_STAT(&d, "exports"), 0);
	CHECK_EQ(IT_STAT(&d, "imports"), 0);
	CHECK_EQ(IT_STAT(&d, "bytes_mapped"), 0);
	while (IT_NEXT_EVENT(v1, &ev, 0) == 0)
		;
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/*
 * vm1 shares a patterned buffer with vm2, then frees it. Its pages must come back zeroed: to
 * vm2's next allocation in group b (which likely gets the same pages) and in the raw pool.
 */
TEST(freed_pages_come_back_zeroed)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b, *b2;
	struct hb_import *im;
	struct it_ivsh peer;
	struct hb_id id;
	uint8_t page[HBP_PAGE_SIZE];
	int64_t where[8];
	const size_t size = 8 * 4096;
	int i;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	/* A group member's own view of the pool, as QEMU would map it. */
	it_ivsh_join(&peer, hbt_path(&d, "group-b.sock"));
	CHECK_EQ(peer.pool_size, 128u << 20);

	b = IT_ALLOC(v1, 2, size, 0);
	it_fill(b, 0xfeed);
	IT_EXPORT(b, NULL, 0, &id);
	im = IT_IMPORT(v2, &id, 0);
	IT_CHECK_IMPORT(im, size, 0xfeed);
	/* Find each data page in the pool by its content. */
	for (i = 0; i < 8; i++) {
		const uint8_t *p = (const uint8_t *)hb_buffer_data(b) + (size_t)i * 4096 + 512;

		where[i] = it_pool_find_bytes(peer.pool_fd, peer.pool_size, p, 256);
		CHECK(where[i] > 0);
	}
	hb_import_release(im);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pool.b.pages_used", 0);

	/* The old pages hold nothing of the pattern any more. */
	for (i = 0; i < 8; i++) {
		it_pool_read(peer.pool_fd, (uint64_t)where[i], page);
		if (!it_all_bytes(page, sizeof(page), 0))
			hbt_fail(__FILE__, __LINE__, "freed pool page %lld still holds data",
				 (long long)where[i]);
	}
	/* vm2 allocates the same amount in the same pool: all zeros. */
	b2 = IT_ALLOC(v2, 1, size, 0);
	CHECK(it_all_bytes(hb_buffer_data(b2), size, 0));
	b = IT_ALLOC(v2, 1, 64 * 4096, 0);
	CHECK(it_all_bytes(hb_buffer_data(b), 64 * 4096, 0));
	hb_buffer_free(b);
	hb_buffer_free(b2);
	IT_CHECK_STAT(&d, "pages_used", 0);
	it_ivsh_close(&peer);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* ---- a client killed while holding exports and imports ----------------------------------- */

struct holder_arg {
	const char *addr;
	struct hb_id theirs[2]; /* vm2's exports to import */
	int pipe_w;
};

#define HOLDER_SIZE(i) (20000 + (size_t)(i)*4096)

/* vm1: imports vm2's two buffers, exports three of its own, reports their ids, waits. */
static int holder_child(void *p)
{
	struct holder_arg *a = p;
	struct hb_client *c = hb_connect(a->addr);
	struct hb_id ids[3];
	int i;

	if (!c)
		return 10;
	for (i = 0; i < 2; i++) {
		struct hb_import *im = hb_import(c, &a->theirs[i], 0);

		if (!im || tool_pattern_check(hb_import_data(im), 30000, 700 + (uint64_t)i) != 30000)
			return 11;
	}
	for (i = 0; i < 3; i++) {
		struct hb_buffer *b = hb_buffer_alloc(c, 2, HOLDER_SIZE(i), 0);

		if (!b)
			return 12;
		tool_pattern_fill(hb_buffer_data(b), HOLDER_SIZE(i), 500 + (uint64_t)i);
		if (hb_export(b, NULL, 0, 0, &ids[i]) != 0)
			return 13;
	}
	it_pipe_write(a->pipe_w, ids, sizeof(ids));
	for (;;)
		pause();
}

TEST(sigkill_with_exports_and_imports)
{
	struct hbt_daemon d;
	struct hb_client *v2, *h;
	struct hb_buffer *mine[2];
	struct hb_import *im[2];
	struct holder_arg arg;
	struct hb_event ev;
	struct hb_id ids[3];
	bool unexported[3] = {false, false, false}, released[2] = {false, false}, gone = false;
	uint64_t own_pages = 0, end;
	int pfd[2], i;
	pid_t pid;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	memset(&arg, 0, sizeof(arg));
	for (i = 0; i < 2; i++) {
		mine[i] = IT_ALLOC(v2, 1, 30000, 0);
		tool_pattern_fill(hb_buffer_data(mine[i]), 30000, 700 + (uint64_t)i);
		IT_EXPORT(mine[i], NULL, 0, &arg.theirs[i]);
		own_pages += it_buffer_pages(30000);
	}
	CHECK(pipe(pfd) == 0);
	arg.addr = hbt_addr_vm(&d, 1);
	arg.pipe_w = pfd[1];
	pid = hbt_fork(holder_child, &arg);
	if (it_pipe_read(pfd[0], ids, sizeof(ids), IT_WAIT_MS) != 0) {
		kill(pid, SIGKILL);
		hbt_fail(__FILE__, __LINE__, "vm1 child failed (exit %d)", hbt_wait_child(pid));
	}
	/* vm2 imports two of the three. */
	for (i = 0; i < 2; i++) {
		im[i] = IT_IMPORT(v2, &ids[i], 0);
		IT_CHECK_IMPORT(im[i], HOLDER_SIZE(i), 500 + (uint64_t)i);
	}
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), own_pages + it_buffer_pages(HOLDER_SIZE(0)) +
						       it_buffer_pages(HOLDER_SIZE(1)) +
						       it_buffer_pages(HOLDER_SIZE(2)));
	it_drain(v2);
	it_drain(h);

	CHECK(kill(pid, SIGKILL) == 0);
	CHECK_EQ(hbt_wait_child(pid), 128 + SIGKILL);

	/* vm2 hears all of it, in whatever order. */
	end = hbt_now_ms() + IT_WAIT_MS;
	while (!(unexported[0] && unexported[1] && unexported[2] && released[0] && released[1] &&
		 gone)) {
		uint64_t now = hbt_now_ms();

		if (now >= end || IT_NEXT_EVENT(v2, &ev, (int)(end - now)) != 0)
			hbt_fail(__FILE__, __LINE__,
				 "missing events: unexported %d%d%d released %d%d domain_gone %d",
				 unexported[0], unexported[1], unexported[2], released[0],
				 released[1], gone);
		switch (ev.type) {
		case HB_EVENT_UNEXPORTED:
			CHECK_EQ(ev.domain, 1);
			for (i = 0; i < 3; i++) {
				if (hb_id_equal(&ev.id, &ids[i]))
					unexported[i] = true;
			}
			break;
		case HB_EVENT_RELEASED:
			CHECK_EQ(ev.domain, 1);
			for (i = 0; i < 2; i++) {
				if (hb_id_equal(&ev.id, &arg.theirs[i]))
					released[i] = true;
			}
			break;
		case HB_EVENT_DOMAIN_GONE:
			CHECK_EQ(ev.domain, 1);
			gone = true;
			break;
		default:
			hbt_fail(__FILE__, __LINE__, "unexpected %s event", it_event_name(ev.type));
		}
	}
	/* The host shares group a with vm1: it hears of it too. */
	IT_WAIT_EVENT(h, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 1);

	/* vm2's mappings of vm1's buffers are intact; vm1's third buffer is reclaimed. */
	for (i = 0; i < 2; i++) {
		IT_CHECK_IMPORT(im[i], HOLDER_SIZE(i), 500 + (uint64_t)i);
		CHECK_ERR(hb_import(v2, &ids[i], 0), ENOENT);
	}
	IT_CHECK_STAT(&d, "pool.b.pages_used",
		      own_pages + it_buffer_pages(HOLDER_SIZE(0)) +
			  it_buffer_pages(HOLDER_SIZE(1)));
	CHECK_EQ(IT_STAT(&d, "imports"), 2);
	for (i = 0; i < 2; i++)
		hb_import_release(im[i]);
	IT_CHECK_STAT(&d, "pool.b.pages_used", own_pages);
	/* vm2's own exports still work (nobody imports them now). */
	for (i = 0; i < 2; i++) {
		struct hb_info info;

		IT_QUERY(v2, &arg.theirs[i], &info);
		CHECK_EQ(info.importers, 0);
		CHECK_EQ(info.flags, 0);
		hb_buffer_free(mine[i]);
	}
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), 0);
	CHECK_EQ(IT_STAT(&d, "imports"), 0);
	CHECK_EQ(IT_STAT(&d, "exports"), 0);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	close(pfd[0]);
	close(pfd[1]);
	hb_disconnect(h);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* The same, by an orderly hb_disconnect of a client that still holds everything. */
TEST(disconnect_with_exports_and_imports)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b1, *b2;
	struct hb_import *im1, *im2;
	struct hb_event ev;
	struct hb_id id1, id2;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	b1 = IT_ALLOC(v1, 2, 9000, 0);
	it_fill(b1, 1);
	IT_EXPORT(b1, NULL, 0, &id1);
	b2 = IT_ALLOC(v2, 1, 9000, 0);
	IT_EXPORT(b2, NULL, 0, &id2);
	im1 = IT_IMPORT(v2, &id1, 0);
	im2 = IT_IMPORT(v1, &id2, 0);
	(void)im2; /* left for hb_disconnect to release */
	it_drain(v2);
	hb_disconnect(v1); /* frees b1, releases im2 */
	IT_WAIT_EVENT(v2, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	IT_CHECK_IMPORT(im1, 9000, 1);
	CHECK_ERR(hb_import(v2, &id1, 0), ENOENT);
	IT_CHECK_STAT(&d, "pool.b.pages_used", 2 * it_buffer_pages(9000));
	hb_import_release(im1);
	IT_CHECK_STAT(&d, "pool.b.pages_used", it_buffer_pages(9000));
	hb_disconnect(v2); /* frees b2 */
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	IT_STOP(&d);
}

struct importer_arg {
	const char *addr;
	struct hb_id id;
	int pipe_w;
};

static int importer_child(void *p)
{
	struct importer_arg *a = p;
	struct hb_client *c = hb_connect(a->addr);
	char ok = 'k';

	if (!c || !hb_import(c, &a->id, 0) || !hb_import(c, &a->id, 0))
		return 10;
	it_pipe_write(a->pipe_w, &ok, 1);
	for (;;)
		pause();
}

/* An importer that dies: its imports are released and the exporter hears it once. */
TEST(sigkill_importer)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *b;
	struct importer_arg arg;
	struct hb_event ev;
	struct hb_info info;
	int pfd[2];
	char ok;
	pid_t pid;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	b = IT_ALLOC(v1, 2, 4096, 0);
	memset(&arg, 0, sizeof(arg));
	IT_EXPORT(b, NULL, 0, &arg.id);
	CHECK(pipe(pfd) == 0);
	arg.addr = hbt_addr_vm(&d, 2);
	arg.pipe_w = pfd[1];
	pid = hbt_fork(importer_child, &arg);
	CHECK_EQ(it_pipe_read(pfd[0], &ok, 1, IT_WAIT_MS), 0);
	IT_QUERY(v1, &arg.id, &info);
	CHECK_EQ(info.importers, 2);
	it_drain(v1);
	kill(pid, SIGKILL);
	CHECK_EQ(hbt_wait_child(pid), 128 + SIGKILL);
	IT_WAIT_EVENT(v1, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &arg.id));
	CHECK_EQ(ev.domain, 2);
	IT_QUERY(v1, &arg.id, &info);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(info.flags, 0); /* still exported */
	CHECK_EQ(IT_STAT(&d, "imports"), 0);
	/* Exactly one RELEASED. */
	while (IT_NEXT_EVENT(v1, &ev, 300) == 0)
		CHECK(ev.type != HB_EVENT_RELEASED);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pages_used", 0);
	close(pfd[0]);
	close(pfd[1]);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* SIGTERM with everything in flight: pending delayed unexports, live imports, queued events,
 * connected clients. The daemon exits 0 (no leak) and the clients see a clean error. */
TEST(shutdown_with_everything_in_flight)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2, *h;
	struct hb_buffer *b[3];
	struct hb_import *im[2];
	struct hb_id id[3];
	int i;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i < 3; i++) {
		b[i] = IT_ALLOC(v1, i == 2 ? 0 : 2, 50000, 0);
		it_fill(b[i], (uint64_t)i);
		IT_EXPORT(b[i], "x", 1, &id[i]);
	}
	im[0] = IT_IMPORT(v2, &id[0], 0);
	im[1] = IT_IMPORT(h, &id[2], 0);
	CHECK_EQ(hb_unexport(v1, &id[1], 60000), 0);
	/* v2 and h never dispatch: their events stay queued. */
	IT_STOP(&d);
	/* The mappings are the clients' own until they let go. */
	IT_CHECK_IMPORT(im[0], 50000, 0);
	IT_CHECK_IMPORT(im[1], 50000, 2);
	errno = 0;
	CHECK(hb_import(v2, &id[1], 0) == NULL);
	CHECK(errno == EPIPE || errno == ECONNRESET);
	hb_import_release(im[0]);
	hb_import_release(im[1]);
	for (i = 0; i < 3; i++)
		hb_buffer_free(b[i]);
	hb_disconnect(h);
	hb_disconnect(v1);
	hb_disconnect(v2);
}
