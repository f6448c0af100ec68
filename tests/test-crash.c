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
 * The clients, the mixer racing cache-mode writes against them, and the
 * checks are the model in crashmodel.h, which test-powerloss shares.
 * After a restart the observed state becomes the baseline of the next
 * round.
 *
 * $KVSWAP_CRASH_ITERS sets the iterations (default 30).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "crashmodel.h"
#include "harness.h"
#include "tap.h"

#define STORE_SIZE	"96M"

static char store_paths[2 * 4096];
static char sock_path[108];

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
	struct cm_counts counts = { 0 };
	int done_iters = 0;
	struct kvswap_region *r = NULL;
	struct kvswap *k = NULL;
	struct harness *h;
	struct rng rng;

	harness_init("test-crash");
	rng_init(&rng, harness_seed());
	cm_init("crash", harness_dir());
	snprintf(store_paths, sizeof(store_paths), "%s/crash0.kvs,%s/crash1.kvs",
		 harness_dir(), harness_dir());
	snprintf(sock_path, sizeof(sock_path), "%s/crash.sock", harness_dir());
	if (!is_int(start(&h), 0, "kvswapd starts on a new two-file store"))
		done_testing();

	for (int it = 0; it < iters; it++) {
		pid_t kids[CM_WRITERS];
		unsigned bad;

		if (kvswap_connect(sock_path, &k) < 0 ||
		    kvswap_region_create(k, CM_REGION, &r) < 0) {
			ok(0, "iteration %d: connect after restart", it);
			break;
		}
		bad = cm_verify(k, r, it, &counts);
		strays += cm_stray_keys(k, &counts);
		bad_total += bad;
		kvswap_region_release(k, r);
		kvswap_close(k);
		k = NULL;
		if (bad)
			diag("iteration %d: %u problems", it, bad);

		cm_start_writers(sock_path, &rng, kids);
		usleep((useconds_t)rng_range(&rng, 20, 400) * 1000);
		harness_kill(h);
		harness_free(h);
		cm_reap_writers(kids, &counts);
		if (start(&h) < 0) {
			ok(0, "iteration %d: kvswapd restarts after kill -9", it);
			done_testing();
		}
		done_iters++;
	}
	is_int(done_iters, iters, "all crash iterations ran");
	diag("%" PRIu64 " acknowledged durable operations, %" PRIu64 " checked "
	     "as the last on their key", counts.acked, counts.checked);
	ok(bad_total == 0, "%d crash iterations: every acknowledged operation "
	   "survived, nothing read back wrong (%u problems)", done_iters, bad_total);
	is_uint(strays, 0, "no key appeared that no client wrote");

	/* A last round: graceful stop, restart, all still there. */
	if (kvswap_connect(sock_path, &k) == 0 && kvswap_region_create(k, CM_REGION, &r) == 0) {
		struct kvswap_stat st;

		is_uint(cm_verify(k, r, iters, &counts), 0, "state after the last crash verified");
		kvswap_stat(k, &st);
		diag("%" PRIu64 " entries, %" PRIu64 " journal commits",
		     st.entries, st.journal_commits);
		kvswap_region_release(k, r);
		kvswap_close(k);
	}
	is_int(harness_stop(h), 0, "SIGTERM: exits 0 after its checkpoint");
	harness_free(h);
	is_int(start(&h), 0, "restarts after the graceful stop");
	if (kvswap_connect(sock_path, &k) == 0 && kvswap_region_create(k, CM_REGION, &r) == 0) {
		is_uint(cm_verify(k, r, iters + 1, &counts), 0,
			"every entry survived the graceful restart byte-exact");
		kvswap_region_release(k, r);
		kvswap_close(k);
	}
	is_int(harness_stop(h), 0, "exits 0");
	harness_free(h);
	done_testing();
}
