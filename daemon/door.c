/*
 * The daemon's doors: the host socket (local programs, domain 0), the control socket
 * (hyperbufctl), and one channel socket per port of each VM. Every door checks who is knocking
 * before a session exists (docs/SECURITY.md):
 *
 * - a VM's channel lets in only its QEMU: the [vm]'s user, group, pid file and label, checked
 *   against the kernel's SO_PEERCRED/SO_PEERSEC; its socket belongs to that user, mode 0600;
 * - the host socket counts connections per local user, so one user cannot lock others out,
 *   and a connection that has not said Hello within hello_timeout_ms is closed;
 * - the control socket is root's (and control_group's), so hyperbufctl always gets in.
 *
 * A refused connection gets one frame, ServerMsg{id 0, error}, and is closed; the refusal is
 * logged, at most once a second per door and cause, with a count of the others.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cred.h"
#include "common/log.h"
#include "common/sock.h"
#include "daemon/fdstore.h"
#include "daemon/hyperbufd.h"

/* Tells the peer why (one frame, best effort: it may already be gone) and hangs up. */
static void refuse(struct hbd_listener *l, int fd, int err, const char *reason)
{
	ServerMsg msg = SERVER_MSG__INIT;
	struct hbp_bytes out = {0};
	struct hbd_watch_ev ev = {.what = "refused", .domain = l->domain, .detail = reason};

	hbd_watch_emit(l->d, &ev);
	msg.error = (uint32_t)err;
	msg.reason = (char *)reason;
	if (hbp_frame_put_server(&out, &msg, HBP_FRAME_MAX) == 0)
		(void)!send(fd, out.data, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	hbp_bytes_free(&out);
	close(fd);
}

static const char *door_name(const struct hbd_listener *l)
{
	switch (l->door) {
	case HBD_DOOR_HOST:
		return "host socket";
	case HBD_DOOR_CONTROL:
		return "control socket";
	default:
		return l->vm ? l->vm->name : "vm";
	}
}

/* A VM's channel: its QEMU or nobody, then its connection limit. reason: for the peer. */
static int admit_vm(struct hbd_listener *l, struct hbd_domain *dom, const struct hbc_cred *cred,
		    char *reason)
{
	char why[HBC_CONFIG_PATH_MAX + 128];

	if (l->vm && hbc_vm_cred_check(l->vm, cred, why, sizeof(why)) < 0) {
		l->d->stats.refused_credentials++;
		log_warn_limited(&l->refused_creds,
				 "vm %s: refused a connection on %s from pid %d uid %u: %s",
				 l->vm->name, l->path, (int)cred->pid, (unsigned)cred->uid, why);
		/* The details stay in the log: the peer learns only whose door this is. */
		snprintf(reason, HBP_REASON_MAX,
			 "%.100s is vm %.32s's channel socket, for its QEMU only (user, group, "
			 "pidfile, label in the daemon's config)",
			 l->path, l->vm->name);
		return -EACCES;
	}
	if (dom->conns >= l->d->cfg->sessions_per_domain) {
		l->d->stats.refused_limits++;
		log_warn_limited(&l->refused_limit,
				 "%s: domain %u has %u connections (sessions_per_domain); refusing",
				 l->path, dom->id, dom->conns);
		snprintf(reason, HBP_REASON_MAX,
			 "domain %u has %u connections already (sessions_per_domain)", dom->id,
			 dom->conns);
		return -EUSERS;
	}
	return 0;
}

/* The host and control sockets: a user's connections that have not said Hello are bounded
 * on their own, so they never hold a slot another user needs. */
static int admit_user(struct hbd_listener *l, const struct hbc_cred *cred, struct hbd_user **out,
		      char *reason)
{
	struct hbd *d = l->d;
	struct hbd_user *u = hbd_user_get(d, cred->uid);

	if (!u)
		return -ENOMEM;
	if (u->pending >= d->cfg->pending_per_uid) {
		d->stats.refused_limits++;
		log_warn_limited(&l->refused_limit,
				 "%s: uid %u already has %u connections that have not said Hello "
				 "(pending_per_uid); refusing pid %d",
				 l->path, (unsigned)cred->uid, u->pending, (int)cred->pid);
		snprintf(reason, HBP_REASON_MAX,
			 "uid %u has %u connections that have not said Hello (pending_per_uid)",
			 (unsigned)cred->uid, u->pending);
		hbd_user_put(d, u);
		return -EUSERS;
	}
	u->pending++;
	*out = u;
	return 0;
}

/* One accepted connection: a session, or a refusal. */
static void admit(struct hbd_listener *l, int fd)
{
	struct hbd *d = l->d;
	struct hbd_user *user = NULL;
	struct hbd_session *s = NULL;
	struct hbd_domain *dom;
	struct hbc_cred cred = {.pid = -1};
	char reason[HBP_REASON_MAX] = "";
	int r;

	r = hbc_peer_cred(fd, &cred);
	dom = hbd_domain_get(d, l->domain);
	if (r == 0 && !dom)
		r = -ENOMEM;
	if (r == 0 && d->n_sessions >= HBD_MAX_SESSIONS) {
		d->stats.refused_limits++;
		log_warn_limited(&l->refused_limit, "%s: %u sessions already; refusing a new one",
				 l->path, d->n_sessions);
		snprintf(reason, sizeof(reason), "the daemon has %u sessions, its most",
			 d->n_sessions);
		r = -EUSERS;
	}
	if (r == 0)
		r = l->door == HBD_DOOR_VM ? admit_vm(l, dom, &cred, reason)
					   : admit_user(l, &cred, &user, reason);
	if (r == 0) {
		s = hbd_session_new(d, fd, dom, l->door, user, &cred);
		if (!s && user) {
			user->pending--;
			hbd_user_put(d, user);
		}
		r = s ? 0 : -ENOMEM;
	}
	if (r < 0) {
		refuse(l, fd, -r, reason);
		return;
	}
	/* A VM's channel is QEMU's for the VM's life: it outlives this daemon (docs/RESTART.md). */
	if (l->door == HBD_DOOR_VM)
		hbd_channel_keep(s, l);
}

void hbd_channel_keep(struct hbd_session *s, const struct hbd_listener *l)
{
	snprintf(s->fdname, sizeof(s->fdname), "ch.%u.%u.%llu", l->domain, l->port,
		 (unsigned long long)s->serial);
	hbd_fdstore_keep(s->d->fds, s->fd, s->fdname);
}

static void on_accept_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hbd_listener *l = w->data;

	ev_io_start(loop, &l->io);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hbd_listener *l = w->data;
	int fd;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			admit(l, fd);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE) {
			/* The pending connection keeps the socket readable: without a pause the
			 * loop would spin on it. */
			log_warn("%s: accept: %s; pausing for 100 ms", l->path, strerror(errno));
			ev_io_stop(loop, &l->io);
			ev_timer_set(&l->pause, 0.1, 0.);
			ev_timer_start(loop, &l->pause);
		} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
			log_warn("%s: accept: %s", l->path, strerror(errno));
		}
		return;
	}
}

/* The socket the last daemon kept under l->fdname if it still is path's, else a new one; kept
 * for the next (docs/RESTART.md). */
static int listener_socket(struct hbd *d, struct hbd_listener *l,
			   const struct hbc_sock_owner *owner)
{
	int fd = hbd_fdstore_take(d->fds, l->fdname);

	if (fd >= 0 && hbc_unix_adopt(fd, l->path, owner) < 0) {
		log_info("%s: the socket the last daemon kept is not this path's any more; making "
			 "a new one",
			 l->path);
		hbd_fdstore_forget(d->fds, l->fdname);
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		fd = hbc_unix_listen(l->path, 64, owner);
	if (fd >= 0)
		hbd_fdstore_keep(d->fds, fd, l->fdname);
	return fd;
}

static int listener_open(struct hbd *d, struct hbd_listener *l, const char *path,
			 const struct hbc_sock_owner *owner)
{
	l->d = d;
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->fd = listener_socket(d, l, owner);
	if (l->fd < 0)
		return l->fd;
	ev_io_init(&l->io, on_accept, l->fd, EV_READ);
	l->io.data = l;
	ev_timer_init(&l->pause, on_accept_resume, 0.1, 0.);
	l->pause.data = l;
	ev_io_start(d->loop, &l->io);
	log_debug("%s: the %s listens (mode %04o)", path, door_name(l), (unsigned)owner->mode);
	return 0;
}

static void listener_close(struct hbd *d, struct hbd_listener *l)
{
	if (l->fd < 0)
		return;
	ev_io_stop(d->loop, &l->io);
	ev_timer_stop(d->loop, &l->pause);
	hbd_fdstore_forget(d->fds, l->fdname);
	close(l->fd);
	/* Handing over to the next daemon: its clients keep connecting to this socket. */
	if (!d->handover)
		unlink(l->path);
	l->fd = -1;
}

/* A VM's sockets belong to its QEMU's user: 0600, or 0660 when only its group is known. */
static struct hbc_sock_owner vm_owner(const struct hbc_config_vm *vm)
{
	return (struct hbc_sock_owner){
	    .uid = vm->uid != HBC_ID_UNSET ? (uid_t)vm->uid : (uid_t)-1,
	    .gid = vm->sock_gid != HBC_ID_UNSET ? (gid_t)vm->sock_gid : (gid_t)-1,
	    .mode = vm->uid == HBC_ID_UNSET && vm->sock_gid != HBC_ID_UNSET ? 0660 : 0600,
	};
}

static int open_host_doors(struct hbd *d)
{
	const struct hbc_config *cfg = d->cfg;
	struct hbc_sock_owner host = {
	    .uid = cfg->socket_uid != HBC_ID_UNSET ? (uid_t)cfg->socket_uid : (uid_t)-1,
	    .gid = cfg->socket_gid != HBC_ID_UNSET ? (gid_t)cfg->socket_gid : (gid_t)-1,
	    .mode = cfg->socket_mode,
	};
	/* Root and, if configured, one admin group: hyperbufctl's door, never full. */
	struct hbc_sock_owner control = {
	    .uid = (uid_t)-1,
	    .gid = cfg->control_gid != HBC_ID_UNSET ? (gid_t)cfg->control_gid : (gid_t)-1,
	    .mode = cfg->control_mode,
	};
	int r;

	/* Folders made for the sockets (all of them, the VMs' too) get the configured mode. */
	hbc_sock_set_dir_mode(cfg->socket_dir_mode);
	d->host.door = HBD_DOOR_HOST;
	snprintf(d->host.fdname, sizeof(d->host.fdname), "host");
	r = listener_open(d, &d->host, cfg->socket, &host);
	if (r < 0)
		return r;
	d->control.door = HBD_DOOR_CONTROL;
	snprintf(d->control.fdname, sizeof(d->control.fdname), "control");
	return listener_open(d, &d->control, cfg->control, &control);
}

/* One channel socket per virtio-serial port of each VM: a port takes one guest process at a
 * time, so a VM with several ports serves that many processes at once. */
static int open_vm_doors(struct hbd *d)
{
	const struct hbc_config *cfg = d->cfg;
	char path[HBC_SUN_PATH_MAX];
	unsigned n = 0;
	int r;

	for (unsigned i = 0; i < cfg->n_vms; i++)
		n += cfg->vms[i].ports;
	d->vm_listeners = calloc(n ? n : 1, sizeof(*d->vm_listeners));
	if (!d->vm_listeners)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		d->vm_listeners[i].fd = -1;
	d->n_vm_listeners = n;
	n = 0;
	for (unsigned i = 0; i < cfg->n_vms; i++) {
		const struct hbc_config_vm *vm = &cfg->vms[i];
		struct hbc_sock_owner owner = vm_owner(vm);

		for (unsigned k = 0; k < vm->ports; k++) {
			struct hbd_listener *l = &d->vm_listeners[n++];

			l->door = HBD_DOOR_VM;
			l->domain = vm->id;
			l->vm = vm;
			l->port = k;
			snprintf(l->fdname, sizeof(l->fdname), "vm.%u.%u", vm->id, k);
			r = hbc_config_channel_path(vm, k, path);
			if (r == 0)
				r = listener_open(d, l, path, &owner);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Says, once at start, which VMs any process of the daemon's user could speak for. */
static void warn_unisolated(const struct hbc_config *cfg)
{
	char names[512] = "";
	size_t len = 0;
	unsigned n = 0;

	for (unsigned i = 0; i < cfg->n_vms; i++) {
		if (hbc_vm_has_cred(&cfg->vms[i]))
			continue;
		if (len < sizeof(names))
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
						n ? ", " : "", cfg->vms[i].name);
		n++;
	}
	if (n)
		log_warn("VMs are not isolated from each other: %s %s no user, group, pidfile or "
			 "label, so any process running as uid %u can use %s sockets "
			 "(docs/SECURITY.md)",
			 names, n == 1 ? "has" : "have", (unsigned)geteuid(),
			 n == 1 ? "its" : "their");
}

int hbd_doors_open(struct hbd *d)
{
	int r = open_host_doors(d);

	if (r == 0)
		r = open_vm_doors(d);
	if (r == 0)
		warn_unisolated(d->cfg);
	return r;
}

void hbd_doors_close(struct hbd *d)
{
	listener_close(d, &d->host);
	listener_close(d, &d->control);
	for (unsigned i = 0; i < d->n_vm_listeners; i++)
		listener_close(d, &d->vm_listeners[i]);
	free(d->vm_listeners);
	d->vm_listeners = NULL;
	d->n_vm_listeners = 0;
}

static struct hbd_listener *vm_listener(struct hbd *d, uint32_t vm, unsigned port)
{
	for (unsigned i = 0; i < d->n_vm_listeners; i++)
		if (d->vm_listeners[i].domain == vm && d->vm_listeners[i].port == port)
			return &d->vm_listeners[i];
	return NULL;
}

/* One kept channel: still this config's VM and port, still its QEMU. */
static void adopt_channel(struct hbd *d, const char *name)
{
	unsigned vm, port;
	struct hbd_listener *l = NULL;
	struct hbd_session *s = NULL;
	struct hbc_cred cred;
	char why[HBC_CONFIG_PATH_MAX + 128] = "";
	int fd = hbd_fdstore_take(d->fds, name);

	if (fd < 0)
		return;
	if (sscanf(name, "ch.%u.%u.", &vm, &port) == 2)
		l = vm_listener(d, vm, port);
	if (l && hbc_peer_cred(fd, &cred) == 0 &&
	    hbc_vm_cred_check(l->vm, &cred, why, sizeof(why)) == 0)
		s = hbd_session_new(d, fd, hbd_domain_get(d, vm), HBD_DOOR_VM, NULL, &cred);
	if (!s) {
		log_info(
		    "%s: a kept channel connection that is no VM's of this config any more%s%s; "
		    "closing it",
		    name, why[0] ? ": " : "", why);
		hbd_fdstore_forget(d->fds, name);
		close(fd);
		return;
	}
	snprintf(s->fdname, sizeof(s->fdname), "%s", name);
	/* What is in the stream was meant for the last daemon: drop it until the client's
	 * marker, and tell the client to resynchronise and resume. */
	s->await_marker = true;
	if (hbd_session_put_restarted(s) < 0)
		hbd_session_close(s, "out of memory");
	else
		log_info("%s: channel of vm %s port %u taken back", s->label, l->vm->name, port);
}

void hbd_doors_adopt_channels(struct hbd *d)
{
	char names[256][HBD_FDNAME_MAX];
	size_t cursor = 0, n = 0;
	const char *nm;

	/* Names first: adopting changes the table being walked. */
	while ((nm = hbd_fdstore_next(d->fds, "ch.", &cursor))) {
		if (n == sizeof(names) / sizeof(names[0])) {
			for (size_t i = 0; i < n; i++)
				adopt_channel(d, names[i]);
			n = 0;
			cursor = 0;
		}
		snprintf(names[n++], sizeof(names[0]), "%s", nm);
	}
	for (size_t i = 0; i < n; i++)
		adopt_channel(d, names[i]);
}
