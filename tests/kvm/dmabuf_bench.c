/*
 * The bench case (make bench, tests/bench_vm.c): how fast a guest reads its pool through each
 * way of mapping the ivshmem BAR, in one boot. sysfs first (resource2: uncached;
 * resource2_wc: write-combining), since once hyperbuf.ko has registered the BAR as write-back
 * memory PAT refuses those; then hyperbuf.ko's node (write-back, cached).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmod/hyperbuf_kmod.h"
#include "tests/kvm/dmabuf.h"

#define PCI_DIR "/sys/bus/pci/devices"
#define ROUNDS  5

/* The first ivshmem device: its PCI address. */
static void first_ivshmem(char *bdf, size_t len)
{
	struct dirent *e;
	DIR *d = opendir(PCI_DIR);

	GCHECK(d != NULL);
	bdf[0] = '\0';
	while (!bdf[0] && (e = readdir(d))) {
		char path[512], id[32] = "";
		FILE *f;

		snprintf(path, sizeof(path), PCI_DIR "/%s/device", e->d_name);
		f = fopen(path, "r");
		if (f && fgets(id, sizeof(id), f) && strncmp(id, "0x1110", 6) == 0 &&
		    strlen(e->d_name) < len)
			memcpy(bdf, e->d_name, strlen(e->d_name) + 1);
		if (f)
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

int bench_case(int role)
{
	char bdf[64], path[512];
	struct stat st;
	double uc, wc, wb;

	first_ivshmem(bdf, sizeof(bdf));
	snprintf(path, sizeof(path), PCI_DIR "/%s/resource2", bdf);
	GCHECK(stat(path, &st) == 0);
	uc = read_mbps(path, (size_t)st.st_size);
	snprintf(path, sizeof(path), PCI_DIR "/%s/resource2_wc", bdf);
	wc = access(path, R_OK) == 0 ? read_mbps(path, (size_t)st.st_size) : 0;
	load_module("hyperbuf", NULL);
	snprintf(path, sizeof(path), HYPERBUF_POOL_PATH "%s", bdf);
	wb = read_mbps(path, (size_t)st.st_size);
	say("HBVM-INFO read_mbps_resource2=%.0f read_mbps_resource2_wc=%.0f read_mbps_kmod=%.0f",
	    uc, wc, wb);
	return 0;
}
