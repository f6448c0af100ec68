/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the entry index (daemon/index.c): get/put/replace/delete,
 * entry layout, growth, and scan cursors that survive growth between
 * calls (every entry present throughout is visited).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "tap.h"

static struct entry *mk(const char *key, const char *meta)
{
	return entry_new(key, (uint32_t)strlen(key), meta,
			 meta ? (uint32_t)strlen(meta) : 0, 2, 3);
}

static void count_cb(struct entry *e, void *arg)
{
	unsigned *seen = arg;
	char key[32] = "";
	unsigned i;

	/* Keys are bytes without a terminating NUL. */
	memcpy(key, e->key, e->key_len < 31 ? e->key_len : 31);
	if (sscanf(key, "key-%u", &i) == 1 && i < 20000)
		seen[i]++;
}

int main(void)
{
	struct index ix;
	struct entry *a, *b, *old;
	static unsigned seen[20000];
	unsigned missing = 0;
	uint64_t cursor;
	int rounds = 0;

	is_int(index_init(&ix), 0, "index_init");
	a = mk("alpha", "meta-a");
	ok(a && a->refs == 1 && !a->linked, "entry_new: one ref, unlinked");
	ok(!memcmp(a->key, "alpha", 5) && !memcmp(a->meta, "meta-a", 6),
	   "key and metadata copied");
	ok((void *)a->segs > (void *)a && (void *)a->ext > (void *)a->segs &&
	   (uint8_t *)a->key >= (uint8_t *)(a->ext + 3), "one allocation, laid out in order");
	ok(index_put(&ix, a) == NULL, "put new key replaces nothing");
	ok(a->linked, "linked after put");
	ok(index_get(&ix, "alpha", 5) == a, "get finds it");
	ok(index_get(&ix, "alph", 4) == NULL, "a prefix is a different key");
	b = mk("alpha", NULL);
	old = index_put(&ix, b);
	ok(old == a && !a->linked, "replace returns the old entry, unlinked");
	ok(index_get(&ix, "alpha", 5) == b, "get sees the new entry");
	is_uint(ix.count, 1, "count stays 1 after replace");
	free(a);
	ok(index_del(&ix, "alpha", 5) == b && !b->linked, "delete unlinks");
	ok(index_get(&ix, "alpha", 5) == NULL, "gone after delete");
	ok(index_del(&ix, "alpha", 5) == NULL, "second delete finds nothing");
	free(b);

	/* Keys with NUL bytes are bytes, not strings. */
	a = entry_new("k\0x", 3, NULL, 0, 1, 1);
	b = entry_new("k\0y", 3, NULL, 0, 1, 1);
	index_put(&ix, a);
	index_put(&ix, b);
	ok(index_get(&ix, "k\0x", 3) == a && index_get(&ix, "k\0y", 3) == b,
	   "binary keys differing after a NUL are distinct");
	free(index_del(&ix, "k\0x", 3));
	free(index_del(&ix, "k\0y", 3));

	/* Scan while the table grows: half the keys now, half mid-scan. */
	for (unsigned i = 0; i < 10000; i++) {
		char k[32];

		snprintf(k, sizeof(k), "key-%u", i);
		index_put(&ix, mk(k, NULL));
	}
	cursor = 0;
	do {
		cursor = index_scan(&ix, cursor, count_cb, seen);
		if (++rounds == 500)
			for (unsigned i = 10000; i < 20000; i++) {
				char k[32];

				snprintf(k, sizeof(k), "key-%u", i);
				index_put(&ix, mk(k, NULL));
			}
	} while (cursor);
	for (unsigned i = 0; i < 10000; i++)
		missing += !seen[i];
	is_uint(missing, 0, "every entry present for the whole scan was visited");
	ok(ix.mask + 1 >= 16384, "table grew (%llu buckets)",
	   (unsigned long long)(ix.mask + 1));
	is_uint(ix.count, 20000, "20000 entries");
	for (unsigned i = 0; i < 20000; i++) {
		char k[32];

		snprintf(k, sizeof(k), "key-%u", i);
		free(index_del(&ix, k, strlen(k)));
	}
	is_uint(ix.count, 0, "all deleted");
	index_fini(&ix);
	done_testing();
}
