/* The hub of the conformance suite: see hub.h; the stream's lines are in tests/conform/role.c. */
#include <fnmatch.h>
#include <sys/prctl.h>

#include "tests/conform/hub.h"
#include "tests/it_common.h"

/* A case whose roles have not all ended by then fails (the servers kill a role after 120 s). */
#define CF_CASE_LIMIT_MS 135000
/* How long the daemon may take to be back where it was after a case (sessions end as the
 * daemon reads the clients' goodbyes). */
#define CF_SETTLE_MS 20000
#define CF_MAX_KEYS  512
/* Room for the output of `hyperbufctl stats`. */
#define CF_STATS_MAX (64 * 1024)

struct cf_run {
	const struct cf_case *c;
	int nroles;
	int ended;
	char why[400];
	int n_keys;
	char key[CF_MAX_KEYS][64];
	char val[CF_MAX_KEYS][200];
	char barrier[64];
	int at_barrier;
};

static void say_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say_line(int fd, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n] = '\n';
	/* A peer that went away shows up as EOF on its next read. */
	(void)it_send_all(fd, line, (size_t)n + 1);
}

void cf_hub_init(struct cf_hub *h, const char *target, unsigned target_flag,
		 const struct hbt_daemon *d)
{
	memset(h, 0, sizeof(*h));
	h->target = target;
	h->target_flag = target_flag;
	h->d = d;
}

void cf_env_apply(void)
{
	const char *env = getenv("HB_CF_ENV");
	char *copy, *tok, *save = NULL;

	if (!env || !*env)
		return;
	copy = strdup(env);
	CHECK(copy != NULL);
	for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');

		CHECK(eq != NULL && eq != tok);
		*eq = '\0';
		CHECK_EQ(setenv(tok, eq + 1, 1), 0);
	}
	free(copy);
}

/* Passes $HB_CF_ENV on to a server (a local one has it already, from us). */
static void send_env(int fd)
{
	const char *env = getenv("HB_CF_ENV");
	char *copy, *tok, *save = NULL;

	if (!env || !*env)
		return;
	copy = strdup(env);
	CHECK(copy != NULL);
	for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
		say_line(fd, "ENV %s", tok);
	/* And the list itself, for the case that checks every role got it (cases_self.c). */
	say_line(fd, "ENV HB_CF_ENV=%s", env);
	free(copy);
}

/* One line from a peer, waiting up to timeout_ms: 1, 0 on EOF, -1 on timeout. */
static int peer_line(struct cf_peer *p, char *line, size_t cap, int timeout_ms)
{
	uint64_t end = hbt_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
		uint64_t now = hbt_now_ms();
		ssize_t r;

		if (nl) {
			size_t n = (size_t)(nl - p->buf);

			snprintf(line, cap, "%.*s", (int)n, p->buf);
			line[strcspn(line, "\r")] = '\0';
			memmove(p->buf, nl + 1, p->len - n - 1);
			p->len -= n + 1;
			return 1;
		}
		if (p->len == sizeof(p->buf))
			p->len = 0; /* a line too long for us: not one of ours */
		if (poll(&pfd, 1, now >= end ? 0 : (int)(end - now)) == 0)
			return -1;
		r = read(p->fd, p->buf + p->len, sizeof(p->buf) - p->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		p->len += (size_t)r;
	}
}

static struct cf_peer *new_peer(struct cf_hub *h, int fd)
{
	struct cf_peer *p;

	CHECK(h->n_peers < CF_MAX_PEERS);
	p = &h->peer[h->n_peers++];
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	return p;
}

void cf_hub_local(struct cf_hub *h, uint32_t domain, const char *address)
{
	int sv[2];
	struct cf_peer *p;
	pid_t pid;

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* Dies with us, whatever kills us. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		for (int i = 0; i < h->n_peers; i++)
			close(h->peer[i].fd);
		exit(cf_serve(sv[1], domain, address) == 0 ? 0 : 3);
	}
	close(sv[1]);
	p = new_peer(h, sv[0]);
	p->pid = pid;
	cf_hub_add(h, -1, IT_WAIT_MS);
}

void cf_hub_add(struct cf_hub *h, int fd, int timeout_ms)
{
	struct cf_peer *p = fd < 0 ? &h->peer[h->n_peers - 1] : new_peer(h, fd);
	char line[200];
	unsigned dom;

	if (peer_line(p, line, sizeof(line), timeout_ms) != 1)
		hbt_fail(__FILE__, __LINE__, "%s: no HELLO from a server", h->target);
	if (sscanf(line, "HELLO %u", &dom) != 1)
		hbt_fail(__FILE__, __LINE__, "%s: a server said \"%s\", not HELLO", h->target,
			 line);
	p->domain = dom;
	if (!p->pid)
		send_env(p->fd);
}

/* ---- one case ------------------------------------------------------------------------------ */

static void case_fail(struct cf_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void case_fail(struct cf_run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->why[0])
		return; /* the first failure is the one that tells */
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

/* After a failure every waiting role is told, so that it ends now rather than at its limit. */
static void abort_waiters(struct cf_hub *h)
{
	for (int i = 0; i < h->n_peers; i++) {
		struct cf_peer *p = &h->peer[i];

		if (p->busy && p->wait) {
			p->wait = 0;
			say_line(p->fd, "ABORT");
		}
	}
}

static const char *find_key(const struct cf_run *r, const char *key)
{
	for (int i = 0; i < r->n_keys; i++) {
		if (strcmp(r->key[i], key) == 0)
			return r->val[i];
	}
	return NULL;
}

static void wake_getters(struct cf_hub *h, const char *key, const char *val)
{
	for (int i = 0; i < h->n_peers; i++) {
		struct cf_peer *p = &h->peer[i];

		if (p->busy && p->wait == 'G' && strcmp(p->want, key) == 0) {
			p->wait = 0;
			say_line(p->fd, "VAL %s", val);
		}
	}
}

static void on_put(struct cf_hub *h, struct cf_run *r, struct cf_peer *p, const char *rest)
{
	const char *sp = strchr(rest, ' ');
	size_t klen = sp ? (size_t)(sp - rest) : strlen(rest);

	if (klen == 0 || klen >= sizeof(r->key[0]) || r->n_keys == CF_MAX_KEYS) {
		say_line(p->fd, "NO");
		return;
	}
	snprintf(r->key[r->n_keys], sizeof(r->key[0]), "%.*s", (int)klen, rest);
	if (find_key(r, r->key[r->n_keys])) {
		say_line(p->fd, "NO");
		return;
	}
	snprintf(r->val[r->n_keys], sizeof(r->val[0]), "%s", sp ? sp + 1 : "");
	r->n_keys++;
	say_line(p->fd, "GO");
	wake_getters(h, r->key[r->n_keys - 1], r->val[r->n_keys - 1]);
}

static void on_barrier(struct cf_hub *h, struct cf_run *r, struct cf_peer *p, const char *name)
{
	if (r->at_barrier && strcmp(r->barrier, name) != 0) {
		case_fail(r, "domain %u: barrier %s while others wait at %s", p->domain, name,
			  r->barrier);
		say_line(p->fd, "ABORT");
		abort_waiters(h);
		return;
	}
	snprintf(r->barrier, sizeof(r->barrier), "%.63s", name);
	p->wait = 'B';
	if (++r->at_barrier < r->nroles)
		return;
	r->at_barrier = 0;
	for (int i = 0; i < h->n_peers; i++) {
		if (h->peer[i].busy && h->peer[i].wait == 'B') {
			h->peer[i].wait = 0;
			say_line(h->peer[i].fd, "GO");
		}
	}
}

static void on_line(struct cf_hub *h, struct cf_run *r, struct cf_peer *p, const char *line)
{
	char name[128];
	int status;

	if (strncmp(line, "PUT ", 4) == 0) {
		on_put(h, r, p, line + 4);
	} else if (strncmp(line, "GET ", 4) == 0) {
		const char *v = find_key(r, line + 4);

		if (r->why[0])
			say_line(p->fd, "ABORT");
		else if (v)
			say_line(p->fd, "VAL %s", v);
		else {
			p->wait = 'G';
			snprintf(p->want, sizeof(p->want), "%.63s", line + 4);
		}
	} else if (strncmp(line, "STAT ", 5) == 0) {
		/* The daemon's statistic, read on the host: a guest cannot ask it itself. */
		say_line(p->fd, "VAL %lld", hbt_stat(h->d, line + 5));
	} else if (strncmp(line, "BARRIER ", 8) == 0) {
		if (r->why[0])
			say_line(p->fd, "ABORT");
		else
			on_barrier(h, r, p, line + 8);
	} else if (strncmp(line, "FAIL ", 5) == 0) {
		case_fail(r, "%s", line + 5);
		abort_waiters(h);
	} else if (sscanf(line, "END %127s %d", name, &status) == 2) {
		p->busy = false;
		p->wait = 0;
		r->ended++;
		if (status != 0) {
			case_fail(r, "domain %u: the role exited with status %d", p->domain,
				  status);
			abort_waiters(h);
		}
	}
}

static struct cf_peer *peer_of(struct cf_hub *h, uint32_t domain)
{
	for (int i = 0; i < h->n_peers; i++) {
		if (h->peer[i].domain == domain && !h->peer[i].dead)
			return &h->peer[i];
	}
	return NULL;
}

/* Every role still running waits for something only another could give: the case cannot go
 * on (a role ended without setting a key or reaching a barrier). Says who waits for what. */
static bool deadlocked(const struct cf_hub *h, const struct cf_run *r, char *why, size_t len)
{
	size_t n = 0;
	int busy = 0;

	why[0] = '\0';
	for (int i = 0; i < h->n_peers; i++) {
		const struct cf_peer *p = &h->peer[i];

		if (!p->busy)
			continue;
		if (!p->wait)
			return false;
		busy++;
		if (n < len)
			n += (size_t)snprintf(why + n, len - n, " domain %u at %s %s", p->domain,
					      p->wait == 'G' ? "key" : "barrier",
					      p->wait == 'G' ? p->want : r->barrier);
	}
	return busy > 0;
}

/* Reads what the busy peers say until every role ended or the limit. */
static void pump(struct cf_hub *h, struct cf_run *r)
{
	uint64_t end = hbt_now_ms() + CF_CASE_LIMIT_MS;

	while (r->ended < r->nroles) {
		char line[600];
		bool any = false;

		for (int i = 0; i < h->n_peers; i++) {
			struct cf_peer *p = &h->peer[i];
			int got;

			if (!p->busy)
				continue;
			while ((got = peer_line(p, line, sizeof(line), 0)) == 1) {
				on_line(h, r, p, line);
				any = true;
			}
			if (got == 0) {
				p->dead = true;
				p->busy = false;
				r->ended++;
				case_fail(r, "domain %u: its server's stream closed", p->domain);
				abort_waiters(h);
			}
		}
		if (hbt_now_ms() > end) {
			case_fail(r, "timed out after %d ms", CF_CASE_LIMIT_MS);
			for (int i = 0; i < h->n_peers; i++) {
				if (h->peer[i].busy)
					h->peer[i].dead = true;
			}
			return;
		}
		if (any && !r->why[0]) {
			char who[300];

			if (deadlocked(h, r, who, sizeof(who))) {
				case_fail(r, "every role left waits:%s", who);
				abort_waiters(h);
			}
		}
		if (h->check)
			h->check(h->check_ctx);
		if (!any) {
			struct pollfd pfd[CF_MAX_PEERS];
			int n = 0;

			for (int i = 0; i < h->n_peers; i++) {
				if (h->peer[i].busy)
					pfd[n++] =
					    (struct pollfd){.fd = h->peer[i].fd, .events = POLLIN};
			}
			poll(pfd, (nfds_t)n, 100);
		}
	}
}

/* One `hyperbufctl stats`, or NULL: settle looks at several statistics at a time, and each
 * run of hyperbufctl costs (in a Xen dom0 under TCG, most of a second). */
static char *stats_read(const struct cf_hub *h)
{
	char *text = malloc(CF_STATS_MAX);

	CHECK(text != NULL);
	if (hbt_ctl(h->d, text, CF_STATS_MAX, "stats") != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* The value of its "key: value" line, or -1 (as hbt_stat). */
static long long stats_get(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		char *end;
		long long v;

		p += strspn(p, " \t");
		if (strncmp(p, key, klen) != 0 || p[klen] != ':')
			continue;
		errno = 0;
		v = strtoll(p + klen + 1, &end, 10);
		return errno || end == p + klen + 1 ? -1 : v;
	}
	return -1;
}

/* What the case left in the daemon, as " key=value" words; empty if nothing. *sessions is
 * the daemon's count (-1 if unread). */
static void leftovers(const struct cf_hub *h, char *left, size_t len, long long *sessions)
{
	static const char *const zero[] = {"buffers", "exports", "imports", "timelines",
					   "pages_used"};
	char *st = stats_read(h);
	size_t n = 0;

	left[0] = '\0';
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
		long long v = st ? stats_get(st, zero[i]) : -1;

		if (v != 0 && n < len)
			n += (size_t)snprintf(left + n, len - n, " %s=%lld", zero[i], v);
	}
	*sessions = st ? stats_get(st, "sessions") : -1;
	if (*sessions != h->base_sessions && n < len)
		snprintf(left + n, len - n, " sessions=%lld (was %lld)", *sessions,
			 h->base_sessions);
	free(st);
}

/* The daemon must be back where it was before the case: nothing of the case's left. After
 * a failed case (quiet) it only gets the time to be, and what is left is taken as the new
 * state, so that the next case is not blamed for it. */
static void settle(struct cf_hub *h, struct cf_run *r, bool quiet)
{
	uint64_t end = hbt_now_ms() + CF_SETTLE_MS;
	long long sessions;
	char left[200];

	for (;;) {
		leftovers(h, left, sizeof(left), &sessions);
		if (!left[0])
			return;
		if (hbt_now_ms() > end)
			break;
		it_sleep_ms(50);
	}
	if (quiet) {
		h->base_sessions = sessions;
		return;
	}
	case_fail(r, "the case left the daemon with%s", left);
}

static void report(struct cf_hub *h, const char *name, const char *what, const char *why)
{
	const char *path = getenv("HB_SUBRESULTS");
	FILE *f = path && *path ? fopen(path, "a") : NULL;

	if (strcmp(what, "ok") == 0) {
		printf("ok   %s\n", name);
		h->passed++;
	} else {
		printf("%s %s: %s\n", what, name, why);
		if (strcmp(what, "FAIL") == 0)
			h->failed++;
		else
			h->skipped++;
	}
	fflush(stdout);
	if (f) {
		fprintf(f, "%s %s%s%s\n", what, name, why ? ": " : "", why ? why : "");
		fclose(f);
	}
}

static void run_case(struct cf_hub *h, const struct cf_case *c)
{
	struct cf_run *r = calloc(1, sizeof(*r));

	CHECK(r != NULL);
	r->c = c;
	for (int i = 0; i < CF_MAX_ROLES && c->roles[i].fn; i++) {
		struct cf_peer *p = peer_of(h, c->roles[i].domain);

		if (!p || p->busy) {
			/* Only a bug in the table or a dead target gets here. */
			case_fail(r, "no free server for domain %u", c->roles[i].domain);
			break;
		}
		say_line(p->fd, "RUN %s %d", c->name, i);
		p->busy = true;
		p->wait = 0;
		r->nroles++;
	}
	if (r->nroles)
		pump(h, r);
	settle(h, r, r->why[0] != '\0');
	report(h, c->name, r->why[0] ? "FAIL" : "ok", r->why[0] ? r->why : NULL);
	free(r);
}

/* $HB_CF_CASES: globs separated by '|' or spaces (a space is a + on Xen's command line);
 * unset or empty, every case. */
static bool wanted(const char *only, const char *name)
{
	char glob[256];

	if (!only || !*only)
		return true;
	while (*only) {
		size_t n = strcspn(only, "| ");

		if (n > 0 && n < sizeof(glob)) {
			memcpy(glob, only, n);
			glob[n] = '\0';
			if (fnmatch(glob, name, 0) == 0)
				return true;
		}
		only += n;
		only += strspn(only, "| ");
	}
	return false;
}

/* The case runs in this run: h's variant, matching $HB_CF_CASES. */
static bool in_run(const struct cf_hub *h, const struct cf_case *c)
{
	if (!wanted(getenv("HB_CF_CASES"), c->name))
		return false;
	if (!c->variant || !h->variant)
		return c->variant == h->variant;
	return strcmp(c->variant, h->variant) == 0;
}

bool cf_hub_wants(const struct cf_hub *h)
{
	const struct cf_case *c;

	for (unsigned i = 0; (c = cf_case_at(i)) != NULL; i++) {
		if (in_run(h, c) && !(c->not_on & h->target_flag))
			return true;
	}
	return false;
}

void cf_hub_run(struct cf_hub *h)
{
	int passed = h->passed, failed = h->failed, skipped = h->skipped;
	const struct cf_case *c;
	bool based = false;

	for (unsigned i = 0; (c = cf_case_at(i)) != NULL; i++) {
		if (!in_run(h, c)) {
			/* A case of a variant nobody defined would never run: say so once. */
			if (!h->variant && c->variant && !cf_variant_find(c->variant))
				report(h, c->name, "FAIL",
				       "its config variant is not in variants.c");
			continue;
		}
		if (c->not_on & h->target_flag) {
			report(h, c->name, "SKIP", c->why_not);
			continue;
		}
		/* Only a run with a case to run has a daemon (a variant's may have none). */
		if (!based)
			h->base_sessions = IT_STAT(h->d, "sessions");
		based = true;
		run_case(h, c);
	}
	printf("%s%s%s%s: %d passed, %d failed, %d skipped\n", h->target, h->variant ? "[" : "",
	       h->variant ? h->variant : "", h->variant ? "]" : "", h->passed - passed,
	       h->failed - failed, h->skipped - skipped);
	fflush(stdout);
}

int cf_daemon_variant(struct hbt_daemon *d, const char *topology, const char *variant)
{
	const struct cf_variant *v = cf_variant_find(variant);
	FILE *f = fopen(d->config, "w");

	if (!v)
		hbt_fail(__FILE__, __LINE__, "no config variant %s", variant ? variant : "(null)");
	CHECK(f != NULL);
	CHECK(fprintf(f, "%s\n%s", topology, v->config) > 0);
	CHECK_EQ(fclose(f), 0);
	/* The same folder, so the same sockets: a server that connects by path goes on. */
	return hbt_daemon_restart(d);
}

void cf_hub_quit(struct cf_hub *h)
{
	for (int i = 0; i < h->n_peers; i++) {
		if (!h->peer[i].dead)
			say_line(h->peer[i].fd, "QUIT");
	}
	for (int i = 0; i < h->n_peers; i++) {
		struct cf_peer *p = &h->peer[i];

		if (p->pid > 0) {
			int code = hbt_wait_child(p->pid);

			if (code != 0)
				hbt_fail(__FILE__, __LINE__,
					 "%s: the server of domain %u exited %d", h->target,
					 p->domain, code);
		}
		close(p->fd);
	}
	h->n_peers = 0;
}
