/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the message codec (daemon/wire.c): unpacking, the checks
 * that need no daemon state and name the field at fault, event packing,
 * and a mutation loop over valid requests (decode + check never crash and
 * never accept what they should refuse).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "defs.h"
#include "tap.h"
#include "wire.h"

static size_t pack_req(const Request *r, uint8_t *buf)
{
	return kvswap__v1__request__pack(r, buf);
}

/* Packs, unpacks and checks; returns the check's result and message. */
static int roundtrip_check(const Request *r, char *err, size_t len)
{
	static uint8_t buf[KVS_MAX_MESSAGE * 2];
	size_t n = pack_req(r, buf);
	Request *u = wire_unpack(buf, n);
	int ret;

	if (!u)
		return -999;
	err[0] = 0;
	ret = wire_check(u, err, len);
	wire_free(u);
	return ret;
}

static void swap_out_checks(void)
{
	Request r = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapOut so = KVSWAP__V1__SWAP_OUT__INIT;
	Kvswap__V1__SegmentOut s[2] = { KVSWAP__V1__SEGMENT_OUT__INIT,
					KVSWAP__V1__SEGMENT_OUT__INIT };
	Kvswap__V1__SegmentOut *sp[2] = { &s[0], &s[1] };
	static uint8_t longkey[KVS_MAX_KEY + 1];
	char err[256];

	r.has_id = 1;
	r.id = 7;
	r.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT;
	r.swap_out = &so;
	so.has_key = so.has_region = 1;
	so.key = (ProtobufCBinaryData){ 3, (uint8_t *)"abc" };
	so.region = 1;
	so.n_segments = 2;
	so.segments = sp;
	s[0].has_offset = s[0].has_length = s[1].has_offset = s[1].has_length = 1;
	s[0].offset = 0;
	s[0].length = 4097;
	s[1].offset = 8192;
	s[1].length = 1;
	is_int(roundtrip_check(&r, err, sizeof(err)), 0, "valid swap_out passes");

	s[1].offset = 100;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "misaligned offset");
	ok(strstr(err, "swap_out.segments[1].offset") != NULL,
	   "message names the field: %s", err);
	s[1].offset = 8192;

	s[0].length = 0;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "zero length");
	ok(strstr(err, "segments[0].length") != NULL, "names it: %s", err);
	s[0].length = 4097;

	s[0].offset = UINT64_MAX - 4095;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "offset + length overflow");
	s[0].offset = 0;

	so.key.len = 0;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "empty key");
	so.key = (ProtobufCBinaryData){ sizeof(longkey), longkey };
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "key too long");
	ok(strstr(err, "swap_out.key") != NULL, "names it: %s", err);
	so.key = (ProtobufCBinaryData){ 3, (uint8_t *)"abc" };

	so.has_flags = 1;
	so.flags = 8;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "unknown flags");
	ok(strstr(err, "swap_out.flags") != NULL, "names it: %s", err);
	so.flags = 3;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL,
	       "DURABLE and CACHE together");
	so.flags = 5;
	is_int(roundtrip_check(&r, err, sizeof(err)), 0, "DURABLE | PINNED");
	so.flags = 0;

	so.n_segments = 0;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "no segments");
	so.n_segments = 2;
	so.has_region = 0;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "missing region");
}

static void too_many_segments(void)
{
	Request r = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapIn si = KVSWAP__V1__SWAP_IN__INIT;
	static Kvswap__V1__SegmentIn s[KVS_MAX_SEGMENTS + 1];
	static Kvswap__V1__SegmentIn *sp[KVS_MAX_SEGMENTS + 1];
	char err[256];

	r.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_IN;
	r.swap_in = &si;
	si.has_key = si.has_region = 1;
	si.key = (ProtobufCBinaryData){ 1, (uint8_t *)"k" };
	for (unsigned i = 0; i <= KVS_MAX_SEGMENTS; i++) {
		kvswap__v1__segment_in__init(&s[i]);
		s[i].has_index = s[i].has_offset = 1;
		s[i].index = i;
		s[i].offset = (uint64_t)i * 4096;
		sp[i] = &s[i];
	}
	si.segments = sp;
	si.n_segments = KVS_MAX_SEGMENTS;
	is_int(roundtrip_check(&r, err, sizeof(err)), 0, "1024 distinct indexes pass");
	s[0].index = KVS_MAX_SEGMENTS;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL,
	       "index %d is past any entry", KVS_MAX_SEGMENTS);
	s[0].index = 0;
	si.n_segments = KVS_MAX_SEGMENTS + 1;
	is_int(roundtrip_check(&r, err, sizeof(err)), -E2BIG, "too many segments");
	si.n_segments = 3;
	s[2].index = 0;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "duplicate index");
	ok(strstr(err, "swap_in.segments[2].index") && strstr(err, "segments[0]"),
	   "names both: %s", err);
}

static void other_checks(void)
{
	Request r = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__List l = KVSWAP__V1__LIST__INIT;
	Kvswap__V1__Hello h = KVSWAP__V1__HELLO__INIT;
	char err[256];
	uint8_t buf[64];
	size_t n;
	Request *u;

	is_int(roundtrip_check(&r, err, sizeof(err)), -EOPNOTSUPP, "no body");
	r.body_case = KVSWAP__V1__REQUEST__BODY_LIST;
	r.list = &l;
	l.has_limit = 1;
	l.limit = 0;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "list.limit 0");
	l.limit = KVS_MAX_LIST + 1;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "list.limit too big");
	l.limit = 10;
	is_int(roundtrip_check(&r, err, sizeof(err)), 0, "list.limit 10");
	r.body_case = KVSWAP__V1__REQUEST__BODY_HELLO;
	r.hello = &h;
	is_int(roundtrip_check(&r, err, sizeof(err)), -EINVAL, "hello without version");

	/* A field number this version does not know: body stays unset. */
	/* Field 99, varint: the tag is the varint 792, two bytes. */
	buf[0] = 0x98;
	buf[1] = 0x06;
	buf[2] = 1;
	u = wire_unpack(buf, 3);
	ok(u != NULL, "unknown field unpacks");
	if (u)
		is_int(wire_check(u, err, sizeof(err)), -EOPNOTSUPP, "unknown body refused");
	wire_free(u);

	n = 0;
	memcpy(buf, "\xff\xff\xff\xff\xff\xff", 6);
	ok(wire_unpack(buf, 6) == NULL, "garbage does not unpack");
	(void)n;
}

static void packing(void)
{
	Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__SegmentDone sd = KVSWAP__V1__SEGMENT_DONE__INIT;
	Kvswap__V1__Event *back;
	uint8_t buf[32];
	int n;

	ev.has_id = 1;
	ev.id = UINT64_MAX;
	ev.body_case = KVSWAP__V1__EVENT__BODY_SEGMENT;
	ev.segment = &sd;
	sd.has_index = 1;
	sd.index = UINT32_MAX;
	n = wire_pack(&ev, buf, sizeof(buf));
	ok(n > 0 && n <= 19, "largest segment event is %d bytes (<= 19)", n);
	back = kvswap__v1__event__unpack(NULL, (size_t)n, buf);
	ok(back && back->id == UINT64_MAX && back->segment &&
	   back->segment->index == UINT32_MAX, "segment event round trips");
	kvswap__v1__event__free_unpacked(back, NULL);
	is_int(wire_pack(&ev, buf, 4), -EMSGSIZE, "pack into too small a buffer");
}

/* Random byte flips of a valid request: never a crash, never a leak. */
static void mutations(void)
{
	Request r = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapOut so = KVSWAP__V1__SWAP_OUT__INIT;
	Kvswap__V1__SegmentOut s = KVSWAP__V1__SEGMENT_OUT__INIT;
	Kvswap__V1__SegmentOut *sp = &s;
	uint8_t good[128], buf[128];
	uint64_t seed = 12345;
	size_t n;
	int accepted = 0, rejected = 0, unparsed = 0;
	char err[256];

	r.has_id = 1;
	r.id = 1;
	r.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT;
	r.swap_out = &so;
	so.has_key = so.has_region = 1;
	so.key = (ProtobufCBinaryData){ 4, (uint8_t *)"kkkk" };
	so.n_segments = 1;
	so.segments = &sp;
	s.has_offset = s.has_length = 1;
	s.offset = 4096;
	s.length = 100;
	n = pack_req(&r, good);
	for (int i = 0; i < 100000; i++) {
		Request *u;

		memcpy(buf, good, n);
		for (int k = 0; k < 3; k++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			buf[seed % n] ^= (uint8_t)(seed >> 40);
		}
		u = wire_unpack(buf, n - (seed >> 60) % 3);
		if (!u) {
			unparsed++;
			continue;
		}
		if (wire_check(u, err, sizeof(err)) == 0) {
			accepted++;
			/* Whatever passed must really be well-formed. */
			if (u->body_case == KVSWAP__V1__REQUEST__BODY_SWAP_OUT) {
				const Kvswap__V1__SwapOut *m = u->swap_out;

				for (size_t j = 0; j < m->n_segments; j++)
					if (m->segments[j]->offset % KVS_ALIGN ||
					    !m->segments[j]->length ||
					    m->key.len == 0 || m->key.len > KVS_MAX_KEY)
						bail_out("accepted a bad swap_out");
			}
		} else {
			rejected++;
		}
		wire_free(u);
	}
	ok(unparsed > 0 && rejected > 0 && accepted > 0,
	   "100000 mutations: %d unparsed, %d rejected, %d accepted, no crash",
	   unparsed, rejected, accepted);
}

int main(void)
{
	swap_out_checks();
	too_many_segments();
	other_checks();
	packing();
	mutations();
	done_testing();
}
