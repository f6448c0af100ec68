/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CATALOG_H
#define KVSWAP_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "lease.h"
#include "stats.h"

struct store;
struct journal;
struct sext;
struct tenant;
struct tenants;

/*
 * The catalog: the stored entries and their life. It is the one place an
 * entry is created (catalog_reserve), made visible (catalog_link*) or
 * removed (catalog_delete, catalog_drop, eviction), and it keeps the
 * rules that tie the index to the log: a record queued later for a key
 * wins (supersede), blocks of a removed entry return to the free space
 * only once the record that removes it is durable, and swap-outs that
 * need space evicted by such records wait here for it.
 *
 * References: the index holds one on every linked entry; each reader
 * (catalog_read_begin) holds one; the journal holds one per queued record.
 * The last one returns the entry's blocks (store_entry_put).
 *
 * Tenants: every key is the composite "tenant\0key" (docs/TENANTS.md);
 * every function that takes a client's key takes its tenant too, so no
 * request can name another tenant's entry. Each entry's bytes, pins and
 * leases count against its tenant's quotas (quota.c), and eviction takes
 * from the tenants using the most first.
 */

typedef void catalog_done_fn(void *arg, int err);

/* Storage for an asynchronous link, kept by the caller until its done
 * callback has run. */
struct catalog_op {
	struct catalog *cat;
	struct entry *e;
	catalog_done_fn *done;
	void *arg;
};

/* A swap-out waiting for space; retry(arg) runs when some came back. */
struct catalog_waiter {
	struct catalog_waiter *next;
	void (*retry)(void *arg);
	void *arg;
};

/*
 * The metadata log's room, in bytes of PUT records (jf_rec_size): what a
 * checkpoint of the index writes. The admission rule that keeps every
 * checkpoint within a log half is in catalog.c (admit_meta).
 */
struct catalog_meta {
	uint64_t linked;	/* records of the entries in the index */
	uint64_t pending;	/* durable swap-outs being committed */
	uint64_t reserved;	/* swap-outs reserved, not linked yet */
	uint64_t keys_meta;	/* key and metadata bytes of linked entries */
	uint64_t limit;		/* what linked + pending + reserved may reach */
	uint64_t room;		/* a log half's payload bytes */
	bool full;		/* the last admission was refused (logged) */
};

struct catalog {
	struct index index;
	/* Reserved entries not linked yet: swap-outs in flight, by key. */
	struct index writing;
	struct store *store;
	struct journal *jr;
	struct stats *st;
	struct tenants *tenants;
	/*
	 * Durable swap-outs whose PUT records are being committed, linked by
	 * hnext: not in the index yet.
	 */
	struct entry *pending;
	struct catalog_waiter *wait_head;
	struct catalog_waiter *wait_tail;
	/* Bytes of evicted entries whose blocks have not come back yet. */
	uint64_t evicting;
	/* Space came back since the waiters last tried (catalog_kick). */
	bool space_returned;
	/*
	 * A swap-out waits for leases to run out (WAIT_LEASES): the earliest
	 * time one it needs does, in ms, or 0. The server arms a timer.
	 */
	uint64_t lease_wake_ms;
	uint32_t rr_file;	/* file the next segment prefers */
	struct sext *scratch;	/* extents of a reservation being made */
	struct catalog_meta meta;
};

/*
 * Sets up an empty catalog over the store and journal, and subscribes to
 * the journal's progress. Returns 0 or -ENOMEM. catalog_fini() frees the
 * index and every entry in it (at exit, when nothing else refers to them).
 */
int catalog_init(struct catalog *cat, struct store *s, struct journal *jr,
		 struct stats *st, struct tenants *tenants);
void catalog_fini(struct catalog *cat);

/*
 * Counts the metadata of the entries recovery put in the index (once,
 * after journal_recover(), before serving; later changes are counted as
 * they happen).
 */
void catalog_recount(struct catalog *cat);

/*
 * Recovery (the journal's replayed hook, before the startup checkpoint):
 * every replayed entry gets its tenant from its composite key and counts
 * in its usage; an entry whose key names no valid tenant is dropped with
 * a warning. With migrate (a format 3 or 2 store, kvswapd
 * --migrate-tenant), every key is first made "migrate\0key". Returns 0 or
 * a negative errno with a line in err.
 */
int catalog_adopt(struct catalog *cat, const char *migrate, char *err,
		  size_t len);

/* Record bytes a checkpoint of the index needs now: linked + pending. */
uint64_t catalog_checkpoint_bytes(const struct catalog *cat);

/* tn's linked entry under key, or NULL. Touches nothing. */
struct entry *catalog_get(struct catalog *cat, const struct tenant *tn,
			  const void *key, size_t len);

/*
 * Leases: o's lease keeps e from eviction until `until` (ms). A renewal
 * sets the new time, shorter or longer; e is protected until the latest
 * of its holders' leases. Returns 0, -ENOSPC if o holds
 * CATALOG_MAX_LEASES unexpired leases already, or -EDQUOT (message in
 * err) if e's bytes would take its tenant over its leased-bytes quota.
 * (lease.c)
 */
#define CATALOG_MAX_LEASES 65536
int catalog_lease(struct catalog *cat, struct entry *e, struct lease_owner *o,
		  uint64_t until, char *err, size_t len);

/* Ends o's lease on e, if any (Lookup.release). */
void catalog_unlease(struct catalog *cat, struct entry *e,
		     struct lease_owner *o);

/* Ends every lease of o (its connection closed). */
void catalog_unlease_all(struct catalog *cat, struct lease_owner *o);

/* lease.c, for catalog.c: e leaves the index; o's swap-in reads e. */
void leases_end(struct catalog *cat, struct entry *e);
void lease_consume(struct catalog *cat, struct entry *e,
		   struct lease_owner *o);

/*
 * A swap-in by o starts reading e (from catalog_get): takes a reference,
 * makes it the most recently used, and consumes o's lease on it.
 * catalog_read_end() drops the reference.
 */
void catalog_read_begin(struct catalog *cat, struct entry *e,
			struct lease_owner *o);
void catalog_read_end(struct catalog *cat, struct entry *e);

/*
 * Allocates the blocks of tn's new entry (nseg segments of lens[i]
 * bytes) and makes it, not yet visible; evicts least recently used
 * entries if the space is short (tn's own first if it is over its bytes
 * quota, else those of the tenants using the most). Returns 0 and the
 * entry (the caller's reference) in *ret; -EAGAIN when evicted space or
 * metadata room is on its way back (catalog_wait); -ENOSPC (the data area
 * or the metadata log is full), -EDQUOT (over one of tn's quotas: logged
 * once per kind for o, the connection's catalog state) or
 * -ENOMEM with a message in err. Metadata room is never made by evicting.
 */
int catalog_reserve(struct catalog *cat, struct tenant *tn,
		    struct lease_owner *o, const void *key, uint32_t key_len,
		    const void *meta, uint32_t meta_len, uint32_t nseg,
		    const uint64_t *lens, bool pinned, bool wait_leases,
		    struct entry **ret, char *err, size_t len);

/* The leases catalog_reserve() waited for may have run out: retry. */
void catalog_leases_due(struct catalog *cat);

/* Whether a swap-out of key is in flight (reserved, not linked yet). */
bool catalog_writing(struct catalog *cat, const struct tenant *tn,
		     const void *key, size_t len);

/*
 * A batch about to reserve `bytes` in all: evicts now what the free
 * space and the space already coming back will not cover (nothing if
 * even every evictable entry would not do: each reservation then decides
 * on its own).
 */
void catalog_make_room(struct catalog *cat, uint64_t bytes);

/* Queues w until space comes back. */
void catalog_wait(struct catalog *cat, struct catalog_waiter *w);

/*
 * After each batch of completions: if space came back (a record landed,
 * an evicted entry's last reader finished), every waiter tries again.
 */
void catalog_kick(struct catalog *cat);

/* A reserved entry that will never be linked: its blocks go back. */
void catalog_abandon(struct catalog *cat, struct entry *e);

/*
 * Cache mode: makes e visible now, replacing any entry of its key; its
 * record follows in a later commit. Takes the caller's reference.
 */
void catalog_link(struct catalog *cat, struct entry *e);

/*
 * Durable mode: queues e's record; e becomes visible when it is durable,
 * then done(arg, err) runs (err: the metadata write failed; e is linked
 * all the same, see catalog.c). Takes the caller's reference; op must
 * live until done.
 */
void catalog_link_durable(struct catalog *cat, struct entry *e,
			  struct catalog_op *op, catalog_done_fn *done,
			  void *arg);

/*
 * Removes the entry under key from the index now. With done, done(arg,
 * err) runs once its record is durable and 0 is returned; without done
 * (or if the record cannot be queued) 1 is returned and nothing waits.
 * -ENOENT if there is no such entry.
 */
int catalog_delete(struct catalog *cat, const struct tenant *tn,
		   const void *key, size_t len, catalog_done_fn *done, void *arg);

/* Drops e, whose bytes could not be read back right, if still linked. */
void catalog_drop(struct catalog *cat, struct entry *e);

/* Calls fn on the linked entries of one bucket; see index_scan(). */
uint64_t catalog_scan(const struct catalog *cat, uint64_t cursor,
		      void (*fn)(struct entry *e, void *arg), void *arg);

#endif
