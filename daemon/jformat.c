/* SPDX-License-Identifier: MIT */
/*
 * The metadata log's blocks and records (jformat.h): encoding, sealing,
 * checking and decoding, with no I/O. journal.c writes with it, recover.c
 * reads with it, tests/test-journal.c crafts logs with it.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "index.h"
#include "jformat.h"
#include "defs.h"	/* the protocol limits a record is checked against */

size_t jf_blocks_for(size_t bytes)
{
	return (bytes + JF_PAYLOAD - 1) / JF_PAYLOAD;
}

size_t jf_rec_size(enum jf_type type, const struct entry *e)
{
	size_t n = sizeof(struct jf_rec_hdr) + e->key_len;

	assert(type == JF_PUT || type == JF_DEL);
	if (type == JF_PUT)
		n += e->meta_len + e->nseg * sizeof(struct jf_rec_seg) +
		     e->next * sizeof(struct jf_rec_ext);
	return n;
}

/* A block's lead, kept in its header until the stream is sealed. */
static void set_lead(struct jf_stream *s, size_t block, uint16_t lead)
{
	memcpy(s->buf + block * JF_BLOCK + offsetof(struct jf_block_hdr, lead),
	       &lead, sizeof(lead));
}

static uint16_t get_lead(const struct jf_stream *s, size_t block)
{
	uint16_t lead;

	memcpy(&lead, s->buf + block * JF_BLOCK +
	       offsetof(struct jf_block_hdr, lead), sizeof(lead));
	return lead;
}

void jf_stream_init(struct jf_stream *s, void *buf, size_t cap)
{
	*s = (struct jf_stream){ .buf = buf, .cap = cap };
	assert(cap >= 1);
	set_lead(s, 0, 0);
}

static void st_write(struct jf_stream *s, const void *p, size_t n)
{
	const uint8_t *src = p;

	while (n) {
		size_t k;

		if (s->pos == JF_PAYLOAD) {
			s->block++;
			s->pos = 0;
			assert(s->block < s->cap);
			set_lead(s, s->block, 0);
		}
		k = JF_PAYLOAD - s->pos < n ? JF_PAYLOAD - s->pos : n;
		memcpy(s->buf + s->block * JF_BLOCK + JF_HDR + s->pos, src, k);
		s->pos += k;
		src += k;
		n -= k;
	}
}

void jf_rec_write(struct jf_stream *s, enum jf_type type, const struct entry *e)
{
	struct jf_rec_hdr h = {
		.type = (uint8_t)type,
		.key_len = (uint16_t)e->key_len,
	};
	/* The block the record begins in: a full block's successor. */
	size_t first = s->pos == JF_PAYLOAD ? s->block + 1 : s->block;

	assert(type == JF_PUT || type == JF_DEL);
	if (type == JF_PUT) {
		h.flags = (uint8_t)e->flags;
		h.nseg = e->nseg;
		h.next = e->next;
		h.meta_len = e->meta_len;
	}
	st_write(s, &h, sizeof(h));
	st_write(s, e->key, e->key_len);
	if (type == JF_PUT) {
		st_write(s, e->meta, e->meta_len);
		for (uint32_t i = 0; i < e->nseg; i++) {
			struct jf_rec_seg r = { e->segs[i].len, e->segs[i].crc,
						e->segs[i].next };

			st_write(s, &r, sizeof(r));
		}
		for (uint32_t i = 0; i < e->next; i++) {
			struct jf_rec_ext r = { e->ext[i].block, e->ext[i].nblocks,
						e->ext[i].file };

			st_write(s, &r, sizeof(r));
		}
	}
	/* The blocks it spilled into begin with the rest of it. */
	for (size_t b = first + 1; b <= s->block; b++)
		set_lead(s, b, b < s->block ? JF_PAYLOAD : (uint16_t)s->pos);
}

size_t jf_stream_seal(struct jf_stream *s, uint64_t nonce, uint64_t gen,
		      uint64_t seq0)
{
	size_t n = s->block + (s->pos > 0);

	if (!n)
		n = 1;	/* an empty checkpoint still marks its epoch */
	for (size_t i = 0; i < n; i++) {
		uint8_t *b = s->buf + i * JF_BLOCK;
		struct jf_block_hdr h = {
			.magic = JF_MAGIC,
			.nonce = nonce,
			.seq = seq0 + i,
			.used = i + 1 < n ? JF_PAYLOAD : (uint16_t)s->pos,
			.lead = get_lead(s, i),
			.gen = (uint32_t)gen,
		};
		size_t used = h.used;

		assert(h.lead <= h.used);
		if (i == 0)
			h.lead |= JF_START;
		if (i + 1 == n)
			h.lead |= JF_END;
		memset(b + JF_HDR + used, 0, JF_PAYLOAD - used);
		memcpy(b, &h, sizeof(h));
		h.crc = crc32c(0, b, JF_BLOCK);
		memcpy(b, &h, sizeof(h));
	}
	return n;
}

/* Magic, fields and CRC; *h is the header as read. */
static bool block_sound(const uint8_t *b, struct jf_block_hdr *h)
{
	static const uint8_t zero[sizeof(uint32_t)];
	const size_t at = offsetof(struct jf_block_hdr, crc);
	uint32_t crc;

	memcpy(h, b, sizeof(*h));
	if (h->magic != JF_MAGIC || h->used > JF_PAYLOAD ||
	    (h->lead & ~(JF_LEAD_MASK | JF_START | JF_END)) ||
	    (h->lead & JF_LEAD_MASK) > h->used ||
	    ((h->lead & JF_START) && (h->lead & JF_LEAD_MASK)))
		return false;
	/* The CRC covers the block with its own field 0. */
	crc = crc32c(0, b, at);
	crc = crc32c(crc, zero, sizeof(zero));
	crc = crc32c(crc, b + at + sizeof(zero), JF_BLOCK - at - sizeof(zero));
	return crc == h->crc;
}

static void block_info(const struct jf_block_hdr *h, struct jf_block_info *ret)
{
	*ret = (struct jf_block_info){
		.nonce = h->nonce,
		.seq = h->seq,
		.gen = h->gen,
		.used = h->used,
		.lead = h->lead & JF_LEAD_MASK,
		.start = h->lead & JF_START,
		.end = h->lead & JF_END,
	};
}

enum jf_block_state jf_block_check(const void *block, uint64_t nonce,
				   uint64_t gen, uint64_t seq,
				   struct jf_block_info *ret)
{
	struct jf_block_hdr h;

	memcpy(&h, block, sizeof(h));
	if (h.magic != JF_MAGIC || h.nonce != nonce || h.seq != seq ||
	    h.gen != (uint32_t)gen)
		return JF_BLOCK_OTHER;
	if (!block_sound(block, &h))
		return JF_BLOCK_DAMAGED;
	if (ret)
		block_info(&h, ret);
	return JF_BLOCK_VALID;
}

bool jf_block_peek(const void *block, struct jf_block_info *ret)
{
	struct jf_block_hdr h;

	if (!block_sound(block, &h))
		return false;
	block_info(&h, ret);
	return true;
}

enum jf_rec_state jf_rec_frame(const void *p, size_t len, struct jf_rec *ret,
				size_t *ret_len)
{
	const uint8_t *b = p;
	struct jf_rec_hdr h;
	size_t need;

	if (len < sizeof(h))
		return JF_REC_CUT;
	memcpy(&h, b, sizeof(h));
	/* Format 4 keys are composite: tenant, NUL, key (catalog.c checks). */
	if (!h.key_len || h.key_len > ENTRY_MAX_KEY)
		return JF_REC_BAD;
	if (h.type == JF_DEL) {
		need = sizeof(h) + h.key_len;
		if (need > len)
			return JF_REC_CUT;
		*ret = (struct jf_rec){
			.type = JF_DEL,
			.key_len = h.key_len,
			.key = b + sizeof(h),
		};
		*ret_len = need;
		return JF_REC_OK;
	}
	/* nseg is bounded before it multiplies: no product can wrap. */
	if (h.type != JF_PUT || !h.nseg || h.nseg > KVS_MAX_SEGMENTS ||
	    h.meta_len > KVS_MAX_METADATA || h.next > h.nseg * KVS_MAX_EXTENTS)
		return JF_REC_BAD;
	need = sizeof(h) + h.key_len + h.meta_len +
	       (size_t)h.nseg * sizeof(struct jf_rec_seg) +
	       (size_t)h.next * sizeof(struct jf_rec_ext);
	if (need > len)
		return JF_REC_CUT;
	*ret = (struct jf_rec){
		.type = JF_PUT,
		.flags = h.flags,
		.key_len = h.key_len,
		.nseg = h.nseg,
		.next = h.next,
		.meta_len = h.meta_len,
		.key = b + sizeof(h),
		.meta = b + sizeof(h) + h.key_len,
		.segs = b + sizeof(h) + h.key_len + h.meta_len,
	};
	ret->exts = ret->segs + (size_t)h.nseg * sizeof(struct jf_rec_seg);
	*ret_len = need;
	return JF_REC_OK;
}

size_t jf_rec_parse(const void *p, size_t len, struct jf_rec *ret)
{
	size_t n;

	return jf_rec_frame(p, len, ret, &n) == JF_REC_OK ? n : 0;
}

const char *jf_rec_check(const struct jf_rec *r, uint32_t nfiles)
{
	uint32_t k = 0;

	assert(r->type == JF_PUT);
	for (uint32_t i = 0; i < r->nseg; i++) {
		struct jf_rec_seg s;
		uint64_t blocks = 0;

		memcpy(&s, r->segs + i * sizeof(s), sizeof(s));
		if (!s.len)
			return "a segment of 0 bytes";
		if (!s.next)
			return "a segment with no extents";
		/* Compared before adding: a huge count must not wrap k. */
		if (s.next > r->next - k)
			return "its segments claim more extents than it holds";
		for (uint32_t n = 0; n < s.next; n++) {
			struct jf_rec_ext x;

			memcpy(&x, r->exts + (size_t)(k + n) * sizeof(x), sizeof(x));
			if (x.file >= nfiles)
				return "an extent in a file the store does not have";
			if (!x.nblocks)
				return "an extent of 0 blocks";
			/* At most 64 extents of 2^32-1 blocks: no wrap. */
			blocks += x.nblocks;
		}
		if (blocks != s.len / JF_BLOCK + (s.len % JF_BLOCK != 0))
			return "a segment whose extents do not cover exactly its "
			       "length";
		k += s.next;
	}
	if (k != r->next)
		return "extents that belong to no segment";
	return NULL;
}

int jf_rec_entry(const struct jf_rec *r, uint32_t nfiles, struct entry **ret)
{
	struct entry *e;

	assert(r->type == JF_PUT);
	if (jf_rec_check(r, nfiles))
		return -EBADMSG;
	e = entry_new(r->key, r->key_len, r->meta, r->meta_len, r->nseg, r->next);
	if (!e)
		return -ENOMEM;
	e->flags = r->flags & ENTRY_PINNED;
	for (uint32_t i = 0, k = 0; i < r->nseg; i++) {
		struct jf_rec_seg s;

		memcpy(&s, r->segs + i * sizeof(s), sizeof(s));
		e->segs[i] = (struct sseg){ s.len, k, s.next, s.crc, 0 };
		k += s.next;
		/* 1024 segments of at most 2^38 blocks each: no wrap. */
		e->size += s.len;
	}
	for (uint32_t i = 0; i < r->next; i++) {
		struct jf_rec_ext x;

		memcpy(&x, r->exts + i * sizeof(x), sizeof(x));
		e->ext[i] = (struct sext){ x.block, x.nblocks, x.file };
	}
	*ret = e;
	return 0;
}
