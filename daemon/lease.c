/* SPDX-License-Identifier: MIT */
/*
 * The catalog's leases (catalog.h, catalog_lease and the rest): a Lookup's
 * protection of the entries it found from eviction, until the holder's
 * SwapIn. Split from catalog.c, which calls leases_end() and
 * lease_consume() as entries go and are read; nothing here calls
 * catalog.c.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "catalog.h"
#include "clock.h"
#include "quota.h"
#include "store.h"
#include "tenant.h"

/*
 * A lease: in its owner's list (doubly linked, to end it in O(1)) and in
 * its entry's (singly: an entry has few holders). Owner: lease.c; it
 * holds no reference on the entry: when the entry goes, so do its leases.
 */
struct lease {
	struct lease *onext;
	struct lease *oprev;
	struct lease *enext;
	struct entry *e;
	struct lease_owner *o;
	uint64_t until;
};

/*
 * e is protected until the latest of its leases; while it has any, its
 * bytes count in its tenant's leased bytes.
 */
static void lease_recompute(struct catalog *cat, struct entry *e)
{
	uint64_t until = 0;

	for (const struct lease *l = e->leases; l; l = l->enext)
		if (l->until > until)
			until = l->until;
	e->lease_until = until;
	quota_lease_sync(e, cat->store->block);
}

/* Unlinks and frees l, counting how it ended. */
static void lease_free(struct catalog *cat, struct lease *l, uint64_t *outcome)
{
	struct lease **pp;

	for (pp = &l->e->leases; *pp != l; pp = &(*pp)->enext)
		assert(*pp);
	*pp = l->enext;
	if (l->oprev)
		l->oprev->onext = l->onext;
	else
		l->o->head = l->onext;
	if (l->onext)
		l->onext->oprev = l->oprev;
	assert(l->o->count > 0);
	l->o->count--;
	/* A lease used or released after it ran out counts as expired. */
	if (outcome != &cat->st->leases_dropped && l->until <= now_ms())
		outcome = &cat->st->leases_expired;
	(*outcome)++;
	free(l);
}

static struct lease *lease_find(struct entry *e, const struct lease_owner *o)
{
	for (struct lease *l = e->leases; l; l = l->enext)
		if (l->o == o)
			return l;
	return NULL;
}

/* Frees o's expired leases: a client that never swaps in stays bounded. */
static void lease_prune(struct catalog *cat, struct lease_owner *o)
{
	uint64_t now = now_ms();
	struct lease *l, *next;

	for (l = o->head; l; l = next) {
		struct entry *e = l->e;

		next = l->onext;
		if (l->until <= now) {
			lease_free(cat, l, &cat->st->leases_expired);
			lease_recompute(cat, e);
		}
	}
}

int catalog_lease(struct catalog *cat, struct entry *e, struct lease_owner *o,
		  uint64_t until, char *err, size_t len)
{
	struct lease *l = lease_find(e, o);
	uint64_t bytes = quota_entry_bytes(e, cat->store->block);
	int r;

	if (!l) {
		if (o->count >= CATALOG_MAX_LEASES)
			lease_prune(cat, o);
		if (o->count >= CATALOG_MAX_LEASES)
			return -ENOSPC;
		/*
		 * A first lease on e makes its bytes leased: the quota's. Our
		 * expired leases go first if they are what stands in the way.
		 */
		if (!e->leases && e->tenant &&
		    e->tenant->use.leased_bytes + bytes > e->tenant->lim.leased_bytes)
			lease_prune(cat, o);
		r = e->leases ? 0 : quota_check(e->tenant, QUOTA_LEASED, bytes,
						"lookup", &o->quota_logged, err,
						len);
		if (r < 0)
			return r;
		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		l->e = e;
		l->o = o;
		l->enext = e->leases;
		e->leases = l;
		l->onext = o->head;
		if (o->head)
			o->head->oprev = l;
		o->head = l;
		o->count++;
	}
	l->until = until;
	lease_recompute(cat, e);
	cat->st->leases_granted++;
	return 0;
}

void catalog_unlease(struct catalog *cat, struct entry *e,
		     struct lease_owner *o)
{
	struct lease *l = lease_find(e, o);

	if (!l)
		return;
	lease_free(cat, l, &cat->st->leases_released);
	lease_recompute(cat, e);
}

void catalog_unlease_all(struct catalog *cat, struct lease_owner *o)
{
	while (o->head) {
		struct entry *e = o->head->e;

		lease_free(cat, o->head, &cat->st->leases_dropped);
		lease_recompute(cat, e);
	}
}

void leases_end(struct catalog *cat, struct entry *e)
{
	if (!e)
		return;
	while (e->leases)
		lease_free(cat, e->leases, &cat->st->leases_dropped);
	e->lease_until = 0;
	quota_lease_sync(e, cat->store->block);
}

void lease_consume(struct catalog *cat, struct entry *e,
		   struct lease_owner *o)
{
	struct lease *l = lease_find(e, o);

	/* The swap-in a lease protected the entry for: the lease is used. */
	if (l) {
		lease_free(cat, l, &cat->st->leases_consumed);
		lease_recompute(cat, e);
	}
}
