/*
 * The conformance suite's program in a Xen domU (docs/TESTING.md, "The Xen target"): the cases
 * of tests/conform/, serving the hub in dom0 (tests/xen/conform_dom0.c) over a vchan stream
 * (tests/xen/cf_stream.h) until it says QUIT. tests/xen/dom0-cases.sh starts it through the
 * domU agent as `hb-xen-conform serve DOMID`. Its roles connect as any domU application does:
 * hb_connect(NULL), the xen: transport. The sanitized build, as every program in the domUs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/conform/table.h"
#include "tests/xen/cf_raw.h"
#include "tests/xen/cf_stream.h"

/* dom0 publishes the stream once its daemon is up: a domU started first waits for it. */
#define CONNECT_TIMEOUT_MS 120000

int main(int argc, char **argv)
{
	pid_t relay;
	int fd, domid, rc, status;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3 || strcmp(argv[1], "serve") != 0 || (domid = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: %s serve DOMID\n", argv[0]);
		return 2;
	}
	fd = cfx_stream_connect(domid, CONNECT_TIMEOUT_MS, &relay);
	if (fd < 0) {
		perror("hb-xen-conform: the stream to dom0");
		return 1;
	}
	/* A role's raw stream (hostile cases) is a vchan of its own, as a client's. */
	cf_raw_guest(cfx_raw_open, false);
	printf("dom%d: serving the hub\n", domid);
	rc = cf_serve(fd, (uint32_t)domid, NULL);
	close(fd);
	while (waitpid(relay, &status, 0) < 0 && errno == EINTR)
		;
	if (rc != 0) {
		fprintf(stderr, "dom%d: the hub's stream ended without QUIT\n", domid);
		return 1;
	}
	printf("dom%d: done\n", domid);
	return 0;
}
