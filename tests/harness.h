/*
 * A tiny test harness. A test program holds many cases; tests/run-tests.sh lists them with
 * `PROG --list` and runs each as `PROG CASE` in its own process with a timeout, so a crash or
 * a hang fails one case only. A case passes by returning, fails by CHECK (exit 1), and is
 * skipped by SKIP("reason") (exit 77, the reason printed): skips are reported, never counted
 * as passes.
 */
#ifndef HB_TEST_HARNESS_H
#define HB_TEST_HARNESS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hbt_register(const char *name, void (*fn)(void));
void hbt_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
void hbt_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Weak hook called when a case fails or skips, before the process exits: tests/util.c uses it
 * to stop the daemons this process started and remove their folders. */
void hbt_cleanup_hook(void) __attribute__((weak));

#define TEST(name)                                                                         \
	static void name(void);                                                            \
	__attribute__((constructor)) static void hbt_reg_##name(void)                      \
	{                                                                                  \
		hbt_register(#name, name);                                                 \
	}                                                                                  \
	static void name(void)

/*
 * TEST_TIMEOUT(name, seconds), after TEST(name): the case's own time limit, above the default
 * of tests/run-tests.sh (HB_TEST_TIMEOUT, 180 s), for a case that runs many of its own in one
 * boot (the conformance targets).
 */
void hbt_set_timeout(const char *name, unsigned seconds);
#define TEST_TIMEOUT(name, seconds)                                                        \
	__attribute__((constructor)) static void hbt_timeout_##name(void)                  \
	{                                                                                  \
		hbt_set_timeout(#name, (seconds));                                         \
	}

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond))                                                               \
			hbt_fail(__FILE__, __LINE__, "CHECK(%s) failed (errno %d: %s)", #cond, \
				 errno, strerror(errno));                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                     \
	do {                                                                               \
		long long hbt_a = (long long)(a), hbt_b = (long long)(b);                  \
		if (hbt_a != hbt_b)                                                        \
			hbt_fail(__FILE__, __LINE__, "%s == %s failed: %lld != %lld", #a, #b, \
				 hbt_a, hbt_b);                                            \
	} while (0)

/* A call that must fail with -1 (or NULL) and this errno. */
#define CHECK_ERR(expr, err)                                                               \
	do {                                                                               \
		errno = 0;                                                                 \
		long long hbt_r = (long long)(intptr_t)(expr);                             \
		int hbt_e = errno;                                                         \
		if ((hbt_r != -1 && hbt_r != 0) || hbt_e != (err))                          \
			hbt_fail(__FILE__, __LINE__, "%s: want errno %s, got r=%lld errno %d (%s)", \
				 #expr, #err, hbt_r, hbt_e, strerror(hbt_e));              \
	} while (0)

#define SKIP(...) hbt_skip(__VA_ARGS__)

#endif
