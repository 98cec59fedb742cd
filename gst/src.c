/*
 * hyperbufsrc: receives the frames a hyperbufsink in another domain sends, as read-only
 * GstMemory over the very pages the producer drew into, with a GstVideoMeta from the image
 * description. Caps follow the descriptions (renegotiated when they change). A frame goes back
 * to the producer when downstream frees the buffer. The flow is gst/rx.c's.
 */
#include <gst/base/gstpushsrc.h>

#include "gst/rx.h"

typedef struct {
	GstPushSrc parent;
	/* properties */
	gchar *address;
	guint peer, timeout_ms;
	HbgPeerGone on_peer_gone;
	/* state, from start to stop */
	struct hbg_rx *rx;
	GstVideoInfo info;
	gboolean have_info;
	gboolean downstream_meta; /* downstream reads GstVideoMeta: any layout will do */
	guint64 frames_received, frames_copied;
} GstHyperbufSrc;

typedef struct {
	GstPushSrcClass parent_class;
} GstHyperbufSrcClass;

G_DEFINE_TYPE(GstHyperbufSrc, gst_hyperbuf_src, GST_TYPE_PUSH_SRC)

#define HB_SRC(obj) ((GstHyperbufSrc *)(obj))

enum {
	PROP_0,
	PROP_ADDRESS,
	PROP_PEER,
	PROP_TIMEOUT_MS,
	PROP_ON_PEER_GONE,
	PROP_FRAMES_RECEIVED,
	PROP_FRAMES_COPIED,
};

static void src_set_property(GObject *obj, guint id, const GValue *v, GParamSpec *pspec)
{
	GstHyperbufSrc *self = HB_SRC(obj);

	GST_OBJECT_LOCK(self);
	switch (id) {
	case PROP_ADDRESS:
		g_free(self->address);
		self->address = g_value_dup_string(v);
		break;
	case PROP_PEER:
		self->peer = g_value_get_uint(v);
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

static void src_get_property(GObject *obj, guint id, GValue *v, GParamSpec *pspec)
{
	GstHyperbufSrc *self = HB_SRC(obj);

	GST_OBJECT_LOCK(self);
	switch (id) {
	case PROP_ADDRESS:
		g_value_set_string(v, self->address);
		break;
	case PROP_PEER:
		g_value_set_uint(v, self->peer);
		break;
	case PROP_TIMEOUT_MS:
		g_value_set_uint(v, self->timeout_ms);
		break;
	case PROP_ON_PEER_GONE:
		g_value_set_enum(v, self->on_peer_gone);
		break;
	case PROP_FRAMES_RECEIVED:
		g_value_set_uint64(v, self->frames_received);
		break;
	case PROP_FRAMES_COPIED:
		g_value_set_uint64(v, self->frames_copied);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
	}
	GST_OBJECT_UNLOCK(self);
}

static gboolean src_start(GstBaseSrc *base)
{
	GstHyperbufSrc *self = HB_SRC(base);
	char *err = NULL;

	self->rx = hbg_rx_open(self->address, self->peer, &err);
	if (!self->rx) {
		GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", err), (NULL));
		g_free(err);
		return FALSE;
	}
	self->have_info = FALSE;
	self->frames_received = self->frames_copied = 0;
	return TRUE;
}

static gboolean src_stop(GstBaseSrc *base)
{
	GstHyperbufSrc *self = HB_SRC(base);

	if (self->rx)
		hbg_rx_close(self->rx);
	hbg_rx_unref(self->rx);
	self->rx = NULL;
	return TRUE;
}

static gboolean src_unlock(GstBaseSrc *base)
{
	if (HB_SRC(base)->rx)
		hbg_rx_set_flushing(HB_SRC(base)->rx, TRUE);
	return TRUE;
}

static gboolean src_unlock_stop(GstBaseSrc *base)
{
	if (HB_SRC(base)->rx)
		hbg_rx_set_flushing(HB_SRC(base)->rx, FALSE);
	return TRUE;
}

static gboolean src_decide_allocation(GstBaseSrc *base, GstQuery *query)
{
	HB_SRC(base)->downstream_meta =
	    gst_query_find_allocation_meta(query, GST_VIDEO_META_API_TYPE, NULL);
	return GST_BASE_SRC_CLASS(gst_hyperbuf_src_parent_class)->decide_allocation(base, query);
}

/* What a wrapped memory carries until downstream frees it. */
struct held_frame {
	struct hbg_rx *rx;
	struct hbg_rx_frame f;
};

static void held_frame_free(gpointer data)
{
	struct held_frame *h = data;

	hbg_rx_release(h->rx, &h->f);
	hbg_rx_unref(h->rx);
	g_free(h);
}

/* The mapping as a read-only buffer with the description's layout. */
static GstBuffer *wrap(GstHyperbufSrc *self, const struct hbg_rx_frame *f)
{
	struct held_frame *h = g_new(struct held_frame, 1);
	gsize offset[GST_VIDEO_MAX_PLANES] = {0};
	gint stride[GST_VIDEO_MAX_PLANES] = {0};
	GstBuffer *buf = gst_buffer_new();

	h->rx = hbg_rx_ref(self->rx);
	h->f = *f;
	gst_buffer_append_memory(buf,
				 gst_memory_new_wrapped(GST_MEMORY_FLAG_READONLY, (gpointer)f->data,
							f->size, 0, f->size, h, held_frame_free));
	for (guint i = 0; i < f->img.n_planes; i++) {
		offset[i] = (gsize)f->img.planes[i].offset;
		stride[i] = (gint)f->img.planes[i].stride;
	}
	gst_buffer_add_video_meta_full(
	    buf, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_INFO_FORMAT(&self->info),
	    GST_VIDEO_INFO_WIDTH(&self->info), GST_VIDEO_INFO_HEIGHT(&self->info), f->img.n_planes,
	    offset, stride);
	return buf;
}

/* Downstream cannot read this layout: one copy into GStreamer's own (frames-copied). */
static GstBuffer *copy_out(GstHyperbufSrc *self, GstBuffer *shared)
{
	GstBuffer *out = gst_buffer_new_allocate(NULL, GST_VIDEO_INFO_SIZE(&self->info), NULL);
	GstVideoFrame src, dst;
	gboolean ok = FALSE;

	if (gst_video_frame_map(&src, &self->info, shared, GST_MAP_READ)) {
		if (gst_video_frame_map(&dst, &self->info, out, GST_MAP_WRITE)) {
			ok = gst_video_frame_copy(&dst, &src);
			gst_video_frame_unmap(&dst);
		}
		gst_video_frame_unmap(&src);
	}
	gst_buffer_unref(shared); /* the frame goes back to the producer now */
	if (!ok) {
		gst_buffer_unref(out);
		return NULL;
	}
	self->frames_copied++;
	return out;
}

/* Caps from the description; renegotiated when they change. */
static GstFlowReturn negotiate(GstHyperbufSrc *self, const struct hbg_rx_frame *f)
{
	GstVideoInfo info;
	GstCaps *caps;
	gboolean ok;

	if (!hbg_info_from_image(&f->img, &f->x, &info)) {
		char name[5];

		GST_ELEMENT_ERROR(self, STREAM, FORMAT,
				  ("the producer's format %s (modifier %#" G_GINT64_MODIFIER
				   "x) has no GStreamer equivalent",
				   hb_image_format_name(f->img.format, name), f->img.modifier),
				  (NULL));
		return GST_FLOW_NOT_NEGOTIATED;
	}
	if (self->have_info && gst_video_info_is_equal(&info, &self->info))
		return GST_FLOW_OK;
	caps = gst_video_info_to_caps(&info);
	GST_INFO_OBJECT(self, "caps from the producer: %" GST_PTR_FORMAT, caps);
	ok = gst_base_src_set_caps(GST_BASE_SRC(self), caps);
	gst_caps_unref(caps);
	if (!ok) {
		GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
				  ("downstream does not accept the producer's caps"), (NULL));
		return GST_FLOW_NOT_NEGOTIATED;
	}
	self->info = info;
	self->have_info = TRUE;
	return GST_FLOW_OK;
}

static GstFlowReturn flow_of(GstHyperbufSrc *self, enum hbg_rx_status st)
{
	switch (st) {
	case HBG_RX_FRAME:
		return GST_FLOW_OK;
	case HBG_RX_FLUSHING:
		return GST_FLOW_FLUSHING;
	case HBG_RX_EOS:
		return GST_FLOW_EOS;
	case HBG_RX_PEER_GONE:
		if (self->on_peer_gone == HBG_PEER_GONE_EOS) {
			GST_INFO_OBJECT(self, "%s: ending the stream", hbg_rx_why(self->rx));
			return GST_FLOW_EOS;
		}
		break;
	case HBG_RX_TIMEOUT:
	case HBG_RX_ERROR:
		break;
	}
	GST_ELEMENT_ERROR(self, RESOURCE, READ, ("%s", hbg_rx_why(self->rx)), (NULL));
	return GST_FLOW_ERROR;
}

static void set_timing(GstBuffer *buf, const struct hb_image *img)
{
	if (img->pts != HB_IMAGE_TIME_NONE)
		GST_BUFFER_PTS(buf) = img->pts;
	if (img->duration != HB_IMAGE_TIME_NONE)
		GST_BUFFER_DURATION(buf) = img->duration;
	if (img->flags & HB_IMAGE_DISCONT)
		GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
	if (img->flags & HB_IMAGE_DELTA)
		GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
	GST_BUFFER_OFFSET(buf) = img->sequence;
}

static GstFlowReturn src_create(GstPushSrc *base, GstBuffer **out)
{
	GstHyperbufSrc *self = HB_SRC(base);
	struct hbg_rx_frame f;
	GstFlowReturn ret;
	GstBuffer *buf;

	ret = flow_of(self, hbg_rx_next(self->rx, self->timeout_ms, &f));
	if (ret != GST_FLOW_OK)
		return ret;
	ret = negotiate(self, &f);
	if (ret != GST_FLOW_OK) {
		hbg_rx_release(self->rx, &f);
		return ret;
	}
	buf = wrap(self, &f);
	if (!self->downstream_meta && !hbg_image_is_default_layout(&f.img, &self->info)) {
		buf = copy_out(self, buf);
		if (!buf) {
			GST_ELEMENT_ERROR(self, STREAM, FAILED, ("cannot copy a frame"), (NULL));
			return GST_FLOW_ERROR;
		}
	}
	set_timing(buf, &f.img);
	self->frames_received++;
	*out = buf;
	return GST_FLOW_OK;
}

static void src_finalize(GObject *obj)
{
	g_free(HB_SRC(obj)->address);
	G_OBJECT_CLASS(gst_hyperbuf_src_parent_class)->finalize(obj);
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
							  "Domain id of the producer (0: the host)",
							  0, G_MAXUINT32, 0, rw));
	g_object_class_install_property(
	    oc, PROP_TIMEOUT_MS,
	    g_param_spec_uint("timeout-ms", "Timeout",
			      "Longest wait for a frame before an error (0: forever)", 0, G_MAXUINT,
			      0, rw));
	g_object_class_install_property(
	    oc, PROP_ON_PEER_GONE,
	    g_param_spec_enum("on-peer-gone", "On peer gone", "What to do when the producer goes",
			      hbg_peer_gone_get_type(), HBG_PEER_GONE_EOS, rw));
	g_object_class_install_property(oc, PROP_FRAMES_RECEIVED,
					g_param_spec_uint64("frames-received", "Frames received",
							    "Frames pushed downstream", 0,
							    G_MAXUINT64, 0, ro));
	g_object_class_install_property(
	    oc, PROP_FRAMES_COPIED,
	    g_param_spec_uint64("frames-copied", "Frames copied",
				"Frames copied because downstream cannot read their layout", 0,
				G_MAXUINT64, 0, ro));
}

static void gst_hyperbuf_src_class_init(GstHyperbufSrcClass *klass)
{
	GObjectClass *oc = G_OBJECT_CLASS(klass);
	GstElementClass *ec = GST_ELEMENT_CLASS(klass);
	GstBaseSrcClass *bc = GST_BASE_SRC_CLASS(klass);
	GstCaps *caps = hbg_caps_all();

	oc->set_property = src_set_property;
	oc->get_property = src_get_property;
	oc->finalize = src_finalize;
	install_properties(oc);
	gst_element_class_add_pad_template(
	    ec, gst_pad_template_new("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
	gst_caps_unref(caps);
	gst_element_class_set_static_metadata(
	    ec, "hyperbuf video source", "Source/Video",
	    "Receives video frames zero-copy from a hyperbufsink in another VM or the host",
	    "hyperbuf");
	bc->start = src_start;
	bc->stop = src_stop;
	bc->unlock = src_unlock;
	bc->unlock_stop = src_unlock_stop;
	bc->decide_allocation = src_decide_allocation;
	GST_PUSH_SRC_CLASS(klass)->create = src_create;
}

static void gst_hyperbuf_src_init(GstHyperbufSrc *self)
{
	gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}
