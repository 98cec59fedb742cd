/*
 * bench-vm (make bench): a KVM guest's read bandwidth of its pool through hyperbuf.ko's cached
 * mapping against sysfs's resource2 (uncached) and resource2_wc (write-combining), measured in
 * one boot of the dma-buf image (tests/kvm/dmabuf_bench.c). Prints the figures and the ratios;
 * asserts nothing about them. Under TCG the CPU's memory types are not emulated, so the three
 * come out alike there: the figures that matter are under KVM (HB_VM_ACCEL=kvm).
 */
#include "tests/vm_common.h"

TEST(vm_guest_read_bandwidth)
{
	struct hbt_daemon d;
	struct vm v;
	double uc = 0, wc = 0, wb = 0;
	const char *line;
	const char *accel = getenv("HB_VM_ACCEL");

	vm_need("dmabuf");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start_opts(&v, &(struct vm_opts){.image = "dmabuf", .dir = d.dir, .d = &d}, 1, "bench");
	line = vm_wait(&v, "HBVM-INFO read_mbps", VM_WAIT_MS);
	CHECK(sscanf(line, "HBVM-INFO read_mbps_resource2=%lf read_mbps_resource2_wc=%lf "
			   "read_mbps_kmod=%lf",
		     &uc, &wc, &wb) == 3);
	vm_finish(&v);
	IT_STOP(&d);
	printf("\nguest read bandwidth of a 16 MiB pool (%s, one guest, one boot):\n",
	       accel && *accel ? accel : "tcg");
	printf("  resource2     (sysfs, uncached)          %8.0f MB/s  1.00x\n", uc);
	printf("  resource2_wc  (sysfs, write-combining)   %8.0f MB/s  %.2fx\n", wc,
	       uc > 0 ? wc / uc : 0);
	printf("  hyperbuf.ko   (/dev/hyperbuf, cached)    %8.0f MB/s  %.2fx\n", wb,
	       uc > 0 ? wb / uc : 0);
}
