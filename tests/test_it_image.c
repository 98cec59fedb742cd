/*
 * Image descriptions through the real daemon (hyperbuf.h, "Images"): a frame described by its
 * producer reaches the consumer's event and import intact, with the producer's own bytes after
 * it; a description a hostile peer made up is EBADMSG on receipt, never trusted; an app's own
 * blob is ENOMSG and still flows; `hyperbufctl exports` shows the frame as "1920x1080 XR24".
 */
#include "tests/it_common.h"

#define XR24 0x34325258u
#define NV12 0x3231564eu

struct pair {
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
};

static void pair_open(struct pair *p)
{
	/* The smallest meta_max a daemon may have: the image cases below reach past it. */
	hbt_daemon_start(&p->d, "[limits]\nmeta_max = 1024\n");
	p->v1 = IT_CONNECT(hbt_addr_vm(&p->d, 1));
	p->v2 = IT_CONNECT(hbt_addr_vm(&p->d, 2));
}

static void pair_close(struct pair *p)
{
	it_drain(p->v1);
	it_drain(p->v2);
	hb_disconnect(p->v1);
	hb_disconnect(p->v2);
	IT_STOP(&p->d);
}

TEST(image_reaches_event_and_import)
{
	struct pair p;
	struct hb_image img, got;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;
	uint8_t meta[HB_META_MAX];
	size_t size;
	char out[4096], name[5];

	pair_open(&p);
	size = hb_image_init(&img, NV12, 1917, 1079, 64);
	CHECK_EQ(size, 1920u * 1079 + 1920u * 540);
	img.pts = 40000000;
	img.duration = 40000000;
	img.sequence = 12;
	img.color = (struct hb_image_color){HB_COLOR_RANGE_LIMITED, 1, 1, 1};
	b = IT_ALLOC(p.v1, 2, size, 0);
	CHECK_EQ(hb_export_image(b, &img, "tail", 4, &id), 0);
	IT_WAIT_EVENT(p.v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(hb_event_image(&ev, &got), 0);
	CHECK(memcmp(&img, &got, sizeof(img)) == 0);
	/* The producer's own bytes follow the description. */
	CHECK_EQ(ev.meta_len, HB_IMAGE_WIRE_SIZE + 4);
	CHECK(memcmp(ev.meta + HB_IMAGE_WIRE_SIZE, "tail", 4) == 0);
	CHECK_EQ(hb_image_decode(ev.meta, ev.meta_len, ev.size, &got), HB_IMAGE_WIRE_SIZE);
	im = IT_IMPORT(p.v2, &id, 0);
	CHECK_EQ(hb_import_image(im, &got), 0);
	CHECK(memcmp(&img, &got, sizeof(img)) == 0);
	CHECK(strcmp(hb_image_format_name(got.format, name), "NV12") == 0);
	CHECK_EQ(hb_import_metadata(im, meta, sizeof(meta)), HB_IMAGE_WIRE_SIZE + 4);

	/* hyperbufctl shows it; the --json form too. */
	CHECK_EQ(hbt_ctl(&p.d, out, sizeof(out), "exports"), 0);
	CHECK(strstr(out, "IMAGE") && strstr(out, "1917x1079 NV12"));
	CHECK_EQ(hbt_ctl(&p.d, out, sizeof(out), "--json exports"), 0);
	CHECK(strstr(out, "\"image\":\"1917x1079 NV12\""));
	hb_import_release(im);
	hb_buffer_free(b);
	pair_close(&p);
}

TEST(image_1080p_shown_by_hyperbufctl)
{
	struct pair p;
	struct hb_image img;
	struct hb_buffer *b, *blob;
	struct hb_id id, id2;
	char out[4096];
	size_t size;

	pair_open(&p);
	size = hb_image_init(&img, XR24, 1920, 1080, 0);
	CHECK_EQ(size, 1920u * 1080 * 4);
	b = IT_ALLOC(p.v1, 2, size, 0);
	CHECK_EQ(hb_export_image(b, &img, NULL, 0, &id), 0);
	blob = IT_ALLOC(p.v1, 2, 4096, 0);
	IT_EXPORT(blob, "my own metadata", 15, &id2);
	CHECK_EQ(hbt_ctl(&p.d, out, sizeof(out), "exports"), 0);
	CHECK_EQ(hbt_count_substr(out, "1920x1080 XR24"), 1);
	hb_buffer_free(b);
	hb_buffer_free(blob);
	pair_close(&p);
}

/* The producer's own mistakes are caught before they leave. */
TEST(image_export_checks_own_description)
{
	struct pair p;
	struct hb_image img;
	struct hb_buffer *b;
	struct hb_id id;
	static uint8_t big[HB_META_MAX];

	pair_open(&p);
	CHECK(hb_image_init(&img, XR24, 64, 64, 0) == 64 * 64 * 4);
	b = IT_ALLOC(p.v1, 2, 64 * 64 * 4 - 1, 0);
	CHECK_ERR(hb_export_image(b, &img, NULL, 0, &id), EBADMSG);
	hb_buffer_free(b);
	b = IT_ALLOC(p.v1, 2, 64 * 64 * 4, 0);
	CHECK_ERR(hb_export_image(b, &img, big, HB_META_MAX - HB_IMAGE_WIRE_SIZE + 1, &id),
		  EMSGSIZE);
	/* Past the daemon's meta_max (1024) but within the library's limit: the daemon says so. */
	CHECK_ERR(hb_export_image(b, &img, big, 1024, &id), EMSGSIZE);
	img.flags = 0x80000000u;
	CHECK_ERR(hb_export_image(b, &img, NULL, 0, &id), EINVAL);
	CHECK_ERR(hb_image_init(&img, 0x20202020u, 64, 64, 0), EINVAL);
	hb_buffer_free(b);
	pair_close(&p);
}

/* A frame pool's re-export with HB_EXPORT_NOWAIT (hyperbufsink's frames): the same id at once,
 * no answer read, and the consumer sees every frame's description in order. The checks of
 * the description and of the flags come first. */
TEST(image_reexport_need_not_wait)
{
	struct hb_counters c0, c1;
	struct hb_image img, got;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_id id, again;
	struct pair p;
	uint64_t seq;

	pair_open(&p);
	CHECK(hb_image_init(&img, XR24, 64, 64, 0) == 64 * 64 * 4);
	b = IT_ALLOC(p.v1, 2, 64 * 64 * 4, 0);
	img.sequence = 1;
	CHECK_EQ(hb_export_image_flags(b, &img, "x", 1, 0, &id), 0);
	CHECK_EQ(hb_counters(p.v1, &c0), 0);
	for (seq = 2; seq <= 5; seq++) {
		img.sequence = seq;
		CHECK_EQ(hb_export_image_flags(b, &img, "x", 1, HB_EXPORT_NOWAIT, &again), 0);
		CHECK(hb_id_equal(&again, &id));
	}
	CHECK_EQ(hb_counters(p.v1, &c1), 0);
	CHECK_EQ(c1.frames_out - c0.frames_out, 4);
	CHECK_EQ(c1.frames_in - c0.frames_in, 0);
	for (seq = 1; seq <= 5; seq++) {
		IT_WAIT_EVENT(p.v2, HB_EVENT_EXPORTED, &ev);
		CHECK(hb_id_equal(&ev.id, &id));
		CHECK_EQ(hb_event_image(&ev, &got), 0);
		CHECK_EQ(got.sequence, seq);
		CHECK_EQ(ev.meta_len, HB_IMAGE_WIRE_SIZE + 1);
	}
	CHECK_ERR(hb_export_image_flags(b, &img, NULL, 0, 2, &again), EINVAL);
	img.width = 65;
	CHECK_ERR(hb_export_image_flags(b, &img, NULL, 0, HB_EXPORT_NOWAIT, &again), EBADMSG);
	IT_EXPECT_QUIET(p.v2, 100);
	hb_buffer_free(b);
	pair_close(&p);
}

/* A hostile producer writes the metadata by hand: every lie is EBADMSG at the consumer. */
TEST(image_hostile_descriptions_refused)
{
	struct pair p;
	struct hb_image img, got;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;
	uint8_t meta[HB_IMAGE_WIRE_SIZE];
	const size_t size = 256 * 64 * 4;

	pair_open(&p);
	CHECK(hb_image_init(&img, XR24, 256, 64, 0) == size);
	b = IT_ALLOC(p.v1, 2, size, 0);
	for (int lie = 0; lie < 5; lie++) {
		struct hb_image bad = img;

		if (lie == 0)
			bad.height = 65; /* one row past the end */
		else if (lie == 1)
			bad.planes[0].stride = 256 * 4 - 4; /* narrower than a row */
		else if (lie == 2)
			bad.planes[0].offset = UINT64_MAX - 4096; /* wraps */
		else if (lie == 3)
			bad.n_planes = 3;
		else
			bad.width = 0;
		/* hb_image_encode does not check against a buffer; hb_export_image would. */
		CHECK_EQ(hb_image_encode(&bad, meta, sizeof(meta)), sizeof(meta));
		IT_EXPORT(b, meta, sizeof(meta), &id);
		IT_WAIT_EVENT(p.v2, HB_EVENT_EXPORTED, &ev);
		CHECK_ERR(hb_event_image(&ev, &got), EBADMSG);
		im = IT_IMPORT(p.v2, &id, 0);
		CHECK_ERR(hb_import_image(im, &got), EBADMSG);
		hb_import_release(im);
	}
	/* An app's own blob is not a description, and flows as before. */
	IT_EXPORT(b, "blob", 4, &id);
	IT_WAIT_EVENT(p.v2, HB_EVENT_EXPORTED, &ev);
	CHECK_ERR(hb_event_image(&ev, &got), ENOMSG);
	CHECK_EQ(ev.meta_len, 4);
	hb_buffer_free(b);
	pair_close(&p);
}
