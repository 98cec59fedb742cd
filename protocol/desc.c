/* Buffer descriptors and reference directories (see desc.h). */
#include <errno.h>

#include "protocol/desc.h"

void hbp_desc_from_refdir(BufferDesc *out, const struct hbp_refdir *d, uint32_t group)
{
	out->group = group;
	out->root_ref = d->root;
	out->depth = d->depth;
	out->pages = d->pages;
	out->first_offset = d->first_offset;
	out->size = d->size;
	/* Borrowed for as long as out is packed: the refs belong to the buffer. */
	out->n_refs = d->depth == 0 && d->inline_refs ? d->pages : 0;
	out->refs = out->n_refs ? (uint32_t *)d->inline_refs : NULL;
}

int hbp_desc_to_refdir(const BufferDesc *in, struct hbp_refdir *d)
{
	if (!in || in->size == 0 || in->first_offset >= HBP_PAGE_SIZE ||
	    in->pages != hbp_refdir_span(in->size, in->first_offset))
		return -EPROTO;
	/* Inline refs come with depth 0 and only then, exactly one per page. */
	if (in->depth == 0 ? in->n_refs != in->pages || in->pages > HBP_INLINE_REFS_MAX ||
				 in->root_ref != 0
			   : in->n_refs != 0)
		return -EPROTO;
	*d = (struct hbp_refdir){
	    .root = in->root_ref,
	    .depth = in->depth,
	    .pages = in->pages,
	    .first_offset = in->first_offset,
	    .size = in->size,
	    .inline_refs = in->depth == 0 ? in->refs : NULL,
	};
	return 0;
}
