/*
 * What a SIGHUP changes in a running daemon (see daemon/config.h). VMs and groups own sockets
 * and pools that guests have mapped, and the host socket and the backend were set up at start:
 * changing any of them needs a restart, so a reload says so instead of half-applying it, and
 * applies only what can change under running VMs: the log level and the [limits].
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "daemon/config.h"

/* Whether next differs from running in what is fixed while the daemon runs. */
static bool needs_restart(const struct hbc_config *running, const struct hbc_config *next)
{
	return next->n_vms != running->n_vms || next->n_groups != running->n_groups ||
	       memcmp(next->vms, running->vms, sizeof(next->vms[0]) * next->n_vms) ||
	       memcmp(next->groups, running->groups, sizeof(next->groups[0]) * next->n_groups) ||
	       strcmp(next->socket, running->socket) || next->backend != running->backend ||
	       strcmp(next->control, running->control) || next->socket_uid != running->socket_uid ||
	       next->socket_gid != running->socket_gid ||
	       next->socket_mode != running->socket_mode ||
	       next->control_gid != running->control_gid ||
	       next->control_mode != running->control_mode ||
	       next->socket_dir_mode != running->socket_dir_mode ||
	       strcmp(next->metrics_socket, running->metrics_socket) ||
	       strcmp(next->metrics_file, running->metrics_file) ||
	       next->metrics_interval_ms != running->metrics_interval_ms;
}

int hbd_config_reload(struct hbc_config *running, const struct hbc_config *next, char *what,
		      size_t len)
{
	static const char restart_msg[] =
	    "[vm], [group] and [daemon] socket/backend/control changes need a restart";
	bool restart = needs_restart(running, next);

	if (len)
		snprintf(what, len, "%s", restart ? restart_msg : "");
	running->log_level = next->log_level;
	running->exports_per_domain = next->exports_per_domain;
	running->pages_per_domain = next->pages_per_domain;
	running->event_queue = next->event_queue;
	running->meta_max = next->meta_max;
	running->timelines_per_domain = next->timelines_per_domain;
	running->fence_waits_per_domain = next->fence_waits_per_domain;
	running->imports_per_domain = next->imports_per_domain;
	running->sessions_per_domain = next->sessions_per_domain;
	running->sessions_per_uid = next->sessions_per_uid;
	running->pending_per_uid = next->pending_per_uid;
	running->hello_timeout_ms = next->hello_timeout_ms;
	running->resume_timeout_ms = next->resume_timeout_ms;
	return restart;
}
