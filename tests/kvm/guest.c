/*
 * The guest half of the VM suite (tests/test_vm_kvm.c): a static program in the guests'
 * initramfs, run by tests/kvm/init as `hbguest CASE ROLE`. It uses libhyperbuf as any program
 * in a KVM guest would: hb_connect(NULL), which must find out by itself that it runs in a KVM
 * guest (kvm:), the virtio-serial ports and the ivshmem BARs.
 *
 * It reports on the console, one line each, for the host side to read:
 *   HBVM-STEP text       progress
 *   HBVM-INFO key=value  a measurement
 *   HBVM-READY tag       a point the host side waits for
 *   HBVM-PASS | HBVM-FAIL reason
 *
 * Domains: vm1 is 1, vm2 is 2, the host 0 (the topology in test_vm_kvm.c). ROLE is the VM's id.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hyperbuf.h"
#include "tests/kvm/cases.h"
#include "tests/kvm/report.h"
#include "tools/pattern.h"

#define WAIT_MS      HBVM_WAIT_MS
#define FRAME_W      HBVM_FRAME_W
#define FRAME_H      HBVM_FRAME_H
#define FRAME_NO     HBVM_FRAME_NO
#define RTT_ROUNDS   200
#define WRITE_ROUNDS 20

/* ---- guest -> guest: a 1920x1080 XRGB8888 frame, byte-exact ---------------------------- */

static int g2g_frame(int role)
{
	struct hb_client *c = connect_default();
	struct tool_frame_meta meta, got;
	struct hb_event ev;
	struct hb_id id;
	uint64_t t0;

	GCHECK(hb_self_domain(c) == (uint32_t)role);
	if (role == 1) {
		struct hb_buffer *b = hb_buffer_alloc(c, 2, (size_t)FRAME_W * FRAME_H * 4, 0);

		GCHECK(b != NULL);
		t0 = now_us();
		tool_pattern_frame(hb_buffer_data(b), FRAME_W, FRAME_H, FRAME_W * 4, FRAME_NO);
		say("HBVM-INFO render_ms=%.1f", (now_us() - t0) / 1000.0);
		memset(&meta, 0, sizeof(meta));
		meta.version = 1;
		meta.width = FRAME_W;
		meta.height = FRAME_H;
		meta.stride = FRAME_W * 4;
		meta.format = TOOL_FOURCC_XRGB8888;
		meta.frame = FRAME_NO;
		snprintf(meta.surface, sizeof(meta.surface), "vm1-test-pattern");
		export_until_imported(c, b, &meta, sizeof(meta), &id);
		say("HBVM-STEP vm2 imported the frame");
		wait_event(c, HB_EVENT_RELEASED, 2, &ev);
		hb_buffer_free(b);
	} else {
		struct hb_import *im;
		long bad;

		/* The export notification is what tells this guest there is a frame. */
		wait_event(c, HB_EVENT_EXPORTED, 1, &ev);
		GCHECK(ev.size == (uint64_t)FRAME_W * FRAME_H * 4);
		im = hb_import(c, &ev.id, 0);
		GCHECK(im != NULL);
		GCHECK(hb_import_metadata(im, &got, sizeof(got)) == (ssize_t)sizeof(got));
		GCHECK(got.width == FRAME_W && got.height == FRAME_H && got.frame == FRAME_NO);
		GCHECK(got.format == TOOL_FOURCC_XRGB8888 && got.stride == FRAME_W * 4);
		t0 = now_us();
		bad = tool_pattern_frame_check(hb_import_data(im), FRAME_W, FRAME_H, FRAME_W * 4,
					     FRAME_NO);
		say("HBVM-INFO check_ms=%.1f", (now_us() - t0) / 1000.0);
		if (bad >= 0)
			fail(__LINE__, "pixel %ld of the frame differs", bad);
		say("HBVM-STEP all %d bytes of the frame match", FRAME_W * FRAME_H * 4);
		hb_import_release(im);
	}
	hb_disconnect(c);
	return 0;
}

/* ---- guest <-> host, and round trips over the virtio-serial channel --------------------- */

static int guest_host(int role)
{
	const size_t size = HBVM_TO_HOST_SIZE;
	struct hb_client *c = connect_default();
	struct hb_buffer *b;
	struct hb_info info;
	struct hb_event ev;
	struct hb_id id;
	bool released = false, checked = false;
	uint64_t best = UINT64_MAX, sum = 0;

	GCHECK(role == 1);
	b = hb_buffer_alloc(c, 0, size, 0);
	GCHECK(b != NULL);
	tool_pattern_fill(hb_buffer_data(b), size, HBVM_TO_HOST_SEED);
	export_until_imported(c, b, "guest-to-host", 13, &id);
	/* Round trips: a Query and its answer through the port, QEMU and the daemon. */
	for (int i = 0; i < RTT_ROUNDS; i++) {
		uint64_t t0 = now_us(), dt;

		GCHECK(hb_query(c, &id, &info) == 0);
		dt = now_us() - t0;
		sum += dt;
		if (dt < best)
			best = dt;
	}
	GCHECK(info.exporter == 1 && info.peer == 0 && info.size == size);
	say("HBVM-INFO query_rtt_avg_us=%llu query_rtt_best_us=%llu rounds=%d",
	    (unsigned long long)(sum / RTT_ROUNDS), (unsigned long long)best, RTT_ROUNDS);
	/* The host checks ours and releases it, and shares one of its own: in either order. */
	while (!released || !checked) {
		next_event(c, &ev);
		if (ev.type == HB_EVENT_RELEASED && hb_id_equal(&ev.id, &id)) {
			released = true;
		} else if (ev.type == HB_EVENT_EXPORTED && ev.domain == 0 && !checked) {
			struct hb_import *im = hb_import(c, &ev.id, 0);
			char meta[32] = {0};
			size_t off;

			GCHECK(im != NULL);
			GCHECK(hb_import_metadata(im, meta, sizeof(meta) - 1) == 13);
			GCHECK(strcmp(meta, "host-to-guest") == 0);
			off = tool_pattern_check(hb_import_data(im), hb_import_size(im),
					       HBVM_FROM_HOST_SEED);
			if (off != hb_import_size(im))
				fail(__LINE__, "the host's buffer differs at byte %zu", off);
			say("HBVM-STEP the host's %zu bytes match", hb_import_size(im));
			hb_import_release(im);
			checked = true;
		}
	}
	hb_buffer_free(b);
	hb_disconnect(c);
	return 0;
}

/* ---- a writable share: each side sees the other's writes, with no re-export ------------- */

static volatile uint32_t *word(void *base, size_t off)
{
	return (volatile uint32_t *)((uint8_t *)base + off);
}

/* Waits until the word at p is v; the other VM writes it into the same pages. */
static void await_word(volatile uint32_t *p, uint32_t v)
{
	uint64_t end = now_us() + (uint64_t)WAIT_MS * 1000u;

	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != v) {
		if (now_us() > end)
			fail(__LINE__, "word is %u, want %u", *p, v);
		sleep_ms(1);
	}
}

static int writable(int role)
{
	struct hb_client *c = connect_default();
	struct hb_event ev;
	struct hb_id id;
	uint64_t t0;

	if (role == 1) {
		struct hb_buffer *b = hb_buffer_alloc(c, 2, 65536, HB_BUFFER_PEER_WRITABLE);
		void *p;

		GCHECK(b != NULL);
		p = hb_buffer_data(b);
		export_until_imported(c, b, "rw", 2, &id);
		t0 = now_us();
		for (uint32_t k = 1; k <= WRITE_ROUNDS; k++) {
			snprintf((char *)p + 8, 64, "ping %u from vm1", k);
			__atomic_store_n(word(p, 0), k, __ATOMIC_RELEASE);
			await_word(word(p, 4096), k);
			GCHECK(strncmp((char *)p + 4096 + 8, "pong", 4) == 0);
		}
		say("HBVM-INFO write_round_trip_avg_us=%llu rounds=%d",
		    (unsigned long long)((now_us() - t0) / WRITE_ROUNDS), WRITE_ROUNDS);
		wait_event(c, HB_EVENT_RELEASED, 2, &ev);
		hb_buffer_free(b);
	} else {
		struct hb_import *im;
		struct hb_info info;
		void *p;

		wait_event(c, HB_EVENT_EXPORTED, 1, &ev);
		GCHECK(hb_query(c, &ev.id, &info) == 0);
		GCHECK(info.flags & HB_INFO_PEER_WRITABLE);
		im = hb_import(c, &ev.id, HB_IMPORT_WRITE);
		GCHECK(im != NULL);
		p = hb_import_data(im);
		for (uint32_t k = 1; k <= WRITE_ROUNDS; k++) {
			await_word(word(p, 0), k);
			GCHECK(strncmp((char *)p + 8, "ping", 4) == 0);
			snprintf((char *)p + 4096 + 8, 64, "pong %u from vm2", k);
			__atomic_store_n(word(p, 4096), k, __ATOMIC_RELEASE);
		}
		hb_import_release(im);
	}
	hb_disconnect(c);
	return 0;
}

/* ---- an unprivileged client: what configs/99-hyperbuf.rules grants is enough ----------- */

#define HB_GID 4242
#define HB_UID 4242

static void grant(const char *path)
{
	if (access(path, F_OK) != 0)
		return;
	GCHECK(chown(path, 0, HB_GID) == 0);
	GCHECK(chmod(path, 0660) == 0);
}

/*
 * Does, as root, what the udev rule in configs/99-hyperbuf.rules does (this initramfs has no
 * udev): the ports org.hyperbuf.N and the ivshmem devices' resource0, resource2 and
 * resource2_wc go to group HB_GID, mode 0660. Then becomes a user in that group and nothing
 * else, for the rest of the case.
 */
static void become_unprivileged(void)
{
	char path[512], name[64];
	struct dirent *e;
	gid_t gid = HB_GID;
	int status;
	pid_t pid;
	DIR *dir;

	/* Before: a user may not open the port. */
	fflush(stdout);
	pid = fork();
	GCHECK(pid >= 0);
	if (pid == 0) {
		struct hb_client *c;

		if (setgroups(1, &gid) != 0 || setgid(HB_GID) != 0 || setuid(HB_UID) != 0)
			_exit(2);
		c = hb_connect(NULL);
		_exit(!c && errno == EACCES ? 0 : 1);
	}
	GCHECK(waitpid(pid, &status, 0) == pid);
	GCHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	say("HBVM-STEP without the rule's permissions a user gets EACCES");

	dir = opendir("/sys/class/virtio-ports");
	GCHECK(dir != NULL);
	while ((e = readdir(dir))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f) && strncmp(name, "org.hyperbuf.", 13) == 0) {
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			grant(path);
		}
		fclose(f);
	}
	closedir(dir);
	dir = opendir("/sys/bus/pci/devices");
	GCHECK(dir != NULL);
	while ((e = readdir(dir))) {
		static const char *const files[] = {"resource0", "resource2", "resource2_wc"};
		char id[16] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", e->d_name);
		f = fopen(path, "r");
		if (f) {
			if (!fgets(id, sizeof(id), f))
				id[0] = '\0';
			fclose(f);
		}
		if (strncmp(id, "0x1110", 6) != 0)
			continue;
		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", e->d_name,
				 files[i]);
			grant(path);
		}
	}
	closedir(dir);
	GCHECK(setgroups(1, &gid) == 0);
	GCHECK(setgid(HB_GID) == 0);
	GCHECK(setuid(HB_UID) == 0);
	GCHECK(geteuid() == HB_UID && getegid() == HB_GID);
	say("HBVM-STEP running as uid %d gid %d from here on", HB_UID, HB_GID);
}

/* ---- read-only imports are read-only in the guest too ------------------------------------ */

static int readonly(int role)
{
	struct hb_client *c;
	struct hb_import *im;
	struct hb_event ev;
	volatile uint8_t *p;
	uint8_t before;
	int status;
	pid_t pid;

	GCHECK(role == 1);
	become_unprivileged();
	c = connect_default();
	say("HBVM-READY connected");
	wait_event(c, HB_EVENT_EXPORTED, 0, &ev);
	errno = 0;
	GCHECK(hb_import(c, &ev.id, HB_IMPORT_WRITE) == NULL && errno == EACCES);
	im = hb_import(c, &ev.id, 0);
	GCHECK(im != NULL);
	GCHECK(tool_pattern_check(hb_import_data(im), hb_import_size(im), HBVM_RO_SEED) ==
	       hb_import_size(im));
	p = hb_import_data(im);
	before = p[100];
	fflush(stdout);
	pid = fork();
	GCHECK(pid >= 0);
	if (pid == 0) {
		/* The fault is the point here: not a crash to report (report.c). */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		p[100] = (uint8_t)(before + 1); /* must fault */
		_exit(0);
	}
	GCHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFSIGNALED(status) || (WTERMSIG(status) != SIGSEGV && WTERMSIG(status) != SIGBUS))
		fail(__LINE__, "a write to a read-only import did not fault (status %#x)", status);
	GCHECK(p[100] == before);
	say("HBVM-STEP the write faulted (signal %d); the byte is unchanged", WTERMSIG(status));
	hb_import_release(im);
	hb_disconnect(c);
	return 0;
}

/* ---- a guest that is killed: it shares both ways, then waits to be killed ---------------- */

static int killed(int role)
{
	struct hb_client *c = connect_default();
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_id id;

	GCHECK(role == 1);
	say("HBVM-READY connected");
	wait_event(c, HB_EVENT_EXPORTED, 0, &ev);
	im = hb_import(c, &ev.id, 0);
	GCHECK(im != NULL);
	GCHECK(tool_pattern_check(hb_import_data(im), HBVM_HOLD_SIZE, HBVM_HOLD_SEED) ==
	       HBVM_HOLD_SIZE);
	b = hb_buffer_alloc(c, 0, HBVM_KILLED_SIZE, 0);
	GCHECK(b != NULL);
	tool_pattern_fill(hb_buffer_data(b), HBVM_KILLED_SIZE, HBVM_KILLED_SEED);
	export_until_imported(c, b, "doomed", 6, &id);
	say("HBVM-READY holding");
	for (;;)
		pause(); /* until QEMU is killed under us */
}

/* ---- several processes, several ports; a process that dies in the middle of a frame ------ */

/* The virtio-serial port this process opened last, found among its descriptors (hb_get_fd is
 * an epoll set of the library's, not the port; a forked child also holds its parent's). */
static int port_fd(void)
{
	char path[64], link[128];

	for (int fd = 255; fd >= 3; fd--) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strstr(link, "/dev/vport") || strstr(link, "/dev/virtio-ports/"))
			return fd;
	}
	return -1;
}

static int ports(int role)
{
	struct hb_client *first, *second, *third;
	struct hb_info info;
	int status, pfd[2];
	pid_t pid;

	GCHECK(role == 1);
	first = connect_default();
	GCHECK(pipe(pfd) == 0);
	fflush(stdout);
	pid = fork();
	GCHECK(pid >= 0);
	if (pid == 0) {
		/* A process that shares, then dies writing a frame: 60 bytes of a 300-byte one. */
		struct hb_client *c = connect_default();
		struct hb_buffer *b = hb_buffer_alloc(c, 0, 4096, 0);
		struct hb_id id;
		uint8_t half[64] = {44, 1, 0, 0};

		GCHECK(b != NULL);
		GCHECK(hb_export(b, "orphan", 6, 0, &id) == 0);
		say("HBVM-READY child-exported");
		GCHECK(write(port_fd(), half, 64) == 64);
		GCHECK(write(pfd[1], "x", 1) == 1);
		_exit(0);
	}
	close(pfd[1]);
	{
		char x;
		GCHECK(read(pfd[0], &x, 1) == 1);
	}
	GCHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pfd[0]);
	/* Its port is free again; the new process's resync ends the session it left. */
	second = connect_default();
	say("HBVM-STEP a new process took the dead one's port");
	/* Both ports taken: a third process gets a clear error. */
	errno = 0;
	third = hb_connect("kvm:");
	if (third || errno != EBUSY)
		fail(__LINE__, "a third client: %p, want EBUSY", (void *)third);
	say("HBVM-STEP a third process gets EBUSY");
	/* A client that leaves frees its port at once. */
	hb_disconnect(second);
	third = connect_default();
	GCHECK(hb_self_domain(third) == 1);
	/* The first one never noticed any of it. */
	{
		struct hb_id none = {{0}};

		errno = 0;
		GCHECK(hb_query(first, &none, &info) == -1 && errno == ENOENT);
	}
	hb_disconnect(third);
	hb_disconnect(first);
	return 0;
}

/* ---- the daemon restarts under a running guest ------------------------------------------ */

static int restart(int role)
{
	struct hb_client *c = connect_default();
	uint64_t end;
	int r;

	GCHECK(role == 1);
	say("HBVM-READY connected");
	/* The daemon goes: the port hangs up, and the client stays broken with one errno. */
	do
		r = hb_dispatch(c, 1000);
	while (r >= 0);
	GCHECK(errno == EPIPE || errno == ECONNRESET);
	r = errno;
	errno = 0;
	GCHECK(hb_dispatch(c, 0) == -1 && errno == r);
	hb_disconnect(c);
	say("HBVM-STEP lost the daemon (%s)", strerror(r));
	/* QEMU reconnects the port to the new daemon (reconnect=1); until then: ECONNREFUSED.
	 * But QEMU cannot reconnect an ivshmem device: the BARs are the old daemon's pools, and
	 * the library must say so rather than map them. */
	end = now_us() + (uint64_t)WAIT_MS * 1000u;
	for (;;) {
		errno = 0;
		c = hb_connect(NULL);
		if (c)
			fail(__LINE__, "connected with the old daemon's pools");
		if (errno != ECONNREFUSED)
			break;
		if (now_us() > end)
			fail(__LINE__, "the port never came back");
		sleep_ms(200);
	}
	if (errno != ENODEV)
		fail(__LINE__, "hb_connect after the restart: want ENODEV");
	say("HBVM-STEP after the restart hb_connect says ENODEV: the VM must restart too");
	return 0;
}

/* ---- frames while the daemon is killed over and over (docs/RESTART.md) ------------------ */

/* Waits for fence (t, value): the daemon may restart in the middle, the wait must not hang. */
static void wait_fence(struct hb_client *c, uint64_t t, uint64_t value)
{
	struct hb_fence f = {.timeline = t, .value = value};
	struct hb_sync *s = hb_sync_open(c, &f);

	GCHECK(s != NULL);
	if (hb_sync_wait(s, WAIT_MS) < 0)
		fail(__LINE__, "fence (%llx, %llu): %s", (unsigned long long)t,
		     (unsigned long long)value, strerror(errno));
	if (hb_sync_status(s) != 1)
		fail(__LINE__, "fence (%llx, %llu): status %d", (unsigned long long)t,
		     (unsigned long long)value, hb_sync_status(s));
	hb_sync_close(s);
}

/* vm1: HBVM_STRESS_FRAMES frames to each consumer, three buffers each, a buffer reused only
 * once its consumer acked the frame it held. */
static int stress_producer(struct hb_client *c)
{
	static const uint32_t consumers[2] = {2, 0};
	struct hb_timeline *t = hb_timeline_create(c);
	struct hb_buffer *ring[2][3];
	uint64_t ack[2] = {0, 0};
	struct hb_event ev;
	struct hb_id id;

	GCHECK(t != NULL);
	for (int j = 0; j < 2; j++) {
		GCHECK(hb_timeline_share(t, consumers[j]) == 0);
		for (int i = 0; i < 3; i++) {
			ring[j][i] = hb_buffer_alloc(c, consumers[j], HBVM_STRESS_SIZE, 0);
			GCHECK(ring[j][i] != NULL);
		}
	}
	/* Each consumer's ack timeline comes in its hello's metadata. */
	while (!ack[0] || !ack[1]) {
		next_event(c, &ev);
		for (int j = 0; j < 2; j++)
			if (ev.type == HB_EVENT_EXPORTED && ev.domain == consumers[j] &&
			    ev.meta_len == sizeof(uint64_t))
				memcpy(&ack[j], ev.meta, sizeof(uint64_t));
	}
	say("HBVM-READY producing");
	for (uint64_t k = 1; k <= HBVM_STRESS_FRAMES; k++) {
		struct hbvm_stress_meta meta = {.frame = k, .timeline = hb_timeline_id(t)};

		for (int j = 0; j < 2; j++) {
			struct hb_buffer *b = ring[j][k % 3];

			if (k > 3)
				wait_fence(c, ack[j], k - 3);
			tool_pattern_fill(hb_buffer_data(b), HBVM_STRESS_SIZE,
					  HBVM_STRESS_SEED(k, consumers[j]));
			GCHECK(hb_export(b, &meta, sizeof(meta), 0, &id) == 0);
		}
		GCHECK(hb_timeline_signal(t, k) == 0);
	}
	for (int j = 0; j < 2; j++)
		wait_fence(c, ack[j], HBVM_STRESS_FRAMES);
	/* Frame N + 1 is "done": the consumers keep their ack timelines until then. */
	GCHECK(hb_timeline_signal(t, HBVM_STRESS_FRAMES + 1) == 0);
	say("HBVM-STEP %d frames to each consumer, all acked", HBVM_STRESS_FRAMES);
	for (int j = 0; j < 2; j++)
		for (int i = 0; i < 3; i++)
			hb_buffer_free(ring[j][i]);
	hb_timeline_destroy(t);
	return 0;
}

/* vm2: imports each frame, waits for its fence, checks every byte, acks it. */
static int stress_consumer(struct hb_client *c)
{
	struct hb_timeline *ack = hb_timeline_create(c);
	struct hb_buffer *hello = hb_buffer_alloc(c, 1, 4096, 0);
	uint64_t ack_id, last = 0, restarts = 0, hello_at = 0, producer = 0;
	struct hb_event ev;
	struct hb_id id;

	GCHECK(ack && hello && hb_timeline_share(ack, 1) == 0);
	ack_id = hb_timeline_id(ack);
	while (last < HBVM_STRESS_FRAMES) {
		struct hbvm_stress_meta meta;
		struct hb_import *im;

		/* Until the first frame: the producer may connect after our hello. */
		if (!last && now_us() > hello_at) {
			GCHECK(hb_export(hello, &ack_id, sizeof(ack_id), 0, &id) == 0);
			hello_at = now_us() + 1000000u;
		}
		if (hb_next_event(c, &ev) < 0) {
			GCHECK(errno == EAGAIN && hb_dispatch(c, 200) >= 0);
			continue;
		}
		restarts += ev.type == HB_EVENT_RESTARTED;
		if (ev.type != HB_EVENT_EXPORTED || ev.domain != 1 || ev.meta_len != sizeof(meta))
			continue;
		memcpy(&meta, ev.meta, sizeof(meta));
		if (meta.frame != last + 1)
			fail(__LINE__, "frame %llu after %llu", (unsigned long long)meta.frame,
			     (unsigned long long)last);
		im = hb_import(c, &ev.id, 0);
		if (!im)
			fail(__LINE__, "import of frame %llu: %s", (unsigned long long)meta.frame,
			     strerror(errno));
		wait_fence(c, meta.timeline, meta.frame);
		if (tool_pattern_check(hb_import_data(im), HBVM_STRESS_SIZE,
				       HBVM_STRESS_SEED(meta.frame, 2)) != HBVM_STRESS_SIZE)
			fail(__LINE__, "frame %llu: wrong bytes", (unsigned long long)meta.frame);
		hb_import_release(im);
		last = meta.frame;
		producer = meta.timeline;
		GCHECK(hb_timeline_signal(ack, last) == 0);
	}
	wait_fence(c, producer, HBVM_STRESS_FRAMES + 1);
	say("HBVM-STEP %llu frames checked byte for byte, %llu restarts seen",
	    (unsigned long long)last, (unsigned long long)restarts);
	hb_buffer_free(hello);
	hb_timeline_destroy(ack);
	return 0;
}

static int restart_stress(int role)
{
	struct hb_client *c = connect_default();
	int r = role == 1 ? stress_producer(c) : stress_consumer(c);

	hb_disconnect(c);
	return r;
}

/* ---- fenced frame ping-pong between the two guests --------------------------------------- */

#define FENCE_ROUNDS 50

struct pingpong_meta {
	uint64_t timeline; /* the sender's timeline */
};

static int fence_ping_pong(int role)
{
	struct hb_client *c = connect_default();
	struct hb_timeline *mine = hb_timeline_create(c);
	struct pingpong_meta meta = {0}, theirs;
	struct hb_buffer *b;
	struct hb_import *im = NULL;
	struct hb_event ev;
	struct hb_id id;
	uint32_t peer = role == 1 ? 2 : 1;
	uint64_t t0 = 0;
	void *out, *in = NULL;

	GCHECK(mine != NULL);
	/* Its fences travel in metadata, so the peer must be let see the timeline. */
	GCHECK(hb_timeline_share(mine, peer) == 0);
	/* Each guest exports a frame to the other with its timeline id in the metadata. */
	b = hb_buffer_alloc(c, peer, (size_t)FRAME_W * FRAME_H * 4, 0);
	GCHECK(b != NULL);
	out = hb_buffer_data(b);
	meta.timeline = hb_timeline_id(mine);
	/* The peer may connect after our first export: export again every second until we
	 * have imported its frame and it ours. */
	for (bool imported = false; !im || !imported;) {
		uint64_t slice = now_us() + 1000000u;

		GCHECK(hb_export(b, &meta, sizeof(meta), 0, &id) == 0);
		while (now_us() < slice && (!im || !imported)) {
			while (hb_next_event(c, &ev) == 0) {
				if (ev.type == HB_EVENT_IMPORTED && hb_id_equal(&ev.id, &id))
					imported = true;
				if (ev.type != HB_EVENT_EXPORTED || ev.domain != peer || im)
					continue;
				im = hb_import(c, &ev.id, 0);
				GCHECK(im != NULL);
				GCHECK(hb_import_metadata(im, &theirs, sizeof(theirs)) ==
				       (ssize_t)sizeof(theirs));
				in = hb_import_data(im);
			}
			GCHECK(hb_dispatch(c, 100) >= 0);
		}
	}
	/* Round k: vm1 renders frame k and signals k; vm2 waits for it, checks it, renders its
	 * answer and signals k; vm1 waits for that. */
	for (uint64_t k = 1; k <= FENCE_ROUNDS; k++) {
		struct hb_fence f = {.timeline = theirs.timeline, .value = k};
		struct hb_sync *s;

		if (role == 1) {
			if (k == 1)
				t0 = now_us();
			tool_pattern_frame(out, FRAME_W, 64, FRAME_W * 4, k);
			GCHECK(hb_timeline_signal(mine, k) == 0);
		}
		s = hb_sync_open(c, &f);
		GCHECK(s != NULL);
		GCHECK(hb_sync_wait(s, WAIT_MS) == 0);
		GCHECK(hb_sync_status(s) == 1);
		hb_sync_close(s);
		if (tool_pattern_frame_check(in, FRAME_W, 64, FRAME_W * 4, k) >= 0)
			fail(__LINE__, "frame %llu was not complete when its fence signalled",
			     (unsigned long long)k);
		if (role == 2) {
			tool_pattern_frame(out, FRAME_W, 64, FRAME_W * 4, k);
			GCHECK(hb_timeline_signal(mine, k) == 0);
		}
	}
	if (role == 1)
		say("HBVM-INFO fence_round_trip_avg_us=%llu rounds=%d",
		    (unsigned long long)((now_us() - t0) / FENCE_ROUNDS), FENCE_ROUNDS);
	hb_import_release(im);
	hb_buffer_free(b);
	hb_timeline_destroy(mine);
	hb_disconnect(c);
	return 0;
}

static const struct hbvm_case_fn cases[] = {
    {"g2g_frame", g2g_frame},
    {"guest_host", guest_host},
    {"writable", writable},
    {"readonly", readonly},
    {"killed", killed},
    {"ports", ports},
    {"restart", restart},
    {"fence_ping_pong", fence_ping_pong},
    {"restart_stress", restart_stress},
};

int main(int argc, char **argv)
{
	return hbvm_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
