/* SPDX-License-Identifier: MIT */
/*
 * Unit test of kvswapd's options (daemon/config.c): defaults, every option
 * and its bad values through config_set(), INI files and their drop-in
 * folder through config_load() (override order, comments, continuation
 * lines, errors naming file, line and option), reloadability, diffs, and
 * that the example systemd/kvswapd.conf and the kvswapd.conf(5) source
 * document every option with its real default.
 *
 * Runs from the repository root; its files live in a private folder under
 * $TMPDIR (or /tmp), removed at the end.
 */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

#define EXAMPLE		"systemd/kvswapd.conf"
#define MANPAGE		"docs/man/kvswapd.conf.5.scd"

static char dir[256];
static char err[1024];

/* Writes `text` to dir/name (making folders as needed); returns its path. */
TAP_PRINTF(2, 3) static const char *put(const char *name, const char *fmt, ...)
{
	static char path[4][512];
	static int turn;
	char *p = path[turn++ % 4];
	va_list ap;
	FILE *f;

	snprintf(p, 512, "%s/%s", dir, name);
	for (char *s = strchr(p + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(p, 0700);
		*s = '/';
	}
	f = fopen(p, "w");
	if (!f)
		bail_out("cannot write %s", p);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	return p;
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r"), *m = open_memstream(&buf, &len);
	int c;

	if (!f || !m)
		bail_out("cannot read %s", path);
	while ((c = getc(f)) != EOF)
		putc(c, m);
	fclose(f);
	fclose(m);
	return buf;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(path);
}

/* config_set() into a fresh config; returns its result, message in err. */
static int set1(struct config *cfg, const char *key, const char *value)
{
	*err = '\0';
	return config_set(cfg, key, value, err, sizeof(err));
}

/* A value config_set() must refuse with exactly `msg`, leaving cfg as is. */
static void bad(const char *key, const char *value, const char *msg)
{
	struct config cfg, ref;

	config_defaults(&cfg);
	config_defaults(&ref);
	if (!ok(set1(&cfg, key, value) == -EINVAL && !strcmp(err, msg),
		"%s = '%s' refused", key, value))
		diag("got '%s'", err);
	ok(config_diff(&cfg, &ref, NULL, 0) == 0, "%s = '%s' changes nothing",
	   key, value);
	config_free(&cfg);
}

/* Loads `path` into a fresh config; returns config_load()'s result. */
static int load(struct config *cfg, const char *path, bool must_exist)
{
	config_defaults(cfg);
	*err = '\0';
	return config_load(cfg, path, must_exist, err, sizeof(err));
}

/* A file config_load() must refuse with exactly "<path>:<msg>". */
static void bad_file(const char *what, const char *path, const char *msg)
{
	struct config cfg;
	char want[1024];

	snprintf(want, sizeof(want), "%s:%s", path, msg);
	if (!ok(load(&cfg, path, true) == -EINVAL && !strcmp(err, want), "%s",
		what))
		diag("got      '%s'\nexpected '%s'", err, want);
	config_free(&cfg);
}

static void test_defaults(void)
{
	struct config cfg;

	config_defaults(&cfg);
	is_str(cfg.socket_path, "/run/kvswap/kvswapd.sock", "default socket");
	is_str(cfg.store_paths, "/var/lib/kvswap/store0.kvs", "default store");
	is_uint(cfg.store_size, 4ull << 30, "default store-size 4G");
	is_uint(cfg.queue_depth, 128, "default queue-depth");
	is_int(cfg.log_level, LOG_INFO, "default log-level info");
	config_free(&cfg);
}

static void test_set(void)
{
	static const struct { const char *text; uint64_t bytes; } sizes[] = {
		{ "8388608", 8 << 20 }, { "8192K", 8 << 20 },
		{ "16384k", 16 << 20 }, { "64M", 64 << 20 }, { "3G", 3ull << 30 },
		{ "2GiB", 2ull << 30 }, { "5GB", 5ull << 30 },
		{ "1T", 1ull << 40 }, { "16t", 16ull << 40 },
		{ "1024T", 1ull << 50 },
	};
	static const struct { const char *name; int level; } levels[] = {
		{ "err", LOG_ERR }, { "warning", LOG_WARNING },
		{ "notice", LOG_NOTICE }, { "info", LOG_INFO },
		{ "debug", LOG_DEBUG },
	};
	struct config cfg;
	char many[64 * 8 + 1] = "";

	config_defaults(&cfg);
	is_int(set1(&cfg, "socket", "/tmp/k.sock"), 0, "socket");
	is_str(cfg.socket_path, "/tmp/k.sock", "socket stored");
	is_int(set1(&cfg, "socket", "relative.sock"), 0, "socket may be relative");
	is_str(cfg.socket_path, "relative.sock", "socket replaced");
	is_int(set1(&cfg, "store", "/a.kvs"), 0, "store, one file");
	is_str(cfg.store_paths, "/a.kvs", "store stored");
	is_int(set1(&cfg, "store", " /a.kvs , /b.kvs,\t/c d.kvs ,"), 0,
	       "store, three files with blanks and a trailing comma");
	is_str(cfg.store_paths, "/a.kvs,/b.kvs,/c d.kvs", "store normalized");
	for (int i = 0; i < 64; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
			 "%s/%02d.kvs", i ? "," : "", i);
	is_int(set1(&cfg, "store", many), 0, "store, 64 files");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (!ok(set1(&cfg, "store-size", sizes[i].text) == 0 &&
			cfg.store_size == sizes[i].bytes, "store-size %s",
			sizes[i].text))
			diag("%s", err);
	}
	is_int(set1(&cfg, "queue-depth", "1"), 0, "queue-depth 1");
	is_uint(cfg.queue_depth, 1, "queue-depth 1 stored");
	is_int(set1(&cfg, "queue-depth", "4096"), 0, "queue-depth 4096");
	is_uint(cfg.queue_depth, 4096, "queue-depth 4096 stored");
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		ok(set1(&cfg, "log-level", levels[i].name) == 0 &&
		   cfg.log_level == levels[i].level, "log-level %s",
		   levels[i].name);
	config_free(&cfg);
	is_str(cfg.socket_path, "/run/kvswap/kvswapd.sock",
	       "config_free puts the default socket back");
	is_str(cfg.store_paths, "/var/lib/kvswap/store0.kvs",
	       "config_free puts the default store back");

	is_int(set1(&cfg, "frobnicate", "1"), -ENOENT, "unknown option: -ENOENT");
	is_str(err, "frobnicate: unknown option", "unknown option message");
	is_int(set1(&cfg, "queue_depth", "1"), -ENOENT, "queue_depth: -ENOENT");
	is_str(err, "queue_depth: unknown option (did you mean queue-depth?)",
	       "underscore slip gets a hint");
	is_int(set1(&cfg, "--socket", "/x"), -ENOENT, "keys have no dashes");
	config_free(&cfg);
}

static void test_bad_values(void)
{
	char longpath[200];

	bad("queue-depth", "abc", "queue-depth: 'abc' is not a number in 1..4096");
	bad("queue-depth", "0", "queue-depth: '0' is not a number in 1..4096");
	bad("queue-depth", "4097", "queue-depth: '4097' is not a number in 1..4096");
	bad("queue-depth", "-1", "queue-depth: '-1' is not a number in 1..4096");
	bad("queue-depth", "+8", "queue-depth: '+8' is not a number in 1..4096");
	bad("queue-depth", "8 ", "queue-depth: '8 ' is not a number in 1..4096");
	bad("queue-depth", "0x10", "queue-depth: '0x10' is not a number in 1..4096");
	bad("queue-depth", "99999999999999999999",
	    "queue-depth: '99999999999999999999' is not a number in 1..4096");
	bad("queue-depth", "", "queue-depth: '' is not a number in 1..4096");
	bad("store-size", "4X", "store-size: '4X' is not a size (bytes, or a "
	    "number with a K, M, G or T suffix)");
	bad("store-size", "G", "store-size: 'G' is not a size (bytes, or a "
	    "number with a K, M, G or T suffix)");
	bad("store-size", "-4G", "store-size: '-4G' is not a size (bytes, or a "
	    "number with a K, M, G or T suffix)");
	bad("store-size", "4 G", "store-size: '4 G' is not a size (bytes, or a "
	    "number with a K, M, G or T suffix)");
	bad("store-size", "4Gi", "store-size: '4Gi' is not a size (bytes, or a "
	    "number with a K, M, G or T suffix)");
	bad("store-size", "", "store-size: '' is not a size (bytes, or a "
	    "number with a K, M, G or T suffix)");
	bad("store-size", "1M", "store-size: '1M' is not a size in 8M..1024T");
	bad("store-size", "1025T", "store-size: '1025T' is not a size in 8M..1024T");
	bad("store-size", "99999999999T",
	    "store-size: '99999999999T' is not a size in 8M..1024T");
	bad("store-size", "99999999999999999999999",
	    "store-size: '99999999999999999999999' is not a size in 8M..1024T");
	bad("store-size", "8388609", "store-size: '8388609' is not a multiple of 4K");
	bad("log-level", "loud", "log-level: 'loud' is not one of err, warning, "
	    "notice, info, debug");
	bad("log-level", "INFO", "log-level: 'INFO' is not one of err, warning, "
	    "notice, info, debug");
	bad("log-level", "6", "log-level: '6' is not one of err, warning, "
	    "notice, info, debug");
	bad("socket", "", "socket: the path is empty");
	memset(longpath, 'x', 108);
	longpath[108] = '\0';
	{
		char msg[300];

		snprintf(msg, sizeof(msg), "socket: '%s' is longer than 107 bytes",
			 longpath);
		bad("socket", longpath, msg);
	}
	bad("store", "", "store: empty file name in ''");
	bad("store", " ", "store: empty file name in ' '");
	bad("store", ",/a", "store: empty file name in ',/a'");
	bad("store", "/a,,/b", "store: empty file name in '/a,,/b'");
	bad("store", "/a, ,/b", "store: empty file name in '/a, ,/b'");
	bad("store", "/a,/b, /a", "store: '/a,/b, /a' names /a twice");
	{
		char many[65 * 8 + 1] = "", msg[700];

		for (int i = 0; i < 65; i++)
			snprintf(many + strlen(many), sizeof(many) - strlen(many),
				 "%s/%02d.kvs", i ? "," : "", i);
		snprintf(msg, sizeof(msg), "store: '%s' names more than 64 files",
			 many);
		bad("store", many, msg);
	}
}

static void test_files(void)
{
	struct config cfg;
	const char *p, *q;
	char missing[512];

	snprintf(missing, sizeof(missing), "%s/none/kvswapd.conf", dir);
	is_int(load(&cfg, missing, false), 0, "missing file is fine");
	is_str(cfg.store_paths, "/var/lib/kvswap/store0.kvs", "and changes nothing");
	is_int(load(&cfg, missing, true), -ENOENT, "missing file with must_exist");
	{
		char want[600];

		snprintf(want, sizeof(want), "%s: No such file or directory",
			 missing);
		is_str(err, want, "which names the file");
	}

	p = put("all/kvswapd.conf",
		"# every option\n"
		"; semicolon comment\n"
		"\n"
		"[kvswapd]\n"
		"socket = /run/test/k.sock\n"
		"store=/srv/a.kvs,/srv/b.kvs\n"
		"store-size   =   2G  \n"
		"queue-depth = 64\n"
		"log-level = debug\n");
	if (!is_int(load(&cfg, p, true), 0, "file setting every option"))
		diag("%s", err);
	is_str(cfg.socket_path, "/run/test/k.sock", "file: socket");
	is_str(cfg.store_paths, "/srv/a.kvs,/srv/b.kvs", "file: store");
	is_uint(cfg.store_size, 2ull << 30, "file: store-size, blanks stripped");
	is_uint(cfg.queue_depth, 64, "file: queue-depth");
	is_int(cfg.log_level, LOG_DEBUG, "file: log-level");
	config_free(&cfg);

	p = put("crlf/kvswapd.conf", "\xef\xbb\xbf[kvswapd]\r\nqueue-depth = 7\r\n"
		"store = /x.kvs  ; an inline comment\r\nlog-level = err");
	if (!is_int(load(&cfg, p, true), 0, "BOM, CRLF, inline ; comment, no "
		    "final newline"))
		diag("%s", err);
	ok(cfg.queue_depth == 7 && !strcmp(cfg.store_paths, "/x.kvs") &&
	   cfg.log_level == LOG_ERR, "all three read");
	config_free(&cfg);

	p = put("cont/kvswapd.conf", "[kvswapd]\n"
		"store = /srv/nvme0/store.kvs,\n"
		"        /srv/nvme1/store.kvs\n"
		"\t/srv/nvme2/store.kvs, /srv/nvme3/store.kvs\n"
		"# a comment does not end the list\n"
		"        /srv/nvme4/store.kvs\n"
		"queue-depth = 3\n");
	if (!is_int(load(&cfg, p, true), 0, "store list over indented lines"))
		diag("%s", err);
	is_str(cfg.store_paths, "/srv/nvme0/store.kvs,/srv/nvme1/store.kvs,"
	       "/srv/nvme2/store.kvs,/srv/nvme3/store.kvs,/srv/nvme4/store.kvs",
	       "continued store list");
	is_uint(cfg.queue_depth, 3, "option after the list");
	config_free(&cfg);

	p = put("indent/kvswapd.conf", "[kvswapd]\n  socket = /a.sock\n  "
		"queue-depth = 3\n");
	bad_file("indented option after another is refused", p, "3: an indented "
		 "line continues the value of socket, which takes one line: "
		 "remove the indentation");
	p = put("indent2/kvswapd.conf", "[kvswapd]\nstore = /a.kvs\n"
		"  store-size = 2G\n");
	bad_file("indented option after a store list is refused", p, "3: an "
		 "indented line continues the value of store but holds '=': "
		 "remove the indentation");
	p = put("indent3/kvswapd.conf", "[kvswapd]\n  socket = /a.sock\n"
		"queue-depth = 3\n");
	is_int(load(&cfg, p, true), 0, "an indented first option is fine");
	config_free(&cfg);

	/* Drop-ins: byte order, later wins, only *.conf, hidden skipped. */
	p = put("d/kvswapd.conf", "[kvswapd]\nqueue-depth = 8\nstore-size = 1G\n"
		"log-level = warning\n");
	put("d/kvswapd.conf.d/20-b.conf", "[kvswapd]\nqueue-depth = 20\n");
	put("d/kvswapd.conf.d/9-c.conf", "[kvswapd]\nqueue-depth = 9\n"
	    "store = /nine.kvs\n");
	put("d/kvswapd.conf.d/10-a.conf", "[kvswapd]\nqueue-depth = 10\n"
	    "log-level = notice\n");
	put("d/kvswapd.conf.d/99-off.conf.disabled", "[kvswapd]\nqueue-depth = 99\n");
	put("d/kvswapd.conf.d/.99-hidden.conf", "[kvswapd]\nqueue-depth = 98\n");
	put("d/kvswapd.conf.d/README", "not a config file\n");
	snprintf(missing, sizeof(missing), "%s/d/kvswapd.conf", dir);
	p = missing;
	if (!is_int(load(&cfg, p, true), 0, "file with drop-ins"))
		diag("%s", err);
	is_uint(cfg.queue_depth, 9, "9-c.conf sorts after 20-b.conf and wins");
	is_str(cfg.store_paths, "/nine.kvs", "drop-in sets store");
	is_uint(cfg.store_size, 1ull << 30, "main file's store-size kept");
	is_int(cfg.log_level, LOG_NOTICE, "10-a.conf overrides log-level");
	config_free(&cfg);

	q = put("only-d/kvswapd.conf.d/a.conf", "[kvswapd]\nqueue-depth = 5\n");
	(void)q;
	snprintf(missing, sizeof(missing), "%s/only-d/kvswapd.conf", dir);
	is_int(load(&cfg, missing, false), 0, "drop-ins without the main file");
	is_uint(cfg.queue_depth, 5, "drop-in read anyway");
	config_free(&cfg);

	put("bad-d/kvswapd.conf", "[kvswapd]\nqueue-depth = 8\n");
	put("bad-d/kvswapd.conf.d/a.conf", "[kvswapd]\n\n# c\nqueue-depth = deep\n");
	snprintf(missing, sizeof(missing), "%s/bad-d/kvswapd.conf.d/a.conf", dir);
	bad_file("error in a drop-in names the drop-in", missing,
		 "4: queue-depth: 'deep' is not a number in 1..4096");
	snprintf(missing, sizeof(missing), "%s/bad-d/kvswapd.conf", dir);
	is_int(load(&cfg, missing, true), -EINVAL, "and fails the whole load");
	config_free(&cfg);
	put("dir-d/kvswapd.conf", "[kvswapd]\n");
	p = put("dir-d/kvswapd.conf.d/x.conf", "\n");
	unlink(p);
	mkdir(p, 0700);
	snprintf(missing, sizeof(missing), "%s/dir-d/kvswapd.conf", dir);
	{
		char want[600];

		snprintf(want, sizeof(want), "%s: Is a directory", p);
		if (!ok(load(&cfg, missing, true) == -EISDIR &&
			!strcmp(err, want), "a folder named *.conf is an error"))
			diag("got '%s'", err);
		config_free(&cfg);
	}

	/* Errors: file:line: option: what. */
	p = put("bad1.conf", "# kvswapd\n\n[kvswapd]\nsocket = /s\n\n\n"
		"queue-depth = abc\n");
	bad_file("bad value", p, "7: queue-depth: 'abc' is not a number in 1..4096");
	p = put("bad2.conf", "[kvswapd]\nstore-size = 4097\n");
	bad_file("bad size", p, "2: store-size: '4097' is not a size in 8M..1024T");
	p = put("bad3.conf", "[kvswapd]\nlog-level = verbose\n");
	bad_file("bad level", p, "2: log-level: 'verbose' is not one of err, "
		 "warning, notice, info, debug");
	p = put("bad4.conf", "[kvswapd]\nqueue-depth = 4\nfrobnicate = yes\n");
	bad_file("unknown option", p, "3: frobnicate: unknown option");
	p = put("bad5.conf", "[kvswapd]\nstore_size = 4G\n");
	bad_file("unknown option with a hint", p, "2: store_size: unknown option "
		 "(did you mean store-size?)");
	p = put("bad6.conf", "[kvswapd]\nqueue-depth = 4\n\n[storage]\n"
		"path = /x\n");
	bad_file("unknown section", p, "4: [storage]: unknown section (the "
		 "sections are [kvswapd] and [tenant NAME])");
	p = put("bad7.conf", "[kvswapd]\n[empty]\n");
	bad_file("unknown section without options", p, "2: [empty]: unknown "
		 "section (the sections are [kvswapd] and [tenant NAME])");
	p = put("bad8.conf", "queue-depth = 4\n[kvswapd]\n");
	bad_file("option before the section", p, "1: queue-depth: option before "
		 "the [kvswapd] section");
	p = put("bad9.conf", "[kvswapd]\nqueue-depth\n");
	bad_file("line without =", p, "2: syntax error: expected 'option = "
		 "value', [kvswapd], [tenant NAME] or a comment");
	p = put("bad10.conf", "[kvswapd\nqueue-depth = 4\n");
	bad_file("unterminated section header", p, "1: syntax error: expected "
		 "'option = value', [kvswapd], [tenant NAME] or a comment");
	p = put("bad11.conf", "[kvswapd]\nnot an option line\nqueue-depth = x\n");
	bad_file("first of two errors is reported", p, "2: syntax error: "
		 "expected 'option = value', [kvswapd], [tenant NAME] or a comment");
	p = put("bad12.conf", "[kvswapd]\nqueue-depth = x\nnot an option line\n");
	bad_file("first of two errors is reported (value first)", p,
		 "2: queue-depth: 'x' is not a number in 1..4096");
	p = put("bad13.conf", "[kvswapd]\nstore = /%0200d\n", 0);
	bad_file("line too long", p, "2: the line is longer than 198 characters "
		 "(a long store list can go on over indented lines)");
	p = put("bad14.conf", "[kvswapd]\nstore = /a,\n   /b,\n   /a\n");
	bad_file("store list over lines, duplicate", p, "4: store: "
		 "'/a,/b,/a' names /a twice");
	p = put("bad15.conf", "[kvswapd]\nstore = \n");
	bad_file("empty value", p, "2: store: empty file name in ''");
	p = put("bad16.conf", "[kvswapd]\n");
	{
		FILE *f = fopen(p, "a");

		fwrite("queue-depth = 1\0002\n", 1, 18, f);
		fclose(f);
	}
	bad_file("NUL byte", p, "2: the line holds a NUL byte");
}

static void test_reload_and_diff(void)
{
	struct config a, b;
	const char *keys[8];

	ok(config_reloadable("log-level"), "log-level is reloadable");
	ok(!config_reloadable("socket"), "socket is not");
	ok(!config_reloadable("store"), "store is not");
	ok(!config_reloadable("store-size"), "store-size is not");
	ok(!config_reloadable("queue-depth"), "queue-depth is not");
	ok(!config_reloadable("nonsense"), "unknown option is not");

	config_defaults(&a);
	config_defaults(&b);
	is_uint(config_diff(&a, &b, keys, 8), 0, "defaults do not differ");
	set1(&b, "store", "/var/lib/kvswap/store0.kvs");
	is_uint(config_diff(&a, &b, keys, 8), 0, "same text, other pointer");
	set1(&b, "queue-depth", "7");
	set1(&b, "log-level", "debug");
	set1(&b, "socket", "/x.sock");
	ok(config_diff(&a, &b, keys, 8) == 3 && !strcmp(keys[0], "socket") &&
	   !strcmp(keys[1], "queue-depth") && !strcmp(keys[2], "log-level"),
	   "three differ, in table order");
	is_uint(config_diff(&a, &b, keys, 1), 3, "count beyond n");
	config_free(&a);
	config_free(&b);
}

/*
 * The example file and the man page: every option the table has (as
 * config_usage() lists them) appears in both, and the example's commented
 * defaults, uncommented, are the real defaults.
 */
static void test_docs(void)
{
	char *usage = NULL, *example, *man, *line, *save = NULL, *uncommented;
	char path[512];
	size_t ulen = 0;
	struct config cfg, def;
	const char *keys[8];
	FILE *m = open_memstream(&usage, &ulen);
	unsigned n = 0;

	config_usage(m);
	fclose(m);
	example = slurp(EXAMPLE);
	man = slurp(MANPAGE);
	for (line = strtok_r(usage, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[64], want[80];

		if (sscanf(line, " --%63[a-z-]", name) != 1)
			continue;
		n++;
		snprintf(want, sizeof(want), "\n#%s = ", name);
		ok(strstr(example, want), EXAMPLE " documents %s", name);
		snprintf(want, sizeof(want), "\n*%s* = ", name);
		ok(strstr(man, want), MANPAGE " documents %s", name);
	}
	ok(n >= 5, "config_usage lists %u options", n);

	config_defaults(&def);
	if (!is_int(load(&cfg, EXAMPLE, true), 0, EXAMPLE " loads"))
		diag("%s", err);
	is_uint(config_diff(&cfg, &def, keys, 8), 0, "and sets nothing");
	config_free(&cfg);
	/* "#key = value" lines become settings; prose comments stay. */
	uncommented = strdup(example);
	for (char *s = uncommented; (s = strstr(s, "\n#")); s++)
		if (s[2] >= 'a' && s[2] <= 'z' && strstr(s, " = ") &&
		    strstr(s, " = ") < strchr(s + 1, '\n'))
			memmove(s + 1, s + 2, strlen(s + 2) + 1);
	snprintf(path, sizeof(path), "%s/example.conf", dir);
	put("example.conf", "%s", uncommented);
	if (!is_int(load(&cfg, path, true), 0, "uncommented example loads"))
		diag("%s", err);
	if (!is_uint(config_diff(&cfg, &def, keys, 8), 0,
		"its values are the defaults"))
		diag("first: %s", keys[0]);
	config_free(&cfg);
	config_free(&def);
	free(uncommented);
	free(example);
	free(man);
	free(usage);
}

/* Tenants: the tenant-max-* options, admin-group, [tenant NAME] sections. */
static void test_tenants(void)
{
	struct config cfg, ref;
	const char *p;
	const char *keys[4];

	config_defaults(&cfg);
	is_str(cfg.admin_group, "", "default admin-group: none");
	is_uint(cfg.tenant_def.bytes, CONFIG_SHARE_PCT | 100,
		"default tenant-max-bytes: 100%% of the store");
	is_uint(cfg.tenant_def.pinned, CONFIG_SHARE_PCT | 50,
		"default tenant-max-pinned: 50%%");
	is_uint(cfg.tenant_def.leased, CONFIG_SHARE_PCT | 50,
		"default tenant-max-leased: 50%%");
	is_uint(cfg.tenant_def.lease_ms, 60000, "default tenant-max-lease-ms");
	is_uint(cfg.tenant_def.conns, 256, "default tenant-max-connections");
	is_uint(cfg.tenant_def.region_bytes, 64ull << 30,
		"default tenant-max-region-bytes");
	is_int(set1(&cfg, "tenant-max-pinned", "25%"), 0, "tenant-max-pinned = 25%%");
	is_uint(cfg.tenant_def.pinned, CONFIG_SHARE_PCT | 25, "... is a share");
	is_int(set1(&cfg, "tenant-max-pinned", "1G"), 0, "tenant-max-pinned = 1G");
	is_uint(cfg.tenant_def.pinned, 1ull << 30, "... is a size");
	is_uint(config_share(CONFIG_SHARE_PCT | 50, 1ull << 30), 1ull << 29,
		"50%% of 1 GiB is 512 MiB");
	is_uint(config_share(CONFIG_SHARE_PCT | 100, 123 * 4096), 123 * 4096,
		"100%% of the store is all of it");
	is_uint(config_share(4096, 1ull << 30), 4096, "a size stays a size");
	config_free(&cfg);
	bad("tenant-max-bytes", "0%", "tenant-max-bytes: '0%' is not a share of "
	    "the store in 1%..100%");
	bad("tenant-max-bytes", "101%", "tenant-max-bytes: '101%' is not a share "
	    "of the store in 1%..100%");
	bad("tenant-max-leased", "lots", "tenant-max-leased: 'lots' is not a size "
	    "(bytes, or a number with a K, M, G or T suffix)");
	bad("tenant-max-lease-ms", "60001", "tenant-max-lease-ms: '60001' is not "
	    "a number in 1..60000");

	p = put("tenants/kvswapd.conf", "[kvswapd]\nadmin-group = root\n"
		"tenant-max-leased = 10%%\n\n[tenant web]\nuids = 1001, 1002\n"
		"users = root\ngroups = root\ntenant-max-bytes = 2G\n\n"
		"[tenant batch.jobs_2]\nuids = 2001\n");
	if (is_int(load(&cfg, p, true), 0, "a file with two [tenant] sections "
		   "loads") && is_uint(cfg.ntenants, 2, "... two tenants")) {
		const struct config_tenant *w = &cfg.tenants[0];
		const struct config_tenant *b = &cfg.tenants[1];

		is_str(cfg.admin_group, "root", "admin-group = root");
		is_uint(cfg.tenant_def.leased, CONFIG_SHARE_PCT | 10,
			"tenant-max-leased = 10%% for every tenant");
		is_str(w->name, "web", "[tenant web]");
		ok(w->nuids == 3 && w->uids[0] == 1001 && w->uids[1] == 1002 &&
		   w->uids[2] == 0, "uids = 1001, 1002 and users = root (uid 0)");
		ok(w->ngids == 1 && w->gids[0] == 0, "groups = root (gid 0)");
		is_uint(w->lim.bytes, 2ull << 30, "its tenant-max-bytes = 2G");
		ok(w->set != 0, "... marked as its own");
		is_str(b->name, "batch.jobs_2", "[tenant batch.jobs_2]");
		ok(b->nuids == 1 && b->uids[0] == 2001 && !b->set,
		   "uids = 2001, no limits of its own");
		config_defaults(&ref);
		is_uint(config_diff(&ref, &cfg, keys, 4), 3, "three differences "
			"from the defaults");
		is_str(keys[0], "[tenant] sections", "... the [tenant] sections first");
		config_free(&ref);
	}
	config_free(&cfg);
	p = put("tenants/bad1.conf", "[tenant no way]\nuids = 1\n");
	bad_file("a tenant name with a blank", p, "1: [tenant no way]: 'no way' is "
		 "not a tenant name (1 to 32 of A-Z a-z 0-9 . _ -)");
	p = put("tenants/bad2.conf", "[tenant t]\nusers = kvt-no-such-user\n");
	bad_file("an unknown user", p, "2: users: no user 'kvt-no-such-user' on "
		 "this host");
	p = put("tenants/bad3.conf", "[tenant t]\ngroups = kvt-no-such-group\n");
	bad_file("an unknown group", p, "2: groups: no group 'kvt-no-such-group' "
		 "on this host");
	p = put("tenants/bad4.conf", "[tenant a]\nuids = 5\n[tenant b]\n"
		"uids = 6 5\n");
	bad_file("a uid in two sections", p, "4: uids: uid 5 (5) is already in "
		 "[tenant a]");
	p = put("tenants/bad5.conf", "[tenant t]\ncolor = red\n");
	bad_file("an unknown [tenant] key", p, "2: color: not a [tenant] setting "
		 "(uids, users, groups, tenant-max-*)");
	p = put("tenants/bad6.conf", "[tenant t]\ntenant-max-pinned = 200%%\n");
	bad_file("a bad limit in a [tenant] section", p, "2: tenant-max-pinned: "
		 "'200%' is not a share of the store in 1%..100%");
	p = put("tenants/bad7.conf", "[tenant t]\nuids = -1\n");
	bad_file("a uid that is no number", p, "2: uids: '-1' is not a uid");
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/kvswap-test-config.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		bail_out("mkdtemp %s: %s", dir, strerror(errno));
	test_defaults();
	test_set();
	test_bad_values();
	test_files();
	test_reload_and_diff();
	test_tenants();
	test_docs();
	if (!tap_failures())
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		diag("files kept in %s", dir);
	done_testing();
}
