/* The file descriptor store, without libsystemd (see fdstore.h; sd_notify(3), sd_listen_fds(3)). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/fdstore.h"

#define LISTEN_FDS_START 3

struct fdentry {
	char name[HBD_FDNAME_MAX];
	int fd;
	bool waiting; /* inherited, not taken yet */
};

struct hbd_fdstore {
	struct fdentry *v;
	size_t n, cap;
	unsigned inherited;
	unsigned max; /* $FDSTORE; 0: no store */
	bool over;    /* said once that max is too small */
	bool frozen;  /* handing over: the table and the store stay as they are */
	int sock;     /* to $NOTIFY_SOCKET, while the store is used */
	struct sockaddr_un addr;
	socklen_t addr_len;
};

static struct fdentry *find(struct hbd_fdstore *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].name, name) == 0)
			return &f->v[i];
	return NULL;
}

static struct fdentry *add(struct hbd_fdstore *f, const char *name, int fd)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 32;
		struct fdentry *v = realloc(f->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		f->v = v;
		f->cap = cap;
	}
	snprintf(f->v[f->n].name, sizeof(f->v[f->n].name), "%s", name);
	f->v[f->n].fd = fd;
	f->v[f->n].waiting = false;
	return &f->v[f->n++];
}

/* The names in LISTEN_FDNAMES, colon-separated, for fds 3.. in order. */
static int inherit(struct hbd_fdstore *f, unsigned n, const char *names)
{
	const char *p = names ? names : "";

	for (unsigned i = 0; i < n; i++) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[HBD_FDNAME_MAX];
		struct fdentry *e;
		int fd = LISTEN_FDS_START + (int)i;

		snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : 0), p);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (!name[0] || find(f, name)) {
			/* Unnamed or a second of a name: nobody can ask for it. */
			log_warn("fd store: descriptor %d has %s name '%s'; closing it", fd,
				 name[0] ? "a repeated" : "no", name);
			close(fd);
		} else {
			e = add(f, name, fd);
			if (!e)
				return -ENOMEM;
			e->waiting = true;
			f->inherited++;
		}
		p = end ? end + 1 : p + len;
	}
	return 0;
}

/* The notify socket, if the manager keeps a store for us. */
static void open_notify(struct hbd_fdstore *f)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct timeval tv = {.tv_sec = 2};
	size_t len;

	if (!f->max || !path || (path[0] != '/' && path[0] != '@'))
		goto none;
	len = strlen(path);
	if (len >= sizeof(f->addr.sun_path))
		goto none;
	f->addr.sun_family = AF_UNIX;
	memcpy(f->addr.sun_path, path, len);
	if (path[0] == '@')
		f->addr.sun_path[0] = '\0';
	f->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	f->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (f->sock < 0)
		goto none;
	/* A manager that stops reading must not stall the daemon for long. */
	setsockopt(f->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return;
none:
	f->max = 0;
}

int hbd_fdstore_open(struct hbd_fdstore **out)
{
	struct hbd_fdstore *f = calloc(1, sizeof(*f));
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *store = getenv("FDSTORE");
	int r = 0;

	if (!f)
		return -ENOMEM;
	f->sock = -1;
	if (store)
		f->max = (unsigned)strtoul(store, NULL, 10);
	/* Only ours: a LISTEN_PID of another process means they were meant for it. */
	if (pid && fds && strtol(pid, NULL, 10) == (long)getpid())
		r = inherit(f, (unsigned)strtoul(fds, NULL, 10), getenv("LISTEN_FDNAMES"));
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (r < 0) {
		hbd_fdstore_free(f);
		return r;
	}
	open_notify(f);
	*out = f;
	return 0;
}

void hbd_fdstore_free(struct hbd_fdstore *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].waiting)
			close(f->v[i].fd);
	if (f->sock >= 0)
		close(f->sock);
	free(f->v);
	free(f);
}

bool hbd_fdstore_enabled(const struct hbd_fdstore *f)
{
	return f && f->max > 0;
}

unsigned hbd_fdstore_inherited(const struct hbd_fdstore *f)
{
	return f ? f->inherited : 0;
}

int hbd_fdstore_take(struct hbd_fdstore *f, const char *name)
{
	struct fdentry *e = f ? find(f, name) : NULL;

	if (!e || !e->waiting)
		return -1;
	e->waiting = false;
	return e->fd;
}

const char *hbd_fdstore_next(struct hbd_fdstore *f, const char *prefix, size_t *cursor)
{
	size_t plen = strlen(prefix);

	for (; f && *cursor < f->n; (*cursor)++) {
		struct fdentry *e = &f->v[*cursor];

		if (e->waiting && strncmp(e->name, prefix, plen) == 0) {
			(*cursor)++;
			return e->name;
		}
	}
	return NULL;
}

/* One notify datagram, with fd attached if fd >= 0. */
static int notify(struct hbd_fdstore *f, const char *text, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl = {0};
	struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
	struct msghdr msg = {
	    .msg_name = &f->addr,
	    .msg_namelen = f->addr_len,
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	};

	if (fd >= 0) {
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		ctl.h.cmsg_level = SOL_SOCKET;
		ctl.h.cmsg_type = SCM_RIGHTS;
		ctl.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&ctl.h), &fd, sizeof(int));
	}
	return sendmsg(f->sock, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

void hbd_fdstore_freeze(struct hbd_fdstore *f)
{
	if (f)
		f->frozen = true;
}

int hbd_fdstore_keep(struct hbd_fdstore *f, int fd, const char *name)
{
	char text[32 + HBD_FDNAME_MAX];
	struct fdentry *e;
	int r;

	if (!f || f->frozen)
		return 0;
	/* Kept in the table even without a store: a re-exec in place hands these over. */
	e = find(f, name);
	if (e && e->fd == fd && !e->waiting)
		return 0; /* taken back from the store: it is there already */
	if (e) {
		e->fd = fd;
		e->waiting = false;
	} else if (!add(f, name, fd)) {
		return -ENOMEM;
	}
	if (!f->max)
		return 0;
	if (f->n > f->max && !f->over) {
		f->over = true;
		log_warn("fd store: %zu descriptors kept, over FileDescriptorStoreMax (%u): the "
			 "newest will not survive a restart",
			 f->n, f->max);
	}
	snprintf(text, sizeof(text), "FDSTORE=1\nFDNAME=%s", name);
	r = notify(f, text, fd);
	if (r < 0)
		log_warn("fd store: cannot keep %s: %s", name, strerror(-r));
	return r;
}

void hbd_fdstore_forget(struct hbd_fdstore *f, const char *name)
{
	char text[32 + HBD_FDNAME_MAX];
	struct fdentry *e = f && !f->frozen ? find(f, name) : NULL;
	int r;

	if (!e)
		return;
	*e = f->v[--f->n];
	if (!f->max)
		return;
	snprintf(text, sizeof(text), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	r = notify(f, text, -1);
	if (r < 0)
		log_warn("fd store: cannot remove %s: %s", name, strerror(-r));
}

void hbd_fdstore_close_untaken(struct hbd_fdstore *f)
{
	size_t i = 0;

	while (f && i < f->n) {
		struct fdentry *e = &f->v[i];
		char name[HBD_FDNAME_MAX];
		int fd = e->fd;

		if (!e->waiting) {
			i++;
			continue;
		}
		snprintf(name, sizeof(name), "%s", e->name);
		log_info("fd store: %s is of no use any more; closing it", name);
		hbd_fdstore_forget(f, name);
		close(fd);
	}
}

/* Moves every kept fd to 3, 4, ... in table order, without close-on-exec, and builds
 * LISTEN_FDNAMES. Collisions are avoided by going through numbers above all targets. */
static int hand_over(struct hbd_fdstore *f, char **names)
{
	size_t len = 1;
	int base = LISTEN_FDS_START + (int)f->n;
	int *tmp = calloc(f->n ? f->n : 1, sizeof(int));

	if (!tmp)
		return -ENOMEM;
	for (size_t i = 0; i < f->n; i++) {
		tmp[i] = fcntl(f->v[i].fd, F_DUPFD_CLOEXEC, base);
		if (tmp[i] < 0) {
			free(tmp);
			return -errno;
		}
		len += strlen(f->v[i].name) + 1;
	}
	*names = calloc(1, len);
	if (!*names) {
		free(tmp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < f->n; i++) {
		int to = LISTEN_FDS_START + (int)i;

		dup2(tmp[i], to); /* dup2 leaves close-on-exec clear */
		close(tmp[i]);
		if (i)
			strcat(*names, ":");
		strcat(*names, f->v[i].name);
	}
	free(tmp);
	return 0;
}

int hbd_fdstore_exec(struct hbd_fdstore *f, const char *path, char *const argv[])
{
	char num[32], *names = NULL;
	int r = hand_over(f, &names);

	if (r < 0)
		return r;
	snprintf(num, sizeof(num), "%zu", f->n);
	setenv("LISTEN_FDS", num, 1);
	setenv("LISTEN_FDNAMES", names, 1);
	snprintf(num, sizeof(num), "%ld", (long)getpid());
	setenv("LISTEN_PID", num, 1);
	if (f->max) {
		snprintf(num, sizeof(num), "%u", f->max);
		setenv("FDSTORE", num, 1);
	}
	free(names);
	execv(path, argv);
	return -errno;
}
