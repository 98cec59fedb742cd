/*
 * The restart state's journal and reader (daemon/journal.c, daemon/state_read.c), with no
 * daemon: a model of objects changes at random, transaction after transaction, compactions
 * included, and the journal must always read as the model's last committed version.
 *
 * - Crash at any point: the journal calls back at every step that matters (before records are
 *   written, before the commit store, before and after a compaction's area switch). A copy of
 *   the memfd taken there, with the not yet committed bytes scribbled over as a torn write
 *   would leave them, must read as the state before the transaction, or after it once its
 *   commit store is done: never anything in between.
 * - Corruption: every byte of the used part of a final journal flipped in turn, and the
 *   journal cut at every length, reads either as the model or is refused with a reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/hyperbufd.h"
#include "daemon/journal.h"
#include "daemon/state.h"
#include "tests/harness.h"

#define AREA      65536u
#define MAX_OBJS  32
#define MAX_BYTES 512

/* One object of the model: its key, kind and its last record, packed. */
struct obj {
	uint64_t key;
	int kind; /* enum hbd_st_kind, or 0: a buffer's state (keyed by its buffer) */
	uint8_t rec[MAX_BYTES];
	size_t len;
};

struct model {
	struct obj v[3 * MAX_OBJS];
	size_t n;
	uint64_t next_key;
	uint64_t seed;
};

static uint64_t rnd(struct model *m)
{
	m->seed ^= m->seed << 13;
	m->seed ^= m->seed >> 7;
	m->seed ^= m->seed << 17;
	return m->seed;
}

static struct obj *find(struct model *m, int kind, uint64_t key)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].kind == kind && m->v[i].key == key)
			return &m->v[i];
	return NULL;
}

static void pack(struct obj *o, const StRecord *rec)
{
	o->len = st_record__get_packed_size(rec);
	CHECK(o->len <= MAX_BYTES);
	st_record__pack(rec, o->rec);
}

static struct obj *upsert(struct model *m, int kind, uint64_t key)
{
	struct obj *o = find(m, kind, key);

	if (!o) {
		CHECK(m->n < sizeof(m->v) / sizeof(m->v[0]));
		o = &m->v[m->n++];
		o->kind = kind;
		o->key = key;
	}
	return o;
}

static void drop(struct model *m, int kind, uint64_t key)
{
	struct obj *o = find(m, kind, key);

	if (o)
		*o = m->v[--m->n];
}

/* ---- objects the reader accepts ------------------------------------------------------- */

static void put_session(struct model *m, uint64_t serial)
{
	StRecord rec = ST_RECORD__INIT;
	StSession s = ST_SESSION__INIT;
	uint8_t token[HBP_TOKEN_LEN];

	memset(token, (int)serial, sizeof(token));
	s.serial = serial;
	s.door = HBD_DOOR_HOST;
	s.token = (ProtobufCBinaryData){sizeof(token), token};
	s.last_request = (uint32_t)rnd(m);
	rec.body_case = ST_RECORD__BODY_SESSION;
	rec.session = &s;
	pack(upsert(m, HBD_ST_SESSION, serial), &rec);
}

static void put_buffer_state(struct model *m, uint64_t handle, uint64_t owner)
{
	StRecord rec = ST_RECORD__INIT;
	StBufferState st = ST_BUFFER_STATE__INIT;
	uint8_t meta[240];

	memset(meta, (int)rnd(m), sizeof(meta));
	st.handle = handle;
	st.owner = owner;
	st.meta = (ProtobufCBinaryData){rnd(m) % sizeof(meta), meta};
	st.gen = 1;
	rec.body_case = ST_RECORD__BODY_BUFFER_STATE;
	rec.buffer_state = &st;
	pack(upsert(m, 0, handle), &rec);
}

static void put_buffer(struct model *m, uint64_t handle, uint64_t owner)
{
	StRecord rec = ST_RECORD__INIT;
	StBuffer b = ST_BUFFER__INIT;

	b.handle = handle;
	b.creator = owner;
	b.peer = 1;
	b.size = 4096;
	b.data_pages = 1;
	rec.body_case = ST_RECORD__BODY_BUFFER;
	rec.buffer = &b;
	pack(upsert(m, HBD_ST_BUFFER, handle), &rec);
	put_buffer_state(m, handle, owner);
}

static void put_import(struct model *m, uint64_t handle, uint64_t session, uint64_t buffer)
{
	StRecord rec = ST_RECORD__INIT;
	StImport im = ST_IMPORT__INIT;

	im.handle = handle;
	im.session = session;
	im.buffer = buffer;
	im.gen = 1;
	rec.body_case = ST_RECORD__BODY_IMPORT;
	rec.import = &im;
	pack(upsert(m, HBD_ST_IMPORT, handle), &rec);
}

static void put_timeline(struct model *m, uint64_t id, uint64_t owner)
{
	StRecord rec = ST_RECORD__INIT;
	StTimeline t = ST_TIMELINE__INIT;

	t.id = id;
	t.owner = owner;
	t.value = rnd(m) % 1000;
	rec.body_case = ST_RECORD__BODY_TIMELINE;
	rec.timeline = &t;
	pack(upsert(m, HBD_ST_TIMELINE, id), &rec);
}

static void put_counters(struct obj *o, const struct model *m)
{
	StRecord rec = ST_RECORD__INIT;
	StCounters c = ST_COUNTERS__INIT;

	c.next_handle = m->next_key + 1;
	c.next_session = m->next_key + 1;
	rec.body_case = ST_RECORD__BODY_COUNTERS;
	rec.counters = &c;
	pack(o, &rec);
}

/* ---- the journal side: the same changes as records -------------------------------------- */

static void journal_obj(struct hbd_journal *j, const struct obj *o)
{
	CHECK_EQ(hbd_journal_put(j, o->rec, o->len), 0);
}

static void journal_drop(struct hbd_journal *j, int kind, uint64_t key)
{
	StRecord rec = ST_RECORD__INIT;
	StDrop dr = ST_DROP__INIT;
	uint8_t buf[64];
	size_t len;

	dr.kind = (uint32_t)kind;
	dr.key = key;
	rec.body_case = ST_RECORD__BODY_DROP;
	rec.drop = &dr;
	len = st_record__pack(&rec, buf);
	CHECK_EQ(hbd_journal_put(j, buf, len), 0);
}

static int snapshot(void *ctx, struct hbd_journal *j)
{
	struct model *m = ctx;
	struct obj counters;
	int r;

	put_counters(&counters, m);
	r = hbd_journal_put(j, counters.rec, counters.len);
	/* Buffers before their states, as the daemon writes them. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < m->n && r == 0; i++)
			if ((m->v[i].kind == 0) == (pass == 1))
				r = hbd_journal_put(j, m->v[i].rec, m->v[i].len);
	return r;
}

/* Ends every object of a session (its imports, buffers' imports, buffers, timelines). */
static void end_session(struct model *m, struct hbd_journal *j, uint64_t serial)
{
	StRecord *rec;

	for (size_t i = 0; i < m->n;) {
		struct obj *o = &m->v[i];
		bool mine = false;

		rec = st_record__unpack(NULL, o->len, o->rec);
		CHECK(rec != NULL);
		if (o->kind == HBD_ST_IMPORT)
			mine = rec->import->session == serial ||
			       find(m, 0, rec->import->buffer) == NULL;
		else if (o->kind == HBD_ST_TIMELINE)
			mine = rec->timeline->owner == serial;
		st_record__free_unpacked(rec, NULL);
		if (mine) {
			journal_drop(j, o->kind, o->key);
			drop(m, o->kind, o->key);
			continue;
		}
		i++;
	}
	/* Its buffers become orphans (owner 0), as after hbd_buffer_free with importers. */
	for (size_t i = 0; i < m->n; i++) {
		struct obj *o = &m->v[i];

		if (o->kind != 0)
			continue;
		rec = st_record__unpack(NULL, o->len, o->rec);
		if (rec->buffer_state->owner == serial) {
			put_buffer_state(m, o->key, 0);
			journal_obj(j, find(m, 0, o->key));
		}
		st_record__free_unpacked(rec, NULL);
	}
	journal_drop(j, HBD_ST_SESSION, serial);
	drop(m, HBD_ST_SESSION, serial);
}

/* Some key of kind, or 0. */
static uint64_t any(struct model *m, int kind)
{
	size_t start = m->n ? rnd(m) % m->n : 0;

	for (size_t k = 0; k < m->n; k++) {
		struct obj *o = &m->v[(start + k) % m->n];

		if (o->kind == kind)
			return o->key;
	}
	return 0;
}

/* The counters go with every transaction that made keys, as the daemon's commits do. */
static void journal_counters(struct model *m, struct hbd_journal *j)
{
	struct obj c;

	put_counters(&c, m);
	journal_obj(j, &c);
}

/* One random change, to the model and to the journal's open transaction. */
static void change(struct model *m, struct hbd_journal *j)
{
	uint64_t s = any(m, HBD_ST_SESSION), b = any(m, HBD_ST_BUFFER), key = ++m->next_key;
	bool full = m->n > 2 * MAX_OBJS;

	switch (rnd(m) % 7) {
	case 0:
		if (full)
			break;
		put_session(m, key);
		journal_obj(j, find(m, HBD_ST_SESSION, key));
		break;
	case 1:
		if (!s || full)
			break;
		put_buffer(m, key, s);
		journal_obj(j, find(m, HBD_ST_BUFFER, key));
		journal_obj(j, find(m, 0, key));
		break;
	case 2:
		if (!b)
			break;
		put_buffer_state(m, b, s);
		journal_obj(j, find(m, 0, b));
		break;
	case 3:
		if (!s || !b || full)
			break;
		put_import(m, key, s, b);
		journal_obj(j, find(m, HBD_ST_IMPORT, key));
		break;
	case 4:
		if (!s || full)
			break;
		put_timeline(m, key, s);
		journal_obj(j, find(m, HBD_ST_TIMELINE, key));
		break;
	case 5:
		if (s && (rnd(m) % 3 == 0 || full))
			end_session(m, j, s);
		break;
	case 6:
		if ((key = any(m, HBD_ST_IMPORT))) {
			journal_drop(j, HBD_ST_IMPORT, key);
			drop(m, HBD_ST_IMPORT, key);
		}
		break;
	}
}

/* ---- comparing what a journal reads as with a model ------------------------------------- */

struct copy {
	struct obj v[3 * MAX_OBJS];
	size_t n;
};

static void copy_model(struct copy *c, const struct model *m)
{
	memcpy(c->v, m->v, m->n * sizeof(m->v[0]));
	c->n = m->n;
}

/* 0 if mem reads as exactly the objects of c, 1 if it is refused, -1 if it reads as something
 * else (the failure this suite exists to catch). */
static int compare(const uint8_t *mem, size_t len, const struct copy *c)
{
	struct hbd_restore r;
	char err[256];
	size_t n = 0;

	if (hbd_restore_read(mem, len, &r, err, sizeof(err)) < 0) {
		hbd_restore_free(&r);
		return 1;
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct obj *o = &c->v[i];
		StRecord *rec = o->kind ? hbd_restore_get(&r, (enum hbd_st_kind)o->kind, o->key)
					: NULL;
		uint8_t buf[MAX_BYTES];
		size_t l;

		if (o->kind == 0) {
			StBufferState *st = hbd_restore_buffer_state(&r, o->key);
			StRecord wrap = ST_RECORD__INIT;

			if (!st)
				goto differ;
			wrap.body_case = ST_RECORD__BODY_BUFFER_STATE;
			wrap.buffer_state = st;
			l = st_record__pack(&wrap, buf);
		} else {
			if (!rec)
				goto differ;
			l = st_record__pack(rec, buf);
		}
		if (l != o->len || memcmp(buf, o->rec, l) != 0)
			goto differ;
		n++;
	}
	for (int k = HBD_ST_SESSION; k < HBD_ST_KINDS; k++)
		n -= r.maps[k].n;
	n -= r.buffer_states.n;
	hbd_restore_free(&r);
	return n == 0 ? 0 : -1;
differ:
	hbd_restore_free(&r);
	return -1;
}

/* ---- crash at every point ----------------------------------------------------------------- */

struct crash {
	struct hbd_journal *j;
	struct copy before, after; /* the committed state, and the one being committed */
	unsigned points, torn;
	uint64_t seed;
};

/* Where the committed records of the active area end: past it, a crash may leave anything. */
static size_t frontier(const uint8_t *img, unsigned *active)
{
	struct hbd_jheader h;
	size_t off = 0;

	memcpy(&h, img, sizeof(h));
	*active = h.active;
	for (uint64_t seq = h.base[h.active]; seq <= h.committed[h.active]; seq++) {
		uint32_t len;

		memcpy(&len, img + HBD_JOURNAL_HEADER + h.active * AREA + off, 4);
		off += HBD_JOURNAL_RECORD + ((len + 7u) & ~7u);
	}
	return off;
}

/* The journal is about to do what; a crash here must read as before or after, and so must the
 * memfd with anything scribbled past the committed records (a torn write). */
static void on_crash_point(void *ctx, const char *what)
{
	struct crash *cr = ctx;
	struct hbd_journal *j = cr->j;
	uint8_t *img = malloc(j->size);
	const struct copy *as;
	unsigned active;
	size_t end;

	CHECK(img != NULL);
	memcpy(img, j->map, j->size);
	if (compare(img, j->size, &cr->before) == 0)
		as = &cr->before;
	else if (compare(img, j->size, &cr->after) == 0)
		as = &cr->after;
	else
		hbt_fail(__FILE__, __LINE__, "crashed at \"%s\": reads as neither state", what);
	end = frontier(img, &active);
	for (int k = 0; k < 16; k++) {
		size_t off;

		cr->seed = cr->seed * 6364136223846793005ull + 1442695040888963407ull;
		off = (size_t)(cr->seed >> 17) % (2 * AREA - end);
		/* Past the frontier of the active area, or anywhere in the other one. */
		off = off < AREA - end ? active * AREA + end + off : (!active) * AREA + off - (AREA - end);
		img[HBD_JOURNAL_HEADER + off] ^= (uint8_t)(cr->seed >> 56 | 1);
		cr->torn++;
	}
	if (compare(img, j->size, as) != 0)
		hbt_fail(__FILE__, __LINE__, "crashed at \"%s\" with a torn write: reads as another "
					     "state",
			 what);
	cr->points++;
	free(img);
}

TEST(a_crash_anywhere_reads_as_before_or_after)
{
	static struct model m = {.seed = 0x9e3779b97f4a7c15ull};
	static struct crash cr;
	struct hbd_journal j;
	unsigned tx;

	CHECK_EQ(hbd_journal_create(&j, "test-state", AREA, 42), 0);
	cr.j = &j;
	cr.seed = 7;
	copy_model(&cr.after, &m);
	copy_model(&cr.before, &m);
	CHECK_EQ(hbd_journal_commit_snapshot(&j, snapshot, &m), 0);
	CHECK_EQ(compare(j.map, j.size, &cr.after), 0);
	j.crash_point = on_crash_point;
	j.crash_ctx = &cr;
	for (tx = 0; tx < 600; tx++) {
		int changes = 1 + (int)(rnd(&m) % 4);

		copy_model(&cr.before, &m);
		for (int k = 0; k < changes; k++)
			change(&m, &j);
		/* Churn without growth: the journal fills and compacts under the crash points. */
		uint64_t b = any(&m, HBD_ST_BUFFER);
		if (b) {
			put_buffer_state(&m, b, 0);
			journal_obj(&j, find(&m, 0, b));
		}
		journal_counters(&m, &j);
		copy_model(&cr.after, &m);
		CHECK_EQ(hbd_journal_commit(&j, snapshot, &m), 0);
		CHECK_EQ(compare(j.map, j.size, &cr.after), 0);
	}
	printf("# %u transactions, %u compactions, %u crash points checked, %u objects at the "
	       "end\n",
	       tx, (unsigned)j.compactions, cr.points, (unsigned)m.n);
	CHECK(j.compactions >= 3); /* the first snapshot, and compactions under crash points */
	hbd_journal_close(&j);
}

/* ---- corruption and truncation at every offset ------------------------------------------- */

TEST(a_corrupt_or_cut_journal_is_refused_or_intact)
{
	static struct model m = {.seed = 12345};
	static struct copy want;
	struct hbd_journal j;
	uint8_t *img;
	unsigned active;
	size_t used, end, refused = 0, intact = 0;

	CHECK_EQ(hbd_journal_create(&j, "test-state", AREA, 43), 0);
	CHECK_EQ(hbd_journal_commit_snapshot(&j, snapshot, &m), 0);
	for (int tx = 0; tx < 150; tx++) {
		for (int k = 0; k < 3; k++)
			change(&m, &j);
		journal_counters(&m, &j);
		CHECK_EQ(hbd_journal_commit(&j, snapshot, &m), 0);
	}
	copy_model(&want, &m);
	used = HBD_JOURNAL_HEADER + 2 * AREA;
	img = malloc(used);
	CHECK(img != NULL);
	end = HBD_JOURNAL_HEADER + frontier(j.map, &active) + active * AREA;
	/* Every byte of the header and of the committed records; one in 61 elsewhere. */
	for (size_t off = 0; off < used;
	     off += off < sizeof(struct hbd_jheader) ||
			    (off >= HBD_JOURNAL_HEADER + active * AREA && off < end)
			? 1
			: 61) {
		memcpy(img, j.map, used);
		img[off] ^= 0xff;
		switch (compare(img, used, &want)) {
		case 0:
			intact++;
			break;
		case 1:
			refused++;
			break;
		default:
			hbt_fail(__FILE__, __LINE__, "byte %zu flipped: reads as another state", off);
		}
	}
	for (size_t len = 0; len < used; len += len < HBD_JOURNAL_HEADER + 4096 ? 1 : 97) {
		int r = compare(j.map, len, &want);

		if (r < 0)
			hbt_fail(__FILE__, __LINE__, "cut at %zu: reads as another state", len);
		CHECK_EQ(r, 1); /* an area cut short is never taken */
	}
	printf("# %zu bytes flipped one by one: %zu refused, %zu without effect (not committed "
	       "data)\n",
	       used, refused, intact);
	CHECK(refused > 1000);
	free(img);
	hbd_journal_close(&j);
}

TEST(a_journal_never_completed_is_refused)
{
	static struct model m = {.seed = 99};
	struct hbd_journal j;
	struct hbd_restore r;
	char err[256];

	CHECK_EQ(hbd_journal_create(&j, "test-state", AREA, 44), 0);
	/* Nothing committed: no magic yet. */
	CHECK_EQ(hbd_restore_read(j.map, j.size, &r, err, sizeof(err)), -EBADMSG);
	hbd_restore_free(&r);
	CHECK(strstr(err, "magic") != NULL);
	CHECK_EQ(hbd_journal_commit_snapshot(&j, snapshot, &m), 0);
	CHECK_EQ(hbd_restore_read(j.map, j.size, &r, err, sizeof(err)), 0);
	CHECK_EQ(r.lineage, 44);
	hbd_restore_free(&r);
	hbd_journal_close(&j);
}
