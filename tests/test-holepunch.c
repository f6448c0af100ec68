/* SPDX-License-Identifier: MIT */
/*
 * The false checksum alarm (issue 10): a client that punches a hole
 * (fallocate PUNCH_HOLE) in its registered memfd, in the range a swap-in
 * will write, makes the read land in pages the memfd no longer holds, so
 * the region shows zeros and the segment's CRC32C does not match. That is
 * the client's memory changing under the read, not damage: the daemon
 * reads the stored bytes again, finds them intact, answers EFAULT with a
 * message that says so, and keeps the entry. Registered again, the region
 * gets the entry's exact bytes. (Real damage still drops the entry:
 * test-durable flips a bit in the store file and checks EBADMSG, the drop
 * and the checksum_errors count.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "harness.h"
#include "tap.h"

#define REGION		(8 * MiB)
/* Two segments: a whole number of blocks, and one with a 100-byte tail. */
#define SEG0		(2 * MiB)
#define SEG1		(1 * MiB + 100)
#define DST		(4 * MiB)	/* where the swap-in writes */
#define WAIT_MS		30000

static struct harness *d;

/* A sealed memfd of REGION bytes, mapped, registered on k. */
static int region(struct kvswap *k, int *ret_fd, uint8_t **ret_p,
		  struct kvswap_region **ret)
{
	void *p;
	int fd, r;

	r = memfd_make(REGION, F_SEAL_SHRINK | F_SEAL_GROW, &fd, &p);
	if (r < 0)
		return r;
	r = kvswap_region_import(k, fd, p, REGION, ret);
	if (r < 0) {
		diag("register: %s", kvswap_last_error(k));
		munmap(p, REGION);
		close(fd);
		return r;
	}
	*ret_fd = fd;
	*ret_p = p;
	return 0;
}

/* Swap-in of both segments to DST; the first failure's text in msg. */
static int get(struct kvswap *k, struct kvswap_region *r, int *st,
	       char *msg, size_t len, uint32_t *ret_first)
{
	struct kvswap_seg_in in[2] = { { 0, DST }, { 1, DST + SEG0 } };
	struct kvswap_req *q;
	uint32_t idx;
	int ret;

	st[0] = st[1] = 1;
	*msg = 0;
	ret = kvswap_swap_in(k, "entry", 5, r, in, 2, &q);
	if (ret < 0)
		return ret;
	for (;;) {
		ret = kvswap_wait_segment(k, q, WAIT_MS, &idx);
		if (ret == -ENODATA || ret == -ETIMEDOUT)
			break;
		if (idx < 2)
			st[idx] = ret;
		if (ret < 0 && !*msg) {
			snprintf(msg, len, "%s", kvswap_last_error(k));
			*ret_first = idx;
		}
	}
	ret = kvswap_wait(k, q, WAIT_MS);
	kvswap_req_free(q);
	return ret;
}

int main(void)
{
	struct kvswap_seg_out out[2] = { { 0, SEG0 }, { SEG0, SEG1 } };
	struct kvswap_region *r, *r2;
	struct kvswap_entry info;
	struct kvswap_stat s;
	struct kvswap *k;
	uint8_t *p, *p2, *want;
	char msg[512], range[64];
	int fd, fd2, st[2], ret;
	uint32_t first = 0;

	harness_init("test-holepunch");
	plan(15);
	if (harness_start(NULL, &d) < 0)
		bail_out("kvswapd did not start");
	if (harness_connect(d, &k) < 0 || region(k, &fd, &p, &r) < 0)
		bail_out("connect and register");
	want = malloc(SEG0 + SEG1);
	if (!want)
		bail_out("out of memory");
	fill_seeded(want, SEG0 + SEG1, harness_seed());
	memcpy(p, want, SEG0 + SEG1);
	memset(p + DST, 0xa5, SEG0 + SEG1);
	is_int(kvswap_put(k, "entry", 5, r, out, 2, "meta", 4), 0,
	       "an entry of two segments (one with a tail) is stored");

	/* The pages under DST leave the memfd; the daemon's pins stay. */
	ret = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, DST,
			SEG0 + SEG1);
	if (ret < 0)
		bail_out("fallocate PUNCH_HOLE: %s", strerror(errno));
	ret = get(k, r, st, msg, sizeof(msg), &first);
	is_int(ret, -EFAULT, "the swap-in into the punched range fails: EFAULT, "
	       "not EBADMSG");
	is_int(st[0], -EFAULT, "segment 0 gets an EFAULT event");
	is_int(st[1], -EFAULT, "segment 1 (its tail through the bounce block) "
	       "too");
	/* The first segment reported, whichever it was, and its bytes. */
	snprintf(range, sizeof(range), "[%llu, %llu)",
		 (unsigned long long)(first ? DST + SEG0 : DST),
		 (unsigned long long)(first ? DST + SEG0 + SEG1 : DST + SEG0));
	ok(strstr(msg, "memory changed") && strstr(msg, "hole punched") &&
	   strstr(msg, "intact") && strstr(msg, "kept") && strstr(msg, range),
	   "the message names the cause, the range %s and that the entry is "
	   "kept: \"%s\"", range, msg);
	ok(!strstr(msg, "damaged"), "and does not call the stored bytes damaged");
	ret = kvswap_describe(k, "entry", 5, &info);
	is_int(ret, 0, "the entry is not deleted (Describe)");
	if (!ret)
		kvswap_entry_clear(&info);
	ret = harness_stat(d, &s);
	ok(!ret && s.checksum_errors == 0, "no checksum error is counted "
	   "(%llu)", (unsigned long long)s.checksum_errors);

	/* The same region again: the pins still point at the old pages. */
	ret = get(k, r, st, msg, sizeof(msg), &first);
	is_int(ret, -EFAULT, "a second swap-in into the punched range: EFAULT "
	       "again (the region must be registered again)");

	/* Registered again, the region gets the entry's exact bytes. */
	if (region(k, &fd2, &p2, &r2) < 0)
		bail_out("register the second region");
	ret = get(k, r2, st, msg, sizeof(msg), &first);
	is_int(ret, 0, "a swap-in into a region registered afresh succeeds");
	is_mem(p2 + DST, want, SEG0 + SEG1, "with the entry's exact bytes");
	ret = harness_stat(d, &s);
	ok(!ret && s.checksum_errors == 0, "still no checksum error counted");

	is_int(kvswap_region_release(k, r), 0, "the punched region is released");
	is_int(kvswap_region_release(k, r2), 0, "the second region is released");
	kvswap_close(k);
	munmap(p, REGION);
	munmap(p2, REGION);
	close(fd);
	close(fd2);
	free(want);
	is_int(harness_stop(d), 0, "kvswapd exits cleanly");
	harness_free(d);
	done_testing();
}
