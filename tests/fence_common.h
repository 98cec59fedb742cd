/*
 * Helpers shared by the fence suites (tests/test_it_fence_*.c): checked wrappers around the
 * fence API, waits in the two styles an application uses (poll the sync fd, or poll the status),
 * and the "agent": an emulated VM in its own process, driven over a socketpair one command at
 * a time, so a case reads like the kernel selftest it ports ("A: create point 5; B: wait(0)").
 *
 * Cross-VM layout used throughout (the standard topology of tests/util.h):
 *   VM A = vm1 (an agent process), VM B = vm2 (the test process, or an agent), VM C = host or
 *   vm3 (another agent). vm1 and vm2 share group b, host and vm1 group a, vm2 and vm3 group c.
 *
 * Agents must be started before the test process connects its own clients (a fork copies the
 * client's sockets, and the daemon would not see the parent's disconnect while a child holds a
 * copy); fence_agent_start closes every inherited descriptor in the child anyway.
 *
 * Defined in tests/fence_common.c, linked into the suites that include this.
 */
#ifndef HB_FENCE_COMMON_H
#define HB_FENCE_COMMON_H

#include <pthread.h>
#include <sys/epoll.h>

#include "tests/it_common.h"

#define FENCE_WAIT_MS 10000 /* anything that should happen "soon": generous, never a benchmark */

/* ---- time ----------------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds (tool_now_ns). */
uint64_t fence_now_ns(void);

/* ---- checked calls ------------------------------------------------------------------------ */

/* hb_timeline_create, failing the test if it fails. */
struct hb_timeline *fence_tl_create_at(const char *file, int line, struct hb_client *c);
#define FENCE_TL(c) fence_tl_create_at(__FILE__, __LINE__, (c))

/* hb_timeline_signal(t, v), failing the test if it fails. */
void fence_signal_at(const char *file, int line, struct hb_timeline *t, uint64_t v);
#define FENCE_SIGNAL(t, v) fence_signal_at(__FILE__, __LINE__, (t), (v))

/* hb_timeline_fail(t, v, err), failing the test if it fails. */
void fence_fail_at(const char *file, int line, struct hb_timeline *t, uint64_t v, int err);
#define FENCE_FAIL(t, v, e) fence_fail_at(__FILE__, __LINE__, (t), (v), (e))

/* hb_sync_open of point (tl, v), failing the test if it fails. */
struct hb_sync *fence_open_at(const char *file, int line, struct hb_client *c, uint64_t tl,
			      uint64_t v);
#define FENCE_OPEN(c, tl, v) fence_open_at(__FILE__, __LINE__, (c), (tl), (v))

/* hb_sync_merge(a, b), failing the test if it fails. */
struct hb_sync *fence_merge_at(const char *file, int line, struct hb_sync *a, struct hb_sync *b);
#define FENCE_MERGE(a, b) fence_merge_at(__FILE__, __LINE__, (a), (b))

/* hb_sync_wait must report "complete" (0) within ms. */
void fence_wait_done_at(const char *file, int line, struct hb_sync *s, int ms);
#define FENCE_WAIT_DONE(s) fence_wait_done_at(__FILE__, __LINE__, (s), FENCE_WAIT_MS)

/* hb_sync_wait(ms) must time out (-1/ETIME). */
void fence_wait_timeout_at(const char *file, int line, struct hb_sync *s, int ms);
#define FENCE_NOT_YET(s) fence_wait_timeout_at(__FILE__, __LINE__, (s), 0)

#define FENCE_STATUS(s, want)                                                                      \
	do {                                                                                       \
		int fs_got = hb_sync_status(s);                                                    \
		if (fs_got != (want))                                                              \
			hbt_fail(__FILE__, __LINE__, "hb_sync_status(%s) is %d, want %d", #s,      \
				 fs_got, (int)(want));                                             \
	} while (0)

/*
 * The fd of s alone: ready (1) or not (0) within timeout_ms, without dispatching. A fence fd
 * must never report POLLERR, POLLHUP or POLLNVAL (sync_file parity: an error completion is
 * still POLLIN).
 */
int fence_fd_ready_at(const char *file, int line, const struct hb_sync *s, int timeout_ms);
#define FENCE_FD_READY(s) fence_fd_ready_at(__FILE__, __LINE__, (s), 0)

/*
 * Waits the way an event-loop application does: poll the sync fd together with the client's
 * fd, dispatching whatever the daemon sent, until the sync fd is readable (1) or ms pass (0).
 */
int fence_poll_wait_at(const char *file, int line, struct hb_client *c, struct hb_sync *s, int ms);
#define FENCE_POLL_WAIT(c, s, ms) fence_poll_wait_at(__FILE__, __LINE__, (c), (s), (ms))

/*
 * Waits by polling the status (the selftests' "busy" style): dispatch briefly, read the status;
 * a negative status is returned at once. Returns the final status (0 on timeout).
 */
int fence_status_wait(struct hb_client *c, struct hb_sync *s, int ms);

/* Opens (tl, v) and waits for it to complete with status 1: once it has, every earlier effect
 * of the owner's signals on this timeline has reached this client too (per-timeline order). */
void fence_barrier_at(const char *file, int line, struct hb_client *c, uint64_t tl, uint64_t v);
#define FENCE_BARRIER(c, tl, v) fence_barrier_at(__FILE__, __LINE__, (c), (tl), (v))

/* ---- the agent: an emulated VM in its own process ----------------------------------------- */

enum fence_op {
	FA_QUIT = 1,
	FA_DOMAIN,     /* -> val = hb_self_domain */
	FA_TL_CREATE,  /* -> ret = timeline index, val = hb_timeline_id */
	FA_TL_SIGNAL,  /* idx, a = value, c = ms to sleep first -> val = CLOCK_MONOTONIC ns sent */
	FA_TL_FAIL,    /* idx, a = value, b = error (as int64) */
	FA_TL_DESTROY, /* idx */
	FA_OPEN,       /* a = timeline id, b = value -> ret = sync index */
	FA_WAIT,       /* idx, a = timeout ms (as int64) -> ret, err; val = status afterwards */
	FA_STATUS,     /* idx -> ret = status */
	FA_FDREADY,    /* idx -> ret = 1 if its fd polls readable now (no library call) */
	FA_CLOSE,      /* idx */
	FA_MERGE,      /* idx, a = other index -> ret = new sync index */
	FA_ALLOC,      /* a = peer, b = size, c = flags -> ret = buffer index; exported: id */
	FA_FREE,       /* idx */
	FA_IMPORT,     /* id, a = flags -> ret = import index */
	FA_RELEASE,    /* idx */
	FA_FILL,       /* idx (buffer if a == 0, import if a == 1), b = seed */
	FA_CHECK,      /* idx, a as FILL, b = seed -> ret = 1 if the whole pattern matches */
	FA_PUT64,      /* idx, a as FILL, b = offset, c = value (written into the mapping) */
	FA_GET64,      /* idx, a as FILL, b = offset -> val */
	FA_ATTACH,     /* id, a = timeline id, b = value, c = usage */
	FA_BEGIN,      /* id, a = access, b = timeout ms (as int64) */
	FA_END,        /* id, a = access */
	FA_DISCONNECT, /* hb_disconnect now (the handles in the tables are dropped unused) */
};

/* A command to an agent. */
struct fa_req {
	uint32_t op;
	int32_t idx;
	uint64_t a, b, c;
	struct hb_id id;
};

/* An agent's reply. */
struct fa_rep {
	int64_t ret;
	int32_t err;
	uint32_t pad;
	uint64_t val;
	struct hb_id id;
};

/* The agent's tables: timelines, syncs, buffers and imports, by index. */
#define FA_MAX_TL   64
#define FA_MAX_SYNC 1024
#define FA_MAX_BUF  16

struct fence_agent {
	pid_t pid;
	int sock;
	char name[24];
	char addr[300];
};

/* Forks an agent connected to addr; waits until it is connected. name is for messages. */
void fence_agent_start_at(const char *file, int line, struct fence_agent *a, const char *addr,
			  const char *name);
#define FENCE_AGENT_START(a, addr, name)                                                           \
	fence_agent_start_at(__FILE__, __LINE__, (a), (addr), (name))

/* Sends one command (op, idx, a = x, b = y, c = z, id if non-NULL) without waiting for the
 * reply; fails the test if it cannot be sent. */
void fa_send_at(const char *file, int line, struct fence_agent *a, uint32_t op, int idx, uint64_t x,
		uint64_t y, uint64_t z, const struct hb_id *id);

/* The reply to the last command sent, within ms: 0, or -1 if none came (agent died or hung). */
int fa_recv(struct fence_agent *a, struct fa_rep *r, int ms);

/* Sends a command and returns its reply (within 60 s, or the test fails). */
struct fa_rep fa_call_at(const char *file, int line, struct fence_agent *a, uint32_t op, int idx,
			 uint64_t x, uint64_t y, uint64_t z, const struct hb_id *id);
#define FA_CALL(a, op, idx, x, y, z, id)                                                           \
	fa_call_at(__FILE__, __LINE__, (a), (op), (idx), (x), (y), (z), (id))

/* A call that must succeed (ret >= 0); returns the reply. */
struct fa_rep fa_ok_at(const char *file, int line, struct fence_agent *a, uint32_t op, int idx,
		       uint64_t x, uint64_t y, uint64_t z, const struct hb_id *id);
#define FA_OK_CALL(a, op, idx, x, y, z, id)                                                        \
	fa_ok_at(__FILE__, __LINE__, (a), (op), (idx), (x), (y), (z), (id))

/* Convenience: a timeline in the agent; returns its index there and stores its id. */
int fence_fa_timeline_at(const char *file, int line, struct fence_agent *a, uint64_t *tl_id);
#define FA_TIMELINE(a, tl_id) fence_fa_timeline_at(__FILE__, __LINE__, (a), (tl_id))
#define FA_SIGNAL(a, t, v)    ((void)FA_OK_CALL((a), FA_TL_SIGNAL, (t), (v), 0, 0, NULL))
#define FA_FAIL(a, t, v, e)                                                                        \
	((void)FA_OK_CALL((a), FA_TL_FAIL, (t), (v), (uint64_t)(int64_t)(e), 0, NULL))
#define FA_DESTROY(a, t)  ((void)FA_OK_CALL((a), FA_TL_DESTROY, (t), 0, 0, 0, NULL))
#define FA_OPEN(a, tl, v) ((int)FA_OK_CALL((a), FA_OPEN, 0, (tl), (v), 0, NULL).ret)
#define FA_STATUS(a, s)   ((int)FA_CALL((a), FA_STATUS, (s), 0, 0, 0, NULL).ret)
#define FA_CLOSE(a, s)    ((void)FA_OK_CALL((a), FA_CLOSE, (s), 0, 0, 0, NULL))
#define FA_WAIT(a, s, ms) FA_CALL((a), FA_WAIT, (s), (uint64_t)(int64_t)(ms), 0, 0, NULL)

/* Asks the agent to quit and requires a clean exit (a leak or a crash is a failure). */
void fence_agent_stop_at(const char *file, int line, struct fence_agent *a);
#define FENCE_AGENT_STOP(a) fence_agent_stop_at(__FILE__, __LINE__, (a))

/* SIGKILLs the agent and reaps it (it must die of that signal). */
void fence_agent_kill(struct fence_agent *a);

#endif
