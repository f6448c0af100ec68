/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one thread, one ring. Every operation's user_data names
 * its owner and type (server.h); completions are drained in batches and
 * dispatched by type, then queued segments are submitted up to the queue
 * depth, and everything goes to the kernel in the next
 * io_uring_submit_and_wait().
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "region.h"
#include "server.h"
#include "xfer.h"

#define SQ_ENTRIES 1024
#define CQ_ENTRIES 8192

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void submit_or_die(struct server *srv)
{
	int ret = io_uring_submit(&srv->ring);

	/* Submitting only fails on a broken ring or a daemon bug. */
	if (ret < 0) {
		log_err("io_uring_submit: %s", strerror(-ret));
		abort();
	}
}

struct io_uring_sqe *server_sqe(struct server *srv)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&srv->ring);

	if (!sqe) {
		submit_or_die(srv);
		sqe = io_uring_get_sqe(&srv->ring);
	}
	return sqe;
}

void server_sq_reserve(struct server *srv, unsigned n)
{
	if (io_uring_sq_space_left(&srv->ring) < n)
		submit_or_die(srv);
}

static int ring_setup(struct server *srv, char *err, size_t len)
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
	static const int ops[] = {
		IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_SEND,
		IORING_OP_RECVMSG, IORING_OP_ACCEPT, IORING_OP_READ,
		IORING_OP_ASYNC_CANCEL, IORING_OP_TIMEOUT, IORING_OP_WRITE,
		IORING_OP_FSYNC,
	};
	struct io_uring_params p;
	struct io_uring_probe *probe;
	unsigned i;
	int ret = -EINVAL;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		memset(&p, 0, sizeof(p));
		/* Disabled until restricted: see restrict_ring(). */
		p.flags = modes[i].flags | IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED;
		p.cq_entries = CQ_ENTRIES;
		ret = io_uring_queue_init_params(SQ_ENTRIES, &srv->ring, &p);
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
	probe = io_uring_get_probe_ring(&srv->ring);
	if (!probe) {
		snprintf(err, len, "io_uring: cannot probe supported operations");
		return -EOPNOTSUPP;
	}
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!io_uring_opcode_supported(probe, ops[i])) {
			snprintf(err, len, "io_uring lacks operation %d", ops[i]);
			io_uring_free_probe(probe);
			return -EOPNOTSUPP;
		}
	}
	io_uring_free_probe(probe);
	return 0;
}

static int register_resources(struct server *srv, char *err, size_t len)
{
	int fds[STORE_MAX_FILES];
	struct iovec iov;
	__u64 tag = 0;
	size_t bytes = (size_t)srv->cfg.queue_depth * srv->store.block;
	int ret;

	for (uint32_t i = 0; i < srv->store.nfiles; i++)
		fds[i] = srv->store.files[i].fd;
	ret = io_uring_register_files(&srv->ring, fds, srv->store.nfiles);
	if (ret < 0) {
		snprintf(err, len, "registering store files: %s", strerror(-ret));
		return ret;
	}
	if (posix_memalign((void **)&srv->bounce, srv->store.block, bytes))
		return -ENOMEM;
	memset(srv->bounce, 0, bytes);
	srv->bounce_free = calloc(srv->cfg.queue_depth, sizeof(uint32_t));
	srv->scratch = calloc((size_t)KVS_MAX_SEGMENTS * KVS_MAX_EXTENTS,
			      sizeof(*srv->scratch));
	if (!srv->bounce_free || !srv->scratch)
		return -ENOMEM;
	for (uint32_t i = 0; i < srv->cfg.queue_depth; i++)
		srv->bounce_free[srv->nbounce_free++] = srv->cfg.queue_depth - 1 - i;
	ret = io_uring_register_buffers_sparse(&srv->ring, KVS_BUF_SLOTS);
	if (ret < 0) {
		snprintf(err, len, "registering a sparse buffer table: %s",
			 strerror(-ret));
		return ret;
	}
	iov = (struct iovec){ srv->bounce, bytes };
	ret = io_uring_register_buffers_update_tag(&srv->ring, 0, &iov, &tag, 1);
	if (ret < 0) {
		snprintf(err, len, "registering %zu bytes of bounce buffers: %s%s",
			 bytes, strerror(-ret), ret == -ENOMEM ?
			 " (RLIMIT_MEMLOCK too low: raise LimitMEMLOCK= or ulimit -l)"
			 : "");
		return ret;
	}
	srv->slot_map[0] = 1;
	/* Saves an fdget per io_uring_enter; optional. */
	io_uring_register_ring_fd(&srv->ring);
	return 0;
}

/*
 * Ring operations bypass seccomp, so the ring itself is limited to what
 * the daemon uses: these opcodes and flags, and buffer updates.
 */
static int restrict_ring(struct server *srv, char *err, size_t len)
{
	static const uint8_t ops[] = {
		IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_SEND,
		IORING_OP_RECVMSG, IORING_OP_ACCEPT, IORING_OP_READ,
		IORING_OP_WRITE, IORING_OP_ASYNC_CANCEL, IORING_OP_TIMEOUT,
		IORING_OP_FSYNC,
	};
	struct io_uring_restriction res[sizeof(ops) + 2];
	unsigned n = 0;
	int ret;

	memset(res, 0, sizeof(res));
	for (unsigned i = 0; i < sizeof(ops); i++) {
		res[n].opcode = IORING_RESTRICTION_SQE_OP;
		res[n++].sqe_op = ops[i];
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
	ret = (int)syscall(__NR_io_uring_register, srv->ring.ring_fd,
			   IORING_REGISTER_RESTRICTIONS, res, n);
	if (ret == 0)
		ret = (int)syscall(__NR_io_uring_register, srv->ring.ring_fd,
				   IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (ret < 0)
		ret = -errno;
	if (ret < 0)
		snprintf(err, len, "io_uring: restricting the ring: %s",
			 strerror(-ret));
	return ret;
}

static void signal_arm(struct server *srv)
{
	struct io_uring_sqe *sqe = server_sqe(srv);

	io_uring_prep_read(sqe, srv->signal_fd, &srv->siginfo,
			   sizeof(srv->siginfo), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_SIGNAL));
}

#define STATUS_INTERVAL_MS 5000
/* On SIGTERM, requests in flight get this long to finish. */
#define DRAIN_MS 10000

static void tick_arm(struct server *srv)
{
	struct io_uring_sqe *sqe = server_sqe(srv);

	io_uring_prep_timeout(sqe, &srv->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_TICK));
}

/* One line for `systemctl status`: capacity, use, throughput. */
static void status_update(struct server *srv)
{
	uint64_t now = now_ms(), dt = now - srv->last_status_ms;
	uint64_t used = srv->store.capacity - store_avail(&srv->store);
	double in = 0, out = 0;

	if (dt && srv->last_status_ms) {
		in = (double)(srv->st.bytes_in - srv->last_status.bytes_in) * 1000 /
		     (double)dt / (1 << 20);
		out = (double)(srv->st.bytes_out - srv->last_status.bytes_out) * 1000 /
		      (double)dt / (1 << 20);
	}
	sd_notifyf(0, "STATUS=%llu of %llu MiB used, %llu entries, %u clients; "
		   "out %.1f MiB/s, in %.1f MiB/s",
		   (unsigned long long)(used >> 20),
		   (unsigned long long)(srv->store.capacity >> 20),
		   (unsigned long long)srv->index.count, srv->nconns, in, out);
	srv->last_status_ms = now;
	srv->last_status = srv->st;
}

/*
 * The watchdog is pinged from the loop itself: a loop stuck anywhere stops
 * pinging, and systemd restarts the daemon.
 */
static void on_tick(struct server *srv)
{
	if (srv->watchdog_usec)
		sd_notify(0, "WATCHDOG=1");
	journal_kick(srv);
	if (now_ms() - srv->last_status_ms >= STATUS_INTERVAL_MS - 100)
		status_update(srv);
	tick_arm(srv);
}

static void tick_start(struct server *srv)
{
	uint64_t usec = STATUS_INTERVAL_MS * 1000ull;

	if (sd_watchdog_enabled(0, &srv->watchdog_usec) > 0) {
		if (srv->watchdog_usec / 2 < usec)
			usec = srv->watchdog_usec / 2;
		log_info("watchdog: pinging every %llu ms",
			 (unsigned long long)(usec / 1000));
	} else {
		srv->watchdog_usec = 0;
	}
	srv->tick_ts.tv_sec = (long long)(usec / 1000000);
	srv->tick_ts.tv_nsec = (long long)(usec % 1000000) * 1000;
	status_update(srv);
	tick_arm(srv);
}

static void on_signal(struct server *srv, int res)
{
	struct io_uring_sqe *sqe;

	if (res != sizeof(srv->siginfo)) {
		log_err("reading signalfd: %s", res < 0 ? strerror(-res) : "short read");
		signal_arm(srv);
		return;
	}
	signal_arm(srv);
	if (srv->siginfo.ssi_signo == SIGHUP) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
			   (unsigned long long)ts.tv_sec * 1000000 +
			   (unsigned long long)ts.tv_nsec / 1000);
		if (srv->reload)
			srv->reload(srv);
		else
			log_notice("SIGHUP: nothing to reload");
		sd_notify(0, "READY=1");
		status_update(srv);
		return;
	}
	if (srv->quit) {
		log_warn("%s again: exiting without draining",
			 strsignal((int)srv->siginfo.ssi_signo));
		exit(1);
	}
	log_notice("%s: finishing the requests of %u clients, then a checkpoint",
		   strsignal((int)srv->siginfo.ssi_signo), srv->nconns);
	sd_notify(0, "STOPPING=1");
	srv->quit = true;
	srv->drain_deadline_ms = now_ms() + DRAIN_MS;
	sqe = server_sqe(srv);
	io_uring_prep_cancel64(sqe, ud_make(NULL, UD_ACCEPT), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_NONE));
	conn_drain(srv, false);
}

static void dispatch(struct server *srv, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum ud_type type = ud_type(ud);
	void *p = ud_ptr(ud);

	switch (type) {
	case UD_ACCEPT:
		conn_accept_done(srv, cqe);
		break;
	case UD_SIGNAL:
		on_signal(srv, cqe->res);
		break;
	case UD_RECV:
		conn_recv_done(srv, p, cqe->res);
		break;
	case UD_SEND:
		conn_send_done(srv, p, cqe->res);
		break;
	case UD_SEG_IO:
	case UD_SEG_SEND:
	case UD_SEG_TAIL:
		xfer_seg_cqe(srv, type, p, cqe->res);
		break;
	case UD_BUFTAG:
		region_tag(srv, p);
		break;
	case UD_TICK:
		on_tick(srv);
		break;
	case UD_JOURNAL:
		journal_cqe(srv, cqe->res);
		break;
	case UD_NONE:
		break;
	}
}

int server_init(struct server *srv, const struct config *cfg, char *err,
		size_t len)
{
	sigset_t mask;
	int ret;

	memset(srv, 0, sizeof(*srv));
	srv->cfg = *cfg;
	srv->listen_fd = -1;
	srv->signal_fd = -1;
	srv->start_ms = now_ms();
	ret = index_init(&srv->index);
	if (ret < 0) {
		snprintf(err, len, "index: %s", strerror(-ret));
		return ret;
	}
	ret = store_open(&srv->store, cfg->store_paths, cfg->store_size, err, len);
	if (ret < 0)
		return ret;
	ret = journal_recover(srv, err, len);
	if (ret < 0)
		return ret;
	ret = ring_setup(srv, err, len);
	if (ret < 0)
		return ret;
	ret = register_resources(srv, err, len);
	if (ret < 0) {
		if (ret == -ENOMEM && !*err)
			snprintf(err, len, "out of memory");
		return ret;
	}
	ret = restrict_ring(srv, err, len);
	if (ret < 0)
		return ret;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	srv->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (srv->signal_fd < 0) {
		snprintf(err, len, "signalfd: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int server_run(struct server *srv)
{
	signal_arm(srv);
	conn_accept_arm(srv);
	tick_start(srv);
	while (!srv->quit || srv->nconns || !journal_idle(srv)) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret;

		ret = io_uring_submit_and_wait(&srv->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_err("io_uring_submit_and_wait: %s", strerror(-ret));
			return ret;
		}
		io_uring_for_each_cqe(&srv->ring, head, cqe) {
			dispatch(srv, cqe);
			n++;
		}
		io_uring_cq_advance(&srv->ring, n);
		xfer_pump(srv);
		journal_kick(srv);
		if (srv->quit)
			conn_drain(srv, now_ms() > srv->drain_deadline_ms);
		conn_reap(srv);
	}
	return 0;
}

void server_fini(struct server *srv)
{
	if (srv->ring.ring_fd > 0)
		io_uring_queue_exit(&srv->ring);
	store_close(&srv->store);
	index_clear(&srv->index);
	index_fini(&srv->index);
	free(srv->jr.buf);
	if (srv->signal_fd >= 0)
		close(srv->signal_fd);
	free(srv->bounce);
	free(srv->bounce_free);
	free(srv->scratch);
}
