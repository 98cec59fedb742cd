/*
 * Helpers shared by the integration suites: see tests/it_common.h.
 */
#include "tests/it_common.h"
#include "tests/raw_wire.h"
#include "tools/spawn.h"

/* ---- small things ------------------------------------------------------------------------- */

void it_fences_as_waits(bool on)
{
	static bool was_set; /* test_sh_awaited.sh runs whole suites so */

	if (on) {
		was_set = getenv("HYPERBUF_SIGNALS") != NULL;
		setenv("HYPERBUF_SIGNALS", "awaited", 1);
	} else if (!was_set) {
		unsetenv("HYPERBUF_SIGNALS");
	}
}

struct hb_timeline *it_timeline_at(const char *file, int line, struct hb_client *owner,
				   uint32_t domain)
{
	struct hb_timeline *t = hb_timeline_create(owner);

	if (!t || hb_timeline_share(t, domain) < 0)
		hbt_fail(file, line, "a timeline shared with domain %u: %s", domain,
			 strerror(errno));
	return t;
}

struct hb_sync *it_sync_at(const char *file, int line, struct hb_client *c, struct hb_timeline *t,
			   uint64_t value)
{
	struct hb_fence f = {hb_timeline_id(t), value};
	struct hb_sync *s = hb_sync_open(c, &f);

	if (!s)
		hbt_fail(file, line, "hb_sync_open(%llu): %s", (unsigned long long)value,
			 strerror(errno));
	return s;
}

bool it_fences_watched(void)
{
	const char *v = getenv("HYPERBUF_SIGNALS");

	return !v || strcmp(v, "awaited") != 0;
}

void it_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Directory pages of a buffer of n data pages, as the library's allocations get them: none up
 * to HBP_INLINE_REFS_MAX (the refs travel inline), 1 up to 1024, then one level more. */
uint64_t it_dir_pages(uint64_t n)
{
	uint64_t total = 0;

	if (n <= HBP_INLINE_REFS_MAX)
		return 0;
	while (n > 1) {
		n = (n + HBP_REFS_PER_PAGE - 1) / HBP_REFS_PER_PAGE;
		total += n;
	}
	return total ? total : 1;
}

/* Every pool page a buffer of size bytes uses: data pages and directory pages. */
uint64_t it_buffer_pages(uint64_t size)
{
	return IT_PAGES(size) + it_dir_pages(IT_PAGES(size));
}

/* A deterministic random stream for fuzzing (xorshift64*); print the seed on failure. */
uint64_t it_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

void it_random_id(struct hb_id *id, uint64_t *seed)
{
	uint64_t a = it_rand(seed), b = it_rand(seed);

	memcpy(id->bytes, &a, 8);
	memcpy(id->bytes + 8, &b, 8);
}

const char *it_id_text(const struct hb_id *id)
{
	static char slots[4][33];
	static unsigned n;
	char *s = slots[n++ % 4];

	if (hb_id_format(id, s) != 0)
		snprintf(s, 33, "(unformattable)");
	return s;
}

const char *it_event_name(int type)
{
	static const char *names[] = {"?",        "EXPORTED",    "UNEXPORTED", "IMPORTED",
				      "RELEASED", "DOMAIN_GONE", "FENCE",      "OVERFLOW",
				      "RESTARTED"};

	return type >= 1 && type <= 8 ? names[type] : "?";
}

/* ---- checked API calls (failures name the caller's line) ----------------------------------- */

struct hb_client *it_connect_at(const char *file, int line, const char *addr)
{
	struct hb_client *c = hb_connect(addr);

	if (!c)
		hbt_fail(file, line, "hb_connect(%s): %s", addr, strerror(errno));
	return c;
}

struct hb_buffer *it_alloc_at(const char *file, int line, struct hb_client *c, uint32_t peer,
			      size_t size, uint32_t flags)
{
	struct hb_buffer *b = hb_buffer_alloc(c, peer, size, flags);

	if (!b)
		hbt_fail(file, line, "hb_buffer_alloc(peer %u, %zu bytes, flags %#x): %s", peer,
			 size, flags, strerror(errno));
	return b;
}

void it_export_at(const char *file, int line, struct hb_buffer *b, const void *meta,
		  size_t meta_len, struct hb_id *id)
{
	if (hb_export(b, meta, meta_len, 0, id) != 0)
		hbt_fail(file, line, "hb_export(%zu bytes of metadata): %s", meta_len,
			 strerror(errno));
}

struct hb_import *it_import_at(const char *file, int line, struct hb_client *c,
			       const struct hb_id *id, uint32_t flags)
{
	struct hb_import *im = hb_import(c, id, flags);

	if (!im)
		hbt_fail(file, line, "hb_import(%s, flags %#x): %s", it_id_text(id), flags,
			 strerror(errno));
	return im;
}

void it_query_at(const char *file, int line, struct hb_client *c, const struct hb_id *id,
		 struct hb_info *info)
{
	memset(info, 0x5a, sizeof(*info));
	if (hb_query(c, id, info) != 0)
		hbt_fail(file, line, "hb_query(%s): %s", it_id_text(id), strerror(errno));
}

/* The daemon must exit 0 (a leak report or a crash makes it non-zero). */

/* Fills a buffer with the shared pattern, and checks an import against it. */
void it_fill(struct hb_buffer *b, uint64_t seed)
{
	tool_pattern_fill(hb_buffer_data(b), hb_buffer_size(b), seed);
}

void it_check_import_at(const char *file, int line, struct hb_import *im, size_t size,
			uint64_t seed)
{
	size_t off;

	if (hb_import_size(im) != size)
		hbt_fail(file, line, "import size %zu, want %zu", hb_import_size(im), size);
	off = tool_pattern_check(hb_import_data(im), size, seed);
	if (off != size)
		hbt_fail(file, line,
			 "import differs from the exporter's pattern at byte %zu of %zu", off,
			 size);
}

bool it_all_bytes(const void *p, size_t len, uint8_t v)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++) {
		if (b[i] != v)
			return false;
	}
	return true;
}

/* ---- events ------------------------------------------------------------------------------- */

/* The next event (of any type) within timeout_ms: 0, or -1 on timeout. Any error other than
 * EAGAIN from hb_next_event, or any hb_dispatch error, fails the test. */
int it_next_event_at(const char *file, int line, struct hb_client *c, struct hb_event *ev,
		     int timeout_ms)
{
	uint64_t end = hbt_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint64_t now;

		if (hb_next_event(c, ev) == 0)
			return 0;
		if (errno != EAGAIN)
			hbt_fail(file, line, "hb_next_event: %s", strerror(errno));
		now = hbt_now_ms();
		if (now >= end)
			return -1;
		if (hb_dispatch(c, (int)(end - now)) < 0)
			hbt_fail(file, line, "hb_dispatch: %s", strerror(errno));
	}
}

/* The very next event must be of this type (and arrive within IT_WAIT_MS). */
void it_expect_event_at(const char *file, int line, struct hb_client *c, int type,
			struct hb_event *ev)
{
	if (it_next_event_at(file, line, c, ev, IT_WAIT_MS) != 0)
		hbt_fail(file, line, "no %s event within %d ms", it_event_name(type), IT_WAIT_MS);
	if ((int)ev->type != type)
		hbt_fail(file, line, "next event is %s (domain %u, id %s), want %s",
			 it_event_name(ev->type), ev->domain, it_id_text(&ev->id),
			 it_event_name(type));
}

/* Skips other events until one of this type arrives; -1 on timeout. */
int it_wait_event_at(const char *file, int line, struct hb_client *c, int type, struct hb_event *ev,
		     int timeout_ms)
{
	uint64_t end = hbt_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint64_t now = hbt_now_ms();

		if (it_next_event_at(file, line, c, ev, now >= end ? 0 : (int)(end - now)) != 0)
			return -1;
		if ((int)ev->type == type)
			return 0;
	}
}

/* Nothing may arrive during ms milliseconds. */
void it_expect_quiet_at(const char *file, int line, struct hb_client *c, int ms)
{
	struct hb_event ev;

	if (it_next_event_at(file, line, c, &ev, ms) == 0)
		hbt_fail(file, line, "unexpected %s event (domain %u, id %s)",
			 it_event_name(ev.type), ev.domain, it_id_text(&ev.id));
}

/* Handles whatever is in flight (ivshmem peer notices, welcome leftovers) and drops every
 * queued event, so a case starts from a known empty queue. */
void it_drain(struct hb_client *c)
{
	struct hb_event ev;

	while (hb_dispatch(c, 100) > 0)
		;
	while (hb_next_event(c, &ev) == 0)
		;
}

/* ---- daemon statistics -------------------------------------------------------------------- */

long long it_stat_at(const char *file, int line, const struct hbt_daemon *d, const char *key)
{
	long long v = hbt_stat(d, key);

	if (v < 0)
		hbt_fail(file, line, "hyperbufctl stats has no \"%s\"", key);
	return v;
}

/* Polls a statistic until it has the wanted value (requests are asynchronous for some calls,
 * e.g. a release); returns the last value read, which the caller checks. */
long long it_wait_stat(const struct hbt_daemon *d, const char *key, long long want)
{
	uint64_t end = hbt_now_ms() + IT_WAIT_MS;
	long long v;

	for (;;) {
		v = hbt_stat(d, key);
		if (v == want || hbt_now_ms() >= end)
			return v;
		it_sleep_ms(50);
	}
}

/* ---- processes ---------------------------------------------------------------------------- */

/*
 * Restores the default action of SIGSEGV and SIGBUS with the raw system call: the sanitizer
 * runtime catches them otherwise (and its interceptors may refuse a sigaction), turning a fault
 * into exit(1). A child that must die by the fault calls this first.
 */
void it_default_fault_signals(void)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} ksa;

	memset(&ksa, 0, sizeof(ksa));
	ksa.handler = (void *)SIG_DFL;
	syscall(SYS_rt_sigaction, SIGSEGV, &ksa, NULL, sizeof(ksa.mask));
	syscall(SYS_rt_sigaction, SIGBUS, &ksa, NULL, sizeof(ksa.mask));
}

bool it_died_of_fault(int code)
{
	return code == 128 + SIGSEGV || code == 128 + SIGBUS;
}

/* The whole reads and writes of tools/spawn.c, as a test wants them. */
void it_pipe_write(int fd, const void *p, size_t n)
{
	int r = tool_write_full(fd, p, n);

	if (r != 0)
		hbt_fail(__FILE__, __LINE__, "writing %zu bytes on fd %d: %s", n, fd, strerror(-r));
}

int it_pipe_read(int fd, void *p, size_t n, int timeout_ms)
{
	return tool_read_full(fd, p, n, timeout_ms) == 0 ? 0 : -1;
}

/* Runs argv (argv[0] a path) with stdout and stderr captured together into out; returns the
 * exit status (128 + signal when killed). Gives up after 20 s. */
int it_run(char *out, size_t outlen, char *const argv[])
{
	int pfd[2], status;
	size_t used = 0;
	uint64_t end;
	pid_t pid;

	out[0] = '\0';
	CHECK(pipe2(pfd, O_CLOEXEC) == 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	end = hbt_now_ms() + 20000;
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		char buf[4096];
		ssize_t n;

		if (hbt_now_ms() >= end) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(pfd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (used + 1 < outlen) {
			size_t take = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;

			memcpy(out + used, buf, take);
			used += take;
			out[used] = '\0';
		}
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

void it_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
}

/* The standard topology of tests/util.h, with relative paths (resolved against the config's
 * folder), plus the caller's [limits] or other lines. */

/* ---- sockets ------------------------------------------------------------------------------ */

/* A connected AF_UNIX stream socket, or -1 with errno. */
int it_unix_connect(const char *path)
{
	return hbw_unix_connect(path);
}

int it_send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Reads exactly n bytes within timeout_ms, collecting at most one passed descriptor into *fd
 * (if fd is non-NULL; extra ones are closed and counted in *nfds). Returns 1, 0 on EOF (or a
 * reset), -1 on timeout.
 */
int it_recv_full(int sock, void *p, size_t n, int timeout_ms, int *fd, int *nfds)
{
	return hbw_recv_fds(sock, p, n, timeout_ms, fd, nfds);
}

/* ---- a raw protocol session -------------------------------------------------------------- */

void it_raw_open(struct it_raw *r, const char *path)
{
	r->fd = it_unix_connect(path);
	if (r->fd < 0)
		hbt_fail(__FILE__, __LINE__, "connect %s: %s", path, strerror(errno));
	r->next_id = 1;
	r->passed_fd = -1;
}

void it_raw_close(struct it_raw *r)
{
	if (r->fd >= 0)
		close(r->fd);
	if (r->passed_fd >= 0)
		close(r->passed_fd);
	r->fd = -1;
	r->passed_fd = -1;
}

int it_raw_send_frame(struct it_raw *r, const void *payload, size_t len, uint64_t len_override)
{
	return hbw_send_frame(r->fd, payload, len, len_override, IT_WAIT_MS);
}

int it_raw_send(struct it_raw *r, const ClientMsg *m)
{
	return hbw_send(r->fd, m, IT_WAIT_MS);
}

ServerMsg *it_raw_recv(struct it_raw *r, int timeout_ms, int *why)
{
	int dummy;

	if (r->passed_fd >= 0) {
		close(r->passed_fd);
		r->passed_fd = -1;
	}
	return hbw_recv(r->fd, timeout_ms, IT_WAIT_MS, why ? why : &dummy, &r->passed_fd);
}

ServerMsg *it_raw_call_at(const char *file, int line, struct it_raw *r, ClientMsg *m)
{
	int why;
	ServerMsg *s = hbw_call(r->fd, &r->next_id, m, IT_WAIT_MS, &why, &r->passed_fd);

	if (!s)
		hbt_fail(file, line, "request %u: no reply (%s)", m->id, hbw_why(why));
	return s;
}

/* Like IT_RAW_CALL but only the reply's error code matters: returns it. */
uint32_t it_raw_call_err_at(const char *file, int line, struct it_raw *r, ClientMsg *m)
{
	ServerMsg *s = it_raw_call_at(file, line, r, m);
	uint32_t e = s->error;

	server_msg__free_unpacked(s, NULL);
	return e;
}

uint32_t it_raw_free(struct it_raw *r, uint64_t buffer)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Free f = FREE__INIT;

	f.buffer = buffer;
	IT_MSG(m, FREE, free, &f);
	return IT_RAW_ERR(r, &m);
}

/* Hello with this role, announcing what today's library does; returns the Welcome reply (free
 * with server_msg__free_unpacked). */
ServerMsg *it_raw_hello(struct it_raw *r, uint32_t role)
{
	return it_raw_hello_features(r, role, HBP_FEATURE_INLINE_REFS);
}

/* Hello announcing exactly these HBP_FEATURE_* bits (0: a library from before them). */
ServerMsg *it_raw_hello_features(struct it_raw *r, uint32_t role, uint32_t features)
{
	ClientMsg m;
	Hello h;
	ServerMsg *s;

	hbw_hello(&m, &h, role, features);
	s = IT_RAW_CALL(r, &m);
	if (s->error != 0 || s->body_case != SERVER_MSG__BODY_WELCOME)
		hbt_fail(__FILE__, __LINE__, "Hello: error %u, body %d", s->error, s->body_case);
	return s;
}

const GroupInfo *it_welcome_group(const ServerMsg *w, const char *name)
{
	size_t i;

	for (i = 0; i < w->welcome->n_groups; i++) {
		if (strcmp(w->welcome->groups[i]->name, name) == 0)
			return w->welcome->groups[i];
	}
	hbt_fail(__FILE__, __LINE__, "welcome lists no group \"%s\"", name);
}

/* Builders for single requests (the body lives in the caller's frame). */

void hbt_raw_session(struct it_raw *r, const char *path, uint32_t role)
{
	ServerMsg *w;

	it_raw_open(r, path);
	w = it_raw_hello(r, role);
	server_msg__free_unpacked(w, NULL);
}

uint32_t hbt_raw_attach(struct it_raw *r, uint32_t group, uint32_t peer)
{
	ClientMsg m = CLIENT_MSG__INIT;
	Attach at = ATTACH__INIT;

	at.group = group;
	at.ivshmem_peer = peer;
	IT_MSG(m, ATTACH, attach, &at);
	return IT_RAW_ERR(r, &m);
}

void hbt_put_frame(uint8_t *buf, size_t cap, size_t *len, const ClientMsg *m)
{
	if (!hbw_put_frame(buf, cap, len, m))
		hbt_fail(__FILE__, __LINE__, "a frame of %zu bytes past %zu of %zu",
			 client_msg__get_packed_size(m) + 4, *len, cap);
}

bool it_raw_wait_closed(struct it_raw *r, int timeout_ms)
{
	return hbw_wait_closed(r->fd, timeout_ms);
}

/* ---- a fake QEMU on an ivshmem-doorbell socket --------------------------------------------- */

/* One 8-byte server message: 1 with *val, *fd (-1 if none) and *nfds; 0 on EOF; -1 on
 * timeout. */
int it_ivsh_recv(int sock, int64_t *val, int *fd, int *nfds, int timeout_ms)
{
	uint8_t b[8];
	uint64_t v = 0;
	int i, st;

	*fd = -1;
	*nfds = 0;
	st = it_recv_full(sock, b, 8, timeout_ms, fd, nfds);
	if (st <= 0)
		return st;
	for (i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	*val = (int64_t)v;
	return 1;
}

/* Connects and reads the whole greeting (one vector): version, id, pool, the other peers in
 * any order, then our own id. Fails the test on anything unexpected. */
void it_ivsh_join(struct it_ivsh *v, const char *path)
{
	int64_t val;
	int fd, nfds;

	memset(v, 0, sizeof(*v));
	v->pool_fd = v->own_fd = -1;
	v->sock = it_unix_connect(path);
	if (v->sock < 0)
		hbt_fail(__FILE__, __LINE__, "connect %s: %s", path, strerror(errno));
	CHECK_EQ(it_ivsh_recv(v->sock, &val, &fd, &nfds, IT_WAIT_MS), 1);
	CHECK_EQ(val, 0);
	CHECK_EQ(nfds, 0);
	CHECK_EQ(it_ivsh_recv(v->sock, &v->id, &fd, &nfds, IT_WAIT_MS), 1);
	CHECK(v->id >= 1 && v->id <= 65535);
	CHECK_EQ(nfds, 0);
	CHECK_EQ(it_ivsh_recv(v->sock, &val, &v->pool_fd, &nfds, IT_WAIT_MS), 1);
	CHECK_EQ(val, -1);
	CHECK_EQ(nfds, 1);
	{
		struct stat st;

		CHECK(fstat(v->pool_fd, &st) == 0);
		v->pool_size = (uint64_t)st.st_size;
	}
	for (;;) {
		CHECK_EQ(it_ivsh_recv(v->sock, &val, &fd, &nfds, IT_WAIT_MS), 1);
		CHECK_EQ(nfds, 1);
		if (val == v->id) {
			v->own_fd = fd;
			return;
		}
		CHECK(v->n_peers < IT_IVSH_MAX_PEERS);
		v->peer_id[v->n_peers] = val;
		v->peer_fd[v->n_peers++] = fd;
	}
}

void it_ivsh_close(struct it_ivsh *v)
{
	int i;

	if (v->sock >= 0)
		close(v->sock);
	if (v->pool_fd >= 0)
		close(v->pool_fd);
	if (v->own_fd >= 0)
		close(v->own_fd);
	for (i = 0; i < v->n_peers; i++)
		close(v->peer_fd[i]);
	memset(v, 0, sizeof(*v));
	v->sock = v->pool_fd = v->own_fd = -1;
}

/* ---- reading and writing a pool through its memfd ------------------------------------------ */

void it_pool_read(int fd, uint64_t page, void *buf)
{
	CHECK_EQ(pread(fd, buf, HBP_PAGE_SIZE, (off_t)(page * HBP_PAGE_SIZE)), HBP_PAGE_SIZE);
}

void it_pool_write_ref(int fd, uint64_t page, unsigned index, uint32_t ref)
{
	uint8_t le[4] = {(uint8_t)ref, (uint8_t)(ref >> 8), (uint8_t)(ref >> 16),
			 (uint8_t)(ref >> 24)};

	CHECK_EQ(pwrite(fd, le, 4, (off_t)(page * HBP_PAGE_SIZE + index * 4u)), 4);
}

/*
 * Calls fn(ctx, page, mem) for every page of the pool that holds data (SEEK_DATA: holes are
 * skipped, so nothing is faulted in), page 0 excluded, until fn returns true; returns that
 * page, or -1.
 */
int64_t it_pool_scan(int fd, uint64_t pool_size,
		     bool (*fn)(void *ctx, uint64_t page, const uint8_t *mem), void *ctx)
{
	static uint8_t mem[HBP_PAGE_SIZE];
	off_t pos = HBP_PAGE_SIZE;

	while ((uint64_t)pos < pool_size) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0)
			return -1;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)pool_size;
		for (pos = data & ~(off_t)(HBP_PAGE_SIZE - 1); pos < hole; pos += HBP_PAGE_SIZE) {
			if (pos == 0)
				continue;
			it_pool_read(fd, (uint64_t)pos / HBP_PAGE_SIZE, mem);
			if (fn(ctx, (uint64_t)pos / HBP_PAGE_SIZE, mem))
				return pos / HBP_PAGE_SIZE;
		}
	}
	return -1;
}

struct it_find_bytes {
	const void *needle;
	size_t len;
};

static bool it_find_bytes_fn(void *ctx, uint64_t page, const uint8_t *mem)
{
	struct it_find_bytes *f = ctx;

	(void)page;
	return memmem(mem, HBP_PAGE_SIZE, f->needle, f->len) != NULL;
}

/* The pool page holding these bytes (a run of a buffer's unique pattern), or -1. */
int64_t it_pool_find_bytes(int fd, uint64_t pool_size, const void *needle, size_t len)
{
	struct it_find_bytes f = {needle, len};

	return it_pool_scan(fd, pool_size, it_find_bytes_fn, &f);
}

struct it_find_dir {
	uint32_t first; /* entry 0 must be this ref */
	unsigned n;     /* entries used; the rest of the page must be zero */
	uint64_t pool_pages;
};

static bool it_find_dir_fn(void *ctx, uint64_t page, const uint8_t *mem)
{
	struct it_find_dir *f = ctx;
	unsigned i;

	for (i = 0; i < HBP_REFS_PER_PAGE; i++) {
		uint32_t ref = mem[4 * i] | (uint32_t)mem[4 * i + 1] << 8 |
			       (uint32_t)mem[4 * i + 2] << 16 | (uint32_t)mem[4 * i + 3] << 24;

		if (i == 0 && ref != f->first)
			return false;
		if (i < f->n && (ref == 0 || ref >= f->pool_pages || ref == page))
			return false;
		if (i >= f->n && ref != 0)
			return false;
	}
	return true;
}

/* The directory page whose first ref is first and which lists n refs (rest zero), or -1. */
int64_t it_pool_find_dir(int fd, uint64_t pool_size, uint32_t first, unsigned n)
{
	struct it_find_dir f = {first, n, pool_size / HBP_PAGE_SIZE};

	return it_pool_scan(fd, pool_size, it_find_dir_fn, &f);
}

/* ---- text --------------------------------------------------------------------------------- */

/*
 * A small structural check of a JSON document: one top-level object, balanced braces and
 * brackets outside strings, string escapes well formed, nothing but whitespace after it.
 */
bool it_json_ok(const char *s)
{
	char stack[64];
	int depth = 0;
	bool in_str = false, started = false;

	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	if (*s != '{')
		return false;
	for (; *s; s++) {
		char ch = *s;

		if (in_str) {
			if (ch == '\\') {
				if (!s[1])
					return false;
				s++;
			} else if (ch == '"') {
				in_str = false;
			} else if ((unsigned char)ch < 0x20) {
				return false;
			}
			continue;
		}
		if (started && depth == 0) {
			if (ch != ' ' && ch != '\n' && ch != '\t' && ch != '\r')
				return false;
			continue;
		}
		if (ch == '"') {
			in_str = true;
		} else if (ch == '{' || ch == '[') {
			if (depth == (int)sizeof(stack))
				return false;
			stack[depth++] = ch;
			started = true;
		} else if (ch == '}' || ch == ']') {
			if (depth == 0 || stack[depth - 1] != (ch == '}' ? '{' : '['))
				return false;
			depth--;
		}
	}
	return started && depth == 0 && !in_str;
}

/* The value of a "key: value" line in text, or -1. */
long long it_kv(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, key, klen) == 0 && p[klen] == ':')
			return strtoll(p + klen + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

bool it_file_has(const char *path, const char *needle)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

size_t hbt_count_substr(const char *s, const char *needle)
{
	size_t n = 0, len = strlen(needle);

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += len;
	}
	return n;
}

void hbt_timeline_share_all(struct hb_timeline *t)
{
	for (uint32_t dom = 0; dom <= 4; dom++) {
		int r = hb_timeline_share(t, dom);

		if (r < 0 && errno != EPERM)
			hbt_fail(__FILE__, __LINE__, "hb_timeline_share(%u): %s", dom,
				 strerror(errno));
	}
}
