/*
 * The Xen backend, host side (in dom0). Private to backends/xen/host.c and vchan.c.
 *
 * host.c: the backend ops, the guest domains served (found through libxenctrl, followed with
 * the @introduceDomain and @releaseDomain xenstore watches), budgets and the RECLAIMED event.
 * vchan.c: per served domain, one vchan server listening at
 * /local/domain/0/data/hyperbuf/<domid>/{ring-ref,event-channel} (readable by that domain
 * only) and the connections it accepted. A connection is handed to the common session code
 * as one end of a socketpair; vchan.c pumps bytes between the rings and the other end, so the
 * sessions, the registry and the cleanup are exactly the KVM ones.
 */
#ifndef HB_XEN_XEN_H
#define HB_XEN_XEN_H

#include <stdbool.h>
#include <stdint.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#include <ev.h>

#include "backends/backend.h"
#include "backends/xen/ring.h"
#include "common/list.h"

/* Connections one guest domain may hold at once (each costs dom0 an event channel and
 * 2 * HBX_RING_PAGES + 1 granted pages): a guest cannot exhaust dom0 by connecting. */
#define HBX_MAX_CONNS_PER_DOMAIN 64

struct xen_backend {
	const struct hbb_host_services *svc;
	struct xs_handle *xs;
	xc_interface *xc;
	xenevtchn_handle *evtchn;
	xengntshr_handle *gntshr;
	ev_io xs_io, evtchn_io;
	struct hbc_list domains; /* struct xen_domain, the guests served */
	bool stopping;
	char base[64]; /* /local/domain/0/data/hyperbuf */
	uint64_t conns_total, conns_refused, violations, domains_died;
};

struct hbx_conn;

struct xen_domain {
	struct hbc_list link;
	struct xen_backend *xb;
	uint32_t domid;
	bool seen;    /* alive at the last scan */
	bool closing; /* going away: no new listener */
	struct hbx_conn *listener;
	struct hbc_list conns; /* accepted connections */
	unsigned n_conns;
};

/* vchan.c */
/* Opens a fresh listener for dom and publishes it; replaces none (dom->listener is NULL). */
int hbx_listen(struct xen_domain *dom);
/* An event arrived on a local port: finds its connection and serves it. */
void hbx_port_event(struct xen_backend *xb, evtchn_port_t port);
/* Tears down every connection and the listener of dom, and unpublishes it. */
void hbx_domain_close(struct xen_domain *dom);

#endif
