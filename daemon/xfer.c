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
#include "crc32c.h"
#include "journal.h"
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

struct xfer {
	struct xfer *qnext;	/* run queue */
	struct server *srv;	/* for put_done() */
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
			     uint32_t nseg, const ProtobufCBinaryData *key,
			     const ProtobufCBinaryData *meta)
{
	size_t sz = sizeof(struct xfer) + nseg * sizeof(struct xseg) +
		    (key ? key->len : 0) + (meta ? meta->len : 0);
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

/* Starts x: takes the region and connection references, queues it. */
static void xfer_start(struct server *srv, struct xfer *x)
{
	x->r->users++;
	x->c->xfers++;
	enqueue(srv, x);
}

/* Releases what a finished swap held, and the connection's count. */
static void xfer_end(struct server *srv, struct xfer *x)
{
	struct conn *c = x->c;
	struct region *r = x->r;

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

static void reply_swap_out(struct server *srv, struct xfer *x)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__SwapOutReply so = KVSWAP__V1__SWAP_OUT_REPLY__INIT;

	if (x->c->closing)
		return;
	ev.has_id = 1;
	ev.id = x->id;
	so.has_segments = so.has_bytes = 1;
	so.segments = x->nseg;
	so.bytes = x->bytes;
	ev.body_case = KVSWAP__V1__EVENT__BODY_SWAP_OUT;
	ev.swap_out = &so;
	conn_send(srv, x->c, &ev);
}

/*
 * The index must end up as the log replays: a record queued later for the
 * same key wins. A durable swap-out is linked only when its record is
 * durable, so a later record for its key (a cache-mode swap-out, a
 * delete, an eviction, another durable swap-out) queued meanwhile marks it
 * superseded: it is then not linked, and its blocks stay allocated until
 * that later record is durable too.
 */
void xfer_supersede(struct server *srv, const void *key, size_t len)
{
	uint64_t h = index_hash(&srv->index, key, len);
	struct entry **pp = &srv->pending;

	while (*pp) {
		struct entry *p = *pp;

		if (p->hash == h && p->key_len == len && !memcmp(p->key, key, len)) {
			*pp = p->hnext;
			p->hnext = NULL;
			p->pending = false;
			p->superseded = true;
		} else {
			pp = &p->hnext;
		}
	}
}

static void pending_remove(struct server *srv, struct entry *e)
{
	struct entry **pp;

	for (pp = &srv->pending; *pp && *pp != e; pp = &(*pp)->hnext)
		;
	if (*pp)
		*pp = e->hnext;
	e->hnext = NULL;
	e->pending = false;
}

/*
 * A durable swap-out's PUT record is on stable storage (or its write
 * failed): link the entry and answer. The entry is linked even after a
 * failed metadata write: its data is whole, the record may have landed,
 * and freeing its blocks could let a recovered record point at reused
 * blocks. The next commit writes a checkpoint that includes it.
 */
static void put_done(void *arg, int err)
{
	struct xfer *x = arg;
	struct server *srv = x->srv;
	char msg[200];

	if (x->e->superseded) {
		/*
		 * Its blocks wait for the later record. Without memory to wait
		 * with, they are never freed rather than freed too soon.
		 */
		if (journal_hold(&srv->jr, x->e) < 0)
			log_err("out of memory holding a superseded entry: its "
				"blocks stay allocated");
	} else {
		pending_remove(srv, x->e);
		store_entry_put(&srv->store, index_put(&srv->index, x->e));
	}
	x->e = NULL;
	if (err && !x->c->closing) {
		snprintf(msg, sizeof(msg), "swap_out: the data is stored but the "
			 "metadata write failed (%s): durability not confirmed",
			 strerror(-err));
		conn_send_error(srv, x->c, x->id, err, -1, msg);
	} else if (!err) {
		reply_swap_out(srv, x);
	}
	xfer_end(srv, x);
}

/*
 * Drops an entry whose bytes could not be read back correctly: a DEL
 * record, and no one will read it again.
 */
static void drop_entry(struct server *srv, struct entry *e)
{
	if (!e->linked)
		return;
	index_del(&srv->index, e->key, e->key_len);
	xfer_supersede(srv, e->key, e->key_len);
	if (journal_del(&srv->jr, e, NULL, NULL) < 0)
		store_entry_put(&srv->store, e);
	log_warn("dropped entry of %llu bytes after a failed read",
		 (unsigned long long)e->size);
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

static void park(struct server *srv, struct xfer *x)
{
	x->qnext = NULL;
	if (srv->spaceq_tail)
		srv->spaceq_tail->qnext = x;
	else
		srv->spaceq_head = x;
	srv->spaceq_tail = x;
}

static uint64_t entry_blocks(const struct entry *e)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < e->next; i++)
		n += e->ext[i].nblocks;
	return n;
}

/*
 * Evicts least recently used entries, not pinned and not leased, until
 * `need` more bytes will be free. Their blocks return once the DEL
 * records are durable. Evicts nothing if even all of them would not do.
 * Returns the bytes evicted.
 */
static uint64_t evict(struct server *srv, uint64_t need)
{
	uint64_t got = 0, can = 0, now = now_ms();
	struct entry *e, *next;

	for (e = index_lru_first(&srv->index); e && can < need;
	     e = index_lru_next(&srv->index, e))
		if (e->lease_until <= now)
			can += entry_blocks(e) * srv->store.block;
	if (can < need)
		return 0;
	for (e = index_lru_first(&srv->index); e && got < need; e = next) {
		next = index_lru_next(&srv->index, e);
		if (e->lease_until > now)
			continue;
		got += entry_blocks(e) * srv->store.block;
		index_del(&srv->index, e->key, e->key_len);
		xfer_supersede(srv, e->key, e->key_len);
		if (journal_del(&srv->jr, e, NULL, NULL) < 0)
			store_entry_put(&srv->store, e);
		srv->st.evictions++;
	}
	if (got)
		log_debug("evicted %llu bytes", (unsigned long long)got);
	return got;
}

/*
 * Allocates the space of swap-out x and makes its entry. Returns 0, or
 * -EAGAIN when x must wait for evicted space, or -ENOSPC with a message.
 */
static int xfer_alloc(struct server *srv, struct xfer *x, char *err, size_t len)
{
	uint32_t counts[KVS_MAX_SEGMENTS], next = 0;
	uint64_t total = 0, blocks = 0, avail = store_avail(&srv->store);
	struct entry *e;

	for (uint32_t i = 0; i < x->nseg; i++) {
		total += x->seg[i].len;
		blocks += (x->seg[i].len + srv->store.block - 1) / srv->store.block;
	}
	if (blocks * srv->store.block > avail)
		goto out_full;
	for (uint32_t i = 0; i < x->nseg; i++) {
		uint32_t pref = (srv->rr_file + i) % srv->store.nfiles;
		int n = store_alloc(&srv->store, x->seg[i].len, pref,
				    srv->scratch + next, KVS_MAX_EXTENTS);

		if (n < 0) {
			store_free(&srv->store, srv->scratch, next);
			snprintf(err, len, "swap_out: the free space is too "
				 "fragmented: a segment would need more than %d "
				 "pieces", KVS_MAX_EXTENTS);
			return -ENOSPC;
		}
		counts[i] = (uint32_t)n;
		next += (uint32_t)n;
	}
	srv->rr_file = (srv->rr_file + x->nseg) % srv->store.nfiles;
	e = entry_new(x->key, x->key_len, x->meta, x->meta_len, x->nseg, next);
	if (!e) {
		store_free(&srv->store, srv->scratch, next);
		snprintf(err, len, "swap_out: out of memory");
		return -ENOMEM;
	}
	memcpy(e->ext, srv->scratch, next * sizeof(*e->ext));
	e->size = total;
	e->flags = x->flags & KVS_FLAG_PINNED ? ENTRY_PINNED : 0;
	for (uint32_t i = 0, k = 0; i < x->nseg; i++) {
		e->segs[i] = (struct sseg){ x->seg[i].len, k, counts[i], 0, 0 };
		k += counts[i];
	}
	x->e = e;
	return 0;

out_full:
	/* Room comes back when earlier evictions' records are durable. */
	if (evict(srv, blocks * srv->store.block - avail) ||
	    !journal_idle(&srv->jr))
		return -EAGAIN;
	snprintf(err, len, "swap_out: the store is full: the entry needs %llu "
		 "bytes, %llu of %llu are free, %llu pinned, the rest leased "
		 "or being read", (unsigned long long)(blocks * srv->store.block),
		 (unsigned long long)avail,
		 (unsigned long long)srv->store.capacity,
		 (unsigned long long)srv->index.pinned_bytes);
	return -ENOSPC;
}

/* Ends a swap that never started: its error, then the references. */
static void abandon(struct server *srv, struct xfer *x, int code,
		    const char *msg)
{
	if (!x->c->closing)
		conn_send_error(srv, x->c, x->id, code, -1, msg);
	xfer_end(srv, x);
}

/* Runs swap-out x if its space can be had, parks it, or fails it. */
static void place(struct server *srv, struct xfer *x)
{
	char err[256];
	int r = xfer_alloc(srv, x, err, sizeof(err));

	if (r == -EAGAIN)
		park(srv, x);
	else if (r < 0)
		abandon(srv, x, r, err);
	else
		enqueue(srv, x);
}

void xfer_space_retry(struct server *srv)
{
	struct xfer *x = srv->spaceq_head, *next;

	srv->spaceq_head = srv->spaceq_tail = NULL;
	for (; x; x = next) {
		next = x->qnext;
		if (x->c->closing)
			abandon(srv, x, ECONNRESET, "client gone");
		else
			place(srv, x);
	}
}

void xfer_swap_out(struct server *srv, struct conn *c, const Request *req)
{
	const Kvswap__V1__SwapOut *m = req->swap_out;
	uint32_t nseg = (uint32_t)m->n_segments;
	struct region *r;
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
	}
	x = xfer_new(c, r, NULL, req->id, true, nseg, &m->key,
		     m->has_metadata ? &m->metadata : NULL);
	if (!x)
		return reply_error(srv, c, req, ENOMEM, "swap_out: out of memory");
	x->flags = m->flags;
	for (uint32_t i = 0; i < nseg; i++) {
		x->seg[i].off = m->segments[i]->offset;
		x->seg[i].len = m->segments[i]->length;
		x->seg[i].stored = i;
	}
	r->users++;
	c->xfers++;
	place(srv, x);
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
	x = xfer_new(c, r, e, req->id, false, nseg, NULL, NULL);
	if (!x)
		return reply_error(srv, c, req, ENOMEM, "swap_in: out of memory");
	/* The entry stays allocated until this read is done with it. */
	e->refs++;
	index_touch(&srv->index, e);
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
	Kvswap__V1__SwapInReply si = KVSWAP__V1__SWAP_IN_REPLY__INIT;
	struct conn *c = x->c;
	char msg[320];
	bool durable;

	ev.has_id = 1;
	ev.id = x->id;
	if (c->closing) {
		/* Nobody to tell: an unacknowledged swap-out is dropped. */
	} else if (x->failed) {
		snprintf(msg, sizeof(msg), "%s: %u of %u segments failed; first: %s",
			 op_name(x), x->failed, x->nseg, x->errmsg);
		conn_send_error(srv, c, x->id, x->err, -1, msg);
	} else if (x->out) {
		durable = x->flags & KVS_FLAG_DURABLE ||
			  (!(x->flags & KVS_FLAG_CACHE) && !srv->cfg.cache);
		xfer_supersede(srv, x->key, x->key_len);
		if (durable) {
			/* Visible and answered once the record is durable. */
			x->e->hash = index_hash(&srv->index, x->key, x->key_len);
			x->e->pending = true;
			x->e->hnext = srv->pending;
			srv->pending = x->e;
			x->srv = srv;
			if (journal_put(&srv->jr, x->e, NULL, put_done, x) == 0)
				return;
			put_done(x, -ENOMEM);
			return;
		}
		/* Cache: visible now; the record follows in a later commit,
		 * and the replaced entry's blocks wait for it. */
		{
			struct entry *old = index_put(&srv->index, x->e);

			if (journal_put(&srv->jr, x->e, old, NULL, NULL) < 0)
				store_entry_put(&srv->store, old);
		}
		x->e = NULL;
		reply_swap_out(srv, x);
	} else {
		si.has_segments = si.has_bytes = si.has_metadata = 1;
		si.segments = x->nseg;
		si.bytes = x->bytes;
		si.metadata = (ProtobufCBinaryData){ x->e->meta_len, x->e->meta };
		ev.body_case = KVSWAP__V1__EVENT__BODY_SWAP_IN;
		ev.swap_in = &si;
		conn_send(srv, c, &ev);
	}
	xfer_end(srv, x);
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
	x->inflight--;
	x->inflight_bytes -= xs->len;
	if (x->throttled) {
		x->throttled = false;
		if (x->c->closing)
			cancel_rest(x);
		else
			enqueue(srv, x);
	}
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
		/* Bytes that cannot be read back right are never served. */
		if (!x->out && (err == -EIO || err == -EBADMSG))
			drop_entry(srv, x->e);
		if (err == -EIO)
			srv->st.io_errors++;
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
	struct io_uring_sqe *sqe = loop_sqe(&srv->loop);

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
	x->inflight++;
	x->inflight_bytes += xs->len;
	/*
	 * The checksum is of the bytes as they are now; a client that changes
	 * them before the final event gets EBADMSG on swap-in, not silence.
	 */
	if (x->out)
		x->e->segs[xs->stored].crc = crc32c(0, x->r->addr + xs->off, xs->len);
	if (tail) {
		xs->bounce = (int32_t)srv->bounce_free[--srv->nbounce_free];
		if (x->out) {
			uint8_t *b = srv->bounce + (uint64_t)xs->bounce * B;

			memcpy(b, x->r->addr + xs->off + xs->len - tail, tail);
			memset(b + tail, 0, B - tail);
		}
	}
	n = seg_ops(srv, xs, ops);
	xs->lastlen = ops[n - 1].len;
	/* A chain must go in one submission. */
	loop_sq_reserve(&srv->loop, n + 1);
	/*
	 * A swap-in whose last read needs userspace after it (a tail to copy,
	 * a checksum to verify) ends its chain there; the event follows.
	 */
	bool user_last = !x->out && (tail || srv->cfg.verify);

	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = loop_sqe(&srv->loop);
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
		seg_send(srv, xs, 0);
}

/* The chain's last read landed: copy the tail, verify, then the event. */
static void seg_last(struct server *srv, struct xseg *xs, int res)
{
	struct xfer *x = xs->x;
	uint64_t B = srv->store.block, tail = xs->len % B;
	uint8_t *dst = x->r->addr + xs->off;
	char what[160];

	if (res != (int)xs->lastlen) {
		seg_end(srv, xs, res < 0 ? res : -EIO, res < 0 ?
			"store read failed" : "short store read");
		return;
	}
	if (x->c->closing) {
		seg_end(srv, xs, -ECONNRESET, "client gone");
		return;
	}
	if (tail)
		memcpy(dst + xs->len - tail, srv->bounce + (uint64_t)xs->bounce * B,
		       tail);
	if (srv->cfg.verify &&
	    crc32c(0, dst, xs->len) != x->e->segs[xs->stored].crc) {
		srv->st.checksum_errors++;
		snprintf(what, sizeof(what), "checksum mismatch: the stored bytes "
			 "are damaged; region bytes [%llu, %llu) are invalid",
			 (unsigned long long)xs->off,
			 (unsigned long long)(xs->off + xs->len));
		seg_end(srv, xs, -EBADMSG, what);
		return;
	}
	loop_sq_reserve(&srv->loop, 1);
	seg_send(srv, xs, 0);
}

void xfer_seg_cqe(struct server *srv, enum ud_type type, void *p, int res)
{
	struct xseg *xs = p;
	struct conn *c = xs->x->c;

	switch (type) {
	case UD_SEG_IO:
		/* Only a failed or short I/O posts a completion. */
		seg_end(srv, xs, res < 0 ? res : -EIO,
			res < 0 ? (xs->x->out ? "store write failed"
					      : "store read failed")
				: "short store I/O");
		break;
	case UD_SEG_TAIL:
		seg_last(srv, xs, res);
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
		if (x->inflight >= XFER_CAP_SEGS &&
		    x->inflight_bytes >= XFER_CAP_BYTES) {
			x->throttled = true;	/* back when one finishes */
			continue;
		}
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
		cancel_rest(x);
		try_finish(srv, x);
	}
}
