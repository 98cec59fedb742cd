/*
 * The seed generator's parts: the file writer and byte appenders every part uses
 * (tests/fuzz/gen_corpus.c), the requests of a fuzz_daemon input (gen_client.c; they also
 * write one frame of each ClientMsg body for fuzz_frame), and the daemon scenarios
 * (gen_daemon.c).
 */
#ifndef HB_TESTS_FUZZ_GEN_CORPUS_H
#define HB_TESTS_FUZZ_GEN_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/frame.h"
#include "tests/fuzz/formats.h"

/* Writes CORPUS_DIR/target/name (the folder is made if missing); exits on failure. */
void hbt_put_file(const char *target, const char *name, const void *data, size_t len);
void hbt_append(struct hbp_bytes *b, const void *data, size_t len);
void hbt_append_u8(struct hbp_bytes *b, uint8_t v);
void hbt_append_u16(struct hbp_bytes *b, uint16_t v);

/* A ClientMsg with its body, on the caller's stack: CLIENT(m, hello, CLIENT_MSG__BODY_HELLO,
 * Hello, HELLO__INIT) declares m and m_body. */
#define CLIENT(var, body_field, bcase, type, init)                                                 \
	ClientMsg var = CLIENT_MSG__INIT;                                                          \
	type var##_body = init;                                                                    \
	var.body_case = bcase;                                                                     \
	var.body_field = &var##_body

/* gen_client.c: a fuzz_daemon input being written; hids and timelines are named by their
 * number in the input (the n-th export, the n-th timeline), handles as the daemon gives them. */
struct hbt_scen {
	struct hbp_bytes b;
	uint32_t id[HBT_N_CONNS]; /* the last request id of each connection */
};

void hbt_frame(struct hbt_scen *s, unsigned conn, ClientMsg *m);
void hbt_raw(struct hbt_scen *s, unsigned conn, const void *data, size_t len);
void hbt_op(struct hbt_scen *s, uint8_t op);
void hbt_marker(struct hbt_scen *s, unsigned conn, uint32_t version, uint8_t nonce);
void hbt_hello(struct hbt_scen *s, unsigned conn, uint32_t role);
/* Hello announcing HBP_FEATURE_* bits (hbt_hello announces none: a library from before them). */
void hbt_hello_features(struct hbt_scen *s, unsigned conn, uint32_t role, uint32_t features);
void hbt_attach(struct hbt_scen *s, unsigned conn, uint32_t group, uint32_t peer);
void hbt_alloc(struct hbt_scen *s, unsigned conn, uint32_t peer, uint64_t size, uint32_t flags);
void hbt_free_buf(struct hbt_scen *s, unsigned conn, uint64_t buffer);
void hbt_export(struct hbt_scen *s, unsigned conn, uint64_t buffer, const char *meta);
void hbt_unexport(struct hbt_scen *s, unsigned conn, unsigned hid, uint32_t delay_ms);
void hbt_import(struct hbt_scen *s, unsigned conn, unsigned hid, uint32_t flags);
void hbt_release(struct hbt_scen *s, unsigned conn, uint64_t handle);
void hbt_query(struct hbt_scen *s, unsigned conn, unsigned hid);
void hbt_control(struct hbt_scen *s, unsigned conn, uint32_t what);
void hbt_tl_create(struct hbt_scen *s, unsigned conn);
void hbt_tl_signal(struct hbt_scen *s, unsigned conn, unsigned tl, uint64_t value, uint32_t err);
void hbt_tl_destroy(struct hbt_scen *s, unsigned conn, unsigned tl);
void hbt_sync_open(struct hbt_scen *s, unsigned conn, unsigned tl, uint64_t value);
void hbt_sync_close(struct hbt_scen *s, unsigned conn, uint64_t wait);
void hbt_fence_attach(struct hbt_scen *s, unsigned conn, unsigned hid, unsigned tl, uint64_t value,
		      uint32_t usage);
void hbt_cpu_access(struct hbt_scen *s, unsigned conn, unsigned hid, uint32_t access);
/* A Grant of a one-page buffer (refused on KVM). */
void hbt_grant(struct hbt_scen *s, unsigned conn, uint64_t buffer);
/* Writes corpus/daemon/name and starts s afresh. */
void hbt_put_scen(struct hbt_scen *s, const char *name);

/* gen_daemon.c: corpus/daemon/ */
void hbt_gen_daemon(void);

#endif
