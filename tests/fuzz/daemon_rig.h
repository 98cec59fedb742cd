/*
 * hyperbufd in the fuzzer's process (tests/fuzz/fuzz_daemon.c): the daemon's own objects, a
 * struct hbd built as daemon/main.c builds it, on a config of three VMs and three groups in a
 * temp folder made once per process. Each input gets fresh connections (tests/fuzz/formats.h:
 * host and VM sessions, and QEMUs on the groups' ivshmem sockets), drives the loop without ever
 * blocking, and ends with every connection hung up and the daemon checked to be back where it
 * started: no session, buffer, import, hid, timeline, wait or pool page left, no descriptor
 * more than before. A daemon left dirty aborts, naming what was left.
 */
#ifndef HB_TESTS_FUZZ_DAEMON_RIG_H
#define HB_TESTS_FUZZ_DAEMON_RIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/hyperbufd.h"
#include "protocol/frame.h"
#include "tests/fuzz/formats.h"

struct hbt_rig {
	struct hbd d;
	char dir[64];
	unsigned domains; /* the daemon's domain count after start: inputs must not add any */
	int fds_before;   /* open descriptors when the input began */

	int conn[HBT_N_CONNS]; /* the client end, -1 once hung up */
	bool channel[HBT_N_CONNS];
	bool mute[HBT_N_CONNS];            /* not read until unmuted */
	bool stuck[HBT_N_CONNS];           /* the daemon stopped reading it: writes are dropped */
	struct hbp_bytes got[HBT_N_CONNS]; /* what the daemon sent, not yet a whole unit */
	int peer[HBT_N_PEERS];             /* the emulated QEMU's end, -1 once gone */
};

/* Starts the daemon, once per process (LLVMFuzzerInitialize). Exits on failure. */
struct hbt_rig *hbt_rig_start(void);

/* An input begins: counters reset, fresh connections, greeted peers. */
void hbt_rig_begin(struct hbt_rig *r);
/* Writes data to connection k, framed (the length in front) or raw. */
void hbt_rig_send(struct hbt_rig *r, unsigned k, const uint8_t *data, size_t len, bool framed);
void hbt_rig_hangup(struct hbt_rig *r, unsigned k);
void hbt_rig_peer_gone(struct hbt_rig *r, unsigned k);
void hbt_rig_mute(struct hbt_rig *r, unsigned k);
/* Runs the loop rounds times without blocking, reading what comes back after each round. */
void hbt_rig_spin(struct hbt_rig *r, unsigned rounds);
/* The input ends: everything hangs up, the loop runs until the daemon noticed, and the daemon
 * must be clean (aborts otherwise). */
void hbt_rig_end(struct hbt_rig *r);

#endif
