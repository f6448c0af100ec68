/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl ls and lookup: what the store holds, as a listing of every
 * entry or as a prefix lookup of given keys. Keys are printed escaped
 * (key_escape()) in tables and as Latin-1 JSON strings (json_string()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "kvswap-protocol.h"
#include "util.h"

#define LIST_PAGE		KVS_MAX_LIST	/* the protocol's maximum page */
#define LS_KEY_WIDTH_MAX	64	/* longer keys overflow their column */

/* --- ls ------------------------------------------------------------------- */

struct ls_item {
	char *key;
	size_t key_len;
	uint64_t size;
	uint32_t segments;
	uint64_t seq;		/* order received, to keep the latest copy */
};

static int ls_item_cmp(const void *a, const void *b)
{
	const struct ls_item *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int r = memcmp(x->key, y->key, n);

	if (r)
		return r;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void ls_print_table(const struct ls_item *items, size_t n)
{
	size_t key_width = 3, size_width = 4, i;
	char **esc;
	char num[24];

	esc = calloc(n ? n : 1, sizeof(*esc));
	for (i = 0; i < n; i++) {
		size_t w;

		if (esc)
			esc[i] = key_escape(items[i].key, items[i].key_len);
		w = esc && esc[i] ? strlen(esc[i]) : 1;
		if (w > key_width)
			key_width = w;
		w = (size_t)snprintf(num, sizeof(num), "%" PRIu64,
				     items[i].size);
		if (w > size_width)
			size_width = w;
	}
	if (key_width > LS_KEY_WIDTH_MAX)
		key_width = LS_KEY_WIDTH_MAX;

	printf("%-*s  %*s  %s\n", (int)key_width, "KEY", (int)size_width,
	       "SIZE", "SEGMENTS");
	for (i = 0; i < n; i++)
		printf("%-*s  %*" PRIu64 "  %8" PRIu32 "\n", (int)key_width,
		       esc && esc[i] ? esc[i] : "?", (int)size_width,
		       items[i].size, items[i].segments);
	for (i = 0; esc && i < n; i++)
		free(esc[i]);
	free(esc);
}

static void ls_print_json(const struct ls_item *items, size_t n)
{
	size_t i;

	fputs("{\n  \"entries\": [", stdout);
	for (i = 0; i < n; i++) {
		fputs(i ? ",\n    {\"key\": " : "\n    {\"key\": ", stdout);
		json_string(stdout, items[i].key, items[i].key_len);
		printf(", \"size\": %" PRIu64 ", \"segments\": %" PRIu32 "}",
		       items[i].size, items[i].segments);
	}
	fputs(n ? "\n  ]\n}\n" : "]\n}\n", stdout);
}

int ls_main(struct ctl *c)
{
	struct ls_item *items = NULL, *nitems;
	size_t n = 0, cap = 0, i, out;
	int status = EXIT_FAILURE;
	uint64_t cursor = 0;
	int ret;

	if (ctl_connect(c))
		return EXIT_FAILURE;

	do {
		struct kvswap_entry *page;
		uint32_t count, j;

		ret = kvswap_list_tenant(c->k, c->tenant, &cursor, LIST_PAGE,
					 &page, &count);
		if (ret < 0) {
			fail_kv(c, ret, "list");
			goto out_free_items;
		}
		if (count > cap - n) {
			cap = cap * 2 > n + count ? cap * 2 : n + count;
			nitems = realloc(items, cap * sizeof(*items));
			if (!nitems) {
				kvswap_entries_free(page, count);
				fail_sys(c, -ENOMEM, "list");
				goto out_free_items;
			}
			items = nitems;
		}
		for (j = 0; j < count; j++) {
			struct ls_item *it = &items[n];

			it->key = malloc(page[j].key_len ? page[j].key_len : 1);
			if (!it->key) {
				kvswap_entries_free(page, count);
				fail_sys(c, -ENOMEM, "list");
				goto out_free_items;
			}
			memcpy(it->key, page[j].key, page[j].key_len);
			it->key_len = page[j].key_len;
			it->size = page[j].size;
			it->segments = page[j].segments;
			it->seq = n;
			n++;
		}
		kvswap_entries_free(page, count);
	} while (cursor);

	/*
	 * A listing returns every entry at least once: sort by key, and of
	 * duplicates keep the copy received last.
	 */
	if (n)
		qsort(items, n, sizeof(*items), ls_item_cmp);
	for (i = 0, out = 0; i < n; i++) {
		if (i + 1 < n && items[i].key_len == items[i + 1].key_len &&
		    !memcmp(items[i].key, items[i + 1].key, items[i].key_len)) {
			free(items[i].key);
			continue;
		}
		items[out++] = items[i];
	}
	n = out;

	if (c->json)
		ls_print_json(items, n);
	else
		ls_print_table(items, n);
	status = EXIT_SUCCESS;

out_free_items:
	for (i = 0; i < n; i++)
		free(items[i].key);
	free(items);
	kvswap_close(c->k);
	c->k = NULL;
	return status;
}

/* --- lookup --------------------------------------------------------------- */

int lookup_main(struct ctl *c)
{
	uint32_t n = (uint32_t)c->nargs, batch, off, prefix = 0, i;
	const void **keys = NULL;
	size_t *lens = NULL;
	bool *present = NULL;
	bool counting = true;
	int status = EXIT_FAILURE;
	unsigned long lease_ms = 0;
	int ret;

	keys = calloc(n, sizeof(*keys));
	lens = calloc(n, sizeof(*lens));
	present = calloc(n, sizeof(*present));
	if (!keys || !lens || !present) {
		fail_sys(c, -ENOMEM, "allocate %" PRIu32 " keys", n);
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		keys[i] = c->args[i];
		lens[i] = strlen(c->args[i]);
		if (!lens[i]) {
			status = usage_error(c, "KEY must not be empty");
			goto out_free;
		}
	}
	if (c->lease) {
		char *end;

		errno = 0;
		lease_ms = strtoul(c->lease, &end, 10);
		if (errno || *end || end == c->lease ||
		    lease_ms > KVS_MAX_LEASE_MS) {
			status = usage_error(c, "invalid --lease '%s': expected "
					     "milliseconds, at most %d", c->lease,
					     KVS_MAX_LEASE_MS);
			goto out_free;
		}
	}
	if (ctl_connect(c))
		goto out_free;

	/* More keys than one request may carry: the prefix spans batches. */
	batch = kvswap_limits(c->k)->max_lookup_keys;
	if (!batch)
		batch = n;
	for (off = 0; off < n; off += batch) {
		uint32_t count = n - off < batch ? n - off : batch;

		ret = kvswap_lookup_lease(c->k, (const void *const *)keys + off,
					  lens + off, count, lease_ms,
					  present + off);
		if (ret < 0) {
			fail_kv(c, ret, "lookup");
			goto out_close;
		}
		if (counting) {
			prefix += (uint32_t)ret;
			counting = (uint32_t)ret == count;
		}
	}

	if (c->json) {
		printf("{\n  \"prefix\": %" PRIu32 ",\n  \"keys\": [", prefix);
		for (i = 0; i < n; i++) {
			fputs(i ? ",\n    {\"key\": " : "\n    {\"key\": ",
			      stdout);
			json_string(stdout, keys[i], lens[i]);
			printf(", \"present\": %s}",
			       present[i] ? "true" : "false");
		}
		fputs("\n  ]\n}\n", stdout);
	} else {
		printf("prefix: %" PRIu32 " of %" PRIu32 "\n", prefix, n);
		for (i = 0; i < n; i++) {
			char *esc = key_escape(keys[i], lens[i]);

			printf("%-8s %s\n", present[i] ? "present" : "absent",
			       esc ? esc : "?");
			free(esc);
		}
	}
	status = EXIT_SUCCESS;

out_close:
	kvswap_close(c->k);
	c->k = NULL;
out_free:
	free(present);
	free(lens);
	free(keys);
	return status;
}
