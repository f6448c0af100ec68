/* SPDX-License-Identifier: MIT */
/*
 * Recovery at startup (recover.h): decide which log half holds the newest
 * acknowledged state and whether the store is damaged beyond what a crash
 * explains (then refuse, or with --salvage go on around the damage), replay
 * it (replay.c), rebuild every file's free space from the entries that
 * survived, and start a fresh epoch with a checkpoint. Synchronous: it runs
 * before the daemon serves. kvswapd --check (check.c) reads a store with
 * the same functions.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "index.h"
#include "journal.h"
#include "log.h"
#include "recover.h"
#include "store.h"

/* Generation a's distance past b, in the 32 bits log blocks carry. */
static int32_t gen_ahead(uint32_t a, uint64_t b)
{
	return (int32_t)(a - (uint32_t)b);
}

void recover_describe(const struct store *st, const struct rlog *lg,
		      const struct rhole *h, char *buf, size_t len)
{
	uint64_t after = 0, last = 0, commit = 0;
	char where[96], tail[128];

	for (size_t i = 0; i < lg->nblk; i++) {
		if (lg->blk[i].seq >= h->to) {
			after++;
			last = lg->blk[i].seq;
		} else if (lg->blk[i].start) {
			commit = lg->blk[i].seq;
		}
	}
	if (h->from < lg->ck_blocks || !commit)
		snprintf(where, sizeof(where), "%s the checkpoint (blocks 0..%"
			 PRIu64 ")", h->from < lg->ck_blocks ? "in" : "after",
			 lg->ck_blocks ? lg->ck_blocks - 1 : 0);
	else
		snprintf(where, sizeof(where), "after the commit starting at "
			 "block %" PRIu64, commit);
	if (after)
		snprintf(tail, sizeof(tail), "%" PRIu64 " valid blocks follow, up "
			 "to block %" PRIu64, after, last);
	else if (h->from < lg->ck_blocks)
		snprintf(tail, sizeof(tail), "the superblock says the checkpoint "
			 "goes on to block %" PRIu64, lg->ck_blocks - 1);
	else
		snprintf(tail, sizeof(tail), "nothing valid follows");
	snprintf(buf, len, "%s: log half %u (generation %" PRIu64 ") is damaged "
		 "at blocks %" PRIu64 "..%" PRIu64 " (%s), %s; %s",
		 st->files[0].path, lg->half, lg->gen, h->from, h->to - 1,
		 h->written ? "written by it, failing their CRC" : "unreadable",
		 where, tail);
}

size_t recover_key_str(const uint8_t *k, size_t n, char *buf, size_t len)
{
	size_t o = 0;

	if (!len)
		return 0;
	for (size_t i = 0; i < n && i < 64 && o + 5 < len; i++) {
		if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\' && k[i] != '"')
			buf[o++] = (char)k[i];
		else
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", k[i]);
	}
	if (n > 64 && o + 4 < len)
		o += (size_t)snprintf(buf + o, len - o, "...");
	buf[o] = '\0';
	return o;
}

struct keys {
	char *buf;
	size_t len, used;
};

static void add_key(void *arg, enum jf_type type, const uint8_t *key,
		    uint16_t key_len)
{
	struct keys *k = arg;
	char s[300];

	recover_key_str(key, key_len, s, sizeof(s));
	if (k->used < k->len)
		k->used += (size_t)snprintf(k->buf + k->used, k->len - k->used,
					    "%s%s \"%s\"", k->used ? ", " : "",
					    type == JF_PUT ? "PUT" : "DEL", s);
}

/* recover_loss_line() for a record in valid blocks that replay refused. */
static void refused_line(const struct store *st, const struct rloss *l,
			 char *buf, size_t len)
{
	char rec[400] = "record", then[200];

	if (l->cut_type) {
		char key[300];

		recover_key_str(l->cut_key, l->cut_key_len, key, sizeof(key));
		snprintf(rec, sizeof(rec), "%s of \"%s\"", l->cut_type == JF_PUT ?
			 "PUT" : "DEL", key);
	}
	if (!l->stop)
		snprintf(then, sizeof(then), "that PUT alone is dropped");
	else if (l->around && l->resume < l->log->blocks)
		snprintf(then, sizeof(then), "the replay resumes at the next "
			 "record start, in block %" PRIu64, l->resume);
	else if (l->around)
		snprintf(then, sizeof(then), "the rest of its run of valid "
			 "blocks is skipped");
	else
		snprintf(then, sizeof(then), "the valid log ends there: the %zu "
			 "bytes of records after it (%" PRIu64 " later commits) are "
			 "not replayed", l->after, l->after_commits);
	snprintf(buf, len, "%s: log half %u (generation %" PRIu64 "): the %s at "
		 "block %" PRIu64 ", byte %zu of its payload, is refused: %s; %s",
		 st->files[0].path, l->log->half, l->log->gen, rec, l->block,
		 l->at, l->why, then);
}

void recover_loss_line(const struct store *st, const struct rloss *l,
		       char *buf, size_t len)
{
	const struct rhole *h = l->hole;
	char cut[400] = "", read[1200] = "", key[300];
	struct keys k = { read, sizeof(read), 0 };
	size_t n = 0;

	if (!h) {
		refused_line(st, l, buf, len);
		return;
	}
	if (l->cut_type) {
		recover_key_str(l->cut_key, l->cut_key_len, key, sizeof(key));
		snprintf(cut, sizeof(cut), "the %s of \"%s\" they cut and ",
			 l->cut_type == JF_PUT ? "PUT" : "DEL", key);
	}
	if (h->written)
		n = replay_hole_records(l->log, h, 16, add_key, &k);
	snprintf(buf, len, "log blocks %" PRIu64 "..%" PRIu64 " of %s (%s, %s "
		 "%" PRIu64 ") are lost, and with them %severy record that began "
		 "in them%s%s%s; a lost PUT leaves its entry missing or its older "
		 "version back, a lost DEL brings its entry back",
		 h->from, h->to - 1, st->files[0].path, h->written ?
		 "written, failing their CRC" : "unreadable", l->checkpoint ?
		 "in the checkpoint starting at block" : "after the commit "
		 "starting at block", l->commit, cut, n ? " (read from them, "
		 "unverified: " : "", n ? read : "", n ? ")" : "");
}

/* Reads the half the other one's block 0 starts, for its own epoch. */
static int read_peeked(const struct store *st, uint32_t half,
		       const struct jf_block_info *in, struct rlog *ret,
		       char *err, size_t len)
{
	return replay_read(st, half, in->nonce, in->gen, false, 0, ret, err, len);
}

/*
 * No superblock names the live half: the newest half whose checkpoint is
 * whole (it holds every entry acknowledged before it), else the newest.
 */
static int plan_lost(const struct store *st, struct recover_plan *p,
		     char *err, size_t len)
{
	struct jf_block_info in[2];
	struct rlog lg[2] = { 0 };
	int ok[2], best = -1, r = 0;

	for (uint32_t h = 0; h < 2; h++) {
		ok[h] = replay_peek(st, h, &in[h]);
		if (ok[h] < 0)
			return ok[h];
		if (ok[h] > 0)
			r = read_peeked(st, h, &in[h], &lg[h], err, len);
		if (r < 0)
			goto out_free;
	}
	for (int pass = 0; pass < 2 && best < 0; pass++)
		for (int h = 0; h < 2; h++)
			if (ok[h] > 0 && (pass || lg[h].ck_complete) &&
			    (best < 0 || gen_ahead(in[h].gen, in[best].gen) > 0))
				best = h;
	for (int h = 0; h < 2; h++)
		if (ok[h] > 0 && (!p->gen_max ||
				  gen_ahead(in[h].gen, p->gen_max) > 0))
			p->gen_max = in[h].gen;
	snprintf(p->what, sizeof(p->what), "%s: no valid superblock (both slots "
		 "are zeroed or damaged)", st->files[0].path);
	p->damage++;
	if (best >= 0) {
		p->log = lg[best];
		memset(&lg[best], 0, sizeof(lg[best]));
	} else {
		p->log = (struct rlog){ .blocks = store_log_blocks(st) };
	}
out_free:
	replay_free(&lg[0]);
	replay_free(&lg[1]);
	return r;
}

int recover_plan(const struct store *st, bool salvage, struct recover_plan *ret,
		 char *err, size_t len)
{
	struct recover_plan p = { 0 };
	uint32_t other = !st->sb_active;
	bool v2 = st->sb_version == STORE_VERSION_OLD;
	struct rlog ol = { 0 };
	int r;

	if (st->sb_lost) {
		r = plan_lost(st, &p, err, len);
		if (r < 0)
			return r;
		*ret = p;
		return 0;
	}
	p.gen_max = st->sb_gen;
	r = replay_read(st, st->sb_active, st->sb_nonce, st->sb_gen, v2,
			st->sb_ck_blocks, &p.log, err, len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p.log.nhole; i++) {
		if (!p.log.hole[i].damage)
			continue;
		if (!p.damage++)
			recover_describe(st, &p.log, &p.log.hole[i], p.what,
					 sizeof(p.what));
	}
	/* Version 2 blocks carry no generation: nothing to compare. */
	r = v2 ? 0 : replay_peek(st, other, &p.other);
	if (r < 0)
		goto out_free;
	p.other_valid = r > 0;
	r = 0;
	if (!p.other_valid || gen_ahead(p.other.gen, st->sb_gen) < 1)
		goto out;
	/*
	 * A newer checkpoint is normal when a crash cut its flip; commits
	 * after it, or a generation two ahead, mean a flip that completed.
	 */
	r = read_peeked(st, other, &p.other, &ol, err, len);
	if (r < 0)
		goto out_free;
	p.other_commits = ol.commits;
	p.gen_max = st->sb_gen + (uint64_t)gen_ahead(p.other.gen, st->sb_gen);
	p.newer = ol.commits || gen_ahead(p.other.gen, st->sb_gen) > 1;
	if (p.newer) {
		/* The newest state first: it decides what is lost. */
		snprintf(p.what, sizeof(p.what), "%s: log half %u holds generation "
			 "%" PRIu32 " with %" PRIu64 " commits, newer than the "
			 "superblock's generation %" PRIu64 ": the newest superblock "
			 "was lost", st->files[0].path, other, p.other.gen,
			 ol.commits, st->sb_gen);
		p.damage++;
		if (salvage) {
			replay_free(&p.log);
			p.log = ol;
			memset(&ol, 0, sizeof(ol));
		}
	}
	replay_free(&ol);
out:
	*ret = p;
	return 0;
out_free:
	replay_free(&p.log);
	return r;
}

void recover_plan_free(struct recover_plan *p)
{
	replay_free(&p->log);
}

static const char *slot_word(const struct store_slot *s)
{
	return s->state == SLOT_EMPTY ? "zeroed" : "damaged (not a valid "
	       "superblock)";
}

int recover_slots(const struct store *st, uint32_t index,
		  const struct rlog *live, char *buf, size_t len)
{
	const struct store_file *f = &st->files[index];
	const struct store_slot *a = &f->slot[0], *b = &f->slot[1];
	int k = f->live;

	*buf = '\0';
	if (k < 0) {
		snprintf(buf, len, "%s: no valid superblock (slot 0 %s, slot 1 %s)",
			 f->path, slot_word(a), slot_word(b));
		return 2;
	}
	if (a->state == SLOT_VALID && b->state == SLOT_VALID) {
		if (a->gen == b->gen)
			return 0;
		/* Version 2 wrote file 0's generations to alternate slots. */
		if (a->version == STORE_VERSION_OLD &&
		    b->version == STORE_VERSION_OLD &&
		    (a->gen > b->gen ? a->gen - b->gen : b->gen - a->gen) == 1)
			return 0;
		/* Slot 0 is written first, and commits only follow both. */
		if (k == 0 && a->gen == b->gen + 1 && index == 0 && live &&
		    !live->commits) {
			snprintf(buf, len, "%s: superblock slot 0 has generation "
				 "%" PRIu64 ", slot 1 %" PRIu64 ": a checkpoint was "
				 "cut between its two superblock writes; generation "
				 "%" PRIu64 " is used", f->path, a->gen, b->gen,
				 a->gen);
			return 1;
		}
		snprintf(buf, len, "%s: superblock slot %d is stale (generation "
			 "%" PRIu64 ", slot %d has %" PRIu64 "): a write was lost; "
			 "generation %" PRIu64 " is used", f->path, !k,
			 f->slot[!k].gen, k, f->slot[k].gen, f->slot[k].gen);
		return 2;
	}
	/* Version 2 wrote only slot 0 of the other files, and at creation. */
	if (f->slot[!k].state == SLOT_EMPTY &&
	    f->slot[k].version == STORE_VERSION_OLD && (index || !f->slot[k].gen))
		return 0;
	snprintf(buf, len, "%s: superblock slot %d is %s; slot %d (generation "
		 "%" PRIu64 ") is used", f->path, !k, slot_word(&f->slot[!k]), k,
		 f->slot[k].gen);
	return 2;
}

/* --- claims and free space ------------------------------------------------ */

struct gather {
	struct claim *c;
	size_t n, cap;
	bool oom;
};

static void gather_one(struct entry *e, void *arg)
{
	struct gather *g = arg;

	for (uint32_t i = 0; i < e->next; i++) {
		if (g->n == g->cap) {
			size_t cap = g->cap ? 2 * g->cap : 4096;
			struct claim *c = realloc(g->c, cap * sizeof(*c));

			if (!c) {
				g->oom = true;
				return;
			}
			g->c = c;
			g->cap = cap;
		}
		g->c[g->n++] = (struct claim){ e->ext[i], e };
	}
}

static int claim_cmp(const void *a, const void *b)
{
	const struct sext *x = &((const struct claim *)a)->x;
	const struct sext *y = &((const struct claim *)b)->x;

	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	return x->block < y->block ? -1 : x->block > y->block;
}

int recover_claims(const struct index *ix, struct claim **ret, size_t *ret_n)
{
	struct gather g = { 0 };
	uint64_t c = 0;

	do
		c = index_scan(ix, c, gather_one, &g);
	while (c);
	if (g.oom) {
		free(g.c);
		return -ENOMEM;
	}
	if (g.n)
		qsort(g.c, g.n, sizeof(*g.c), claim_cmp);
	*ret = g.c;
	*ret_n = g.n;
	return 0;
}


/*
 * An entry's name for a log line: "tenant/key". Its catalog key is the
 * tenant, a NUL, the client's key; %.*s of it would stop at the NUL.
 */
static int key_split(const struct entry *e, const char **ret_key,
		     int *ret_len)
{
	const uint8_t *z = memchr(e->key, 0, e->key_len);

	if (!z) {
		*ret_key = "";
		*ret_len = 0;
		return (int)e->key_len;
	}
	*ret_key = (const char *)z + 1;
	*ret_len = (int)(e->key_len - (uint32_t)(z + 1 - e->key));
	return (int)(z - e->key);
}

/*
 * Rebuilds every file's free space from the recovered entries in one
 * sorted pass. Two entries claiming one block, or a block outside the
 * data area, mean a damaged log: such entries are dropped (*dropped).
 */
static int rebuild_space(struct store *st, struct index *ix, uint64_t *dropped)
{
	struct claim *c = NULL;
	struct entry *gone = NULL;
	struct extent *x = NULL;
	size_t n = 0;
	bool again;
	int r = 0;

	do {
		again = false;
		free(c);
		r = recover_claims(ix, &c, &n);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			const struct sext *p = i ? &c[i - 1].x : NULL, *q = &c[i].x;
			/*
			 * p out of range, or another extent of an entry
			 * dropped in this pass: its entry went (or goes)
			 * already, and q is judged again in the next pass,
			 * against what stays. Otherwise p is in range and
			 * p->block + p->nblocks cannot wrap.
			 */
			bool overlap = p && c[i - 1].e->linked &&
				       store_extent_valid(st, p) &&
				       p->file == q->file &&
				       p->block + p->nblocks > q->block;

			if (overlap || !store_extent_valid(st, q)) {
				struct entry *e = c[i].e;

				/*
				 * Freed after the pass: its other extents
				 * may come later in c.
				 */
				if (e->linked) {
					const char *ck;
					int kl, tl = key_split(e, &ck, &kl);

					log_warn("recovery: dropping %.*s/%.*s: "
						 "its blocks %" PRIu64 "+%u of file "
						 "%u %s", tl, (const char *)e->key,
						 kl, ck,
						 q->block, q->nblocks, q->file,
						 overlap ? "are another entry's too"
						 : "are outside the data area");
					index_del(ix, e->key, e->key_len);
					e->hnext = gone;
					gone = e;
					(*dropped)++;
				}
				again = true;
			}
		}
		while (gone) {
			struct entry *next = gone->hnext;

			free(gone);
			gone = next;
		}
	} while (again);
	x = malloc((n + 1) * sizeof(*x));
	if (!x) {
		r = -ENOMEM;
		goto out_free;
	}
	for (uint32_t f = 0, i = 0; f < st->nfiles && !r; f++) {
		size_t k = 0;

		for (; i < n && c[i].x.file == f; i++)
			x[k++] = (struct extent){ c[i].x.block, c[i].x.nblocks };
		r = store_space_rebuild(st, f, x, k);
	}
out_free:
	free(x);
	free(c);
	return r;
}

/* --- data ------------------------------------------------------------------ */

struct verify {
	const struct store *st;
	recover_bad_fn *fn;
	void *arg;
	uint8_t *buf;
	uint64_t segs, bytes;
};

#define VERIFY_BUF	(1u << 20)

static void verify_one(struct entry *e, void *arg)
{
	struct verify *v = arg;

	for (uint32_t i = 0; i < e->next; i++)
		if (!store_extent_valid(v->st, &e->ext[i]))
			return;
	for (uint32_t i = 0; i < e->nseg; i++) {
		uint32_t got = 0;
		int r = store_seg_verify(v->st, e, i, v->buf, VERIFY_BUF, &got);

		v->segs++;
		v->bytes += e->segs[i].len;
		if (r < 0)
			v->fn(v->arg, e, i, r, got);
	}
}

int recover_verify(const struct store *st, const struct index *ix,
		   recover_bad_fn *fn, void *arg, uint64_t *segs,
		   uint64_t *bytes)
{
	struct verify v = { .st = st, .fn = fn, .arg = arg };
	uint64_t c = 0;

	if (posix_memalign((void **)&v.buf, STORE_BLOCK, VERIFY_BUF))
		return -ENOMEM;
	do
		c = index_scan(ix, c, verify_one, &v);
	while (c);
	free(v.buf);
	if (segs)
		*segs += v.segs;
	if (bytes)
		*bytes += v.bytes;
	return 0;
}

/* --- startup --------------------------------------------------------------- */

static void log_loss(void *arg, const struct rloss *l)
{
	const struct store *st = arg;
	char line[2048];

	recover_loss_line(st, l, line, sizeof(line));
	log_warn("%s: %s", st->mode == STORE_SALVAGE ? "salvage" : "recovery",
		 line);
}

/* A salvaged entry whose data no longer matches: dropped. */
struct bad {
	struct entry **e;
	size_t n, cap;
	bool oom;
};

static void note_bad(void *arg, struct entry *e, uint32_t seg, int err,
		     uint32_t got)
{
	struct bad *b = arg;

	const char *ck;
	int kl, tl = key_split(e, &ck, &kl);

	log_warn("salvage: dropping %.*s/%.*s: segment %u %s", tl,
		 (const char *)e->key, kl, ck, seg, err == -EBADMSG ? "does not match its CRC32C "
		 "(its blocks were reused, or damaged)" : strerror(-err));
	if (b->n && b->e[b->n - 1] == e)
		return;
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		struct entry **p = realloc(b->e, cap * sizeof(*p));

		if (!p) {
			b->oom = true;
			return;
		}
		b->e = p;
		b->cap = cap;
	}
	b->e[b->n++] = e;
}

static int salvage_data(const struct store *st, struct index *ix,
			uint64_t *dropped)
{
	struct bad b = { 0 };
	int r = recover_verify(st, ix, note_bad, &b, NULL, NULL);

	if (!r && b.oom)
		r = -ENOMEM;
	for (size_t i = 0; i < b.n; i++) {
		free(index_del(ix, b.e[i]->key, b.e[i]->key_len));
		(*dropped)++;
	}
	free(b.e);
	return r;
}

/* Logs the state of every file's superblock slots. */
static void note_slots(const struct store *st, const struct rlog *live)
{
	char line[512];

	for (uint32_t i = 0; i < st->nfiles; i++) {
		int r = recover_slots(st, i, live, line, sizeof(line));

		if (r == 1)
			log_notice("%s", line);
		else if (r == 2)
			log_warn("%s; %s", line, i ? "both slots are rewritten" :
				 "the startup checkpoint rewrites both");
	}
}

/* Replays the chosen half; with salvage around damage, data checked. */
static int replay(struct store *st, struct index *ix,
		  const struct recover_plan *p, bool salvage, uint64_t t0,
		  char *err, size_t len)
{
	struct replay_stats rs = { 0 };
	uint64_t dropped = 0;
	int r;

	r = replay_records(&p->log, ix, st->nfiles, salvage, log_loss, st, &rs);
	if (r == 0 && salvage)
		r = salvage_data(st, ix, &dropped);
	if (r == 0)
		r = rebuild_space(st, ix, &dropped);
	if (r < 0) {
		/* Never a checkpoint of a shortened index. */
		snprintf(err, len, "recovery of %s: %s; the store was not changed",
			 st->files[0].path, strerror(-r));
		return r;
	}
	if (rs.dropped + dropped)
		log_warn("recovery: dropped %" PRIu64 " damaged or conflicting "
			 "entries", rs.dropped + dropped);
	if (p->log.torn)
		log_notice("recovery: the log of %s ends at block %" PRIu64 "; %"
			   PRIu64 " blocks after it are what a crash left of a "
			   "commit that was never acknowledged", st->files[0].path,
			   p->log.end, p->log.torn);
	log_notice("recovery: %" PRIu64 " entries from %zu log blocks (%" PRIu64
		   " KiB of log half %u read) in %" PRIu64 " ms", ix->count,
		   p->log.nblk, p->log.scanned * STORE_BLOCK >> 10, p->log.half,
		   now_ms() - t0);
	return 0;
}

int recover_load(struct store *st, struct index *ix, char *err, size_t len)
{
	bool salvage = st->mode == STORE_SALVAGE;
	uint64_t t0 = now_ms();
	struct recover_plan p;
	int r;

	r = recover_plan(st, salvage, &p, err, len);
	if (r < 0)
		return r;
	note_slots(st, &p.log);
	if (p.log.v2)
		log_notice("%s: store format version %u: read with its rules, "
			   "then upgraded to version %u", st->files[0].path,
			   STORE_VERSION_OLD, STORE_VERSION);
	if (p.damage && !salvage) {
		snprintf(err, len, "%s; acknowledged entries would be lost: "
			 "kvswapd --check shows what survives, kvswapd "
			 "--salvage starts on it and logs what is lost", p.what);
		recover_plan_free(&p);
		return -EUCLEAN;
	}
	if (p.damage)
		log_warn("salvage: %s; starting on log half %u (generation "
			 "%" PRIu64 ")", p.what, p.log.half, p.log.gen);
	/* The next checkpoint's generation beats every one on disk. */
	if (salvage && (st->sb_lost || p.newer))
		store_sb_adopt(st, p.log.half, p.log.nonce, p.gen_max);
	r = replay(st, ix, &p, salvage, t0, err, len);
	recover_plan_free(&p);
	return r;
}

int journal_recover(struct journal *j, char *err, size_t len)
{
	struct store *st = j->store;
	int r;

	if (!st->created) {
		r = recover_load(st, j->index, err, len);
		if (r < 0)
			return r;
	}
	if (j->replayed) {
		r = j->replayed(j->replayed_arg, err, len);
		if (r < 0)
			return r;
	}
	/* A fresh epoch: stale blocks past the old tail can never replay. */
	r = journal_checkpoint_sync(j, err, len);
	for (uint32_t i = 1; !r && i < st->nfiles; i++) {
		if (store_sb_current(st, i))
			continue;
		r = store_sb_rewrite(st, i);
		if (r < 0)
			snprintf(err, len, "%s: rewriting its superblock: %s",
				 st->files[i].path, strerror(-r));
	}
	return r;
}
