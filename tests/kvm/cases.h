/*
 * What the VM suite's two halves agree on: tests/test_vm_kvm.c on the host and tests/kvm/guest.c
 * in the guests. Domains: the host 0, vm1 1, vm2 2.
 */
#ifndef HB_TESTS_KVM_CASES_H
#define HB_TESTS_KVM_CASES_H

#include <stdint.h>

#define HBVM_FRAME_W  1920
#define HBVM_FRAME_H  1080
#define HBVM_FRAME_NO 42

/* guest_host: vm1 shares TO_HOST bytes with the host, the host FROM_HOST bytes with vm1. */
#define HBVM_TO_HOST_SIZE   ((3u << 20) + 123) /* not a page multiple: the exact size is kept */
#define HBVM_TO_HOST_SEED   0xa11ceull
#define HBVM_FROM_HOST_SIZE ((2u << 20) + 7)
#define HBVM_FROM_HOST_SEED 0xb0bull

/* readonly: the host shares RO_SIZE bytes with vm1, which may only read them. */
#define HBVM_RO_SIZE 65536u
#define HBVM_RO_SEED 0xc0ffeeull

/* killed: vm1 shares KILLED_SIZE bytes with the host and maps HOLD_SIZE of the host's. */
#define HBVM_KILLED_SIZE (1u << 20)
#define HBVM_KILLED_SEED 0xdeadull
#define HBVM_HOLD_SIZE   (256u << 10)
#define HBVM_HOLD_SEED   0xfeedull

/* restart_stress: vm1 renders STRESS_FRAMES frames of STRESS_SIZE bytes into three buffers per
 * consumer (vm2 and the host), fenced both ways, while the host kills the daemon
 * STRESS_KILLS times. A consumer says hello with a small export whose metadata is its ack
 * timeline; frames carry struct hbvm_stress_meta. Frame k for consumer c holds the pattern of
 * seed HBVM_STRESS_SEED(k, c). */
#define HBVM_STRESS_FRAMES     400
#define HBVM_STRESS_SIZE       (64u << 10)
#define HBVM_STRESS_KILLS      20
#define HBVM_STRESS_SEED(k, c) (0x5eed0000ull + (uint64_t)(k) * 16u + (c))

struct hbvm_stress_meta {
	uint64_t frame;    /* k, from 1 */
	uint64_t timeline; /* vm1's: frame k is complete at value k */
};

#endif
