/* The client side of a KVM group pool: see pool_window.h. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/kvm/pool_window.h"
#include "protocol/limits.h"
#include "protocol/refdir.h"

void hbk_pool_window_init(struct hbk_pool_window *w)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

static bool is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* The header is in memory every member can write: copy it once, then judge the copy. */
static int check_header(const struct hbk_pool_window *w, uint32_t instance)
{
	struct hbp_pool_header h;

	memcpy(&h, w->base, sizeof(h));
	if (memcmp(h.magic, HBP_POOL_MAGIC, sizeof(h.magic)) != 0)
		return -EPROTO;
	if (le32toh(h.layout) != HBP_POOL_LAYOUT_VERSION || le32toh(h.group) != w->group ||
	    le64toh(h.size) != w->size || le32toh(h.page_size) != HBP_PAGE_SIZE)
		return -EPROTO;
	if (instance && le32toh(h.instance) != instance)
		return -EPROTO;
	return 0;
}

int hbk_pool_window_open(struct hbk_pool_window *w, int fd, uint32_t group, uint64_t size,
			 uint32_t instance, unsigned flags)
{
	struct stat st;
	void *base;
	int r;

	hbk_pool_window_init(w);
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto err_fd;
	}
	/* QEMU refuses a BAR that is not a power of two; so do we, for the same pool. Refs are
	 * 32-bit page numbers, which bounds the pool at 2^32 pages. */
	/* A character device has no size: hyperbuf.ko told the caller the BAR's. */
	if (flags & HBK_POOL_WINDOW_DEVICE)
		st.st_size = (off_t)size;
	if (st.st_size < 0 || (uint64_t)st.st_size != size || !is_pow2(size) ||
	    size < HBP_PAGE_SIZE || size / HBP_PAGE_SIZE > (1ull << 32) || size > SIZE_MAX) {
		r = -EPROTO;
		goto err_fd;
	}
	if (flags & HBK_POOL_WINDOW_SEALED) {
		/* Without F_SEAL_SHRINK anybody holding the fd could truncate the pool and turn
		 * every access to our mappings into SIGBUS. */
		int seals = fcntl(fd, F_GET_SEALS);
		if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
			r = -EPROTO;
			goto err_fd;
		}
	}
	base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		r = -errno;
		goto err_fd;
	}
	w->fd = fd;
	w->group = group;
	w->size = size;
	w->pages = size / HBP_PAGE_SIZE;
	w->base = base;
	/* A sealed fd came from the daemon's own socket: that, not page 0, says which pool
	 * it is, and any member can scribble on page 0. Only a BAR found by scanning PCI
	 * devices (no seals to check) needs the header to be told apart. */
	if (!(flags & HBK_POOL_WINDOW_SEALED)) {
		r = check_header(w, instance);
		if (r < 0)
			goto err_map;
	}
	return 0;

err_map:
	munmap(base, size);
err_fd:
	close(fd);
	hbk_pool_window_init(w);
	return r;
}

void hbk_pool_window_close(struct hbk_pool_window *w)
{
	if (w->base)
		munmap((void *)w->base, w->size);
	if (w->fd >= 0)
		close(w->fd);
	hbk_pool_window_init(w);
}

static const void *walk_map(void *ctx, uint32_t ref, size_t *len)
{
	const struct hbk_pool_window *w = ctx;

	if (ref >= w->pages)
		return NULL;
	*len = HBP_PAGE_SIZE;
	return w->base + (size_t)ref * HBP_PAGE_SIZE;
}

static int walk_validate(void *ctx, uint32_t ref, int is_dir)
{
	const struct hbk_pool_window *w = ctx;

	/* Page 0 is the header: neither a directory nor data. */
	if (ref < 1 || ref >= w->pages)
		return -EBADMSG;
	return 0;
}

int hbk_pool_window_walk(const struct hbk_pool_window *w, const struct hbp_refdir *d,
			 uint32_t *refs)
{
	const struct hbp_refdir_ops ops = {
	    .map = walk_map,
	    .unmap = NULL,
	    .validate = walk_validate,
	    .ctx = (void *)w,
	};

	if (!w->base)
		return -EBADF;
	return hbp_refdir_walk(d, &ops, refs);
}

int hbk_pool_window_map(const struct hbk_pool_window *w, const uint32_t *refs, uint32_t n,
			bool writable, void **out)
{
	int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
	size_t len;
	uint8_t *base;
	uint32_t i, run;
	int r;

	if (!w->base || n == 0 || n > w->pages)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (refs[i] < 1 || refs[i] >= w->pages)
			return -EINVAL;
	len = (size_t)n * HBP_PAGE_SIZE;
	for (run = 1; run < n && refs[run] == refs[0] + run; run++)
		;
	/* One run (what the allocator gives whenever the pool has one): one mapping. */
	if (run == n) {
		base = mmap(NULL, len, prot, MAP_SHARED, w->fd, (off_t)refs[0] * HBP_PAGE_SIZE);
		if (base == MAP_FAILED)
			return -errno;
		*out = base;
		return 0;
	}
	/* Reserve the whole range first so the runs land next to each other and nothing else
	 * can be mapped in between while we fill it. */
	base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	for (i = 0; i < n; i += run) {
		for (run = 1; i + run < n && refs[i + run] == refs[i] + run; run++)
			;
		void *p = mmap(base + (size_t)i * HBP_PAGE_SIZE, (size_t)run * HBP_PAGE_SIZE, prot,
			       MAP_SHARED | MAP_FIXED, w->fd, (off_t)refs[i] * HBP_PAGE_SIZE);
		if (p == MAP_FAILED) {
			r = -errno;
			goto err_unmap;
		}
	}
	*out = base;
	return 0;

err_unmap:
	munmap(base, len);
	return r;
}

void hbk_pool_window_unmap(void *addr, size_t len)
{
	if (addr)
		munmap(addr, len);
}
