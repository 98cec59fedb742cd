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
#include <pthread.h>

#include "tests/kvm/cases.h"
#include "tests/vm_common.h"

/* Guest to guest: vm1 renders a 1920x1080 XRGB8888 frame, vm2 learns of it from its export
 * notification and checks every byte. Both VMs' QEMUs pass the pid file check. */
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
	/* Both QEMUs got in at their first try, by the pid files they wrote. */
	CHECK_EQ(IT_STAT(&d, "refused_credentials"), 0);
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

/* ---- the daemon killed under running guests (docs/RESTART.md) ---------------------------- */

struct killer {
	struct hbt_daemon *d;
	int kills;
	uint64_t seed;
	volatile bool stop;
	volatile uint64_t frames;  /* the host's frames so far */
	uint64_t frames_at_last_kill;
};

/* SIGKILLs the daemon HBVM_STRESS_KILLS times at random points of the workload (random frame
 * counts of the host's, up to eight tenths of them, plus up to 50 ms), and waits for the
 * holder to bring it back each time. */
static void *kill_loop(void *arg)
{
	struct killer *k = arg;
	uint64_t at[HBVM_STRESS_KILLS];

	for (int i = 0; i < HBVM_STRESS_KILLS; i++) {
		k->seed = k->seed * 6364136223846793005ull + 1442695040888963407ull;
		at[i] = 2 + (k->seed >> 33) % (HBVM_STRESS_FRAMES * 8 / 10);
	}
	for (int i = 1; i < HBVM_STRESS_KILLS; i++)
		for (int j = i; j > 0 && at[j] < at[j - 1]; j--) {
			uint64_t t = at[j];

			at[j] = at[j - 1];
			at[j - 1] = t;
		}
	while (k->kills < HBVM_STRESS_KILLS && !k->stop) {
		if (k->frames < at[k->kills]) {
			it_sleep_ms(5);
			continue;
		}
		it_sleep_ms((unsigned)(at[k->kills] * 7919 % 50));
		k->frames_at_last_kill = k->frames;
		hbt_daemon_crash(k->d);
		k->kills++;
	}
	return NULL;
}

/* The host's part: vm1's frames for it, each waited for, checked and acked. The killing
 * starts with the first frame. */
static void host_consumer(struct vm *v1, struct hb_client *h, struct killer *k,
			  pthread_t *killer)
{
	struct hb_timeline *ack = hb_timeline_create(h);
	struct hb_buffer *hello = IT_ALLOC(h, 1, 4096, 0);
	uint64_t ack_id, last = 0, hello_at = 0, producer = 0;
	struct hb_event ev;
	struct hb_fence f;
	struct hb_sync *s;
	struct hb_id id;

	CHECK(ack && hb_timeline_share(ack, 1) == 0);
	ack_id = hb_timeline_id(ack);
	while (last < HBVM_STRESS_FRAMES) {
		struct hbvm_stress_meta meta;
		struct hb_import *im;

		if (!last && hbt_now_ms() > hello_at) {
			IT_EXPORT(hello, &ack_id, sizeof(ack_id), &id);
			hello_at = hbt_now_ms() + 1000;
		}
		if (it_wait_event_at(__FILE__, __LINE__, h, HB_EVENT_EXPORTED, &ev, 500) != 0) {
			vm_check(v1);
			continue;
		}
		if (ev.domain != 1 || ev.meta_len != sizeof(meta))
			continue;
		memcpy(&meta, ev.meta, sizeof(meta));
		CHECK_EQ(meta.frame, last + 1);
		im = IT_IMPORT(h, &ev.id, 0);
		f = (struct hb_fence){meta.timeline, meta.frame};
		s = hb_sync_open(h, &f);
		CHECK(s != NULL);
		CHECK_EQ(hb_sync_wait(s, VM_WAIT_MS), 0);
		CHECK_EQ(hb_sync_status(s), 1);
		hb_sync_close(s);
		IT_CHECK_IMPORT(im, HBVM_STRESS_SIZE, HBVM_STRESS_SEED(meta.frame, 0));
		hb_import_release(im);
		last = meta.frame;
		k->frames = last;
		producer = meta.timeline;
		CHECK_EQ(hb_timeline_signal(ack, last), 0);
		if (last == 1)
			CHECK_EQ(pthread_create(killer, NULL, kill_loop, k), 0);
	}
	/* The ack timeline stays until the producer has seen every ack ("done": frame N + 1). */
	f = (struct hb_fence){producer, HBVM_STRESS_FRAMES + 1};
	s = hb_sync_open(h, &f);
	CHECK(s != NULL);
	CHECK_EQ(hb_sync_wait(s, VM_WAIT_MS), 0);
	hb_sync_close(s);
	hb_buffer_free(hello);
	hb_timeline_destroy(ack);
}

/*
 * Two guests and the host share frames with fences both ways while the daemon is SIGKILLed 20
 * times and restarted by the holder from its fd store: QEMU keeps its channels and its pools,
 * the guests are never restarted, every frame arrives and is checked byte for byte, no wait
 * hangs, and the pools are empty at the end.
 */
TEST(vm_daemon_killed_20_times)
{
	struct hbt_daemon d;
	struct killer k = {.seed = 0x2545f4914f6cdd1dull};
	struct vm v1, v2;
	struct hb_client *h;
	pthread_t killer;
	pid_t qemu1, qemu2;

	vm_need("");
	hbt_daemon_start_held(&d, VM_TOPOLOGY);
	vm_start(&v1, &d, 1, "restart_stress");
	vm_start(&v2, &d, 2, "restart_stress");
	qemu1 = v1.pid;
	qemu2 = v2.pid;
	h = IT_CONNECT(hbt_addr_host(&d));
	k.d = &d;
	host_consumer(&v1, h, &k, &killer);
	vm_finish(&v2);
	vm_finish(&v1);
	k.stop = true;
	pthread_join(killer, NULL);
	fprintf(stderr,
		"daemon killed %d times while %d frames went to each consumer (the last kill at "
		"frame %llu)\n",
		k.kills, HBVM_STRESS_FRAMES, (unsigned long long)k.frames_at_last_kill);
	/* Every kill came in the middle of the workload. */
	CHECK_EQ(k.kills, HBVM_STRESS_KILLS);
	CHECK(k.frames_at_last_kill < HBVM_STRESS_FRAMES);
	CHECK(qemu1 > 0 && qemu2 > 0); /* the same QEMUs from start to finish (vm_check) */
	hb_disconnect(h);
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "refused_credentials"), 0);
	IT_STOP(&d);
}

/* Fenced frame ping-pong between the guests: each waits on the other's timeline before it
 * reads the other's frame. */
TEST(vm_fenced_ping_pong)
{
	struct hbt_daemon d;
	struct vm v1, v2;

	vm_need("");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start(&v1, &d, 1, "fence_ping_pong");
	vm_start(&v2, &d, 2, "fence_ping_pong");
	vm_finish(&v2);
	vm_finish(&v1);
	IT_STOP(&d);
}

/* ---- GStreamer (docs/GSTREAMER.md) ------------------------------------------------------- */

/* The same daemon with a vv pool that holds three 1080p BGRx frames (25 MB) and more. */
static const char gst_topology[] =
    "[daemon]\nbackend = kvm\nsocket = host.sock\nlog = info\n\n"
    "[vm vm1]\nid = 1\nchannel = vm1-{port}.sock\nports = 2\n\n"
    "[vm vm2]\nid = 2\nchannel = vm2-{port}.sock\nports = 2\n\n"
    "[group hv1]\nmembers = host, vm1\nsize = 16M\nivshmem = hv1-{vm}.sock\n\n"
    "[group hv2]\nmembers = host, vm2\nsize = 16M\nivshmem = hv2-{vm}.sock\n\n"
    "[group vv]\nmembers = vm1, vm2\nsize = 64M\nivshmem = vv-{vm}.sock\n";

/* The guest's "HBVM-GST frame N HASH ..." lines, in order, into out. */
static void gst_frames(const struct vm *v, char *out, size_t len)
{
	char line[512];
	size_t n = 0;
	FILE *f = fopen(v->console, "r");

	out[0] = '\0';
	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		const char *s = strstr(line, "HBVM-GST frame ");
		size_t l;

		if (!s)
			continue;
		s += strlen("HBVM-GST ");
		l = strcspn(s, "\r\n");
		if (n + l + 2 > len)
			break;
		memcpy(out + n, s, l);
		n += l;
		out[n++] = '\n';
		out[n] = '\0';
	}
	fclose(f);
}

/* True if a line of the guest's console contains text. */
static bool console_has(const struct vm *v, const char *text)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(v->console, "r");

	CHECK(f != NULL);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

/* Two real guests: vm1 runs videotestsrc ! hyperbufsink peer=2, vm2 hyperbufsrc peer=1, each
 * hashing every frame's pixels; the hashes must agree, frame by frame, with nothing copied. */
TEST(vm_gst_guest_to_guest)
{
	static char a[16384], b[16384];
	struct hbt_daemon d;
	struct vm v1, v2;

	if (access(vm_file("gst", "initramfs.cpio.gz"), R_OK) != 0 &&
	    access(vm_file("gst", "missing"), R_OK) != 0)
		SKIP("no GStreamer guest image (the plugin needs libgstreamer1.0-dev and "
		     "libgstreamer-plugins-base1.0-dev)");
	vm_need("gst");
	hbt_daemon_start_config(&d, gst_topology);
	vm_start_opts(&v2, &(struct vm_opts){.image = "gst", .dir = d.dir, .d = &d}, 2,
		      "gst_guest_to_guest");
	vm_start_opts(&v1, &(struct vm_opts){.image = "gst", .dir = d.dir, .d = &d}, 1,
		      "gst_guest_to_guest");
	vm_finish(&v1);
	vm_finish(&v2);
	gst_frames(&v1, a, sizeof(a));
	gst_frames(&v2, b, sizeof(b));
	fprintf(stderr, "vm1 sent:\n%svm2 got:\n%s", a, b);
	CHECK_EQ(hbt_count_substr(a, "frame "), 8);
	CHECK(strcmp(a, b) == 0);
	CHECK(console_has(&v1, "HBVM-GST hyperbufsink0 frames-copied: 0"));
	CHECK(console_has(&v2, "HBVM-GST hyperbufsrc0 frames-copied: 0"));
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	IT_CHECK_STAT(&d, "pages_used", 0);
	IT_STOP(&d);
}
