/* SPDX-License-Identifier: MIT */
/*
 * A throughput client's requests through the batch API (--entries-per-
 * request N, --layers L): each request is one kvswap_swap_out_batch() or
 * kvswap_swap_in_batch() of N keys, each key an entry of L segments, and
 * segment i of every entry in completion group i (the layer). Entry j's
 * segment i lands at (j x L + i) x stride in the request's slot.
 *
 * Latency is per group: from the request's submission to the moment the
 * client sees kvswap_group_done() (a GroupDone event, or the final event
 * for the last group); and per request, to the final event. With the
 * library's CRC32C check (the default), a swap-in's group is landed when
 * it is reported and verified with the final event; --verify also checks
 * every byte against the pattern.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

int bench_batch_setup(struct client *c)
{
	const struct bench *b = c->b;
	const struct opts *o = &b->o;
	uint32_t s, j, i;

	for (s = 0; s < o->depth; s++) {
		struct slot *sl = &c->slots[s];

		sl->ents = calloc(b->req_keys, sizeof(*sl->ents));
		sl->offsets = calloc((size_t)b->req_keys * o->layers,
				     sizeof(*sl->offsets));
		sl->keys = calloc(b->req_keys, KEY_LEN);
		sl->seen = calloc(o->layers, sizeof(*sl->seen));
		if (!sl->ents || !sl->offsets || !sl->keys || !sl->seen)
			return -ENOMEM;
		for (j = 0; j < b->req_keys; j++)
			for (i = 0; i < o->layers; i++)
				sl->offsets[j * o->layers + i] =
					((uint64_t)s * b->req_segs +
					 (uint64_t)j * o->layers + i) * b->stride;
	}
	return 0;
}

void bench_batch_free(struct client *c)
{
	uint32_t s;

	if (!c->slots)
		return;
	for (s = 0; s < c->b->o.depth; s++) {
		free(c->slots[s].ents);
		free(c->slots[s].offsets);
		free(c->slots[s].keys);
		free(c->slots[s].seen);
		c->slots[s].ents = NULL;
		c->slots[s].offsets = NULL;
		c->slots[s].keys = NULL;
		c->slots[s].seen = NULL;
	}
}

int bench_batch_submit(struct client *c, struct slot *s, uint64_t first,
		       uint32_t n, enum batch_kind kind)
{
	struct bench *b = c->b;
	const struct opts *o = &b->o;
	uint64_t set = kind == BATCH_OUT ? b->out_keys : b->in_keys;
	uint32_t flags, j, i;
	int r;

	assert(n && n <= b->req_keys && set >= n);
	for (j = 0; j < n; j++) {
		uint64_t k = (first + j) % set;
		char *key = s->keys + (size_t)j * KEY_LEN;

		if (kind == BATCH_OUT)
			bench_key_out(b, c->id, k, key);
		else
			bench_key_in(b, k, key);
		if (kind == BATCH_POPULATE && o->verify)
			for (i = 0; i < o->layers; i++)
				bench_pattern_fill(c->base +
						   s->offsets[j * o->layers + i],
						   o->seg_size, k, i);
		s->ents[j] = (struct kvswap_batch_entry){
			.key = key,
			.key_len = strlen(key),
			.nseg = o->layers,
			.offsets = &s->offsets[(size_t)j * o->layers],
			.length = o->seg_size,
			/* groups NULL: segment i is in group i, its layer. */
		};
	}
	flags = kind == BATCH_POPULATE ? KVSWAP_CACHE :
		kind == BATCH_OUT ? o->flags : 0;
	if (!o->client_crc)
		flags |= KVSWAP_NO_VERIFY;
	s->key = first;
	s->nkeys = n;
	s->out = kind != BATCH_IN;
	s->consumed = 0;
	memset(s->seen, 0, o->layers * sizeof(*s->seen));
	s->submit_ns = now_ns();
	if (s->out)
		r = kvswap_swap_out_batch(c->k, c->region, s->ents, n, flags,
					  &s->req);
	else
		r = kvswap_swap_in_batch(c->k, c->region, s->ents, n, flags,
					 &s->req);
	if (r < 0) {
		s->req = NULL;
		return bench_client_note(c, r, "%s batch of %" PRIu32 " keys from "
					 "%s: %s", s->out ? "swap-out" : "swap-in",
					 n, s->keys, bench_daemon_error(c) ?
					 bench_daemon_error(c) : strerror(-r));
	}
	return 0;
}

bool bench_batch_has_events(const struct client *c, const struct slot *s)
{
	uint32_t g;

	if (kvswap_req_done(s->req))
		return true;
	for (g = 0; g < c->b->o.layers; g++)
		if (!s->seen[g] && kvswap_group_done(s->req, g))
			return true;
	return false;
}

/* Checks entry j's bytes against the pattern of its key. */
static void batch_check(struct client *c, const struct slot *s, uint32_t j)
{
	const struct bench *b = c->b;
	const struct opts *o = &b->o;
	uint64_t k = (s->key + j) % b->in_keys, bad;
	uint32_t i;

	for (i = 0; i < o->layers; i++) {
		bad = bench_pattern_check(c->base + s->offsets[j * o->layers + i],
					  o->seg_size, k, i);
		if (bad < o->seg_size) {
			c->verify_errors++;
			bench_client_note(c, -EBADMSG, "verify: key %" PRIu64
					  " segment %" PRIu32 ": byte %" PRIu64
					  " differs", k, i, bad);
		}
	}
}

void bench_batch_reap(struct client *c, struct slot *s, uint64_t now)
{
	const struct opts *o = &c->b->o;
	uint32_t g, j;
	int r;

	for (g = 0; g < o->layers && s->consumed < o->layers; g++) {
		if (s->seen[g] || !kvswap_group_done(s->req, g))
			continue;
		s->seen[g] = true;
		s->consumed++;
		hist_add(&c->hist[s->out], now - s->submit_ns);
	}
	if (!kvswap_req_done(s->req))
		return;
	hist_add(&c->req_hist, now - s->submit_ns);
	for (j = 0; j < s->nkeys; j++) {
		r = kvswap_req_entry_status(s->req, j);
		if (r < 0) {
			c->failed_entries++;
			c->failed_segments += o->layers;
			bench_client_note(c, r, "%s of %s: %s", s->out ? "swap-out" :
					  "swap-in", s->keys + (size_t)j * KEY_LEN,
					  *kvswap_req_entry_error(s->req, j) ?
					  kvswap_req_entry_error(s->req, j) :
					  strerror(-r));
			continue;
		}
		c->segments += o->layers;
		__atomic_fetch_add(&c->bytes, o->layers * o->seg_size,
				   __ATOMIC_RELAXED);
		if (o->verify && !s->out)
			batch_check(c, s, j);
	}
	r = kvswap_req_status(s->req);
	if (r < 0)
		c->failed_requests++;
	c->requests++;
	kvswap_req_free(s->req);
	s->req = NULL;
	c->busy--;
}
