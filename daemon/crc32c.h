/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CRC32C_H
#define KVSWAP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * CRC32C (Castagnoli), as iSCSI, ext4 and NVMe use it: crc32c(0, "123456789",
 * 9) == 0xe3069283. Continue a running CRC by passing the previous result.
 * Uses the SSE4.2 instruction when the CPU has it, a table otherwise.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The table implementation alone: the fallback, and a reference for tests. */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* Which implementation crc32c() uses: "sse4.2" or "table". */
const char *crc32c_impl(void);

#endif
