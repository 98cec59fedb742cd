/*
 * Buffer descriptors on the wire (BufferDesc: group, root ref, depth, pages, offset, size) and
 * the reference directory they describe. The one place where one turns into the other.
 */
#ifndef HB_PROTOCOL_DESC_H
#define HB_PROTOCOL_DESC_H

#include <stdint.h>

#include "protocol/hyperbuf.pb-c.h"
#include "protocol/refdir.h"

/* Fills out (already initialised with BUFFER_DESC__INIT) from d, in group. */
void hbp_desc_from_refdir(BufferDesc *out, const struct hbp_refdir *d, uint32_t group);

/*
 * The directory a descriptor names, after the checks every receiver makes: present, a size
 * that is not 0, data starting in the first page, and a page count that is exactly what size
 * and offset span; inline refs (depth 0) exactly one per page, at most HBP_INLINE_REFS_MAX, and
 * none with a directory. d->inline_refs then points into in: d lives no longer than in.
 * Depth and refs are the walker's to check. Returns 0 or -EPROTO.
 */
int hbp_desc_to_refdir(const BufferDesc *in, struct hbp_refdir *d);

#endif
