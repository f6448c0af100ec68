/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl: command-line client for kvswapd.
 *
 * Built only on libkvswap's public API (kvswap.h). Each command is one
 * *_main() function in the table at the bottom, in the manner of
 * wireguard-tools' wg.c. Commands return the process exit status: 0 on
 * success, 1 when something failed (one line on stderr saying what), 2 on a
 * usage error. Helpers below them return a negative errno, as in the rest of
 * kvswap, and leave the reporting to the command.
 *
 * Keys are the bytes of the argv strings. When printed for humans, printable
 * ASCII is shown as is, a backslash as "\\" and every other byte as "\xNN".
 * In JSON a key is a string whose code points 0-255 are the key's bytes
 * (control characters, DEL and bytes >= 0x80 appear as "\u00NN"): encode
 * the string as Latin-1 to get the bytes back.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kvswap.h"

#ifndef KVSWAPCTL_VERSION
#define KVSWAPCTL_VERSION "0.1.0"
#endif

#define PROG "kvswapctl"

#define DEFAULT_SEGMENT_SIZE	(16ULL << 20)
#define LIST_PAGE		1000	/* the protocol's maximum page */
#define LS_KEY_WIDTH_MAX	64	/* longer keys overflow their column */
#define KEY_LABEL_MAX		80	/* longer keys are cut in messages */
#define READ_CHUNK		(1U << 20)

/* A transfer gets a progress bar once it is this large or this slow. */
#define PROGRESS_MIN_BYTES	(64ULL << 20)
#define PROGRESS_MIN_NS		1000000000ULL
#define PROGRESS_REDRAW_NS	100000000ULL
#define PROGRESS_POLL_MS	200

/* Options, as bits so that each command can say which ones it takes. */
enum {
	OPT_SOCKET = 1U << 0,
	OPT_JSON = 1U << 1,
	OPT_SEGMENT_SIZE = 1U << 2,
	OPT_HELP = 1U << 3,
	OPT_VERSION = 1U << 4,
	OPT_PIN = 1U << 5,
	OPT_DURABLE = 1U << 6,
	OPT_CACHE = 1U << 7,
	OPT_LEASE = 1U << 8,
	OPT_PROMETHEUS = 1U << 9,
};

struct ctl;

struct command {
	const char *name;
	int (*run)(struct ctl *c);
	const char *description;
	const char *synopsis;	/* what follows the command's name */
	unsigned int options;	/* OPT_* accepted besides the global ones */
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
	char **args;
	int nargs;
	struct kvswap *k;
};

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

/* Reports a failure with no underlying error code. Returns EXIT_FAILURE. */
__attribute__((format(printf, 2, 3)))
static int fail(const struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, NULL, fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

/* Reports a failed system call; err is a negative errno. */
__attribute__((format(printf, 3, 4)))
static int fail_sys(const struct ctl *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, strerror(-err), fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

/*
 * Reports a failed libkvswap call: the daemon's (or library's) message if it
 * left one, else the errno text.
 */
__attribute__((format(printf, 3, 4)))
static int fail_kv(const struct ctl *c, int err, const char *fmt, ...)
{
	const char *msg = c->k ? kvswap_last_error(c->k) : NULL;
	va_list ap;

	va_start(ap, fmt);
	vreport(c, msg && *msg ? msg : strerror(-err), fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

/* Reports a usage error with a pointer to the help. Returns 2. */
__attribute__((format(printf, 2, 3)))
static int usage_error(const struct ctl *c, const char *fmt, ...)
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

/* --- formatting ----------------------------------------------------------- */

/*
 * Returns a malloc'ed, NUL-terminated printable form of a key (see the top
 * of the file), or NULL if out of memory. The caller frees it.
 */
static char *key_escape(const void *key, size_t len)
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

/* key_escape() cut to KEY_LABEL_MAX characters, for error messages. */
static char *key_label(const void *key, size_t len)
{
	char *s = key_escape(key, len);

	if (s && strlen(s) > KEY_LABEL_MAX)
		strcpy(s + KEY_LABEL_MAX - 3, "...");
	return s;
}

/* Writes `len` bytes as a JSON string: see the top of the file. */
static void json_string(FILE *f, const void *buf, size_t len)
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

#define HUMAN_LEN 32

/* "512 B", "1.0 KiB", "12.3 GiB": one decimal, powers of 1024. */
static const char *human_size(uint64_t n, char buf[static HUMAN_LEN])
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

/* "3d 4h 5m 6s", leading zero units left out. */
static const char *human_duration(uint64_t ms, char buf[static HUMAN_LEN])
{
	uint64_t s = ms / 1000;
	uint64_t d = s / 86400;
	unsigned int h = (unsigned int)(s / 3600 % 24);
	unsigned int m = (unsigned int)(s / 60 % 60);
	unsigned int sec = (unsigned int)(s % 60);

	if (d)
		snprintf(buf, HUMAN_LEN, "%" PRIu64 "d %uh %um %us", d, h, m, sec);
	else if (h)
		snprintf(buf, HUMAN_LEN, "%uh %um %us", h, m, sec);
	else if (m)
		snprintf(buf, HUMAN_LEN, "%um %us", m, sec);
	else
		snprintf(buf, HUMAN_LEN, "%u.%03us", sec, (unsigned int)(ms % 1000));
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

/* --- progress bar --------------------------------------------------------- */

/*
 * A one-line progress bar on stderr, drawn only when stderr is a terminal
 * and the transfer is large or slow enough to be worth watching.
 */
struct progress {
	const char *verb;
	uint64_t total;
	uint64_t done;
	uint64_t start_ns;
	uint64_t drawn_ns;
	bool tty;
	bool shown;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void progress_start(struct progress *p, const char *verb,
			   uint64_t total)
{
	*p = (struct progress){
		.verb = verb,
		.total = total,
		.start_ns = now_ns(),
		.tty = isatty(STDERR_FILENO),
	};
}

static void progress_draw(struct progress *p)
{
	char done[HUMAN_LEN], total[HUMAN_LEN], rate[HUMAN_LEN];
	uint64_t now, elapsed;
	double secs;

	if (!p->tty)
		return;
	now = now_ns();
	elapsed = now - p->start_ns;
	if (!p->shown && p->total < PROGRESS_MIN_BYTES &&
	    elapsed < PROGRESS_MIN_NS)
		return;
	if (p->shown && now - p->drawn_ns < PROGRESS_REDRAW_NS &&
	    p->done < p->total)
		return;
	secs = (double)elapsed / 1e9;
	fprintf(stderr, "\r%s: %s / %s %3u%% %s/s\033[K", p->verb,
		human_size(p->done, done), human_size(p->total, total),
		p->total ? (unsigned int)(p->done * 100 / p->total) : 100,
		human_size(secs > 0 ? (uint64_t)((double)p->done / secs) : 0,
			   rate));
	p->shown = true;
	p->drawn_ns = now;
}

static void progress_clear(struct progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}

/* How a transfer failed: the first failed segment, else the final event. */
struct xfer_error {
	bool segment;
	uint32_t index;
	char message[512];
};

/*
 * Waits for every segment of `req` (lengths[i] is the length of the
 * request's segment i), advancing the progress bar, then for the final
 * event. Returns 0 or a negative errno; on failure *err says which
 * segment failed, if one did, and carries the daemon's message.
 */
static int transfer_wait(struct kvswap *k, struct kvswap_req *req,
			 const uint64_t *lengths, uint32_t nseg,
			 struct progress *p, struct xfer_error *err)
{
	int timeout = p->tty ? PROGRESS_POLL_MS : -1;
	int seg_ret = 0, ret;
	uint32_t idx;

	for (;;) {
		idx = UINT32_MAX;
		ret = kvswap_wait_segment(k, req, timeout, &idx);
		if (ret == -ENODATA)
			break;
		if (ret == -ETIMEDOUT) {
			progress_draw(p);
			continue;
		}
		if (ret < 0) {
			/*
			 * A failed segment (or a lost connection): the final
			 * event, which follows every segment, tells the rest.
			 */
			seg_ret = ret;
			err->segment = idx != UINT32_MAX;
			err->index = idx;
			snprintf(err->message, sizeof(err->message), "%s",
				 kvswap_last_error(k));
			break;
		}
		if (idx < nseg)
			p->done += lengths[idx];
		progress_draw(p);
	}
	ret = kvswap_wait(k, req, -1);
	if (ret < 0 && !seg_ret) {
		err->segment = false;
		snprintf(err->message, sizeof(err->message), "%s",
			 kvswap_last_error(k));
	}
	return ret < 0 ? ret : seg_ret;
}

/* Reports a failed transfer; `what` is "swap out" or "swap in". */
static int fail_transfer(const struct ctl *c, int ret, const char *what,
			 const char *key, const struct xfer_error *err)
{
	const char *msg = err->message[0] ? err->message : strerror(-ret);

	if (err->segment)
		return fail(c, "%s %s: segment %" PRIu32 ": %s", what, key,
			    err->index, msg);
	return fail(c, "%s %s: %s", what, key, msg);
}

/* --- files ---------------------------------------------------------------- */

/* Reads up to len bytes; returns the count read (short only at EOF). */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int write_full(int fd, const void *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Reads fd to its end into a malloc'ed buffer (for pipes and other streams
 * whose size is not known). On success the caller frees *ret_buf.
 */
static int read_all(int fd, void **ret_buf, size_t *ret_len)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nbuf;
	ssize_t n;

	for (;;) {
		if (cap - len < READ_CHUNK) {
			cap = cap ? cap * 2 : 4 * READ_CHUNK;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				free(buf);
				return -ENOMEM;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/* --- connection ----------------------------------------------------------- */

/*
 * Connects to --socket, else $KVSWAP_SOCKET, else the system socket.
 * Returns 0 or reports the failure and returns EXIT_FAILURE.
 */
static int ctl_connect(struct ctl *c)
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

/* --- put ------------------------------------------------------------------ */

static int put_main(struct ctl *c)
{
	const char *key = c->args[0], *path = c->args[1];
	const char *name = strcmp(path, "-") ? path : "stdin";
	size_t key_len = strlen(key);
	const struct kvswap_limits *lim;
	uint64_t seg_size = DEFAULT_SEGMENT_SIZE, size, nseg64;
	struct kvswap_seg_out *segs = NULL;
	struct kvswap_region *region = NULL;
	struct kvswap_req *req = NULL;
	struct xfer_error xerr = { 0 };
	uint64_t *lengths = NULL;
	struct progress prog;
	void *buf = NULL;
	char *key_esc;
	uint32_t align, nseg, i;
	struct stat st;
	int status = EXIT_FAILURE;
	int fd, ret;

	if (c->segment_size &&
	    (ctl_parse_size(c->segment_size, &seg_size) < 0 || seg_size == 0))
		return usage_error(c, "invalid --segment-size '%s': expected a positive size with an optional K, M, G or T suffix",
				   c->segment_size);
	if (!key_len)
		return usage_error(c, "KEY must not be empty");
	key_esc = key_label(key, key_len);
	if (!key_esc)
		return fail_sys(c, -ENOMEM, "escape key");

	if (!strcmp(path, "-")) {
		fd = STDIN_FILENO;
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fail_sys(c, -errno, "open %s", path);
			goto out_free_key;
		}
	}
	if (fstat(fd, &st) < 0) {
		fail_sys(c, -errno, "stat %s", name);
		goto out_close_fd;
	}
	if (S_ISREG(st.st_mode)) {
		/* stdin may be a regular file read from an offset. */
		off_t pos = lseek(fd, 0, SEEK_CUR);

		if (pos < 0 || pos > st.st_size)
			pos = 0;
		size = (uint64_t)(st.st_size - pos);
		if (size > SIZE_MAX) {
			fail(c, "%s: %" PRIu64 " bytes is too large for this machine",
			     name, size);
			goto out_close_fd;
		}
	} else {
		size_t len = 0;

		ret = read_all(fd, &buf, &len);
		if (ret < 0) {
			fail_sys(c, ret, "read %s", name);
			goto out_close_fd;
		}
		size = len;
	}
	if (size == 0) {
		fail(c, "%s is empty: nothing to store", name);
		goto out_free_buf;
	}

	if (ctl_connect(c))
		goto out_free_buf;
	lim = kvswap_limits(c->k);
	align = lim->alignment ? lim->alignment : 1;
	if (seg_size % align) {
		fail(c, "--segment-size %" PRIu64 " is not a multiple of the daemon's alignment %" PRIu32,
		     seg_size, align);
		goto out_close;
	}
	nseg64 = size / seg_size + (size % seg_size != 0);
	if (nseg64 > lim->max_segments) {
		char h[HUMAN_LEN];

		fail(c, "%s needs %" PRIu64 " segments of %s but the daemon accepts at most %" PRIu32 ": raise --segment-size",
		     name, nseg64, human_size(seg_size, h), lim->max_segments);
		goto out_close;
	}
	nseg = (uint32_t)nseg64;

	segs = calloc(nseg, sizeof(*segs));
	lengths = calloc(nseg, sizeof(*lengths));
	if (!segs || !lengths) {
		fail_sys(c, -ENOMEM, "allocate %" PRIu32 " segments", nseg);
		goto out_free_segs;
	}
	for (i = 0; i < nseg; i++) {
		segs[i].offset = (uint64_t)i * seg_size;
		segs[i].length = size - segs[i].offset < seg_size ?
				 size - segs[i].offset : seg_size;
		lengths[i] = segs[i].length;
	}

	ret = kvswap_region_create(c->k, (size_t)size, &region);
	if (ret < 0) {
		char h[HUMAN_LEN];

		fail_kv(c, ret, "create a region of %s", human_size(size, h));
		goto out_free_segs;
	}
	if (buf) {
		memcpy(kvswap_region_addr(region), buf, (size_t)size);
		free(buf);
		buf = NULL;
	} else {
		ssize_t n = read_full(fd, kvswap_region_addr(region),
				      (size_t)size);

		if (n < 0) {
			fail_sys(c, (int)n, "read %s", name);
			goto out_release;
		}
		if ((uint64_t)n < size) {
			fail(c, "read %s: the file shrank while being read",
			     name);
			goto out_release;
		}
	}

	progress_start(&prog, "put", size);
	ret = kvswap_swap_out(c->k, key, key_len, region, segs, nseg, NULL, 0,
			      c->put_flags, &req);
	if (ret < 0) {
		fail_kv(c, ret, "swap out %s", key_esc);
		goto out_release;
	}
	ret = transfer_wait(c->k, req, lengths, nseg, &prog, &xerr);
	progress_clear(&prog);
	if (ret < 0) {
		fail_transfer(c, ret, "swap out", key_esc, &xerr);
		goto out_free_req;
	}
	status = EXIT_SUCCESS;

out_free_req:
	kvswap_req_free(req);
out_release:
	ret = kvswap_region_release(c->k, region);
	if (ret < 0 && status == EXIT_SUCCESS)
		status = fail_kv(c, ret, "release the region");
out_free_segs:
	free(lengths);
	free(segs);
out_close:
	kvswap_close(c->k);
	c->k = NULL;
out_free_buf:
	free(buf);
out_close_fd:
	if (fd != STDIN_FILENO)
		close(fd);
out_free_key:
	free(key_esc);
	return status;
}

/* --- get ------------------------------------------------------------------ */

/*
 * Opens the output of get without truncating it, so that a failed swap-in
 * leaves an existing file as it was. *ret_created says whether the file
 * did not exist before.
 */
static int open_output(const char *path, int *ret_fd, bool *ret_created)
{
	bool created = true;
	int fd;

	if (!strcmp(path, "-")) {
		*ret_fd = STDOUT_FILENO;
		*ret_created = false;
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST) {
		created = false;
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	}
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	*ret_created = created;
	return 0;
}

static int get_main(struct ctl *c)
{
	const char *key = c->args[0], *path = c->args[1];
	const char *name = strcmp(path, "-") ? path : "stdout";
	size_t key_len = strlen(key);
	struct kvswap_entry entry = { 0 };
	struct kvswap_seg_in *segs = NULL;
	struct kvswap_region *region = NULL;
	struct kvswap_req *req = NULL;
	struct xfer_error xerr = { 0 };
	uint64_t region_size = 0, end;
	uint32_t align, i;
	struct progress prog;
	bool created = false, written = false;
	char *key_esc, *addr;
	int status = EXIT_FAILURE;
	int fd = -1, ret;
	struct stat st;

	if (!key_len)
		return usage_error(c, "KEY must not be empty");
	key_esc = key_label(key, key_len);
	if (!key_esc)
		return fail_sys(c, -ENOMEM, "escape key");

	if (ctl_connect(c))
		goto out_free_key;
	align = kvswap_limits(c->k)->alignment;
	if (!align)
		align = 1;

	ret = kvswap_describe(c->k, key, key_len, &entry);
	if (ret < 0) {
		fail_kv(c, ret, "%s", key_esc);
		goto out_close;
	}
	if (entry.segments && !entry.lengths) {
		fail(c, "%s: the daemon described %" PRIu32 " segments without their lengths",
		     key_esc, entry.segments);
		goto out_clear_entry;
	}

	/* Each segment at the next aligned offset, in stored order. */
	segs = calloc(entry.segments ? entry.segments : 1, sizeof(*segs));
	if (!segs) {
		fail_sys(c, -ENOMEM, "allocate %" PRIu32 " segments",
			 entry.segments);
		goto out_clear_entry;
	}
	for (i = 0; i < entry.segments; i++) {
		region_size = (region_size + align - 1) / align * align;
		segs[i].index = i;
		segs[i].offset = region_size;
		end = region_size + entry.lengths[i];
		if (end < region_size || end > SIZE_MAX) {
			fail(c, "%s: %" PRIu64 " bytes is too large for this machine",
			     key_esc, entry.size);
			goto out_free_segs;
		}
		region_size = end;
	}

	ret = open_output(path, &fd, &created);
	if (ret < 0) {
		fail_sys(c, ret, "open %s", path);
		goto out_free_segs;
	}

	/*
	 * An entry has at least one segment of at least one byte, but a
	 * description of nothing is still answered with an empty file.
	 */
	if (region_size) {
		ret = kvswap_region_create(c->k, (size_t)region_size, &region);
		if (ret < 0) {
			char h[HUMAN_LEN];

			fail_kv(c, ret, "create a region of %s",
				human_size(region_size, h));
			goto out_close_output;
		}
		progress_start(&prog, "get", entry.size);
		ret = kvswap_swap_in(c->k, key, key_len, region, segs,
				     entry.segments, &req);
		if (ret < 0) {
			fail_kv(c, ret, "swap in %s", key_esc);
			goto out_release;
		}
		ret = transfer_wait(c->k, req, entry.lengths, entry.segments,
				    &prog, &xerr);
		progress_clear(&prog);
		if (ret < 0) {
			fail_transfer(c, ret, "swap in", key_esc, &xerr);
			goto out_free_req;
		}
	}

	/* From here on the output is changed: a failure removes it. */
	written = true;
	if (fstat(fd, &st) < 0) {
		fail_sys(c, -errno, "stat %s", name);
		goto out_free_req;
	}
	if (S_ISREG(st.st_mode) && fd != STDOUT_FILENO &&
	    ftruncate(fd, 0) < 0) {
		fail_sys(c, -errno, "truncate %s", path);
		goto out_free_req;
	}
	addr = region ? kvswap_region_addr(region) : NULL;
	for (i = 0; i < entry.segments; i++) {
		ret = write_full(fd, addr + segs[i].offset,
				 (size_t)entry.lengths[i]);
		if (ret < 0) {
			fail_sys(c, ret, "write %s", name);
			goto out_free_req;
		}
	}
	if (fd != STDOUT_FILENO) {
		ret = close(fd);
		fd = -1;
		if (ret < 0) {
			fail_sys(c, -errno, "write %s", name);
			goto out_free_req;
		}
	}
	status = EXIT_SUCCESS;

out_free_req:
	kvswap_req_free(req);
out_release:
	ret = kvswap_region_release(c->k, region);
	if (ret < 0 && status == EXIT_SUCCESS)
		status = fail_kv(c, ret, "release the region");
out_close_output:
	if (fd >= 0 && fd != STDOUT_FILENO)
		close(fd);
	/*
	 * Never leave a partial copy, and never leave a file we created for
	 * nothing; an existing file we did not touch yet stays as it was.
	 * Only regular files are removed (think of /dev/null).
	 */
	if (status != EXIT_SUCCESS && strcmp(path, "-") &&
	    (created || written) && !lstat(path, &st) && S_ISREG(st.st_mode))
		unlink(path);
out_free_segs:
	free(segs);
out_clear_entry:
	kvswap_entry_clear(&entry);
out_close:
	kvswap_close(c->k);
	c->k = NULL;
out_free_key:
	free(key_esc);
	return status;
}

/* --- rm ------------------------------------------------------------------- */

static int rm_main(struct ctl *c)
{
	int status = EXIT_SUCCESS;
	int i, ret;

	for (i = 0; i < c->nargs; i++)
		if (!c->args[i][0])
			return usage_error(c, "KEY must not be empty");
	if (ctl_connect(c))
		return EXIT_FAILURE;
	for (i = 0; i < c->nargs; i++) {
		size_t len = strlen(c->args[i]);
		char *esc;

		ret = kvswap_delete(c->k, c->args[i], len);
		if (ret < 0) {
			esc = key_label(c->args[i], len);
			status = fail_kv(c, ret, "%s", esc ? esc : "?");
			free(esc);
		}
	}
	kvswap_close(c->k);
	c->k = NULL;
	return status;
}

/* --- ls ------------------------------------------------------------------- */

struct ls_item {
	char *key;
	size_t key_len;
	uint64_t size;
	uint32_t segments;
	uint64_t seq;		/* order received, to keep the latest copy */
};

static int ls_item_cmp(const void *a, const void *b)
{
	const struct ls_item *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int r = memcmp(x->key, y->key, n);

	if (r)
		return r;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void ls_print_table(const struct ls_item *items, size_t n)
{
	size_t key_width = 3, size_width = 4, i;
	char **esc;
	char num[24];

	esc = calloc(n ? n : 1, sizeof(*esc));
	for (i = 0; i < n; i++) {
		size_t w;

		if (esc)
			esc[i] = key_escape(items[i].key, items[i].key_len);
		w = esc && esc[i] ? strlen(esc[i]) : 1;
		if (w > key_width)
			key_width = w;
		w = (size_t)snprintf(num, sizeof(num), "%" PRIu64,
				     items[i].size);
		if (w > size_width)
			size_width = w;
	}
	if (key_width > LS_KEY_WIDTH_MAX)
		key_width = LS_KEY_WIDTH_MAX;

	printf("%-*s  %*s  %s\n", (int)key_width, "KEY", (int)size_width,
	       "SIZE", "SEGMENTS");
	for (i = 0; i < n; i++)
		printf("%-*s  %*" PRIu64 "  %8" PRIu32 "\n", (int)key_width,
		       esc && esc[i] ? esc[i] : "?", (int)size_width,
		       items[i].size, items[i].segments);
	for (i = 0; esc && i < n; i++)
		free(esc[i]);
	free(esc);
}

static void ls_print_json(const struct ls_item *items, size_t n)
{
	size_t i;

	fputs("{\n  \"entries\": [", stdout);
	for (i = 0; i < n; i++) {
		fputs(i ? ",\n    {\"key\": " : "\n    {\"key\": ", stdout);
		json_string(stdout, items[i].key, items[i].key_len);
		printf(", \"size\": %" PRIu64 ", \"segments\": %" PRIu32 "}",
		       items[i].size, items[i].segments);
	}
	fputs(n ? "\n  ]\n}\n" : "]\n}\n", stdout);
}

static int ls_main(struct ctl *c)
{
	struct ls_item *items = NULL, *nitems;
	size_t n = 0, cap = 0, i, out;
	int status = EXIT_FAILURE;
	uint64_t cursor = 0;
	int ret;

	if (ctl_connect(c))
		return EXIT_FAILURE;

	do {
		struct kvswap_entry *page;
		uint32_t count, j;

		ret = kvswap_list(c->k, &cursor, LIST_PAGE, &page, &count);
		if (ret < 0) {
			fail_kv(c, ret, "list");
			goto out_free_items;
		}
		if (count > cap - n) {
			cap = cap * 2 > n + count ? cap * 2 : n + count;
			nitems = realloc(items, cap * sizeof(*items));
			if (!nitems) {
				kvswap_entries_free(page, count);
				fail_sys(c, -ENOMEM, "list");
				goto out_free_items;
			}
			items = nitems;
		}
		for (j = 0; j < count; j++) {
			struct ls_item *it = &items[n];

			it->key = malloc(page[j].key_len ? page[j].key_len : 1);
			if (!it->key) {
				kvswap_entries_free(page, count);
				fail_sys(c, -ENOMEM, "list");
				goto out_free_items;
			}
			memcpy(it->key, page[j].key, page[j].key_len);
			it->key_len = page[j].key_len;
			it->size = page[j].size;
			it->segments = page[j].segments;
			it->seq = n;
			n++;
		}
		kvswap_entries_free(page, count);
	} while (cursor);

	/*
	 * A listing returns every entry at least once: sort by key, and of
	 * duplicates keep the copy received last.
	 */
	if (n)
		qsort(items, n, sizeof(*items), ls_item_cmp);
	for (i = 0, out = 0; i < n; i++) {
		if (i + 1 < n && items[i].key_len == items[i + 1].key_len &&
		    !memcmp(items[i].key, items[i + 1].key, items[i].key_len)) {
			free(items[i].key);
			continue;
		}
		items[out++] = items[i];
	}
	n = out;

	if (c->json)
		ls_print_json(items, n);
	else
		ls_print_table(items, n);
	status = EXIT_SUCCESS;

out_free_items:
	for (i = 0; i < n; i++)
		free(items[i].key);
	free(items);
	kvswap_close(c->k);
	c->k = NULL;
	return status;
}

/* --- lookup --------------------------------------------------------------- */

static int lookup_main(struct ctl *c)
{
	uint32_t n = (uint32_t)c->nargs, batch, off, prefix = 0, i;
	const void **keys = NULL;
	size_t *lens = NULL;
	bool *present = NULL;
	bool counting = true;
	int status = EXIT_FAILURE;
	unsigned long lease_ms = 0;
	int ret;

	keys = calloc(n, sizeof(*keys));
	lens = calloc(n, sizeof(*lens));
	present = calloc(n, sizeof(*present));
	if (!keys || !lens || !present) {
		fail_sys(c, -ENOMEM, "allocate %" PRIu32 " keys", n);
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		keys[i] = c->args[i];
		lens[i] = strlen(c->args[i]);
		if (!lens[i]) {
			status = usage_error(c, "KEY must not be empty");
			goto out_free;
		}
	}
	if (c->lease) {
		char *end;

		errno = 0;
		lease_ms = strtoul(c->lease, &end, 10);
		if (errno || *end || end == c->lease || lease_ms > 60000) {
			status = usage_error(c, "invalid --lease '%s': expected "
					     "milliseconds, at most 60000", c->lease);
			goto out_free;
		}
	}
	if (ctl_connect(c))
		goto out_free;

	/* More keys than one request may carry: the prefix spans batches. */
	batch = kvswap_limits(c->k)->max_lookup_keys;
	if (!batch)
		batch = n;
	for (off = 0; off < n; off += batch) {
		uint32_t count = n - off < batch ? n - off : batch;

		ret = kvswap_lookup_lease(c->k, (const void *const *)keys + off,
					  lens + off, count, lease_ms,
					  present + off);
		if (ret < 0) {
			fail_kv(c, ret, "lookup");
			goto out_close;
		}
		if (counting) {
			prefix += (uint32_t)ret;
			counting = (uint32_t)ret == count;
		}
	}

	if (c->json) {
		printf("{\n  \"prefix\": %" PRIu32 ",\n  \"keys\": [", prefix);
		for (i = 0; i < n; i++) {
			fputs(i ? ",\n    {\"key\": " : "\n    {\"key\": ",
			      stdout);
			json_string(stdout, keys[i], lens[i]);
			printf(", \"present\": %s}",
			       present[i] ? "true" : "false");
		}
		fputs("\n  ]\n}\n", stdout);
	} else {
		printf("prefix: %" PRIu32 " of %" PRIu32 "\n", prefix, n);
		for (i = 0; i < n; i++) {
			char *esc = key_escape(keys[i], lens[i]);

			printf("%-8s %s\n", present[i] ? "present" : "absent",
			       esc ? esc : "?");
			free(esc);
		}
	}
	status = EXIT_SUCCESS;

out_close:
	kvswap_close(c->k);
	c->k = NULL;
out_free:
	free(present);
	free(lens);
	free(keys);
	return status;
}

/* --- stat ----------------------------------------------------------------- */

static void stat_print_json(const struct kvswap_stat *s)
{
	printf("{\n"
	       "  \"capacity\": %" PRIu64 ",\n"
	       "  \"used\": %" PRIu64 ",\n"
	       "  \"entries\": %" PRIu64 ",\n"
	       "  \"bytes_in\": %" PRIu64 ",\n"
	       "  \"bytes_out\": %" PRIu64 ",\n"
	       "  \"requests\": %" PRIu64 ",\n"
	       "  \"errors\": %" PRIu64 ",\n"
	       "  \"in_flight\": %" PRIu32 ",\n"
	       "  \"clients\": %" PRIu32 ",\n"
	       "  \"regions\": %" PRIu32 ",\n"
	       "  \"store_files\": %" PRIu32 ",\n"
	       "  \"queue_depth\": %" PRIu32 ",\n"
	       "  \"cpu_user_us\": %" PRIu64 ",\n"
	       "  \"cpu_system_us\": %" PRIu64 ",\n"
	       "  \"uptime_ms\": %" PRIu64 ",\n"
	       "  \"evictions\": %" PRIu64 ",\n"
	       "  \"pinned\": %" PRIu64 ",\n"
	       "  \"durable\": %s,\n"
	       "  \"verify\": %s,\n"
	       "  \"journal_commits\": %" PRIu64 ",\n"
	       "  \"checkpoints\": %" PRIu64 ",\n"
	       "  \"checksum_errors\": %" PRIu64 ",\n"
	       "  \"io_errors\": %" PRIu64 "\n"
	       "}\n",
	       s->capacity, s->used, s->entries, s->bytes_in, s->bytes_out,
	       s->requests, s->errors, s->in_flight, s->clients, s->regions,
	       s->store_files, s->queue_depth, s->cpu_user_us,
	       s->cpu_system_us, s->uptime_ms, s->evictions, s->pinned,
	       s->durable ? "true" : "false", s->verify ? "true" : "false",
	       s->journal_commits, s->checkpoints, s->checksum_errors,
	       s->io_errors);
}

static void stat_print_table(const struct ctl *c, const struct kvswap_stat *s)
{
	const struct kvswap_limits *lim = kvswap_limits(c->k);
	char a[HUMAN_LEN], b[HUMAN_LEN];

	printf("%-12s %.*s\n", "daemon", (int)sizeof(lim->daemon),
	       lim->daemon);
	printf("%-12s %s\n", "socket", c->socket_path);
	printf("%-12s %s\n", "capacity", human_size(s->capacity, a));
	printf("%-12s %s (%.1f%%)\n", "used", human_size(s->used, a),
	       s->capacity ? 100.0 * (double)s->used / (double)s->capacity : 0);
	printf("%-12s %" PRIu64 "\n", "entries", s->entries);
	printf("%-12s %s\n", "swapped out", human_size(s->bytes_in, a));
	printf("%-12s %s\n", "swapped in", human_size(s->bytes_out, a));
	printf("%-12s %" PRIu64 "\n", "requests", s->requests);
	printf("%-12s %" PRIu64 "\n", "errors", s->errors);
	printf("%-12s %" PRIu32 "\n", "in flight", s->in_flight);
	printf("%-12s %" PRIu32 "\n", "clients", s->clients);
	printf("%-12s %" PRIu32 "\n", "regions", s->regions);
	printf("%-12s %" PRIu32 "\n", "store files", s->store_files);
	printf("%-12s %" PRIu32 "\n", "queue depth", s->queue_depth);
	printf("%-12s %s user, %s system\n", "cpu",
	       human_duration(s->cpu_user_us / 1000, a),
	       human_duration(s->cpu_system_us / 1000, b));
	printf("%-12s %s\n", "uptime", human_duration(s->uptime_ms, a));
	printf("%-12s %s, checksums %s\n", "durability",
	       s->durable ? "durable" : "cache", s->verify ? "verified" : "off");
	printf("%-12s %s\n", "pinned", human_size(s->pinned, a));
	printf("%-12s %" PRIu64 "\n", "evictions", s->evictions);
	printf("%-12s %" PRIu64 " commits, %" PRIu64 " checkpoints\n", "journal",
	       s->journal_commits, s->checkpoints);
	printf("%-12s %" PRIu64 " checksum, %" PRIu64 " I/O\n", "bad reads",
	       s->checksum_errors, s->io_errors);
}

/*
 * The Prometheus text format, for node_exporter's textfile collector:
 * kvswapctl stat --prometheus > /var/lib/node_exporter/kvswap.prom.$$ &&
 * mv it into place. No network listener in the daemon.
 */
static void prom(const char *name, const char *type, const char *help,
		 double v)
{
	printf("# HELP kvswap_%s %s\n# TYPE kvswap_%s %s\nkvswap_%s %.17g\n",
	       name, help, name, type, name, v);
}

static void stat_print_prometheus(const struct kvswap_stat *s)
{
	prom("up", "gauge", "Whether kvswapd answered.", 1);
	prom("capacity_bytes", "gauge", "Store capacity for data.",
	     (double)s->capacity);
	prom("used_bytes", "gauge", "Store space in use, block-rounded.",
	     (double)s->used);
	prom("pinned_bytes", "gauge", "Bytes of pinned entries.",
	     (double)s->pinned);
	prom("entries", "gauge", "Stored entries.", (double)s->entries);
	prom("swapped_out_bytes_total", "counter",
	     "Bytes swapped out (written to the store).", (double)s->bytes_in);
	prom("swapped_in_bytes_total", "counter",
	     "Bytes swapped in (read from the store).", (double)s->bytes_out);
	prom("requests_total", "counter", "Requests handled.",
	     (double)s->requests);
	prom("errors_total", "counter", "Error events sent.", (double)s->errors);
	prom("evictions_total", "counter", "Entries evicted for room.",
	     (double)s->evictions);
	prom("checksum_errors_total", "counter",
	     "Segments that failed their CRC32C on swap-in.",
	     (double)s->checksum_errors);
	prom("io_errors_total", "counter", "Segments that failed with EIO.",
	     (double)s->io_errors);
	prom("journal_commits_total", "counter", "Metadata log commits.",
	     (double)s->journal_commits);
	prom("checkpoints_total", "counter", "Metadata checkpoints.",
	     (double)s->checkpoints);
	prom("in_flight", "gauge", "Segment I/O chains in flight.",
	     (double)s->in_flight);
	prom("queue_depth", "gauge", "Configured queue depth.",
	     (double)s->queue_depth);
	prom("clients", "gauge", "Connected clients.", (double)s->clients);
	prom("regions", "gauge", "Registered client regions.",
	     (double)s->regions);
	prom("store_files", "gauge", "Store files.", (double)s->store_files);
	printf("# HELP kvswap_cpu_seconds_total kvswapd's CPU time.\n"
	       "# TYPE kvswap_cpu_seconds_total counter\n"
	       "kvswap_cpu_seconds_total{mode=\"user\"} %.6f\n"
	       "kvswap_cpu_seconds_total{mode=\"system\"} %.6f\n",
	       (double)s->cpu_user_us / 1e6, (double)s->cpu_system_us / 1e6);
	prom("uptime_seconds", "gauge", "Seconds since kvswapd started.",
	     (double)s->uptime_ms / 1e3);
}

static int stat_main(struct ctl *c)
{
	struct kvswap_stat s;
	int ret;

	if (c->prometheus && c->json)
		return usage_error(c, "--json and --prometheus exclude each other");
	if (ctl_connect(c)) {
		/* Scrapers still get a sample that says the daemon is down. */
		if (c->prometheus)
			printf("# TYPE kvswap_up gauge\nkvswap_up 0\n");
		return EXIT_FAILURE;
	}
	ret = kvswap_stat(c->k, &s);
	if (ret < 0) {
		if (c->prometheus)
			printf("# TYPE kvswap_up gauge\nkvswap_up 0\n");
		ret = fail_kv(c, ret, "stat");
		goto out_close;
	}
	if (c->prometheus)
		stat_print_prometheus(&s);
	else if (c->json)
		stat_print_json(&s);
	else
		stat_print_table(c, &s);
	ret = EXIT_SUCCESS;
out_close:
	kvswap_close(c->k);
	c->k = NULL;
	return ret;
}

/* --- command table and main ----------------------------------------------- */

static int help_main(struct ctl *c);

static const struct command commands[] = {
	{ "put", put_main, "swap a file out under KEY",
	  "KEY FILE [--segment-size SIZE] [--pin] [--durable|--cache]",
	  OPT_SEGMENT_SIZE | OPT_PIN | OPT_DURABLE | OPT_CACHE, 2, 2 },
	{ "get", get_main, "swap KEY in and write it to FILE",
	  "KEY FILE", 0, 2, 2 },
	{ "rm", rm_main, "delete stored keys",
	  "KEY...", 0, 1, -1 },
	{ "ls", ls_main, "list the stored keys",
	  "[--json]", OPT_JSON, 0, 0 },
	{ "lookup", lookup_main, "tell which keys are stored (prefix lookup)",
	  "KEY... [--lease MS] [--json]", OPT_JSON | OPT_LEASE, 1, -1 },
	{ "stat", stat_main, "show the daemon's statistics",
	  "[--json|--prometheus]", OPT_JSON | OPT_PROMETHEUS, 0, 0 },
	/* bench parses its own options: main() hands it the whole line. */
	{ "bench", NULL, "measure throughput and latency with synthetic traffic",
	  "[--op in|out|mixed] [--segment-size SIZE] [--clients C] [--depth D] "
	  "[--json] ...", 0, 0, 0 },
	{ "help", help_main, "show this help, or a command's",
	  "[COMMAND]", 0, 0, 1 },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *command_find(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: " PROG " [--socket PATH] COMMAND [ARGS...]\n"
		   "\n"
		   "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-7s %s\n", commands[i].name,
			commands[i].description);
	fprintf(f, "\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  " PROG " %s %s\n", commands[i].name,
			commands[i].synopsis);
	fprintf(f,
		"\n"
		"Options (before or after the command's arguments):\n"
		"  --socket PATH        the daemon's socket (default: $KVSWAP_SOCKET,\n"
		"                       else " KVSWAP_DEFAULT_SOCKET ")\n"
		"  --segment-size SIZE  put: segment size, a multiple of the daemon's\n"
		"                       alignment; K, M, G, T suffixes are powers of\n"
		"                       1024 (default: 16M)\n"
		"  --pin                put: never evict this entry\n"
		"  --durable, --cache   put: acknowledge once on stable storage, or\n"
		"                       once written (default: the daemon's choice)\n"
		"  --lease MS           lookup: keep the present keys from eviction\n"
		"                       for MS milliseconds (at most 60000)\n"
		"  --json               ls, lookup, stat: print JSON\n"
		"  --prometheus         stat: print the Prometheus text format\n"
		"  -h, --help           show this help\n"
		"  --version            show the version\n"
		"  --                   end of options (for keys starting with '-')\n"
		"\n"
		"FILE '-' is stdin for put and stdout for get. Keys are the bytes of\n"
		"the arguments; they are printed with non-printable bytes as \\xNN and\n"
		"in JSON as strings whose code points 0-255 are the key's bytes.\n"
		"lookup exits 0 whether or not the keys are present. Exit status: 0\n"
		"on success, 1 on failure, 2 on a usage error.\n");
}

static void command_usage(FILE *f, const struct command *cmd)
{
	fprintf(f, "Usage: " PROG " [--socket PATH] %s %s\n%s.\n", cmd->name,
		cmd->synopsis, cmd->description);
}

static int help_main(struct ctl *c)
{
	const struct command *cmd;

	if (!c->nargs) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	cmd = command_find(c->args[0]);
	if (!cmd)
		return usage_error(c, "unknown command '%s'", c->args[0]);
	command_usage(stdout, cmd);
	return EXIT_SUCCESS;
}

static const struct {
	const char *name;
	unsigned int flag;
	bool has_arg;
} option_defs[] = {
	{ "socket", OPT_SOCKET, true },
	{ "json", OPT_JSON, false },
	{ "segment-size", OPT_SEGMENT_SIZE, true },
	{ "pin", OPT_PIN, false },
	{ "durable", OPT_DURABLE, false },
	{ "cache", OPT_CACHE, false },
	{ "lease", OPT_LEASE, true },
	{ "prometheus", OPT_PROMETHEUS, false },
	{ "help", OPT_HELP, false },
	{ "version", OPT_VERSION, false },
};

#define NOPTIONS (sizeof(option_defs) / sizeof(option_defs[0]))

/*
 * The command word: the first argument that is neither an option nor an
 * option's value, as parse_args() will see it. NULL if there is none.
 */
static const char *command_word(int argc, char **argv)
{
	const char *a, *name;
	size_t j, len;
	int i;

	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (!strcmp(a, "--"))
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (a[0] != '-' || !a[1])
			return a;
		if (a[1] != '-' || strchr(a, '='))
			continue;
		name = a + 2;
		len = strlen(name);
		for (j = 0; j < NOPTIONS; j++)
			if (option_defs[j].has_arg &&
			    strlen(option_defs[j].name) == len &&
			    !strncmp(option_defs[j].name, name, len))
				i++;
	}
	return NULL;
}

/*
 * Parses options anywhere on the command line, moving the positional
 * arguments (the command and its arguments) to the front of argv. Returns
 * the number of positional arguments, or -1 after a usage error.
 */
static int parse_args(struct ctl *c, int argc, char **argv,
		      unsigned int *ret_seen)
{
	unsigned int seen = 0;
	bool options_done = false;
	int npos = 0, i;
	size_t j;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *value;
		size_t name_len;

		if (options_done || a[0] != '-' || !a[1]) {
			argv[npos++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			options_done = true;
			continue;
		}
		if (!strcmp(a, "-h")) {
			seen |= OPT_HELP;
			continue;
		}
		if (a[1] != '-') {
			usage_error(NULL, "unknown option '%s'", a);
			return -1;
		}
		name = a + 2;
		eq = strchr(name, '=');
		name_len = eq ? (size_t)(eq - name) : strlen(name);
		for (j = 0; j < NOPTIONS; j++)
			if (strlen(option_defs[j].name) == name_len &&
			    !strncmp(option_defs[j].name, name, name_len))
				break;
		if (j == NOPTIONS) {
			usage_error(NULL, "unknown option '%s'", a);
			return -1;
		}
		if (!option_defs[j].has_arg && eq) {
			usage_error(NULL, "option '--%s' takes no value",
				    option_defs[j].name);
			return -1;
		}
		value = NULL;
		if (option_defs[j].has_arg) {
			if (eq) {
				value = eq + 1;
			} else if (i + 1 < argc) {
				value = argv[++i];
			} else {
				usage_error(NULL, "option '--%s' needs a value",
					    option_defs[j].name);
				return -1;
			}
		}
		seen |= option_defs[j].flag;
		switch (option_defs[j].flag) {
		case OPT_SOCKET:
			c->socket = value;
			break;
		case OPT_JSON:
			c->json = true;
			break;
		case OPT_SEGMENT_SIZE:
			c->segment_size = value;
			break;
		case OPT_PIN:
			c->put_flags |= KVSWAP_PINNED;
			break;
		case OPT_DURABLE:
			c->put_flags |= KVSWAP_DURABLE;
			break;
		case OPT_CACHE:
			c->put_flags |= KVSWAP_CACHE;
			break;
		case OPT_LEASE:
			c->lease = value;
			break;
		case OPT_PROMETHEUS:
			c->prometheus = true;
			break;
		}
	}
	*ret_seen = seen;
	return npos;
}

int main(int argc, char *argv[])
{
	const unsigned int global = OPT_SOCKET | OPT_HELP | OPT_VERSION;
	struct ctl c = { 0 };
	const char *cmd_name;
	unsigned int seen, extra;
	size_t j;
	int npos, status;

	cmd_name = command_word(argc, argv);
	if (cmd_name && !strcmp(cmd_name, "bench"))
		return bench_main(argc, argv);
	npos = parse_args(&c, argc, argv, &seen);
	if (npos < 0)
		return 2;
	if (seen & OPT_VERSION) {
		printf(PROG " " KVSWAPCTL_VERSION "\n");
		return EXIT_SUCCESS;
	}
	if (!npos) {
		if (seen & OPT_HELP) {
			usage(stdout);
			return EXIT_SUCCESS;
		}
		usage(stderr);
		return 2;
	}
	c.cmd = command_find(argv[0]);
	if (!c.cmd) {
		usage_error(NULL, "unknown command '%s'", argv[0]);
		return 2;
	}
	if (seen & OPT_HELP) {
		command_usage(stdout, c.cmd);
		return EXIT_SUCCESS;
	}
	extra = seen & ~(global | c.cmd->options);
	for (j = 0; extra && j < NOPTIONS; j++)
		if (extra & option_defs[j].flag)
			return usage_error(&c, "option '--%s' does not apply here",
					   option_defs[j].name);
	c.args = argv + 1;
	c.nargs = npos - 1;
	if (c.nargs < c.cmd->min_args ||
	    (c.cmd->max_args >= 0 && c.nargs > c.cmd->max_args)) {
		command_usage(stderr, c.cmd);
		return 2;
	}

	/* bench never gets here: command_word() found it first. */
	if (!c.cmd->run)
		return usage_error(&c, "put the options after 'bench'");
	status = c.cmd->run(&c);

	errno = 0;
	if (fflush(stdout) || ferror(stdout)) {
		fail_sys(&c, errno ? -errno : -EIO, "write to stdout");
		return EXIT_FAILURE;
	}
	return status;
}
