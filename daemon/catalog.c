/* SPDX-License-Identifier: MIT */
/*
 * The catalog (catalog.h): entries are made, linked, replaced, deleted,
 * evicted and leased here, and nowhere else.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "clock.h"
#include "journal.h"
#include "jformat.h"
#include "defs.h"
#include "log.h"
#include "quota.h"
#include "store.h"
#include "tenant.h"

_Static_assert(ENTRY_MAX_KEY == KVS_MAX_KEY + TENANT_NAME_MAX + 1,
	       "a composite key: tenant, NUL, key");

static void space_back(void *arg);
static void entry_freed(void *arg, const struct entry *e);


/* --- metadata room ------------------------------------------------------- */

/*
 * What a checkpoint writes for each entry: its PUT record (jformat.c). An
 * entry's key, metadata and extents never change, so neither does this.
 */
static uint64_t rec_bytes(const struct entry *e)
{
	return jf_rec_size(JF_PUT, e);
}

static void meta_link(struct catalog *cat, struct entry *e)
{
	cat->meta.linked += rec_bytes(e);
	cat->meta.keys_meta += (uint64_t)e->key_len + e->meta_len;
}

static void meta_unlink(struct catalog *cat, struct entry *e)
{
	assert(cat->meta.linked >= rec_bytes(e));
	cat->meta.linked -= rec_bytes(e);
	cat->meta.keys_meta -= (uint64_t)e->key_len + e->meta_len;
}

/* A pending durable swap-out stops being one (landed or superseded). */
static void meta_unpend(struct catalog *cat, struct entry *e)
{
	assert(e->pending && cat->meta.pending >= rec_bytes(e));
	cat->meta.pending -= rec_bytes(e);
	e->pending = false;
}

/* A reserved entry is linked, queued or abandoned. */
static void meta_unreserve(struct catalog *cat, struct entry *e)
{
	assert(cat->meta.reserved >= rec_bytes(e));
	cat->meta.reserved -= rec_bytes(e);
}

int catalog_init(struct catalog *cat, struct store *s, struct journal *jr,
		 struct stats *st, struct tenants *tenants)
{
	int r;

	memset(cat, 0, sizeof(*cat));
	cat->tenants = tenants;
	cat->store = s;
	cat->jr = jr;
	cat->st = st;
	r = index_init(&cat->index);
	if (r < 0)
		return r;
	r = index_init(&cat->writing);
	if (r < 0)
		return r;
	cat->scratch = calloc((size_t)KVS_MAX_SEGMENTS * KVS_MAX_EXTENTS,
			      sizeof(*cat->scratch));
	if (!cat->scratch)
		return -ENOMEM;
	/*
	 * A checkpoint must fit in a log half; the index may grow to half of
	 * that, in whole blocks (see admit_meta).
	 */
	cat->meta.room = store_log_blocks(s) * JF_PAYLOAD;
	cat->meta.limit = store_log_blocks(s) / 2 * JF_PAYLOAD;
	journal_on_progress(jr, space_back, cat);
	s->on_entry_free = entry_freed;
	s->on_entry_free_arg = cat;
	return 0;
}

static void count_one(struct entry *e, void *arg)
{
	meta_link(arg, e);
}

void catalog_recount(struct catalog *cat)
{
	uint64_t c = 0;

	cat->meta.linked = cat->meta.keys_meta = 0;
	do
		c = index_scan(&cat->index, c, count_one, cat);
	while (c);
	if (cat->meta.linked > cat->meta.limit)
		log_warn("the metadata log is over its limit: %llu entries need "
			 "%llu bytes of checkpoint, more than the %llu allowed in "
			 "%s's %llu MiB log halves; new keys are refused until "
			 "entries are deleted",
			 (unsigned long long)cat->index.count,
			 (unsigned long long)cat->meta.linked,
			 (unsigned long long)cat->meta.limit,
			 cat->store->files[0].path,
			 (unsigned long long)(cat->store->meta_half >> 20));
}

uint64_t catalog_checkpoint_bytes(const struct catalog *cat)
{
	return cat->meta.linked + cat->meta.pending;
}

void catalog_fini(struct catalog *cat)
{
	index_fini(&cat->writing);
	index_clear(&cat->index);
	index_fini(&cat->index);
	free(cat->scratch);
	cat->scratch = NULL;
}

/* tn's composite key for the client's key into buf (ENTRY_MAX_KEY). */
static uint32_t ckey(const struct tenant *tn, const void *key, size_t len,
		     uint8_t *buf)
{
	assert(len <= KVS_MAX_KEY && tn->name_len <= TENANT_NAME_MAX);
	memcpy(buf, tn->name, tn->name_len);
	buf[tn->name_len] = '\0';
	memcpy(buf + tn->name_len + 1, key, len);
	return (uint32_t)(tn->name_len + 1 + len);
}

struct entry *catalog_get(struct catalog *cat, const struct tenant *tn,
			  const void *key, size_t len)
{
	uint8_t k[ENTRY_MAX_KEY];

	return index_get(&cat->index, k, ckey(tn, key, len, k));
}

void catalog_read_begin(struct catalog *cat, struct entry *e,
			struct lease_owner *o)
{
	assert(e->linked);
	lease_consume(cat, e, o);
	/* The entry stays allocated until this read is done with it. */
	e->refs++;
	index_touch(&cat->index, e);
}

void catalog_read_end(struct catalog *cat, struct entry *e)
{
	store_entry_put(cat->store, e);
}

/*
 * The index must end up as the log replays: a record queued later for the
 * same key wins. A durable swap-out is linked only when its record is
 * durable, so a later record for its key (a cache-mode swap-out, a
 * delete, an eviction, another durable swap-out) queued meanwhile marks it
 * superseded: it is then not linked, and its blocks stay allocated until
 * that later record is durable too.
 */
static void supersede(struct catalog *cat, const void *key, size_t len)
{
	uint64_t h = index_hash(&cat->index, key, len);
	struct entry **pp = &cat->pending;

	while (*pp) {
		struct entry *p = *pp;

		if (p->hash == h && p->key_len == len && !memcmp(p->key, key, len)) {
			*pp = p->hnext;
			p->hnext = NULL;
			meta_unpend(cat, p);
			p->superseded = true;
		} else {
			pp = &p->hnext;
		}
	}
}

static void pending_remove(struct catalog *cat, struct entry *e)
{
	struct entry **pp;

	for (pp = &cat->pending; *pp && *pp != e; pp = &(*pp)->hnext)
		;
	if (*pp)
		*pp = e->hnext;
	e->hnext = NULL;
	if (e->pending)
		meta_unpend(cat, e);
}

/*
 * Removes a linked entry: out of the index now, a DEL record queued with
 * the index's reference, which the journal drops once it is durable (so
 * its blocks are reused only then). Without memory for the record the
 * reference is dropped at once. Returns whether done will run.
 */
static bool unlink_entry(struct catalog *cat, struct entry *e,
			 catalog_done_fn *done, void *arg)
{
	assert(e->linked);
	index_del(&cat->index, e->key, e->key_len);
	meta_unlink(cat, e);
	leases_end(cat, e);
	quota_uncharge(e, cat->store->block);
	supersede(cat, e->key, e->key_len);
	if (journal_del(cat->jr, e, done, arg) < 0) {
		store_entry_put(cat->store, e);
		return false;
	}
	return true;
}

static uint64_t entry_blocks(const struct entry *e)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < e->next; i++)
		n += e->ext[i].nblocks;
	return n;
}

/* Evicts e: its blocks come back when its last reference goes. */
static uint64_t evict_one(struct catalog *cat, struct entry *e)
{
	uint64_t b = entry_blocks(e) * cat->store->block;

	e->evicted = true;
	cat->evicting += b;
	if (e->tenant)
		e->tenant->stat.evictions++;
	unlink_entry(cat, e, NULL, NULL);
	cat->st->evictions++;
	return b;
}

/*
 * Evicts least recently used entries, not pinned and not leased, until
 * `need` more bytes will be free: only tenant `only`'s if set (it is over
 * its bytes quota); else first from the tenants using the most, down to a
 * common level (quota_evict_plan: one tenant's entries cannot push out
 * another's while it holds more than its share), then in LRU order. Their
 * blocks return once the DEL records are durable. Evicts nothing if even
 * all of them would not do. Returns the bytes evicted.
 */
static uint64_t evict(struct catalog *cat, uint64_t need,
		      const struct tenant *only)
{
	uint64_t got = 0, can = 0, now = now_ms(), B = cat->store->block;
	struct entry *e, *next;

	for (e = index_lru_first(&cat->index); e && can < need;
	     e = index_lru_next(&cat->index, e))
		if (e->lease_until <= now && (!only || e->tenant == only))
			can += entry_blocks(e) * B;
	if (can < need)
		return 0;
	if (!only)
		quota_evict_plan(cat->tenants, need);
	for (int pass = only ? 1 : 0; pass < 2 && got < need; pass++) {
		for (e = index_lru_first(&cat->index); e && got < need; e = next) {
			uint64_t b = entry_blocks(e) * B;

			next = index_lru_next(&cat->index, e);
			if (e->lease_until > now || (only && e->tenant != only))
				continue;
			if (pass == 0 && (!e->tenant || !e->tenant->evict_allot))
				continue;
			if (pass == 0)
				e->tenant->evict_allot -= b < e->tenant->evict_allot ?
							  b : e->tenant->evict_allot;
			got += evict_one(cat, e);
		}
	}
	if (got)
		log_debug("evicted %llu bytes%s%s", (unsigned long long)got,
			  only ? " of tenant " : "", only ? only->name : "");
	return got;
}

/* The PUT record of an entry of this shape, before the entry exists. */
static uint64_t put_bytes(uint32_t key_len, uint32_t meta_len, uint32_t nseg,
			  uint32_t next)
{
	const struct entry shape = { .key_len = key_len, .meta_len = meta_len,
				     .nseg = nseg, .next = next };

	return jf_rec_size(JF_PUT, &shape);
}

/*
 * Whether the metadata log takes one more entry, whose PUT record is `rec`
 * bytes, under `key`.
 *
 * Safety. A checkpoint (journal.c stage_checkpoint) writes the record of
 * every entry in the index and every queued record (the group): L + G
 * bytes, L = meta.linked, G <= Q = journal_queued_bytes(). If that passed
 * the payload of a log half, H = meta.room, the checkpoint would fail with
 * ENOSPC, and so would every commit after it. The catalog keeps
 *
 *	M = L + Q + 2R <= H		(R = meta.reserved)
 *
 * at all times, so that L + G <= L + Q <= M <= H for every checkpoint,
 * whether a commit, a failed write or shutdown starts it. It holds at
 * startup (M = L: recovery's index has one record per entry, all read
 * from one half, so L <= H), and only an admission raises M:
 *  - admitting a record r: M += 2r, only if the result is <= H;
 *  - abandoning a reservation: M -= 2r;
 *  - cache link: R -= r, L += r - (a replaced entry's record), Q += r;
 *  - durable link: R -= r, Q += r; when the record lands the journal takes
 *    r out of Q just before put_landed adds it to L, nothing in between;
 *  - delete, eviction, drop: L -= r, Q += the DEL record, which is 16
 *    bytes plus the key, at least 32 bytes less than r. A DEL always
 *    fits, with no room set aside for it, and so do swap-ins (no record)
 *    and the checkpoint at shutdown;
 *  - a record written, or failed (limbo is never staged again): Q drops.
 * A swap-out in flight counts twice because once linked in cache mode it
 * is in L and, until its record is written, in Q.
 *
 * Headroom. Safety alone would let the index fill a whole half, and then
 * every commit would be a checkpoint. So the index that remains once the
 * queue is written, S = L + P + R (P = meta.pending), plus the new record,
 * less the record of the linked entry it replaces, may reach only
 * meta.limit, half of H in whole blocks: a checkpoint of it takes at most
 * half the half, leaving at least a quarter (less the records of the
 * group it includes) for commits before the next one at three quarters;
 * checkpoints cost at most twice the bytes of the commits between them.
 * The replace's credit lets a full log keep taking replaces of the same
 * size; if the replaced entry is deleted meanwhile, S runs one record
 * over for a while; M takes no credit and stays exact.
 *
 * S over the limit: -ENOSPC, the log is full of entries and only deletes
 * make room. S within it but M over H: queued records or swap-outs in
 * flight hold the room; -EAGAIN while the journal is busy (its progress
 * retries the swap-out), else -ENOSPC.
 *
 * Room is never made by evicting, though each evicted entry's record
 * would go at once: the limit is reached only when keys and metadata are
 * large next to the data (1 KiB keys and 4 KiB metadata on 4 KiB entries
 * reach it at about 1.3% of the data area), and evicting most of the data
 * to hold records would hide a mis-sized store behind a cache that keeps
 * nothing. A clear ENOSPC says what to change.
 */
static int admit_meta(struct catalog *cat, const void *key, uint32_t key_len,
		      uint64_t rec, char *err, size_t len)
{
	struct catalog_meta *m = &cat->meta;
	const struct entry *old = index_get(&cat->index, key, key_len);
	uint64_t steady = m->linked + m->pending + m->reserved + rec;
	uint64_t peak = m->linked + journal_queued_bytes(cat->jr) +
			2 * (m->reserved + rec);
	bool fits = steady - (old ? rec_bytes(old) : 0) <= m->limit;

	if (fits && peak <= m->room) {
		if (m->full)
			log_notice("the metadata log has room again: %llu of "
				   "%llu bytes", (unsigned long long)steady,
				   (unsigned long long)m->limit);
		m->full = false;
		return 0;
	}
	if (fits && !journal_idle(cat->jr))
		return -EAGAIN;
	cat->st->meta_refusals++;
	snprintf(err, len, "swap_out: the metadata log is full: %llu entries "
		 "with %llu bytes of keys and metadata fill the %llu MiB log of "
		 "%s (its checkpoints may use %llu KiB); delete entries, or use "
		 "a larger store", (unsigned long long)cat->index.count,
		 (unsigned long long)m->keys_meta,
		 (unsigned long long)(2 * cat->store->meta_half >> 20),
		 cat->store->files[0].path,
		 (unsigned long long)(m->limit >> 10));
	if (!m->full)
		log_warn("refusing swap-outs: %s (index %llu, queued %llu, in "
			 "flight %llu bytes)", err + strlen("swap_out: "),
			 (unsigned long long)m->linked,
			 (unsigned long long)journal_queued_bytes(cat->jr),
			 (unsigned long long)m->reserved);
	m->full = true;
	return -ENOSPC;
}

/*
 * Whether evicting leased entries too (never pinned ones) would free
 * `need` bytes once their leases run out; if so, lease_wake_ms becomes
 * the earliest time one of them does, for the server's timer.
 */
static bool leases_would_do(struct catalog *cat, uint64_t need)
{
	uint64_t can = 0, wake = 0, now = now_ms();
	struct entry *e;

	for (e = index_lru_first(&cat->index); e && can < need;
	     e = index_lru_next(&cat->index, e)) {
		can += entry_blocks(e) * cat->store->block;
		if (e->lease_until > now && (!wake || e->lease_until < wake))
			wake = e->lease_until;
	}
	if (can < need || !wake)
		return false;
	if (!cat->lease_wake_ms || wake < cat->lease_wake_ms)
		cat->lease_wake_ms = wake;
	return true;
}

void catalog_leases_due(struct catalog *cat)
{
	cat->lease_wake_ms = 0;
	cat->space_returned = true;
}

/*
 * tn's quotas for a new entry of `bytes` (block-rounded): pinned bytes
 * are refused over their quota; over the bytes quota tn's own least
 * recently used entries go first, or it is refused if they would not do.
 */
static int admit_quota(struct catalog *cat, struct tenant *tn, uint64_t bytes,
		       bool pinned, uint8_t *logged, char *err, size_t len)
{
	uint64_t over;
	int r;

	/* A quota of the whole store binds no tighter than the store. */
	if (pinned && tn->lim.pinned_bytes < cat->store->capacity) {
		r = quota_check(tn, QUOTA_PINNED, bytes, "swap_out", logged,
				err, len);
		if (r < 0)
			return r;
	}
	/* A quota of the whole store binds no tighter than the store. */
	if (tn->lim.bytes >= cat->store->capacity)
		return 0;
	over = quota_over(tn, bytes);
	if (over && bytes <= tn->lim.bytes)
		evict(cat, over, tn);
	return quota_check(tn, QUOTA_BYTES, bytes, "swap_out", logged, err,
			   len);
}

int catalog_reserve(struct catalog *cat, struct tenant *tn,
		    struct lease_owner *o, const void *ckey_, uint32_t ckey_len,
		    const void *meta, uint32_t meta_len, uint32_t nseg,
		    const uint64_t *lens, bool pinned, bool wait_leases,
		    struct entry **ret, char *err, size_t len)
{
	uint32_t counts[KVS_MAX_SEGMENTS], next = 0;
	struct store *s = cat->store;
	uint64_t total = 0, blocks = 0, avail = store_avail(s);
	uint8_t key[ENTRY_MAX_KEY];
	uint32_t key_len = ckey(tn, ckey_, ckey_len, key);
	struct entry *e;
	int r;

	assert(nseg > 0 && nseg <= KVS_MAX_SEGMENTS);
	for (uint32_t i = 0; i < nseg; i++) {
		total += lens[i];
		blocks += (lens[i] + s->block - 1) / s->block;
	}
	r = admit_quota(cat, tn, blocks * s->block, pinned, &o->quota_logged,
			err, len);
	if (r < 0)
		return r;
	avail = store_avail(s);
	/* Before evicting: its least record, one extent per segment. */
	r = admit_meta(cat, key, key_len, put_bytes(key_len, meta_len, nseg, nseg),
		       err, len);
	if (r < 0)
		return r;
	if (blocks * s->block > avail)
		goto out_full;
	for (uint32_t i = 0; i < nseg; i++) {
		uint32_t pref = (cat->rr_file + i) % s->nfiles;
		int n = store_alloc(s, lens[i], pref, cat->scratch + next,
				    KVS_MAX_EXTENTS);

		if (n < 0) {
			store_free(s, cat->scratch, next);
			snprintf(err, len, "swap_out: the free space is too "
				 "fragmented: a segment would need more than %d "
				 "pieces", KVS_MAX_EXTENTS);
			return -ENOSPC;
		}
		counts[i] = (uint32_t)n;
		next += (uint32_t)n;
	}
	/* Fragmented space: the record's extents, now known, must fit too. */
	if (next > nseg) {
		r = admit_meta(cat, key, key_len,
			       put_bytes(key_len, meta_len, nseg, next), err, len);
		if (r < 0) {
			store_free(s, cat->scratch, next);
			return r;
		}
	}
	cat->rr_file = (cat->rr_file + nseg) % s->nfiles;
	/* Owner: the caller's reference, handed on by catalog_link*(). */
	e = entry_new(key, key_len, meta, meta_len, nseg, next);
	if (!e) {
		store_free(s, cat->scratch, next);
		snprintf(err, len, "swap_out: out of memory");
		return -ENOMEM;
	}
	cat->meta.reserved += rec_bytes(e);
	memcpy(e->ext, cat->scratch, next * sizeof(*e->ext));
	e->size = total;
	e->flags = pinned ? ENTRY_PINNED : 0;
	e->tenant = tn;
	e->tenant_len = tn->name_len;
	for (uint32_t i = 0, k = 0; i < nseg; i++) {
		e->segs[i] = (struct sseg){ lens[i], k, counts[i], 0, 0 };
		k += counts[i];
	}
	quota_charge(e, s->block);
	/* Visible as in flight until linked or abandoned (IF_ABSENT). */
	e->refs++;
	store_entry_put(s, index_put(&cat->writing, e));
	*ret = e;
	return 0;

out_full:
	/*
	 * Room comes back when earlier evictions' records are durable and
	 * their readers are done: evict only what that will not cover.
	 */
	if (blocks * s->block <= avail + cat->evicting)
		return -EAGAIN;
	if (evict(cat, blocks * s->block - avail - cat->evicting, NULL) ||
	    !journal_idle(cat->jr))
		return -EAGAIN;
	if (wait_leases && leases_would_do(cat, blocks * s->block - avail -
					   cat->evicting))
		return -EAGAIN;
	snprintf(err, len, "swap_out: the store is full: the entry needs %llu "
		 "bytes, %llu of %llu are free, %llu pinned, the rest leased "
		 "or being read", (unsigned long long)(blocks * s->block),
		 (unsigned long long)avail, (unsigned long long)s->capacity,
		 (unsigned long long)cat->index.pinned_bytes);
	return -ENOSPC;
}

void catalog_make_room(struct catalog *cat, uint64_t bytes)
{
	uint64_t have = store_avail(cat->store) + cat->evicting;

	if (bytes > have)
		evict(cat, bytes - have, NULL);
}

/*
 * A swap-out of key in flight: reserved and writing its data (the writing
 * index), or durable and committing its record (the pending list, short:
 * the records of a commit or two).
 */
bool catalog_writing(struct catalog *cat, const struct tenant *tn,
		     const void *ckey_, size_t ckey_len)
{
	uint8_t key[ENTRY_MAX_KEY];
	size_t len = ckey(tn, ckey_, ckey_len, key);
	uint64_t h;

	if (index_get(&cat->writing, key, len))
		return true;
	h = index_hash(&cat->index, key, len);
	for (const struct entry *p = cat->pending; p; p = p->hnext)
		if (p->hash == h && p->key_len == len && !memcmp(p->key, key, len))
			return true;
	return false;
}

/*
 * A reserved entry stops being in flight: out of the writing index (if
 * a later reservation of its key has not replaced it there), and that
 * index's reference dropped.
 */
static void writing_remove(struct catalog *cat, struct entry *e)
{
	if (index_get(&cat->writing, e->key, e->key_len) != e)
		return;
	index_del(&cat->writing, e->key, e->key_len);
	store_entry_put(cat->store, e);
}

void catalog_wait(struct catalog *cat, struct catalog_waiter *w)
{
	/* Evicted space comes back with the records: no deferring them. */
	journal_urgent(cat->jr);
	w->next = NULL;
	if (cat->wait_tail)
		cat->wait_tail->next = w;
	else
		cat->wait_head = w;
	cat->wait_tail = w;
}

/*
 * Journal progress, or an evicted entry's blocks back: the waiters try
 * again after this batch of completions (catalog_kick), never from inside
 * the journal's or the store's own bookkeeping.
 */
static void space_back(void *arg)
{
	struct catalog *cat = arg;

	cat->space_returned = true;
}

static void entry_freed(void *arg, const struct entry *e)
{
	struct catalog *cat = arg;

	assert(!e->leases);
	/* Every path out of the index uncharges; this one cannot miss. */
	quota_uncharge((struct entry *)e, cat->store->block);
	if (!e->evicted)
		return;
	assert(cat->evicting >= entry_blocks(e) * cat->store->block);
	cat->evicting -= entry_blocks(e) * cat->store->block;
	cat->space_returned = true;
}

void catalog_kick(struct catalog *cat)
{
	struct catalog_waiter *w, *next;

	if (!cat->space_returned)
		return;
	cat->space_returned = false;
	w = cat->wait_head;
	cat->wait_head = cat->wait_tail = NULL;
	for (; w; w = next) {
		next = w->next;
		w->retry(w->arg);
	}
}

void catalog_abandon(struct catalog *cat, struct entry *e)
{
	if (!e)
		return;
	writing_remove(cat, e);
	assert(!e->linked);
	meta_unreserve(cat, e);
	quota_uncharge(e, cat->store->block);
	store_entry_put(cat->store, e);
}

void catalog_link(struct catalog *cat, struct entry *e)
{
	struct entry *old;

	meta_unreserve(cat, e);
	writing_remove(cat, e);
	supersede(cat, e->key, e->key_len);
	/* Visible now; the record follows in a later commit, and the
	 * replaced entry's blocks wait for it. */
	old = index_put(&cat->index, e);
	meta_link(cat, e);
	if (old) {
		meta_unlink(cat, old);
		quota_uncharge(old, cat->store->block);
	}
	leases_end(cat, old);
	if (journal_put(cat->jr, e, old, NULL, NULL) < 0)
		store_entry_put(cat->store, old);
}

/*
 * A durable swap-out's PUT record is on stable storage (or its write
 * failed): link the entry. It is linked even after a failed metadata
 * write: its data is whole, the record may have landed, and freeing its
 * blocks could let a recovered record point at reused blocks. The next
 * commit writes a checkpoint that includes it.
 */
static void put_landed(void *arg, int err)
{
	struct catalog_op *op = arg;
	struct catalog *cat = op->cat;
	struct entry *e = op->e;

	if (e->superseded) {
		quota_uncharge(e, cat->store->block);
		/*
		 * Its blocks wait for the later record. Without memory to wait
		 * with, they are never freed rather than freed too soon.
		 */
		if (journal_hold(cat->jr, e) < 0)
			log_err("out of memory holding a superseded entry: its "
				"blocks stay allocated");
	} else {
		struct entry *old;

		pending_remove(cat, e);
		old = index_put(&cat->index, e);
		meta_link(cat, e);
		if (old) {
			meta_unlink(cat, old);
			quota_uncharge(old, cat->store->block);
		}
		leases_end(cat, old);
		store_entry_put(cat->store, old);
	}
	op->done(op->arg, err);
}

void catalog_link_durable(struct catalog *cat, struct entry *e,
			  struct catalog_op *op, catalog_done_fn *done,
			  void *arg)
{
	*op = (struct catalog_op){ cat, e, done, arg };
	meta_unreserve(cat, e);
	/* From now on in flight on the pending list (hnext is its link). */
	writing_remove(cat, e);
	supersede(cat, e->key, e->key_len);
	e->hash = index_hash(&cat->index, e->key, e->key_len);
	e->pending = true;
	cat->meta.pending += rec_bytes(e);
	e->hnext = cat->pending;
	cat->pending = e;
	if (journal_put(cat->jr, e, NULL, put_landed, op) < 0)
		put_landed(op, -ENOMEM);
}

int catalog_delete(struct catalog *cat, const struct tenant *tn,
		   const void *key, size_t len, catalog_done_fn *done, void *arg)
{
	struct entry *e = catalog_get(cat, tn, key, len);

	if (!e)
		return -ENOENT;
	/*
	 * Gone from the index now. Its blocks return once the DEL record is
	 * durable and no swap-in reads them.
	 */
	return unlink_entry(cat, e, done, arg) && done ? 0 : 1;
}

void catalog_drop(struct catalog *cat, struct entry *e)
{
	if (!e->linked)
		return;
	unlink_entry(cat, e, NULL, NULL);
	log_warn("dropped entry of %llu bytes after a failed read",
		 (unsigned long long)e->size);
}

uint64_t catalog_scan(const struct catalog *cat, uint64_t cursor,
		      void (*fn)(struct entry *e, void *arg), void *arg)
{
	return index_scan(&cat->index, cursor, fn, arg);
}
