/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_DEFS_H
#define KVSWAP_DEFS_H

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
#define KVS_MAX_LIST		1000
/* Daemon limits. */
#define KVS_MAX_CLIENTS		1024
#define KVS_MAX_REQUESTS	256	/* in flight per connection */
#define KVS_MAX_EXTENTS		64	/* per stored segment */

/* SwapOut.flags */
#define KVS_FLAG_DURABLE	0x1	/* final event once on stable storage */
#define KVS_FLAG_CACHE		0x2	/* final event once the data is written */
#define KVS_FLAG_PINNED		0x4	/* never evicted */
#define KVS_FLAGS_ALL		0x7
#define KVS_MAX_LEASE_MS	60000

#endif
