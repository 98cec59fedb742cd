/*
 * The fuzz_daemon seeds (tests/fuzz/formats.h): sessions of the rig's topology that say Hello,
 * attach, share, import, fence, restart a VM channel, lose a QEMU, hit the quotas and break
 * the rules, each request with the handles, hids and timeline ids the daemon hands out in a
 * deterministic input (the requests are written by gen_client.c).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hyperbuf.h"
#include "protocol/limits.h"
#include "tests/fuzz/formats.h"
#include "tests/fuzz/gen_corpus.h"

/* The host and vm1 share through group a: attach (the VM names its ivshmem peer), allocate,
 * export with metadata, import, query, release, unexport, free. */
static void scen_share(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_alloc(&s, HBT_CONN_HOST_A, 1, 10000, 0);
	hbt_export(&s, HBT_CONN_HOST_A, 1, "frame-0");
	hbt_import(&s, HBT_CONN_VM1_A, 1, 0);
	hbt_query(&s, HBT_CONN_VM1_A, 1);
	hbt_query(&s, HBT_CONN_HOST_A, 1);
	hbt_release(&s, HBT_CONN_VM1_A, 2);
	hbt_unexport(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_free_buf(&s, HBT_CONN_HOST_A, 1);
	hbt_put_scen(&s, "share-host-vm1");
}

/* Small buffers described inline (HBP_FEATURE_INLINE_REFS): the host's own, imported by a
 * vm1 session that announced the feature and refused to one that did not; the other way, a
 * buffer of the older session's has a directory. */
static void scen_inline(void)
{
	struct hbt_scen s = {0};

	hbt_hello_features(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT, HBP_FEATURE_INLINE_REFS);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_alloc(&s, HBT_CONN_HOST_A, 1, 10000, 0);
	hbt_export(&s, HBT_CONN_HOST_A, 1, "small");
	hbt_import(&s, HBT_CONN_VM1_A, 1, 0);
	hbt_hello_features(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT, HBP_FEATURE_INLINE_REFS | 2);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_import(&s, HBT_CONN_VM1_A, 1, 0);
	hbt_alloc(&s, HBT_CONN_VM1_A, 0, 65 * 4096, 0);
	hbt_free_buf(&s, HBT_CONN_HOST_A, 1);
	hbt_put_scen(&s, "inline-small-buffers");
}

/* vm1 and vm2 through group b (each VM's own ivshmem socket): a writable share, an import
 * that outlives its exporter (an orphan), a delayed unexport. */
static void scen_orphan(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 2, 1 + HBT_PEER_B_VM1);
	hbt_hello(&s, HBT_CONN_VM2, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM2, 2, 1 + HBT_PEER_B_VM2);
	hbt_alloc(&s, HBT_CONN_VM1_A, 2, 3 * 4096 + 5, HB_BUFFER_PEER_WRITABLE);
	hbt_export(&s, HBT_CONN_VM1_A, 1, "");
	hbt_import(&s, HBT_CONN_VM2, 1, HB_IMPORT_WRITE);
	hbt_cpu_access(&s, HBT_CONN_VM2, 1, HB_ACCESS_WRITE);
	hbt_unexport(&s, HBT_CONN_VM1_A, 1, 1);
	hbt_op(&s, HBT_OP_SPIN);
	hbt_op(&s, HBT_OP_HANGUP | HBT_CONN_VM1_A);
	hbt_query(&s, HBT_CONN_VM2, 1);
	hbt_release(&s, HBT_CONN_VM2, 2);
	hbt_put_scen(&s, "orphan-vm1-vm2");
}

/* Timelines: waits that complete, fail, are born failed, are closed; a reservation on a
 * shared buffer and the CPU access that waits for it. */
static void scen_fences(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_hello(&s, HBT_CONN_HOST_B, HBP_ROLE_CLIENT);
	hbt_tl_create(&s, HBT_CONN_HOST_A);
	hbt_sync_open(&s, HBT_CONN_HOST_B, 1, 2);
	hbt_sync_open(&s, HBT_CONN_HOST_B, 1, 5);
	hbt_tl_signal(&s, HBT_CONN_HOST_A, 1, 2, 0);
	hbt_tl_signal(&s, HBT_CONN_HOST_A, 1, 4, EIO);
	hbt_sync_open(&s, HBT_CONN_HOST_B, 1, 3);
	hbt_sync_close(&s, HBT_CONN_HOST_B, 2);
	hbt_attach(&s, HBT_CONN_HOST_A, 3, 0);
	hbt_hello(&s, HBT_CONN_VM2, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM2, 3, 1 + HBT_PEER_C);
	hbt_alloc(&s, HBT_CONN_HOST_A, 2, 4096, 0);
	hbt_export(&s, HBT_CONN_HOST_A, 3, "f");
	hbt_tl_create(&s, HBT_CONN_HOST_A);
	hbt_fence_attach(&s, HBT_CONN_HOST_A, 1, 2, 1, HB_ACCESS_WRITE);
	hbt_cpu_access(&s, HBT_CONN_VM2, 1, HB_ACCESS_READ);
	hbt_sync_open(&s, HBT_CONN_VM2, 2, 1);
	hbt_tl_signal(&s, HBT_CONN_HOST_A, 2, 1, 0);
	hbt_tl_destroy(&s, HBT_CONN_HOST_A, 1);
	hbt_put_scen(&s, "fences");
}

/* hyperbufctl's view: a control session asks for everything, on the host socket. */
static void scen_control(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_alloc(&s, HBT_CONN_HOST_A, 1, 4096, 0);
	hbt_export(&s, HBT_CONN_HOST_A, 1, "m");
	hbt_tl_create(&s, HBT_CONN_HOST_A);
	hbt_hello(&s, HBT_CONN_HOST_SOCK, HBP_ROLE_CONTROL);
	for (uint32_t what = HBP_CTL_STATUS; what <= HBP_CTL_TIMELINES; what++)
		hbt_control(&s, HBT_CONN_HOST_SOCK, what);
	hbt_put_scen(&s, "control");
}

/* A VM channel used by one guest process after another: resync markers, a frame cut short by
 * a process that died, a new Hello in place. */
static void scen_resync(void)
{
	static const uint8_t cut[] = {40, 0, 0, 0, 8, 1, 18};
	struct hbt_scen s = {0};

	hbt_marker(&s, HBT_CONN_VM1_A, HBP_PROTOCOL_VERSION, 0x11);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_raw(&s, HBT_CONN_VM1_A, cut, sizeof(cut));
	hbt_marker(&s, HBT_CONN_VM1_A, HBP_PROTOCOL_VERSION, 0x22);
	s.id[HBT_CONN_VM1_A] = 0;
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_marker(&s, HBT_CONN_VM2_SOCK, 7, 0x33);
	hbt_hello(&s, HBT_CONN_VM2_SOCK, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM2_SOCK, 3, 1 + HBT_PEER_C);
	hbt_put_scen(&s, "resync");
}

/* What a hostile client tries: a request before Hello, a bad version, a control role from a
 * VM, a frame longer than the limit, a body this build does not know, Grant on KVM. */
static void scen_rules(void)
{
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0x7f, 1, 2, 3};
	static const uint8_t unknown[] = {0x08, 0x01, 0xf2, 0x01, 0x00}; /* id 1, field 30 */
	struct hbt_scen s = {0};

	hbt_alloc(&s, HBT_CONN_HOST_B, 1, 4096, 0);
	hbt_hello(&s, HBT_CONN_VM3, HBP_ROLE_CONTROL);
	hbt_raw(&s, HBT_CONN_VM1_B, huge, sizeof(huge));
	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_append_u8(&s.b, HBT_OP_FRAME | HBT_CONN_HOST_A);
	hbt_append_u16(&s.b, sizeof(unknown));
	hbt_append(&s.b, unknown, sizeof(unknown));
	hbt_grant(&s, HBT_CONN_HOST_A, 1);
	hbt_attach(&s, HBT_CONN_HOST_A, 2, 0);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_alloc(&s, HBT_CONN_HOST_A, 3, 4096, 0);
	hbt_alloc(&s, HBT_CONN_HOST_A, 1, 1ull << 40, 0);
	hbt_import(&s, HBT_CONN_HOST_A, 7, 0);
	hbt_put_scen(&s, "rules");
}

/* The quotas of the rig's [limits]: exports, pages, timelines, imports, fence waits. */
static void scen_quota(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	for (unsigned i = 1; i <= 8; i++)
		hbt_alloc(&s, HBT_CONN_HOST_A, 1, 40 * 4096, 0); /* 1..6, then the pool is full */
	for (unsigned i = 1; i <= 5; i++) {
		hbt_export(&s, HBT_CONN_HOST_A, i, "q"); /* hids 1..4, then EDQUOT */
		hbt_tl_create(&s, HBT_CONN_HOST_A);      /* timelines 1..4, then EDQUOT */
	}
	for (unsigned i = 1; i <= 5; i++)
		hbt_import(&s, HBT_CONN_VM1_A, i, 0); /* handles 7..10, then ENOENT */
	for (unsigned i = 0; i < 10; i++)
		hbt_sync_open(&s, HBT_CONN_VM1_A, 1, 10 + i); /* waits 11..18, then EDQUOT */
	hbt_put_scen(&s, "quota");
}

/* A QEMU goes: vm1's sessions end, vm2 hears DOMAIN_GONE and keeps its import. A client that
 * does not read its events overflows its queue. */
static void scen_gone(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 2, 1 + HBT_PEER_B_VM1);
	hbt_hello(&s, HBT_CONN_VM2, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM2, 2, 1 + HBT_PEER_B_VM2);
	hbt_op(&s, HBT_OP_MUTE | HBT_CONN_VM2);
	hbt_alloc(&s, HBT_CONN_VM1_A, 2, 4096, 0);
	for (unsigned i = 1; i <= 10; i++) {
		hbt_export(&s, HBT_CONN_VM1_A, 1, "again");
		hbt_unexport(&s, HBT_CONN_VM1_A, i, 0);
	}
	hbt_export(&s, HBT_CONN_VM1_A, 1, "last");
	hbt_import(&s, HBT_CONN_VM2, 11, 0);
	hbt_op(&s, HBT_OP_MUTE | HBT_CONN_VM2);
	hbt_op(&s, HBT_OP_PEER_GONE | HBT_PEER_B_VM1);
	hbt_op(&s, HBT_OP_SPIN);
	hbt_release(&s, HBT_CONN_VM2, 2);
	hbt_put_scen(&s, "peer-gone");
}

/* A client that stops reading: its socket fills with replies (Control, Query with a kilobyte
 * of metadata), then its fence completions pile up until it is dropped, and its events until
 * they overflow. */
static void scen_backpressure(void)
{
	static char meta[1025];
	struct hbt_scen s = {0};

	memset(meta, 'm', sizeof(meta) - 1);
	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_hello(&s, HBT_CONN_HOST_B, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_HOST_B, 1, 0);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_tl_create(&s, HBT_CONN_HOST_B);
	hbt_alloc(&s, HBT_CONN_HOST_B, 1, 4096, 0);
	hbt_export(&s, HBT_CONN_HOST_B, 1, meta);
	hbt_op(&s, HBT_OP_MUTE | HBT_CONN_HOST_A);
	hbt_op(&s, HBT_OP_MUTE | HBT_CONN_VM1_A);
	for (unsigned i = 0; i < 300; i++) {
		hbt_control(&s, HBT_CONN_HOST_A, HBP_CTL_STATUS);
		hbt_query(&s, HBT_CONN_VM1_A, 1);
	}
	for (unsigned i = 1; i <= 10; i++) {
		hbt_sync_open(&s, HBT_CONN_HOST_A, 1, i);
		hbt_tl_signal(&s, HBT_CONN_HOST_B, 1, i, 0);
		hbt_unexport(&s, HBT_CONN_HOST_B, i, 0);
		hbt_export(&s, HBT_CONN_HOST_B, 1, "again");
	}
	hbt_op(&s, HBT_OP_SPIN);
	hbt_op(&s, HBT_OP_MUTE | HBT_CONN_VM1_A);
	hbt_op(&s, HBT_OP_SPIN);
	hbt_put_scen(&s, "backpressure");
}

/* A host client that does not read gets the pool fd of its Attach queued behind a full socket,
 * then hangs up: the fd must be closed with the session (the rig counts descriptors). */
static void scen_fd_queued(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_op(&s, HBT_OP_MUTE | HBT_CONN_HOST_A);
	for (unsigned i = 0; i < 300; i++)
		hbt_control(&s, HBT_CONN_HOST_A, HBP_CTL_STATS);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_attach(&s, HBT_CONN_HOST_A, 3, 0);
	hbt_op(&s, HBT_OP_HANGUP | HBT_CONN_HOST_A);
	hbt_put_scen(&s, "fd-queued");
}

/* A guest process that leaves everything behind: vm1 owns a timeline the host waits on and a
 * buffer the host imported with a fence on it; the next process's resync marker ends all of it
 * (the wait fails with EPIPE, the import outlives its exporter), and a new Hello does it once
 * more. */
static void scen_restart(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_tl_create(&s, HBT_CONN_VM1_A);
	hbt_sync_open(&s, HBT_CONN_HOST_A, 1, 3);
	hbt_alloc(&s, HBT_CONN_VM1_A, 0, 5000, HB_BUFFER_PEER_WRITABLE);
	hbt_export(&s, HBT_CONN_VM1_A, 2, "restart");
	hbt_fence_attach(&s, HBT_CONN_VM1_A, 1, 1, 3, HB_ACCESS_WRITE);
	hbt_import(&s, HBT_CONN_HOST_A, 1, HB_IMPORT_WRITE);
	hbt_unexport(&s, HBT_CONN_VM1_A, 1, 1000);
	hbt_marker(&s, HBT_CONN_VM1_A, HBP_PROTOCOL_VERSION, 0x44);
	s.id[HBT_CONN_VM1_A] = 0;
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_cpu_access(&s, HBT_CONN_HOST_A, 1, HB_ACCESS_WRITE);
	hbt_tl_create(&s, HBT_CONN_VM1_A);
	hbt_sync_open(&s, HBT_CONN_HOST_A, 2, 1);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_release(&s, HBT_CONN_HOST_A, 3);
	hbt_put_scen(&s, "restart-with-state");
}

/* vm2's QEMU goes while vm2 owns a timeline others wait on and a buffer vm1 imported. */
static void scen_gone_fences(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_VM2, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM2, 2, 1 + HBT_PEER_B_VM2);
	hbt_attach(&s, HBT_CONN_VM2, 3, 1 + HBT_PEER_C);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 2, 1 + HBT_PEER_B_VM1);
	hbt_hello(&s, HBT_CONN_HOST_B, HBP_ROLE_CLIENT);
	hbt_tl_create(&s, HBT_CONN_VM2);
	hbt_sync_open(&s, HBT_CONN_VM1_A, 1, 1);
	hbt_sync_open(&s, HBT_CONN_HOST_B, 1, 2);
	hbt_alloc(&s, HBT_CONN_VM2, 1, 8192, 0);
	hbt_export(&s, HBT_CONN_VM2, 3, "gone");
	hbt_import(&s, HBT_CONN_VM1_A, 1, 0);
	hbt_op(&s, HBT_OP_PEER_GONE | HBT_PEER_B_VM2);
	hbt_op(&s, HBT_OP_PEER_GONE | HBT_PEER_C);
	hbt_query(&s, HBT_CONN_VM1_A, 1);
	hbt_release(&s, HBT_CONN_VM1_A, 4);
	hbt_put_scen(&s, "gone-with-fences");
}

/* A buffer's reservation: fences replaced and appended until it is full, a reader's and a
 * writer's CPU access; a timeline that fails more ranges than it remembers, and late openers
 * of points it passed. */
static void scen_reservations(void)
{
	struct hbt_scen s = {0};

	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_alloc(&s, HBT_CONN_HOST_A, 1, 4096, 0);
	hbt_export(&s, HBT_CONN_HOST_A, 1, "resv");
	hbt_tl_create(&s, HBT_CONN_HOST_A);
	hbt_tl_create(&s, HBT_CONN_VM1_A);
	hbt_fence_attach(&s, HBT_CONN_HOST_A, 1, 2, 5, HB_ACCESS_READ);
	hbt_fence_attach(&s, HBT_CONN_VM1_A, 1, 2, 6, HB_ACCESS_WRITE | HB_ACCESS_READ);
	for (unsigned i = 0; i < 34; i++)
		hbt_fence_attach(&s, HBT_CONN_HOST_A, 1, 1, 100 - i, HB_ACCESS_WRITE);
	hbt_cpu_access(&s, HBT_CONN_VM1_A, 1, HB_ACCESS_READ);
	hbt_cpu_access(&s, HBT_CONN_HOST_A, 1, HB_ACCESS_WRITE);
	hbt_tl_signal(&s, HBT_CONN_HOST_A, 1, 90, 0);
	hbt_fence_attach(&s, HBT_CONN_HOST_A, 1, 1, 200, HB_ACCESS_WRITE);
	for (unsigned i = 1; i <= 70; i++)
		hbt_tl_signal(&s, HBT_CONN_VM1_A, 2, 10 + 2 * i, i % 3 ? EIO : 0);
	for (unsigned i = 0; i < 4; i++)
		hbt_sync_open(&s, HBT_CONN_HOST_A, 2, 1 + 37 * i);
	hbt_tl_signal(&s, HBT_CONN_VM1_A, 2, UINT64_MAX, ECANCELED);
	hbt_sync_open(&s, HBT_CONN_HOST_A, 2, UINT64_MAX);
	hbt_put_scen(&s, "reservations");
}

/* Export and import rules: flags, metadata over the limit, a write import of a read-only
 * buffer, a pending unexport seen by query and control, the pages quota across two pools. */
static void scen_export_rules(void)
{
	static char big[2000];
	struct hbt_scen s = {0};
	CLIENT(m, export, CLIENT_MSG__BODY_EXPORT, Export, EXPORT__INIT);

	memset(big, 'b', sizeof(big) - 1);
	hbt_hello(&s, HBT_CONN_HOST_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_HOST_A, 1, 0);
	hbt_attach(&s, HBT_CONN_HOST_A, 3, 0);
	hbt_hello(&s, HBT_CONN_VM1_A, HBP_ROLE_CLIENT);
	hbt_attach(&s, HBT_CONN_VM1_A, 1, 1 + HBT_PEER_A);
	hbt_alloc(&s, HBT_CONN_HOST_A, 1, 4096, 0);
	m_body.buffer = 1;
	m_body.flags = 1;
	hbt_frame(&s, HBT_CONN_HOST_A, &m);
	hbt_export(&s, HBT_CONN_HOST_A, 1, big);
	hbt_export(&s, HBT_CONN_HOST_A, 1, "ok");
	hbt_import(&s, HBT_CONN_VM1_A, 1, HB_IMPORT_WRITE);
	hbt_unexport(&s, HBT_CONN_HOST_A, 1, 60000);
	hbt_query(&s, HBT_CONN_VM1_A, 1);
	hbt_import(&s, HBT_CONN_VM1_A, 1, 0);
	hbt_control(&s, HBT_CONN_HOST_A, HBP_CTL_EXPORTS);
	hbt_export(&s, HBT_CONN_HOST_A, 1, "again");
	hbt_unexport(&s, HBT_CONN_VM1_A, 1, 0);
	hbt_alloc(&s, HBT_CONN_HOST_A, 1, 200 * 4096, 0);
	hbt_alloc(&s, HBT_CONN_HOST_A, 3, 200 * 4096, 0);
	hbt_control(&s, HBT_CONN_HOST_A, HBP_CTL_DOMAINS);
	hbt_put_scen(&s, "export-rules");
}

void hbt_gen_daemon(void)
{
	scen_share();
	scen_inline();
	scen_orphan();
	scen_fences();
	scen_control();
	scen_resync();
	scen_rules();
	scen_quota();
	scen_gone();
	scen_backpressure();
	scen_fd_queued();
	scen_restart();
	scen_gone_fences();
	scen_reservations();
	scen_export_rules();
}
