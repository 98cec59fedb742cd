/*
 * The keys of each section: which exist, what value each accepts (docs/hyperbuf.conf.5), and
 * what it sets in the config. A key is checked on its own here; what depends on other
 * sections waits for config_check.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "daemon/config_parse.h"
#include "protocol/limits.h"

/* The bounds of the numbers. The defaults are set where a config (config_load.c) or a [vm] or
 * [group] (config_parse.c) begins. */
#define MAX_EXPORTS_PER_DOMAIN  1000000u
#define MIN_EVENT_QUEUE         16u
#define MIN_META_MAX            HBP_META_MAX_FLOOR
#define MAX_TIMELINES           1000000u
#define MAX_IMPORTS_PER_DOMAIN  1000000u
#define MAX_SESSIONS_PER_DOMAIN 1024u
#define MAX_HELLO_TIMEOUT_MS    60000u
#define MAX_RESUME_TIMEOUT_MS   600000u
#define MIN_METRICS_INTERVAL_MS 1000u
#define MAX_METRICS_INTERVAL_MS 3600000u
#define MAX_IVSHMEM_CONNS       256u        /* HBK_IVSHMEM_MAX_PEERS: the group's slots */
#define MAX_VM_ID               0x80000000u /* 2^31 */
#define MAX_XEN_DOMID           0x7fefu     /* DOMID_FIRST_RESERVED - 1 */
#define MIN_GROUP_SIZE          (64ull << 10)
#define MAX_GROUP_SIZE          (64ull << 30)
#define MAX_VECTORS             64u
/* A pending wait costs the daemon about 100 bytes; 2^24 of them per domain is 1.6 GiB, more
 * than any sane pipeline needs and still an amount a host can survive. */
#define MAX_FENCE_WAITS (1u << 24)

/* Keys per section, in the order of the key_line slots. NULL-terminated. */
static const char *const daemon_keys[] = {
    "backend",
    "socket",
    "log",
    "socket_user",
    "socket_group",
    "socket_mode",
    "control",
    "control_group",
    "control_mode",
    "socket_dir_mode",
    "metrics_socket",
    "metrics_file",
    "metrics_interval_ms",
    NULL,
};
static const char *const limits_keys[] = {
    "exports_per_domain",
    "pages_per_domain",
    "event_queue",
    "meta_max",
    "timelines_per_domain",
    "fence_waits_per_domain",
    "imports_per_domain",
    "sessions_per_domain",
    "sessions_per_uid",
    "pending_per_uid",
    "hello_timeout_ms",
    "resume_timeout_ms",
    NULL,
};
static const char *const vm_keys[] = {
    "id", "channel", "ports", "user", "group", "pidfile", "label", "ivshmem_connections", NULL,
};
static const char *const group_keys[] = {"members", "size", "ivshmem", "vectors", "share", NULL};
static const char *const xen_keys[] = {"domains", "grant_budget", "maptrack_budget", NULL};

enum {
	K_BACKEND,
	K_SOCKET,
	K_LOG,
	K_SOCKET_USER,
	K_SOCKET_GROUP,
	K_SOCKET_MODE,
	K_CONTROL,
	K_CONTROL_GROUP,
	K_CONTROL_MODE,
	K_SOCKET_DIR_MODE,
	K_METRICS_SOCKET,
	K_METRICS_FILE,
	K_METRICS_INTERVAL
};
enum {
	K_EXPORTS,
	K_PAGES,
	K_EVENT_QUEUE,
	K_META_MAX,
	K_TIMELINES,
	K_FENCE_WAITS,
	K_IMPORTS,
	K_SESSIONS,
	K_SESSIONS_PER_UID,
	K_PENDING_PER_UID,
	K_HELLO_TIMEOUT,
	K_RESUME_TIMEOUT
};
enum { K_ID, K_CHANNEL, K_PORTS, K_USER, K_GROUP, K_PIDFILE, K_LABEL, K_IVSHMEM_CONNS };
enum { K_MEMBERS, K_SIZE, K_IVSHMEM, K_VECTORS, K_SHARE };
enum { K_DOMAINS, K_GRANT_BUDGET, K_MAPTRACK_BUDGET };

/* A parse has HBD_CONFIG_MAX_KEYS slots for the lines of a section's keys (config_parse.h). */
#define KEYS_FIT(keys) (sizeof(keys) / sizeof(keys[0]) - 1 <= HBD_CONFIG_MAX_KEYS)
_Static_assert(KEYS_FIT(daemon_keys) && KEYS_FIT(limits_keys) && KEYS_FIT(vm_keys) &&
		   KEYS_FIT(group_keys) && KEYS_FIT(xen_keys),
	       "a section has more keys than HBD_CONFIG_MAX_KEYS");

static const char *const *section_keys(enum hbd_config_section sec)
{
	switch (sec) {
	case HBD_SEC_DAEMON:
		return daemon_keys;
	case HBD_SEC_LIMITS:
		return limits_keys;
	case HBD_SEC_VM:
		return vm_keys;
	case HBD_SEC_GROUP:
		return group_keys;
	case HBD_SEC_XEN:
		return xen_keys;
	default:
		return NULL;
	}
}

/* The sockets' modes beyond the host socket's, and the metrics (daemon/metrics.c). */
static void daemon_key_more(struct hbd_config_parse *p, int k, const char *key, const char *value)
{
	struct hbc_config *c = p->c;
	uint64_t v;

	switch (k) {
	case K_CONTROL_MODE:
		hbd_config_mode(p, key, value, &c->control_mode);
		break;
	case K_METRICS_SOCKET:
		if (hbd_config_path(p, key, value, c->metrics_socket))
			p->metrics_line = p->lineno;
		break;
	case K_METRICS_FILE:
		hbd_config_file_path(p, key, value, c->metrics_file);
		break;
	case K_METRICS_INTERVAL:
		if (hbd_config_number(p, key, value, MIN_METRICS_INTERVAL_MS,
				      MAX_METRICS_INTERVAL_MS, &v))
			c->metrics_interval_ms = (uint32_t)v;
		break;
	case K_SOCKET_DIR_MODE:
		/* A folder others could write to is refused at start (common/sock.c): say so now.
		 */
		if (hbd_config_mode(p, key, value, &c->socket_dir_mode) &&
		    (c->socket_dir_mode & 022))
			hbd_config_fail(
			    p, p->lineno,
			    "%s = %s: a socket folder must be writable by its owner only", key,
			    value);
		break;
	}
}

static void daemon_key(struct hbd_config_parse *p, int k, const char *key, const char *value)
{
	struct hbc_config *c = p->c;
	int level;

	switch (k) {
	case K_BACKEND:
		p->backend_line = p->lineno;
		if (strcmp(value, "kvm") == 0)
			c->backend = HBC_BACKEND_KVM;
		else if (strcmp(value, "xen") == 0)
			c->backend = HBC_BACKEND_XEN;
		else if (strcmp(value, "auto") == 0)
			p->backend_line = 0; /* decided in hbd_config_check(), as if unset */
		else
			hbd_config_fail(p, p->lineno, "backend = '%s': must be kvm, xen or auto",
					value);
		break;
	case K_SOCKET:
		p->socket_line = p->lineno;
		hbd_config_path(p, key, value, c->socket);
		break;
	case K_LOG:
		level = hbc_log_parse_level(value);
		if (level < 0)
			hbd_config_fail(p, p->lineno,
					"log = '%s': must be error, warn, info or debug", value);
		else
			c->log_level = level;
		break;
	case K_SOCKET_USER:
		hbd_config_user(p, key, value, &c->socket_uid, &(uint32_t){0});
		break;
	case K_SOCKET_GROUP:
		hbd_config_group(p, key, value, &c->socket_gid);
		break;
	case K_SOCKET_MODE:
		hbd_config_mode(p, key, value, &c->socket_mode);
		break;
	case K_CONTROL:
		if (hbd_config_path(p, key, value, c->control))
			p->control_line = p->lineno;
		break;
	case K_CONTROL_GROUP:
		hbd_config_group(p, key, value, &c->control_gid);
		break;
	default:
		daemon_key_more(p, k, key, value);
		break;
	}
}

static void limits_key(struct hbd_config_parse *p, int k, const char *key, const char *value)
{
	struct hbc_config *c = p->c;
	uint64_t v;

	switch (k) {
	case K_EXPORTS:
		if (hbd_config_number(p, key, value, 1, MAX_EXPORTS_PER_DOMAIN, &v))
			c->exports_per_domain = (uint32_t)v;
		break;
	case K_PAGES:
		if (hbd_config_number(p, key, value, 1, UINT64_MAX, &v))
			c->pages_per_domain = v;
		break;
	case K_EVENT_QUEUE:
		if (hbd_config_number(p, key, value, MIN_EVENT_QUEUE, HBP_EVENT_QUEUE_LIMIT, &v))
			c->event_queue = (uint32_t)v;
		break;
	case K_META_MAX:
		if (hbd_config_number(p, key, value, MIN_META_MAX, HBP_META_LIMIT, &v))
			c->meta_max = (uint32_t)v;
		break;
	case K_TIMELINES:
		if (hbd_config_number(p, key, value, 1, MAX_TIMELINES, &v))
			c->timelines_per_domain = (uint32_t)v;
		break;
	case K_FENCE_WAITS:
		if (hbd_config_number(p, key, value, 1, MAX_FENCE_WAITS, &v))
			c->fence_waits_per_domain = (uint32_t)v;
		break;
	case K_IMPORTS:
		if (hbd_config_number(p, key, value, 1, MAX_IMPORTS_PER_DOMAIN, &v))
			c->imports_per_domain = (uint32_t)v;
		break;
	case K_SESSIONS:
		if (hbd_config_number(p, key, value, 1, MAX_SESSIONS_PER_DOMAIN, &v))
			c->sessions_per_domain = (uint32_t)v;
		break;
	case K_SESSIONS_PER_UID:
		if (hbd_config_number(p, key, value, 1, MAX_SESSIONS_PER_DOMAIN, &v))
			c->sessions_per_uid = (uint32_t)v;
		break;
	case K_PENDING_PER_UID:
		if (hbd_config_number(p, key, value, 1, MAX_SESSIONS_PER_DOMAIN, &v))
			c->pending_per_uid = (uint32_t)v;
		break;
	case K_HELLO_TIMEOUT:
		if (hbd_config_number(p, key, value, 100, MAX_HELLO_TIMEOUT_MS, &v))
			c->hello_timeout_ms = (uint32_t)v;
		break;
	case K_RESUME_TIMEOUT:
		if (hbd_config_number(p, key, value, 100, MAX_RESUME_TIMEOUT_MS, &v))
			c->resume_timeout_ms = (uint32_t)v;
		break;
	}
}

/* Who the VM's QEMU is, and how many connections it may have (docs/SECURITY.md). */
static void vm_identity_key(struct hbd_config_parse *p, struct hbc_config_vm *vm, int k,
			    const char *key, const char *value)
{
	uint32_t primary;
	uint64_t v;

	switch (k) {
	case K_USER:
		if (hbd_config_user(p, key, value, &vm->uid, &primary) &&
		    vm->sock_gid == HBC_ID_UNSET)
			vm->sock_gid = primary;
		break;
	case K_GROUP:
		if (hbd_config_group(p, key, value, &vm->gid))
			vm->sock_gid = vm->gid;
		break;
	case K_PIDFILE:
		hbd_config_file_path(p, key, value, vm->pidfile);
		break;
	case K_LABEL:
		if (strlen(value) >= sizeof(vm->label))
			hbd_config_fail(p, p->lineno, "label: longer than %zu bytes",
					sizeof(vm->label) - 1);
		else
			strcpy(vm->label, value);
		break;
	case K_IVSHMEM_CONNS:
		if (hbd_config_number(p, key, value, 1, MAX_IVSHMEM_CONNS, &v))
			vm->ivshmem_conns = (unsigned)v;
		break;
	}
}

static void vm_key(struct hbd_config_parse *p, int k, const char *key, const char *value)
{
	struct hbc_config *c = p->c;
	struct hbc_config_vm *vm = &c->vms[p->sec_index];
	uint64_t v;
	unsigned i;

	switch (k) {
	case K_ID:
		if (!hbd_config_number(p, key, value, 1, MAX_VM_ID, &v))
			break;
		for (i = 0; i < c->n_vms; i++)
			if (i != p->sec_index && c->vms[i].id == v) {
				hbd_config_fail(
				    p, p->lineno, "id %llu is already the id of [vm %s] (line %u)",
				    (unsigned long long)v, c->vms[i].name, p->vms[i].id_line);
				return;
			}
		vm->id = (uint32_t)v;
		p->vms[p->sec_index].id_line = p->lineno;
		break;
	case K_CHANNEL:
		if (hbd_config_path(p, key, value, vm->channel) &&
		    hbd_config_placeholders(p, key, vm->channel, HBC_CONFIG_PORT_PLACEHOLDER))
			p->vms[p->sec_index].channel_line = p->lineno;
		break;
	case K_PORTS:
		if (hbd_config_number(p, key, value, 1, HBC_CONFIG_MAX_PORTS, &v)) {
			vm->ports = (unsigned)v;
			p->vms[p->sec_index].ports_line = p->lineno;
		}
		break;
	default:
		vm_identity_key(p, vm, k, key, value);
		break;
	}
}

static void group_key(struct hbd_config_parse *p, int k, const char *key, const char *value)
{
	struct hbc_config_group *g = &p->c->groups[p->sec_index];
	struct hbd_config_group_source *gx = &p->groups[p->sec_index];
	uint64_t v;

	switch (k) {
	case K_MEMBERS:
		/* Kept raw: a group may name VMs whose sections come later in the file. */
		gx->members = strdup(value);
		gx->members_line = p->lineno;
		if (!gx->members) {
			p->oom = true;
			hbd_config_fail(p, p->lineno, "out of memory");
		}
		break;
	case K_SIZE:
		if (!hbd_config_parse_size(value, &v)) {
			hbd_config_fail(p, p->lineno,
					"size = '%s': not a size (a number with K, M or G)", value);
			break;
		}
		if (v < MIN_GROUP_SIZE || v > MAX_GROUP_SIZE) {
			hbd_config_fail(p, p->lineno, "size = %s: out of range (64K..64G)", value);
			break;
		}
		if (v & (v - 1)) {
			hbd_config_fail(p, p->lineno, "size = %s: not a power of two", value);
			break;
		}
		g->size = v;
		break;
	case K_IVSHMEM:
		if (hbd_config_path(p, key, value, g->ivshmem) &&
		    hbd_config_placeholders(p, key, g->ivshmem, HBC_CONFIG_VM_PLACEHOLDER)) {
			gx->ivshmem_line = p->lineno;
			g->ivshmem_per_vm = strstr(g->ivshmem, HBC_CONFIG_VM_PLACEHOLDER) != NULL;
		}
		break;
	case K_VECTORS:
		if (hbd_config_number(p, key, value, 1, MAX_VECTORS, &v))
			g->vectors = (unsigned)v;
		break;
	case K_SHARE:
		hbd_config_percent(p, key, value, &g->share_pct);
		break;
	}
}

static bool xen_domain_item(struct hbd_config_parse *p, void *arg, const char *item)
{
	struct hbc_config *c = p->c;
	uint64_t v;
	unsigned i;

	(void)arg;
	if (strcmp(item, "all") == 0) {
		hbd_config_fail(p, p->lineno, "domains: \"all\" must stand alone");
		return false;
	}
	if (!hbd_config_parse_u64(item, &v) || v < 1 || v > MAX_XEN_DOMID) {
		hbd_config_fail(p, p->lineno, "domains: '%s' is not a guest domid (1..%u)", item,
				MAX_XEN_DOMID);
		return false;
	}
	for (i = 0; i < c->n_xen_domains; i++)
		if (c->xen_domains[i] == v) {
			hbd_config_fail(p, p->lineno, "domains: %llu is listed twice",
					(unsigned long long)v);
			return false;
		}
	if (c->n_xen_domains == HBC_CONFIG_MAX_VMS) {
		hbd_config_fail(p, p->lineno, "domains: more than %d domids", HBC_CONFIG_MAX_VMS);
		return false;
	}
	c->xen_domains[c->n_xen_domains++] = (uint32_t)v;
	return true;
}

static void xen_key(struct hbd_config_parse *p, int k, const char *key, const char *value)
{
	uint64_t v;
	char *list;

	/* Budgets in pages, 0 meaning "derive it from the domain's tables" (docs/XEN.md). */
	if (k == K_GRANT_BUDGET || k == K_MAPTRACK_BUDGET) {
		if (hbd_config_number(p, key, value, 0, UINT32_MAX, &v)) {
			if (k == K_GRANT_BUDGET)
				p->c->xen_grant_budget = (uint32_t)v;
			else
				p->c->xen_maptrack_budget = (uint32_t)v;
		}
		return;
	}
	if (strcmp(value, "all") == 0) {
		p->c->xen_all_domains = true;
		return;
	}
	list = strdup(value);
	if (!list) {
		p->oom = true;
		hbd_config_fail(p, p->lineno, "out of memory");
		return;
	}
	hbd_config_for_each_item(list, xen_domain_item, p, NULL);
	free(list);
}

int hbd_config_handle_key(void *user, const char *section, const char *key, const char *value)
{
	struct hbd_config_parse *p = user;
	const char *const *keys;
	int k;

	(void)section; /* ours is p->sec, which is never cut short */
	if (p->sec == HBD_SEC_BAD)
		return 1; /* the header was reported; its keys would only add noise */
	if (p->sec == HBD_SEC_NONE) {
		hbd_config_fail(p, p->lineno, "'%s' is outside any section", key);
		return 0;
	}
	keys = section_keys(p->sec);
	for (k = 0; keys[k]; k++)
		if (strcmp(keys[k], key) == 0)
			break;
	if (!keys[k]) {
		hbd_config_fail(p, p->lineno, "unknown key '%s' in [%s]", key, p->sec_title);
		return 0;
	}
	if (p->key_line[k]) {
		hbd_config_fail(p, p->lineno, "duplicate key '%s' in [%s] (first at line %u)", key,
				p->sec_title, p->key_line[k]);
		return 0;
	}
	p->key_line[k] = p->lineno;

	switch (p->sec) {
	case HBD_SEC_DAEMON:
		daemon_key(p, k, key, value);
		break;
	case HBD_SEC_LIMITS:
		limits_key(p, k, key, value);
		break;
	case HBD_SEC_VM:
		vm_key(p, k, key, value);
		break;
	case HBD_SEC_GROUP:
		group_key(p, k, key, value);
		break;
	case HBD_SEC_XEN:
		xen_key(p, k, key, value);
		break;
	default:
		break;
	}
	return p->failed ? 0 : 1;
}
