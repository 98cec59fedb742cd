/*
 * The checks a config needs once the whole file is read: the backend against the sections
 * (deciding it when unset), the keys a [vm] and a [group] require, the members of every group
 * (a group may name VMs whose sections come later), the sockets placeholders make, and that
 * no two listening sockets share a path.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "daemon/config_parse.h"

#define XEN_CAPABILITIES "/proc/xen/capabilities"

/* Xen dom0 is where /proc/xen/capabilities says control_d (xenfs, or the pvops equivalent). */
static enum hbc_backend_kind detect_backend(void)
{
	char buf[256];
	size_t n;
	FILE *f;

	f = fopen(XEN_CAPABILITIES, "re");
	if (!f)
		return HBC_BACKEND_KVM;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, "control_d") ? HBC_BACKEND_XEN : HBC_BACKEND_KVM;
}

static bool group_member_item(struct hbd_config_parse *p, void *arg, const char *item)
{
	struct hbc_config_group *g = arg;
	struct hbc_config *c = p->c;
	unsigned line = p->groups[g->id - 1].members_line;
	uint32_t id;
	unsigned i;

	if (!*item) {
		hbd_config_fail(p, line, "[group %s]: empty name in members", g->name);
		return false;
	}
	if (strcmp(item, "host") == 0) {
		id = 0;
	} else {
		for (i = 0; i < c->n_vms; i++)
			if (strcmp(c->vms[i].name, item) == 0)
				break;
		if (i == c->n_vms) {
			hbd_config_fail(
			    p, line,
			    "[group %s]: unknown member '%s' (neither \"host\" nor a [vm])",
			    g->name, item);
			return false;
		}
		id = c->vms[i].id;
	}
	for (i = 0; i < g->n_members; i++)
		if (g->members[i] == id) {
			hbd_config_fail(p, line, "[group %s]: '%s' is listed twice", g->name, item);
			return false;
		}
	if (g->n_members == HBC_CONFIG_MAX_MEMBERS) {
		hbd_config_fail(p, line, "[group %s]: more than %d members", g->name,
				HBC_CONFIG_MAX_MEMBERS);
		return false;
	}
	g->members[g->n_members++] = id;
	return true;
}

struct used_path {
	char path[HBC_SUN_PATH_MAX];
	unsigned line;
	unsigned order; /* position in the file's order of sockets */
	char what[2 * HBC_NAME_MAX + 32];
};

static int used_path_cmp(const void *a, const void *b)
{
	const struct used_path *x = a, *y = b;
	int r = strcmp(x->path, y->path);

	return r ? r : (x->order > y->order) - (x->order < y->order);
}

/* One entry per listening socket the config makes: the host socket, every port of every VM,
 * every group's socket (one per member VM for a {vm} path). */
static unsigned used_paths(struct hbd_config_parse *p, struct used_path *u)
{
	struct hbc_config *c = p->c;
	unsigned n = 0, i, k, m;

	snprintf(u[n].path, sizeof(u[n].path), "%s", c->socket);
	u[n].line = p->socket_line;
	snprintf(u[n].what, sizeof(u[n].what), "[daemon] socket");
	u[n].order = n;
	n++;
	snprintf(u[n].path, sizeof(u[n].path), "%s", c->control);
	u[n].line = p->control_line ? p->control_line : p->socket_line;
	snprintf(u[n].what, sizeof(u[n].what), "[daemon] control");
	u[n].order = n;
	n++;
	if (c->metrics_socket[0]) {
		snprintf(u[n].path, sizeof(u[n].path), "%s", c->metrics_socket);
		u[n].line = p->metrics_line;
		snprintf(u[n].what, sizeof(u[n].what), "[daemon] metrics_socket");
		u[n].order = n;
		n++;
	}
	for (i = 0; i < c->n_vms; i++) {
		for (k = 0; k < c->vms[i].ports; k++, n++) {
			hbc_config_channel_path(&c->vms[i], k, u[n].path);
			u[n].line = p->vms[i].channel_line;
			u[n].order = n;
			if (c->vms[i].ports > 1)
				snprintf(u[n].what, sizeof(u[n].what), "[vm %s] port %u",
					 c->vms[i].name, k);
			else
				snprintf(u[n].what, sizeof(u[n].what), "[vm %s]", c->vms[i].name);
		}
	}
	for (i = 0; i < c->n_groups; i++) {
		const struct hbc_config_group *g = &c->groups[i];

		for (m = 0; m < g->n_members; m++) {
			const struct hbc_config_vm *vm = hbc_config_vm_by_id(c, g->members[m]);

			if (g->ivshmem_per_vm ? !vm : m > 0)
				continue;
			hbc_config_ivshmem_path(g, vm, u[n].path);
			u[n].line = p->groups[i].ivshmem_line;
			u[n].order = n;
			if (g->ivshmem_per_vm)
				snprintf(u[n].what, sizeof(u[n].what), "[group %s] for vm %s",
					 g->name, vm->name);
			else
				snprintf(u[n].what, sizeof(u[n].what), "[group %s]", g->name);
			n++;
		}
	}
	return n;
}

static void check_paths(struct hbd_config_parse *p)
{
	struct hbc_config *c = p->c;
	struct used_path *u, *first = NULL, *second = NULL;
	unsigned n = 3, i, j;

	for (i = 0; i < c->n_vms; i++)
		n += c->vms[i].ports;
	for (i = 0; i < c->n_groups; i++)
		n += c->groups[i].n_members;
	u = calloc(n, sizeof(*u));
	if (!u) {
		p->oom = true;
		hbd_config_fail(p, 0, "out of memory");
		return;
	}
	n = used_paths(p, u);
	/* Every listening socket needs a path of its own: binding one would unlink the other.
	 * Sorted, equal paths are neighbours; of all clashes, report the one whose second socket
	 * comes first in the file, as reading it top to bottom would find it. */
	qsort(u, n, sizeof(*u), used_path_cmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && strcmp(u[i].path, u[j].path) == 0; j++)
			;
		if (j - i > 1 && (!second || u[i + 1].order < second->order)) {
			first = &u[i];
			second = &u[i + 1];
		}
	}
	if (second)
		hbd_config_fail(p, second->line ? second->line : first->line,
				"%s uses the path %s, as %s does", second->what, second->path,
				first->what);
	free(u);
}

/* Placeholders are expanded here, once every [vm] is known: the sockets they make must each
 * fit a socket address, and a VM with several ports needs {port} to tell them apart. */
static void check_templates(struct hbd_config_parse *p)
{
	struct hbc_config *c = p->c;
	char out[HBC_SUN_PATH_MAX];
	unsigned i, m;

	for (i = 0; i < c->n_vms && !p->failed; i++) {
		const struct hbc_config_vm *vm = &c->vms[i];
		const struct hbd_config_vm_source *vx = &p->vms[i];

		/* A number is never longer than {port}, so the written path's check covers every
		 * port's socket. */
		if (vm->ports > 1 && !strstr(vm->channel, HBC_CONFIG_PORT_PLACEHOLDER))
			hbd_config_fail(p, vx->ports_line,
					"[vm %s]: ports = %u needs " HBC_CONFIG_PORT_PLACEHOLDER
					" in channel (one socket per port)",
					vm->name, vm->ports);
	}
	for (i = 0; i < c->n_groups && !p->failed; i++) {
		const struct hbc_config_group *g = &c->groups[i];

		if (!g->ivshmem_per_vm)
			continue;
		for (m = 0; m < g->n_members && !p->failed; m++) {
			const struct hbc_config_vm *vm = hbc_config_vm_by_id(c, g->members[m]);

			if (vm && hbc_config_ivshmem_path(g, vm, out) < 0)
				hbd_config_fail(
				    p, p->groups[i].ivshmem_line,
				    "[group %s]: ivshmem %s for vm %s is longer than a socket path "
				    "(%d bytes)",
				    g->name, g->ivshmem, vm->name, HBC_SUN_PATH_MAX - 1);
		}
	}
}

void hbd_config_check(struct hbd_config_parse *p)
{
	struct hbc_config *c = p->c;
	bool detected = false;
	unsigned i;

	if (!p->backend_line) {
		c->backend = detect_backend();
		detected = true;
	}
	if (c->backend == HBC_BACKEND_XEN && (c->n_vms || c->n_groups)) {
		hbd_config_fail(
		    p, c->n_vms ? p->vms[0].line : p->groups[0].line,
		    "[vm] and [group] sections need the kvm backend, and the backend is xen%s",
		    detected ? " (detected: this is a Xen dom0)" : "");
		return;
	}
	if (c->backend == HBC_BACKEND_KVM && p->xen_line) {
		hbd_config_fail(p, p->xen_line,
				"[xen] needs the xen backend, and the backend is kvm%s",
				detected ? " (detected: this is not a Xen dom0)" : "");
		return;
	}

	for (i = 0; i < c->n_vms; i++) {
		if (!p->vms[i].id_line) {
			hbd_config_fail(p, p->vms[i].line, "[vm %s]: id is required",
					c->vms[i].name);
			return;
		}
		if (!p->vms[i].channel_line) {
			hbd_config_fail(p, p->vms[i].line, "[vm %s]: channel is required",
					c->vms[i].name);
			return;
		}
	}

	for (i = 0; i < c->n_groups; i++) {
		struct hbc_config_group *g = &c->groups[i];
		struct hbd_config_group_source *gx = &p->groups[i];

		if (!gx->members) {
			hbd_config_fail(p, gx->line, "[group %s]: members is required", g->name);
			return;
		}
		if (!hbd_config_for_each_item(gx->members, group_member_item, p, g))
			return;
		if (g->n_members < 2) {
			hbd_config_fail(p, gx->members_line,
					"[group %s]: a group needs at least 2 members", g->name);
			return;
		}
		if (!gx->ivshmem_line) {
			hbd_config_fail(p, gx->line,
					"[group %s]: ivshmem is required with the kvm backend",
					g->name);
			return;
		}
	}

	/* The control socket lives beside the host socket unless the file says where. */
	if (!c->control[0] && hbc_config_control_path(c->socket, c->control) < 0) {
		hbd_config_fail(p, p->socket_line,
				"socket: %s leaves no room for the control socket beside it (set "
				"control = PATH)",
				c->socket);
		return;
	}
	if (c->control_mode == UINT_MAX)
		c->control_mode = c->control_gid != HBC_ID_UNSET ? 0660 : 0600;
	check_templates(p);
	if (!p->failed)
		check_paths(p);
}
