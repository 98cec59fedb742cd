/*
 * hyperbufsink: sends each video frame to a consumer in another domain (a VM, or the host)
 * as a hyperbuf export with its image description. Upstream draws straight into shared memory
 * from the pool this element proposes (gst/pool.c); a frame in other memory is copied once
 * into a pooled buffer and counted (frames-copied). The flow is gst/tx.c's.
 */
#include <gst/base/gstbasesink.h>

#include "gst/tx.h"

typedef struct {
	GstBaseSink parent;
	/* properties */
	gchar *address;
	guint peer, buffers, timeout_ms;
	HbgPeerGone on_peer_gone;
	/* state, from start to stop */
	struct hbg_tx *tx;
	GstVideoInfo info;
	gboolean have_info;
	GstBufferPool *copy_pool; /* for frames upstream drew elsewhere, created on the first */
	guint64 frames_sent, frames_copied;
} GstHyperbufSink;

typedef struct {
	GstBaseSinkClass parent_class;
} GstHyperbufSinkClass;

G_DEFINE_TYPE(GstHyperbufSink, gst_hyperbuf_sink, GST_TYPE_BASE_SINK)

#define HB_SINK(obj) ((GstHyperbufSink *)(obj))

enum {
	PROP_0,
	PROP_ADDRESS,
	PROP_PEER,
	PROP_BUFFERS,
	PROP_TIMEOUT_MS,
	PROP_ON_PEER_GONE,
	PROP_FRAMES_SENT,
	PROP_FRAMES_COPIED,
};

static void sink_set_property(GObject *obj, guint id, const GValue *v, GParamSpec *pspec)
{
	GstHyperbufSink *self = HB_SINK(obj);

	GST_OBJECT_LOCK(self);
	switch (id) {
	case PROP_ADDRESS:
		g_free(self->address);
		self->address = g_value_dup_string(v);
		break;
	case PROP_PEER:
		self->peer = g_value_get_uint(v);
		break;
	case PROP_BUFFERS:
		self->buffers = g_value_get_uint(v);
		break;
	case PROP_TIMEOUT_MS:
		self->timeout_ms = g_value_get_uint(v);
		break;
	case PROP_ON_PEER_GONE:
		self->on_peer_gone = g_value_get_enum(v);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
	}
	GST_OBJECT_UNLOCK(self);
}

static void sink_get_property(GObject *obj, guint id, GValue *v, GParamSpec *pspec)
{
	GstHyperbufSink *self = HB_SINK(obj);

	GST_OBJECT_LOCK(self);
	switch (id) {
	case PROP_ADDRESS:
		g_value_set_string(v, self->address);
		break;
	case PROP_PEER:
		g_value_set_uint(v, self->peer);
		break;
	case PROP_BUFFERS:
		g_value_set_uint(v, self->buffers);
		break;
	case PROP_TIMEOUT_MS:
		g_value_set_uint(v, self->timeout_ms);
		break;
	case PROP_ON_PEER_GONE:
		g_value_set_enum(v, self->on_peer_gone);
		break;
	case PROP_FRAMES_SENT:
		g_value_set_uint64(v, self->frames_sent);
		break;
	case PROP_FRAMES_COPIED:
		g_value_set_uint64(v, self->frames_copied);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
	}
	GST_OBJECT_UNLOCK(self);
}

static gboolean sink_start(GstBaseSink *base)
{
	GstHyperbufSink *self = HB_SINK(base);
	char *err = NULL;

	self->tx = hbg_tx_open(self->address, self->peer, self->buffers, self->timeout_ms, &err);
	if (!self->tx) {
		GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ_WRITE, ("%s", err), (NULL));
		g_free(err);
		return FALSE;
	}
	self->frames_sent = self->frames_copied = 0;
	self->have_info = FALSE;
	return TRUE;
}

static gboolean sink_stop(GstBaseSink *base)
{
	GstHyperbufSink *self = HB_SINK(base);

	if (self->tx)
		hbg_tx_close(self->tx);
	if (self->copy_pool) {
		gst_buffer_pool_set_active(self->copy_pool, FALSE);
		gst_object_unref(self->copy_pool);
		self->copy_pool = NULL;
	}
	hbg_tx_unref(self->tx);
	self->tx = NULL;
	return TRUE;
}

static gboolean sink_unlock(GstBaseSink *base)
{
	GstHyperbufSink *self = HB_SINK(base);

	if (self->tx)
		hbg_tx_set_flushing(self->tx, TRUE);
	if (self->copy_pool)
		gst_buffer_pool_set_flushing(self->copy_pool, TRUE);
	return TRUE;
}

static gboolean sink_unlock_stop(GstBaseSink *base)
{
	GstHyperbufSink *self = HB_SINK(base);

	if (self->tx)
		hbg_tx_set_flushing(self->tx, FALSE);
	if (self->copy_pool)
		gst_buffer_pool_set_flushing(self->copy_pool, FALSE);
	return TRUE;
}

static GstCaps *sink_get_caps(GstBaseSink *base, GstCaps *filter)
{
	GstCaps *caps = hbg_caps_all(), *out;

	if (!filter)
		return caps;
	out = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
	gst_caps_unref(caps);
	return out;
}

/* A pool of `buffers` hyperbuf buffers of caps' frames, configured, not yet active. */
static GstBufferPool *make_pool(GstHyperbufSink *self, GstCaps *caps, const GstVideoInfo *info)
{
	GstBufferPool *pool = hbg_pool_new(self->tx);
	GstStructure *config = gst_buffer_pool_get_config(pool);

	gst_buffer_pool_config_set_params(config, caps, (guint)GST_VIDEO_INFO_SIZE(info),
					  self->buffers, self->buffers);
	gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
	if (!gst_buffer_pool_set_config(pool, config)) {
		gst_object_unref(pool);
		return NULL;
	}
	return pool;
}

static gboolean sink_set_caps(GstBaseSink *base, GstCaps *caps)
{
	GstHyperbufSink *self = HB_SINK(base);
	GstVideoInfo info;

	if (!gst_video_info_from_caps(&info, caps) ||
	    !hbg_fourcc_from_format(GST_VIDEO_INFO_FORMAT(&info))) {
		GST_ELEMENT_ERROR(self, STREAM, FORMAT,
				  ("caps %" GST_PTR_FORMAT " not supported", caps), (NULL));
		return FALSE;
	}
	/* A new size needs new buffers; the old ones go once the consumer lets go of them. */
	if (self->copy_pool) {
		gst_buffer_pool_set_active(self->copy_pool, FALSE);
		gst_object_unref(self->copy_pool);
		self->copy_pool = NULL;
	}
	self->info = info;
	self->have_info = TRUE;
	return TRUE;
}

/* Upstream draws into shared memory when it takes this pool. */
static gboolean sink_propose_allocation(GstBaseSink *base, GstQuery *query)
{
	GstHyperbufSink *self = HB_SINK(base);
	GstBufferPool *pool = NULL;
	GstVideoInfo info;
	GstCaps *caps;
	gboolean need_pool;

	gst_query_parse_allocation(query, &caps, &need_pool);
	if (!caps || !gst_video_info_from_caps(&info, caps) || !self->tx)
		return FALSE;
	if (need_pool) {
		pool = make_pool(self, caps, &info);
		if (!pool)
			return FALSE;
	}
	gst_query_add_allocation_pool(query, pool, (guint)GST_VIDEO_INFO_SIZE(&info), self->buffers,
				      self->buffers);
	gst_query_add_allocation_meta(query, GST_VIDEO_META_API_TYPE, NULL);
	if (pool)
		gst_object_unref(pool);
	return TRUE;
}

/* The frame in memory of our own: one copy, into a pooled buffer (which may wait for the
 * consumer, as upstream would have). */
static GstFlowReturn copy_frame(GstHyperbufSink *self, GstBuffer *in, GstBuffer **out)
{
	GstVideoFrame src, dst;
	GstFlowReturn ret;
	gboolean ok;

	if (!self->copy_pool) {
		GstCaps *caps = gst_video_info_to_caps(&self->info);

		self->copy_pool = make_pool(self, caps, &self->info);
		gst_caps_unref(caps);
		if (!self->copy_pool || !gst_buffer_pool_set_active(self->copy_pool, TRUE))
			return GST_FLOW_ERROR;
	}
	ret = gst_buffer_pool_acquire_buffer(self->copy_pool, out, NULL);
	if (ret != GST_FLOW_OK)
		return ret;
	if (!gst_video_frame_map(&src, &self->info, in, GST_MAP_READ))
		goto err;
	if (!gst_video_frame_map(&dst, &self->info, *out, GST_MAP_WRITE)) {
		gst_video_frame_unmap(&src);
		goto err;
	}
	ok = gst_video_frame_copy(&dst, &src);
	gst_video_frame_unmap(&dst);
	gst_video_frame_unmap(&src);
	if (!ok)
		goto err;
	gst_buffer_copy_into(*out, in, GST_BUFFER_COPY_FLAGS | GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
	self->frames_copied++;
	return GST_FLOW_OK;
err:
	gst_buffer_unref(*out);
	GST_ELEMENT_ERROR(self, STREAM, FAILED, ("cannot copy a frame into shared memory"), (NULL));
	return GST_FLOW_ERROR;
}

/* The hyperbuf buffer behind buf, if upstream drew into one of ours. */
static struct hb_buffer *shared_buffer(GstHyperbufSink *self, GstBuffer *buf)
{
	if (gst_buffer_n_memory(buf) != 1)
		return NULL;
	return hbg_pool_memory_buffer(gst_buffer_peek_memory(buf, 0), self->tx);
}

static GstFlowReturn flow_of(GstHyperbufSink *self, enum hbg_tx_status st)
{
	switch (st) {
	case HBG_TX_OK:
		return GST_FLOW_OK;
	case HBG_TX_FLUSHING:
		return GST_FLOW_FLUSHING;
	case HBG_TX_PEER_GONE:
		if (self->on_peer_gone == HBG_PEER_GONE_EOS) {
			GST_INFO_OBJECT(self, "%s: ending the stream", hbg_tx_why(self->tx));
			return GST_FLOW_EOS;
		}
		GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("%s", hbg_tx_why(self->tx)), (NULL));
		return GST_FLOW_ERROR;
	case HBG_TX_ERROR:
		break;
	}
	GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("%s", hbg_tx_why(self->tx)), (NULL));
	return GST_FLOW_ERROR;
}

static void describe(GstHyperbufSink *self, GstBuffer *buf, struct hb_image *img,
		     struct hbg_frame_extra *x)
{
	GstVideoMeta *meta = gst_buffer_get_video_meta(buf);

	hbg_image_from_video(&self->info, meta, gst_buffer_peek_memory(buf, 0)->offset, img);
	img->pts = GST_BUFFER_PTS_IS_VALID(buf) ? GST_BUFFER_PTS(buf) : HB_IMAGE_TIME_NONE;
	img->duration =
	    GST_BUFFER_DURATION_IS_VALID(buf) ? GST_BUFFER_DURATION(buf) : HB_IMAGE_TIME_NONE;
	if (GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT))
		img->flags |= HB_IMAGE_DISCONT;
	if (GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT))
		img->flags |= HB_IMAGE_DELTA;
	x->fps_n = (uint32_t)MAX(self->info.fps_n, 0);
	x->fps_d = (uint32_t)MAX(self->info.fps_d, 0);
	x->par_n = (uint32_t)MAX(self->info.par_n, 0);
	x->par_d = (uint32_t)MAX(self->info.par_d, 0);
}

static GstFlowReturn sink_render(GstBaseSink *base, GstBuffer *buf)
{
	GstHyperbufSink *self = HB_SINK(base);
	struct hbg_frame_extra x = {0};
	struct hb_buffer *b;
	struct hb_image img;
	GstBuffer *out = NULL;
	GstFlowReturn ret;

	if (!self->have_info)
		return GST_FLOW_NOT_NEGOTIATED;
	b = shared_buffer(self, buf);
	if (b) {
		out = gst_buffer_ref(buf);
	} else {
		ret = copy_frame(self, buf, &out);
		if (ret == GST_FLOW_EOS)
			return flow_of(self, HBG_TX_PEER_GONE);
		if (ret != GST_FLOW_OK)
			return ret == GST_FLOW_ERROR ? flow_of(self, HBG_TX_ERROR) : ret;
		b = shared_buffer(self, out);
	}
	describe(self, out, &img, &x);
	ret = flow_of(self, hbg_tx_send(self->tx, out, b, &img, &x));
	gst_buffer_unref(out);
	if (ret == GST_FLOW_OK)
		self->frames_sent++;
	return ret;
}

static gboolean sink_event(GstBaseSink *base, GstEvent *event)
{
	GstHyperbufSink *self = HB_SINK(base);

	if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && self->tx &&
	    hbg_tx_send_eos(self->tx) != HBG_TX_OK)
		GST_WARNING_OBJECT(self, "could not tell the consumer: %s", hbg_tx_why(self->tx));
	return GST_BASE_SINK_CLASS(gst_hyperbuf_sink_parent_class)->event(base, event);
}

static void sink_finalize(GObject *obj)
{
	g_free(HB_SINK(obj)->address);
	G_OBJECT_CLASS(gst_hyperbuf_sink_parent_class)->finalize(obj);
}

static void install_properties(GObjectClass *oc)
{
	const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;
	const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

	g_object_class_install_property(
	    oc, PROP_ADDRESS,
	    g_param_spec_string(
		"address", "Address",
		"hyperbuf address (NULL: $HYPERBUF_ADDRESS or the platform default)", NULL, rw));
	g_object_class_install_property(oc, PROP_PEER,
					g_param_spec_uint("peer", "Peer",
							  "Domain id of the consumer (0: the host)",
							  0, G_MAXUINT32, 0, rw));
	g_object_class_install_property(
	    oc, PROP_BUFFERS,
	    g_param_spec_uint("buffers", "Buffers",
			      "Frames in shared memory: the most the consumer can hold back", 2,
			      HBG_MAX_BUFFERS, 3, rw));
	g_object_class_install_property(
	    oc, PROP_TIMEOUT_MS,
	    g_param_spec_uint("timeout-ms", "Timeout",
			      "Longest wait for the consumer's hello or a returned frame before "
			      "an error (0: forever)",
			      0, G_MAXUINT, 0, rw));
	g_object_class_install_property(
	    oc, PROP_ON_PEER_GONE,
	    g_param_spec_enum("on-peer-gone", "On peer gone", "What to do when the consumer goes",
			      hbg_peer_gone_get_type(), HBG_PEER_GONE_EOS, rw));
	g_object_class_install_property(oc, PROP_FRAMES_SENT,
					g_param_spec_uint64("frames-sent", "Frames sent",
							    "Frames exported to the consumer", 0,
							    G_MAXUINT64, 0, ro));
	g_object_class_install_property(
	    oc, PROP_FRAMES_COPIED,
	    g_param_spec_uint64("frames-copied", "Frames copied",
				"Frames upstream drew outside shared memory, copied once", 0,
				G_MAXUINT64, 0, ro));
}

static void gst_hyperbuf_sink_class_init(GstHyperbufSinkClass *klass)
{
	GObjectClass *oc = G_OBJECT_CLASS(klass);
	GstElementClass *ec = GST_ELEMENT_CLASS(klass);
	GstBaseSinkClass *bc = GST_BASE_SINK_CLASS(klass);
	GstCaps *caps = hbg_caps_all();

	oc->set_property = sink_set_property;
	oc->get_property = sink_get_property;
	oc->finalize = sink_finalize;
	install_properties(oc);
	gst_element_class_add_pad_template(
	    ec, gst_pad_template_new("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
	gst_caps_unref(caps);
	gst_element_class_set_static_metadata(
	    ec, "hyperbuf video sink", "Sink/Video",
	    "Shares video frames zero-copy with a hyperbufsrc in another VM or the host",
	    "hyperbuf");
	bc->start = sink_start;
	bc->stop = sink_stop;
	bc->unlock = sink_unlock;
	bc->unlock_stop = sink_unlock_stop;
	bc->get_caps = sink_get_caps;
	bc->set_caps = sink_set_caps;
	bc->propose_allocation = sink_propose_allocation;
	bc->render = sink_render;
	bc->event = sink_event;
}

static void gst_hyperbuf_sink_init(GstHyperbufSink *self)
{
	self->buffers = 3;
	gst_base_sink_set_sync(GST_BASE_SINK(self), FALSE);
	/* The last sample would hold a pooled buffer back from the consumer's rotation. */
	gst_base_sink_set_last_sample_enabled(GST_BASE_SINK(self), FALSE);
}
