/*
 * Requests and their replies. A request gets a fresh id and waits for the reply with that id:
 * replies are matched by id, not by order, so that more than one may be in flight (from
 * several threads' calls, or fence waits) without changing the receive path. While it waits,
 * every other frame is handed to the router (dispatch.c), so events are never lost.
 */
#ifndef HB_LIBCLIENT_CALL_H
#define HB_LIBCLIENT_CALL_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "protocol/hyperbuf.pb-c.h"

struct hb_client;

/* A request waiting for its reply. */
struct hbl_request {
	uint32_t id;
	bool done;
	struct hbb_reply reply;
	struct hbl_request *next;
	uint8_t *frame; /* the framed request, while a resume may have to send it again */
	size_t frame_len;
	int err; /* done without a reply: -ECONNRESET (a resume could not recover it) */
};

/* Requests one call may have in flight (hbl_call_batch): what a resume can send again. */
#define HBL_FLIGHT_MAX 64

/*
 * A request sent without waiting for its reply (TimelineSignal.quiet): the daemon answers it
 * only to refuse it. It is kept until a later reply shows the daemon got past it, so that a
 * resume can send it again to a daemon that never kept it (resume.c).
 */
struct hbl_posted {
	uint32_t id;
	uint64_t hold;     /* the hold it takes or gives back (hold.c), or 0 */
	uint64_t reexport; /* the buffer a quiet re-export is of (buffer.c), or 0 */
	uint8_t *frame;    /* the framed request; NULL on a connection that cannot resume */
	size_t frame_len;
};

/* Requests posted and not yet known to be handled; at the limit a request is awaited instead,
 * and its reply accounts for all of them. */
#define HBL_POSTED_MAX 64

struct hbl_calls {
	uint32_t next_id;
	struct hbl_request *pending;
	struct hbl_posted posted[HBL_POSTED_MAX]; /* oldest first */
	unsigned n_posted;
	/* Reads and routes what has arrived (dispatch.c's hbl_pump; client.c sets it): the
	 * request code waits through it without knowing what the frames mean. */
	int (*pump)(struct hb_client *c, int max);
};

/* Sends msg with a fresh id and waits for the reply. want is the body a successful reply must
 * carry (NOT_SET: any). Returns 0 and *reply (free with hbl_reply_free), -error from the
 * daemon's reply, or the client's sticky error. */
int hbl_call(struct hb_client *c, ClientMsg *msg, ServerMsg__BodyCase want,
	     struct hbb_reply *reply);
/* n requests in one write, their replies awaited together (one round trip): qs[i] and errs[i]
 * are msgs[i]'s reply (hbl_reply_free it where errs[i] is 0) and its verdict as hbl_call's.
 * Returns 0, or the client's error (then no reply is kept and errs says it for every request
 * queued). n <= HBL_FLIGHT_MAX. A request whose reply a daemon restart lost is ECONNRESET
 * (resume.c). */
int hbl_call_batch(struct hb_client *c, ClientMsg *const *msgs, size_t n, ServerMsg__BodyCase want,
		   struct hbl_request *qs, int *errs);
/* Sends msg with a fresh id and returns once it is written: no reply is awaited (the daemon
 * sends one only to refuse it; it is logged then). Returns 0, -EAGAIN when HBL_POSTED_MAX are
 * outstanding (make the call with hbl_call instead), or the client's sticky error. */
int hbl_post(struct hb_client *c, ClientMsg *msg);
/* The same for a request that takes or gives back a hold (hold.c), which a resume names. */
int hbl_post_hold(struct hb_client *c, ClientMsg *msg, uint64_t hold);
/* hbl_post with the hold and re-export of tag kept with it (for its refusal). */
int hbl_post_tagged(struct hb_client *c, ClientMsg *msg, struct hbl_posted tag);
/* The posted requests a resume must send again, oldest first: the new daemon's welcome says
 * it kept every request up to last (0: none). */
int hbl_posted_send_again(struct hb_client *c, uint32_t last);
void hbl_calls_fini(struct hb_client *c);

/* hbl_call for a request whose successful reply carries nothing. */
int hbl_call_simple(struct hb_client *c, ClientMsg *msg);
void hbl_reply_free(struct hbb_reply *reply);

/* The reply to request m->id arrived (dispatch.c): 0 (a caller waits for it), HBL_POSTED_REPLY
 * (the answer to a posted request, handled here), or -EPROTO if nobody asked. Takes m and the
 * fds. */
#define HBL_POSTED_REPLY 2
int hbl_call_complete(struct hb_client *c, ServerMsg *m, int *fds, unsigned nfds);

/* The fds to poll for incoming data: the channel and the backend's own (ivshmem sockets). */
size_t hbl_pollfds(const struct hb_client *c, struct pollfd *pfd, size_t max);

#endif
