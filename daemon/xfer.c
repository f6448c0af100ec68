/* SPDX-License-Identifier: MIT */
/*
 * The data path's I/O chains (xfer.h). Each segment moves in one linked
 * chain:
 *
 *   swap-out:  WRITE_FIXED ... WRITE_FIXED [-> SEND(segment event)]
 *   swap-in:   READ_FIXED ... READ_FIXED [-> SEND(segment event)]
 *
 * one WRITE/READ per extent (and per GiB slot of the region), every I/O
 * with IOSQE_CQE_SKIP_SUCCESS. With a linked SEND (v1 requests, batches
 * that asked for segment events), on success the only completion is the
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
 * A chain also ends with its last I/O, completed in the loop, when the
 * daemon verifies a swap-in's CRC32C before the event, and for batch
 * segments without an event of their own (the loop counts them towards
 * their group). So a segment completes through the SEND's completion,
 * through its last I/O's (UD_SEG_TAIL), or through a failed I/O's
 * (UD_SEG_IO); then xf->seg_done (swap.c) accounts for it.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "conn.h"
#include "crc32c.h"
#include "log.h"
#include "region.h"
#include "tenant.h"
#include "xfer.h"

/*
 * A chain's I/Os run one after another (linked), so what a chain keeps at
 * the device is one piece: at most XFER_PIECE bytes, more only for a
 * segment that would otherwise take over XFER_MAX_PIECES of them. Without
 * pieces a 64 MiB segment is one 64 MiB read the device serves before
 * anything queued after it: every other tenant's 4 KiB waits that long.
 * 1 MiB: a segment of up to 1 MiB stays one I/O (512 KiB pieces cost
 * 1 MiB swap-ins 10% of their throughput and 18% more daemon CPU per GiB
 * in bench/compare.sh); what a small request waits behind is bounded by
 * queue-bytes, not by the piece.
 */
#define XFER_PIECE	(1u << 20)
#define XFER_MAX_PIECES	64

/* Extents, pieces, GiB slots crossed, the bounce block and the send. */
#define XFER_MAX_OPS (KVS_MAX_EXTENTS + XFER_MAX_PIECES + 64 + 2)

/* The largest I/O of segment len's chain (a multiple of the block). */
static uint64_t seg_piece(uint64_t len, uint64_t block)
{
	uint64_t p = (len + XFER_MAX_PIECES - 1) / XFER_MAX_PIECES;

	p = (p + block - 1) / block * block;
	return p > XFER_PIECE ? p : XFER_PIECE;
}

/* What a segment's chain keeps at the device: its largest piece. */
static uint64_t seg_weight(const struct xseg *xs)
{
	uint64_t p = seg_piece(xs->len, xs->x->xf->block);

	return xs->len < p ? xs->len : p;
}

/* --- scheduling (fair.c) -------------------------------------------- */

/* The scheduling group of a connection: its tenant (set at accept). */
static uint64_t group_key(const struct conn *c)
{
	return c->tenant->id;
}

int xfer_attach(struct xfer *x)
{
	return fair_attach(&x->xf->fair, &x->fq, x->c, group_key(x->c));
}

void xfer_detach(struct xfer *x)
{
	fair_detach(&x->xf->fair, &x->fq);
}

void xfer_enqueue(struct xfer *x)
{
	assert(!x->fq.queued);
	/* Segments of entries that will not move are skipped. */
	while (x->next < x->nseg && x->ent[xfer_nth(x, x->next)->ent].state != XENT_LIVE)
		x->next++;
	if (x->next >= x->nseg)
		return;
	x->fq.weight = seg_weight(xfer_nth(x, x->next));
	fair_enqueue(&x->xf->fair, &x->fq);
}

void xfer_dequeue(struct xfer *x)
{
	fair_dequeue(&x->xf->fair, &x->fq);
}

/* The chain's resources go back; then the request layer accounts. */
static void seg_end(struct xseg *xs, int err, const char *what)
{
	struct xfer *x = xs->x;
	struct xfers *xf = x->xf;

	if (xs->bounce >= 0)
		xf->bounce_free[xf->nbounce_free++] = (uint32_t)xs->bounce;
	xs->bounce = -1;
	assert(xf->inflight > 0 && x->inflight > 0);
	xf->inflight--;
	x->inflight--;
	if (fair_ended(&xf->fair, &x->fq, seg_weight(xs)) &&
	    !x->cancelled && !conn_closing(x->c))
		xfer_enqueue(x);	/* it was at its cap */
	xf->seg_done(xs, err, what);
}

static struct entry *seg_entry(const struct xseg *xs)
{
	return xs->x->ent[xs->ent].e;
}

static void check_start(struct xseg *xs);

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
	const struct entry *e = seg_entry(xs);
	const struct sseg *ss = &e->segs[xs->stored];
	const struct sext *ext = &e->ext[ss->ext];
	uint64_t B = xf->block;
	uint64_t aligned = xs->len & ~(B - 1), pos = 0;
	uint64_t piece = seg_piece(xs->len, B);
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
			if (len > piece)
				len = piece;
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
	fair_started(&xf->fair, &x->fq, seg_weight(xs));
	/*
	 * The checksum is of the bytes as they are now; a client that changes
	 * them before the final event gets EBADMSG on swap-in, not silence.
	 * A client that computed it itself spares the daemon's core.
	 */
	if (x->out) {
		const struct xent *xe = &x->ent[xs->ent];

		seg_entry(xs)->segs[xs->stored].crc = xe->crcs ?
			xe->crcs[xs->stored] :
			crc32c(0, x->r->addr + xs->off, xs->len);
	}
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
	 * A chain whose last I/O needs userspace after it (a tail to copy, a
	 * checksum to verify, no event of its own) ends there.
	 */
	bool user_last = !xs->evlen ||
			 (!x->out && (tail || (xf->cfg->verify && !x->client_crc)));

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

/* --- a checksum mismatch: the stored bytes, or the client's memory? --- */

/*
 * The region's bytes after a swap-in do not match the CRC stored with the
 * segment. Either the stored bytes are damaged, or the region's memory
 * changed under the read: the client wrote it, or punched a hole in its
 * memfd (the read then landed in pages the memfd no longer holds, and the
 * region shows zeros). Only the first proves the entry bad, so before
 * anything is dropped the segment is read again, from the store into the
 * daemon's own memory, a chunk at a time on the ring (the loop never
 * waits), and checked there. Rare: a buffer is allocated per check.
 */
#define CHECK_CHUNK	(1u << 20)

struct xcheck {
	uint8_t *buf;		/* CHECK_CHUNK, block aligned (O_DIRECT) */
	uint32_t ext;		/* the extent being read (of the segment's) */
	uint64_t done;		/* bytes of that extent read */
	uint64_t left;		/* bytes of the segment not yet summed */
	uint32_t crc;
	uint32_t len;		/* of the read in flight */
	uint32_t region_crc;	/* what the region held */
};

static void check_end(struct xseg *xs, int err, const char *what)
{
	free(xs->check->buf);
	free(xs->check);
	xs->check = NULL;
	seg_end(xs, err, what);
}

/* Reads the next chunk, or decides once every byte is summed. */
static void check_next(struct xseg *xs)
{
	struct xfers *xf = xs->x->xf;
	struct xcheck *ck = xs->check;
	const struct entry *e = seg_entry(xs);
	const struct sseg *ss = &e->segs[xs->stored];
	const struct sext *ext;
	uint64_t bytes;
	struct io_uring_sqe *sqe;
	char what[320];

	while (ck->ext < ss->next && ck->done ==
	       (uint64_t)e->ext[ss->ext + ck->ext].nblocks * xf->block) {
		ck->ext++;
		ck->done = 0;
	}
	if (!ck->left || ck->ext >= ss->next) {
		if (ck->left || ck->crc != ss->crc) {
			xf->st->checksum_errors++;
			snprintf(what, sizeof(what), "checksum mismatch: the stored "
				 "bytes are damaged (read again: CRC32C %08x, "
				 "stored %08x); region bytes [%llu, %llu) are "
				 "invalid", ck->crc, ss->crc,
				 (unsigned long long)xs->off,
				 (unsigned long long)(xs->off + xs->len));
			check_end(xs, -EBADMSG, what);
			return;
		}
		snprintf(what, sizeof(what), "the region's memory changed during "
			 "the swap-in (written, or a hole punched in its memfd: "
			 "then register the region again): region bytes [%llu, "
			 "%llu) are invalid; the stored bytes are intact (read "
			 "again, CRC32C %08x) and the entry is kept",
			 (unsigned long long)xs->off,
			 (unsigned long long)(xs->off + xs->len), ck->crc);
		check_end(xs, -EFAULT, what);
		return;
	}
	ext = &e->ext[ss->ext + ck->ext];
	bytes = (uint64_t)ext->nblocks * xf->block - ck->done;
	ck->len = bytes < CHECK_CHUNK ? (uint32_t)bytes : CHECK_CHUNK;
	sqe = loop_sqe(xf->loop);
	io_uring_prep_read(sqe, (int)ext->file, ck->buf, ck->len,
			   ext->block * xf->block + ck->done);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, ud_make(xs, UD_SEG_TAIL));
}

static void check_cqe(struct xseg *xs, int res)
{
	struct xfers *xf = xs->x->xf;
	struct xcheck *ck = xs->check;
	uint64_t n;

	if (res != (int)ck->len) {
		/* Proves nothing about the bytes: the entry stays. */
		xf->st->io_errors++;
		check_end(xs, res < 0 ? res : -EIO, res < 0 ?
			  "checksum mismatch, and reading the stored bytes again "
			  "failed; the entry is kept" :
			  "checksum mismatch, and reading the stored bytes again "
			  "was short; the entry is kept");
		return;
	}
	n = ck->left < ck->len ? ck->left : ck->len;
	ck->crc = crc32c(ck->crc, ck->buf, n);
	ck->left -= n;
	ck->done += ck->len;
	check_next(xs);
}

static void check_start(struct xseg *xs)
{
	struct xcheck *ck = calloc(1, sizeof(*ck));

	if (ck)
		ck->buf = aligned_alloc(xs->x->xf->block, CHECK_CHUNK);
	if (!ck || !ck->buf) {
		/* Cannot tell: keep the entry, fail the segment. */
		free(ck);
		seg_end(xs, -ENOMEM, "checksum mismatch, and no memory to read "
			"the stored bytes again; the entry is kept");
		return;
	}
	ck->left = xs->len;
	xs->check = ck;
	check_next(xs);
}

/* The chain's last read landed: copy the tail, verify, then the event. */
static void seg_last(struct xseg *xs, int res)
{
	struct xfer *x = xs->x;
	struct xfers *xf = x->xf;
	uint64_t B = xf->block, tail = xs->len % B;
	uint8_t *dst = x->r->addr + xs->off;

	if (res != (int)xs->lastlen) {
		xf->st->io_errors++;
		if (x->out)
			seg_end(xs, res < 0 ? res : -EIO, res < 0 ?
				"store write failed" : "short store write");
		else
			seg_end(xs, res < 0 ? res : -EIO, res < 0 ?
				"store read failed" : "short store read");
		return;
	}
	if (x->out) {
		seg_end(xs, 0, NULL);
		return;
	}
	if (conn_closing(x->c)) {
		seg_end(xs, -ECONNRESET, "client gone");
		return;
	}
	if (tail)
		memcpy(dst + xs->len - tail, xf->bounce + (uint64_t)xs->bounce * B,
		       tail);
	if (xf->cfg->verify && !x->client_crc &&
	    crc32c(0, dst, xs->len) != seg_entry(xs)->segs[xs->stored].crc) {
		check_start(xs);
		return;
	}
	if (!xs->evlen) {
		seg_end(xs, 0, NULL);
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
		if (xs->check)
			check_cqe(xs, res);
		else
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

/*
 * The next chain, while the queue depth allows: fair.c picks whose, fair
 * between tenants, their connections and their requests.
 */
void xfers_pump(struct xfers *xf)
{
	struct fair_req *q;

	while (xf->inflight < xf->cfg->queue_depth &&
	       (q = fair_pick(&xf->fair))) {
		struct xfer *x = (struct xfer *)(void *)((char *)q -
							 offsetof(struct xfer, fq));

		assert(x->next < x->nseg);
		seg_submit(xfer_nth(x, x->next++));
		/* Its next segment waits for its turn at every level. */
		xfer_enqueue(x);
	}
}

int xfers_init(struct xfers *xf, struct loop *lp, struct catalog *cat,
	       const struct config *cfg, struct stats *st, uint32_t block,
	       xfer_seg_done_fn *seg_done, char *err, size_t len)
{
	size_t bytes = (size_t)cfg->queue_depth * block;
	__u64 tag = 0;
	struct iovec iov;
	int ret;

	memset(xf, 0, sizeof(*xf));
	fair_init(&xf->fair, cfg);
	xf->loop = lp;
	xf->cat = cat;
	xf->cfg = cfg;
	xf->st = st;
	xf->block = block;
	xf->seg_done = seg_done;
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
	fair_fini(&xf->fair);
	free(xf->bounce);
	free(xf->bounce_free);
	xf->bounce = NULL;
	xf->bounce_free = NULL;
}
