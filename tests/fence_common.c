/*
 * Helpers shared by the fence suites, and the agent process: see tests/fence_common.h.
 */
#include "tests/fence_common.h"
#include "tools/spawn.h"

/* ---- time ----------------------------------------------------------------------------------- */

uint64_t fence_now_ns(void)
{
	return tool_now_ns();
}

/* ---- checked calls ------------------------------------------------------------------------ */

struct hb_timeline *fence_tl_create_at(const char *file, int line, struct hb_client *c)
{
	struct hb_timeline *t = hb_timeline_create(c);

	if (!t)
		hbt_fail(file, line, "hb_timeline_create: %s", strerror(errno));
	hbt_timeline_share_all(t);
	return t;
}

void fence_signal_at(const char *file, int line, struct hb_timeline *t, uint64_t v)
{
	if (hb_timeline_signal(t, v) != 0)
		hbt_fail(file, line, "hb_timeline_signal(%llu): %s", (unsigned long long)v,
			 strerror(errno));
}

void fence_fail_at(const char *file, int line, struct hb_timeline *t, uint64_t v, int err)
{
	if (hb_timeline_fail(t, v, err) != 0)
		hbt_fail(file, line, "hb_timeline_fail(%llu, %d): %s", (unsigned long long)v, err,
			 strerror(errno));
}

struct hb_sync *fence_open_at(const char *file, int line, struct hb_client *c, uint64_t tl,
			      uint64_t v)
{
	struct hb_fence f = {.timeline = tl, .value = v};
	struct hb_sync *s = hb_sync_open(c, &f);

	if (!s)
		hbt_fail(file, line, "hb_sync_open(timeline %llu, value %llu): %s",
			 (unsigned long long)tl, (unsigned long long)v, strerror(errno));
	return s;
}

struct hb_sync *fence_merge_at(const char *file, int line, struct hb_sync *a, struct hb_sync *b)
{
	struct hb_sync *s = hb_sync_merge(a, b);

	if (!s)
		hbt_fail(file, line, "hb_sync_merge: %s", strerror(errno));
	return s;
}

/* hb_sync_wait must report "complete" (0) within ms. */
void fence_wait_done_at(const char *file, int line, struct hb_sync *s, int ms)
{
	errno = 0;
	if (hb_sync_wait(s, ms) != 0)
		hbt_fail(file, line, "hb_sync_wait(%d ms): want complete, got %s", ms,
			 strerror(errno));
}

/* hb_sync_wait(ms) must time out (-1/ETIME). */
void fence_wait_timeout_at(const char *file, int line, struct hb_sync *s, int ms)
{
	int r;

	errno = 0;
	r = hb_sync_wait(s, ms);
	if (r != -1 || errno != ETIME)
		hbt_fail(file, line, "hb_sync_wait(%d ms): want -1/ETIME, got %d (%s)", ms, r,
			 strerror(errno));
}

/*
 * The fd of s alone: ready (1) or not (0) right now, without dispatching. A fence fd must never
 * report POLLERR, POLLHUP or POLLNVAL (sync_file parity: an error completion is still POLLIN).
 */
int fence_fd_ready_at(const char *file, int line, const struct hb_sync *s, int timeout_ms)
{
	struct pollfd p = {.fd = hb_sync_fd(s), .events = POLLIN};
	int r;

	if (p.fd < 0)
		hbt_fail(file, line, "hb_sync_fd: %d (%s)", p.fd, strerror(errno));
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		hbt_fail(file, line, "poll(sync fd): %s", strerror(errno));
	if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
		hbt_fail(file, line, "sync fd revents %#x: only POLLIN is allowed", p.revents);
	return r > 0 && (p.revents & POLLIN);
}

/*
 * Waits the way an event-loop application does: poll the sync fd together with the client's
 * fd, dispatching whatever the daemon sent, until the sync fd is readable (1) or ms pass (0).
 */
int fence_poll_wait_at(const char *file, int line, struct hb_client *c, struct hb_sync *s, int ms)
{
	uint64_t end = hbt_now_ms() + (uint64_t)ms;

	for (;;) {
		struct pollfd p[2] = {{.fd = hb_sync_fd(s), .events = POLLIN},
				      {.fd = hb_get_fd(c), .events = POLLIN}};
		uint64_t now = hbt_now_ms();
		int r;

		if (fence_fd_ready_at(file, line, s, 0))
			return 1;
		if (now >= end)
			return 0;
		r = poll(p, 2, (int)(end - now));
		if (r < 0 && errno != EINTR)
			hbt_fail(file, line, "poll: %s", strerror(errno));
		if (r > 0 && p[1].revents) {
			if (hb_dispatch(c, 0) < 0 && errno != EAGAIN && errno != EINTR)
				hbt_fail(file, line, "hb_dispatch: %s", strerror(errno));
		}
	}
}

/*
 * Waits by polling the status (the selftests' "busy" style): dispatch briefly, read the status;
 * a negative status is returned at once. Returns the final status (0 on timeout).
 */
int fence_status_wait(struct hb_client *c, struct hb_sync *s, int ms)
{
	uint64_t end = hbt_now_ms() + (uint64_t)ms;
	int st;

	for (;;) {
		st = hb_sync_status(s);
		if (st != 0 || hbt_now_ms() >= end)
			return st;
		if (hb_dispatch(c, 1) < 0 && errno != EAGAIN && errno != EINTR)
			return hb_sync_status(s);
	}
}

/* Opens (tl, v) and waits for it to complete with status 1: once it has, every earlier effect
 * of the owner's signals on this timeline has reached this client too (per-timeline order). */
void fence_barrier_at(const char *file, int line, struct hb_client *c, uint64_t tl, uint64_t v)
{
	struct hb_sync *s = fence_open_at(file, line, c, tl, v);
	int st;

	fence_wait_done_at(file, line, s, FENCE_WAIT_MS);
	st = hb_sync_status(s);
	if (st != 1)
		hbt_fail(file, line, "barrier point %llu: status %d, want 1", (unsigned long long)v,
			 st);
	hb_sync_close(s);
}

/* ---- the agent: an emulated VM in its own process ----------------------------------------- */

struct fa_state {
	struct hb_client *c;
	struct hb_timeline *tl[FA_MAX_TL];
	struct hb_sync *sy[FA_MAX_SYNC];
	struct hb_buffer *buf[FA_MAX_BUF];
	struct hb_import *im[FA_MAX_BUF];
};

static int fa_slot(void **tab, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (!tab[i])
			return i;
	}
	return -1;
}

static uint8_t *fa_mem(struct fa_state *st, int idx, uint64_t which, size_t *size)
{
	if (idx < 0 || idx >= FA_MAX_BUF)
		return NULL;
	if (which == 0 && st->buf[idx]) {
		*size = hb_buffer_size(st->buf[idx]);
		return hb_buffer_data(st->buf[idx]);
	}
	if (which == 1 && st->im[idx]) {
		*size = hb_import_size(st->im[idx]);
		return hb_import_data(st->im[idx]);
	}
	return NULL;
}

#define FA_OK(r, cond)                                                                             \
	do {                                                                                       \
		if (cond) {                                                                        \
			(r)->ret = 0;                                                              \
		} else {                                                                           \
			(r)->ret = -1;                                                             \
			(r)->err = errno;                                                          \
		}                                                                                  \
	} while (0)

static void fa_do(struct fa_state *st, const struct fa_req *q, struct fa_rep *r)
{
	int i = q->idx;
	size_t size;
	uint8_t *mem;

	memset(r, 0, sizeof(*r));
	errno = 0;
	switch (q->op) {
	case FA_DOMAIN:
		r->val = hb_self_domain(st->c);
		break;
	case FA_TL_CREATE:
		i = fa_slot((void **)st->tl, FA_MAX_TL);
		if (i < 0) {
			r->ret = -1;
			r->err = ENFILE;
			break;
		}
		st->tl[i] = hb_timeline_create(st->c);
		if (!st->tl[i]) {
			r->ret = -1;
			r->err = errno;
			break;
		}
		hbt_timeline_share_all(st->tl[i]);
		r->ret = i;
		r->val = hb_timeline_id(st->tl[i]);
		break;
	case FA_TL_SIGNAL:
		if (q->c)
			it_sleep_ms((unsigned)q->c);
		r->val = fence_now_ns(); /* just before the request leaves: latency measurements */
		FA_OK(r, hb_timeline_signal(st->tl[i], q->a) == 0);
		break;
	case FA_TL_FAIL:
		FA_OK(r, hb_timeline_fail(st->tl[i], q->a, (int)(int64_t)q->b) == 0);
		break;
	case FA_TL_DESTROY:
		hb_timeline_destroy(st->tl[i]);
		st->tl[i] = NULL;
		break;
	case FA_OPEN: {
		struct hb_fence f = {.timeline = q->a, .value = q->b};

		i = fa_slot((void **)st->sy, FA_MAX_SYNC);
		if (i < 0) {
			r->ret = -1;
			r->err = ENFILE;
			break;
		}
		st->sy[i] = hb_sync_open(st->c, &f);
		if (!st->sy[i]) {
			r->ret = -1;
			r->err = errno;
			break;
		}
		r->ret = i;
		break;
	}
	case FA_WAIT:
		r->ret = hb_sync_wait(st->sy[i], (int)(int64_t)q->a);
		r->err = errno;
		r->val = (uint64_t)(int64_t)hb_sync_status(st->sy[i]);
		break;
	case FA_STATUS:
		r->ret = hb_sync_status(st->sy[i]);
		break;
	case FA_FDREADY: {
		struct pollfd p = {.fd = hb_sync_fd(st->sy[i]), .events = POLLIN};

		r->ret = poll(&p, 1, 0) == 1 && p.revents == POLLIN;
		break;
	}
	case FA_CLOSE:
		hb_sync_close(st->sy[i]);
		st->sy[i] = NULL;
		break;
	case FA_MERGE: {
		int j = fa_slot((void **)st->sy, FA_MAX_SYNC);

		if (j < 0) {
			r->ret = -1;
			r->err = ENFILE;
			break;
		}
		st->sy[j] = hb_sync_merge(st->sy[i], st->sy[q->a]);
		if (!st->sy[j]) {
			r->ret = -1;
			r->err = errno;
			break;
		}
		r->ret = j;
		break;
	}
	case FA_ALLOC:
		i = fa_slot((void **)st->buf, FA_MAX_BUF);
		if (i < 0) {
			r->ret = -1;
			r->err = ENFILE;
			break;
		}
		st->buf[i] = hb_buffer_alloc(st->c, (uint32_t)q->a, (size_t)q->b, (uint32_t)q->c);
		if (!st->buf[i] || hb_export(st->buf[i], NULL, 0, 0, &r->id) != 0) {
			r->ret = -1;
			r->err = errno;
			if (st->buf[i])
				hb_buffer_free(st->buf[i]);
			st->buf[i] = NULL;
			break;
		}
		r->ret = i;
		break;
	case FA_FREE:
		hb_buffer_free(st->buf[i]);
		st->buf[i] = NULL;
		break;
	case FA_IMPORT:
		i = fa_slot((void **)st->im, FA_MAX_BUF);
		if (i < 0) {
			r->ret = -1;
			r->err = ENFILE;
			break;
		}
		st->im[i] = hb_import(st->c, &q->id, (uint32_t)q->a);
		if (!st->im[i]) {
			r->ret = -1;
			r->err = errno;
			break;
		}
		r->ret = i;
		break;
	case FA_RELEASE:
		hb_import_release(st->im[i]);
		st->im[i] = NULL;
		break;
	case FA_FILL:
		mem = fa_mem(st, i, q->a, &size);
		if (!mem) {
			r->ret = -1;
			r->err = EBADF;
			break;
		}
		tool_pattern_fill(mem, size, q->b);
		break;
	case FA_CHECK:
		mem = fa_mem(st, i, q->a, &size);
		if (!mem) {
			r->ret = -1;
			r->err = EBADF;
			break;
		}
		r->ret = tool_pattern_check(mem, size, q->b) == size;
		break;
	case FA_PUT64:
		mem = fa_mem(st, i, q->a, &size);
		if (!mem || q->b + 8 > size) {
			r->ret = -1;
			r->err = EBADF;
			break;
		}
		__atomic_store_n((uint64_t *)(mem + q->b), q->c, __ATOMIC_RELAXED);
		break;
	case FA_GET64:
		mem = fa_mem(st, i, q->a, &size);
		if (!mem || q->b + 8 > size) {
			r->ret = -1;
			r->err = EBADF;
			break;
		}
		r->val = __atomic_load_n((uint64_t *)(mem + q->b), __ATOMIC_RELAXED);
		break;
	case FA_ATTACH: {
		struct hb_fence f = {.timeline = q->a, .value = q->b};

		FA_OK(r, hb_attach_fence(st->c, &q->id, &f, (uint32_t)q->c) == 0);
		break;
	}
	case FA_BEGIN:
		FA_OK(r,
		      hb_begin_cpu_access(st->c, &q->id, (uint32_t)q->a, (int)(int64_t)q->b) == 0);
		break;
	case FA_END:
		FA_OK(r, hb_end_cpu_access(st->c, &q->id, (uint32_t)q->a) == 0);
		break;
	case FA_DISCONNECT:
		/* Everything in the tables belongs to the client and goes with it. */
		hb_disconnect(st->c);
		st->c = NULL;
		memset(st->tl, 0, sizeof(st->tl));
		memset(st->sy, 0, sizeof(st->sy));
		memset(st->buf, 0, sizeof(st->buf));
		memset(st->im, 0, sizeof(st->im));
		break;
	default:
		r->ret = -1;
		r->err = ENOSYS;
		break;
	}
}

/* The agent process: connect, say ready, serve commands while keeping the client read. */
static int fa_main(struct fence_agent *a)
{
	static struct fa_state st;
	struct fa_rep r = {0};
	int i;

	st.c = hb_connect(a->addr);
	r.ret = st.c ? 0 : -1;
	r.err = st.c ? 0 : errno;
	r.val = st.c ? hb_self_domain(st.c) : 0;
	if (write(a->sock, &r, sizeof(r)) != (ssize_t)sizeof(r) || !st.c)
		return 10;
	for (;;) {
		struct pollfd p[2] = {{.fd = a->sock, .events = POLLIN},
				      {.fd = st.c ? hb_get_fd(st.c) : -1, .events = POLLIN}};
		struct fa_req q;
		struct hb_event ev;
		ssize_t n;

		if (poll(p, 2, 1000) < 0 && errno != EINTR)
			return 11;
		if (st.c && p[1].revents) {
			/* Keep reading what the daemon sends (it drops a client that never reads);
			 * the events themselves are not needed. */
			hb_dispatch(st.c, 0);
			while (hb_next_event(st.c, &ev) == 0)
				;
		}
		if (!(p[0].revents & (POLLIN | POLLHUP)))
			continue;
		n = read(a->sock, &q, sizeof(q));
		if (n == 0)
			break; /* the test went away */
		if (n != (ssize_t)sizeof(q))
			return 12;
		if (q.op == FA_QUIT)
			break;
		fa_do(&st, &q, &r);
		if (write(a->sock, &r, sizeof(r)) != (ssize_t)sizeof(r))
			return 13;
	}
	for (i = 0; i < FA_MAX_SYNC; i++) {
		if (st.sy[i])
			hb_sync_close(st.sy[i]);
	}
	for (i = 0; i < FA_MAX_TL; i++) {
		if (st.tl[i])
			hb_timeline_destroy(st.tl[i]);
	}
	if (st.c)
		hb_disconnect(st.c); /* frees buffers and imports still held */
	return 0;
}

static int fa_main_void(void *p)
{
	struct fence_agent *a = p;
	int fd;

	/* Drop every descriptor inherited from the test process (its clients' sockets above
	 * all), keeping only the command socket, moved to fd 3. */
	fd = dup2(a->sock, 3);
	if (fd < 0)
		return 14;
	a->sock = 3;
	close_range(4, ~0u, 0);
	return fa_main(a);
}

/* Forks an agent connected to addr; waits until it is connected. name is for messages. */
void fence_agent_start_at(const char *file, int line, struct fence_agent *a, const char *addr,
			  const char *name)
{
	int sv[2];
	struct fa_rep r;

	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	snprintf(a->addr, sizeof(a->addr), "%s", addr);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		hbt_fail(file, line, "socketpair: %s", strerror(errno));
	a->sock = sv[1];
	a->pid = hbt_fork(fa_main_void, a);
	close(sv[1]);
	a->sock = sv[0];
	if (it_pipe_read(a->sock, &r, sizeof(r), FENCE_WAIT_MS) != 0)
		hbt_fail(file, line, "agent %s (%s) did not start", name, addr);
	if (r.ret != 0)
		hbt_fail(file, line, "agent %s: hb_connect(%s): %s", name, addr, strerror(r.err));
}

void fa_send_at(const char *file, int line, struct fence_agent *a, uint32_t op, int idx, uint64_t x,
		uint64_t y, uint64_t z, const struct hb_id *id)
{
	struct fa_req q = {.op = op, .idx = idx, .a = x, .b = y, .c = z};

	if (id)
		q.id = *id;
	if (send(a->sock, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q))
		hbt_fail(file, line, "agent %s: send op %u: %s", a->name, op, strerror(errno));
}

/* The reply to the last command sent, within ms: 0, or -1 if none came (agent died or hung). */
int fa_recv(struct fence_agent *a, struct fa_rep *r, int ms)
{
	struct pollfd p = {.fd = a->sock, .events = POLLIN};
	int n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	return recv(a->sock, r, sizeof(*r), 0) == (ssize_t)sizeof(*r) ? 0 : -1;
}

struct fa_rep fa_call_at(const char *file, int line, struct fence_agent *a, uint32_t op, int idx,
			 uint64_t x, uint64_t y, uint64_t z, const struct hb_id *id)
{
	struct fa_rep r;

	fa_send_at(file, line, a, op, idx, x, y, z, id);
	if (fa_recv(a, &r, 60000) != 0)
		hbt_fail(file, line, "agent %s: no reply to op %u", a->name, op);
	return r;
}

/* A call that must succeed (ret >= 0); returns the reply. */
struct fa_rep fa_ok_at(const char *file, int line, struct fence_agent *a, uint32_t op, int idx,
		       uint64_t x, uint64_t y, uint64_t z, const struct hb_id *id)
{
	struct fa_rep r = fa_call_at(file, line, a, op, idx, x, y, z, id);

	if (r.ret < 0)
		hbt_fail(file, line, "agent %s: op %u failed: %s", a->name, op, strerror(r.err));
	return r;
}

/* Convenience: a timeline in the agent; returns its index there and stores its id. */
int fence_fa_timeline_at(const char *file, int line, struct fence_agent *a, uint64_t *tl_id)
{
	struct fa_rep r = fa_ok_at(file, line, a, FA_TL_CREATE, 0, 0, 0, 0, NULL);

	*tl_id = r.val;
	return (int)r.ret;
}

/* Asks the agent to quit and requires a clean exit (a leak or a crash is a failure). */
void fence_agent_stop_at(const char *file, int line, struct fence_agent *a)
{
	int code;

	if (a->pid <= 0)
		return;
	fa_send_at(file, line, a, FA_QUIT, 0, 0, 0, 0, NULL);
	code = hbt_wait_child(a->pid);
	close(a->sock);
	a->pid = 0;
	if (code != 0)
		hbt_fail(file, line, "agent %s exited with status %d", a->name, code);
}

void fence_agent_kill(struct fence_agent *a)
{
	kill(a->pid, SIGKILL);
	CHECK_EQ(hbt_wait_child(a->pid), 128 + SIGKILL);
	close(a->sock);
	a->pid = 0;
}
