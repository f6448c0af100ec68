/* SPDX-License-Identifier: MIT */
/* TAP output for the test programs: see tap.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static unsigned tap_planned;	/* 0: no plan printed yet */
static unsigned tap_run;
static unsigned tap_failed;
static pid_t tap_pid;		/* the process that owns the TAP stream */

/*
 * Unbuffered from the start: a forked child must not inherit and flush
 * half a line, and a crash must not swallow the lines before it.
 */
__attribute__((constructor)) static void tap_init(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
}

/* Whether this process may report checks; claims the stream if unclaimed. */
static bool tap_owner(void)
{
	if (!tap_pid)
		tap_pid = getpid();
	return tap_pid == getpid();
}

/* Prints fmt/ap after prefix, with newlines in the text turned into spaces. */
static void tap_vline(const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	printf("%s%s\n", prefix, buf);
}

/* Prints fmt/ap as diagnostics, one "# " line per line of text. */
static void tap_vdiag(FILE *f, const char *fmt, va_list ap)
{
	char buf[4096];
	char *line, *save = NULL;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (!*buf) {
		fprintf(f, "#\n");
		return;
	}
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		fprintf(f, "# %s\n", line);
}

void plan(unsigned n)
{
	if (!tap_owner() || tap_planned || tap_run) {
		fprintf(stderr, "# tap: plan(%u) ignored: too late or in a child\n",
			n);
		return;
	}
	tap_planned = n;
	printf("1..%u\n", n);
}

void done_testing(void)
{
	if (!tap_owner()) {
		fprintf(stderr, "# tap: done_testing() in a child process\n");
		_exit(1);
	}
	if (!tap_planned)
		printf("1..%u\n", tap_run);
	else if (tap_run != tap_planned) {
		printf("# planned %u checks but ran %u\n", tap_planned, tap_run);
		exit(1);
	}
	if (tap_failed)
		printf("# failed %u of %u checks\n", tap_failed, tap_run);
	exit(tap_failed ? 1 : 0);
}

void skip_all(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vline("1..0 # SKIP ", fmt, ap);
	va_end(ap);
	exit(0);
}

void bail_out(const char *fmt, ...)
{
	va_list ap;

	/* Counts as a failure, so that nothing is cleaned up as if it passed. */
	tap_failed++;
	va_start(ap, fmt);
	tap_vline("Bail out! ", fmt, ap);
	va_end(ap);
	exit(1);
}

void diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	/* A child's diagnostics go to stderr, where they cannot break TAP. */
	tap_vdiag(tap_owner() ? stdout : stderr, fmt, ap);
	va_end(ap);
}

void skip(const char *fmt, ...)
{
	char prefix[64];
	va_list ap;

	if (!tap_owner())
		return;
	tap_run++;
	snprintf(prefix, sizeof(prefix), "ok %u # SKIP ", tap_run);
	va_start(ap, fmt);
	tap_vline(prefix, fmt, ap);
	va_end(ap);
}

unsigned tap_failures(void)
{
	return tap_failed;
}

unsigned tap_count(void)
{
	return tap_run;
}

/* Reports one check; the caller prints its own diagnostics after a failure. */
static bool tap_vreport(bool cond, const char *file, int line,
			const char *fmt, va_list ap)
{
	char prefix[64];

	if (!tap_owner()) {
		fprintf(stderr, "# tap: check at %s:%d in a child process ignored\n",
			file, line);
		return cond;
	}
	tap_run++;
	if (!cond)
		tap_failed++;
	snprintf(prefix, sizeof(prefix), "%sok %u - ", cond ? "" : "not ",
		 tap_run);
	tap_vline(prefix, fmt, ap);
	if (!cond)
		printf("#   Failed test at %s line %d.\n", file, line);
	return cond;
}

bool tap_ok(bool cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vreport(cond, file, line, fmt, ap);
	va_end(ap);
	return cond;
}

bool tap_is_int(long long got, long long expected, const char *expr,
		const char *file, int line, const char *fmt, ...)
{
	bool cond = got == expected;
	va_list ap;

	va_start(ap, fmt);
	tap_vreport(cond, file, line, fmt, ap);
	va_end(ap);
	if (!cond && tap_owner())
		printf("#     %s\n#          got: %lld\n#     expected: %lld\n",
		       expr, got, expected);
	return cond;
}

bool tap_is_uint(unsigned long long got, unsigned long long expected,
		 const char *expr, const char *file, int line,
		 const char *fmt, ...)
{
	bool cond = got == expected;
	va_list ap;

	va_start(ap, fmt);
	tap_vreport(cond, file, line, fmt, ap);
	va_end(ap);
	if (!cond && tap_owner())
		printf("#     %s\n#          got: %llu\n#     expected: %llu\n",
		       expr, got, expected);
	return cond;
}

bool tap_is_str(const char *got, const char *expected, const char *expr,
		const char *file, int line, const char *fmt, ...)
{
	bool cond;
	va_list ap;

	if (!got || !expected)
		cond = got == expected;
	else
		cond = strcmp(got, expected) == 0;
	va_start(ap, fmt);
	tap_vreport(cond, file, line, fmt, ap);
	va_end(ap);
	if (!cond && tap_owner())
		printf("#     %s\n#          got: %s%s%s\n#     expected: %s%s%s\n",
		       expr, got ? "'" : "", got ? got : "NULL",
		       got ? "'" : "", expected ? "'" : "",
		       expected ? expected : "NULL", expected ? "'" : "");
	return cond;
}

bool tap_is_mem(const void *got, const void *expected, size_t len,
		const char *expr, const char *file, int line,
		const char *fmt, ...)
{
	const unsigned char *g = got, *e = expected;
	size_t i = 0, ndiff = 0, last = 0;
	bool cond;
	va_list ap;

	if (!got || !expected)
		cond = len == 0 || got == expected;
	else
		cond = memcmp(got, expected, len) == 0;
	va_start(ap, fmt);
	tap_vreport(cond, file, line, fmt, ap);
	va_end(ap);
	if (cond || !tap_owner())
		return cond;
	if (!got || !expected) {
		printf("#     %s: %s buffer is NULL\n", expr,
		       got ? "expected" : "got");
		return cond;
	}
	while (i < len && g[i] == e[i])
		i++;
	for (size_t j = i; j < len; j++) {
		if (g[j] != e[j]) {
			ndiff++;
			last = j;
		}
	}
	printf("#     %s: %zu of %zu bytes differ, first at offset %zu"
	       " (got 0x%02x, expected 0x%02x), last at %zu\n", expr,
	       ndiff, len, i, g[i], e[i], last);
	return cond;
}
