/* make bench, (e): exports per second to 64k live exports across 64 VMs, and the daemon's
 * memory per live export (issue 12, goal 5; tests/bench_scale.c). */
#ifndef HB_TESTS_BENCH_SCALE_H
#define HB_TESTS_BENCH_SCALE_H

/* Prints section (e) with its own daemon. 0, or -1 with the reason on stderr. */
int bench_scale(const char *daemon);

#endif
