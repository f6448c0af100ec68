/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl bench's internals, shared by its files (the entry point,
 * bench_main(), is declared in ctl.h):
 *
 *   bench.c             the command line, the driver, the data pattern
 *   bench-hist.c        the per-segment latency histogram
 *   bench-client.c      one client thread of the throughput run
 *   bench-throughput.c  the throughput run's main thread and its report
 *   bench-prefill.c     the prefill-overlap run and its report
 *
 * Only libkvswap's public API is used. Functions return a negative errno;
 * bench_main() turns that into an exit status.
 */
#ifndef KVSWAPCTL_BENCH_H
#define KVSWAPCTL_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl.h"
#include "kvswap.h"
#include "util.h"

#define BENCH_PROG		PROG " bench"

/* Keys are KEY_PREFIX/PID/..., at most KEY_LEN bytes with the NUL. */
#define KEY_PREFIX		"kvswap-bench"
#define KEY_LEN			96

enum bench_op { OP_IN, OP_OUT, OP_MIXED };

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

static inline uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* --- histogram (bench-hist.c) --------------------------------------------- */

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

void hist_add(struct hist *h, uint64_t v);
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at percentile p (0..100), clamped to the values seen. */
double hist_percentile(const struct hist *h, double p);

/* --- the throughput run (bench-client.c, bench-throughput.c) -------------- */

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
	struct progress_line progress;	/* the main thread's */
};

/*
 * A client thread: sets up its connection and region (and populates its
 * share of the keys), then meets the main thread at b->barrier four times:
 * before the Stat that opens the measurement, at the start, before the
 * Stat that closes it, and before deleting its keys. Returns NULL.
 */
void *bench_client_main(void *arg);

/* Runs the throughput mode and reports it. Returns the exit status. */
int bench_run_throughput(struct bench *b, struct kvswap *k);

/* --- the prefill run (bench-prefill.c) ------------------------------------ */

/* Runs the prefill mode and reports it. Returns the exit status. */
int bench_run_prefill(struct bench *b, struct kvswap *k);

/* --- shared by the runs (bench.c) ----------------------------------------- */

/*
 * The bytes of segment `seg` of key `key`: distinct for every key,
 * segment and position, so a misplaced or stale block is caught.
 */
void bench_pattern_fill(uint8_t *p, uint64_t len, uint64_t key, uint32_t seg);

/* Returns the offset of the first wrong byte, or len if all are right. */
uint64_t bench_pattern_check(const uint8_t *p, uint64_t len, uint64_t key,
			     uint32_t seg);

/*
 * Draws b's progress line: "WHAT DONE/TOTAL" when total is set, else
 * "WHAT SECONDS, BYTES, RATE".
 */
void bench_progress(struct bench *b, const char *what, uint64_t done,
		    uint64_t total, uint64_t bytes, uint64_t elapsed_ns);

/*
 * True once SIGINT or SIGTERM arrived: stop measuring, drain, delete the
 * keys and report what was measured.
 */
bool bench_interrupted(void);

#endif
