/* SPDX-License-Identifier: MIT */
/*
 * Power loss: the kill -9 loop of test-crash, on a disk that loses what it
 * had not made durable. kvswapd runs with its store on faultfs (one mount
 * for the whole run, over a backing folder under build/tmp); each
 * iteration
 *   - starts the writers of the crash model (crashmodel.h): durable puts,
 *     replaces and deletes, and the mixer's cache-mode puts and deletes;
 *   - cuts the power at a random moment: "cut drop" (every write not made
 *     durable is lost), or "cut random SEED" (each such write survives or
 *     not, the survivors landing in any order), whole or torn per 512- or
 *     4096-byte sector, in turn;
 *   - kills the daemon at once (kill -9), lifts the cut ("reset": the
 *     backing files are now what survived), restarts kvswapd on them;
 *   - checks every key: each acknowledged durable operation is there
 *     byte-exact (unless a later operation on the key was in flight), an
 *     acknowledged delete stays deleted, any entry present holds exactly
 *     the bytes of the seed in its own metadata, and no unknown key;
 *   - stops the daemon and runs its offline checker, `kvswapd --check
 *     --store PATHS`, on the image.
 *
 * The closing comments give the counts: iterations, acknowledged
 * operations checked, lost, wrong bytes served. Any loss fails the test.
 *
 * $KVSWAP_POWERLOSS_ITERS sets the iterations (default 50; `make
 * test-long` runs 1000). Skips where faultfs cannot run (see
 * faultmount.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crashmodel.h"
#include "faultmount.h"
#include "harness.h"
#include "tap.h"

/*
 * 32 MiB files: the model's live entries (at most 14 MiB) fit with room
 * to spare, so nothing is ever evicted, and the 1 MiB log halves fill
 * often enough that some cuts land in checkpoints.
 */
#define STORE_SIZE	(32 * MiB)
#define DEFAULT_ITERS	50

static struct faultmount *fm;
static char store[2 * PATH_MAX + 2];
static const char *kvswapd;
static bool have_check;

static int start(struct harness **ret)
{
	struct harness_opts o = {
		.store_size = STORE_SIZE,
		.queue_depth = 32,
		.store = store,
	};
	int r = harness_start(&o, ret);

	if (r == 0)
		faultmount_daemon(*ret);
	return r;
}

/* Runs kvswapd with `args` (NULL-terminated); its output goes to `out`. */
static int run_kvswapd(const char *const *args, const char *out)
{
	const char *argv[16] = { kvswapd };
	int status, n = 1;
	pid_t p;

	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	p = fork();
	if (p < 0)
		return -errno;
	if (p == 0) {
		FILE *f = freopen(out, "w", stdout);

		if (f)
			dup2(fileno(f), 2);
		execv(kvswapd, (char *const *)argv);
		_exit(127);
	}
	if (waitpid(p, &status, 0) != p)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Whether this kvswapd has the offline checker. */
static bool probe_check(void)
{
	const char *args[] = { "--help", NULL };
	char out[PATH_MAX], line[512];
	bool found = false;
	FILE *f;

	snprintf(out, sizeof(out), "%s/help.txt", harness_dir());
	if (run_kvswapd(args, out) != 0)
		return false;
	f = fopen(out, "re");
	while (f && fgets(line, sizeof(line), f))
		found |= strstr(line, "--check") != NULL;
	if (f)
		fclose(f);
	return found;
}

/* The offline check of the stopped store; returns problems (0 or 1). */
static unsigned run_check(int iter)
{
	const char *args[] = { "--check", "--store", store, NULL };
	char out[PATH_MAX], line[512];
	FILE *f;
	int rc;

	snprintf(out, sizeof(out), "%s/check.txt", harness_dir());
	rc = run_kvswapd(args, out);
	if (rc == 0)
		return 0;
	diag("iteration %d: kvswapd --check --store %s: exit status %d", iter,
	     store, rc);
	f = fopen(out, "re");
	while (f && fgets(line, sizeof(line), f))
		diag("  %s", strtok(line, "\n") ? line : "");
	if (f)
		fclose(f);
	return 1;
}

/* Connects, checks every key against the model; returns problems. */
static unsigned check_all(struct harness *h, int iter, struct cm_counts *c)
{
	struct kvswap_region *r;
	struct kvswap *k;
	unsigned bad;

	if (harness_connect(h, &k) < 0)
		return 1;
	if (kvswap_region_create(k, CM_REGION, &r) < 0) {
		diag("region: %s", kvswap_last_error(k));
		kvswap_close(k);
		return 1;
	}
	bad = cm_verify(k, r, iter, c);
	bad += cm_stray_keys(k, c);
	kvswap_region_release(k, r);
	kvswap_close(k);
	if (bad)
		diag("iteration %d: %u problems", iter, bad);
	return bad;
}

/* The power cut of iteration `it`: drop, then random whole, 512, 4096. */
static int cut(int it, struct rng *rng, char *desc, size_t len)
{
	uint64_t seed = rng_next(rng) >> 1;

	switch (it % 4) {
	case 0:
		snprintf(desc, len, "cut drop");
		break;
	case 1:
		snprintf(desc, len, "cut random %" PRIu64, seed);
		break;
	case 2:
		snprintf(desc, len, "cut random %" PRIu64 " sector=512", seed);
		break;
	default:
		snprintf(desc, len, "cut random %" PRIu64 " sector=4096", seed);
		break;
	}
	return faultmount_cmd(fm, "%s", desc);
}

int main(int argc, char **argv)
{
	const char *e = getenv("KVSWAP_POWERLOSS_ITERS");
	int iters = e && *e ? atoi(e) : DEFAULT_ITERS;
	uint64_t dropped = 0, kept = 0, evictions = 0, checkpoints = 0, t0;
	unsigned problems = 0, check_fails = 0, restarts_failed = 0;
	struct cm_counts counts = { 0 };
	int done_iters = 0;
	struct harness *h = NULL;
	struct rng rng;

	(void)argc;
	harness_init("test-powerloss");
	fm = faultmount_start(argv[0]);
	ok(1, "faultfs mounts %s on %s", fm->back, fm->mnt);
	e = getenv("KVSWAPD");
	kvswapd = e && *e ? e : "build/kvswapd";
	/* The offline checker is part of kvswapd: its absence is a failure. */
	have_check = probe_check();
	ok(have_check, "kvswapd has --check (%s --help)", kvswapd);
	rng_init(&rng, harness_seed());
	cm_init("pl", harness_dir());
	if (snprintf(store, sizeof(store), "%s/pl0.kvs,%s/pl1.kvs", fm->mnt,
		     fm->mnt) >= (int)sizeof(store))
		bail_out("mount path too long: %s", fm->mnt);
	if (!is_int(start(&h), 0, "kvswapd starts on a new two-file store on faultfs"))
		done_testing();

	t0 = mono_ms();
	for (int it = 0; it < iters; it++) {
		pid_t kids[CM_WRITERS];
		struct kvswap_stat st;
		char desc[96];

		problems += check_all(h, it, &counts);
		if (have_check) {
			if (harness_stop(h) < 0)
				problems++;
			harness_free(h);
			h = NULL;
			faultmount_daemon(NULL);
			check_fails += run_check(it);
			if (start(&h) < 0) {
				ok(0, "iteration %d: kvswapd starts after --check", it);
				break;
			}
		}

		cm_start_writers(h->socket, &rng, kids);
		usleep((useconds_t)rng_range(&rng, 10, 300) * 1000);
		/* Nothing may be evicted: the model would count it as lost. */
		if (harness_stat(h, &st) == 0) {
			evictions += st.evictions;
			/* Less the one every start writes. */
			checkpoints += st.checkpoints - 1;
		}
		if (cut(it, &rng, desc, sizeof(desc)) < 0) {
			ok(0, "iteration %d: faultfs takes %s", it, desc);
			break;
		}
		harness_kill(h);
		harness_free(h);
		h = NULL;
		faultmount_daemon(NULL);
		dropped += faultmount_stat(fm, "last_cut_dropped");
		kept += faultmount_stat(fm, "last_cut_kept");
		cm_reap_writers(kids, &counts);
		if (faultmount_cmd(fm, "reset") < 0) {
			ok(0, "iteration %d: faultfs takes reset", it);
			break;
		}
		if (start(&h) < 0) {
			diag("iteration %d: kvswapd does not restart after %s", it,
			     desc);
			restarts_failed++;
			break;
		}
		done_iters++;
	}
	if (done_iters == iters)
		problems += check_all(h, iters, &counts);

	is_int(done_iters, iters, "all %d power-cut iterations ran (%.1f s)", iters,
	       (double)(mono_ms() - t0) / 1000);
	diag("power cuts: %" PRIu64 " cached writes (or sectors) dropped, "
	     "%" PRIu64 " kept; %" PRIu64 " checkpoints under load", dropped,
	     kept, checkpoints);
	diag("iterations %d, acknowledged operations checked %" PRIu64
	     " (of %" PRIu64 " acknowledged), lost %" PRIu64 ", wrong bytes "
	     "served %" PRIu64, done_iters, counts.checked, counts.acked,
	     counts.lost, counts.wrong);
	is_uint(restarts_failed, 0, "kvswapd restarts after every cut");
	is_uint(evictions, 0, "nothing was evicted (the store has room)");
	is_uint(counts.lost, 0, "no acknowledged durable operation was lost");
	is_uint(counts.wrong, 0, "no entry read back wrong bytes");
	is_uint(counts.unreadable, 0, "every entry listed reads back");
	is_uint(counts.strays, 0, "no key appeared that no client wrote");
	is_uint(problems, 0, "no problems at all");
	if (have_check)
		is_uint(check_fails, 0, "kvswapd --check passes after every cut");

	if (done_iters == iters) {
		is_int(harness_stop(h), 0, "SIGTERM: exits 0 after its checkpoint");
		harness_free(h);
		h = NULL;
		faultmount_daemon(NULL);
		if (have_check)
			is_uint(run_check(iters), 0, "kvswapd --check passes "
				"after the clean stop");
		if (is_int(start(&h), 0, "restarts after the clean stop")) {
			is_uint(check_all(h, iters + 1, &counts), 0,
				"every entry survived the clean restart byte-exact");
			is_int(harness_stop(h), 0, "exits 0");
		}
	}
	harness_free(h);
	faultmount_daemon(NULL);
	is_int(faultmount_stop(fm), 0, "faultfs unmounts and exits 0");
	done_testing();
}
