/*
 * Real QEMU guests for the VM suites (tests/test_vm_kvm.c, tests/test_vm_dmabuf.c) and for
 * bench-vm: a Debian kernel and a busybox initramfs built by tests/kvm/mkinitramfs.sh into
 * $HB_BUILD/kvm/ (IMAGE ""), or $HB_BUILD/kvm/dmabuf/ (IMAGE "dmabuf": the dma-buf image, with
 * vgem and the modules of tests/kvm/mkmodules.sh), each VM with an ivshmem-doorbell device per
 * group on the daemon's per-VM ivshmem sockets and virtio-serial ports on its channel sockets,
 * exactly as docs/KVM.md tells users to. The guests report on their serial consoles; the host
 * side reads them.
 *
 *   HB_VM_ACCEL  tcg (default) or kvm: the same command line either way (kvm adds -cpu host)
 *   HB_QEMU      the QEMU binary (default qemu-system-x86_64 from PATH)
 *   HB_VM_VERBOSE=1  print every guest's console when it is done, not only on failure
 *
 * Nothing outlives a case: every QEMU dies with the test process (PR_SET_PDEATHSIG), has a CPU
 * time limit of its own, and is killed and reaped by the case or by the failure hook.
 */
#ifndef HB_TESTS_VM_COMMON_H
#define HB_TESTS_VM_COMMON_H

#include "tests/it_common.h"

#define VM_WAIT_MS      150000 /* boot and run, under TCG, with another case booting beside it */
#define VM_CPU_LIMIT    300    /* seconds of CPU a QEMU may use, whatever happens to us */
#define VM_EXIT_MS      30000  /* from the guest's last word to QEMU's exit (poweroff) */
#define VM_CASE_ALARM_S 175    /* under run-tests.sh's 180 s */
#define VM_MAX          2

/* The daemon: the host and two VMs, three groups with one pool each, per-VM ivshmem sockets
 * and two ports per VM. hv1 and vv have the same size, so a guest in both must tell its two
 * BARs apart by their headers. vm_start gives VM 1 hv1 and vv, VM 2 hv2 and vv. Each VM names
 * its QEMU by the pid file QEMU writes (as under libvirt, docs/SECURITY.md), so every case also
 * proves real QEMU passes the credential check: QEMU writes it before it opens its chardevs. */
#define VM_TOPOLOGY                                                                                \
	"[daemon]\nbackend = kvm\nsocket = host.sock\nlog = debug\n\n"                             \
	"[vm vm1]\nid = 1\nchannel = vm1-{port}.sock\nports = 2\npidfile = vm1.pid\n\n"            \
	"[vm vm2]\nid = 2\nchannel = vm2-{port}.sock\nports = 2\npidfile = vm2.pid\n\n"            \
	"[group hv1]\nmembers = host, vm1\nsize = 16M\nivshmem = hv1-{vm}.sock\n\n"                \
	"[group hv2]\nmembers = host, vm2\nsize = 16M\nivshmem = hv2-{vm}.sock\n\n"                \
	"[group vv]\nmembers = vm1, vm2\nsize = 16M\nivshmem = vv-{vm}.sock\n"

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

struct vm_opts {
	const char *image;          /* "" or "dmabuf": which guest image */
	const char *dir;            /* where the console and QEMU's log go */
	const struct hbt_daemon *d; /* VM_TOPOLOGY's devices on d's sockets; NULL: no devices */
	int mem_mb;                 /* 0: 256 */
	const char *side;           /* a socket of the test's: also a virtio-serial port
				     * "hbconform" on it (the conformance suite's side channel) */
};

/* A file of a guest image: $HB_BUILD/kvm[/IMAGE]/NAME (static storage, per call slot). */
const char *vm_file(const char *image, const char *name);
/* Skips the case, with the reason, where QEMU or the image is missing; arms the case alarm. */
void vm_need(const char *image);
/* Boots VM `id`, running tests/kvm/init's case `case_name` as role `id`. */
void vm_start(struct vm *v, const struct hbt_daemon *d, int id, const char *case_name);
void vm_start_opts(struct vm *v, const struct vm_opts *o, int id, const char *case_name);
/* Waits for a console line starting with `what` and returns it (static storage); fails the
 * case when the guest fails (HBVM-FAIL), its QEMU exits, or the time is up. HBVM-INFO lines are
 * passed on to stderr. */
const char *vm_wait(struct vm *v, const char *what, int timeout_ms);
/* Fails the case if the guest failed or its QEMU is gone. */
void vm_check(struct vm *v);
/* Waits for HBVM-PASS and QEMU's clean exit. */
void vm_finish(struct vm *v);
/* Kills (kill_it) and reaps v's QEMU; vm_untrack then keeps the failure hook off it. */
void vm_reap(struct vm *v, bool kill_it);
void vm_untrack(struct vm *v);
void vm_print_file(const char *title, const char *path);
/* Waits for a host event of this type while v runs: a guest that fails or a QEMU that exits
 * fails the case at once rather than after the timeout. */
void vm_wait_event_at(int line, struct vm *v, struct hb_client *c, int type, struct hb_event *ev);
#define VM_WAIT_EVENT(v, c, type, ev) vm_wait_event_at(__LINE__, (v), (c), (type), (ev))

#endif
