/* The hyperbuf GStreamer plugin: hyperbufsink and hyperbufsrc (docs/GSTREAMER.md). */
#include "gst/hbgst.h"

GST_DEBUG_CATEGORY(hbg_debug);

#define PACKAGE "hyperbuf"
#ifndef HB_VERSION_STRING
#define HB_VERSION_STRING "0"
#endif

static gboolean plugin_init(GstPlugin *plugin)
{
	GST_DEBUG_CATEGORY_INIT(hbg_debug, "hyperbuf", 0, "hyperbuf elements");
	return gst_element_register(plugin, "hyperbufsink", GST_RANK_NONE,
				    gst_hyperbuf_sink_get_type()) &&
	       gst_element_register(plugin, "hyperbufsrc", GST_RANK_NONE,
				    gst_hyperbuf_src_get_type());
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, hyperbuf,
		  "Zero-copy video between VMs and the host over hyperbuf", plugin_init,
		  HB_VERSION_STRING, "Proprietary", PACKAGE, "https://hyperbuf.invalid/")
