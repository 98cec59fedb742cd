/*
 * Socket helpers shared by the daemon, the backends and the library: fd passing, and AF_UNIX
 * stream sockets made the way every door of hyperbuf needs them (non-blocking, close-on-exec).
 * Functions return a negative errno on failure.
 */
#ifndef HB_COMMON_SOCK_H
#define HB_COMMON_SOCK_H

#include <stddef.h>
#include <sys/types.h>

/* One non-blocking sendmsg of buf[0..len) with fd attached (SCM_RIGHTS) when fd >= 0.
 * Returns bytes sent, or -errno (never raises SIGPIPE). */
ssize_t hbc_send_with_fd(int sock, const void *buf, size_t len, int fd);

/* One non-blocking recvmsg: appends received fds to fds[*nfds..max) and closes any beyond
 * (close-on-exec as they arrive). Returns bytes read (0 at EOF) or -errno (-EAGAIN). */
ssize_t hbc_recv_fds(int sock, void *buf, size_t len, int *fds, unsigned *nfds, unsigned max);
/* Closes fds[0..*nfds) and sets *nfds to 0. */
void hbc_close_fds(int *fds, unsigned *nfds);

/* A stream socket connected to path, non-blocking and close-on-exec. connect(2) itself may
 * wait up to 10 s for room in the listener's backlog. -EINVAL if path does not fit sun_path. */
int hbc_unix_connect(const char *path);

/* Who may connect to a listening socket: its owner, group and mode (uid/gid -1: the creator's). */
struct hbc_sock_owner {
	uid_t uid;
	gid_t gid;
	mode_t mode;
};

/* The mode of the folders hbc_unix_listen creates (default 0755: QEMU and local clients must
 * be able to reach the sockets in them), set exactly, whatever the umask. */
void hbc_sock_set_dir_mode(mode_t mode);

/*
 * A listening stream socket at path (non-blocking, close-on-exec), its folder created if
 * missing (hbc_sock_set_dir_mode). The folder must be ours and not writable by group or others, or
 * whoever can write there could put a socket of theirs in our place: -EPERM otherwise, naming the
 * folder, its owner and its mode. A socket file left by a process that died is replaced; one that
 * answers is another listener's (-EADDRINUSE), and a file that is no socket is never touched
 * (-EEXIST). The socket gets owner's uid, gid and mode before it listens, so nobody can
 * connect while it is wider open. Logs why it failed, naming the path.
 */
int hbc_unix_listen(const char *path, int backlog, const struct hbc_sock_owner *owner);

/* Takes back a listening socket fd a previous process bound to path (a restart: the fd store).
 * 0 once it is checked (listening, bound to path, and path is still a socket) and owner is
 * applied again; -EINVAL or -ENOENT if it is not the socket path names any more. */
int hbc_unix_adopt(int fd, const char *path, const struct hbc_sock_owner *owner);

/* 0 if dir is a folder of this process's user that group and others cannot write, else
 * -EPERM (or -errno) with the reason in why ("owned by uid 1000", "mode 0777"). */
int hbc_dir_check(const char *dir, char *why, size_t len);

#endif
