/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl bench's throughput run, main thread: sizes the key sets,
 * starts C client threads (bench-client.c), brackets the measured interval
 * with Stat (the daemon's cpu_user_us + cpu_system_us before and after),
 * stops the clients after --duration or --total, merges their counters
 * and histograms and reports throughput, per-segment latency and CPU time
 * per GiB moved.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

/* Without --working-set: at most this much, and at most this many keys. */
#define DEFAULT_WS_BYTES	(1ULL << 30)
#define DEFAULT_WS_KEYS		16384
#define MAX_KEYS		(1ULL << 22)
#define PROGRESS_NS		200000000ULL
#define POLL_NS			20000000ULL

static const char *const op_names[] = { "in", "out", "mixed" };

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
/* --- report --------------------------------------------------------------- */

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
	uint64_t failed_entries;
	uint64_t verify_errors;
	uint64_t errors;
	struct hist req;		/* batch: per request */
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
	json_string(stdout, b->lim.daemon, strlen(b->lim.daemon));
	printf(",\n  \"op\": \"%s\",\n", op_names[o->op]);
	printf("  \"segment_size\": %" PRIu64 ",\n", o->seg_size);
	printf("  \"segments\": %" PRIu32 ",\n", o->entries ? o->layers : o->nseg);
	printf("  \"api\": \"%s\",\n", o->entries ? "batch" : "v1");
	printf("  \"entries_per_request\": %" PRIu32 ",\n", b->req_keys);
	printf("  \"layers\": %" PRIu32 ",\n", o->entries ? o->layers : 0);
	printf("  \"client_crc\": %s,\n",
	       o->entries && o->client_crc ? "true" : "false");
	printf("  \"latency_unit\": \"%s\",\n", o->entries ? "group" : "segment");
	printf("  \"clients\": %" PRIu32 ",\n", o->clients);
	printf("  \"depth\": %" PRIu32 ",\n", o->depth);
	if (o->total)
		printf("  \"duration_s\": null,\n  \"total_bytes\": %" PRIu64 ",\n",
		       o->total);
	else
		printf("  \"duration_s\": %.3f,\n  \"total_bytes\": null,\n",
		       o->duration);
	printf("  \"working_set_bytes\": %" PRIu64 ",\n",
	       o->op == OP_OUT ? b->out_keys * o->clients * b->key_bytes :
	       b->in_keys * b->key_bytes);
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
	if (o->entries)
		json_latency("request_latency_us", &res->req);
	printf("  \"daemon_cpu_ms\": %.1f,\n", res->daemon_cpu_ms);
	printf("  \"daemon_cpu_ms_per_gib\": %.2f,\n",
	       gib > 0 ? res->daemon_cpu_ms / gib : 0);
	printf("  \"client_cpu_ms_per_gib\": %.2f,\n",
	       gib > 0 ? res->client_cpu_ms / gib : 0);
	printf("  \"errors\": %" PRIu64 ",\n", res->errors);
	printf("  \"failed_segments\": %" PRIu64 ",\n", res->failed_segments);
	printf("  \"failed_requests\": %" PRIu64 ",\n", res->failed_requests);
	printf("  \"failed_entries\": %" PRIu64 ",\n", res->failed_entries);
	printf("  \"verify_errors\": %" PRIu64 ",\n", res->verify_errors);
	printf("  \"first_error\": ");
	if (res->first_error)
		json_string(stdout, res->first_error,
			    strlen(res->first_error));
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

	if (o->entries)
		printf("%-12s swap-%s batches, %" PRIu32 " entries x %" PRIu32
		       " layers x %s per request, %" PRIu32 " client(s) x depth %"
		       PRIu32 "%s%s\n", "bench", op_names[o->op], o->entries,
		       o->layers, human_size(o->seg_size, h1), o->clients,
		       o->depth, o->client_crc ? ", client CRC32C" : "",
		       o->verify ? ", verified" : "");
	else
		printf("%-12s swap-%s, %" PRIu32 " x %s per request, %" PRIu32
		       " client(s) x depth %" PRIu32 "%s\n", "bench",
		       op_names[o->op], o->nseg, human_size(o->seg_size, h1),
		       o->clients, o->depth, o->verify ? ", verified" : "");
	printf("%-12s %s, checksums %s; swap-out mode %s\n", "daemon",
	       res->before.durable ? "durable" : "cache",
	       res->before.verify ? "on" : "off", mode_name(o->flags));
	printf("%-12s %s in %.2f s\n", "moved", human_size(res->bytes, h1),
	       res->elapsed_s);
	printf("%-12s %s/s, %.0f segments/s, %.0f requests/s\n", "throughput",
	       human_size((uint64_t)((double)res->bytes / secs), h2),
	       (double)res->segments / secs, (double)res->requests / secs);
	print_latency(o->entries ? "group lat." : "latency", &res->all);
	if (o->op == OP_MIXED) {
		print_latency("  swap-in", &res->in);
		print_latency("  swap-out", &res->out);
	}
	if (o->entries)
		print_latency("request lat.", &res->req);
	printf("%-12s daemon %.1f ms/GiB, bench %.1f ms/GiB\n", "cpu",
	       gib > 0 ? res->daemon_cpu_ms / gib : 0,
	       gib > 0 ? res->client_cpu_ms / gib : 0);
	printf("%-12s %" PRIu64 "%s%s\n", "errors", res->errors,
	       res->first_error ? "; first: " : "",
	       res->first_error ? res->first_error : "");
}
/* --- the throughput run, main thread -------------------------------------- */

/*
 * Sizes the key sets: the working set in keys of one request each,
 * checked against the store's free space (swap-outs need room for the
 * old and new copy of each rotating key).
 */
static int plan_keys(struct bench *b, const struct kvswap_stat *st)
{
	struct opts *o = &b->o;
	uint64_t free_bytes = st->capacity > st->used ? st->capacity - st->used : 0;
	uint64_t ws = o->working_set, keys, need, kb;
	char h1[HUMAN_LEN], h2[HUMAN_LEN];

	if (!ws) {
		ws = DEFAULT_WS_BYTES;
		if (ws > free_bytes / 4)
			ws = free_bytes / 4;
		if (ws > DEFAULT_WS_KEYS * b->key_bytes)
			ws = DEFAULT_WS_KEYS * b->key_bytes;
	}
	keys = ws / b->key_bytes;
	/* A batch names distinct keys. */
	if (keys < b->req_keys)
		keys = b->req_keys;
	if (keys > MAX_KEYS) {
		fprintf(stderr, BENCH_PROG ": --working-set %s is %" PRIu64 " keys of %s; "
			"at most %llu\n", human_size(ws, h1), keys,
			human_size(b->key_bytes, h2), MAX_KEYS);
		return -E2BIG;
	}
	b->in_keys = o->op == OP_OUT ? 0 : keys;
	b->out_keys = 0;
	if (o->op != OP_IN) {
		/* More keys than requests in flight: a key is rarely
		 * replaced while its previous swap-out still runs. */
		b->out_keys = keys / o->clients;
		if (b->out_keys < (o->depth + 1ULL) * b->req_keys)
			b->out_keys = (o->depth + 1ULL) * b->req_keys;
	}
	/* Each segment takes whole store blocks. */
	kb = (o->entries ? o->layers : 1) *
	     round_up(o->entries ? o->seg_size : b->key_bytes, 4096);
	need = b->in_keys * kb + 2 * b->out_keys * o->clients * kb;
	if (need > free_bytes) {
		fprintf(stderr, BENCH_PROG ": the run needs %s of free store space "
			"(swap-outs keep the old and new copy of a key), the "
			"daemon has %s free: lower --working-set, --depth or "
			"--segment-size\n", human_size(need, h1),
			human_size(free_bytes, h2));
		return -ENOSPC;
	}
	return 0;
}

int bench_run_throughput(struct bench *b, struct kvswap *k)
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
		fprintf(stderr, BENCH_PROG ": out of memory\n");
		goto out_free;
	}
	ret = kvswap_stat(k, &res->before);
	if (ret < 0) {
		fprintf(stderr, BENCH_PROG ": stat: %s\n", kvswap_last_error(k));
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
			fprintf(stderr, BENCH_PROG ": out of memory\n");
			goto out_free_clients;
		}
	}
	ret = pthread_barrier_init(&b->barrier, NULL, o->clients + 1);
	if (ret) {
		fprintf(stderr, BENCH_PROG ": barrier: %s\n", strerror(ret));
		goto out_free_clients;
	}
	for (i = 0; i < o->clients; i++) {
		ret = pthread_create(&b->clients[i].thread, NULL,
				     bench_client_main, &b->clients[i]);
		if (ret) {
			/* The barrier counts every client: a missing one
			 * would hang the rest, so this is fatal. */
			fprintf(stderr, BENCH_PROG ": start client thread: %s\n",
				strerror(ret));
			exit(EXIT_FAILURE);
		}
	}

	/* Set-up and populating, with progress. */
	t0 = now_ns();
	while (__atomic_load_n(&b->ready, __ATOMIC_ACQUIRE) < (int)o->clients) {
		sleep_ns(POLL_NS);
		if (bench_interrupted())
			__atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
		if (b->in_keys && now_ns() - last_draw >= PROGRESS_NS) {
			for (populated = 0, i = 0; i < o->clients; i++)
				populated += __atomic_load_n(&b->clients[i].populated,
							     __ATOMIC_RELAXED);
			bench_progress(b, "populating keys:", populated,
				       b->in_keys, 0, now_ns() - t0);
			last_draw = now_ns();
		}
	}
	progress_line_clear(&b->progress);
	pthread_barrier_wait(&b->barrier);
	ret = kvswap_stat(k, &res->before);
	if (ret < 0)
		fprintf(stderr, BENCH_PROG ": stat: %s\n", kvswap_last_error(k));
	cpu0 = cpu_us();
	start = now_ns();
	pthread_barrier_wait(&b->barrier);

	last_draw = start;
	while (__atomic_load_n(&b->finished, __ATOMIC_ACQUIRE) < (int)o->clients) {
		uint64_t now;

		sleep_ns(POLL_NS);
		now = now_ns();
		if (bench_interrupted() ||
		    (!o->total && now - start >= (uint64_t)(o->duration * 1e9)))
			__atomic_store_n(&b->stop, 1, __ATOMIC_RELAXED);
		if (now - last_draw >= PROGRESS_NS) {
			for (bytes = 0, i = 0; i < o->clients; i++)
				bytes += __atomic_load_n(&b->clients[i].bytes,
							 __ATOMIC_RELAXED);
			bench_progress(b, op_names[o->op], 0, 0, bytes,
				       now - start);
			last_draw = now;
		}
	}
	progress_line_clear(&b->progress);
	pthread_barrier_wait(&b->barrier);
	res->client_cpu_ms = (double)(cpu_us() - cpu0) / 1e3;
	ret = kvswap_stat(k, &after);
	if (ret < 0)
		fprintf(stderr, BENCH_PROG ": stat: %s\n", kvswap_last_error(k));
	else
		res->daemon_cpu_ms = (double)(after.cpu_user_us +
					      after.cpu_system_us -
					      res->before.cpu_user_us -
					      res->before.cpu_system_us) / 1e3;
	pthread_barrier_wait(&b->barrier);
	if (b->in_keys + b->out_keys > 1000)
		progress_line_draw(&b->progress,
				   BENCH_PROG ": deleting the keys...");
	for (i = 0; i < o->clients; i++)
		pthread_join(b->clients[i].thread, NULL);
	progress_line_clear(&b->progress);

	for (i = 0; i < o->clients; i++) {
		struct client *c = &b->clients[i];

		hist_merge(&res->in, &c->hist[0]);
		hist_merge(&res->out, &c->hist[1]);
		res->bytes += c->bytes;
		res->segments += c->segments;
		res->requests += c->requests;
		res->failed_segments += c->failed_segments;
		res->failed_requests += c->failed_requests;
		res->failed_entries += c->failed_entries;
		res->verify_errors += c->verify_errors;
		hist_merge(&res->req, &c->req_hist);
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
		fprintf(stderr, BENCH_PROG ": %s\n", res->first_error);
	if (bench_interrupted()) {
		fprintf(stderr, BENCH_PROG ": interrupted\n");
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
