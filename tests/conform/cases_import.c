/*
 * Conformance cases: imports (ported from test_it_import; docs/TESTING.md lists them). Written
 * once for every target (tests/conform/conform.h).
 */
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/conform/conform.h"

static bool all_bytes(const void *p, size_t len, uint8_t v)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++) {
		if (b[i] != v)
			return false;
	}
	return true;
}

static void query(struct hb_client *c, const struct hb_id *id, struct hb_info *info)
{
	memset(info, 0x5a, sizeof(*info));
	CHECK_EQ(hb_query(c, id, info), 0);
}

/* ---- import_write ---------------------------------------------------------------------------
 * A writable import of a read-only export is refused (EACCES); of a PEER_WRITABLE one it
 * shares memory both ways, no re-export; a read-only import of it sees both sides' writes. */
static void write_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *ro = CF_ALLOC(c, 2, 20000, 0);
	struct hb_buffer *rw = CF_ALLOC(c, 2, 20000, HB_BUFFER_PEER_WRITABLE);
	struct hb_id id;

	CF_EXPORT(ro, NULL, 0, &id);
	cf_put_id("ro", &id);
	CF_EXPORT(rw, NULL, 0, &id);
	cf_put_id("rw", &id);
	cf_get("written");
	CF_CHECK_PATTERN(hb_buffer_data(rw), 20000, 31);
	cf_fill(hb_buffer_data(rw), 20000, 32);
	cf_put("filled", "1");
	cf_barrier("done");
	hb_buffer_free(ro);
	hb_buffer_free(rw);
}

static void write_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im, *im2;
	struct hb_info info;
	struct hb_id ro, rw;

	cf_get_id("ro", &ro);
	cf_get_id("rw", &rw);
	CHECK_ERR(hb_import(c, &ro, HB_IMPORT_WRITE), EACCES);
	query(c, &ro, &info);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(info.flags & HB_INFO_PEER_WRITABLE, 0);
	im = CF_IMPORT(c, &rw, HB_IMPORT_WRITE);
	query(c, &rw, &info);
	CHECK(info.flags & HB_INFO_PEER_WRITABLE);
	CHECK_EQ(info.importers, 1);
	cf_fill(hb_import_data(im), 20000, 31);
	cf_put("written", "1");
	cf_get("filled");
	CF_CHECK_PATTERN(hb_import_data(im), 20000, 32);
	im2 = CF_IMPORT(c, &rw, 0);
	CF_CHECK_PATTERN(hb_import_data(im2), 20000, 32);
	memset(hb_import_data(im), 0x11, 20000);
	CHECK(all_bytes(hb_import_data(im2), 20000, 0x11));
	hb_import_release(im);
	hb_import_release(im2);
	cf_barrier("done");
}

CF_CASE(import_write, {1, write_vm1}, {2, write_vm2})

/* ---- import_enoent --------------------------------------------------------------------------
 * ENOENT for random ids, all-zero and all-one ids, an id one bit off anywhere; for a domain the
 * buffer is not exported to (the host, for vm1 -> vm2) and for the exporter itself; after an
 * unexport, whatever is exported next. (The original's vm3, in no group with vm1, is the host
 * here: the conformance topology has no such domain.) */
static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void enoent_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 4096, 0), *b2;
	struct hb_info info;
	struct hb_id id, id2;

	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	cf_get("probed");
	query(c, &id, &info);
	CHECK_EQ(info.importers, 0);
	CHECK_EQ(hb_unexport(c, &id, 0), 0);
	cf_put("unexported", "1");
	cf_get("saw-unexport");
	b2 = CF_ALLOC(c, 2, 4096, 0);
	CF_EXPORT(b2, NULL, 0, &id2);
	CHECK(!hb_id_equal(&id, &id2));
	cf_put("second", "1");
	cf_barrier("done");
	hb_buffer_free(b);
	hb_buffer_free(b2);
}

static void enoent_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_id id, forged;
	struct hb_info info;
	struct hb_event ev;
	uint64_t seed = 7;

	cf_get_id("id", &id);
	for (int i = 0; i < 50; i++) {
		uint64_t a = xorshift(&seed), b = xorshift(&seed);

		memcpy(forged.bytes, &a, 8);
		memcpy(forged.bytes + 8, &b, 8);
		CHECK_ERR(hb_import(c, &forged, 0), ENOENT);
		CHECK_ERR(hb_query(c, &forged, &info), ENOENT);
	}
	memset(&forged, 0, sizeof(forged));
	CHECK_ERR(hb_import(c, &forged, 0), ENOENT);
	memset(&forged, 0xff, sizeof(forged));
	CHECK_ERR(hb_import(c, &forged, 0), ENOENT);
	for (int bit = 0; bit < 128; bit += 3) {
		forged = id;
		forged.bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		CHECK_ERR(hb_import(c, &forged, 0), ENOENT);
	}
	cf_get("probed");
	cf_get("unexported");
	CF_WAIT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	cf_put("saw-unexport", "1");
	cf_get("second");
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	cf_barrier("done");
}

static void enoent_host(void)
{
	struct hb_client *c = cf_connect();
	struct hb_info info;
	struct hb_id id;

	cf_get_id("id", &id);
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	CHECK_ERR(hb_import(c, &id, HB_IMPORT_WRITE), ENOENT);
	CHECK_ERR(hb_query(c, &id, &info), ENOENT);
	cf_put("probed", "1");
	cf_barrier("done");
}

CF_CASE(import_enoent, {1, enoent_vm1}, {2, enoent_vm2}, {0, enoent_host})

/* ---- import_survives_unexport_and_free ------------------------------------------------------
 * An import keeps its content after the exporter unexports and frees the buffer; the id is
 * gone for new imports. (The pool's page count while imported is the runner's to see: the
 * case ends with the daemon back to no page used.) */
static void survive_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 50000, 0);
	struct hb_id id;

	cf_fill(hb_buffer_data(b), 50000, 21);
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	cf_get("imported");
	CHECK_EQ(hb_unexport(c, &id, 0), 0);
	hb_buffer_free(b);
	cf_put("freed", "1");
	cf_barrier("done");
}

static void survive_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;

	cf_get_id("id", &id);
	im = CF_IMPORT(c, &id, 0);
	cf_put("imported", "1");
	CF_WAIT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	cf_get("freed");
	CF_CHECK_PATTERN(hb_import_data(im), 50000, 21);
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	hb_import_release(im);
	cf_barrier("done");
}

CF_CASE(import_survives_unexport_and_free, {1, survive_vm1}, {2, survive_vm2})

/* ---- import_survives_exporter_death, as a disconnect ----------------------------------------
 * The exporter's client goes (hb_disconnect): the importer hears UNEXPORTED and keeps its
 * mapping and content. (The original SIGKILLs the exporter: in a KVM
 * guest a dead process's session lasts until the next process opens its port, docs/KVM.md, so
 * the death itself is not the same event on every target.) */
static void gone_vm1(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b;
	struct hb_id id;

	b = CF_ALLOC(c, 2, 1 << 20, 0);
	cf_fill(hb_buffer_data(b), 1 << 20, 77);
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("id", &id);
	cf_get("imported");
	/* The client goes with the role: what it exported is withdrawn. */
}

static void gone_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;

	cf_get_id("id", &id);
	im = CF_IMPORT(c, &id, 0);
	cf_put("imported", "1");
	CF_WAIT_EVENT(c, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	CF_CHECK_PATTERN(hb_import_data(im), 1 << 20, 77);
	CHECK_ERR(hb_import(c, &id, 0), ENOENT);
	hb_import_release(im);
}

CF_CASE(import_survives_exporter_disconnect, {1, gone_vm1}, {2, gone_vm2})

/* ---- import_readonly_faults -----------------------------------------------------------------
 * A read-only import is a read-only mapping: a write to it kills the writer (SIGSEGV or
 * SIGBUS), the kernel refuses to write into it on the process's behalf (EFAULT), and the
 * exporter's bytes are untouched; so for a peer-writable buffer imported without
 * HB_IMPORT_WRITE, and for the host, whose pool comes by fd passing rather than ivshmem. The
 * writer is a child of the role (it must die; the role must not). */
/* The sanitizers catch SIGSEGV (and may refuse a sigaction): the raw system call. */
static void default_fault_signals(void)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} ksa;

	memset(&ksa, 0, sizeof(ksa));
	ksa.handler = (void *)SIG_DFL;
	syscall(SYS_rt_sigaction, SIGSEGV, &ksa, NULL, sizeof(ksa.mask));
	syscall(SYS_rt_sigaction, SIGBUS, &ksa, NULL, sizeof(ksa.mask));
}

static void write_must_fault(struct hb_import *im)
{
	volatile uint8_t *m = hb_import_data(im);
	size_t size = hb_import_size(im);
	int pfd[2], status;
	pid_t pid;

	CHECK_EQ(pipe(pfd), 0);
	CHECK_EQ(write(pfd[1], "zz", 2), 2);
	errno = 0;
	CHECK(read(pfd[0], (void *)(m + 1), 2) == -1 && errno == EFAULT);
	close(pfd[0]);
	close(pfd[1]);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		default_fault_signals();
		m[0] = 0xa5;
		m[size - 1] = 0xa5;
		_exit(0); /* the write went through */
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || (WTERMSIG(status) != SIGSEGV && WTERMSIG(status) != SIGBUS))
		cf_fail(__FILE__, __LINE__, "the writer was not killed by a fault (status %#x)",
			status);
}

static void ro_exporter(void)
{
	struct hb_client *c = cf_connect();
	struct hb_buffer *b = CF_ALLOC(c, 2, 3 * 4096 + 5, 0);
	struct hb_buffer *bw = CF_ALLOC(c, 2, 4096, HB_BUFFER_PEER_WRITABLE);
	struct hb_buffer *bh = CF_ALLOC(c, 0, 2 * 4096, 0);
	struct hb_id id;

	cf_fill(hb_buffer_data(b), 3 * 4096 + 5, 11);
	cf_fill(hb_buffer_data(bw), 4096, 12);
	cf_fill(hb_buffer_data(bh), 2 * 4096, 13);
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("ro", &id);
	CF_EXPORT(bw, NULL, 0, &id);
	cf_put_id("rw", &id);
	CF_EXPORT(bh, NULL, 0, &id);
	cf_put_id("host", &id);
	cf_barrier("written");
	CF_CHECK_PATTERN(hb_buffer_data(b), 3 * 4096 + 5, 11);
	CF_CHECK_PATTERN(hb_buffer_data(bw), 4096, 12);
	CF_CHECK_PATTERN(hb_buffer_data(bh), 2 * 4096, 13);
	hb_buffer_free(b);
	hb_buffer_free(bw);
	hb_buffer_free(bh);
}

static void ro_importer(void)
{
	struct hb_client *c = cf_connect();
	const char *const keys[] = {"ro", "rw"};
	struct hb_import *im;
	struct hb_id id;

	if (cf_domain() == 0) {
		cf_get_id("host", &id);
		im = CF_IMPORT(c, &id, 0);
		write_must_fault(im);
		CF_CHECK_PATTERN(hb_import_data(im), 2 * 4096, 13);
		hb_import_release(im);
	} else {
		for (int i = 0; i < 2; i++) {
			cf_get_id(keys[i], &id);
			im = CF_IMPORT(c, &id, 0);
			write_must_fault(im);
			CF_CHECK_PATTERN(hb_import_data(im), hb_import_size(im), 11 + (uint64_t)i);
			hb_import_release(im);
		}
	}
	cf_barrier("written");
}

CF_CASE(import_readonly_faults, {1, ro_exporter}, {2, ro_importer}, {0, ro_importer})
