/*
 * The daemon's life: its doors (door.c: the host and control sockets, one channel socket per
 * configured VM), then the backend (which adds its own sockets), and the end of it all.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sock.h"
#include "daemon/fdstore.h"
#include "daemon/hyperbufd.h"
#include "daemon/state.h"

/* Before the loop sleeps: whatever changed since the last commit becomes durable, so that a
 * daemon killed while idle has nothing in flight; then what that state tells goes out, one
 * send per session that has something to say. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct hbd *d = w->data;

	d->stats.loop_turns++;
	hbd_state_commit(d);
	hbd_sessions_flush(d);
}

/* What the last daemon left (docs/RESTART.md): its state, then its descriptors, adopted by
 * whoever owns each kind. Without a state, pools, sockets and channels still come back: VMs
 * keep running, only sessions are lost. */
static int restore(struct hbd *d, char *name, size_t namelen, unsigned *gen, uint64_t *lineage)
{
	struct hbd_restore rs;
	int have = hbd_restore_find(d, &rs, gen, name, namelen), r = 0;

	if (have == 0) {
		r = hbd_restore_apply(d, &rs);
		*lineage = rs.lineage;
		hbd_restore_free(&rs);
		if (r < 0)
			name[0] = '\0'; /* refused: it goes from the store like any refused one */
	}
	if (d->backend->version >= 2 && d->backend->restore_done)
		d->backend->restore_done(d->backend_state, have == 0 && r == 0);
	hbd_doors_adopt_channels(d);
	return have == 0 && r == 0;
}

static int start_backend(struct hbd *d)
{
	hbd_backend_services_init(d, &d->services);
	d->services.restoring = hbd_fdstore_inherited(d->fds) > 0;
	return d->backend->start(&d->services, &d->backend_state);
}

int hbd_server_start(struct hbd *d)
{
	struct hbc_config *cfg = d->cfg;
	char state_name[HBD_FDNAME_MAX] = "";
	uint64_t t0 = hbc_now_ms(), lineage = 0;
	unsigned gen = 0;
	int r;

	hbc_list_init(&d->sessions);
	hbc_list_init(&d->flushq);
	hbc_list_init(&d->domains);
	hbc_list_init(&d->orphans);
	for (size_t i = 0; i < sizeof(d->hids) / sizeof(d->hids[0]); i++)
		hbc_list_init(&d->hids[i]);
	hbd_handles_init(d);
	hbd_timelines_init(d);
	d->next_serial = 1;
	d->next_handle = 1;
	d->host.fd = d->control.fd = -1;
	hbc_list_init(&d->users);

	d->backend = hbd_backend_find(cfg->backend);
	if (!d->backend) {
		log_err(
		    "backend xen is not in this build (it needs libxen-dev); use backend = kvm");
		return -ENOTSUP;
	}

	/* Domains known from the config exist from the start, so DOMAINS lists them. */
	if (!hbd_domain_get(d, 0))
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->n_vms; i++)
		if (!hbd_domain_get(d, cfg->vms[i].id))
			return -ENOMEM;

	r = hbd_doors_open(d);
	if (r == 0)
		r = start_backend(d);
	if (r < 0)
		goto err;
	if (hbd_fdstore_inherited(d->fds)) {
		restore(d, state_name, sizeof(state_name), &gen, &lineage);
		d->restore_ms = hbc_now_ms() - t0;
		log_info("restart: %u sessions restored in %llu ms", d->restored,
			 (unsigned long long)d->restore_ms);
	}
	hbd_fdstore_close_untaken(d->fds);
	hbd_doors_restrict_folders(d);
	if (hbd_fdstore_enabled(d->fds))
		hbd_state_start(d, gen + 1, lineage, state_name);
	ev_prepare_init(&d->commit_watcher, on_prepare);
	d->commit_watcher.data = d;
	ev_prepare_start(d->loop, &d->commit_watcher);
	return 0;

err:
	hbd_server_stop(d);
	return r;
}

void hbd_server_stop(struct hbd *d)
{
	struct hbd_session *s;
	struct hbd_domain *dom;
	struct hbd_buffer *b;

	d->stopping = true;
	if (d->handover) {
		/* The next daemon takes over from the state as it is now; nothing done on the
		 * way out (closing sessions, sockets, connections) may change it. */
		hbd_state_commit(d);
		hbd_fdstore_freeze(d->fds);
		d->services.handover = true;
	}
	hbd_state_stop(d);
	ev_prepare_stop(d->loop, &d->commit_watcher);
	hbd_doors_close(d);

	if (d->sessions.next) {
		hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
		    hbd_session_close(s, "daemon shutting down");
	}
	/* Orphans survive only while an import holds them; with every session gone, none do.
	 * Anything left here is a bookkeeping bug: free it, loudly. */
	if (d->orphans.next) {
		hbc_list_for_each_safe(b, &d->orphans, struct hbd_buffer, owner_link)
		{
			log_err("buffer %llu still has %u importers at shutdown",
				(unsigned long long)b->mem.handle, b->importers);
			b->importers = 0;
			hbd_buffer_free(b);
		}
	}
	if (d->backend)
		d->backend->stop(d->backend_state);
	if (d->domains.next) {
		hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
		{
			hbc_list_remove(&dom->link);
			free(dom);
		}
	}
}
