/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl's shared helpers (util.h): each defined here once, for the
 * commands and for bench.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* --- sizes ---------------------------------------------------------------- */

const char *human_size(uint64_t n, char buf[static HUMAN_LEN])
{
	static const char *const units[] = {
		"KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
	};
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, HUMAN_LEN, "%" PRIu64 " B", n);
		return buf;
	}
	/* 1023.96 KiB would print as "1024.0 KiB": move up a unit first. */
	while (v >= 1023.95 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, HUMAN_LEN, "%.1f %s", v, units[u]);
	return buf;
}

int ctl_parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	switch (*end) {
	case '\0':
		break;
	case 'K': case 'k':
		shift = 10;
		break;
	case 'M': case 'm':
		shift = 20;
		break;
	case 'G': case 'g':
		shift = 30;
		break;
	case 'T': case 't':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (v > UINT64_MAX >> shift)
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

/* --- escaping ------------------------------------------------------------- */

char *key_escape(const void *key, size_t len)
{
	const unsigned char *p = key;
	char *out, *o;
	size_t i;

	out = malloc(len * 4 + 1);
	if (!out)
		return NULL;
	o = out;
	for (i = 0; i < len; i++) {
		if (p[i] == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if (p[i] >= 0x20 && p[i] < 0x7f) {
			*o++ = (char)p[i];
		} else {
			o += sprintf(o, "\\x%02x", p[i]);
		}
	}
	*o = '\0';
	return out;
}

void json_string(FILE *f, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i;

	fputc('"', f);
	for (i = 0; i < len; i++) {
		switch (p[i]) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (p[i] < 0x20 || p[i] >= 0x7f)
				fprintf(f, "\\u%04x", p[i]);
			else
				fputc(p[i], f);
		}
	}
	fputc('"', f);
}

/* --- progress line -------------------------------------------------------- */

void progress_line_init(struct progress_line *p)
{
	*p = (struct progress_line){ .tty = isatty(STDERR_FILENO) };
}

void progress_line_draw(struct progress_line *p, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!p->tty)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write: stderr is unbuffered; a line drawn in pieces flickers. */
	fprintf(stderr, "\r%s\033[K", line);
	p->shown = true;
}

void progress_line_clear(struct progress_line *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}
