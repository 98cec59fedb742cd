/*
 * Many buffers per session, many sessions: every request that names a buffer or an import by
 * handle finds the right one (the daemon's handle tables), in any order of allocation and
 * free, and everything comes back. Figures of the same shape at 64k exports: make bench (e).
 */
#include "tests/it_common.h"

enum { VMS = 8, PER_VM = 400 };

static void start(struct hbt_daemon *d)
{
	char cfg[4096];
	size_t n;

	n = (size_t)snprintf(cfg, sizeof(cfg),
			     "[daemon]\nbackend = kvm\nsocket = host.sock\nlog = info\n\n"
			     "[limits]\nexports_per_domain = %d\n\n",
			     PER_VM);
	for (int i = 1; i <= VMS; i++)
		n += (size_t)snprintf(cfg + n, sizeof(cfg) - n,
				      "[vm vm%d]\nid = %d\nchannel = vm%d.sock\n\n"
				      "[group g%d]\nmembers = host, vm%d\nsize = 4M\n"
				      "ivshmem = g%d.sock\nshare = 100%%\n\n",
				      i, i, i, i, i, i);
	CHECK(n < sizeof(cfg));
	hbt_daemon_start_config(d, cfg);
}

/* Buffer i of VM v: a size and a seed of its own, so a mix-up shows in the bytes. */
static uint64_t size_of(int v, int i)
{
	return 1 + (uint64_t)((v * 7 + i * 13) % 3) * 4096 + (uint64_t)i % 100;
}

TEST(thousands_of_handles_find_their_buffers)
{
	static struct hb_buffer *b[VMS][PER_VM];
	static struct hb_id id[VMS][PER_VM];
	struct hb_client *c[VMS], *host;
	struct hbt_daemon d;
	struct hb_info info;
	uint64_t pages = 0;

	start(&d);
	host = IT_CONNECT(hbt_addr_host(&d));
	for (int v = 0; v < VMS; v++)
		c[v] = IT_CONNECT(hbt_addr_vm(&d, v + 1));
	/* Allocated VM after VM in turn, so that every session's handles interleave. */
	for (int i = 0; i < PER_VM; i++)
		for (int v = 0; v < VMS; v++) {
			b[v][i] = IT_ALLOC(c[v], 0, size_of(v, i), 0);
			pages += IT_PAGES(size_of(v, i));
		}
	for (int v = 0; v < VMS; v++)
		for (int i = PER_VM - 1; i >= 0; i--) {
			it_fill(b[v][i], (uint64_t)v << 32 | (uint64_t)i);
			IT_EXPORT(b[v][i], NULL, 0, &id[v][i]);
		}
	CHECK_EQ(IT_STAT(&d, "exports"), VMS * PER_VM);
	CHECK_EQ(IT_STAT(&d, "pages_used"), (long long)pages); /* inline: no directory pages */
	/* The host imports every 7th, checks the bytes, keeps some imports for later. */
	for (int v = 0; v < VMS; v++)
		for (int i = v % 7; i < PER_VM; i += 7) {
			struct hb_import *im = IT_IMPORT(host, &id[v][i], 0);

			IT_CHECK_IMPORT(im, size_of(v, i), (uint64_t)v << 32 | (uint64_t)i);
			hb_import_release(im);
		}
	/* Every other buffer freed, odd ones first, from the last VM to the first. */
	for (int v = VMS - 1; v >= 0; v--)
		for (int i = 1; i < PER_VM; i += 2) {
			hb_buffer_free(b[v][i]);
			b[v][i] = NULL;
		}
	for (int v = 0; v < VMS; v++)
		for (int i = 0; i < PER_VM; i++) {
			errno = 0;
			if (b[v][i]) {
				CHECK_EQ(hb_query(c[v], &id[v][i], &info), 0);
				CHECK_EQ(info.size, size_of(v, i));
			} else {
				CHECK(hb_query(c[v], &id[v][i], &info) < 0 && errno == ENOENT);
			}
		}
	CHECK_EQ(IT_STAT(&d, "exports"), VMS * PER_VM / 2);
	for (int v = 0; v < VMS; v++)
		for (int i = 0; i < PER_VM; i += 2)
			hb_buffer_free(b[v][i]);
	IT_CHECK_STAT(&d, "buffers", 0);
	IT_CHECK_STAT(&d, "pages_used", 0);
	for (int v = 0; v < VMS; v++)
		hb_disconnect(c[v]);
	hb_disconnect(host);
	IT_STOP(&d);
}
