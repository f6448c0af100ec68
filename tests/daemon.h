/* SPDX-License-Identifier: MIT */
/*
 * The kvswapd under test: runs the real kvswapd binary on a private socket
 * and store, and connects libkvswap to it.
 *
 * A test program calls harness_init() first. It probes io_uring in the test
 * process and skips the whole program if the kernel refuses it, makes the
 * test folder build/tmp/<name>-<pid>/ (never tmpfs: the store needs
 * O_DIRECT), and removes that folder at exit if no check failed; each
 * daemon started gets a subfolder holding its store files, socket and
 * stderr log.
 *
 * The daemon binary is $KVSWAPD, default "build/kvswapd" (tests run from the
 * repository root). The test folder lives next to it, in <its dir>/tmp,
 * unless $KVSWAP_TEST_DIR names another folder. $KVSWAP_TEST_SEED fixes the
 * seed of the random data.
 *
 * Functions return 0 or a negative errno and print diagnostics (diag()) on
 * failure, so a test can simply check the return value.
 */
#ifndef KVSWAP_TEST_DAEMON_H
#define KVSWAP_TEST_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvswap.h"

struct harness_opts {
	uint64_t store_size;		/* --store-size in bytes; 0: 256 MiB */
	unsigned store_files;		/* number of store files; 0: 1 */
	unsigned queue_depth;		/* --queue-depth; 0: daemon default */
	const char *log_level;		/* --log-level; NULL: daemon default */
	const char *const *extra_args;	/* NULL-terminated, or NULL */
	/*
	 * The --store argument to reuse, e.g. an earlier instance's h->store,
	 * to restart on its files (store_files is then ignored); NULL: new
	 * files in this instance's folder.
	 */
	const char *store;
};

struct harness {
	pid_t pid;			/* 0 once reaped */
	int status;			/* wait status once reaped */
	int notify_fd;			/* our end of $NOTIFY_SOCKET, or -1 */
	unsigned n;			/* instance number within the test */
	char dir[PATH_MAX];		/* this daemon's folder */
	char socket[108];		/* its listening socket */
	char log[PATH_MAX];		/* its stderr and stdout */
	char store[4096];		/* the --store argument */
	struct harness *next;
};

/*
 * Sets up the test program `name` (e.g. "test-roundtrip"): see above.
 * Skips the program (skip_all) if io_uring is refused, bails out if the
 * daemon binary is missing or the test folder cannot be made or is tmpfs.
 */
void harness_init(const char *name);

/* The test folder, e.g. "build/tmp/test-full-1234". */
const char *harness_dir(void);

/*
 * Starts kvswapd with `o` (NULL: defaults) and waits (10 s at most) until it
 * has sent READY=1. On failure the daemon's log is shown with diag() and
 * the daemon is killed. On success *ret is running; stop it with
 * harness_stop() and free it with harness_free().
 */
int harness_start(const struct harness_opts *o, struct harness **ret);

/*
 * "NAME=VALUE" strings (NULL-terminated) set in the environment of the
 * daemons started from now on, after the harness's own (e.g. WATCHDOG_USEC).
 */
extern const char *const *harness_env;

/* harness_spawn() flags */
enum {
	/* io_uring_setup() fails with EPERM in the daemon (seccomp filter). */
	HARNESS_DENY_IO_URING = 1 << 0,
};

/*
 * Starts kvswapd with exactly the arguments `args` (NULL-terminated, not
 * counting argv[0]), with $NOTIFY_SOCKET set, and does not wait. For tests
 * of the command line; the instance's folder is made, and every "@DIR" in
 * an argument is replaced by that folder.
 */
int harness_spawn(const char *const *args, unsigned flags,
		  struct harness **ret);

/*
 * Waits at most timeout_ms for READY=1. Returns 0, -ECHILD if the daemon
 * exited first (h->status holds its wait status), or -ETIMEDOUT.
 */
int harness_wait_ready(struct harness *h, int timeout_ms);

/*
 * Waits at most timeout_ms for the daemon to exit and reaps it. Returns 0
 * (h->status holds the wait status) or -ETIMEDOUT.
 */
int harness_wait_exit(struct harness *h, int timeout_ms);

/*
 * SIGTERM, then waits 10 s at most (then SIGKILL). Returns 0 if the daemon
 * exited with status 0; otherwise shows the log and returns -ECHILD.
 */
int harness_stop(struct harness *h);

/* SIGKILL and reap. */
void harness_kill(struct harness *h);

/* Whether the daemon process is still running (not exited, not a zombie). */
bool harness_alive(struct harness *h);

/* Kills the daemon if it still runs and frees h. Accepts NULL. */
void harness_free(struct harness *h);

/* Shows the last `max_lines` lines of the daemon's log with diag(). */
void harness_show_log(const struct harness *h, unsigned max_lines);

/*
 * Reads the daemon's log into buf (NUL-terminated, truncated to size - 1).
 * Returns the length or a negative errno.
 */
ssize_t harness_read_log(const struct harness *h, char *buf, size_t size);

/* kvswap_connect() to this daemon; diag()s the error. */
int harness_connect(const struct harness *h, struct kvswap **ret);

/* kvswap_stat() on a fresh connection, closed again. */
int harness_stat(const struct harness *h, struct kvswap_stat *ret);

/* "exited 1", "killed by signal 9", ... for a wait status. */
const char *harness_status_str(int status, char *buf, size_t size);

#endif
