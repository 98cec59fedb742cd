/*
 * hbholder-svc: the fake service tests/test_sh_holder.sh runs under hbholder (tests/holder.c),
 * and the listener that stands for the holder's own service manager. Not a test case itself.
 *
 *   hbholder-svc REPORT FIFO
 *	On start, appends to REPORT what it was handed (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES,
 *	each fd at 3.. and what it is, any other fd it found open), says READY=1, then runs the
 *	commands it reads from FIFO, one a line. After each it sends BARRIER=1 and waits for the
 *	holder to close the fd, so that "done COMMAND" in REPORT means the holder has acted on
 *	everything the command sent.
 *   hbholder-svc --listen SOCKET OUT
 *	Binds a datagram socket at SOCKET and appends each datagram to OUT, as one line (its
 *	newlines made spaces), until killed.
 *
 * SIGUSR2 and SIGHUP, which the holder passes on, are written down in REPORT as "signal N".
 *
 * Commands (NAME is an FDNAME=; each fd is sent alone, with FDSTORE=1 and FDNAME=NAME):
 *   memfd NAME TEXT      a memfd holding TEXT
 *   eventfd NAME VALUE   an eventfd whose counter is VALUE
 *   many NAME K          K memfds holding 0, 1, ... in one datagram
 *   resend NAME          a dup of the last memfd or eventfd sent: the same open file
 *   pair NAME [nopoll]   one end of a socketpair (with FDPOLL=0 if nopoll); this process keeps
 *                        the other end, so the stored one hangs up when it dies
 *   pair2 NAME1 NAME2    both ends of a socketpair, "ping" waiting in the second
 *   fifo NAME PATH       the write end of the FIFO at PATH
 *   remove NAME          FDSTOREREMOVE=1
 *   raw TEXT             TEXT as it is ("\n" and "\t" unescaped), no fd
 *   rawfd TEXT           TEXT with a memfd holding "raw"
 *   child NAME           a child process sends a memfd as NAME, and READY=1
 *   ready, stopping      READY=1, STOPPING=1
 *   exit N               exit with status N
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static FILE *report;
static int last = -1; /* the last memfd or eventfd sent, for resend */

/* "signal N" in the report, with write(): stdio is not for signal handlers. */
static void on_signal(int sig)
{
	char msg[] = "signal 00\n";

	msg[7] = (char)('0' + sig / 10);
	msg[8] = (char)('0' + sig % 10);
	if (write(fileno(report), msg, sizeof(msg) - 1) < 0)
		_exit(1);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("hbholder-svc: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* One datagram to $NOTIFY_SOCKET, with fds (sd_pid_notify_with_fds()). */
static void notify(const char *msg, const int *fds, size_t nfds)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 64)];
	} ctl;
	struct msghdr mh = {
	    .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1};
	int sock;

	if (!path || strlen(path) >= sizeof(sa.sun_path) || nfds > 64)
		die("no NOTIFY_SOCKET, or too many fds");
	strcpy(sa.sun_path, path);
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = &ctl;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
		die("notify %s: %s", path, strerror(errno));
	close(sock);
}

/* sd_notify_barrier(): the holder has read all we sent once it closes the pipe's write end. */
static void barrier(void)
{
	struct pollfd p = {.events = POLLIN};
	int pipefd[2];

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	notify("BARRIER=1", &pipefd[1], 1);
	close(pipefd[1]);
	p.fd = pipefd[0];
	if (poll(&p, 1, 10000) != 1 || !(p.revents & POLLHUP))
		die("BARRIER=1 not answered within 10 s");
	close(pipefd[0]);
}

/* Sends fd with FDSTORE=1, FDNAME=name (and FDPOLL=0), then closes it unless kept. */
static void store(int fd, const char *name, int nopoll, int keep)
{
	char msg[512];

	if (fd < 0)
		die("cannot make an fd for %s: %s", name, strerror(errno));
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s%s", name, nopoll ? "\nFDPOLL=0" : "");
	notify(msg, &fd, 1);
	if (keep) {
		if (last >= 0)
			close(last);
		last = fd;
	} else {
		close(fd);
	}
}

static int memfd(const char *text)
{
	int fd = memfd_create("hbholder-svc", MFD_CLOEXEC);

	if (fd >= 0 && write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die("memfd: %s", strerror(errno));
	return fd;
}

/* Sends K memfds holding "0", "1", ... in one datagram named name. */
static void many(const char *name, int k)
{
	int fds[64];
	char msg[300], text[16];

	if (k < 1 || k > 64)
		die("many: 1 to 64 fds");
	for (int i = 0; i < k; i++) {
		snprintf(text, sizeof(text), "%d", i);
		fds[i] = memfd(text);
	}
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	notify(msg, fds, (size_t)k);
	for (int i = 0; i < k; i++)
		close(fds[i]);
}

static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && (s[1] == 'n' || s[1] == 't'))
			*o++ = *++s == 'n' ? '\n' : '\t';
		else
			*o++ = *s;
	}
	*o = '\0';
}

/* A child process, not the main one, tries to store an fd and to say READY=1. */
static void child(const char *name)
{
	char msg[300];
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		int fd = memfd("child");

		snprintf(msg, sizeof(msg), "READY=1\nFDSTORE=1\nFDNAME=%s", name);
		notify(msg, &fd, 1);
		barrier(); /* sent by the child: its datagram reached the holder while it lived */
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || st != 0)
		die("child: %s", pid < 0 ? strerror(errno) : "failed");
}

static void command(char *line)
{
	char *cmd = strtok(line, " "), *a = strtok(NULL, " "), *b = strtok(NULL, "");
	int sv[2];

	if (!cmd)
		return;
	if (!strcmp(cmd, "memfd") && a && b) {
		store(memfd(b), a, 0, 1);
	} else if (!strcmp(cmd, "eventfd") && a && b) {
		store(eventfd((unsigned)atoi(b), EFD_CLOEXEC), a, 0, 1);
	} else if (!strcmp(cmd, "many") && a && b) {
		many(a, atoi(b));
	} else if (!strcmp(cmd, "resend") && a && last >= 0) {
		store(fcntl(last, F_DUPFD_CLOEXEC, 3), a, 0, 0);
	} else if (!strcmp(cmd, "pair") && a) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			die("socketpair: %s", strerror(errno));
		store(sv[0], a, b && !strcmp(b, "nopoll"), 0); /* sv[1] stays open until we die */
	} else if (!strcmp(cmd, "pair2") && a && b) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
		    write(sv[0], "ping", 4) != 4)
			die("socketpair: %s", strerror(errno));
		store(sv[0], a, 0, 0);
		store(sv[1], b, 0, 0);
	} else if (!strcmp(cmd, "fifo") && a && b) {
		store(open(b, O_WRONLY | O_CLOEXEC), a, 0, 0);
	} else if (!strcmp(cmd, "remove") && a) {
		char msg[300];

		snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", a);
		notify(msg, NULL, 0);
	} else if ((!strcmp(cmd, "raw") || !strcmp(cmd, "rawfd")) && a) {
		char msg[4200];
		int fd = memfd("raw");

		snprintf(msg, sizeof(msg), "%s%s%s", a, b ? " " : "", b ? b : "");
		unescape(msg);
		notify(msg, &fd, !strcmp(cmd, "rawfd"));
		close(fd);
	} else if (!strcmp(cmd, "child") && a) {
		child(a);
	} else if (!strcmp(cmd, "ready") || !strcmp(cmd, "stopping")) {
		notify(!strcmp(cmd, "ready") ? "READY=1" : "STOPPING=1", NULL, 0);
	} else if (strcmp(cmd, "exit") != 0) {
		die("bad command: %s", cmd);
	}
}

/* "memfd hello", "eventfd 2", "socket ping", ...: what fd is, and what it holds. */
static void describe_fd(int fd, char *out, size_t len)
{
	char path[64], target[256] = "", data[64] = "-", line[128];
	unsigned long long count;
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	if (!strncmp(target, "/memfd:", 7)) {
		n = pread(fd, data, sizeof(data) - 1, 0);
		data[n > 0 ? n : 0] = '\0';
		snprintf(out, len, "kind=memfd data=%s", data);
	} else if (!strcmp(target, "anon_inode:[eventfd]")) {
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "eventfd-count: %llx", &count) == 1)
				snprintf(data, sizeof(data), "%llu", count);
		if (f)
			fclose(f);
		snprintf(out, len, "kind=eventfd data=%s", data);
	} else if (!strncmp(target, "socket:", 7)) {
		n = recv(fd, data, sizeof(data) - 1, MSG_PEEK | MSG_DONTWAIT);
		if (n > 0)
			data[n] = '\0';
		snprintf(out, len, "kind=socket data=%s", data);
	} else {
		snprintf(out, len, "kind=%.*s", (int)strcspn(target, ":"), target);
	}
}

/* The fds open above 2 when we started, before we open anything. */
static size_t open_fds(int *fds, size_t max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	size_t n = 0;

	while (d && (e = readdir(d)))
		if (atoi(e->d_name) > 2 && atoi(e->d_name) != dirfd(d) && n < max)
			fds[n++] = atoi(e->d_name);
	if (d)
		closedir(d);
	return n;
}

/* What sd_listen_fds_with_names() would see, every fd at 3.. as it is, and any other fd that
 * was open when we started (open[]: none should be). */
static void report_start(const int *open, size_t nopen)
{
	const char *pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	int n = nfds ? atoi(nfds) : 0;
	char *list = strdup(names ? names : ""), *save = NULL, *name, what[128];
	size_t leaked = 0;

	fprintf(report, "start pid=%d listen_pid=%s fds=%s names=%s\n", (int)getpid(),
		!pid                    ? "none"
		: atoi(pid) == getpid() ? "ok"
					: "wrong",
		nfds ? nfds : "none", names ? names : "none");
	name = strtok_r(list, ":", &save);
	for (int i = 0; i < n; i++, name = strtok_r(NULL, ":", &save)) {
		int flags = fcntl(3 + i, F_GETFD);

		describe_fd(3 + i, what, sizeof(what));
		fprintf(report, "fd %d name=%s cloexec=%d %s\n", 3 + i, name ? name : "?",
			flags < 0 ? -1 : !!(flags & FD_CLOEXEC), what);
		fcntl(3 + i, F_SETFD, FD_CLOEXEC); /* as sd_listen_fds() does */
	}
	free(list);
	fputs("leaked", report);
	for (size_t i = 0; i < nopen; i++)
		if (open[i] >= 3 + n) {
			fprintf(report, " %d", open[i]);
			leaked++;
		}
	fputs(leaked ? "\n" : " none\n", report);
}

static int service(const char *report_path, const char *fifo_path)
{
	int open[256];
	size_t nopen = open_fds(open, 256); /* first: nothing of ours is open yet */
	char line[4200];
	FILE *fifo;

	report = fopen(report_path, "ae");
	if (!report)
		die("%s: %s", report_path, strerror(errno));
	setvbuf(report, NULL, _IOLBF, 0);
	report_start(open, nopen);
	signal(SIGUSR2, on_signal);
	signal(SIGHUP, on_signal);
	/* Read-write: no end of file between two writers, and no writer blocks while we live. */
	fifo = fopen(fifo_path, "r+e");
	if (!fifo)
		die("%s: %s", fifo_path, strerror(errno));
	notify("READY=1", NULL, 0);
	while (fgets(line, sizeof(line), fifo)) {
		char done[sizeof(line)];

		line[strcspn(line, "\n")] = '\0';
		snprintf(done, sizeof(done), "%s", line);
		command(line);
		barrier();
		fprintf(report, "done %s\n", done);
		if (!strncmp(done, "exit ", 5)) {
			fclose(fifo);
			fclose(report);
			return atoi(done + 5);
		}
	}
	die("%s: %s", fifo_path, ferror(fifo) ? strerror(errno) : "end of file");
}

/* Stands for the holder's own service manager: each datagram on SOCKET, one a line, in OUT. */
static int listen_to(const char *path, const char *out_path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[4097];
	int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	FILE *out = fopen(out_path, "ae");

	if (strlen(path) >= sizeof(sa.sun_path))
		die("%s: too long", path);
	strcpy(sa.sun_path, path);
	unlink(path);
	if (!out || sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("%s: %s", path, strerror(errno));
	setvbuf(out, NULL, _IOLBF, 0);
	for (;;) {
		ssize_t n = recv(sock, buf, sizeof(buf) - 1, 0);

		if (n < 0 && errno != EINTR)
			die("recv: %s", strerror(errno));
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n')
				buf[i] = ' ';
		if (n >= 0)
			fprintf(out, "%.*s\n", (int)n, buf);
	}
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--listen"))
		return listen_to(argv[2], argv[3]);
	if (argc == 3)
		return service(argv[1], argv[2]);
	fprintf(stderr, "usage: hbholder-svc REPORT FIFO\n"
			"       hbholder-svc --listen SOCKET OUT\n");
	return 2;
}
