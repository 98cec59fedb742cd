/*
 * hyperbuf-demo (`make run`), in four files: demo.c starts hyperbufd on a config, the consumers
 * (demo_consumer.c: vm2 and the host) and the producer (demo_producer.c: vm1), each in its own
 * process as on real VMs, waits for them and has demo_report.c print what happened. This is
 * what those files share: the frame's metadata on the wire, the fence points, what each child
 * is told and what it sends back.
 */
#ifndef HB_TOOLS_DEMO_H
#define HB_TOOLS_DEMO_H

#include <errno.h>
#include <hyperbuf.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "tools/pattern.h"
#include "tools/spawn.h"

#define DEMO_SLOTS   3u /* buffers per peer: one being read, one being drawn, one spare */
#define DEMO_SURFACE "demo-0"
/* Longest a single step (an event, a fence, a release) may take before it is a failure. */
#define DEMO_STEP_MS 10000
/* The first word of both results: a child that died mid-write leaves no magic. */
#define DEMO_RESULT_MAGIC 0x48425244u

/*
 * The fences of a frame (one timeline per party, values are frame numbers):
 *   producer P, frame n: WRITE fence (P, n + 1), attached to the slot before rendering into it
 *     and signalled after; it rides in the frame's metadata.
 *   consumer C, frame n: (C, 2n + 1) "acquired": C has attached its READ fence (C, 2n + 2) to
 *     the slot; (C, 2n + 2) "released": C has finished reading.
 * The producer reuses a slot for frame n + DEMO_SLOTS after waiting for C's "acquired" point
 * of frame n (so C's READ fence is in the slot's reservation) and then begin_cpu_access(WRITE),
 * which waits for that READ fence: implicit sync does the flow control, the acquired point only
 * makes sure the fence is there to be waited for.
 */
#define DEMO_ACQUIRED(n) (2 * (uint64_t)(n) + 1)
#define DEMO_RELEASED(n) (2 * (uint64_t)(n) + 2)

/* ---- the metadata of each export ----------------------------------------------------------- */

/*
 * The frame goes out as a standard image description (hyperbuf.h, "Images": format, size,
 * stride, the frame number as its sequence, the frame's WRITE fence as its fence), followed by
 * the demo's own bytes: slot (u32), produced_ns (u64), surface (char[32]), little-endian.
 */
#define DEMO_EXTRA_SIZE 44u
#define DEMO_META_SIZE  (HB_IMAGE_WIRE_SIZE + DEMO_EXTRA_SIZE)

static inline void demo_put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t demo_get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* m and f as an image description and the demo's bytes. Returns -1 if the library does not
 * know the format (it always does: XR24). */
static inline int demo_meta_pack(const struct tool_frame_meta *m, const struct hb_fence *f,
				 struct hb_image *img, uint8_t extra[DEMO_EXTRA_SIZE])
{
	if (hb_image_init(img, m->format, m->width, m->height, 0) == 0)
		return -1;
	img->planes[0].stride = m->stride;
	img->color = (struct hb_image_color){HB_COLOR_RANGE_FULL, 0, 13, 1}; /* sRGB */
	img->sequence = m->frame;
	img->fence = *f;
	demo_put_le(extra + 0, m->slot, 4);
	demo_put_le(extra + 4, m->produced_ns, 8);
	memcpy(extra + 12, m->surface, sizeof(m->surface));
	return 0;
}

/* An EXPORTED event's description (checked by the library against the buffer) and the demo's
 * bytes. Returns 0, or -1 with errno (ENOMSG, EBADMSG: hb_event_image; EPROTO: not ours). */
static inline int demo_meta_unpack(const struct hb_event *ev, struct tool_frame_meta *m,
				   struct hb_fence *f)
{
	struct hb_image img;
	const uint8_t *extra = ev->meta + HB_IMAGE_WIRE_SIZE;

	if (hb_event_image(ev, &img) < 0)
		return -1;
	if (ev->meta_len != DEMO_META_SIZE || img.n_planes != 1) {
		errno = EPROTO;
		return -1;
	}
	m->version = 1;
	m->width = img.width;
	m->height = img.height;
	m->stride = img.planes[0].stride;
	m->format = img.format;
	m->frame = img.sequence;
	*f = img.fence;
	m->slot = (uint32_t)demo_get_le(extra + 0, 4);
	m->produced_ns = demo_get_le(extra + 4, 8);
	memcpy(m->surface, extra + 12, sizeof(m->surface));
	m->surface[sizeof(m->surface) - 1] = '\0'; /* never trust a peer's string */
	return 0;
}

/* ---- the children -------------------------------------------------------------------------- */

/* What a consumer sends back (below PIPE_BUF, so one atomic write). */
struct tool_consumer_result {
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

/* What the producer sends back (below PIPE_BUF too). */
struct tool_producer_result {
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

struct tool_consumer_args {
	const char *name; /* "vm2", "host" */
	char address[PATH_MAX + 8];
	uint32_t domain;   /* what the daemon must say we are */
	uint32_t producer; /* the producer's domain */
	uint64_t frames;
	char png[PATH_MAX + 128];
	int fd; /* readiness byte and our timeline id, then struct tool_consumer_result */
	unsigned alarm_s;
	/* Instrumentation only (not the data path): when the producer signalled each frame's
	 * fence, in memory the parent shared with every child before forking. */
	const volatile uint64_t *signal_ns;
};

struct tool_producer_args {
	char address[PATH_MAX + 8];
	uint32_t domain;
	uint32_t peers[2];
	uint64_t peer_tl[2]; /* each consumer's timeline */
	const char *peer_names[2];
	uint64_t frames;
	int fd; /* struct tool_producer_result */
	unsigned alarm_s;
	volatile uint64_t *signal_ns; /* instrumentation, see struct tool_consumer_args */
};

/* Each runs in its own process and returns its exit status: 0 if everything held. */
int tool_consumer_run(const struct tool_consumer_args *a);
int tool_producer_run(const struct tool_producer_args *a);

/* Counts a failure in *failures; keeps the first message in slot and prints every one on
 * stderr as it happens. */
void tool_note_error(char *slot, size_t len, uint64_t *failures, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- the parent ---------------------------------------------------------------------------- */

struct hbc_config;
struct hbc_config_vm;

/* The daemon's own counters that the summary shows; -1 where a key is missing. */
struct tool_daemon_stats {
	long long bytes_copied; /* what the whole project is about: must stay 0 */
	long long bytes_shared_total;
	long long exports_total;
	long long imports_total;
	long long events_dropped;
	long long fences_completed;
};

/* A child process and the pipe it reports on. */
struct tool_demo_child {
	pid_t pid; /* -1: not started */
	int fd;    /* our end of its pipe; -1: none */
	bool got;  /* its result arrived, whole */
};

/* A run as the parent sees it, from the command line to the results: the report reads it. */
struct tool_demo {
	const char *daemon, *config, *out; /* the command line */
	uint64_t frames;
	struct hbc_config *cfg;
	const struct hbc_config_vm *producer_vm, *consumer_vm;
	char outdir[PATH_MAX];   /* the PNGs and the daemon's log, as a person reads the path */
	char log[PATH_MAX + 32]; /* the daemon's stdout and stderr */

	struct tool_daemon_spawn daemon_run;
	int daemon_status;  /* its wait status, once stopped */
	bool daemon_killed; /* it did not stop on SIGTERM */
	struct tool_daemon_stats stats;
	bool stats_read; /* `hyperbufctl stats` ran cleanly */

	volatile uint64_t *signal_ns;               /* frames entries, shared with the children */
	unsigned alarm_s;                           /* each child's own time limit */
	uint64_t deadline;                          /* the parent's, a tool_now_ns value */
	struct tool_consumer_args consumer_args[2]; /* [0] the VM, [1] the host */
	struct tool_producer_args producer_args;
	struct tool_demo_child consumer[2], producer;
	struct tool_consumer_result consumer_result[2];
	struct tool_producer_result producer_result;
	bool ok; /* false once anything went wrong before the summary */
};

/* Creates the daemon's socket folder and the output folder, and fills d->outdir and d->log.
 * 0, or -1 with the reason printed. */
int tool_report_prepare_out(struct tool_demo *d);
/* The first line: what is about to be shared, from whom to whom. */
void tool_report_header(const struct tool_demo *d);
/* The daemon's line once it said READY=1. */
void tool_report_daemon_ready(const struct tool_demo *d);
/* Asks the running daemon for its counters (`hyperbufctl stats`) into d->stats. */
void tool_report_read_stats(struct tool_demo *d);
/* Prints what each child and the daemon reported and the RESULT line; true for PASS. */
bool tool_report_summary(const struct tool_demo *d);

#endif
