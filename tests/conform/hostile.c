/* What the hostile cases share (tests/conform/raw.h): attacks everywhere at once, drops,
 * bystanders. */
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

/* Sessions the daemon hung up on in this role's attack (cf_hostile_everywhere sums them). */
static long long n_dropped;
static bool uncounted;

void cf_hostile_uncounted(void)
{
	uncounted = true;
}

void cf_raw_dropped_at(const char *file, int line, struct cf_raw *r, long long *errs)
{
	if (!cf_raw_wait_closed(r, CF_WAIT_MS))
		cf_fail(file, line, "the daemon did not hang up within %d ms", CF_WAIT_MS);
	if (errs)
		cf_stat_becomes_at(file, line, "errors_protocol", ++*errs);
	n_dropped++;
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

void cf_hostile_everywhere(void (*attack)(void))
{
	long long want;
	char key[16];

	if (cf_domain() == 0)
		cf_put_u64("errors", (uint64_t)cf_stat("errors_protocol"));
	cf_barrier("ready");
	attack();
	snprintf(key, sizeof(key), "dropped%u", cf_domain());
	cf_put_u64(key, (uint64_t)n_dropped);
	cf_barrier("attacked");
	if (cf_domain() == 0 && !uncounted) {
		/* Every hang-up counted once, and nothing else: the drops are the only
		 * protocol errors of these attacks. */
		want = (long long)cf_get_u64("errors");
		for (uint32_t dom = 0; dom <= 2; dom++) {
			snprintf(key, sizeof(key), "dropped%u", dom);
			want += (long long)cf_get_u64(key);
		}
		CF_STAT_BECOMES("errors_protocol", want);
	}
	honest_share();
}
