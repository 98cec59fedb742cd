/*
 * The conformance suite on its emulated target (docs/TESTING.md, "Conformance cases"): one
 * daemon on the conformance topology, a server per domain in a child process of ours (the
 * host's on host.sock, each VM's on its channel socket, mapping the pools through the ivshmem
 * sockets as QEMU would), and every case of tests/conform/ run through them. One run-tests.sh
 * case, "emulated"; its cases are counted one by one ($HB_SUBRESULTS).
 */
#include "tests/conform/hub.h"
#include "tests/it_common.h"

/* The shape of tests/vm_common.h's VM_TOPOLOGY, with emulated VMs' sockets: every domain
 * shares a group of 16 MiB with every other. */
#define CF_EMULATED_TOPOLOGY                                                                       \
	"[daemon]\nbackend = kvm\nsocket = host.sock\nlog = debug\n\n"                             \
	"[vm vm1]\nid = 1\nchannel = vm1.sock\nivshmem_connections = 16\n\n"                       \
	"[vm vm2]\nid = 2\nchannel = vm2.sock\nivshmem_connections = 16\n\n"                       \
	"[group hv1]\nmembers = host, vm1\nsize = 16M\nivshmem = hv1.sock\n\n"                     \
	"[group hv2]\nmembers = host, vm2\nsize = 16M\nivshmem = hv2.sock\n\n"                     \
	"[group vv]\nmembers = vm1, vm2\nsize = 16M\nivshmem = vv.sock\n"

TEST(emulated)
{
	struct hbt_daemon d;
	struct cf_hub h;
	const struct cf_variant *v;

	cf_env_apply();
	hbt_daemon_start_config(&d, CF_EMULATED_TOPOLOGY);
	cf_hub_init(&h, "emulated", CF_EMULATED, &d);
	cf_hub_local(&h, 0, hbt_addr_host(&d));
	cf_hub_local(&h, 1, hbt_addr_vm(&d, 1));
	cf_hub_local(&h, 2, hbt_addr_vm(&d, 2));
	cf_hub_run(&h);
	/* Each config variant's cases on a daemon of its own, in the same folder: the servers
	 * connect their roles by path, so they go on. */
	for (unsigned i = 0; (v = cf_variant_at(i)) != NULL; i++) {
		h.variant = v->name;
		if (cf_hub_wants(&h))
			CHECK_EQ(cf_daemon_variant(&d, CF_EMULATED_TOPOLOGY, v->name), 0);
		cf_hub_run(&h);
	}
	cf_hub_quit(&h);
	IT_STOP(&d);
	/* Under run-tests.sh each case counts on its own ($HB_SUBRESULTS): a failed one is not
	 * failed twice. Run by hand, this case fails with them. */
	CHECK(h.passed + h.failed > 0);
	if (!getenv("HB_SUBRESULTS"))
		CHECK_EQ(h.failed, 0);
}

/* Every case in one boot: more than run-tests.sh's default per case. */
TEST_TIMEOUT(emulated, 900)
