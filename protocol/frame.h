/*
 * Frame codec: a stream carries frames of a 4-byte little-endian length followed by a
 * protobuf-c message. No I/O here: the caller moves bytes, these functions cut and build.
 */
#ifndef HB_PROTOCOL_FRAME_H
#define HB_PROTOCOL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/hyperbuf.pb-c.h"

/* A growable byte buffer used for both directions. */
struct hbp_bytes {
	uint8_t *data;
	size_t len;
	size_t cap;
};

void hbp_bytes_free(struct hbp_bytes *b);
/* Makes room for n more bytes; returns 0 or -ENOMEM. */
int hbp_bytes_reserve(struct hbp_bytes *b, size_t n);
/* Drops the first n bytes. */
void hbp_bytes_consume(struct hbp_bytes *b, size_t n);

/*
 * Looks at the start of in[0..len): returns the payload length of the next whole frame and sets
 * *payload to it, 0 if more bytes are needed, or -EMSGSIZE if the announced length exceeds max
 * (or is zero: an empty message is never valid). The length is checked before any allocation.
 */
long hbp_frame_peek(const uint8_t *in, size_t len, uint32_t max, const uint8_t **payload);

/* Appends a framed message to out. Returns 0, -EMSGSIZE if it would exceed max, -ENOMEM. */
int hbp_frame_put_client(struct hbp_bytes *out, const ClientMsg *msg, uint32_t max);
int hbp_frame_put_server(struct hbp_bytes *out, const ServerMsg *msg, uint32_t max);

/*
 * Unpacks and validates a payload. Validation rejects what protobuf accepts but we don't:
 * a missing body, hids that are not 16 bytes, metadata over HBP_META_LIMIT, zero request ids
 * on client messages. Returns NULL on any violation (free with the matching free_unpacked).
 */
ClientMsg *hbp_frame_get_client(const uint8_t *payload, size_t len);
ServerMsg *hbp_frame_get_server(const uint8_t *payload, size_t len);

/* Whether msg is a request answered only if refused (TimelineSignal.quiet, WatchArm.quiet, a
 * hold's quiet Import, a quiet re-export's Export): its library does not wait for it. */
bool hbp_request_quiet(const ClientMsg *msg);

/* The message a body case carries, by its name in hyperbuf.proto ("Export", "ExportReply"),
 * for logs and traces; "(none)" for an unset body, "?" for one this build does not know. */
const char *hbp_client_body_name(int body_case);
const char *hbp_server_body_name(int body_case);

#endif
