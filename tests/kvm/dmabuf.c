/* The dma-buf image's guest program: helpers and main (dmabuf.h). */
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/sync_file.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/kvm/dmabuf.h"
#include "tools/pattern.h"

void load_module(const char *name, const char *params)
{
	char cmd[256];
	int r;

	snprintf(cmd, sizeof(cmd), "insmod /lib/modules/%s.ko %s", name, params ? params : "");
	r = system(cmd);
	if (r != 0)
		fail(__LINE__, "%s: status %d", cmd, r);
}

bool unload_module(const char *name)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rmmod %s 2>/dev/null", name);
	return system(cmd) == 0;
}

int vgem_open(void)
{
	int fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);

	GCHECK(fd >= 0);
	return fd;
}

void vgem_close(int vgem, uint32_t handle)
{
	struct hbvm_drm_gem_close gc = {.handle = handle};

	GCHECK(ioctl(vgem, HBVM_DRM_IOCTL_GEM_CLOSE, &gc) == 0);
}

void vgem_fence_round_trip(int vgem, uint32_t handle, int dmabuf)
{
	struct hbvm_vgem_fence_attach at = {.handle = handle, .flags = HBVM_VGEM_FENCE_WRITE};
	struct hbvm_vgem_fence_signal sig = {0};
	int es;

	GCHECK(ioctl(vgem, HBVM_DRM_IOCTL_VGEM_FENCE_ATTACH, &at) == 0);
	es = export_sync_file(dmabuf, false);
	GCHECK(!readable(es) && sync_file_status(es) == 0);
	sig.fence = at.out_fence;
	GCHECK(ioctl(vgem, HBVM_DRM_IOCTL_VGEM_FENCE_SIGNAL, &sig) == 0);
	GCHECK(readable(es) && sync_file_status(es) == 1);
	close(es);
}

static void sync_bracket(int fd, uint64_t flags)
{
	struct dma_buf_sync s = {.flags = DMA_BUF_SYNC_START | flags};

	GCHECK(ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) == 0);
	s.flags = DMA_BUF_SYNC_END | flags;
	GCHECK(ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) == 0);
}

uint32_t check_dmabuf_frame(int vgem, int dmabuf, uint64_t frame, bool writable, bool bracket)
{
	struct hbvm_drm_prime_handle imp = {.fd = dmabuf}, exp = {0};
	struct stat a, b;
	long bad;
	void *p;

	GCHECK(ioctl(vgem, HBVM_DRM_IOCTL_PRIME_FD_TO_HANDLE, &imp) == 0);
	exp.handle = imp.handle;
	exp.flags = O_CLOEXEC;
	GCHECK(ioctl(vgem, HBVM_DRM_IOCTL_PRIME_HANDLE_TO_FD, &exp) == 0);
	/* What vgem holds is our dma-buf itself, not a copy. */
	GCHECK(fstat(dmabuf, &a) == 0 && fstat(exp.fd, &b) == 0);
	GCHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	GCHECK((size_t)lseek(exp.fd, 0, SEEK_END) >= FRAME_BYTES);
	p = mmap(NULL, FRAME_BYTES, PROT_READ, MAP_SHARED, exp.fd, 0);
	GCHECK(p != MAP_FAILED);
	if (bracket)
		sync_bracket(exp.fd, DMA_BUF_SYNC_READ);
	bad = tool_pattern_frame_check(p, FRAME_W, FRAME_H, FRAME_STRIDE, frame);
	if (bad >= 0)
		fail(__LINE__, "frame %llu: pixel %ld differs through vgem's dma-buf",
		     (unsigned long long)frame, bad);
	munmap(p, FRAME_BYTES);
	p = mmap(NULL, FRAME_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, exp.fd, 0);
	if (writable)
		GCHECK(p != MAP_FAILED);
	else if (p != MAP_FAILED || errno != EACCES)
		fail(__LINE__, "a read-only dma-buf mapped writable (%s)", strerror(errno));
	if (p != MAP_FAILED)
		munmap(p, FRAME_BYTES);
	close(exp.fd);
	return imp.handle;
}

int sync_file_status(int fd)
{
	struct sync_file_info info = {0};

	GCHECK(ioctl(fd, SYNC_IOC_FILE_INFO, &info) == 0);
	return info.status;
}

bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void wait_sync_file(struct hb_client *c, int fd, int timeout_ms)
{
	uint64_t end = now_us() + (uint64_t)timeout_ms * 1000u;

	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = hb_get_fd(c), .events = POLLIN}};

		if (readable(fd))
			return;
		if (now_us() > end)
			fail(__LINE__, "sync_file not signalled within %d ms", timeout_ms);
		GCHECK(poll(p, p[1].fd >= 0 ? 2 : 1, 200) >= 0);
		if (p[1].fd >= 0 && p[1].revents)
			hb_dispatch(c, 0);
	}
}

int export_sync_file(int dmabuf, bool write)
{
	struct dma_buf_export_sync_file e = {.flags =
						 write ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_READ};

	GCHECK(ioctl(dmabuf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e) == 0);
	return e.fd;
}

void check_dmesg(void)
{
	static const char *const bad[] = {"WARNING:",
					  "BUG:",
					  "Oops",
					  "Call Trace",
					  "general protection",
					  "UBSAN",
					  "corruption",
					  "possible circular",
					  "lockdep"};
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	char *buf;
	int n;

	GCHECK(len > 0);
	buf = malloc((size_t)len + 1);
	GCHECK(buf != NULL);
	n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
	GCHECK(n >= 0);
	buf[n] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *hit = strstr(buf, bad[i]);

		if (hit) {
			char *line = hit;

			while (line > buf && line[-1] != '\n')
				line--;
			*strchrnul(hit, '\n') = '\0';
			fail(__LINE__, "the kernel log has \"%s\": %s", bad[i], line);
		}
	}
	free(buf);
	say("HBVM-STEP dmesg: no warning, oops or BUG");
}

static const struct hbvm_case_fn cases[] = {
    {"udmabuf", udmabuf_case},
    {"guests", guests_case},
    {"bench", bench_case},
    {"bells", bells_case},
    {"bellbench", bellbench_case},
};

int main(int argc, char **argv)
{
	/* The library says on stderr (the console) why it refuses a dma-buf. */
	setenv("HYPERBUF_DEBUG", "1", 1);
	return hbvm_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
