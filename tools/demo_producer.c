/*
 * The demo's producer: vm1, an emulated VM on its channel socket, in its own process. It has
 * DEMO_SLOTS buffers per peer (the other VM and the host) and re-exports one per frame to each
 * peer with the frame's WRITE fence in the metadata: begin_cpu_access(WRITE), attach the WRITE
 * fence, render, end; then one signal per frame. It reuses a buffer only after the peer's READ
 * fence on it: its begin_cpu_access(WRITE) waits for it (demo.h has the fence points).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tools/demo.h"

struct slot {
	struct hb_buffer *b;
	struct hb_id id;
	bool exported;
};

struct producer {
	const struct tool_producer_args *a;
	struct hb_client *c;
	struct hb_timeline *tl;
	struct slot s[2][DEMO_SLOTS]; /* [peer][slot] */
	struct tool_producer_result r;
	struct hb_event ev;
	bool peer_gone[2];
	bool broken; /* the connection is gone (sticky EPIPE): nothing left to unexport */
};

#define PFAIL(p, ...)                                                                              \
	tool_note_error((p)->r.error, sizeof((p)->r.error), &(p)->r.failures, __VA_ARGS__)

/* A failed call's errno says the daemon is gone, not that the call was wrong. */
static bool connection_lost(void)
{
	return errno == EPIPE || errno == ECONNRESET;
}

static void producer_events(struct producer *p)
{
	while (hb_next_event(p->c, &p->ev) == 0) {
		switch (p->ev.type) {
		case HB_EVENT_DOMAIN_GONE:
			for (int k = 0; k < 2; k++)
				if (p->ev.domain == p->a->peers[k])
					p->peer_gone[k] = true;
			break;
		case HB_EVENT_OVERFLOW:
			PFAIL(p, "producer: event queue overflow");
			break;
		default: /* IMPORTED, RELEASED, FENCE: nothing to do */
			break;
		}
	}
}

/* Waits until consumer k's timeline reaches value (a fence wait, in 200 ms slices so events
 * keep being read). */
static int producer_wait(struct producer *p, int k, uint64_t value, const char *what)
{
	struct hb_fence f = {.timeline = p->a->peer_tl[k], .value = value};
	uint64_t deadline = tool_now_ns() + (uint64_t)DEMO_STEP_MS * 1000000u;
	struct hb_sync *s = hb_sync_open(p->c, &f);
	int st;

	if (!s) {
		PFAIL(p, "producer: hb_sync_open(%s's %s point): %s", p->a->peer_names[k], what,
		      hb_strerror(p->c));
		return -errno;
	}
	while (hb_sync_wait(s, 200) < 0) {
		producer_events(p);
		if (tool_now_ns() >= deadline) {
			PFAIL(p, "producer: %s did not get to %s within %d s", p->a->peer_names[k],
			      what, DEMO_STEP_MS / 1000);
			hb_sync_close(s);
			return -ETIMEDOUT;
		}
	}
	st = hb_sync_status(s);
	hb_sync_close(s);
	if (st != 1) {
		if (st == -EPIPE)
			PFAIL(p, "producer: %s went away", p->a->peer_names[k]);
		else
			PFAIL(p, "producer: %s's %s point completed with %s", p->a->peer_names[k],
			      what, strerror(-st));
		return st < 0 ? st : -EPROTO;
	}
	return 0;
}

/* A timeline for the WRITE fences, and DEMO_SLOTS frame buffers for each peer. */
static int producer_setup(struct producer *p)
{
	p->tl = hb_timeline_create(p->c);
	if (!p->tl) {
		PFAIL(p, "producer: hb_timeline_create: %s", hb_strerror(p->c));
		return -1;
	}
	for (int k = 0; k < 2; k++) {
		/* The fences travel in the metadata: each consumer must be let see them. */
		if (hb_timeline_share(p->tl, p->a->peers[k]) < 0) {
			PFAIL(p, "producer: hb_timeline_share(%u): %s", p->a->peers[k],
			      hb_strerror(p->c));
			return -1;
		}
		for (unsigned i = 0; i < DEMO_SLOTS; i++) {
			struct slot *s = &p->s[k][i];

			s->b = hb_buffer_alloc(p->c, p->a->peers[k], TOOL_FRAME_BYTES, 0);
			if (!s->b) {
				PFAIL(p, "producer: hb_buffer_alloc(peer %u, %zu): %s",
				      p->a->peers[k], TOOL_FRAME_BYTES, hb_strerror(p->c));
				return -1;
			}
			if (hb_buffer_size(s->b) != TOOL_FRAME_BYTES) {
				PFAIL(p, "producer: buffer is %zu bytes, asked for %zu",
				      hb_buffer_size(s->b), TOOL_FRAME_BYTES);
				return -1;
			}
		}
	}
	return 0;
}

/* Slot i of peer k, for frame n: waits until the peer is done with the slot's previous frame. */
static int begin_write(struct producer *p, int k, unsigned i, uint64_t n)
{
	struct slot *s = &p->s[k][i];
	uint64_t t0;

	/* The slot's previous frame: its consumer's READ fence must be attached before
	 * begin_cpu_access(WRITE) below can wait for it. */
	if (n >= DEMO_SLOTS && producer_wait(p, k, DEMO_ACQUIRED(n - DEMO_SLOTS), "acquired") < 0)
		return -1;
	/* Waits for the consumer's READ fence of the slot's previous frame. (The slot's first
	 * frame: nobody has its handle yet, nothing to wait for.) */
	t0 = tool_now_ns();
	if (s->exported && hb_begin_cpu_access(p->c, &s->id, HB_ACCESS_WRITE, DEMO_STEP_MS) < 0) {
		PFAIL(p, "producer: hb_begin_cpu_access(WRITE, slot %u of %s): %s", i,
		      p->a->peer_names[k], hb_strerror(p->c));
		return -1;
	}
	if (tool_now_ns() - t0 > 200000u) { /* more than a round trip: it waited */
		p->r.write_waits++;
		p->r.write_wait_ns += tool_now_ns() - t0;
	}
	return 0;
}

/* (Re-)exports slot i to peer k with frame n's metadata, and attaches its WRITE fence wf. */
static int publish(struct producer *p, int k, unsigned i, uint64_t n, const struct hb_fence *wf)
{
	struct tool_frame_meta m = {
	    .version = 1,
	    .width = TOOL_FRAME_W,
	    .height = TOOL_FRAME_H,
	    .stride = TOOL_FRAME_STRIDE,
	    .format = TOOL_FOURCC_XRGB8888,
	    .slot = i,
	    .frame = n,
	};
	struct slot *s = &p->s[k][i];
	uint8_t extra[DEMO_EXTRA_SIZE];
	struct hb_image img;
	struct hb_id id;

	snprintf(m.surface, sizeof(m.surface), "%s", DEMO_SURFACE);
	m.produced_ns = tool_now_ns(); /* published: the frame is rendered after this */
	if (demo_meta_pack(&m, wf, &img, extra) < 0) {
		PFAIL(p, "producer: hb_image_init: %s", strerror(errno));
		return -1;
	}
	/* Published before rendering, so the consumer is already waiting for the frame's fence
	 * when it is signalled; after begin_cpu_access, so the READ fence the consumer attaches on
	 * seeing it is not one that start waits for. */
	if (hb_export_image(s->b, &img, extra, sizeof(extra), &id) < 0) {
		p->broken = connection_lost();
		PFAIL(p, "producer: hb_export(frame %" PRIu64 " to %s): %s", n, p->a->peer_names[k],
		      hb_strerror(p->c));
		return -1;
	}
	if (s->exported && !hb_id_equal(&id, &s->id))
		PFAIL(p, "producer: re-export of slot %u to %s changed its handle", i,
		      p->a->peer_names[k]);
	s->id = id;
	s->exported = true;
	p->r.exports++;
	if (hb_attach_fence(p->c, &s->id, wf, HB_ACCESS_WRITE) < 0) {
		PFAIL(p, "producer: hb_attach_fence(WRITE, frame %" PRIu64 "): %s", n,
		      hb_strerror(p->c));
		return -1;
	}
	return 0;
}

/* Frame n into slot i of peer k: take the slot, publish it, render, give it back. */
static int produce_slot(struct producer *p, int k, unsigned i, uint64_t n,
			const struct hb_fence *wf)
{
	struct slot *s = &p->s[k][i];

	if (begin_write(p, k, i, n) < 0 || publish(p, k, i, n, wf) < 0)
		return -1;
	/* Rendered once per peer: each peer has its own pages, and copying one into the other
	 * would be exactly what this project exists to avoid. */
	tool_pattern_frame(hb_buffer_data(s->b), TOOL_FRAME_W, TOOL_FRAME_H, TOOL_FRAME_STRIDE, n);
	if (hb_end_cpu_access(p->c, &s->id, HB_ACCESS_WRITE) < 0) {
		PFAIL(p, "producer: hb_end_cpu_access: %s", hb_strerror(p->c));
		return -1;
	}
	return 0;
}

/* Every frame to both peers, one WRITE fence signal per frame. */
static int produce_all(struct producer *p)
{
	p->r.t_start = tool_now_ns();
	for (uint64_t n = 0; n < p->a->frames; n++) {
		unsigned i = (unsigned)(n % DEMO_SLOTS);
		struct hb_fence wf = {.timeline = hb_timeline_id(p->tl), .value = n + 1};

		for (int k = 0; k < 2; k++)
			if (produce_slot(p, k, i, n, &wf) < 0)
				return -1;
		p->a->signal_ns[n] = tool_now_ns();
		if (hb_timeline_signal(p->tl, n + 1) < 0) {
			p->broken = connection_lost();
			PFAIL(p, "producer: hb_timeline_signal(frame %" PRIu64 "): %s", n,
			      hb_strerror(p->c));
			return -1;
		}
		p->r.signals++;
		producer_events(p);
		p->r.frames++;
	}
	return 0;
}

/* Unexports and frees every slot, then the timeline and the connection. */
static void producer_close(struct producer *p)
{
	for (int k = 0; k < 2; k++) {
		for (unsigned i = 0; i < DEMO_SLOTS; i++) {
			struct slot *s = &p->s[k][i];

			/* With the connection gone (sticky EPIPE) there is nothing to unexport:
			 * the daemon did it when we dropped. One message is enough. */
			if (s->exported && !p->broken && hb_unexport(p->c, &s->id, 0) < 0) {
				p->broken = connection_lost();
				PFAIL(p, "producer: hb_unexport(slot %u of %s): %s", i,
				      p->a->peer_names[k], hb_strerror(p->c));
			}
			if (s->b)
				hb_buffer_free(s->b);
		}
	}
	if (!p->r.t_end)
		p->r.t_end = tool_now_ns();
	hb_timeline_destroy(p->tl);
	hb_disconnect(p->c);
}

int tool_producer_run(const struct tool_producer_args *a)
{
	struct producer p = {.a = a};

	alarm(a->alarm_s); /* the last resort against a hang: the parent sees a signal */
	p.r.magic = DEMO_RESULT_MAGIC;
	p.c = hb_connect(a->address);
	if (!p.c) {
		PFAIL(&p, "producer: hb_connect(%s): %s", a->address, hb_strerror(NULL));
		goto out;
	}
	p.r.domain = hb_self_domain(p.c);
	if (p.r.domain != a->domain)
		PFAIL(&p, "producer: the daemon says we are domain %u, expected %u", p.r.domain,
		      a->domain);
	if (producer_setup(&p) < 0 || produce_all(&p) < 0)
		goto err_close;
	/* Done when both consumers released the last frame. */
	for (int k = 0; k < 2; k++)
		if (producer_wait(&p, k, DEMO_RELEASED(a->frames - 1), "released") < 0)
			goto err_close;
	p.r.t_end = tool_now_ns();

err_close:
	producer_close(&p);
out:
	tool_write_full(a->fd, &p.r, sizeof(p.r));
	return p.r.failures ? 1 : 0;
}
