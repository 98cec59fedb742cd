/*
 * VM channels (PROTOCOL.md §1.1). A virtio-serial port is one byte stream for the life of the
 * VM, used by one guest process after another, and QEMU does not tell a socket chardev when
 * the guest closes the port: so a session restarts in place on a resync marker, found anywhere
 * in the unhandled input, and the output is kept cut at whole units (frames and markers), so a
 * restart can drop what the old session was owed without cutting one in half.
 */
#include <string.h>

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

/*
 * Looks for resync markers in the input not handled yet, wherever they are: a frame its writer
 * never finished would otherwise swallow the next process's first bytes. It consumes nothing
 * itself: it says what the head of the input is (enum hbd_scan) and how many bytes that is.
 */
enum hbd_scan hbd_channel_scan(struct hbd_session *s, size_t *len, struct hbp_resync *m)
{
	size_t at, next, lim;
	bool whole;
	long n;

	at = s->scan_from +
	     hbp_resync_scan(s->in.data + s->scan_from, s->in.len - s->scan_from, &whole);
	if (!whole) {
		s->scan_from = at;
		return HBD_SCAN_FRAME;
	}
	if (at > 0) {
		n = hbp_frame_peek(s->in.data, s->in.len, HBP_FRAME_MAX, NULL);
		if (n > 0 && HBP_FRAME_HEADER + (size_t)n <= at) {
			s->scan_from = at; /* a whole frame before the marker goes first */
			return HBD_SCAN_FRAME;
		}
		log_debug("%s: dropping %zu bytes before a resync marker", s->label, at);
		*len = at;
		return HBD_SCAN_DROP;
	}
	/* A marker that a later magic cuts short was never written whole (its writer died
	 * after part of it): the later one wins. */
	lim = s->in.len < HBP_RESYNC_LEN ? s->in.len : HBP_RESYNC_LEN;
	next = 1 + hbp_resync_scan(s->in.data + 1, lim - 1, &whole);
	if (whole) {
		*len = next;
		return HBD_SCAN_DROP;
	}
	if (s->in.len < HBP_RESYNC_LEN)
		return HBD_SCAN_WAIT;
	hbp_resync_unpack(s->in.data, m);
	*len = HBP_RESYNC_LEN;
	return HBD_SCAN_MARKER;
}
