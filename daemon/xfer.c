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
 *
 * With verify on, a swap-in chain also ends with its last read: the loop
 * checks the segment's CRC32C over the region bytes, then sends the event
 * itself (or a checksum error). So a segment completes through the SEND's
 * completion, through its last read's (UD_SEG_TAIL), or through a failed
 * I/O's (UD_SEG_IO).
 *
 * Entries come from the catalog: a swap-out reserves one (or waits for
 * space), fills it, then links it; a swap-in holds a reference to one.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "conn.h"
#include "crc32c.h"
#include "log.h"
#include "region.h"
#include "xfer.h"

/* Extents, GiB slots crossed, the bounce block and the send. */
#define XFER_MAX_OPS (KVS_MAX_EXTENTS + 64 + 2)

/*
 * A request keeps at most 4 segments, or 8 MiB, in flight (whichever
 * allows more): enough to keep a device busy, few enough that a swap-in of
 * many layers gets its first layers first, so prefill can start on them.
 */
#define XFER_CAP_SEGS	4
#define XFER_CAP_BYTES	(8u << 20)

struct xseg {
	struct xfer *x;
	uint64_t off;		/* in the region */
	uint64_t len;
	uint32_t index;		/* in the request */
	uint32_t stored;	/* in the entry */
	int32_t bounce;		/* bounce block, or -1 */
	uint32_t lastlen;	/* bytes of the chain's last I/O */
	uint8_t evlen;
	uint8_t ev[23];		/* pre-encoded SegmentDone event */
} __attribute__((aligned(16)));

/*
 * One swap request. Owner: xfer.c; made by xfer_swap_in/out, freed by
 * xfer_end() once every segment is over and the final reply is sent.
 */
struct xfer {
	struct xfer *qnext;	/* run queue */
	struct xfers *xf;
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
	uint32_t inflight;	/* segments submitted, not finished */
	uint64_t inflight_bytes;
	bool throttled;		/* out of the run queue until one finishes */
	uint64_t bytes;
	int err;		/* first failure */
	char errmsg[200];
	/* Swap-out: the entry is made once its space is allocated. */
	uint32_t flags;		/* KVS_FLAG_* */
	uint32_t key_len;
	uint32_t meta_len;
	uint8_t *key;		/* in this allocation, after seg[] */
	uint8_t *meta;
	struct catalog_waiter waiter;	/* waiting for space */
	struct catalog_op op;		/* a durable link */
	struct xseg seg[];
} __attribute__((aligned(16)));

static const char *op_name(const struct xfer *x)
{
	return x->out ? "swap_out" : "swap_in";
}

static void enqueue(struct xfer *x)
{
	struct xfers *xf = x->xf;

	x->qnext = NULL;
	x->queued = true;
	if (xf->runq_tail)
		xf->runq_tail->qnext = x;
	else
		xf->runq_head = x;
	xf->runq_tail = x;
}

static struct xfer *xfer_new(struct xfers *xf, struct conn *c, struct region *r,
			     struct entry *e, uint64_t id, bool out,
			     uint32_t nseg, const ProtobufCBinaryData *key,
			     const ProtobufCBinaryData *meta)
{
	size_t sz = sizeof(struct xfer) + nseg * sizeof(struct xseg) +
		    (key ? key->len : 0) + (meta ? meta->len : 0);
	struct xfer *x = aligned_alloc(16, (sz + 15) & ~(size_t)15);

	if (!x)
		return NULL;
	memset(x, 0, sizeof(*x));
	x->xf = xf;
	x->c = c;
	x->r = r;
	x->e = e;
	x->id = id;
	x->out = out;
	x->nseg = nseg;
	x->key = (uint8_t *)&x->seg[nseg];
	if (key) {
		x->key_len = (uint32_t)key->len;
		memcpy(x->key, key->data, key->len);
	}
	x->meta = x->key + x->key_len;
	if (meta && meta->len) {
		x->meta_len = (uint32_t)meta->len;
		memcpy(x->meta, meta->data, meta->len);
	}
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

/* Starts x: takes the region and connection references. */
static void xfer_start(struct xfer *x)
{
	region_use(x->r);
	conn_xfer_begin(x->c);
}

/* Releases what a finished swap held, and the connection's count. */
static void xfer_end(struct xfer *x)
{
	struct conn *c = x->c;

	/* Swap-out failed or aborted: its blocks go back; swap-in: unref. */
	if (x->out)
		catalog_abandon(x->xf->cat, x->e);
	else
		catalog_read_end(x->xf->cat, x->e);
	region_unuse(x->r);
	free(x);
	conn_xfer_end(c);
}

static void reply_swap_out(struct xfer *x)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__SwapOutReply so = KVSWAP__V1__SWAP_OUT_REPLY__INIT;

	if (conn_closing(x->c))
		return;
	ev.has_id = 1;
	ev.id = x->id;
	so.has_segments = so.has_bytes = 1;
	so.segments = x->nseg;
	so.bytes = x->bytes;
	ev.body_case = KVSWAP__V1__EVENT__BODY_SWAP_OUT;
	ev.swap_out = &so;
	conn_send(x->c, &ev);
}

/* A durable swap-out's record landed (catalog_link_durable): answer. */
static void put_done(void *arg, int err)
{
	struct xfer *x = arg;
	char msg[200];

	x->e = NULL;	/* the catalog has it now */
	if (err && !conn_closing(x->c)) {
		snprintf(msg, sizeof(msg), "swap_out: the commit failed (%s): "
			 "durability not confirmed; the entry is kept and goes "
			 "into the next checkpoint", strerror(-err));
		conn_send_error(x->c, x->id, err, -1, msg);
	} else if (!err) {
		reply_swap_out(x);
	}
	xfer_end(x);
}

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

/* Ends a swap that never started: its error, then the references. */
static void abandon(struct xfer *x, int code, const char *msg)
{
	if (!conn_closing(x->c))
		conn_send_error(x->c, x->id, code, -1, msg);
	xfer_end(x);
}

static void place_retry(void *arg);

/* Runs swap-out x if its space can be had, parks it, or fails it. */
static void place(struct xfer *x)
{
	uint64_t lens[KVS_MAX_SEGMENTS];
	char err[512];	/* room for a path in the message */
	int r;

	for (uint32_t i = 0; i < x->nseg; i++)
		lens[i] = x->seg[i].len;
	r = catalog_reserve(x->xf->cat, x->key, x->key_len, x->meta, x->meta_len,
			    x->nseg, lens, x->flags & KVS_FLAG_PINNED, &x->e,
			    err, sizeof(err));
	if (r == -EAGAIN) {
		x->waiter.retry = place_retry;
		x->waiter.arg = x;
		catalog_wait(x->xf->cat, &x->waiter);
	} else if (r < 0) {
		abandon(x, r, err);
	} else {
		enqueue(x);
	}
}

/* Space came back (or may have): try again, unless the client left. */
static void place_retry(void *arg)
{
	struct xfer *x = arg;

	if (conn_closing(x->c))
		abandon(x, ECONNRESET, "client gone");
	else
		place(x);
}

/* Checks a SwapOut against the connection's regions; makes its xfer. */
static int swap_out_new(struct xfers *xf, struct conn *c, const Request *req,
			struct xfer **ret, char *err, size_t len)
{
	const Kvswap__V1__SwapOut *m = req->swap_out;
	uint32_t nseg = (uint32_t)m->n_segments;
	struct region *r;
	struct xfer *x;

	r = region_find(c, m->region);
	if (!r)
		return fail(err, len, ENOENT, "swap_out.region %u: no such "
			    "region on this connection", m->region);
	for (uint32_t i = 0; i < nseg; i++) {
		const Kvswap__V1__SegmentOut *s = m->segments[i];

		if (s->offset + s->length > r->size)
			return fail(err, len, EINVAL, "swap_out.segments[%u]: "
				    "bytes [%llu, %llu) exceed region %u of %llu "
				    "bytes", i, (unsigned long long)s->offset,
				    (unsigned long long)(s->offset + s->length),
				    r->id, (unsigned long long)r->size);
	}
	x = xfer_new(xf, c, r, NULL, req->id, true, nseg, &m->key,
		     m->has_metadata ? &m->metadata : NULL);
	if (!x)
		return fail(err, len, ENOMEM, "swap_out: out of memory");
	x->flags = m->flags;
	for (uint32_t i = 0; i < nseg; i++) {
		x->seg[i].off = m->segments[i]->offset;
		x->seg[i].len = m->segments[i]->length;
		x->seg[i].stored = i;
	}
	*ret = x;
	return 0;
}

void xfer_swap_out(struct xfers *xf, struct conn *c, const Request *req)
{
	struct xfer *x = NULL;
	char err[256];
	int r;

	r = swap_out_new(xf, c, req, &x, err, sizeof(err));
	if (r < 0) {
		conn_send_error(c, req->id, r, -1, err);
		return;
	}
	xfer_start(x);
	place(x);
}

/* Checks a SwapIn against the regions and the entry; makes its xfer. */
static int swap_in_new(struct xfers *xf, struct conn *c, const Request *req,
		       struct xfer **ret, char *err, size_t len)
{
	const Kvswap__V1__SwapIn *m = req->swap_in;
	uint32_t nseg = (uint32_t)m->n_segments;
	struct region *r;
	struct entry *e;
	struct xfer *x;

	r = region_find(c, m->region);
	if (!r)
		return fail(err, len, ENOENT, "swap_in.region %u: no such "
			    "region on this connection", m->region);
	e = catalog_get(xf->cat, m->key.data, m->key.len);
	if (!e)
		return fail(err, len, ENOENT, "swap_in.key: no such entry");
	for (uint32_t i = 0; i < nseg; i++) {
		const Kvswap__V1__SegmentIn *s = m->segments[i];

		if (s->index >= e->nseg)
			return fail(err, len, EINVAL, "swap_in.segments[%u].index "
				    "%u: the entry has %u segments", i, s->index,
				    e->nseg);
		if (s->offset + e->segs[s->index].len > r->size ||
		    s->offset + e->segs[s->index].len < s->offset)
			return fail(err, len, EINVAL, "swap_in.segments[%u]: "
				    "stored segment %u (%llu bytes) at offset "
				    "%llu exceeds region %u of %llu bytes", i,
				    s->index,
				    (unsigned long long)e->segs[s->index].len,
				    (unsigned long long)s->offset, r->id,
				    (unsigned long long)r->size);
	}
	x = xfer_new(xf, c, r, e, req->id, false, nseg, NULL, NULL);
	if (!x)
		return fail(err, len, ENOMEM, "swap_in: out of memory");
	for (uint32_t i = 0; i < nseg; i++) {
		x->seg[i].off = m->segments[i]->offset;
		x->seg[i].stored = m->segments[i]->index;
		x->seg[i].len = e->segs[x->seg[i].stored].len;
	}
	*ret = x;
	return 0;
}

void xfer_swap_in(struct xfers *xf, struct conn *c, const Request *req)
{
	struct xfer *x = NULL;
	char err[256];
	int r;

	r = swap_in_new(xf, c, req, &x, err, sizeof(err));
	if (r < 0) {
		conn_send_error(c, req->id, r, -1, err);
		return;
	}
	catalog_read_begin(xf->cat, x->e);
	xfer_start(x);
	enqueue(x);
}

static void finish(struct xfer *x)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__SwapInReply si = KVSWAP__V1__SWAP_IN_REPLY__INIT;
	struct xfers *xf = x->xf;
	struct conn *c = x->c;
	char msg[320];
	bool durable;

	ev.has_id = 1;
	ev.id = x->id;
	if (conn_closing(c)) {
		/* Nobody to tell: an unacknowledged swap-out is dropped. */
	} else if (x->failed) {
		snprintf(msg, sizeof(msg), "%s: %u of %u segments failed; first: %s",
			 op_name(x), x->failed, x->nseg, x->errmsg);
		conn_send_error(c, x->id, x->err, -1, msg);
	} else if (x->out) {
		durable = x->flags & KVS_FLAG_DURABLE ||
			  (!(x->flags & KVS_FLAG_CACHE) && !xf->cfg->cache);
		if (durable) {
			/* Visible and answered once the record is durable. */
			catalog_link_durable(xf->cat, x->e, &x->op, put_done, x);
			return;
		}
		catalog_link(xf->cat, x->e);
		x->e = NULL;
		reply_swap_out(x);
	} else {
		si.has_segments = si.has_bytes = si.has_metadata = 1;
		si.segments = x->nseg;
		si.bytes = x->bytes;
		si.metadata = (ProtobufCBinaryData){ x->e->meta_len, x->e->meta };
		ev.body_case = KVSWAP__V1__EVENT__BODY_SWAP_IN;
		ev.swap_in = &si;
		conn_send(c, &ev);
	}
	xfer_end(x);
}

/* Its segments not yet submitted will not be: the client is gone. */
static void cancel_rest(struct xfer *x)
{
	x->failed += x->nseg - x->next;
	x->done += x->nseg - x->next;
	if (!x->err) {
		x->err = -ECONNRESET;
		snprintf(x->errmsg, sizeof(x->errmsg), "client gone");
	}
	x->next = x->nseg;
}

static void try_finish(struct xfer *x)
{
	assert(x->done <= x->nseg);
	if (x->done == x->nseg)
		finish(x);
}

/* A segment is over: account for it and report a failure. */
static void seg_end(struct xseg *xs, int err, const char *what)
{
	struct xfer *x = xs->x;
	struct xfers *xf = x->xf;
	char msg[200];

	if (xs->bounce >= 0)
		xf->bounce_free[xf->nbounce_free++] = (uint32_t)xs->bounce;
	xs->bounce = -1;
	assert(xf->inflight > 0 && x->inflight > 0);
	xf->inflight--;
	x->inflight--;
	x->inflight_bytes -= xs->len;
	if (x->throttled) {
		x->throttled = false;
		if (conn_closing(x->c))
			cancel_rest(x);
		else
			enqueue(x);
	}
	x->done++;
	if (!err) {
		x->bytes += xs->len;
		if (x->out)
			xf->st->bytes_in += xs->len;
		else
			xf->st->bytes_out += xs->len;
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
			conn_send_error(x->c, x->id, err, xs->index, msg);
		}
		/*
		 * Bytes proven damaged (their CRC) are never served again. A
		 * failed or short read proves nothing about them (the error
		 * may be transient): the entry stays, and the next swap-in
		 * reads and checks it again.
		 */
		if (!x->out && err == -EBADMSG)
			catalog_drop(xf->cat, x->e);
	}
	try_finish(x);
}

struct op {
	uint8_t *addr;
	uint64_t foff;
	uint32_t len;
	uint32_t file;
	uint32_t buf;
};

/* Maps the segment onto I/O pieces: extent by extent, slot by slot. */
static unsigned seg_ops(struct xseg *xs, struct op *ops)
{
	const struct xfer *x = xs->x;
	const struct xfers *xf = x->xf;
	const struct sseg *ss = &x->e->segs[xs->stored];
	const struct sext *ext = &x->e->ext[ss->ext];
	uint64_t B = xf->block;
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
			assert(xs->bounce >= 0);
			ops[n++] = (struct op){ xf->bounce + (uint64_t)xs->bounce * B,
						foff, (uint32_t)B, ext[i].file, 0 };
			pos = xs->len;
		}
	}
	assert(n > 0 && n <= XFER_MAX_OPS);
	return n;
}

static void seg_send(struct xseg *xs, unsigned flags)
{
	struct io_uring_sqe *sqe = loop_sqe(xs->x->xf->loop);

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

static void seg_submit(struct xseg *xs)
{
	struct xfer *x = xs->x;
	struct xfers *xf = x->xf;
	uint64_t B = xf->block;
	uint64_t tail = xs->len % B;
	struct op ops[XFER_MAX_OPS];
	unsigned n;

	xf->inflight++;
	x->inflight++;
	x->inflight_bytes += xs->len;
	/*
	 * The checksum is of the bytes as they are now; a client that changes
	 * them before the final event gets EBADMSG on swap-in, not silence.
	 */
	if (x->out)
		x->e->segs[xs->stored].crc = crc32c(0, x->r->addr + xs->off, xs->len);
	if (tail) {
		/* One bounce block per chain in flight: never runs out. */
		assert(xf->nbounce_free > 0);
		xs->bounce = (int32_t)xf->bounce_free[--xf->nbounce_free];
		if (x->out) {
			uint8_t *b = xf->bounce + (uint64_t)xs->bounce * B;

			memcpy(b, x->r->addr + xs->off + xs->len - tail, tail);
			memset(b + tail, 0, B - tail);
		}
	}
	n = seg_ops(xs, ops);
	xs->lastlen = ops[n - 1].len;
	/* A chain must go in one submission. */
	loop_sq_reserve(xf->loop, n + 1);
	/*
	 * A swap-in whose last read needs userspace after it (a tail to copy,
	 * a checksum to verify) ends its chain there; the event follows.
	 */
	bool user_last = !x->out && (tail || xf->cfg->verify);

	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = loop_sqe(xf->loop);
		bool tail_read = user_last && i == n - 1;

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
	if (!user_last)
		seg_send(xs, 0);
}

/* The chain's last read landed: copy the tail, verify, then the event. */
static void seg_last(struct xseg *xs, int res)
{
	struct xfer *x = xs->x;
	struct xfers *xf = x->xf;
	uint64_t B = xf->block, tail = xs->len % B;
	uint8_t *dst = x->r->addr + xs->off;
	char what[160];

	if (res != (int)xs->lastlen) {
		xf->st->io_errors++;
		seg_end(xs, res < 0 ? res : -EIO, res < 0 ?
			"store read failed" : "short store read");
		return;
	}
	if (conn_closing(x->c)) {
		seg_end(xs, -ECONNRESET, "client gone");
		return;
	}
	if (tail)
		memcpy(dst + xs->len - tail, xf->bounce + (uint64_t)xs->bounce * B,
		       tail);
	if (xf->cfg->verify &&
	    crc32c(0, dst, xs->len) != x->e->segs[xs->stored].crc) {
		xf->st->checksum_errors++;
		snprintf(what, sizeof(what), "checksum mismatch: the stored bytes "
			 "are damaged; region bytes [%llu, %llu) are invalid",
			 (unsigned long long)xs->off,
			 (unsigned long long)(xs->off + xs->len));
		seg_end(xs, -EBADMSG, what);
		return;
	}
	loop_sq_reserve(xf->loop, 1);
	seg_send(xs, 0);
}

static void seg_cqe(void *ctx, enum ud_type type, void *p,
		    const struct io_uring_cqe *cqe)
{
	struct xseg *xs = p;
	struct conn *c = xs->x->c;
	int res = cqe->res;

	switch (type) {
	case UD_SEG_IO:
		/* Only a failed or short I/O posts a completion. */
		xs->x->xf->st->io_errors++;
		seg_end(xs, res < 0 ? res : -EIO,
			res < 0 ? (xs->x->out ? "store write failed"
					      : "store read failed")
				: "short store I/O");
		break;
	case UD_SEG_TAIL:
		seg_last(xs, res);
		break;
	case UD_SEG_SEND:
		if (res == xs->evlen) {
			seg_end(xs, 0, NULL);
		} else if (res == -EAGAIN && !conn_closing(c)) {
			/* The segment landed; its event waits for room. */
			conn_send_bytes(c, xs->ev, xs->evlen);
			seg_end(xs, 0, NULL);
		} else {
			seg_end(xs, res < 0 ? res : -EPIPE, "event send failed");
			conn_abort(c, res == -EPIPE || res == -ECONNRESET ?
				   NULL : "event send failed");
		}
		break;
	default:
		assert(!"xfer: not a segment completion");
	}
}

void xfers_pump(struct xfers *xf)
{
	while (xf->runq_head && xf->inflight < xf->cfg->queue_depth) {
		struct xfer *x = xf->runq_head;

		xf->runq_head = x->qnext;
		if (!xf->runq_head)
			xf->runq_tail = NULL;
		x->queued = false;
		if (x->inflight >= XFER_CAP_SEGS &&
		    x->inflight_bytes >= XFER_CAP_BYTES) {
			x->throttled = true;	/* back when one finishes */
			continue;
		}
		seg_submit(&x->seg[x->next++]);
		/* Round robin by segment: a small request is not stuck
		 * behind every segment of a large one. */
		if (x->next < x->nseg)
			enqueue(x);
	}
}

void xfers_conn_abort(struct xfers *xf, struct conn *c)
{
	struct xfer **pp = &xf->runq_head, *x, *dead = NULL;

	xf->runq_tail = NULL;
	while ((x = *pp)) {
		if (x->c != c) {
			xf->runq_tail = x;
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
		cancel_rest(x);
		try_finish(x);
	}
}

int xfers_init(struct xfers *xf, struct loop *lp, struct catalog *cat,
	       const struct config *cfg, struct stats *st, uint32_t block,
	       char *err, size_t len)
{
	size_t bytes = (size_t)cfg->queue_depth * block;
	__u64 tag = 0;
	struct iovec iov;
	int ret;

	memset(xf, 0, sizeof(*xf));
	xf->loop = lp;
	xf->cat = cat;
	xf->cfg = cfg;
	xf->st = st;
	xf->block = block;
	if (posix_memalign((void **)&xf->bounce, block, bytes)) {
		xf->bounce = NULL;
		snprintf(err, len, "out of memory");
		return -ENOMEM;
	}
	memset(xf->bounce, 0, bytes);
	xf->bounce_free = calloc(cfg->queue_depth, sizeof(uint32_t));
	if (!xf->bounce_free) {
		snprintf(err, len, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < cfg->queue_depth; i++)
		xf->bounce_free[xf->nbounce_free++] = cfg->queue_depth - 1 - i;
	iov = (struct iovec){ xf->bounce, bytes };
	ret = io_uring_register_buffers_update_tag(&lp->ring, 0, &iov, &tag, 1);
	if (ret < 0) {
		snprintf(err, len, "registering %zu bytes of bounce buffers: %s%s",
			 bytes, strerror(-ret), ret == -ENOMEM ?
			 " (RLIMIT_MEMLOCK too low: raise LimitMEMLOCK= or ulimit -l)"
			 : "");
		return ret;
	}
	/* Slot 0 is the bounce pool's. */
	lp->slot_map[0] |= 1;
	loop_on(lp, UD_SEG_IO, seg_cqe, xf);
	loop_on(lp, UD_SEG_SEND, seg_cqe, xf);
	loop_on(lp, UD_SEG_TAIL, seg_cqe, xf);
	return 0;
}

void xfers_fini(struct xfers *xf)
{
	free(xf->bounce);
	free(xf->bounce_free);
	xf->bounce = NULL;
	xf->bounce_free = NULL;
}
