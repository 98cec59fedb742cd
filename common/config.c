/*
 * The config model's own functions (see config.h): lookups and the socket paths a template
 * makes. They only read a loaded config, which is why the backends may call them; loading and
 * checking a config is the daemon's business (daemon/config.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

/*
 * Copies tmpl to out with every placeholder ph replaced by value. Returns 0, or -ENAMETOOLONG
 * when the result does not fit a socket address.
 */
static int expand(const char *tmpl, const char *ph, const char *value, char out[HBC_SUN_PATH_MAX])
{
	size_t n = 0, phl = strlen(ph), vl = strlen(value);
	const char *q = tmpl;

	while (*q) {
		if (strncmp(q, ph, phl) == 0) {
			if (n + vl >= HBC_SUN_PATH_MAX)
				return -ENAMETOOLONG;
			memcpy(out + n, value, vl);
			n += vl;
			q += phl;
		} else {
			if (n + 1 >= HBC_SUN_PATH_MAX)
				return -ENAMETOOLONG;
			out[n++] = *q++;
		}
	}
	out[n] = '\0';
	return 0;
}

int hbc_config_channel_path(const struct hbc_config_vm *vm, unsigned port,
			    char out[HBC_SUN_PATH_MAX])
{
	char num[16];

	snprintf(num, sizeof(num), "%u", port);
	return expand(vm->channel, HBC_CONFIG_PORT_PLACEHOLDER, num, out);
}

int hbc_config_ivshmem_path(const struct hbc_config_group *g, const struct hbc_config_vm *vm,
			    char out[HBC_SUN_PATH_MAX])
{
	return expand(g->ivshmem, HBC_CONFIG_VM_PLACEHOLDER, vm ? vm->name : "", out);
}

void hbc_config_free(struct hbc_config *c)
{
	free(c);
}

const struct hbc_config_vm *hbc_config_vm_by_id(const struct hbc_config *c, uint32_t id)
{
	unsigned i;

	for (i = 0; i < c->n_vms; i++)
		if (c->vms[i].id == id)
			return &c->vms[i];
	return NULL;
}

const char *hbc_config_domain_name(const struct hbc_config *c, uint32_t id)
{
	const struct hbc_config_vm *vm;

	if (id == 0)
		return "host";
	vm = hbc_config_vm_by_id(c, id);
	return vm ? vm->name : NULL;
}

int hbc_config_control_path(const char *socket, char out[HBC_SUN_PATH_MAX])
{
	size_t n = strlen(socket);
	int w;

	if (n > 5 && strcmp(socket + n - 5, ".sock") == 0)
		w = snprintf(out, HBC_SUN_PATH_MAX, "%.*s-control.sock", (int)(n - 5), socket);
	else
		w = snprintf(out, HBC_SUN_PATH_MAX, "%s.control", socket);
	return w < 0 || w >= HBC_SUN_PATH_MAX ? -ENAMETOOLONG : 0;
}
