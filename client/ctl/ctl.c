/* SPDX-License-Identifier: MIT */
/*
 * What every kvswapctl command shares: its failure reports (one line on
 * stderr, "kvswapctl: COMMAND: what: why") and its connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* --- reporting ------------------------------------------------------------ */

__attribute__((format(printf, 3, 0)))
static void vreport(const struct ctl *c, const char *reason, const char *fmt,
		    va_list ap)
{
	fputs(PROG ": ", stderr);
	if (c && c->cmd)
		fprintf(stderr, "%s: ", c->cmd->name);
	vfprintf(stderr, fmt, ap);
	if (reason)
		fprintf(stderr, ": %s", reason);
	fputc('\n', stderr);
}

int fail(const struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, NULL, fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

int fail_sys(const struct ctl *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, strerror(-err), fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

int fail_kv(const struct ctl *c, int err, const char *fmt, ...)
{
	const char *msg = c->k ? kvswap_last_error(c->k) : NULL;
	va_list ap;

	va_start(ap, fmt);
	vreport(c, msg && *msg ? msg : strerror(-err), fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

int usage_error(const struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, NULL, fmt, ap);
	va_end(ap);
	if (c && c->cmd && strcmp(c->cmd->name, "help"))
		fprintf(stderr, "Try '" PROG " help %s'.\n", c->cmd->name);
	else
		fputs("Try '" PROG " help'.\n", stderr);
	return 2;
}

/* --- connection ----------------------------------------------------------- */

int ctl_connect(struct ctl *c)
{
	const char *path = c->socket;
	int ret;

	if (!path || !*path)
		path = getenv("KVSWAP_SOCKET");
	if (!path || !*path)
		path = KVSWAP_DEFAULT_SOCKET;
	c->socket_path = path;

	ret = kvswap_connect(path, &c->k);
	if (ret < 0) {
		bool down = ret == -ENOENT || ret == -ECONNREFUSED;

		fprintf(stderr, PROG ": %s: connect to %s: %s%s\n",
			c->cmd->name, path, strerror(-ret),
			down ? " (is kvswapd running?)" : "");
		return EXIT_FAILURE;
	}
	return 0;
}
