/*
 * The daemon's side of backends/backend.h: which host backends this hyperbufd has, and the
 * services it hands the one the config names. A backend reaches the daemon only through
 * these functions, never through its structs.
 */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "daemon/fdstore.h"
#include "daemon/hyperbufd.h"

static const struct {
	enum hbc_backend_kind kind;
	const struct hbb_host_ops *ops;
} backends[] = {
    {HBC_BACKEND_KVM, &hbk_host_ops},
#ifdef HB_WITH_XEN
    {HBC_BACKEND_XEN, &hbx_host_ops},
#endif
};

const struct hbb_host_ops *hbd_backend_find(enum hbc_backend_kind kind)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i].kind == kind)
			return backends[i].ops;
	return NULL;
}

/* Ends the domain's sessions; with attached_only, those that attached a pool (the others are
 * new guest processes still on their way to attaching a pool of their own). */
static void end_sessions(struct hbd *d, const struct hbd_domain *dom, bool attached_only,
			 const char *why)
{
	struct hbd_session *s;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		if (s->dom == dom && !s->closing && (!attached_only || s->attached))
			hbd_session_close(s, why);
	}
}

/*
 * A link going is a VM leaving its pool (KVM: its QEMU is gone, or its devices were unplugged):
 * peers hear DOMAIN_GONE, and once no link is left the sessions that had attached a pool end as
 * a disconnect would, which unexports what they exported and releases what they imported.
 * Closing the channel makes a live QEMU reconnect (reconnect=) and its guest process see EOF.
 * A session that attached nothing yet is not ended: it is a new process of the VM (an emulated
 * VM reconnecting) whose own ivshmem connections are on their way, and ending it would reset a
 * connect that did nothing wrong.
 */
static int svc_domain_link(void *ctx, uint32_t domain, bool up)
{
	struct hbd *d = ctx;
	struct hbd_domain *dom = hbd_domain_get(d, domain);

	if (!dom)
		return -ENOMEM;
	if (up) {
		dom->links++;
		dom->present = true;
		return 0;
	}
	dom->links--;
	hbd_domain_check_gone(d, dom, true);
	if (!dom->links)
		end_sessions(d, dom, true, "the VM's ivshmem connections closed");
	return 0;
}

static void svc_domain_dead(void *ctx, uint32_t domain, const char *why)
{
	struct hbd *d = ctx;
	struct hbd_domain *dom = hbd_domain_get(d, domain);

	if (dom)
		end_sessions(d, dom, false, why);
}

static int svc_session_open(void *ctx, uint32_t domain, int fd)
{
	struct hbd *d = ctx;
	struct hbd_domain *dom = hbd_domain_get(d, domain);
	struct hbc_cred cred;
	int r;

	if (!dom)
		return -ENOMEM;
	if (d->n_sessions >= HBD_MAX_SESSIONS || dom->conns >= d->cfg->sessions_per_domain)
		return -EUSERS;
	r = hbc_peer_cred(fd, &cred);
	if (r < 0)
		return r;
	/* The peer is our own socketpair: the domain is the vchan's, vouched for by Xen. */
	return hbd_session_new(d, fd, dom, HBD_DOOR_VM, NULL, &cred) ? 0 : -ENOMEM;
}

/* Sent straight into the creator's output, ahead of any reply in progress, so a client that
 * waits for the reply to Free handles it first (PROTOCOL.md, RECLAIMED). */
static void svc_reclaimed(void *ctx, const struct hbb_buffer *b)
{
	struct hbd *d = ctx;
	ServerMsg msg = SERVER_MSG__INIT;
	Event ev = EVENT__INIT;
	struct hbd_session *s;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		if (s->serial != b->creator)
			continue;
		if (s->closing)
			return;
		msg.body_case = SERVER_MSG__BODY_EVENT;
		msg.event = &ev;
		ev.type = HBP_WIRE_EVENT_RECLAIMED;
		ev.buffer = b->handle;
		ev.size = b->size;
		ev.domain = b->peer;
		hbd_session_send(s, &msg, -1);
		return;
	}
}

/* A lookup, not hbd_domain_get: the Xen backend's stats ask for every domain it serves, and
 * reading a statistic must not add a domain to the table. */
static uint64_t svc_pages_held(void *ctx, uint32_t domain)
{
	struct hbd *d = ctx;
	struct hbd_domain *dom;

	hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
	{
		if (dom->id == domain)
			return dom->pages;
	}
	return 0;
}

static uint64_t svc_pages_mapped(void *ctx, uint32_t domain)
{
	struct hbd *d = ctx;
	struct hbd_session *s;
	struct hbd_import *im;
	uint64_t pages = 0;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		if (s->dom->id != domain)
			continue;
		hbc_list_for_each_safe(im, &s->imports, struct hbd_import, link) pages +=
		    im->buf->mem.data_pages;
	}
	return pages;
}

static int svc_fd_take(void *ctx, const char *name)
{
	return hbd_fdstore_take(((struct hbd *)ctx)->fds, name);
}

static void svc_fd_keep(void *ctx, int fd, const char *name)
{
	hbd_fdstore_keep(((struct hbd *)ctx)->fds, fd, name);
}

static void svc_fd_forget(void *ctx, const char *name)
{
	hbd_fdstore_forget(((struct hbd *)ctx)->fds, name);
}

static const char *svc_fd_next(void *ctx, const char *prefix, size_t *cursor)
{
	return hbd_fdstore_next(((struct hbd *)ctx)->fds, prefix, cursor);
}

static void svc_state_put(void *ctx, uint64_t key, const void *data, size_t len)
{
	hbd_state_backend_put(ctx, key, data, len);
}

static void svc_state_drop(void *ctx, uint64_t key)
{
	hbd_state_backend_drop(ctx, key);
}

void hbd_backend_services_init(struct hbd *d, struct hbb_host_services *svc)
{
	*svc = (struct hbb_host_services){
	    .version = HBB_HOST_VERSION,
	    .ctx = d,
	    .loop = d->loop,
	    .cfg = d->cfg,
	    .domain_link = svc_domain_link,
	    .domain_dead = svc_domain_dead,
	    .session_open = svc_session_open,
	    .reclaimed = svc_reclaimed,
	    .pages_held = svc_pages_held,
	    .pages_mapped = svc_pages_mapped,
	    .fd_take = svc_fd_take,
	    .fd_keep = svc_fd_keep,
	    .fd_forget = svc_fd_forget,
	    .fd_next = svc_fd_next,
	    .state_put = svc_state_put,
	    .state_drop = svc_state_drop,
	};
}
