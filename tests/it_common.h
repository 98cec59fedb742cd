/*
 * Helpers shared by the integration suites (tests/test_it_*.c, and the VM suite): checked
 * wrappers around the public API, event waits that keep every event, a raw protocol session
 * that frames messages by hand (for what the library would never send), a fake QEMU ivshmem
 * peer, reads of a pool through its memfd, child processes and small text checks.
 *
 * Defined in tests/it_common.c, linked into every such suite. The system headers below are the
 * ones the suites use; they get them from here.
 */
#ifndef HB_IT_COMMON_H
#define HB_IT_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hyperbuf.h"
#include "protocol/hyperbuf.pb-c.h"
#include "protocol/limits.h"
#include "tests/harness.h"
#include "tests/util.h"
#include "tools/pattern.h"

#define IT_WAIT_MS     5000 /* the longest any single expected thing may take */
#define IT_PAGES(size) (((uint64_t)(size) + HBP_PAGE_SIZE - 1) / HBP_PAGE_SIZE)

/* ---- small things ------------------------------------------------------------------------- */

/* Sleeps ms milliseconds, resuming after signals. */
void it_sleep_ms(unsigned ms);
/* on: clients connected from now on (fence agents spawned too) open every fence as a wait in
 * the daemon, never as a point on a watch (HYPERBUF_SIGNALS=awaited): for a case that counts
 * the daemon's waits or their quota. off: back to the default. */
void it_fences_as_waits(bool on);
/* A timeline of owner's, shared with domain. */
struct hb_timeline *it_timeline_at(const char *file, int line, struct hb_client *owner,
				   uint32_t domain);
#define IT_TIMELINE(owner, domain) it_timeline_at(__FILE__, __LINE__, (owner), (domain))
/* c's sync on (t, value). */
struct hb_sync *it_sync_at(const char *file, int line, struct hb_client *c, struct hb_timeline *t,
			   uint64_t value);
#define IT_SYNC(c, t, value) it_sync_at(__FILE__, __LINE__, (c), (t), (value))
/* Whether clients connected now open fences on watches (the default). */
bool it_fences_watched(void);
/* Directory pages of a buffer of n data pages (1 for <= 1024, then one level more). */
uint64_t it_dir_pages(uint64_t n);
/* Every pool page a buffer of size bytes uses: data pages and directory pages. */
uint64_t it_buffer_pages(uint64_t size);
/* A deterministic random stream for fuzzing (xorshift64*); print the seed on failure. */
uint64_t it_rand(uint64_t *s);
/* A random hid from the stream of it_rand. */
void it_random_id(struct hb_id *id, uint64_t *seed);
/* The hid's text form, in one of 4 rotating static buffers. */
const char *it_id_text(const struct hb_id *id);
/* "EXPORTED", "FENCE", ...: the name of an event type ("?" if unknown). */
const char *it_event_name(int type);

/* ---- checked API calls (failures name the caller's line) ----------------------------------- */

/* hb_connect(addr), failing the test if it fails. */
struct hb_client *it_connect_at(const char *file, int line, const char *addr);
#define IT_CONNECT(addr) it_connect_at(__FILE__, __LINE__, (addr))

/* hb_buffer_alloc, failing the test if it fails. */
struct hb_buffer *it_alloc_at(const char *file, int line, struct hb_client *c, uint32_t peer,
			      size_t size, uint32_t flags);
#define IT_ALLOC(c, peer, size, flags) it_alloc_at(__FILE__, __LINE__, (c), (peer), (size), (flags))

/* hb_export with no unexport delay, failing the test if it fails. */
void it_export_at(const char *file, int line, struct hb_buffer *b, const void *meta,
		  size_t meta_len, struct hb_id *id);
#define IT_EXPORT(b, meta, len, id) it_export_at(__FILE__, __LINE__, (b), (meta), (len), (id))

/* hb_import, failing the test if it fails. */
struct hb_import *it_import_at(const char *file, int line, struct hb_client *c,
			       const struct hb_id *id, uint32_t flags);
#define IT_IMPORT(c, id, flags) it_import_at(__FILE__, __LINE__, (c), (id), (flags))

/* hb_query into *info (first filled with 0x5a bytes), failing the test if it fails. */
void it_query_at(const char *file, int line, struct hb_client *c, const struct hb_id *id,
		 struct hb_info *info);
#define IT_QUERY(c, id, info) it_query_at(__FILE__, __LINE__, (c), (id), (info))

/* The daemon must exit 0 (a leak report or a crash makes it non-zero). */
#define IT_STOP(d) CHECK_EQ(hbt_daemon_stop(d), 0)

/* Fills a buffer with the shared pattern of this seed (tools/pattern.h). */
void it_fill(struct hb_buffer *b, uint64_t seed);

/* Fails the test unless the import is size bytes long and holds the pattern of seed. */
void it_check_import_at(const char *file, int line, struct hb_import *im, size_t size,
			uint64_t seed);
#define IT_CHECK_IMPORT(im, size, seed) it_check_import_at(__FILE__, __LINE__, (im), (size), (seed))

/* True if every one of the len bytes at p is v. */
bool it_all_bytes(const void *p, size_t len, uint8_t v);

/* ---- events ------------------------------------------------------------------------------- */

/* The next event (of any type) within timeout_ms: 0, or -1 on timeout. Any error other than
 * EAGAIN from hb_next_event, or any hb_dispatch error, fails the test. */
int it_next_event_at(const char *file, int line, struct hb_client *c, struct hb_event *ev,
		     int timeout_ms);
#define IT_NEXT_EVENT(c, ev, ms) it_next_event_at(__FILE__, __LINE__, (c), (ev), (ms))

/* The very next event must be of this type (and arrive within IT_WAIT_MS). */
void it_expect_event_at(const char *file, int line, struct hb_client *c, int type,
			struct hb_event *ev);
#define IT_EXPECT_EVENT(c, type, ev) it_expect_event_at(__FILE__, __LINE__, (c), (type), (ev))

/* Skips other events until one of this type arrives; -1 on timeout. */
int it_wait_event_at(const char *file, int line, struct hb_client *c, int type, struct hb_event *ev,
		     int timeout_ms);
#define IT_WAIT_EVENT(c, type, ev)                                                                 \
	do {                                                                                       \
		if (it_wait_event_at(__FILE__, __LINE__, (c), (type), (ev), IT_WAIT_MS) != 0)      \
			hbt_fail(__FILE__, __LINE__, "no %s event within %d ms",                   \
				 it_event_name(type), IT_WAIT_MS);                                 \
	} while (0)

/* Nothing may arrive during ms milliseconds. */
void it_expect_quiet_at(const char *file, int line, struct hb_client *c, int ms);
#define IT_EXPECT_QUIET(c, ms) it_expect_quiet_at(__FILE__, __LINE__, (c), (ms))

/* Handles whatever is in flight (ivshmem peer notices, welcome leftovers) and drops every
 * queued event, so a case starts from a known empty queue. */
void it_drain(struct hb_client *c);

/* ---- daemon statistics -------------------------------------------------------------------- */

/* A statistic of `hyperbufctl stats`; fails the test if it is missing. */
long long it_stat_at(const char *file, int line, const struct hbt_daemon *d, const char *key);
#define IT_STAT(d, key) it_stat_at(__FILE__, __LINE__, (d), (key))

/* Polls a statistic until it has the wanted value (requests are asynchronous for some calls,
 * e.g. a release); returns the last value read, which the caller checks. */
long long it_wait_stat(const struct hbt_daemon *d, const char *key, long long want);
#define IT_CHECK_STAT(d, key, want) CHECK_EQ(it_wait_stat((d), (key), (want)), (want))

/* ---- processes ---------------------------------------------------------------------------- */

/*
 * Restores the default action of SIGSEGV and SIGBUS with the raw system call: the sanitizer
 * runtime catches them otherwise (and its interceptors may refuse a sigaction), turning a fault
 * into exit(1). A child that must die by the fault calls this first.
 */
void it_default_fault_signals(void);
/* True if an hbt_wait_child code says the child died of SIGSEGV or SIGBUS. */
bool it_died_of_fault(int code);

/* Writes exactly n bytes on a pipe or socket (tool_write_full); fails the test otherwise. */
void it_pipe_write(int fd, const void *p, size_t n);
/* Reads exactly n bytes within timeout_ms (> 0), as tool_read_full does: 0, or -1 on timeout,
 * EOF or an error. */
int it_pipe_read(int fd, void *p, size_t n, int timeout_ms);

/* Runs argv (argv[0] a path) with stdout and stderr captured together into out; returns the
 * exit status (128 + signal when killed). Gives up after 20 s. */
int it_run(char *out, size_t outlen, char *const argv[]);

/* Writes text to path (created or truncated); fails the test if it cannot. */
void it_write_file(const char *path, const char *text);

/* The standard topology of tests/util.h (HBT_TOPOLOGY and a blank line), for the caller to
 * add [limits] or other lines to. */
#define IT_TOPOLOGY HBT_TOPOLOGY "\n"

/* ---- sockets ------------------------------------------------------------------------------ */

/* A connected AF_UNIX stream socket, or -1 with errno. */
int it_unix_connect(const char *path);

/* Sends all n bytes (MSG_NOSIGNAL, retrying short sends): 0, or -1 with errno. */
int it_send_all(int fd, const void *p, size_t n);

/*
 * Reads exactly n bytes within timeout_ms, collecting at most one passed descriptor into *fd
 * (if fd is non-NULL; extra ones are closed and counted in *nfds). Returns 1, 0 on EOF (or a
 * reset), -1 on timeout.
 */
int it_recv_full(int sock, void *p, size_t n, int timeout_ms, int *fd, int *nfds);

/* ---- a raw protocol session -------------------------------------------------------------- */

struct it_raw {
	int fd;
	uint32_t next_id;
	int passed_fd; /* a descriptor that came with the last frame, or -1 */
};

/* Connects r to the socket at path (no Hello yet); fails the test if it cannot. */
void it_raw_open(struct it_raw *r, const char *path);

/* Closes r and the descriptor the last frame passed, if any. */
void it_raw_close(struct it_raw *r);

/* A frame with this payload; len_override != UINT64_MAX announces another length. */
int it_raw_send_frame(struct it_raw *r, const void *payload, size_t len, uint64_t len_override);

/* Packs and sends m as it is (its id included, even 0). */
int it_raw_send(struct it_raw *r, const ClientMsg *m);

/* The next frame from the daemon, unpacked; NULL on EOF, timeout or a bad frame, with *why
 * (if non-NULL) 0 for EOF, -1 for a timeout, -2 for a bad frame. */
ServerMsg *it_raw_recv(struct it_raw *r, int timeout_ms, int *why);

/* Sends m with a fresh id and returns the reply with that id (events in between are
 * dropped). Fails the test if no reply comes. */
ServerMsg *it_raw_call_at(const char *file, int line, struct it_raw *r, ClientMsg *m);
#define IT_RAW_CALL(r, m) it_raw_call_at(__FILE__, __LINE__, (r), (m))

/* Like IT_RAW_CALL but only the reply's error code matters: returns it. */
uint32_t it_raw_call_err_at(const char *file, int line, struct it_raw *r, ClientMsg *m);
#define IT_RAW_ERR(r, m) it_raw_call_err_at(__FILE__, __LINE__, (r), (m))

/* Hello with this role; returns the Welcome reply (free with server_msg__free_unpacked). */
ServerMsg *it_raw_hello(struct it_raw *r, uint32_t role);
ServerMsg *it_raw_hello_features(struct it_raw *r, uint32_t role, uint32_t features);
/* Free by hand; returns the reply's error (0 on success). */
uint32_t it_raw_free(struct it_raw *r, uint64_t buffer);

/* The group of this name in a Welcome; fails the test if it lists none. */
const GroupInfo *it_welcome_group(const ServerMsg *w, const char *name);

/* it_raw_open, then Hello with this role; the Welcome is dropped. */
void hbt_raw_session(struct it_raw *r, const char *path, uint32_t role);

/* Attach to group, naming ivshmem peer (0 for the host); returns the reply's error code. A pool
 * memfd that comes with the reply is in r->passed_fd until the next frame. */
uint32_t hbt_raw_attach(struct it_raw *r, uint32_t group, uint32_t peer);

/* Appends m as one frame (its packed length, 4 bytes little-endian, then m packed) at
 * buf + *len and advances *len; fails the test if it does not fit in cap bytes. For requests
 * sent together in one write, or a byte at a time. */
void hbt_put_frame(uint8_t *buf, size_t cap, size_t *len, const ClientMsg *m);

/* Builders for single requests (the body lives in the caller's frame). */
#define IT_MSG(m, kind, field, body)                                                               \
	do {                                                                                       \
		(m).body_case = CLIENT_MSG__BODY_##kind;                                           \
		(m).field = (body);                                                                \
	} while (0)

/* True once the daemon closed the connection (EOF or reset) within timeout_ms; whatever it
 * sent before is read and dropped. */
bool it_raw_wait_closed(struct it_raw *r, int timeout_ms);

/* ---- a fake QEMU on an ivshmem-doorbell socket --------------------------------------------- */

/* One 8-byte server message: 1 with *val, *fd (-1 if none) and *nfds; 0 on EOF; -1 on
 * timeout. */
int it_ivsh_recv(int sock, int64_t *val, int *fd, int *nfds, int timeout_ms);

#define IT_IVSH_MAX_PEERS 32
struct it_ivsh {
	int sock;
	int64_t id;
	int pool_fd;
	uint64_t pool_size;
	int own_fd;  /* vector 0: the eventfd we are rung on */
	int n_peers; /* peers announced with an eventfd */
	int64_t peer_id[IT_IVSH_MAX_PEERS];
	int peer_fd[IT_IVSH_MAX_PEERS];
};

/* Connects and reads the whole greeting (one vector): version, id, pool, the other peers in
 * any order, then our own id. Fails the test on anything unexpected. */
void it_ivsh_join(struct it_ivsh *v, const char *path);

/* Closes the connection and every descriptor the greeting brought. */
void it_ivsh_close(struct it_ivsh *v);

/* ---- reading and writing a pool through its memfd ------------------------------------------ */

/* Reads pool page `page` into buf (HBP_PAGE_SIZE bytes); fails the test if it cannot. */
void it_pool_read(int fd, uint64_t page, void *buf);

/* Writes ref, little-endian, as entry index of directory page `page`. */
void it_pool_write_ref(int fd, uint64_t page, unsigned index, uint32_t ref);

/*
 * Calls fn(ctx, page, mem) for every page of the pool that holds data (SEEK_DATA: holes are
 * skipped, so nothing is faulted in), page 0 excluded, until fn returns true; returns that
 * page, or -1.
 */
int64_t it_pool_scan(int fd, uint64_t pool_size,
		     bool (*fn)(void *ctx, uint64_t page, const uint8_t *mem), void *ctx);

/* The pool page holding these bytes (a run of a buffer's unique pattern), or -1. */
int64_t it_pool_find_bytes(int fd, uint64_t pool_size, const void *needle, size_t len);

/* The directory page whose first ref is first and which lists n refs (rest zero), or -1. */
int64_t it_pool_find_dir(int fd, uint64_t pool_size, uint32_t first, unsigned n);

/* ---- text --------------------------------------------------------------------------------- */

/*
 * A small structural check of a JSON document: one top-level object, balanced braces and
 * brackets outside strings, string escapes well formed, nothing but whitespace after it.
 */
bool it_json_ok(const char *s);

/* The value of a "key: value" line in text, or -1. */
long long it_kv(const char *text, const char *key);

/* Whether the file at path (its first MiB) contains needle. */
bool it_file_has(const char *path, const char *needle);

/* How many times needle occurs in s, not overlapping. */
size_t hbt_count_substr(const char *s, const char *needle);

/* Lets every domain of the test topologies (0..4) that t's domain can share with open t's
 * fences (hb_timeline_share): the fence suites pass fence values around by hand, as an
 * application passing them in metadata would, and test fences, not visibility. */
void hbt_timeline_share_all(struct hb_timeline *t);

#endif
