/* SPDX-License-Identifier: MIT */
/*
 * libkvswap's insides, shared by its two files: kvswap.c (the connection,
 * its send queue and receive path, regions, v1 requests, synchronous
 * calls) and batch.c (batched swaps: splitting, completion groups,
 * end-to-end CRC32C, cancel). Not installed; nothing here is exported
 * (the version script keeps only kvswap_*, and these names are kvs_*).
 */
#ifndef KVSWAP_PRIVATE_H
#define KVSWAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kvswap.h"
#include "kvswap.pb-c.h"

#define KVSWAP_EXPORT __attribute__((visibility("default")))

#define ERROR_MAX		512
/* Any fds the daemon might attach are received (to be closed) up to this. */
#define MAX_RECV_FDS		8
/* Outstanding wire requests: chained buckets, a power of two. */
#define REQ_BUCKETS		256
/* Packets taken by one recvmmsg(). */
#define RX_SLOTS		16
/* Packets given to one sendmmsg(); also the most a corked queue holds. */
#define TX_BATCH		64
/* seg_status value of a segment not reported yet; real ones are <= 0. */
#define SEG_PENDING		1

/* Deadlines are absolute CLOCK_MONOTONIC nanoseconds. */
#define DEADLINE_NEVER		((int64_t)-1)
#define DEADLINE_NOW		((int64_t)0)

struct batch;

struct kvswap_region {
	struct kvswap *k;
	struct kvswap_region *next;
	int fd;			/* the memfd we created, or our dup */
	void *addr;
	size_t size;
	uint32_t id;
	bool created;		/* mapping is ours to unmap */
};

enum part_state {
	PART_NEW,		/* built, not in the table yet */
	PART_QUEUED,		/* in the table, its packet in the send queue */
	PART_SENT,		/* in the table, sent */
	PART_DONE,		/* its final event came (or never will) */
};

/*
 * One wire request of an asynchronous call: a v1 swap has one (embedded
 * in the request), a batch one per packet it was split into. Owner: its
 * request; the connection's table points at it by id from the moment its
 * packet is queued until its final event.
 */
struct part {
	struct part *hnext;	/* table bucket */
	struct part *next;	/* the request's parts */
	struct kvswap_req *req;
	uint64_t id;
	enum part_state state;
	/* Batches: the entries and segments (of the request) it carries. */
	uint32_t ent0, nent;
	uint32_t seg0, nseg;
	uint64_t *gmask;	/* groups with segments here, not over yet */
	uint8_t *pkt;		/* swap-in batch: its packed request */
	size_t pkt_len;
};

struct kvswap_req {
	struct kvswap *k;	/* NULL once out of the connection's table */
	Kvswap__V1__Event__BodyCase reply;	/* body of the final reply */
	bool done;
	bool orphan;		/* freed by the caller; the table owns it */
	int status;		/* valid once done */
	uint32_t nseg;
	uint32_t nreported;	/* segment events received */
	uint32_t nconsumed;	/* of those, returned by wait_segment */
	int32_t *seg_status;	/* [nseg]: SEG_PENDING, 0 or -errno */
	uint32_t *fifo;		/* [nseg]: indexes in arrival order */
	void *metadata;		/* swap-in reply */
	size_t metadata_len;
	struct part *parts;	/* v1: &part0 */
	uint32_t parts_left;	/* not PART_DONE */
	struct part part0;
	struct batch *b;	/* NULL: a v1 swap */
};

/* A packed request waiting in the send queue. */
struct txpkt {
	struct txpkt *next;
	struct part *part;	/* NULL: internal (Cancel, Delete) */
	size_t len;
	uint8_t data[];
};

struct kvswap {
	int fd;
	bool dead;		/* peer gone or protocol broken: -ENOTCONN */
	bool closing;		/* an id-0 error explained the close */
	bool corked;		/* async requests wait in the send queue */
	bool flushing;		/* txq_flush() is running */
	uint64_t next_id;
	struct kvswap_limits limits;
	struct kvswap_batch_limits blimits;	/* all 0: no batches */
	char tenant[33];	/* HelloReply.tenant; "": not said */
	bool admin;		/* HelloReply.admin */
	size_t max_send;	/* what we pack: min(announced, buffer) */
	size_t bufsize;
	uint8_t *txbuf;

	/* Receiving: one recvmmsg() fills up to RX_SLOTS buffers. */
	uint8_t *rxbuf;		/* RX_SLOTS x bufsize */
	unsigned rx_n;		/* packets received by the last recvmmsg */
	unsigned rx_next;	/* the next of those to decode */
	bool rx_empty;		/* the last read found the socket drained */
	struct mmsghdr rx_mm[RX_SLOTS];
	struct iovec rx_iov[RX_SLOTS];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(MAX_RECV_FDS * sizeof(int))];
	} rx_ctl[RX_SLOTS];

	/* Sending: packets queued while corked, or internal ones. */
	struct txpkt *txq_head;
	struct txpkt *txq_tail;
	unsigned txq_n;

	/* The one pending synchronous call, if sync_id != 0. */
	uint64_t sync_id;
	Kvswap__V1__Event *sync_ev;	/* its final event, ours to free */
	int sync_err;			/* or why it cannot get one */

	struct part *reqs[REQ_BUCKETS];
	struct kvswap_region *regions;
	char last_error[ERROR_MAX];
};

/* --- kvswap.c ------------------------------------------------------------- */

void kvs_set_error(struct kvswap *k, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A daemon's error code as a valid positive errno. */
int kvs_event_code(const Kvswap__V1__Error *e);
void kvs_set_daemon_error(struct kvswap *k, const Kvswap__V1__Error *e);
int kvs_check_conn(struct kvswap *k);
int64_t kvs_deadline_after(int timeout_ms);
void *kvs_memdup(const void *p, size_t len);
bool kvs_bytes_ok(const void *p, size_t len);

/* A batch's request with room for nseg segment reports, and no part. */
struct kvswap_req *kvs_req_new(uint32_t nseg);

/* Receives and dispatches one event, waiting until `deadline` for it:
 * 1 when one was handled, 0 on timeout, or a negative errno. */
int kvs_pump(struct kvswap *k, int64_t deadline);

/*
 * Packs rq under a fresh id into the send queue, for part p (its id is
 * set, it enters the table) or, with p NULL, as an internal request whose
 * events are dropped. Returns 0 or a negative errno (nothing queued).
 */
int kvs_queue(struct kvswap *k, Kvswap__V1__Request *rq, struct part *p);

/* Takes the queued packet of part p out of the queue, unsent. */
void kvs_unqueue(struct kvswap *k, struct part *p);

/* Sends what dispatching queued (a Delete, a Cancel), unless corked. */
void kvs_settle(struct kvswap *k);

/* Sends the queued packets (sendmmsg). Returns 0 or a negative errno;
 * failing, the connection is over. */
int kvs_flush(struct kvswap *k);

/* A part's final event came: out of the table; the request ends with its
 * last part (kvs_req_finish). */
void kvs_part_end(struct kvswap *k, struct part *p);

/* Takes every part of req out of the table with the final status. An
 * orphan is freed; any other request now belongs to the caller alone. */
void kvs_req_finish(struct kvswap *k, struct kvswap_req *req, int status);

/* Records a segment event (wait_segment's queue). */
void kvs_req_segment(struct kvswap_req *req, uint32_t idx, int status);

/* --- batch.c -------------------------------------------------------------- */

/* An event of a batch's part (not an orphan's). */
void kvs_batch_event(struct kvswap *k, struct part *p,
		     const Kvswap__V1__Event *ev);

/* The request is over before its parts ended (connection gone): entries
 * and groups not settled fail with err. Returns the request's status. */
int kvs_batch_abort(struct kvswap_req *req, int err);

/* The request's status once every part has ended. */
int kvs_batch_status(const struct kvswap_req *req);

void kvs_batch_free(struct batch *b);

#endif
