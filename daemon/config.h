/*
 * hyperbufd configuration (INI, parsed with inih). See docs/hyperbuf.conf.5.
 * A config is loaded whole and validated before anybody uses it, so SIGHUP can swap it in
 * only when valid.
 */
#ifndef HB_CONFIG_H
#define HB_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HB_NAME_MAX 64
#define HB_CONFIG_MAX_VMS 256
#define HB_CONFIG_MAX_GROUPS 64
#define HB_CONFIG_MAX_MEMBERS 64
#define HB_CONFIG_MAX_PORTS 64 /* virtio-serial ports (channel sockets) per VM */
#define HB_SUN_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path), NUL included */

enum hb_backend_kind { HB_BACKEND_KVM = 1, HB_BACKEND_XEN = 2 };

/* Placeholders in socket paths: one socket per port of a VM, one per VM member of a group. */
#define HB_CONFIG_PORT_PLACEHOLDER "{port}"
#define HB_CONFIG_VM_PLACEHOLDER   "{vm}"

struct hb_config_vm {
	char name[HB_NAME_MAX];
	uint32_t id;                        /* 1..2^31 */
	char channel[HB_SUN_PATH_MAX];      /* absolute after loading; may hold {port} */
	unsigned ports;                     /* channel sockets, 1..HB_CONFIG_MAX_PORTS */
};

struct hb_config_group {
	char name[HB_NAME_MAX];
	uint32_t id;                        /* 1.. in file order */
	uint32_t members[HB_CONFIG_MAX_MEMBERS]; /* domain ids; "host" is 0 */
	unsigned n_members;
	uint64_t size;                      /* power of two, >= 64 KiB */
	char ivshmem[HB_SUN_PATH_MAX];      /* absolute after loading; may hold {vm} */
	bool ivshmem_per_vm;                /* it does: one socket per member VM */
	unsigned vectors;                   /* eventfds per peer, 1..64, default 1 */
};

struct hb_config {
	enum hb_backend_kind backend;
	char socket[HB_SUN_PATH_MAX];       /* host clients and hyperbufctl; absolute */
	int log_level;                      /* enum hb_log_level */

	uint32_t exports_per_domain;        /* default 4096 */
	uint64_t pages_per_domain;          /* default 1048576 */
	uint32_t event_queue;               /* default 256, 16..HB_EVENT_QUEUE_LIMIT */
	uint32_t meta_max;                  /* default 1024, 1024..HB_META_LIMIT */
	uint32_t timelines_per_domain;      /* default 1024, 1..1000000 */
	/* Pending fence waits per domain (default 65536, 1..2^24); also the most completions a
	 * session may leave undelivered before it is dropped. */
	uint32_t fence_waits_per_domain;
	uint32_t imports_per_domain;        /* default 65536, live imports a domain may hold */
	uint32_t sessions_per_domain;       /* default 64, connections per domain incl. pre-Hello */

	struct hb_config_vm vms[HB_CONFIG_MAX_VMS];
	unsigned n_vms;
	struct hb_config_group groups[HB_CONFIG_MAX_GROUPS];
	unsigned n_groups;

	bool xen_all_domains;               /* [xen] domains = all */
	uint32_t xen_domains[HB_CONFIG_MAX_VMS];
	unsigned n_xen_domains;
	uint32_t xen_grant_budget;          /* pages a domain may grant; 0: 3/4 of its table */
	uint32_t xen_maptrack_budget;       /* pages a domain may map; 0: half of the default */
};

/* The config compiled into hyperbufd, used when no -c is given and the default file is absent. */
extern const char hb_config_default_text[];

/*
 * Loads and validates. path: the file (relative paths inside are relative to its folder).
 * On error returns NULL and writes "FILE:LINE: what is wrong" to err.
 */
struct hb_config *hb_config_load_file(const char *path, char *err, size_t errlen);
/* Same for a config held in memory; base_dir resolves relative paths. */
struct hb_config *hb_config_load_string(const char *text, const char *base_dir, char *err,
					size_t errlen);
void hb_config_free(struct hb_config *c);

/* The socket of port `port` (0..ports-1) of a VM's channel, {port} replaced by the number.
 * Returns 0, or -ENAMETOOLONG (never for a loaded config: it checked every port). */
int hb_config_channel_path(const struct hb_config_vm *vm, unsigned port, char out[HB_SUN_PATH_MAX]);
/* The ivshmem socket of group g that VM vm connects to: {vm} replaced by its name, or the one
 * shared socket. Returns 0 or -ENAMETOOLONG (never for a loaded config and a member VM). */
int hb_config_ivshmem_path(const struct hb_config_group *g, const struct hb_config_vm *vm,
			   char out[HB_SUN_PATH_MAX]);

/* Lookups; NULL if absent. */
const struct hb_config_vm *hb_config_vm_by_id(const struct hb_config *c, uint32_t id);
/* Domain name for logs and hyperbufctl: "host" for 0, the VM name, else NULL. */
const char *hb_config_domain_name(const struct hb_config *c, uint32_t id);

#endif
