/*
 * One request in, exactly one reply out (docs/PROTOCOL.md §2–3). Each request body has one
 * handler in the table at the bottom; a handler returns 0 or a negative errno, which goes back
 * to the client in ServerMsg.error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/hyperbufd.h"
#include "protocol/desc.h"
#include "protocol/hid.h"
#include "protocol/limits.h"
#include "protocol/resync.h"

/* Everything one reply may point into; it lives in hbd_request's frame. */
struct reply {
	ServerMsg msg;
	Welcome welcome;
	AllocReply alloc;
	ExportReply export;
	ImportReply import;
	QueryReply query;
	TimelineReply timeline;
	SyncReply sync;
	FenceSlot slot;
	CpuAccessReply cpu;
	FencePoint points[HBP_RESV_LIMIT];
	FencePoint *point_ptrs[HBP_RESV_LIMIT];
	BufferDesc desc;
	struct hb_id hid;
	ControlReply *control;
	int fd;     /* sent with the reply (Attach of a host session), closed after */
	bool flush; /* queued fence completions must go out first (see hbd_request) */
	/* A resume: the reply the client missed (-1: none), with this group's pool fd (0: no fd).
	 */
	int resend_fd_group;
};

/* A hid from the wire; frame validation already checked its length when present. */
static int wire_hid(ProtobufCBinaryData data, struct hb_id *hid)
{
	if (hbp_hid_from_wire(data.data, data.len, hid) < 0)
		return -ENOENT; /* absent or malformed: nothing can match it */
	return 0;
}

static int do_hello(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	const Hello *m = cm->hello;
	struct hbd *d = s->d;
	Welcome *w = &r->welcome;
	int err;

	if (s->hello) {
		/* On a VM channel a new Hello is a new guest process: the one before it left
		 * without a word, since a virtio-serial port does not tell the host when it is
		 * closed (PROTOCOL.md §1.1). */
		if (!s->channel)
			return -EPROTO;
		hbd_session_restart(s, "a new Hello on the channel");
	}
	if (m->version != HBP_PROTOCOL_VERSION) {
		log_warn("%s: protocol version %u, this daemon speaks %u", s->label, m->version,
			 HBP_PROTOCOL_VERSION);
		hbd_reason(s, "protocol version %u; this daemon speaks %u", m->version,
			   HBP_PROTOCOL_VERSION);
		return -EPROTO;
	}
	if (m->role != HBP_ROLE_CLIENT && m->role != HBP_ROLE_CONTROL)
		return -EINVAL;
	if ((m->role == HBP_ROLE_CONTROL && s->dom->id != 0) ||
	    /* The control socket is hyperbufctl's: no client session takes its place there. */
	    (m->role == HBP_ROLE_CLIENT && s->door == HBD_DOOR_CONTROL)) {
		hbd_explain_hello(s, m->role, -EPERM);
		return -EPERM;
	}
	/* Bits this daemon does not know are a newer library's: it gets the forms version 1
	 * began with. */
	s->features = m->features & HBP_FEATURES_KNOWN;
	w->features = HBP_FEATURES_KNOWN;
	w->version = HBP_PROTOCOL_VERSION;
	w->domain = s->dom->id;
	w->domain_name = s->dom->name;
	w->meta_max = d->cfg->meta_max;
	w->event_queue = d->cfg->event_queue;
	w->frame_max = HBP_FRAME_MAX;
	if (m->resume.len && (m->role != HBP_ROLE_CLIENT || !hbd_state_on(d)))
		return -ENOENT; /* nothing to resume here */
	if (m->role == HBP_ROLE_CLIENT) {
		err = m->resume.len     ? hbd_session_resume(s, m, w, &r->resend_fd_group)
		      : hbd_state_on(d) ? hbd_session_new_token(s)
					: 0;
		if (err < 0)
			return err;
		err = d->backend->welcome(d->backend_state, s->dom->id, w);
		if (err < 0)
			return err;
		/* A token only where a restart keeps the state: elsewhere a client must not wait
		 * for a daemon that will not come back with its session. */
		if (hbd_state_on(d)) {
			w->token = (ProtobufCBinaryData){HBP_TOKEN_LEN, s->token};
			w->resume_ms = d->cfg->resume_timeout_ms;
		}
	}
	err = hbd_session_mark_hello(s, m->role == HBP_ROLE_CONTROL);
	if (err < 0) {
		hbd_explain_hello(s, m->role, err);
		if (w->groups || w->n_groups)
			d->backend->welcome_free(d->backend_state, w);
		memset(w, 0, sizeof(*w));
		welcome__init(w);
		return err;
	}
	r->msg.body_case = SERVER_MSG__BODY_WELCOME;
	r->msg.welcome = w;
	return 0;
}

static int do_attach(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	struct hbb_caller who = hbd_session_caller(s);
	uint32_t group = cm->attach->group;
	int err;

	if (group == 0 || group > HBP_MAX_GROUPS)
		return -ENOENT;
	err = s->d->backend->attach(s->d->backend_state, &who, group, cm->attach->ivshmem_peer,
				    &r->fd);
	if (err == 0) {
		s->attached |= 1ull << (group - 1);
		hbd_state_mark_session(s);
	}
	return err;
}

static int do_alloc(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	const Alloc *m = cm->alloc;
	struct hbd_buffer *b;
	int err;

	err = hbd_buffer_alloc(s, m->peer, m->size, m->flags, &b);
	if (err < 0) {
		hbd_explain_alloc(s, m->peer, m->size, err);
		return err;
	}
	r->alloc.buffer = b->mem.handle;
	hbp_desc_from_refdir(&r->desc, &b->mem.desc, b->mem.group);
	r->alloc.desc = &r->desc;
	r->msg.body_case = SERVER_MSG__BODY_ALLOC;
	r->msg.alloc = &r->alloc;
	return 0;
}

static int do_free(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	struct hbd_buffer *b = hbd_buffer_find(s, cm->free->buffer);

	if (!b)
		return -ENOENT;
	hbd_buffer_free(b);
	return 0;
}

/* Xen: the pages of a reserved buffer, as the client granted them. */
static int do_grant(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	struct hbd_buffer *b = hbd_buffer_find(s, cm->grant->buffer);
	struct hbb_caller who = hbd_session_caller(s);

	if (!b)
		return -ENOENT;
	if (!s->d->backend->grant)
		return -EOPNOTSUPP;
	int err = s->d->backend->grant(s->d->backend_state, &who, &b->mem, cm->grant->desc);

	if (err == 0)
		hbd_state_mark_buffer(b, true);
	return err;
}

static int do_export(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	const Export *m = cm->export;
	struct hbd_buffer *b = hbd_buffer_find(s, m->buffer);
	int err;

	if (!b)
		return -ENOENT;
	if (m->flags)
		return -EINVAL;
	if (m->meta.len > s->d->cfg->meta_max) {
		/* Either side may have to change: the exporter its metadata, the admin meta_max. */
		log_info_limited(
		    &s->d->meta_log,
		    "%s: export refused (EMSGSIZE): metadata of %zu bytes, over meta_max "
		    "%u",
		    s->label, m->meta.len, s->d->cfg->meta_max);
		hbd_reason(s, "metadata of %zu bytes is over the daemon's meta_max of %u bytes",
			   m->meta.len, s->d->cfg->meta_max);
		return -EMSGSIZE;
	}
	/* Metadata reaches VM channels in events and imports, where a resync marker in it would
	 * cut the stream (PROTOCOL.md §1.1): nobody may export one, whatever its own channel. */
	if (hbp_resync_meta_unsafe(m->meta.data, m->meta.len))
		return -EINVAL;
	/* A re-export names the hid it keeps (PROTOCOL.md §3 "Re-exports"): its library told
	 * the application that hid before asking. */
	if (m->hid.len && !hbd_export_live_as(b, m->hid.data))
		return -ESTALE;
	err = hbd_export(b, m->meta.data, m->meta.len, &r->hid);
	if (err < 0)
		return err;
	r->export.hid.data = r->hid.bytes;
	r->export.hid.len = sizeof(r->hid.bytes);
	r->msg.body_case = SERVER_MSG__BODY_EXPORT;
	r->msg.export = &r->export;
	return 0;
}

static int do_unexport(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	int err = wire_hid(cm->unexport->hid, &r->hid);

	return err < 0 ? err : hbd_unexport(s, &r->hid, cm->unexport->delay_ms);
}

static int do_import(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	struct hbd_import *im;
	struct hbd_buffer *b;
	int err;

	err = wire_hid(cm->import->hid, &r->hid);
	if (err == 0 && cm->import->hold)
		return hbd_hold_take(s, cm->import, &im);
	if (err == 0)
		err = hbd_import(s, &r->hid, cm->import->flags, &im);
	if (err < 0)
		return err;
	b = im->buf;
	r->import.import = im->handle;
	hbp_desc_from_refdir(&r->desc, &b->mem.desc, b->mem.group);
	r->import.desc = &r->desc;
	r->import.exporter = b->mem.exporter;
	r->import.flags = hbd_buffer_info_flags(b);
	r->import.meta.data = b->meta;
	r->import.meta.len = b->meta_len;
	r->msg.body_case = SERVER_MSG__BODY_IMPORT;
	r->msg.import = &r->import;
	return 0;
}

static int do_holds(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	return hbd_holds_set(s, cm->holds->on);
}

static int do_release(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	struct hbd_import *im = hbd_import_find(s, cm->release->import);

	if (!im)
		return -ENOENT;
	hbd_import_release(s, im);
	return 0;
}

static int do_query(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	QueryReply *q = &r->query;
	struct hbd_buffer *b;
	int err;

	err = wire_hid(cm->query->hid, &r->hid);
	if (err < 0)
		return err;
	b = hbd_hid_lookup(s->d, &r->hid);
	if (!b || (b->mem.exporter != s->dom->id && b->mem.peer != s->dom->id))
		return -ENOENT;
	q->exporter = b->mem.exporter;
	q->peer = b->mem.peer;
	q->size = b->mem.size;
	q->pages = b->mem.data_pages;
	q->importers = b->gen_importers;
	q->flags = hbd_buffer_info_flags(b);
	q->meta.data = b->meta;
	q->meta.len = b->meta_len;
	r->msg.body_case = SERVER_MSG__BODY_QUERY;
	r->msg.query = q;
	return 0;
}

static int do_control(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	int err = hbd_control(s, cm->control, &r->control);

	if (err == 0) {
		r->msg.body_case = SERVER_MSG__BODY_CONTROL;
		r->msg.control = r->control;
	}
	return err;
}

static int do_subscribe(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	return hbd_watch_subscribe(s);
}

static int do_timeline_create(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	int err = hbd_timeline_create(s, &r->timeline.timeline);

	if (err == 0) {
		r->msg.body_case = SERVER_MSG__BODY_TIMELINE;
		r->msg.timeline = &r->timeline;
	}
	return err;
}

static int do_timeline_signal(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	const TimelineSignal *m = cm->timeline_signal;

	return hbd_timeline_signal(s, m->timeline, m->value, m->error, m->lazy);
}

static int do_timeline_destroy(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	return hbd_timeline_destroy_req(s, cm->timeline_destroy->timeline);
}

static int do_timeline_share(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	const TimelineShare *m = cm->timeline_share;

	return hbd_timeline_share(s, m->timeline, m->domain);
}

static int do_sync_open(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	SyncReply *sr = &r->sync;
	struct hbd_sync_open o = {
	    .timeline = cm->sync_open->timeline,
	    .value = cm->sync_open->value,
	    .watch = cm->sync_open->watch && (s->features & HBP_FEATURE_WATCH),
	};
	int err = hbd_sync_open(s, &o);

	if (err < 0)
		return err;
	sr->wait = o.wait;
	sr->status = o.status;
	sr->owner = o.owner;
	sr->watched = o.watched;
	sr->value = o.told;
	if (o.slot.gen) {
		r->slot.group = o.slot.group;
		r->slot.index = o.slot.index;
		r->slot.gen = o.slot.gen;
		sr->slot = &r->slot;
	}
	/* Born complete: it reveals the timeline's progress (see hbd_request). */
	r->flush = sr->wait == 0;
	r->msg.body_case = SERVER_MSG__BODY_SYNC;
	r->msg.sync = sr;
	return 0;
}

static int do_sync_close(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	return hbd_sync_close(s, cm->sync_close->wait);
}

static int do_watch_arm(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	hbd_fence_watch_arm(s, cm->watch_arm->timeline, cm->watch_arm->value);
	return 0;
}

static int do_fence_attach(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	const FenceAttach *m = cm->fence_attach;
	int err = wire_hid(m->hid, &r->hid);

	return err < 0 ? err : hbd_fence_attach(s, &r->hid, m->timeline, m->value, m->usage);
}

static int do_cpu_access(struct hbd_session *s, const ClientMsg *cm, struct reply *r)
{
	struct hbd_resv_entry e[HBP_RESV_LIMIT];
	unsigned n;
	int err;

	err = wire_hid(cm->cpu_access->hid, &r->hid);
	if (err == 0)
		err = hbd_cpu_access(s, &r->hid, cm->cpu_access->access, e, &n);
	if (err < 0)
		return err;
	for (unsigned i = 0; i < n; i++) {
		fence_point__init(&r->points[i]);
		r->points[i].timeline = e[i].timeline;
		r->points[i].value = e[i].value;
		r->point_ptrs[i] = &r->points[i];
	}
	r->cpu.fences = r->point_ptrs;
	r->cpu.n_fences = n;
	r->msg.body_case = SERVER_MSG__BODY_CPU_ACCESS;
	r->msg.cpu_access = &r->cpu;
	return 0;
}

/*
 * Replies that reveal a timeline's progress go out behind the completions already queued for
 * the session (flush), so nobody learns that point N is complete while its own N-1 still looks
 * pending: a SyncOpen born signalled (the handler decides), a CpuAccess snapshot (it leaves out
 * what completed), and the owner's own signal and destroy (after which its syncs on its
 * timeline are complete, as after SW_SYNC_IOC_INC). Other replies, a pending SyncOpen's
 * included, do not wait for the queue: that is what lets a client that does not read fall
 * behind by fence_waits_per_domain completions and be dropped for it.
 */
static const struct {
	int (*fn)(struct hbd_session *s, const ClientMsg *m, struct reply *r);
	bool flush;
} handlers[] = {
    [CLIENT_MSG__BODY_HELLO] = {do_hello, false},
    [CLIENT_MSG__BODY_ATTACH] = {do_attach, false},
    [CLIENT_MSG__BODY_ALLOC] = {do_alloc, false},
    [CLIENT_MSG__BODY_FREE] = {do_free, false},
    [CLIENT_MSG__BODY_EXPORT] = {do_export, false},
    [CLIENT_MSG__BODY_UNEXPORT] = {do_unexport, false},
    [CLIENT_MSG__BODY_IMPORT] = {do_import, false},
    [CLIENT_MSG__BODY_RELEASE] = {do_release, false},
    [CLIENT_MSG__BODY_QUERY] = {do_query, false},
    [CLIENT_MSG__BODY_CONTROL] = {do_control, false},
    [CLIENT_MSG__BODY_TIMELINE_CREATE] = {do_timeline_create, false},
    [CLIENT_MSG__BODY_TIMELINE_SIGNAL] = {do_timeline_signal, true},
    [CLIENT_MSG__BODY_TIMELINE_DESTROY] = {do_timeline_destroy, true},
    [CLIENT_MSG__BODY_SYNC_OPEN] = {do_sync_open, false},
    [CLIENT_MSG__BODY_SYNC_CLOSE] = {do_sync_close, false},
    [CLIENT_MSG__BODY_FENCE_ATTACH] = {do_fence_attach, false},
    [CLIENT_MSG__BODY_CPU_ACCESS] = {do_cpu_access, true},
    [CLIENT_MSG__BODY_GRANT] = {do_grant, false},
    [CLIENT_MSG__BODY_TIMELINE_SHARE] = {do_timeline_share, false},
    [CLIENT_MSG__BODY_SUBSCRIBE] = {do_subscribe, false},
    [CLIENT_MSG__BODY_WATCH_ARM] = {do_watch_arm, false},
    [CLIENT_MSG__BODY_HOLDS] = {do_holds, false},
};

/* Runs the handler of the request's body. */
static int handle(struct hbd_session *s, const ClientMsg *msg, struct reply *r)
{
	size_t k = (size_t)msg->body_case;

	/* A control session owns nothing. */
	if (s->control && msg->body_case != CLIENT_MSG__BODY_CONTROL &&
	    msg->body_case != CLIENT_MSG__BODY_HELLO &&
	    msg->body_case != CLIENT_MSG__BODY_SUBSCRIBE)
		return -EPERM;
	/* A newer client's request: say so and carry on. */
	if (k >= sizeof(handlers) / sizeof(handlers[0]) || !handlers[k].fn)
		return -EOPNOTSUPP;
	r->flush = handlers[k].flush;
	return handlers[k].fn(s, msg, r);
}

/* Requests before Hello are violations: answered (EPROTO), then the session is dropped. */
static void refuse_before_hello(struct hbd_session *s, const ClientMsg *msg)
{
	ServerMsg reply = SERVER_MSG__INIT;

	reply.id = msg->id;
	reply.error = EPROTO;
	s->d->stats.errors_protocol++;
	hbd_session_send(s, &reply, -1);
	log_warn("%s: request before hello; dropping the session", s->label);
	/* Let the reply go out before the hang-up where the socket allows. */
	ev_invoke(s->d->loop, &s->wio, EV_WRITE);
	hbd_session_close(s, "request before hello");
}

/* Queues the reply; a reply that cannot be framed (too big, out of memory) still answers the
 * request, with an error. */
static void send_reply(struct hbd_session *s, const ClientMsg *msg, struct reply *r, int err)
{
	bool queued;

	if (err < 0) {
		struct hbd_watch_ev ev = {.what = "error", .s = s, .domain = s->dom->id};
		char detail[HBP_CTL_DETAIL_MAX + HBP_REASON_MAX]; /* watch.c cuts it */

		r->msg.error = (uint32_t)-err;
		r->msg.body_case = SERVER_MSG__BODY__NOT_SET;
		r->msg.reason = s->reason;
		s->d->stats.errors_request++;
		log_debug("%s: %s #%u refused: %s%s%s", s->label,
			  hbp_client_body_name(msg->body_case), msg->id, strerror(-err),
			  s->reason[0] ? ": " : "", s->reason);
		snprintf(detail, sizeof(detail), "%s: %s%s%s", hbp_client_body_name(msg->body_case),
			 strerror(-err), s->reason[0] ? ": " : "", s->reason);
		ev.detail = detail;
		hbd_watch_emit(s->d, &ev);
	}
	if (err == 0)
		hbd_watch_done(s, msg, &r->msg);
	queued = hbd_session_send(s, &r->msg, err < 0 ? -1 : r->fd) == 0;
	s->reason[0] = '\0';
	if (!queued && !s->closing) {
		ServerMsg fallback = SERVER_MSG__INIT;

		fallback.id = msg->id;
		fallback.error = EMSGSIZE;
		s->d->stats.errors_request++;
		if (hbd_session_send(s, &fallback, -1) < 0)
			hbd_session_close(s, "cannot queue a reply");
	}
}

/* The state changed for this request: keep its reply with it, for a client that resumes after
 * a restart having missed it (docs/RESTART.md). */
static void remember_reply(struct hbd_session *s, const ClientMsg *msg, const struct reply *r)
{
	size_t len = server_msg__get_packed_size(&r->msg);

	if (!s->hello || s->control || hbp_bytes_reserve(&s->last_reply, len) < 0)
		return;
	hbp_bytes_consume(&s->last_reply, s->last_reply.len);
	/* A quiet request's effects are kept, and it has no reply to give again. */
	if (!hbp_request_quiet(msg)) {
		server_msg__pack(&r->msg, s->last_reply.data);
		s->last_reply.len = len;
	}
	s->last_request = msg->id;
	s->reply_fd_group =
	    msg->body_case == CLIENT_MSG__BODY_ATTACH && r->fd >= 0 ? msg->attach->group : 0;
	hbd_state_mark_session(s);
}

void hbd_request(struct hbd_session *s, ClientMsg *msg)
{
	struct reply r = {
	    .msg = SERVER_MSG__INIT,
	    .welcome = WELCOME__INIT,
	    .alloc = ALLOC_REPLY__INIT,
	    .export = EXPORT_REPLY__INIT,
	    .import = IMPORT_REPLY__INIT,
	    .query = QUERY_REPLY__INIT,
	    .timeline = TIMELINE_REPLY__INIT,
	    .sync = SYNC_REPLY__INIT,
	    .slot = FENCE_SLOT__INIT,
	    .cpu = CPU_ACCESS_REPLY__INIT,
	    .desc = BUFFER_DESC__INIT,
	    .fd = -1,
	    .resend_fd_group = -1,
	};
	int err;

	if (!s->hello && msg->body_case != CLIENT_MSG__BODY_HELLO) {
		refuse_before_hello(s, msg);
		return;
	}
	r.msg.id = msg->id;
	err = handle(s, msg, &r);
	if (err == 0 && msg->body_case != CLIENT_MSG__BODY_HELLO && hbd_state_pending(s->d))
		remember_reply(s, msg, &r);
	/* A completion that cannot be framed must not vanish quietly: the session ends, and its
	 * library fails every fence it still waits on. */
	if (r.flush && hbd_session_flush_fences(s) < 0)
		hbd_session_close(s, "cannot frame its fence completions");
	else if (err == 0 && hbp_request_quiet(msg))
		hbd_watch_done(s, msg, &r.msg);
	else
		send_reply(s, msg, &r, err);
	if (err == 0 && msg->body_case == CLIENT_MSG__BODY_HELLO && r.welcome.resumed)
		hbd_session_resend(s, r.resend_fd_group);
	if (r.fd >= 0)
		close(r.fd);
	if (r.welcome.groups || r.welcome.n_groups)
		s->d->backend->welcome_free(s->d->backend_state, &r.welcome);
	if (r.control)
		hbd_control_free(r.control);
	if (msg->body_case == CLIENT_MSG__BODY_HELLO && err < 0 && !s->hello) {
		ev_invoke(s->d->loop, &s->wio, EV_WRITE);
		hbd_session_close(s, "hello refused");
	}
}
