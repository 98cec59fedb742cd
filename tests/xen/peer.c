/*
 * hb-xen-peer: the program the Xen cases run in dom0 and in the domUs. It uses the public API
 * only and connects with hb_connect(NULL), so it runs unchanged in a Xen domain, a KVM guest
 * and as an emulated VM. Subcommands print what they did and exit 0 on success.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hyperbuf.h"

static int cmd_probe(void)
{
	struct hb_client *c = hb_connect(NULL);

	if (!c) {
		printf("probe: hb_connect: %s\n", strerror(errno));
		return 1;
	}
	printf("probe: connected as domain %u\n", hb_self_domain(c));
	hb_disconnect(c);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "probe") == 0)
		return cmd_probe();
	fprintf(stderr, "usage: hb-xen-peer probe\n");
	return 2;
}
