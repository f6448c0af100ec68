/* SPDX-License-Identifier: MIT */
/*
 * I/O errors: kvswapd on faultfs, whose rules make the store's reads,
 * writes, fdatasyncs and opens fail with EIO, transfer short, or run out
 * of space, on the data area, the metadata log halves and the superblock
 * slots (offsets from the live superblock, read from the backing file:
 * docs/STORE_FORMAT.md), at each stage:
 *   - start (open, superblock, recovery, its checkpoint): kvswapd refuses
 *     with exit status 1 and one error line naming the file and the error;
 *   - swap-in: an error event for that segment, io_errors counted, the
 *     entry kept (a failed read proves nothing about the bytes; a CRC
 *     mismatch does, and drops it: both are checked), other keys served;
 *   - swap-out: an error, nothing linked (an entry it replaces stays),
 *     no space leaked;
 *   - commit: a durable put answered with an error, the entry visible and
 *     durable with the next checkpoint; no acknowledged entry lost to a
 *     failed or short log write, even with a power cut right after;
 *   - checkpoint: fails cleanly and is retried; a torn superblock write
 *     that landed is never undone by the retry; shutdown with a log that
 *     cannot be written exits 1 with a clear error;
 * and after each case a put and get round trip works, and (after
 * restarts and power cuts) every acknowledged entry is there byte-exact.
 *
 * Skips where faultfs cannot run (faultmount.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "crc32c.h"
#include "faultmount.h"
#include "harness.h"
#include "tap.h"

#define STORE_SIZE	(16 * MiB)
#define FILE_NAME	"io.kvs"
#define REGION		(1 * MiB)
#define MAX_ACKED	1024
/* After a failed write the journal tries again a second later at most. */
#define RETRY_US	1100000

static struct faultmount *fm;
static char store[PATH_MAX + 16];	/* through the mount */
static char backing[PATH_MAX + 16];	/* the surviving image */
static struct rng rng;

/* The store's layout, from the live superblock in the backing file. */
struct layout {
	uint64_t data;		/* first data byte */
	uint64_t end;		/* file size */
	uint64_t half;		/* bytes per log half */
	uint64_t live;		/* offset of the live log half */
	uint64_t other;		/* offset of the other half */
};

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/*
 * A superblock's CRC (docs/STORE_FORMAT.md): version 2 covers bytes
 * 0..91; version 3 all 128 with the CRC field (92..95) taken as zero.
 */
static uint32_t sb_crc(const uint8_t *sb)
{
	static const uint8_t zero[4];
	uint32_t crc = crc32c(0, sb, 92);

	if (le32(sb + 8) == 2)
		return crc;
	crc = crc32c(crc, zero, 4);
	return crc32c(crc, sb + 96, 32);
}

static struct layout layout(void)
{
	static uint8_t buf[8192];
	const uint8_t *live = NULL;
	struct layout l;
	int fd = open(backing, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || pread(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		bail_out("reading the superblocks of %s: %s", backing,
			 strerror(errno));
	close(fd);
	for (int i = 0; i < 2; i++) {
		const uint8_t *sb = buf + i * 4096;

		if (memcmp(sb, "KVSWAPST", 8) || le32(sb + 92) != sb_crc(sb))
			continue;
		if (!live || le64(sb + 72) > le64(live + 72))
			live = sb;
	}
	if (!live)
		bail_out("%s: no valid superblock", backing);
	l.data = le64(live + 48);
	l.end = le64(live + 16);
	l.half = le64(live + 64);
	l.live = le64(live + 56) + le32(live + 88) * l.half;
	l.other = le64(live + 56) + !le32(live + 88) * l.half;
	return l;
}

/* --- the daemon and a client ------------------------------------------- */

static struct harness *start(void)
{
	struct harness_opts o = { .store_size = STORE_SIZE, .store = store };
	struct harness *h;

	if (harness_start(&o, &h) < 0)
		return NULL;
	faultmount_daemon(h);
	return h;
}

static void stop(struct harness *h, const char *what)
{
	if (!h)
		return;
	is_int(harness_stop(h), 0, "%s: kvswapd exits 0 on SIGTERM", what);
	harness_free(h);
	faultmount_daemon(NULL);
}

struct cl {
	struct kvswap *k;
	struct kvswap_region *r;
	uint8_t *want;
};

static bool cl_open(struct harness *h, struct cl *c)
{
	memset(c, 0, sizeof(*c));
	if (!h || harness_connect(h, &c->k) < 0)
		return false;
	if (kvswap_region_create(c->k, REGION, &c->r) < 0) {
		diag("region: %s", kvswap_last_error(c->k));
		kvswap_close(c->k);
		return false;
	}
	c->want = malloc(REGION);
	if (!c->want)
		bail_out("out of memory");
	return true;
}

static void cl_close(struct cl *c)
{
	if (c->k) {
		kvswap_region_release(c->k, c->r);
		kvswap_close(c->k);
	}
	free(c->want);
	memset(c, 0, sizeof(*c));
}

static int put(struct cl *c, const char *key, uint64_t seed, uint64_t len,
	       uint32_t flags)
{
	struct kvswap_seg_out seg = { 0, len };
	struct kvswap_req *q;
	int r;

	fill_seeded(kvswap_region_addr(c->r), len, seed);
	r = kvswap_swap_out(c->k, key, strlen(key), c->r, &seg, 1, NULL, 0,
			    flags, &q);
	if (r == 0) {
		r = kvswap_wait(c->k, q, 30000);
		kvswap_req_free(q);
	}
	return r;
}

/* 0 if `key` reads back as seed's len bytes, -EILSEQ if not, or -errno. */
static int get(struct cl *c, const char *key, uint64_t seed, uint64_t len)
{
	struct kvswap_seg_in in = { 0, 0 };
	int r;

	memset(kvswap_region_addr(c->r), 0x5a, len);
	r = kvswap_get(c->k, key, strlen(key), c->r, &in, 1);
	if (r < 0)
		return r;
	fill_seeded(c->want, len, seed);
	return memcmp(kvswap_region_addr(c->r), c->want, len) ? -EILSEQ : 0;
}

static bool exists(struct cl *c, const char *key)
{
	struct kvswap_entry e;

	if (kvswap_describe(c->k, key, strlen(key), &e) < 0)
		return false;
	kvswap_entry_clear(&e);
	return true;
}

static struct kvswap_stat stat_now(struct cl *c)
{
	struct kvswap_stat s = { 0 };

	if (kvswap_stat(c->k, &s) < 0)
		diag("stat: %s", kvswap_last_error(c->k));
	return s;
}

static bool has(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

/*
 * Fails the case unless the last error holds `sub`, or the text after a
 * '|' in it (one or the other).
 */
static void error_says(struct cl *c, const char *sub, const char *what)
{
	const char *msg = kvswap_last_error(c->k), *bar = strchr(sub, '|');
	char first[128];

	snprintf(first, sizeof(first), "%.*s", (int)(bar ? bar - sub : 127), sub);
	if (ok(has(msg, first) || (bar && has(msg, bar + 1)),
	       "%s: the error says \"%s\"", what, sub))
		diag("%s", msg);
	else
		diag("error: %s", msg ? msg : "(none)");
}

/* --- what was acknowledged --------------------------------------------- */

enum ack { ACK_PRESENT, ACK_ABSENT, ACK_EITHER };

static struct {
	char key[32];
	uint64_t seed, len;
	enum ack state;
} acked[MAX_ACKED];
static unsigned nacked;

static void note(const char *key, uint64_t seed, uint64_t len, enum ack st)
{
	unsigned i;

	for (i = 0; i < nacked && strcmp(acked[i].key, key); i++)
		;
	if (i == nacked) {
		if (nacked == MAX_ACKED)
			bail_out("too many keys");
		nacked++;
	}
	snprintf(acked[i].key, sizeof(acked[i].key), "%s", key);
	acked[i].seed = seed;
	acked[i].len = len;
	acked[i].state = st;
}

static unsigned find(const char *key)
{
	for (unsigned i = 0; i < nacked; i++)
		if (!strcmp(acked[i].key, key))
			return i;
	bail_out("%s was never acknowledged", key);
}

/* An acknowledged durable put (fails the case if it was not). */
static bool put_acked(struct cl *c, const char *key, uint64_t len)
{
	uint64_t seed = rng_next(&rng);
	int r = put(c, key, seed, len, KVSWAP_DURABLE);

	if (r < 0) {
		diag("put %s: %s: %s", key, strerror(-r), kvswap_last_error(c->k));
		return false;
	}
	note(key, seed, len, ACK_PRESENT);
	return true;
}

/*
 * A durable put that may fail: acknowledged, it must survive; failed, it
 * may or may not (never damaged). Returns put()'s result.
 */
static int put_try(struct cl *c, const char *key, uint64_t len)
{
	uint64_t seed = rng_next(&rng);
	int r = put(c, key, seed, len, KVSWAP_DURABLE);

	note(key, seed, len, r == 0 ? ACK_PRESENT : ACK_EITHER);
	return r;
}

/*
 * Waits (1.1 s per round, 12 rounds at most) until faultfs has fired
 * `n` more faults of kind `stat` (e.g. "faults_eio") than `base`: the
 * journal retries a failed write from its tick, or with the next commit,
 * which a put under `prefix` asks for each round. Returns whether they
 * fired.
 */
static bool wait_faults(struct cl *c, const char *stat, uint64_t base,
			uint64_t n, const char *prefix)
{
	char key[40];

	for (int i = 0; i < 12; i++) {
		if (faultmount_stat(fm, stat) >= base + n)
			return true;
		usleep(RETRY_US);
		if (faultmount_stat(fm, stat) >= base + n)
			return true;
		snprintf(key, sizeof(key), "%s-%d", prefix, i);
		put_try(c, key, 5000);
	}
	return faultmount_stat(fm, stat) >= base + n;
}

/* Every acknowledged entry is there byte-exact, every deleted one gone. */
static void check_acked(struct cl *c, const char *what)
{
	unsigned bad = 0, present = 0;

	for (unsigned i = 0; i < nacked; i++) {
		int r = get(c, acked[i].key, acked[i].seed, acked[i].len);

		if (r == 0)
			present++;
		if (acked[i].state == ACK_EITHER && (r == 0 || r == -ENOENT))
			continue;
		if (acked[i].state == ACK_ABSENT && r == -ENOENT)
			continue;
		if (acked[i].state == ACK_PRESENT && r == 0)
			continue;
		diag("%s: %s: %s, expected %s", what, acked[i].key,
		     r == 0 ? "present" : strerror(-r),
		     acked[i].state == ACK_PRESENT ? "present byte-exact" :
		     acked[i].state == ACK_ABSENT ? "absent" : "absent or exact");
		bad++;
	}
	ok(bad == 0, "%s: every acknowledged entry is as acknowledged "
	   "(%u keys, %u present)", what, nacked, present);
}

/* A put and a get of a new key: the daemon still serves. */
static void roundtrip(struct cl *c, const char *what)
{
	static unsigned n;
	char key[32];
	uint64_t seed = rng_next(&rng), len = 1 + rng_range(&rng, 0, 64 * KiB);
	int r;

	snprintf(key, sizeof(key), "rt-%u", n++);
	r = put(c, key, seed, len, KVSWAP_DURABLE);
	if (r == 0)
		r = get(c, key, seed, len);
	if (!ok(r == 0, "%s: then a put and get round trip works", what))
		diag("%s: %s", strerror(-r), kvswap_last_error(c->k));
	if (r == 0)
		note(key, seed, len, ACK_PRESENT);
}

/*
 * Power cut (cut_cmd, or none: kill -9 only), then a fresh start on what
 * survived. Returns the new daemon or NULL.
 */
static struct harness *crash(struct harness *h, struct cl *c, const char *cut_cmd)
{
	cl_close(c);
	if (cut_cmd)
		faultmount_cmd(fm, "%s", cut_cmd);
	harness_free(h);
	faultmount_daemon(NULL);
	faultmount_cmd(fm, "reset");
	h = start();
	ok(h != NULL, "kvswapd restarts after %s and kill -9",
	   cut_cmd ? cut_cmd : "nothing");
	if (h && !cl_open(h, c))
		bail_out("cannot connect after the restart");
	return h;
}

/* --- start -------------------------------------------------------------- */

/*
 * Starts kvswapd under `rule` and expects a refusal: exit status 1, one
 * error line naming the store file and holding `says`.
 */
static void start_refused(const char *rule, const char *says, const char *what)
{
	const char *args[] = { "--socket", "@DIR/kvswapd.sock", "--store", store,
			       "--store-size", "16M", NULL };
	static char log[1 << 16];
	char status[64], *line = NULL, *p;
	struct harness *h;
	unsigned errs = 0;
	int r;

	if (faultmount_cmd(fm, "%s", rule) < 0 ||
	    harness_spawn(args, 0, &h) < 0) {
		ok(0, "start, %s: set up", what);
		return;
	}
	r = harness_wait_ready(h, 10000);
	if (!ok(r == -ECHILD && WIFEXITED(h->status) && WEXITSTATUS(h->status) == 1,
		"start, %s: kvswapd refuses to start, exit status 1", what))
		diag("%s", r == 0 ? "it started" :
		     harness_status_str(h->status, status, sizeof(status)));
	harness_read_log(h, log, sizeof(log));
	for (p = strtok(log, "\n"); p; p = strtok(NULL, "\n")) {
		if (strncmp(p, "<3>", 3))
			continue;
		errs++;
		line = p;
	}
	if (!ok(errs == 1 && has(line, store) && has(line, says),
		"start, %s: one error line names the file and says \"%s\"", what,
		says))
		harness_show_log(h, 10);
	else
		diag("%s", line + 3);
	harness_free(h);
	faultmount_cmd(fm, "reset");
}

static void test_start(void)
{
	struct layout l;
	char rule[256];

	start_refused("eio op=open file=" FILE_NAME, "Input/output error",
		      "EIO opening the store file");
	start_refused("eio op=read file=" FILE_NAME " off=0 len=8k",
		      "Input/output error", "EIO reading the superblocks");
	start_refused("short op=read file=" FILE_NAME " off=0 len=8k",
		      "superblock", "a short read of the superblocks");
	/* Each refusal leaves the store as it was: the same live half. */
	l = layout();
	snprintf(rule, sizeof(rule), "eio op=read file=%s off=%" PRIu64 " len=%" PRIu64,
		 FILE_NAME, l.live, l.half);
	start_refused(rule, "Input/output error", "EIO reading the live log half");
	/* The read stops after the live half's first block. */
	snprintf(rule, sizeof(rule), "short op=read file=%s off=%" PRIu64 " len=4k",
		 FILE_NAME, l.live + 4096);
	start_refused(rule, "short read", "a short read of the live log half");
	snprintf(rule, sizeof(rule), "eio op=write file=%s off=%" PRIu64 " len=%" PRIu64,
		 FILE_NAME, l.other, l.half);
	start_refused(rule, "Input/output error",
		      "EIO writing the recovery's checkpoint");
	start_refused("eio op=write file=" FILE_NAME " off=0 len=8k",
		      "Input/output error", "EIO writing the superblock");
	start_refused("eio op=fsync file=" FILE_NAME, "Input/output error",
		      "EIO from fdatasync");
}

/* --- swap-in ------------------------------------------------------------ */

/* Finds `len` bytes of seed's data in the backing file; -1 if absent. */
static off_t find_bytes(uint64_t seed, size_t len, uint64_t from, uint64_t to)
{
	size_t chunk = 1 << 20;
	uint8_t *want = malloc(len), *buf = malloc(chunk + len);
	off_t at = -1;
	int fd = open(backing, O_RDONLY | O_CLOEXEC);

	if (!want || !buf || fd < 0)
		bail_out("find_bytes: %s", strerror(errno));
	fill_seeded(want, len, seed);
	for (uint64_t off = from; off < to && at < 0; off += chunk) {
		ssize_t n = pread(fd, buf, chunk + len, (off_t)off);
		uint8_t *p;

		if (n < (ssize_t)len)
			break;
		p = memmem(buf, (size_t)n, want, len);
		if (p)
			at = (off_t)(off + (uint64_t)(p - buf));
	}
	close(fd);
	free(want);
	free(buf);
	return at;
}

/*
 * A read fault on the data area under `rule`, on entry a (two full blocks
 * and a tail: a chain of a read and a bounce-block read): the swap-in
 * fails with EIO and `says`, io_errors counts it, other keys are served,
 * and a (kept) reads back exactly once the fault is gone.
 */
static void read_fault(struct cl *c, const char *rule, const char *says,
		       const char *what)
{
	struct kvswap_stat s0 = stat_now(c), s1;
	unsigned a = find("in-a"), b = find("in-b");
	int r;

	faultmount_cmd(fm, "%s", rule);
	r = get(c, "in-a", acked[a].seed, acked[a].len);
	is_int(r, -EIO, "swap-in, %s: fails with EIO", what);
	error_says(c, says, what);
	s1 = stat_now(c);
	is_uint(s1.io_errors, s0.io_errors + 1, "swap-in, %s: io_errors counts it",
		what);
	is_uint(s1.checksum_errors, s0.checksum_errors, "swap-in, %s: no checksum "
		"error", what);
	faultmount_cmd(fm, "reset");
	is_int(get(c, "in-b", acked[b].seed, acked[b].len), 0,
	       "swap-in, %s: another entry is served", what);
	is_int(get(c, "in-a", acked[a].seed, acked[a].len), 0,
	       "swap-in, %s: the entry is kept and reads back exactly", what);
	roundtrip(c, what);
}

static void test_swap_in(struct cl *c)
{
	struct layout l = layout();
	struct kvswap_stat s0, s1;
	char rule[256];
	unsigned b;
	off_t at;
	int fd;

	if (!put_acked(c, "in-a", 2 * 4096 + 1000) || !put_acked(c, "in-b", 5000))
		bail_out("cannot store the swap-in entries");
	b = find("in-b");

	snprintf(rule, sizeof(rule), "eio op=read file=%s off=%" PRIu64 " len=%" PRIu64,
		 FILE_NAME, l.data, l.end - l.data);
	read_fault(c, rule, "store read failed: Input/output error",
		   "EIO on the first read");
	snprintf(rule, sizeof(rule), "eio op=read file=%s off=%" PRIu64 " len=%"
		 PRIu64 " nth=2", FILE_NAME, l.data, l.end - l.data);
	read_fault(c, rule, "store read failed: Input/output error",
		   "EIO on the bounce-block read");
	snprintf(rule, sizeof(rule), "short op=read file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.data, l.end - l.data);
	read_fault(c, rule, "short store I/O", "a short first read");
	snprintf(rule, sizeof(rule), "short op=read file=%s off=%" PRIu64 " len=%"
		 PRIu64 " nth=2", FILE_NAME, l.data, l.end - l.data);
	read_fault(c, rule, "short store read", "a short bounce-block read");

	/* Damaged bytes: the CRC proves it, and the entry is dropped. */
	at = find_bytes(acked[b].seed, 512, l.data, l.end);
	if (!ok(at >= 0, "swap-in, damaged bytes: in-b's bytes found in the image"))
		return;
	fd = open(backing, O_RDWR | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, "\xff", 1, at + 100) != 1)
		bail_out("damaging %s: %s", backing, strerror(errno));
	close(fd);
	s0 = stat_now(c);
	is_int(get(c, "in-b", acked[b].seed, acked[b].len), -EBADMSG,
	       "swap-in, damaged bytes: fails with EBADMSG");
	error_says(c, "checksum mismatch", "swap-in, damaged bytes");
	s1 = stat_now(c);
	is_uint(s1.checksum_errors, s0.checksum_errors + 1,
		"swap-in, damaged bytes: checksum_errors counts it");
	is_uint(s1.io_errors, s0.io_errors, "swap-in, damaged bytes: no I/O error");
	ok(!exists(c, "in-b"), "swap-in, damaged bytes: the entry is dropped");
	acked[b].state = ACK_ABSENT;
	roundtrip(c, "damaged bytes");
}

/* --- swap-out ----------------------------------------------------------- */

/*
 * A write fault on the data area under `rule`: the put of `key` fails with
 * `err` and `says`, io_errors counts it, nothing is linked, no space
 * leaks.
 */
static void write_fault(struct cl *c, const char *rule, const char *key,
			int err, const char *says, const char *what)
{
	struct kvswap_stat s0 = stat_now(c), s1;
	bool was = exists(c, key);

	faultmount_cmd(fm, "%s", rule);
	is_int(put(c, key, rng_next(&rng), 3 * 4096 + 5, KVSWAP_DURABLE), err,
	       "swap-out, %s: the put fails with %s", what, strerror(-err));
	error_says(c, says, what);
	faultmount_cmd(fm, "reset");
	s1 = stat_now(c);
	is_uint(s1.io_errors, s0.io_errors + 1, "swap-out, %s: io_errors counts it",
		what);
	is_uint(s1.used, s0.used, "swap-out, %s: no space leaked", what);
	is_uint(s1.entries, s0.entries, "swap-out, %s: nothing linked", what);
	ok(exists(c, key) == was, "swap-out, %s: the key is as it was", what);
	roundtrip(c, what);
}

static void test_swap_out(struct cl *c)
{
	struct layout l = layout();
	char rule[256];

	snprintf(rule, sizeof(rule), "eio op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.data, l.end - l.data);
	write_fault(c, rule, "out-a", -EIO, "store write failed: Input/output error",
		    "EIO");
	snprintf(rule, sizeof(rule), "short op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.data, l.end - l.data);
	/* FUSE turns a short asynchronous direct write into EIO itself. */
	write_fault(c, rule, "out-a", -EIO,
		    "short store I/O|store write failed: Input/output error",
		    "a short write");
	snprintf(rule, sizeof(rule), "enospc op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64 " once", FILE_NAME, l.data, l.end - l.data);
	write_fault(c, rule, "out-a", -ENOSPC,
		    "store write failed: No space left on device", "ENOSPC");

	/* A failed replace leaves the entry it would have replaced. */
	if (!put_acked(c, "out-r", 20000))
		bail_out("cannot store out-r");
	snprintf(rule, sizeof(rule), "eio op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.data, l.end - l.data);
	write_fault(c, rule, "out-r", -EIO, "store write failed", "a failed replace");
	is_int(get(c, "out-r", acked[find("out-r")].seed, 20000), 0,
	       "swap-out, a failed replace: the old entry reads back exactly");
}

/* --- commit ------------------------------------------------------------- */


/*
 * The durable put of `key` fails with EIO under `rule`, saying the commit
 * failed; io_errors counts it; the entry is visible (as documented). Then
 * the next durable put, a checkpoint, succeeds; the failed one is in it.
 */
static void commit_fault(struct cl *c, const char *rule, const char *key,
			 const char *what)
{
	struct kvswap_stat s0 = stat_now(c), s1, s2;
	uint64_t seed = rng_next(&rng);
	char next[40];

	faultmount_cmd(fm, "%s", rule);
	is_int(put(c, key, seed, 7000, KVSWAP_DURABLE), -EIO,
	       "commit, %s: the durable put fails with EIO", what);
	error_says(c, "commit failed (Input/output error): durability not confirmed",
		   what);
	s1 = stat_now(c);
	is_uint(s1.io_errors, s0.io_errors + 1, "commit, %s: io_errors counts it",
		what);
	is_int(get(c, key, seed, 7000), 0, "commit, %s: the entry is visible, "
	       "its bytes whole", what);
	note(key, seed, 7000, ACK_EITHER);
	faultmount_cmd(fm, "reset");
	usleep(RETRY_US);
	snprintf(next, sizeof(next), "%s-next", key);
	ok(put_acked(c, next, 3000), "commit, %s: the next durable put succeeds",
	   what);
	s2 = stat_now(c);
	is_uint(s2.checkpoints, s1.checkpoints + 1, "commit, %s: as a checkpoint",
		what);
	/* That checkpoint holds every linked entry: the failed one too. */
	note(key, seed, 7000, ACK_PRESENT);
}

static struct harness *test_commit(struct harness *h, struct cl *c)
{
	struct layout l = layout();
	struct kvswap_stat s0;
	char rule[256], cut[64];

	snprintf(rule, sizeof(rule), "eio op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.live, l.half);
	commit_fault(c, rule, "c-eio", "EIO on the log write");
	h = crash(h, c, "cut drop");
	check_acked(c, "commit, EIO on the log write, then a power cut");
	roundtrip(c, "commit, EIO on the log write");

	commit_fault(c, "eio op=fsync file=" FILE_NAME, "c-sync",
		     "EIO from fdatasync");
	snprintf(cut, sizeof(cut), "cut random %" PRIu64 " sector=512",
		 rng_next(&rng) >> 1);
	h = crash(h, c, cut);
	check_acked(c, "commit, EIO from fdatasync, then a power cut");
	roundtrip(c, "commit, EIO from fdatasync");

	/*
	 * A log write that lands in part (faultfs writes the first half of
	 * it; FUSE reports EIO), and the power goes before anything else:
	 * the torn block holds no acknowledged record.
	 */
	l = layout();
	snprintf(rule, sizeof(rule), "short op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.live, l.half);
	s0 = stat_now(c);
	faultmount_cmd(fm, "%s", rule);
	is_int(put_try(c, "c-torn", 9000), -EIO,
	       "commit, a torn log write: the durable put fails with EIO");
	error_says(c, "commit failed (Input/output error)", "commit, a torn log write");
	is_uint(stat_now(c).io_errors, s0.io_errors + 1,
		"commit, a torn log write: io_errors counts it");
	h = crash(h, c, "cut drop");
	check_acked(c, "commit, a torn log write, then a power cut");
	roundtrip(c, "commit, a torn log write");
	return h;
}

/* --- checkpoint --------------------------------------------------------- */

/* Durable puts of small entries until one fails; returns its number. */
static int put_until_failure(struct cl *c, const char *prefix, int max,
			     uint64_t *ret_seed)
{
	char key[32];

	for (int i = 0; i < max; i++) {
		uint64_t seed = rng_next(&rng);

		snprintf(key, sizeof(key), "%s-%03d", prefix, i);
		if (put(c, key, seed, 100, KVSWAP_DURABLE) < 0) {
			*ret_seed = seed;
			return i;
		}
		note(key, seed, 100, ACK_PRESENT);
	}
	return -1;
}

/*
 * Shutdown with a log that cannot be written: exits 1 with a clear error,
 * and nothing acknowledged is lost.
 */
static struct harness *shutdown_fault(struct harness *h, struct cl *c)
{
	struct layout l = layout();
	static char log[1 << 16];
	char rule[256], status[64];
	int r;

	snprintf(rule, sizeof(rule), "eio op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64 " sticky", FILE_NAME, l.live < l.other ? l.live : l.other,
		 2 * l.half);
	faultmount_cmd(fm, "%s", rule);
	is_int(put_try(c, "sd-a", 5000), -EIO,
	       "shutdown, log writes fail: a durable put fails with EIO");
	r = kvswap_delete(c->k, "base-000", 8);
	is_int(r, -EIO, "shutdown, log writes fail: a durable delete fails with EIO");
	error_says(c, "metadata write failed", "shutdown, the failed delete");
	acked[find("base-000")].state = ACK_EITHER;
	cl_close(c);
	kill(h->pid, SIGTERM);
	r = harness_wait_exit(h, 20000);
	ok(r == 0 && WIFEXITED(h->status) && WEXITSTATUS(h->status) == 1,
	   "shutdown, log writes fail: SIGTERM exits 1 (%s)", r ? "still running" :
	   harness_status_str(h->status, status, sizeof(status)));
	harness_read_log(h, log, sizeof(log));
	if (!ok(has(log, "<3>checkpoint to ") && has(log, store) &&
		has(log, "Input/output error"), "shutdown, log writes fail: the "
		"log says the checkpoint to the store failed, and why"))
		harness_show_log(h, 10);
	harness_free(h);
	faultmount_daemon(NULL);
	faultmount_cmd(fm, "reset");
	h = start();
	ok(h && cl_open(h, c), "shutdown, log writes fail: kvswapd starts again");
	if (!h)
		bail_out("kvswapd does not start again");
	check_acked(c, "after the failed shutdown");
	roundtrip(c, "after the failed shutdown");
	return h;
}

static struct harness *test_checkpoint(struct harness *h, struct cl *c)
{
	struct layout l = layout();
	struct kvswap_stat s0 = stat_now(c), s1, s2;
	char rule[256], cut[64];
	uint64_t seed = 0, eio0, short0;
	int n;

	/* The checkpoint a three-quarters full log half asks for. */
	snprintf(rule, sizeof(rule), "eio op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.other, l.half);
	faultmount_cmd(fm, "%s", rule);
	n = put_until_failure(c, "ck", 1000, &seed);
	if (!ok(n > 0, "checkpoint, EIO on its write: after %d commits, a durable "
		"put fails", n))
		return h;
	error_says(c, "commit failed (Input/output error)", "checkpoint, EIO");
	s1 = stat_now(c);
	is_uint(s1.checkpoints, s0.checkpoints, "checkpoint, EIO: none counted");
	is_uint(s1.io_errors, s0.io_errors + 1, "checkpoint, EIO: io_errors counts it");
	faultmount_cmd(fm, "reset");
	usleep(RETRY_US);
	ok(put_acked(c, "ck-next", 3000), "checkpoint, EIO: the next durable put "
	   "succeeds");
	s2 = stat_now(c);
	is_uint(s2.checkpoints, s1.checkpoints + 1, "checkpoint, EIO: retried, "
		"and it lands");
	snprintf(cut, sizeof(cut), "ck-%03d", n);
	note(cut, seed, 100, ACK_PRESENT);
	snprintf(cut, sizeof(cut), "cut random %" PRIu64, rng_next(&rng) >> 1);
	h = crash(h, c, cut);
	check_acked(c, "checkpoint, EIO on its write, then a power cut");
	roundtrip(c, "checkpoint, EIO on its write");

	/*
	 * Its superblock write fails. A failed commit asks for the checkpoint,
	 * which the tick or the next put runs.
	 */
	l = layout();
	s0 = stat_now(c);
	eio0 = faultmount_stat(fm, "faults_eio");
	snprintf(rule, sizeof(rule), "eio op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.live, l.half);
	faultmount_cmd(fm, "%s", rule);
	faultmount_cmd(fm, "eio op=write file=" FILE_NAME " off=0 len=8k");
	is_int(put_try(c, "sb-a", 5000), -EIO,
	       "checkpoint, EIO on the superblock: the commit before fails");
	ok(wait_faults(c, "faults_eio", eio0, 2, "sb-b"), "checkpoint, EIO on the "
	   "superblock: the checkpoint's superblock write fails");
	s1 = stat_now(c);
	is_uint(s1.io_errors, s0.io_errors + 2, "checkpoint, EIO on the "
		"superblock: io_errors counts both");
	faultmount_cmd(fm, "reset");
	usleep(RETRY_US);
	ok(put_acked(c, "sb-c", 3000), "checkpoint, EIO on the superblock: the "
	   "next durable put succeeds");
	s2 = stat_now(c);
	/* The flip is retried (both slots), then a fresh checkpoint. */
	ok(s2.checkpoints > s0.checkpoints, "checkpoint, EIO on the superblock: "
	   "retried, and it lands (%" PRIu64 " checkpoints)",
	   s2.checkpoints - s0.checkpoints);
	h = crash(h, c, "cut drop");
	check_acked(c, "checkpoint, EIO on the superblock, then a power cut");
	roundtrip(c, "checkpoint, EIO on the superblock");

	/*
	 * The superblock write fails but lands (faultfs writes the first half
	 * of it, which holds the whole superblock): the store names the new
	 * half now. Nothing may write over that half before a superblock is
	 * known to have landed (kvswapd writes the same superblock again
	 * first); here the next write to that half is torn too, and the power
	 * goes right after.
	 */
	l = layout();
	short0 = faultmount_stat(fm, "faults_short");
	snprintf(rule, sizeof(rule), "eio op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64, FILE_NAME, l.live, l.half);
	faultmount_cmd(fm, "%s", rule);
	faultmount_cmd(fm, "short op=write file=" FILE_NAME " off=0 len=8k");
	snprintf(rule, sizeof(rule), "short op=write file=%s off=%" PRIu64 " len=%"
		 PRIu64 " nth=2", FILE_NAME, l.other, l.half);
	faultmount_cmd(fm, "%s", rule);
	is_int(put_try(c, "tsb-a", 5000), -EIO,
	       "checkpoint, torn superblock: the commit before fails");
	/*
	 * The torn superblock is written again to both slots before either
	 * half is touched; whether a later write to that half is torn too
	 * depends on what the retry writes first: at least the superblock's.
	 */
	ok(wait_faults(c, "faults_short", short0, 1, "tsb-b"), "checkpoint, torn "
	   "superblock: it fails (%" PRIu64 " short writes)",
	   faultmount_stat(fm, "faults_short") - short0);
	h = crash(h, c, "cut drop");
	check_acked(c, "checkpoint, torn superblock and torn retry, then a power cut");
	roundtrip(c, "checkpoint, torn superblock");

	return shutdown_fault(h, c);
}

int main(int argc, char **argv)
{
	struct harness *h;
	struct cl c;
	char key[32];

	(void)argc;
	harness_init("test-ioerr");
	fm = faultmount_start(argv[0]);
	rng_init(&rng, harness_seed());
	if (snprintf(store, sizeof(store), "%s/%s", fm->mnt, FILE_NAME) >=
	    (int)sizeof(store) ||
	    snprintf(backing, sizeof(backing), "%s/%s", fm->back, FILE_NAME) >=
	    (int)sizeof(backing))
		bail_out("path too long");

	/* A store with enough entries for two log blocks, then stopped. */
	h = start();
	if (!ok(h && cl_open(h, &c), "kvswapd starts on a new store on faultfs"))
		done_testing();
	for (int i = 0; i < 120; i++) {
		snprintf(key, sizeof(key), "base-%03d", i);
		if (!put_acked(&c, key, 1 + rng_range(&rng, 0, 3000)))
			bail_out("cannot fill the store");
	}
	cl_close(&c);
	stop(h, "after filling");

	test_start();
	h = start();
	if (!ok(h && cl_open(h, &c), "kvswapd starts once the faults are gone"))
		done_testing();
	check_acked(&c, "after the refused starts");
	roundtrip(&c, "after the refused starts");

	test_swap_in(&c);
	test_swap_out(&c);
	h = test_commit(h, &c);
	h = test_checkpoint(h, &c);

	cl_close(&c);
	stop(h, "the end");
	is_int(faultmount_stop(fm), 0, "faultfs unmounts and exits 0");
	done_testing();
}
