/* SPDX-License-Identifier: MIT */
/*
 * Swap requests (swap.h): from a checked request to a struct xfer whose
 * segments xfer.c moves (swapend.c finishes it: each segment's end, the
 * entries linked, the final event).
 *
 * A v1 SwapOut or SwapIn is one entry with an event linked to every
 * segment. A batch names many entries; each is stored, skipped or read on
 * its own, and its segments carry completion groups: one GroupDone per
 * group as its last segment lands, except for the request's last group,
 * for which the final BatchReply stands (so a one-segment request costs
 * one packet). Errors of one entry are events naming the entry (and the
 * segment); the BatchReply lists the entries that failed.
 *
 * Swap-outs reserve their entries' space in order (catalog_reserve); one
 * that must wait for evicted space parks the request (catalog_wait) and
 * resumes at that entry. Segments move only once every entry is placed.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "conn.h"
#include "log.h"
#include "region.h"
#include "swap.h"
#include "tenant.h"

/* Writes a request's error message; returns -code, for one-line exits. */
static int fail(char *err, size_t len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -code;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/*
 * Makes a request's xfer in one allocation: the struct, nseg segments,
 * nent entries, the group counters and `extra` bytes for keys, metadata
 * and checksums (returned in *ret_extra). Owner: swap.c; swap_end() frees
 * it. Segment events are pre-encoded when `events`.
 */
static struct xfer *xfer_new(struct xfers *xf, struct conn *c, struct region *r,
			     uint64_t id, bool out, bool batch, bool events,
			     uint32_t nent, uint32_t nseg, uint32_t ngroups,
			     size_t extra, uint8_t **ret_extra)
{
	size_t off_ent = sizeof(struct xfer) + nseg * sizeof(struct xseg);
	size_t off_grp = align8(off_ent + nent * sizeof(struct xent));
	size_t off_order = off_grp + ngroups * (2 * sizeof(uint32_t) +
						sizeof(uint64_t));
	size_t off_extra = align8(off_order + (batch ? nseg * sizeof(uint32_t) : 0));
	size_t sz = (off_extra + extra + 15) & ~(size_t)15;
	struct xfer *x = aligned_alloc(16, sz);
	uint8_t *base = (uint8_t *)x;

	if (!x)
		return NULL;
	memset(x, 0, off_extra);
	x->xf = xf;
	x->c = c;
	x->r = r;
	x->id = id;
	x->out = out;
	x->batch = batch;
	x->nent = nent;
	x->nseg = nseg;
	x->ngroups = ngroups;
	x->ent = (struct xent *)(base + off_ent);
	x->group_bytes = (uint64_t *)(base + off_grp);
	x->group_left = (uint32_t *)(x->group_bytes + ngroups);
	x->group_segs = x->group_left + ngroups;
	if (batch)
		x->order = (uint32_t *)(base + off_order);
	*ret_extra = base + off_extra;
	for (uint32_t i = 0; i < nent; i++)
		x->ent[i].x = x;
	for (uint32_t i = 0; i < nseg; i++) {
		struct xseg *xs = &x->seg[i];

		xs->x = x;
		xs->index = i;
		xs->bounce = -1;
		if (events) {
			Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
			Kvswap__V1__SegmentDone sd = KVSWAP__V1__SEGMENT_DONE__INIT;

			sd.has_index = 1;
			sd.index = i;
			ev.has_id = 1;
			ev.id = id;
			ev.body_case = KVSWAP__V1__EVENT__BODY_SEGMENT;
			ev.segment = &sd;
			/* At most 19 bytes: two varints and two tags. */
			xs->evlen = (uint8_t)kvswap__v1__event__pack(&ev, xs->ev);
		}
	}
	return x;
}

/* Starts x: takes the region and connection references. */
static void swap_start(struct xfer *x)
{
	struct xfers *xf = x->xf;

	region_use(x->r);
	conn_xfer_begin(x->c);
	x->anext = xf->active;
	x->aprev = NULL;
	if (xf->active)
		xf->active->aprev = x;
	xf->active = x;
}

/* --- swap-outs: placing entries --------------------------------------- */

static void place_retry(void *arg);

/*
 * Reserves the space of the entries not placed yet, in order; parks the
 * request if one must wait for evicted space. Returns true when every
 * entry is placed (or skipped, or failed).
 */
/*
 * A batch's entries not placed yet, as one need: evicting for it at once
 * lets every entry find its room after one commit of delete records, not
 * one commit per entry. Keys IF_ABSENT will skip are left out.
 */
static void make_room(struct xfer *x)
{
	struct catalog *cat = x->xf->cat;
	uint64_t bytes = 0, B = x->xf->block;

	for (uint32_t i = x->reserved; i < x->nent; i++) {
		const struct xent *xe = &x->ent[i];

		if ((x->flags & KVS_FLAG_IF_ABSENT) &&
		    (catalog_get(cat, x->c->tenant, xe->key, xe->key_len) ||
		     catalog_writing(cat, x->c->tenant, xe->key, xe->key_len)))
			continue;
		for (uint32_t k = 0; k < xe->nseg; k++)
			bytes += (x->seg[xe->seg0 + k].len + B - 1) / B * B;
	}
	catalog_make_room(cat, bytes);
}

static bool place(struct xfer *x)
{
	struct catalog *cat = x->xf->cat;
	uint64_t lens[KVS_MAX_SEGMENTS];
	char err[512];	/* room for a path in the message */
	int r;

	if (x->batch && x->nent - x->reserved > 1)
		make_room(x);
	for (; x->reserved < x->nent; x->reserved++) {
		struct xent *xe = &x->ent[x->reserved];

		assert(xe->state == XENT_WAITING);
		if ((x->flags & KVS_FLAG_IF_ABSENT) &&
		    (catalog_get(cat, x->c->tenant, xe->key, xe->key_len) ||
		     catalog_writing(cat, x->c->tenant, xe->key, xe->key_len))) {
			xe->state = XENT_SKIPPED;
			swap_entry_settle(x, xe, false);
			continue;
		}
		for (uint32_t k = 0; k < xe->nseg; k++)
			lens[k] = x->seg[xe->seg0 + k].len;
		r = catalog_reserve(cat, x->c->tenant, &x->c->leases, xe->key,
				    xe->key_len, xe->meta, xe->meta_len,
				    xe->nseg, lens,
				    x->flags & KVS_FLAG_PINNED,
				    x->flags & KVS_FLAG_WAIT_LEASES, &xe->e, err,
				    sizeof(err));
		if (r == -EAGAIN) {
			x->waiter.retry = place_retry;
			x->waiter.arg = x;
			catalog_wait(cat, &x->waiter);
			return false;
		}
		if (r < 0) {
			if (!x->batch) {
				/* v1: the whole request fails, as one. */
				x->err = r;
				snprintf(x->errmsg, sizeof(x->errmsg), "%s", err);
				xe->state = XENT_FAILED;
				swap_entry_settle(x, xe, true);
				continue;
			}
			swap_entry_error(x, x->reserved, -1, r, "%s.entries[%u]: %s",
				    swap_op_name(x), x->reserved, err);
			xe->state = XENT_FAILED;
			swap_entry_settle(x, xe, true);
			continue;
		}
		xe->state = XENT_LIVE;
	}
	return true;
}

/* Every entry placed: move the segments, or end at once. */
static void placed(struct xfer *x)
{
	if (!x->batch && x->ent[0].state == XENT_FAILED) {
		/* A swap that never started: its error, then the references. */
		if (!conn_closing(x->c))
			conn_send_error(x->c, x->id, x->err, -1, x->errmsg);
		swap_end(x);
		return;
	}
	xfer_enqueue(x);
	swap_try_finish(x);
}

/* Space came back (or may have): try again, unless the client left. */
static void place_retry(void *arg)
{
	struct xfer *x = arg;

	if (conn_closing(x->c) || x->cancelled) {
		/* The rest never starts; what was reserved goes back. */
		for (uint32_t i = x->reserved; i < x->nent; i++) {
			x->ent[i].state = XENT_FAILED;
			swap_entry_settle(x, &x->ent[i], true);
		}
		x->reserved = x->nent;
		if (!x->batch) {
			if (!conn_closing(x->c))
				conn_send_error(x->c, x->id, ECONNRESET, -1,
						"client gone");
			swap_end(x);
			return;
		}
		swap_cancel_rest(x, x->cancelled ? -ECANCELED : -ECONNRESET,
			    x->cancelled ? "cancelled" : "client gone");
		swap_try_finish(x);
		return;
	}
	if (place(x))
		placed(x);
}

/* --- requests --------------------------------------------------------- */

/* The region of a request, if the connection has it. */
static int find_region(struct conn *c, const char *op, uint32_t id,
		       struct region **ret, char *err, size_t len)
{
	const struct tenant *tn = c->tenant;

	/* Admission: every swap starts here; conn.c counts them in flight. */
	if (tn->use.inflight >= tn->lim.inflight)
		return conn_refuse(c, CONN_REFUSED_INFLIGHT, err, len,
				   "%s: %u requests in flight, its quota "
				   "(tenant-max-inflight %u)", op,
				   tn->use.inflight, tn->lim.inflight);
	*ret = region_find(c, id);
	if (!*ret)
		return fail(err, len, ENOENT, "%s.region %u: no such region on "
			    "this connection", op, id);
	return 0;
}

static void refuse(struct conn *c, const Request *req, int r, const char *err)
{
	conn_send_error(c, req->id, r, -1, err);
}

void swap_out(struct xfers *xf, struct conn *c, const Request *req)
{
	const Kvswap__V1__SwapOut *m = req->swap_out;
	uint32_t nseg = (uint32_t)m->n_segments;
	size_t meta_len = m->has_metadata ? m->metadata.len : 0;
	struct region *r;
	struct xfer *x;
	struct xent *xe;
	uint8_t *extra;
	char err[256];
	int ret;

	ret = find_region(c, "swap_out", m->region, &r, err, sizeof(err));
	for (uint32_t i = 0; !ret && i < nseg; i++) {
		const Kvswap__V1__SegmentOut *s = m->segments[i];

		if (s->offset + s->length > r->size)
			ret = fail(err, sizeof(err), EINVAL, "swap_out.segments[%u]: "
				   "bytes [%llu, %llu) exceed region %u of %llu "
				   "bytes", i, (unsigned long long)s->offset,
				   (unsigned long long)(s->offset + s->length),
				   r->id, (unsigned long long)r->size);
	}
	if (ret < 0) {
		refuse(c, req, ret, err);
		return;
	}
	x = xfer_new(xf, c, r, req->id, true, false, true, 1, nseg, 0,
		     m->key.len + meta_len, &extra);
	if (!x || xfer_attach(x) < 0) {
		free(x);
		refuse(c, req, -ENOMEM, "swap_out: out of memory");
		return;
	}
	x->flags = m->flags;
	xe = &x->ent[0];
	xe->key = extra;
	xe->key_len = (uint32_t)m->key.len;
	memcpy(extra, m->key.data, m->key.len);
	xe->meta = extra + m->key.len;
	xe->meta_len = (uint32_t)meta_len;
	if (meta_len)
		memcpy(extra + m->key.len, m->metadata.data, meta_len);
	xe->nseg = nseg;
	for (uint32_t i = 0; i < nseg; i++) {
		x->seg[i].off = m->segments[i]->offset;
		x->seg[i].len = m->segments[i]->length;
		x->seg[i].stored = i;
	}
	swap_start(x);
	if (place(x))
		placed(x);
}

void swap_in(struct xfers *xf, struct conn *c, const Request *req)
{
	const Kvswap__V1__SwapIn *m = req->swap_in;
	uint32_t nseg = (uint32_t)m->n_segments;
	struct region *r;
	struct entry *e = NULL;
	struct xfer *x;
	uint8_t *extra;
	char err[256];
	int ret;

	ret = find_region(c, "swap_in", m->region, &r, err, sizeof(err));
	if (!ret) {
		e = catalog_get(xf->cat, c->tenant, m->key.data, m->key.len);
		if (!e)
			ret = fail(err, sizeof(err), ENOENT,
				   "swap_in.key: no such entry");
	}
	for (uint32_t i = 0; !ret && i < nseg; i++) {
		const Kvswap__V1__SegmentIn *s = m->segments[i];

		if (s->index >= e->nseg)
			ret = fail(err, sizeof(err), EINVAL, "swap_in.segments[%u]."
				   "index %u: the entry has %u segments", i,
				   s->index, e->nseg);
		else if (s->offset + e->segs[s->index].len > r->size ||
			 s->offset + e->segs[s->index].len < s->offset)
			ret = fail(err, sizeof(err), EINVAL, "swap_in.segments[%u]: "
				   "stored segment %u (%llu bytes) at offset %llu "
				   "exceeds region %u of %llu bytes", i, s->index,
				   (unsigned long long)e->segs[s->index].len,
				   (unsigned long long)s->offset, r->id,
				   (unsigned long long)r->size);
	}
	if (ret < 0) {
		refuse(c, req, ret, err);
		return;
	}
	x = xfer_new(xf, c, r, req->id, false, false, true, 1, nseg, 0, 0,
		     &extra);
	if (!x || xfer_attach(x) < 0) {
		free(x);
		refuse(c, req, -ENOMEM, "swap_in: out of memory");
		return;
	}
	x->ent[0].e = e;
	x->ent[0].nseg = nseg;
	x->ent[0].state = XENT_LIVE;
	catalog_read_begin(xf->cat, e, &c->leases);
	for (uint32_t i = 0; i < nseg; i++) {
		x->seg[i].off = m->segments[i]->offset;
		x->seg[i].stored = m->segments[i]->index;
		x->seg[i].len = e->segs[x->seg[i].stored].len;
	}
	swap_start(x);
	xfer_enqueue(x);
}

/* Segments, groups and extra bytes of a checked batch. */
static void batch_size(Kvswap__V1__BatchEntry **v, size_t n, bool out,
		       uint32_t *ret_nseg, uint32_t *ret_ngroups,
		       size_t *ret_extra)
{
	uint32_t nseg = 0, ngroups = 0;
	size_t extra = 0;

	for (size_t i = 0; i < n; i++) {
		const Kvswap__V1__BatchEntry *e = v[i];

		nseg += (uint32_t)e->n_offsets;
		for (size_t k = 0; k < e->n_offsets; k++) {
			uint32_t g = e->n_groups ? e->groups[k] : (uint32_t)k;

			if (g + 1 > ngroups)
				ngroups = g + 1;
		}
		if (out)
			extra += align8(e->key.len + e->metadata.len) +
				 e->n_crcs * sizeof(uint32_t);
	}
	*ret_nseg = nseg;
	*ret_ngroups = ngroups;
	*ret_extra = extra;
}

/* Segment k of entry i of a batch: position, group, request index. */
static void batch_seg(struct xfer *x, uint32_t i, uint32_t k, uint32_t s,
		      const Kvswap__V1__BatchEntry *be)
{
	struct xseg *xs = &x->seg[s];

	xs->ent = i;
	xs->off = be->offsets[k];
	xs->group = be->n_groups ? be->groups[k] : k;
	x->group_left[xs->group]++;
}

/*
 * Submission order of a batch: group by group, lowest first, and in
 * request order within a group (a counting sort). So the first layer of
 * every entry lands first, and a layer-wise reader can start on it while
 * the rest moves.
 */
static void order_by_group(struct xfer *x)
{
	uint32_t *start = calloc(x->ngroups + 1, sizeof(*start));

	if (!start) {
		x->order = NULL;	/* request order: correct, less timely */
		return;
	}
	for (uint32_t i = 0; i < x->nseg; i++)
		start[x->seg[i].group + 1]++;
	for (uint32_t g = 0; g < x->ngroups; g++)
		start[g + 1] += start[g];
	for (uint32_t i = 0; i < x->nseg; i++)
		x->order[start[x->seg[i].group]++] = i;
	free(start);
}

void swap_out_batch(struct xfers *xf, struct conn *c, const Request *req)
{
	const Kvswap__V1__SwapOutBatch *m = req->swap_out_batch;
	uint32_t nseg, ngroups, s = 0;
	struct region *r;
	struct xfer *x;
	uint8_t *extra;
	size_t nextra;
	char err[256];
	int ret;

	ret = find_region(c, "swap_out_batch", m->region, &r, err, sizeof(err));
	for (size_t i = 0; !ret && i < m->n_entries; i++) {
		const Kvswap__V1__BatchEntry *be = m->entries[i];

		for (size_t k = 0; !ret && k < be->n_offsets; k++) {
			uint64_t len = be->lengths[be->n_lengths == 1 ? 0 : k];

			if (be->offsets[k] + len > r->size ||
			    be->offsets[k] + len < len)
				ret = fail(err, sizeof(err), EINVAL,
					   "swap_out_batch.entries[%zu].segments[%zu]: "
					   "bytes [%llu, %llu) exceed region %u of "
					   "%llu bytes", i, k,
					   (unsigned long long)be->offsets[k],
					   (unsigned long long)(be->offsets[k] + len),
					   r->id, (unsigned long long)r->size);
		}
	}
	if (ret < 0) {
		refuse(c, req, ret, err);
		return;
	}
	batch_size(m->entries, m->n_entries, true, &nseg, &ngroups, &nextra);
	xf->st->batches++;
	xf->st->batch_entries += m->n_entries;
	xf->st->batch_segments += nseg;
	x = xfer_new(xf, c, r, req->id, true, true,
		     m->events & KVS_EVENTS_SEGMENTS, (uint32_t)m->n_entries, nseg,
		     ngroups, nextra, &extra);
	if (!x || xfer_attach(x) < 0) {
		free(x);
		refuse(c, req, -ENOMEM, "swap_out_batch: out of memory");
		return;
	}
	x->flags = m->flags;
	for (uint32_t i = 0; i < x->nent; i++) {
		const Kvswap__V1__BatchEntry *be = m->entries[i];
		struct xent *xe = &x->ent[i];
		size_t kl = be->key.len, ml = be->has_metadata ? be->metadata.len : 0;

		memcpy(extra, be->key.data, kl);
		if (ml)
			memcpy(extra + kl, be->metadata.data, ml);
		xe->key = extra;
		xe->key_len = (uint32_t)kl;
		xe->meta = extra + kl;
		xe->meta_len = (uint32_t)ml;
		extra += align8(be->key.len + be->metadata.len);
		if (be->n_crcs) {
			memcpy(extra, be->crcs, be->n_crcs * sizeof(uint32_t));
			xe->crcs = (const uint32_t *)extra;
			extra += be->n_crcs * sizeof(uint32_t);
		}
		xe->seg0 = s;
		xe->nseg = (uint32_t)be->n_offsets;
		for (uint32_t k = 0; k < xe->nseg; k++, s++) {
			batch_seg(x, i, k, s, be);
			x->seg[s].len = be->lengths[be->n_lengths == 1 ? 0 : k];
			x->seg[s].stored = k;
		}
	}
	if (m->has_request_order && m->request_order)
		x->order = NULL;
	else
		order_by_group(x);
	swap_start(x);
	if (place(x))
		placed(x);
}

void swap_in_batch(struct xfers *xf, struct conn *c, const Request *req)
{
	const Kvswap__V1__SwapInBatch *m = req->swap_in_batch;
	uint32_t nseg, ngroups, s = 0;
	size_t nextra, meta = 0;
	struct region *r;
	struct xfer *x;
	uint8_t *extra;
	char err[256];
	int ret;

	ret = find_region(c, "swap_in_batch", m->region, &r, err, sizeof(err));
	if (ret < 0) {
		refuse(c, req, ret, err);
		return;
	}
	/* The reply carries every entry's metadata and every segment's CRC. */
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct entry *e = catalog_get(xf->cat, c->tenant,
						    m->entries[i]->key.data,
						    m->entries[i]->key.len);

		meta += (e ? e->meta_len : 0) + 4 + m->entries[i]->n_offsets * 4;
	}
	if (meta + 64 > KVS_MAX_MESSAGE) {
		snprintf(err, sizeof(err), "swap_in_batch: the reply would carry "
			 "%zu bytes of metadata and checksums, over the %d-byte "
			 "packet: ask for fewer entries", meta, KVS_MAX_MESSAGE);
		refuse(c, req, -E2BIG, err);
		return;
	}
	batch_size(m->entries, m->n_entries, false, &nseg, &ngroups, &nextra);
	xf->st->batches++;
	xf->st->batch_entries += m->n_entries;
	xf->st->batch_segments += nseg;
	x = xfer_new(xf, c, r, req->id, false, true,
		     m->events & KVS_EVENTS_SEGMENTS, (uint32_t)m->n_entries, nseg,
		     ngroups, 0, &extra);
	if (!x || xfer_attach(x) < 0) {
		free(x);
		refuse(c, req, -ENOMEM, "swap_in_batch: out of memory");
		return;
	}
	x->client_crc = m->has_client_verify && m->client_verify;
	swap_start(x);
	for (uint32_t i = 0; i < x->nent; i++) {
		const Kvswap__V1__BatchEntry *be = m->entries[i];
		struct xent *xe = &x->ent[i];
		struct entry *e = catalog_get(xf->cat, c->tenant, be->key.data,
					      be->key.len);
		int bad = 0;

		xe->seg0 = s;
		xe->nseg = (uint32_t)be->n_offsets;
		for (uint32_t k = 0; k < xe->nseg; k++)
			batch_seg(x, i, k, s + k, be);
		for (uint32_t k = 0; e && !bad && k < xe->nseg; k++) {
			uint32_t idx = be->n_indexes ? be->indexes[k] : k;
			struct xseg *xs = &x->seg[s + k];

			if (idx >= e->nseg) {
				swap_entry_error(x, i, k, EINVAL, "swap_in_batch.entries"
					    "[%u].segments[%u]: index %u: the entry "
					    "has %u segments", i, k, idx, e->nseg);
				bad = 1;
				break;
			}
			xs->stored = idx;
			xs->len = e->segs[idx].len;
			if (xs->off + xs->len > r->size ||
			    xs->off + xs->len < xs->off) {
				swap_entry_error(x, i, k, EINVAL, "swap_in_batch.entries"
					    "[%u].segments[%u]: stored segment %u "
					    "(%llu bytes) at offset %llu exceeds "
					    "region %u of %llu bytes", i, k, idx,
					    (unsigned long long)xs->len,
					    (unsigned long long)xs->off, r->id,
					    (unsigned long long)r->size);
				bad = 1;
			}
		}
		s += xe->nseg;
		if (!e)
			swap_entry_error(x, i, -1, ENOENT, "swap_in_batch.entries[%u]."
				    "key: no such entry", i);
		if (!e || bad) {
			xe->state = XENT_FAILED;
			swap_entry_settle(x, xe, true);
			continue;
		}
		xe->e = e;
		xe->state = XENT_LIVE;
		catalog_read_begin(xf->cat, e, &c->leases);
	}
	if (m->has_request_order && m->request_order)
		x->order = NULL;
	else
		order_by_group(x);
	xfer_enqueue(x);
	swap_try_finish(x);
}

void swap_cancel(struct xfers *xf, struct conn *c, const Request *req)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__CancelReply cr = KVSWAP__V1__CANCEL_REPLY__INIT;
	struct xfer *x;

	for (x = xf->active; x; x = x->anext)
		if (x->c == c && x->id == req->cancel->request && x->batch &&
		    !x->cancelled)
			break;
	cr.has_found = 1;
	cr.found = x != NULL;
	ev.has_id = 1;
	ev.id = req->id;
	ev.body_case = KVSWAP__V1__EVENT__BODY_CANCEL;
	ev.cancel = &cr;
	conn_send(c, &ev);
	if (!x)
		return;
	x->cancelled = true;
	swap_cancel_rest(x, -ECANCELED, "cancelled");
	/* A swap-out waiting for space ends at its next retry; the rest now. */
	if (!x->out || x->reserved == x->nent)
		swap_try_finish(x);
}

void swap_conn_abort(struct xfers *xf, struct conn *c)
{
	struct xfer *x, *next;

	for (x = xf->active; x; x = next) {
		next = x->anext;
		if (x->c != c || x->next >= x->nseg)
			continue;
		if (x->out && x->reserved < x->nent)
			continue;	/* waiting for space: ends at its retry */
		swap_cancel_rest(x, -ECONNRESET, "client gone");
		swap_try_finish(x);
	}
}
