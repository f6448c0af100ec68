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
#include "defs.h"
#include "log.h"
#include "store.h"

static void retry_waiters(void *arg);

int catalog_init(struct catalog *cat, struct store *s, struct journal *jr,
		 struct stats *st)
{
	int r;

	memset(cat, 0, sizeof(*cat));
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
	journal_on_progress(jr, retry_waiters, cat);
	return 0;
}

void catalog_fini(struct catalog *cat)
{
	index_fini(&cat->writing);
	index_clear(&cat->index);
	index_fini(&cat->index);
	free(cat->scratch);
	cat->scratch = NULL;
}

struct entry *catalog_get(struct catalog *cat, const void *key, size_t len)
{
	return index_get(&cat->index, key, len);
}

void catalog_lease(struct catalog *cat, struct entry *e, uint64_t until)
{
	if (until > e->lease_until)
		e->lease_until = until;
}

void catalog_read_begin(struct catalog *cat, struct entry *e)
{
	assert(e->linked);
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
			p->pending = false;
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
	e->pending = false;
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

/*
 * Evicts least recently used entries, not pinned and not leased, until
 * `need` more bytes will be free. Their blocks return once the DEL
 * records are durable. Evicts nothing if even all of them would not do.
 * Returns the bytes evicted.
 */
static uint64_t evict(struct catalog *cat, uint64_t need)
{
	uint64_t got = 0, can = 0, now = now_ms();
	struct entry *e, *next;

	for (e = index_lru_first(&cat->index); e && can < need;
	     e = index_lru_next(&cat->index, e))
		if (e->lease_until <= now)
			can += entry_blocks(e) * cat->store->block;
	if (can < need)
		return 0;
	for (e = index_lru_first(&cat->index); e && got < need; e = next) {
		next = index_lru_next(&cat->index, e);
		if (e->lease_until > now)
			continue;
		got += entry_blocks(e) * cat->store->block;
		unlink_entry(cat, e, NULL, NULL);
		cat->st->evictions++;
	}
	if (got)
		log_debug("evicted %llu bytes", (unsigned long long)got);
	return got;
}

int catalog_reserve(struct catalog *cat, const void *key, uint32_t key_len,
		    const void *meta, uint32_t meta_len, uint32_t nseg,
		    const uint64_t *lens, bool pinned, struct entry **ret,
		    char *err, size_t len)
{
	uint32_t counts[KVS_MAX_SEGMENTS], next = 0;
	struct store *s = cat->store;
	uint64_t total = 0, blocks = 0, avail = store_avail(s);
	struct entry *e;

	assert(nseg > 0 && nseg <= KVS_MAX_SEGMENTS);
	for (uint32_t i = 0; i < nseg; i++) {
		total += lens[i];
		blocks += (lens[i] + s->block - 1) / s->block;
	}
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
	cat->rr_file = (cat->rr_file + nseg) % s->nfiles;
	/* Owner: the caller's reference, handed on by catalog_link*(). */
	e = entry_new(key, key_len, meta, meta_len, nseg, next);
	if (!e) {
		store_free(s, cat->scratch, next);
		snprintf(err, len, "swap_out: out of memory");
		return -ENOMEM;
	}
	memcpy(e->ext, cat->scratch, next * sizeof(*e->ext));
	e->size = total;
	e->flags = pinned ? ENTRY_PINNED : 0;
	for (uint32_t i = 0, k = 0; i < nseg; i++) {
		e->segs[i] = (struct sseg){ lens[i], k, counts[i], 0, 0 };
		k += counts[i];
	}
	/* Visible as in flight until linked or abandoned (IF_ABSENT). */
	e->refs++;
	store_entry_put(s, index_put(&cat->writing, e));
	*ret = e;
	return 0;

out_full:
	/* Room comes back when earlier evictions' records are durable. */
	if (evict(cat, blocks * s->block - avail) || !journal_idle(cat->jr))
		return -EAGAIN;
	snprintf(err, len, "swap_out: the store is full: the entry needs %llu "
		 "bytes, %llu of %llu are free, %llu pinned, the rest leased "
		 "or being read", (unsigned long long)(blocks * s->block),
		 (unsigned long long)avail, (unsigned long long)s->capacity,
		 (unsigned long long)cat->index.pinned_bytes);
	return -ENOSPC;
}

bool catalog_writing(struct catalog *cat, const void *key, size_t len)
{
	return index_get(&cat->writing, key, len) != NULL;
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
	w->next = NULL;
	if (cat->wait_tail)
		cat->wait_tail->next = w;
	else
		cat->wait_head = w;
	cat->wait_tail = w;
}

/* Journal progress: space may have come back; every waiter tries again. */
static void retry_waiters(void *arg)
{
	struct catalog *cat = arg;
	struct catalog_waiter *w = cat->wait_head, *next;

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
	store_entry_put(cat->store, e);
}

void catalog_link(struct catalog *cat, struct entry *e)
{
	struct entry *old;

	writing_remove(cat, e);
	supersede(cat, e->key, e->key_len);
	/* Visible now; the record follows in a later commit, and the
	 * replaced entry's blocks wait for it. */
	old = index_put(&cat->index, e);
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
		/*
		 * Its blocks wait for the later record. Without memory to wait
		 * with, they are never freed rather than freed too soon.
		 */
		if (journal_hold(cat->jr, e) < 0)
			log_err("out of memory holding a superseded entry: its "
				"blocks stay allocated");
	} else {
		pending_remove(cat, e);
		store_entry_put(cat->store, index_put(&cat->index, e));
	}
	op->done(op->arg, err);
}

void catalog_link_durable(struct catalog *cat, struct entry *e,
			  struct catalog_op *op, catalog_done_fn *done,
			  void *arg)
{
	*op = (struct catalog_op){ cat, e, done, arg };
	writing_remove(cat, e);
	supersede(cat, e->key, e->key_len);
	e->hash = index_hash(&cat->index, e->key, e->key_len);
	e->pending = true;
	e->hnext = cat->pending;
	cat->pending = e;
	if (journal_put(cat->jr, e, NULL, put_landed, op) < 0)
		put_landed(op, -ENOMEM);
}

int catalog_delete(struct catalog *cat, const void *key, size_t len,
		   catalog_done_fn *done, void *arg)
{
	struct entry *e = index_get(&cat->index, key, len);

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
