/*
 * Attach: how a client tells the daemon it reached a group's pool. A host process gets the
 * pool memfd with the reply; a VM names the ivshmem peer id it was given (ivshmem_client.c,
 * bars.c), which is how the daemon ties that ivshmem connection to the VM.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/kvm/guest.h"

int hbk_send_attach(struct hbk_guest *k, struct hbk_group *g, uint32_t peer_id,
		    struct hbb_reply *reply)
{
	Attach a = ATTACH__INIT;
	ClientMsg m = CLIENT_MSG__INIT;

	a.group = g->id;
	a.ivshmem_peer = peer_id;
	m.body_case = CLIENT_MSG__BODY_ATTACH;
	m.attach = &a;
	return k->svc->request(k->svc->ctx, &m, SERVER_MSG__BODY__NOT_SET, reply);
}

/* A host process maps the pool from the memfd that comes with Attach's reply; or, when the
 * daemon gave it doorbells (it announced fence slots), the reply's fd is a connection of its
 * own to the group's ivshmem server, and the pool comes through that as to an emulated VM. */
int hbk_host_attach(struct hbk_guest *k, struct hbk_group *g)
{
	struct hbb_reply reply;
	struct stat st;
	int fd, r;

	r = hbk_send_attach(k, g, 0, &reply);
	if (r < 0)
		return r;
	if (reply.nfds != 1) {
		k->svc->reply_free(&reply);
		return -EPROTO;
	}
	fd = reply.fds[0];
	reply.nfds = 0;
	k->svc->reply_free(&reply);
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (S_ISSOCK(st.st_mode))
		return hbk_ivshmem_adopt_fd(k, g, fd);
	return hbk_pool_window_open(&g->win, fd, g->id, g->pool_size, g->pool_instance,
				    HBK_POOL_WINDOW_SEALED);
}
