/* SPDX-License-Identifier: MIT */
/*
 * Batched swaps through libkvswap against the real daemon: round trips
 * with a byte check of the whole region (nothing written outside the
 * named ranges), completion groups waited for in order and out of order,
 * per-entry errors, IF_ABSENT with two clients racing for the same keys,
 * cancel (and the region's memory reused only after the reply), a flipped
 * stored byte caught by the client's CRC32C check, batches larger than
 * one packet (split by the library), corked submission, and v1 calls
 * working as before beside all of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "harness.h"
#include "tap.h"

#define CANARY		0x5a
#define REGION		(96 * MiB)
#define WAIT_MS		60000
#define MAX_ENT		1024
#define MAX_SEG		32

static struct harness *d;
static struct kvswap *k;
static struct kvswap_region *src_r, *dst_r;
static uint8_t *src, *dst;
static struct rng rng;

/* A batch under construction: entries with their own arrays. */
struct bt {
	uint32_t n;
	struct kvswap_batch_entry e[MAX_ENT];
	char key[MAX_ENT][32];
	uint64_t off[MAX_ENT][MAX_SEG];
	uint64_t len[MAX_ENT][MAX_SEG];
	uint32_t grp[MAX_ENT][MAX_SEG];
	uint32_t idx[MAX_ENT][MAX_SEG];
};

static struct bt *bt_new(void)
{
	struct bt *b = calloc(1, sizeof(*b));

	if (!b)
		bail_out("out of memory");
	return b;
}

/*
 * Adds entry `key` with nseg segments of len bytes each (lens: per
 * segment, if not NULL), placed from `base` every `stride` bytes, each
 * segment in group `layer + k` of `groups` (groups 0: the default).
 */
static struct kvswap_batch_entry *bt_add(struct bt *b, const char *key,
					 uint32_t nseg, uint64_t base,
					 uint64_t stride, uint64_t len,
					 bool explicit_groups)
{
	uint32_t i = b->n++;
	struct kvswap_batch_entry *e = &b->e[i];

	if (i >= MAX_ENT || nseg > MAX_SEG)
		bail_out("test bug: batch too large");
	snprintf(b->key[i], sizeof(b->key[i]), "%s", key);
	for (uint32_t s = 0; s < nseg; s++) {
		b->off[i][s] = base + s * stride;
		b->len[i][s] = len;
		b->grp[i][s] = s;
		b->idx[i][s] = s;
	}
	*e = (struct kvswap_batch_entry){
		.key = b->key[i],
		.key_len = strlen(b->key[i]),
		.nseg = nseg,
		.offsets = b->off[i],
		.lengths = b->len[i],
		.groups = explicit_groups ? b->grp[i] : NULL,
	};
	return e;
}

/* Runs a batch to its end; returns kvswap_wait()'s status. */
static int bt_run(struct bt *b, bool out, uint32_t flags,
		  struct kvswap_req **ret)
{
	struct kvswap_req *q;
	int r;

	r = out ? kvswap_swap_out_batch(k, src_r, b->e, b->n, flags, &q) :
		  kvswap_swap_in_batch(k, dst_r, b->e, b->n, flags, &q);
	if (r < 0) {
		diag("batch refused: %s: %s", strerror(-r), kvswap_last_error(k));
		return r;
	}
	r = kvswap_wait(k, q, WAIT_MS);
	if (ret)
		*ret = q;
	else
		kvswap_req_free(q);
	return r;
}

/*
 * dst holds src's bytes exactly where batch b (read from src's layout
 * `from`, written to b's offsets) put them, and CANARY everywhere else.
 */
static bool region_matches(const struct bt *from, const struct bt *to,
			   const bool *skip)
{
	uint8_t *expect = malloc(REGION);
	bool good;

	if (!expect)
		bail_out("out of memory");
	memset(expect, CANARY, REGION);
	for (uint32_t i = 0; i < to->n; i++) {
		if (skip && skip[i])
			continue;
		for (uint32_t s = 0; s < to->e[i].nseg; s++)
			memcpy(expect + to->off[i][s], src + from->off[i][s],
			       from->len[i][s]);
	}
	good = !memcmp(expect, dst, REGION);
	if (!good) {
		for (size_t j = 0; j < REGION; j++) {
			if (expect[j] != dst[j]) {
				diag("first difference at byte %zu: 0x%02x, expected 0x%02x",
				     j, dst[j], expect[j]);
				break;
			}
		}
	}
	free(expect);
	return good;
}

/* A swap-in batch that mirrors swap-out batch `out` at new places. */
static struct bt *bt_mirror(const struct bt *out, uint64_t base,
			    bool explicit_groups)
{
	struct bt *in = bt_new();
	uint64_t at = base;

	for (uint32_t i = 0; i < out->n; i++) {
		struct kvswap_batch_entry *e;

		e = bt_add(in, out->key[i], out->e[i].nseg, 0, 0, 0,
			   explicit_groups);
		for (uint32_t s = 0; s < e->nseg; s++) {
			in->off[i][s] = at;
			in->len[i][s] = out->len[i][s];
			at += round_up(out->len[i][s], 4096);
		}
		memcpy(in->grp[i], out->grp[i], sizeof(in->grp[i]));
	}
	return in;
}

/*
 * The daemon's request count, less what asking adds: wire requests made
 * since the last call.
 */
static uint64_t requests_since(void)
{
	static uint64_t last, overhead = UINT64_MAX;
	struct kvswap_stat st;
	uint64_t n;

	if (kvswap_stat(k, &st) < 0)
		bail_out("stat: %s", kvswap_last_error(k));
	if (overhead == UINT64_MAX) {
		last = st.requests;
		if (kvswap_stat(k, &st) < 0)
			bail_out("stat: %s", kvswap_last_error(k));
		overhead = st.requests - last;
	}
	n = st.requests - last - overhead;
	last = st.requests;
	return n;
}

/* --- round trips and groups ------------------------------------------------ */

static void test_round_trip(void)
{
	struct bt *out = bt_new(), *in;
	struct kvswap_batch_limits bl;
	struct kvswap_req *q;
	char key[32], meta[64];
	int r;

	is_int(kvswap_batch_limits(k, &bl), 0, "the daemon takes batches");
	ok(bl.max_entries == 1024 && bl.max_segments == 16384 &&
	   bl.max_groups == 4096, "batch limits %u entries, %u segments, %u groups",
	   bl.max_entries, bl.max_segments, bl.max_groups);

	/* 8 entries x 4 layers, lengths with tails, default groups. */
	for (uint32_t i = 0; i < 8; i++) {
		struct kvswap_batch_entry *e;

		snprintf(key, sizeof(key), "rt-%u", i);
		e = bt_add(out, key, 4, i * 4 * 64 * KiB, 64 * KiB,
			   64 * KiB - i * 1000, false);
		snprintf(meta, sizeof(meta), "meta of %u", i);
		e->metadata = strdup(meta);
		e->metadata_len = strlen(meta);
	}
	r = bt_run(out, true, KVSWAP_CACHE, &q);
	is_int(r, 0, "swap_out_batch of 8 entries x 4 segments");
	for (uint32_t i = 0; i < 8; i++)
		if (kvswap_req_entry_status(q, i) != 0)
			ok(false, "entry %u stored (%d)", i, kvswap_req_entry_status(q, i));
	is_int(kvswap_req_entries(q), 8, "8 entries");
	for (uint32_t g = 0; g < 4; g++)
		ok(kvswap_group_done(q, g), "swap-out group %u done", g);
	kvswap_req_free(q);

	/* Back, elsewhere, waiting for the groups in order. */
	memset(dst, CANARY, REGION);
	in = bt_mirror(out, 3 * MiB, false);
	r = kvswap_swap_in_batch(k, dst_r, in->e, in->n, 0, &q);
	is_int(r, 0, "swap_in_batch started");
	for (uint32_t g = 0; r == 0 && g < 4; g++)
		is_int(kvswap_wait_group(k, q, g, WAIT_MS), 0, "group %u landed", g);
	is_int(kvswap_wait(k, q, WAIT_MS), 0, "swap_in_batch verified and done");
	ok(region_matches(out, in, NULL), "the whole region: each segment where "
	   "asked, nothing written elsewhere");
	for (uint32_t i = 0; i < 8; i++) {
		size_t len;
		const void *m = kvswap_req_entry_metadata(q, i, &len);

		snprintf(meta, sizeof(meta), "meta of %u", i);
		if (!m || len != strlen(meta) || memcmp(m, meta, len))
			ok(false, "entry %u's metadata", i);
	}
	ok(true, "every entry's metadata came back");
	is_int(kvswap_wait_group(k, q, 4, 0), -EINVAL,
	       "a group without segments: -EINVAL");
	kvswap_req_free(q);
	for (uint32_t i = 0; i < out->n; i++)
		free((void *)out->e[i].metadata);
	free(out);
	free(in);
}

/* Groups chosen by the caller, waited for out of order, segment events. */
static void test_groups(void)
{
	struct bt *out = bt_new(), *in;
	static const uint32_t order[] = { 5, 0, 3, 1, 4, 2 };
	struct kvswap_req *q;
	uint32_t idx, seen = 0;
	char key[32];
	int r;

	/* 6 entries of 6 segments; segment s of entry i in group (i + s) % 6. */
	for (uint32_t i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "grp-%u", i);
		bt_add(out, key, 6, 8 * MiB + i * 6 * 32 * KiB, 32 * KiB,
		       20 * KiB + i, true);
		for (uint32_t s = 0; s < 6; s++)
			out->grp[i][s] = (i + s) % 6;
	}
	is_int(bt_run(out, true, KVSWAP_DURABLE, NULL), 0,
	       "durable swap_out_batch with explicit groups");
	memset(dst, CANARY, REGION);
	in = bt_mirror(out, 20 * MiB, true);
	r = kvswap_swap_in_batch(k, dst_r, in->e, in->n, KVSWAP_SEGMENT_EVENTS, &q);
	is_int(r, 0, "swap_in_batch with segment events");
	for (uint32_t j = 0; r == 0 && j < 6; j++)
		is_int(kvswap_wait_group(k, q, order[j], WAIT_MS), 0,
		       "group %u landed (waited for out of order)", order[j]);
	is_int(kvswap_wait(k, q, WAIT_MS), 0, "done");
	while ((r = kvswap_wait_segment(k, q, 0, &idx)) != -ENODATA) {
		if (r < 0 || idx >= 36)
			break;
		seen++;
	}
	is_int(seen, 36, "36 segment events, counted entry by entry");
	ok(region_matches(out, in, NULL), "bytes exact, nothing else written");
	kvswap_req_free(q);
	free(out);
	free(in);
}

/* --- per-entry errors ------------------------------------------------------ */

static void test_entry_errors(void)
{
	struct bt *out = bt_new(), *in;
	struct kvswap_req *q;
	bool skip[4] = { false, true, false, true };
	int r;

	bt_add(out, "err-a", 2, 30 * MiB, 64 * KiB, 10000, true);
	bt_add(out, "err-missing", 2, 31 * MiB, 64 * KiB, 10000, true);
	bt_add(out, "err-b", 2, 32 * MiB, 64 * KiB, 10000, true);
	bt_add(out, "err-c", 2, 33 * MiB, 64 * KiB, 10000, true);
	/* Only a, b and c are stored. */
	{
		struct bt *some = bt_new();

		some->n = 0;
		bt_add(some, "err-a", 2, 30 * MiB, 64 * KiB, 10000, true);
		bt_add(some, "err-b", 2, 32 * MiB, 64 * KiB, 10000, true);
		bt_add(some, "err-c", 2, 33 * MiB, 64 * KiB, 10000, true);
		is_int(bt_run(some, true, KVSWAP_CACHE, NULL), 0, "3 entries stored");
		free(some);
	}
	/* The missing entry alone in groups 7 and 8; c names a segment 5. */
	out->grp[1][0] = 7;
	out->grp[1][1] = 8;
	in = bt_mirror(out, 40 * MiB, true);
	in->idx[3][1] = 5;
	in->e[3].indexes = in->idx[3];
	in->grp[3][0] = 2;
	in->grp[3][1] = 3;
	memset(dst, CANARY, REGION);
	r = kvswap_swap_in_batch(k, dst_r, in->e, in->n, 0, &q);
	is_int(r, 0, "swap_in_batch with a missing key and a bad index");
	is_int(kvswap_wait_group(k, q, 7, WAIT_MS), -ENOENT,
	       "the missing entry's group fails with -ENOENT");
	is_int(kvswap_wait_group(k, q, 0, WAIT_MS), 0, "group 0 landed");
	is_int(kvswap_wait(k, q, WAIT_MS), -ENOENT,
	       "kvswap_wait: the first failed entry's error");
	is_int(kvswap_req_entry_status(q, 0), 0, "entry 0 read");
	is_int(kvswap_req_entry_status(q, 1), -ENOENT, "entry 1: -ENOENT");
	ok(strstr(kvswap_req_entry_error(q, 1), "entries[1]") != NULL,
	   "its message names the entry: %s", kvswap_req_entry_error(q, 1));
	is_int(kvswap_req_entry_status(q, 2), 0, "entry 2 read");
	is_int(kvswap_req_entry_status(q, 3), -EINVAL,
	       "entry 3 (stored segment 5 of 2): -EINVAL");
	diag("%s", kvswap_req_entry_error(q, 3));
	is_int(kvswap_wait_group(k, q, 3, 0), -EINVAL, "and its group 3 too");
	is_int(kvswap_wait_group(k, q, 2, 0), -EINVAL,
	       "and group 2, whose only segment was never read");
	ok(!kvswap_group_done(q, 8) && kvswap_group_done(q, 1),
	   "group_done: 8 not, 1 yes");
	ok(region_matches(out, in, skip), "entries 0 and 2 exact; the failed "
	   "entries' ranges untouched");
	kvswap_req_free(q);

	/* Refused before anything is sent: out of the region, bad flags. */
	in->off[0][0] = REGION - 4096;
	is_int(kvswap_swap_in_batch(k, dst_r, in->e, in->n, 0, &q), -EINVAL,
	       "a segment past the region's end: -EINVAL");
	diag("%s", kvswap_last_error(k));
	is_int(kvswap_swap_in_batch(k, dst_r, in->e, in->n, KVSWAP_IF_ABSENT, &q),
	       -EINVAL, "IF_ABSENT on a swap-in: -EINVAL");
	free(out);
	free(in);
}

/* --- IF_ABSENT, two clients racing ----------------------------------------- */

#define RACE_KEYS	64
#define RACE_BATCH	8

static void test_if_absent_race(void)
{
	struct kvswap *k2;
	struct kvswap_region *r2;
	uint8_t *mem2;
	struct kvswap_req *qa[RACE_KEYS / RACE_BATCH], *qb[RACE_KEYS / RACE_BATCH];
	struct bt *ba = bt_new(), *bb = bt_new();
	unsigned once = 0, both = 0, none = 0, a_won = 0, right = 0;
	const uint64_t seg = 16 * KiB;

	if (harness_connect(d, &k2) < 0 ||
	    kvswap_region_create(k2, 2 * RACE_KEYS * seg, &r2) < 0)
		bail_out("second client");
	mem2 = kvswap_region_addr(r2);
	/* Client A writes from src at 50 MiB, client B from its region. */
	for (uint32_t i = 0; i < RACE_KEYS; i++) {
		char key[32];

		snprintf(key, sizeof(key), "race-%u", i);
		bt_add(ba, key, 2, 50 * MiB + i * 2 * seg, seg, seg, false);
		snprintf(key, sizeof(key), "race-%u", RACE_KEYS - 1 - i);
		bt_add(bb, key, 2, i * 2 * seg, seg, seg, false);
	}
	rng_fill(&rng, mem2, 2 * RACE_KEYS * seg);
	/* A goes up the keys, B down, batches interleaved on the wire. */
	for (uint32_t j = 0; j < RACE_KEYS / RACE_BATCH; j++) {
		if (kvswap_swap_out_batch(k, src_r, ba->e + j * RACE_BATCH,
					  RACE_BATCH, KVSWAP_IF_ABSENT |
					  KVSWAP_CACHE, &qa[j]) < 0 ||
		    kvswap_swap_out_batch(k2, r2, bb->e + j * RACE_BATCH,
					  RACE_BATCH, KVSWAP_IF_ABSENT |
					  KVSWAP_CACHE, &qb[j]) < 0)
			bail_out("race batch refused: %s", kvswap_last_error(k));
	}
	for (uint32_t j = 0; j < RACE_KEYS / RACE_BATCH; j++) {
		if (kvswap_wait(k, qa[j], WAIT_MS) < 0 ||
		    kvswap_wait(k2, qb[j], WAIT_MS) < 0)
			diag("race batch %u failed: %s / %s", j,
			     kvswap_last_error(k), kvswap_last_error(k2));
	}
	/* Each key: written by exactly one, skipped by the other. */
	memset(dst, CANARY, REGION);
	for (uint32_t i = 0; i < RACE_KEYS; i++) {
		uint32_t jb = RACE_KEYS - 1 - i;	/* B's entry of key i */
		int sa = kvswap_req_entry_status(qa[i / RACE_BATCH], i % RACE_BATCH);
		int sb = kvswap_req_entry_status(qb[jb / RACE_BATCH], jb % RACE_BATCH);
		struct kvswap_seg_in in[2] = { { 0, 60 * MiB }, { 1, 60 * MiB + seg } };
		const uint8_t *want = sa == 0 ? src + ba->off[i][0] :
			mem2 + bb->off[jb][0];

		if ((sa == 0 && sb == KVSWAP_SKIPPED) ||
		    (sb == 0 && sa == KVSWAP_SKIPPED))
			once++;
		else if (sa == 0 && sb == 0)
			both++;
		else
			none++;
		a_won += sa == 0;
		if (kvswap_get(k, ba->key[i], strlen(ba->key[i]), dst_r, in, 2) == 0 &&
		    !memcmp(dst + 60 * MiB, want, 2 * seg))
			right++;
	}
	is_int(once, RACE_KEYS, "every key written by one client, skipped by "
	       "the other (both wrote %u, neither %u; A won %u)", both, none,
	       a_won);
	is_int(right, RACE_KEYS, "each key holds its writer's bytes");
	for (uint32_t j = 0; j < RACE_KEYS / RACE_BATCH; j++) {
		kvswap_req_free(qa[j]);
		kvswap_req_free(qb[j]);
	}
	kvswap_region_release(k2, r2);
	kvswap_close(k2);
	free(ba);
	free(bb);
}

/* --- cancel ------------------------------------------------------------------ */

static void test_cancel(void)
{
	struct bt *out = bt_new(), *in;
	struct kvswap_req *q;
	unsigned stored = 0, cancelled = 0, other = 0, groups = 0;
	uint8_t *copy;
	int r;

	/* 4 entries x 8 segments of 1 MiB, from src at 0. */
	for (uint32_t i = 0; i < 4; i++) {
		char key[32];

		snprintf(key, sizeof(key), "cancel-%u", i);
		bt_add(out, key, 8, i * 8 * MiB, MiB, MiB, false);
	}
	copy = malloc(32 * MiB);
	if (!copy)
		bail_out("out of memory");
	memcpy(copy, src, 32 * MiB);
	r = kvswap_swap_out_batch(k, src_r, out->e, out->n, KVSWAP_CACHE, &q);
	is_int(r, 0, "a 32 MiB swap_out_batch started");
	is_int(kvswap_cancel(k, q), 0, "cancelled at once");
	r = kvswap_wait(k, q, WAIT_MS);
	ok(kvswap_req_done(q), "the request still ends with its reply (%s)",
	   r ? strerror(-r) : "all stored before the cancel arrived");
	for (uint32_t i = 0; i < 4; i++) {
		int st = kvswap_req_entry_status(q, i);

		stored += st == 0;
		cancelled += st == -ECANCELED;
		other += st != 0 && st != -ECANCELED;
	}
	for (uint32_t g = 0; g < 8; g++)
		groups += kvswap_group_done(q, g);
	is_int(other, 0, "every entry stored or cancelled (%u stored, %u "
	       "cancelled, %u groups landed whole, cancelled %d)", stored,
	       cancelled, groups, kvswap_req_cancelled(q));
	kvswap_req_free(q);
	/* The region is ours again: scribble; stored entries hold the old bytes. */
	memset(src, 0xcc, 32 * MiB);
	{
		unsigned good = 0, gone = 0;

		for (uint32_t i = 0; i < 4; i++) {
			struct kvswap_seg_in one = { 7, 40 * MiB };

			r = kvswap_get(k, out->key[i], strlen(out->key[i]), dst_r,
				       &one, 1);
			if (r == -ENOENT)
				gone++;
			else if (r == 0 && !memcmp(dst + 40 * MiB,
						   copy + i * 8 * MiB + 7 * MiB, MiB))
				good++;
		}
		is_int(good + gone, 4, "stored entries hold the bytes of before "
		       "the reply, the others are absent (%u, %u)", good, gone);
		is_int(gone, cancelled, "absent exactly when cancelled");
	}
	memcpy(src, copy, 32 * MiB);
	is_int(bt_run(out, true, KVSWAP_CACHE, NULL), 0, "all 4 stored again");

	/* A cancelled swap-in: no byte lands after its reply. */
	in = bt_mirror(out, 48 * MiB, false);
	memset(dst, CANARY, REGION);
	r = kvswap_swap_in_batch(k, dst_r, in->e, in->n, 0, &q);
	is_int(r, 0, "a 32 MiB swap_in_batch started");
	kvswap_cancel(k, q);
	kvswap_wait(k, q, WAIT_MS);
	ok(kvswap_req_done(q), "cancelled swap-in ends with its reply");
	for (uint32_t i = 0; i < 4; i++) {
		int st = kvswap_req_entry_status(q, i);

		if (st == 0 && memcmp(dst + in->off[i][0],
				      copy + out->off[i][0], 8 * MiB))
			ok(false, "entry %u read but its bytes differ", i);
		if (st != 0 && st != -ECANCELED)
			ok(false, "entry %u: %d", i, st);
	}
	for (uint32_t g = 0; g < 8; g++) {
		bool whole = true;

		for (uint32_t i = 0; i < 4; i++)
			whole &= !memcmp(dst + in->off[i][g],
					 copy + out->off[i][g], MiB);
		if (kvswap_group_done(q, g) && !whole)
			ok(false, "group %u reported landed, its bytes differ", g);
	}
	ok(true, "what the reply calls landed is there, byte-exact");
	kvswap_req_free(q);
	memset(dst + 48 * MiB, 0x11, 32 * MiB);
	usleep(200 * 1000);
	is_int(mem_first_not(dst + 48 * MiB, 32 * MiB, 0x11), 32 * MiB,
	       "memory reused after the reply: nothing lands in it later");

	/* Cancelled while corked: never sent. */
	kvswap_cork(k);
	r = kvswap_swap_in_batch(k, dst_r, in->e, in->n, 0, &q);
	is_int(r, 0, "a corked swap_in_batch queued");
	is_int(kvswap_cancel(k, q), 0, "and cancelled");
	ok(kvswap_req_done(q) && kvswap_req_status(q) == -ECANCELED &&
	   kvswap_req_cancelled(q), "done at once, -ECANCELED, nothing sent");
	is_int(kvswap_uncork(k), 0, "uncorked");
	kvswap_req_free(q);
	is_int(mem_first_not(dst + 48 * MiB, 32 * MiB, 0x11), 32 * MiB,
	       "and nothing landed");
	free(copy);
	free(out);
	free(in);
}

/* --- damage behind the daemon's back --------------------------------------- */

/* Flips one bit of the store block that holds `block` (4096 bytes). */
static int flip_block(const char *path, const uint8_t *block)
{
	struct stat st;
	uint8_t *buf = malloc(4096);
	int64_t found = -1;
	int fd, r = -ENOENT;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || !buf || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	for (off_t off = 0; off + 4096 <= st.st_size; off += 4096) {
		if (pread(fd, buf, 4096, off) != 4096) {
			r = -EIO;
			goto out;
		}
		if (!memcmp(buf, block, 4096)) {
			found = off;
			break;
		}
	}
	if (found >= 0) {
		buf[100] ^= 0x08;
		r = pwrite(fd, buf, 4096, found) == 4096 && !fsync(fd) ? 0 : -EIO;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

static void test_damage(void)
{
	struct bt *out = bt_new(), *in;
	struct kvswap_stat s0, s1;
	struct kvswap_entry ent;
	struct kvswap_req *q;
	int r;

	/* Two entries of 3 segments; fresh random bytes, unique blocks. */
	rng_fill(&rng, src + 64 * MiB, 2 * MiB);
	bt_add(out, "dmg-client", 3, 64 * MiB, 256 * KiB, 100000, true);
	bt_add(out, "dmg-daemon", 3, 65 * MiB, 256 * KiB, 100000, true);
	is_int(bt_run(out, true, KVSWAP_DURABLE, NULL), 0,
	       "2 entries stored with the client's CRC32C");
	ok(flip_block(d->store, src + 64 * MiB + 256 * KiB + 8192) == 0,
	   "flipped a bit of dmg-client's segment 1 in the store file");
	ok(flip_block(d->store, src + 65 * MiB + 2 * 256 * KiB) == 0,
	   "flipped a bit of dmg-daemon's segment 2");
	if (harness_stat(d, &s0) < 0)
		bail_out("stat");

	in = bt_mirror(out, 70 * MiB, true);
	memset(dst, CANARY, REGION);
	r = kvswap_swap_in_batch(k, dst_r, in->e, 1, 0, &q);
	is_int(r, 0, "swap_in_batch of the damaged entry, the client checks");
	r = kvswap_wait_group(k, q, 0, WAIT_MS);
	ok(r == 0 || (r == -EBADMSG && kvswap_req_done(q)),
	   "group 0: landed, not verified yet (or, if the reply came first, "
	   "verified bad): %d", r);
	is_int(kvswap_wait(k, q, WAIT_MS), -EBADMSG,
	       "the request fails with -EBADMSG: never served as good");
	is_int(kvswap_req_entry_status(q, 0), -EBADMSG, "the entry: -EBADMSG");
	ok(strstr(kvswap_req_entry_error(q, 0), "segments[1]") &&
	   strstr(kvswap_req_entry_error(q, 0), "CRC32C"),
	   "the message names the segment: %s", kvswap_req_entry_error(q, 0));
	is_int(kvswap_wait_group(k, q, 1, 0), -EBADMSG,
	       "after the reply, its groups fail too");
	ok(!kvswap_group_done(q, 0), "group 0 is not done-and-good any more");
	kvswap_req_free(q);
	if (harness_stat(d, &s1) < 0)
		bail_out("stat");
	is_int(s1.checksum_errors, s0.checksum_errors,
	       "the daemon did not check (client_verify): the client caught it");
	is_int(kvswap_describe(k, "dmg-client", 10, &ent), -ENOENT,
	       "the library had the damaged key deleted");

	/* With KVSWAP_NO_VERIFY the daemon's --verify (on) catches it. */
	in->e[1].lengths = NULL;
	in->e[1].length = 0;
	r = kvswap_swap_in_batch(k, dst_r, in->e + 1, 1, KVSWAP_NO_VERIFY, &q);
	is_int(r, 0, "NO_VERIFY swap_in_batch needs no lengths");
	is_int(kvswap_wait(k, q, WAIT_MS), -EBADMSG,
	       "the daemon's check fails it with -EBADMSG");
	diag("%s", kvswap_req_entry_error(q, 0));
	kvswap_req_free(q);
	free(out);
	free(in);
}

/* --- batches larger than one packet ---------------------------------------- */

static void test_split(void)
{
	struct bt *out = bt_new(), *in;
	struct kvswap_req *q;
	const uint32_t nent = 640, nseg = 32;	/* 20480 segments of 4 KiB */
	uint64_t requests;
	int r;

	for (uint32_t i = 0; i < nent; i++) {
		char key[32];

		snprintf(key, sizeof(key), "split-%u", i);
		bt_add(out, key, nseg, (uint64_t)i * nseg * 4096, 4096,
		       4096 - (i % 7) * 100, false);
	}
	rng_fill(&rng, src, (size_t)nent * nseg * 4096);
	requests_since();
	r = bt_run(out, true, KVSWAP_CACHE, NULL);
	is_int(r, 0, "swap_out_batch of %u entries x %u segments (%u in all)",
	       nent, nseg, nent * nseg);
	requests = requests_since();
	ok(requests >= 3, "split into %" PRIu64 " wire requests", requests);

	/* Back, layer by layer: 32 groups, each in every part. */
	in = bt_mirror(out, 0, true);
	memset(dst, CANARY, REGION);
	r = kvswap_swap_in_batch(k, dst_r, in->e, in->n, 0, &q);
	is_int(r, 0, "swap_in_batch of the same, 32 layer groups");
	for (uint32_t g = 0; r == 0 && g < nseg; g++) {
		int w = kvswap_wait_group(k, q, g, WAIT_MS);

		if (w != 0) {
			ok(false, "layer %u: %d (%s)", g, w, kvswap_last_error(k));
			break;
		}
	}
	is_int(kvswap_wait(k, q, WAIT_MS), 0, "every layer landed, every "
	       "segment verified");
	ok(region_matches(out, in, NULL), "%u segments byte-exact, nothing else "
	   "written", nent * nseg);
	kvswap_req_free(q);
	requests = requests_since();
	ok(requests >= 2, "split into %" PRIu64 " wire requests", requests);

	/* Duplicate keys across the parts: refused before anything is sent. */
	out->e[nent - 1].key = out->e[3].key;
	out->e[nent - 1].key_len = out->e[3].key_len;
	is_int(kvswap_swap_out_batch(k, src_r, out->e, nent, 0, &q), -EINVAL,
	       "a key twice in a split batch: -EINVAL");
	diag("%s", kvswap_last_error(k));
	free(out);
	free(in);
}

/* Swap-in replies too big for a packet (metadata): split and resent. */
static void test_reply_split(void)
{
	struct bt *out = bt_new(), *in;
	struct kvswap_req *q;
	char *meta[24];
	unsigned good = 0;
	int r;

	for (uint32_t i = 0; i < 24; i++) {
		struct kvswap_batch_entry *e;
		char key[32];

		snprintf(key, sizeof(key), "meta-%u", i);
		e = bt_add(out, key, 1, 80 * MiB + i * 4096, 0, 4096, false);
		meta[i] = malloc(4000);
		if (!meta[i])
			bail_out("out of memory");
		memset(meta[i], 'a' + (int)i, 4000);
		e->metadata = meta[i];
		e->metadata_len = 4000;
	}
	is_int(bt_run(out, true, KVSWAP_CACHE, NULL), 0,
	       "24 entries with 4000 bytes of metadata each (96 KB: split)");
	in = bt_mirror(out, 82 * MiB, false);
	requests_since();
	r = bt_run(in, false, 0, &q);
	is_int(r, 0, "swap_in_batch of all 24: the reply would not fit one "
	       "packet, the library splits it");
	is_int(requests_since(), 3, "refused once (E2BIG), then sent as two halves");
	for (uint32_t i = 0; i < 24; i++) {
		size_t len;
		const void *m = kvswap_req_entry_metadata(q, i, &len);

		good += m && len == 4000 && !memcmp(m, meta[i], 4000);
	}
	is_int(good, 24, "every entry's metadata");
	kvswap_req_free(q);
	for (uint32_t i = 0; i < 24; i++)
		free(meta[i]);
	free(out);
	free(in);
}

/* --- corked submission and v1 calls ---------------------------------------- */

static void test_cork_and_v1(void)
{
	struct kvswap_req *q[100];
	struct kvswap_seg_out so = { 86 * MiB, 4096 };
	unsigned good = 0;
	uint32_t idx;
	char key[32];
	int r;

	/* v1 put/get, unchanged. */
	rng_fill(&rng, src + 86 * MiB, MiB);
	is_int(kvswap_put(k, "v1-key", 6, src_r, &so, 1, "m", 1), 0, "v1 put");
	{
		struct kvswap_seg_in si = { 0, 86 * MiB };
		struct kvswap_req *g;
		size_t len;

		memset(dst + 86 * MiB, CANARY, 8192);
		r = kvswap_swap_in(k, "v1-key", 6, dst_r, &si, 1, &g);
		is_int(r, 0, "v1 swap_in");
		is_int(kvswap_wait_segment(k, g, WAIT_MS, &idx), 0,
		       "its segment event, as before");
		is_int(kvswap_wait(k, g, WAIT_MS), 0, "and its reply");
		ok(kvswap_req_metadata(g, &len) && len == 1, "v1 metadata");
		ok(!memcmp(dst + 86 * MiB, src + 86 * MiB, 4096) &&
		   dst[86 * MiB + 4096] == CANARY, "v1 bytes exact");
		is_int(kvswap_req_entries(g), 0, "a v1 request has no entries");
		is_int(kvswap_cancel(k, g), -EINVAL, "and cannot be cancelled");
		kvswap_req_free(g);
	}
	/* A batch-stored entry read by v1 (the daemon checks the client's CRC). */
	{
		struct kvswap_seg_in si = { 2, 86 * MiB };

		memset(dst + 86 * MiB, CANARY, 8192);
		is_int(kvswap_get(k, "rt-3", 4, dst_r, &si, 1), 0,
		       "v1 get of a batch-stored entry");
	}

	/* 100 one-segment swaps, corked: queued, sent with few calls. */
	kvswap_cork(k);
	for (uint32_t i = 0; i < 100; i++) {
		struct kvswap_seg_out o = { 86 * MiB + (i % 64) * 4096, 4096 };

		snprintf(key, sizeof(key), "cork-%u", i);
		r = kvswap_swap_out(k, key, strlen(key), src_r, &o, 1, NULL, 0,
				    KVSWAP_CACHE, &q[i]);
		if (r < 0)
			break;
	}
	is_int(r, 0, "100 v1 swap-outs queued while corked");
	is_int(kvswap_uncork(k), 0, "uncork sends them");
	for (uint32_t i = 0; i < 100; i++) {
		good += kvswap_wait(k, q[i], WAIT_MS) == 0;
		kvswap_req_free(q[i]);
	}
	is_int(good, 100, "all 100 stored");

	/* One-segment batches, corked, waited for by group. */
	good = 0;
	kvswap_cork(k);
	for (uint32_t i = 0; i < 100; i++) {
		uint64_t off = 88 * MiB + i * 4096, len = 4096;
		struct kvswap_batch_entry e = {
			.nseg = 1, .offsets = &off, .lengths = &len,
		};

		snprintf(key, sizeof(key), "cork-%u", i);
		e.key = key;
		e.key_len = strlen(key);
		r = kvswap_swap_in_batch(k, dst_r, &e, 1, 0, &q[i]);
		if (r < 0)
			break;
	}
	is_int(r, 0, "100 one-segment swap_in_batch queued while corked");
	for (uint32_t i = 0; i < 100; i++) {
		good += kvswap_wait_group(k, q[i], 0, WAIT_MS) == 0 &&
			kvswap_req_done(q[i]) && !memcmp(dst + 88 * MiB + i * 4096,
							 src + 86 * MiB + (i % 64) * 4096,
							 4096);
		kvswap_req_free(q[i]);
	}
	is_int(good, 100, "waiting flushed them: all 100 read, verified, exact "
	       "(the reply stands for the only group)");
	is_int(kvswap_uncork(k), 0, "uncorked");
	ok(kvswap_lookup(k, (const void *const[]){ "cork-0" },
			 (const size_t[]){ 6 }, 1, NULL) == 1,
	   "a synchronous call after it all");
	{
		const void *keys[] = { "cork-0", "cork-1", "nope" };
		size_t lens[] = { 6, 6, 4 };
		bool del[3];

		is_int(kvswap_delete_keys(k, keys, lens, 3, del), 2,
		       "delete_keys: 2 of 3 were there");
		ok(del[0] && del[1] && !del[2], "and says which");
	}
}

/* Handles freed in flight, and a connection closed under a batch. */
static void test_lifetime(void)
{
	struct bt *out = bt_new(), *in;
	struct kvswap_req *q;
	struct kvswap *k2;
	struct kvswap_region *r2;
	int r;

	for (uint32_t i = 0; i < 8; i++) {
		char key[32];

		snprintf(key, sizeof(key), "life-%u", i);
		bt_add(out, key, 4, i * 4 * MiB, MiB, MiB, false);
	}
	r = kvswap_swap_out_batch(k, src_r, out->e, out->n, KVSWAP_CACHE, &q);
	is_int(r, 0, "a 32 MiB swap_out_batch started");
	kvswap_req_free(q);
	ok(kvswap_lookup(k, (const void *const[]){ "life-0" },
			 (const size_t[]){ 6 }, 1, NULL) >= 0,
	   "freed in flight: its events are dropped, the connection goes on");
	is_int(bt_run(out, true, KVSWAP_CACHE, NULL), 0, "stored again, waited");

	if (harness_connect(d, &k2) < 0 ||
	    kvswap_region_create(k2, 32 * MiB, &r2) < 0)
		bail_out("second client");
	in = bt_mirror(out, 0, false);
	r = kvswap_swap_in_batch(k2, r2, in->e, in->n, 0, &q);
	is_int(r, 0, "a swap_in_batch on a second connection");
	kvswap_close(k2);
	ok(kvswap_req_done(q) && kvswap_req_status(q) == -ECANCELED &&
	   kvswap_req_entry_status(q, 0) == -ECANCELED &&
	   kvswap_wait_group(NULL, q, 0, 0) == -ECANCELED,
	   "closed under it: the request is done, its entries and groups "
	   "-ECANCELED, the handle still valid");
	kvswap_req_free(q);
	free(out);
	free(in);
}

int main(void)
{
	int r;

	harness_init("test-batch");
	rng_init(&rng, harness_seed());
	r = harness_start(&(struct harness_opts){ .store_size = 512 * MiB }, &d);
	if (r < 0)
		bail_out("cannot start kvswapd (see above)");
	if (harness_connect(d, &k) < 0 ||
	    kvswap_region_create(k, REGION, &src_r) < 0 ||
	    kvswap_region_create(k, REGION, &dst_r) < 0)
		bail_out("connect and regions: %s", kvswap_last_error(k));
	src = kvswap_region_addr(src_r);
	dst = kvswap_region_addr(dst_r);
	rng_fill(&rng, src, REGION);

	test_round_trip();
	test_groups();
	test_entry_errors();
	test_if_absent_race();
	test_cancel();
	test_damage();
	test_split();
	test_reply_split();
	test_cork_and_v1();
	test_lifetime();

	ok(harness_alive(d), "daemon still running");
	kvswap_region_release(k, dst_r);
	kvswap_region_release(k, src_r);
	kvswap_close(k);
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
	done_testing();
}
