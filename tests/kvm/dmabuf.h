/*
 * The dma-buf image's guest program (tests/test_vm_dmabuf.c, bench-vm; docs/DMABUF.md), run
 * by tests/kvm/init as `/hbguest CASE ROLE` in a Debian kernel with vgem loaded and
 * /lib/modules/{hyperbuf,udmabuf}.ko to load:
 *
 *   udmabuf  (dmabuf_udmabuf.c) hyperbufd, a host client and an emulated VM inside one guest:
 *            udmabuf's dma-bufs, vgem, DMA_BUF_IOCTL_SYNC, sync_files, holders
 *   guests   (dmabuf_guests.c) two KVM guests with hyperbuf.ko: a frame as dma-bufs, vgem, the
 *            reservation's fence, sync_files signalled, failed, and failed by a killed peer;
 *            then role 2 runs the hostile ioctls (dmabuf_hostile.c)
 *   bench    (dmabuf_bench.c) read bandwidth of a pool through sysfs and through hyperbuf.ko
 *   bells    (dmabuf_bells.c) two guests ring each other through hyperbuf.ko's doorbells
 *   bellbench (dmabuf_bells.c) those doorbells' ping-pong against a fenced one, for bench-vm
 */
#ifndef HB_TESTS_KVM_DMABUF_H
#define HB_TESTS_KVM_DMABUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "hyperbuf.h"
#include "tests/kvm/report.h"

/* The DRM ioctls used with vgem. Debian's linux-libc-dev has no drm/ headers (libdrm-dev has),
 * so they are spelled out here from include/uapi/drm/{drm,vgem_drm}.h, a stable ABI. */
struct hbvm_drm_prime_handle {
	uint32_t handle;
	uint32_t flags;
	int32_t fd;
};
struct hbvm_drm_gem_close {
	uint32_t handle;
	uint32_t pad;
};
struct hbvm_vgem_fence_attach {
	uint32_t handle;
	uint32_t flags; /* HBVM_VGEM_FENCE_WRITE */
	uint32_t out_fence;
	uint32_t pad;
};
struct hbvm_vgem_fence_signal {
	uint32_t fence;
	uint32_t flags;
};
#define HBVM_DRM_IOCTL_GEM_CLOSE          _IOW('d', 0x09, struct hbvm_drm_gem_close)
#define HBVM_DRM_IOCTL_PRIME_HANDLE_TO_FD _IOWR('d', 0x2d, struct hbvm_drm_prime_handle)
#define HBVM_DRM_IOCTL_PRIME_FD_TO_HANDLE _IOWR('d', 0x2e, struct hbvm_drm_prime_handle)
#define HBVM_VGEM_FENCE_WRITE             0x1u
#define HBVM_DRM_IOCTL_VGEM_FENCE_ATTACH  _IOWR('d', 0x41, struct hbvm_vgem_fence_attach)
#define HBVM_DRM_IOCTL_VGEM_FENCE_SIGNAL  _IOW('d', 0x42, struct hbvm_vgem_fence_signal)

#define FRAME_W      1920u
#define FRAME_H      1080u
#define FRAME_STRIDE (FRAME_W * 4u)
#define FRAME_BYTES  ((size_t)FRAME_STRIDE * FRAME_H)
#define PAGE         4096u

/* A call that must fail with this errno. */
#define GCHECK_ERR(expr, err)                                                                      \
	do {                                                                                       \
		errno = 0;                                                                         \
		if ((expr) != -1 || errno != (err))                                                \
			fail(__LINE__, "%s: want errno %d (%s)", #expr, (err), #err);              \
	} while (0)

/* insmod /lib/modules/NAME.ko PARAMS; and whether rmmod NAME succeeded. */
void load_module(const char *name, const char *params);
bool unload_module(const char *name);

/* The vgem device (/dev/dri/card0: the guest has no other DRM device). */
int vgem_open(void);
/*
 * What a DRM driver sees of a dma-buf of a 1080p frame: vgem imports it
 * (DRM_IOCTL_PRIME_FD_TO_HANDLE, which maps it for the device), gives it back
 * (PRIME_HANDLE_TO_FD: the same dma-buf, same inode), and a mapping of that shows the frame
 * `frame` (tools/pattern.h). bracket: DMA_BUF_IOCTL_SYNC START/END around the reads. A
 * writable mapping of it succeeds only if `writable`. Returns the vgem handle, left open in
 * vgem (close it with vgem_close; importing the same dma-buf again gives the same handle).
 */
uint32_t check_dmabuf_frame(int vgem, int dmabuf, uint64_t frame, bool writable, bool bracket);
void vgem_close(int vgem, uint32_t handle);
/* The other way round: vgem attaches a write fence of its own to the dma-buf (through its
 * handle), readers of the dma-buf (DMA_BUF_IOCTL_EXPORT_SYNC_FILE) wait for it, and vgem
 * signals it. */
void vgem_fence_round_trip(int vgem, uint32_t handle, int dmabuf);

/* SYNC_IOC_FILE_INFO's status: 1 signalled, 0 pending, or the fence's error. */
int sync_file_status(int fd);
/* Whether fd polls readable now. */
bool readable(int fd);
/* Polls sync_file fd until it signals, dispatching c meanwhile (the library signals it when
 * it learns of the completion, in hb_dispatch); fails after timeout_ms. */
void wait_sync_file(struct hb_client *c, int fd, int timeout_ms);
/* DMA_BUF_IOCTL_EXPORT_SYNC_FILE: the fences a reader (or writer) would wait for. */
int export_sync_file(int dmabuf, bool write);

/* Fails if the kernel log has a warning, an oops or a BUG (lockdep's reports included). */
void check_dmesg(void);

int udmabuf_case(int role);
int guests_case(int role);
int bench_case(int role);
/* dmabuf_bells.c: doorbells between two guests through hyperbuf.ko (bells, bellbench). */
int bells_case(int role);
int bellbench_case(int role);
/* dmabuf_hostile.c: every ioctl of hyperbuf.ko with hostile input, then unloading it. */
void hostile_ioctls(void);
void unload_refused_while_used(void);

#endif
