/*
 * dma-bufs and sync_files (dmabuf.c, syncfile.c; docs/DMABUF.md): what the kernel's side of a
 * share needs from the library.
 *
 * A dma-buf the library made is counted as a holder of its buffer or import: the library
 * keeps one reference of its own (a dup of what it returned), and a buffer freed or an import
 * released while anybody else still holds that dma-buf (the application, an importer such as a
 * GPU driver, a mapping) lingers, unmapped, keeping its daemon handle, until nobody does: the
 * dma-buf's fdinfo "count" says so, and every hb_dispatch looks. Only hb_disconnect ends a
 * holder early.
 *
 * A sync_file is a dma_fence of hyperbuf.ko (/dev/hyperbuf/ctl, opened once per client, the
 * signal side) that the library signals when it learns that the hyperbuf fence completed,
 * with its error. The hb_sync it came from stays alive until then, even once closed.
 */
#ifndef HB_LIBCLIENT_DMABUF_H
#define HB_LIBCLIENT_DMABUF_H

#include <stdbool.h>
#include <stdint.h>

#include "common/list.h"

struct hb_client;
struct hb_buffer;
struct hb_import;
struct hb_sync;
struct hb_id;

/* The library's own references to a buffer's or an import's dma-bufs: [0] read-only, [1]
 * writable. All zero: none. */
struct hbl_dmabufs {
	int fd[2];
	uint8_t have; /* bit i: fd[i] is valid */
};

struct hbl_kernel {
	int ctl_fd; /* /dev/hyperbuf/ctl, -1 until a sync_file is asked for */
	struct hbc_list lingering_buffers; /* struct hb_buffer: freed, dma-bufs still held */
	struct hbc_list lingering_imports; /* struct hb_import: released, dma-bufs still held */
};

/* dmabuf.c */
void hbl_kernel_init(struct hbl_kernel *k);
/* Ends every lingering holder without talking to the daemon, and closes ctl (the kernel then
 * errors every sync_file not signalled yet with EPIPE): hb_disconnect. */
void hbl_kernel_destroy(struct hb_client *c);
void hbl_dmabufs_close(struct hbl_dmabufs *ds);
/* With the client locked, at the start of hb_buffer_free / hb_import_release: true if a
 * dma-buf of it is still held elsewhere, and it now lingers (the caller returns at once). */
bool hbl_buffer_linger(struct hb_buffer *b);
bool hbl_import_linger(struct hb_import *im);
/* Without the lock: frees and releases, through the daemon, what lingered and is held by
 * nobody any more. hb_dispatch calls it. */
void hbl_dmabufs_reap(struct hb_client *c);

/* syncfile.c */
struct hbl_kfences;
/* A sync_file for s, locked. Signalled at once if s is complete, else when it completes. */
int hbl_sync_file_locked(struct hb_client *c, struct hb_sync *s);
/* s completed with status: signals its kernel fences. Returns the number of references on s
 * that they held (0 or 1), for the caller to drop. */
unsigned hbl_kfences_complete(struct hb_client *c, struct hb_sync *s, int status);
void hbl_kfences_free(struct hbl_kfences *kf);

#endif
