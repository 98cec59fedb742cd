/*
 * The journal in the state memfd (docs/RESTART.md, "The state"): records appended in
 * transactions, made durable by one aligned 8-byte store each, so that a daemon killed at any
 * instruction leaves a memfd that reads as the state after its last committed transaction.
 *
 * Layout: a 4 KiB header, then two areas of area_size bytes. Records go into the active area,
 * each {u32 len, u32 crc32c, u64 seq} and len payload bytes padded to 8; seqs count up by one.
 *
 *   commit point of a transaction:  header.committed[active] = its last seq
 *   commit point of a compaction:   header.active = the other area (already holding a full
 *                                   snapshot of the state, its committed[] already set)
 *   commit point of a new journal:  header.magic, written after its first snapshot
 *
 * A reader trusts records up to committed[active] and nothing after (a torn record, or one of
 * a transaction not committed yet). Records are staged in memory until the commit, so a
 * transaction that does not fit becomes a compaction instead: the snapshot already holds it.
 *
 * No daemon structures here: the reader works on any bytes (tests corrupt them at will).
 */
#ifndef HB_DAEMON_JOURNAL_H
#define HB_DAEMON_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/frame.h"

#define HBD_JOURNAL_MAGIC   "HBSTATE"
#define HBD_JOURNAL_VERSION 1u
#define HBD_JOURNAL_HEADER  4096u
#define HBD_JOURNAL_RECORD  16u /* a record's header */
#define HBD_JOURNAL_MAX_REC (16u << 20)

struct hbd_jheader {
	char magic[8];       /* HBD_JOURNAL_MAGIC, NUL-padded; written last when made */
	uint32_t version;    /* HBD_JOURNAL_VERSION */
	uint32_t header_crc; /* crc32c of magic..lineage, this field counted as 0 */
	uint64_t area_size;
	uint64_t lineage; /* random, drawn when the first journal of a daemon's line was made */
	uint32_t active;  /* 0 or 1 */
	uint32_t pad;
	uint64_t base[2];      /* seq of each area's first record */
	uint64_t committed[2]; /* seq of each area's last committed record (base - 1: none) */
};

struct hbd_journal {
	int fd;
	uint8_t *map;
	size_t size; /* HBD_JOURNAL_HEADER + 2 * area_size */
	size_t area_size;
	uint64_t seq;  /* the last seq committed */
	size_t tail;   /* where the next record goes in the active area */
	bool snapshot; /* writing a snapshot into the other area: records go there directly */
	size_t snap_tail;
	uint64_t snap_seq;
	struct hbp_bytes tx; /* staged records of the open transaction */
	size_t tx_records;
	uint64_t commits, compactions; /* for the statistics */
	/* Tests only: called at every step that matters for a crash, with what it is about to
	 * do. NULL in the daemon. */
	void (*crash_point)(void *ctx, const char *what);
	void *crash_ctx;
};

/* A new memfd (named name, sealed against shrinking) of two areas of area_size bytes, mapped,
 * empty: nobody can read it until hbd_journal_commit_snapshot has written its first state. */
int hbd_journal_create(struct hbd_journal *j, const char *name, size_t area_size, uint64_t lineage);
void hbd_journal_close(struct hbd_journal *j);

/* Stages one record (a packed StRecord) in the open transaction. -EFBIG over the record
 * limit, -ENOMEM. */
int hbd_journal_put(struct hbd_journal *j, const void *rec, size_t len);
/* Whether the open transaction has records. */
bool hbd_journal_dirty(const struct hbd_journal *j);
/* Drops the open transaction's records (nothing was committed). */
void hbd_journal_abort(struct hbd_journal *j);

/*
 * Makes the open transaction durable. If it does not fit in the active area, writes a
 * snapshot instead: snapshot(ctx, j) puts every live object with hbd_journal_put (which then
 * writes into the other area), and the areas swap. 0, or a negative errno: -ENOSPC when even a
 * snapshot does not fit (the journal is then unusable: the last committed state stands).
 */
int hbd_journal_commit(struct hbd_journal *j, int (*snapshot)(void *ctx, struct hbd_journal *j),
		       void *ctx);
/* Writes a snapshot now (a new journal's first state, or a compaction), whatever is staged. */
int hbd_journal_commit_snapshot(struct hbd_journal *j,
				int (*snapshot)(void *ctx, struct hbd_journal *j), void *ctx);

/*
 * Reads the committed records of a journal's bytes, in order, handing each to fn (which
 * returns 0 to go on, or a negative errno that ends the read). Any inconsistency in what is
 * committed is -EBADMSG with the reason in err: the header, an area out of the bytes given
 * (truncated), a record whose length, checksum or seq is wrong. *lineage and *seq (the last
 * committed seq) are set on success.
 */
int hbd_journal_read(const uint8_t *mem, size_t len,
		     int (*fn)(void *ctx, const uint8_t *rec, size_t len), void *ctx,
		     uint64_t *lineage, uint64_t *seq, char *err, size_t errlen);

uint32_t hbd_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
