/* SPDX-License-Identifier: MIT */
/*
 * CRC32C throughput of every implementation kvswap has: the daemon's
 * (daemon/crc32c.c: three interleaved SSE4.2 streams, and the portable
 * slicing-by-8 table) and libkvswap's (ISA-L's crc32_iscsi,
 * client/kvswap-crc32c.h), on cold and on warm data.
 *
 * - cold: a 256 MiB buffer written just before, then flushed out of every
 *   cache level (clflush), so that each byte comes from memory as it does
 *   after a DMA into a region; the buffer is rewritten before every run.
 * - warm: one 64 KiB segment, in L1/L2, summed over and over.
 *
 * Prints GB/s (10^9 bytes/s), the best of 5 runs, and checks that every
 * implementation gives the same value. `make bench-store` runs it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c.h"
#include "kvswap-crc32c.h"

#define COLD_LEN	((size_t)256 << 20)
#define WARM_LEN	((size_t)64 << 10)
#define WARM_BYTES	((size_t)1 << 30)	/* per warm run */
#define RUNS		5

typedef uint32_t crc_fn(uint32_t crc, const void *buf, size_t len);

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes buf afresh, then evicts it from every cache level. */
static void make_cold(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = (i + seed) * 0x9e3779b97f4a7c15ull;

		memcpy(buf + i, &v, 8);
	}
#if defined(__x86_64__)
	for (size_t i = 0; i < len; i += 64)
		__builtin_ia32_clflush(buf + i);
	__builtin_ia32_mfence();
#endif
}

static double cold(crc_fn *fn, unsigned char *buf, uint32_t *out)
{
	double b = 0;

	for (int r = 0; r < RUNS; r++) {
		double t;

		make_cold(buf, COLD_LEN, 0);
		t = now();
		*out = fn(0, buf, COLD_LEN);
		t = now() - t;
		if ((double)COLD_LEN / t > b)
			b = (double)COLD_LEN / t;
	}
	return b / 1e9;
}

static double warm(crc_fn *fn, const unsigned char *buf, uint32_t *out)
{
	double b = 0;

	for (int r = 0; r < RUNS; r++) {
		uint32_t c = 0;
		double t = now();

		for (size_t n = 0; n < WARM_BYTES; n += WARM_LEN)
			c ^= fn(0, buf, WARM_LEN);
		t = now() - t;
		*out = fn(0, buf, WARM_LEN);
		(void)c;
		if ((double)WARM_BYTES / t > b)
			b = (double)WARM_BYTES / t;
	}
	return b / 1e9;
}

static uint32_t isal(uint32_t crc, const void *buf, size_t len)
{
	return kvswap_crc32c(crc, buf, len);
}

int main(void)
{
	static const struct {
		const char *name;
		crc_fn *fn;
		bool slow;	/* warm only: the table would take minutes cold */
	} impls[] = {
		{ "isa-l crc32_iscsi (libkvswap)", isal, false },
		{ "kvswapd sse4.2 3-stream", crc32c, false },
		{ "portable slicing-by-8", crc32c_portable, true },
	};
	unsigned char *buf = aligned_alloc(4096, COLD_LEN);
	uint32_t ref_cold = 0, ref_warm = 0, c;
	int bad = 0;

	if (!buf)
		return 1;
	printf("CRC32C GB/s, best of %d; cold: %zu MiB written then flushed "
	       "from the caches; warm: one %zu KiB segment in cache\n", RUNS,
	       COLD_LEN >> 20, WARM_LEN >> 10);
	printf("%-32s %8s %8s\n", "implementation", "cold", "warm");
	for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
		double gc = 0, gw;

		if (!impls[i].slow) {
			gc = cold(impls[i].fn, buf, &c);
			if (i == 0)
				ref_cold = c;
			bad |= c != ref_cold;
		}
		make_cold(buf, WARM_LEN, 1);
		gw = warm(impls[i].fn, buf, &c);
		if (i == 0)
			ref_warm = c;
		bad |= c != ref_warm;
		if (impls[i].slow)
			printf("%-32s %8s %8.2f\n", impls[i].name, "-", gw);
		else
			printf("%-32s %8.2f %8.2f\n", impls[i].name, gc, gw);
	}
	if (bad)
		printf("RESULTS DIFFER\n");
	free(buf);
	return bad;
}
