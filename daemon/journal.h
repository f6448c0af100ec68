/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_JOURNAL_H
#define KVSWAP_JOURNAL_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct entry;
struct index;
struct loop;
struct store;

/*
 * The persistent index: a log of PUT and DEL records in one of two halves
 * of file 0's metadata area. Records are written in group commits (data
 * files fdatasync'ed first, then the records with RWF_DSYNC); a checkpoint
 * writes every live entry into the other half and flips the superblock
 * (both slots, one after the other).
 * Recovery (recover.h) replays the live half. Format: jformat.h and
 * docs/STORE_FORMAT.md.
 *
 * Blocks freed by a delete, a replace or an eviction return to the
 * allocator only once the record that supersedes them is durable, so a
 * crash can never bring back an entry whose blocks were reused.
 */

/* A record is durable (err 0) or its write failed (negative errno). */
typedef void journal_done_fn(void *arg, int err);

/*
 * A group ended: its references were released (freed space may be
 * available), or its write failed (nothing freed; whoever waits looks
 * again rather than wait for a write that may never succeed).
 */
typedef void journal_progress_fn(void *arg);

struct jitem;

enum journal_phase {
	JOURNAL_IDLE,
	JOURNAL_SYNC,		/* fdatasync of the store files */
	JOURNAL_WRITE,		/* the group's blocks */
	JOURNAL_CK_SYNC,
	JOURNAL_CK_WRITE,	/* the checkpoint's blocks */
	JOURNAL_CK_SB0,		/* the superblock flip: slot 0, */
	JOURNAL_CK_SB1,		/* then slot 1 */
};

#define JOURNAL_DELAY_MS 10

struct journal {
	/* Not owned: set by journal_init(), outlive the journal. */
	struct store *store;
	struct index *index;	/* what a checkpoint writes */
	struct loop *loop;
	journal_progress_fn *progress;
	void *progress_arg;
	/*
	 * Recovery: after the log is replayed, before the startup checkpoint
	 * writes the index (the catalog assigns tenants, store format 4, or
	 * migrates a format 3 index). Returns 0 or a negative errno with a
	 * line in err; the store is then left unchanged.
	 */
	int (*replayed)(void *arg, char *err, size_t len);
	void *replayed_arg;

	struct jitem *head;	/* queued records */
	struct jitem *tail;
	struct jitem *group;	/* records being written */
	enum journal_phase phase;
	uint32_t ops;		/* I/O of the phase in flight */
	int err;		/* first error of the phase */
	size_t expect;		/* bytes the phase's writes must write */
	size_t written;
	/* Records of failed writes: their references wait for a checkpoint. */
	struct jitem *limbo;
	uint64_t failed_ms;
	uint8_t *buf;		/* staged blocks, block-aligned */
	size_t cap;		/* bytes */
	size_t nblocks;		/* staged */
	uint64_t next;		/* next block in the live half */
	bool want_checkpoint;
	/*
	 * A superblock write of a flip failed: sb (naming ck_half, ck_nonce
	 * and nblocks) is written to both slots again before anything else.
	 */
	bool sb_pending;
	/*
	 * Cache-mode records (nobody waits for them) are committed in groups
	 * at most JOURNAL_DELAY_MS after the first is queued, not one commit
	 * per batch of completions: each commit costs an fdatasync of every
	 * store file. A record with a done callback, or journal_urgent(),
	 * commits at once, as before.
	 */
	uint64_t head_ms;	/* when the oldest queued record was queued */
	bool urgent;
	bool timer_armed;
	struct __kernel_timespec timer_ts;
	uint64_t ck_nonce;
	uint32_t ck_half;
	uint8_t sb[4096] __attribute__((aligned(4096)));
	/*
	 * Record bytes queued or being written (head and group): what a
	 * checkpoint started now adds to the index's records. A record
	 * leaves it just before its done callback runs.
	 */
	uint64_t queued;
	/* Counters for Stat. */
	uint64_t commits;
	uint64_t checkpoints;
	uint64_t log_bytes;
	uint64_t io_errors;	/* commits and checkpoints whose I/O failed */
};

/*
 * Sets up an idle journal over an open store and its index, and registers
 * its completion handler (UD_JOURNAL) with the loop, which must be set up
 * already (loop_init). Owner: the caller, who calls journal_fini() before
 * closing the store and clearing the index.
 */
void journal_init(struct journal *j, struct store *s, struct index *ix,
		  struct loop *lp);

/*
 * Frees the staging buffer and the queued records, dropping the entry
 * references they hold (store_entry_put). Accepts NULL, and a zeroed
 * journal that was never set up.
 */
void journal_fini(struct journal *j);

/* Someone waits for the queued records (space, say): commit them now. */
void journal_urgent(struct journal *j);

/* fn(arg) runs each time a group has ended, written or failed. */
void journal_on_progress(struct journal *j, journal_progress_fn *fn, void *arg);

/*
 * Queues a PUT record of e (takes a reference until written). `old` is an
 * entry e replaced in the index, whose index reference is dropped once the
 * record is durable (or NULL). done(arg, err), if not NULL, runs then.
 * Returns 0 or -ENOMEM (nothing queued, no reference taken).
 */
int journal_put(struct journal *j, struct entry *e, struct entry *old,
		journal_done_fn *done, void *arg);

/*
 * Queues a DEL record for e, which the caller has unlinked from the index;
 * takes over the index's reference and drops it once durable. Returns 0
 * or -ENOMEM (the caller keeps the reference).
 */
int journal_del(struct journal *j, struct entry *e, journal_done_fn *done,
		void *arg);

/*
 * Takes over a reference to e and drops it once every record queued before
 * this call is durable (no record of its own). Returns 0 or -ENOMEM.
 */
int journal_hold(struct journal *j, struct entry *e);

/* Starts writing queued records if nothing is being written. */
void journal_kick(struct journal *j);

/* Nothing queued and nothing in flight. */
bool journal_idle(const struct journal *j);

/* Record bytes queued or being written (see `queued`). */
uint64_t journal_queued_bytes(const struct journal *j);

/*
 * Bytes of the live log half in use: the last checkpoint and the commits
 * since, in whole blocks. A commit that would take it past three quarters
 * of the half writes a checkpoint instead.
 */
uint64_t journal_log_used(const struct journal *j);

/*
 * Writes a checkpoint of the index and everything queued, blocking (at
 * startup and shutdown, when nothing is in flight). Returns 0 or a
 * negative errno with a message in err.
 */
int journal_checkpoint_sync(struct journal *j, char *err, size_t len);

#endif
