/*
 * libFuzzer target: the frame codec (protocol/frame.c) and the VM channel's resync markers
 * (protocol/resync.c) on arbitrary bytes. The input is cut into frames as a reader cuts its
 * stream, every payload is unpacked both as a ClientMsg (what the daemon reads) and as a
 * ServerMsg (what the library reads), and the whole input is unpacked once more without a
 * length in front. Oracles besides the sanitizers: a message that passes validation encodes
 * again and still passes, as the same message; the marker scan agrees with a plain search.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/frame.h"
#include "protocol/limits.h"
#include "protocol/resync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "fuzz_frame: " __VA_ARGS__);                                       \
		fprintf(stderr, "\n");                                                             \
		abort();                                                                           \
	} while (0)

/*
 * Drops the fields this build does not know, everywhere in m. libprotobuf-c keeps them and
 * encodes them again as it read them, and it reads one it will not read again once encoded
 * (a field number 0 written in more than one byte): the round trip below is about our
 * validation, not about that.
 */
static void strip_unknown(ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *desc = m->descriptor;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		free(m->unknown_fields[i].data);
	free(m->unknown_fields);
	m->unknown_fields = NULL;
	m->n_unknown_fields = 0;
	for (unsigned f = 0; f < desc->n_fields; f++) {
		const ProtobufCFieldDescriptor *fd = &desc->fields[f];
		uint8_t *member = (uint8_t *)m + fd->offset;
		const uint8_t *quantifier = (const uint8_t *)m + fd->quantifier_offset;

		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			ProtobufCMessage **v = *(ProtobufCMessage ***)member;

			for (size_t k = 0; k < *(const size_t *)quantifier; k++)
				if (v[k])
					strip_unknown(v[k]);
			continue;
		}
		/* A oneof's members share their storage: only the one set is this field. */
		if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)quantifier != fd->id)
			continue;
		if (*(ProtobufCMessage **)member)
			strip_unknown(*(ProtobufCMessage **)member);
	}
}

/* Re-encoded, the frame must come back whole and valid. */
static const uint8_t *reframed(const struct hbp_bytes *out, long *n)
{
	const uint8_t *payload = NULL;

	*n = hbp_frame_peek(out->data, out->len, HBP_FRAME_MAX, &payload);
	if (*n <= 0 || (size_t)*n + HBP_FRAME_HEADER != out->len)
		FAIL("a re-encoded frame does not peek as itself (%ld of %zu bytes)", *n, out->len);
	return payload;
}

static void client(const uint8_t *p, size_t len)
{
	ClientMsg *m = hbp_frame_get_client(p, len), *again;
	struct hbp_bytes out = {0};
	const uint8_t *payload;
	long n;
	int r;

	if (!m)
		return;
	strip_unknown(&m->base);
	r = hbp_frame_put_client(&out, m, HBP_FRAME_MAX);
	if (r < 0)
		FAIL("a valid ClientMsg (body %d) does not encode again: %d", m->body_case, r);
	payload = reframed(&out, &n);
	again = hbp_frame_get_client(payload, (size_t)n);
	if (!again || again->id != m->id || again->body_case != m->body_case)
		FAIL("a valid ClientMsg (body %d) is not valid once encoded again", m->body_case);
	client_msg__free_unpacked(again, NULL);
	client_msg__free_unpacked(m, NULL);
	hbp_bytes_free(&out);
}

static void server(const uint8_t *p, size_t len)
{
	ServerMsg *m = hbp_frame_get_server(p, len), *again;
	struct hbp_bytes out = {0};
	const uint8_t *payload;
	long n;
	int r;

	if (!m)
		return;
	strip_unknown(&m->base);
	r = hbp_frame_put_server(&out, m, HBP_FRAME_MAX);
	if (r < 0)
		FAIL("a valid ServerMsg (body %d) does not encode again: %d", m->body_case, r);
	payload = reframed(&out, &n);
	again = hbp_frame_get_server(payload, (size_t)n);
	if (!again || again->id != m->id || again->error != m->error ||
	    again->body_case != m->body_case)
		FAIL("a valid ServerMsg (body %d) is not valid once encoded again", m->body_case);
	server_msg__free_unpacked(again, NULL);
	server_msg__free_unpacked(m, NULL);
	hbp_bytes_free(&out);
}

/* The stream as a reader sees it: whole frames one after the other, until one is cut short or
 * announces a length the reader refuses. */
static void frames(const uint8_t *data, size_t size)
{
	const uint8_t *payload;
	size_t pos = 0;
	long n;

	while ((n = hbp_frame_peek(data + pos, size - pos, HBP_FRAME_MAX, &payload)) > 0) {
		if (payload != data + pos + HBP_FRAME_HEADER ||
		    (size_t)n > size - pos - HBP_FRAME_HEADER || (size_t)n > HBP_FRAME_MAX)
			FAIL("peek returned a payload outside the input");
		client(payload, (size_t)n);
		server(payload, (size_t)n);
		pos += HBP_FRAME_HEADER + (size_t)n;
	}
}

static bool magic_prefix(const uint8_t *p, size_t len)
{
	return len < HBP_RESYNC_MAGIC_LEN && memcmp(p, HBP_RESYNC_MAGIC, len) == 0;
}

static void resync(const uint8_t *data, size_t size)
{
	const uint8_t *hit = memmem(data, size, HBP_RESYNC_MAGIC, HBP_RESYNC_MAGIC_LEN);
	struct hbp_resync m;
	uint8_t packed[HBP_RESYNC_LEN];
	size_t at, tail;
	bool whole, unsafe;

	at = hbp_resync_scan(data, size, &whole);
	if (whole != (hit != NULL) || (hit && at != (size_t)(hit - data)))
		FAIL("scan: whole %d at %zu, but the magic is %s", whole, at,
		     hit ? "elsewhere" : "absent");
	if (!hit) {
		/* The longest tail that could still become a magic, and nothing before it. */
		for (tail = 0; tail < size && !magic_prefix(data + tail, size - tail); tail++)
			;
		if (at != tail)
			FAIL("scan: a magic could start at %zu, not %zu", tail, at);
	}
	unsafe = hbp_resync_meta_unsafe(data, size);
	if (unsafe != (hit || (at < size && size - at >= HBP_RESYNC_MAGIC_LEN - 2)))
		FAIL("meta_unsafe says %d", unsafe);
	if (size >= HBP_RESYNC_LEN && hbp_resync_unpack(data, &m) == 0) {
		hbp_resync_pack(packed, &m);
		if (memcmp(packed, data, HBP_RESYNC_LEN) != 0)
			FAIL("a marker does not pack back into its bytes");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frames(data, size);
	/* The whole input as one payload: the unpacker need not wait for the fuzzer to find a
	 * length that matches. */
	client(data, size);
	server(data, size);
	resync(data, size);
	return 0;
}
