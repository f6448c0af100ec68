/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_XFER_H
#define KVSWAP_XFER_H

#include <stdint.h>

#include "server.h"
#include "wire.h"

struct conn;

/* Starts a checked SwapOut / SwapIn request, or answers it with an error. */
void xfer_swap_out(struct server *srv, struct conn *c, const Request *req);
void xfer_swap_in(struct server *srv, struct conn *c, const Request *req);

/* Submits queued segments while the queue depth allows. */
void xfer_pump(struct server *srv);

/* Completion of a segment operation (UD_SEG_*). */
void xfer_seg_cqe(struct server *srv, enum ud_type type, void *seg, int res);

/*
 * A record for this key is being queued (delete, eviction): a durable
 * swap-out of the key still waiting for its commit must not be linked.
 */
void xfer_supersede(struct server *srv, const void *key, size_t len);

/* Retries swap-outs that waited for evicted space (journal progress). */
void xfer_space_retry(struct server *srv);

/* Cancels the queued (not yet submitted) segments of c's swaps. */
void xfer_conn_abort(struct server *srv, struct conn *c);

#endif
