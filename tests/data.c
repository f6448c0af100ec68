/* SPDX-License-Identifier: MIT */
/* Test data and the small helpers every test shares: see data.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "data.h"
#include "tap.h"

uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t harness_seed(void)
{
	static uint64_t seed;
	static bool have;
	const char *env;
	struct timespec ts;

	if (have)
		return seed;
	env = getenv("KVSWAP_TEST_SEED");
	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ULL ^
		       (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
	}
	have = true;
	diag("random seed %" PRIu64 " (KVSWAP_TEST_SEED=%" PRIu64
	     " repeats this run)", seed, seed);
	return seed;
}

void rng_init(struct rng *r, uint64_t seed)
{
	/* splitmix64 of the seed, so that 0 and nearby seeds are fine. */
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	r->s = z ? z : 1;
}

uint64_t rng_next(struct rng *r)
{
	/* xorshift64* */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dULL;
}

uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + rng_next(r) % (hi - lo + 1);
}

void rng_fill(struct rng *r, void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t v;

	while (len >= 8) {
		v = rng_next(r);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		v = rng_next(r);
		memcpy(p, &v, len);
	}
}

void fill_seeded(void *buf, size_t len, uint64_t seed)
{
	struct rng r;

	rng_init(&r, seed);
	rng_fill(&r, buf, len);
}

size_t mem_first_not(const void *buf, size_t len, unsigned char byte)
{
	const unsigned char *p = buf;
	size_t i = 0;

	/* Word at a time: the 64 MiB checks should not dominate the run. */
	if (len >= 8) {
		uint64_t pat;

		memset(&pat, byte, sizeof(pat));
		while (i + 8 <= len) {
			uint64_t v;

			memcpy(&v, p + i, 8);
			if (v != pat)
				break;
			i += 8;
		}
	}
	while (i < len && p[i] == byte)
		i++;
	return i;
}

int memfd_make(size_t size, unsigned seals, int *ret_fd, void **ret_addr)
{
	void *addr = NULL;
	int fd, r;

	if ((seals & F_SEAL_WRITE) && ret_addr)
		return -EINVAL;
	fd = memfd_create("kvswap-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto out_close;
	}
	if (seals && fcntl(fd, F_ADD_SEALS, seals) < 0) {
		r = -errno;
		goto out_close;
	}
	if (ret_addr) {
		addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			    0);
		if (addr == MAP_FAILED) {
			r = -errno;
			goto out_close;
		}
		*ret_addr = addr;
	}
	*ret_fd = fd;
	return 0;

out_close:
	close(fd);
	return r;
}
