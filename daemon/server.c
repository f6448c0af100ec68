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
#include "recover.h"
#include "region.h"
#include "server.h"
#include "xfer.h"

static int register_resources(struct server *srv, char *err, size_t len)
{
	int fds[STORE_MAX_FILES];
	struct iovec iov;
	__u64 tag = 0;
	size_t bytes = (size_t)srv->cfg.queue_depth * srv->store.block;
	int ret;

	for (uint32_t i = 0; i < srv->store.nfiles; i++)
		fds[i] = srv->store.files[i].fd;
	ret = io_uring_register_files(&srv->loop.ring, fds, srv->store.nfiles);
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
	iov = (struct iovec){ srv->bounce, bytes };
	ret = io_uring_register_buffers_update_tag(&srv->loop.ring, 0, &iov, &tag, 1);
	if (ret < 0) {
		snprintf(err, len, "registering %zu bytes of bounce buffers: %s%s",
			 bytes, strerror(-ret), ret == -ENOMEM ?
			 " (RLIMIT_MEMLOCK too low: raise LimitMEMLOCK= or ulimit -l)"
			 : "");
		return ret;
	}
	/* Slot 0 is the bounce pool's. */
	srv->loop.slot_map[0] = 1;
	return 0;
}

static void signal_arm(struct server *srv)
{
	struct io_uring_sqe *sqe = loop_sqe(&srv->loop);

	io_uring_prep_read(sqe, srv->signal_fd, &srv->siginfo,
			   sizeof(srv->siginfo), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_SIGNAL));
}

#define STATUS_INTERVAL_MS 5000
/* On SIGTERM, requests in flight get this long to finish. */
#define DRAIN_MS 10000

static void tick_arm(struct server *srv)
{
	struct io_uring_sqe *sqe = loop_sqe(&srv->loop);

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
	journal_kick(&srv->jr);
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
	sqe = loop_sqe(&srv->loop);
	io_uring_prep_cancel64(sqe, ud_make(NULL, UD_ACCEPT), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_NONE));
	conn_drain(srv, false);
}

/* Completion handlers: adapters from the loop's typed callbacks. */
static void on_cqe(void *ctx, enum ud_type type, void *p,
		   const struct io_uring_cqe *cqe)
{
	struct server *srv = ctx;

	switch (type) {
	case UD_ACCEPT:
		conn_accept_done(srv, (struct io_uring_cqe *)cqe);
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
	default:
		break;
	}
}

/* Space freed by a commit may let parked swap-outs run. */
static void on_journal_progress(void *ctx)
{
	xfer_space_retry(ctx);
}

static void after_batch(void *ctx)
{
	struct server *srv = ctx;

	xfer_pump(srv);
	journal_kick(&srv->jr);
	if (srv->quit)
		conn_drain(srv, now_ms() > srv->drain_deadline_ms);
	conn_reap(srv);
}

static bool running(void *ctx)
{
	struct server *srv = ctx;

	return !srv->quit || srv->nconns || !journal_idle(&srv->jr);
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
	ret = loop_init(&srv->loop, err, len);
	if (ret < 0)
		return ret;
	/* Recovery needs the journal, which registers with the loop. */
	journal_init(&srv->jr, &srv->store, &srv->index, &srv->loop);
	journal_on_progress(&srv->jr, on_journal_progress, srv);
	ret = journal_recover(&srv->jr, err, len);
	if (ret < 0)
		return ret;
	for (enum ud_type t = UD_NONE + 1; t < UD_MAX; t++)
		if (t != UD_JOURNAL)
			loop_on(&srv->loop, t, on_cqe, srv);
	loop_after_batch(&srv->loop, after_batch, srv);
	ret = register_resources(srv, err, len);
	if (ret < 0) {
		if (ret == -ENOMEM && !*err)
			snprintf(err, len, "out of memory");
		return ret;
	}
	ret = loop_enable(&srv->loop, err, len);
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
	return loop_run(&srv->loop, running, srv);
}

void server_fini(struct server *srv)
{
	loop_fini(&srv->loop);
	journal_fini(&srv->jr);
	store_close(&srv->store);
	index_clear(&srv->index);
	index_fini(&srv->index);
	if (srv->signal_fd >= 0)
		close(srv->signal_fd);
	free(srv->bounce);
	free(srv->bounce_free);
	free(srv->scratch);
}
