/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_QUOTA_H
#define KVSWAP_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct entry;
struct tenant;
struct tenants;

/*
 * Tenants' shares of the store (catalog.c's half of "no tenant can lock
 * the others out"): the usage of bytes, pinned bytes and leased bytes,
 * the checks against each tenant's limits, and which tenants eviction
 * takes from. Pure bookkeeping on struct tenant; catalog.c decides when.
 *
 * An entry's bytes are its blocks (block-rounded, as the store allocates
 * them). They count for its tenant from its reservation until it leaves
 * the index (deleted, replaced, evicted, dropped) or is abandoned: a
 * swap-out in flight counts, so concurrent ones cannot pass the quota.
 */

/* The blocks an entry holds, in bytes. */
uint64_t quota_entry_bytes(const struct entry *e, uint32_t block);

/* Counts e in its tenant's usage (bytes, pinned, entries), once. */
void quota_charge(struct entry *e, uint32_t block);
/* Takes e out of its tenant's usage, if counted (leased bytes too). */
void quota_uncharge(struct entry *e, uint32_t block);

/*
 * Leased bytes: e counts once while it has any lease (its tenant's
 * connections are the only ones that can lease it). Call after e->leases
 * changed.
 */
void quota_lease_sync(struct entry *e, uint32_t block);

/* Refusal kinds, for logging each once per connection. */
enum quota_kind {
	QUOTA_BYTES,
	QUOTA_PINNED,
	QUOTA_LEASED,
	QUOTA_KINDS,
};

/*
 * Whether tn may take `bytes` more of kind (QUOTA_PINNED or QUOTA_LEASED;
 * QUOTA_BYTES: see quota_over). Returns 0, or -EDQUOT with a message in
 * err naming the tenant, the usage, the limit and its option, e.g.
 * "tenant 'uid-1001': pinned bytes 512 MiB + 64 MiB over its quota 512
 * MiB (tenant-max-pinned)". `what` starts the message ("swap_out").
 * The refusal is logged unless *logged has its kind's bit, which it then
 * gets (one line per kind per connection: struct lease_owner).
 */
int quota_check(struct tenant *tn, enum quota_kind kind, uint64_t bytes,
		const char *what, uint8_t *logged, char *err, size_t len);

/* Bytes by which tn would exceed its bytes quota with `bytes` more. */
uint64_t quota_over(const struct tenant *tn, uint64_t bytes);

/*
 * Eviction's fair share: sets each tenant's evict_allot so that taking
 * `need` bytes takes from the tenants using the most first, down to a
 * common level (water filling), never more than each one's evictable
 * bytes (its bytes less pinned and leased). The rest of the need, if
 * they cannot give it, falls to the LRU order (catalog.c).
 */
void quota_evict_plan(struct tenants *t, uint64_t need);

#endif
