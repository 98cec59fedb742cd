/*
 * Process plumbing for the demo, the benchmarks and the tests (see spawn.h). Messages go to
 * stderr, prefixed with the program's name as it was started.
 */
#include "tools/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

uint64_t tool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* now + ms, in tool_now_ns terms; a negative ms is now. */
static uint64_t deadline_in(int timeout_ms)
{
	return tool_now_ns() + (timeout_ms > 0 ? (uint64_t)timeout_ms * 1000000u : 0);
}

int tool_ms_left(uint64_t deadline)
{
	uint64_t now = tool_now_ns();

	return now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
}

int tool_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = deadline_in(timeout_ms);
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint64_t now = tool_now_ns();
		ssize_t n;
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		got += (size_t)n;
	}
	return 0;
}

int tool_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

pid_t tool_fork_call(int (*fn)(const void *arg), const void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	/* exit, not _exit: stdio was flushed before the fork, and under ASan the leak check runs
	 * at exit. */
	if (pid == 0)
		exit(fn(arg));
	return pid;
}

int tool_wait_pid(pid_t pid, int timeout_ms, int *status)
{
	uint64_t deadline = deadline_in(timeout_ms);
	int killed = 0;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return killed;
		if (r < 0 && errno != EINTR) {
			*status = -1;
			return -errno;
		}
		if (!killed && tool_now_ns() >= deadline) {
			kill(pid, SIGKILL);
			killed = 1;
		}
		usleep(5000);
	}
}

void tool_describe_status(int status, char *out, size_t len)
{
	if (status < 0)
		snprintf(out, len, "unknown");
	else if (WIFEXITED(status))
		snprintf(out, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, len, "status 0x%x", status);
}

/* True if a notify datagram (newline-separated assignments) says READY=1 anywhere in it. */
/* Whether a notify datagram says READY=1; a MAINPID= in it (from a holder standing in for
 * systemd: the daemon's own pid) goes to *main_pid. */
static int says_ready(char *msg, pid_t *main_pid)
{
	char *save;
	int ready = 0;

	for (char *line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "READY=1") == 0)
			ready = 1;
		else if (strncmp(line, "MAINPID=", 8) == 0 && main_pid)
			*main_pid = (pid_t)strtol(line + 8, NULL, 10);
	}
	return ready;
}

/* A failure's reason: on stderr after the program's name, or, if opts->why is set, appended
 * to it ("; " between two). */
static void say(const struct tool_daemon_opts *opts, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(const struct tool_daemon_opts *opts, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (opts->why && opts->why_len) {
		size_t used = strlen(opts->why);

		if (used && used + 2 < opts->why_len) {
			memcpy(opts->why + used, "; ", 3);
			used += 2;
		}
		if (used + 1 < opts->why_len)
			vsnprintf(opts->why + used, opts->why_len - used, fmt, ap);
	} else {
		fprintf(stderr, "%s: ", program_invocation_name);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

/* A datagram socket for the daemon's READY=1 at opts->notify_path, or /tmp/PROGRAM-PID.notify,
 * its path in sa; -1 with the reason said. */
static int notify_socket(struct sockaddr_un *sa, const struct tool_daemon_opts *opts)
{
	int sock, n;

	if (opts->notify_path)
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", opts->notify_path);
	else
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/tmp/%s-%d.notify",
			     program_invocation_short_name, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
		say(opts, "notify socket %s: %s", sa->sun_path, strerror(ENAMETOOLONG));
		return -1;
	}
	unlink(sa->sun_path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)sa, sizeof(*sa)) < 0) {
		say(opts, "notify socket %s: %s", sa->sun_path, strerror(errno));
		if (sock >= 0)
			close(sock);
		unlink(sa->sun_path);
		return -1;
	}
	return sock;
}

/* The daemon's environment: ours with NOTIFY_SOCKET=path, made before the fork (the child of a
 * threaded program must not allocate). Free with free_env. */
static char **notify_env(const char *path)
{
	size_t n = 0, i, j = 0;
	char **env, *var;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	if (asprintf(&var, "NOTIFY_SOCKET=%s", path) < 0) {
		free(env);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
			env[j++] = environ[i];
	}
	env[j++] = var;
	env[j] = NULL;
	return env;
}

static void free_env(char **env)
{
	size_t i = 0;

	while (env[i + 1])
		i++;
	free(env[i]); /* ours is always last */
	free(env);
}

/* The child: its stdio, then the daemon. Nothing here allocates. */
static void exec_daemon(const char *daemon, const char *config, int logfd, char **env,
			const struct tool_daemon_opts *opts, pid_t parent)
{
	char *argv[] = {(char *)daemon, "-c", (char *)config, NULL};
	/* Under a holder: it is the service manager, the daemon its service (docs/RESTART.md). */
	char *held[] = {(char *)opts->holder,
			"-m",
			(char *)(opts->holder_max ?: "1024"),
			"--",
			(char *)daemon,
			"-c",
			(char *)config,
			NULL};
	int fd;

	if (opts->tied) {
		/* A caller that dies (a test's timeout, a crash) takes the daemon with it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
	}
	dup2(logfd, STDOUT_FILENO);
	dup2(logfd, STDERR_FILENO);
	execve(opts->holder ? opts->holder : daemon, opts->holder ? held : argv, env);
	fprintf(stderr, "%s: exec %s: %s\n", program_invocation_name, daemon, strerror(errno));
	_exit(127);
}

/* Forks `daemon -c config` with NOTIFY_SOCKET set and stdout and stderr in log_path (appended
 * to if opts->log_append, else truncated). */
static pid_t start_daemon(const char *daemon, const char *config, const char *log_path,
			  const char *notify_path, const struct tool_daemon_opts *opts)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (opts->log_append ? O_APPEND : O_TRUNC);
	int logfd = open(log_path, flags, 0644);
	pid_t parent = getpid(), pid;
	char **env;

	if (logfd < 0) {
		say(opts, "%s: %s", log_path, strerror(errno));
		return -1;
	}
	env = notify_env(notify_path);
	if (!env) {
		say(opts, "environment: %s", strerror(ENOMEM));
		close(logfd);
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		say(opts, "fork: %s", strerror(errno));
	if (pid == 0)
		exec_daemon(daemon, config, logfd, env, opts, parent);
	free_env(env);
	close(logfd);
	return pid;
}

/* Waits for READY=1 on sock until deadline. 0, or -1 with the reason said and the daemon
 * reaped (SIGTERMed first if it is still running). */
static int wait_ready(pid_t pid, int sock, uint64_t deadline, int timeout_ms, const char *log_path,
		      const struct tool_daemon_opts *opts, pid_t *main_pid)
{
	char desc[64];
	int status;

	for (;;) {
		struct pollfd pfd = {.fd = sock, .events = POLLIN};
		char msg[512];
		ssize_t len;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			tool_describe_status(status, desc, sizeof(desc));
			say(opts, "hyperbufd exited before READY=1 (%s); see %s", desc, log_path);
			return -1;
		}
		if (tool_now_ns() >= deadline) {
			say(opts, "hyperbufd not ready after %d s; see %s", timeout_ms / 1000,
			    log_path);
			kill(pid, SIGTERM);
			tool_wait_pid(pid, 3000, &status);
			tool_describe_status(status, desc, sizeof(desc));
			say(opts, "hyperbufd %s", desc);
			return -1;
		}
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		len = recv(sock, msg, sizeof(msg) - 1, 0);
		if (len <= 0)
			continue;
		msg[len] = '\0';
		if (says_ready(msg, main_pid))
			return 0;
	}
}

pid_t tool_daemon_start(const char *daemon, const char *config, const char *log_path,
			int timeout_ms, const struct tool_daemon_opts *opts,
			struct tool_daemon_spawn *out)
{
	static const struct tool_daemon_opts none;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint64_t t0 = tool_now_ns(), deadline = deadline_in(timeout_ms);
	int sock;
	pid_t pid;

	if (!opts)
		opts = &none;
	if (opts->why && opts->why_len)
		opts->why[0] = '\0';
	out->pid = -1;
	out->notify_fd = -1;
	out->ready_ns = 0;
	sock = notify_socket(&sa, opts);
	if (sock < 0)
		return -1;
	pid = start_daemon(daemon, config, log_path, sa.sun_path, opts);
	out->main_pid = pid;
	if (pid < 0 ||
	    wait_ready(pid, sock, deadline, timeout_ms, log_path, opts, &out->main_pid) < 0)
		goto err_sock;
	out->pid = pid;
	out->notify_fd = sock;
	out->ready_ns = tool_now_ns() - t0;
	snprintf(out->notify_path, sizeof(out->notify_path), "%s", sa.sun_path);
	return pid;

err_sock:
	close(sock);
	unlink(sa.sun_path);
	return -1;
}

pid_t tool_daemon_spawn(const char *daemon, const char *config, const char *log_path,
			int timeout_ms, struct tool_daemon_spawn *out)
{
	return tool_daemon_start(daemon, config, log_path, timeout_ms, NULL, out);
}

int tool_daemon_wait_ready(struct tool_daemon_spawn *d, int timeout_ms)
{
	uint64_t deadline = deadline_in(timeout_ms);

	for (;;) {
		struct pollfd pfd = {.fd = d->notify_fd, .events = POLLIN};
		char msg[512];
		int left = tool_ms_left(deadline);
		ssize_t len;

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return left <= 0 ? -ETIMEDOUT : -errno;
		len = recv(d->notify_fd, msg, sizeof(msg) - 1, 0);
		if (len <= 0)
			continue;
		msg[len] = '\0';
		if (says_ready(msg, &d->main_pid))
			return 0;
	}
}

int tool_daemon_stop(struct tool_daemon_spawn *d, int timeout_ms, int *status)
{
	int ret;

	kill(d->pid, SIGTERM);
	ret = tool_wait_pid(d->pid, timeout_ms, status);
	d->pid = -1;
	if (d->notify_fd >= 0) {
		close(d->notify_fd);
		unlink(d->notify_path);
		d->notify_fd = -1;
	}
	return ret;
}

void tool_log_tail(const char *path, int lines)
{
	char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), seen = 0;
	off_t size, from;
	char *p;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	n = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	p = buf + n;
	while (p > buf && seen <= lines)
		if (*--p == '\n')
			seen++;
	if (*p == '\n')
		p++;
	fprintf(stderr, "---- last lines of %s ----\n%s---- end ----\n", path, p);
}
