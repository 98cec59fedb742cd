/* Local users' connections to the host and control sockets, counted per uid (door.c limits
 * them, session.c keeps the counts). */
#include <stdlib.h>

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
