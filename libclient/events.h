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

struct hb_client;

/* A queued event; meta is allocated with the node. */
struct hbl_event_node {
	struct hbl_event_node *next;
	enum hb_event_type type;
	struct hb_id id;
	uint32_t domain;
	uint64_t size;
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
