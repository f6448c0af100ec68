/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl bench: synthetic KV-cache traffic against a running kvswapd.
 * This file is the command line and the driver; bench.h lists the rest.
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
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define DEFAULT_SEGMENT_SIZE	(1ULL << 20)
#define DEFAULT_DEPTH		8
#define DEFAULT_DURATION_S	5.0
#define DEFAULT_RUNS		5
#define MAX_CLIENTS		256
#define MAX_LAYERS		1024
#define MAX_ENTRIES		65536
#define DEFAULT_TRACE_SEGMENT	4096
#define DEFAULT_TRACE_LAYERS	8
#define DEFAULT_TRACE_CLIENTS	4
#define DEFAULT_LEASE_MS	10000

/* --- interruption --------------------------------------------------------- */

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

bool bench_interrupted(void)
{
	return interrupted;
}

/* --- progress ------------------------------------------------------------- */

void bench_progress(struct bench *b, const char *what, uint64_t done,
		    uint64_t total, uint64_t bytes, uint64_t elapsed_ns)
{
	char a[HUMAN_LEN], r[HUMAN_LEN];
	double secs = (double)elapsed_ns / 1e9;

	if (!b->progress.tty)
		return;
	if (total)
		progress_line_draw(&b->progress,
				   BENCH_PROG ": %s %" PRIu64 "/%" PRIu64, what,
				   done, total);
	else
		progress_line_draw(&b->progress,
				   BENCH_PROG ": %s %.1f s, %s, %s/s", what,
				   secs, human_size(bytes, a),
				   human_size(secs > 0 ?
					      (uint64_t)((double)bytes / secs) :
					      0, r));
}

/* --- data pattern --------------------------------------------------------- */

/* The bytes of the pattern (bench.h), 8 at a time. */
static uint64_t pattern_word(uint64_t key, uint32_t seg, uint64_t word)
{
	uint64_t x = key * 0x9e3779b97f4a7c15ULL ^ (uint64_t)seg << 48 ^ word;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	return x;
}

void bench_pattern_fill(uint8_t *p, uint64_t len, uint64_t key, uint32_t seg)
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

uint64_t bench_pattern_check(const uint8_t *p, uint64_t len, uint64_t key,
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
		"  --entries-per-request N  the batch API: each request names N\n"
		"                        keys (entries) of --layers segments\n"
		"  --layers L            segments per entry, segment i of each in\n"
		"                        completion group i (default 1; alone, it\n"
		"                        means --entries-per-request 1)\n"
		"  --no-client-crc       batch: no CRC32C in the library\n"
		"                        (KVSWAP_NO_VERIFY): the daemon's own\n"
		"  --prefill L,COMPUTE_US  prefill overlap: one entry of L segments, a\n"
		"                        layer each, computed (busy loop) as they\n"
		"                        arrive, against load all then compute; with\n"
		"                        --entries-per-request N, one batch of N\n"
		"                        entries, layer i computed once group i landed\n"
		"  --per-layer W         prefill with a batch: one request per layer\n"
		"                        instead, W in flight (layer-ordered I/O)\n"
		"  --runs N              prefill: measured runs, each both ways;\n"
		"                        medians (default %d)\n"
		"  --trace FILE          replay a prefix-cache trace (JSON lines with\n"
		"                        hash_ids): per request a Lookup with a lease,\n"
		"                        a swap-in batch of the hit prefix and a\n"
		"                        swap-out batch (IF_ABSENT) of the rest; each\n"
		"                        block --layers (8) segments of --segment-size\n"
		"                        (4K), --clients (4) threads, --mode cache\n"
		"  --v1                  trace: one v1 request per block instead\n"
		"  --capacity SIZE       trace: the ideal LRU's size (default: the\n"
		"                        store's free space)\n"
		"  --requests N          trace: the first N requests only\n"
		"  --lease MS            trace: the Lookup's lease (default %d; 0: none)\n"
		"  --json                one JSON object on stdout\n"
		"  --socket PATH         the daemon's socket\n"
		"\n"
		"Latency is per segment, from the request's submission to the\n"
		"segment's event (batch: per completion group, and per request).\n"
		"Daemon CPU comes from Stat before and after.\n"
		"Keys are named " KEY_PREFIX "/PID/... and deleted at the end, also\n"
		"after SIGINT or SIGTERM (which end the measurement early).\n"
		"Exit status: 0, 1 on a failure or any transfer error, 2 on a usage\n"
		"error.\n", DEFAULT_DEPTH, DEFAULT_DURATION_S, DEFAULT_RUNS,
		DEFAULT_LEASE_MS);
}

__attribute__((format(printf, 1, 2)))
static int bench_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(BENCH_PROG ": ", stderr);
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
	O_RUNS, O_JSON, O_HELP, O_ENTRIES, O_LAYERS, O_NO_CLIENT_CRC,
	O_TRACE, O_V1, O_CAPACITY, O_REQUESTS, O_LEASE, O_PER_LAYER,
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
	{ "entries-per-request", O_ENTRIES, true },
	{ "layers", O_LAYERS, true },
	{ "no-client-crc", O_NO_CLIENT_CRC, false },
	{ "trace", O_TRACE, true },
	{ "v1", O_V1, false },
	{ "capacity", O_CAPACITY, true },
	{ "requests", O_REQUESTS, true },
	{ "lease", O_LEASE, true },
	{ "per-layer", O_PER_LAYER, true },
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
			return bench_usage_error("invalid --op '%s': use in, out or mixed", v);
		break;
	case O_SEGMENT_SIZE:
		if (ctl_parse_size(v, &o->seg_size) < 0 || !o->seg_size ||
		    o->seg_size > (1ULL << 32))
			return bench_usage_error("invalid --segment-size '%s': a size from 1 "
					   "to 4G, with an optional K, M or G suffix", v);
		o->seg_size_set = true;
		break;
	case O_SEGMENTS:
		if (parse_u32(v, 1, 65536, &o->nseg) < 0)
			return bench_usage_error("invalid --segments '%s'", v);
		break;
	case O_CLIENTS:
		if (parse_u32(v, 1, MAX_CLIENTS, &o->clients) < 0)
			return bench_usage_error("invalid --clients '%s': 1 to %d", v,
					   MAX_CLIENTS);
		o->clients_set = true;
		break;
	case O_DEPTH:
		if (parse_u32(v, 1, 4096, &o->depth) < 0)
			return bench_usage_error("invalid --depth '%s': 1 to 4096", v);
		break;
	case O_DURATION:
		errno = 0;
		d = strtod(v, &end);
		if (errno || end == v || *end || !(d > 0) || d > 86400)
			return bench_usage_error("invalid --duration '%s': seconds", v);
		o->duration = d;
		break;
	case O_TOTAL:
		if (ctl_parse_size(v, &o->total) < 0 || !o->total)
			return bench_usage_error("invalid --total '%s'", v);
		break;
	case O_WORKING_SET:
		if (ctl_parse_size(v, &o->working_set) < 0 || !o->working_set)
			return bench_usage_error("invalid --working-set '%s'", v);
		break;
	case O_MODE:
		if (!strcmp(v, "durable"))
			o->flags = KVSWAP_DURABLE;
		else if (!strcmp(v, "cache"))
			o->flags = KVSWAP_CACHE;
		else
			return bench_usage_error("invalid --mode '%s': durable or cache", v);
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
			return bench_usage_error("invalid --prefill '%s': LAYERS,COMPUTE_US "
					   "with 1 to %d layers", v, MAX_LAYERS);
		v = end + 1;
		us = strtoull(v, &end, 10);
		if (errno || *end || us > 60000000ULL)
			return bench_usage_error("invalid --prefill compute time '%s': "
					   "microseconds", v);
		if (o->layers_set && o->layers != l)
			return bench_usage_error("--prefill %llu layers and --layers %"
						 PRIu32 " differ", l, o->layers);
		o->prefill = true;
		o->layers = (uint32_t)l;
		o->layers_set = true;
		o->compute_us = us;
		break;
	}
	case O_ENTRIES:
		if (parse_u32(v, 1, MAX_ENTRIES, &o->entries) < 0)
			return bench_usage_error("invalid --entries-per-request '%s': 1 "
						 "to %d", v, MAX_ENTRIES);
		break;
	case O_LAYERS: {
		uint32_t l;

		if (parse_u32(v, 1, MAX_LAYERS, &l) < 0)
			return bench_usage_error("invalid --layers '%s': 1 to %d", v,
						 MAX_LAYERS);
		if (o->layers_set && o->layers != l)
			return bench_usage_error("--layers %" PRIu32 " and --prefill "
						 "%" PRIu32 " layers differ", l,
						 o->layers);
		o->layers = l;
		o->layers_set = true;
		break;
	}
	case O_NO_CLIENT_CRC:
		o->client_crc = false;
		break;
	case O_TRACE:
		if (!*v)
			return bench_usage_error("--trace needs a file");
		o->trace = v;
		break;
	case O_V1:
		o->v1 = true;
		break;
	case O_CAPACITY:
		if (ctl_parse_size(v, &o->capacity) < 0 || !o->capacity)
			return bench_usage_error("invalid --capacity '%s'", v);
		break;
	case O_REQUESTS:
		if (parse_u32(v, 1, UINT32_MAX, &o->requests) < 0)
			return bench_usage_error("invalid --requests '%s'", v);
		break;
	case O_PER_LAYER:
		if (parse_u32(v, 1, MAX_LAYERS, &o->layer_window) < 0)
			return bench_usage_error("invalid --per-layer '%s': 1 to %d "
						 "requests in flight", v, MAX_LAYERS);
		break;
	case O_LEASE:
		if (parse_u32(v, 0, 60000, &o->lease_ms) < 0)
			return bench_usage_error("invalid --lease '%s': 0 to 60000 ms", v);
		break;
	case O_RUNS:
		if (parse_u32(v, 1, 1000, &o->runs) < 0)
			return bench_usage_error("invalid --runs '%s': 1 to 1000", v);
		break;
	case O_JSON:
		o->json = true;
		break;
	}
	return 0;
}

/* Returns 0, 1 after --help, or -EINVAL after a usage error. */
static int bench_parse_args(int argc, char **argv, struct opts *o)
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
			return bench_usage_error("unexpected argument '%s'", a);
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
			return bench_usage_error("unknown option '%s'", a);
		name = a + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		for (j = 0; j < NOPTIONS; j++)
			if (strlen(options[j].name) == len &&
			    !strncmp(options[j].name, name, len))
				break;
		if (j == NOPTIONS)
			return bench_usage_error("unknown option '%s'", a);
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
				return bench_usage_error("option '--%s' needs a value",
						   options[j].name);
		} else if (eq) {
			return bench_usage_error("option '--%s' takes no value",
					   options[j].name);
		}
		r = set_option(o, options[j].id, value);
		if (r < 0)
			return r;
	}
	if (o->total && o->duration > 0)
		return bench_usage_error("--duration and --total exclude each other");
	if (o->trace && o->prefill)
		return bench_usage_error("--trace and --prefill exclude each other");
	if (!o->trace && (o->v1 || o->capacity || o->requests))
		return bench_usage_error("--v1, --capacity and --requests go with "
					 "--trace");
	if (o->trace && o->entries)
		return bench_usage_error("--trace makes its own batches: no "
					 "--entries-per-request");
	if (o->entries && o->nseg > 1)
		return bench_usage_error("--segments is for v1 requests; with "
					 "--entries-per-request, --layers sets the "
					 "segments of each entry");
	if (o->layer_window && (!o->prefill || !o->entries))
		return bench_usage_error("--per-layer goes with --prefill and "
					 "--entries-per-request");
	if (o->layers_set && !o->entries && !o->prefill && !o->trace)
		o->entries = 1;	/* --layers alone: one entry per batch */
	if (!o->layers)
		o->layers = 1;
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
			.client_crc = true,
			.lease_ms = DEFAULT_LEASE_MS,
		},
	};
	struct opts *o = &b.o;
	const struct kvswap_limits *lim;
	struct kvswap_batch_limits bl;
	struct kvswap *k;
	const char *path;
	int r, status;

	r = bench_parse_args(argc, argv, o);
	if (r)
		return r > 0 ? EXIT_SUCCESS : 2;
	if (o->trace) {
		/* The replay: 32 KiB blocks of 8 layers, 4 threads. */
		if (!o->seg_size_set)
			o->seg_size = DEFAULT_TRACE_SEGMENT;
		if (!o->layers_set)
			o->layers = DEFAULT_TRACE_LAYERS;
		if (!o->clients_set)
			o->clients = DEFAULT_TRACE_CLIENTS;
		if (!o->flags)
			o->flags = KVSWAP_CACHE;
	}
	path = o->socket && *o->socket ? o->socket : getenv("KVSWAP_SOCKET");
	if (!path || !*path)
		path = KVSWAP_DEFAULT_SOCKET;
	o->socket = path;
	progress_line_init(&b.progress);
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
		fprintf(stderr, BENCH_PROG ": connect to %s: %s%s\n", path,
			kvswap_last_error(NULL),
			r == -ENOENT || r == -ECONNREFUSED ?
			" (is kvswapd running?)" : "");
		return EXIT_FAILURE;
	}
	lim = kvswap_limits(k);
	b.lim = *lim;
	b.stride = round_up(o->seg_size, lim->alignment ? lim->alignment : 1);
	b.req_keys = o->entries ? o->entries : 1;
	b.req_segs = o->entries ? o->entries * o->layers : o->nseg;
	b.key_bytes = o->seg_size * (o->entries ? o->layers : o->nseg);
	b.req_bytes = o->seg_size * b.req_segs;
	status = EXIT_FAILURE;
	if ((o->entries || (o->trace && !o->v1)) &&
	    kvswap_batch_limits(k, &bl) < 0) {
		fprintf(stderr, BENCH_PROG ": %s takes no batches: --entries-per-"
			"request, --layers and --trace need them (--trace --v1 "
			"does not)\n", lim->daemon);
	} else if (o->trace) {
		status = bench_run_trace(&b, k);
	} else if (o->prefill) {
		if (lim->max_segments && o->layers > lim->max_segments)
			fprintf(stderr, BENCH_PROG ": %" PRIu32 " layers: the daemon takes "
				"at most %" PRIu32 " segments per request\n",
				o->layers, lim->max_segments);
		else
			status = bench_run_prefill(&b, k);
	} else if (lim->max_segments && (o->entries ? o->layers : o->nseg) >
		   lim->max_segments) {
		fprintf(stderr, BENCH_PROG ": %s %" PRIu32 ": the daemon takes at most %"
			PRIu32 " segments per %s\n", o->entries ? "--layers" :
			"--segments", o->entries ? o->layers : o->nseg,
			lim->max_segments, o->entries ? "entry" : "request");
	} else {
		status = bench_run_throughput(&b, k);
	}
	kvswap_close(k);
	return status;
}
