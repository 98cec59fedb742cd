/* What the guest programs of the VM suites share: see report.h. */
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/kvm/report.h"

#define WAIT_MS HBVM_WAIT_MS

const char *hbvm_case = "?";

void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void fail(int line, const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	printf("HBVM-FAIL %s line %d: ", hbvm_case, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (errno %d: %s)\n", e, strerror(e));
	fflush(stdout);
	exit(1);
}

uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The default address, as an application would use it. QEMU connects the port's chardev in
 * the background: a port without the daemon behind it yet is retried for a while. */
struct hb_client *connect_default(void)
{
	uint64_t end = now_us() + 20000000u;
	struct hb_client *c;

	for (;;) {
		c = hb_connect(NULL);
		if (c || errno != ECONNREFUSED || now_us() > end)
			break;
		sleep_ms(100);
	}
	if (!c)
		fail(__LINE__, "hb_connect(NULL)");
	return c;
}

/* The next event, whatever it is. */
void next_event(struct hb_client *c, struct hb_event *ev)
{
	uint64_t end = now_us() + (uint64_t)WAIT_MS * 1000u;

	for (;;) {
		if (hb_next_event(c, ev) == 0)
			return;
		GCHECK(errno == EAGAIN);
		if (now_us() > end)
			fail(__LINE__, "no event within %d ms", WAIT_MS);
		GCHECK(hb_dispatch(c, 1000) >= 0);
	}
}

/* The next event of this type from domain `from`; others are dropped. */
void wait_event(struct hb_client *c, int type, uint32_t from, struct hb_event *ev)
{
	for (;;) {
		next_event(c, ev);
		if ((int)ev->type == type && ev->domain == from)
			return;
	}
}

/*
 * Exports b and waits until the peer imports it. The peer's guest may connect after the first
 * export, when the EXPORTED event has gone by: re-exporting (same id, the event again, as a
 * producer signals a new frame) every second until it imports covers that.
 */
void export_until_imported(struct hb_client *c, struct hb_buffer *b, const void *meta, size_t len,
			   struct hb_id *id)
{
	uint64_t end = now_us() + (uint64_t)WAIT_MS * 1000u;
	struct hb_event ev;

	for (;;) {
		uint64_t slice = now_us() + 1000000u;

		GCHECK(hb_export(b, meta, len, 0, id) == 0);
		while (now_us() < slice) {
			while (hb_next_event(c, &ev) == 0) {
				if (ev.type == HB_EVENT_IMPORTED && hb_id_equal(&ev.id, id))
					return;
			}
			GCHECK(hb_dispatch(c, 100) >= 0);
		}
		if (now_us() > end)
			fail(__LINE__, "the peer never imported");
	}
}

/* A crash in a guest has no core dump and no sanitizer: say where it was, as return addresses
 * that `addr2line -e build/kvm/hbguest` turns into lines (the program is static, not PIE). */
static void say_crash(int sig, siginfo_t *si, void *uc)
{
	void *frames[32];
	int n = backtrace(frames, 32);
	char line[64];
	int len;

	(void)uc;
	len = snprintf(line, sizeof(line), "HBVM-CRASH signal %d at %p, stack:", sig, si->si_addr);
	write(STDOUT_FILENO, line, (size_t)len);
	for (int i = 0; i < n; i++) {
		len = snprintf(line, sizeof(line), " %p", frames[i]);
		write(STDOUT_FILENO, line, (size_t)len);
	}
	write(STDOUT_FILENO, "\n", 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_crashes(void)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
	struct sigaction sa = {.sa_sigaction = say_crash, .sa_flags = SA_SIGINFO};
	void *warm[1];

	/* The unwinder loads its tables on first use: not inside the handler. */
	backtrace(warm, 1);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

int hbvm_main(int argc, char **argv, const struct hbvm_case_fn *cases, size_t n)
{
	int role;

	if (argc != 3) {
		fprintf(stderr, "usage: %s CASE ROLE\n", argv[0]);
		return 2;
	}
	hbvm_case = argv[1];
	role = atoi(argv[2]);
	/* The console is a serial line: every line must get out before a poweroff. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	catch_crashes();
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cases[i].name, hbvm_case) == 0) {
			int r = cases[i].fn(role);

			if (r == 0)
				say("HBVM-PASS");
			else
				say("HBVM-FAIL %s returned %d", hbvm_case, r);
			return r;
		}
	}
	say("HBVM-FAIL unknown case %s", hbvm_case);
	return 2;
}
