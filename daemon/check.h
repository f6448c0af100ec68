/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CHECK_H
#define KVSWAP_CHECK_H

#include <stdio.h>

/*
 * kvswapd --check: reads the store whose files are `paths` (comma-
 * separated, in their order) and reports, on out, whether it is
 * consistent: both superblock slots of every file, the log (a tail a crash
 * cut, or damage), every entry's extents (inside the data area, no block
 * claimed twice), every segment's CRC32C against its data read back with
 * O_DIRECT, and the free space. Crash leftovers that startup handles are
 * notes, not problems. Changes nothing, and refuses a store a daemon has
 * open. Returns the exit status: 0 consistent, 1 damaged or inconsistent,
 * 2 the store cannot be opened or read (the reason on stderr).
 */
int check_store(const char *paths, FILE *out);

#endif
