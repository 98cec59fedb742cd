/*
 * A hostile group member rewrites a buffer's reference directory in the group's pool
 * (test_it_hostile `hostile_directory`): the importer's walk must refuse it (EBADMSG, or ELOOP
 * for a cycle) and leave no import behind, the daemon must not trust the rewritten pages when
 * it frees the buffer (its pages come back), and the pool's header stays intact. The attacker
 * is the exporter's domain, as in the original: a buffer's directory is its exporter's word,
 * and the importer must not take it on trust. It maps the pool as any program of the domain
 * could (cf_pool_open: a KVM guest's BAR, an emulated VM's ivshmem memfd) and finds the
 * directory by scanning it. Written once for every target (tests/conform/conform.h).
 */
#include "protocol/limits.h"
#include "tests/conform/conform.h"

struct dir_attack {
	const char *what;
	size_t size;      /* buffer size */
	unsigned index;   /* which entry of the root */
	int64_t value;    /* new ref; -1 = the root itself, -2 = the first level-1 page */
	int err, err_alt; /* hb_import's errno (err_alt also accepted) */
};

/* 65 pages: the smallest buffer with a directory (HBP_INLINE_REFS_MAX + 1); 1100: a
 * directory of two levels. */
static const struct dir_attack attacks[] = {
    {"data ref to the header page", 65 * 4096, 1, 0, EBADMSG, EBADMSG},
    {"data ref beyond the pool", 65 * 4096, 2, 32768, EBADMSG, EBADMSG},
    {"data ref far beyond the pool", 65 * 4096, 0, 0xffffffffu, EBADMSG, EBADMSG},
    {"data ref to its own directory", 65 * 4096, 0, -1, EBADMSG, ELOOP},
    {"non-zero slack after the last ref", 65 * 4096, 65, 5, EBADMSG, EBADMSG},
    {"level-1 ref to the header page", 1100 * 4096, 1, 0, EBADMSG, EBADMSG},
    {"level-1 page listed twice (cycle)", 1100 * 4096, 1, -2, EBADMSG, ELOOP},
    {"root listing itself (cycle)", 1100 * 4096, 1, -1, EBADMSG, ELOOP},
};
#define N_ATTACKS (sizeof(attacks) / sizeof(attacks[0]))

static uint32_t ref_at(const uint8_t *page, unsigned i)
{
	const uint8_t *b = page + 4 * i;

	return b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* A directory page whose first ref is first and which lists n refs, the rest zero. */
static bool is_dir(const struct cf_pool *p, uint32_t page, uint32_t first, unsigned n)
{
	const uint8_t *mem = p->mem + (size_t)page * HBP_PAGE_SIZE;
	uint32_t pages = (uint32_t)(p->size / HBP_PAGE_SIZE);

	for (unsigned i = 0; i < HBP_REFS_PER_PAGE; i++) {
		uint32_t ref = ref_at(mem, i);

		if (i == 0 && ref != first)
			return false;
		if (i < n && (ref == 0 || ref >= pages || ref == page))
			return false;
		if (i >= n && ref != 0)
			return false;
	}
	return true;
}

/* The first page after the header holding these bytes (memmem), or 0: page by page through
 * the mapping (a BAR has no SEEK_DATA). */
static uint32_t find_bytes(const struct cf_pool *p, const void *needle, size_t len)
{
	static uint8_t page[HBP_PAGE_SIZE];

	for (uint32_t i = 1; i < p->size / HBP_PAGE_SIZE; i++) {
		memcpy(page, p->mem + (size_t)i * HBP_PAGE_SIZE, sizeof(page));
		if (memmem(page, sizeof(page), needle, len))
			return i;
	}
	return 0;
}

static uint32_t find_dir(const struct cf_pool *p, uint32_t first, unsigned n)
{
	for (uint32_t i = 1; i < p->size / HBP_PAGE_SIZE; i++) {
		if (is_dir(p, i, first, n))
			return i;
	}
	return 0;
}

/* The directory root of an exported, patterned buffer, and its first level-1 page (*l1) if it
 * has two levels. */
static uint32_t find_root(const struct cf_pool *p, struct hb_buffer *b, uint32_t *l1)
{
	uint32_t pages = (uint32_t)((hb_buffer_size(b) + HBP_PAGE_SIZE - 1) / HBP_PAGE_SIZE);
	uint32_t d0, dir, root;

	d0 = find_bytes(p, (const uint8_t *)hb_buffer_data(b) + 64, 256);
	CHECK(d0 > 0);
	dir = find_dir(p, d0, pages < HBP_REFS_PER_PAGE ? pages : HBP_REFS_PER_PAGE);
	CHECK(dir > 0);
	*l1 = 0;
	if (pages <= HBP_REFS_PER_PAGE)
		return dir;
	*l1 = dir;
	root = find_dir(p, dir, (pages + HBP_REFS_PER_PAGE - 1) / HBP_REFS_PER_PAGE);
	CHECK(root > 0);
	return root;
}

static void write_ref(struct cf_pool *p, uint32_t page, unsigned index, uint32_t ref)
{
	volatile uint8_t *at = p->mem + (size_t)page * HBP_PAGE_SIZE + 4 * index;

	at[0] = (uint8_t)ref;
	at[1] = (uint8_t)(ref >> 8);
	at[2] = (uint8_t)(ref >> 16);
	at[3] = (uint8_t)(ref >> 24);
	__sync_synchronize(); /* in the pool before the importer hears of the buffer */
}

/* Honest clients still share, a directory and all: vm2 checks it byte for byte. */
static void honest_export(struct hb_client *c)
{
	struct hb_buffer *b = CF_ALLOC(c, 2, 65 * 4096, 0);
	struct hb_id id;

	cf_fill(hb_buffer_data(b), 65 * 4096, 0xabc0);
	CF_EXPORT(b, NULL, 0, &id);
	cf_put_id("honest", &id);
	cf_barrier("honest");
	hb_buffer_free(b);
}

/* vm1: exports a buffer per attack, rewrites its directory, lets vm2 try, frees it. */
static void attacker_vm1(void)
{
	const struct hbp_pool_header *h;
	struct hb_client *c;
	struct cf_pool p;
	char key[16];

	/* First: it asks the daemon for the group on a stream of its own (a guest's one port). */
	CHECK_EQ(cf_pool_open(2, &p), 0);
	c = cf_connect();
	for (unsigned i = 0; i < N_ATTACKS; i++) {
		const struct dir_attack *a = &attacks[i];
		struct hb_buffer *b = CF_ALLOC(c, 2, a->size, 0);
		uint32_t root, l1;
		struct hb_id id;

		cf_fill(hb_buffer_data(b), a->size, 0x600d + i);
		CF_EXPORT(b, NULL, 0, &id);
		root = find_root(&p, b, &l1);
		write_ref(&p, root, a->index,
			  a->value == -1   ? root
			  : a->value == -2 ? l1
					   : (uint32_t)a->value);
		snprintf(key, sizeof(key), "id%u", i);
		cf_put_id(key, &id);
		snprintf(key, sizeof(key), "tried%u", i);
		cf_barrier(key);
		hb_buffer_free(b);
		/* The daemon freed the pages it handed out, not what the directory says now. */
		CF_STAT_BECOMES("pages_used", 0);
	}
	honest_export(c);
	/* The daemon never trusted the rewritten pages: the header is intact. */
	h = (const struct hbp_pool_header *)p.mem;
	CHECK(memcmp(h->magic, HBP_POOL_MAGIC, sizeof(h->magic)) == 0);
	CHECK_EQ(h->group, p.group);
	CHECK_EQ(h->size, p.size);
	cf_pool_close(&p);
}

/* vm2: each import fails as the attack says, and leaves no import behind. */
static void importer_vm2(void)
{
	struct hb_client *c = cf_connect();
	struct hb_import *im;
	struct hb_id id;
	char key[16];

	for (unsigned i = 0; i < N_ATTACKS; i++) {
		const struct dir_attack *a = &attacks[i];
		int e;

		snprintf(key, sizeof(key), "id%u", i);
		cf_get_id(key, &id);
		errno = 0;
		if (hb_import(c, &id, 0) != NULL)
			cf_fail(__FILE__, __LINE__, "%s: the import succeeded", a->what);
		e = errno;
		if (e != a->err && e != a->err_alt)
			cf_fail(__FILE__, __LINE__, "%s: errno %d (%s), want %s", a->what, e,
				strerror(e), strerror(a->err));
		CF_STAT_BECOMES("imports", 0);
		snprintf(key, sizeof(key), "tried%u", i);
		cf_barrier(key);
	}
	cf_get_id("honest", &id);
	im = CF_IMPORT(c, &id, 0);
	CF_CHECK_PATTERN(hb_import_data(im), 65 * 4096, 0xabc0);
	hb_import_release(im);
	cf_barrier("honest");
}

CF_CASE_EXCEPT(hostile_directory, CF_XEN,
	       "Xen has no pools: a buffer's pages and directory are grants of its exporter's "
	       "process, no group memory another member could rewrite",
	       {1, attacker_vm1}, {2, importer_vm2})
