/* Socket helpers shared by the daemon's sessions and the ivshmem server. */
#ifndef HB_SOCK_H
#define HB_SOCK_H

#include <stddef.h>
#include <sys/types.h>

/* One non-blocking sendmsg of buf[0..len) with fd attached (SCM_RIGHTS) when fd >= 0.
 * Returns bytes sent, or -errno (never raises SIGPIPE). */
ssize_t hbc_send_with_fd(int sock, const void *buf, size_t len, int fd);

#endif
