/* Checks of client-built Xen buffer descriptors (see desc.h). */
#include <errno.h>

#include "desc.h"
#include "limits.h" /* protocol/limits.h */

int hbx_desc_check(const struct hb_refdir *d, uint64_t size)
{
	uint64_t pages;
	int depth;

	if (size == 0 || d->size != size || d->first_offset >= HB_PAGE_SIZE)
		return -EINVAL;
	pages = (d->first_offset + size + HB_PAGE_SIZE - 1) / HB_PAGE_SIZE;
	if (d->pages != pages)
		return -EINVAL;
	depth = hb_refdir_depth(pages);
	if (depth < 0 || d->depth != (uint32_t)depth)
		return -EINVAL;
	if (d->root < HBX_FIRST_GRANT_REF)
		return -EINVAL;
	return 0;
}

uint64_t hbx_desc_pages(uint64_t size)
{
	uint64_t pages = (size + HB_PAGE_SIZE - 1) / HB_PAGE_SIZE;
	uint64_t dir = hb_refdir_dir_pages(pages);

	return dir ? pages + dir : 0;
}
