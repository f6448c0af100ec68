/* SPDX-License-Identifier: MIT */
/*
 * faultfs (tests/faultfs/faultfs.c) for the C tests: mounts it over a
 * backing folder in the test folder (never tmpfs), sends it commands, reads
 * its stats, and unmounts it.
 *
 * The faultfs binary is found next to the test program (argv[0]'s folder:
 * build/tests/faultfs, or build-san/tests/faultfs under make
 * test-sanitize). faultmount_start() skips the whole program (skip_all)
 * where faultfs is not built, /dev/fuse or fusermount3 is missing, or the
 * kernel refuses the mount, so that a test never passes silently; it bails
 * out on other failures. The mount is undone at exit in any case (after
 * the daemons the test registered with faultmount_daemon() are killed).
 */
#ifndef KVSWAP_TEST_FAULTMOUNT_H
#define KVSWAP_TEST_FAULTMOUNT_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon.h"
#include "tap.h"

struct faultmount {
	pid_t pid;			/* faultfs, 0 once reaped */
	char back[PATH_MAX];		/* the backing folder: the disk image */
	char mnt[PATH_MAX];		/* the mount point */
	char ctl[PATH_MAX + 16];	/* its control file */
	char log[PATH_MAX];		/* faultfs's stderr */
};

/*
 * Mounts faultfs on <test folder>/mnt over <test folder>/back (after
 * harness_init()). Owner: the caller, who calls faultmount_stop(); the
 * exit handler stops it otherwise. argv0: the test program's argv[0].
 */
struct faultmount *faultmount_start(const char *argv0);

/*
 * The daemon that uses the mount, if any (NULL: none): killed before the
 * unmount at exit, so that a test that bails out leaves no mount behind.
 */
void faultmount_daemon(struct harness *h);

/*
 * Sends one command (printf-style; "cut random 7 sector=512", "eio
 * op=read file=s0.kvs off=4m len=4k"). Returns 0, or a negative errno
 * after a diag() with faultfs's last_error.
 */
TAP_PRINTF(2, 3) int faultmount_cmd(struct faultmount *m, const char *fmt, ...);

/* One number from the stats ("faults_eio", ...); UINT64_MAX if missing. */
uint64_t faultmount_stat(struct faultmount *m, const char *key);

/*
 * Unmounts (waiting while the kernel still holds files of a dead daemon)
 * and reaps faultfs. Returns 0 if faultfs exited 0, or -1 (diag()s why).
 * Accepts NULL.
 */
int faultmount_stop(struct faultmount *m);

#endif
