/*
 * Integration-test helpers (tests/util.h): a real hyperbufd in a private temp folder (started
 * and stopped by tools/spawn.c, as the demo and the bench start theirs), the hyperbufctl CLI,
 * child processes, event waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hyperbuf.h"
#include "tests/harness.h"
#include "tests/util.h"
#include "tools/spawn.h"

#define SLOTS           8
#define SLOT_LEN        1024
#define STOP_TIMEOUT_MS 10000
#define CTL_MAX_ARGS    32
#define MAX_DAEMONS     16

/* A sanitized hyperbufd in a Xen dom0 under TCG, on a loaded host, has taken over 10 s to say
 * READY=1 (the conformance hub starts one per config variant there): only a failing start
 * waits this long. */
#define START_TIMEOUT_MS 30000

/* Rotating static buffers, so several helpers can be used in one expression (per thread). */
static __thread char slot_buf[SLOTS][SLOT_LEN];
static __thread unsigned slot_next;

static char *slot(void)
{
	return slot_buf[slot_next++ % SLOTS];
}

static const char *slot_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *slot_printf(const char *fmt, ...)
{
	char *s = slot();
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s, SLOT_LEN, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= SLOT_LEN)
		hbt_fail(__FILE__, __LINE__, "path too long: %s...", s);
	return s;
}

uint64_t hbt_now_ms(void)
{
	return tool_now_ns() / 1000000u;
}

/* The build a test program belongs to: B/tests/test_X runs B's daemon and tools, so that a
 * case run by hand (without HB_BUILD) never meets another build's older daemon. */
static const char *own_build_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n;
	char *slash;

	if (dir[0])
		return dir;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	dir[n > 0 ? n : 0] = '\0';
	slash = strrchr(dir, '/');
	if (slash && slash - dir >= 6 && strncmp(slash - 6, "/tests", 6) == 0)
		slash[-6] = '\0';
	else
		snprintf(dir, sizeof(dir), "build");
	return dir;
}

const char *hbt_build_dir(void)
{
	const char *b = getenv("HB_BUILD");

	return b && *b ? b : own_build_dir();
}

const char *hbt_prog(const char *name)
{
	return slot_printf("%s/%s", hbt_build_dir(), name);
}

const char *hbt_addr_host(const struct hbt_daemon *d)
{
	return slot_printf("unix:%s", d->socket);
}

const char *hbt_addr_vm(const struct hbt_daemon *d, int n)
{
	return slot_printf("vm:%s/vm%d.sock", d->dir, n);
}

const char *hbt_path(const struct hbt_daemon *d, const char *name)
{
	return slot_printf("%s/%s", d->dir, name);
}

/* ---- daemons a failing case leaves behind ------------------------------------------------ */

/*
 * Called by the harness (weak reference in tests/harness.c) when a case fails or skips: stops
 * the daemons this process started and removes their folders. A child made by hbt_fork
 * inherits the table but not the daemons, hence the owner check.
 */
static struct {
	pid_t owner;
	struct hbt_daemon *d;
} live[MAX_DAEMONS];

static void live_add(struct hbt_daemon *d)
{
	int i;

	for (i = 0; i < MAX_DAEMONS; i++) {
		if (!live[i].d) {
			live[i].owner = getpid();
			live[i].d = d;
			return;
		}
	}
}

static void live_del(struct hbt_daemon *d)
{
	int i;

	for (i = 0; i < MAX_DAEMONS; i++) {
		if (live[i].d == d)
			live[i].d = NULL;
	}
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* SIGKILL, reap, and close the notify socket: for a daemon whose end no longer matters. */
static void kill_daemon(struct hbt_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	if (d->spawn.notify_fd >= 0) {
		close(d->spawn.notify_fd);
		d->spawn.notify_fd = -1;
	}
}

void (*hbt_cleanup_extra)(void);

void hbt_cleanup_hook(void);
void hbt_cleanup_hook(void)
{
	pid_t self = getpid();
	int i;

	if (hbt_cleanup_extra) {
		void (*extra)(void) = hbt_cleanup_extra;

		hbt_cleanup_extra = NULL;
		extra();
	}

	for (i = 0; i < MAX_DAEMONS; i++) {
		struct hbt_daemon *d = live[i].d;

		if (!d || live[i].owner != self)
			continue;
		live[i].d = NULL;
		kill_daemon(d);
		rm_rf(d->dir);
	}
}

/* ---- starting and stopping ---------------------------------------------------------------- */

static void print_log(const struct hbt_daemon *d)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(d->log, "r");

	fflush(stdout);
	fprintf(stderr, "---- %s ----\n", d->log);
	if (!f) {
		fprintf(stderr, "(no log: %s)\n", strerror(errno));
		return;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
	fprintf(stderr, "---- end of log ----\n");
	fflush(stderr);
}

static int status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

static void make_dir(struct hbt_daemon *d)
{
	const char *tmp = getenv("TMPDIR");

	/* sun_path is 108 bytes and the daemon's sockets live in this folder: a long $TMPDIR
	 * would push them over, so fall back to /tmp. */
	if (!tmp || !*tmp || strlen(tmp) > 48)
		tmp = "/tmp";
	memset(d, 0, sizeof(*d));
	d->spawn.pid = -1;
	d->spawn.notify_fd = -1;
	snprintf(d->dir, sizeof(d->dir), "%s/hbt.XXXXXX", tmp);
	if (!mkdtemp(d->dir)) {
		d->dir[0] = '\0';
		hbt_fail(__FILE__, __LINE__, "mkdtemp in %s: %s", tmp, strerror(errno));
	}
	snprintf(d->config, sizeof(d->config), "%s/hyperbufd.conf", d->dir);
	snprintf(d->socket, sizeof(d->socket), "%s/host.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/hyperbufd.log", d->dir);
}

/* Writes text to d->config with every "%s" replaced by d->dir. */
static void write_config(struct hbt_daemon *d, const char *text, const char *extra)
{
	FILE *f = fopen(d->config, "w");
	const char *p;

	if (!f)
		goto err;
	for (p = text; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			fputs(d->dir, f);
			p++;
		} else {
			fputc(*p, f);
		}
	}
	if (extra) {
		fputc('\n', f);
		fputs(extra, f);
		fputc('\n', f);
	}
	if (fclose(f) != 0)
		goto err;
	return;
err:
	rm_rf(d->dir);
	hbt_fail(__FILE__, __LINE__, "writing %s: %s", d->config, strerror(errno));
}

static const char standard_topology[] = HBT_TOPOLOGY;

/*
 * Starts hyperbufd on d->config (already written) and waits until it says READY=1 on
 * DIR/notify.sock, as systemd would. Its output goes to d->log, appended to (a restart keeps
 * the first run's lines), and it gets SIGTERM if this test dies.
 */
static void launch(struct hbt_daemon *d)
{
	const char *prog = hbt_prog("hyperbufd");
	char notify[300], why[512];
	struct tool_daemon_opts opts = {
	    .notify_path = notify, .log_append = 1, .tied = 1, .why = why, .why_len = sizeof(why)};

	if (d->held)
		opts.holder = hbt_prog("tests/hbholder");
	if (access(prog, X_OK) < 0) {
		rm_rf(d->dir);
		hbt_fail(__FILE__, __LINE__, "%s: %s (set HB_BUILD?)", prog, strerror(errno));
	}
	snprintf(notify, sizeof(notify), "%s/notify.sock", d->dir);
	d->pid = tool_daemon_start(prog, d->config, d->log, START_TIMEOUT_MS, &opts, &d->spawn);
	if (d->pid < 0) {
		d->pid = 0;
		print_log(d);
		rm_rf(d->dir);
		hbt_fail(__FILE__, __LINE__, "%s", why);
	}
	live_add(d);
}

void hbt_daemon_start_config(struct hbt_daemon *d, const char *config_text)
{
	make_dir(d);
	write_config(d, config_text, NULL);
	launch(d);
}

void hbt_daemon_start_held(struct hbt_daemon *d, const char *config_text)
{
	make_dir(d);
	d->held = true;
	write_config(d, config_text ? config_text : standard_topology, NULL);
	launch(d);
}

void hbt_daemon_start_held_extra(struct hbt_daemon *d, const char *extra)
{
	make_dir(d);
	d->held = true;
	write_config(d, standard_topology, extra);
	launch(d);
}

void hbt_daemon_crash(struct hbt_daemon *d)
{
	pid_t old = d->spawn.main_pid;

	if (!d->held || old <= 0 || old == d->pid)
		hbt_fail(__FILE__, __LINE__, "hbt_daemon_crash needs a daemon under the holder");
	if (kill(old, SIGKILL) < 0)
		hbt_fail(__FILE__, __LINE__, "kill %d: %s", (int)old, strerror(errno));
	if (tool_daemon_wait_ready(&d->spawn, START_TIMEOUT_MS) < 0 || d->spawn.main_pid == old) {
		print_log(d);
		hbt_fail(__FILE__, __LINE__, "hyperbufd did not come back after SIGKILL");
	}
}

int hbt_daemon_reexec(struct hbt_daemon *d)
{
	if (kill(d->spawn.main_pid, SIGUSR2) < 0)
		return -errno;
	return tool_daemon_wait_ready(&d->spawn, START_TIMEOUT_MS);
}

void hbt_daemon_start(struct hbt_daemon *d, const char *extra)
{
	/* extra is appended verbatim: only a whole config of the caller's gets "%s" replaced. */
	make_dir(d);
	write_config(d, standard_topology, extra);
	launch(d);
}

/* SIGTERM and the exit status; the folder stays. */
static int stop_process(struct hbt_daemon *d)
{
	int status = -1, code;

	live_del(d);
	if (d->pid <= 0)
		return -1;
	/* 0: it exited; 1: it ignored SIGTERM and was killed; < 0: it could not be waited for. */
	if (tool_daemon_stop(&d->spawn, STOP_TIMEOUT_MS, &status) != 0) {
		fprintf(stderr, "hyperbufd (pid %d) ignored SIGTERM for 10 s: killed\n",
			(int)d->pid);
		code = 128 + SIGKILL;
	} else {
		code = status_code(status);
	}
	d->pid = 0;
	if (code != 0) {
		fprintf(stderr, "hyperbufd exit status %d\n", code);
		print_log(d);
	}
	return code;
}

int hbt_daemon_stop(struct hbt_daemon *d)
{
	int code = stop_process(d);

	rm_rf(d->dir);
	return code;
}

int hbt_daemon_restart(struct hbt_daemon *d)
{
	int code = stop_process(d);

	launch(d);
	return code;
}

/* ---- hyperbufctl -------------------------------------------------------------------------- */

int hbt_ctl(const struct hbt_daemon *d, char *out, size_t outlen, const char *args)
{
	char *argv[CTL_MAX_ARGS + 4];
	char *copy, *tok, *save = NULL;
	const char *prog = hbt_prog("hyperbufctl");
	size_t used = 0;
	int pipefd[2], status, argc = 0;
	pid_t pid;

	if (out && outlen)
		out[0] = '\0';
	/* Split before forking: the child of a threaded test may not allocate. */
	copy = strdup(args ? args : "");
	if (!copy)
		hbt_fail(__FILE__, __LINE__, "out of memory");
	argv[argc++] = (char *)prog;
	argv[argc++] = "-s";
	argv[argc++] = (char *)d->socket;
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (argc >= CTL_MAX_ARGS + 3)
			hbt_fail(__FILE__, __LINE__, "hbt_ctl: too many arguments: %s", args);
		argv[argc++] = tok;
	}
	argv[argc] = NULL;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		hbt_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		hbt_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		execv(prog, argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	free(copy);

	/* Read everything, keeping what fits, so the child never blocks on a full pipe. */
	for (;;) {
		char buf[4096];
		ssize_t n = read(pipefd[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out && outlen > 1 && used < outlen - 1) {
			size_t take = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;

			memcpy(out + used, buf, take);
			used += take;
			out[used] = '\0';
		}
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			hbt_fail(__FILE__, __LINE__, "waitpid: %s", strerror(errno));
	}
	return status_code(status);
}

long long hbt_stat(const struct hbt_daemon *d, const char *key)
{
	size_t len = 256 * 1024, klen = strlen(key);
	char *out = malloc(len);
	long long value = -1;
	char *line, *save = NULL;

	if (!out)
		hbt_fail(__FILE__, __LINE__, "out of memory");
	if (hbt_ctl(d, out, len, "stats") != 0)
		goto out_free;
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *end;

		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, key, klen) != 0 || line[klen] != ':')
			continue;
		errno = 0;
		value = strtoll(line + klen + 1, &end, 10);
		if (errno || end == line + klen + 1)
			value = -1;
		break;
	}
out_free:
	free(out);
	return value;
}

/* ---- children and events ------------------------------------------------------------------ */

pid_t hbt_fork(int (*fn)(void *arg), void *arg)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		hbt_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* A child must not outlive a test that timed out. exit(), not _exit(): the leak
		 * checker looks at what the child did too. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		exit(fn(arg));
	}
	return pid;
}

int hbt_wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return status_code(status);
}

int hbt_wait_event(struct hb_client *c, int type, struct hb_event *ev, int timeout_ms)
{
	uint64_t deadline = hbt_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

	for (;;) {
		uint64_t now;

		while (hb_next_event(c, ev) == 0) {
			if ((int)ev->type == type)
				return 0;
		}
		now = hbt_now_ms();
		if (now >= deadline)
			return -1;
		if (hb_dispatch(c, (int)(deadline - now)) < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
	}
}

const char *hbt_daemon_log(const struct hbt_daemon *d)
{
	static char text[1 << 20];
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);

	if (fd >= 0)
		close(fd);
	text[n > 0 ? n : 0] = '\0';
	return text;
}
