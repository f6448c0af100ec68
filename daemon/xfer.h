/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_XFER_H
#define KVSWAP_XFER_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "config.h"
#include "loop.h"
#include "fair.h"
#include "stats.h"

struct conn;
struct region;
struct xfer;
struct xfers;
struct xcheck;

/*
 * The data path's I/O chains (xfer.c): the segments of a swap request
 * (struct xfer, made by swap.c) between a client region and the store,
 * submitted up to the queue depth. Each segment is one linked
 * chain of READ_FIXED or WRITE_FIXED, ending either in the linked SEND of
 * its pre-encoded SegmentDone event (evlen > 0) or in a completion the
 * loop handles (a tail to copy, a checksum to verify, or a batch segment
 * that only counts towards its group). When a segment is over, well or
 * not, xfer.c calls the segment_done callback (swap.c).
 *
 * Whose chain goes next is fair.c's choice: between tenants, between the
 * connections of a tenant, between the requests of a connection, each
 * within its share of queue-depth and queue-bytes. A chain keeps one
 * piece (at most 1 MiB, linked I/Os run one after another) at the
 * device, which is what those bytes count.
 */

/* One segment of a request. */
struct xseg {
	struct xfer *x;
	uint64_t off;		/* in the region */
	uint64_t len;
	uint32_t index;		/* in the request, entry by entry */
	uint32_t stored;	/* in the entry */
	uint32_t ent;		/* the request's entry it belongs to */
	uint32_t group;		/* completion group (batches) */
	int32_t bounce;		/* bounce block, or -1 */
	uint32_t lastlen;	/* bytes of the chain's last I/O */
	struct xcheck *check;	/* a mismatch's stored bytes being re-read */
	uint8_t evlen;		/* 0: no linked event */
	uint8_t ev[23];		/* pre-encoded SegmentDone event */
} __attribute__((aligned(16)));
_Static_assert(sizeof(struct xseg) == 80, "struct xseg: 5 per 400 bytes");

enum xent_state {
	XENT_WAITING,		/* swap-out: space not reserved yet */
	XENT_LIVE,		/* its segments move */
	XENT_SKIPPED,		/* IF_ABSENT: stored or being written already */
	XENT_FAILED,		/* refused or a segment failed */
	XENT_LINKING,		/* durable swap-out: its record is committing */
	XENT_DONE,
};

/* One entry of a request: v1 requests have one, batches up to 1024. */
struct xent {
	struct xfer *x;
	struct entry *e;	/* swap-out: the reserved entry; swap-in: a ref */
	const uint8_t *key;	/* swap-out: in the xfer's allocation */
	uint32_t key_len;
	uint32_t meta_len;
	const uint8_t *meta;
	const uint32_t *crcs;	/* swap-out: the client's, or NULL */
	uint32_t seg0;		/* its segments: x->seg[seg0 .. seg0 + nseg) */
	uint32_t nseg;
	uint32_t failed;
	enum xent_state state;
	struct catalog_op op;	/* a durable link */
};

/*
 * A swap request. Owner: swap.c makes it (swap_*()) and frees it once
 * every segment is over and its final event is sent; xfer.c moves its
 * segments.
 */
struct xfer {
	struct fair_req fq;	/* its place in the scheduler (xfer_attach) */
	struct xfer *anext;	/* every request in flight (Cancel) */
	struct xfer *aprev;
	struct xfers *xf;
	struct conn *c;
	struct region *r;
	uint64_t id;
	bool out;
	bool batch;
	bool cancelled;
	bool client_crc;	/* swap-in: the client checks, not the daemon */
	uint32_t flags;		/* KVS_FLAG_* */
	uint32_t nent;
	uint32_t nseg;
	/*
	 * Batches: the order segments are submitted in, group by group
	 * (lowest first), entry by entry within a group, so that group 0
	 * (the first layer) lands first; NULL: request order.
	 */
	uint32_t *order;
	uint32_t next;		/* next segment to submit (in order[]) */
	uint32_t landed;	/* segments that landed well */
	uint32_t done;		/* segments finished, well or not */
	uint32_t failed;
	uint32_t inflight;	/* segments submitted, not finished */
	uint64_t bytes;
	uint32_t reserved;	/* swap-out: entries placed so far */
	uint32_t linking;	/* durable links outstanding */
	int err;		/* first failure */
	char errmsg[512];
	/* Batches: per completion group, segments left, landed, bytes. */
	uint32_t ngroups;
	uint32_t *group_left;
	uint32_t *group_segs;
	uint64_t *group_bytes;
	struct catalog_waiter waiter;	/* waiting for space */
	struct xent *ent;
	struct xseg seg[];
} __attribute__((aligned(16)));

/* The segment submitted at position i of x's submission order. */
static inline struct xseg *xfer_nth(struct xfer *x, uint32_t i)
{
	return &x->seg[x->order ? x->order[i] : i];
}

/* A segment is over: err 0, or a negative errno and what failed. */
typedef void xfer_seg_done_fn(struct xseg *xs, int err, const char *what);

struct xfers {
	struct loop *loop;
	struct catalog *cat;
	const struct config *cfg;	/* verify, durability, queue depth */
	struct stats *st;
	uint32_t block;
	xfer_seg_done_fn *seg_done;
	/* Whose chain goes next: fair between tenants and connections. */
	struct fair fair;
	/* Every request in flight, for Cancel. */
	struct xfer *active;
	/* I/O chains in flight; at most cfg->queue_depth. */
	uint32_t inflight;
	/* Bounce blocks for segment tails: fixed buffer 0, one per chain. */
	uint8_t *bounce;
	uint32_t *bounce_free;
	uint32_t nbounce_free;
};

/*
 * Allocates the bounce blocks, registers them as fixed buffer 0 and the
 * segment completion handlers with the loop; seg_done is told of every
 * segment's end. Returns 0 or a negative errno with a reason in err.
 * xfers_fini() frees what it allocated.
 */
int xfers_init(struct xfers *xf, struct loop *lp, struct catalog *cat,
	       const struct config *cfg, struct stats *st, uint32_t block,
	       xfer_seg_done_fn *seg_done, char *err, size_t len);
void xfers_fini(struct xfers *xf);

/*
 * Attaches a new request to its connection's flow (and the flow to its
 * group), making them if needed: before it is queued. Returns 0 or
 * -ENOMEM. xfer_detach() when the request ends (not queued, nothing in
 * flight) frees a flow or group left without requests.
 */
int xfer_attach(struct xfer *x);
void xfer_detach(struct xfer *x);

/* Queues x's segments (those of live entries) for submission. */
void xfer_enqueue(struct xfer *x);

/* Takes x out of the run queue (its unsubmitted segments stay unsent). */
void xfer_dequeue(struct xfer *x);

/* Submits queued segments while the queue depth allows. */
void xfers_pump(struct xfers *xf);

#endif
