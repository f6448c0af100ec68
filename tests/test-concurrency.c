/* SPDX-License-Identifier: MIT */
/*
 * Several clients at once, and requests that race each other:
 * - forked clients, each on its own connection, storing and reading back
 *   distinct keys while the others do the same;
 * - a Delete, and a replacing SwapOut, issued while a large SwapIn of the
 *   same key is in flight: the SwapIn still returns the old data exactly,
 *   and the store space of the old entry is not reused under it;
 * - clients killed with SIGKILL in the middle of a large swap-out and of
 *   large swap-ins: the daemon finishes or cancels their I/O, forgets
 *   them (Stat in_flight back to 0, clients down), and keeps serving.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "harness.h"
#include "tap.h"

#define CANARY		0xa5
#define WAIT_MS		60000
#define NCLIENTS	4
#define ROUNDS		25

static struct harness *d1, *d2;
static uint64_t seed;

/* --- forked clients ------------------------------------------------------- */

/* Reports a child's failure on stderr (children do not print TAP). */
#define child_fail(...) \
	do { \
		fprintf(stderr, "# client %u: ", id); \
		fprintf(stderr, __VA_ARGS__); \
		fprintf(stderr, "\n"); \
		failures++; \
	} while (0)

/*
 * One client: ROUNDS put/get pairs of keys of its own, of random sizes and
 * segment counts, each read back into a canary-filled region and checked,
 * then every key still stored is read back once more and deleted.
 * Returns the number of failures (the exit status).
 */
static int client_main(unsigned id)
{
	struct kvswap_region *sr, *dr;
	struct kvswap_seg_out segs[4];
	struct kvswap_seg_in in[4];
	uint32_t nseg[ROUNDS];
	uint64_t len[ROUNDS][4];
	struct kvswap *k;
	struct rng rng;
	uint8_t *s, *t;
	char key[32];
	int failures = 0, r;

	rng_init(&rng, seed ^ (0x1000 + id));
	r = kvswap_connect(d1->socket, &k);
	if (r < 0) {
		fprintf(stderr, "# client %u: connect: %s\n", id, strerror(-r));
		return 1;
	}
	if (kvswap_region_create(k, 4 * MiB, &sr) < 0 ||
	    kvswap_region_create(k, 4 * MiB, &dr) < 0) {
		fprintf(stderr, "# client %u: regions: %s\n", id,
			kvswap_last_error(k));
		return 1;
	}
	s = kvswap_region_addr(sr);
	t = kvswap_region_addr(dr);

	for (unsigned i = 0; i < ROUNDS; i++) {
		nseg[i] = (uint32_t)rng_range(&rng, 1, 4);
		for (uint32_t j = 0; j < nseg[i]; j++) {
			len[i][j] = rng_range(&rng, 1, 1 * MiB - 1);
			segs[j].offset = j * MiB;
			segs[j].length = len[i][j];
			in[j].index = j;
			in[j].offset = j * MiB;
			/* Data derived from (client, round, segment): see below. */
			fill_seeded(s + segs[j].offset, len[i][j],
				    seed ^ ((uint64_t)id << 40 | i << 8 | j));
		}
		snprintf(key, sizeof(key), "client-%u-%u", id, i);
		r = kvswap_put(k, key, strlen(key), sr, segs, nseg[i], key,
			       strlen(key));
		if (r < 0) {
			child_fail("put %s: %s: %s", key, strerror(-r),
				   kvswap_last_error(k));
			continue;
		}
		memset(t, CANARY, 4 * MiB);
		r = kvswap_get(k, key, strlen(key), dr, in, nseg[i]);
		if (r < 0) {
			child_fail("get %s: %s: %s", key, strerror(-r),
				   kvswap_last_error(k));
			continue;
		}
		for (uint32_t j = 0; j < nseg[i]; j++) {
			if (memcmp(t + j * MiB, s + j * MiB, len[i][j]))
				child_fail("get %s: segment %u differs", key, j);
			if (mem_first_not(t + j * MiB + len[i][j],
					  MiB - len[i][j], CANARY) !=
			    MiB - len[i][j])
				child_fail("get %s: bytes after segment %u written",
					   key, j);
		}
	}

	/* Everything again, after all the other clients' traffic. */
	for (unsigned i = 0; i < ROUNDS; i++) {
		snprintf(key, sizeof(key), "client-%u-%u", id, i);
		for (uint32_t j = 0; j < nseg[i]; j++) {
			in[j].index = j;
			in[j].offset = j * MiB;
		}
		r = kvswap_get(k, key, strlen(key), dr, in, nseg[i]);
		if (r < 0) {
			child_fail("second get %s: %s", key, strerror(-r));
			continue;
		}
		for (uint32_t j = 0; j < nseg[i]; j++) {
			fill_seeded(s, len[i][j],
				    seed ^ ((uint64_t)id << 40 | i << 8 | j));
			if (memcmp(t + j * MiB, s, len[i][j]))
				child_fail("second get %s: segment %u differs",
					   key, j);
		}
		r = kvswap_delete(k, key, strlen(key));
		if (r < 0)
			child_fail("delete %s: %s", key, strerror(-r));
	}
	kvswap_region_release(k, dr);
	kvswap_region_release(k, sr);
	kvswap_close(k);
	return failures > 100 ? 100 : failures;
}

static void test_clients(void)
{
	pid_t pids[NCLIENTS];
	struct kvswap_stat st;
	char buf[64];

	for (unsigned i = 0; i < NCLIENTS; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			bail_out("fork: %s", strerror(errno));
		if (pids[i] == 0)
			_exit(client_main(i));
	}
	for (unsigned i = 0; i < NCLIENTS; i++) {
		int status;

		if (waitpid(pids[i], &status, 0) < 0)
			bail_out("waitpid: %s", strerror(errno));
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		   "client %u of %u: %u put/get rounds verified byte-exact (%s)",
		   i, NCLIENTS, ROUNDS,
		   harness_status_str(status, buf, sizeof(buf)));
	}
	if (is_int(harness_stat(d1, &st), 0, "stat after the clients")) {
		is_uint(st.entries, 0, "stat: every client's keys deleted");
		is_uint(st.used, 0, "stat: no space left allocated");
		is_int(st.in_flight, 0, "stat: nothing in flight");
		is_int(st.regions, 0, "stat: the clients' regions are gone");
	}
}

/* --- requests racing a swap-in -------------------------------------------- */

struct pair {
	struct kvswap *k;
	struct kvswap_region *src, *dst;
	uint8_t *s, *t;
	size_t size;
};

/* n segments of size / n bytes each, at the same offsets in and out. */
static uint32_t layout(uint64_t size, uint32_t n, struct kvswap_seg_out *out,
		       struct kvswap_seg_in *in)
{
	for (uint32_t i = 0; i < n; i++) {
		out[i].offset = i * (size / n);
		out[i].length = size / n;
		in[i].index = i;
		in[i].offset = out[i].offset;
	}
	return n;
}

/*
 * Delete while a large swap-in of the key is in flight, then at once a
 * swap-out that only fits if it reuses the deleted entry's blocks: the
 * daemon must not hand those out before the reads of them are done.
 */
static void test_delete_during_swap_in(struct pair *p, uint64_t big)
{
	enum { N = 64 };
	struct kvswap_seg_out out[N];
	struct kvswap_seg_in in[N];
	struct kvswap_req *rin = NULL, *rout = NULL;
	struct kvswap_entry e;
	bool early;
	int r, r2;

	layout(big, N, out, in);
	fill_seeded(p->s, big, seed ^ 0x01d);
	r = kvswap_put(p->k, "race", 4, p->src, out, N, "old", 3);
	if (!is_int(r, 0, "delete race: put %" PRIu64 " MiB", big / MiB))
		return;
	fill_seeded(p->s, big, seed ^ 0x2e3);	/* the next data, in src */
	memset(p->t, CANARY, big);

	r = kvswap_swap_in(p->k, "race", 4, p->dst, in, N, &rin);
	if (!is_int(r, 0, "delete race: swap-in started"))
		return;
	r = kvswap_delete(p->k, "race", 4);
	/* Events are in order: no final yet means the delete overtook it. */
	early = !kvswap_req_done(rin);
	is_int(r, 0, "delete race: delete during the swap-in succeeds");
	r2 = kvswap_swap_out(p->k, "race-2", 6, p->src, out, N, NULL, 0, 0,
			     &rout);
	r = kvswap_wait(p->k, rin, WAIT_MS);
	is_int(r, 0, "delete race: the swap-in completes");
	diag("delete race: delete answered %s the swap-in finished",
	     early ? "before" : "after");
	kvswap_req_free(rin);
	{
		/* The old data, regenerated from its seed. */
		uint8_t *want = malloc(big);

		if (!want)
			bail_out("out of memory");
		fill_seeded(want, big, seed ^ 0x01d);
		is_mem(p->t, want, big,
		       "delete race: the swap-in returned the old data byte-exact");
		free(want);
	}
	if (r2 == 0)
		r2 = kvswap_wait(p->k, rout, WAIT_MS);
	kvswap_req_free(rout);
	ok(r2 == 0 || r2 == -ENOSPC,
	   "delete race: the swap-out that needs the freed space: %s",
	   r2 ? strerror(-r2) : "stored");
	if (r2 == -ENOSPC) {
		/* Refused while the reads ran; now the space must be free. */
		r2 = kvswap_put(p->k, "race-2", 6, p->src, out, N, NULL, 0);
		is_int(r2, 0, "delete race: once the swap-in is done, the space is free again");
	}
	if (r2 == 0) {
		memset(p->t, CANARY, big);
		r = kvswap_get(p->k, "race-2", 6, p->dst, in, N);
		ok(r == 0 && memcmp(p->t, p->s, big) == 0,
		   "delete race: and it reads back byte-exact");
		kvswap_delete(p->k, "race-2", 6);
	}
	is_int(kvswap_describe(p->k, "race", 4, &e), -ENOENT,
	       "delete race: the key is gone afterwards");
}

/*
 * A replacing swap-out while a large swap-in of the key is in flight: the
 * swap-in returns the old data; afterwards the key holds the new data and
 * layout.
 */
static void test_replace_during_swap_in(struct pair *p, uint64_t big,
					uint64_t small)
{
	enum { N = 64, M = 16 };
	struct kvswap_seg_out out[N], out2[M];
	struct kvswap_seg_in in[N], in2[M];
	struct kvswap_req *rin = NULL, *rout = NULL;
	struct kvswap_entry e;
	uint8_t *want;
	bool early;
	int r, r2;

	want = malloc(big);
	if (!want)
		bail_out("out of memory");
	layout(big, N, out, in);
	layout(small, M, out2, in2);
	fill_seeded(p->s, big, seed ^ 0x0a1d);
	r = kvswap_put(p->k, "replace", 7, p->src, out, N, "old", 3);
	if (!is_int(r, 0, "replace race: put %" PRIu64 " MiB", big / MiB))
		goto out_free;
	fill_seeded(p->s, small, seed ^ 0x2e3d);
	memset(p->t, CANARY, big);

	r = kvswap_swap_in(p->k, "replace", 7, p->dst, in, N, &rin);
	if (!is_int(r, 0, "replace race: swap-in started"))
		goto out_free;
	r2 = kvswap_swap_out(p->k, "replace", 7, p->src, out2, M, "new", 3, 0,
			     &rout);
	if (r2 == 0)
		r2 = kvswap_wait(p->k, rout, WAIT_MS);
	early = !kvswap_req_done(rin);
	kvswap_req_free(rout);
	is_int(r2, 0, "replace race: the replacing swap-out succeeds");
	r = kvswap_wait(p->k, rin, WAIT_MS);
	is_int(r, 0, "replace race: the swap-in completes");
	diag("replace race: replace finished %s the swap-in",
	     early ? "before" : "after");
	kvswap_req_free(rin);
	fill_seeded(want, big, seed ^ 0x0a1d);
	is_mem(p->t, want, big,
	       "replace race: the swap-in returned the old data byte-exact");

	r = kvswap_describe(p->k, "replace", 7, &e);
	ok(r == 0 && e.segments == M && e.size == small && e.metadata_len == 3 &&
	   memcmp(e.metadata, "new", 3) == 0,
	   "replace race: the key now has the new layout");
	if (r == 0)
		kvswap_entry_clear(&e);
	memset(p->t, CANARY, big);
	r = kvswap_get(p->k, "replace", 7, p->dst, in2, M);
	ok(r == 0 && memcmp(p->t, p->s, small) == 0 &&
	   mem_first_not(p->t + small, big - small, CANARY) == big - small,
	   "replace race: and reads back the new data");
	kvswap_delete(p->k, "replace", 7);
out_free:
	free(want);
}

/* --- one key, many writers ----------------------------------------------- */

#define ATOMIC_SEGS	8
#define ATOMIC_SEG	(256 * KiB + 1000)

/* Version v of writer w: data derived from both, metadata naming both. */
static uint64_t version_seed(unsigned w, unsigned v)
{
	return seed ^ 0xa70000000ULL ^ ((uint64_t)w << 20) ^ v;
}

static int atomic_writer(unsigned w, unsigned versions)
{
	struct kvswap_seg_out segs[ATOMIC_SEGS];
	struct kvswap_region *r;
	struct kvswap *k;
	char meta[32];
	unsigned id = w;
	int failures = 0;

	if (kvswap_connect(d1->socket, &k) < 0 ||
	    kvswap_region_create(k, ATOMIC_SEGS * 512 * KiB, &r) < 0)
		return 1;
	for (unsigned i = 0; i < ATOMIC_SEGS; i++) {
		segs[i].offset = i * 512 * KiB;
		segs[i].length = ATOMIC_SEG;
	}
	for (unsigned v = 0; v < versions; v++) {
		struct rng g;
		int ret;

		rng_init(&g, version_seed(w, v));
		for (unsigned i = 0; i < ATOMIC_SEGS; i++)
			rng_fill(&g, (uint8_t *)kvswap_region_addr(r) +
					     segs[i].offset, ATOMIC_SEG);
		snprintf(meta, sizeof(meta), "w%u v%u", w, v);
		ret = kvswap_put(k, "atomic", 6, r, segs, ATOMIC_SEGS, meta,
				 strlen(meta));
		if (ret < 0)
			child_fail("put version %u: %s", v, strerror(-ret));
	}
	kvswap_close(k);
	return failures;
}

/*
 * Reads the key over and over while the writers replace it: every read
 * must be one whole version, its data matching its metadata.
 */
static int atomic_reader(unsigned reads, int *ret_verified)
{
	struct kvswap_seg_in in[ATOMIC_SEGS];
	struct kvswap_region *r;
	struct kvswap *k;
	uint8_t *want;
	unsigned id = 99, verified = 0;
	int failures = 0;

	want = malloc(ATOMIC_SEG);
	if (!want || kvswap_connect(d1->socket, &k) < 0 ||
	    kvswap_region_create(k, ATOMIC_SEGS * 512 * KiB, &r) < 0)
		return 1;
	for (unsigned i = 0; i < ATOMIC_SEGS; i++) {
		in[i].index = i;
		in[i].offset = i * 512 * KiB;
	}
	for (unsigned n = 0, absent = 0; n < reads; n++) {
		struct kvswap_req *req = NULL;
		const char *meta;
		char buf[32];
		size_t len;
		unsigned w, v;
		struct rng g;
		int ret;

		ret = kvswap_swap_in(k, "atomic", 6, r, in, ATOMIC_SEGS, &req);
		if (ret == 0)
			ret = kvswap_wait(k, req, WAIT_MS);
		if (ret == -ENOENT && absent++ < 10000) {
			/* Before the first put: not a read, try again. */
			kvswap_req_free(req);
			n--;
			usleep(1000);
			continue;
		}
		if (ret < 0) {
			child_fail("read %u: %s: %s", n, strerror(-ret),
				   kvswap_last_error(k));
			kvswap_req_free(req);
			continue;
		}
		meta = kvswap_req_metadata(req, &len);
		snprintf(buf, sizeof(buf), "%.*s", (int)(len < 31 ? len : 31),
			 meta ? meta : "");
		kvswap_req_free(req);
		if (sscanf(buf, "w%u v%u", &w, &v) != 2) {
			child_fail("read %u: metadata \"%s\"", n, buf);
			continue;
		}
		rng_init(&g, version_seed(w, v));
		for (unsigned i = 0; i < ATOMIC_SEGS; i++) {
			rng_fill(&g, want, ATOMIC_SEG);
			if (memcmp((uint8_t *)kvswap_region_addr(r) + in[i].offset,
				   want, ATOMIC_SEG)) {
				child_fail("read %u: segment %u is not from %s",
					   n, i, buf);
				break;
			}
		}
		verified++;
	}
	kvswap_close(k);
	free(want);
	*ret_verified = (int)verified;
	return failures;
}

static void test_atomic_replace(void)
{
	enum { WRITERS = 2, VERSIONS = 30, READS = 60 };
	pid_t pids[WRITERS + 1];
	char buf[64];
	int pfd[2];
	int verified = -1;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		bail_out("pipe: %s", strerror(errno));
	for (unsigned i = 0; i <= WRITERS; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			bail_out("fork: %s", strerror(errno));
		if (pids[i] > 0)
			continue;
		if (i < WRITERS)
			_exit(atomic_writer(i, VERSIONS));
		{
			int f = atomic_reader(READS, &verified);

			if (write(pfd[1], &verified, sizeof(verified)) < 0)
				f++;
			_exit(f > 100 ? 100 : f);
		}
	}
	close(pfd[1]);
	if (read(pfd[0], &verified, sizeof(verified)) != sizeof(verified))
		verified = -1;
	close(pfd[0]);
	for (unsigned i = 0; i <= WRITERS; i++) {
		int status;

		waitpid(pids[i], &status, 0);
		harness_status_str(status, buf, sizeof(buf));
		if (i < WRITERS)
			ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			   "atomic replace: writer %u stored %d versions (%s)",
			   i, VERSIONS, buf);
		else
			ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
			   verified > 0,
			   "atomic replace: %d reads saw only whole versions (%s)",
			   verified, buf);
	}
	diag("atomic replace: %d of %d reads found an entry and verified it",
	     verified, READS);
	{
		struct kvswap *k;

		if (harness_connect(d1, &k) == 0) {
			kvswap_delete(k, "atomic", 6);
			kvswap_close(k);
		}
	}
}

/* --- pipelining and unregistering ----------------------------------------- */

/*
 * Many requests outstanding on one connection, far more than the daemon's
 * queue depth: every one completes with its own data.
 */
static void test_pipeline(struct pair *p)
{
	enum { N = 64 };
	struct kvswap_seg_out out[N][2];
	struct kvswap_seg_in in[N][2];
	struct kvswap_req *req[N];
	unsigned bad = 0, started = 0;
	char key[32];

	memset(p->t, CANARY, N * 512 * KiB);
	for (unsigned i = 0; i < N; i++) {
		out[i][0] = (struct kvswap_seg_out){ i * 512 * KiB, 100000 + i };
		out[i][1] = (struct kvswap_seg_out){ i * 512 * KiB + 256 * KiB,
						     4096 * 3 + i };
		in[i][0] = (struct kvswap_seg_in){ 0, out[i][0].offset };
		in[i][1] = (struct kvswap_seg_in){ 1, out[i][1].offset };
		fill_seeded(p->s + i * 512 * KiB, 512 * KiB, seed ^ (0x91e0 + i));
	}
	for (unsigned i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "pipe-%u", i);
		if (kvswap_swap_out(p->k, key, strlen(key), p->src, out[i], 2,
				    NULL, 0, 0, &req[i]) == 0)
			started++;
		else
			req[i] = NULL;
	}
	for (unsigned i = 0; i < N; i++) {
		bad += !req[i] || kvswap_wait(p->k, req[i], WAIT_MS) != 0;
		kvswap_req_free(req[i]);
	}
	is_int(bad, 0, "pipeline: %u swap-outs in flight at once all succeed",
	       started);
	bad = started = 0;
	for (unsigned i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "pipe-%u", i);
		if (kvswap_swap_in(p->k, key, strlen(key), p->dst, in[i], 2,
				   &req[i]) == 0)
			started++;
		else
			req[i] = NULL;
	}
	for (unsigned i = 0; i < N; i++) {
		bad += !req[i] || kvswap_wait(p->k, req[i], WAIT_MS) != 0;
		kvswap_req_free(req[i]);
	}
	is_int(bad, 0, "pipeline: %u swap-ins in flight at once all succeed",
	       started);
	for (unsigned i = 0; i < N; i++) {
		for (unsigned j = 0; j < 2; j++) {
			uint64_t o = out[i][j].offset, l = out[i][j].length;

			bad += memcmp(p->t + o, p->s + o, l) != 0;
			bad += mem_first_not(p->t + o + l,
					     round_up(o + l, 128 * KiB) - o - l,
					     CANARY) != round_up(o + l, 128 * KiB) - o - l;
		}
		snprintf(key, sizeof(key), "pipe-%u", i);
		kvswap_delete(p->k, key, strlen(key));
	}
	is_int(bad, 0, "pipeline: every entry read back byte-exact in its place");
}

/*
 * UnregisterRegion sent right behind a large SwapIn into that region: the
 * reply comes only after the swap-in's final event, and the region id is
 * gone afterwards.
 */
static void test_unregister_during_swap_in(struct harness *h)
{
	enum { N = 64 };
	const uint64_t size = 32 * MiB;
	struct kvswap_seg_out out[N];
	struct kvswap_seg_in in[N];
	struct raw_result res;
	uint32_t region;
	uint8_t *mem;
	bool in_final = false, unreg = false, order = true;
	int in_code = -1, fd, memfd, r;
	char desc[256];

	if (memfd_make(size, F_SEAL_SHRINK | F_SEAL_GROW, &memfd,
		       (void **)&mem) < 0)
		bail_out("memfd");
	if (raw_open(h->socket, &fd) < 0) {
		ok(0, "unregister race: connect");
		goto out_unmap;
	}
	r = raw_send_register(fd, 1, size, memfd);
	if (r == 0)
		r = raw_collect(fd, 1, WAIT_MS, &res);
	if (r < 0 || res.code) {
		ok(0, "unregister race: register");
		goto out_close;
	}
	region = res.final->region->region;
	raw_result_clear(&res);
	layout(size, N, out, in);
	fill_seeded(mem, size, seed ^ 0x0e91);
	r = raw_send_swap_out(fd, 2, "unreg", 5, region, out, N, NULL, 0, 0);
	if (r == 0)
		r = raw_collect(fd, 2, WAIT_MS, &res);
	if (!is_int(r == 0 ? res.code : r, 0, "unregister race: put 32 MiB"))
		goto out_close;
	raw_result_clear(&res);

	memset(mem, CANARY, size);
	r = raw_send_swap_in(fd, 3, "unreg", 5, region, in, N);
	if (r == 0)
		r = raw_send_unregister(fd, 4, region);
	is_int(r, 0, "unregister race: swap-in and unregister sent back to back");
	while (r == 0 && !unreg) {
		Kvswap__V1__Event *ev;

		r = raw_recv(fd, WAIT_MS, &ev);
		if (r < 0)
			break;
		if (ev->id == 3 && ev->body_case != KVSWAP__V1__EVENT__BODY_SEGMENT &&
		    !(ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR &&
		      ev->error->has_segment)) {
			in_final = true;
			in_code = ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR ?
				  ev->error->code : 0;
		} else if (ev->id == 3 && in_final) {
			order = false;
		} else if (ev->id == 4) {
			unreg = true;
			if (!in_final)
				order = false;
			if (ev->body_case != KVSWAP__V1__EVENT__BODY_UNREGISTERED)
				diag("unregister: %s",
				     raw_event_str(ev, desc, sizeof(desc)));
		}
		raw_event_free(ev);
	}
	ok(unreg && order,
	   "unregister race: the reply comes after the swap-in's final event");
	if (in_code == 0) {
		uint8_t *want = malloc(size);

		if (!want)
			bail_out("out of memory");
		fill_seeded(want, size, seed ^ 0x0e91);
		is_mem(mem, want, size,
		       "unregister race: the completed swap-in is byte-exact");
		free(want);
	} else {
		diag("unregister race: the swap-in ended with error %d", in_code);
	}
	r = raw_send_swap_in(fd, 5, "unreg", 5, region, in, 1);
	if (r == 0)
		r = raw_collect(fd, 5, WAIT_MS, &res);
	if (is_int(r, 0, "unregister race: swap-in to the old region id answered")) {
		is_int(res.code, ENOENT, "unregister race: the region id is gone");
		raw_result_clear(&res);
	}
	r = raw_send_delete(fd, 6, "unreg", 5);
	if (r == 0 && raw_collect(fd, 6, WAIT_MS, &res) == 0)
		raw_result_clear(&res);
out_close:
	close(fd);
out_unmap:
	munmap(mem, size);
	close(memfd);
}

/* --- killed clients ------------------------------------------------------- */

/*
 * Polls Stat until nothing is in flight and at most `clients` clients are
 * connected, for 10 s at most. Returns whether it got there.
 */
static bool settles(struct harness *h, uint32_t clients,
		    struct kvswap_stat *ret)
{
	struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };

	for (int i = 0; i < 500; i++) {
		if (harness_stat(h, ret) < 0)
			return false;
		/* Our own Stat connection counts as one client. */
		if (ret->in_flight == 0 && ret->clients <= clients + 1)
			return true;
		nanosleep(&ts, NULL);
	}
	diag("still in flight %u, clients %u", ret->in_flight, ret->clients);
	return false;
}

/*
 * The child: connects, starts `nreq` transfers of key (swap-out if out,
 * else swap-in) of `size` bytes, waits for the first segment to land, tells
 * the parent through `w` whether the transfer was still running, and waits
 * to be killed.
 */
static void killed_child(struct harness *h, int w, bool out, const char *key,
			 uint64_t size, unsigned nreq)
{
	enum { N = 256 };
	struct kvswap_seg_out segs[N];
	struct kvswap_seg_in in[N];
	struct kvswap_region *r;
	struct kvswap_req *req[8];
	struct kvswap *k;
	uint32_t idx;
	char mid;

	if (kvswap_connect(h->socket, &k) < 0 ||
	    kvswap_region_create(k, size, &r) < 0)
		_exit(2);
	layout(size, N, segs, in);
	if (out)
		fill_seeded(kvswap_region_addr(r), size, seed ^ 0xdead);
	for (unsigned i = 0; i < nreq; i++) {
		int ret = out ? kvswap_swap_out(k, key, strlen(key), r, segs, N,
						NULL, 0, 0, &req[i])
			      : kvswap_swap_in(k, key, strlen(key), r, in, N,
					       &req[i]);
		if (ret < 0)
			_exit(3);
	}
	if (kvswap_wait_segment(k, req[0], WAIT_MS, &idx) < 0)
		_exit(4);
	mid = kvswap_req_done(req[nreq - 1]) ? 'd' : 'm';
	if (write(w, &mid, 1) != 1)
		_exit(5);
	for (;;)
		pause();
}

static void kill_mid_transfer(struct harness *h, bool out, const char *key,
			      uint64_t size, unsigned nreq)
{
	const char *what = out ? "killed during swap-out" :
				 "killed during swap-in";
	struct kvswap_stat before, after;
	char mid = 0, buf[64];
	int pfd[2], status;
	pid_t pid;

	if (!is_int(harness_stat(h, &before), 0, "%s: stat before", what))
		return;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		bail_out("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		bail_out("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		killed_child(h, pfd[1], out, key, size, nreq);
	}
	close(pfd[1]);
	if (read(pfd[0], &mid, 1) == 1)
		kill(pid, SIGKILL);
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (!ok(mid == 'm' || mid == 'd', "%s: the child got its first segment event",
		what)) {
		diag("child %s", harness_status_str(status, buf, sizeof(buf)));
		return;
	}
	diag("%s: the child was killed %s", what,
	     mid == 'm' ? "mid-transfer" : "after its transfer ended (fast disk)");
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	   "%s: child killed by SIGKILL", what);
	ok(settles(h, before.clients - 1, &after),
	   "%s: in_flight returns to 0 and the client is gone", what);
	is_uint(after.regions, before.regions,
		"%s: the child's region was released", what);
	ok(harness_alive(h), "%s: daemon still running", what);
}

static void test_killed_clients(struct harness *h, struct pair *p)
{
	enum { N = 256 };
	struct kvswap_seg_out out[N];
	struct kvswap_seg_in in[N];
	struct kvswap_entry e;
	const uint64_t size = 64 * MiB;
	int r;

	/* Swap-out: afterwards the key is absent, or complete and exact. */
	kill_mid_transfer(h, true, "killed-out", size, 1);
	r = kvswap_describe(p->k, "killed-out", 10, &e);
	if (r == -ENOENT) {
		ok(1, "killed during swap-out: the entry was not stored");
	} else if (is_int(r, 0, "killed during swap-out: describe")) {
		bool whole = e.size == size && e.segments == N;

		kvswap_entry_clear(&e);
		if (ok(whole, "killed during swap-out: stored whole")) {
			uint8_t *want = malloc(size);

			if (!want)
				bail_out("out of memory");
			fill_seeded(want, size, seed ^ 0xdead);
			layout(size, N, out, in);
			r = kvswap_get(p->k, "killed-out", 10, p->dst, in, N);
			ok(r == 0 && memcmp(p->t, want, size) == 0,
			   "killed during swap-out: the stored entry is exact");
			free(want);
		}
	}
	kvswap_delete(p->k, "killed-out", 10);

	/* Swap-in: the entry it was reading is intact afterwards. */
	layout(size, N, out, in);
	fill_seeded(p->s, size, seed ^ 0xbeef);
	r = kvswap_put(p->k, "killed-in", 9, p->src, out, N, NULL, 0);
	if (!is_int(r, 0, "killed during swap-in: put the entry"))
		return;
	kill_mid_transfer(h, false, "killed-in", size, 4);
	memset(p->t, CANARY, size);
	r = kvswap_get(p->k, "killed-in", 9, p->dst, in, N);
	ok(r == 0 && memcmp(p->t, p->s, size) == 0,
	   "killed during swap-in: the entry still reads back exact");
	kvswap_delete(p->k, "killed-in", 9);
}

int main(void)
{
	struct harness_opts small = {
		.store_size = 128 * MiB,
		/* Few I/Os at a time: the transfers stay in flight longer. */
		.queue_depth = 4,
	};
	struct kvswap_stat st;
	struct pair p = { 0 };
	uint64_t big, cap;
	int r;

	harness_init("test-concurrency");
	seed = harness_seed();
	if (harness_start(NULL, &d1) < 0 || harness_start(&small, &d2) < 0)
		bail_out("cannot start kvswapd");

	test_clients();
	test_atomic_replace();

	if (harness_connect(d2, &p.k) < 0)
		bail_out("cannot connect");
	cap = kvswap_limits(p.k)->capacity;
	/* Two of these do not fit: a second one needs the first's blocks. */
	big = cap / 2 / (4 * MiB) * (4 * MiB) + 8 * MiB;
	if (big > cap)
		bail_out("store too small: capacity %" PRIu64, cap);
	p.size = big > 64 * MiB ? big : 64 * MiB;
	r = kvswap_region_create(p.k, p.size, &p.src);
	if (r == 0)
		r = kvswap_region_create(p.k, p.size, &p.dst);
	if (r < 0)
		bail_out("regions: %s: %s", strerror(-r), kvswap_last_error(p.k));
	p.s = kvswap_region_addr(p.src);
	p.t = kvswap_region_addr(p.dst);

	test_delete_during_swap_in(&p, big);
	test_replace_during_swap_in(&p, big, 16 * MiB);
	test_pipeline(&p);
	test_unregister_during_swap_in(d2);
	test_killed_clients(d2, &p);

	kvswap_region_release(p.k, p.dst);
	kvswap_region_release(p.k, p.src);
	kvswap_close(p.k);
	if (is_int(harness_stat(d2, &st), 0, "stat at the end")) {
		is_uint(st.entries, 0, "stat: no entries left");
		is_uint(st.used, 0, "stat: no space left allocated");
	}
	is_int(harness_stop(d1), 0, "kvswapd 1 exits 0 on SIGTERM");
	is_int(harness_stop(d2), 0, "kvswapd 2 exits 0 on SIGTERM");
	harness_free(d1);
	harness_free(d2);
	done_testing();
}
