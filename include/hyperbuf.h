/*
 * hyperbuf.h - zero-copy buffer sharing between virtual machines and the host.
 *
 * This header is the whole client contract of libhyperbuf. It compiles on its own with
 * -std=c11 -Wall -Wextra -Werror. Build a client with `pkg-config --cflags --libs hyperbuf`.
 *
 * Conventions:
 * - Every object is opaque and owned by whoever created it until the matching free call.
 * - Errors: functions return -1 or NULL and set errno. A broken daemon connection is sticky:
 *   every later call on that client fails with the same errno (EPIPE or ECONNRESET). A daemon
 *   that restarts with its state (docs/RESTART.md) is not a broken connection: the library
 *   resumes the session inside the call that noticed, and queues HB_EVENT_RESTARTED.
 * - The library owns no thread and no event loop: poll hb_get_fd() and call hb_dispatch().
 * - One struct hb_client may be used from several threads; calls on it are serialised.
 *   Buffers, imports, timelines and syncs belong to their client and must not outlive it:
 *   hb_disconnect frees whatever of them is still open.
 */
#ifndef HYPERBUF_H
#define HYPERBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HB_VERSION_MAJOR 0
#define HB_VERSION_MINOR 1

/* Largest metadata blob a build of the library can carry. The daemon may configure a smaller
 * limit (meta_max, at least 1024); hb_export fails with EMSGSIZE above either. */
#define HB_META_MAX 4096

/* hb_buffer_alloc flags */
#define HB_BUFFER_PEER_WRITABLE 0x1u /* the peer may import it read-write */

/* hb_import flags */
#define HB_IMPORT_WRITE 0x1u /* map read-write; needs HB_BUFFER_PEER_WRITABLE, else EACCES */

/* hb_export flags */
#define HB_EXPORT_NOWAIT 0x1u /* a re-export does not wait for the daemon (see hb_export) */

/* struct hb_info.flags */
#define HB_INFO_UNEXPORTED       0x1u /* withdrawn: new imports fail with ENOENT */
#define HB_INFO_UNEXPORT_PENDING 0x2u /* a delayed unexport is scheduled */
#define HB_INFO_PEER_WRITABLE    0x4u /* the buffer was allocated HB_BUFFER_PEER_WRITABLE */

/* Fence usage (hb_attach_fence) and CPU access modes (hb_begin/end_cpu_access). */
#define HB_ACCESS_READ  0x1u
#define HB_ACCESS_WRITE 0x2u
/* Pending fences one buffer's reservation holds at most (hb_attach_fence: ENOSPC). */
#define HB_RESV_MAX 32

/* ---- Connection ------------------------------------------------------------------------ */

struct hb_client;

/*
 * Connects to the daemon. address: NULL means $HYPERBUF_ADDRESS, else the platform default
 * (xen: inside a Xen guest, kvm: inside a KVM guest, unix:/run/hyperbuf/hyperbufd.sock on the
 * host). Forms:
 *   unix:PATH  a host client (domain 0, or Xen's dom0) of the daemon's socket at PATH; a
 *              bare absolute PATH means the same
 *   vm:PATH    an emulated VM: PATH is that VM's channel socket; the library then connects to
 *              the ivshmem socket of each of the VM's groups and maps the pool from the fd it
 *              receives, exactly as QEMU would
 *   kvm:       inside a KVM guest: the first free virtio-serial port org.hyperbuf.N, the pools
 *              from the guest's ivshmem BARs (docs/KVM.md); kvm:PATH names one port device
 *   xen:       inside a Xen guest: the vchan hyperbufd in dom0 publishes for this domain
 *              (docs/XEN.md); buffers are then pages this process grants, imports grants it
 *              maps.
 * Errors: EINVAL (bad address), ENOENT/ECONNREFUSED (no daemon), EPROTO (version mismatch or a
 * malformed welcome), ENOMEM, EACCES (the socket is served by a uid other than root, this
 * user or $HYPERBUF_DAEMON_UID; or the daemon refused this process's credentials: not the
 * VM's QEMU), EUSERS (the daemon refused a connection over a limit: sessions_per_domain,
 * pending_per_uid, sessions_per_uid; docs/SECURITY.md); in a KVM guest also EBUSY (every port is
 * taken by another process), EACCES/EPERM (no permission for the port or the BARs), ENODEV (no
 * ivshmem device for one of the VM's groups), ETIMEDOUT; for xen: ENOENT (no Xen devices) or
 * ETIMEDOUT (no daemon serves this domain within 10 s). hb_strerror(NULL) says more: the
 * address, the daemon's reason for a refusal.
 */
struct hb_client *hb_connect(const char *address);

/*
 * Words for the last failed call on c, for people and logs (not for parsing): what failed and
 * what errno alone cannot say, such as the socket's path, the limit and its value, the
 * domain, or the daemon's own reason ("Export refused by hyperbufd: Message too long:
 * metadata of 2048 bytes is over the daemon's meta_max of 1024 bytes"). c NULL: the calling
 * thread's last failed hb_connect. Read it right after the call failed, with errno as that
 * call left it: when the library has no words for that errno, it is strerror(errno). The
 * string stays valid until the client's next call (c NULL: the thread's next hb_connect) and
 * never after hb_disconnect. Never NULL.
 */
const char *hb_strerror(const struct hb_client *c);

/*
 * Closes the connection and frees every buffer and import still held through it. Signals sent
 * without waiting for their answer (hb_timeline_signal) are answered first, one round trip;
 * if the daemon is restarting just then, that waits for it to come back, as any call would
 * (at most the daemon's resume_timeout_ms), so that none of them is lost.
 */
void hb_disconnect(struct hb_client *c);

/* The domain the daemon says this client is: 0 for the host, the VM's id otherwise. */
uint32_t hb_self_domain(const struct hb_client *c);

/* What the library did for one client since hb_connect, counted by the library itself: the
 * cost of a frame or a fence without strace (make bench prints them per round). */
struct hb_counters {
	uint64_t recvs;      /* receive calls on the daemon connection (recvmsg, read), and
			      * reads of this process's fence doorbells */
	uint64_t sends;      /* send calls on it */
	uint64_t polls;      /* poll calls of blocking calls and waits */
	uint64_t wakes;      /* eventfd writes: sync fds, waiters in other threads, and fence
			      * doorbells of other processes */
	uint64_t frames_in;  /* frames received from the daemon */
	uint64_t frames_out; /* requests sent */
};

/* Fills *out with c's counters. Returns 0, or -1/EINVAL (NULL). Safe from any thread. */
int hb_counters(const struct hb_client *c, struct hb_counters *out);

/*
 * A file descriptor that becomes readable when the daemon sent something for hb_dispatch (an
 * epoll set of the connection's descriptors: poll, select or add it to your own epoll set).
 * It stays the same for the client's life, even when the library resumes the session on a new
 * connection after a daemon restart. Owned by the library; never read from it. Blocking calls
 * read the socket too and queue any events they meet, so drain hb_next_event until EAGAIN
 * before you poll again.
 */
int hb_get_fd(const struct hb_client *c);

/*
 * Reads and handles what the daemon sent, waiting up to timeout_ms (0: do not wait, -1:
 * forever) for the first message; it does not wait while events are already queued for
 * hb_next_event. Returns the number of messages handled, or -1.
 */
int hb_dispatch(struct hb_client *c, int timeout_ms);

/* ---- Handles ----------------------------------------------------------------------------- */

/* An export handle (hid): 128 bits, at least 96 of them random. Safe to pass around. */
struct hb_id {
	uint8_t bytes[16];
};

/* Writes 32 lowercase hex digits and a NUL. Returns 0, or -1/EINVAL if an argument is NULL. */
int hb_id_format(const struct hb_id *id, char out[33]);

/* Parses exactly 32 hex digits (either case). Returns 0, or -1/EINVAL on bad text. */
int hb_id_parse(const char *text, struct hb_id *id);

/* 1 if equal, 0 if not. */
int hb_id_equal(const struct hb_id *a, const struct hb_id *b);

/* ---- Buffers, export, unexport ------------------------------------------------------------ */

struct hb_buffer;

/*
 * Allocates zero-filled memory that can be shared with peer_domain. size need not be a page
 * multiple; the exact size is kept. flags: 0 or HB_BUFFER_PEER_WRITABLE.
 * Errors: EINVAL (size 0, self as peer, unknown flags), EPERM (policy: no group with that
 * peer), ENODEV (no such domain), ENOSPC (pool full), EDQUOT (domain quota), EFBIG (larger
 * than any pool). On Xen: ENOSPC (the gntalloc limit, or the domain's grant budget), EFBIG
 * (over the whole grant budget); docs/XEN.md says which knob to turn.
 */
struct hb_buffer *hb_buffer_alloc(struct hb_client *c, uint32_t peer_domain, size_t size,
				  uint32_t flags);

/* The writable mapping of the buffer, valid until hb_buffer_free. */
void *hb_buffer_data(struct hb_buffer *b);
size_t hb_buffer_size(const struct hb_buffer *b);

/* Unexports what is still exported (delay 0) and unmaps. An importer that still maps the
 * pages keeps them until it releases its import. */
void hb_buffer_free(struct hb_buffer *b);

/*
 * Exports b to its peer with meta_len bytes of metadata (meta may be NULL when meta_len is 0)
 * and stores the handle in *id. Exporting the same buffer again returns the same id, replaces
 * the metadata, notifies the peer again and cancels a pending delayed unexport. A buffer whose
 * unexport already completed gets a new id. flags: 0 or HB_EXPORT_NOWAIT.
 * Without flags the export is done when this returns, for every client. With HB_EXPORT_NOWAIT,
 * exporting again a buffer this client exported and did not unexport since, with at most 1024
 * bytes of metadata, does not wait for the daemon (PROTOCOL.md §3 "Re-exports"): it returns
 * the same id at once, the peer hears it (EXPORTED) as before, and a call made after it on
 * this client sees it done; another client told out of band may still see the export as it
 * was before. Only the daemon running out of memory could refuse it then; that is logged,
 * not returned, and the buffer's next export waits for the daemon's answer. A first export,
 * or one after hb_unexport, waits whatever the flags.
 * Errors: EMSGSIZE (meta_len over the limit), EDQUOT (exports_per_domain), EINVAL (flags, or
 * metadata that holds the 8-byte resync magic "\x89HBSYNC\n" or ends with its first 6 or 7
 * bytes, which VM channels reserve: one chance in 2^48 for random bytes; PROTOCOL.md §1.1).
 */
int hb_export(struct hb_buffer *b, const void *meta, size_t meta_len, uint32_t flags,
	      struct hb_id *id);

/* One buffer of hb_export_batch: buffer, meta and meta_len in; id and error out. */
struct hb_export_item {
	struct hb_buffer *buffer;
	const void *meta; /* may be NULL when meta_len is 0 */
	size_t meta_len;
	struct hb_id id; /* its handle, where error is 0; zero bytes otherwise */
	int error;       /* 0, or the errno hb_export would have set for this buffer */
};

/*
 * Exports n buffers of c, each as hb_export(items[i].buffer, items[i].meta, items[i].meta_len,
 * 0, &items[i].id) would, in order, with their requests in flight together: one round trip per
 * 64 buffers instead of one per buffer, for a program that exports many at once (its frames at
 * start-up, a burst of small buffers). Each item has its own outcome: one refused (EDQUOT past
 * exports_per_domain, EMSGSIZE...) does not stop the others. Returns how many were exported
 * (when fewer than n, errno is the first failed item's error), or -1 with errno and no item
 * exported: EINVAL (c NULL, items NULL with n > 0, an item's buffer NULL or another client's),
 * or the client's sticky error. Across a daemon restart (the session resumes, docs/RESTART.md)
 * an item whose reply was lost with the old daemon fails with ECONNRESET: it may have been
 * exported, and hb_export of its buffer says its id.
 */
int hb_export_batch(struct hb_client *c, struct hb_export_item *items, size_t n);

/*
 * Withdraws an export after delay_ms: then new imports fail with ENOENT, the peer gets
 * HB_EVENT_UNEXPORTED, and the pages are reclaimed once every import was released.
 * Errors: ENOENT (unknown id), EPERM (not the exporter). A second call is a no-op returning 0
 * and keeps the first delay.
 */
int hb_unexport(struct hb_client *c, const struct hb_id *id, uint32_t delay_ms);

/* ---- Import ------------------------------------------------------------------------------ */

struct hb_import;

/*
 * Maps the buffer behind id. flags: 0 (read-only: a write faults) or HB_IMPORT_WRITE.
 * Errors: ENOENT (unknown, forged, unexported or not exported to this domain: these are
 * indistinguishable), EACCES (write asked for, not allowed), EBADMSG (the shared reference
 * directory is corrupt), ENOMEM; on Xen ENOSPC (this domain's maptrack budget) and EFBIG
 * (over gntdev's per-mapping limit).
 * The mapping stays valid until hb_import_release, even after the exporter unexports, frees
 * or dies (on Xen, a dead exporter's pages are then replaced by a private copy of them).
 * With hb_set_holds on, read-only, of a small buffer (up to 64 pages) whose
 * HB_EVENT_EXPORTED hb_next_event handed out last: the import came with the event, and this
 * call asks the daemon nothing; it succeeds even if the exporter unexported or freed the
 * buffer since the event, as an import made then would.
 * A small read-only import may be a window on the pool the library maps anyway: read it only
 * until hb_import_release, as any import.
 */
struct hb_import *hb_import(struct hb_client *c, const struct hb_id *id, uint32_t flags);

/*
 * Holds (docs/PROTOCOL.md §3 "Holds"), off by default: on, the daemon makes with each
 * HB_EVENT_EXPORTED of a small buffer (up to 64 pages) to this client the read-only import
 * hb_import would ask for, so that importing it right after hb_next_event costs no round trip
 * (docs/PERFORMANCE.md goal 4). The price is a contract: read your events. Until the next
 * hb_next_event gives an unused one back, each event read or waiting in the queue keeps its
 * buffer's pages from returning to the pool (at most 16 at a time; the exporter hears of
 * nothing until the import is taken). Kept across daemon restarts.
 * Errors: EINVAL (c NULL, on neither 0 nor 1), EOPNOTSUPP (the daemon does not make holds),
 * the client's sticky error.
 */
int hb_set_holds(struct hb_client *c, int on);
void *hb_import_data(struct hb_import *im);
size_t hb_import_size(const struct hb_import *im);

/* Copies up to len bytes of the metadata seen at import time into buf; returns its full
 * length (which may exceed len), or -1. */
ssize_t hb_import_metadata(const struct hb_import *im, void *buf, size_t len);
void hb_import_release(struct hb_import *im);

/* ---- Query ------------------------------------------------------------------------------- */

struct hb_info {
	uint32_t exporter; /* exporting domain */
	uint32_t peer;     /* domain the buffer is exported to */
	uint64_t size;     /* exact bytes */
	uint32_t pages;
	uint32_t importers; /* live imports */
	uint32_t flags; /* HB_INFO_UNEXPORTED | HB_INFO_UNEXPORT_PENDING | HB_INFO_PEER_WRITABLE */
	uint32_t meta_len;
	uint8_t meta[HB_META_MAX];
};

/* Allowed for the exporter and for the peer; anybody else gets ENOENT. */
int hb_query(struct hb_client *c, const struct hb_id *id, struct hb_info *info);

/* ---- Events ------------------------------------------------------------------------------ */

enum hb_event_type {
	HB_EVENT_EXPORTED = 1, /* to the peer: a buffer was exported to you (or re-exported) */
	HB_EVENT_UNEXPORTED,   /* to the peer: the exporter withdrew it */
	HB_EVENT_IMPORTED,     /* to the exporter: the peer imported it */
	HB_EVENT_RELEASED,     /* to the exporter: the peer released its last import */
	HB_EVENT_DOMAIN_GONE,  /* a domain you share with died or disconnected */
	HB_EVENT_FENCE,        /* a fence you wait on signalled (see fences) */
	HB_EVENT_OVERFLOW,     /* events were lost: resynchronise with hb_query */
	HB_EVENT_RESTARTED,    /* the daemon restarted and this client resumed its session */
};

/*
 * HB_EVENT_RESTARTED (docs/RESTART.md): the daemon was restarted (a crash, an upgrade) and the
 * library resumed this client's session by itself, inside whatever call noticed: buffers,
 * imports, mappings, timelines and open syncs are all still valid, a call in flight was
 * completed or sent again. Events the old daemon had queued but not yet sent may be lost, as
 * after HB_EVENT_OVERFLOW: resynchronise with hb_query what you depend on. domain = this
 * client's domain; the other fields are 0. A daemon that keeps no state across restarts (no
 * service manager's fd store) cannot be resumed: calls then fail with ECONNRESET or EPIPE.
 */

/*
 * HB_EVENT_FENCE: queued once per fence point (timeline, value) that this client holds an
 * open hb_sync on, when the library learns from the daemon that the point completed (signalled
 * or failed). The hb_sync's status and fd are updated before the event is queued. Fields:
 * id.bytes[0..7] the timeline id and id.bytes[8..15] the value, both little-endian (use
 * hb_event_fence() to read them); domain = the timeline owner's domain; size = the value;
 * meta_len = 0. There is no event for a fence born signalled, for a fence of a merge that
 * completes (its members' points each have theirs), or for the completions a lost connection
 * causes (the connection's errno reports that). The event is a wakeup for event-loop clients;
 * the truth is hb_sync_status().
 */

struct hb_event {
	enum hb_event_type type;
	struct hb_id id;
	uint32_t domain; /* the other side */
	uint64_t size;
	uint32_t meta_len;
	uint8_t meta[HB_META_MAX];
};

/*
 * Returns 0 and fills *ev with the oldest queued event, or -1/EAGAIN when none is queued. It
 * does not wait: use hb_get_fd + hb_dispatch. The queue is bounded (the daemon's event_queue);
 * on overflow the oldest events are kept and one HB_EVENT_OVERFLOW is queued. The import an
 * HB_EVENT_EXPORTED brings with hb_set_holds on is given back by the next call (which sends
 * that, as other calls send what the library owes the daemon): import the buffer before
 * asking for the next event to use it.
 */
int hb_next_event(struct hb_client *c, struct hb_event *ev);

/* ---- Fences and CPU access (remote synchronisation) -------------------------------------- */

/*
 * A fence is a point on a timeline: it completes when the timeline's owner signals a value at
 * or above it. It is a plain value: pass it to other domains in export metadata or any other
 * channel, and open it there with hb_sync_open.
 */
struct hb_fence {
	uint64_t timeline; /* hb_timeline_id() of the owner's timeline */
	uint64_t value;
};

struct hb_timeline;
struct hb_sync;

/*
 * Creates a timeline owned by this client, at value 0. Its id is 64 random bits, never reused
 * while the daemon runs and, barring a 2^-64 coincidence, not after it restarts. Only this
 * client's domain sees it until the owner shares it (hb_attach_fence, hb_timeline_share).
 * Errors: EDQUOT (the domain has timelines_per_domain timelines), ENOMEM, the client's sticky
 * error.
 */
struct hb_timeline *hb_timeline_create(struct hb_client *c);

/* The timeline's id (never 0), to put in struct hb_fence. */
uint64_t hb_timeline_id(const struct hb_timeline *t);

/*
 * Moves the timeline to value: every pending point <= value completes with status 1, in
 * value order (no domain sees a point complete while an earlier one is pending). A value at or
 * below the current one is a no-op returning 0: values only move forward. Values are plain
 * 64-bit numbers; nothing wraps. Before the request leaves, a full memory barrier orders this
 * thread's earlier writes to shared buffers before the signal (release semantics), so a
 * waiter whose wait returned sees them (after hb_begin_cpu_access on its side).
 * Only the owner can signal: the daemon refuses anybody else with EPERM (the library only ever
 * sends its own timelines' ids, so EPERM is seen by raw protocol clients).
 * It returns once the request is written, without waiting for the daemon's answer (a quiet
 * signal, docs/PROTOCOL.md §3): nothing the daemon checks can fail for the owner, and this
 * client's later requests are handled after it. A daemon restart meanwhile loses nothing if the
 * client resumes: the library sends the signal again at its next call or hb_dispatch, which
 * must come within the daemon's resume_timeout_ms (otherwise the session ends, and the
 * timeline's waiters get -EPIPE as for any owner that ends). hb_disconnect first waits for the
 * daemon to have every such signal. Two exceptions wait for the answer: while this
 * client's domain has an hb_sync open on one of its own timelines (so that those syncs have
 * completed when the signal returns), and one signal in 65 when the 64 before it are still
 * unanswered. The same holds for hb_timeline_fail. HYPERBUF_SIGNALS=awaited in the environment
 * of hb_connect makes every signal of that client wait for its answer (and opens every fence
 * as a wait of its own, hb_sync_open).
 * Errors: EINVAL (t NULL), the client's sticky error.
 */
int hb_timeline_signal(struct hb_timeline *t, uint64_t value);

/*
 * Lazy records (docs/PROTOCOL.md §3 "Lazy records"): on is 1 or 0 (off, the default). While
 * on, and while the daemon says that every waiter of the timeline reads it from a fence slot
 * (waiters in a VM or host process that share a pool with this client and were rung through
 * its doorbells), hb_timeline_signal wakes those waiters and sends the daemon nothing: no
 * message and no daemon work per fence. One signal in 64 still goes, and so does a signal
 * that left a waiter the library could not ring. When a waiter that needs the daemon comes
 * (another domain, a client without a doorbell, a wait that stalled), the daemon makes
 * hb_get_fd readable, and the library sends the value at its next hb_dispatch, call on this
 * client, or signal. So turn it on only for a client that something dispatches (an event
 * loop on hb_get_fd) or that waits or signals again soon; until then, such a waiter waits.
 * A signal that would stay first reads what the daemon sent, as a blocking call does (drain
 * hb_next_event before you poll hb_get_fd again), and a failure first sends what was kept.
 * Any call on the client that reads the daemon's request for a kept value sends it before it
 * returns (a send, or a round trip when the value must be awaited).
 * hb_timeline_destroy, hb_disconnect and turning it off send what was kept. An owner that
 * crashes loses at most the 63 values kept last from the daemon's record: the waiters that
 * read them in the slot have them, the others get -EPIPE, as if it had crashed before them.
 * HYPERBUF_SIGNALS=lazy in the environment at hb_connect turns it on for every timeline the
 * client creates (the fence suites run so).
 * Errors: EINVAL (t NULL, on neither 0 nor 1), the client's sticky error (turning it off).
 */
int hb_timeline_set_lazy(struct hb_timeline *t, int on);

/*
 * Like hb_timeline_signal, but each pending point <= value gets the error first and then
 * completes: its status is error (a negative errno, -4095..-1). Points already completed keep
 * their status. error 0 or positive or below -4095: EINVAL. A value at or below the current
 * one is a no-op.
 */
int hb_timeline_fail(struct hb_timeline *t, uint64_t value, int error);

/*
 * Destroys the timeline: every pending point completes with -EPIPE, oldest (lowest value)
 * first, and the id is never used again; hb_sync_open on it then fails with ENOENT. The same
 * happens when the owner disconnects, crashes or is dropped by the daemon. NULL is a no-op.
 */
void hb_timeline_destroy(struct hb_timeline *t);

/*
 * Lets domain open this timeline's fences (hb_sync_open, and CPU access brackets on buffers
 * carrying them). A timeline is visible only to its owner's domain and to the domains its
 * owner gave a fence to: attaching one of its fences to a buffer (hb_attach_fence) gives it
 * to both sides of that share; this call gives it to one more domain, for fences that travel
 * by other means (metadata, a side channel). Everybody else gets ENOENT, exactly as for an id
 * that does not exist; ids are 64 random bits, so they cannot be found by counting.
 * Sharing again is a no-op returning 0; sharing lasts as long as the timeline.
 * Errors: EINVAL (t NULL), EPERM (this domain may not share with domain), ENOSPC (the
 * timeline is shared with 4096 domains already), the client's sticky error.
 */
int hb_timeline_share(struct hb_timeline *t, uint32_t domain);

/*
 * Opens a handle on fence f in any domain the timeline is visible to (hb_timeline_share): the
 * owner's domain and the domains its owner gave a fence to. A fence at or below the timeline's
 * current value is born complete, fd readable at once: status 1, or the error hb_timeline_fail gave
 * its point (the daemon remembers the value ranges of a timeline's last 64 distinct fails; older
 * failed points read 1). Opening a pending fence again gives another handle on the same underlying
 * fence (one daemon wait).
 * The first fence opened on a timeline asks the daemon to keep this client told of the
 * timeline's progress (a watch, docs/PROTOCOL.md §3 "Watches"): later fences on it are opened,
 * completed and closed without a request (one poll reads what already arrived, so that a
 * timeline destroyed before is ENOENT); a watch holds any number of fences and does not count
 * as a wait (watches have a quota of their own, past which fences are waits).
 * HYPERBUF_SIGNALS=awaited at hb_connect: no watches, every pending fence is a daemon wait.
 * Errors: EINVAL (NULL, timeline 0), ENOENT (unknown or destroyed timeline, or one this domain
 * may not see: indistinguishable), EDQUOT (fence_waits_per_domain pending waits), EMFILE/
 * ENFILE/ENOMEM (no eventfd), the client's sticky error.
 */
struct hb_sync *hb_sync_open(struct hb_client *c, const struct hb_fence *f);

/*
 * A new handle that completes when both a and b have completed; a and b stay valid and
 * unchanged. Status: the first error of any member in time wins, including an error of a member
 * that had completed before the merge; else 1. Merges of merges nest without limit; a merge
 * costs O(1) and no daemon round trip. a and b must belong to the same client (EINVAL).
 * Errors: EINVAL, EMFILE/ENFILE/ENOMEM.
 */
struct hb_sync *hb_sync_merge(struct hb_sync *a, struct hb_sync *b);

/*
 * An eventfd (non-blocking, close-on-exec) owned by the handle that becomes readable when the
 * fence completes, with or without an error, and stays readable: poll it, NEVER read it (a read
 * would clear it). It never reports POLLERR for a fence error; ask hb_sync_status. The library
 * writes it when it learns of the completion, which happens inside library calls on the client
 * (hb_dispatch, hb_sync_wait, hb_sync_status, any blocking call): an event loop that polls sync
 * fds must also poll hb_get_fd() and call hb_dispatch(). Valid until hb_sync_close. The
 * eventfd is made by the first call (a handle only waited on costs no descriptor); later
 * calls return the same one. Errors: EINVAL (NULL or closed), EMFILE/ENFILE/ENOMEM.
 */
int hb_sync_fd(const struct hb_sync *s);

/*
 * Waits until s completes: 0 (whatever its status: an error completion is a completion), or
 * -1/ETIME after timeout_ms (0: don't block, -1: forever; other negatives are EINVAL). Reads
 * the daemon's messages while it waits, so events are queued, never lost. Never changes s.
 * A lost daemon connection completes s with the connection's error: the wait returns 0 and
 * hb_sync_status tells.
 */
int hb_sync_wait(struct hb_sync *s, int timeout_ms);

/*
 * Waits until at least one of v[0..n) completes; returns 0 with *index the lowest index of a
 * complete one, or -1/ETIME. n 0 or a NULL entry: EINVAL. Handles may belong to different
 * clients.
 */
int hb_sync_wait_any(struct hb_sync **v, size_t n, int timeout_ms, size_t *index);

/*
 * 0 pending, 1 signalled, or the negative errno it completed with (-EPIPE: owner gone or
 * timeline destroyed; the client's sticky error, e.g. -EPIPE or -ECONNRESET, after a lost
 * connection; whatever hb_timeline_fail set). Reads what the daemon already sent (without
 * blocking) before it answers, so a busy-wait on the status makes progress; while nothing
 * came, that costs one epoll_wait and reads nothing (test_it_events; a Xen vchan, which has
 * no fd that says so, is read every time). The status is set
 * before the fd becomes readable: a poller woken by the fd always reads a non-zero status.
 */
int hb_sync_status(const struct hb_sync *s);

/* Closes the handle (and its fd). Never signals or cancels the fence for anybody else. NULL is
 * a no-op. */
void hb_sync_close(struct hb_sync *s);

/*
 * Adds fence f to the reservation of the buffer behind id (the implicit-sync set, as a
 * dma-buf's dma_resv): usage HB_ACCESS_WRITE for the completion of a write to the buffer,
 * HB_ACCESS_READ for a read (both bits: WRITE). Same rule as the kernel's dma_resv_add_fence: a
 * fence replaces an entry of the same timeline when its value is not lower and the usage is not
 * downgraded (READ may become WRITE, never the reverse), or any entry that already completed;
 * otherwise it is added. A fence that already completed is accepted and changes nothing.
 * Allowed for the exporter's and the peer's domains. The timeline's owner attaching its fence
 * makes the timeline visible to both sides of the share; anybody else may attach only a
 * fence both sides already see.
 * Errors: EINVAL (usage 0 or unknown bits, NULL), ENOENT (unknown hid or timeline, not a side of
 * this share, timeline not visible to both sides), ENOSPC (the reservation holds
 * HB_RESV_MAX pending fences, or the timeline is shared with 4096 domains already).
 */
int hb_attach_fence(struct hb_client *c, const struct hb_id *id, const struct hb_fence *f,
		    uint32_t usage);

/*
 * Starts CPU access to the buffer behind id: HB_ACCESS_READ waits for the reservation's WRITE
 * fences; HB_ACCESS_WRITE (alone or with READ) waits for all of them, readers and writers. Then
 * a full memory barrier orders the caller's later reads after those completions (acquire). A
 * fence that completed with an error counts as completed. timeout_ms as hb_sync_wait. On
 * timeout: -1/ETIME and nothing changed: call it again (the bracket is not a lock and keeps no
 * state, so a retry is always correct; so is a retry after EINTR or EAGAIN).
 * Errors: EINVAL (access 0 or unknown bits), ENOENT (unknown hid, or this domain is neither
 * side of the share), ETIME, the client's sticky error.
 */
int hb_begin_cpu_access(struct hb_client *c, const struct hb_id *id, uint32_t access,
			int timeout_ms);

/*
 * Ends CPU access: never waits for a fence. Issues the memory barrier the platform needs so
 * the caller's writes are ordered before whatever it does next (typically hb_timeline_signal).
 * For a buffer this client exported or imports, no daemon round trip is made.
 * Errors: EINVAL (access 0 or unknown bits), ENOENT (as hb_begin_cpu_access).
 */
int hb_end_cpu_access(struct hb_client *c, const struct hb_id *id, uint32_t access);

/* Reads the fence an HB_EVENT_FENCE event names. Returns 0, or -1/EINVAL if ev is not one. */
int hb_event_fence(const struct hb_event *ev, struct hb_fence *f);

/* ---- dma-bufs and sync_files (docs/DMABUF.md) ----------------------------------------- */

/* hb_buffer_dmabuf / hb_import_dmabuf flags */
#define HB_DMABUF_READ_ONLY 0x1u /* the dma-buf's CPU mmap refuses PROT_WRITE */

/*
 * A dma-buf over exactly the buffer's pages, for a GPU, a display or a codec: EGL's dma-buf
 * import, KMS, V4L2, VA-API, GStreamer. A new fd (O_CLOEXEC) the caller owns and closes; byte 0
 * of the dma-buf is byte 0 of the buffer, its size the buffer's pages (hb_buffer_size rounded
 * up to the page size). Writable unless flags has HB_DMABUF_READ_ONLY. Made with udmabuf on
 * the host and in emulated VMs (the pool memfd's pages), with hyperbuf.ko in KVM guests (the
 * ivshmem BAR's pages); the library makes one per buffer and mode and returns new fds of it.
 * If the buffer is exported, the pending fences of its reservation (hb_attach_fence) are put
 * into the dma-buf's own, writers' as writes (DMA_BUF_IOCTL_EXPORT_SYNC_FILE, DMA_BUF_IOCTL_SYNC
 * and implicit sync wait for them); call again after attaching new fences.
 * The dma-buf holds the buffer: hb_buffer_free withdraws the export and unmaps, but the pages
 * stay in use, shared, until nobody holds the dma-buf any more (no fd, mapping or importer);
 * hb_dispatch notices and frees it then. hb_disconnect ends it early: the dma-buf then keeps
 * the memory it had, which is no longer shared (host) or may be reused (KVM guest).
 * Errors: EINVAL (NULL, unknown flags), ENODEV (this kernel cannot make it: no /dev/udmabuf, no
 * hyperbuf.ko, a read-only dma-buf on the host without hyperbuf.ko, Xen without gntdev's
 * dma-buf support, or a reservation with pending fences and no hyperbuf.ko to carry them; the
 * log says which, HYPERBUF_DEBUG=1 prints it), E2BIG (over udmabuf's size_limit_mb or
 * list_limit), EACCES (no permission for /dev/udmabuf or /dev/hyperbuf/...), EMFILE, ENOMEM,
 * the client's sticky error.
 */
int hb_buffer_dmabuf(struct hb_buffer *b, uint32_t flags);

/*
 * The same for an import: read-only unless the import is writable (HB_IMPORT_WRITE) and flags
 * lacks HB_DMABUF_READ_ONLY. The dma-buf holds the import: hb_import_release unmaps at once but
 * tells the daemon (and the exporter, HB_EVENT_RELEASED) only when nobody holds the dma-buf any
 * more. Errors as hb_buffer_dmabuf.
 */
int hb_import_dmabuf(struct hb_import *im, uint32_t flags);

/*
 * A sync_file (a new fd, O_CLOEXEC, the caller's to close) whose dma_fence signals when s
 * completes, with s's error if it fails (SYNC_IOC_FILE_INFO: status 1 or the negative errno):
 * for KMS's IN_FENCE_FD, EGL_ANDROID_native_fence_sync, Vulkan's sync_fd import, or
 * DMA_BUF_IOCTL_IMPORT_SYNC_FILE. Made by hyperbuf.ko (/dev/hyperbuf/ctl); the library signals
 * it when it learns of the completion, that is inside library calls on the client, as for
 * hb_sync_fd: an event loop must keep calling hb_dispatch. It errors with EPIPE if this
 * process exits or calls hb_disconnect before, and with ETIMEDOUT after hyperbuf.ko's
 * fence_timeout_ms (10 s unless changed). s may be closed at once; the sync_file still signals.
 * Errors: EINVAL (NULL or closed), ENODEV (no hyperbuf.ko), EACCES, ENOSPC (the module's
 * max_fences pending), EMFILE, ENOMEM.
 */
int hb_sync_file(struct hb_sync *s);

/* ---- Images: a standard frame description in the export metadata -------------------------- */

/*
 * A frame as media stacks describe it (DRM fourcc and modifier, planes, colorimetry, timing),
 * carried at the start of an export's metadata in a versioned little-endian layout with a magic
 * (docs/PROTOCOL.md, "Image descriptions"), so a consumer can tell it from an application's own
 * blob; an application may append its own bytes after it. Every field a peer sent is checked
 * against the buffer before the library hands it over: planes inside the buffer, strides of a
 * known linear format at least width * bytes per pixel, no arithmetic overflow. A description
 * that fails is EBADMSG, never a crash. Applications with their own metadata keep working: a
 * blob without the magic is ENOMSG.
 */
#define HB_IMAGE_MAX_PLANES      4
#define HB_IMAGE_WIRE_SIZE       160        /* bytes the version 1 description takes */
#define HB_IMAGE_TIME_NONE       UINT64_MAX /* pts or duration not known */
#define HB_IMAGE_MODIFIER_LINEAR 0          /* DRM_FORMAT_MOD_LINEAR */

/* struct hb_image.flags (the GStreamer buffer flags a consumer needs, and the end) */
#define HB_IMAGE_DISCONT 0x1u   /* a discontinuity: frames before it were lost or cut */
#define HB_IMAGE_DELTA   0x2u   /* not a key frame: decodes only with the frames before it */
#define HB_IMAGE_EOS     0x100u /* no frame: the producer's stream ended (the pixels are stale) */

/* struct hb_image_color.range (GStreamer's GstVideoColorRange numbering) */
#define HB_COLOR_RANGE_UNKNOWN 0u
#define HB_COLOR_RANGE_FULL    1u /* 0..255 */
#define HB_COLOR_RANGE_LIMITED 2u /* 16..235 */
/* ITU-T H.273 code point meaning "unspecified" for matrix, transfer and primaries. */
#define HB_COLOR_UNSPECIFIED 2u

/* Colorimetry as GStreamer's GstVideoColorimetry holds it; matrix, transfer and primaries are
 * the ITU-T H.273 (ISO/IEC 23091-4) code points that GStreamer (gst_video_color_*_from_iso),
 * Wayland's color management and V4L2 convert to and from: e.g. BT.709 is 1/1/1, sRGB 0/13/1. */
struct hb_image_color {
	uint8_t range;     /* HB_COLOR_RANGE_* */
	uint8_t matrix;    /* H.273 MatrixCoefficients */
	uint8_t transfer;  /* H.273 TransferCharacteristics */
	uint8_t primaries; /* H.273 ColourPrimaries */
};

struct hb_image_plane {
	uint64_t offset; /* from the start of the buffer */
	uint32_t stride; /* bytes from one row to the next */
};

struct hb_image {
	uint32_t format;   /* DRM fourcc, e.g. 'X','R','2','4' = 0x34325258 (GStreamer's BGRx) */
	uint64_t modifier; /* DRM format modifier: HB_IMAGE_MODIFIER_LINEAR for plain rows */
	uint32_t width, height;
	uint32_t n_planes; /* 1..HB_IMAGE_MAX_PLANES */
	struct hb_image_plane planes[HB_IMAGE_MAX_PLANES];
	struct hb_image_color color;
	uint64_t pts, duration; /* nanoseconds, or HB_IMAGE_TIME_NONE */
	uint64_t sequence;      /* the producer's frame number */
	uint32_t flags;         /* HB_IMAGE_* */
	/* A fence of the producer's: the frame is complete once it has (timeline 0: it already
	 * is, at export). The timeline also outlives the frame: a consumer that opens a fence on
	 * it that is never signalled learns from its -EPIPE that the producer is gone. */
	struct hb_fence fence;
};

/*
 * Fills *img for a linear image of a format the library knows (the RGB formats XR24 AR24 XB24
 * AB24 RX24 BX24 RG24 BG24 RG16, the YUV formats NV12 NV21 NV16 P010 YU12 YV12 YUYV UYVY, and
 * R8): planes packed one after the other, each stride rounded up to stride_align bytes (a power
 * of two, or 0 for 4), the colorimetry unknown/unspecified, no timing, sequence 0, no fence.
 * Returns the bytes a buffer needs for it, or 0 with errno EINVAL (unknown format, width or
 * height 0, stride_align not a power of two) or EOVERFLOW (too large to describe).
 */
size_t hb_image_init(struct hb_image *img, uint32_t format, uint32_t width, uint32_t height,
		     uint32_t stride_align);

/*
 * Checks that img describes pixels inside a buffer of buffer_size bytes: 1..4 planes, width and
 * height not 0, every plane's rows inside the buffer (offset + stride * (rows - 1) + row bytes
 * <= buffer_size, without overflow), and for a known format with the linear modifier the
 * number of planes it has and strides >= width * bytes per pixel. A format the library does not
 * know, or another modifier, gets the checks that need no knowledge of it: planes starting
 * inside the buffer. Returns 0, or -1/EBADMSG (EINVAL if img is NULL).
 */
int hb_image_check(const struct hb_image *img, size_t buffer_size);

/*
 * Writes img's wire form (HB_IMAGE_WIRE_SIZE bytes) at the start of out. Returns the bytes
 * written, or -1 with errno EINVAL (NULL, or flags, n_planes out of range) or ENOSPC (len too
 * small). It does not check img against a buffer: hb_export_image does.
 */
ssize_t hb_image_encode(const struct hb_image *img, void *out, size_t len);

/*
 * Reads the description at the start of len bytes of metadata into *img and checks it against
 * a buffer of buffer_size bytes as hb_image_check does. Returns the bytes the description takes
 * (the application's own bytes, if any, follow), or -1 with errno ENOMSG (no description: the
 * metadata is an application's blob, or empty), EBADMSG (a description, malformed or not
 * fitting the buffer), EPROTONOSUPPORT (a description of a later, incompatible version), or
 * EINVAL (NULL arguments).
 */
ssize_t hb_image_decode(const void *meta, size_t len, size_t buffer_size, struct hb_image *img);

/*
 * Exports b with img's description followed by extra_len bytes of the caller's own (extra may
 * be NULL when extra_len is 0), as hb_export does. img is checked against the buffer first.
 * Errors: EBADMSG (img does not fit b), EINVAL, EMSGSIZE (HB_IMAGE_WIRE_SIZE + extra_len over
 * the limit), and those of hb_export.
 */
int hb_export_image(struct hb_buffer *b, const struct hb_image *img, const void *extra,
		    size_t extra_len, struct hb_id *id);

/* hb_export_image with hb_export's flags: HB_EXPORT_NOWAIT lets a re-export of a frame (a
 * pool's buffer exported again) return without waiting for the daemon, as for hb_export.
 * Errors: those of hb_export_image, and EINVAL for an unknown flag. */
int hb_export_image_flags(struct hb_buffer *b, const struct hb_image *img, const void *extra,
			  size_t extra_len, uint32_t flags, struct hb_id *id);

/* The description an HB_EVENT_EXPORTED event carries, checked against the event's size. Returns
 * 0, or -1 with errno as hb_image_decode (EINVAL also for an event of another type). */
int hb_event_image(const struct hb_event *ev, struct hb_image *img);

/* The description in an import's metadata (as seen at import time), checked against the size
 * of the import. Returns 0, or -1 with errno as hb_image_decode. */
int hb_import_image(const struct hb_import *im, struct hb_image *img);

/* The format as its four characters and a NUL ("XR24"); a byte that is not printable ASCII is
 * written as '?'. Returns out. */
char *hb_image_format_name(uint32_t format, char out[5]);

#ifdef __cplusplus
}
#endif

#endif
