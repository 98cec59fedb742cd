/*
 * make bench, (e): scale (issue 12, goal 5). 64 emulated VMs, each in a group with the host,
 * export 1000 single-page buffers each to the host: 64,000 live exports. Figures:
 * - exports per second while the live count grows to 64k (WORKERS processes, each with 16
 *   VMs' clients, export in turn; the rate is the whole count over the whole time);
 * - the daemon's anonymous memory per live export (RssAnon from /proc/PID/status before the
 *   allocations and with every export live), and its CPU time per export (schedstat);
 * - pool pages per single-page buffer (the control socket's pages_used over the buffers).
 * The baseline in the same run: hb_query round trips on one of the exports, as many per
 * second as one client gets, since an export is one request too. The whole run is made twice:
 * hb_export a buffer at a time, then hb_export_batch of each VM's 1000 (64 in flight).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hyperbuf.h"
#include "tests/bench_scale.h"
#include "tests/bench_util.h"
#include "tools/spawn.h"

#define VMS          64
#define PER_VM       1000
#define WORKERS      4
#define VMS_PER_WORK (VMS / WORKERS)

struct scale_place {
	struct bench_place b;
	char host[128];
};

static int write_config(struct scale_place *p)
{
	FILE *f;

	if (bench_place_make(&p->b, "scale") < 0)
		return -errno;
	snprintf(p->host, sizeof(p->host), "unix:%s/host.sock", p->b.dir);
	f = fopen(p->b.config, "w");
	if (!f)
		return -errno;
	fprintf(f,
		"[daemon]\nbackend = kvm\nsocket = host.sock\nlog = warn\n\n"
		"[limits]\nexports_per_domain = %d\n\n",
		PER_VM + 16);
	for (int i = 1; i <= VMS; i++)
		fprintf(f,
			"[vm vm%d]\nid = %d\nchannel = vm%d.sock\n\n[group g%d]\nmembers = host, "
			"vm%d\nsize = 16M\nivshmem = g%d.sock\nshare = 100%%\n\n",
			i, i, i, i, i, i);
	return fclose(f) == 0 ? 0 : -EIO;
}

static long long status_kb(pid_t pid, const char *key)
{
	char path[64], line[128];
	long long kb = -1;
	size_t n = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			kb = strtoll(line + n + 1, NULL, 10);
	fclose(f);
	return kb;
}

struct worker_arg {
	const struct scale_place *p;
	int first_vm; /* vm first_vm .. first_vm + VMS_PER_WORK - 1 */
	int ready_fd; /* writes 1 byte when allocated, then 8 bytes of export ns when done */
	int go_fd;    /* reads 1 byte to start exporting, then 1 to let go */
	bool batch;   /* hb_export_batch per VM, else hb_export per buffer */
};

/* Exports every buffer of the worker's VMs: one at a time, VM after VM in turn, or a batch
 * per VM. 0 or -1. */
static int export_all(const struct worker_arg *a, struct hb_client **c,
		      struct hb_buffer *(*b)[PER_VM])
{
	static struct hb_export_item items[PER_VM];
	struct hb_id id;

	for (int v = 0; a->batch && v < VMS_PER_WORK; v++) {
		for (int i = 0; i < PER_VM; i++)
			items[i] = (struct hb_export_item){.buffer = b[v][i]};
		if (hb_export_batch(c[v], items, PER_VM) != PER_VM)
			return -1;
	}
	for (int i = 0; !a->batch && i < PER_VM; i++)
		for (int v = 0; v < VMS_PER_WORK; v++)
			if (hb_export(b[v][i], NULL, 0, 0, &id) < 0)
				return -1;
	return 0;
}

/* Connects its VMs, allocates PER_VM pages each, waits for go, exports them all (VM after VM
 * in turn), reports the time, holds them until told, then frees everything. */
static int worker(const void *arg)
{
	const struct worker_arg *a = arg;
	static struct hb_buffer *b[VMS_PER_WORK][PER_VM];
	struct hb_client *c[VMS_PER_WORK] = {NULL};
	char address[160], byte = 1;
	uint64_t t0, ns;
	int r = 1;

	for (int v = 0; v < VMS_PER_WORK; v++) {
		snprintf(address, sizeof(address), "vm:%s/vm%d.sock", a->p->b.dir, a->first_vm + v);
		c[v] = hb_connect(address);
		if (!c[v]) {
			fprintf(stderr, "bench: %s: %s\n", address, hb_strerror(NULL));
			goto out;
		}
		for (int i = 0; i < PER_VM; i++)
			if (!(b[v][i] = hb_buffer_alloc(c[v], 0, 4096, 0))) {
				fprintf(stderr, "bench: alloc %d in vm%d: %s\n", i, a->first_vm + v,
					hb_strerror(c[v]));
				goto out;
			}
	}
	if (tool_write_full(a->ready_fd, &byte, 1) < 0 ||
	    tool_read_full(a->go_fd, &byte, 1, 600000))
		goto out;
	t0 = tool_now_ns();
	if (export_all(a, c, b) < 0)
		goto out;
	ns = tool_now_ns() - t0;
	if (tool_write_full(a->ready_fd, &ns, sizeof(ns)) < 0 ||
	    tool_read_full(a->go_fd, &byte, 1, 600000))
		goto out;
	r = 0;
out:
	if (r)
		fprintf(stderr, "bench: scale worker (vm%d..): %s\n", a->first_vm, strerror(errno));
	errno = 0;
	for (int v = 0; v < VMS_PER_WORK; v++) {
		for (int i = 0; c[v] && i < PER_VM; i++)
			if (b[v][i])
				hb_buffer_free(b[v][i]);
		hb_disconnect(c[v]);
	}
	return r;
}

/* One client's hb_query round trips per second on an export of the host's own (the baseline:
 * an export is one request, too). */
static double queries_per_s(const char *host)
{
	struct hb_client *c = hb_connect(host);
	struct hb_buffer *b = c ? hb_buffer_alloc(c, 1, 4096, 0) : NULL;
	struct hb_info info;
	struct hb_id id;
	uint64_t t0, n = 20000;
	double rate = 0;

	if (b && hb_export(b, NULL, 0, 0, &id) == 0) {
		t0 = tool_now_ns();
		for (uint64_t i = 0; i < n; i++)
			if (hb_query(c, &id, &info) < 0)
				n = 0;
		rate = n ? n / ((tool_now_ns() - t0) / 1e9) : 0;
	}
	if (b)
		hb_buffer_free(b);
	hb_disconnect(c);
	return rate;
}

struct scale_run {
	pid_t pids[WORKERS];
	int ready[WORKERS], go[WORKERS];
	uint64_t max_ns;
};

static int start_workers(const struct scale_place *p, struct scale_run *s, bool batch)
{
	for (int w = 0; w < WORKERS; w++) {
		int rp[2], gp[2];
		struct worker_arg a;

		if (pipe(rp) < 0 || pipe(gp) < 0)
			return -1;
		a = (struct worker_arg){p, 1 + w * VMS_PER_WORK, rp[1], gp[0], batch};
		s->pids[w] = tool_fork_call(worker, &a);
		close(rp[1]);
		close(gp[0]);
		s->ready[w] = rp[0];
		s->go[w] = gp[1];
		if (s->pids[w] < 0)
			return -1;
	}
	return 0;
}

/* Everybody allocated, then go; waits for every export time. The daemon's CPU time is taken
 * at go and at the end. */
static int run_exports(struct scale_run *s, pid_t daemon, uint64_t *wall_ns, uint64_t *cpu0)
{
	char byte = 1;
	uint64_t t0, ns;

	for (int w = 0; w < WORKERS; w++)
		if (tool_read_full(s->ready[w], &byte, 1, 120000) < 0)
			return -1;
	*cpu0 = bench_cpu_ns(daemon);
	t0 = tool_now_ns();
	for (int w = 0; w < WORKERS; w++)
		if (tool_write_full(s->go[w], &byte, 1) < 0)
			return -1;
	s->max_ns = 0;
	for (int w = 0; w < WORKERS; w++) {
		if (tool_read_full(s->ready[w], &ns, sizeof(ns), 300000) < 0)
			return -1;
		s->max_ns = ns > s->max_ns ? ns : s->max_ns;
	}
	*wall_ns = tool_now_ns() - t0;
	return 0;
}

static int stop_workers(struct scale_run *s)
{
	char byte = 1;
	int status, bad = 0;

	for (int w = 0; w < WORKERS; w++) {
		if (s->go[w] >= 0 && tool_write_full(s->go[w], &byte, 1) < 0)
			bad = 1;
		if (s->go[w] >= 0)
			close(s->go[w]);
		if (s->ready[w] >= 0)
			close(s->ready[w]);
		if (s->pids[w] > 0 && (tool_wait_pid(s->pids[w], 120000, &status) != 0 || status))
			bad = 1;
	}
	return bad ? -1 : 0;
}

/* One run's figures. */
struct scale_figures {
	uint64_t wall_ns, cpu_ns;
	long long anon0, anon1; /* KiB */
};

static double rate_of(const struct scale_figures *f)
{
	return (double)VMS * PER_VM / (f->wall_ns / 1e9);
}

static void print_scale(double base_qps, const struct scale_figures *one,
			const struct scale_figures *batch)
{
	const double n = (double)VMS * PER_VM;
	double rate = rate_of(batch), bytes = (double)(batch->anon1 - batch->anon0) * 1024 / n;
	char f[64];

	printf("\n(e) scale: %d emulated VMs x %d live single-page exports to the host, %d "
	       "processes\n",
	       VMS, PER_VM, WORKERS);
	printf("    exports/s to %d live, hb_export_batch:  %9.0f   (daemon CPU %.1f us per "
	       "export)\n",
	       VMS * PER_VM, rate, (double)batch->cpu_ns / n / 1e3);
	printf("    exports/s to %d live, hb_export:        %9.0f   (daemon CPU %.1f us per "
	       "export)   batch %.2fx\n",
	       VMS * PER_VM, rate_of(one), (double)one->cpu_ns / n / 1e3, rate / rate_of(one));
	printf("    baseline, one client's hb_query/s: %9.0f   ratio %.2fx (batch), %.2fx (one)\n",
	       base_qps, rate / base_qps, rate_of(one) / base_qps);
	printf(
	    "    daemon anonymous memory: %lld KiB before, %lld KiB with every export live: %.0f B "
	    "per export (buffer + export)\n",
	    batch->anon0, batch->anon1, bytes);
	printf("\n(goal 5 of issue 12)\n");
	snprintf(f, sizeof(f), "%.0f exports/s (batch)", rate);
	bench_goal("5 exports/s to 64k live exports, 64 VMs", f, ">= 100000", rate >= 100000);
	snprintf(f, sizeof(f), "%.0f B", bytes);
	bench_goal("5 daemon memory per live export", f, "<= 512 B", bytes <= 512);
}

/* One run on its own daemon: base (if not NULL) gets the hb_query baseline. */
static int scale_once(const char *daemon, bool batch, struct scale_figures *fig, double *base)
{
	struct tool_daemon_spawn ds;
	struct scale_place p;
	struct scale_run s = {0};
	uint64_t cpu0 = 0;
	int status, r;

	memset(s.ready, -1, sizeof(s.ready));
	memset(s.go, -1, sizeof(s.go));
	if (write_config(&p) < 0 || tool_daemon_spawn(daemon, p.b.config, p.b.log, 20000, &ds) < 0)
		return -1;
	if (base)
		*base = queries_per_s(p.host);
	fig->anon0 = status_kb(ds.main_pid, "RssAnon");
	r = start_workers(&p, &s, batch);
	if (r == 0)
		r = run_exports(&s, ds.main_pid, &fig->wall_ns, &cpu0);
	fig->cpu_ns = bench_cpu_ns(ds.main_pid) - cpu0;
	fig->anon1 = status_kb(ds.main_pid, "RssAnon");
	if (stop_workers(&s) < 0)
		r = -1;
	tool_daemon_stop(&ds, 10000, &status);
	if (r != 0 || status != 0 || (base && *base <= 0)) {
		fprintf(stderr, "bench: (e) scale failed (daemon status 0x%x)\n", status);
		tool_log_tail(p.b.log, 20);
		r = -1;
	}
	bench_place_remove(&p.b);
	return r;
}

int bench_scale(const char *daemon)
{
	struct scale_figures one, batch;
	double base = 0;

	if (scale_once(daemon, false, &one, &base) < 0 ||
	    scale_once(daemon, true, &batch, NULL) < 0)
		return -1;
	print_scale(base, &one, &batch);
	return 0;
}
