/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "index.h"

#define INDEX_MIN_BUCKETS 1024

struct entry *entry_new(const void *key, uint32_t key_len, const void *meta,
			uint32_t meta_len, uint32_t nseg, uint32_t next)
{
	size_t sz = sizeof(struct entry) + nseg * sizeof(struct sseg) +
		    next * sizeof(struct sext) + key_len + meta_len;
	struct entry *e = calloc(1, sz);

	if (!e)
		return NULL;
	e->segs = (struct sseg *)(e + 1);
	e->ext = (struct sext *)(e->segs + nseg);
	e->key = (uint8_t *)(e->ext + next);
	e->meta = e->key + key_len;
	e->nseg = nseg;
	e->next = next;
	e->key_len = key_len;
	e->meta_len = meta_len;
	e->refs = 1;
	memcpy(e->key, key, key_len);
	if (meta_len)
		memcpy(e->meta, meta, meta_len);
	return e;
}

size_t entry_footprint(const struct entry *e)
{
	return sizeof(*e) + e->nseg * sizeof(struct sseg) +
	       e->next * sizeof(struct sext) + e->key_len + e->meta_len;
}

/* SipHash-1-3: keys come from clients, so the hash is keyed. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND							\
	do {								\
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;			\
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;			\
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

uint64_t index_hash(const struct index *ix, const void *key, size_t len)
{
	const uint8_t *p = key;
	uint64_t k0 = ix->seed[0], k1 = ix->seed[1];
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56, m;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, p + i, 8);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

int index_init(struct index *ix)
{
	memset(ix, 0, sizeof(*ix));
	if (getrandom(ix->seed, sizeof(ix->seed), 0) != sizeof(ix->seed))
		return -errno;
	ix->buckets = calloc(INDEX_MIN_BUCKETS, sizeof(*ix->buckets));
	if (!ix->buckets)
		return -ENOMEM;
	ix->mask = INDEX_MIN_BUCKETS - 1;
	ix->lru.lru_next = ix->lru.lru_prev = &ix->lru;
	return 0;
}

void index_fini(struct index *ix)
{
	free(ix->buckets);
	ix->buckets = NULL;
}

void index_clear(struct index *ix)
{
	for (uint64_t i = 0; ix->buckets && i <= ix->mask; i++) {
		struct entry *e = ix->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			free(e);
		}
		ix->buckets[i] = NULL;
	}
	ix->count = 0;
	ix->lru.lru_next = ix->lru.lru_prev = &ix->lru;
}

static bool key_eq(const struct entry *e, uint64_t h, const void *key, size_t len)
{
	return e->hash == h && e->key_len == len && !memcmp(e->key, key, len);
}

struct entry *index_get(const struct index *ix, const void *key, size_t len)
{
	uint64_t h = index_hash(ix, key, len);

	for (struct entry *e = ix->buckets[h & ix->mask]; e; e = e->hnext)
		if (key_eq(e, h, key, len))
			return e;
	return NULL;
}

/* Doubles the table. Only grows, which keeps scan cursors valid. */
static void grow(struct index *ix)
{
	uint64_t n = (ix->mask + 1) * 2;
	struct entry **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (uint64_t i = 0; i <= ix->mask; i++) {
		struct entry *e = ix->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(ix->buckets);
	ix->buckets = b;
	ix->mask = n - 1;
}

static void lru_remove(struct entry *e)
{
	if (!e->lru_next)
		return;
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
	e->lru_next = e->lru_prev = NULL;
}

static void lru_append(struct index *ix, struct entry *e)
{
	e->lru_prev = ix->lru.lru_prev;
	e->lru_next = &ix->lru;
	ix->lru.lru_prev->lru_next = e;
	ix->lru.lru_prev = e;
}

void index_touch(struct index *ix, struct entry *e)
{
	if (!e->linked || !e->lru_next)
		return;
	lru_remove(e);
	lru_append(ix, e);
}

struct entry *index_lru_first(const struct index *ix)
{
	return ix->lru.lru_next == &ix->lru ? NULL : ix->lru.lru_next;
}

struct entry *index_lru_next(const struct index *ix, const struct entry *e)
{
	return e->lru_next == &ix->lru ? NULL : e->lru_next;
}

static struct entry *unlink_key(struct index *ix, uint64_t h, const void *key,
				size_t len)
{
	struct entry **pp = &ix->buckets[h & ix->mask];

	for (; *pp; pp = &(*pp)->hnext) {
		struct entry *e = *pp;

		if (key_eq(e, h, key, len)) {
			*pp = e->hnext;
			e->hnext = NULL;
			e->linked = false;
			ix->count--;
			lru_remove(e);
			if (e->flags & ENTRY_PINNED)
				ix->pinned_bytes -= e->size;
			return e;
		}
	}
	return NULL;
}

struct entry *index_put(struct index *ix, struct entry *e)
{
	struct entry *old;

	e->hash = index_hash(ix, e->key, e->key_len);
	old = unlink_key(ix, e->hash, e->key, e->key_len);
	if (ix->count >= ix->mask + 1)
		grow(ix);
	e->hnext = ix->buckets[e->hash & ix->mask];
	ix->buckets[e->hash & ix->mask] = e;
	e->linked = true;
	ix->count++;
	if (e->flags & ENTRY_PINNED)
		ix->pinned_bytes += e->size;
	else
		lru_append(ix, e);
	return old;
}

struct entry *index_del(struct index *ix, const void *key, size_t len)
{
	return unlink_key(ix, index_hash(ix, key, len), key, len);
}

static uint64_t rev64(uint64_t v)
{
	v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
	v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
	v = ((v >> 4) & 0x0f0f0f0f0f0f0f0fULL) | ((v & 0x0f0f0f0f0f0f0f0fULL) << 4);
	return __builtin_bswap64(v);
}

uint64_t index_scan(const struct index *ix, uint64_t cursor,
		    void (*fn)(struct entry *e, void *arg), void *arg)
{
	for (struct entry *e = ix->buckets[cursor & ix->mask]; e; e = e->hnext)
		fn(e, arg);
	/* Increment the reversed cursor: high bits of the bucket first. */
	cursor |= ~ix->mask;
	cursor = rev64(cursor);
	cursor++;
	return rev64(cursor);
}
