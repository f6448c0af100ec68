/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_LOOP_H
#define KVSWAP_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The event loop: one thread, one ring. Every operation's user_data is a
 * pointer to the object that owns it with the operation's type in the low
 * 4 bits (every such object is 16-byte aligned). Modules register a
 * handler per type; the loop drains completions in batches, calls each
 * one's handler, then the after-batch hooks in registration order, and
 * hands everything queued to the kernel in the next submit-and-wait. The
 * loop knows no module's internals.
 */
enum ud_type {
	UD_NONE = 0,		/* completions nobody waits for (cancel) */
	UD_ACCEPT,		/* conn.c: the multishot accept */
	UD_SIGNAL,		/* server.c: the signalfd read */
	UD_RECV,		/* conn.c: struct conn */
	UD_SEND,		/* conn.c: struct out */
	UD_SEG_IO,		/* xfer.c: struct xseg: an I/O of the chain failed */
	UD_SEG_SEND,		/* xfer.c: struct xseg: its event was sent */
	UD_SEG_TAIL,		/* xfer.c: struct xseg: the chain's last read */
	UD_BUFTAG,		/* region.c: struct region: a slot was released */
	UD_TICK,		/* server.c: the watchdog and status timer */
	UD_JOURNAL,		/* journal.c: a log write or fdatasync */
	UD_JTIMER,		/* journal.c: a deferred cache-mode commit is due */
	UD_LEASE_TIMER,		/* server.c: leases a swap-out waits for ran out */
	UD_CONN_TIMER,		/* conn.c: Hello deadlines, accept backoff */
	UD_REGION,		/* region.c: the pager's eventfd, or a step */
	UD_MAX
};
#define UD_TYPE_MASK 0xfull
_Static_assert(UD_MAX <= UD_TYPE_MASK + 1, "user_data types fit in 4 bits");

static inline uint64_t ud_make(const void *p, enum ud_type t)
{
	return (uint64_t)(uintptr_t)p | t;
}

static inline enum ud_type ud_type(uint64_t ud)
{
	return (enum ud_type)(ud & UD_TYPE_MASK);
}

static inline void *ud_ptr(uint64_t ud)
{
	return (void *)(uintptr_t)(ud & ~UD_TYPE_MASK);
}

/* A completion of type `type` for the object ptr; ctx as registered. */
typedef void loop_cqe_fn(void *ctx, enum ud_type type, void *ptr,
			 const struct io_uring_cqe *cqe);
/* Runs once after every batch of completions. */
typedef void loop_batch_fn(void *ctx);

/*
 * Fixed-buffer table: sparse, one slot per 64 MiB of a region, 16384 slots
 * (the kernel's most, IORING_MAX_REG_BUFFERS: 1 TiB registered in all);
 * slot 0 is the bounce pool (xfer.c). A slot is the unit a region is
 * pinned in, one per step of the loop: 64 MiB of resident 4 KiB pages pin
 * in about 1.3 ms, a whole GiB in 22.
 */
#define LOOP_BUF_SLOTS		16384
#define LOOP_SLOT_BYTES		(64ull << 20)
#define LOOP_MAX_HOOKS		8

struct loop {
	struct io_uring ring;
	bool ready;		/* the ring exists (loop_fini tears it down) */
	struct {
		loop_cqe_fn *fn;
		void *ctx;
	} handler[UD_MAX];
	struct {
		loop_batch_fn *fn;
		void *ctx;
	} hook[LOOP_MAX_HOOKS];
	unsigned nhooks;
	/* Buffer table slots in use, one bit each. */
	uint64_t slot_map[LOOP_BUF_SLOTS / 64];
};

/*
 * Sets up the ring, disabled until loop_enable(): single issuer with
 * deferred task work where the kernel has it (logged otherwise), the
 * operations the daemon uses checked, a sparse buffer table. Returns 0 or
 * a negative errno with a one-line reason in err; call loop_fini() either
 * way.
 */
int loop_init(struct loop *lp, char *err, size_t len);

/*
 * Restricts the ring to the daemon's opcodes, SQE flags and buffer
 * updates (ring operations bypass seccomp), then enables it.
 */
int loop_enable(struct loop *lp, char *err, size_t len);
void loop_fini(struct loop *lp);

/* Registers the handler of completions of one type. */
void loop_on(struct loop *lp, enum ud_type type, loop_cqe_fn *fn, void *ctx);

/* Registers a hook run after each batch of completions, in order. */
void loop_after_batch(struct loop *lp, loop_batch_fn *fn, void *ctx);

/*
 * Returns an SQE, submitting what is queued first if the SQ is full.
 * Never NULL: after a submit the SQ has room (submit reaps nothing, so it
 * only fails on a broken ring, which is fatal).
 */
struct io_uring_sqe *loop_sqe(struct loop *lp);

/* Makes room for n SQEs that must go in one submission (a link chain). */
void loop_sq_reserve(struct loop *lp, unsigned n);

/*
 * Takes n consecutive free buffer slots (never slot 0). Returns 0 and the
 * first in *ret_first, or -ENOSPC.
 */
int loop_slots_get(struct loop *lp, uint32_t n, uint32_t *ret_first);
void loop_slots_put(struct loop *lp, uint32_t first, uint32_t n);

/*
 * Runs batches until running(ctx) returns false (checked before each
 * wait). Returns 0, or a negative errno if the ring broke.
 */
int loop_run(struct loop *lp, bool (*running)(void *ctx), void *ctx);

#endif
