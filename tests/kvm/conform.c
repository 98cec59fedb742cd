/*
 * The conformance suite's guest program (tests/test_vm_conform.c, docs/TESTING.md): the cases
 * of tests/conform/, built static into their own image. tests/kvm/init runs it as
 * `/hbguest serve ROLE` (ROLE: this VM's domain); it serves the hub on the virtio-serial port
 * "hbconform" until the hub says QUIT, running each role it is sent in a child. Its roles
 * connect as any guest application does: hb_connect(NULL).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "protocol/limits.h"
#include "tests/conform/table.h"
#include "tests/kvm/report.h"

#define SIDE_PORT "hbconform"

/* The port's device, found by its name as the library finds its own. */
static int open_side_port(void)
{
	DIR *dir = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int fd = -1;

	if (!dir)
		return -1;
	while (fd < 0 && (e = readdir(dir)) != NULL) {
		char path[300], name[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(name, sizeof(name), f))
			name[0] = '\0';
		fclose(f);
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, SIDE_PORT) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/%s", e->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
	}
	closedir(dir);
	return fd;
}

/* A role's raw stream (hostile cases): the guest's port, opened as the library opens it (its
 * resync marker sent and answered: a fresh session). */
static int raw_port(pid_t *relay)
{
	struct hbb_transport t;
	int r = hbk_port_open(NULL, &t);

	*relay = 0;
	return r < 0 ? r : t.fd;
}

/* A sysfs file of a PCI device: its first line, or "". */
static void pci_line(const char *bdf, const char *file, char *out, size_t len)
{
	char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, file);
	out[0] = '\0';
	f = fopen(path, "r");
	if (f && !fgets(out, (int)len, f))
		out[0] = '\0';
	if (f)
		fclose(f);
}

/* The device's IVPosition register: BAR0 offset 8, read as a 32-bit word. */
static int ivposition(const char *bdf, uint32_t *out)
{
	char path[300];
	void *regs;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	regs = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (regs == MAP_FAILED)
		return -errno;
	*out = *(volatile uint32_t *)((uint8_t *)regs + 8);
	munmap(regs, 4096);
	return 0;
}

/* BAR2 of the device whose pool header names group, if it is this one; else -ENODEV. The
 * header is a hint any member may write (backends/kvm/bars.c): good enough for a test. */
static int bar_if_group(const char *bdf, uint32_t group, uint64_t size, uint32_t *peer_id)
{
	char path[300];
	struct hbp_pool_header h;
	struct stat st;
	void *mem;
	int fd, r = -ENODEV;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource2", bdf);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != size)
		goto out;
	mem = mmap(NULL, sizeof(h), PROT_READ, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED)
		goto out;
	memcpy(&h, mem, sizeof(h));
	munmap(mem, sizeof(h));
	if (memcmp(h.magic, HBP_POOL_MAGIC, sizeof(h.magic)) != 0 || h.group != group ||
	    h.size != size)
		goto out;
	r = ivposition(bdf, peer_id);
out:
	if (r < 0 && fd >= 0)
		close(fd);
	return r < 0 ? r : fd;
}

/* A role's pool (conform.h, cf_pool_open): the BAR2 of the guest's ivshmem device (PCI
 * 1af4:1110) for the group, through sysfs, as the library maps it without hyperbuf.ko (this
 * image does not load it). */
static int pool_bar(uint32_t group, uint64_t size, uint32_t *peer_id)
{
	DIR *dir = opendir("/sys/bus/pci/devices");
	struct dirent *e;
	int fd = -ENODEV;

	if (!dir)
		return -ENODEV;
	while (fd == -ENODEV && (e = readdir(dir)) != NULL) {
		char v[32], d[32];

		if (e->d_name[0] == '.')
			continue;
		pci_line(e->d_name, "vendor", v, sizeof(v));
		pci_line(e->d_name, "device", d, sizeof(d));
		if (strtoul(v, NULL, 16) == 0x1af4 && strtoul(d, NULL, 16) == 0x1110)
			fd = bar_if_group(e->d_name, group, size, peer_id);
	}
	closedir(dir);
	return fd;
}

int main(int argc, char **argv)
{
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3 || strcmp(argv[1], "serve") != 0) {
		fprintf(stderr, "usage: %s serve DOMAIN\n", argv[0]);
		return 2;
	}
	hbvm_case = "conform";
	fd = open_side_port();
	if (fd < 0)
		fail(__LINE__, "no virtio port named %s", SIDE_PORT);
	cf_raw_guest(raw_port, true);
	cf_pool_guest(pool_bar);
	say("HBVM-STEP serving the hub as domain %s", argv[2]);
	if (cf_serve(fd, (uint32_t)atoi(argv[2]), NULL) != 0)
		fail(__LINE__, "the hub's stream ended without QUIT");
	say("HBVM-PASS");
	return 0;
}
