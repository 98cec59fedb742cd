/*
 * hyperbuf.h - zero-copy buffer sharing between virtual machines and the host.
 *
 * This header is the whole client contract of libhyperbuf. It compiles on its own with
 * -std=c11 -Wall -Wextra -Werror. Build a client with `pkg-config --cflags --libs hyperbuf`.
 *
 * Conventions:
 * - Every object is opaque and owned by whoever created it until the matching free call.
 * - Errors: functions return -1 or NULL and set errno. A broken daemon connection is sticky:
 *   every later call on that client fails with the same errno (EPIPE or ECONNRESET).
 * - The library owns no thread and no event loop: poll hb_get_fd() and call hb_dispatch().
 * - One struct hb_client may be used from several threads; calls on it are serialised.
 *   Buffers and imports belong to their client and must not outlive it.
 */
#ifndef HYPERBUF_H
#define HYPERBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HB_VERSION_MAJOR 0
#define HB_VERSION_MINOR 1

/* Largest metadata blob a build of the library can carry. The daemon may configure a smaller
 * limit (meta_max, at least 1024); hb_export fails with EMSGSIZE above either. */
#define HB_META_MAX 4096

/* hb_buffer_alloc flags */
#define HB_BUFFER_PEER_WRITABLE 0x1u /* the peer may import it read-write */

/* hb_import flags */
#define HB_IMPORT_WRITE 0x1u /* map read-write; needs HB_BUFFER_PEER_WRITABLE, else EACCES */

/* struct hb_info.flags */
#define HB_INFO_UNEXPORTED 0x1u       /* withdrawn: new imports fail with ENOENT */
#define HB_INFO_UNEXPORT_PENDING 0x2u /* a delayed unexport is scheduled */
#define HB_INFO_PEER_WRITABLE 0x4u    /* the buffer was allocated HB_BUFFER_PEER_WRITABLE */

/* Fence usage and CPU access modes (the fence API itself arrives in a later version). */
#define HB_ACCESS_READ 0x1u
#define HB_ACCESS_WRITE 0x2u

/* ---- Connection ------------------------------------------------------------------------ */

struct hb_client;

/*
 * Connects to the daemon. address: NULL means $HYPERBUF_ADDRESS, else the platform default
 * (xen: inside a Xen guest, unix:/run/hyperbuf/hyperbufd.sock elsewhere). Forms:
 *   unix:PATH  a host client (domain 0, or Xen's dom0) of the daemon's socket at PATH
 *   vm:PATH    an emulated VM: PATH is that VM's channel socket; the library then connects to
 *              the ivshmem socket of each of the VM's groups and maps the pool from the fd it
 *              receives, exactly as QEMU would
 *   xen:       inside a Xen guest: the vchan hyperbufd in dom0 publishes for this domain
 *              (docs/XEN.md); buffers are then pages this process grants, imports grants it
 *              maps. hb_get_fd is the event-channel device.
 * Errors: EINVAL (bad address), ENOENT/ECONNREFUSED (no daemon), EPROTO (version mismatch or a
 * malformed welcome), ENOMEM; for xen: ENOENT (no Xen devices) or ETIMEDOUT (no daemon serves
 * this domain within 10 s).
 */
struct hb_client *hb_connect(const char *address);

/* Closes the connection and frees every buffer and import still held through it. */
void hb_disconnect(struct hb_client *c);

/* The domain the daemon says this client is: 0 for the host, the VM's id otherwise. */
uint32_t hb_self_domain(const struct hb_client *c);

/*
 * A file descriptor that becomes readable when the daemon sent something for hb_dispatch.
 * Owned by the library; never read from it. Blocking calls read the socket too and queue any
 * events they meet, so drain hb_next_event until EAGAIN before you poll again.
 */
int hb_get_fd(const struct hb_client *c);

/*
 * Reads and handles what the daemon sent, waiting up to timeout_ms (0: do not wait, -1:
 * forever) for the first message. Returns the number of messages handled, or -1.
 */
int hb_dispatch(struct hb_client *c, int timeout_ms);

/* ---- Handles ----------------------------------------------------------------------------- */

/* An export handle (hid): 128 bits, at least 96 of them random. Safe to pass around. */
struct hb_id {
	uint8_t bytes[16];
};

/* Writes 32 lowercase hex digits and a NUL. Returns 0, or -1/EINVAL if an argument is NULL. */
int hb_id_format(const struct hb_id *id, char out[33]);

/* Parses exactly 32 hex digits (either case). Returns 0, or -1/EINVAL on bad text. */
int hb_id_parse(const char *text, struct hb_id *id);

/* 1 if equal, 0 if not. */
int hb_id_equal(const struct hb_id *a, const struct hb_id *b);

/* ---- Buffers, export, unexport ------------------------------------------------------------ */

struct hb_buffer;

/*
 * Allocates zero-filled memory that can be shared with peer_domain. size need not be a page
 * multiple; the exact size is kept. flags: 0 or HB_BUFFER_PEER_WRITABLE.
 * Errors: EINVAL (size 0, self as peer, unknown flags), EPERM (policy: no group with that
 * peer), ENODEV (no such domain), ENOSPC (pool full), EDQUOT (domain quota), EFBIG (larger
 * than any pool). On Xen: ENOSPC (the gntalloc limit, or the domain's grant budget), EFBIG
 * (over the whole grant budget); docs/XEN.md says which knob to turn.
 */
struct hb_buffer *hb_buffer_alloc(struct hb_client *c, uint32_t peer_domain, size_t size,
				  uint32_t flags);

/* The writable mapping of the buffer, valid until hb_buffer_free. */
void *hb_buffer_data(struct hb_buffer *b);
size_t hb_buffer_size(const struct hb_buffer *b);

/* Unexports what is still exported (delay 0) and unmaps. An importer that still maps the
 * pages keeps them until it releases its import. */
void hb_buffer_free(struct hb_buffer *b);

/*
 * Exports b to its peer with meta_len bytes of metadata (meta may be NULL when meta_len is 0)
 * and stores the handle in *id. Exporting the same buffer again returns the same id, replaces
 * the metadata, notifies the peer again and cancels a pending delayed unexport. A buffer whose
 * unexport already completed gets a new id. flags: 0.
 * Errors: EMSGSIZE (meta_len over the limit), EDQUOT (exports_per_domain), EINVAL.
 */
int hb_export(struct hb_buffer *b, const void *meta, size_t meta_len, uint32_t flags,
	      struct hb_id *id);

/*
 * Withdraws an export after delay_ms: then new imports fail with ENOENT, the peer gets
 * HB_EVENT_UNEXPORTED, and the pages are reclaimed once every import was released.
 * Errors: ENOENT (unknown id), EPERM (not the exporter). A second call is a no-op returning 0
 * and keeps the first delay.
 */
int hb_unexport(struct hb_client *c, const struct hb_id *id, uint32_t delay_ms);

/* ---- Import ------------------------------------------------------------------------------ */

struct hb_import;

/*
 * Maps the buffer behind id. flags: 0 (read-only: a write faults) or HB_IMPORT_WRITE.
 * Errors: ENOENT (unknown, forged, unexported or not exported to this domain: these are
 * indistinguishable), EACCES (write asked for, not allowed), EBADMSG (the shared reference
 * directory is corrupt), ENOMEM; on Xen ENOSPC (this domain's maptrack budget) and EFBIG
 * (over gntdev's per-mapping limit).
 * The mapping stays valid until hb_import_release, even after the exporter unexports, frees
 * or dies (on Xen, a dead exporter's pages are then replaced by a private copy of them).
 */
struct hb_import *hb_import(struct hb_client *c, const struct hb_id *id, uint32_t flags);
void *hb_import_data(struct hb_import *im);
size_t hb_import_size(const struct hb_import *im);

/* Copies up to len bytes of the metadata seen at import time into buf; returns its full
 * length (which may exceed len), or -1. */
ssize_t hb_import_metadata(const struct hb_import *im, void *buf, size_t len);
void hb_import_release(struct hb_import *im);

/* ---- Query ------------------------------------------------------------------------------- */

struct hb_info {
	uint32_t exporter;  /* exporting domain */
	uint32_t peer;      /* domain the buffer is exported to */
	uint64_t size;      /* exact bytes */
	uint32_t pages;
	uint32_t importers; /* live imports */
	uint32_t flags;     /* HB_INFO_UNEXPORTED | HB_INFO_UNEXPORT_PENDING | HB_INFO_PEER_WRITABLE */
	uint32_t meta_len;
	uint8_t meta[HB_META_MAX];
};

/* Allowed for the exporter and for the peer; anybody else gets ENOENT. */
int hb_query(struct hb_client *c, const struct hb_id *id, struct hb_info *info);

/* ---- Events ------------------------------------------------------------------------------ */

enum hb_event_type {
	HB_EVENT_EXPORTED = 1, /* to the peer: a buffer was exported to you (or re-exported) */
	HB_EVENT_UNEXPORTED,   /* to the peer: the exporter withdrew it */
	HB_EVENT_IMPORTED,     /* to the exporter: the peer imported it */
	HB_EVENT_RELEASED,     /* to the exporter: the peer released its last import */
	HB_EVENT_DOMAIN_GONE,  /* a domain you share with died or disconnected */
	HB_EVENT_FENCE,        /* a fence you wait on signalled (see fences) */
	HB_EVENT_OVERFLOW,     /* events were lost: resynchronise with hb_query */
};

struct hb_event {
	enum hb_event_type type;
	struct hb_id id;
	uint32_t domain; /* the other side */
	uint64_t size;
	uint32_t meta_len;
	uint8_t meta[HB_META_MAX];
};

/*
 * Returns 0 and fills *ev with the oldest queued event, or -1/EAGAIN when none is queued. It
 * does not wait: use hb_get_fd + hb_dispatch. The queue is bounded (the daemon's event_queue);
 * on overflow the oldest events are kept and one HB_EVENT_OVERFLOW is queued.
 */
int hb_next_event(struct hb_client *c, struct hb_event *ev);

#ifdef __cplusplus
}
#endif

#endif
