/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CONN_H
#define KVSWAP_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server.h"
#include "wire.h"

struct region;

/* Fds accepted per packet; more are closed and the request refused. */
#define CONN_MAX_FDS 4

/*
 * A client connection. One RECVMSG is armed at a time into rbuf; requests
 * are handled as they arrive. The connection is freed only when nothing in
 * the ring refers to it any more (ops and xfers are 0) and every region's
 * buffers have been released, so its fd number cannot be reused while a
 * completion for it is still on its way.
 */
struct conn {
	struct conn *next;
	struct conn *prev;
	int fd;
	uint32_t serial;
	char name[64];
	bool hello;
	bool closing;		/* shut down; draining */
	bool close_on_send;	/* close once the backlog is sent */
	const char *close_why;
	bool backlog_armed;	/* a SEND of the backlog's head in flight */
	bool recv_armed;
	bool recv_cancelled;
	bool dead;		/* freed at the end of the batch */
	uint32_t ops;		/* recv and sends in flight */
	uint32_t xfers;		/* swap requests in flight */
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

/*
 * Stop reading a client's requests while this many bytes of its events
 * wait for room in its socket: a client that does not read cannot make
 * the daemon queue without bound.
 */
#define CONN_MAX_BACKLOG (1u << 20)

/* An event waiting in a connection's backlog. */
struct out {
	struct out *next;
	struct conn *c;
	uint32_t len;
	uint8_t buf[] __attribute__((aligned(16)));
} __attribute__((aligned(16)));

/*
 * Takes the listening socket from systemd, or creates it at path. Returns
 * the fd, or a negative errno with a message in err.
 */
int conn_listen(const char *path, bool *ret_created, char *err, size_t len);

void conn_accept_arm(struct server *srv);
void conn_accept_done(struct server *srv, struct io_uring_cqe *cqe);
void conn_recv_done(struct server *srv, struct conn *c, int res);
void conn_send_done(struct server *srv, struct out *o, int res);

/*
 * Sends ev to the client: at once with a non-blocking send when its socket
 * has room and nothing is waiting before it, else after the backlog, in
 * order. Never blocks the loop, never stalls other clients. Returns 0, or
 * -ENOTCONN if the connection is closing or broke (the event is dropped;
 * the connection is then being closed).
 */
int conn_send(struct server *srv, struct conn *c, const Event *ev);

/* The same for an event already packed (a segment event, say). */
int conn_send_bytes(struct server *srv, struct conn *c, const void *buf,
		    size_t len);

/* Sends an Error event; seg < 0 means a final error. Counts in stats. */
int conn_send_error(struct server *srv, struct conn *c, uint64_t id,
		    int code, int64_t seg, const char *msg);

/* Closes the connection once everything queued to it has been sent. */
void conn_close_after_send(struct server *srv, struct conn *c, const char *why);

/*
 * Shutdown: stops reading requests; closes each connection once its swaps
 * have finished and their events are sent, or all of them now if force.
 */
void conn_drain(struct server *srv, bool force);

/* Frees the connections that died during the last batch of completions. */
void conn_reap(struct server *srv);

/* Shuts the connection down; it is freed once drained. */
void conn_abort(struct server *srv, struct conn *c, const char *why);

/* A region of this connection with this id that is not being released. */
struct region *conn_region(struct conn *c, uint32_t id);

/* Called by region.c when r is fully released; frees r. */
void conn_region_gone(struct server *srv, struct region *r, int err);

/* Called by xfer.c when one of c's swaps has finished. */
void conn_xfer_done(struct server *srv, struct conn *c);

static inline const char *conn_name(const struct conn *c)
{
	return c->name;
}

#endif
