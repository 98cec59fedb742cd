/* Local users' connections to the host and control sockets, counted per uid (door.c limits
 * them, session.c and hbd_session_mark_hello keep the counts). */
#include <errno.h>
#include <stdlib.h>

#include "common/log.h"

#include "daemon/hyperbufd.h"

struct hbd_user *hbd_user_get(struct hbd *d, uid_t uid)
{
	struct hbd_user *u;

	hbc_list_for_each_safe(u, &d->users, struct hbd_user, link)
	{
		if (u->uid == uid)
			return u;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	hbc_list_insert_tail(&d->users, &u->link);
	return u;
}

void hbd_user_put(struct hbd *d, struct hbd_user *u)
{
	if (!u || u->pending || u->sessions)
		return;
	hbc_list_remove(&u->link);
	free(u);
}

int hbd_session_mark_hello(struct hbd_session *s, bool control)
{
	struct hbd_user *u = s->user;

	if (u && u->sessions >= s->d->cfg->sessions_per_uid) {
		s->d->stats.refused_limits++;
		log_warn_limited(&s->d->host.refused_sessions,
				 "%s: uid %u has %u sessions (sessions_per_uid); refusing pid %d",
				 s->label, (unsigned)u->uid, u->sessions, (int)s->pid);
		return -EUSERS;
	}
	ev_timer_stop(s->d->loop, &s->hello_timer);
	if (u) {
		u->pending--;
		u->sessions++;
	}
	s->hello = true;
	s->control = control;
	if (!control) {
		s->dom->sessions++;
		s->dom->present = true;
	}
	hbd_state_mark_session(s);
	return 0;
}
