/*
 * VM channels (PROTOCOL.md §1.1). A virtio-serial port is one byte stream for the life of the
 * VM, used by one guest process after another, and QEMU does not tell a socket chardev when
 * the guest closes the port: so a session restarts in place on a resync marker, found anywhere
 * in the unhandled input, and the output is kept cut at whole units (frames and markers), so a
 * restart can drop what the old session was owed without cutting one in half.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "daemon/hyperbufd.h"
#include "protocol/limits.h"
#include "protocol/resync.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* VM channels: follows which unit (frame or resync marker) the head of out is in, so that a
 * restart can drop the old session's output without cutting one in half. out always holds
 * whole units. */
void hbd_channel_sent(struct hbd_session *s, size_t n)
{
	size_t pos = 0;

	while (pos < n) {
		const uint8_t *u = s->out.data + pos;
		size_t take;

		if (!s->out_unsent)
			s->out_unsent =
			    s->out.len - pos >= HBP_RESYNC_MAGIC_LEN &&
				    memcmp(u, HBP_RESYNC_MAGIC, HBP_RESYNC_MAGIC_LEN) == 0
				? HBP_RESYNC_LEN
				: HBP_FRAME_HEADER + le32(u);
		take = n - pos < s->out_unsent ? n - pos : s->out_unsent;
		pos += take;
		s->out_unsent -= take;
	}
}

/* The shared splitter (protocol/resync.c) over this session's unhandled input. */
enum hbd_scan hbd_channel_scan(struct hbd_session *s, size_t *len, struct hbp_resync *m)
{
	enum hbp_split r = hbp_resync_split(s->in.data, s->in.len, &s->scan_from, len, m);

	if (r == HBP_SPLIT_DROP)
		log_debug("%s: dropping %zu bytes before a resync marker", s->label, *len);
	switch (r) {
	case HBP_SPLIT_WAIT:
		return HBD_SCAN_WAIT;
	case HBP_SPLIT_FRAME:
		return HBD_SCAN_FRAME;
	case HBP_SPLIT_DROP:
		return HBD_SCAN_DROP;
	case HBP_SPLIT_MARKER:
		break;
	}
	return HBD_SCAN_MARKER;
}

/* Queues a resync marker (not a frame) for the client. */
static int put_marker(struct hbd_session *s, const struct hbp_resync *m)
{
	int r = hbp_bytes_reserve(&s->out, HBP_RESYNC_LEN);

	if (r < 0)
		return r;
	hbp_resync_pack(s->out.data + s->out.len, m);
	s->out.len += HBP_RESYNC_LEN;
	s->d->stats.messages_out++;
	hbd_session_want_write(s);
	return 0;
}

int hbd_session_put_restarted(struct hbd_session *s)
{
	struct hbp_resync m = {.version = HBP_PROTOCOL_VERSION, .status = HBP_RESYNC_RESTARTED};

	if (getrandom(m.nonce, sizeof(m.nonce), 0) != (ssize_t)sizeof(m.nonce))
		memset(m.nonce, 0xa5, sizeof(m.nonce)); /* any nonce: nobody asked for it */
	return put_marker(s, &m);
}

/* A guest process opened the port: whoever used it before is gone (PROTOCOL.md §1.1). */
static void channel_resync(struct hbd_session *s, const struct hbp_resync *m)
{
	struct hbp_resync reply = {.version = HBP_PROTOCOL_VERSION};

	memcpy(reply.nonce, m->nonce, sizeof(reply.nonce));
	if (m->version != HBP_PROTOCOL_VERSION || m->status != 0) {
		log_warn("%s: resync marker of version %u (status %u), this daemon speaks %u",
			 s->label, m->version, m->status, HBP_PROTOCOL_VERSION);
		reply.status = EPROTO;
	}
	hbd_session_restart(s, "a new guest process resynchronised the channel");
	log_debug("%s: channel resynchronised", s->label);
	if (put_marker(s, &reply) < 0)
		hbd_session_close(s, "out of memory");
}

int hbd_channel_input(struct hbd_session *s)
{
	struct hbp_resync m;
	size_t len = 0;

	switch (hbd_channel_scan(s, &len, &m)) {
	case HBD_SCAN_WAIT:
		return -1;
	case HBD_SCAN_FRAME:
		if (!s->await_marker)
			return 0;
		/* Adopted at a restart: what came before the client's marker was meant for the
		 * last daemon, and may start in the middle of a frame. The marker may already be
		 * in the input behind it: look again whenever something went. */
		len = s->scan_from;
		hbd_session_consume(s, len);
		return len ? 1 : -1;
	case HBD_SCAN_DROP:
		hbd_session_consume(s, len);
		return 1;
	case HBD_SCAN_MARKER:
		hbd_session_consume(s, len);
		s->await_marker = false;
		channel_resync(s, &m);
		return 1;
	}
	return -1;
}
