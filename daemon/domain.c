/* The domain table: who exists, who is present, and telling peers when a domain goes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hyperbufd.h"

struct hbd_domain *hbd_domain_get(struct hbd *d, uint32_t id)
{
	struct hbd_domain *dom;
	const char *name;

	hbc_list_for_each_safe(dom, &d->domains, struct hbd_domain, link)
	{
		if (dom->id == id)
			return dom;
	}
	dom = calloc(1, sizeof(*dom));
	if (!dom)
		return NULL;
	dom->id = id;
	name = hbc_config_domain_name(d->cfg, id);
	if (name)
		snprintf(dom->name, sizeof(dom->name), "%s", name);
	else
		snprintf(dom->name, sizeof(dom->name), "dom%u", id);
	hbc_list_insert_tail(&d->domains, &dom->link);
	return dom;
}

void hbd_domain_event(struct hbd *d, uint32_t id, uint32_t type, const struct hb_id *hid,
		      uint32_t from, uint64_t size, const uint8_t *meta, uint32_t meta_len)
{
	struct hbd_session *s;

	hbc_list_for_each_safe(s, &d->sessions, struct hbd_session, link)
	{
		if (s->dom->id == id && s->hello && !s->control && !s->closing)
			hbd_session_event(s, type, hid, from, size, meta, meta_len);
	}
}

/* Its peers (everybody it could share with) hear about a domain going once per
 * disappearance; a VM that attaches again is present again. */
void hbd_domain_check_gone(struct hbd *d, struct hbd_domain *dom, bool pool_lost)
{
	struct hbd_domain *other;

	if (!dom->present || dom->links || (dom->sessions && !pool_lost))
		return;
	dom->present = false;
	log_info("domain %u (%s) is gone", dom->id, dom->name);
	hbd_watch_emit(d, &(struct hbd_watch_ev){.what = "domain_gone", .domain = dom->id});
	hbc_list_for_each_safe(other, &d->domains, struct hbd_domain, link)
	{
		if (other == dom || d->backend->can_share(d->backend_state, dom->id, other->id) < 0)
			continue;
		hbd_domain_event(d, other->id, HB_EVENT_DOMAIN_GONE, NULL, dom->id, 0, NULL, 0);
	}
}
