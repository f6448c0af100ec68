/* SPDX-License-Identifier: MIT */
/*
 * Crash consistency: a loop of start kvswapd, several clients swapping out,
 * replacing and deleting entries, kill -9 at a random moment, restart, and
 * check that
 *   - every acknowledged swap-out reads back byte-exact (unless a later
 *     operation on that key was in flight at the crash),
 *   - every acknowledged delete stays deleted (same proviso),
 *   - no entry reads back wrong: an entry's bytes always match the seed in
 *     its metadata, and no key appears that no client wrote.
 *
 * Each client owns KEYS keys and runs one operation at a time, logging
 * "T" before it sends an operation and "A" once it is acknowledged to a
 * file of its own (O_APPEND, written before the next operation). After a
 * restart the observed state becomes the baseline of the next round.
 *
 * A fourth process, the mixer, writes client 0's first SHARED keys at the
 * same time, in cache mode, and deletes them: durable and cache records
 * of one key race each other. For those keys any state some process
 * tried is allowed, but bytes must still match their seed.
 *
 * $KVSWAP_CRASH_ITERS sets the iterations (default 30).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define CLIENTS		3
#define MIXER		CLIENTS		/* log number of the mixer */
#define SHARED		8		/* client 0's keys the mixer writes */
#define MAX_EXTRA	64
#define KEYS		48
#define MAX_ENTRY	(96 * KiB)
#define REGION		(128 * KiB)
#define STORE_SIZE	"96M"

/* What a key holds: absent, or the entry written with `seed`. */
struct state {
	bool present;
	uint64_t seed;
};

struct key_hist {
	struct state base;	/* observed after the last restart */
	struct state acked;	/* after the last acknowledged operation */
	bool has_acked;
	struct state pending;	/* the operation in flight at the crash */
	bool has_pending;
	/* Shared keys: every state tried since the last check. */
	struct state extra[MAX_EXTRA];
	int nextra;
	bool any;
};

static struct key_hist hist[CLIENTS][KEYS];
static char store_paths[2 * 4096];
static char sock_path[108];
static char log_dir[4096];

static void key_name(char *buf, size_t len, int c, int k)
{
	snprintf(buf, len, "crash-c%d-k%02d", c, k);
}

/* Entry layout for a seed: size and segments derive from it. */
static uint64_t entry_size(uint64_t seed)
{
	return 1 + seed % MAX_ENTRY;
}

static uint32_t entry_segs(uint64_t seed, uint64_t size,
			   struct kvswap_seg_out *out)
{
	uint32_t n = 1 + (uint32_t)((seed >> 20) % 3);
	uint64_t per = size / n, off = 0;

	if (per == 0)
		n = 1;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t len = i + 1 == n ? size - off : per;

		/* Segments at aligned offsets, lengths as they come. */
		out[i] = (struct kvswap_seg_out){ round_up(off, 4096) + i * 4096, len };
		off += len;
	}
	return n;
}

static void log_line(int fd, const char *what, int k, uint64_t seed)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%s %d %" PRIu64 "\n", what, k, seed);

	if (write(fd, line, (size_t)n) != n)
		_exit(3);
}

/*
 * A writer: random puts (put_pct percent, with put_flags) and deletes on
 * `nkeys` keys of client `owner`, logged as log `log_no`, until the daemon
 * dies. The clients write their own keys with the daemon's default
 * durability (durable); the mixer writes client 0's first keys in cache
 * mode.
 */
static void writer(int log_no, int owner, int nkeys, uint32_t put_flags,
		   unsigned put_pct, uint64_t seed)
{
	struct kvswap_seg_out segs[3];
	struct kvswap_region *r;
	struct kvswap_req *q;
	struct kvswap *k;
	struct rng rng;
	char path[4200], key[32];
	int fd;

	snprintf(path, sizeof(path), "%s/client%d.log", log_dir, log_no);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(2);
	rng_init(&rng, seed);
	if (kvswap_connect(sock_path, &k) < 0 ||
	    kvswap_region_create(k, REGION, &r) < 0)
		_exit(0);	/* killed before we got in: fine */
	for (;;) {
		int kk = (int)rng_range(&rng, 0, (uint64_t)nkeys - 1);
		uint64_t s = rng_next(&rng) | 1;
		int ret;

		key_name(key, sizeof(key), owner, kk);
		if (rng_range(&rng, 0, 99) < put_pct) {
			uint32_t n = entry_segs(s, entry_size(s), segs);

			for (uint32_t i = 0; i < n; i++)
				fill_seeded((uint8_t *)kvswap_region_addr(r) +
					    segs[i].offset, segs[i].length, s + i);
			log_line(fd, "T put", kk, s);
			ret = kvswap_swap_out(k, key, strlen(key), r, segs, n, &s,
					      sizeof(s), put_flags, &q);
			if (ret == 0) {
				ret = kvswap_wait(k, q, -1);
				kvswap_req_free(q);
			}
			if (ret == 0)
				log_line(fd, "A put", kk, s);
		} else {
			log_line(fd, "T del", kk, 0);
			ret = kvswap_delete(k, key, strlen(key));
			if (ret == -ENOENT)
				ret = 0;
			if (ret == 0)
				log_line(fd, "A del", kk, 0);
		}
		if (ret < 0)
			_exit(0);	/* the daemon died */
	}
}

static void add_extra(struct key_hist *h, struct state st)
{
	if (h->nextra < MAX_EXTRA)
		h->extra[h->nextra++] = st;
	else
		h->any = true;
}

/* Folds a client's log into the histories. */
static void read_log(int c)
{
	char path[4200], what[8], op[8];
	int k;
	uint64_t seed;
	FILE *f;

	snprintf(path, sizeof(path), "%s/client%d.log", log_dir, c);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fscanf(f, "%7s %7s %d %" SCNu64, what, op, &k, &seed) == 4) {
		struct key_hist *h;
		struct state st = { !strcmp(op, "put"), !strcmp(op, "put") ? seed : 0 };

		if (k < 0 || k >= KEYS)
			continue;
		h = &hist[c == MIXER ? 0 : c][k];
		if ((c == MIXER || c == 0) && k < SHARED) {
			/* Raced by two processes: no order between them. */
			add_extra(h, st);
			continue;
		}
		if (what[0] == 'T') {
			h->pending = st;
			h->has_pending = true;
		} else {
			h->acked = st;
			h->has_acked = true;
			h->has_pending = false;
		}
	}
	fclose(f);
	unlink(path);
}

static bool state_eq(struct state a, struct state b)
{
	return a.present == b.present && (!a.present || a.seed == b.seed);
}

/*
 * Reads every key back; checks it against what may be there and makes
 * what is there the new baseline. Returns the number of problems.
 */
static unsigned verify(struct kvswap *k, struct kvswap_region *r, int iter)
{
	unsigned bad = 0;
	uint8_t *want = malloc(REGION);

	for (int c = 0; c < CLIENTS; c++) {
		for (int kk = 0; kk < KEYS; kk++) {
			struct key_hist *h = &hist[c][kk];
			struct state expect = h->has_acked ? h->acked : h->base;
			struct state seen = { false, 0 };
			struct kvswap_entry e = { 0 };
			char key[32];
			int ret;

			key_name(key, sizeof(key), c, kk);
			ret = kvswap_describe(k, key, strlen(key), &e);
			if (ret == 0) {
				struct kvswap_seg_out segs[3];
				struct kvswap_seg_in in[3];
				uint64_t seed = 0, size;
				uint32_t n;

				if (e.metadata_len == sizeof(seed))
					memcpy(&seed, e.metadata, sizeof(seed));
				size = entry_size(seed);
				n = entry_segs(seed, size, segs);
				if (!seed || e.size != size || e.segments != n) {
					diag("iteration %d: %s: size %" PRIu64 ", %u segments "
					     "do not match its seed", iter, key, e.size,
					     e.segments);
					bad++;
				}
				for (uint32_t i = 0; i < n && i < e.segments; i++)
					in[i] = (struct kvswap_seg_in){ i, segs[i].offset };
				memset(kvswap_region_addr(r), 0x5a, REGION);
				ret = n == e.segments ?
				      kvswap_get(k, key, strlen(key), r, in, n) : -EINVAL;
				for (uint32_t i = 0; ret == 0 && i < n; i++) {
					fill_seeded(want, segs[i].length, seed + i);
					if (memcmp((uint8_t *)kvswap_region_addr(r) +
						   segs[i].offset, want, segs[i].length)) {
						diag("iteration %d: %s: segment %u reads back "
						     "WRONG bytes", iter, key, i);
						bad++;
					}
				}
				if (ret < 0) {
					diag("iteration %d: %s: swap-in failed: %s: %s", iter,
					     key, strerror(-ret), kvswap_last_error(k));
					bad++;
				}
				seen = (struct state){ true, seed };
				kvswap_entry_clear(&e);
			} else if (ret != -ENOENT) {
				diag("iteration %d: %s: describe: %s", iter, key,
				     strerror(-ret));
				bad++;
			}
			bool allowed = h->any || state_eq(seen, expect) ||
				       (h->has_pending && state_eq(seen, h->pending));

			for (int i = 0; !allowed && i < h->nextra; i++)
				allowed = state_eq(seen, h->extra[i]);
			if (!allowed) {
				diag("iteration %d: %s: %s (seed %" PRIu64 "), expected %s "
				     "(seed %" PRIu64 ")%s", iter, key,
				     seen.present ? "present" : "absent", seen.seed,
				     expect.present ? "present" : "absent", expect.seed,
				     h->has_pending ? " or the operation in flight" : "");
				bad++;
			}
			h->base = seen;
			h->has_acked = h->has_pending = h->any = false;
			h->nextra = 0;
		}
	}
	free(want);
	return bad;
}

/* No key but the clients' may exist. */
static unsigned stray_keys(struct kvswap *k)
{
	struct kvswap_entry *es;
	uint64_t cursor = 0;
	unsigned bad = 0;
	uint32_t n;

	do {
		if (kvswap_list(k, &cursor, 500, &es, &n) < 0)
			return 1;
		for (uint32_t i = 0; i < n; i++) {
			char key[32] = "", tail;
			int c, kk;

			/* Keys are bytes, not strings. */
			if (es[i].key_len < sizeof(key))
				memcpy(key, es[i].key, es[i].key_len);
			if (es[i].key_len >= sizeof(key) ||
			    sscanf(key, "crash-c%d-k%d%c", &c, &kk, &tail) != 2 ||
			    c < 0 || c >= CLIENTS || kk < 0 || kk >= KEYS) {
				diag("a key nobody wrote is present (%zu bytes)",
				     es[i].key_len);
				bad++;
			}
		}
		kvswap_entries_free(es, n);
	} while (cursor);
	return bad;
}

static int start(struct harness **ret)
{
	const char *args[] = { "--socket", sock_path, "--store", store_paths,
			       "--store-size", STORE_SIZE, "--queue-depth", "32",
			       NULL };
	struct harness *h;
	int r;

	r = harness_spawn(args, 0, &h);
	if (r == 0)
		r = harness_wait_ready(h, 20000);
	if (r < 0) {
		harness_show_log(h, 20);
		harness_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

int main(void)
{
	const char *e = getenv("KVSWAP_CRASH_ITERS");
	int iters = e ? atoi(e) : 30;
	unsigned bad_total = 0, strays = 0;
	int done_iters = 0;
	struct kvswap_region *r = NULL;
	struct kvswap *k = NULL;
	struct harness *h;
	struct rng rng;

	harness_init("test-crash");
	rng_init(&rng, harness_seed());
	snprintf(log_dir, sizeof(log_dir), "%s", harness_dir());
	snprintf(store_paths, sizeof(store_paths), "%s/crash0.kvs,%s/crash1.kvs",
		 harness_dir(), harness_dir());
	snprintf(sock_path, sizeof(sock_path), "%s/crash.sock", harness_dir());
	if (!is_int(start(&h), 0, "kvswapd starts on a new two-file store"))
		done_testing();

	for (int it = 0; it < iters; it++) {
		pid_t kids[CLIENTS + 1];
		unsigned bad;

		if (kvswap_connect(sock_path, &k) < 0 ||
		    kvswap_region_create(k, REGION, &r) < 0) {
			ok(0, "iteration %d: connect after restart", it);
			break;
		}
		bad = verify(k, r, it);
		strays += stray_keys(k);
		bad_total += bad;
		kvswap_region_release(k, r);
		kvswap_close(k);
		k = NULL;
		if (bad)
			diag("iteration %d: %u problems", it, bad);

		for (int c = 0; c <= CLIENTS; c++) {
			uint64_t s = rng_next(&rng);

			kids[c] = fork();
			if (kids[c] == 0) {
				if (c == MIXER)
					writer(MIXER, 0, SHARED, KVSWAP_CACHE, 70, s);
				writer(c, c, KEYS, 0, 80, s);
			}
		}
		usleep((useconds_t)rng_range(&rng, 20, 400) * 1000);
		harness_kill(h);
		harness_free(h);
		for (int c = 0; c <= CLIENTS; c++) {
			waitpid(kids[c], NULL, 0);
			read_log(c);
		}
		if (start(&h) < 0) {
			ok(0, "iteration %d: kvswapd restarts after kill -9", it);
			done_testing();
		}
		done_iters++;
	}
	is_int(done_iters, iters, "all crash iterations ran");
	ok(bad_total == 0, "%d crash iterations: every acknowledged operation "
	   "survived, nothing read back wrong (%u problems)", done_iters, bad_total);
	is_uint(strays, 0, "no key appeared that no client wrote");

	/* A last round: graceful stop, restart, all still there. */
	if (kvswap_connect(sock_path, &k) == 0 && kvswap_region_create(k, REGION, &r) == 0) {
		struct kvswap_stat st;

		is_uint(verify(k, r, iters), 0, "state after the last crash verified");
		kvswap_stat(k, &st);
		diag("%" PRIu64 " entries, %" PRIu64 " journal commits",
		     st.entries, st.journal_commits);
		kvswap_region_release(k, r);
		kvswap_close(k);
	}
	is_int(harness_stop(h), 0, "SIGTERM: exits 0 after its checkpoint");
	harness_free(h);
	is_int(start(&h), 0, "restarts after the graceful stop");
	if (kvswap_connect(sock_path, &k) == 0 && kvswap_region_create(k, REGION, &r) == 0) {
		is_uint(verify(k, r, iters + 1), 0,
			"every entry survived the graceful restart byte-exact");
		kvswap_region_release(k, r);
		kvswap_close(k);
	}
	is_int(harness_stop(h), 0, "exits 0");
	harness_free(h);
	done_testing();
}
