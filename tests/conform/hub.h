/*
 * The runners' side of the conformance suite: the hub every domain's server (tests/conform/
 * role.c) talks to, over a stream each (a socketpair to a host process, a virtio-serial port
 * of a KVM guest, a vchan of a Xen domU). It runs every case of the table: starts each role
 * in its domain, answers the side channel, collects ok/FAIL with the message, checks the
 * daemon is back where it was, and prints one line per case:
 *   ok   NAME          FAIL NAME: message          SKIP NAME: reason
 * Each line also goes to $HB_SUBRESULTS (tests/run-tests.sh counts them into its total and
 * prints "TARGET: N passed, N failed").
 */
#ifndef HB_TESTS_CONFORM_HUB_H
#define HB_TESTS_CONFORM_HUB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/conform/table.h"

#define CF_MAX_PEERS 4
#define CF_BUF_MAX   2048

struct hbt_daemon;

struct cf_peer {
	int fd;
	uint32_t domain;
	pid_t pid; /* a local server's process, else 0 */
	bool busy; /* running a role of the current case */
	bool dead; /* its stream closed or broke */
	int wait;  /* 0, or what it waits for: 'G' a key, 'B' a barrier */
	char want[64];
	size_t len;
	char buf[CF_BUF_MAX];
};

struct cf_hub {
	const char *target;
	unsigned target_flag; /* CF_EMULATED, CF_QEMU or CF_XEN */
	const struct hbt_daemon *d;
	struct cf_peer peer[CF_MAX_PEERS];
	int n_peers;
	int passed, failed, skipped;
	long long base_sessions;
	/* Called while a case runs, about every 100 ms: a target whose guests died fails here. */
	void (*check)(void *ctx);
	void *check_ctx;
	/* The config variant this run's daemon has (table.h): NULL the default; cf_hub_run runs
	 * the cases of this variant only. */
	const char *variant;
};

void cf_hub_init(struct cf_hub *h, const char *target, unsigned target_flag,
		 const struct hbt_daemon *d);
/* $HB_CF_ENV ("NAME=VALUE NAME=VALUE"), set in this process: call before the daemon starts
 * so that it gets them; every server gets them too (cf_hub_add). */
void cf_env_apply(void);
/* A server in a child process of ours, for domain, whose roles connect to address. */
void cf_hub_local(struct cf_hub *h, uint32_t domain, const char *address);
/* A stream whose far end is a server (a guest's): its HELLO names the domain. Fails the test
 * if none comes within timeout_ms. */
void cf_hub_add(struct cf_hub *h, int fd, int timeout_ms);
/* Runs every case of the table of h->variant (or only those whose name matches $HB_CF_CASES,
 * a glob), reporting the ones that cannot apply to this target as skips; may be called once
 * per variant, the counts adding up. */
void cf_hub_run(struct cf_hub *h);
/* Some case of h->variant would run here: the run needs a daemon of that config. */
bool cf_hub_wants(const struct cf_hub *h);
/* Stops d (keeping its folder) and starts it again on topology + the variant's config text:
 * returns the old daemon's exit status (0: clean, leak-free). */
int cf_daemon_variant(struct hbt_daemon *d, const char *topology, const char *variant);
/* QUIT to every server; reaps the local ones, which must exit 0 (leak-free). */
void cf_hub_quit(struct cf_hub *h);

#endif
