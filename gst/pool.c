/*
 * hyperbufsink's buffer pool: every buffer is one hyperbuf buffer for the sink's peer, so what
 * upstream draws into is what the consumer maps. A buffer comes back to the pool only when the
 * consumer is done with it (gst/tx.c keeps a reference until then); when all are out, acquire
 * waits for the consumer rather than allocating more, which is what throttles a producer.
 */
#include "gst/tx.h"

typedef struct {
	GstBufferPool parent;
	struct hbg_tx *tx;
	GstVideoInfo info;
	gboolean add_meta;
} GstHyperbufPool;

typedef struct {
	GstBufferPoolClass parent_class;
} GstHyperbufPoolClass;

G_DEFINE_TYPE(GstHyperbufPool, gst_hyperbuf_pool, GST_TYPE_BUFFER_POOL)

#define HB_POOL(obj) ((GstHyperbufPool *)(obj))

/* What a pooled memory carries: the hyperbuf buffer, and a reference on the connection it
 * must be freed through. */
struct pool_memory {
	struct hbg_tx *tx;
	struct hb_buffer *b;
};

static GQuark memory_quark(void)
{
	static GQuark q;

	if (!q)
		q = g_quark_from_static_string("hyperbuf-pool-memory");
	return q;
}

static void pool_memory_free(gpointer data)
{
	struct pool_memory *pm = data;

	hb_buffer_free(pm->b);
	hbg_tx_unref(pm->tx);
	g_free(pm);
}

struct hb_buffer *hbg_pool_memory_buffer(GstMemory *mem, struct hbg_tx *tx)
{
	struct pool_memory *pm = gst_mini_object_get_qdata(GST_MINI_OBJECT(mem), memory_quark());

	return pm && pm->tx == tx ? pm->b : NULL;
}

static const gchar **pool_get_options(GstBufferPool *pool)
{
	static const gchar *options[] = {GST_BUFFER_POOL_OPTION_VIDEO_META, NULL};

	return options;
}

static gboolean pool_set_config(GstBufferPool *pool, GstStructure *config)
{
	GstHyperbufPool *self = HB_POOL(pool);
	guint size, min, max;
	GstCaps *caps;

	if (!gst_buffer_pool_config_get_params(config, &caps, &size, &min, &max) || !caps ||
	    !gst_video_info_from_caps(&self->info, caps)) {
		GST_WARNING_OBJECT(pool, "no video caps in the config");
		return FALSE;
	}
	self->add_meta =
	    gst_buffer_pool_config_has_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
	/* Each buffer is one frame of the caps: never smaller, whatever was asked. */
	if (size < GST_VIDEO_INFO_SIZE(&self->info))
		size = (guint)GST_VIDEO_INFO_SIZE(&self->info);
	gst_buffer_pool_config_set_params(config, caps, size, min, max);
	return GST_BUFFER_POOL_CLASS(gst_hyperbuf_pool_parent_class)->set_config(pool, config);
}

static GstFlowReturn pool_alloc_buffer(GstBufferPool *pool, GstBuffer **buffer,
				       GstBufferPoolAcquireParams *params)
{
	GstHyperbufPool *self = HB_POOL(pool);
	GstVideoInfo *info = &self->info;
	gsize size = GST_VIDEO_INFO_SIZE(info);
	struct pool_memory *pm;
	struct hb_buffer *b;
	GstMemory *mem;

	b = hb_buffer_alloc(hbg_tx_client(self->tx), hbg_tx_peer(self->tx), size, 0);
	if (!b) {
		GST_ERROR_OBJECT(pool, "hb_buffer_alloc(peer %u, %zu bytes): %s",
				 hbg_tx_peer(self->tx), size, g_strerror(errno));
		return GST_FLOW_ERROR;
	}
	pm = g_new(struct pool_memory, 1);
	pm->tx = hbg_tx_ref(self->tx);
	pm->b = b;
	mem = gst_memory_new_wrapped(0, hb_buffer_data(b), size, 0, size, pm, pool_memory_free);
	gst_mini_object_set_qdata(GST_MINI_OBJECT(mem), memory_quark(), pm, NULL);
	*buffer = gst_buffer_new();
	gst_buffer_append_memory(*buffer, mem);
	if (self->add_meta)
		gst_buffer_add_video_meta_full(
		    *buffer, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_INFO_FORMAT(info),
		    GST_VIDEO_INFO_WIDTH(info), GST_VIDEO_INFO_HEIGHT(info),
		    GST_VIDEO_INFO_N_PLANES(info), info->offset, info->stride);
	return GST_FLOW_OK;
}

/* Every buffer out and the pool at its maximum: wait for the consumer to give one back. */
static GstFlowReturn pool_acquire_buffer(GstBufferPool *pool, GstBuffer **buffer,
					 GstBufferPoolAcquireParams *params)
{
	GstBufferPoolClass *parent = GST_BUFFER_POOL_CLASS(gst_hyperbuf_pool_parent_class);
	GstBufferPoolAcquireParams p = {0};
	GstFlowReturn ret;

	if (params)
		p = *params;
	p.flags |= GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT;
	for (;;) {
		ret = parent->acquire_buffer(pool, buffer, &p);
		if (ret != GST_FLOW_EOS ||
		    (params && (params->flags & GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT)))
			return ret;
		switch (hbg_tx_reclaim(HB_POOL(pool)->tx, TRUE)) {
		case HBG_TX_OK:
			continue;
		case HBG_TX_FLUSHING:
			return GST_FLOW_FLUSHING;
		case HBG_TX_PEER_GONE:
			/* Upstream ends the stream; the sink says how (on-peer-gone). */
			return GST_FLOW_EOS;
		case HBG_TX_ERROR:
			GST_ERROR_OBJECT(pool, "%s", hbg_tx_why(HB_POOL(pool)->tx));
			return GST_FLOW_ERROR;
		}
	}
}

static void pool_finalize(GObject *obj)
{
	hbg_tx_unref(HB_POOL(obj)->tx);
	G_OBJECT_CLASS(gst_hyperbuf_pool_parent_class)->finalize(obj);
}

static void gst_hyperbuf_pool_class_init(GstHyperbufPoolClass *klass)
{
	GstBufferPoolClass *pool_class = GST_BUFFER_POOL_CLASS(klass);

	G_OBJECT_CLASS(klass)->finalize = pool_finalize;
	pool_class->get_options = pool_get_options;
	pool_class->set_config = pool_set_config;
	pool_class->alloc_buffer = pool_alloc_buffer;
	pool_class->acquire_buffer = pool_acquire_buffer;
}

static void gst_hyperbuf_pool_init(GstHyperbufPool *self)
{
}

GstBufferPool *hbg_pool_new(struct hbg_tx *tx)
{
	GstHyperbufPool *pool = g_object_new(gst_hyperbuf_pool_get_type(), NULL);

	pool->tx = hbg_tx_ref(tx);
	/* Not floating: whoever asked owns the one reference. */
	gst_object_ref_sink(pool);
	return GST_BUFFER_POOL(pool);
}
