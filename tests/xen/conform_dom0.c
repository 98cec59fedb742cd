/*
 * The conformance suite on Xen (docs/TESTING.md, "The Xen target"), the part in dom0: starts
 * hyperbufd with the Xen backend (the conformance topology on Xen: domain 0 dom0, 1 and 2 the
 * domUs, every two may share), serves a vchan stream to each domU (tests/xen/cf_stream.h),
 * where tests/xen/conform_domU.c runs the cases' server, runs dom0's server as a child as the
 * other targets do, then every case of tests/conform/ through tests/conform/hub.c. One case,
 * "xen", of this harness program; tests/xen/dom0-cases.sh runs it in the boot of test_sh_xen
 * with HB_BUILD naming the folder of hyperbufd and hyperbufctl, and passes the lines of
 * $HB_SUBRESULTS on to the host.
 */
#include "tests/conform/hub.h"
#include "tests/it_common.h"
#include "tests/xen/cf_stream.h"

/* The whole run: every case, a few seconds each in a domU under TCG. */
#define CF_XEN_ALARM_S 1500
/* The domUs' servers start after this program has published their streams. */
#define CF_XEN_HELLO_MS 120000

#define CF_XEN_TOPOLOGY                                                                            \
	"[daemon]\nbackend = xen\nsocket = host.sock\nlog = debug\n\n[xen]\ndomains = 1, 2\n"

/* A relay ends once it has passed QUIT on and its domU's server has closed the vchan; one
 * that has not after 20 s is killed. */
static void reap_relay(pid_t pid)
{
	uint64_t end = hbt_now_ms() + 20000;
	int status;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (hbt_now_ms() > end) {
			kill(pid, SIGKILL);
			hbt_wait_child(pid);
			return;
		}
		it_sleep_ms(100);
	}
}

TEST(xen)
{
	struct hbt_daemon d;
	struct cf_hub h;
	const struct cf_variant *v;
	pid_t relay[2];
	int fd[2];

	alarm(CF_XEN_ALARM_S);
	cf_env_apply();
	hbt_daemon_start_config(&d, CF_XEN_TOPOLOGY);
	cf_hub_init(&h, "xen", CF_XEN, &d);
	cf_hub_local(&h, 0, hbt_addr_host(&d));
	for (int i = 0; i < 2; i++) {
		fd[i] = cfx_stream_serve(i + 1, &relay[i]);
		CHECK(fd[i] >= 0);
	}
	for (int i = 0; i < 2; i++) {
		cf_hub_add(&h, fd[i], CF_XEN_HELLO_MS);
		/* The stream is the domain's own: its server may not say it is another. */
		CHECK_EQ(h.peer[h.n_peers - 1].domain, i + 1);
	}
	cf_hub_run(&h);
	/* Each config variant's cases on a daemon of that config, in the same boot: the domUs
	 * need nothing of the daemon at boot, and dom0's server connects by path. */
	for (unsigned i = 0; (v = cf_variant_at(i)) != NULL; i++) {
		h.variant = v->name;
		if (cf_hub_wants(&h))
			CHECK_EQ(cf_daemon_variant(&d, CF_XEN_TOPOLOGY, v->name), 0);
		cf_hub_run(&h);
	}
	cf_hub_quit(&h);
	for (int i = 0; i < 2; i++)
		reap_relay(relay[i]);
	CHECK_EQ(IT_STAT(&d, "refused_credentials"), 0);
	IT_STOP(&d);
	/* Under run-tests.sh each case counts on its own ($HB_SUBRESULTS): a failed one is not
	 * failed twice. Run by hand, this case fails with them. */
	CHECK(h.passed + h.failed > 0);
	if (!getenv("HB_SUBRESULTS"))
		CHECK_EQ(h.failed, 0);
}

TEST_TIMEOUT(xen, 1800)
