/*
 * A Xen domU's raw stream to the daemon for the conformance suite (conform.h, cf_raw_open):
 * a vchan of its own, claimed as the library's xen: transport claims one
 * (backends/xen/vchan_client.c), pumped by a relay process to and from a socketpair whose
 * other end is returned. The bytes written there reach the daemon's session code as they are.
 */
#ifndef HB_TESTS_XEN_CF_RAW_H
#define HB_TESTS_XEN_CF_RAW_H

#include <sys/types.h>

/* The socketpair's end, or -errno; *relay the relay's pid (it ends once the daemon ended the
 * stream; half-closing the socket is the client leaving). */
int cfx_raw_open(pid_t *relay);

#endif
