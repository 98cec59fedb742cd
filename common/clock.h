/* The monotonic clock, in the units hyperbuf's timeouts use. */
#ifndef HB_COMMON_CLOCK_H
#define HB_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t hbc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t hbc_now_ms(void)
{
	return hbc_now_ns() / 1000000u;
}

#endif
