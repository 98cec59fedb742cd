/*
 * Checks of the BufferDesc a Xen client sends with Grant: the daemon passes it on to the
 * importer, so it is checked as hostile input here, before anybody else sees it. Pure code,
 * no Xen library (unit-tested on any machine).
 */
#ifndef HB_XEN_DESC_H
#define HB_XEN_DESC_H

#include <stdint.h>

#include "protocol/refdir.h"

/* Grant refs below this are reserved (GNTTAB_NR_RESERVED_ENTRIES: the toolstack's console
 * and xenstore pages); no shared buffer page can have one. */
#define HBX_FIRST_GRANT_REF 8u

/*
 * Checks d against the size the buffer was allocated with: the size is exactly that, the
 * data starts in the first page (first_offset < 4096), the page count is exactly what size
 * and offset need, the depth is the smallest for it, and the root is not a reserved ref; or,
 * depth 0, the refs inline (at most HBP_INLINE_REFS_MAX, none of them reserved).
 * Returns 0 or -EINVAL.
 */
int hbx_desc_check(const struct hbp_refdir *d, uint64_t size);

/* Pages a buffer of size bytes takes: data pages plus directory pages (0 if impossible). */
uint64_t hbx_desc_pages(uint64_t size);
/* The same for a client that describes small buffers inline (HBP_FEATURE_INLINE_REFS): a
 * buffer of up to HBP_INLINE_REFS_MAX pages has no directory page. */
uint64_t hbx_buffer_pages(uint64_t size, int inline_refs);

#endif
