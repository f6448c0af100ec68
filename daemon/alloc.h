/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_ALLOC_H
#define KVSWAP_ALLOC_H

#include <stdint.h>

/*
 * Free-space allocator for one store file, in units of blocks. The free
 * space is a sorted array of disjoint, non-adjacent extents: freeing
 * coalesces with both neighbours, so the array stays as short as the
 * fragmentation allows.
 */
struct extent {
	uint64_t start;
	uint64_t len;
};

struct alloc {
	struct extent *free;
	uint32_t n;
	uint32_t cap;
	uint64_t base;		/* first block managed */
	uint64_t total;		/* blocks managed */
	uint64_t avail;		/* blocks free */
};

/* Manages blocks [start, start + len), all free. Returns 0 or -ENOMEM. */
int alloc_init(struct alloc *a, uint64_t start, uint64_t len);
void alloc_fini(struct alloc *a);

/*
 * Takes up to `want` blocks as at most `max` extents written to out[]:
 * the smallest free extent that holds everything if there is one, else the
 * largest extents first. Returns the number of extents written (0 if the
 * allocator is empty) and stores the blocks obtained in *ret_got, which is
 * less than `want` only when the free space or `max` ran out.
 */
int alloc_get(struct alloc *a, uint64_t want, struct extent *out,
	      unsigned max, uint64_t *ret_got);

/*
 * Returns [start, start + len) to the free space. Returns 0, -EINVAL if the
 * range overlaps free space or lies outside the allocator (a double free:
 * the caller has a bug), or -ENOMEM.
 */
int alloc_put(struct alloc *a, uint64_t start, uint64_t len);

/*
 * Rebuilds the free space as everything but `used`, which must be sorted
 * by start and free of overlaps (the caller checks). Returns 0 or -ENOMEM.
 */
int alloc_rebuild(struct alloc *a, const struct extent *used, size_t n);

#endif
