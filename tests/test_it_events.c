/*
 * Events (API.md "Events", PROTOCOL.md §3 Event): who gets which event with which fields, the
 * bounded queue keeping the oldest and adding one OVERFLOW, and DOMAIN_GONE.
 */
#include "tests/it_common.h"

TEST(next_event_eagain)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_event ev;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	it_drain(h);
	it_drain(v1);
	CHECK_ERR(hb_next_event(h, &ev), EAGAIN);
	CHECK_ERR(hb_next_event(v1, &ev), EAGAIN);
	CHECK_ERR(hb_next_event(v1, &ev), EAGAIN);
	hb_disconnect(h);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* EXPORTED, IMPORTED, RELEASED, UNEXPORTED with every field, to exactly the right sessions. */
TEST(event_lifecycle_fields)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v1b, *v2, *v2b, *v3, *h;
	struct hb_buffer *b;
	struct hb_import *im1, *im2, *im3;
	struct hb_event ev;
	struct hb_id id;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v1b = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v2b = IT_CONNECT(hbt_addr_vm(&d, 2));
	v3 = IT_CONNECT(hbt_addr_vm(&d, 3));
	it_drain(h);
	it_drain(v1);
	it_drain(v1b);
	it_drain(v2);
	it_drain(v2b);
	it_drain(v3);

	b = IT_ALLOC(v1, 2, 7777, 0);
	IT_EXPORT(b, "hello", 5, &id);
	/* Every session of the peer domain. */
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);
	CHECK_EQ(ev.size, 7777);
	CHECK_EQ(ev.meta_len, 5);
	CHECK(memcmp(ev.meta, "hello", 5) == 0);
	IT_EXPECT_EVENT(v2b, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);

	/* IMPORTED to the exporting session, on every import. */
	im1 = IT_IMPORT(v2, &id, 0);
	IT_EXPECT_EVENT(v1, HB_EVENT_IMPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 2);
	CHECK_EQ(ev.size, 7777);
	im2 = IT_IMPORT(v2b, &id, 0);
	IT_EXPECT_EVENT(v1, HB_EVENT_IMPORTED, &ev);
	CHECK_EQ(ev.domain, 2);
	im3 = IT_IMPORT(v2, &id, 0);
	IT_EXPECT_EVENT(v1, HB_EVENT_IMPORTED, &ev);

	/* RELEASED only when the peer domain's last import goes. */
	hb_import_release(im1);
	hb_import_release(im2);
	IT_EXPECT_QUIET(v1, 300);
	hb_import_release(im3);
	IT_EXPECT_EVENT(v1, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 2);

	/* UNEXPORTED to every session of the peer domain. */
	CHECK_EQ(hb_unexport(v1, &id, 0), 0);
	IT_EXPECT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_EQ(ev.domain, 1);
	IT_EXPECT_EVENT(v2b, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));

	/* Nobody else heard anything. */
	IT_EXPECT_QUIET(v1, 100);
	IT_EXPECT_QUIET(v1b, 100);
	IT_EXPECT_QUIET(v2, 100);
	IT_EXPECT_QUIET(v2b, 100);
	IT_EXPECT_QUIET(v3, 100);
	IT_EXPECT_QUIET(h, 100);
	CHECK(IT_STAT(&d, "events_sent") >= 8); /* 2 + 3 + 1 + 2 above */
	hb_buffer_free(b);
	hb_disconnect(h);
	hb_disconnect(v1);
	hb_disconnect(v1b);
	hb_disconnect(v2);
	hb_disconnect(v2b);
	hb_disconnect(v3);
	IT_STOP(&d);
}

/* An exporter that is not watching still gets its events later, in order. */
TEST(events_keep_order)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b[5];
	struct hb_event ev;
	struct hb_id id[5];
	char m[16];
	int i;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	for (i = 0; i < 5; i++) {
		b[i] = IT_ALLOC(v1, 2, 4096 * (i + 1), 0);
		snprintf(m, sizeof(m), "m%d", i);
		IT_EXPORT(b[i], m, strlen(m), &id[i]);
	}
	for (i = 0; i < 5; i++) {
		IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &id[i]));
		CHECK_EQ(ev.size, 4096 * (i + 1));
		CHECK_EQ(ev.meta[1], '0' + i);
	}
	for (i = 4; i >= 0; i--)
		hb_buffer_free(b[i]);
	for (i = 4; i >= 0; i--) {
		IT_EXPECT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &id[i]));
	}
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* event_queue = 16: 40 re-exports while the peer does not dispatch. */
TEST(event_overflow_keeps_oldest)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_id id;
	char m[16];
	int i;

	hbt_daemon_start(&d, "[limits]\nevent_queue = 16\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	for (i = 0; i < 40; i++) {
		snprintf(m, sizeof(m), "n=%d", i);
		IT_EXPORT(b, m, strlen(m), &id);
	}
	/* Everything the daemon sent (or kept) arrives now. */
	while (hb_dispatch(v2, 300) > 0)
		;
	for (i = 0; i < 16; i++) {
		CHECK_EQ(hb_next_event(v2, &ev), 0);
		if (ev.type != HB_EVENT_EXPORTED)
			hbt_fail(__FILE__, __LINE__, "event %d is %s, want EXPORTED", i,
				 it_event_name(ev.type));
		snprintf(m, sizeof(m), "n=%d", i);
		CHECK_EQ(ev.meta_len, strlen(m));
		if (memcmp(ev.meta, m, strlen(m)) != 0)
			hbt_fail(__FILE__, __LINE__, "event %d carries \"%.*s\", want \"%s\"", i,
				 (int)ev.meta_len, (const char *)ev.meta, m);
		CHECK(hb_id_equal(&ev.id, &id));
	}
	CHECK_EQ(hb_next_event(v2, &ev), 0);
	if (ev.type != HB_EVENT_OVERFLOW)
		hbt_fail(__FILE__, __LINE__, "event 16 is %s, want OVERFLOW",
			 it_event_name(ev.type));
	CHECK_EQ(ev.domain, 0);
	/* Exactly one. */
	CHECK_ERR(hb_next_event(v2, &ev), EAGAIN);
	IT_EXPECT_QUIET(v2, 300);

	/* The queue works again once drained. */
	IT_EXPORT(b, "after", 5, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.meta_len, 5);
	CHECK(memcmp(ev.meta, "after", 5) == 0);
	/* The export itself was never disturbed: it carries the latest metadata. */
	{
		struct hb_info info;

		IT_QUERY(v2, &id, &info);
		CHECK_EQ(info.meta_len, 5);
	}
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* The default queue holds at least 256 (API.md): 200 events are all delivered. */
TEST(event_queue_default_depth)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_id id;
	char m[16];
	int i;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	for (i = 0; i < 200; i++) {
		snprintf(m, sizeof(m), "%d", i);
		IT_EXPORT(b, m, strlen(m), &id);
	}
	for (i = 0; i < 200; i++) {
		IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
		snprintf(m, sizeof(m), "%d", i);
		CHECK_EQ(ev.meta_len, strlen(m));
		CHECK(memcmp(ev.meta, m, strlen(m)) == 0);
	}
	IT_EXPECT_QUIET(v2, 200);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* DOMAIN_GONE goes to the domains sharing a group with the gone one, and only to them. */
TEST(domain_gone)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1, *v2, *v2b, *v3;
	struct hb_event ev;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v3 = IT_CONNECT(hbt_addr_vm(&d, 3));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v2b = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(h);
	it_drain(v1);
	it_drain(v3);
	it_drain(v2);
	it_drain(v2b);

	/* vm2 (groups b, c) goes: vm1 (b) and vm3 (c) hear it, the host does not. */
	hb_disconnect(v2);
	hb_disconnect(v2b);
	IT_WAIT_EVENT(v1, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 2);
	IT_WAIT_EVENT(v3, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 2);
	IT_EXPECT_QUIET(h, 500);

	/* vm1 (groups a, b) goes: the host hears it, vm3 does not. */
	it_drain(v3);
	hb_disconnect(v1);
	IT_WAIT_EVENT(h, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 1);
	IT_EXPECT_QUIET(v3, 500);

	/* The host goes: nobody left shares group a. vm3 hears nothing. */
	hb_disconnect(h);
	IT_EXPECT_QUIET(v3, 300);
	hb_disconnect(v3);
	IT_STOP(&d);
}

/* Blocking calls dispatch while they wait: events that arrived meanwhile are queued, not lost,
 * and hb_next_event returns them without any hb_dispatch. */
TEST(events_queued_by_blocking_calls)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v1);
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, "e", 1, &id); /* EXPORTED is on its way to v2 before v2 asks anything */
	IT_QUERY(v2, &id, &info);  /* its reply comes after the event */
	CHECK_EQ(hb_next_event(v2, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	CHECK(hb_id_equal(&ev.id, &id));
	im = IT_IMPORT(v2, &id, 0); /* IMPORTED goes to v1 before v1's next reply */
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.importers, 1);
	CHECK_EQ(hb_next_event(v1, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_IMPORTED);
	CHECK_EQ(ev.domain, 2);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* The host is a domain like the others: its leaving is announced to group a. */
TEST(domain_gone_host)
{
	struct hbt_daemon d;
	struct hb_client *h, *h2, *v1, *v2;
	struct hb_event ev;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	h = IT_CONNECT(hbt_addr_host(&d));
	h2 = IT_CONNECT(hbt_addr_host(&d));
	it_drain(v1);
	it_drain(v2);
	hb_disconnect(h);
	IT_EXPECT_QUIET(v1, 300); /* h2 is still there */
	hb_disconnect(h2);
	IT_WAIT_EVENT(v1, HB_EVENT_DOMAIN_GONE, &ev);
	CHECK_EQ(ev.domain, 0);
	IT_EXPECT_QUIET(v2, 300); /* vm2 shares no group with the host */
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* The daemon's own queue (not the library's): a session that stops reading has its socket
 * fill up; then the daemon keeps event_queue events, drops newer ones, and sends one OVERFLOW
 * after the kept ones once the session reads again. */
TEST(daemon_queue_overflow_keeps_oldest)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *b;
	struct it_raw r;
	struct hb_id id;
	static uint8_t meta[1024];
	ServerMsg *s;
	uint32_t next = 0, n;
	bool overflow = false;
	int why, i;

	hbt_daemon_start(&d, "[limits]\nevent_queue = 16\n");
	hbt_raw_session(&r, hbt_path(&d, "vm2.sock"), HBP_ROLE_CLIENT); /* one that will not read */
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	b = IT_ALLOC(v1, 2, 4096, 0);
	for (i = 0; i < 2000; i++) {
		memcpy(meta, &i, sizeof(i));
		IT_EXPORT(b, meta, sizeof(meta), &id);
	}
	CHECK(IT_STAT(&d, "events_dropped") > 0);
	/* Now read: EXPORTED 0, 1, 2, ... without a gap, then OVERFLOW, then nothing. */
	while ((s = it_raw_recv(&r, 1000, &why)) != NULL) {
		CHECK_EQ(s->id, 0);
		CHECK_EQ(s->body_case, SERVER_MSG__BODY_EVENT);
		CHECK(!overflow);
		if (s->event->type == HB_EVENT_OVERFLOW) {
			overflow = true;
		} else {
			CHECK_EQ(s->event->type, HB_EVENT_EXPORTED);
			CHECK_EQ(s->event->meta.len, sizeof(meta));
			memcpy(&n, s->event->meta.data, sizeof(n));
			if (n != next)
				hbt_fail(__FILE__, __LINE__, "event for export %u after %u", n,
					 next);
			next++;
		}
		server_msg__free_unpacked(s, NULL);
	}
	CHECK_EQ(why, -1); /* quiet, not closed */
	CHECK(overflow);
	CHECK(next >= 16 && next < 2000);
	printf("delivered %u of 2000, then OVERFLOW\n", next);
	it_raw_close(&r);
	hb_buffer_free(b);
	hb_disconnect(v1);
	IT_STOP(&d);
}
