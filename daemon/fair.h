/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_FAIR_H
#define KVSWAP_FAIR_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Fair scheduling of the data path's I/O chains (fair.c), between
 * tenants, between the connections of a tenant, and between the requests
 * of a connection: round robin at each of the three levels, one chain at
 * a time. A scheduling group is a tenant; a flow is one connection's
 * requests; a request is a struct fair_req the caller embeds (xfer.c's
 * struct xfer). Each group, and each flow within its group, may keep at
 * most its share of the chains in flight (queue-depth) and of the bytes
 * those chains keep at the devices (queue-bytes): an equal part over the
 * groups (flows) with work, after a reserve of 1/16 that a newcomer
 * starts on at once instead of queueing behind another tenant's large
 * transfers. A request keeps at most 4 chains or 8 MiB in flight
 * (whichever allows more). An entity at its share is parked until one of
 * its chains ends. The module knows nothing of connections, tenants or
 * segments: the caller names a request's flow and group by keys, and
 * sets the weight (bytes at the device) of its next chain.
 */

struct config;
struct fair_flow;
struct fair_group;

/* A link in one of the circular run queues. */
struct xlink {
	struct xlink *next;
	struct xlink *prev;
};

/* The scheduler's part of a request. */
struct fair_req {
	struct xlink qlink;		/* in its flow's run queue */
	struct fair_flow *flow;	/* fair_attach() */
	uint64_t weight;		/* its next chain's, before enqueueing */
	uint32_t inflight;		/* chains */
	uint64_t inflight_bytes;	/* their weights */
	bool queued;
	bool throttled;			/* at its cap: out of the queue */
};

#define FAIR_HASH 64

struct fair {
	const struct config *cfg;	/* queue_depth, queue_bytes */
	struct xlink runq;		/* groups with a flow to serve */
	struct fair_group *groups[FAIR_HASH];
	struct fair_flow *flows[FAIR_HASH];
	uint32_t nactive;		/* groups with chains in flight or queued */
};

/* An empty scheduler on cfg's queue-depth and queue-bytes (read live). */
void fair_init(struct fair *s, const struct config *cfg);

/* Frees the flows and groups of requests still attached. */
void fair_fini(struct fair *s);

/*
 * Attaches a new request to the flow `flow_key` (a connection) of group
 * `group_key` (its tenant), making them if needed. Returns 0 or -ENOMEM.
 * fair_detach() when the request ends (not queued, no chain in flight)
 * frees a flow or group left without requests.
 */
int fair_attach(struct fair *s, struct fair_req *q, const void *flow_key,
		 uint64_t group_key);
void fair_detach(struct fair *s, struct fair_req *q);

/* Queues q (its weight set) at the tail of its flow; takes it out. */
void fair_enqueue(struct fair *s, struct fair_req *q);
void fair_dequeue(struct fair *s, struct fair_req *q);

/*
 * The next request whose next chain fits every share, out of the queue;
 * NULL when none does. The caller starts the chain, tells
 * fair_started(), and queues the request again if it has more.
 */
struct fair_req *fair_pick(struct fair *s);
void fair_started(struct fair *s, struct fair_req *q, uint64_t weight);

/*
 * A chain of q of `weight` ended: its shares go back. Returns true when
 * q was throttled (out of the queue), for the caller to queue it again.
 */
bool fair_ended(struct fair *s, struct fair_req *q, uint64_t weight);

#endif
