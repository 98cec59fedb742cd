/*
 * The KVM backend, guest side (part of libhyperbuf): private to backends/kvm/guest.c,
 * attach.c, ivshmem_client.c, bars.c and port.c. The ops table itself is hbk_guest_ops
 * (backends/backend.h).
 *
 * A client reaches each group's pool one of three ways (enum hbb_attach_mode): a host process
 * gets the pool memfd with Attach's reply; an emulated VM connects to the group's ivshmem
 * socket and speaks the ivshmem protocol as QEMU does (ivshmem_client.c); a process inside a
 * KVM guest maps its ivshmem devices' BAR2 through sysfs (bars.c). Whatever the way, the pool
 * is one hbk_pool_window, and buffers are mapped from reference directories in it.
 */
#ifndef HB_BACKENDS_KVM_GUEST_H
#define HB_BACKENDS_KVM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/kvm/pool_window.h"

/* A sharing group from the welcome, and how this client reaches its memory. */
struct hbk_group {
	uint32_t id;
	uint64_t pool_size;
	uint32_t pool_instance; /* the header's instance, 0 from an older daemon (not checked) */
	struct hbk_pool_window win;
	/* Emulated VMs only (-1 otherwise): the ivshmem socket. Closing it tells the daemon the
	 * VM is gone, so it lives as long as the client. */
	int iv_fd;
	bool iv_ready;     /* the handshake is over; later messages are drained */
	uint32_t iv_peer;  /* the peer id the ivshmem server gave us (a guest: IVPosition) */
	uint8_t iv_msg[8]; /* a partly received 8-byte message */
	size_t iv_got;
	int iv_msg_fd; /* the fd that came with it, -1 if none */
	bool iv_readable, bell_readable; /* the last poll said so (hbk_guest.polled) */
	/* Doorbells (doorbell.c), vector 0: our own, rung to wake us (-1 until the server sends
	 * it, or a KVM guest's slot first asks hyperbuf.ko for it), and every other peer's, to
	 * wake them (emulated VMs only: a guest rings through the device). */
	int bell;
	bool bell_failed; /* a KVM guest's POOL_IRQFD failed once: no doorbell, no slots */
	unsigned own_fds; /* our own eventfds the server sent so far (one per vector) */
	struct hbk_bell *bells;
	size_t n_bells, cap_bells;
	struct hbp_fence_slot *slots; /* page 0, read-write, once a slot is asked for */
	/* KVM guests: the window's fd is hyperbuf.ko's /dev/hyperbuf/pool-<PCI address> (a cached
	 * mapping, dma-bufs) rather than sysfs's resource2 file. */
	bool kmod;
};

/* A peer's doorbell: the eventfd that interrupts it on vector 0. */
struct hbk_bell {
	uint32_t id;
	int fd;
};

struct hbk_guest {
	const struct hbb_guest_services *svc;
	struct hbk_group *groups;
	size_t n_groups;
	enum hbb_attach_mode mode;
	bool polled; /* a poll said which groups' fds are ready: the next drain reads only those */
	int udmabuf_fd; /* /dev/udmabuf once a dma-buf was asked for (host, emulated VMs); or -1 */
};

/* A mapping's struct hbb_mapping.priv: the pool pages it maps, in order, so that a dma-buf of
 * it has exactly those pages (the directory itself is in shared memory and may have changed
 * since). */
struct hbk_pages {
	uint32_t group;
	uint32_t n;
	bool window; /* read through the pool's own mapping: nothing of ours to unmap */
	uint32_t refs[];
};

/* attach.c: sends Attach for group g naming an ivshmem peer id; the reply is returned (free
 * it with svc->reply_free). */
int hbk_send_attach(struct hbk_guest *k, struct hbk_group *g, uint32_t peer_id,
		    struct hbb_reply *reply);
/* A host process's Attach: the pool memfd comes with the reply, and opens g's window. */
int hbk_host_attach(struct hbk_guest *k, struct hbk_group *g);

/* ivshmem_client.c: an emulated VM's group, attached as QEMU would: connect to ivshmem_path,
 * the handshake (the pool fd), then Attach naming the peer id we were given. */
int hbk_ivshmem_attach(struct hbk_guest *k, struct hbk_group *g, const char *ivshmem_path);
/* A host process's group whose Attach reply brought an ivshmem connection (fd, taken) rather
 * than the pool memfd: the handshake on it, which brings the pool and the doorbells. The
 * daemon bound it to us already. */
int hbk_ivshmem_adopt_fd(struct hbk_guest *k, struct hbk_group *g, int fd);
/* Reads later ivshmem messages of every ready group without blocking (keeping doorbells), and
 * empties our doorbells: how many doorbell reads, or a negative errno (the connection is gone,
 * or the server broke the protocol), which is fatal. */
int hbk_ivshmem_drain(struct hbk_guest *k);
size_t hbk_ivshmem_pollfds(struct hbk_guest *k, struct pollfd *pfd, size_t max);
/* The polled op: notes which of those fds a poll found ready. */
void hbk_ivshmem_polled(void *state, const struct pollfd *pfd, size_t n);

/* doorbell.c: an ivshmem message with an eventfd (taken: kept or closed) or without (the
 * peer went), after the handshake gave us our id. 0 or -ENOMEM. */
int hbk_bell_message(struct hbk_group *g, uint32_t id, int fd);
/* Empties our own doorbell, if it is polled: the reads it made (0 or 1). */
int hbk_bell_drain(struct hbk_group *g);
void hbk_bells_close(struct hbk_group *g);
/* The fence slot ops (struct hbb_guest_ops, version 3). */
struct hbp_fence_slot *hbk_slot(void *state, uint32_t group, uint32_t index);
int hbk_slot_bit(void *state, uint32_t group);
unsigned hbk_ring(void *state, uint32_t group, uint64_t *waiters, uint64_t *left);

/* dmabuf.c: the dma-buf op (backends/backend.h); and closing what it opened. */
int hbk_dmabuf(void *state, const struct hbb_mapping *m, bool writable);
void hbk_dmabuf_close(struct hbk_guest *k);

/* bars.c: inside a KVM guest, finds each group's ivshmem device and attaches its BAR2. */
int hbk_bars_attach(struct hbk_guest *k);
/* Whether this machine has an ivshmem PCI device (it is a KVM guest with a pool). */
bool hbk_bars_present(void);

#endif
