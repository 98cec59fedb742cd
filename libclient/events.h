/*
 * The event queue (PROTOCOL.md §3, Event), with the daemon's rule: at most `depth` events;
 * when full, the new one is dropped, the oldest are kept, and one OVERFLOW is queued after
 * them. The OVERFLOW node may exceed the depth by one, so that the loss is always reported.
 */
#ifndef HB_LIBCLIENT_EVENTS_H
#define HB_LIBCLIENT_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "hyperbuf.h"
#include "protocol/hyperbuf.pb-c.h"
#include "protocol/limits.h"

struct hb_client;

/* A queued event; meta, and a hold's packed BufferDesc after it, are allocated with the
 * node. */
struct hbl_event_node {
	struct hbl_event_node *next;
	enum hb_event_type type;
	struct hb_id id;
	uint32_t domain;
	uint64_t size;
	uint64_t hold;      /* EXPORTED: the import the daemon made with it (hold.c), or 0 */
	uint32_t hold_info; /* its HB_INFO_* flags */
	uint32_t desc_len;
	uint8_t *desc;
	uint32_t meta_len;
	uint8_t meta[];
};

struct hbl_events {
	struct hbl_event_node *head, *tail; /* oldest first */
	uint32_t count;
	uint32_t depth; /* the welcome's event_queue */
	/* Kept so an OVERFLOW can be queued even when malloc fails. */
	struct hbl_event_node *spare;
	uint64_t last_seq; /* the daemon's seq of the last event taken (0: none yet) */
};

/* hold.c: the imports the daemon makes with EXPORTED events (PROTOCOL.md §3 "Holds"). */
struct hbl_holds {
	/* The last event hb_next_event handed out, if it has a hold not taken yet: hb_import of
	 * its id takes it, the next hb_next_event lets it go. */
	struct hbl_event_node *given;
	/* Holds to give back (Release, posted where a request may go: hbl_holds_flush). The
	 * daemon makes at most HBP_HOLDS_MAX at a time. */
	uint64_t owed[HBP_HOLDS_MAX];
	unsigned n_owed;
	/* Holds taken here and not yet told: the daemon hears of them before any later request,
	 * and at the latest when a later call unlocks (not the hb_import that took one: fresh),
	 * so that taking one is no system call at all. */
	struct hbl_take {
		uint64_t hold;
		struct hb_id id;
	} taking[HBP_HOLDS_MAX];
	unsigned n_taking;
	bool fresh;
	bool sending; /* hbl_holds_send_takes is posting them */
};

/* Gives hold back (0: nothing). */
void hbl_hold_drop(struct hb_client *c, uint64_t hold);
/* n becomes the event handed out (NULL: none); the one before gives its hold back. */
void hbl_holds_given(struct hb_client *c, struct hbl_event_node *n);
/* The import the given event's hold makes, when id is its buffer and flags allow; NULL
 * (hb_import asks the daemon then). */
struct hb_import *hbl_hold_take(struct hb_client *c, const struct hb_id *id, uint32_t flags);
/* Tells the daemon of the holds taken and gives back the owed ones, where a request may go:
 * true if anything went (hbl_unlock routes what sending read). */
bool hbl_holds_flush(struct hb_client *c);
/* Before a request: the takes before it (call.c), so that a Release follows its take. */
void hbl_holds_send_takes(struct hb_client *c);
/* What a resuming Hello names: holds queued, given, or in a posted request. */
size_t hbl_holds_known(struct hb_client *c, uint64_t *out, size_t max);
/* The daemon released every hold the resuming Hello did not name. */
void hbl_holds_resumed(struct hb_client *c);
void hbl_holds_fini(struct hb_client *c);

int hbl_events_init(struct hbl_events *q, uint32_t depth);
void hbl_events_free(struct hbl_events *q);
/* Queues an application event from the daemon (already validated by the frame codec; types
 * this build does not know, and FENCE, which only the library makes, are dropped). */
void hbl_events_push(struct hb_client *c, const Event *ev);
/* Queues an HB_EVENT_FENCE for a point that completed. */
void hbl_events_push_fence(struct hb_client *c, uint64_t timeline, uint64_t value, uint32_t owner);
bool hbl_events_queued(const struct hb_client *c);
/* Queues the HB_EVENT_RESTARTED of a resumed session. */
void hbl_events_push_restarted(struct hb_client *c);

#endif
