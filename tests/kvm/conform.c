/*
 * The conformance suite's guest program (tests/test_vm_conform.c, docs/TESTING.md): the cases
 * of tests/conform/, built static into their own image. tests/kvm/init runs it as
 * `/hbguest serve ROLE` (ROLE: this VM's domain); it serves the hub on the virtio-serial port
 * "hbconform" until the hub says QUIT, running each role it is sent in a child. Its roles
 * connect as any guest application does: hb_connect(NULL).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
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
	say("HBVM-STEP serving the hub as domain %s", argv[2]);
	if (cf_serve(fd, (uint32_t)atoi(argv[2]), NULL) != 0)
		fail(__LINE__, "the hub's stream ended without QUIT");
	say("HBVM-PASS");
	return 0;
}
