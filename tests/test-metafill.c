/* SPDX-License-Identifier: MIT */
/*
 * The metadata log's capacity against the real daemon. A checkpoint must
 * hold the record of every entry (key, metadata, segments, extents) in one
 * log half; entries with large keys and metadata and little data reach
 * that long before the data area is full.
 *
 * 1. Metadata fill: 1 KiB keys, 4 KiB metadata, 4 KiB of data, durable and
 *    cache swap-outs in turn, until ENOSPC. The refusal names the metadata
 *    log and comes exactly where Stat's checkpoint_bytes would pass
 *    checkpoint_limit, with the data area nearly empty; then swap-ins,
 *    lookups, deletes, replaces of existing keys (bounded waits) and Stat
 *    keep working, deletes make room again, SIGTERM exits 0 (its
 *    checkpoint fits), and after a restart every acknowledged entry is
 *    there byte-exact, data and metadata.
 * 2. Data fills first: small keys, 1 MiB pinned entries: the ordinary
 *    "store is full" ENOSPC, no metadata refusal, a replace that cannot get
 *    room fails at once.
 * 3. Both at once: entries sized so that data and metadata run out
 *    together, evictable; replaces of existing keys, durable and cache,
 *    each answered within a bound; every entry present after a restart
 *    holds its last acknowledged version.
 * 4. The fill again with 64 swap-outs in flight at a time: refusals only,
 *    no failed checkpoint, every acknowledged entry back after a restart.
 * 5. libkvswap's ABI: kvswap_stat@KVSWAP_0, what programs built before the
 *    log's fields call, writes no byte past the old struct.
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define STORE		(64 * MiB)
#define REGION		(2 * MiB)
#define KEY_MAX		1024
#define META_MAX	4096
#define MAX_KEYS	4096
/* No request may take longer than this: a wait past it is a hang. */
#define BOUND_MS	15000
/*
 * PUT record of one segment, one extent (docs/STORE_FORMAT.md). Format
 * 4 stores the composite key: this process's tenant "uid-<uid>", a NUL,
 * then the key.
 */
#define REC(key, meta)	(16 + tenant_prefix() + (key) + (meta) + 16 + 16)

static uint64_t tenant_prefix(void)
{
	char name[32];

	return (uint64_t)snprintf(name, sizeof(name), "uid-%u",
				  (unsigned)getuid()) + 1;
}

/* The eviction and fill checks pin the whole store: no tenant quota. */
static const char *const whole_store[] = { "--tenant-max-pinned=100%",
					   "--tenant-max-leased=100%", NULL };

static uint64_t seed;

struct mf {
	struct harness *d;
	struct kvswap *k;
	struct kvswap_region *src, *dst;
	uint8_t *s, *t;
	uint64_t cap;
	/* The model: what each key holds, 0: absent. */
	uint32_t ver[MAX_KEYS];
	uint32_t size;		/* data bytes of every entry */
	uint32_t key_len;
	uint32_t meta_len;
	uint32_t flags;		/* KVSWAP_PINNED or 0 */
};

static void key_of(const struct mf *m, unsigned i, uint8_t *buf)
{
	int n = snprintf((char *)buf, KEY_MAX, "mf-%u-", i);

	for (uint32_t j = (uint32_t)n; j < m->key_len; j++)
		buf[j] = (uint8_t)('a' + (i * 7 + j) % 26);
}

static uint64_t data_seed(unsigned i, uint32_t ver)
{
	return seed ^ ((uint64_t)i << 20) ^ ((uint64_t)ver << 44);
}

static void mf_open(struct mf *m, const char *store, uint32_t key_len,
		    uint32_t meta_len, uint32_t size, uint32_t flags)
{
	struct harness_opts o = { .store_size = STORE, .store = store,
				  .extra_args = whole_store };
	int r;

	memset(m, 0, sizeof(*m));
	m->key_len = key_len;
	m->meta_len = meta_len;
	m->size = size;
	m->flags = flags;
	if (harness_start(&o, &m->d) < 0 || harness_connect(m->d, &m->k) < 0)
		bail_out("cannot start kvswapd");
	m->cap = kvswap_limits(m->k)->capacity;
	r = kvswap_region_create(m->k, REGION, &m->src);
	if (r == 0)
		r = kvswap_region_create(m->k, REGION, &m->dst);
	if (r < 0)
		bail_out("regions: %s: %s", strerror(-r),
			 kvswap_last_error(m->k));
	m->s = kvswap_region_addr(m->src);
	m->t = kvswap_region_addr(m->dst);
}

/* Stops the daemon (SIGTERM, exit 0 checked); the model stays. */
static void mf_stop(struct mf *m, const char *what)
{
	kvswap_region_release(m->k, m->dst);
	kvswap_region_release(m->k, m->src);
	kvswap_close(m->k);
	m->k = NULL;
	is_int(harness_stop(m->d), 0, "%s: kvswapd exits 0 on SIGTERM (its "
	       "checkpoint fits)", what);
	{
		static char log[1 << 20];

		ok(harness_read_log(m->d, log, sizeof(log)) >= 0 &&
		   !strstr(log, "does not fit") && !strstr(log, "journal:"),
		   "%s: no checkpoint or commit failed", what);
	}
}

/* The same store again, with the model of the stopped daemon. */
static void mf_restart(struct mf *m)
{
	struct mf next;

	mf_open(&next, m->d->store, m->key_len, m->meta_len, m->size, m->flags);
	memcpy(next.ver, m->ver, sizeof(next.ver));
	harness_free(m->d);
	*m = next;
}

static struct kvswap_stat mf_stat(struct mf *m)
{
	struct kvswap_stat s;
	int r = kvswap_stat(m->k, &s);

	if (r < 0)
		bail_out("stat: %s: %s", strerror(-r), kvswap_last_error(m->k));
	return s;
}

/*
 * Swap-out of key i as version ver, durable or cache, waiting BOUND_MS at
 * most: -ETIMEDOUT means the daemon left it unanswered. The model follows
 * what was acknowledged.
 */
static int put_start(struct mf *m, unsigned i, uint32_t ver, bool durable,
		     unsigned slot, struct kvswap_req **ret)
{
	uint8_t key[KEY_MAX], meta[META_MAX];
	struct kvswap_seg_out seg = { (uint64_t)slot * m->size, m->size };

	if (i >= MAX_KEYS || seg.offset + seg.length > REGION)
		bail_out("test bug: key %u, slot %u", i, slot);
	key_of(m, i, key);
	fill_seeded(meta, m->meta_len, data_seed(i, ver) ^ 0x6d657461);
	fill_seeded(m->s + seg.offset, m->size, data_seed(i, ver));
	return kvswap_swap_out(m->k, key, m->key_len, m->src, &seg, 1, meta,
			       m->meta_len, m->flags | (durable ? KVSWAP_DURABLE :
							KVSWAP_CACHE), ret);
}

static int put_end(struct mf *m, unsigned i, uint32_t ver,
		   struct kvswap_req *q)
{
	int r = kvswap_wait(m->k, q, BOUND_MS);

	kvswap_req_free(q);
	if (r == 0)
		m->ver[i] = ver;
	return r;
}

static int put(struct mf *m, unsigned i, uint32_t ver, bool durable)
{
	struct kvswap_req *q;
	int r = put_start(m, i, ver, durable, 0, &q);

	return r < 0 ? r : put_end(m, i, ver, q);
}

static int del(struct mf *m, unsigned i)
{
	uint8_t key[KEY_MAX];
	int r;

	key_of(m, i, key);
	r = kvswap_delete(m->k, key, m->key_len);
	if (r == 0)
		m->ver[i] = 0;
	return r;
}

/*
 * Whether key i reads back as the model says: its data and metadata
 * byte-exact, or absent (want 0). With `evicted`, an absent entry is fine
 * too (counted there): eviction may take it.
 */
static bool entry_ok(struct mf *m, unsigned i, uint32_t want,
		     unsigned *evicted)
{
	uint8_t key[KEY_MAX], meta[META_MAX];
	struct kvswap_seg_in in = { 0, 0 };
	struct kvswap_req *q;
	const void *got;
	size_t len;
	bool good;
	int r;

	key_of(m, i, key);
	memset(m->t, 0x5a, m->size);
	r = kvswap_swap_in(m->k, key, m->key_len, m->dst, &in, 1, &q);
	if (r == 0)
		r = kvswap_wait(m->k, q, BOUND_MS);
	if (r == -ENOENT && (!want || evicted)) {
		if (want)
			(*evicted)++;
		kvswap_req_free(q);
		return true;
	}
	if (r < 0 || !want) {
		diag("key %u: swap-in %s (%s), expected %s", i, strerror(-r),
		     r < 0 ? kvswap_last_error(m->k) : "",
		     want ? "its data" : "no entry");
		kvswap_req_free(q);
		return false;
	}
	fill_seeded(m->s, m->size, data_seed(i, want));
	fill_seeded(meta, m->meta_len, data_seed(i, want) ^ 0x6d657461);
	got = kvswap_req_metadata(q, &len);
	good = !memcmp(m->t, m->s, m->size) && len == m->meta_len &&
	       (!len || !memcmp(got, meta, len));
	if (!good) {
		/* An older version served would be as wrong as garbage. */
		for (uint32_t v = 1; v < want; v++) {
			fill_seeded(m->s, m->size, data_seed(i, v));
			if (!memcmp(m->t, m->s, m->size))
				diag("key %u: version %u served, not %u", i, v,
				     want);
		}
		diag("key %u: data or metadata differ", i);
	}
	kvswap_req_free(q);
	return good;
}

/* Every key in the model reads back as it says; returns the failures. */
static unsigned check_all(struct mf *m, unsigned nkeys, unsigned *evicted)
{
	unsigned bad = 0;

	for (unsigned i = 0; i < nkeys; i++)
		bad += !entry_ok(m, i, m->ver[i], evicted);
	return bad;
}

static bool lookup_present(struct mf *m, unsigned i)
{
	uint8_t key[KEY_MAX];
	const void *keys[1] = { key };
	size_t lens[1] = { m->key_len };
	bool present = false;

	key_of(m, i, key);
	return kvswap_lookup(m->k, keys, lens, 1, &present) >= 0 && present;
}

static void test_metadata_fill(void)
{
	const uint64_t rec = REC(KEY_MAX, META_MAX);
	struct kvswap_stat s0, s1, s2;
	const char *err;
	unsigned n = 0, nkeys, bad;
	uint64_t t0;
	int r = 0;
	struct mf m;

	diag("1. metadata fill: %u-byte keys, %u-byte metadata, 4 KiB entries",
	     KEY_MAX, META_MAX);
	mf_open(&m, NULL, KEY_MAX, META_MAX, 4096, 0);
	s0 = mf_stat(&m);
	is_uint(s0.log_half_bytes, STORE / 32, "stat: log_half_bytes is 1/32 "
		"of the store file: %" PRIu64, s0.log_half_bytes);
	ok(s0.checkpoint_limit > 0 && s0.checkpoint_limit <= s0.log_half_bytes / 2,
	   "stat: checkpoint_limit %" PRIu64 " is at most half a half",
	   s0.checkpoint_limit);
	is_uint(s0.checkpoint_bytes, 0, "stat: an empty index needs no record");
	is_uint(s0.metadata_refusals, 0, "stat: no refusal yet");
	ok(s0.log_bytes_used % 4096 == 0 && s0.log_bytes_used < s0.log_half_bytes,
	   "stat: log_bytes_used %" PRIu64 " (startup checkpoint), whole blocks",
	   s0.log_bytes_used);

	for (n = 0; n < MAX_KEYS; n++) {
		r = put(&m, n, 1, n % 2 == 0);
		if (r < 0)
			break;
	}
	err = kvswap_last_error(m.k);
	if (!is_int(r, -ENOSPC, "filling: ENOSPC after %u entries", n))
		diag("last error: %s", err);
	ok(strstr(err, "metadata log is full") && strstr(err, "store0.kvs") &&
	   strstr(err, "delete entries"),
	   "the refusal names the metadata log and its file: \"%s\"", err);
	s1 = mf_stat(&m);
	diag("refused at %u entries; data used %" PRIu64 " of %" PRIu64
	     " bytes (%.2f%%); checkpoint %" PRIu64 " of %" PRIu64 " bytes",
	     n, s1.used, s1.capacity, 100.0 * (double)s1.used /
	     (double)s1.capacity, s1.checkpoint_bytes, s1.checkpoint_limit);
	ok(s1.used < s1.capacity / 10, "the data area is not full (%.2f%% used)",
	   100.0 * (double)s1.used / (double)s1.capacity);
	is_uint(s1.checkpoint_bytes, n * rec, "stat: checkpoint_bytes is %u "
		"records of %" PRIu64 " bytes", n, rec);
	is_uint(n, s1.checkpoint_limit / rec, "refused exactly when the next "
		"record would pass checkpoint_limit");
	is_uint(s1.metadata_refusals, 1, "stat: metadata_refusals counts it");
	ok(s1.log_bytes_used <= s1.log_half_bytes,
	   "stat: log_bytes_used %" PRIu64 " within the half", s1.log_bytes_used);
	is_uint(s1.entries, n, "stat: %u entries", n);

	is_int(put(&m, n, 1, false), -ENOSPC, "a cache swap-out is refused too");
	is_uint(mf_stat(&m).metadata_refusals, 2, "stat: metadata_refusals 2");

	/* Everything else keeps working. */
	bad = check_all(&m, n + 1, NULL);
	is_int(bad, 0, "swap-ins: all %u entries byte-exact, data and metadata",
	       n);
	ok(lookup_present(&m, 0) && lookup_present(&m, n - 1) &&
	   !lookup_present(&m, n), "lookups answer");

	/* A replace of the same size needs no more room: it completes. */
	t0 = mono_ms();
	r = put(&m, 3, 2, true);
	is_int(r, 0, "a durable replace of an existing key completes "
	       "(%" PRIu64 " ms)", mono_ms() - t0);
	t0 = mono_ms();
	r = put(&m, 4, 2, false);
	is_int(r, 0, "a cache replace of an existing key completes (%" PRIu64
	       " ms)", mono_ms() - t0);
	ok(entry_ok(&m, 3, m.ver[3], NULL) && entry_ok(&m, 4, m.ver[4], NULL),
	   "the replaced entries read back as their new versions");

	/*
	 * Commits at a full index: each durable replace appends two blocks,
	 * so the live half passes three quarters again and again. Every
	 * checkpoint succeeds and leaves at least a quarter of the half.
	 */
	s1 = mf_stat(&m);
	{
		uint64_t after_ck = 0, cks = s1.checkpoints;
		unsigned fails = 0;

		for (uint32_t v = 3; v < 3 + 150; v++) {
			fails += put(&m, 5, v, true) != 0;
			s2 = mf_stat(&m);
			if (s2.checkpoints > cks && s2.log_bytes_used > after_ck)
				after_ck = s2.log_bytes_used;
			cks = s2.checkpoints;
		}
		is_int(fails, 0, "150 durable replaces at a full index succeed");
		ok(s2.checkpoints >= s1.checkpoints + 2, "with %" PRIu64
		   " checkpoints", s2.checkpoints - s1.checkpoints);
		ok(after_ck && after_ck + s2.log_half_bytes / 4 <=
			       s2.log_half_bytes * 3 / 4 + 2 * 4096,
		   "each leaves a quarter of the half for commits (largest "
		   "%" PRIu64 " of %" PRIu64 " bytes)", after_ck,
		   s2.log_half_bytes);
		is_uint(s2.metadata_refusals, s1.metadata_refusals,
			"none refused");
	}

	/* Deletes work and make room for as many records. */
	s1 = mf_stat(&m);
	r = 0;
	for (unsigned i = 10; i < 20; i++)
		r |= del(&m, i);
	is_int(r, 0, "ten durable deletes succeed while the log is full");
	s2 = mf_stat(&m);
	is_uint(s2.checkpoint_bytes, s1.checkpoint_bytes - 10 * rec,
		"stat: checkpoint_bytes drops by ten records");
	r = 0;
	nkeys = n;
	for (unsigned i = 0; i < 10 && r == 0; i++)
		r = put(&m, nkeys++, 1, i % 2);
	is_int(r, 0, "ten new entries fit in their room");
	is_int(put(&m, nkeys, 1, true), -ENOSPC, "and then the log is full again");
	s2 = mf_stat(&m);
	is_uint(s2.metadata_refusals, 3, "stat: metadata_refusals 3");
	is_uint(s2.checkpoint_bytes, s1.checkpoint_bytes, "stat: checkpoint_bytes "
		"back where it was");
	{
		/* One commit: the live half grows, or a checkpoint restarts it. */
		struct kvswap_stat a = mf_stat(&m), b;

		r = del(&m, 20);
		b = mf_stat(&m);
		ok(r == 0 && (b.checkpoints > a.checkpoints ||
			      b.log_bytes_used >= a.log_bytes_used + 4096),
		   "stat: a durable delete's commit grows log_bytes_used "
		   "(%" PRIu64 " -> %" PRIu64 ") or checkpoints", a.log_bytes_used,
		   b.log_bytes_used);
	}
	s2 = mf_stat(&m);
	mf_stop(&m, "metadata full");

	mf_restart(&m);
	bad = check_all(&m, nkeys + 1, NULL);
	is_int(bad, 0, "after a restart every acknowledged entry (durable and "
	       "cache) is there byte-exact, no deleted one");
	s1 = mf_stat(&m);
	is_uint(s1.entries, s2.entries, "after a restart: %" PRIu64 " entries",
		s2.entries);
	is_uint(s1.checkpoint_bytes, s2.checkpoint_bytes,
		"after a restart: the same checkpoint_bytes");
	is_uint(s1.metadata_refusals, 0, "after a restart: metadata_refusals "
		"starts at 0");
	is_int(put(&m, nkeys + 1, 1, true), 0, "after a restart: one more fits "
	       "(the delete's room)");
	is_int(put(&m, nkeys + 2, 1, true), -ENOSPC, "and then the log is full");
	mf_stop(&m, "metadata full, restarted");
	harness_free(m.d);
}

static void test_data_first(void)
{
	struct kvswap_stat s;
	const char *err;
	unsigned n;
	uint64_t t0;
	int r = 0;
	struct mf m;

	diag("2. data fills first: 16-byte keys, no metadata, 1 MiB pinned "
	     "entries");
	mf_open(&m, NULL, 16, 0, 1 * MiB, KVSWAP_PINNED);
	for (n = 0; n < MAX_KEYS; n++) {
		r = put(&m, n, 1, n % 2 == 0);
		if (r < 0)
			break;
	}
	err = kvswap_last_error(m.k);
	is_int(r, -ENOSPC, "filling: ENOSPC after %u entries", n);
	ok(strstr(err, "store is full") && !strstr(err, "metadata"),
	   "the ordinary \"store is full\" refusal: \"%s\"", err);
	s = mf_stat(&m);
	ok(s.used + 1 * MiB > s.capacity, "the data area is full");
	is_uint(s.metadata_refusals, 0, "stat: no metadata refusal");
	ok(s.checkpoint_bytes < s.checkpoint_limit / 10,
	   "stat: checkpoint_bytes %" PRIu64 " far below its limit",
	   s.checkpoint_bytes);
	t0 = mono_ms();
	r = put(&m, 2, 2, true);
	ok(r == -ENOSPC && mono_ms() - t0 < BOUND_MS,
	   "a replace that cannot get room fails promptly: %s (%" PRIu64 " ms)",
	   strerror(-r), mono_ms() - t0);
	is_int(check_all(&m, n + 1, NULL), 0, "every entry reads back");
	is_int(del(&m, 0), 0, "a delete works");
	is_int(put(&m, 2, 2, false), 0, "and its room takes the replace");
	mf_stop(&m, "data full");
	mf_restart(&m);
	is_int(check_all(&m, n + 1, NULL), 0, "after a restart every entry "
	       "is there byte-exact");
	mf_stop(&m, "data full, restarted");
	harness_free(m.d);
}

static void test_both_full(void)
{
	const uint64_t rec = REC(KEY_MAX, META_MAX);
	struct kvswap_stat s;
	unsigned n, evicted = 0, slow = 0, failed = 0, other = 0;
	uint64_t worst = 0;
	struct rng rng;
	uint32_t size;
	int r = 0;
	struct mf m;

	diag("3. data and metadata run out together, evictable entries");
	/* Probe the layout, then size entries so both fill at once. */
	mf_open(&m, NULL, KEY_MAX, META_MAX, 4096, 0);
	s = mf_stat(&m);
	size = (uint32_t)(s.capacity / (s.checkpoint_limit / rec) / 4096 * 4096);
	mf_stop(&m, "probe");
	harness_free(m.d);
	if (size < 4096 || size > REGION)
		bail_out("entry size %u does not suit this test", size);
	mf_open(&m, NULL, KEY_MAX, META_MAX, size, 0);
	diag("entries of %u bytes: %" PRIu64 " fit the data area, %" PRIu64
	     " the log", size, m.cap / size, s.checkpoint_limit / rec);
	for (n = 0; n < MAX_KEYS; n++) {
		r = put(&m, n, 1, n % 2 == 0);
		if (r < 0)
			break;
	}
	s = mf_stat(&m);
	diag("first refusal at %u entries: %s; data %.1f%% used, checkpoint "
	     "%" PRIu64 " of %" PRIu64, n, kvswap_last_error(m.k),
	     100.0 * (double)s.used / (double)s.capacity, s.checkpoint_bytes,
	     s.checkpoint_limit);
	is_int(r, -ENOSPC, "filling: ENOSPC after %u entries", n);

	/* Replaces of random existing keys: each answered within the bound. */
	rng_init(&rng, seed ^ 0x7265706c);
	for (unsigned k = 0; k < 60; k++) {
		unsigned i = (unsigned)rng_range(&rng, 0, n - 1);
		uint64_t t0 = mono_ms(), ms;

		r = put(&m, i, m.ver[i] + 1, k % 2 == 0);
		ms = mono_ms() - t0;
		worst = ms > worst ? ms : worst;
		slow += r == -ETIMEDOUT;
		failed += r == -ENOSPC;
		other += r != 0 && r != -ENOSPC && r != -ETIMEDOUT;
		if (r == -ETIMEDOUT)
			diag("replace of key %u: no answer in %d ms", i, BOUND_MS);
		else if (r < 0 && r != -ENOSPC)
			diag("replace of key %u: %s: %s", i, strerror(-r),
			     kvswap_last_error(m.k));
	}
	is_int(slow, 0, "60 replaces of existing keys: none left unanswered "
	       "(%u refused, slowest %" PRIu64 " ms)", failed, worst);
	is_int(other, 0, "and none failed otherwise");
	ok(harness_alive(m.d), "the daemon keeps serving");
	s = mf_stat(&m);
	mf_stop(&m, "both full");
	mf_restart(&m);
	is_int(check_all(&m, n, &evicted), 0, "after a restart every entry "
	       "present holds its last acknowledged version");
	ok(evicted <= s.evictions, "absent ones (%u) were evicted (%" PRIu64 ")",
	   evicted, s.evictions);
	mf_stop(&m, "both full, restarted");
	harness_free(m.d);
}

/*
 * Many swap-outs in flight at once while the log fills: records queued
 * and reservations count against the room too (-EAGAIN waits inside the
 * daemon), and no checkpoint may fail whatever the interleaving.
 */
static void test_concurrent_fill(void)
{
	enum { BATCH = 64 };
	struct kvswap_req *q[BATCH];
	struct kvswap_stat s;
	unsigned n = 0, acked = 0, refused = 0, other = 0;
	struct mf m;

	diag("4. metadata fill, %d swap-outs in flight at a time", BATCH);
	mf_open(&m, NULL, KEY_MAX, META_MAX, 4096, 0);
	while (refused < BATCH && n + BATCH <= MAX_KEYS) {
		refused = 0;
		for (unsigned b = 0; b < BATCH; b++)
			if (put_start(&m, n + b, 1, b % 3 == 0, b, &q[b]) < 0)
				bail_out("swap_out: %s", kvswap_last_error(m.k));
		for (unsigned b = 0; b < BATCH; b++) {
			int r = put_end(&m, n + b, 1, q[b]);

			acked += r == 0;
			refused += r == -ENOSPC;
			if (r < 0 && r != -ENOSPC && other++ < 5)
				diag("key %u: %s: %s", n + b, strerror(-r),
				     kvswap_last_error(m.k));
		}
		n += BATCH;
	}
	s = mf_stat(&m);
	diag("%u acknowledged, then a batch all refused; checkpoint %" PRIu64
	     " of %" PRIu64 " bytes", acked, s.checkpoint_bytes,
	     s.checkpoint_limit);
	is_int(other, 0, "every swap-out succeeded or got ENOSPC");
	ok(refused == BATCH && s.checkpoint_bytes <= s.checkpoint_limit &&
	   s.checkpoint_bytes + s.checkpoint_limit / 8 > s.checkpoint_limit,
	   "the log filled to its limit (%u entries)", acked);
	is_uint(s.entries, acked, "stat: every acknowledged entry is there");
	mf_stop(&m, "concurrent fill");
	mf_restart(&m);
	is_int(check_all(&m, n, NULL), 0, "after a restart every acknowledged "
	       "entry is there byte-exact, no refused one");
	mf_stop(&m, "concurrent fill, restarted");
	harness_free(m.d);
}

/* The shared library next to the daemon under test, as installed. */
static void test_abi(void)
{
	typedef int connect_fn(const char *, struct kvswap **);
	typedef void close_fn(struct kvswap *);
	typedef int stat_fn(struct kvswap *, struct kvswap_stat *);
	const char *bin = getenv("KVSWAPD") ? getenv("KVSWAPD") : "build/kvswapd";
	char dir[4096], path[4200];
	unsigned char buf[sizeof(struct kvswap_stat) + 64];
	const size_t old = offsetof(struct kvswap_stat, log_half_bytes);
	connect_fn *conn;
	close_fn *cls;
	stat_fn *v0, *v1;
	struct kvswap *k = NULL;
	struct kvswap_stat s;
	struct harness *d;
	void *h;

	diag("5. libkvswap.so: kvswap_stat of KVSWAP_0 and KVSWAP_0.1");
	snprintf(dir, sizeof(dir), "%s", bin);
	snprintf(path, sizeof(path), "%s/libkvswap.so.0", dirname(dir));
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		skip("dlopen %s: %s", path, dlerror());
		return;
	}
	conn = (connect_fn *)dlvsym(h, "kvswap_connect", "KVSWAP_0");
	cls = (close_fn *)dlvsym(h, "kvswap_close", "KVSWAP_0");
	v0 = (stat_fn *)dlvsym(h, "kvswap_stat", "KVSWAP_0");
	v1 = (stat_fn *)dlvsym(h, "kvswap_stat", "KVSWAP_0.1");
	if (!ok(conn && cls && v0 && v1, "%s exports kvswap_stat@KVSWAP_0 and "
		"@KVSWAP_0.1", path)) {
		dlclose(h);
		return;
	}
	if (harness_start(&(struct harness_opts){ .store_size = STORE }, &d) < 0 ||
	    conn(d->socket, &k) < 0)
		bail_out("cannot start kvswapd");
	memset(buf, 0xee, sizeof(buf));
	is_int(v0(k, (struct kvswap_stat *)(void *)buf), 0,
	       "kvswap_stat@KVSWAP_0 answers");
	is_uint(old, 160, "the KVSWAP_0 struct was 160 bytes");
	is_uint(mem_first_not(buf + old, sizeof(buf) - old, 0xee),
		sizeof(buf) - old, "and writes nothing past them");
	memset(&s, 0, sizeof(s));
	is_int(v1(k, &s), 0, "kvswap_stat@@KVSWAP_0.1 answers");
	is_uint(s.log_half_bytes, STORE / 32, "and fills the new fields "
		"(log_half_bytes %" PRIu64 ")", s.log_half_bytes);
	ok(!memcmp(buf, &s, offsetof(struct kvswap_stat, requests)),
	   "both fill the old fields alike");
	cls(k);
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
	dlclose(h);
}

int main(void)
{
	harness_init("test-metafill");
	seed = harness_seed();
	test_metadata_fill();
	test_data_first();
	test_both_full();
	test_concurrent_fill();
	test_abi();
	done_testing();
}
