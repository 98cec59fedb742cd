/*
 * hyperbufd's restart state (docs/RESTART.md): what the daemon keeps in its state memfd so a
 * restarted daemon carries on where the last one stopped.
 *
 * - state_read.c reads a journal's bytes (daemon/journal.h) into the last committed version
 *   of every object (struct hbd_restore), checking it as it would check a peer's bytes: any
 *   inconsistency refuses the whole state, with the reason.
 * - state_write.c keeps the journal while the daemon runs: objects are marked when they
 *   change, and every commit writes the marked ones whole (daemon/state.proto).
 * - state_restore.c turns a struct hbd_restore into sessions (waiting for their clients),
 *   buffers, imports and timelines, after checking it against the configuration.
 */
#ifndef HB_DAEMON_STATE_H
#define HB_DAEMON_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/state.pb-c.h"

/* StDrop.kind, and the tables of struct hbd_restore. */
enum hbd_st_kind {
	HBD_ST_SESSION = 1,
	HBD_ST_BUFFER, /* StBuffer and StBufferState, dropped together */
	HBD_ST_IMPORT,
	HBD_ST_TIMELINE,
	HBD_ST_BACKEND,
	HBD_ST_EVENT,
	HBD_ST_KINDS,
};

/* Records by key, the last upsert of each (open addressing; keys are never 0). */
struct hbd_st_map {
	uint64_t *keys;
	StRecord **vals;
	size_t cap, n;
};

struct hbd_restore {
	StRecord *counters;
	struct hbd_st_map maps[HBD_ST_KINDS];
	struct hbd_st_map buffer_states;
	uint64_t lineage, seq;
	size_t records;
};

/* Reads and checks a journal's bytes (see journal.h). 0, or -EBADMSG/-ENOMEM with the reason
 * in err; out is then empty. Free with hbd_restore_free either way. */
int hbd_restore_read(const uint8_t *mem, size_t len, struct hbd_restore *out, char *err,
		     size_t errlen);
void hbd_restore_free(struct hbd_restore *r);
/* The last record of kind with key, or NULL (buffer states: hbd_restore_buffer_state). */
StRecord *hbd_restore_get(const struct hbd_restore *r, enum hbd_st_kind kind, uint64_t key);
StBufferState *hbd_restore_buffer_state(const struct hbd_restore *r, uint64_t handle);
/* Calls fn for every record of kind, in no particular order; stops at a negative return. */
int hbd_restore_each(const struct hbd_restore *r, enum hbd_st_kind kind,
		     int (*fn)(void *ctx, const StRecord *rec), void *ctx);

/* state_records.c: daemon objects as records, put in a journal's open transaction */
struct hbd;
struct hbd_journal;
struct hbd_session;
struct hbd_buffer;
struct hbd_import;
struct hbd_timeline;
struct hbd_event;
int hbd_st_put_counters(struct hbd_journal *j, const struct hbd *d);
int hbd_st_put_session(struct hbd_journal *j, const struct hbd_session *s);
int hbd_st_put_placement(struct hbd_journal *j, const struct hbd_buffer *b);
int hbd_st_put_buffer_state(struct hbd_journal *j, const struct hbd_buffer *b);
int hbd_st_put_import(struct hbd_journal *j, const struct hbd_session *s,
		      const struct hbd_import *im);
int hbd_st_put_timeline(struct hbd_journal *j, const struct hbd_timeline *tl);
int hbd_st_put_event(struct hbd_journal *j, const struct hbd_session *s,
		     const struct hbd_event *ev);
int hbd_st_put_backend(struct hbd_journal *j, uint64_t key, const void *data, size_t len);
int hbd_st_put_drop(struct hbd_journal *j, enum hbd_st_kind kind, uint64_t key);

#endif
