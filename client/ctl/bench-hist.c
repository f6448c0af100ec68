/* SPDX-License-Identifier: MIT */
/*
 * The latency histogram of kvswapctl bench: log-linear, HDR style. Group 0
 * counts 0..127 one by one; group g >= 1 splits [2^(g+6), 2^(g+7)) into
 * 128 equal buckets, so a value is known to under 1%. Each client thread
 * fills its own; they are merged when the run ends.
 */
#include <math.h>

#include "bench.h"

static unsigned int hist_index(uint64_t v)
{
	unsigned int shift;

	if (v < HIST_SUB)
		return (unsigned int)v;
	shift = (unsigned int)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
	return (shift + 1) * HIST_SUB + (unsigned int)((v >> shift) - HIST_SUB);
}

/* The middle of bucket i's range. */
static double hist_value(unsigned int i)
{
	unsigned int shift;
	uint64_t low;

	if (i < HIST_SUB)
		return i;
	shift = i / HIST_SUB - 1;
	low = (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
	return (double)low + (double)((1ULL << shift) - 1) / 2;
}

void hist_add(struct hist *h, uint64_t v)
{
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += (double)v;
	h->b[hist_index(v)]++;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned int i;

	if (!src->count)
		return;
	if (!dst->count || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
}

double hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;
	unsigned int i;
	double v;

	if (!h->count)
		return 0;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			break;
	}
	v = hist_value(i < HIST_BUCKETS ? i : HIST_BUCKETS - 1);
	if (v < (double)h->min)
		v = (double)h->min;
	if (v > (double)h->max)
		v = (double)h->max;
	return v;
}
