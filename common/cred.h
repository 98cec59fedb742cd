/*
 * Who is on the other end of a unix socket, and whether that is who a door lets in. The
 * kernel vouches for the credentials (SO_PEERCRED, SO_PEERSEC); a pid file or an LSM label
 * from the config narrows them to one process or one confined domain. Used by every door of
 * the daemon (host and control sockets, VM channels, ivshmem sockets) and by clients checking
 * that the daemon is the daemon.
 */
#ifndef HB_COMMON_CRED_H
#define HB_COMMON_CRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"

#define HBC_LABEL_MAX 256

struct hbc_cred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char label[HBC_LABEL_MAX]; /* SO_PEERSEC, "" where no LSM labels sockets */
};

/* The peer's credentials; -errno if the kernel cannot say (not a unix socket). */
int hbc_peer_cred(int sock, struct hbc_cred *cred);

/*
 * Whether cred may speak for vm (its [vm] keys user, group, pidfile, label; what is unset is
 * not checked). Returns 0, or -EACCES with a reason for the log in why ("uid 1002 is not the
 * VM's user 1001").
 */
int hbc_vm_cred_check(const struct hbc_config_vm *vm, const struct hbc_cred *cred, char *why,
		      size_t len);
/* Whether the VM's config names who its QEMU is (any of user, group, pidfile, label). */
bool hbc_vm_has_cred(const struct hbc_config_vm *vm);

/* The user the shipped systemd unit runs the daemon as (configs/hyperbufd.sysusers). */
#define HBC_DAEMON_USER "hyperbuf"

/*
 * The server side of sock is a daemon this process may trust: root, this process's own user,
 * the system user HBC_DAEMON_USER (only root creates users), or the uid in
 * $HYPERBUF_DAEMON_UID. Returns 0, or -EACCES with *uid set to what was found.
 */
int hbc_server_check(int sock, uid_t *uid);

#endif
