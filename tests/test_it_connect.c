/*
 * Connection and handles (API.md "Connection", "Handles"): addresses, a missing daemon, who a
 * client is, the pollable fd, hb_dispatch's timeouts and counts, the sticky error after the
 * daemon goes away, the hid text form, hb_strerror's words and HYPERBUF_DEBUG's trace.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "tests/it_common.h"

TEST(connect_bad_address)
{
	static const char *const bad[] = {
	    "", "bogus", "unix", "unix:", "vm:", "tcp:1.2.3.4:5", "UNIX:/x", "file:/tmp/x"};
	char longaddr[400];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (hb_connect(bad[i]) != NULL)
			hbt_fail(__FILE__, __LINE__, "hb_connect(\"%s\") succeeded", bad[i]);
		if (errno != EINVAL)
			hbt_fail(__FILE__, __LINE__,
				 "hb_connect(\"%s\"): errno %d (%s), want EINVAL", bad[i], errno,
				 strerror(errno));
	}
	/* A path that cannot fit a sockaddr_un is a bad address too. */
	snprintf(longaddr, sizeof(longaddr), "unix:/tmp/%0300d", 7);
	errno = 0;
	CHECK(hb_connect(longaddr) == NULL);
	CHECK(errno == EINVAL || errno == ENAMETOOLONG);
	longaddr[0] = 'v';
	longaddr[1] = 'm';
	memmove(longaddr + 2, longaddr + 4, strlen(longaddr + 4) + 1);
	errno = 0;
	CHECK(hb_connect(longaddr) == NULL);
	CHECK(errno == EINVAL || errno == ENAMETOOLONG);
}

TEST(connect_no_daemon)
{
	char dir[] = "/tmp/hbit.XXXXXX", path[200], addr[220];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/absent.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK_ERR(hb_connect(addr), ENOENT);
	snprintf(addr, sizeof(addr), "vm:%s", path);
	CHECK_ERR(hb_connect(addr), ENOENT);

	/* A socket file nobody listens on. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	strcpy(sa.sun_path, path);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK_ERR(hb_connect(addr), ECONNREFUSED);
	snprintf(addr, sizeof(addr), "vm:%s", path);
	CHECK_ERR(hb_connect(addr), ECONNREFUSED);
	close(fd);
	/* A stale socket file left behind. */
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK_ERR(hb_connect(addr), ECONNREFUSED);
	unlink(path);
	rmdir(dir);
}

TEST(connect_env_address)
{
	struct hbt_daemon d;
	struct hb_client *c;
	char addr[300];

	/* NULL means $HYPERBUF_ADDRESS. */
	setenv("HYPERBUF_ADDRESS", "unix:/nonexistent-hyperbuf-dir/x.sock", 1);
	CHECK_ERR(hb_connect(NULL), ENOENT);
	setenv("HYPERBUF_ADDRESS", "nonsense", 1);
	CHECK_ERR(hb_connect(NULL), EINVAL);

	hbt_daemon_start(&d, NULL);
	snprintf(addr, sizeof(addr), "%s", hbt_addr_vm(&d, 2));
	setenv("HYPERBUF_ADDRESS", addr, 1);
	c = hb_connect(NULL);
	CHECK(c != NULL);
	CHECK_EQ(hb_self_domain(c), 2);
	hb_disconnect(c);
	snprintf(addr, sizeof(addr), "%s", hbt_addr_host(&d));
	setenv("HYPERBUF_ADDRESS", addr, 1);
	c = hb_connect(NULL);
	CHECK(c != NULL);
	CHECK_EQ(hb_self_domain(c), 0);
	hb_disconnect(c);
	unsetenv("HYPERBUF_ADDRESS");
	IT_STOP(&d);
}

TEST(self_domain)
{
	struct hbt_daemon d;
	struct hb_client *c[5];
	long long sessions;
	int i;

	hbt_daemon_start(&d, NULL);
	c[0] = IT_CONNECT(hbt_addr_host(&d));
	c[1] = IT_CONNECT(hbt_addr_vm(&d, 1));
	c[2] = IT_CONNECT(hbt_addr_vm(&d, 2));
	c[3] = IT_CONNECT(hbt_addr_vm(&d, 3));
	sessions = IT_STAT(&d, "sessions");
	c[4] = IT_CONNECT(hbt_addr_vm(&d, 1)); /* a second session of vm1 */
	CHECK_EQ(IT_STAT(&d, "sessions"), sessions + 1);
	CHECK_EQ(hb_self_domain(c[0]), 0);
	CHECK_EQ(hb_self_domain(c[1]), 1);
	CHECK_EQ(hb_self_domain(c[2]), 2);
	CHECK_EQ(hb_self_domain(c[3]), 3);
	CHECK_EQ(hb_self_domain(c[4]), 1);
	hb_disconnect(c[4]);
	IT_CHECK_STAT(&d, "sessions", sessions);
	for (i = 0; i < 4; i++)
		hb_disconnect(c[i]);
	IT_STOP(&d);
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(get_fd_pollable)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b;
	struct hb_event ev;
	struct hb_id id;
	int fd;

	hbt_daemon_start(&d, NULL);
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	fd = hb_get_fd(v2);
	CHECK(fd >= 0);
	CHECK_EQ(hb_get_fd(v2), fd);
	CHECK(hb_get_fd(v1) >= 0);
	it_drain(v2);
	CHECK(!readable(fd, 100));

	b = IT_ALLOC(v1, 2, 100, 0);
	IT_EXPORT(b, "x", 1, &id);
	CHECK(readable(fd, IT_WAIT_MS));
	CHECK(hb_dispatch(v2, 0) >= 1);
	CHECK_EQ(hb_next_event(v2, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	CHECK(hb_id_equal(&ev.id, &id));
	CHECK_ERR(hb_next_event(v2, &ev), EAGAIN);
	CHECK(!readable(fd, 100));

	hb_buffer_free(b);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

TEST(dispatch_timeouts_and_counts)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct hb_buffer *b[4];
	struct hb_event ev;
	struct hb_id id;
	uint64_t t0, dt;
	int i, n, total;

	hbt_daemon_start(&d, NULL);
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	it_drain(v2);

	/* Nothing to do: 0 returns at once, a timeout waits about that long. */
	t0 = hbt_now_ms();
	CHECK_EQ(hb_dispatch(v2, 0), 0);
	CHECK(hbt_now_ms() - t0 < 1000);
	t0 = hbt_now_ms();
	CHECK_EQ(hb_dispatch(v2, 150), 0);
	dt = hbt_now_ms() - t0;
	CHECK(dt >= 140);
	CHECK(dt < 5000);
	CHECK_ERR(hb_next_event(v2, &ev), EAGAIN);

	/* Three events: the counts add up to three messages. */
	for (i = 0; i < 3; i++) {
		b[i] = IT_ALLOC(v1, 2, 4096, 0);
		IT_EXPORT(b[i], NULL, 0, &id);
	}
	total = 0;
	t0 = hbt_now_ms();
	while (total < 3 && hbt_now_ms() - t0 < IT_WAIT_MS) {
		n = hb_dispatch(v2, 500);
		CHECK(n >= 0);
		total += n;
	}
	CHECK_EQ(total, 3);
	CHECK_EQ(hb_dispatch(v2, 50), 0);
	for (i = 0; i < 3; i++) {
		CHECK_EQ(hb_next_event(v2, &ev), 0);
		CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	}
	CHECK_ERR(hb_next_event(v2, &ev), EAGAIN);

	/* -1 waits for as long as it takes, and returns once something came. */
	b[3] = IT_ALLOC(v1, 2, 4096, 0);
	IT_EXPORT(b[3], NULL, 0, &id);
	CHECK(hb_dispatch(v2, -1) >= 1);
	CHECK_EQ(hb_next_event(v2, &ev), 0);
	CHECK_EQ(ev.type, HB_EVENT_EXPORTED);
	CHECK(hb_id_equal(&ev.id, &id));

	for (i = 0; i < 4; i++)
		hb_buffer_free(b[i]);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* After the daemon is gone every call fails fast with one sticky errno. */
static void check_sticky(struct hb_client *c, struct hb_buffer *b, const struct hb_id *id, int e)
{
	struct hb_info info;
	struct hb_event ev;
	struct hb_id mine = {0};
	uint64_t t0 = hbt_now_ms();

	CHECK_ERR(hb_dispatch(c, 0), e);
	CHECK_ERR(hb_dispatch(c, 100), e);
	CHECK_ERR(hb_dispatch(c, -1), e);
	CHECK_ERR(hb_buffer_alloc(c, hb_self_domain(c) == 0 ? 1 : 0, 4096, 0), e);
	CHECK_ERR(hb_export(b, "m", 1, 0, &mine), e);
	CHECK_ERR(hb_unexport(c, id, 0), e);
	CHECK_ERR(hb_import(c, id, 0), e);
	CHECK_ERR(hb_query(c, id, &info), e);
	CHECK_ERR(hb_dispatch(c, 10), e);
	/* hb_next_event never waits; with nothing queued it may say EAGAIN or the error. */
	errno = 0;
	CHECK_EQ(hb_next_event(c, &ev), -1);
	CHECK(errno == EAGAIN || errno == e);
	CHECK(hbt_now_ms() - t0 < 5000);
}

TEST(sticky_error_after_daemon_stop)
{
	struct hbt_daemon d;
	struct hb_client *h, *v1;
	struct hb_buffer *bh, *bv;
	struct hb_id idh, idv;
	uint64_t t0;
	int e1, e2, n;

	hbt_daemon_start(&d, NULL);
	h = IT_CONNECT(hbt_addr_host(&d));
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	bh = IT_ALLOC(h, 1, 5000, 0);
	bv = IT_ALLOC(v1, 2, 5000, 0);
	it_fill(bv, 42);
	IT_EXPORT(bh, NULL, 0, &idh);
	IT_EXPORT(bv, NULL, 0, &idv);
	it_drain(h);
	it_drain(v1);

	/* A clean shutdown with clients still connected. */
	IT_STOP(&d);

	/* The host client notices on hb_dispatch... */
	t0 = hbt_now_ms();
	do {
		errno = 0;
		n = hb_dispatch(h, 500);
	} while (n >= 0 && hbt_now_ms() - t0 < IT_WAIT_MS);
	CHECK_EQ(n, -1);
	e1 = errno;
	CHECK(e1 == EPIPE || e1 == ECONNRESET);
	check_sticky(h, bh, &idh, e1);

	/* ...the VM client on its first request. */
	errno = 0;
	CHECK(hb_buffer_alloc(v1, 2, 4096, 0) == NULL);
	e2 = errno;
	CHECK(e2 == EPIPE || e2 == ECONNRESET);
	check_sticky(v1, bv, &idv, e2);
	/* The buffer's own mapping is still the process's memory until it is freed. */
	CHECK_EQ(tool_pattern_check(hb_buffer_data(bv), 5000, 42), 5000);

	hb_buffer_free(bh);
	hb_buffer_free(bv);
	hb_disconnect(h);
	hb_disconnect(v1);
}

TEST(id_format_parse_equal)
{
	struct hb_id a, b, z;
	char text[33], upper[33];
	uint64_t seed = 0x1234;
	int i;

	for (i = 0; i < 16; i++)
		a.bytes[i] = (uint8_t)(i * 17 + 10);
	CHECK_EQ(hb_id_format(&a, text), 0);
	CHECK_EQ(strlen(text), 32);
	CHECK(strcmp(text, "0a1b2c3d4e5f708192a3b4c5d6e7f809") == 0);
	memset(&b, 0, sizeof(b));
	CHECK_EQ(hb_id_parse(text, &b), 0);
	CHECK_EQ(hb_id_equal(&a, &b), 1);
	for (i = 0; i < 33; i++)
		upper[i] = (char)(text[i] >= 'a' && text[i] <= 'f' ? text[i] - 32 : text[i]);
	memset(&b, 0, sizeof(b));
	CHECK_EQ(hb_id_parse(upper, &b), 0);
	CHECK_EQ(hb_id_equal(&a, &b), 1);
	CHECK_EQ(hb_id_parse("0A1b2C3d4E5f708192A3b4C5d6E7f809", &b), 0);
	CHECK_EQ(hb_id_equal(&a, &b), 1);

	/* Every byte value round-trips. */
	for (i = 0; i < 200; i++) {
		it_random_id(&a, &seed);
		CHECK_EQ(hb_id_format(&a, text), 0);
		for (int k = 0; k < 32; k++)
			CHECK((text[k] >= '0' && text[k] <= '9') ||
			      (text[k] >= 'a' && text[k] <= 'f'));
		CHECK_EQ(hb_id_parse(text, &b), 0);
		CHECK_EQ(hb_id_equal(&a, &b), 1);
	}

	/* Bad text. */
	CHECK_ERR(hb_id_parse(NULL, &b), EINVAL);
	CHECK_ERR(hb_id_parse("", &b), EINVAL);
	CHECK_ERR(hb_id_parse("0a1b2c3d4e5f708192a3b4c5d6e7f80", &b), EINVAL);   /* 31 */
	CHECK_ERR(hb_id_parse("0a1b2c3d4e5f708192a3b4c5d6e7f8090", &b), EINVAL); /* 33 */
	CHECK_ERR(hb_id_parse("0a1b2c3d4e5f708192a3b4c5d6e7f80g", &b), EINVAL);  /* not hex */
	CHECK_ERR(hb_id_parse(" 0a1b2c3d4e5f708192a3b4c5d6e7f80", &b), EINVAL);
	CHECK_ERR(hb_id_parse("0a1b2c3d4e5f708192a3b4c5d6e7f80 ", &b), EINVAL);
	CHECK_ERR(hb_id_parse("0x1b2c3d4e5f708192a3b4c5d6e7f809", &b), EINVAL);
	CHECK_ERR(hb_id_parse("-a1b2c3d4e5f708192a3b4c5d6e7f809", &b), EINVAL);
	CHECK_ERR(hb_id_parse("0a1b2c3d-4e5f-7081-92a3-b4c5d6e7", &b), EINVAL);
	CHECK_ERR(hb_id_parse("0a1b2c3d4e5f708192a3b4c5d6e7f8\xc3\xa9", &b), EINVAL);
	CHECK_ERR(hb_id_format(NULL, text), EINVAL);
	CHECK_ERR(hb_id_format(&a, NULL), EINVAL);

	/* Equality is over all 128 bits. */
	memset(&z, 0, sizeof(z));
	b = z;
	CHECK_EQ(hb_id_equal(&z, &b), 1);
	for (i = 0; i < 128; i++) {
		b = z;
		b.bytes[i / 8] ^= (uint8_t)(1u << (i % 8));
		CHECK_EQ(hb_id_equal(&z, &b), 0);
		CHECK_EQ(hb_id_equal(&b, &z), 0);
	}
}

/* ---- one client, several threads ----------------------------------------------------------- */

#define THREADS 4
#define ROUNDS  40

struct worker {
	struct hb_client *c;
	int index;
	int failures;
	char why[160];
	atomic_int *stop;
};

static void *share_worker(void *p)
{
	struct worker *w = p;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		size_t size = 4096 * (size_t)(1 + (i + w->index) % 4) + (size_t)w->index;
		struct hb_buffer *b = hb_buffer_alloc(w->c, 2, size, 0);
		struct hb_info info;
		struct hb_id id;

		if (!b) {
			snprintf(w->why, sizeof(w->why), "alloc: %s", strerror(errno));
			w->failures++;
			continue;
		}
		tool_pattern_fill(hb_buffer_data(b), size, (uint64_t)(w->index * 1000 + i));
		if (hb_export(b, &i, sizeof(i), 0, &id) != 0) {
			snprintf(w->why, sizeof(w->why), "export: %s", strerror(errno));
			w->failures++;
		} else if (hb_query(w->c, &id, &info) != 0 || info.size != size ||
			   info.meta_len != sizeof(i)) {
			snprintf(w->why, sizeof(w->why), "query: %s", strerror(errno));
			w->failures++;
		}
		hb_buffer_free(b);
	}
	return NULL;
}

static void *dispatch_worker(void *p)
{
	struct worker *w = p;
	struct hb_event ev;

	while (!atomic_load(w->stop)) {
		if (hb_dispatch(w->c, 5) < 0) {
			snprintf(w->why, sizeof(w->why), "dispatch: %s", strerror(errno));
			w->failures++;
			break;
		}
		while (hb_next_event(w->c, &ev) == 0)
			;
	}
	return NULL;
}

/* "One struct hb_client may be used from several threads; calls on it are serialised." */
TEST(client_shared_by_threads)
{
	struct hbt_daemon d;
	struct hb_client *v1, *v2;
	struct worker w[THREADS + 1];
	pthread_t t[THREADS + 1];
	atomic_int stop = 0;
	struct hb_event ev;
	int i, exported = 0, unexported = 0;
	uint64_t end;

	hbt_daemon_start(&d, "[limits]\nevent_queue = 4096\n");
	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	v2 = IT_CONNECT(hbt_addr_vm(&d, 2));
	it_drain(v2);
	for (i = 0; i <= THREADS; i++) {
		w[i] = (struct worker){.c = v1, .index = i, .stop = &stop};
		CHECK(pthread_create(&t[i], NULL, i < THREADS ? share_worker : dispatch_worker,
				     &w[i]) == 0);
	}
	/* Meanwhile the peer counts what it is told. */
	end = hbt_now_ms() + 60000;
	while ((exported < THREADS * ROUNDS || unexported < THREADS * ROUNDS) &&
	       hbt_now_ms() < end) {
		if (IT_NEXT_EVENT(v2, &ev, 200) != 0)
			continue;
		CHECK(ev.type == HB_EVENT_EXPORTED || ev.type == HB_EVENT_UNEXPORTED);
		if (ev.type == HB_EVENT_EXPORTED)
			exported++;
		else
			unexported++;
	}
	for (i = 0; i < THREADS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	atomic_store(&stop, 1);
	CHECK(pthread_join(t[THREADS], NULL) == 0);
	for (i = 0; i <= THREADS; i++) {
		if (w[i].failures)
			hbt_fail(__FILE__, __LINE__, "thread %d: %d failures, last: %s", i,
				 w[i].failures, w[i].why);
	}
	CHECK_EQ(exported, THREADS * ROUNDS);
	CHECK_EQ(unexported, THREADS * ROUNDS);
	IT_EXPECT_QUIET(v2, 200);
	IT_CHECK_STAT(&d, "pages_used", 0);
	CHECK_EQ(IT_STAT(&d, "buffers"), 0);
	hb_disconnect(v1);
	hb_disconnect(v2);
	IT_STOP(&d);
}

/* An emulated VM that connects and disconnects again and again (a guest process that reopens
 * its port, as fast as it can): every connect works, and every one of them can share. */
TEST(vm_reconnects_1000_times)
{
	struct hbt_daemon d;
	struct hb_client *host, *c;
	struct hb_buffer *b;
	int failures = 0, first_errno = 0;

	hbt_daemon_start(&d, NULL);
	host = IT_CONNECT(hbt_addr_host(&d));
	for (int i = 0; i < 1000; i++) {
		c = hb_connect(hbt_addr_vm(&d, 1));
		if (!c) {
			if (!failures++)
				first_errno = errno;
			continue;
		}
		/* Every tenth one shares with the host, so its pool is really attached. */
		if (i % 10 == 0) {
			b = hb_buffer_alloc(c, 0, 4096, 0);
			CHECK(b != NULL);
			hb_buffer_free(b);
		}
		hb_disconnect(c);
	}
	if (failures)
		fprintf(stderr, "%d of 1000 connects failed, the first with %s\n", failures,
			strerror(first_errno));
	CHECK_EQ(failures, 0);
	hb_disconnect(host);
	IT_STOP(&d);
}

#define HAS(text, needle)                                                                          \
	do {                                                                                       \
		if (!strstr((text), (needle)))                                                     \
			hbt_fail(__FILE__, __LINE__, "\"%s\" lacks \"%s\"", (text), (needle));     \
	} while (0)

/* A failed hb_connect says which address, and what to check; a bare path is unix:. */
TEST(connect_explains)
{
	struct hbt_daemon d;
	struct hb_client *c;
	char addr[400];

	CHECK_ERR(hb_connect("unix:/nonexistent-hyperbuf-dir/x.sock"), ENOENT);
	HAS(hb_strerror(NULL), "unix:/nonexistent-hyperbuf-dir/x.sock");
	HAS(hb_strerror(NULL), "is hyperbufd running");
	CHECK_ERR(hb_connect("bogus"), EINVAL);
	HAS(hb_strerror(NULL), "'bogus' is not a hyperbuf address");
	/* Words kept for another errno are never shown for this one. */
	errno = EAGAIN;
	CHECK(strcmp(hb_strerror(NULL), strerror(EAGAIN)) == 0);

	hbt_daemon_start(&d, NULL);
	/* HYPERBUF_ADDRESS with a bare path, as people write it. */
	setenv("HYPERBUF_ADDRESS", d.socket, 1);
	c = hb_connect(NULL);
	CHECK(c != NULL);
	CHECK_EQ(hb_self_domain(c), 0);
	hb_disconnect(c);
	unsetenv("HYPERBUF_ADDRESS");
	c = hb_connect(d.socket);
	CHECK(c != NULL);
	hb_disconnect(c);

	/* A client on the control socket: the daemon says whose socket it is. */
	snprintf(addr, sizeof(addr), "unix:%s", hbt_path(&d, "host-control.sock"));
	CHECK_ERR(hb_connect(addr), EPERM);
	HAS(hb_strerror(NULL), addr);
	HAS(hb_strerror(NULL), "control socket, for hyperbufctl");
	IT_STOP(&d);
}

/* A refused request carries the daemon's words; the library's own refusals name the limit. */
TEST(calls_explain)
{
	static uint8_t meta[2048];
	struct hbt_daemon d;
	struct hb_client *v1, *host;
	struct hb_buffer *b;
	struct hb_id id;

	hbt_daemon_start(&d, "[limits]\nmeta_max = 1024\n");
	host = IT_CONNECT(hbt_addr_host(&d));
	errno = 0;
	CHECK(hb_buffer_alloc(host, 9, 4096, 0) == NULL);
	CHECK_EQ(errno, ENODEV);
	HAS(hb_strerror(host), "no domain 9");
	HAS(hb_strerror(host), "vm1 (1)"); /* the VMs the config does have */

	v1 = IT_CONNECT(hbt_addr_vm(&d, 1));
	b = IT_ALLOC(v1, 2, 4096, 0);
	CHECK_EQ(hb_export(b, meta, sizeof(meta), 0, &id), -1);
	CHECK_EQ(errno, EMSGSIZE);
	HAS(hb_strerror(v1), "metadata of 2048 bytes");
	HAS(hb_strerror(v1), "meta_max of 1024 bytes");
	/* The next call that succeeds leaves no words behind. */
	CHECK_EQ(hb_export(b, meta, 16, 0, &id), 0);
	errno = EMSGSIZE;
	CHECK(strcmp(hb_strerror(v1), strerror(EMSGSIZE)) == 0);
	hb_buffer_free(b);
	it_drain(v1);
	hb_disconnect(v1);
	hb_disconnect(host);
	IT_STOP(&d);
}

/* HYPERBUF_DEBUG=1 traces every frame by its message's name (this case's process is fresh:
 * the library reads the variable at its first hb_connect). */
TEST(debug_traces_messages)
{
	char path[] = "/tmp/hbit-trace.XXXXXX";
	struct hbt_daemon d;
	struct hb_client *v1;
	struct hb_buffer *b;
	struct hb_id id;
	int fd, saved;

	hbt_daemon_start(&d, NULL);
	fd = mkstemp(path);
	CHECK(fd >= 0);
	saved = dup(STDERR_FILENO);
	CHECK(saved >= 0);
	setenv("HYPERBUF_DEBUG", "1", 1);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	v1 = hb_connect(hbt_addr_vm(&d, 1));
	b = v1 ? hb_buffer_alloc(v1, 2, 4096, 0) : NULL;
	if (b)
		hb_export(b, "m", 1, 0, &id);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	unsetenv("HYPERBUF_DEBUG");
	CHECK(v1 != NULL && b != NULL);
	CHECK(it_file_has(path, "-> Hello #"));
	CHECK(it_file_has(path, "<- Welcome #"));
	CHECK(it_file_has(path, "-> Alloc #"));
	CHECK(it_file_has(path, "<- AllocReply #"));
	CHECK(it_file_has(path, "-> Export #"));
	CHECK(it_file_has(path, "<- ExportReply #"));
	unlink(path);
	hb_buffer_free(b);
	it_drain(v1);
	hb_disconnect(v1);
	IT_STOP(&d);
}
