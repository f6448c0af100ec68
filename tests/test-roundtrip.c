/* SPDX-License-Identifier: MIT */
/*
 * Round trips through the real daemon: random data of awkward sizes and
 * segment layouts goes out and comes back byte-exact, and a swap-in never
 * writes a byte of the region outside the ranges it names. Also the
 * metadata, the per-segment events, replacing a key, and the bookkeeping
 * requests (describe, lookup, list, delete, stat).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "harness.h"
#include "tap.h"

#define CANARY		0xa5
#define REGION_SIZE	(64 * MiB + 64 * KiB)
#define WAIT_MS		60000

static struct harness *d;
static struct kvswap *k;
static struct rng rng;
static struct kvswap_region *src_r, *dst_r;
static uint8_t *src, *dst, *expect;

/*
 * Drains the segment events of a finished request and checks that every
 * position 0..n-1 was reported exactly once, successfully.
 */
static bool segments_ok(struct kvswap_req *req, uint32_t n, const char *what)
{
	bool *seen = calloc(n ? n : 1, sizeof(*seen));
	uint32_t count = 0, idx;
	bool good = true;
	int r;

	if (!seen)
		bail_out("out of memory");
	for (;;) {
		r = kvswap_wait_segment(k, req, 10000, &idx);
		if (r == -ENODATA)
			break;
		if (r == -ETIMEDOUT) {
			diag("%s: segment event missing after %u of %u", what,
			     count, n);
			good = false;
			break;
		}
		if (idx >= n) {
			diag("%s: segment index %u out of range (%u segments)",
			     what, idx, n);
			good = false;
			break;
		}
		if (r < 0) {
			diag("%s: segment %u failed: %s", what, idx,
			     strerror(-r));
			good = false;
		}
		if (seen[idx]) {
			diag("%s: segment %u reported twice", what, idx);
			good = false;
		}
		seen[idx] = true;
		count++;
	}
	if (count != n) {
		diag("%s: %u segment events for %u segments", what, count, n);
		good = false;
	}
	free(seen);
	return good;
}

/*
 * Stores segs of src under key, then swaps every stored segment i back into
 * dst at dst_off[i] (in the order of `order`, a permutation of 0..n-1, or
 * 0..n-1 if NULL) and compares the whole of dst with what it must hold:
 * the data at the named ranges, the canary everywhere else.
 */
static void roundtrip(const char *what, const char *key,
		      const struct kvswap_seg_out *segs, uint32_t n,
		      const uint64_t *dst_off, const uint32_t *order,
		      const void *meta, size_t meta_len)
{
	struct kvswap_seg_in *in = calloc(n, sizeof(*in));
	struct kvswap_entry e;
	struct kvswap_req *req = NULL;
	const void *m;
	size_t mlen;
	uint64_t total = 0;
	bool good;
	int r;

	if (!in)
		bail_out("out of memory");
	for (uint32_t i = 0; i < n; i++) {
		rng_fill(&rng, src + segs[i].offset, segs[i].length);
		total += segs[i].length;
	}

	r = kvswap_swap_out(k, key, strlen(key), src_r, segs, n, meta,
			    meta_len, 0, &req);
	if (r == 0) {
		r = kvswap_wait(k, req, WAIT_MS);
		/* The final event comes after every segment event. */
		if (r == 0 && kvswap_req_segments_done(req) != n) {
			diag("%s: final event after %u of %u segment events",
			     what, kvswap_req_segments_done(req), n);
			r = -EPROTO;
		}
	}
	if (!is_int(r, 0, "%s: swap-out of %u segments, %" PRIu64 " bytes",
		    what, n, total)) {
		diag("last error: %s", kvswap_last_error(k));
		if (r != -EPROTO)
			goto out_free;
	}
	ok(segments_ok(req, n, what), "%s: one successful event per segment out",
	   what);
	kvswap_req_free(req);
	req = NULL;

	r = kvswap_describe(k, key, strlen(key), &e);
	good = r == 0 && e.size == total && e.segments == n &&
	       e.metadata_len == (meta ? meta_len : 0) &&
	       (!e.metadata_len || memcmp(e.metadata, meta, meta_len) == 0);
	for (uint32_t i = 0; good && i < n; i++)
		good = e.lengths && e.lengths[i] == segs[i].length;
	if (!ok(good, "%s: describe gives size, segment lengths and metadata",
		what)) {
		if (r < 0)
			diag("describe: %s: %s", strerror(-r),
			     kvswap_last_error(k));
		else
			diag("describe: size %" PRIu64 " segments %u metadata %zu",
			     e.size, e.segments, e.metadata_len);
	}
	if (r == 0)
		kvswap_entry_clear(&e);

	memset(dst, CANARY, REGION_SIZE);
	memset(expect, CANARY, REGION_SIZE);
	for (uint32_t j = 0; j < n; j++) {
		uint32_t i = order ? order[j] : j;

		in[j].index = i;
		in[j].offset = dst_off[i];
		memcpy(expect + dst_off[i], src + segs[i].offset,
		       segs[i].length);
	}
	r = kvswap_swap_in(k, key, strlen(key), dst_r, in, n, &req);
	if (r == 0) {
		r = kvswap_wait(k, req, WAIT_MS);
		if (r == 0 && kvswap_req_segments_done(req) != n) {
			diag("%s: final event after %u of %u segment events",
			     what, kvswap_req_segments_done(req), n);
			r = -EPROTO;
		}
	}
	if (!is_int(r, 0, "%s: swap-in", what)) {
		diag("last error: %s", kvswap_last_error(k));
		if (r != -EPROTO)
			goto out_free;
	}
	ok(segments_ok(req, n, what), "%s: one successful event per segment in",
	   what);
	m = kvswap_req_metadata(req, &mlen);
	ok(mlen == (meta ? meta_len : 0) && (!mlen || memcmp(m, meta, mlen) == 0),
	   "%s: swap-in returns the metadata (%zu bytes)", what, mlen);
	is_mem(dst, expect, REGION_SIZE,
	       "%s: region holds the data at the named ranges, canary elsewhere",
	       what);
out_free:
	kvswap_req_free(req);
	free(in);
}

static void test_limits(void)
{
	const struct kvswap_limits *l = kvswap_limits(k);

	is_int(l->version, 1, "hello: version 1");
	is_int(l->max_message_size, 65536, "hello: max_message_size");
	is_int(l->max_key_length, 1024, "hello: max_key_length");
	is_int(l->max_metadata_length, 4096, "hello: max_metadata_length");
	is_int(l->max_segments, 1024, "hello: max_segments");
	is_int(l->max_regions, 64, "hello: max_regions");
	is_int(l->max_lookup_keys, 1024, "hello: max_lookup_keys");
	is_int(l->alignment, 4096, "hello: alignment");
	is_int(l->block_size, 4096, "hello: block_size");
	is_int(l->store_files, 1, "hello: store_files");
	ok(l->capacity >= 200 * MiB && l->capacity <= 256 * MiB,
	   "hello: capacity %" PRIu64 " fits a 256 MiB store", l->capacity);
	ok(strncmp(l->daemon, "kvswapd", 7) == 0, "hello: daemon '%s'",
	   l->daemon);
}

/* One segment of each awkward size, at an aligned offset of dst. */
static void test_sizes(void)
{
	static const uint64_t sizes[] = {
		1, 4095, 4096, 4097, 1 * MiB + 1, 64 * MiB,
	};
	char key[64], what[64];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct kvswap_seg_out seg = {
			/* The big one must start at 0 to fit the region. */
			.offset = sizes[i] < 64 * MiB ? 4096 * (i % 3) : 0,
			.length = sizes[i],
		};
		uint64_t off = sizes[i] < 64 * MiB ? 8192 : 4096;
		uint8_t meta[32];

		rng_fill(&rng, meta, sizeof(meta));
		snprintf(key, sizeof(key), "size-%" PRIu64, sizes[i]);
		snprintf(what, sizeof(what), "size %" PRIu64, sizes[i]);
		roundtrip(what, key, &seg, 1, &off, NULL, meta, sizeof(meta));
		ok(kvswap_delete(k, key, strlen(key)) == 0, "%s: delete", what);
	}
}

/*
 * Several segments with lengths that are not multiples of 4096, read back
 * into a different layout in reverse order: the tail of each segment's
 * last block must not spill into the gap or the next segment.
 */
static void test_segments(uint32_t n, uint64_t max_len)
{
	struct kvswap_seg_out *segs = calloc(n, sizeof(*segs));
	uint64_t *off = calloc(n, sizeof(*off));
	uint32_t *order = calloc(n, sizeof(*order));
	uint64_t pos = 0;
	char key[64], what[64];

	if (!segs || !off || !order)
		bail_out("out of memory");
	for (uint32_t i = 0; i < n; i++) {
		uint64_t len = rng_range(&rng, 1, max_len);

		if (len % 4096 == 0)
			len--;
		segs[i].offset = pos + 4096 * rng_range(&rng, 0, 1);
		segs[i].length = len;
		pos = round_up(segs[i].offset + len, 4096);
	}
	/* Destinations: reverse order, sometimes with a gap, sometimes not. */
	pos = 4096;
	for (uint32_t i = n; i-- > 0;) {
		off[i] = pos;
		pos = round_up(pos + segs[i].length, 4096) +
		      4096 * rng_range(&rng, 0, 1);
		order[n - 1 - i] = i;
	}
	if (pos > REGION_SIZE)
		bail_out("segment layout does not fit the region");
	snprintf(key, sizeof(key), "segments-%u", n);
	snprintf(what, sizeof(what), "%u segments", n);
	roundtrip(what, key, segs, n, off, order, "m", 1);
	ok(kvswap_delete(k, key, strlen(key)) == 0, "%s: delete", what);
	free(order);
	free(off);
	free(segs);
}

/* The case from the contract: 4097 bytes at 8192 leave 12289..16383 alone. */
static void test_tail_block(void)
{
	static const struct kvswap_seg_out segs[] = {
		{ .offset = 0, .length = 4097 },
		{ .offset = 8192, .length = 5000 },
		{ .offset = 16384, .length = 1 },
	};
	static const uint64_t off[] = { 8192, 16384, 28672 };

	roundtrip("tail block", "tail-block", segs, 3, off, NULL, NULL, 0);
	ok(mem_first_not(dst + 8192 + 4097, 16384 - 8192 - 4097, CANARY) ==
	   16384 - 8192 - 4097, "tail block: bytes 12289..16383 are canary");
	ok(kvswap_delete(k, "tail-block", 10) == 0, "tail block: delete");
}

/*
 * A region whose size is not a multiple of the page size: segments end at
 * its last byte, and the rest of its last page stays untouched.
 */
static void test_odd_region(void)
{
	const size_t size = 5000, map = 8192;
	static const struct kvswap_seg_out segs[] = {
		{ .offset = 0, .length = 100 },
		{ .offset = 4096, .length = 904 },
	};
	static const struct kvswap_seg_in in[] = {
		{ .index = 1, .offset = 4096 },
		{ .index = 0, .offset = 0 },
	};
	struct kvswap_region *ra = NULL, *rb = NULL;
	int fda = -1, fdb = -1, r;
	uint8_t *a = NULL, *b = NULL, want[8192];

	if (memfd_make(size, F_SEAL_SHRINK | F_SEAL_GROW, &fda, (void **)&a) ||
	    memfd_make(size, F_SEAL_SHRINK | F_SEAL_GROW, &fdb, (void **)&b))
		bail_out("memfd: %s", strerror(errno));
	rng_fill(&rng, a, size);
	/* Bytes past EOF in the last page are addressable and must survive. */
	memset(b, CANARY, map);
	memset(want, CANARY, sizeof(want));
	memcpy(want, a, 100);
	memcpy(want + 4096, a + 4096, 904);

	r = kvswap_region_import(k, fda, a, size, &ra);
	if (!is_int(r, 0, "odd region: import a 5000-byte memfd")) {
		diag("last error: %s", kvswap_last_error(k));
		goto out_close;
	}
	r = kvswap_region_import(k, fdb, b, size, &rb);
	if (!is_int(r, 0, "odd region: import a second one"))
		goto out_release;
	r = kvswap_put(k, "odd", 3, ra, segs, 2, NULL, 0);
	if (!is_int(r, 0, "odd region: put a segment ending at byte 5000"))
		diag("last error: %s", kvswap_last_error(k));
	r = kvswap_get(k, "odd", 3, rb, in, 2);
	if (!is_int(r, 0, "odd region: get into a segment ending at byte 5000"))
		diag("last error: %s", kvswap_last_error(k));
	is_mem(b, want, map,
	       "odd region: data in place, canary elsewhere and past EOF");
	ok(kvswap_delete(k, "odd", 3) == 0, "odd region: delete");
out_release:
	is_int(kvswap_region_release(k, rb), 0, "odd region: release b");
	is_int(kvswap_region_release(k, ra), 0, "odd region: release a");
out_close:
	munmap(a, size);
	munmap(b, size);
	close(fda);
	close(fdb);
}

/* Segments 3 and 1 of 5, in that order: positions are per request. */
static void test_subset(void)
{
	struct kvswap_seg_out segs[5];
	struct kvswap_seg_in in[2] = {
		{ .index = 3, .offset = 4096 },
		{ .index = 1, .offset = 1 * MiB },
	};
	struct kvswap_req *req;
	uint32_t idx, seen = 0;
	int r;

	for (uint32_t i = 0; i < 5; i++) {
		segs[i].offset = i * 256 * KiB;
		segs[i].length = 100000 + i * 1111;
	}
	for (uint32_t i = 0; i < 5; i++)
		rng_fill(&rng, src + segs[i].offset, segs[i].length);
	r = kvswap_put(k, "subset", 6, src_r, segs, 5, NULL, 0);
	is_int(r, 0, "subset: put 5 segments");

	memset(dst, CANARY, 2 * MiB);
	memset(expect, CANARY, 2 * MiB);
	memcpy(expect + 4096, src + segs[3].offset, segs[3].length);
	memcpy(expect + 1 * MiB, src + segs[1].offset, segs[1].length);
	r = kvswap_swap_in(k, "subset", 6, dst_r, in, 2, &req);
	if (r == 0) {
		r = kvswap_wait(k, req, WAIT_MS);
		while (kvswap_wait_segment(k, req, 1000, &idx) == 0) {
			/* A position twice or out of range spoils the mask. */
			if (idx < 2 && !(seen & (1u << idx)))
				seen |= 1u << idx;
			else
				seen |= 0x100;
		}
		kvswap_req_free(req);
	}
	is_int(r, 0, "subset: swap-in of stored segments 3 and 1");
	is_int(seen, 3, "subset: events name positions 0 and 1 of the request");
	is_mem(dst, expect, 2 * MiB,
	       "subset: segments 3 and 1 in place, nothing else written");
	ok(kvswap_delete(k, "subset", 6) == 0, "subset: delete");
}

static void test_metadata(void)
{
	const struct kvswap_limits *l = kvswap_limits(k);
	struct kvswap_seg_out seg = { .offset = 0, .length = 10 };
	uint64_t off = 0;
	uint8_t *meta = malloc(l->max_metadata_length);

	if (!meta)
		bail_out("out of memory");
	rng_fill(&rng, meta, l->max_metadata_length);
	roundtrip("max metadata", "meta-max", &seg, 1, &off, NULL, meta,
		  l->max_metadata_length);
	kvswap_delete(k, "meta-max", 8);
	roundtrip("1-byte metadata", "meta-1", &seg, 1, &off, NULL, meta, 1);
	kvswap_delete(k, "meta-1", 6);
	roundtrip("no metadata", "meta-0", &seg, 1, &off, NULL, NULL, 0);
	kvswap_delete(k, "meta-0", 6);
	free(meta);
}

/*
 * The exact order of events on the wire: with a raw connection, every
 * segment event of a request comes before its final event, none after,
 * and requests pipelined on one connection each get their own.
 */
static void test_event_order(void)
{
	enum { N = 64, PIPE = 3 };
	struct kvswap_seg_out segs[N];
	struct kvswap_seg_in in[N];
	struct raw_result res;
	bool seen[N];
	uint8_t *mem;
	uint64_t total = 0, id;
	uint32_t region = 0;
	unsigned segcount[PIPE + 1] = { 0 }, late = 0, foreign = 0;
	bool final[PIPE + 1] = { false }, good;
	char desc[256];
	int fd, memfd, r;

	if (memfd_make(16 * MiB, F_SEAL_SHRINK | F_SEAL_GROW, &memfd,
		       (void **)&mem))
		bail_out("memfd: %s", strerror(errno));
	r = raw_open(d->socket, &fd);
	if (!is_int(r, 0, "raw: connect and hello"))
		goto out_unmap;
	r = raw_send_register(fd, 2, 16 * MiB, memfd);
	if (r == 0)
		r = raw_collect(fd, 2, 10000, &res);
	if (r < 0) {
		is_int(r, 0, "raw: register region");
		goto out_close;
	}
	if (!ok(res.final->body_case == KVSWAP__V1__EVENT__BODY_REGION,
		"raw: register region: %s",
		raw_event_str(res.final, desc, sizeof(desc)))) {
		raw_result_clear(&res);
		goto out_close;
	}
	region = res.final->region->region;
	is_uint(res.final->region->size, 16 * MiB, "raw: region reply size");
	raw_result_clear(&res);

	for (uint32_t i = 0; i < N; i++) {
		segs[i].offset = i * 128 * KiB;
		segs[i].length = 4096 * (i % 7) + 1 + i;
		total += segs[i].length;
		rng_fill(&rng, mem + segs[i].offset, segs[i].length);
	}
	r = raw_send_swap_out(fd, 3, "order", 5, region, segs, N, "md", 2, 0);
	if (r == 0)
		r = raw_collect(fd, 3, WAIT_MS, &res);
	if (!is_int(r, 0, "raw swap-out: final event arrives"))
		goto out_close;
	memset(seen, 0, sizeof(seen));
	good = res.nseg == N;
	for (unsigned i = 0; i < res.nseg; i++) {
		if (res.seg_index[i] >= N || seen[res.seg_index[i]] ||
		    res.seg_code[i])
			good = false;
		else
			seen[res.seg_index[i]] = true;
	}
	ok(good, "raw swap-out: %u distinct successful segment events before the final one (got %u)",
	   N, res.nseg);
	good = res.final->body_case == KVSWAP__V1__EVENT__BODY_SWAP_OUT &&
	       res.final->swap_out->segments == N &&
	       res.final->swap_out->bytes == total;
	ok(good, "raw swap-out: reply counts %u segments, %" PRIu64 " bytes: %s",
	   N, total, raw_event_str(res.final, desc, sizeof(desc)));
	raw_result_clear(&res);

	/* Pipelined swap-ins, each of all segments in reverse, distinct places. */
	for (uint32_t i = 0; i < N; i++) {
		in[i].index = N - 1 - i;
		in[i].offset = 8 * MiB + segs[N - 1 - i].offset;
	}
	memset(mem + 8 * MiB, CANARY, 8 * MiB);
	for (id = 10; id < 10 + PIPE; id++) {
		r = raw_send_swap_in(fd, id, "order", 5, region, in, N);
		if (r < 0)
			break;
	}
	is_int(r, 0, "raw: %u swap-ins sent back to back", PIPE);
	for (unsigned done = 0; r == 0 && done < PIPE;) {
		Kvswap__V1__Event *ev;
		unsigned j;

		r = raw_recv(fd, WAIT_MS, &ev);
		if (r < 0)
			break;
		j = (unsigned)(ev->id - 10);
		if (ev->id < 10 || j >= PIPE) {
			foreign++;
		} else if (final[j]) {
			late++;
			diag("event after the final one: %s",
			     raw_event_str(ev, desc, sizeof(desc)));
		} else if (ev->body_case == KVSWAP__V1__EVENT__BODY_SEGMENT) {
			segcount[j]++;
		} else {
			final[j] = true;
			done++;
			if (ev->body_case != KVSWAP__V1__EVENT__BODY_SWAP_IN ||
			    segcount[j] != N ||
			    ev->swap_in->segments != N ||
			    ev->swap_in->bytes != total ||
			    ev->swap_in->metadata.len != 2 ||
			    memcmp(ev->swap_in->metadata.data, "md", 2)) {
				diag("request %u: final %s after %u segment events",
				     j, raw_event_str(ev, desc, sizeof(desc)),
				     segcount[j]);
				late++;
			}
		}
		raw_event_free(ev);
	}
	is_int(r, 0, "raw: every pipelined swap-in got its final event");
	/* A Stat round trip flushes anything the daemon sent late. */
	r = raw_send_stat(fd, 20);
	if (r == 0)
		r = raw_collect(fd, 20, 10000, &res);
	if (r == 0) {
		foreign += res.foreign;
		raw_result_clear(&res);
	}
	is_int(late + foreign, 0, "raw: %u segment events then one final event per swap-in, nothing after",
	       N);
	memset(expect, CANARY, 8 * MiB);
	for (uint32_t i = 0; i < N; i++)
		memcpy(expect + segs[i].offset, mem + segs[i].offset,
		       segs[i].length);
	is_mem(mem + 8 * MiB, expect, 8 * MiB,
	       "raw: swapped-in data in place, canary elsewhere");

	r = raw_send_unregister(fd, 30, region);
	if (r == 0)
		r = raw_collect(fd, 30, 10000, &res);
	ok(r == 0 && res.final->body_case == KVSWAP__V1__EVENT__BODY_UNREGISTERED &&
	   res.final->unregistered->region == region,
	   "raw: unregister replies with the region id");
	if (r == 0)
		raw_result_clear(&res);
	kvswap_delete(k, "order", 5);
out_close:
	close(fd);
out_unmap:
	munmap(mem, 16 * MiB);
	close(memfd);
}

/* Whether dst holds src's bytes at each segment (same offsets in both). */
static bool same_segments(const struct kvswap_seg_out *segs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(dst + segs[i].offset, src + segs[i].offset,
			   segs[i].length))
			return false;
	return true;
}

/*
 * Replacing a key: the new data and layout win, and the old entry's space
 * is released (used grows by the new entry's allocation only).
 */
static void test_replace(void)
{
	struct kvswap_seg_out a[3], b[5];
	struct kvswap_seg_in in[5];
	struct kvswap_stat s0, s1, s2, s3, s4;
	struct kvswap_entry e;
	uint64_t used_b;
	int r;

	for (uint32_t i = 0; i < 3; i++) {
		a[i].offset = i * MiB;
		a[i].length = 300000 + i;
	}
	for (uint32_t i = 0; i < 5; i++) {
		b[i].offset = 4 * MiB + i * MiB;
		b[i].length = 77777 * (i + 1);
		in[i].index = i;
		in[i].offset = b[i].offset;
	}
	rng_fill(&rng, src, 9 * MiB);
	kvswap_stat(k, &s0);
	r = kvswap_put(k, "replace", 7, src_r, a, 3, "old", 3);
	is_int(r, 0, "replace: put 3 segments");
	kvswap_stat(k, &s1);
	r = kvswap_put(k, "replace", 7, src_r, b, 5, "new", 3);
	is_int(r, 0, "replace: put 5 other segments under the same key");
	kvswap_stat(k, &s2);
	is_uint(s2.entries, s0.entries + 1, "replace: one entry, not two");

	r = kvswap_describe(k, "replace", 7, &e);
	ok(r == 0 && e.segments == 5 && e.lengths && e.lengths[4] == b[4].length &&
	   e.metadata_len == 3 && memcmp(e.metadata, "new", 3) == 0,
	   "replace: describe shows the new layout and metadata");
	if (r == 0)
		kvswap_entry_clear(&e);
	memset(dst, CANARY, 9 * MiB);
	r = kvswap_get(k, "replace", 7, dst_r, in, 5);
	is_int(r, 0, "replace: get the 5 new segments");
	ok(same_segments(b, 5), "replace: get returns the new data");

	/* The same data under a fresh key: what B alone costs. */
	r = kvswap_delete(k, "replace", 7);
	is_int(r, 0, "replace: delete");
	kvswap_stat(k, &s3);
	is_uint(s3.used, s0.used, "replace: used back to its start after delete");
	r = kvswap_put(k, "replace-b", 9, src_r, b, 5, "new", 3);
	is_int(r, 0, "replace: the new layout under a fresh key");
	kvswap_stat(k, &s4);
	used_b = s4.used - s3.used;
	ok(s1.used > s0.used, "replace: used grew with the first put");
	is_uint(s2.used - s0.used, used_b,
		"replace: after the replace only the new entry's space is used");
	kvswap_delete(k, "replace-b", 9);
}

static void test_lookup(void)
{
	const char *names[] = { "lk-0", "lk-1", "lk-2", "lk-3", "lk-4" };
	const void *keys[5];
	size_t lens[5];
	bool present[5];
	struct kvswap_seg_out seg = { .offset = 0, .length = 1 };
	const void *k2[2];
	size_t l2[2];
	int r;

	for (int i = 0; i < 5; i++) {
		keys[i] = names[i];
		lens[i] = strlen(names[i]);
	}
	kvswap_put(k, "lk-0", 4, src_r, &seg, 1, NULL, 0);
	kvswap_put(k, "lk-1", 4, src_r, &seg, 1, NULL, 0);
	kvswap_put(k, "lk-3", 4, src_r, &seg, 1, NULL, 0);

	/* Opposite of the answer: the library must write every element. */
	for (int i = 0; i < 5; i++)
		present[i] = i == 2;
	r = kvswap_lookup(k, keys, lens, 4, present);
	is_int(r, 2, "lookup: prefix of lk-0 lk-1 [lk-2] lk-3 is 2");
	ok(present[0] == true && present[1] == true && present[2] == false &&
	   present[3] == true, "lookup: present = 1 1 0 1 (%d %d %d %d)",
	   present[0], present[1], present[2], present[3]);

	k2[0] = keys[2];
	l2[0] = lens[2];
	k2[1] = keys[0];
	l2[1] = lens[0];
	r = kvswap_lookup(k, k2, l2, 2, present);
	is_int(r, 0, "lookup: prefix 0 when the first key is missing");
	ok(!present[0] && present[1], "lookup: later keys still reported");
	r = kvswap_lookup(k, keys + 3, lens + 3, 1, NULL);
	is_int(r, 1, "lookup: a single present key, no present array");

	for (int i = 0; i < 5; i++)
		kvswap_delete(k, names[i], 4);
	r = kvswap_lookup(k, keys, lens, 5, present);
	ok(r == 0 && !present[0] && !present[1] && !present[3],
	   "lookup: deleted keys are gone");
}

/* Many keys, a small page: every live key is listed, no deleted one. */
static void test_list(void)
{
	enum { N = 300, LIMIT = 7 };
	struct kvswap_seg_out seg = { .offset = 0 };
	unsigned seen[N] = { 0 }, pages = 0, stray = 0, bad = 0, over = 0;
	uint64_t cursor = 0;
	char key[32];
	int r = 0, failed_puts = 0;

	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "ls-%03d", i);
		seg.length = (uint64_t)i + 1;
		if (kvswap_put(k, key, strlen(key), src_r, &seg, 1, NULL, 0))
			failed_puts++;
	}
	is_int(failed_puts, 0, "list: %d puts", N);
	for (int i = 0; i < N; i += 30) {
		snprintf(key, sizeof(key), "ls-%03d", i);
		kvswap_delete(k, key, strlen(key));
	}
	do {
		struct kvswap_entry *e;
		uint32_t n;

		r = kvswap_list(k, &cursor, LIMIT, &e, &n);
		if (r < 0)
			break;
		pages++;
		if (n > LIMIT)
			over++;
		for (uint32_t j = 0; j < n; j++) {
			char name[8] = "";
			unsigned i;

			if (e[j].key_len == 6)
				memcpy(name, e[j].key, 6);
			if (memcmp(name, "ls-", 3) ||
			    sscanf(name + 3, "%3u", &i) != 1 || i >= N) {
				stray++;
				continue;
			}
			seen[i]++;
			if (e[j].size != i + 1 || e[j].segments != 1)
				bad++;
		}
		kvswap_entries_free(e, n);
	} while (cursor != 0 && pages < 10 * N);
	is_int(r, 0, "list: every page succeeds");
	ok(pages >= (N - N / 30) / LIMIT, "list: %u pages of at most %d",
	   pages, LIMIT);
	is_int(over, 0, "list: no page longer than the limit");
	{
		unsigned missing = 0, deleted = 0;

		for (int i = 0; i < N; i++) {
			if (i % 30 == 0)
				deleted += seen[i] > 0;
			else
				missing += seen[i] == 0;
		}
		is_int(missing, 0, "list: every live key listed");
		is_int(deleted, 0, "list: no deleted key listed");
	}
	is_int(bad, 0, "list: sizes and segment counts are right");
	is_int(stray, 0, "list: no unknown keys");
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "ls-%03d", i);
		kvswap_delete(k, key, strlen(key));
	}
}

/*
 * Keys present for the whole listing are listed at least once even while
 * the index grows (and shrinks) under the cursor between pages.
 */
static void test_list_growing(void)
{
	enum { N = 200, LIMIT = 5, GROW = 40, MAX_GROWN = 1600 };
	struct kvswap_seg_out seg = { .offset = 0, .length = 1 };
	unsigned seen[N] = { 0 }, pages = 0, grown = 0, dropped = 0;
	unsigned missing = 0, failed = 0;
	uint64_t cursor = 0;
	char key[32];
	int r = 0;

	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "st-%03d", i);
		failed += kvswap_put(k, key, strlen(key), src_r, &seg, 1,
				     NULL, 0) != 0;
	}
	do {
		struct kvswap_entry *e;
		uint32_t n;

		r = kvswap_list(k, &cursor, LIMIT, &e, &n);
		if (r < 0)
			break;
		pages++;
		for (uint32_t j = 0; j < n; j++) {
			char name[8] = "";
			unsigned i;

			if (e[j].key_len == 6)
				memcpy(name, e[j].key, 6);
			if (memcmp(name, "st-", 3) == 0 &&
			    sscanf(name + 3, "%3u", &i) == 1 && i < N)
				seen[i]++;
		}
		kvswap_entries_free(e, n);
		/* Grow the index between pages, and drop some of it again. */
		for (unsigned g = 0; g < GROW && grown < MAX_GROWN; g++) {
			snprintf(key, sizeof(key), "gr-%05u", grown++);
			failed += kvswap_put(k, key, strlen(key), src_r, &seg, 1,
					     NULL, 0) != 0;
		}
		if (pages % 3 == 0) {
			for (unsigned g = 0; g < GROW && dropped + GROW < grown;
			     g++) {
				snprintf(key, sizeof(key), "gr-%05u", dropped++);
				failed += kvswap_delete(k, key, strlen(key)) != 0;
			}
		}
	} while (cursor != 0 && pages < 5000);
	is_int(failed, 0, "growing list: puts and deletes between pages succeed");
	is_int(r, 0, "growing list: every page succeeds");
	ok(cursor == 0, "growing list: the listing ends (%u pages)", pages);
	for (int i = 0; i < N; i++)
		missing += seen[i] == 0;
	is_int(missing, 0,
	       "growing list: all %d keys present throughout are listed while %u others come and go",
	       N, grown);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "st-%03d", i);
		kvswap_delete(k, key, strlen(key));
	}
	for (unsigned g = dropped; g < grown; g++) {
		snprintf(key, sizeof(key), "gr-%05u", g);
		kvswap_delete(k, key, strlen(key));
	}
}

/* Keys are bytes: embedded NULs and prefixes make distinct keys. */
static void test_binary_keys(void)
{
	static const struct {
		const char *key;
		size_t len;
	} keys[] = {
		{ "a", 1 }, { "a\0b", 3 }, { "a\0c", 3 }, { "\0", 1 },
		{ "\xff\xfe", 2 },
	};
	enum { NK = sizeof(keys) / sizeof(keys[0]) };
	struct kvswap_seg_out seg = { .offset = 0 };
	struct kvswap_entry e;
	unsigned bad = 0;
	int r;

	for (unsigned i = 0; i < NK; i++) {
		seg.length = 100 + i;
		r = kvswap_put(k, keys[i].key, keys[i].len, src_r, &seg, 1,
			       NULL, 0);
		bad += r != 0;
	}
	is_int(bad, 0, "binary keys: %d puts", NK);
	bad = 0;
	for (unsigned i = 0; i < NK; i++) {
		r = kvswap_describe(k, keys[i].key, keys[i].len, &e);
		if (r != 0 || e.size != 100 + i || e.key_len != keys[i].len ||
		    memcmp(e.key, keys[i].key, keys[i].len))
			bad++;
		if (r == 0)
			kvswap_entry_clear(&e);
	}
	is_int(bad, 0, "binary keys: each describes as its own entry");
	is_int(kvswap_delete(k, "a\0b", 3), 0, "binary keys: delete a\\0b");
	r = kvswap_describe(k, "a\0c", 3, &e);
	is_int(r, 0, "binary keys: a\\0c is still there");
	if (r == 0)
		kvswap_entry_clear(&e);
	is_int(kvswap_describe(k, "a\0b", 3, &e), -ENOENT,
	       "binary keys: a\\0b is gone");
	for (unsigned i = 0; i < NK; i++)
		kvswap_delete(k, keys[i].key, keys[i].len);
}

static void test_delete_and_stat(void)
{
	struct kvswap_seg_out segs[2] = {
		{ .offset = 0, .length = 10000 },
		{ .offset = 16384, .length = 5 },
	};
	struct kvswap_seg_in in[2] = {
		{ .index = 0, .offset = 0 }, { .index = 1, .offset = 16384 },
	};
	struct kvswap_stat s0, s1, s2, s3;
	struct kvswap_entry e;
	uint64_t alloc = round_up(10000, 4096) + round_up(5, 4096);
	int r;

	r = kvswap_stat(k, &s0);
	is_int(r, 0, "stat");
	is_uint(s0.capacity, kvswap_limits(k)->capacity,
		"stat: capacity as in hello");
	is_int(s0.store_files, 1, "stat: store_files");
	is_int(s0.in_flight, 0, "stat: nothing in flight at rest");
	is_int(s0.clients, 1, "stat: one client");
	is_int(s0.regions, 2, "stat: our two regions");
	ok(s0.queue_depth > 0, "stat: queue_depth %u", s0.queue_depth);

	rng_fill(&rng, src, 20480);
	r = kvswap_put(k, "del", 3, src_r, segs, 2, NULL, 0);
	is_int(r, 0, "delete: put");
	kvswap_stat(k, &s1);
	is_uint(s1.entries, s0.entries + 1, "stat: entries + 1 after a put");
	ok(s1.used - s0.used >= alloc && s1.used - s0.used <= alloc + 8192,
	   "stat: used grew by %" PRIu64 " for %" PRIu64 " bytes of blocks",
	   s1.used - s0.used, alloc);
	ok(s1.bytes_in - s0.bytes_in >= 10005 &&
	   s1.bytes_in - s0.bytes_in <= alloc + 8192,
	   "stat: bytes_in grew by %" PRIu64 " for 10005 bytes",
	   s1.bytes_in - s0.bytes_in);
	ok(s1.requests > s0.requests, "stat: requests counted");
	r = kvswap_get(k, "del", 3, dst_r, in, 2);
	is_int(r, 0, "delete: get before delete");
	kvswap_stat(k, &s2);
	ok(s2.bytes_out - s1.bytes_out >= 10005 &&
	   s2.bytes_out - s1.bytes_out <= alloc + 8192,
	   "stat: bytes_out grew by %" PRIu64 " for 10005 bytes",
	   s2.bytes_out - s1.bytes_out);

	is_int(kvswap_delete(k, "del", 3), 0, "delete");
	is_int(kvswap_describe(k, "del", 3, &e), -ENOENT,
	       "delete: describe then fails with ENOENT");
	is_int(kvswap_get(k, "del", 3, dst_r, in, 2), -ENOENT,
	       "delete: get then fails with ENOENT");
	is_int(kvswap_delete(k, "del", 3), -ENOENT,
	       "delete: a second delete fails with ENOENT");
	kvswap_stat(k, &s3);
	is_uint(s3.entries, s0.entries, "stat: entries back after delete");
	is_uint(s3.used, s0.used, "stat: used back after delete");
	ok(s3.errors >= s2.errors + 3, "stat: errors counted (%" PRIu64
	   " -> %" PRIu64 ")", s2.errors, s3.errors);
}

int main(void)
{
	int r;

	harness_init("test-roundtrip");
	rng_init(&rng, harness_seed());
	expect = malloc(REGION_SIZE);
	if (!expect)
		bail_out("out of memory");

	r = harness_start(NULL, &d);
	if (r < 0)
		bail_out("cannot start kvswapd (see above)");
	r = harness_connect(d, &k);
	if (r < 0)
		bail_out("cannot connect: %s", strerror(-r));
	r = kvswap_region_create(k, REGION_SIZE, &src_r);
	if (r == 0)
		r = kvswap_region_create(k, REGION_SIZE, &dst_r);
	if (r < 0)
		bail_out("cannot create %" PRIu64 "-byte regions: %s: %s",
			 REGION_SIZE, strerror(-r), kvswap_last_error(k));
	src = kvswap_region_addr(src_r);
	dst = kvswap_region_addr(dst_r);
	ok(kvswap_region_size(src_r) >= REGION_SIZE, "region size");

	test_limits();
	test_delete_and_stat();
	test_sizes();
	test_segments(1, 300000);
	test_segments(7, 300000);
	test_segments(64, 200000);
	test_tail_block();
	test_odd_region();
	test_subset();
	test_metadata();
	test_event_order();
	test_replace();
	test_lookup();
	test_list();
	test_list_growing();
	test_binary_keys();

	is_int(kvswap_region_release(k, dst_r), 0, "release region");
	is_int(kvswap_region_release(k, src_r), 0, "release region");
	kvswap_close(k);
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
	free(expect);
	done_testing();
}
