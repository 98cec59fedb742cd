/*
 * The two doors between hyperbuf's programs and a hypervisor backend.
 *
 * A backend (backends/kvm/, backends/xen/) has two sides, each behind one ops table:
 *
 * - The host side, which hyperbufd drives: struct hbb_host_ops. It places buffers (KVM: pages
 *   of a group's pool; Xen: a reservation the exporter then grants), serves the hypervisor's
 *   own connections (ivshmem, vchan), and follows domains' lives. The daemon hands it a narrow
 *   table of services, struct hbb_host_services: functions and plain values, never the
 *   daemon's structs.
 * - The guest side, which libhyperbuf drives: struct hbb_guest_ops for memory (attach pools or
 *   open the grant devices, allocate or grant a buffer, map an import, reclaim on a peer's
 *   death), and struct hbb_transport for how a guest process reaches the daemon. The library
 *   hands it a request callback, struct hbb_guest_services.
 *
 * Nothing under backends/ includes daemon/ or libclient/ (tools/check-layers.sh). A third
 * hypervisor adds backends/NAME/ with one host ops table and one guest ops table, registers
 * the first in daemon/backend.c and the second in libclient/memory.c, and needs nothing else.
 *
 * Versioning: every table starts with `version` (HBB_HOST_VERSION, HBB_GUEST_VERSION, ...).
 * Fields are only ever added at the end, marked with the version that added them; a caller
 * checks `version` before it uses a field newer than 1. Optional functions may be NULL.
 *
 * Errors: 0 or a positive count on success, a negative errno on failure; never errno.
 */
#ifndef HB_BACKENDS_BACKEND_H
#define HB_BACKENDS_BACKEND_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "protocol/hyperbuf.pb-c.h"
#include "protocol/refdir.h"

struct ev_loop;
struct hbp_fence_slot;

/* ---- host side (hyperbufd) ------------------------------------------------------------- */

#define HBB_HOST_VERSION 3u /* 2: restarts (fd store, restart state); 3: fence slots */

/* Who is asking: the daemon's view of the session a request arrived on. */
struct hbb_caller {
	uint32_t domain;   /* decided by the door the session came in by, never by the peer */
	pid_t pid;         /* SO_PEERCRED of its connection, -1 if unknown */
	uid_t uid;         /* the same, the connection's user */
	uint64_t session;  /* the session's serial, unique for the daemon's life */
	uint64_t attached; /* bit g - 1 is set once the session attached group g */
	uint32_t features; /* HBP_FEATURE_* its Hello announced */
	const char *label; /* for logs: "vm1#7" */
};

/*
 * The memory of a buffer, as a backend sees it. The daemon fills the first block from the
 * request, the backend the placement in alloc (and grant). The daemon never looks inside refs.
 */
struct hbb_buffer {
	uint64_t handle;  /* the daemon's name for it, private to the allocating session */
	uint64_t creator; /* serial of the session that allocated it */
	uint32_t exporter, peer;
	uint64_t size;  /* exact bytes */
	uint32_t flags; /* HB_BUFFER_PEER_WRITABLE */

	/* Placement. */
	uint32_t group; /* KVM pool; 0 for grant-based buffers */
	uint32_t *refs; /* the backend's; data pages, then directory pages */
	uint32_t data_pages, dir_pages;
	struct hbp_refdir desc; /* depth 0 until the pages are described (Xen: Grant) */
};

/* What the daemon does for a backend. ctx is the first argument of every function. */
struct hbb_host_services {
	uint32_t version; /* HBB_HOST_VERSION */
	void *ctx;
	struct ev_loop *loop;
	const struct hbc_config *cfg;
	/*
	 * A hypervisor connection that belongs to `domain` (KVM: an ivshmem connection bound to
	 * the VM) came (up) or went. While a domain has one it is present; when its last one goes,
	 * its sessions end and its peers hear DOMAIN_GONE. Returns 0 or -ENOMEM (up only).
	 */
	int (*domain_link)(void *ctx, uint32_t domain, bool up);
	/* The domain died (Xen: shut down, crashed, destroyed): its sessions end at once. */
	void (*domain_dead)(void *ctx, uint32_t domain, const char *why);
	/* A stream connection of `domain` became a session (Xen: one end of a socketpair fed
	 * from a vchan). Takes fd on success. -EMFILE over the session limits, -ENOMEM. */
	int (*session_open)(void *ctx, uint32_t domain, int fd);
	/* Nobody maps b any more: tell its creator's session (the wire event RECLAIMED). */
	void (*reclaimed)(void *ctx, const struct hbb_buffer *b);
	/* Pages held by the domain's buffers, and pages its imports map, over all its sessions. */
	uint64_t (*pages_held)(void *ctx, uint32_t domain);
	uint64_t (*pages_mapped)(void *ctx, uint32_t domain);

	/* Version 2: restarts (docs/RESTART.md). A backend keeps what must outlive the daemon in
	 * the fd store, by unique names, and its own small records in the restart state. */
	/* The descriptor the last daemon kept under name, or -1; the caller owns it, and it stays
	 * kept under that name until fd_forget. */
	int (*fd_take)(void *ctx, const char *name);
	/* Keeps fd (still the caller's) for the next daemon; fd_forget before closing it. */
	void (*fd_keep)(void *ctx, int fd, const char *name);
	void (*fd_forget)(void *ctx, const char *name);
	/* The names of kept descriptors nobody took yet that start with prefix (*cursor from 0). */
	const char *(*fd_next)(void *ctx, const char *prefix, size_t *cursor);
	/* The backend's records in the restart state, by key (never 0), written whole. */
	void (*state_put)(void *ctx, uint64_t key, const void *data, size_t len);
	void (*state_drop)(void *ctx, uint64_t key);
	/* True while start() runs for a daemon that the last one left descriptors to: the backend
	 * then adopts what it kept (pools, sockets, connections) instead of making new ones. */
	bool restoring;
	/* Set before stop() when the daemon hands over to the next one (docs/RESTART.md): leave
	 * socket files, pools and connections as they are (what is closed stays in the store). */
	bool handover;
};

struct hbb_host_ops {
	uint32_t version; /* HBB_HOST_VERSION */
	const char *name; /* "kvm", "xen": the config's backend = NAME */
	/* Creates the backend's state and its sockets or watches. svc stays valid until stop. */
	int (*start)(const struct hbb_host_services *svc, void **state);
	void (*stop)(void *state);
	/* 0 if domains a and b may share, -EPERM (no common group), -ENODEV (unknown domain). */
	int (*can_share)(void *state, uint32_t a, uint32_t b);
	/* Places b (size, exporter, peer set): group, refs, data/dir pages, desc, and writes the
	 * directory. -ENOSPC, -EFBIG, -ENOMEM, -ENODEV. On failure nothing stays allocated. */
	int (*alloc)(void *state, const struct hbb_caller *who, struct hbb_buffer *b);
	/* Gives b's pages back; they read as zero afterwards, except at shutdown (clients keep
	 * what they map: nothing is punched). Frees b->refs. */
	void (*release)(void *state, struct hbb_buffer *b, bool shutdown);
	/* Binds the session to a group (who->attached does not have it yet). A host session gets
	 * *fd_out, a pool fd to send (the caller closes it). -ENOENT, -EPERM, -EBUSY. */
	int (*attach)(void *state, const struct hbb_caller *who, uint32_t group, uint32_t peer_id,
		      int *fd_out);
	/* Adds the domain's groups or memory model to a Welcome; welcome_free undoes it. */
	int (*welcome)(void *state, uint32_t domain, Welcome *w);
	void (*welcome_free)(void *state, Welcome *w);
	/* Appends "key: value" statistics. */
	void (*stats)(void *state, void (*put)(void *ctx, const char *key, uint64_t v), void *ctx);
	/* Optional (grant-based backends): alloc only reserved; the exporter granted the pages
	 * and describes them with Grant. Checks desc as hostile input, takes it into b->desc. */
	int (*grant)(void *state, const struct hbb_caller *who, struct hbb_buffer *b,
		     const BufferDesc *desc);
	/* Optional: may who's domain map b now (Xen: its maptrack budget)? */
	int (*can_import)(void *state, const struct hbb_caller *who, const struct hbb_buffer *b);

	/* Version 2, all optional: restarts (docs/RESTART.md). */
	/* Puts every record the backend keeps (a snapshot of the restart state). */
	void (*save)(void *state,
		     void (*put)(void *ctx, uint64_t key, const void *data, size_t len), void *ctx);
	/* A restored buffer takes its placement back (KVM: its pages of the pool). Checks it as
	 * hostile input: -EBADMSG for pages out of the pool or already taken. */
	int (*restore_buffer)(void *state, struct hbb_buffer *b);
	/* One of the backend's records, after every buffer: -EBADMSG if it makes no sense. */
	int (*restore_record)(void *state, uint64_t key, const void *data, size_t len);
	/* Restoring is over (ok: the state was taken): what no record claimed goes. */
	void (*restore_done)(void *state, bool ok);

	/* Version 3, all optional: fence slots in a group's shared memory (PROTOCOL.md §3 "Fence
	 * slots"). The daemon never reads a slot to decide anything; it writes and rings. */
	/* A free slot of group's pool for a timeline at value: *index and a fresh *gen, the slot
	 * written (value, gen, no flags, no waiters). -ENOSPC when all are taken, -ENOENT. */
	int (*slot_take)(void *state, uint32_t group, uint64_t value, uint32_t *index,
			 uint32_t *gen);
	/* The timeline reached value: raise the slot's value to it and ring the waiters. */
	void (*slot_signal)(void *state, uint32_t group, uint32_t index, uint32_t gen,
			    uint64_t value);
	/* A point failed: POISON from here on, and ring the waiters. */
	void (*slot_poison)(void *state, uint32_t group, uint32_t index, uint32_t gen);
	/* The timeline is gone: poisoned, freed (gen 0), waiters rung. */
	void (*slot_put)(void *state, uint32_t group, uint32_t index, uint32_t gen);
};

extern const struct hbb_host_ops hbk_host_ops; /* backends/kvm/host.c */
extern const struct hbb_host_ops hbx_host_ops; /* backends/xen/host.c, WITH_XEN=1 builds */

/* ---- guest side (libhyperbuf) ------------------------------------------------------------ */

#define HBB_GUEST_VERSION 3u
#define HBB_FRAME_FDS     8u /* fds one frame may bring; the protocol sends one at most */

/* How a process reaches the daemon: a socket, a virtio-serial port, a vchan. */
struct hbb_transport;
struct hbb_transport_ops {
	uint32_t version; /* HBB_GUEST_VERSION */
	/* Reads up to len bytes, appending received fds to fds[*nfds..max) (closing any beyond).
	 * Returns the count, 0 at the end of the stream, -EAGAIN if nothing is there yet. */
	ssize_t (*recv)(struct hbb_transport *t, void *buf, size_t len, int *fds, unsigned *nfds,
			unsigned max);
	/* Writes up to len bytes: the count, -EAGAIN when there is no room, or -errno. */
	ssize_t (*send)(struct hbb_transport *t, const void *buf, size_t len);
	/* Ends the stream as the daemon sees it, keeping t->fd open (the connection broke). */
	void (*shutdown)(struct hbb_transport *t);
	/* Frees everything, t->fd included. broken: the stream already failed. */
	void (*close)(struct hbb_transport *t, bool broken);
	bool pollout; /* t->fd reports room to write (a vchan's event channel does not) */
};

struct hbb_transport {
	const struct hbb_transport_ops *ops;
	int fd;     /* what to poll for input */
	void *priv; /* the transport's own */
};

/* A reply to a request, with the fds that came with it. */
struct hbb_reply {
	ServerMsg *msg;
	int fds[HBB_FRAME_FDS];
	unsigned nfds;
};

/* What the library does for a guest side. ctx is the first argument of every function. */
struct hbb_guest_services {
	uint32_t version; /* HBB_GUEST_VERSION */
	void *ctx;
	/* Sends msg and waits for its reply. want: the body a successful reply carries (NOT_SET:
	 * any). 0 with *reply (free with reply_free), -errno from the daemon, or the connection's
	 * sticky error. */
	int (*request)(void *ctx, ClientMsg *msg, ServerMsg__BodyCase want,
		       struct hbb_reply *reply);
	void (*reply_free)(struct hbb_reply *reply);
	/* Handles whatever the daemon sent so far, without blocking: a handshake that waits on
	 * another socket calls it when channel_fd is readable, so events are never lost. */
	int (*pump)(void *ctx);
	int channel_fd;
};

/* How a client reaches a KVM group's pool. */
enum hbb_attach_mode {
	HBB_ATTACH_HOST = 1, /* a host process: the pool memfd comes with Attach's reply */
	HBB_ATTACH_EMULATED, /* an emulated VM: the group's ivshmem socket, as QEMU does */
	HBB_ATTACH_GUEST,    /* inside a KVM guest: the ivshmem PCI devices' BAR2 */
};

/* Where a buffer's or an import's pages are mapped in this process. */
struct hbb_mapping {
	void *base;    /* page-aligned start */
	size_t len;    /* pages * HBP_PAGE_SIZE */
	uint8_t *data; /* base + the first page's offset */
	size_t size;   /* exact bytes */
	void *priv;    /* the backend's: how to give the pages back */
};

struct hbb_guest_ops {
	uint32_t version; /* HBB_GUEST_VERSION */
	const char *name;
	/* After the welcome: attaches the groups it lists (KVM) or opens the grant devices (Xen).
	 * svc stays valid until close. Sets *state only on success. */
	int (*open)(const struct hbb_guest_services *svc, const Welcome *w,
		    enum hbb_attach_mode mode, void **state);
	/* Gives everything back without talking to the daemon (parked grants end). */
	void (*close)(void *state);
	/* Optional: may this domain share a buffer of size bytes now (Xen: the gntalloc limit)?
	 * Asked once the daemon reserved it, so that its EFBIG and ENODEV come first. */
	int (*alloc_check)(void *state, uint64_t size);
	/* After Alloc: the buffer's memory, writable. KVM maps the pages the daemon placed; Xen
	 * grants fresh pages to peer and describes them (Grant). Nothing stays on failure. */
	int (*alloc)(void *state, const AllocReply *ar, uint32_t peer, uint64_t size,
		     uint32_t flags, struct hbb_mapping *m);
	/* Maps an import. -EPROTO for a descriptor the daemon should never have sent, -EBADMSG
	 * for a corrupt directory. */
	int (*import)(void *state, const ImportReply *ir, bool writable, struct hbb_mapping *m);
	/* Optional: the buffer is being freed; keep what must outlive it until reclaimed(handle)
	 * (Xen: grants wait for every importer to unmap). Takes the pages out of m. */
	void (*park)(void *state, uint64_t handle, struct hbb_mapping *m);
	void (*reclaimed)(void *state, uint64_t handle);
	void (*unmap)(void *state, struct hbb_mapping *m);
	/* Optional: domain died and m maps an import of its memory (Xen: it becomes a private
	 * copy at the same address, so the domain can finish dying). */
	void (*peer_gone)(void *state, uint32_t domain, struct hbb_mapping *m);
	/* Optional: fds to poll besides the channel (an emulated VM's ivshmem sockets and
	 * doorbells), and handling what arrived there: drain returns the doorbell reads it made
	 * (for the client's counters), or a negative errno, which breaks the client. */
	size_t (*pollfds)(void *state, struct pollfd *pfd, size_t max);
	int (*drain)(void *state);
	/*
	 * Version 2. Optional: a dma-buf over exactly m's pages, from its first page (KVM: udmabuf
	 * on the pool memfd for the host and emulated VMs, hyperbuf.ko's pool device in a guest;
	 * Xen: gntdev's dma-buf export). Its CPU mmap may write only if writable. Returns a new
	 * O_CLOEXEC fd, or a negative errno: -ENODEV where this kernel has no way to make one
	 * (the log says which), -E2BIG over a kernel limit (udmabuf's size_limit_mb, list_limit).
	 */
	int (*dmabuf)(void *state, const struct hbb_mapping *m, bool writable);

	/* Version 3, optional: fence slots (PROTOCOL.md §3 "Fence slots"), where this process
	 * has a doorbell of its own (an emulated VM: the ivshmem server's eventfds). */
	/* The slot `index` of group's page 0, mapped read-write; NULL if there is none. */
	struct hbp_fence_slot *(*slot)(void *state, uint32_t group, uint32_t index);
	/* This process's bit in a slot's waiters for group (its ivshmem peer id % 64), or -1. */
	int (*slot_bit)(void *state, uint32_t group);
	/* Takes from *waiters (atomically) the bits of the peers of group it knows a doorbell
	 * of, and rings those peers: how many rings. Bits of peers it does not know (yet) stay
	 * for the daemon, which knows every peer and rings when the signal reaches it: *left
	 * gets those that were set (a bit set after the take is not among them). */
	unsigned (*ring)(void *state, uint32_t group, uint64_t *waiters, uint64_t *left);
	/* Optional: what a poll said of the fds pollfds gave (in order, n of them), so that the
	 * drain after it reads only those that are ready. A drain not after a poll reads all. */
	void (*polled)(void *state, const struct pollfd *pfd, size_t n);
};

extern const struct hbb_guest_ops hbk_guest_ops; /* backends/kvm/guest.c */
extern const struct hbb_guest_ops hbx_guest_ops; /* backends/xen/grants.c (or a stub) */

/* Transports a backend provides: a KVM guest's virtio-serial port and the Xen vchan. */
int hbk_port_open(const char *path, struct hbb_transport *t);
int hbx_vchan_open(struct hbb_transport *t);
/* A VM channel's resync (PROTOCOL.md §1.1): a marker with a fresh nonce, then everything up to
 * the daemon's answer dropped. 0, -EPROTO (refused), -ECONNRESET, -ETIMEDOUT. */
int hbk_channel_resync(int fd, int timeout_ms);
/* Whether this process runs where the default address is the backend's (kvm:, xen:). */
bool hbk_in_guest(void);
bool hbx_in_guest(void);

#endif
