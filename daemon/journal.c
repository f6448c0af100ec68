/* SPDX-License-Identifier: MIT */
/*
 * The metadata log's commits and checkpoints. File 0 holds two halves; the
 * superblock names the live one and its nonce. The live half is a sequence
 * of 4 KiB blocks (jformat.h), valid while its CRC matches, its nonce is
 * the live one and seq is its index. The payloads concatenated are a
 * stream of records (PUT, DEL); replaying them in order rebuilds the index
 * (recover.c). Recovery stops at the first invalid block, and a record cut
 * there is ignored: it was never acknowledged, since a commit is
 * acknowledged only once all its blocks are durable.
 *
 * Each commit starts at a fresh block, so a block holding acknowledged
 * records is never written again (a torn rewrite could lose them). A
 * checkpoint writes the live entries to the other half under a fresh
 * random nonce, then flips the superblock: blocks of an older epoch or of
 * an interrupted checkpoint can never pass for live ones.
 *
 * Write order for a commit: fdatasync every store file (the data of the
 * entries it names must be durable first), then the blocks with RWF_DSYNC.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "index.h"
#include "jformat.h"
#include "journal.h"
#include "log.h"
#include "loop.h"
#include "store.h"

_Static_assert(JF_BLOCK == STORE_BLOCK, "log blocks are store blocks");

/* REC_HOLD writes nothing: it holds a reference until earlier records land. */
enum { REC_HOLD = 0 };

struct jitem {
	struct jitem *next;
	uint8_t type;		/* REC_HOLD, JF_PUT or JF_DEL */
	struct entry *e;	/* PUT: a reference; DEL: the former index ref */
	struct entry *old;	/* PUT: replaced entry, index ref to drop */
	journal_done_fn *done;
	void *arg;
};

static size_t rec_size(uint8_t type, const struct entry *e)
{
	return type == REC_HOLD ? 0 : jf_rec_size(type, e);
}

static void rec_write(struct jf_stream *s, uint8_t type, const struct entry *e)
{
	if (type != REC_HOLD)
		jf_rec_write(s, type, e);
}

/* Makes the staging buffer hold at least `blocks` blocks. */
static int reserve(struct journal *j, size_t blocks)
{
	size_t want = blocks * STORE_BLOCK;
	void *p;

	if (want <= j->cap)
		return 0;
	if (want < 2 * j->cap)
		want = 2 * j->cap;
	if (posix_memalign(&p, STORE_BLOCK, want))
		return -ENOMEM;
	free(j->buf);
	j->buf = p;
	j->cap = want;
	return 0;
}

/* A checkpoint's staging buffer is as large as the index: give it back. */
static void shrink(struct journal *j)
{
	if (j->cap > (4u << 20)) {
		free(j->buf);
		j->buf = NULL;
		j->cap = 0;
	}
}

/* --- setup --------------------------------------------------------------- */

static void on_cqe(void *ctx, enum ud_type type, void *ptr,
		   const struct io_uring_cqe *cqe);

void journal_init(struct journal *j, struct store *s, struct index *ix,
		  struct loop *lp)
{
	memset(j, 0, sizeof(*j));
	j->store = s;
	j->index = ix;
	j->loop = lp;
	loop_on(lp, UD_JOURNAL, on_cqe, j);
	loop_on(lp, UD_JTIMER, on_cqe, j);
}

void journal_on_progress(struct journal *j, journal_progress_fn *fn, void *arg)
{
	j->progress = fn;
	j->progress_arg = arg;
}

static void release(struct journal *j, struct jitem *it)
{
	struct jitem *next;

	for (; it; it = next) {
		next = it->next;
		/* Superseded blocks become reusable only now. */
		store_entry_put(j->store, it->e);
		store_entry_put(j->store, it->old);
		free(it);
	}
}

void journal_fini(struct journal *j)
{
	if (!j)
		return;
	release(j, j->head);
	release(j, j->group);
	release(j, j->limbo);
	j->head = j->tail = j->group = j->limbo = NULL;
	free(j->buf);
	j->buf = NULL;
	j->cap = 0;
}

/* --- queueing ------------------------------------------------------------ */

static int queue(struct journal *j, uint8_t type, struct entry *e,
		 struct entry *old, journal_done_fn *done, void *arg)
{
	struct jitem *it = calloc(1, sizeof(*it));

	if (!it)
		return -ENOMEM;
	it->type = type;
	it->e = e;
	it->old = old;
	it->done = done;
	it->arg = arg;
	if (j->tail) {
		j->tail->next = it;
	} else {
		j->head = it;
		j->head_ms = now_ms();
	}
	j->tail = it;
	if (done)
		j->urgent = true;
	return 0;
}

void journal_urgent(struct journal *j)
{
	j->urgent = true;
}

/*
 * Defers a group of records nobody waits for until JOURNAL_DELAY_MS after
 * the first: returns true (and arms the timer) if the kick should wait.
 */
static bool defer(struct journal *j)
{
	uint64_t age = now_ms() - j->head_ms, left;
	struct io_uring_sqe *sqe;

	if (j->urgent || j->want_checkpoint || age >= JOURNAL_DELAY_MS)
		return false;
	if (j->timer_armed)
		return true;
	left = JOURNAL_DELAY_MS - age;
	j->timer_ts.tv_sec = 0;
	j->timer_ts.tv_nsec = (long long)left * 1000000;
	sqe = loop_sqe(j->loop);
	io_uring_prep_timeout(sqe, &j->timer_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(j, UD_JTIMER));
	j->timer_armed = true;
	return true;
}

int journal_put(struct journal *j, struct entry *e, struct entry *old,
		journal_done_fn *done, void *arg)
{
	int r;

	e->refs++;
	r = queue(j, JF_PUT, e, old, done, arg);
	if (r < 0)
		e->refs--;
	return r;
}

int journal_del(struct journal *j, struct entry *e, journal_done_fn *done,
		void *arg)
{
	return queue(j, JF_DEL, e, NULL, done, arg);
}

int journal_hold(struct journal *j, struct entry *e)
{
	return queue(j, REC_HOLD, e, NULL, NULL, NULL);
}

bool journal_idle(const struct journal *j)
{
	return j->phase == JOURNAL_IDLE && !j->head;
}

/*
 * Ends the group: callbacks, then the references it held. After a failed
 * write nobody knows which records landed, so the references (the blocks
 * of deleted and replaced entries) wait in limbo for the next successful
 * checkpoint, which describes the index without them.
 */
static void group_done(struct journal *j, int err, bool checkpoint)
{
	struct jitem *g = j->group, *it;

	j->group = NULL;
	for (it = g; it; it = it->next)
		if (it->done)
			it->done(it->arg, err);
	if (err) {
		if (g) {
			for (it = g; it->next; it = it->next)
				;
			it->next = j->limbo;
			j->limbo = g;
		}
		j->want_checkpoint = true;
		j->failed_ms = now_ms();
		return;
	}
	release(j, g);
	if (checkpoint) {
		release(j, j->limbo);
		j->limbo = NULL;
		j->failed_ms = 0;
	}
	if (j->progress)
		j->progress(j->progress_arg);
}

/* --- I/O ----------------------------------------------------------------- */

static void submit_sync(struct journal *j)
{
	for (uint32_t i = 0; i < j->store->nfiles; i++) {
		struct io_uring_sqe *sqe = loop_sqe(j->loop);

		io_uring_prep_fsync(sqe, (int)i, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_JOURNAL));
		j->ops++;
	}
}

/* Writes blocks with RWF_DSYNC, in pieces the kernel takes whole. */
static void submit_write(struct journal *j, const uint8_t *buf, size_t bytes,
			 uint64_t off)
{
	const size_t piece = 64u << 20;

	for (size_t done = 0; done < bytes; done += piece) {
		struct io_uring_sqe *sqe = loop_sqe(j->loop);
		size_t n = bytes - done < piece ? bytes - done : piece;

		io_uring_prep_write(sqe, 0, buf + done, (unsigned)n, off + done);
		sqe->rw_flags = RWF_DSYNC;
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_JOURNAL));
		j->ops++;
		j->expect += n;
	}
}

/* The group's blocks, appended to the live half. */
static void submit_group(struct journal *j)
{
	submit_write(j, j->buf, j->nblocks * STORE_BLOCK,
		     store_log_offset(j->store, j->store->sb_active) +
		     j->next * STORE_BLOCK);
}

struct snap {
	struct jf_stream *s;
	size_t bytes;
};

static void snap_size(struct entry *e, void *arg)
{
	((struct snap *)arg)->bytes += jf_rec_size(JF_PUT, e);
}

static void snap_write(struct entry *e, void *arg)
{
	jf_rec_write(((struct snap *)arg)->s, JF_PUT, e);
}

/*
 * Stages a checkpoint: every linked entry, then the group's records (PUTs
 * of entries not linked yet, DELs), under a fresh nonce. Returns blocks.
 */
static ssize_t stage_checkpoint(struct journal *j, uint64_t nonce)
{
	struct snap sn = { 0 };
	struct jf_stream s;
	uint64_t c = 0;
	size_t blocks;

	do
		c = index_scan(j->index, c, snap_size, &sn);
	while (c);
	for (struct jitem *it = j->group; it; it = it->next)
		sn.bytes += rec_size(it->type, it->e);
	blocks = jf_blocks_for(sn.bytes);
	if (blocks > store_log_blocks(j->store))
		return -ENOSPC;
	if (reserve(j, blocks ? blocks : 1) < 0)
		return -ENOMEM;
	jf_stream_init(&s, j->buf, blocks);
	sn.s = &s;
	do
		c = index_scan(j->index, c, snap_write, &sn);
	while (c);
	for (struct jitem *it = j->group; it; it = it->next)
		rec_write(&s, it->type, it->e);
	return (ssize_t)jf_stream_seal(&s, nonce, 0);
}

static ssize_t stage_group(struct journal *j)
{
	struct jf_stream s;
	size_t bytes = 0, blocks;

	for (struct jitem *it = j->group; it; it = it->next)
		bytes += rec_size(it->type, it->e);
	blocks = jf_blocks_for(bytes);
	if (reserve(j, blocks) < 0)
		return -ENOMEM;
	jf_stream_init(&s, j->buf, blocks);
	for (struct jitem *it = j->group; it; it = it->next)
		rec_write(&s, it->type, it->e);
	return (ssize_t)jf_stream_seal(&s, j->store->sb_nonce, j->next);
}

static uint64_t fresh_nonce(uint64_t old)
{
	uint64_t nonce;

	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = old ^ now_ms() * 0x9e3779b97f4a7c15ull;
	return nonce;
}

static void start_checkpoint(struct journal *j)
{
	ssize_t n;

	j->ck_half = !j->store->sb_active;
	j->ck_nonce = fresh_nonce(j->ck_nonce);
	n = stage_checkpoint(j, j->ck_nonce);
	if (n < 0) {
		log_err("checkpoint: %s: the index (%llu entries) does not fit in "
			"a %llu MiB log half", strerror((int)-n),
			(unsigned long long)j->index->count,
			(unsigned long long)(j->store->meta_half >> 20));
		group_done(j, (int)n, false);
		return;
	}
	j->nblocks = (size_t)n;
	j->err = 0;
	j->expect = j->written = 0;
	j->phase = JOURNAL_CK_SYNC;
	submit_sync(j);
}

void journal_kick(struct journal *j)
{
	bool puts = false;
	size_t bytes = 0;
	ssize_t n;

	if (j->phase != JOURNAL_IDLE)
		return;
	if (!j->head && !(j->want_checkpoint && j->limbo))
		return;
	/* After a failed write, try again at most once a second. */
	if (j->failed_ms && now_ms() - j->failed_ms < 1000)
		return;
	if (j->head && defer(j))
		return;
	j->group = j->head;
	j->head = j->tail = NULL;
	j->urgent = false;
	for (struct jitem *it = j->group; it; it = it->next) {
		puts |= it->type == JF_PUT;
		bytes += rec_size(it->type, it->e);
	}
	/* A checkpoint when the live half is three quarters full. */
	if (j->want_checkpoint ||
	    j->next + jf_blocks_for(bytes) > store_log_blocks(j->store) * 3 / 4) {
		start_checkpoint(j);
		return;
	}
	/* Only holds: every record before them has landed already. */
	if (!bytes) {
		group_done(j, 0, false);
		return;
	}
	n = stage_group(j);
	if (n < 0) {
		log_err("journal: cannot stage %zu bytes of records: %s", bytes,
			strerror((int)-n));
		group_done(j, (int)n, false);
		return;
	}
	j->nblocks = (size_t)n;
	j->err = 0;
	j->expect = j->written = 0;
	if (puts) {
		j->phase = JOURNAL_SYNC;
		submit_sync(j);
	} else {
		j->phase = JOURNAL_WRITE;
		submit_group(j);
	}
}

static bool phase_writes(enum journal_phase ph)
{
	return ph == JOURNAL_WRITE || ph == JOURNAL_CK_WRITE || ph == JOURNAL_CK_SB;
}

/* Completion of a journal operation: the phase moves on once all are in. */
static void on_cqe(void *ctx, enum ud_type type, void *ptr,
		   const struct io_uring_cqe *cqe)
{
	struct journal *j = ctx;
	int res = cqe->res;
	bool ck;

	if (type == UD_JTIMER) {
		/* A deferred group is due (after_batch kicks it too). */
		j->timer_armed = false;
		journal_kick(j);
		return;
	}
	assert(type == UD_JOURNAL && j->ops > 0);
	if (res < 0 && !j->err)
		j->err = res;
	if (res >= 0 && phase_writes(j->phase))
		j->written += (size_t)res;
	if (--j->ops)
		return;
	if (!j->err && j->written != j->expect && phase_writes(j->phase))
		j->err = -EIO;	/* short write */
	if (j->err) {
		log_err("journal: %s failed: %s; the next commit writes a "
			"checkpoint", j->phase == JOURNAL_SYNC ||
			j->phase == JOURNAL_CK_SYNC ? "fdatasync" : "metadata write",
			strerror(-j->err));
		j->phase = JOURNAL_IDLE;
		group_done(j, j->err, false);
		j->err = 0;
		j->written = j->expect = 0;
		return;
	}
	j->written = 0;
	j->expect = 0;
	switch (j->phase) {
	case JOURNAL_SYNC:
		j->phase = JOURNAL_WRITE;
		submit_group(j);
		return;
	case JOURNAL_WRITE:
		j->next += j->nblocks;
		j->commits++;
		j->log_bytes += j->nblocks * STORE_BLOCK;
		break;
	case JOURNAL_CK_SYNC:
		j->phase = JOURNAL_CK_WRITE;
		submit_write(j, j->buf, j->nblocks * STORE_BLOCK,
			     store_log_offset(j->store, j->ck_half));
		return;
	case JOURNAL_CK_WRITE:
		j->phase = JOURNAL_CK_SB;
		submit_write(j, j->sb, STORE_BLOCK,
			     store_sb_prepare(j->store, j->ck_half, j->ck_nonce,
					      j->sb));
		return;
	case JOURNAL_CK_SB:
		store_sb_commit(j->store, j->ck_half, j->ck_nonce);
		j->next = j->nblocks;
		j->want_checkpoint = false;
		j->checkpoints++;
		j->log_bytes += (j->nblocks + 1) * STORE_BLOCK;
		log_info("checkpoint: %llu entries in %zu KiB of log half %u",
			 (unsigned long long)j->index->count,
			 j->nblocks * STORE_BLOCK / 1024, j->ck_half);
		break;
	default:
		return;
	}
	ck = j->phase == JOURNAL_CK_SB;
	j->phase = JOURNAL_IDLE;
	shrink(j);
	group_done(j, 0, ck);
	journal_kick(j);
}

/* --- synchronous checkpoints --------------------------------------------- */

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf = (const uint8_t *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int journal_checkpoint_sync(struct journal *j, char *err, size_t len)
{
	struct store *st = j->store;
	int fd = st->files[0].fd, r = 0;
	uint32_t half = !st->sb_active;
	uint64_t nonce;
	ssize_t n;

	assert(j->phase == JOURNAL_IDLE);
	/* Everything queued goes into this checkpoint. */
	if (j->head) {
		j->group = j->head;
		j->head = j->tail = NULL;
	}
	nonce = fresh_nonce(0);
	n = stage_checkpoint(j, nonce);
	if (n < 0) {
		snprintf(err, len, "checkpoint: %s: %llu entries do not fit in a "
			 "%llu MiB log half", strerror((int)-n),
			 (unsigned long long)j->index->count,
			 (unsigned long long)(st->meta_half >> 20));
		group_done(j, (int)n, false);
		return (int)n;
	}
	for (uint32_t i = 0; !r && i < st->nfiles; i++)
		if (fdatasync(st->files[i].fd) < 0)
			r = -errno;
	if (!r)
		r = pwrite_all(fd, j->buf, (size_t)n * STORE_BLOCK,
			       store_log_offset(st, half));
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	if (!r)
		r = pwrite_all(fd, j->sb, STORE_BLOCK,
			       store_sb_prepare(st, half, nonce, j->sb));
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	if (r < 0) {
		snprintf(err, len, "checkpoint to %s: %s", st->files[0].path,
			 strerror(-r));
		group_done(j, r, false);
		return r;
	}
	store_sb_commit(st, half, nonce);
	j->next = (uint64_t)n;
	j->checkpoints++;
	j->want_checkpoint = false;
	shrink(j);
	group_done(j, 0, true);
	return 0;
}
