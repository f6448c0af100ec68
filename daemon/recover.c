/* SPDX-License-Identifier: MIT */
/*
 * Recovery at startup (recover.h): read the live log half up to its first
 * invalid block, replay its records into the index, rebuild every file's
 * free space from the entries that survived, and start a fresh epoch with
 * a checkpoint. Synchronous: it runs before the daemon serves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "index.h"
#include "jformat.h"
#include "journal.h"
#include "log.h"
#include "recover.h"
#include "store.h"

/* Reads the live half's valid blocks; returns the record stream. */
static int read_log(struct store *st, uint8_t **ret, size_t *ret_len,
		    uint64_t *ret_blocks, char *err, size_t len)
{
	const size_t chunk = 4u << 20;
	int fd = st->files[0].fd;
	uint64_t base = store_log_offset(st, st->sb_active);
	uint64_t nb = store_log_blocks(st);
	uint8_t *buf, *out = NULL;
	size_t olen = 0, ocap = 0;
	uint64_t b = 0;
	bool end = false;

	if (posix_memalign((void **)&buf, STORE_BLOCK, chunk)) {
		snprintf(err, len, "out of memory");
		return -ENOMEM;
	}
	while (!end && b < nb) {
		size_t want = (nb - b) * STORE_BLOCK < chunk ? (nb - b) * STORE_BLOCK
							     : chunk;
		ssize_t n = pread(fd, buf, want, (off_t)(base + b * STORE_BLOCK));

		if (n < 0) {
			snprintf(err, len, "reading the metadata log of %s: %s",
				 st->files[0].path, strerror(errno));
			free(buf);
			free(out);
			return -errno;
		}
		/*
		 * The half lies inside the file: a short read is a failed one.
		 * Replaying only what it returned would drop the entries after
		 * it, for good, with the checkpoint that follows.
		 */
		if ((size_t)n < want) {
			snprintf(err, len, "reading the metadata log of %s: short read "
				 "(%zd of %zu bytes at %llu): Input/output error",
				 st->files[0].path, n, want,
				 (unsigned long long)(base + b * STORE_BLOCK));
			free(buf);
			free(out);
			return -EIO;
		}
		for (size_t i = 0; i + STORE_BLOCK <= (size_t)n; i += STORE_BLOCK, b++) {
			uint32_t used;

			if (!jf_block_check(buf + i, st->sb_nonce, b, &used)) {
				end = true;
				break;
			}
			if (olen + used > ocap) {
				uint8_t *p = realloc(out, ocap ? 2 * ocap : chunk);

				if (!p) {
					free(buf);
					free(out);
					snprintf(err, len, "out of memory");
					return -ENOMEM;
				}
				out = p;
				ocap = ocap ? 2 * ocap : chunk;
			}
			memcpy(out + olen, buf + i + JF_HDR, used);
			olen += used;
		}
	}
	free(buf);
	*ret = out;
	*ret_len = olen;
	*ret_blocks = b;
	return 0;
}

/*
 * Replays the record at p into the index; returns its length, 0 at a cut
 * or bad record (replay stops). A damaged PUT is skipped (*dropped).
 */
static size_t replay_one(struct journal *j, const uint8_t *p, size_t len,
			 uint64_t *dropped)
{
	struct jf_rec rec;
	struct entry *e;
	size_t n = jf_rec_parse(p, len, &rec);
	int r;

	if (!n)
		return 0;
	if (rec.type == JF_DEL) {
		free(index_del(j->index, rec.key, rec.key_len));
		return n;
	}
	r = jf_rec_entry(&rec, j->store->nfiles, &e);
	if (r == -ENOMEM)
		return 0;
	if (r < 0) {
		(*dropped)++;
		return n;
	}
	free(index_put(j->index, e));
	return n;
}

/* An extent of a recovered entry, to sort the whole store's use. */
struct used {
	struct sext x;
	struct entry *e;
};

struct gather {
	struct used *u;
	size_t n, cap;
	bool oom;
};

static void gather_one(struct entry *e, void *arg)
{
	struct gather *g = arg;

	for (uint32_t i = 0; i < e->next; i++) {
		if (g->n == g->cap) {
			size_t cap = g->cap ? 2 * g->cap : 4096;
			struct used *u = realloc(g->u, cap * sizeof(*u));

			if (!u) {
				g->oom = true;
				return;
			}
			g->u = u;
			g->cap = cap;
		}
		g->u[g->n++] = (struct used){ e->ext[i], e };
	}
}

static int used_cmp(const void *a, const void *b)
{
	const struct sext *x = &((const struct used *)a)->x;
	const struct sext *y = &((const struct used *)b)->x;

	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	return x->block < y->block ? -1 : x->block > y->block;
}

/*
 * Rebuilds every file's free space from the recovered entries in one
 * sorted pass. Two entries claiming one block, or a block outside the
 * data area, mean a damaged log: such entries are dropped (*dropped).
 */
static int rebuild_space(struct journal *j, uint64_t *dropped)
{
	struct store *st = j->store;
	struct gather g = { 0 };
	struct entry *gone = NULL;
	struct extent *x = NULL;
	uint64_t c = 0;
	bool again;
	int r = 0;

	do {
		again = false;
		g.n = 0;
		do
			c = index_scan(j->index, c, gather_one, &g);
		while (c);
		if (g.oom) {
			r = -ENOMEM;
			goto out_free;
		}
		if (g.n)
			qsort(g.u, g.n, sizeof(*g.u), used_cmp);
		for (size_t i = 0; i < g.n; i++) {
			const struct sext *p = i ? &g.u[i - 1].x : NULL, *q = &g.u[i].x;
			/* p may be out of range itself: then it goes too. */
			bool overlap = p && p->file == q->file &&
				       p->block + p->nblocks > q->block;

			if (overlap || !store_extent_valid(st, q)) {
				struct entry *e = g.u[i].e;

				/*
				 * Freed after the pass: its other extents
				 * may come later in g.u.
				 */
				if (e->linked) {
					index_del(j->index, e->key, e->key_len);
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
	x = malloc((g.n + 1) * sizeof(*x));
	if (!x) {
		r = -ENOMEM;
		goto out_free;
	}
	for (uint32_t f = 0, i = 0; f < st->nfiles && !r; f++) {
		size_t k = 0;

		for (; i < g.n && g.u[i].x.file == f; i++)
			x[k++] = (struct extent){ g.u[i].x.block, g.u[i].x.nblocks };
		r = store_space_rebuild(st, f, x, k);
	}
out_free:
	free(x);
	free(g.u);
	return r;
}

int journal_recover(struct journal *j, char *err, size_t len)
{
	uint64_t dropped = 0, blocks = 0, t0 = now_ms();
	uint8_t *log = NULL;
	size_t loglen = 0, pos = 0;
	int r;

	if (!j->store->created) {
		r = read_log(j->store, &log, &loglen, &blocks, err, len);
		if (r < 0)
			return r;
		while (pos < loglen) {
			size_t n = replay_one(j, log + pos, loglen - pos, &dropped);

			if (!n)
				break;
			pos += n;
		}
		free(log);
		r = rebuild_space(j, &dropped);
		if (r < 0) {
			snprintf(err, len, "recovery: out of memory");
			return r;
		}
		if (dropped)
			log_warn("recovery: dropped %llu damaged or conflicting "
				 "entries", (unsigned long long)dropped);
		log_notice("recovery: %llu entries from %llu log blocks in %llu ms",
			   (unsigned long long)j->index->count,
			   (unsigned long long)blocks,
			   (unsigned long long)(now_ms() - t0));
	}
	/* A fresh epoch: stale blocks past the old tail can never replay. */
	return journal_checkpoint_sync(j, err, len);
}
