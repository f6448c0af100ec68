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
 *   magic, crc32c, nonce, seq, used   (32 bytes)   payload (4064 bytes)
 *
 * valid while its CRC matches, its nonce is the live one and seq is its
 * index; their payloads concatenated are a stream of records (PUT, DEL).
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

struct jf_block_hdr {
	uint32_t magic;
	uint32_t crc;		/* of the whole block with this field 0 */
	uint64_t nonce;
	uint64_t seq;
	uint32_t used;		/* payload bytes */
	uint32_t pad;
};
_Static_assert(sizeof(struct jf_block_hdr) == JF_HDR, "log block header");

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
 * Records written into a caller's buffer of `cap` blocks, across block
 * payloads; the buffer must hold every byte written (asserted).
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
 * Seals the stream's blocks: zero payload tails, headers numbered from
 * seq0 under nonce, CRCs. Returns the number of blocks (0 for no bytes).
 */
size_t jf_stream_seal(struct jf_stream *s, uint64_t nonce, uint64_t seq0);

/*
 * Whether the JF_BLOCK bytes at block are a valid log block with this
 * nonce and sequence number; if so *ret_used is its payload length.
 */
bool jf_block_check(const void *block, uint64_t nonce, uint64_t seq,
		    uint32_t *ret_used);

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

/*
 * Frames the record at the start of p[0, len): checks its fixed part
 * against the protocol limits (key 1..KVS_MAX_KEY, PUT: 1..KVS_MAX_SEGMENTS
 * segments, metadata up to KVS_MAX_METADATA, at most KVS_MAX_EXTENTS
 * extents per segment) and that it is whole. Returns its length with *ret
 * describing it, or 0 where replay must stop: the record is cut off by the
 * end of the stream, or its fixed part is one no writer produces.
 */
size_t jf_rec_parse(const void *p, size_t len, struct jf_rec *ret);

/*
 * Decodes a framed PUT into a new entry (refs 1, unlinked, flags and size
 * set; owner: the caller, who frees it with free()), checking that every
 * segment has a length and extents, that the segments' extents add up to
 * no more than the record's, that each segment's extents cover exactly its
 * blocks, and that every extent has blocks in one of nfiles files. Returns
 * 0, -EBADMSG for a record that fails a check (damaged: skip it), or
 * -ENOMEM.
 */
int jf_rec_entry(const struct jf_rec *r, uint32_t nfiles, struct entry **ret);

#endif
