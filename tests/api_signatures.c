/*
 * Compile-time check that include/hyperbuf.h declares every function of
 * ../shared/spec/API.md with exactly the signature written there: each is assigned to a
 * pointer of the spec's type, so any drift is a compile error under -Werror.
 */
#include <hyperbuf.h>

/* ret (*name_p)args = name: compiles only if the declaration has exactly that type. */
#define SAME(name, ret, args) ret(*name##_p) args = name

SAME(hb_connect, struct hb_client *, (const char *));
SAME(hb_disconnect, void, (struct hb_client *));
SAME(hb_self_domain, uint32_t, (const struct hb_client *));
SAME(hb_get_fd, int, (const struct hb_client *));
SAME(hb_dispatch, int, (struct hb_client *, int));
SAME(hb_id_format, int, (const struct hb_id *, char[33]));
SAME(hb_id_parse, int, (const char *, struct hb_id *));
SAME(hb_id_equal, int, (const struct hb_id *, const struct hb_id *));
SAME(hb_buffer_alloc, struct hb_buffer *, (struct hb_client *, uint32_t, size_t, uint32_t));
SAME(hb_buffer_data, void *, (struct hb_buffer *));
SAME(hb_buffer_size, size_t, (const struct hb_buffer *));
SAME(hb_buffer_free, void, (struct hb_buffer *));
SAME(hb_export, int, (struct hb_buffer *, const void *, size_t, uint32_t, struct hb_id *));
SAME(hb_unexport, int, (struct hb_client *, const struct hb_id *, uint32_t));
SAME(hb_import, struct hb_import *, (struct hb_client *, const struct hb_id *, uint32_t));
SAME(hb_import_data, void *, (struct hb_import *));
SAME(hb_import_size, size_t, (const struct hb_import *));
SAME(hb_import_metadata, ssize_t, (const struct hb_import *, void *, size_t));
SAME(hb_import_release, void, (struct hb_import *));
SAME(hb_query, int, (struct hb_client *, const struct hb_id *, struct hb_info *));
SAME(hb_next_event, int, (struct hb_client *, struct hb_event *));
SAME(hb_timeline_create, struct hb_timeline *, (struct hb_client *));
SAME(hb_timeline_id, uint64_t, (const struct hb_timeline *));
SAME(hb_timeline_signal, int, (struct hb_timeline *, uint64_t));
SAME(hb_timeline_fail, int, (struct hb_timeline *, uint64_t, int));
SAME(hb_timeline_destroy, void, (struct hb_timeline *));
SAME(hb_sync_open, struct hb_sync *, (struct hb_client *, const struct hb_fence *));
SAME(hb_sync_merge, struct hb_sync *, (struct hb_sync *, struct hb_sync *));
SAME(hb_sync_fd, int, (const struct hb_sync *));
SAME(hb_sync_wait, int, (struct hb_sync *, int));
SAME(hb_sync_wait_any, int, (struct hb_sync **, size_t, int, size_t *));
SAME(hb_sync_status, int, (const struct hb_sync *));
SAME(hb_sync_close, void, (struct hb_sync *));
SAME(hb_attach_fence, int,
     (struct hb_client *, const struct hb_id *, const struct hb_fence *, uint32_t));
SAME(hb_begin_cpu_access, int, (struct hb_client *, const struct hb_id *, uint32_t, int));
SAME(hb_end_cpu_access, int, (struct hb_client *, const struct hb_id *, uint32_t));
/* Additions beyond API.md (issue 13, images): hyperbuf.h, "Images". */
SAME(hb_image_init, size_t, (struct hb_image *, uint32_t, uint32_t, uint32_t, uint32_t));
SAME(hb_image_check, int, (const struct hb_image *, size_t));
SAME(hb_image_encode, ssize_t, (const struct hb_image *, void *, size_t));
SAME(hb_image_decode, ssize_t, (const void *, size_t, size_t, struct hb_image *));
SAME(hb_export_image, int,
     (struct hb_buffer *, const struct hb_image *, const void *, size_t, struct hb_id *));
SAME(hb_event_image, int, (const struct hb_event *, struct hb_image *));
SAME(hb_import_image, int, (const struct hb_import *, struct hb_image *));
SAME(hb_image_format_name, char *, (uint32_t, char[5]));

/* What docs/DMABUF.md adds to the contract (not in API.md). */
SAME(hb_buffer_dmabuf, int, (struct hb_buffer *, uint32_t));
SAME(hb_import_dmabuf, int, (struct hb_import *, uint32_t));
SAME(hb_sync_file, int, (struct hb_sync *));
#if !HB_DMABUF_READ_ONLY
#error "HB_DMABUF_READ_ONLY is missing"
#endif

/* The constants are integer constant expressions usable in #if and array sizes. */
#if !(HB_META_MAX >= 1024) || !HB_BUFFER_PEER_WRITABLE || !HB_IMPORT_WRITE ||                      \
    !HB_INFO_UNEXPORTED || !HB_INFO_UNEXPORT_PENDING || !HB_INFO_PEER_WRITABLE ||                  \
    !HB_ACCESS_READ || !HB_ACCESS_WRITE || HB_VERSION_MAJOR < 0 || HB_VERSION_MINOR < 0
#error "a constant of API.md is missing or wrong"
#endif
static char meta_sized[HB_META_MAX];
/* The struct fields API.md names. */
static const struct hb_info info_fields = {
    .exporter = 0, .peer = 0, .size = 0, .pages = 0, .importers = 0, .flags = 0, .meta_len = 0};
static const struct hb_event event_fields = {
    .type = HB_EVENT_OVERFLOW, .domain = 0, .size = 0, .meta_len = 0};
static const struct hb_fence fence_fields = {.timeline = 0, .value = 0};
enum hb_event_type all_types[] = {HB_EVENT_EXPORTED, HB_EVENT_UNEXPORTED,  HB_EVENT_IMPORTED,
				  HB_EVENT_RELEASED, HB_EVENT_DOMAIN_GONE, HB_EVENT_FENCE,
				  HB_EVENT_OVERFLOW};

int main(void)
{
	return (int)sizeof(meta_sized) == HB_META_MAX && info_fields.peer == 0 &&
		       event_fields.domain == 0 && fence_fields.value == 0 && all_types[0] == 1
		   ? 0
		   : 1;
}
