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
	uint64_t meta_refusals;	/* swap-outs refused: metadata log full */
};

#endif
