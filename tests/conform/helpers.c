/* The checked calls and event waits of role code (tests/conform/conform.h). */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/conform/conform.h"
#include "tools/pattern.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cf_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *id_text(const struct hb_id *id)
{
	static char text[2][33];
	static unsigned n;
	char *t = text[n++ % 2];

	if (hb_id_format(id, t) != 0)
		snprintf(t, 33, "?");
	return t;
}

const char *cf_event_name(int type)
{
	static const char *const names[] = {"?",        "EXPORTED", "UNEXPORTED",
					    "IMPORTED", "RELEASED", "DOMAIN_GONE",
					    "FENCE",    "OVERFLOW", "RESTARTED"};

	return type > 0 && type < (int)(sizeof(names) / sizeof(names[0])) ? names[type] : "?";
}

struct hb_buffer *cf_alloc_at(const char *file, int line, struct hb_client *c, uint32_t peer,
			      size_t size, uint32_t flags)
{
	struct hb_buffer *b = hb_buffer_alloc(c, peer, size, flags);

	if (!b)
		cf_fail(file, line, "hb_buffer_alloc(peer %u, %zu, %#x): %s", peer, size, flags,
			strerror(errno));
	return b;
}

void cf_export_at(const char *file, int line, struct hb_buffer *b, const void *meta, size_t len,
		  struct hb_id *id)
{
	if (hb_export(b, meta, len, 0, id) != 0)
		cf_fail(file, line, "hb_export: %s", strerror(errno));
}

struct hb_import *cf_import_at(const char *file, int line, struct hb_client *c,
			       const struct hb_id *id, uint32_t flags)
{
	struct hb_import *im = hb_import(c, id, flags);

	if (!im)
		cf_fail(file, line, "hb_import(%s, %#x): %s", id_text(id), flags, strerror(errno));
	return im;
}

void cf_fill(void *p, size_t size, uint64_t seed)
{
	tool_pattern_fill(p, size, seed);
}

void cf_check_pattern_at(const char *file, int line, const void *p, size_t size, uint64_t seed)
{
	size_t at = tool_pattern_check(p, size, seed);

	if (at != size)
		cf_fail(file, line, "byte %zu of %zu differs from the pattern of seed %llu", at,
			size, (unsigned long long)seed);
}

int cf_next_event_at(const char *file, int line, struct hb_client *c, struct hb_event *ev, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	for (;;) {
		uint64_t now;

		if (hb_next_event(c, ev) == 0)
			return 0;
		if (errno != EAGAIN)
			cf_fail(file, line, "hb_next_event: %s", strerror(errno));
		now = now_ms();
		if (now >= end)
			return -1;
		if (hb_dispatch(c, (int)(end - now)) < 0)
			cf_fail(file, line, "hb_dispatch: %s", strerror(errno));
	}
}

void cf_expect_event_at(const char *file, int line, struct hb_client *c, int type,
			struct hb_event *ev)
{
	if (cf_next_event_at(file, line, c, ev, CF_WAIT_MS) != 0)
		cf_fail(file, line, "no %s event within %d ms", cf_event_name(type), CF_WAIT_MS);
	if ((int)ev->type != type)
		cf_fail(file, line, "next event is %s (domain %u, id %s), want %s",
			cf_event_name(ev->type), ev->domain, id_text(&ev->id), cf_event_name(type));
}

void cf_wait_event_at(const char *file, int line, struct hb_client *c, int type,
		      struct hb_event *ev)
{
	uint64_t end = now_ms() + CF_WAIT_MS;

	for (;;) {
		uint64_t now = now_ms();

		if (cf_next_event_at(file, line, c, ev, now >= end ? 0 : (int)(end - now)) != 0)
			cf_fail(file, line, "no %s event within %d ms", cf_event_name(type),
				CF_WAIT_MS);
		if ((int)ev->type == type)
			return;
	}
}

void cf_expect_quiet_at(const char *file, int line, struct hb_client *c, int ms)
{
	struct hb_event ev;

	if (cf_next_event_at(file, line, c, &ev, ms) == 0)
		cf_fail(file, line, "unexpected %s event (domain %u, id %s)",
			cf_event_name(ev.type), ev.domain, id_text(&ev.id));
}

void cf_drain(struct hb_client *c)
{
	struct hb_event ev;

	while (hb_dispatch(c, 100) > 0)
		;
	while (hb_next_event(c, &ev) == 0)
		;
}

struct hb_timeline *cf_timeline_for(struct hb_client *c, const char *key)
{
	struct hb_timeline *t = hb_timeline_create(c);

	if (!t)
		cf_fail(__FILE__, __LINE__, "hb_timeline_create: %s", strerror(errno));
	for (uint32_t dom = 0; dom <= 2; dom++) {
		if (dom != cf_domain() && hb_timeline_share(t, dom) != 0)
			cf_fail(__FILE__, __LINE__, "hb_timeline_share(%u): %s", dom,
				strerror(errno));
	}
	cf_put_u64(key, hb_timeline_id(t));
	return t;
}

struct hb_sync *cf_sync_open_at(const char *file, int line, struct hb_client *c, uint64_t tl,
				uint64_t value)
{
	struct hb_fence f = {.timeline = tl, .value = value};
	struct hb_sync *s = hb_sync_open(c, &f);

	if (!s)
		cf_fail(file, line, "hb_sync_open(%llu): %s", (unsigned long long)value,
			strerror(errno));
	return s;
}

struct hb_sync *cf_merge_at(const char *file, int line, struct hb_sync *a, struct hb_sync *b)
{
	struct hb_sync *m = hb_sync_merge(a, b);

	if (!m)
		cf_fail(file, line, "hb_sync_merge: %s", strerror(errno));
	return m;
}

void cf_wait_done_at(const char *file, int line, struct hb_sync *s)
{
	if (hb_sync_wait(s, CF_WAIT_MS) != 0)
		cf_fail(file, line, "hb_sync_wait: %s", strerror(errno));
}

void cf_reached_at(const char *file, int line, struct hb_client *c, uint64_t tl, uint64_t v)
{
	struct hb_sync *s = cf_sync_open_at(file, line, c, tl, v);

	cf_wait_done_at(file, line, s);
	hb_sync_close(s);
}

bool cf_fd_ready(const struct hb_sync *s)
{
	struct pollfd p = {.fd = hb_sync_fd(s), .events = POLLIN};

	return poll(&p, 1, 0) == 1;
}

void cf_stat_becomes_at(const char *file, int line, const char *key, long long want)
{
	uint64_t end = now_ms() + CF_WAIT_MS;
	long long v;

	while ((v = cf_stat(key)) != want) {
		if (now_ms() > end)
			cf_fail(file, line, "%s is %lld, want %lld", key, v, want);
		cf_sleep_ms(50); /* polling a value, not waiting for an event */
	}
}

/* Runs fn(arg) in a child of the role, which then waits to be killed; returns once the child
 * wrote a byte on its pipe (fn's "ready"). */
pid_t cf_victim_start(void (*fn)(void *), void *arg)
{
	int pfd[2];
	pid_t pid;
	char ok;

	CHECK(pipe(pfd) == 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		fn(arg);
		if (write(pfd[1], "K", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(pfd[1]);
	CHECK_EQ(read(pfd[0], &ok, 1), 1);
	close(pfd[0]);
	return pid;
}

/* SIGKILLs the child and reaps it; then connects, which in a KVM guest ends the dead
 * process's session. */
struct hb_client *cf_victim_kill(pid_t pid)
{
	int status;

	CHECK_EQ(kill(pid, SIGKILL), 0);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	return cf_connect();
}
