/*
 * The hyperbufd configuration model: what a config file (docs/hyperbuf.conf.5) says, once loaded.
 * The daemon loads and validates a config whole before anybody uses it (daemon/config.h), so
 * SIGHUP can swap it in only when valid; the backends only read it, through this header.
 */
#ifndef HB_CONFIG_H
#define HB_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HBC_NAME_MAX           64
#define HBC_CONFIG_MAX_VMS     256
#define HBC_CONFIG_MAX_GROUPS  64
#define HBC_CONFIG_MAX_MEMBERS 64
#define HBC_CONFIG_MAX_PORTS   64  /* virtio-serial ports (channel sockets) per VM */
#define HBC_SUN_PATH_MAX       108 /* sizeof(sockaddr_un.sun_path), NUL included */

#define HBC_CONFIG_PATH_MAX    256 /* other paths (pid files) */
#define HBC_CONFIG_LABEL_MAX   256 /* LSM labels */
#define HBC_ID_UNSET           ((uint32_t)-1) /* a uid or gid the config does not name */

enum hbc_backend_kind { HBC_BACKEND_KVM = 1, HBC_BACKEND_XEN = 2 };

/* Placeholders in socket paths: one socket per port of a VM, one per VM member of a group. */
#define HBC_CONFIG_PORT_PLACEHOLDER "{port}"
#define HBC_CONFIG_VM_PLACEHOLDER   "{vm}"

struct hbc_config_vm {
	char name[HBC_NAME_MAX];
	uint32_t id;                    /* 1..2^31 */
	char channel[HBC_SUN_PATH_MAX]; /* absolute after loading; may hold {port} */
	unsigned ports;                 /* channel sockets, 1..HBC_CONFIG_MAX_PORTS */
	/* Who its QEMU is (docs/SECURITY.md): every connection on its sockets must be this uid,
	 * gid, pid (read from pidfile at each connection) and LSM label; unset ones are not
	 * checked. Its sockets are owned by uid/gid, mode 0600 (0660 with a group only). */
	uint32_t uid, gid;                    /* HBC_ID_UNSET: not checked */
	uint32_t sock_gid; /* its sockets' and folder's group: gid, else the user's primary one */
	char pidfile[HBC_CONFIG_PATH_MAX];    /* absolute after loading; "" not checked */
	char label[HBC_CONFIG_LABEL_MAX];     /* SO_PEERSEC; "" not checked */
	unsigned ivshmem_conns;               /* connections it may have per group, default 1 */
};

struct hbc_config_group {
	char name[HBC_NAME_MAX];
	uint32_t id;                              /* 1.. in file order */
	uint32_t members[HBC_CONFIG_MAX_MEMBERS]; /* domain ids; "host" is 0 */
	unsigned n_members;
	uint64_t size;                  /* power of two, >= 64 KiB */
	char ivshmem[HBC_SUN_PATH_MAX]; /* absolute after loading; may hold {vm} */
	bool ivshmem_per_vm;            /* it does: one socket per member VM */
	unsigned vectors;               /* eventfds per peer, 1..64, default 1 */
	/* The most of the pool one member may hold, in percent; 0: an equal share. */
	unsigned share_pct;
};

struct hbc_config {
	enum hbc_backend_kind backend;
	char socket[HBC_SUN_PATH_MAX];  /* host clients; absolute */
	uint32_t socket_uid, socket_gid; /* its owner (HBC_ID_UNSET: the daemon's) */
	unsigned socket_mode;            /* default 0660 */
	char control[HBC_SUN_PATH_MAX]; /* hyperbufctl's; default: beside socket */
	uint32_t control_gid;           /* who besides root may use it (HBC_ID_UNSET: nobody) */
	unsigned control_mode;          /* default 0600, 0660 with control_group */
	unsigned socket_dir_mode;       /* folders the daemon creates for its sockets: 0755 */
	/* Prometheus text (daemon/metrics.c): served on a socket, written to a file; "": off. */
	char metrics_socket[HBC_SUN_PATH_MAX];
	char metrics_file[HBC_CONFIG_PATH_MAX];
	uint32_t metrics_interval_ms; /* how often metrics_file is written, default 10000 */
	int log_level;                 /* enum hbc_log_level */

	uint32_t exports_per_domain;   /* default 4096 */
	uint64_t pages_per_domain;     /* default 1048576 */
	uint32_t event_queue;          /* default 256, 16..HBP_EVENT_QUEUE_LIMIT */
	uint32_t meta_max;             /* default HBP_META_LIMIT (4096), 1024..HBP_META_LIMIT */
	uint32_t timelines_per_domain; /* default 1024, 1..1000000 */
	/* Pending fence waits per domain (default 65536, 1..2^24); also the most completions a
	 * session may leave undelivered before it is dropped. */
	uint32_t fence_waits_per_domain;
	uint32_t imports_per_domain;  /* default 65536, live imports a domain may hold */
	uint32_t sessions_per_domain; /* default 64, a VM's connections incl. pre-Hello */
	uint32_t sessions_per_uid;    /* default 64, host sessions of one local user */
	uint32_t pending_per_uid;     /* default 8, host connections of one user before Hello */
	uint32_t hello_timeout_ms;    /* default 2000, for host and control connections */
	uint32_t resume_timeout_ms;   /* default 10000: a restored session waits this long */

	struct hbc_config_vm vms[HBC_CONFIG_MAX_VMS];
	unsigned n_vms;
	struct hbc_config_group groups[HBC_CONFIG_MAX_GROUPS];
	unsigned n_groups;

	bool xen_all_domains; /* [xen] domains = all */
	uint32_t xen_domains[HBC_CONFIG_MAX_VMS];
	unsigned n_xen_domains;
	uint32_t xen_grant_budget;    /* pages a domain may grant; 0: 3/4 of its table */
	uint32_t xen_maptrack_budget; /* pages a domain may map; 0: half of the default */
};

/* A config from hbd_config_load_*() (daemon/config.h); NULL is fine. */
void hbc_config_free(struct hbc_config *c);

/* The socket of port `port` (0..ports-1) of a VM's channel, {port} replaced by the number.
 * Returns 0, or -ENAMETOOLONG (never for a loaded config: it checked every port). */
int hbc_config_channel_path(const struct hbc_config_vm *vm, unsigned port,
			    char out[HBC_SUN_PATH_MAX]);
/* The ivshmem socket of group g that VM vm connects to: {vm} replaced by its name, or the one
 * shared socket. Returns 0 or -ENAMETOOLONG (never for a loaded config and a member VM). */
int hbc_config_ivshmem_path(const struct hbc_config_group *g, const struct hbc_config_vm *vm,
			    char out[HBC_SUN_PATH_MAX]);

/* The control socket a host socket's path implies: "X.sock" -> "X-control.sock", else
 * "X.control". Returns 0 or -ENAMETOOLONG. hyperbufctl finds the daemon's this way. */
int hbc_config_control_path(const char *socket, char out[HBC_SUN_PATH_MAX]);

/* Lookups; NULL if absent. */
const struct hbc_config_vm *hbc_config_vm_by_id(const struct hbc_config *c, uint32_t id);
/* Domain name for logs and hyperbufctl: "host" for 0, the VM name, else NULL. */
const char *hbc_config_domain_name(const struct hbc_config *c, uint32_t id);

#endif
