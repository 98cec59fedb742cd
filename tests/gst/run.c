/*
 * hbgst-run: runs one GStreamer pipeline (gst-launch syntax) the way the GStreamer tests and
 * benchmarks need it, and says what happened in lines a test can read:
 *
 *   frame N HASH       for every buffer through an element named "sum" (an identity): a 64-bit
 *                      hash of the frame's visible pixels, plane by row, whatever the stride,
 *                      so a producer and a consumer with different layouts still agree
 *   NAME PROP: N       at the end, for every element with frames-sent, frames-received or
 *                      frames-copied
 *   result: eos | error: MESSAGE | timeout
 *   cpu-ms: N wall-ms: N frames: N span-us: N   (span: from the first frame to the last)
 *
 * usage: hbgst-run [--sum hash|touch|count] [--frames N] [--timeout SECONDS] PIPELINE...
 *   --sum touch reads every byte without hashing (a consumer that touches the pixels), count
 *   only counts. --frames N ends the run as EOS would after N frames through "sum" (for
 *   sources that never end by themselves, shmsrc and tcpclientsrc). Exit: 0 EOS, 1 error,
 *   2 usage, 3 timeout.
 *
 * The plugin may be built with the sanitizers: the registry is then built in this process
 * (GST_REGISTRY_FORK=no), as GStreamer's own scanner would not load it.
 */
#include <gst/gst.h>
#include <gst/video/video.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum sum_mode { SUM_HASH, SUM_TOUCH, SUM_COUNT };

struct run {
	enum sum_mode mode;
	guint64 stop_after; /* --frames: end (as if EOS) after this many frames, 0: never */
	GstElement *pipeline;
	GMainLoop *loop;
	guint64 frames;
	gint64 first_us, last_us; /* when the first and the last frame passed "sum" */
	GstVideoInfo info;
	GstCaps *caps;
	int status;
	volatile guint64 sink; /* what touch reads into */
};

static guint64 hash_bytes(guint64 h, const guint8 *p, gsize n)
{
	gsize i = 0;

	for (; i + 8 <= n; i += 8) {
		guint64 w;

		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The visible bytes of every row of every plane. */
static guint64 hash_frame(const GstVideoFrame *f)
{
	guint64 h = 0xcbf29ce484222325ull;

	for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(f); p++) {
		gint comp[GST_VIDEO_MAX_COMPONENTS];
		const guint8 *base = GST_VIDEO_FRAME_PLANE_DATA(f, p);
		gint stride = GST_VIDEO_FRAME_PLANE_STRIDE(f, p);
		gint rows, row_bytes;

		gst_video_format_info_component(f->info.finfo, p, comp);
		rows = GST_VIDEO_FRAME_COMP_HEIGHT(f, comp[0]);
		row_bytes = GST_VIDEO_FRAME_COMP_WIDTH(f, comp[0]) *
			    GST_VIDEO_FRAME_COMP_PSTRIDE(f, comp[0]);
		for (gint y = 0; y < rows; y++)
			h = hash_bytes(h, base + (gsize)y * stride, (gsize)row_bytes);
	}
	return h;
}

/* Enough frames: the end, from the main loop (the handoff runs in a streaming thread). */
static gboolean enough(gpointer data)
{
	struct run *r = data;

	printf("result: eos\n");
	r->status = 0;
	g_main_loop_quit(r->loop);
	return FALSE;
}

static void on_handoff(GstElement *identity, GstBuffer *buf, gpointer data)
{
	struct run *r = data;
	GstPad *pad = gst_element_get_static_pad(identity, "sink");
	GstCaps *caps = gst_pad_get_current_caps(pad);
	GstVideoFrame f;
	GstMapInfo map;

	gst_object_unref(pad);
	r->last_us = g_get_monotonic_time();
	if (!r->frames)
		r->first_us = r->last_us;
	r->frames++;
	if (r->frames == r->stop_after)
		g_idle_add(enough, r);
	if (caps && (!r->caps || !gst_caps_is_equal(caps, r->caps))) {
		gst_caps_replace(&r->caps, caps);
		gst_video_info_from_caps(&r->info, caps);
	}
	if (caps)
		gst_caps_unref(caps);
	if (r->mode == SUM_COUNT) {
		printf("frame %" G_GUINT64_FORMAT "\n", r->frames - 1);
	} else if (r->mode == SUM_TOUCH && gst_buffer_map(buf, &map, GST_MAP_READ)) {
		guint64 s = 0;

		for (gsize i = 0; i + 8 <= map.size; i += 64)
			s += *(const guint64 *)(map.data + i);
		r->sink += s;
		gst_buffer_unmap(buf, &map);
		printf("frame %" G_GUINT64_FORMAT "\n", r->frames - 1);
	} else if (r->mode == SUM_HASH && gst_video_frame_map(&f, &r->info, buf, GST_MAP_READ)) {
		printf("frame %" G_GUINT64_FORMAT " %016" G_GINT64_MODIFIER "x %dx%d %s\n",
		       r->frames - 1, hash_frame(&f), GST_VIDEO_INFO_WIDTH(&r->info),
		       GST_VIDEO_INFO_HEIGHT(&r->info),
		       gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&r->info)));
		gst_video_frame_unmap(&f);
	}
	fflush(stdout);
}

static gboolean on_message(GstBus *bus, GstMessage *msg, gpointer data)
{
	struct run *r = data;
	GError *err = NULL;
	gchar *debug = NULL;

	if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
		printf("result: eos\n");
		r->status = 0;
		g_main_loop_quit(r->loop);
	} else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
		gst_message_parse_error(msg, &err, &debug);
		printf("result: error: %s (from %s)\n", err->message, GST_OBJECT_NAME(msg->src));
		fprintf(stderr, "debug: %s\n", debug ? debug : "-");
		r->status = 1;
		g_error_free(err);
		g_free(debug);
		g_main_loop_quit(r->loop);
	}
	fflush(stdout);
	return TRUE;
}

static gboolean on_timeout(gpointer data)
{
	struct run *r = data;

	printf("result: timeout\n");
	r->status = 3;
	g_main_loop_quit(r->loop);
	return FALSE;
}

static void print_counter(GstElement *e, const char *prop)
{
	guint64 v;

	if (!g_object_class_find_property(G_OBJECT_GET_CLASS(e), prop))
		return;
	g_object_get(e, prop, &v, NULL);
	printf("%s %s: %" G_GUINT64_FORMAT "\n", GST_OBJECT_NAME(e), prop, v);
}

static void print_counters(GstElement *pipeline)
{
	GstIterator *it = gst_bin_iterate_elements(GST_BIN(pipeline));
	GValue item = G_VALUE_INIT;

	while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
		GstElement *e = g_value_get_object(&item);

		print_counter(e, "frames-sent");
		print_counter(e, "frames-received");
		print_counter(e, "frames-copied");
		g_value_reset(&item);
	}
	g_value_unset(&item);
	gst_iterator_free(it);
}

static int usage(void)
{
	fprintf(stderr, "usage: hbgst-run [--sum hash|touch|count] [--frames N] [--timeout S] "
			"PIPELINE...\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct run r = {.mode = SUM_HASH, .status = 1};
	gint64 t0 = g_get_monotonic_time();
	guint timeout_s = 60;
	GError *err = NULL;
	GstElement *sum;
	struct rusage ru;
	int i = 1;

	setenv("GST_REGISTRY_FORK", "no", 0);
	gst_init(NULL, NULL);
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--sum") == 0)
			r.mode = strcmp(argv[i + 1], "touch") == 0   ? SUM_TOUCH
				 : strcmp(argv[i + 1], "count") == 0 ? SUM_COUNT
								     : SUM_HASH;
		else if (strcmp(argv[i], "--frames") == 0)
			r.stop_after = g_ascii_strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--timeout") == 0)
			timeout_s = (guint)atoi(argv[i + 1]);
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	r.pipeline = gst_parse_launchv((const gchar **)argv + i, &err);
	if (!r.pipeline) {
		printf("result: error: %s\n", err ? err->message : "cannot build the pipeline");
		return 1;
	}
	sum = gst_bin_get_by_name(GST_BIN(r.pipeline), "sum");
	if (sum) {
		g_object_set(sum, "signal-handoffs", TRUE, NULL);
		g_signal_connect(sum, "handoff", G_CALLBACK(on_handoff), &r);
		gst_object_unref(sum);
	}
	r.loop = g_main_loop_new(NULL, FALSE);
	gst_bus_add_watch(GST_ELEMENT_BUS(r.pipeline), on_message, &r);
	g_timeout_add_seconds(timeout_s, on_timeout, &r);
	if (gst_element_set_state(r.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
		printf("note: the pipeline refused PLAYING\n");
	g_main_loop_run(r.loop);
	gst_element_set_state(r.pipeline, GST_STATE_NULL);
	print_counters(r.pipeline);
	getrusage(RUSAGE_SELF, &ru);
	printf("cpu-ms: %ld wall-ms: %" G_GINT64_FORMAT " frames: %" G_GUINT64_FORMAT
	       " span-us: %" G_GINT64_FORMAT "\n",
	       ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000 +
		   ru.ru_stime.tv_usec / 1000,
	       (g_get_monotonic_time() - t0) / 1000, r.frames, r.last_us - r.first_us);
	gst_object_unref(r.pipeline);
	g_main_loop_unref(r.loop);
	if (r.caps)
		gst_caps_unref(r.caps);
	return r.status;
}
