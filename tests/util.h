/*
 * Helpers for integration tests: a real hyperbufd in a private temp folder.
 * Everything is per-process, so test cases can run in parallel.
 */
#ifndef HB_TEST_UTIL_H
#define HB_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tools/spawn.h"

struct hbt_daemon {
	pid_t pid;                      /* 0 when not running */
	char dir[256];                  /* private temp folder: config, sockets, logs */
	char config[300];               /* dir/hyperbufd.conf */
	char socket[300];               /* dir/host.sock: the host address is "unix:" socket */
	char log[300];                  /* dir/hyperbufd.log: the daemon's stdout and stderr */
	struct tool_daemon_spawn spawn; /* the launcher's (tools/spawn.h): dir/notify.sock */
	bool held;                      /* under tests/hbholder: an fd store, restarts */
};

/* Starts hyperbufd under tests/hbholder (the fd store, docs/RESTART.md) on config_text (NULL:
 * the standard topology). */
void hbt_daemon_start_held(struct hbt_daemon *d, const char *config_text);
/* The same on the standard topology with extra appended (as hbt_daemon_start's). */
void hbt_daemon_start_held_extra(struct hbt_daemon *d, const char *extra);
/* The daemon's log so far (the first MiB), in static storage. */
const char *hbt_daemon_log(const struct hbt_daemon *d);
/* SIGKILLs a held daemon and waits until the holder has it ready again. */
void hbt_daemon_crash(struct hbt_daemon *d);
/* SIGUSR2 (re-exec in place) and the READY=1 of the new program: 0 or -errno. */
int hbt_daemon_reexec(struct hbt_daemon *d);

/* The build folder the tests were built in ($HB_BUILD, default "build"). */
const char *hbt_build_dir(void);
/* Path of a built program, e.g. hbt_prog("hyperbufctl"). Static storage, per call slot. */
const char *hbt_prog(const char *name);

/* The standard topology's config text (below), its paths relative to the config's folder. */
#define HBT_TOPOLOGY                                                                               \
	"[daemon]\nbackend = kvm\nsocket = host.sock\nlog = debug\n\n"                             \
	"[vm vm1]\nid = 1\nchannel = vm1.sock\nivshmem_connections = 16\n\n"                       \
	"[vm vm2]\nid = 2\nchannel = vm2.sock\nivshmem_connections = 16\n\n"                       \
	"[vm vm3]\nid = 3\nchannel = vm3.sock\nivshmem_connections = 16\n\n"                       \
	"[group a]\nmembers = host, vm1\nsize = 64M\nivshmem = group-a.sock\n\n"                   \
	"[group b]\nmembers = vm1, vm2\nsize = 128M\nivshmem = group-b.sock\n\n"                   \
	"[group c]\nmembers = vm2, vm3\nsize = 16M\nivshmem = group-c.sock\n"

/*
 * The standard test topology, written to d->config with socket = host.sock:
 *   vm1 (id 1, channel vm1.sock), vm2 (id 2, vm2.sock), vm3 (id 3, vm3.sock)
 *   group a: host, vm1  size 64M   ivshmem group-a.sock
 *   group b: vm1, vm2   size 128M  ivshmem group-b.sock
 *   group c: vm2, vm3   size 16M   ivshmem group-c.sock
 * extra: more INI text appended (e.g. "[limits]\nexports_per_domain = 4\n"), or NULL.
 * Starts build/hyperbufd -c config with tool_daemon_start and waits until it says READY=1
 * (NOTIFY_SOCKET), 30 s max. Fails the test, with the daemon's log, if it cannot.
 */
void hbt_daemon_start(struct hbt_daemon *d, const char *extra);
/* Same with a whole config text of the caller's ("%s" in it is replaced by d->dir). */
void hbt_daemon_start_config(struct hbt_daemon *d, const char *config_text);
/* SIGTERM, waits, returns the exit status (0 expected: sanitizer leak reports make it non-0),
 * prints the daemon log on failure, removes the temp folder. */
int hbt_daemon_stop(struct hbt_daemon *d);
/* Stops the daemon as hbt_daemon_stop does, keeping its folder, and starts a new one on the
 * same config (its sockets at the same paths). Returns the old one's exit status. */
int hbt_daemon_restart(struct hbt_daemon *d);
/* "unix:DIR/host.sock" or "vm:DIR/vmN.sock" for VM n; static storage per call slot. */
const char *hbt_addr_host(const struct hbt_daemon *d);
const char *hbt_addr_vm(const struct hbt_daemon *d, int n);
/* Path of a file in the daemon's folder. */
const char *hbt_path(const struct hbt_daemon *d, const char *name);

/* Runs build/hyperbufctl -s socket ARGS..., captures stdout into out (NUL-terminated);
 * returns its exit status. */
int hbt_ctl(const struct hbt_daemon *d, char *out, size_t outlen, const char *args);
/* The value of a "key: value" line of `hyperbufctl stats`, or -1 if absent. */
long long hbt_stat(const struct hbt_daemon *d, const char *key);

/* Forks fn(arg) in a child; returns its pid. hbt_wait_child returns its exit code (128+sig
 * when killed by a signal). */
pid_t hbt_fork(int (*fn)(void *arg), void *arg);
int hbt_wait_child(pid_t pid);

/* Dispatches c until an event of this type arrives (other events are skipped) or timeout_ms
 * passes; returns 0 with *ev filled, -1 on timeout. */
struct hb_client;
struct hb_event;
int hbt_wait_event(struct hb_client *c, int type, struct hb_event *ev, int timeout_ms);

/* When a case fails or skips, the cleanup hook calls this first (if set): a suite that starts
 * more than daemons (the VM suite's QEMUs) stops them here and says what they printed. */
extern void (*hbt_cleanup_extra)(void);

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t hbt_now_ms(void);

#endif
