/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

int log_max_level = LOG_INFO;

static const char *const level_names[] = {
	[LOG_ERR] = "err",
	[LOG_WARNING] = "warning",
	[LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

/* Returns the syslog priority named by s, or -EINVAL. */
int log_parse_level(const char *s)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (level_names[i] && !strcmp(s, level_names[i]))
			return i;
	return -EINVAL;
}

/*
 * stderr is the journal when $JOURNAL_STREAM names its device and inode:
 * then lines go to the journal directly, with their priority and fields.
 */
static bool stderr_is_journal(void)
{
	static int cached = -1;
	unsigned long long dev, ino;
	const char *e;
	struct stat st;

	if (cached >= 0)
		return cached;
	e = getenv("JOURNAL_STREAM");
	cached = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
		 fstat(2, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
	return cached;
}

void log_msg(int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (prio > log_max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (stderr_is_journal()) {
		sd_journal_send("MESSAGE=%s", line, "PRIORITY=%d", prio,
				"SYSLOG_IDENTIFIER=kvswapd", NULL);
		return;
	}
	/* One write per line so lines from a restart never interleave. */
	fprintf(stderr, "<%d>%s\n", prio, line);
}
