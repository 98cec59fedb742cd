/* The client's memory: which guest side of a backend, and what the library does for it. */
#include <errno.h>

#include "libclient/client.h"
#include "protocol/limits.h"

static int svc_request(void *ctx, ClientMsg *msg, ServerMsg__BodyCase want, struct hbb_reply *reply)
{
	return hbl_call(ctx, msg, want, reply);
}

static int svc_pump(void *ctx)
{
	int r = hbl_pump(ctx, HBL_DISPATCH_BATCH);

	return r < 0 ? r : 0;
}

int hbl_memory_open(struct hb_client *c, const Welcome *w, enum hbb_attach_mode mode)
{
	struct hbl_memory *mem = &c->mem;
	const struct hbb_guest_ops *ops;
	int r;

	if (w->memory == HBP_MEMORY_POOL)
		ops = &hbk_guest_ops;
	else if (w->memory == HBP_MEMORY_GRANTS)
		ops = &hbx_guest_ops;
	else
		return -EPROTO;
	mem->svc = (struct hbb_guest_services){
	    .version = HBB_GUEST_VERSION,
	    .ctx = c,
	    .request = svc_request,
	    .reply_free = hbl_reply_free,
	    .pump = svc_pump,
	    .channel_fd = c->conn.tp.fd,
	};
	r = ops->open(&mem->svc, w, mode, &mem->state);
	if (r == 0)
		mem->ops = ops;
	return r;
}

void hbl_memory_close(struct hb_client *c)
{
	if (c->mem.ops)
		c->mem.ops->close(c->mem.state);
	c->mem.ops = NULL;
	c->mem.state = NULL;
}
