/*
 * The file descriptors hyperbufd keeps across its own death (docs/RESTART.md): systemd's file
 * descriptor store while it runs (sd_notify "FDSTORE=1", "FDNAME=", "FDSTOREREMOVE=1"), handed
 * back at the next start as socket activation hands sockets (LISTEN_PID, LISTEN_FDS from fd 3,
 * LISTEN_FDNAMES). Spoken without libsystemd, to the documented protocol, so tests/holder.c
 * can stand in for systemd.
 *
 * The store is used only when the service manager says it keeps one: $FDSTORE (set by systemd
 * 254 and later, and by the shipped unit for 252) is a positive number, and $NOTIFY_SOCKET is
 * set. Without it nothing is stored, and a restart starts from nothing, as it always did.
 *
 * Names are unique per descriptor ("state", "host", "pool.2", "ivp.7", ...): systemd removes by
 * name. Inherited descriptors wait in a table until a part of the daemon takes them by name;
 * what nobody took is removed from the store and closed once the daemon is up.
 */
#ifndef HB_DAEMON_FDSTORE_H
#define HB_DAEMON_FDSTORE_H

#include <stdbool.h>
#include <stddef.h>

#define HBD_FDNAME_MAX 64

struct hbd_fdstore;

/* Reads LISTEN_* (if they are for this pid) and $FDSTORE, and unsets them, so that nothing this
 * daemon starts inherits them. Never fails for want of a store; -ENOMEM only. */
int hbd_fdstore_open(struct hbd_fdstore **out);
void hbd_fdstore_free(struct hbd_fdstore *f);

/* Whether descriptors kept now come back after a restart. */
bool hbd_fdstore_enabled(const struct hbd_fdstore *f);
/* How many descriptors came back at start. */
unsigned hbd_fdstore_inherited(const struct hbd_fdstore *f);

/* The inherited descriptor of that name (close-on-exec set), or -1. The caller owns it; it
 * stays in the store under its name until hbd_fdstore_forget. */
int hbd_fdstore_take(struct hbd_fdstore *f, const char *name);
/* The names of inherited descriptors not taken yet that start with prefix, one at a time:
 * *cursor starts at 0. NULL at the end. */
const char *hbd_fdstore_next(struct hbd_fdstore *f, const char *prefix, size_t *cursor);

/* Stores fd under name (the caller keeps its own fd). 0, or a negative errno (logged): the
 * descriptor then does not survive a restart. A no-op without a store. */
int hbd_fdstore_keep(struct hbd_fdstore *f, int fd, const char *name);
/* Removes name from the store (before the caller closes its fd). */
void hbd_fdstore_forget(struct hbd_fdstore *f, const char *name);
/* Inherited descriptors nobody took: removed from the store and closed, each logged. */
void hbd_fdstore_close_untaken(struct hbd_fdstore *f);

/* From now on keep and forget change nothing: the daemon hands over to the next one, and what
 * it closes on its way out stays in the store. */
void hbd_fdstore_freeze(struct hbd_fdstore *f);

/* Replaces this process with path (same pid), handing it every kept descriptor as LISTEN_FDS,
 * in the order kept, with LISTEN_FDNAMES and LISTEN_PID. Returns only on failure (-errno). */
int hbd_fdstore_exec(struct hbd_fdstore *f, const char *path, char *const argv[]);

#endif
