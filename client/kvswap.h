/* SPDX-License-Identifier: MIT */
/*
 * libkvswap: client library for kvswapd.
 *
 * Conventions:
 * - Every function that can fail returns a negative errno value on failure
 *   and 0 (or a count) on success. The library never logs, never exits and
 *   never touches errno's meaning for the caller beyond what libc does.
 * - When the daemon answers a request with an error event, the call returns
 *   the negated code from that event and kvswap_last_error() returns the
 *   daemon's message (which names the field at fault).
 * - A struct kvswap is one connection. It is thread-compatible, not
 *   thread-safe: use one connection per thread, or lock around it.
 * - ret_* output parameters are written only on success.
 * - The protocol is described in docs/PROTOCOL.md.
 */
#ifndef KVSWAP_H
#define KVSWAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVSWAP_DEFAULT_SOCKET "/run/kvswap/kvswapd.sock"

struct kvswap;
struct kvswap_region;
struct kvswap_req;

/* What the daemon announced in its HelloReply. */
struct kvswap_limits {
	uint32_t version;
	uint32_t max_message_size;
	uint32_t max_key_length;
	uint32_t max_metadata_length;
	uint32_t max_segments;
	uint32_t max_regions;
	uint32_t max_lookup_keys;
	uint32_t alignment;	/* region offsets must be multiples of this */
	uint32_t block_size;
	uint32_t store_files;
	uint64_t capacity;	/* bytes */
	char daemon[64];	/* "kvswapd 0.1.0" */
};

/* One segment of a swap-out: bytes [offset, offset + length) of a region. */
struct kvswap_seg_out {
	uint64_t offset;
	uint64_t length;
};

/* One segment of a swap-in: stored segment `index` lands at `offset`. */
struct kvswap_seg_in {
	uint32_t index;
	uint64_t offset;
};

/*
 * The daemon's statistics (docs/PROTOCOL.md, Stat). Fields are only ever
 * added at the end: kvswap_stat() of version KVSWAP_0 (programs built
 * before the metadata log's fields) fills the fields up to `verify` only.
 */
struct kvswap_stat {
	uint64_t capacity;
	uint64_t used;
	uint64_t entries;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t requests;
	uint64_t errors;
	uint32_t in_flight;
	uint32_t clients;
	uint32_t regions;
	uint32_t store_files;
	uint32_t queue_depth;
	uint64_t cpu_user_us;
	uint64_t cpu_system_us;
	uint64_t uptime_ms;
	uint64_t evictions;
	uint64_t pinned;	/* bytes of pinned entries */
	uint64_t journal_commits;
	uint64_t checkpoints;
	uint64_t checksum_errors;
	uint64_t io_errors;
	bool durable;		/* the daemon's default durability */
	bool verify;		/* swap-in checks CRC32C */
	/* Since KVSWAP_0.1; bytes; 0 from a daemon that does not say. */
	uint64_t log_half_bytes;	/* one half of the metadata log */
	uint64_t log_bytes_used;	/* of the live half */
	uint64_t checkpoint_bytes;	/* records a checkpoint needs now */
	uint64_t checkpoint_limit;	/* past it, swap-outs get ENOSPC */
	uint64_t metadata_refusals;	/* swap-outs refused: log full */
};

/* Flags of kvswap_swap_out() and kvswap_swap_out_batch(). */
#define KVSWAP_DURABLE	0x1	/* final event once on stable storage */
#define KVSWAP_CACHE	0x2	/* final event once the data is written */
#define KVSWAP_PINNED	0x4	/* never evicted */
/* Flags of the batch calls only. */
#define KVSWAP_IF_ABSENT	0x8	/* swap-out: skip keys stored or being written */
#define KVSWAP_WAIT_LEASES	0x10	/* batch swap-out: wait for leases to run out, not ENOSPC */
#define KVSWAP_SEGMENT_EVENTS	0x100	/* also an event per segment (wait_segment) */
#define KVSWAP_NO_VERIFY	0x200	/* no client CRC32C (see kvswap_swap_in_batch) */
/*
 * Batches: submit segments in request order (entry by entry) rather than
 * group by group. For bulk loads waited on whole: an entry's adjacent
 * blocks stay together for the block layer (often much faster for small
 * segments); groups then complete late, together.
 */
#define KVSWAP_REQUEST_ORDER	0x400

/* kvswap_req_entry_status() of an entry that IF_ABSENT skipped. */
#define KVSWAP_SKIPPED	1

/* What the daemon announced about batches; all 0 if it takes none. */
struct kvswap_batch_limits {
	uint32_t max_entries;	/* per wire request */
	uint32_t max_segments;	/* per wire request, all entries */
	uint32_t max_groups;	/* completion groups are 0 .. max_groups - 1 */
};

/*
 * One entry of a batch: its key and where each of its nseg segments is in
 * the region. The arrays are read during the call only.
 */
struct kvswap_batch_entry {
	const void *key;
	size_t key_len;
	uint32_t nseg;
	const uint64_t *offsets;	/* [nseg], multiples of the alignment */
	/*
	 * [nseg] segment lengths, or NULL: `length` for every segment.
	 * Swap-out: what to store. Swap-in: the stored lengths, which the
	 * CRC32C check needs (unused with KVSWAP_NO_VERIFY).
	 */
	const uint64_t *lengths;
	uint64_t length;
	const uint32_t *indexes;	/* swap-in: stored segment per offset; NULL: 0.. */
	const uint32_t *groups;		/* [nseg] completion groups; NULL: segment i in group i */
	const void *metadata;		/* swap-out only */
	size_t metadata_len;
};

/* Layout of a stored entry. Arrays are owned by the library: see each call. */
struct kvswap_entry {
	void *key;
	size_t key_len;
	uint64_t size;		/* sum of segment lengths */
	uint32_t segments;
	uint64_t *lengths;	/* kvswap_describe only, else NULL */
	void *metadata;		/* kvswap_describe only, else NULL */
	size_t metadata_len;
};

/* --- connection ----------------------------------------------------------- */

/*
 * Connects to the daemon's socket at `path` (NULL: $KVSWAP_SOCKET, else
 * KVSWAP_DEFAULT_SOCKET) and performs the Hello exchange. On success
 * *ret owns the connection; free it with kvswap_close().
 */
int kvswap_connect(const char *path, struct kvswap **ret);

/*
 * Closes the connection. Outstanding requests finish with -ECANCELED
 * (their handles must still be freed with kvswap_req_free()); regions not
 * yet released are unmapped and freed. Accepts NULL.
 */
void kvswap_close(struct kvswap *k);

/* The daemon's limits, valid while the connection is open. */
const struct kvswap_limits *kvswap_limits(const struct kvswap *k);

/*
 * The socket's file descriptor, for the caller's own poll/epoll/io_uring
 * loop: when it is readable, call kvswap_process(). Do not read from or
 * close it.
 */
int kvswap_fd(const struct kvswap *k);

/*
 * Receives and dispatches events to their requests, waiting at most
 * timeout_ms for the first one (0: do not wait, -1: forever). Returns the
 * number of events handled (0 on timeout). One recvmmsg() takes every
 * event queued (up to 16); requests queued while corked go out first.
 */
int kvswap_process(struct kvswap *k, int timeout_ms);

/*
 * The message of the last error event the daemon sent on this connection,
 * or of the last local failure; "" if none. Valid until the next call.
 * With NULL: why the calling thread's last kvswap_connect() failed.
 */
const char *kvswap_last_error(const struct kvswap *k);

/* --- regions -------------------------------------------------------------- */

/*
 * Creates a memfd of `size` bytes (rounded up to the page size), seals it
 * against shrinking and growing, maps it read-write and registers it with
 * the daemon. On success *ret owns it; release it with
 * kvswap_region_release().
 */
int kvswap_region_create(struct kvswap *k, size_t size,
			 struct kvswap_region **ret);

/*
 * kvswap_region_create() with flags: KVSWAP_REGION_HUGEPAGES backs the
 * region with the system's default huge pages (memfd MFD_HUGETLB; the
 * size is rounded up to a whole huge page, and the pages are taken at
 * once). -ENOMEM when too few are reserved (vm.nr_hugepages),
 * -EOPNOTSUPP when the system has none; never a silent fallback to
 * ordinary pages.
 */
#define KVSWAP_REGION_HUGEPAGES	0x1
int kvswap_region_create_flags(struct kvswap *k, size_t size, unsigned flags,
			       struct kvswap_region **ret);

/*
 * Registers an existing memfd the caller created and sealed (F_SEAL_SHRINK
 * and F_SEAL_GROW) and mapped at `addr` (may be NULL if the caller does not
 * need kvswap_region_addr()). The library duplicates `fd`; the caller keeps
 * its own fd and mapping.
 */
int kvswap_region_import(struct kvswap *k, int fd, void *addr, size_t size,
			 struct kvswap_region **ret);

/*
 * Unregisters the region (waits until the daemon has finished every I/O on
 * it), unmaps and frees it if the library created it. Accepts NULL.
 * Returns 0, or a negative errno if the daemon refused; the region is freed
 * either way.
 */
int kvswap_region_release(struct kvswap *k, struct kvswap_region *r);

void *kvswap_region_addr(const struct kvswap_region *r);
size_t kvswap_region_size(const struct kvswap_region *r);
uint32_t kvswap_region_id(const struct kvswap_region *r);

/* --- asynchronous swaps --------------------------------------------------- */

/*
 * Starts a swap-out of `nseg` segments of region `r` under `key`, with an
 * optional opaque `metadata` blob and KVSWAP_* flags (0: the daemon's
 * default durability, evictable). Returns once the daemon has taken the
 * request (it may first have to read events to make room on the socket);
 * *ret is the request handle, freed with kvswap_req_free(). The caller must not modify the
 * named ranges of the region until the request has finished.
 */
int kvswap_swap_out(struct kvswap *k, const void *key, size_t key_len,
		    struct kvswap_region *r, const struct kvswap_seg_out *segs,
		    uint32_t nseg, const void *metadata, size_t metadata_len,
		    uint32_t flags, struct kvswap_req **ret);

/*
 * Starts a swap-in of the listed stored segments into region `r`. Returns
 * at once; *ret is the request handle, freed with kvswap_req_free().
 */
int kvswap_swap_in(struct kvswap *k, const void *key, size_t key_len,
		   struct kvswap_region *r, const struct kvswap_seg_in *segs,
		   uint32_t nseg, struct kvswap_req **ret);

/*
 * Waits at most timeout_ms (-1: forever) for the next segment of `req` to
 * land, in the order the daemon reported them, and stores the index of the
 * request's segment (its position in the segs array of the call; for a
 * batch, counted entry by entry, every segment with KVSWAP_SEGMENT_EVENTS,
 * else only the failed ones) in *ret_index. Returns 0 when a segment landed successfully, a negative
 * errno for a segment that failed (*ret_index is still written),
 * -ETIMEDOUT on timeout, and -ENODATA once the request has finished and
 * every reported segment has been returned (kvswap_wait() then gives the
 * final status, also when the request ended early).
 */
int kvswap_wait_segment(struct kvswap *k, struct kvswap_req *req,
			int timeout_ms, uint32_t *ret_index);

/*
 * Waits at most timeout_ms (-1: forever) for the request's final event.
 * Returns 0 if the whole request succeeded, the negative errno of the final
 * error event otherwise, or -ETIMEDOUT.
 */
int kvswap_wait(struct kvswap *k, struct kvswap_req *req, int timeout_ms);

/* True once the final event has arrived. */
bool kvswap_req_done(const struct kvswap_req *req);

/* Final status: 0, negative errno, or -EINPROGRESS while not done. */
int kvswap_req_status(const struct kvswap_req *req);

/* Segments reported so far (successful or failed) and in total. */
uint32_t kvswap_req_segments_done(const struct kvswap_req *req);
uint32_t kvswap_req_segments(const struct kvswap_req *req);

/*
 * The metadata returned by a finished swap-in, owned by the request: valid
 * until kvswap_req_free(). NULL with *len 0 if none.
 */
const void *kvswap_req_metadata(const struct kvswap_req *req, size_t *len);

/*
 * Frees a request handle. A request still in flight keeps running in the
 * daemon; its later events are discarded. Accepts NULL.
 */
void kvswap_req_free(struct kvswap_req *req);

/* --- batches ------------------------------------------------------------- */

/*
 * Starts storing the n entries (each under its own key) from region r.
 * flags: KVSWAP_DURABLE, KVSWAP_CACHE, KVSWAP_PINNED as kvswap_swap_out();
 * KVSWAP_IF_ABSENT skips (kvswap_req_entry_status() KVSWAP_SKIPPED) every
 * key already stored or being written by anyone; KVSWAP_SEGMENT_EVENTS
 * adds an event per segment (kvswap_wait_segment(), indexes counted
 * entry by entry); KVSWAP_NO_VERIFY sends no checksums, the daemon then
 * computes them. Otherwise the library computes the CRC32C of every
 * segment in the calling thread and the daemon stores it: the region
 * must have an address (kvswap_region_addr()).
 *
 * Each entry is stored, replaced or skipped on its own; a failed entry
 * fails alone. Completion groups (kvswap_wait_group()) tell when the
 * daemon has read a group's bytes from the region: they may be
 * overwritten from then on. Entries become visible with the final event.
 *
 * A batch larger than one packet (max_message_size, or the daemon's
 * max_entries / max_segments) is split into several wire requests
 * transparently: they run side by side, a group is done once it is done
 * in every one of them, and the request ends when all have. Keys must be
 * distinct. -E2BIG only if one entry alone cannot fit a packet.
 *
 * *ret is the handle, freed with kvswap_req_free(). Returns -EOPNOTSUPP
 * if the daemon takes no batches.
 */
int kvswap_swap_out_batch(struct kvswap *k, struct kvswap_region *r,
			  const struct kvswap_batch_entry *entries, uint32_t n,
			  uint32_t flags, struct kvswap_req **ret);

/*
 * Starts reading the n entries into region r; each entry's segments are
 * stored segment indexes[i] (or i) to offsets[i]. flags:
 * KVSWAP_SEGMENT_EVENTS, KVSWAP_NO_VERIFY. A missing or damaged entry
 * fails alone.
 *
 * End-to-end checks (unless KVSWAP_NO_VERIFY): the library computes the
 * CRC32C of each segment, in the thread that receives the events, when
 * its group lands (so that the caller may change landed bytes), and
 * compares it with the stored CRC32C that the final event carries. A
 * group's bytes are thus *landed* at kvswap_wait_group() and *verified*
 * once the request is done: an entry whose bytes differ gets
 * -EBADMSG, its groups too, kvswap_wait() fails, and the library asks
 * the daemon to delete the key (a damaged entry is dropped, never served;
 * the cost of a false alarm is one cache miss). Checking needs each
 * segment's stored length (lengths or length) and the region's address.
 * With KVSWAP_NO_VERIFY the daemon's own --verify setting applies.
 */
int kvswap_swap_in_batch(struct kvswap *k, struct kvswap_region *r,
			 const struct kvswap_batch_entry *entries, uint32_t n,
			 uint32_t flags, struct kvswap_req **ret);

/*
 * Waits at most timeout_ms (-1: forever) until every segment of
 * completion group `group` of a batch is over. Returns 0 if all landed
 * (swap-in: not yet verified, see above; after the request is done:
 * verified), the first error of one of its segments otherwise (e.g.
 * -ENOENT for a missing entry, -ECANCELED, -EBADMSG), -ETIMEDOUT, or
 * -EINVAL for a group without segments in the request.
 */
int kvswap_wait_group(struct kvswap *k, struct kvswap_req *req,
		      uint32_t group, int timeout_ms);

/* True once every segment of the group has landed well (see above). */
bool kvswap_group_done(const struct kvswap_req *req, uint32_t group);

/*
 * Cancels a batch: its wire requests still in the send queue are dropped,
 * and the daemon is asked (at once) to drop the segments it has not
 * started; those in flight finish. The request still ends with its final
 * event: kvswap_req_entry_status() then says which entries were stored or
 * read, kvswap_group_done() which groups landed whole.
 *
 * The region memory that the request names stays the daemon's until the
 * request is done (kvswap_wait() returned, kvswap_req_done() true): do not
 * reuse it, free it or release the region before, or I/O still in flight
 * lands in memory that has a new owner. Returns 0 (also if the request
 * was already done), or -EINVAL for a v1 request.
 */
int kvswap_cancel(struct kvswap *k, struct kvswap_req *req);

/* The number of entries of a batch (0 for a v1 request). */
uint32_t kvswap_req_entries(const struct kvswap_req *req);

/*
 * The outcome of one entry of a batch: 0 stored (swap-out) or read and
 * verified (swap-in), KVSWAP_SKIPPED, a negative errno (the daemon's
 * message is kvswap_req_entry_error()), or -EINPROGRESS while unknown.
 */
int kvswap_req_entry_status(const struct kvswap_req *req, uint32_t entry);

/* The message of a failed entry, owned by the request; "" if none. */
const char *kvswap_req_entry_error(const struct kvswap_req *req,
				   uint32_t entry);

/*
 * The metadata of an entry read by a finished swap-in batch, owned by the
 * request: valid until kvswap_req_free(). NULL with *len 0 if none.
 */
const void *kvswap_req_entry_metadata(const struct kvswap_req *req,
				      uint32_t entry, size_t *len);

/* True if the daemon stopped the request early (kvswap_cancel()). */
bool kvswap_req_cancelled(const struct kvswap_req *req);

/*
 * The daemon's batch limits. Returns 0, or -EOPNOTSUPP if it takes no
 * batches.
 */
int kvswap_batch_limits(const struct kvswap *k,
			struct kvswap_batch_limits *ret);

/* --- submitting many requests with one system call ------------------------ */

/*
 * While corked, the asynchronous calls (kvswap_swap_out/in(), the batch
 * calls) pack their requests into a queue instead of sending them; the
 * queue goes out with one sendmmsg() at kvswap_flush() or
 * kvswap_uncork(), whenever the library is about to wait for events,
 * before a blocking call, and when TX_BATCH (64) requests are queued.
 * The calls' return values are then those of the queueing: a failure
 * to send shows in the requests' status.
 */
void kvswap_cork(struct kvswap *k);

/* Sends what is queued; returns 0 or a negative errno. */
int kvswap_flush(struct kvswap *k);

/* kvswap_flush(), and requests are sent at once again. */
int kvswap_uncork(struct kvswap *k);

/* --- blocking calls ------------------------------------------------------- */

/* kvswap_swap_out() + kvswap_wait() + kvswap_req_free(). */
int kvswap_put(struct kvswap *k, const void *key, size_t key_len,
	       struct kvswap_region *r, const struct kvswap_seg_out *segs,
	       uint32_t nseg, const void *metadata, size_t metadata_len);

/* kvswap_swap_in() + kvswap_wait() + kvswap_req_free(). */
int kvswap_get(struct kvswap *k, const void *key, size_t key_len,
	       struct kvswap_region *r, const struct kvswap_seg_in *segs,
	       uint32_t nseg);

/*
 * Prefix lookup of `n` keys (at most max_lookup_keys, else -E2BIG). Writes
 * present[i] for every key if `present` is not NULL, and returns the
 * number of leading keys present (>= 0).
 */
int kvswap_lookup(struct kvswap *k, const void *const *keys,
		  const size_t *key_lens, uint32_t n, bool *present);

/*
 * kvswap_lookup() that also protects the present keys from eviction for
 * lease_ms (at most 60000), so the swap-in that follows finds them.
 */
int kvswap_lookup_lease(struct kvswap *k, const void *const *keys,
			const size_t *key_lens, uint32_t n, uint32_t lease_ms,
			bool *present);

/*
 * Describes one entry. On success *ret is filled; free its arrays with
 * kvswap_entry_clear(). -ENOENT if the key is not stored.
 */
int kvswap_describe(struct kvswap *k, const void *key, size_t key_len,
		    struct kvswap_entry *ret);

/* Frees the arrays of an entry filled by the library. Accepts NULL. */
void kvswap_entry_clear(struct kvswap_entry *e);

/* Deletes an entry; -ENOENT if the key is not stored. */
int kvswap_delete(struct kvswap *k, const void *key, size_t key_len);

/*
 * Deletes n keys (at most max_lookup_keys) in one request; a missing key
 * is no error. Writes deleted[i] (whether key i was stored) if `deleted`
 * is not NULL. Returns the number deleted.
 */
int kvswap_delete_keys(struct kvswap *k, const void *const *keys,
		       const size_t *key_lens, uint32_t n, bool *deleted);

/*
 * One page of the listing. Start with *cursor 0; on return *cursor is the
 * next cursor (0: done). On success *ret_entries is an array of *ret_n
 * entries (no lengths or metadata) that the caller frees with
 * kvswap_entries_free().
 */
int kvswap_list(struct kvswap *k, uint64_t *cursor, uint32_t limit,
		struct kvswap_entry **ret_entries, uint32_t *ret_n);

void kvswap_entries_free(struct kvswap_entry *entries, uint32_t n);

int kvswap_stat(struct kvswap *k, struct kvswap_stat *ret);

/*
 * Tenants (docs/TENANTS.md). Every connection belongs to one tenant, the
 * daemon's choice from the peer's uid and groups; its keys are that
 * tenant's namespace. kvswap_tenant() is its name ("" from a daemon that
 * keeps no tenants), kvswap_is_admin() whether it may name other tenants.
 */
const char *kvswap_tenant(const struct kvswap *k);
bool kvswap_is_admin(const struct kvswap *k);

/* A tenant's usage, counters and limits (bytes block-rounded). */
struct kvswap_tenant_stat {
	char tenant[33];
	uint64_t entries;
	uint64_t bytes;			/* stored and being swapped out */
	uint64_t pinned;
	uint64_t leased;		/* bytes of entries under its leases */
	uint32_t connections;
	uint32_t regions;
	uint64_t region_bytes;
	uint32_t in_flight;		/* requests */
	uint64_t evictions;		/* its entries evicted for space */
	uint64_t quota_refusals;
	uint64_t max_bytes;
	uint64_t max_pinned;
	uint64_t max_leased;
	uint32_t max_lease_ms;
	uint32_t max_connections;
	uint32_t max_regions;
	uint64_t max_region_bytes;
	uint32_t max_in_flight;
	uint32_t tenants;		/* admins: tenants the daemon knows */
	bool admin;			/* this connection is an admin */
};

/*
 * The tenant's figures: this connection's tenant with tenant NULL; an
 * admin may name another (-EPERM for anyone else, -ENOENT for a tenant
 * the daemon does not know). -EOPNOTSUPP from a daemon without tenants.
 */
int kvswap_tenant_stat(struct kvswap *k, const char *tenant,
		       struct kvswap_tenant_stat *ret);

/*
 * kvswap_list() and kvswap_delete() in another tenant's namespace (admins
 * only: -EPERM otherwise); tenant NULL is this connection's own. An
 * unknown tenant lists nothing and deletes nothing (-ENOENT).
 */
int kvswap_list_tenant(struct kvswap *k, const char *tenant, uint64_t *cursor,
		       uint32_t limit, struct kvswap_entry **ret_entries,
		       uint32_t *ret_n);
int kvswap_delete_tenant(struct kvswap *k, const char *tenant,
			 const void *key, size_t key_len);

/* "EINVAL"-style name of a positive errno code, or NULL if unknown. */
const char *kvswap_errno_name(int code);

#ifdef __cplusplus
}
#endif

#endif
