/*
 * Process plumbing shared by the demo and the benchmarks: a monotonic clock, whole reads and
 * writes on pipes and sockets, waiting for a child with a time limit, and starting hyperbufd
 * the way systemd would (NOTIFY_SOCKET, READY=1); the integration tests start theirs with
 * tool_daemon_start (tests/util.c).
 */
#ifndef HB_TOOLS_SPAWN_H
#define HB_TOOLS_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tool_now_ns(void);

/* Milliseconds from now to deadline (a tool_now_ns value), rounded up; 0 once it has passed. */
int tool_ms_left(uint64_t deadline);

/* Reads exactly len bytes within timeout_ms. 0, -ETIMEDOUT, -EPIPE (EOF first), or another
 * -errno. */
int tool_read_full(int fd, void *buf, size_t len, int timeout_ms);

/* Writes all len bytes, retrying short writes and EINTR. 0 or -errno. */
int tool_write_full(int fd, const void *buf, size_t len);

/* Forks a child that runs fn(arg) and exits with what it returns. stdio is flushed first, so
 * nothing buffered is written twice. Returns the child's pid, or -1 (errno set) to the
 * parent. */
pid_t tool_fork_call(int (*fn)(const void *arg), const void *arg);

/* Reaps pid, SIGKILLing it once timeout_ms has passed. *status is the wait status, or -1 if pid
 * could not be waited for. Returns 0 if it ended by itself, 1 if it had to be killed, or
 * -errno from waitpid (pid not our child). */
int tool_wait_pid(pid_t pid, int timeout_ms, int *status);

/* "exit 3", "killed by signal 9 (Killed)", ...: a wait status as a person reads it (-1:
 * "unknown"). */
void tool_describe_status(int status, char *out, size_t len);

/* A daemon started by tool_daemon_spawn. */
struct tool_daemon_spawn {
	pid_t pid;
	pid_t main_pid; /* the daemon itself: pid, or under a holder the MAINPID it forwarded */
	int notify_fd;  /* open until tool_daemon_stop: it says STOPPING=1 there too */
	char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t ready_ns; /* from the start to READY=1 */
};

/*
 * Starts `daemon -c config` with stdout and stderr in log_path (truncated), and waits up to
 * timeout_ms for READY=1 on a datagram socket named in NOTIFY_SOCKET, as systemd would.
 * Returns its pid (out filled in; stop it with tool_daemon_stop), or -1 with the reason printed
 * on stderr and the daemon reaped. It is tool_daemon_start with no options.
 */
pid_t tool_daemon_spawn(const char *daemon, const char *config, const char *log_path,
			int timeout_ms, struct tool_daemon_spawn *out);

/* What tool_daemon_start may do beyond tool_daemon_spawn; all zero is tool_daemon_spawn. */
struct tool_daemon_opts {
	/* The notify socket to bind (a file left there is replaced); NULL: /tmp/PROG-PID.notify. */
	const char *notify_path;
	/* Append to the log instead of truncating it: a restart keeps the earlier run's lines. */
	int log_append;
	/* Tie the daemon to the calling thread: it gets SIGTERM when that thread ends (a test that
	 * times out or crashes leaves no daemon behind), and its stdin is /dev/null. */
	int tied;
	/* If set, the reason for a failure is written here (why_len bytes) instead of on stderr. */
	char *why;
	size_t why_len;
	/* If set, the daemon runs under this hbholder (tests/holder.c), which plays systemd's
	 * part: notify socket, fd store, restarts. pid is then the holder's, main_pid the
	 * daemon's. */
	const char *holder;
	/* Its -m (FileDescriptorStoreMax=): NULL is 1024, "0" is no store at all. */
	const char *holder_max;
};

/*
 * tool_daemon_spawn with options (NULL: none). The NOTIFY_SOCKET environment is built before
 * the fork, so the child of a threaded caller does not allocate. Stop the daemon with
 * tool_daemon_stop. The integration tests start theirs with it (tests/util.c).
 */
pid_t tool_daemon_start(const char *daemon, const char *config, const char *log_path,
			int timeout_ms, const struct tool_daemon_opts *opts,
			struct tool_daemon_spawn *out);

/* Waits up to timeout_ms for the next READY=1 (a daemon restarted under a holder), updating
 * main_pid. 0 or -ETIMEDOUT. */
int tool_daemon_wait_ready(struct tool_daemon_spawn *d, int timeout_ms);

/* SIGTERMs the daemon, reaps it as tool_wait_pid does (same return, same *status), then closes
 * and removes the notify socket. */
int tool_daemon_stop(struct tool_daemon_spawn *d, int timeout_ms, int *status);

/* Prints the last lines (at most 8 KiB) of a log on stderr, between marker lines; nothing if
 * it cannot be read. On failure that is usually the explanation. */
void tool_log_tail(const char *path, int lines);

#endif
