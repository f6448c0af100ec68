/* SPDX-License-Identifier: MIT */
/*
 * One client thread of kvswapctl bench's throughput run, with its own
 * connection and its own region. A client keeps D requests of N segments
 * in flight; a request's segments land in their own slot of the region,
 * so the D requests of a client never share bytes.
 *
 * --op in reads keys picked at random from a set populated first (each
 * client swaps out its share, with KVSWAP_CACHE: set-up, not measured);
 * --op out replaces its own rotating keys; --op mixed alternates. Each
 * segment's latency, from the request's submission to the segment's
 * event, goes into the client's histogram for its direction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define PROCESS_TIMEOUT_MS	100
/* Written at the start of each block before a verified swap-in. */
#define POISON			0x6b6b6b6b6b6b6b6bULL
#define POISON_STRIDE		4096

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: plenty for picking keys. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

int bench_vnote(char *buf, size_t size, int err, const char *fmt, va_list ap)
{
	if (!buf[0])
		vsnprintf(buf, size, fmt, ap);
	return err;
}

int bench_client_note(struct client *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = bench_vnote(c->errmsg, sizeof(c->errmsg), err, fmt, ap);
	va_end(ap);
	return err;
}

void bench_key_in(const struct bench *b, uint64_t k, char buf[static KEY_LEN])
{
	snprintf(buf, KEY_LEN, KEY_PREFIX "/%ld/in/%" PRIu64, b->pid, k);
}

void bench_key_out(const struct bench *b, uint32_t client, uint64_t k,
		   char buf[static KEY_LEN])
{
	snprintf(buf, KEY_LEN, KEY_PREFIX "/%ld/out/%" PRIu32 "/%" PRIu64,
		 b->pid, client, k);
}

uint8_t *bench_slot_addr(const struct client *c, uint32_t s)
{
	return c->base + (uint64_t)s * c->b->req_segs * c->b->stride;
}

const char *bench_daemon_error(const struct client *c)
{
	const char *m = kvswap_last_error(c->k);

	return m && *m ? m : NULL;
}

/*
 * Takes the events of slot s's request that have arrived (at `now`) and
 * frees the request once it has finished. Never blocks: segments are
 * only taken when the library has them queued.
 */
static void slot_reap(struct client *c, struct slot *s, uint64_t now)
{
	const struct opts *o = &c->b->o;
	uint32_t idx;
	int r;

	if (o->entries) {
		bench_batch_reap(c, s, now);
		return;
	}
	while (s->consumed < kvswap_req_segments_done(s->req)) {
		r = kvswap_wait_segment(c->k, s->req, 0, &idx);
		if (r == -ETIMEDOUT || r == -ENODATA)
			break;
		s->consumed++;
		if (r < 0) {
			c->failed_segments++;
			bench_client_note(c, r, "segment %" PRIu32 " of key %" PRIu64
				          ": %s", idx, s->key, bench_daemon_error(c) ?
				          bench_daemon_error(c) : strerror(-r));
			continue;
		}
		hist_add(&c->hist[s->out], now - s->submit_ns);
		c->segments++;
		__atomic_fetch_add(&c->bytes, o->seg_size, __ATOMIC_RELAXED);
		if (o->verify && !s->out && idx < o->nseg) {
			const uint8_t *p = bench_slot_addr(c, (uint32_t)(s - c->slots)) +
					   idx * c->b->stride;
			uint64_t bad = bench_pattern_check(p, o->seg_size,
							   s->key, idx);

			if (bad < o->seg_size) {
				c->verify_errors++;
				bench_client_note(c, -EBADMSG, "verify: key %" PRIu64
					          " segment %" PRIu32 ": byte %" PRIu64
					          " differs", s->key, idx, bad);
			}
		}
	}
	if (!kvswap_req_done(s->req) ||
	    s->consumed < kvswap_req_segments_done(s->req))
		return;
	r = kvswap_req_status(s->req);
	if (r < 0) {
		c->failed_requests++;
		bench_client_note(c, r, "%s of key %" PRIu64 ": %s",
			          s->out ? "swap-out" : "swap-in", s->key,
			          bench_daemon_error(c) ? bench_daemon_error(c) : strerror(-r));
	}
	c->requests++;
	kvswap_req_free(s->req);
	s->req = NULL;
	c->busy--;
}

/*
 * True if a busy slot has events the library already received: a finished
 * request, or (with `segments`) segment events not yet taken.
 */
static bool client_has_events(const struct client *c, bool segments)
{
	const struct slot *s;
	uint32_t i;

	for (i = 0; i < c->b->o.depth; i++) {
		s = &c->slots[i];
		if (!s->req)
			continue;
		if (kvswap_req_done(s->req))
			return true;
		if (!segments)
			continue;
		if (c->b->o.entries ? bench_batch_has_events(c, s) :
		    s->consumed < kvswap_req_segments_done(s->req))
			return true;
	}
	return false;
}

/*
 * Waits for events, unless a submission already received some while it
 * waited for room on the socket, and reaps every busy slot. Returns 0 or
 * -errno.
 */
static int client_poll(struct client *c, uint64_t *ret_now)
{
	uint32_t s;
	uint64_t now;
	int r;

	if (!client_has_events(c, true)) {
		r = kvswap_process(c->k, PROCESS_TIMEOUT_MS);
		if (r < 0)
			return bench_client_note(c, r, "receive events: %s",
					         bench_daemon_error(c) ? bench_daemon_error(c) :
					         strerror(-r));
	}
	now = now_ns();
	for (s = 0; s < c->b->o.depth; s++)
		if (c->slots[s].req)
			slot_reap(c, &c->slots[s], now);
	*ret_now = now;
	return 0;
}

static struct slot *free_slot(struct client *c)
{
	uint32_t s;

	for (s = 0; s < c->b->o.depth; s++)
		if (!c->slots[s].req)
			return &c->slots[s];
	return NULL;
}

/*
 * Swaps out shared key k (batch: keys k .. k + entries - 1) from slot s
 * (populating, not measured).
 */
static int populate_one(struct client *c, struct slot *s, uint64_t k)
{
	struct bench *b = c->b;
	uint32_t si = (uint32_t)(s - c->slots), i;
	char key[KEY_LEN];
	int r;

	if (b->o.entries) {
		uint64_t n = b->in_keys - k;

		r = bench_batch_submit(c, s, k, n < b->req_keys ? (uint32_t)n :
				       b->req_keys, BATCH_POPULATE);
		if (r < 0)
			return r;
		c->busy++;
		return 0;
	}
	if (b->o.verify)
		for (i = 0; i < b->o.nseg; i++)
			bench_pattern_fill(bench_slot_addr(c, si) + i * b->stride,
				     b->o.seg_size, k, i);
	bench_key_in(b, k, key);
	r = kvswap_swap_out(c->k, key, strlen(key), c->region,
			    c->segs_out + (uint64_t)si * b->o.nseg, b->o.nseg,
			    NULL, 0, KVSWAP_CACHE, &s->req);
	if (r < 0)
		return bench_client_note(c, r, "populate %s: %s", key,
				         bench_daemon_error(c) ? bench_daemon_error(c) :
				         strerror(-r));
	s->key = k;
	s->out = true;
	s->consumed = 0;
	c->busy++;
	return 0;
}

/*
 * Swaps out this client's share of the shared keys (k = id mod clients),
 * D at a time, with KVSWAP_CACHE. Returns 0 or the first failure.
 */
static int client_populate(struct client *c)
{
	struct bench *b = c->b;
	uint64_t k;
	struct slot *s;
	uint32_t i;
	int r;

	k = (uint64_t)c->id * b->req_keys;
	while (k < b->in_keys || c->busy) {
		if (__atomic_load_n(&b->stop, __ATOMIC_RELAXED))
			k = b->in_keys;
		while (k < b->in_keys && (s = free_slot(c))) {
			r = populate_one(c, s, k);
			if (r < 0)
				return r;
			k += (uint64_t)b->o.clients * b->req_keys;
		}
		r = client_has_events(c, false) ? 0 :
		    kvswap_process(c->k, PROCESS_TIMEOUT_MS);
		if (r < 0)
			return bench_client_note(c, r, "populate: %s", bench_daemon_error(c) ?
					         bench_daemon_error(c) : strerror(-r));
		for (i = 0; i < b->o.depth; i++) {
			s = &c->slots[i];
			if (!s->req || !kvswap_req_done(s->req))
				continue;
			r = kvswap_req_status(s->req);
			kvswap_req_free(s->req);
			s->req = NULL;
			c->busy--;
			if (r < 0)
				return bench_client_note(c, r, "populate key %" PRIu64
						         ": %s", s->key, bench_daemon_error(c) ?
						         bench_daemon_error(c) : strerror(-r));
			__atomic_fetch_add(&c->populated, b->o.entries ?
					   s->nkeys : 1, __ATOMIC_RELAXED);
		}
	}
	return 0;
}

/* Submits one measured request from slot s. Returns 0, 1 if --total is
 * reached, or -errno. */
static int client_submit(struct client *c, struct slot *s)
{
	struct bench *b = c->b;
	const struct opts *o = &b->o;
	uint32_t si = (uint32_t)(s - c->slots);
	bool out = o->op == OP_OUT || (o->op == OP_MIXED && c->nreq % 2);
	char key[KEY_LEN];
	uint64_t k;
	int r;

	if (o->total &&
	    __atomic_fetch_add(&b->submitted, b->req_bytes, __ATOMIC_RELAXED) >=
	    o->total) {
		__atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
		return 1;
	}
	if (out) {
		k = c->out_next % b->out_keys;
		c->out_next += b->req_keys;
		bench_key_out(b, c->id, k, key);
	} else {
		k = rng_next(&c->rng) % b->in_keys;
		bench_key_in(b, k, key);
		if (o->verify) {
			uint8_t *p = bench_slot_addr(c, si);
			uint64_t off, len = (uint64_t)b->req_segs * b->stride;
			uint64_t poison = POISON;

			for (off = 0; off < len; off += POISON_STRIDE)
				memcpy(p + off, &poison, sizeof(poison));
		}
	}
	if (o->entries) {
		r = bench_batch_submit(c, s, k, b->req_keys,
				       out ? BATCH_OUT : BATCH_IN);
		if (r < 0)
			return r;
		c->nreq++;
		c->busy++;
		return 0;
	}
	s->key = k;
	s->out = out;
	s->consumed = 0;
	s->submit_ns = now_ns();
	if (out)
		r = kvswap_swap_out(c->k, key, strlen(key), c->region,
				    c->segs_out + (uint64_t)si * o->nseg, o->nseg,
				    NULL, 0, o->flags, &s->req);
	else
		r = kvswap_swap_in(c->k, key, strlen(key), c->region,
				   c->segs_in + (uint64_t)si * o->nseg, o->nseg,
				   &s->req);
	if (r < 0)
		return bench_client_note(c, r, "%s %s: %s", out ? "swap-out" : "swap-in",
				         key, bench_daemon_error(c) ? bench_daemon_error(c) :
				         strerror(-r));
	c->nreq++;
	c->busy++;
	return 0;
}

/* The measured loop: keeps every slot busy until told to stop, then
 * drains. */
static int client_run(struct client *c)
{
	struct bench *b = c->b;
	uint64_t now = now_ns();
	bool stopping = false;
	struct slot *s;
	int r = 0;

	for (;;) {
		if (!stopping)
			stopping = __atomic_load_n(&b->stop, __ATOMIC_RELAXED);
		while (!stopping && (s = free_slot(c))) {
			r = client_submit(c, s);
			if (r == 1) {
				stopping = true;
				r = 0;
			} else if (r < 0) {
				stopping = true;
			}
		}
		if (!c->busy)
			break;
		r = client_poll(c, &now);
		if (r < 0)
			break;
	}
	c->end_ns = now;
	return r;
}

/* Deletes the keys this client made; ENOENT is fine. */
static void client_cleanup_keys(struct client *c)
{
	struct bench *b = c->b;
	char key[KEY_LEN];
	uint64_t k, n;
	int r;

	if (!c->k)
		return;
	for (k = c->id; k < b->in_keys && (b->o.op != OP_OUT); k += b->o.clients) {
		bench_key_in(b, k, key);
		r = kvswap_delete(c->k, key, strlen(key));
		if (r < 0 && r != -ENOENT)
			break;
	}
	n = c->out_next < b->out_keys ? c->out_next : b->out_keys;
	for (k = 0; k < n; k++) {
		bench_key_out(b, c->id, k, key);
		r = kvswap_delete(c->k, key, strlen(key));
		if (r < 0 && r != -ENOENT)
			break;
	}
}

static int client_setup(struct client *c)
{
	struct bench *b = c->b;
	const struct opts *o = &b->o;
	uint64_t size = (uint64_t)o->depth * b->req_segs * b->stride, off;
	char h[HUMAN_LEN];
	uint32_t s, i;
	int r;

	r = kvswap_connect(o->socket, &c->k);
	if (r < 0) {
		c->k = NULL;
		return bench_client_note(c, r, "connect: %s", kvswap_last_error(NULL));
	}
	r = kvswap_region_create(c->k, (size_t)size, &c->region);
	if (r < 0)
		return bench_client_note(c, r, "create a region of %s: %s",
				         human_size(size, h), bench_daemon_error(c) ?
				         bench_daemon_error(c) : strerror(-r));
	c->base = kvswap_region_addr(c->region);
	if (o->entries) {
		r = bench_batch_setup(c);
		if (r < 0)
			return bench_client_note(c, r, "out of memory");
		/* Swap-outs carry real bytes, not zero pages. */
		for (off = 0; off < size; off += b->stride)
			bench_pattern_fill(c->base + off, o->seg_size, c->id,
					   (uint32_t)(off / b->stride));
	}
	for (s = 0; s < o->depth && !o->entries; s++) {
		for (i = 0; i < o->nseg; i++) {
			off = ((uint64_t)s * o->nseg + i) * b->stride;
			c->segs_out[s * o->nseg + i] =
				(struct kvswap_seg_out){ off, o->seg_size };
			c->segs_in[s * o->nseg + i] =
				(struct kvswap_seg_in){ i, off };
			/* Swap-outs carry real bytes, not zero pages. */
			bench_pattern_fill(c->base + off, o->seg_size, c->id,
					   i);
		}
	}
	if (o->op != OP_OUT)
		return client_populate(c);
	return 0;
}

void *bench_client_main(void *arg)
{
	struct client *c = arg;
	struct bench *b = c->b;
	uint32_t s;
	int r;

	r = client_setup(c);
	__atomic_fetch_add(&b->ready, 1, __ATOMIC_RELEASE);
	pthread_barrier_wait(&b->barrier);	/* main: Stat before */
	pthread_barrier_wait(&b->barrier);	/* go */
	if (r == 0)
		r = client_run(c);
	else
		c->end_ns = now_ns();
	c->err = r;
	__atomic_fetch_add(&b->finished, 1, __ATOMIC_RELEASE);
	pthread_barrier_wait(&b->barrier);	/* main: Stat after */
	pthread_barrier_wait(&b->barrier);
	for (s = 0; s < b->o.depth; s++) {
		kvswap_req_free(c->slots[s].req);
		c->slots[s].req = NULL;
	}
	if (c->k && r != -ECONNRESET)
		client_cleanup_keys(c);
	if (c->k)
		kvswap_region_release(c->k, c->region);
	kvswap_close(c->k);
	c->k = NULL;
	bench_batch_free(c);
	return NULL;
}
