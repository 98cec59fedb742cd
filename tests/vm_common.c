/*
 * Real QEMU guests for the VM suites (tests/test_vm_kvm.c, tests/test_vm_dmabuf.c) and
 * bench-vm: see vm_common.h.
 */
#include <sys/prctl.h>
#include <sys/resource.h>

#include "tests/vm_common.h"

static struct vm *live[VM_MAX];

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

const char *vm_file(const char *image, const char *name)
{
	static char path[4][512];
	static unsigned n;
	char *p = path[n++ % 4];

	snprintf(p, sizeof(path[0]), "%s/kvm/%s%s%s", hbt_build_dir(), image, *image ? "/" : "",
		 name);
	return p;
}

void vm_need(const char *image)
{
	char why[256] = "";
	FILE *f;

	if (!qemu_path())
		SKIP("no qemu-system-x86_64 (apt-get install qemu-system-x86)");
	f = fopen(vm_file(image, "missing"), "r");
	if (f) {
		if (!fgets(why, sizeof(why), f))
			why[0] = '\0';
		fclose(f);
		why[strcspn(why, "\n")] = '\0';
		SKIP("%s", why[0] ? why : "the guest image could not be built");
	}
	if (access(vm_file(image, "initramfs.cpio.gz"), R_OK) != 0 ||
	    access(vm_file(image, "vmlinuz"), R_OK) != 0)
		SKIP("no guest image in %s (make tests builds it)", vm_file(image, ""));
	alarm(VM_CASE_ALARM_S);
}

void vm_print_file(const char *title, const char *path)
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

void vm_reap(struct vm *v, bool kill_it)
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
	for (int i = 0; i < VM_MAX; i++) {
		struct vm *v = live[i];

		if (!v || v->owner != getpid())
			continue;
		live[i] = NULL;
		vm_print_file(v->name, v->console);
		vm_print_file("qemu stderr", v->qemu_log);
		vm_reap(v, true);
	}
	fflush(stderr);
}

static void track(struct vm *v)
{
	for (int i = 0; i < VM_MAX; i++) {
		if (!live[i]) {
			live[i] = v;
			hbt_cleanup_extra = vm_cleanup;
			return;
		}
	}
	CHECK(!"too many VMs");
}

void vm_untrack(struct vm *v)
{
	for (int i = 0; i < VM_MAX; i++) {
		if (live[i] == v)
			live[i] = NULL;
	}
}

/* The QEMU command line of docs/KVM.md for VM `id` of VM_TOPOLOGY (o->d), or a VM without
 * devices (no daemon: hbvm.noports=1 tells tests/kvm/init not to wait for ports). */
static int vm_args(struct vm *v, const struct vm_opts *o, int id, const char *case_name,
		   char **argv, char (*args)[400])
{
	static const char *const groups[2][2] = {{"hv1", "vv"}, {"hv2", "vv"}};
	const struct hbt_daemon *d = o->d;
	const char *accel = getenv("HB_VM_ACCEL");
	int argc = 0, nargs = 0;

#define ARG(s) (argv[argc++] = (char *)(s))
#define ARGF(...)                                                                                  \
	(snprintf(args[nargs], sizeof(args[0]), __VA_ARGS__), argv[argc++] = args[nargs++])

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
	ARGF("%d", o->mem_mb ? o->mem_mb : 256);
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
	ARG(vm_file(o->image, "vmlinuz"));
	ARG("-initrd");
	ARG(vm_file(o->image, "initramfs.cpio.gz"));
	ARG("-append");
	ARGF("console=ttyS0 quiet panic=-1 hbvm.case=%s hbvm.role=%d%s", case_name, id,
	     d ? "" : " hbvm.noports=1");
	if (!d)
		return argc;
	/* As under libvirt: the pid file VM_TOPOLOGY names the QEMU by (docs/SECURITY.md). */
	ARG("-pidfile");
	ARGF("%s/%s.pid", d->dir, v->name);
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
	if (o->side) {
		ARG("-chardev");
		ARGF("socket,id=hbcf,path=%s", o->side);
		ARG("-device");
		ARG("virtserialport,chardev=hbcf,name=hbconform");
	}
#undef ARG
#undef ARGF
	return argc;
}

void vm_start_opts(struct vm *v, const struct vm_opts *o, int id, const char *case_name)
{
	char *argv[64], args[40][400];
	pid_t parent = getpid();
	int argc, fd;

	memset(v, 0, sizeof(*v));
	v->id = id;
	v->owner = parent;
	snprintf(v->name, sizeof(v->name), "vm%d", id);
	snprintf(v->console, sizeof(v->console), "%s/%s.console", o->dir, v->name);
	snprintf(v->qemu_log, sizeof(v->qemu_log), "%s/%s.qemu.log", o->dir, v->name);
	argc = vm_args(v, o, id, case_name, argv, args);
	CHECK(argc < (int)(sizeof(argv) / sizeof(argv[0])));
	argv[argc] = NULL;

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

void vm_start(struct vm *v, const struct hbt_daemon *d, int id, const char *case_name)
{
	const struct vm_opts o = {.image = "", .dir = d->dir, .d = d};

	vm_start_opts(v, &o, id, case_name);
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
			if (strncmp(s, "HBVM-CRASH", 10) == 0) {
				fclose(f);
				hbt_fail(__FILE__, __LINE__,
					 "%s: %s (addr2line -f -e <its program under build/kvm/> "
					 "ADDRESS... names them)",
					 v->name, s);
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
void vm_check(struct vm *v)
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
const char *vm_wait(struct vm *v, const char *what, int timeout_ms)
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
void vm_finish(struct vm *v)
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
		vm_print_file(v->name, v->console);
	vm_untrack(v);
}

/* Waits for a host event of this type while v runs: a guest that fails or a QEMU that exits
 * fails the case at once rather than after the timeout. */
void vm_wait_event_at(int line, struct vm *v, struct hb_client *c, int type, struct hb_event *ev)
{
	uint64_t end = hbt_now_ms() + VM_WAIT_MS;

	while (it_wait_event_at(__FILE__, line, c, type, ev, 500) != 0) {
		vm_check(v);
		if (hbt_now_ms() >= end)
			hbt_fail(__FILE__, line, "no %s event within %d ms", it_event_name(type),
				 VM_WAIT_MS);
	}
}
