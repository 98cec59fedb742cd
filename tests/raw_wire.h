/*
 * Frames by hand on a byte stream to the daemon, for the tests that play a hostile or
 * half-made client: tests/it_common.c's raw session (the host's sockets) and the conformance
 * suite's raw streams (tests/conform/raw_frames.c: a socket, a KVM guest's virtio port, a Xen
 * domU's relayed vchan). The stream may be non-blocking and need not be a socket. Nothing here
 * reports a failure: each caller fails in its own harness, naming its own line.
 */
#ifndef HB_TESTS_RAW_WIRE_H
#define HB_TESTS_RAW_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/hyperbuf.pb-c.h"

/* What went wrong, for the callers' messages (hbw_why). */
enum hbw_why {
	HBW_CLOSED = 0,     /* EOF or a reset */
	HBW_TIMEOUT = -1,   /* nothing (more) within the time given */
	HBW_BAD_FRAME = -2, /* a length out of bounds, or a payload that does not unpack */
	HBW_SEND = -3,      /* the request could not be sent (errno) */
	HBW_OTHER_ID = -4,  /* a reply to another request */
};

uint64_t hbw_now_ms(void);
/* A connected AF_UNIX stream socket (close-on-exec) at path, or -1 with errno. */
int hbw_unix_connect(const char *path);
/* 1 once fd polls for events (or hangs up), 0 after timeout_ms. */
int hbw_wait_fd(int fd, short events, int timeout_ms);

/* n bytes, all of them, waiting for room up to timeout_ms: 0 or -1 (errno). Never SIGPIPE. */
int hbw_send_all(int fd, const void *p, size_t n, int timeout_ms);
/* A frame with this payload; len_override != UINT64_MAX announces another length. */
int hbw_send_frame(int fd, const void *payload, size_t len, uint64_t len_override, int timeout_ms);
/* m becomes a Hello (in h) with this role and these HBP_FEATURE_* bits, at today's version. */
void hbw_hello(ClientMsg *m, Hello *h, uint32_t role, uint32_t features);
/* Packs and sends m as it is (its id included, even 0). */
int hbw_send(int fd, const ClientMsg *m, int timeout_ms);
/* Appends m as one frame at buf + *len and advances *len; false if it would pass cap. */
bool hbw_put_frame(uint8_t *buf, size_t cap, size_t *len, const ClientMsg *m);

/* Exactly n bytes within timeout_ms: 1, or an enum hbw_why (HBW_CLOSED, HBW_TIMEOUT). With
 * passed non-NULL the stream is a socket: the first descriptor that comes along lands in
 * *passed if that is -1 (the others are closed). */
int hbw_recv_full(int fd, void *p, size_t n, int timeout_ms, int *passed);
/* hbw_recv_full on a socket, counting in *nfds (if not NULL) every descriptor that came. */
int hbw_recv_fds(int fd, void *p, size_t n, int timeout_ms, int *passed, int *nfds);
/* The next frame, events included, unpacked; NULL with *why. The header must come within
 * timeout_ms, the rest within rest_ms. */
ServerMsg *hbw_recv(int fd, int timeout_ms, int rest_ms, int *why, int *passed);
/* Sends m with id (*next_id)++ and returns the reply with that id; what comes with id 0 in
 * between (events, refusals) is dropped. NULL with *why. passed as for hbw_recv_full: it
 * holds what came with the reply (what came before is closed). */
ServerMsg *hbw_call(int fd, uint32_t *next_id, ClientMsg *m, int timeout_ms, int *why, int *passed);
const char *hbw_why(int why);

/* True once the daemon hung up within timeout_ms; what it sent before is read and dropped. */
bool hbw_wait_closed(int fd, int timeout_ms);

#endif
