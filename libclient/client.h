/*
 * libhyperbuf internals: the client and the parts each file owns. Nothing here is exported.
 *
 * A client is one connection to the daemon (conn.c: a transport and its framing), the
 * requests in flight on it (call.c), the frame router (dispatch.c), the memory of its backend
 * (memory.c: KVM pools or Xen grants, behind backends/backend.h), its event queue (events.c),
 * its fence points and sync handles (sync.c), and what it owns: timelines, buffers, imports.
 * Each part is a struct of its own, defined by its file's header; only client.c, which wires
 * them together, touches them all.
 *
 * Every public call takes the client's mutex, so the rest of the library is single-threaded.
 * Errors: functions here return 0/positive or a negative errno. A transport failure or a
 * protocol violation by the daemon "breaks" the client: the errno is kept in conn.broken and
 * every later call fails with it. The fds stay open until hb_disconnect (only shut down), so a
 * thread polling them never sees an fd number reused under it.
 */
#ifndef HB_LIBCLIENT_CLIENT_H
#define HB_LIBCLIENT_CLIENT_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/list.h"
#include "hyperbuf.h"
#include "libclient/call.h"
#include "libclient/conn.h"
#include "libclient/dmabuf.h"
#include "libclient/events.h"
#include "libclient/fences.h"
#include "libclient/memory.h"
#include "protocol/hyperbuf.pb-c.h"
#include "protocol/limits.h"

/* The build hides everything (-fvisibility=hidden); public entry points opt back in. */
#define HBL_PUBLIC __attribute__((visibility("default")))

/* Blocking waits poll in slices of this length, re-checking the client's state each time. */
#define HBL_WAIT_SLICE_MS 1000
/* Signals of a lazy timeline that may stay in its slots in a row: the 64th goes to the daemon
 * anyway, so a restart or a crash of the owner loses at most this many from the record. */
#define HBL_LAZY_KEEP 63u
/* What hbl_pollfds gives at most: the channel, per group an ivshmem socket and a doorbell, and
 * the fence slots' stall timer. */
#define HBL_POLLFDS_MAX (2 + 2 * HBP_MAX_GROUPS)
/* Frames one dispatch handles at most, so a chatty daemon cannot starve the caller. */
#define HBL_DISPATCH_BATCH 1024

/* hb_strerror's words for a failed call, and the errno they explain (explain.c). */
struct hbl_why {
	char text[512];
	int err;
};

struct hb_client {
	pthread_mutex_t lock;
	struct hbl_conn conn;      /* conn.c */
	struct hbl_calls calls;    /* call.c */
	struct hbl_memory mem;     /* memory.c */
	struct hbl_events events;  /* events.c */
	struct hbl_holds holds;    /* hold.c */
	struct hbl_fences fences;  /* sync.c */
	struct hbc_list timelines; /* timeline.c: struct hb_timeline */
	struct hbc_list buffers;   /* buffer.c: struct hb_buffer */
	struct hbc_list imports;   /* import.c: struct hb_import */
	struct hbl_kernel kern;    /* dmabuf.c, syncfile.c: dma-bufs and sync_files */

	/* From the welcome (client.c). */
	uint32_t domain;
	uint32_t meta_max; /* min(daemon's meta_max, HB_META_MAX) */
	uint32_t offered;  /* HBP_FEATURE_* its Hellos offer (client.c) */
	uint32_t features; /* of those, what the daemon understands too */
	bool lazy_default; /* HYPERBUF_SIGNALS=lazy: new timelines ask for lazy records */
	/* The last signal sent without waiting (timeline.c): sent again, awaited, it says the
	 * daemon has every one before it. */
	struct hbl_posted_signal {
		uint64_t timeline, value;
		uint32_t error;
	} last_posted;
	/* A timeline's value is owed to the daemon (a TimelineLazy took its leave back, a
	 * resume, a new slot with a waiter we cannot ring): sent where a request may go, at
	 * the latest when the call that learnt it unlocks (hbl_timelines_flush). */
	bool lazy_owed;
	bool vm_channel; /* a VM's channel (vm:, kvm:): resync markers in its stream */
	/* A poll just found the backend's fds (ivshmem sockets) quiet: the next pump need not
	 * ask them (dispatch.c). */
	bool mem_quiet;
	/* Likewise for the channel: a poll woken by a doorbell alone reads no socket. */
	bool chan_quiet;

	/* Resuming after a daemon restart (resume.c, docs/RESTART.md). */
	struct hbl_resume {
		int kind;       /* enum hbl_address_kind */
		char path[108]; /* unix:, vm:, kvm: path */
		uint8_t token[HBP_TOKEN_LEN];
		uint32_t ms; /* how long the daemon keeps a session for its client */
		bool active; /* resuming now: a loss inside is the attempt's failure */
		uint32_t resumes;
	} resume;

	struct hbl_why why; /* explain.c: the last failed call's words */
};

enum hbl_address_kind { HBL_ADDR_UNIX, HBL_ADDR_VM, HBL_ADDR_KVM, HBL_ADDR_XEN };

struct hb_buffer {
	struct hb_client *client;
	struct hbc_list link; /* client->buffers */
	uint64_t handle;      /* the daemon's, private to this session */
	struct hbb_mapping map;
	bool exported; /* hid is valid: the last id hb_export returned */
	/* The daemon keeps the export under hid: no hb_unexport since. A re-export then needs
	 * no answer (buffer.c). Only this session can end the export, short of a free. */
	bool export_live;
	struct hb_id hid;
	struct hbl_dmabufs dmabufs; /* dmabuf.c */
};

struct hb_import {
	struct hb_client *client;
	struct hbc_list link; /* client->imports */
	uint64_t handle;
	struct hbb_mapping map;
	struct hb_id hid;
	uint32_t exporter;
	uint32_t flags;             /* HB_INFO_* at import time */
	bool writable;              /* mapped read-write (HB_IMPORT_WRITE) */
	struct hbl_dmabufs dmabufs; /* dmabuf.c */
	uint32_t meta_len;
	uint8_t meta[];
};

struct hb_timeline {
	struct hb_client *client;
	struct hbc_list link; /* client->timelines */
	uint64_t id;
	struct hbl_slot *slots; /* where its signals are written too (fence_slot.c) */
	unsigned n_slots;
	unsigned slots_epoch; /* moves whenever slots change: a slot new since a store */
	bool failed;          /* it failed a point: slots it hears of later are poisoned at once */
	uint64_t value; /* the highest value signalled or failed: one at or below it is a no-op */
	/* Lazy records (PROTOCOL.md §3), if the application wants them: the daemon said every
	 * waiter reads its slots (lazy), so a signal may stay there; sent is the highest value
	 * the daemon was sent, kept how many signals since then stayed. */
	bool lazy_wanted; /* hb_timeline_set_lazy */
	bool lazy;
	bool owed;      /* the daemon needs value, whether lazy or not (hbl_timelines_flush) */
	bool slot_lost; /* a slot it was given that it cannot write: no value may be kept */
	uint64_t sent;
	unsigned kept;
};

/* client.c: adds to hb_get_fd's epoll set what hbl_pollfds has that it lacks (a doorbell
 * polled once a fence slot is in use). */
int hbl_pub_fd_sync(struct hb_client *c);

/* Every public call that does something takes the lock: a new call, no words yet. */
static inline void hbl_lock(struct hb_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->why.text[0] = '\0';
}

/* dispatch.c: handles the whole frames already received, reading nothing. */
void hbl_route_buffered(struct hb_client *c);

/* timeline.c: sends the values of timelines the daemon asked for again (TimelineLazy, a
 * resume), outside any call: true if it could (sending may read more such requests), false
 * if it may not send now or none is owed. */
bool hbl_timelines_flush(struct hb_client *c);

/* Frames a call read past its reply are routed before anybody else may poll: whoever polls
 * hb_get_fd would not see them (conn.h). */
static inline void hbl_unlock(struct hb_client *c)
{
	if (c->conn.rx.len >= HBP_FRAME_HEADER)
		hbl_route_buffered(c);
	/* Whatever call read that the daemon needs a kept value: it goes now, since the read
	 * left hb_get_fd quiet; and what sending it read is routed in turn (a few rounds: a send
	 * that keeps failing leaves the rest to the next call). */
	for (int i = 0; i < 4 && c->lazy_owed && hbl_timelines_flush(c); i++)
		if (c->conn.rx.len >= HBP_FRAME_HEADER)
			hbl_route_buffered(c);
	/* Likewise the holds to give back. */
	if ((c->holds.n_owed || c->holds.n_taking) && hbl_holds_flush(c) &&
	    c->conn.rx.len >= HBP_FRAME_HEADER)
		hbl_route_buffered(c);
	pthread_mutex_unlock(&c->lock);
}

/* Sets errno from a negative errno and returns -1; for the public boundary. */
static inline int hbl_fail(int neg_errno)
{
	errno = -neg_errno;
	return -1;
}

/* A hid as the wire carries it. */
static inline ProtobufCBinaryData hbl_wire_hid(const struct hb_id *id)
{
	return (ProtobufCBinaryData){.len = sizeof(id->bytes), .data = (uint8_t *)id->bytes};
}

/* buffer.c, import.c, timeline.c: unmap and free without talking to the daemon (disconnect,
 * broken client). */
void hbl_buffer_destroy(struct hb_buffer *b);
void hbl_import_destroy(struct hb_import *im);
/* import.c: the import of the pages ir describes (a reply to Import, or a hold's event), not
 * yet listed; NULL and *err. */
struct hb_import *hbl_import_map(struct hb_client *c, const ImportReply *ir, const struct hb_id *id,
				 bool writable, int *err);
void hbl_timelines_destroy(struct hb_client *c);
/* Waits until the daemon has every signal sent without waiting (one awaited no-op signal), if
 * any is unanswered: before a disconnect, so none is left unread behind the hang-up. */
void hbl_timelines_settle(struct hb_client *c);
/* buffer.c: a quiet re-export of the buffer with this handle was refused (its next export
 * asks); and, before a disconnect, waits until the daemon has every re-export sent without
 * waiting (one awaited Query), if any is unanswered. */
void hbl_reexport_refused(struct hb_client *c, uint64_t handle);
void hbl_reexports_settle(struct hb_client *c);
/* Sends the values of timelines the daemon asked for again (TimelineLazy, a resume), outside
 * any call: true if it could (sending may read more such requests), false if it may not
 * send now or none is owed. */
/* The daemon needs t's value (if it has not got it): sent by the next flush. */
void hbl_timeline_owe(struct hb_client *c, struct hb_timeline *t);
/* TimelineLazy: whether t's signals may stay in its slots (validated by the frame codec). */
void hbl_timeline_lazy(struct hb_client *c, const TimelineLazy *tz);
/* import.c: DOMAIN_GONE; the backend may have to change imports of that domain's memory. */
void hbl_imports_peer_gone(struct hb_client *c, uint32_t domain);

/* resume.c: the stream was lost (conn.lost): reconnect and resume the session within the
 * daemon's resume time, sending again what was in flight, or break the client. 0 if resumed. */
int hbl_resume(struct hb_client *c);
/* client.c: takes a welcome's resume token and time (a resume's too). */
void hbl_take_resume(struct hb_client *c, const Welcome *w);
/* client.c: a new transport to the same address (unix:, vm:, xen:), or -EOPNOTSUPP (kvm:). */
int hbl_open_transport(struct hb_client *c, struct hbb_transport *tp);
/* timeline.c: the pending fences of the reservation of the buffer behind id that an access
 * waits for (HB_ACCESS_READ: the writers'; HB_ACCESS_WRITE: all), out[HB_RESV_MAX]. */
int hbl_resv_query(struct hb_client *c, const struct hb_id *id, uint32_t access,
		   struct hb_fence *out, size_t *n);

/* explain.c: words for hb_strerror about a call failing with err (positive), into c (NULL:
 * hb_connect's, per thread); the daemon's refusal of a request; a failed connect to address. */
void hbl_explain(struct hb_client *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hbl_explain_reply(struct hb_client *c, int body_case, int err, const char *reason);
void hbl_explain_connect(const char *address, const struct hb_client *c, int err);

/* dispatch.c: reads and handles whatever has arrived without blocking (the backend's own fds
 * included), at most max frames. Returns the number of frames handled or a negative errno. */
int hbl_pump(struct hb_client *c, int max);
/* hbl_pump of only the fds an epoll_wait on hb_get_fd's set finds ready, then the watches
 * settled, as hb_dispatch's first look does. Takes the lock: call it without. */
void hbl_pump_ready(struct hb_client *c);
/* The fds of pfd[] (from hbl_pollfds) polled: records whether the backend's were quiet. */
void hbl_polled(struct hb_client *c, const struct pollfd *pfd, size_t n);

#endif
