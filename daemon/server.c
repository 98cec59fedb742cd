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

#include "common/log.h"
#include "common/sock.h"
#include "daemon/hyperbufd.h"

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
		dom = hbd_domain_get(d, l->domain);
		if (!dom || hbd_session_admit(d, dom, l->path) < 0 || !hbd_session_new(d, fd, dom))
			close(fd);
	}
}

static int listener_open(struct hbd *d, struct hbd_listener *l, const char *path, uint32_t domain,
			 mode_t mode)
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
		log_err(
		    "backend xen is not in this build (it needs libxen-dev); use backend = kvm");
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
	hbd_backend_services_init(d, &d->services);
	r = d->backend->start(&d->services, &d->backend_state);
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
				(unsigned long long)b->mem.handle, b->importers);
			b->importers = 0;
			hbd_buffer_free(b);
		}
	}
	if (d->backend)
		d->backend->stop(d->backend_state);
	if (d->domains.next) {
		hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
		{
			hbc_list_remove(&dom->link);
			free(dom);
		}
	}
}
