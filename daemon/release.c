/* The end of a session, as far as what it owns goes (see hbd_session_release). */
#include "daemon/hyperbufd.h"

/*
 * What ending a session gives back, whatever becomes of its connection (PROTOCOL.md §6): its
 * timelines and waits, imports and buffers, its place among its domain's client sessions; a
 * domain whose last client session this was may be gone. The session code calls it through
 * d->session_release, as it knows nothing of what a session owns.
 */
void hbd_session_release(struct hbd_session *s)
{
	bool was_client = s->hello && !s->control;
	struct hbd_buffer *b;
	struct hbd_import *im;

	/* Fences before buffers: its timelines complete with -EPIPE for their waiters while
	 * the domain's bookkeeping is still whole. */
	hbd_session_fences_close(s);
	/* Imports first: a buffer this session both owns and imports is then reclaimed once. */
	hbc_list_for_each_safe(im, &s->imports, struct hbd_import, link) hbd_import_release(s, im);
	hbc_list_for_each_safe(b, &s->buffers, struct hbd_buffer, owner_link) hbd_buffer_free(b);
	s->hello = s->control = false;
	s->attached = 0;
	if (was_client) {
		s->dom->sessions--;
		hbd_domain_check_gone(s->d, s->dom, false);
	}
}
