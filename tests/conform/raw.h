/*
 * Raw protocol frames for conformance cases (docs/TESTING.md, "Hostile raw-protocol
 * clients"): a stream to the daemon as this role's domain (cf_raw_open, conform.h) on which a
 * case writes frames by hand and reads the daemon's replies, as a hostile program of that
 * domain could. The helpers of tests/it_common.c's raw session, for the conformance suite's
 * three builds (the host's, the static KVM guest program, the sanitized Xen domU program).
 */
#ifndef HB_TESTS_CONFORM_RAW_H
#define HB_TESTS_CONFORM_RAW_H

#include "protocol/hyperbuf.pb-c.h"
#include "protocol/limits.h"
#include "tests/conform/conform.h"

struct cf_raw {
	int fd;
	uint32_t next_id;
};

/* cf_raw_open (this domain's stream) into r; fails the role if it cannot. */
void cf_raw_start(struct cf_raw *r);
/* cf_raw_start, then Hello as a client (the Welcome is checked and dropped). */
void cf_raw_session(struct cf_raw *r);
/* cf_raw_close: the session ends as hb_disconnect ends one. */
void cf_raw_stop(struct cf_raw *r);
/* cf_raw_abandon: the stream left as a process that dies leaves it. */
void cf_raw_drop(struct cf_raw *r);

/* n bytes, all of them (the stream may be non-blocking): 0 or -1. */
int cf_raw_send_all(struct cf_raw *r, const void *p, size_t n);
/* A frame with this payload; len_override != UINT64_MAX announces another length. */
int cf_raw_send_frame(struct cf_raw *r, const void *payload, size_t len, uint64_t len_override);
/* Packs and sends m as it is (its id included, even 0). */
int cf_raw_send(struct cf_raw *r, const ClientMsg *m);
/* Appends m as one frame at buf + *len (fails the role past cap). */
void cf_raw_put_frame(uint8_t *buf, size_t cap, size_t *len, const ClientMsg *m);
/* The next frame from the daemon, unpacked, events dropped; NULL on EOF, timeout or a bad
 * frame, with *why 0 for EOF, -1 for a timeout, -2 for a bad frame. */
ServerMsg *cf_raw_recv(struct cf_raw *r, int timeout_ms, int *why);
/* Sends m with a fresh id; the reply with that id (events dropped). Fails the role without. */
ServerMsg *cf_raw_call_at(const char *file, int line, struct cf_raw *r, ClientMsg *m);
#define CF_RAW_CALL(r, m) cf_raw_call_at(__FILE__, __LINE__, (r), (m))
/* The reply's error code only. */
uint32_t cf_raw_err_at(const char *file, int line, struct cf_raw *r, ClientMsg *m);
#define CF_RAW_ERR(r, m) cf_raw_err_at(__FILE__, __LINE__, (r), (m))
/* Hello with this role: the Welcome (free with server_msg__free_unpacked); fails the role on
 * anything else. */
ServerMsg *cf_raw_hello(struct cf_raw *r, uint32_t role);
/* True once the daemon hung up on r within timeout_ms (what it sent before is dropped). */
bool cf_raw_wait_closed(struct cf_raw *r, int timeout_ms);

/* ---- hostile cases (tests/conform/hostile.c) ------------------------------------------------ */

/* A Query for an unknown hid gets ENOENT: the session is alive and in sync. */
void cf_raw_alive_at(const char *file, int line, struct cf_raw *r);
#define CF_RAW_ALIVE(r) cf_raw_alive_at(__FILE__, __LINE__, (r))
/* The daemon hung up on r (counted for cf_hostile_everywhere) and, with errs, counted one more
 * errors_protocol (*errs, advanced); r is abandoned (cf_raw_drop). */
void cf_raw_dropped_at(const char *file, int line, struct cf_raw *r, long long *errs);
#define CF_RAW_DROPPED(r, errs) cf_raw_dropped_at(__FILE__, __LINE__, (r), (errs))
/* A Query for hid of hid_len bytes (the body lives in q). */
ClientMsg cf_raw_query_msg(Query *q, uint8_t *hid, size_t hid_len);
/* The role of a hostile case in every domain: the host, vm1 and vm2 run attack at once (a
 * domain's turn after another's would add up past a role's time limit in a loaded TCG guest),
 * then the host checks that errors_protocol grew by the sessions they saw dropped
 * (CF_RAW_DROPPED(r, NULL)) and no more, and vm1 shares a buffer with vm2, checked byte for
 * byte: honest clients still work. */
void cf_hostile_everywhere(void (*attack)(void));
/* Called in an attack whose protocol errors depend on the transport: no count is checked. */
void cf_hostile_uncounted(void);
#define CF_HOSTILE_CASE(name, attack)                                                              \
	static void name##_role(void)                                                              \
	{                                                                                          \
		cf_hostile_everywhere(attack);                                                     \
	}                                                                                          \
	CF_CASE(name, {0, name##_role}, {1, name##_role}, {2, name##_role})

#define CF_MSG(m, kind, field, body)                                                               \
	do {                                                                                       \
		(m).body_case = CLIENT_MSG__BODY_##kind;                                           \
		(m).field = (body);                                                                \
	} while (0)

#endif
