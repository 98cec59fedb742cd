/* What the hostile cases share (tests/conform/raw.h): attacks in turn, drops, bystanders. */
#include "tests/conform/raw.h"

ClientMsg cf_raw_query_msg(Query *q, uint8_t *hid, size_t hid_len)
{
	ClientMsg m = CLIENT_MSG__INIT;

	query__init(q);
	q->hid.data = hid;
	q->hid.len = hid_len;
	CF_MSG(m, QUERY, query, q);
	return m;
}

void cf_raw_alive_at(const char *file, int line, struct cf_raw *r)
{
	uint8_t hid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	Query q;
	ClientMsg m = cf_raw_query_msg(&q, hid, 16);
	uint32_t err = cf_raw_err_at(file, line, r, &m);

	if (err != ENOENT)
		cf_fail(file, line, "a Query of an unknown hid: error %u, want ENOENT", err);
}

void cf_raw_dropped_at(const char *file, int line, struct cf_raw *r, long long *errs)
{
	if (!cf_raw_wait_closed(r, CF_WAIT_MS))
		cf_fail(file, line, "the daemon did not hang up within %d ms", CF_WAIT_MS);
	cf_stat_becomes_at(file, line, "errors_protocol", ++*errs);
	cf_raw_drop(r);
}

/* vm1 shares 3 pages and 11 bytes with vm2, which checks them; the host waits. */
static void honest_share(void)
{
	struct hb_client *c;
	struct hb_buffer *b;
	struct hb_import *im;
	struct hb_id id;

	if (cf_domain() == 1) {
		c = cf_connect();
		b = CF_ALLOC(c, 2, 3 * 4096 + 11, 0);
		cf_fill(hb_buffer_data(b), 3 * 4096 + 11, 0xabc0);
		CF_EXPORT(b, "ok", 2, &id);
		cf_put_id("honest", &id);
		cf_barrier("honest");
		hb_buffer_free(b);
	} else if (cf_domain() == 2) {
		c = cf_connect();
		cf_get_id("honest", &id);
		im = CF_IMPORT(c, &id, 0);
		CF_CHECK_PATTERN(hb_import_data(im), 3 * 4096 + 11, 0xabc0);
		hb_import_release(im);
		cf_barrier("honest");
	} else {
		cf_barrier("honest");
	}
}

void cf_hostile_in_turn(void (*attack)(void))
{
	char name[16];

	for (uint32_t dom = 0; dom <= 2; dom++) {
		if (dom == cf_domain())
			attack();
		snprintf(name, sizeof(name), "turn%u", dom);
		cf_barrier(name);
	}
	honest_share();
}
