/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl bench --trace FILE: a prefix cache's traffic, replayed from a
 * trace of requests whose prompts are chains of block hashes (JSON lines
 * with "hash_ids", as the Mooncake traces). Block i of a request is stored
 * under a key made from its hash id; its bytes are derived from the id
 * (bench_pattern_fill() with the id as the key and the layer as the
 * segment), so every byte swapped in is checked.
 *
 * --clients threads (default 4), each with a connection and a region,
 * take the trace's requests in order from a shared counter, as fast as
 * they go (timestamps are ignored). Per request:
 *
 *   1. Lookup of its keys with a lease (--lease, default 10 s): the hit
 *      prefix, leased to the thread's connection;
 *   2. one SwapInBatch of the hit prefix (each block an entry of --layers
 *      segments, segment i in completion group i), then every byte checked;
 *   3. one SwapOutBatch of the missing tail with KVSWAP_IF_ABSENT and
 *      --mode (default cache): blocks another thread stores meanwhile are
 *      skipped, not written twice.
 *
 * With --v1 the same replay issues one v1 request per block instead: the
 * same Lookup, then a kvswap_swap_in() per hit block and a
 * kvswap_swap_out() per missing one, all in flight at once, then waited.
 *
 * The hit ratio (blocks in the Lookup's hit prefix over blocks referenced)
 * is compared with an ideal LRU cache of the same capacity in blocks
 * (--capacity, default the store's free space), computed here, offline,
 * over the trace in its order with the same prefix rule: a request's hits
 * are the leading blocks present, and then every block of it is used
 * (the hits refreshed, the rest inserted, evicting the least recently used).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define POISON		0x6b6b6b6b6b6b6b6bULL
#define PROGRESS_NS	200000000ULL
#define POLL_NS		20000000ULL
#define NONE		UINT32_MAX

/* The trace: requests as runs of block references. */
struct trace {
	uint32_t nreq;
	uint64_t nrefs;
	uint32_t *start;	/* [nreq + 1]: request r is refs [start[r], start[r + 1]) */
	uint64_t *ids;		/* [nrefs] hash ids */
	uint32_t *dense;	/* [nrefs] the id's rank among the distinct ids */
	uint64_t *uniq;		/* [ndistinct] the distinct ids, sorted */
	uint32_t ndistinct;
	uint32_t max_blocks;	/* of one request */
};

struct trace_run;

/* One replaying thread, with its own connection and region. */
struct tclient {
	struct trace_run *t;
	pthread_t thread;
	uint32_t id;
	struct kvswap *k;
	struct kvswap_region *region;
	uint8_t *base;
	char *keys;			/* [max_blocks][KEY_LEN] */
	const void **keyp;		/* [max_blocks] */
	size_t *keylen;
	bool *present;
	struct kvswap_batch_entry *ents;	/* [max_blocks] */
	uint64_t *offsets;		/* [max_blocks x layers] */
	struct kvswap_seg_in *segs_in;	/* [max_blocks x layers] (v1) */
	struct kvswap_seg_out *segs_out;
	struct kvswap_req **reqs;	/* [max_blocks] (v1) */
	/* Counters. */
	uint64_t requests;
	uint64_t refs;
	uint64_t hits;			/* blocks in the hit prefixes */
	uint64_t blocks_in;		/* swapped in and checked */
	uint64_t blocks_out;		/* stored */
	uint64_t skipped;		/* IF_ABSENT: stored or in flight elsewhere */
	uint64_t mismatches;		/* blocks with a wrong byte */
	uint64_t crc_errors;		/* -EBADMSG from the library's check */
	uint64_t enoent;		/* hit, then gone at swap-in */
	uint64_t enospc;
	uint64_t other_errors;
	uint64_t end_ns;
	int err;			/* what stopped the thread */
	char errmsg[256];
	struct hist lookup;		/* per request */
	struct hist swap_in;		/* per request with hits */
	struct hist swap_out;		/* per request with misses */
};

struct trace_run {
	struct bench *b;
	struct trace tr;
	uint64_t block_stride;		/* a block's bytes in the region */
	uint64_t block_store;		/* a block's bytes in the store */
	uint64_t capacity;		/* bytes, for the ideal LRU */
	uint64_t cap_blocks;
	double ideal_hit_ratio;
	uint32_t lookup_max;
	uint32_t next;			/* the next request to replay */
	int ready;
	int stop;
	pthread_barrier_t barrier;
	struct tclient *cl;
};

/* --- the trace file ------------------------------------------------------- */

static void trace_free(struct trace *tr)
{
	free(tr->start);
	free(tr->ids);
	free(tr->dense);
	free(tr->uniq);
	memset(tr, 0, sizeof(*tr));
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 1024;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/*
 * The "hash_ids" array of one JSON line, appended to tr->ids. Only that
 * member is read; the rest of the line is not checked.
 */
static int parse_line(struct trace *tr, const char *line, size_t *cap_ids)
{
	const char *p = strstr(line, "\"hash_ids\"");
	uint64_t n0 = tr->nrefs;
	char *end;

	if (!p)
		return -EINVAL;
	p += strlen("\"hash_ids\"");
	while (*p == ' ' || *p == '\t' || *p == ':')
		p++;
	if (*p++ != '[')
		return -EINVAL;
	for (;;) {
		unsigned long long v;

		while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n')
			p++;
		if (*p == ']')
			break;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno)
			return -EINVAL;
		p = end;
		if (grow((void **)&tr->ids, cap_ids, tr->nrefs + 1,
			 sizeof(*tr->ids)) < 0)
			return -ENOMEM;
		tr->ids[tr->nrefs++] = v;
	}
	if (tr->nrefs - n0 > tr->max_blocks)
		tr->max_blocks = (uint32_t)(tr->nrefs - n0);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The rank of id among the sorted distinct ids. */
static uint32_t rank_of(const struct trace *tr, uint64_t id)
{
	uint32_t lo = 0, hi = tr->ndistinct;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (tr->uniq[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Reads the first `limit` requests (0: all) of the trace at path. Returns
 * 0 or -errno, with a message on stderr.
 */
static int trace_load(struct trace *tr, const char *path, uint32_t limit)
{
	size_t cap_ids = 0, cap_req = 0, len = 0;
	uint64_t lineno = 0, i;
	char *line = NULL;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		fprintf(stderr, BENCH_PROG ": %s: %s\n", path, strerror(-r));
		return r;
	}
	while (getline(&line, &len, f) > 0 && (!limit || tr->nreq < limit)) {
		const char *q = line;

		lineno++;
		while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			q++;
		if (!*q)
			continue;
		if (grow((void **)&tr->start, &cap_req, tr->nreq + 2,
			 sizeof(*tr->start)) < 0) {
			r = -ENOMEM;
			break;
		}
		tr->start[tr->nreq] = (uint32_t)tr->nrefs;
		r = parse_line(tr, line, &cap_ids);
		if (r < 0) {
			fprintf(stderr, BENCH_PROG ": %s:%" PRIu64 ": %s\n", path,
				lineno, r == -ENOMEM ? "out of memory" :
				"no \"hash_ids\": [ids...] array");
			break;
		}
		if (tr->nrefs > UINT32_MAX / 2) {
			fprintf(stderr, BENCH_PROG ": %s: too many blocks\n", path);
			r = -E2BIG;
			break;
		}
		tr->nreq++;
	}
	if (!r && ferror(f)) {
		r = -EIO;
		fprintf(stderr, BENCH_PROG ": %s: read error\n", path);
	}
	free(line);
	fclose(f);
	if (r < 0)
		return r;
	if (!tr->nreq || !tr->nrefs) {
		fprintf(stderr, BENCH_PROG ": %s: no requests\n", path);
		return -EINVAL;
	}
	tr->start[tr->nreq] = (uint32_t)tr->nrefs;
	tr->uniq = malloc(tr->nrefs * sizeof(*tr->uniq));
	tr->dense = malloc(tr->nrefs * sizeof(*tr->dense));
	if (!tr->uniq || !tr->dense) {
		fprintf(stderr, BENCH_PROG ": out of memory\n");
		return -ENOMEM;
	}
	memcpy(tr->uniq, tr->ids, tr->nrefs * sizeof(*tr->uniq));
	qsort(tr->uniq, tr->nrefs, sizeof(*tr->uniq), cmp_u64);
	for (i = 0; i < tr->nrefs; i++)
		if (!i || tr->uniq[i] != tr->uniq[tr->ndistinct - 1])
			tr->uniq[tr->ndistinct++] = tr->uniq[i];
	for (i = 0; i < tr->nrefs; i++)
		tr->dense[i] = rank_of(tr, tr->ids[i]);
	return 0;
}

/* --- the ideal LRU -------------------------------------------------------- */

/*
 * The hit ratio of an LRU cache of cap blocks over the trace in order,
 * with the replay's prefix rule (see the top of the file).
 */
static double ideal_lru(const struct trace *tr, uint64_t cap)
{
	uint32_t n = tr->ndistinct, head = NONE, tail = NONE, r, *prev, *next;
	uint64_t hits = 0, used = 0, i;
	bool *in;

	prev = malloc(n * sizeof(*prev));
	next = malloc(n * sizeof(*next));
	in = calloc(n, sizeof(*in));
	if (!prev || !next || !in) {
		free(prev);
		free(next);
		free(in);
		return -1;
	}
#define UNLINK(x) do {							\
		if (prev[x] != NONE) next[prev[x]] = next[x]; else head = next[x]; \
		if (next[x] != NONE) prev[next[x]] = prev[x]; else tail = prev[x]; \
	} while (0)
#define PUSH(x) do {							\
		prev[x] = tail; next[x] = NONE;				\
		if (tail != NONE) next[tail] = x; else head = x;	\
		tail = x;						\
	} while (0)
	for (r = 0; r < tr->nreq; r++) {
		uint32_t a = tr->start[r], z = tr->start[r + 1];

		for (i = a; i < z && in[tr->dense[i]]; i++)
			hits++;
		for (i = a; i < z; i++) {
			uint32_t x = tr->dense[i];

			if (in[x]) {
				UNLINK(x);
				PUSH(x);
				continue;
			}
			if (!cap)
				continue;
			if (used == cap) {
				uint32_t v = head;

				UNLINK(v);
				in[v] = false;
				used--;
			}
			PUSH(x);
			in[x] = true;
			used++;
		}
	}
#undef UNLINK
#undef PUSH
	free(prev);
	free(next);
	free(in);
	return (double)hits / (double)tr->nrefs;
}

/* --- one thread ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static int tnote(struct tclient *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = bench_vnote(c->errmsg, sizeof(c->errmsg), err, fmt, ap);
	va_end(ap);
	return err;
}

static const char *terr(const struct tclient *c, int r)
{
	const char *m = kvswap_last_error(c->k);

	return m && *m ? m : strerror(-r);
}

static void block_key(const struct trace_run *t, uint64_t id,
		      char buf[static KEY_LEN])
{
	snprintf(buf, KEY_LEN, KEY_PREFIX "/%ld/t/%" PRIu64, t->b->pid, id);
}

static uint8_t *block_addr(const struct tclient *c, uint32_t j, uint32_t layer)
{
	return c->base + j * c->t->block_stride + layer * c->t->b->stride;
}

/* Poisons block j's place, so that a block not written is seen. */
static void block_poison(struct tclient *c, uint32_t j)
{
	uint64_t poison = POISON, off;

	for (off = 0; off < c->t->block_stride; off += 4096)
		memcpy(c->base + j * c->t->block_stride + off, &poison,
		       sizeof(poison));
}

static void block_fill(struct tclient *c, uint32_t j, uint64_t id)
{
	const struct opts *o = &c->t->b->o;

	for (uint32_t l = 0; l < o->layers; l++)
		bench_pattern_fill(block_addr(c, j, l), o->seg_size, id, l);
}

/* Checks block j's bytes against those of id; counts a mismatch. */
static void block_check(struct tclient *c, uint32_t j, uint64_t id)
{
	const struct opts *o = &c->t->b->o;

	for (uint32_t l = 0; l < o->layers; l++) {
		uint64_t bad = bench_pattern_check(block_addr(c, j, l),
						   o->seg_size, id, l);

		if (bad < o->seg_size) {
			c->mismatches++;
			tnote(c, -EBADMSG, "block %" PRIu64 " layer %" PRIu32
			      ": byte %" PRIu64 " differs", id, l, bad);
			return;
		}
	}
	c->blocks_in++;
}

/* Counts a failed swap of block id: ENOENT, ENOSPC, EBADMSG or other. */
static void block_failed(struct tclient *c, uint64_t id, int r,
			 const char *what, const char *msg)
{
	if (r == -ENOENT)
		c->enoent++;
	else if (r == -ENOSPC)
		c->enospc++;
	else if (r == -EBADMSG)
		c->crc_errors++;
	else
		c->other_errors++;
	tnote(c, r, "%s of block %" PRIu64 ": %s", what, id,
	      msg && *msg ? msg : strerror(-r));
}

/* The hit prefix of request [ids, ids + n). Returns it, or -errno. */
static int replay_lookup(struct tclient *c, const uint64_t *ids, uint32_t n)
{
	struct trace_run *t = c->t;
	uint64_t t0 = now_ns();
	int r;

	for (uint32_t j = 0; j < n; j++) {
		char *key = c->keys + (size_t)j * KEY_LEN;

		block_key(t, ids[j], key);
		c->keyp[j] = key;
		c->keylen[j] = strlen(key);
	}
	r = t->b->o.lease_ms ?
	    kvswap_lookup_lease(c->k, c->keyp, c->keylen, n, t->b->o.lease_ms,
				c->present) :
	    kvswap_lookup(c->k, c->keyp, c->keylen, n, c->present);
	if (r < 0)
		return tnote(c, r, "lookup: %s", terr(c, r));
	hist_add(&c->lookup, now_ns() - t0);
	return r;
}

static void batch_entry(struct tclient *c, uint32_t j)
{
	const struct opts *o = &c->t->b->o;

	c->ents[j] = (struct kvswap_batch_entry){
		.key = c->keyp[j],
		.key_len = c->keylen[j],
		.nseg = o->layers,
		.offsets = &c->offsets[(size_t)j * o->layers],
		.length = o->seg_size,
		/* groups NULL: segment i (layer i) is in group i. */
	};
}

/* The batch replay of one request: Lookup, SwapInBatch, SwapOutBatch. */
static int replay_batch(struct tclient *c, const uint64_t *ids, uint32_t n)
{
	const struct opts *o = &c->t->b->o;
	struct kvswap_req *req;
	uint32_t j, p, crc = o->client_crc ? 0 : KVSWAP_NO_VERIFY;
	uint64_t t0;
	int r;

	r = replay_lookup(c, ids, n);
	if (r < 0)
		return r;
	p = (uint32_t)r;
	c->hits += p;
	if (p) {
		for (j = 0; j < p; j++) {
			block_poison(c, j);
			batch_entry(c, j);
		}
		t0 = now_ns();
		/*
		 * The whole prefix is waited for at once: request order keeps
		 * each block's adjacent layers together for the block layer.
		 */
		r = kvswap_swap_in_batch(c->k, c->region, c->ents, p,
					 crc | KVSWAP_REQUEST_ORDER, &req);
		if (r < 0)
			return tnote(c, r, "swap-in batch: %s", terr(c, r));
		kvswap_wait(c->k, req, -1);
		hist_add(&c->swap_in, now_ns() - t0);
		for (j = 0; j < p; j++) {
			r = kvswap_req_entry_status(req, j);
			if (r == 0)
				block_check(c, j, ids[j]);
			else
				block_failed(c, ids[j], r, "swap-in",
					     kvswap_req_entry_error(req, j));
		}
		kvswap_req_free(req);
	}
	if (p < n) {
		for (j = p; j < n; j++) {
			block_fill(c, j, ids[j]);
			batch_entry(c, j);
		}
		t0 = now_ns();
		r = kvswap_swap_out_batch(c->k, c->region, c->ents + p, n - p,
					  o->flags | KVSWAP_IF_ABSENT | crc |
					  KVSWAP_REQUEST_ORDER, &req);
		if (r < 0)
			return tnote(c, r, "swap-out batch: %s", terr(c, r));
		kvswap_wait(c->k, req, -1);
		hist_add(&c->swap_out, now_ns() - t0);
		for (j = p; j < n; j++) {
			r = kvswap_req_entry_status(req, j - p);
			if (r == 0)
				c->blocks_out++;
			else if (r == KVSWAP_SKIPPED)
				c->skipped++;
			else
				block_failed(c, ids[j], r, "swap-out",
					     kvswap_req_entry_error(req, j - p));
		}
		kvswap_req_free(req);
	}
	return 0;
}

/*
 * The v1 replay of one request: the same Lookup, then one SwapIn per hit
 * block and one SwapOut per missing block, each set all in flight at
 * once and then waited for.
 */
static int replay_v1(struct tclient *c, const uint64_t *ids, uint32_t n)
{
	const struct opts *o = &c->t->b->o;
	uint32_t j, p, L = o->layers;
	uint64_t t0;
	int r;

	r = replay_lookup(c, ids, n);
	if (r < 0)
		return r;
	p = (uint32_t)r;
	c->hits += p;
	if (p) {
		t0 = now_ns();
		for (j = 0; j < p; j++) {
			block_poison(c, j);
			r = kvswap_swap_in(c->k, c->keyp[j], c->keylen[j], c->region,
					   &c->segs_in[(size_t)j * L], L, &c->reqs[j]);
			if (r < 0) {
				c->reqs[j] = NULL;
				block_failed(c, ids[j], r, "swap-in", terr(c, r));
			}
		}
		for (j = 0; j < p; j++) {
			if (!c->reqs[j])
				continue;
			r = kvswap_wait(c->k, c->reqs[j], -1);
			if (r == 0)
				block_check(c, j, ids[j]);
			else
				block_failed(c, ids[j], r, "swap-in", terr(c, r));
			kvswap_req_free(c->reqs[j]);
		}
		hist_add(&c->swap_in, now_ns() - t0);
	}
	if (p < n) {
		for (j = p; j < n; j++)
			block_fill(c, j, ids[j]);
		t0 = now_ns();
		for (j = p; j < n; j++) {
			r = kvswap_swap_out(c->k, c->keyp[j], c->keylen[j], c->region,
					    &c->segs_out[(size_t)j * L], L, NULL, 0,
					    o->flags, &c->reqs[j]);
			if (r < 0) {
				c->reqs[j] = NULL;
				block_failed(c, ids[j], r, "swap-out", terr(c, r));
			}
		}
		for (j = p; j < n; j++) {
			if (!c->reqs[j])
				continue;
			r = kvswap_wait(c->k, c->reqs[j], -1);
			if (r == 0)
				c->blocks_out++;
			else
				block_failed(c, ids[j], r, "swap-out", terr(c, r));
			kvswap_req_free(c->reqs[j]);
		}
		hist_add(&c->swap_out, now_ns() - t0);
	}
	return 0;
}

static int tclient_setup(struct tclient *c)
{
	struct trace_run *t = c->t;
	const struct opts *o = &t->b->o;
	uint32_t m = t->tr.max_blocks, j, l;
	uint64_t size = m * t->block_stride;
	char h[HUMAN_LEN];
	int r;

	c->keys = calloc(m, KEY_LEN);
	c->keyp = calloc(m, sizeof(*c->keyp));
	c->keylen = calloc(m, sizeof(*c->keylen));
	c->present = calloc(m, sizeof(*c->present));
	c->ents = calloc(m, sizeof(*c->ents));
	c->offsets = calloc((size_t)m * o->layers, sizeof(*c->offsets));
	c->segs_in = calloc((size_t)m * o->layers, sizeof(*c->segs_in));
	c->segs_out = calloc((size_t)m * o->layers, sizeof(*c->segs_out));
	c->reqs = calloc(m, sizeof(*c->reqs));
	if (!c->keys || !c->keyp || !c->keylen || !c->present || !c->ents ||
	    !c->offsets || !c->segs_in || !c->segs_out || !c->reqs)
		return tnote(c, -ENOMEM, "out of memory");
	for (j = 0; j < m; j++)
		for (l = 0; l < o->layers; l++) {
			uint64_t off = j * t->block_stride + l * t->b->stride;
			size_t i = (size_t)j * o->layers + l;

			c->offsets[i] = off;
			c->segs_in[i] = (struct kvswap_seg_in){ l, off };
			c->segs_out[i] = (struct kvswap_seg_out){ off, o->seg_size };
		}
	r = kvswap_connect(o->socket, &c->k);
	if (r < 0) {
		c->k = NULL;
		return tnote(c, r, "connect: %s", kvswap_last_error(NULL));
	}
	r = kvswap_region_create(c->k, (size_t)size, &c->region);
	if (r < 0)
		return tnote(c, r, "create a region of %s: %s",
			     human_size(size, h), terr(c, r));
	c->base = kvswap_region_addr(c->region);
	return 0;
}

static void tclient_free(struct tclient *c)
{
	if (c->k && c->region)
		kvswap_region_release(c->k, c->region);
	kvswap_close(c->k);
	c->k = NULL;
	free(c->keys);
	free(c->keyp);
	free(c->keylen);
	free(c->present);
	free(c->ents);
	free(c->offsets);
	free(c->segs_in);
	free(c->segs_out);
	free(c->reqs);
}

static void *tclient_main(void *arg)
{
	struct tclient *c = arg;
	struct trace_run *t = c->t;
	const struct trace *tr = &t->tr;
	int r;

	r = tclient_setup(c);
	__atomic_fetch_add(&t->ready, 1, __ATOMIC_RELEASE);
	pthread_barrier_wait(&t->barrier);	/* main: Stat before */
	pthread_barrier_wait(&t->barrier);	/* go */
	while (r == 0 && !__atomic_load_n(&t->stop, __ATOMIC_RELAXED)) {
		uint32_t q = __atomic_fetch_add(&t->next, 1, __ATOMIC_RELAXED);
		uint32_t a, n;

		if (q >= tr->nreq)
			break;
		a = tr->start[q];
		n = tr->start[q + 1] - a;
		if (!n)
			continue;
		r = t->b->o.v1 ? replay_v1(c, tr->ids + a, n) :
				 replay_batch(c, tr->ids + a, n);
		c->requests++;
		c->refs += n;
	}
	c->err = r;
	__atomic_store_n(&c->end_ns, now_ns(), __ATOMIC_RELEASE);
	pthread_barrier_wait(&t->barrier);	/* main: Stat after */
	tclient_free(c);
	return NULL;
}

/* --- the run, main thread --------------------------------------------------- */

struct trace_result {
	struct tclient sum;		/* the threads' counters, merged */
	double elapsed_s;
	double daemon_cpu_ms;
	uint64_t evictions;
	const char *first_error;
	struct kvswap_stat before;
};

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ULL),
		.tv_nsec = (long)(ns % 1000000000ULL),
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void json_hist(const char *name, const struct hist *h, bool last)
{
	printf("  \"%s\": {\"count\": %" PRIu64 ", \"p50\": %.1f, \"p99\": %.1f, "
	       "\"mean\": %.1f, \"max\": %.1f}%s\n", name, h->count,
	       hist_percentile(h, 50) / 1e3, hist_percentile(h, 99) / 1e3,
	       h->count ? h->sum / (double)h->count / 1e3 : 0,
	       (double)h->max / 1e3, last ? "" : ",");
}

static void trace_report(const struct trace_run *t, const struct trace_result *res)
{
	const struct opts *o = &t->b->o;
	const struct tclient *s = &res->sum;
	double secs = res->elapsed_s > 0 ? res->elapsed_s : 1e-9;
	double hit = s->refs ? (double)s->hits / (double)s->refs : 0;
	uint64_t moved = s->blocks_in + s->blocks_out;
	uint64_t block = o->layers * o->seg_size;
	char h1[HUMAN_LEN], h2[HUMAN_LEN];

	if (o->json) {
		printf("{\n  \"daemon\": ");
		json_string(stdout, t->b->lim.daemon, strlen(t->b->lim.daemon));
		printf(",\n  \"mode\": \"trace\",\n");
		printf("  \"trace\": ");
		json_string(stdout, o->trace, strlen(o->trace));
		printf(",\n  \"api\": \"%s\",\n", o->v1 ? "v1" : "batch");
		printf("  \"clients\": %" PRIu32 ",\n", o->clients);
		printf("  \"layers\": %" PRIu32 ",\n", o->layers);
		printf("  \"segment_size\": %" PRIu64 ",\n", o->seg_size);
		printf("  \"block_bytes\": %" PRIu64 ",\n", block);
		printf("  \"lease_ms\": %" PRIu32 ",\n", o->lease_ms);
		printf("  \"client_crc\": %s,\n",
		       !o->v1 && o->client_crc ? "true" : "false");
		printf("  \"swap_out_mode\": \"%s\",\n",
		       o->flags & KVSWAP_DURABLE ? "durable" : "cache");
		printf("  \"daemon_verify\": %s,\n",
		       res->before.verify ? "true" : "false");
		printf("  \"trace_requests\": %" PRIu32 ",\n", t->tr.nreq);
		printf("  \"trace_blocks\": %" PRIu64 ",\n", t->tr.nrefs);
		printf("  \"distinct_blocks\": %" PRIu32 ",\n", t->tr.ndistinct);
		printf("  \"capacity_bytes\": %" PRIu64 ",\n", t->capacity);
		printf("  \"capacity_blocks\": %" PRIu64 ",\n", t->cap_blocks);
		printf("  \"requests\": %" PRIu64 ",\n", s->requests);
		printf("  \"blocks\": %" PRIu64 ",\n", s->refs);
		printf("  \"hits\": %" PRIu64 ",\n", s->hits);
		printf("  \"hit_ratio\": %.5f,\n", hit);
		printf("  \"ideal_hit_ratio\": %.5f,\n", t->ideal_hit_ratio);
		printf("  \"hit_ratio_of_ideal\": %.4f,\n", t->ideal_hit_ratio > 0 ?
		       hit / t->ideal_hit_ratio : 0);
		printf("  \"blocks_in\": %" PRIu64 ",\n", s->blocks_in);
		printf("  \"blocks_out\": %" PRIu64 ",\n", s->blocks_out);
		printf("  \"skipped\": %" PRIu64 ",\n", s->skipped);
		printf("  \"elapsed_s\": %.6f,\n", res->elapsed_s);
		printf("  \"requests_per_s\": %.1f,\n", (double)s->requests / secs);
		printf("  \"blocks_per_s\": %.1f,\n", (double)moved / secs);
		printf("  \"blocks_in_per_s\": %.1f,\n", (double)s->blocks_in / secs);
		printf("  \"blocks_out_per_s\": %.1f,\n", (double)s->blocks_out / secs);
		printf("  \"bytes_per_s\": %.0f,\n", (double)(moved * block) / secs);
		printf("  \"mismatches\": %" PRIu64 ",\n", s->mismatches);
		printf("  \"crc_errors\": %" PRIu64 ",\n", s->crc_errors);
		printf("  \"enoent\": %" PRIu64 ",\n", s->enoent);
		printf("  \"enospc\": %" PRIu64 ",\n", s->enospc);
		printf("  \"other_errors\": %" PRIu64 ",\n", s->other_errors);
		printf("  \"evictions\": %" PRIu64 ",\n", res->evictions);
		printf("  \"daemon_cpu_ms\": %.1f,\n", res->daemon_cpu_ms);
		printf("  \"first_error\": ");
		if (res->first_error)
			json_string(stdout, res->first_error,
				    strlen(res->first_error));
		else
			fputs("null", stdout);
		printf(",\n");
		json_hist("lookup_us", &s->lookup, false);
		json_hist("swap_in_us", &s->swap_in, false);
		json_hist("swap_out_us", &s->swap_out, true);
		printf("}\n");
		return;
	}
	printf("%-12s %s, %" PRIu32 " requests, %" PRIu64 " blocks (%" PRIu32
	       " distinct)\n", "trace", o->trace, t->tr.nreq, t->tr.nrefs,
	       t->tr.ndistinct);
	printf("%-12s %s: blocks of %" PRIu32 " x %s, %" PRIu32 " client(s), "
	       "lease %" PRIu32 " ms%s\n", "replay", o->v1 ?
	       "one v1 request per block" : "batches", o->layers,
	       human_size(o->seg_size, h1), o->clients, o->lease_ms,
	       !o->v1 && o->client_crc ? ", client CRC32C" : "");
	printf("%-12s %.4f (ideal LRU of %" PRIu64 " blocks, %s: %.4f)\n",
	       "hit ratio", hit, t->cap_blocks, human_size(t->capacity, h1),
	       t->ideal_hit_ratio);
	printf("%-12s %.0f blocks/s (%.0f in, %.0f out), %s/s, %.0f requests/s "
	       "in %.2f s\n", "throughput", (double)moved / secs,
	       (double)s->blocks_in / secs, (double)s->blocks_out / secs,
	       human_size((uint64_t)((double)(moved * block) / secs), h2),
	       (double)s->requests / secs, res->elapsed_s);
	printf("%-12s lookup p50 %.1f us, p99 %.1f us; swap-in p50 %.1f us, "
	       "p99 %.1f us\n", "latency", hist_percentile(&s->lookup, 50) / 1e3,
	       hist_percentile(&s->lookup, 99) / 1e3,
	       hist_percentile(&s->swap_in, 50) / 1e3,
	       hist_percentile(&s->swap_in, 99) / 1e3);
	printf("%-12s %" PRIu64 " skipped (IF_ABSENT), %" PRIu64 " evictions\n",
	       "store", s->skipped, res->evictions);
	printf("%-12s %" PRIu64 " mismatches, %" PRIu64 " CRC, %" PRIu64
	       " ENOENT, %" PRIu64 " ENOSPC, %" PRIu64 " other%s%s\n", "errors",
	       s->mismatches, s->crc_errors, s->enoent, s->enospc,
	       s->other_errors, res->first_error ? "; first: " : "",
	       res->first_error ? res->first_error : "");
}

/* Deletes every block key of the trace, max_lookup_keys at a time. */
static void trace_cleanup(struct trace_run *t, struct kvswap *k)
{
	const struct trace *tr = &t->tr;
	uint32_t chunk = t->lookup_max, i, j, n;
	const void **keyp = calloc(chunk, sizeof(*keyp));
	size_t *lens = calloc(chunk, sizeof(*lens));
	char *keys = calloc(chunk, KEY_LEN);

	if (!keyp || !lens || !keys)
		goto out;
	for (i = 0; i < tr->ndistinct; i += n) {
		n = tr->ndistinct - i < chunk ? tr->ndistinct - i : chunk;
		for (j = 0; j < n; j++) {
			block_key(t, tr->uniq[i + j], keys + (size_t)j * KEY_LEN);
			keyp[j] = keys + (size_t)j * KEY_LEN;
			lens[j] = strlen(keys + (size_t)j * KEY_LEN);
		}
		if (kvswap_delete_keys(k, keyp, lens, n, NULL) < 0)
			break;
	}
out:
	free(keyp);
	free(lens);
	free(keys);
}

int bench_run_trace(struct bench *b, struct kvswap *k)
{
	struct opts *o = &b->o;
	struct trace_run *t;
	struct trace_result *res;
	struct kvswap_stat after;
	uint64_t start, last = 0, end = 0, free_bytes;
	uint32_t i, block;
	int r, status = EXIT_FAILURE;
	char h1[HUMAN_LEN];

	t = calloc(1, sizeof(*t));
	res = calloc(1, sizeof(*res));
	if (!t || !res) {
		fprintf(stderr, BENCH_PROG ": out of memory\n");
		goto out_free;
	}
	t->b = b;
	t->lookup_max = b->lim.max_lookup_keys ? b->lim.max_lookup_keys : 1024;
	if (trace_load(&t->tr, o->trace, o->requests) < 0)
		goto out_free;
	if (t->tr.max_blocks > t->lookup_max) {
		fprintf(stderr, BENCH_PROG ": a request of %s has %" PRIu32 " blocks; "
			"a Lookup takes at most %" PRIu32 "\n", o->trace,
			t->tr.max_blocks, t->lookup_max);
		goto out_free;
	}
	if (b->lim.max_segments && o->layers > b->lim.max_segments) {
		fprintf(stderr, BENCH_PROG ": --layers %" PRIu32 ": the daemon takes at "
			"most %" PRIu32 " segments per entry\n", o->layers,
			b->lim.max_segments);
		goto out_free;
	}
	block = b->lim.block_size ? b->lim.block_size : 4096;
	t->block_stride = o->layers * b->stride;
	t->block_store = o->layers * round_up(o->seg_size, block);
	r = kvswap_stat(k, &res->before);
	if (r < 0) {
		fprintf(stderr, BENCH_PROG ": stat: %s\n", kvswap_last_error(k));
		goto out_free;
	}
	free_bytes = res->before.capacity > res->before.used ?
		     res->before.capacity - res->before.used : 0;
	t->capacity = o->capacity ? o->capacity : free_bytes;
	t->cap_blocks = t->capacity / t->block_store;
	t->ideal_hit_ratio = ideal_lru(&t->tr, t->cap_blocks);
	if (t->ideal_hit_ratio < 0) {
		fprintf(stderr, BENCH_PROG ": out of memory\n");
		goto out_free;
	}
	if (t->tr.ndistinct <= t->cap_blocks && !o->json)
		fprintf(stderr, BENCH_PROG ": note: the %" PRIu32 " distinct blocks "
			"fit the capacity (%s): nothing will be evicted\n",
			t->tr.ndistinct, human_size(t->capacity, h1));

	t->cl = calloc(o->clients, sizeof(*t->cl));
	if (!t->cl) {
		fprintf(stderr, BENCH_PROG ": out of memory\n");
		goto out_free;
	}
	r = pthread_barrier_init(&t->barrier, NULL, o->clients + 1);
	if (r) {
		fprintf(stderr, BENCH_PROG ": barrier: %s\n", strerror(r));
		goto out_free;
	}
	for (i = 0; i < o->clients; i++) {
		t->cl[i].t = t;
		t->cl[i].id = i;
		r = pthread_create(&t->cl[i].thread, NULL, tclient_main, &t->cl[i]);
		if (r) {
			/* The barrier counts every thread: fatal. */
			fprintf(stderr, BENCH_PROG ": start a thread: %s\n", strerror(r));
			exit(EXIT_FAILURE);
		}
	}
	while (__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE) < (int)o->clients)
		sleep_ns(POLL_NS);
	pthread_barrier_wait(&t->barrier);
	r = kvswap_stat(k, &res->before);
	if (r < 0)
		fprintf(stderr, BENCH_PROG ": stat: %s\n", kvswap_last_error(k));
	start = now_ns();
	pthread_barrier_wait(&t->barrier);
	for (;;) {
		uint32_t done = __atomic_load_n(&t->next, __ATOMIC_RELAXED);
		uint64_t now;
		bool all = true;

		for (i = 0; i < o->clients; i++)
			if (!__atomic_load_n(&t->cl[i].end_ns, __ATOMIC_ACQUIRE))
				all = false;
		if (all)
			break;
		sleep_ns(POLL_NS);
		if (bench_interrupted())
			__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
		now = now_ns();
		if (now - last >= PROGRESS_NS) {
			bench_progress(b, o->v1 ? "trace replay (v1)" :
				       "trace replay", done < t->tr.nreq ? done :
				       t->tr.nreq, t->tr.nreq, 0, now - start);
			last = now;
		}
	}
	progress_line_clear(&b->progress);
	pthread_barrier_wait(&t->barrier);
	r = kvswap_stat(k, &after);
	if (r < 0) {
		fprintf(stderr, BENCH_PROG ": stat: %s\n", kvswap_last_error(k));
	} else {
		res->daemon_cpu_ms = (double)(after.cpu_user_us + after.cpu_system_us -
					      res->before.cpu_user_us -
					      res->before.cpu_system_us) / 1e3;
		res->evictions = after.evictions - res->before.evictions;
	}
	for (i = 0; i < o->clients; i++) {
		struct tclient *c = &t->cl[i], *s = &res->sum;

		pthread_join(c->thread, NULL);
		s->requests += c->requests;
		s->refs += c->refs;
		s->hits += c->hits;
		s->blocks_in += c->blocks_in;
		s->blocks_out += c->blocks_out;
		s->skipped += c->skipped;
		s->mismatches += c->mismatches;
		s->crc_errors += c->crc_errors;
		s->enoent += c->enoent;
		s->enospc += c->enospc;
		s->other_errors += c->other_errors;
		hist_merge(&s->lookup, &c->lookup);
		hist_merge(&s->swap_in, &c->swap_in);
		hist_merge(&s->swap_out, &c->swap_out);
		if (c->end_ns > end)
			end = c->end_ns;
		if (c->err < 0)
			s->other_errors++;	/* a thread stopped by a failure */
		if (!res->first_error && c->errmsg[0])
			res->first_error = c->errmsg;
	}
	pthread_barrier_destroy(&t->barrier);
	res->elapsed_s = end > start ? (double)(end - start) / 1e9 : 0;
	if (t->tr.nrefs > 1000)
		progress_line_draw(&b->progress, BENCH_PROG ": deleting the keys...");
	trace_cleanup(t, k);
	progress_line_clear(&b->progress);
	trace_report(t, res);
	status = res->sum.mismatches || res->sum.crc_errors || res->sum.enoent ||
		 res->sum.enospc || res->sum.other_errors ? EXIT_FAILURE :
		 EXIT_SUCCESS;
	if (bench_interrupted()) {
		fprintf(stderr, BENCH_PROG ": interrupted\n");
		status = EXIT_FAILURE;
	}
out_free:
	if (t)
		trace_free(&t->tr);
	free(t ? t->cl : NULL);
	free(t);
	free(res);
	return status;
}
