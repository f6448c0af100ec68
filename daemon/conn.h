/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CONN_H
#define KVSWAP_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "defs.h"
#include "lease.h"
#include "loop.h"
#include "stats.h"
#include "wire.h"

/*
 * Client connections: the socket, framing, file descriptors and the
 * backlog of events a client has no room for. What a request means is
 * not this module's business: checked requests go to the `request`
 * callback the server registered.
 */

struct region;
struct conn;
struct tenants;

/* Fds accepted per packet; more are closed and the request refused. */
#define CONN_MAX_FDS 4

/*
 * Stop reading a client's requests while this many bytes of its events
 * wait for room in its socket: a client that does not read cannot make
 * the daemon queue without bound.
 */
#define CONN_MAX_BACKLOG (1u << 20)

/*
 * Kinds of refusal (quotas and limits), one bit each in struct
 * conn.refused: each is logged once per connection, not per request.
 * Append only.
 */
enum conn_refusal {
	CONN_REFUSED_CONNS,		/* the tenant's connections */
	CONN_REFUSED_REGIONS,		/* the tenant's regions */
	CONN_REFUSED_REGION_BYTES,	/* the tenant's registered bytes */
	CONN_REFUSED_SLOTS,		/* the tenant's share of the buffer table */
	CONN_REFUSED_INFLIGHT,		/* the tenant's requests in flight */
	CONN_REFUSED_MAX = 32
};

enum conn_state {
	CONN_NEW,		/* connected; only Hello is accepted */
	CONN_READY,		/* said Hello */
	CONN_FLUSHING,		/* reads no more; closes once the backlog is sent */
	CONN_CLOSING,		/* shut down; freed once nothing refers to it */
	CONN_DEAD,		/* freed at the end of the batch */
};

struct conn_ops {
	/*
	 * A request that passed wire_check() and the framing checks. fd is
	 * the memfd of register_region (the callee owns it) or -1.
	 */
	void (*request)(void *ctx, struct conn *c, Request *req, int fd);
	/*
	 * The connection is closing: cancel its queued work. Called once.
	 */
	void (*closing)(void *ctx, struct conn *c);
	/*
	 * The closing connection has no swaps in flight: release what it
	 * holds (its regions), each of which drops its hold when gone.
	 */
	void (*drained)(void *ctx, struct conn *c);
};

/*
 * A client connection. One RECVMSG is armed at a time into rbuf; requests
 * are handled as they arrive. Owner: the connection table (struct conns)
 * creates it on accept and frees it only when it is closing and nothing
 * refers to it: no operation in the ring (ops), no swap in flight (xfers)
 * and no hold (regions not yet released by the kernel) — so its fd number
 * cannot be reused while a completion for it is on its way.
 */
struct conn {
	struct conn *next;
	struct conn *prev;
	struct conns *tab;
	int fd;
	enum conn_state state;
	uint32_t serial;
	uint32_t uid;		/* SO_PEERCRED */
	struct tenant *tenant;	/* by tenants_resolve(), for its lifetime */
	bool admin;		/* may see and delete across tenants */
	char name[96];
	const char *close_why;
	uint64_t accepted_ms;	/* for the Hello deadline */
	uint32_t refused;	/* enum conn_refusal bits already logged */
	bool over_quota;	/* its tenant had its connections: refused on its
				 * first request */
	bool recv_armed;	/* a RECVMSG in flight */
	bool recv_cancelled;	/* ... and a cancel of it */
	bool backlog_armed;	/* a SEND of the backlog's head in flight */
	bool drained_called;
	bool dirty;		/* events queued since the last flush */
	struct conn *dnext;	/* in the table's dirty list */
	uint32_t ops;		/* recv and sends in flight */
	uint32_t xfers;		/* requests in flight (swaps, durable deletes) */
	uint32_t holds;		/* other references: regions */
	/* The connection's leases, kept by catalog.c. */
	struct lease_owner leases;
	/* The connection's regions, kept by region.c. */
	struct region *regions;
	uint32_t nregions;
	uint32_t region_serial;
	/* Events the socket had no room for, sent in order. */
	struct out *backlog;
	struct out *backlog_tail;
	size_t backlog_bytes;
	struct msghdr msg;
	struct iovec iov;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * CONN_MAX_FDS)];
	} cmsg;
	uint8_t rbuf[KVS_MAX_MESSAGE];
} __attribute__((aligned(16)));

/* An event waiting in a connection's backlog. */
struct out {
	struct out *next;
	struct conn *c;
	uint32_t len;
	uint8_t buf[] __attribute__((aligned(16)));
} __attribute__((aligned(16)));

/* The connection table: the listening socket and every client. */
struct conns {
	struct loop *loop;
	struct stats *st;
	struct tenants *tenants;
	const struct conn_ops *ops;
	void *ctx;
	int listen_fd;
	bool quit;		/* shutting down: accept and read no more */
	struct conn *list;
	struct conn *dead;
	struct conn *dirty;	/* connections with events to flush */
	uint32_t count;
	uint32_t serial;
	/*
	 * Limits: connections are refused (closed at once, logged once per
	 * burst) beyond max_conns, which leaves room in RLIMIT_NOFILE for
	 * the fds in use at start and those in flight in packets, so that
	 * accept itself never runs out of fds.
	 */
	uint32_t max_conns;
	uint32_t hello_timeout_ms;
	uint32_t over_quota;	/* connections waiting to be told so */
	uint64_t refused_conns;	/* refused since the last log line */
	/* Accept errors (EMFILE, ENFILE, ENOBUFS...): re-armed after a pause. */
	uint32_t backoff_ms;	/* the current pause, 0: accepting */
	uint64_t accept_errors;	/* since the last log line */
	bool accept_armed;
	/* The timer of Hello deadlines and accept backoff. */
	struct __kernel_timespec timer_ts;
	uint64_t timer_ms;	/* when it fires, or 0 */
};

/* The listening socket and accept: listen.c. */

/*
 * Takes the listening socket from systemd, or creates it at path. Returns
 * the fd, or a negative errno with a message in err.
 */
int conn_listen(const char *path, bool *ret_created, char *err, size_t len);

/* The connections: conn.c (conns_start: listen.c). */

/*
 * Sets up the table on listen_fd (owned by the caller) and registers its
 * completion handlers with the loop. ops and ctx: the request layer.
 */
void conns_init(struct conns *t, struct loop *lp, struct stats *st,
		struct tenants *tenants, const struct conn_ops *ops, void *ctx);

/*
 * Arms the multishot accept on fd. Sets the connection limit from
 * RLIMIT_NOFILE (raising the soft limit towards the hard one if need be)
 * and the fds in use now; connections that send no Hello within
 * hello_timeout_ms are closed.
 */
void conns_start(struct conns *t, int fd, uint32_t hello_timeout_ms);

/*
 * Shutdown: stops accepting and reading requests; closes each connection
 * once its swaps have finished and their events are sent, or all of them
 * now if force.
 */
void conns_drain(struct conns *t, bool force);

/*
 * Sends the events queued during the last batch of completions: one
 * sendmmsg per connection; what its socket has no room for waits for it
 * in the backlog. Call before conns_reap().
 */
void conns_flush(struct conns *t);

/* Frees the connections that died during the last batch of completions. */
void conns_reap(struct conns *t);

/*
 * Queues ev for the client, in order: the events of a batch of
 * completions go out together at its end (conns_flush), several per
 * system call, and what the socket has no room for waits in the backlog.
 * Never blocks the loop, never stalls other clients. Returns 0, or
 * -ENOTCONN if the connection is closing (the event is dropped; a send
 * that fails later closes the connection).
 */
int conn_send(struct conn *c, const Event *ev);

/* The same for an event already packed (a segment event, say). */
int conn_send_bytes(struct conn *c, const void *buf, size_t len);

/* Sends an Error event; seg < 0 means a final error. Counts in stats. */
int conn_send_error(struct conn *c, uint64_t id, int code, int64_t seg,
		    const char *msg);

/*
 * Sends an Error about entry `ent` of a batch (and its segment seg, if
 * seg >= 0): not final. Counts in stats.
 */
int conn_send_entry_error(struct conn *c, uint64_t id, int code, uint32_t ent,
			  int64_t seg, const char *msg);

/*
 * A refusal of kind `kind` (enum conn_refusal) for c's tenant: writes
 * "tenant 'NAME': " and the formatted reason (which names the limit) to
 * err, logs it the first time this connection meets this kind, and
 * returns -EDQUOT.
 */
__attribute__((format(printf, 5, 6)))
int conn_refuse(struct conn *c, unsigned kind, char *err, size_t len,
		const char *fmt, ...);

/*
 * A new connection on fd (owned by it from now on, closed on failure) of
 * peer pid and uid, in tenant tn. over_quota: its tenant has all its
 * connections, so its first request is answered with the refusal and it
 * is closed. Links it and arms its first receive. Returns it, or NULL
 * when out of memory. Called by listen.c.
 */
struct conn *conn_new(struct conns *t, int fd, pid_t pid, uid_t uid,
		      struct tenant *tn, bool admin, bool over_quota);

/* Sends a connection-level error (id 0) and closes after it. */
void conn_fatal(struct conn *c, int code, const char *msg);

/* Closes the connection once everything queued to it has been sent. */
void conn_close_after_send(struct conn *c, const char *why);

/* Shuts the connection down; it is freed once drained. */
void conn_abort(struct conn *c, const char *why);

/* The client has said Hello. */
void conn_ready(struct conn *c);

/* A request of c's is in flight / has finished (see struct conn). */
void conn_xfer_begin(struct conn *c);
void conn_xfer_end(struct conn *c);

/* Something (a region) refers to c: it is not freed before conn_put. */
void conn_hold(struct conn *c);
void conn_put(struct conn *c);

static inline bool conn_closing(const struct conn *c)
{
	return c->state >= CONN_CLOSING;
}

static inline const char *conn_name(const struct conn *c)
{
	return c->name;
}

#endif
