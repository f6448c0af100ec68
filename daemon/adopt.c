/* SPDX-License-Identifier: MIT */
/*
 * Recovery's tenants (catalog_adopt, catalog.h): the entries replayed
 * from the log get their tenants from their composite keys, and a store
 * of format 3 or 2, whose keys name no tenant, is migrated by giving
 * every key one (kvswapd --migrate-tenant). Runs once, before the
 * startup checkpoint writes the index; nothing is written here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "defs.h"
#include "log.h"
#include "quota.h"
#include "store.h"
#include "tenant.h"

struct collect {
	struct entry **v;
	size_t n, cap;
	int err;
};

static void collect_one(struct entry *e, void *arg)
{
	struct collect *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 1024;
		struct entry **v = realloc(c->v, cap * sizeof(*v));

		if (!v) {
			c->err = -ENOMEM;
			return;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = e;
}

/*
 * The length of the tenant name a composite key starts with, or -1 if
 * it does not start with a valid one, or the client's key after the NUL
 * is empty or too long.
 */
static int key_tenant_len(const uint8_t *k, uint32_t len)
{
	const uint8_t *nul = memchr(k, '\0', len < TENANT_NAME_MAX + 1 ?
					     len : TENANT_NAME_MAX + 1);
	size_t n;

	if (!nul)
		return -1;
	n = (size_t)(nul - k);
	if (!tenant_name_valid((const char *)k, n) || len - n - 1 < 1 ||
	    len - n - 1 > KVS_MAX_KEY)
		return -1;
	return (int)n;
}

/*
 * A copy of e under "name\0key": the same blocks, segments and metadata.
 * Returns NULL on out of memory or a key too long (format 3 keys are at
 * most KVS_MAX_KEY bytes: never).
 */
static struct entry *rekey(const struct entry *e, const char *name)
{
	size_t nl = strlen(name);
	uint8_t k[ENTRY_MAX_KEY];
	struct entry *n;

	if (e->key_len > KVS_MAX_KEY)
		return NULL;
	memcpy(k, name, nl);
	k[nl] = '\0';
	memcpy(k + nl + 1, e->key, e->key_len);
	n = entry_new(k, (uint32_t)(nl + 1 + e->key_len), e->meta, e->meta_len,
		      e->nseg, e->next);
	if (!n)
		return NULL;
	memcpy(n->segs, e->segs, e->nseg * sizeof(*e->segs));
	memcpy(n->ext, e->ext, e->next * sizeof(*e->ext));
	n->size = e->size;
	n->flags = e->flags;
	return n;
}

int catalog_adopt(struct catalog *cat, const char *migrate, char *err,
		  size_t len)
{
	struct collect c = { 0 };
	uint64_t cursor = 0, dropped = 0;
	int r = 0;

	do
		cursor = index_scan(&cat->index, cursor, collect_one, &c);
	while (cursor && !c.err);
	if (c.err) {
		snprintf(err, len, "recovery: out of memory listing the entries");
		free(c.v);
		return c.err;
	}
	for (size_t i = 0; i < c.n; i++) {
		struct entry *e = c.v[i];
		struct tenant *tn;
		int tl;

		if (migrate) {
			struct entry *n = rekey(e, migrate);

			if (!n) {
				snprintf(err, len, "migration: out of memory; the "
					 "store was not changed");
				r = -ENOMEM;
				break;
			}
			index_del(&cat->index, e->key, e->key_len);
			free(e);
			index_put(&cat->index, n);
			e = n;
		}
		tl = key_tenant_len(e->key, e->key_len);
		if (tl < 0) {
			/* A CRC-valid record of no tenant: damage, or a forgery. */
			log_warn("recovery: dropping an entry of %u key bytes that "
				 "names no tenant", e->key_len);
			index_del(&cat->index, e->key, e->key_len);
			store_free(cat->store, e->ext, e->next);
			free(e);
			dropped++;
			continue;
		}
		r = tenants_get(cat->tenants, (const char *)e->key, (size_t)tl,
				&tn);
		if (r < 0) {
			snprintf(err, len, "recovery: tenant '%.*s': %s", tl,
				 (const char *)e->key,
				 r == -ENOSPC ? "too many tenants" : strerror(-r));
			break;
		}
		e->tenant = tn;
		e->tenant_len = (uint8_t)tl;
		quota_charge(e, cat->store->block);
	}
	free(c.v);
	if (!r && migrate)
		log_notice("migration: %zu entries given to tenant '%s'", c.n,
			   migrate);
	if (!r && dropped)
		log_warn("recovery: dropped %llu entries that name no tenant",
			 (unsigned long long)dropped);
	return r;
}
