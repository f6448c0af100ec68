/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_XFER_H
#define KVSWAP_XFER_H

#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "stats.h"
#include "wire.h"

struct catalog;
struct conn;
struct xfer;

/*
 * The data path: swap requests as I/O chains between client regions and
 * the store, and their completion events. What is stored where, and for
 * how long, is the catalog's business.
 */
struct xfers {
	struct loop *loop;
	struct catalog *cat;
	const struct config *cfg;	/* verify, durability, queue depth */
	struct stats *st;
	uint32_t block;
	/* Swaps that still have segments to submit, round robin. */
	struct xfer *runq_head;
	struct xfer *runq_tail;
	/* I/O chains in flight; at most cfg->queue_depth. */
	uint32_t inflight;
	/* Bounce blocks for segment tails: fixed buffer 0, one per chain. */
	uint8_t *bounce;
	uint32_t *bounce_free;
	uint32_t nbounce_free;
};

/*
 * Allocates the bounce blocks, registers them as fixed buffer 0 and the
 * segment completion handlers with the loop. Returns 0 or a negative
 * errno with a reason in err. xfers_fini() frees what it allocated.
 */
int xfers_init(struct xfers *xf, struct loop *lp, struct catalog *cat,
	       const struct config *cfg, struct stats *st, uint32_t block,
	       char *err, size_t len);
void xfers_fini(struct xfers *xf);

/* Starts a checked SwapOut / SwapIn request, or answers it with an error. */
void xfer_swap_out(struct xfers *xf, struct conn *c, const Request *req);
void xfer_swap_in(struct xfers *xf, struct conn *c, const Request *req);

/* Submits queued segments while the queue depth allows. */
void xfers_pump(struct xfers *xf);

/* Cancels the queued (not yet submitted) segments of c's swaps. */
void xfers_conn_abort(struct xfers *xf, struct conn *c);

#endif
