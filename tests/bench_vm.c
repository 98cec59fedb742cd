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

/*
 * Issue 12's goal 2, measured: a fenced round trip between two guests (vm1 signals its
 * timeline, vm2's hb_sync_wait wakes and signals back, vm1's wakes) through fence slots (and
 * with lazy records, where the signals stay in the slots), next
 * to the machine's own floor between the same two guests: a doorbell ping-pong through
 * hyperbuf.ko (the Doorbell register, an MSI-X vector into an eventfd); and the fenced round
 * trip on watches alone, the path before slots. All in one boot; medians, and their ratios.
 */
TEST(vm_fence_vs_doorbell)
{
	struct hbt_daemon d;
	struct vm v1, v2;
	double bell = 0, fence = 0, lazy = 0, watched = 0;
	const char *line;
	const char *accel = getenv("HB_VM_ACCEL");

	vm_need("dmabuf");
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	vm_start_opts(&v1, &(struct vm_opts){.image = "dmabuf", .dir = d.dir, .d = &d}, 1,
		      "bellbench");
	vm_start_opts(&v2, &(struct vm_opts){.image = "dmabuf", .dir = d.dir, .d = &d}, 2,
		      "bellbench");
	line = vm_wait(&v1, "HBVM-INFO doorbell_rtt_us", VM_WAIT_MS);
	CHECK(sscanf(line,
		     "HBVM-INFO doorbell_rtt_us=%lf fence_rtt_us=%lf lazy_rtt_us=%lf "
		     "watched_rtt_us=%lf",
		     &bell, &fence, &lazy, &watched) == 4);
	vm_finish(&v1);
	vm_finish(&v2);
	IT_STOP(&d);
	printf("\nguest to guest round trips (%s, two guests, one boot; medians):\n",
	       accel && *accel ? accel : "tcg");
	printf("  doorbell ping-pong (hyperbuf.ko: Doorbell register -> MSI-X -> eventfd)  "
	       "%9.1f us  1.00x\n",
	       bell);
	printf("  fenced round trip (timeline signal -> hb_sync_wait, each way; slots)     "
	       "%9.1f us  %.2fx\n",
	       fence, bell > 0 ? fence / bell : 0);
	printf("  the same with lazy records (hb_timeline_set_lazy)                        "
	       "%9.1f us  %.2fx\n",
	       lazy, bell > 0 ? lazy / bell : 0);
	printf("  the same on watches alone (HYPERBUF_SIGNALS=watched, the path before)    "
	       "%9.1f us  %.2fx\n",
	       watched, bell > 0 ? watched / bell : 0);
	printf("goal 2 guest fence round trip / doorbell ping-pong: %.2fx, lazy %.2fx (goal <= "
	       "1.5x: %s)\n",
	       bell > 0 ? fence / bell : 0, bell > 0 ? lazy / bell : 0,
	       bell > 0 && lazy / bell <= 1.5 ? "met" : "not met");
}
