/*
 * The daemon's side of the configuration: loading a config file into the model of
 * common/config.h, and reloading one into a running daemon. A config is loaded and checked
 * whole before anybody uses it, and loading touches nothing of the running daemon, so a SIGHUP
 * can load a new config, look at it, and throw it away if it is wrong.
 */
#ifndef HB_DAEMON_CONFIG_H
#define HB_DAEMON_CONFIG_H

#include <stddef.h>

#include "common/config.h"

/* The config compiled into hyperbufd, used when no -c is given and the default file is absent. */
extern const char hbd_config_default_text[];

/*
 * Loads and validates. path: the file (relative paths inside are relative to its folder).
 * On error returns NULL and writes "FILE:LINE: what is wrong" to err.
 */
struct hbc_config *hbd_config_load_file(const char *path, char *err, size_t errlen);
/* Same for a config held in memory; base_dir resolves relative paths. */
struct hbc_config *hbd_config_load_string(const char *text, const char *base_dir, char *err,
					  size_t errlen);

/*
 * A reload: copies from next, a loaded config, what can change under running VMs into running:
 * the log level (the caller sets the logger's) and the [limits]. When next also changes what
 * is fixed until a restart ([vm], [group], the [daemon] socket or backend), that part is not
 * applied: returns 1 and writes to what (len bytes) which changes need a restart, for the log.
 * Otherwise returns 0 with what empty. [xen] changes are neither applied nor reported.
 */
int hbd_config_reload(struct hbc_config *running, const struct hbc_config *next, char *what,
		      size_t len);

#endif
