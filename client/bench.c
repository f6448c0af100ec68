/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl bench: synthetic KV-cache traffic against a running kvswapd.
 *
 * Throughput mode. C client threads, each with its own connection and its
 * own region, keep D requests of N segments in flight for a duration (or
 * until a number of bytes has moved). A request's segments land in their
 * own slot of the region, so the D requests of a client never share bytes.
 *
 *   --op in     swap-ins of keys picked at random from a set populated
 *               first. Populating uses KVSWAP_CACHE (acknowledged once
 *               written, no fdatasync): it is set-up, not measured.
 *   --op out    swap-outs over a rotating set of keys per client: each key
 *               is replaced (atomic; the old blocks are freed), so the
 *               store holds at most twice the working set.
 *   --op mixed  each client alternates swap-in and swap-out.
 *
 * Per-segment latency runs from the submission of the request to the
 * arrival of that segment's event. Each client records it in a log-linear
 * histogram (HDR style: 128 linear buckets per power of two, under 1%
 * error), merged when the run ends. The daemon's CPU time comes from Stat
 * (cpu_user_us + cpu_system_us) before and after the measured interval.
 *
 * Prefill mode (--prefill L,COMPUTE_US): one entry of L segments, one per
 * model layer, is swapped in with one request. "Load all, then compute"
 * waits for every segment and then computes the L layers (busy loops of
 * COMPUTE_US); "overlap" computes layer i as soon as its segment has
 * arrived and layers 0..i-1 are computed (segments may arrive in any
 * order). Both report the time to first token, i.e. the end of the last
 * layer.
 *
 * Only libkvswap's public API is used. Functions return a negative errno;
 * the command's entry point turns that into an exit status.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kvswap.h"

#define PROG "kvswapctl bench"

#define KEY_PREFIX		"kvswap-bench"
#define KEY_LEN			96
#define DEFAULT_SEGMENT_SIZE	(1ULL << 20)
#define DEFAULT_DEPTH		8
#define DEFAULT_DURATION_S	5.0
#define DEFAULT_RUNS		5
/* Without --working-set: at most this much, and at most this many keys. */
#define DEFAULT_WS_BYTES	(1ULL << 30)
#define DEFAULT_WS_KEYS		16384
#define MAX_CLIENTS		256
#define MAX_KEYS		(1ULL << 22)
#define MAX_LAYERS		1024

#define PROCESS_TIMEOUT_MS	100
#define PROGRESS_NS		200000000ULL
#define POLL_NS			20000000ULL
/* Written at the start of each block before a verified swap-in. */
#define POISON			0x6b6b6b6b6b6b6b6bULL
#define POISON_STRIDE		4096

enum bench_op { OP_IN, OP_OUT, OP_MIXED };

static const char *const op_names[] = { "in", "out", "mixed" };

struct opts {
	const char *socket;
	enum bench_op op;
	uint64_t seg_size;
	uint32_t nseg;		/* segments per request */
	uint32_t clients;
	uint32_t depth;		/* requests in flight per client */
	double duration;	/* seconds, when total is 0 */
	uint64_t total;		/* bytes to move; 0: run for duration */
	uint64_t working_set;	/* 0: chosen from the store's free space */
	uint32_t flags;		/* KVSWAP_DURABLE, KVSWAP_CACHE or 0 */
	bool verify;
	bool json;
	bool prefill;
	uint32_t layers;
	uint64_t compute_us;
	uint32_t runs;
};

/* --- histogram ------------------------------------------------------------ */

#define HIST_SUB_BITS	7
#define HIST_SUB	(1u << HIST_SUB_BITS)
/* Group 0 holds 0..127; group g >= 1 holds [2^(g+6), 2^(g+7)). */
#define HIST_GROUPS	(64 - HIST_SUB_BITS + 1)
#define HIST_BUCKETS	(HIST_GROUPS * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	double sum;
	uint64_t b[HIST_BUCKETS];
};

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

static void hist_add(struct hist *h, uint64_t v)
{
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += (double)v;
	h->b[hist_index(v)]++;
}

static void hist_merge(struct hist *dst, const struct hist *src)
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

/* The value at percentile p (0..100), clamped to the values seen. */
static double hist_percentile(const struct hist *h, double p)
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

/* --- small helpers -------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ULL +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ULL),
		.tv_nsec = (long)(ns % 1000000000ULL),
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A busy loop of `us` microseconds: one layer's "compute". */
static void spin_us(uint64_t us)
{
	uint64_t end = now_ns() + us * 1000;

	while (now_ns() < end)
		;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: plenty for picking keys. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

#define HUMAN_LEN 32

static const char *human_size(uint64_t n, char buf[static HUMAN_LEN])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, HUMAN_LEN, "%" PRIu64 " B", n);
		return buf;
	}
	while (v >= 1023.95 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, HUMAN_LEN, "%.1f %s", v, units[u]);
	return buf;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/*
 * The bytes of segment `seg` of key `key`, 8 at a time: distinct for every
 * key, segment and position, so a misplaced or stale block is caught.
 */
static uint64_t pattern_word(uint64_t key, uint32_t seg, uint64_t word)
{
	uint64_t x = key * 0x9e3779b97f4a7c15ULL ^ (uint64_t)seg << 48 ^ word;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	return x;
}

static void pattern_fill(uint8_t *p, uint64_t len, uint64_t key, uint32_t seg)
{
	uint64_t w, words = len / 8, v;

	for (w = 0; w < words; w++) {
		v = pattern_word(key, seg, w);
		memcpy(p + w * 8, &v, 8);
	}
	if (len % 8) {
		v = pattern_word(key, seg, words);
		memcpy(p + words * 8, &v, len % 8);
	}
}

/* Returns the offset of the first wrong byte, or len if all are right. */
static uint64_t pattern_check(const uint8_t *p, uint64_t len, uint64_t key,
			      uint32_t seg)
{
	uint64_t w, words = len / 8, v;

	for (w = 0; w < words; w++) {
		v = pattern_word(key, seg, w);
		if (memcmp(p + w * 8, &v, 8))
			return w * 8;
	}
	if (len % 8) {
		v = pattern_word(key, seg, words);
		if (memcmp(p + words * 8, &v, len % 8))
			return words * 8;
	}
	return len;
}

/* --- the throughput run --------------------------------------------------- */

struct slot {
	struct kvswap_req *req;
	uint64_t submit_ns;
	uint64_t key;
	uint32_t consumed;	/* segment events taken from the request */
	bool out;
};

struct bench;

struct client {
	struct bench *b;
	pthread_t thread;
	uint32_t id;
	struct kvswap *k;
	struct kvswap_region *region;
	uint8_t *base;
	struct slot *slots;		/* depth */
	struct kvswap_seg_out *segs_out;	/* depth x nseg */
	struct kvswap_seg_in *segs_in;
	uint32_t busy;
	uint64_t rng;
	uint64_t nreq;			/* submitted, to alternate in mixed */
	uint64_t out_next;		/* out keys submitted */
	/* Counters; bytes and populated are read live for the progress. */
	uint64_t bytes;
	uint64_t populated;
	uint64_t segments;
	uint64_t requests;
	uint64_t failed_segments;
	uint64_t failed_requests;
	uint64_t verify_errors;
	uint64_t end_ns;
	int err;			/* what stopped this client */
	char errmsg[256];		/* the first error seen */
	struct hist hist[2];		/* [0] swap-in, [1] swap-out */
};

struct bench {
	struct opts o;
	struct kvswap_limits lim;
	uint64_t stride;		/* segment pitch in a region slot */
	uint64_t req_bytes;		/* nseg x seg_size */
	uint64_t in_keys;		/* shared, populated for swap-in */
	uint64_t out_keys;		/* per client, rotating */
	long pid;
	pthread_barrier_t barrier;
	int ready;			/* clients set up */
	int finished;			/* clients done measuring */
	int stop;
	uint64_t submitted;		/* bytes, for --total */
	struct client *clients;
};

__attribute__((format(printf, 3, 4)))
static int client_note(struct client *c, int err, const char *fmt, ...)
{
	va_list ap;

	if (c->errmsg[0])
		return err;
	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

static void key_in(const struct bench *b, uint64_t k, char buf[static KEY_LEN])
{
	snprintf(buf, KEY_LEN, KEY_PREFIX "/%ld/in/%" PRIu64, b->pid, k);
}

static void key_out(const struct bench *b, uint32_t client, uint64_t k,
		    char buf[static KEY_LEN])
{
	snprintf(buf, KEY_LEN, KEY_PREFIX "/%ld/out/%" PRIu32 "/%" PRIu64,
		 b->pid, client, k);
}

static uint8_t *slot_addr(const struct client *c, uint32_t s)
{
	return c->base + (uint64_t)s * c->b->o.nseg * c->b->stride;
}

static const char *daemon_error(const struct client *c)
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

	while (s->consumed < kvswap_req_segments_done(s->req)) {
		r = kvswap_wait_segment(c->k, s->req, 0, &idx);
		if (r == -ETIMEDOUT || r == -ENODATA)
			break;
		s->consumed++;
		if (r < 0) {
			c->failed_segments++;
			client_note(c, r, "segment %" PRIu32 " of key %" PRIu64
				    ": %s", idx, s->key, daemon_error(c) ?
				    daemon_error(c) : strerror(-r));
			continue;
		}
		hist_add(&c->hist[s->out], now - s->submit_ns);
		c->segments++;
		__atomic_fetch_add(&c->bytes, o->seg_size, __ATOMIC_RELAXED);
		if (o->verify && !s->out && idx < o->nseg) {
			const uint8_t *p = slot_addr(c, (uint32_t)(s - c->slots)) +
					   idx * c->b->stride;
			uint64_t bad = pattern_check(p, o->seg_size, s->key, idx);

			if (bad < o->seg_size) {
				c->verify_errors++;
				client_note(c, -EBADMSG, "verify: key %" PRIu64
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
		client_note(c, r, "%s of key %" PRIu64 ": %s",
			    s->out ? "swap-out" : "swap-in", s->key,
			    daemon_error(c) ? daemon_error(c) : strerror(-r));
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
		if (s->req && (kvswap_req_done(s->req) ||
			       (segments && s->consumed <
				kvswap_req_segments_done(s->req))))
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
			return client_note(c, r, "receive events: %s",
					   daemon_error(c) ? daemon_error(c) :
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

/* Swaps out shared key k from slot s (populating, not measured). */
static int populate_one(struct client *c, struct slot *s, uint64_t k)
{
	struct bench *b = c->b;
	uint32_t si = (uint32_t)(s - c->slots), i;
	char key[KEY_LEN];
	int r;

	if (b->o.verify)
		for (i = 0; i < b->o.nseg; i++)
			pattern_fill(slot_addr(c, si) + i * b->stride,
				     b->o.seg_size, k, i);
	key_in(b, k, key);
	r = kvswap_swap_out(c->k, key, strlen(key), c->region,
			    c->segs_out + (uint64_t)si * b->o.nseg, b->o.nseg,
			    NULL, 0, KVSWAP_CACHE, &s->req);
	if (r < 0)
		return client_note(c, r, "populate %s: %s", key,
				   daemon_error(c) ? daemon_error(c) :
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
	uint64_t k = c->id;
	struct slot *s;
	uint32_t i;
	int r;

	while (k < b->in_keys || c->busy) {
		if (__atomic_load_n(&b->stop, __ATOMIC_RELAXED))
			k = b->in_keys;
		while (k < b->in_keys && (s = free_slot(c))) {
			r = populate_one(c, s, k);
			if (r < 0)
				return r;
			k += b->o.clients;
		}
		r = client_has_events(c, false) ? 0 :
		    kvswap_process(c->k, PROCESS_TIMEOUT_MS);
		if (r < 0)
			return client_note(c, r, "populate: %s", daemon_error(c) ?
					   daemon_error(c) : strerror(-r));
		for (i = 0; i < b->o.depth; i++) {
			s = &c->slots[i];
			if (!s->req || !kvswap_req_done(s->req))
				continue;
			r = kvswap_req_status(s->req);
			kvswap_req_free(s->req);
			s->req = NULL;
			c->busy--;
			if (r < 0)
				return client_note(c, r, "populate key %" PRIu64
						   ": %s", s->key, daemon_error(c) ?
						   daemon_error(c) : strerror(-r));
			__atomic_fetch_add(&c->populated, 1, __ATOMIC_RELAXED);
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
		k = c->out_next++ % b->out_keys;
		key_out(b, c->id, k, key);
	} else {
		k = rng_next(&c->rng) % b->in_keys;
		key_in(b, k, key);
		if (o->verify) {
			uint8_t *p = slot_addr(c, si);
			uint64_t off, len = o->nseg * b->stride;
			uint64_t poison = POISON;

			for (off = 0; off < len; off += POISON_STRIDE)
				memcpy(p + off, &poison, sizeof(poison));
		}
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
		return client_note(c, r, "%s %s: %s", out ? "swap-out" : "swap-in",
				   key, daemon_error(c) ? daemon_error(c) :
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
		key_in(b, k, key);
		r = kvswap_delete(c->k, key, strlen(key));
		if (r < 0 && r != -ENOENT)
			break;
	}
	n = c->out_next < b->out_keys ? c->out_next : b->out_keys;
	for (k = 0; k < n; k++) {
		key_out(b, c->id, k, key);
		r = kvswap_delete(c->k, key, strlen(key));
		if (r < 0 && r != -ENOENT)
			break;
	}
}

static int client_setup(struct client *c)
{
	struct bench *b = c->b;
	const struct opts *o = &b->o;
	uint64_t size = (uint64_t)o->depth * o->nseg * b->stride, off;
	char h[HUMAN_LEN];
	uint32_t s, i;
	int r;

	r = kvswap_connect(o->socket, &c->k);
	if (r < 0) {
		c->k = NULL;
		return client_note(c, r, "connect: %s", kvswap_last_error(NULL));
	}
	r = kvswap_region_create(c->k, (size_t)size, &c->region);
	if (r < 0)
		return client_note(c, r, "create a region of %s: %s",
				   human_size(size, h), daemon_error(c) ?
				   daemon_error(c) : strerror(-r));
	c->base = kvswap_region_addr(c->region);
	for (s = 0; s < o->depth; s++) {
		for (i = 0; i < o->nseg; i++) {
			off = ((uint64_t)s * o->nseg + i) * b->stride;
			c->segs_out[s * o->nseg + i] =
				(struct kvswap_seg_out){ off, o->seg_size };
			c->segs_in[s * o->nseg + i] =
				(struct kvswap_seg_in){ i, off };
			/* Swap-outs carry real bytes, not zero pages. */
			pattern_fill(c->base + off, o->seg_size, c->id, i);
		}
	}
	if (o->op != OP_OUT)
		return client_populate(c);
	return 0;
}

static void *client_main(void *arg)
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
	return NULL;
}

/* --- reporting ------------------------------------------------------------ */

static bool progress_tty;

/*
 * SIGINT or SIGTERM: stop measuring, drain, delete the keys and report
 * what was measured. A second signal has the default effect.
 */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void progress(const char *what, uint64_t done, uint64_t total,
		     uint64_t bytes, uint64_t elapsed_ns)
{
	char a[HUMAN_LEN], r[HUMAN_LEN];
	double secs = (double)elapsed_ns / 1e9;

	if (!progress_tty)
		return;
	if (total)
		fprintf(stderr, "\r" PROG ": %s %" PRIu64 "/%" PRIu64 "\033[K",
			what, done, total);
	else
		fprintf(stderr, "\r" PROG ": %s %.1f s, %s, %s/s\033[K", what,
			secs, human_size(bytes, a),
			human_size(secs > 0 ? (uint64_t)((double)bytes / secs) : 0,
				   r));
}

static void progress_clear(void)
{
	if (progress_tty)
		fputs("\r\033[K", stderr);
}

static const char *mode_name(uint32_t flags)
{
	if (flags & KVSWAP_DURABLE)
		return "durable";
	if (flags & KVSWAP_CACHE)
		return "cache";
	return "default";
}

static void json_latency(const char *name, const struct hist *h)
{
	printf("  \"%s\": {\"count\": %" PRIu64 ", \"p50\": %.1f, \"p99\": %.1f, "
	       "\"p999\": %.1f, \"mean\": %.1f, \"min\": %.1f, \"max\": %.1f},\n",
	       name, h->count, hist_percentile(h, 50) / 1e3,
	       hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3,
	       h->count ? h->sum / (double)h->count / 1e3 : 0,
	       (double)h->min / 1e3, (double)h->max / 1e3);
}

struct result {
	struct hist all;
	struct hist in;
	struct hist out;
	uint64_t bytes;
	uint64_t segments;
	uint64_t requests;
	uint64_t failed_segments;
	uint64_t failed_requests;
	uint64_t verify_errors;
	uint64_t errors;
	double elapsed_s;
	double daemon_cpu_ms;
	double client_cpu_ms;
	const char *first_error;
	struct kvswap_stat before;
};

static void print_json(const struct bench *b, const struct result *res)
{
	const struct opts *o = &b->o;
	double gib = (double)res->bytes / (double)(1ULL << 30);
	bool durable = o->flags & KVSWAP_DURABLE ||
		       (!(o->flags & KVSWAP_CACHE) && res->before.durable);

	printf("{\n");
	printf("  \"daemon\": ");
	json_string(stdout, b->lim.daemon);
	printf(",\n  \"op\": \"%s\",\n", op_names[o->op]);
	printf("  \"segment_size\": %" PRIu64 ",\n", o->seg_size);
	printf("  \"segments\": %" PRIu32 ",\n", o->nseg);
	printf("  \"clients\": %" PRIu32 ",\n", o->clients);
	printf("  \"depth\": %" PRIu32 ",\n", o->depth);
	if (o->total)
		printf("  \"duration_s\": null,\n  \"total_bytes\": %" PRIu64 ",\n",
		       o->total);
	else
		printf("  \"duration_s\": %.3f,\n  \"total_bytes\": null,\n",
		       o->duration);
	printf("  \"working_set_bytes\": %" PRIu64 ",\n",
	       o->op == OP_OUT ? b->out_keys * o->clients * b->req_bytes :
	       b->in_keys * b->req_bytes);
	printf("  \"keys\": %" PRIu64 ",\n", b->in_keys);
	printf("  \"out_keys_per_client\": %" PRIu64 ",\n", b->out_keys);
	printf("  \"populate_mode\": %s,\n", o->op == OP_OUT ? "null" : "\"cache\"");
	printf("  \"mode\": \"%s\",\n", mode_name(o->flags));
	printf("  \"swap_out_durability\": \"%s\",\n", durable ? "durable" : "cache");
	printf("  \"daemon_durable\": %s,\n", res->before.durable ? "true" : "false");
	printf("  \"daemon_verify\": %s,\n", res->before.verify ? "true" : "false");
	printf("  \"daemon_queue_depth\": %" PRIu32 ",\n", res->before.queue_depth);
	printf("  \"verify\": %s,\n", o->verify ? "true" : "false");
	printf("  \"elapsed_s\": %.6f,\n", res->elapsed_s);
	printf("  \"bytes\": %" PRIu64 ",\n", res->bytes);
	printf("  \"segments_done\": %" PRIu64 ",\n", res->segments);
	printf("  \"requests_done\": %" PRIu64 ",\n", res->requests);
	printf("  \"throughput_bytes_per_s\": %.0f,\n",
	       res->elapsed_s > 0 ? (double)res->bytes / res->elapsed_s : 0);
	printf("  \"segments_per_s\": %.1f,\n",
	       res->elapsed_s > 0 ? (double)res->segments / res->elapsed_s : 0);
	printf("  \"requests_per_s\": %.1f,\n",
	       res->elapsed_s > 0 ? (double)res->requests / res->elapsed_s : 0);
	json_latency("latency_us", &res->all);
	if (o->op == OP_MIXED) {
		json_latency("latency_in_us", &res->in);
		json_latency("latency_out_us", &res->out);
	}
	printf("  \"daemon_cpu_ms\": %.1f,\n", res->daemon_cpu_ms);
	printf("  \"daemon_cpu_ms_per_gib\": %.2f,\n",
	       gib > 0 ? res->daemon_cpu_ms / gib : 0);
	printf("  \"client_cpu_ms_per_gib\": %.2f,\n",
	       gib > 0 ? res->client_cpu_ms / gib : 0);
	printf("  \"errors\": %" PRIu64 ",\n", res->errors);
	printf("  \"failed_segments\": %" PRIu64 ",\n", res->failed_segments);
	printf("  \"failed_requests\": %" PRIu64 ",\n", res->failed_requests);
	printf("  \"verify_errors\": %" PRIu64 ",\n", res->verify_errors);
	printf("  \"first_error\": ");
	if (res->first_error)
		json_string(stdout, res->first_error);
	else
		fputs("null", stdout);
	printf("\n}\n");
}

static void print_latency(const char *name, const struct hist *h)
{
	printf("%-12s p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
	       name, hist_percentile(h, 50) / 1e3, hist_percentile(h, 99) / 1e3,
	       hist_percentile(h, 99.9) / 1e3, (double)h->max / 1e3);
}

static void print_table(const struct bench *b, const struct result *res)
{
	const struct opts *o = &b->o;
	double gib = (double)res->bytes / (double)(1ULL << 30);
	double secs = res->elapsed_s > 0 ? res->elapsed_s : 1;
	char h1[HUMAN_LEN], h2[HUMAN_LEN];

	printf("%-12s swap-%s, %" PRIu32 " x %s per request, %" PRIu32
	       " client(s) x depth %" PRIu32 "%s\n", "bench", op_names[o->op],
	       o->nseg, human_size(o->seg_size, h1), o->clients, o->depth,
	       o->verify ? ", verified" : "");
	printf("%-12s %s, checksums %s; swap-out mode %s\n", "daemon",
	       res->before.durable ? "durable" : "cache",
	       res->before.verify ? "on" : "off", mode_name(o->flags));
	printf("%-12s %s in %.2f s\n", "moved", human_size(res->bytes, h1),
	       res->elapsed_s);
	printf("%-12s %s/s, %.0f segments/s, %.0f requests/s\n", "throughput",
	       human_size((uint64_t)((double)res->bytes / secs), h2),
	       (double)res->segments / secs, (double)res->requests / secs);
	print_latency("latency", &res->all);
	if (o->op == OP_MIXED) {
		print_latency("  swap-in", &res->in);
		print_latency("  swap-out", &res->out);
	}
	printf("%-12s daemon %.1f ms/GiB, bench %.1f ms/GiB\n", "cpu",
	       gib > 0 ? res->daemon_cpu_ms / gib : 0,
	       gib > 0 ? res->client_cpu_ms / gib : 0);
	printf("%-12s %" PRIu64 "%s%s\n", "errors", res->errors,
	       res->first_error ? "; first: " : "",
	       res->first_error ? res->first_error : "");
}

/* --- the throughput run, main thread --------------------------------------- */

/*
 * Sizes the key sets: the working set in keys of one request each,
 * checked against the store's free space (swap-outs need room for the
 * old and new copy of each rotating key).
 */
static int plan_keys(struct bench *b, const struct kvswap_stat *st)
{
	struct opts *o = &b->o;
	uint64_t free_bytes = st->capacity > st->used ? st->capacity - st->used : 0;
	uint64_t ws = o->working_set, keys, need;
	char h1[HUMAN_LEN], h2[HUMAN_LEN];

	if (!ws) {
		ws = DEFAULT_WS_BYTES;
		if (ws > free_bytes / 4)
			ws = free_bytes / 4;
		if (ws > DEFAULT_WS_KEYS * b->req_bytes)
			ws = DEFAULT_WS_KEYS * b->req_bytes;
	}
	keys = ws / b->req_bytes;
	if (!keys)
		keys = 1;
	if (keys > MAX_KEYS) {
		fprintf(stderr, PROG ": --working-set %s is %" PRIu64 " keys of %s; "
			"at most %llu\n", human_size(ws, h1), keys,
			human_size(b->req_bytes, h2), MAX_KEYS);
		return -E2BIG;
	}
	b->in_keys = o->op == OP_OUT ? 0 : keys;
	b->out_keys = 0;
	if (o->op != OP_IN) {
		/* More keys than requests in flight: a key is rarely
		 * replaced while its previous swap-out still runs. */
		b->out_keys = keys / o->clients;
		if (b->out_keys < o->depth + 1ULL)
			b->out_keys = o->depth + 1ULL;
	}
	need = b->in_keys * round_up(b->req_bytes, 4096) +
	       2 * b->out_keys * o->clients * round_up(b->req_bytes, 4096);
	if (need > free_bytes) {
		fprintf(stderr, PROG ": the run needs %s of free store space "
			"(swap-outs keep the old and new copy of a key), the "
			"daemon has %s free: lower --working-set, --depth or "
			"--segment-size\n", human_size(need, h1),
			human_size(free_bytes, h2));
		return -ENOSPC;
	}
	return 0;
}

static int run_throughput(struct bench *b, struct kvswap *k)
{
	struct opts *o = &b->o;
	struct kvswap_stat after;
	struct result *res;
	uint64_t t0, start, cpu0, end = 0, last_draw = 0, populated, bytes;
	uint32_t i;
	int ret, status = EXIT_FAILURE;

	res = calloc(1, sizeof(*res));
	b->clients = calloc(o->clients, sizeof(*b->clients));
	if (!res || !b->clients) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out_free;
	}
	ret = kvswap_stat(k, &res->before);
	if (ret < 0) {
		fprintf(stderr, PROG ": stat: %s\n", kvswap_last_error(k));
		goto out_free;
	}
	if (plan_keys(b, &res->before) < 0)
		goto out_free;
	for (i = 0; i < o->clients; i++) {
		struct client *c = &b->clients[i];

		c->b = b;
		c->id = i;
		c->rng = 0x9e3779b97f4a7c15ULL * (i + 1) ^ now_ns();
		c->slots = calloc(o->depth, sizeof(*c->slots));
		c->segs_out = calloc((size_t)o->depth * o->nseg,
				     sizeof(*c->segs_out));
		c->segs_in = calloc((size_t)o->depth * o->nseg,
				    sizeof(*c->segs_in));
		if (!c->slots || !c->segs_out || !c->segs_in) {
			fprintf(stderr, PROG ": out of memory\n");
			goto out_free_clients;
		}
	}
	ret = pthread_barrier_init(&b->barrier, NULL, o->clients + 1);
	if (ret) {
		fprintf(stderr, PROG ": barrier: %s\n", strerror(ret));
		goto out_free_clients;
	}
	for (i = 0; i < o->clients; i++) {
		ret = pthread_create(&b->clients[i].thread, NULL, client_main,
				     &b->clients[i]);
		if (ret) {
			/* The barrier counts every client: a missing one
			 * would hang the rest, so this is fatal. */
			fprintf(stderr, PROG ": start client thread: %s\n",
				strerror(ret));
			exit(EXIT_FAILURE);
		}
	}

	/* Set-up and populating, with progress. */
	t0 = now_ns();
	while (__atomic_load_n(&b->ready, __ATOMIC_ACQUIRE) < (int)o->clients) {
		sleep_ns(POLL_NS);
		if (interrupted)
			__atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
		if (b->in_keys && now_ns() - last_draw >= PROGRESS_NS) {
			for (populated = 0, i = 0; i < o->clients; i++)
				populated += __atomic_load_n(&b->clients[i].populated,
							     __ATOMIC_RELAXED);
			progress("populating keys:", populated, b->in_keys, 0,
				 now_ns() - t0);
			last_draw = now_ns();
		}
	}
	progress_clear();
	pthread_barrier_wait(&b->barrier);
	ret = kvswap_stat(k, &res->before);
	if (ret < 0)
		fprintf(stderr, PROG ": stat: %s\n", kvswap_last_error(k));
	cpu0 = cpu_us();
	start = now_ns();
	pthread_barrier_wait(&b->barrier);

	last_draw = start;
	while (__atomic_load_n(&b->finished, __ATOMIC_ACQUIRE) < (int)o->clients) {
		uint64_t now;

		sleep_ns(POLL_NS);
		now = now_ns();
		if (interrupted ||
		    (!o->total && now - start >= (uint64_t)(o->duration * 1e9)))
			__atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
		if (now - last_draw >= PROGRESS_NS) {
			for (bytes = 0, i = 0; i < o->clients; i++)
				bytes += __atomic_load_n(&b->clients[i].bytes,
							 __ATOMIC_RELAXED);
			progress(op_names[o->op], 0, 0, bytes, now - start);
			last_draw = now;
		}
	}
	progress_clear();
	pthread_barrier_wait(&b->barrier);
	res->client_cpu_ms = (double)(cpu_us() - cpu0) / 1e3;
	ret = kvswap_stat(k, &after);
	if (ret < 0)
		fprintf(stderr, PROG ": stat: %s\n", kvswap_last_error(k));
	else
		res->daemon_cpu_ms = (double)(after.cpu_user_us +
					      after.cpu_system_us -
					      res->before.cpu_user_us -
					      res->before.cpu_system_us) / 1e3;
	pthread_barrier_wait(&b->barrier);
	if (progress_tty && b->in_keys + b->out_keys > 1000)
		fprintf(stderr, PROG ": deleting the keys...");
	for (i = 0; i < o->clients; i++)
		pthread_join(b->clients[i].thread, NULL);
	progress_clear();

	for (i = 0; i < o->clients; i++) {
		struct client *c = &b->clients[i];

		hist_merge(&res->in, &c->hist[0]);
		hist_merge(&res->out, &c->hist[1]);
		res->bytes += c->bytes;
		res->segments += c->segments;
		res->requests += c->requests;
		res->failed_segments += c->failed_segments;
		res->failed_requests += c->failed_requests;
		res->verify_errors += c->verify_errors;
		if (c->end_ns > end)
			end = c->end_ns;
		if (c->err < 0)
			res->errors++;	/* a client stopped by a failure */
		if (!res->first_error && c->errmsg[0])
			res->first_error = c->errmsg;
	}
	hist_merge(&res->all, &res->in);
	hist_merge(&res->all, &res->out);
	res->errors += res->failed_requests + res->verify_errors;
	res->elapsed_s = end > start ? (double)(end - start) / 1e9 : 0;
	if (o->json)
		print_json(b, res);
	else
		print_table(b, res);
	status = res->errors || res->first_error ? EXIT_FAILURE : EXIT_SUCCESS;
	if (res->first_error && !o->json)
		fprintf(stderr, PROG ": %s\n", res->first_error);
	if (interrupted) {
		fprintf(stderr, PROG ": interrupted\n");
		status = EXIT_FAILURE;
	}
	pthread_barrier_destroy(&b->barrier);

out_free_clients:
	for (i = 0; i < o->clients; i++) {
		free(b->clients[i].slots);
		free(b->clients[i].segs_out);
		free(b->clients[i].segs_in);
	}
out_free:
	free(b->clients);
	b->clients = NULL;
	free(res);
	return status;
}

/* --- prefill overlap ------------------------------------------------------ */

struct prefill_run {
	double io_ms;		/* submit to the last segment, nothing else */
	double serial_ms;	/* load all, then compute */
	double overlap_ms;	/* compute each layer once it can */
	double stall_ms;	/* overlap: time compute waited for data */
	double overlap_io_ms;	/* overlap: the last segment seen (read
				 * between layers, so up to a layer late) */
	double compute_ms;	/* the layers' busy loops, no I/O */
	double ratio;		/* overlap / max(io, compute) of this run */
};

static int prefill_swap_in(struct kvswap *k, const char *key,
			   struct kvswap_region *r,
			   const struct kvswap_seg_in *segs, uint32_t n,
			   struct kvswap_req **ret)
{
	int err = kvswap_swap_in(k, key, strlen(key), r, segs, n, ret);

	if (err < 0)
		fprintf(stderr, PROG ": swap in %s: %s\n", key,
			kvswap_last_error(k));
	return err;
}

/* The final event of a prefill swap-in; reports a failure. */
static int prefill_finish(struct kvswap *k, struct kvswap_req *req)
{
	int err = kvswap_wait(k, req, -1);

	if (err < 0)
		fprintf(stderr, PROG ": swap in: %s\n", kvswap_last_error(k));
	kvswap_req_free(req);
	return err;
}

/* Load all layers, then compute them: the baseline without overlap. */
static int prefill_serial(struct kvswap *k, const char *key,
			  struct kvswap_region *r,
			  const struct kvswap_seg_in *segs, const struct opts *o,
			  struct prefill_run *pr)
{
	struct kvswap_req *req;
	uint64_t t0, t_io = 0;
	uint32_t idx, i;
	int err;

	t0 = now_ns();
	err = prefill_swap_in(k, key, r, segs, o->layers, &req);
	if (err < 0)
		return err;
	for (;;) {
		err = kvswap_wait_segment(k, req, -1, &idx);
		if (err == -ENODATA)
			break;
		if (err < 0) {
			prefill_finish(k, req);
			return err;
		}
		t_io = now_ns();
	}
	err = prefill_finish(k, req);
	if (err < 0)
		return err;
	for (i = 0; i < o->layers; i++)
		spin_us(o->compute_us);
	pr->io_ms = (double)(t_io - t0) / 1e6;
	pr->serial_ms = (double)(now_ns() - t0) / 1e6;
	return 0;
}

/*
 * Computes layer i as soon as its segment has arrived and layers < i are
 * computed. Events that arrive during a layer's compute wait in the socket
 * and are read before the next layer starts.
 */
static int prefill_overlap(struct kvswap *k, const char *key,
			   struct kvswap_region *r,
			   const struct kvswap_seg_in *segs, const struct opts *o,
			   bool *arrived, struct prefill_run *pr)
{
	struct kvswap_req *req;
	uint64_t t0, tw, t_io = 0, stall = 0;
	uint32_t idx, next = 0;
	int err;

	memset(arrived, 0, o->layers * sizeof(*arrived));
	t0 = now_ns();
	err = prefill_swap_in(k, key, r, segs, o->layers, &req);
	if (err < 0)
		return err;
	while (next < o->layers) {
		/* Take whatever has arrived, without blocking. */
		while ((err = kvswap_wait_segment(k, req, 0, &idx)) == 0) {
			if (idx < o->layers)
				arrived[idx] = true;
			t_io = now_ns();
		}
		if (err != -ETIMEDOUT && err != -ENODATA)
			goto out_fail;
		if (arrived[next]) {
			spin_us(o->compute_us);
			next++;
			continue;
		}
		if (err == -ENODATA) {
			err = -EIO;
			goto out_fail;
		}
		tw = now_ns();
		err = kvswap_wait_segment(k, req, -1, &idx);
		t_io = now_ns();
		stall += t_io - tw;
		if (err < 0)
			goto out_fail;
		if (idx < o->layers)
			arrived[idx] = true;
	}
	pr->overlap_ms = (double)(now_ns() - t0) / 1e6;
	pr->overlap_io_ms = (double)(t_io - t0) / 1e6;
	pr->stall_ms = (double)stall / 1e6;
	return prefill_finish(k, req);

out_fail:
	if (err == -EIO)
		fprintf(stderr, PROG ": swap in ended before layer %" PRIu32
			" arrived\n", next);
	prefill_finish(k, req);
	return err;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of field `off` over n runs. */
static double prefill_median(const struct prefill_run *runs, uint32_t n,
			     size_t off, double *scratch)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		memcpy(&scratch[i], (const char *)&runs[i] + off, sizeof(double));
	qsort(scratch, n, sizeof(*scratch), cmp_double);
	return n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2;
}

static int run_prefill(struct bench *b, struct kvswap *k)
{
	const struct opts *o = &b->o;
	struct kvswap_seg_out *segs_out = NULL;
	struct kvswap_seg_in *segs_in = NULL;
	struct kvswap_region *region = NULL;
	struct prefill_run *runs = NULL, med;
	struct kvswap_req *req = NULL;
	struct kvswap_stat st;
	double *scratch = NULL, bound;
	bool *arrived = NULL;
	char key[KEY_LEN], h[HUMAN_LEN];
	uint64_t size = (uint64_t)o->layers * b->stride, t0;
	int status = EXIT_FAILURE, err;
	uint32_t i;

	segs_out = calloc(o->layers, sizeof(*segs_out));
	segs_in = calloc(o->layers, sizeof(*segs_in));
	runs = calloc(o->runs + 1, sizeof(*runs));
	scratch = calloc(o->runs + 1, sizeof(*scratch));
	arrived = calloc(o->layers, sizeof(*arrived));
	if (!segs_out || !segs_in || !runs || !scratch || !arrived) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out_free;
	}
	err = kvswap_stat(k, &st);
	if (err < 0) {
		fprintf(stderr, PROG ": stat: %s\n", kvswap_last_error(k));
		goto out_free;
	}
	if (size > st.capacity - st.used) {
		fprintf(stderr, PROG ": the entry needs %s; the store has %s free\n",
			human_size(size, h), human_size(st.capacity - st.used, h));
		goto out_free;
	}
	err = kvswap_region_create(k, (size_t)size, &region);
	if (err < 0) {
		fprintf(stderr, PROG ": create a region of %s: %s\n",
			human_size(size, h), kvswap_last_error(k));
		goto out_free;
	}
	for (i = 0; i < o->layers; i++) {
		segs_out[i] = (struct kvswap_seg_out){ i * b->stride, o->seg_size };
		segs_in[i] = (struct kvswap_seg_in){ i, i * b->stride };
		pattern_fill((uint8_t *)kvswap_region_addr(region) + i * b->stride,
			     o->seg_size, 0, i);
	}
	snprintf(key, sizeof(key), KEY_PREFIX "/%ld/prefill", b->pid);
	/* Set-up: KVSWAP_CACHE, acknowledged once written. */
	err = kvswap_swap_out(k, key, strlen(key), region, segs_out, o->layers,
			      NULL, 0, KVSWAP_CACHE, &req);
	if (err == 0) {
		err = kvswap_wait(k, req, -1);
		kvswap_req_free(req);
	}
	if (err < 0) {
		fprintf(stderr, PROG ": swap out %s: %s\n", key,
			kvswap_last_error(k));
		goto out_release;
	}

	/*
	 * Run 0 warms up and is not counted. Each run measures both ways
	 * back to back, in alternating order, so that a slow spell of the
	 * device weighs on both; its ratio compares the overlap with the I/O
	 * time of the same run.
	 */
	for (i = 0; i <= o->runs; i++) {
		struct prefill_run *pr = &runs[i ? i - 1 : o->runs];

		progress("prefill run", i, o->runs, 0, 0);
		t0 = now_ns();
		for (uint32_t l = 0; l < o->layers; l++)
			spin_us(o->compute_us);
		pr->compute_ms = (double)(now_ns() - t0) / 1e6;
		if (i % 2) {
			err = prefill_serial(k, key, region, segs_in, o, pr);
			if (err == 0)
				err = prefill_overlap(k, key, region, segs_in, o,
						      arrived, pr);
		} else {
			err = prefill_overlap(k, key, region, segs_in, o,
					      arrived, pr);
			if (err == 0)
				err = prefill_serial(k, key, region, segs_in, o,
						     pr);
		}
		if (err < 0)
			goto out_delete;
		bound = pr->io_ms > pr->compute_ms ? pr->io_ms : pr->compute_ms;
		pr->ratio = bound > 0 ? pr->overlap_ms / bound : 0;
	}
	progress_clear();
	med.io_ms = prefill_median(runs, o->runs,
				   offsetof(struct prefill_run, io_ms), scratch);
	med.serial_ms = prefill_median(runs, o->runs,
				       offsetof(struct prefill_run, serial_ms),
				       scratch);
	med.overlap_ms = prefill_median(runs, o->runs,
					offsetof(struct prefill_run, overlap_ms),
					scratch);
	med.stall_ms = prefill_median(runs, o->runs,
				      offsetof(struct prefill_run, stall_ms),
				      scratch);
	med.compute_ms = prefill_median(runs, o->runs,
					offsetof(struct prefill_run, compute_ms),
					scratch);
	med.overlap_io_ms = prefill_median(runs, o->runs,
					   offsetof(struct prefill_run,
						    overlap_io_ms), scratch);
	med.ratio = prefill_median(runs, o->runs,
				   offsetof(struct prefill_run, ratio), scratch);
	bound = med.io_ms > med.compute_ms ? med.io_ms : med.compute_ms;
	if (o->json) {
		printf("{\n  \"daemon\": ");
		json_string(stdout, b->lim.daemon);
		printf(",\n  \"mode\": \"prefill\",\n");
		printf("  \"layers\": %" PRIu32 ",\n", o->layers);
		printf("  \"segment_size\": %" PRIu64 ",\n", o->seg_size);
		printf("  \"compute_us\": %" PRIu64 ",\n", o->compute_us);
		printf("  \"runs\": %" PRIu32 ",\n", o->runs);
		printf("  \"daemon_verify\": %s,\n", st.verify ? "true" : "false");
		printf("  \"io_ms\": %.3f,\n", med.io_ms);
		printf("  \"compute_ms\": %.3f,\n", med.compute_ms);
		printf("  \"ttft_serial_ms\": %.3f,\n", med.serial_ms);
		printf("  \"ttft_overlap_ms\": %.3f,\n", med.overlap_ms);
		printf("  \"stall_ms\": %.3f,\n", med.stall_ms);
		printf("  \"overlap_io_ms\": %.3f,\n", med.overlap_io_ms);
		printf("  \"io_throughput_bytes_per_s\": %.0f,\n",
		       med.io_ms > 0 ? (double)o->layers * (double)o->seg_size /
		       (med.io_ms / 1e3) : 0);
		printf("  \"overlap_ratio\": %.3f,\n", med.ratio);
		printf("  \"overlap_ratio_of_medians\": %.3f,\n",
		       bound > 0 ? med.overlap_ms / bound : 0);
		printf("  \"run_io_ms\": [");
		for (i = 0; i < o->runs; i++)
			printf("%s%.3f", i ? ", " : "", runs[i].io_ms);
		printf("],\n  \"run_ratios\": [");
		for (i = 0; i < o->runs; i++)
			printf("%s%.3f", i ? ", " : "", runs[i].ratio);
		printf("],\n");
		printf("  \"speedup\": %.3f\n}\n",
		       med.overlap_ms > 0 ? med.serial_ms / med.overlap_ms : 0);
	} else {
		printf("prefill: %" PRIu32 " layers x %s, compute %" PRIu64
		       " us per layer, median of %" PRIu32 " runs\n", o->layers,
		       human_size(o->seg_size, h), o->compute_us, o->runs);
		printf("%-15s %.2f ms\n", "io alone", med.io_ms);
		printf("%-15s %.2f ms\n", "compute alone", med.compute_ms);
		printf("%-15s %.2f ms (load all, then compute)\n", "ttft serial",
		       med.serial_ms);
		printf("%-15s %.2f ms (layer i once it arrived and layers < i "
		       "are done; waited %.2f ms)\n", "ttft overlap",
		       med.overlap_ms, med.stall_ms);
		printf("%-15s %.3f (ttft overlap / max(io, compute), median "
		       "of the runs' ratios)\n", "overlap ratio", med.ratio);
	}
	status = EXIT_SUCCESS;

out_delete:
	progress_clear();
	kvswap_delete(k, key, strlen(key));
out_release:
	kvswap_region_release(k, region);
out_free:
	free(arrived);
	free(scratch);
	free(runs);
	free(segs_in);
	free(segs_out);
	return status;
}

/* --- command line --------------------------------------------------------- */

static void help(FILE *f)
{
	fprintf(f,
		"Usage: kvswapctl [--socket PATH] bench [OPTIONS]\n"
		"Drive a running kvswapd with synthetic KV-cache traffic.\n"
		"\n"
		"  --op in|out|mixed     swap-ins of keys populated first (with\n"
		"                        KVSWAP_CACHE), swap-outs of rotating keys,\n"
		"                        or both alternately (default in)\n"
		"  --segment-size SIZE   bytes per segment, K/M/G suffixes (default 1M)\n"
		"  --segments N          segments per request (default 1)\n"
		"  --clients C           threads, each with its own connection and\n"
		"                        region (default 1)\n"
		"  --depth D             requests in flight per client (default %d)\n"
		"  --duration SECONDS    measure this long (default %.0f)\n"
		"  --total SIZE          or until this many bytes have moved\n"
		"  --working-set SIZE    bytes of keys to cycle over (default: up to\n"
		"                        1G, 16384 keys and a quarter of the free space)\n"
		"  --mode durable|cache  durability of the measured swap-outs (default:\n"
		"                        the daemon's)\n"
		"  --verify              check every swapped-in byte\n"
		"  --prefill L,COMPUTE_US  prefill overlap: one entry of L segments, a\n"
		"                        layer each, computed (busy loop) as they\n"
		"                        arrive, against load all then compute\n"
		"  --runs N              prefill: measured runs, each both ways;\n"
		"                        medians (default %d)\n"
		"  --json                one JSON object on stdout\n"
		"  --socket PATH         the daemon's socket\n"
		"\n"
		"Latency is per segment, from the request's submission to the\n"
		"segment's event. Daemon CPU comes from Stat before and after.\n"
		"Keys are named " KEY_PREFIX "/PID/... and deleted at the end, also\n"
		"after SIGINT or SIGTERM (which end the measurement early).\n"
		"Exit status: 0, 1 on a failure or any transfer error, 2 on a usage\n"
		"error.\n", DEFAULT_DEPTH, DEFAULT_DURATION_S, DEFAULT_RUNS);
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'kvswapctl bench --help'.\n", stderr);
	return -EINVAL;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

enum {
	O_SOCKET, O_OP, O_SEGMENT_SIZE, O_SEGMENTS, O_CLIENTS, O_DEPTH,
	O_DURATION, O_TOTAL, O_WORKING_SET, O_MODE, O_VERIFY, O_PREFILL,
	O_RUNS, O_JSON, O_HELP,
};

static const struct {
	const char *name;
	int id;
	bool has_arg;
} options[] = {
	{ "socket", O_SOCKET, true },
	{ "op", O_OP, true },
	{ "segment-size", O_SEGMENT_SIZE, true },
	{ "segments", O_SEGMENTS, true },
	{ "clients", O_CLIENTS, true },
	{ "depth", O_DEPTH, true },
	{ "duration", O_DURATION, true },
	{ "total", O_TOTAL, true },
	{ "working-set", O_WORKING_SET, true },
	{ "mode", O_MODE, true },
	{ "verify", O_VERIFY, false },
	{ "prefill", O_PREFILL, true },
	{ "runs", O_RUNS, true },
	{ "json", O_JSON, false },
	{ "help", O_HELP, false },
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static int set_option(struct opts *o, int id, const char *v)
{
	char *end;
	double d;

	switch (id) {
	case O_SOCKET:
		o->socket = v;
		break;
	case O_OP:
		if (!strcmp(v, "in"))
			o->op = OP_IN;
		else if (!strcmp(v, "out"))
			o->op = OP_OUT;
		else if (!strcmp(v, "mixed"))
			o->op = OP_MIXED;
		else
			return usage_error("invalid --op '%s': use in, out or mixed", v);
		break;
	case O_SEGMENT_SIZE:
		if (ctl_parse_size(v, &o->seg_size) < 0 || !o->seg_size ||
		    o->seg_size > (1ULL << 32))
			return usage_error("invalid --segment-size '%s': a size from 1 "
					   "to 4G, with an optional K, M or G suffix", v);
		break;
	case O_SEGMENTS:
		if (parse_u32(v, 1, 65536, &o->nseg) < 0)
			return usage_error("invalid --segments '%s'", v);
		break;
	case O_CLIENTS:
		if (parse_u32(v, 1, MAX_CLIENTS, &o->clients) < 0)
			return usage_error("invalid --clients '%s': 1 to %d", v,
					   MAX_CLIENTS);
		break;
	case O_DEPTH:
		if (parse_u32(v, 1, 4096, &o->depth) < 0)
			return usage_error("invalid --depth '%s': 1 to 4096", v);
		break;
	case O_DURATION:
		errno = 0;
		d = strtod(v, &end);
		if (errno || end == v || *end || !(d > 0) || d > 86400)
			return usage_error("invalid --duration '%s': seconds", v);
		o->duration = d;
		break;
	case O_TOTAL:
		if (ctl_parse_size(v, &o->total) < 0 || !o->total)
			return usage_error("invalid --total '%s'", v);
		break;
	case O_WORKING_SET:
		if (ctl_parse_size(v, &o->working_set) < 0 || !o->working_set)
			return usage_error("invalid --working-set '%s'", v);
		break;
	case O_MODE:
		if (!strcmp(v, "durable"))
			o->flags = KVSWAP_DURABLE;
		else if (!strcmp(v, "cache"))
			o->flags = KVSWAP_CACHE;
		else
			return usage_error("invalid --mode '%s': durable or cache", v);
		break;
	case O_VERIFY:
		o->verify = true;
		break;
	case O_PREFILL: {
		unsigned long long l, us;

		errno = 0;
		l = strtoull(v, &end, 10);
		if (errno || end == v || *end != ',' || !l || l > MAX_LAYERS ||
		    !isdigit((unsigned char)end[1]))
			return usage_error("invalid --prefill '%s': LAYERS,COMPUTE_US "
					   "with 1 to %d layers", v, MAX_LAYERS);
		v = end + 1;
		us = strtoull(v, &end, 10);
		if (errno || *end || us > 60000000ULL)
			return usage_error("invalid --prefill compute time '%s': "
					   "microseconds", v);
		o->prefill = true;
		o->layers = (uint32_t)l;
		o->compute_us = us;
		break;
	}
	case O_RUNS:
		if (parse_u32(v, 1, 1000, &o->runs) < 0)
			return usage_error("invalid --runs '%s': 1 to 1000", v);
		break;
	case O_JSON:
		o->json = true;
		break;
	}
	return 0;
}

/* Returns 0, 1 after --help, or -EINVAL after a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	bool command = false, options_done = false;
	int i;
	size_t j;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *value = NULL;
		size_t len;
		int r;

		if (options_done || a[0] != '-' || !a[1]) {
			if (!command && !strcmp(a, "bench")) {
				command = true;
				continue;
			}
			return usage_error("unexpected argument '%s'", a);
		}
		if (!strcmp(a, "--")) {
			options_done = true;
			continue;
		}
		if (!strcmp(a, "-h")) {
			help(stdout);
			return 1;
		}
		if (a[1] != '-')
			return usage_error("unknown option '%s'", a);
		name = a + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		for (j = 0; j < NOPTIONS; j++)
			if (strlen(options[j].name) == len &&
			    !strncmp(options[j].name, name, len))
				break;
		if (j == NOPTIONS)
			return usage_error("unknown option '%s'", a);
		if (options[j].id == O_HELP) {
			help(stdout);
			return 1;
		}
		if (options[j].has_arg) {
			if (eq)
				value = eq + 1;
			else if (i + 1 < argc)
				value = argv[++i];
			else
				return usage_error("option '--%s' needs a value",
						   options[j].name);
		} else if (eq) {
			return usage_error("option '--%s' takes no value",
					   options[j].name);
		}
		r = set_option(o, options[j].id, value);
		if (r < 0)
			return r;
	}
	if (o->total && o->duration > 0)
		return usage_error("--duration and --total exclude each other");
	if (!o->total && !(o->duration > 0))
		o->duration = DEFAULT_DURATION_S;
	return 0;
}

int bench_main(int argc, char **argv)
{
	struct bench b = {
		.o = {
			.op = OP_IN,
			.seg_size = DEFAULT_SEGMENT_SIZE,
			.nseg = 1,
			.clients = 1,
			.depth = DEFAULT_DEPTH,
			.runs = DEFAULT_RUNS,
		},
	};
	struct opts *o = &b.o;
	const struct kvswap_limits *lim;
	struct kvswap *k;
	const char *path;
	int r, status;

	r = parse_args(argc, argv, o);
	if (r)
		return r > 0 ? EXIT_SUCCESS : 2;
	path = o->socket && *o->socket ? o->socket : getenv("KVSWAP_SOCKET");
	if (!path || !*path)
		path = KVSWAP_DEFAULT_SOCKET;
	o->socket = path;
	progress_tty = isatty(STDERR_FILENO);
	b.pid = (long)getpid();
	if (!o->prefill) {
		struct sigaction sa = {
			.sa_handler = on_signal,
			.sa_flags = SA_RESETHAND,
		};

		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}

	r = kvswap_connect(path, &k);
	if (r < 0) {
		fprintf(stderr, PROG ": connect to %s: %s%s\n", path,
			kvswap_last_error(NULL),
			r == -ENOENT || r == -ECONNREFUSED ?
			" (is kvswapd running?)" : "");
		return EXIT_FAILURE;
	}
	lim = kvswap_limits(k);
	b.lim = *lim;
	b.stride = round_up(o->seg_size, lim->alignment ? lim->alignment : 1);
	b.req_bytes = o->seg_size * o->nseg;
	status = EXIT_FAILURE;
	if (o->prefill) {
		if (lim->max_segments && o->layers > lim->max_segments)
			fprintf(stderr, PROG ": %" PRIu32 " layers: the daemon takes "
				"at most %" PRIu32 " segments per request\n",
				o->layers, lim->max_segments);
		else
			status = run_prefill(&b, k);
	} else if (lim->max_segments && o->nseg > lim->max_segments) {
		fprintf(stderr, PROG ": --segments %" PRIu32 ": the daemon takes at "
			"most %" PRIu32 " per request\n", o->nseg, lim->max_segments);
	} else {
		status = run_throughput(&b, k);
	}
	kvswap_close(k);
	return status;
}
