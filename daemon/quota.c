/* SPDX-License-Identifier: MIT */
/*
 * Tenants' usage of the store and its limits (quota.h). Only catalog.c
 * calls this, at the moments it makes, links and removes entries.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>

#include "index.h"
#include "log.h"
#include "quota.h"
#include "tenant.h"

uint64_t quota_entry_bytes(const struct entry *e, uint32_t block)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < e->next; i++)
		n += e->ext[i].nblocks;
	return n * block;
}

void quota_charge(struct entry *e, uint32_t block)
{
	struct tenant *tn = e->tenant;
	uint64_t b = quota_entry_bytes(e, block);

	if (!tn || e->counted)
		return;
	e->counted = true;
	tn->use.bytes += b;
	tn->use.entries++;
	if (e->flags & ENTRY_PINNED)
		tn->use.pinned_bytes += b;
}

void quota_lease_sync(struct entry *e, uint32_t block)
{
	bool leased = e->leases != NULL && e->counted;
	uint64_t b;

	if (!e->tenant || leased == e->lease_counted)
		return;
	b = quota_entry_bytes(e, block);
	e->lease_counted = leased;
	if (leased) {
		e->tenant->use.leased_bytes += b;
	} else {
		assert(e->tenant->use.leased_bytes >= b);
		e->tenant->use.leased_bytes -= b;
	}
}

void quota_uncharge(struct entry *e, uint32_t block)
{
	struct tenant *tn = e->tenant;
	uint64_t b;

	if (!tn || !e->counted)
		return;
	b = quota_entry_bytes(e, block);
	e->counted = false;
	quota_lease_sync(e, block);
	assert(tn->use.bytes >= b && tn->use.entries > 0);
	tn->use.bytes -= b;
	tn->use.entries--;
	if (e->flags & ENTRY_PINNED) {
		assert(tn->use.pinned_bytes >= b);
		tn->use.pinned_bytes -= b;
	}
}

/* "512 MiB", "4 KiB", "100 bytes": the unit that shows it best. */
static void human(uint64_t v, char *buf, size_t len)
{
	if (v >= (1ull << 30) && !(v % (1ull << 20)))
		snprintf(buf, len, "%.1f GiB", (double)v / (1ull << 30));
	else if (v >= (1ull << 20))
		snprintf(buf, len, "%.1f MiB", (double)v / (1ull << 20));
	else if (v >= 1024)
		snprintf(buf, len, "%.1f KiB", (double)v / 1024);
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)v);
}

int quota_check(struct tenant *tn, enum quota_kind kind, uint64_t bytes,
		const char *what, uint8_t *logged, char *err, size_t len)
{
	static const char *const names[] = { "bytes stored", "pinned bytes",
					      "leased bytes" };
	static const char *const opts[] = { "tenant-max-bytes",
					    "tenant-max-pinned",
					    "tenant-max-leased" };
	uint64_t use = kind == QUOTA_PINNED ? tn->use.pinned_bytes :
		       kind == QUOTA_LEASED ? tn->use.leased_bytes : tn->use.bytes;
	uint64_t lim = kind == QUOTA_PINNED ? tn->lim.pinned_bytes :
		       kind == QUOTA_LEASED ? tn->lim.leased_bytes : tn->lim.bytes;
	char u[32], b[32], l[32];

	assert(kind < QUOTA_KINDS);
	if (bytes <= lim && use <= lim - bytes)
		return 0;
	human(use, u, sizeof(u));
	human(bytes, b, sizeof(b));
	human(lim, l, sizeof(l));
	snprintf(err, len, "%s: tenant '%s': %s %s + %s over its quota %s (%s)",
		 what, tn->name, names[kind], u, b, l, opts[kind]);
	tn->stat.quota_refusals++;
	if (logged && !(*logged & (1u << kind))) {
		*logged |= (uint8_t)(1u << kind);
		log_notice("refused (further refusals of this kind on this "
			   "connection are not logged): %s", err);
	}
	return -EDQUOT;
}

uint64_t quota_over(const struct tenant *tn, uint64_t bytes)
{
	uint64_t want = tn->use.bytes + bytes;

	return want > tn->lim.bytes ? want - tn->lim.bytes : 0;
}

/* What a tenant could give up: its bytes less pinned and leased. */
static uint64_t evictable(const struct tenant *tn)
{
	uint64_t keep = tn->use.pinned_bytes + tn->use.leased_bytes;

	return tn->use.bytes > keep ? tn->use.bytes - keep : 0;
}

/* Bytes the tenants above `level` would give, each down to level. */
static uint64_t above(const struct tenants *t, uint64_t level)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < t->count; i++) {
		const struct tenant *tn = t->by_id[i];
		uint64_t over = tn->use.bytes > level ? tn->use.bytes - level : 0;
		uint64_t ev = evictable(tn);

		sum += over < ev ? over : ev;
	}
	return sum;
}

void quota_evict_plan(struct tenants *t, uint64_t need)
{
	uint64_t lo = 0, hi = 0;

	for (uint32_t i = 0; i < t->count; i++)
		if (t->by_id[i]->use.bytes > hi)
			hi = t->by_id[i]->use.bytes;
	/*
	 * The highest level at which the tenants above it give `need`: a
	 * binary search, since what they give only grows as it drops.
	 */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;

		if (above(t, mid) >= need)
			lo = mid;
		else
			hi = mid - 1;
	}
	for (uint32_t i = 0; i < t->count; i++) {
		struct tenant *tn = t->by_id[i];
		uint64_t over = tn->use.bytes > lo ? tn->use.bytes - lo : 0;
		uint64_t ev = evictable(tn);

		tn->evict_allot = over < ev ? over : ev;
	}
}
