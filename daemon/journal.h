/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_JOURNAL_H
#define KVSWAP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct entry;

/*
 * The persistent index: a log of PUT and DEL records in one of two halves
 * of file 0's metadata area. Records are written in group commits (data
 * files fdatasync'ed first, then the records with RWF_DSYNC); a checkpoint
 * writes every live entry into the other half and flips the superblock.
 * Recovery replays the live half. Format: docs/STORE_FORMAT.md.
 *
 * Blocks freed by a delete, a replace or an eviction return to the
 * allocator only once the record that supersedes them is durable, so a
 * crash can never bring back an entry whose blocks were reused.
 */

typedef void journal_done_fn(void *arg, int err);
typedef void journal_progress_fn(void *arg);

struct jitem;

struct journal {
	struct server *srv;	/* transitional */
	journal_progress_fn *progress;
	void *progress_arg;
	struct jitem *head;	/* queued records */
	struct jitem *tail;
	struct jitem *group;	/* records being written */
	int phase;
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
	uint64_t ck_gen;
	uint64_t ck_nonce;
	uint32_t ck_half;
	uint8_t sb[4096] __attribute__((aligned(4096)));
	/* Counters for Stat. */
	uint64_t commits;
	uint64_t checkpoints;
	uint64_t log_bytes;
};

/*
 * Startup: replays the live log half into the index, takes every recovered
 * extent out of the free space, then writes a checkpoint into the other
 * half so the new run appends to a clean log. Blocking (before serving).
 * Returns 0 or a negative errno with a message in err.
 */
int journal_recover(struct journal *j, char *err, size_t len);

/*
 * Queues a PUT record of e (takes a reference until written). `old` is an
 * entry e replaced in the index, whose index reference is dropped once the
 * record is durable (or NULL). done(arg, err), if not NULL, runs then.
 */
int journal_put(struct journal *j, struct entry *e, struct entry *old,
		journal_done_fn *done, void *arg);

/*
 * Queues a DEL record for e, which the caller has unlinked from the index;
 * takes over the index's reference and drops it once durable.
 */
int journal_del(struct journal *j, struct entry *e, journal_done_fn *done,
		void *arg);

/*
 * Takes over a reference to e and drops it once every record queued before
 * this call is durable (no record of its own).
 */
int journal_hold(struct journal *j, struct entry *e);

/* Starts writing queued records if nothing is being written. */
void journal_kick(struct journal *j);

/* Completion of a journal operation (UD_JOURNAL). */
void journal_cqe(struct journal *j, int res);

/* Nothing queued and nothing in flight. */
bool journal_idle(const struct journal *j);

/* Shutdown: writes a checkpoint of everything, blocking. */
int journal_checkpoint_sync(struct journal *j, char *err, size_t len);

/* fn(arg) runs after a group landed: freed space may be reusable. */
void journal_on_progress(struct journal *j, journal_progress_fn *fn, void *arg);

#endif
