/* Imports: map another domain's exported buffer, keep its metadata, release it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "libclient/client.h"

static int send_release(struct hb_client *c, uint64_t handle)
{
	Release rel = RELEASE__INIT;
	ClientMsg m = CLIENT_MSG__INIT;

	rel.import = handle;
	m.body_case = CLIENT_MSG__BODY_RELEASE;
	m.release = &rel;
	return hbl_call_simple(c, &m);
}

struct hb_import *hbl_import_map(struct hb_client *c, const ImportReply *ir, const struct hb_id *id,
				 bool writable, int *err)
{
	/* The frame codec bounded the metadata by HBP_META_LIMIT == HB_META_MAX. */
	struct hb_import *im = calloc(1, sizeof(*im) + ir->meta.len);
	int r;

	if (!im) {
		*err = -ENOMEM;
		return NULL;
	}
	/* Read-only unless asked: the mapping itself enforces it, a write faults. On Xen the
	 * grants are the exporter's (read-only ones unless it allowed writing). */
	r = c->mem.ops->import(c->mem.state, ir, writable, &im->map);
	if (r < 0) {
		free(im);
		*err = r;
		return NULL;
	}
	im->client = c;
	im->handle = ir->import;
	im->hid = *id;
	im->exporter = ir->exporter;
	im->flags = ir->flags;
	im->writable = writable;
	im->meta_len = (uint32_t)ir->meta.len;
	if (ir->meta.len)
		memcpy(im->meta, ir->meta.data, ir->meta.len);
	return im;
}

HBL_PUBLIC struct hb_import *hb_import(struct hb_client *c, const struct hb_id *id, uint32_t flags)
{
	Import imp = IMPORT__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	const ImportReply *ir;
	struct hb_import *im;
	uint64_t handle;
	int r;

	if (!c || !id || (flags & ~HB_IMPORT_WRITE))
		return errno = EINVAL, NULL;
	hbl_lock(c);
	/* The event that told of it may have brought the import with it (hold.c). */
	im = hbl_hold_take(c, id, flags);
	if (im) {
		hbl_unlock(c);
		return im;
	}
	imp.hid.len = sizeof(id->bytes);
	imp.hid.data = (uint8_t *)id->bytes;
	imp.flags = flags;
	m.body_case = CLIENT_MSG__BODY_IMPORT;
	m.import = &imp;
	r = hbl_call(c, &m, SERVER_MSG__BODY_IMPORT, &reply);
	if (r < 0)
		goto err_unlock;
	ir = reply.msg->import;
	handle = ir->import;
	im = hbl_import_map(c, ir, id, flags & HB_IMPORT_WRITE, &r);
	if (!im)
		goto err_reply;
	hbl_reply_free(&reply);
	hbc_list_insert_tail(&c->imports, &im->link);
	hbl_unlock(c);
	return im;

err_reply:
	hbl_reply_free(&reply);
	/* The daemon counts this import (and told the exporter): give it back. */
	send_release(c, handle);
err_unlock:
	hbl_unlock(c);
	errno = -r;
	return NULL;
}

HBL_PUBLIC void *hb_import_data(struct hb_import *im)
{
	if (!im)
		return errno = EINVAL, NULL;
	return im->map.data;
}

HBL_PUBLIC size_t hb_import_size(const struct hb_import *im)
{
	if (!im) {
		errno = EINVAL;
		return 0;
	}
	return im->map.size;
}

HBL_PUBLIC ssize_t hb_import_metadata(const struct hb_import *im, void *buf, size_t len)
{
	if (!im || (!buf && len > 0))
		return hbl_fail(-EINVAL);
	if (len > im->meta_len)
		len = im->meta_len;
	if (len)
		memcpy(buf, im->meta, len);
	return (ssize_t)im->meta_len;
}

void hbl_import_destroy(struct hb_import *im)
{
	struct hbl_memory *mem = &im->client->mem;

	hbc_list_remove(&im->link);
	hbl_dmabufs_close(&im->dmabufs);
	mem->ops->unmap(mem->state, &im->map);
	free(im);
}

void hbl_imports_peer_gone(struct hb_client *c, uint32_t domain)
{
	struct hbl_memory *mem = &c->mem;
	struct hb_import *im;

	if (!mem->ops || !mem->ops->peer_gone)
		return;
	hbc_list_for_each_safe(im, &c->imports, struct hb_import, link)
	{
		if (im->exporter == domain)
			mem->ops->peer_gone(mem->state, domain, &im->map);
	}
}

HBL_PUBLIC void hb_import_release(struct hb_import *im)
{
	struct hb_client *c;
	uint64_t handle;
	int saved = errno;

	if (!im)
		return;
	c = im->client;
	hbl_lock(c);
	/* A dma-buf of it that is still held keeps it (docs/DMABUF.md). */
	if (hbl_import_linger(im)) {
		hbl_unlock(c);
		errno = saved;
		return;
	}
	/* Unmap first, then tell: when the daemon hears of the release the pages are no
	 * longer ours, so the exporter may end its grants (Xen) or the pool may reuse them.
	 * The mapping goes whatever the daemon says: after this call the caller has no way to
	 * reach it anyway. */
	handle = im->handle;
	hbl_import_destroy(im);
	if (hbl_conn_broken(&c->conn) == 0)
		send_release(c, handle);
	hbl_unlock(c);
	errno = saved;
}
