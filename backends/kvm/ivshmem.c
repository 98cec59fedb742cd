/* The ivshmem-doorbell server (see ivshmem.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/kvm/ivshmem.h"
#include "common/log.h"
#include "common/sock.h"

/* One message: 8 bytes little-endian, at most one fd. QEMU reads them in order, and a failed
 * send (the peer is not reading) drops that peer rather than block the daemon. */
static int send_msg(int sock, int64_t value, int fd)
{
	uint8_t buf[8];
	uint64_t v = (uint64_t)value;
	ssize_t n;

	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(v >> (8 * i));
	n = hbc_send_with_fd(sock, buf, sizeof(buf), fd);
	if (n < 0)
		return (int)n;
	return n == (ssize_t)sizeof(buf) ? 0 : -EIO;
}

/* The fd store's names of a peer's descriptors (docs/RESTART.md). */
static void peer_name(const struct hbk_ivshmem_peer *p, char *out, size_t len)
{
	snprintf(out, len, "ivp.%u.%u.%u", p->id, p->srv->group, p->via);
}

static void vector_name(const struct hbk_ivshmem_peer *p, char kind, unsigned k, char *out,
			size_t len)
{
	snprintf(out, len, "iv%c.%u.%u", kind, p->id, k);
}

/* Keeps (keep) or forgets a peer's connection and eventfds for the next daemon. */
static void peer_store(struct hbk_ivshmem_peer *p, bool keep)
{
	const struct hbb_host_services *svc = p->srv->svc;
	char name[64];

	if (!svc || svc->version < 2)
		return;
	peer_name(p, name, sizeof(name));
	if (p->sock >= 0)
		keep ? svc->fd_keep(svc->ctx, p->sock, name) : svc->fd_forget(svc->ctx, name);
	for (unsigned k = 0; k < p->srv->vectors; k++) {
		vector_name(p, 'i', k, name, sizeof(name));
		if (p->irq[k] >= 0)
			keep ? svc->fd_keep(svc->ctx, p->irq[k], name)
			     : svc->fd_forget(svc->ctx, name);
		vector_name(p, 'd', k, name, sizeof(name));
		if (p->to_daemon[k] >= 0)
			keep ? svc->fd_keep(svc->ctx, p->to_daemon[k], name)
			     : svc->fd_forget(svc->ctx, name);
	}
}

static void peer_free(struct hbk_ivshmem_peer *p)
{
	peer_store(p, false);
	ev_timer_stop(p->srv->loop, &p->claim);
	for (unsigned k = 0; k < HBK_IVSHMEM_MAX_VECTORS; k++) {
		if (p->irq[k] >= 0)
			close(p->irq[k]);
		if (p->to_daemon[k] >= 0)
			close(p->to_daemon[k]);
	}
	if (p->sock >= 0)
		close(p->sock);
	/* A departure let the id go already (it may wait: ivshmem_ids.c); else it is free. */
	if (p->id && p->srv->ids && !p->left)
		p->srv->ids->used[p->id / 64] &= ~(1ull << (p->id % 64));
	free(p);
}

static void peer_disconnect(struct hbk_ivshmem_peer *p, const char *why);

/* A peer that missed a connect or disconnect message has a wrong view of the group: it goes
 * rather than keep ringing ids that no longer mean what it thinks. */
static void sweep_broken(struct hbk_ivshmem_server *srv)
{
	struct hbk_ivshmem_peer *o;

	hbc_list_for_each_safe(o, &srv->peers, struct hbk_ivshmem_peer, link)
	{
		if (o->broken) {
			peer_disconnect(o, "could not be told about another peer");
			return; /* the list changed under us; that call sweeps the rest */
		}
	}
}

static void peer_park(struct hbk_ivshmem_peer *p, const char *why);
static void peer_disconnect(struct hbk_ivshmem_peer *p, const char *why)
{
	struct hbk_ivshmem_server *srv = p->srv;
	struct hbk_ivshmem_peer *o;

	log_info("ivshmem %s: peer %u left (%s)", srv->name, p->id, why);
	ev_io_stop(srv->loop, &p->io);
	hbc_list_remove(&p->link);
	srv->n_peers--;
	/* Everybody who knew the peer hears its id with no fd. */
	hbc_list_for_each_safe(o, &srv->peers, struct hbk_ivshmem_peer, link)
	{
		if (send_msg(o->sock, p->id, -1) < 0)
			o->broken = true;
	}
	if (srv->on_gone)
		srv->on_gone(srv, p);
	hbk_ivshmem_left(p);
	p->left = true;
	peer_free(p);
	sweep_broken(srv);
}

/* QEMU never writes to this socket: any byte or EOF means the peer is gone. */
static void on_peer(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hbk_ivshmem_peer *p = w->data;
	char c;
	ssize_t n = recv(p->sock, &c, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* A host session's doorbells wait for its user's next session when its library closed
	 * them (not those a restart took back, whose user nobody knows any more); any other end
	 * is a departure, since the old process may still hold its eventfds. */
	if (n == 0 && hbk_ivshmem_is_host(p) && p->cred.uid != (uid_t)-1) {
		peer_park(p, "hung up");
		return;
	}
	peer_disconnect(p, n == 0 ? "hung up" : n < 0 ? strerror(errno) : "sent data");
}

static int greet(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_peer *p)
{
	struct hbk_ivshmem_peer *o;
	int r;

	/* 1. version, 2. the peer's id, 3. -1 with the pool: QEMU reads these synchronously
	 * while realizing the device. */
	if ((r = send_msg(p->sock, 0, -1)) < 0 || (r = send_msg(p->sock, p->id, -1)) < 0 ||
	    (r = send_msg(p->sock, -1, srv->pool_fd)) < 0)
		return r;
	/* 4. the peers it may ring: the daemon (private eventfds: the daemon knows who rang),
	 * then every other peer, each once per vector. */
	for (unsigned k = 0; k < srv->vectors; k++)
		if ((r = send_msg(p->sock, HBK_IVSHMEM_DAEMON_ID, p->to_daemon[k])) < 0)
			return r;
	hbc_list_for_each_safe(o, &srv->peers, struct hbk_ivshmem_peer, link)
	{
		if (o == p)
			continue;
		for (unsigned k = 0; k < srv->vectors; k++)
			if ((r = send_msg(p->sock, o->id, o->irq[k])) < 0)
				return r;
	}
	/* Parked host doorbells too: when one comes back nobody is told, so everybody must
	 * know it already (a guest rings its id blindly once it is direct again). */
	hbc_list_for_each_safe(o, &srv->parked, struct hbk_ivshmem_peer, link)
	{
		for (unsigned k = 0; k < srv->vectors; k++)
			if ((r = send_msg(p->sock, o->id, o->irq[k])) < 0)
				return r;
	}
	/* 5. its own interrupt eventfds. */
	for (unsigned k = 0; k < srv->vectors; k++)
		if ((r = send_msg(p->sock, p->id, p->irq[k])) < 0)
			return r;
	return 0;
}

static void on_unclaimed(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hbk_ivshmem_peer *p = w->data;

	if (!p->bound)
		peer_disconnect(p, "no session claimed it in time");
}

/* The greeting is 3 + vectors x (peers + 1) messages, each with an fd, sent at once (QEMU reads
 * them only after connect returns): make room for all of them. A kernel skb with an fd costs
 * about 1 KiB of send buffer. */
static void size_send_buffer(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_peer *p)
{
	int sndbuf = (int)((3u + srv->vectors * (srv->n_peers + srv->n_parked + 2u)) * 1024u);
	int fd = p->sock;

	if (sndbuf > 16 << 20)
		sndbuf = 16 << 20;
	/* Never less than before: what is queued (a greeting the peer has not read in full)
	 * does not shrink when peers leave. */
	if (sndbuf <= p->sndbuf)
		return;
	p->sndbuf = sndbuf;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
}

struct hbk_ivshmem_peer *hbk_ivshmem_peer_join(struct hbk_ivshmem_server *srv, int fd,
					       const struct hbc_cred *cred, bool bound,
					       uint32_t domain, double claim_s, const char *where)
{
	struct hbk_ivshmem_peer *p, *o;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return NULL;
	}
	p->srv = srv;
	p->sock = fd;
	for (unsigned k = 0; k < HBK_IVSHMEM_MAX_VECTORS; k++)
		p->irq[k] = p->to_daemon[k] = -1;
	p->bound = bound;
	p->domain = domain;
	/* Only a VM's own socket binds for good: the host's connections are claimed. */
	p->via = bound && domain ? domain : 0;
	p->id = hbk_ivshmem_take_id(srv->ids);
	p->pid = cred->pid;
	p->cred = *cred;
	ev_timer_init(&p->claim, on_unclaimed, claim_s, 0.);
	p->claim.data = p;
	size_send_buffer(srv, p);
	for (unsigned k = 0; k < srv->vectors; k++) {
		p->irq[k] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		p->to_daemon[k] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->irq[k] < 0 || p->to_daemon[k] < 0)
			goto err_peer;
	}
	if (!p->id)
		goto err_peer;
	r = greet(srv, p);
	if (r < 0) {
		log_warn("ivshmem %s: greeting peer %u failed: %s", srv->name, p->id, strerror(-r));
		goto err_peer;
	}
	/* Announce the newcomer to the others, with room for it: a library reads its connection
	 * only when it runs (QEMU at once), and a full one would be dropped. */
	hbc_list_for_each_safe(o, &srv->peers, struct hbk_ivshmem_peer, link)
	{
		size_send_buffer(srv, o);
		for (unsigned k = 0; k < srv->vectors && !o->broken; k++)
			if (send_msg(o->sock, p->id, p->irq[k]) < 0)
				o->broken = true;
	}
	hbc_list_insert_tail(&srv->peers, &p->link);
	srv->n_peers++;
	hbk_ivshmem_joined(p);
	ev_io_init(&p->io, on_peer, fd, EV_READ);
	p->io.data = p;
	ev_io_start(srv->loop, &p->io);
	if (!p->bound && claim_s > 0)
		ev_timer_start(srv->loop, &p->claim);
	/* Greeted: QEMU has what it needs for the VM's life, and a restarted daemon must find
	 * the connection and the eventfds it handed out. */
	peer_store(p, true);
	log_info("ivshmem %s: peer %u connected on %s", srv->name, p->id, where);
	if (srv->on_join)
		srv->on_join(srv, p);
	sweep_broken(srv);
	return p;

err_peer:
	peer_free(p);
	return NULL;
}

int hbk_ivshmem_start(struct hbk_ivshmem_server *srv, const struct hbb_host_services *svc,
		      uint32_t group, const char *name, struct hbk_ivshmem_ids *ids, int pool_fd,
		      unsigned vectors)
{
	srv->loop = svc->loop;
	srv->svc = svc;
	srv->group = group;
	snprintf(srv->name, sizeof(srv->name), "%s", name);
	srv->ids = ids;
	srv->pool_fd = pool_fd;
	srv->vectors = vectors ? vectors : 1;
	hbc_list_init(&srv->peers);
	hbc_list_init(&srv->parked);
	hbc_list_init(&srv->listeners);
	if (srv->vectors > HBK_IVSHMEM_MAX_VECTORS)
		return -EINVAL;
	return 0;
}

void hbk_ivshmem_stop(struct hbk_ivshmem_server *srv)
{
	struct hbk_ivshmem_listener *l;
	struct hbk_ivshmem_peer *p;

	if (!srv->loop)
		return;
	srv->on_gone = NULL;
	hbc_list_for_each_safe(p, &srv->peers, struct hbk_ivshmem_peer, link)
	{
		ev_io_stop(srv->loop, &p->io);
		hbc_list_remove(&p->link);
		peer_free(p);
	}
	hbc_list_for_each_safe(p, &srv->parked, struct hbk_ivshmem_peer, link)
	{
		hbc_list_remove(&p->link);
		peer_free(p);
	}
	hbc_list_for_each_safe(l, &srv->listeners, struct hbk_ivshmem_listener, link)
	{
		char name[64];

		ev_io_stop(srv->loop, &l->io);
		ev_timer_stop(srv->loop, &l->pause);
		snprintf(name, sizeof(name), "ivl.%u.%u", srv->group, l->bound ? l->domain : 0);
		srv->svc->fd_forget(srv->svc->ctx, name);
		close(l->fd);
		/* Handing over: QEMUs started later connect to this very socket. */
		if (!srv->svc->handover)
			unlink(l->path);
		hbc_list_remove(&l->link);
		free(l);
	}
	srv->loop = NULL;
}

struct hbk_ivshmem_peer *hbk_ivshmem_peer(struct hbk_ivshmem_server *srv, uint32_t id)
{
	struct hbk_ivshmem_peer *p;

	hbc_list_for_each_safe(p, &srv->peers, struct hbk_ivshmem_peer, link)
	{
		if (p->id == id)
			return p;
	}
	return NULL;
}

unsigned hbk_ivshmem_count(struct hbk_ivshmem_server *srv, bool bound, uint32_t domain)
{
	struct hbk_ivshmem_peer *p;
	unsigned n = 0;

	hbc_list_for_each_safe(p, &srv->peers, struct hbk_ivshmem_peer, link)
	{
		if (p->bound == bound && (!bound || p->domain == domain))
			n++;
	}
	return n;
}

void hbk_ivshmem_bind(struct hbk_ivshmem_peer *p, uint32_t domain)
{
	p->bound = true;
	p->domain = domain;
	ev_timer_stop(p->srv->loop, &p->claim);
}

/* One kept peer, "ivp.<id>.<group>.<via>", with its eventfds; NULL if it cannot be. */
static struct hbk_ivshmem_peer *adopt_peer(struct hbk_ivshmem_server *srv, const char *name,
					   unsigned id, unsigned via)
{
	const struct hbb_host_services *svc = srv->svc;
	struct hbk_ivshmem_peer *p;
	char vname[64];
	int fd = svc->fd_take(svc->ctx, name);

	if (fd < 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p || id == 0 || id > HBK_IVSHMEM_MAX_ID ||
	    (srv->ids->used[id / 64] & (1ull << (id % 64))) || hbc_peer_cred(fd, &p->cred) < 0) {
		svc->fd_forget(svc->ctx, name);
		close(fd);
		free(p);
		return NULL;
	}
	p->srv = srv;
	p->sock = fd;
	p->id = (uint16_t)id;
	srv->ids->used[id / 64] |= 1ull << (id % 64);
	p->pid = p->cred.pid;
	p->via = via;
	p->bound = via != 0;
	p->domain = via;
	for (unsigned k = 0; k < HBK_IVSHMEM_MAX_VECTORS; k++)
		p->irq[k] = p->to_daemon[k] = -1;
	for (unsigned k = 0; k < srv->vectors; k++) {
		snprintf(vname, sizeof(vname), "ivi.%u.%u", id, k);
		p->irq[k] = svc->fd_take(svc->ctx, vname);
		snprintf(vname, sizeof(vname), "ivd.%u.%u", id, k);
		p->to_daemon[k] = svc->fd_take(svc->ctx, vname);
		/* A lost one is replaced: only peers that join later use it. */
		if (p->irq[k] < 0)
			p->irq[k] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->to_daemon[k] < 0)
			p->to_daemon[k] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	ev_timer_init(&p->claim, on_unclaimed, HBK_IVSHMEM_CLAIM_S, 0.);
	p->claim.data = p;
	return p;
}

void hbk_ivshmem_adopt(struct hbk_ivshmem_server *srv)
{
	const struct hbb_host_services *svc = srv->svc;
	char names[HBK_IVSHMEM_MAX_PEERS][64];
	size_t cursor = 0, n = 0;
	const char *nm;

	if (svc->version < 2)
		return;
	/* This group's only (at most as many as a server takes), before taking any: taking
	 * changes the store under the cursor. */
	while (n < HBK_IVSHMEM_MAX_PEERS && (nm = svc->fd_next(svc->ctx, "ivp.", &cursor))) {
		unsigned id, group, via;

		if (sscanf(nm, "ivp.%u.%u.%u", &id, &group, &via) == 3 && group == srv->group)
			snprintf(names[n++], sizeof(names[0]), "%s", nm);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned id, group, via;
		struct hbk_ivshmem_peer *p;

		if (sscanf(names[i], "ivp.%u.%u.%u", &id, &group, &via) != 3)
			continue;
		p = adopt_peer(srv, names[i], id, via);
		if (!p) {
			log_info(
			    "ivshmem %s: kept peer %s cannot be taken back; its VM must restart",
			    srv->name, names[i]);
			continue;
		}
		hbc_list_insert_tail(&srv->peers, &p->link);
		srv->n_peers++;
		hbk_ivshmem_joined(p);
		ev_io_init(&p->io, on_peer, p->sock, EV_READ);
		p->io.data = p;
		ev_io_start(srv->loop, &p->io);
		log_info("ivshmem %s: peer %u (pid %d) taken back", srv->name, p->id, (int)p->pid);
		if (srv->on_join)
			srv->on_join(srv, p);
	}
}

void hbk_ivshmem_start_claims(struct hbk_ivshmem_server *srv)
{
	struct hbk_ivshmem_peer *p;

	hbc_list_for_each_safe(p, &srv->peers, struct hbk_ivshmem_peer, link)
	{
		if (!p->bound && !ev_is_active(&p->claim))
			ev_timer_start(srv->loop, &p->claim);
	}
}

/* ---- host doorbells: parked, never gone (PROTOCOL.md §3 "Attach", §5) --------------------- */

/* A host session's connection closed: its id and eventfds stay, unannounced, for the next
 * session of the same user. Telling the peers it left would make its id wait (ivshmem_ids.c),
 * and host processes come and go far more often than VMs. */
static void peer_park(struct hbk_ivshmem_peer *p, const char *why)
{
	struct hbk_ivshmem_server *srv = p->srv;
	log_info("ivshmem %s: host peer %u parked (%s)", srv->name, p->id, why);
	ev_io_stop(srv->loop, &p->io);
	hbc_list_remove(&p->link);
	srv->n_peers--;
	if (srv->on_gone)
		srv->on_gone(srv, p);
	hbk_ivshmem_unlisten(p);
	/* Not kept for a restart: the next daemon forgets the peer (its id waits, by the
	 * record), and unparking keeps them again. */
	peer_store(p, false);
	close(p->sock);
	p->sock = -1;
	p->broken = false;
	p->parked_at = ev_now(srv->loop);
	hbk_ivshmem_park_record(p, true);
	hbc_list_insert_tail(&srv->parked, &p->link);
	srv->n_parked++;
	sweep_broken(srv);
}

/* The parked peer of uid back on fd: greeted again as itself (same id, same eventfds, so the
 * peers that know it need not hear a thing). 0, or a negative errno (p stays parked, fd is
 * closed). */
static int peer_unpark(struct hbk_ivshmem_peer *p, int fd, const struct hbc_cred *cred)
{
	struct hbk_ivshmem_server *srv = p->srv;
	eventfd_t v;
	int r;

	hbc_list_remove(&p->link);
	srv->n_parked--;
	p->sock = fd;
	p->sndbuf = 0;
	p->pid = cred->pid;
	for (unsigned k = 0; k < srv->vectors; k++)
		eventfd_read(p->irq[k], &v); /* rings meant for the last session */
	size_send_buffer(srv, p);
	r = greet(srv, p);
	if (r < 0) {
		close(fd);
		p->sock = -1;
		hbc_list_insert_tail(&srv->parked, &p->link);
		srv->n_parked++;
		return r;
	}
	hbc_list_insert_tail(&srv->peers, &p->link);
	srv->n_peers++;
	hbk_ivshmem_joined(p);
	ev_io_init(&p->io, on_peer, fd, EV_READ);
	p->io.data = p;
	ev_io_start(srv->loop, &p->io);
	peer_store(p, true);
	hbk_ivshmem_park_record(p, false);
	log_info("ivshmem %s: host peer %u back (pid %d)", srv->name, p->id, (int)p->pid);
	if (srv->on_join)
		srv->on_join(srv, p);
	return 0;
}

struct hbk_ivshmem_peer *hbk_ivshmem_local(struct hbk_ivshmem_server *srv,
					   const struct hbc_cred *cred, int *client_fd)
{
	struct hbk_ivshmem_peer *p, *parked = NULL;
	int sv[2];

	hbc_list_for_each_safe(p, &srv->parked, struct hbk_ivshmem_peer, link)
	{
		if (p->cred.uid == cred->uid) {
			parked = p;
			break;
		}
	}
	if (!parked && srv->n_peers >= HBK_IVSHMEM_MAX_PEERS)
		return NULL;
	/* Both ends nonblocking, as accept4 and the library's connect make them. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return NULL;
	if (parked)
		p = peer_unpark(parked, sv[0], cred) == 0 ? parked : NULL;
	else
		p = hbk_ivshmem_peer_join(srv, sv[0], cred, true, 0, 0, "the host socket");
	if (!p) {
		close(sv[1]);
		return NULL;
	}
	p->cred.uid = cred->uid;
	*client_fd = sv[1];
	return p;
}

bool hbk_ivshmem_evict_parked(struct hbk_ivshmem_server *srv)
{
	struct hbk_ivshmem_peer *p, *o;

	if (srv->n_peers >= HBK_IVSHMEM_MAX_PEERS)
		return false;
	hbc_list_for_each_safe(p, &srv->parked, struct hbk_ivshmem_peer, link)
	{
		/* Each eviction makes an id wait for the VMs' lifetime: not more than one per
		 * parked doorbell per HBK_IVSHMEM_PARK_MIN_S. */
		if (ev_now(srv->loop) - p->parked_at < HBK_IVSHMEM_PARK_MIN_S)
			continue;
		log_info("ivshmem %s: parked host peer %u goes, for another user's", srv->name,
			 p->id);
		hbc_list_remove(&p->link);
		srv->n_parked--;
		hbc_list_for_each_safe(o, &srv->peers, struct hbk_ivshmem_peer, link)
		{
			if (send_msg(o->sock, p->id, -1) < 0)
				o->broken = true;
		}
		hbk_ivshmem_release_id(p);
		p->left = true;
		peer_free(p);
		sweep_broken(srv);
		return true;
	}
	return false;
}
