/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "defs.h"
#include "tenant.h"
#include "wire.h"

/* Reads a varint at *p; returns false past the end or over 10 bytes. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return true;
		}
	}
	return false;
}

/*
 * proto2 merges two occurrences of one sub-message field; protobuf-c keeps
 * the second. A Request whose body field appears twice is refused rather
 * than half-merged (docs/PROTOCOL.md). Returns true if the top-level
 * fields are well formed and no body field repeats.
 */
static bool single_body(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	uint64_t seen = 0;

	while (p < end) {
		uint64_t key, n;

		if (!varint(&p, end, &key))
			return false;
		switch (key & 7) {
		case 0:
			if (!varint(&p, end, &n))
				return false;
			break;
		case 1:
			p += 8;
			break;
		case 2:
			if (!varint(&p, end, &n) || n > (uint64_t)(end - p))
				return false;
			if ((key >> 3) >= 2 && (key >> 3) < 64) {
				if (seen & (1ull << (key >> 3)))
					return false;
				seen |= 1ull << (key >> 3);
			}
			p += n;
			break;
		case 5:
			p += 4;
			break;
		default:
			return false;
		}
	}
	return p == end;
}

Request *wire_unpack(const uint8_t *buf, size_t len)
{
	if (!single_body(buf, len))
		return NULL;
	return kvswap__v1__request__unpack(NULL, len, buf);
}

void wire_free(Request *req)
{
	if (req)
		kvswap__v1__request__free_unpacked(req, NULL);
}

static int bad(char *err, size_t len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad(char *err, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return code;
}

static int check_key(const char *what, const ProtobufCBinaryData *key,
		     protobuf_c_boolean has, char *err, size_t len)
{
	if (!has || !key->len)
		return bad(err, len, -EINVAL, "%s: missing or empty", what);
	if (key->len > KVS_MAX_KEY)
		return bad(err, len, -EINVAL, "%s: %zu bytes, the maximum is %d",
			   what, key->len, KVS_MAX_KEY);
	return 0;
}

/* A tenant filter, if given, must be a tenant's name (tenant.h). */
static int check_tenant(const char *what, const char *name, char *err,
			size_t len)
{
	if (name && !tenant_name_valid(name, strlen(name)))
		return bad(err, len, -EINVAL, "%s '%.40s': not a tenant name "
			   "(1 to %d of A-Z a-z 0-9 . _ -)", what, name,
			   TENANT_NAME_MAX);
	return 0;
}

static int check_count(const char *what, size_t n, size_t max, char *err,
		       size_t len)
{
	if (!n)
		return bad(err, len, -EINVAL, "%s: empty", what);
	if (n > max)
		return bad(err, len, -E2BIG, "%s: %zu, the maximum is %zu", what, n,
			   max);
	return 0;
}

static int check_swap_out(const Kvswap__V1__SwapOut *m, char *err, size_t len)
{
	int r;

	r = check_key("swap_out.key", &m->key, m->has_key, err, len);
	if (r < 0)
		return r;
	if (!m->has_region)
		return bad(err, len, -EINVAL, "swap_out.region: missing");
	if (m->has_metadata && m->metadata.len > KVS_MAX_METADATA)
		return bad(err, len, -EINVAL,
			   "swap_out.metadata: %zu bytes, the maximum is %d",
			   m->metadata.len, KVS_MAX_METADATA);
	if (m->flags & ~KVS_FLAGS_ALL)
		return bad(err, len, -EINVAL,
			   "swap_out.flags: unknown flags 0x%x", m->flags & ~KVS_FLAGS_ALL);
	if ((m->flags & KVS_FLAG_DURABLE) && (m->flags & KVS_FLAG_CACHE))
		return bad(err, len, -EINVAL,
			   "swap_out.flags: DURABLE and CACHE are exclusive");
	r = check_count("swap_out.segments", m->n_segments, KVS_MAX_SEGMENTS,
			err, len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n_segments; i++) {
		const Kvswap__V1__SegmentOut *s = m->segments[i];

		if (s->offset % KVS_ALIGN)
			return bad(err, len, -EINVAL,
				   "swap_out.segments[%zu].offset %llu is not a "
				   "multiple of the alignment %d", i,
				   (unsigned long long)s->offset, KVS_ALIGN);
		if (!s->length)
			return bad(err, len, -EINVAL,
				   "swap_out.segments[%zu].length: must be at least 1",
				   i);
		if (s->offset + s->length < s->offset)
			return bad(err, len, -EINVAL,
				   "swap_out.segments[%zu]: offset + length overflows", i);
	}
	return 0;
}

static int check_swap_in(const Kvswap__V1__SwapIn *m, char *err, size_t len)
{
	int r;

	r = check_key("swap_in.key", &m->key, m->has_key, err, len);
	if (r < 0)
		return r;
	if (!m->has_region)
		return bad(err, len, -EINVAL, "swap_in.region: missing");
	r = check_count("swap_in.segments", m->n_segments, KVS_MAX_SEGMENTS,
			err, len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n_segments; i++) {
		const Kvswap__V1__SegmentIn *s = m->segments[i];

		if (s->offset % KVS_ALIGN)
			return bad(err, len, -EINVAL,
				   "swap_in.segments[%zu].offset %llu is not a "
				   "multiple of the alignment %d", i,
				   (unsigned long long)s->offset, KVS_ALIGN);
		if (s->index >= KVS_MAX_SEGMENTS)
			return bad(err, len, -EINVAL,
				   "swap_in.segments[%zu].index %u: no entry has that "
				   "many segments", i, s->index);
		/* Quadratic, but n <= 1024 and only on this cold check. */
		for (size_t j = 0; j < i; j++)
			if (m->segments[j]->index == s->index)
				return bad(err, len, -EINVAL,
					   "swap_in.segments[%zu].index %u: already "
					   "named by segments[%zu]", i, s->index, j);
	}
	return 0;
}

/* The parts of a batch entry common to both directions. */
static int check_entry(const char *op, size_t i, const Kvswap__V1__BatchEntry *e,
		       char *err, size_t len)
{
	char what[64];

	/* Field names are formatted only for an error: this runs per entry. */
	if (!e->has_key || !e->key.len || e->key.len > KVS_MAX_KEY) {
		snprintf(what, sizeof(what), "%s.entries[%zu].key", op, i);
		return check_key(what, &e->key, e->has_key, err, len);
	}
	if (!e->n_offsets || e->n_offsets > KVS_MAX_SEGMENTS) {
		snprintf(what, sizeof(what), "%s.entries[%zu].offsets", op, i);
		return check_count(what, e->n_offsets, KVS_MAX_SEGMENTS, err, len);
	}
	for (size_t k = 0; k < e->n_offsets; k++)
		if (e->offsets[k] % KVS_ALIGN)
			return bad(err, len, -EINVAL, "%s.entries[%zu].offsets[%zu] "
				   "%llu is not a multiple of the alignment %d", op,
				   i, k, (unsigned long long)e->offsets[k], KVS_ALIGN);
	if (e->n_groups && e->n_groups != e->n_offsets)
		return bad(err, len, -EINVAL, "%s.entries[%zu].groups: %zu, not "
			   "one per offset (%zu)", op, i, e->n_groups, e->n_offsets);
	for (size_t k = 0; k < e->n_groups; k++)
		if (e->groups[k] >= KVS_MAX_GROUPS)
			return bad(err, len, -EINVAL, "%s.entries[%zu].groups[%zu] "
				   "%u: groups are 0..%d", op, i, k, e->groups[k],
				   KVS_MAX_GROUPS - 1);
	if (!e->n_groups && e->n_offsets > KVS_MAX_GROUPS)
		return bad(err, len, -EINVAL, "%s.entries[%zu]: %zu segments in "
			   "one group each need groups < %d: give groups", op, i,
			   e->n_offsets, KVS_MAX_GROUPS);
	return 0;
}

/* Keys of one batch are distinct (sorted copies would be faster; n is
 * small and this check is cold next to the I/O it guards). */
static int check_distinct(const char *op, Kvswap__V1__BatchEntry **v, size_t n,
			  char *err, size_t len)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (v[i]->key.len == v[j]->key.len &&
			    !memcmp(v[i]->key.data, v[j]->key.data, v[i]->key.len))
				return bad(err, len, -EINVAL, "%s.entries[%zu].key: "
					   "the same as entries[%zu].key", op, i, j);
	return 0;
}

static int check_batch_counts(const char *op, Kvswap__V1__BatchEntry **v,
			      size_t n, protobuf_c_boolean has_region,
			      uint32_t events, char *err, size_t len)
{
	char what[48];
	size_t total = 0;
	int r;

	if (!has_region)
		return bad(err, len, -EINVAL, "%s.region: missing", op);
	if (events & ~KVS_EVENTS_SEGMENTS)
		return bad(err, len, -EINVAL, "%s.events: unknown bits 0x%x", op,
			   events & ~KVS_EVENTS_SEGMENTS);
	snprintf(what, sizeof(what), "%s.entries", op);
	r = check_count(what, n, KVS_MAX_BATCH_ENTRIES, err, len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		total += v[i]->n_offsets;
	if (total > KVS_MAX_BATCH_SEGMENTS)
		return bad(err, len, -E2BIG, "%s: %zu segments, the maximum is %d",
			   op, total, KVS_MAX_BATCH_SEGMENTS);
	return 0;
}

static int check_swap_out_batch(const Kvswap__V1__SwapOutBatch *m, char *err,
				size_t len)
{
	const char *op = "swap_out_batch";
	int r;

	r = check_batch_counts(op, m->entries, m->n_entries, m->has_region,
			       m->events, err, len);
	if (r < 0)
		return r;
	if (m->flags & ~KVS_BATCH_FLAGS_ALL)
		return bad(err, len, -EINVAL, "%s.flags: unknown flags 0x%x", op,
			   m->flags & ~KVS_BATCH_FLAGS_ALL);
	if ((m->flags & KVS_FLAG_DURABLE) && (m->flags & KVS_FLAG_CACHE))
		return bad(err, len, -EINVAL,
			   "%s.flags: DURABLE and CACHE are exclusive", op);
	for (size_t i = 0; i < m->n_entries; i++) {
		const Kvswap__V1__BatchEntry *e = m->entries[i];

		r = check_entry(op, i, e, err, len);
		if (r < 0)
			return r;
		if (e->n_lengths != 1 && e->n_lengths != e->n_offsets)
			return bad(err, len, -EINVAL, "%s.entries[%zu].lengths: %zu, "
				   "not one per offset (%zu) nor one for all", op, i,
				   e->n_lengths, e->n_offsets);
		for (size_t k = 0; k < e->n_lengths; k++) {
			if (!e->lengths[k])
				return bad(err, len, -EINVAL, "%s.entries[%zu]."
					   "lengths[%zu]: must be at least 1", op, i, k);
			if (e->lengths[k] > (1ull << 40))
				return bad(err, len, -EINVAL, "%s.entries[%zu]."
					   "lengths[%zu]: over 1 TiB", op, i, k);
		}
		if (e->n_indexes)
			return bad(err, len, -EINVAL, "%s.entries[%zu].indexes: only "
				   "for swap_in_batch", op, i);
		if (e->n_crcs && e->n_crcs != e->n_offsets)
			return bad(err, len, -EINVAL, "%s.entries[%zu].crcs: %zu, not "
				   "one per offset (%zu)", op, i, e->n_crcs,
				   e->n_offsets);
		if (e->has_metadata && e->metadata.len > KVS_MAX_METADATA)
			return bad(err, len, -EINVAL, "%s.entries[%zu].metadata: %zu "
				   "bytes, the maximum is %d", op, i, e->metadata.len,
				   KVS_MAX_METADATA);
	}
	return check_distinct(op, m->entries, m->n_entries, err, len);
}

static int check_swap_in_batch(const Kvswap__V1__SwapInBatch *m, char *err,
			       size_t len)
{
	const char *op = "swap_in_batch";
	int r;

	r = check_batch_counts(op, m->entries, m->n_entries, m->has_region,
			       m->events, err, len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n_entries; i++) {
		const Kvswap__V1__BatchEntry *e = m->entries[i];

		r = check_entry(op, i, e, err, len);
		if (r < 0)
			return r;
		if (e->n_lengths || e->n_crcs || e->has_metadata)
			return bad(err, len, -EINVAL, "%s.entries[%zu]: lengths, crcs "
				   "and metadata are only for swap_out_batch", op, i);
		if (e->n_indexes && e->n_indexes != e->n_offsets)
			return bad(err, len, -EINVAL, "%s.entries[%zu].indexes: %zu, "
				   "not one per offset (%zu)", op, i, e->n_indexes,
				   e->n_offsets);
		for (size_t k = 0; k < e->n_indexes; k++) {
			if (e->indexes[k] >= KVS_MAX_SEGMENTS)
				return bad(err, len, -EINVAL, "%s.entries[%zu]."
					   "indexes[%zu] %u: no entry has that many "
					   "segments", op, i, k, e->indexes[k]);
			for (size_t j = 0; j < k; j++)
				if (e->indexes[j] == e->indexes[k])
					return bad(err, len, -EINVAL, "%s.entries[%zu]."
						   "indexes[%zu] %u: already named by "
						   "indexes[%zu]", op, i, k,
						   e->indexes[k], j);
		}
	}
	return check_distinct(op, m->entries, m->n_entries, err, len);
}

/* Describe and Delete: one key, or a batch of keys. */
static int check_keys(const char *op, const ProtobufCBinaryData *key,
		      protobuf_c_boolean has_key, const ProtobufCBinaryData *keys,
		      size_t n, char *err, size_t len)
{
	char what[48];
	int r;

	if (!n) {
		snprintf(what, sizeof(what), "%s.key", op);
		return check_key(what, key, has_key, err, len);
	}
	if (has_key)
		return bad(err, len, -EINVAL, "%s: key and keys are exclusive", op);
	snprintf(what, sizeof(what), "%s.keys", op);
	r = check_count(what, n, KVS_MAX_LOOKUP, err, len);
	for (size_t i = 0; !r && i < n; i++) {
		snprintf(what, sizeof(what), "%s.keys[%zu]", op, i);
		r = check_key(what, &keys[i], 1, err, len);
		/* Each key once: a reply per key, a durable wait per key. */
		for (size_t j = 0; !r && j < i; j++)
			if (keys[i].len == keys[j].len &&
			    !memcmp(keys[i].data, keys[j].data, keys[i].len))
				r = bad(err, len, -EINVAL, "%s.keys[%zu]: the same "
					"as keys[%zu]", op, i, j);
	}
	return r;
}

int wire_check(const Request *req, char *err, size_t len)
{
	switch (req->body_case) {
	case KVSWAP__V1__REQUEST__BODY_HELLO:
		if (!req->hello->has_version)
			return bad(err, len, -EINVAL, "hello.version: missing");
		return 0;
	case KVSWAP__V1__REQUEST__BODY_REGISTER_REGION:
		if (!req->register_region->size)
			return bad(err, len, -EINVAL,
				   "register_region.size: must be at least 1");
		return 0;
	case KVSWAP__V1__REQUEST__BODY_UNREGISTER_REGION:
		if (!req->unregister_region->has_region)
			return bad(err, len, -EINVAL, "unregister_region.region: missing");
		return 0;
	case KVSWAP__V1__REQUEST__BODY_SWAP_OUT:
		return check_swap_out(req->swap_out, err, len);
	case KVSWAP__V1__REQUEST__BODY_SWAP_IN:
		return check_swap_in(req->swap_in, err, len);
	case KVSWAP__V1__REQUEST__BODY_LOOKUP: {
		const Kvswap__V1__Lookup *m = req->lookup;
		int r = check_count("lookup.keys", m->n_keys, KVS_MAX_LOOKUP, err, len);

		if (!r && m->lease_ms > KVS_MAX_LEASE_MS)
			return bad(err, len, -EINVAL, "lookup.lease_ms %u: at most %d",
				   m->lease_ms, KVS_MAX_LEASE_MS);

		for (size_t i = 0; !r && i < m->n_keys; i++) {
			char what[48];

			snprintf(what, sizeof(what), "lookup.keys[%zu]", i);
			r = check_key(what, &m->keys[i], 1, err, len);
		}
		return r;
	}
	case KVSWAP__V1__REQUEST__BODY_DESCRIBE:
		return check_keys("describe", &req->describe->key,
				  req->describe->has_key, req->describe->keys,
				  req->describe->n_keys, err, len);
	case KVSWAP__V1__REQUEST__BODY_DELETE:
		if (check_tenant("delete.tenant", req->delete_->tenant, err, len))
			return -EINVAL;
		return check_keys("delete", &req->delete_->key,
				  req->delete_->has_key, req->delete_->keys,
				  req->delete_->n_keys, err, len);
	case KVSWAP__V1__REQUEST__BODY_SWAP_OUT_BATCH:
		return check_swap_out_batch(req->swap_out_batch, err, len);
	case KVSWAP__V1__REQUEST__BODY_SWAP_IN_BATCH:
		return check_swap_in_batch(req->swap_in_batch, err, len);
	case KVSWAP__V1__REQUEST__BODY_CANCEL:
		if (!req->cancel->has_request)
			return bad(err, len, -EINVAL, "cancel.request: missing");
		return 0;
	case KVSWAP__V1__REQUEST__BODY_LIST:
		if (req->list->has_limit &&
		    (!req->list->limit || req->list->limit > KVS_MAX_LIST))
			return bad(err, len, -EINVAL,
				   "list.limit %u: must be 1..%d", req->list->limit,
				   KVS_MAX_LIST);
		return check_tenant("list.tenant", req->list->tenant, err, len);
	case KVSWAP__V1__REQUEST__BODY_STAT:
		return check_tenant("stat.tenant", req->stat->tenant, err, len);
	default:
		return bad(err, len, -EOPNOTSUPP,
			   "request %llu has no body this daemon knows",
			   (unsigned long long)req->id);
	}
}

int wire_pack(const Event *ev, uint8_t *buf, size_t cap)
{
	size_t n = kvswap__v1__event__get_packed_size(ev);

	if (n > cap)
		return -EMSGSIZE;
	return (int)kvswap__v1__event__pack(ev, buf);
}
