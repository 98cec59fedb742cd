/*
 * The GStreamer plugin (docs/GSTREAMER.md): hyperbufsink sends video frames to another domain
 * zero-copy, hyperbufsrc receives them. What its files share: formats and layouts between
 * GstVideoInfo and struct hb_image (format.c), the enum of what to do when the peer goes, and
 * the element types. The flow of each side lives in tx.c (the sink's) and rx.c (the source's).
 */
#ifndef HB_GST_HBGST_H
#define HB_GST_HBGST_H

#include <gst/gst.h>
#include <gst/video/video.h>
#include <hyperbuf.h>

#include "gst/wire.h"

GST_DEBUG_CATEGORY_EXTERN(hbg_debug);
#define GST_CAT_DEFAULT hbg_debug

/* Buffers a sink may keep in flight (its `buffers` property) at most. */
#define HBG_MAX_BUFFERS 32

/* The DRM fourcc of a GStreamer format, or 0 if there is none we describe. */
uint32_t hbg_fourcc_from_format(GstVideoFormat format);
/* The GStreamer format of a DRM fourcc, or GST_VIDEO_FORMAT_UNKNOWN. */
GstVideoFormat hbg_format_from_fourcc(uint32_t fourcc);
/* The caps string both elements accept: video/x-raw in every format with a fourcc. */
GstCaps *hbg_caps_all(void);

/*
 * A frame of info, laid out as meta says (info's own layout when meta is NULL), starting at
 * mem_offset in the buffer, as a description without timing. FALSE if the format has no fourcc
 * or the layout has more planes than a description holds.
 */
gboolean hbg_image_from_video(const GstVideoInfo *info, const GstVideoMeta *meta, gsize mem_offset,
			      struct hb_image *img);
/* The video info a description (and the producer's framerate and aspect, x) stands for. FALSE
 * if its format has no GStreamer name or its modifier is not linear. */
gboolean hbg_info_from_image(const struct hb_image *img, const struct hbg_frame_extra *x,
			     GstVideoInfo *info);
/* TRUE if the planes of img are exactly where info puts them (no GstVideoMeta needed). */
gboolean hbg_image_is_default_layout(const struct hb_image *img, const GstVideoInfo *info);

/* What an element does when its peer goes away: the `on-peer-gone` property. */
typedef enum {
	HBG_PEER_GONE_EOS = 0,
	HBG_PEER_GONE_ERROR = 1,
} HbgPeerGone;
GType hbg_peer_gone_get_type(void);

GType gst_hyperbuf_sink_get_type(void);
GType gst_hyperbuf_src_get_type(void);

#endif
