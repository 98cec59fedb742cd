/*
 * hyperbuf.ko's ABI (kmod/hyperbuf_kmod.h) against the rest of the tree: the pool header the
 * module checks is protocol/limits.h's, field by field, and the ioctl structs have one layout
 * for 32- and 64-bit callers (the module's compat_ioctl passes them through unchanged).
 */
#include <stddef.h>

#include "kmod/hyperbuf_kmod.h"
#include "protocol/limits.h"
#include "tests/harness.h"

#define SAME_FIELD(f)                                                                              \
	_Static_assert(offsetof(struct hyperbuf_pool_header, f) ==                                 \
			       offsetof(struct hbp_pool_header, f) &&                              \
			   sizeof(((struct hyperbuf_pool_header *)0)->f) ==                        \
			       sizeof(((struct hbp_pool_header *)0)->f),                           \
		       "pool header field " #f)
SAME_FIELD(magic);
SAME_FIELD(layout);
SAME_FIELD(group);
SAME_FIELD(size);
SAME_FIELD(page_size);
SAME_FIELD(instance);
SAME_FIELD(name);
_Static_assert(sizeof(struct hyperbuf_pool_header) == sizeof(struct hbp_pool_header), "header");
_Static_assert(HYPERBUF_POOL_LAYOUT == HBP_POOL_LAYOUT_VERSION, "layout version");

/* No implicit padding whose size differs between i386 and x86-64 (u64 alignment 4 vs 8). */
_Static_assert(sizeof(struct hyperbuf_pool_info) == 32, "pool_info");
_Static_assert(sizeof(struct hyperbuf_pool_dmabuf) == 24, "pool_dmabuf");
_Static_assert(sizeof(struct hyperbuf_fence_create) == 48, "fence_create");
_Static_assert(sizeof(struct hyperbuf_fence_signal) == 16, "fence_signal");
_Static_assert(sizeof(struct hyperbuf_dmabuf_rdonly) == 16, "dmabuf_rdonly");
_Static_assert(sizeof(struct hyperbuf_pool_bell_info) == 16, "pool_bell_info");
_Static_assert(sizeof(struct hyperbuf_pool_irqfd) == 16, "pool_irqfd");
_Static_assert(sizeof(struct hyperbuf_pool_ring) == 16, "pool_ring");

TEST(pool_magic_matches_the_protocol)
{
	CHECK(sizeof(HYPERBUF_POOL_MAGIC) == sizeof(HBP_POOL_MAGIC));
	CHECK(memcmp(HYPERBUF_POOL_MAGIC, HBP_POOL_MAGIC, sizeof(HBP_POOL_MAGIC)) == 0);
	CHECK_EQ(HBP_PAGE_SIZE, 4096);
}

TEST(ioctl_numbers_are_distinct)
{
	const unsigned long nr[] = {HYPERBUF_IOC_POOL_INFO,      HYPERBUF_IOC_POOL_DMABUF,
				    HYPERBUF_IOC_POOL_BELL_INFO, HYPERBUF_IOC_POOL_IRQFD,
				    HYPERBUF_IOC_POOL_RING,      HYPERBUF_IOC_FENCE_CREATE,
				    HYPERBUF_IOC_FENCE_SIGNAL,   HYPERBUF_IOC_DMABUF_RDONLY};

	for (size_t i = 0; i < sizeof(nr) / sizeof(nr[0]); i++)
		for (size_t j = 0; j < i; j++)
			CHECK(nr[i] != nr[j]);
}
