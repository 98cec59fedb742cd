/* Connecting, the welcome, and tearing a client down. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/xen/client.h"
#include "libclient/private.h"

void hbl_lock(struct hb_client *c)
{
	pthread_mutex_lock(&c->lock);
}

void hbl_unlock(struct hb_client *c)
{
	pthread_mutex_unlock(&c->lock);
}

int hbl_fail(int neg_errno)
{
	errno = -neg_errno;
	return -1;
}

enum hb_address_kind { HB_ADDR_UNIX, HB_ADDR_VM, HB_ADDR_KVM, HB_ADDR_XEN };

/*
 * Splits an address into its kind and path. "unix:PATH" and "vm:PATH" need a path that fits
 * sun_path. "kvm:" is a KVM guest's: the first free virtio-serial port org.hyperbuf.N, or with
 * "kvm:PATH" the port device at PATH (kvm.c). "xen:" (a vchan to the daemon in dom0,
 * backends/xen/client.c) takes none.
 */
static int parse_address(const char *address, enum hb_address_kind *kind, const char **path)
{
	static const struct {
		const char *prefix;
		int kind; /* enum hb_address_kind, or -errno for a known but missing transport */
	} forms[] = {
	    {"unix:", HB_ADDR_UNIX},
	    {"vm:", HB_ADDR_VM},
	    {"kvm:", HB_ADDR_KVM},
	    {"xen:", HB_ADDR_XEN},
	};
	struct sockaddr_un sun;

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		size_t n = strlen(forms[i].prefix);
		if (strncmp(address, forms[i].prefix, n) != 0)
			continue;
		if (forms[i].kind < 0)
			return forms[i].kind;
		*kind = forms[i].kind;
		*path = address + n;
		if (*kind == HB_ADDR_KVM)
			return (*path)[0] == '\0' || (*path)[0] == '/' ? 0 : -EINVAL;
		if (*kind == HB_ADDR_XEN)
			return (*path)[0] == '\0' ? 0 : -EINVAL;
		if ((*path)[0] == '\0' || strlen(*path) >= sizeof(sun.sun_path))
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

/* Takes what the welcome says, after checking what we rely on. */
static int take_welcome(struct hb_client *c, const Welcome *w)
{
	if (w->version != HBP_PROTOCOL_VERSION)
		return -EPROTO;
	if (w->event_queue == 0 || w->event_queue > HBP_EVENT_QUEUE_LIMIT)
		return -EPROTO;
	if (w->n_groups > HBP_MAX_GROUPS)
		return -EPROTO;
	c->domain = w->domain;
	/* Our own limit caps the daemon's: hb_export refuses above either, never truncates. */
	c->meta_max = w->meta_max < HB_META_MAX ? w->meta_max : HB_META_MAX;
	c->event_depth = w->event_queue;
	c->frame_max = w->frame_max && w->frame_max < HBP_FRAME_MAX ? w->frame_max : HBP_FRAME_MAX;

	if (w->memory == HBP_MEMORY_GRANTS) {
		/* Xen: we grant and map pages ourselves; there are no pools. */
		if (w->n_groups)
			return -EPROTO;
		c->grants = true;
		return hbx_grants_open(c);
	}
	if (w->memory != HBP_MEMORY_POOL)
		return -EPROTO;
	if (w->n_groups == 0)
		return 0;
	c->groups = calloc(w->n_groups, sizeof(*c->groups));
	if (!c->groups)
		return -ENOMEM;
	for (size_t i = 0; i < w->n_groups; i++) {
		struct hbl_group *g = &c->groups[i];
		hbk_pool_window_init(&g->win);
		g->iv_fd = -1;
		g->iv_msg_fd = -1;
	}
	c->n_groups = w->n_groups;
	for (size_t i = 0; i < w->n_groups; i++) {
		const GroupInfo *gi = w->groups[i];
		for (size_t j = 0; j < i; j++)
			if (c->groups[j].id == gi->id)
				return -EPROTO;
		c->groups[i].id = gi->id;
		c->groups[i].pool_size = gi->pool_size;
		c->groups[i].pool_instance = gi->pool_instance;
	}
	return 0;
}

/* Hello, then the welcome, then every group it lists. */
static int hello(struct hb_client *c)
{
	Hello h = HELLO__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbl_reply reply;
	int r;

	h.version = HBP_PROTOCOL_VERSION;
	h.role = HBP_ROLE_CLIENT;
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &h;
	r = hbl_call(c, &m, SERVER_MSG__BODY_WELCOME, &reply);
	if (r < 0)
		return r;
	r = take_welcome(c, reply.msg->welcome);
	if (r == 0)
		r = hbl_attach_groups(c, reply.msg->welcome);
	hbl_reply_free(&reply);
	return r;
}

static void client_destroy(struct hb_client *c)
{
	while (c->buffers)
		hbl_buffer_destroy(c->buffers);
	while (c->imports)
		hbl_import_destroy(c->imports);
	hbl_fences_destroy(c);
	hbl_timelines_destroy(c);
	/* The channel first: the daemon ends the session on its EOF. Then the ivshmem sockets,
	 * whose closing tells it an emulated VM is gone (a port says goodbye instead). */
	if (c->tp)
		c->tp->close(c);
	hbx_fini(c);
	for (size_t i = 0; i < c->n_groups; i++)
		hbl_group_close(&c->groups[i]);
	free(c->groups);
	hbc_close_fds(c->rx_fds, &c->rx_nfds);
	hbp_bytes_free(&c->rx);
	hbp_bytes_free(&c->tx);
	hbl_events_free(c);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

HBL_PUBLIC struct hb_client *hb_connect(const char *address)
{
	enum hb_address_kind kind;
	const char *path;
	struct hb_client *c;
	int r;

	if (!address) {
		address = secure_getenv(HBL_ADDRESS_ENV);
		/* The platform default: a vchan to dom0 inside a Xen guest, else the host
		 * socket. */
		if (!address || address[0] == '\0')
			address = hbx_in_guest() ? "xen:" : hbl_kvm_guest() ? "kvm:" : HBL_DEFAULT_ADDRESS;
	}
	r = parse_address(address, &kind, &path);
	if (r < 0)
		goto err;
	c = calloc(1, sizeof(*c));
	if (!c) {
		r = -ENOMEM;
		goto err;
	}
	r = pthread_mutex_init(&c->lock, NULL);
	if (r != 0) {
		free(c);
		r = -r;
		goto err;
	}
	c->fd = -1;
	c->vm = kind == HB_ADDR_VM;
	c->port = kind == HB_ADDR_KVM;
	c->next_id = 1;
	/* Until the welcome says otherwise. */
	c->event_depth = 256;
	c->frame_max = HBP_FRAME_MAX;
	c->ev_spare = malloc(sizeof(*c->ev_spare));
	if (!c->ev_spare) {
		r = -ENOMEM;
		goto err_client;
	}

	if (kind == HB_ADDR_XEN) {
		r = hbx_connect(c);
		if (r < 0)
			goto err_client;
	} else {
		r = c->port ? hbl_kvm_open(path[0] ? path : NULL) : hbc_unix_connect(path);
		if (r < 0)
			goto err_client;
		c->fd = r;
		c->tp = c->port ? &hbl_port_transport : &hbl_socket_transport;
	}
	r = hello(c);
	if (r < 0)
		goto err_client;
	return c;

err_client:
	client_destroy(c);
err:
	errno = -r;
	return NULL;
}

HBL_PUBLIC void hb_disconnect(struct hb_client *c)
{
	int saved = errno;

	if (!c)
		return;
	/* No Free or Release messages: closing the session makes the daemon unexport, free and
	 * release everything it holds for us (PROTOCOL.md §6), importers keeping their pages. */
	client_destroy(c);
	errno = saved;
}

HBL_PUBLIC uint32_t hb_self_domain(const struct hb_client *c)
{
	if (!c) {
		errno = EINVAL;
		return UINT32_MAX;
	}
	return c->domain;
}

HBL_PUBLIC int hb_get_fd(const struct hb_client *c)
{
	int r;

	if (!c)
		return hbl_fail(-EINVAL);
	r = hbl_broken(c);
	if (r < 0)
		return hbl_fail(r);
	return c->fd;
}
