/*
 * The demo's consumers: vm2 (an emulated VM on its channel socket) and the host (on the
 * daemon's socket), each its own process. A consumer imports each of the producer's buffers
 * once, on its first frame; then, per frame: attaches a READ fence of its own timeline, waits
 * for the frame's WRITE fence, begin_cpu_access(READ), verifies every byte, end, and signals
 * its READ fence. It keeps a private copy of the last frame for the PNG, written after the run.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/demo.h"
#include "tools/png.h"

#define MAX_HIDS 8

struct consumer {
	const struct tool_consumer_args *a;
	struct hb_client *c;
	struct hb_timeline *tl;
	struct tool_consumer_result r;
	unsigned char *last; /* private copy of the last frame, for the PNG only */
	bool have_last;
	uint64_t next_frame;
	struct hb_id hids[MAX_HIDS];
	struct hb_import *ims[MAX_HIDS]; /* imported once, on the slot's first frame */
	bool gone[MAX_HIDS];
	int nhids;
	bool producer_gone;
};

#define CFAIL(cs, ...)                                                                             \
	tool_note_error((cs)->r.error, sizeof((cs)->r.error), &(cs)->r.failures, __VA_ARGS__)

static int hid_index(struct consumer *cs, const struct hb_id *id, bool add)
{
	for (int i = 0; i < cs->nhids; i++)
		if (hb_id_equal(&cs->hids[i], id))
			return i;
	if (!add || cs->nhids == MAX_HIDS)
		return -1;
	cs->hids[cs->nhids] = *id;
	cs->ims[cs->nhids] = NULL;
	cs->gone[cs->nhids] = false;
	return cs->nhids++;
}

/* ---- one frame ----------------------------------------------------------------------------- */

/*
 * What an EXPORTED event says: the frame's metadata into m, its WRITE fence into wf. Returns
 * the slot's index in cs->hids, or -1 (a failure noted) if the event is not a frame of ours;
 * then there is no frame number either, and nothing to release.
 */
static int frame_of_event(struct consumer *cs, const struct hb_event *ev, struct tool_frame_meta *m,
			  struct hb_fence *wf)
{
	const char *who = cs->a->name;
	int i;

	if (ev->domain != cs->a->producer) {
		CFAIL(cs, "%s: export from domain %u, expected only %u", who, ev->domain,
		      cs->a->producer);
		return -1;
	}
	i = hid_index(cs, &ev->id, true);
	if (i < 0) {
		CFAIL(cs, "%s: more than %d distinct handles (expected %u)", who, MAX_HIDS,
		      DEMO_SLOTS);
		return -1;
	}
	cs->r.frames_seen++;
	if (demo_meta_unpack(ev, m, wf) < 0) {
		CFAIL(cs, "%s: metadata of %u bytes is not a frame: %s", who, ev->meta_len,
		      strerror(errno));
		return -1;
	}
	if (m->version != 1 || m->width != TOOL_FRAME_W || m->height != TOOL_FRAME_H ||
	    m->stride != TOOL_FRAME_STRIDE || m->format != TOOL_FOURCC_XRGB8888 ||
	    m->slot >= DEMO_SLOTS || strcmp(m->surface, DEMO_SURFACE) != 0 ||
	    m->frame >= cs->a->frames || wf->value != m->frame + 1) {
		CFAIL(cs,
		      "%s: unexpected metadata: v%u %ux%u stride %u format 0x%08x slot %u '%s' "
		      "frame %" PRIu64 " fence %" PRIu64,
		      who, m->version, m->width, m->height, m->stride, m->format, m->slot,
		      m->surface, m->frame, wf->value);
		return -1;
	}
	return i;
}

/* The slot's first frame: import it, once. Later frames in it reuse the mapping. */
static int import_once(struct consumer *cs, int i, const struct hb_event *ev)
{
	uint8_t raw[HB_META_MAX];
	ssize_t mlen;

	if (cs->ims[i])
		return 0;
	cs->ims[i] = hb_import(cs->c, &ev->id, 0);
	if (!cs->ims[i]) {
		CFAIL(cs, "%s: hb_import: %s", cs->a->name, hb_strerror(cs->c));
		return -1;
	}
	cs->r.imports++;
	/* The metadata seen at import time is this very frame's. */
	mlen = hb_import_metadata(cs->ims[i], raw, sizeof(raw));
	if (mlen != (ssize_t)DEMO_META_SIZE || memcmp(ev->meta, raw, DEMO_META_SIZE) != 0)
		CFAIL(cs, "%s: event and import metadata differ", cs->a->name);
	return 0;
}

/* The buffer must hold a whole frame; a frame out of order is a failure but still read. */
static int check_frame(struct consumer *cs, const struct hb_event *ev,
		       const struct tool_frame_meta *m, const struct hb_import *im)
{
	const char *who = cs->a->name;

	if (hb_import_size(im) != TOOL_FRAME_BYTES || ev->size != TOOL_FRAME_BYTES) {
		CFAIL(cs, "%s: buffer is %zu bytes (event says %" PRIu64 "), expected %zu", who,
		      hb_import_size(im), ev->size, TOOL_FRAME_BYTES);
		return -1;
	}
	if (m->frame != cs->next_frame) {
		if (m->frame > cs->next_frame)
			cs->r.missed += m->frame - cs->next_frame;
		CFAIL(cs, "%s: got frame %" PRIu64 ", expected %" PRIu64, who, m->frame,
		      cs->next_frame);
	}
	cs->next_frame = m->frame + 1;
	return 0;
}

/* Acquire: our READ fence goes on the slot first, then the producer may know. */
static int acquire(struct consumer *cs, const struct hb_id *id, uint64_t frame)
{
	struct hb_fence rf = {.timeline = hb_timeline_id(cs->tl), .value = DEMO_RELEASED(frame)};

	if (hb_attach_fence(cs->c, id, &rf, HB_ACCESS_READ) < 0) {
		CFAIL(cs, "%s: hb_attach_fence(READ, frame %" PRIu64 "): %s", cs->a->name, frame,
		      hb_strerror(cs->c));
		return -1;
	}
	if (hb_timeline_signal(cs->tl, DEMO_ACQUIRED(frame)) < 0) {
		CFAIL(cs, "%s: hb_timeline_signal(acquired %" PRIu64 "): %s", cs->a->name, frame,
		      hb_strerror(cs->c));
		return -1;
	}
	return 0;
}

/* A latency sample only if we were already blocked (since t_wait) when the producer
 * signalled; otherwise the fence had completed while we were busy with an earlier frame. */
static void note_latency(struct consumer *cs, uint64_t frame, uint64_t t_wait, uint64_t t)
{
	uint64_t t_sig = cs->a->signal_ns[frame], lat;

	if (!t_sig || t_sig < t_wait) {
		cs->r.born_signalled++;
		return;
	}
	if (t < t_sig)
		return;
	lat = t - t_sig;
	if (!cs->r.lat_n || lat < cs->r.lat_min)
		cs->r.lat_min = lat;
	if (lat > cs->r.lat_max)
		cs->r.lat_max = lat;
	cs->r.lat_sum += lat;
	cs->r.lat_n++;
}

/* Waits for the producer's WRITE fence of this frame: it is rendering it right now. */
static int wait_for_producer(struct consumer *cs, const struct hb_fence *wf, uint64_t frame)
{
	const char *who = cs->a->name;
	struct hb_sync *s = hb_sync_open(cs->c, wf);
	uint64_t t_wait, t;
	int st;

	if (!s) {
		CFAIL(cs, "%s: hb_sync_open(frame %" PRIu64 "): %s", who, frame,
		      hb_strerror(cs->c));
		return -1;
	}
	t_wait = tool_now_ns();
	if (hb_sync_wait(s, DEMO_STEP_MS) < 0) {
		CFAIL(cs, "%s: frame %" PRIu64 ": no signal within %d s", who, frame,
		      DEMO_STEP_MS / 1000);
		hb_sync_close(s);
		return -1;
	}
	t = tool_now_ns();
	st = hb_sync_status(s);
	hb_sync_close(s);
	if (st != 1) {
		CFAIL(cs, "%s: frame %" PRIu64 ": the producer's fence completed with %s", who,
		      frame, strerror(-st));
		if (st == -EPIPE)
			cs->producer_gone = true;
		return -1;
	}
	note_latency(cs, frame, t_wait, t);
	return 0;
}

/* Reads the frame under begin/end_cpu_access(READ): every pixel checked, the last frame kept. */
static void read_frame(struct consumer *cs, const struct hb_id *id, const struct tool_frame_meta *m,
		       struct hb_import *im)
{
	const char *who = cs->a->name;
	long bad;

	if (hb_begin_cpu_access(cs->c, id, HB_ACCESS_READ, DEMO_STEP_MS) < 0) {
		CFAIL(cs, "%s: hb_begin_cpu_access(READ, frame %" PRIu64 "): %s", who, m->frame,
		      hb_strerror(cs->c));
		return;
	}
	bad =
	    tool_pattern_frame_check(hb_import_data(im), m->width, m->height, m->stride, m->frame);
	if (bad != -1) {
		CFAIL(cs, "%s: frame %" PRIu64 " (slot %u): pixel %ld (x %ld, y %ld) is wrong", who,
		      m->frame, m->slot, bad, bad % (long)m->width, bad / (long)m->width);
	} else {
		cs->r.frames_verified++;
		cs->r.bytes_verified += TOOL_FRAME_BYTES;
		if (m->frame + 1 == cs->a->frames) {
			memcpy(cs->last, hb_import_data(im), TOOL_FRAME_BYTES);
			cs->have_last = true;
			cs->r.last_frame = m->frame;
		}
	}
	if (hb_end_cpu_access(cs->c, id, HB_ACCESS_READ) < 0)
		CFAIL(cs, "%s: hb_end_cpu_access: %s", who, hb_strerror(cs->c));
}

static void consume_frame(struct consumer *cs, const struct hb_event *ev)
{
	struct tool_frame_meta m;
	struct hb_fence wf;
	int i = frame_of_event(cs, ev, &m, &wf);

	if (i < 0)
		return;
	if (import_once(cs, i, ev) < 0 || check_frame(cs, ev, &m, cs->ims[i]) < 0)
		goto release;
	if (acquire(cs, &ev->id, m.frame) < 0 || wait_for_producer(cs, &wf, m.frame) < 0)
		goto release;
	read_frame(cs, &ev->id, &m, cs->ims[i]);
release:
	/* Released (which implies acquired): the producer must never wait for a frame we gave
	 * up on, so this happens on every path once the frame number is known. */
	if (hb_timeline_signal(cs->tl, DEMO_RELEASED(m.frame)) < 0)
		CFAIL(cs, "%s: hb_timeline_signal(released %" PRIu64 "): %s", cs->a->name, m.frame,
		      hb_strerror(cs->c));
}

/* ---- the run ------------------------------------------------------------------------------- */

static bool consumer_done(const struct consumer *cs)
{
	if (cs->producer_gone)
		return true;
	if (cs->r.frames_seen < cs->a->frames || cs->nhids == 0)
		return false;
	for (int i = 0; i < cs->nhids; i++)
		if (!cs->gone[i])
			return false;
	return true;
}

static void handle_event(struct consumer *cs, const struct hb_event *ev)
{
	int i;

	switch (ev->type) {
	case HB_EVENT_EXPORTED:
		consume_frame(cs, ev);
		break;
	case HB_EVENT_UNEXPORTED:
		i = hid_index(cs, &ev->id, false);
		if (i >= 0)
			cs->gone[i] = true;
		break;
	case HB_EVENT_DOMAIN_GONE:
		if (ev->domain == cs->a->producer)
			cs->producer_gone = true;
		break;
	case HB_EVENT_OVERFLOW:
		CFAIL(cs, "%s: event queue overflow: frames were lost", cs->a->name);
		break;
	default: /* HB_EVENT_FENCE: hb_sync_wait already told us */
		break;
	}
}

/* Every frame, until the producer has unexported every slot or is gone. */
static void consume_all(struct consumer *cs)
{
	uint64_t idle_since = tool_now_ns();
	struct hb_event ev;

	while (!consumer_done(cs)) {
		/* Drain first: a blocking call (a fence wait) may have queued events already. */
		while (hb_next_event(cs->c, &ev) == 0) {
			idle_since = tool_now_ns();
			handle_event(cs, &ev);
		}
		if (consumer_done(cs))
			break;
		if (tool_now_ns() - idle_since > (uint64_t)DEMO_STEP_MS * 1000000u) {
			CFAIL(cs, "%s: no event for %d s after %" PRIu64 " frames", cs->a->name,
			      DEMO_STEP_MS / 1000, cs->r.frames_seen);
			break;
		}
		if (hb_dispatch(cs->c, 200) < 0 && errno != EINTR) {
			CFAIL(cs, "%s: hb_dispatch: %s", cs->a->name, hb_strerror(cs->c));
			break;
		}
	}
	if (cs->r.frames_verified < cs->a->frames && !cs->r.error[0])
		CFAIL(cs, "%s: verified %" PRIu64 " of %" PRIu64 " frames", cs->a->name,
		      cs->r.frames_verified, cs->a->frames);
}

/* Connected as the domain we should be, with a timeline: 0, or -1 with the failure noted. */
static int consumer_connect(struct consumer *cs)
{
	const struct tool_consumer_args *a = cs->a;

	cs->last = malloc(TOOL_FRAME_BYTES);
	if (!cs->last) {
		CFAIL(cs, "%s: out of memory", a->name);
		return -1;
	}
	cs->c = hb_connect(a->address);
	if (!cs->c) {
		CFAIL(cs, "%s: hb_connect(%s): %s", a->name, a->address, hb_strerror(NULL));
		return -1;
	}
	cs->r.domain = hb_self_domain(cs->c);
	if (cs->r.domain != a->domain)
		CFAIL(cs, "%s: the daemon says we are domain %u, expected %u", a->name,
		      cs->r.domain, a->domain);
	cs->tl = hb_timeline_create(cs->c);
	if (!cs->tl) {
		CFAIL(cs, "%s: hb_timeline_create: %s", a->name, hb_strerror(cs->c));
		return -1;
	}
	return 0;
}

/* Tells the parent we are ready ('R', else 'F') and our timeline's id (0 without one). */
static void send_ready(const struct consumer *cs, char ready)
{
	uint64_t tl_id = cs->tl ? hb_timeline_id(cs->tl) : 0;

	tool_write_full(cs->a->fd, &ready, 1);
	tool_write_full(cs->a->fd, &tl_id, sizeof(tl_id));
}

static void consumer_close(struct consumer *cs)
{
	for (int i = 0; i < cs->nhids; i++)
		if (cs->ims[i])
			hb_import_release(cs->ims[i]);
	hb_timeline_destroy(cs->tl);
	if (cs->c)
		hb_disconnect(cs->c);
}

/* The PNG after the run: it is the consumer's own copy, not part of the share path. */
static void save_last_frame(struct consumer *cs)
{
	const struct tool_consumer_args *a = cs->a;

	if (!cs->have_last)
		return;
	cs->r.png_error =
	    tool_png_write_xrgb(a->png, cs->last, TOOL_FRAME_W, TOOL_FRAME_H, TOOL_FRAME_STRIDE);
	if (cs->r.png_error)
		CFAIL(cs, "%s: writing %s: %s", a->name, a->png, strerror(-cs->r.png_error));
}

int tool_consumer_run(const struct tool_consumer_args *a)
{
	struct consumer cs = {.a = a};

	alarm(a->alarm_s); /* the last resort against a hang: the parent sees a signal */
	cs.r.magic = DEMO_RESULT_MAGIC;
	cs.r.png_error = 1;
	if (consumer_connect(&cs) < 0)
		goto err_ready;
	send_ready(&cs, 'R');
	consume_all(&cs);
	consumer_close(&cs);
	save_last_frame(&cs);
	free(cs.last);
	tool_write_full(a->fd, &cs.r, sizeof(cs.r));
	return cs.r.failures ? 1 : 0;

err_ready:
	send_ready(&cs, 'F');
	consumer_close(&cs);
	free(cs.last);
	tool_write_full(a->fd, &cs.r, sizeof(cs.r));
	return 1;
}
