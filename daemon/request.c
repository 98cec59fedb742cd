/*
 * One request in, exactly one reply out (docs/PROTOCOL.md §2–3). Handlers return 0 or a
 * negative errno; the errno goes back to the client in ServerMsg.error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/hid.h"
#include "daemon/hyperbufd.h"
#include "protocol/limits.h"
#include "common/log.h"

static void fill_desc(BufferDesc *out, const struct hbd_buffer *b)
{
	out->group = b->group;
	out->root_ref = b->desc.root;
	out->depth = b->desc.depth;
	out->pages = b->desc.pages;
	out->first_offset = b->desc.first_offset;
	out->size = b->desc.size;
}

/* A hid from the wire; frame validation already checked its length when present. */
static int wire_hid(ProtobufCBinaryData data, struct hb_id *hid)
{
	if (hbp_hid_from_wire(data.data, data.len, hid) < 0)
		return -ENOENT; /* absent or malformed: nothing can match it */
	return 0;
}

static int do_hello(struct hbd_session *s, const Hello *m, ServerMsg *reply, Welcome *w)
{
	struct hbd *d = s->d;
	int r;

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
		return -EPROTO;
	}
	if (m->role != HBP_ROLE_CLIENT && m->role != HBP_ROLE_CONTROL)
		return -EINVAL;
	if (m->role == HBP_ROLE_CONTROL && s->dom->id != 0)
		return -EPERM;
	w->version = HBP_PROTOCOL_VERSION;
	w->domain = s->dom->id;
	w->domain_name = s->dom->name;
	w->meta_max = d->cfg->meta_max;
	w->event_queue = d->cfg->event_queue;
	w->frame_max = HBP_FRAME_MAX;
	if (m->role == HBP_ROLE_CLIENT) {
		r = d->backend->welcome(d, s->dom->id, w);
		if (r < 0)
			return r;
	}
	hbd_session_mark_hello(s, m->role == HBP_ROLE_CONTROL);
	reply->body_case = SERVER_MSG__BODY_WELCOME;
	reply->welcome = w;
	return 0;
}

static int do_alloc(struct hbd_session *s, const Alloc *m, ServerMsg *reply, AllocReply *ar,
		    BufferDesc *desc)
{
	struct hbd_buffer *b;
	int r;

	r = hbd_buffer_alloc(s, m->peer, m->size, m->flags, &b);
	if (r < 0)
		return r;
	ar->buffer = b->handle;
	fill_desc(desc, b);
	ar->desc = desc;
	reply->body_case = SERVER_MSG__BODY_ALLOC;
	reply->alloc = ar;
	return 0;
}

static int do_export(struct hbd_session *s, const Export *m, ServerMsg *reply, ExportReply *er,
		     struct hb_id *hid)
{
	struct hbd_buffer *b = hbd_buffer_find(s, m->buffer);
	int r;

	if (!b)
		return -ENOENT;
	if (m->flags)
		return -EINVAL;
	if (m->meta.len > s->d->cfg->meta_max)
		return -EMSGSIZE;
	r = hbd_export(b, m->meta.data, m->meta.len, hid);
	if (r < 0)
		return r;
	er->hid.data = hid->bytes;
	er->hid.len = sizeof(hid->bytes);
	reply->body_case = SERVER_MSG__BODY_EXPORT;
	reply->export = er;
	return 0;
}

static int do_import(struct hbd_session *s, const Import *m, ServerMsg *reply, ImportReply *ir,
		     BufferDesc *desc)
{
	struct hbd_import *im;
	struct hb_id hid;
	int r;

	r = wire_hid(m->hid, &hid);
	if (r < 0)
		return r;
	r = hbd_import(s, &hid, m->flags, &im);
	if (r < 0)
		return r;
	ir->import = im->handle;
	fill_desc(desc, im->buf);
	ir->desc = desc;
	ir->exporter = im->buf->exporter;
	ir->flags = hbd_buffer_info_flags(im->buf);
	ir->meta.data = im->buf->meta;
	ir->meta.len = im->buf->meta_len;
	reply->body_case = SERVER_MSG__BODY_IMPORT;
	reply->import = ir;
	return 0;
}

static int do_query(struct hbd_session *s, const Query *m, ServerMsg *reply, QueryReply *q)
{
	struct hbd_buffer *b;
	struct hb_id hid;
	int r;

	r = wire_hid(m->hid, &hid);
	if (r < 0)
		return r;
	b = hbd_hid_lookup(s->d, &hid);
	if (!b || (b->exporter != s->dom->id && b->peer != s->dom->id))
		return -ENOENT;
	q->exporter = b->exporter;
	q->peer = b->peer;
	q->size = b->size;
	q->pages = b->data_pages;
	q->importers = b->gen_importers;
	q->flags = hbd_buffer_info_flags(b);
	q->meta.data = b->meta;
	q->meta.len = b->meta_len;
	reply->body_case = SERVER_MSG__BODY_QUERY;
	reply->query = q;
	return 0;
}

/* Xen: the pages of a reserved buffer, as the client granted them. */
static int do_grant(struct hbd_session *s, const Grant *m)
{
	struct hbd_buffer *b = hbd_buffer_find(s, m->buffer);

	if (!b)
		return -ENOENT;
	if (!s->d->backend->grant)
		return -EOPNOTSUPP;
	return s->d->backend->grant(s->d, s, b, m->desc);
}

static int do_unexport(struct hbd_session *s, const Unexport *m)
{
	struct hb_id hid;
	int r = wire_hid(m->hid, &hid);

	return r < 0 ? r : hbd_unexport(s, &hid, m->delay_ms);
}

static int do_sync_open(struct hbd_session *s, const SyncOpen *m, ServerMsg *reply, SyncReply *sr)
{
	uint64_t wait;
	int32_t status;
	uint32_t owner;
	int r;

	r = hbd_sync_open(s, m->timeline, m->value, &wait, &status, &owner);
	if (r < 0)
		return r;
	sr->wait = wait;
	sr->status = status;
	sr->owner = owner;
	reply->body_case = SERVER_MSG__BODY_SYNC;
	reply->sync = sr;
	return 0;
}

static int do_fence_attach(struct hbd_session *s, const FenceAttach *m)
{
	struct hb_id hid;
	int r = wire_hid(m->hid, &hid);

	return r < 0 ? r : hbd_fence_attach(s, &hid, m->timeline, m->value, m->usage);
}

/* The reply points into points[] and fences[], which live in hbd_request's frame. */
static int do_cpu_access(struct hbd_session *s, const CpuAccess *m, ServerMsg *reply,
			 CpuAccessReply *cr, FencePoint *points, FencePoint **ptrs)
{
	struct hbd_resv_entry e[HBP_RESV_LIMIT];
	struct hb_id hid;
	unsigned n;
	int r;

	r = wire_hid(m->hid, &hid);
	if (r < 0)
		return r;
	r = hbd_cpu_access(s, &hid, m->access, e, &n);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < n; i++) {
		fence_point__init(&points[i]);
		points[i].timeline = e[i].timeline;
		points[i].value = e[i].value;
		ptrs[i] = &points[i];
	}
	cr->fences = ptrs;
	cr->n_fences = n;
	reply->body_case = SERVER_MSG__BODY_CPU_ACCESS;
	reply->cpu_access = cr;
	return 0;
}

void hbd_request(struct hbd_session *s, ClientMsg *msg)
{
	ServerMsg reply = SERVER_MSG__INIT;
	Welcome welcome = WELCOME__INIT;
	AllocReply alloc_reply = ALLOC_REPLY__INIT;
	ExportReply export_reply = EXPORT_REPLY__INIT;
	ImportReply import_reply = IMPORT_REPLY__INIT;
	QueryReply query_reply = QUERY_REPLY__INIT;
	TimelineReply timeline_reply = TIMELINE_REPLY__INIT;
	SyncReply sync_reply = SYNC_REPLY__INIT;
	CpuAccessReply cpu_reply = CPU_ACCESS_REPLY__INIT;
	FencePoint points[HBP_RESV_LIMIT];
	FencePoint *point_ptrs[HBP_RESV_LIMIT];
	BufferDesc desc = BUFFER_DESC__INIT;
	ControlReply *control = NULL;
	struct hbd_buffer *b;
	struct hbd_import *im;
	struct hb_id hid;
	int fd = -1, r;

	reply.id = msg->id;
	if (!s->hello && msg->body_case != CLIENT_MSG__BODY_HELLO) {
		reply.error = EPROTO;
		s->d->stats.errors_protocol++;
		hbd_session_send(s, &reply, -1);
		/* Let the reply go out before the hang-up where the socket allows. */
		log_warn("%s: request before hello; dropping the session", s->label);
		ev_invoke(s->d->loop, &s->wio, EV_WRITE);
		hbd_session_close(s, "request before hello");
		return;
	}
	if (s->control && msg->body_case != CLIENT_MSG__BODY_CONTROL &&
	    msg->body_case != CLIENT_MSG__BODY_HELLO) {
		r = -EPERM; /* a control session owns nothing */
		goto reply;
	}

	switch (msg->body_case) {
	case CLIENT_MSG__BODY_HELLO:
		r = do_hello(s, msg->hello, &reply, &welcome);
		break;
	case CLIENT_MSG__BODY_ATTACH:
		r = s->d->backend->attach(s->d, s, msg->attach->group, msg->attach->hbk_ivshmem_peer,
					  &fd);
		break;
	case CLIENT_MSG__BODY_ALLOC:
		r = do_alloc(s, msg->alloc, &reply, &alloc_reply, &desc);
		break;
	case CLIENT_MSG__BODY_FREE:
		b = hbd_buffer_find(s, msg->free->buffer);
		r = b ? 0 : -ENOENT;
		if (b)
			hbd_buffer_free(b);
		break;
	case CLIENT_MSG__BODY_EXPORT:
		r = do_export(s, msg->export, &reply, &export_reply, &hid);
		break;
	case CLIENT_MSG__BODY_UNEXPORT:
		r = do_unexport(s, msg->unexport);
		break;
	case CLIENT_MSG__BODY_IMPORT:
		r = do_import(s, msg->import, &reply, &import_reply, &desc);
		break;
	case CLIENT_MSG__BODY_RELEASE:
		im = hbd_import_find(s, msg->release->import);
		r = im ? 0 : -ENOENT;
		if (im)
			hbd_import_release(s, im);
		break;
	case CLIENT_MSG__BODY_QUERY:
		r = do_query(s, msg->query, &reply, &query_reply);
		break;
	case CLIENT_MSG__BODY_GRANT:
		r = do_grant(s, msg->grant);
		break;
	case CLIENT_MSG__BODY_CONTROL:
		r = hbd_control(s, msg->control->what, &control);
		if (r == 0) {
			reply.body_case = SERVER_MSG__BODY_CONTROL;
			reply.control = control;
		}
		break;
	case CLIENT_MSG__BODY_TIMELINE_CREATE:
		r = hbd_timeline_create(s, &timeline_reply.timeline);
		if (r == 0) {
			reply.body_case = SERVER_MSG__BODY_TIMELINE;
			reply.timeline = &timeline_reply;
		}
		break;
	case CLIENT_MSG__BODY_TIMELINE_SIGNAL:
		r = hbd_timeline_signal(s, msg->timeline_signal->timeline,
					msg->timeline_signal->value, msg->timeline_signal->error);
		break;
	case CLIENT_MSG__BODY_TIMELINE_DESTROY:
		r = hbd_timeline_destroy_req(s, msg->timeline_destroy->timeline);
		break;
	case CLIENT_MSG__BODY_SYNC_OPEN:
		r = do_sync_open(s, msg->sync_open, &reply, &sync_reply);
		break;
	case CLIENT_MSG__BODY_SYNC_CLOSE:
		r = hbd_sync_close(s, msg->sync_close->wait);
		break;
	case CLIENT_MSG__BODY_FENCE_ATTACH:
		r = do_fence_attach(s, msg->fence_attach);
		break;
	case CLIENT_MSG__BODY_CPU_ACCESS:
		r = do_cpu_access(s, msg->cpu_access, &reply, &cpu_reply, points, point_ptrs);
		break;
	default:
		/* A newer client's request: say so and carry on. */
		r = -EOPNOTSUPP;
		break;
	}

reply:
	/*
	 * Replies that reveal a timeline's progress go out behind the completions already
	 * queued for this session, so nobody learns that point N is complete while its own
	 * N-1 still looks pending: a SyncOpen born signalled, a CpuAccess snapshot (it leaves
	 * out what completed), and the owner's own signal and destroy (after which its syncs on
	 * its timeline are complete, as after SW_SYNC_IOC_INC). Other replies, a pending
	 * SyncOpen's included, do not wait for the queue: that is what lets a client that does
	 * not read fall behind by fence_waits_per_domain completions and be dropped for it.
	 */
	if ((msg->body_case == CLIENT_MSG__BODY_SYNC_OPEN && r == 0 && sync_reply.wait == 0) ||
	    msg->body_case == CLIENT_MSG__BODY_CPU_ACCESS ||
	    msg->body_case == CLIENT_MSG__BODY_TIMELINE_SIGNAL ||
	    msg->body_case == CLIENT_MSG__BODY_TIMELINE_DESTROY) {
		/* A completion that cannot be framed must not vanish quietly: the session
		 * ends, and its library fails every fence it still waits on. */
		if (hbd_session_flush_fences(s) < 0) {
			hbd_session_close(s, "cannot frame its fence completions");
			return;
		}
	}
	if (r < 0) {
		reply.error = (uint32_t)-r;
		reply.body_case = SERVER_MSG__BODY__NOT_SET;
		s->d->stats.errors_request++;
		log_debug("%s: request %u (body %d): %s", s->label, msg->id, msg->body_case,
			 strerror(-r));
	}
	if (hbd_session_send(s, &reply, r < 0 ? -1 : fd) < 0 && !s->closing) {
		/* The answer could not be framed (too big, out of memory): the request still
		 * gets exactly one reply, an error. */
		ServerMsg err = SERVER_MSG__INIT;
		err.id = msg->id;
		err.error = EMSGSIZE;
		s->d->stats.errors_request++;
		if (hbd_session_send(s, &err, -1) < 0)
			hbd_session_close(s, "cannot queue a reply");
	}
	if (fd >= 0)
		close(fd);
	if (welcome.groups)
		s->d->backend->welcome_free(&welcome);
	if (control)
		hbd_control_free(control);
	if (msg->body_case == CLIENT_MSG__BODY_HELLO && r < 0 && !s->hello) {
		ev_invoke(s->d->loop, &s->wio, EV_WRITE);
		hbd_session_close(s, "hello refused");
	}
}
