/*
 * The conformance suite's case table, as the targets see it (tests/conform/conform.h is what
 * case code includes; tests/conform/hub.h the runners' side).
 */
#ifndef HB_TESTS_CONFORM_TABLE_H
#define HB_TESTS_CONFORM_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CF_MAX_ROLES 4

struct cf_role {
	uint32_t domain; /* 0 the host, 1 vm1, 2 vm2 */
	void (*fn)(void);
};

/* Targets, for the cases that cannot apply to some (docs/TESTING.md lists each, with why). */
#define CF_EMULATED (1u << 0)
#define CF_QEMU     (1u << 1)
#define CF_XEN      (1u << 2)

struct cf_case {
	const char *name;
	struct cf_role roles[CF_MAX_ROLES];
	unsigned not_on;     /* targets where the case cannot apply: it is reported as a skip */
	const char *why_not; /* ... saying this */
	const char *variant; /* NULL: the default daemon; else the config variant it needs */
};

/* A config variant of the daemon (tests/conform/variants.c): its [limits] and the like,
 * appended to the target's topology. A target runs the cases of each variant on a daemon of
 * that config, after the default run (docs/TESTING.md, "Config variants"). */
struct cf_variant {
	const char *name;
	const char *config;
};

/* The variants, NULL past the end; and one by name (NULL: none such). */
const struct cf_variant *cf_variant_at(unsigned i);
const struct cf_variant *cf_variant_find(const char *name);

void cf_register(const struct cf_case *c);

/* CF_CASE(name, {dom, fn}, {dom, fn}...): one case and its roles, in the table every target
 * runs. The roles of a case start together; each runs in its own process. */
#define CF_CASE(cname, ...) CF_CASE_EXCEPT(cname, 0, NULL, __VA_ARGS__)

/* A case that cannot apply to the targets in not_on (CF_QEMU...), for the reason why. */
#define CF_CASE_EXCEPT(cname, not, why, ...) CF_CASE_IN_EXCEPT(NULL, cname, not, why, __VA_ARGS__)

/* A case that needs the daemon on the config variant named var ("limits"...): it runs in
 * that variant's run only. */
#define CF_CASE_IN(var, cname, ...) CF_CASE_IN_EXCEPT(var, cname, 0, NULL, __VA_ARGS__)
#define CF_CASE_IN_EXCEPT(var, cname, not, why, ...)                                               \
	static const struct cf_case cf_case_##cname = {                                            \
	    #cname, {__VA_ARGS__}, (not ), (why), (var)};                                          \
	__attribute__((constructor)) static void cf_reg_##cname(void)                              \
	{                                                                                          \
		cf_register(&cf_case_##cname);                                                     \
	}

/* The table, in registration order; NULL past the end. */
const struct cf_case *cf_case_at(unsigned i);
const struct cf_case *cf_case_find(const char *name);

/* ---- the targets' side (tests/conform/role.c, tests/conform/hub.c) -------------------------- */

/* Serves a stream to the hub (tests/conform/hub.h): HELLO, then runs each role the hub sends,
 * each in a child process, until QUIT or EOF. address: what cf_connect connects to (NULL: the
 * library's default, as an application in a guest). Returns 0 after QUIT. */
int cf_serve(int fd, uint32_t domain, const char *address);
/* A guest program's raw stream (conform.h, cf_raw_open, for a server without an address): open
 * returns a descriptor on the library's own transport to the daemon, or -errno (-ECONNREFUSED
 * and -EBUSY are tried again), with *relay the process pumping it (0 if none). port: the
 * descriptor is a KVM guest's virtio port (a channel: cf_raw_close sends a marker). Set before
 * cf_serve. */
void cf_raw_guest(int (*open)(pid_t *relay), bool port);
/* A KVM guest program's pools (conform.h, cf_pool_open): bar returns a descriptor to map the BAR2
 * of the ivshmem device whose pool header names group and whose size is size, with *peer_id its
 * IVPosition register, or -errno (-ENODEV: no such device). Set before cf_serve. */
void cf_pool_guest(int (*bar)(uint32_t group, uint64_t size, uint32_t *peer_id));

#endif
