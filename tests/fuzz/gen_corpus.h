/*
 * The seed generator's parts (tests/fuzz/gen_corpus.c): the file writer and byte appenders
 * every part uses, and the fuzz_daemon scenarios (tests/fuzz/gen_daemon.c), which also write
 * one frame of each ClientMsg body for fuzz_frame.
 */
#ifndef HB_TESTS_FUZZ_GEN_CORPUS_H
#define HB_TESTS_FUZZ_GEN_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/frame.h"

/* Writes CORPUS_DIR/target/name (the folder is made if missing); exits on failure. */
void hbt_put_file(const char *target, const char *name, const void *data, size_t len);
void hbt_append(struct hbp_bytes *b, const void *data, size_t len);
void hbt_append_u8(struct hbp_bytes *b, uint8_t v);
void hbt_append_u16(struct hbp_bytes *b, uint16_t v);

/* gen_daemon.c: corpus/daemon/, and corpus/frame/client-* */
void hbt_gen_daemon(void);

#endif
