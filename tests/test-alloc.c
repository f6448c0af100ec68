/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the extent allocator (daemon/alloc.c): exact accounting,
 * coalescing, best fit, largest-first splitting, double-free detection,
 * and a random workload checked against a reference bitmap.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "tap.h"

static bool consistent(const struct alloc *a)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < a->n; i++) {
		if (!a->free[i].len)
			return false;
		if (i && a->free[i - 1].start + a->free[i - 1].len >= a->free[i].start)
			return false;	/* overlapping or adjacent: not coalesced */
		sum += a->free[i].len;
	}
	return sum == a->avail;
}

static void basics(void)
{
	struct alloc a;
	struct extent x[8];
	uint64_t got;
	int n;

	is_int(alloc_init(&a, 256, 1000), 0, "init 1000 blocks at 256");
	n = alloc_get(&a, 10, x, 8, &got);
	is_int(n, 1, "one extent for 10 blocks");
	is_uint(x[0].start, 256, "first fit at the start");
	is_uint(got, 10, "got 10 blocks");
	is_uint(a.avail, 990, "avail drops by 10");
	n = alloc_get(&a, 20, &x[1], 7, &got);
	is_uint(x[1].start, 266, "next extent follows");
	is_int(alloc_put(&a, 256, 10), 0, "free the first extent");
	is_int(a.n, 2, "two free extents (hole + tail)");
	/* Best fit: a 5-block request goes into the 10-block hole. */
	n = alloc_get(&a, 5, &x[2], 6, &got);
	is_uint(x[2].start, 256, "best fit uses the small hole");
	is_int(alloc_put(&a, 256, 5), 0, "free it again");
	is_int(alloc_put(&a, 266, 20), 0, "free the middle: coalesces");
	is_int(a.n, 1, "one free extent after coalescing");
	is_uint(a.avail, 1000, "everything free");
	is_int(alloc_put(&a, 300, 1), -EINVAL, "double free detected");
	is_int(alloc_put(&a, 100, 1), -EINVAL, "free below the base refused");
	is_int(alloc_put(&a, 1256, 1), -EINVAL, "free past the end refused");
	ok(consistent(&a), "free list consistent");
	alloc_fini(&a);
}

static void fragmented(void)
{
	struct alloc a;
	struct extent x[64];
	uint64_t got;
	int n;

	alloc_init(&a, 0, 100);
	/* Take everything in 1-block pieces, free every other one. */
	for (int i = 0; i < 100; i++)
		alloc_get(&a, 1, x, 1, &got);
	is_uint(a.avail, 0, "allocator empty");
	n = alloc_get(&a, 1, x, 1, &got);
	ok(n == 0 && got == 0, "empty allocator gives nothing");
	for (int i = 0; i < 100; i += 2)
		alloc_put(&a, (uint64_t)i, 1);
	is_uint(a.avail, 50, "50 blocks free in 50 holes");
	n = alloc_get(&a, 10, x, 64, &got);
	ok(n == 10 && got == 10, "10 blocks from 10 one-block holes");
	n = alloc_get(&a, 50, x, 5, &got);
	ok(n == 5 && got == 5, "max pieces limits what is taken (%d, %llu)", n,
	   (unsigned long long)got);
	ok(consistent(&a), "free list consistent");
	alloc_fini(&a);
}

/* Random allocate/free against a reference bitmap of owned blocks. */
static void random_workload(void)
{
	enum { N = 4096, LIVE = 256 };
	struct { struct extent x[8]; int n; } live[LIVE];
	static uint8_t owned[N];
	struct alloc a;
	uint64_t seed = 0x9e3779b97f4a7c15ULL, got;
	bool good = true;

	memset(live, 0, sizeof(live));
	alloc_init(&a, 0, N);
	for (int step = 0; step < 20000 && good; step++) {
		int k;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		k = (int)(seed % LIVE);
		if (live[k].n) {
			for (int i = 0; i < live[k].n; i++) {
				for (uint64_t b = 0; b < live[k].x[i].len; b++)
					owned[live[k].x[i].start + b] = 0;
				good &= alloc_put(&a, live[k].x[i].start,
						  live[k].x[i].len) == 0;
			}
			live[k].n = 0;
		} else {
			uint64_t want = 1 + (seed >> 32) % 64;

			live[k].n = alloc_get(&a, want, live[k].x, 8, &got);
			for (int i = 0; i < live[k].n; i++)
				for (uint64_t b = 0; b < live[k].x[i].len; b++) {
					good &= !owned[live[k].x[i].start + b];
					owned[live[k].x[i].start + b] = 1;
				}
		}
		good &= consistent(&a);
	}
	ok(good, "20000 random steps: no block handed out twice, list consistent");
	{
		uint64_t in_use = 0;

		for (int i = 0; i < N; i++)
			in_use += owned[i];
		is_uint(a.avail + in_use, N, "free + owned = total");
	}
	alloc_fini(&a);
}

int main(void)
{
	basics();
	fragmented();
	random_workload();
	done_testing();
}
