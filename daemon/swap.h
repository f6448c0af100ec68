/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_SWAP_H
#define KVSWAP_SWAP_H

#include "wire.h"
#include "xfer.h"

struct conn;

/*
 * Swap requests (swap.c): SwapOut and SwapIn (one entry, an event per
 * segment), SwapOutBatch and SwapInBatch (many entries, an event per
 * completion group), Cancel. Checks a request against the connection's
 * regions and the catalog, makes its struct xfer, reserves the space of
 * swap-outs (or waits for it), hands the segments to xfer.c, accounts
 * for each segment's end (swap_seg_done, registered with xfers_init), and
 * links the entries and answers once every segment is over.
 */

/* Starts a checked request, or answers it with an error. */
void swap_out(struct xfers *xf, struct conn *c, const Request *req);
void swap_in(struct xfers *xf, struct conn *c, const Request *req);
void swap_out_batch(struct xfers *xf, struct conn *c, const Request *req);
void swap_in_batch(struct xfers *xf, struct conn *c, const Request *req);
void swap_cancel(struct xfers *xf, struct conn *c, const Request *req);

/* The client is gone: the queued segments of its swaps are dropped. */
void swap_conn_abort(struct xfers *xf, struct conn *c);

/* xfer.c's callback: a segment is over (swapend.c). */
void swap_seg_done(struct xseg *xs, int err, const char *what);

/*
 * Between swap.c (starting requests) and swapend.c (finishing them).
 */

/* "swap_out", "swap_in_batch", ...: for messages. */
const char *swap_op_name(const struct xfer *x);

/* An Error event about entry ent (and its segment seg, if >= 0). */
void swap_entry_error(struct xfer *x, uint32_t ent, int64_t seg, int code,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Counts an entry's segments as over without moving them. */
void swap_entry_settle(struct xfer *x, struct xent *xe, bool failed);

/* Drops the segments not submitted yet (client gone, Cancel). */
void swap_cancel_rest(struct xfer *x, int err, const char *why);

/* Finishes x if every segment is over. */
void swap_try_finish(struct xfer *x);

/* Releases what x held, and frees it. */
void swap_end(struct xfer *x);

#endif
