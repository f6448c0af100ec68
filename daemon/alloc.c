/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

int alloc_init(struct alloc *a, uint64_t start, uint64_t len)
{
	memset(a, 0, sizeof(*a));
	a->cap = 16;
	a->free = calloc(a->cap, sizeof(*a->free));
	if (!a->free)
		return -ENOMEM;
	if (len) {
		a->free[0] = (struct extent){ start, len };
		a->n = 1;
	}
	a->base = start;
	a->total = len;
	a->avail = len;
	return 0;
}

void alloc_fini(struct alloc *a)
{
	free(a->free);
	memset(a, 0, sizeof(*a));
}

static void remove_at(struct alloc *a, uint32_t i)
{
	memmove(&a->free[i], &a->free[i + 1], (a->n - i - 1) * sizeof(*a->free));
	a->n--;
}

/* Takes `len` blocks from the front of free extent i. */
static struct extent take(struct alloc *a, uint32_t i, uint64_t len)
{
	struct extent got = { a->free[i].start, len };

	a->free[i].start += len;
	a->free[i].len -= len;
	if (!a->free[i].len)
		remove_at(a, i);
	a->avail -= len;
	return got;
}

int alloc_get(struct alloc *a, uint64_t want, struct extent *out,
	      unsigned max, uint64_t *ret_got)
{
	uint64_t got = 0;
	unsigned n = 0;
	uint32_t best = UINT32_MAX;

	if (!want || !max) {
		*ret_got = 0;
		return 0;
	}
	/* Best fit keeps large extents whole for large segments. */
	for (uint32_t i = 0; i < a->n; i++)
		if (a->free[i].len >= want &&
		    (best == UINT32_MAX || a->free[i].len < a->free[best].len))
			best = i;
	if (best != UINT32_MAX) {
		out[0] = take(a, best, want);
		*ret_got = want;
		return 1;
	}
	/* Nothing holds it all: fewest pieces means largest first. */
	while (got < want && n < max && a->n) {
		uint32_t big = 0;

		for (uint32_t i = 1; i < a->n; i++)
			if (a->free[i].len > a->free[big].len)
				big = i;
		uint64_t len = a->free[big].len;
		if (len > want - got)
			len = want - got;
		out[n++] = take(a, big, len);
		got += len;
	}
	*ret_got = got;
	return (int)n;
}

int alloc_put(struct alloc *a, uint64_t start, uint64_t len)
{
	uint32_t lo = 0, hi = a->n;
	uint64_t end = start + len;

	if (!len || end < start || start < a->base || end > a->base + a->total)
		return -EINVAL;
	/* First free extent that starts after `start`. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (a->free[mid].start <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	struct extent *prev = lo ? &a->free[lo - 1] : NULL;
	struct extent *next = lo < a->n ? &a->free[lo] : NULL;

	if (prev && prev->start + prev->len > start)
		return -EINVAL;
	if (next && end > next->start)
		return -EINVAL;
	if (a->avail + len > a->total)
		return -EINVAL;

	if (prev && prev->start + prev->len == start) {
		prev->len += len;
		if (next && end == next->start) {
			prev->len += next->len;
			remove_at(a, lo);
		}
	} else if (next && end == next->start) {
		next->start = start;
		next->len += len;
	} else {
		if (a->n == a->cap) {
			struct extent *f = realloc(a->free, 2 * a->cap * sizeof(*f));

			if (!f)
				return -ENOMEM;
			a->free = f;
			a->cap *= 2;
		}
		memmove(&a->free[lo + 1], &a->free[lo], (a->n - lo) * sizeof(*a->free));
		a->free[lo] = (struct extent){ start, len };
		a->n++;
	}
	a->avail += len;
	return 0;
}

int alloc_rebuild(struct alloc *a, const struct extent *used, size_t n)
{
	uint64_t pos = a->base, end = a->base + a->total;
	size_t cap = n + 1;
	struct extent *f = calloc(cap, sizeof(*f));
	uint32_t k = 0;

	if (!f)
		return -ENOMEM;
	a->avail = 0;
	for (size_t i = 0; i <= n; i++) {
		uint64_t stop = i < n ? used[i].start : end;

		if (stop > pos) {
			f[k++] = (struct extent){ pos, stop - pos };
			a->avail += stop - pos;
		}
		if (i < n && used[i].start + used[i].len > pos)
			pos = used[i].start + used[i].len;
	}
	free(a->free);
	a->free = f;
	a->n = k;
	a->cap = (uint32_t)cap;
	return 0;
}
