/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "defs.h"
#include "wire.h"

Request *wire_unpack(const uint8_t *buf, size_t len)
{
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
		return check_key("describe.key", &req->describe->key,
				 req->describe->has_key, err, len);
	case KVSWAP__V1__REQUEST__BODY_DELETE:
		return check_key("delete.key", &req->delete_->key,
				 req->delete_->has_key, err, len);
	case KVSWAP__V1__REQUEST__BODY_LIST:
		if (req->list->has_limit &&
		    (!req->list->limit || req->list->limit > KVS_MAX_LIST))
			return bad(err, len, -EINVAL,
				   "list.limit %u: must be 1..%d", req->list->limit,
				   KVS_MAX_LIST);
		return 0;
	case KVSWAP__V1__REQUEST__BODY_STAT:
		return 0;
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
