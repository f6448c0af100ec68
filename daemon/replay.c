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
	size_t scap, bcap, hcap;
};

static int add_valid(struct reader *rd, const uint8_t *b,
		     const struct jf_block_info *in)
{
	struct rlog *lg = rd->lg;
	size_t need = lg->len + in->used;

	if (grow((void **)&lg->blk, &rd->bcap, lg->nblk, sizeof(*lg->blk), 1024))
		return -ENOMEM;
	while (need > rd->scap) {
		size_t c = rd->scap ? 2 * rd->scap : 4u << 20;
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
	memcpy(lg->stream + lg->len, b + JF_HDR, in->used);
	lg->len = need;
	return 0;
}

/*
 * Blocks the epoch wrote that fail their check form runs of their own, so
 * that damage is never merged with the unwritten tail after it.
 */
static int add_invalid(struct reader *rd, uint64_t seq, bool written)
{
	struct rlog *lg = rd->lg;
	struct rhole *h = lg->nhole ? &lg->hole[lg->nhole - 1] : NULL;

	if (!h || h->to != seq || !h->written != !written) {
		if (grow((void **)&lg->hole, &rd->hcap, lg->nhole,
			 sizeof(*lg->hole), 16))
			return -ENOMEM;
		h = &lg->hole[lg->nhole++];
		*h = (struct rhole){ .from = seq, .to = seq };
	}
	h->to++;
	h->written += written;
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

/* Damage or tail, run by run; the log's end; the checkpoint's state. */
static void classify(struct rlog *lg)
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
}

int replay_read(const struct store *st, uint32_t half, uint64_t nonce,
		uint64_t gen, bool v2, uint64_t ck_blocks, struct rlog *ret,
		char *err, size_t len)
{
	const size_t chunk = 4u << 20;
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

	if (posix_memalign((void **)&buf, STORE_BLOCK, chunk)) {
		snprintf(err, len, "out of memory");
		return -ENOMEM;
	}
	for (uint64_t b = 0; !r && b < lg.blocks;) {
		size_t want = (lg.blocks - b) * STORE_BLOCK < chunk ?
			      (lg.blocks - b) * STORE_BLOCK : chunk;
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

			if (s == JF_BLOCK_VALID)
				r = add_valid(&rd, buf + i, &in);
			else
				r = add_invalid(&rd, b, s == JF_BLOCK_DAMAGED && !v2);
			if (r < 0)
				snprintf(err, len, "reading the log: out of memory");
		}
	}
	free(buf);
	if (r < 0) {
		replay_free(&lg);
		return r;
	}
	classify(&lg);
	*ret = lg;
	return 0;
}

void replay_free(struct rlog *lg)
{
	free(lg->stream);
	free(lg->blk);
	free(lg->hole);
	lg->stream = NULL;
	lg->blk = NULL;
	lg->hole = NULL;
	lg->len = lg->nblk = lg->nhole = 0;
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

/*
 * Replays the framed record into the index. Returns 0, or -ENOMEM. A PUT
 * whose content does not check is skipped (counted).
 */
static int replay_one(const struct jf_rec *rec, struct index *ix,
		      uint32_t nfiles, struct replay_stats *st)
{
	struct entry *e;
	int r;

	if (rec->type == JF_DEL) {
		free(index_del(ix, rec->key, rec->key_len));
		st->records++;
		return 0;
	}
	r = jf_rec_entry(rec, nfiles, &e);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		st->dropped++;
		return 0;
	}
	free(index_put(ix, e));
	st->records++;
	return 0;
}

/*
 * Replays the records in stream bytes [pos, end). Returns the offset where
 * replay stopped (end, or where a record is cut or unreadable), or a
 * negative errno.
 */
static int64_t replay_span(const struct rlog *lg, size_t pos, size_t end,
			   struct index *ix, uint32_t nfiles,
			   struct replay_stats *st)
{
	while (pos < end) {
		struct jf_rec rec;
		size_t n = jf_rec_parse(lg->stream + pos, end - pos, &rec);
		int r;

		if (!n)
			break;
		r = replay_one(&rec, ix, nfiles, st);
		if (r < 0)
			return r;
		pos += n;
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

/* The damaged run that ends where block index i begins, if any. */
static const struct rhole *hole_before(const struct rlog *lg, size_t i)
{
	uint64_t seq = i < lg->nblk ? lg->blk[i].seq : lg->blocks;

	for (size_t k = 0; k < lg->nhole; k++)
		if (lg->hole[k].to == seq && lg->hole[k].damage)
			return &lg->hole[k];
	return NULL;
}

/* Every run of valid blocks, each from its first record start. */
static int replay_around(const struct rlog *lg, struct index *ix,
			 uint32_t nfiles, replay_loss_fn *lossfn, void *arg,
			 struct replay_stats *st)
{
	size_t i = 0;

	if (lg->nblk == 0 || lg->blk[0].seq != 0) {
		const struct rhole *h = hole_before(lg, 0);

		if (h && lossfn) {
			struct rloss loss = { .hole = h };

			loss_commit(lg, h, &loss);
			lossfn(arg, &loss);
			st->lost++;
		}
	}
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
		      replay_span(lg, lg->blk[first].off + (lg->blk[i].seq ?
				  lg->blk[first].lead : 0), end, ix, nfiles, st);
		if (pos < 0)
			return (int)pos;
		{
			const struct rhole *h = hole_before(lg, k + 1);

			if (h && lossfn) {
				struct rloss loss = { .hole = h };

				loss_commit(lg, h, &loss);
				cut_record(lg, (size_t)pos, end, &loss);
				lossfn(arg, &loss);
			}
			st->lost += h != NULL;
		}
		i = k + 1;
	}
	return 0;
}

int replay_records(const struct rlog *lg, struct index *ix, uint32_t nfiles,
		   bool around, replay_loss_fn *loss, void *arg,
		   struct replay_stats *ret)
{
	struct replay_stats st = { 0 };
	int64_t pos = 0;

	if (around && !lg->v2) {
		int r = replay_around(lg, ix, nfiles, loss, arg, &st);

		if (r < 0)
			return r;
	} else if (lg->end) {
		/* Blocks [0, end) are valid and in order: the stream's start. */
		const struct rblock *b = &lg->blk[lg->end - 1];

		pos = replay_span(lg, 0, b->off + b->used, ix, nfiles, &st);
		if (pos < 0)
			return (int)pos;
	}
	if (ret)
		*ret = st;
	return 0;
}
