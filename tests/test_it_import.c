/*
 * Import and query (API.md "Import", "Query"): byte-exact content, read-only mappings that
 * fault on write, writable imports that share memory both ways, every ENOENT, mappings that
 * outlive the export and the exporter, metadata, every field of hb_query, and
 * imports_per_domain.
 */
#include "tests/it_common.h"

TEST(import_byte_exact)
{
	static const size_t sizes[] = {1, 3000, 4096, 4099, 100000, (4u << 20) + 17};
	struct hbt_daemon d;
	struct hb_client *v1, *v2, *h;
	struct hb_import *im;
	struct hb_buffer *b;
	struct hb_id id;
	size_t i;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* vm1 -> vm2 over group b, and vm1 -> host over group a. */
		b = IT_ALLOC(v1, 2, sizes[i], 0);
		it_fill(b, 1000 + i);
		IT_EXPORT(b, NULL, 0, &id);
		im = IT_IMPORT(v2, &id, 0);
		IT_CHECK_IMPORT(im, sizes[i], 1000 + i);
		hb_import_release(im);
		hb_buffer_free(b);

		b = IT_ALLOC(v1, 0, sizes[i], 0);
		it_fill(b, 2000 + i);
		IT_EXPORT(b, NULL, 0, &id);
		im = IT_IMPORT(h, &id, 0);
		IT_CHECK_IMPORT(im, sizes[i], 2000 + i);
		hb_import_release(im);
		hb_buffer_free(b);
	}
	/* The other way: the host exports to vm1. */
	b = IT_ALLOC(h, 1, 123457, 0);
	it_fill(b, 3);
	IT_EXPORT(b, NULL, 0, &id);
	im = IT_IMPORT(v1, &id, 0);
	IT_CHECK_IMPORT(im, 123457, 3);
	/* A later write by the exporter shows through: it is the same memory, not a copy. */
	memset(hb_buffer_data(b), 0x3c, 123457);
	CHECK(it_all_bytes(hb_import_data(im), 123457, 0x3c));
	hb_import_release(im);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	hb_disconnect(h);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

struct writer_arg {
	const char *addr;
	struct hb_id id;
	uint32_t flags;
	size_t size;
};

/* A child that imports read-only and writes: it must die of the fault. Exit codes below 100
 * mean it never got to write. */
static int write_readonly_child(void *p)
{
	struct writer_arg *a = p;
	struct hb_client *c = hb_connect(a->addr);
	struct hb_import *im;
	volatile uint8_t *m;
	int pfd[2];

	if (!c)
		return 10;
	im = hb_import(c, &a->id, a->flags);
	if (!im)
		return 11;
	m = hb_import_data(im);
	/* The kernel refuses to write into it on our behalf too. */
	if (pipe(pfd) != 0 || write(pfd[1], "zz", 2) != 2)
		return 12;
	errno = 0;
	if (read(pfd[0], (void *)(m + 1), 2) != -1 || errno != EFAULT)
		return 13;
	it_default_fault_signals();
	m[0] = 0xa5;
	m[a->size - 1] = 0xa5;
	return 0; /* the write went through: a failure */
}

TEST(import_readonly_faults)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b, *bw, *bh;
	struct hb_import *im;
	struct writer_arg arg;
	struct hb_event ev;
	int code;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	b = IT_ALLOC(v1, 2, 3 * 4096 + 5, 0);
	it_fill(b, 11);
	memset(&arg, 0, sizeof(arg));
	arg.addr = hbt_addr_vm(&d, 2);
	arg.size = 3 * 4096 + 5;
	IT_EXPORT(b, NULL, 0, &arg.id);
	it_drain(v1);
	code = hbt_wait_child(hbt_fork(write_readonly_child, &arg));
	if (!it_died_of_fault(code))
		hbt_fail(__FILE__, __LINE__,
			 "writer child: exit code %d, want death by SIGSEGV/SIGBUS", code);
	CHECK_EQ(tool_pattern_check(hb_buffer_data(b), 3 * 4096 + 5, 11), 3 * 4096 + 5);
	/* The dead child's import was released. */
	IT_WAIT_EVENT(v1, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &arg.id));
	/* Another importer still reads the original. */
	im = IT_IMPORT(v2, &arg.id, 0);
	IT_CHECK_IMPORT(im, 3 * 4096 + 5, 11);
	hb_import_release(im);

	/* A peer-writable buffer imported without HB_IMPORT_WRITE is still read-only. */
	bw = IT_ALLOC(v1, 2, 4096, HB_BUFFER_PEER_WRITABLE);
	it_fill(bw, 12);
	IT_EXPORT(bw, NULL, 0, &arg.id);
	arg.size = 4096;
	code = hbt_wait_child(hbt_fork(write_readonly_child, &arg));
	if (!it_died_of_fault(code))
		hbt_fail(__FILE__, __LINE__,
			 "writer child: exit code %d, want death by SIGSEGV/SIGBUS", code);
	CHECK_EQ(tool_pattern_check(hb_buffer_data(bw), 4096, 12), 4096);

	/* A host importer (the pool by fd passing, not ivshmem) is held to the same rule. */
	bh = IT_ALLOC(v1, 0, 2 * 4096, 0);
	it_fill(bh, 13);
	IT_EXPORT(bh, NULL, 0, &arg.id);
	arg.addr = hbt_addr_host(&d);
	arg.size = 2 * 4096;
	code = hbt_wait_child(hbt_fork(write_readonly_child, &arg));
	if (!it_died_of_fault(code))
		hbt_fail(__FILE__, __LINE__, "host writer child: exit code %d, want SIGSEGV/SIGBUS",
			 code);
	CHECK_EQ(tool_pattern_check(hb_buffer_data(bh), 2 * 4096, 13), 2 * 4096);

	hb_buffer_free(b);
	hb_buffer_free(bw);
	hb_buffer_free(bh);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(import_write)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *ro, *rw;
	struct hb_import *im, *im2;
	struct hb_info info;
	struct hb_id id_ro, id_rw;

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	ro = IT_ALLOC(v1, 2, 20000, 0);
	rw = IT_ALLOC(v1, 2, 20000, HB_BUFFER_PEER_WRITABLE);
	IT_EXPORT(ro, NULL, 0, &id_ro);
	IT_EXPORT(rw, NULL, 0, &id_rw);

	CHECK_ERR(hb_import(v2, &id_ro, HB_IMPORT_WRITE), EACCES);
	IT_QUERY(v2, &id_ro, &info);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(info.flags & HB_INFO_PEER_WRITABLE, 0);

	im = IT_IMPORT(v2, &id_rw, HB_IMPORT_WRITE);
	IT_QUERY(v2, &id_rw, &info);
	CHECK(info.flags & HB_INFO_PEER_WRITABLE);
	CHECK_EQ(info.importers, 1);
	/* The importer writes; the exporter sees it, no re-export needed. */
	tool_pattern_fill(hb_import_data(im), 20000, 31);
	CHECK_EQ(tool_pattern_check(hb_buffer_data(rw), 20000, 31), 20000);
	/* And the other way round. */
	it_fill(rw, 32);
	IT_CHECK_IMPORT(im, 20000, 32);
	/* A read-only import of the same buffer sees both. */
	im2 = IT_IMPORT(v2, &id_rw, 0);
	IT_CHECK_IMPORT(im2, 20000, 32);
	memset(hb_import_data(im), 0x11, 20000);
	CHECK(it_all_bytes(hb_import_data(im2), 20000, 0x11));
	hb_import_release(im);
	hb_import_release(im2);
	hb_buffer_free(ro);
	hb_buffer_free(rw);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(import_enoent)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1, *v2, *v3;
	struct hb_buffer *b, *b2;
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id, id2, forged;
	uint64_t seed = 7;
	int i, bit;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v3 = IT_CONNECT(hbt_addr_vm(&d, 3));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, NULL, 0, &id);

	/* Random ids. */
	for (i = 0; i < 50; i++) {
		it_random_id(&forged, &seed);
		CHECK_ERR(hb_import(v2, &forged, 0), ENOENT);
		CHECK_ERR(hb_query(v2, &forged, &info), ENOENT);
	}
	memset(&forged, 0, sizeof(forged));
	CHECK_ERR(hb_import(v2, &forged, 0), ENOENT);
	memset(&forged, 0xff, sizeof(forged));
	CHECK_ERR(hb_import(v2, &forged, 0), ENOENT);
	/* One bit off anywhere in the 128: the serial or the random part. */
	for (bit = 0; bit < 128; bit += 3) {
		forged = id;
		forged.bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		CHECK_ERR(hb_import(v2, &forged, 0), ENOENT);
	}
	/* Not exported to this domain: vm3 and the host may not import a vm1 -> vm2 buffer,
	 * nor may vm1 import its own export. */
	CHECK_ERR(hb_import(v3, &id, 0), ENOENT);
	CHECK_ERR(hb_import(h, &id, 0), ENOENT);
	CHECK_ERR(hb_import(v1, &id, 0), ENOENT);
	CHECK_ERR(hb_import(v3, &id, HB_IMPORT_WRITE), ENOENT);
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.importers, 0);
	/* Unexported. */
	CHECK_EQ(hb_unexport(v1, &id, 0), 0);
	IT_WAIT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	/* Another buffer's export does not bring the old id back. */
	b2 = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b2, NULL, 0, &id2);
	CHECK(!hb_id_equal(&id, &id2));
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	CHECK_EQ(IT_STAT(&d, "imports"), 0);
	hb_buffer_free(b);
	hb_buffer_free(b2);
	hb_disconnect(h);
	hb_disconnect(v1);
	hb_disconnect(v2);
	hb_disconnect(v3);
	IT_STOP(&d);
}

TEST(import_survives_unexport_and_free)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;
	uint64_t pages = it_buffer_pages(50000);

	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 50000, 0);
	it_fill(b, 21);
	IT_EXPORT(b, NULL, 0, &id);
	im = IT_IMPORT(v2, &id, 0);
	CHECK_EQ(hb_unexport(v1, &id, 0), 0);
	IT_WAIT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	IT_CHECK_IMPORT(im, 50000, 21);
	hb_buffer_free(b);
	/* The pages stay while imported. */
	it_sleep_ms(200);
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), pages);
	IT_CHECK_IMPORT(im, 50000, 21);
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	hb_import_release(im);
	IT_CHECK_STAT(&d, "pool.b.pages_used", 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

struct exporter_arg {
	const char *addr;
	int pipe_w; /* the child writes its hid here, then waits to be killed */
	uint32_t peer;
	size_t size;
	uint64_t seed;
};

static int exporter_child(void *p)
{
	struct exporter_arg *a = p;
	struct hb_client *c = hb_connect(a->addr);
	struct hb_buffer *b;
	struct hb_id id;

	if (!c)
		return 10;
	b = hb_buffer_alloc(c, a->peer, a->size, 0);
	if (!b)
		return 11;
	tool_pattern_fill(hb_buffer_data(b), a->size, a->seed);
	if (hb_export(b, NULL, 0, 0, &id) != 0)
		return 12;
	it_pipe_write(a->pipe_w, &id, sizeof(id));
	for (;;)
		pause();
}

TEST(import_survives_exporter_death)
{
	struct hbt_daemon d;
	struct hb_client *v2;
	struct hb_import *im;
	struct exporter_arg arg;
	struct hb_event ev;
	struct hb_id id;
	int pfd[2], code;
	pid_t pid;

	hbt_daemon_start(&d, NULL);
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	CHECK(pipe(pfd) == 0);
	arg = (struct exporter_arg){hbt_addr_vm(&d, 1), pfd[1], 2, 3 * 4096, 55};
	pid = hbt_fork(exporter_child, &arg);
	CHECK_EQ(it_pipe_read(pfd[0], &id, sizeof(id), IT_WAIT_MS), 0);
	im = IT_IMPORT(v2, &id, 0);
	IT_CHECK_IMPORT(im, 3 * 4096, 55);
	it_drain(v2);
	CHECK(kill(pid, SIGKILL) == 0);
	code = hbt_wait_child(pid);
	CHECK_EQ(code, 128 + SIGKILL);
	IT_WAIT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	IT_CHECK_IMPORT(im, 3 * 4096, 55);
	CHECK_ERR(hb_import(v2, &id, 0), ENOENT);
	CHECK_EQ(IT_STAT(&d, "pool.b.pages_used"), it_buffer_pages(3 * 4096));
	hb_import_release(im);
	IT_CHECK_STAT(&d, "pages_used", 0);
	close(pfd[0]);
	close(pfd[1]);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(import_metadata_roundtrip)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_import *im;
	uint8_t meta[1024], got[1100];
	struct hb_id id;

	for (int i = 0; i < 1024; i++)
		meta[i] = (uint8_t)(255 - i % 256); /* zeros inside, binary */
	hbt_daemon_start(&d, NULL);
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	b = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b, meta, sizeof(meta), &id);
	im = IT_IMPORT(v2, &id, 0);
	memset(got, 0xcc, sizeof(got));
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 1024);
	CHECK(memcmp(got, meta, 1024) == 0);
	CHECK(it_all_bytes(got + 1024, sizeof(got) - 1024, 0xcc));
	/* A short buffer gets a prefix; the full length is returned. */
	memset(got, 0xcc, sizeof(got));
	CHECK_EQ(hb_import_metadata(im, got, 10), 1024);
	CHECK(memcmp(got, meta, 10) == 0);
	CHECK(it_all_bytes(got + 10, sizeof(got) - 10, 0xcc));
	CHECK_EQ(hb_import_metadata(im, NULL, 0), 1024);
	/* The metadata seen at import time stays, whatever is re-exported later. */
	IT_EXPORT(b, "new", 3, &id);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 1024);
	CHECK(memcmp(got, meta, 1024) == 0);
	hb_import_release(im);
	im = IT_IMPORT(v2, &id, 0);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 3);
	CHECK(memcmp(got, "new", 3) == 0);
	hb_import_release(im);
	/* No metadata at all. */
	IT_EXPORT(b, NULL, 0, &id);
	im = IT_IMPORT(v2, &id, 0);
	CHECK_EQ(hb_import_metadata(im, got, sizeof(got)), 0);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(query_fields_and_access)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1, *v2, *v2b, *v3;
	struct hb_buffer *b;
	struct hb_import *im[3];
	struct hb_event ev;
	struct hb_info info;
	struct hb_id id;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v2b = IT_CONNECT(hbt_addr_vm(&d, 2));
	v3 = IT_CONNECT(hbt_addr_vm(&d, 3));
	it_drain(v2);
	b = IT_ALLOC(v1, 2, 3 * 4096 + 1, HB_BUFFER_PEER_WRITABLE);
	IT_EXPORT(b, "meta!", 5, &id);

	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.exporter, 1);
	CHECK_EQ(info.peer, 2);
	CHECK_EQ(info.size, 3 * 4096 + 1);
	CHECK_EQ(info.pages, 4);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE);
	CHECK_EQ(info.meta_len, 5);
	CHECK(memcmp(info.meta, "meta!", 5) == 0);

	im[0] = IT_IMPORT(v2, &id, 0);
	im[1] = IT_IMPORT(v2, &id, HB_IMPORT_WRITE);
	im[2] = IT_IMPORT(v2b, &id, 0);
	IT_QUERY(v2, &id, &info); /* the peer may query too, from any of its sessions */
	CHECK_EQ(info.exporter, 1);
	CHECK_EQ(info.peer, 2);
	CHECK_EQ(info.size, 3 * 4096 + 1);
	CHECK_EQ(info.pages, 4);
	CHECK_EQ(info.importers, 3);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE);
	IT_QUERY(v2b, &id, &info);
	CHECK_EQ(info.importers, 3);
	/* Anybody else: ENOENT, exactly as for an unknown id. */
	CHECK_ERR(hb_query(v3, &id, &info), ENOENT);
	CHECK_ERR(hb_query(h, &id, &info), ENOENT);

	hb_import_release(im[1]);
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.importers, 2);

	CHECK_EQ(hb_unexport(v1, &id, 60000), 0);
	IT_QUERY(v2, &id, &info);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE | HB_INFO_UNEXPORT_PENDING);
	IT_EXPORT(b, "meta!", 5, &id); /* cancel */
	CHECK_EQ(hb_unexport(v1, &id, 0), 0);
	IT_WAIT_EVENT(v2, HB_EVENT_UNEXPORTED, &ev);
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE | HB_INFO_UNEXPORTED);
	CHECK_EQ(info.importers, 2);
	IT_QUERY(v2, &id, &info);
	CHECK_EQ(info.flags, HB_INFO_PEER_WRITABLE | HB_INFO_UNEXPORTED);
	CHECK_ERR(hb_query(v3, &id, &info), ENOENT);
	hb_import_release(im[0]);
	hb_import_release(im[2]);
	IT_QUERY(v1, &id, &info);
	CHECK_EQ(info.importers, 0);
	hb_buffer_free(b);
	hb_disconnect(h);
	hb_disconnect(v1);
	hb_disconnect(v2);
	hb_disconnect(v2b);
	hb_disconnect(v3);
	IT_STOP(&d);
}

/* imports_per_domain: counted per import and per domain (not per session), EDQUOT beyond it;
 * a release makes room again, and another domain has a quota of its own. */
TEST(imports_per_domain_edquot)
{
	enum { LIMIT = 5 };
	struct hbt_daemon d;
	struct hb_client *v1, *v2, *v2b;
	struct hb_buffer *b[LIMIT + 1], *back;
	struct hb_import *im[LIMIT + 1], *extra;
	struct hb_id id[LIMIT + 1], back_id;
	int i;

	hbt_daemon_start(&d, "[limits]\nimports_per_domain = 5\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v2b = IT_CONNECT(hbt_addr_vm(&d, 2));
	for (i = 0; i <= LIMIT; i++) {
		b[i] = IT_ALLOC(v1, 2, 4096 + (size_t)i, 0);
		it_fill(b[i], 0x1000 + (uint64_t)i);
		IT_EXPORT(b[i], NULL, 0, &id[i]);
	}
	for (i = 0; i < LIMIT; i++)
		im[i] = IT_IMPORT(v2, &id[i], 0);
	CHECK_ERR(hb_import(v2, &id[LIMIT], 0), EDQUOT);
	CHECK_ERR(hb_import(v2, &id[0], 0), EDQUOT);      /* counted per import, not per buffer */
	CHECK_ERR(hb_import(v2b, &id[LIMIT], 0), EDQUOT); /* per domain, not per session */
	IT_CHECK_STAT(&d, "imports", LIMIT);
	/* Another domain has a quota of its own. */
	back = IT_ALLOC(v2, 1, 4096, 0);
	IT_EXPORT(back, NULL, 0, &back_id);
	extra = IT_IMPORT(v1, &back_id, 0);

	/* One released: importing works again (the release is ordered before the import). */
	hb_import_release(im[0]);
	im[LIMIT] = IT_IMPORT(v2, &id[LIMIT], 0);
	IT_CHECK_IMPORT(im[LIMIT], 4096 + LIMIT, 0x1000 + LIMIT);
	CHECK_ERR(hb_import(v2b, &id[0], 0), EDQUOT);
	for (i = 1; i <= LIMIT; i++)
		hb_import_release(im[i]);
	hb_import_release(extra);
	for (i = 0; i <= LIMIT; i++)
		hb_buffer_free(b[i]);
	hb_buffer_free(back);
	IT_CHECK_STAT(&d, "imports", 0);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	hb_disconnect(v2b);
	IT_STOP(&d);
}
