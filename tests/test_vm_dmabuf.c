/*
 * The dma-buf VM suite (docs/DMABUF.md; part of make check and make check-kvm wherever QEMU is
 * installed): real Debian kernels in QEMU, with vgem and the modules tests/kvm/mkmodules.sh
 * builds against the kernel's headers (hyperbuf.ko from kmod/, udmabuf.ko from Debian's own
 * source). The guest program is tests/kvm/dmabuf*.c; this side boots the guests
 * (tests/vm_common.h), plays its part, and checks what the daemon saw. The cases skip, saying
 * why, without QEMU, the headers or linux-source-6.1.
 */
#include "tests/vm_common.h"

/* hyperbufd, a host client and an emulated VM inside one guest: udmabuf's dma-bufs. */
TEST(vm_dmabuf_udmabuf)
{
	char dir[] = "/tmp/hb-dmabuf.XXXXXX";
	const struct vm_opts o = {.image = "dmabuf", .dir = dir, .mem_mb = 384};
	struct vm v;
	FILE *f;
	char line[512];
	bool said = false;

	vm_need("dmabuf");
	CHECK(mkdtemp(dir) != NULL);
	vm_start_opts(&v, &o, 1, "udmabuf");
	vm_finish(&v);
	/* Without udmabuf the library said why, on stderr (HYPERBUF_DEBUG=1 in the guest). */
	f = fopen(v.console, "r");
	CHECK(f != NULL);
	while (!said && fgets(line, sizeof(line), f))
		said = strstr(line, "this kernel has no udmabuf") != NULL;
	fclose(f);
	CHECK(said);
	unlink(v.console);
	unlink(v.qemu_log);
	rmdir(dir);
}

/* Two KVM guests with hyperbuf.ko: a frame as dma-bufs, sync_files, a killed peer; then the
 * module's hostile ioctls and unload in vm2. */
TEST(vm_dmabuf_guests)
{
	struct hbt_daemon d;
	struct vm v1, v2;
	uint64_t t0;

	vm_need("dmabuf");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start_opts(&v1, &(struct vm_opts){.image = "dmabuf", .dir = d.dir, .d = &d}, 1,
		      "guests");
	vm_start_opts(&v2, &(struct vm_opts){.image = "dmabuf", .dir = d.dir, .d = &d}, 2,
		      "guests");
	vm_wait(&v2, "HBVM-READY kill vm1", VM_WAIT_MS);
	t0 = hbt_now_ms();
	CHECK(kill(v1.pid, SIGKILL) == 0);
	vm_reap(&v1, false);
	vm_untrack(&v1);
	vm_wait(&v2, "HBVM-STEP (T,3)", VM_WAIT_MS);
	fprintf(stderr, "vm2: its sync_file errored within %llu ms of vm1's SIGKILL (host clock)\n",
		(unsigned long long)(hbt_now_ms() - t0));
	vm_finish(&v2);
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "bytes_copied"), 0);
	IT_STOP(&d);
}

/* Doorbells (docs/DMABUF.md): two guests ring each other through hyperbuf.ko, the Doorbell
 * register one way and an MSI-X vector into an eventfd the other; the ioctls' rules; a clean
 * kernel log. hyperbufd only introduces them (its ivshmem server hands out the eventfds). */
TEST(vm_dmabuf_bells)
{
	struct hbt_daemon d;
	struct vm v1, v2;

	vm_need("dmabuf");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start_opts(&v1, &(struct vm_opts){.image = "dmabuf", .dir = d.dir, .d = &d}, 1, "bells");
	vm_start_opts(&v2, &(struct vm_opts){.image = "dmabuf", .dir = d.dir, .d = &d}, 2, "bells");
	vm_finish(&v1);
	vm_finish(&v2);
	IT_CHECK_STAT(&d, "pages_used", 0);
	IT_STOP(&d);
}
