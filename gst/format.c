/*
 * GstVideoInfo and GstVideoMeta to struct hb_image and back. GStreamer 1.22 has no mapping to
 * DRM fourccs of its own (gst_video_dma_drm_fourcc_from_format came in 1.24), so the table is
 * here: a DRM format is little-endian packed, so XRGB8888 is the bytes B G R X, GStreamer's
 * BGRx. Colorimetry travels as ITU-T H.273 code points, which GStreamer converts both ways.
 */
#include "gst/hbgst.h"

#define FOURCC(a, b, c, d)                                                                         \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

static const struct {
	GstVideoFormat format;
	uint32_t fourcc;
} formats[] = {
    {GST_VIDEO_FORMAT_BGRx, FOURCC('X', 'R', '2', '4')},
    {GST_VIDEO_FORMAT_BGRA, FOURCC('A', 'R', '2', '4')},
    {GST_VIDEO_FORMAT_RGBx, FOURCC('X', 'B', '2', '4')},
    {GST_VIDEO_FORMAT_RGBA, FOURCC('A', 'B', '2', '4')},
    {GST_VIDEO_FORMAT_xBGR, FOURCC('R', 'X', '2', '4')},
    {GST_VIDEO_FORMAT_xRGB, FOURCC('B', 'X', '2', '4')},
    {GST_VIDEO_FORMAT_BGR, FOURCC('R', 'G', '2', '4')},
    {GST_VIDEO_FORMAT_RGB, FOURCC('B', 'G', '2', '4')},
    {GST_VIDEO_FORMAT_RGB16, FOURCC('R', 'G', '1', '6')},
    {GST_VIDEO_FORMAT_GRAY8, FOURCC('R', '8', ' ', ' ')},
    {GST_VIDEO_FORMAT_NV12, FOURCC('N', 'V', '1', '2')},
    {GST_VIDEO_FORMAT_NV21, FOURCC('N', 'V', '2', '1')},
    {GST_VIDEO_FORMAT_NV16, FOURCC('N', 'V', '1', '6')},
    {GST_VIDEO_FORMAT_P010_10LE, FOURCC('P', '0', '1', '0')},
    {GST_VIDEO_FORMAT_I420, FOURCC('Y', 'U', '1', '2')},
    {GST_VIDEO_FORMAT_YV12, FOURCC('Y', 'V', '1', '2')},
    {GST_VIDEO_FORMAT_YUY2, FOURCC('Y', 'U', 'Y', 'V')},
    {GST_VIDEO_FORMAT_UYVY, FOURCC('U', 'Y', 'V', 'Y')},
};

uint32_t hbg_fourcc_from_format(GstVideoFormat format)
{
	for (gsize i = 0; i < G_N_ELEMENTS(formats); i++)
		if (formats[i].format == format)
			return formats[i].fourcc;
	return 0;
}

GstVideoFormat hbg_format_from_fourcc(uint32_t fourcc)
{
	for (gsize i = 0; i < G_N_ELEMENTS(formats); i++)
		if (formats[i].fourcc == fourcc)
			return formats[i].format;
	return GST_VIDEO_FORMAT_UNKNOWN;
}

GstCaps *hbg_caps_all(void)
{
	GValue list = G_VALUE_INIT, item = G_VALUE_INIT;
	GstCaps *caps = gst_caps_new_simple("video/x-raw", "width", GST_TYPE_INT_RANGE, 1, G_MAXINT,
					    "height", GST_TYPE_INT_RANGE, 1, G_MAXINT, "framerate",
					    GST_TYPE_FRACTION_RANGE, 0, 1, G_MAXINT, 1, NULL);

	g_value_init(&list, GST_TYPE_LIST);
	g_value_init(&item, G_TYPE_STRING);
	for (gsize i = 0; i < G_N_ELEMENTS(formats); i++) {
		g_value_set_static_string(&item, gst_video_format_to_string(formats[i].format));
		gst_value_list_append_value(&list, &item);
	}
	gst_caps_set_value(caps, "format", &list);
	g_value_unset(&item);
	g_value_unset(&list);
	return caps;
}

static void color_from_info(const GstVideoColorimetry *c, struct hb_image_color *out)
{
	out->range = (uint8_t)c->range;
	out->matrix = (uint8_t)gst_video_color_matrix_to_iso(c->matrix);
	out->transfer = (uint8_t)gst_video_transfer_function_to_iso(c->transfer);
	out->primaries = (uint8_t)gst_video_color_primaries_to_iso(c->primaries);
}

gboolean hbg_image_from_video(const GstVideoInfo *info, const GstVideoMeta *meta, gsize mem_offset,
			      struct hb_image *img)
{
	guint n = meta ? meta->n_planes : GST_VIDEO_INFO_N_PLANES(info);

	memset(img, 0, sizeof(*img));
	img->format = hbg_fourcc_from_format(GST_VIDEO_INFO_FORMAT(info));
	if (!img->format || n == 0 || n > HB_IMAGE_MAX_PLANES)
		return FALSE;
	img->modifier = HB_IMAGE_MODIFIER_LINEAR;
	img->width = (uint32_t)GST_VIDEO_INFO_WIDTH(info);
	img->height = (uint32_t)GST_VIDEO_INFO_HEIGHT(info);
	img->n_planes = n;
	for (guint i = 0; i < n; i++) {
		img->planes[i].offset =
		    mem_offset + (meta ? meta->offset[i] : GST_VIDEO_INFO_PLANE_OFFSET(info, i));
		img->planes[i].stride =
		    (uint32_t)(meta ? meta->stride[i] : GST_VIDEO_INFO_PLANE_STRIDE(info, i));
	}
	color_from_info(&info->colorimetry, &img->color);
	img->pts = img->duration = HB_IMAGE_TIME_NONE;
	return TRUE;
}

gboolean hbg_info_from_image(const struct hb_image *img, const struct hbg_frame_extra *x,
			     GstVideoInfo *info)
{
	GstVideoFormat format = hbg_format_from_fourcc(img->format);

	if (format == GST_VIDEO_FORMAT_UNKNOWN || img->modifier != HB_IMAGE_MODIFIER_LINEAR ||
	    img->width > G_MAXINT || img->height > G_MAXINT ||
	    !gst_video_info_set_format(info, format, img->width, img->height))
		return FALSE;
	info->colorimetry.range = img->color.range <= GST_VIDEO_COLOR_RANGE_16_235
				      ? (GstVideoColorRange)img->color.range
				      : GST_VIDEO_COLOR_RANGE_UNKNOWN;
	info->colorimetry.matrix = gst_video_color_matrix_from_iso(img->color.matrix);
	info->colorimetry.transfer = gst_video_transfer_function_from_iso(img->color.transfer);
	info->colorimetry.primaries = gst_video_color_primaries_from_iso(img->color.primaries);
	if (x && x->fps_d != 0 && x->fps_n <= G_MAXINT && x->fps_d <= G_MAXINT) {
		info->fps_n = (gint)x->fps_n;
		info->fps_d = (gint)x->fps_d;
	}
	if (x && x->par_n != 0 && x->par_d != 0 && x->par_n <= G_MAXINT && x->par_d <= G_MAXINT) {
		info->par_n = (gint)x->par_n;
		info->par_d = (gint)x->par_d;
	}
	return TRUE;
}

gboolean hbg_image_is_default_layout(const struct hb_image *img, const GstVideoInfo *info)
{
	if (img->n_planes != GST_VIDEO_INFO_N_PLANES(info))
		return FALSE;
	for (guint i = 0; i < img->n_planes; i++)
		if (img->planes[i].offset != GST_VIDEO_INFO_PLANE_OFFSET(info, i) ||
		    img->planes[i].stride != (uint32_t)GST_VIDEO_INFO_PLANE_STRIDE(info, i))
			return FALSE;
	return TRUE;
}

GType hbg_peer_gone_get_type(void)
{
	static GType type;
	static const GEnumValue values[] = {
	    {HBG_PEER_GONE_EOS, "End the stream (EOS)", "eos"},
	    {HBG_PEER_GONE_ERROR, "Post an error", "error"},
	    {0, NULL, NULL},
	};

	if (g_once_init_enter(&type))
		g_once_init_leave(&type, g_enum_register_static("HbgPeerGone", values));
	return type;
}
