/* SPDX-License-Identifier: MIT */
/*
 * The metadata log's blocks and records (jformat.h): encoding, sealing,
 * checking and decoding, with no I/O. journal.c writes with it, recover.c
 * reads with it, tests/test-journal.c crafts logs with it.
 */
#include <assert.h>
#include <errno.h>
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

void jf_stream_init(struct jf_stream *s, void *buf, size_t cap)
{
	*s = (struct jf_stream){ .buf = buf, .cap = cap };
}

static void st_write(struct jf_stream *s, const void *p, size_t n)
{
	const uint8_t *src = p;

	while (n) {
		size_t k;

		if (s->pos == JF_PAYLOAD) {
			s->block++;
			s->pos = 0;
		}
		assert(s->block < s->cap);
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

	assert(type == JF_PUT || type == JF_DEL);
	if (type == JF_PUT) {
		h.flags = (uint8_t)e->flags;
		h.nseg = e->nseg;
		h.next = e->next;
		h.meta_len = e->meta_len;
	}
	st_write(s, &h, sizeof(h));
	st_write(s, e->key, e->key_len);
	if (type != JF_PUT)
		return;
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

size_t jf_stream_seal(struct jf_stream *s, uint64_t nonce, uint64_t seq0)
{
	size_t n = s->block + (s->pos > 0);

	for (size_t i = 0; i < n; i++) {
		uint8_t *b = s->buf + i * JF_BLOCK;
		struct jf_block_hdr h = {
			.magic = JF_MAGIC,
			.nonce = nonce,
			.seq = seq0 + i,
			.used = i + 1 < n ? JF_PAYLOAD : (uint32_t)s->pos,
		};
		size_t used = h.used;

		memset(b + JF_HDR + used, 0, JF_PAYLOAD - used);
		memcpy(b, &h, sizeof(h));
		h.crc = crc32c(0, b, JF_BLOCK);
		memcpy(b, &h, sizeof(h));
	}
	return n;
}

bool jf_block_check(const void *block, uint64_t nonce, uint64_t seq,
		    uint32_t *ret_used)
{
	static const uint8_t zero[sizeof(uint32_t)];
	const size_t at = offsetof(struct jf_block_hdr, crc);
	const uint8_t *b = block;
	struct jf_block_hdr h;
	uint32_t crc;

	memcpy(&h, b, sizeof(h));
	if (h.magic != JF_MAGIC || h.nonce != nonce || h.seq != seq ||
	    h.used > JF_PAYLOAD)
		return false;
	/* The CRC covers the block with its own field 0. */
	crc = crc32c(0, b, at);
	crc = crc32c(crc, zero, sizeof(zero));
	crc = crc32c(crc, b + at + sizeof(zero), JF_BLOCK - at - sizeof(zero));
	if (crc != h.crc)
		return false;
	*ret_used = h.used;
	return true;
}

size_t jf_rec_parse(const void *p, size_t len, struct jf_rec *ret)
{
	const uint8_t *b = p;
	struct jf_rec_hdr h;
	size_t need;

	if (len < sizeof(h))
		return 0;
	memcpy(&h, b, sizeof(h));
	if (!h.key_len || h.key_len > KVS_MAX_KEY)
		return 0;
	if (h.type == JF_DEL) {
		need = sizeof(h) + h.key_len;
		if (need > len)
			return 0;
		*ret = (struct jf_rec){
			.type = JF_DEL,
			.key_len = h.key_len,
			.key = b + sizeof(h),
		};
		return need;
	}
	if (h.type != JF_PUT || !h.nseg || h.nseg > KVS_MAX_SEGMENTS ||
	    h.meta_len > KVS_MAX_METADATA || h.next > h.nseg * KVS_MAX_EXTENTS)
		return 0;
	need = sizeof(h) + h.key_len + h.meta_len +
	       h.nseg * sizeof(struct jf_rec_seg) +
	       h.next * sizeof(struct jf_rec_ext);
	if (need > len)
		return 0;
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
	ret->exts = ret->segs + h.nseg * sizeof(struct jf_rec_seg);
	return need;
}

int jf_rec_entry(const struct jf_rec *r, uint32_t nfiles, struct entry **ret)
{
	struct entry *e;
	uint32_t k = 0;

	assert(r->type == JF_PUT);
	e = entry_new(r->key, r->key_len, r->meta, r->meta_len, r->nseg, r->next);
	if (!e)
		return -ENOMEM;
	e->flags = r->flags & ENTRY_PINNED;
	for (uint32_t i = 0; i < r->nseg; i++) {
		struct jf_rec_seg s;

		memcpy(&s, r->segs + i * sizeof(s), sizeof(s));
		/* Compared before adding: a huge count must not wrap k. */
		if (!s.len || !s.next || s.next > r->next - k)
			goto out_bad;
		e->segs[i] = (struct sseg){ s.len, k, s.next, s.crc, 0 };
		k += s.next;
		e->size += s.len;
	}
	for (uint32_t i = 0; i < r->next; i++) {
		struct jf_rec_ext x;

		memcpy(&x, r->exts + i * sizeof(x), sizeof(x));
		if (x.file >= nfiles || !x.nblocks)
			goto out_bad;
		e->ext[i] = (struct sext){ x.block, x.nblocks, x.file };
	}
	for (uint32_t i = 0; i < r->nseg; i++) {
		uint64_t blocks = 0, len = e->segs[i].len;

		for (uint32_t n = 0; n < e->segs[i].next; n++)
			blocks += e->ext[e->segs[i].ext + n].nblocks;
		if (blocks != len / JF_BLOCK + (len % JF_BLOCK != 0))
			goto out_bad;
	}
	*ret = e;
	return 0;

out_bad:
	free(e);
	return -EBADMSG;
}
