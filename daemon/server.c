/* SPDX-License-Identifier: MIT */
/*
 * The daemon's lifetime (server.h): its modules set up in dependency
 * order and wired together, signals, the watchdog and STATUS= timer, and
 * an orderly shutdown. The loop itself is loop.c; requests are control.c
 * and xfer.c; entries are catalog.c.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "recover.h"
#include "server.h"
#include "swap.h"

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
		   (unsigned long long)srv->cat.index.count, srv->conns.count, in, out);
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
		   strsignal((int)srv->siginfo.ssi_signo), srv->conns.count);
	sd_notify(0, "STOPPING=1");
	srv->quit = true;
	srv->drain_deadline_ms = now_ms() + DRAIN_MS;
	conns_drain(&srv->conns, false);
}

/* Completions of the server's own operations. */
static void on_cqe(void *ctx, enum ud_type type, void *p,
		   const struct io_uring_cqe *cqe)
{
	struct server *srv = ctx;

	switch (type) {
	case UD_SIGNAL:
		on_signal(srv, cqe->res);
		break;
	case UD_TICK:
		on_tick(srv);
		break;
	case UD_LEASE_TIMER:
		srv->lease_timer_ms = 0;
		catalog_leases_due(&srv->cat);
		break;
	default:
		break;
	}
}

/*
 * A swap-out waits for leases to run out (WAIT_LEASES): a timeout at the
 * earliest, re-armed only for an earlier time (a later wake-up finds the
 * waiters retried and waiting again if need be).
 */
static void lease_timer_arm(struct server *srv)
{
	uint64_t wake = srv->cat.lease_wake_ms, now = now_ms(), ms;
	struct io_uring_sqe *sqe;

	if (!wake || (srv->lease_timer_ms && srv->lease_timer_ms <= wake))
		return;
	ms = wake > now ? wake - now + 1 : 1;
	srv->lease_ts.tv_sec = (long long)(ms / 1000);
	srv->lease_ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	sqe = loop_sqe(&srv->loop);
	io_uring_prep_timeout(sqe, &srv->lease_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_LEASE_TIMER));
	srv->lease_timer_ms = wake;
}

/* After each batch: queued segments, queued records, shutdown progress. */
static void after_batch(void *ctx)
{
	struct server *srv = ctx;

	catalog_kick(&srv->cat);
	lease_timer_arm(srv);
	xfers_pump(&srv->xfers);
	journal_kick(&srv->jr);
	if (srv->quit)
		conns_drain(&srv->conns, now_ms() > srv->drain_deadline_ms);
	conns_flush(&srv->conns);
	conns_reap(&srv->conns);
}

static bool running(void *ctx)
{
	struct server *srv = ctx;

	return !srv->quit || srv->conns.count || !journal_idle(&srv->jr);
}

/* The connection layer's callbacks: requests and closes go to control.c. */
static const struct conn_ops conn_ops = {
	.request = control_request,
	.closing = control_conn_closing,
	.drained = control_conn_drained,
};

static int register_files(struct server *srv, char *err, size_t len)
{
	int fds[STORE_MAX_FILES];
	int ret;

	for (uint32_t i = 0; i < srv->store.nfiles; i++)
		fds[i] = srv->store.files[i].fd;
	ret = io_uring_register_files(&srv->loop.ring, fds, srv->store.nfiles);
	if (ret < 0)
		snprintf(err, len, "registering store files: %s", strerror(-ret));
	return ret;
}

/* Configured limits resolved: shares of the store become bytes. */
static void limits_resolve(const struct config_limits *c, uint64_t capacity,
			   struct tenant_limits *ret)
{
	*ret = (struct tenant_limits){
		.bytes = config_share(c->bytes, capacity),
		.pinned_bytes = config_share(c->pinned, capacity),
		.leased_bytes = config_share(c->leased, capacity),
		.lease_ms = c->lease_ms,
		.conns = c->conns,
		.regions = c->regions,
		.region_bytes = c->region_bytes,
		.inflight = c->inflight,
	};
}

/*
 * The tenant table from the configuration: default limits (by default no
 * tenant may pin or lease more than half the store, so that another always
 * has room), the admin group, and one rule per [tenant] section whose
 * limits are its own where it sets them, else the defaults.
 */
static int tenants_setup(struct server *srv, const struct config *cfg,
			 char *err, size_t len)
{
	struct config_limits lim;
	struct tenant_limits def;
	gid_t admin = (gid_t)-1;
	int ret;

	limits_resolve(&cfg->tenant_def, srv->store.capacity, &def);
	if (cfg->admin_group && *cfg->admin_group) {
		struct group *gr = getgrnam(cfg->admin_group);

		if (!gr) {
			snprintf(err, len, "admin-group: no group '%s' on this "
				 "host", cfg->admin_group);
			return -ENOENT;
		}
		admin = gr->gr_gid;
	}
	srv->rules = calloc(cfg->ntenants ? cfg->ntenants : 1,
			    sizeof(*srv->rules));
	if (!srv->rules) {
		snprintf(err, len, "tenants: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct config_tenant *t = &cfg->tenants[i];
		struct tenant_rule *r = &srv->rules[i];

		lim = cfg->tenant_def;
		for (size_t off = 0; off < sizeof(lim); off += 4)
			if (t->set & (1u << (off / 4)))
				memcpy((char *)&lim + off, (const char *)&t->lim + off,
				       4);
		snprintf(r->name, sizeof(r->name), "%s", t->name);
		r->uids = t->uids;
		r->nuids = t->nuids;
		r->gids = t->gids;
		r->ngids = t->ngids;
		limits_resolve(&lim, srv->store.capacity, &r->lim);
	}
	ret = tenants_init(&srv->tenants, &def, admin, srv->rules,
			   cfg->ntenants);
	if (ret < 0)
		snprintf(err, len, "tenants: %s", strerror(-ret));
	return ret;
}

/* The journal's replayed hook: tenants of the replayed entries. */
static int adopt(void *arg, char *err, size_t len)
{
	struct server *srv = arg;

	return catalog_adopt(&srv->cat, srv->cfg.migrate_tenant, err, len);
}

/*
 * Store format 4 keeps each entry's tenant; a format 3 or 2 store does
 * not, and starts only through kvswapd --migrate-tenant=NAME, which
 * gives all its entries to NAME.
 */
static int check_format(const struct server *srv, const char *migrate,
			char *err, size_t len)
{
	const struct store *s = &srv->store;
	bool old = !s->created && !s->sb_lost && s->sb_version < STORE_VERSION;

	if (migrate && !tenant_name_valid(migrate, strlen(migrate))) {
		snprintf(err, len, "--migrate-tenant '%s': not a tenant name (1 "
			 "to %d of A-Z a-z 0-9 . _ -)", migrate, TENANT_NAME_MAX);
		return -EINVAL;
	}
	if (old && !migrate) {
		snprintf(err, len, "%s: store format version %u keeps no tenants; "
			 "this kvswapd needs version %u: run kvswapd "
			 "--migrate-tenant=NAME once (same --store and "
			 "--store-size) to give every entry to tenant NAME (e.g. "
			 "uid-%u, the tenant of the service's uid)",
			 s->files[0].path, s->sb_version, STORE_VERSION,
			 (unsigned)getuid());
		return -EPROTONOSUPPORT;
	}
	if (!old && migrate) {
		snprintf(err, len, "--migrate-tenant: %s is %s; nothing to "
			 "migrate", s->files[0].path, s->created ? "a new store" :
			 "already store format version 4");
		return -EINVAL;
	}
	return 0;
}

int server_init(struct server *srv, const struct config *cfg, char *err,
		size_t len)
{
	sigset_t mask;
	int ret;

	memset(srv, 0, sizeof(*srv));
	srv->cfg = *cfg;
	srv->signal_fd = -1;
	srv->start_ms = now_ms();
	ret = store_open(&srv->store, cfg->store_paths, cfg->store_size,
			 cfg->salvage ? STORE_SALVAGE : STORE_SERVE, err, len);
	if (ret < 0)
		return ret;
	ret = check_format(srv, cfg->migrate_tenant, err, len);
	if (ret < 0)
		return ret;
	/* Before recovery: replayed entries name their tenants. */
	ret = tenants_setup(srv, cfg, err, len);
	if (ret < 0)
		return ret;
	ret = loop_init(&srv->loop, err, len);
	if (ret < 0)
		return ret;
	journal_init(&srv->jr, &srv->store, &srv->cat.index, &srv->loop);
	srv->jr.replayed = adopt;
	srv->jr.replayed_arg = srv;
	ret = catalog_init(&srv->cat, &srv->store, &srv->jr, &srv->st,
			   &srv->tenants);
	if (ret < 0) {
		snprintf(err, len, "index: %s", strerror(-ret));
		return ret;
	}
	/* Synchronous, before serving: the ring is not enabled yet. */
	ret = journal_recover(&srv->jr, err, len);
	if (ret < 0)
		return ret;
	catalog_recount(&srv->cat);
	loop_on(&srv->loop, UD_SIGNAL, on_cqe, srv);
	loop_on(&srv->loop, UD_TICK, on_cqe, srv);
	loop_on(&srv->loop, UD_LEASE_TIMER, on_cqe, srv);
	loop_after_batch(&srv->loop, after_batch, srv);
	ret = register_files(srv, err, len);
	if (ret < 0)
		return ret;
	ret = xfers_init(&srv->xfers, &srv->loop, &srv->cat, &srv->cfg,
			 &srv->st, srv->store.block, swap_seg_done, err, len);
	if (ret < 0)
		return ret;
	ret = regions_init(&srv->regions, &srv->loop, err, len);
	if (ret < 0)
		return ret;
	conns_init(&srv->conns, &srv->loop, &srv->st, &srv->tenants, &conn_ops,
		   srv);
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

int server_run(struct server *srv, int listen_fd)
{
	signal_arm(srv);
	regions_start(&srv->regions);
	conns_start(&srv->conns, listen_fd, srv->cfg.hello_timeout_ms);
	tick_start(srv);
	return loop_run(&srv->loop, running, srv);
}

int server_checkpoint(struct server *srv, char *err, size_t len)
{
	return journal_checkpoint_sync(&srv->jr, err, len);
}

void server_fini(struct server *srv)
{
	regions_fini(&srv->regions);
	loop_fini(&srv->loop);
	xfers_fini(&srv->xfers);
	/* Queued records hold entry references: before the index goes. */
	journal_fini(&srv->jr);
	catalog_fini(&srv->cat);
	tenants_fini(&srv->tenants);
	free(srv->rules);
	srv->rules = NULL;
	store_close(&srv->store);
	if (srv->signal_fd >= 0)
		close(srv->signal_fd);
}
