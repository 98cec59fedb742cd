/* Peer credentials and what doors make of them (see cred.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cred.h"
#include "common/file.h"

int hbc_peer_cred(int sock, struct hbc_cred *cred)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	memset(cred, 0, sizeof(*cred));
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	cred->pid = uc.pid;
	cred->uid = uc.uid;
	cred->gid = uc.gid;
	/* ENOPROTOOPT: no LSM labels sockets here. The label is NUL-terminated or cut. */
	len = sizeof(cred->label) - 1;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERSEC, cred->label, &len) == 0)
		cred->label[len < sizeof(cred->label) ? len : sizeof(cred->label) - 1] = '\0';
	else
		cred->label[0] = '\0';
	return 0;
}

bool hbc_vm_has_cred(const struct hbc_config_vm *vm)
{
	return vm->uid != HBC_ID_UNSET || vm->gid != HBC_ID_UNSET || vm->pidfile[0] ||
	       vm->label[0];
}

/* The pid in a QEMU pid file (one decimal number), or -1. */
static pid_t read_pidfile(const char *path)
{
	long pid = hbc_read_long(path);

	return pid > 0 && pid <= 0x3fffffff ? (pid_t)pid : -1;
}

int hbc_vm_cred_check(const struct hbc_config_vm *vm, const struct hbc_cred *cred, char *why,
		      size_t len)
{
	pid_t pid;

	if (vm->uid != HBC_ID_UNSET && cred->uid != vm->uid) {
		snprintf(why, len, "uid %u is not the VM's user %u", (unsigned)cred->uid,
			 (unsigned)vm->uid);
		return -EACCES;
	}
	if (vm->gid != HBC_ID_UNSET && cred->gid != vm->gid) {
		snprintf(why, len, "gid %u is not the VM's group %u", (unsigned)cred->gid,
			 (unsigned)vm->gid);
		return -EACCES;
	}
	if (vm->pidfile[0]) {
		pid = read_pidfile(vm->pidfile);
		if (pid < 0 || cred->pid != pid) {
			snprintf(why, len, "pid %d is not the one in %s (%d)", (int)cred->pid,
				 vm->pidfile, (int)pid);
			return -EACCES;
		}
	}
	if (vm->label[0] && strcmp(cred->label, vm->label) != 0) {
		snprintf(why, len, "label '%s' is not the VM's label '%s'",
			 cred->label[0] ? cred->label : "(none)", vm->label);
		return -EACCES;
	}
	return 0;
}

/* HBC_DAEMON_USER's uid from /etc/passwd, where systemd-sysusers and adduser put system
 * users: read directly, since NSS in a library (and in static builds) is more than this needs.
 * (uid_t)-1 when there is none. */
static uid_t daemon_user_uid(void)
{
	static const char prefix[] = HBC_DAEMON_USER ":";
	char line[512], *p, *end;
	uid_t uid = (uid_t)-1;
	unsigned long v;
	FILE *f = fopen("/etc/passwd", "re");

	if (!f)
		return uid;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, prefix, sizeof(prefix) - 1) != 0)
			continue;
		/* name:password:uid:... */
		p = strchr(line + sizeof(prefix) - 1, ':');
		if (!p)
			break;
		errno = 0;
		v = strtoul(p + 1, &end, 10);
		if (errno == 0 && end != p + 1 && *end == ':' && v != (unsigned long)(uid_t)-1)
			uid = (uid_t)v;
		break;
	}
	fclose(f);
	return uid;
}

int hbc_server_check(int sock, uid_t *uid)
{
	const char *want = getenv("HYPERBUF_DAEMON_UID");
	struct hbc_cred cred;
	int r = hbc_peer_cred(sock, &cred);

	if (r < 0)
		return r;
	*uid = cred.uid;
	if (cred.uid == 0 || cred.uid == geteuid())
		return 0;
	if (want && *want && strtoul(want, NULL, 10) == cred.uid)
		return 0;
	if (cred.uid == daemon_user_uid())
		return 0;
	return -EACCES;
}
