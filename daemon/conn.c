/* SPDX-License-Identifier: MIT */
/*
 * Client connections (conn.h): accept, one RECVMSG at a time, framing and
 * file descriptors checked, requests handed to the request layer, events
 * sent at once or through a per-connection backlog.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "tenant.h"

static void conn_maybe_free(struct conn *c);

static void recv_arm(struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->tab->quit || c->state >= CONN_FLUSHING || c->recv_armed ||
	    c->xfers >= KVS_MAX_REQUESTS || c->backlog_bytes >= CONN_MAX_BACKLOG)
		return;
	c->iov = (struct iovec){ c->rbuf, sizeof(c->rbuf) };
	c->msg = (struct msghdr){
		.msg_iov = &c->iov,
		.msg_iovlen = 1,
		.msg_control = c->cmsg.buf,
		.msg_controllen = sizeof(c->cmsg.buf),
	};
	sqe = loop_sqe(c->tab->loop);
	/* MSG_TRUNC: the result is the packet's real length, to spot oversize. */
	io_uring_prep_recvmsg(sqe, c->fd, &c->msg, MSG_CMSG_CLOEXEC | MSG_TRUNC);
	io_uring_sqe_set_data64(sqe, ud_make(c, UD_RECV));
	c->recv_armed = true;
	c->ops++;
}

struct conn *conn_new(struct conns *t, int fd, pid_t pid, uid_t uid,
		      struct tenant *tn, bool admin, bool over_quota)
{
	/* Owner: the table; freed by conn_maybe_free() and conns_reap(). */
	struct conn *c = aligned_alloc(16, sizeof(*c));

	if (!c) {
		log_err("refusing a client: out of memory");
		close(fd);
		return NULL;
	}
	memset(c, 0, offsetof(struct conn, rbuf));
	c->tab = t;
	c->fd = fd;
	c->state = CONN_NEW;
	c->serial = ++t->serial;
	c->uid = uid;
	c->tenant = tn;
	c->admin = admin;
	c->accepted_ms = now_ms();
	c->over_quota = over_quota;
	if (over_quota)
		t->over_quota++;
	else
		tn->use.conns++;
	snprintf(c->name, sizeof(c->name), "#%u (pid %d uid %u tenant %s)",
		 c->serial, (int)pid, (unsigned)uid, tn->name);
	c->next = t->list;
	if (t->list)
		t->list->prev = c;
	t->list = c;
	t->count++;
	log_debug("client %s connected", c->name);
	recv_arm(c);
	return c;
}

static void backlog_free(struct conn *c)
{
	struct out *o;

	while ((o = c->backlog)) {
		c->backlog = o->next;
		free(o);
	}
	c->backlog_tail = NULL;
	c->backlog_bytes = 0;
}

static void conn_maybe_free(struct conn *c)
{
	struct conns *t = c->tab;

	if (c->state != CONN_CLOSING || c->ops || c->xfers)
		return;
	/* Regions go first: their release completes through buffer tags. */
	if (!c->drained_called) {
		c->drained_called = true;
		t->ops->drained(t->ctx, c);
		/* A region that went at once may have freed c already. */
		if (c->state != CONN_CLOSING)
			return;
	}
	if (c->holds)
		return;
	backlog_free(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		t->list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	t->count--;
	if (c->over_quota) {
		assert(t->over_quota > 0);
		t->over_quota--;
	} else {
		assert(c->tenant->use.conns > 0);
		c->tenant->use.conns--;
	}
	close(c->fd);
	log_debug("client %s freed", c->name);
	/* Freed after this batch of completions: callers up the stack may
	 * still look at it. */
	c->state = CONN_DEAD;
	c->next = t->dead;
	t->dead = c;
}

void conns_reap(struct conns *t)
{
	struct conn *c;

	while ((c = t->dead)) {
		t->dead = c->next;
		free(c);
	}
}

void conn_abort(struct conn *c, const char *why)
{
	if (conn_closing(c))
		return;
	c->state = CONN_CLOSING;
	if (why)
		log_info("client %s: closing: %s", c->name, why);
	else
		log_debug("client %s disconnected", c->name);
	/* Fails the armed recv and any send still waiting for room. */
	shutdown(c->fd, SHUT_RDWR);
	c->tab->ops->closing(c->tab->ctx, c);
	conn_maybe_free(c);
}

void conns_drain(struct conns *t, bool force)
{
	struct conn *c = t->list, *next;

	if (!t->quit) {
		struct io_uring_sqe *sqe = loop_sqe(t->loop);

		io_uring_prep_cancel64(sqe, ud_make(NULL, UD_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_NONE));
		t->quit = true;
	}
	for (; c; c = next) {
		next = c->next;
		if (conn_closing(c))
			continue;
		if (c->recv_armed && !c->recv_cancelled) {
			struct io_uring_sqe *sqe = loop_sqe(t->loop);

			io_uring_prep_cancel64(sqe, ud_make(c, UD_RECV), 0);
			io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_NONE));
			c->recv_cancelled = true;
		}
		if (force)
			conn_abort(c, NULL);
		else if (!c->xfers && c->state != CONN_FLUSHING)
			conn_close_after_send(c, NULL);
	}
}

static void backlog_arm(struct conn *c)
{
	struct io_uring_sqe *sqe;
	struct out *o = c->backlog;

	if (!o || c->backlog_armed || conn_closing(c))
		return;
	/* Waits for room: the kernel polls the socket, the loop goes on. */
	sqe = loop_sqe(c->tab->loop);
	io_uring_prep_send(sqe, c->fd, o->buf, o->len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(o, UD_SEND));
	c->backlog_armed = true;
	c->ops++;
}

static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dnext = c->tab->dirty;
	c->tab->dirty = c;
}

int conn_send_bytes(struct conn *c, const void *buf, size_t len)
{
	struct out *o;

	if (conn_closing(c))
		return -ENOTCONN;
	/* Owner: the connection's backlog; freed once sent or on close. */
	o = aligned_alloc(16, (sizeof(*o) + len + 15) & ~(size_t)15);
	if (!o) {
		/* Never drop an event silently: the client sees the close. */
		conn_abort(c, "out of memory for its events");
		return -ENOTCONN;
	}
	o->next = NULL;
	o->c = c;
	o->len = (uint32_t)len;
	memcpy(o->buf, buf, len);
	if (c->backlog_tail)
		c->backlog_tail->next = o;
	else
		c->backlog = o;
	c->backlog_tail = o;
	c->backlog_bytes += len;
	/* A SEND waiting for room in flight: the rest follows it. */
	if (!c->backlog_armed)
		mark_dirty(c);
	return 0;
}

#define FLUSH_BATCH 64

/*
 * Sends c's queued events with sendmmsg, as many as its socket takes;
 * the rest waits for room (backlog_arm).
 */
static void flush_one(struct conn *c)
{
	struct mmsghdr msgs[FLUSH_BATCH];
	struct iovec iov[FLUSH_BATCH];

	while (c->backlog && !c->backlog_armed && !conn_closing(c)) {
		struct out *o = c->backlog;
		int n = 0, sent;

		for (; o && n < FLUSH_BATCH; o = o->next, n++) {
			iov[n] = (struct iovec){ o->buf, o->len };
			msgs[n] = (struct mmsghdr){ .msg_hdr = {
				.msg_iov = &iov[n], .msg_iovlen = 1 } };
		}
		sent = sendmmsg(c->fd, msgs, (unsigned)n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (sent < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
			backlog_arm(c);
			return;
		}
		if (sent < 0) {
			conn_abort(c, errno == EPIPE || errno == ECONNRESET ? NULL
				   : strerror(errno));
			return;
		}
		for (int i = 0; i < sent; i++) {
			o = c->backlog;
			/* SEQPACKET: a packet goes whole or not at all. */
			assert(msgs[i].msg_len == o->len);
			c->backlog = o->next;
			c->backlog_bytes -= o->len;
			free(o);
		}
		if (!c->backlog)
			c->backlog_tail = NULL;
		if (sent < n) {
			backlog_arm(c);
			return;
		}
	}
	if (c->state == CONN_FLUSHING && !c->backlog) {
		conn_abort(c, c->close_why);
		return;
	}
	recv_arm(c);
}

void conns_flush(struct conns *t)
{
	struct conn *c, *next;

	for (c = t->dirty, t->dirty = NULL; c; c = next) {
		next = c->dnext;
		c->dnext = NULL;
		c->dirty = false;
		flush_one(c);
	}
}

int conn_send(struct conn *c, const Event *ev)
{
	static uint8_t buf[KVS_MAX_MESSAGE];
	size_t n = kvswap__v1__event__get_packed_size(ev);

	if (n > sizeof(buf)) {
		/* The daemon's own bug: every reply is built to fit. */
		log_err("client %s: event of %zu bytes exceeds the maximum", c->name, n);
		conn_abort(c, "event too large");
		return -EMSGSIZE;
	}
	kvswap__v1__event__pack(ev, buf);
	return conn_send_bytes(c, buf, n);
}

static int send_error(struct conn *c, uint64_t id, int code, int64_t ent,
		      int64_t seg, const char *msg)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__Error e = KVSWAP__V1__ERROR__INIT;

	c->tab->st->errors++;
	e.has_code = 1;
	e.code = code < 0 ? -code : code;
	e.message = (char *)msg;
	if (seg >= 0) {
		e.has_segment = 1;
		e.segment = (uint32_t)seg;
	}
	if (ent >= 0) {
		e.has_entry = 1;
		e.entry = (uint32_t)ent;
	}
	ev.has_id = 1;
	ev.id = id;
	ev.body_case = KVSWAP__V1__EVENT__BODY_ERROR;
	ev.error = &e;
	log_debug("client %s: request %llu: %s", c->name, (unsigned long long)id,
		  msg);
	return conn_send(c, &ev);
}

int conn_send_error(struct conn *c, uint64_t id, int code, int64_t seg,
		    const char *msg)
{
	return send_error(c, id, code, -1, seg, msg);
}

int conn_send_entry_error(struct conn *c, uint64_t id, int code, uint32_t ent,
			  int64_t seg, const char *msg)
{
	return send_error(c, id, code, ent, seg, msg);
}

void conn_close_after_send(struct conn *c, const char *why)
{
	c->close_why = why;
	if (!c->backlog)
		conn_abort(c, why);
	else if (!conn_closing(c))
		c->state = CONN_FLUSHING;
}

static void send_done(struct out *o, int res)
{
	struct conn *c = o->c;

	c->ops--;
	c->backlog_armed = false;
	if (conn_closing(c)) {
		conn_maybe_free(c);
		return;
	}
	if (res != (int)o->len) {
		conn_abort(c, res == -EPIPE || res == -ECONNRESET ? NULL
			   : res < 0 ? strerror(-res) : "short send");
		return;
	}
	c->backlog = o->next;
	if (!c->backlog)
		c->backlog_tail = NULL;
	c->backlog_bytes -= o->len;
	free(o);
	if (c->state == CONN_FLUSHING && !c->backlog) {
		conn_abort(c, c->close_why);
		return;
	}
	/* Room again: the rest goes with the next flush, together. */
	if (c->backlog)
		mark_dirty(c);
	recv_arm(c);
}

void conn_fatal(struct conn *c, int code, const char *msg)
{
	log_info("client %s: %s", c->name, msg);
	if (conn_send_error(c, 0, code, -1, msg) == 0)
		conn_close_after_send(c, "after a protocol error");
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* Collects the SCM_RIGHTS fds of the last packet. Returns how many. */
static int take_fds(struct conn *c, int *fds)
{
	int n = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&c->msg); cm;
	     cm = CMSG_NXTHDR(&c->msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));

		for (int i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (n < CONN_MAX_FDS)
				fds[n++] = fd;
			else
				close(fd);
		}
	}
	return n;
}


/* Checks what needs no request-layer state, then hands the request on. */
static void handle(struct conn *c, Request *req, int *fds, int nfds)
{
	char err[256];
	int fd = -1, r;

	c->tab->st->requests++;
	if (c->over_quota) {
		close_fds(fds, nfds);
		r = conn_refuse(c, CONN_REFUSED_CONNS, err, sizeof(err),
				"%u connections, its quota "
				"(tenant-max-connections %u)",
				c->tenant->use.conns, c->tenant->lim.conns);
		if (conn_send_error(c, req->id, r, -1, err) == 0)
			conn_close_after_send(c, "over its tenant's quota");
		return;
	}
	r = wire_check(req, err, sizeof(err));
	if (r == 0 && c->state == CONN_NEW &&
	    req->body_case != KVSWAP__V1__REQUEST__BODY_HELLO) {
		snprintf(err, sizeof(err), "the first request must be hello");
		r = -EPROTO;
	}
	if (r == 0 && req->body_case == KVSWAP__V1__REQUEST__BODY_REGISTER_REGION) {
		if (nfds != 1) {
			snprintf(err, sizeof(err), "register_region: expected one "
				 "memfd in SCM_RIGHTS, got %d", nfds);
			r = nfds ? -EINVAL : -EBADF;
		} else {
			fd = fds[0];
			nfds = 0;
		}
	} else if (r == 0 && nfds) {
		snprintf(err, sizeof(err), "request %llu carries %d file "
			 "descriptor(s); only register_region takes one",
			 (unsigned long long)req->id, nfds);
		r = -EINVAL;
	}
	close_fds(fds, nfds);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		conn_send_error(c, req->id, r, -1, err);
		return;
	}
	c->tab->ops->request(c->tab->ctx, c, req, fd);
}

static void recv_done(struct conn *c, int res)
{
	int fds[CONN_MAX_FDS];
	Request *req;
	int nfds;
	char msg[128];

	c->ops--;
	c->recv_armed = false;
	/*
	 * Any packet, even an empty one or one that arrives as the
	 * connection closes, may carry fds: they are ours now, closed
	 * unless a request takes them.
	 */
	nfds = res >= 0 ? take_fds(c, fds) : 0;
	if (conn_closing(c)) {
		close_fds(fds, nfds);
		conn_maybe_free(c);
		return;
	}
	if (res == -ECANCELED && c->tab->quit)
		return;		/* draining: requests in flight go on */
	if (res == 0 && nfds) {
		/* An empty packet: end of stream carries no fds. */
		close_fds(fds, nfds);
		conn_fatal(c, EBADMSG, "an empty message carrying file "
			    "descriptors");
		return;
	}
	if (res <= 0) {
		conn_abort(c, res == 0 || res == -ECONNRESET ? NULL
							     : strerror(-res));
		return;
	}
	if (res > KVS_MAX_MESSAGE || (c->msg.msg_flags & MSG_CTRUNC)) {
		close_fds(fds, nfds);
		if (res > KVS_MAX_MESSAGE)
			snprintf(msg, sizeof(msg), "message of %d bytes exceeds the "
				 "maximum of %d", res, KVS_MAX_MESSAGE);
		else
			snprintf(msg, sizeof(msg), "more than %d file descriptors "
				 "in one message", CONN_MAX_FDS);
		conn_fatal(c, res > KVS_MAX_MESSAGE ? EMSGSIZE : EINVAL, msg);
		return;
	}
	req = wire_unpack(c->rbuf, (size_t)res);
	if (!req) {
		close_fds(fds, nfds);
		snprintf(msg, sizeof(msg), "message of %d bytes is not a "
			 "kvswap.v1.Request", res);
		conn_fatal(c, EBADMSG, msg);
		return;
	}
	handle(c, req, fds, nfds);
	wire_free(req);
	recv_arm(c);
}

void conn_ready(struct conn *c)
{
	if (c->state == CONN_NEW)
		c->state = CONN_READY;
}

void conn_xfer_begin(struct conn *c)
{
	c->xfers++;
	c->tenant->use.inflight++;
}

void conn_xfer_end(struct conn *c)
{
	assert(c->xfers > 0 && c->tenant->use.inflight > 0);
	c->xfers--;
	c->tenant->use.inflight--;
	recv_arm(c);
	conn_maybe_free(c);
}

void conn_hold(struct conn *c)
{
	c->holds++;
}

void conn_put(struct conn *c)
{
	assert(c->holds > 0);
	c->holds--;
	conn_maybe_free(c);
}

int conn_refuse(struct conn *c, unsigned kind, char *err, size_t len,
		const char *fmt, ...)
{
	va_list ap;
	int n;

	assert(kind < CONN_REFUSED_MAX);
	n = snprintf(err, len, "tenant '%s': ", c->tenant->name);
	if (n >= 0 && (size_t)n < len) {
		va_start(ap, fmt);
		vsnprintf(err + n, len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	if (!(c->refused & (1u << kind))) {
		c->refused |= 1u << kind;
		log_notice("client %s: refused: %s (logged once per connection)",
			   c->name, err);
	}
	return -EDQUOT;
}

static void on_cqe(void *ctx, enum ud_type type, void *p,
		   const struct io_uring_cqe *cqe)
{
	switch (type) {
	case UD_RECV:
		recv_done(p, cqe->res);
		break;
	case UD_SEND:
		send_done(p, cqe->res);
		break;
	default:
		assert(!"conn: not a connection completion");
	}
}

void conns_init(struct conns *t, struct loop *lp, struct stats *st,
		struct tenants *tenants, const struct conn_ops *ops, void *ctx)
{
	memset(t, 0, sizeof(*t));
	t->loop = lp;
	t->st = st;
	t->tenants = tenants;
	t->ops = ops;
	t->ctx = ctx;
	t->listen_fd = -1;
	loop_on(lp, UD_RECV, on_cqe, t);
	loop_on(lp, UD_SEND, on_cqe, t);
}

/* The fds this process has open now. */