/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CONTROL_H
#define KVSWAP_CONTROL_H

#include "wire.h"

struct conn;

/*
 * The request layer, registered as the connection table's callbacks
 * (ctx: the struct server). Requests that move data go to xfer.c; the
 * rest (hello, regions, lookup, describe, delete, list, stat) are
 * answered here.
 */

/* A checked request; fd is the memfd of register_region (ours) or -1. */
void control_request(void *ctx, struct conn *c, Request *req, int fd);

/* The connection is closing: its queued segments are cancelled. */
void control_conn_closing(void *ctx, struct conn *c);

/* The closing connection has no swaps left: its regions are released. */
void control_conn_drained(void *ctx, struct conn *c);

#endif
