/* SPDX-License-Identifier: MIT */
/*
 * Unit test of CRC32C: the daemon's (daemon/crc32c.c) and libkvswap's
 * (ISA-L, client/kvswap-crc32c.h), which must agree bit for bit, since
 * the daemon stores the client's value and checks it later. The standard
 * check value, the iSCSI test vectors (RFC 3720 B.4), incremental use,
 * and the hardware paths against the portable one at every alignment and
 * length up to 300 and across the interleaved blocks.
 */
#include <stdint.h>
#include <string.h>

#include "crc32c.h"
#include "kvswap-crc32c.h"
#include "tap.h"

/* The RFC 3720 B.4 vectors through libkvswap's CRC32C. */
static void isal_vectors(void)
{
	uint8_t buf[32];

	is_uint(kvswap_crc32c(0, "123456789", 9), 0xe3069283,
		"isa-l: check value of \"123456789\"");
	memset(buf, 0, 32);
	is_uint(kvswap_crc32c(0, buf, 32), 0x8a9136aa, "isa-l: 32 bytes of zeros");
	memset(buf, 0xff, 32);
	is_uint(kvswap_crc32c(0, buf, 32), 0x62a8ab43, "isa-l: 32 bytes of ones");
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	is_uint(kvswap_crc32c(0, buf, 32), 0x46dd794e,
		"isa-l: 32 incrementing bytes");
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	is_uint(kvswap_crc32c(0, buf, 32), 0x113fdb5c,
		"isa-l: 32 decrementing bytes");
	is_uint(kvswap_crc32c(kvswap_crc32c(0, "1234", 4), "56789", 5), 0xe3069283,
		"isa-l: a running CRC continues across calls");
	is_uint(kvswap_crc32c(0, NULL, 0), 0, "isa-l: empty input");
}

int main(void)
{
	static uint8_t buf[80000];
	uint64_t s = 0x243f6a8885a308d3ull;
	unsigned mismatches = 0;

	diag("implementation: %s", crc32c_impl());
	is_uint(crc32c(0, "123456789", 9), 0xe3069283, "check value of \"123456789\"");
	memset(buf, 0, 32);
	is_uint(crc32c(0, buf, 32), 0x8a9136aa, "32 bytes of zeros");
	memset(buf, 0xff, 32);
	is_uint(crc32c(0, buf, 32), 0x62a8ab43, "32 bytes of ones");
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	is_uint(crc32c(0, buf, 32), 0x46dd794e, "32 incrementing bytes");
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	is_uint(crc32c(0, buf, 32), 0x113fdb5c, "32 decrementing bytes");
	is_uint(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283,
		"a running CRC continues across calls");
	is_uint(crc32c(0, NULL, 0), 0, "empty input");

	for (size_t i = 0; i < sizeof(buf); i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		buf[i] = (uint8_t)s;
	}
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len <= 300; len++)
			mismatches += crc32c(0, buf + off, len) !=
				      crc32c_portable(0, buf + off, len);
	is_uint(mismatches, 0, "%s and portable agree at 16 alignments x 301 lengths",
		crc32c_impl());
	/* Lengths around the three-stream blocks (3 x 256, 3 x 8192). */
	mismatches = 0;
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 700; len <= 79000; len += 97)
			mismatches += crc32c(0x12345678, buf + off, len) !=
				      crc32c_portable(0x12345678, buf + off, len);
	for (size_t len = 24570; len <= 24590; len++)
		mismatches += crc32c(0, buf, len) != crc32c_portable(0, buf, len);
	is_uint(mismatches, 0, "and at lengths up to 79000 across the interleaved "
		"blocks");
	is_uint(crc32c_portable(0, "123456789", 9), 0xe3069283,
		"portable check value");

	isal_vectors();
	mismatches = 0;
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len <= 300; len++)
			mismatches += kvswap_crc32c(0, buf + off, len) !=
				      crc32c_portable(0, buf + off, len);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 700; len <= 79000; len += 97)
			mismatches += kvswap_crc32c(0x12345678, buf + off, len) !=
				      crc32c(0x12345678, buf + off, len);
	is_uint(mismatches, 0, "isa-l, %s and portable agree at every alignment "
		"and length tried", crc32c_impl());
	done_testing();
}
