/* SPDX-License-Identifier: MIT */
/*
 * The store outlives the daemon: entries come back byte-exact, with their
 * layout, metadata and pinning, after a graceful restart, in durable and in
 * cache mode; a byte flipped in a store file behind the daemon's back is
 * caught by the segment's CRC32C (EBADMSG for that segment, the entry
 * dropped, never OK with wrong bytes) unless --verify off asks otherwise;
 * and a store of an unknown version, a truncated store file or a missing
 * one stops the daemon with exit status 1 and a message naming the file,
 * without touching the files.
 *
 * Crashes (kill -9) are test-crash's subject; here the daemon always ends
 * with SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "crc32c.h"
#include "harness.h"
#include "tap.h"

#define REGION		(8 * MiB)
#define CANARY		0xc3
#define MAX_ENTRIES	40
#define MAX_SEG		6
#define TIMEOUT_MS	10000
#define STARTUP_EXIT	1

static uint64_t seed;
static struct rng rng;

/* What the test stored under one key. */
struct ent {
	char key[32];
	uint32_t nseg;
	uint64_t len[MAX_SEG];
	uint64_t off[MAX_SEG];		/* in the region, aligned */
	uint8_t meta[100];
	size_t meta_len;
	uint64_t dseed;			/* segment i is fill_seeded(dseed + i) */
	uint32_t flags;
	bool live;
};

struct ctx {
	struct harness *d;
	struct kvswap *k;
	struct kvswap_region *src, *dst;
	uint8_t *s, *t;
	char store[4096];		/* the --store argument, kept */
	uint64_t store_size;
	struct ent e[MAX_ENTRIES];
	unsigned n;
};

/*
 * Starts a daemon on c->store (NULL: new files, store_files of them), with
 * extra arguments, and opens a connection and two regions.
 */
static int ctx_start(struct ctx *c, unsigned store_files,
		     const char *const *extra)
{
	struct harness_opts o = {
		.store_size = c->store_size,
		.store_files = store_files,
		.extra_args = extra,
		.store = *c->store ? c->store : NULL,
	};
	int r;

	r = harness_start(&o, &c->d);
	if (r < 0)
		return r;
	snprintf(c->store, sizeof(c->store), "%s", c->d->store);
	r = harness_connect(c->d, &c->k);
	if (r == 0)
		r = kvswap_region_create(c->k, REGION, &c->src);
	if (r == 0)
		r = kvswap_region_create(c->k, REGION, &c->dst);
	if (r < 0) {
		diag("connect or regions: %s: %s", strerror(-r),
		     c->k ? kvswap_last_error(c->k) : "");
		return r;
	}
	c->s = kvswap_region_addr(c->src);
	c->t = kvswap_region_addr(c->dst);
	return 0;
}

/* Closes the connection, stops the daemon with SIGTERM: 0 if it exits 0. */
static int ctx_stop(struct ctx *c)
{
	int r;

	kvswap_region_release(c->k, c->dst);
	kvswap_region_release(c->k, c->src);
	kvswap_close(c->k);
	c->k = NULL;
	c->src = c->dst = NULL;
	r = harness_stop(c->d);
	harness_free(c->d);
	c->d = NULL;
	return r;
}

static struct kvswap_stat ctx_stat(struct ctx *c)
{
	struct kvswap_stat s;
	int r = kvswap_stat(c->k, &s);

	if (r < 0)
		bail_out("stat: %s: %s", strerror(-r), kvswap_last_error(c->k));
	return s;
}

/* The path of store file i, from the --store argument. */
static void store_path(const struct ctx *c, unsigned i, char *buf, size_t size)
{
	const char *p = c->store;

	for (; i && p; i--) {
		p = strchr(p, ',');
		if (p)
			p++;
	}
	if (!p)
		bail_out("test bug: no store file %u in %s", i, c->store);
	snprintf(buf, size, "%.*s", (int)strcspn(p, ","), p);
}

/* Lays out a random entry: 1..MAX_SEG segments, odd lengths, metadata. */
static void ent_random(struct ent *e, const char *key, uint64_t max_seg)
{
	uint64_t off = 0;

	memset(e, 0, sizeof(*e));
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->nseg = (uint32_t)rng_range(&rng, 1, MAX_SEG);
	for (uint32_t i = 0; i < e->nseg; i++) {
		e->len[i] = rng_range(&rng, 1, max_seg);
		e->off[i] = off;
		/* Gaps between the segments, to catch stray writes there. */
		off = round_up(off + e->len[i], 4096) + 4096 * rng_range(&rng, 0, 1);
	}
	e->meta_len = (size_t)rng_range(&rng, 0, sizeof(e->meta));
	rng_fill(&rng, e->meta, e->meta_len);
	e->dseed = rng_next(&rng);
}

/* An entry of given segment lengths, each at the next 128 KiB. */
static void ent_fixed(struct ent *e, const char *key, uint32_t nseg,
		      const uint64_t *len)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->nseg = nseg;
	for (uint32_t i = 0; i < nseg; i++) {
		e->len[i] = len[i];
		e->off[i] = i * 128 * KiB;
	}
	e->dseed = rng_next(&rng);
}

static uint64_t ent_bytes(const struct ent *e)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < e->nseg; i++)
		n += e->len[i];
	return n;
}

static int ent_put(struct ctx *c, struct ent *e)
{
	struct kvswap_seg_out segs[MAX_SEG];
	struct kvswap_req *q;
	int r;

	for (uint32_t i = 0; i < e->nseg; i++) {
		segs[i] = (struct kvswap_seg_out){ e->off[i], e->len[i] };
		fill_seeded(c->s + e->off[i], e->len[i], e->dseed + i);
	}
	r = kvswap_swap_out(c->k, e->key, strlen(e->key), c->src, segs,
			    e->nseg, e->meta, e->meta_len, e->flags, &q);
	if (r == 0) {
		r = kvswap_wait(c->k, q, -1);
		kvswap_req_free(q);
	}
	if (r < 0)
		diag("put %s: %s: %s", e->key, strerror(-r),
		     kvswap_last_error(c->k));
	else
		e->live = true;
	return r;
}

/*
 * Whether entry e is stored as the test stored it: Describe gives its
 * layout and metadata, and a SwapIn of every segment gives its bytes and
 * leaves the gaps between them alone.
 */
static bool ent_ok(struct ctx *c, const struct ent *e)
{
	struct kvswap_seg_in in[MAX_SEG];
	struct kvswap_entry info;
	uint64_t end = e->off[e->nseg - 1] + e->len[e->nseg - 1];
	bool good = true;
	int r;

	r = kvswap_describe(c->k, e->key, strlen(e->key), &info);
	if (r < 0) {
		diag("describe %s: %s: %s", e->key, strerror(-r),
		     kvswap_last_error(c->k));
		return false;
	}
	if (info.segments != e->nseg || info.size != ent_bytes(e) ||
	    info.metadata_len != e->meta_len ||
	    (e->meta_len && memcmp(info.metadata, e->meta, e->meta_len))) {
		diag("describe %s: %u segments, %" PRIu64 " bytes, %zu bytes of metadata; stored %u, %" PRIu64 ", %zu",
		     e->key, info.segments, info.size, info.metadata_len,
		     e->nseg, ent_bytes(e), e->meta_len);
		good = false;
	}
	for (uint32_t i = 0; good && i < e->nseg; i++) {
		if (info.lengths[i] != e->len[i]) {
			diag("describe %s: segment %u is %" PRIu64 " bytes, stored %" PRIu64,
			     e->key, i, info.lengths[i], e->len[i]);
			good = false;
		}
	}
	kvswap_entry_clear(&info);
	if (!good)
		return false;

	for (uint32_t i = 0; i < e->nseg; i++)
		in[i] = (struct kvswap_seg_in){ i, e->off[i] };
	memset(c->t, CANARY, end + 4096);
	r = kvswap_get(c->k, e->key, strlen(e->key), c->dst, in, e->nseg);
	if (r < 0) {
		diag("get %s: %s: %s", e->key, strerror(-r),
		     kvswap_last_error(c->k));
		return false;
	}
	for (uint32_t i = 0; i < e->nseg; i++) {
		uint64_t gap_end = i + 1 < e->nseg ? e->off[i + 1] : end + 4096;
		uint64_t seg_end = e->off[i] + e->len[i];

		fill_seeded(c->s, e->len[i], e->dseed + i);
		if (memcmp(c->t + e->off[i], c->s, e->len[i])) {
			diag("get %s: segment %u differs", e->key, i);
			good = false;
		}
		if (mem_first_not(c->t + seg_end, gap_end - seg_end, CANARY) !=
		    gap_end - seg_end) {
			diag("get %s: wrote past the end of segment %u", e->key, i);
			good = false;
		}
	}
	return good;
}

static bool absent(struct ctx *c, const char *key)
{
	struct kvswap_entry info;
	int r = kvswap_describe(c->k, key, strlen(key), &info);

	if (r == 0)
		kvswap_entry_clear(&info);
	return r == -ENOENT;
}

/* Checks every entry of c against the daemon, and the entry count. */
static void check_all(struct ctx *c, const char *what)
{
	unsigned bad = 0, live = 0, ghosts = 0;
	struct kvswap_entry *list;
	uint64_t cursor = 0;
	uint32_t got, listed = 0;
	int r;

	for (unsigned i = 0; i < c->n; i++) {
		if (c->e[i].live) {
			live++;
			bad += !ent_ok(c, &c->e[i]);
		} else if (!absent(c, c->e[i].key)) {
			diag("%s: deleted key %s is back", what, c->e[i].key);
			ghosts++;
		}
	}
	is_int(bad, 0, "%s: all %u entries read back byte-exact, with their layout and metadata",
	       what, live);
	is_int(ghosts, 0, "%s: deleted entries stay deleted", what);
	do {
		r = kvswap_list(c->k, &cursor, 1000, &list, &got);
		if (r < 0)
			break;
		listed += got;
		kvswap_entries_free(list, got);
	} while (cursor);
	ok(r == 0 && listed == live, "%s: List gives %u entries (%u)", what,
	   live, listed);
}

/*
 * Checks Stat against what the test stored: the entry count, the pinned
 * bytes, and the space used, each segment taking whole blocks.
 */
static void check_stat(struct ctx *c, const char *what)
{
	struct kvswap_stat s = ctx_stat(c);
	uint64_t entries = 0, used = 0, pinned = 0;

	for (unsigned i = 0; i < c->n; i++) {
		const struct ent *e = &c->e[i];

		if (!e->live)
			continue;
		entries++;
		for (uint32_t k = 0; k < e->nseg; k++)
			used += round_up(e->len[k], 4096);
		if (e->flags & KVSWAP_PINNED)
			pinned += ent_bytes(e);
	}
	is_uint(s.entries, entries, "%s: stat: %" PRIu64 " entries", what,
		entries);
	is_uint(s.used, used, "%s: stat: %" PRIu64 " bytes used", what, used);
	is_uint(s.pinned, pinned, "%s: stat: %" PRIu64 " bytes pinned", what,
		pinned);
}

/*
 * Stores random entries with every flag combination, replaces and deletes
 * some, then restarts twice on the same files.
 */
static void test_restart(void)
{
	static const uint32_t flags[] = {
		0, KVSWAP_DURABLE, KVSWAP_CACHE, KVSWAP_PINNED,
		KVSWAP_DURABLE | KVSWAP_PINNED, KVSWAP_CACHE | KVSWAP_PINNED,
	};
	struct kvswap_stat s0, s1;
	struct ctx *c = calloc(1, sizeof(*c));
	unsigned bad = 0;

	if (!c)
		bail_out("out of memory");
	c->store_size = 32 * MiB;
	if (ctx_start(c, 2, NULL) < 0)
		bail_out("cannot start kvswapd");
	s0 = ctx_stat(c);
	ok(s0.durable && s0.verify,
	   "restart: the default is durable, with verification");
	for (unsigned i = 0; i < 24; i++) {
		char key[32];

		snprintf(key, sizeof(key), "entry-%u", i);
		ent_random(&c->e[i], key, 200 * KiB);
		c->e[i].flags = flags[i % 6];
		bad += ent_put(c, &c->e[i]) < 0;
	}
	c->n = 24;
	is_int(bad, 0, "restart: 24 entries stored over 2 files");
	/* A replaced key must come back as its last version. */
	ent_random(&c->e[3], "entry-3", 300 * KiB);
	c->e[3].flags = KVSWAP_PINNED;
	is_int(ent_put(c, &c->e[3]), 0, "restart: entry-3 replaced");
	is_int(kvswap_delete(c->k, "entry-5", 7), 0, "restart: entry-5 deleted");
	c->e[5].live = false;
	is_int(kvswap_delete(c->k, "entry-10", 8), 0, "restart: entry-10 deleted");
	c->e[10].live = false;
	check_all(c, "restart, before");
	check_stat(c, "restart, before");
	s0 = ctx_stat(c);
	is_uint(s0.evictions, 0, "restart: nothing evicted (the store has room)");

	is_int(ctx_stop(c), 0, "restart: kvswapd exits 0 on SIGTERM");
	if (!is_int(ctx_start(c, 0, NULL), 0,
		    "restart: kvswapd starts again on the same files"))
		bail_out("cannot restart kvswapd");
	s1 = ctx_stat(c);
	is_uint(s1.capacity, s0.capacity, "restart: same capacity");
	check_stat(c, "restart");
	check_all(c, "restart");

	/* Entries made after a restart survive the next one too. */
	for (unsigned i = 24; i < 30; i++) {
		char key[32];

		snprintf(key, sizeof(key), "entry-%u", i);
		ent_random(&c->e[i], key, 100 * KiB);
		c->e[i].flags = flags[i % 6];
		bad += ent_put(c, &c->e[i]) < 0;
	}
	c->n = 30;
	is_int(kvswap_delete(c->k, "entry-0", 7), 0, "restart: entry-0 deleted");
	c->e[0].live = false;
	ent_random(&c->e[11], "entry-11", 50 * KiB);
	is_int(ent_put(c, &c->e[11]), 0, "restart: entry-11 replaced");
	is_int(bad, 0, "restart: 6 more entries stored");
	is_int(ctx_stop(c), 0, "second restart: kvswapd exits 0 on SIGTERM");
	if (!is_int(ctx_start(c, 0, NULL), 0,
		    "second restart: kvswapd starts again"))
		bail_out("cannot restart kvswapd");
	check_stat(c, "second restart");
	check_all(c, "second restart");
	is_int(ctx_stop(c), 0, "second restart: kvswapd exits 0 on SIGTERM");
	free(c);
}

/*
 * --durability cache: entries are acknowledged before the metadata is
 * durable, yet a graceful shutdown keeps them all. The durability mode is
 * not a property of the store: a durable daemon reads them too.
 */
static void test_cache(void)
{
	static const char *const cache[] = { "--durability", "cache", NULL };
	struct kvswap_stat s0;
	struct ctx *c = calloc(1, sizeof(*c));
	unsigned bad = 0;

	if (!c)
		bail_out("out of memory");
	c->store_size = 32 * MiB;
	if (ctx_start(c, 1, cache) < 0)
		bail_out("cannot start kvswapd");
	s0 = ctx_stat(c);
	ok(!s0.durable, "cache: stat says the default durability is cache");
	for (unsigned i = 0; i < 16; i++) {
		char key[32];

		snprintf(key, sizeof(key), "cached-%u", i);
		ent_random(&c->e[i], key, 300 * KiB);
		/* Mostly the daemon's default; some ask for durable. */
		c->e[i].flags = i % 4 == 3 ? KVSWAP_DURABLE : 0;
		c->e[i].flags |= i % 5 == 4 ? KVSWAP_PINNED : 0;
		bad += ent_put(c, &c->e[i]) < 0;
	}
	c->n = 16;
	is_int(bad, 0, "cache: 16 entries stored");
	is_int(kvswap_delete(c->k, "cached-7", 8), 0, "cache: cached-7 deleted");
	c->e[7].live = false;
	/*
	 * No Stat check here: in cache mode the Delete reply comes before
	 * its record is durable, and the entry's blocks count as used until
	 * then.
	 */
	is_int(ctx_stop(c), 0, "cache: kvswapd exits 0 on SIGTERM");

	if (!is_int(ctx_start(c, 0, cache), 0,
		    "cache: kvswapd starts again in cache mode"))
		bail_out("cannot restart kvswapd");
	check_stat(c, "cache");
	check_all(c, "cache");
	is_int(ctx_stop(c), 0, "cache: kvswapd exits 0 on SIGTERM");

	if (!is_int(ctx_start(c, 0, NULL), 0,
		    "cache: a durable kvswapd opens the same store"))
		bail_out("cannot restart kvswapd");
	check_all(c, "cache, reopened durable");
	is_int(ctx_stop(c), 0, "cache: kvswapd exits 0 on SIGTERM");
	free(c);
}

/* --- damage behind the daemon's back -------------------------------------- */

static int read_file(const char *path, uint8_t **ret_buf, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	size_t n = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	while (n < (size_t)st.st_size) {
		ssize_t k = pread(fd, buf + n, (size_t)st.st_size - n, (off_t)n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : -EIO;
			free(buf);
			goto out_close;
		}
		n += (size_t)k;
	}
	*ret_buf = buf;
	*ret_len = n;
out_close:
	close(fd);
	return r;
}

static int write_at(const char *path, const void *buf, size_t len, off_t off)
{
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pwrite(fd, buf, len, off);
	if (n < 0)
		r = -errno;
	else if ((size_t)n != len)
		r = -EIO;
	else if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * Finds the store block that holds block `blk` of segment `seg` of e (the
 * data of a segment starts on a block boundary of the store) and flips one
 * bit of byte `at` in it. Returns the file offset of the flipped byte, or
 * a negative errno (-ENOENT: not found, -EEXIST: found twice).
 */
static int64_t flip(const char *path, const struct ent *e, uint32_t seg,
		    uint64_t blk, unsigned at)
{
	uint8_t *file, *want;
	size_t len, n;
	int64_t found = -ENOENT;
	uint8_t byte;
	int r;

	n = e->len[seg] - blk * 4096 < 4096 ? e->len[seg] - blk * 4096 : 4096;
	want = malloc(e->len[seg]);
	if (!want)
		return -ENOMEM;
	fill_seeded(want, e->len[seg], e->dseed + seg);
	r = read_file(path, &file, &len);
	if (r < 0) {
		free(want);
		return r;
	}
	for (size_t off = 0; off + 4096 <= len; off += 4096) {
		if (memcmp(file + off, want + blk * 4096, n))
			continue;
		if (found >= 0) {
			found = -EEXIST;
			break;
		}
		found = (int64_t)(off + at);
	}
	if (found >= 0) {
		byte = file[found] ^ 0x10;
		r = write_at(path, &byte, 1, (off_t)found);
		if (r < 0)
			found = r;
	}
	free(file);
	free(want);
	return found;
}

/*
 * Swaps in every segment of e and reports each segment's status in
 * seg_status[] (1 if no event came) and the first error message of a
 * segment in msg. Returns the final status.
 */
static int get_segments(struct ctx *c, const struct ent *e, int *seg_status,
			char *msg, size_t msg_size)
{
	struct kvswap_seg_in in[MAX_SEG];
	struct kvswap_req *q;
	uint32_t idx;
	int r;

	*msg = '\0';
	for (uint32_t i = 0; i < e->nseg; i++) {
		in[i] = (struct kvswap_seg_in){ i, e->off[i] };
		seg_status[i] = 1;
	}
	r = kvswap_swap_in(c->k, e->key, strlen(e->key), c->dst, in, e->nseg,
			   &q);
	if (r < 0)
		return r;
	for (;;) {
		r = kvswap_wait_segment(c->k, q, TIMEOUT_MS, &idx);
		if (r == -ENODATA || r == -ETIMEDOUT)
			break;
		if (idx < e->nseg)
			seg_status[idx] = r;
		if (r < 0 && !*msg)
			snprintf(msg, msg_size, "%s", kvswap_last_error(c->k));
	}
	r = kvswap_wait(c->k, q, TIMEOUT_MS);
	kvswap_req_free(q);
	return r;
}

static bool seg_equal(struct ctx *c, const struct ent *e, uint32_t i)
{
	fill_seeded(c->s, e->len[i], e->dseed + i);
	return memcmp(c->t + e->off[i], c->s, e->len[i]) == 0;
}

/*
 * Flips a bit in the stored data of two entries, then reads them with and
 * without verification.
 */
static void test_checksum(void)
{
	static const char *const verify_off[] = { "--verify", "off", NULL };
	struct ctx *c = calloc(1, sizeof(*c));
	struct ent *victim, *victim2, *tail, *other;
	struct kvswap_stat s0, s1;
	int st[MAX_SEG], r;
	char path[4096], msg[512], range[64];
	int64_t at1, at2, at3;

	if (!c)
		bail_out("out of memory");
	c->store_size = 32 * MiB;
	if (ctx_start(c, 1, NULL) < 0)
		bail_out("cannot start kvswapd");
	/* victim: three segments, the damaged middle one with a tail. */
	victim = &c->e[0];
	ent_fixed(victim, "victim", 3,
		  (const uint64_t[]){ 64 * KiB, 64 * KiB + 100, 64 * KiB });
	victim2 = &c->e[1];
	ent_fixed(victim2, "victim2", 2, (const uint64_t[]){ 32 * KiB, 32 * KiB });
	/* One segment whose damaged last block is only 50 bytes of data. */
	tail = &c->e[2];
	ent_fixed(tail, "tail", 1, (const uint64_t[]){ 8 * KiB + 50 });
	other = &c->e[3];
	ent_random(other, "other", 100 * KiB);
	c->n = 4;
	r = ent_put(c, victim) | ent_put(c, victim2) | ent_put(c, tail) |
	    ent_put(c, other);
	is_int(r, 0, "checksum: four entries stored");
	is_int(ctx_stop(c), 0, "checksum: kvswapd exits 0 on SIGTERM");

	store_path(c, 0, path, sizeof(path));
	at1 = flip(path, victim, 1, 3, 1234);
	ok(at1 >= 0, "checksum: flipped a bit of victim's segment 1 in %s at %" PRId64,
	   path, at1);
	at2 = flip(path, victim2, 0, 0, 7);
	ok(at2 >= 0, "checksum: flipped a bit of victim2's segment 0 at %" PRId64,
	   at2);
	at3 = flip(path, tail, 0, 2, 33);
	ok(at3 >= 0, "checksum: flipped a bit in the last, partial block of tail at %" PRId64,
	   at3);
	if (at1 < 0 || at2 < 0 || at3 < 0)
		bail_out("cannot find the entries' data in %s", path);

	if (ctx_start(c, 0, NULL) < 0)
		bail_out("cannot restart kvswapd");
	s0 = ctx_stat(c);
	ok(s0.verify, "checksum: verification is on by default");
	is_uint(s0.checksum_errors, 0, "checksum: no checksum errors yet");

	/* The undamaged segment of a damaged entry reads fine on its own. */
	{
		struct kvswap_seg_in in = { 1, victim2->off[1] };

		memset(c->t, CANARY, 512 * KiB);
		r = kvswap_get(c->k, "victim2", 7, c->dst, &in, 1);
		ok(r == 0 && seg_equal(c, victim2, 1),
		   "checksum: victim2's undamaged segment 1 reads back alone (%d)",
		   r);
	}

	memset(c->t, CANARY, 512 * KiB);
	r = get_segments(c, victim, st, msg, sizeof(msg));
	is_int(r, -EBADMSG, "checksum: swap-in of victim fails with EBADMSG");
	is_int(st[1], -EBADMSG, "checksum: segment 1 gets an EBADMSG event");
	ok(st[0] == 0 && seg_equal(c, victim, 0),
	   "checksum: segment 0 lands byte-exact (%d)", st[0]);
	ok(st[2] == 0 && seg_equal(c, victim, 2),
	   "checksum: segment 2 lands byte-exact (%d)", st[2]);
	snprintf(range, sizeof(range), "[%" PRIu64 ", %" PRIu64 ")",
		 victim->off[1], victim->off[1] + victim->len[1]);
	ok(strstr(msg, "checksum mismatch") && strstr(msg, range),
	   "checksum: the message says so and names the range %s: \"%s\"",
	   range, msg);
	ok(absent(c, "victim"), "checksum: victim is dropped (Describe: ENOENT)");
	is_int(kvswap_get(c->k, "victim", 6, c->dst,
			  &(struct kvswap_seg_in){ 0, 0 }, 1), -ENOENT,
	       "checksum: a second swap-in of victim: ENOENT");
	victim->live = false;

	r = get_segments(c, tail, st, msg, sizeof(msg));
	ok(r == -EBADMSG && st[0] == -EBADMSG,
	   "checksum: damage in a segment's partial last block: EBADMSG (%d, %d)",
	   r, st[0]);
	ok(absent(c, "tail"), "checksum: tail is dropped");
	tail->live = false;
	s1 = ctx_stat(c);
	is_uint(s1.checksum_errors, 2, "checksum: stat counts 2 checksum errors");
	is_uint(s1.entries, s0.entries - 2, "checksum: two entries fewer");
	ok(ent_ok(c, other), "checksum: the other entry reads back byte-exact");
	is_int(ctx_stop(c), 0, "checksum: kvswapd exits 0 on SIGTERM");

	/*
	 * --verify off: the configured trade of safety for speed. The daemon
	 * does not look at the bytes, so the flipped bit comes back with
	 * status OK, exactly where it was flipped; the drop of victim was
	 * recorded and stays.
	 */
	if (ctx_start(c, 0, verify_off) < 0)
		bail_out("cannot restart kvswapd");
	s0 = ctx_stat(c);
	ok(!s0.verify, "verify off: stat says so");
	ok(absent(c, "victim"), "verify off: victim's drop survived the restart");
	memset(c->t, CANARY, 512 * KiB);
	r = get_segments(c, victim2, st, msg, sizeof(msg));
	is_int(r, 0, "verify off: swap-in of the damaged victim2 succeeds");
	{
		uint8_t *got = c->t + victim2->off[0];
		size_t diff = 0, where = 0;

		fill_seeded(c->s, victim2->len[0], victim2->dseed);
		for (size_t i = 0; i < victim2->len[0]; i++) {
			if (got[i] != c->s[i]) {
				diff++;
				where = i;
			}
		}
		ok(diff == 1 && where == 7 && (got[7] ^ c->s[7]) == 0x10,
		   "verify off: segment 0 comes back with exactly the flipped bit (%zu bytes differ, last at %zu)",
		   diff, where);
	}
	ok(st[1] == 0 && seg_equal(c, victim2, 1),
	   "verify off: segment 1 is byte-exact");
	s1 = ctx_stat(c);
	is_uint(s1.checksum_errors, 0, "verify off: no checksum errors counted");
	ok(!absent(c, "victim2"), "verify off: victim2 is kept");
	ok(ent_ok(c, other), "verify off: the other entry reads back byte-exact");
	is_int(ctx_stop(c), 0, "verify off: kvswapd exits 0 on SIGTERM");

	/* Verification back on: the damage is still caught. */
	if (ctx_start(c, 0, NULL) < 0)
		bail_out("cannot restart kvswapd");
	r = get_segments(c, victim2, st, msg, sizeof(msg));
	ok(r == -EBADMSG && st[0] == -EBADMSG && st[1] == 0,
	   "verify on again: victim2's segment 0 fails with EBADMSG (%d, %d, %d)",
	   r, st[0], st[1]);
	ok(absent(c, "victim2"), "verify on again: victim2 is dropped");
	ok(ent_ok(c, other), "verify on again: the other entry is intact");
	is_int(ctx_stop(c), 0, "verify on again: kvswapd exits 0 on SIGTERM");
	free(c);
}

/* --- stores the daemon must refuse ---------------------------------------- */

/*
 * Starts kvswapd on c->store and checks that it exits with status 1
 * before READY=1, with a log naming `path` and, if `word` is not NULL,
 * saying `word` (or `word2` or `word3`, if not NULL).
 */
static void refused(const struct ctx *c, const char *what, const char *path,
		    const char *word, const char *word2, const char *word3)
{
	static char log[65536];
	char size[32], status[64];
	const char *args[] = {
		"--socket", "@DIR/kvswapd.sock", "--store", c->store,
		"--store-size", size, NULL,
	};
	struct harness *h;
	int r;

	snprintf(size, sizeof(size), "%" PRIu64 "M", c->store_size / MiB);
	r = harness_spawn(args, 0, &h);
	if (!is_int(r, 0, "%s: spawn", what))
		return;
	r = harness_wait_ready(h, TIMEOUT_MS);
	if (!is_int(r, -ECHILD, "%s: kvswapd exits without READY=1", what)) {
		harness_show_log(h, 10);
		harness_free(h);
		return;
	}
	ok(WIFEXITED(h->status) && WEXITSTATUS(h->status) == STARTUP_EXIT,
	   "%s: exit status %d (%s)", what, STARTUP_EXIT,
	   harness_status_str(h->status, status, sizeof(status)));
	harness_read_log(h, log, sizeof(log));
	if (!ok(strstr(log, path) != NULL, "%s: the message names %s", what,
		path))
		harness_show_log(h, 10);
	if (word && !ok(strcasestr(log, word) ||
			(word2 && strcasestr(log, word2)) ||
			(word3 && strcasestr(log, word3)),
			"%s: the message says '%s'%s%s%s%s%s", what, word,
			word2 ? " or '" : "", word2 ? word2 : "",
			word3 ? "' or '" : "", word3 ? word3 : "",
			word2 ? "'" : ""))
		harness_show_log(h, 10);
	diag("%s: %s", what, log);
	harness_free(h);
}

/* Makes a store with one entry, and stops its daemon. */
static struct ctx *make_store(unsigned files, const char *what)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		bail_out("out of memory");
	c->store_size = 16 * MiB;
	if (ctx_start(c, files, NULL) < 0)
		bail_out("cannot start kvswapd");
	ent_random(&c->e[0], "kept", 200 * KiB);
	c->n = 1;
	is_int(ent_put(c, &c->e[0]), 0, "%s: an entry stored", what);
	is_int(ctx_stop(c), 0, "%s: kvswapd exits 0 on SIGTERM", what);
	return c;
}

/*
 * Sets the version field (offset 8) of every superblock slot of `path`
 * that holds one (magic at offset 0) to `version`; with `fix_crc`, also
 * the CRC32C at offset 92 (of the 128 bytes with that field 0:
 * docs/STORE_FORMAT.md), so that only the version is wrong. Returns the
 * number of slots patched.
 */
static uint32_t sb_crc(uint8_t *sb)
{
	uint32_t crc, saved;

	memcpy(&saved, sb + 92, 4);
	memset(sb + 92, 0, 4);
	crc = crc32c(0, sb, 128);
	memcpy(sb + 92, &saved, 4);
	return crc;
}

static int patch_version(const char *path, uint32_t version, bool fix_crc)
{
	uint8_t sb[4096];
	int n = 0, fd, r;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (off_t slot = 0; slot < 2 * 4096; slot += 4096) {
		uint32_t crc;

		if (pread(fd, sb, sizeof(sb), slot) != (ssize_t)sizeof(sb)) {
			n = -EIO;
			break;
		}
		if (memcmp(sb, "KVSWAPST", 8))
			continue;
		memcpy(&crc, sb + 92, 4);
		if (crc != sb_crc(sb))
			diag("%s: slot at %lld: CRC does not match the documented layout",
			     path, (long long)slot);
		memcpy(sb + 8, &version, 4);
		if (fix_crc) {
			crc = sb_crc(sb);
			memcpy(sb + 92, &crc, 4);
		}
		if (pwrite(fd, sb, sizeof(sb), slot) != (ssize_t)sizeof(sb)) {
			n = -EIO;
			break;
		}
		n++;
	}
	r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return n < 0 ? n : r < 0 ? r : n;
}

/* The version fields of both slots. */
static void read_versions(const char *path, uint32_t got[2])
{
	uint8_t *file;
	size_t len;

	got[0] = got[1] = 0;
	if (read_file(path, &file, &len) == 0) {
		memcpy(&got[0], file + 8, 4);
		memcpy(&got[1], file + 4096 + 8, 4);
		free(file);
	}
}

static void test_version(void)
{
	struct ctx *c = make_store(1, "version");
	uint32_t got[2];
	char path[4096];
	int n;

	store_path(c, 0, path, sizeof(path));
	/* A well-formed superblock of a version this kvswapd does not know. */
	n = patch_version(path, 99, true);
	ok(n >= 1, "version: version 99 with a valid CRC in %d superblock slots",
	   n);
	refused(c, "store version 99", path, "version", NULL, NULL);
	read_versions(path, got);
	ok(got[0] == 99, "version: the refused store was left alone (version %u)",
	   got[0]);

	/* The field patched alone: refused for its version or its CRC. */
	n = patch_version(path, 98, false);
	ok(n >= 1, "version: version 98, CRC left stale, in %d slots", n);
	refused(c, "store version 98, stale CRC", path, "version", "checksum",
		"superblock");
	read_versions(path, got);
	ok(got[0] == 98, "version: the refused store was left alone (version %u)",
	   got[0]);
	free(c);
}

static void test_truncated(void)
{
	struct ctx *c = make_store(1, "truncated");
	char path[4096];
	struct stat st;

	store_path(c, 0, path, sizeof(path));
	ok(truncate(path, (off_t)(c->store_size / 2)) == 0,
	   "truncated: cut %s to half", path);
	refused(c, "truncated store file", path, "truncated", NULL, NULL);
	ok(stat(path, &st) == 0 && (uint64_t)st.st_size == c->store_size / 2,
	   "truncated: the file was left alone");
	/* Shorter than the superblock slots. */
	ok(truncate(path, 4096) == 0, "truncated: cut %s to 4096 bytes", path);
	refused(c, "store file of 4096 bytes", path, "truncated", NULL, NULL);
	ok(stat(path, &st) == 0 && st.st_size == 4096,
	   "truncated: the file was left alone");
	free(c);
}

static void test_missing(void)
{
	struct ctx *c = make_store(2, "missing");
	char path[4096], away[4200];

	store_path(c, 1, path, sizeof(path));
	snprintf(away, sizeof(away), "%s.away", path);
	ok(rename(path, away) == 0, "missing: move %s away", path);
	refused(c, "missing second store file", path, "missing", NULL, NULL);
	ok(access(path, F_OK) < 0 && errno == ENOENT,
	   "missing: the file was not created anew");

	/* The refused start did no harm: put the file back, all is there. */
	ok(rename(away, path) == 0, "missing: move the file back");
	if (!is_int(ctx_start(c, 0, NULL), 0,
		    "missing: kvswapd starts with both files"))
		bail_out("cannot restart kvswapd");
	ok(ent_ok(c, &c->e[0]), "missing: the entry reads back byte-exact");
	is_int(ctx_stop(c), 0, "missing: kvswapd exits 0 on SIGTERM");
	free(c);
}

int main(void)
{
	harness_init("test-durable");
	seed = harness_seed();
	rng_init(&rng, seed);
	test_restart();
	test_cache();
	test_checksum();
	test_version();
	test_truncated();
	test_missing();
	done_testing();
}
