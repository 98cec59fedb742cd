/*
 * The udmabuf case (docs/DMABUF.md, "Host and emulated VMs"): hyperbufd, a host client and an
 * emulated VM, all inside one guest running Debian's kernel, which has vgem but no udmabuf
 * until the test loads the one tests/kvm/mkmodules.sh built from Debian's source.
 *
 *   1. without udmabuf: ENODEV (and the library's log line on the console)
 *   2. udmabuf alone: a writable dma-buf, but a read-only one needs hyperbuf.ko: ENODEV
 *   3. the host writes a 1080p frame through its buffer's dma-buf; the VM imports it writable,
 *      vgem imports the VM's dma-buf and shows the frame; the VM writes back through it and
 *      the host sees that in its own mapping: one set of pages
 *   4. the VM shares a frame with a pending write fence: the host's read-only dma-buf of its
 *      import refuses writable mappings, carries the fence (DMA_BUF_IOCTL_EXPORT_SYNC_FILE is
 *      pending), a sync_file of the fence is pending; the VM signals; both signal, and a
 *      DMA_BUF_IOCTL_SYNC bracket goes through
 *   5. holders: the host releases its import while its dma-buf is still open: the VM still
 *      counts an importer; the host closes it: the VM hears RELEASED. The host frees its
 *      buffer while its dma-buf is open: the daemon keeps the pages until it is closed
 *
 * The two clients are processes of their own and pace each other over a socketpair.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/kvm/dmabuf.h"
#include "tools/pattern.h"

#define DIR        "/tmp/hb"
#define HOST_FRAME 11
#define VM_FRAME   12
#define MARK       0x5eadbeefu

static const char config[] = "[daemon]\nbackend = kvm\nsocket = " DIR "/host.sock\n\n"
			     "[vm vm1]\nid = 1\nchannel = " DIR "/vm1.sock\n\n"
			     "[group hv1]\nmembers = host, vm1\nsize = 64M\n"
			     "ivshmem = " DIR "/hv1.sock\n";

/* The daemon's pages_used (hyperbufctl stats). */
static long pages_used(void)
{
	char line[256];
	long n = -1;
	FILE *f = popen("/hyperbufctl -s " DIR "/host.sock stats", "r");

	GCHECK(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "pages_used: ", 12) == 0)
			n = strtol(line + 12, NULL, 10);
	GCHECK(pclose(f) == 0 && n >= 0);
	return n;
}

/* Step 5, the host's own buffer: freed while its dma-buf is open, its pages stay. */
static void buffer_holder(struct hb_client *c, struct hb_buffer *b)
{
	int fd = hb_buffer_dmabuf(b, 0);
	long before = pages_used();

	GCHECK(fd >= 0 && before > 0);
	hb_buffer_free(b);
	GCHECK(hb_dispatch(c, 0) >= 0);
	GCHECK(pages_used() == before);
	close(fd);
	GCHECK(hb_dispatch(c, 0) >= 0);
	GCHECK(pages_used() == 0);
	say("HBVM-STEP holder: a freed buffer kept its %ld pages until its dma-buf was closed",
	    before);
}

/* One byte each way: a step the other side may take now. */
static void step_send(int fd, char step)
{
	GCHECK(write(fd, &step, 1) == 1);
}

static void step_wait(int fd, char step)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char got;

	if (poll(&p, 1, HBVM_WAIT_MS) != 1 || read(fd, &got, 1) != 1)
		fail(__LINE__, "no step '%c' from the other side", step);
	if (got != step)
		fail(__LINE__, "step '%c' where '%c' was due", got, step);
}

/* Whether the daemon's log says "ready": it says so once every door listens (hyperbufd(8)). A
 * socket file alone is not enough: the doors are bound one after another. */
static bool daemon_ready(void)
{
	char line[512];
	bool ready = false;
	FILE *f = fopen(DIR "/hyperbufd.log", "r");

	while (f && !ready && fgets(line, sizeof(line), f))
		ready = strstr(line, " ready: ") != NULL;
	if (f)
		fclose(f);
	return ready;
}

static pid_t daemon_start(void)
{
	FILE *f;
	pid_t pid;

	GCHECK(mkdir(DIR, 0700) == 0 || errno == EEXIST);
	f = fopen(DIR "/hb.conf", "w");
	GCHECK(f && fputs(config, f) >= 0 && fclose(f) == 0);
	pid = fork();
	GCHECK(pid >= 0);
	if (pid == 0) {
		int fd = open(DIR "/hyperbufd.log", O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execl("/hyperbufd", "hyperbufd", "-c", DIR "/hb.conf", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; !daemon_ready(); i++) {
		if (i > 200)
			fail(__LINE__, "hyperbufd did not start");
		sleep_ms(50);
	}
	return pid;
}

/* Steps 1-2: what a kernel without udmabuf, and without hyperbuf.ko, says. */
static void without_modules(struct hb_buffer *b)
{
	int fd;

	GCHECK_ERR(hb_buffer_dmabuf(b, 0), ENODEV);
	say("HBVM-STEP no udmabuf: ENODEV");
	load_module("udmabuf", NULL);
	GCHECK_ERR(hb_buffer_dmabuf(b, HB_DMABUF_READ_ONLY), ENODEV);
	fd = hb_buffer_dmabuf(b, 0);
	GCHECK(fd >= 0);
	close(fd);
	say("HBVM-STEP udmabuf without hyperbuf.ko: writable yes, read-only ENODEV");
	load_module("hyperbuf", NULL);
}

/* Step 3, host: the frame goes in through the buffer's own dma-buf. */
static void host_writes_through_dmabuf(struct hb_buffer *b)
{
	int fd = hb_buffer_dmabuf(b, 0);
	void *p;

	GCHECK(fd >= 0);
	p = mmap(NULL, FRAME_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	GCHECK(p != MAP_FAILED);
	tool_pattern_frame(p, FRAME_W, FRAME_H, FRAME_STRIDE, HOST_FRAME);
	munmap(p, FRAME_BYTES);
	close(fd);
	GCHECK(tool_pattern_frame_check(hb_buffer_data(b), FRAME_W, FRAME_H, FRAME_STRIDE,
					HOST_FRAME) < 0);
}

static int host_side(int sock)
{
	struct hb_client *c = hb_connect("unix:" DIR "/host.sock");
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_event ev;
	struct hb_fence f;
	struct hb_sync *s;
	struct hb_id id;
	int vgem, dfd, es, sf;
	uint32_t handle;

	GCHECK(c != NULL);
	b = hb_buffer_alloc(c, 1, FRAME_BYTES, HB_BUFFER_PEER_WRITABLE);
	GCHECK(b != NULL);
	without_modules(b);
	host_writes_through_dmabuf(b);
	GCHECK(hb_export(b, NULL, 0, 0, &id) == 0);
	step_send(sock, 'A');
	step_wait(sock, 'B');
	GCHECK(*(volatile uint32_t *)hb_buffer_data(b) == MARK);
	say("HBVM-STEP the VM wrote through vgem's dma-buf; the host sees it");

	/* Step 4: the VM's frame, with its writer's fence still pending (the export that says
	 * which: the first one had no fence yet). */
	do
		wait_event(c, HB_EVENT_EXPORTED, 1, &ev);
	while (ev.meta_len != sizeof(f));
	memcpy(&f, ev.meta, sizeof(f));
	im = hb_import(c, &ev.id, 0);
	GCHECK(im != NULL);
	dfd = hb_import_dmabuf(im, 0);
	GCHECK(dfd >= 0);
	es = export_sync_file(dfd, false);
	GCHECK(!readable(es) && sync_file_status(es) == 0);
	s = hb_sync_open(c, &f);
	GCHECK(s != NULL);
	sf = hb_sync_file(s);
	GCHECK(sf >= 0 && sync_file_status(sf) == 0);
	vgem = vgem_open();
	handle = check_dmabuf_frame(vgem, dfd, VM_FRAME, false, false);
	say("HBVM-STEP read-only dma-buf of an import: vgem shows the frame; writer's fence "
	    "pending");
	step_send(sock, 'C');
	wait_sync_file(c, sf, HBVM_WAIT_MS);
	GCHECK(sync_file_status(sf) == 1 && hb_sync_status(s) == 1);
	wait_sync_file(c, es, HBVM_WAIT_MS);
	/* vgem gives the same handle for the same dma-buf. */
	GCHECK(check_dmabuf_frame(vgem, dfd, VM_FRAME, false, true) == handle);
	say("HBVM-STEP fence signalled: sync_file, the dma-buf's reservation, DMA_BUF_IOCTL_SYNC");
	close(sf);
	close(es);
	hb_sync_close(s);

	/* Step 5: the import lingers while vgem and dfd hold its dma-buf. */
	hb_import_release(im);
	step_send(sock, 'D');
	step_wait(sock, 'E');
	vgem_close(vgem, handle);
	close(dfd);
	close(vgem);
	GCHECK(hb_dispatch(c, 0) >= 0);
	step_send(sock, 'F');
	step_wait(sock, 'G');
	buffer_holder(c, b);
	hb_disconnect(c);
	return 0;
}

/* Step 3, the VM: a writable import, its dma-buf into vgem, a write back through it. */
static void vm_writes_back(struct hb_client *c)
{
	struct hb_import *im;
	struct hb_event ev;
	uint32_t handle;
	int vgem, fd;
	void *p;

	wait_event(c, HB_EVENT_EXPORTED, 0, &ev);
	im = hb_import(c, &ev.id, HB_IMPORT_WRITE);
	GCHECK(im != NULL);
	fd = hb_import_dmabuf(im, 0);
	GCHECK(fd >= 0);
	vgem = vgem_open();
	handle = check_dmabuf_frame(vgem, fd, HOST_FRAME, true, true);
	p = mmap(NULL, FRAME_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	GCHECK(p != MAP_FAILED);
	*(volatile uint32_t *)p = MARK;
	munmap(p, FRAME_BYTES);
	vgem_close(vgem, handle);
	close(vgem);
	close(fd);
	say("HBVM-STEP emulated VM: writable dma-buf of an import, vgem shows the host's frame");
	hb_import_release(im);
}

static int vm_side(int sock)
{
	struct hb_client *c = hb_connect("vm:" DIR "/vm1.sock");
	struct hb_timeline *t;
	struct hb_buffer *b;
	struct hb_info info;
	struct hb_event ev;
	struct hb_fence f;
	struct hb_id id;

	GCHECK(c != NULL);
	step_wait(sock, 'A');
	vm_writes_back(c);
	step_send(sock, 'B');

	t = hb_timeline_create(c);
	b = hb_buffer_alloc(c, 0, FRAME_BYTES, 0);
	GCHECK(t && b);
	tool_pattern_frame(hb_buffer_data(b), FRAME_W, FRAME_H, FRAME_STRIDE, VM_FRAME);
	f = (struct hb_fence){.timeline = hb_timeline_id(t), .value = 1};
	GCHECK(hb_export(b, NULL, 0, 0, &id) == 0);
	GCHECK(hb_attach_fence(c, &id, &f, HB_ACCESS_WRITE) == 0);
	GCHECK(hb_export(b, &f, sizeof(f), 0, &id) == 0);
	step_wait(sock, 'C');
	GCHECK(hb_timeline_signal(t, 1) == 0);

	step_wait(sock, 'D');
	/* The host released its import, but its dma-buf still holds it. */
	GCHECK(hb_query(c, &id, &info) == 0 && info.importers == 1);
	step_send(sock, 'E');
	step_wait(sock, 'F');
	wait_event(c, HB_EVENT_RELEASED, 0, &ev);
	GCHECK(hb_id_equal(&ev.id, &id));
	GCHECK(hb_query(c, &id, &info) == 0 && info.importers == 0);
	say("HBVM-STEP holder: the import stayed until its dma-buf was closed, then RELEASED");
	hb_buffer_free(b);
	hb_timeline_destroy(t);
	hb_disconnect(c);
	step_send(sock, 'G');
	return 0;
}

int udmabuf_case(int role)
{
	int sv[2], status;
	pid_t hbd, vm;

	hbd = daemon_start();
	GCHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	vm = fork();
	GCHECK(vm >= 0);
	if (vm == 0) {
		close(sv[0]);
		exit(vm_side(sv[1]));
	}
	close(sv[1]);
	GCHECK(host_side(sv[0]) == 0);
	GCHECK(waitpid(vm, &status, 0) == vm && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	GCHECK(kill(hbd, SIGTERM) == 0);
	GCHECK(waitpid(hbd, &status, 0) == hbd && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	check_dmesg();
	return 0;
}
