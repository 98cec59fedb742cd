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

#include "daemon/list.h"

#define IVSHMEM_MAX_VECTORS 64
#define IVSHMEM_MAX_PEERS   256
#define IVSHMEM_DAEMON_ID   0
#define IVSHMEM_MAX_ID      65535 /* QEMU's limit for ids (IVSHMEM_MAX_PEERS in hw/misc/ivshmem.c) */

struct ivshmem_server;

/*
 * Peer ids in use across every group's server. Ids are unique daemon-wide, not only per group,
 * so a guest's IVPosition register names one device: a guest that picked the wrong BAR for a
 * group (a member can forge any pool header) names a peer the group's server does not have.
 */
struct ivshmem_ids {
	uint64_t used[(IVSHMEM_MAX_ID + 1) / 64];
};

struct ivshmem_peer {
	struct hb_list link;
	struct ivshmem_server *srv;
	uint16_t id;
	int sock;
	ev_io io;
	int irq[IVSHMEM_MAX_VECTORS];       /* the peer receives interrupts on these */
	int to_daemon[IVSHMEM_MAX_VECTORS]; /* the peer rings the daemon with these */
	bool bound;                         /* it is `domain`'s: from its socket, or by Attach */
	bool broken;                        /* a message to it failed: disconnect it */
	pid_t pid;                          /* SO_PEERCRED: QEMU, or the emulated VM */
	uint32_t domain;
};

struct ivshmem_listener {
	struct hb_list link;
	struct ivshmem_server *srv;
	int fd;
	ev_io io;
	ev_timer pause; /* accept paused while out of file descriptors */
	bool bound;     /* a VM's own socket: peers connecting here are `domain` */
	uint32_t domain;
	char path[108];
};

struct ivshmem_server {
	struct ev_loop *loop;
	char name[64]; /* for logs */
	struct ivshmem_ids *ids;
	struct hb_list listeners;
	int pool_fd;
	unsigned vectors;
	struct hb_list peers;
	unsigned n_peers;
	void *data;
	/* Called once a peer is greeted and listed (peer->bound may be set already). */
	void (*on_join)(struct ivshmem_server *srv, struct ivshmem_peer *peer);
	/* Called after a peer disconnected (peer still valid during the call). */
	void (*on_gone)(struct ivshmem_server *srv, struct ivshmem_peer *peer);
};

/* Prepares a server for pool_fd; it serves nobody until ivshmem_server_listen. */
int ivshmem_server_start(struct ivshmem_server *srv, struct ev_loop *loop, const char *name,
			 struct ivshmem_ids *ids, int pool_fd, unsigned vectors);
/* Listens on path (0600): with bound, every peer connecting there is `domain`. */
int ivshmem_server_listen(struct ivshmem_server *srv, const char *path, bool bound,
			  uint32_t domain);
void ivshmem_server_stop(struct ivshmem_server *srv);
struct ivshmem_peer *ivshmem_server_peer(struct ivshmem_server *srv, uint32_t id);
/* The listening socket a domain connects to: its own, else the shared one; NULL if none. */
const char *ivshmem_server_path(struct ivshmem_server *srv, uint32_t domain);

#endif
