/* Checks of client-built Xen buffer descriptors (see desc.h). */
#include <errno.h>

#include "backends/xen/desc.h"
#include "protocol/limits.h"

/* Inline refs are grant refs too: none of them may be a reserved one. */
static int check_inline(const struct hbp_refdir *d)
{
	if (!d->inline_refs || d->root != 0 || d->pages > HBP_INLINE_REFS_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < d->pages; i++)
		if (d->inline_refs[i] < HBX_FIRST_GRANT_REF)
			return -EINVAL;
	return 0;
}

int hbx_desc_check(const struct hbp_refdir *d, uint64_t size)
{
	uint64_t pages;
	int depth;

	if (size == 0 || d->size != size || d->first_offset >= HBP_PAGE_SIZE)
		return -EINVAL;
	pages = hbp_refdir_span(size, d->first_offset);
	if (d->pages != pages)
		return -EINVAL;
	if (d->depth == 0)
		return check_inline(d);
	depth = hbp_refdir_depth(pages);
	if (depth < 0 || d->depth != (uint32_t)depth)
		return -EINVAL;
	if (d->root < HBX_FIRST_GRANT_REF)
		return -EINVAL;
	return 0;
}

uint64_t hbx_buffer_pages(uint64_t size, int inline_refs)
{
	uint64_t pages = hbp_refdir_span(size, 0);

	if (inline_refs && size && pages <= HBP_INLINE_REFS_MAX)
		return pages;
	return hbx_desc_pages(size);
}

uint64_t hbx_desc_pages(uint64_t size)
{
	uint64_t pages = hbp_refdir_span(size, 0);
	uint64_t dir = hbp_refdir_dir_pages(pages);

	return dir ? pages + dir : 0;
}
