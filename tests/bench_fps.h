/* make bench, (f): the daemon's CPU per shared fenced frame at 60 fps x 16 VM pairs (issue
 * 12, goal 6; tests/bench_fps.c). */
#ifndef HB_TESTS_BENCH_FPS_H
#define HB_TESTS_BENCH_FPS_H

/* Prints section (f), `seconds` of frames, with its own daemon. 0, or -1 with the reason on
 * stderr. */
int bench_fps(const char *daemon, unsigned seconds);

#endif
