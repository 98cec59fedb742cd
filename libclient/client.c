/* Connecting, the welcome, and tearing a client down: the file that wires the parts together. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/un.h>

#include "common/log.h"
#include "libclient/client.h"
#include "protocol/limits.h"

#define HBL_DEFAULT_ADDRESS "unix:/run/hyperbuf/hyperbufd.sock"
#define HBL_ADDRESS_ENV     "HYPERBUF_ADDRESS"
#define HBL_DEBUG_ENV       "HYPERBUF_DEBUG"
#define HBL_SIGNALS_ENV     "HYPERBUF_SIGNALS"

/*
 * Splits an address into its kind and path. "unix:PATH" and "vm:PATH" need a path that fits
 * sun_path; a bare absolute path is taken as "unix:PATH" (what people put in
 * HYPERBUF_ADDRESS). "kvm:" is a KVM guest's: the first free virtio-serial port org.hyperbuf.N, or
 * with "kvm:PATH" the port device at PATH (backends/kvm/port.c). "xen:" (a vchan to the daemon in
 * dom0, backends/xen/vchan_client.c) takes none.
 */
static int parse_address(const char *address, enum hbl_address_kind *kind, const char **path)
{
	static const struct {
		const char *prefix;
		enum hbl_address_kind kind;
	} forms[] = {
	    {"unix:", HBL_ADDR_UNIX},
	    {"vm:", HBL_ADDR_VM},
	    {"kvm:", HBL_ADDR_KVM},
	    {"xen:", HBL_ADDR_XEN},
	};
	struct sockaddr_un sun;

	if (address[0] == '/') {
		*kind = HBL_ADDR_UNIX;
		*path = address;
		return strlen(address) < sizeof(sun.sun_path) ? 0 : -ENAMETOOLONG;
	}
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		size_t n = strlen(forms[i].prefix);

		if (strncmp(address, forms[i].prefix, n) != 0)
			continue;
		*kind = forms[i].kind;
		*path = address + n;
		if (*kind == HBL_ADDR_KVM)
			return (*path)[0] == '\0' || (*path)[0] == '/' ? 0 : -EINVAL;
		if (*kind == HBL_ADDR_XEN)
			return (*path)[0] == '\0' ? 0 : -EINVAL;
		if ((*path)[0] == '\0' || strlen(*path) >= sizeof(sun.sun_path))
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

/* The address NULL stands for: $HYPERBUF_ADDRESS, else the platform's default. */
static const char *default_address(void)
{
	const char *address = secure_getenv(HBL_ADDRESS_ENV);

	if (address && address[0])
		return address;
	/* A vchan to dom0 inside a Xen guest, a port inside a KVM guest, else the host socket. */
	return hbx_in_guest() ? "xen:" : hbk_in_guest() ? "kvm:" : HBL_DEFAULT_ADDRESS;
}

static int open_transport(struct hb_client *c, enum hbl_address_kind kind, const char *path)
{
	switch (kind) {
	case HBL_ADDR_XEN:
		return hbx_vchan_open(&c->conn.tp);
	case HBL_ADDR_KVM:
		return hbk_port_open(path[0] ? path : NULL, &c->conn.tp);
	default:
		return hbl_conn_open_socket(&c->conn, path);
	}
}

/* Takes what the welcome says, after checking what we rely on. */
static int take_welcome(struct hb_client *c, const Welcome *w)
{
	if (w->version != HBP_PROTOCOL_VERSION)
		return -EPROTO;
	if (w->event_queue == 0 || w->event_queue > HBP_EVENT_QUEUE_LIMIT)
		return -EPROTO;
	c->domain = w->domain;
	/* Our own limit caps the daemon's: hb_export refuses above either, never truncates. */
	c->meta_max = w->meta_max < HB_META_MAX ? w->meta_max : HB_META_MAX;
	c->events.depth = w->event_queue;
	c->conn.frame_max =
	    w->frame_max && w->frame_max < HBP_FRAME_MAX ? w->frame_max : HBP_FRAME_MAX;
	hbl_take_resume(c, w);
	return 0;
}

void hbl_take_resume(struct hb_client *c, const Welcome *w)
{
	/* No token: the daemon keeps nothing across a restart, and a lost stream is the end. */
	c->conn.resumable = w->token.len == HBP_TOKEN_LEN;
	/* A restart may bring a daemon of another version: what it understands, again. */
	c->features = w->features & c->offered;
	if (c->conn.resumable)
		memcpy(c->resume.token, w->token.data, HBP_TOKEN_LEN);
	c->resume.ms = w->resume_ms ? w->resume_ms : 10000;
}

int hbl_pub_fd_sync(struct hb_client *c)
{
	struct pollfd pfd[HBL_POLLFDS_MAX];
	size_t n = hbl_pollfds(c, pfd, sizeof(pfd) / sizeof(pfd[0]));

	for (size_t i = 0; i < n; i++) {
		/* The fd in data: hb_dispatch reads only what its epoll_wait names. */
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = pfd[i].fd};

		if (epoll_ctl(c->conn.pub_fd, EPOLL_CTL_ADD, pfd[i].fd, &ev) < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

/* hb_get_fd's descriptor: an epoll set of every fd the client reads, so that it stays the same
 * when a resume replaces the transport. */
static int make_pub_fd(struct hb_client *c)
{
	c->conn.pub_fd = epoll_create1(EPOLL_CLOEXEC);
	if (c->conn.pub_fd < 0)
		return -errno;
	return hbl_pub_fd_sync(c);
}

/* Hello, then the welcome, then the memory it describes (every group attached). */
static int hello(struct hb_client *c, enum hbb_attach_mode mode)
{
	Hello h = HELLO__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	int r;

	/* Slots need a doorbell of our own: an emulated VM has one (its ivshmem server's
	 * eventfds), a host process gets one with Attach, and a KVM guest may (hyperbuf.ko's
	 * vector 0). Without one, the watch tells. */
	h.version = HBP_PROTOCOL_VERSION;
	h.role = HBP_ROLE_CLIENT;
	h.features = c->offered;
	m.body_case = CLIENT_MSG__BODY_HELLO;
	m.hello = &h;
	r = hbl_call(c, &m, SERVER_MSG__BODY_WELCOME, &reply);
	if (r < 0)
		return r;
	r = take_welcome(c, reply.msg->welcome);
	if (r == 0)
		r = hbl_memory_open(c, reply.msg->welcome, mode);
	hbl_reply_free(&reply);
	if (r == 0)
		r = make_pub_fd(c);
	return r;
}

static void on_break(void *ctx, int err)
{
	hbl_fences_fail_all(ctx, -err);
}

/* What this client's Hellos offer: everything the library knows, except quiet signals,
 * watches and slots with HYPERBUF_SIGNALS=awaited (every signal then waits for the daemon's
 * answer and every fence is a wait of its own, as before either), and slots with
 * HYPERBUF_SIGNALS=watched (fences on watches only): for comparing the paths, and the fence
 * suites run every way. HYPERBUF_SIGNALS=lazy offers everything, and every timeline the
 * client creates asks for lazy records (signals_lazy). */
static uint32_t features_offered(void)
{
	const char *signals = getenv(HBL_SIGNALS_ENV);

	if (signals && strcmp(signals, "awaited") == 0)
		return HBP_FEATURES_KNOWN &
		       ~(HBP_FEATURE_QUIET_SIGNAL | HBP_FEATURE_WATCH | HBP_FEATURE_SLOTS);
	if (signals && strcmp(signals, "watched") == 0)
		return HBP_FEATURES_KNOWN & ~HBP_FEATURE_SLOTS;
	return HBP_FEATURES_KNOWN;
}

static bool signals_lazy(void)
{
	const char *signals = getenv(HBL_SIGNALS_ENV);

	return signals && strcmp(signals, "lazy") == 0;
}

static struct hb_client *client_new(void)
{
	struct hb_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return NULL;
	}
	c->conn.tp.fd = -1;
	c->conn.pub_fd = -1;
	c->conn.frame_max = HBP_FRAME_MAX;
	c->conn.on_break = on_break;
	c->conn.ctx = c;
	c->calls.next_id = 1;
	c->offered = features_offered();
	c->lazy_default = signals_lazy();
	c->calls.pump = hbl_pump;
	hbl_fences_init(&c->fences);
	hbc_list_init(&c->timelines);
	hbc_list_init(&c->buffers);
	hbc_list_init(&c->imports);
	hbl_kernel_init(&c->kern);
	/* Until the welcome says otherwise. */
	if (hbl_events_init(&c->events, 256) < 0) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return c;
}

static void client_destroy(struct hb_client *c)
{
	struct hb_buffer *b;
	struct hb_import *im;

	hbc_list_for_each_safe(b, &c->buffers, struct hb_buffer, link) hbl_buffer_destroy(b);
	hbc_list_for_each_safe(im, &c->imports, struct hb_import, link) hbl_import_destroy(im);
	hbl_kernel_destroy(c);
	hbl_fences_destroy(c);
	hbl_timelines_destroy(c);
	hbl_calls_fini(c);
	/* The channel first: the daemon ends the session on its EOF. Then the backend's own
	 * connections: an emulated VM's ivshmem sockets, whose closing tells the daemon the VM
	 * is gone (a port says goodbye instead). */
	hbl_conn_close(&c->conn);
	hbl_memory_close(c);
	hbl_events_free(&c->events);
	hbl_holds_fini(c);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* HYPERBUF_DEBUG=1 makes the library say on stderr why something was refused. */
static void log_setup(void)
{
	const char *debug = getenv(HBL_DEBUG_ENV);

	hbc_log_set_ident("libhyperbuf");
	hbc_log_set_level(debug && debug[0] && strcmp(debug, "0") != 0 ? HBC_LOG_DEBUG
								       : HBC_LOG_SILENT);
}

HBL_PUBLIC struct hb_client *hb_connect(const char *address)
{
	static pthread_once_t log_once = PTHREAD_ONCE_INIT;
	enum hbl_address_kind kind;
	const char *path;
	struct hb_client *c;
	int r;

	pthread_once(&log_once, log_setup);
	if (!address)
		address = default_address();
	r = parse_address(address, &kind, &path);
	if (r < 0) {
		hbl_explain(NULL, -r,
			    "'%.200s' is not a hyperbuf address: unix:PATH (or /PATH), vm:PATH, "
			    "kvm:[PATH] or xen:; a path must be under %zu bytes",
			    address, sizeof(((struct sockaddr_un *)0)->sun_path));
		return errno = -r, NULL;
	}
	c = client_new();
	if (!c)
		return errno = ENOMEM, NULL;
	c->vm_channel = kind == HBL_ADDR_VM || kind == HBL_ADDR_KVM;
	c->conn.channel = c->vm_channel;
	c->resume.kind = kind;
	snprintf(c->resume.path, sizeof(c->resume.path), "%s", path);
	r = open_transport(c, kind, path);
	if (r == 0)
		r = hello(c, kind == HBL_ADDR_VM    ? HBB_ATTACH_EMULATED
			     : kind == HBL_ADDR_KVM ? HBB_ATTACH_GUEST
						    : HBB_ATTACH_HOST);
	if (r < 0) {
		hbl_explain_connect(address, c, -r);
		client_destroy(c);
		return errno = -r, NULL;
	}
	return c;
}

HBL_PUBLIC void hb_disconnect(struct hb_client *c)
{
	int saved = errno;

	if (!c)
		return;
	/* Signals and re-exports sent without waiting are answered first: a daemon that sees
	 * the connection end must not find them still unread behind it (nor lose them in a
	 * restart just before it). */
	hbl_lock(c);
	hbl_timelines_settle(c);
	if (c->calls.n_posted)
		hbl_reexports_settle(c);
	hbl_unlock(c);
	/* No Free or Release messages: closing the session makes the daemon unexport, free and
	 * release everything it holds for us (PROTOCOL.md §6), importers keeping their pages. */
	client_destroy(c);
	errno = saved;
}

HBL_PUBLIC int hb_counters(const struct hb_client *c, struct hb_counters *out)
{
	const struct hbl_conn *k;

	if (!c || !out)
		return hbl_fail(-EINVAL);
	k = &c->conn;
	*out = (struct hb_counters){
	    .recvs = __atomic_load_n(&k->n_recvs, __ATOMIC_RELAXED),
	    .sends = __atomic_load_n(&k->n_sends, __ATOMIC_RELAXED),
	    .polls = __atomic_load_n(&k->n_polls, __ATOMIC_RELAXED),
	    .wakes = __atomic_load_n(&k->n_wakes, __ATOMIC_RELAXED),
	    .frames_in = __atomic_load_n(&k->n_frames_in, __ATOMIC_RELAXED),
	    .frames_out = __atomic_load_n(&k->n_frames_out, __ATOMIC_RELAXED),
	};
	return 0;
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
	r = hbl_conn_broken(&c->conn);
	if (r < 0)
		return hbl_fail(r);
	return c->conn.pub_fd;
}

int hbl_open_transport(struct hb_client *c, struct hbb_transport *tp)
{
	struct hbl_conn tmp = {.pub_fd = -1};
	int r;

	switch (c->resume.kind) {
	case HBL_ADDR_XEN:
		return hbx_vchan_open(tp);
	case HBL_ADDR_KVM:
		return -EOPNOTSUPP; /* the port stays ours: a resume resynchronises on it */
	default:
		r = hbl_conn_open_socket(&tmp, c->resume.path);
		if (r == 0)
			*tp = tmp.tp;
		return r;
	}
}
