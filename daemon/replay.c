/* SPDX-License-Identifier: MIT */
/*
 * Reading a log half and replaying its records (replay.h): every block of
 * the half is checked against the epoch, runs of other blocks are told
 * apart as damage or the tail, and the records of the valid blocks go into
 * an index, around the damage where asked. Blocking I/O, before serving or
 * in kvswapd --check; no state beyond what the caller passes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "defs.h"	/* the protocol limits records are read within */
#include "index.h"
#include "replay.h"
#include "store.h"

/* Grows *p (of *cap elements of size sz) to hold n + 1. */
static int grow(void **p, size_t *cap, size_t n, size_t sz, size_t first)
{
	size_t c = *cap ? 2 * *cap : first;
	void *q;

	if (n < *cap)
		return 0;
	q = realloc(*p, c * sz);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

struct reader {
	struct rlog *lg;
	size_t scap, bcap, hcap, rcap;
};

static int add_valid(struct reader *rd, const uint8_t *b,
		     const struct jf_block_info *in)
{
	struct rlog *lg = rd->lg;
	size_t need = lg->len + in->used;

	if (grow((void **)&lg->blk, &rd->bcap, lg->nblk, sizeof(*lg->blk), 1024))
		return -ENOMEM;
	while (need > rd->scap) {
		size_t c = rd->scap ? 2 * rd->scap : 256u << 10;
		uint8_t *q = realloc(lg->stream, c);

		if (!q)
			return -ENOMEM;
		lg->stream = q;
		rd->scap = c;
	}
	lg->blk[lg->nblk++] = (struct rblock){
		.seq = in->seq,
		.off = lg->len,
		.used = in->used,
		.lead = in->lead,
		.start = in->start,
		.end = in->end,
	};
	if (in->used)	/* an empty checkpoint's block may be all there is */
		memcpy(lg->stream + lg->len, b + JF_HDR, in->used);
	lg->len = need;
	return 0;
}

/*
 * Blocks the epoch wrote that fail their check form runs of their own, so
 * that damage is never merged with the unwritten tail after it.
 */
static int add_invalid(struct reader *rd, const uint8_t *b, uint64_t seq,
		       bool written)
{
	struct rlog *lg = rd->lg;
	struct rhole *h = lg->nhole ? &lg->hole[lg->nhole - 1] : NULL;

	if (!h || h->to != seq || !h->written != !written) {
		if (grow((void **)&lg->hole, &rd->hcap, lg->nhole,
			 sizeof(*lg->hole), 16))
			return -ENOMEM;
		h = &lg->hole[lg->nhole++];
		*h = (struct rhole){ .from = seq, .to = seq, .raw = lg->raw_len };
		if (written) {
			struct jf_block_hdr hd;

			memcpy(&hd, b, sizeof(hd));
			h->lead = hd.lead & JF_LEAD_MASK;
		}
	}
	h->to++;
	if (!written)
		return 0;
	h->written++;
	/* Kept for the report: what the damaged blocks may have held. */
	if (grow((void **)&lg->raw, &rd->rcap, lg->raw_len / JF_PAYLOAD,
		 JF_PAYLOAD, 4))
		return -ENOMEM;
	memcpy(lg->raw + lg->raw_len, b + JF_HDR, JF_PAYLOAD);
	lg->raw_len += JF_PAYLOAD;
	return 0;
}

/*
 * The checkpoint's extent when no superblock gives it: block 0 starts it,
 * its JF_END ends it, and a later commit start bounds it.
 */
static void find_checkpoint(struct rlog *lg)
{
	uint64_t next_start = 0;

	if (!lg->nblk || lg->blk[0].seq || !lg->blk[0].start)
		return;
	for (size_t i = 1; i < lg->nblk && !next_start; i++)
		if (lg->blk[i].start)
			next_start = lg->blk[i].seq;
	for (size_t i = 0; i < lg->nblk && lg->blk[i].seq == i; i++) {
		if (next_start && i >= next_start)
			break;
		if (lg->blk[i].end) {
			lg->ck_blocks = i + 1;
			return;
		}
	}
	lg->ck_blocks = next_start;
}

/*
 * Splits the run that straddles the checkpoint's end, so that damage
 * inside the checkpoint is told apart from the tail after it.
 */
static int split_at(struct rlog *lg, uint64_t at)
{
	for (size_t i = 0; i < lg->nhole; i++) {
		struct rhole *h = &lg->hole[i], *q;

		if (h->from >= at || h->to <= at)
			continue;
		q = realloc(lg->hole, (lg->nhole + 1) * sizeof(*q));
		if (!q)
			return -ENOMEM;
		lg->hole = q;
		memmove(&q[i + 1], &q[i], (lg->nhole - i) * sizeof(*q));
		lg->nhole++;
		q[i].to = at;
		q[i + 1].from = at;
		if (q[i].written) {
			/* A run of written blocks: both parts are. */
			q[i].written = at - q[i].from;
			q[i + 1].written = q[i + 1].to - at;
			q[i + 1].raw = q[i].raw + q[i].written * JF_PAYLOAD;
			q[i + 1].lead = 0;
		}
		return 0;
	}
	return 0;
}

/* Damage or tail, run by run; the log's end; the checkpoint's state. */
static int classify(struct rlog *lg)
{
	uint64_t last_start = 0, ck;

	for (size_t i = 0; i < lg->nblk; i++) {
		if (!lg->blk[i].start || !lg->blk[i].seq)
			continue;
		lg->commits++;
		last_start = lg->blk[i].seq;
	}
	if (!lg->v2 && !lg->ck_blocks)
		find_checkpoint(lg);
	ck = lg->ck_blocks;
	if (ck && split_at(lg, ck) < 0)
		return -ENOMEM;
	lg->ck_complete = ck && ck <= lg->nblk && lg->blk[ck - 1].seq == ck - 1 &&
			  lg->blk[ck - 1].end;
	lg->end = lg->blocks;
	for (size_t i = 0; i < lg->nhole; i++) {
		struct rhole *h = &lg->hole[i];

		h->damage = !lg->v2 && (h->written || h->from < ck ||
					h->from < last_start);
		lg->ndamage += h->damage;
		if (!h->damage && lg->end == lg->blocks)
			lg->end = h->from;
	}
	for (size_t i = 0; i < lg->nblk; i++)
		lg->torn += lg->blk[i].seq >= lg->end;
	return 0;
}

/*
 * How far past the last valid block of the epoch (and past its checkpoint)
 * a half is read: a damaged run longer than this with commits after it
 * would pass for the tail, and a half larger than the log is not read
 * whole at every start.
 */
#define LOOKAHEAD_BLOCKS	((64u << 20) / JF_BLOCK)

int replay_read(const struct store *st, uint32_t half, uint64_t nonce,
		uint64_t gen, bool v2, uint64_t ck_blocks, struct rlog *ret,
		char *err, size_t len)
{
	size_t chunk = 4u << 20;
	uint64_t horizon = (ck_blocks > 0 ? ck_blocks : 1) + LOOKAHEAD_BLOCKS;
	struct rlog lg = {
		.half = half,
		.nonce = nonce,
		.gen = v2 ? 0 : gen,
		.v2 = v2,
		.blocks = store_log_blocks(st),
		.ck_blocks = v2 ? 0 : ck_blocks,
	};
	struct reader rd = { .lg = &lg };
	uint64_t base = store_log_offset(st, half);
	uint8_t *buf;
	int r = 0;

	/* A small store's log half is read with a buffer its size. */
	if (chunk > lg.blocks * STORE_BLOCK)
		chunk = lg.blocks * STORE_BLOCK;
	if (posix_memalign((void **)&buf, STORE_BLOCK, chunk)) {
		snprintf(err, len, "out of memory");
		return -ENOMEM;
	}
	if (horizon > lg.blocks)
		horizon = lg.blocks;
	for (uint64_t b = 0; !r && b < horizon;) {
		size_t want = (horizon - b) * STORE_BLOCK < chunk ?
			      (horizon - b) * STORE_BLOCK : chunk;
		ssize_t n = pread(st->files[0].fd, buf, want,
				  (off_t)(base + b * STORE_BLOCK));

		if (n < 0 || (size_t)n < want) {
			r = n < 0 ? -errno : -EIO;
			snprintf(err, len, "reading log half %u of %s: %s", half,
				 st->files[0].path, n < 0 ? strerror(errno) :
				 "short read");
			break;
		}
		for (size_t i = 0; !r && i < want; i += STORE_BLOCK, b++) {
			struct jf_block_info in;
			enum jf_block_state s = jf_block_check(buf + i, nonce,
							       lg.gen, b, &in);

			if (s == JF_BLOCK_VALID) {
				r = add_valid(&rd, buf + i, &in);
				if (b + 1 + LOOKAHEAD_BLOCKS > horizon)
					horizon = b + 1 + LOOKAHEAD_BLOCKS;
				if (horizon > lg.blocks)
					horizon = lg.blocks;
			} else {
				r = add_invalid(&rd, buf + i, b,
						s == JF_BLOCK_DAMAGED && !v2);
			}
			if (r < 0)
				snprintf(err, len, "reading the log: out of memory");
		}
	}
	free(buf);
	lg.scanned = horizon;
	if (!r && classify(&lg) < 0) {
		r = -ENOMEM;
		snprintf(err, len, "reading the log: out of memory");
	}
	if (r < 0) {
		replay_free(&lg);
		return r;
	}
	*ret = lg;
	return 0;
}

void replay_free(struct rlog *lg)
{
	free(lg->stream);
	free(lg->blk);
	free(lg->hole);
	free(lg->raw);
	lg->stream = NULL;
	lg->blk = NULL;
	lg->hole = NULL;
	lg->raw = NULL;
	lg->len = lg->nblk = lg->nhole = lg->raw_len = 0;
}

size_t replay_hole_records(const struct rlog *lg, const struct rhole *h,
			   size_t max, void (*fn)(void *arg, enum jf_type type,
						  const uint8_t *key,
						  uint16_t key_len),
			   void *arg)
{
	const uint8_t *p = lg->raw + h->raw;
	size_t len = h->written * JF_PAYLOAD, pos = h->lead, n = 0;

	/* Record by record from the first start, while the bytes make sense. */
	while (n < max && pos + sizeof(struct jf_rec_hdr) <= len) {
		struct jf_rec_hdr r;
		size_t size;

		memcpy(&r, p + pos, sizeof(r));
		if ((r.type != JF_PUT && r.type != JF_DEL) || !r.key_len ||
		    r.key_len > ENTRY_MAX_KEY || pos + sizeof(r) + r.key_len > len)
			break;
		if (r.type == JF_PUT && (r.nseg > KVS_MAX_SEGMENTS ||
					 r.meta_len > KVS_MAX_METADATA ||
					 r.next > r.nseg * KVS_MAX_EXTENTS))
			break;
		fn(arg, r.type, p + pos + sizeof(r), r.key_len);
		n++;
		size = sizeof(r) + r.key_len;
		if (r.type == JF_PUT)
			size += r.meta_len + (size_t)r.nseg * sizeof(struct jf_rec_seg) +
				(size_t)r.next * sizeof(struct jf_rec_ext);
		pos += size;
	}
	return n;
}

int replay_peek(const struct store *st, uint32_t half,
		struct jf_block_info *ret)
{
	struct jf_block_info in;
	void *buf;
	ssize_t n;
	int r = 0;

	if (posix_memalign(&buf, STORE_BLOCK, STORE_BLOCK))
		return -ENOMEM;
	n = pread(st->files[0].fd, buf, STORE_BLOCK,
		  (off_t)store_log_offset(st, half));
	if (n < 0)
		r = -errno;
	else if (n == STORE_BLOCK && jf_block_peek(buf, &in) && !in.seq &&
		 in.start) {
		*ret = in;
		r = 1;
	}
	free(buf);
	return r;
}

/* --- records --------------------------------------------------------------- */

/* What replay_span() needs besides the bytes: the target and the report. */
struct span {
	const struct rlog *lg;
	struct index *ix;
	uint32_t nfiles;
	bool around;
	replay_loss_fn *lossfn;
	void *arg;
	struct replay_stats *st;
};

/* The valid block holding stream offset pos (the last, at the very end). */
static size_t block_at(const struct rlog *lg, size_t pos)
{
	size_t lo = 0, hi = lg->nblk;

	/* The last block whose payload starts at or before pos. */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (lg->blk[mid].off <= pos)
			lo = mid;
		else
			hi = mid;
	}
	/* Empty blocks share their offset with the next: take that one. */
	while (lo + 1 < lg->nblk && lg->blk[lo + 1].off == pos &&
	       lg->blk[lo].off + lg->blk[lo].used == pos)
		lo++;
	return lo;
}

/* A refused record at stream offset pos, for the report. */
static void refused(const struct span *sp, size_t pos, size_t end,
		    const struct jf_rec_hdr *h, const char *why, bool stop,
		    struct rloss *loss)
{
	const struct rlog *lg = sp->lg;
	size_t b = block_at(lg, pos);

	*loss = (struct rloss){
		.log = lg,
		.why = why,
		.stop = stop,
		.around = sp->around,
		.block = lg->blk[b].seq,
		.at = pos - lg->blk[b].off,
		.resume = lg->blocks,
	};
	/* Once per replay without `around`: a scan is cheap enough. */
	if (stop && !sp->around) {
		loss->after = end - pos;
		for (size_t i = b + 1; i < lg->nblk && lg->blk[i].off < end; i++)
			loss->after_commits += lg->blk[i].start;
	}
	/* Its key, where its length is one a writer could have written. */
	if ((h->type == JF_PUT || h->type == JF_DEL) && h->key_len &&
	    h->key_len <= KVS_MAX_KEY && end - pos >= sizeof(*h) + h->key_len) {
		loss->cut_type = h->type;
		loss->cut_key = lg->stream + pos + sizeof(*h);
		loss->cut_key_len = h->key_len;
	}
}

/*
 * Where replay goes on after a refused record at pos, around damage: the
 * first record start in a later block of the same run of valid blocks
 * (ending at stream offset end), or end.
 */
static size_t resume_at(const struct rlog *lg, size_t pos, size_t end,
			uint64_t *ret_block)
{
	for (size_t b = block_at(lg, pos) + 1; b < lg->nblk &&
	     lg->blk[b].off < end; b++) {
		if (lg->blk[b].seq != lg->blk[b - 1].seq + 1)
			break;
		if (lg->blk[b].lead < lg->blk[b].used) {
			*ret_block = lg->blk[b].seq;
			return lg->blk[b].off + lg->blk[b].lead;
		}
	}
	return end;
}

/*
 * Replays the framed record at stream offset pos into the index. Returns
 * 0, or -ENOMEM. A PUT whose content does not check is dropped (counted,
 * reported).
 */
static int replay_one(const struct span *sp, const struct jf_rec *rec,
		      size_t pos, size_t end)
{
	struct entry *e;
	const char *why;
	int r;

	if (rec->type == JF_DEL) {
		free(index_del(sp->ix, rec->key, rec->key_len));
		sp->st->records++;
		return 0;
	}
	r = jf_rec_entry(rec, sp->nfiles, &e);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		struct jf_rec_hdr h;
		struct rloss loss;

		sp->st->dropped++;
		why = jf_rec_check(rec, sp->nfiles);
		memcpy(&h, sp->lg->stream + pos, sizeof(h));
		refused(sp, pos, end, &h, why ? why : "its content does not check",
			false, &loss);
		if (sp->lossfn)
			sp->lossfn(sp->arg, &loss);
		return 0;
	}
	free(index_put(sp->ix, e));
	sp->st->records++;
	return 0;
}

/*
 * Replays the records in stream bytes [pos, end). Returns the offset where
 * replay stopped (end, where a record is cut, or, without `around`, where
 * one is refused), or a negative errno.
 */
static int64_t replay_span(const struct span *sp, size_t pos, size_t end)
{
	const struct rlog *lg = sp->lg;

	while (pos < end) {
		struct jf_rec rec;
		struct jf_rec_hdr h;
		struct rloss loss;
		size_t n;
		int r;

		switch (jf_rec_frame(lg->stream + pos, end - pos, &rec, &n)) {
		case JF_REC_OK:
			r = replay_one(sp, &rec, pos, end);
			if (r < 0)
				return r;
			pos += n;
			continue;
		case JF_REC_CUT:
			return (int64_t)pos;
		case JF_REC_BAD:
			break;
		}
		/* Valid blocks, a record no writer produces: damage. */
		sp->st->refused++;
		memcpy(&h, lg->stream + pos, sizeof(h));
		refused(sp, pos, end, &h, "its fixed part is one no writer "
			"produces", true, &loss);
		if (sp->around)
			pos = resume_at(lg, pos, end, &loss.resume);
		if (sp->lossfn)
			sp->lossfn(sp->arg, &loss);
		if (!sp->around)
			break;
	}
	return (int64_t)pos;
}

/* The key of the record a damaged run cut, if its fixed part and key read. */
static void cut_record(const struct rlog *lg, size_t pos, size_t end,
		       struct rloss *loss)
{
	struct jf_rec_hdr h;

	if (end - pos < sizeof(h))
		return;
	memcpy(&h, lg->stream + pos, sizeof(h));
	if ((h.type != JF_PUT && h.type != JF_DEL) || !h.key_len ||
	    end - pos < sizeof(h) + h.key_len)
		return;
	loss->cut_type = h.type;
	loss->cut_key = lg->stream + pos + sizeof(h);
	loss->cut_key_len = h.key_len;
}

/* The commit a damaged run falls in: the last commit start before it. */
static void loss_commit(const struct rlog *lg, const struct rhole *h,
			struct rloss *loss)
{
	loss->commit = 0;
	for (size_t i = 0; i < lg->nblk && lg->blk[i].seq < h->from; i++)
		if (lg->blk[i].start)
			loss->commit = lg->blk[i].seq;
	loss->checkpoint = loss->commit == 0;
}

/*
 * Reports the damaged runs between blocks `from` and `to` (the valid runs
 * around them); the first, right after a valid run, may have cut the
 * record at stream offset pos of a run ending at `end`.
 */
static void report(const struct rlog *lg, uint64_t from, uint64_t to,
		   size_t pos, size_t end, replay_loss_fn *lossfn, void *arg,
		   struct replay_stats *st)
{
	bool first = true;

	for (size_t k = 0; k < lg->nhole; k++) {
		const struct rhole *h = &lg->hole[k];
		struct rloss loss = { .log = lg, .hole = h };

		if (h->from < from || h->to > to || !h->damage)
			continue;
		st->lost++;
		if (!lossfn)
			continue;
		loss_commit(lg, h, &loss);
		if (first && h->from == from)
			cut_record(lg, pos, end, &loss);
		first = false;
		lossfn(arg, &loss);
	}
}

/* Every run of valid blocks, each from its first record start. */
static int replay_around(const struct span *sp)
{
	const struct rlog *lg = sp->lg;
	replay_loss_fn *lossfn = sp->lossfn;
	void *arg = sp->arg;
	struct replay_stats *st = sp->st;
	size_t i = 0;

	report(lg, 0, lg->nblk ? lg->blk[0].seq : lg->blocks, 0, 0, lossfn, arg,
	       st);
	while (i < lg->nblk) {
		size_t k = i, first = i;
		const struct rblock *last;
		size_t end;
		int64_t pos;

		while (k + 1 < lg->nblk && lg->blk[k + 1].seq == lg->blk[k].seq + 1)
			k++;
		last = &lg->blk[k];
		end = last->off + last->used;
		/* After a gap: from the first record that starts in the run. */
		if (lg->blk[i].seq)
			while (first <= k && lg->blk[first].lead == lg->blk[first].used)
				first++;
		pos = first > k ? (int64_t)end :
		      replay_span(sp, lg->blk[first].off + (lg->blk[i].seq ?
				  lg->blk[first].lead : 0), end);
		if (pos < 0)
			return (int)pos;
		report(lg, last->seq + 1, k + 1 < lg->nblk ? lg->blk[k + 1].seq :
		       lg->blocks, (size_t)pos, end, lossfn, arg, st);
		i = k + 1;
	}
	return 0;
}

int replay_records(const struct rlog *lg, struct index *ix, uint32_t nfiles,
		   bool around, replay_loss_fn *loss, void *arg,
		   struct replay_stats *ret)
{
	struct replay_stats st = { 0 };
	struct span sp = {
		.lg = lg,
		.ix = ix,
		.nfiles = nfiles,
		.around = around && !lg->v2,
		.lossfn = loss,
		.arg = arg,
		.st = &st,
	};
	int64_t pos = 0;

	if (sp.around) {
		int r = replay_around(&sp);

		if (r < 0)
			return r;
	} else if (lg->end) {
		/* Blocks [0, end) are valid and in order: the stream's start. */
		const struct rblock *b = &lg->blk[lg->end - 1];

		pos = replay_span(&sp, 0, b->off + b->used);
		if (pos < 0)
			return (int)pos;
	}
	if (ret)
		*ret = st;
	return 0;
}
