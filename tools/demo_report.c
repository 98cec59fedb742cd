/*
 * What the demo prints, and where its files go: the output folder for the daemon's log and
 * the consumers' PNGs, the opening lines, the daemon's own counters (from `hyperbufctl stats`:
 * bytes_copied must be 0) and the summary with its RESULT line.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "common/file.h"
#include "tools/demo.h"

#define STATS_MS 5000 /* hyperbufctl answers at once from a live daemon */

/* ---- paths --------------------------------------------------------------------------------- */

/* dirname into out, without touching the input ("x" -> ".", "/x" -> "/"). */
static void dir_of(const char *path, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(out, outlen, ".");
	else if (slash == path)
		snprintf(out, outlen, "/");
	else
		snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

/* A path as a person wants to read it: canonical, and relative to the working folder when it
 * is below it ("configs/../build/run" -> "build/run"). Falls back to the path as given. */
static void tidy_path(const char *in, char *out, size_t len)
{
	char cwd[PATH_MAX], *real = realpath(in, NULL);
	size_t n;

	snprintf(out, len, "%s", in);
	if (!real)
		return;
	if (getcwd(cwd, sizeof(cwd)) && (n = strlen(cwd)) > 1 && strncmp(real, cwd, n) == 0 &&
	    real[n] == '/')
		snprintf(out, len, "%s", real + n + 1);
	else
		snprintf(out, len, "%s", real);
	free(real);
}

int tool_report_prepare_out(struct tool_demo *d)
{
	char rundir[PATH_MAX];
	const char *failed = NULL;
	int ret;

	dir_of(d->cfg->socket, rundir, sizeof(rundir));
	if ((ret = hbc_mkdir_p(rundir, 0755)) < 0)
		failed = rundir;
	else if ((ret = hbc_mkdir_p(d->out ? d->out : rundir, 0755)) < 0)
		failed = d->out ? d->out : rundir;
	if (failed) {
		fprintf(stderr, "%s: creating %s: %s\n", program_invocation_name, failed,
			strerror(-ret));
		return -1;
	}
	tidy_path(d->out ? d->out : rundir, d->outdir, sizeof(d->outdir));
	snprintf(d->log, sizeof(d->log), "%s/hyperbufd.log", d->outdir);
	return 0;
}

/* ---- the opening lines --------------------------------------------------------------------- */

/* 8294400 -> "8 294 400": the figures a person compares by eye. */
static const char *grouped(uint64_t v, char *buf, size_t len)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v), o = 0;

	for (int i = 0; i < n && o + 2 < (int)len; i++) {
		if (i && (n - i) % 3 == 0)
			buf[o++] = ' ';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

void tool_report_header(const struct tool_demo *d)
{
	char bytes[32];

	printf("hyperbuf demo: %" PRIu64 " frames of %ux%u XRGB8888 (%s bytes each), "
	       "%s (domain %u) -> %s (domain %u) and -> host (domain 0)\n",
	       d->frames, TOOL_FRAME_W, TOOL_FRAME_H,
	       grouped(TOOL_FRAME_BYTES, bytes, sizeof(bytes)), d->producer_vm->name,
	       d->producer_vm->id, d->consumer_vm->name, d->consumer_vm->id);
}

void tool_report_daemon_ready(const struct tool_demo *d)
{
	printf("  daemon     %s -c %s: pid %d, ready in %.1f ms, log %s\n", d->daemon, d->config,
	       (int)d->daemon_run.pid, d->daemon_run.ready_ns / 1e6, d->log);
}

/* ---- the daemon's counters ----------------------------------------------------------------- */

/* Runs ctl with argv and reads its stdout into out (NUL-terminated, cut at len - 1 bytes) for
 * at most STATS_MS. Returns its wait status, or -1 if it could not be started. */
static int capture(char *const argv[], char *out, size_t len)
{
	uint64_t deadline = tool_now_ns() + (uint64_t)STATS_MS * 1000000u;
	int pfd[2], status;
	size_t got = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		execv(argv[0], argv);
		fprintf(stderr, "%s: exec %s: %s\n", program_invocation_name, argv[0],
			strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	while (got < len - 1) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		ssize_t n;

		if (tool_now_ns() >= deadline || poll(&p, 1, 100) < 0)
			break;
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		n = read(pfd[0], out + got, len - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(pfd[0]);
	tool_wait_pid(pid, tool_ms_left(deadline), &status);
	return status;
}

/* "key: value" lines of `hyperbufctl stats`: the value if line is key's. */
static void stat_value(const char *line, const char *key, long long *value)
{
	size_t n = strlen(key);
	const char *rest = line + n;

	if (strncmp(line, key, n) != 0)
		return;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	if (rest[0] == ':')
		*value = strtoll(rest + 1, NULL, 10);
}

void tool_report_read_stats(struct tool_demo *d)
{
	char dir[PATH_MAX], ctl[PATH_MAX + 16], out[16384];
	char *argv[] = {ctl, "-s", d->cfg->socket, "stats", NULL};
	struct tool_daemon_stats *st = &d->stats;
	int status;

	memset(st, 0xff, sizeof(*st)); /* every field -1 */
	/* The hyperbufctl built with the daemon: it speaks the same protocol. */
	dir_of(d->daemon, dir, sizeof(dir));
	snprintf(ctl, sizeof(ctl), "%s/hyperbufctl", dir);
	status = capture(argv, out, sizeof(out));
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		while (*line == ' ' || *line == '\t')
			line++;
		stat_value(line, "bytes_copied", &st->bytes_copied);
		stat_value(line, "bytes_shared_total", &st->bytes_shared_total);
		stat_value(line, "exports_total", &st->exports_total);
		stat_value(line, "imports_total", &st->imports_total);
		stat_value(line, "events_dropped", &st->events_dropped);
		stat_value(line, "fences_completed", &st->fences_completed);
	}
	d->stats_read = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!d->stats_read) {
		fprintf(stderr, "%s: %s -s %s stats failed\n", program_invocation_name, ctl,
			d->cfg->socket);
		return;
	}
	if (st->bytes_copied < 0)
		fprintf(stderr, "%s: no bytes_copied line in `hyperbufctl stats`\n",
			program_invocation_name);
}

/* ---- the summary --------------------------------------------------------------------------- */

static bool report_producer(const struct tool_demo *d)
{
	const struct tool_producer_result *r = &d->producer_result;
	const char *name = d->producer_vm->name;
	uint64_t t_all;

	if (!d->producer.got) {
		printf("  producer   %s: no result (crashed or timed out)\n", name);
		return false;
	}
	t_all = r->t_end > r->t_start ? r->t_end - r->t_start : 1;
	printf("  producer   %s: %" PRIu64 " frames x 2 peers (%" PRIu64 " exports, %u "
	       "buffers per peer) in %.2f s = %.1f fps\n",
	       name, r->frames, r->exports, DEMO_SLOTS, t_all / 1e9, r->frames * 1e9 / t_all);
	printf("  fences     %s: %" PRIu64 " WRITE fences signalled, one per frame; its "
	       "begin_cpu_access(WRITE) waited for the consumers' READ fences %" PRIu64
	       " times (%.1f ms in all)\n",
	       name, r->signals, r->write_waits, r->write_wait_ns / 1e6);
	if (r->failures || r->frames != d->frames) {
		printf("             FAILED: %s\n", r->error[0] ? r->error : "short run");
		return false;
	}
	return true;
}

/* Consumer k's two lines under the table header. */
static bool report_consumer(const struct tool_demo *d, int k)
{
	const struct tool_consumer_args *a = &d->consumer_args[k];
	const struct tool_consumer_result *r = &d->consumer_result[k];
	char who[80], lat[64], bytes[32];

	snprintf(who, sizeof(who), "%s (%u)", a->name ? a->name : "?", a->domain);
	if (!d->consumer[k].got) {
		printf("  %-10s no result (crashed or timed out)\n", who);
		return false;
	}
	snprintf(lat, sizeof(lat), "%.3f / %.3f / %.3f", r->lat_min / 1e6,
		 r->lat_n ? r->lat_sum / 1e6 / r->lat_n : 0.0, r->lat_max / 1e6);
	printf("  %-10s %7" PRIu64 " %9" PRIu64 " %24s   %-26s %s\n", who, r->frames_seen,
	       r->frames_verified, grouped(r->bytes_verified, bytes, sizeof(bytes)), lat,
	       r->png_error == 0 ? a->png : "(no PNG)");
	printf("  %-10s (signal in %s -> wait returned here; %" PRIu64 " of %" PRIu64
	       " frames measured, %" PRIu64 " already signalled when we got to them; %" PRIu64
	       " imports, one per buffer)\n",
	       "", d->producer_vm->name, r->lat_n, r->frames_seen, r->born_signalled, r->imports);
	if (r->failures || r->frames_verified != d->frames || r->png_error) {
		printf("             FAILED: %" PRIu64 " failures, %" PRIu64
		       " frames missed; first: %s\n",
		       r->failures, r->missed, r->error[0] ? r->error : "short run");
		return false;
	}
	return true;
}

/* The point of the project: the daemon copied nothing. */
static bool report_counters(const struct tool_demo *d)
{
	const struct tool_daemon_stats *st = &d->stats;
	char bytes[32];

	if (!d->stats_read || st->bytes_copied < 0) {
		printf("  bytes copied: unknown (could not read `hyperbufctl stats`)\n");
		return false;
	}
	printf("  bytes copied: %s  (daemon counters from hyperbufctl stats: bytes_copied; "
	       "exports_total %lld, imports_total %lld, events_dropped %lld, "
	       "fences_completed %lld)\n",
	       grouped((uint64_t)st->bytes_copied, bytes, sizeof(bytes)), st->exports_total,
	       st->imports_total, st->events_dropped, st->fences_completed);
	return st->bytes_copied == 0;
}

static bool report_daemon_end(const struct tool_demo *d)
{
	char desc[64];

	tool_describe_status(d->daemon_status, desc, sizeof(desc));
	printf("  daemon     %s%s\n", desc,
	       d->daemon_killed ? " (did not stop on SIGTERM: killed)" : "");
	if (d->daemon_status == 0)
		return true;
	tool_log_tail(d->log, 20);
	return false;
}

bool tool_report_summary(const struct tool_demo *d)
{
	bool ok = d->ok;

	ok &= report_producer(d);
	printf("  %-10s %7s %9s %24s   %-26s %s\n", "consumer", "seen", "verified",
	       "bytes shared, verified", "sync latency ms min/avg/max", "last frame");
	for (int k = 0; k < 2; k++)
		ok &= report_consumer(d, k);
	ok &= report_counters(d);
	ok &= report_daemon_end(d);
	printf("RESULT: %s\n", ok ? "PASS" : "FAIL");
	return ok;
}

/* An error a child notes for the report: the first one is kept in its slot, every one is
 * counted and printed. */
void tool_note_error(char *slot, size_t len, uint64_t *failures, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", program_invocation_name, msg);
	if (!slot[0])
		snprintf(slot, len, "%s", msg);
	(*failures)++;
}
