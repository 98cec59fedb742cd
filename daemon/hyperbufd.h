/*
 * hyperbufd internals: the daemon state, sessions, domains, buffers and imports.
 *
 * Ownership in one paragraph: a session owns the buffers it allocated and the imports it holds.
 * A buffer is also kept alive by its imports: when its owner frees it (or dies) it becomes an
 * orphan, and its pages go back to the pool only when the last import is released. Exports are
 * a state of the buffer (one buffer, one peer, at most one live hid); the hid table finds them.
 */
#ifndef HB_HYPERBUFD_H
#define HB_HYPERBUFD_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backends/backend.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/cred.h"
#include "common/list.h"
#include "common/log.h"
#include "hyperbuf.h"
#include "protocol/frame.h"
#include "protocol/hyperbuf.pb-c.h"
#include "protocol/limits.h"
#include "protocol/refdir.h"
#include "protocol/resync.h"

#define HBD_HID_BUCKET_BITS      12
#define HBD_TIMELINE_BUCKET_BITS 10
#define HBD_WAIT_BUCKET_BITS     12
#define HBD_HANDLE_BUCKET_BITS   13 /* buffers and imports by handle: 8192 buckets each */
#define HBD_HANDLE_RESTART_GAP   (1ull << 32) /* handles skipped at a restart (state_restore.c) */
#define HBD_FAIL_RANGES          64 /* failed value ranges a timeline remembers for late openers */
#define HBD_SEEN_BY_MAX          4096 /* domains one timeline may be shared with */
#define HBD_OUT_MAX                                                                                \
	(8u * 1024u * 1024u) /* replies a client may leave unread before it is dropped */
#define HBD_MAX_SESSIONS 1024

struct hbd;
struct hbd_session;
struct hbd_fdstore;
struct hbd_state;

/* An object's place in the restart state (daemon/state_write.c): marked when it changes, and
 * written whole at the next commit. */
struct hbd_st_mark {
	struct hbc_list link; /* in the state's dirty list while dirty */
	uint8_t dirty;        /* HBD_ST_DIRTY_* */
	uint8_t kind;         /* enum hbd_st_kind of the object it is in */
	bool known;           /* the journal has it: its end must be written too */
};
#define HBD_ST_DIRTY       1u /* the object's record */
#define HBD_ST_DIRTY_PLACE 2u /* a buffer's placement (StBuffer) as well as its state */

/* Statistics shown by `hyperbufctl stats`. bytes_copied exists to prove a negative: no code
 * path of the daemon copies buffer contents, so nothing ever adds to it. */
struct hbd_stats {
	uint64_t messages_in, messages_out;
	uint64_t events_sent, events_dropped;
	uint64_t errors_protocol; /* sessions dropped for protocol violations */
	uint64_t errors_request;  /* error replies */
	uint64_t sessions_total;
	uint64_t exports_total, imports_total;
	uint64_t bytes_shared_total; /* bytes of every import ever made */
	uint64_t bytes_copied;
	uint64_t pages_punched;
	uint64_t timelines_total;
	uint64_t fences_completed;       /* waits completed (signalled, failed or owner gone) */
	uint64_t fence_sessions_dropped; /* sessions that fell fence_waits_per_domain behind */
	uint64_t timeline_signals;       /* signals and fails owners sent (their records) */
	uint64_t lazy_changes;           /* TimelineLazy sent: owners let keep or asked again */
	uint64_t refused_credentials;    /* connections whose peer was not who the door lets in */
	uint64_t refused_limits;         /* connections over a session limit */
	uint64_t loop_turns;             /* event loop iterations (each one epoll_wait) */
	uint64_t write_waits;            /* times a full socket made a session wait for room */
	uint64_t socket_calls;           /* recv and send calls on client sockets */
	uint64_t holds_made, holds_taken; /* imports made with EXPORTED events, and taken */
};

struct hbd_domain {
	struct hbc_list link;
	uint32_t id;
	char name[HBC_NAME_MAX];
	unsigned conns;       /* open connections, before Hello included (sessions_per_domain) */
	unsigned sessions;    /* client sessions (not control) */
	unsigned links;       /* hypervisor connections bound to it (KVM: ivshmem) */
	bool present;         /* has sessions or links */
	uint32_t exports;     /* live exports (quota exports_per_domain) */
	uint32_t imports;     /* live imports held */
	uint64_t pages;       /* pool pages its buffers use (quota pages_per_domain) */
	uint32_t timelines;   /* live timelines (quota timelines_per_domain) */
	uint32_t fence_waits;   /* pending waits (quota fence_waits_per_domain) */
	uint32_t fence_watches; /* watches, with a quota of as many (fence_watch.c) */
};

enum hbd_export_state {
	HBD_EXPORT_NONE = 0, /* never exported, or re-export pending a fresh hid */
	HBD_EXPORT_LIVE,
	HBD_EXPORT_PENDING, /* a delayed unexport is scheduled */
	HBD_EXPORT_DONE,    /* unexported; hid still answers queries while the buffer lives */
};

/* One fence in a buffer's reservation (the dma_resv of an export). */
struct hbd_resv_entry {
	uint64_t timeline, value;
	uint32_t usage; /* HB_ACCESS_WRITE or HB_ACCESS_READ, never both */
};

struct hbd_buffer {
	struct hbc_list owner_link; /* in owner->buffers, or d->orphans */
	struct hbc_list hash_link;  /* in the hid table while it has a hid */
	struct hbc_list handle_link; /* in d->buffer_handles[] while it has an owner */
	struct hbd *d;
	struct hbd_session *owner; /* NULL once freed by its owner: an orphan kept by imports */
	/* Who, for whom, how big, and where the backend put it. */
	struct hbb_buffer mem;

	enum hbd_export_state state;
	bool has_hid;
	struct hb_id hid;
	uint8_t *meta;
	uint32_t meta_len;
	ev_timer unexport_timer;
	unsigned importers;     /* live imports, whatever hid they were made under */
	uint32_t gen;           /* bumped with every fresh hid */
	unsigned gen_importers; /* live imports made under the current hid */

	struct hbd_resv_entry *resv; /* HBP_RESV_LIMIT slots once a fence was attached */
	unsigned n_resv;
	uint64_t unexport_at_ms; /* CLOCK_MONOTONIC deadline of a pending unexport */
	struct hbd_st_mark st;
};

/*
 * A timeline (daemon/timeline.c). Owned by one session; its waits sit in a min-heap ordered
 * by (value, wait id), so a signal pops them oldest first and the heap's top says at once
 * whether anything is due.
 */
struct hbd_fail_range {
	uint64_t lo, hi; /* values lo..hi (inclusive) completed with err */
	int32_t err;
};

struct hbd_timeline {
	struct hbc_list hash_link;  /* d->timelines[] */
	struct hbc_list owner_link; /* owner->timelines */
	uint64_t id;
	struct hbd_session *owner;
	uint64_t value;
	struct hbd_wait **heap;
	size_t n_heap, cap_heap;
	/* The ranges its fails covered, ascending, so that a fence opened after its point
	 * failed is born with that error rather than with 1. The oldest go first when full. */
	struct hbd_fail_range *fails;
	unsigned n_fails;
	/* Who besides its owner's domain may open it: the domains the owner gave a fence to
	 * (attached to a buffer shared with them, or shared explicitly). */
	uint32_t *seen_by;
	unsigned n_seen_by, cap_seen_by;
	struct hbc_list fence_watches; /* the sessions told of its progress (fence_watch.c) */
	unsigned n_told; /* of them, those armed at a point: the daemon tells them, not a slot */
	/* Its fence slots, one per group at most (fence_slot.c). */
	struct hbd_fence_slot *slots;
	unsigned n_slots;
	/* Its owner's last signal asked for lazy records (TimelineSignal.lazy), and what the
	 * owner was last told (TimelineLazy): its signals may stay in its slots. */
	bool lazy_wanted, lazy;
	struct hbd_st_mark st;
};

/* A timeline's slot in a group's pool (PROTOCOL.md §3 "Fence slots"). */
struct hbd_fence_slot {
	uint32_t group, index, gen;
};

/*
 * A session's wait on (timeline, value). Pending, it is in the timeline's heap, the wait
 * hash and session->waits. Completed, it leaves the heap and the hash and becomes the queued
 * completion itself (session->done), so completing never allocates.
 */
struct hbd_wait {
	struct hbc_list hash_link;    /* d->waits[] while pending */
	struct hbc_list session_link; /* s->waits while pending, s->done once completed */
	uint64_t id;
	struct hbd_session *s;
	struct hbd_timeline *tl; /* NULL once completed */
	uint64_t timeline, value;
	size_t heap_index;
	int32_t status; /* 1 or -errno once completed */
	/* Set on a watch's own record (fence_watch.c): queued on session->done while the watch
	 * has progress to tell, framed as TimelineValue, never freed on its own. */
	struct hbd_fence_watch *fwatch;
};

/*
 * A session told of a timeline's progress (PROTOCOL.md §3 "Watches"), so that its library
 * opens further fences on it without asking. At most one per (session, timeline), at most
 * fence_waits_per_domain per domain (a quota of their own, beside the waits'); made only while
 * the session has no wait pending, so a wait's completion and a watch's news cannot overtake
 * each other.
 */
struct hbd_fence_watch {
	struct hbc_list session_link; /* session->fence_watches */
	struct hbc_list tl_link;      /* timeline->fence_watches */
	struct hbc_list hash_link;    /* d->fence_watches[], by (session, timeline) */
	struct hbd_session *s;
	struct hbd_timeline *tl;
	uint64_t told;        /* the value the session last heard of */
	uint64_t arm;         /* told when the timeline reaches it; 0: on any progress */
	bool queued;          /* push is on session->done */
	struct hbd_wait push; /* push.fwatch == this */
};

struct hbd_import {
	struct hbc_list link;        /* in session->imports */
	struct hbc_list handle_link; /* in d->import_handles[] */
	uint64_t session;            /* the serial of its session (a resumed one keeps it) */
	uint64_t handle;
	struct hbd_buffer *buf;
	uint32_t gen; /* the buffer's hid generation when imported */
	bool writable;
	bool held;     /* a hold not yet taken (hold.c) */
	bool st_known; /* written to the restart state */
};

struct hbd_event {
	struct hbc_list link;
	uint64_t st_key; /* its record in the restart state, 0 if none */
	uint32_t type;
	struct hb_id hid;
	bool has_hid;
	uint32_t domain;
	uint64_t size;
	uint32_t meta_len;
	uint8_t meta[];
};

struct hbd_out_fd {
	size_t offset; /* the fd goes with the byte at this offset of session->out */
	int fd;
};

/* The daemon's doors (door.c): which socket a session came in by. */
enum hbd_door {
	HBD_DOOR_HOST = 1, /* the host socket: local programs, domain 0 */
	HBD_DOOR_CONTROL,  /* the control socket: hyperbufctl */
	HBD_DOOR_VM,       /* a VM's channel (or a Xen domain's vchan) */
};

/* A local user's connections to the host and control sockets (session.c). */
struct hbd_user {
	struct hbc_list link; /* d->users */
	uid_t uid;
	unsigned pending;  /* connected, no Hello yet (pending_per_uid) */
	unsigned sessions; /* said Hello (sessions_per_uid) */
};

struct hbd_session {
	struct hbc_list link;
	struct hbd *d;
	int fd;
	ev_io rio, wio;
	/* Queued output is written before the loop sleeps (d->flushq); wio only watches a full
	 * socket (docs/ARCHITECTURE.md, "write first"). */
	struct hbc_list flush_link;
	bool flush_queued;
	ev_timer hello_timer; /* a connection that never says Hello is closed */
	uint64_t serial;
	char label[96]; /* for logs: "vm1#7" */
	struct hbd_domain *dom;
	pid_t pid; /* SO_PEERCRED, for logs; -1 if unknown */
	uid_t uid;
	enum hbd_door door;
	struct hbd_user *user; /* host and control doors: its user's connection counts */
	bool hello, control, closing;
	uint32_t features; /* HBP_FEATURE_* its last Hello announced */
	unsigned busy; /* inside its own read handler: close defers the free */

	/* A VM channel (a virtio-serial port's socket): it outlives the sessions on it, one guest
	 * process after another. A resync marker or a new Hello restarts the session in place
	 * (PROTOCOL.md §1.1). */
	bool channel;
	size_t scan_from;  /* input before this offset holds no resync magic */
	size_t out_unsent; /* bytes of the unit (frame or marker) at the head of out not sent */

	struct hbp_bytes in, out;
	/* A host session gets one pool fd per group it attaches, once: never more than this. */
	struct hbd_out_fd out_fds[HBP_MAX_GROUPS];
	unsigned n_out_fds;

	struct hbc_list events; /* may end with an OVERFLOW marker (type HB_EVENT_OVERFLOW) */
	unsigned n_events;
	unsigned n_held; /* holds not yet taken (hold.c), at most HBP_HOLDS_MAX */
	bool holds_on;   /* Holds{on}: its EXPORTED events bring holds */

	uint64_t attached; /* bit (group id - 1) */
	struct hbc_list buffers;
	struct hbc_list imports;

	struct hbc_list timelines; /* owned */
	struct hbc_list waits;     /* pending */
	struct hbc_list fence_watches; /* struct hbd_fence_watch */
	struct hbc_list done;      /* completed, not yet framed: the bounded completion queue */
	unsigned n_done;
	bool doomed; /* fell behind: closed from drop_timer, gets nothing more */
	ev_timer drop_timer;

	/* Restarts (docs/RESTART.md). A client session has a token it resumes with after the
	 * daemon restarted; a restored session waits detached (no connection) until its client
	 * resumes it or resume_timer fires. */
	uint8_t token[HBP_TOKEN_LEN];
	uint32_t last_request;       /* the last request whose effects the state has */
	struct hbp_bytes last_reply; /* its reply (packed ServerMsg), for a resume that missed it */
	uint32_t reply_fd_group;     /* that reply carried this group's pool fd */
	struct hbp_bytes pending_out; /* a resumed session's frames, sent after the welcome */
	bool detached;                /* restored: no connection yet */
	bool gated;                   /* a reply is waiting for room before the next request */
	bool hung_up;                 /* a write failed: its input is handled, its output dropped */
	bool await_marker; /* a channel adopted at a restart: drop input until a marker */
	char fdname[32];   /* a kept channel connection's name in the fd store */
	ev_timer resume_timer;
	struct hbd_st_mark st;

	/* Why the request being handled is refused, in words for the client (explain.c). */
	char reason[HBP_REASON_MAX];
	/* A control session that asked for the daemon's events (watch.c). */
	bool subscribed;
	uint64_t watch_seq;     /* the last CtlEvent's seq */
	uint32_t watch_dropped; /* events it missed since the last one it got */
};

/* The backend compiled in under this name ("kvm", "xen"), or NULL (daemon/backend.c). */
const struct hbb_host_ops *hbd_backend_find(enum hbc_backend_kind kind);
/* The services the daemon hands its backend (daemon/backend.c). */
void hbd_backend_services_init(struct hbd *d, struct hbb_host_services *svc);

struct hbd_listener {
	int fd;
	ev_io io;
	ev_timer pause; /* accept paused while out of file descriptors */
	struct hbd *d;
	enum hbd_door door;
	uint32_t domain;
	const struct hbc_config_vm *vm; /* HBD_DOOR_VM: whose QEMU may connect */
	char path[HBC_SUN_PATH_MAX];
	char fdname[32]; /* in the fd store: "host", "control", "vm.<id>.<port>" */
	unsigned port;   /* HBD_DOOR_VM: which of the VM's ports */
	/* Its refusals' log lines, one cause each. */
	struct hbc_ratelimit refused_creds, refused_limit, refused_sessions;
};

struct hbd {
	struct ev_loop *loop;
	struct hbc_config *cfg;
	const char *config_path; /* NULL: embedded default */
	const struct hbb_host_ops *backend;
	void *backend_state;
	struct hbb_host_services services; /* what the backend may ask of us */
	/* Handles one request of a session (daemon/request.c; set by main.c). The session code
	 * calls it for every frame, so it needs to know nothing about requests. */
	void (*handle_request)(struct hbd_session *s, ClientMsg *msg);
	/* Gives back what a session owns when it ends or restarts (daemon/release.c; set by
	 * main.c): the session code only does I/O and knows nothing of buffers or fences. */
	void (*session_release)(struct hbd_session *s);
	uint64_t start_ms;
	bool stopping;     /* shutting down: clients keep their mappings, so nothing is punched */
	int ctl_truncated; /* the last control reply cut a listing at HBD_CTL_LIST_MAX */

	struct hbd_listener host, control;
	struct hbd_listener *vm_listeners;
	unsigned n_vm_listeners;

	struct hbc_list sessions;
	unsigned n_sessions;
	struct hbc_list users; /* struct hbd_user: host and control connections per uid */
	struct hbc_list domains;
	struct hbc_list orphans; /* freed buffers kept alive by imports */
	struct hbc_list hids[1u << HBD_HID_BUCKET_BITS];
	struct hbc_list timelines[1u << HBD_TIMELINE_BUCKET_BITS];
	struct hbc_list waits[1u << HBD_WAIT_BUCKET_BITS];
	struct hbc_list fence_watches[1u << HBD_WAIT_BUCKET_BITS]; /* by (session, timeline) */
	/* Requests name buffers and imports by handle: found in one bucket, not a session's list
	 * of thousands. */
	struct hbc_list buffer_handles[1u << HBD_HANDLE_BUCKET_BITS];
	struct hbc_list import_handles[1u << HBD_HANDLE_BUCKET_BITS];
	uint32_t next_serial;
	uint64_t next_handle;
	uint64_t next_session;
	uint64_t next_event; /* keys of queued events in the restart state */

	ev_signal sig_term, sig_int, sig_hup, sig_usr2;
	struct hbd_stats stats;
	struct hbc_ratelimit meta_log; /* exports refused for their metadata's size */
	unsigned n_subscribed;         /* control sessions that watch (watch.c) */
	struct hbd_metrics *metrics;   /* metrics.c: NULL when off */

	/* Restarts (docs/RESTART.md): the descriptors that outlive us, the journal of the state
	 * (NULL when nothing is kept), and what a start found of the last daemon's. */
	struct hbd_fdstore *fds;
	struct hbd_state *state;
	ev_prepare commit_watcher;
	struct hbc_list flushq; /* sessions with output to write before the loop sleeps */
	bool handover;       /* exiting for a restart: leave the state and sockets as they are */
	uint32_t restored;   /* sessions a restart brought back */
	uint64_t restore_ms; /* how long restoring took */
	char *const *argv;   /* for a re-exec in place */
	const char *exe;
};

/* server.c */
int hbd_server_start(struct hbd *d);
void hbd_server_stop(struct hbd *d);

/* door.c: the host, control and VM channel sockets, and who each lets in */
int hbd_doors_open(struct hbd *d);
void hbd_doors_close(struct hbd *d);
/* Keeps a VM channel's connection in the fd store, named after its VM, port and session. */
void hbd_channel_keep(struct hbd_session *s, const struct hbd_listener *l);
/* Adopts the VM channel connections the last daemon kept: each resynchronises, its client
 * resumes (docs/RESTART.md). */
void hbd_doors_adopt_channels(struct hbd *d);
/* folders.c: a folder holding one VM's sockets only becomes the daemon's, that VM's group's,
 * mode 0710 (after every socket exists). */
void hbd_doors_restrict_folders(struct hbd *d);

/* users.c: the entry of uid in d->users (made if needed), NULL without memory; hbd_user_put
 * frees it once it counts nothing (NULL is fine). */
struct hbd_user *hbd_user_get(struct hbd *d, uid_t uid);
void hbd_user_put(struct hbd *d, struct hbd_user *u);

/* session.c: session I/O */
/* A session for an admitted connection. user: the host and control doors' (its pending count
 * already taken), else NULL. cred: the peer's, from the kernel. */
struct hbd_session *hbd_session_new(struct hbd *d, int fd, struct hbd_domain *dom,
				    enum hbd_door door, struct hbd_user *user,
				    const struct hbc_cred *cred);
/* Ends a session: cleanup as in PROTOCOL.md §6. reason is logged. */
void hbd_session_close(struct hbd_session *s, const char *reason);
/* VM channels: ends the session as hbd_session_close would but keeps the connection, and
 * starts a fresh session on it that has not said Hello. */
void hbd_session_restart(struct hbd_session *s, const char *reason);
/* Queues a framed reply (takes no ownership of msg). Returns 0 or -errno (session dropped). */
int hbd_session_send(struct hbd_session *s, const ServerMsg *msg, int fd);
/* Has the session's output written before the loop sleeps (not while detached): at once if
 * the socket takes it, else when it has room. */
void hbd_session_want_write(struct hbd_session *s);
/* Writes every queued session's output (the loop's prepare step): one send per session per
 * loop turn, and a write watcher only for a socket that is full. */
void hbd_sessions_flush(struct hbd *d);
/* Queues a resync marker that tells the channel's client the daemon restarted. */
int hbd_session_put_restarted(struct hbd_session *s);
/* Drops the first n bytes of the session's input. */
void hbd_session_consume(struct hbd_session *s, size_t n);

/* channel.c: VM channels' resync markers */
/* n bytes of the output went out: follows which unit (frame or marker) its head is in. */
void hbd_channel_sent(struct hbd_session *s, size_t n);
/* What the head of a VM channel's unhandled input is. */
enum hbd_scan {
	HBD_SCAN_WAIT,   /* more bytes are needed to tell */
	HBD_SCAN_FRAME,  /* a frame, or the start of one: handle it */
	HBD_SCAN_DROP,   /* *len stale bytes to drop (a dead process's, or a cut marker) */
	HBD_SCAN_MARKER, /* a resync marker of *len bytes, unpacked into *m */
};
enum hbd_scan hbd_channel_scan(struct hbd_session *s, size_t *len, struct hbp_resync *m);
/* What a VM channel's input starts with, handling markers (a resync restarts the session): 1
 * if something was handled (look again), 0 for a frame (or the start of one), -1 to wait. */
int hbd_channel_input(struct hbd_session *s);

/* The session said Hello: count it in its domain (control sessions are not clients) and its
 * user's sessions. -EUSERS if its user has sessions_per_uid already (nothing counted). */
int hbd_session_mark_hello(struct hbd_session *s, bool control);
/* The session as its backend sees it. */
struct hbb_caller hbd_session_caller(const struct hbd_session *s);
void hbd_session_event(struct hbd_session *s, uint32_t type, const struct hb_id *hid,
		       uint32_t domain, uint64_t size, const uint8_t *meta, uint32_t meta_len);
/* events.c: an event left the queue (framed for the client, or its session ended). */
void hbd_session_event_free(struct hbd_session *s, struct hbd_event *ev);
/* events.c: an event the restart state kept, back at the end of its session's queue. */
int hbd_session_event_restore(struct hbd_session *s, uint64_t key, uint32_t type,
			      const struct hb_id *hid, uint32_t domain, uint64_t size,
			      const uint8_t *meta, uint32_t meta_len);

/* Moves every queued fence completion into the output ahead of whatever is sent next: done
 * before a reply that tells the client about a timeline's progress, which must never overtake
 * a completion queued before it. */
int hbd_session_flush_fences(struct hbd_session *s);
/* Moves queued fence completions, then events, into a nearly empty output buffer (events.c). */
int hbd_session_fill(struct hbd_session *s);
/* Drops a session from the next loop iteration: for a session found misbehaving in a path that
 * must not close anything itself (the signal path). */
void hbd_session_drop_later(struct hbd_session *s, const char *reason);

/* timeline.c: timelines, waits, reservations */
void hbd_timelines_init(struct hbd *d);
int hbd_timeline_create(struct hbd_session *s, uint64_t *id);
/* TimelineSignal; lazy: the owner would keep later signals in the slots (fence_slot.c). */
int hbd_timeline_signal(struct hbd_session *s, uint64_t id, uint64_t value, uint32_t error,
			bool lazy);
int hbd_timeline_destroy_req(struct hbd_session *s, uint64_t id);
/* The owner lets domain open the timeline's fences: -EPERM if it cannot share with it. */
int hbd_timeline_share(struct hbd_session *s, uint64_t id, uint32_t domain);
/* *wait is 0 when the fence was born complete, with *status 1 or the error it failed with;
 * *owner is the timeline owner's domain. */
struct hbd_sync_open {
	uint64_t timeline, value;
	bool watch; /* asked for a watch */
	/* out */
	uint64_t wait;
	int32_t status;
	uint32_t owner;
	bool watched;  /* a watch was granted: no wait */
	uint64_t told; /* watched: the value it starts from */
	struct hbd_fence_slot slot; /* watched with a slot: gen != 0 */
};
int hbd_sync_open(struct hbd_session *s, struct hbd_sync_open *o);
int hbd_sync_close(struct hbd_session *s, uint64_t wait);
int hbd_fence_attach(struct hbd_session *s, const struct hb_id *hid, uint64_t timeline,
		     uint64_t value, uint32_t usage);
/* The pending fences an access must wait for, at most one per timeline, into out[HBP_RESV_LIMIT].
 */
int hbd_cpu_access(struct hbd_session *s, const struct hb_id *hid, uint32_t access,
		   struct hbd_resv_entry *out, unsigned *n);
/* Session end: its waits and queued completions go, its timelines complete with -EPIPE. */
void hbd_session_fences_close(struct hbd_session *s);
/* The status of a point tl has passed, and the highest value above from (at most tl->value)
 * up to which every point has that same status. */
uint64_t hbd_timeline_run(const struct hbd_timeline *tl, uint64_t from, int32_t *status);
/* fence_watch.c. Starts (or restarts) s's watch of tl, told = tl->value, armed at arm (0: any
 * progress): 0, or -EBUSY (s has a wait pending), -EDQUOT, -ENOMEM: the open then makes a wait
 * instead. */
int hbd_fence_watch_open(struct hbd_session *s, struct hbd_timeline *tl, uint64_t arm);
/* WatchArm: s's watch of timeline tells next when it reaches value. */
void hbd_fence_watch_arm(struct hbd_session *s, uint64_t timeline, uint64_t value);
/* tl moved: each watch is queued to tell its session. */
void hbd_fence_watches_signal(struct hbd *d, struct hbd_timeline *tl);
/* tl's slots were poisoned: watches that left the telling to them tell again. */
void hbd_fence_watches_unslot(struct hbd_timeline *tl);
/* tl is about to fail a range, which may make it forget its oldest failed range: each watch
 * tells what it has not told yet now, while its statuses are still known. */
void hbd_fence_watches_flush(struct hbd_timeline *tl);
/* The range (tl->value, value] failed with status and tl could not remember it: each watch
 * tells that range now (after hbd_fence_watches_flush). Before tl->value moves. */
void hbd_fence_watches_tell_failed(struct hbd_timeline *tl, uint64_t value, int32_t status);
/* tl goes: each watch tells what it has not told yet and that it ended, then goes. */
void hbd_fence_watches_end(struct hbd_timeline *tl);
/* The session goes: its watches go, silently. */
void hbd_session_fence_watches_close(struct hbd_session *s);
/* Frames what the watch has to tell (a TimelineValue per run of equal status). */
int hbd_fence_watch_frame(struct hbd_session *s, struct hbd_fence_watch *w);
/* fence_slot.c. The slot of tl that watcher s can use, given now if need be (its owner is
 * told): 0 with *out, or -ENOTSUP (s cannot use one, no backend slots), -ENOENT (no group
 * both attached), -ENOSPC, -ENOMEM. */
int hbd_fence_slot_for(struct hbd_session *s, struct hbd_timeline *tl,
		       struct hbd_fence_slot *out);
/* tl reached a new value (error: it failed up to it, before the value moves). */
void hbd_fence_slots_signal(struct hbd_timeline *tl, bool error);
/* tl goes: its slots are poisoned, freed and rung. */
void hbd_fence_slots_put(struct hbd_timeline *tl);
/* A resumed session hears again of its timelines' slots: a restored session has no features
 * until its Hello, so slots given before that were not told. */
void hbd_fence_slots_retell(struct hbd_session *s);
/* tl's consumers changed, or it moved: its owner hears whether it may keep its records
 * lazily, when that changes. */
void hbd_fence_lazy_check(struct hbd_timeline *tl);
/* A consumer that reads no slot came (a wait, a watch armed at a point): the owner sends its
 * value again and every value after, if it was lazy. */
void hbd_fence_lazy_end(struct hbd_timeline *tl);
/* release.c: what a session owns goes back (its timelines, waits, imports and buffers). */
void hbd_session_release(struct hbd_session *s);
/* session.c: pops one queued completion for framing (NULL if none); free it with
 * hbd_wait_free. */
struct hbd_wait *hbd_session_next_done(struct hbd_session *s);
void hbd_wait_free(struct hbd_wait *w);
struct hbd_timeline *hbd_timeline_find(struct hbd *d, uint64_t id);
/* Who may open tl's fences: its owner's domain and the domains it was shared with. */
bool hbd_timeline_visible(struct hbd *d, const struct hbd_timeline *tl, uint32_t domain);
/* Lets domain see tl: -ENOSPC past HBD_SEEN_BY_MAX domains, -ENOMEM. */
int hbd_timeline_show(struct hbd_timeline *tl, uint32_t domain);
/* Files a new timeline (owner and id set) under its id and its owner. */
void hbd_timeline_insert(struct hbd *d, struct hbd_timeline *tl);

/* request.c: one request in, one reply out */
void hbd_request(struct hbd_session *s, ClientMsg *msg);

/* registry.c: buffers, exports, imports */
int hbd_buffer_alloc(struct hbd_session *s, uint32_t peer, uint64_t size, uint32_t flags,
		     struct hbd_buffer **out);
struct hbd_buffer *hbd_buffer_find(struct hbd_session *s, uint64_t handle);
/* The buffer some session owns under handle (restoring imports), or NULL. */
struct hbd_buffer *hbd_buffer_by_handle(struct hbd *d, uint64_t handle);
/* Handle tables: set up empty; a buffer enters when it gets an owner, an import at birth. */
void hbd_handles_init(struct hbd *d);
void hbd_buffer_handle_add(struct hbd_buffer *b);
void hbd_import_handle_add(struct hbd *d, struct hbd_import *im);
void hbd_buffer_free(struct hbd_buffer *b);
int hbd_export(struct hbd_buffer *b, const uint8_t *meta, size_t meta_len, struct hb_id *hid);
/* Whether b's export is live under hid (16 bytes), no unexport asked for, even a delayed one:
 * what a re-export that names its hid needs (PROTOCOL.md §3 "Re-exports"). */
bool hbd_export_live_as(const struct hbd_buffer *b, const uint8_t *hid);
int hbd_unexport(struct hbd_session *s, const struct hb_id *hid, uint32_t delay_ms);
struct hbd_buffer *hbd_hid_lookup(struct hbd *d, const struct hb_id *hid);
int hbd_import(struct hbd_session *s, const struct hb_id *hid, uint32_t flags,
	       struct hbd_import **out);
int hbd_import_check(struct hbd_session *s, struct hbd_buffer *b, bool writable);
struct hbd_import *hbd_import_new(struct hbd_session *s, struct hbd_buffer *b, bool writable,
				  bool held);
void hbd_import_counted(struct hbd_session *s, struct hbd_import *im);

/* hold.c: imports made for a client with the EXPORTED event that tells it of a buffer
 * (PROTOCOL.md §3 "Holds"). */
/* The hold to put in e, an EXPORTED event about to be framed for s; nothing when s did not ask
 * for holds, is at HBP_HOLDS_MAX, or could not import the buffer now. */
void hbd_hold_put(struct hbd_session *s, Event *e, BufferDesc *desc);
/* Holds{on}: whether s's EXPORTED events bring holds (a session that announced the feature). */
int hbd_holds_set(struct hbd_session *s, bool on);
/* Import.hold: the hold becomes s's import (no reply unless refused when quiet). */
int hbd_hold_take(struct hbd_session *s, const Import *m, struct hbd_import **out);
/* A resumed session: its holds the library does not name are released. */
void hbd_holds_prune(struct hbd_session *s, const uint64_t *keep, size_t n);
struct hbd_import *hbd_import_find(struct hbd_session *s, uint64_t handle);
void hbd_import_release(struct hbd_session *s, struct hbd_import *im);
/* Starts (or restarts, after a restore) a pending unexport's timer. */
void hbd_buffer_arm_unexport(struct hbd_buffer *b, uint32_t delay_ms);
uint32_t hbd_buffer_info_flags(const struct hbd_buffer *b);
const char *hbd_export_state_name(enum hbd_export_state st);

/* domain.c */
struct hbd_domain *hbd_domain_get(struct hbd *d, uint32_t id);
/* Called when a session or an ivshmem peer of the domain goes away. A domain is gone when
 * its last session and ivshmem connection are gone, or (pool_lost) when the last ivshmem
 * connection bound to it closes: a VM whose QEMU left its pool is no VM to share with. */
void hbd_domain_check_gone(struct hbd *d, struct hbd_domain *dom, bool pool_lost);
/* Queues an event for every client session of domain id (except `except`). */
void hbd_domain_event(struct hbd *d, uint32_t id, uint32_t type, const struct hb_id *hid,
		      uint32_t from, uint64_t size, const uint8_t *meta, uint32_t meta_len);

/* control.c: the views of hyperbufctl (PROTOCOL.md §3 Control) */
int hbd_control(struct hbd_session *s, const Control *req, ControlReply **out);
void hbd_control_free(ControlReply *r);
/* Every counter of `hyperbufctl stats`, in its order, the backend's last. */
void hbd_stats_walk(struct hbd *d, void (*put)(void *ctx, const char *key, uint64_t value),
		    void *ctx);
/* Every limit in force ([limits] and meta_max), as hyperbufctl status shows them. */
void hbd_limits_walk(struct hbd *d, void (*put)(void *ctx, const char *key, uint64_t value),
		     void *ctx);

/* control_list.c: one page of a listing, in the order of its keys */
int hbd_control_page(struct hbd *d, const Control *req, ControlReply *r);

/* watch.c: the daemon's events for subscribed control sessions (PROTOCOL.md §10) */
struct hbd_watch_ev {
	const char *what;            /* "export", "session_end", ... */
	const struct hbd_session *s; /* the session it concerns, or NULL */
	uint32_t domain, peer;
	const struct hb_id *hid; /* or NULL */
	uint64_t size, timeline, value;
	const char *detail; /* or NULL */
};
void hbd_watch_emit(struct hbd *d, const struct hbd_watch_ev *ev);
/* Subscribe: -EPERM for a client session. */
int hbd_watch_subscribe(struct hbd_session *s);
/* A request that succeeded: a session's Hello, an export, unexport, import, release, a new
 * timeline are events. */
void hbd_watch_done(struct hbd_session *s, const ClientMsg *cm, const ServerMsg *reply);
/* A session ends: it stops watching; a client session's end is an event. */
void hbd_watch_session_end(struct hbd_session *s, const char *reason);

/* explain.c: the words that go with a refusal (ServerMsg.reason) */
void hbd_reason(struct hbd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hbd_explain_alloc(struct hbd_session *s, uint32_t peer, uint64_t size, int err);
void hbd_explain_hello(struct hbd_session *s, uint32_t role, int err);

/* metrics.c: the counters in Prometheus's text format, on a socket and in a file (off unless
 * the config says where). Start: 0 or -errno (logged). */
struct hbd_metrics;
int hbd_metrics_start(struct hbd *d);
void hbd_metrics_stop(struct hbd *d);
/* The text, malloc'ed (NULL: out of memory); *len its length. */
char *hbd_metrics_text(struct hbd *d, size_t *len);

/* notify.c: sd_notify without libsystemd */
int hbd_notify(const char *state);

/* state_write.c: the restart state (docs/RESTART.md; no-ops while nothing is kept) */
bool hbd_state_on(const struct hbd *d);
void hbd_state_mark_session(struct hbd_session *s);
void hbd_state_mark_buffer(struct hbd_buffer *b, bool placed);
void hbd_state_mark_timeline(struct hbd_timeline *tl);
void hbd_state_import_new(struct hbd_session *s, struct hbd_import *im);
void hbd_state_event_new(struct hbd_session *s, struct hbd_event *ev);
void hbd_state_forget_event(struct hbd *d, struct hbd_event *ev);
void hbd_state_forget_session(struct hbd_session *s);
void hbd_state_forget_buffer(struct hbd_buffer *b);
void hbd_state_forget_timeline(struct hbd *d, struct hbd_timeline *tl);
void hbd_state_forget_import(struct hbd *d, struct hbd_import *im);
void hbd_state_backend_put(struct hbd *d, uint64_t key, const void *data, size_t len);
void hbd_state_backend_drop(struct hbd *d, uint64_t key);
/* Makes every change so far durable: before a reply or an event leaves. 0 or -errno (the
 * state is then given up, logged). */
int hbd_state_commit(struct hbd *d);
bool hbd_state_pending(const struct hbd *d);
/* A fresh journal of the current state, kept as "state.<gen>"; old: the name it replaces. */
int hbd_state_start(struct hbd *d, unsigned gen, uint64_t lineage, const char *old);
void hbd_state_stop(struct hbd *d);
void hbd_state_stats(const struct hbd *d, uint64_t *commits, uint64_t *compactions);

/* state_restore.c: a start that finds the last daemon's state takes it back */
/* Reads the newest state the fd store kept. 0 with *restore filled (caller frees), 1 if
 * there is none, or a negative errno: a state that was refused (logged with why). *gen and
 * name: which one it was. */
struct hbd_restore;
int hbd_restore_find(struct hbd *d, struct hbd_restore *restore, unsigned *gen, char *name,
		     size_t namelen);
/* Builds the restored objects (sessions detached until their clients resume them). 0, or a
 * negative errno with everything it built undone. */
int hbd_restore_apply(struct hbd *d, const struct hbd_restore *restore);
/* resume.c: a Hello with a token takes over the restored session it names */
int hbd_session_resume(struct hbd_session *s, const Hello *h, Welcome *w, int *resend_fd_group);
/* A new client session's random token (-EAGAIN if the kernel has no randomness yet). */
int hbd_session_new_token(struct hbd_session *s);
/* After a resumed session's Welcome: the reply its client missed (fd_group >= 0; an Attach's
 * reply gets a new pool fd for group fd_group > 0), then what was framed for it meanwhile. */
void hbd_session_resend(struct hbd_session *s, int fd_group);

#endif
