/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_INDEX_H
#define KVSWAP_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tenant;

/* A run of blocks in one store file. */
struct sext {
	uint64_t block;
	uint32_t nblocks;
	uint32_t file;
};

/* One stored segment: `len` bytes over extents [ext, ext + next). */
struct sseg {
	uint64_t len;
	uint32_t ext;
	uint32_t next;
	uint32_t crc;		/* CRC32C of the segment's bytes */
	uint32_t pad;
};

#define ENTRY_PINNED	0x1	/* never evicted */

/*
 * A stored entry. One allocation holds the struct, its segments, extents,
 * key and metadata. `refs` counts the index's link (while `linked`) and
 * every swap-in reading it: the space is freed only when it drops to 0, so
 * a Delete or replace never frees blocks a read is still using.
 */
struct entry {
	struct entry *hnext;
	struct entry *lru_prev;	/* evictable entries, oldest first */
	struct entry *lru_next;
	uint64_t hash;
	uint64_t size;
	uint64_t lease_until;	/* ms: not evicted before (its leases' latest) */
	struct lease *leases;	/* catalog.c: the leases held on it */
	uint32_t refs;
	uint16_t flags;		/* ENTRY_* */
	bool linked;
	bool pending;		/* durable PUT not yet on stable storage */
	bool superseded;	/* a later record for its key was queued */
	bool evicted;		/* its blocks count in catalog's `evicting` */
	uint32_t nseg;
	uint32_t next;
	uint32_t key_len;	/* of the composite key: tenant, NUL, key */
	uint32_t meta_len;
	/*
	 * The tenant it belongs to (catalog.c sets it: at reserve, or after
	 * recovery from the composite key) and the length of its name: the
	 * client's key is key + tenant_len + 1 (entry_ckey()).
	 */
	struct tenant *tenant;
	uint8_t tenant_len;
	bool counted;		/* in its tenant's usage (quota.c) */
	bool lease_counted;	/* its bytes in its tenant's leased bytes */
	struct sseg *segs;
	struct sext *ext;
	uint8_t *key;
	uint8_t *meta;
};

/* The client's key of e: its composite key less "tenant\0". */
static inline const uint8_t *entry_ckey(const struct entry *e)
{
	return e->key + e->tenant_len + 1;
}

static inline uint32_t entry_ckey_len(const struct entry *e)
{
	return e->key_len - e->tenant_len - 1u;
}

struct index {
	struct entry **buckets;
	uint64_t mask;		/* buckets - 1, a power of two minus one */
	uint64_t count;
	uint64_t seed[2];
	struct entry lru;	/* sentinel: lru.lru_next is the oldest */
	uint64_t pinned_bytes;
};

/*
 * Allocates an entry with room for nseg segments and next extents, and
 * copies key and metadata. refs starts at 1 (the creator's). Returns NULL
 * on out of memory. Owner: whoever holds references; at run time the
 * last store_entry_put() returns its blocks and frees it (catalog.c
 * decides when references are taken and dropped). Recovery, before any
 * block is handed out, frees replayed entries with free().
 */
struct entry *entry_new(const void *key, uint32_t key_len, const void *meta,
			uint32_t meta_len, uint32_t nseg, uint32_t next);

/* Bytes of daemon memory an entry uses. */
size_t entry_footprint(const struct entry *e);

/* Seeds the hash with random bytes. Returns 0 or -ENOMEM. */
int index_init(struct index *ix);
/* Frees the table, not the entries. */
void index_fini(struct index *ix);

/* Frees every entry in the table: at exit, once nothing else refers to them. */
void index_clear(struct index *ix);

struct entry *index_get(const struct index *ix, const void *key, size_t len);

/*
 * Links e (e->linked = true; evictable entries become the newest in the
 * LRU) and returns the entry it replaced, now unlinked, or NULL. The index
 * takes over the caller's reference to e and hands the replaced entry's
 * index reference to the caller. On out of memory for growing the table it
 * keeps the current size (lookups stay correct, only slower).
 */
struct entry *index_put(struct index *ix, struct entry *e);

/* Unlinks and returns the entry under key, with the index's reference. */
struct entry *index_del(struct index *ix, const void *key, size_t len);

/*
 * Calls fn for every entry of the bucket at `cursor` and returns the next
 * cursor, 0 when the table has been covered. Cursors survive growth of the
 * table between calls: entries present for a whole scan are visited at
 * least once (reverse-binary order, as Redis's SCAN).
 */
uint64_t index_scan(const struct index *ix, uint64_t cursor,
		    void (*fn)(struct entry *e, void *arg), void *arg);

uint64_t index_hash(const struct index *ix, const void *key, size_t len);

/* Marks e as just used: the newest in the LRU. */
void index_touch(struct index *ix, struct entry *e);

/* The least recently used evictable entry, or NULL. */
struct entry *index_lru_first(const struct index *ix);
struct entry *index_lru_next(const struct index *ix, const struct entry *e);

#endif
