/*
 * Timelines this client owns, and the implicit sync of shared buffers: attaching fences to a
 * buffer's reservation and bracketing CPU access (docs/PROTOCOL.md §3 "Fences", fences.md §2,
 * §5.6).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "libclient/client.h"
#include "protocol/limits.h"

/* The public bound and the one the codec enforces on CpuAccessReply are one number. */
_Static_assert(HB_RESV_MAX == HBP_RESV_LIMIT, "HB_RESV_MAX must equal HBP_RESV_LIMIT");

void hbl_timelines_destroy(struct hb_client *c)
{
	struct hb_timeline *t;

	/* The session's end destroys them in the daemon (their waiters get -EPIPE). */
	hbc_list_for_each_safe(t, &c->timelines, struct hb_timeline, link)
	{
		hbc_list_remove(&t->link);
		hbl_timeline_slots_free(t);
		free(t);
	}
}

HBL_PUBLIC struct hb_timeline *hb_timeline_create(struct hb_client *c)
{
	TimelineCreate tc = TIMELINE_CREATE__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	struct hb_timeline *t;
	int r;

	if (!c)
		return errno = EINVAL, NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return errno = ENOMEM, NULL;
	hbl_lock(c);
	m.body_case = CLIENT_MSG__BODY_TIMELINE_CREATE;
	m.timeline_create = &tc;
	r = hbl_call(c, &m, SERVER_MSG__BODY_TIMELINE, &reply);
	if (r < 0) {
		hbl_unlock(c);
		free(t);
		return errno = -r, NULL;
	}
	t->client = c;
	t->id = reply.msg->timeline->timeline;
	t->lazy_wanted = c->lazy_default;
	hbl_reply_free(&reply);
	hbc_list_insert_tail(&c->timelines, &t->link);
	hbl_unlock(c);
	return t;
}

HBL_PUBLIC uint64_t hb_timeline_id(const struct hb_timeline *t)
{
	if (!t) {
		errno = EINVAL;
		return 0;
	}
	return t->id;
}

/* Sends t's signal (value, error) to the daemon: quiet when nothing in this domain waits on
 * it, else awaited. Nothing the daemon could refuse: the id is ours, the error in range, and
 * a value that is not above the current one is a no-op. So the signal goes without waiting
 * for its answer, and nobody wakes for an ack. Unless this domain waits on its own
 * timelines: those waits have completed when the signal returns (PROTOCOL.md §3,
 * "Delivery"), and the reply is what comes after their completions. */
static int send_record(struct hb_client *c, struct hb_timeline *t, uint64_t value, uint32_t error,
		       bool awaited)
{
	TimelineSignal ts = TIMELINE_SIGNAL__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	int r;

	ts.timeline = t->id;
	ts.value = value;
	ts.error = error;
	m.body_case = CLIENT_MSG__BODY_TIMELINE_SIGNAL;
	m.timeline_signal = &ts;
	ts.quiet = !awaited && (c->features & HBP_FEATURE_QUIET_SIGNAL) &&
		   c->fences.own_domain_points == 0;
	ts.lazy = t->lazy_wanted && !t->slot_lost && (c->features & HBP_FEATURE_LAZY);
	r = ts.quiet ? hbl_post(c, &m) : -EAGAIN;
	if (r == -EAGAIN) {
		ts.quiet = false;
		r = hbl_call_simple(c, &m);
	} else if (r == 0) {
		c->last_posted = (struct hbl_posted_signal){t->id, value, error};
	}
	if (r == 0 && value > t->sent)
		t->sent = value;
	if (r == 0)
		t->kept = 0;
	return r;
}

/* Whether a signal that reached t's slots may stay there (PROTOCOL.md §3 "Lazy records"):
 * the application asked, the daemon said every waiter reads them, every waiter was rung, not
 * too many stayed since the last record (a restart or a crash loses at most those), and
 * nothing from the daemon is unread. What it sent is read here first, as a blocking call
 * would: its TimelineLazy and TimelineSlot are how a lazy owner hears anything. A slot heard
 * of only now did not get this value: the daemon writes it when the signal reaches it. */
static bool keep_lazily(struct hb_client *c, struct hb_timeline *t, unsigned slots)
{
	struct pollfd pfd = {.fd = c->conn.tp.fd, .events = POLLIN};
	unsigned epoch = t->slots_epoch;

	if (!t->lazy_wanted || t->slot_lost || t->failed || slots || t->kept >= HBL_LAZY_KEEP ||
	    c->fences.own_domain_points || !hbl_conn_polls_all(&c->conn) ||
	    hbl_conn_broken(&c->conn) < 0)
		return false;
	hbl_count(&c->conn.n_polls);
	if (poll(&pfd, 1, 0) != 0)
		hbl_pump(c, HBL_DISPATCH_BATCH);
	return t->lazy && t->n_slots && t->slots_epoch == epoch && !t->owed &&
	       !hbl_conn_has_frame(&c->conn) && hbl_conn_broken(&c->conn) == 0;
}

static int signal_to(struct hb_timeline *t, uint64_t value, uint32_t error)
{
	struct hb_client *c = t->client;
	bool error_moves = true, awaited = false;
	unsigned slots;
	int r;

	/* Release: the writes this thread made to shared buffers before signalling reach
	 * memory before the signal can (the request itself is a syscall, but the compiler and a
	 * write-combining mapping do not know that; see hbl_shared_memory_barrier). */
	hbl_shared_memory_barrier();
	hbl_lock(c);
	/* Waiters in a pool we share hear it from its slots first (a failure only as POISON:
	 * its statuses come from the daemon). A TimelineSlot received already is taken first
	 * (reading nothing new). */
	hbl_route_buffered(c);
	/* Values only move forward: a fail at or below the value fails nothing, for the daemon
	 * too, so it must not poison the slots the daemon still has its watches told by. */
	if (value <= t->value)
		error_moves = false;
	/* A failure fails every point above the daemon's record: the values kept in the slots
	 * go first, as the successes they were. */
	if (error && t->value > t->sent && !t->failed) {
		r = send_record(c, t, t->value, 0, false);
		if (r < 0)
			goto out;
	}
	if (value > t->value)
		t->value = value;
	if (error && error_moves)
		t->failed = true;
	slots = hbl_timeline_slots_store(c, t, value, error != 0 && error_moves);
	if (slots & HBL_SLOTS_STALE) {
		hbl_timeline_slots_free(t);
		t->lazy = false;
		awaited = true;
	}
	if (!error && keep_lazily(c, t, slots)) {
		t->kept++;
		r = 0;
	} else {
		/* A lower signal than one kept carries the kept one: the record is the highest. */
		r = send_record(c, t, error ? value : t->value, error, awaited);
		if (r < 0 && !error)
			hbl_timeline_owe(c, t);
	}
out:
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

void hbl_timeline_owe(struct hb_client *c, struct hb_timeline *t)
{
	if (t->failed || t->value <= t->sent)
		return;
	t->owed = true;
	c->lazy_owed = true;
}

bool hbl_timelines_flush(struct hb_client *c)
{
	struct hb_timeline *t;

	if (!c->lazy_owed || c->calls.pending || c->resume.active || hbl_conn_broken(&c->conn) < 0)
		return false;
	c->lazy_owed = false;
	/* Sending may resume, which may owe them again: the next flush sends those. */
	hbc_list_for_each_safe(t, &c->timelines, struct hb_timeline, link)
	{
		if (!t->owed)
			continue;
		t->owed = false;
		/* Not sent, on a connection still up: owed still (a broken one ends it all). */
		if (!t->failed && t->value > t->sent && send_record(c, t, t->value, 0, false) < 0)
			hbl_timeline_owe(c, t);
	}
	return true;
}

void hbl_timeline_lazy(struct hb_client *c, const TimelineLazy *tz)
{
	struct hb_timeline *t;

	hbc_list_for_each_safe(t, &c->timelines, struct hb_timeline, link)
	{
		if (t->id != tz->timeline)
			continue;
		t->lazy = tz->lazy;
		/* Taken back: a consumer that reads no slot waits on what we kept. */
		if (!t->lazy)
			hbl_timeline_owe(c, t);
		return;
	}
}

void hbl_timelines_settle(struct hb_client *c)
{
	const struct hbl_posted_signal *p = &c->last_posted;
	TimelineSignal ts = TIMELINE_SIGNAL__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hb_timeline *t;

	/* What stayed in slots goes first: the session's end fails every point above what
	 * the daemon knows. */
	hbc_list_for_each_safe(t, &c->timelines, struct hb_timeline, link)
	{
		if (hbl_conn_broken(&c->conn) == 0 && !t->failed && t->value > t->sent)
			send_record(c, t, t->value, 0, false);
	}

	/* Any awaited call since the last posted signal answered for it, and destroying its
	 * timeline is one: the timeline still exists, and its value is at least p->value, so
	 * this is a no-op the daemon answers. */
	/* Posted WatchArms alone need nothing: the daemon has no use for them after a close. */
	if (c->calls.n_posted == 0 || p->timeline == 0 || hbl_conn_broken(&c->conn) < 0)
		return;
	ts.timeline = p->timeline;
	ts.value = p->value;
	ts.error = p->error;
	m.body_case = CLIENT_MSG__BODY_TIMELINE_SIGNAL;
	m.timeline_signal = &ts;
	hbl_call_simple(c, &m);
}

HBL_PUBLIC int hb_timeline_signal(struct hb_timeline *t, uint64_t value)
{
	if (!t)
		return hbl_fail(-EINVAL);
	return signal_to(t, value, 0);
}

HBL_PUBLIC int hb_timeline_fail(struct hb_timeline *t, uint64_t value, int error)
{
	if (!t || error >= 0 || error <= -(int)HBP_ERRNO_LIMIT)
		return hbl_fail(-EINVAL);
	return signal_to(t, value, (uint32_t)-error);
}

HBL_PUBLIC int hb_timeline_set_lazy(struct hb_timeline *t, int on)
{
	struct hb_client *c;
	int r = 0;

	if (!t || (on != 0 && on != 1))
		return hbl_fail(-EINVAL);
	c = t->client;
	hbl_lock(c);
	t->lazy_wanted = on;
	/* Off: what stayed goes now. On: the next signal asks the daemon. */
	if (!on && !t->failed && t->value > t->sent && hbl_conn_broken(&c->conn) == 0)
		r = send_record(c, t, t->value, 0, false);
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

HBL_PUBLIC int hb_timeline_share(struct hb_timeline *t, uint32_t domain)
{
	TimelineShare ts = TIMELINE_SHARE__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hb_client *c;
	int r;

	if (!t)
		return hbl_fail(-EINVAL);
	c = t->client;
	hbl_lock(c);
	ts.timeline = t->id;
	ts.domain = domain;
	m.body_case = CLIENT_MSG__BODY_TIMELINE_SHARE;
	m.timeline_share = &ts;
	r = hbl_call_simple(c, &m);
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

HBL_PUBLIC void hb_timeline_destroy(struct hb_timeline *t)
{
	TimelineDestroy td = TIMELINE_DESTROY__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hb_client *c;
	int saved = errno;

	if (!t)
		return;
	c = t->client;
	hbl_lock(c);
	/* A broken client's session is over, and the daemon destroyed the timeline with it. */
	if (hbl_conn_broken(&c->conn) == 0) {
		/* Points up to the value complete, not -EPIPE: the daemon must know it first. */
		if (!t->failed && t->value > t->sent)
			send_record(c, t, t->value, 0, false);
		td.timeline = t->id;
		m.body_case = CLIENT_MSG__BODY_TIMELINE_DESTROY;
		m.timeline_destroy = &td;
		hbl_call_simple(c, &m);
	}
	hbc_list_remove(&t->link);
	hbl_timeline_slots_free(t);
	free(t);
	hbl_unlock(c);
	errno = saved;
}

/* ---- implicit sync ---------------------------------------------------------------------- */

static bool access_ok(uint32_t access)
{
	return access != 0 && !(access & ~(HB_ACCESS_READ | HB_ACCESS_WRITE));
}

HBL_PUBLIC int hb_attach_fence(struct hb_client *c, const struct hb_id *id,
			       const struct hb_fence *f, uint32_t usage)
{
	FenceAttach fa = FENCE_ATTACH__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	int r;

	if (!c || !id || !f || f->timeline == 0 || !access_ok(usage))
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	fa.hid = hbl_wire_hid(id);
	fa.timeline = f->timeline;
	fa.value = f->value;
	fa.usage = usage;
	m.body_case = CLIENT_MSG__BODY_FENCE_ATTACH;
	m.fence_attach = &fa;
	r = hbl_call_simple(c, &m);
	hbl_unlock(c);
	return r < 0 ? hbl_fail(r) : 0;
}

/* Asks the daemon which pending fences an access must wait for (and, by answering, whether
 * this domain is a side of the share at all). */
int hbl_resv_query(struct hb_client *c, const struct hb_id *id, uint32_t access,
		   struct hb_fence *out, size_t *n)
{
	CpuAccess ca = CPU_ACCESS__INIT;
	ClientMsg m = CLIENT_MSG__INIT;
	struct hbb_reply reply;
	int r;

	ca.hid = hbl_wire_hid(id);
	ca.access = access;
	m.body_case = CLIENT_MSG__BODY_CPU_ACCESS;
	m.cpu_access = &ca;
	r = hbl_call(c, &m, SERVER_MSG__BODY_CPU_ACCESS, &reply);
	if (r < 0)
		return r;
	/* The frame codec bounded the count by HBP_RESV_LIMIT == HB_RESV_MAX. */
	*n = reply.msg->cpu_access->n_fences;
	for (size_t i = 0; i < *n; i++) {
		out[i].timeline = reply.msg->cpu_access->fences[i]->timeline;
		out[i].value = reply.msg->cpu_access->fences[i]->value;
	}
	hbl_reply_free(&reply);
	return 0;
}

HBL_PUBLIC int hb_begin_cpu_access(struct hb_client *c, const struct hb_id *id, uint32_t access,
				   int timeout_ms)
{
	struct hb_fence fences[HB_RESV_MAX];
	struct hb_sync *syncs[HB_RESV_MAX];
	size_t n = 0, ns = 0;
	int r;

	if (!c || !id || !access_ok(access) || timeout_ms < -1)
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	r = hbl_resv_query(c, id, access, fences, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct hb_sync *s;
		int e = hbl_sync_open_locked(c, &fences[i], &s);

		/* A timeline destroyed since the answer has completed all its points. */
		if (e == -ENOENT)
			continue;
		if (e < 0)
			r = e;
		else
			syncs[ns++] = s;
	}
	hbl_unlock(c);
	if (r == 0 && ns > 0) {
		r = hbl_syncs_wait(syncs, ns, true, timeout_ms, NULL);
		/* Fences completed by a lost connection were not signalled: nothing says the
		 * writers are done, so this is no start of access. */
		if (r == 0)
			r = hbl_conn_broken(&c->conn);
	}
	/* Closing cancels the daemon's waits: a timed-out begin leaves nothing behind, so the
	 * retry the caller makes starts from scratch (fences.md §2.3 restart rule). */
	if (ns > 0) {
		hbl_lock(c);
		for (size_t i = 0; i < ns; i++)
			hbl_sync_close_locked(syncs[i]);
		hbl_unlock(c);
	}
	if (r < 0)
		return hbl_fail(r);
	/* Acquire: reads of the buffer from here on see what the signallers wrote. */
	hbl_shared_memory_barrier();
	return 0;
}

/* Whether this client itself exported or imports the buffer behind id. */
static bool own_share(struct hb_client *c, const struct hb_id *id)
{
	struct hb_buffer *b;
	struct hb_import *im;

	hbc_list_for_each_safe(b, &c->buffers, struct hb_buffer, link)
	{
		if (b->exported && hb_id_equal(&b->hid, id))
			return true;
	}
	hbc_list_for_each_safe(im, &c->imports, struct hb_import, link)
	{
		if (hb_id_equal(&im->hid, id))
			return true;
	}
	return false;
}

HBL_PUBLIC int hb_end_cpu_access(struct hb_client *c, const struct hb_id *id, uint32_t access)
{
	struct hb_fence fences[HB_RESV_MAX];
	size_t n;
	int r = 0;

	if (!c || !id || !access_ok(access))
		return hbl_fail(-EINVAL);
	hbl_lock(c);
	/* The common case (our own export or import) needs no round trip; anything else is
	 * checked by the daemon, which knows whether this domain is a side of the share. The
	 * answer's fences are not waited for: END never waits. */
	if (!own_share(c, id)) {
		r = hbl_conn_broken(&c->conn);
		if (r == 0)
			r = hbl_resv_query(c, id, access, fences, &n);
	}
	hbl_unlock(c);
	if (r < 0)
		return hbl_fail(r);
	/* Release: the caller's writes are ordered before whatever it does next, typically
	 * hb_timeline_signal (which fences again on its own). */
	hbl_shared_memory_barrier();
	return 0;
}
