/*
 * libFuzzer target: the daemon's config loader (daemon/config_*.c, common/config.c), as
 * hyperbufd runs it on a file and on its embedded text. The input up to its first NUL byte is
 * loaded as a string; what follows it is written to a file and loaded from there (a NUL in it
 * must be refused); when both load, the second is reloaded into the first as SIGHUP does.
 * Oracles besides the sanitizers: a config that loads keeps every promise common/config.h
 * makes about a loaded config, and a reload copies exactly the [limits] and the log level.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

#include "common/config.h"
#include "common/log.h"
#include "daemon/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/hbfuzz-config.XXXXXX";
static char file[sizeof(dir) + 16];

/* Also when a sanitizer or an oracle stops the process. */
static void cleanup(void)
{
	unlink(file);
	rmdir(dir);
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "fuzz_config: " __VA_ARGS__);                                      \
		fprintf(stderr, "\n");                                                             \
		cleanup();                                                                         \
		abort();                                                                           \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(file, sizeof(file), "%s/fuzz.conf", dir);
	atexit(cleanup);
	__sanitizer_set_death_callback(cleanup);
	/* The loader logs nothing itself, but keep it quiet should it start to. */
	hbc_log_set_level(HBC_LOG_SILENT);
	return 0;
}

/* Absolute and short enough for a socket address. (The loader takes "/" or "/run/" too, which
 * no socket can have: the daemon says so when it binds. That is all it promises.) */
static bool path_ok(const char *p)
{
	size_t len = strnlen(p, HBC_SUN_PATH_MAX);

	return len < HBC_SUN_PATH_MAX && p[0] == '/';
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Every listening socket the config makes has a path of its own. */
static void check_sockets(const struct hbc_config *c)
{
	size_t n = 1, k = 0;
	char(*paths)[HBC_SUN_PATH_MAX];

	for (unsigned i = 0; i < c->n_vms; i++)
		n += c->vms[i].ports;
	for (unsigned i = 0; i < c->n_groups; i++)
		n += c->groups[i].n_members;
	paths = calloc(n, sizeof(*paths));
	if (!paths)
		FAIL("out of memory");
	strcpy(paths[k++], c->socket);
	for (unsigned i = 0; i < c->n_vms; i++)
		for (unsigned port = 0; port < c->vms[i].ports; port++)
			if (hbc_config_channel_path(&c->vms[i], port, paths[k++]) < 0 ||
			    !path_ok(paths[k - 1]))
				FAIL("[vm %s] port %u: no socket path", c->vms[i].name, port);
	for (unsigned i = 0; i < c->n_groups; i++) {
		const struct hbc_config_group *g = &c->groups[i];

		for (unsigned m = 0; m < g->n_members; m++) {
			const struct hbc_config_vm *vm = hbc_config_vm_by_id(c, g->members[m]);

			if (g->ivshmem_per_vm ? !vm : m > 0)
				continue;
			if (hbc_config_ivshmem_path(g, vm, paths[k++]) < 0 ||
			    !path_ok(paths[k - 1]))
				FAIL("[group %s]: no ivshmem path", g->name);
		}
	}
	qsort(paths, k, sizeof(*paths), cmp_path);
	for (size_t i = 1; i < k; i++)
		if (strcmp(paths[i - 1], paths[i]) == 0)
			FAIL("two sockets on %s", paths[i]);
	free(paths);
}

static void check_group(const struct hbc_config *c, unsigned i)
{
	const struct hbc_config_group *g = &c->groups[i];

	if (g->id != i + 1 || !g->name[0] || g->n_members < 2 ||
	    g->n_members > HBC_CONFIG_MAX_MEMBERS || g->size < 65536 || (g->size & (g->size - 1)) ||
	    g->vectors < 1 || g->vectors > 64 || !path_ok(g->ivshmem))
		FAIL("[group %s] is not a group a daemon can run", g->name);
	for (unsigned m = 0; m < g->n_members; m++) {
		if (g->members[m] && !hbc_config_vm_by_id(c, g->members[m]))
			FAIL("[group %s]: member %u is no VM", g->name, g->members[m]);
		for (unsigned o = 0; o < m; o++)
			if (g->members[o] == g->members[m])
				FAIL("[group %s]: member %u twice", g->name, g->members[m]);
	}
}

/* What common/config.h promises of a loaded config. */
static void check_loaded(const struct hbc_config *c)
{
	if ((c->backend != HBC_BACKEND_KVM && c->backend != HBC_BACKEND_XEN) ||
	    !path_ok(c->socket) || c->log_level < HBC_LOG_ERROR || c->log_level > HBC_LOG_DEBUG)
		FAIL("the [daemon] section loaded wrong");
	if (c->event_queue < 16 || c->event_queue > 65536 || c->meta_max < 1024 ||
	    c->meta_max > 4096 || !c->exports_per_domain || !c->timelines_per_domain ||
	    !c->fence_waits_per_domain || !c->imports_per_domain || !c->sessions_per_domain ||
	    c->sessions_per_domain > 1024)
		FAIL("[limits] out of range");
	if (c->n_vms > HBC_CONFIG_MAX_VMS || c->n_groups > HBC_CONFIG_MAX_GROUPS ||
	    (c->backend == HBC_BACKEND_XEN && (c->n_vms || c->n_groups)) ||
	    (c->backend == HBC_BACKEND_KVM && (c->n_xen_domains || c->xen_all_domains)))
		FAIL("sections that do not go with backend %d", c->backend);
	for (unsigned i = 0; i < c->n_vms; i++) {
		const struct hbc_config_vm *vm = &c->vms[i];

		if (!vm->name[0] || !vm->id || vm->id > 0x80000000u || vm->ports < 1 ||
		    vm->ports > HBC_CONFIG_MAX_PORTS || !path_ok(vm->channel) ||
		    hbc_config_vm_by_id(c, vm->id) != vm ||
		    strcmp(hbc_config_domain_name(c, vm->id), vm->name) != 0)
			FAIL("[vm %s] is not a VM a daemon can serve", vm->name);
		for (unsigned o = 0; o < i; o++)
			if (strcmp(c->vms[o].name, vm->name) == 0)
				FAIL("[vm %s] twice", vm->name);
	}
	for (unsigned i = 0; i < c->n_groups; i++)
		check_group(c, i);
	check_sockets(c);
}

static struct hbc_config *load_file(const uint8_t *data, size_t size)
{
	char err[512];
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		FAIL("cannot write %s", file);
	close(fd);
	return hbd_config_load_file(file, err, sizeof(err));
}

static void reload(struct hbc_config *running, const struct hbc_config *next)
{
	struct hbc_config before = *running;
	char what[128];
	int r = hbd_config_reload(running, next, what, sizeof(what));

	if (r != (what[0] != '\0'))
		FAIL("reload says %d with '%s'", r, what);
	if (running->exports_per_domain != next->exports_per_domain ||
	    running->pages_per_domain != next->pages_per_domain ||
	    running->event_queue != next->event_queue || running->meta_max != next->meta_max ||
	    running->log_level != next->log_level ||
	    running->sessions_per_domain != next->sessions_per_domain)
		FAIL("reload left a limit behind");
	if (running->n_vms != before.n_vms || running->n_groups != before.n_groups ||
	    memcmp(running->vms, before.vms, sizeof(before.vms)) ||
	    strcmp(running->socket, before.socket))
		FAIL("reload changed what needs a restart");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t len = nul ? (size_t)(nul - data) : size;
	struct hbc_config *a, *b = NULL;
	char *text = malloc(len + 1);
	char err[512] = "";

	if (!text)
		return 0;
	memcpy(text, data, len);
	text[len] = '\0';
	a = hbd_config_load_string(text, dir, err, sizeof(err));
	if (a)
		check_loaded(a);
	else if (!err[0])
		FAIL("a config was refused without a reason");
	if (nul) {
		b = load_file(nul + 1, size - len - 1);
		if (b)
			check_loaded(b);
		if (a && b)
			reload(a, b);
	}
	hbc_config_free(a);
	hbc_config_free(b);
	free(text);
	return 0;
}
