/*
 * hyperbufctl: asks a running hyperbufd what it is doing, over the daemon's host socket.
 *
 *   hyperbufctl [-s SOCKET] [--json] [--limit N] [--after KEY] [--count N] [--interval MS]
 *               status | domains | exports | imports | timelines | stats | events | watch
 *
 * One session per run: Hello (role control), Control requests, print, exit. status and stats
 * take one unpaged reply; a listing is read page by page (PROTOCOL.md §3 Control, paging), all
 * of it, or --limit rows after --after. Exit status 0, or 1 with "hyperbufctl: reason" on
 * stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/limits.h"
#include "tools/hyperbufctl.h"

#ifndef HB_VERSION_STRING
#define HB_VERSION_STRING "unknown"
#endif

#define DEFAULT_SOCKET "/run/hyperbuf/hyperbufd.sock"
#define SOCKET_ENV     "HYPERBUFD_SOCKET"
#define CONTROL_ID     2u /* after the Hello */

/* A command prints either a list view or, for status and stats, with its own printer. */
static const struct command {
	const char *name;
	uint32_t what;
	const struct tool_ctl_view *view;
	int (*print)(const ControlReply *r, bool json);
	int (*follow)(struct tool_ctl_conn *c, const struct tool_ctl_follow *f);
} commands[] = {
    {.name = "status", .what = HBP_CTL_STATUS, .print = tool_ctl_print_status},
    {.name = "domains", .what = HBP_CTL_DOMAINS, .view = &tool_ctl_domains_view},
    {.name = "exports", .what = HBP_CTL_EXPORTS, .view = &tool_ctl_exports_view},
    {.name = "imports", .what = HBP_CTL_IMPORTS, .view = &tool_ctl_imports_view},
    {.name = "timelines", .what = HBP_CTL_TIMELINES, .view = &tool_ctl_timelines_view},
    {.name = "stats", .what = HBP_CTL_STATS, .print = tool_ctl_print_stats},
    {.name = "events", .follow = tool_ctl_events},
    {.name = "watch", .follow = tool_ctl_watch},
};

#define COMMANDS "status | domains | exports | imports | timelines | stats | events | watch"
#define SYNOPSIS "usage: hyperbufctl [-s SOCKET] [--json] [--limit N] [--after KEY] " COMMANDS "\n"

static void help(void)
{
	printf(SYNOPSIS
	       "  -s, --socket SOCKET  hyperbufd's socket (default $" SOCKET_ENV
	       ", else " DEFAULT_SOCKET ")\n"
	       "      --json           print one JSON document\n"
	       "      --limit N        a listing's first N rows (after KEY); the key to go on\n"
	       "                       from is printed on stderr (\"next\" with --json)\n"
	       "      --after KEY      a listing's rows after KEY: a domain's, import's or\n"
	       "                       timeline's id, an export's hid\n"
	       "      --count N        events: exit after N events; watch: after N screens\n"
	       "      --interval MS    watch: between screens (default 1000)\n"
	       "  -h, --help           this help\n"
	       "  -V, --version        print the version\n"
	       "\n"
	       "  status     version, backend, uptime, counts and the limits in force\n"
	       "  domains    the host and the VMs: connected, exports, imports, pages used\n"
	       "  exports    live exports: handle, exporter, peer, size, importers, state\n"
	       "  imports    live imports: handle, importer, exporter, size, mode\n"
	       "  timelines  fence timelines: id, owning session, value, pending waits\n"
	       "  stats      the daemon's counters as key: value lines\n"
	       "  events     the daemon's events as they happen, one line each (--json: JSON)\n"
	       "  watch      counts, rates and domains, redrawn in place every interval\n");
}

/* A usage mistake: the reason and the synopsis, not the whole help. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tool_ctl_vsay("\n" SYNOPSIS, fmt, ap);
	va_end(ap);
	return 1;
}

/* One session: connect, Hello, the command's Control request, its reply printed. */
static int run(const char *path, const struct command *cmd, const struct tool_ctl_paging *pg,
	       const struct tool_ctl_follow *f, bool json)
{
	ClientMsg req = CLIENT_MSG__INIT;
	Control control = CONTROL__INIT;
	struct tool_ctl_conn c = {.fd = -1};
	ServerMsg *m;
	int status = 1;

	if (tool_ctl_connect(&c, path) < 0)
		goto err_close;
	if (cmd->follow) {
		status = cmd->follow(&c, f) == 0 ? 0 : 1;
		goto err_close;
	}
	if (cmd->view) {
		status = tool_ctl_list(&c, cmd->view, cmd->what, pg, json) == 0 ? 0 : 1;
		goto err_close;
	}
	control.what = cmd->what;
	req.id = CONTROL_ID;
	req.body_case = CLIENT_MSG__BODY_CONTROL;
	req.control = &control;
	m = tool_ctl_request(&c, &req, SERVER_MSG__BODY_CONTROL, cmd->name);
	if (!m)
		goto err_close;
	if (cmd->print(m->control, json) == 0)
		status = 0;
	server_msg__free_unpacked(m, NULL);

err_close:
	tool_ctl_close(&c);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"limit", required_argument, NULL, 'l'},
	    {"after", required_argument, NULL, 'a'},
	    {"count", required_argument, NULL, 'n'},
	    {"interval", required_argument, NULL, 'i'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = getenv(SOCKET_ENV);
	const struct command *cmd = NULL;
	struct tool_ctl_paging pg = {0};
	struct tool_ctl_follow fw = {.interval_ms = 1000};
	bool json = false;
	char *end;
	size_t i;
	int opt, status;

	if (!path || !*path)
		path = DEFAULT_SOCKET;
	opterr = 0; /* our messages say "hyperbufctl:", whatever argv[0] is */
	while ((opt = getopt_long(argc, argv, ":s:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'l':
			errno = 0;
			pg.limit = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || optarg[0] == '-' || pg.limit == 0 ||
			    pg.limit > UINT32_MAX)
				return usage_error("--limit %s: not a number of rows (1 or more)",
						   optarg);
			break;
		case 'a':
			pg.after = optarg;
			break;
		case 'n':
		case 'i':
			errno = 0;
			*(opt == 'n' ? &fw.count : &fw.interval_ms) = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || optarg[0] == '-' ||
			    (opt == 'i' && (fw.interval_ms < 100 || fw.interval_ms > 3600000)))
				return usage_error(
				    "--%s %s: not a number%s", opt == 'n' ? "count" : "interval",
				    optarg, opt == 'i' ? " of milliseconds (100 to 3600000)" : "");
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("hyperbufctl %s (protocol %u)\n", HB_VERSION_STRING,
			       HBP_PROTOCOL_VERSION);
			return 0;
		case ':':
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				return usage_error("option %s needs an argument", argv[optind - 1]);
			return usage_error("option -%c needs an argument", optopt);
		default:
			/* optopt is the bad letter of a short option, 0 for a long one */
			if (optopt)
				return usage_error("unknown option -%c", optopt);
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind == argc)
		return usage_error("no command given");
	if (optind + 1 != argc)
		return usage_error("one command at a time, not also '%s'", argv[optind + 1]);
	for (i = 0; i < CTL_LEN(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command '%s'", argv[optind]);
	if ((pg.limit || pg.after) && !cmd->view)
		return usage_error("--limit and --after page a listing, not %s", cmd->name);

	fw.json = json;
	status = run(path, cmd, &pg, &fw, json);
	/* Output that never reached its reader (a full disk, a closed pipe) is a failure. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		tool_ctl_errmsg("cannot write the output: %s", strerror(errno));
		status = 1;
	}
	return status;
}
