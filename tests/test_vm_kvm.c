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
#include <sys/prctl.h>
#include <sys/resource.h>

#include "tests/it_common.h"
#include "tests/kvm/cases.h"

#define VM_WAIT_MS   150000 /* boot and run, under TCG, with another case booting beside it */
#define VM_CPU_LIMIT 300    /* seconds of CPU a QEMU may use, whatever happens to us */
#define VM_EXIT_MS   30000  /* from the guest's last word to QEMU's exit (poweroff) */
#define CASE_ALARM_S 175    /* under run-tests.sh's 180 s */
#define MAX_VMS      2

/* The daemon: the host and two VMs, three groups with one pool each, per-VM ivshmem sockets
 * and two ports per VM. hv1 and vv have the same size, so a guest in both must tell its two
 * BARs apart by their headers. */
static const char topology[] =
    "[daemon]\nbackend = kvm\nsocket = host.sock\nlog = debug\n\n"
    "[vm vm1]\nid = 1\nchannel = vm1-{port}.sock\nports = 2\n\n"
    "[vm vm2]\nid = 2\nchannel = vm2-{port}.sock\nports = 2\n\n"
    "[group hv1]\nmembers = host, vm1\nsize = 16M\nivshmem = hv1-{vm}.sock\n\n"
    "[group hv2]\nmembers = host, vm2\nsize = 16M\nivshmem = hv2-{vm}.sock\n\n"
    "[group vv]\nmembers = vm1, vm2\nsize = 16M\nivshmem = vv-{vm}.sock\n";

struct vm {
	char name[8];
	int id;
	pid_t pid;
	pid_t owner;
	char console[320];
	char qemu_log[320];
	size_t seen; /* console bytes already looked at */
	uint64_t started_ms;
};

static struct vm *live[MAX_VMS];
/* The initramfs guests boot: the GStreamer cases set their own. */
static const char *guest_image = "initramfs.cpio.gz";

static const char *qemu_path(void)
{
	static char found[512];
	const char *name = getenv("HB_QEMU"), *path;
	char *copy, *dir, *save = NULL;

	if (name && *name)
		return access(name, X_OK) == 0 ? name : NULL;
	path = getenv("PATH");
	copy = strdup(path && *path ? path : "/usr/bin:/bin");
	CHECK(copy != NULL);
	found[0] = '\0';
	for (dir = strtok_r(copy, ":", &save); dir && !found[0]; dir = strtok_r(NULL, ":", &save)) {
		snprintf(found, sizeof(found), "%s/qemu-system-x86_64", dir);
		if (access(found, X_OK) != 0)
			found[0] = '\0';
	}
	free(copy);
	return found[0] ? found : NULL;
}

static const char *kvm_file(const char *name)
{
	static char path[4][512];
	static unsigned n;
	char *p = path[n++ % 4];

	snprintf(p, sizeof(path[0]), "%s/kvm/%s", hbt_build_dir(), name);
	return p;
}

/* Skips the case, with the reason, where the suite cannot run. */
static void need_vms(void)
{
	char why[256] = "";
	FILE *f;

	if (!qemu_path())
		SKIP("no qemu-system-x86_64 (apt-get install qemu-system-x86)");
	f = fopen(kvm_file("missing"), "r");
	if (f) {
		if (!fgets(why, sizeof(why), f))
			why[0] = '\0';
		fclose(f);
		why[strcspn(why, "\n")] = '\0';
		SKIP("%s", why[0] ? why : "the guest image could not be built");
	}
	if (access(kvm_file("initramfs.cpio.gz"), R_OK) != 0 ||
	    access(kvm_file("vmlinuz"), R_OK) != 0)
		SKIP("no guest image in %s/kvm (make tests builds it)", hbt_build_dir());
	alarm(CASE_ALARM_S);
}

static void print_file(const char *title, const char *path)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	fprintf(stderr, "---- %s ----\n", title);
	if (!f) {
		fprintf(stderr, "(none: %s)\n", strerror(errno));
		return;
	}
	/* The tail is what tells: a console is a few KiB at most. */
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > 6000)
		fseek(f, -6000, SEEK_END);
	else
		fseek(f, 0, SEEK_SET);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
	fprintf(stderr, "---- end of %s ----\n", title);
}

static void vm_reap(struct vm *v, bool kill_it)
{
	if (v->pid <= 0)
		return;
	if (kill_it)
		kill(v->pid, SIGKILL);
	while (waitpid(v->pid, NULL, 0) < 0 && errno == EINTR)
		;
	v->pid = 0;
}

/* The failure hook: say what the guests printed, then make sure no QEMU is left. */
static void vm_cleanup(void)
{
	for (int i = 0; i < MAX_VMS; i++) {
		struct vm *v = live[i];

		if (!v || v->owner != getpid())
			continue;
		live[i] = NULL;
		print_file(v->name, v->console);
		print_file("qemu stderr", v->qemu_log);
		vm_reap(v, true);
	}
	fflush(stderr);
}

static void track(struct vm *v)
{
	for (int i = 0; i < MAX_VMS; i++) {
		if (!live[i]) {
			live[i] = v;
			hbt_cleanup_extra = vm_cleanup;
			return;
		}
	}
	CHECK(!"too many VMs");
}

static void untrack(struct vm *v)
{
	for (int i = 0; i < MAX_VMS; i++) {
		if (live[i] == v)
			live[i] = NULL;
	}
}

/* The QEMU command line of docs/KVM.md, for VM `id` of the topology above. */
static void vm_start(struct vm *v, const struct hbt_daemon *d, int id, const char *case_name)
{
	static const char *const groups[2][2] = {{"hv1", "vv"}, {"hv2", "vv"}};
	const char *accel = getenv("HB_VM_ACCEL");
	char *argv[64], args[40][400];
	int argc = 0, nargs = 0, fd;
	pid_t parent = getpid();

#define ARG(s) (argv[argc++] = (char *)(s))
#define ARGF(...)                                                                                  \
	(snprintf(args[nargs], sizeof(args[0]), __VA_ARGS__), argv[argc++] = args[nargs++])

	memset(v, 0, sizeof(*v));
	v->id = id;
	v->owner = parent;
	snprintf(v->name, sizeof(v->name), "vm%d", id);
	snprintf(v->console, sizeof(v->console), "%s/%s.console", d->dir, v->name);
	snprintf(v->qemu_log, sizeof(v->qemu_log), "%s/%s.qemu.log", d->dir, v->name);
	if (!accel || !*accel)
		accel = "tcg";

	ARG(qemu_path());
	ARG("-name");
	ARG(v->name);
	ARG("-accel");
	ARG(accel);
	if (strcmp(accel, "kvm") == 0) {
		ARG("-cpu");
		ARG("host");
	}
	ARG("-machine");
	ARG("pc");
	ARG("-m");
	ARG("256");
	ARG("-smp");
	ARG("1");
	ARG("-nodefaults");
	ARG("-no-user-config");
	ARG("-display");
	ARG("none");
	ARG("-monitor");
	ARG("none");
	ARG("-no-reboot");
	ARG("-serial");
	ARGF("file:%s", v->console);
	ARG("-kernel");
	ARG(kvm_file("vmlinuz"));
	ARG("-initrd");
	ARG(kvm_file(guest_image));
	ARG("-append");
	ARGF("console=ttyS0 quiet panic=-1 hbvm.case=%s hbvm.role=%d", case_name, id);
	/* One ivshmem-doorbell device per group, on the VM's own socket of that group. */
	for (int g = 0; g < 2; g++) {
		ARG("-chardev");
		ARGF("socket,id=hbg%d,path=%s/%s-%s.sock", g, d->dir, groups[id - 1][g], v->name);
		ARG("-device");
		ARGF("ivshmem-doorbell,chardev=hbg%d,vectors=1", g);
	}
	/* Two ports; QEMU reconnects to a restarted daemon. */
	ARG("-device");
	ARG("virtio-serial-pci");
	for (int p = 0; p < 2; p++) {
		ARG("-chardev");
		ARGF("socket,id=hbc%d,path=%s/%s-%d.sock,reconnect=1", p, d->dir, v->name, p);
		ARG("-device");
		ARGF("virtserialport,chardev=hbc%d,name=org.hyperbuf.%d", p, p);
	}
	argv[argc] = NULL;
	CHECK(argc < (int)(sizeof(argv) / sizeof(argv[0])));
#undef ARG
#undef ARGF

	fflush(stdout);
	fflush(stderr);
	v->started_ms = hbt_now_ms();
	v->pid = fork();
	CHECK(v->pid >= 0);
	if (v->pid == 0) {
		struct rlimit cpu = {VM_CPU_LIMIT, VM_CPU_LIMIT + 5};

		/* Dies with us, whatever kills us; and stops by itself if it spins. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		setrlimit(RLIMIT_CPU, &cpu);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		fd = open(v->qemu_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	track(v);
}

/*
 * Reads the console from where the last vm_wait stopped. Returns the first line (static
 * storage, from "HBVM-" on) that starts with `what`, consuming the console up to it (with
 * consume); NULL if none yet. A guest's HBVM-FAIL fails the case; HBVM-INFO and HBVM-START lines
 * are passed on to stderr once (they are the suite's measurements).
 */
static const char *vm_scan(struct vm *v, const char *what, bool consume)
{
	static char line[512];
	size_t seen = v->seen;
	const char *hit = NULL;
	FILE *f = fopen(v->console, "r");

	if (!f)
		return NULL;
	if (fseek(f, (long)seen, SEEK_SET) == 0) {
		while (!hit && fgets(line, sizeof(line), f)) {
			char *s;

			if (!strchr(line, '\n'))
				break; /* the rest of it is still on its way */
			seen += strlen(line);
			line[strcspn(line, "\r\n")] = '\0';
			s = strstr(line, "HBVM-");
			if (!s)
				continue;
			if (strncmp(s, "HBVM-FAIL", 9) == 0) {
				fclose(f);
				hbt_fail(__FILE__, __LINE__, "%s: %s", v->name, s);
			}
			if (consume &&
			    (strncmp(s, "HBVM-INFO", 9) == 0 || strncmp(s, "HBVM-START", 10) == 0))
				fprintf(stderr, "%s: %s (%.1f s after start)\n", v->name, s,
					(hbt_now_ms() - v->started_ms) / 1000.0);
			if (what && strncmp(s, what, strlen(what)) == 0)
				hit = s;
		}
	}
	fclose(f);
	if (consume)
		v->seen = seen;
	return hit;
}

/* Fails the case if the guest failed or its QEMU is gone. */
static void vm_check(struct vm *v)
{
	int status;

	vm_scan(v, NULL, false);
	if (v->pid > 0 && waitpid(v->pid, &status, WNOHANG) == v->pid) {
		v->pid = 0;
		vm_scan(v, NULL, false);
		hbt_fail(__FILE__, __LINE__, "%s: QEMU exited (status %#x)", v->name, status);
	}
	if (v->pid <= 0)
		hbt_fail(__FILE__, __LINE__, "%s: QEMU is not running", v->name);
}

/* Waits for a console line starting with `what` and returns it; fails the case when the
 * guest fails, its QEMU exits, or the time is up. */
static const char *vm_wait(struct vm *v, const char *what, int timeout_ms)
{
	uint64_t end = hbt_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		const char *line = vm_scan(v, what, true);

		if (line)
			return line;
		vm_check(v);
		if (hbt_now_ms() >= end)
			hbt_fail(__FILE__, __LINE__, "%s: no \"%s\" within %d ms", v->name, what,
				 timeout_ms);
		it_sleep_ms(50);
	}
}

/* The guest passed; its QEMU then powers off by itself. */
static void vm_finish(struct vm *v)
{
	uint64_t end;
	int status;

	vm_wait(v, "HBVM-PASS", VM_WAIT_MS);
	fprintf(stderr, "%s: passed %.1f s after start\n", v->name,
		(hbt_now_ms() - v->started_ms) / 1000.0);
	end = hbt_now_ms() + VM_EXIT_MS;
	while (v->pid > 0 && hbt_now_ms() < end) {
		if (waitpid(v->pid, &status, WNOHANG) == v->pid) {
			v->pid = 0;
			CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		}
		it_sleep_ms(50);
	}
	if (v->pid > 0)
		hbt_fail(__FILE__, __LINE__, "%s: QEMU did not exit after the guest passed",
			 v->name);
	if (getenv("HB_VM_VERBOSE"))
		print_file(v->name, v->console);
	untrack(v);
}

/* Waits for a host event of this type while v runs: a guest that fails or a QEMU that exits
 * fails the case at once rather than after the timeout. */
static void vm_wait_event_at(int line, struct vm *v, struct hb_client *c, int type,
			     struct hb_event *ev)
{
	uint64_t end = hbt_now_ms() + VM_WAIT_MS;

	while (it_wait_event_at(__FILE__, line, c, type, ev, 500) != 0) {
		vm_check(v);
		if (hbt_now_ms() >= end)
			hbt_fail(__FILE__, line, "no %s event within %d ms", it_event_name(type),
				 VM_WAIT_MS);
	}
}
#define VM_WAIT_EVENT(v, c, type, ev) vm_wait_event_at(__LINE__, (v), (c), (type), (ev))

/* Guest to guest: vm1 renders a 1920x1080 XRGB8888 frame, vm2 learns of it from its export
 * notification and checks every byte. */
TEST(vm_guest_to_guest_frame)
{
	struct hbt_daemon d;
	struct vm v1, v2;

	need_vms();
	hbt_daemon_start_config(&d, topology);
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

	need_vms();
	hbt_daemon_start_config(&d, topology);
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

	need_vms();
	hbt_daemon_start_config(&d, topology);
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

	need_vms();
	hbt_daemon_start_config(&d, topology);
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

	need_vms();
	hbt_daemon_start_config(&d, topology);
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
	untrack(&v1);
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

	need_vms();
	hbt_daemon_start_config(&d, topology);
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

	need_vms();
	hbt_daemon_start_config(&d, topology);
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

	need_vms();
	hbt_daemon_start_config(&d, topology);
	vm_start(&v1, &d, 1, "fence_ping_pong");
	vm_start(&v2, &d, 2, "fence_ping_pong");
	vm_finish(&v2);
	vm_finish(&v1);
	IT_STOP(&d);
#endif
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
	FILE *f;

	need_vms();
	f = fopen(kvm_file("missing-initramfs-gst.cpio.gz"), "r");
	if (f) {
		char why[256] = "";

		if (!fgets(why, sizeof(why), f))
			why[0] = '\0';
		fclose(f);
		SKIP("%s", why);
	}
	if (access(kvm_file("initramfs-gst.cpio.gz"), R_OK) != 0)
		SKIP("no GStreamer guest image (the plugin needs libgstreamer1.0-dev and "
		     "libgstreamer-plugins-base1.0-dev)");
	guest_image = "initramfs-gst.cpio.gz";
	hbt_daemon_start_config(&d, gst_topology);
	vm_start(&v2, &d, 2, "gst_guest_to_guest");
	vm_start(&v1, &d, 1, "gst_guest_to_guest");
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
