/*
 * The conformance suite on real QEMU guests (docs/TESTING.md, "Conformance cases"): the daemon
 * on VM_TOPOLOGY (tests/vm_common.h), vm1 and vm2 booted once, each running the cases' guest
 * program (tests/kvm/conform.c, image $HB_BUILD/kvm/conform/) as a server for its domain over
 * a virtio-serial port of its own, the host's server a child process of ours; then every case
 * of tests/conform/ in that one boot. One run-tests.sh case, "qemu"; its cases are counted one
 * by one ($HB_SUBRESULTS). The host side (daemon, host roles) runs under the sanitizers; the
 * guests' program is static and not sanitized.
 */
#include "tests/conform/hub.h"
#include "tests/vm_common.h"

/* The whole run: two guests booted under TCG once, and once more per config variant, then every
 * case (a few seconds each in a guest). */
#define CF_QEMU_ALARM_S 1200

/* A unix socket listening at path, for a QEMU chardev to connect to. */
static int listen_at(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK(strlen(path) < sizeof(sun.sun_path));
	strcpy(sun.sun_path, path);
	unlink(path);
	CHECK_EQ(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CHECK_EQ(listen(fd, 1), 0);
	return fd;
}

/* QEMU connects its chardev as it starts, long before the guest has booted. */
static int accept_qemu(int lfd, struct vm *v)
{
	uint64_t end = hbt_now_ms() + 20000;

	for (;;) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};

		if (poll(&pfd, 1, 100) == 1) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			CHECK(fd >= 0);
			close(lfd);
			return fd;
		}
		vm_check(v);
		if (hbt_now_ms() > end)
			hbt_fail(__FILE__, __LINE__, "%s: QEMU never connected the side port",
				 v->name);
	}
}

static void check_guests(void *ctx)
{
	struct vm *v = ctx;

	vm_check(&v[0]);
	vm_check(&v[1]);
}

/* One boot of both guests on d's daemon, running the cases of h->variant. */
static void boot_and_run(struct cf_hub *h, struct hbt_daemon *d)
{
	struct vm v[2];
	int lfd[2], fd[2];

	for (int i = 0; i < 2; i++) {
		struct vm_opts o = {.image = "conform", .dir = d->dir, .d = d};
		char side[300];

		snprintf(side, sizeof(side), "%s/cf-vm%d.sock", d->dir, i + 1);
		lfd[i] = listen_at(side);
		o.side = side;
		vm_start_opts(&v[i], &o, i + 1, "serve");
		fd[i] = accept_qemu(lfd[i], &v[i]);
	}
	cf_hub_local(h, 0, hbt_addr_host(d));
	for (int i = 0; i < 2; i++) {
		cf_hub_add(h, fd[i], VM_WAIT_MS);
		vm_check(&v[i]);
	}
	h->check = check_guests;
	h->check_ctx = v;
	cf_hub_run(h);
	cf_hub_quit(h);
	h->check = NULL;
	for (int i = 0; i < 2; i++)
		vm_finish(&v[i]);
	CHECK_EQ(IT_STAT(d, "refused_credentials"), 0);
}

TEST(qemu)
{
	struct hbt_daemon d;
	struct cf_hub h;
	const struct cf_variant *v;

	vm_need("conform");
	/* vm_need armed the VM suites' alarm, for one case in a boot. */
	alarm(CF_QEMU_ALARM_S);
	cf_env_apply();
	hbt_daemon_start_config(&d, VM_TOPOLOGY);
	cf_hub_init(&h, "qemu", CF_QEMU, &d);
	/* The default run, then each config variant's: a KVM guest cannot reconnect its ivshmem
	 * devices to a new daemon, so the guests boot again on each (once per variant, not per
	 * case). A run with no case to run here only reports its skips. */
	for (unsigned i = 0;; i++) {
		v = i ? cf_variant_at(i - 1) : NULL;
		if (i && !v)
			break;
		h.variant = v ? v->name : NULL;
		if (!cf_hub_wants(&h)) {
			cf_hub_run(&h);
			continue;
		}
		if (v)
			CHECK_EQ(cf_daemon_variant(&d, VM_TOPOLOGY, v->name), 0);
		boot_and_run(&h, &d);
	}
	IT_STOP(&d);
	/* Under run-tests.sh each case counts on its own ($HB_SUBRESULTS): a failed one is not
	 * failed twice. Run by hand, this case fails with them. */
	CHECK(h.passed + h.failed > 0);
	if (!getenv("HB_SUBRESULTS"))
		CHECK_EQ(h.failed, 0);
}

/* Every case in a boot, and a boot per config variant: more than run-tests.sh's default. */
TEST_TIMEOUT(qemu, 1200)
