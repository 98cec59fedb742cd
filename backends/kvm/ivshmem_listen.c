/* The ivshmem server's listening sockets (see ivshmem.h): who may connect, and accepting. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "backends/kvm/ivshmem.h"
#include "common/log.h"
#include "common/sock.h"

/* Whether the connection may join: the slot table, then the server's admission rules. */
static bool admit(struct hbk_ivshmem_listener *l, int fd, struct hbc_cred *cred)
{
	struct hbk_ivshmem_server *srv = l->srv;

	if (srv->n_peers >= HBK_IVSHMEM_MAX_PEERS) {
		log_warn_limited(&srv->refused, "ivshmem %s: %u peers already; refusing", srv->name,
				 srv->n_peers);
		return false;
	}
	if (hbc_peer_cred(fd, cred) < 0)
		return false;
	return !srv->admit || srv->admit(srv, l, cred) == 0;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hbk_ivshmem_listener *l = w->data;
	struct hbc_cred cred;
	int fd;

	fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE) {
			/* Out of descriptors: the socket stays readable, so pause rather
			 * than spin. */
			log_warn("ivshmem %s: accept: %s; pausing for 100 ms", l->path,
				 strerror(errno));
			ev_io_stop(loop, &l->io);
			ev_timer_start(loop, &l->pause);
		}
		return;
	}
	if (!admit(l, fd, &cred)) {
		close(fd);
		return;
	}
	hbk_ivshmem_peer_join(l->srv, fd, &cred, l->bound, l->domain, l->claim_s, l->path);
}

static void on_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hbk_ivshmem_listener *l = w->data;

	ev_io_start(loop, &l->io);
}

/* The socket the last daemon kept for this listener if it is still path's, else a new one. */
static int listen_socket(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_listener *l,
			 const struct hbc_sock_owner *owner)
{
	const struct hbb_host_services *svc = srv->svc;
	char name[64];
	int fd = -1;

	snprintf(name, sizeof(name), "ivl.%u.%u", srv->group, l->bound ? l->domain : 0);
	if (svc->version >= 2)
		fd = svc->fd_take(svc->ctx, name);
	if (fd >= 0 && hbc_unix_adopt(fd, l->path, owner) < 0) {
		svc->fd_forget(svc->ctx, name);
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		fd = hbc_unix_listen(l->path, 16, owner);
	if (fd >= 0 && svc->version >= 2)
		svc->fd_keep(svc->ctx, fd, name);
	return fd;
}

int hbk_ivshmem_listen(struct hbk_ivshmem_server *srv, const char *path, bool bound,
		       uint32_t domain, const struct hbc_sock_owner *owner, double claim_s)
{
	struct hbk_ivshmem_listener *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->srv = srv;
	l->bound = bound;
	l->domain = domain;
	l->claim_s = claim_s;
	snprintf(l->path, sizeof(l->path), "%s", path);
	/* Whoever can connect gets the pool: owner says who (the VM's QEMU's user, 0600). */
	l->fd = listen_socket(srv, l, owner);
	if (l->fd < 0) {
		int r = l->fd;

		free(l);
		return r;
	}
	ev_io_init(&l->io, on_accept, l->fd, EV_READ);
	l->io.data = l;
	ev_timer_init(&l->pause, on_resume, 0.1, 0.);
	l->pause.data = l;
	ev_io_start(srv->loop, &l->io);
	hbc_list_insert_tail(&srv->listeners, &l->link);
	return 0;
}

const char *hbk_ivshmem_path(struct hbk_ivshmem_server *srv, uint32_t domain)
{
	struct hbk_ivshmem_listener *l;
	const char *shared = NULL;

	hbc_list_for_each_safe(l, &srv->listeners, struct hbk_ivshmem_listener, link)
	{
		if (l->bound && l->domain == domain)
			return l->path;
		if (!l->bound)
			shared = l->path;
	}
	return shared;
}
