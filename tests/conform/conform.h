/*
 * The conformance suite's target interface (docs/TESTING.md, "Conformance cases"). A case is
 * written once, as roles: "this client code as domain N". A target (tests/test_it_conform.c:
 * emulated VMs, host processes on the daemon's per-VM sockets; tests/test_vm_conform.c: real
 * QEMU guests; tests/xen/conform_dom0.c: Xen domUs) starts the daemon on the conformance
 * topology, places each role in its domain and collects ok/FAIL with the message. The same
 * role code runs on the host under the sanitizers, built static inside the KVM guests, and
 * sanitized in dom0 and the Xen domUs.
 *
 * The topology every target gives (the shape of tests/vm_common.h's VM_TOPOLOGY):
 *   domain 0 the host, 1 vm1, 2 vm2; groups host+vm1, host+vm2, vm1+vm2 of 16 MiB each.
 * So every two domains can share, and no domain is outside every group of another.
 *
 * Roles talk to each other only through the side channel below (small values by key, and
 * barriers over every role of the case), as two applications would through anything but
 * hyperbuf. A role fails with CHECK and friends (its message names the file and line); a
 * role that fails ends the case: the other roles' pending side-channel calls fail too.
 * A role's clients (cf_connect) are disconnected when it returns.
 *
 * Targets run one daemon for every case (a guest boots once): a case must leave the daemon
 * as it found it (no buffer, timeline, session or page of its own); the runner checks that
 * after every case and fails the case otherwise. A case that needs another config of the
 * daemon names a config variant (CF_CASE_IN, table.h; tests/conform/variants.c): it runs in
 * that variant's run, on a daemon of the topology plus the variant's text.
 */
#ifndef HB_TESTS_CONFORM_H
#define HB_TESTS_CONFORM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "hyperbuf.h"
#include "tests/conform/table.h"

#define CF_KEY_MAX 64
#define CF_VAL_MAX 200

/* How long anything expected may take: generous, a guest under TCG is slow. Only a failing
 * case waits this long. */
#define CF_WAIT_MS 30000

/* ---- inside a role ------------------------------------------------------------------------ */

/* This role's domain and the case's name. */
uint32_t cf_domain(void);
const char *cf_case_name(void);

/* The address cf_connect uses (and cf_raw_open opens): the target's socket for this domain on
 * the host and emulated, NULL (the library's default, as an application's) in a guest. */
const char *cf_address(void);

/* A client of this role's domain (the target's address for it); fails the role if it cannot.
 * Disconnected when the role returns. */
struct hb_client *cf_connect(void);
/* The same, for a case about the daemon's own fence waits and their quota: every fence this
 * client opens is a wait in the daemon, never a point on a watch (HYPERBUF_SIGNALS=awaited;
 * docs/PROTOCOL.md §3 "Watches"). */
struct hb_client *cf_connect_waits(void);

/* The side channel. cf_put publishes a value under a key for this case (a key is set once);
 * cf_get waits until it is set. cf_barrier waits until every role of the case reached the
 * barrier of this name. */
void cf_put(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *cf_get(const char *key); /* static storage, until the next cf_get */
void cf_put_u64(const char *key, uint64_t v);
uint64_t cf_get_u64(const char *key);
void cf_put_id(const char *key, const struct hb_id *id);
void cf_get_id(const char *key, struct hb_id *id);
void cf_barrier(const char *name);

/* A statistic of the daemon (`hyperbufctl stats`), which the hub reads on the host; a missing
 * one fails the role. Other cases do not run meanwhile, but other roles of this one do. */
long long cf_stat(const char *key);
/* Waits (CF_WAIT_MS) until the statistic is want: the daemon's counts follow a session's end
 * or a free a little later. */
void cf_stat_becomes_at(const char *file, int line, const char *key, long long want);
#define CF_STAT_BECOMES(key, want) cf_stat_becomes_at(__FILE__, __LINE__, (key), (want))

/* An environment variable the target passed through ($HB_CF_ENV, docs/TESTING.md): roles and
 * the daemon see the same. */
const char *cf_env(const char *name);

/* ---- checks (as tests/harness.h's, so code moves between the two unchanged) ---------------- */

void cf_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			cf_fail(__FILE__, __LINE__, "CHECK(%s) failed (errno %d: %s)", #cond,      \
				errno, strerror(errno));                                           \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long cf_a = (long long)(a), cf_b = (long long)(b);                            \
		if (cf_a != cf_b)                                                                  \
			cf_fail(__FILE__, __LINE__, "%s == %s failed: %lld != %lld", #a, #b, cf_a, \
				cf_b);                                                             \
	} while (0)

/* A call that must fail with -1 (or NULL) and this errno. */
#define CHECK_ERR(expr, err)                                                                       \
	do {                                                                                       \
		errno = 0;                                                                         \
		long long cf_r = (long long)(intptr_t)(expr);                                      \
		int cf_e = errno;                                                                  \
		if ((cf_r != -1 && cf_r != 0) || cf_e != (err))                                    \
			cf_fail(__FILE__, __LINE__, "%s: want errno %s, got r=%lld errno %d (%s)", \
				#expr, #err, cf_r, cf_e, strerror(cf_e));                          \
	} while (0)

/* ---- helpers every case wants ------------------------------------------------------------- */

/* Checked calls: a failure names the caller's line. */
struct hb_buffer *cf_alloc_at(const char *file, int line, struct hb_client *c, uint32_t peer,
			      size_t size, uint32_t flags);
#define CF_ALLOC(c, peer, size, flags) cf_alloc_at(__FILE__, __LINE__, (c), (peer), (size), (flags))
void cf_export_at(const char *file, int line, struct hb_buffer *b, const void *meta, size_t len,
		  struct hb_id *id);
#define CF_EXPORT(b, meta, len, id) cf_export_at(__FILE__, __LINE__, (b), (meta), (len), (id))
struct hb_import *cf_import_at(const char *file, int line, struct hb_client *c,
			       const struct hb_id *id, uint32_t flags);
#define CF_IMPORT(c, id, flags) cf_import_at(__FILE__, __LINE__, (c), (id), (flags))

/* The shared pattern of tools/pattern.h: fill, and check an import holds it. */
void cf_fill(void *p, size_t size, uint64_t seed);
void cf_check_pattern_at(const char *file, int line, const void *p, size_t size, uint64_t seed);
#define CF_CHECK_PATTERN(p, size, seed) cf_check_pattern_at(__FILE__, __LINE__, (p), (size), (seed))

/* The next event within ms: 0, or -1 on timeout (hb_dispatch errors fail the role). */
int cf_next_event_at(const char *file, int line, struct hb_client *c, struct hb_event *ev, int ms);
/* The very next event must be of this type (within CF_WAIT_MS). */
void cf_expect_event_at(const char *file, int line, struct hb_client *c, int type,
			struct hb_event *ev);
#define CF_EXPECT_EVENT(c, type, ev) cf_expect_event_at(__FILE__, __LINE__, (c), (type), (ev))
/* Skips other events until one of this type arrives (within CF_WAIT_MS). */
void cf_wait_event_at(const char *file, int line, struct hb_client *c, int type,
		      struct hb_event *ev);
#define CF_WAIT_EVENT(c, type, ev) cf_wait_event_at(__FILE__, __LINE__, (c), (type), (ev))
/* Nothing may arrive during ms milliseconds. */
void cf_expect_quiet_at(const char *file, int line, struct hb_client *c, int ms);
#define CF_EXPECT_QUIET(c, ms) cf_expect_quiet_at(__FILE__, __LINE__, (c), (ms))
/* Handles what is in flight and drops every queued event. */
void cf_drain(struct hb_client *c);
/* "EXPORTED", "FENCE", ...: an event type's name. */
const char *cf_event_name(int type);
void cf_sleep_ms(unsigned ms);

/* ---- fence helpers (a case's owner passes its timeline's id on the side channel) ---------- */

/* A timeline of this role's client, shared with the other domains, its id put under key. */
struct hb_timeline *cf_timeline_for(struct hb_client *c, const char *key);
/* Checked hb_sync_open, hb_sync_merge and hb_sync_wait(CF_WAIT_MS). */
struct hb_sync *cf_sync_open_at(const char *file, int line, struct hb_client *c, uint64_t tl,
				uint64_t value);
#define CF_OPEN(c, tl, v) cf_sync_open_at(__FILE__, __LINE__, (c), (tl), (v))
struct hb_sync *cf_merge_at(const char *file, int line, struct hb_sync *a, struct hb_sync *b);
#define CF_MERGE(a, b) cf_merge_at(__FILE__, __LINE__, (a), (b))
void cf_wait_done_at(const char *file, int line, struct hb_sync *s);
#define CF_WAIT_DONE(s) cf_wait_done_at(__FILE__, __LINE__, (s))
/* The owner reached value v: a point there, opened and waited for here. After it, a point
 * above v still pending is pending for good reason, not for a late notification. */
void cf_reached_at(const char *file, int line, struct hb_client *c, uint64_t tl, uint64_t v);
#define CF_REACHED(c, tl, v) cf_reached_at(__FILE__, __LINE__, (c), (tl), (v))
/* A process of this role's domain that can be killed mid-share: cf_victim_start runs fn(arg)
 * in a child of the role (fn may cf_connect, and use the side channel while the role waits),
 * then returns once fn returned; the child waits to be killed. cf_victim_kill SIGKILLs and
 * reaps it, then connects: in a KVM guest a dead process's session lasts until the next
 * process opens the port (docs/KVM.md), so after it the session is over on every target. */
pid_t cf_victim_start(void (*fn)(void *), void *arg);
struct hb_client *cf_victim_kill(pid_t pid);

/* A zero-timeout poll of the sync's fd says readable. */
bool cf_fd_ready(const struct hb_sync *s);

/* ---- raw protocol streams (hostile clients; frames by hand: tests/conform/raw.h) ----------- */

/* A stream to the daemon as this role's domain, on which the role writes frames by hand and
 * reads the daemon's replies, exactly as a hostile program of the domain could: a new
 * connection on the domain's socket (the host's, an emulated VM's channel); in a KVM guest the
 * virtio port, after the resync marker every process of a channel starts with (PROTOCOL.md
 * §1.1), so the stream is a fresh session; in a Xen domU a vchan of its own to the daemon,
 * pumped through a socketpair (tests/conform/raw.c). The fd reads and writes bytes (it may be
 * non-blocking: poll). -1 with errno if the domain's transport cannot be had within
 * CF_WAIT_MS. A guest has one port: while the role holds it, cf_connect in that domain fails. */
int cf_raw_open(void);
/* Ends the stream's session as hb_disconnect would (on a KVM port: a marker), and returns
 * once the domain's transport is usable again (a port the daemon hung up on comes back when
 * QEMU reconnects). */
void cf_raw_close(int fd);
/* Leaves the stream as a process that dies does (on a KVM port nothing tells the daemon: the
 * next process's marker ends the session), with cf_raw_close's wait. */
void cf_raw_abandon(int fd);

/* ---- a group's pool, as a member maps it (hostile group members) -------------------------- */

/* The pool of a group this role's domain is a member of, mapped read-write as any program of
 * the domain could map it: in a KVM guest the BAR2 of its ivshmem device for the group
 * (sysfs, told apart by the pool header; tests/kvm/conform.c), on an emulated VM a connection
 * of the role's own on the group's ivshmem socket, as QEMU's, and the pool memfd it is given.
 * Page 0 is the pool's header (struct hbp_pool_header). */
struct cf_pool {
	uint8_t *mem;
	size_t size;
	uint32_t group;   /* the group's id (Welcome.groups, the header, Attach) */
	uint32_t peer_id; /* this domain's ivshmem peer id there: what an Attach names. Emulated,
			   * the role's own connection, which no session claimed yet (the daemon
			   * drops it if none does within 10 s: the mapping stays) */
	int fd;           /* the target's (the ivshmem connection; -1 if none) */
};
/* Maps the pool of the group this role's domain shares with domain peer. It asks the daemon
 * which groups the domain has (a Hello on a raw stream of its own, closed again): a role in a
 * guest calls it while it holds no client or raw stream (one port). 0, or -1 with errno:
 * ENODEV where the domains share no pool (a Xen domain: grants, no pools), ENOTSUP on the host
 * (its processes get the memfd with Attach's reply, not through a group's socket). */
int cf_pool_open(uint32_t peer, struct cf_pool *p);
/* Unmaps it and closes what holds it (emulated: the ivshmem connection, whose going the daemon
 * sees as the VM's QEMU going once no other connection of the VM is left). */
void cf_pool_close(struct cf_pool *p);

#endif
