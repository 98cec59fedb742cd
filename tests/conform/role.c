/*
 * The role side of the conformance suite (tests/conform/conform.h): the case table, the
 * server loop each domain runs (on the host, or in a guest), the side channel a role speaks to
 * the hub, and the checks and helpers of role code. Linked into the host targets (sanitized)
 * and into the guest program (static): nothing here knows where it runs.
 *
 * The stream to the hub carries text lines (tests/conform/hub.c has the other end):
 *   server -> hub  HELLO <domain> | END <case> <status> (the role's exit status; 128+N: signal)
 *   hub -> server  ENV NAME=VALUE | RUN <case> <role index> | QUIT
 *   role -> hub    PUT <key> <value> | GET <key> | BARRIER <name> | STAT <key> | FAIL <message>
 *   hub -> role    VAL <value> | GO | ABORT (another role of the case failed)
 * A role runs in a child of the server and uses the server's stream while the server waits
 * for it; lines are read a byte at a time, so neither reads what is the other's.
 */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/conform/conform.h"
#include "tests/raw_wire.h"
#include "tools/pattern.h"

#define CF_MAX_CASES   256
#define CF_MAX_CLIENTS 8
#define CF_LINE_MAX    512
/* A role that has not ended by then is killed: the case fails, the next one can run. */
#define CF_ROLE_LIMIT_S 120

static const struct cf_case *table[CF_MAX_CASES];
static unsigned n_table;

void cf_register(const struct cf_case *c)
{
	if (n_table >= CF_MAX_CASES) {
		fprintf(stderr, "conform: more than %d cases, %s dropped\n", CF_MAX_CASES, c->name);
		abort();
	}
	table[n_table++] = c;
}

const struct cf_case *cf_case_at(unsigned i)
{
	return i < n_table ? table[i] : NULL;
}

const struct cf_case *cf_case_find(const char *name)
{
	for (unsigned i = 0; i < n_table; i++) {
		if (strcmp(table[i]->name, name) == 0)
			return table[i];
	}
	return NULL;
}

/* ---- the stream ---------------------------------------------------------------------------- */

static int hub_fd = -1;
static uint32_t my_domain;
static const char *my_address;
static const char *my_case = "?";
static struct hb_client *clients[CF_MAX_CLIENTS];

static int send_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int send_line(int fd, const char *fmt, ...)
{
	char line[CF_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	/* One line each: a message with a newline in it would be two. */
	for (int i = 0; i < n; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[n] = '\n';
	return hbw_send_all(fd, line, (size_t)n + 1, CF_WAIT_MS);
}

/* One line, without its newline: 0, or -1 on EOF or an error. */
static int read_line(int fd, char *line, size_t cap)
{
	size_t n = 0;

	for (;;) {
		char ch;
		ssize_t r = read(fd, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (ch == '\n')
			break;
		if (ch != '\r' && n + 1 < cap)
			line[n++] = ch;
	}
	line[n] = '\0';
	return 0;
}

/* ---- inside a role ------------------------------------------------------------------------ */

uint32_t cf_domain(void)
{
	return my_domain;
}

const char *cf_case_name(void)
{
	return my_case;
}

const char *cf_env(const char *name)
{
	return getenv(name);
}

const char *cf_address(void)
{
	return my_address;
}

/* Ends the role's sessions. A process that just exits is not enough in a KVM guest: its
 * session lasts until the next process opens the port (docs/KVM.md), and would be left over
 * into the next case. */
static void disconnect_all(void)
{
	for (int i = 0; i < CF_MAX_CLIENTS; i++) {
		if (clients[i])
			hb_disconnect(clients[i]);
		clients[i] = NULL;
	}
}

void cf_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[CF_LINE_MAX - 64];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "domain %u: %s:%d: ", my_domain, file, line);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "FAIL %s: %s\n", my_case, msg);
	if (hub_fd >= 0)
		send_line(hub_fd, "FAIL %s", msg);
	disconnect_all();
	/* _exit: a failed role is over; leak reports about what it held would only bury the
	 * message above. */
	_exit(1);
}

struct hb_client *cf_connect(void)
{
	struct hb_client *c = NULL;

	for (int i = 0; i < CF_MAX_CLIENTS; i++) {
		if (clients[i])
			continue;
		c = hb_connect(my_address);
		if (!c)
			cf_fail(__FILE__, __LINE__, "hb_connect(%s): %s",
				my_address ? my_address : "default", strerror(errno));
		clients[i] = c;
		return c;
	}
	cf_fail(__FILE__, __LINE__, "more than %d clients in one role", CF_MAX_CLIENTS);
}

struct hb_client *cf_connect_waits(void)
{
	const char *was = getenv("HYPERBUF_SIGNALS");
	char *saved = was ? strdup(was) : NULL;
	struct hb_client *c;

	/* Read once, when the client is made. */
	setenv("HYPERBUF_SIGNALS", "awaited", 1);
	c = cf_connect();
	if (saved)
		setenv("HYPERBUF_SIGNALS", saved, 1);
	else
		unsetenv("HYPERBUF_SIGNALS");
	free(saved);
	return c;
}

static const char *hub_call(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *hub_call(const char *what, const char *fmt, ...)
{
	static char reply[CF_LINE_MAX];
	char line[CF_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (send_line(hub_fd, "%s", line) != 0 || read_line(hub_fd, reply, sizeof(reply)) != 0)
		cf_fail(__FILE__, __LINE__, "%s: the hub is gone", what);
	if (strcmp(reply, "ABORT") == 0) {
		/* Not this role's failure: the hub already has the one that failed. */
		send_line(hub_fd, "FAIL domain %u: aborted at %s (another role failed)", my_domain,
			  what);
		disconnect_all();
		_exit(2);
	}
	return reply;
}

void cf_put(const char *key, const char *fmt, ...)
{
	char val[CF_VAL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (strpbrk(key, " \n") || strchr(val, '\n') || strlen(key) >= CF_KEY_MAX)
		cf_fail(__FILE__, __LINE__, "bad side-channel key %s", key);
	if (strcmp(hub_call(key, "PUT %s %s", key, val), "GO") != 0)
		cf_fail(__FILE__, __LINE__, "put %s refused (set twice, or more than 512 keys)",
			key);
}

const char *cf_get(const char *key)
{
	const char *r = hub_call(key, "GET %s", key);

	if (strncmp(r, "VAL ", 4) != 0)
		cf_fail(__FILE__, __LINE__, "get %s: %s", key, r);
	return r + 4;
}

void cf_put_u64(const char *key, uint64_t v)
{
	cf_put(key, "%llu", (unsigned long long)v);
}

uint64_t cf_get_u64(const char *key)
{
	return strtoull(cf_get(key), NULL, 10);
}

void cf_put_id(const char *key, const struct hb_id *id)
{
	char text[33];

	CHECK_EQ(hb_id_format(id, text), 0);
	cf_put(key, "%s", text);
}

void cf_get_id(const char *key, struct hb_id *id)
{
	CHECK_EQ(hb_id_parse(cf_get(key), id), 0);
}

long long cf_stat(const char *key)
{
	const char *r = hub_call(key, "STAT %s", key);
	long long v;

	if (sscanf(r, "VAL %lld", &v) != 1 || v < 0)
		cf_fail(__FILE__, __LINE__, "the daemon has no statistic %s", key);
	return v;
}

void cf_barrier(const char *name)
{
	if (strcmp(hub_call(name, "BARRIER %s", name), "GO") != 0)
		cf_fail(__FILE__, __LINE__, "barrier %s refused", name);
}

/* ---- the server loop ---------------------------------------------------------------------- */

static void run_role(const struct cf_case *c, unsigned idx)
{
	my_case = c->name;
	signal(SIGPIPE, SIG_IGN);
	c->roles[idx].fn();
	disconnect_all();
}

/* Waits for the role's child, killing it after CF_ROLE_LIMIT_S: its exit status, 128+N for a
 * signal. */
static int wait_role(pid_t pid)
{
	struct timespec t0, now;
	int status;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return 255;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > CF_ROLE_LIMIT_S)
			kill(pid, SIGKILL);
		cf_sleep_ms(10);
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* A role that died may have left its session behind (a guest's port keeps it until the next
 * process opens the port): open and close it, in a child, so that the server itself never
 * starts the library: each role's first hb_connect must be its process's first (the library
 * reads HYPERBUF_DEBUG once per process). */
static void reset_session(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct hb_client *reset = hb_connect(my_address);

		if (reset)
			hb_disconnect(reset);
		_exit(0);
	}
	if (pid > 0)
		wait_role(pid);
}

static int start_role(int fd, const char *name, unsigned idx)
{
	const struct cf_case *c = cf_case_find(name);
	int status;
	pid_t pid;

	if (!c || idx >= CF_MAX_ROLES || !c->roles[idx].fn)
		return send_line(fd, "END %s 254", name);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return send_line(fd, "END %s 253", name);
	if (pid == 0) {
		run_role(c, idx);
		fflush(stdout);
		fflush(stderr);
		exit(0);
	}
	status = wait_role(pid);
	if (status != 0)
		reset_session();
	return send_line(fd, "END %s %d", name, status);
}

int cf_serve(int fd, uint32_t domain, const char *address)
{
	char line[CF_LINE_MAX];

	hub_fd = fd;
	my_domain = domain;
	my_address = address;
	if (send_line(fd, "HELLO %u", domain) != 0)
		return -1;
	while (read_line(fd, line, sizeof(line)) == 0) {
		char name[128];
		unsigned idx;

		if (strcmp(line, "QUIT") == 0)
			return 0;
		if (strncmp(line, "ENV ", 4) == 0) {
			char *eq = strchr(line + 4, '=');

			if (eq) {
				*eq = '\0';
				setenv(line + 4, eq + 1, 1);
			}
		} else if (sscanf(line, "RUN %127s %u", name, &idx) == 2) {
			if (start_role(fd, name, idx) != 0)
				return -1;
		}
	}
	return -1;
}
