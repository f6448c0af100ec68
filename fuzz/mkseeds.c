/* SPDX-License-Identifier: MIT */
/*
 * Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/) with the
 * daemon's and protobuf-c's own encoders: `make fuzz-seeds` after a change
 * of the wire or log format. Each seed is a few hundred bytes to a few
 * KiB, in the input format its target's header comment describes.
 *
 *   mkseeds DIR    writes DIR/wire/, DIR/journal/, DIR/config/
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "index.h"
#include "jformat.h"
#include "kvswap.pb-c.h"

static const char *root;

static void out(const char *target, const char *name, const void *p, size_t n)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* --- wire ---------------------------------------------------------------- */

static void req(const char *name, Kvswap__V1__Request *r)
{
	uint8_t buf[4096];
	size_t n = kvswap__v1__request__get_packed_size(r);

	if (n > sizeof(buf))
		abort();
	kvswap__v1__request__pack(r, buf);
	out("wire", name, buf, n);
}

static void wire(void)
{
	Kvswap__V1__Request r = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Hello hello = KVSWAP__V1__HELLO__INIT;
	Kvswap__V1__RegisterRegion reg = KVSWAP__V1__REGISTER_REGION__INIT;
	Kvswap__V1__SegmentOut so[2] = { KVSWAP__V1__SEGMENT_OUT__INIT,
					 KVSWAP__V1__SEGMENT_OUT__INIT };
	Kvswap__V1__SegmentOut *sop[2] = { &so[0], &so[1] };
	Kvswap__V1__SwapOut out1 = KVSWAP__V1__SWAP_OUT__INIT;
	Kvswap__V1__SegmentIn si[2] = { KVSWAP__V1__SEGMENT_IN__INIT,
					KVSWAP__V1__SEGMENT_IN__INIT };
	Kvswap__V1__SegmentIn *sip[2] = { &si[0], &si[1] };
	Kvswap__V1__SwapIn in1 = KVSWAP__V1__SWAP_IN__INIT;
	ProtobufCBinaryData keys[2] = { { 3, (uint8_t *)"k-a" },
					{ 3, (uint8_t *)"k-b" } };
	Kvswap__V1__Lookup look = KVSWAP__V1__LOOKUP__INIT;
	Kvswap__V1__Describe desc = KVSWAP__V1__DESCRIBE__INIT;
	Kvswap__V1__Delete del = KVSWAP__V1__DELETE__INIT;
	Kvswap__V1__List list = KVSWAP__V1__LIST__INIT;
	Kvswap__V1__Stat stat = KVSWAP__V1__STAT__INIT;
	uint64_t offs[2] = { 0, 8192 }, lens[2] = { 4096, 5000 };
	uint32_t groups[2] = { 0, 1 }, idx[2] = { 1, 0 }, crcs[2] = { 1, 2 };
	Kvswap__V1__BatchEntry be[2] = { KVSWAP__V1__BATCH_ENTRY__INIT,
					 KVSWAP__V1__BATCH_ENTRY__INIT };
	Kvswap__V1__BatchEntry *bep[2] = { &be[0], &be[1] };
	Kvswap__V1__SwapOutBatch ob = KVSWAP__V1__SWAP_OUT_BATCH__INIT;
	Kvswap__V1__SwapInBatch ib = KVSWAP__V1__SWAP_IN_BATCH__INIT;
	Kvswap__V1__Cancel cancel = KVSWAP__V1__CANCEL__INIT;

	r.has_id = 1;
	r.id = 7;
	hello.has_version = 1;
	hello.version = 1;
	hello.client_name = "fuzz";
	r.body_case = KVSWAP__V1__REQUEST__BODY_HELLO;
	r.hello = &hello;
	req("hello", &r);

	reg.has_size = 1;
	reg.size = 1 << 20;
	r.body_case = KVSWAP__V1__REQUEST__BODY_REGISTER_REGION;
	r.register_region = &reg;
	req("register-region", &r);

	so[0].has_offset = so[0].has_length = 1;
	so[0].offset = 0;
	so[0].length = 4096;
	so[1].has_offset = so[1].has_length = 1;
	so[1].offset = 8192;
	so[1].length = 100;
	out1.has_key = out1.has_region = out1.has_metadata = out1.has_flags = 1;
	out1.key = keys[0];
	out1.region = 1;
	out1.metadata = (ProtobufCBinaryData){ 4, (uint8_t *)"meta" };
	out1.flags = 0x1 | 0x4;
	out1.n_segments = 2;
	out1.segments = sop;
	r.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT;
	r.swap_out = &out1;
	req("swap-out", &r);

	si[0].has_index = si[0].has_offset = 1;
	si[0].index = 1;
	si[0].offset = 4096;
	si[1].has_index = si[1].has_offset = 1;
	in1.has_key = in1.has_region = 1;
	in1.key = keys[0];
	in1.region = 1;
	in1.n_segments = 2;
	in1.segments = sip;
	r.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_IN;
	r.swap_in = &in1;
	req("swap-in", &r);

	look.n_keys = 2;
	look.keys = keys;
	look.has_lease_ms = 1;
	look.lease_ms = 1000;
	r.body_case = KVSWAP__V1__REQUEST__BODY_LOOKUP;
	r.lookup = &look;
	req("lookup", &r);

	desc.n_keys = 2;
	desc.keys = keys;
	r.body_case = KVSWAP__V1__REQUEST__BODY_DESCRIBE;
	r.describe = &desc;
	req("describe", &r);

	del.has_key = 1;
	del.key = keys[1];
	r.body_case = KVSWAP__V1__REQUEST__BODY_DELETE;
	r.delete_ = &del;
	req("delete", &r);

	list.has_cursor = list.has_limit = 1;
	list.cursor = 12345;
	list.limit = 10;
	r.body_case = KVSWAP__V1__REQUEST__BODY_LIST;
	r.list = &list;
	req("list", &r);

	r.body_case = KVSWAP__V1__REQUEST__BODY_STAT;
	r.stat = &stat;
	req("stat", &r);

	for (int i = 0; i < 2; i++) {
		be[i].has_key = 1;
		be[i].key = keys[i];
		be[i].n_offsets = 2;
		be[i].offsets = offs;
		be[i].n_groups = 2;
		be[i].groups = groups;
	}
	be[0].n_lengths = 2;
	be[0].lengths = lens;
	be[0].n_crcs = 2;
	be[0].crcs = crcs;
	be[0].has_metadata = 1;
	be[0].metadata = (ProtobufCBinaryData){ 2, (uint8_t *)"md" };
	be[1].n_lengths = 1;
	be[1].lengths = lens;
	ob.has_region = ob.has_flags = ob.has_events = ob.has_request_order = 1;
	ob.region = 2;
	ob.flags = 0x2 | 0x8;
	ob.events = 1;
	ob.request_order = 1;
	ob.n_entries = 2;
	ob.entries = bep;
	r.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT_BATCH;
	r.swap_out_batch = &ob;
	req("swap-out-batch", &r);

	for (int i = 0; i < 2; i++) {
		be[i].n_lengths = be[i].n_crcs = 0;
		be[i].has_metadata = 0;
		be[i].n_indexes = 2;
		be[i].indexes = idx;
	}
	ib.has_region = ib.has_events = ib.has_client_verify = 1;
	ib.region = 2;
	ib.client_verify = 1;
	ib.n_entries = 2;
	ib.entries = bep;
	r.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_IN_BATCH;
	r.swap_in_batch = &ib;
	req("swap-in-batch", &r);

	cancel.has_request = 1;
	cancel.request = 7;
	r.body_case = KVSWAP__V1__REQUEST__BODY_CANCEL;
	r.cancel = &cancel;
	req("cancel", &r);
}

/* --- journal ------------------------------------------------------------- */

/* Data blocks of the fuzz target's 8 MiB store: 768 .. 2047. */
#define DATA0	768u

/* An entry of nseg segments of `per` one-block extents from *blk on. */
static struct entry *ent(const char *key, uint32_t nseg, uint32_t per,
			 uint64_t *blk, bool pinned)
{
	struct entry *e = entry_new(key, (uint32_t)strlen(key), "md", 2, nseg,
				    nseg * per);

	if (!e)
		abort();
	e->flags = pinned ? ENTRY_PINNED : 0;
	for (uint32_t i = 0, k = 0; i < nseg; i++) {
		uint64_t len = (uint64_t)per * JF_BLOCK - 100 * (i % 40);

		/* The fuzz store's data blocks are zeros: salvage's check passes. */
		static const uint8_t zero[64 * JF_BLOCK];
		uint32_t crc = crc32c(0, zero, len);

		e->segs[i] = (struct sseg){ len, k, per, crc, 0 };
		e->size += len;
		for (uint32_t x = 0; x < per; x++, k++)
			e->ext[k] = (struct sext){ (*blk)++, 1, 0 };
	}
	return e;
}

struct img {
	uint8_t buf[64 * 1024];
	size_t len;
};

static void put(struct img *im, const void *p, size_t n)
{
	if (im->len + n > sizeof(im->buf))
		abort();
	memcpy(im->buf + im->len, p, n);
	im->len += n;
}

/*
 * One sealed commit of records as the target's block chunks: ctl 0, the
 * sealed header's lead (marks included) and used, the payload.
 */
static void commit(struct img *im, const enum jf_type *t, struct entry **e,
		   size_t n)
{
	static uint8_t blocks[8 * JF_BLOCK] __attribute__((aligned(4096)));
	struct jf_stream s;
	size_t k;

	jf_stream_init(&s, blocks, 8);
	for (size_t i = 0; i < n; i++)
		jf_rec_write(&s, t[i], e[i]);
	k = jf_stream_seal(&s, 1, 1, 0);
	for (size_t b = 0; b < k; b++) {
		struct jf_block_hdr h;
		uint8_t ctl = 0;

		memcpy(&h, blocks + b * JF_BLOCK, sizeof(h));
		put(im, &ctl, 1);
		put(im, &h.lead, 2);
		put(im, &h.used, 2);
		put(im, blocks + b * JF_BLOCK + JF_HDR, h.used);
	}
}

/* The image's first two bytes: mode (bit 0 set) and checkpoint blocks. */
static void start(struct img *im, uint8_t mode, uint8_t ck)
{
	im->len = 0;
	put(im, &mode, 1);
	put(im, &ck, 1);
}

static void journal(void)
{
	static struct img im;
	uint64_t blk = DATA0;
	struct entry *a = ent("alpha", 2, 2, &blk, false);
	struct entry *b = ent("bravo", 1, 1, &blk, true);
	struct entry *c = ent("charlie", 3, 1, &blk, false);
	struct entry *big = ent("big", 300, 1, &blk, false);
	struct entry *twice = ent("twice", 1, 2, &blk, false);
	struct entry *e[3];

	/* A checkpoint of two entries, then a commit: DEL a, PUT c. */
	start(&im, 1, 1);
	e[0] = a, e[1] = b;
	commit(&im, (enum jf_type[]){ JF_PUT, JF_PUT }, e, 2);
	e[0] = a, e[1] = c;
	commit(&im, (enum jf_type[]){ JF_DEL, JF_PUT }, e, 2);
	out("journal", "img-serve", im.buf, im.len);
	im.buf[0] = 1 | 2;
	out("journal", "img-salvage", im.buf, im.len);
	im.buf[0] = 1 | 4;
	out("journal", "img-check", im.buf, im.len);
	im.buf[0] = 1 | 2 | 8 | 16;
	out("journal", "img-salvage-no-superblock", im.buf, im.len);

	/*
	 * The same with the superblock changed (bit 5): 128 bytes XORed
	 * into it. Here: version 3 ^ 1 = 2, a version 2 store's rules.
	 */
	{
		static struct img sbi;
		uint8_t x[128] = { 0 };

		x[8] = 3 ^ 2;
		start(&sbi, 1 | 32, 1);
		put(&sbi, x, sizeof(x));
		put(&sbi, im.buf + 2, im.len - 2);
		out("journal", "img-superblock-v2", sbi.buf, sbi.len);
		x[8] = 0;
		x[64] = 0x10;	/* meta_half 1 MiB ^ 0x10: not a block multiple */
		sbi.len = 2;
		put(&sbi, x, sizeof(x));
		put(&sbi, im.buf + 2, im.len - 2);
		out("journal", "img-superblock-layout", sbi.buf, sbi.len);
	}

	/* A record over two blocks, and one after it. */
	start(&im, 1, 0);
	e[0] = big, e[1] = b;
	commit(&im, (enum jf_type[]){ JF_PUT, JF_PUT }, e, 2);
	out("journal", "img-two-blocks", im.buf, im.len);

	/* Two entries claiming one block. */
	twice->ext[1].block = a->ext[0].block;
	start(&im, 1 | 2, 1);
	e[0] = a, e[1] = twice, e[2] = b;
	commit(&im, (enum jf_type[]){ JF_PUT, JF_PUT, JF_PUT }, e, 3);
	out("journal", "img-claimed-twice", im.buf, im.len);

	/* A record stream alone, for two files. */
	{
		static uint8_t blocks[8 * JF_BLOCK] __attribute__((aligned(4096)));
		struct jf_stream s;
		uint8_t stream[8 * JF_BLOCK];
		size_t len = 2, k;

		stream[0] = 0;
		stream[1] = 1;
		jf_stream_init(&s, blocks, 8);
		jf_rec_write(&s, JF_PUT, a);
		jf_rec_write(&s, JF_DEL, b);
		jf_rec_write(&s, JF_PUT, c);
		k = jf_stream_seal(&s, 1, 1, 0);
		for (size_t i = 0; i < k; i++) {
			struct jf_block_hdr h;

			memcpy(&h, blocks + i * JF_BLOCK, sizeof(h));
			memcpy(stream + len, blocks + i * JF_BLOCK + JF_HDR, h.used);
			len += h.used;
		}
		out("journal", "records", stream, len);
	}
	free(a);
	free(b);
	free(c);
	free(big);
	free(twice);
}

/* --- config -------------------------------------------------------------- */

/* An INI file: byte 0 (even) picks config_load(). */
static void text(const char *name, const char *s)
{
	char buf[1024];
	size_t n = strlen(s);

	buf[0] = 0;
	memcpy(buf + 1, s, n);
	out("config", name, buf, n + 1);
}

static void pairs(const char *name, const char *const *kv)
{
	uint8_t buf[1024];
	size_t n = 0;

	buf[n++] = 1;
	for (; *kv; kv++) {
		size_t k = strlen(*kv) + 1;

		memcpy(buf + n, *kv, k);
		n += k;
	}
	out("config", name, buf, n);
}

static void config(void)
{
	text("ini-all", "# every option\n[kvswapd]\nsocket = /run/kvswap/k.sock\n"
	     "store = /srv/a.kvs,\n        /srv/b.kvs\nstore-size = 4G\n"
	     "queue-depth = 128\nlog-level = notice\ndurability = durable\n"
	     "verify = on\n");
	text("ini-bad", "[kvswapd]\nqueue-depth = abc\n");
	text("ini-sections", "; comment\n[other]\nx = 1\n[kvswapd]\n"
	     "store-size = 512MiB ; trailing\nlog-level=debug\n");
	pairs("set-all", (const char *const[]){ "socket", "/tmp/s", "store",
		"/a.kvs, /b.kvs", "store-size", "16G", "queue-depth", "4096",
		"log-level", "err", "durability", "cache", "verify", "off", NULL });
	pairs("set-bad", (const char *const[]){ "store-size", "1Q",
		"queue-depth", "0", "nope", "1", NULL });
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	root = argv[1];
	wire();
	journal();
	config();
	return 0;
}
