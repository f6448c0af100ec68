/* SPDX-License-Identifier: MIT */
/*
 * The model of acknowledged operations that the crash tests share
 * (test-crash: kill -9; test-powerloss: power cuts on faultfs).
 *
 * CM_CLIENTS writer processes each own CM_KEYS keys and run one operation
 * at a time on them: puts (new keys and replacements) and deletes, with
 * the daemon's default durability (durable). Each logs "T" before it sends
 * an operation and "A" once it is acknowledged, to a file of its own
 * (O_APPEND, written before the next operation), and exits at the first
 * error: the daemon died or lost its disk. A further process, the mixer,
 * writes client 0's first CM_SHARED keys at the same time in cache mode,
 * and deletes them: durable and cache records of one key race each other.
 *
 * An entry's metadata is the 8-byte seed its size, segment layout and
 * bytes derive from, so any entry read back can be checked on its own.
 *
 * After a restart, cm_verify() reads every key and checks that
 *   - its state is the one its last acknowledged operation left (or the
 *     baseline observed after the previous restart if none was), or the
 *     one the operation in flight at the crash would leave;
 *   - for the shared keys, any state some process tried;
 *   - any entry present reads back exactly the bytes of the seed in its
 *     own metadata;
 * and makes what it saw the next baseline. cm_stray_keys() checks that no
 * key exists that no client wrote.
 */
#ifndef KVSWAP_TEST_CRASHMODEL_H
#define KVSWAP_TEST_CRASHMODEL_H

#include <stdint.h>
#include <sys/types.h>

#include "data.h"
#include "kvswap.h"

#define CM_CLIENTS	3
#define CM_WRITERS	(CM_CLIENTS + 1)	/* the clients and the mixer */
#define CM_SHARED	8
#define CM_KEYS		48
#define CM_MAX_ENTRY	(96 * KiB)
/* A region large enough for any entry of the model. */
#define CM_REGION	(128 * KiB)

/* What the checks found, added up over calls. */
struct cm_counts {
	uint64_t acked;		/* acknowledged durable operations logged */
	uint64_t checked;	/* keys checked against an acknowledged one */
	uint64_t lost;		/* keys in a state no operation allows */
	uint64_t wrong;		/* entries whose bytes or layout are wrong */
	uint64_t unreadable;	/* entries listed that could not be read */
	uint64_t strays;	/* keys nobody wrote */
};

/*
 * Sets up the model: keys are named "<prefix>-c<client>-k<key>", the
 * writers' logs go to log_dir (kept for the process's life).
 */
void cm_init(const char *prefix, const char *log_dir);

/*
 * Forks the writers (kids[CM_WRITERS]) against the daemon listening on
 * `socket`, each with a seed drawn from rng.
 */
void cm_start_writers(const char *socket, struct rng *rng,
		      pid_t kids[CM_WRITERS]);

/* Reaps the writers and folds their logs into the model. */
void cm_reap_writers(const pid_t kids[CM_WRITERS], struct cm_counts *c);

/*
 * Reads every key back through k, in region r (at least CM_REGION bytes),
 * checks it as above (diagnostics name iteration `iter`), and makes what
 * it saw the baseline. Returns the number of problems, also added to c.
 */
unsigned cm_verify(struct kvswap *k, struct kvswap_region *r, int iter,
		   struct cm_counts *c);

/* Lists every key; returns the number nobody wrote (added to c). */
unsigned cm_stray_keys(struct kvswap *k, struct cm_counts *c);

#endif
