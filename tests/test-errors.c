/* SPDX-License-Identifier: MIT */
/*
 * Every error the protocol defines, on the raw protocol so that the exact
 * code, the request id, the message and the absence of segment events can
 * be checked: registration, swap-out and swap-in validation, unknown keys,
 * limits, and the connection-level errors (no Hello, wrong version,
 * oversize and malformed packets). After each error that closes a
 * connection the daemon must still be alive and serve a new client; a
 * failed request must change nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "harness.h"
#include "tap.h"

#define CANARY		0xa5
#define REGION		(4 * MiB)
#define TIMEOUT_MS	10000

static struct harness *d;
static int fd = -1;		/* the main raw connection, after Hello */
static uint32_t region;		/* a 4 MiB region registered on fd */
static uint8_t *mem;		/* its mapping */
static int memfd = -1;
static uint64_t next_id = 100;

/*
 * Collects the events of request `id` (sent with result send_ret) and
 * checks that it failed with `code`, that the message contains `needle`
 * (if not NULL), and that no per-segment event came before it.
 */
static void check_error(int c, uint64_t id, int send_ret, int code,
			const char *needle, const char *what)
{
	const char *name = kvswap_errno_name(code);
	struct raw_result res;
	int r = send_ret;

	if (r == 0)
		r = raw_collect(c, id, TIMEOUT_MS, &res);
	if (!is_int(r, 0, "%s: final event arrives", what))
		return;
	if (!is_int(res.code, code, "%s: %s", what, name ? name : "?")) {
		char desc[512];

		diag("final event: %s",
		     raw_event_str(res.final, desc, sizeof(desc)));
	}
	if (needle)
		ok(strcasestr(res.message, needle) != NULL,
		   "%s: message names '%s': \"%s\"", what, needle, res.message);
	else
		ok(*res.message, "%s: message \"%s\"", what, res.message);
	is_int(res.nseg + res.foreign, 0,
	       "%s: no segment events, nothing for other ids", what);
	raw_result_clear(&res);
}

/* Sends a request and checks that it succeeds; returns its final event. */
static Kvswap__V1__Event *expect_ok(int c, uint64_t id, int send_ret,
				    const char *what)
{
	struct raw_result res;
	Kvswap__V1__Event *ev;
	int r = send_ret;

	if (r == 0)
		r = raw_collect(c, id, TIMEOUT_MS, &res);
	if (!is_int(r, 0, "%s: final event arrives", what))
		return NULL;
	if (!is_int(res.code, 0, "%s: succeeds", what))
		diag("message: %s", res.message);
	ev = res.final;
	res.final = NULL;
	raw_result_clear(&res);
	return ev;
}

/* The daemon process runs and a brand-new client gets a Stat answer. */
static void check_daemon_serves(const char *what)
{
	struct kvswap_stat st;

	ok(harness_alive(d), "%s: daemon still running", what);
	is_int(harness_stat(d, &st), 0, "%s: a new client gets Stat", what);
}

/* Whether a Stat on connection c still works. */
static bool conn_works(int c)
{
	uint64_t id = next_id++;
	struct raw_result res;
	bool good;

	if (raw_send_stat(c, id) < 0 || raw_collect(c, id, TIMEOUT_MS, &res))
		return false;
	good = res.final->body_case == KVSWAP__V1__EVENT__BODY_STAT;
	raw_result_clear(&res);
	return good;
}

static int register_memfd(int c, uint64_t id, size_t size, unsigned seals,
			  uint64_t claimed)
{
	int mfd, r;

	r = memfd_make(size, seals, &mfd, NULL);
	if (r < 0)
		bail_out("memfd: %s", strerror(-r));
	r = raw_send_register(c, id, claimed, mfd);
	close(mfd);
	return r;
}

static void test_register(void)
{
	const unsigned both = F_SEAL_SHRINK | F_SEAL_GROW;
	uint32_t ids[64];
	unsigned n = 0;
	uint64_t id;
	int pfd[2];

	id = next_id++;
	check_error(fd, id, raw_send_register(fd, id, 4096, -1), EBADF, NULL,
		    "register without fd");
	id = next_id++;
	check_error(fd, id, register_memfd(fd, id, 4096, 0, 4096), EPERM,
		    "seal", "register unsealed memfd");
	id = next_id++;
	check_error(fd, id, register_memfd(fd, id, 4096, F_SEAL_GROW, 4096),
		    EPERM, "shrink", "register without F_SEAL_SHRINK");
	id = next_id++;
	check_error(fd, id, register_memfd(fd, id, 4096, F_SEAL_SHRINK, 4096),
		    EPERM, "grow", "register without F_SEAL_GROW");
	id = next_id++;
	check_error(fd, id, register_memfd(fd, id, 8192, both, 4096), EINVAL,
		    "size", "register with size 4096 for an 8192-byte memfd");
	id = next_id++;
	check_error(fd, id, register_memfd(fd, id, 4096, both, 8192), EINVAL,
		    "size", "register with size 8192 for a 4096-byte memfd");
	id = next_id++;
	check_error(fd, id, register_memfd(fd, id, 0, both, 0), EINVAL,
		    "size", "register with size 0");

	/* Not specified to the errno: refused, with a message naming it. */
	{
		struct raw_result res;
		int r;

		id = next_id++;
		r = register_memfd(fd, id, 4096, both | F_SEAL_WRITE, 4096);
		if (r == 0)
			r = raw_collect(fd, id, TIMEOUT_MS, &res);
		if (is_int(r, 0, "register with F_SEAL_WRITE: final event")) {
			ok(res.code == EPERM || res.code == EINVAL,
			   "register with F_SEAL_WRITE: refused (%d): \"%s\"",
			   res.code, res.message);
			ok(strcasestr(res.message, "write") != NULL,
			   "register with F_SEAL_WRITE: message names the write seal");
			raw_result_clear(&res);
		}
		if (pipe2(pfd, O_CLOEXEC) < 0)
			bail_out("pipe: %s", strerror(errno));
		id = next_id++;
		r = raw_send_register(fd, id, 4096, pfd[0]);
		close(pfd[0]);
		close(pfd[1]);
		if (r == 0)
			r = raw_collect(fd, id, TIMEOUT_MS, &res);
		if (is_int(r, 0, "register a pipe: final event")) {
			ok(res.code != 0, "register a pipe: refused (%d): \"%s\"",
			   res.code, res.message);
			raw_result_clear(&res);
		}
	}

	/* 64 regions per connection: the main one plus 63, then EMFILE. */
	for (unsigned i = 0; i < 63; i++) {
		struct raw_result res;

		id = next_id++;
		if (register_memfd(fd, id, 4096, both, 4096) ||
		    raw_collect(fd, id, TIMEOUT_MS, &res))
			break;
		if (res.final->body_case == KVSWAP__V1__EVENT__BODY_REGION)
			ids[n++] = res.final->region->region;
		raw_result_clear(&res);
	}
	is_int(n, 63, "63 more regions register (64 in all)");
	id = next_id++;
	check_error(fd, id, register_memfd(fd, id, 4096, both, 4096), EMFILE,
		    "region", "a 65th region");
	{
		unsigned bad = 0;

		for (unsigned i = 0; i < n; i++) {
			Kvswap__V1__Event *ev;

			id = next_id++;
			ev = expect_ok(fd, id, raw_send_unregister(fd, id, ids[i]),
				       "unregister");
			if (!ev || ev->body_case !=
				   KVSWAP__V1__EVENT__BODY_UNREGISTERED)
				bad++;
			raw_event_free(ev);
		}
		is_int(bad, 0, "unregister the 63 regions");
	}
	id = next_id++;
	raw_event_free(expect_ok(fd, id, register_memfd(fd, id, 4096, both,
							4096),
				 "register again after unregistering"));
	id = next_id++;
	check_error(fd, id, raw_send_unregister(fd, id, 999999), ENOENT,
		    "region", "unregister an unknown region");
}

static const struct kvswap_seg_out stored[3] = {
	{ .offset = 0, .length = 5000 },
	{ .offset = 8192, .length = 4096 },
	{ .offset = 16384, .length = 1 },
};

/* Checks that "exists" still has its 3 segments. */
static void check_exists(const char *what)
{
	struct raw_result res;
	uint64_t id = next_id++;
	int r;

	r = raw_send_describe(fd, id, "exists", 6);
	if (r == 0)
		r = raw_collect(fd, id, TIMEOUT_MS, &res);
	if (!is_int(r, 0, "%s: describe", what))
		return;
	ok(res.final->body_case == KVSWAP__V1__EVENT__BODY_DESCRIBE &&
	   res.final->describe->segments == 3 &&
	   res.final->describe->size == 5000 + 4096 + 1,
	   "%s: the stored entry is unchanged", what);
	raw_result_clear(&res);
}

/* Checks that key is not stored. */
static void check_absent(const void *key, size_t len, const char *what)
{
	struct raw_result res;
	uint64_t id = next_id++;
	int r;

	r = raw_send_describe(fd, id, key, len);
	if (r == 0)
		r = raw_collect(fd, id, TIMEOUT_MS, &res);
	if (!is_int(r, 0, "%s: describe", what))
		return;
	is_int(res.code, ENOENT, "%s: no entry was created", what);
	raw_result_clear(&res);
}

static void test_swap_out(void)
{
	struct kvswap_seg_out segs[1025];
	char *key = malloc(1025), *meta = malloc(4097);
	uint64_t id;

	if (!key || !meta)
		bail_out("out of memory");
	memset(key, 'k', 1025);
	memset(meta, 'm', 4097);

	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "x", 1, 999999, stored, 3,
					      NULL, 0, 0),
		    ENOENT, "region", "swap-out to an unknown region");

	segs[0] = (struct kvswap_seg_out){ REGION - 4096, 8192 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "x", 1, region, segs, 1,
					      NULL, 0, 0),
		    EINVAL, "segments[0]", "swap-out range beyond the region");
	segs[0] = (struct kvswap_seg_out){ 4096, UINT64_MAX - 100 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "x", 1, region, segs, 1,
					      NULL, 0, 0),
		    EINVAL, "segments[0]", "swap-out range that overflows");
	segs[0] = (struct kvswap_seg_out){ 0, 10 };
	segs[1] = (struct kvswap_seg_out){ 100, 10 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "exists", 6, region,
					      segs, 2, NULL, 0, 0),
		    EINVAL, "segments[1].offset", "swap-out misaligned offset");
	check_exists("after a failed replace");
	segs[1] = (struct kvswap_seg_out){ 8192, 10 };
	segs[2] = (struct kvswap_seg_out){ 16384, 0 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "x", 1, region, segs, 3,
					      NULL, 0, 0),
		    EINVAL, "segments[2].length", "swap-out zero-length segment");
	check_absent("x", 1, "after failed swap-outs of x");

	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "", 0, region, stored, 3,
					      NULL, 0, 0),
		    EINVAL, "key", "swap-out with an empty key");
	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, key, 1025, region, stored,
					      3, NULL, 0, 0),
		    EINVAL, "key", "swap-out with a 1025-byte key");
	check_absent(key, 1024, "1025-byte key");
	id = next_id++;
	raw_event_free(expect_ok(fd, id,
				 raw_send_swap_out(fd, id, key, 1024, region,
						   stored, 3, NULL, 0, 0),
				 "swap-out with a 1024-byte key"));
	id = next_id++;
	raw_event_free(expect_ok(fd, id, raw_send_delete(fd, id, key, 1024),
				 "delete the 1024-byte key"));

	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "x", 1, region, stored, 3,
					      NULL, 0, 8),
		    EINVAL, "flags", "swap-out with unknown flags 8");
	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "x", 1, region, stored, 3,
					      NULL, 0, 3),
		    EINVAL, "flags", "swap-out with flags DURABLE|CACHE");
	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "x", 1, region, stored, 3,
					      meta, 4097, 0),
		    EINVAL, "metadata", "swap-out with 4097 bytes of metadata");

	/* 1024 segments is the limit: it works, 1025 does not. */
	for (unsigned i = 0; i < 1025; i++)
		segs[i] = (struct kvswap_seg_out){ (i % 1024) * 4096ULL, 1 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_out(fd, id, "x", 1, region, segs,
					      1025, NULL, 0, 0),
		    E2BIG, "segments", "swap-out with 1025 segments");
	check_absent("x", 1, "after 1025 segments");
	{
		struct raw_result res;
		int r;

		id = next_id++;
		r = raw_send_swap_out(fd, id, "many", 4, region, segs, 1024,
				      NULL, 0, 0);
		if (r == 0)
			r = raw_collect(fd, id, TIMEOUT_MS, &res);
		if (is_int(r, 0, "swap-out with 1024 segments: final event")) {
			is_int(res.code, 0, "swap-out with 1024 segments: succeeds");
			is_int(res.nseg, 1024,
			       "swap-out with 1024 segments: 1024 segment events");
			raw_result_clear(&res);
		}
		id = next_id++;
		raw_event_free(expect_ok(fd, id, raw_send_delete(fd, id, "many", 4),
					 "delete the 1024-segment entry"));
	}
	free(meta);
	free(key);
}

static void test_swap_in(void)
{
	struct kvswap_seg_in in[2];
	uint64_t id;

	/* Nothing a failed swap-in does may touch the region. */
	memset(mem, CANARY, REGION);

	id = next_id++;
	in[0] = (struct kvswap_seg_in){ 0, 0 };
	check_error(fd, id, raw_send_swap_in(fd, id, "nope", 4, region, in, 1),
		    ENOENT, NULL, "swap-in of an unknown key");
	id = next_id++;
	check_error(fd, id, raw_send_swap_in(fd, id, "exists", 6, 999999, in, 1),
		    ENOENT, "region", "swap-in to an unknown region");
	in[1] = (struct kvswap_seg_in){ 0, 8192 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_in(fd, id, "exists", 6, region, in, 2),
		    EINVAL, "segments[1].index", "swap-in duplicate index");
	in[0] = (struct kvswap_seg_in){ 3, 0 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_in(fd, id, "exists", 6, region, in, 1),
		    EINVAL, "segments[0].index", "swap-in stored index 3 of 3");
	in[0] = (struct kvswap_seg_in){ 0, 100 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_in(fd, id, "exists", 6, region, in, 1),
		    EINVAL, "segments[0].offset", "swap-in misaligned offset");
	/* Stored segment 0 is 5000 bytes: it does not fit in the last page. */
	in[0] = (struct kvswap_seg_in){ 0, REGION - 4096 };
	id = next_id++;
	check_error(fd, id, raw_send_swap_in(fd, id, "exists", 6, region, in, 1),
		    EINVAL, "segments[0]", "swap-in range beyond the region");
	ok(mem_first_not(mem, REGION, CANARY) == REGION,
	   "failed swap-ins wrote nothing to the region");
}

static void test_keys(void)
{
	char key[1025];
	uint64_t id;

	memset(key, 'k', sizeof(key));
	id = next_id++;
	check_error(fd, id, raw_send_describe(fd, id, "nope", 4), ENOENT, NULL,
		    "describe an unknown key");
	id = next_id++;
	check_error(fd, id, raw_send_delete(fd, id, "nope", 4), ENOENT, NULL,
		    "delete an unknown key");
	id = next_id++;
	check_error(fd, id, raw_send_describe(fd, id, key, 1025), EINVAL, "key",
		    "describe a 1025-byte key");

	/* Over max_lookup_keys: refused, the errno is not pinned down. */
	{
		Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
		Kvswap__V1__Lookup lk = KVSWAP__V1__LOOKUP__INIT;
		ProtobufCBinaryData keys[1025];
		struct raw_result res;
		int r;

		for (int i = 0; i < 1025; i++) {
			keys[i].data = (uint8_t *)key;
			keys[i].len = 4;
		}
		lk.n_keys = 1025;
		lk.keys = keys;
		id = next_id++;
		req.has_id = 1;
		req.id = id;
		req.body_case = KVSWAP__V1__REQUEST__BODY_LOOKUP;
		req.lookup = &lk;
		r = raw_send(fd, &req, -1);
		if (r == 0)
			r = raw_collect(fd, id, TIMEOUT_MS, &res);
		if (is_int(r, 0, "lookup of 1025 keys: final event")) {
			ok(res.code == E2BIG || res.code == EINVAL,
			   "lookup of 1025 keys: E2BIG or EINVAL (%d): \"%s\"",
			   res.code, res.message);
			raw_result_clear(&res);
		}
	}
}

/* A Request whose body is a field this version does not know. */
static void test_unknown_body(void)
{
	/* id = 77 (field 1), then field 99 as a varint 1. */
	static const uint8_t pkt[] = { 0x08, 77, 0x98, 0x06, 0x01 };

	check_error(fd, 77, raw_send_bytes(fd, pkt, sizeof(pkt), -1),
		    EOPNOTSUPP, NULL, "request with an unknown body");
	ok(conn_works(fd), "unknown body: the connection stays usable");
}

static void test_no_hello(void)
{
	int c, r;

	r = raw_connect(d->socket, &c);
	if (!is_int(r, 0, "no hello: connect"))
		return;
	check_error(c, 7, raw_send_stat(c, 7), EPROTO, NULL,
		    "stat before hello");
	is_int(raw_hello(c, 1), 0, "no hello: hello still works afterwards");
	ok(conn_works(c), "no hello: then stat works");
	close(c);
}

static void test_bad_version(void)
{
	unsigned events = 0;
	int c, r;

	r = raw_connect(d->socket, &c);
	if (!is_int(r, 0, "version 2: connect"))
		return;
	is_int(raw_hello(c, 2), EPROTONOSUPPORT, "hello version 2: EPROTONOSUPPORT");
	ok(raw_wait_closed(c, TIMEOUT_MS, &events) && events == 0,
	   "hello version 2: then the daemon closes the connection");
	close(c);
	check_daemon_serves("after hello version 2");
}

/*
 * Sends one packet on a fresh connection after Hello and checks that the
 * daemon answers with Error{code} for id 0 and closes the connection.
 */
static void check_fatal(const void *buf, size_t len, int code, const char *what)
{
	Kvswap__V1__Event *ev = NULL;
	unsigned events = 0;
	char desc[512];
	int c, r;

	if (raw_open(d->socket, &c) < 0) {
		ok(0, "%s: connect", what);
		return;
	}
	r = raw_send_bytes(c, buf, len, -1);
	if (!is_int(r, 0, "%s: %zu bytes sent", what, len))
		goto out_close;
	r = raw_recv(c, TIMEOUT_MS, &ev);
	if (!is_int(r, 0, "%s: an event comes back", what))
		goto out_close;
	ok(ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR &&
	   ev->error->code == code && ev->id == 0 && !ev->error->has_segment,
	   "%s: Error{%s} with id 0: %s", what, kvswap_errno_name(code),
	   raw_event_str(ev, desc, sizeof(desc)));
	raw_event_free(ev);
	ok(raw_wait_closed(c, TIMEOUT_MS, &events) && events == 0,
	   "%s: then the daemon closes the connection", what);
out_close:
	close(c);
	check_daemon_serves(what);
}

/* Builds a Lookup request that packs to exactly `size` bytes. */
static uint8_t *lookup_of_size(size_t size, uint64_t id)
{
	static uint8_t keybuf[1024];
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Lookup lk = KVSWAP__V1__LOOKUP__INIT;
	ProtobufCBinaryData keys[128];
	uint8_t *buf;
	size_t n;

	memset(keybuf, 'L', sizeof(keybuf));
	req.has_id = 1;
	req.id = id;
	req.body_case = KVSWAP__V1__REQUEST__BODY_LOOKUP;
	req.lookup = &lk;
	lk.keys = keys;
	/* 1000-byte keys up to the size, then the last one cut to fit. */
	lk.n_keys = 0;
	do {
		keys[lk.n_keys].data = keybuf;
		keys[lk.n_keys].len = 1000;
		lk.n_keys++;
		n = kvswap__v1__request__get_packed_size(&req);
	} while (n < size && lk.n_keys < 128);
	while (n > size && keys[lk.n_keys - 1].len > 0) {
		keys[lk.n_keys - 1].len--;
		n = kvswap__v1__request__get_packed_size(&req);
	}
	if (n != size)
		return NULL;
	buf = malloc(size);
	if (buf)
		kvswap__v1__request__pack(&req, buf);
	return buf;
}

static void test_connection_errors(void)
{
	static uint8_t big[70000];
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f };
	Kvswap__V1__Request *probe;
	uint8_t *exact, *over;
	int c;

	memset(big, 0x0a, sizeof(big));
	check_fatal(big, sizeof(big), EMSGSIZE, "a 70000-byte packet");

	probe = kvswap__v1__request__unpack(NULL, sizeof(garbage), garbage);
	ok(probe == NULL, "the garbage bytes do not unpack (self-check)");
	if (probe)
		kvswap__v1__request__free_unpacked(probe, NULL);
	check_fatal(garbage, sizeof(garbage), EBADMSG, "garbage bytes");

	/* The limit itself: 65536 bytes is a valid message, 65537 is not. */
	exact = lookup_of_size(65536, 555);
	over = lookup_of_size(65537, 556);
	if (!exact || !over)
		bail_out("cannot build lookups of 65536 and 65537 bytes");
	if (raw_open(d->socket, &c) == 0) {
		struct raw_result res;
		int r = raw_send_bytes(c, exact, 65536, -1);

		if (r == 0)
			r = raw_collect(c, 555, TIMEOUT_MS, &res);
		if (is_int(r, 0, "a 65536-byte request: answered")) {
			ok(res.final->body_case == KVSWAP__V1__EVENT__BODY_LOOKUP,
			   "a 65536-byte request: a lookup reply (code %d: %s)",
			   res.code, res.message);
			raw_result_clear(&res);
		}
		close(c);
	} else {
		ok(0, "a 65536-byte request: connect");
	}
	check_fatal(over, 65537, EMSGSIZE, "a 65537-byte packet");
	free(exact);
	free(over);
}

/* The library passes the daemon's code and message through. */
static void test_library(void)
{
	static const struct kvswap_seg_out bad = { .offset = 100, .length = 1 };
	struct kvswap_region *r = NULL;
	struct kvswap *k;
	int mfd, ret;

	if (harness_connect(d, &k) < 0) {
		ok(0, "library: connect");
		return;
	}
	ret = kvswap_region_create(k, 64 * KiB, &r);
	is_int(ret, 0, "library: region create");
	if (ret == 0) {
		is_int(kvswap_put(k, "lib", 3, r, &bad, 1, NULL, 0), -EINVAL,
		       "library: misaligned put gives -EINVAL");
		ok(strstr(kvswap_last_error(k), "segments[0].offset") != NULL,
		   "library: last error names the field: \"%s\"",
		   kvswap_last_error(k));
		kvswap_region_release(k, r);
	}
	if (memfd_make(8192, 0, &mfd, NULL) < 0)
		bail_out("memfd");
	is_int(kvswap_region_import(k, mfd, NULL, 8192, &r), -EPERM,
	       "library: importing an unsealed memfd gives -EPERM");
	close(mfd);
	is_int(kvswap_delete(k, "nope", 4), -ENOENT,
	       "library: delete of an unknown key gives -ENOENT");
	kvswap_close(k);
}

int main(void)
{
	struct kvswap_stat s0, s1;
	uint64_t id;
	int r;

	harness_init("test-errors");
	r = harness_start(&(struct harness_opts){ .store_size = 64 * MiB }, &d);
	if (r < 0)
		bail_out("cannot start kvswapd (see above)");
	r = raw_open(d->socket, &fd);
	if (r < 0)
		bail_out("cannot connect: %s", strerror(-r));
	if (memfd_make(REGION, F_SEAL_SHRINK | F_SEAL_GROW, &memfd,
		       (void **)&mem) < 0)
		bail_out("memfd: %s", strerror(errno));
	{
		Kvswap__V1__Event *ev;

		id = next_id++;
		ev = expect_ok(fd, id, raw_send_register(fd, id, REGION, memfd),
			       "register the 4 MiB region");
		if (!ev || ev->body_case != KVSWAP__V1__EVENT__BODY_REGION)
			bail_out("cannot register a region");
		region = ev->region->region;
		raw_event_free(ev);
		id = next_id++;
		ev = expect_ok(fd, id, raw_send_swap_out(fd, id, "exists", 6,
							 region, stored, 3,
							 NULL, 0, 0),
			       "store 'exists'");
		raw_event_free(ev);
	}
	if (harness_stat(d, &s0) < 0)
		bail_out("stat");

	test_register();
	test_swap_out();
	test_swap_in();
	test_keys();
	test_unknown_body();
	test_no_hello();
	test_bad_version();
	test_connection_errors();
	test_library();

	ok(conn_works(fd), "the first connection survived every other client's errors");
	check_exists("at the end");
	if (harness_stat(d, &s1) == 0)
		ok(s1.errors >= s0.errors + 30,
		   "stat: errors counted (%" PRIu64 " -> %" PRIu64 ")",
		   s0.errors, s1.errors);
	close(fd);
	munmap(mem, REGION);
	close(memfd);
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
	done_testing();
}
