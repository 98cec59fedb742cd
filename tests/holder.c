/*
 * hbholder: systemd's part for one service, for tests and `make run`, where there is no systemd.
 * It runs PROGRAM as systemd 252 runs a Type=notify, NotifyAccess=main, Restart=on-failure,
 * FileDescriptorStoreMax=MAX service: a notify socket, a file descriptor store handed back
 * through LISTEN_FDS on every restart, and READY=1 (with MAINPID=) passed on to its own
 * $NOTIFY_SOCKET, which is how a test waits for it. docs/RESTART.md says what it does and does
 * not do, rule by rule, with the man page sections.
 *
 *   hbholder [-m MAX] [-r RESTARTS] [-l LOG] -- PROGRAM [ARGS...]
 *	-m MAX       FileDescriptorStoreMax= (default 1024, where systemd's is 0: no store)
 *	-r RESTARTS  restarts after failures before giving up (default 1000)
 *	-l LOG       append the log lines there (default: stderr)
 * SIGTERM or SIGINT stops the service, SIGUSR1 restarts it (the store kept), SIGUSR2 and SIGHUP
 * are passed on to it. Exit status: 0 once the service stopped cleanly, 1 if not, 2 on a usage
 * error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOTIFY_BUFFER_MAX 4096 /* systemd: PIPE_BUF; a longer datagram is ignored */
#define NOTIFY_FD_MAX     768  /* systemd: fds one datagram may carry */
#define FDNAME_MAX        255
#define STOP_TIMEOUT_S    10
#define KCMP_FILE         0 /* <linux/kcmp.h>, which glibc does not wrap */

struct stored {
	int fd;
	int poll; /* 0 after FDPOLL=0 */
	char name[FDNAME_MAX + 1];
};

struct holder {
	char **argv;
	FILE *log;
	unsigned max, restarts_left;
	int notify_fd, sig_fd, upstream_fd;
	struct sockaddr_un notify_addr, upstream_addr;
	socklen_t upstream_len;
	pid_t child;
	int ready;                        /* the child said READY=1 */
	enum { RUN, STOP, RESTART } stop; /* what the SIGTERM we sent the child is for */
	struct stored *store;             /* max of them, n used, in the order they came */
	size_t n;
	struct pollfd *polls; /* the notify socket, signalfd, and the store */
};

/* A notify datagram's ancillary data: the sender's credentials, and fds. */
union notify_ctl {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * NOTIFY_FD_MAX)];
};

#define say(h, fmt, ...) fprintf((h)->log, "hbholder: " fmt "\n", ##__VA_ARGS__)

/* systemd's same_fd(): kcmp() tells dup()s of one open file apart from separate opens (all
 * eventfds share one anonymous inode); without kcmp, the inode and the open flags. */
static int same_fd(int a, int b)
{
	struct stat sa, sb;
	pid_t pid = getpid();
	long r = syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b);

	if (r >= 0)
		return r == 0;
	if (errno != ENOSYS && errno != EACCES && errno != EPERM)
		return -errno;
	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return -errno;
	if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino || S_ISCHR(sa.st_mode) ||
	    S_ISBLK(sa.st_mode))
		return 0;
	return fcntl(a, F_GETFL) == fcntl(b, F_GETFL);
}

/* systemd's fdname_is_valid(): printable ASCII but ':', at most 255 characters; "" is valid. */
static int fdname_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (s[i] < ' ' || s[i] >= 127 || s[i] == ':')
			return 0;
	return i <= FDNAME_MAX;
}

/* Takes fd whatever it returns: 1 stored, 0 a duplicate (closed), -EXFULL or -errno (closed). */
static int store_add(struct holder *h, int fd, const char *name, int poll_it)
{
	int r = -EXFULL;

	if (h->n >= h->max) /* checked before duplicates, as systemd does */
		goto err_close;
	for (size_t i = 0; i < h->n; i++) {
		r = same_fd(h->store[i].fd, fd);
		if (r != 0)
			goto err_close;
	}
	h->store[h->n].fd = fd;
	h->store[h->n].poll = poll_it;
	snprintf(h->store[h->n++].name, FDNAME_MAX + 1, "%s", name ? name : "stored");
	return 1;

err_close:
	close(fd);
	return r > 0 ? 0 : r;
}

static void store_remove(struct holder *h, size_t i)
{
	close(h->store[i].fd);
	memmove(&h->store[i], &h->store[i + 1], (h->n - i - 1) * sizeof(*h->store));
	h->n--;
}

/* POLLHUP or POLLERR on a polled stored fd (a socket whose peer went away) drops it. */
static void store_sweep(struct holder *h)
{
	for (size_t i = 0; i < h->n; i++) {
		struct pollfd p = {.fd = h->store[i].fd};

		if (!h->store[i].poll || poll(&p, 1, 0) <= 0 || !(p.revents & (POLLHUP | POLLERR)))
			continue;
		say(h, "stored fd \"%s\": %s; removed", h->store[i].name,
		    p.revents & POLLERR ? "POLLERR" : "POLLHUP");
		store_remove(h, i--);
	}
}

static void store_flush(struct holder *h)
{
	while (h->n)
		close(h->store[--h->n].fd);
}

/* READY=1 and STOPPING=1 go on to our own service manager (or test), if we have one. */
static void forward(struct holder *h, const char *msg)
{
	if (h->upstream_fd >= 0)
		sendto(h->upstream_fd, msg, strlen(msg), MSG_NOSIGNAL,
		       (struct sockaddr *)&h->upstream_addr, h->upstream_len);
}

static const char *find_tag(char **tags, size_t n, const char *prefix)
{
	size_t len = strlen(prefix);

	for (size_t i = 0; i < n; i++)
		if (strncmp(tags[i], prefix, len) == 0)
			return tags[i] + len;
	return NULL;
}

static int has_tag(char **tags, size_t n, const char *tag)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(tags[i], tag) == 0)
			return 1;
	return 0;
}

/* service_notify_message() of systemd 252, for what hbholder supports. Takes the fds it stores;
 * the caller closes the rest. */
static void notify_apply(struct holder *h, char **tags, size_t n, int *fds, size_t *nfds)
{
	const char *name = find_tag(tags, n, "FDNAME=");
	char msg[64];

	/* READY=1, STOPPING=1, RELOADING=1: in 252 the last one in the datagram counts. */
	for (size_t i = n; i-- > 0;) {
		if (strcmp(tags[i], "READY=1") == 0) {
			h->ready = 1;
			snprintf(msg, sizeof(msg), "MAINPID=%d\nREADY=1", (int)h->child);
			forward(h, msg);
			break;
		} else if (strcmp(tags[i], "STOPPING=1") == 0) {
			forward(h, "STOPPING=1");
			break;
		} else if (strcmp(tags[i], "RELOADING=1") == 0) {
			break;
		}
	}
	if (has_tag(tags, n, "FDSTOREREMOVE=1")) {
		if (!name || !fdname_valid(name)) {
			say(h, "FDSTOREREMOVE=1 without a valid FDNAME=; ignored");
			return;
		}
		for (size_t i = 0; i < h->n; i++)
			if (strcmp(h->store[i].name, name) == 0)
				store_remove(h, i--);
	} else if (has_tag(tags, n, "FDSTORE=1")) {
		if (name && !fdname_valid(name)) {
			say(h, "invalid FDNAME=; the fds are stored as \"stored\"");
			name = NULL;
		}
		for (size_t i = 0; i < *nfds; i++) {
			int r = store_add(h, fds[i], name, !has_tag(tags, n, "FDPOLL=0"));

			fds[i] = -1;
			if (r == -EXFULL)
				say(h,
				    "cannot store more fds than FileDescriptorStoreMax=%u; "
				    "closing the remaining %zu",
				    h->max, *nfds - i);
			else if (r < 0)
				say(h, "cannot store an fd (%s); closing the remaining %zu",
				    strerror(-r), *nfds - i);
			if (r < 0)
				break;
		}
	}
}

/* Splits a datagram into its KEY=VALUE lines and acts on it (manager_dispatch_notify_fd()). */
static void notify_dispatch(struct holder *h, char *buf, pid_t pid, int *fds, size_t *nfds)
{
	char *tags[NOTIFY_BUFFER_MAX / 2 + 1], *line;
	size_t n = 0;

	while ((line = strsep(&buf, "\n")))
		if (*line)
			tags[n++] = line;
	if (has_tag(tags, n, "BARRIER=1")) {
		/* From anyone; the fd is closed, which is the answer. */
		if (n != 1 || *nfds != 1)
			say(h, "BARRIER=1 with other fields or not one fd; ignored");
		return;
	}
	if (pid != h->child) {
		say(h, "notification from pid %d ignored: only the main pid %d may notify",
		    (int)pid, (int)h->child);
		return;
	}
	notify_apply(h, tags, n, fds, nfds);
}

/* Reads one datagram; 0 once the socket is empty. */
static int notify_recv(struct holder *h)
{
	char buf[NOTIFY_BUFFER_MAX + 1];
	union notify_ctl ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
	int fds[sizeof(ctl) / sizeof(int)];
	size_t nfds = 0;
	pid_t pid = 0;
	ssize_t len = recvmsg(h->notify_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);

	if (len < 0)
		return errno == EINTR;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			memcpy(fds + nfds, CMSG_DATA(c), k * sizeof(int));
			nfds += k;
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred uc;

			memcpy(&uc, CMSG_DATA(c), sizeof(uc));
			pid = uc.pid;
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		say(h, "notification with truncated fds (over %d?); ignored", NOTIFY_FD_MAX);
	else if ((size_t)len >= sizeof(buf) || (mh.msg_flags & MSG_TRUNC))
		say(h, "notification over %d bytes; ignored", NOTIFY_BUFFER_MAX);
	else if (len > 1 && memchr(buf, 0, (size_t)len - 1))
		say(h, "notification with a NUL byte; ignored");
	else if (pid <= 0)
		say(h, "notification without credentials; ignored");
	else {
		buf[len] = '\0';
		notify_dispatch(h, buf, pid, fds, &nfds);
	}
	for (size_t i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 1;
}

/* In the child: the stored fds at 3.. in store order, nothing else open above 2, the LISTEN_*
 * variables (none with an empty store), then PROGRAM. The holder has one thread: the child may
 * allocate. */
static void child_exec(struct holder *h, pid_t holder)
{
	size_t n = h->n, len = 1;
	sigset_t none;
	char num[32], *names;
	int fd;

	/* Unlike systemd, a test's stand-in: a holder that is killed stops its service (SIGTERM,
	 * a clean stop), so a test that fails and exits leaves no daemon running. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != holder)
		_exit(1);
	fd = open("/dev/null", O_RDONLY);

	/* As systemd: default dispositions (a shell's `&` ignores SIGINT), nothing blocked. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	/* First out of the way (above 3+n-1), so that placing one never overwrites another. */
	for (size_t i = 0; i < n; i++) {
		h->store[i].fd = fcntl(h->store[i].fd, F_DUPFD_CLOEXEC, (int)(3 + n));
		len += strlen(h->store[i].name) + 1;
	}
	for (size_t i = 0; i < n; i++)
		dup2(h->store[i].fd, (int)(3 + i)); /* a new number: without FD_CLOEXEC */
	if (close_range((unsigned)(3 + n), ~0u, 0) < 0)
		for (int i = (int)(3 + n); i < 65536; i++)
			close(i);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	setenv("NOTIFY_SOCKET", h->notify_addr.sun_path, 1);
	/* As systemd 254 and later do when FileDescriptorStoreMax= is set: tells the service a
	 * store exists, and how big. */
	unsetenv("FDSTORE");
	if (h->max) {
		snprintf(num, sizeof(num), "%u", h->max);
		setenv("FDSTORE", num, 1);
	}
	names = calloc(1, len);
	if (n && names) {
		for (size_t i = 0; i < n; i++)
			strcat(strcat(names, i ? ":" : ""), h->store[i].name);
		snprintf(num, sizeof(num), "%d", (int)getpid());
		setenv("LISTEN_PID", num, 1);
		snprintf(num, sizeof(num), "%zu", n);
		setenv("LISTEN_FDS", num, 1);
		setenv("LISTEN_FDNAMES", names, 1);
	}
	execvp(h->argv[0], h->argv);
	fprintf(stderr, "hbholder: exec %s: %s\n", h->argv[0], strerror(errno));
	_exit(203); /* systemd's EXIT_EXEC */
}

static int spawn(struct holder *h)
{
	pid_t self = getpid();

	fflush(NULL);
	h->child = fork();
	if (h->child == 0)
		child_exec(h, self);
	if (h->child < 0) {
		say(h, "fork: %s", strerror(errno));
		return -1;
	}
	h->ready = 0;
	h->stop = RUN;
	return 0;
}

/* systemd's clean exit for a service that is not Type=oneshot: exit 0, or SIGHUP, SIGINT,
 * SIGTERM or SIGPIPE. */
static int clean_exit(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st) == 0;
	return WTERMSIG(st) == SIGHUP || WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM ||
	       WTERMSIG(st) == SIGPIPE;
}

/* The child has exited (status st): restart it with the store, or return the holder's exit
 * status (>= 0) once the service is stopped and the store flushed. */
static int child_exited(struct holder *h, int st)
{
	/* Type=notify: a clean exit before READY=1 is a failure too (SERVICE_FAILURE_PROTOCOL). */
	int failed = !clean_exit(st) || (!h->ready && h->stop == RUN);
	char how[96];

	alarm(0);
	if (WIFSIGNALED(st))
		snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(how, sizeof(how),
			 failed && !WEXITSTATUS(st) ? "exited 0 before READY=1"
						    : "exited with status %d",
			 WEXITSTATUS(st));
	if (h->stop == STOP || (h->stop == RUN && !failed))
		return !clean_exit(st);
	if (h->stop == RUN && h->restarts_left == 0) {
		say(h, "%s (pid %d) %s; no restarts left", h->argv[0], (int)h->child, how);
		return 1;
	}
	h->restarts_left -= h->stop == RUN; /* a restart asked for with SIGUSR1 is not counted */
	store_sweep(h);
	say(h, "%s (pid %d) %s; restarting with %zu stored fds", h->argv[0], (int)h->child, how,
	    h->n);
	return spawn(h) < 0 ? 1 : -1;
}

static void stop_child(struct holder *h, int why)
{
	if (h->stop == RUN) {
		kill(h->child, SIGTERM);
		alarm(STOP_TIMEOUT_S); /* then SIGALRM: SIGKILL */
	}
	if (h->stop != STOP)
		h->stop = why;
}

/* Handles the signals read from signalfd; returns the holder's exit status, or -1 to go on. */
static int on_signals(struct holder *h)
{
	struct signalfd_siginfo si;
	int st, ret = -1;

	while (ret < 0 && read(h->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			/* What the child sent before it died is read while its pid still names it.
			 */
			while (notify_recv(h))
				;
			if (waitpid(h->child, &st, WNOHANG) == h->child)
				ret = child_exited(h, st);
			break;
		case SIGTERM:
		case SIGINT:
			stop_child(h, STOP);
			break;
		case SIGUSR1:
			stop_child(h, RESTART);
			break;
		case SIGALRM:
			say(h, "%s (pid %d) still running %d s after SIGTERM; SIGKILL", h->argv[0],
			    (int)h->child, STOP_TIMEOUT_S);
			kill(h->child, SIGKILL);
			break;
		default: /* SIGUSR2 (re-exec in place), SIGHUP (reload) */
			kill(h->child, (int)si.ssi_signo);
		}
	}
	return ret;
}

static int run(struct holder *h)
{
	struct pollfd *p = h->polls;
	int ret = -1;

	while (ret < 0) {
		size_t n = h->n + 2;

		p[0] = (struct pollfd){.fd = h->notify_fd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = h->sig_fd, .events = POLLIN};
		for (size_t i = 0; i < h->n; i++) /* events 0: POLLHUP and POLLERR only */
			p[i + 2] = (struct pollfd){.fd = h->store[i].poll ? h->store[i].fd : -1};
		if (poll(p, n, -1) < 0 && errno != EINTR)
			break;
		while (p[0].revents && notify_recv(h))
			;
		for (size_t i = 2; i < n; i++)
			if (p[i].revents) {
				store_sweep(h);
				break;
			}
		if (p[1].revents)
			ret = on_signals(h);
	}
	if (ret < 0) {
		say(h, "giving up: %s", strerror(errno));
		kill(h->child, SIGKILL);
	}
	return ret < 0 ? 1 : ret;
}

/* Our notify socket, at $TMPDIR/hbholder-PID.notify (or /tmp/...), and the one we report to. */
static int sockets(struct holder *h)
{
	const char *tmp = getenv("TMPDIR"), *up = getenv("NOTIFY_SOCKET");
	int one = 1, size = 8 << 20, n;
	struct sockaddr_un *a = &h->notify_addr;

	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path, sizeof(a->sun_path), "%s/hbholder-%d.notify",
		     tmp && *tmp ? tmp : "/tmp", (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(a->sun_path))
		snprintf(a->sun_path, sizeof(a->sun_path), "/tmp/hbholder-%d.notify",
			 (int)getpid());
	unlink(a->sun_path);
	h->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (h->notify_fd < 0 || bind(h->notify_fd, (struct sockaddr *)a, sizeof(*a)) < 0 ||
	    setsockopt(h->notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		fprintf(stderr, "hbholder: notify socket %s: %s\n", a->sun_path, strerror(errno));
		return -1;
	}
	if (setsockopt(h->notify_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(h->notify_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (!up || (*up != '/' && *up != '@') || strlen(up) >= sizeof(h->upstream_addr.sun_path))
		return 0;
	h->upstream_addr.sun_family = AF_UNIX;
	memcpy(h->upstream_addr.sun_path, up, strlen(up));
	if (*up == '@')
		h->upstream_addr.sun_path[0] = '\0'; /* abstract namespace */
	h->upstream_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(up));
	h->upstream_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: hbholder [-m MAX] [-r RESTARTS] [-l LOG] -- PROGRAM [ARGS...]\n");
	return 2;
}

/* A count, 0 to 65536. */
static int number(const char *s, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	*out = (unsigned)v;
	return *s >= '0' && *s <= '9' && !*end && v <= 65536 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct holder h = {
	    .log = stderr, .max = 1024, .restarts_left = 1000, .notify_fd = -1, .upstream_fd = -1};
	static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGALRM};
	sigset_t mask;
	int opt, ret = 1;

	while ((opt = getopt(argc, argv, "+m:r:l:")) != -1) {
		if ((opt == 'm' && number(optarg, &h.max) < 0) ||
		    (opt == 'r' && number(optarg, &h.restarts_left) < 0) || opt == '?')
			return usage();
		if (opt == 'l' && !(h.log = fopen(optarg, "ae"))) {
			fprintf(stderr, "hbholder: %s: %s\n", optarg, strerror(errno));
			return 2;
		}
	}
	if (optind >= argc)
		return usage();
	h.argv = argv + optind;
	setvbuf(h.log, NULL, _IOLBF, 0);
	sigemptyset(&mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&mask, sigs[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	h.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	h.store = calloc(h.max ? h.max : 1, sizeof(*h.store));
	h.polls = calloc(h.max + 2, sizeof(*h.polls));
	if (!h.store || !h.polls || h.sig_fd < 0 || sockets(&h) < 0 || spawn(&h) < 0)
		goto out;
	ret = run(&h);
out:
	store_flush(&h);
	free(h.store);
	free(h.polls);
	if (h.notify_fd >= 0)
		unlink(h.notify_addr.sun_path);
	close(h.notify_fd);
	close(h.sig_fd);
	close(h.upstream_fd);
	if (h.log != stderr)
		fclose(h.log);
	return ret;
}
