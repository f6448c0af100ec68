/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_DEFS_H
#define KVSWAP_DEFS_H

/* The protocol's limits, flags and the version: shared with the client. */
#include "kvswap-protocol.h"

/* The daemon's own limits. */
#define KVS_MAX_CLIENTS		1024
#define KVS_MAX_REQUESTS	256	/* in flight per connection */
#define KVS_MAX_EXTENTS		64	/* per stored segment */
/*
 * The catalog's keys (store format 4): the tenant's name (at most 32
 * bytes, tenant.h), one NUL byte, the client's key.
 */
#define ENTRY_MAX_KEY		(KVS_MAX_KEY + 32 + 1)

#endif
