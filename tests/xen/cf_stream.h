/*
 * The conformance suite's side stream on Xen (docs/TESTING.md, "The Xen target"): a byte
 * stream between dom0 and a domU over libxenvchan, handed to the caller as one end of a
 * socketpair, since cf_serve and the hub need only a file descriptor. A relay process (a child
 * of the caller) owns the vchan and pumps between it and the socketpair's other end; it ends
 * when either side closes, and dies with the caller.
 *
 * dom0 is the vchan's server, publishing at CFX_PATH/<domid> (libxenvchan sets the nodes'
 * permissions: dom0's, read for that domain only); the domU is its client.
 */
#ifndef HB_TESTS_XEN_CF_STREAM_H
#define HB_TESTS_XEN_CF_STREAM_H

#include <sys/types.h>

#define CFX_PATH "/local/domain/0/data/hbconform"

/* dom0: serves domid's stream. Returns the caller's end (the client may come later), or -1;
 * *relay is the relay's pid. */
int cfx_stream_serve(int domid, pid_t *relay);

/* A domU (domid is its own): connects to dom0's stream, retrying for up to timeout_ms while
 * dom0 has not published it yet. Returns the caller's end, or -1; *relay is the relay's pid.
 * A relay that could not connect exits 1: the caller's end reads EOF. */
int cfx_stream_connect(int domid, int timeout_ms, pid_t *relay);

#endif
