/* SPDX-License-Identifier: MIT */
/*
 * The client side's one clock: CLOCK_MONOTONIC in nanoseconds, for
 * libkvswap's deadlines and kvswapctl's timings and progress.
 *
 * Internal, not installed. A static inline function rather than one in a
 * .c file, so that libkvswap can use it without a new symbol in
 * libkvswap.a or libkvswap.so (which export only kvswap_*).
 */
#ifndef KVSWAP_MONOTONIC_H
#define KVSWAP_MONOTONIC_H

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#endif
