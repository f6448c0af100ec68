/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl bench --prefill L,COMPUTE_US: how much of a prefill's I/O
 * hides behind its compute. One entry of L segments, one per model layer,
 * is swapped in with one request. "Load all, then compute" waits for every
 * segment and then computes the L layers (busy loops of COMPUTE_US);
 * "overlap" computes layer i as soon as its segment has arrived and layers
 * 0..i-1 are computed (segments may arrive in any order). Both report the
 * time to first token, i.e. the end of the last layer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* A busy loop of `us` microseconds: one layer's "compute". */
static void spin_us(uint64_t us)
{
	uint64_t end = now_ns() + us * 1000;

	while (now_ns() < end)
		;
}

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
		fprintf(stderr, BENCH_PROG ": swap in %s: %s\n", key,
			kvswap_last_error(k));
	return err;
}

/* The final event of a prefill swap-in; reports a failure. */
static int prefill_finish(struct kvswap *k, struct kvswap_req *req)
{
	int err = kvswap_wait(k, req, -1);

	if (err < 0)
		fprintf(stderr, BENCH_PROG ": swap in: %s\n", kvswap_last_error(k));
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
		fprintf(stderr, BENCH_PROG ": swap in ended before layer %" PRIu32
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

int bench_run_prefill(struct bench *b, struct kvswap *k)
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
		fprintf(stderr, BENCH_PROG ": out of memory\n");
		goto out_free;
	}
	err = kvswap_stat(k, &st);
	if (err < 0) {
		fprintf(stderr, BENCH_PROG ": stat: %s\n", kvswap_last_error(k));
		goto out_free;
	}
	if (size > st.capacity - st.used) {
		fprintf(stderr, BENCH_PROG ": the entry needs %s; the store has %s free\n",
			human_size(size, h), human_size(st.capacity - st.used, h));
		goto out_free;
	}
	err = kvswap_region_create(k, (size_t)size, &region);
	if (err < 0) {
		fprintf(stderr, BENCH_PROG ": create a region of %s: %s\n",
			human_size(size, h), kvswap_last_error(k));
		goto out_free;
	}
	for (i = 0; i < o->layers; i++) {
		segs_out[i] = (struct kvswap_seg_out){ i * b->stride, o->seg_size };
		segs_in[i] = (struct kvswap_seg_in){ i, i * b->stride };
		bench_pattern_fill((uint8_t *)kvswap_region_addr(region) +
				   i * b->stride, o->seg_size, 0, i);
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
		fprintf(stderr, BENCH_PROG ": swap out %s: %s\n", key,
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

		bench_progress(b, "prefill run", i, o->runs, 0, 0);
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
	progress_line_clear(&b->progress);
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
		json_string(stdout, b->lim.daemon, strlen(b->lim.daemon));
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
	progress_line_clear(&b->progress);
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
