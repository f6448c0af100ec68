/* SPDX-License-Identifier: MIT */
/*
 * Real users for tenant tests: kvswapd tells tenants apart by the uid the
 * kernel reports (SO_PEERCRED), so a test needs processes running as other
 * users. Needs root; users_can() says whether this process can.
 */
#ifndef KVSWAP_TEST_USERS_H
#define KVSWAP_TEST_USERS_H

#include <stdbool.h>
#include <sys/types.h>

/* Whether users can be made and switched to (we are root). */
bool users_can(void);

/*
 * The system user `name`, created (useradd --system, no home, nologin
 * shell) if it does not exist. Returns 0 with its uid and gid, or a
 * negative errno (diag()ed).
 */
int users_ensure(const char *name, uid_t *ret_uid, gid_t *ret_gid);

/*
 * Forks a child that drops to uid/gid (no supplementary groups) and exits
 * with fn(arg). Returns its pid or a negative errno.
 */
pid_t users_fork(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg);

/* Waits for the child; returns its exit status, or -1 if it did not exit. */
int users_wait(pid_t pid);

#endif
