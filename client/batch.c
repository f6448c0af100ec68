/* SPDX-License-Identifier: MIT */
/*
 * libkvswap's batched swaps (kvswap.h, "batches"): SwapOutBatch and
 * SwapInBatch requests, their completion groups, the end-to-end CRC32C
 * check and Cancel.
 *
 * A batch the caller makes is one struct kvswap_req with a struct batch:
 * per entry its outcome, per segment its group (and, to verify a
 * swap-in, its place and the CRC32C of the bytes that landed), per
 * completion group how many parts have still to report it. The request
 * goes out as one or more parts (struct part), each one wire request of
 * consecutive entries that fits a packet and the daemon's limits. Events
 * name the part's entries and segments from 0; the part's ent0 and seg0
 * turn them into the request's.
 *
 * Groups: the daemon sends GroupDone when a group's segments in one wire
 * request are all over, except for that request's last group, for which
 * its BatchReply stands. A group of the request is over when it is over
 * in every part that has segments in it (grp_parts[g] reaches 0), and has
 * landed if none of its segments failed (grp_err[g] is 0).
 *
 * Checksums: a swap-out sends the CRC32C of every segment, computed here
 * in the caller's thread (BatchEntry.crcs). A swap-in asks client_verify
 * (the daemon does not check), computes the CRC32C of a group's segments
 * as soon as the group lands, in the thread that dispatches the event,
 * and compares all of a part's with the stored ones that its BatchReply
 * carries. An entry that differs fails with -EBADMSG and the library
 * sends a Delete of its key (see verify_part()).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvswap.h"
#include "kvswap-crc32c.h"
#include "kvswap-private.h"
#include "kvswap-protocol.h"

_Static_assert(KVSWAP_IF_ABSENT == KVS_FLAG_IF_ABSENT,
	       "KVSWAP_IF_ABSENT differs from KVS_FLAG_IF_ABSENT");
_Static_assert(KVSWAP_WAIT_LEASES == KVS_FLAG_WAIT_LEASES,
	       "KVSWAP_WAIT_LEASES differs from KVS_FLAG_WAIT_LEASES");
_Static_assert(((KVSWAP_SEGMENT_EVENTS | KVSWAP_NO_VERIFY |
		 KVSWAP_REQUEST_ORDER) & KVS_BATCH_FLAGS_ALL) == 0,
	       "library-only batch flags overlap the protocol's");

/* ent_status of an entry whose outcome is not known yet. */
#define ENT_PENDING		2
_Static_assert(ENT_PENDING != KVSWAP_SKIPPED, "ENT_PENDING is a status");

#define OUT_FLAGS	(KVSWAP_DURABLE | KVSWAP_CACHE | KVSWAP_PINNED | \
			 KVSWAP_IF_ABSENT | KVSWAP_WAIT_LEASES | \
			 KVSWAP_SEGMENT_EVENTS | KVSWAP_NO_VERIFY | \
			 KVSWAP_REQUEST_ORDER)
#define IN_FLAGS	(KVSWAP_SEGMENT_EVENTS | KVSWAP_NO_VERIFY | \
			 KVSWAP_REQUEST_ORDER)

/*
 * What a packet holds besides its entries: Request.id, the body's tag and
 * length, region, flags, events, client_verify. An upper bound.
 */
#define REQ_OVERHEAD		64
/*
 * kvswapd refuses a SwapInBatch whose reply could not fit a packet: per
 * entry 4 bytes and its metadata, per segment a 4-byte CRC, and 64.
 * Parts are cut at 3/4 of that without metadata; a part whose metadata
 * then does not fit is refused with E2BIG and split in two (resplit()).
 */
#define REPLY_BUDGET		(KVS_MAX_MESSAGE / 4 * 3)
/* Bounds on one call, so that its bookkeeping stays small. */
#define MAX_CALL_ENTRIES	(1u << 20)
#define MAX_CALL_SEGMENTS	(1u << 24)

struct batch {
	bool out;
	bool verify;		/* the library checks CRC32C */
	bool cancelled;		/* a part ended cancelled, or was dropped */
	uint32_t region;	/* its id: the caller may release it meanwhile */
	uint32_t nent;
	uint32_t nseg;
	uint32_t ngroups;	/* the highest group + 1 */
	size_t gwords;		/* 64-bit words of a part's group mask */
	uint32_t *ent_seg0;	/* [nent + 1]: entry i is [ent_seg0[i], ent_seg0[i + 1]) */
	int32_t *ent_status;	/* [nent]: ENT_PENDING, 0, KVSWAP_SKIPPED, -errno */
	char **ent_msg;		/* [nent]: why it failed, or NULL */
	void **ent_meta;	/* [nent] swap-in metadata */
	size_t *ent_meta_len;
	uint32_t *seg_ent;	/* [nseg] */
	uint32_t *seg_group;	/* [nseg] */
	uint64_t *seg_off;	/* [nseg] swap-in with verify: where it lands */
	uint64_t *seg_len;	/* its stored length, as the caller gave it */
	uint32_t *seg_crc;	/* [nseg] out: sent; in: of the landed bytes */
	uint8_t *seg_crc_have;	/* [nseg] in: seg_crc computed */
	uint32_t *grp_nseg;	/* [ngroups] segments in the group */
	uint32_t *grp_parts;	/* [ngroups] parts where it is not over yet */
	int32_t *grp_err;	/* [ngroups] first error of one of its segments */
	uint32_t *grp_start;	/* [ngroups + 1] the group's run in grp_seg */
	uint32_t *grp_seg;	/* [nseg] segments ordered by group, then index */
};

/* The settings a part's wire request repeats. */
struct batch_args {
	uint32_t region;
	uint32_t flags;		/* SwapOutBatch.flags */
	uint32_t events;
	bool client_verify;
	bool request_order;
};

/* --- the batch's state ----------------------------------------------------- */

void kvs_batch_free(struct batch *b)
{
	if (!b)
		return;
	if (b->ent_msg)
		for (uint32_t i = 0; i < b->nent; i++)
			free(b->ent_msg[i]);
	if (b->ent_meta)
		for (uint32_t i = 0; i < b->nent; i++)
			free(b->ent_meta[i]);
	free(b->ent_seg0);
	free(b->ent_status);
	free(b->ent_msg);
	free(b->ent_meta);
	free(b->ent_meta_len);
	free(b->seg_ent);
	free(b->seg_group);
	free(b->seg_off);
	free(b->seg_len);
	free(b->seg_crc);
	free(b->seg_crc_have);
	free(b->grp_nseg);
	free(b->grp_parts);
	free(b->grp_err);
	free(b->grp_start);
	free(b->grp_seg);
	free(b);
}

/*
 * The state of a batch of nent entries, nseg segments and ngroups groups.
 * Owner: the request it is attached to (req_destroy() frees it).
 */
static struct batch *batch_new(uint32_t nent, uint32_t nseg, uint32_t ngroups,
			       bool out, bool verify)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->out = out;
	b->verify = verify;
	b->nent = nent;
	b->nseg = nseg;
	b->ngroups = ngroups;
	b->gwords = (ngroups + 63) / 64;
	b->ent_seg0 = calloc(nent + 1, sizeof(*b->ent_seg0));
	b->ent_status = calloc(nent, sizeof(*b->ent_status));
	b->ent_msg = calloc(nent, sizeof(*b->ent_msg));
	b->seg_ent = calloc(nseg, sizeof(*b->seg_ent));
	b->seg_group = calloc(nseg, sizeof(*b->seg_group));
	b->grp_nseg = calloc(ngroups, sizeof(*b->grp_nseg));
	b->grp_parts = calloc(ngroups, sizeof(*b->grp_parts));
	b->grp_err = calloc(ngroups, sizeof(*b->grp_err));
	b->grp_start = calloc(ngroups + 1, sizeof(*b->grp_start));
	b->grp_seg = calloc(nseg, sizeof(*b->grp_seg));
	if (verify)
		b->seg_crc = calloc(nseg, sizeof(*b->seg_crc));
	if (!out) {
		b->ent_meta = calloc(nent, sizeof(*b->ent_meta));
		b->ent_meta_len = calloc(nent, sizeof(*b->ent_meta_len));
	}
	if (!out && verify) {
		b->seg_off = calloc(nseg, sizeof(*b->seg_off));
		b->seg_len = calloc(nseg, sizeof(*b->seg_len));
		b->seg_crc_have = calloc(nseg, sizeof(*b->seg_crc_have));
	}
	if (!b->ent_seg0 || !b->ent_status || !b->ent_msg || !b->seg_ent ||
	    !b->seg_group || !b->grp_nseg || !b->grp_parts || !b->grp_err ||
	    !b->grp_start || !b->grp_seg || (verify && !b->seg_crc) ||
	    (!out && (!b->ent_meta || !b->ent_meta_len)) ||
	    (!out && verify && (!b->seg_off || !b->seg_len ||
				!b->seg_crc_have))) {
		kvs_batch_free(b);
		return NULL;
	}
	for (uint32_t i = 0; i < nent; i++)
		b->ent_status[i] = ENT_PENDING;
	return b;
}

static bool gbit(const uint64_t *mask, uint32_t g)
{
	return mask[g / 64] >> (g % 64) & 1;
}

/* The first failure of an entry is its outcome; later ones add nothing. */
static void entry_fail(struct batch *b, uint32_t i, int err, const char *msg)
{
	assert(err < 0);
	if (b->ent_status[i] != ENT_PENDING)
		return;
	b->ent_status[i] = err;
	if (msg && msg[0])
		b->ent_msg[i] = strdup(msg);
}

/* Segment s failed with err: its group did not land. */
static void seg_fail(struct kvswap_req *req, uint32_t s, int err)
{
	struct batch *b = req->b;
	uint32_t g = b->seg_group[s];

	kvs_req_segment(req, s, err);
	if (!b->grp_err[g])
		b->grp_err[g] = err;
}

/* The bytes of segment s are in the region: their CRC32C, once. */
static void seg_checksum(struct kvswap_req *req, struct kvswap_region *r,
			 uint32_t s)
{
	struct batch *b = req->b;

	if (b->seg_crc_have[s])
		return;
	b->seg_crc[s] = kvswap_crc32c(0, (const uint8_t *)r->addr +
				      b->seg_off[s], b->seg_len[s]);
	b->seg_crc_have[s] = 1;
}

/*
 * Group g is over in part p: landed (err 0) or not. The first time only;
 * a swap-in that verifies sums the group's bytes of p now, before the
 * caller, told the group landed, may change them.
 */
static void group_over(struct part *p, uint32_t g, int err,
		       struct kvswap_region *r)
{
	struct kvswap_req *req = p->req;
	struct batch *b = req->b;

	if (g >= b->ngroups || !gbit(p->gmask, g))
		return;
	p->gmask[g / 64] &= ~(1ull << (g % 64));
	if (err && !b->grp_err[g])
		b->grp_err[g] = err;
	if (!err && !b->out && b->verify && r) {
		for (uint32_t j = b->grp_start[g]; j < b->grp_start[g + 1]; j++) {
			uint32_t s = b->grp_seg[j];

			if (s < p->seg0 || s >= p->seg0 + p->nseg)
				continue;
			if (b->ent_status[b->seg_ent[s]] == ENT_PENDING)
				seg_checksum(req, r, s);
		}
	}
	assert(b->grp_parts[g] > 0);
	b->grp_parts[g]--;
}

/* Every group of p not over yet is over now, with err (0: landed). */
static void groups_over(struct part *p, int err, struct kvswap_region *r)
{
	struct batch *b = p->req->b;

	for (uint32_t w = 0; w < b->gwords; w++)
		while (p->gmask[w])
			group_over(p, w * 64 + (uint32_t)__builtin_ctzll(p->gmask[w]),
				   err, r);
}

/*
 * A part of req for entries [ent0, ent0 + nent): its group mask set, the
 * groups' part counts raised. Owner: req (req_destroy() frees it).
 */
static struct part *part_new(struct kvswap_req *req, uint32_t ent0,
			     uint32_t nent)
{
	struct batch *b = req->b;
	struct part *p = calloc(1, sizeof(*p)), **tail;

	if (!p)
		return NULL;
	p->gmask = calloc(b->gwords ? b->gwords : 1, sizeof(*p->gmask));
	if (!p->gmask) {
		free(p);
		return NULL;
	}
	p->req = req;
	p->ent0 = ent0;
	p->nent = nent;
	p->seg0 = b->ent_seg0[ent0];
	p->nseg = b->ent_seg0[ent0 + nent] - p->seg0;
	p->state = PART_NEW;
	for (uint32_t s = p->seg0; s < p->seg0 + p->nseg; s++) {
		uint32_t g = b->seg_group[s];

		if (gbit(p->gmask, g))
			continue;
		p->gmask[g / 64] |= 1ull << (g % 64);
		b->grp_parts[g]++;
	}
	for (tail = &req->parts; *tail; tail = &(*tail)->next)
		;
	*tail = p;
	req->parts_left++;
	return p;
}

/* A part that will never run: its entries and groups fail with err. */
static void part_fail(struct kvswap *k, struct part *p, int err,
		      const char *msg)
{
	struct batch *b = p->req->b;

	for (uint32_t i = p->ent0; i < p->ent0 + p->nent; i++)
		entry_fail(b, i, err, msg);
	groups_over(p, err, NULL);
	kvs_part_end(k, p);
}

/* --- building wire requests ----------------------------------------------- */

/*
 * Packs the part's entries (v: its p->nent BatchEntry messages) into the
 * send queue. A swap-in part keeps its packed bytes, to be split
 * (resplit()) or to name a damaged entry's key later.
 */
static int part_queue(struct kvswap *k, struct part *p,
		      Kvswap__V1__BatchEntry **v, const struct batch_args *a)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapOutBatch so = KVSWAP__V1__SWAP_OUT_BATCH__INIT;
	Kvswap__V1__SwapInBatch si = KVSWAP__V1__SWAP_IN_BATCH__INIT;
	struct batch *b = p->req->b;
	int r;

	if (b->out) {
		so.has_region = so.has_flags = so.has_events = true;
		so.region = a->region;
		so.flags = a->flags;
		so.events = a->events;
		so.has_request_order = a->request_order;
		so.request_order = a->request_order;
		so.n_entries = p->nent;
		so.entries = v;
		rq.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT_BATCH;
		rq.swap_out_batch = &so;
	} else {
		si.has_region = si.has_events = true;
		si.region = a->region;
		si.events = a->events;
		si.has_client_verify = a->client_verify;
		si.client_verify = a->client_verify;
		si.has_request_order = a->request_order;
		si.request_order = a->request_order;
		si.n_entries = p->nent;
		si.entries = v;
		rq.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_IN_BATCH;
		rq.swap_in_batch = &si;
	}
	r = kvs_queue(k, &rq, p);
	if (r < 0)
		return r;
	if (!b->out) {
		/* kvs_queue() appended the packet. */
		p->pkt = kvs_memdup(k->txq_tail->data, k->txq_tail->len);
		p->pkt_len = p->pkt ? k->txq_tail->len : 0;
	}
	return 0;
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static int key_cmp(const void *a, const void *b, void *arg)
{
	const struct kvswap_batch_entry *ents = arg;
	const struct kvswap_batch_entry *x = &ents[*(const uint32_t *)a];
	const struct kvswap_batch_entry *y = &ents[*(const uint32_t *)b];

	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return memcmp(x->key, y->key, x->key_len);
}

/*
 * The index of an entry whose key an earlier one has, -1 if every key is
 * distinct, or -2 without memory. Sorting: a split batch may have
 * thousands of entries.
 */
static int64_t duplicate_key(const struct kvswap_batch_entry *ents, uint32_t n)
{
	uint32_t *idx = malloc((size_t)n * sizeof(*idx));
	int64_t dup = -1;

	if (!idx)
		return -2;
	for (uint32_t i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, n, sizeof(*idx), key_cmp, (void *)ents);
	for (uint32_t i = 1; i < n && dup < 0; i++)
		if (!key_cmp(&idx[i - 1], &idx[i], (void *)ents))
			dup = idx[i] > idx[i - 1] ? idx[i] : idx[i - 1];
	free(idx);
	return dup;
}

/* --- the calls ------------------------------------------------------------- */

/*
 * Checks entry i (what would crash or mislead the library: the daemon
 * checks the rest) and counts its segments and groups.
 */
static int check_entry(struct kvswap *k, const struct kvswap_region *r,
		       const struct kvswap_batch_entry *e, uint32_t i,
		       bool out, bool verify, uint32_t *ngroups)
{
	const char *op = out ? "swap_out_batch" : "swap_in_batch";
	uint32_t align = k->limits.alignment ? k->limits.alignment : KVS_ALIGN;
	uint32_t max_groups = k->blimits.max_groups;
	bool need_len = out || verify;

	if (!kvs_bytes_ok(e->key, e->key_len) || !e->key_len) {
		kvs_set_error(k, "%s: entries[%u] has no key", op, i);
		return -EINVAL;
	}
	if (!e->nseg || !e->offsets) {
		kvs_set_error(k, "%s: entries[%u] has no segments", op, i);
		return -EINVAL;
	}
	if (k->limits.max_segments && e->nseg > k->limits.max_segments) {
		kvs_set_error(k, "%s: entries[%u] has %u segments, the maximum is %u",
			      op, i, e->nseg, k->limits.max_segments);
		return -E2BIG;
	}
	if (need_len && !e->lengths && !e->length) {
		kvs_set_error(k, "%s: entries[%u] needs lengths (or length)%s", op,
			      i, out ? "" : " for the CRC32C check, or "
			      "KVSWAP_NO_VERIFY");
		return -EINVAL;
	}
	if (out && !kvs_bytes_ok(e->metadata, e->metadata_len)) {
		kvs_set_error(k, "%s: entries[%u] has NULL metadata", op, i);
		return -EINVAL;
	}
	for (uint32_t s = 0; s < e->nseg; s++) {
		uint64_t off = e->offsets[s];
		uint32_t g = e->groups ? e->groups[s] : s;

		if (off % align) {
			kvs_set_error(k, "%s: entries[%u].offsets[%u] %llu is not a "
				      "multiple of the alignment %u", op, i, s,
				      (unsigned long long)off, align);
			return -EINVAL;
		}
		if (g >= max_groups) {
			kvs_set_error(k, "%s: entries[%u] segment %u is in group %u: "
				      "groups are 0..%u", op, i, s, g,
				      max_groups - 1);
			return -EINVAL;
		}
		if (g + 1 > *ngroups)
			*ngroups = g + 1;
		if (need_len) {
			uint64_t len = e->lengths ? e->lengths[s] : e->length;

			if (!len || len > r->size || off > r->size - len) {
				kvs_set_error(k, "%s: entries[%u] segment %u: bytes "
					      "[%llu, +%llu) are not within the "
					      "region of %zu bytes", op, i, s,
					      (unsigned long long)off,
					      (unsigned long long)len, r->size);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Fills the per-entry and per-segment state, and the group index. */
static void batch_layout(struct batch *b, const struct kvswap_batch_entry *ents)
{
	uint32_t s = 0;

	for (uint32_t i = 0; i < b->nent; i++) {
		const struct kvswap_batch_entry *e = &ents[i];

		b->ent_seg0[i] = s;
		for (uint32_t k = 0; k < e->nseg; k++, s++) {
			b->seg_ent[s] = i;
			b->seg_group[s] = e->groups ? e->groups[k] : k;
			b->grp_nseg[b->seg_group[s]]++;
			if (b->seg_off) {
				b->seg_off[s] = e->offsets[k];
				b->seg_len[s] = e->lengths ? e->lengths[k] :
					e->length;
			}
		}
	}
	b->ent_seg0[b->nent] = s;
	/* Counting sort of the segments by group. */
	for (uint32_t g = 0; g < b->ngroups; g++)
		b->grp_start[g + 1] = b->grp_start[g] + b->grp_nseg[g];
	{
		uint32_t *fill = b->grp_parts;	/* zero now; restored below */

		for (s = 0; s < b->nseg; s++) {
			uint32_t g = b->seg_group[s];

			b->grp_seg[b->grp_start[g] + fill[g]++] = s;
		}
		memset(fill, 0, b->ngroups * sizeof(*fill));
	}
}

/* Entry i as a BatchEntry message; arrays point at the caller's. */
static void entry_msg(Kvswap__V1__BatchEntry *be,
		      const struct kvswap_batch_entry *e, const struct batch *b,
		      uint32_t i)
{
	kvswap__v1__batch_entry__init(be);
	be->has_key = true;
	be->key.data = (uint8_t *)e->key;
	be->key.len = e->key_len;
	be->n_offsets = e->nseg;
	be->offsets = (uint64_t *)e->offsets;
	if (e->groups) {
		be->n_groups = e->nseg;
		be->groups = (uint32_t *)e->groups;
	}
	if (b->out) {
		be->n_lengths = e->lengths ? e->nseg : 1;
		be->lengths = (uint64_t *)(e->lengths ? e->lengths : &e->length);
		if (e->metadata_len) {
			be->has_metadata = true;
			be->metadata.data = (uint8_t *)e->metadata;
			be->metadata.len = e->metadata_len;
		}
		if (b->verify) {
			be->n_crcs = e->nseg;
			be->crcs = &b->seg_crc[b->ent_seg0[i]];
		}
	} else if (e->indexes) {
		be->n_indexes = e->nseg;
		be->indexes = (uint32_t *)e->indexes;
	}
}

/*
 * Cuts entries into parts: consecutive entries while the packet, the
 * daemon's counts and (swap-in) the reply's checksums allow. Writes the
 * first entry of each part to starts[] (room for n) and returns the
 * number of parts, or a negative errno.
 */
static int plan_parts(struct kvswap *k, const struct batch *b,
		      Kvswap__V1__BatchEntry *msgs, uint32_t *starts)
{
	size_t budget = k->max_send - REQ_OVERHEAD;
	size_t size = 0, reply = 0;
	uint32_t nparts = 0, nent = 0, nseg = 0;

	for (uint32_t i = 0; i < b->nent; i++) {
		size_t m = kvswap__v1__batch_entry__get_packed_size(&msgs[i]);
		size_t esize = 1 + varint_size(m) + m;
		uint32_t eseg = b->ent_seg0[i + 1] - b->ent_seg0[i];
		size_t ereply = 4 + 4 * (size_t)eseg;

		if (esize > budget || eseg > k->blimits.max_segments ||
		    (!b->out && ereply > REPLY_BUDGET)) {
			kvs_set_error(k, "%s: entries[%u] alone (%zu bytes, %u "
				      "segments) does not fit one request",
				      b->out ? "swap_out_batch" : "swap_in_batch",
				      i, esize, eseg);
			return -E2BIG;
		}
		if (!nparts || size + esize > budget ||
		    nent + 1 > k->blimits.max_entries ||
		    nseg + eseg > k->blimits.max_segments ||
		    (!b->out && reply + ereply > REPLY_BUDGET)) {
			starts[nparts++] = i;
			size = reply = 0;
			nent = nseg = 0;
		}
		size += esize;
		reply += ereply;
		nent++;
		nseg += eseg;
	}
	return (int)nparts;
}

static int batch_submit(struct kvswap *k, struct kvswap_region *r,
			const struct kvswap_batch_entry *ents, uint32_t n,
			uint32_t flags, bool out, struct kvswap_req **ret)
{
	const char *op = out ? "swap_out_batch" : "swap_in_batch";
	Kvswap__V1__BatchEntry *msgs = NULL, **ptrs = NULL;
	struct batch_args a = { 0 };
	struct kvswap_req *req = NULL;
	uint32_t *starts = NULL, ngroups = 0;
	uint64_t nseg = 0;
	bool verify = !(flags & KVSWAP_NO_VERIFY);
	int nparts, err;

	err = kvs_check_conn(k);
	if (err < 0)
		return err;
	if (!ret || !ents || !n) {
		kvs_set_error(k, "%s: no entries or no request pointer", op);
		return -EINVAL;
	}
	if (!r || r->k != k) {
		kvs_set_error(k, "%s: the region is not one of this connection", op);
		return -EINVAL;
	}
	if (!k->blimits.max_entries) {
		kvs_set_error(k, "%s: %s takes no batches (its HelloReply has no "
			      "max_batch_entries)", op, k->limits.daemon);
		return -EOPNOTSUPP;
	}
	if (flags & ~(out ? OUT_FLAGS : IN_FLAGS)) {
		kvs_set_error(k, "%s: unknown flags 0x%x", op,
			      flags & ~(out ? OUT_FLAGS : IN_FLAGS));
		return -EINVAL;
	}
	if (verify && !r->addr) {
		kvs_set_error(k, "%s: the CRC32C check needs the region's address "
			      "(import it with one, or pass KVSWAP_NO_VERIFY)", op);
		return -EINVAL;
	}
	if (n > MAX_CALL_ENTRIES) {
		kvs_set_error(k, "%s: %u entries, at most %u per call", op, n,
			      MAX_CALL_ENTRIES);
		return -E2BIG;
	}
	for (uint32_t i = 0; i < n; i++) {
		err = check_entry(k, r, &ents[i], i, out, verify, &ngroups);
		if (err < 0)
			return err;
		nseg += ents[i].nseg;
		if (nseg > MAX_CALL_SEGMENTS) {
			kvs_set_error(k, "%s: over %u segments in one call", op,
				      MAX_CALL_SEGMENTS);
			return -E2BIG;
		}
	}

	req = kvs_req_new((uint32_t)nseg);
	if (req)
		req->b = batch_new(n, (uint32_t)nseg, ngroups, out, verify);
	msgs = calloc(n, sizeof(*msgs));
	ptrs = calloc(n, sizeof(*ptrs));
	starts = calloc(n, sizeof(*starts));
	if (!req || !req->b || !msgs || !ptrs || !starts) {
		kvs_set_error(k, "out of memory");
		err = -ENOMEM;
		goto out_free;
	}
	req->b->region = r->id;
	batch_layout(req->b, ents);
	/* The caller's thread pays for the checksums, not the daemon's core. */
	if (out && verify)
		for (uint32_t s = 0; s < nseg; s++) {
			const struct kvswap_batch_entry *e = &ents[req->b->seg_ent[s]];
			uint32_t j = s - req->b->ent_seg0[req->b->seg_ent[s]];

			req->b->seg_crc[s] = kvswap_crc32c(0, (const uint8_t *)r->addr +
						e->offsets[j], e->lengths ?
						e->lengths[j] : e->length);
		}
	for (uint32_t i = 0; i < n; i++) {
		entry_msg(&msgs[i], &ents[i], req->b, i);
		ptrs[i] = &msgs[i];
	}
	nparts = plan_parts(k, req->b, msgs, starts);
	if (nparts < 0) {
		err = nparts;
		goto out_free;
	}
	/* One packet: the daemon checks the keys are distinct; more: here. */
	if (nparts > 1) {
		int64_t dup = duplicate_key(ents, n);

		if (dup != -1) {
			if (dup == -2)
				kvs_set_error(k, "out of memory");
			else
				kvs_set_error(k, "%s: entries[%lld].key is also "
					      "another entry's", op, (long long)dup);
			err = dup == -2 ? -ENOMEM : -EINVAL;
			goto out_free;
		}
	}
	a.region = r->id;
	a.flags = flags & KVS_BATCH_FLAGS_ALL;
	a.events = flags & KVSWAP_SEGMENT_EVENTS ? KVS_EVENTS_SEGMENTS : 0;
	a.client_verify = !out && verify;
	a.request_order = flags & KVSWAP_REQUEST_ORDER;
	req->k = k;
	for (int j = 0; j < nparts; j++) {
		uint32_t end = j + 1 < nparts ? starts[j + 1] : n;
		struct part *p = part_new(req, starts[j], end - starts[j]);

		err = p ? part_queue(k, p, ptrs + starts[j], &a) : -ENOMEM;
		if (err < 0) {
			if (!p)
				kvs_set_error(k, "out of memory");
			/* Nothing was sent: take it all back. */
			req->orphan = true;
			kvs_req_finish(k, req, err);
			req = NULL;
			goto out_free;
		}
	}
	free(starts);
	free(ptrs);
	free(msgs);
	if (k->corked && k->txq_n < TX_BATCH) {
		*ret = req;
		return 0;
	}
	err = kvs_flush(k);
	if (err < 0 && !k->corked) {
		/* As a v1 swap that could not be sent: no request. */
		kvswap_req_free(req);
		return err;
	}
	*ret = req;
	return 0;
out_free:
	free(starts);
	free(ptrs);
	free(msgs);
	/* Not handed out nor in the table: kvswap_req_free() frees it. */
	kvswap_req_free(req);
	return err;
}

KVSWAP_EXPORT int kvswap_swap_out_batch(struct kvswap *k,
					struct kvswap_region *r,
					const struct kvswap_batch_entry *entries,
					uint32_t n, uint32_t flags,
					struct kvswap_req **ret)
{
	return batch_submit(k, r, entries, n, flags, true, ret);
}

KVSWAP_EXPORT int kvswap_swap_in_batch(struct kvswap *k,
				       struct kvswap_region *r,
				       const struct kvswap_batch_entry *entries,
				       uint32_t n, uint32_t flags,
				       struct kvswap_req **ret)
{
	return batch_submit(k, r, entries, n, flags, false, ret);
}

/* --- events ---------------------------------------------------------------- */

/* The region of a swap-in that verifies: by id, as the caller may have
 * released it meanwhile (NULL then). */
static struct kvswap_region *batch_region(struct kvswap *k, const struct batch *b)
{
	struct kvswap_region *r;

	if (b->out || !b->verify)
		return NULL;
	for (r = k->regions; r; r = r->next)
		if (r->id == b->region)
			return r->addr ? r : NULL;
	return NULL;
}

/*
 * A swap-in part refused with E2BIG: its reply (metadata and checksums)
 * would not fit one packet. It becomes two parts of half its entries
 * each, queued to go out after this dispatch. Returns 0, or a negative
 * errno if it cannot be split (p then still stands).
 */
static int resplit(struct kvswap *k, struct part *p)
{
	struct kvswap_req *req = p->req;
	Kvswap__V1__SwapInBatch *si;
	Kvswap__V1__Request *rq;
	struct batch_args a = { 0 };
	struct part *half[2];
	uint32_t h = p->nent / 2;
	int r;

	rq = kvswap__v1__request__unpack(NULL, p->pkt_len, p->pkt);
	if (!rq)
		return -ENOMEM;
	si = rq->swap_in_batch;
	if (!si || si->n_entries != p->nent) {
		kvswap__v1__request__free_unpacked(rq, NULL);
		return -EPROTO;
	}
	a.region = si->region;
	a.events = si->events;
	a.client_verify = si->client_verify;
	a.request_order = si->request_order;
	half[0] = part_new(req, p->ent0, h);
	half[1] = half[0] ? part_new(req, p->ent0 + h, p->nent - h) : NULL;
	if (!half[1]) {
		/* p still stands, and fails whole; so does a lone half. */
		if (half[0])
			part_fail(k, half[0], -ENOMEM, "out of memory");
		kvswap__v1__request__free_unpacked(rq, NULL);
		return -ENOMEM;
	}
	for (int j = 0; j < 2; j++) {
		r = part_queue(k, half[j], si->entries + (half[j]->ent0 - p->ent0),
			       &a);
		if (r < 0)
			part_fail(k, half[j], r, k->last_error);
	}
	kvswap__v1__request__free_unpacked(rq, NULL);
	/* The halves hold the groups' counts now: p goes without a trace. */
	for (uint32_t w = 0; w < req->b->gwords; w++) {
		while (p->gmask[w]) {
			uint32_t g = w * 64 + (uint32_t)__builtin_ctzll(p->gmask[w]);

			p->gmask[w] &= p->gmask[w] - 1;
			assert(req->b->grp_parts[g] > 0);
			req->b->grp_parts[g]--;
		}
	}
	kvs_part_end(k, p);
	return 0;
}

/*
 * GroupDone: group g is over in part p. The daemon counts failed segments
 * as over too, and says how many landed: a swap-in's group is whole only
 * if all of p's segments in it did. (A swap-out's failures all come as
 * error events, and its skipped entries land nothing by design.)
 */
static void group_event(struct kvswap *k, struct part *p,
			const Kvswap__V1__GroupDone *gd)
{
	struct batch *b = p->req->b;
	uint32_t g = gd->group, n = 0;
	int err = 0, known = 0;

	if (g >= b->ngroups || !gbit(p->gmask, g))
		return;
	if (!b->out) {
		for (uint32_t j = b->grp_start[g]; j < b->grp_start[g + 1]; j++) {
			uint32_t s = b->grp_seg[j];
			int st;

			if (s < p->seg0 || s >= p->seg0 + p->nseg)
				continue;
			n++;
			st = b->ent_status[b->seg_ent[s]];
			if (st < 0 && !known)
				known = st;
		}
		if (gd->segments < n)
			err = known ? known : -EIO;
	}
	group_over(p, g, err, batch_region(k, b));
}

/* An Error event about an entry (and maybe one of its segments). */
static void entry_error(struct part *p, const Kvswap__V1__Error *e)
{
	struct kvswap_req *req = p->req;
	struct batch *b = req->b;
	int err = -kvs_event_code(e);
	uint32_t i, s0, s1;

	if (e->entry >= p->nent)
		return;		/* bogus; the reply settles the entry */
	i = p->ent0 + e->entry;
	entry_fail(b, i, err, e->message);
	s0 = b->ent_seg0[i];
	s1 = b->ent_seg0[i + 1];
	if (e->has_segment) {
		if (e->segment < s1 - s0)
			seg_fail(req, s0 + e->segment, err);
		return;
	}
	for (uint32_t s = s0; s < s1; s++)
		seg_fail(req, s, err);
}

/*
 * Sends a Delete of the keys of entries `bad` (nbad of them) of part p:
 * they hold damaged bytes. Queued; it goes out after this dispatch.
 */
static void delete_damaged(struct kvswap *k, struct part *p,
			   const uint32_t *bad, uint32_t nbad)
{
	Kvswap__V1__Request del = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Delete d = KVSWAP__V1__DELETE__INIT;
	ProtobufCBinaryData *keys;
	Kvswap__V1__Request *rq;

	rq = kvswap__v1__request__unpack(NULL, p->pkt_len, p->pkt);
	keys = calloc(nbad, sizeof(*keys));
	if (rq && keys && rq->swap_in_batch &&
	    rq->swap_in_batch->n_entries == p->nent) {
		for (uint32_t j = 0; j < nbad; j++)
			keys[j] = rq->swap_in_batch->entries[bad[j] - p->ent0]->key;
		d.n_keys = nbad;
		d.keys = keys;
		del.body_case = KVSWAP__V1__REQUEST__BODY_DELETE;
		del.delete_ = &d;
		kvs_queue(k, &del, NULL);
	}
	free(keys);
	if (rq)
		kvswap__v1__request__free_unpacked(rq, NULL);
}

/*
 * The end-to-end check of part p against the stored CRC32C values of its
 * BatchReply. The check needs the lengths the caller gave to be the
 * stored ones; the reply's byte count tells whether they were (when no
 * entry of the part failed, so that every landed byte is accounted for).
 * A mismatch with the right lengths is damage: -EBADMSG, and the key is
 * deleted, so that nobody is served the entry again (the trade-off: a
 * false alarm, from a caller that changed the bytes before they were
 * summed, costs one cache miss). With lengths known to be wrong it is
 * -EINVAL and nothing is deleted; with some entries failed it is
 * -EBADMSG, not deleted either.
 */
static void verify_part(struct kvswap *k, struct part *p,
			const Kvswap__V1__BatchReply *br)
{
	struct kvswap_req *req = p->req;
	struct batch *b = req->b;
	struct kvswap_region *r = batch_region(k, b);
	uint64_t expect = 0;
	uint32_t nbad = 0, *bad = NULL;
	bool all_read = true;
	char msg[256];

	if (br->n_crcs != p->nseg || !r) {
		snprintf(msg, sizeof(msg), "swap_in_batch: %s",
			 r ? "kvswapd's reply carries no checksum for every segment"
			   : "the region was released before the reply");
		for (uint32_t i = p->ent0; i < p->ent0 + p->nent; i++)
			if (b->ent_status[i] == ENT_PENDING)
				for (uint32_t s = b->ent_seg0[i];
				     s < b->ent_seg0[i + 1]; s++)
					seg_fail(req, s, r ? -EPROTO : -ENXIO);
		for (uint32_t i = p->ent0; i < p->ent0 + p->nent; i++)
			entry_fail(b, i, r ? -EPROTO : -ENXIO, msg);
		return;
	}
	for (uint32_t i = p->ent0; i < p->ent0 + p->nent; i++) {
		if (b->ent_status[i] != ENT_PENDING) {
			all_read = false;
			continue;
		}
		for (uint32_t s = b->ent_seg0[i]; s < b->ent_seg0[i + 1]; s++)
			expect += b->seg_len[s];
	}
	for (uint32_t i = p->ent0; i < p->ent0 + p->nent; i++) {
		uint32_t s0 = b->ent_seg0[i], s1 = b->ent_seg0[i + 1], s;
		bool lengths_wrong = all_read && br->bytes != expect;
		int err;

		if (b->ent_status[i] != ENT_PENDING)
			continue;
		for (s = s0; s < s1; s++) {
			seg_checksum(req, r, s);
			if (b->seg_crc[s] != br->crcs[s - p->seg0])
				break;
		}
		if (s == s1)
			continue;
		if (lengths_wrong) {
			err = -EINVAL;
			snprintf(msg, sizeof(msg), "swap_in_batch.entries[%u]."
				 "segments[%u]: CRC32C differs, and the %llu bytes "
				 "read are not the %llu of the lengths given: give "
				 "the stored lengths", i, s - s0,
				 (unsigned long long)br->bytes,
				 (unsigned long long)expect);
		} else {
			err = -EBADMSG;
			snprintf(msg, sizeof(msg), "swap_in_batch.entries[%u]."
				 "segments[%u]: CRC32C of the bytes received is "
				 "0x%08x, stored 0x%08x: damaged, not served%s", i,
				 s - s0, b->seg_crc[s], br->crcs[s - p->seg0],
				 all_read ? "; kvswapd was asked to delete it" : "");
			if (all_read) {
				if (!bad)
					bad = calloc(p->nent, sizeof(*bad));
				if (bad)
					bad[nbad++] = i;
			}
		}
		kvs_set_error(k, "%s", msg);
		entry_fail(b, i, err, msg);
		for (s = s0; s < s1; s++)
			seg_fail(req, s, err);
	}
	if (nbad)
		delete_damaged(k, p, bad, nbad);
	free(bad);
}

/* The final event of part p. */
static void part_reply(struct kvswap *k, struct part *p,
		       const Kvswap__V1__BatchReply *br)
{
	struct batch *b = p->req->b;
	bool cancelled = br->has_cancelled && br->cancelled;

	if (cancelled)
		b->cancelled = true;
	for (size_t j = 0; j < br->n_skipped; j++)
		if (br->skipped[j] < p->nent &&
		    b->ent_status[p->ent0 + br->skipped[j]] == ENT_PENDING)
			b->ent_status[p->ent0 + br->skipped[j]] = KVSWAP_SKIPPED;
	for (size_t j = 0; j < br->n_failed; j++)
		if (br->failed[j] < p->nent)
			entry_fail(b, p->ent0 + br->failed[j],
				   cancelled ? -ECANCELED : -EIO,
				   cancelled ? "cancelled" :
				   "failed; kvswapd gave no reason");
	if (!b->out && br->n_metadata == p->nent) {
		for (uint32_t j = 0; j < p->nent; j++) {
			uint32_t i = p->ent0 + j;
			const ProtobufCBinaryData *m = &br->metadata[j];

			if (b->ent_status[i] != ENT_PENDING || !m->len)
				continue;
			b->ent_meta[i] = kvs_memdup(m->data, m->len);
			if (b->ent_meta[i])
				b->ent_meta_len[i] = m->len;
			else
				entry_fail(b, i, -ENOMEM, "out of memory for metadata");
		}
	}
	if (!b->out && b->verify)
		verify_part(k, p, br);
	/*
	 * A failed entry's bytes count for nothing: its groups did not land
	 * (a swap-in entry refused for one bad segment reads none). Those
	 * of cancelled entries are what the reply's groups_done says.
	 */
	for (uint32_t i = p->ent0; i < p->ent0 + p->nent; i++) {
		int st = b->ent_status[i];

		if (st == ENT_PENDING)
			b->ent_status[i] = 0;
		else if (st < 0 && st != -ECANCELED)
			for (uint32_t s = b->ent_seg0[i]; s < b->ent_seg0[i + 1]; s++)
				seg_fail(p->req, s, st);
	}
	/*
	 * The groups this reply stands for. After a cancel, only those that
	 * it lists as whole landed. Their checksums are all summed already.
	 */
	if (cancelled) {
		for (size_t j = 0; j < br->n_groups_done; j++)
			group_over(p, br->groups_done[j], 0, NULL);
		groups_over(p, -ECANCELED, NULL);
	} else {
		groups_over(p, 0, NULL);
	}
	kvs_part_end(k, p);
}

void kvs_batch_event(struct kvswap *k, struct part *p,
		     const Kvswap__V1__Event *ev)
{
	const Kvswap__V1__Error *e;
	char msg[160];
	int code;

	switch (ev->body_case) {
	case KVSWAP__V1__EVENT__BODY_SEGMENT:
		if (ev->segment->has_index && ev->segment->index < p->nseg)
			kvs_req_segment(p->req, p->seg0 + ev->segment->index, 0);
		return;
	case KVSWAP__V1__EVENT__BODY_GROUP:
		if (ev->group->has_group)
			group_event(k, p, ev->group);
		return;
	case KVSWAP__V1__EVENT__BODY_BATCH:
		part_reply(k, p, ev->batch);
		return;
	case KVSWAP__V1__EVENT__BODY_ERROR:
		e = ev->error;
		kvs_set_daemon_error(k, e);
		if (e->has_entry) {
			entry_error(p, e);
			return;
		}
		if (e->has_segment)
			return;		/* not a batch's; its reply settles it */
		code = kvs_event_code(e);
		/* The reply would not fit a packet: halves, unless cancelled. */
		if (code == E2BIG && !p->req->b->out && p->nent > 1 && p->pkt &&
		    !p->req->b->cancelled && resplit(k, p) == 0)
			return;
		part_fail(k, p, -code, k->last_error);
		return;
	default:
		snprintf(msg, sizeof(msg), "kvswapd answered request %llu with "
			 "event %d", (unsigned long long)p->id, (int)ev->body_case);
		kvs_set_error(k, "%s", msg);
		part_fail(k, p, -EPROTO, msg);
		return;
	}
}

int kvs_batch_abort(struct kvswap_req *req, int err)
{
	struct batch *b = req->b;

	for (uint32_t i = 0; i < b->nent; i++)
		entry_fail(b, i, err, NULL);
	for (uint32_t g = 0; g < b->ngroups; g++) {
		if (!b->grp_parts[g])
			continue;
		b->grp_parts[g] = 0;
		if (!b->grp_err[g])
			b->grp_err[g] = err;
	}
	return kvs_batch_status(req);
}

int kvs_batch_status(const struct kvswap_req *req)
{
	const struct batch *b = req->b;

	for (uint32_t i = 0; i < b->nent; i++) {
		if (b->ent_status[i] == ENT_PENDING)
			return -EIO;	/* no event settled it: cannot be */
		if (b->ent_status[i] < 0)
			return b->ent_status[i];
	}
	return 0;
}

/* --- groups, cancel, outcomes ---------------------------------------------- */

KVSWAP_EXPORT int kvswap_wait_group(struct kvswap *k, struct kvswap_req *req,
				    uint32_t group, int timeout_ms)
{
	struct batch *b;
	int64_t deadline;
	int r;

	if (!req || !req->b)
		return -EINVAL;
	b = req->b;
	if (group >= b->ngroups || !b->grp_nseg[group]) {
		if (k)
			kvs_set_error(k, "wait_group: group %u has no segments in "
				      "this request", group);
		return -EINVAL;
	}
	deadline = kvs_deadline_after(timeout_ms);
	while (b->grp_parts[group]) {
		if (!k || req->k != k)
			return -EINVAL;
		r = kvs_pump(k, deadline);
		if (r == 0 || (r < 0 && b->grp_parts[group])) {
			kvs_settle(k);
			return r == 0 ? -ETIMEDOUT : r;
		}
		if (!b->grp_parts[group])
			kvs_settle(k);
	}
	return b->grp_err[group];
}

KVSWAP_EXPORT bool kvswap_group_done(const struct kvswap_req *req,
				     uint32_t group)
{
	const struct batch *b = req ? req->b : NULL;

	return b && group < b->ngroups && b->grp_nseg[group] &&
	       !b->grp_parts[group] && !b->grp_err[group];
}

/* Parts still queued are dropped here; those sent get a Cancel each. */
KVSWAP_EXPORT int kvswap_cancel(struct kvswap *k, struct kvswap_req *req)
{
	struct part *p, *next;
	int r;

	if (!req || !req->b) {
		if (k)
			kvs_set_error(k, "cancel: only batches can be cancelled");
		return -EINVAL;
	}
	if (req->done)
		return 0;
	if (!k || req->k != k)
		return -EINVAL;
	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	for (p = req->parts; p && !req->done; p = next) {
		Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
		Kvswap__V1__Cancel c = KVSWAP__V1__CANCEL__INIT;

		next = p->next;
		if (p->state == PART_QUEUED) {
			req->b->cancelled = true;
			part_fail(k, p, -ECANCELED, "cancelled before it was sent");
			continue;
		}
		if (p->state != PART_SENT)
			continue;
		c.has_request = true;
		c.request = p->id;
		rq.body_case = KVSWAP__V1__REQUEST__BODY_CANCEL;
		rq.cancel = &c;
		r = kvs_queue(k, &rq, NULL);
		if (r < 0)
			return r;
	}
	return kvs_flush(k);
}

KVSWAP_EXPORT uint32_t kvswap_req_entries(const struct kvswap_req *req)
{
	return req && req->b ? req->b->nent : 0;
}

KVSWAP_EXPORT int kvswap_req_entry_status(const struct kvswap_req *req,
					  uint32_t entry)
{
	int st;

	if (!req || !req->b || entry >= req->b->nent)
		return -EINVAL;
	st = req->b->ent_status[entry];
	return st == ENT_PENDING ? -EINPROGRESS : st;
}

KVSWAP_EXPORT const char *kvswap_req_entry_error(const struct kvswap_req *req,
						 uint32_t entry)
{
	if (!req || !req->b || entry >= req->b->nent ||
	    !req->b->ent_msg[entry])
		return "";
	return req->b->ent_msg[entry];
}

KVSWAP_EXPORT const void *kvswap_req_entry_metadata(const struct kvswap_req *req,
						    uint32_t entry, size_t *len)
{
	const struct batch *b = req ? req->b : NULL;

	if (!b || b->out || entry >= b->nent || !b->ent_meta[entry] ||
	    b->ent_status[entry] != 0) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = b->ent_meta_len[entry];
	return b->ent_meta[entry];
}

KVSWAP_EXPORT bool kvswap_req_cancelled(const struct kvswap_req *req)
{
	return req && req->b && req->b->cancelled;
}
