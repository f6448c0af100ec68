/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_RECOVER_H
#define KVSWAP_RECOVER_H

#include <stddef.h>

struct journal;

/*
 * Startup: replays the live log half of the journal's store into its index
 * (an existing store; a store created by this start has nothing to
 * replay), takes every recovered extent out of the free space, then writes
 * a checkpoint into the other half so the new run appends to a clean log.
 * Blocking, before serving; needs journal_init() but no ring. Returns 0 or
 * a negative errno with a message in err.
 */
int journal_recover(struct journal *j, char *err, size_t len);

#endif
