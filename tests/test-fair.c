/* SPDX-License-Identifier: MIT */
/*
 * Fairness (issue 10): a small swap-in is not stuck behind another
 * tenant's large transfers. Four hog connections, as another user (a real
 * one, made with useradd; its own tenant), each queue HOG_SWAPINS swap-ins
 * of a 64 MiB entry; meanwhile a victim connection does 4 KiB put+get
 * round trips. The victim's latencies, alone and under the load, are
 * reported (p50, p99, max); what is asserted is what the issue bounds:
 * every victim round trip completes, within a generous 30 s each, with
 * its bytes exact, and every hog swap-in completes with its bytes exact.
 * Speed itself is measured, not asserted: docs/PERFORMANCE.md has the
 * full four-hog load (KVSWAP_FAIR_SWAPINS=256) against the old build.
 *
 * Then the same with the hogs as the victim's own user: the same tenant,
 * other connections (fairness between the flows of a group). Not root:
 * only that; the cross-tenant run is skipped.
 *
 * Environment: KVSWAP_FAIR_SWAPINS (swap-ins each hog queues, default 12),
 * KVSWAP_FAIR_SEGS (segments of the hog entry, default 16),
 * KVSWAP_FAIR_ROUNDS (victim round trips under load, default 60),
 * KVSWAP_FAIR_ONLY_OTHER (set: no same-tenant run; for measurements).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "tap.h"

#define NHOGS		4
#define HOG_BYTES	(64 * MiB)
#define HOG_USER	"kvswap-test-hog"
#define VICTIM_BYTES	(4 * KiB)
#define ALONE_ROUNDS	30
#define WAIT_MS		30000	/* the generous bound of one round trip */
#define PIPE_MS		300000	/* the hogs' setup and their whole load */

static struct harness *d;
static uid_t hog_uid;
static gid_t hog_gid;
static unsigned hog_swapins = 12, hog_segs = 16, victim_rounds = 60;

static unsigned env_uint(const char *name, unsigned def, unsigned max)
{
	const char *v = getenv(name);
	unsigned long n;
	char *end;

	if (!v || !*v)
		return def;
	n = strtoul(v, &end, 10);
	if (*end || !n || n > max)
		bail_out("%s=%s: want 1..%u", name, v, max);
	return (unsigned)n;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * The hogs' user: made with useradd if missing. Returns 0, or -1 with a
 * reason in why (then the hogs run as the test's user).
 */
static int hog_user(char *why, size_t len)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		snprintf(why, len, "not root: cannot run the hogs as another "
			 "user (another tenant)");
		return -1;
	}
	pw = getpwnam(HOG_USER);
	if (!pw) {
		int r = system("useradd --system --no-create-home --shell "
			       "/usr/sbin/nologin " HOG_USER " >/dev/null 2>&1");

		pw = getpwnam(HOG_USER);
		if (!pw) {
			snprintf(why, len, "useradd %s failed (status %d)",
				 HOG_USER, r);
			return -1;
		}
	}
	hog_uid = pw->pw_uid;
	hog_gid = pw->pw_gid;
	return 0;
}

/* Lets the hogs' user reach the daemon's socket (it is 0660 root's). */
static int open_socket_to_hogs(void)
{
	if (chmod(harness_dir(), 0755) < 0 || chmod(d->dir, 0755) < 0 ||
	    chmod(d->socket, 0666) < 0)
		return -errno;
	return 0;
}

/* --- the hogs (forked; they report through pipe bytes and exit status) --- */

#define hog_fail(...) \
	do { \
		fprintf(stderr, "# hog %u: ", id); \
		fprintf(stderr, __VA_ARGS__); \
		fprintf(stderr, "\n"); \
		return 1; \
	} while (0)

/*
 * One hog: stores a 64 MiB entry, says 'r', waits for the go byte, queues
 * hog_swapins swap-ins of it at once, says 'q', waits for every one, checks
 * the bytes, says 'd'.
 */
static int hog_main(unsigned id, bool other, int up, int go)
{
	struct kvswap_seg_out segs[64];
	struct kvswap_seg_in in[64];
	struct kvswap_req **reqs;
	struct kvswap_region *r;
	struct kvswap *k;
	uint64_t seglen = HOG_BYTES / hog_segs;
	uint8_t *p, *copy;
	char key[32], c;
	int ret;

	if (other && (setgroups(0, NULL) < 0 ||
			 setresgid(hog_gid, hog_gid, hog_gid) < 0 ||
			 setresuid(hog_uid, hog_uid, hog_uid) < 0))
		hog_fail("becoming %s: %s", HOG_USER, strerror(errno));
	ret = kvswap_connect(d->socket, &k);
	if (ret < 0)
		hog_fail("connect: %s", strerror(-ret));
	if (kvswap_region_create(k, HOG_BYTES, &r) < 0)
		hog_fail("region: %s", kvswap_last_error(k));
	p = kvswap_region_addr(r);
	copy = malloc(HOG_BYTES);
	reqs = calloc(hog_swapins, sizeof(*reqs));
	if (!copy || !reqs)
		hog_fail("out of memory");
	fill_seeded(p, HOG_BYTES, 0xf00d + id);
	memcpy(copy, p, HOG_BYTES);
	for (unsigned i = 0; i < hog_segs; i++) {
		segs[i] = (struct kvswap_seg_out){ .offset = i * seglen,
						   .length = seglen };
		in[i] = (struct kvswap_seg_in){ .index = i, .offset = i * seglen };
	}
	snprintf(key, sizeof(key), "hog-%u", id);
	ret = kvswap_put(k, key, strlen(key), r, segs, hog_segs, NULL, 0);
	if (ret < 0)
		hog_fail("put: %s", kvswap_last_error(k));
	memset(p, 0, HOG_BYTES);
	if (write(up, "r", 1) != 1 || read(go, &c, 1) != 1)
		hog_fail("pipe: %s", strerror(errno));
	for (unsigned i = 0; i < hog_swapins; i++) {
		ret = kvswap_swap_in(k, key, strlen(key), r, in, hog_segs, &reqs[i]);
		if (ret < 0)
			hog_fail("swap-in %u: %s", i, kvswap_last_error(k));
	}
	if (write(up, "q", 1) != 1)
		hog_fail("pipe: %s", strerror(errno));
	for (unsigned i = 0; i < hog_swapins; i++) {
		ret = kvswap_wait(k, reqs[i], PIPE_MS);
		if (ret < 0)
			hog_fail("swap-in %u: %s: %s", i, strerror(-ret),
				 kvswap_last_error(k));
		kvswap_req_free(reqs[i]);
	}
	if (memcmp(p, copy, HOG_BYTES))
		hog_fail("the swapped-in bytes differ");
	if (write(up, "d", 1) != 1)
		hog_fail("pipe: %s", strerror(errno));
	kvswap_close(k);
	return 0;
}

/* Reads n bytes `want` from the hogs' pipe (PIPE_MS at most). */
static int await(int fd, char want, unsigned n)
{
	char c;

	while (n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, PIPE_MS) <= 0)
			return -ETIMEDOUT;
		if (read(fd, &c, 1) != 1)
			return -EPIPE;	/* a hog died: its status says why */
		if (c == want)
			n--;
	}
	return 0;
}

/* --- the victim ------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* p50, p99 and max of n latencies (µs), sorted in place, in one line. */
static void report(const char *what, uint64_t *us, unsigned n)
{
	if (!n) {
		diag("%s: no round trips", what);
		return;
	}
	qsort(us, n, sizeof(*us), cmp_u64);
	diag("%s: %u round trips of 4 KiB put+get: p50 %.2f ms, p99 %.2f ms, "
	     "max %.2f ms", what, n, us[n / 2] / 1000.0,
	     us[(n * 99 + 99) / 100 - 1] / 1000.0, us[n - 1] / 1000.0);
}

/*
 * One victim round trip of a fresh key: put, get into a cleared region,
 * bytes compared. Returns 0 and its latency, or a negative errno.
 */
static int round_trip(struct kvswap *k, struct kvswap_region *r, unsigned i,
		      uint64_t *ret_us)
{
	struct kvswap_seg_out so = { .offset = 0, .length = VICTIM_BYTES };
	struct kvswap_seg_in si = { .index = 0, .offset = VICTIM_BYTES };
	struct kvswap_req *req;
	uint8_t *p = kvswap_region_addr(r);
	uint64_t t0 = now_us();
	char key[32];
	int ret;

	snprintf(key, sizeof(key), "victim-%u", i);
	fill_seeded(p, VICTIM_BYTES, i);
	memset(p + VICTIM_BYTES, 0, VICTIM_BYTES);
	ret = kvswap_swap_out(k, key, strlen(key), r, &so, 1, NULL, 0, 0, &req);
	if (!ret) {
		ret = kvswap_wait(k, req, WAIT_MS);
		kvswap_req_free(req);
	}
	if (!ret)
		ret = kvswap_swap_in(k, key, strlen(key), r, &si, 1, &req);
	if (!ret) {
		ret = kvswap_wait(k, req, WAIT_MS);
		kvswap_req_free(req);
	}
	if (ret < 0) {
		diag("victim round trip %u: %s: %s", i, strerror(-ret),
		     kvswap_last_error(k));
		return ret;
	}
	*ret_us = now_us() - t0;
	if (memcmp(p, p + VICTIM_BYTES, VICTIM_BYTES)) {
		diag("victim round trip %u: the bytes read back differ", i);
		return -EBADMSG;
	}
	return 0;
}

/*
 * Four hogs (as the hogs' user when `other`, else as the victim's: the
 * same tenant, other connections) queue their swap-ins; the victim's
 * round trips meanwhile are checked and reported.
 */
static void load(struct kvswap *k, struct kvswap_region *r, bool other,
		 const char *label, unsigned *key)
{
	unsigned nloaded = 0, during = 0, hogs_done = 0;
	uint64_t *loaded = calloc(victim_rounds, sizeof(*loaded));
	int up[2], go[2], bad = 0;
	pid_t pid[NHOGS];
	uint64_t t_load;
	char what[160];

	if (!loaded)
		bail_out("out of memory");
	diag("%s: %u hogs x %u swap-ins of 64 MiB (%u segments), the victim "
	     "%u round trips", label, NHOGS, hog_swapins, hog_segs,
	     victim_rounds);
	if (pipe(up) < 0 || pipe(go) < 0)
		bail_out("pipe: %s", strerror(errno));
	for (unsigned i = 0; i < NHOGS; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			bail_out("fork: %s", strerror(errno));
		if (!pid[i]) {
			close(up[0]);
			close(go[1]);
			_exit(hog_main(i, other, up[1], go[0]));
		}
	}
	close(up[1]);
	close(go[0]);
	if (await(up[0], 'r', NHOGS) < 0)
		bail_out("the hogs did not store their entries");
	if (write(go[1], "gggg", NHOGS) != NHOGS)
		bail_out("pipe: %s", strerror(errno));
	if (await(up[0], 'q', NHOGS) < 0)
		bail_out("the hogs did not queue their swap-ins");
	t_load = now_us();
	fcntl(up[0], F_SETFL, O_NONBLOCK);
	for (unsigned i = 0; i < victim_rounds; i++) {
		char c;

		while (read(up[0], &c, 1) == 1)
			hogs_done += c == 'd';
		if (round_trip(k, r, (*key)++, &loaded[nloaded]) < 0)
			continue;
		if (!hogs_done)
			nloaded++;	/* every hog still had swap-ins queued */
		during++;
	}
	fcntl(up[0], F_SETFL, 0);
	if (hogs_done < NHOGS && !await(up[0], 'd', NHOGS - hogs_done))
		hogs_done = NHOGS;
	if (hogs_done == NHOGS)
		diag("%s: the hogs' load, %u x %u x 64 MiB, took %.2f s: "
		     "%.0f MiB/s", label, NHOGS, hog_swapins,
		     (now_us() - t_load) / 1e6,
		     NHOGS * hog_swapins * 64.0 / ((now_us() - t_load) / 1e6));
	is_uint(during, victim_rounds, "%s: the victim's round trips under the "
		"hogs' load complete, each within %d s, bytes exact", label,
		WAIT_MS / 1000);
	if (nloaded < victim_rounds)
		diag("%s: %u of the round trips ran after a hog had finished "
		     "(not counted below)", label, victim_rounds - nloaded);
	snprintf(what, sizeof(what), "%s: victim under load", label);
	report(what, loaded, nloaded);
	for (unsigned i = 0; i < NHOGS; i++) {
		int st;

		if (waitpid(pid[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			bad++;
	}
	is_int(bad, 0, "%s: every hog's %u swap-ins complete with their bytes",
	       label, hog_swapins);
	close(up[0]);
	close(go[1]);
	free(loaded);
}

int main(void)
{
	struct harness_opts o = { .store_size = 1024 * MiB };
	struct kvswap_region *r;
	uint64_t alone[ALONE_ROUNDS];
	unsigned nalone = 0, key = 0;
	struct kvswap *k;
	bool other;
	char why[160];

	harness_init("test-fair");
	hog_swapins = env_uint("KVSWAP_FAIR_SWAPINS", hog_swapins, 4096);
	hog_segs = env_uint("KVSWAP_FAIR_SEGS", hog_segs, 64);
	victim_rounds = env_uint("KVSWAP_FAIR_ROUNDS", victim_rounds, 100000);
	other = hog_user(why, sizeof(why)) == 0;
	if (harness_start(&o, &d) < 0)
		bail_out("kvswapd did not start");
	if (other && open_socket_to_hogs() < 0)
		bail_out("opening the socket to %s: %s", HOG_USER, strerror(errno));
	if (harness_connect(d, &k) < 0 ||
	    kvswap_region_create(k, 2 * VICTIM_BYTES, &r) < 0)
		bail_out("victim connection");
	for (unsigned i = 0; i < ALONE_ROUNDS; i++)
		if (!round_trip(k, r, key++, &alone[nalone]))
			nalone++;
	is_uint(nalone, ALONE_ROUNDS, "the victim's round trips alone complete");
	report("victim alone", alone, nalone);

	if (other) {
		diag("hogs as user %s (uid %u): another tenant than the victim "
		     "(uid %u)", HOG_USER, (unsigned)hog_uid, (unsigned)geteuid());
		load(k, r, true, "other tenant", &key);
	} else {
		skip("hogs as another tenant: %s", why);
	}
	if (!getenv("KVSWAP_FAIR_ONLY_OTHER"))
		load(k, r, false, "same tenant", &key);

	is_int(kvswap_region_release(k, r), 0, "the victim's region is released");
	kvswap_close(k);
	ok(harness_alive(d), "kvswapd still runs");
	is_int(harness_stop(d), 0, "kvswapd exits cleanly");
	harness_free(d);
	done_testing();
}
