/* SPDX-License-Identifier: MIT */
/* The crash tests' model of acknowledged operations: see crashmodel.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crashmodel.h"
#include "tap.h"

#define MIXER		CM_CLIENTS	/* log number of the mixer */
#define MAX_EXTRA	64

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

static struct key_hist hist[CM_CLIENTS][CM_KEYS];
static char key_prefix[32];
static char log_dir[PATH_MAX];

void cm_init(const char *prefix, const char *dir)
{
	memset(hist, 0, sizeof(hist));
	snprintf(key_prefix, sizeof(key_prefix), "%s", prefix);
	snprintf(log_dir, sizeof(log_dir), "%s", dir);
}

static void key_name(char *buf, size_t len, int c, int k)
{
	snprintf(buf, len, "%s-c%d-k%02d", key_prefix, c, k);
}

/* Entry layout for a seed: size and segments derive from it. */
static uint64_t entry_size(uint64_t seed)
{
	return 1 + seed % CM_MAX_ENTRY;
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
 * `nkeys` keys of client `owner`, logged as log `log_no`, until an
 * operation fails.
 */
__attribute__((noreturn))
static void writer(const char *socket, int log_no, int owner, int nkeys,
		   uint32_t put_flags, unsigned put_pct, uint64_t seed)
{
	struct kvswap_seg_out segs[3];
	struct kvswap_region *r;
	struct kvswap_req *q;
	struct kvswap *k;
	struct rng rng;
	char path[PATH_MAX + 32], key[64];
	int fd;

	snprintf(path, sizeof(path), "%s/client%d.log", log_dir, log_no);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(2);
	rng_init(&rng, seed);
	if (kvswap_connect(socket, &k) < 0 ||
	    kvswap_region_create(k, CM_REGION, &r) < 0)
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
			_exit(0);	/* the daemon died, or its disk */
	}
}

void cm_start_writers(const char *socket, struct rng *rng,
		      pid_t kids[CM_WRITERS])
{
	for (int c = 0; c < CM_WRITERS; c++) {
		uint64_t s = rng_next(rng);

		kids[c] = fork();
		if (kids[c] < 0)
			bail_out("fork: %s", strerror(errno));
		if (kids[c] == 0) {
			if (c == MIXER)
				writer(socket, MIXER, 0, CM_SHARED, KVSWAP_CACHE, 70, s);
			writer(socket, c, c, CM_KEYS, 0, 80, s);
		}
	}
}

static void add_extra(struct key_hist *h, struct state st)
{
	if (h->nextra < MAX_EXTRA)
		h->extra[h->nextra++] = st;
	else
		h->any = true;
}

/* Folds a writer's log into the histories. */
static void read_log(int c, struct cm_counts *cnt)
{
	char path[PATH_MAX + 32], what[8], op[8];
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

		if (k < 0 || k >= CM_KEYS)
			continue;
		h = &hist[c == MIXER ? 0 : c][k];
		if ((c == MIXER || c == 0) && k < CM_SHARED) {
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
			cnt->acked++;
		}
	}
	fclose(f);
	unlink(path);
}

void cm_reap_writers(const pid_t kids[CM_WRITERS], struct cm_counts *c)
{
	for (int i = 0; i < CM_WRITERS; i++) {
		waitpid(kids[i], NULL, 0);
		read_log(i, c);
	}
}

static bool state_eq(struct state a, struct state b)
{
	return a.present == b.present && (!a.present || a.seed == b.seed);
}

/*
 * Reads key `key` back: *seen is what is there. Returns the problems
 * found with its bytes (counted in c).
 */
static unsigned read_back(struct kvswap *k, struct kvswap_region *r, int iter,
			  const char *key, uint8_t *want, struct state *seen,
			  struct cm_counts *c)
{
	struct kvswap_seg_out segs[3];
	struct kvswap_seg_in in[3];
	struct kvswap_entry e = { 0 };
	uint64_t seed = 0, size;
	unsigned bad = 0;
	uint32_t n;
	int ret;

	*seen = (struct state){ false, 0 };
	ret = kvswap_describe(k, key, strlen(key), &e);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0) {
		diag("iteration %d: %s: describe: %s", iter, key, strerror(-ret));
		c->unreadable++;
		return 1;
	}
	if (e.metadata_len == sizeof(seed))
		memcpy(&seed, e.metadata, sizeof(seed));
	size = entry_size(seed);
	n = entry_segs(seed, size, segs);
	if (!seed || e.size != size || e.segments != n) {
		diag("iteration %d: %s: size %" PRIu64 ", %u segments "
		     "do not match its seed", iter, key, e.size, e.segments);
		bad++;
	}
	for (uint32_t i = 0; i < n && i < e.segments; i++)
		in[i] = (struct kvswap_seg_in){ i, segs[i].offset };
	memset(kvswap_region_addr(r), 0x5a, CM_REGION);
	ret = n == e.segments ? kvswap_get(k, key, strlen(key), r, in, n) : -EINVAL;
	for (uint32_t i = 0; ret == 0 && i < n; i++) {
		fill_seeded(want, segs[i].length, seed + i);
		if (memcmp((uint8_t *)kvswap_region_addr(r) + segs[i].offset, want,
			   segs[i].length)) {
			diag("iteration %d: %s: segment %u reads back WRONG bytes",
			     iter, key, i);
			bad++;
		}
	}
	if (bad)
		c->wrong++;
	*seen = (struct state){ true, seed };
	kvswap_entry_clear(&e);
	if (ret < 0) {
		diag("iteration %d: %s: swap-in failed: %s: %s", iter, key,
		     strerror(-ret), kvswap_last_error(k));
		c->unreadable++;
		bad++;
		/* The daemon may have dropped it: the baseline is what is left. */
		if (kvswap_describe(k, key, strlen(key), &e) == 0)
			kvswap_entry_clear(&e);
		else
			*seen = (struct state){ false, 0 };
	}
	return bad;
}

unsigned cm_verify(struct kvswap *k, struct kvswap_region *r, int iter,
		   struct cm_counts *c)
{
	uint8_t *want = malloc(CM_REGION);
	unsigned bad = 0;

	if (!want)
		bail_out("out of memory");
	for (int cl = 0; cl < CM_CLIENTS; cl++) {
		for (int kk = 0; kk < CM_KEYS; kk++) {
			struct key_hist *h = &hist[cl][kk];
			struct state expect = h->has_acked ? h->acked : h->base;
			struct state seen;
			char key[64];
			bool allowed;

			key_name(key, sizeof(key), cl, kk);
			bad += read_back(k, r, iter, key, want, &seen, c);
			if (h->has_acked)
				c->checked++;
			allowed = h->any || state_eq(seen, expect) ||
				  (h->has_pending && state_eq(seen, h->pending));
			for (int i = 0; !allowed && i < h->nextra; i++)
				allowed = state_eq(seen, h->extra[i]);
			if (!allowed) {
				diag("iteration %d: %s: %s (seed %" PRIu64 "), expected "
				     "%s (seed %" PRIu64 ")%s", iter, key,
				     seen.present ? "present" : "absent", seen.seed,
				     expect.present ? "present" : "absent",
				     expect.seed, h->has_pending ?
				     " or the operation in flight" : "");
				c->lost++;
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

unsigned cm_stray_keys(struct kvswap *k, struct cm_counts *c)
{
	struct kvswap_entry *es;
	uint64_t cursor = 0;
	unsigned bad = 0;
	size_t plen = strlen(key_prefix);
	uint32_t n;

	do {
		int ret = kvswap_list(k, &cursor, 500, &es, &n);

		if (ret < 0) {
			diag("list: %s: %s", strerror(-ret), kvswap_last_error(k));
			c->strays++;
			return bad + 1;
		}
		for (uint32_t i = 0; i < n; i++) {
			char key[64] = "", tail;
			int cl, kk;

			/* Keys are bytes, not strings. */
			if (es[i].key_len < sizeof(key))
				memcpy(key, es[i].key, es[i].key_len);
			if (es[i].key_len >= sizeof(key) ||
			    strncmp(key, key_prefix, plen) ||
			    sscanf(key + plen, "-c%d-k%d%c", &cl, &kk, &tail) != 2 ||
			    cl < 0 || cl >= CM_CLIENTS || kk < 0 || kk >= CM_KEYS) {
				diag("a key nobody wrote is present (%zu bytes)",
				     es[i].key_len);
				bad++;
			}
		}
		kvswap_entries_free(es, n);
	} while (cursor);
	c->strays += bad;
	return bad;
}
