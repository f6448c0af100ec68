/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl put, get and rm: one entry at a time, between a file (or
 * stdin/stdout) and the store. Transfers show a progress line on a
 * terminal once they are large or slow enough to be worth watching.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "util.h"

#define DEFAULT_SEGMENT_SIZE	(16ULL << 20)
#define KEY_LABEL_MAX		80	/* longer keys are cut in messages */
#define READ_CHUNK		(1U << 20)

/* A transfer gets a progress bar once it is this large or this slow. */
#define PROGRESS_MIN_BYTES	(64ULL << 20)
#define PROGRESS_MIN_NS		1000000000ULL
#define PROGRESS_REDRAW_NS	100000000ULL
#define PROGRESS_POLL_MS	200

/* key_escape() cut to KEY_LABEL_MAX characters, for error messages. */
static char *key_label(const void *key, size_t len)
{
	char *s = key_escape(key, len);

	if (s && strlen(s) > KEY_LABEL_MAX)
		strcpy(s + KEY_LABEL_MAX - 3, "...");
	return s;
}

/* --- transfers ------------------------------------------------------------ */

/* The progress of one transfer, drawn on a struct progress_line. */
struct progress {
	const char *verb;
	uint64_t total;
	uint64_t done;
	uint64_t start_ns;
	uint64_t drawn_ns;
	struct progress_line line;
};

static void progress_start(struct progress *p, const char *verb,
			   uint64_t total)
{
	*p = (struct progress){
		.verb = verb,
		.total = total,
		.start_ns = now_ns(),
	};
	progress_line_init(&p->line);
}

static void progress_draw(struct progress *p)
{
	char done[HUMAN_LEN], total[HUMAN_LEN], rate[HUMAN_LEN];
	uint64_t now, elapsed;
	double secs;

	if (!p->line.tty)
		return;
	now = now_ns();
	elapsed = now - p->start_ns;
	if (!p->line.shown && p->total < PROGRESS_MIN_BYTES &&
	    elapsed < PROGRESS_MIN_NS)
		return;
	if (p->line.shown && now - p->drawn_ns < PROGRESS_REDRAW_NS &&
	    p->done < p->total)
		return;
	secs = (double)elapsed / 1e9;
	progress_line_draw(&p->line, "%s: %s / %s %3u%% %s/s", p->verb,
			   human_size(p->done, done),
			   human_size(p->total, total),
			   p->total ? (unsigned int)(p->done * 100 / p->total) :
			   100,
			   human_size(secs > 0 ?
				      (uint64_t)((double)p->done / secs) : 0,
				      rate));
	p->drawn_ns = now;
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
	int timeout = p->line.tty ? PROGRESS_POLL_MS : -1;
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

/* --- put ------------------------------------------------------------------ */

int put_main(struct ctl *c)
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
	progress_line_clear(&prog.line);
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

int get_main(struct ctl *c)
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
		progress_line_clear(&prog.line);
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

int rm_main(struct ctl *c)
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

		ret = kvswap_delete_tenant(c->k, c->tenant, c->args[i], len);
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
