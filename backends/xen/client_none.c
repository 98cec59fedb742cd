/* libhyperbuf built without libxen-dev: no xen: transport, no grant-based buffers. */
#include <errno.h>

#include "backends/xen/client.h"
#include "libclient/private.h"

bool hb_xen_in_guest(void)
{
	return false;
}

int hb_xen_connect(struct hb_client *c)
{
	return -ENOTSUP;
}

int hb_xen_grants_open(struct hb_client *c)
{
	return -ENOTSUP;
}

void hb_xen_fini(struct hb_client *c)
{
}

int hb_xen_alloc_check(struct hb_client *c, uint64_t size)
{
	return -ENOTSUP;
}

int hb_xen_buffer_make(struct hb_client *c, uint64_t handle, uint32_t peer, uint64_t size,
		       uint32_t flags, struct hb_mapping *m)
{
	return -ENOTSUP;
}

void hb_xen_buffer_park(struct hb_client *c, uint64_t handle, struct hb_mapping *m)
{
}

void hb_xen_reclaimed(struct hb_client *c, uint64_t handle)
{
}

int hb_xen_import_map(struct hb_client *c, const BufferDesc *desc, uint32_t exporter, bool writable,
		      struct hb_mapping *m)
{
	return -ENOTSUP;
}

void hb_xen_unmap(struct hb_mapping *m)
{
}

void hb_xen_domain_gone(struct hb_client *c, uint32_t domid)
{
}
