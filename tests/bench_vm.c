/*
 * bench-vm (make bench): a KVM guest's read bandwidth of its pool through hyperbuf.ko's cached
 * mapping against sysfs's resource2 (uncached) and resource2_wc (write-combining), measured in
 * one boot of the dma-buf image (tests/kvm/dmabuf_bench.c). Prints the figures and the ratios;
 * asserts nothing about them. Under TCG the CPU's memory types are not emulated, so the three
 * come out alike there: the figures that matter are under KVM (HB_VM_ACCEL=kvm).
 *
 * vm1's group hv1 has a 2 GiB pool here: too big for the 32-bit PCI hole, so SeaBIOS maps the
 * BAR above 4 GiB, where its MTRRs leave memory write-back; a small BAR lands in the hole,
 * which they make uncachable, and then no driver can map it cached (the bench prints the type
 * the kernel gave it).
 */
#include "tests/vm_common.h"

static const char topology[] =
    "[daemon]\nbackend = kvm\nsocket = host.sock\n\n"
    "[vm vm1]\nid = 1\nchannel = vm1-{port}.sock\nports = 2\n\n"
    "[vm vm2]\nid = 2\nchannel = vm2-{port}.sock\nports = 2\n\n"
    "[group hv1]\nmembers = host, vm1\nsize = 2G\nivshmem = hv1-{vm}.sock\n\n"
    "[group vv]\nmembers = vm1, vm2\nsize = 16M\nivshmem = vv-{vm}.sock\n";

TEST(vm_guest_read_bandwidth)
{
	struct hbt_daemon d;
	struct vm v;
	double uc = 0, wc = 0, wb = 0;
	char type[64] = "";
	const char *line;
	const char *accel = getenv("HB_VM_ACCEL");

	vm_need("dmabuf");
	hbt_daemon_start_config(&d, topology);
	vm_start_opts(&v,
		      &(struct vm_opts){.image = "dmabuf", .dir = d.dir, .d = &d, .mem_mb = 512}, 1,
		      "bench");
	line = vm_wait(&v, "HBVM-INFO read_mbps", VM_WAIT_MS);
	CHECK(sscanf(line,
		     "HBVM-INFO read_mbps_resource2=%lf read_mbps_resource2_wc=%lf "
		     "read_mbps_kmod=%lf kmod_memtype=%63s",
		     &uc, &wc, &wb, type) == 4);
	vm_finish(&v);
	IT_STOP(&d);
	printf("\nguest read bandwidth, 16 MiB of a 2 GiB pool (%s, one guest, one boot):\n",
	       accel && *accel ? accel : "tcg");
	printf("  resource2     (sysfs, uncached)          %8.0f MB/s  1.00x\n", uc);
	printf("  resource2_wc  (sysfs, write-combining)   %8.0f MB/s  %.2fx\n", wc,
	       uc > 0 ? wc / uc : 0);
	printf(
	    "  hyperbuf.ko   (/dev/hyperbuf, cached)    %8.0f MB/s  %.2fx  (the kernel's type for "
	    "the BAR: %s)\n",
	    wb, uc > 0 ? wb / uc : 0, type);
}
