/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by kvswapctl's commands, bench included: sizes for
 * humans, key and JSON escaping, the progress line on stderr. The clock
 * (now_ns) is client/monotonic.h, shared with libkvswap.
 */
#ifndef KVSWAPCTL_UTIL_H
#define KVSWAPCTL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "monotonic.h"

/* Room for human_size() and the other human_*() strings. */
#define HUMAN_LEN 32

/*
 * Formats n bytes in buf as "512 B", "1.0 KiB", "12.3 GiB": one decimal,
 * powers of 1024, up to EiB. Returns buf.
 */
const char *human_size(uint64_t n, char buf[static HUMAN_LEN]);

/*
 * Parses a size: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024, either case). Returns 0, -EINVAL or -ERANGE; *ret is
 * written only on success.
 */
int ctl_parse_size(const char *s, uint64_t *ret);

/*
 * Returns a malloc'ed, NUL-terminated printable form of a key, or NULL if
 * out of memory; the caller frees it. Printable ASCII is shown as is, a
 * backslash as "\\" and every other byte as "\xNN".
 */
char *key_escape(const void *key, size_t len);

/*
 * Writes `len` bytes as a JSON string whose code points 0-255 are the
 * bytes: control characters, DEL and bytes >= 0x80 appear as "\u00NN" (or
 * the short escapes \b \f \n \r \t), so encoding the string as Latin-1
 * gives the bytes back.
 */
void json_string(FILE *f, const void *buf, size_t len);

/*
 * A one-line progress display on stderr, redrawn in place, shown only when
 * stderr is a terminal. What the line says and how often it is redrawn is
 * up to the caller.
 */
struct progress_line {
	bool tty;
	bool shown;		/* something is drawn and needs clearing */
};

void progress_line_init(struct progress_line *p);

/* Replaces the line with the formatted text (nothing if not a terminal). */
__attribute__((format(printf, 2, 3)))
void progress_line_draw(struct progress_line *p, const char *fmt, ...);

/* Erases the line, if one is drawn. */
void progress_line_clear(struct progress_line *p);

#endif
