/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a client's packet as kvswapd decodes and checks it,
 * from the real daemon sources (daemon/wire.c, the protobuf-c code
 * generated from proto/kvswap.proto): wire_unpack(), then wire_check().
 * Inputs are cut at KVS_MAX_MESSAGE bytes, as conn.c refuses longer
 * packets before decoding.
 *
 * Beyond the sanitizers, a request wire_check() accepts must hold what
 * swap.c and control.c rely on without checking again; a breach aborts.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "defs.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((noreturn))
static void breach(const char *what)
{
	fprintf(stderr, "fuzz-wire: wire_check accepted %s\n", what);
	abort();
}

static void key_ok(const ProtobufCBinaryData *k, const char *what)
{
	if (!k->len || k->len > KVS_MAX_KEY)
		breach(what);
}

/* What an accepted request guarantees. */
static void accepted(const Request *req)
{
	switch (req->body_case) {
	case KVSWAP__V1__REQUEST__BODY_SWAP_OUT: {
		const Kvswap__V1__SwapOut *m = req->swap_out;

		key_ok(&m->key, "a swap_out key out of 1..KVS_MAX_KEY");
		if (!m->n_segments || m->n_segments > KVS_MAX_SEGMENTS)
			breach("a swap_out segment count out of range");
		if (m->has_metadata && m->metadata.len > KVS_MAX_METADATA)
			breach("swap_out metadata over KVS_MAX_METADATA");
		for (size_t i = 0; i < m->n_segments; i++) {
			const Kvswap__V1__SegmentOut *s = m->segments[i];

			if (s->offset % KVS_ALIGN || !s->length ||
			    s->offset + s->length < s->offset)
				breach("a swap_out segment unaligned, empty or "
				       "wrapping");
		}
		break;
	}
	case KVSWAP__V1__REQUEST__BODY_SWAP_IN: {
		const Kvswap__V1__SwapIn *m = req->swap_in;

		key_ok(&m->key, "a swap_in key out of 1..KVS_MAX_KEY");
		if (!m->n_segments || m->n_segments > KVS_MAX_SEGMENTS)
			breach("a swap_in segment count out of range");
		for (size_t i = 0; i < m->n_segments; i++)
			if (m->segments[i]->offset % KVS_ALIGN ||
			    m->segments[i]->index >= KVS_MAX_SEGMENTS)
				breach("a swap_in segment unaligned or past "
				       "KVS_MAX_SEGMENTS");
		break;
	}
	case KVSWAP__V1__REQUEST__BODY_SWAP_OUT_BATCH:
	case KVSWAP__V1__REQUEST__BODY_SWAP_IN_BATCH: {
		bool out = req->body_case ==
			   KVSWAP__V1__REQUEST__BODY_SWAP_OUT_BATCH;
		Kvswap__V1__BatchEntry **v = out ? req->swap_out_batch->entries :
					     req->swap_in_batch->entries;
		size_t n = out ? req->swap_out_batch->n_entries :
			   req->swap_in_batch->n_entries, total = 0;

		if (!n || n > KVS_MAX_BATCH_ENTRIES)
			breach("a batch entry count out of range");
		for (size_t i = 0; i < n; i++) {
			const Kvswap__V1__BatchEntry *e = v[i];

			key_ok(&e->key, "a batch key out of 1..KVS_MAX_KEY");
			total += e->n_offsets;
			if (!e->n_offsets || e->n_offsets > KVS_MAX_SEGMENTS)
				breach("a batch entry's segment count out of range");
			if (e->n_groups && e->n_groups != e->n_offsets)
				breach("batch groups not one per offset");
			if (out && e->n_lengths != 1 &&
			    e->n_lengths != e->n_offsets)
				breach("batch lengths neither one nor one per "
				       "offset");
			for (size_t k = 0; k < e->n_offsets; k++)
				if (e->offsets[k] % KVS_ALIGN)
					breach("an unaligned batch offset");
		}
		if (total > KVS_MAX_BATCH_SEGMENTS)
			breach("a batch over KVS_MAX_BATCH_SEGMENTS");
		break;
	}
	case KVSWAP__V1__REQUEST__BODY_LOOKUP:
		if (!req->lookup->n_keys || req->lookup->n_keys > KVS_MAX_LOOKUP ||
		    req->lookup->lease_ms > KVS_MAX_LEASE_MS)
			breach("a lookup key count or lease out of range");
		for (size_t i = 0; i < req->lookup->n_keys; i++)
			key_ok(&req->lookup->keys[i], "a lookup key out of range");
		break;
	case KVSWAP__V1__REQUEST__BODY_LIST:
		if (req->list->has_limit &&
		    (!req->list->limit || req->list->limit > KVS_MAX_LIST))
			breach("a list limit out of 1..KVS_MAX_LIST");
		break;
	case KVSWAP__V1__REQUEST__BODY__NOT_SET:
		breach("a request with no body");
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	Request *req;
	int r;

	if (size > KVS_MAX_MESSAGE)
		return -1;	/* never decoded: keep such inputs out */
	req = wire_unpack(data, size);
	if (!req)
		return 0;
	err[0] = '\0';
	r = wire_check(req, err, sizeof(err));
	if (r == 0)
		accepted(req);
	else if (!err[0] || !memchr(err, '\0', sizeof(err)))
		breach("nothing: it refused without a message");
	wire_free(req);
	return 0;
}
