/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_SERVER_H
#define KVSWAP_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>

#include "index.h"
#include "journal.h"
#include "loop.h"
#include "store.h"
#include "clock.h"

#define KVSWAP_VERSION "0.1.0"

/* Protocol limits, announced in HelloReply. */
#define KVS_PROTOCOL_VERSION	1
#define KVS_MAX_MESSAGE		65536
#define KVS_MAX_KEY		1024
#define KVS_MAX_METADATA	4096
#define KVS_MAX_SEGMENTS	1024
#define KVS_MAX_REGIONS		64	/* per connection */
#define KVS_MAX_LOOKUP		1024
#define KVS_ALIGN		4096
#define KVS_MAX_LIST		1000
/* Daemon limits. */
#define KVS_MAX_CLIENTS		1024
#define KVS_MAX_REQUESTS	256	/* in flight per connection */
#define KVS_MAX_EXTENTS		64	/* per stored segment */

struct conn;
struct xfer;

struct config {
	const char *socket_path;
	const char *store_paths;
	uint64_t store_size;
	uint32_t queue_depth;
	int log_level;
	int cache;		/* default durability: cache (1) or durable (0) */
	int verify;		/* check CRC32C on swap-in */
};

/* SwapOut.flags */
#define KVS_FLAG_DURABLE	0x1	/* final event once on stable storage */
#define KVS_FLAG_CACHE		0x2	/* final event once the data is written */
#define KVS_FLAG_PINNED		0x4	/* never evicted */
#define KVS_FLAGS_ALL		0x7
#define KVS_MAX_LEASE_MS	60000

struct stats {
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t requests;
	uint64_t errors;
	uint64_t evictions;
	uint64_t checksum_errors;
	uint64_t io_errors;
};

/* The daemon's state: one ring, one store, one index, its clients. */
struct server {
	struct loop loop;
	struct store store;
	struct index index;
	struct journal jr;
	struct config cfg;
	struct stats st;

	int listen_fd;
	int signal_fd;
	struct signalfd_siginfo siginfo;
	bool quit;
	uint64_t drain_deadline_ms;
	uint64_t start_ms;

	/* Timer: watchdog pings (0: off) and STATUS= updates. */
	struct __kernel_timespec tick_ts;
	uint64_t watchdog_usec;
	uint64_t last_status_ms;
	struct stats last_status;

	/* Called on SIGHUP, between RELOADING=1 and READY=1. */
	void (*reload)(struct server *srv);

	/* Connections, and the xfers that still have segments to submit. */
	struct conn *conns;
	struct conn *dead_conns;
	uint32_t nconns;
	uint32_t conn_serial;
	uint32_t nregions;
	struct xfer *runq_head;
	struct xfer *runq_tail;
	/*
	 * Durable swap-outs whose records are being committed, linked by
	 * hnext: the entries are not in the index yet (xfer.c).
	 */
	struct entry *pending;
	/* Swap-outs waiting for evicted space to be released. */
	struct xfer *spaceq_head;
	struct xfer *spaceq_tail;

	/* I/O chains in flight; at most cfg.queue_depth. */
	uint32_t inflight;
	uint32_t rr_file;

	/* Extents of a SwapOut being allocated, before its entry exists. */
	struct sext *scratch;

	/* Bounce blocks for segment tails: fixed buffer 0, one per chain. */
	uint8_t *bounce;
	uint32_t *bounce_free;
	uint32_t nbounce_free;
};

/*
 * Opens the store, sets up the ring and registers files and buffers. On
 * failure returns a negative errno with a one-line reason in err; call
 * server_fini() either way.
 */
int server_init(struct server *srv, const struct config *cfg, char *err,
		size_t len);

/* Serves until a signal asks to stop and every client is gone. */
int server_run(struct server *srv);
void server_fini(struct server *srv);

#endif
