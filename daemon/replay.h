/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_REPLAY_H
#define KVSWAP_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jformat.h"

struct index;
struct store;

/*
 * Reading one log half of file 0 and replaying its records
 * (docs/STORE_FORMAT.md, "Damage"). A half is read whole, block by block,
 * against one epoch (nonce and generation): its valid blocks are kept,
 * and every run of other blocks is either damage or the tail.
 *
 * A run of invalid blocks is damage when a crash cannot explain it: it
 * lies inside the checkpoint the superblock vouches for, or a later
 * commit starts after it (commits are written one after the other, each
 * durable before the next, so everything before a commit start had
 * landed), or it holds a block this epoch wrote whose CRC no longer
 * matches. The first run that is not damage is the tail: the log ends
 * there; valid blocks after it are what a crash left of the last commit.
 */

/* A valid block of the epoch. */
struct rblock {
	uint64_t seq;		/* its place in the half */
	uint64_t off;		/* its payload in the stream */
	uint16_t used;
	uint16_t lead;		/* payload bytes ending an earlier record */
	bool start;
	bool end;
};

/* A run of blocks [from, to) that are not the epoch's valid blocks. */
struct rhole {
	uint64_t from;
	uint64_t to;
	uint64_t written;	/* blocks the epoch wrote whose CRC or fields
				 * no longer check: all of the run, or none */
	size_t raw;		/* written: their payloads in rlog.raw */
	uint16_t lead;		/* written: the first one's lead, as read */
	bool damage;
};

/* One log half as read for one epoch. */
struct rlog {
	uint32_t half;
	uint64_t nonce;
	uint64_t gen;
	bool v2;		/* a version 2 log: no marks, no generation */
	uint64_t blocks;	/* in the half */
	uint64_t scanned;	/* read from its start: up to 64 MiB past the
				 * last valid block (or the checkpoint) */
	uint64_t ck_blocks;	/* the checkpoint: from the superblock, or
				 * found (its JF_END); 0: unknown */
	bool ck_complete;	/* its blocks all valid, through JF_END */
	uint8_t *stream;	/* the valid blocks' payloads, in order */
	size_t len;
	uint8_t *raw;		/* written, damaged blocks' payloads, each
				 * JF_PAYLOAD bytes, unverified */
	size_t raw_len;
	struct rblock *blk;
	size_t nblk;
	struct rhole *hole;	/* every run, in order */
	size_t nhole;
	size_t ndamage;		/* runs that are damage */
	uint64_t end;		/* the log ends here: the first block of the
				 * tail (blocks, if none) */
	uint64_t torn;		/* valid blocks past the end */
	uint64_t commits;	/* commit starts after block 0 */
};

/*
 * Reads log half `half` of st's file 0 for the epoch (nonce, gen; v2: a
 * version 2 log, gen ignored) whose checkpoint has ck_blocks blocks (0:
 * unknown: found from its marks). Owner: the caller, who frees *ret with
 * replay_free(). Returns 0 or a negative errno with a message in err.
 */
int replay_read(const struct store *st, uint32_t half, uint64_t nonce,
		uint64_t gen, bool v2, uint64_t ck_blocks, struct rlog *ret,
		char *err, size_t len);

/* Frees what replay_read() allocated. Accepts a zeroed rlog. */
void replay_free(struct rlog *lg);

/*
 * Block 0 of log half `half`, if it is the valid first block of some
 * epoch's checkpoint (JF_START, seq 0): for a half no superblock names.
 * Returns 1 with *ret filled, 0 if it is not, or a negative errno.
 */
int replay_peek(const struct store *st, uint32_t half,
		struct jf_block_info *ret);

/*
 * What a damaged run of blocks took with it, for the report; or (hole
 * NULL) a record in valid blocks that replay refused.
 */
struct rloss {
	const struct rlog *log;
	const struct rhole *hole;
	uint64_t commit;	/* hole: first block of the commit it falls in */
	bool checkpoint;	/* hole: that commit is the checkpoint */
	enum jf_type cut_type;	/* the record cut by it (hole NULL: the
				 * record refused), if its key was read (0:
				 * none, or unreadable) */
	const uint8_t *cut_key;
	uint16_t cut_key_len;
	/* hole NULL: */
	const char *why;	/* what about the record fails */
	bool stop;		/* its fixed part is one no writer produces:
				 * the replay stops there (or, around damage,
				 * resumes at block `resume`); else the PUT
				 * alone is dropped */
	uint64_t block;		/* the block the record starts in */
	size_t at;		/* its offset in that block's payload */
	size_t after;		/* stop, not around: stream bytes after it,
				 * not replayed */
	uint64_t after_commits;	/* stop, not around: commits starting after it */
	bool around;		/* replayed around damage */
	uint64_t resume;	/* stop, around: where replay resumes
				 * (lg->blocks: not in this run) */
};
typedef void replay_loss_fn(void *arg, const struct rloss *loss);

/*
 * The records that begin in damaged run h, as far as their fixed part and
 * key can still be read from blocks the epoch wrote (their CRC failed, so
 * what is read is unverified; a run of unreadable blocks gives none):
 * fn(arg, type, key, key_len) for each, at most max. Returns how many.
 */
size_t replay_hole_records(const struct rlog *lg, const struct rhole *h,
			   size_t max, void (*fn)(void *arg, enum jf_type type,
						  const uint8_t *key,
						  uint16_t key_len),
			   void *arg);

struct replay_stats {
	uint64_t records;	/* replayed */
	uint64_t dropped;	/* PUTs whose content did not check */
	uint64_t refused;	/* records whose fixed part no writer produces */
	uint64_t lost;		/* damaged runs records were lost to */
};

/*
 * Replays the log's records into ix (PUT: insert or replace, DEL: remove;
 * entries replaced or removed are freed), entries' extents checked
 * against nfiles files. Without `around`, the records of blocks [0, end),
 * which must hold no damage, up to the first record whose fixed part no
 * writer produces (the valid log ends there). With `around` (--salvage,
 * --check), every record that lies whole in valid blocks, in order,
 * resuming after each run of invalid blocks, and after each refused
 * record, at the next record start; each damaged run's loss goes to
 * loss(arg, ...) (if not NULL). Every refused record (the one that ends
 * the log, or a PUT whose content does not check: dropped alone) goes to
 * loss too, with hole NULL. Returns 0 with *ret (if not NULL) filled, or
 * -ENOMEM (ix then holds part of the log).
 */
int replay_records(const struct rlog *lg, struct index *ix, uint32_t nfiles,
		   bool around, replay_loss_fn *loss, void *arg,
		   struct replay_stats *ret);

#endif
