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
#define ROUNDS  4

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

/* MB/s of reading the whole mapping ROUNDS times, 8 bytes at a time. */
static double read_mbps(const char *path, size_t size)
{
	volatile const uint64_t *p;
	uint64_t sum = 0, t0, us;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *m;

	GCHECK(fd >= 0);
	m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		fail(__LINE__, "mmap %s", path);
	close(fd);
	p = m;
	t0 = now_us();
	for (int r = 0; r < ROUNDS; r++)
		for (size_t i = 0; i < size / 8; i++)
			sum += p[i];
	us = now_us() - t0;
	munmap(m, size);
	say("HBVM-STEP %s: %zu bytes x %d in %llu us (checksum %llx)", path, size, ROUNDS,
	    (unsigned long long)us, (unsigned long long)sum);
	return (double)size * ROUNDS / (double)(us ? us : 1);
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
