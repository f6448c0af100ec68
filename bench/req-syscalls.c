/* SPDX-License-Identifier: MIT */
/*
 * System calls per request: swaps in N one-segment 4 KiB entries through
 * libkvswap in one of several shapes, to be run under `strace -c -f`
 * (bench/syscalls.sh does that and divides by N).
 *
 *   req-syscalls SOCKET put N        stores req-0 .. req-N-1 (setup)
 *   req-syscalls SOCKET v1 N D       kvswap_swap_in, D in flight
 *   req-syscalls SOCKET batch N D    one-entry kvswap_swap_in_batch
 *   req-syscalls SOCKET corked N D   the same, D at a time corked
 *
 * With D in flight, the loop keeps D requests outstanding and reaps them
 * through kvswap_process(): the shape of a server with many requests.
 * Built with -DV1_ONLY (no batch calls) it runs against an older
 * libkvswap, for a before/after comparison.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvswap.h"

#define SEG	4096
#define SLOTS	256

static struct kvswap *k;
static struct kvswap_region *r;

static void die(const char *what, int err)
{
	fprintf(stderr, "req-syscalls: %s: %s: %s\n", what, strerror(-err),
		kvswap_last_error(k));
	exit(1);
}

static void put_all(unsigned n)
{
	struct kvswap_seg_out so = { 0, SEG };
	char key[32];
	int e;

	memset(kvswap_region_addr(r), 'x', SEG);
	for (unsigned i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "req-%u", i);
		e = kvswap_put(k, key, strlen(key), r, &so, 1, NULL, 0);
		if (e < 0)
			die("put", e);
	}
}

static int start(const char *mode, unsigned i, unsigned slot,
		 struct kvswap_req **ret)
{
	char key[32];
	uint64_t off = (uint64_t)slot * SEG;
	struct kvswap_seg_in si = { 0, off };

	snprintf(key, sizeof(key), "req-%u", i);
	if (!strcmp(mode, "v1"))
		return kvswap_swap_in(k, key, strlen(key), r, &si, 1, ret);
#ifndef V1_ONLY
	{
		uint64_t len = SEG;
		struct kvswap_batch_entry e = {
			.key = key, .key_len = strlen(key), .nseg = 1,
			.offsets = &off, .lengths = &len,
		};

		return kvswap_swap_in_batch(k, r, &e, 1, 0, ret);
	}
#else
	return -EINVAL;
#endif
}

/* Keeps depth requests in flight until n are done. */
static void run(const char *mode, unsigned n, unsigned depth)
{
	struct kvswap_req *q[SLOTS] = { 0 };
	unsigned next = 0, done = 0;
	bool corked = !strcmp(mode, "corked");
	int e;

	while (done < n) {
#ifndef V1_ONLY
		if (corked)
			kvswap_cork(k);
#endif
		for (unsigned s = 0; s < depth && next < n; s++) {
			if (q[s])
				continue;
			e = start(mode, next++, s, &q[s]);
			if (e < 0)
				die("swap-in", e);
		}
#ifndef V1_ONLY
		if (corked && (e = kvswap_uncork(k)) < 0)
			die("uncork", e);
#endif
		e = kvswap_process(k, -1);
		if (e < 0)
			die("process", e);
		for (unsigned s = 0; s < depth; s++) {
			if (!q[s] || !kvswap_req_done(q[s]))
				continue;
			if ((e = kvswap_req_status(q[s])) < 0)
				die("request", e);
			kvswap_req_free(q[s]);
			q[s] = NULL;
			done++;
		}
	}
}

int main(int argc, char **argv)
{
	unsigned n, depth;
	int e;

	if (argc < 4) {
		fprintf(stderr, "usage: req-syscalls SOCKET put|v1|batch|corked N [DEPTH]\n");
		return 2;
	}
	n = (unsigned)strtoul(argv[3], NULL, 10);
	depth = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 1;
	if (!depth || depth > SLOTS)
		depth = 1;
	e = kvswap_connect(argv[1], &k);
	if (e < 0) {
		fprintf(stderr, "req-syscalls: %s\n", kvswap_last_error(NULL));
		return 1;
	}
	e = kvswap_region_create(k, (size_t)SLOTS * SEG, &r);
	if (e < 0)
		die("region", e);
	if (!strcmp(argv[2], "put"))
		put_all(n);
	else
		run(argv[2], n, depth);
	kvswap_region_release(k, r);
	kvswap_close(k);
	return 0;
}
