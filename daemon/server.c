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
#include "daemon/hyperbufd.h"

int hbd_server_start(struct hbd *d)
{
	struct hbc_config *cfg = d->cfg;
	int r;

	hbc_list_init(&d->sessions);
	hbc_list_init(&d->domains);
	hbc_list_init(&d->orphans);
	for (size_t i = 0; i < sizeof(d->hids) / sizeof(d->hids[0]); i++)
		hbc_list_init(&d->hids[i]);
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
	if (r < 0)
		goto err;
	hbd_backend_services_init(d, &d->services);
	r = d->backend->start(&d->services, &d->backend_state);
	if (r < 0)
		goto err;
	hbd_doors_restrict_folders(d);
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
