/*
 * The ivshmem-doorbell server, protocol v0 exactly as QEMU 7.2 consumes it (research/kvm.md
 * §1.5, §1.7): QEMU connects as the client; the server sends 8-byte little-endian int64
 * messages, each with at most one fd. The daemon is peer 0 of every group and gives each guest
 * its own eventfds for ringing the daemon, so it knows who rang.
 */
#ifndef HB_KVM_IVSHMEM_H
#define HB_KVM_IVSHMEM_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/list.h"

#define IVSHMEM_MAX_VECTORS 64
#define IVSHMEM_MAX_PEERS 256
#define IVSHMEM_DAEMON_ID 0

struct ivshmem_server;

struct ivshmem_peer {
	struct hb_list link;
	struct ivshmem_server *srv;
	uint16_t id;
	int sock;
	ev_io io;
	int irq[IVSHMEM_MAX_VECTORS];       /* the peer receives interrupts on these */
	int to_daemon[IVSHMEM_MAX_VECTORS]; /* the peer rings the daemon with these */
	bool bound;                         /* Attach named this peer */
	bool broken;                        /* a message to it failed: disconnect it */
	pid_t pid;                          /* SO_PEERCRED: QEMU, or the emulated VM */
	uint32_t domain;
};

struct ivshmem_server {
	struct ev_loop *loop;
	char path[108];
	int listen_fd;
	ev_io io;
	ev_timer pause; /* accept paused while out of file descriptors */
	int pool_fd;
	unsigned vectors;
	struct hb_list peers;
	unsigned n_peers;
	void *data;
	/* Called after a peer disconnected (peer still valid during the call). */
	void (*on_gone)(struct ivshmem_server *srv, struct ivshmem_peer *peer);
};

int ivshmem_server_start(struct ivshmem_server *srv, struct ev_loop *loop, const char *path,
			 int pool_fd, unsigned vectors);
void ivshmem_server_stop(struct ivshmem_server *srv);
struct ivshmem_peer *ivshmem_server_peer(struct ivshmem_server *srv, uint32_t id);

#endif
