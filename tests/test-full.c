/* SPDX-License-Identifier: MIT */
/*
 * A small store filled up: SwapOut fails with ENOSPC and a message once
 * the space is gone (and not before), a failed SwapOut allocates nothing,
 * what was stored still reads back byte-exact, deleted space is reused,
 * fragmented free space still holds a large segment. Then a store of
 * several files: every file is opened with O_DIRECT, entries spread over
 * the files and read back exactly.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "harness.h"
#include "tap.h"

#define CANARY		0xa5
#define ENTRY		(1 * MiB)
#define WAIT_MS		60000

static uint64_t seed;

struct store {
	struct harness *d;
	struct kvswap *k;
	struct kvswap_region *src, *dst;
	uint8_t *s, *t;
	size_t size;			/* of each region */
	uint64_t cap;
};

static void store_open(struct store *st, const struct harness_opts *o,
		       size_t region)
{
	/*
	 * These checks fill the whole store, pinned: one tenant, with no
	 * quota short of the store (the quotas are test-tenant's).
	 */
	static const char *const whole_store[] = { "--tenant-max-pinned=100%",
						   "--tenant-max-leased=100%",
						   NULL };
	struct harness_opts opts = *o;
	int r;

	memset(st, 0, sizeof(*st));
	if (!opts.extra_args)
		opts.extra_args = whole_store;
	if (harness_start(&opts, &st->d) < 0 || harness_connect(st->d, &st->k) < 0)
		bail_out("cannot start kvswapd");
	st->cap = kvswap_limits(st->k)->capacity;
	st->size = region;
	r = kvswap_region_create(st->k, region, &st->src);
	if (r == 0)
		r = kvswap_region_create(st->k, region, &st->dst);
	if (r < 0)
		bail_out("regions: %s: %s", strerror(-r),
			 kvswap_last_error(st->k));
	st->s = kvswap_region_addr(st->src);
	st->t = kvswap_region_addr(st->dst);
}

static void store_close(struct store *st, const char *what)
{
	kvswap_region_release(st->k, st->dst);
	kvswap_region_release(st->k, st->src);
	kvswap_close(st->k);
	is_int(harness_stop(st->d), 0, "%s: kvswapd exits 0 on SIGTERM", what);
	harness_free(st->d);
}

/*
 * Entries here are pinned: this test is about a store full of data that
 * may not be evicted (test-evict covers eviction).
 */
static int put_pinned(struct kvswap *k, const void *key, size_t key_len,
		      struct kvswap_region *r, const struct kvswap_seg_out *segs,
		      uint32_t nseg, const void *meta, size_t meta_len)
{
	struct kvswap_req *q;
	int ret;

	ret = kvswap_swap_out(k, key, key_len, r, segs, nseg, meta, meta_len,
			      KVSWAP_PINNED, &q);
	if (ret < 0)
		return ret;
	ret = kvswap_wait(k, q, -1);
	kvswap_req_free(q);
	return ret;
}

/* Entry i: ENTRY bytes in two segments, the second not block-sized. */
static const struct kvswap_seg_out entry_segs[2] = {
	{ .offset = 0, .length = ENTRY / 2 },
	{ .offset = ENTRY / 2, .length = ENTRY / 2 - 100 },
};
static const struct kvswap_seg_in entry_in[2] = {
	{ .index = 0, .offset = 0 },
	{ .index = 1, .offset = ENTRY / 2 },
};
#define ENTRY_BYTES (ENTRY - 100)

static int put_entry(struct store *st, unsigned i)
{
	char key[32];

	snprintf(key, sizeof(key), "fill-%u", i);
	fill_seeded(st->s, ENTRY_BYTES, seed ^ i);
	return put_pinned(st->k, key, strlen(key), st->src, entry_segs, 2,
			  &i, sizeof(i));
}

/* Reads entry i back and compares it with its data. */
static bool entry_ok(struct store *st, unsigned i)
{
	char key[32];
	int r;

	snprintf(key, sizeof(key), "fill-%u", i);
	memset(st->t, CANARY, ENTRY);
	r = kvswap_get(st->k, key, strlen(key), st->dst, entry_in, 2);
	if (r < 0) {
		diag("get %s: %s: %s", key, strerror(-r),
		     kvswap_last_error(st->k));
		return false;
	}
	fill_seeded(st->s, ENTRY_BYTES, seed ^ i);
	if (memcmp(st->t, st->s, ENTRY_BYTES)) {
		diag("get %s: data differs", key);
		return false;
	}
	if (mem_first_not(st->t + ENTRY_BYTES, 100, CANARY) != 100) {
		diag("get %s: wrote past the end of its last segment", key);
		return false;
	}
	return true;
}

static int delete_entry(struct store *st, unsigned i)
{
	char key[32];

	snprintf(key, sizeof(key), "fill-%u", i);
	return kvswap_delete(st->k, key, strlen(key));
}

static void test_fill(void)
{
	struct store st;
	struct kvswap_stat s0, s1, s2;
	struct kvswap_entry e;
	struct kvswap_seg_out seg;
	uint64_t max_entries, per_entry;
	unsigned n = 0, bad = 0;
	int r;

	store_open(&st, &(struct harness_opts){ .store_size = 32 * MiB },
		   40 * MiB);
	ok(st.cap > 24 * MiB && st.cap <= 32 * MiB,
	   "32 MiB store: capacity %" PRIu64, st.cap);
	kvswap_stat(st.k, &s0);
	is_uint(s0.used, 0, "empty store: nothing used");

	/* Larger than the whole store: refused, and nothing is left held. */
	seg = (struct kvswap_seg_out){ 0, round_up(st.cap, 4096) + 4096 };
	r = put_pinned(st.k, "huge", 4, st.src, &seg, 1, NULL, 0);
	is_int(r, -ENOSPC, "an entry larger than the store: ENOSPC");
	ok(*kvswap_last_error(st.k), "ENOSPC comes with a message: \"%s\"",
	   kvswap_last_error(st.k));
	kvswap_stat(st.k, &s1);
	is_uint(s1.used, 0, "the refused entry left no space allocated");
	is_int(kvswap_describe(st.k, "huge", 4, &e), -ENOENT,
	       "the refused entry does not exist");

	/* Fill with 1 MiB entries until ENOSPC. */
	max_entries = st.cap / ENTRY + 2;
	for (;;) {
		r = put_entry(&st, n);
		if (r < 0 || n > max_entries)
			break;
		n++;
	}
	if (!is_int(r, -ENOSPC, "filling: SwapOut fails with ENOSPC after %u entries",
		    n))
		diag("last error: %s", kvswap_last_error(st.k));
	ok(strlen(kvswap_last_error(st.k)) > 0,
	   "filling: the ENOSPC has a message: \"%s\"",
	   kvswap_last_error(st.k));
	ok(n >= st.cap / ENTRY - 1,
	   "filling: %u entries of 1 MiB fit in a capacity of %" PRIu64 " (no space lost)",
	   n, st.cap);
	kvswap_stat(st.k, &s1);
	is_uint(s1.entries, n, "filling: stat counts %u entries", n);
	ok(s1.used <= st.cap, "filling: used %" PRIu64 " <= capacity", s1.used);
	per_entry = n ? s1.used / n : 0;
	{
		char key[32];

		snprintf(key, sizeof(key), "fill-%u", n);
		is_int(kvswap_describe(st.k, key, strlen(key), &e), -ENOENT,
		       "filling: the refused entry does not exist");
	}

	/*
	 * Two segments, the first of which alone would fit in what is left:
	 * refused as a whole, and the first segment's space given back.
	 */
	{
		struct kvswap_seg_out two[2] = {
			{ .offset = 0, .length = st.cap - s1.used },
			{ .offset = 8 * MiB, .length = 2 * MiB },
		};

		if (two[0].length == 0)
			two[0].length = 1;
		r = put_pinned(st.k, "partial", 7, st.src, two, 2, NULL, 0);
		is_int(r, -ENOSPC, "a put whose second segment does not fit: ENOSPC");
		kvswap_stat(st.k, &s2);
		is_uint(s2.used, s1.used, "and it leaves nothing allocated");
	}

	for (unsigned i = 0; i < n; i++)
		bad += !entry_ok(&st, i);
	is_int(bad, 0, "a full store: all %u entries read back byte-exact", n);

	/* Deleted space is reused. */
	if (n < 8)
		bail_out("store too small to go on: %u entries", n);
	is_int(delete_entry(&st, 1), 0, "delete entry 1");
	is_int(delete_entry(&st, n / 2), 0, "delete entry %u", n / 2);
	is_int(delete_entry(&st, n - 1), 0, "delete entry %u", n - 1);
	kvswap_stat(st.k, &s2);
	is_uint(s2.used, s1.used - 3 * per_entry,
		"three deletes free three entries' space");
	r = 0;
	for (unsigned i = n; i < n + 3 && r == 0; i++)
		r = put_entry(&st, i);
	is_int(r, 0, "three new entries fit in the freed space");
	is_int(put_entry(&st, n + 3), -ENOSPC, "and then the store is full again");
	bad = 0;
	for (unsigned i = n; i < n + 3; i++)
		bad += !entry_ok(&st, i);
	bad += !entry_ok(&st, 0) + !entry_ok(&st, n - 2);
	is_int(bad, 0, "new and old entries read back byte-exact");

	/* Three separate 1 MiB holes hold one 3 MiB segment. */
	is_int(delete_entry(&st, 0) | delete_entry(&st, 2) |
	       delete_entry(&st, 4), 0, "delete entries 0, 2 and 4");
	seg = (struct kvswap_seg_out){ 0, 3 * ENTRY_BYTES };
	fill_seeded(st.s, seg.length, seed ^ 0x3333);
	r = put_pinned(st.k, "three", 5, st.src, &seg, 1, NULL, 0);
	if (!is_int(r, 0, "a 3 MiB segment fits in three separate 1 MiB holes"))
		diag("last error: %s", kvswap_last_error(st.k));
	if (r == 0) {
		struct kvswap_seg_in in = { 0, 0 };

		memset(st.t, CANARY, 4 * MiB);
		r = kvswap_get(st.k, "three", 5, st.dst, &in, 1);
		ok(r == 0 && memcmp(st.t, st.s, seg.length) == 0 &&
		   mem_first_not(st.t + seg.length, 4 * MiB - seg.length,
				 CANARY) == 4 * MiB - seg.length,
		   "and it reads back byte-exact");
		bad = !entry_ok(&st, 3) + !entry_ok(&st, 5);
		is_int(bad, 0, "its neighbours are intact");
		kvswap_delete(st.k, "three", 5);
	}

	for (unsigned i = 0; i < n + 3; i++)
		delete_entry(&st, i);
	kvswap_stat(st.k, &s2);
	is_uint(s2.entries, 0, "everything deleted: no entries");
	is_uint(s2.used, 0, "everything deleted: nothing used");
	store_close(&st, "32 MiB store");
}

/*
 * Whether the daemon has `path` open with O_DIRECT: looks for it among
 * /proc/PID/fd and reads the flags in /proc/PID/fdinfo.
 */
static int open_direct(pid_t pid, const char *path)
{
	char dir[64], link[PATH_MAX], want[PATH_MAX], info[PATH_MAX], buf[512];
	struct dirent *de;
	int found = -ENOENT;
	DIR *dp;

	if (!realpath(path, want))
		return -errno;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	dp = opendir(dir);
	if (!dp)
		return -errno;
	while ((de = readdir(dp))) {
		char fdpath[PATH_MAX];
		ssize_t n;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(fdpath, sizeof(fdpath), "%s/%s", dir, de->d_name);
		n = readlink(fdpath, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, want))
			continue;
		snprintf(info, sizeof(info), "/proc/%d/fdinfo/%s", (int)pid,
			 de->d_name);
		f = fopen(info, "re");
		if (!f)
			continue;
		while (fgets(buf, sizeof(buf), f)) {
			unsigned long flags;

			if (sscanf(buf, "flags: %lo", &flags) == 1) {
				if (flags & O_DIRECT)
					found = 1;
				else if (found != 1)
					found = 0;
			}
		}
		fclose(f);
	}
	closedir(dp);
	return found;
}

static void test_files(void)
{
	enum { FILES = 3 };
	struct store st;
	struct kvswap_stat s;
	struct kvswap_seg_out seg;
	struct kvswap_seg_in in = { 0, 0 };
	uint64_t largest = 0, stored = 0;
	unsigned n = 0, bad = 0;
	int r;

	store_open(&st, &(struct harness_opts){ .store_size = 16 * MiB,
					       .store_files = FILES },
		   40 * MiB);
	is_int(kvswap_limits(st.k)->store_files, FILES,
	       "%d store files: hello says so", FILES);
	kvswap_stat(st.k, &s);
	is_int(s.store_files, FILES, "%d store files: stat says so", FILES);
	for (unsigned i = 0; i < FILES; i++) {
		char path[PATH_MAX + 32];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/store%u.kvs", st.d->dir, i);
		if (stat(path, &sb) < 0)
			memset(&sb, 0, sizeof(sb));
		if (!ok(S_ISREG(sb.st_mode) && sb.st_size > 0,
			"store file %u exists (%lld bytes)", i,
			(long long)sb.st_size))
			continue;
		if ((uint64_t)sb.st_size > largest)
			largest = (uint64_t)sb.st_size;
		is_int(open_direct(st.d->pid, path), 1,
		       "store file %u is open with O_DIRECT", i);
	}
	diag("capacity %" PRIu64 " over %d files of at most %" PRIu64 " bytes",
	     st.cap, FILES, largest);

	/* Fill all but 2 MiB: more than any one file holds. */
	while (stored + ENTRY + 2 * MiB <= st.cap) {
		r = put_entry(&st, n);
		if (r < 0) {
			diag("put %u: %s: %s", n, strerror(-r),
			     kvswap_last_error(st.k));
			break;
		}
		n++;
		stored += ENTRY_BYTES;
	}
	ok(stored > largest,
	   "%u entries, %" PRIu64 " bytes stored: more than one file holds", n,
	   stored);
	for (unsigned i = 0; i < n; i++)
		bad += !entry_ok(&st, i);
	is_int(bad, 0, "all %u entries across the files read back byte-exact", n);
	for (unsigned i = 0; i < n; i++)
		delete_entry(&st, i);

	/* One segment larger than any single file. */
	seg = (struct kvswap_seg_out){ 0, largest + 12345 };
	if (seg.length + 1 * MiB < st.cap && seg.length <= st.size) {
		fill_seeded(st.s, seg.length, seed ^ 0x5e9);
		r = put_pinned(st.k, "wide", 4, st.src, &seg, 1, NULL, 0);
		if (!is_int(r, 0, "a segment larger than one store file is stored"))
			diag("last error: %s", kvswap_last_error(st.k));
		memset(st.t, CANARY, seg.length + 4096);
		r = kvswap_get(st.k, "wide", 4, st.dst, &in, 1);
		ok(r == 0 && memcmp(st.t, st.s, seg.length) == 0 &&
		   mem_first_not(st.t + seg.length, 4096, CANARY) == 4096,
		   "and reads back byte-exact");
		kvswap_delete(st.k, "wide", 4);
	} else {
		skip("capacity %" PRIu64 " too small for a segment over one file",
		     st.cap);
	}
	kvswap_stat(st.k, &s);
	is_uint(s.used, 0, "%d store files: nothing used at the end", FILES);
	store_close(&st, "3-file store");
}

int main(void)
{
	harness_init("test-full");
	seed = harness_seed();
	test_fill();
	test_files();
	done_testing();
}
