/*
 * Folders of VMs' sockets. A folder that holds the sockets of one VM only becomes the daemon's
 * with that VM's group, mode 0710: only the daemon and the VM's QEMU can even look up the
 * sockets in it. A folder shared with other sockets keeps its mode, and the sockets their own
 * (0600, the VM's user), which is what keeps other VMs out either way.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "daemon/hyperbufd.h"

/* Calls fn(ctx, path, vm) for every socket the config makes (vm NULL: not a VM's own). */
static void for_each_socket(const struct hbc_config *cfg,
			    void (*fn)(void *ctx, const char *path, const struct hbc_config_vm *vm),
			    void *ctx)
{
	char path[HBC_SUN_PATH_MAX];

	fn(ctx, cfg->socket, NULL);
	fn(ctx, cfg->control, NULL);
	for (unsigned i = 0; i < cfg->n_vms; i++)
		for (unsigned k = 0; k < cfg->vms[i].ports; k++)
			if (hbc_config_channel_path(&cfg->vms[i], k, path) == 0)
				fn(ctx, path, &cfg->vms[i]);
	for (unsigned i = 0; i < cfg->n_groups; i++) {
		const struct hbc_config_group *g = &cfg->groups[i];

		if (!g->ivshmem_per_vm) {
			fn(ctx, g->ivshmem, NULL);
			continue;
		}
		for (unsigned m = 0; m < g->n_members; m++) {
			const struct hbc_config_vm *vm = hbc_config_vm_by_id(cfg, g->members[m]);

			if (vm && hbc_config_ivshmem_path(g, vm, path) == 0)
				fn(ctx, path, vm);
		}
	}
}

static void dir_of(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');

	snprintf(out, len, "%.*s", slash && slash != path ? (int)(slash - path) : 1, path);
}

/* Whether every socket in folder `dir` is vm's. */
struct sole_owner {
	const char *dir;
	const struct hbc_config_vm *vm;
	bool shared;
};

static void check_owner(void *ctx, const char *path, const struct hbc_config_vm *vm)
{
	struct sole_owner *o = ctx;
	char dir[HBC_SUN_PATH_MAX];

	dir_of(path, dir, sizeof(dir));
	if (strcmp(dir, o->dir) == 0 && vm != o->vm)
		o->shared = true;
}

static void restrict_folder(void *ctx, const char *path, const struct hbc_config_vm *vm)
{
	const struct hbc_config *cfg = ctx;
	struct sole_owner o = {.vm = vm};
	char dir[HBC_SUN_PATH_MAX];

	if (!vm || vm->sock_gid == HBC_ID_UNSET)
		return;
	dir_of(path, dir, sizeof(dir));
	o.dir = dir;
	for_each_socket(cfg, check_owner, &o);
	if (o.shared) {
		log_info("vm %s: %s also holds other sockets; the VM's own are its user's, mode 0600 "
			 "(a folder of its own would hide them from other users too)",
			 vm->name, dir);
		return;
	}
	if (chown(dir, geteuid(), (gid_t)vm->sock_gid) < 0 || chmod(dir, 0710) < 0)
		log_warn("vm %s: cannot give %s to its group %u with mode 0710: %s", vm->name,
			 dir, (unsigned)vm->sock_gid, strerror(errno));
}

void hbd_doors_restrict_folders(struct hbd *d)
{
	for_each_socket(d->cfg, restrict_folder, d->cfg);
}
