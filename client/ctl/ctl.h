/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl's commands and the context they run in (client/ctl/).
 *
 * main.c parses the command line into a struct ctl and runs one command
 * from its table; each command is a *_main() function in the file of its
 * group (entry.c, query.c, stat.c, bench*.c). Commands return the process
 * exit status: 0 on success, 1 when something failed (one line on stderr
 * saying what), 2 on a usage error. Helpers below them return a negative
 * errno and leave the reporting to the command.
 */
#ifndef KVSWAPCTL_CTL_H
#define KVSWAPCTL_CTL_H

#include <stdbool.h>
#include <stdint.h>

#include "kvswap.h"

#define PROG "kvswapctl"

struct ctl;

struct command {
	const char *name;
	int (*run)(struct ctl *c);
	const char *description;
	const char *synopsis;	/* what follows the command's name */
	unsigned int options;	/* OPT_* (main.c) besides the global ones */
	int min_args;
	int max_args;		/* -1: any number */
};

struct ctl {
	const struct command *cmd;
	const char *socket;		/* --socket, NULL if not given */
	const char *socket_path;	/* what we connected to */
	const char *segment_size;	/* --segment-size, NULL if not given */
	bool json;
	bool prometheus;
	uint32_t put_flags;		/* KVSWAP_PINNED, _DURABLE, _CACHE */
	const char *lease;		/* --lease MS, NULL if not given */
	const char *tenant;		/* --tenant NAME, NULL: our own */
	char **args;
	int nargs;
	struct kvswap *k;		/* set by ctl_connect() */
};

/* --- reporting (ctl.c): each returns the exit status to pass on ----------- */

/* Reports a failure with no underlying error code. Returns EXIT_FAILURE. */
__attribute__((format(printf, 2, 3)))
int fail(const struct ctl *c, const char *fmt, ...);

/* Reports a failed system call; err is a negative errno. */
__attribute__((format(printf, 3, 4)))
int fail_sys(const struct ctl *c, int err, const char *fmt, ...);

/*
 * Reports a failed libkvswap call: the daemon's (or library's) message if
 * it left one, else the errno text.
 */
__attribute__((format(printf, 3, 4)))
int fail_kv(const struct ctl *c, int err, const char *fmt, ...);

/* Reports a usage error with a pointer to the help. Returns 2. */
__attribute__((format(printf, 2, 3)))
int usage_error(const struct ctl *c, const char *fmt, ...);

/*
 * Connects c->k to --socket, else $KVSWAP_SOCKET, else the system socket.
 * Returns 0 or reports the failure and returns EXIT_FAILURE. The command
 * closes c->k.
 */
int ctl_connect(struct ctl *c);

/* --- the commands --------------------------------------------------------- */

int put_main(struct ctl *c);		/* entry.c */
int get_main(struct ctl *c);
int rm_main(struct ctl *c);
int ls_main(struct ctl *c);		/* query.c */
int lookup_main(struct ctl *c);
int stat_main(struct ctl *c);		/* stat.c */

/*
 * kvswapctl bench (bench.c): drives a running kvswapd with synthetic
 * KV-cache traffic and reports throughput, per-segment latency and the
 * daemon's CPU time per GiB moved.
 *
 * Takes kvswapctl's whole command line, because its options are its own:
 * argv[0] is the program, then the word "bench" and the options in any
 * order (--socket included). Returns the process exit status: 0 on
 * success, 1 when something failed or a transfer reported an error, 2 on
 * a usage error.
 */
int bench_main(int argc, char **argv);

#endif
