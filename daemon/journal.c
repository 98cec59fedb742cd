/* The state journal (see journal.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/journal.h"

/* ---- crc32c (Castagnoli), the checksum of every record --------------------------------- */

static uint32_t crc_table[8][256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
			    (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	for (; len; len--, p++)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p);
	return (uint32_t)c;
}
#endif

/* Slicing by 8, for machines without the instruction. */
static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	for (; len >= 8; len -= 8, p += 8) {
		crc ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		       (uint32_t)p[3] << 24;
		crc = crc_table[7][crc & 0xff] ^ crc_table[6][(crc >> 8) & 0xff] ^
		      crc_table[5][(crc >> 16) & 0xff] ^ crc_table[4][crc >> 24] ^
		      crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
		      crc_table[0][p[7]];
	}
	for (; len; len--, p++)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p) & 0xff];
	return crc;
}

uint32_t hbd_crc32c(uint32_t crc, const void *buf, size_t len)
{
	static int hw = -1;

	if (hw < 0) {
		crc_init();
#if defined(__x86_64__)
		hw = __builtin_cpu_supports("sse4.2");
#else
		hw = 0;
#endif
	}
	crc = ~crc;
#if defined(__x86_64__)
	if (hw)
		return ~crc_hw(crc, buf, len);
#endif
	return ~crc_sw(crc, buf, len);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void crash_point(struct hbd_journal *j, const char *what)
{
	if (j->crash_point)
		j->crash_point(j->crash_ctx, what);
}

static struct hbd_jheader *header(struct hbd_journal *j)
{
	return (struct hbd_jheader *)j->map;
}

static uint8_t *area(struct hbd_journal *j, unsigned which)
{
	return j->map + HBD_JOURNAL_HEADER + which * j->area_size;
}

static size_t padded(size_t len)
{
	return (len + 7u) & ~(size_t)7u;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4); /* the journal is never read by another architecture */
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t record_crc(const uint8_t *rec)
{
	uint32_t len;
	uint32_t c;

	memcpy(&len, rec, 4);
	c = hbd_crc32c(0, rec, 4);
	c = hbd_crc32c(c, rec + 8, 8 + (size_t)len);
	return c;
}

static uint32_t header_crc(const struct hbd_jheader *h)
{
	struct hbd_jheader copy = *h;

	copy.header_crc = 0;
	return hbd_crc32c(0, &copy, offsetof(struct hbd_jheader, active));
}

int hbd_journal_create(struct hbd_journal *j, const char *name, size_t area_size, uint64_t lineage)
{
	struct hbd_jheader *h;

	memset(j, 0, sizeof(*j));
	j->fd = -1;
	if (area_size < 65536 || area_size % 8)
		return -EINVAL;
	j->area_size = area_size;
	j->size = HBD_JOURNAL_HEADER + 2 * area_size;
	j->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (j->fd < 0)
		return -errno;
	/* Sparse: only the pages written cost memory. */
	if (ftruncate(j->fd, (off_t)j->size) < 0 ||
	    fcntl(j->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
		goto err;
	j->map = mmap(NULL, j->size, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
	if (j->map == MAP_FAILED) {
		j->map = NULL;
		goto err;
	}
	h = header(j);
	h->version = HBD_JOURNAL_VERSION;
	h->area_size = area_size;
	h->lineage = lineage;
	h->active = 1; /* the first snapshot goes into area 0 */
	h->base[0] = h->base[1] = 1;
	h->committed[0] = h->committed[1] = 0;
	return 0;
err : {
	int r = -errno;

	hbd_journal_close(j);
	return r;
}
}

void hbd_journal_close(struct hbd_journal *j)
{
	if (j->map)
		munmap(j->map, j->size);
	if (j->fd >= 0)
		close(j->fd);
	hbp_bytes_free(&j->tx);
	j->map = NULL;
	j->fd = -1;
}

/* Writes one record at *tail of the given area with seq; false if it does not fit. */
static bool write_record(struct hbd_journal *j, unsigned which, size_t *tail, uint64_t seq,
			 const void *rec, size_t len)
{
	size_t need = HBD_JOURNAL_RECORD + padded(len);
	uint8_t *p;

	if (need > j->area_size - *tail)
		return false;
	p = area(j, which) + *tail;
	put_u32(p, (uint32_t)len);
	put_u64(p + 8, seq);
	memcpy(p + HBD_JOURNAL_RECORD, rec, len);
	memset(p + HBD_JOURNAL_RECORD + len, 0, padded(len) - len);
	put_u32(p + 4, record_crc(p));
	*tail += need;
	return true;
}

int hbd_journal_put(struct hbd_journal *j, const void *rec, size_t len)
{
	uint8_t hdr[8];
	int r;

	if (len > HBD_JOURNAL_MAX_REC)
		return -EFBIG;
	if (j->snapshot) {
		if (!write_record(j, !header(j)->active, &j->snap_tail, ++j->snap_seq, rec, len))
			return -ENOSPC;
		return 0;
	}
	/* Staged as {u32 len, u32 0} + payload; seq and crc are set when it is written. */
	r = hbp_bytes_reserve(&j->tx, sizeof(hdr) + len);
	if (r < 0)
		return r;
	put_u32(hdr, (uint32_t)len);
	put_u32(hdr + 4, 0);
	memcpy(j->tx.data + j->tx.len, hdr, sizeof(hdr));
	memcpy(j->tx.data + j->tx.len + sizeof(hdr), rec, len);
	j->tx.len += sizeof(hdr) + len;
	j->tx_records++;
	return 0;
}

bool hbd_journal_dirty(const struct hbd_journal *j)
{
	return j->tx_records > 0;
}

void hbd_journal_abort(struct hbd_journal *j)
{
	hbp_bytes_consume(&j->tx, j->tx.len);
	j->tx_records = 0;
}

int hbd_journal_commit_snapshot(struct hbd_journal *j,
				int (*snapshot)(void *ctx, struct hbd_journal *j), void *ctx)
{
	struct hbd_jheader *h = header(j);
	unsigned other = !h->active;
	int r;

	hbd_journal_abort(j); /* the snapshot holds whatever was staged */
	j->snapshot = true;
	j->snap_tail = 0;
	j->snap_seq = j->seq;
	h->base[other] = j->seq + 1;
	crash_point(j, "snapshot: writing the other area");
	r = snapshot(ctx, j);
	j->snapshot = false;
	if (r < 0)
		return r;
	crash_point(j, "snapshot: written, committing it in its area");
	__atomic_store_n(&h->committed[other], j->snap_seq, __ATOMIC_RELEASE);
	crash_point(j, "snapshot: committed, switching areas");
	__atomic_store_n(&h->active, other, __ATOMIC_RELEASE);
	if (!h->magic[0]) {
		/* A new journal becomes readable only now, whole. */
		crash_point(j, "snapshot: first one, writing the magic");
		memcpy(h->magic, HBD_JOURNAL_MAGIC, sizeof(HBD_JOURNAL_MAGIC));
		h->header_crc = header_crc(h);
	}
	crash_point(j, "snapshot: done");
	j->seq = j->snap_seq;
	j->tail = j->snap_tail;
	j->compactions++;
	return 0;
}

int hbd_journal_commit(struct hbd_journal *j, int (*snapshot)(void *ctx, struct hbd_journal *j),
		       void *ctx)
{
	struct hbd_jheader *h = header(j);
	size_t tail = j->tail, off = 0;
	uint64_t seq = j->seq;

	if (!j->tx_records)
		return 0;
	crash_point(j, "commit: writing records");
	while (off < j->tx.len) {
		uint32_t len;

		memcpy(&len, j->tx.data + off, 4);
		if (!write_record(j, h->active, &tail, ++seq, j->tx.data + off + 8, len))
			return hbd_journal_commit_snapshot(j, snapshot, ctx);
		off += 8 + len;
	}
	crash_point(j, "commit: records written, storing the commit seq");
	__atomic_store_n(&h->committed[h->active], seq, __ATOMIC_RELEASE);
	crash_point(j, "commit: done");
	j->seq = seq;
	j->tail = tail;
	j->commits++;
	hbd_journal_abort(j);
	return 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static int check_header(const struct hbd_jheader *h, size_t len, char *err, size_t errlen)
{
	unsigned a;

	if (len < HBD_JOURNAL_HEADER)
		return bad(err, errlen, "%zu bytes: shorter than its header", len);
	if (memcmp(h->magic, HBD_JOURNAL_MAGIC, sizeof(HBD_JOURNAL_MAGIC)) != 0)
		return bad(err, errlen, "no journal magic (never completed, or not a state file)");
	if (h->version != HBD_JOURNAL_VERSION)
		return bad(err, errlen, "layout version %u, this daemon reads %u", h->version,
			   HBD_JOURNAL_VERSION);
	if (h->header_crc != header_crc(h))
		return bad(err, errlen, "header checksum mismatch");
	if (h->area_size < 65536 || h->area_size % 8 ||
	    h->area_size > (len - HBD_JOURNAL_HEADER) / 2)
		return bad(err, errlen, "areas of %llu bytes do not fit in its %zu bytes",
			   (unsigned long long)h->area_size, len);
	a = h->active;
	if (a > 1)
		return bad(err, errlen, "active area %u", a);
	if (h->base[a] == 0 || h->committed[a] + 1 < h->base[a])
		return bad(err, errlen, "area %u commits seq %llu below its first, %llu", a,
			   (unsigned long long)h->committed[a], (unsigned long long)h->base[a]);
	return 0;
}

int hbd_journal_read(const uint8_t *mem, size_t len,
		     int (*fn)(void *ctx, const uint8_t *rec, size_t len), void *ctx,
		     uint64_t *lineage, uint64_t *seq, char *err, size_t errlen)
{
	struct hbd_jheader h;
	const uint8_t *a;
	size_t off = 0;
	uint64_t want;
	int r;

	memset(&h, 0, sizeof(h));
	if (len >= sizeof(h))
		memcpy(&h, mem, sizeof(h));
	r = check_header(&h, len, err, errlen);
	if (r < 0)
		return r;
	a = mem + HBD_JOURNAL_HEADER + h.active * h.area_size;
	for (want = h.base[h.active]; want <= h.committed[h.active]; want++) {
		uint32_t rlen, crc;
		uint64_t rseq;

		if (h.area_size - off < HBD_JOURNAL_RECORD)
			return bad(err, errlen, "record %llu: past the end of area %u",
				   (unsigned long long)want, h.active);
		memcpy(&rlen, a + off, 4);
		memcpy(&crc, a + off + 4, 4);
		memcpy(&rseq, a + off + 8, 8);
		if (rlen > HBD_JOURNAL_MAX_REC ||
		    padded(rlen) > h.area_size - off - HBD_JOURNAL_RECORD)
			return bad(err, errlen,
				   "record %llu at offset %zu: length %u out of bounds",
				   (unsigned long long)want, off, rlen);
		if (rseq != want)
			return bad(err, errlen, "record at offset %zu: seq %llu, expected %llu",
				   off, (unsigned long long)rseq, (unsigned long long)want);
		if (crc != record_crc(a + off))
			return bad(err, errlen, "record %llu at offset %zu: checksum mismatch",
				   (unsigned long long)want, off);
		r = fn(ctx, a + off + HBD_JOURNAL_RECORD, rlen);
		if (r < 0)
			return r;
		off += HBD_JOURNAL_RECORD + padded(rlen);
	}
	*lineage = h.lineage;
	*seq = h.committed[h.active];
	return 0;
}
