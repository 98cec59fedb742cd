/*
 * The VM suite (make check-kvm, and part of make check wherever QEMU is installed): hyperbufd
 * with real, unmodified QEMU guests. Each case starts the daemon, boots its guests (a Debian
 * kernel and a busybox initramfs with the static guest program tests/kvm/guest.c, built by
 * tests/kvm/mkinitramfs.sh into $HB_BUILD/kvm/), each with an ivshmem-doorbell device per group
 * on the daemon's per-VM ivshmem sockets and virtio-serial ports on its channel sockets, exactly
 * as docs/KVM.md tells users to. The guests report on their serial consoles; this side checks
 * what the host and the daemon see.
 *
 *   HB_VM_ACCEL  tcg (default) or kvm: the same command line either way (kvm adds -cpu host)
 *   HB_QEMU      the QEMU binary (default qemu-system-x86_64 from PATH)
 *   HB_VM_VERBOSE=1  print every guest's console when it is done, not only on failure
 *
 * Nothing outlives a case: every QEMU dies with the test process (PR_SET_PDEATHSIG), has a CPU
 * time limit of its own, and is killed and reaped by the case or by the failure hook.
 */
#include "tests/kvm/cases.h"
#include "tests/vm_common.h"

/* Guest to guest: vm1 renders a 1920x1080 XRGB8888 frame, vm2 learns of it from its export
 * notification and checks every byte. */
TEST(vm_guest_to_guest_frame)
{
	struct hbt_daemon d;
	struct vm v1, v2;

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start(&v1, &d, 1, "g2g_frame");
	vm_start(&v2, &d, 2, "g2g_frame");
	vm_finish(&v2);
	vm_finish(&v1);
	CHECK_EQ(IT_STAT(&d, "pages_used"), 0);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	IT_STOP(&d);
}

/* Guest to host and host to guest, and round trips over the channel. */
TEST(vm_guest_and_host)
{
	struct hbt_daemon d;
	struct hb_client *h;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;
	struct vm v1;
	char meta[32] = {0};

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	h = IT_CONNECT(hbt_addr_host(&d));
	vm_start(&v1, &d, 1, "guest_host");
	VM_WAIT_EVENT(&v1, h, HB_EVENT_EXPORTED, &ev);
	CHECK_EQ(ev.domain, 1);
	im = IT_IMPORT(h, &ev.id, 0);
	CHECK_EQ(hb_import_metadata(im, meta, sizeof(meta) - 1), 13);
	CHECK(strcmp(meta, "guest-to-host") == 0);
	IT_CHECK_IMPORT(im, HBVM_TO_HOST_SIZE, HBVM_TO_HOST_SEED);
	hb_import_release(im);

	b = IT_ALLOC(h, 1, HBVM_FROM_HOST_SIZE, 0);
	it_fill(b, HBVM_FROM_HOST_SEED);
	IT_EXPORT(b, "host-to-guest", 13, &id);
	VM_WAIT_EVENT(&v1, h, HB_EVENT_RELEASED, &ev);
	CHECK(hb_id_equal(&ev.id, &id));
	vm_finish(&v1);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* A writable share between the guests: each sees the other's writes, no re-export. */
TEST(vm_writable_share)
{
	struct hbt_daemon d;
	struct vm v1, v2;

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start(&v1, &d, 1, "writable");
	vm_start(&v2, &d, 2, "writable");
	vm_finish(&v2);
	vm_finish(&v1);
	IT_STOP(&d);
}

/* A read-only import faults on write in the guest; a writable one is refused. The guest does
 * it all as an unprivileged user with the permissions of configs/99-hyperbuf.rules (and gets
 * EACCES without them). */
TEST(vm_read_only_enforced)
{
	struct hbt_daemon d;
	struct hb_client *h;
	struct hb_buffer *b;
	struct hb_id id;
	struct vm v1;

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	h = IT_CONNECT(hbt_addr_host(&d));
	vm_start(&v1, &d, 1, "readonly");
	vm_wait(&v1, "HBVM-READY connected", VM_WAIT_MS);
	b = IT_ALLOC(h, 1, HBVM_RO_SIZE, 0);
	it_fill(b, HBVM_RO_SEED);
	IT_EXPORT(b, NULL, 0, &id);
	vm_finish(&v1);
	/* Nothing the guest did reached the host's pages. */
	CHECK_EQ(tool_pattern_check(hb_buffer_data(b), HBVM_RO_SIZE, HBVM_RO_SEED), HBVM_RO_SIZE);
	hb_buffer_free(b);
	hb_disconnect(h);
	IT_STOP(&d);
}

/*
 * A guest is killed (its QEMU SIGKILLed) while it shares both ways: the host hears
 * DOMAIN_GONE, the guest's export is withdrawn and its import of the host's buffer released,
 * the host keeps what it maps, and once it lets go the pool has no page in use.
 */
TEST(vm_killed_guest)
{
	struct hbt_daemon d;
	struct hb_client *h;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id, theirs;
	bool gone = false, unexported = false, released = false;
	uint64_t t0;
	struct vm v1;

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	h = IT_CONNECT(hbt_addr_host(&d));
	vm_start(&v1, &d, 1, "killed");
	vm_wait(&v1, "HBVM-READY connected", VM_WAIT_MS);
	b = IT_ALLOC(h, 1, HBVM_HOLD_SIZE, 0);
	it_fill(b, HBVM_HOLD_SEED);
	IT_EXPORT(b, NULL, 0, &id);
	VM_WAIT_EVENT(&v1, h, HB_EVENT_EXPORTED, &ev);
	theirs = ev.id;
	im = IT_IMPORT(h, &theirs, 0);
	IT_CHECK_IMPORT(im, HBVM_KILLED_SIZE, HBVM_KILLED_SEED);
	vm_wait(&v1, "HBVM-READY holding", VM_WAIT_MS);
	CHECK(IT_STAT(&d, "pool.hv1.pages_used") > 0);

	t0 = hbt_now_ms();
	CHECK(kill(v1.pid, SIGKILL) == 0);
	vm_reap(&v1, false);
	vm_untrack(&v1);
	while (!gone || !unexported || !released) {
		CHECK(it_next_event_at(__FILE__, __LINE__, h, &ev, IT_WAIT_MS) == 0);
		if (ev.type == HB_EVENT_DOMAIN_GONE && ev.domain == 1)
			gone = true;
		if (ev.type == HB_EVENT_UNEXPORTED && hb_id_equal(&ev.id, &theirs))
			unexported = true;
		if (ev.type == HB_EVENT_RELEASED && hb_id_equal(&ev.id, &id))
			released = true;
	}
	fprintf(stderr, "vm1: DOMAIN_GONE %llu ms after SIGKILL\n",
		(unsigned long long)(hbt_now_ms() - t0));
	/* The dead guest's pages stay while the host maps them, untouched. */
	IT_CHECK_IMPORT(im, HBVM_KILLED_SIZE, HBVM_KILLED_SEED);
	CHECK(IT_STAT(&d, "pool.hv1.pages_used") > 0);
	hb_import_release(im);
	hb_buffer_free(b);
	IT_CHECK_STAT(&d, "pool.hv1.pages_used", 0);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(h);
	IT_STOP(&d);
}

/*
 * Several processes in one guest, one port each: a process that dies in the middle of a frame
 * leaves its session behind until the next process takes its port (the host then sees its
 * export withdrawn), a process finds every port taken (EBUSY), one that leaves frees its port.
 */
TEST(vm_processes_and_ports)
{
	struct hbt_daemon d;
	struct hb_client *h;
	struct hb_event ev;
	struct hb_id orphan;
	struct vm v1;

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	h = IT_CONNECT(hbt_addr_host(&d));
	vm_start(&v1, &d, 1, "ports");
	VM_WAIT_EVENT(&v1, h, HB_EVENT_EXPORTED, &ev);
	orphan = ev.id;
	VM_WAIT_EVENT(&v1, h, HB_EVENT_UNEXPORTED, &ev);
	CHECK(hb_id_equal(&ev.id, &orphan));
	vm_finish(&v1);
	IT_CHECK_STAT(&d, "pages_used", 0);
	hb_disconnect(h);
	IT_STOP(&d);
}

/* The daemon restarts under a running guest: QEMU reconnects the ports (reconnect=1), but not
 * the ivshmem devices, so the guest's library refuses the old pools with ENODEV. */
TEST(vm_daemon_restart)
{
	struct hbt_daemon d;
	struct vm v1;

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start(&v1, &d, 1, "restart");
	vm_wait(&v1, "HBVM-READY connected", VM_WAIT_MS);
	/* The old daemon exits cleanly with the QEMU still connected to it. */
	CHECK_EQ(hbt_daemon_restart(&d), 0);
	vm_finish(&v1);
	IT_STOP(&d);
}

/* Fenced frame ping-pong between the guests: each waits on the other's timeline before it
 * reads the other's frame. Needs the fence API (spec/API.md, issue 3). */
TEST(vm_fenced_ping_pong)
{
#ifndef HB_RESV_MAX
	SKIP("the fence API (hb_timeline_create, hb_sync_open: spec/API.md) is not in "
	     "include/hyperbuf.h yet");
#else
	struct hbt_daemon d;
	struct vm v1, v2;

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start(&v1, &d, 1, "fence_ping_pong");
	vm_start(&v2, &d, 2, "fence_ping_pong");
	vm_finish(&v2);
	vm_finish(&v1);
	IT_STOP(&d);
#endif
}
