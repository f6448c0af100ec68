/* SPDX-License-Identifier: MIT */
/*
 * The end of a swap request (swap.h): each segment's end accounted for
 * (swap_seg_done, xfer.c's callback), completion groups reported, and,
 * once every segment is over, the entries linked and the final event
 * sent. swap.c starts requests; this file finishes them.
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

const char *swap_op_name(const struct xfer *x)
{
	if (x->batch)
		return x->out ? "swap_out_batch" : "swap_in_batch";
	return x->out ? "swap_out" : "swap_in";
}

/* Releases what a finished swap held, and the connection's count. */
void swap_end(struct xfer *x)
{
	struct xfers *xf = x->xf;
	struct conn *c = x->c;

	assert(!x->fq.queued && !x->inflight && !x->linking);
	for (uint32_t i = 0; i < x->nent; i++) {
		/* Swap-out not linked: its blocks go back; swap-in: unref. */
		if (x->out)
			catalog_abandon(xf->cat, x->ent[i].e);
		else if (x->ent[i].e)
			catalog_read_end(xf->cat, x->ent[i].e);
	}
	if (x->aprev)
		x->aprev->anext = x->anext;
	else
		xf->active = x->anext;
	if (x->anext)
		x->anext->aprev = x->aprev;
	xfer_detach(x);
	region_unuse(x->r);
	free(x);
	conn_xfer_end(c);
}

/* An error about one entry (and segment, if seg >= 0) of a batch. */
void swap_entry_error(struct xfer *x, uint32_t ent, int64_t seg, int code,
			const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!conn_closing(x->c))
		conn_send_entry_error(x->c, x->id, code, ent, seg, msg);
}

/* Counts an entry's segments as over without moving them. */
void swap_entry_settle(struct xfer *x, struct xent *xe, bool failed)
{
	for (uint32_t k = 0; k < xe->nseg; k++) {
		const struct xseg *xs = &x->seg[xe->seg0 + k];

		if (x->ngroups)
			x->group_left[xs->group]--;
	}
	x->done += xe->nseg;
	if (failed) {
		x->failed += xe->nseg;
		xe->failed = xe->nseg;
	}
}

static void finish(struct xfer *x);

void swap_try_finish(struct xfer *x)
{
	assert(x->done <= x->nseg);
	if (x->done == x->nseg && !x->inflight)
		finish(x);
}

/* --- replies ---------------------------------------------------------- */

static void reply_swap_out(struct xfer *x)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__SwapOutReply so = KVSWAP__V1__SWAP_OUT_REPLY__INIT;

	ev.has_id = 1;
	ev.id = x->id;
	so.has_segments = so.has_bytes = 1;
	so.segments = x->nseg;
	so.bytes = x->bytes;
	ev.body_case = KVSWAP__V1__EVENT__BODY_SWAP_OUT;
	ev.swap_out = &so;
	conn_send(x->c, &ev);
}

static void reply_swap_in(struct xfer *x)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__SwapInReply si = KVSWAP__V1__SWAP_IN_REPLY__INIT;
	const struct entry *e = x->ent[0].e;

	ev.has_id = 1;
	ev.id = x->id;
	si.has_segments = si.has_bytes = si.has_metadata = 1;
	si.segments = x->nseg;
	si.bytes = x->bytes;
	si.metadata = (ProtobufCBinaryData){ e->meta_len, e->meta };
	ev.body_case = KVSWAP__V1__EVENT__BODY_SWAP_IN;
	ev.swap_in = &si;
	conn_send(x->c, &ev);
}

/*
 * The final event of a batch. Its arrays are bounded by the request's own
 * size: a BatchReply never outgrows the packet that asked for it, save
 * for swap-in metadata, which is why the request is refused up front if
 * the metadata could not fit (swap_in_batch).
 */
static void reply_batch(struct xfer *x)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__BatchReply br = KVSWAP__V1__BATCH_REPLY__INIT;
	uint32_t *skipped = NULL, *failed = NULL, *groups = NULL, *crcs = NULL;
	ProtobufCBinaryData *meta = NULL;
	size_t ns = 0, nf = 0, ng = 0, nc = 0;

	skipped = calloc(x->nent, sizeof(*skipped));
	failed = calloc(x->nent, sizeof(*failed));
	groups = calloc(x->ngroups ? x->ngroups : 1, sizeof(*groups));
	if (!x->out) {
		meta = calloc(x->nent, sizeof(*meta));
		crcs = calloc(x->nseg, sizeof(*crcs));
	}
	if (!skipped || !failed || !groups || (!x->out && (!meta || !crcs))) {
		conn_send_error(x->c, x->id, ENOMEM, -1, "batch: out of memory "
				"for the reply; the entries' state is as if it "
				"had been sent");
		goto out_free;
	}
	br.has_entries = br.has_segments = br.has_bytes = 1;
	for (uint32_t i = 0; i < x->nent; i++) {
		const struct xent *xe = &x->ent[i];

		if (xe->state == XENT_SKIPPED)
			skipped[ns++] = i;
		else if (xe->state == XENT_FAILED || xe->failed)
			failed[nf++] = i;
		else
			br.entries++;
		if (x->out)
			continue;
		if (xe->e && !xe->failed)
			meta[i] = (ProtobufCBinaryData){ xe->e->meta_len, xe->e->meta };
		for (uint32_t k = 0; k < xe->nseg; k++)
			crcs[nc++] = xe->e && !xe->failed ?
				xe->e->segs[x->seg[xe->seg0 + k].stored].crc : 0;
	}
	br.segments = x->landed;
	br.bytes = x->bytes;
	br.n_skipped = ns;
	br.skipped = skipped;
	br.n_failed = nf;
	br.failed = failed;
	if (!x->out) {
		br.n_metadata = x->nent;
		br.metadata = meta;
		br.n_crcs = nc;
		br.crcs = crcs;
	}
	if (x->cancelled) {
		br.has_cancelled = 1;
		br.cancelled = 1;
		/* Whole: every segment of the group landed. groups[] first
		 * counts each group's segments, then lists the whole ones. */
		for (uint32_t i = 0; i < x->nseg; i++)
			groups[x->seg[i].group]++;
		for (uint32_t g = 0; g < x->ngroups; g++)
			if (groups[g] && x->group_segs[g] == groups[g])
				groups[ng++] = g;
		br.n_groups_done = ng;
		br.groups_done = groups;
	}
	ev.has_id = 1;
	ev.id = x->id;
	ev.body_case = KVSWAP__V1__EVENT__BODY_BATCH;
	ev.batch = &br;
	conn_send(x->c, &ev);
out_free:
	free(skipped);
	free(failed);
	free(groups);
	free(meta);
	free(crcs);
}

static void send_group_done(struct xfer *x, uint32_t g)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__GroupDone gd = KVSWAP__V1__GROUP_DONE__INIT;

	gd.has_group = gd.has_segments = gd.has_bytes = 1;
	gd.group = g;
	gd.segments = x->group_segs[g];
	gd.bytes = x->group_bytes[g];
	ev.has_id = 1;
	ev.id = x->id;
	ev.body_case = KVSWAP__V1__EVENT__BODY_GROUP;
	ev.group = &gd;
	x->xf->st->group_events++;
	conn_send(x->c, &ev);
}

/* --- the end of a request --------------------------------------------- */

static void batch_answer(struct xfer *x)
{
	if (!conn_closing(x->c))
		reply_batch(x);
	swap_end(x);
}

/* A durable batch entry's record landed (or failed to). */
static void entry_linked(void *arg, int err)
{
	struct xent *xe = arg;
	struct xfer *x = xe->x;

	xe->e = NULL;	/* the catalog has it now */
	xe->state = XENT_DONE;
	if (err) {
		xe->failed = xe->nseg;
		swap_entry_error(x, (uint32_t)(xe - x->ent), -1, err, "%s.entries"
				 "[%u]: the commit failed (%s): durability not "
				 "confirmed; the entry is kept and goes into the "
				 "next checkpoint", swap_op_name(x),
				 (unsigned)(xe - x->ent), strerror(-err));
	}
	assert(x->linking > 0);
	if (!--x->linking)
		batch_answer(x);
}

/* A durable v1 swap-out's record landed (catalog_link_durable): answer. */
static void put_done(void *arg, int err)
{
	struct xent *xe = arg;
	struct xfer *x = xe->x;
	char msg[200];

	xe->e = NULL;	/* the catalog has it now */
	x->linking--;
	if (err && !conn_closing(x->c)) {
		snprintf(msg, sizeof(msg), "swap_out: the commit failed (%s): "
			 "durability not confirmed; the entry is kept and goes "
			 "into the next checkpoint", strerror(-err));
		conn_send_error(x->c, x->id, err, -1, msg);
	} else if (!err && !conn_closing(x->c)) {
		reply_swap_out(x);
	}
	swap_end(x);
}

static bool durable(const struct xfer *x)
{
	return x->flags & KVS_FLAG_DURABLE ||
	       (!(x->flags & KVS_FLAG_CACHE) && !x->xf->cfg->cache);
}

static void finish_v1(struct xfer *x)
{
	struct xent *xe = &x->ent[0];
	struct conn *c = x->c;
	char msg[640];

	if (conn_closing(c)) {
		/* Nobody to tell: an unacknowledged swap-out is dropped. */
	} else if (x->failed) {
		snprintf(msg, sizeof(msg), "%s: %u of %u segments failed; first: %s",
			 swap_op_name(x), x->failed, x->nseg, x->errmsg);
		conn_send_error(c, x->id, x->err, -1, msg);
	} else if (x->out) {
		if (durable(x)) {
			/* Visible and answered once the record is durable. */
			x->linking++;
			catalog_link_durable(x->xf->cat, xe->e, &xe->op, put_done, xe);
			return;
		}
		catalog_link(x->xf->cat, xe->e);
		xe->e = NULL;
		reply_swap_out(x);
	} else {
		reply_swap_in(x);
	}
	swap_end(x);
}

static void finish(struct xfer *x)
{
	if (!x->batch) {
		finish_v1(x);
		return;
	}
	if (x->out && !conn_closing(x->c)) {
		bool dur = durable(x);

		/* One more so that a synchronous callback cannot answer early. */
		x->linking++;
		for (uint32_t i = 0; i < x->nent; i++) {
			struct xent *xe = &x->ent[i];

			if (xe->state != XENT_LIVE || xe->failed)
				continue;
			if (dur) {
				xe->state = XENT_LINKING;
				x->linking++;
				catalog_link_durable(x->xf->cat, xe->e, &xe->op,
						     entry_linked, xe);
			} else {
				catalog_link(x->xf->cat, xe->e);
				xe->e = NULL;
				xe->state = XENT_DONE;
			}
		}
		if (--x->linking)
			return;
	}
	batch_answer(x);
}

/* --- segment ends ----------------------------------------------------- */

void swap_seg_done(struct xseg *xs, int err, const char *what)
{
	struct xfer *x = xs->x;
	struct xfers *xf = x->xf;
	struct xent *xe = &x->ent[xs->ent];
	uint32_t k = xs->index - xe->seg0;
	char msg[512];

	x->done++;
	if (!err) {
		x->landed++;
		x->bytes += xs->len;
		if (x->out)
			xf->st->bytes_in += xs->len;
		else
			xf->st->bytes_out += xs->len;
		if (x->ngroups) {
			x->group_segs[xs->group]++;
			x->group_bytes[xs->group] += xs->len;
		}
	} else {
		if (x->batch)
			snprintf(msg, sizeof(msg), "%s.entries[%u].segments[%u]: %s: %s",
				 swap_op_name(x), xs->ent, k, what, strerror(-err));
		else
			snprintf(msg, sizeof(msg), "%s.segments[%u]: %s: %s",
				 swap_op_name(x), xs->index, what, strerror(-err));
		xe->failed++;
		if (!x->failed++) {
			x->err = err;
			snprintf(x->errmsg, sizeof(x->errmsg), "%s", msg);
		}
		if (err != -ECONNRESET && err != -EPIPE && err != -ECANCELED) {
			log_warn("client %s: request %llu: %s", conn_name(x->c),
				 (unsigned long long)x->id, msg);
			if (x->batch)
				conn_send_entry_error(x->c, x->id, err, xs->ent, k, msg);
			else
				conn_send_error(x->c, x->id, err, xs->index, msg);
		}
		/*
		 * Bytes proven damaged (their CRC, over the stored bytes read
		 * again into the daemon's memory: xfer.c) are never served
		 * again. A failed or short read proves nothing about them (the
		 * error may be transient), nor does a region whose memory
		 * changed under the read (EFAULT: the stored bytes matched):
		 * the entry stays, and the next swap-in reads and checks it
		 * again.
		 */
		if (!x->out && err == -EBADMSG)
			catalog_drop(xf->cat, xe->e);
	}
	if (x->ngroups && !--x->group_left[xs->group] && x->done < x->nseg &&
	    !x->cancelled && !conn_closing(x->c))
		send_group_done(x, xs->group);
	swap_try_finish(x);
}

/* Its segments not yet submitted will not be: the client is gone or the
 * request was cancelled. */
void swap_cancel_rest(struct xfer *x, int err, const char *why)
{
	xfer_dequeue(x);
	for (uint32_t i = x->next; i < x->nseg; i++) {
		struct xseg *xs = xfer_nth(x, i);
		struct xent *xe = &x->ent[xs->ent];

		if (xe->state != XENT_LIVE)
			continue;
		x->done++;
		x->failed++;
		xe->failed++;
		if (x->ngroups)
			x->group_left[xs->group]--;
	}
	if (!x->err) {
		x->err = err;
		snprintf(x->errmsg, sizeof(x->errmsg), "%s", why);
	}
	x->next = x->nseg;
}

