/*
 * Fence points and sync handles (sync.c, sync_wait.c; docs/PROTOCOL.md §3 "Fences").
 *
 * A point is one daemon wait on (timeline, value), shared by every hb_sync opened on it while
 * it is pending. A sync is a leaf (one point) or a merge (two members); nodes form a DAG.
 */
#ifndef HB_LIBCLIENT_FENCES_H
#define HB_LIBCLIENT_FENCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/list.h"
#include "hyperbuf.h"
#include "protocol/hyperbuf.pb-c.h"

struct hb_client;
struct hb_timeline;
struct hbl_kfences;
struct hbp_fence_slot;

/* A fence slot as this client uses it (fence_slot.c, PROTOCOL.md §3 "Fence slots"). */
struct hbl_slot {
	struct hbp_fence_slot *p; /* page 0 of the group's pool, mapped; NULL: none */
	uint32_t group, gen;
};

/* Buckets of the per-client table of fence points. */
#define HBL_POINT_BUCKETS 1024
/* Buckets of the per-client table of watched timelines. */
#define HBL_WATCH_BUCKETS 64

/*
 * A fence point this client waits on. It exists only while pending and wanted: it is freed
 * when it completes (its leaves keep the status) or when its last leaf goes (the daemon's wait
 * is then closed).
 */
struct hbl_point {
	struct hbl_point *hnext; /* in fences.points[] */
	uint64_t timeline, value;
	uint64_t wait; /* the daemon's wait id; 0 for a point on a watch (or being reopened) */
	uint32_t owner;
	struct hbl_watch *watch; /* the watch that completes it, or NULL */
	struct hbl_point *wnext; /* in watch->points, ascending by value */
	struct hb_sync **leaves; /* the leaf syncs that wait for it */
	size_t n_leaves, cap_leaves;
};

/*
 * A sync: a leaf (one point) or a merge (two members). A merge holds a reference on each
 * member still pending, and a member tells its parents when it completes. The user's handle is
 * one more reference; a closed handle whose node a merge still needs lives on without its
 * eventfd.
 */
struct hb_sync {
	struct hb_client *client;
	struct hbc_list link;      /* fences.syncs: every node, so hb_disconnect frees them all */
	int status;                /* 0, 1 or -errno; atomic: hb_sync_status reads it unlocked */
	uint64_t done_seq;         /* when it completed (fences.seq), for "first error wins" */
	int efd;                   /* hb_sync_fd's, made on demand; -1 before and once closed */
	bool open;                 /* the user still holds the handle */
	unsigned refs;             /* open + parents */
	unsigned pending;          /* members (or the point) not complete yet */
	int error;                 /* first error among completed members */
	struct hbl_point *point;   /* leaf, while its point is pending */
	struct hb_sync *member[2]; /* merge: members still pending (one reference each) */
	struct hb_sync **parents;
	size_t n_parents, cap_parents;
	struct hb_sync *work;   /* worklist link while completing or freeing (no recursion) */
	struct hbl_kfences *kf; /* syncfile.c: kernel fences to signal on completion, or NULL */
};

/*
 * A timeline the daemon keeps this client told of (fence_watch.c, PROTOCOL.md §3 "Watches"):
 * a fence on it above base needs no request. Points in (base, value] completed with status 1
 * (a failure moves base up to where it ended: such statuses are asked for).
 */
struct hbl_watch {
	struct hbl_watch *hnext; /* in fences.watches[] */
	uint64_t timeline, base, value;
	uint32_t owner;
	struct hbl_point *points; /* pending, ascending by value */
	/* Where the daemon tells next, as far as this client asked (WatchArm): 0, on any
	 * progress (after each TimelineValue); else once the timeline reaches it. */
	uint64_t armed;
	bool idle; /* told something that completed nothing: arm it further (settle) */
	/* Its timeline's slot, and our bit in its waiters: points complete when its value
	 * passes them, and the daemon is asked for news only when the slot stalls or stops
	 * being trusted (then stalled, or no slot). */
	struct hbl_slot slot;
	int slot_bit;
	bool stalled;
	uint64_t still_since; /* ms: its slot last moved, or its first pending point came */
};

/*
 * A thread blocked in a wait on this client. A completion that another thread reads wakes it
 * through the waiting thread's own eventfd, made once per thread and kept for its life: no
 * descriptor per wait, and no syscall when the waiter reads its completion itself.
 */
struct hbl_waiter {
	struct hbc_list link; /* fences.waiters */
	int efd;
};

struct hbl_fences {
	struct hbl_point *points[HBL_POINT_BUCKETS];
	struct hbl_watch *watches[HBL_WATCH_BUCKETS];
	size_t idle_watches; /* watches with idle set */
	size_t slotted;      /* watches with a slot */
	/* Wakes whoever polls while a slotted point is pending, once a wait slice, so that a
	 * slot that stays still is noticed (fence_slot.c): a timerfd, in hbl_pollfds. */
	int stall_fd;
	uint64_t stall_due; /* when it fires next (ms), 0 while disarmed */
	struct hbc_list syncs;
	struct hbc_list waiters; /* struct hbl_waiter */
	uint64_t seq;
	/* Pending points on timelines of this client's domain: while there are any, a signal
	 * waits for its reply (timeline.c). */
	size_t own_domain_points;
};

static inline int hbl_sync_status(const struct hb_sync *s)
{
	return __atomic_load_n(&s->status, __ATOMIC_ACQUIRE);
}

/* sync.c */
void hbl_fences_init(struct hbl_fences *f);
/* A FenceDone from the daemon (already validated by the frame codec). */
void hbl_fence_done(struct hb_client *c, const FenceDone *f);
/* Completes every pending point with err (negative): the connection is lost. */
void hbl_fences_fail_all(struct hb_client *c, int err);
/* The pending point (timeline, value), or NULL. */
struct hbl_point *hbl_point_find(struct hb_client *c, uint64_t timeline, uint64_t value);
/* Completes p with status (1 or a negative errno) and frees it; its syncs complete. */
void hbl_point_complete(struct hb_client *c, struct hbl_point *p, int status);
/* Asks the daemon for a wait on (timeline, value): the Sync reply, or an error. */
int hbl_sync_open_call(struct hb_client *c, uint64_t timeline, uint64_t value, bool watch,
		       struct hbb_reply *reply);

/* fence_watch.c */
struct hbl_watch *hbl_watch_find(struct hb_client *c, uint64_t timeline);
/* The watch of timeline after reading what the daemon sent already (a TimelineValue that ends
 * it, say), or NULL: a fence opened on a timeline destroyed before is ENOENT, as without one.
 * Outside a call only. */
struct hbl_watch *hbl_watch_current(struct hb_client *c, uint64_t timeline);
/* Files w (allocated by the caller, timeline set) as the client's watch of its timeline. */
void hbl_watch_insert(struct hb_client *c, struct hbl_watch *w);
/* Puts pending point p (not hashed yet) on w, arming w for it if it would not tell in time. */
void hbl_watch_attach(struct hb_client *c, struct hbl_watch *w, struct hbl_point *p);
/* Outside any call: arms the watches that told what nobody waited for, so that a timeline
 * nobody waits on costs its client nothing (no-op if none, or inside a call). */
void hbl_watches_settle(struct hb_client *c);
/* Takes p off its watch, if any. */
void hbl_watch_detach(struct hbl_point *p);
/* A TimelineValue from the daemon (validated by the frame codec). */
void hbl_timeline_value(struct hb_client *c, const TimelineValue *tv);
/* Forgets every watch (the daemon that kept them is gone, or the client is): their points stay
 * pending, with no wait, for hbl_fences_reopen. */
void hbl_watches_drop(struct hb_client *c);
/* w told what nobody waited for, or must be armed anew: settle arms it. */
void hbl_watch_set_idle(struct hb_client *c, struct hbl_watch *w);
/* A watch was granted (sr->watched) for f: fills w in and files it. */
void hbl_watch_granted(struct hb_client *c, struct hbl_watch *w, const struct hb_fence *f,
		       const SyncReply *sr);

/* fence_slot.c */
/* Gives w the slot the daemon named, if this client can be woken through it. */
void hbl_watch_take_slot(struct hb_client *c, struct hbl_watch *w, const FenceSlot *fs);
/* w's slot goes (untrusted, or w goes): its points wait for the daemon's news again. */
void hbl_watch_slot_drop(struct hb_client *c, struct hbl_watch *w);
/* w's slot's value, if it can be trusted; else the slot is dropped (false). */
bool hbl_slot_value(struct hb_client *c, struct hbl_watch *w, uint64_t *value);
/* Completes w's points that its slot's value passed; drops a slot that lost trust. */
void hbl_watch_slot_check(struct hb_client *c, struct hbl_watch *w);
/* After any read, and before sleeping: our bit in the waiters of every slot with points
 * pending, then a check; a slot still for a wait slice asks the daemon too (settle). */
void hbl_slots_arm(struct hb_client *c);
/* Closes the stall timer. */
void hbl_slots_close(struct hb_client *c);
/* TimelineSlot: a slot of one of our timelines (validated by the frame codec). */
void hbl_timeline_slot(struct hb_client *c, const TimelineSlot *ts);
/* Before a signal of t leaves: its slots get the value (or POISON), their waiters rung.
 * HBL_SLOTS_STALE if one of them is not t's any more: the daemon restarted, and the signal
 * should not go unanswered (its answer is what tells a VM channel's library to resume);
 * HBL_SLOTS_UNRUNG if a waiter is left that we cannot ring: the daemon rings it when it
 * handles the signal, so that signal must go. */
#define HBL_SLOTS_STALE  1u
#define HBL_SLOTS_UNRUNG 2u
unsigned hbl_timeline_slots_store(struct hb_client *c, struct hb_timeline *t, uint64_t value,
				  bool error);
/* t's slots are forgotten (t goes, or the daemon that gave them did). */
void hbl_timeline_slots_free(struct hb_timeline *t);

/* sync_reopen.c */
/* Inside a resume: opens every pending point again on the new daemon. 0, -HBL_LOST (the daemon
 * went away again: the resume starts over), or the client's error. */
int hbl_fences_reopen(struct hb_client *c);
/* Frees every sync node and point without talking to the daemon (hb_disconnect). */
void hbl_fences_destroy(struct hb_client *c);
/* hb_sync_open with the lock held. */
int hbl_sync_open_locked(struct hb_client *c, const struct hb_fence *f, struct hb_sync **out);
/* Drops the user's handle with the lock held; may talk to the daemon. */
void hbl_sync_close_locked(struct hb_sync *s);

/* sync_wait.c */
/* This thread's wake eventfd (made on first use), or a negative errno. */
int hbl_thread_wake_fd(void);
/* Wakes the waiters of other threads: something completed. */
void hbl_wake_waiters(struct hb_client *c);
/* Waits, without the lock, for one (all false) or every (all true) of v[0..n) to complete.
 * Returns 0 (*index: the lowest complete one, for !all), -ETIME, or -EINVAL. */
int hbl_syncs_wait(struct hb_sync **v, size_t n, bool all, int timeout_ms, size_t *index);
/* The memory barrier that publishes this thread's writes to shared buffers before a signal
 * (release) and orders later reads after a completed wait (acquire). */
void hbl_shared_memory_barrier(void);

#endif
