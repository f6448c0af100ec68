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

/* Flags of kvswap_swap_out(). */
#define KVSWAP_DURABLE	0x1	/* final event once on stable storage */
#define KVSWAP_CACHE	0x2	/* final event once the data is written */
#define KVSWAP_PINNED	0x4	/* never evicted */

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
 * number of events handled (0 on timeout).
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
 * request's segment (its position in the segs array of the call) in
 * *ret_index. Returns 0 when a segment landed successfully, a negative
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
 * One page of the listing. Start with *cursor 0; on return *cursor is the
 * next cursor (0: done). On success *ret_entries is an array of *ret_n
 * entries (no lengths or metadata) that the caller frees with
 * kvswap_entries_free().
 */
int kvswap_list(struct kvswap *k, uint64_t *cursor, uint32_t limit,
		struct kvswap_entry **ret_entries, uint32_t *ret_n);

void kvswap_entries_free(struct kvswap_entry *entries, uint32_t n);

int kvswap_stat(struct kvswap *k, struct kvswap_stat *ret);

/* "EINVAL"-style name of a positive errno code, or NULL if unknown. */
const char *kvswap_errno_name(int code);

#ifdef __cplusplus
}
#endif

#endif
