/*
 * The four modes of hyper_dmabuf's test app (research/hyper_dmabuf.md §7) as emulated VMs,
 * and the derived cases not covered by the other suites.
 *   exp          vm1 exports a 1920x1080x4 image (2025 pages: a depth-2 directory) holding a
 *                counting pattern (32-bit word i = i), with no metadata
 *   imp          vm2 imports it by the hid's text form and checks every word
 *   corrupt      vm2 memsets its read-only import to 0xA5: the write faults and the exporter
 *                still reads "content not changed"
 *   false_ioctl  2000 rounds of random hids, domains, sizes and flags through every call:
 *                nothing is exported, imported or unexported, nothing leaks
 */
#include "tests/it_common.h"

#define IMG_W     1920u
#define IMG_H     1080u
#define IMG_SIZE  ((size_t)IMG_W * IMG_H * 4u) /* 8294400 bytes */
#define IMG_PAGES 2025u

static void fill_counting(void *p)
{
	uint32_t *w = p;
	size_t i;

	for (i = 0; i < IMG_SIZE / 4; i++)
		w[i] = (uint32_t)i;
}

/* Index of the first word that is not its index, or -1. */
static long check_counting(const void *p)
{
	const uint32_t *w = p;
	size_t i;

	for (i = 0; i < IMG_SIZE / 4; i++) {
		if (w[i] != (uint32_t)i)
			return (long)i;
	}
	return -1;
}

struct imp_arg {
	const char *addr;
	char hid_text[33]; /* as passed on a command line */
	bool corrupt;
};

/* imp and corrupt: the importer side, in its own process like the app. */
static int importer_main(void *p)
{
	struct imp_arg *a = p;
	struct hb_client *c;
	struct hb_import *im;
	struct hb_id id;
	long bad;

	if (hb_id_parse(a->hid_text, &id) != 0)
		return 10;
	c = hb_connect(a->addr);
	if (!c)
		return 11;
	im = hb_import(c, &id, 0);
	if (!im)
		return 12;
	if (hb_import_size(im) != IMG_SIZE)
		return 13;
	if (a->corrupt) {
		it_default_fault_signals();
		memset(hb_import_data(im), 0xa5, IMG_SIZE);
		return 0; /* the memset went through: a failure, checked by the parent */
	}
	bad = check_counting(hb_import_data(im));
	if (bad >= 0) {
		fprintf(stderr, "imp: word %ld is %u\n", bad,
			((const uint32_t *)hb_import_data(im))[bad]);
		return 14;
	}
	hb_import_release(im);
	hb_disconnect(c);
	return 0;
}

TEST(hdm_exp_imp_corrupt)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *img;
	struct hb_event ev;
	struct hb_info info;
	struct imp_arg arg;
	struct hb_id id;
	int code;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);

	/* exp */
	img = IT_ALLOC(v1, 2, IMG_SIZE, 0);
	fill_counting(hb_buffer_data(img));
	IT_EXPORT(img, NULL, 0, &id);
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.size, IMG_SIZE);
	CHECK_EQ(ev.meta_len, 0);
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.pages, IMG_PAGES);
	CHECK_EQ(info.size, IMG_SIZE);
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), IMG_PAGES + 3); /* root + 2 level-1 pages */

	/* imp, from the hid's text, in another process */
	memset(&arg, 0, sizeof(arg));
	arg.addr = hbt_addr_vm(&d, 2);
	CHECK_EQ(hb_id_format(&id, arg.hid_text), 0);
	code = hbt_wait_child(hbt_fork(importer_main, &arg));
	CHECK_EQ(code, 0);

	/* corrupt */
	arg.corrupt = true;
	code = hbt_wait_child(hbt_fork(importer_main, &arg));
	if (!it_died_of_fault(code))
		hbt_fail(__FILE__, __LINE__, "corrupt: exit code %d, want death by SIGSEGV/SIGBUS",
			 code);

	/* The exporter's verification: "Buffer content not changed". */
	CHECK_EQ(check_counting(hb_buffer_data(img)), -1);
	/* And an honest importer agrees. */
	arg.corrupt = false;
	CHECK_EQ(hbt_wait_child(hbt_fork(importer_main, &arg)), 0);

	/* Closing the exporter unexports (delay 0). */
	it_drain(v2);
	hb_disconnect(v1);
	IT_WAIT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	hb_disconnect(v2);
	IT_STOP(&d);
}

static const char *const stat_keys[] = {"buffers",    "exports",      "imports",
					"pages_used", "bytes_mapped", "sessions"};
#define N_STAT_KEYS (sizeof(stat_keys) / sizeof(stat_keys[0]))

TEST(hdm_false_ioctl)
{
	struct hbt_daemon d;
	struct hb_client *c[4];
	struct hb_buffer *legit;
	struct hb_import *legit_im;
	struct hb_info info;
	struct hb_event ev;
	struct hb_id legit_id, id;
	long long before[N_STAT_KEYS];
	uint64_t seed = 0x5eed0000u + (uint64_t)time(NULL) % 1000, start_seed = seed;
	size_t k;
	int i;

	hbt_daemon_start(&d, NULL);
	c[0] = IT_CONNECT(hbt_addr_host(&d));
	c[1] = IT_CONNECT(hbt_addr_vm(&d, 1));
	c[2] = IT_CONNECT(hbt_addr_vm(&d, 2));
	c[3] = IT_CONNECT(hbt_addr_vm(&d, 3));
	/* One real share that the noise must not touch. */
	legit = IT_ALLOC(c[2], 1, 12345, 0);
	it_fill(legit, 9);
	IT_EXPORT(legit, "legit", 5, &legit_id);
	legit_im = IT_IMPORT(c[1], &legit_id, 0);
	for (i = 0; i < 4; i++)
		it_drain(c[i]);
	for (k = 0; k < N_STAT_KEYS; k++)
		before[k] = IT_STAT(&d, stat_keys[k]);

	printf("seed %llu\n", (unsigned long long)start_seed);
	for (i = 0; i < 2000; i++) {
		struct hb_client *cl = c[i % 4];
		uint64_t r = it_rand(&seed);
		uint32_t dom = r % 4 == 0 ? (uint32_t)(r >> 8) % 6 : (uint32_t)(r >> 32);
		size_t size = (r >> 2) % 3 == 0 ? (size_t)it_rand(&seed)
						: (size_t)(it_rand(&seed) % (256u << 20));
		struct hb_buffer *b;

		/* "TX_CH_SETUP/EXPORT_REMOTE": a buffer for a random domain and size. Whatever
		 * succeeds (a few do) is freed unexported. */
		b = hb_buffer_alloc(cl, dom, size, (uint32_t)it_rand(&seed) & 1u);
		if (b)
			hb_buffer_free(b);
		else
			CHECK(errno == EINVAL || errno == EPERM || errno == ENODEV ||
			      errno == ENOSPC || errno == EDQUOT || errno == EFBIG ||
			      errno == ENOMEM);

		/* "EXPORT_FD", "UNEXPORT", "QUERY" with random hids; every other one keeps the
		 * real hid's serial and forges the rest. */
		it_random_id(&id, &seed);
		if (i % 2)
			memcpy(id.bytes, legit_id.bytes, 4);
		errno = 0;
		CHECK(hb_import(cl, &id, (uint32_t)(it_rand(&seed) & 1u)) == NULL);
		CHECK(errno == ENOENT);
		CHECK_ERR(hb_unexport(cl, &id, 100), ENOENT);
		CHECK_ERR(hb_query(cl, &id, &info), ENOENT);
	}

	for (k = 0; k < N_STAT_KEYS; k++) {
		long long now = it_wait_stat(&d, stat_keys[k], before[k]);

		if (now != before[k])
			hbt_fail(__FILE__, __LINE__, "seed %llu: %s %lld, was %lld",
				 (unsigned long long)start_seed, stat_keys[k], now, before[k]);
	}
	/* Nobody heard of any export, import or unexport. */
	for (i = 0; i < 4; i++) {
		while (IT_NEXT_EVENT(c[i], &ev, 100) == 0)
			hbt_fail(__FILE__, __LINE__, "seed %llu: client %d got %s",
				 (unsigned long long)start_seed, i, it_event_name(ev.type));
	}
	IT_QUERY(c[2], &legit_id, &info);
	CHECK_EQ(info.importers, 1);
	CHECK_EQ(info.flags, 0);
	CHECK_EQ(info.meta_len, 5);
	IT_CHECK_IMPORT(legit_im, 12345, 9);
	CHECK(IT_STAT(&d, "errors_request") >= 2000); /* the imports, at least, ask the daemon */
	CHECK_EQ(IT_STAT(&d, "errors_protocol"), 0);
	hb_import_release(legit_im);
	hb_buffer_free(legit);
	for (i = 0; i < 4; i++)
		hb_disconnect(c[i]);
	IT_STOP(&d);
}

/* hyper_dmabuf fails the 1001st export; we take exports_per_domain (4096 by default). */
TEST(hdm_1001_exports)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	static struct hb_buffer *b[1001];
	static struct hb_id id[1001];
	struct hb_import *im;
	int i;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i < 1001; i++) {
		b[i] = IT_ALLOC(v1, 2, 64, 0);
		memcpy(hb_buffer_data(b[i]), &i, sizeof(i));
		IT_EXPORT(b[i], NULL, 0, &id[i]);
	}
	CHECK_EQ(IT_STAT(&d, "exports"), 1001);
	for (i = 0; i < 1001; i += 100) {
		int got;

		im = IT_IMPORT(v2, &id[i], 0);
		memcpy(&got, hb_import_data(im), sizeof(got));
		CHECK_EQ(got, i);
		hb_import_release(im);
	}
	im = IT_IMPORT(v2, &id[1000], 0);
	hb_import_release(im);
	for (i = 0; i < 1001; i++)
		hb_buffer_free(b[i]);
	IT_CHECK_STAT(&d, "exports", 0);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* The same content shared with two domains: two buffers, two hids, each for its peer only.
 * And metadata well over hyper_dmabuf's 192 bytes arrives whole. */
TEST(hdm_one_hid_per_peer_and_long_metadata)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1, *v2;
	struct hb_buffer *to_v2, *to_host;
	struct hb_import *im;
	struct hb_event ev;
	uint8_t meta[1000], got[1000];
	struct hb_id id_v2, id_host;
	int i;

	for (i = 0; i < 1000; i++)
		meta[i] = (uint8_t)(i * 13);
	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(h);
	it_drain(v2);
	to_v2 = IT_ALLOC(v1, 2, 5000, 0);
	to_host = IT_ALLOC(v1, 0, 5000, 0);
	it_fill(to_v2, 4);
	it_fill(to_host, 4);
	IT_EXPORT(to_v2, meta, sizeof(meta), &id_v2);
	IT_EXPORT(to_host, meta, sizeof(meta), &id_host);
	CHECK(!hb_id_equal(&id_v2, &id_host));
	IT_EXPECT_EVENT(v2, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id_v2));
	CHECK_EQ(ev.meta_len, sizeof(meta));
	CHECK(memcmp(ev.meta, meta, sizeof(meta)) == 0);
	IT_EXPECT_EVENT(h, HB_EVENT_EXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id_host));
	CHECK_ERR(hb_import(v2, &id_host, 0), ENOENT);
	CHECK_ERR(hb_import(h, &id_v2, 0), ENOENT);
	im = IT_IMPORT(h, &id_host, 0);
	IT_CHECK_IMPORT(im, 5000, 4);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), sizeof(meta));
	CHECK(memcmp(got, meta, sizeof(meta)) == 0);
	hb_import_release(im);
	hb_buffer_free(to_v2);
	hb_buffer_free(to_host);
	hb_disconnect(h);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}
