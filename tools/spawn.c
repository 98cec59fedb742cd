/*
 * Process plumbing for the demo and the benchmarks (see spawn.h). Messages go to stderr,
 * prefixed with the program's name as it was started.
 */
#include "tools/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
static int says_ready(char *msg)
{
	char *save;

	for (char *line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strcmp(line, "READY=1") == 0)
			return 1;
	return 0;
}

/* A datagram socket at /tmp/PROGRAM-PID.notify for the daemon's READY=1, its path in sa; -1
 * with the reason printed. */
static int notify_socket(struct sockaddr_un *sa)
{
	const char *prog = program_invocation_name;
	int sock, n;

	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/tmp/%s-%d.notify",
		     program_invocation_short_name, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
		fprintf(stderr, "%s: notify socket %s: %s\n", prog, sa->sun_path,
			strerror(ENAMETOOLONG));
		return -1;
	}
	unlink(sa->sun_path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)sa, sizeof(*sa)) < 0) {
		fprintf(stderr, "%s: notify socket %s: %s\n", prog, sa->sun_path, strerror(errno));
		if (sock >= 0)
			close(sock);
		unlink(sa->sun_path);
		return -1;
	}
	return sock;
}

/* Forks `daemon -c config` with NOTIFY_SOCKET set and stdout and stderr in log_path. */
static pid_t start_daemon(const char *daemon, const char *config, const char *log_path,
			  const char *notify_path)
{
	const char *prog = program_invocation_name;
	int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	pid_t pid;

	if (logfd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, log_path, strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
	if (pid == 0) {
		setenv("NOTIFY_SOCKET", notify_path, 1);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		execl(daemon, daemon, "-c", config, (char *)NULL);
		fprintf(stderr, "%s: exec %s: %s\n", prog, daemon, strerror(errno));
		_exit(127);
	}
	close(logfd);
	return pid;
}

/* Waits for READY=1 on sock until deadline. 0, or -1 with the reason printed and the daemon
 * reaped (SIGTERMed first if it is still running). */
static int wait_ready(pid_t pid, int sock, uint64_t deadline, int timeout_ms, const char *log_path)
{
	const char *prog = program_invocation_name;
	char desc[64];
	int status;

	for (;;) {
		struct pollfd pfd = {.fd = sock, .events = POLLIN};
		char msg[512];
		ssize_t len;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			tool_describe_status(status, desc, sizeof(desc));
			fprintf(stderr, "%s: hyperbufd exited before READY=1 (%s); see %s\n", prog,
				desc, log_path);
			return -1;
		}
		if (tool_now_ns() >= deadline) {
			fprintf(stderr, "%s: hyperbufd not ready after %d s; see %s\n", prog,
				timeout_ms / 1000, log_path);
			kill(pid, SIGTERM);
			tool_wait_pid(pid, 3000, &status);
			tool_describe_status(status, desc, sizeof(desc));
			fprintf(stderr, "%s: hyperbufd %s\n", prog, desc);
			return -1;
		}
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		len = recv(sock, msg, sizeof(msg) - 1, 0);
		if (len <= 0)
			continue;
		msg[len] = '\0';
		if (says_ready(msg))
			return 0;
	}
}

pid_t tool_daemon_spawn(const char *daemon, const char *config, const char *log_path,
			int timeout_ms, struct tool_daemon_spawn *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint64_t t0 = tool_now_ns(), deadline = deadline_in(timeout_ms);
	int sock;
	pid_t pid;

	out->pid = -1;
	out->notify_fd = -1;
	out->ready_ns = 0;
	sock = notify_socket(&sa);
	if (sock < 0)
		return -1;
	pid = start_daemon(daemon, config, log_path, sa.sun_path);
	if (pid < 0 || wait_ready(pid, sock, deadline, timeout_ms, log_path) < 0)
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
