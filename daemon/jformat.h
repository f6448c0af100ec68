/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_JFORMAT_H
#define KVSWAP_JFORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct entry;

/*
 * The metadata log's on-disk format (docs/STORE_FORMAT.md), as pure
 * functions: no I/O, no globals, nothing allocated but the entry a PUT
 * decodes to. A log half is a sequence of blocks,
 *
 *   magic, crc32c, nonce, seq, used, lead, gen   (32 bytes)   payload (4064)
 *
 * valid while its CRC matches, its nonce and generation are the epoch's
 * and seq is its index; their payloads concatenated are a stream of
 * records (PUT, DEL). Each sealed stream is one commit (or checkpoint): its
 * first block is marked JF_START, its last JF_END, and every block says how
 * many of its payload bytes finish a record begun in an earlier block
 * (`lead`), so that a reader can find the next record after a damaged
 * block. Version 2 stores had neither marks nor generation (both 0).
 *
 * Byte order: the format is little-endian, and the structs below are
 * copied to and from disk as they are. kvswapd runs on x86-64 only; the
 * assertion below refuses to build it for a big-endian host rather than
 * write a store no other host could read.
 */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the log format is little-endian and copied as is");

#define JF_BLOCK	4096u
#define JF_MAGIC	0x424c564bu	/* "KVLB" */
#define JF_HDR		32u
#define JF_PAYLOAD	(JF_BLOCK - JF_HDR)

/* A record's type byte. */
enum jf_type {
	JF_PUT = 1,
	JF_DEL = 2,
};

/* The `lead` field: a byte count and two marks. */
#define JF_LEAD_MASK	0x0fffu
#define JF_START	0x8000u	/* the first block of a commit or checkpoint */
#define JF_END		0x4000u	/* its last block */

struct jf_block_hdr {
	uint32_t magic;
	uint32_t crc;		/* of the whole block with this field 0 */
	uint64_t nonce;
	uint64_t seq;
	uint16_t used;		/* payload bytes */
	uint16_t lead;		/* JF_LEAD_MASK: payload bytes that end a record
				 * begun in an earlier block; JF_START, JF_END */
	uint32_t gen;		/* low 32 bits of the epoch's generation */
};
_Static_assert(sizeof(struct jf_block_hdr) == JF_HDR, "log block header");
_Static_assert(JF_PAYLOAD <= JF_LEAD_MASK, "lead holds a payload length");

/* A record's fixed part, followed by key, and for a PUT meta, segs, exts. */
struct jf_rec_hdr {
	uint8_t type;
	uint8_t flags;
	uint16_t key_len;
	uint32_t nseg;
	uint32_t next;
	uint32_t meta_len;
};
_Static_assert(sizeof(struct jf_rec_hdr) == 16, "record header");

struct jf_rec_seg {
	uint64_t len;
	uint32_t crc;
	uint32_t next;		/* its extents */
};
_Static_assert(sizeof(struct jf_rec_seg) == 16, "record segment");

struct jf_rec_ext {
	uint64_t block;
	uint32_t nblocks;
	uint32_t file;
};
_Static_assert(sizeof(struct jf_rec_ext) == 16, "record extent");

/* Payload blocks that `bytes` of records take. */
size_t jf_blocks_for(size_t bytes);

/* Encoded bytes of e's record of this type. */
size_t jf_rec_size(enum jf_type type, const struct entry *e);

/*
 * Records written into a caller's buffer of `cap` blocks (at least 1),
 * across block payloads; the buffer must hold every byte written
 * (asserted). Each block's `lead` is kept in its header until sealed.
 */
struct jf_stream {
	uint8_t *buf;
	size_t cap;		/* blocks */
	size_t block;		/* the block being filled */
	size_t pos;		/* bytes in its payload */
};

void jf_stream_init(struct jf_stream *s, void *buf, size_t cap);

/* Appends e's record of this type. */
void jf_rec_write(struct jf_stream *s, enum jf_type type, const struct entry *e);

/*
 * Seals the stream's blocks as one commit: zero payload tails, headers
 * numbered from seq0 under nonce and gen (its low 32 bits), JF_START on
 * the first block and JF_END on the last, CRCs. Returns the number of
 * blocks; a stream with no bytes seals to one empty block.
 */
size_t jf_stream_seal(struct jf_stream *s, uint64_t nonce, uint64_t gen,
		      uint64_t seq0);

/* A block's header, once its CRC and fields check. */
struct jf_block_info {
	uint64_t nonce;
	uint64_t seq;
	uint32_t gen;
	uint16_t used;		/* payload bytes */
	uint16_t lead;		/* payload bytes ending an earlier record */
	bool start;		/* JF_START */
	bool end;		/* JF_END */
};

enum jf_block_state {
	JF_BLOCK_OTHER,		/* not this epoch's block for this place */
	JF_BLOCK_DAMAGED,	/* this epoch's header for this place, but the
				 * CRC or a field does not check */
	JF_BLOCK_VALID,
};

/*
 * Checks the JF_BLOCK bytes at block against the epoch (nonce, gen: its
 * low 32 bits; 0 for a version 2 log, whose blocks carry none) and the
 * place seq. JF_BLOCK_DAMAGED means the header names this epoch and place
 * (so the block was written by it) but the block no longer checks. On
 * JF_BLOCK_VALID, *ret (if not NULL) describes the block.
 */
enum jf_block_state jf_block_check(const void *block, uint64_t nonce,
				   uint64_t gen, uint64_t seq,
				   struct jf_block_info *ret);

/*
 * Whether the block is a valid log block of any epoch and place (magic,
 * fields, CRC); if so *ret describes it. For a half whose epoch is unknown.
 */
bool jf_block_peek(const void *block, struct jf_block_info *ret);

/* One record framed in a stream: pointers into the stream's bytes. */
struct jf_rec {
	enum jf_type type;
	uint8_t flags;
	uint16_t key_len;
	uint32_t nseg;		/* PUT only, as the next three */
	uint32_t next;
	uint32_t meta_len;
	const uint8_t *key;
	const uint8_t *meta;
	const uint8_t *segs;	/* nseg struct jf_rec_seg, unaligned */
	const uint8_t *exts;	/* next struct jf_rec_ext, unaligned */
};

/* What jf_rec_frame() makes of the bytes at a record start. */
enum jf_rec_state {
	JF_REC_OK,
	JF_REC_CUT,	/* a sound fixed part, but the record runs past len
			 * (or len holds less than a fixed part) */
	JF_REC_BAD,	/* a fixed part no writer produces */
};

/*
 * Frames the record at the start of p[0, len): checks its fixed part
 * against the protocol limits (key 1..KVS_MAX_KEY, PUT: 1..KVS_MAX_SEGMENTS
 * segments, metadata up to KVS_MAX_METADATA, at most KVS_MAX_EXTENTS
 * extents per segment) and that it is whole. On JF_REC_OK,
 * *ret describes it and *ret_len is its length. Nothing past the fixed
 * part is read.
 */
enum jf_rec_state jf_rec_frame(const void *p, size_t len, struct jf_rec *ret,
				size_t *ret_len);

/*
 * jf_rec_frame() for callers that need no reason: the record's length
 * with *ret describing it, or 0 where replay must stop (cut off, or a
 * fixed part no writer produces).
 */
size_t jf_rec_parse(const void *p, size_t len, struct jf_rec *ret);

/*
 * Checks a framed PUT's content: every segment has a length and extents,
 * the segments' extents add up to exactly the record's, each segment's
 * extents cover exactly its blocks, and every extent has blocks in one of
 * nfiles files. Returns NULL, or what fails as a phrase for a log line
 * ("a segment of 0 bytes"); static strings. The extents' place inside
 * each file's data area is the store's to check (store_extent_valid()).
 */
const char *jf_rec_check(const struct jf_rec *r, uint32_t nfiles);

/*
 * Decodes a framed PUT into a new entry (refs 1, unlinked, flags and size
 * set; owner: the caller, who frees it with free()) once jf_rec_check()
 * passes. Returns 0, -EBADMSG for a record that fails a check (damaged:
 * skip it), or -ENOMEM.
 */
int jf_rec_entry(const struct jf_rec *r, uint32_t nfiles, struct entry **ret);

#endif
