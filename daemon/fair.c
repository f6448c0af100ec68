/* SPDX-License-Identifier: MIT */
/*
 * Fair scheduling of I/O chains (fair.h): groups (tenants) round robin in
 * s->runq, each group's flows (connections) round robin in its runq, each
 * flow's requests round robin in its runq. A request, flow or group is in
 * its parent's queue when it has something to submit and is neither
 * throttled nor parked; one at its share leaves the queue and comes back
 * when one of its chains ends (it has one in flight, so that always
 * comes). Shares are computed over the groups and flows "with work":
 * chains in flight or requests queued, counted as they change.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "config.h"
#include "fair.h"

/*
 * A request keeps at most 4 chains, or 8 MiB at the device, in flight
 * (whichever allows more): enough to keep a device busy, few enough that a
 * swap-in of many layers gets its first layers first, so prefill can start
 * on them.
 */
#define REQ_CAP_CHAINS	4
#define REQ_CAP_BYTES	(8u << 20)

/*
 * A tenant's share. Owner: the scheduler; made by the first flow of its
 * key, freed with its last.
 */
struct fair_group {
	struct fair_group *hnext;	/* hash chain */
	uint64_t key;
	struct xlink qlink;	/* in s->runq */
	struct xlink runq;	/* its flows with requests to serve */
	uint32_t nflows;	/* flows attached */
	uint32_t nactive;	/* flows with work */
	uint32_t inflight;	/* chains */
	uint64_t inflight_bytes;	/* their weights */
	bool queued;
	bool parked;		/* at its share: back when a chain ends */
	bool active;		/* counted in s->nactive */
};

/*
 * One connection's requests. Owner: the scheduler; made by the first
 * request attached with its key, freed with its last.
 */
struct fair_flow {
	struct fair_flow *hnext;	/* hash chain */
	const void *key;
	struct fair_group *g;
	struct xlink qlink;	/* in g->runq */
	struct xlink runq;	/* its requests with a chain to start */
	uint32_t nreqs;		/* requests attached */
	uint32_t nqueued;	/* requests in runq */
	uint32_t inflight;	/* chains */
	uint64_t inflight_bytes;	/* their weights */
	bool queued;
	bool parked;		/* at its share: back when a chain ends */
	bool active;		/* counted in g->nactive */
};

#define link_entry(l, type, member) \
	((type *)(void *)((char *)(l) - offsetof(type, member)))

static void link_init(struct xlink *h)
{
	h->next = h->prev = h;
}

static bool link_empty(const struct xlink *h)
{
	return h->next == h;
}

static void link_add_tail(struct xlink *h, struct xlink *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

static void link_del(struct xlink *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->next = l->prev = l;
}

/* --- shares ----------------------------------------------------------- */

struct share {
	uint32_t chains;
	uint64_t bytes;
};

/*
 * A group's share of the chains in flight and of the bytes at the
 * devices: each less a reserve of 1/16, over the groups with work.
 */
static struct share group_share(const struct fair *s)
{
	uint32_t qd = s->cfg->queue_depth;
	uint64_t qb = s->cfg->queue_bytes;
	uint32_t n = s->nactive ? s->nactive : 1;

	return (struct share){ (qd - qd / 16) / n, (qb - qb / 16) / n };
}

/* A flow's: its group's over the group's flows with work. */
static struct share flow_share(const struct fair *s,
			       const struct fair_group *g)
{
	struct share sh = group_share(s);
	uint32_t n = g->nactive ? g->nactive : 1;

	return (struct share){ sh.chains / n, sh.bytes / n };
}

/*
 * Whether one more chain of `weight` stays within a share. One chain is
 * always allowed: a share smaller than a chain still moves.
 */
static bool within(struct share sh, uint32_t chains, uint64_t bytes,
		   uint64_t weight)
{
	return !chains || (chains < sh.chains && bytes + weight <= sh.bytes);
}

/* Keeps the counts of groups and flows with work. */
static void note(struct fair *s, struct fair_flow *f)
{
	struct fair_group *g = f->g;
	bool now = f->inflight || f->nqueued;

	if (now != f->active) {
		f->active = now;
		if (now)
			g->nactive++;
		else
			g->nactive--;
	}
	now = g->nactive > 0;
	if (now != g->active) {
		g->active = now;
		if (now)
			s->nactive++;
		else
			s->nactive--;
	}
}

static void group_kick(struct fair *s, struct fair_group *g)
{
	if (g->queued || g->parked || link_empty(&g->runq))
		return;
	link_add_tail(&s->runq, &g->qlink);
	g->queued = true;
}

static void flow_kick(struct fair *s, struct fair_flow *f)
{
	if (!f->queued && !f->parked && f->nqueued) {
		link_add_tail(&f->g->runq, &f->qlink);
		f->queued = true;
	}
	group_kick(s, f->g);
}

/* --- groups and flows ------------------------------------------------- */

static uint32_t hash64(uint64_t v)
{
	return (uint32_t)((v * 0x9e3779b97f4a7c15ull) >> 58) % FAIR_HASH;
}

static struct fair_group *group_get(struct fair *s, uint64_t key)
{
	struct fair_group **pp = &s->groups[hash64(key)], *g;

	for (g = *pp; g; g = g->hnext)
		if (g->key == key)
			return g;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->key = key;
	link_init(&g->qlink);
	link_init(&g->runq);
	g->hnext = *pp;
	*pp = g;
	return g;
}

static void group_put(struct fair *s, struct fair_group *g)
{
	struct fair_group **pp = &s->groups[hash64(g->key)];

	if (--g->nflows)
		return;
	assert(!g->queued && !g->inflight && !g->nactive && !g->active);
	while (*pp != g)
		pp = &(*pp)->hnext;
	*pp = g->hnext;
	free(g);
}

int fair_attach(struct fair *s, struct fair_req *q, const void *flow_key,
		 uint64_t group_key)
{
	struct fair_flow **pp = &s->flows[hash64((uintptr_t)flow_key >> 4)], *f;

	for (f = *pp; f; f = f->hnext)
		if (f->key == flow_key)
			break;
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return -ENOMEM;
		f->g = group_get(s, group_key);
		if (!f->g) {
			free(f);
			return -ENOMEM;
		}
		f->g->nflows++;
		f->key = flow_key;
		link_init(&f->qlink);
		link_init(&f->runq);
		f->hnext = *pp;
		*pp = f;
	}
	f->nreqs++;
	q->flow = f;
	link_init(&q->qlink);
	return 0;
}

void fair_detach(struct fair *s, struct fair_req *q)
{
	struct fair_flow *f = q->flow, **pp;

	if (!f)
		return;
	assert(!q->queued && !q->inflight);
	q->flow = NULL;
	if (--f->nreqs)
		return;
	assert(!f->queued && !f->nqueued && !f->inflight && !f->active);
	pp = &s->flows[hash64((uintptr_t)f->key >> 4)];
	while (*pp != f)
		pp = &(*pp)->hnext;
	*pp = f->hnext;
	group_put(s, f->g);
	free(f);
}

/* --- the queues ------------------------------------------------------- */

void fair_enqueue(struct fair *s, struct fair_req *q)
{
	struct fair_flow *f = q->flow;

	assert(f && !q->queued);
	link_add_tail(&f->runq, &q->qlink);
	q->queued = true;
	f->nqueued++;
	flow_kick(s, f);
	note(s, f);
}

void fair_dequeue(struct fair *s, struct fair_req *q)
{
	struct fair_flow *f = q->flow;

	if (!q->queued)
		return;
	link_del(&q->qlink);
	q->queued = false;
	if (!--f->nqueued && f->queued) {
		link_del(&f->qlink);
		f->queued = false;
		if (link_empty(&f->g->runq) && f->g->queued) {
			link_del(&f->g->qlink);
			f->g->queued = false;
		}
	}
	note(s, f);
}

struct fair_req *fair_pick(struct fair *s)
{
	while (!link_empty(&s->runq)) {
		struct fair_group *g = link_entry(s->runq.next,
						   struct fair_group, qlink);
		struct fair_flow *f;
		struct fair_req *q;

		link_del(&g->qlink);
		g->queued = false;
		assert(!link_empty(&g->runq));
		f = link_entry(g->runq.next, struct fair_flow, qlink);
		assert(f->nqueued);
		q = link_entry(f->runq.next, struct fair_req, qlink);
		if (!within(group_share(s), g->inflight, g->inflight_bytes,
			    q->weight)) {
			g->parked = true;
			continue;
		}
		link_del(&f->qlink);
		f->queued = false;
		if (!within(flow_share(s, g), f->inflight, f->inflight_bytes,
			    q->weight)) {
			f->parked = true;
			group_kick(s, g);
			continue;
		}
		link_del(&q->qlink);
		q->queued = false;
		f->nqueued--;
		if (q->inflight >= REQ_CAP_CHAINS &&
		    q->inflight_bytes >= REQ_CAP_BYTES) {
			q->throttled = true;	/* back when one ends */
			flow_kick(s, f);
			note(s, f);
			continue;
		}
		/* Its flow and group go to the back of their queues. */
		flow_kick(s, f);
		note(s, f);
		return q;
	}
	return NULL;
}

void fair_started(struct fair *s, struct fair_req *q, uint64_t weight)
{
	struct fair_flow *f = q->flow;

	q->inflight++;
	q->inflight_bytes += weight;
	f->inflight++;
	f->inflight_bytes += weight;
	f->g->inflight++;
	f->g->inflight_bytes += weight;
	note(s, f);
}

bool fair_ended(struct fair *s, struct fair_req *q, uint64_t weight)
{
	struct fair_flow *f = q->flow;
	bool throttled = q->throttled;

	assert(q->inflight && f->inflight && f->g->inflight);
	q->inflight--;
	q->inflight_bytes -= weight;
	f->inflight--;
	f->inflight_bytes -= weight;
	f->g->inflight--;
	f->g->inflight_bytes -= weight;
	q->throttled = false;
	/* Below its share again, or parked again at the next pick. */
	f->g->parked = false;
	f->parked = false;
	flow_kick(s, f);
	note(s, f);
	return throttled;
}

void fair_init(struct fair *s, const struct config *cfg)
{
	*s = (struct fair){ .cfg = cfg };
	link_init(&s->runq);
}

void fair_fini(struct fair *s)
{
	for (uint32_t i = 0; i < FAIR_HASH; i++) {
		while (s->flows[i]) {
			struct fair_flow *f = s->flows[i];

			s->flows[i] = f->hnext;
			free(f);
		}
		while (s->groups[i]) {
			struct fair_group *g = s->groups[i];

			s->groups[i] = g->hnext;
			free(g);
		}
	}
}
