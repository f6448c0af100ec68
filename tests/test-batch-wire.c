/* SPDX-License-Identifier: MIT */
/*
 * Batched swaps on the wire (SwapOutBatch, SwapInBatch, GroupDone,
 * BatchReply, Cancel, Describe.keys, Delete.keys), driven through the raw
 * protocol client against the real daemon: the events and their order
 * exactly as docs/PROTOCOL.md states them, and the bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kvswap-protocol.h"
#include "tap.h"

#define REGION		(48 * MiB)
#define SEG		(16 * KiB)

struct batch_events {
	unsigned groups;		/* GroupDone events */
	uint32_t group_seen[64];	/* GroupDone count per group */
	unsigned seg_events;		/* SegmentDone events */
	unsigned entry_errors;		/* Error events with `entry` */
	uint32_t err_entry[16];
	int err_code[16];
	Kvswap__V1__Event *final;
};

static void events_clear(struct batch_events *b)
{
	raw_event_free(b->final);
	memset(b, 0, sizeof(*b));
}

/* Collects every event of request id until its final one. */
static int collect(int fd, uint64_t id, struct batch_events *b)
{
	memset(b, 0, sizeof(*b));
	for (;;) {
		Kvswap__V1__Event *ev;
		int r = raw_recv(fd, 10000, &ev);

		if (r < 0)
			return r;
		if (ev->id != id) {
			raw_event_free(ev);
			continue;
		}
		if (ev->body_case == KVSWAP__V1__EVENT__BODY_GROUP) {
			b->groups++;
			if (ev->group->group < 64)
				b->group_seen[ev->group->group]++;
		} else if (ev->body_case == KVSWAP__V1__EVENT__BODY_SEGMENT) {
			b->seg_events++;
		} else if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR &&
			   ev->error->has_entry) {
			if (b->entry_errors < 16) {
				b->err_entry[b->entry_errors] = ev->error->entry;
				b->err_code[b->entry_errors] = ev->error->code;
			}
			b->entry_errors++;
		} else {
			b->final = ev;
			return 0;
		}
		raw_event_free(ev);
	}
}

/* A batch entry with nseg segments at base + k * stride. */
struct bent {
	char key[32];
	uint64_t offsets[32];
	uint64_t lengths[32];
	uint32_t groups[32];
	Kvswap__V1__BatchEntry be;
};

static void bent_init(struct bent *e, const char *key, uint32_t nseg,
		      uint64_t base, uint64_t stride, uint64_t len, bool out)
{
	kvswap__v1__batch_entry__init(&e->be);
	snprintf(e->key, sizeof(e->key), "%s", key);
	for (uint32_t k = 0; k < nseg; k++) {
		e->offsets[k] = base + k * stride;
		e->lengths[k] = len;
	}
	e->be.has_key = 1;
	e->be.key = (ProtobufCBinaryData){ strlen(e->key), (uint8_t *)e->key };
	e->be.n_offsets = nseg;
	e->be.offsets = e->offsets;
	if (out) {
		e->be.n_lengths = 1;
		e->be.lengths = e->lengths;
	}
}

static int send_out_batch(int fd, uint64_t id, uint32_t region, struct bent *e,
			  size_t n, uint32_t flags, uint32_t events)
{
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapOutBatch m = KVSWAP__V1__SWAP_OUT_BATCH__INIT;
	Kvswap__V1__BatchEntry *v[16];

	for (size_t i = 0; i < n; i++)
		v[i] = &e[i].be;
	m.has_region = m.has_flags = m.has_events = 1;
	m.region = region;
	m.flags = flags;
	m.events = events;
	m.n_entries = n;
	m.entries = v;
	req.has_id = 1;
	req.id = id;
	req.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT_BATCH;
	req.swap_out_batch = &m;
	return raw_send(fd, &req, -1);
}

static bool in_request_order;	/* the next send_in_batch asks for it */

static int send_in_batch(int fd, uint64_t id, uint32_t region, struct bent *e,
			 size_t n, bool client_verify)
{
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapInBatch m = KVSWAP__V1__SWAP_IN_BATCH__INIT;
	Kvswap__V1__BatchEntry *v[16];

	for (size_t i = 0; i < n; i++)
		v[i] = &e[i].be;
	m.has_region = 1;
	m.region = region;
	m.n_entries = n;
	m.entries = v;
	m.has_client_verify = client_verify;
	m.client_verify = client_verify;
	m.has_request_order = in_request_order;
	m.request_order = in_request_order;
	req.has_id = 1;
	req.id = id;
	req.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_IN_BATCH;
	req.swap_in_batch = &m;
	return raw_send(fd, &req, -1);
}

static int keys_request(int fd, uint64_t id, bool del, const char **keys,
			size_t n)
{
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Describe d = KVSWAP__V1__DESCRIBE__INIT;
	Kvswap__V1__Delete x = KVSWAP__V1__DELETE__INIT;
	ProtobufCBinaryData k[8];

	for (size_t i = 0; i < n; i++)
		k[i] = (ProtobufCBinaryData){ strlen(keys[i]), (uint8_t *)keys[i] };
	req.has_id = 1;
	req.id = id;
	if (del) {
		x.n_keys = n;
		x.keys = k;
		req.body_case = KVSWAP__V1__REQUEST__BODY_DELETE;
		req.delete_ = &x;
	} else {
		d.n_keys = n;
		d.keys = k;
		req.body_case = KVSWAP__V1__REQUEST__BODY_DESCRIBE;
		req.describe = &d;
	}
	return raw_send(fd, &req, -1);
}

static uint32_t crc_ref(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffff;

	while (n--) {
		c ^= *p++;
		for (int b = 0; b < 8; b++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
	}
	return ~c;
}

static bool cancel_failed[4];

int main(void)
{
	struct harness *d = NULL;
	struct batch_events b;
	struct bent e[4];
	uint8_t *mem, *copy;
	int fd = -1, memfd, r;
	uint32_t region = 0;
	uint64_t id = 100;

	harness_init("test-batch-wire");
	r = harness_start(&(struct harness_opts){ .store_size = 256 * MiB }, &d);
	if (r < 0)
		bail_out("cannot start kvswapd (see above)");
	if (raw_open(d->socket, &fd) < 0)
		bail_out("cannot connect");
	if (memfd_make(REGION, F_SEAL_SHRINK | F_SEAL_GROW, &memfd,
		       (void **)&mem) < 0)
		bail_out("memfd");
	{
		struct raw_result rr;

		raw_send_register(fd, 2, REGION, memfd);
		if (raw_collect(fd, 2, 10000, &rr) < 0 || rr.code)
			bail_out("register_region failed");
		region = rr.final->region->region;
		raw_result_clear(&rr);
	}
	copy = malloc(REGION);
	fill_seeded(mem, REGION, 42);
	memcpy(copy, mem, REGION);

	/* Three entries of 4 layers each: groups 0..3 by default. */
	bent_init(&e[0], "blk-a", 4, 0, SEG, SEG, true);
	bent_init(&e[1], "blk-b", 4, 4 * SEG, SEG, SEG, true);
	bent_init(&e[2], "blk-c", 4, 8 * SEG, SEG, 1000, true);	/* tails */
	ok(send_out_batch(fd, ++id, region, e, 3, KVS_FLAG_CACHE, 0) == 0,
	   "swap_out_batch sent");
	r = collect(fd, id, &b);
	ok(r == 0 && b.final && b.final->body_case == KVSWAP__V1__EVENT__BODY_BATCH,
	   "swap_out_batch ends with a BatchReply");
	if (b.final && b.final->batch) {
		is_int(b.final->batch->entries, 3, "3 entries stored");
		is_int(b.final->batch->segments, 12, "12 segments landed");
		is_int((int)b.final->batch->bytes, 8 * SEG + 4 * 1000, "bytes");
	}
	ok(b.groups <= 3, "at most 3 GroupDone for 4 groups: the reply stands "
	   "for the last (%u)", b.groups);
	for (unsigned g = 0; g < 4; g++)
		ok(b.group_seen[g] <= 1, "group %u reported at most once", g);
	is_int(b.seg_events, 0, "no per-segment events unless asked for");
	events_clear(&b);

	/* Read them back elsewhere, entries in another order. */
	memset(mem, 0xee, REGION);
	bent_init(&e[0], "blk-c", 4, 1 * MiB, SEG, 0, false);
	bent_init(&e[1], "blk-a", 4, 2 * MiB, SEG, 0, false);
	bent_init(&e[2], "blk-missing", 4, 3 * MiB, SEG, 0, false);
	ok(send_in_batch(fd, ++id, region, e, 3, false) == 0, "swap_in_batch sent");
	r = collect(fd, id, &b);
	ok(r == 0 && b.final && b.final->body_case == KVSWAP__V1__EVENT__BODY_BATCH,
	   "swap_in_batch ends with a BatchReply");
	is_int(b.entry_errors, 1, "one entry error: the missing key");
	ok(b.entry_errors && b.err_entry[0] == 2 && b.err_code[0] == ENOENT,
	   "it names entry 2 with ENOENT");
	if (b.final && b.final->batch) {
		Kvswap__V1__BatchReply *br = b.final->batch;

		is_int(br->entries, 2, "2 entries read");
		ok(br->n_failed == 1 && br->failed[0] == 2, "failed lists entry 2");
		is_int((int)br->n_crcs, 12, "one CRC per requested segment");
		if (br->n_crcs == 12) {
			ok(br->crcs[0] == crc_ref(copy + 8 * SEG, 1000),
			   "the CRC of blk-c's first segment is its bytes' CRC32C");
			ok(br->crcs[4] == crc_ref(copy, SEG),
			   "the CRC of blk-a's first segment is its bytes' CRC32C");
		}
	}
	ok(!memcmp(mem + 1 * MiB, copy + 8 * SEG, 1000) &&
	   !memcmp(mem + 1 * MiB + 3 * SEG, copy + 11 * SEG, 1000),
	   "blk-c read back byte-exact");
	ok(mem[1 * MiB + 1000] == 0xee && mem[1 * MiB + SEG - 1] == 0xee,
	   "nothing written past a segment's length");
	ok(!memcmp(mem + 2 * MiB, copy, 4 * SEG), "blk-a read back byte-exact");
	ok(mem_first_not(mem + 3 * MiB, 4 * SEG, 0xee) == 4 * SEG,
	   "the missing entry's range untouched");
	events_clear(&b);

	/* The same, in request order (entry by entry). */
	memset(mem, 0xee, REGION);
	bent_init(&e[0], "blk-c", 4, 1 * MiB, SEG, 0, false);
	bent_init(&e[1], "blk-a", 4, 2 * MiB, SEG, 0, false);
	in_request_order = true;
	ok(send_in_batch(fd, ++id, region, e, 2, false) == 0,
	   "swap_in_batch with request_order sent");
	in_request_order = false;
	r = collect(fd, id, &b);
	ok(r == 0 && b.final && b.final->body_case == KVSWAP__V1__EVENT__BODY_BATCH &&
	   b.final->batch->entries == 2, "request_order: 2 entries read");
	ok(!memcmp(mem + 1 * MiB, copy + 8 * SEG, 1000) &&
	   !memcmp(mem + 2 * MiB, copy, 4 * SEG), "request_order: byte-exact");
	events_clear(&b);

	/* IF_ABSENT: stored keys are skipped, new ones written. */
	bent_init(&e[0], "blk-a", 2, 0, SEG, SEG, true);
	bent_init(&e[1], "blk-d", 2, 0, SEG, SEG, true);
	ok(send_out_batch(fd, ++id, region, e, 2,
			  KVS_FLAG_CACHE | KVS_FLAG_IF_ABSENT, 0) == 0,
	   "swap_out_batch IF_ABSENT sent");
	r = collect(fd, id, &b);
	if (r == 0 && b.final && b.final->batch) {
		Kvswap__V1__BatchReply *br = b.final->batch;

		ok(br->n_skipped == 1 && br->skipped[0] == 0, "blk-a skipped");
		is_int(br->entries, 1, "blk-d stored");
	} else {
		ok(false, "IF_ABSENT batch got no BatchReply");
	}
	events_clear(&b);

	/* Per-segment events on request, and explicit groups. */
	bent_init(&e[0], "blk-e", 4, 0, SEG, SEG, true);
	e[0].groups[0] = e[0].groups[1] = 0;
	e[0].groups[2] = e[0].groups[3] = 1;
	e[0].be.n_groups = 4;
	e[0].be.groups = e[0].groups;
	ok(send_out_batch(fd, ++id, region, e, 1, KVS_FLAG_DURABLE,
			  KVS_EVENTS_SEGMENTS) == 0, "durable batch with segment events");
	r = collect(fd, id, &b);
	is_int(b.seg_events, 4, "4 SegmentDone events");
	ok(b.groups <= 1 && !b.group_seen[2], "groups 0 and 1 only");
	ok(r == 0 && b.final && b.final->body_case == KVSWAP__V1__EVENT__BODY_BATCH &&
	   b.final->batch->entries == 1, "stored durably");
	events_clear(&b);

	/* Describe.keys and Delete.keys. */
	{
		const char *keys[] = { "blk-a", "nope", "blk-e" };
		Kvswap__V1__Event *ev = NULL;

		keys_request(fd, ++id, false, keys, 3);
		r = raw_recv(fd, 10000, &ev);
		ok(r == 0 && ev->body_case == KVSWAP__V1__EVENT__BODY_LIST &&
		   ev->list->n_entries == 2, "describe.keys lists the 2 present");
		if (r == 0 && ev->list->n_entries == 2)
			ok(ev->list->entries[1]->n_lengths == 4 &&
			   ev->list->entries[1]->lengths[0] == SEG,
			   "with their segment lengths");
		raw_event_free(ev);
		{
			const char *dup[] = { "blk-a", "blk-a" };
			struct raw_result rr;

			keys_request(fd, ++id, true, dup, 2);
			ok(raw_collect(fd, id, 10000, &rr) == 0 && rr.code == EINVAL &&
			   strstr(rr.message, "keys[1]: the same as keys[0]"),
			   "delete.keys naming a key twice: EINVAL (\"%s\")",
			   rr.message);
			raw_result_clear(&rr);
		}
		keys_request(fd, ++id, true, keys, 3);
		r = raw_recv(fd, 10000, &ev);
		ok(r == 0 && ev->body_case == KVSWAP__V1__EVENT__BODY_DELETE &&
		   ev->delete_->n_deleted == 3 && ev->delete_->deleted[0] &&
		   !ev->delete_->deleted[1] && ev->delete_->deleted[2],
		   "delete.keys says which were there");
		raw_event_free(ev);
	}

	/* Cancel: a big batch stopped early says which groups landed. */
	{
		struct bent big[4];
		Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
		Kvswap__V1__Cancel cm = KVSWAP__V1__CANCEL__INIT;
		uint64_t bid = ++id, cid = ++id;
		bool got_cancel = false;

		memset(cancel_failed, 0, sizeof(cancel_failed));

		for (int i = 0; i < 4; i++) {
			char key[16];

			snprintf(key, sizeof(key), "big-%d", i);
			bent_init(&big[i], key, 10, (uint64_t)i * 10 * MiB, MiB,
				  MiB, true);
		}
		send_out_batch(fd, bid, region, big, 4, KVS_FLAG_CACHE, 0);
		cm.has_request = 1;
		cm.request = bid;
		req.has_id = 1;
		req.id = cid;
		req.body_case = KVSWAP__V1__REQUEST__BODY_CANCEL;
		req.cancel = &cm;
		raw_send(fd, &req, -1);
		for (;;) {
			Kvswap__V1__Event *ev;

			if (raw_recv(fd, 10000, &ev) < 0)
				break;
			if (ev->id == cid && ev->body_case == KVSWAP__V1__EVENT__BODY_CANCEL)
				got_cancel = true;
			if (ev->id == bid && ev->body_case == KVSWAP__V1__EVENT__BODY_BATCH) {
				Kvswap__V1__BatchReply *br = ev->batch;

				ok(got_cancel, "CancelReply comes before the BatchReply");
				for (size_t f = 0; f < br->n_failed; f++)
					if (br->failed[f] < 4)
						cancel_failed[br->failed[f]] = true;
				if (br->cancelled) {
					ok(br->segments < 40 && br->n_failed > 0,
					   "cancelled: %u of 40 segments landed, %zu "
					   "entries not stored", br->segments,
					   br->n_failed);
					ok(br->n_groups_done <= 10, "%zu groups landed "
					   "whole", br->n_groups_done);
				} else {
					ok(br->segments == 40, "finished before the "
					   "cancel arrived: all 40 landed");
				}
				raw_event_free(ev);
				break;
			}
			raw_event_free(ev);
		}
	}
	/* Exactly the entries the reply did not list as failed are stored. */
	for (int i = 0; i < 4; i++) {
		char key[16];
		const char *keys[1] = { key };
		Kvswap__V1__Event *ev = NULL;
		bool visible = false;

		snprintf(key, sizeof(key), "big-%d", i);
		keys_request(fd, ++id, false, keys, 1);
		if (raw_recv(fd, 10000, &ev) == 0 &&
		    ev->body_case == KVSWAP__V1__EVENT__BODY_LIST)
			visible = ev->list->n_entries == 1;
		raw_event_free(ev);
		ok(visible == !cancel_failed[i], "cancelled batch: %s %s, as the "
		   "reply said", key, visible ? "stored" : "not stored");
	}
	ok(harness_alive(d), "daemon still running");
	close(fd);
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
	free(copy);
	done_testing();
}
