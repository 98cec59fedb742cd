/*
 * What the guest programs of the VM suites share (tests/kvm/guest.c, tests/kvm/dmabuf*.c):
 * reporting on the console, one line each, for the host side (tests/vm_common.c) to read:
 *   HBVM-STEP text       progress
 *   HBVM-INFO key=value  a measurement
 *   HBVM-READY tag       a point the host side waits for
 *   HBVM-PASS | HBVM-FAIL reason
 * and the waits every case needs. Programs are run by tests/kvm/init as `PROG CASE ROLE`.
 */
#ifndef HB_TESTS_KVM_REPORT_H
#define HB_TESTS_KVM_REPORT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "hyperbuf.h"

#define HBVM_WAIT_MS 120000 /* anything a guest waits for, under TCG with a busy host */

extern const char *hbvm_case;

void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* HBVM-FAIL with the case, the line and errno; exits 1. */
void fail(int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

#define GCHECK(cond)                                                                               \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail(__LINE__, "%s", #cond);                                               \
	} while (0)

uint64_t now_us(void);
void sleep_ms(unsigned ms);
/* hb_connect(NULL), retried while the port has no daemon behind it yet. */
struct hb_client *connect_default(void);
/* The next event, whatever it is; and the next of this type from domain `from`. */
void next_event(struct hb_client *c, struct hb_event *ev);
void wait_event(struct hb_client *c, int type, uint32_t from, struct hb_event *ev);
/* Exports b (again every second) until the peer imports it. */
void export_until_imported(struct hb_client *c, struct hb_buffer *b, const void *meta, size_t len,
			   struct hb_id *id);

struct hbvm_case_fn {
	const char *name;
	int (*fn)(int role);
};
/* Runs the case argv[1] as role argv[2]; says HBVM-PASS when it returns 0. */
int hbvm_main(int argc, char **argv, const struct hbvm_case_fn *cases, size_t n);

#endif
