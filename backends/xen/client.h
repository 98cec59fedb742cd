/*
 * The Xen backend, client side (part of libhyperbuf; backends/xen/client.c, or client_none.c
 * in builds without libxen-dev, where everything fails with ENOTSUP).
 *
 * Two independent parts:
 * - the vchan transport of "xen:" clients (a process in a guest domain): it claims the
 *   listener hyperbufd publishes for its domain and moves frames through the rings;
 * - grant-based buffers, for every client whose daemon is Xen (Welcome.memory ==
 *   HBP_MEMORY_GRANTS), dom0's unix-socket clients included: an exporter allocates its pages
 *   with gntalloc, grants them to the peer (read-only unless HB_BUFFER_PEER_WRITABLE) and
 *   describes them in a reference directory of read-only granted pages; an importer maps the
 *   directory one level per batched grant map, then the data in one more.
 *
 * All functions run with the client's lock held and return 0 or a negative errno.
 */
#ifndef HB_XEN_CLIENT_H
#define HB_XEN_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/hyperbuf.pb-c.h"

struct hb_client;
struct hbl_mapping;

/* Whether this process runs in a Xen guest (not dom0): the default address is then "xen:". */
bool hbx_in_guest(void);

/* xen: connects to hyperbufd's vchan for this domain (waiting up to 10 s for one to be
 * published): sets c->fd (the event channel, to poll), c->tp and c->xen. ENOENT when this is
 * no Xen domain or the Xen modules are not loaded, ETIMEDOUT when no daemon serves it. */
int hbx_connect(struct hb_client *c);

/* The welcome said HBP_MEMORY_GRANTS: opens gntalloc and gntdev. A domain without them can
 * still connect; its allocations and imports then fail with ENODEV. */
int hbx_grants_open(struct hb_client *c);

/* Ends every parked grant and closes whatever c->xen holds (hb_disconnect). */
void hbx_fini(struct hb_client *c);

/* Before Alloc: ENOSPC if size needs more pages than the gntalloc limit allows at all,
 * ENODEV without gntalloc. */
int hbx_alloc_check(struct hb_client *c, uint64_t size);

/* After Alloc reserved buffer `handle`: allocates and grants its pages and directory to peer,
 * sends Grant, and fills m. On failure nothing stays granted. */
int hbx_buffer_make(struct hb_client *c, uint64_t handle, uint32_t peer, uint64_t size,
		       uint32_t flags, struct hbl_mapping *m);

/* hb_buffer_free: the grants of m wait for RECLAIMED (takes the pages out of m). */
void hbx_buffer_park(struct hb_client *c, uint64_t handle, struct hbl_mapping *m);
/* RECLAIMED: nobody maps buffer `handle` any more; its grants end. */
void hbx_reclaimed(struct hb_client *c, uint64_t handle);

/* Maps an import of exporter's buffer desc. EPROTO for a descriptor the daemon should never
 * have sent, EBADMSG for a directory that is corrupt or names pages not granted to us, EFBIG
 * over the gntdev per-map limit, ENODEV without gntdev. */
int hbx_import_map(struct hb_client *c, const BufferDesc *desc, uint32_t exporter, bool writable,
		      struct hbl_mapping *m);

/* Gives m's pages back (unshares, unmaps, or frees a copy). */
void hbx_unmap(struct hbl_mapping *m);

/* DOMAIN_GONE: every import from domid becomes a private copy of its last contents, at the
 * same address with the same protection, and its grant mappings go. */
void hbx_domain_gone(struct hb_client *c, uint32_t domid);

#endif
