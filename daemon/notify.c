/* READY=1 for systemd (Type=notify) without libsystemd: one datagram to $NOTIFY_SOCKET. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/hyperbufd.h"

int hbd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len;
	int fd, r;

	if (!path || !*path)
		return 0; /* not started by a service manager: nothing to tell */
	len = strlen(path);
	if (len >= sizeof(addr.sun_path) || (path[0] != '/' && path[0] != '@'))
		return -EINVAL;
	memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0'; /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr,
		   offsetof(struct sockaddr_un, sun_path) + len);
	r = r < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		log_warn("sd_notify(%s) failed: %s", state, strerror(-r));
	return r;
}
