/* SPDX-License-Identifier: MIT */
/*
 * The data path. Each segment moves in one linked chain:
 *
 *   swap-out:  WRITE_FIXED ... WRITE_FIXED -> SEND(segment event)
 *   swap-in:   READ_FIXED ... READ_FIXED -> SEND(segment event)
 *
 * one WRITE/READ per extent (and per GiB slot of the region), every I/O
 * with IOSQE_CQE_SKIP_SUCCESS. On success the only completion is the
 * SEND's: the client hears of the segment with no userspace work between
 * the disk and the socket. On failure the failing I/O posts the only
 * completion and the kernel drops the rest of the chain, send included.
 *
 * A segment whose length is not a multiple of the block size moves its
 * last partial block through a daemon-owned bounce block (fixed buffer 0):
 * swap-out copies the tail into it before submitting; swap-in ends the
 * chain with the bounce read, copies exactly the tail bytes into the
 * region, then sends the event. The daemon never writes client memory
 * outside [offset, offset + length).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "region.h"
#include "xfer.h"

/* Extents, GiB slots crossed, the bounce block and the send. */
#define XFER_MAX_OPS (KVS_MAX_EXTENTS + 64 + 2)

struct xseg {
	struct xfer *x;
	uint64_t off;		/* in the region */
	uint64_t len;
	uint32_t index;		/* in the request */
	uint32_t stored;	/* in the entry */
	int32_t bounce;		/* bounce block, or -1 */
	uint8_t evlen;
	uint8_t ev[27];		/* pre-encoded SegmentDone event */
} __attribute__((aligned(16)));

struct xfer {
	struct xfer *qnext;	/* run queue */
	struct conn *c;
	struct region *r;
	struct entry *e;	/* swap-out: the new entry; swap-in: a ref */
	uint64_t id;
	bool out;
	bool queued;
	uint32_t nseg;
	uint32_t next;		/* next segment to submit */
	uint32_t done;		/* segments finished, well or not */
	uint32_t failed;
	uint64_t bytes;
	int err;		/* first failure */
	char errmsg[200];
	struct xseg seg[];
} __attribute__((aligned(16)));

static const char *op_name(const struct xfer *x)
{
	return x->out ? "swap_out" : "swap_in";
}

static void enqueue(struct server *srv, struct xfer *x)
{
	x->qnext = NULL;
	x->queued = true;
	if (srv->runq_tail)
		srv->runq_tail->qnext = x;
	else
		srv->runq_head = x;
	srv->runq_tail = x;
}

static struct xfer *xfer_new(struct conn *c, struct region *r,
			     struct entry *e, uint64_t id, bool out,
			     uint32_t nseg)
{
	size_t sz = sizeof(struct xfer) + nseg * sizeof(struct xseg);
	struct xfer *x = aligned_alloc(16, (sz + 15) & ~(size_t)15);

	if (!x)
		return NULL;
	memset(x, 0, sizeof(*x));
	x->c = c;
	x->r = r;
	x->e = e;
	x->id = id;
	x->out = out;
	x->nseg = nseg;
	for (uint32_t i = 0; i < nseg; i++) {
		Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
		Kvswap__V1__SegmentDone sd = KVSWAP__V1__SEGMENT_DONE__INIT;
		struct xseg *xs = &x->seg[i];

		memset(xs, 0, sizeof(*xs));
		xs->x = x;
		xs->index = i;
		xs->bounce = -1;
		sd.has_index = 1;
		sd.index = i;
		ev.has_id = 1;
		ev.id = id;
		ev.body_case = KVSWAP__V1__EVENT__BODY_SEGMENT;
		ev.segment = &sd;
		/* At most 19 bytes: two varints and two tags. */
		xs->evlen = (uint8_t)kvswap__v1__event__pack(&ev, xs->ev);
	}
	return x;
}

/* Starts x: takes the region and connection references, queues it. */
static void xfer_start(struct server *srv, struct xfer *x)
{
	x->r->users++;
	x->c->xfers++;
	enqueue(srv, x);
}

static void reply_error(struct server *srv, struct conn *c, const Request *req,
			int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void reply_error(struct server *srv, struct conn *c, const Request *req,
			int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_send_error(srv, c, req->id, code, -1, msg);
}

void xfer_swap_out(struct server *srv, struct conn *c, const Request *req)
{
	const Kvswap__V1__SwapOut *m = req->swap_out;
	uint32_t nseg = (uint32_t)m->n_segments, next = 0;
	uint32_t counts[KVS_MAX_SEGMENTS];
	uint64_t total = 0, blocks = 0;
	struct region *r;
	struct entry *e;
	struct xfer *x;

	r = conn_region(c, m->region);
	if (!r)
		return reply_error(srv, c, req, ENOENT, "swap_out.region %u: no "
				   "such region on this connection", m->region);
	for (uint32_t i = 0; i < nseg; i++) {
		const Kvswap__V1__SegmentOut *s = m->segments[i];

		if (s->offset + s->length > r->size)
			return reply_error(srv, c, req, EINVAL,
					   "swap_out.segments[%u]: bytes [%llu, %llu) "
					   "exceed region %u of %llu bytes", i,
					   (unsigned long long)s->offset,
					   (unsigned long long)(s->offset + s->length),
					   r->id, (unsigned long long)r->size);
		total += s->length;
		blocks += (s->length + srv->store.block - 1) / srv->store.block;
	}
	if (blocks * srv->store.block > store_avail(&srv->store))
		goto out_nospc;
	for (uint32_t i = 0; i < nseg; i++) {
		uint32_t pref = (srv->rr_file + i) % srv->store.nfiles;
		int n = store_alloc(&srv->store, m->segments[i]->length, pref,
				    srv->scratch + next, KVS_MAX_EXTENTS);

		if (n < 0) {
			store_free(&srv->store, srv->scratch, next);
			goto out_nospc;
		}
		counts[i] = (uint32_t)n;
		next += (uint32_t)n;
	}
	srv->rr_file = (srv->rr_file + nseg) % srv->store.nfiles;
	e = entry_new(m->key.data, (uint32_t)m->key.len, m->metadata.data,
		      m->has_metadata ? (uint32_t)m->metadata.len : 0, nseg, next);
	x = e ? xfer_new(c, r, e, req->id, true, nseg) : NULL;
	if (!x) {
		free(e);
		store_free(&srv->store, srv->scratch, next);
		return reply_error(srv, c, req, ENOMEM, "swap_out: out of memory");
	}
	memcpy(e->ext, srv->scratch, next * sizeof(*e->ext));
	e->size = total;
	for (uint32_t i = 0, k = 0; i < nseg; i++) {
		e->segs[i] = (struct sseg){ m->segments[i]->length, k, counts[i] };
		k += counts[i];
		x->seg[i].off = m->segments[i]->offset;
		x->seg[i].len = m->segments[i]->length;
		x->seg[i].stored = i;
	}
	xfer_start(srv, x);
	return;

out_nospc:
	if (blocks * srv->store.block <= store_avail(&srv->store))
		return reply_error(srv, c, req, ENOSPC, "swap_out: the free space "
				   "is too fragmented: a segment would need more "
				   "than %d pieces", KVS_MAX_EXTENTS);
	reply_error(srv, c, req, ENOSPC, "swap_out: the store is full: the entry "
		    "needs %llu bytes, %llu of %llu are free",
		    (unsigned long long)(blocks * srv->store.block),
		    (unsigned long long)store_avail(&srv->store),
		    (unsigned long long)srv->store.capacity);
}

void xfer_swap_in(struct server *srv, struct conn *c, const Request *req)
{
	const Kvswap__V1__SwapIn *m = req->swap_in;
	uint32_t nseg = (uint32_t)m->n_segments;
	struct region *r;
	struct entry *e;
	struct xfer *x;

	r = conn_region(c, m->region);
	if (!r)
		return reply_error(srv, c, req, ENOENT, "swap_in.region %u: no "
				   "such region on this connection", m->region);
	e = index_get(&srv->index, m->key.data, m->key.len);
	if (!e)
		return reply_error(srv, c, req, ENOENT, "swap_in.key: no such entry");
	for (uint32_t i = 0; i < nseg; i++) {
		const Kvswap__V1__SegmentIn *s = m->segments[i];

		if (s->index >= e->nseg)
			return reply_error(srv, c, req, EINVAL,
					   "swap_in.segments[%u].index %u: the entry "
					   "has %u segments", i, s->index, e->nseg);
		if (s->offset + e->segs[s->index].len > r->size ||
		    s->offset + e->segs[s->index].len < s->offset)
			return reply_error(srv, c, req, EINVAL,
					   "swap_in.segments[%u]: stored segment %u "
					   "(%llu bytes) at offset %llu exceeds region "
					   "%u of %llu bytes", i, s->index,
					   (unsigned long long)e->segs[s->index].len,
					   (unsigned long long)s->offset, r->id,
					   (unsigned long long)r->size);
	}
	x = xfer_new(c, r, e, req->id, false, nseg);
	if (!x)
		return reply_error(srv, c, req, ENOMEM, "swap_in: out of memory");
	/* The entry stays allocated until this read is done with it. */
	e->refs++;
	for (uint32_t i = 0; i < nseg; i++) {
		x->seg[i].off = m->segments[i]->offset;
		x->seg[i].stored = m->segments[i]->index;
		x->seg[i].len = e->segs[x->seg[i].stored].len;
	}
	xfer_start(srv, x);
}

static void finish(struct server *srv, struct xfer *x)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__SwapOutReply so = KVSWAP__V1__SWAP_OUT_REPLY__INIT;
	Kvswap__V1__SwapInReply si = KVSWAP__V1__SWAP_IN_REPLY__INIT;
	struct conn *c = x->c;
	struct region *r = x->r;
	char msg[320];

	ev.has_id = 1;
	ev.id = x->id;
	if (c->closing) {
		/* Nobody to tell: an unacknowledged swap-out is dropped. */
	} else if (x->failed) {
		snprintf(msg, sizeof(msg), "%s: %u of %u segments failed; first: %s",
			 op_name(x), x->failed, x->nseg, x->errmsg);
		conn_send_error(srv, c, x->id, x->err, -1, msg);
	} else if (x->out) {
		/* Visible from now on; a replaced entry is freed once unread. */
		store_entry_put(&srv->store, index_put(&srv->index, x->e));
		x->e = NULL;
		so.has_segments = so.has_bytes = 1;
		so.segments = x->nseg;
		so.bytes = x->bytes;
		ev.body_case = KVSWAP__V1__EVENT__BODY_SWAP_OUT;
		ev.swap_out = &so;
		conn_send(srv, c, &ev);
	} else {
		si.has_segments = si.has_bytes = si.has_metadata = 1;
		si.segments = x->nseg;
		si.bytes = x->bytes;
		si.metadata = (ProtobufCBinaryData){ x->e->meta_len, x->e->meta };
		ev.body_case = KVSWAP__V1__EVENT__BODY_SWAP_IN;
		ev.swap_in = &si;
		conn_send(srv, c, &ev);
	}
	/* Swap-out failed or aborted: its blocks go back; swap-in: unref. */
	store_entry_put(&srv->store, x->e);
	r->users--;
	if (r->dying && !r->users && !c->closing) {
		int ret = region_release(srv, r);

		if (ret < 0)
			conn_region_gone(srv, r, ret);
	}
	free(x);
	conn_xfer_done(srv, c);
}

static void try_finish(struct server *srv, struct xfer *x)
{
	if (x->done == x->nseg)
		finish(srv, x);
}

/* A segment is over: account for it and report a failure. */
static void seg_end(struct server *srv, struct xseg *xs, int err,
		    const char *what)
{
	struct xfer *x = xs->x;
	char msg[200];

	if (xs->bounce >= 0)
		srv->bounce_free[srv->nbounce_free++] = (uint32_t)xs->bounce;
	xs->bounce = -1;
	srv->inflight--;
	x->done++;
	if (!err) {
		x->bytes += xs->len;
		if (x->out)
			srv->st.bytes_in += xs->len;
		else
			srv->st.bytes_out += xs->len;
	} else {
		snprintf(msg, sizeof(msg), "%s.segments[%u]: %s: %s", op_name(x),
			 xs->index, what, strerror(-err));
		if (!x->failed++) {
			x->err = err;
			memcpy(x->errmsg, msg, sizeof(x->errmsg));
		}
		if (err != -ECONNRESET && err != -EPIPE) {
			log_warn("client %s: request %llu: %s", conn_name(x->c),
				 (unsigned long long)x->id, msg);
			conn_send_error(srv, x->c, x->id, err, xs->index, msg);
		}
	}
	try_finish(srv, x);
}

struct op {
	uint8_t *addr;
	uint64_t foff;
	uint32_t len;
	uint32_t file;
	uint32_t buf;
};

/* Maps the segment onto I/O pieces: extent by extent, slot by slot. */
static unsigned seg_ops(struct server *srv, struct xseg *xs, struct op *ops)
{
	const struct xfer *x = xs->x;
	const struct sseg *ss = &x->e->segs[xs->stored];
	const struct sext *ext = &x->e->ext[ss->ext];
	uint64_t B = srv->store.block;
	uint64_t aligned = xs->len & ~(B - 1), pos = 0;
	unsigned n = 0;

	for (uint32_t i = 0; i < ss->next; i++) {
		uint64_t foff = ext[i].block * B;
		uint64_t fend = foff + (uint64_t)ext[i].nblocks * B;

		while (foff < fend && pos < aligned) {
			uint64_t room, len;
			uint32_t buf = region_buf(x->r, xs->off + pos, &room);

			len = fend - foff;
			if (len > aligned - pos)
				len = aligned - pos;
			if (len > room)
				len = room;
			ops[n++] = (struct op){ x->r->addr + xs->off + pos, foff,
						(uint32_t)len, ext[i].file, buf };
			pos += len;
			foff += len;
		}
		if (pos == aligned && aligned != xs->len && foff < fend) {
			ops[n++] = (struct op){ srv->bounce + (uint64_t)xs->bounce * B,
						foff, (uint32_t)B, ext[i].file, 0 };
			pos = xs->len;
		}
	}
	return n;
}

static void seg_send(struct server *srv, struct xseg *xs, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&srv->ring);

	/*
	 * MSG_DONTWAIT: a client whose socket is full gets -EAGAIN here and its
	 * event goes to its backlog, instead of the chain holding a queue slot
	 * (and every other client) until it reads.
	 */
	io_uring_prep_send(sqe, xs->x->c->fd, xs->ev, xs->evlen,
			   MSG_NOSIGNAL | MSG_DONTWAIT);
	io_uring_sqe_set_data64(sqe, ud_make(xs, UD_SEG_SEND));
	sqe->flags |= flags;
}

static void seg_submit(struct server *srv, struct xseg *xs)
{
	struct xfer *x = xs->x;
	uint64_t B = srv->store.block;
	uint64_t tail = xs->len % B;
	struct op ops[XFER_MAX_OPS];
	unsigned n;

	srv->inflight++;
	if (tail) {
		xs->bounce = (int32_t)srv->bounce_free[--srv->nbounce_free];
		if (x->out) {
			uint8_t *b = srv->bounce + (uint64_t)xs->bounce * B;

			memcpy(b, x->r->addr + xs->off + xs->len - tail, tail);
			memset(b + tail, 0, B - tail);
		}
	}
	n = seg_ops(srv, xs, ops);
	/* A chain must go in one submission. */
	server_sq_reserve(srv, n + 1);
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&srv->ring);
		bool tail_read = !x->out && tail && i == n - 1;

		if (x->out)
			io_uring_prep_write_fixed(sqe, (int)ops[i].file, ops[i].addr,
						  ops[i].len, ops[i].foff,
						  (int)ops[i].buf);
		else
			io_uring_prep_read_fixed(sqe, (int)ops[i].file, ops[i].addr,
						 ops[i].len, ops[i].foff,
						 (int)ops[i].buf);
		sqe->flags |= IOSQE_FIXED_FILE;
		if (tail_read) {
			io_uring_sqe_set_data64(sqe, ud_make(xs, UD_SEG_TAIL));
		} else {
			sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
			io_uring_sqe_set_data64(sqe, ud_make(xs, UD_SEG_IO));
		}
	}
	if (x->out || !tail)
		seg_send(srv, xs, 0);
}

void xfer_seg_cqe(struct server *srv, enum ud_type type, void *p, int res)
{
	struct xseg *xs = p;
	struct conn *c = xs->x->c;
	uint64_t B = srv->store.block;

	switch (type) {
	case UD_SEG_IO:
		/* Only a failed or short I/O posts a completion. */
		seg_end(srv, xs, res < 0 ? res : -EIO,
			res < 0 ? (xs->x->out ? "store write failed"
					      : "store read failed")
				: "short store I/O");
		break;
	case UD_SEG_TAIL:
		if (res != (int)B) {
			seg_end(srv, xs, res < 0 ? res : -EIO, res < 0 ?
				"store read failed" : "short store read");
		} else if (c->closing) {
			seg_end(srv, xs, -ECONNRESET, "client gone");
		} else {
			uint64_t tail = xs->len % B;

			memcpy(xs->x->r->addr + xs->off + xs->len - tail,
			       srv->bounce + (uint64_t)xs->bounce * B, tail);
			server_sq_reserve(srv, 1);
			seg_send(srv, xs, 0);
		}
		break;
	case UD_SEG_SEND:
		if (res == xs->evlen) {
			seg_end(srv, xs, 0, NULL);
		} else if (res == -EAGAIN && !c->closing) {
			/* The segment landed; its event waits for room. */
			conn_send_bytes(srv, c, xs->ev, xs->evlen);
			seg_end(srv, xs, 0, NULL);
		} else {
			seg_end(srv, xs, res < 0 ? res : -EPIPE, "event send failed");
			conn_abort(srv, c, res == -EPIPE || res == -ECONNRESET ?
				   NULL : "event send failed");
		}
		break;
	default:
		break;
	}
}

void xfer_pump(struct server *srv)
{
	while (srv->runq_head && srv->inflight < srv->cfg.queue_depth) {
		struct xfer *x = srv->runq_head;

		srv->runq_head = x->qnext;
		if (!srv->runq_head)
			srv->runq_tail = NULL;
		x->queued = false;
		seg_submit(srv, &x->seg[x->next++]);
		/* Round robin by segment: a small request is not stuck
		 * behind every segment of a large one. */
		if (x->next < x->nseg)
			enqueue(srv, x);
	}
}

void xfer_conn_abort(struct server *srv, struct conn *c)
{
	struct xfer **pp = &srv->runq_head, *x, *dead = NULL;

	srv->runq_tail = NULL;
	while ((x = *pp)) {
		if (x->c != c) {
			srv->runq_tail = x;
			pp = &x->qnext;
			continue;
		}
		*pp = x->qnext;
		x->queued = false;
		x->qnext = dead;
		dead = x;
	}
	while ((x = dead)) {
		dead = x->qnext;
		x->failed += x->nseg - x->next;
		x->done += x->nseg - x->next;
		if (!x->err) {
			x->err = -ECONNRESET;
			snprintf(x->errmsg, sizeof(x->errmsg), "client gone");
		}
		x->next = x->nseg;
		try_finish(srv, x);
	}
}
