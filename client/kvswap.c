/* SPDX-License-Identifier: MIT */
/*
 * libkvswap: the client side of the kvswapd protocol (proto/kvswap.proto).
 *
 * One struct kvswap is one SOCK_SEQPACKET connection. Every request carries
 * an id (1, 2, 3, ... per connection); the daemon echoes it in every event
 * about that request. Events are only read when the caller is inside the
 * library (a blocking call, kvswap_wait*(), kvswap_process()), and every
 * event read is dispatched at once, whichever request it belongs to. This
 * file holds the connection, its send queue and receive path, regions,
 * v1 swaps and the synchronous calls; batch.c the batched swaps.
 *
 * System calls are few: one recvmmsg() takes every event queued (up to
 * RX_SLOTS), blocking itself when the caller waits without a deadline, so
 * a wakeup costs one call; requests queued while corked (and internal
 * ones: Cancel, the Delete of a damaged entry) go out with one sendmmsg().
 *
 * Ownership, which is the subtle part:
 * - The connection owns its regions. kvswap_region_release() frees one;
 *   kvswap_close() frees those left.
 * - The caller owns a struct kvswap_req from kvswap_swap_out/in() until
 *   kvswap_req_free(). A request is one wire request (a v1 swap: its
 *   embedded part0) or several (a batch split into packets: its parts).
 *   While a part is queued or in flight, the connection also points at
 *   it (from its table of outstanding wire requests, by id), and the
 *   request points back at the connection.
 * - When the final event of its last part arrives, the request leaves the
 *   table and forgets the connection (req->k = NULL): from then on only
 *   the caller points at it, and nothing the connection does later can
 *   reach it.
 * - kvswap_req_free() on a request still in flight does not free it: it
 *   marks it orphaned and the connection becomes its sole owner. The
 *   orphan stays in the table so that its remaining events are recognised
 *   and dropped, and it is freed by its last final event or by the end of
 *   the connection.
 * - When the connection ends (kvswap_close(), the peer closing, a protocol
 *   violation), every request in the table is finished with an error and
 *   forgotten the same way, and orphans are freed. So a request handle the
 *   caller still holds stays valid, and "done", after kvswap_close(); the
 *   caller frees it as usual.
 *
 * Synchronous calls (everything but the swaps) wait for their reply in a
 * single slot of the connection (sync_id/sync_ev): a connection is not
 * thread-safe, so at most one such call is pending at a time.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "kvswap.h"
#include "kvswap-private.h"
#include "kvswap-protocol.h"
#include "monotonic.h"

/*
 * kvswap.h is installed and self-contained, so it spells the SwapOut flags
 * out again: they must stay the protocol's (proto/kvswap-protocol.h).
 */
_Static_assert(KVSWAP_DURABLE == KVS_FLAG_DURABLE,
	       "KVSWAP_DURABLE differs from KVS_FLAG_DURABLE");
_Static_assert(KVSWAP_CACHE == KVS_FLAG_CACHE,
	       "KVSWAP_CACHE differs from KVS_FLAG_CACHE");
_Static_assert(KVSWAP_PINNED == KVS_FLAG_PINNED,
	       "KVSWAP_PINNED differs from KVS_FLAG_PINNED");

/*
 * Packets are at most KVS_MAX_MESSAGE bytes until HelloReply says
 * otherwise. Our buffers never grow past MAX_BUFFER_SIZE, whatever the
 * daemon announces.
 */
#define MAX_BUFFER_SIZE		(1u << 20)
#define CLIENT_NAME_MAX		64

/*
 * kvswap_connect() has no connection to hold the message of its failure,
 * so that one goes to a per-thread buffer, returned by
 * kvswap_last_error(NULL), in the manner of dlerror(). It is the only
 * state outside a connection.
 */
static _Thread_local char connect_error[ERROR_MAX];

/* --- errors --------------------------------------------------------------- */

void kvs_set_error(struct kvswap *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(k->last_error, sizeof(k->last_error), fmt, ap);
	va_end(ap);
}

static const char *errstr(int code, char *buf, size_t len)
{
	return strerror_r(code, buf, len);
}

int kvs_event_code(const Kvswap__V1__Error *e)
{
	if (!e->has_code || e->code <= 0 || e->code >= 4096)
		return EIO;
	return e->code;
}

void kvs_set_daemon_error(struct kvswap *k, const Kvswap__V1__Error *e)
{
	char buf[128];

	if (e->message && e->message[0])
		kvs_set_error(k, "%s", e->message);
	else
		kvs_set_error(k, "%s", errstr(kvs_event_code(e), buf, sizeof(buf)));
}

/* --- helpers -------------------------------------------------------------- */

/* timeout_ms as taken by the API (negative: forever) to a deadline. */
int64_t kvs_deadline_after(int timeout_ms)
{
	if (timeout_ms < 0)
		return DEADLINE_NEVER;
	return (int64_t)now_ns() + (int64_t)timeout_ms * 1000000;
}

/* A copy of len bytes; never NULL on success, even for len 0. */
void *kvs_memdup(const void *p, size_t len)
{
	void *d = malloc(len ? len : 1);

	if (d && len)
		memcpy(d, p, len);
	return d;
}

bool kvs_bytes_ok(const void *p, size_t len)
{
	return p || len == 0;
}

/* --- outstanding requests ------------------------------------------------- */

static struct part **bucket(struct kvswap *k, uint64_t id)
{
	return &k->reqs[id & (REQ_BUCKETS - 1)];
}

static void table_add(struct kvswap *k, struct part *p)
{
	struct part **b = bucket(k, p->id);

	p->hnext = *b;
	*b = p;
}

static struct part *table_find(struct kvswap *k, uint64_t id)
{
	struct part *p;

	for (p = *bucket(k, id); p; p = p->hnext)
		if (p->id == id)
			return p;
	return NULL;
}

static void table_remove(struct kvswap *k, struct part *part)
{
	struct part **p;

	for (p = bucket(k, part->id); *p; p = &(*p)->hnext) {
		if (*p == part) {
			*p = part->hnext;
			break;
		}
	}
	part->hnext = NULL;
}

/*
 * A request with room for nseg segment reports and one part (part0), the
 * only one of a v1 swap. Owner: the caller of the swap call, which frees
 * it with kvswap_req_free() (req_destroy() inside the library).
 */
static struct kvswap_req *req_new(uint32_t nseg,
				  Kvswap__V1__Event__BodyCase reply)
{
	struct kvswap_req *req;
	uint32_t i;

	req = calloc(1, sizeof(*req) +
		     (size_t)nseg * (sizeof(int32_t) + sizeof(uint32_t)));
	if (!req)
		return NULL;
	req->seg_status = (int32_t *)(req + 1);
	req->fifo = (uint32_t *)(req->seg_status + nseg);
	req->nseg = nseg;
	req->reply = reply;
	req->status = -EINPROGRESS;
	req->part0.req = req;
	req->parts = &req->part0;
	req->parts_left = 1;
	for (i = 0; i < nseg; i++)
		req->seg_status[i] = SEG_PENDING;
	return req;
}

struct kvswap_req *kvs_req_new(uint32_t nseg)
{
	struct kvswap_req *req = req_new(nseg, KVSWAP__V1__EVENT__BODY_BATCH);

	if (req) {
		/* A batch's parts come later, one per packet. */
		req->parts = NULL;
		req->parts_left = 0;
	}
	return req;
}

static void req_destroy(struct kvswap_req *req)
{
	struct part *p, *next;

	for (p = req->parts; p; p = next) {
		next = p->next;
		free(p->gmask);
		free(p->pkt);
		if (p != &req->part0)
			free(p);
	}
	kvs_batch_free(req->b);
	free(req->metadata);
	free(req);
}

void kvs_req_finish(struct kvswap *k, struct kvswap_req *req, int status)
{
	struct part *p;

	for (p = req->parts; p; p = p->next) {
		if (p->state == PART_QUEUED)
			kvs_unqueue(k, p);
		if (p->state == PART_QUEUED || p->state == PART_SENT)
			table_remove(k, p);
		p->state = PART_DONE;
	}
	req->parts_left = 0;
	if (req->orphan) {
		req_destroy(req);
		return;
	}
	req->k = NULL;
	req->done = true;
	req->status = status;
}

void kvs_part_end(struct kvswap *k, struct part *p)
{
	struct kvswap_req *req = p->req;

	if (p->state == PART_QUEUED)
		kvs_unqueue(k, p);
	if (p->state == PART_QUEUED || p->state == PART_SENT)
		table_remove(k, p);
	assert(p->state != PART_DONE && req->parts_left > 0);
	p->state = PART_DONE;
	free(p->pkt);
	p->pkt = NULL;
	p->pkt_len = 0;
	if (--req->parts_left)
		return;
	kvs_req_finish(k, req, req->b ? kvs_batch_status(req) : 0);
}

static void txq_clear(struct kvswap *k)
{
	struct txpkt *t;

	while ((t = k->txq_head)) {
		k->txq_head = t->next;
		free(t);
	}
	k->txq_tail = NULL;
	k->txq_n = 0;
}

/* Finishes every outstanding request and a pending call with `err`. */
static void fail_all(struct kvswap *k, int err)
{
	struct kvswap_req *req;
	size_t i;

	for (i = 0; i < REQ_BUCKETS; i++) {
		while (k->reqs[i]) {
			req = k->reqs[i]->req;
			kvs_req_finish(k, req,
				       req->b ? kvs_batch_abort(req, err) : err);
		}
	}
	txq_clear(k);
	if (k->sync_id && !k->sync_ev && !k->sync_err)
		k->sync_err = err;
}

/*
 * The connection is over (peer gone, or a protocol violation that may have
 * lost an event): pending requests fail with `err`, later calls with
 * -ENOTCONN. The fd stays open until kvswap_close(), so that the number
 * cannot be reused under a caller's poll set.
 */
static int conn_kill(struct kvswap *k, int err)
{
	k->dead = true;
	fail_all(k, err);
	return err;
}

int kvs_check_conn(struct kvswap *k)
{
	if (!k)
		return -EINVAL;
	if (k->dead)
		return -ENOTCONN;
	return 0;
}

/* --- receiving ------------------------------------------------------------ */

static void close_passed_fds(struct msghdr *msg)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n, i;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
	}
}

/*
 * One recvmmsg() into the receive slots: blocking for the first packet
 * when `block` (the socket is blocking unless the caller changed it),
 * never for the others. Returns the number of packets, -EAGAIN, or
 * another negative errno (the connection is killed on a reset). Sets
 * rx_empty when the socket is drained, so that the next read waits first.
 */
static int rx_read(struct kvswap *k, bool block)
{
	int flags = MSG_CMSG_CLOEXEC | (block ? MSG_WAITFORONE : MSG_DONTWAIT);
	char ebuf[128];
	unsigned i;
	int n;

	assert(k->rx_next == k->rx_n);
	for (i = 0; i < RX_SLOTS; i++) {
		struct msghdr *m = &k->rx_mm[i].msg_hdr;

		k->rx_iov[i].iov_base = k->rxbuf + (size_t)i * k->bufsize;
		k->rx_iov[i].iov_len = k->bufsize;
		memset(m, 0, sizeof(*m));
		m->msg_iov = &k->rx_iov[i];
		m->msg_iovlen = 1;
		m->msg_control = k->rx_ctl[i].buf;
		m->msg_controllen = sizeof(k->rx_ctl[i].buf);
	}
	do
		n = recvmmsg(k->fd, k->rx_mm, RX_SLOTS, flags, NULL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = errno;

		if (err == EAGAIN || err == EWOULDBLOCK) {
			k->rx_empty = true;
			return -EAGAIN;
		}
		kvs_set_error(k, "receive from kvswapd: %s",
			      errstr(err, ebuf, sizeof(ebuf)));
		if (err == ECONNRESET || err == EPIPE || err == ENOTCONN)
			return conn_kill(k, -ECONNRESET);
		return -err;
	}
	/* The daemon sends no fds; never leak any it might. */
	for (i = 0; i < (unsigned)n; i++)
		close_passed_fds(&k->rx_mm[i].msg_hdr);
	k->rx_n = (unsigned)n;
	k->rx_next = 0;
	k->rx_empty = n < RX_SLOTS;
	return n;
}

/*
 * Decodes the next received packet. Returns 0 with *ret_ev set, -EAGAIN if
 * none is left, or another negative errno; the connection is killed on
 * end of file, truncation and undecodable events.
 */
static int rx_take(struct kvswap *k, Kvswap__V1__Event **ret_ev)
{
	Kvswap__V1__Event *ev;
	struct mmsghdr *m;
	unsigned i;
	size_t n;

	if (k->rx_next == k->rx_n)
		return -EAGAIN;
	i = k->rx_next++;
	m = &k->rx_mm[i];
	n = m->msg_len;
	if (n == 0) {
		/* A preceding id-0 error event explains the close better. */
		if (!k->closing)
			kvs_set_error(k, "kvswapd closed the connection");
		return conn_kill(k, -ECONNRESET);
	}
	if (m->msg_hdr.msg_flags & MSG_TRUNC) {
		kvs_set_error(k, "event from kvswapd larger than %zu bytes",
			      k->bufsize);
		return conn_kill(k, -EPROTO);
	}
	ev = kvswap__v1__event__unpack(NULL, n, k->rx_iov[i].iov_base);
	if (!ev) {
		kvs_set_error(k, "undecodable event from kvswapd (%zu bytes)", n);
		return conn_kill(k, -EPROTO);
	}
	*ret_ev = ev;
	return 0;
}

static bool is_final(const Kvswap__V1__Event *ev)
{
	if (ev->body_case == KVSWAP__V1__EVENT__BODY_SEGMENT ||
	    ev->body_case == KVSWAP__V1__EVENT__BODY_GROUP)
		return false;
	if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR &&
	    (ev->error->has_segment || ev->error->has_entry))
		return false;
	return true;
}

void kvs_req_segment(struct kvswap_req *req, uint32_t idx, int status)
{
	/* Out of range or repeated: the daemon misbehaves; ignore it. */
	if (idx >= req->nseg || req->seg_status[idx] != SEG_PENDING)
		return;
	req->seg_status[idx] = status;
	req->fifo[req->nreported++] = idx;
}

/* An event of a v1 swap. */
static void dispatch_v1(struct kvswap *k, struct kvswap_req *req,
			const Kvswap__V1__Event *ev)
{
	const Kvswap__V1__SwapInReply *in;

	switch (ev->body_case) {
	case KVSWAP__V1__EVENT__BODY_SEGMENT:
		if (ev->segment->has_index)
			kvs_req_segment(req, ev->segment->index, 0);
		return;
	case KVSWAP__V1__EVENT__BODY_ERROR:
		kvs_set_daemon_error(k, ev->error);
		if (ev->error->has_segment)
			kvs_req_segment(req, ev->error->segment,
					-kvs_event_code(ev->error));
		else
			kvs_req_finish(k, req, -kvs_event_code(ev->error));
		return;
	default:
		break;
	}
	if (ev->body_case != req->reply) {
		kvs_set_error(k, "kvswapd answered request %llu with event %d",
			      (unsigned long long)req->part0.id,
			      (int)ev->body_case);
		kvs_req_finish(k, req, -EPROTO);
		return;
	}
	if (ev->body_case == KVSWAP__V1__EVENT__BODY_SWAP_IN) {
		in = ev->swap_in;
		if (in->has_metadata && in->metadata.len) {
			req->metadata = kvs_memdup(in->metadata.data,
						   in->metadata.len);
			if (!req->metadata) {
				kvs_set_error(k, "out of memory for metadata");
				kvs_req_finish(k, req, -ENOMEM);
				return;
			}
			req->metadata_len = in->metadata.len;
		}
	}
	kvs_req_finish(k, req, 0);
}

static void dispatch_part(struct kvswap *k, struct part *p,
			  const Kvswap__V1__Event *ev)
{
	struct kvswap_req *req = p->req;

	if (req->orphan) {
		if (!is_final(ev))
			return;
		if (req->b)
			kvs_part_end(k, p);
		else
			kvs_req_finish(k, req, 0);
		return;
	}
	if (req->b)
		kvs_batch_event(k, p, ev);
	else
		dispatch_v1(k, req, ev);
}

/*
 * Routes one event to its request, the pending call or the connection.
 * Consumes ev: frees it, or hands it to the pending call.
 */
static void dispatch(struct kvswap *k, Kvswap__V1__Event *ev)
{
	uint64_t id = ev->has_id ? ev->id : 0;
	struct part *p;

	if (id == 0) {
		/*
		 * About the connection (a packet the daemon could not
		 * decode, one too large): the daemon closes the connection
		 * next, and the end of file finishes the async requests.
		 */
		if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR) {
			kvs_set_daemon_error(k, ev->error);
			k->closing = true;
			if (k->sync_id && !k->sync_ev && !k->sync_err)
				k->sync_err = -kvs_event_code(ev->error);
		}
		goto out_free;
	}
	if (id == k->sync_id && !k->sync_ev && !k->sync_err) {
		if (!is_final(ev))
			goto out_free;
		k->sync_ev = ev;
		return;
	}
	/*
	 * Unknown ids are those of abandoned calls and of internal requests
	 * (Cancel, Delete), or bogus: dropped.
	 */
	p = table_find(k, id);
	if (p)
		dispatch_part(k, p, ev);
out_free:
	kvswap__v1__event__free_unpacked(ev, NULL);
}

/*
 * Waits until the socket is readable. Returns 1, 0 once the deadline has
 * passed, or a negative errno.
 */
static int wait_readable(struct kvswap *k, int64_t deadline)
{
	struct pollfd pfd = { .fd = k->fd, .events = POLLIN };
	int64_t left;
	int ms, r;

	for (;;) {
		if (deadline == DEADLINE_NEVER) {
			ms = -1;
		} else {
			left = deadline - (int64_t)now_ns();
			if (left <= 0)
				ms = 0;
			else if (left / 1000000 >= INT_MAX)
				ms = INT_MAX;
			else
				ms = (int)((left + 999999) / 1000000);
		}
		r = poll(&pfd, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * Reads more packets, waiting until `deadline` (DEADLINE_NOW: only if the
 * last read did not drain the socket). Returns > 0 when packets came, 0 on
 * timeout, or a negative errno.
 */
static int rx_more(struct kvswap *k, int64_t deadline)
{
	bool tried = false;
	int r;

	if (!k->rx_empty) {
		r = rx_read(k, false);
		if (r != -EAGAIN)
			return r;
		tried = true;
	}
	if (deadline == DEADLINE_NOW)
		return 0;
	/*
	 * About to wait: requests still queued go first, or this could wait
	 * for the answer to a request never sent. Sending may dispatch
	 * events (wait_writable), so the caller looks at the slots again.
	 */
	if (k->txq_n && !k->flushing) {
		r = kvs_flush(k);
		if (r < 0)
			return r;
		if (k->rx_next < k->rx_n)
			return 1;
	}
	if (deadline == DEADLINE_NEVER) {
		/* One call per wakeup: recvmmsg() itself waits. */
		r = rx_read(k, true);
		if (r != -EAGAIN)
			return r;
	} else if ((int64_t)now_ns() >= deadline) {
		if (tried)
			return 0;
		r = rx_read(k, false);
		return r == -EAGAIN ? 0 : r;
	}
	r = wait_readable(k, deadline);
	if (r <= 0)
		return r;
	r = rx_read(k, false);
	return r == -EAGAIN ? 1 : r;
}

int kvs_pump(struct kvswap *k, int64_t deadline)
{
	Kvswap__V1__Event *ev = NULL;
	int r;

	for (;;) {
		if (k->dead)
			return -ENOTCONN;
		r = rx_take(k, &ev);
		if (r == 0) {
			dispatch(k, ev);
			return 1;
		}
		if (r != -EAGAIN)
			return r;
		r = rx_more(k, deadline);
		if (r <= 0)
			return r;
	}
}

/*
 * Dispatches whatever is already queued, e.g. before giving up on a peer:
 * reads the socket even if the last read drained it.
 */
static void drain(struct kvswap *k)
{
	k->rx_empty = false;
	while (kvs_pump(k, DEADLINE_NOW) > 0)
		;
}

/* Internal requests queued while dispatching go out, unless corked. */
void kvs_settle(struct kvswap *k)
{
	if (k && !k->dead && !k->corked && k->txq_n)
		kvs_flush(k);
}

/* --- sending -------------------------------------------------------------- */

/*
 * Waits until the socket may take a packet, dispatching the events that
 * arrive meanwhile. Returns 0, or a negative errno (-ECONNRESET if the
 * connection ended).
 */
static int wait_writable(struct kvswap *k)
{
	struct pollfd pfd = { .fd = k->fd, .events = POLLIN | POLLOUT };
	char ebuf[128];
	int r;

	for (;;) {
		r = poll(&pfd, 1, -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			kvs_set_error(k, "poll: %s",
				      errstr(-r, ebuf, sizeof(ebuf)));
			return r;
		}
		if (pfd.revents & POLLIN) {
			drain(k);
			if (k->dead)
				return -ECONNRESET;
		}
		/* POLLHUP and POLLERR: the retried send reports them. */
		if (pfd.revents & (POLLOUT | POLLHUP | POLLERR))
			return 0;
	}
}

/* A send failed with err (positive): the connection may be over. */
static int send_failed(struct kvswap *k, int err)
{
	char ebuf[128];

	if (err == EPIPE || err == ECONNRESET || err == ENOTCONN) {
		/* Events queued before the close still count. */
		drain(k);
		if (!k->dead) {
			kvs_set_error(k, "kvswapd closed the connection");
			conn_kill(k, -ECONNRESET);
		}
		return -ECONNRESET;
	}
	kvs_set_error(k, "send to kvswapd: %s", errstr(err, ebuf, sizeof(ebuf)));
	return -err;
}

int kvs_queue(struct kvswap *k, Kvswap__V1__Request *rq, struct part *p)
{
	struct txpkt *t;
	size_t len;

	rq->has_id = true;
	rq->id = k->next_id;
	len = kvswap__v1__request__get_packed_size(rq);
	if (len > k->max_send) {
		kvs_set_error(k, "request of %zu bytes exceeds the maximum message size %zu",
			      len, k->max_send);
		return -EMSGSIZE;
	}
	t = malloc(sizeof(*t) + len);
	if (!t) {
		kvs_set_error(k, "out of memory");
		return -ENOMEM;
	}
	kvswap__v1__request__pack(rq, t->data);
	t->len = len;
	t->part = p;
	t->next = NULL;
	if (k->txq_tail)
		k->txq_tail->next = t;
	else
		k->txq_head = t;
	k->txq_tail = t;
	k->txq_n++;
	k->next_id++;
	if (p) {
		assert(p->state == PART_NEW);
		p->id = rq->id;
		p->state = PART_QUEUED;
		table_add(k, p);
	}
	return 0;
}

void kvs_unqueue(struct kvswap *k, struct part *p)
{
	struct txpkt **tp, *t, *prev = NULL;

	for (tp = &k->txq_head; (t = *tp); prev = t, tp = &t->next) {
		if (t->part != p)
			continue;
		*tp = t->next;
		if (k->txq_tail == t)
			k->txq_tail = prev;
		k->txq_n--;
		free(t);
		return;
	}
}

/*
 * SEQPACKET sends whole packets or nothing, so a retry is safe. The
 * daemon may stop reading while its events to us are stuck (kvswapd
 * does), so waiting for room without reading them would deadlock:
 * wait_writable() dispatches them meanwhile (and those may queue more).
 */
int kvs_flush(struct kvswap *k)
{
	struct mmsghdr mm[TX_BATCH];
	struct iovec iov[TX_BATCH];
	struct txpkt *t;
	int n, sent, i, r = 0;

	if (k->flushing)
		return 0;	/* the running flush sends it all */
	k->flushing = true;
	while (k->txq_head && !k->dead) {
		for (n = 0, t = k->txq_head; t && n < TX_BATCH; t = t->next, n++) {
			iov[n] = (struct iovec){ t->data, t->len };
			memset(&mm[n], 0, sizeof(mm[n]));
			mm[n].msg_hdr.msg_iov = &iov[n];
			mm[n].msg_hdr.msg_iovlen = 1;
		}
		sent = sendmmsg(k->fd, mm, (unsigned)n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				r = wait_writable(k);
				if (r < 0)
					break;
				continue;
			}
			/* The stream of requests is broken: so is the connection. */
			r = send_failed(k, errno);
			if (!k->dead)
				conn_kill(k, r);
			break;
		}
		for (i = 0; i < sent; i++) {
			t = k->txq_head;
			k->txq_head = t->next;
			if (!k->txq_head)
				k->txq_tail = NULL;
			k->txq_n--;
			if (t->part && t->part->state == PART_QUEUED)
				t->part->state = PART_SENT;
			free(t);
		}
	}
	k->flushing = false;
	if (!r && k->dead)
		r = -ENOTCONN;
	return r;
}

/*
 * Packs and sends `rq` under a fresh id, with `fd` in SCM_RIGHTS when
 * fd >= 0, after whatever is queued. Returns 0 with *ret_id set, or a
 * negative errno.
 */
static int send_request(struct kvswap *k, Kvswap__V1__Request *rq, int fd,
			uint64_t *ret_id)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	size_t len;
	ssize_t n;
	int err;

	/* Requests go out in the order they were made. */
	if (k->txq_n) {
		err = kvs_flush(k);
		if (err < 0)
			return err;
	}
	rq->has_id = true;
	rq->id = k->next_id;
	len = kvswap__v1__request__get_packed_size(rq);
	if (len > k->max_send) {
		kvs_set_error(k, "request of %zu bytes exceeds the maximum message size %zu",
			      len, k->max_send);
		return -EMSGSIZE;
	}
	kvswap__v1__request__pack(rq, k->txbuf);
	iov.iov_base = k->txbuf;
	iov.iov_len = len;
	if (fd >= 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	/* As in kvs_flush(): whole packets, events read while waiting. */
	for (;;) {
		n = sendmsg(k->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0 || (errno != EINTR && errno != EAGAIN &&
			       errno != EWOULDBLOCK))
			break;
		if (errno != EINTR) {
			err = wait_writable(k);
			if (err < 0)
				return err;
		}
	}
	if (n < 0)
		return send_failed(k, errno);
	if ((size_t)n != len) {
		kvs_set_error(k, "short send to kvswapd (%zd of %zu bytes)",
			      n, len);
		return -EIO;
	}
	*ret_id = k->next_id++;
	return 0;
}

/*
 * A synchronous call: sends `rq` and dispatches events until its final
 * event. On success *ret_ev is a reply of body `expect`, which the caller
 * frees with kvswap__v1__event__free_unpacked(). An error event returns
 * its negated code, with its message in last_error.
 */
static int call(struct kvswap *k, Kvswap__V1__Request *rq, int fd,
		Kvswap__V1__Event__BodyCase expect,
		Kvswap__V1__Event **ret_ev)
{
	Kvswap__V1__Event *ev;
	uint64_t id;
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	r = send_request(k, rq, fd, &id);
	if (r < 0)
		return r;
	k->sync_id = id;
	k->sync_ev = NULL;
	k->sync_err = 0;
	while (!k->sync_ev && !k->sync_err) {
		r = kvs_pump(k, DEADLINE_NEVER);
		if (r < 0) {
			if (!k->sync_err)
				k->sync_err = r;
			break;
		}
	}
	ev = k->sync_ev;
	r = k->sync_err;
	k->sync_id = 0;
	k->sync_ev = NULL;
	k->sync_err = 0;
	kvs_settle(k);
	if (!ev)
		return r;
	if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR) {
		kvs_set_daemon_error(k, ev->error);
		r = -kvs_event_code(ev->error);
		goto out_free;
	}
	if (ev->body_case != expect) {
		kvs_set_error(k, "kvswapd answered with event %d, expected %d",
			      (int)ev->body_case, (int)expect);
		r = -EPROTO;
		goto out_free;
	}
	*ret_ev = ev;
	return 0;
out_free:
	kvswap__v1__event__free_unpacked(ev, NULL);
	return r;
}

/* --- connection ----------------------------------------------------------- */

/*
 * RX_SLOTS receive buffers of `size` bytes, for one recvmmsg(): a packet
 * may be as large as the daemon's maximum. Pages never written stay
 * unbacked, so small events cost the memory they use.
 */
static int alloc_buffers(struct kvswap *k, size_t size)
{
	uint8_t *rx, *tx;

	assert(k->rx_next == k->rx_n);
	rx = malloc(size * RX_SLOTS);
	if (!rx)
		return -ENOMEM;
	tx = malloc(size);
	if (!tx) {
		free(rx);
		return -ENOMEM;
	}
	free(k->rxbuf);
	free(k->txbuf);
	k->rxbuf = rx;
	k->txbuf = tx;
	k->bufsize = size;
	return 0;
}

/* Our name for the daemon's log: at most 64 bytes, cut on a UTF-8 boundary. */
static char *client_name(char *buf, size_t size)
{
	const char *name = program_invocation_short_name;
	size_t len = strlen(name);

	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(buf, name, len);
	buf[len] = '\0';
	return buf;
}

static int hello(struct kvswap *k)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Hello h = KVSWAP__V1__HELLO__INIT;
	Kvswap__V1__HelloReply *hr;
	Kvswap__V1__Event *ev;
	struct kvswap_limits *l = &k->limits;
	char name[CLIENT_NAME_MAX + 1];
	size_t size;
	int r;

	h.has_version = true;
	h.version = KVS_PROTOCOL_VERSION;
	h.client_name = client_name(name, sizeof(name));
	rq.body_case = KVSWAP__V1__REQUEST__BODY_HELLO;
	rq.hello = &h;
	r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_HELLO, &ev);
	if (r < 0)
		return r;
	hr = ev->hello;
	if (!hr->has_version || hr->version != KVS_PROTOCOL_VERSION) {
		kvs_set_error(k, "kvswapd speaks protocol version %u, libkvswap %u",
			  hr->version, KVS_PROTOCOL_VERSION);
		r = -EPROTONOSUPPORT;
		goto out_free;
	}
	memset(l, 0, sizeof(*l));
	l->version = hr->version;
	l->max_message_size = hr->has_max_message_size ?
		hr->max_message_size : KVS_MAX_MESSAGE;
	l->max_key_length = hr->max_key_length;
	l->max_metadata_length = hr->max_metadata_length;
	l->max_segments = hr->max_segments;
	l->max_regions = hr->max_regions;
	l->max_lookup_keys = hr->max_lookup_keys;
	l->alignment = hr->alignment;
	l->block_size = hr->block_size;
	l->store_files = hr->store_files;
	l->capacity = hr->capacity;
	if (hr->daemon)
		snprintf(l->daemon, sizeof(l->daemon), "%s", hr->daemon);
	/* Daemons without tenants leave these out. */
	snprintf(k->tenant, sizeof(k->tenant), "%s", hr->tenant ? hr->tenant : "");
	k->admin = hr->has_admin && hr->admin;
	/* Daemons without batches leave these out: all 0. */
	memset(&k->blimits, 0, sizeof(k->blimits));
	if (hr->has_max_batch_entries && hr->has_max_batch_segments &&
	    hr->has_max_groups && hr->max_batch_entries &&
	    hr->max_batch_segments && hr->max_groups) {
		k->blimits.max_entries = hr->max_batch_entries;
		k->blimits.max_segments = hr->max_batch_segments;
		k->blimits.max_groups = hr->max_groups;
	}

	/* The daemon may receive and send packets up to its maximum. */
	size = l->max_message_size;
	if (size < KVS_MAX_MESSAGE)
		size = KVS_MAX_MESSAGE;
	if (size > MAX_BUFFER_SIZE)
		size = MAX_BUFFER_SIZE;
	if (size > k->bufsize) {
		r = alloc_buffers(k, size);
		if (r < 0) {
			kvs_set_error(k, "out of memory for buffers");
			goto out_free;
		}
	}
	k->max_send = l->max_message_size < k->bufsize ?
		l->max_message_size : k->bufsize;
	r = 0;
out_free:
	kvswap__v1__event__free_unpacked(ev, NULL);
	return r;
}

static void conn_free(struct kvswap *k)
{
	struct kvswap_region *r;

	fail_all(k, -ECANCELED);
	txq_clear(k);
	while ((r = k->regions)) {
		k->regions = r->next;
		if (r->created && r->addr)
			munmap(r->addr, r->size);
		close(r->fd);
		free(r);
	}
	if (k->fd >= 0)
		close(k->fd);
	free(k->rxbuf);
	free(k->txbuf);
	free(k);
}

/*
 * Connects and says Hello. A failure's message is kept per thread for
 * kvswap_last_error(NULL), as there is no connection to hold it.
 */
KVSWAP_EXPORT int kvswap_connect(const char *path, struct kvswap **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct kvswap *k;
	char ebuf[128];
	int r;

	connect_error[0] = '\0';
	if (!ret) {
		snprintf(connect_error, sizeof(connect_error),
			 "kvswap_connect: no place for the connection");
		return -EINVAL;
	}
	if (!path)
		path = getenv("KVSWAP_SOCKET");
	if (!path || !path[0])
		path = KVSWAP_DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(connect_error, sizeof(connect_error),
			 "socket path longer than %zu bytes: %s",
			 sizeof(sa.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);

	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(connect_error, sizeof(connect_error), "out of memory");
		return -ENOMEM;
	}
	k->fd = -1;
	k->next_id = 1;
	k->limits.max_message_size = KVS_MAX_MESSAGE;
	k->max_send = KVS_MAX_MESSAGE;
	r = alloc_buffers(k, KVS_MAX_MESSAGE);
	if (r < 0) {
		kvs_set_error(k, "out of memory");
		goto out_free;
	}
	k->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (k->fd < 0) {
		r = -errno;
		kvs_set_error(k, "socket: %s", errstr(-r, ebuf, sizeof(ebuf)));
		goto out_free;
	}
	/* AF_UNIX connect is not left half-done by a signal: retry. */
	while (connect(k->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		kvs_set_error(k, "connect %s: %s", path,
			  errstr(-r, ebuf, sizeof(ebuf)));
		goto out_free;
	}
	r = hello(k);
	if (r < 0)
		goto out_free;
	*ret = k;
	return 0;
out_free:
	if (k->last_error[0])
		snprintf(connect_error, sizeof(connect_error), "%s",
			 k->last_error);
	else
		snprintf(connect_error, sizeof(connect_error), "connect %s: %s",
			 path, errstr(-r, ebuf, sizeof(ebuf)));
	conn_free(k);
	return r;
}

/*
 * Requests still in flight finish with -ECANCELED (the daemon may still
 * complete them) and stay valid for the caller to free; regions are freed.
 */
KVSWAP_EXPORT void kvswap_close(struct kvswap *k)
{
	if (!k)
		return;
	conn_free(k);
}

KVSWAP_EXPORT const struct kvswap_limits *kvswap_limits(const struct kvswap *k)
{
	return k ? &k->limits : NULL;
}

KVSWAP_EXPORT int kvswap_fd(const struct kvswap *k)
{
	return k ? k->fd : -EBADF;
}

/*
 * Drains every event already queued after the first, so that an
 * edge-triggered caller misses nothing. If the connection ends after some
 * events were handled, their count is returned and the next call returns
 * -ENOTCONN (the requests themselves have already been finished).
 */
KVSWAP_EXPORT int kvswap_process(struct kvswap *k, int timeout_ms)
{
	int n = 0, r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	r = kvs_pump(k, kvs_deadline_after(timeout_ms));
	if (r <= 0) {
		kvs_settle(k);
		return r;
	}
	/*
	 * The rest of what one recvmmsg() took, and more reads only while
	 * they come back full: a short read drained the socket, and a packet
	 * arriving later makes it readable again, so an edge-triggered
	 * caller still misses nothing.
	 */
	n = 1;
	while (n < INT_MAX && kvs_pump(k, DEADLINE_NOW) > 0)
		n++;
	kvs_settle(k);
	return n;
}

KVSWAP_EXPORT void kvswap_cork(struct kvswap *k)
{
	if (k)
		k->corked = true;
}

KVSWAP_EXPORT int kvswap_flush(struct kvswap *k)
{
	int r = kvs_check_conn(k);

	if (r < 0)
		return r;
	return k->txq_n ? kvs_flush(k) : 0;
}

KVSWAP_EXPORT int kvswap_uncork(struct kvswap *k)
{
	if (!k)
		return -EINVAL;
	k->corked = false;
	return kvswap_flush(k);
}

KVSWAP_EXPORT int kvswap_batch_limits(const struct kvswap *k,
				      struct kvswap_batch_limits *ret)
{
	if (!k || !ret)
		return -EINVAL;
	if (!k->blimits.max_entries)
		return -EOPNOTSUPP;
	*ret = k->blimits;
	return 0;
}

/* kvswap_last_error(NULL): why this thread's last kvswap_connect() failed. */
KVSWAP_EXPORT const char *kvswap_last_error(const struct kvswap *k)
{
	return k ? k->last_error : connect_error;
}

/* --- regions -------------------------------------------------------------- */

/* Sends RegisterRegion with `fd`; on success *ret_id is the region id. */
static int register_region(struct kvswap *k, int fd, size_t size,
			   uint32_t *ret_id)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__RegisterRegion rr = KVSWAP__V1__REGISTER_REGION__INIT;
	Kvswap__V1__Event *ev;
	int r;

	rr.has_size = true;
	rr.size = size;
	rq.body_case = KVSWAP__V1__REQUEST__BODY_REGISTER_REGION;
	rq.register_region = &rr;
	r = call(k, &rq, fd, KVSWAP__V1__EVENT__BODY_REGION, &ev);
	if (r < 0)
		return r;
	if (!ev->region->has_region ||
	    (ev->region->has_size && ev->region->size != size)) {
		kvs_set_error(k, "kvswapd registered a region of %llu bytes, not %zu",
			  (unsigned long long)ev->region->size, size);
		r = -EPROTO;
		goto out_free;
	}
	*ret_id = ev->region->region;
	r = 0;
out_free:
	kvswap__v1__event__free_unpacked(ev, NULL);
	return r;
}

/* Registers a region built by the caller and links it to the connection. */
static int region_add(struct kvswap *k, struct kvswap_region *reg)
{
	int r;

	r = register_region(k, reg->fd, reg->size, &reg->id);
	if (r < 0)
		return r;
	reg->k = k;
	reg->next = k->regions;
	k->regions = reg;
	return 0;
}

/* The system's default huge page size (/proc/meminfo), or 0. */
static size_t huge_page_size(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	size_t kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Hugepagesize: %zu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

KVSWAP_EXPORT int kvswap_region_create(struct kvswap *k, size_t size,
				       struct kvswap_region **ret)
{
	return kvswap_region_create_flags(k, size, 0, ret);
}

KVSWAP_EXPORT int kvswap_region_create_flags(struct kvswap *k, size_t size,
					     unsigned flags,
					     struct kvswap_region **ret)
{
	bool huge = flags & KVSWAP_REGION_HUGEPAGES;
	struct kvswap_region *reg;
	char ebuf[128];
	long page;
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!ret || size == 0 || (flags & ~KVSWAP_REGION_HUGEPAGES)) {
		kvs_set_error(k, "region_create: size must be at least 1, flags "
			      "KVSWAP_REGION_HUGEPAGES or 0");
		return -EINVAL;
	}
	page = huge ? (long)huge_page_size() : sysconf(_SC_PAGESIZE);
	if (huge && page <= 0) {
		kvs_set_error(k, "region_create: this system has no huge pages");
		return -EOPNOTSUPP;
	}
	if (page <= 0)
		page = 4096;
	if (size > (size_t)INT64_MAX - (size_t)page) {
		kvs_set_error(k, "region_create: size %zu too large", size);
		return -EINVAL;
	}
	size = (size + (size_t)page - 1) & ~((size_t)page - 1);

	reg = calloc(1, sizeof(*reg));
	if (!reg) {
		kvs_set_error(k, "out of memory");
		return -ENOMEM;
	}
	reg->created = true;
	reg->size = size;
	reg->fd = memfd_create("kvswap-region", MFD_CLOEXEC | MFD_ALLOW_SEALING |
			       (huge ? MFD_HUGETLB : 0));
	if (reg->fd < 0) {
		r = -errno;
		kvs_set_error(k, "memfd_create: %s",
			  errstr(-r, ebuf, sizeof(ebuf)));
		goto out_free;
	}
	if (ftruncate(reg->fd, (off_t)size) < 0) {
		r = -errno;
		kvs_set_error(k, "ftruncate memfd to %zu bytes: %s", size,
			  errstr(-r, ebuf, sizeof(ebuf)));
		goto out_close;
	}
	if (fcntl(reg->fd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		kvs_set_error(k, "seal memfd: %s", errstr(-r, ebuf, sizeof(ebuf)));
		goto out_close;
	}
	/* Huge pages are taken (and counted) at fault time: populate now,
	 * so that a shortage is this call's ENOMEM, not a later SIGBUS. */
	reg->addr = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | (huge ? MAP_POPULATE : 0), reg->fd, 0);
	if (reg->addr == MAP_FAILED) {
		r = -errno;
		kvs_set_error(k, "mmap %zu bytes%s: %s%s", size,
			      huge ? " of huge pages" : "",
			      errstr(-r, ebuf, sizeof(ebuf)),
			      huge && r == -ENOMEM ? " (too few reserved: "
			      "sysctl vm.nr_hugepages)" : "");
		goto out_close;
	}
	r = region_add(k, reg);
	if (r < 0)
		goto out_unmap;
	*ret = reg;
	return 0;
out_unmap:
	munmap(reg->addr, size);
out_close:
	close(reg->fd);
out_free:
	free(reg);
	return r;
}

KVSWAP_EXPORT int kvswap_region_import(struct kvswap *k, int fd, void *addr,
				       size_t size, struct kvswap_region **ret)
{
	struct kvswap_region *reg;
	char ebuf[128];
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!ret || fd < 0 || size == 0) {
		kvs_set_error(k, "region_import: needs an fd and a size of at least 1");
		return -EINVAL;
	}
	reg = calloc(1, sizeof(*reg));
	if (!reg) {
		kvs_set_error(k, "out of memory");
		return -ENOMEM;
	}
	reg->addr = addr;
	reg->size = size;
	reg->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (reg->fd < 0) {
		r = -errno;
		kvs_set_error(k, "duplicate fd %d: %s", fd,
			  errstr(-r, ebuf, sizeof(ebuf)));
		goto out_free;
	}
	r = region_add(k, reg);
	if (r < 0)
		goto out_close;
	*ret = reg;
	return 0;
out_close:
	close(reg->fd);
out_free:
	free(reg);
	return r;
}

/*
 * On a connection that has ended there is no daemon to ask: the region is
 * freed and -ENOTCONN returned.
 */
KVSWAP_EXPORT int kvswap_region_release(struct kvswap *k,
					struct kvswap_region *reg)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__UnregisterRegion ur = KVSWAP__V1__UNREGISTER_REGION__INIT;
	struct kvswap_region **p;
	Kvswap__V1__Event *ev;
	int r;

	if (!reg)
		return 0;
	/* Freeing another connection's region would corrupt its list. */
	if (!k || reg->k != k)
		return -EINVAL;
	r = kvs_check_conn(k);
	if (r == 0) {
		ur.has_region = true;
		ur.region = reg->id;
		rq.body_case = KVSWAP__V1__REQUEST__BODY_UNREGISTER_REGION;
		rq.unregister_region = &ur;
		r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_UNREGISTERED, &ev);
		if (r == 0)
			kvswap__v1__event__free_unpacked(ev, NULL);
	}
	for (p = &k->regions; *p; p = &(*p)->next) {
		if (*p == reg) {
			*p = reg->next;
			break;
		}
	}
	if (reg->created)
		munmap(reg->addr, reg->size);
	close(reg->fd);
	free(reg);
	return r;
}

KVSWAP_EXPORT void *kvswap_region_addr(const struct kvswap_region *r)
{
	return r ? r->addr : NULL;
}

KVSWAP_EXPORT size_t kvswap_region_size(const struct kvswap_region *r)
{
	return r ? r->size : 0;
}

KVSWAP_EXPORT uint32_t kvswap_region_id(const struct kvswap_region *r)
{
	return r ? r->id : 0;
}

/* --- asynchronous swaps --------------------------------------------------- */

/* Checks shared by swap-out and swap-in before anything is built. */
static int swap_check(struct kvswap *k, const void *key, size_t key_len,
		      struct kvswap_region *reg, const void *segs,
		      uint32_t nseg, struct kvswap_req **ret)
{
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!ret || !kvs_bytes_ok(key, key_len) || (!segs && nseg)) {
		kvs_set_error(k, "swap: NULL key, segments or request pointer");
		return -EINVAL;
	}
	if (!reg || reg->k != k) {
		kvs_set_error(k, "swap: the region is not one of this connection");
		return -EINVAL;
	}
	/*
	 * Limits are the daemon's to check and explain; this only stops a
	 * count that could not fit one message from costing memory here.
	 */
	if (nseg > k->max_send) {
		kvs_set_error(k, "swap: %u segments cannot fit one message", nseg);
		return -EMSGSIZE;
	}
	return 0;
}

/*
 * Sends an async request, or queues it while corked, and enters `req` in
 * the table. Consumes req.
 */
static int swap_send(struct kvswap *k, Kvswap__V1__Request *rq,
		     struct kvswap_req *req, struct kvswap_req **ret)
{
	struct part *p;
	int r;

	if (!req) {
		kvs_set_error(k, "out of memory");
		return -ENOMEM;
	}
	p = &req->part0;
	if (k->corked) {
		r = kvs_queue(k, rq, p);
		if (r < 0) {
			req_destroy(req);
			return r;
		}
		req->k = k;
		*ret = req;
		/* A failure to send shows in the request's status. */
		if (k->txq_n >= TX_BATCH)
			kvs_flush(k);
		return 0;
	}
	r = send_request(k, rq, -1, &p->id);
	if (r < 0) {
		req_destroy(req);
		return r;
	}
	req->k = k;
	p->state = PART_SENT;
	table_add(k, p);
	*ret = req;
	return 0;
}

KVSWAP_EXPORT int kvswap_swap_out(struct kvswap *k, const void *key,
				  size_t key_len, struct kvswap_region *r,
				  const struct kvswap_seg_out *segs,
				  uint32_t nseg, const void *metadata,
				  size_t metadata_len, uint32_t flags,
				  struct kvswap_req **ret)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapOut so = KVSWAP__V1__SWAP_OUT__INIT;
	Kvswap__V1__SegmentOut *msgs = NULL, **ptrs = NULL;
	uint32_t i;
	int err;

	err = swap_check(k, key, key_len, r, segs, nseg, ret);
	if (err < 0)
		return err;
	if (!kvs_bytes_ok(metadata, metadata_len)) {
		kvs_set_error(k, "swap_out: NULL metadata");
		return -EINVAL;
	}
	if (nseg) {
		msgs = calloc(nseg, sizeof(*msgs));
		ptrs = calloc(nseg, sizeof(*ptrs));
		if (!msgs || !ptrs) {
			kvs_set_error(k, "out of memory");
			err = -ENOMEM;
			goto out_free;
		}
	}
	for (i = 0; i < nseg; i++) {
		kvswap__v1__segment_out__init(&msgs[i]);
		msgs[i].has_offset = true;
		msgs[i].offset = segs[i].offset;
		msgs[i].has_length = true;
		msgs[i].length = segs[i].length;
		ptrs[i] = &msgs[i];
	}
	so.has_key = true;
	so.key.data = (uint8_t *)key;
	so.key.len = key_len;
	so.has_region = true;
	so.region = r->id;
	so.n_segments = nseg;
	so.segments = ptrs;
	if (metadata_len) {
		so.has_metadata = true;
		so.metadata.data = (uint8_t *)metadata;
		so.metadata.len = metadata_len;
	}
	so.has_flags = true;
	so.flags = flags;
	rq.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT;
	rq.swap_out = &so;
	err = swap_send(k, &rq, req_new(nseg, KVSWAP__V1__EVENT__BODY_SWAP_OUT),
			ret);
out_free:
	free(ptrs);
	free(msgs);
	return err;
}

KVSWAP_EXPORT int kvswap_swap_in(struct kvswap *k, const void *key,
				 size_t key_len, struct kvswap_region *r,
				 const struct kvswap_seg_in *segs,
				 uint32_t nseg, struct kvswap_req **ret)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__SwapIn si = KVSWAP__V1__SWAP_IN__INIT;
	Kvswap__V1__SegmentIn *msgs = NULL, **ptrs = NULL;
	uint32_t i;
	int err;

	err = swap_check(k, key, key_len, r, segs, nseg, ret);
	if (err < 0)
		return err;
	if (nseg) {
		msgs = calloc(nseg, sizeof(*msgs));
		ptrs = calloc(nseg, sizeof(*ptrs));
		if (!msgs || !ptrs) {
			kvs_set_error(k, "out of memory");
			err = -ENOMEM;
			goto out_free;
		}
	}
	for (i = 0; i < nseg; i++) {
		kvswap__v1__segment_in__init(&msgs[i]);
		msgs[i].has_index = true;
		msgs[i].index = segs[i].index;
		msgs[i].has_offset = true;
		msgs[i].offset = segs[i].offset;
		ptrs[i] = &msgs[i];
	}
	si.has_key = true;
	si.key.data = (uint8_t *)key;
	si.key.len = key_len;
	si.has_region = true;
	si.region = r->id;
	si.n_segments = nseg;
	si.segments = ptrs;
	rq.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_IN;
	rq.swap_in = &si;
	err = swap_send(k, &rq, req_new(nseg, KVSWAP__V1__EVENT__BODY_SWAP_IN),
			ret);
out_free:
	free(ptrs);
	free(msgs);
	return err;
}

/*
 * Once the request has finished and every segment event received has been
 * returned, this returns -ENODATA, also when the request ended (final
 * error, connection lost) before reporting every segment: no more will
 * come, and kvswap_wait() or kvswap_req_status() gives the final status.
 */
KVSWAP_EXPORT int kvswap_wait_segment(struct kvswap *k, struct kvswap_req *req,
				      int timeout_ms, uint32_t *ret_index)
{
	int64_t deadline;
	uint32_t idx;
	int r;

	if (!req || !ret_index)
		return -EINVAL;
	deadline = kvs_deadline_after(timeout_ms);
	for (;;) {
		if (req->nconsumed < req->nreported) {
			idx = req->fifo[req->nconsumed++];
			*ret_index = idx;
			return req->seg_status[idx];
		}
		if (req->done)
			return -ENODATA;
		if (!k || req->k != k)
			return -EINVAL;
		r = kvs_pump(k, deadline);
		kvs_settle(k);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && !req->done)
			return r;
	}
}

KVSWAP_EXPORT int kvswap_wait(struct kvswap *k, struct kvswap_req *req,
			      int timeout_ms)
{
	int64_t deadline;
	int r;

	if (!req)
		return -EINVAL;
	deadline = kvs_deadline_after(timeout_ms);
	while (!req->done) {
		if (!k || req->k != k)
			return -EINVAL;
		r = kvs_pump(k, deadline);
		if (r == 0 || (r < 0 && !req->done)) {
			kvs_settle(k);
			return r == 0 ? -ETIMEDOUT : r;
		}
		if (req->done)
			kvs_settle(k);
	}
	return req->status;
}

KVSWAP_EXPORT bool kvswap_req_done(const struct kvswap_req *req)
{
	return req && req->done;
}

KVSWAP_EXPORT int kvswap_req_status(const struct kvswap_req *req)
{
	if (!req)
		return -EINVAL;
	return req->done ? req->status : -EINPROGRESS;
}

KVSWAP_EXPORT uint32_t kvswap_req_segments_done(const struct kvswap_req *req)
{
	return req ? req->nreported : 0;
}

KVSWAP_EXPORT uint32_t kvswap_req_segments(const struct kvswap_req *req)
{
	return req ? req->nseg : 0;
}

KVSWAP_EXPORT const void *kvswap_req_metadata(const struct kvswap_req *req,
					      size_t *len)
{
	if (!req || !req->done || !req->metadata) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = req->metadata_len;
	return req->metadata;
}

/* In flight, the request becomes the connection's: see the top comment. */
KVSWAP_EXPORT void kvswap_req_free(struct kvswap_req *req)
{
	if (!req)
		return;
	if (!req->done && req->k) {
		req->orphan = true;
		return;
	}
	req_destroy(req);
}

/* --- blocking swaps ------------------------------------------------------- */

KVSWAP_EXPORT int kvswap_put(struct kvswap *k, const void *key, size_t key_len,
			     struct kvswap_region *r,
			     const struct kvswap_seg_out *segs, uint32_t nseg,
			     const void *metadata, size_t metadata_len)
{
	struct kvswap_req *req;
	int err;

	err = kvswap_swap_out(k, key, key_len, r, segs, nseg, metadata,
			      metadata_len, 0, &req);
	if (err < 0)
		return err;
	err = kvswap_wait(k, req, -1);
	kvswap_req_free(req);
	return err;
}

KVSWAP_EXPORT int kvswap_get(struct kvswap *k, const void *key, size_t key_len,
			     struct kvswap_region *r,
			     const struct kvswap_seg_in *segs, uint32_t nseg)
{
	struct kvswap_req *req;
	int err;

	err = kvswap_swap_in(k, key, key_len, r, segs, nseg, &req);
	if (err < 0)
		return err;
	err = kvswap_wait(k, req, -1);
	kvswap_req_free(req);
	return err;
}

/* --- lookup --------------------------------------------------------------- */

KVSWAP_EXPORT int kvswap_lookup(struct kvswap *k, const void *const *keys,
				const size_t *key_lens, uint32_t n,
				bool *present)
{
	return kvswap_lookup_lease(k, keys, key_lens, n, 0, present);
}

KVSWAP_EXPORT int kvswap_lookup_lease(struct kvswap *k, const void *const *keys,
				      const size_t *key_lens, uint32_t n,
				      uint32_t lease_ms, bool *present)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Lookup lk = KVSWAP__V1__LOOKUP__INIT;
	ProtobufCBinaryData *bins = NULL;
	Kvswap__V1__LookupReply *lr;
	Kvswap__V1__Event *ev;
	uint32_t i, prefix;
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (n && (!keys || !key_lens)) {
		kvs_set_error(k, "lookup: NULL keys");
		return -EINVAL;
	}
	if (n > k->limits.max_lookup_keys) {
		kvs_set_error(k, "lookup: %u keys exceed max_lookup_keys %u", n,
			  k->limits.max_lookup_keys);
		return -E2BIG;
	}
	if (n) {
		bins = calloc(n, sizeof(*bins));
		if (!bins) {
			kvs_set_error(k, "out of memory");
			return -ENOMEM;
		}
	}
	for (i = 0; i < n; i++) {
		if (!kvs_bytes_ok(keys[i], key_lens[i])) {
			kvs_set_error(k, "lookup: keys[%u] is NULL", i);
			r = -EINVAL;
			goto out_bins;
		}
		bins[i].data = (uint8_t *)keys[i];
		bins[i].len = key_lens[i];
	}
	lk.n_keys = n;
	lk.keys = bins;
	lk.has_lease_ms = lease_ms != 0;
	lk.lease_ms = lease_ms;
	rq.body_case = KVSWAP__V1__REQUEST__BODY_LOOKUP;
	rq.lookup = &lk;
	r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_LOOKUP, &ev);
	if (r < 0)
		goto out_bins;
	lr = ev->lookup;
	prefix = lr->has_prefix ? lr->prefix : 0;
	if (lr->n_present != n || prefix > n) {
		kvs_set_error(k, "kvswapd answered a lookup of %u keys with %zu flags, prefix %u",
			  n, lr->n_present, prefix);
		r = -EPROTO;
		goto out_ev;
	}
	if (present)
		for (i = 0; i < n; i++)
			present[i] = lr->present[i];
	r = (int)prefix;
out_ev:
	kvswap__v1__event__free_unpacked(ev, NULL);
out_bins:
	free(bins);
	return r;
}

/* --- entries: describe, delete, list -------------------------------------- */

/* Copies one EntryInfo; lengths and metadata only when with_layout. */
static int entry_fill(struct kvswap_entry *e, const Kvswap__V1__EntryInfo *info,
		      bool with_layout)
{
	memset(e, 0, sizeof(*e));
	e->key = kvs_memdup(info->key.data, info->key.len);
	if (!e->key)
		return -ENOMEM;
	e->key_len = info->key.len;
	e->size = info->size;
	e->segments = info->has_segments ? info->segments :
		(uint32_t)info->n_lengths;
	if (!with_layout)
		return 0;
	if (info->n_lengths) {
		e->lengths = kvs_memdup(info->lengths,
				    info->n_lengths * sizeof(uint64_t));
		if (!e->lengths)
			goto out_clear;
	}
	if (info->has_metadata && info->metadata.len) {
		e->metadata = kvs_memdup(info->metadata.data, info->metadata.len);
		if (!e->metadata)
			goto out_clear;
		e->metadata_len = info->metadata.len;
	}
	return 0;
out_clear:
	free(e->lengths);
	free(e->key);
	memset(e, 0, sizeof(*e));
	return -ENOMEM;
}

KVSWAP_EXPORT int kvswap_describe(struct kvswap *k, const void *key,
				  size_t key_len, struct kvswap_entry *ret)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Describe d = KVSWAP__V1__DESCRIBE__INIT;
	Kvswap__V1__Event *ev;
	struct kvswap_entry e;
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!ret || !kvs_bytes_ok(key, key_len)) {
		kvs_set_error(k, "describe: NULL key or entry");
		return -EINVAL;
	}
	d.has_key = true;
	d.key.data = (uint8_t *)key;
	d.key.len = key_len;
	rq.body_case = KVSWAP__V1__REQUEST__BODY_DESCRIBE;
	rq.describe = &d;
	r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_DESCRIBE, &ev);
	if (r < 0)
		return r;
	/* The daemon may leave out the key it was asked about. */
	if (!ev->describe->has_key) {
		ev->describe->key.data = (uint8_t *)key;
		ev->describe->key.len = key_len;
	}
	r = entry_fill(&e, ev->describe, true);
	if (!ev->describe->has_key)
		ev->describe->key.data = NULL;
	kvswap__v1__event__free_unpacked(ev, NULL);
	if (r < 0) {
		kvs_set_error(k, "out of memory");
		return r;
	}
	*ret = e;
	return 0;
}

KVSWAP_EXPORT void kvswap_entry_clear(struct kvswap_entry *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->lengths);
	free(e->metadata);
	memset(e, 0, sizeof(*e));
}

KVSWAP_EXPORT int kvswap_delete(struct kvswap *k, const void *key,
				size_t key_len)
{
	return kvswap_delete_tenant(k, NULL, key, key_len);
}

KVSWAP_EXPORT int kvswap_delete_tenant(struct kvswap *k, const char *tenant,
				       const void *key, size_t key_len)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Delete d = KVSWAP__V1__DELETE__INIT;
	Kvswap__V1__Event *ev;
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!kvs_bytes_ok(key, key_len)) {
		kvs_set_error(k, "delete: NULL key");
		return -EINVAL;
	}
	d.has_key = true;
	d.key.data = (uint8_t *)key;
	d.key.len = key_len;
	d.tenant = (char *)tenant;
	rq.body_case = KVSWAP__V1__REQUEST__BODY_DELETE;
	rq.delete_ = &d;
	r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_DELETE, &ev);
	if (r < 0)
		return r;
	kvswap__v1__event__free_unpacked(ev, NULL);
	return 0;
}

KVSWAP_EXPORT int kvswap_delete_keys(struct kvswap *k, const void *const *keys,
				     const size_t *key_lens, uint32_t n,
				     bool *deleted)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Delete d = KVSWAP__V1__DELETE__INIT;
	ProtobufCBinaryData *bins;
	Kvswap__V1__DeleteReply *dr;
	Kvswap__V1__Event *ev;
	uint32_t i;
	int r, count = 0;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!n || !keys || !key_lens) {
		kvs_set_error(k, "delete_keys: no keys");
		return -EINVAL;
	}
	if (n > k->limits.max_lookup_keys) {
		kvs_set_error(k, "delete_keys: %u keys exceed max_lookup_keys %u",
			      n, k->limits.max_lookup_keys);
		return -E2BIG;
	}
	bins = calloc(n, sizeof(*bins));
	if (!bins) {
		kvs_set_error(k, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (!kvs_bytes_ok(keys[i], key_lens[i])) {
			kvs_set_error(k, "delete_keys: keys[%u] is NULL", i);
			r = -EINVAL;
			goto out_bins;
		}
		bins[i].data = (uint8_t *)keys[i];
		bins[i].len = key_lens[i];
	}
	d.n_keys = n;
	d.keys = bins;
	rq.body_case = KVSWAP__V1__REQUEST__BODY_DELETE;
	rq.delete_ = &d;
	r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_DELETE, &ev);
	if (r < 0)
		goto out_bins;
	dr = ev->delete_;
	if (dr->n_deleted != n) {
		kvs_set_error(k, "kvswapd answered a delete of %u keys with %zu flags",
			      n, dr->n_deleted);
		r = -EPROTO;
		goto out_ev;
	}
	for (i = 0; i < n; i++) {
		count += dr->deleted[i] != 0;
		if (deleted)
			deleted[i] = dr->deleted[i];
	}
	r = count;
out_ev:
	kvswap__v1__event__free_unpacked(ev, NULL);
out_bins:
	free(bins);
	return r;
}

/* A page with no entries gives *ret_entries NULL and *ret_n 0. */
KVSWAP_EXPORT int kvswap_list(struct kvswap *k, uint64_t *cursor,
			      uint32_t limit,
			      struct kvswap_entry **ret_entries,
			      uint32_t *ret_n)
{
	return kvswap_list_tenant(k, NULL, cursor, limit, ret_entries, ret_n);
}

KVSWAP_EXPORT int kvswap_list_tenant(struct kvswap *k, const char *tenant,
				     uint64_t *cursor, uint32_t limit,
				     struct kvswap_entry **ret_entries,
				     uint32_t *ret_n)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__List l = KVSWAP__V1__LIST__INIT;
	struct kvswap_entry *entries = NULL;
	Kvswap__V1__ListReply *lr;
	Kvswap__V1__Event *ev;
	uint32_t i, n;
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!cursor || !ret_entries || !ret_n) {
		kvs_set_error(k, "list: NULL cursor or result pointer");
		return -EINVAL;
	}
	l.has_cursor = true;
	l.cursor = *cursor;
	l.tenant = (char *)tenant;
	/* 0 leaves the page size to the daemon's default. */
	if (limit) {
		l.has_limit = true;
		l.limit = limit;
	}
	rq.body_case = KVSWAP__V1__REQUEST__BODY_LIST;
	rq.list = &l;
	r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_LIST, &ev);
	if (r < 0)
		return r;
	lr = ev->list;
	if (lr->n_entries > UINT32_MAX) {
		kvs_set_error(k, "kvswapd listed %zu entries", lr->n_entries);
		r = -EPROTO;
		goto out_ev;
	}
	n = (uint32_t)lr->n_entries;
	if (n) {
		entries = calloc(n, sizeof(*entries));
		if (!entries) {
			r = -ENOMEM;
			goto out_nomem;
		}
	}
	for (i = 0; i < n; i++) {
		r = entry_fill(&entries[i], lr->entries[i], false);
		if (r < 0) {
			kvswap_entries_free(entries, i);
			goto out_nomem;
		}
	}
	*cursor = lr->has_cursor ? lr->cursor : 0;
	*ret_entries = entries;
	*ret_n = n;
	r = 0;
	goto out_ev;
out_nomem:
	kvs_set_error(k, "out of memory");
out_ev:
	kvswap__v1__event__free_unpacked(ev, NULL);
	return r;
}

KVSWAP_EXPORT void kvswap_entries_free(struct kvswap_entry *entries,
				       uint32_t n)
{
	uint32_t i;

	if (!entries)
		return;
	for (i = 0; i < n; i++)
		kvswap_entry_clear(&entries[i]);
	free(entries);
}

/* --- statistics ----------------------------------------------------------- */

/*
 * kvswap_stat has two versions. Programs built when struct kvswap_stat
 * ended at `verify` are bound to kvswap_stat@KVSWAP_0 and hold only that
 * much: stat_v0 writes no further. Programs built since are bound to the
 * default, kvswap_stat@@KVSWAP_0.1 (stat_v1), which fills it all; so is a
 * static link. The names stat_v0 and stat_v1 stay local (libkvswap.sym).
 */
#define STAT_V0_SIZE offsetof(struct kvswap_stat, log_half_bytes)
_Static_assert(STAT_V0_SIZE == 160,
	       "struct kvswap_stat of KVSWAP_0 was 160 bytes: add fields at "
	       "its end only");

KVSWAP_EXPORT int stat_v0(struct kvswap *k, struct kvswap_stat *ret);
KVSWAP_EXPORT int stat_v1(struct kvswap *k, struct kvswap_stat *ret);
__asm__(".symver stat_v0, kvswap_stat@KVSWAP_0");
__asm__(".symver stat_v1, kvswap_stat@@KVSWAP_0.1");

KVSWAP_EXPORT int stat_v1(struct kvswap *k, struct kvswap_stat *ret)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Stat s = KVSWAP__V1__STAT__INIT;
	Kvswap__V1__StatReply *sr;
	Kvswap__V1__Event *ev;
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!ret) {
		kvs_set_error(k, "stat: NULL result pointer");
		return -EINVAL;
	}
	rq.body_case = KVSWAP__V1__REQUEST__BODY_STAT;
	rq.stat = &s;
	r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_STAT, &ev);
	if (r < 0)
		return r;
	sr = ev->stat;
	*ret = (struct kvswap_stat){
		.capacity = sr->capacity,
		.used = sr->used,
		.entries = sr->entries,
		.bytes_in = sr->bytes_in,
		.bytes_out = sr->bytes_out,
		.requests = sr->requests,
		.errors = sr->errors,
		.in_flight = sr->in_flight,
		.clients = sr->clients,
		.regions = sr->regions,
		.store_files = sr->store_files,
		.queue_depth = sr->queue_depth,
		.cpu_user_us = sr->cpu_user_us,
		.cpu_system_us = sr->cpu_system_us,
		.uptime_ms = sr->uptime_ms,
		.evictions = sr->evictions,
		.pinned = sr->pinned,
		.journal_commits = sr->journal_commits,
		.checkpoints = sr->checkpoints,
		.checksum_errors = sr->checksum_errors,
		.io_errors = sr->io_errors,
		.durable = sr->durable,
		.verify = sr->verify,
		.log_half_bytes = sr->log_half_bytes,
		.log_bytes_used = sr->log_bytes_used,
		.checkpoint_bytes = sr->checkpoint_bytes,
		.checkpoint_limit = sr->checkpoint_limit,
		.metadata_refusals = sr->metadata_refusals,
	};
	kvswap__v1__event__free_unpacked(ev, NULL);
	return 0;
}

KVSWAP_EXPORT int stat_v0(struct kvswap *k, struct kvswap_stat *ret)
{
	struct kvswap_stat s;
	int r;

	if (!ret)
		return stat_v1(k, NULL);
	r = stat_v1(k, &s);
	if (r == 0)
		memcpy(ret, &s, STAT_V0_SIZE);
	return r;
}

/* --- tenants --------------------------------------------------------------- */

KVSWAP_EXPORT const char *kvswap_tenant(const struct kvswap *k)
{
	return k ? k->tenant : "";
}

KVSWAP_EXPORT bool kvswap_is_admin(const struct kvswap *k)
{
	return k && k->admin;
}

KVSWAP_EXPORT int kvswap_tenant_stat(struct kvswap *k, const char *tenant,
				     struct kvswap_tenant_stat *ret)
{
	Kvswap__V1__Request rq = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Stat s = KVSWAP__V1__STAT__INIT;
	Kvswap__V1__StatReply *sr;
	Kvswap__V1__Event *ev;
	int r;

	r = kvs_check_conn(k);
	if (r < 0)
		return r;
	if (!ret) {
		kvs_set_error(k, "tenant_stat: NULL result pointer");
		return -EINVAL;
	}
	s.tenant = (char *)tenant;
	rq.body_case = KVSWAP__V1__REQUEST__BODY_STAT;
	rq.stat = &s;
	r = call(k, &rq, -1, KVSWAP__V1__EVENT__BODY_STAT, &ev);
	if (r < 0)
		return r;
	sr = ev->stat;
	if (!sr->tenant) {
		kvs_set_error(k, "kvswapd %s keeps no tenants", k->limits.daemon);
		kvswap__v1__event__free_unpacked(ev, NULL);
		return -EOPNOTSUPP;
	}
	*ret = (struct kvswap_tenant_stat){
		.entries = sr->tenant_entries,
		.bytes = sr->tenant_bytes,
		.pinned = sr->tenant_pinned,
		.leased = sr->tenant_leased,
		.connections = sr->tenant_connections,
		.regions = sr->tenant_regions,
		.region_bytes = sr->tenant_region_bytes,
		.in_flight = sr->tenant_in_flight,
		.evictions = sr->tenant_evictions,
		.quota_refusals = sr->tenant_quota_refusals,
		.max_bytes = sr->tenant_max_bytes,
		.max_pinned = sr->tenant_max_pinned,
		.max_leased = sr->tenant_max_leased,
		.max_lease_ms = sr->tenant_max_lease_ms,
		.max_connections = sr->tenant_max_connections,
		.max_regions = sr->tenant_max_regions,
		.max_region_bytes = sr->tenant_max_region_bytes,
		.max_in_flight = sr->tenant_max_in_flight,
		.tenants = sr->tenants,
		.admin = sr->admin,
	};
	snprintf(ret->tenant, sizeof(ret->tenant), "%s", sr->tenant);
	kvswap__v1__event__free_unpacked(ev, NULL);
	return 0;
}

/* --- errno names ---------------------------------------------------------- */

#define E(name) [name] = #name
static const char *const errno_names[] = {
	E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG),
	E(ENOEXEC), E(EBADF), E(ECHILD), E(EAGAIN), E(ENOMEM), E(EACCES),
	E(EFAULT), E(EBUSY), E(EEXIST), E(EXDEV), E(ENODEV), E(ENOTDIR),
	E(EISDIR), E(EINVAL), E(ENFILE), E(EMFILE), E(ENOTTY), E(EFBIG),
	E(ENOSPC), E(ESPIPE), E(EROFS), E(EMLINK), E(EPIPE), E(EDOM),
	E(ERANGE), E(EDEADLK), E(ENAMETOOLONG), E(ENOLCK), E(ENOSYS),
	E(ENOTEMPTY), E(ELOOP), E(ENOMSG), E(ENODATA), E(ETIME), E(ENOLINK),
	E(EPROTO), E(EBADMSG), E(EOVERFLOW), E(EILSEQ), E(ENOTSOCK),
	E(EDESTADDRREQ), E(EMSGSIZE), E(EPROTOTYPE), E(ENOPROTOOPT),
	E(EPROTONOSUPPORT), E(EOPNOTSUPP), E(EAFNOSUPPORT), E(EADDRINUSE),
	E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH), E(ECONNABORTED),
	E(ECONNRESET), E(ENOBUFS), E(EISCONN), E(ENOTCONN), E(ESHUTDOWN),
	E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTUNREACH), E(EALREADY),
	E(EINPROGRESS), E(ESTALE), E(EDQUOT), E(ECANCELED), E(EOWNERDEAD),
	E(ENOTRECOVERABLE),
};
#undef E

KVSWAP_EXPORT const char *kvswap_errno_name(int code)
{
	if (code <= 0 ||
	    (size_t)code >= sizeof(errno_names) / sizeof(errno_names[0]))
		return NULL;
	return errno_names[code];
}
