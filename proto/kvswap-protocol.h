/* SPDX-License-Identifier: MIT */
/*
 * The protocol's constants, for kvswapd and for libkvswap/kvswapctl: one
 * definition of each number that both sides must agree on, and of the
 * version string.
 *
 * proto/kvswap.proto states the same numbers as the enums Limit and
 * SwapOutFlag (no message carries them, so they change nothing on the
 * wire). The assertions at the bottom hold the two equal: changing a value
 * here without the .proto, or the other way round, does not compile.
 *
 * Internal: not installed. The public header client/kvswap.h keeps its own
 * KVSWAP_* flags, asserted equal to these in client/kvswap.c.
 */
#ifndef KVSWAP_PROTOCOL_H
#define KVSWAP_PROTOCOL_H

#include "kvswap.pb-c.h"

/* kvswapd's, libkvswap's and kvswapctl's version; the Makefile reads it. */
#define KVSWAP_VERSION "0.1.0"

/* Protocol limits, announced in HelloReply. */
#define KVS_PROTOCOL_VERSION	1
#define KVS_MAX_MESSAGE		65536
#define KVS_MAX_KEY		1024
#define KVS_MAX_METADATA	4096
#define KVS_MAX_SEGMENTS	1024
#define KVS_MAX_REGIONS		64	/* per connection */
#define KVS_MAX_LOOKUP		1024
#define KVS_ALIGN		4096
#define KVS_MAX_LIST		1000	/* List.limit */
#define KVS_MAX_LEASE_MS	60000	/* Lookup.lease_ms */
#define KVS_MAX_BATCH_ENTRIES	1024	/* per SwapOutBatch / SwapInBatch */
#define KVS_MAX_BATCH_SEGMENTS	16384	/* per batch, all entries */
#define KVS_MAX_GROUPS		4096	/* completion groups 0 .. 4095 */

/* SwapOut.flags */
#define KVS_FLAG_DURABLE	0x1	/* final event once on stable storage */
#define KVS_FLAG_CACHE		0x2	/* final event once the data is written */
#define KVS_FLAG_PINNED		0x4	/* never evicted */
#define KVS_FLAGS_ALL		0x7	/* SwapOut */
#define KVS_FLAG_IF_ABSENT	0x8	/* SwapOutBatch: skip keys stored or in flight */
#define KVS_FLAG_WAIT_LEASES	0x10	/* SwapOutBatch: wait for leases to run out */
#define KVS_BATCH_FLAGS_ALL	0x1f
/* SwapOutBatch.events / SwapInBatch.events */
#define KVS_EVENTS_SEGMENTS	0x1

#define KVS_CHECK_PROTO(value, name)					\
	_Static_assert((value) == (name),				\
		       #value " differs from " #name " in proto/kvswap.proto")

KVS_CHECK_PROTO(KVS_PROTOCOL_VERSION,
		KVSWAP__V1__LIMIT__LIMIT_PROTOCOL_VERSION);
KVS_CHECK_PROTO(KVS_MAX_MESSAGE,
		KVSWAP__V1__LIMIT__LIMIT_MAX_MESSAGE_SIZE);
KVS_CHECK_PROTO(KVS_MAX_KEY,
		KVSWAP__V1__LIMIT__LIMIT_MAX_KEY_LENGTH);
KVS_CHECK_PROTO(KVS_MAX_METADATA,
		KVSWAP__V1__LIMIT__LIMIT_MAX_METADATA_LENGTH);
KVS_CHECK_PROTO(KVS_MAX_SEGMENTS,
		KVSWAP__V1__LIMIT__LIMIT_MAX_SEGMENTS);
KVS_CHECK_PROTO(KVS_MAX_REGIONS,
		KVSWAP__V1__LIMIT__LIMIT_MAX_REGIONS);
KVS_CHECK_PROTO(KVS_MAX_LOOKUP,
		KVSWAP__V1__LIMIT__LIMIT_MAX_LOOKUP_KEYS);
KVS_CHECK_PROTO(KVS_ALIGN,
		KVSWAP__V1__LIMIT__LIMIT_ALIGNMENT);
KVS_CHECK_PROTO(KVS_MAX_LIST,
		KVSWAP__V1__LIMIT__LIMIT_MAX_LIST);
KVS_CHECK_PROTO(KVS_MAX_LEASE_MS,
		KVSWAP__V1__LIMIT__LIMIT_MAX_LEASE_MS);
KVS_CHECK_PROTO(KVS_FLAG_DURABLE,
		KVSWAP__V1__SWAP_OUT_FLAG__SWAP_OUT_DURABLE);
KVS_CHECK_PROTO(KVS_FLAG_CACHE,
		KVSWAP__V1__SWAP_OUT_FLAG__SWAP_OUT_CACHE);
KVS_CHECK_PROTO(KVS_FLAG_PINNED,
		KVSWAP__V1__SWAP_OUT_FLAG__SWAP_OUT_PINNED);
KVS_CHECK_PROTO(KVS_FLAG_IF_ABSENT,
		KVSWAP__V1__SWAP_OUT_FLAG__SWAP_OUT_IF_ABSENT);
KVS_CHECK_PROTO(KVS_EVENTS_SEGMENTS,
		KVSWAP__V1__BATCH_EVENTS__BATCH_EVENTS_SEGMENTS);
KVS_CHECK_PROTO(KVS_MAX_BATCH_ENTRIES,
		KVSWAP__V1__LIMIT__LIMIT_MAX_BATCH_ENTRIES);
KVS_CHECK_PROTO(KVS_MAX_BATCH_SEGMENTS,
		KVSWAP__V1__LIMIT__LIMIT_MAX_BATCH_SEGMENTS);
KVS_CHECK_PROTO(KVS_MAX_GROUPS, KVSWAP__V1__LIMIT__LIMIT_MAX_GROUPS);
KVS_CHECK_PROTO(KVS_FLAG_WAIT_LEASES,
		KVSWAP__V1__SWAP_OUT_FLAG__SWAP_OUT_WAIT_LEASES);
_Static_assert(KVS_BATCH_FLAGS_ALL ==
	       (KVS_FLAGS_ALL | KVS_FLAG_IF_ABSENT | KVS_FLAG_WAIT_LEASES),
	       "KVS_BATCH_FLAGS_ALL names every SwapOutFlag");
_Static_assert(KVS_FLAGS_ALL ==
	       (KVS_FLAG_DURABLE | KVS_FLAG_CACHE | KVS_FLAG_PINNED),
	       "KVS_FLAGS_ALL is not every SwapOut flag");

#undef KVS_CHECK_PROTO

#endif
