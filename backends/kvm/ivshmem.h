/*
 * The ivshmem-doorbell server, protocol v0 exactly as QEMU 7.2 consumes it (research/kvm.md
 * §1.5, §1.7): QEMU connects as the client; the server sends 8-byte little-endian int64
 * messages, each with at most one fd. The daemon is peer 0 of every group and gives each guest
 * its own eventfds for ringing the daemon, so it knows who rang.
 *
 * A group's server listens on one socket shared by all its members, or on one socket per
 * member VM. On a VM's own socket the peer is that VM from the moment it connects (the socket's
 * permissions authenticate the QEMU); on the shared socket a peer belongs to nobody until a
 * session of a VM names it in Attach.
 */
#ifndef HB_KVM_IVSHMEM_H
#define HB_KVM_IVSHMEM_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backends/backend.h"
#include "common/cred.h"
#include "common/list.h"
#include "common/log.h"
#include "common/sock.h"

#define HBK_IVSHMEM_MAX_VECTORS 64
#define HBK_IVSHMEM_MAX_PEERS   256
#define HBK_IVSHMEM_DAEMON_ID   0
#define HBK_IVSHMEM_CLAIM_S     10.0 /* an unclaimed shared-socket peer waits this long */
#define HBK_IVSHMEM_PARK_MIN_S  60.0 /* a parked host doorbell gives way only after this */
#define HBK_IVSHMEM_MAX_ID                                                                         \
	65535 /* QEMU's limit for ids (HBK_IVSHMEM_MAX_PEERS in hw/misc/ivshmem.c) */

struct hbk_ivshmem_server;

/*
 * Peer ids in use across every group's server. Ids are unique daemon-wide, not only per group,
 * so a guest's IVPosition register names one device: a guest that picked the wrong BAR for a
 * group (a member can forge any pool header) names a peer the group's server does not have.
 */
struct hbk_ivshmem_ids {
	uint64_t used[(HBK_IVSHMEM_MAX_ID + 1) / 64]; /* in use, or waiting */
	uint64_t epoch;                                /* joins so far */
	struct hbk_ivshmem_wait *waits;                /* ids that left, not free yet */
	size_t n_waits, cap_waits;
};

/* An id whose peer left group `group`: free once the `told` peers that were there then (their
 * epoch below mark) are gone too (ivshmem_ids.c). */
struct hbk_ivshmem_wait {
	uint16_t id;
	uint32_t group;
	uint64_t mark;
	unsigned told;
};

struct hbk_ivshmem_peer {
	struct hbc_list link;
	struct hbk_ivshmem_server *srv;
	uint16_t id;
	int sock;
	ev_io io;
	int irq[HBK_IVSHMEM_MAX_VECTORS];       /* the peer receives interrupts on these */
	int to_daemon[HBK_IVSHMEM_MAX_VECTORS]; /* the peer rings the daemon with these */
	bool bound;   /* it is `domain`'s: from its socket, or by Attach */
	bool claimed; /* bound by Attach (a shared socket): the restart state says to whom */
	uint32_t via; /* the VM whose own socket it came in on, 0 for the shared one */
	bool broken;  /* a message to it failed: disconnect it */
	pid_t pid;    /* SO_PEERCRED: QEMU, or the emulated VM */
	uint64_t epoch; /* when it joined (struct hbk_ivshmem_ids.epoch) */
	bool left;      /* its departure dealt with its id (hbk_ivshmem_left) */
	int sndbuf;     /* the send buffer asked for it so far */
	ev_tstamp parked_at; /* a host doorbell: when its session went (hbk_ivshmem_local) */
	struct hbc_cred cred; /* all of SO_PEERCRED and SO_PEERSEC */
	uint32_t domain;
	ev_timer claim; /* shared socket: dropped unless a session claims it in time */
};

struct hbk_ivshmem_listener {
	struct hbc_list link;
	struct hbk_ivshmem_server *srv;
	int fd;
	ev_io io;
	ev_timer pause; /* accept paused while out of file descriptors */
	bool bound;     /* a VM's own socket: peers connecting here are `domain` */
	uint32_t domain;
	double claim_s; /* shared socket: how long a peer may stay unclaimed */
	char path[108];
};

struct hbk_ivshmem_server {
	struct ev_loop *loop;
	char name[64]; /* for logs */
	/* The daemon's services: the fd store keeps the sockets, pool and peers across a restart
	 * (docs/RESTART.md), under names made of group and peer id. */
	const struct hbb_host_services *svc;
	uint32_t group;
	struct hbk_ivshmem_ids *ids;
	struct hbc_list listeners;
	int pool_fd;
	unsigned vectors;
	struct hbc_list peers;
	unsigned n_peers;
	struct hbc_list parked; /* host doorbells whose session went (hbk_ivshmem_local) */
	unsigned n_parked;
	void *data;
	struct hbc_ratelimit refused; /* log lines of refused connections */
	/* Decides whether a connection may join (0) or is refused (negative errno, logged by it),
	 * before anything is sent to it. l->bound and l->domain say whose socket it came in on.
	 * NULL: everybody who can connect joins. */
	int (*admit)(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_listener *l,
		     const struct hbc_cred *cred);
	/* Called once a peer is greeted and listed (peer->bound may be set already). */
	void (*on_join)(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_peer *peer);
	/* Called after a peer disconnected (peer still valid during the call). */
	void (*on_gone)(struct hbk_ivshmem_server *srv, struct hbk_ivshmem_peer *peer);
};

/* Prepares a server for pool_fd; it serves nobody until hbk_ivshmem_listen. */
int hbk_ivshmem_start(struct hbk_ivshmem_server *srv, const struct hbb_host_services *svc,
		      uint32_t group, const char *name, struct hbk_ivshmem_ids *ids, int pool_fd,
		      unsigned vectors);
/* Takes back the peers the last daemon kept for this group (a restart), each as it was: its
 * id, its eventfds, bound to the VM whose socket it came in on. Nothing is sent to them: they
 * never noticed. on_join is called for each. */
void hbk_ivshmem_adopt(struct hbk_ivshmem_server *srv);
/* After a restore: peers of the shared socket that no kept claim bound may wait for one only
 * HBK_IVSHMEM_CLAIM_S more seconds. */
void hbk_ivshmem_start_claims(struct hbk_ivshmem_server *srv);
/* Listens on path, owned as owner says: with bound, every peer connecting there is `domain`.
 * On a shared socket (!bound) a peer that no session claims (binds) within claim_s seconds is
 * dropped, so connections nobody owns cannot sit in the group's slots. */
int hbk_ivshmem_listen(struct hbk_ivshmem_server *srv, const char *path, bool bound,
		       uint32_t domain, const struct hbc_sock_owner *owner, double claim_s);
/* A host session's doorbells (hbk_ivshmem_local): bound to the host. */
static inline bool hbk_ivshmem_is_host(const struct hbk_ivshmem_peer *p)
{
	return p->bound && p->domain == 0;
}

/* A host process's own connection, asked for with Attach (PROTOCOL.md §3, "Attach"): one end
 * of a socketpair, greeted like a QEMU's and bound to the host (domain 0) from the start, for
 * its fence slots' doorbells; the other end in *client_fd. NULL if none can be made. When its
 * connection closes the peer is parked, not gone: the next session of the same user (cred's
 * uid) gets it back, same id and eventfds, and no peer hears a thing. */
struct hbk_ivshmem_peer *hbk_ivshmem_local(struct hbk_ivshmem_server *srv,
					   const struct hbc_cred *cred, int *client_fd);
/* Makes room for another user's host doorbells: the oldest parked peer, parked for at least
 * HBK_IVSHMEM_PARK_MIN_S, goes for good (the peers hear it left, and its id waits). false if
 * none can go. */
bool hbk_ivshmem_evict_parked(struct hbk_ivshmem_server *srv);
/* Peers bound to domain, and peers bound to nobody yet. */
unsigned hbk_ivshmem_count(struct hbk_ivshmem_server *srv, bool bound, uint32_t domain);
/* A session claimed p for its domain (Attach on a shared socket). */
void hbk_ivshmem_bind(struct hbk_ivshmem_peer *p, uint32_t domain);
void hbk_ivshmem_stop(struct hbk_ivshmem_server *srv);
struct hbk_ivshmem_peer *hbk_ivshmem_peer(struct hbk_ivshmem_server *srv, uint32_t id);
/* The listening socket a domain connects to: its own, else the shared one; NULL if none. */
const char *hbk_ivshmem_path(struct hbk_ivshmem_server *srv, uint32_t domain);

/* Between ivshmem.c and ivshmem_listen.c: a greeted peer on fd (taken, closed on failure),
 * bound to domain from the start, or waiting claim_s seconds for a claim; NULL if it could
 * not join. where names the socket for the log. */
struct hbk_ivshmem_peer *hbk_ivshmem_peer_join(struct hbk_ivshmem_server *srv, int fd,
					       const struct hbc_cred *cred, bool bound,
					       uint32_t domain, double claim_s, const char *where);

/* ivshmem_ids.c: the lowest free id (0: none); a peer's join; a peer's departure, after it is
 * off its server's list (its id waits, or is free); a waiting id from the restart state (0, or
 * -1 for a bad record); the waits, for a full restart state; and freeing them. */
uint16_t hbk_ivshmem_take_id(struct hbk_ivshmem_ids *ids);
void hbk_ivshmem_joined(struct hbk_ivshmem_peer *p);
void hbk_ivshmem_left(struct hbk_ivshmem_peer *p);
/* The two halves of a departure: p stops counting for the ids that wait (it is off the list);
 * p's own id waits for the peers there now, or is free. */
void hbk_ivshmem_unlisten(struct hbk_ivshmem_peer *p);
void hbk_ivshmem_release_id(struct hbk_ivshmem_peer *p);
/* A parked host peer's id is kept from reuse across a restart by a wait record. */
void hbk_ivshmem_park_record(struct hbk_ivshmem_peer *p, bool parked);
int hbk_ivshmem_wait_restore(struct hbk_ivshmem_server *srv, uint16_t id);
void hbk_ivshmem_waits_save(const struct hbk_ivshmem_ids *ids,
			    void (*put)(void *ctx, uint64_t key, const void *data, size_t len),
			    void *ctx);
/* The wait records of srv's parked host doorbells, for a full restart state. */
void hbk_ivshmem_parked_save(const struct hbk_ivshmem_server *srv,
			     void (*put)(void *ctx, uint64_t key, const void *data, size_t len),
			     void *ctx);
void hbk_ivshmem_ids_free(struct hbk_ivshmem_ids *ids);

#endif
