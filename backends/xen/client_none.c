/* libhyperbuf built without libxen-dev: no xen: transport, no grant-based buffers. */
#include <errno.h>

#include "backends/xen/client.h"
#include "libclient/private.h"

bool hbx_in_guest(void)
{
	return false;
}

int hbx_connect(struct hb_client *c)
{
	return -ENOTSUP;
}

int hbx_grants_open(struct hb_client *c)
{
	return -ENOTSUP;
}

void hbx_fini(struct hb_client *c)
{
}

int hbx_alloc_check(struct hb_client *c, uint64_t size)
{
	return -ENOTSUP;
}

int hbx_buffer_make(struct hb_client *c, uint64_t handle, uint32_t peer, uint64_t size,
		       uint32_t flags, struct hbl_mapping *m)
{
	return -ENOTSUP;
}

void hbx_buffer_park(struct hb_client *c, uint64_t handle, struct hbl_mapping *m)
{
}

void hbx_reclaimed(struct hb_client *c, uint64_t handle)
{
}

int hbx_import_map(struct hb_client *c, const BufferDesc *desc, uint32_t exporter, bool writable,
		      struct hbl_mapping *m)
{
	return -ENOTSUP;
}

void hbx_unmap(struct hbl_mapping *m)
{
}

void hbx_domain_gone(struct hb_client *c, uint32_t domid)
{
}
