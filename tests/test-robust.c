/* SPDX-License-Identifier: MIT */
/*
 * Damage to the store's metadata behind the daemon's back, and what the
 * daemon makes of it (docs/STORE_FORMAT.md, "Damage"): no acknowledged
 * entry is ever lost silently. Either every entry comes back byte-exact,
 * or kvswapd refuses to start with a message naming the file and the
 * damage, and then kvswapd --salvage starts on what survived (every entry
 * not named as lost comes back byte-exact), and kvswapd --check names the
 * damage (exit 1) before and finds the store consistent (exit 0) after.
 *
 * Superblocks: either slot of the first file zeroed or with a byte
 * flipped, after a clean stop and (the case) after a crash with
 * commits, a deletion and a replacement since the last checkpoint, and a
 * slot of the second file zeroed (the other slot is used, both are
 * rewritten); a flip cut between its two slot writes (a note, not damage)
 * and slot 0 behind slot 1 (a lost write); both slots zeroed (refused;
 * salvage); and slots that lost their last update while the other log
 * half shows a newer state (refused; salvage starts on the newer half).
 *
 * The log: a block zeroed or with a byte flipped in the middle of the live
 * half (commits follow it), in its last commit, and in the checkpoint a
 * clean stop leaves (middle and last block). A whole last commit zeroed
 * after a crash is the one case the log cannot tell from a crash before
 * it was written: exactly that commit's entry is missing, nothing else.
 *
 * Also: --check names an entry whose data has a flipped byte (CRC
 * mismatch), refuses a store a daemon has open (exit 2), and a version 2
 * store (crafted here as the old kvswapd wrote it) opens, replays and is
 * upgraded.
 *
 * The store layout is read from the documented format, not from the
 * daemon's code: superblock fields, log block headers, record headers.
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

#define REGION		(4 * MiB)
#define STORE_SIZE	(32 * MiB)
#define MAX_ENT		64
#define BLK		4096u
#define HDR		32u
#define PAYLOAD		(BLK - HDR)
#define LOG_MAGIC	0x424c564bu
#define START		0x8000u
#define TIMEOUT_MS	10000

static struct rng rng;

/* --- the store, as documented --------------------------------------------- */

struct sbv {
	bool valid;
	uint32_t version;
	uint64_t gen, nonce, ck_blocks;
	uint32_t active;
	uint64_t meta_start, meta_half;
};

static int read_at(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static int write_at(const char *path, const void *buf, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (pwrite(fd, buf, len, off) != (ssize_t)len || fsync(fd) < 0)
		r = -EIO;
	close(fd);
	return r;
}

static uint32_t u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/*
 * Superblock slot `slot` of a file: versions 3 and 4 have a CRC of all
 * 128 bytes; the daemon writes version 4 (tenants in the keys).
 */
static struct sbv sb_read(const char *path, int slot)
{
	uint8_t b[128], z[128];
	struct sbv s = { 0 };

	if (read_at(path, b, sizeof(b), slot * BLK) < 0)
		return s;
	memcpy(z, b, sizeof(z));
	memset(z + 92, 0, 4);
	s.version = u32(b + 8);
	s.valid = !memcmp(b, "KVSWAPST", 8) && s.version == 4 &&
		  u32(b + 92) == crc32c(0, z, sizeof(z));
	s.meta_start = u64(b + 56);
	s.meta_half = u64(b + 64);
	s.gen = u64(b + 72);
	s.nonce = u64(b + 80);
	s.active = u32(b + 88);
	s.ck_blocks = u64(b + 96);
	return s;
}

/* A log block of the live epoch, and its payload. */
struct lblk {
	uint64_t seq;
	uint16_t used, lead;
	bool start;
	uint8_t payload[PAYLOAD];
};

/*
 * The live half's blocks of the live epoch (magic, nonce, generation and
 * place right), in order; returns how many, up to max.
 */
static unsigned log_blocks(const char *path, const struct sbv *sb,
			   struct lblk *out, unsigned max)
{
	uint64_t base = sb->meta_start + sb->active * sb->meta_half;
	uint8_t b[BLK];
	unsigned n = 0;

	for (uint64_t i = 0; i < sb->meta_half / BLK && n < max; i++) {
		if (read_at(path, b, BLK, (off_t)(base + i * BLK)) < 0)
			break;
		if (u32(b) != LOG_MAGIC || u64(b + 8) != sb->nonce ||
		    u64(b + 16) != i || u32(b + 28) != (uint32_t)sb->gen)
			continue;
		out[n].seq = i;
		memcpy(&out[n].used, b + 24, 2);
		memcpy(&out[n].lead, b + 26, 2);
		out[n].start = out[n].lead & START;
		out[n].used &= 0x0fff;
		memcpy(out[n].payload, b + HDR, PAYLOAD);
		n++;
	}
	return n;
}

static off_t log_block_off(const struct sbv *sb, uint64_t seq)
{
	return (off_t)(sb->meta_start + sb->active * sb->meta_half + seq * BLK);
}

/* The key of the record starting at p (a record header is 16 bytes). */
/* A record's client key: format 4 stores "tenant\0key". */
static void rec_key(const uint8_t *p, char *key, size_t len)
{
	const char *k = (const char *)p + 16;
	size_t tl;
	uint16_t kl;

	memcpy(&kl, p + 2, 2);
	tl = strnlen(k, kl);
	if (tl < kl)
		tl++;
	snprintf(key, len, "%.*s", (int)(kl - tl), k + tl);
}

static size_t rec_size(const uint8_t *p)
{
	uint16_t kl;
	uint32_t nseg, next, ml;

	memcpy(&kl, p + 2, 2);
	memcpy(&nseg, p + 4, 4);
	memcpy(&next, p + 8, 4);
	memcpy(&ml, p + 12, 4);
	return p[0] == 2 ? 16u + kl : 16u + kl + ml + 16 * nseg + 16 * next;
}

static int copy_file(const char *from, const char *to)
{
	uint8_t *buf;
	struct stat st;
	int r;

	if (stat(from, &st) < 0)
		return -errno;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return -ENOMEM;
	r = read_at(from, buf, (size_t)st.st_size, 0);
	if (r == 0) {
		int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		r = fd < 0 ? -errno : 0;
		if (fd >= 0) {
			if (pwrite(fd, buf, (size_t)st.st_size, 0) != st.st_size ||
			    fsync(fd) < 0)
				r = -EIO;
			close(fd);
		}
	}
	free(buf);
	return r;
}

/* --- entries and the daemon ----------------------------------------------- */

struct ent {
	char key[48];
	uint64_t seed;
	uint32_t len;
	uint32_t meta_len;
	bool live;
};

struct ctx {
	struct harness *d;
	struct kvswap *k;
	struct kvswap_region *src, *dst;
	char store[4096];
	char path0[4096];		/* store file 0 */
	struct ent e[MAX_ENT];
	unsigned n;
};

static int ctx_start(struct ctx *c, const char *const *extra)
{
	struct harness_opts o = {
		.store_size = STORE_SIZE,
		.store_files = 2,
		.extra_args = extra,
		.store = *c->store ? c->store : NULL,
	};
	int r = harness_start(&o, &c->d);

	if (r < 0)
		return r;
	snprintf(c->store, sizeof(c->store), "%s", c->d->store);
	snprintf(c->path0, sizeof(c->path0), "%.*s",
		 (int)strcspn(c->store, ","), c->store);
	r = harness_connect(c->d, &c->k);
	if (r == 0)
		r = kvswap_region_create(c->k, REGION, &c->src);
	if (r == 0)
		r = kvswap_region_create(c->k, REGION, &c->dst);
	return r;
}

static void ctx_disconnect(struct ctx *c)
{
	if (!c->k)
		return;
	kvswap_region_release(c->k, c->dst);
	kvswap_region_release(c->k, c->src);
	kvswap_close(c->k);
	c->k = NULL;
}

/* SIGTERM: a clean stop (the live half becomes one checkpoint). */
static int ctx_stop(struct ctx *c)
{
	int r;

	ctx_disconnect(c);
	r = harness_stop(c->d);
	harness_free(c->d);
	c->d = NULL;
	return r;
}

/* SIGKILL: the live half keeps its commits. */
static void ctx_crash(struct ctx *c)
{
	ctx_disconnect(c);
	harness_kill(c->d);
	harness_free(c->d);
	c->d = NULL;
}

static int put(struct ctx *c, struct ent *e)
{
	uint8_t *s = kvswap_region_addr(c->src), meta[600];
	struct kvswap_seg_out seg = { 0, e->len };
	int r;

	fill_seeded(s, e->len, e->seed);
	fill_seeded(meta, e->meta_len, e->seed ^ 0x5a5a);
	r = kvswap_put(c->k, e->key, strlen(e->key), c->src, &seg, 1, meta,
		       e->meta_len);
	if (r < 0)
		diag("put %s: %s: %s", e->key, strerror(-r),
		     kvswap_last_error(c->k));
	else
		e->live = true;
	return r;
}

static struct ent *new_ent(struct ctx *c, const char *prefix, uint32_t meta_len)
{
	struct ent *e = &c->e[c->n];

	if (c->n >= MAX_ENT)
		bail_out("test bug: too many entries");
	snprintf(e->key, sizeof(e->key), "%s-%02u", prefix, c->n);
	e->seed = rng_next(&rng);
	e->len = (uint32_t)rng_range(&rng, 1, 40 * KiB);
	e->meta_len = meta_len;
	c->n++;
	return e;
}

static struct ent *find(struct ctx *c, const char *key)
{
	for (unsigned i = 0; i < c->n; i++)
		if (!strcmp(c->e[i].key, key))
			return &c->e[i];
	return NULL;
}

/* Whether e reads back byte-exact. */
static bool ent_ok(struct ctx *c, const struct ent *e)
{
	uint8_t *t = kvswap_region_addr(c->dst), *s = kvswap_region_addr(c->src);
	struct kvswap_seg_in in = { 0, 0 };
	int r;

	memset(t, 0xc3, e->len);
	r = kvswap_get(c->k, e->key, strlen(e->key), c->dst, &in, 1);
	if (r < 0) {
		diag("get %s: %s: %s", e->key, strerror(-r), kvswap_last_error(c->k));
		return false;
	}
	fill_seeded(s, e->len, e->seed);
	if (memcmp(s, t, e->len)) {
		diag("get %s: wrong bytes", e->key);
		return false;
	}
	return true;
}

static bool absent(struct ctx *c, const char *key)
{
	struct kvswap_entry info;
	int r = kvswap_describe(c->k, key, strlen(key), &info);

	if (r == 0)
		kvswap_entry_clear(&info);
	return r == -ENOENT;
}

/*
 * Every entry the test stored is back byte-exact, every deleted one
 * absent, except those named in `lost` (NULL-terminated; absent).
 */
static void check_all(struct ctx *c, const char *what, const char *const *lost)
{
	unsigned bad = 0, live = 0, ghosts = 0, missing = 0;

	for (unsigned i = 0; i < c->n; i++) {
		const struct ent *e = &c->e[i];
		bool is_lost = false;

		for (const char *const *l = lost; l && *l; l++)
			is_lost |= !strcmp(*l, e->key);
		if (is_lost) {
			missing += !absent(c, e->key);
		} else if (e->live) {
			live++;
			bad += !ent_ok(c, e);
		} else if (!absent(c, e->key)) {
			diag("%s: deleted key %s is back", what, e->key);
			ghosts++;
		}
	}
	is_int(bad, 0, "%s: all %u entries read back byte-exact", what, live);
	is_int(ghosts, 0, "%s: deleted entries stay deleted", what);
	if (lost && *lost)
		is_int(missing, 0, "%s: the entries named lost are absent", what);
}

/* Runs kvswapd with args (not as a daemon); returns its exit status. */
static int run(const char *const *args, char *out, size_t len)
{
	struct harness *h;
	int r = harness_spawn(args, 0, &h);

	if (r < 0)
		return -1;
	r = harness_wait_exit(h, 60000);
	if (out)
		harness_read_log(h, out, len);
	if (r < 0 || !WIFEXITED(h->status)) {
		harness_free(h);
		return -1;
	}
	r = WEXITSTATUS(h->status);
	harness_free(h);
	return r;
}

static char out[1 << 16];

/* kvswapd --check on c's store: the exit status; the report in out. */
static int check(struct ctx *c)
{
	const char *args[] = { "--check", "--store", c->store, NULL };

	return run(args, out, sizeof(out));
}

/* --check finds c's store consistent (exit 0). */
static void check_clean(struct ctx *c, const char *what)
{
	int r = check(c);

	if (!is_int(r, 0, "%s: kvswapd --check finds the store consistent", what))
		diag("%s", out);
}

/* --check exits 1 and its report says `word` (and `word2`, if not NULL). */
static void check_damaged(struct ctx *c, const char *what, const char *word,
			  const char *word2)
{
	int r = check(c);

	is_int(r, 1, "%s: kvswapd --check exits 1", what);
	if (!ok(strstr(out, "DAMAGE") && strstr(out, word) &&
		(!word2 || strstr(out, word2)),
		"%s: the report names the damage ('%s'%s%s)", what, word,
		word2 ? ", '" : "", word2 ? word2 : ""))
		diag("%s", out);
}

/*
 * kvswapd refuses to start on c's store: exit 1 before READY=1, its
 * message naming file 0, `word`, and how to proceed (--salvage).
 */
static void refused(struct ctx *c, const char *what, const char *word)
{
	char size[32];
	const char *args[] = {
		"--socket", "@DIR/kvswapd.sock", "--store", c->store,
		"--store-size", size, NULL,
	};
	struct harness *h;
	int r;

	snprintf(size, sizeof(size), "%" PRIu64 "M", STORE_SIZE / MiB);
	if (harness_spawn(args, 0, &h) < 0)
		bail_out("spawn");
	r = harness_wait_ready(h, TIMEOUT_MS);
	ok(r == -ECHILD && WIFEXITED(h->status) && WEXITSTATUS(h->status) == 1,
	   "%s: kvswapd refuses to start (exit 1)", what);
	harness_read_log(h, out, sizeof(out));
	if (!ok(strstr(out, c->path0) && strstr(out, word) &&
		strstr(out, "--salvage"), "%s: the message names %s, says '%s' "
		"and how to proceed", what, c->path0, word))
		diag("%s", out);
	else
		diag("%s: %s", what, strstr(out, "<3>") ? strstr(out, "<3>") : out);
	harness_free(h);
}

static char slog[1 << 15];

/* Starts with --salvage; its log (in slog) must say `word`. */
static void salvage(struct ctx *c, const char *what, const char *word)
{
	static const char *const args[] = { "--salvage", NULL };

	if (!is_int(ctx_start(c, args), 0, "%s: kvswapd --salvage starts", what))
		bail_out("cannot start kvswapd --salvage");
	harness_read_log(c->d, slog, sizeof(slog));
	if (!ok(strstr(slog, word), "%s: its log says '%s'", what, word))
		diag("%s", slog);
	for (char *l = slog, *nl; *l; l = nl + !!*nl) {
		nl = l + strcspn(l, "\n");
		if (!strncmp(l, "<4>", 3))
			diag("%s: %.*s", what, (int)(nl - l), l);
	}
}

/* A store: entries of several commits, a replace and two deletes. */
static struct ctx *make_store(const char *what, unsigned n, uint32_t meta_len)
{
	struct ctx *c = calloc(1, sizeof(*c));
	unsigned bad = 0;

	if (!c)
		bail_out("out of memory");
	if (ctx_start(c, NULL) < 0)
		bail_out("cannot start kvswapd");
	for (unsigned i = 0; i < n; i++)
		bad += put(c, new_ent(c, "old", meta_len)) < 0;
	c->e[1].seed++;
	bad += put(c, &c->e[1]) < 0;
	bad += kvswap_delete(c->k, c->e[2].key, strlen(c->e[2].key)) < 0;
	bad += kvswap_delete(c->k, c->e[4].key, strlen(c->e[4].key)) < 0;
	c->e[2].live = c->e[4].live = false;
	is_int(bad, 0, "%s: %u entries stored, one replaced, two deleted", what, n);
	return c;
}

/* Saves or restores store file 0 (path0 + ".saved"). */
static void save0(struct ctx *c, bool restore)
{
	char saved[4200];

	snprintf(saved, sizeof(saved), "%s.saved", c->path0);
	if ((restore ? copy_file(saved, c->path0) : copy_file(c->path0, saved)) < 0)
		bail_out("cannot %s %s", restore ? "restore" : "save", c->path0);
}

static void ctx_free(struct ctx *c)
{
	if (c->d)
		ctx_stop(c);
	free(c);
}

/* --- superblocks ----------------------------------------------------------- */

/* Rewrites slot `slot` of file 0 as slot `from` with generation gen. */
static void craft_slot(const char *path, int slot, int from, uint64_t gen)
{
	uint8_t b[128];
	uint32_t crc;

	if (read_at(path, b, sizeof(b), from * BLK) < 0)
		bail_out("reading %s", path);
	memcpy(b + 72, &gen, 8);
	memset(b + 92, 0, 4);
	crc = crc32c(0, b, sizeof(b));
	memcpy(b + 92, &crc, 4);
	if (write_at(path, b, sizeof(b), slot * BLK) < 0)
		bail_out("writing %s", path);
}

/* Starts on c's store, which must come up with every entry; then stops. */
static void comes_back(struct ctx *c, const char *what, const char *word)
{
	if (!is_int(ctx_start(c, NULL), 0, "%s: kvswapd starts", what))
		bail_out("cannot restart kvswapd");
	harness_read_log(c->d, slog, sizeof(slog));
	if (word && !ok(strstr(slog, word) && strstr(slog, c->path0),
			"%s: its log names %s and says '%s'", what, c->path0, word))
		diag("%s", slog);
	check_all(c, what, NULL);
	is_int(ctx_stop(c), 0, "%s: kvswapd exits 0 on SIGTERM", what);
}

static void test_superblocks(void)
{
	struct ctx *c = make_store("superblocks", 10, 0);
	static uint8_t zero[BLK];
	struct sbv s0, s1;
	char what[96], word[32];

	is_int(ctx_stop(c), 0, "superblocks: kvswapd exits 0 on SIGTERM");
	s0 = sb_read(c->path0, 0);
	s1 = sb_read(c->path0, 1);
	ok(s0.valid && s1.valid && s0.gen == s1.gen && s0.ck_blocks >= 1,
	   "superblocks: both slots hold generation %" PRIu64 " (version %u, "
	   "a checkpoint of %" PRIu64 " blocks)", s0.gen, s0.version,
	   s0.ck_blocks);
	check_clean(c, "a clean store");
	save0(c, false);

	for (int k = 0; k < 4; k++) {
		int slot = k % 2;
		uint8_t b;

		save0(c, true);
		snprintf(what, sizeof(what), "superblock slot %d %s", slot,
			 k < 2 ? "zeroed" : "with its generation's byte flipped");
		if (k < 2) {
			ok(write_at(c->path0, zero, BLK, slot * BLK) == 0, "%s", what);
		} else {
			read_at(c->path0, &b, 1, slot * BLK + 72);
			b ^= 0x01;
			ok(write_at(c->path0, &b, 1, slot * BLK + 72) == 0, "%s", what);
		}
		snprintf(word, sizeof(word), "slot %d", slot);
		check_damaged(c, what, word, NULL);
		comes_back(c, what, word);
		s0 = sb_read(c->path0, 0);
		s1 = sb_read(c->path0, 1);
		ok(s0.valid && s1.valid && s0.gen == s1.gen,
		   "%s: both slots rewritten (generation %" PRIu64 ")", what, s0.gen);
		check_clean(c, what);
	}

	/* The second file's slot 0: its other slot is used, both rewritten. */
	{
		char p1[4096];

		save0(c, true);
		snprintf(p1, sizeof(p1), "%s", c->store + strlen(c->path0) + 1);
		ok(write_at(p1, zero, BLK, 0) == 0, "store file 1: slot 0 zeroed");
		check_damaged(c, "store file 1's slot 0 zeroed", "slot 0", p1);
		comes_back(c, "store file 1's slot 0 zeroed", NULL);
		check_clean(c, "store file 1's slot 0 zeroed, after a start");
	}

	/* A flip cut between the two slot writes: slot 1 one behind. */
	save0(c, true);
	s0 = sb_read(c->path0, 0);
	craft_slot(c->path0, 1, 0, s0.gen - 1);
	is_int(check(c), 0, "slot 1 one generation behind (a crash between the "
	       "two slot writes): kvswapd --check exits 0");
	ok(strstr(out, "note") && strstr(out, "cut between"),
	   "slot 1 one generation behind: the report notes the cut flip");
	comes_back(c, "slot 1 one generation behind", "cut between");
	/* Slot 0 is written first: slot 0 behind slot 1 is a lost write. */
	save0(c, true);
	craft_slot(c->path0, 0, 1, s0.gen - 1);
	check_damaged(c, "slot 0 one generation behind", "stale", NULL);
	comes_back(c, "slot 0 one generation behind", "stale");

	save0(c, true);
	write_at(c->path0, zero, BLK, 0);
	write_at(c->path0, zero, BLK, BLK);
	refused(c, "both superblock slots zeroed", "no valid superblock");
	check_damaged(c, "both superblock slots zeroed", "no valid superblock",
		      NULL);
	salvage(c, "both superblock slots zeroed", "salvage");
	check_all(c, "both superblock slots zeroed, salvaged", NULL);
	is_int(ctx_stop(c), 0, "salvaged: kvswapd exits 0 on SIGTERM");
	check_clean(c, "both superblock slots zeroed, after salvage");
	comes_back(c, "both superblock slots zeroed, after salvage", NULL);
	ctx_free(c);
}

/*
 * The superblocks lost their last update (a lying disk): they name an
 * older generation, while the other log half holds a newer checkpoint
 * with commits after it.
 */
static void test_newer(void)
{
	struct ctx *c = make_store("newer", 8, 0);
	uint8_t slots[2 * BLK];
	unsigned bad = 0;

	is_int(ctx_stop(c), 0, "newer: kvswapd exits 0 on SIGTERM");
	if (read_at(c->path0, slots, sizeof(slots), 0) < 0)
		bail_out("reading the superblocks");
	if (ctx_start(c, NULL) < 0)
		bail_out("cannot restart kvswapd");
	for (unsigned i = 0; i < 4; i++)
		bad += put(c, new_ent(c, "later", 0)) < 0;
	bad += kvswap_delete(c->k, c->e[0].key, strlen(c->e[0].key)) < 0;
	c->e[0].live = false;
	is_int(bad, 0, "newer: 4 more entries and a delete, acknowledged");
	ctx_crash(c);
	ok(write_at(c->path0, slots, sizeof(slots), 0) == 0,
	   "newer: the superblock slots of the stop before put back");
	refused(c, "superblocks behind the log", "newer");
	check_damaged(c, "superblocks behind the log", "newer", NULL);
	salvage(c, "superblocks behind the log", "salvage");
	check_all(c, "superblocks behind the log, salvaged", NULL);
	is_int(ctx_stop(c), 0, "newer, salvaged: kvswapd exits 0 on SIGTERM");
	check_clean(c, "superblocks behind the log, after salvage");
	ctx_free(c);
}

/* --- the log ----------------------------------------------------------------- */

struct victim {
	uint64_t seq;
	char key[48];
};

/*
 * Commit `which` (0 the first after the checkpoint; -1 the last) of the
 * live half: its block and the key of its record (each test commit is one
 * PUT in one block).
 */
static bool commit_victim(struct ctx *c, int which, struct victim *v)
{
	static struct lblk blk[256];
	struct sbv sb = sb_read(c->path0, 0);
	unsigned n = log_blocks(c->path0, &sb, blk, 256), commits = 0, pick;

	for (unsigned i = 0; i < n; i++)
		commits += blk[i].start && blk[i].seq >= sb.ck_blocks;
	if (!commits)
		return false;
	pick = which < 0 ? commits - 1 : (unsigned)which;
	for (unsigned i = 0, k = 0; i < n; i++) {
		if (!blk[i].start || blk[i].seq < sb.ck_blocks || k++ != pick)
			continue;
		if (blk[i].payload[0] != 1)
			return false;
		v->seq = blk[i].seq;
		rec_key(blk[i].payload, v->key, sizeof(v->key));
		return find(c, v->key) != NULL;
	}
	return false;
}

/* Zeroes log block seq of the live half, or flips a byte of its payload. */
static void damage_block(struct ctx *c, uint64_t seq, bool zero)
{
	struct sbv sb = sb_read(c->path0, 0);
	uint8_t b[BLK];
	uint16_t used;
	off_t at = log_block_off(&sb, seq);

	if (zero) {
		memset(b, 0, BLK);
		if (write_at(c->path0, b, BLK, at) < 0)
			bail_out("writing %s", c->path0);
		return;
	}
	/* The payload's last byte: the records' keys stay readable. */
	read_at(c->path0, b, BLK, at);
	memcpy(&used, b + 24, 2);
	used &= 0x0fff;
	b[HDR + used - 1] ^= 0x20;
	if (write_at(c->path0, b, BLK, at) < 0)
		bail_out("writing %s", c->path0);
}

/* A damaged commit: refused, named by --check, salvaged around. */
static void log_case(struct ctx *c, const char *what, int which, bool zero)
{
	struct victim v;
	char word[64];
	const char *lost[2] = { v.key, NULL };

	save0(c, true);
	if (!ok(commit_victim(c, which, &v), "%s: commit found (block %" PRIu64
		", the PUT of %s)", what, v.seq, v.key))
		return;
	damage_block(c, v.seq, zero);
	snprintf(word, sizeof(word), "blocks %" PRIu64 "..%" PRIu64, v.seq, v.seq);
	refused(c, what, word);
	check_damaged(c, what, word, NULL);
	salvage(c, what, "lost");
	if (!zero)
		ok(strstr(slog, v.key) != NULL, "%s: the salvage log names %s, read "
		   "from the damaged block", what, v.key);
	check_all(c, what, lost);
	is_int(ctx_stop(c), 0, "%s, salvaged: kvswapd exits 0 on SIGTERM", what);
	check_clean(c, what);
}

static void test_log(void)
{
	struct ctx *c = make_store("log", 6, 0);
	struct victim v;
	unsigned bad = 0;
	const char *lost[2] = { v.key, NULL };

	/* Commits after the startup checkpoint, then a crash keeps them. */
	is_int(ctx_stop(c), 0, "log: kvswapd exits 0 on SIGTERM");
	if (ctx_start(c, NULL) < 0)
		bail_out("cannot restart kvswapd");
	bad += kvswap_delete(c->k, c->e[3].key, strlen(c->e[3].key)) < 0;
	c->e[3].live = false;
	c->e[5].seed++;
	bad += put(c, &c->e[5]) < 0;
	for (unsigned i = 0; i < 8; i++)
		bad += put(c, new_ent(c, "commit", 0)) < 0;
	is_int(bad, 0, "log: a delete, a replace and 8 entries in 10 commits");
	ctx_crash(c);
	save0(c, false);
	check_clean(c, "log after a crash");

	/* The case: the live slot zeroed with commits after it. */
	{
		static uint8_t zero[BLK];

		ok(write_at(c->path0, zero, BLK, 0) == 0, "after a crash, "
		   "superblock slot 0 zeroed");
		comes_back(c, "slot 0 zeroed after a crash", "slot 0");
		save0(c, true);
	}

	log_case(c, "a zeroed log block amid commits", 4, true);
	log_case(c, "a log block with a byte flipped amid commits", 5, false);
	log_case(c, "the last commit with a byte flipped", -1, false);

	/*
	 * The one blind spot: a whole last commit zeroed looks exactly like a
	 * crash before it was written. Its entry is missing, nothing else.
	 */
	save0(c, true);
	if (ok(commit_victim(c, -1, &v), "the last commit zeroed: found (block %"
	       PRIu64 ", %s)", v.seq, v.key)) {
		damage_block(c, v.seq, true);
		if (!is_int(ctx_start(c, NULL), 0, "the last commit zeroed: kvswapd "
			    "starts (a tail a crash could have cut)"))
			bail_out("cannot restart kvswapd");
		check_all(c, "the last commit zeroed", lost);
		is_int(ctx_stop(c), 0, "the last commit zeroed: kvswapd exits 0");
		check_clean(c, "the last commit zeroed");
		find(c, v.key)->live = false;
	}
	ctx_free(c);
}

/* Records of a checkpoint: where each begins and ends in the stream. */
struct rec {
	size_t from, to;
	char key[48];
};

static void test_checkpoint(void)
{
	struct ctx *c = make_store("checkpoint", 40, 300);
	static struct lblk blk[64];
	static uint8_t stream[64 * PAYLOAD];
	struct rec rec[MAX_ENT];
	struct sbv sb;
	size_t len = 0, nrec = 0;
	unsigned n;

	is_int(ctx_stop(c), 0, "checkpoint: kvswapd exits 0 on SIGTERM");
	sb = sb_read(c->path0, 0);
	n = log_blocks(c->path0, &sb, blk, 64);
	ok(sb.ck_blocks >= 3 && n == sb.ck_blocks, "checkpoint: the live half "
	   "is one checkpoint of %" PRIu64 " blocks (%u valid)", sb.ck_blocks, n);
	for (unsigned i = 0; i < n; i++) {
		memcpy(stream + len, blk[i].payload, blk[i].used);
		len += blk[i].used;
	}
	for (size_t at = 0; at + 16 <= len && nrec < MAX_ENT; nrec++) {
		rec[nrec].from = at;
		rec[nrec].to = at += rec_size(stream + at);
		rec_key(stream + rec[nrec].from, rec[nrec].key, sizeof(rec[0].key));
	}
	save0(c, false);
	for (int k = 0; k < 2; k++) {
		uint64_t b = k ? sb.ck_blocks - 1 : 1;
		const char *lost[MAX_ENT + 1];
		char what[96], word[64];
		unsigned nl = 0;

		/* Every record with a byte in the damaged block is lost. */
		for (size_t i = 0; i < nrec; i++)
			if (rec[i].to > b * PAYLOAD &&
			    rec[i].from < b * PAYLOAD + blk[b].used)
				lost[nl++] = rec[i].key;
		lost[nl] = NULL;
		snprintf(what, sizeof(what), "checkpoint block %" PRIu64 " of %"
			 PRIu64 " %s", b, sb.ck_blocks, k ? "zeroed" :
			 "with a byte flipped");
		save0(c, true);
		damage_block(c, b, k);
		snprintf(word, sizeof(word), "blocks %" PRIu64 "..%" PRIu64, b, b);
		refused(c, what, word);
		check_damaged(c, what, word, "in the checkpoint");
		salvage(c, what, "lost");
		ok(nl >= 1 && nl <= 13, "%s: %u entries had records in it", what, nl);
		{
			unsigned named = 0;

			for (unsigned i = 0; i < nl; i++)
				named += strstr(slog, lost[i]) != NULL;
			ok(k || named == nl, "%s: the salvage log names %u of the %u "
			   "lost entries", what, named, nl);
		}
		check_all(c, what, lost);
		is_int(ctx_stop(c), 0, "%s, salvaged: kvswapd exits 0", what);
		check_clean(c, what);
	}
	ctx_free(c);
}

/* --- data, a running daemon, version 2 ------------------------------------- */

static void test_data(void)
{
	struct ctx *c = make_store("data", 6, 0);
	struct ent *e = new_ent(c, "victim", 0);
	const char *paths[2];
	char p1[4096];
	uint8_t *want = malloc(BLK), *file = malloc(STORE_SIZE);
	int64_t at = -1;
	int which = -1;

	e->len = 3 * BLK;
	is_int(put(c, e), 0, "data: the victim stored");
	/* While the daemon runs, --check refuses the store. */
	is_int(check(c), 2, "kvswapd --check with the daemon running exits 2");
	ok(strstr(out, "in use") != NULL, "the message says the store is in use");
	is_int(ctx_stop(c), 0, "data: kvswapd exits 0 on SIGTERM");
	if (!want || !file)
		bail_out("out of memory");
	snprintf(p1, sizeof(p1), "%s", c->store + strlen(c->path0) + 1);
	paths[0] = c->path0;
	paths[1] = p1;
	fill_seeded(want, BLK, e->seed);
	for (int f = 0; f < 2 && at < 0; f++) {
		if (read_at(paths[f], file, STORE_SIZE, 0) < 0)
			bail_out("reading %s", paths[f]);
		for (size_t off = 0; off + BLK <= STORE_SIZE; off += BLK)
			if (!memcmp(file + off, want, BLK)) {
				at = (int64_t)off + 100;
				which = f;
				break;
			}
	}
	if (ok(at >= 0, "data: the victim's first block found")) {
		uint8_t b = file[at] ^ 0x04;

		write_at(paths[which], &b, 1, at);
		check_damaged(c, "a data byte flipped", "CRC mismatch", e->key);
	}
	free(want);
	free(file);
	ctx_free(c);
}

/* A version 2 store, as kvswapd 0.1 wrote it: the documented layout. */
static void v2_block(uint8_t *b, uint64_t nonce, uint64_t seq, uint32_t used)
{
	uint32_t magic = LOG_MAGIC, zero = 0, crc;

	memcpy(b, &magic, 4);
	memcpy(b + 4, &zero, 4);
	memcpy(b + 8, &nonce, 8);
	memcpy(b + 16, &seq, 8);
	memcpy(b + 24, &used, 4);
	memcpy(b + 28, &zero, 4);
	crc = crc32c(0, b, BLK);
	memcpy(b + 4, &crc, 4);
}

/* Appends a PUT (one segment over one extent) or a DEL record. */
static size_t v2_rec(uint8_t *p, uint8_t type, const char *key, uint32_t len,
		     uint32_t crc, uint64_t block)
{
	uint16_t kl = (uint16_t)strlen(key);
	uint32_t one = 1, zero = 0, nb = (len + BLK - 1) / BLK;
	uint64_t l64 = len;
	size_t n = 16;

	memset(p, 0, 16);
	p[0] = type;
	memcpy(p + 2, &kl, 2);
	if (type == 1) {
		memcpy(p + 4, &one, 4);
		memcpy(p + 8, &one, 4);
	}
	memcpy(p + n, key, kl);
	n += kl;
	if (type != 1)
		return n;
	memcpy(p + n, &l64, 8);
	memcpy(p + n + 8, &crc, 4);
	memcpy(p + n + 12, &one, 4);
	memcpy(p + n + 16, &block, 8);
	memcpy(p + n + 24, &nb, 4);
	memcpy(p + n + 28, &zero, 4);
	return n + 32;
}

static void test_v2(void)
{
	struct ctx *c = calloc(1, sizeof(*c));
	const uint64_t half = MiB, meta = MiB, data = meta + 2 * half;
	const uint64_t nonce = 0x1234567890abcdefull;
	uint8_t *b = calloc(1, 2 * BLK), sb[BLK] = { 0 };
	uint8_t *d = malloc(64 * KiB);
	uint64_t blk = data / BLK;
	size_t pos = HDR;
	struct ent *e[4];
	int fd;

	if (!c || !b || !d)
		bail_out("out of memory");
	snprintf(c->path0, sizeof(c->path0), "%s/v2.kvs", harness_dir());
	snprintf(c->store, sizeof(c->store), "%s", c->path0);
	fd = open(c->path0, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, STORE_SIZE) < 0)
		bail_out("creating %s: %s", c->path0, strerror(errno));
	close(fd);
	/* alpha, bravo, charlie; then bravo deleted and alpha replaced. */
	for (int i = 0; i < 4; i++) {
		e[i] = new_ent(c, i == 0 || i == 3 ? "alpha" : i == 1 ? "bravo" :
			       "charlie", 0);
		snprintf(e[i]->key, sizeof(e[i]->key), "%s", i == 0 || i == 3 ?
			 "alpha" : i == 1 ? "bravo" : "charlie");
		fill_seeded(d, e[i]->len, e[i]->seed);
		memset(d + e[i]->len, 0, round_up(e[i]->len, BLK) - e[i]->len);
		write_at(c->path0, d, round_up(e[i]->len, BLK), (off_t)(blk * BLK));
		pos += v2_rec(b + (i < 3 ? 0 : BLK) + pos, 1,
			      e[i]->key, e[i]->len, crc32c(0, d, e[i]->len), blk);
		if (i == 2) {
			v2_block(b, nonce, 0, (uint32_t)(pos - HDR));
			pos = HDR;
			pos += v2_rec(b + BLK + pos, 2, "bravo", 0, 0, 0);
		}
		blk += round_up(e[i]->len, BLK) / BLK;
	}
	v2_block(b + BLK, nonce, 1, (uint32_t)(pos - HDR));
	/* The model: alpha as replaced, bravo deleted, charlie. */
	*e[0] = *e[3];
	c->n = 3;
	e[1]->live = false;
	e[0]->live = e[2]->live = true;
	write_at(c->path0, b, 2 * BLK, (off_t)(meta + half));
	/* Slot 0: generation 0 (creation); slot 1: generation 1, half 1. */
	for (int slot = 0; slot < 2; slot++) {
		uint32_t v = 2, bs = BLK, zero = 0, one = 1, crc;
		uint64_t size = STORE_SIZE, gen = (uint64_t)slot,
			 nn = slot ? nonce : 0, act = (uint64_t)slot;

		memset(sb, 0, sizeof(sb));
		memcpy(sb, "KVSWAPST", 8);
		memcpy(sb + 8, &v, 4);
		memcpy(sb + 12, &bs, 4);
		memcpy(sb + 16, &size, 8);
		memcpy(sb + 24, &zero, 4);
		memcpy(sb + 28, &one, 4);
		memset(sb + 32, 0x42, 16);
		memcpy(sb + 48, &data, 8);
		memcpy(sb + 56, &meta, 8);
		memcpy(sb + 64, &half, 8);
		memcpy(sb + 72, &gen, 8);
		memcpy(sb + 80, &nn, 8);
		memcpy(sb + 88, &act, 4);
		crc = crc32c(0, sb, 92);
		memcpy(sb + 92, &crc, 4);
		write_at(c->path0, sb, BLK, slot * BLK);
	}
	check_clean(c, "a version 2 store");
	/*
	 * Its keys name no tenant (format 4 keeps one per entry): refused,
	 * with the fix named, until kvswapd --migrate-tenant gives them all
	 * to one tenant: this process's, "uid-<uid>", so that it reads them.
	 */
	{
		struct harness_opts o = { .store_size = STORE_SIZE, .store = c->store };
		char size[32], migrate[64], want[96];
		const char *serve[] = { "--store", c->store, "--store-size", size,
					"--socket", "@DIR/s", NULL };
		const char *mig[] = { migrate, "--store", c->store, "--store-size",
				      size, "--socket", "@DIR/s", NULL };

		snprintf(size, sizeof(size), "%llu", (unsigned long long)STORE_SIZE);
		snprintf(migrate, sizeof(migrate), "--migrate-tenant=uid-%u",
			 (unsigned)getuid());
		is_int(run(serve, out, sizeof(out)), 1, "version 2: kvswapd "
		       "refuses to serve it (exit 1)");
		if (!ok(strstr(out, "version 2") && strstr(out, "keeps no tenants") &&
			strstr(out, "--migrate-tenant=NAME"),
			"version 2: the refusal says how to migrate"))
			diag("%s", out);
		check_clean(c, "a version 2 store, refused");
		is_int(run(mig, out, sizeof(out)), 0, "version 2: kvswapd %s "
		       "migrates it and exits 0", migrate);
		snprintf(want, sizeof(want), "2 entries of tenant 'uid-%u'",
			 (unsigned)getuid());
		if (!ok(strstr(out, "version 2") && strstr(out, "upgraded") &&
			strstr(out, want),
			"version 2: the migration's log says the store is upgraded, "
			"%s", want))
			diag("%s", out);
		is_int(run(mig, out, sizeof(out)), 1, "version 2: a second "
		       "migration is refused (exit 1)");
		ok(strstr(out, "nothing to migrate") != NULL,
		   "version 2: ... as nothing to migrate");
		if (!is_int(harness_start(&o, &c->d), 0, "version 2, migrated: "
			    "kvswapd starts"))
			bail_out("cannot start kvswapd on a migrated store");
		if (harness_connect(c->d, &c->k) < 0 ||
		    kvswap_region_create(c->k, REGION, &c->src) < 0 ||
		    kvswap_region_create(c->k, REGION, &c->dst) < 0)
			bail_out("cannot connect");
	}
	check_all(c, "version 2", NULL);
	is_int(ctx_stop(c), 0, "version 2: kvswapd exits 0 on SIGTERM");
	ok(sb_read(c->path0, 0).valid && sb_read(c->path0, 1).valid,
	   "version 2: both superblock slots are version 4 now");
	check_clean(c, "a version 2 store, upgraded");
	comes_back(c, "a version 2 store, upgraded", NULL);
	free(b);
	free(d);
	ctx_free(c);
}

/*
 * A version 3 store, as kvswapd wrote it before tenants (the documented
 * layout, STORE_FORMAT.md): both superblock slots at generation 1 naming
 * log half 0, whose block 0 is a checkpoint (START and END) of three PUTs
 * with plain keys. It is refused, then migrated to tenant "models", whose
 * entries then belong to a [tenant models] section naming this uid.
 */
static void test_v3(void)
{
	struct ctx *c = calloc(1, sizeof(*c));
	const uint64_t half = MiB, meta = MiB, data = meta + 2 * half;
	const uint64_t nonce = 0x0ddba11cafef00dull, gen = 1, ck = 1;
	uint8_t *b = calloc(1, BLK), sb[BLK] = { 0 };
	uint8_t *d = malloc(64 * KiB);
	uint64_t blk = data / BLK;
	size_t pos = HDR;
	char size[32], conf[4200], cfg[4300], want[96];
	const char *serve[] = { "--store", NULL, "--store-size", size,
				"--socket", "@DIR/s", NULL };
	const char *mig[] = { "--migrate-tenant=models", "--store", NULL,
			      "--store-size", size, "--socket", "@DIR/s", NULL };
	static const char *const names[3] = { "delta", "echo", "foxtrot" };
	int fd;

	if (!c || !b || !d)
		bail_out("out of memory");
	snprintf(c->path0, sizeof(c->path0), "%s/v3.kvs", harness_dir());
	snprintf(c->store, sizeof(c->store), "%s", c->path0);
	serve[1] = mig[2] = c->store;
	fd = open(c->path0, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, STORE_SIZE) < 0)
		bail_out("creating %s: %s", c->path0, strerror(errno));
	close(fd);
	for (int i = 0; i < 3; i++) {
		struct ent *e = new_ent(c, names[i], 0);

		snprintf(e->key, sizeof(e->key), "%s", names[i]);
		fill_seeded(d, e->len, e->seed);
		memset(d + e->len, 0, round_up(e->len, BLK) - e->len);
		write_at(c->path0, d, round_up(e->len, BLK), (off_t)(blk * BLK));
		pos += v2_rec(b + pos, 1, e->key, e->len, crc32c(0, d, e->len), blk);
		blk += round_up(e->len, BLK) / BLK;
		e->live = true;
	}
	{
		uint32_t magic = LOG_MAGIC, zero = 0, crc, g32 = (uint32_t)gen;
		uint16_t used = (uint16_t)(pos - HDR), lead = 0x8000 | 0x4000;
		uint64_t seq = 0;

		memcpy(b, &magic, 4);
		memcpy(b + 4, &zero, 4);
		memcpy(b + 8, &nonce, 8);
		memcpy(b + 16, &seq, 8);
		memcpy(b + 24, &used, 2);
		memcpy(b + 26, &lead, 2);
		memcpy(b + 28, &g32, 4);
		crc = crc32c(0, b, BLK);
		memcpy(b + 4, &crc, 4);
	}
	write_at(c->path0, b, BLK, (off_t)meta);
	for (int slot = 0; slot < 2; slot++) {
		uint32_t v = 3, bs = BLK, zero = 0, one = 1, crc;
		uint64_t fsize = STORE_SIZE;

		memset(sb, 0, sizeof(sb));
		memcpy(sb, "KVSWAPST", 8);
		memcpy(sb + 8, &v, 4);
		memcpy(sb + 12, &bs, 4);
		memcpy(sb + 16, &fsize, 8);
		memcpy(sb + 24, &zero, 4);
		memcpy(sb + 28, &one, 4);
		memset(sb + 32, 0x33, 16);
		memcpy(sb + 48, &data, 8);
		memcpy(sb + 56, &meta, 8);
		memcpy(sb + 64, &half, 8);
		memcpy(sb + 72, &gen, 8);
		memcpy(sb + 80, &nonce, 8);
		memcpy(sb + 88, &zero, 4);
		memcpy(sb + 96, &ck, 8);
		crc = crc32c(0, sb, 128);
		memcpy(sb + 92, &crc, 4);
		write_at(c->path0, sb, BLK, slot * BLK);
	}
	c->n = 3;
	check_clean(c, "a version 3 store");
	ok(strstr(out, "version 3 keeps no tenants") != NULL,
	   "version 3: --check notes that it keeps no tenants");
	snprintf(size, sizeof(size), "%llu", (unsigned long long)STORE_SIZE);
	is_int(run(serve, out, sizeof(out)), 1, "version 3: kvswapd refuses to "
	       "serve it (exit 1)");
	if (!ok(strstr(out, "version 3 keeps no tenants") &&
		strstr(out, "--migrate-tenant=NAME"),
		"version 3: the refusal names the fix, --migrate-tenant=NAME"))
		diag("%s", out);
	check_clean(c, "a version 3 store, refused: unchanged");
	is_int(run(mig, out, sizeof(out)), 0, "version 3: kvswapd "
	       "--migrate-tenant=models migrates it and exits 0");
	if (!ok(strstr(out, "3 entries of tenant 'models'") != NULL,
		"version 3: its log says 3 entries went to tenant 'models'"))
		diag("%s", out);
	ok(sb_read(c->path0, 0).valid && sb_read(c->path0, 1).valid,
	   "version 3: both superblock slots are version 4 now");
	check_clean(c, "a version 3 store, migrated");
	ok(strstr(out, "tenant 'models': 3 entries") != NULL,
	   "version 3, migrated: --check reports tenant 'models': 3 entries");
	/* This process joins tenant models, and reads every entry back. */
	snprintf(conf, sizeof(conf), "%s/v3.conf", harness_dir());
	{
		FILE *f = fopen(conf, "we");

		if (!f)
			bail_out("%s: %s", conf, strerror(errno));
		fprintf(f, "[tenant models]\nuids = %u\n", (unsigned)getuid());
		fclose(f);
	}
	snprintf(cfg, sizeof(cfg), "--config=%s", conf);
	{
		const char *extra[] = { cfg, NULL };
		struct harness_opts o = { .store_size = STORE_SIZE, .store = c->store,
					  .extra_args = extra };

		if (!is_int(harness_start(&o, &c->d), 0, "version 3, migrated: "
			    "kvswapd starts"))
			bail_out("cannot start kvswapd on a migrated store");
		if (harness_connect(c->d, &c->k) < 0 ||
		    kvswap_region_create(c->k, REGION, &c->src) < 0 ||
		    kvswap_region_create(c->k, REGION, &c->dst) < 0)
			bail_out("cannot connect");
		snprintf(want, sizeof(want), "%s", kvswap_tenant(c->k));
		is_str(want, "models", "this process is tenant 'models' by the "
		       "[tenant] section");
	}
	check_all(c, "version 3, migrated", NULL);
	is_int(ctx_stop(c), 0, "version 3: kvswapd exits 0 on SIGTERM");
	free(b);
	free(d);
	ctx_free(c);
}

int main(void)
{
	harness_init("test-robust");
	rng_init(&rng, harness_seed());
	test_superblocks();
	test_newer();
	test_log();
	test_checkpoint();
	test_data();
	test_v2();
	test_v3();
	done_testing();
}
