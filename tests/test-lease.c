/* SPDX-License-Identifier: MIT */
/*
 * Leases that fit a prefix cache, and eviction that takes exactly what is
 * needed, against the real daemon:
 * - a Lookup leases only the hit prefix; the holder's SwapIn consumes it;
 *   Lookup.release ends it; a shorter renewal shortens it; closing the
 *   connection ends it (Stat counts each outcome, and eviction sees it);
 * - swap-outs pipelined into a full store evict exactly the entries their
 *   space needs, not one per retry;
 * - Stat counts lookup hits, misses and hit bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kvswap-protocol.h"
#include "tap.h"

#define ENTRY		(1 * MiB)
#define REGION		(64 * MiB)

struct ctx {
	struct harness *d;
	struct kvswap *k;
	struct kvswap_region *r;
	int fd;				/* a raw connection of our own */
	uint32_t raw_region;
	uint64_t cap;
	uint64_t id;
};

static void key_of(unsigned i, char *buf, size_t size)
{
	snprintf(buf, size, "lease-%u", i);
}

static struct kvswap_stat st(struct ctx *c)
{
	struct kvswap_stat s;

	if (kvswap_stat(c->k, &s) < 0)
		bail_out("stat: %s", kvswap_last_error(c->k));
	return s;
}

/* Stat on the raw connection: the new counters libkvswap does not show. */
static Kvswap__V1__StatReply *raw_stat(struct ctx *c, Kvswap__V1__Event **ev)
{
	struct raw_result rr;

	raw_send_stat(c->fd, ++c->id);
	if (raw_collect(c->fd, c->id, 10000, &rr) < 0 || rr.code || !rr.final)
		bail_out("raw stat failed");
	*ev = rr.final;
	rr.final = NULL;
	raw_result_clear(&rr);
	return (*ev)->stat;
}

static int put(struct ctx *c, unsigned i, uint64_t size)
{
	struct kvswap_seg_out seg = { 0, size };
	struct kvswap_req *q;
	char key[32];
	int r;

	key_of(i, key, sizeof(key));
	r = kvswap_swap_out(c->k, key, strlen(key), c->r, &seg, 1, NULL, 0,
			    KVSWAP_CACHE, &q);
	if (r == 0) {
		r = kvswap_wait(c->k, q, -1);
		kvswap_req_free(q);
	}
	return r;
}

static bool present(struct ctx *c, unsigned i)
{
	struct kvswap_entry e;
	char key[32];
	int r;

	key_of(i, key, sizeof(key));
	r = kvswap_describe(c->k, key, strlen(key), &e);
	if (r == 0)
		kvswap_entry_clear(&e);
	return r == 0;
}

/* Lookup (lease_ms, or release) on the raw connection fd. */
static Kvswap__V1__LookupReply *lookup(int fd, uint64_t id, const unsigned *keys,
				       size_t n, uint32_t lease_ms, bool release,
				       Kvswap__V1__Event **ret_ev)
{
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Lookup m = KVSWAP__V1__LOOKUP__INIT;
	ProtobufCBinaryData k[8];
	char names[8][32];
	struct raw_result rr;

	for (size_t i = 0; i < n; i++) {
		key_of(keys[i], names[i], sizeof(names[i]));
		k[i] = (ProtobufCBinaryData){ strlen(names[i]), (uint8_t *)names[i] };
	}
	m.n_keys = n;
	m.keys = k;
	m.has_lease_ms = lease_ms > 0;
	m.lease_ms = lease_ms;
	m.has_release = release;
	m.release = release;
	req.has_id = 1;
	req.id = id;
	req.body_case = KVSWAP__V1__REQUEST__BODY_LOOKUP;
	req.lookup = &m;
	if (raw_send(fd, &req, -1) < 0 || raw_collect(fd, id, 10000, &rr) < 0 ||
	    rr.code || !rr.final)
		bail_out("raw lookup failed");
	*ret_ev = rr.final;
	rr.final = NULL;
	raw_result_clear(&rr);
	return (*ret_ev)->lookup;
}

/* Puts one entry that needs exactly one ENTRY of eviction. */
static int squeeze(struct ctx *c, unsigned i)
{
	struct kvswap_stat s = st(c);
	uint64_t need = round_up(s.capacity - s.used + ENTRY / 2, 4096);

	return put(c, i, need);
}

static void ctx_open_args(struct ctx *c, uint64_t store,
			  const char *const *args)
{
	memset(c, 0, sizeof(*c));
	if (harness_start(&(struct harness_opts){ .store_size = store,
						  .extra_args = args },
			  &c->d) < 0 ||
	    harness_connect(c->d, &c->k) < 0)
		bail_out("cannot start kvswapd");
	c->cap = kvswap_limits(c->k)->capacity;
	if (kvswap_region_create(c->k, REGION, &c->r) < 0)
		bail_out("region: %s", kvswap_last_error(c->k));
	fill_seeded(kvswap_region_addr(c->r), REGION, harness_seed());
	if (raw_open(c->d->socket, &c->fd) < 0)
		bail_out("raw connection");
}

static void ctx_open(struct ctx *c, uint64_t store)
{
	/*
	 * Leases' mechanics, with the whole store leased: the per-tenant
	 * leased-bytes quota (half the store by default) is test-tenant's,
	 * and test_tenant_limits() below.
	 */
	static const char *const lease_all[] = { "--tenant-max-leased=100%",
						 NULL };

	ctx_open_args(c, store, lease_all);
}

static void ctx_close(struct ctx *c, const char *what)
{
	close(c->fd);
	kvswap_region_release(c->k, c->r);
	kvswap_close(c->k);
	is_int(harness_stop(c->d), 0, "%s: kvswapd exits 0 on SIGTERM", what);
	harness_free(c->d);
}

static void test_leases(void)
{
	Kvswap__V1__Event *ev, *sev;
	Kvswap__V1__LookupReply *lr;
	Kvswap__V1__StatReply *s0, *s1;
	struct ctx c;
	unsigned n, keys[3], next;
	int other;

	ctx_open(&c, 32 * MiB);
	n = (unsigned)(c.cap / ENTRY);
	for (unsigned i = 0; i < n; i++)
		if (put(&c, i, ENTRY) < 0)
			bail_out("fill: %s", kvswap_last_error(c.k));
	next = n;
	diag("%u entries of 1 MiB fill the store", n);

	/* Only the hit prefix is leased. */
	s0 = raw_stat(&c, &sev);
	keys[0] = 0;
	keys[1] = 99999;	/* missing */
	keys[2] = 2;
	lr = lookup(c.fd, ++c.id, keys, 3, 60000, false, &ev);
	is_int(lr->prefix, 1, "prefix 1: key 0, then a miss");
	ok(lr->has_leased && lr->leased == 1, "only the prefix is leased (%u)",
	   lr->leased);
	raw_event_free(ev);
	s1 = raw_stat(&c, &ev);
	is_uint(s1->leases_granted - s0->leases_granted, 1, "Stat: 1 lease granted");
	is_uint(s1->lookup_hits - s0->lookup_hits, 2, "Stat: 2 lookup hits");
	is_uint(s1->lookup_misses - s0->lookup_misses, 1, "Stat: 1 lookup miss");
	is_uint(s1->lookup_hit_bytes - s0->lookup_hit_bytes, 2 * ENTRY,
		"Stat: hit bytes are the entries' sizes");
	raw_event_free(sev);
	raw_event_free(ev);
	/* Key 0 (oldest) is leased, key 2 is not: key 1 then key 2 go. */
	is_int(squeeze(&c, next++), 0, "a put that needs one eviction");
	ok(present(&c, 0) && !present(&c, 1), "leased key 0 survived, key 1 went");

	/* Release: key 0 is the oldest again and goes next. */
	keys[0] = 0;
	s0 = raw_stat(&c, &sev);
	lr = lookup(c.fd, ++c.id, keys, 1, 0, true, &ev);
	raw_event_free(ev);
	s1 = raw_stat(&c, &ev);
	is_uint(s1->leases_released - s0->leases_released, 1, "Stat: 1 released");
	raw_event_free(sev);
	raw_event_free(ev);
	is_int(squeeze(&c, next++), 0, "a put that needs one eviction");
	ok(!present(&c, 0), "released key 0 was evicted");

	/* A shorter renewal shortens: 60 s, then 100 ms. */
	keys[0] = 2;
	lr = lookup(c.fd, ++c.id, keys, 1, 60000, false, &ev);
	raw_event_free(ev);
	lr = lookup(c.fd, ++c.id, keys, 1, 100, false, &ev);
	raw_event_free(ev);
	usleep(250 * 1000);
	is_int(squeeze(&c, next++), 0, "a put that needs one eviction");
	ok(!present(&c, 2), "key 2, renewed to 100 ms, was evicted after it");

	/* A lease ends with its connection. */
	if (raw_open(c.d->socket, &other) < 0)
		bail_out("second raw connection");
	keys[0] = 3;
	lr = lookup(other, 7, keys, 1, 60000, false, &ev);
	ok(lr->leased == 1, "another connection leases key 3");
	raw_event_free(ev);
	s0 = raw_stat(&c, &sev);
	close(other);
	usleep(100 * 1000);
	s1 = raw_stat(&c, &ev);
	is_uint(s1->leases_dropped - s0->leases_dropped, 1,
		"Stat: its lease dropped when it closed");
	raw_event_free(sev);
	raw_event_free(ev);
	is_int(squeeze(&c, next++), 0, "a put that needs one eviction");
	ok(!present(&c, 3), "key 3 was evicted once its leaseholder left");

	/* The holder's SwapIn consumes its lease. */
	keys[0] = 4;
	lr = lookup(c.fd, ++c.id, keys, 1, 60000, false, &ev);
	raw_event_free(ev);
	s0 = raw_stat(&c, &sev);
	{
		struct kvswap_seg_in seg = { 0, 0 };
		struct raw_result rr;
		char key[32];

		key_of(4, key, sizeof(key));
		if (c.raw_region == 0) {
			int memfd;
			void *addr;

			if (memfd_make(ENTRY, F_SEAL_SHRINK | F_SEAL_GROW, &memfd,
				       &addr) < 0)
				bail_out("memfd");
			raw_send_register(c.fd, ++c.id, ENTRY, memfd);
			if (raw_collect(c.fd, c.id, 10000, &rr) < 0 || rr.code)
				bail_out("register");
			c.raw_region = rr.final->region->region;
			raw_result_clear(&rr);
		}
		raw_send_swap_in(c.fd, ++c.id, key, strlen(key), c.raw_region,
				 &seg, 1);
		ok(raw_collect(c.fd, c.id, 10000, &rr) == 0 && !rr.code,
		   "the lease holder swaps key 4 in");
		raw_result_clear(&rr);
	}
	s1 = raw_stat(&c, &ev);
	is_uint(s1->leases_consumed - s0->leases_consumed, 1,
		"Stat: its lease was consumed");
	raw_event_free(sev);
	raw_event_free(ev);
	ctx_close(&c, "leases");
}

/*
 * 50 one-block swap-outs, pipelined, into a store full of 64 KiB entries:
 * the evictions are exactly those their space needs.
 */
static void test_evict_exact(void)
{
	const unsigned N = 50;
	struct kvswap_req *q[50];
	struct kvswap_stat s0, s1;
	uint64_t need, free0, expect;
	struct ctx c;
	unsigned n, ok_puts = 0;

	ctx_open(&c, 16 * MiB);
	n = (unsigned)(c.cap / (64 * KiB));
	for (unsigned i = 0; i < n; i++)
		if (put(&c, i, 64 * KiB) < 0)
			bail_out("fill: %s", kvswap_last_error(c.k));
	s0 = st(&c);
	free0 = s0.capacity - s0.used;
	need = N * 4096 > free0 ? N * 4096 - free0 : 0;
	expect = (need + 64 * KiB - 1) / (64 * KiB);
	for (unsigned i = 0; i < N; i++) {
		struct kvswap_seg_out seg = { 0, 4096 };
		char key[32];

		key_of(100000 + i, key, sizeof(key));
		if (kvswap_swap_out(c.k, key, strlen(key), c.r, &seg, 1, NULL, 0,
				    KVSWAP_CACHE, &q[i]) < 0)
			bail_out("swap_out: %s", kvswap_last_error(c.k));
	}
	for (unsigned i = 0; i < N; i++) {
		ok_puts += kvswap_wait(c.k, q[i], -1) == 0;
		kvswap_req_free(q[i]);
	}
	s1 = st(&c);
	is_int(ok_puts, N, "%u one-block swap-outs in flight at once succeed", N);
	is_uint(s1.evictions - s0.evictions, expect,
		"evictions: exactly the %" PRIu64 " entries of 64 KiB their %u "
		"blocks need (%" PRIu64 " bytes were free)", expect, N, free0);
	ctx_close(&c, "evict-exact");
}

/* A one-entry SwapOutBatch of len bytes at offset 0 of the raw region. */
static int raw_put_batch(struct ctx *c, const char *key, uint64_t len,
			 uint32_t flags, char *msg, size_t msglen)
{
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapOutBatch m = KVSWAP__V1__SWAP_OUT_BATCH__INIT;
	Kvswap__V1__BatchEntry be = KVSWAP__V1__BATCH_ENTRY__INIT;
	Kvswap__V1__BatchEntry *v[1] = { &be };
	uint64_t off = 0;
	int r;

	be.has_key = 1;
	be.key = (ProtobufCBinaryData){ strlen(key), (uint8_t *)key };
	be.n_offsets = 1;
	be.offsets = &off;
	be.n_lengths = 1;
	be.lengths = &len;
	m.has_region = m.has_flags = 1;
	m.region = c->raw_region;
	m.flags = flags;
	m.n_entries = 1;
	m.entries = v;
	req.has_id = 1;
	req.id = ++c->id;
	req.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT_BATCH;
	req.swap_out_batch = &m;
	if (raw_send(c->fd, &req, -1) < 0)
		bail_out("raw swap_out_batch failed");
	/* Entry errors (not final) until the BatchReply. */
	*msg = 0;
	r = 0;
	for (;;) {
		Kvswap__V1__Event *ev;

		if (raw_recv(c->fd, 20000, &ev) < 0)
			bail_out("no BatchReply");
		if (ev->id == c->id && ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR) {
			snprintf(msg, msglen, "%s", ev->error->message);
			r = -ev->error->code;
			if (!ev->error->has_entry) {
				raw_event_free(ev);
				return r;
			}
		} else if (ev->id == c->id &&
			   ev->body_case == KVSWAP__V1__EVENT__BODY_BATCH) {
			if (ev->batch->entries == 1)
				r = 0;
			raw_event_free(ev);
			return r;
		}
		raw_event_free(ev);
	}
}

/*
 * A store full of leased entries: a swap-out fails with ENOSPC, unless it
 * asks to wait for the leases (WAIT_LEASES), when it succeeds once they
 * have run out.
 */
static void test_wait_leases(void)
{
	Kvswap__V1__Event *ev;
	struct kvswap_stat s;
	struct ctx c;
	unsigned n, keys[8];
	uint64_t need, t0, t1;
	char msg[512];
	int memfd, r;
	void *addr;

	ctx_open(&c, 32 * MiB);
	n = (unsigned)(c.cap / ENTRY);
	for (unsigned i = 0; i < n; i++)
		if (put(&c, i, ENTRY) < 0)
			bail_out("fill: %s", kvswap_last_error(c.k));
	if (memfd_make(4 * MiB, F_SEAL_SHRINK | F_SEAL_GROW, &memfd, &addr) < 0)
		bail_out("memfd");
	{
		struct raw_result rr;

		raw_send_register(c.fd, ++c.id, 4 * MiB, memfd);
		if (raw_collect(c.fd, c.id, 10000, &rr) < 0 || rr.code)
			bail_out("register");
		c.raw_region = rr.final->region->region;
		raw_result_clear(&rr);
	}
	/* Lease every entry for 600 ms, 8 keys per Lookup. */
	t0 = mono_ms();
	for (unsigned i = 0; i < n; i += 8) {
		unsigned k = n - i < 8 ? n - i : 8;

		for (unsigned j = 0; j < k; j++)
			keys[j] = i + j;
		lookup(c.fd, ++c.id, keys, k, 600, false, &ev);
		raw_event_free(ev);
	}
	s = st(&c);
	need = round_up(s.capacity - s.used + ENTRY / 2, 4096);
	r = raw_put_batch(&c, "wait-no", need, KVS_FLAG_CACHE, msg, sizeof(msg));
	t1 = mono_ms();
	if (t1 - t0 < 500) {
		is_int(r, -ENOSPC, "every entry leased: a swap-out gets ENOSPC (%s)",
		       msg);
	} else {
		skip("leasing took %" PRIu64 " ms, too long to test ENOSPC",
		     t1 - t0);
	}
	r = raw_put_batch(&c, "wait-yes", need,
			  KVS_FLAG_CACHE | KVS_FLAG_WAIT_LEASES, msg, sizeof(msg));
	t1 = mono_ms();
	is_int(r, 0, "with WAIT_LEASES it waits and succeeds (%s)", msg);
	ok(t1 - t0 >= 550, "... once the leases ran out (%" PRIu64 " ms after "
	   "they were taken)", t1 - t0);
	close(memfd);
	munmap(addr, 4 * MiB);
	ctx_close(&c, "wait-leases");
}

/*
 * The same 50 one-block entries as one SwapOutBatch: the batch's whole
 * need is evicted at once, so its entries wait for one commit of delete
 * records, not one each.
 */
static void test_evict_batch(void)
{
	enum { N = 50 };
	struct kvswap_batch_entry be[N];
	char keys[N][32];
	uint64_t off = 0, need, free0, expect;
	struct kvswap_stat s0, s1;
	struct kvswap_req *q;
	struct ctx c;
	unsigned n;
	int r;

	ctx_open(&c, 16 * MiB);
	n = (unsigned)(c.cap / (64 * KiB));
	for (unsigned i = 0; i < n; i++)
		if (put(&c, i, 64 * KiB) < 0)
			bail_out("fill: %s", kvswap_last_error(c.k));
	s0 = st(&c);
	free0 = s0.capacity - s0.used;
	need = N * 4096 > free0 ? N * 4096 - free0 : 0;
	expect = (need + 64 * KiB - 1) / (64 * KiB);
	memset(be, 0, sizeof(be));
	for (unsigned i = 0; i < N; i++) {
		key_of(200000 + i, keys[i], sizeof(keys[i]));
		be[i].key = keys[i];
		be[i].key_len = strlen(keys[i]);
		be[i].nseg = 1;
		be[i].offsets = &off;
		be[i].length = 4096;
	}
	r = kvswap_swap_out_batch(c.k, c.r, be, N, KVSWAP_CACHE, &q);
	if (r == 0) {
		r = kvswap_wait(c.k, q, -1);
		kvswap_req_free(q);
	}
	is_int(r, 0, "a batch of %d one-block entries into a full store", N);
	s1 = st(&c);
	is_uint(s1.evictions - s0.evictions, expect,
		"batch: exactly the %" PRIu64 " entries its blocks need", expect);
	ok(s1.journal_commits - s0.journal_commits <= 3,
	   "batch: its entries waited for %" PRIu64 " commits, not one each",
	   s1.journal_commits - s0.journal_commits);
	ctx_close(&c, "evict-batch");
}

/*
 * The tenant's lease limits: a longer lease_ms is clamped to
 * tenant-max-lease-ms (LookupReply.lease_ms says so); a lease past
 * tenant-max-leased is not granted, and lease_refused says why.
 */
static void test_tenant_limits(void)
{
	static const char *const args[] = { "--tenant-max-lease-ms=1500",
					    "--tenant-max-leased=1M", NULL };
	Kvswap__V1__LookupReply *lr;
	Kvswap__V1__Event *ev;
	unsigned keys[2] = { 0, 1 };
	struct ctx c;

	ctx_open_args(&c, 32 * MiB, args);
	if (put(&c, 0, ENTRY) < 0 || put(&c, 1, ENTRY) < 0)
		bail_out("put: %s", kvswap_last_error(c.k));
	lr = lookup(c.fd, ++c.id, keys, 1, 60000, false, &ev);
	ok(lr->has_leased && lr->leased == 1, "limits: key 0 leased");
	ok(lr->has_lease_ms && lr->lease_ms == 1500, "limits: lease_ms 60000 "
	   "is clamped to tenant-max-lease-ms, 1500 (%u)", lr->lease_ms);
	ok(!lr->lease_refused, "limits: nothing refused");
	raw_event_free(ev);
	lr = lookup(c.fd, ++c.id, keys, 1, 700, false, &ev);
	ok(lr->has_lease_ms && lr->lease_ms == 700, "limits: a renewal of 700 "
	   "ms is granted as asked (%u)", lr->lease_ms);
	raw_event_free(ev);
	lr = lookup(c.fd, ++c.id, keys, 2, 1000, false, &ev);
	is_int(lr->prefix, 2, "limits: both keys present");
	is_int(lr->leased, 1, "limits: only key 0 leased: key 1's MiB would "
	       "pass the 1 MiB leased-bytes quota");
	if (!ok(lr->lease_refused && strstr(lr->lease_refused, "leased bytes") &&
		strstr(lr->lease_refused, "tenant-max-leased"),
		"limits: lease_refused names the quota"))
		diag("lease_refused: %s", lr->lease_refused ? lr->lease_refused : "(unset)");
	raw_event_free(ev);
	ctx_close(&c, "limits");
}

int main(void)
{
	harness_init("test-lease");
	test_evict_batch();
	test_wait_leases();
	test_evict_exact();
	test_leases();
	test_tenant_limits();
	done_testing();
}
