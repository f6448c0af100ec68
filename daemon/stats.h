/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_STATS_H
#define KVSWAP_STATS_H

#include <stdint.h>

/*
 * The daemon's counters for Stat and STATUS=. Owned by the server; each
 * module gets a pointer and counts its own events.
 */
struct stats {
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t requests;
	uint64_t errors;
	uint64_t evictions;
	uint64_t checksum_errors;
	uint64_t io_errors;
	/* Lookup: keys found or not, and the bytes of those found. */
	uint64_t lookup_hits;
	uint64_t lookup_misses;
	uint64_t lookup_hit_bytes;
	/* Batches: requests, their entries and segments, GroupDone events. */
	uint64_t batches;
	uint64_t batch_entries;
	uint64_t batch_segments;
	uint64_t group_events;
	/* Leases: granted (or renewed), and how each one ended. */
	uint64_t leases_granted;
	uint64_t leases_consumed;	/* its holder swapped the entry in */
	uint64_t leases_released;	/* released by its holder */
	uint64_t leases_expired;	/* ran out unused */
	uint64_t leases_dropped;	/* entry gone or connection closed */
};

#endif
