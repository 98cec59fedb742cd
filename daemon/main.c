/*
 * hyperbufd: the hyperbuf host daemon. Foreground, logs to stderr, READY=1 once every socket
 * exists, SIGTERM/SIGINT for a clean shutdown, SIGHUP to reload a valid config.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "daemon/config.h"
#include "daemon/fdstore.h"
#include "daemon/hyperbufd.h"

#define HBD_DEFAULT_CONFIG HB_SYSCONFDIR "/hyperbuf/hyperbufd.conf"

static struct hbc_config *load_config(const char *path, char *err, size_t errlen)
{
	if (path)
		return hbd_config_load_file(path, err, errlen);
	return hbd_config_load_string(hbd_config_default_text, "/", err, errlen);
}

/* With a service manager that keeps our descriptors, a stop may be a restart: hand over to
 * the next daemon (if the manager stops the service instead, it drops the store, and that is
 * the end of the state). Without one, end every session cleanly. */
static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct hbd *d = w->data;

	d->handover = hbd_state_on(d);
	log_info("%s: shutting down%s", strsignal(w->signum),
		 d->handover ? "; sessions and the state stay for the next daemon" : "");
	ev_break(loop, EVBREAK_ALL);
}

/* SIGUSR2: replace this process with the hyperbufd binary at the same path (an upgrade), the
 * same pid, every kept descriptor and the state handed over as at a restart. */
static void on_reexec(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct hbd *d = w->data;
	int r;

	if (!d->exe || access(d->exe, X_OK) < 0) {
		log_err("re-exec: %s is not there to run; carrying on", d->exe ? d->exe : "?");
		return;
	}
	if (!hbd_state_on(d))
		hbd_state_start(d, 1, 0, "");
	if (hbd_state_commit(d) < 0 || !hbd_state_on(d)) {
		log_err("re-exec: the state could not be kept; carrying on");
		return;
	}
	log_info("re-exec: handing over to %s (pid %d stays)", d->exe, (int)getpid());
	hbd_notify("RELOADING=1");
	r = hbd_fdstore_exec(d->fds, d->exe, d->argv);
	/* The descriptors were moved for the new program: this one cannot go on. */
	log_err("re-exec of %s failed: %s; exiting (a service manager restarts us from the "
		"store)",
		d->exe, strerror(-r));
	_exit(1);
}

/* This program's path, taken at start: an upgrade replaces the file, and a re-exec runs the
 * new one from the same place. */
static const char *self_path(void)
{
	static char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	const char *deleted = " (deleted)";
	size_t dl = strlen(deleted);

	if (n <= 0)
		return NULL;
	path[n] = '\0';
	if ((size_t)n > dl && strcmp(path + n - dl, deleted) == 0)
		path[n - dl] = '\0';
	return path;
}

/* Reload: apply only a valid config, and of it only what hbd_config_reload() can apply to running
 * VMs; the log says what else would need a restart. */
static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct hbd *d = w->data;
	struct hbc_config *next, *cur = d->cfg;
	char err[512], restart[128];

	next = load_config(d->config_path, err, sizeof(err));
	if (!next) {
		log_err("reload: %s; keeping the running configuration", err);
		return;
	}
	if (hbd_config_reload(cur, next, restart, sizeof(restart)))
		log_warn("reload: %s; applying log level and [limits] only", restart);
	hbc_config_free(next);
	/* Only now: the warning above still goes out at the old level. */
	hbc_log_set_level(cur->log_level);
	log_info("reload: configuration applied (exports_per_domain=%u pages_per_domain=%llu "
		 "event_queue=%u meta_max=%u timelines_per_domain=%u fence_waits_per_domain=%u)",
		 cur->exports_per_domain, (unsigned long long)cur->pages_per_domain,
		 cur->event_queue, cur->meta_max, cur->timelines_per_domain,
		 cur->fence_waits_per_domain);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the descriptor limit: %s", strerror(errno));
	}
}

#define SYNOPSIS                                                                                   \
	"usage: hyperbufd [-c CONFIG] [-n] [-d] [-u USER] [-g GROUP] [-m MODE]\n"                  \
	"       hyperbufd -h | --help | -V | --version\n"

static void usage(FILE *f)
{
	fprintf(f, SYNOPSIS
		"  -c, --config CONFIG        config file (default " HBD_DEFAULT_CONFIG
		", else the embedded default)\n"
		"  -n, --check                check the config and exit (0 if valid)\n"
		"  -d, --debug                debug logging\n"
		"  -u, --socket-user USER     owner of the host socket (the config's socket_user)\n"
		"  -g, --socket-group GROUP   group of the host socket (socket_group): its members "
		"may connect\n"
		"  -m, --socket-mode MODE     mode of the host socket (socket_mode, default 0660)\n"
		"  -h, --help                 this help\n"
		"  -V, --version              print the version and exit (-v too)\n");
}

/* A usage mistake, as hyperbufctl says it: the reason, then the synopsis. */
static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "hyperbufd: %s %s\n" SYNOPSIS, what, arg);
	return 2;
}

struct options {
	const char *config_path;
	bool check_only, debug;
	const char *socket_user, *socket_group, *socket_mode;
};

/* 0, 1 (done: --help, --version), or 2 (a usage error). */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'n'},
	    {"debug", no_argument, NULL, 'd'},
	    {"socket-user", required_argument, NULL, 'u'},
	    {"socket-group", required_argument, NULL, 'g'},
	    {"socket-mode", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	char letter[3] = "-?";
	int opt;

	opterr = 0; /* our messages say "hyperbufd:", whatever argv[0] is */
	while ((opt = getopt_long(argc, argv, ":c:ndvVhu:g:m:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'n':
			o->check_only = true;
			break;
		case 'd':
			o->debug = true;
			break;
		case 'u':
			o->socket_user = optarg;
			break;
		case 'g':
			o->socket_group = optarg;
			break;
		case 'm':
			o->socket_mode = optarg;
			break;
		case 'v': /* the old spelling, kept for scripts */
		case 'V':
			printf("hyperbufd %s (protocol %u)\n", HB_VERSION_STRING,
			       HBP_PROTOCOL_VERSION);
			return 1;
		case 'h':
			usage(stdout);
			return 1;
		case ':':
			letter[1] = (char)optopt;
			return usage_error("option needs an argument:",
					   optopt ? letter : argv[optind - 1]);
		default:
			letter[1] = (char)optopt;
			return usage_error("unknown option", optopt ? letter : argv[optind - 1]);
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument", argv[optind]);
	if (!o->config_path && access(HBD_DEFAULT_CONFIG, F_OK) == 0)
		o->config_path = HBD_DEFAULT_CONFIG;
	return 0;
}

/* -u, -g and -m win over the config's socket_user, socket_group and socket_mode. */
static int apply_socket_options(const struct options *o, struct hbc_config *cfg)
{
	char *end;

	if (o->socket_user) {
		struct passwd *pw = getpwnam(o->socket_user);
		unsigned long v = strtoul(o->socket_user, &end, 10);

		if (!pw && (*end || !*o->socket_user)) {
			fprintf(stderr, "hyperbufd: -u %s: no such user\n", o->socket_user);
			return -1;
		}
		cfg->socket_uid = pw ? pw->pw_uid : (uint32_t)v;
	}
	if (o->socket_group) {
		struct group *gr = getgrnam(o->socket_group);
		unsigned long v = strtoul(o->socket_group, &end, 10);

		if (!gr && (*end || !*o->socket_group)) {
			fprintf(stderr, "hyperbufd: -g %s: no such group\n", o->socket_group);
			return -1;
		}
		cfg->socket_gid = gr ? gr->gr_gid : (uint32_t)v;
	}
	if (o->socket_mode) {
		unsigned long v = strtoul(o->socket_mode, &end, 8);

		if (*end || !*o->socket_mode || v > 0777) {
			fprintf(stderr, "hyperbufd: -m %s: not a mode (octal, 0 to 0777)\n",
				o->socket_mode);
			return -1;
		}
		cfg->socket_mode = (unsigned)v;
	}
	return 0;
}

/* The loop's signals: stop on SIGTERM and SIGINT, reload on SIGHUP, re-exec on SIGUSR2. */
static void watch_signals(struct hbd *d)
{
	ev_signal_init(&d->sig_term, on_stop, SIGTERM);
	ev_signal_init(&d->sig_int, on_stop, SIGINT);
	ev_signal_init(&d->sig_hup, on_hup, SIGHUP);
	ev_signal_init(&d->sig_usr2, on_reexec, SIGUSR2);
	d->sig_term.data = d->sig_int.data = d->sig_hup.data = d->sig_usr2.data = d;
	ev_signal_start(d->loop, &d->sig_term);
	ev_signal_start(d->loop, &d->sig_int);
	ev_signal_start(d->loop, &d->sig_hup);
	ev_signal_start(d->loop, &d->sig_usr2);
}

/*
 * Hids, timeline ids and resume tokens are unguessable only once the kernel's random pool is
 * initialised, and the loop never blocks on it (an export would fail with EAGAIN). Early in a
 * boot, or in a guest without hardware randomness, it may not be yet: wait for it here, once,
 * saying so, before any door opens.
 */
static void wait_for_random_pool(void)
{
	uint64_t t0 = hbc_now_ms();
	uint8_t byte;

	if (getrandom(&byte, 1, GRND_NONBLOCK) == 1)
		return;
	log_info("waiting for the kernel's random pool (hids and ids are drawn from it)");
	hbd_notify("STATUS=waiting for the kernel's random pool");
	while (getrandom(&byte, 1, 0) < 0 && errno == EINTR)
		;
	log_info("the kernel's random pool is ready after %llu ms",
		 (unsigned long long)(hbc_now_ms() - t0));
}

int main(int argc, char **argv)
{
	struct hbd d = {0};
	struct options o = {0};
	char err[512];
	int status = 1;

	status = parse_options(argc, argv, &o);
	if (status)
		return status == 1 ? 0 : 2;
	status = 1;
	d.cfg = load_config(o.config_path, err, sizeof(err));
	if (!d.cfg) {
		fprintf(stderr, "hyperbufd: %s\n", err);
		return 1;
	}
	if (apply_socket_options(&o, d.cfg) < 0)
		goto err_config;
	if (o.check_only) {
		printf("%s: configuration is valid\n",
		       o.config_path ? o.config_path : "(embedded)");
		hbc_config_free(d.cfg);
		return 0;
	}
	hbc_log_set_level(o.debug ? HBC_LOG_DEBUG : d.cfg->log_level);
	if (o.debug)
		d.cfg->log_level = HBC_LOG_DEBUG;
	d.config_path = o.config_path;
	d.start_ms = hbc_now_ms();
	d.argv = argv;
	d.exe = self_path();
	if (hbd_fdstore_open(&d.fds) < 0) {
		log_err("out of memory");
		goto err_config;
	}
	d.handle_request = hbd_request;
	d.session_release = hbd_session_release;
	d.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!d.loop) {
		log_err("cannot create the event loop");
		goto err_config;
	}
	/* Every session, pool and eventfd is a descriptor: take all the kernel allows us. */
	raise_fd_limit();
	/* A peer that hangs up while we write must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	wait_for_random_pool();

	if (hbd_server_start(&d) < 0)
		goto err_loop;
	if (hbd_metrics_start(&d) < 0) {
		hbd_server_stop(&d);
		goto err_loop;
	}
	watch_signals(&d);
	log_info("hyperbufd %s ready: backend %s, config %s", HB_VERSION_STRING, d.backend->name,
		 o.config_path ? o.config_path : "(embedded default)");
	hbd_notify("READY=1");
	ev_run(d.loop, 0);
	hbd_notify("STOPPING=1");
	status = 0;

	hbd_metrics_stop(&d);
	hbd_server_stop(&d);
err_loop:
	ev_loop_destroy(d.loop);
err_config:
	hbd_fdstore_free(d.fds);
	hbc_config_free(d.cfg);
	return status;
}
