/* SPDX-License-Identifier: MIT */
/*
 * The event loop (loop.h): the ring, its restrictions, the buffer table's
 * slots, and dispatch of completions to the handlers modules registered.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define SQ_ENTRIES 1024
#define CQ_ENTRIES 8192

/* The operations the daemon uses: checked at start, and all it may use. */
static const uint8_t loop_ops[] = {
	IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_SEND,
	IORING_OP_RECVMSG, IORING_OP_ACCEPT, IORING_OP_READ,
	IORING_OP_ASYNC_CANCEL, IORING_OP_TIMEOUT, IORING_OP_WRITE,
	IORING_OP_FSYNC,
};

static void submit_or_die(struct loop *lp)
{
	int ret = io_uring_submit(&lp->ring);

	/* Submitting only fails on a broken ring or a daemon bug. */
	if (ret < 0) {
		log_err("io_uring_submit: %s", strerror(-ret));
		abort();
	}
}

struct io_uring_sqe *loop_sqe(struct loop *lp)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&lp->ring);

	if (!sqe) {
		submit_or_die(lp);
		sqe = io_uring_get_sqe(&lp->ring);
	}
	assert(sqe);
	return sqe;
}

void loop_sq_reserve(struct loop *lp, unsigned n)
{
	assert(n <= SQ_ENTRIES);
	if (io_uring_sq_space_left(&lp->ring) < n)
		submit_or_die(lp);
}

int loop_init(struct loop *lp, char *err, size_t len)
{
	static const struct {
		unsigned flags;
		const char *what;
	} modes[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		  "single issuer, deferred task work" },
		{ IORING_SETUP_COOP_TASKRUN, "cooperative task work" },
		{ 0, "plain task work" },
	};
	struct io_uring_params p;
	struct io_uring_probe *probe;
	unsigned i;
	int ret = -EINVAL;

	memset(lp, 0, sizeof(*lp));
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		memset(&p, 0, sizeof(p));
		/* Disabled until restricted: see loop_enable(). */
		p.flags = modes[i].flags | IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED;
		p.cq_entries = CQ_ENTRIES;
		ret = io_uring_queue_init_params(SQ_ENTRIES, &lp->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret == -EPERM || ret == -ENOSYS) {
		snprintf(err, len, "io_uring is refused by the kernel (%s): check "
			 "sysctl kernel.io_uring_disabled and the seccomp or "
			 "container policy", strerror(-ret));
		return ret;
	}
	if (ret < 0) {
		snprintf(err, len, "io_uring_queue_init: %s", strerror(-ret));
		return ret;
	}
	lp->ready = true;
	if (i > 0)
		log_notice("io_uring: the kernel refused %s; using %s",
			   modes[0].what, modes[i].what);
	else
		log_info("io_uring: %s", modes[i].what);
	if (!(p.features & IORING_FEAT_CQE_SKIP) || !(p.features & IORING_FEAT_NODROP)) {
		snprintf(err, len, "io_uring lacks %s (kernel 5.17 or later needed)",
			 p.features & IORING_FEAT_NODROP ? "IORING_FEAT_CQE_SKIP"
							 : "IORING_FEAT_NODROP");
		return -EOPNOTSUPP;
	}
	probe = io_uring_get_probe_ring(&lp->ring);
	if (!probe) {
		snprintf(err, len, "io_uring: cannot probe supported operations");
		return -EOPNOTSUPP;
	}
	for (i = 0; i < sizeof(loop_ops); i++) {
		if (!io_uring_opcode_supported(probe, loop_ops[i])) {
			snprintf(err, len, "io_uring lacks operation %d", loop_ops[i]);
			io_uring_free_probe(probe);
			return -EOPNOTSUPP;
		}
	}
	io_uring_free_probe(probe);
	ret = io_uring_register_buffers_sparse(&lp->ring, LOOP_BUF_SLOTS);
	if (ret < 0) {
		snprintf(err, len, "registering a sparse buffer table: %s",
			 strerror(-ret));
		return ret;
	}
	/*
	 * Saves an fdget per io_uring_enter; optional. Before loop_enable():
	 * the restrictions allow no register operation but buffer updates.
	 */
	ret = io_uring_register_ring_fd(&lp->ring);
	if (ret != 1)
		log_info("io_uring: ring fd not registered (%s); each enter "
			 "looks it up", ret < 0 ? strerror(-ret) : "none");
	return 0;
}

int loop_enable(struct loop *lp, char *err, size_t len)
{
	struct io_uring_restriction res[sizeof(loop_ops) + 2];
	unsigned n = 0;
	int ret;

	memset(res, 0, sizeof(res));
	for (unsigned i = 0; i < sizeof(loop_ops); i++) {
		res[n].opcode = IORING_RESTRICTION_SQE_OP;
		res[n++].sqe_op = loop_ops[i];
	}
	res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
	res[n++].sqe_flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK |
			     IOSQE_CQE_SKIP_SUCCESS | IOSQE_ASYNC;
	res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
	res[n++].register_op = IORING_REGISTER_BUFFERS_UPDATE;
	/*
	 * Debian's liburing 2.3 declares io_uring_register_restrictions() and
	 * io_uring_enable_rings() but its shared library does not export
	 * them: call the register syscall directly.
	 */
	ret = (int)syscall(__NR_io_uring_register, lp->ring.ring_fd,
			   IORING_REGISTER_RESTRICTIONS, res, n);
	if (ret == 0)
		ret = (int)syscall(__NR_io_uring_register, lp->ring.ring_fd,
				   IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (ret < 0)
		ret = -errno;
	if (ret < 0) {
		snprintf(err, len, "io_uring: restricting the ring: %s",
			 strerror(-ret));
		return ret;
	}
	return 0;
}

void loop_fini(struct loop *lp)
{
	if (lp->ready)
		io_uring_queue_exit(&lp->ring);
	lp->ready = false;
}

void loop_on(struct loop *lp, enum ud_type type, loop_cqe_fn *fn, void *ctx)
{
	assert(type > UD_NONE && type < UD_MAX && !lp->handler[type].fn);
	lp->handler[type].fn = fn;
	lp->handler[type].ctx = ctx;
}

void loop_after_batch(struct loop *lp, loop_batch_fn *fn, void *ctx)
{
	assert(lp->nhooks < LOOP_MAX_HOOKS);
	lp->hook[lp->nhooks].fn = fn;
	lp->hook[lp->nhooks++].ctx = ctx;
}

int loop_slots_get(struct loop *lp, uint32_t n, uint32_t *ret_first)
{
	uint32_t run = 0;

	for (uint32_t i = 1; i < LOOP_BUF_SLOTS; i++) {
		if (lp->slot_map[i / 64] & (1ull << (i % 64))) {
			run = 0;
			continue;
		}
		if (++run == n) {
			uint32_t first = i + 1 - n;

			for (uint32_t j = first; j <= i; j++)
				lp->slot_map[j / 64] |= 1ull << (j % 64);
			*ret_first = first;
			return 0;
		}
	}
	return -ENOSPC;
}

void loop_slots_put(struct loop *lp, uint32_t first, uint32_t n)
{
	assert(first > 0 && first + n <= LOOP_BUF_SLOTS);
	for (uint32_t j = first; j < first + n; j++) {
		assert(lp->slot_map[j / 64] & (1ull << (j % 64)));
		lp->slot_map[j / 64] &= ~(1ull << (j % 64));
	}
}

static void dispatch(struct loop *lp, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum ud_type type = ud_type(ud);

	if (type == UD_NONE)
		return;
	assert(type < UD_MAX && lp->handler[type].fn);
	lp->handler[type].fn(lp->handler[type].ctx, type, ud_ptr(ud), cqe);
}

int loop_run(struct loop *lp, bool (*running)(void *ctx), void *ctx)
{
	while (running(ctx)) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret;

		ret = io_uring_submit_and_wait(&lp->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_err("io_uring_submit_and_wait: %s", strerror(-ret));
			return ret;
		}
		io_uring_for_each_cqe(&lp->ring, head, cqe) {
			dispatch(lp, cqe);
			n++;
		}
		io_uring_cq_advance(&lp->ring, n);
		for (unsigned i = 0; i < lp->nhooks; i++)
			lp->hook[i].fn(lp->hook[i].ctx);
	}
	return 0;
}
