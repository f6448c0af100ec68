/* SPDX-License-Identifier: MIT */
/*
 * Huge-page regions (KVSWAP_REGION_HUGEPAGES, a MFD_HUGETLB memfd):
 * created, registered, and a swap-out and swap-in through them, byte for
 * byte, with nothing outside the named ranges written. Skips, saying why,
 * where the system has no huge pages reserved.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tap.h"

#define SIZE	(8 * MiB)

int main(void)
{
	struct kvswap_region *r;
	struct kvswap_req *q;
	struct harness *d;
	struct kvswap *k;
	uint8_t *a, *copy;
	int ret;

	harness_init("test-hugepages");
	if (harness_start(NULL, &d) < 0 || harness_connect(d, &k) < 0)
		bail_out("cannot start kvswapd");
	ret = kvswap_region_create_flags(k, SIZE, KVSWAP_REGION_HUGEPAGES, &r);
	if (ret == -ENOMEM || ret == -EOPNOTSUPP || ret == -EINVAL) {
		char why[300];

		snprintf(why, sizeof(why), "no huge-page region here: %s",
			 kvswap_last_error(k));
		kvswap_close(k);
		harness_stop(d);
		harness_free(d);
		skip_all("%s", why);
	}
	is_int(ret, 0, "a huge-page region of 8 MiB is created and registered");
	if (ret < 0)
		bail_out("%s", kvswap_last_error(k));
	is_int(kvswap_region_create_flags(k, SIZE, 0x80, &r), -EINVAL,
	       "unknown region flags: EINVAL");
	a = kvswap_region_addr(r);
	copy = malloc(SIZE);
	fill_seeded(a, SIZE, harness_seed());
	memcpy(copy, a, SIZE);
	{
		struct kvswap_seg_out so[2] = { { 0, 1 * MiB + 123 }, { 4 * MiB, 2 * MiB } };

		ret = kvswap_swap_out(k, "huge", 4, r, so, 2, NULL, 0, 0, &q);
		if (ret == 0)
			ret = kvswap_wait(k, q, -1);
		kvswap_req_free(q);
		is_int(ret, 0, "swap out two segments from huge pages");
	}
	memset(a, 0xee, SIZE);
	{
		struct kvswap_seg_in si[2] = { { 0, 2 * MiB }, { 1, 6 * MiB } };

		ret = kvswap_swap_in(k, "huge", 4, r, si, 2, &q);
		if (ret == 0)
			ret = kvswap_wait(k, q, -1);
		kvswap_req_free(q);
		is_int(ret, 0, "swap them in elsewhere in the region");
	}
	ok(!memcmp(a + 2 * MiB, copy, 1 * MiB + 123) &&
	   !memcmp(a + 6 * MiB, copy + 4 * MiB, 2 * MiB),
	   "the bytes are exact");
	ok(mem_first_not(a, 2 * MiB, 0xee) == 2 * MiB &&
	   mem_first_not(a + 3 * MiB + 123, 3 * MiB - 123, 0xee) == 3 * MiB - 123,
	   "nothing outside the named ranges was written");
	kvswap_region_release(k, r);
	kvswap_close(k);
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
	free(copy);
	done_testing();
}
