/* libhyperbuf built without libxen-dev: no xen: transport, no grant-based buffers. */
#include <errno.h>

#include "backends/backend.h"

bool hbx_in_guest(void)
{
	return false;
}

int hbx_vchan_open(struct hbb_transport *t)
{
	return -ENOTSUP;
}

static int none_open(const struct hbb_guest_services *svc, const Welcome *w,
		     enum hbb_attach_mode mode, void **state)
{
	return -ENOTSUP;
}

const struct hbb_guest_ops hbx_guest_ops = {
    .version = HBB_GUEST_VERSION,
    .name = "xen (not built)",
    .open = none_open,
};
