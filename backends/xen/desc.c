/* Checks of client-built Xen buffer descriptors (see desc.h). */
#include <errno.h>

#include "backends/xen/desc.h"
#include "protocol/limits.h"

int hbx_desc_check(const struct hbp_refdir *d, uint64_t size)
{
	uint64_t pages;
	int depth;

	if (size == 0 || d->size != size || d->first_offset >= HBP_PAGE_SIZE)
		return -EINVAL;
	pages = hbp_refdir_span(size, d->first_offset);
	if (d->pages != pages)
		return -EINVAL;
	depth = hbp_refdir_depth(pages);
	if (depth < 0 || d->depth != (uint32_t)depth)
		return -EINVAL;
	if (d->root < HBX_FIRST_GRANT_REF)
		return -EINVAL;
	return 0;
}

uint64_t hbx_desc_pages(uint64_t size)
{
	uint64_t pages = hbp_refdir_span(size, 0);
	uint64_t dir = hbp_refdir_dir_pages(pages);

	return dir ? pages + dir : 0;
}
