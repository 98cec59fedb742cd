/*
 * make bench, (d): how long a restart takes (docs/RESTART.md). The daemon runs under
 * tests/hbholder, which starts it again when it dies, as systemd's Restart=on-failure does.
 * Both figures are from SIGKILL to the first request answered, in the same run:
 * - cold start: a holder that keeps no descriptors (-m 0, FileDescriptorStoreMax=0): the new
 *   daemon makes every socket and pool afresh, and a new client connects;
 * - restart: a holder that keeps them, the client holding 1000 live exports: the new daemon
 *   reads its state and takes its descriptors back, and the client resumes its session.
 * Medians of ROUNDS.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hyperbuf.h"
#include "tests/bench_restart.h"
#include "tools/spawn.h"

#define ROUNDS  7
#define EXPORTS 1000

static const char config_text[] = "[daemon]\nbackend = kvm\nsocket = host.sock\nlog = warn\n\n"
				  "[vm vm1]\nid = 1\nchannel = vm1.sock\n\n"
				  "[group host-vm1]\nmembers = host, vm1\nsize = 64M\n"
				  "ivshmem = group-host-vm1.sock\nshare = 100%\n";

struct place {
	char dir[64], config[128], log[128], address[128];
};

static int make_place(struct place *p)
{
	FILE *f;

	snprintf(p->dir, sizeof(p->dir), "/tmp/hyperbuf-restart-XXXXXX");
	if (!mkdtemp(p->dir))
		return -errno;
	snprintf(p->config, sizeof(p->config), "%s/hyperbufd.conf", p->dir);
	snprintf(p->log, sizeof(p->log), "%s/hyperbufd.log", p->dir);
	snprintf(p->address, sizeof(p->address), "unix:%s/host.sock", p->dir);
	f = fopen(p->config, "w");
	if (!f)
		return -errno;
	fputs(config_text, f);
	return fclose(f) == 0 ? 0 : -EIO;
}

static void remove_place(const struct place *p)
{
	static const char *files[] = {"hyperbufd.conf", "hyperbufd.log", "host.sock",
				      "host-control.sock", "vm1.sock", "group-host-vm1-vm1.sock",
				      "group-host-vm1.sock"};
	char path[200];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", p->dir, files[i]);
		unlink(path);
	}
	rmdir(p->dir);
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double median_ms(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp);
	return v[n / 2] / 1e6;
}

/* A new client's first answered request: connect, Hello, one Query. */
static int first_request(const char *address)
{
	struct hb_client *c = hb_connect(address);
	struct hb_id none = {{0}};
	struct hb_info info;
	int r = 0;

	if (!c)
		return -errno;
	if (hb_query(c, &none, &info) == 0 || errno != ENOENT)
		r = -EPROTO;
	hb_disconnect(c);
	return r;
}

static pid_t start(const struct place *p, const char *daemon, const char *holder,
		   const char *max, struct tool_daemon_spawn *ds)
{
	struct tool_daemon_opts opts = {.holder = holder, .holder_max = max};

	return tool_daemon_start(daemon, p->config, p->log, 20000, &opts, ds);
}

/* Cold starts: SIGKILL, and the holder starts the daemon again with nothing kept. */
static int cold(const struct place *p, const char *daemon, const char *holder, uint64_t *served)
{
	struct tool_daemon_spawn ds;
	int status, r = 0;

	if (start(p, daemon, holder, "0", &ds) < 0)
		return -1;
	for (int i = 0; i < ROUNDS && r == 0; i++) {
		uint64_t t0 = tool_now_ns();

		kill(ds.main_pid, SIGKILL);
		/* Until the new daemon listens, connecting fails: keep trying. */
		while ((r = first_request(p->address)) < 0 && tool_now_ns() - t0 < 10000000000ull)
			usleep(200);
		served[i] = tool_now_ns() - t0;
		if (r == 0)
			r = tool_daemon_wait_ready(&ds, 10000);
	}
	tool_daemon_stop(&ds, 10000, &status);
	return r;
}

/* SIGKILL under a client holding EXPORTS exports, to its first answered request. */
static int restarts(const struct place *p, const char *daemon, const char *holder,
		    uint64_t *served)
{
	struct tool_daemon_spawn ds;
	struct hb_buffer *b[EXPORTS] = {NULL};
	struct hb_client *c = NULL;
	struct hb_id id;
	struct hb_info info;
	int status, r = -1;

	if (start(p, daemon, holder, NULL, &ds) < 0)
		return -1;
	c = hb_connect(p->address);
	for (int i = 0; c && i < EXPORTS; i++) {
		b[i] = hb_buffer_alloc(c, 1, 4096, 0);
		if (!b[i] || hb_export(b[i], "frame", 5, 0, &id) < 0)
			goto out;
	}
	for (int i = 0; c && i < ROUNDS; i++) {
		uint64_t t0 = tool_now_ns();

		kill(ds.main_pid, SIGKILL);
		/* The client notices, reconnects and resumes inside the call. */
		if (hb_query(c, &id, &info) < 0 || info.meta_len != 5)
			goto out;
		served[i] = tool_now_ns() - t0;
		if (tool_daemon_wait_ready(&ds, 10000) < 0)
			goto out;
	}
	r = 0;
out:
	if (r < 0)
		fprintf(stderr, "bench: restart with %d exports: %s\n", EXPORTS, strerror(errno));
	for (int i = 0; i < EXPORTS; i++)
		if (b[i])
			hb_buffer_free(b[i]);
	hb_disconnect(c);
	tool_daemon_stop(&ds, 10000, &status);
	return r;
}

int bench_restart(const char *daemon, const char *holder)
{
	uint64_t cold_served[ROUNDS], served[ROUNDS];
	struct place p;
	double c, r;
	int ret;

	if (access(holder, X_OK) < 0) {
		printf("\n(d) restarts: SKIP (no %s: make tests builds it)\n", holder);
		return 0;
	}
	ret = make_place(&p);
	if (ret == 0)
		ret = cold(&p, daemon, holder, cold_served);
	if (ret == 0)
		ret = restarts(&p, daemon, holder, served);
	if (ret < 0) {
		tool_log_tail(p.log, 20);
		remove_place(&p);
		return -1;
	}
	printf("\n(d) restarts under a holder that keeps the daemon's descriptors (docs/RESTART.md), "
	       "median of %d\n",
	       ROUNDS);
	c = median_ms(cold_served, ROUNDS);
	r = median_ms(served, ROUNDS);
	printf("    cold start (nothing kept), new client:     %8.1f ms from SIGKILL to its first "
	       "answer\n",
	       c);
	printf("    restart, resumed client, %d exports:     %8.1f ms from SIGKILL to its first "
	       "answer\n",
	       EXPORTS, r);
	printf("    ratio restart / cold start: %.2fx\n", r / c);
	remove_place(&p);
	return 0;
}
