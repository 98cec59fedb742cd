/*
 * libFuzzer target: hyperbufd's request path, in process (tests/fuzz/daemon_rig.h). An input
 * is a sequence of records (tests/fuzz/formats.h) that write frames or raw bytes to host and
 * VM sessions, hang them up, or make an emulated QEMU leave; the loop runs a few rounds after
 * each, and the replies are read and checked as a client would. At the end of every input the
 * daemon must be back to a clean state: the rig aborts otherwise, and LeakSanitizer (libFuzzer
 * runs it when an input allocated more than it freed) reports what leaked.
 */
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "tests/fuzz/daemon_rig.h"
#include "tests/fuzz/formats.h"

static struct hbt_rig *rig;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	rig = hbt_rig_start();
	return 0;
}

/* The operand length of a record: a u16, cut to what the input still has. */
static size_t take_len(const uint8_t *data, size_t size, size_t *pos)
{
	size_t len = 0;

	if (*pos < size)
		len = data[(*pos)++];
	if (*pos < size)
		len |= (size_t)data[(*pos)++] << 8;
	return len < size - *pos ? len : size - *pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Long turns an input may take: an input of nothing but HBT_OP_SPIN must still take
	 * milliseconds, not seconds (libFuzzer's inputs grow to the largest seed's size). */
	unsigned long_turns = HBT_SPIN_BUDGET;
	size_t pos = 0, len;

	hbt_rig_begin(rig);
	while (pos < size) {
		uint8_t op = data[pos++];
		unsigned arg = HBT_OP_ARG(op), rounds = HBT_SPIN_SHORT;

		switch (HBT_OP_KIND(op)) {
		case HBT_OP_FRAME:
		case HBT_OP_RAW:
			len = take_len(data, size, &pos);
			hbt_rig_send(rig, arg % HBT_N_CONNS, data + pos, len,
				     HBT_OP_KIND(op) == HBT_OP_FRAME);
			pos += len;
			break;
		case HBT_OP_HANGUP:
			hbt_rig_hangup(rig, arg % HBT_N_CONNS);
			break;
		case HBT_OP_PEER_GONE:
			hbt_rig_peer_gone(rig, arg % HBT_N_PEERS);
			break;
		case HBT_OP_MUTE:
			hbt_rig_mute(rig, arg % HBT_N_CONNS);
			break;
		case HBT_OP_SPIN:
			if (!long_turns)
				break;
			long_turns--;
			/* Time enough for a delayed unexport of 1 ms to be due. */
			usleep(HBT_SPIN_SLEEP_US);
			rounds = HBT_SPIN_LONG;
			break;
		default:
			break;
		}
		hbt_rig_spin(rig, rounds);
	}
	hbt_rig_end(rig);
	return 0;
}
