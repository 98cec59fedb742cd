/*
 * hyperbuf-demo: `make run`. Starts hyperbufd on a config, then shares a moving 1080p test
 * picture from one emulated VM to another emulated VM and to a host process, zero-copy, with
 * fences for synchronisation and flow control:
 *
 *   producer  vm1 (vm:CHANNEL)    demo_producer.c: renders every frame into buffers it
 *                                 re-exports to each consumer, one WRITE fence per frame
 *   consumer  vm2 (vm:CHANNEL)    demo_consumer.c: verifies every byte of every frame under its
 *   consumer  host (unix:SOCKET)  own READ fences, keeps the last one for a PNG
 *
 * Each party is its own process, as it would be on real VMs. At the end demo_report.c prints
 * what each consumer verified and the signal-to-wake latency it saw, asks the daemon how many
 * bytes it copied (0 is the point), and says PASS only if everything held; the exit status
 * says the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"
#include "daemon/config.h"
#include "tools/demo.h"

#define READY_MS 10000 /* daemon start-up */
#define STOP_MS  10000 /* from SIGTERM to the daemon's exit */

/* ---- the command line and the config ------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: %s --daemon PATH [--config PATH] [--frames N] [--out DIR]\n"
	    "  --daemon PATH   the hyperbufd binary to start\n"
	    "  --config PATH   its config (default configs/local.conf); needs two [vm] sections\n"
	    "                  that share a group, and the first in a group with the host\n"
	    "  --frames N      frames to share (default 120)\n"
	    "  --out DIR       where the PNGs and the daemon log go (default: the folder of\n"
	    "                  the daemon's socket)\n",
	    program_invocation_name);
}

/* Fills d from the options. Returns -1 to go on, else the exit status (help, or a mistake). */
static int parse_args(struct tool_demo *d, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"daemon", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},
	    {"frames", required_argument, NULL, 'n'}, {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	int opt;

	d->config = "configs/local.conf";
	d->frames = 120;
	while ((opt = getopt_long(argc, argv, "d:c:n:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			d->daemon = optarg;
			break;
		case 'c':
			d->config = optarg;
			break;
		case 'n':
			d->frames = strtoull(optarg, NULL, 0);
			break;
		case 'o':
			d->out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!d->daemon || optind != argc || d->frames == 0 || d->frames > 1000000) {
		usage(stderr);
		return 2;
	}
	return -1;
}

static const struct hbc_config_vm *find_vm(const struct hbc_config *cfg, const char *name,
					   unsigned nth)
{
	for (unsigned i = 0; i < cfg->n_vms; i++)
		if (strcmp(cfg->vms[i].name, name) == 0)
			return &cfg->vms[i];
	/* No VM of that name: take the nth [vm] section, so any two-VM config works. */
	return nth < cfg->n_vms ? &cfg->vms[nth] : NULL;
}

/* The daemon's own loader: the sockets the demo connects to are the ones the daemon binds. */
static int load_config(struct tool_demo *d)
{
	char err[512];

	d->cfg = hbd_config_load_file(d->config, err, sizeof(err));
	if (!d->cfg) {
		fprintf(stderr, "%s: %s\n", program_invocation_name, err);
		return -1;
	}
	d->producer_vm = find_vm(d->cfg, "vm1", 0);
	d->consumer_vm = find_vm(d->cfg, "vm2", 1);
	if (!d->producer_vm || !d->consumer_vm || d->producer_vm == d->consumer_vm) {
		fprintf(stderr, "%s: %s: needs two [vm] sections\n", program_invocation_name,
			d->config);
		return -1;
	}
	return 0;
}

/* "vm:" and the VM's first channel socket: where an emulated VM's process connects. */
static void vm_address(const struct hbc_config_vm *vm, char *out, size_t len)
{
	char channel[HBC_SUN_PATH_MAX];

	/* Cannot fail: the loader checked every port's path. */
	hbc_config_channel_path(vm, 0, channel);
	snprintf(out, len, "vm:%s", channel);
}

/* ---- the processes ------------------------------------------------------------------------- */

/* When the producer signals each frame's fence, for the consumers' latency figures: shared with
 * every child by inheritance (instrumentation, not part of the data path). */
static int share_signal_times(struct tool_demo *d)
{
	void *p = mmap(NULL, d->frames * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "%s: mmap: %s\n", program_invocation_name, strerror(errno));
		printf("RESULT: FAIL (out of memory)\n");
		return -1;
	}
	d->signal_ns = p;
	return 0;
}

static int start_daemon(struct tool_demo *d)
{
	if (tool_daemon_spawn(d->daemon, d->config, d->log, READY_MS, &d->daemon_run) < 0) {
		tool_log_tail(d->log, 20);
		printf("RESULT: FAIL (the daemon did not start)\n");
		return -1;
	}
	tool_report_daemon_ready(d);
	return 0;
}

/* A hang becomes a failure within about a minute for the default run. Each step already has
 * its own DEMO_STEP_MS limit in the children; this is the backstop. */
static void set_time_budget(struct tool_demo *d)
{
	d->alarm_s = 50 + (unsigned)(d->frames / 10);
	d->deadline = tool_now_ns() + (uint64_t)(d->alarm_s + 5) * 1000000000u;
}

/* Forks fn(arg) with a pipe to report on: the write end goes in *child_fd, before the fork. */
static int start_child(struct tool_demo_child *c, int (*fn)(const void *), const void *arg,
		       int *child_fd)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "%s: pipe: %s\n", program_invocation_name, strerror(errno));
		return -1;
	}
	*child_fd = p[1];
	c->pid = tool_fork_call(fn, arg);
	close(p[1]);
	c->fd = p[0];
	if (c->pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", program_invocation_name, strerror(errno));
		return -1;
	}
	return 0;
}

static int consumer_main(const void *arg)
{
	return tool_consumer_run(arg);
}

static int producer_main(const void *arg)
{
	return tool_producer_run(arg);
}

/* Consumer k: 0 in the consumer VM, 1 on the host. Returns once it is connected and has sent
 * its timeline's id, which the producer needs to wait for its points. */
static int start_consumer(struct tool_demo *d, int k)
{
	struct tool_consumer_args *a = &d->consumer_args[k];
	char ready = 0;
	int ret;

	a->name = k == 0 ? d->consumer_vm->name : "host";
	a->domain = k == 0 ? d->consumer_vm->id : 0;
	a->producer = d->producer_vm->id;
	a->frames = d->frames;
	a->alarm_s = d->alarm_s;
	a->signal_ns = d->signal_ns;
	if (k == 0)
		vm_address(d->consumer_vm, a->address, sizeof(a->address));
	else
		snprintf(a->address, sizeof(a->address), "unix:%s", d->cfg->socket);
	snprintf(a->png, sizeof(a->png), "%s/%s-last-frame.png", d->outdir, a->name);
	if (start_child(&d->consumer[k], consumer_main, a, &a->fd) < 0)
		return -1;
	ret = tool_read_full(d->consumer[k].fd, &ready, 1, DEMO_STEP_MS);
	if (ret == 0)
		ret = tool_read_full(d->consumer[k].fd, &d->producer_args.peer_tl[k],
				     sizeof(d->producer_args.peer_tl[k]), DEMO_STEP_MS);
	if (ret < 0 || ready != 'R') {
		fprintf(stderr, "%s: consumer %s did not get ready%s%s\n", program_invocation_name,
			a->name, ret < 0 ? ": " : "", ret < 0 ? strerror(-ret) : "");
		return -1;
	}
	return 0;
}

/* The producer in the producer VM, sharing with both consumers (their timelines are known). */
static int start_producer(struct tool_demo *d)
{
	struct tool_producer_args *a = &d->producer_args;

	vm_address(d->producer_vm, a->address, sizeof(a->address));
	a->domain = d->producer_vm->id;
	a->peers[0] = d->consumer_vm->id;
	a->peers[1] = 0;
	a->peer_names[0] = d->consumer_vm->name;
	a->peer_names[1] = "host";
	a->frames = d->frames;
	a->alarm_s = d->alarm_s;
	a->signal_ns = d->signal_ns;
	return start_child(&d->producer, producer_main, a, &a->fd);
}

/* A child's result, if it arrives whole in time: the magic in its first word says it is one. */
static bool read_result(const struct tool_demo *d, const struct tool_demo_child *c, void *res,
			size_t len)
{
	uint32_t magic;

	if (tool_read_full(c->fd, res, len, tool_ms_left(d->deadline)) < 0)
		return false;
	memcpy(&magic, res, sizeof(magic));
	return magic == DEMO_RESULT_MAGIC;
}

static void read_results(struct tool_demo *d)
{
	d->producer.got =
	    read_result(d, &d->producer, &d->producer_result, sizeof(d->producer_result));
	for (int k = 0; k < 2; k++)
		d->consumer[k].got = read_result(d, &d->consumer[k], &d->consumer_result[k],
						 sizeof(d->consumer_result[k]));
}

/* Reaps a child, killing it once the run is out of time; anything but exit 0 is a failure. */
static void reap(struct tool_demo *d, const struct tool_demo_child *c, const char *name)
{
	char desc[64];
	int status;
	bool killed;

	if (c->pid <= 0)
		return;
	killed = tool_wait_pid(c->pid, tool_ms_left(d->deadline), &status) == 1;
	if (status == 0)
		return;
	tool_describe_status(status, desc, sizeof(desc));
	fprintf(stderr, "%s: %s: %s%s\n", program_invocation_name, name, desc,
		killed ? " (killed: out of time)" : "");
	d->ok = false;
}

static void wait_children(struct tool_demo *d)
{
	for (int k = 0; k < 2; k++)
		reap(d, &d->consumer[k],
		     d->consumer_args[k].name ? d->consumer_args[k].name : "consumer");
	reap(d, &d->producer, "producer");
}

static void stop_daemon(struct tool_demo *d)
{
	d->daemon_killed = tool_daemon_stop(&d->daemon_run, STOP_MS, &d->daemon_status) == 1;
}

static void cleanup(struct tool_demo *d)
{
	for (int k = 0; k < 2; k++)
		if (d->consumer[k].fd >= 0)
			close(d->consumer[k].fd);
	if (d->producer.fd >= 0)
		close(d->producer.fd);
	if (d->signal_ns)
		munmap((void *)d->signal_ns, d->frames * sizeof(uint64_t));
	hbc_config_free(d->cfg);
}

int main(int argc, char **argv)
{
	/* Static: large, and still reachable from the forked children until they exit. */
	static struct tool_demo d = {
	    .ok = true,
	    .consumer = {{.pid = -1, .fd = -1}, {.pid = -1, .fd = -1}},
	    .producer = {.pid = -1, .fd = -1},
	};
	int ret = parse_args(&d, argc, argv);

	if (ret >= 0)
		return ret;
	/* A consumer that dies must not take the parent with it through a pipe write, nor a
	 * daemon that dies take a client. */
	signal(SIGPIPE, SIG_IGN);
	if (load_config(&d) < 0 || tool_report_prepare_out(&d) < 0)
		goto err;
	tool_report_header(&d);
	if (share_signal_times(&d) < 0 || start_daemon(&d) < 0)
		goto err;
	set_time_budget(&d);
	/* The consumers first: connected before the producer exists, they miss no EXPORTED. */
	if (start_consumer(&d, 0) == 0 && start_consumer(&d, 1) == 0 && start_producer(&d) == 0)
		read_results(&d);
	else
		d.ok = false;
	wait_children(&d);
	tool_report_read_stats(&d);
	stop_daemon(&d);
	ret = tool_report_summary(&d) ? 0 : 1;
	cleanup(&d);
	return ret;

err:
	cleanup(&d);
	return 1;
}
