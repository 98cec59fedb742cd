/* Socket helpers (see sock.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/file.h"
#include "common/log.h"
#include "common/sock.h"

/* How long connect(2) may wait for room in a listener's backlog. */
#define HBC_CONNECT_TIMEOUT_S 10
/* The most fds one recvmsg takes in. */
#define HBC_RECV_FDS 8

ssize_t hbc_send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctrl;
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctrl, 0, sizeof(ctrl));
		mh.msg_control = ctrl.buf;
		mh.msg_controllen = sizeof(ctrl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n < 0 ? -errno : n;
}

ssize_t hbc_recv_fds(int fd, void *buf, size_t len, int *fds, unsigned *nfds, unsigned max)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * HBC_RECV_FDS)];
	} cm;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = cm.buf,
	    .msg_controllen = sizeof(cm.buf),
	};
	struct cmsghdr *cmsg;
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* With MSG_CTRUNC the kernel has already closed the fds that did not fit. */
	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int got;
			memcpy(&got, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
			if (*nfds < max)
				fds[(*nfds)++] = got;
			else
				close(got);
		}
	}
	return n;
}

void hbc_close_fds(int *fds, unsigned *nfds)
{
	for (unsigned i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
}

int hbc_unix_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	/* connect(2) on an AF_UNIX stream waits for backlog room for up to SO_SNDTIMEO; a
	 * wedged daemon must not hang us forever, so connect blocking with a limit and only
	 * then switch to non-blocking I/O. */
	struct timeval tv = {.tv_sec = HBC_CONNECT_TIMEOUT_S};
	int fd, flags, r;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -EINVAL;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		goto err_errno;
	while ((r = connect(fd, (struct sockaddr *)&sun, sizeof(sun))) < 0 && errno == EINTR)
		;
	if (r < 0) {
		if (errno == EAGAIN || errno == EINPROGRESS)
			errno = ETIMEDOUT;
		goto err_errno;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		goto err_errno;
	return fd;

err_errno:
	r = -errno;
	close(fd);
	return r;
}

/* The mode of the folders made for sockets (hbc_sock_set_dir_mode). */
static mode_t dir_mode = 0755;

void hbc_sock_set_dir_mode(mode_t mode)
{
	dir_mode = mode;
}

/* mkdir -p for the folder holding a socket. */
static int make_parent_dirs(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	return hbc_mkdir_p(dir, dir_mode);
}

/* A socket file left by a daemon that died is removed; one that answers is somebody else's. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *addr)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("%s exists and is not a socket; refusing to replace it", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	close(fd);
	if (r == 0) {
		log_err("%s: another daemon is listening there", path);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int hbc_dir_check(const char *dir, char *why, size_t len)
{
	struct stat st;

	if (lstat(dir, &st) < 0) {
		snprintf(why, len, "%s", strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, len, "not a folder");
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, len, "owned by uid %u, not by this daemon's uid %u",
			 (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "mode %04o lets %s write there", (unsigned)(st.st_mode & 07777),
			 st.st_mode & S_IWOTH ? "others" : "its group");
		return -EPERM;
	}
	return 0;
}

/* The folder of a socket path must be one hbc_dir_check accepts. */
static int check_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)], why[160];
	char *slash;
	int r;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	r = hbc_dir_check(dir, why, sizeof(why));
	if (r < 0)
		log_err("refusing to put %s in %s: the folder is %s (it must be this daemon's and "
			"writable by nobody else: chown it, chmod go-w it, or choose another)",
			path, dir, why);
	return r;
}

/* Gives the socket its owner and mode; any failure is fatal, since a socket left wider open
 * than configured is a door we did not mean to open. */
static int set_owner(const char *path, const struct hbc_sock_owner *owner)
{
	/* The mode first, while the socket is ours: after a chown to another user, chmod would
	 * need CAP_FOWNER too, and the unit grants CAP_CHOWN only. */
	if (chmod(path, owner->mode) < 0) {
		log_err("%s: chmod %04o: %s", path, (unsigned)owner->mode, strerror(errno));
		return -errno;
	}
	if ((owner->uid != (uid_t)-1 || owner->gid != (gid_t)-1) &&
	    chown(path, owner->uid, owner->gid) < 0) {
		log_err("%s: chown to %d:%d: %s", path, (int)owner->uid, (int)owner->gid,
			strerror(errno));
		return -errno;
	}
	return 0;
}

int hbc_unix_listen(const char *path, int backlog, const struct hbc_sock_owner *owner)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd, r;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_err("%s: socket path longer than %zu bytes", path, sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(addr.sun_path, path);
	r = make_parent_dirs(path);
	if (r < 0) {
		log_err("%s: cannot create its folder: %s", path, strerror(-r));
		return r;
	}
	r = check_parent(path);
	if (r < 0)
		return r;
	r = clear_stale_socket(path, &addr);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = -errno;
		log_err("%s: %s", path, strerror(-r));
		goto err_close;
	}
	r = set_owner(path, owner);
	if (r < 0)
		goto err_unlink;
	if (listen(fd, backlog) < 0) {
		r = -errno;
		log_err("%s: %s", path, strerror(-r));
		goto err_unlink;
	}
	return fd;

err_unlink:
	unlink(path);

err_close:
	close(fd);
	return r;
}

int hbc_unix_adopt(int fd, const char *path, const struct hbc_sock_owner *owner)
{
	struct sockaddr_un addr;
	socklen_t len = sizeof(addr);
	int listening = 0, r;
	socklen_t olen = sizeof(listening);
	struct stat st;

	memset(&addr, 0, sizeof(addr));
	if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0 || addr.sun_family != AF_UNIX ||
	    strncmp(addr.sun_path, path, sizeof(addr.sun_path)) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen) < 0 || !listening)
		return -EINVAL;
	/* Bound there once; it must still be what the path names, or nobody reaches it. */
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -ENOENT;
	r = set_owner(path, owner);
	if (r < 0)
		return r;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return 0;
}
