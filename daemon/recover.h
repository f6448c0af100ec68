/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_RECOVER_H
#define KVSWAP_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "index.h"
#include "jformat.h"
#include "replay.h"

struct journal;
struct store;

/*
 * Startup: replays the live log half of the journal's store into its index
 * (an existing store; a store created by this start has nothing to
 * replay), takes every recovered extent out of the free space, then writes
 * a checkpoint into the other half so the new run appends to a clean log.
 * Damage a crash cannot explain (recover_plan()) refuses the start, unless
 * the store was opened with STORE_SALVAGE: then the records that survived
 * are replayed around it, every entry's data is checked against its CRC,
 * and what was lost is logged. Blocking, before serving; needs
 * journal_init() but no ring. Returns 0 or a negative errno with a message
 * in err.
 */
int journal_recover(struct journal *j, char *err, size_t len);

/*
 * journal_recover()'s reading of an existing store (st not created by
 * this start) into the empty index ix: the plan, damage refused
 * (-EUCLEAN, the reason in err) unless st was opened with STORE_SALVAGE,
 * the replay, salvage's data check, every file's free space rebuilt from
 * the entries that survive (extents out of range or claimed twice drop
 * their entries). Writes nothing to the store (salvage adopts a half in
 * memory only); one log line per refused record or dropped entry. On
 * failure ix may hold part of the store: the caller clears it. Returns 0
 * or a negative errno with a message in err.
 */
int recover_load(struct store *st, struct index *ix, char *err, size_t len);

/* What startup makes of a store's log: the half to replay, the damage. */
struct recover_plan {
	struct rlog log;	/* the half to replay */
	bool other_valid;	/* the other half starts with a checkpoint */
	struct jf_block_info other;	/* its block 0 */
	uint64_t other_commits;	/* commits after it, if it is newer */
	bool newer;		/* it holds a newer acknowledged state than
				 * any valid superblock names */
	uint64_t gen_max;	/* the newest generation found anywhere */
	unsigned damage;	/* problems that refuse a normal start */
	char what[640];		/* the first of them, one line */
};

/*
 * Reads the store's log as startup does: the half the live superblock
 * names, and the other half when it starts with a newer epoch. With
 * salvage, the half to start on where the superblocks are lost (the newest
 * complete checkpoint) or stale (the newer half). Owner: the caller, who
 * calls recover_plan_free(). Returns 0 or a negative errno with a message
 * in err.
 */
int recover_plan(const struct store *st, bool salvage, struct recover_plan *ret,
		 char *err, size_t len);
void recover_plan_free(struct recover_plan *p);

/*
 * One line about file `index`'s superblock slots into buf (empty when all
 * is well), given the log the live slot names. Returns 0 (all well), 1 (a
 * crash explains it: a checkpoint cut between its two superblock writes)
 * or 2 (damage: the other slot is used).
 */
int recover_slots(const struct store *st, uint32_t index,
		  const struct rlog *live, char *buf, size_t len);

/* One line describing damaged run h of log lg, for messages. */
void recover_describe(const struct store *st, const struct rlog *lg,
		      const struct rhole *h, char *buf, size_t len);

/*
 * One line on what damaged run l->hole took with it (the record it cut,
 * the records read from its blocks, what losing each means), or (hole
 * NULL) on a record replay refused and what became of the log after it,
 * for the startup or salvage log and kvswapd --check.
 */
void recover_loss_line(const struct store *st, const struct rloss *l,
		       char *buf, size_t len);

/*
 * A key as text into buf: printable ASCII as is, other bytes as \xNN,
 * cut after 64 bytes. Returns the length written.
 */
size_t recover_key_str(const uint8_t *k, size_t n, char *buf, size_t len);

/* An extent of an entry, to sort the whole store's use. */
struct claim {
	struct sext x;
	struct entry *e;
};

/*
 * Every extent of every entry of ix, sorted by file and block. Owner: the
 * caller frees *ret with free(). Returns 0 or -ENOMEM.
 */
int recover_claims(const struct index *ix, struct claim **ret, size_t *ret_n);

/* A segment whose stored bytes are not what its CRC says (or unreadable). */
typedef void recover_bad_fn(void *arg, struct entry *e, uint32_t seg, int err,
			    uint32_t got);

/*
 * Reads every segment of every entry of ix back from the store (O_DIRECT)
 * and checks its CRC32C; fn(arg, ...) for each that fails (err -EBADMSG,
 * got the CRC read; or the read's errno). Entries with an extent outside
 * the store are skipped (recover_claims() finds them). Adds the segments
 * and bytes read to *segs and *bytes (if not NULL). Returns 0 or -ENOMEM.
 */
int recover_verify(const struct store *st, const struct index *ix,
		   recover_bad_fn *fn, void *arg, uint64_t *segs,
		   uint64_t *bytes);

#endif
