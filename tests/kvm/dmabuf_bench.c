/*
 * The bench case (make bench, tests/bench_vm.c): how fast a guest reads its pool through each
 * way of mapping the ivshmem BAR, in one boot. sysfs first (resource2: uncached;
 * resource2_wc: write-combining), since once hyperbuf.ko has claimed the BAR those are
 * refused; then hyperbuf.ko's node (write-back). It also says which memory type the kernel
 * really gave the BAR (PAT's list): a BAR the firmware put in the 32-bit PCI hole, which
 * SeaBIOS's MTRRs make uncachable, gets uncached-minus whatever the driver asks.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmod/hyperbuf_kmod.h"
#include "tests/kvm/dmabuf.h"

#define PCI_DIR "/sys/bus/pci/devices"
#define ROUNDS  5
#define SPAN    (16u << 20) /* bytes read of the pool */

/* The ivshmem device with the largest BAR2 (bench-vm gives one group a pool too big for the
 * 32-bit PCI hole): its PCI address. */
static void largest_ivshmem(char *bdf, size_t len)
{
	off_t best = 0;
	struct dirent *e;
	DIR *d = opendir(PCI_DIR);

	GCHECK(d != NULL);
	bdf[0] = '\0';
	while ((e = readdir(d))) {
		char path[512], id[32] = "";
		struct stat st;
		FILE *f;

		snprintf(path, sizeof(path), PCI_DIR "/%s/device", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(id, sizeof(id), f) && strncmp(id, "0x1110", 6) == 0 &&
		    strlen(e->d_name) < len) {
			snprintf(path, sizeof(path), PCI_DIR "/%s/resource2", e->d_name);
			if (stat(path, &st) == 0 && st.st_size > best) {
				best = st.st_size;
				memcpy(bdf, e->d_name, strlen(e->d_name) + 1);
			}
		}
		fclose(f);
	}
	closedir(d);
	GCHECK(bdf[0]);
}

static uint64_t read_all(volatile const uint64_t *p, size_t size)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < size / 8; i++)
		sum += p[i];
	return sum;
}

/* MB/s of reading the whole mapping, 8 bytes at a time: the best of ROUNDS reads after one
 * that faults the mapping in. */
static double read_mbps(const char *path, size_t size)
{
	uint64_t sum, best = UINT64_MAX;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *m;

	GCHECK(fd >= 0);
	m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		fail(__LINE__, "mmap %s", path);
	close(fd);
	sum = read_all(m, size);
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t t0 = now_us();

		sum += read_all(m, size);
		if (now_us() - t0 < best)
			best = now_us() - t0;
	}
	munmap(m, size);
	say("HBVM-STEP %s: %zu bytes in %llu us at best of %d (checksum %llx)", path, size,
	    (unsigned long long)best, ROUNDS, (unsigned long long)sum);
	return (double)size / (double)(best ? best : 1);
}

/* The memory type PAT gave the BAR at start (debugfs's pat_memtype_list), into type. */
static void bar_memtype(const char *bdf, char *type, size_t len)
{
	unsigned long long start = 0, end, flags;
	char path[512], line[256], want[40];
	FILE *f;

	snprintf(path, sizeof(path), PCI_DIR "/%s/resource", bdf);
	f = fopen(path, "r");
	GCHECK(f != NULL);
	for (int i = 0; i <= 2 && fgets(line, sizeof(line), f); i++)
		GCHECK(sscanf(line, "%llx %llx %llx", &start, &end, &flags) == 3);
	fclose(f);
	mkdir("/sys/kernel/debug", 0755);
	mount("none", "/sys/kernel/debug", "debugfs", 0, NULL);
	f = fopen("/sys/kernel/debug/x86/pat_memtype_list", "r");
	snprintf(type, len, "unknown");
	snprintf(want, sizeof(want), "[mem 0x%016llx-", start);
	while (f && fgets(line, sizeof(line), f)) {
		char *hit = strstr(line, want), *t = hit ? strstr(hit, "] ") : NULL;

		if (t) {
			snprintf(type, len, "%s", t + 2);
			type[strcspn(type, "\n")] = '\0';
		}
	}
	if (f)
		fclose(f);
	say("HBVM-STEP BAR2 of %s at %#llx: %s", bdf, start, type);
}

int bench_case(int role)
{
	char bdf[64], path[512], type[64];
	struct stat st;
	double uc, wc, wb;
	size_t span;

	largest_ivshmem(bdf, sizeof(bdf));
	snprintf(path, sizeof(path), PCI_DIR "/%s/resource2", bdf);
	GCHECK(stat(path, &st) == 0);
	span = (size_t)st.st_size < SPAN ? (size_t)st.st_size : SPAN;
	uc = read_mbps(path, span);
	snprintf(path, sizeof(path), PCI_DIR "/%s/resource2_wc", bdf);
	wc = access(path, R_OK) == 0 ? read_mbps(path, span) : 0;
	load_module("hyperbuf", NULL);
	snprintf(path, sizeof(path), HYPERBUF_POOL_PATH "%s", bdf);
	wb = read_mbps(path, span);
	bar_memtype(bdf, type, sizeof(type));
	say("HBVM-INFO read_mbps_resource2=%.0f read_mbps_resource2_wc=%.0f read_mbps_kmod=%.0f "
	    "kmod_memtype=%s",
	    uc, wc, wb, type);
	return 0;
}
