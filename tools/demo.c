/*
 * hyperbuf-demo: `make run`. Starts hyperbufd on a config, then shares a moving 1080p test
 * picture from one emulated VM to another emulated VM and to a host process, zero-copy, with
 * fences for synchronisation and flow control:
 *
 *   producer  vm1 (vm:CHANNEL)   3 buffers per peer, re-exported once per frame with the
 *                                frame's WRITE fence in the metadata; begin_cpu_access(WRITE),
 *                                attach the WRITE fence, render, end, signal
 *   consumer  vm2 (vm:CHANNEL)   imports each buffer once; per frame: attaches a READ fence (its
 *                                own timeline), waits for the WRITE fence, begin_cpu_access(READ),
 *                                verifies every byte, end, signals its READ fence
 *   consumer  host (unix:SOCKET) the same
 *
 * Each party is its own process, as it would be on real VMs. The producer reuses a buffer only
 * after the consumers' READ fences on it (its begin_cpu_access(WRITE) waits for them). At the
 * end the parent prints what each consumer verified and the signal-to-wake latency it saw, asks
 * the daemon how many bytes it copied (0 is the point), writes each consumer's last frame as a
 * PNG, and exits 0 only if everything held.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hyperbuf.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "tools/pattern.h"
#include "tools/png.h"
#include "tools/spawn.h"

#define SLOTS   3u
#define SURFACE "demo-0"
#define META_SIZE                                                                                  \
	88u /* struct tool_frame_meta packed (6 x u32, 2 x u64, char[32]), then the                \
	     * frame's WRITE fence: timeline, value (2 x u64) */

#define READY_MS 10000 /* daemon start-up */
#define STEP_MS  10000 /* longest a single step (an event, a release) may take */
/* Not PATH_MAX: <limits.h> is shadowed by protocol/limits.h under the build's -Iprotocol. */
#define PATH_LEN 4096

static const char *argv0 = "hyperbuf-demo";

/* ---- small helpers --------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Little-endian by hand, as pattern.h says: the consumer may be a VM of another build. */
static void meta_pack(const struct tool_frame_meta *m, const struct hb_fence *f,
		      uint8_t out[META_SIZE])
{
	put32(out + 0, m->version);
	put32(out + 4, m->width);
	put32(out + 8, m->height);
	put32(out + 12, m->stride);
	put32(out + 16, m->format);
	put32(out + 20, m->slot);
	put64(out + 24, m->frame);
	put64(out + 32, m->produced_ns);
	memcpy(out + 40, m->surface, sizeof(m->surface));
	put64(out + 72, f->timeline);
	put64(out + 80, f->value);
}

static void meta_unpack(const uint8_t in[META_SIZE], struct tool_frame_meta *m, struct hb_fence *f)
{
	m->version = get32(in + 0);
	m->width = get32(in + 4);
	m->height = get32(in + 8);
	m->stride = get32(in + 12);
	m->format = get32(in + 16);
	m->slot = get32(in + 20);
	m->frame = get64(in + 24);
	m->produced_ns = get64(in + 32);
	memcpy(m->surface, in + 40, sizeof(m->surface));
	m->surface[sizeof(m->surface) - 1] = '\0'; /* never trust a peer's string */
	f->timeline = get64(in + 72);
	f->value = get64(in + 80);
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_LEN];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* dirname into out, without touching the input ("x" -> ".", "/x" -> "/"). */
static void dir_of(const char *path, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(out, outlen, ".");
	else if (slash == path)
		snprintf(out, outlen, "/");
	else
		snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

/* ---- the config: the daemon's own loader ---------------------------------------------- */

/* Strips blanks and line ends from both sides of s, in place. */
static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static const struct hbc_config_vm *find_vm(const struct hbc_config *cfg, const char *name,
					   unsigned nth)
{
	for (unsigned i = 0; i < cfg->n_vms; i++)
		if (strcmp(cfg->vms[i].name, name) == 0)
			return &cfg->vms[i];
	/* No VM of that name: take the nth [vm] section, so any two-VM config works. */
	return nth < cfg->n_vms ? &cfg->vms[nth] : NULL;
}

/* "vm:" and the VM's first channel socket: where an emulated VM's process connects. */
static void vm_address(const struct hbc_config_vm *vm, char *out, size_t len)
{
	char channel[HBC_SUN_PATH_MAX];

	/* Cannot fail: the loader checked every port's path. */
	hbc_config_channel_path(vm, 0, channel);
	snprintf(out, len, "vm:%s", channel);
}

/* ---- results the children send back (each below PIPE_BUF, so one atomic write) ---------- */

#define RESULT_MAGIC 0x48425244u

struct consumer_result {
	uint32_t magic;
	uint32_t domain;
	uint64_t frames_seen;     /* EXPORTED events with a frame in them */
	uint64_t frames_verified; /* every byte as tool_pattern_frame says */
	uint64_t bytes_verified;
	uint64_t failures;
	uint64_t missed;                    /* gaps in the frame numbers */
	uint64_t lat_min, lat_max, lat_sum; /* ns, the producer's signal -> our wait returned */
	uint64_t lat_n;                     /* frames measured */
	uint64_t born_signalled;            /* frames whose fence had signalled before we waited */
	uint64_t imports;                   /* hb_import calls: one per slot */
	uint64_t last_frame;
	int32_t png_error; /* 0, or -errno from writing the PNG; 1: no last frame */
	char error[200];   /* the first failure, for the summary */
};

struct producer_result {
	uint32_t magic;
	uint32_t domain;
	uint64_t frames; /* frames exported to every peer */
	uint64_t exports;
	uint64_t signals;     /* WRITE fences signalled (one per frame) */
	uint64_t write_waits; /* begin_cpu_access(WRITE) calls that had to wait for READ fences */
	uint64_t write_wait_ns;
	uint64_t failures;
	uint64_t t_start, t_end; /* first render .. last consumer release */
	char error[200];
};

static void note_error(char *slot, size_t len, uint64_t *failures, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Counts a failure; keeps the first message and prints every one as it happens. */
static void note_error(char *slot, size_t len, uint64_t *failures, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", argv0, msg);
	if (!slot[0])
		snprintf(slot, len, "%s", msg);
	(*failures)++;
}

/*
 * The fences of a frame (one timeline per party, values are frame numbers):
 *   producer P, frame n: WRITE fence (P, n + 1), attached to the slot before rendering into it
 *     and signalled after; it rides in the frame's metadata.
 *   consumer C, frame n: (C, 2n + 1) "acquired": C has attached its READ fence (C, 2n + 2) to
 *     the slot; (C, 2n + 2) "released": C has finished reading.
 * The producer reuses a slot for frame n + SLOTS after waiting for C's "acquired" point of
 * frame n (so C's READ fence is in the slot's reservation) and then begin_cpu_access(WRITE),
 * which waits for that READ fence: implicit sync does the flow control, the acquired point only
 * makes sure the fence is there to be waited for.
 */
#define ACQUIRED(n) (2 * (uint64_t)(n) + 1)
#define RELEASED(n) (2 * (uint64_t)(n) + 2)

/* ---- consumer ----------------------------------------------------------------------------- */

struct consumer_args {
	const char *name; /* "vm2", "host" */
	char address[PATH_LEN + 8];
	uint32_t domain;   /* what the daemon must say we are */
	uint32_t producer; /* the producer's domain */
	uint64_t frames;
	char png[PATH_LEN + 128];
	int fd; /* readiness byte and our timeline id, then struct consumer_result */
	unsigned alarm_s;
	/* Instrumentation only (not the data path): when the producer signalled each frame's
	 * fence, in memory the parent shared with every child before forking. */
	const volatile uint64_t *signal_ns;
};

#define MAX_HIDS 8

struct consumer {
	const struct consumer_args *a;
	struct hb_client *c;
	struct hb_timeline *tl;
	struct consumer_result r;
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
	note_error((cs)->r.error, sizeof((cs)->r.error), &(cs)->r.failures, __VA_ARGS__)

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

static void consume_frame(struct consumer *cs, const struct hb_event *ev)
{
	struct tool_frame_meta m;
	struct hb_fence wf, rf;
	struct hb_import *im;
	struct hb_sync *s;
	const char *who = cs->a->name;
	uint64_t t, t_sig, t_wait;
	long bad;
	int i, st;

	if (ev->domain != cs->a->producer) {
		CFAIL(cs, "%s: export from domain %u, expected only %u", who, ev->domain,
		      cs->a->producer);
		return;
	}
	i = hid_index(cs, &ev->id, true);
	if (i < 0) {
		CFAIL(cs, "%s: more than %d distinct handles (expected %u)", who, MAX_HIDS, SLOTS);
		return;
	}
	cs->r.frames_seen++;
	if (ev->meta_len != META_SIZE) {
		CFAIL(cs, "%s: metadata is %u bytes, expected %u", who, ev->meta_len, META_SIZE);
		return;
	}
	meta_unpack(ev->meta, &m, &wf);
	if (m.version != 1 || m.width != TOOL_FRAME_W || m.height != TOOL_FRAME_H ||
	    m.stride != TOOL_FRAME_STRIDE || m.format != TOOL_FOURCC_XRGB8888 || m.slot >= SLOTS ||
	    strcmp(m.surface, SURFACE) != 0 || m.frame >= cs->a->frames ||
	    wf.value != m.frame + 1) {
		CFAIL(cs,
		      "%s: unexpected metadata: v%u %ux%u stride %u format 0x%08x slot %u '%s' "
		      "frame %" PRIu64 " fence %" PRIu64,
		      who, m.version, m.width, m.height, m.stride, m.format, m.slot, m.surface,
		      m.frame, wf.value);
		return;
	}
	/* The slot's first frame: import it, once. Later frames in it reuse the mapping. */
	if (!cs->ims[i]) {
		cs->ims[i] = hb_import(cs->c, &ev->id, 0);
		if (!cs->ims[i]) {
			CFAIL(cs, "%s: hb_import: %s", who, strerror(errno));
			goto release;
		}
		cs->r.imports++;
		/* The metadata seen at import time is this very frame's. */
		{
			uint8_t raw[HB_META_MAX];
			ssize_t mlen = hb_import_metadata(cs->ims[i], raw, sizeof(raw));

			if (mlen != (ssize_t)META_SIZE || memcmp(ev->meta, raw, META_SIZE) != 0)
				CFAIL(cs, "%s: event and import metadata differ", who);
		}
	}
	im = cs->ims[i];
	if (hb_import_size(im) != TOOL_FRAME_BYTES || ev->size != TOOL_FRAME_BYTES) {
		CFAIL(cs, "%s: buffer is %zu bytes (event says %" PRIu64 "), expected %zu", who,
		      hb_import_size(im), ev->size, TOOL_FRAME_BYTES);
		goto release;
	}
	if (m.frame != cs->next_frame) {
		if (m.frame > cs->next_frame)
			cs->r.missed += m.frame - cs->next_frame;
		CFAIL(cs, "%s: got frame %" PRIu64 ", expected %" PRIu64, who, m.frame,
		      cs->next_frame);
	}
	cs->next_frame = m.frame + 1;

	/* Acquire: our READ fence goes on the slot first, then the producer may know. */
	rf.timeline = hb_timeline_id(cs->tl);
	rf.value = RELEASED(m.frame);
	if (hb_attach_fence(cs->c, &ev->id, &rf, HB_ACCESS_READ) < 0) {
		CFAIL(cs, "%s: hb_attach_fence(READ, frame %" PRIu64 "): %s", who, m.frame,
		      strerror(errno));
		goto release;
	}
	if (hb_timeline_signal(cs->tl, ACQUIRED(m.frame)) < 0) {
		CFAIL(cs, "%s: hb_timeline_signal(acquired %" PRIu64 "): %s", who, m.frame,
		      strerror(errno));
		goto release;
	}
	/* Wait for the producer's WRITE fence of this frame: it is rendering it right now. */
	s = hb_sync_open(cs->c, &wf);
	if (!s) {
		CFAIL(cs, "%s: hb_sync_open(frame %" PRIu64 "): %s", who, m.frame, strerror(errno));
		goto release;
	}
	t_wait = tool_now_ns();
	if (hb_sync_wait(s, STEP_MS) < 0) {
		CFAIL(cs, "%s: frame %" PRIu64 ": no signal within %d s", who, m.frame,
		      STEP_MS / 1000);
		hb_sync_close(s);
		goto release;
	}
	t = tool_now_ns();
	st = hb_sync_status(s);
	hb_sync_close(s);
	if (st != 1) {
		CFAIL(cs, "%s: frame %" PRIu64 ": the producer's fence completed with %s", who,
		      m.frame, strerror(-st));
		if (st == -EPIPE)
			cs->producer_gone = true;
		goto release;
	}
	/* A sample only if we were already blocked when the producer signalled; otherwise the
	 * fence had completed while we were busy with an earlier frame. */
	t_sig = cs->a->signal_ns[m.frame];
	if (!t_sig || t_sig < t_wait) {
		cs->r.born_signalled++;
	} else if (t >= t_sig) {
		uint64_t lat = t - t_sig;

		if (!cs->r.lat_n || lat < cs->r.lat_min)
			cs->r.lat_min = lat;
		if (lat > cs->r.lat_max)
			cs->r.lat_max = lat;
		cs->r.lat_sum += lat;
		cs->r.lat_n++;
	}
	if (hb_begin_cpu_access(cs->c, &ev->id, HB_ACCESS_READ, STEP_MS) < 0) {
		CFAIL(cs, "%s: hb_begin_cpu_access(READ, frame %" PRIu64 "): %s", who, m.frame,
		      strerror(errno));
		goto release;
	}
	bad = tool_pattern_frame_check(hb_import_data(im), m.width, m.height, m.stride, m.frame);
	if (bad != -1) {
		CFAIL(cs, "%s: frame %" PRIu64 " (slot %u): pixel %ld (x %ld, y %ld) is wrong", who,
		      m.frame, m.slot, bad, bad % (long)m.width, bad / (long)m.width);
	} else {
		cs->r.frames_verified++;
		cs->r.bytes_verified += TOOL_FRAME_BYTES;
		if (m.frame + 1 == cs->a->frames) {
			memcpy(cs->last, hb_import_data(im), TOOL_FRAME_BYTES);
			cs->have_last = true;
			cs->r.last_frame = m.frame;
		}
	}
	if (hb_end_cpu_access(cs->c, &ev->id, HB_ACCESS_READ) < 0)
		CFAIL(cs, "%s: hb_end_cpu_access: %s", who, strerror(errno));
release:
	/* Released (which implies acquired): the producer must never wait for a frame we gave
	 * up on, so this happens on every path once the frame number is known. */
	if (hb_timeline_signal(cs->tl, RELEASED(m.frame)) < 0)
		CFAIL(cs, "%s: hb_timeline_signal(released %" PRIu64 "): %s", who, m.frame,
		      strerror(errno));
}

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

static int run_consumer(const struct consumer_args *a)
{
	struct consumer cs = {.a = a};
	struct hb_event ev;
	uint64_t idle_since, tl_id = 0;
	char ready = 'F';
	int i;

	alarm(a->alarm_s); /* the last resort against a hang: the parent sees a signal */
	cs.r.magic = RESULT_MAGIC;
	cs.r.png_error = 1;
	cs.last = malloc(TOOL_FRAME_BYTES);
	if (!cs.last) {
		CFAIL(&cs, "%s: out of memory", a->name);
		goto err_ready;
	}
	cs.c = hb_connect(a->address);
	if (!cs.c) {
		CFAIL(&cs, "%s: hb_connect(%s): %s", a->name, a->address, strerror(errno));
		goto err_ready;
	}
	cs.r.domain = hb_self_domain(cs.c);
	if (cs.r.domain != a->domain)
		CFAIL(&cs, "%s: the daemon says we are domain %u, expected %u", a->name,
		      cs.r.domain, a->domain);
	cs.tl = hb_timeline_create(cs.c);
	if (!cs.tl) {
		CFAIL(&cs, "%s: hb_timeline_create: %s", a->name, strerror(errno));
		goto err_ready;
	}
	tl_id = hb_timeline_id(cs.tl);
	ready = 'R';
	tool_write_full(a->fd, &ready, 1);
	tool_write_full(a->fd, &tl_id, sizeof(tl_id));

	idle_since = tool_now_ns();
	while (!consumer_done(&cs)) {
		int r;

		/* Drain first: a blocking call (a fence wait) may have queued events already. */
		while (hb_next_event(cs.c, &ev) == 0) {
			idle_since = tool_now_ns();
			switch (ev.type) {
			case HB_EVENT_EXPORTED:
				consume_frame(&cs, &ev);
				break;
			case HB_EVENT_UNEXPORTED:
				i = hid_index(&cs, &ev.id, false);
				if (i >= 0)
					cs.gone[i] = true;
				break;
			case HB_EVENT_DOMAIN_GONE:
				if (ev.domain == a->producer)
					cs.producer_gone = true;
				break;
			case HB_EVENT_OVERFLOW:
				CFAIL(&cs, "%s: event queue overflow: frames were lost", a->name);
				break;
			default: /* HB_EVENT_FENCE: hb_sync_wait already told us */
				break;
			}
		}
		if (consumer_done(&cs))
			break;
		if (tool_now_ns() - idle_since > (uint64_t)STEP_MS * 1000000u) {
			CFAIL(&cs, "%s: no event for %d s after %" PRIu64 " frames", a->name,
			      STEP_MS / 1000, cs.r.frames_seen);
			break;
		}
		r = hb_dispatch(cs.c, 200);
		if (r < 0 && errno != EINTR) {
			CFAIL(&cs, "%s: hb_dispatch: %s", a->name, strerror(errno));
			break;
		}
	}
	if (cs.r.frames_verified < a->frames && !cs.r.error[0])
		CFAIL(&cs, "%s: verified %" PRIu64 " of %" PRIu64 " frames", a->name,
		      cs.r.frames_verified, a->frames);
	for (i = 0; i < cs.nhids; i++)
		if (cs.ims[i])
			hb_import_release(cs.ims[i]);
	hb_timeline_destroy(cs.tl);
	hb_disconnect(cs.c);
	/* The PNG after the run: it is the consumer's own copy, not part of the share path. */
	if (cs.have_last) {
		cs.r.png_error = tool_png_write_xrgb(a->png, cs.last, TOOL_FRAME_W, TOOL_FRAME_H,
						     TOOL_FRAME_STRIDE);
		if (cs.r.png_error)
			CFAIL(&cs, "%s: writing %s: %s", a->name, a->png,
			      strerror(-cs.r.png_error));
	}
	free(cs.last);
	tool_write_full(a->fd, &cs.r, sizeof(cs.r));
	return cs.r.failures ? 1 : 0;

err_ready:
	if (cs.tl)
		hb_timeline_destroy(cs.tl);
	if (cs.c)
		hb_disconnect(cs.c);
	free(cs.last);
	tool_write_full(a->fd, &ready, 1);
	tool_write_full(a->fd, &tl_id, sizeof(tl_id));
	tool_write_full(a->fd, &cs.r, sizeof(cs.r));
	return 1;
}

/* ---- producer ----------------------------------------------------------------------------- */

struct producer_args {
	char address[PATH_LEN + 8];
	uint32_t domain;
	uint32_t peers[2];
	uint64_t peer_tl[2]; /* each consumer's timeline */
	const char *peer_names[2];
	uint64_t frames;
	int fd;
	unsigned alarm_s;
	volatile uint64_t *signal_ns; /* instrumentation, see struct consumer_args */
};

struct slot {
	struct hb_buffer *b;
	struct hb_id id;
	bool exported;
};

struct producer {
	const struct producer_args *a;
	struct hb_client *c;
	struct hb_timeline *tl;
	struct slot s[2][SLOTS];
	struct producer_result r;
	struct hb_event ev;
	bool peer_gone[2];
};

#define PFAIL(p, ...) note_error((p)->r.error, sizeof((p)->r.error), &(p)->r.failures, __VA_ARGS__)

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
	uint64_t deadline = tool_now_ns() + (uint64_t)STEP_MS * 1000000u;
	struct hb_sync *s = hb_sync_open(p->c, &f);
	int st;

	if (!s) {
		PFAIL(p, "producer: hb_sync_open(%s's %s point): %s", p->a->peer_names[k], what,
		      strerror(errno));
		return -errno;
	}
	while (hb_sync_wait(s, 200) < 0) {
		producer_events(p);
		if (tool_now_ns() >= deadline) {
			PFAIL(p, "producer: %s did not get to %s within %d s", p->a->peer_names[k],
			      what, STEP_MS / 1000);
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

static int run_producer(const struct producer_args *a)
{
	struct producer p = {.a = a};
	struct tool_frame_meta m = {
	    .version = 1,
	    .width = TOOL_FRAME_W,
	    .height = TOOL_FRAME_H,
	    .stride = TOOL_FRAME_STRIDE,
	    .format = TOOL_FOURCC_XRGB8888,
	};
	uint8_t raw[META_SIZE];
	bool broken = false;

	alarm(a->alarm_s);
	p.r.magic = RESULT_MAGIC;
	snprintf(m.surface, sizeof(m.surface), "%s", SURFACE);
	p.c = hb_connect(a->address);
	if (!p.c) {
		PFAIL(&p, "producer: hb_connect(%s): %s", a->address, strerror(errno));
		goto out;
	}
	p.r.domain = hb_self_domain(p.c);
	if (p.r.domain != a->domain)
		PFAIL(&p, "producer: the daemon says we are domain %u, expected %u", p.r.domain,
		      a->domain);
	p.tl = hb_timeline_create(p.c);
	if (!p.tl) {
		PFAIL(&p, "producer: hb_timeline_create: %s", strerror(errno));
		goto err_free;
	}
	for (int k = 0; k < 2; k++) {
		for (unsigned i = 0; i < SLOTS; i++) {
			struct slot *s = &p.s[k][i];

			s->b = hb_buffer_alloc(p.c, a->peers[k], TOOL_FRAME_BYTES, 0);
			if (!s->b) {
				PFAIL(&p, "producer: hb_buffer_alloc(peer %u, %zu): %s",
				      a->peers[k], TOOL_FRAME_BYTES, strerror(errno));
				goto err_free;
			}
			if (hb_buffer_size(s->b) != TOOL_FRAME_BYTES) {
				PFAIL(&p, "producer: buffer is %zu bytes, asked for %zu",
				      hb_buffer_size(s->b), TOOL_FRAME_BYTES);
				goto err_free;
			}
		}
	}

	p.r.t_start = tool_now_ns();
	for (uint64_t n = 0; n < a->frames; n++) {
		unsigned i = (unsigned)(n % SLOTS);
		struct hb_fence wf = {.timeline = hb_timeline_id(p.tl), .value = n + 1};

		for (int k = 0; k < 2; k++) {
			struct slot *s = &p.s[k][i];
			struct hb_id id;
			uint64_t t0;

			/* The slot's previous frame: its consumer's READ fence must be attached
			 * before begin_cpu_access(WRITE) below can wait for it. */
			if (n >= SLOTS && producer_wait(&p, k, ACQUIRED(n - SLOTS), "acquired") < 0)
				goto err_free;
			/* Waits for the consumer's READ fence of the slot's previous frame. (The
			 * slot's first frame: nobody has its handle yet, nothing to wait for.) */
			t0 = tool_now_ns();
			if (s->exported &&
			    hb_begin_cpu_access(p.c, &s->id, HB_ACCESS_WRITE, STEP_MS) < 0) {
				PFAIL(&p, "producer: hb_begin_cpu_access(WRITE, slot %u of %s): %s",
				      i, a->peer_names[k], strerror(errno));
				goto err_free;
			}
			if (tool_now_ns() - t0 > 200000u) { /* more than a round trip: it waited */
				p.r.write_waits++;
				p.r.write_wait_ns += tool_now_ns() - t0;
			}
			m.slot = i;
			m.frame = n;
			m.produced_ns =
			    tool_now_ns(); /* published: the frame is rendered after this */
			meta_pack(&m, &wf, raw);
			/* Published before rendering, so the consumer is already waiting for the
			 * frame's fence when it is signalled; after begin_cpu_access, so the READ
			 * fence the consumer attaches on seeing it is not one that start waits for.
			 */
			if (hb_export(s->b, raw, sizeof(raw), 0, &id) < 0) {
				broken = errno == EPIPE || errno == ECONNRESET;
				PFAIL(&p, "producer: hb_export(frame %" PRIu64 " to %s): %s", n,
				      a->peer_names[k], strerror(errno));
				goto err_free;
			}
			if (s->exported && !hb_id_equal(&id, &s->id))
				PFAIL(&p, "producer: re-export of slot %u to %s changed its handle",
				      i, a->peer_names[k]);
			s->id = id;
			s->exported = true;
			p.r.exports++;
			if (hb_attach_fence(p.c, &s->id, &wf, HB_ACCESS_WRITE) < 0) {
				PFAIL(&p, "producer: hb_attach_fence(WRITE, frame %" PRIu64 "): %s",
				      n, strerror(errno));
				goto err_free;
			}
			/* Rendered once per peer: each peer has its own pages, and copying one
			 * into the other would be exactly what this project exists to avoid. */
			tool_pattern_frame(hb_buffer_data(s->b), TOOL_FRAME_W, TOOL_FRAME_H,
					   TOOL_FRAME_STRIDE, n);
			if (hb_end_cpu_access(p.c, &s->id, HB_ACCESS_WRITE) < 0) {
				PFAIL(&p, "producer: hb_end_cpu_access: %s", strerror(errno));
				goto err_free;
			}
		}
		a->signal_ns[n] = tool_now_ns();
		if (hb_timeline_signal(p.tl, n + 1) < 0) {
			broken = errno == EPIPE || errno == ECONNRESET;
			PFAIL(&p, "producer: hb_timeline_signal(frame %" PRIu64 "): %s", n,
			      strerror(errno));
			goto err_free;
		}
		p.r.signals++;
		producer_events(&p);
		p.r.frames++;
	}
	/* Done when both consumers released the last frame. */
	for (int k = 0; k < 2; k++)
		if (producer_wait(&p, k, RELEASED(a->frames - 1), "released") < 0)
			goto err_free;
	p.r.t_end = tool_now_ns();

err_free:
	for (int k = 0; k < 2; k++) {
		for (unsigned i = 0; i < SLOTS; i++) {
			struct slot *s = &p.s[k][i];

			/* With the connection gone (sticky EPIPE) there is nothing to unexport:
			 * the daemon did it when we dropped. One message is enough. */
			if (s->exported && !broken && hb_unexport(p.c, &s->id, 0) < 0) {
				broken = errno == EPIPE || errno == ECONNRESET;
				PFAIL(&p, "producer: hb_unexport(slot %u of %s): %s", i,
				      a->peer_names[k], strerror(errno));
			}
			if (s->b)
				hb_buffer_free(s->b);
		}
	}
	if (!p.r.t_end)
		p.r.t_end = tool_now_ns();
	hb_timeline_destroy(p.tl);
	hb_disconnect(p.c);
out:
	tool_write_full(a->fd, &p.r, sizeof(p.r));
	return p.r.failures ? 1 : 0;
}

/* ---- the daemon ------------------------------------------------------------------------- */

/* The daemon's own counters that the summary shows; -1 where a key is missing. */
struct daemon_stats {
	long long bytes_copied; /* what the whole project is about: must stay 0 */
	long long bytes_shared_total;
	long long exports_total;
	long long imports_total;
	long long events_dropped;
	long long fences_completed;
};

static void stat_value(char *line, const char *key, long long *value)
{
	size_t n = strlen(key);
	char *rest;

	if (strncmp(line, key, n) != 0)
		return;
	rest = trim(line + n);
	if (rest[0] == ':')
		*value = strtoll(rest + 1, NULL, 10);
}

/*
 * `hyperbufctl -s SOCKET stats`, from next to the daemon binary. Returns 0, or -1 if it did
 * not run cleanly (st then holds what could be read).
 */
static int read_stats(const char *daemon, const char *socket, struct daemon_stats *st)
{
	char dir[PATH_LEN], ctl[PATH_LEN + 16], out[16384];
	uint64_t deadline = tool_now_ns() + 5000000000u;
	size_t got = 0;
	int pfd[2], status;
	pid_t pid;

	memset(st, 0xff, sizeof(*st)); /* every field -1 */
	dir_of(daemon, dir, sizeof(dir));
	snprintf(ctl, sizeof(ctl), "%s/hyperbufctl", dir);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		execl(ctl, ctl, "-s", socket, "stats", (char *)NULL);
		fprintf(stderr, "%s: exec %s: %s\n", argv0, ctl, strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	while (got < sizeof(out) - 1) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		ssize_t n;

		if (tool_now_ns() >= deadline || poll(&p, 1, 100) < 0)
			break;
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		n = read(pfd[0], out + got, sizeof(out) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(pfd[0]);
	tool_wait_pid(pid, tool_ms_left(deadline), &status);
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char *l = trim(line);

		stat_value(l, "bytes_copied", &st->bytes_copied);
		stat_value(l, "bytes_shared_total", &st->bytes_shared_total);
		stat_value(l, "exports_total", &st->exports_total);
		stat_value(l, "imports_total", &st->imports_total);
		stat_value(l, "events_dropped", &st->events_dropped);
		stat_value(l, "fences_completed", &st->fences_completed);
	}
	if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s: %s -s %s stats failed\n", argv0, ctl, socket);
		return -1;
	}
	if (st->bytes_copied < 0)
		fprintf(stderr, "%s: no bytes_copied line in `hyperbufctl stats`\n", argv0);
	return 0;
}

/* A path as a person wants to read it: canonical, and relative to the working folder when it
 * is below it ("configs/../build/run" -> "build/run"). Falls back to the path as given. */
static void tidy_path(const char *in, char *out, size_t len)
{
	char cwd[PATH_LEN], *real = realpath(in, NULL);
	size_t n;

	snprintf(out, len, "%s", in);
	if (!real)
		return;
	if (getcwd(cwd, sizeof(cwd)) && (n = strlen(cwd)) > 1 && strncmp(real, cwd, n) == 0 &&
	    real[n] == '/')
		snprintf(out, len, "%s", real + n + 1);
	else
		snprintf(out, len, "%s", real);
	free(real);
}

/* ---- the parent ------------------------------------------------------------------------- */

static int consumer_main(const void *arg)
{
	return run_consumer(arg);
}

static int producer_main(const void *arg)
{
	return run_producer(arg);
}

/* 8294400 -> "8 294 400": the figures a person compares by eye. */
static const char *grouped(uint64_t v, char *buf, size_t len)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v), o = 0;

	for (int i = 0; i < n && o + 2 < (int)len; i++) {
		if (i && (n - i) % 3 == 0)
			buf[o++] = ' ';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: %s --daemon PATH [--config PATH] [--frames N] [--out DIR]\n"
	    "  --daemon PATH   the hyperbufd binary to start\n"
	    "  --config PATH   its config (default configs/local.conf); needs two [vm] sections\n"
	    "                  that share a group, and the first in a group with the host\n"
	    "  --frames N      frames to share (default 120)\n"
	    "  --out DIR       where the PNGs and the daemon log go (default: the folder of\n"
	    "                  the daemon's socket)\n",
	    argv0);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"daemon", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},
	    {"frames", required_argument, NULL, 'n'}, {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *daemon = NULL, *config = "configs/local.conf", *out = NULL;
	static struct consumer_args cargs[2];
	static struct producer_args pargs;
	static struct hbc_config *cfg;
	struct consumer_result cres[2];
	struct producer_result pres;
	char rundir[PATH_LEN], outdir[PATH_LEN], log[PATH_LEN + 32], desc[64], b1[32], b2[32];
	const struct hbc_config_vm *pvm, *cvm;
	char err[512];
	uint64_t frames = 120, deadline, t_all;
	pid_t dpid, cpid[2] = {-1, -1}, ppid = -1;
	int opt, ret, cfd[2] = {-1, -1}, pfd = -1, dstatus, status;
	bool ok = true, killed, cgot[2] = {false, false}, pgot = false;
	unsigned alarm_s;
	struct daemon_stats st;
	struct tool_daemon_spawn ds;
	int stats_ret;
	uint64_t *signal_ns;

	argv0 = argv[0];
	while ((opt = getopt_long(argc, argv, "d:c:n:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			daemon = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'n':
			frames = strtoull(optarg, NULL, 0);
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!daemon || optind != argc || frames == 0 || frames > 1000000) {
		usage(stderr);
		return 2;
	}
	/* A consumer that dies must not take the parent with it through a pipe write, nor a
	 * daemon that dies take a client. */
	signal(SIGPIPE, SIG_IGN);

	/* The daemon's own loader: what the demo connects to is what the daemon listens on. */
	cfg = hbd_config_load_file(config, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "%s: %s\n", argv0, err);
		return 1;
	}
	pvm = find_vm(cfg, "vm1", 0);
	cvm = find_vm(cfg, "vm2", 1);
	if (!pvm || !cvm || pvm == cvm) {
		fprintf(stderr, "%s: %s: needs two [vm] sections\n", argv0, config);
		hbc_config_free(cfg);
		return 1;
	}
	dir_of(cfg->socket, rundir, sizeof(rundir));
	if ((ret = mkdir_p(rundir)) < 0 || (ret = mkdir_p(out ? out : rundir)) < 0) {
		fprintf(stderr, "%s: creating %s: %s\n", argv0, out ? out : rundir, strerror(-ret));
		return 1;
	}
	tidy_path(out ? out : rundir, outdir, sizeof(outdir));
	snprintf(log, sizeof(log), "%s/hyperbufd.log", outdir);

	printf("hyperbuf demo: %" PRIu64 " frames of %ux%u XRGB8888 (%s bytes each), "
	       "%s (domain %u) -> %s (domain %u) and -> host (domain 0)\n",
	       frames, TOOL_FRAME_W, TOOL_FRAME_H, grouped(TOOL_FRAME_BYTES, b1, sizeof(b1)),
	       pvm->name, pvm->id, cvm->name, cvm->id);
	dpid = tool_daemon_spawn(daemon, config, log, READY_MS, &ds);
	if (dpid < 0) {
		tool_log_tail(log, 20);
		printf("RESULT: FAIL (the daemon did not start)\n");
		return 1;
	}
	printf("  daemon     %s -c %s: pid %d, ready in %.1f ms, log %s\n", daemon, config,
	       (int)dpid, ds.ready_ns / 1e6, log);

	/* When the producer signals each frame's fence, for the consumers' latency figures: shared
	 * with every child by inheritance (instrumentation, not part of the data path). */
	signal_ns = mmap(NULL, frames * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (signal_ns == MAP_FAILED) {
		fprintf(stderr, "%s: mmap: %s\n", argv0, strerror(errno));
		tool_daemon_stop(&ds, 10000, &dstatus);
		printf("RESULT: FAIL (out of memory)\n");
		return 1;
	}

	/* Budget: a hang becomes a failure within about a minute for the default run. Each step
	 * already has its own STEP_MS limit in the children; this is the backstop. */
	alarm_s = 50 + (unsigned)(frames / 10);
	deadline = tool_now_ns() + (uint64_t)(alarm_s + 5) * 1000000000u;

	for (int k = 0; k < 2; k++) {
		struct consumer_args *a = &cargs[k];
		int p[2];
		char ready = 0;

		a->name = k == 0 ? cvm->name : "host";
		a->domain = k == 0 ? cvm->id : 0;
		a->producer = pvm->id;
		a->frames = frames;
		a->alarm_s = alarm_s;
		a->signal_ns = signal_ns;
		if (k == 0)
			vm_address(cvm, a->address, sizeof(a->address));
		else
			snprintf(a->address, sizeof(a->address), "unix:%s", cfg->socket);
		snprintf(a->png, sizeof(a->png), "%s/%s-last-frame.png", outdir, a->name);
		if (pipe2(p, O_CLOEXEC) < 0) {
			fprintf(stderr, "%s: pipe: %s\n", argv0, strerror(errno));
			ok = false;
			goto stop_children;
		}
		a->fd = p[1];
		cpid[k] = tool_fork_call(consumer_main, a);
		close(p[1]);
		cfd[k] = p[0];
		if (cpid[k] < 0) {
			fprintf(stderr, "%s: fork: %s\n", argv0, strerror(errno));
			ok = false;
			goto stop_children;
		}
		/* Consumers connect before the producer exists, so no EXPORTED is missed; each
		 * sends its timeline's id, which the producer needs to wait for its points. */
		ret = tool_read_full(cfd[k], &ready, 1, STEP_MS);
		if (ret == 0)
			ret = tool_read_full(cfd[k], &pargs.peer_tl[k], sizeof(pargs.peer_tl[k]),
					     STEP_MS);
		if (ret < 0 || ready != 'R') {
			fprintf(stderr, "%s: consumer %s did not get ready%s%s\n", argv0, a->name,
				ret < 0 ? ": " : "", ret < 0 ? strerror(-ret) : "");
			ok = false;
			goto stop_children;
		}
	}

	{
		int p[2];

		vm_address(pvm, pargs.address, sizeof(pargs.address));
		pargs.domain = pvm->id;
		pargs.peers[0] = cvm->id;
		pargs.peers[1] = 0;
		pargs.peer_names[0] = cvm->name;
		pargs.peer_names[1] = "host";
		pargs.frames = frames;
		pargs.alarm_s = alarm_s;
		pargs.signal_ns = signal_ns;
		if (pipe2(p, O_CLOEXEC) < 0) {
			fprintf(stderr, "%s: pipe: %s\n", argv0, strerror(errno));
			ok = false;
			goto stop_children;
		}
		pargs.fd = p[1];
		ppid = tool_fork_call(producer_main, &pargs);
		close(p[1]);
		pfd = p[0];
		if (ppid < 0) {
			fprintf(stderr, "%s: fork: %s\n", argv0, strerror(errno));
			ok = false;
			goto stop_children;
		}
	}

	pgot = tool_read_full(pfd, &pres, sizeof(pres), tool_ms_left(deadline)) == 0 &&
	       pres.magic == RESULT_MAGIC;
	for (int k = 0; k < 2; k++)
		cgot[k] = tool_read_full(cfd[k], &cres[k], sizeof(cres[k]),
					 tool_ms_left(deadline)) == 0 &&
			  cres[k].magic == RESULT_MAGIC;

stop_children:
	for (int k = 0; k < 3; k++) {
		pid_t pid = k < 2 ? cpid[k] : ppid;
		const char *name =
		    k < 2 ? (cargs[k].name ? cargs[k].name : "consumer") : "producer";

		if (pid <= 0)
			continue;
		killed = tool_wait_pid(pid, tool_ms_left(deadline), &status) == 1;
		if (status != 0) {
			tool_describe_status(status, desc, sizeof(desc));
			fprintf(stderr, "%s: %s: %s%s\n", argv0, name, desc,
				killed ? " (killed: out of time)" : "");
			ok = false;
		}
	}
	stats_ret = read_stats(daemon, cfg->socket, &st);

	killed = tool_daemon_stop(&ds, 10000, &dstatus) == 1;
	tool_describe_status(dstatus, desc, sizeof(desc));

	/* ---- summary ---- */
	if (pgot) {
		t_all = pres.t_end > pres.t_start ? pres.t_end - pres.t_start : 1;
		printf("  producer   %s: %" PRIu64 " frames x 2 peers (%" PRIu64 " exports, %u "
		       "buffers per peer) in %.2f s = %.1f fps\n",
		       pvm->name, pres.frames, pres.exports, SLOTS, t_all / 1e9,
		       pres.frames * 1e9 / t_all);
		printf("  fences     %s: %" PRIu64 " WRITE fences signalled, one per frame; its "
		       "begin_cpu_access(WRITE) waited for the consumers' READ fences %" PRIu64
		       " times (%.1f ms in all)\n",
		       pvm->name, pres.signals, pres.write_waits, pres.write_wait_ns / 1e6);
		if (pres.failures || pres.frames != frames) {
			printf("             FAILED: %s\n",
			       pres.error[0] ? pres.error : "short run");
			ok = false;
		}
	} else {
		printf("  producer   %s: no result (crashed or timed out)\n", pvm->name);
		ok = false;
	}
	printf("  %-10s %7s %9s %24s   %-26s %s\n", "consumer", "seen", "verified",
	       "bytes shared, verified", "sync latency ms min/avg/max", "last frame");
	for (int k = 0; k < 2; k++) {
		const struct consumer_result *r = &cres[k];
		char who[80], lat[64];

		snprintf(who, sizeof(who), "%s (%u)", cargs[k].name ? cargs[k].name : "?",
			 cargs[k].domain);
		if (!cgot[k]) {
			printf("  %-10s no result (crashed or timed out)\n", who);
			ok = false;
			continue;
		}
		snprintf(lat, sizeof(lat), "%.3f / %.3f / %.3f", r->lat_min / 1e6,
			 r->lat_n ? r->lat_sum / 1e6 / r->lat_n : 0.0, r->lat_max / 1e6);
		printf("  %-10s %7" PRIu64 " %9" PRIu64 " %24s   %-26s %s\n", who, r->frames_seen,
		       r->frames_verified, grouped(r->bytes_verified, b1, sizeof(b1)), lat,
		       r->png_error == 0 ? cargs[k].png : "(no PNG)");
		printf("  %-10s (signal in %s -> wait returned here; %" PRIu64 " of %" PRIu64
		       " frames measured, %" PRIu64
		       " already signalled when we got to them; %" PRIu64
		       " imports, one per buffer)\n",
		       "", pvm->name, r->lat_n, r->frames_seen, r->born_signalled, r->imports);
		if (r->failures || r->frames_verified != frames || r->png_error) {
			printf("             FAILED: %" PRIu64 " failures, %" PRIu64
			       " frames missed; first: %s\n",
			       r->failures, r->missed, r->error[0] ? r->error : "short run");
			ok = false;
		}
	}
	if (stats_ret < 0 || st.bytes_copied < 0) {
		printf("  bytes copied: unknown (could not read `hyperbufctl stats`)\n");
		ok = false;
	} else {
		printf("  bytes copied: %s  (daemon counters from hyperbufctl stats: bytes_copied; "
		       "exports_total %lld, imports_total %lld, events_dropped %lld, "
		       "fences_completed %lld)\n",
		       grouped((uint64_t)st.bytes_copied, b2, sizeof(b2)), st.exports_total,
		       st.imports_total, st.events_dropped, st.fences_completed);
		if (st.bytes_copied != 0)
			ok = false;
	}
	printf("  daemon     %s%s\n", desc, killed ? " (did not stop on SIGTERM: killed)" : "");
	if (dstatus != 0) {
		ok = false;
		tool_log_tail(log, 20);
	}
	printf("RESULT: %s\n", ok ? "PASS" : "FAIL");

	for (int k = 0; k < 2; k++)
		if (cfd[k] >= 0)
			close(cfd[k]);
	if (pfd >= 0)
		close(pfd);
	munmap(signal_ns, frames * sizeof(uint64_t));
	hbc_config_free(cfg);
	return ok ? 0 : 1;
}
