/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the metadata log: its format (daemon/jformat.c) on crafted
 * inputs, and recovery (daemon/recover.c) of crafted store images.
 *
 * Format: PUT and DEL records round-trip through sealed blocks at the
 * limits (a 1024-byte key, 4096 bytes of metadata, 1024 segments of 64
 * extents, a record over hundreds of blocks); a block with a wrong CRC,
 * nonce, sequence number, magic or length is refused; a record cut short
 * and records with fixed parts no writer produces end a replay; records
 * whose segments and extents disagree are refused.
 *
 * Recovery: a real store (O_DIRECT, under build/tmp, not tmpfs), crafted
 * log blocks written into its live half with pwrite, recovery run, the
 * index and the free space checked, then recovered again from the
 * checkpoint recovery wrote.
 *
 * The real daemon: kvswapd ($KVSWAPD; the ASan build under make
 * test-sanitize) started on stores whose log holds a crafted record
 * (wrapping counts, an extent at block 2^64-1, a file the store lacks, an
 * oversize key or metadata, overlapping extents): it starts, says so in
 * one line, serves what the valid log holds, stops cleanly, and starts
 * clean again. These skip where the kernel refuses io_uring.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>

#include <liburing.h>

#include "crc32c.h"
#include "daemon.h"
#include "index.h"
#include "jformat.h"
#include "journal.h"
#include "log.h"
#include "loop.h"
#include "recover.h"
#include "server.h"
#include "store.h"
#include "tap.h"

#define STORE_SIZE	(8ull << 20)
#define IMG_BLOCKS	64

/* --- entries ------------------------------------------------------------- */

/*
 * An entry of nseg segments, each over `per` extents of `nb` blocks from
 * *blk on in file `file` (*blk advances), each segment's last block
 * partly used. The key is `name` padded with its own bytes to key_len.
 */
static struct entry *mk(const char *name, uint32_t key_len, uint32_t meta_len,
			uint32_t nseg, uint32_t per, uint32_t nb, uint32_t file,
			uint64_t *blk)
{
	uint8_t key[KVS_MAX_KEY], meta[KVS_MAX_METADATA];
	size_t nl = strlen(name);
	struct entry *e;

	for (uint32_t i = 0; i < key_len; i++)
		key[i] = (uint8_t)name[i % nl];
	for (uint32_t i = 0; i < meta_len; i++)
		meta[i] = (uint8_t)(i * 31 + key_len);
	e = entry_new(key, key_len, meta, meta_len, nseg, nseg * per);
	if (!e)
		bail_out("out of memory");
	for (uint32_t i = 0, k = 0; i < nseg; i++) {
		uint64_t len = (uint64_t)per * nb * JF_BLOCK - (i * 7 + 1) % JF_BLOCK;

		e->segs[i] = (struct sseg){ len, k, per, 0x5eed0000u + i, 0 };
		e->size += len;
		for (uint32_t x = 0; x < per; x++, k++) {
			e->ext[k] = (struct sext){ *blk, nb, file };
			*blk += nb;
		}
	}
	return e;
}

static uint64_t ent_blocks(const struct entry *e)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < e->next; i++)
		n += e->ext[i].nblocks;
	return n;
}

/* Whether a and b describe the same stored entry. */
static bool ent_eq(const struct entry *a, const struct entry *b)
{
	if (!a || !b || a->key_len != b->key_len || a->meta_len != b->meta_len ||
	    a->flags != b->flags || a->nseg != b->nseg || a->next != b->next ||
	    a->size != b->size || memcmp(a->key, b->key, a->key_len) ||
	    (a->meta_len && memcmp(a->meta, b->meta, a->meta_len)))
		return false;
	for (uint32_t i = 0; i < a->nseg; i++)
		if (a->segs[i].len != b->segs[i].len ||
		    a->segs[i].ext != b->segs[i].ext ||
		    a->segs[i].next != b->segs[i].next ||
		    a->segs[i].crc != b->segs[i].crc)
			return false;
	for (uint32_t i = 0; i < a->next; i++)
		if (a->ext[i].block != b->ext[i].block ||
		    a->ext[i].nblocks != b->ext[i].nblocks ||
		    a->ext[i].file != b->ext[i].file)
			return false;
	return true;
}

/* --- format -------------------------------------------------------------- */

static void *block_alloc(size_t blocks)
{
	void *p;

	if (posix_memalign(&p, JF_BLOCK, blocks * JF_BLOCK))
		bail_out("out of memory");
	memset(p, 0, blocks * JF_BLOCK);
	return p;
}

/*
 * Encodes records into sealed blocks, checks every block and returns the
 * payloads concatenated (*ret_len bytes; free it).
 */
static uint8_t *encode(const enum jf_type *type, struct entry **e, size_t n,
		       uint64_t nonce, uint64_t seq0, size_t *ret_len)
{
	size_t bytes = 0, blocks, sealed, len = 0;
	struct jf_stream s;
	uint8_t *buf, *out;
	bool valid = true;

	for (size_t i = 0; i < n; i++)
		bytes += jf_rec_size(type[i], e[i]);
	blocks = jf_blocks_for(bytes);
	buf = block_alloc(blocks ? blocks : 1);
	out = malloc(bytes + 1);
	if (!out)
		bail_out("out of memory");
	jf_stream_init(&s, buf, blocks ? blocks : 1);
	for (size_t i = 0; i < n; i++)
		jf_rec_write(&s, type[i], e[i]);
	sealed = jf_stream_seal(&s, nonce, 7, seq0);
	is_uint(sealed, blocks ? blocks : 1, "%zu records of %zu bytes seal into "
		"%zu blocks", n, bytes, blocks);
	for (size_t i = 0; i < sealed; i++) {
		struct jf_block_info in;
		/* Where the first record that starts in block i begins. */
		size_t at = 0, lead;

		for (size_t k = 0; k < n && at < i * JF_PAYLOAD; k++)
			at += jf_rec_size(type[k], e[k]);
		lead = at < i * JF_PAYLOAD ? 0 : at - i * JF_PAYLOAD;
		if (jf_block_check(buf + i * JF_BLOCK, nonce, 7, seq0 + i, &in) !=
		    JF_BLOCK_VALID ||
		    in.used != (i + 1 < sealed ? JF_PAYLOAD : bytes - len) ||
		    in.start != (i == 0) || in.end != (i + 1 == sealed) ||
		    in.lead != (lead < in.used ? lead : in.used)) {
			valid = false;
			break;
		}
		memcpy(out + len, buf + i * JF_BLOCK + JF_HDR, in.used);
		len += in.used;
	}
	ok(valid && len == bytes, "every block checks, with its marks and where "
	   "its first record starts; payloads hold every byte");
	free(buf);
	*ret_len = len;
	return out;
}

/* Parses a PUT back and compares it with what was encoded. */
static bool put_round_trip(const uint8_t *p, size_t len, const struct entry *want,
			   uint32_t nfiles, size_t *ret_n)
{
	struct jf_rec rec;
	struct entry *got = NULL;
	size_t n = jf_rec_parse(p, len, &rec);
	bool same;

	if (!n || rec.type != JF_PUT || jf_rec_entry(&rec, nfiles, &got) < 0)
		return false;
	same = ent_eq(got, want) && !got->linked && got->refs == 1;
	free(got);
	*ret_n = n;
	return same;
}

static void test_limits(void)
{
	uint64_t blk = 100;
	struct entry *big = mk("big-key", KVS_MAX_KEY, KVS_MAX_METADATA,
			       KVS_MAX_SEGMENTS, KVS_MAX_EXTENTS, 1, 0, &blk);
	struct entry *k1 = mk("k", 1, 0, 1, 1, 3, 2, &blk);
	struct entry *del = mk("del-key", KVS_MAX_KEY, 0, 1, 1, 1, 0, &blk);
	struct entry *e[] = { k1, big, del, k1 };
	enum jf_type t[] = { JF_PUT, JF_PUT, JF_DEL, JF_DEL };
	size_t len, pos = 0, n = 0;
	struct jf_rec rec;
	uint8_t *p;

	big->flags = ENTRY_PINNED;
	is_uint(jf_rec_size(JF_PUT, big), 16 + KVS_MAX_KEY + KVS_MAX_METADATA +
		KVS_MAX_SEGMENTS * 16 + KVS_MAX_SEGMENTS * KVS_MAX_EXTENTS * 16,
		"size of a PUT at every limit");
	is_uint(jf_rec_size(JF_DEL, del), 16 + KVS_MAX_KEY, "size of a DEL");
	p = encode(t, e, 4, 0x0123456789abcdefull, 7, &len);
	ok(put_round_trip(p, len, k1, 3, &n), "PUT with a 1-byte key round-trips");
	pos += n;
	ok(put_round_trip(p + pos, len - pos, big, 1, &n),
	   "PUT with a 1024-byte key, 4096 bytes of metadata, 1024 segments of "
	   "64 extents (over %zu blocks) round-trips", jf_blocks_for(n));
	pos += n;
	n = jf_rec_parse(p + pos, len - pos, &rec);
	ok(n == 16 + KVS_MAX_KEY && rec.type == JF_DEL &&
	   rec.key_len == KVS_MAX_KEY && !memcmp(rec.key, del->key, KVS_MAX_KEY),
	   "DEL with a 1024-byte key round-trips");
	pos += n;
	n = jf_rec_parse(p + pos, len - pos, &rec);
	ok(n == 17 && rec.type == JF_DEL && rec.key_len == 1 && rec.key[0] == 'k',
	   "DEL with a 1-byte key round-trips");
	pos += n;
	is_uint(pos, len, "the stream ends with the last record");

	/* Cut short anywhere, a record is not parsed. */
	ok(!jf_rec_parse(p, jf_rec_size(JF_PUT, k1) - 1, &rec) &&
	   !jf_rec_parse(p, 15, &rec) && !jf_rec_parse(p, 0, &rec),
	   "a PUT cut short is not parsed");
	pos = jf_rec_size(JF_PUT, k1);
	ok(!jf_rec_parse(p + pos, jf_rec_size(JF_PUT, big) - 1, &rec),
	   "the largest PUT cut one byte short is not parsed");
	pos += jf_rec_size(JF_PUT, big);
	ok(!jf_rec_parse(p + pos, 16 + KVS_MAX_KEY - 1, &rec),
	   "a DEL cut short is not parsed");
	free(p);
	free(big);
	free(k1);
	free(del);
}

/* Many small records across block boundaries, parsed back in order. */
static void test_many(void)
{
	enum { N = 300 };
	struct entry *e[N];
	enum jf_type t[N];
	size_t len, pos = 0, n;
	uint64_t blk = 0;
	unsigned good = 0;
	uint8_t *p;

	for (unsigned i = 0; i < N; i++) {
		char name[16];

		snprintf(name, sizeof(name), "key-%u", i);
		e[i] = mk(name, 5 + i % 40, i % 97, 1 + i % 5, 1 + i % 3, 1, 0, &blk);
		t[i] = i % 7 == 3 ? JF_DEL : JF_PUT;
	}
	p = encode(t, e, N, 42, 0, &len);
	for (unsigned i = 0; i < N; i++) {
		struct jf_rec rec;

		if (t[i] == JF_PUT) {
			if (!put_round_trip(p + pos, len - pos, e[i], 1, &n))
				break;
		} else {
			n = jf_rec_parse(p + pos, len - pos, &rec);
			if (!n || rec.type != JF_DEL || rec.key_len != e[i]->key_len ||
			    memcmp(rec.key, e[i]->key, rec.key_len))
				break;
		}
		pos += n;
		good++;
	}
	is_uint(good, N, "%u mixed records over %zu blocks parse back in order",
		N, jf_blocks_for(len));
	for (unsigned i = 0; i < N; i++)
		free(e[i]);
	free(p);
}

/* Re-seals a block's CRC after a header was changed on purpose. */
static void reseal(uint8_t *b)
{
	struct jf_block_hdr h;

	memcpy(&h, b, sizeof(h));
	h.crc = 0;
	memcpy(b, &h, sizeof(h));
	h.crc = crc32c(0, b, JF_BLOCK);
	memcpy(b, &h, sizeof(h));
}

static void test_blocks(void)
{
	uint8_t *b = block_alloc(1), *c = block_alloc(1);
	uint64_t blk = 0;
	struct entry *e = mk("blk", 10, 10, 1, 1, 1, 0, &blk);
	struct jf_block_hdr h;
	struct jf_block_info in = { .used = 12345 };
	struct jf_stream s;

	jf_stream_init(&s, b, 1);
	jf_rec_write(&s, JF_PUT, e);
	is_uint(jf_stream_seal(&s, 99, 3, 5), 1, "one record, one block");
	ok(jf_block_check(b, 99, 3, 5, &in) == JF_BLOCK_VALID &&
	   in.used == jf_rec_size(JF_PUT, e) && in.start && in.end && !in.lead &&
	   in.gen == 3, "a sealed block checks, with its payload length and "
	   "both marks");
	in.used = 12345;
	ok(jf_block_check(b, 98, 3, 5, &in) == JF_BLOCK_OTHER,
	   "wrong nonce: another epoch's block");
	ok(jf_block_check(b, 99, 4, 5, &in) == JF_BLOCK_OTHER,
	   "wrong generation: another epoch's block");
	ok(jf_block_check(b, 99, 3, 4, &in) == JF_BLOCK_OTHER &&
	   jf_block_check(b, 99, 3, 6, &in) == JF_BLOCK_OTHER,
	   "wrong sequence number: another place's block");
	ok(in.used == 12345, "a refused block leaves the description alone");
	memcpy(c, b, JF_BLOCK);
	c[JF_BLOCK - 1] ^= 1;
	ok(jf_block_check(c, 99, 3, 5, &in) == JF_BLOCK_DAMAGED,
	   "a bit flipped past the payload: damaged");
	memcpy(c, b, JF_BLOCK);
	c[JF_HDR] ^= 0x80;
	ok(jf_block_check(c, 99, 3, 5, &in) == JF_BLOCK_DAMAGED,
	   "a bit flipped in the payload: damaged");
	memcpy(c, b, JF_BLOCK);
	c[offsetof(struct jf_block_hdr, crc)] ^= 1;
	ok(jf_block_check(c, 99, 3, 5, &in) == JF_BLOCK_DAMAGED,
	   "a bit flipped in the CRC: damaged");
	memcpy(c, b, JF_BLOCK);
	memcpy(&h, c, sizeof(h));
	h.magic ^= 1;
	memcpy(c, &h, sizeof(h));
	reseal(c);
	ok(jf_block_check(c, 99, 3, 5, &in) == JF_BLOCK_OTHER,
	   "wrong magic, CRC right: refused");
	memcpy(&h, b, sizeof(h));
	h.used = JF_PAYLOAD + 1;
	memcpy(c, b, JF_BLOCK);
	memcpy(c, &h, sizeof(h));
	reseal(c);
	ok(jf_block_check(c, 99, 3, 5, &in) == JF_BLOCK_DAMAGED, "payload length "
	   "past the block, CRC right: damaged");
	memcpy(&h, b, sizeof(h));
	h.lead = (uint16_t)(h.used + 1);
	memcpy(c, b, JF_BLOCK);
	memcpy(c, &h, sizeof(h));
	reseal(c);
	ok(jf_block_check(c, 99, 3, 5, &in) == JF_BLOCK_DAMAGED, "a lead past "
	   "the payload, CRC right: damaged");
	memcpy(&h, b, sizeof(h));
	h.used = JF_PAYLOAD;
	memcpy(c, b, JF_BLOCK);
	memcpy(c, &h, sizeof(h));
	reseal(c);
	ok(jf_block_check(c, 99, 3, 5, &in) == JF_BLOCK_VALID &&
	   in.used == JF_PAYLOAD, "a full payload checks");
	ok(jf_block_peek(c, &in) && in.nonce == 99 && in.gen == 3 && in.seq == 5,
	   "peek reads a valid block's epoch and place");
	memset(c, 0, JF_BLOCK);
	ok(jf_block_check(c, 0, 0, 0, &in) == JF_BLOCK_OTHER && !jf_block_peek(c, &in),
	   "a zeroed block: refused");
	jf_stream_init(&s, c, 1);
	ok(jf_stream_seal(&s, 99, 3, 0) == 1 &&
	   jf_block_check(c, 99, 3, 0, &in) == JF_BLOCK_VALID && !in.used &&
	   in.start && in.end, "an empty stream seals to one empty block");
	free(b);
	free(c);
	free(e);
}

/* One record's encoding, flat: a PUT or DEL of e in one block's payload. */
static size_t flat(enum jf_type type, const struct entry *e, uint8_t *out)
{
	uint8_t *b = block_alloc(1);
	struct jf_stream s;
	size_t n = jf_rec_size(type, e);

	if (n > JF_PAYLOAD)
		bail_out("flat(): record too large");
	jf_stream_init(&s, b, 1);
	jf_rec_write(&s, type, e);
	memcpy(out, b + JF_HDR, n);
	free(b);
	return n;
}

static void set_hdr(uint8_t *p, size_t off, const void *v, size_t n)
{
	memcpy(p + off, v, n);
}

/*
 * Format 4: a record's key is the composite "tenant\0key", up to
 * ENTRY_MAX_KEY bytes, and round-trips whole (the catalog splits it).
 */
static void test_v4_keys(void)
{
	uint8_t key[ENTRY_MAX_KEY], p[JF_PAYLOAD];
	struct jf_rec rec;
	struct entry *e;
	size_t n;

	memset(key, 'k', sizeof(key));
	memset(key, 't', 32);
	key[32] = '\0';
	e = entry_new(key, ENTRY_MAX_KEY, NULL, 0, 1, 1);
	if (!e)
		bail_out("out of memory");
	e->segs[0] = (struct sseg){ 4096, 0, 1, 0, 0 };
	e->ext[0] = (struct sext){ 300, 1, 0 };
	e->size = 4096;
	n = flat(JF_PUT, e, p);
	ok(jf_rec_parse(p, n, &rec) == n && rec.key_len == ENTRY_MAX_KEY &&
	   !memcmp(rec.key, key, ENTRY_MAX_KEY),
	   "a PUT of a 1057-byte composite key (32-byte tenant, NUL, 1024 "
	   "bytes) parses, key whole");
	n = flat(JF_DEL, e, p);
	ok(jf_rec_parse(p, n, &rec) == n && rec.key_len == ENTRY_MAX_KEY &&
	   !memcmp(rec.key, key, ENTRY_MAX_KEY),
	   "its DEL parses, key whole");
	free(e);
}

/* Fixed parts no writer produces: the replay stops there. */
static void test_bad_fixed(void)
{
	uint8_t good[JF_PAYLOAD], p[JF_PAYLOAD];
	uint64_t blk = 0;
	struct entry *e = mk("fixed", 8, 4, 2, 1, 1, 0, &blk);
	struct jf_rec rec;
	size_t n = flat(JF_PUT, e, good), d;
	uint16_t k16;
	uint32_t k32;
	uint8_t k8;

	ok(jf_rec_parse(good, n, &rec) == n, "the untouched PUT parses");
#define BAD(field, val, what)							\
	do {								\
		memcpy(p, good, n);					\
		set_hdr(p, offsetof(struct jf_rec_hdr, field), &(val),	\
			sizeof(val));					\
		ok(!jf_rec_parse(p, sizeof(p), &rec), what);		\
	} while (0)
	k16 = 0;
	BAD(key_len, k16, "PUT with a zero key length: refused");
	/* Format 4 keys: tenant (<= 32 bytes), NUL, the client's (<= 1024). */
	k16 = ENTRY_MAX_KEY + 1;
	BAD(key_len, k16, "PUT with a 1058-byte key (over tenant + NUL + "
	    "1024): refused");
	k8 = 0;
	BAD(type, k8, "type 0: refused");
	k8 = 3;
	BAD(type, k8, "type 3: refused");
	k32 = 0;
	BAD(nseg, k32, "PUT with no segments: refused");
	k32 = KVS_MAX_SEGMENTS + 1;
	BAD(nseg, k32, "PUT with 1025 segments: refused");
	k32 = KVS_MAX_METADATA + 1;
	BAD(meta_len, k32, "PUT with 4097 bytes of metadata: refused");
	k32 = 2 * KVS_MAX_EXTENTS + 1;
	BAD(next, k32, "PUT with more than 64 extents per segment: refused");
	k32 = UINT32_MAX;
	BAD(next, k32, "PUT with 2^32-1 extents: refused");
	d = flat(JF_DEL, e, good);
	ok(jf_rec_parse(good, d, &rec) == d, "the untouched DEL parses");
	n = d;
	k16 = 0;
	BAD(key_len, k16, "DEL with a zero key length: refused");
	k16 = ENTRY_MAX_KEY + 1;
	BAD(key_len, k16, "DEL with a 1058-byte key: refused");
#undef BAD
	free(e);
	test_v4_keys();
}

/*
 * Well framed PUTs whose segments and extents disagree: each is refused
 * by jf_rec_entry (the replay skips it). `mut` breaks the entry before it
 * is encoded.
 */
static void bad_put(const char *what, void (*mut)(struct entry *e))
{
	uint8_t p[JF_PAYLOAD];
	uint64_t blk = 1000;
	struct entry *e = mk("content", 8, 0, 2, 2, 1, 0, &blk), *got = NULL;
	struct jf_rec rec;
	size_t n;

	mut(e);
	n = flat(JF_PUT, e, p);
	ok(jf_rec_parse(p, n, &rec) == n &&
	   jf_rec_entry(&rec, 2, &got) == -EBADMSG && !got, "%s: refused", what);
	free(e);
}

static void m_seg_len0(struct entry *e) { e->segs[1].len = 0; }
static void m_seg_next0(struct entry *e) { e->segs[0].next = 0; }
static void m_seg_over(struct entry *e) { e->segs[1].next = 3; }
/* 2 + (2^32 - 1) wraps to 1: must not pass for "within 4 extents". */
static void m_seg_wrap(struct entry *e) { e->segs[1].next = UINT32_MAX; }
static void m_ext_file(struct entry *e) { e->ext[3].file = 2; }
static void m_ext_file_max(struct entry *e) { e->ext[0].file = UINT32_MAX; }
static void m_ext_zero(struct entry *e) { e->ext[2].nblocks = 0; }
static void m_len_short(struct entry *e) { e->segs[0].len = JF_BLOCK; }
static void m_len_long(struct entry *e) { e->segs[1].len = 2 * JF_BLOCK + 1; }
static void m_len_huge(struct entry *e) { e->segs[0].len = UINT64_MAX; }
static void m_blocks_more(struct entry *e) { e->ext[1].nblocks = 2; }
/* Segment 1 on extent 2 alone (2 blocks): extent 3 is left over. */
static void m_ext_spare(struct entry *e)
{
	e->segs[1].next = 1;
	e->ext[2].nblocks = 2;
}

/* The reason jf_rec_check() gives, which the startup log line quotes. */
static void why_put(void (*mut)(struct entry *e), const char *want)
{
	uint8_t p[JF_PAYLOAD];
	uint64_t blk = 1000;
	struct entry *e = mk("content", 8, 0, 2, 2, 1, 0, &blk);
	const char *why = NULL;
	struct jf_rec rec;
	size_t n;

	mut(e);
	n = flat(JF_PUT, e, p);
	if (jf_rec_parse(p, n, &rec) == n)
		why = jf_rec_check(&rec, 2);
	ok(why && !strcmp(why, want), "jf_rec_check says \"%s\" (%s)", want,
	   why ? why : "nothing");
	free(e);
}

static void test_bad_content(void)
{
	uint8_t p[JF_PAYLOAD];
	uint64_t blk = 1000;
	struct entry *e = mk("content", 8, 0, 2, 2, 1, 0, &blk), *got = NULL;
	struct jf_rec rec;
	size_t n = flat(JF_PUT, e, p);

	ok(jf_rec_parse(p, n, &rec) == n && jf_rec_entry(&rec, 2, &got) == 0 &&
	   ent_eq(got, e), "the untouched PUT decodes");
	free(got);
	free(e);
	bad_put("a segment of length 0", m_seg_len0);
	bad_put("a segment with no extents", m_seg_next0);
	bad_put("segments claiming more extents than the record has", m_seg_over);
	bad_put("a segment's extent count that wraps the sum", m_seg_wrap);
	bad_put("an extent in file 2 of a 2-file store", m_ext_file);
	bad_put("an extent in file 2^32-1", m_ext_file_max);
	bad_put("an extent of 0 blocks", m_ext_zero);
	bad_put("extents covering more blocks than the segment's length",
		m_len_short);
	bad_put("extents covering fewer blocks than the segment's length",
		m_len_long);
	bad_put("a segment of 2^64-1 bytes", m_len_huge);
	bad_put("an extent one block too long", m_blocks_more);
	bad_put("an extent that belongs to no segment", m_ext_spare);
	why_put(m_seg_wrap, "its segments claim more extents than it holds");
	why_put(m_ext_file, "an extent in a file the store does not have");
	why_put(m_ext_spare, "extents that belong to no segment");
	why_put(m_len_huge, "a segment whose extents do not cover exactly its "
		"length");
}

/* --- recovery of store images ------------------------------------------- */

static char store_path[PATH_MAX];

/* One open store with its index and journal; static for the alignment. */
static struct {
	struct store s;
	struct index ix;
	struct loop lp;
	struct journal j;
} C;

static int ctx_open_mode(enum store_mode mode)
{
	char err[512] = "";
	int r = store_open(&C.s, store_path, STORE_SIZE, mode, err, sizeof(err));

	if (r < 0) {
		diag("store_open: %s", err);
		return r;
	}
	if (index_init(&C.ix) < 0)
		bail_out("index_init: out of memory");
	memset(&C.lp, 0, sizeof(C.lp));
	journal_init(&C.j, &C.s, &C.ix, &C.lp);
	return 0;
}

static int ctx_open(void)
{
	return ctx_open_mode(STORE_SERVE);
}

static int ctx_recover(void)
{
	char err[512] = "";
	int r = journal_recover(&C.j, err, sizeof(err));

	if (r < 0)
		diag("journal_recover: %s", err);
	return r;
}

static void ctx_close(void)
{
	journal_fini(&C.j);
	store_close(&C.s);
	index_clear(&C.ix);
	index_fini(&C.ix);
}

/*
 * A log image: sealed blocks from block 0 of a log half, for an epoch the
 * test makes (epoch()): its first commit plays the checkpoint.
 */
struct img {
	uint8_t *buf;
	size_t n;		/* blocks */
	size_t ck;		/* blocks of the first commit */
};

/* The epoch images are sealed under: the next flip of the store. */
static struct {
	uint32_t half;
	uint64_t gen;
	uint64_t nonce;
} EP;

/* Appends one commit of records, sealed under nonce from block seq. */
static void img_commit(struct img *im, uint64_t nonce, uint64_t seq,
		       const enum jf_type *t, struct entry **e, size_t n)
{
	struct jf_stream s;
	size_t k;

	jf_stream_init(&s, im->buf + im->n * JF_BLOCK, IMG_BLOCKS - 1 - im->n);
	for (size_t i = 0; i < n; i++)
		jf_rec_write(&s, t[i], e[i]);
	k = jf_stream_seal(&s, nonce, EP.gen, seq);
	if (!im->n)
		im->ck = k;
	im->n += k;
}

/*
 * Opens the store, writes the image and a zeroed block after it into the
 * epoch's half, then the superblock naming it (both slots), as a
 * checkpoint would; the store stays open (ctx_close()). replay_mode()
 * then recovers (STORE_SALVAGE: salvages).
 */
static int write_image(struct img *im, enum store_mode mode)
{
	uint8_t *sb = block_alloc(1);
	int r = ctx_open_mode(mode);

	if (r < 0) {
		free(sb);
		return r;
	}
	memset(im->buf + im->n * JF_BLOCK, 0, JF_BLOCK);
	if (pwrite(C.s.files[0].fd, im->buf, (im->n + 1) * JF_BLOCK,
		   (off_t)store_log_offset(&C.s, EP.half)) !=
	    (ssize_t)((im->n + 1) * JF_BLOCK))
		bail_out("writing the log image: %s", strerror(errno));
	store_sb_prepare(&C.s, EP.half, EP.nonce, im->ck, sb);
	for (uint32_t slot = 0; slot < 2; slot++)
		if (pwrite(C.s.files[0].fd, sb, JF_BLOCK,
			   (off_t)store_sb_offset(slot)) != JF_BLOCK)
			bail_out("writing the superblock: %s", strerror(errno));
	store_sb_commit(&C.s, EP.half, EP.nonce, im->ck);
	free(sb);
	return 0;
}

static int replay_mode(struct img *im, enum store_mode mode)
{
	int r = write_image(im, mode);

	return r < 0 ? r : ctx_recover();
}

static int replay(struct img *im)
{
	return replay_mode(im, STORE_SERVE);
}

static uint64_t used_bytes(void)
{
	return C.s.capacity - store_avail(&C.s);
}

/*
 * The epoch of the next image (the store's next flip: the other half, the
 * next generation, a new nonce); returns its nonce.
 */
static uint64_t live_nonce(void)
{
	if (ctx_open() < 0)
		bail_out("cannot open the store");
	EP.half = !C.s.sb_active;
	EP.gen = C.s.sb_gen + 1;
	EP.nonce = 0x6b76737761700000ull + EP.gen;
	ctx_close();
	return EP.nonce;
}

/*
 * Writes data for each segment of e into the store file (file 0 only) and
 * sets the segment's CRC32C to match: what salvage reads back and checks.
 */
static void put_data(struct entry *e)
{
	int fd = open(store_path, O_RDWR | O_CLOEXEC);
	uint8_t blk[JF_BLOCK];

	if (fd < 0)
		bail_out("open %s: %s", store_path, strerror(errno));
	for (uint32_t i = 0; i < e->nseg; i++) {
		uint64_t left = e->segs[i].len;
		uint32_t crc = 0;

		for (uint32_t x = 0; x < e->segs[i].next; x++) {
			const struct sext *ex = &e->ext[e->segs[i].ext + x];

			for (uint32_t b = 0; b < ex->nblocks; b++) {
				size_t n = left < JF_BLOCK ? (size_t)left : JF_BLOCK;

				memset(blk, 0, sizeof(blk));
				for (size_t k = 0; k < n; k++)
					blk[k] = (uint8_t)(k * 7 + i + e->key[0]);
				crc = crc32c(crc, blk, n);
				left -= n;
				if (pwrite(fd, blk, JF_BLOCK, (off_t)((ex->block + b) *
								    JF_BLOCK)) != JF_BLOCK)
					bail_out("writing data: %s", strerror(errno));
			}
		}
		e->segs[i].crc = crc;
	}
	if (fsync(fd) < 0)
		bail_out("fsync: %s", strerror(errno));
	close(fd);
}

static struct entry *get(const struct entry *like)
{
	return index_get(&C.ix, like->key, like->key_len);
}

/*
 * The image of case k: x committed, then y under another nonce (k 0), at
 * the wrong place (1), with a bit flipped (2), or after a zeroed block (3).
 */
static void bad_image(struct img *im, int k, struct entry *x, struct entry *y)
{
	static const enum jf_type t[] = { JF_PUT };
	uint64_t nonce = live_nonce();

	im->n = 0;
	img_commit(im, nonce, 0, t, &x, 1);
	if (k == 3)
		im->n++;
	img_commit(im, k == 0 ? nonce + 1 : nonce, k == 1 ? 2 : im->n, t, &y, 1);
	if (k == 2)
		im->buf[JF_BLOCK + JF_HDR + 3] ^= 4;
	if (k == 3)
		memset(im->buf + JF_BLOCK, 0, JF_BLOCK);
}

static void test_store(const char *dir)
{
	struct img im = { block_alloc(IMG_BLOCKS), 0, 0 };
	struct entry *a, *b, *c, *c2, *x, *y, *z, *bad, *bad2;
	uint64_t base, blk, nonce;
	enum jf_type t[4];
	struct entry *e[4];

	if (snprintf(store_path, sizeof(store_path), "%s/store0.kvs", dir) >=
	    (int)sizeof(store_path))
		bail_out("test folder path too long");
	is_int(ctx_open(), 0, "a new store opens");
	ok(C.s.created, "it was created");
	is_int(ctx_recover(), 0, "recovery of a new store writes its checkpoint");
	is_uint(C.j.checkpoints, 1, "one checkpoint");
	is_uint(C.s.sb_ck_blocks, 1, "of one empty block (an empty index still "
		"writes one, so the write phase has I/O to end)");
	ok(C.s.sb_gen == 1 && C.s.sb_active == 1, "generation 1, in half 1");
	base = C.s.files[0].alloc.base;
	ctx_close();
	blk = base + 10;

	/* Replay in order: puts, a delete, a replace. */
	a = mk("alpha", 5, 3, 2, 2, 1, 0, &blk);
	b = mk("bravo", 5, 0, 1, 1, 4, 0, &blk);
	c = mk("charlie", 7, 9, 1, 1, 1, 0, &blk);
	c2 = mk("charlie", 7, 0, 3, 1, 2, 0, &blk);
	b->flags = ENTRY_PINNED;
	nonce = live_nonce();
	e[0] = a, e[1] = b, e[2] = c;
	img_commit(&im, nonce, 0, (enum jf_type[]){ JF_PUT, JF_PUT, JF_PUT }, e, 3);
	e[0] = a, e[1] = c2;
	img_commit(&im, nonce, im.n, (enum jf_type[]){ JF_DEL, JF_PUT }, e, 2);
	is_int(replay(&im), 0, "recovery of two commits");
	is_uint(C.ix.count, 2, "two entries");
	ok(!get(a), "the deleted entry is gone");
	ok(ent_eq(get(b), b), "the pinned entry is back whole");
	ok(ent_eq(get(c2), c2), "the replaced entry is the later one");
	is_uint(used_bytes(), (ent_blocks(b) + ent_blocks(c2)) * JF_BLOCK,
		"the free space is everything but their blocks");
	ctx_close();
	is_int(ctx_open(), 0, "reopened");
	is_int(ctx_recover(), 0, "recovery from the checkpoint recovery wrote");
	ok(C.ix.count == 2 && ent_eq(get(b), b) && ent_eq(get(c2), c2),
	   "the same two entries");
	is_uint(used_bytes(), (ent_blocks(b) + ent_blocks(c2)) * JF_BLOCK,
		"the same free space");
	ctx_close();

	/*
	 * A bad block ends the replay when nothing the epoch committed after
	 * it is there (a tail a crash cut); when a later commit is there, or
	 * the block was written by the epoch and fails its CRC, it is
	 * damage: recovery refuses, and salvage replays around it.
	 */
	x = mk("x-ray", 5, 0, 1, 1, 1, 0, &blk);
	y = mk("yankee", 6, 0, 1, 1, 1, 0, &blk);
	put_data(x);
	put_data(y);
	t[0] = JF_PUT;
	for (int k = 0; k < 4; k++) {
		static const char *const what[] = {
			"a block under another nonce", "a block with the wrong "
			"sequence number", "a block with a bit flipped",
			"a zeroed block followed by a commit"
		};
		bool damage = k >= 2;

		bad_image(&im, k, x, y);
		if (!damage) {
			is_int(replay(&im), 0, "recovery with %s", what[k]);
			ok(C.ix.count == 1 && ent_eq(get(x), x) && !get(y),
			   "%s ends the replay: what came before is back", what[k]);
			ctx_close();
			continue;
		}
		is_int(replay(&im), -EUCLEAN, "recovery refuses %s", what[k]);
		is_uint(C.j.checkpoints, 0, "%s: no checkpoint written", what[k]);
		ctx_close();
		bad_image(&im, k, x, y);	/* sealed for the next epoch */
		is_int(replay_mode(&im, STORE_SALVAGE), 0, "salvage of %s", what[k]);
		ok(ent_eq(get(x), x) && (k == 3 ? ent_eq(get(y), y) && C.ix.count == 2
					 : !get(y) && C.ix.count == 1),
		   "salvage of %s: %s", what[k], k == 3 ? "the commits before and "
		   "after it are back" : "what came before is back, the damaged "
		   "record is lost");
		ctx_close();
		is_int(ctx_open(), 0, "reopened after salvage");
		is_int(ctx_recover(), 0, "the salvaged store recovers normally");
		is_uint(C.ix.count, k == 3 ? 2 : 1, "with the same entries");
		ctx_close();
	}

	/* A record cut by the end of the valid blocks is ignored. */
	z = mk("zulu", KVS_MAX_KEY, KVS_MAX_METADATA, 400, 1, 1, 0, &blk);
	ok(jf_blocks_for(jf_rec_size(JF_PUT, z)) >= 2, "zulu's record spans blocks");
	im.n = 0;
	nonce = live_nonce();
	img_commit(&im, nonce, 0, t, &x, 1);
	img_commit(&im, nonce, im.n, t, &z, 1);
	im.n--;
	is_int(replay(&im), 0, "recovery with the last commit cut");
	ok(C.ix.count == 1 && ent_eq(get(x), x) && !get(z),
	   "the cut record is ignored, the one before it is back");
	ctx_close();

	/* A damaged PUT is dropped; the replay goes on. */
	{
		static void (*const muts[])(struct entry *) = {
			m_ext_file, m_seg_wrap, m_seg_over, m_len_long,
		};
		static const char *const what[] = {
			"an extent in a file the store lacks",
			"a wrapping extent count",
			"too many extents claimed", "a length its blocks miss",
		};

		for (unsigned k = 0; k < 4; k++) {
			uint64_t b2 = base + 1000;

			bad = mk("content", 8, 0, 2, 2, 1, 0, &b2);
			muts[k](bad);
			nonce = live_nonce();
			im.n = 0;
			e[0] = x, e[1] = bad, e[2] = y;
			img_commit(&im, nonce, 0, (enum jf_type[]){ JF_PUT, JF_PUT,
				   JF_PUT }, e, 3);
			is_int(replay(&im), 0, "recovery past %s", what[k]);
			ok(C.ix.count == 2 && ent_eq(get(x), x) && ent_eq(get(y), y) &&
			   !get(bad), "the PUT with %s is dropped, the rest is back",
			   what[k]);
			ctx_close();
			free(bad);
		}
	}

	/* A fixed part no writer produces stops the replay there. */
	{
		uint64_t b2 = base + 1000;

		bad = mk("", 0, 0, 1, 1, 1, 0, &b2);
		nonce = live_nonce();
		im.n = 0;
		e[0] = x, e[1] = bad, e[2] = y;
		img_commit(&im, nonce, 0, (enum jf_type[]){ JF_PUT, JF_PUT,
			   JF_PUT }, e, 3);
		is_int(replay(&im), 0, "recovery up to a record with no key");
		ok(C.ix.count == 1 && ent_eq(get(x), x) && !get(y),
		   "a record with no key ends the replay");
		ctx_close();
		free(bad);
	}

	/* Extents outside the data area are dropped. */
	{
		static const struct {
			uint64_t block;
			uint32_t nblocks;
			const char *what;
		} out[] = {
			{ UINT64_MAX, 2, "block 2^64-1 (wraps)" },
			{ UINT64_MAX - 5, 10, "block 2^64-6, 10 blocks (wraps)" },
			{ 0, 1, "block 0 (the superblock)" },
			{ 300, 1, "a block of the log" },
			{ STORE_SIZE / JF_BLOCK, 1, "the block past the end" },
			{ STORE_SIZE / JF_BLOCK - 2, 3, "the last 2 blocks and one more" },
		};

		for (unsigned k = 0; k < sizeof(out) / sizeof(out[0]); k++) {
			uint64_t b2 = base + 1000;

			bad = mk("outside", 7, 0, 1, 2, 1, 0, &b2);
			bad->ext[1].block = out[k].block;
			bad->ext[1].nblocks = out[k].nblocks;
			bad->segs[0].len = (out[k].nblocks + 1ull) * JF_BLOCK;
			bad->size = bad->segs[0].len;
			nonce = live_nonce();
			im.n = 0;
			e[0] = x, e[1] = bad, e[2] = y;
			img_commit(&im, nonce, 0, (enum jf_type[]){ JF_PUT, JF_PUT,
				   JF_PUT }, e, 3);
			is_int(replay(&im), 0, "recovery with an extent at %s",
			       out[k].what);
			ok(C.ix.count == 2 && ent_eq(get(x), x) && ent_eq(get(y), y) &&
			   !get(bad), "the entry with an extent at %s is dropped",
			   out[k].what);
			is_uint(used_bytes(), (ent_blocks(x) + ent_blocks(y)) * JF_BLOCK,
				"the free space has none of its blocks");
			ctx_close();
			free(bad);
		}
	}

	/* A block claimed twice: one of the two entries is dropped. */
	{
		uint64_t b2 = base + 1000;
		struct entry *kept;

		bad = mk("twice", 5, 0, 1, 2, 1, 0, &b2);
		bad->ext[1].block = x->ext[0].block;
		nonce = live_nonce();
		im.n = 0;
		e[0] = x, e[1] = bad, e[2] = y;
		img_commit(&im, nonce, 0, (enum jf_type[]){ JF_PUT, JF_PUT,
			   JF_PUT }, e, 3);
		is_int(replay(&im), 0, "recovery with a block claimed twice");
		kept = get(x) ? x : bad;
		ok(C.ix.count == 2 && ent_eq(get(y), y) &&
		   ent_eq(get(kept), kept) && !get(kept == x ? bad : x),
		   "one of the two claimants is dropped");
		is_uint(used_bytes(), (ent_blocks(kept) + ent_blocks(y)) * JF_BLOCK,
			"the free space has the survivor's blocks taken");
		ctx_close();
		free(bad);
	}

	/*
	 * An extent out of range (in the log area, reaching into the data
	 * area) does not condemn the valid extent it overlaps: only its own
	 * entry goes.
	 */
	{
		uint64_t b2 = base + 5;
		struct entry *in;

		bad = mk("reach", 5, 0, 1, 1, 20, 0, &b2);
		bad->ext[0].block = base - 10;
		b2 = base + 5;
		in = mk("inside", 6, 0, 1, 1, 1, 0, &b2);
		nonce = live_nonce();
		im.n = 0;
		e[0] = bad, e[1] = in;
		img_commit(&im, nonce, 0, (enum jf_type[]){ JF_PUT, JF_PUT }, e, 2);
		is_int(replay(&im), 0, "recovery with an extent from the log area "
		       "into the data area");
		ok(C.ix.count == 1 && ent_eq(get(in), in) && !get(bad),
		   "only the out-of-range entry is dropped, not the valid one "
		   "under it");
		is_uint(used_bytes(), ent_blocks(in) * JF_BLOCK,
			"the free space has the valid entry's block taken");
		ctx_close();
		free(bad);
		free(in);
	}

	/*
	 * A record whose fixed part no writer produces ends the log; salvage
	 * resumes at the next record start (the next commit's block).
	 */
	{
		uint64_t b2 = base + 1000;
		uint32_t huge = UINT32_MAX;

		bad = mk("fixed", 5, 0, 1, 1, 1, 0, &b2);
		for (int pass = 0; pass < 2; pass++) {
			nonce = live_nonce();
			im.n = 0;
			e[0] = x, e[1] = bad;
			img_commit(&im, nonce, 0, (enum jf_type[]){ JF_PUT, JF_PUT },
				   e, 2);
			/* bad's extent count, in block 0, after x's record. */
			memcpy(im.buf + JF_HDR + jf_rec_size(JF_PUT, x) +
			       offsetof(struct jf_rec_hdr, next), &huge, sizeof(huge));
			reseal(im.buf);
			img_commit(&im, nonce, im.n, t, &y, 1);
			if (!pass) {
				is_int(replay(&im), 0, "recovery up to a record "
				       "with 2^32-1 extents");
				ok(C.ix.count == 1 && ent_eq(get(x), x) && !get(y),
				   "the valid log ends there: the commit after it "
				   "is not replayed");
			} else {
				is_int(replay_mode(&im, STORE_SALVAGE), 0, "salvage "
				       "past a record with 2^32-1 extents");
				ok(C.ix.count == 2 && ent_eq(get(x), x) &&
				   ent_eq(get(y), y) && !get(bad), "salvage resumes "
				   "at the next commit: x and y are back");
			}
			ctx_close();
		}
		free(bad);
	}

	/* Both extents bad: the entry is dropped once, and freed once. */
	{
		uint64_t b2 = base + 1000;

		bad2 = mk("both", 4, 0, 1, 2, 1, 0, &b2);
		bad2->ext[0].block = UINT64_MAX;
		bad2->ext[1].block = 1;
		nonce = live_nonce();
		im.n = 0;
		e[0] = bad2, e[1] = x;
		img_commit(&im, nonce, 0, (enum jf_type[]){ JF_PUT, JF_PUT }, e, 2);
		is_int(replay(&im), 0, "recovery with an entry whose two extents "
		       "are both outside");
		ok(C.ix.count == 1 && ent_eq(get(x), x) && !get(bad2),
		   "that entry is dropped");
		ctx_close();
		free(bad2);
	}

	free(a);
	free(b);
	free(c);
	free(c2);
	free(x);
	free(y);
	free(z);
	free(im.buf);
	unlink(store_path);
}

/* --- the real daemon on crafted stores ------------------------------------ */

/*
 * Each case: a checkpoint of three PUTs (x, a crafted record, y) written
 * into a store kvswapd made, then kvswapd (the real binary: $KVSWAPD, the
 * ASan build under make test-sanitize) started on it. It must start, log
 * the one line about the crafted record, serve what the valid log holds,
 * and stop cleanly (a sanitizer report makes it exit non-zero); started
 * again, it has nothing more to say: its startup checkpoint left a clean
 * log.
 */
struct crafted {
	const char *what;
	void (*mut)(struct entry *bad, const struct entry *x);
	/* Or the crafted record's fixed part, patched after encoding. */
	size_t field;		/* offsetof(struct jf_rec_hdr, ...) */
	uint32_t value;
	size_t width;
	const char *line;	/* in the one line the daemon logs */
	bool y_back;		/* the record after it is replayed */
	const char *check;	/* in kvswapd --check's DAMAGE line (NULL:
				 * line) */
};

static void c_seg_wrap(struct entry *e, const struct entry *x)
{
	/* 2 + (2^32 - 1) extents wrap to 1 in 32 bits. */
	e->segs[1].next = UINT32_MAX;
}

static void c_block_max(struct entry *e, const struct entry *x)
{
	e->ext[1].block = UINT64_MAX;
}

static void c_file(struct entry *e, const struct entry *x)
{
	e->ext[3].file = 5;
}

static void c_overlap(struct entry *e, const struct entry *x)
{
	e->ext[2].block = x->ext[0].block;
}

static const struct crafted CRAFTED[] = {
	{ "a segment's extent count that wraps the sum", c_seg_wrap, 0, 0, 0,
	  "is refused: its segments claim more extents than it holds; that "
	  "PUT alone is dropped", true, NULL },
	{ "a record extent count of 2^32-1", NULL,
	  offsetof(struct jf_rec_hdr, next), UINT32_MAX, 4,
	  "is refused: its fixed part is one no writer produces; the valid log "
	  "ends there", false, NULL },
	{ "a segment count whose product with 64 wraps", NULL,
	  offsetof(struct jf_rec_hdr, nseg), 0x04000001u, 4,
	  "is refused: its fixed part is one no writer produces; the valid log "
	  "ends there", false, NULL },
	{ "an extent at block 2^64-1", c_block_max, 0, 0, 0,
	  "recovery: dropping uid-0/crafted: its blocks 18446744073709551615+1 of file "
	  "0 are outside the data area", true,
	  "entry \"uid-0\\x00crafted\": blocks 18446744073709551615+1 of" },
	{ "an extent in file 5 of a 1-file store", c_file, 0, 0, 0,
	  "is refused: an extent in a file the store does not have; that PUT "
	  "alone is dropped", true, NULL },
	{ "a 65535-byte key", NULL, offsetof(struct jf_rec_hdr, key_len), 0xffff,
	  2, "is refused: its fixed part is one no writer produces; the valid log "
	  "ends there", false, NULL },
	{ "4097 bytes of metadata", NULL, offsetof(struct jf_rec_hdr, meta_len),
	  KVS_MAX_METADATA + 1, 4, "is refused: its fixed part is one no writer "
	  "produces; the valid log ends there", false, NULL },
	{ "an extent overlapping another entry's", c_overlap, 0, 0, 0,
	  "are another entry's too", true, "both claim block" },
};

/* How many lines of log hold `what`. */
static unsigned lines_with(const char *log, const char *what)
{
	unsigned n = 0;

	for (const char *p = log; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* Which of the entries the daemon has (ret); negative if it cannot say. */
static int present(const struct harness *h, struct entry *const *e, size_t n,
		   bool *ret)
{
	const void *keys[4];
	size_t lens[4];
	struct kvswap *k;
	int r;

	/* The client's key: what follows the tenant and its NUL. */
	for (size_t i = 0; i < n; i++) {
		size_t t = strnlen((const char *)e[i]->key, e[i]->key_len) + 1;

		keys[i] = e[i]->key + t;
		lens[i] = e[i]->key_len - t;
	}
	if (harness_connect(h, &k) < 0)
		return -1;
	r = kvswap_lookup(k, keys, lens, (uint32_t)n, ret);
	kvswap_close(k);
	return r;
}

static void daemon_case(const struct crafted *c, const char *path)
{
	struct harness_opts o = { .store_size = STORE_SIZE, .store = path };
	struct img im = { block_alloc(IMG_BLOCKS), 0, 0 };
	struct entry *x, *bad, *y, *e[3];
	struct harness *h = NULL;
	static char log[1 << 16];
	uint64_t base, blk;
	bool have[3] = { false, false, false };
	int r;

	snprintf(store_path, sizeof(store_path), "%s", path);
	if (ctx_open() < 0)
		bail_out("cannot open the daemon's store %s", path);
	base = C.s.files[0].alloc.base;
	ctx_close();
	blk = base + 100;
	/* Format 4 keys: the tenant (root's, "uid-0"), NUL, the key. */
	x = mk("x-ray", 11, 0, 1, 1, 1, 0, &blk);
	bad = mk("crafted", 13, 3, 2, 2, 1, 0, &blk);
	y = mk("yankee", 12, 0, 1, 1, 1, 0, &blk);
	memcpy(x->key, "uid-0\0x-ray", 11);
	memcpy(bad->key, "uid-0\0crafted", 13);
	memcpy(y->key, "uid-0\0yankee", 12);
	/* Their data, so that --check finds nothing else to say. */
	put_data(x);
	put_data(y);
	if (c->mut)
		c->mut(bad, x);
	e[0] = x, e[1] = bad, e[2] = y;
	img_commit(&im, live_nonce(), 0, (enum jf_type[]){ JF_PUT, JF_PUT,
		   JF_PUT }, e, 3);
	if (c->width) {
		/* x is small: the crafted record starts in block 0. */
		size_t at = JF_HDR + jf_rec_size(JF_PUT, x) + c->field;

		memcpy(im.buf + at, &c->value, c->width);
		reseal(im.buf);
	}
	if (write_image(&im, STORE_SERVE) < 0)
		bail_out("cannot write the image into %s", path);
	ctx_close();

	/* kvswapd --check first: it reads the same log, writing nothing. */
	{
		const char *args[] = { "--check", "--store", path, NULL };

		r = harness_spawn(args, 0, &h);
		if (r == 0)
			r = harness_wait_exit(h, 10000);
		const char *want = c->check ? c->check : c->line;
		const char *at = NULL;

		if (r == 0 && harness_read_log(h, log, sizeof(log)) > 0)
			at = strstr(log, want);
		/* On a line of its own that begins "DAMAGE". */
		while (at && at > log && at[-1] != '\n')
			at--;
		if (!ok(r == 0 && WIFEXITED(h->status) &&
			WEXITSTATUS(h->status) == 1 && at &&
			!strncmp(at, "DAMAGE", 6), "%s: kvswapd --check reports "
			"it as DAMAGE (%s), exit status 1", c->what, want))
			harness_show_log(h, 30);
		harness_free(h);
		h = NULL;
	}
	r = harness_start(&o, &h);
	if (!is_int(r, 0, "kvswapd starts on a log with %s", c->what))
		goto out;
	harness_read_log(h, log, sizeof(log));
	if (!is_uint(lines_with(log, c->line), 1, "%s: one line says so (%s)",
		     c->what, c->line))
		harness_show_log(h, 20);
	r = present(h, e, 3, have);
	ok(r >= 0 && (c->mut == c_overlap ? have[0] != have[1] :
		      have[0] && !have[1]) && have[2] == c->y_back,
	   "%s: %s", c->what, c->mut == c_overlap ? "one of the two claimants "
	   "is dropped, the rest is served" : c->y_back ? "x and y are "
	   "served, the crafted entry is not" : "x is served; the crafted "
	   "record and what follows it are not");
	is_int(harness_stop(h), 0, "%s: kvswapd stops cleanly (no sanitizer "
	       "report)", c->what);
	harness_free(h);
	h = NULL;

	r = harness_start(&o, &h);
	if (!is_int(r, 0, "%s: kvswapd starts again", c->what))
		goto out;
	harness_read_log(h, log, sizeof(log));
	ok(!lines_with(log, "refused") && !lines_with(log, "dropping"),
	   "%s: its startup checkpoint left a clean log", c->what);
	is_int(harness_stop(h), 0, "%s: and stops cleanly", c->what);
out:
	harness_free(h);
	free(x);
	free(bad);
	free(y);
	free(im.buf);
}

static void test_daemon(void)
{
	struct harness_opts o = { .store_size = STORE_SIZE };
	struct io_uring ring;
	struct harness *h;
	char path[sizeof(h->store)];
	int r;

	/* Probed here: without io_uring only these cases skip. */
	r = io_uring_queue_init(8, &ring, 0);
	if (r < 0) {
		skip("io_uring refused by the kernel (%s): kvswapd cannot start",
		     strerror(-r));
		return;
	}
	io_uring_queue_exit(&ring);
	harness_init("test-journal-daemon");
	if (!is_int(harness_start(&o, &h), 0, "kvswapd makes a store"))
		return;
	snprintf(path, sizeof(path), "%s", h->store);
	is_int(harness_stop(h), 0, "and stops");
	harness_free(h);
	for (size_t i = 0; i < sizeof(CRAFTED) / sizeof(CRAFTED[0]); i++)
		daemon_case(&CRAFTED[i], path);
}

/* build/tests/test-journal -> build/tmp/test-journal-<pid>, not tmpfs. */
static void make_dir(const char *argv0, char *dir, size_t len)
{
	const char *env = getenv("KVSWAP_TEST_DIR");
	char bin[PATH_MAX], parent[PATH_MAX];
	struct statfs sfs;

	snprintf(bin, sizeof(bin), "%s", argv0);
	if (env && *env)
		snprintf(parent, sizeof(parent), "%s", env);
	else
		snprintf(parent, sizeof(parent), "%s/../tmp", dirname(bin));
	if (mkdir(parent, 0755) < 0 && errno != EEXIST)
		bail_out("mkdir %s: %s", parent, strerror(errno));
	if (snprintf(dir, len, "%s/test-journal-%d", parent, (int)getpid()) >=
	    (int)len)
		bail_out("test folder path too long");
	if (mkdir(dir, 0755) < 0)
		bail_out("mkdir %s: %s", dir, strerror(errno));
	if (statfs(dir, &sfs) < 0)
		bail_out("statfs %s: %s", dir, strerror(errno));
	if (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC)
		bail_out("test folder %s is on tmpfs/ramfs; the store needs a real "
			 "filesystem with O_DIRECT (set $KVSWAP_TEST_DIR)", dir);
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX];

	(void)argc;
	log_max_level = LOG_ERR;	/* the drops it provokes are expected */
	test_limits();
	test_many();
	test_blocks();
	test_bad_fixed();
	test_bad_content();
	make_dir(argv[0], dir, sizeof(dir));
	test_store(dir);
	test_daemon();
	if (!tap_failures())
		rmdir(dir);
	else
		diag("test folder kept for inspection: %s", dir);
	done_testing();
}
