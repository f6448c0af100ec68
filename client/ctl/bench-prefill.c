/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl bench --prefill L,COMPUTE_US: how much of a prefill's I/O
 * hides behind its compute. One entry of L segments, one per model layer,
 * is swapped in with one request. "Load all, then compute" waits for every
 * segment and then computes the L layers (busy loops of COMPUTE_US);
 * "overlap" computes layer i as soon as its segment has arrived and layers
 * 0..i-1 are computed (segments may arrive in any order). Both report the
 * time to first token, i.e. the end of the last layer.
 *
 * With --entries-per-request N, through the batch API: N entries (blocks)
 * of L segments, swapped in with one kvswap_swap_in_batch(), segment i of
 * every entry in completion group i. "Load all" waits for the final event;
 * "overlap" computes layer i once group i has landed (kvswap_wait_group())
 * and layers 0..i-1 are computed. The library's CRC32C check (unless
 * --no-client-crc) runs as each group lands, in this thread, so both ways
 * pay for it.
 *
 * --per-layer W (with a batch): the same bytes as one SwapInBatch per
 * layer instead (N entries of one segment, the stored segment i), at most
 * W of them in flight, the next one submitted as one finishes (serial) or
 * before its layer is computed (overlap): what layer-ordered I/O gives.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* What one prefill swap-in reads: v1 segments of one key, or a batch. */
struct pf {
	struct kvswap *k;
	struct kvswap_region *r;
	const struct opts *o;
	const char *key;			/* v1 */
	const struct kvswap_seg_in *segs;	/* v1: [layers] */
	const struct kvswap_batch_entry *ents;	/* batch: [entries] */
	/* --per-layer: layer l's request reads lents[l x entries ...]. */
	const struct kvswap_batch_entry *lents;
	struct kvswap_req **lreq;		/* [layers] */
};

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

static int prefill_swap_in(const struct pf *pf, struct kvswap_req **ret)
{
	const struct opts *o = pf->o;
	int err;

	if (pf->ents)
		err = kvswap_swap_in_batch(pf->k, pf->r, pf->ents, o->entries,
					   o->client_crc ? 0 : KVSWAP_NO_VERIFY,
					   ret);
	else
		err = kvswap_swap_in(pf->k, pf->key, strlen(pf->key), pf->r,
				     pf->segs, o->layers, ret);
	if (err < 0)
		fprintf(stderr, BENCH_PROG ": swap in %s: %s\n", pf->ents ?
			"a batch" : pf->key, kvswap_last_error(pf->k));
	return err;
}

/* --per-layer: starts layer l's request, if there is a layer l. */
static int layer_submit(const struct pf *pf, uint32_t l)
{
	const struct opts *o = pf->o;
	int err;

	if (l >= o->layers)
		return 0;
	err = kvswap_swap_in_batch(pf->k, pf->r, pf->lents + (size_t)l * o->entries,
				   o->entries, o->client_crc ? 0 : KVSWAP_NO_VERIFY,
				   &pf->lreq[l]);
	if (err < 0) {
		pf->lreq[l] = NULL;
		fprintf(stderr, BENCH_PROG ": swap in layer %" PRIu32 ": %s\n", l,
			kvswap_last_error(pf->k));
	}
	return err;
}

/*
 * --per-layer: the layers' requests, W in flight; layer l is waited for
 * (stall: how long), and the next submitted, by layer_wait(). Each run
 * frees what it started, also after a failure.
 */
static int layers_start(const struct pf *pf)
{
	for (uint32_t l = 0; l < pf->o->layer_window; l++) {
		int err = layer_submit(pf, l);

		if (err < 0)
			return err;
	}
	return 0;
}

static int layer_wait(const struct pf *pf, uint32_t l, uint64_t *stall)
{
	struct kvswap_req *req = pf->lreq[l];
	uint64_t tw = now_ns();
	int err;

	if (!req)
		return -EIO;
	err = kvswap_wait(pf->k, req, -1);
	if (stall)
		*stall += now_ns() - tw;
	if (err < 0)
		fprintf(stderr, BENCH_PROG ": swap in layer %" PRIu32 ": %s\n", l,
			kvswap_last_error(pf->k));
	kvswap_req_free(req);
	pf->lreq[l] = NULL;
	if (err == 0)
		err = layer_submit(pf, l + pf->o->layer_window);
	return err;
}

static void layers_end(const struct pf *pf)
{
	for (uint32_t l = 0; l < pf->o->layers; l++) {
		if (!pf->lreq[l])
			continue;
		kvswap_wait(pf->k, pf->lreq[l], -1);
		kvswap_req_free(pf->lreq[l]);
		pf->lreq[l] = NULL;
	}
}

/* --per-layer, load all then compute. */
static int per_layer_serial(const struct pf *pf, struct prefill_run *pr)
{
	uint64_t t0 = now_ns(), t_io;
	uint32_t l;
	int err;

	err = layers_start(pf);
	for (l = 0; err == 0 && l < pf->o->layers; l++)
		err = layer_wait(pf, l, NULL);
	layers_end(pf);
	if (err < 0)
		return err;
	t_io = now_ns();
	for (l = 0; l < pf->o->layers; l++)
		spin_us(pf->o->compute_us);
	pr->io_ms = (double)(t_io - t0) / 1e6;
	pr->serial_ms = (double)(now_ns() - t0) / 1e6;
	return 0;
}

/* --per-layer, layer l computed once its request is done. */
static int per_layer_overlap(const struct pf *pf, struct prefill_run *pr)
{
	uint64_t t0 = now_ns(), t_io = 0, stall = 0;
	uint32_t l;
	int err;

	err = layers_start(pf);
	for (l = 0; err == 0 && l < pf->o->layers; l++) {
		err = layer_wait(pf, l, &stall);
		t_io = now_ns();
		if (err == 0)
			spin_us(pf->o->compute_us);
	}
	layers_end(pf);
	if (err < 0)
		return err;
	pr->overlap_ms = (double)(now_ns() - t0) / 1e6;
	pr->overlap_io_ms = (double)(t_io - t0) / 1e6;
	pr->stall_ms = (double)stall / 1e6;
	return 0;
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
static int prefill_serial(const struct pf *pf, struct prefill_run *pr)
{
	struct kvswap *k = pf->k;
	const struct opts *o = pf->o;
	struct kvswap_req *req;
	uint64_t t0, t_io = 0;
	uint32_t idx, i;
	int err;

	if (pf->lents)
		return per_layer_serial(pf, pr);
	t0 = now_ns();
	err = prefill_swap_in(pf, &req);
	if (err < 0)
		return err;
	if (pf->ents) {
		/* Every group, and the check of every byte. */
		err = kvswap_wait(k, req, -1);
		t_io = now_ns();
	}
	for (; !pf->ents;) {
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
static int prefill_overlap(const struct pf *pf, bool *arrived,
			   struct prefill_run *pr)
{
	struct kvswap *k = pf->k;
	const struct opts *o = pf->o;
	struct kvswap_req *req;
	uint64_t t0, tw, t_io = 0, stall = 0;
	uint32_t idx, next = 0;
	int err;

	if (pf->lents)
		return per_layer_overlap(pf, pr);
	memset(arrived, 0, o->layers * sizeof(*arrived));
	t0 = now_ns();
	err = prefill_swap_in(pf, &req);
	if (err < 0)
		return err;
	while (pf->ents && next < o->layers) {
		/* Layer `next` once its group landed (read without blocking
		 * if its event is already in the socket). */
		if (!kvswap_group_done(req, next)) {
			tw = now_ns();
			err = kvswap_wait_group(k, req, next, -1);
			stall += now_ns() - tw;
			if (err < 0)
				goto out_fail;
		}
		t_io = now_ns();
		spin_us(o->compute_us);
		next++;
	}
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
	/* The batch's final event: every byte checked. */
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

/* The keys of a batch prefill's entries. */
static void entry_key(const struct bench *b, uint32_t j, char buf[static KEY_LEN])
{
	snprintf(buf, KEY_LEN, KEY_PREFIX "/%ld/prefill/%" PRIu32, b->pid, j);
}

/* Deletes the prefill's keys (batch: each entry's, max_lookup_keys at a time). */
static void prefill_delete(const struct bench *b, struct kvswap *k,
			   const char *key, const struct kvswap_batch_entry *ents)
{
	uint32_t chunk = b->lim.max_lookup_keys ? b->lim.max_lookup_keys : 1;
	const void **keys;
	size_t *lens;
	uint32_t i, j, n;

	if (!ents) {
		kvswap_delete(k, key, strlen(key));
		return;
	}
	keys = calloc(chunk, sizeof(*keys));
	lens = calloc(chunk, sizeof(*lens));
	for (i = 0; keys && lens && i < b->o.entries; i += n) {
		n = b->o.entries - i < chunk ? b->o.entries - i : chunk;
		for (j = 0; j < n; j++) {
			keys[j] = ents[i + j].key;
			lens[j] = ents[i + j].key_len;
		}
		if (kvswap_delete_keys(k, keys, lens, n, NULL) < 0)
			break;
	}
	free(keys);
	free(lens);
}

int bench_run_prefill(struct bench *b, struct kvswap *k)
{
	const struct opts *o = &b->o;
	uint32_t nent = o->entries ? o->entries : 1;
	struct kvswap_seg_out *segs_out = NULL;
	struct kvswap_seg_in *segs_in = NULL;
	struct kvswap_batch_entry *ents = NULL;
	struct kvswap_region *region = NULL;
	struct prefill_run *runs = NULL, med;
	struct kvswap_req *req = NULL;
	struct kvswap_stat st;
	double *scratch = NULL, bound;
	bool *arrived = NULL;
	char key[KEY_LEN], h[HUMAN_LEN], *keys = NULL;
	uint64_t size = (uint64_t)nent * o->layers * b->stride, t0;
	uint64_t *offsets = NULL;
	struct kvswap_batch_entry *lents = NULL;
	struct kvswap_req **lreq = NULL;
	uint32_t *lindex = NULL;
	int status = EXIT_FAILURE, err;
	uint32_t i, j;
	struct pf pf = { .k = k, .o = o };

	segs_out = calloc(o->layers, sizeof(*segs_out));
	segs_in = calloc(o->layers, sizeof(*segs_in));
	runs = calloc(o->runs + 1, sizeof(*runs));
	scratch = calloc(o->runs + 1, sizeof(*scratch));
	arrived = calloc(o->layers, sizeof(*arrived));
	if (o->entries) {
		ents = calloc(nent, sizeof(*ents));
		keys = calloc(nent, KEY_LEN);
		offsets = calloc((size_t)nent * o->layers, sizeof(*offsets));
	}
	if (o->layer_window) {
		lents = calloc((size_t)nent * o->layers, sizeof(*lents));
		lreq = calloc(o->layers, sizeof(*lreq));
		lindex = calloc(o->layers, sizeof(*lindex));
	}
	if (!segs_out || !segs_in || !runs || !scratch || !arrived ||
	    (o->entries && (!ents || !keys || !offsets)) ||
	    (o->layer_window && (!lents || !lreq || !lindex))) {
		fprintf(stderr, BENCH_PROG ": out of memory\n");
		goto out_free;
	}
	err = kvswap_stat(k, &st);
	if (err < 0) {
		fprintf(stderr, BENCH_PROG ": stat: %s\n", kvswap_last_error(k));
		goto out_free;
	}
	if (size > st.capacity - st.used) {
		fprintf(stderr, BENCH_PROG ": the %s needs %s; the store has %s free\n",
			o->entries ? "entries need" : "entry needs",
			human_size(size, h), human_size(st.capacity - st.used, h));
		goto out_free;
	}
	err = kvswap_region_create(k, (size_t)size, &region);
	if (err < 0) {
		fprintf(stderr, BENCH_PROG ": create a region of %s: %s\n",
			human_size(size, h), kvswap_last_error(k));
		goto out_free;
	}
	pf.r = region;
	for (i = 0; i < o->layers; i++) {
		segs_out[i] = (struct kvswap_seg_out){ i * b->stride, o->seg_size };
		segs_in[i] = (struct kvswap_seg_in){ i, i * b->stride };
	}
	/* Entry j's layer i at (j x layers + i) x stride. */
	for (j = 0; j < nent; j++)
		for (i = 0; i < o->layers; i++)
			bench_pattern_fill((uint8_t *)kvswap_region_addr(region) +
					   ((uint64_t)j * o->layers + i) * b->stride,
					   o->seg_size, j, i);
	snprintf(key, sizeof(key), KEY_PREFIX "/%ld/prefill", b->pid);
	if (o->entries) {
		for (j = 0; j < nent; j++) {
			char *kj = keys + (size_t)j * KEY_LEN;

			entry_key(b, j, kj);
			for (i = 0; i < o->layers; i++)
				offsets[(size_t)j * o->layers + i] =
					((uint64_t)j * o->layers + i) * b->stride;
			ents[j] = (struct kvswap_batch_entry){
				.key = kj,
				.key_len = strlen(kj),
				.nseg = o->layers,
				.offsets = &offsets[(size_t)j * o->layers],
				.length = o->seg_size,
				/* groups NULL: layer i is group i. */
			};
		}
		pf.ents = ents;
		for (i = 0; o->layer_window && i < o->layers; i++) {
			lindex[i] = i;
			for (j = 0; j < nent; j++)
				lents[(size_t)i * nent + j] = (struct kvswap_batch_entry){
					.key = ents[j].key,
					.key_len = ents[j].key_len,
					.nseg = 1,
					.offsets = &offsets[(size_t)j * o->layers + i],
					.length = o->seg_size,
					.indexes = &lindex[i],
				};
		}
		if (o->layer_window) {
			pf.lents = lents;
			pf.lreq = lreq;
		}
	} else {
		pf.key = key;
		pf.segs = segs_in;
	}
	/* Set-up: KVSWAP_CACHE, acknowledged once written. */
	if (o->entries)
		err = kvswap_swap_out_batch(k, region, ents, nent, KVSWAP_CACHE |
					    (o->client_crc ? 0 : KVSWAP_NO_VERIFY),
					    &req);
	else
		err = kvswap_swap_out(k, key, strlen(key), region, segs_out,
				      o->layers, NULL, 0, KVSWAP_CACHE, &req);
	if (err == 0) {
		err = kvswap_wait(k, req, -1);
		kvswap_req_free(req);
	}
	if (err < 0) {
		fprintf(stderr, BENCH_PROG ": swap out %s: %s\n", o->entries ?
			"the entries" : key, kvswap_last_error(k));
		goto out_delete;
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
			err = prefill_serial(&pf, pr);
			if (err == 0)
				err = prefill_overlap(&pf, arrived, pr);
		} else {
			err = prefill_overlap(&pf, arrived, pr);
			if (err == 0)
				err = prefill_serial(&pf, pr);
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
		printf("  \"api\": \"%s\",\n", o->entries ? "batch" : "v1");
		printf("  \"entries\": %" PRIu32 ",\n", nent);
		printf("  \"per_layer_window\": %" PRIu32 ",\n", o->layer_window);
		printf("  \"client_crc\": %s,\n",
		       o->entries && o->client_crc ? "true" : "false");
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
		       med.io_ms > 0 ? (double)size / (med.io_ms / 1e3) : 0);
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
		if (o->entries)
			printf("prefill: %s of %" PRIu32 " entries x %"
			       PRIu32 " layers x %s, compute %" PRIu64 " us per "
			       "layer, median of %" PRIu32 " runs\n",
			       o->layer_window ? "a batch per layer" :
			       "one batch (group = layer)", nent, o->layers,
			       human_size(o->seg_size, h), o->compute_us, o->runs);
		else
			printf("prefill: %" PRIu32 " layers x %s, compute %" PRIu64
			       " us per layer, median of %" PRIu32 " runs\n",
			       o->layers, human_size(o->seg_size, h),
			       o->compute_us, o->runs);
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
	prefill_delete(b, k, key, ents);
	kvswap_region_release(k, region);
out_free:
	free(lents);
	free(lreq);
	free(lindex);
	free(offsets);
	free(keys);
	free(ents);
	free(arrived);
	free(scratch);
	free(runs);
	free(segs_in);
	free(segs_out);
	return status;
}
