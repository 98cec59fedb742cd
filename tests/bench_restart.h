/* make bench, (d): restart time against cold start time (tests/bench_restart.c). */
#ifndef HB_TESTS_BENCH_RESTART_H
#define HB_TESTS_BENCH_RESTART_H

/* Prints section (d); daemon runs under holder. 0, or -1 with the reason on stderr. */
int bench_restart(const char *daemon, const char *holder);

#endif
