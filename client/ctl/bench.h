/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl bench's internals, shared by its files (the entry point,
 * bench_main(), is declared in ctl.h):
 *
 *   bench.c             the command line, the driver, the data pattern
 *   bench-hist.c        the per-segment latency histogram
 *   bench-client.c      one client thread of the throughput run
 *   bench-throughput.c  the throughput run's main thread and its report
 *   bench-batch.c       a client's requests through the batch API
 *   bench-prefill.c     the prefill-overlap run and its report
 *   bench-trace.c       the replay of a prefix-cache trace
 *
 * Only libkvswap's public API is used. Functions return a negative errno;
 * bench_main() turns that into an exit status.
 */
#ifndef KVSWAPCTL_BENCH_H
#define KVSWAPCTL_BENCH_H

#include <pthread.h>
#include <stdarg.h>
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
	/*
	 * The batch API (kvswap_swap_*_batch) when `entries` > 0: each
	 * request names `entries` keys of `layers` segments, segment i of
	 * each in completion group i. Without it, v1 requests of `nseg`
	 * segments (and `layers` is the prefill's).
	 */
	uint32_t entries;
	uint32_t layers;
	bool client_crc;	/* batch: the library's CRC32C (default) */
	uint32_t layer_window;	/* prefill: a batch per layer, this many at once */
	uint64_t compute_us;
	uint32_t runs;
	/* --trace FILE: the replay of a prefix-cache trace (bench-trace.c). */
	const char *trace;
	bool v1;		/* trace: one v1 request per block */
	uint64_t capacity;	/* trace: bytes of the ideal LRU; 0: free space */
	uint32_t requests;	/* trace: the first N requests; 0: all */
	uint32_t lease_ms;	/* trace: Lookup's lease */
	bool seg_size_set;	/* --segment-size given */
	bool layers_set;	/* --layers given */
	bool clients_set;	/* --clients given */
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
	uint64_t key;		/* batch: the first of nkeys keys */
	uint32_t nkeys;		/* keys the request names */
	uint32_t consumed;	/* segment events (v1), groups seen (batch) */
	bool out;
	/* Batch only: what the request names, and which groups landed. */
	struct kvswap_batch_entry *ents;	/* [entries] */
	uint64_t *offsets;			/* [entries x layers] */
	char *keys;				/* [entries][KEY_LEN] */
	bool *seen;				/* [layers] */
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
	uint64_t failed_entries;	/* batch */
	uint64_t verify_errors;
	uint64_t end_ns;
	int err;			/* what stopped this client */
	char errmsg[256];		/* the first error seen */
	struct hist hist[2];		/* [0] swap-in, [1] swap-out; per
					 * segment (v1) or group (batch) */
	struct hist req_hist;		/* batch: submission to final event */
};

struct bench {
	struct opts o;
	struct kvswap_limits lim;
	uint64_t stride;		/* segment pitch in a region slot */
	uint64_t req_bytes;		/* nseg (or entries x layers) x seg_size */
	uint64_t key_bytes;		/* bytes stored under one key */
	uint32_t req_keys;		/* keys per request: 1, or entries */
	uint32_t req_segs;		/* segments per request */
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

/* --- a client's batch requests (bench-batch.c) ---------------------------- */

/* The region bytes of slot s of client c. */
uint8_t *bench_slot_addr(const struct client *c, uint32_t s);

/* The names of the shared keys and of a client's rotating keys. */
void bench_key_in(const struct bench *b, uint64_t k, char buf[static KEY_LEN]);
void bench_key_out(const struct bench *b, uint32_t client, uint64_t k,
		   char buf[static KEY_LEN]);

/* The daemon's message of c's last error, or NULL if none. */
const char *bench_daemon_error(const struct client *c);

/*
 * Records the first error in buf (a client's errmsg; later ones only
 * count); returns err. bench_client_note() does it for a throughput
 * client.
 */
int bench_vnote(char *buf, size_t size, int err, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4)))
int bench_client_note(struct client *c, int err, const char *fmt, ...);

/* The arrays of each of c's slots for batch requests; 0 or -ENOMEM. */
int bench_batch_setup(struct client *c);
void bench_batch_free(struct client *c);

enum batch_kind {
	BATCH_POPULATE,	/* swap-out of shared keys, KVSWAP_CACHE, pattern
			 * written first with --verify; not measured */
	BATCH_IN,	/* swap-in of shared keys */
	BATCH_OUT,	/* swap-out of the client's rotating keys */
};

/*
 * Starts the batch in slot s: n keys first, first + 1, ... modulo the
 * key set (the shared keys, or the client's rotating keys). Returns 0 or
 * -errno (noted).
 */
int bench_batch_submit(struct client *c, struct slot *s, uint64_t first,
		       uint32_t n, enum batch_kind kind);

/* True if slot s's batch has a group or its end not yet taken. */
bool bench_batch_has_events(const struct client *c, const struct slot *s);

/*
 * Takes the groups of slot s's batch that landed (at `now`) and, once it
 * is done, its entries' outcomes (checking the bytes with --verify);
 * frees the request then. Never blocks.
 */
void bench_batch_reap(struct client *c, struct slot *s, uint64_t now);

/* --- the prefill run (bench-prefill.c) ------------------------------------ */

/* Runs the prefill mode and reports it. Returns the exit status. */
int bench_run_prefill(struct bench *b, struct kvswap *k);

/* --- the trace replay (bench-trace.c) -------------------------------------- */

/* Replays o.trace and reports it. Returns the exit status. */
int bench_run_trace(struct bench *b, struct kvswap *k);

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
