/*
 * Hostile framing (test_it_hostile, PROTOCOL.md §1, §2): frames by hand on this domain's own
 * stream to the daemon, the host's socket or a guest's port or vchan (conform.h,
 * cf_raw_open), in every domain at once. Each attack gets a dropped session, counted in
 * errors_protocol, or a clean answer; honest clients carry on (cf_hostile_everywhere).
 */
#include "tests/conform/raw.h"

/* Bad lengths after Hello, and as the very first bytes: the daemon decides on the header
 * alone (the payload is never sent). */
static void frame_length_attack(void)
{
	static const uint64_t lens[] = {0, HBP_FRAME_MAX + 1, 0xffffffffu, 0x80000000u};
	struct cf_raw r;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		cf_raw_session(&r);
		CHECK_EQ(cf_raw_send_frame(&r, NULL, 0, lens[i]), 0);
		CF_RAW_DROPPED(&r, NULL);
		cf_raw_start(&r);
		CHECK_EQ(cf_raw_send_frame(&r, NULL, 0, lens[i]), 0);
		CF_RAW_DROPPED(&r, NULL);
	}
}
CF_HOSTILE_CASE(frame_length_violations, frame_length_attack)

/* A process that leaves in the middle of a frame, or of a header: its session ends (a
 * socket's or a vchan's EOF; on a KVM port the next process's marker, which lands inside the
 * frame, PROTOCOL.md §1.1) and the next process of the domain is welcomed. */
static void truncated_attack(void)
{
	uint8_t junk[10] = {0x08, 0x01, 0x52, 0x12};
	struct cf_raw r;

	/* Leaving mid-frame is a protocol error where the daemon sees it (a socket's or a
	 * vchan's end); on a KVM port the next marker ends the session, which is none. */
	cf_hostile_uncounted();

	cf_raw_session(&r);
	CHECK_EQ(cf_raw_send_frame(&r, junk, sizeof(junk), 100), 0);
	cf_raw_drop(&r);
	cf_raw_session(&r);
	CF_RAW_ALIVE(&r);
	/* Half a header. */
	CHECK_EQ(cf_raw_send_all(&r, "\x10\x00", 2), 0);
	cf_raw_drop(&r);
	cf_raw_session(&r);
	CF_RAW_ALIVE(&r);
	cf_raw_stop(&r);
}
CF_HOSTILE_CASE(truncated_frame_then_eof, truncated_attack)

static void garbage_attack(void)
{
	static const struct {
		const char *bytes;
		size_t len;
	} bad[] = {
	    {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11}, /* a varint that never ends */
	    {"\x0f\x01\x02\x03", 4},                              /* wire type 7 */
	    {"\x08\x07\x52\x10\x0a\x10\x01", 7}, /* a field longer than the frame */
	    {"\x08\x07\x12\x05\x08", 5},         /* a truncated Hello */
	    {"\x08", 1},
	};
	struct cf_raw r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cf_raw_session(&r);
		CHECK_EQ(cf_raw_send_frame(&r, bad[i].bytes, bad[i].len, UINT64_MAX), 0);
		CF_RAW_DROPPED(&r, NULL);
	}
}
CF_HOSTILE_CASE(garbage_protobuf, garbage_attack)

/* A frame of exactly HBP_FRAME_MAX bytes is legal (an unknown field pads it out); one byte
 * more is a violation. */
static void frame_max_attack(void)
{
	uint8_t hid[16] = {7, 7, 7};
	struct cf_raw r;
	uint8_t *frame;
	size_t base, pad;
	ServerMsg *s;
	Query q;
	ClientMsg m;
	int why;

	cf_raw_session(&r);
	m = cf_raw_query_msg(&q, hid, 16);
	m.id = 77;
	base = client_msg__get_packed_size(&m);
	/* field 1000, wire type 2: tag 2 bytes, length 3 bytes, then pad bytes */
	pad = HBP_FRAME_MAX - base - 5;
	CHECK(pad >= (1u << 14) && pad < (1u << 21));
	frame = calloc(1, HBP_FRAME_MAX);
	CHECK(frame != NULL);
	client_msg__pack(&m, frame);
	frame[base] = 0xc2;
	frame[base + 1] = 0x3e;
	frame[base + 2] = (uint8_t)(0x80 | (pad & 0x7f));
	frame[base + 3] = (uint8_t)(0x80 | ((pad >> 7) & 0x7f));
	frame[base + 4] = (uint8_t)(pad >> 14);
	CHECK_EQ(cf_raw_send_frame(&r, frame, HBP_FRAME_MAX, UINT64_MAX), 0);
	s = cf_raw_recv(&r, CF_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 77);
	CHECK_EQ(s->error, ENOENT);
	server_msg__free_unpacked(s, NULL);
	r.next_id = 100;
	CF_RAW_ALIVE(&r);
	free(frame);
	CHECK_EQ(cf_raw_send_frame(&r, NULL, 0, HBP_FRAME_MAX + 1), 0);
	CF_RAW_DROPPED(&r, NULL);
}
CF_HOSTILE_CASE(frame_max_is_inclusive, frame_max_attack)

/* Frames split anywhere and frames batched together are the same stream: a Hello a byte at a
 * time, then 50 queries in one write get 50 replies, in order. */
static void pipelined_attack(void)
{
	uint8_t hid[16] = {3}, one[64], *all;
	size_t len = 0, n = 0;
	struct cf_raw r;
	ServerMsg *s;
	int why;

	cf_raw_start(&r);
	{
		ClientMsg hm = CLIENT_MSG__INIT;
		Hello hello = HELLO__INIT;

		hello.version = HBP_PROTOCOL_VERSION;
		CF_MSG(hm, HELLO, hello, &hello);
		hm.id = 1;
		cf_raw_put_frame(one, sizeof(one), &n, &hm);
		for (size_t i = 0; i < n; i++) {
			CHECK_EQ(cf_raw_send_all(&r, one + i, 1), 0);
			cf_sleep_ms(5); /* a byte per write, not a wait for anything */
		}
	}
	s = cf_raw_recv(&r, CF_WAIT_MS, &why);
	CHECK(s != NULL);
	CHECK_EQ(s->id, 1);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_WELCOME);
	server_msg__free_unpacked(s, NULL);
	all = malloc(50 * 64);
	CHECK(all != NULL);
	for (uint32_t i = 0; i < 50; i++) {
		Query q;
		ClientMsg m = cf_raw_query_msg(&q, hid, 16);

		m.id = 1000 + i;
		cf_raw_put_frame(all, 50 * 64, &len, &m);
	}
	CHECK_EQ(cf_raw_send_all(&r, all, len), 0);
	free(all);
	for (uint32_t i = 0; i < 50; i++) {
		s = cf_raw_recv(&r, CF_WAIT_MS, &why);
		CHECK(s != NULL);
		CHECK_EQ(s->id, 1000 + i);
		CHECK_EQ(s->error, ENOENT);
		server_msg__free_unpacked(s, NULL);
	}
	cf_raw_stop(&r);
}
CF_HOSTILE_CASE(pipelined_and_trickled_frames, pipelined_attack)
