/* SPDX-License-Identifier: MIT */
/* The raw protocol client: see rawproto.h. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "data.h"
#include "kvswap.h"
#include "rawproto.h"
#include "tap.h"

#define RAW_MAX_MESSAGE		65536

int raw_connect(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int raw_send_bytes(int fd, const void *buf, size_t len, int pass_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t n;

	if (pass_fd >= 0) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EIO;
	return 0;
}

int raw_send(int fd, const Kvswap__V1__Request *req, int pass_fd)
{
	size_t len = kvswap__v1__request__get_packed_size(req);
	uint8_t *buf;
	int r;

	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	kvswap__v1__request__pack(req, buf);
	r = raw_send_bytes(fd, buf, len, pass_fd);
	free(buf);
	return r;
}

int raw_recv(int fd, int timeout_ms, Kvswap__V1__Event **ret)
{
	static uint8_t buf[RAW_MAX_MESSAGE + 1];
	char cbuf[CMSG_SPACE(16 * sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	Kvswap__V1__Event *ev;
	struct cmsghdr *c;
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;
	/* The daemon has no reason to send fds: drop any. */
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int *fds = (int *)CMSG_DATA(c);
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++)
				close(fds[i]);
		}
	}
	if (n == 0)
		return -ECONNRESET;
	if ((msg.msg_flags & MSG_TRUNC) || n > RAW_MAX_MESSAGE)
		return -EMSGSIZE;
	ev = kvswap__v1__event__unpack(NULL, (size_t)n, buf);
	if (!ev)
		return -EBADMSG;
	*ret = ev;
	return 0;
}

void raw_event_free(Kvswap__V1__Event *ev)
{
	if (ev)
		kvswap__v1__event__free_unpacked(ev, NULL);
}

const char *raw_event_str(const Kvswap__V1__Event *ev, char *buf, size_t size)
{
	static const char *const names[] = {
		[KVSWAP__V1__EVENT__BODY_HELLO] = "hello",
		[KVSWAP__V1__EVENT__BODY_REGION] = "region",
		[KVSWAP__V1__EVENT__BODY_UNREGISTERED] = "unregistered",
		[KVSWAP__V1__EVENT__BODY_SEGMENT] = "segment",
		[KVSWAP__V1__EVENT__BODY_SWAP_OUT] = "swap_out",
		[KVSWAP__V1__EVENT__BODY_SWAP_IN] = "swap_in",
		[KVSWAP__V1__EVENT__BODY_LOOKUP] = "lookup",
		[KVSWAP__V1__EVENT__BODY_DESCRIBE] = "describe",
		[KVSWAP__V1__EVENT__BODY_DELETE] = "delete",
		[KVSWAP__V1__EVENT__BODY_LIST] = "list",
		[KVSWAP__V1__EVENT__BODY_STAT] = "stat",
	};
	unsigned c = ev->body_case;

	if (c == KVSWAP__V1__EVENT__BODY_ERROR) {
		const char *name = kvswap_errno_name(ev->error->code);

		snprintf(buf, size, "id %" PRIu64 " error %s (%d)%s%s: %s",
			 ev->id, name ? name : "?", ev->error->code,
			 ev->error->has_segment ? " segment " : "",
			 ev->error->has_segment ? "set" : "",
			 ev->error->message ? ev->error->message : "(none)");
	} else if (c < sizeof(names) / sizeof(names[0]) && names[c]) {
		snprintf(buf, size, "id %" PRIu64 " %s", ev->id, names[c]);
	} else {
		snprintf(buf, size, "id %" PRIu64 " body %u", ev->id, c);
	}
	return buf;
}

bool raw_wait_closed(int fd, int timeout_ms, unsigned *ret_events)
{
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
	unsigned events = 0;
	bool closed = false;

	for (;;) {
		Kvswap__V1__Event *ev;
		uint64_t now = mono_ms();
		int r;

		if (now >= deadline)
			break;
		r = raw_recv(fd, (int)(deadline - now), &ev);
		if (r == -ECONNRESET) {
			closed = true;
			break;
		}
		if (r == -ETIMEDOUT)
			break;
		if (r == 0)
			raw_event_free(ev);
		else if (r != -EBADMSG && r != -EMSGSIZE)
			break;
		events++;
	}
	if (ret_events)
		*ret_events = events;
	return closed;
}

void raw_result_clear(struct raw_result *r)
{
	raw_event_free(r->final);
	free(r->seg_index);
	free(r->seg_code);
	memset(r, 0, sizeof(*r));
}

int raw_collect(int fd, uint64_t id, int timeout_ms, struct raw_result *r)
{
	unsigned cap = 0;
	char desc[512];
	int ret;

	memset(r, 0, sizeof(*r));
	r->message = "";
	for (;;) {
		Kvswap__V1__Event *ev;
		bool seg = false;
		int code = 0;
		uint32_t index = 0;

		ret = raw_recv(fd, timeout_ms, &ev);
		if (ret < 0)
			goto out_clear;
		if (ev->id != id) {
			diag("raw: unexpected event while waiting for id %" PRIu64
			     ": %s", id, raw_event_str(ev, desc, sizeof(desc)));
			r->foreign++;
			raw_event_free(ev);
			continue;
		}
		if (ev->body_case == KVSWAP__V1__EVENT__BODY_SEGMENT) {
			seg = true;
			index = ev->segment->index;
		} else if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR &&
			   ev->error->has_segment) {
			seg = true;
			index = ev->error->segment;
			code = ev->error->code;
		}
		if (!seg) {
			r->final = ev;
			if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR) {
				r->code = ev->error->code;
				r->message = ev->error->message ?
					     ev->error->message : "";
			}
			return 0;
		}
		if (r->nseg == cap) {
			unsigned ncap = cap ? cap * 2 : 64;
			uint32_t *ni = realloc(r->seg_index,
					       ncap * sizeof(*ni));
			int *nc;

			if (!ni) {
				raw_event_free(ev);
				ret = -ENOMEM;
				goto out_clear;
			}
			r->seg_index = ni;
			nc = realloc(r->seg_code, ncap * sizeof(*nc));
			if (!nc) {
				raw_event_free(ev);
				ret = -ENOMEM;
				goto out_clear;
			}
			r->seg_code = nc;
			cap = ncap;
		}
		r->seg_index[r->nseg] = index;
		r->seg_code[r->nseg] = code;
		r->nseg++;
		raw_event_free(ev);
	}

out_clear:
	raw_result_clear(r);
	return ret;
}

int raw_hello(int fd, uint32_t version)
{
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Hello hello = KVSWAP__V1__HELLO__INIT;
	struct raw_result res;
	int r;

	hello.has_version = 1;
	hello.version = version;
	hello.client_name = (char *)"kvswap-test";
	req.has_id = 1;
	req.id = 1;
	req.body_case = KVSWAP__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	r = raw_send(fd, &req, -1);
	if (r < 0)
		return r;
	r = raw_collect(fd, 1, 10000, &res);
	if (r < 0)
		return r;
	if (res.code)
		r = res.code;
	else if (res.final->body_case != KVSWAP__V1__EVENT__BODY_HELLO)
		r = -EPROTO;
	raw_result_clear(&res);
	return r;
}

int raw_open(const char *path, int *ret_fd)
{
	int fd, r;

	r = raw_connect(path, &fd);
	if (r < 0) {
		diag("raw connect %s: %s", path, strerror(-r));
		return r;
	}
	r = raw_hello(fd, 1);
	if (r != 0) {
		diag("raw hello: %s", r < 0 ? strerror(-r) : strerror(r));
		close(fd);
		return r < 0 ? r : -r;
	}
	*ret_fd = fd;
	return 0;
}

static void raw_req_init(Kvswap__V1__Request *req, uint64_t id)
{
	kvswap__v1__request__init(req);
	req->has_id = 1;
	req->id = id;
}

int raw_send_register(int fd, uint64_t id, uint64_t size, int memfd)
{
	Kvswap__V1__Request req;
	Kvswap__V1__RegisterRegion body = KVSWAP__V1__REGISTER_REGION__INIT;

	raw_req_init(&req, id);
	body.has_size = 1;
	body.size = size;
	req.body_case = KVSWAP__V1__REQUEST__BODY_REGISTER_REGION;
	req.register_region = &body;
	return raw_send(fd, &req, memfd);
}

int raw_send_unregister(int fd, uint64_t id, uint32_t region)
{
	Kvswap__V1__Request req;
	Kvswap__V1__UnregisterRegion body = KVSWAP__V1__UNREGISTER_REGION__INIT;

	raw_req_init(&req, id);
	body.has_region = 1;
	body.region = region;
	req.body_case = KVSWAP__V1__REQUEST__BODY_UNREGISTER_REGION;
	req.unregister_region = &body;
	return raw_send(fd, &req, -1);
}

int raw_send_swap_out(int fd, uint64_t id, const void *key, size_t key_len,
		      uint32_t region, const struct kvswap_seg_out *segs,
		      uint32_t nseg, const void *meta, size_t meta_len,
		      uint32_t flags)
{
	Kvswap__V1__Request req;
	Kvswap__V1__SwapOut body = KVSWAP__V1__SWAP_OUT__INIT;
	Kvswap__V1__SegmentOut *s = NULL, **sp = NULL;
	int r;

	if (nseg) {
		s = calloc(nseg, sizeof(*s));
		sp = calloc(nseg, sizeof(*sp));
		if (!s || !sp) {
			r = -ENOMEM;
			goto out_free;
		}
	}
	for (uint32_t i = 0; i < nseg; i++) {
		kvswap__v1__segment_out__init(&s[i]);
		s[i].has_offset = 1;
		s[i].offset = segs[i].offset;
		s[i].has_length = 1;
		s[i].length = segs[i].length;
		sp[i] = &s[i];
	}
	raw_req_init(&req, id);
	body.has_key = 1;
	body.key.data = (uint8_t *)key;
	body.key.len = key_len;
	body.has_region = 1;
	body.region = region;
	body.n_segments = nseg;
	body.segments = sp;
	if (meta) {
		body.has_metadata = 1;
		body.metadata.data = (uint8_t *)meta;
		body.metadata.len = meta_len;
	}
	body.has_flags = 1;
	body.flags = flags;
	req.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT;
	req.swap_out = &body;
	r = raw_send(fd, &req, -1);
out_free:
	free(sp);
	free(s);
	return r;
}

int raw_send_swap_in(int fd, uint64_t id, const void *key, size_t key_len,
		     uint32_t region, const struct kvswap_seg_in *segs,
		     uint32_t nseg)
{
	Kvswap__V1__Request req;
	Kvswap__V1__SwapIn body = KVSWAP__V1__SWAP_IN__INIT;
	Kvswap__V1__SegmentIn *s = NULL, **sp = NULL;
	int r;

	if (nseg) {
		s = calloc(nseg, sizeof(*s));
		sp = calloc(nseg, sizeof(*sp));
		if (!s || !sp) {
			r = -ENOMEM;
			goto out_free;
		}
	}
	for (uint32_t i = 0; i < nseg; i++) {
		kvswap__v1__segment_in__init(&s[i]);
		s[i].has_index = 1;
		s[i].index = segs[i].index;
		s[i].has_offset = 1;
		s[i].offset = segs[i].offset;
		sp[i] = &s[i];
	}
	raw_req_init(&req, id);
	body.has_key = 1;
	body.key.data = (uint8_t *)key;
	body.key.len = key_len;
	body.has_region = 1;
	body.region = region;
	body.n_segments = nseg;
	body.segments = sp;
	req.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_IN;
	req.swap_in = &body;
	r = raw_send(fd, &req, -1);
out_free:
	free(sp);
	free(s);
	return r;
}

int raw_send_describe(int fd, uint64_t id, const void *key, size_t key_len)
{
	Kvswap__V1__Request req;
	Kvswap__V1__Describe body = KVSWAP__V1__DESCRIBE__INIT;

	raw_req_init(&req, id);
	body.has_key = 1;
	body.key.data = (uint8_t *)key;
	body.key.len = key_len;
	req.body_case = KVSWAP__V1__REQUEST__BODY_DESCRIBE;
	req.describe = &body;
	return raw_send(fd, &req, -1);
}

int raw_send_delete(int fd, uint64_t id, const void *key, size_t key_len)
{
	Kvswap__V1__Request req;
	Kvswap__V1__Delete body = KVSWAP__V1__DELETE__INIT;

	raw_req_init(&req, id);
	body.has_key = 1;
	body.key.data = (uint8_t *)key;
	body.key.len = key_len;
	req.body_case = KVSWAP__V1__REQUEST__BODY_DELETE;
	req.delete_ = &body;
	return raw_send(fd, &req, -1);
}

int raw_send_stat(int fd, uint64_t id)
{
	Kvswap__V1__Request req;
	Kvswap__V1__Stat body = KVSWAP__V1__STAT__INIT;

	raw_req_init(&req, id);
	req.body_case = KVSWAP__V1__REQUEST__BODY_STAT;
	req.stat = &body;
	return raw_send(fd, &req, -1);
}
