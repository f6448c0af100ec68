/* SPDX-License-Identifier: MIT */
/*
 * The metadata log. File 0 holds two halves; the superblock names the live
 * one and its nonce. The live half is a sequence of 4 KiB blocks, each
 *
 *   magic, crc32c, nonce, seq, used   (32 bytes)   payload (4064 bytes)
 *
 * valid while its CRC matches, its nonce is the live one and seq is its
 * index. The payloads concatenated are a stream of records (PUT, DEL);
 * replaying them in order rebuilds the index. Recovery stops at the first
 * invalid block, and a record cut there is ignored: it was never
 * acknowledged, since a commit is acknowledged only once all its blocks
 * are durable.
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
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "crc32c.h"
#include "journal.h"
#include "log.h"
#include "server.h"

#define JB_MAGIC	0x424c564bu	/* "KVLB" */
#define JB_HDR		32u
#define JB_PAYLOAD	(STORE_BLOCK - JB_HDR)

/* REC_HOLD writes nothing: it holds a reference until earlier records land. */
enum { REC_HOLD = 0, REC_PUT = 1, REC_DEL = 2 };

enum phase {
	PH_IDLE,
	PH_SYNC,		/* fdatasync of the store files */
	PH_WRITE,		/* the group's blocks */
	PH_CK_SYNC,
	PH_CK_WRITE,		/* the checkpoint's blocks */
	PH_CK_SB,		/* the superblock flip */
};

struct jitem {
	struct jitem *next;
	uint8_t type;
	struct entry *e;	/* PUT: a reference; DEL: the former index ref */
	struct entry *old;	/* PUT: replaced entry, index ref to drop */
	journal_done_fn *done;
	void *arg;
};

struct block_hdr {
	uint32_t magic;
	uint32_t crc;		/* of the whole block with this field 0 */
	uint64_t nonce;
	uint64_t seq;
	uint32_t used;		/* payload bytes */
	uint32_t pad;
};

/* A record's fixed part, little-endian, followed by its variable parts. */
struct rec_hdr {
	uint8_t type;
	uint8_t flags;
	uint16_t key_len;
	uint32_t nseg;
	uint32_t next;
	uint32_t meta_len;
};

struct rec_seg {
	uint64_t len;
	uint32_t crc;
	uint32_t next;
};

struct rec_ext {
	uint64_t block;
	uint32_t nblocks;
	uint32_t file;
};

/* --- the block stream ---------------------------------------------------- */

struct stream {
	uint8_t *buf;
	size_t cap;		/* blocks */
	size_t block;
	size_t pos;		/* in the current block's payload */
};

static void st_write(struct stream *s, const void *p, size_t n)
{
	const uint8_t *src = p;

	while (n) {
		size_t k;

		if (s->pos == JB_PAYLOAD) {
			s->block++;
			s->pos = 0;
		}
		k = JB_PAYLOAD - s->pos < n ? JB_PAYLOAD - s->pos : n;
		memcpy(s->buf + s->block * STORE_BLOCK + JB_HDR + s->pos, src, k);
		s->pos += k;
		src += k;
		n -= k;
	}
}

/* Seals the blocks: headers and CRCs. Returns the number of blocks. */
static size_t st_finish(struct stream *s, uint64_t nonce, uint64_t seq0)
{
	size_t n = s->block + (s->pos > 0);

	for (size_t i = 0; i < n; i++) {
		uint8_t *b = s->buf + i * STORE_BLOCK;
		struct block_hdr h = {
			.magic = JB_MAGIC,
			.nonce = nonce,
			.seq = seq0 + i,
			.used = i + 1 < n ? JB_PAYLOAD : (uint32_t)s->pos,
		};
		size_t used = h.used;

		memset(b + JB_HDR + used, 0, JB_PAYLOAD - used);
		memcpy(b, &h, sizeof(h));
		h.crc = crc32c(0, b, STORE_BLOCK);
		memcpy(b, &h, sizeof(h));
	}
	return n;
}

static size_t rec_size(uint8_t type, const struct entry *e)
{
	size_t n = sizeof(struct rec_hdr) + e->key_len;

	if (type == REC_HOLD)
		return 0;
	if (type == REC_PUT)
		n += e->meta_len + e->nseg * sizeof(struct rec_seg) +
		     e->next * sizeof(struct rec_ext);
	return n;
}

static void rec_write(struct stream *s, uint8_t type, const struct entry *e)
{
	struct rec_hdr h = {
		.type = type,
		.key_len = (uint16_t)e->key_len,
	};

	if (type == REC_HOLD)
		return;
	if (type == REC_PUT) {
		h.flags = (uint8_t)e->flags;
		h.nseg = e->nseg;
		h.next = e->next;
		h.meta_len = e->meta_len;
	}
	st_write(s, &h, sizeof(h));
	st_write(s, e->key, e->key_len);
	if (type != REC_PUT)
		return;
	st_write(s, e->meta, e->meta_len);
	for (uint32_t i = 0; i < e->nseg; i++) {
		struct rec_seg r = { e->segs[i].len, e->segs[i].crc, e->segs[i].next };

		st_write(s, &r, sizeof(r));
	}
	for (uint32_t i = 0; i < e->next; i++) {
		struct rec_ext r = { e->ext[i].block, e->ext[i].nblocks, e->ext[i].file };

		st_write(s, &r, sizeof(r));
	}
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

static size_t blocks_for(size_t bytes)
{
	return (bytes + JB_PAYLOAD - 1) / JB_PAYLOAD;
}

static uint64_t half_blocks(const struct server *srv)
{
	return srv->store.meta_half / STORE_BLOCK;
}

static uint64_t half_off(const struct server *srv, uint32_t half)
{
	return srv->store.meta_start + half * srv->store.meta_half;
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

/* --- queueing ------------------------------------------------------------ */

static int queue(struct server *srv, uint8_t type, struct entry *e,
		 struct entry *old, journal_done_fn *done, void *arg)
{
	struct journal *j = &srv->jr;
	struct jitem *it = calloc(1, sizeof(*it));

	if (!it)
		return -ENOMEM;
	it->type = type;
	it->e = e;
	it->old = old;
	it->done = done;
	it->arg = arg;
	if (j->tail)
		j->tail->next = it;
	else
		j->head = it;
	j->tail = it;
	return 0;
}

int journal_put(struct journal *j, struct entry *e, struct entry *old,
		journal_done_fn *done, void *arg)
{
	struct server *srv = j->srv;
	int r;

	e->refs++;
	r = queue(srv, REC_PUT, e, old, done, arg);
	if (r < 0)
		e->refs--;
	return r;
}

int journal_del(struct journal *j, struct entry *e, journal_done_fn *done,
		void *arg)
{
	struct server *srv = j->srv;
	return queue(srv, REC_DEL, e, NULL, done, arg);
}

int journal_hold(struct journal *j, struct entry *e)
{
	struct server *srv = j->srv;
	return queue(srv, REC_HOLD, e, NULL, NULL, NULL);
}

bool journal_idle(const struct journal *j)
{
	return j->phase == PH_IDLE && !j->head;
}

static void release(struct server *srv, struct jitem *it)
{
	struct jitem *next;

	for (; it; it = next) {
		next = it->next;
		/* Superseded blocks become reusable only now. */
		store_entry_put(&srv->store, it->e);
		store_entry_put(&srv->store, it->old);
		free(it);
	}
}

/*
 * Ends the group: callbacks, then the references it held. After a failed
 * write nobody knows which records landed, so the references (the blocks
 * of deleted and replaced entries) wait in limbo for the next successful
 * checkpoint, which describes the index without them.
 */
static void group_done(struct server *srv, int err, bool checkpoint)
{
	struct journal *j = &srv->jr;
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
	release(srv, g);
	if (checkpoint) {
		release(srv, j->limbo);
		j->limbo = NULL;
		j->failed_ms = 0;
	}
	if (j->progress)
		j->progress(j->progress_arg);
}

/* --- I/O ----------------------------------------------------------------- */

static void submit_sync(struct server *srv)
{
	struct journal *j = &srv->jr;

	for (uint32_t i = 0; i < srv->store.nfiles; i++) {
		struct io_uring_sqe *sqe = loop_sqe(&srv->loop);

		io_uring_prep_fsync(sqe, (int)i, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_JOURNAL));
		j->ops++;
	}
}

/* Writes blocks with RWF_DSYNC, in pieces the kernel takes whole. */
static void submit_write(struct server *srv, const uint8_t *buf, size_t bytes,
			 uint64_t off)
{
	const size_t piece = 64u << 20;
	struct journal *j = &srv->jr;

	for (size_t done = 0; done < bytes; done += piece) {
		struct io_uring_sqe *sqe = loop_sqe(&srv->loop);
		size_t n = bytes - done < piece ? bytes - done : piece;

		io_uring_prep_write(sqe, 0, buf + done, (unsigned)n, off + done);
		sqe->rw_flags = RWF_DSYNC;
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_JOURNAL));
		j->ops++;
		j->expect += n;
	}
}

struct snap {
	struct stream *s;
	size_t bytes;
};

static void snap_size(struct entry *e, void *arg)
{
	((struct snap *)arg)->bytes += rec_size(REC_PUT, e);
}

static void snap_write(struct entry *e, void *arg)
{
	rec_write(((struct snap *)arg)->s, REC_PUT, e);
}

/*
 * Stages a checkpoint: every linked entry, then the group's records (PUTs
 * of entries not linked yet, DELs), under a fresh nonce. Returns blocks.
 */
static ssize_t stage_checkpoint(struct server *srv, uint64_t nonce)
{
	struct journal *j = &srv->jr;
	struct snap sn = { 0 };
	struct stream s;
	uint64_t c = 0;
	size_t blocks;

	do
		c = index_scan(&srv->cat.index, c, snap_size, &sn);
	while (c);
	for (struct jitem *it = j->group; it; it = it->next)
		sn.bytes += rec_size(it->type, it->e);
	blocks = blocks_for(sn.bytes);
	if (blocks > half_blocks(srv))
		return -ENOSPC;
	if (reserve(j, blocks ? blocks : 1) < 0)
		return -ENOMEM;
	s = (struct stream){ j->buf, blocks, 0, 0 };
	sn.s = &s;
	do
		c = index_scan(&srv->cat.index, c, snap_write, &sn);
	while (c);
	for (struct jitem *it = j->group; it; it = it->next)
		rec_write(&s, it->type, it->e);
	return (ssize_t)st_finish(&s, nonce, 0);
}

static ssize_t stage_group(struct server *srv)
{
	struct journal *j = &srv->jr;
	struct stream s;
	size_t bytes = 0, blocks;

	for (struct jitem *it = j->group; it; it = it->next)
		bytes += rec_size(it->type, it->e);
	blocks = blocks_for(bytes);
	if (reserve(j, blocks) < 0)
		return -ENOMEM;
	s = (struct stream){ j->buf, blocks, 0, 0 };
	for (struct jitem *it = j->group; it; it = it->next)
		rec_write(&s, it->type, it->e);
	return (ssize_t)st_finish(&s, srv->store.sb_nonce, j->next);
}

static void start_checkpoint(struct server *srv)
{
	struct journal *j = &srv->jr;
	ssize_t n;

	j->ck_gen = srv->store.sb_gen + 1;
	j->ck_half = !srv->store.sb_active;
	if (getrandom(&j->ck_nonce, sizeof(j->ck_nonce), 0) != sizeof(j->ck_nonce))
		j->ck_nonce ^= now_ms() * 0x9e3779b97f4a7c15ull;
	n = stage_checkpoint(srv, j->ck_nonce);
	if (n < 0) {
		log_err("checkpoint: %s: the index (%llu entries) does not fit in "
			"a %llu MiB log half", strerror((int)-n),
			(unsigned long long)srv->cat.index.count,
			(unsigned long long)(srv->store.meta_half >> 20));
		group_done(srv, (int)n, false);
		return;
	}
	j->nblocks = (size_t)n;
	j->err = 0;
	j->expect = j->written = 0;
	j->phase = PH_CK_SYNC;
	submit_sync(srv);
}

void journal_kick(struct journal *j)
{
	struct server *srv = j->srv;
	bool puts = false;
	size_t bytes = 0;
	ssize_t n;

	if (j->phase != PH_IDLE)
		return;
	if (!j->head && !(j->want_checkpoint && j->limbo))
		return;
	/* After a failed write, try again at most once a second. */
	if (j->failed_ms && now_ms() - j->failed_ms < 1000)
		return;
	j->group = j->head;
	j->head = j->tail = NULL;
	for (struct jitem *it = j->group; it; it = it->next) {
		puts |= it->type == REC_PUT;
		bytes += rec_size(it->type, it->e);
	}
	/* A checkpoint when the live half is three quarters full. */
	if (j->want_checkpoint ||
	    j->next + blocks_for(bytes) > half_blocks(srv) * 3 / 4) {
		start_checkpoint(srv);
		return;
	}
	/* Only holds: every record before them has landed already. */
	if (!bytes) {
		group_done(srv, 0, false);
		return;
	}
	n = stage_group(srv);
	if (n < 0) {
		log_err("journal: cannot stage %zu bytes of records: %s", bytes,
			strerror((int)-n));
		group_done(srv, (int)n, false);
		return;
	}
	j->nblocks = (size_t)n;
	j->err = 0;
	j->expect = j->written = 0;
	if (puts) {
		j->phase = PH_SYNC;
		submit_sync(srv);
	} else {
		j->phase = PH_WRITE;
		submit_write(srv, j->buf, j->nblocks * STORE_BLOCK,
			     half_off(srv, srv->store.sb_active) +
			     j->next * STORE_BLOCK);
	}
}

void journal_cqe(struct journal *j, int res)
{
	struct server *srv = j->srv;
	bool ck;

	if (res < 0 && !j->err)
		j->err = res;
	if (res >= 0 && (j->phase == PH_WRITE || j->phase == PH_CK_WRITE ||
			 j->phase == PH_CK_SB))
		j->written += (size_t)res;
	if (--j->ops)
		return;
	if (!j->err && j->written != j->expect &&
	    (j->phase == PH_WRITE || j->phase == PH_CK_WRITE || j->phase == PH_CK_SB))
		j->err = -EIO;	/* short write */
	if (j->err) {
		log_err("journal: %s failed: %s; the next commit writes a "
			"checkpoint", j->phase == PH_SYNC || j->phase == PH_CK_SYNC ?
			"fdatasync" : "metadata write", strerror(-j->err));
		j->phase = PH_IDLE;
		group_done(srv, j->err, false);
		j->err = 0;
		j->written = j->expect = 0;
		return;
	}
	j->written = 0;
	j->expect = 0;
	switch (j->phase) {
	case PH_SYNC:
		j->phase = PH_WRITE;
		submit_write(srv, j->buf, j->nblocks * STORE_BLOCK,
			     half_off(srv, srv->store.sb_active) +
			     j->next * STORE_BLOCK);
		return;
	case PH_WRITE:
		j->next += j->nblocks;
		j->commits++;
		j->log_bytes += j->nblocks * STORE_BLOCK;
		break;
	case PH_CK_SYNC:
		j->phase = PH_CK_WRITE;
		submit_write(srv, j->buf, j->nblocks * STORE_BLOCK,
			     half_off(srv, j->ck_half));
		return;
	case PH_CK_WRITE:
		j->phase = PH_CK_SB;
		store_sb_encode(&srv->store, 0, j->ck_gen, j->ck_nonce, j->ck_half,
				j->sb);
		submit_write(srv, j->sb, STORE_BLOCK, (j->ck_gen % 2) * STORE_BLOCK);
		return;
	case PH_CK_SB:
		srv->store.sb_gen = j->ck_gen;
		srv->store.sb_nonce = j->ck_nonce;
		srv->store.sb_active = j->ck_half;
		j->next = j->nblocks;
		j->want_checkpoint = false;
		j->checkpoints++;
		j->log_bytes += (j->nblocks + 1) * STORE_BLOCK;
		log_info("checkpoint: %llu entries in %zu KiB of log half %u",
			 (unsigned long long)srv->cat.index.count,
			 j->nblocks * STORE_BLOCK / 1024, j->ck_half);
		break;
	default:
		return;
	}
	ck = j->phase == PH_CK_SB;
	j->phase = PH_IDLE;
	shrink(j);
	group_done(srv, 0, ck);
	journal_kick(j);
}

/* --- recovery and synchronous checkpoints -------------------------------- */

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
	struct server *srv = j->srv;
	int fd = srv->store.files[0].fd, r = 0;
	uint64_t nonce;
	ssize_t n;

	/* Everything queued goes into this checkpoint. */
	if (j->head) {
		j->group = j->head;
		j->head = j->tail = NULL;
	}
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = now_ms() * 0x9e3779b97f4a7c15ull;
	n = stage_checkpoint(srv, nonce);
	if (n < 0) {
		snprintf(err, len, "checkpoint: %s: %llu entries do not fit in a "
			 "%llu MiB log half", strerror((int)-n),
			 (unsigned long long)srv->cat.index.count,
			 (unsigned long long)(srv->store.meta_half >> 20));
		group_done(srv, (int)n, false);
		return (int)n;
	}
	for (uint32_t i = 0; !r && i < srv->store.nfiles; i++)
		if (fdatasync(srv->store.files[i].fd) < 0)
			r = -errno;
	if (!r)
		r = pwrite_all(fd, j->buf, (size_t)n * STORE_BLOCK,
			       half_off(srv, !srv->store.sb_active));
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	if (!r) {
		store_sb_encode(&srv->store, 0, srv->store.sb_gen + 1, nonce,
				!srv->store.sb_active, j->sb);
		r = pwrite_all(fd, j->sb, STORE_BLOCK,
			       ((srv->store.sb_gen + 1) % 2) * STORE_BLOCK);
	}
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	if (r < 0) {
		snprintf(err, len, "checkpoint to %s: %s", srv->store.files[0].path,
			 strerror(-r));
		group_done(srv, r, false);
		return r;
	}
	srv->store.sb_gen++;
	srv->store.sb_nonce = nonce;
	srv->store.sb_active = !srv->store.sb_active;
	j->next = (uint64_t)n;
	j->checkpoints++;
	j->want_checkpoint = false;
	shrink(j);
	group_done(srv, 0, true);
	return 0;
}

/* Reads the live half's valid blocks; returns the record stream. */
static int read_log(struct server *srv, uint8_t **ret, size_t *ret_len,
		    uint64_t *ret_blocks, char *err, size_t len)
{
	const size_t chunk = 4u << 20;
	int fd = srv->store.files[0].fd;
	uint64_t base = half_off(srv, srv->store.sb_active), nb = half_blocks(srv);
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
				 srv->store.files[0].path, strerror(errno));
			free(buf);
			free(out);
			return -errno;
		}
		for (size_t i = 0; i + STORE_BLOCK <= (size_t)n; i += STORE_BLOCK, b++) {
			struct block_hdr h;
			uint32_t crc;

			memcpy(&h, buf + i, sizeof(h));
			crc = h.crc;
			h.crc = 0;
			memcpy(buf + i, &h, sizeof(h));
			if (h.magic != JB_MAGIC || h.nonce != srv->store.sb_nonce ||
			    h.seq != b || h.used > JB_PAYLOAD ||
			    crc32c(0, buf + i, STORE_BLOCK) != crc) {
				end = true;
				break;
			}
			if (olen + h.used > ocap) {
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
			memcpy(out + olen, buf + i + JB_HDR, h.used);
			olen += h.used;
		}
		if ((size_t)n < want)
			break;
	}
	free(buf);
	*ret = out;
	*ret_len = olen;
	*ret_blocks = b;
	return 0;
}

/* Parses one record at p; returns its length, 0 at a cut or bad record. */
static size_t replay_one(struct server *srv, const uint8_t *p, size_t len,
			 uint64_t *dropped)
{
	struct rec_hdr h;
	size_t need;
	struct entry *e, *old;

	if (len < sizeof(h))
		return 0;
	memcpy(&h, p, sizeof(h));
	if (h.type == REC_DEL) {
		need = sizeof(h) + h.key_len;
		if (need > len || !h.key_len || h.key_len > KVS_MAX_KEY)
			return 0;
		old = index_del(&srv->cat.index, p + sizeof(h), h.key_len);
		free(old);
		return need;
	}
	if (h.type != REC_PUT || !h.key_len || h.key_len > KVS_MAX_KEY ||
	    !h.nseg || h.nseg > KVS_MAX_SEGMENTS || h.meta_len > KVS_MAX_METADATA ||
	    h.next > h.nseg * KVS_MAX_EXTENTS)
		return 0;
	need = sizeof(h) + h.key_len + h.meta_len + h.nseg * sizeof(struct rec_seg) +
	       h.next * sizeof(struct rec_ext);
	if (need > len)
		return 0;
	p += sizeof(h);
	e = entry_new(p, h.key_len, p + h.key_len, h.meta_len, h.nseg, h.next);
	if (!e)
		return 0;
	e->flags = h.flags & ENTRY_PINNED;
	p += h.key_len + h.meta_len;
	for (uint32_t i = 0, k = 0; i < h.nseg; i++, p += sizeof(struct rec_seg)) {
		struct rec_seg r;

		memcpy(&r, p, sizeof(r));
		e->segs[i] = (struct sseg){ r.len, k, r.next, r.crc, 0 };
		k += r.next;
		e->size += r.len;
		if (k > h.next || !r.len || !r.next)
			goto out_bad;
	}
	for (uint32_t i = 0; i < h.next; i++, p += sizeof(struct rec_ext)) {
		struct rec_ext r;

		memcpy(&r, p, sizeof(r));
		if (r.file >= srv->store.nfiles || !r.nblocks)
			goto out_bad;
		e->ext[i] = (struct sext){ r.block, r.nblocks, r.file };
	}
	for (uint32_t i = 0; i < h.nseg; i++) {
		uint64_t blocks = 0;

		for (uint32_t k = 0; k < e->segs[i].next; k++)
			blocks += e->ext[e->segs[i].ext + k].nblocks;
		if (blocks != (e->segs[i].len + STORE_BLOCK - 1) / STORE_BLOCK)
			goto out_bad;
	}
	old = index_put(&srv->cat.index, e);
	free(old);
	return need;

out_bad:
	(*dropped)++;
	free(e);
	return need;
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
static int rebuild_space(struct server *srv, uint64_t *dropped)
{
	struct gather g = { 0 };
	struct extent *x = NULL;
	uint64_t c = 0;
	bool again;
	int r = 0;

	do {
		again = false;
		g.n = 0;
		do
			c = index_scan(&srv->cat.index, c, gather_one, &g);
		while (c);
		if (g.oom) {
			r = -ENOMEM;
			goto out_free;
		}
		if (g.n)
			qsort(g.u, g.n, sizeof(*g.u), used_cmp);
		for (size_t i = 0; i < g.n; i++) {
			const struct sext *p = i ? &g.u[i - 1].x : NULL, *q = &g.u[i].x;
			const struct alloc *a = &srv->store.files[q->file].alloc;
			bool overlap = p && p->file == q->file &&
				       p->block + p->nblocks > q->block;

			if (overlap || q->block < a->base ||
			    q->block + q->nblocks > a->base + a->total) {
				struct entry *e = g.u[i].e;

				if (e->linked) {
					index_del(&srv->cat.index, e->key, e->key_len);
					free(e);
					(*dropped)++;
				}
				again = true;
			}
		}
	} while (again);
	x = malloc((g.n + 1) * sizeof(*x));
	if (!x) {
		r = -ENOMEM;
		goto out_free;
	}
	for (uint32_t f = 0, i = 0; f < srv->store.nfiles && !r; f++) {
		size_t k = 0;

		for (; i < g.n && g.u[i].x.file == f; i++)
			x[k++] = (struct extent){ g.u[i].x.block, g.u[i].x.nblocks };
		r = alloc_rebuild(&srv->store.files[f].alloc, x, k);
	}
out_free:
	free(x);
	free(g.u);
	return r;
}

int journal_recover(struct journal *j, char *err, size_t len)
{
	struct server *srv = j->srv;
	uint64_t dropped = 0, blocks = 0, t0 = now_ms();
	uint8_t *log = NULL;
	size_t loglen = 0, pos = 0;
	int r;

	if (!srv->store.created) {
		r = read_log(srv, &log, &loglen, &blocks, err, len);
		if (r < 0)
			return r;
		while (pos < loglen) {
			size_t n = replay_one(srv, log + pos, loglen - pos, &dropped);

			if (!n)
				break;
			pos += n;
		}
		free(log);
		r = rebuild_space(srv, &dropped);
		if (r < 0) {
			snprintf(err, len, "recovery: out of memory");
			return r;
		}
		if (dropped)
			log_warn("recovery: dropped %llu damaged or conflicting "
				 "entries", (unsigned long long)dropped);
		log_notice("recovery: %llu entries from %llu log blocks in %llu ms",
			   (unsigned long long)srv->cat.index.count,
			   (unsigned long long)blocks,
			   (unsigned long long)(now_ms() - t0));
	}
	/* A fresh epoch: stale blocks past the old tail can never replay. */
	return journal_checkpoint_sync(j, err, len);
}

void journal_on_progress(struct journal *j, journal_progress_fn *fn, void *arg)
{
	j->progress = fn;
	j->progress_arg = arg;
}
