/* SPDX-License-Identifier: MIT */
/*
 * Test data and the small helpers every test shares: reproducible random
 * data from one seed per program, byte checks, memfd regions, a clock.
 */
#ifndef KVSWAP_TEST_DATA_H
#define KVSWAP_TEST_DATA_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)

struct rng {
	uint64_t s;
};

/* The program's seed: $KVSWAP_TEST_SEED or time and pid; diag()s it once. */
uint64_t harness_seed(void);

void rng_init(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [lo, hi]. */
uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi);
void rng_fill(struct rng *r, void *buf, size_t len);

/* Fills buf with the stream of rng_init(seed): reproducible test data. */
void fill_seeded(void *buf, size_t len, uint64_t seed);

/* Offset of the first byte of buf that is not `byte`, or len if none. */
size_t mem_first_not(const void *buf, size_t len, unsigned char byte);

static inline uint64_t round_up(uint64_t x, uint64_t to)
{
	return (x + to - 1) / to * to;
}

/*
 * Creates a memfd of `size` bytes with `seals` (F_SEAL_* flags; 0: none)
 * and, if ret_addr is not NULL, maps it shared read-write. The caller
 * closes the fd and munmaps size bytes.
 */
int memfd_make(size_t size, unsigned seals, int *ret_fd, void **ret_addr);

/* CLOCK_MONOTONIC in milliseconds: for deadlines and elapsed times. */
uint64_t mono_ms(void);

#endif
