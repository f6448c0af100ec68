/* SPDX-License-Identifier: MIT */
/*
 * The control plane at scale (`make bench-store`):
 *
 *   1. start kvswapd on a fresh store under build/bench-restart/
 *   2. swap out N one-block entries (cache mode, 256 in flight); the
 *      daemon's memory per entry is the growth of its RSS over N
 *   3. Lookup of all N keys in batches of 1000: keys per second
 *   4. SIGTERM (checkpoint), restart: time from exec to a served Stat
 *   5. swap out 10000 more (durable), kill -9, restart: the same time,
 *      now replaying the checkpoint and the log after it
 *
 * Usage: scale [N] (default 1000000). Prints one line per phase.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvswap.h"

#define DIR	"build/bench-restart"
#define SOCK	DIR "/kvswapd.sock"
#define INFLIGHT 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pid_t start(const char *size)
{
	pid_t pid = fork();

	if (pid == 0) {
		freopen(DIR "/kvswapd.log", "a", stderr);
		execl("build/kvswapd", "kvswapd", "--socket", SOCK, "--store",
		      DIR "/store0.kvs", "--store-size", size, "--log-level",
		      "notice", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Seconds until the daemon serves a Stat; entries in *ret. */
static double wait_served(double t0, uint64_t *ret)
{
	for (;;) {
		struct kvswap_stat st;
		struct kvswap *k;

		if (kvswap_connect(SOCK, &k) == 0) {
			int r = kvswap_stat(k, &st);

			kvswap_close(k);
			if (r == 0) {
				*ret = st.entries;
				return now() - t0;
			}
		}
		usleep(1000);
	}
}

/* VmRSS of pid in KiB. */
static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* Looks up all n keys, `batch` per request. Returns keys per second. */
static double lookup_all(uint64_t n, uint32_t batch, uint64_t *ret_found)
{
	char (*names)[32] = malloc((size_t)batch * 32);
	const void **keys = malloc(batch * sizeof(*keys));
	size_t *lens = malloc(batch * sizeof(*lens));
	uint64_t found = 0;
	struct kvswap *k;
	double t0;

	if (!names || !keys || !lens || kvswap_connect(SOCK, &k) < 0)
		return 0;
	t0 = now();
	for (uint64_t i = 0; i < n; i += batch) {
		uint32_t m = n - i < batch ? (uint32_t)(n - i) : batch;
		int r;

		for (uint32_t j = 0; j < m; j++) {
			lens[j] = (size_t)snprintf(names[j], 32, "entry-%010llu",
						   (unsigned long long)(i + j));
			keys[j] = names[j];
		}
		r = kvswap_lookup(k, keys, lens, m, NULL);
		if (r < 0)
			break;
		found += (uint64_t)r;
	}
	t0 = now() - t0;
	kvswap_close(k);
	free(names);
	free(keys);
	free(lens);
	*ret_found = found;
	return (double)n / t0;
}

static int fill(uint64_t from, uint64_t n, uint32_t flags)
{
	static struct kvswap_req *q[INFLIGHT];
	struct kvswap_seg_out seg = { 0, 64 };
	struct kvswap_region *r;
	struct kvswap *k;
	int ret;

	ret = kvswap_connect(SOCK, &k);
	if (ret == 0)
		ret = kvswap_region_create(k, 4096, &r);
	if (ret < 0) {
		fprintf(stderr, "restart: connect: %s\n", strerror(-ret));
		return ret;
	}
	memset(kvswap_region_addr(r), 0xab, 64);
	for (uint64_t i = from; i < from + n; i++) {
		struct kvswap_req **slot = &q[i % INFLIGHT];
		char key[32];

		if (*slot) {
			ret = kvswap_wait(k, *slot, -1);
			kvswap_req_free(*slot);
			*slot = NULL;
			if (ret < 0) {
				fprintf(stderr, "restart: swap-out: %s: %s\n",
					strerror(-ret), kvswap_last_error(k));
				return ret;
			}
		}
		snprintf(key, sizeof(key), "entry-%010llu", (unsigned long long)i);
		ret = kvswap_swap_out(k, key, strlen(key), r, &seg, 1, NULL, 0,
				      flags, slot);
		if (ret < 0)
			return ret;
	}
	for (int i = 0; i < INFLIGHT; i++)
		if (q[i]) {
			kvswap_wait(k, q[i], -1);
			kvswap_req_free(q[i]);
			q[i] = NULL;
		}
	kvswap_close(k);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000, entries;
	char size[32];
	double t0, t;
	long rss0, rss1;
	pid_t pid;
	int st;

	/* One 4 KiB block per entry, plus room; the log is 1/32 of it. */
	snprintf(size, sizeof(size), "%lluM",
		 (unsigned long long)((n + 20000) * 4096 / (1 << 20) * 5 / 4 + 64));
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (system("rm -rf " DIR " && mkdir -p " DIR) != 0)
		return 1;
	pid = start(size);
	wait_served(now(), &entries);
	rss0 = rss_kib(pid);
	t0 = now();
	if (fill(0, n, KVSWAP_CACHE) < 0)
		return 1;
	t = now() - t0;
	printf("fill: %llu entries in %.1f s (%.0f swap-outs/s), store %s\n",
	       (unsigned long long)n, t, (double)n / t, size);
	rss1 = rss_kib(pid);
	printf("daemon memory: RSS %ld -> %ld MiB: %.0f bytes per entry "
	       "(keys of 16 bytes, one segment, one extent)\n", rss0 / 1024,
	       rss1 / 1024, (double)(rss1 - rss0) * 1024 / (double)n);
	{
		uint64_t found = 0;
		double kps = lookup_all(n, 1000, &found);

		printf("lookup: %.0f keys/s in batches of 1000 (%llu of %llu "
		       "found)\n", kps, (unsigned long long)found,
		       (unsigned long long)n);
	}

	kill(pid, SIGTERM);
	t0 = now();
	waitpid(pid, &st, 0);
	printf("graceful stop (with checkpoint): %.2f s, exit status %d\n",
	       now() - t0, WEXITSTATUS(st));

	t0 = now();
	pid = start(size);
	t = wait_served(t0, &entries);
	printf("restart after SIGTERM: %.2f s to serve %llu entries\n", t,
	       (unsigned long long)entries);

	if (fill(n, 10000, KVSWAP_DURABLE) < 0)
		return 1;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	t0 = now();
	pid = start(size);
	t = wait_served(t0, &entries);
	printf("restart after kill -9: %.2f s to serve %llu entries "
	       "(checkpoint + 10000 logged)\n", t, (unsigned long long)entries);
	{
		struct rusage ru;

		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
		getrusage(RUSAGE_CHILDREN, &ru);
		printf("daemon peak RSS: %ld MiB\n", ru.ru_maxrss / 1024);
	}
	return system("grep -h 'recovery:' " DIR "/kvswapd.log") != 0;
}
