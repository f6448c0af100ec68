/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "crc32c.h"

#define POLY 0x82f63b78u	/* reflected Castagnoli polynomial */

static uint32_t table[8][256];

static void table_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 1; k < 8; k++)
			table[k][n] = (table[k - 1][n] >> 8) ^
				      table[0][table[k - 1][n] & 0xff];
}

/* Slicing-by-8: portable, about 1 byte per cycle. */
static uint32_t crc_table(uint32_t crc, const uint8_t *p, size_t len)
{
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		v ^= crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^
		      table[5][(v >> 16) & 0xff] ^ table[4][(v >> 24) & 0xff] ^
		      table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		      table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
/*
 * Appending n zero bytes to a message is a linear operator on its CRC:
 * crc(A || B) = shift_|B|(crc(A)) ^ crc0(B), crc0 starting from 0. The
 * tables below apply that operator for n = LONG and n = SHORT bytes, so
 * three independent streams of the crc32 instruction (latency 3 cycles,
 * one per cycle) can run side by side and be combined (Mark Adler's
 * method, as in zlib's crc32_combine).
 */
#define LONG	8192u
#define SHORT	256u

static uint32_t zeros_long[4][256], zeros_short[4][256];

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		square[n] = gf2_times(mat, mat[n]);
}

/* The operator that appends len zero bytes, as a 32x32 bit matrix. */
static void zeros_op(uint32_t *even, size_t len)
{
	uint32_t odd[32], row = 1;

	odd[0] = POLY;		/* one zero bit */
	for (int n = 1; n < 32; n++, row <<= 1)
		odd[n] = row;
	gf2_square(even, odd);	/* two zero bits */
	gf2_square(odd, even);	/* four */
	do {			/* one byte, two, four, ... as len needs */
		gf2_square(even, odd);
		len >>= 1;
		if (!len)
			return;
		gf2_square(odd, even);
		len >>= 1;
	} while (len);
	memcpy(even, odd, sizeof(odd));
}

static void zeros_table(uint32_t zeros[4][256], size_t len)
{
	uint32_t op[32];

	zeros_op(op, len);
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 0; k < 4; k++)
			zeros[k][n] = gf2_times(op, n << (8 * k));
}

static uint32_t shift(const uint32_t zeros[4][256], uint32_t crc)
{
	return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^
	       zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

/* Three interleaved streams over 3 x `lane` bytes, combined. */
__attribute__((target("sse4.2")))
static uint64_t crc_3way(uint64_t c0, const uint8_t *p, size_t lane,
			 const uint32_t zeros[4][256])
{
	uint64_t c1 = 0, c2 = 0;

	for (size_t i = 0; i < lane; i += 8) {
		uint64_t v0, v1, v2;

		memcpy(&v0, p + i, 8);
		memcpy(&v1, p + lane + i, 8);
		memcpy(&v2, p + 2 * lane + i, 8);
		c0 = __builtin_ia32_crc32di(c0, v0);
		c1 = __builtin_ia32_crc32di(c1, v1);
		c2 = __builtin_ia32_crc32di(c2, v2);
	}
	c0 = shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;
	return shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	for (; len >= 3 * LONG; len -= 3 * LONG, p += 3 * LONG)
		c = crc_3way(c, p, LONG, zeros_long);
	for (; len >= 3 * SHORT; len -= 3 * SHORT, p += 3 * SHORT)
		c = crc_3way(c, p, SHORT, zeros_short);
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

static uint32_t (*impl)(uint32_t, const uint8_t *, size_t);

static void pick(void)
{
	table_init();
	impl = crc_table;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2")) {
		zeros_table(zeros_long, LONG);
		zeros_table(zeros_short, SHORT);
		impl = crc_hw;
	}
#endif
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (!impl)
		pick();
	return ~impl(~crc, buf, len);
}

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	if (!impl)
		pick();
	return ~crc_table(~crc, buf, len);
}

const char *crc32c_impl(void)
{
	if (!impl)
		pick();
	return impl == crc_table ? "table" : "sse4.2";
}
