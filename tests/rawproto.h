/* SPDX-License-Identifier: MIT */
/*
 * A raw protocol client: packs and sends single requests and receives
 * events on a SOCK_SEQPACKET connection to kvswapd, with none of
 * libkvswap's checks, so that tests can send what libkvswap never would.
 *
 * Functions return 0 or a negative errno unless said otherwise.
 */
#ifndef KVSWAP_TEST_RAWPROTO_H
#define KVSWAP_TEST_RAWPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvswap.h"
#include "kvswap.pb-c.h"

/* Connects a SOCK_SEQPACKET socket to path; no Hello is sent. */
int raw_connect(const char *path, int *ret_fd);

/* Sends one packet, with pass_fd in SCM_RIGHTS if pass_fd >= 0. */
int raw_send_bytes(int fd, const void *buf, size_t len, int pass_fd);

/* Packs and sends one Request. */
int raw_send(int fd, const Kvswap__V1__Request *req, int pass_fd);

/*
 * Receives one Event within timeout_ms (-1: forever). Returns 0 and the
 * event (free with raw_event_free()), -ETIMEDOUT, -ECONNRESET when the
 * daemon closed the connection, -EMSGSIZE for a packet over 65536 bytes,
 * or -EBADMSG if it does not unpack.
 */
int raw_recv(int fd, int timeout_ms, Kvswap__V1__Event **ret);

void raw_event_free(Kvswap__V1__Event *ev);

/* "error EINVAL: message", "swap_out", ...: for diagnostics. */
const char *raw_event_str(const Kvswap__V1__Event *ev, char *buf, size_t size);

/*
 * Waits at most timeout_ms for the daemon to close the connection; events
 * arriving first are discarded (and counted in *ret_events if not NULL).
 * Returns true if it closed.
 */
bool raw_wait_closed(int fd, int timeout_ms, unsigned *ret_events);

/* Everything the daemon sent for one request. */
struct raw_result {
	Kvswap__V1__Event *final;	/* the final event, or NULL */
	uint32_t *seg_index;		/* SegmentDone / segment Error indices */
	int *seg_code;			/* 0 or the segment's error code */
	unsigned nseg;			/* per-segment events, in arrival order */
	unsigned foreign;		/* events of other ids (discarded) */
	int code;			/* final error code, 0 for a reply */
	const char *message;		/* final error message, or "" */
};

/*
 * Receives the events of request `id` until its final one (timeout_ms for
 * each). Returns 0 with *r filled (clear it with raw_result_clear()),
 * -ETIMEDOUT, -ECONNRESET, or another negative errno from raw_recv().
 */
int raw_collect(int fd, uint64_t id, int timeout_ms, struct raw_result *r);
void raw_result_clear(struct raw_result *r);

/* Sends Hello{version} with id 1 and returns its final event's code. */
int raw_hello(int fd, uint32_t version);

/* Connects and completes Hello v1. */
int raw_open(const char *path, int *ret_fd);

/* Builders: each packs one request with id `id` and sends it. */
int raw_send_register(int fd, uint64_t id, uint64_t size, int memfd);
int raw_send_unregister(int fd, uint64_t id, uint32_t region);
int raw_send_swap_out(int fd, uint64_t id, const void *key, size_t key_len,
		      uint32_t region, const struct kvswap_seg_out *segs,
		      uint32_t nseg, const void *meta, size_t meta_len,
		      uint32_t flags);
int raw_send_swap_in(int fd, uint64_t id, const void *key, size_t key_len,
		     uint32_t region, const struct kvswap_seg_in *segs,
		     uint32_t nseg);
int raw_send_describe(int fd, uint64_t id, const void *key, size_t key_len);
int raw_send_delete(int fd, uint64_t id, const void *key, size_t key_len);
int raw_send_stat(int fd, uint64_t id);

#endif
