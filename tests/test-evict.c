/* SPDX-License-Identifier: MIT */
/*
 * Eviction against the real daemon: LRU order (by swap-out time, refreshed
 * by SwapIn, not by Lookup), pinned entries never evicted, ENOSPC with a
 * message and nothing evicted when room cannot be made, and Lookup leases
 * that hold entries back from eviction until they expire.
 *
 * Each part runs its own daemon on a 32 MiB store, fills it with entries of
 * ENTRY bytes, then asks for more room than is free. Which entries are gone
 * is checked with Describe, and every survivor is read back byte-exact: an
 * eviction must never free the blocks of an entry that is still listed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define ENTRY		(2 * MiB)
#define SRC_REGION	(40 * MiB)	/* more than the whole store */
#define DST_REGION	(8 * MiB)
#define MAX_KEYS	64
#define CANARY		0x5a
#define LEASE_MS	1500

static uint64_t seed;

struct ctx {
	struct harness *d;
	struct kvswap *k;
	struct kvswap_region *src, *dst;
	uint8_t *s, *t;
	uint64_t cap;
	/* Size of every key put successfully; 0 if its put failed. */
	uint64_t size[MAX_KEYS];
	unsigned nkeys;
};

static void key_of(unsigned i, char *buf, size_t size)
{
	snprintf(buf, size, "evict-%u", i);
}

static void ctx_open(struct ctx *c)
{
	/*
	 * One tenant's eviction, pins and leases included: the per-tenant
	 * pinned and leased quotas (half the store each by default) are
	 * test-tenant's.
	 */
	static const char *const pin_all[] = { "--tenant-max-pinned=100%",
					       "--tenant-max-leased=100%", NULL };
	int r;

	memset(c, 0, sizeof(*c));
	if (harness_start(&(struct harness_opts){ .store_size = 32 * MiB,
						  .extra_args = pin_all },
			  &c->d) < 0 ||
	    harness_connect(c->d, &c->k) < 0)
		bail_out("cannot start kvswapd");
	c->cap = kvswap_limits(c->k)->capacity;
	r = kvswap_region_create(c->k, SRC_REGION, &c->src);
	if (r == 0)
		r = kvswap_region_create(c->k, DST_REGION, &c->dst);
	if (r < 0)
		bail_out("regions: %s: %s", strerror(-r),
			 kvswap_last_error(c->k));
	c->s = kvswap_region_addr(c->src);
	c->t = kvswap_region_addr(c->dst);
	if (c->cap / ENTRY < 6 || c->cap + 4096 > SRC_REGION)
		bail_out("capacity %" PRIu64 " does not suit this test", c->cap);
}

static void ctx_close(struct ctx *c, const char *what)
{
	kvswap_region_release(c->k, c->dst);
	kvswap_region_release(c->k, c->src);
	kvswap_close(c->k);
	is_int(harness_stop(c->d), 0, "%s: kvswapd exits 0 on SIGTERM", what);
	harness_free(c->d);
}

static struct kvswap_stat ctx_stat(struct ctx *c)
{
	struct kvswap_stat s;
	int r = kvswap_stat(c->k, &s);

	if (r < 0)
		bail_out("stat: %s: %s", strerror(-r), kvswap_last_error(c->k));
	return s;
}

/* Bytes still free, from Stat. */
static uint64_t free_bytes(struct ctx *c)
{
	struct kvswap_stat s = ctx_stat(c);

	return s.capacity - s.used;
}

/*
 * Puts a new key of `size` bytes (one segment) with KVSWAP_* `flags`; its
 * number goes to *ret_i (if not NULL) whether or not the put succeeds.
 */
static int put(struct ctx *c, uint64_t size, uint32_t flags, unsigned *ret_i)
{
	struct kvswap_seg_out seg = { 0, size };
	struct kvswap_req *q;
	unsigned i = c->nkeys;
	char key[32];
	int r;

	if (i >= MAX_KEYS || size > SRC_REGION)
		bail_out("test bug: key %u of %" PRIu64 " bytes", i, size);
	c->nkeys++;
	key_of(i, key, sizeof(key));
	fill_seeded(c->s, size, seed ^ ((uint64_t)i << 40));
	r = kvswap_swap_out(c->k, key, strlen(key), c->src, &seg, 1, &i,
			    sizeof(i), flags, &q);
	if (r == 0) {
		r = kvswap_wait(c->k, q, -1);
		kvswap_req_free(q);
	}
	if (r == 0)
		c->size[i] = size;
	if (ret_i)
		*ret_i = i;
	return r;
}

/* Whether key i is stored, by Describe (which does not refresh it). */
static bool present(struct ctx *c, unsigned i)
{
	struct kvswap_entry e;
	char key[32];
	int r;

	key_of(i, key, sizeof(key));
	r = kvswap_describe(c->k, key, strlen(key), &e);
	if (r == 0) {
		kvswap_entry_clear(&e);
		return true;
	}
	if (r != -ENOENT)
		diag("describe %s: %s: %s", key, strerror(-r),
		     kvswap_last_error(c->k));
	return false;
}

/* Reads key i back (a SwapIn: it refreshes the key) and compares. */
static bool intact(struct ctx *c, unsigned i)
{
	struct kvswap_seg_in in = { 0, 0 };
	uint64_t size = c->size[i];
	char key[32];
	int r;

	key_of(i, key, sizeof(key));
	if (size + 4096 > DST_REGION)
		bail_out("test bug: key %u of %" PRIu64 " bytes", i, size);
	memset(c->t, CANARY, size + 4096);
	r = kvswap_get(c->k, key, strlen(key), c->dst, &in, 1);
	if (r < 0) {
		diag("get %s: %s: %s", key, strerror(-r),
		     kvswap_last_error(c->k));
		return false;
	}
	fill_seeded(c->s, size, seed ^ ((uint64_t)i << 40));
	if (memcmp(c->t, c->s, size)) {
		size_t o = 0;

		while (c->t[o] == c->s[o])
			o++;
		diag("get %s: data differs from byte %zu on", key, o);
		return false;
	}
	if (mem_first_not(c->t + size, 4096, CANARY) != 4096) {
		diag("get %s: wrote past the end of the entry", key);
		return false;
	}
	return true;
}

/*
 * Checks that of the keys put successfully exactly those in the bitmap
 * `gone` are absent, and reads the others back byte-exact. Reading back
 * refreshes them, in key order.
 */
static void check_keys(struct ctx *c, uint64_t gone, const char *what)
{
	unsigned wrong = 0, bad = 0;

	for (unsigned i = 0; i < c->nkeys; i++) {
		bool want = c->size[i] && !(gone >> i & 1);
		bool have = present(c, i);

		if (want != have) {
			diag("%s: key %u %s", what, i,
			     want ? "is gone" : "is still stored");
			wrong++;
		}
	}
	is_int(wrong, 0, "%s: exactly the expected entries are gone", what);
	for (unsigned i = 0; i < c->nkeys; i++)
		if (c->size[i] && !(gone >> i & 1))
			bad += !intact(c, i);
	is_int(bad, 0, "%s: every surviving entry reads back byte-exact", what);
}

/* Puts n entries of ENTRY bytes with `flags`; returns how many went in. */
static unsigned fill(struct ctx *c, unsigned n, uint32_t flags)
{
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		int r = put(c, ENTRY, flags, NULL);

		if (r < 0) {
			diag("fill: put %u: %s: %s", i, strerror(-r),
			     kvswap_last_error(c->k));
			break;
		}
		done++;
	}
	return done;
}

static bool full_message(const char *msg)
{
	return strstr(msg, "store is full") && strstr(msg, "pinned");
}

/*
 * LRU order: swap-out time, refreshed by SwapIn, not by Lookup. Then a
 * request larger than the whole store evicts nothing.
 */
static void test_order(void)
{
	struct kvswap_seg_in in = { 0, 0 };
	struct kvswap_stat s0, s1;
	struct ctx c;
	uint64_t avail, need, gone;
	unsigned n, got, last;
	char k0[32], k1[32];
	const void *keys[1];
	size_t lens[1];
	int r;

	ctx_open(&c);
	n = (unsigned)(c.cap / ENTRY);
	got = fill(&c, n, 0);
	is_int(got, n, "order: %u evictable entries of %" PRIu64
	       " bytes fit in a capacity of %" PRIu64, n, ENTRY, c.cap);
	s0 = ctx_stat(&c);
	is_uint(s0.evictions, 0, "order: nothing evicted while there was room");
	is_uint(s0.entries, n, "order: stat counts %u entries", n);
	is_uint(s0.pinned, 0, "order: nothing pinned");

	/* Key 0, the oldest, is read: it becomes the most recent. */
	key_of(0, k0, sizeof(k0));
	r = kvswap_get(c.k, k0, strlen(k0), c.dst, &in, 1);
	is_int(r, 0, "order: swap in key 0 (the oldest) to refresh it");

	/* Key 1 is only looked up, without a lease: it stays the oldest. */
	key_of(1, k1, sizeof(k1));
	keys[0] = k1;
	lens[0] = strlen(k1);
	is_int(kvswap_lookup(c.k, keys, lens, 1, NULL), 1,
	       "order: a lookup (no lease) finds key 1");

	/* Room for one and a half entries more than is free: two must go. */
	avail = free_bytes(&c);
	need = round_up(avail + ENTRY + ENTRY / 2, 4096);
	r = put(&c, need, 0, &last);
	if (!is_int(r, 0, "order: a %" PRIu64 "-byte entry (%" PRIu64
		    " bytes free) is stored by evicting", need, avail))
		diag("error: %s", kvswap_last_error(c.k));
	s1 = ctx_stat(&c);
	is_uint(s1.evictions - s0.evictions, 2,
		"order: stat counts exactly 2 evictions");
	ok(!present(&c, 1) && !present(&c, 2),
	   "order: keys 1 and 2, the least recently used, were evicted");
	ok(present(&c, 0), "order: key 0, refreshed by its swap-in, survived");
	ok(present(&c, last), "order: the new entry is stored");
	is_uint(s1.entries, n - 1, "order: stat counts %u entries", n - 1);
	gone = 1u << 1 | 1u << 2;
	check_keys(&c, gone, "order");

	/* More than the whole capacity: refused, nothing evicted for it. */
	s0 = ctx_stat(&c);
	need = round_up(c.cap, 4096) + 4096;
	r = put(&c, need, 0, &last);
	is_int(r, -ENOSPC, "order: an entry of %" PRIu64
	       " bytes, more than the capacity %" PRIu64 ": ENOSPC", need, c.cap);
	ok(*kvswap_last_error(c.k), "order: with a message: \"%s\"",
	   kvswap_last_error(c.k));
	s1 = ctx_stat(&c);
	is_uint(s1.evictions, s0.evictions,
		"order: the impossible request evicted nothing");
	is_uint(s1.entries, s0.entries, "order: every entry is still there");
	check_keys(&c, gone, "order, after the impossible request");
	ctx_close(&c, "order");
}

/*
 * Pinned entries are never evicted: with one evictable entry among them,
 * that one goes, however new it is; a store whose space is pinned refuses
 * with ENOSPC and a message naming the pinned bytes, evicting nothing.
 */
static void test_pinned(void)
{
	struct kvswap_stat s0, s1;
	struct ctx c;
	uint64_t avail, need, gone, pinned;
	unsigned n, got, x, y, z, w;
	char key[32];
	int r;

	ctx_open(&c);
	n = (unsigned)(c.cap / ENTRY);
	got = fill(&c, n - 1, KVSWAP_PINNED);
	is_int(got, n - 1, "pinned: %u pinned entries stored", n - 1);
	pinned = (uint64_t)got * ENTRY;
	/* The only evictable entry, and the newest. */
	r = put(&c, ENTRY, 0, &x);
	is_int(r, 0, "pinned: one evictable entry, the newest");
	s0 = ctx_stat(&c);
	is_uint(s0.pinned, pinned, "pinned: stat reports %" PRIu64
		" pinned bytes", pinned);

	/* Needs half an entry more than is free: the evictable one goes. */
	avail = free_bytes(&c);
	need = round_up(avail + ENTRY / 2, 4096);
	r = put(&c, need, 0, &y);
	if (!is_int(r, 0, "pinned: a %" PRIu64 "-byte entry is stored by evicting",
		    need))
		diag("error: %s", kvswap_last_error(c.k));
	s1 = ctx_stat(&c);
	is_uint(s1.evictions - s0.evictions, 1,
		"pinned: stat counts exactly 1 eviction");
	ok(!present(&c, x), "pinned: the evictable entry was evicted although newest");
	gone = 1ull << x;
	check_keys(&c, gone, "pinned");
	is_uint(s1.pinned, pinned, "pinned: pinned bytes unchanged");

	/*
	 * More than all evictable entries (y) would free: ENOSPC, and y stays.
	 * Capacity minus pinned bytes plus one block.
	 */
	s0 = ctx_stat(&c);
	need = round_up(c.cap - pinned, 4096) + 4096;
	r = put(&c, need, 0, &z);
	is_int(r, -ENOSPC, "pinned: an entry of %" PRIu64
	       " bytes, more than capacity minus pinned: ENOSPC", need);
	ok(full_message(kvswap_last_error(c.k)),
	   "pinned: the message says the store is full of pinned data: \"%s\"",
	   kvswap_last_error(c.k));
	s1 = ctx_stat(&c);
	is_uint(s1.evictions, s0.evictions,
		"pinned: the impossible request evicted nothing");
	ok(present(&c, y), "pinned: the evictable entry is still there");
	check_keys(&c, gone, "pinned, after the impossible request");

	/* Now pin the rest: nothing is left to evict. */
	key_of(y, key, sizeof(key));
	is_int(kvswap_delete(c.k, key, strlen(key)), 0,
	       "pinned: delete the evictable entry");
	c.size[y] = 0;
	avail = free_bytes(&c);
	r = put(&c, avail, KVSWAP_PINNED, &w);
	if (!is_int(r, 0, "pinned: pin the remaining %" PRIu64 " bytes", avail))
		diag("error: %s", kvswap_last_error(c.k));
	s0 = ctx_stat(&c);
	is_uint(s0.used, s0.capacity, "pinned: the store is entirely used");
	is_uint(s0.pinned, pinned + avail, "pinned: and all of it pinned");
	r = put(&c, 4096, 0, &z);
	is_int(r, -ENOSPC, "pinned: a store full of pinned entries: ENOSPC");
	ok(full_message(kvswap_last_error(c.k)),
	   "pinned: with a message: \"%s\"", kvswap_last_error(c.k));
	r = put(&c, 4096, KVSWAP_PINNED, &z);
	is_int(r, -ENOSPC, "pinned: a pinned put into it: ENOSPC too");
	s1 = ctx_stat(&c);
	is_uint(s1.evictions, s0.evictions, "pinned: nothing evicted");
	is_uint(s1.entries, s0.entries, "pinned: every entry is still there");
	check_keys(&c, gone, "pinned, full of pinned entries");
	ctx_close(&c, "pinned");
}

/*
 * A Lookup lease keeps an entry from eviction even when it is the oldest;
 * once the lease has expired it is evicted like any other. A store whose
 * evictable entries are all leased refuses with ENOSPC.
 */
static void test_lease(void)
{
	struct kvswap_stat s0, s1;
	struct ctx c;
	uint64_t avail, need, t0, t1, elapsed, gone;
	unsigned n, got, z;
	char k0[32], k1[32], kmiss[] = "evict-none";
	const void *keys[MAX_KEYS];
	size_t lens[MAX_KEYS];
	char names[MAX_KEYS][32];
	bool pres[3];
	int r;

	ctx_open(&c);
	n = (unsigned)(c.cap / ENTRY);
	got = fill(&c, n, 0);
	is_int(got, n, "lease: %u evictable entries stored", n);

	key_of(0, k0, sizeof(k0));
	key_of(1, k1, sizeof(k1));
	keys[0] = k0;
	lens[0] = strlen(k0);
	keys[1] = kmiss;
	lens[1] = strlen(kmiss);
	is_int(kvswap_lookup_lease(c.k, keys, lens, 2, 60001, NULL), -EINVAL,
	       "lease: a lease over 60000 ms: EINVAL (\"%s\")",
	       kvswap_last_error(c.k));

	/*
	 * Lease key 0, the oldest entry. The lease starts between t0 and t1
	 * (the daemon uses CLOCK_MONOTONIC too): it surely holds until
	 * t0 + LEASE_MS and has surely run out at t1 + LEASE_MS.
	 */
	t0 = mono_ms();
	r = kvswap_lookup_lease(c.k, keys, lens, 2, LEASE_MS, pres);
	t1 = mono_ms();
	ok(r == 1 && pres[0] && !pres[1],
	   "lease: lookup with a %d ms lease finds key 0 (r %d)", LEASE_MS, r);

	s0 = ctx_stat(&c);
	avail = free_bytes(&c);
	need = round_up(avail + ENTRY / 2, 4096);
	r = put(&c, need, 0, NULL);
	elapsed = mono_ms() - t0;
	if (!is_int(r, 0, "lease: a %" PRIu64 "-byte entry is stored by evicting",
		    need))
		diag("error: %s", kvswap_last_error(c.k));
	s1 = ctx_stat(&c);
	is_uint(s1.evictions - s0.evictions, 1, "lease: exactly 1 eviction");
	if (elapsed < LEASE_MS) {
		ok(present(&c, 0), "lease: key 0, the oldest but leased, survived");
		ok(!present(&c, 1), "lease: key 1, the oldest unleased, was evicted");
	} else {
		skip("the put took %" PRIu64 " ms, longer than the lease", elapsed);
		skip("the put took %" PRIu64 " ms, longer than the lease", elapsed);
	}

	/* Once the lease has run out, key 0 is the first to go. */
	elapsed = mono_ms() - t1;
	if (elapsed < LEASE_MS + 50)
		usleep((useconds_t)(LEASE_MS + 50 - elapsed) * 1000);
	s0 = ctx_stat(&c);
	avail = free_bytes(&c);
	need = round_up(avail + ENTRY / 2, 4096);
	r = put(&c, need, 0, NULL);
	if (!is_int(r, 0, "lease: after the lease expired, another entry is stored"))
		diag("error: %s", kvswap_last_error(c.k));
	s1 = ctx_stat(&c);
	is_uint(s1.evictions - s0.evictions, 1, "lease: exactly 1 eviction");
	ok(!present(&c, 0), "lease: key 0, its lease expired, was evicted");
	ok(present(&c, 2), "lease: key 2, more recent, survived");
	gone = 1u << 0 | 1u << 1;
	check_keys(&c, gone, "lease");

	/* Every evictable entry leased: nothing can go, ENOSPC. */
	got = 0;
	for (unsigned i = 0; i < c.nkeys; i++) {
		if (!c.size[i] || (gone >> i & 1))
			continue;
		key_of(i, names[got], sizeof(names[got]));
		keys[got] = names[got];
		lens[got] = strlen(names[got]);
		got++;
	}
	r = kvswap_lookup_lease(c.k, keys, lens, got, 60000, NULL);
	is_int(r, got, "lease: lease all %u entries for 60 s", got);
	s0 = ctx_stat(&c);
	avail = free_bytes(&c);
	r = put(&c, round_up(avail + ENTRY / 2, 4096), 0, &z);
	is_int(r, -ENOSPC, "lease: all entries leased: ENOSPC");
	ok(strstr(kvswap_last_error(c.k), "store is full") != NULL,
	   "lease: with a message: \"%s\"", kvswap_last_error(c.k));
	s1 = ctx_stat(&c);
	is_uint(s1.evictions, s0.evictions, "lease: nothing evicted");
	check_keys(&c, gone, "lease, all leased");
	ctx_close(&c, "lease");
}

int main(void)
{
	harness_init("test-evict");
	seed = harness_seed();
	test_order();
	test_pinned();
	test_lease();
	done_testing();
}
