/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CONTROL_H
#define KVSWAP_CONTROL_H

#include "server.h"
#include "wire.h"

struct conn;

/*
 * Handles a checked request that moves no data: hello, regions, lookup,
 * describe, delete, list, stat. fd is the memfd of register_region (owned
 * by the callee) or -1.
 */
void control_handle(struct server *srv, struct conn *c, Request *req, int fd);

#endif
