/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the metadata log as startup reads it, from the real
 * daemon sources (daemon/jformat.c, replay.c, recover.c, store.c).
 *
 * The first input byte picks the mode:
 *
 *   bit 0 clear: a record stream. Byte 1 gives the store's file count
 *   (1..4); the rest is framed record by record (jf_rec_frame()), each
 *   framed PUT checked and decoded (jf_rec_check(), jf_rec_entry()); the
 *   same bytes are then read as the payloads of damaged blocks, the way
 *   salvage reads what they may have held (replay_hole_records()).
 *
 *   bit 0 set: a store image. An 8 MiB store (one file, 256-block log
 *   halves) is created once per process; each input writes a log image
 *   into the half the next generation's superblock names, that superblock
 *   (both slots, or some zeroed), and then reads the store the way
 *   kvswapd starts on it (recover_load(): plan, replay, salvage's data
 *   check, free-space rebuild; nothing written), or the way kvswapd
 *   --check does (check_store()). Bits: 1 salvage, 2 --check, 3 zero
 *   superblock slot 0, 4 zero slot 1, 5 the superblock is changed: the
 *   128 bytes after byte 1 are XORed into it (its CRC then recomputed for
 *   the version it names, so that store.c's checks of its fields are
 *   what decides). Byte 1: the checkpoint's length in blocks, as the
 *   superblock gives it. Then blocks, each
 *
 *     u8 ctl; u16 lead; u16 used; payload[min(used, 4064)]
 *
 *   with a header the harness writes (magic, this epoch's nonce and
 *   generation, seq = its place; `lead` as given, marks included) and a
 *   CRC it computes, unless ctl says otherwise: bit 0 the bytes are the
 *   whole block from offset 0 (header included, `used` of them), bit 1
 *   leave the CRC wrong, bit 2 another nonce, bit 3 the wrong seq, bit 4
 *   another generation. The CRC fix-up lets mutations reach the records
 *   behind a check random bytes would almost never pass.
 *
 * After a successful load the harness checks what the daemon relies on:
 * every free extent inside its file's data area, sorted and disjoint,
 * `avail` their sum, and every block either free or claimed by exactly
 * one entry (so no double free or use after free can follow). A
 * violation aborts: a finding.
 *
 * $KVSWAP_FUZZ_DIR names the folder for the store (a filesystem with
 * O_DIRECT, not tmpfs; default /tmp); $KVSWAP_FUZZ_LOG=1 shows the
 * daemon's log lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "crc32c.h"
#include "index.h"
#include "jformat.h"
#include "journal.h"
#include "log.h"
#include "loop.h"
#include "recover.h"
#include "replay.h"
#include "store.h"

#define FUZZ_STORE_SIZE	(8ull << 20)
#define MAX_BLOCKS	64u

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	char dir[512];
	char path[600];
	int fd;			/* the store file, buffered I/O */
	uint32_t half;		/* the half the images go into */
	uint64_t log_off;
	uint64_t log_blocks;
	uint64_t nonce;
	uint64_t gen;
	uint8_t *sb;		/* superblocks for ck_blocks 0..log_blocks */
	uint8_t *img;		/* MAX_BLOCKS + 1 blocks */
	size_t last;		/* blocks the previous image wrote */
	FILE *devnull;
} F;

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz-journal: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void cleanup(void)
{
	unlink(F.path);
	rmdir(F.dir);
}

/*
 * Creates the store as kvswapd would (its startup checkpoint in half 1,
 * generation 1), and encodes the superblock of generation 2 naming half 0
 * for every checkpoint length.
 */
static void make_store(void)
{
	static struct store st;
	static struct index ix;
	static struct loop lp;
	static struct journal j;
	const char *base = getenv("KVSWAP_FUZZ_DIR");
	char err[512] = "";

	snprintf(F.dir, sizeof(F.dir), "%s/kvswap-fuzz-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(F.dir))
		die("mkdtemp %s: %s", F.dir, strerror(errno));
	snprintf(F.path, sizeof(F.path), "%s/store0.kvs", F.dir);
	atexit(cleanup);
	if (store_open(&st, F.path, FUZZ_STORE_SIZE, STORE_SERVE, err,
		       sizeof(err)) < 0)
		die("store_open: %s", err);
	if (index_init(&ix) < 0)
		die("index_init: out of memory");
	journal_init(&j, &st, &ix, &lp);
	if (journal_recover(&j, err, sizeof(err)) < 0)
		die("journal_recover: %s", err);
	F.half = !st.sb_active;
	F.log_off = store_log_offset(&st, F.half);
	F.log_blocks = store_log_blocks(&st);
	F.gen = st.sb_gen + 1;
	F.nonce = 0x7a7a667579616b76ull;
	if (F.log_blocks < MAX_BLOCKS + 1)
		die("log half of %llu blocks: too small",
		    (unsigned long long)F.log_blocks);
	if (posix_memalign((void **)&F.sb, STORE_BLOCK,
			   (F.log_blocks + 1) * STORE_BLOCK) ||
	    posix_memalign((void **)&F.img, STORE_BLOCK,
			   (MAX_BLOCKS + 1) * STORE_BLOCK))
		die("out of memory");
	for (uint64_t ck = 0; ck <= F.log_blocks; ck++)
		store_sb_prepare(&st, F.half, F.nonce, ck, F.sb + ck * STORE_BLOCK);
	journal_fini(&j);
	store_close(&st);
	index_clear(&ix);
	index_fini(&ix);
	F.fd = open(F.path, O_RDWR | O_CLOEXEC);
	if (F.fd < 0)
		die("open %s: %s", F.path, strerror(errno));
	F.devnull = fopen("/dev/null", "w");
	if (!F.devnull)
		die("/dev/null: %s", strerror(errno));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lg = getenv("KVSWAP_FUZZ_LOG");

	(void)argc;
	(void)argv;
	log_max_level = lg && *lg == '1' ? LOG_DEBUG : LOG_CRIT;
	make_store();
	return 0;
}

/* --- record streams ------------------------------------------------------ */

static void no_key(void *arg, enum jf_type type, const uint8_t *key,
		   uint16_t key_len)
{
	/* Touch every byte: ASan checks the key lies in the buffer. */
	uint32_t *sum = arg;

	(void)type;
	*sum = crc32c(*sum, key, key_len);
}

static void fuzz_records(const uint8_t *p, size_t len)
{
	uint32_t nfiles = len ? (p[0] & 3) + 1 : 1;
	size_t pos = 0;

	if (len) {
		p++;
		len--;
	}
	while (pos < len) {
		struct jf_rec rec;
		struct entry *e;
		size_t n;

		if (jf_rec_frame(p + pos, len - pos, &rec, &n) != JF_REC_OK)
			break;
		if (n < 16 || n > len - pos)
			die("framed a record of %zu bytes in %zu", n, len - pos);
		if (rec.type == JF_PUT) {
			const char *why = jf_rec_check(&rec, nfiles);
			int r = jf_rec_entry(&rec, nfiles, &e);

			if (!why != !r)
				die("jf_rec_check and jf_rec_entry disagree");
			if (r == 0) {
				uint64_t blocks = 0, need = 0;

				for (uint32_t i = 0; i < e->nseg; i++)
					need += (e->segs[i].len + STORE_BLOCK - 1) /
						STORE_BLOCK;
				for (uint32_t i = 0; i < e->next; i++) {
					if (e->ext[i].file >= nfiles)
						die("an extent in file %u of %u",
						    e->ext[i].file, nfiles);
					blocks += e->ext[i].nblocks;
				}
				if (blocks != need)
					die("a decoded entry's extents cover %llu "
					    "blocks, its segments %llu",
					    (unsigned long long)blocks,
					    (unsigned long long)need);
				free(e);
			}
		}
		pos += n;
	}
	/* The same bytes as the payloads of damaged blocks (salvage). */
	{
		size_t blocks = len / JF_PAYLOAD + 1;
		uint8_t *raw = calloc(blocks, JF_PAYLOAD);
		struct rlog lg = { .raw = raw, .raw_len = blocks * JF_PAYLOAD };
		struct rhole h = { .written = blocks, .lead = len ? p[0] : 0 };
		uint32_t sum = 0;

		if (!raw)
			return;
		if (len)
			memcpy(raw, p, len);
		replay_hole_records(&lg, &h, 64, no_key, &sum);
		free(raw);
	}
}

/* --- store images -------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Seals block b of the image: the header from its fields, the CRC. */
static void seal(uint8_t *b, uint64_t seq, uint8_t ctl, uint16_t used,
		 uint16_t lead)
{
	struct jf_block_hdr h;

	if (ctl & 1) {
		memcpy(&h, b, sizeof(h));
	} else {
		h = (struct jf_block_hdr){
			.magic = JF_MAGIC,
			.nonce = F.nonce + !!(ctl & 4),
			.seq = seq + !!(ctl & 8),
			.used = used,
			.lead = lead,
			.gen = (uint32_t)F.gen + !!(ctl & 16),
		};
	}
	h.crc = 0;
	memcpy(b, &h, sizeof(h));
	h.crc = crc32c(0, b, JF_BLOCK) ^ !!(ctl & 2);
	memcpy(b, &h, sizeof(h));
}

/* The image's blocks from the input; returns how many. */
static size_t build_image(const uint8_t *p, size_t len)
{
	size_t n = 0;

	while (len >= 5 && n < MAX_BLOCKS) {
		uint8_t ctl = p[0], *b = F.img + n * JF_BLOCK;
		uint16_t lead = get16(p + 1), used = get16(p + 3);
		size_t room = ctl & 1 ? JF_BLOCK : JF_PAYLOAD;
		size_t k = used < room ? used : room;

		memset(b, 0, JF_BLOCK);

		p += 5;
		len -= 5;
		if (k > len)
			k = len;
		memcpy(ctl & 1 ? b : b + JF_HDR, p, k);
		p += k;
		len -= k;
		seal(b, n, ctl, used, lead);
		n++;
	}
	return n;
}

static void pwrite_all(const void *buf, size_t len, uint64_t off)
{
	if (pwrite(F.fd, buf, len, (off_t)off) != (ssize_t)len)
		die("writing the store image: %s", strerror(errno));
}

/* What the daemon relies on after recovery: see the top of the file. */
static void check_space(const struct store *st, const struct index *ix)
{
	struct claim *c;
	size_t n;

	if (recover_claims(ix, &c, &n) < 0)
		die("out of memory");
	for (uint32_t f = 0, i = 0; f < st->nfiles; f++) {
		const struct alloc *a = &st->files[f].alloc;
		uint64_t sum = 0, claimed = 0, reach = a->base;

		for (uint32_t k = 0; k < a->n; k++) {
			const struct extent *x = &a->free[k];

			if (!x->len || x->start < (k ? a->free[k - 1].start +
						   a->free[k - 1].len + 1 : a->base) ||
			    x->len > a->base + a->total - x->start)
				die("file %u: free extent %u (%llu+%llu) out of "
				    "order or range", f, k,
				    (unsigned long long)x->start,
				    (unsigned long long)x->len);
			sum += x->len;
		}
		if (sum != a->avail)
			die("file %u: avail %llu, free extents sum %llu", f,
			    (unsigned long long)a->avail, (unsigned long long)sum);
		for (; i < n && c[i].x.file == f; i++) {
			const struct sext *x = &c[i].x;

			if (!store_extent_valid(st, x) || x->block < reach)
				die("file %u: entry extent %llu+%u out of range "
				    "or claimed twice", f,
				    (unsigned long long)x->block, x->nblocks);
			reach = x->block + x->nblocks;
			claimed += x->nblocks;
		}
		if (claimed + a->avail != a->total)
			die("file %u: %llu blocks claimed + %llu free != %llu", f,
			    (unsigned long long)claimed,
			    (unsigned long long)a->avail,
			    (unsigned long long)a->total);
	}
	free(c);
}

/* The superblock's CRC for the version it names (store.c's sb_crc()). */
static void sb_reseal(uint8_t *sb)
{
	static const uint8_t zero[4];
	uint32_t version, crc;

	memcpy(&version, sb + 8, sizeof(version));
	crc = crc32c(0, sb, 92);
	if (version != STORE_VERSION_OLD) {
		crc = crc32c(crc, zero, sizeof(zero));
		crc = crc32c(crc, sb + 96, STORE_SB_BYTES - 96);
	}
	memcpy(sb + 92, &crc, sizeof(crc));
}

static void fuzz_image(uint8_t mode, uint8_t ck, const uint8_t *sbx,
		       const uint8_t *p, size_t len)
{
	static struct store st;
	static struct index ix;
	static const uint8_t zero[STORE_BLOCK] __attribute__((aligned(4096)));
	static uint8_t sb[STORE_BLOCK] __attribute__((aligned(4096)));
	size_t n = build_image(p, len), clear;
	char err[640] = "";
	int r;

	memcpy(sb, F.sb + ck * STORE_BLOCK, STORE_BLOCK);
	if (sbx) {
		for (size_t i = 0; i < STORE_SB_BYTES; i++)
			sb[i] ^= sbx[i];
		sb_reseal(sb);
	}

	/* Zero what the previous image wrote past this one, and one more. */
	clear = (F.last > n ? F.last : n) + 1;
	memset(F.img + n * JF_BLOCK, 0, (clear - n) * JF_BLOCK);
	pwrite_all(F.img, clear * JF_BLOCK, F.log_off);
	F.last = n;
	pwrite_all(mode & 8 ? zero : sb, STORE_BLOCK, store_sb_offset(0));
	pwrite_all(mode & 16 ? zero : sb, STORE_BLOCK, store_sb_offset(1));
	if (mode & 4) {
		/* kvswapd --check: read only, its report thrown away. */
		r = check_store(F.path, F.devnull);
		if (r < 0 || r > 2)
			die("check_store returned %d", r);
		return;
	}
	r = store_open(&st, F.path, FUZZ_STORE_SIZE, mode & 2 ? STORE_SALVAGE :
		       STORE_SERVE, err, sizeof(err));
	if (r < 0)
		return;		/* superblocks refused: nothing to replay */
	if (index_init(&ix) < 0)
		die("index_init: out of memory");
	r = recover_load(&st, &ix, err, sizeof(err));
	if (r == -ENOMEM)
		die("recover_load: %s", err);
	if (r == 0)
		check_space(&st, &ix);
	store_close(&st);
	index_clear(&ix);
	index_fini(&ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (!(data[0] & 1)) {
		fuzz_records(data + 1, size - 1);
		return 0;
	}
	if (size < 2 || ((data[0] & 32) && size < 2 + STORE_SB_BYTES))
		return 0;
	if (data[0] & 32)
		fuzz_image(data[0], (uint8_t)(data[1] % (F.log_blocks + 1)),
			   data + 2, data + 2 + STORE_SB_BYTES,
			   size - 2 - STORE_SB_BYTES);
	else
		fuzz_image(data[0], (uint8_t)(data[1] % (F.log_blocks + 1)),
			   NULL, data + 2, size - 2);
	return 0;
}
