/* SPDX-License-Identifier: MIT */
/*
 * Minimal TAP (Test Anything Protocol) producer for the kvswap tests.
 *
 * Each test program prints "1..N" (from plan() at the start, or from
 * done_testing() at the end), one "ok N - what" or "not ok N - what" line
 * per check, and "# ..." diagnostics, all on stdout, unbuffered. A program
 * ends with done_testing(), which exits 1 if any check failed or the count
 * does not match the plan, and 0 otherwise.
 *
 * The check macros record the file and line of the caller so that a failure
 * says where it happened. Only the process that printed the plan (or the
 * first check) may report checks: a forked child reports through its exit
 * status, and its checks are refused with a diagnostic.
 */
#ifndef KVSWAP_TAP_H
#define KVSWAP_TAP_H

#include <stdbool.h>
#include <stddef.h>

#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Announces n checks. Call at most once, before the first check. */
void plan(unsigned n);

/* Prints the plan if there was none, then exits 0 or 1 (see above). */
__attribute__((noreturn)) void done_testing(void);

/* "1..0 # SKIP reason", exit 0. Only before the first check. */
__attribute__((noreturn)) TAP_PRINTF(1, 2) void skip_all(const char *fmt, ...);

/* "Bail out! reason", exit 1: the rest of the program cannot run. */
__attribute__((noreturn)) TAP_PRINTF(1, 2) void bail_out(const char *fmt, ...);

/* "# message" on stdout. A newline is added; embedded ones are prefixed. */
TAP_PRINTF(1, 2) void diag(const char *fmt, ...);

/* "ok N # SKIP reason": one check that cannot run here. */
TAP_PRINTF(1, 2) void skip(const char *fmt, ...);

/* Number of checks that failed so far. */
unsigned tap_failures(void);

/* Number of checks reported so far. */
unsigned tap_count(void);

TAP_PRINTF(4, 5) bool tap_ok(bool cond, const char *file, int line,
			     const char *fmt, ...);
TAP_PRINTF(6, 7) bool tap_is_int(long long got, long long expected,
				 const char *expr, const char *file, int line,
				 const char *fmt, ...);
TAP_PRINTF(6, 7) bool tap_is_uint(unsigned long long got,
				  unsigned long long expected,
				  const char *expr, const char *file, int line,
				  const char *fmt, ...);
TAP_PRINTF(6, 7) bool tap_is_str(const char *got, const char *expected,
				 const char *expr, const char *file, int line,
				 const char *fmt, ...);
TAP_PRINTF(7, 8) bool tap_is_mem(const void *got, const void *expected,
				 size_t len, const char *expr,
				 const char *file, int line, const char *fmt,
				 ...);

/*
 * The checks. Each takes a printf-style description after its operands
 * and returns whether it passed, so a test can skip what depends on it.
 *
 *   ok(cond, "what")                 passes if cond is true
 *   is_int(got, expected, "what")    signed comparison, shows both values
 *   is_uint(got, expected, "what")   unsigned 64-bit comparison
 *   is_str(got, expected, "what")    strcmp; NULL equals only NULL
 *   is_mem(got, expected, len, "what") memcmp; shows the first difference
 */
#define ok(cond, ...) \
	tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, expected, ...) \
	tap_is_int((long long)(got), (long long)(expected), #got, \
		   __FILE__, __LINE__, __VA_ARGS__)
#define is_uint(got, expected, ...) \
	tap_is_uint((unsigned long long)(got), \
		    (unsigned long long)(expected), #got, \
		    __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, expected, ...) \
	tap_is_str((got), (expected), #got, __FILE__, __LINE__, __VA_ARGS__)
#define is_mem(got, expected, len, ...) \
	tap_is_mem((got), (expected), (len), #got, __FILE__, __LINE__, \
		   __VA_ARGS__)

#endif
