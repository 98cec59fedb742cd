/*
 * Listening sockets and the daemon's life: the host socket (domain 0 and hyperbufctl), one
 * channel socket per configured VM, then the backend (which adds its own sockets).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/hyperbufd.h"
#include "common/log.h"

/* mkdir -p for the folder holding a socket. */
static int make_parent_dirs(const char *path)
{
	char tmp[HBC_SUN_PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
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

int hbc_unix_listen(const char *path, int backlog)
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
	r = clear_stale_socket(path, &addr);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, backlog) < 0) {
		r = -errno;
		log_err("%s: %s", path, strerror(-r));
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return r;
}

static void on_accept_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hbd_listener *l = w->data;

	ev_io_start(loop, &l->io);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hbd_listener *l = w->data;
	struct hbd *d = l->d;
	struct hbd_domain *dom;
	int fd;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* The pending connection keeps the socket readable: without a
				 * pause the loop would spin on it. */
				log_warn("%s: accept: %s; pausing for 100 ms", l->path,
					strerror(errno));
				ev_io_stop(loop, &l->io);
				ev_timer_set(&l->pause, 0.1, 0.);
				ev_timer_start(loop, &l->pause);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				log_warn("%s: accept: %s", l->path, strerror(errno));
			}
			return;
		}
		if (d->n_sessions >= HBD_MAX_SESSIONS) {
			log_warn("%s: %u sessions already; refusing a new one", l->path,
				d->n_sessions);
			close(fd);
			continue;
		}
		dom = hbd_domain_get(d, l->domain);
		/* Per domain, so one VM opening connections can't lock the others out. */
		if (!dom || dom->conns >= d->cfg->sessions_per_domain) {
			log_warn("%s: domain %u has %u connections (sessions_per_domain); refusing",
				l->path, l->domain, dom ? dom->conns : 0);
			close(fd);
			continue;
		}
		if (!hbd_session_new(d, fd, dom))
			close(fd);
	}
}

static int listener_open(struct hbd *d, struct hbd_listener *l, const char *path,
			 uint32_t domain, mode_t mode)
{
	l->d = d;
	l->domain = domain;
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->fd = hbc_unix_listen(path, 64);
	if (l->fd < 0)
		return l->fd;
	if (chmod(path, mode) < 0)
		log_warn("%s: chmod: %s", path, strerror(errno));
	ev_io_init(&l->io, on_accept, l->fd, EV_READ);
	l->io.data = l;
	ev_timer_init(&l->pause, on_accept_resume, 0.1, 0.);
	l->pause.data = l;
	ev_io_start(d->loop, &l->io);
	return 0;
}

static void listener_close(struct hbd *d, struct hbd_listener *l)
{
	if (l->fd < 0)
		return;
	ev_io_stop(d->loop, &l->io);
	ev_timer_stop(d->loop, &l->pause);
	close(l->fd);
	unlink(l->path);
	l->fd = -1;
}

int hbd_server_start(struct hbd *d)
{
	struct hbc_config *cfg = d->cfg;
	unsigned n;
	int r;

	hbc_list_init(&d->sessions);
	hbc_list_init(&d->domains);
	hbc_list_init(&d->orphans);
	for (size_t i = 0; i < sizeof(d->hids) / sizeof(d->hids[0]); i++)
		hbc_list_init(&d->hids[i]);
	hbd_timelines_init(d);
	d->next_serial = 1;
	d->next_handle = 1;
	d->host.fd = -1;

	d->backend = hbd_backend_find(cfg->backend);
	if (!d->backend) {
		log_err("backend xen is not in this build (it needs libxen-dev); use backend = kvm");
		return -ENOTSUP;
	}

	/* Domains known from the config exist from the start, so DOMAINS lists them. */
	if (!hbd_domain_get(d, 0))
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->n_vms; i++)
		if (!hbd_domain_get(d, cfg->vms[i].id))
			return -ENOMEM;

	/* 0660: the host socket is for a trusted group of local users; VM sockets are the
	 * hypervisor's only (0600). */
	r = listener_open(d, &d->host, cfg->socket, 0, 0660);
	if (r < 0)
		goto err;
	/* One channel socket per virtio-serial port of each VM: a port takes one guest process
	 * at a time, so a VM with several ports serves that many processes at once. */
	n = 0;
	for (unsigned i = 0; i < cfg->n_vms; i++)
		n += cfg->vms[i].ports;
	d->vm_listeners = calloc(n ? n : 1, sizeof(*d->vm_listeners));
	if (!d->vm_listeners) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned i = 0; i < n; i++)
		d->vm_listeners[i].fd = -1;
	d->n_vm_listeners = n;
	n = 0;
	for (unsigned i = 0; i < cfg->n_vms; i++) {
		for (unsigned k = 0; k < cfg->vms[i].ports; k++) {
			char path[HBC_SUN_PATH_MAX];

			r = hbc_config_channel_path(&cfg->vms[i], k, path);
			if (r == 0)
				r = listener_open(d, &d->vm_listeners[n++], path, cfg->vms[i].id,
						  0600);
			if (r < 0)
				goto err;
		}
	}
	r = d->backend->start(d);
	if (r < 0)
		goto err;
	return 0;

err:
	hbd_server_stop(d);
	return r;
}

void hbd_server_stop(struct hbd *d)
{
	struct hbd_session *s;
	struct hbd_domain *dom;
	struct hbd_buffer *b;

	d->stopping = true;
	listener_close(d, &d->host);
	for (unsigned i = 0; i < d->n_vm_listeners; i++)
		listener_close(d, &d->vm_listeners[i]);
	free(d->vm_listeners);
	d->vm_listeners = NULL;
	d->n_vm_listeners = 0;

	if (d->sessions.next) {
		hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
			hbd_session_close(s, "daemon shutting down");
	}
	/* Orphans survive only while an import holds them; with every session gone, none do.
	 * Anything left here is a bookkeeping bug: free it, loudly. */
	if (d->orphans.next) {
		hbc_list_for_each_safe(b, &d->orphans, struct hbd_buffer, owner_link)
		{
			log_err("buffer %llu still has %u importers at shutdown",
			       (unsigned long long)b->handle, b->importers);
			b->importers = 0;
			hbd_buffer_free(b);
		}
	}
	if (d->backend)
		d->backend->stop(d);
	if (d->domains.next) {
		hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
		{
			hbc_list_remove(&dom->link);
			free(dom);
		}
	}
}
