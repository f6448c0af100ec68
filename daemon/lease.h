/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_LEASE_H
#define KVSWAP_LEASE_H

#include <stdint.h>

struct lease;

/*
 * The leases one client holds (a Lookup's protection of the hit prefix
 * until the SwapIn that follows). Kept in struct conn, managed only by
 * catalog.c: a lease ends when its holder swaps the entry in, releases
 * it, renews it shorter, lets it expire, or closes its connection, and
 * when the entry goes.
 */
struct lease_owner {
	struct lease *head;
	uint32_t count;
	/* Quota refusals of this connection already logged (quota.h kinds). */
	uint8_t quota_logged;
};

#endif
