/* What the sections of make bench share: a scratch folder with a config, the daemon's CPU time,
 * and the goal lines of issue 12 (tests/bench_util.c). */
#ifndef HB_TESTS_BENCH_UTIL_H
#define HB_TESTS_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct bench_place {
	char dir[64], config[128], log[128];
};

/* Makes /tmp/hyperbuf-NAME-XXXXXX with the paths of hyperbufd.conf and hyperbufd.log in it.
 * 0 or -errno. */
int bench_place_make(struct bench_place *p, const char *name);
/* Removes the folder and everything in it (sockets of many VMs). */
void bench_place_remove(const struct bench_place *p);
/* The CPU time pid has used, from /proc/PID/schedstat (ns; 0 if unknown). */
uint64_t bench_cpu_ns(pid_t pid);
/* One line of the goals block: what, this run's figure, the goal, met or not. */
void bench_goal(const char *what, const char *figure, const char *target, bool met);

#endif
