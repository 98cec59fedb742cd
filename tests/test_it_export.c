/*
 * Buffers, export, unexport (API.md "Buffers, export, unexport"): every allocation error, exact
 * sizes and zero fill, metadata limits, re-export (and whose imports a new hid counts), delayed
 * unexport and its errors, an unexport after free.
 */
#include "tests/it_common.h"

TEST(alloc_einval)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	CHECK_ERR(hb_buffer_alloc(v1, 2, 0, 0), EINVAL);    /* size 0 */
	CHECK_ERR(hb_buffer_alloc(v1, 1, 4096, 0), EINVAL); /* self as peer */
	CHECK_ERR(hb_buffer_alloc(h, 0, 4096, 0), EINVAL);
	CHECK_ERR(hb_buffer_alloc(h, 0, 0, 0), EINVAL);
	CHECK_ERR(hb_buffer_alloc(v1, 2, 4096, 0x80), EINVAL); /* unknown flag */
	CHECK_ERR(hb_buffer_alloc(v1, 2, 4096, ~HB_BUFFER_PEER_WRITABLE), EINVAL);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	CHECK_EQ(IT_STAT(&d, "pages_used"), 0);
	hb_disconnect(h);
	hb_disconnect(v1);
	IT_STOP(&d);
}

TEST(alloc_eperm_enodev_efbig)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1, *v2, *v3;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v3 = IT_CONNECT(hbt_addr_vm(&d, 3));
	/* No group in common. */
	CHECK_ERR(hb_buffer_alloc(v1, 3, 4096, 0), EPERM);
	CHECK_ERR(hb_buffer_alloc(v3, 1, 4096, 0), EPERM);
	CHECK_ERR(hb_buffer_alloc(h, 2, 4096, 0), EPERM);
	CHECK_ERR(hb_buffer_alloc(v3, 0, 4096, 0), EPERM);
	/* No such domain. */
	CHECK_ERR(hb_buffer_alloc(v1, 99, 4096, 0), ENODEV);
	CHECK_ERR(hb_buffer_alloc(h, 4, 4096, 0), ENODEV);
	CHECK_ERR(hb_buffer_alloc(v2, 0xffffffffu, 4096, 0), ENODEV);
	/* Larger than the pool (group c is 16M, group b 128M). */
	CHECK_ERR(hb_buffer_alloc(v3, 2, 17u << 20, 0), EFBIG);
	CHECK_ERR(hb_buffer_alloc(v1, 2, 200u << 20, 0), EFBIG);
	CHECK_ERR(hb_buffer_alloc(v1, 2, (size_t)1 << 40, 0), EFBIG);
	CHECK_ERR(hb_buffer_alloc(v1, 2, SIZE_MAX, 0), EFBIG);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	CHECK_EQ(IT_STAT(&d, "pages_used"), 0);
	hb_disconnect(h);
	hb_disconnect(v1);
	hb_disconnect(v2);
	hb_disconnect(v3);
	IT_STOP(&d);
}

/* Group c (16M = 4096 pages, page 0 the header) fills up exactly. */
TEST(alloc_enospc)
{
	struct hbt_daemon d;
	struct hb_client *v2;
	struct hb_buffer *b[4], *last;
	const size_t four_m = 4u << 20; /* 1024 data pages + 1 directory page */
	int i;

	/* The last section of the topology is [group c]: vm2 may fill all of it here. */
	hbt_daemon_start(&d, "share = 100%\n");
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i < 3; i++)
		b[i] = IT_ALLOC(v2, 3, four_m, 0);
	CHECK_EQ(IT_STAT(&d, "pool.c.pages_used"), 3 * 1025);
	/* 4095 - 3075 = 1020 pages left. */
	CHECK_ERR(hb_buffer_alloc(v2, 3, four_m, 0), ENOSPC);
	CHECK_ERR(hb_buffer_alloc(v2, 3, 1020 * 4096, 0), ENOSPC); /* + 1 directory page */
	last = IT_ALLOC(v2, 3, 1019 * 4096, 0);
	CHECK_EQ(IT_STAT(&d, "pool.c.pages_used"), 4095);
	CHECK_ERR(hb_buffer_alloc(v2, 3, 1, 0), ENOSPC);
	/* Group b is a different pool: unaffected. */
	b[3] = IT_ALLOC(v2, 1, four_m, 0);
	hb_buffer_free(b[3]);
	/* Freeing makes room again. */
	hb_buffer_free(b[1]);
	IT_CHECK_STAT(&d, "pool.c.pages_used", 2 * 1025 + 1020);
	b[1] = IT_ALLOC(v2, 3, four_m, 0);
	CHECK(it_all_bytes(hb_buffer_data(b[1]), four_m, 0));
	for (i = 0; i < 3; i++)
		hb_buffer_free(b[i]);
	hb_buffer_free(last);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(alloc_edquot_pages)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v1b;
	struct hb_buffer *a, *b, *c;

	hbt_daemon_start(&d, "[limits]\npages_per_domain = 100\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v1b = IT_CONNECT(hbt_addr_vm(&d, 1)); /* the quota is per domain, not per session */
	a = IT_ALLOC(v1, 2, 50 * 4096, 0);
	CHECK_ERR(hb_buffer_alloc(v1, 2, 60 * 4096, 0), EDQUOT);
	CHECK_ERR(hb_buffer_alloc(v1b, 0, 60 * 4096, 0), EDQUOT);
	CHECK_ERR(hb_buffer_alloc(v1b, 2, 200 * 4096, 0), EDQUOT);
	b = IT_ALLOC(v1b, 0, 40 * 4096, 0);
	CHECK_ERR(hb_buffer_alloc(v1, 2, 20 * 4096, 0), EDQUOT);
	hb_buffer_free(a);
	IT_CHECK_STAT(&d, "buffers", 1);
	c = IT_ALLOC(v1, 2, 50 * 4096, 0);
	hb_buffer_free(b);
	hb_buffer_free(c);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	hb_disconnect(v1b);
	IT_STOP(&d);
}

TEST(export_edquot)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v1b;
	struct hb_buffer *b[6];
	struct hb_id id[6], again;
	int i;

	hbt_daemon_start(&d, "[limits]\nexports_per_domain = 4\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v1b = IT_CONNECT(hbt_addr_vm(&d, 1));
	for (i = 0; i < 6; i++)
		b[i] = IT_ALLOC(i < 3 ? v1 : v1b, i % 2 ? 0 : 2, 4096, 0);
	for (i = 0; i < 4; i++)
		IT_EXPORT(b[i], NULL, 0, &id[i]);
	CHECK_ERR(hb_export(b[4], NULL, 0, 0, &id[4]), EDQUOT);
	CHECK_ERR(hb_export(b[5], "m", 1, 0, &id[5]), EDQUOT);
	/* A re-export is not a new export. */
	IT_EXPORT(b[3], "again", 5, &again);
	CHECK(hb_id_equal(&again, &id[3]));
	CHECK_EQ(IT_STAT(&d, "exports"), 4);
	/* Withdrawing one makes room. */
	CHECK_EQ(hb_unexport(v1, &id[0], 0), 0);
	IT_CHECK_STAT(&d, "exports", 3);
	IT_EXPORT(b[4], NULL, 0, &id[4]);
	CHECK_ERR(hb_export(b[5], NULL, 0, 0, &id[5]), EDQUOT);
	for (i = 0; i < 6; i++)
		hb_buffer_free(b[i]);
	IT_CHECK_STAT(&d, "exports", 0);
	hb_disconnect(v1);
	hb_disconnect(v1b);
	IT_STOP(&d);
}

TEST(alloc_exact_size_zero_filled)
{
	static const size_t sizes[] = {1,     7,     4095,           4096,     4097,
				       12345, 65536, (1u << 20) + 3, 4u << 20, (4u << 20) + 1};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b[N];
	struct hb_info info;
	struct hb_id id;
	uint64_t pages = 0;
	size_t i;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i < N; i++) {
		b[i] = IT_ALLOC(v1, 2, sizes[i], 0);
		CHECK_EQ(hb_buffer_size(b[i]), sizes[i]);
		CHECK(hb_buffer_data(b[i]) != NULL);
		CHECK(it_all_bytes(hb_buffer_data(b[i]), sizes[i], 0));
		/* Every byte is writable. */
		memset(hb_buffer_data(b[i]), 0xee, sizes[i]);
		pages += it_buffer_pages(sizes[i]);
		IT_EXPORT(b[i], NULL, 0, &id);
		IT_QUERY(v2, &id, &info);
		CHECK_EQ(info.size, sizes[i]);
		CHECK_EQ(info.pages, IT_PAGES(sizes[i]));
	}
	CHECK_EQ(IT_STAT(&d, "buffers"), N);
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), pages);
	CHECK_EQ(IT_STAT(&d, "pages_used"), pages);
	CHECK_EQ(IT_STAT(&d, "pool.a.pages_used"), 0);
	for (i = 0; i < N; i++)
		hb_buffer_free(b[i]);
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* The smallest meta_max a daemon may have (1024) and the build's HB_META_MAX. */
TEST(export_metadata_limits)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b, *b2;
	struct hb_event ev;
	struct hb_info info;
	static uint8_t meta[HB_META_MAX + 2];
	struct hb_id id, id2;
	size_t i;

	for (i = 0; i < sizeof(meta); i++)
		meta[i] = (uint8_t)(i * 7 + 1);
	hbt_daemon_start(&d, "[limits]\nmeta_max = 1024\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	b2 = IT_ALLOC(v1, 2, 4096, 0);

	CHECK_ERR(hb_export(b, meta, 1025, 0, &id), EMSGSIZE);
	CHECK_ERR(hb_export(b, meta, HB_META_MAX, 0, &id), EMSGSIZE);
	CHECK_ERR(hb_export(b, meta, HB_META_MAX + 1, 0, &id), EMSGSIZE);
	CHECK_EQ(IT_STAT(&d, "exports"), 0);
	IT_EXPECT_QUIET(v2, 200);

	IT_EXPORT(b, meta, 1024, &id); /* exactly meta_max */
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.meta_len, 1024);
	CHECK(memcmp(ev.meta, meta, 1024) == 0);
	IT_EXPORT(b2, NULL, 0, &id2); /* none at all */
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.meta_len, 0);
	CHECK(!hb_id_equal(&id, &id2));

	/* A refused re-export changes nothing. */
	CHECK_ERR(hb_export(b, meta + 1, 1025, 0, &id2), EMSGSIZE);
	IT_QUERY(v2, &id, &info);
	CHECK_EQ(info.meta_len, 1024);
	CHECK(memcmp(info.meta, meta, 1024) == 0);
	IT_EXPECT_QUIET(v2, 200);

	hb_buffer_free(b);
	hb_buffer_free(b2);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(export_metadata_meta_max_4096)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	static uint8_t meta[HB_META_MAX + 1], got[HB_META_MAX + 8];
	struct hb_id id;
	size_t i;

	for (i = 0; i < sizeof(meta); i++)
		meta[i] = (uint8_t)(i ^ (i >> 8));
	hbt_daemon_start(&d, "[limits]\nmeta_max = 4096\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	CHECK_ERR(hb_export(b, meta, HB_META_MAX + 1, 0, &id), EMSGSIZE);
	IT_EXPORT(b, meta, HB_META_MAX, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.meta_len, HB_META_MAX);
	CHECK(memcmp(ev.meta, meta, HB_META_MAX) == 0);
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.meta_len, HB_META_MAX);
	CHECK(memcmp(info.meta, meta, HB_META_MAX) == 0);
	im = IT_IMPORT(v2, &id, 0);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), HB_META_MAX);
	CHECK(memcmp(got, meta, HB_META_MAX) == 0);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(reexport_same_id_new_metadata)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id, id2;
	char got[16];

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 10000, 0);
	IT_EXPORT(b, "frame-1", 7, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);
	CHECK_EQ(ev.size, 10000);
	CHECK_EQ(ev.meta_len, 7);
	CHECK(memcmp(ev.meta, "frame-1", 7) == 0);

	IT_EXPORT(b, "frame-22", 8, &id2);
	CHECK(hb_id_equal(&id, &id2));
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.meta_len, 8);
	CHECK(memcmp(ev.meta, "frame-22", 8) == 0);
	IT_QUERY(v2, &id, &info);
	CHECK_EQ(info.meta_len, 8);
	CHECK(memcmp(info.meta, "frame-22", 8) == 0);
	im = IT_IMPORT(v2, &id, 0);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 8);
	CHECK(memcmp(got, "frame-22", 8) == 0);

	/* Shorter metadata replaces, it does not overlay. */
	IT_EXPORT(b, "f3", 2, &id2);
	CHECK(hb_id_equal(&id, &id2));
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.meta_len, 2);
	CHECK(memcmp(info.meta, "f3", 2) == 0);
	CHECK_EQ(IT_STAT(&d, "exports"), 1);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(unexport_delay_honoured)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im1, *im2;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;
	uint64_t t0, dt;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 8192, 0);
	it_fill(b, 5);
	IT_EXPORT(b, NULL, 0, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	im1 = IT_IMPORT(v2, &id, 0);

	t0 = hbt_now_ms();
	CHECK_EQ(hb_unexport(v1, &id, 3000), 0);
	/* During the delay: still importable, marked pending. */
	im2 = IT_IMPORT(v2, &id, 0);
	IT_CHECK_IMPORT(im2, 8192, 5);
	IT_QUERY(v2, &id, &info);
	CHECK(info.flags & HB_INFO_UNEXPORT_PENDING);
	CHECK(!(info.flags & HB_INFO_UNEXPORTED));
	CHECK(hbt_now_ms() - t0 < 2500); /* so the checks above really were inside the delay */

	CHECK_EQ(it_next_event_at(__FILE__, __LINE__, v2, &ev, 3000 + IT_WAIT_MS), 0);
	dt = hbt_now_ms() - t0;
	CHECK_EQ(ev.type, HB_EVENT_UNEXPORTED);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);
	CHECK(dt >= 2900);
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	IT_QUERY(v1, &id, &info);
	CHECK(info.flags & HB_INFO_UNEXPORTED);
	CHECK(!(info.flags & HB_INFO_UNEXPORT_PENDING));
	CHECK_EQ(info.importers, 2);
	/* The imports made before and during the delay stay valid. */
	IT_CHECK_IMPORT(im1, 8192, 5);
	IT_CHECK_IMPORT(im2, 8192, 5);
	hb_import_release(im1);
	hb_import_release(im2);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(unexport_zero_delay_and_new_id)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id, id2;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	it_fill(b, 77);
	IT_EXPORT(b, NULL, 0, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(hb_unexport(v1, &id, 0), 0);
	IT_EXPECT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	/* A second unexport after it completed is a no-op. */
	CHECK_EQ(hb_unexport(v1, &id, 0), 0);
	CHECK_EQ(hb_unexport(v1, &id, 500), 0);
	IT_EXPECT_QUIET(v2, 200);

	/* Exporting again after the unexport completed gives a fresh id. */
	IT_EXPORT(b, NULL, 0, &id2);
	CHECK(!hb_id_equal(&id, &id2));
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	im = IT_IMPORT(v2, &id2, 0);
	IT_CHECK_IMPORT(im, 4096, 77);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(unexport_twice_keeps_first_delay)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;
	uint64_t t0;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	t0 = hbt_now_ms();
	CHECK_EQ(hb_unexport(v1, &id, 3000), 0);
	CHECK_EQ(hb_unexport(v1, &id, 0), 0); /* does not cut the delay short */
	im = IT_IMPORT(v2, &id, 0);
	IT_QUERY(v1, &id, &info);
	CHECK(info.flags & HB_INFO_UNEXPORT_PENDING);
	CHECK(hbt_now_ms() - t0 < 2500);
	IT_EXPECT_QUIET(v2, 300);
	CHECK_EQ(it_next_event_at(__FILE__, __LINE__, v2, &ev, 3000 + IT_WAIT_MS), 0);
	CHECK_EQ(ev.type, HB_EVENT_UNEXPORTED);
	CHECK(hbt_now_ms() - t0 >= 2900);
	/* Exactly one UNEXPORTED. */
	IT_EXPECT_QUIET(v2, 300);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(reexport_cancels_pending_unexport)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id, id2;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, "a", 1, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(hb_unexport(v1, &id, 1000), 0);
	IT_QUERY(v1, &id, &info);
	CHECK(info.flags & HB_INFO_UNEXPORT_PENDING);
	IT_EXPORT(b, "b", 1, &id2);
	CHECK(hb_id_equal(&id, &id2));
	IT_QUERY(v1, &id, &info);
	CHECK(!(info.flags & (HB_INFO_UNEXPORT_PENDING | HB_INFO_UNEXPORTED)));
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.meta[0], 'b');
	/* Well past the cancelled delay: still exported, no UNEXPORTED. */
	IT_EXPECT_QUIET(v2, 2000);
	im = IT_IMPORT(v2, &id, 0);
	IT_QUERY(v2, &id, &info);
	CHECK_EQ(info.flags & (HB_INFO_UNEXPORT_PENDING | HB_INFO_UNEXPORTED), 0);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(unexport_errors)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1, *v1b, *v2, *v3;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id, bad;
	uint64_t seed = 99;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v1b = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v3 = IT_CONNECT(hbt_addr_vm(&d, 3));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);

	it_random_id(&bad, &seed);
	CHECK_ERR(hb_unexport(v1, &bad, 0), ENOENT);
	memset(&bad, 0, sizeof(bad));
	CHECK_ERR(hb_unexport(v1, &bad, 0), ENOENT);
	/* The peer domain sees the export but may not withdraw it; so for another session of
	 * the exporting domain. Domains that cannot see it get ENOENT. */
	CHECK_ERR(hb_unexport(v2, &id, 0), EPERM);
	CHECK_ERR(hb_unexport(v1b, &id, 0), EPERM);
	CHECK_ERR(hb_unexport(v3, &id, 0), ENOENT);
	CHECK_ERR(hb_unexport(h, &id, 0), ENOENT);
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.flags & (HB_INFO_UNEXPORT_PENDING | HB_INFO_UNEXPORTED), 0);
	IT_EXPECT_QUIET(v2, 200);

	/* Freeing an exported buffer unexports it at once. */
	hb_buffer_free(b);
	IT_EXPECT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	IT_CHECK_STAT(&d, "exports", 0);
	hb_disconnect(h);
	hb_disconnect(v1);
	hb_disconnect(v1b);
	hb_disconnect(v2);
	hb_disconnect(v3);
	IT_STOP(&d);
}

TEST(export_flags_einval)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *b;
	struct hb_id id;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	b = IT_ALLOC(v1, 2, 4096, 0);
	/* HB_EXPORT_NOWAIT (1) is the one flag. */
	CHECK_ERR(hb_export(b, NULL, 0, 2, &id), EINVAL);
	CHECK_ERR(hb_export(b, NULL, 0, 0x80000000u, &id), EINVAL);
	CHECK_EQ(IT_STAT(&d, "exports"), 0);
	hb_buffer_free(b);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* Freeing during a delayed unexport withdraws at once (free unexports with delay 0). */
TEST(free_cuts_pending_unexport)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_id id;
	uint64_t t0;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(hb_unexport(v1, &id, 60000), 0);
	t0 = hbt_now_ms();
	hb_buffer_free(b);
	IT_EXPECT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK(hbt_now_ms() - t0 < 30000);
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* A peer that is not connected yet can still be shared with; it imports when it comes. */
TEST(export_to_absent_peer)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_id id;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	b = IT_ALLOC(v1, 2, 6000, 0);
	it_fill(b, 8);
	IT_EXPORT(b, NULL, 0, &id);
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	im = IT_IMPORT(v2, &id, 0);
	IT_CHECK_IMPORT(im, 6000, 8);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* Hids: a 32-bit serial and at least 96 random bits. Over 64 exports every bit of the random
 * part takes both values (a fixed bit would do so with probability 2^-63). */
TEST(hids_are_random)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *b[64];
	struct hb_id id[64];
	int ones[128] = {0};
	int i, j, bit;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	for (i = 0; i < 64; i++) {
		b[i] = IT_ALLOC(v1, 2, 64, 0);
		IT_EXPORT(b[i], NULL, 0, &id[i]);
		for (j = 0; j < i; j++)
			CHECK(!hb_id_equal(&id[i], &id[j]));
		for (bit = 0; bit < 128; bit++)
			ones[bit] += (id[i].bytes[bit / 8] >> (bit % 8)) & 1;
	}
	for (bit = 32; bit < 128; bit++) {
		if (ones[bit] == 0 || ones[bit] == 64)
			hbt_fail(__FILE__, __LINE__, "hid bit %d is always %d", bit,
				 ones[bit] ? 1 : 0);
	}
	for (i = 0; i < 64; i++)
		CHECK(id[i].bytes[0] | id[i].bytes[1] | id[i].bytes[2] |
		      id[i].bytes[3]); /* serial */
	for (i = 0; i < 64; i++)
		hb_buffer_free(b[i]);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* With a choice, the daemon takes the group with the fewest members. */
TEST(alloc_picks_smallest_group)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;

	hbt_daemon_start(&d, "[group x]\nmembers = vm1, vm2, vm3\nsize = 32M\n"
			     "ivshmem = group-x.sock\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	b = IT_ALLOC(v1, 2, 4096, 0); /* b (2 members) over x (3) */
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), 1); /* inline refs: no directory page */
	CHECK_EQ(IT_STAT(&d, "pool.x.pages_used"), 0);
	hb_buffer_free(b);
	b = IT_ALLOC(v1, 3, 4096, 0); /* only x */
	CHECK_EQ(IT_STAT(&d, "pool.x.pages_used"), 1);
	hb_buffer_free(b);
	b = IT_ALLOC(v2, 3, 4096, 0); /* c over x */
	CHECK_EQ(IT_STAT(&d, "pool.c.pages_used"), 1);
	CHECK_EQ(IT_STAT(&d, "pool.x.pages_used"), 0);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* An unexport after free (the orphan still imported) is a no-op, from any session of the
 * exporting domain; the peer still may not unexport it. */
TEST(unexport_after_free_is_noop)
{
	enum { SIZE = 3 * 4096 + 5 };
	struct hbt_daemon d;
	struct hb_client *v1, *v1b, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_info info;
	struct hb_id id;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v1b = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	b = IT_ALLOC(v1, 2, SIZE, 0);
	it_fill(b, 0x5eed);
	IT_EXPORT(b, "orphan", 6, &id);
	im = IT_IMPORT(v2, &id, 0);
	hb_buffer_free(b); /* an orphan now: vm2 still maps it */

	CHECK_EQ(hb_unexport(v1, &id, 0), 0);
	CHECK_EQ(hb_unexport(v1, &id, 100), 0);
	CHECK_EQ(hb_unexport(v1b, &id, 0), 0);     /* nobody owns it: any exporter session */
	CHECK_ERR(hb_unexport(v2, &id, 0), EPERM); /* the peer still may not */
	IT_QUERY(v2, &id, &info);
	CHECK(info.flags & HB_INFO_UNEXPORTED);
	CHECK_EQ(info.importers, 1);
	IT_CHECK_IMPORT(im, SIZE, 0x5eed);
	IT_CHECK_STAT(&d, "buffers_orphaned", 1);

	hb_import_release(im);
	IT_CHECK_STAT(&d, "buffers_orphaned", 0);
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_ERR(hb_unexport(v1, &id, 0), ENOENT); /* gone with its pages */
	hb_disconnect(v1);
	hb_disconnect(v1b);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* A re-export's hid counts only its own imports: an import made under the old hid is not an
 * importer of the new one, and its release says nothing about it. */
TEST(reexport_counts_only_new_imports)
{
	static char out[64 * 1024];
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *old, *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id1, id2;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v1);
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 8192, 0);
	it_fill(b, 0x6e6);
	IT_EXPORT(b, NULL, 0, &id1);
	old = IT_IMPORT(v2, &id1, 0);
	IT_EXPECT_EVENT(v1, HB_EVENT_IMPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id1));
	CHECK_EQ(hb_unexport(v1, &id1, 0), 0);
	IT_EXPORT(b, NULL, 0, &id2);
	CHECK(!hb_id_equal(&id1, &id2));

	/* The import made under the old hid is not an importer of the new one. */
	IT_QUERY(v1, &id2, &info);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(info.flags, 0);
	IT_QUERY(v2, &id2, &info);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(hbt_ctl(&d, out, sizeof(out), "--json exports"), 0);
	CHECK_EQ(hbt_count_substr(out, "\"hid\":"), 1);
	CHECK(strstr(out, "\"importers\":0") != NULL);
	IT_CHECK_IMPORT(old, 8192, 0x6e6);

	/* Releasing it says nothing about the new hid. */
	hb_import_release(old);
	IT_EXPECT_QUIET(v1, 500);

	/* An import of the new hid: IMPORTED, then RELEASED, both with the new hid. */
	im = IT_IMPORT(v2, &id2, 0);
	IT_EXPECT_EVENT(v1, HB_EVENT_IMPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	CHECK_EQ(ev.domain, 2);
	IT_QUERY(v1, &id2, &info);
	CHECK_EQ(info.importers, 1);
	IT_CHECK_IMPORT(im, 8192, 0x6e6);
	hb_import_release(im);
	IT_EXPECT_EVENT(v1, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &id2));
	CHECK_EQ(ev.domain, 2);
	IT_QUERY(v1, &id2, &info);
	CHECK_EQ(info.importers, 0);
	IT_EXPECT_QUIET(v1, 200);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* Each member may hold its share of a pool (an equal part by default): a two-VM pool gives
 * each half, so one VM cannot starve the other; over it is EDQUOT, logged with the group, the
 * domain and the limit. */
TEST(pool_share_is_fair)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b1, *b2;
	char log[1 << 16];
	int fd;
	ssize_t n;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	/* Group b: 128 MiB, 32767 pages; 16383 each. 64 MiB is 16384 + 17 directory pages. */
	CHECK_ERR(hb_buffer_alloc(v1, 2, 64u << 20, 0), EDQUOT);
	b1 = IT_ALLOC(v1, 2, 60u << 20, 0); /* 15360 + 16 */
	CHECK_ERR(hb_buffer_alloc(v1, 2, 4u << 20, 0), EDQUOT);
	/* vm2's own half is all there. */
	b2 = IT_ALLOC(v2, 1, 60u << 20, 0);
	fd = open(d.log, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	n = read(fd, log, sizeof(log) - 1);
	close(fd);
	log[n > 0 ? n : 0] = '\0';
	CHECK(strstr(log, "group b: vm1 (domain 1) holds 0 pages; 16401 more would pass its share "
			  "of the pool (16383 pages, 50%)") != NULL);
	hb_buffer_free(b1);
	hb_buffer_free(b2);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/*
 * hb_export_batch: each item's outcome is its own (metadata refused locally, EDQUOT past
 * exports_per_domain, a re-export keeps its id), the handles are the ones the peer hears and
 * imports, 64 requests go out in one send, and a foreign buffer refuses the whole call.
 */
TEST(export_batch)
{
	enum { N = 130, LIMIT = 100 };
	static struct hb_export_item it[N];
	static struct hb_buffer *b[N];
	static int seq[N];
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_counters before, after;
	struct hb_event ev;
	struct hb_buffer *foreign;
	struct hb_export_item again[2];
	const char magic[] = "\x89HBSYNC\n";
	int i, ok = 0, edquot = 0;

	hbt_daemon_start(&d, "[limits]\nexports_per_domain = 100\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i < N; i++) {
		b[i] = IT_ALLOC(v1, 2, 4096, 0);
		it_fill(b[i], 0xba7c + (uint64_t)i);
		seq[i] = i;
		it[i] = (struct hb_export_item){.buffer = b[i], .meta = &seq[i], .meta_len = 4};
	}
	it[5].meta_len = HB_META_MAX + 1;   /* refused before it is sent */
	it[7].meta = magic;                 /* a resync marker in metadata */
	it[7].meta_len = sizeof(magic) - 1;
	CHECK_EQ(hb_counters(v1, &before), 0);
	errno = 0;
	CHECK_EQ(hb_export_batch(v1, it, N), LIMIT);
	CHECK_EQ(errno, EMSGSIZE); /* the first failed item's */
	CHECK_EQ(hb_counters(v1, &after), 0);
	/* 128 requests, two flights: a send or so each, not one per buffer. */
	CHECK(after.sends - before.sends <= 6);
	CHECK_EQ(after.frames_out - before.frames_out, N - 2);
	CHECK_EQ(it[5].error, EMSGSIZE);
	CHECK_EQ(it[7].error, EINVAL);
	for (i = 0; i < N; i++) {
		if (it[i].error == 0)
			ok++;
		else if (it[i].error == EDQUOT)
			edquot++;
		else
			CHECK(i == 5 || i == 7);
	}
	CHECK_EQ(ok, LIMIT);
	CHECK_EQ(edquot, N - 2 - LIMIT);
	IT_CHECK_STAT(&d, "exports", LIMIT);
	/* The peer hears each, in order, under the handle the item says, and maps its bytes. */
	for (i = 0; i < N; i++) {
		struct hb_import *im;

		if (it[i].error)
			continue;
		IT_WAIT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &it[i].id));
		if (i % 16)
			continue;
		im = IT_IMPORT(v2, &it[i].id, 0);
		IT_CHECK_IMPORT(im, 4096, 0xba7c + (uint64_t)i);
		hb_import_release(im);
	}
	/* A re-export in a batch keeps its id; a foreign buffer refuses the call, nothing sent. */
	for (i = 0; i < N && it[i].error; i++)
		;
	again[0] = (struct hb_export_item){.buffer = b[i]};
	foreign = IT_ALLOC(v2, 1, 4096, 0);
	again[1] = (struct hb_export_item){.buffer = foreign};
	CHECK_ERR(hb_export_batch(v1, again, 2), EINVAL);
	CHECK_EQ(hb_export_batch(v1, again, 1), 1);
	CHECK(hb_id_equal(&again[0].id, &it[i].id));
	CHECK_EQ(hb_export_batch(v1, again, 0), 0);
	CHECK_ERR(hb_export_batch(NULL, again, 1), EINVAL);
	IT_CHECK_STAT(&d, "exports", LIMIT);
	hb_buffer_free(foreign);
	for (i = 0; i < N; i++)
		hb_buffer_free(b[i]);
	IT_CHECK_STAT(&d, "exports", 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}
