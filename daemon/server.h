/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_SERVER_H
#define KVSWAP_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>

#include "catalog.h"
#include "clock.h"
#include "config.h"
#include "conn.h"
#include "journal.h"
#include "defs.h"
#include "loop.h"
#include "region.h"
#include "stats.h"
#include "store.h"
#include "tenant.h"
#include "xfer.h"

/*
 * The daemon: one ring, one store, one catalog, its clients. Each member
 * is a module's state with its own init/fini pair; server.c composes them
 * (in dependency order), wires their callbacks, and owns the lifetime:
 * signals, the watchdog and status timer, shutdown.
 */
struct server {
	struct config cfg;
	struct stats st;
	struct loop loop;
	struct store store;
	struct tenants tenants;
	struct journal jr;
	struct catalog cat;
	struct regions regions;
	struct xfers xfers;
	struct conns conns;

	int signal_fd;
	struct signalfd_siginfo siginfo;
	bool quit;
	uint64_t drain_deadline_ms;
	uint64_t start_ms;

	/* Timer: watchdog pings (0: off) and STATUS= updates. */
	struct __kernel_timespec tick_ts;
	uint64_t watchdog_usec;
	uint64_t last_status_ms;
	struct stats last_status;

	/* A timer for the leases a waiting swap-out needs to run out. */
	struct __kernel_timespec lease_ts;
	uint64_t lease_timer_ms;	/* what it is armed for, or 0 */

	/* Called on SIGHUP, between RELOADING=1 and READY=1. */
	void (*reload)(struct server *srv);
};

/*
 * Opens the store, recovers the catalog, sets up the ring and every
 * module. On failure returns a negative errno with a one-line reason in
 * err; call server_fini() either way.
 */
int server_init(struct server *srv, const struct config *cfg, char *err,
		size_t len);

/*
 * Serves on the listening socket fd until a signal asks to stop and every
 * client is gone. Returns 0, or a negative errno if the ring broke.
 */
int server_run(struct server *srv, int listen_fd);

/* Shutdown: writes a checkpoint of everything, blocking. */
int server_checkpoint(struct server *srv, char *err, size_t len);

void server_fini(struct server *srv);

#endif
