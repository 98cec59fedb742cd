/*
 * libhyperbuf internals, shared by the files of libclient/. Nothing here is exported.
 *
 * Shape of a client: one stream to the daemon (the channel), a pool window per group, and for
 * an emulated VM one ivshmem socket per group that stays open for the client's life. Every
 * public call on a client takes its mutex, so the rest of the library is single-threaded.
 *
 * Errors: functions here return 0/positive or a negative errno. A transport failure or a
 * protocol violation by the daemon "breaks" the client: the errno is kept in c->broken and
 * every later call fails with it. The fds stay open until hb_disconnect (only shut down), so a
 * thread polling them never sees an fd number reused under it.
 */
#ifndef HB_LIBCLIENT_PRIVATE_H
#define HB_LIBCLIENT_PRIVATE_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/kvm/pool_window.h"
#include "common/sock.h"
#include "protocol/frame.h"
#include "hyperbuf.h"
#include "protocol/hyperbuf.pb-c.h"
#include "protocol/limits.h"

/* The build hides everything (-fvisibility=hidden); public entry points opt back in. */
#define HBL_PUBLIC __attribute__((visibility("default")))

#define HBL_DEFAULT_ADDRESS "unix:/run/hyperbuf/hyperbufd.sock"
#define HBL_ADDRESS_ENV     "HYPERBUF_ADDRESS"

/* The most fds one frame may bring. The protocol attaches at most one; the rest is slack so
 * that a misbehaving sender's extra fds are received and closed rather than truncated. */
#define HBL_FRAME_FDS 8
/* Blocking waits poll in slices of this length, re-checking the client's state each time. */
#define HBL_WAIT_SLICE_MS 1000
/* Frames one hb_dispatch call handles at most, so a chatty daemon cannot starve the caller. */
#define HBL_DISPATCH_BATCH 1024

/* A sharing group (KVM pool) from the welcome, and how this client reaches its memory. */
struct hbl_group {
	uint32_t id;
	uint64_t pool_size;
	uint32_t pool_instance; /* the header's instance, 0 from an older daemon (not checked) */
	struct hbk_pool_window win;
	/* Emulated VMs only (-1 otherwise): the ivshmem socket. Closing it tells the daemon the
	 * VM is gone, so it lives as long as the client. */
	int iv_fd;
	bool iv_ready;     /* the handshake is over; later messages are drained */
	uint32_t iv_peer;  /* the peer id the ivshmem server gave us */
	uint8_t iv_msg[8]; /* a partly received 8-byte message */
	size_t iv_got;
	int iv_msg_fd; /* the fd that came with it, -1 if none */
};

/* Buckets of the per-client table of fence points. */
#define HBL_POINT_BUCKETS 1024

/*
 * A fence point this client waits on: one daemon wait, shared by every hb_sync opened on the
 * same (timeline, value) while it is pending. It exists only while pending and wanted: it is
 * freed when it completes (its leaves keep the status) or when its last leaf goes (the
 * daemon's wait is then closed).
 */
struct hbl_point {
	struct hbl_point *hnext; /* in c->points[] */
	uint64_t timeline, value;
	uint64_t wait; /* the daemon's wait id */
	uint32_t owner;
	struct hb_sync **leaves; /* the leaf syncs that wait for it */
	size_t n_leaves, cap_leaves;
};

/*
 * A sync: a leaf (one point) or a merge (two members). Nodes form a DAG: a merge holds a
 * reference on each member still pending, and a member tells its parents when it completes.
 * The user's handle is one more reference; a closed handle whose node a merge still needs
 * lives on without its eventfd.
 */
struct hb_sync {
	struct hb_client *client;
	struct hb_sync *prev, *next; /* c->syncs: every node, so hb_disconnect frees them all */
	int status;                  /* 0, 1 or -errno; atomic: hb_sync_status reads it unlocked */
	uint64_t done_seq;           /* when it completed (c->fence_seq), for "first error wins" */
	int efd;                     /* -1 once the handle is closed */
	bool open;                   /* the user still holds the handle */
	unsigned refs;               /* open + parents */
	unsigned pending;            /* members (or the point) not complete yet */
	int error;                   /* first error among completed members */
	struct hbl_point *point;      /* leaf, while its point is pending */
	struct hb_sync *member[2];   /* merge: members still pending (one reference each) */
	struct hb_sync **parents;
	size_t n_parents, cap_parents;
	struct hb_sync *work; /* worklist link while completing or freeing (no recursion) */
};

struct hb_timeline {
	struct hb_client *client;
	struct hb_timeline *prev, *next; /* c->timelines */
	uint64_t id;
};

/* The stream to the daemon: a socket (unix:, vm:) or a vchan (xen:, backends/xen/client.c).
 * c->fd is what to poll for input either way (for a vchan, its event channel). */
struct hbl_transport_ops {
	/* Reads up to len bytes, taking fds as hbc_recv_fds does. Returns the count, 0 at the
	 * end of the stream, -EAGAIN when nothing is there yet, or a negative errno. */
	ssize_t (*recv)(struct hb_client *c, void *buf, size_t len, int *fds, unsigned *nfds,
			unsigned max);
	/* Writes up to len bytes: the count, -EAGAIN when there is no room, or a negative errno. */
	ssize_t (*send)(struct hb_client *c, const void *buf, size_t len);
	/* Ends the stream as the daemon sees it, keeping c->fd open (hbl_break). */
	void (*shutdown)(struct hb_client *c);
	/* Frees it all, c->fd included. */
	void (*close)(struct hb_client *c);
	bool pollout; /* c->fd reports room to write */
};
extern const struct hbl_transport_ops hbl_socket_transport;
extern const struct hbl_transport_ops hbl_port_transport; /* kvm: a virtio-serial port */

/* A request waiting for its reply. Replies are matched by id, not by order, so that more
 * than one may be in flight later (fences) without changing the receive path. */
struct hbl_request {
	uint32_t id;
	bool done;
	ServerMsg *reply;
	int fds[HBL_FRAME_FDS];
	unsigned nfds;
	struct hbl_request *next;
};

/* A queued event; meta is allocated with the node. */
struct hbl_event_node {
	struct hbl_event_node *next;
	enum hb_event_type type;
	struct hb_id id;
	uint32_t domain;
	uint64_t size;
	uint32_t meta_len;
	uint8_t meta[];
};

struct hbx_client;

struct hb_client {
	pthread_mutex_t lock;
	int fd;     /* the channel to the daemon */
	bool vm;    /* an emulated VM (vm:), else a host client (unix:) or a KVM guest */
	bool port;  /* a KVM guest (kvm:): fd is a virtio-serial port, not a socket */
	int broken; /* sticky positive errno, 0 while healthy; atomic reads */
	/* How frames move: a socket, or the Xen vchan. */
	const struct hbl_transport_ops *tp;
	/* Xen only, else NULL/false: the vchan of xen: and the grant handles; grants says
	 * buffers are pages this client grants (Welcome.memory). */
	struct hbx_client *xen;
	bool grants;

	/* From the welcome. */
	uint32_t domain;
	uint32_t meta_max; /* min(daemon's meta_max, HB_META_MAX) */
	uint32_t event_depth;
	uint32_t frame_max; /* largest frame we send */
	struct hbl_group *groups;
	size_t n_groups;

	/* Receive: exactly one frame at a time, so fds can be tied to the frame they came with. */
	struct hbp_bytes rx;
	int rx_fds[HBL_FRAME_FDS];
	unsigned rx_nfds;
	struct hbp_bytes tx;
	uint32_t next_id;
	struct hbl_request *requests;

	/* Events, oldest first. An OVERFLOW node past event_depth marks where events were lost. */
	struct hbl_event_node *ev_head, *ev_tail;
	uint32_t ev_count;
	/* Kept so an OVERFLOW can be queued even when malloc fails. */
	struct hbl_event_node *ev_spare;

	struct hb_buffer *buffers;
	struct hb_import *imports;

	/* Fences (sync.c, timeline.c). */
	struct hbl_point *points[HBL_POINT_BUCKETS];
	struct hb_sync *syncs;
	uint64_t fence_seq;
	struct hb_timeline *timelines;
};

/* Xen mappings (backends/xen/client.c): how to give the pages back. */
enum hbx_map_kind {
	HBX_MAP_NONE = 0,
	HBX_MAP_EXPORT, /* our pages, granted to the peer (gntalloc) */
	HBX_MAP_IMPORT, /* the exporter's pages (gntdev) */
	HBX_MAP_COPY,   /* a private copy that replaced an import when its exporter died */
};
struct hbx_map {
	struct hbx_client *x;
	enum hbx_map_kind kind;
	bool writable;
	uint32_t domid; /* import: the exporting domain */
	uint32_t pages;
	void *dir; /* export: the directory pages */
	uint32_t dir_pages;
};

/* Where a buffer's or an import's pages are mapped. */
struct hbl_mapping {
	struct hbl_group *group;
	void *base;    /* page-aligned start of the mapping */
	size_t len;    /* pages * HBP_PAGE_SIZE */
	uint8_t *data; /* base + first_offset */
	size_t size;   /* exact bytes */
	struct hbx_map xen;
};

struct hb_buffer {
	struct hb_client *client;
	struct hb_buffer *prev, *next;
	uint64_t handle; /* the daemon's, private to this session */
	struct hbl_mapping map;
	bool exported; /* hid is valid: the last id hb_export returned */
	struct hb_id hid;
};

struct hb_import {
	struct hb_client *client;
	struct hb_import *prev, *next;
	uint64_t handle;
	struct hbl_mapping map;
	struct hb_id hid;
	uint32_t exporter;
	uint32_t flags; /* HB_INFO_* at import time */
	uint32_t meta_len;
	uint8_t meta[];
};

/* ---- client.c ---- */
void hbl_lock(struct hb_client *c);
void hbl_unlock(struct hb_client *c);
/* Sets errno from a negative errno and returns -1; for the public boundary. */
int hbl_fail(int neg_errno);

/* ---- transport.c ---- */
/* Marks the client broken with err (positive errno) unless it already is; returns -broken. */
int hbl_break(struct hb_client *c, int err);
/* -broken if the client is broken, else 0. Safe without the lock. */
int hbl_broken(const struct hb_client *c);
/* Sends msg with a fresh id and waits for the reply. want is the body a successful reply must
 * carry (NOT_SET: any, ignored). Returns 0 and *reply (free with hbl_reply_free), -error from
 * the daemon's reply, or the client's sticky error. */
struct hbl_reply {
	ServerMsg *msg;
	int fds[HBL_FRAME_FDS];
	unsigned nfds;
};
int hbl_call(struct hb_client *c, ClientMsg *msg, ServerMsg__BodyCase want, struct hbl_reply *reply);
void hbl_reply_free(struct hbl_reply *reply);
/* Reads and handles whatever has arrived without blocking (ivshmem sockets included), at most
 * max frames. Returns the number of frames handled or a negative errno. */
int hbl_read_available(struct hb_client *c, int max);
/* The fds to poll for incoming data: the channel and every ready ivshmem socket. */
size_t hbl_pollfds(const struct hb_client *c, struct pollfd *pfd, size_t max);

/* ---- kvm.c: inside a KVM guest ---- */
/* Opens the first free virtio-serial port org.hyperbuf.N (or path, if not NULL) and
 * resynchronises the channel (PROTOCOL.md §1.1). Returns the port fd or a negative errno:
 * -ENOENT (no port), -EBUSY (every port taken by another process), -ECONNREFUSED (no daemon
 * behind the port), -EPROTO, -ETIMEDOUT. */
int hbl_kvm_open(const char *path);
/* Finds each group's ivshmem BAR and attaches it (attach.c calls it for a kvm: client). */
int hbl_kvm_attach_groups(struct hb_client *c);
/* Tells the daemon this process is leaving the port (best effort, never blocks). */
void hbl_kvm_goodbye(int fd);
/* True inside a KVM guest meant to use hyperbuf: the default address is then kvm:. */
bool hbl_kvm_guest(void);

/* ---- attach.c ---- */
/* Attaches every group of the welcome, c->groups[i] being w->groups[i]: the ivshmem
 * handshake then Attach for an emulated VM, Attach and its fd for a host client. */
int hbl_attach_groups(struct hb_client *c, const Welcome *w);
/* Sends Attach for group g naming an ivshmem peer id; the reply is returned (free it). */
int hbl_send_attach(struct hb_client *c, struct hbl_group *g, uint32_t peer, struct hbl_reply *reply);
/* Reads later ivshmem messages of every ready group without blocking, closing their fds. */
int hbl_ivshmem_drain(struct hb_client *c);
void hbl_group_close(struct hbl_group *g);
/* Checks desc, walks its directory and maps its pages. -EPROTO for a descriptor the daemon
 * should never have sent, -EBADMSG for a corrupt directory, else a negative errno. */
int hbl_map_desc(struct hb_client *c, const BufferDesc *desc, bool writable, struct hbl_mapping *m);
void hbl_unmap(struct hbl_mapping *m);

/* ---- event.c ---- */
/* Queues an event from the daemon (unknown types are dropped). Returns 0, or breaks the
 * client on a malformed event (-EPROTO). */
int hbl_event_push(struct hb_client *c, const Event *ev);
void hbl_events_free(struct hb_client *c);

/* Queues an HB_EVENT_FENCE for a point that completed. */
void hbl_event_push_fence(struct hb_client *c, uint64_t timeline, uint64_t value, uint32_t owner);

/* ---- sync.c ---- */
/* A FenceDone from the daemon (already validated by the frame codec). */
void hbl_fence_done(struct hb_client *c, const FenceDone *f);
/* Completes every pending point with err (negative): the connection is lost. */
void hbl_fences_fail_all(struct hb_client *c, int err);
/* Frees every sync node and point without talking to the daemon (hb_disconnect). */
void hbl_fences_destroy(struct hb_client *c);
/* hb_sync_open with the lock held. */
int hbl_sync_open_locked(struct hb_client *c, const struct hb_fence *f, struct hb_sync **out);
/* Drops the user's handle with the lock held; may talk to the daemon. */
void hbl_sync_close_locked(struct hb_sync *s);
/* Waits, without the lock, for one (all false) or every (all true) of v[0..n) to complete.
 * Returns 0 (*index: the lowest complete one, for !all), -ETIME, or -EINVAL. */
int hbl_syncs_wait(struct hb_sync **v, size_t n, bool all, int timeout_ms, size_t *index);
/* The memory barrier that publishes this thread's writes to shared buffers before a signal
 * (release) and orders later reads after a completed wait (acquire). */
void hbl_shared_memory_barrier(void);

/* ---- timeline.c ---- */
void hbl_timelines_destroy(struct hb_client *c);

/* ---- buffer.c, import.c ---- */
/* Unmaps and frees without talking to the daemon (disconnect, broken client). */
void hbl_buffer_destroy(struct hb_buffer *b);
void hbl_import_destroy(struct hb_import *im);

#endif
