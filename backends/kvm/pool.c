/* Sealed memfd pools and their page allocator (see pool.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backends/kvm/pool.h"
#include "common/log.h"
#include "protocol/limits.h"

#define BIT_WORD(i) ((i) / 64u)
#define BIT_MASK(i) (1ull << ((i) % 64u))

static bool page_used(const struct hbk_pool *p, uint32_t i)
{
	return p->bitmap[BIT_WORD(i)] & BIT_MASK(i);
}

static void page_set(struct hbk_pool *p, uint32_t i, bool used)
{
	if (used)
		p->bitmap[BIT_WORD(i)] |= BIT_MASK(i);
	else
		p->bitmap[BIT_WORD(i)] &= ~BIT_MASK(i);
}

int hbk_pool_init(struct hbk_pool *p, const char *name, uint32_t group, uint64_t size)
{
	struct hbp_pool_header *h;
	char fdname[64];
	int r;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	/* QEMU asserts that BAR2 is a power of two and aborts otherwise: catch it here. */
	if (size < 65536 || (size & (size - 1)) || size / HBP_PAGE_SIZE > UINT32_MAX)
		return -EINVAL;
	snprintf(fdname, sizeof(fdname), "hyperbuf-%s", name);
	p->fd = memfd_create(fdname, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (p->fd < 0)
		return -errno;
	if (ftruncate(p->fd, (off_t)size) < 0)
		goto err_errno;
	/* Nobody (QEMU, a host client, a guest) may shrink the pool under the others' mappings
	 * and SIGBUS them, or grow it. No write seal: members must write. */
	if (fcntl(p->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto err_errno;
	p->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
	if (p->map == MAP_FAILED) {
		p->map = NULL;
		goto err_errno;
	}
	p->size = size;
	p->pages = (uint32_t)(size / HBP_PAGE_SIZE);
	p->bitmap = calloc((p->pages + 63) / 64, sizeof(uint64_t));
	if (!p->bitmap) {
		r = -ENOMEM;
		goto err;
	}
	page_set(p, 0, true);
	p->hint = 1;

	h = (struct hbp_pool_header *)p->map;
	memcpy(h->magic, HBP_POOL_MAGIC, sizeof(h->magic));
	h->layout = HBP_POOL_LAYOUT_VERSION;
	h->group = group;
	h->size = size;
	h->page_size = HBP_PAGE_SIZE;
	/* Any non-zero value a previous daemon is unlikely to have drawn: the bytes only tell
	 * pools apart, they guard nothing. */
	if (getrandom(&p->instance, sizeof(p->instance), 0) != sizeof(p->instance))
		p->instance = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	if (!p->instance)
		p->instance = 1;
	h->instance = p->instance;
	snprintf(h->name, sizeof(h->name), "%s", name);
	hbk_slots_reset(p);
	return 0;

err_errno:
	r = -errno;
err:
	hbk_pool_fini(p);
	return r;
}

void hbk_pool_fini(struct hbk_pool *p)
{
	if (p->map)
		munmap(p->map, p->size);
	if (p->fd >= 0)
		close(p->fd);
	free(p->bitmap);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
}

static void punch(struct hbk_pool *p, uint32_t first, uint32_t count)
{
	if (fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)first * HBP_PAGE_SIZE, (off_t)count * HBP_PAGE_SIZE) < 0) {
		/* shmem supports punching; if it ever fails, zero by hand rather than leak
		 * one buffer's contents into the next. */
		log_warn("pool: hole punch failed (%s); zeroing by hand", strerror(errno));
		memset(p->map + (size_t)first * HBP_PAGE_SIZE, 0, (size_t)count * HBP_PAGE_SIZE);
	}
	p->punched += count;
}

/* Punches the pages of refs[] in runs of consecutive page numbers. */
static void punch_refs(struct hbk_pool *p, const uint32_t *refs, uint32_t n)
{
	uint32_t i = 0;

	while (i < n) {
		uint32_t j = i + 1;
		while (j < n && refs[j] == refs[j - 1] + 1)
			j++;
		punch(p, refs[i], j - i);
		i = j;
	}
}

/* First fit for a run of n free pages starting at or after `from`; 0 if none. */
static uint32_t find_run(const struct hbk_pool *p, uint32_t from, uint32_t n)
{
	uint32_t start = from, len = 0;

	for (uint32_t i = from; i < p->pages; i++) {
		if (!(i % 64) && p->bitmap[BIT_WORD(i)] == ~0ull) {
			len = 0;
			i += 63;
			start = i + 1;
			continue;
		}
		if (page_used(p, i)) {
			len = 0;
			start = i + 1;
			continue;
		}
		if (++len == n)
			return start;
	}
	return 0;
}

int hbk_pool_alloc(struct hbk_pool *p, uint32_t n, uint32_t *refs)
{
	uint32_t start, k = 0;

	if (n == 0 || n > p->pages - 1)
		return n ? -EFBIG : -EINVAL;
	if (n > p->pages - 1 - p->used)
		return -ENOSPC;
	start = find_run(p, p->hint, n);
	if (!start && p->hint > 1)
		start = find_run(p, 1, n);
	if (start) {
		for (uint32_t i = 0; i < n; i++)
			refs[i] = start + i;
	} else {
		/* Fragmented: any free pages will do, the directory describes them. */
		for (uint32_t i = 1; i < p->pages && k < n; i++)
			if (!page_used(p, i))
				refs[k++] = i;
	}
	for (uint32_t i = 0; i < n; i++)
		page_set(p, refs[i], true);
	p->used += n;
	p->hint = refs[n - 1] + 1 < p->pages ? refs[n - 1] + 1 : 1;
	punch_refs(p, refs, n);
	return 0;
}

void hbk_pool_free(struct hbk_pool *p, const uint32_t *refs, uint32_t n, bool punch_pages)
{
	for (uint32_t i = 0; i < n; i++) {
		if (refs[i] == 0 || refs[i] >= p->pages || !page_used(p, refs[i])) {
			log_err("pool: freeing page %u that is not allocated", refs[i]);
			continue;
		}
		page_set(p, refs[i], false);
		p->used--;
	}
	if (punch_pages)
		punch_refs(p, refs, n);
}

void *hbk_pool_page(struct hbk_pool *p, uint32_t ref)
{
	return p->map + (size_t)ref * HBP_PAGE_SIZE;
}

int hbk_pool_adopt(struct hbk_pool *p, int fd, uint32_t group, uint64_t size)
{
	const struct hbp_pool_header *h;
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size || seals < 0 ||
	    (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EINVAL;
	p->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p->map == MAP_FAILED) {
		p->map = NULL;
		return -errno;
	}
	p->fd = fd;
	p->size = size;
	p->pages = (uint32_t)(size / HBP_PAGE_SIZE);
	h = (const struct hbp_pool_header *)p->map;
	/* Members can write the header, but not between the last daemon's death and now
	 * without QEMU's help; still, a header that is not this group's is a different pool. */
	if (memcmp(h->magic, HBP_POOL_MAGIC, sizeof(h->magic)) != 0 || h->group != group ||
	    h->size != size || !h->instance)
		goto err;
	p->instance = h->instance;
	p->bitmap = calloc((p->pages + 63) / 64, sizeof(uint64_t));
	if (!p->bitmap)
		goto err;
	page_set(p, 0, true);
	p->hint = 1;
	hbk_slots_reset(p);
	return 0;
err:
	munmap(p->map, size);
	p->map = NULL;
	p->fd = -1;
	return -EINVAL;
}

int hbk_pool_take(struct hbk_pool *p, const uint32_t *refs, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (refs[i] == 0 || refs[i] >= p->pages || page_used(p, refs[i]))
			break;
		page_set(p, refs[i], true);
	}
	if (i == n) {
		p->used += n;
		return 0;
	}
	while (i--)
		page_set(p, refs[i], false);
	return -EBADMSG;
}
