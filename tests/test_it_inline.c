/*
 * Small buffers described inline (PROTOCOL.md §3, BufferDesc): up to HBP_INLINE_REFS_MAX pages
 * take no directory page from the pool, for a library that announces HBP_FEATURE_INLINE_REFS;
 * a library from before it still gets directories, and is told in words why it cannot import
 * an inline buffer.
 */
#include "tests/it_common.h"

/* A host session by hand, announcing these features, attached to group a (host + vm1). */
static void raw_host(struct it_raw *r, const struct hbt_daemon *d, uint32_t features)
{
	ServerMsg *w;
	uint32_t group;

	it_raw_open(r, d->socket);
	w = it_raw_hello_features(r, HBP_ROLE_CLIENT, features);
	group = it_welcome_group(w, "a")->id;
	server_msg__free_unpacked(w, NULL);
	CHECK_EQ(hbt_raw_attach(r, group, 0), 0);
}

/* Alloc by hand; checks the descriptor's form and returns the buffer handle. */
static uint64_t raw_alloc(struct it_raw *r, uint64_t size, uint32_t want_depth)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Alloc a = ALLOC__INIT;
	ServerMsg *s;
	uint64_t h;

	a.peer = 1;
	a.size = size;
	IT_MSG(m, ALLOC, alloc, &a);
	s = IT_RAW_CALL(r, &m);
	CHECK_EQ(s->error, 0);
	CHECK_EQ(s->body_case, SERVER_MSG__BODY_ALLOC);
	CHECK_EQ(s->alloc->desc->depth, want_depth);
	CHECK_EQ(s->alloc->desc->n_refs, want_depth ? 0 : IT_PAGES(size));
	h = s->alloc->buffer;
	server_msg__free_unpacked(s, NULL);
	return h;
}

/* Up to 64 pages: the pages themselves and nothing more; 65: one directory page. The data
 * goes across byte-exact either way, and a 1-page buffer's import maps one page. */
TEST(small_buffers_take_no_directory_page)
{
	static const uint64_t sizes[] = {1, 4096, 10000, 64 * 4096, 64 * 4096 + 1, 65 * 4096};
	static const uint64_t pages[] = {1, 1, 3, 64, 65 + 1, 65 + 1};
	struct hbt_daemon d;
	struct hb_client *v1, *v2;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct hb_buffer *b = IT_ALLOC(v1, 2, sizes[i], 0);
		struct hb_import *im;
		struct hb_id id;

		CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), pages[i]);
		it_fill(b, 40 + i);
		IT_EXPORT(b, NULL, 0, &id);
		im = IT_IMPORT(v2, &id, 0);
		IT_CHECK_IMPORT(im, sizes[i], 40 + i);
		hb_import_release(im);
		hb_buffer_free(b);
		IT_CHECK_STAT(&d, "pool.b.pages_used", 0);
	}
	hb_disconnect(v2);
	hb_disconnect(v1);
	IT_STOP(&d);
}

/* A library that does not announce inline refs: its own buffers get a directory, and its
 * import of an inline buffer is refused (EPROTONOSUPPORT) with a reason naming the fix. */
TEST(older_library_gets_directories_and_a_reason)
{
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *b;
	struct it_raw old, cur;
	ClientMsg m = CLIENT_MSG__INIT;
	Import im = IMPORT__INIT;
	ServerMsg *s;
	struct hb_id id;
	uint64_t h;

	hbt_daemon_start(&d, NULL);
	raw_host(&old, &d, 0);
	raw_host(&cur, &d, HBP_FEATURE_INLINE_REFS);
	h = raw_alloc(&old, 4096, 1);
	CHECK_EQ(IT_STAT(&d, "pool.a.pages_used"), 2);
	CHECK_EQ(it_raw_free(&old, h), 0);
	h = raw_alloc(&cur, 4096, 0);
	CHECK_EQ(IT_STAT(&d, "pool.a.pages_used"), 1);
	CHECK_EQ(it_raw_free(&cur, h), 0);

	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	b = IT_ALLOC(v1, 0, 8192, 0);
	IT_EXPORT(b, NULL, 0, &id);
	im.hid.data = id.bytes;
	im.hid.len = 16;
	IT_MSG(m, IMPORT, import, &im);
	s = IT_RAW_CALL(&old, &m);
	CHECK_EQ(s->error, EPROTONOSUPPORT);
	CHECK(s->reason && strstr(s->reason, "inline") && strstr(s->reason, "libhyperbuf"));
	server_msg__free_unpacked(s, NULL);
	IT_CHECK_STAT(&d, "imports", 0);
	/* Unknown feature bits are a newer library's: ignored, the session works as today's. */
	it_raw_close(&cur);
	raw_host(&cur, &d, HBP_FEATURE_INLINE_REFS | 0x80000000u);
	s = IT_RAW_CALL(&cur, &m);
	CHECK_EQ(s->error, 0);
	CHECK_EQ(s->import->desc->depth, 0);
	CHECK_EQ(s->import->desc->n_refs, 2);
	server_msg__free_unpacked(s, NULL);
	it_raw_close(&cur);
	it_raw_close(&old);
	hb_buffer_free(b);
	hb_disconnect(v1);
	IT_CHECK_STAT(&d, "pages_used", 0);
	IT_STOP(&d);
}
