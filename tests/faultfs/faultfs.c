/* SPDX-License-Identifier: MIT */
/*
 * faultfs: a FUSE filesystem for tests that mirrors a backing directory
 * and, on command, injects faults and simulates power loss.
 *
 *   faultfs BACKING_DIR MOUNTPOINT [-f] [-d] [-o OPTION...]
 *
 * Every file is opened with FOPEN_DIRECT_IO (no page cache; O_DIRECT opens
 * succeed), the loop is single-threaded so that "the n-th write" means one
 * thing, and locks (flock, fcntl) are left to the kernel, which keeps them
 * locally for the mount.
 *
 * The device model. Data written to a file sits in a volatile write cache
 * (an in-memory overlay per inode that reads see) until a barrier makes it
 * durable, which writes it to the backing file:
 *   - fsync or fdatasync of the file (any descriptor of it) makes all of
 *     that file's cached writes durable, and no other file's;
 *   - a write with O_DSYNC or O_SYNC (open flags, or RWF_DSYNC/RWF_SYNC per
 *     write: the kernel passes those to FUSE as O_DSYNC/O_SYNC in
 *     fuse_write_in.flags) is durable by itself when it completes, as a
 *     FUA write is; it does not flush the file's earlier writes.
 * File metadata (create, rename, unlink, truncate, fallocate, chmod) goes
 * straight to the backing directory and is durable at once: the model
 * loses data, never names or sizes set explicitly (so it cannot catch a
 * missing directory fsync after a rename).
 *
 * Like a block device, O_DIRECT reads and writes must be aligned: an offset
 * or length that is not a multiple of 512 bytes (see "align") fails with
 * EINVAL. FUSE itself checks nothing (and reports no STATX_DIOALIGN).
 * mmap is refused, as for any FOPEN_DIRECT_IO file.
 *
 * Control: the file /.faultfs at the mount root (not listed by readdir).
 * Write one command per line to it; a bad command fails the write with
 * EINVAL and its reason shows in the stats. Reading it returns the stats,
 * one "key value" per line.
 *
 *   eio   [MATCH] [once|sticky|times=N]     fail matching ops with EIO
 *   short [MATCH] [once|sticky|times=N]     reads/writes transfer less: up to
 *                                           the range start (off=) if the op
 *                                           starts before it, else half
 *   enospc [MATCH] [once|sticky|times=N]    fail with ENOSPC (default ops:
 *                                           write,fallocate; sticky)
 *   delay MS [MATCH] [once|sticky|times=N]  sleep MS ms before the op (the
 *                                           whole filesystem waits; sticky)
 *     MATCH: op=LIST    read,write,fsync,fallocate,open,meta,stat, io
 *                       (read,write,fsync) or all; default io (short:
 *                       read,write)
 *            file=GLOB  path from the mount root, fnmatch(3), no leading /
 *            off=N len=N  only ops whose byte range overlaps [off, off+len)
 *                       (read, write, fallocate; never fsync)
 *            nth=N      let N-1 matching ops through, fire at the N-th
 *     eio and short default to once. Numbers take k/m/g suffixes (x1024).
 *     Rules are checked in order; delays add up, the first error rule that
 *     fires decides the op's result.
 *   cut [drop]          power loss: every cached (non-durable) write is lost
 *   cut random SEED [sector=N]
 *                       power loss: each cached write (or each N-byte
 *                       file-aligned piece of one) survives with probability
 *                       1/2, the survivors applied in a random order; SEED
 *                       makes it repeatable
 *     After a cut every op but the control file's fails with EIO until reset,
 *     so a process killed right after cannot write anything more.
 *   reset               drop all rules and leave the cut state: the backing
 *                       files are now the surviving image (counters stay)
 *   sync                make every cached write durable
 *   align N             O_DIRECT alignment to enforce (default 512; 0: none)
 *   trace on|off        log every op (file, offset, length, flags) to stderr
 *   stats               log the stats to stderr (reading the file returns them)
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_NAME	".faultfs"
#define MAX_RULES	64
#define MAX_CMD		4096

/* Operation classes, for rules and counters. */
enum op {
	OP_READ,
	OP_WRITE,
	OP_FSYNC,
	OP_FALLOCATE,
	OP_OPEN,
	OP_META,	/* namespace changes, truncate, chmod, chown, utimens */
	OP_STAT,	/* getattr, readdir, readlink, statfs */
	OP_COUNT,
};

static const char *const op_names[OP_COUNT] = {
	"read", "write", "fsync", "fallocate", "open", "meta", "stat",
};

#define OPS_IO	((1u << OP_READ) | (1u << OP_WRITE) | (1u << OP_FSYNC))
#define OPS_ALL	((1u << OP_COUNT) - 1)

enum fault {
	FAULT_EIO,
	FAULT_SHORT,
	FAULT_ENOSPC,
	FAULT_DELAY,
	FAULT_COUNT,
};

static const char *const fault_names[FAULT_COUNT] = {
	"eio", "short", "enospc", "delay",
};

struct rule {
	enum fault kind;
	unsigned ops;		/* 1 << OP_* */
	char file[256];		/* fnmatch pattern; "" matches any file */
	bool ranged;
	uint64_t off, len;
	uint64_t skip;		/* matching ops still to let through */
	uint64_t times;		/* firings left; UINT64_MAX: sticky */
	unsigned delay_ms;
};

/* A cached write: the bytes [off, off + len) of a file, not durable yet. */
struct cw {
	struct cw *next;
	uint64_t off;
	size_t len;
	char *data;		/* owned */
};

/*
 * One backing inode with cached writes or open handles. Owner: the node
 * list; node_put() frees it once it has neither.
 */
struct node {
	struct node *next;
	dev_t dev;
	ino_t ino;
	char *path;		/* from the mount root, for file=; "" once unlinked */
	unsigned opens;
	int wfd;		/* a writable backing fd for barriers, or -1 */
	struct cw *cache;	/* oldest first */
	struct cw **tail;
	size_t ncache;
	uint64_t cache_bytes;
};

struct handle {
	int fd;			/* backing file, without O_DIRECT */
	struct node *node;
	bool control;
};

struct dir_handle {
	DIR *dir;
	bool root;		/* hides the control file's name */
};

enum fs_state { FS_LIVE, FS_CUT };

static struct {
	int dirfd;		/* the backing directory */
	enum fs_state state;
	bool trace;
	struct node *nodes;
	struct rule rules[MAX_RULES];
	unsigned nrules;
	char last_error[256];
	uint64_t ops[OP_COUNT];
	uint64_t faults[FAULT_COUNT];
	uint64_t refused;	/* ops failed because of a cut */
	uint64_t barriers;	/* fsync/fdatasync/sync commands */
	uint64_t dsync_writes;
	uint64_t cuts;
	uint64_t cut_dropped, cut_kept;		/* pieces, last cut */
	uint64_t cut_dropped_bytes, cut_kept_bytes;
	uint64_t dio_align;	/* 0: O_DIRECT alignment not checked */
} fs = { .dirfd = -1, .dio_align = 512 };

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void trace(const char *fmt, ...)
{
	va_list ap;

	if (!fs.trace)
		return;
	va_start(ap, fmt);
	fputs("faultfs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* "/a/b" -> "a/b"; "/" -> ".": paths relative to fs.dirfd. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static bool is_control(const char *path)
{
	return path && !strcmp(path, "/" CONTROL_NAME);
}

static struct handle *handle_of(const struct fuse_file_info *fi)
{
	return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}

/* --- the write cache ----------------------------------------------------- */

static uint64_t cache_end(const struct node *n)
{
	uint64_t end = 0;

	for (const struct cw *w = n->cache; w; w = w->next)
		if (w->off + w->len > end)
			end = w->off + w->len;
	return end;
}

static void cw_free(struct cw *w)
{
	if (!w)
		return;
	free(w->data);
	free(w);
}

/* Owner: the caller, until linked into a node by cache_link(). */
static struct cw *cw_new(const void *data, size_t len, uint64_t off)
{
	struct cw *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->data = malloc(len ? len : 1);
	if (!w->data) {
		free(w);
		return NULL;
	}
	memcpy(w->data, data, len);
	w->off = off;
	w->len = len;
	return w;
}

static void cache_relink_tail(struct node *n)
{
	n->tail = &n->cache;
	while (*n->tail)
		n->tail = &(*n->tail)->next;
}

static void cache_link(struct node *n, struct cw *w)
{
	w->next = NULL;
	*n->tail = w;
	n->tail = &w->next;
	n->ncache++;
	n->cache_bytes += w->len;
}

/*
 * Removes [start, end) from every cached write of n: that range was just
 * overwritten durably, truncated or punched, so no cached version of it
 * may show through reads or survive a cut. Returns -ENOMEM if a write
 * split in two could not be copied (the cache is left as it was then).
 */
static int cache_punch(struct node *n, uint64_t start, uint64_t end)
{
	struct cw **pp = &n->cache;

	while (*pp) {
		struct cw *w = *pp;
		uint64_t ws = w->off, we = w->off + w->len;

		if (we <= start || ws >= end) {
			pp = &w->next;
			continue;
		}
		if (ws < start && we > end) {
			/* Split: the right part becomes a write of its own. */
			struct cw *r = cw_new(w->data + (end - ws), we - end, end);

			if (!r)
				return -ENOMEM;
			r->next = w->next;
			w->next = r;
			w->len = start - ws;
			n->ncache++;
			n->cache_bytes -= end - start;
			pp = &r->next;
		} else if (ws < start) {
			n->cache_bytes -= we - start;
			w->len = start - ws;
			pp = &w->next;
		} else if (we > end) {
			n->cache_bytes -= end - ws;
			memmove(w->data, w->data + (end - ws), we - end);
			w->len = we - end;
			w->off = end;
			pp = &w->next;
		} else {
			*pp = w->next;
			n->ncache--;
			n->cache_bytes -= w->len;
			cw_free(w);
		}
	}
	cache_relink_tail(n);
	return 0;
}

static void cache_drop(struct node *n)
{
	while (n->cache) {
		struct cw *w = n->cache;

		n->cache = w->next;
		cw_free(w);
	}
	n->ncache = 0;
	n->cache_bytes = 0;
	cache_relink_tail(n);
}

static int pwrite_full(int fd, const char *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pwrite(fd, buf, len, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		buf += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* The barrier: writes n's cached writes, oldest first, to the backing file. */
static int cache_flush(struct node *n)
{
	while (n->cache) {
		struct cw *w = n->cache;
		int r;

		if (n->wfd < 0)
			return -EBADF;
		r = pwrite_full(n->wfd, w->data, w->len, w->off);
		if (r < 0)
			return r;
		n->cache = w->next;
		n->ncache--;
		n->cache_bytes -= w->len;
		cw_free(w);
	}
	cache_relink_tail(n);
	return 0;
}

/*
 * Lays the cached writes over buf, which holds `got` bytes read from the
 * backing file at off (want asked for; fewer means its end). Returns the
 * bytes now valid: cached writes past the backing file's end extend the
 * file, as getattr reports, with zeros in any gap.
 */
static size_t cache_overlay(const struct node *n, char *buf, uint64_t off,
			    size_t want, size_t got)
{
	uint64_t end = off + got, size = cache_end(n);

	if (got < want && size > end)
		end = size < off + want ? size : off + want;
	if (end > off + got)
		memset(buf + got, 0, (size_t)(end - off - got));
	for (const struct cw *w = n->cache; w; w = w->next) {
		uint64_t s = w->off > off ? w->off : off;
		uint64_t e = w->off + w->len < off + want ? w->off + w->len
							     : off + want;

		if (s < e)
			memcpy(buf + (s - off), w->data + (s - w->off), e - s);
	}
	return (size_t)(end - off);
}

/* --- nodes --------------------------------------------------------------- */

static struct node *node_find(dev_t dev, ino_t ino)
{
	for (struct node *n = fs.nodes; n; n = n->next)
		if (n->dev == dev && n->ino == ino)
			return n;
	return NULL;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	cache_drop(n);
	if (n->wfd >= 0)
		close(n->wfd);
	free(n->path);
	free(n);
}

/* Frees n if nothing refers to it any more: no handle, no cached write. */
static void node_put(struct node *n)
{
	struct node **pp;

	if (n->opens || n->cache)
		return;
	for (pp = &fs.nodes; *pp != n; pp = &(*pp)->next)
		assert(*pp);
	*pp = n->next;
	node_free(n);
}

static int set_path(struct node *n, const char *path)
{
	char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	free(n->path);
	n->path = p;
	return 0;
}

/*
 * Returns the node of the backing file open at fd (found or new, appended
 * so that cuts visit nodes in a repeatable order), with one more open.
 * Owner: the node list; the caller drops its open with node_put().
 */
static int node_get(int fd, const char *path, bool writable,
		    struct node **ret_node)
{
	struct stat st;
	struct node *n, **pp;

	if (fstat(fd, &st) < 0)
		return -errno;
	n = node_find(st.st_dev, st.st_ino);
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n || set_path(n, rel(path)) < 0) {
			free(n);
			return -ENOMEM;
		}
		n->dev = st.st_dev;
		n->ino = st.st_ino;
		n->wfd = -1;
		cache_relink_tail(n);
		for (pp = &fs.nodes; *pp; pp = &(*pp)->next)
			;
		*pp = n;
	}
	if (writable && n->wfd < 0)
		n->wfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	n->opens++;
	*ret_node = n;
	return 0;
}

/*
 * A name went away (unlink, or replaced by rename): if it was the file's
 * last link, its cached writes go with it and the node no longer has a
 * name for file= rules.
 */
static void node_unlinked(const struct stat *st)
{
	struct node *n;

	if (!S_ISREG(st->st_mode) || st->st_nlink > 1)
		return;
	n = node_find(st->st_dev, st->st_ino);
	if (!n)
		return;
	cache_drop(n);
	n->path[0] = '\0';
	node_put(n);
}

/* Renames: nodes at from, or under it, now live at to. */
static void nodes_renamed(const char *from, const char *to)
{
	size_t fl = strlen(from);

	for (struct node *n = fs.nodes; n; n = n->next) {
		char *p;

		if (strncmp(n->path, from, fl) || (n->path[fl] && n->path[fl] != '/'))
			continue;
		if (asprintf(&p, "%s%s", to, n->path + fl) < 0)
			continue;	/* keeps the old name: file= may miss it */
		free(n->path);
		n->path = p;
	}
}

/* --- faults -------------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool rule_matches(const struct rule *r, enum op op, const char *file,
			 bool ranged, uint64_t off, uint64_t len)
{
	if (!(r->ops & (1u << op)))
		return false;
	if (r->file[0] && (!file || !file[0] || fnmatch(r->file, file, 0)))
		return false;
	if (r->ranged && (!ranged || off >= r->off + r->len || off + len <= r->off))
		return false;
	return true;
}

static void rule_remove(unsigned i)
{
	memmove(&fs.rules[i], &fs.rules[i + 1],
		(fs.nrules - i - 1) * sizeof(fs.rules[0]));
	fs.nrules--;
}

/*
 * Every op passes here first. Returns 0 to go on, or the -errno to fail
 * it with. For reads and writes (ranged, [off, off + *io_len)), a short
 * rule lowers *io_len.
 */
static int gate(enum op op, const char *file, bool ranged, uint64_t off,
		size_t *io_len)
{
	uint64_t len = io_len ? *io_len : 0;
	int ret = 0;
	bool decided = false;

	if (fs.state == FS_CUT) {
		fs.refused++;
		return -EIO;
	}
	fs.ops[op]++;
	for (unsigned i = 0; i < fs.nrules; i++) {
		struct rule *r = &fs.rules[i];

		if (r->kind != FAULT_DELAY && decided)
			continue;
		if (!rule_matches(r, op, file, ranged, off, len))
			continue;
		if (r->skip) {
			r->skip--;
			continue;
		}
		fs.faults[r->kind]++;
		switch (r->kind) {
		case FAULT_DELAY:
			sleep_ms(r->delay_ms);
			break;
		case FAULT_EIO:
			ret = -EIO;
			decided = true;
			break;
		case FAULT_ENOSPC:
			ret = -ENOSPC;
			decided = true;
			break;
		case FAULT_SHORT:
			assert(io_len);
			if (r->ranged && off < r->off)
				*io_len = (size_t)(r->off - off);
			else
				*io_len = (size_t)(len / 2);
			decided = true;
			break;
		case FAULT_COUNT:
			assert(0);
		}
		trace("fault %s on %s %s off=%" PRIu64 " len=%" PRIu64,
		      fault_names[r->kind], op_names[op], file ? file : "-", off, len);
		if (r->times != UINT64_MAX && --r->times == 0)
			rule_remove(i--);
	}
	return ret;
}

/* --- power cut ----------------------------------------------------------- */

struct piece {
	struct node *n;
	const char *data;
	uint64_t off;
	size_t len;
};

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Power loss. drop: every cached write is lost. random: each cached write,
 * or each sector-aligned piece of one when sector > 0, survives with
 * probability 1/2; the survivors reach the backing files in a random order
 * (what a volatile cache that writes back out of order leaves). Then every
 * op fails until reset.
 */
static int power_cut(bool random, uint64_t seed, uint64_t sector)
{
	struct piece *p = NULL;
	size_t np = 0, cap = 0, kept = 0;
	int ret = 0;

	fs.cut_dropped = fs.cut_kept = 0;
	fs.cut_dropped_bytes = fs.cut_kept_bytes = 0;
	for (struct node *n = fs.nodes; n; n = n->next) {
		for (struct cw *w = n->cache; w; w = w->next) {
			for (uint64_t o = w->off; o < w->off + w->len;) {
				uint64_t e = w->off + w->len;

				if (sector && (o / sector + 1) * sector < e)
					e = (o / sector + 1) * sector;
				if (np == cap) {
					struct piece *q;

					cap = cap ? 2 * cap : 64;
					q = realloc(p, cap * sizeof(*p));
					if (!q) {
						ret = -ENOMEM;
						goto out_cut;
					}
					p = q;
				}
				p[np++] = (struct piece){ n, w->data + (o - w->off),
							  o, (size_t)(e - o) };
				o = e;
			}
		}
	}
	for (size_t i = 0; i < np; i++) {
		bool keep = random && (splitmix64(&seed) & 1);

		if (keep) {
			p[kept++] = p[i];
			fs.cut_kept++;
			fs.cut_kept_bytes += p[i].len;
		} else {
			fs.cut_dropped++;
			fs.cut_dropped_bytes += p[i].len;
		}
	}
	for (size_t i = kept; i > 1; i--) {
		size_t j = (size_t)(splitmix64(&seed) % i);
		struct piece t = p[i - 1];

		p[i - 1] = p[j];
		p[j] = t;
	}
	for (size_t i = 0; i < kept; i++) {
		int r = p[i].n->wfd < 0 ? -EBADF :
			pwrite_full(p[i].n->wfd, p[i].data, p[i].len, p[i].off);

		trace("cut keeps %s off=%" PRIu64 " len=%zu", p[i].n->path,
		      p[i].off, p[i].len);
		if (r < 0 && !ret)
			ret = r;
	}
out_cut:
	free(p);
	/* Whatever happened above, the cache is gone: that is the cut. */
	for (struct node *n = fs.nodes, *next; n; n = next) {
		next = n->next;
		cache_drop(n);
		node_put(n);
	}
	fs.state = FS_CUT;
	fs.cuts++;
	return ret;
}

/* --- the control file ---------------------------------------------------- */

static int cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int cmd_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fs.last_error, sizeof(fs.last_error), fmt, ap);
	va_end(ap);
	fprintf(stderr, "faultfs: %s\n", fs.last_error);
	return -EINVAL;
}

/* A number with an optional k, m or g suffix (powers of 1024). */
static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -EINVAL;
	switch (tolower((unsigned char)*end)) {
	case 'k': shift = 10; end++; break;
	case 'm': shift = 20; end++; break;
	case 'g': shift = 30; end++; break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int parse_ops(char *list, unsigned *ret)
{
	unsigned ops = 0;
	char *save = NULL;

	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned i;

		if (!strcmp(t, "io")) {
			ops |= OPS_IO;
			continue;
		}
		if (!strcmp(t, "all")) {
			ops |= OPS_ALL;
			continue;
		}
		for (i = 0; i < OP_COUNT && strcmp(t, op_names[i]); i++)
			;
		if (i == OP_COUNT)
			return -EINVAL;
		ops |= 1u << i;
	}
	if (!ops)
		return -EINVAL;
	*ret = ops;
	return 0;
}

static int cmd_rule(enum fault kind, char **argv, int argc)
{
	struct rule r = { .kind = kind, .ops = OPS_IO, .times = 1 };
	bool have_off = false, have_len = false;
	uint64_t nth = 1, v;
	int i = 1;

	if (kind == FAULT_SHORT)
		r.ops = (1u << OP_READ) | (1u << OP_WRITE);
	if (kind == FAULT_ENOSPC)
		r.ops = (1u << OP_WRITE) | (1u << OP_FALLOCATE);
	if (kind == FAULT_ENOSPC || kind == FAULT_DELAY)
		r.times = UINT64_MAX;
	if (kind == FAULT_DELAY) {
		if (argc < 2 || parse_u64(argv[1], &v) < 0 || v > 600000)
			return cmd_error("delay: need MS (0 to 600000)");
		r.delay_ms = (unsigned)v;
		i = 2;
	}
	for (; i < argc; i++) {
		char *a = argv[i], *val = strchr(a, '=');

		if (!strcmp(a, "once")) {
			r.times = 1;
			continue;
		}
		if (!strcmp(a, "sticky")) {
			r.times = UINT64_MAX;
			continue;
		}
		if (!val)
			return cmd_error("%s: unknown word \"%s\"", argv[0], a);
		*val++ = '\0';
		if (!strcmp(a, "op")) {
			if (parse_ops(val, &r.ops) < 0)
				return cmd_error("%s: bad op list", argv[0]);
		} else if (!strcmp(a, "file")) {
			while (*val == '/')
				val++;
			if (strlen(val) >= sizeof(r.file))
				return cmd_error("%s: file pattern too long", argv[0]);
			strcpy(r.file, val);
		} else if (!strcmp(a, "off") && !parse_u64(val, &r.off)) {
			have_off = true;
		} else if (!strcmp(a, "len") && !parse_u64(val, &r.len) && r.len) {
			have_len = true;
		} else if (!strcmp(a, "nth") && !parse_u64(val, &nth) && nth) {
			continue;
		} else if (!strcmp(a, "times") && !parse_u64(val, &r.times) && r.times) {
			continue;
		} else {
			return cmd_error("%s: bad %s=%s", argv[0], a, val);
		}
	}
	if (have_off != have_len)
		return cmd_error("%s: off= and len= go together", argv[0]);
	if (r.off + r.len < r.off)
		return cmd_error("%s: range overflows", argv[0]);
	r.ranged = have_off;
	r.skip = nth - 1;
	if (kind == FAULT_SHORT && (r.ops & ~((1u << OP_READ) | (1u << OP_WRITE))))
		return cmd_error("short: only op=read,write");
	if (fs.nrules == MAX_RULES)
		return cmd_error("too many rules (%d)", MAX_RULES);
	fs.rules[fs.nrules++] = r;
	return 0;
}

static int stats_format(char *buf, size_t size);

static int run_command(char *line)
{
	char *argv[32], *save = NULL;
	int argc = 0;

	for (char *t = strtok_r(line, " \t\r", &save); t;
	     t = strtok_r(NULL, " \t\r", &save)) {
		if (argc == (int)(sizeof(argv) / sizeof(argv[0])))
			return cmd_error("too many words");
		argv[argc++] = t;
	}
	if (!argc || argv[0][0] == '#')
		return 0;
	trace("command %s", argv[0]);
	for (int k = 0; k < FAULT_COUNT; k++)
		if (!strcmp(argv[0], fault_names[k]))
			return cmd_rule((enum fault)k, argv, argc);
	if (!strcmp(argv[0], "cut")) {
		uint64_t seed = 0, sector = 0;
		bool random = argc > 1 && !strcmp(argv[1], "random");

		if (fs.state == FS_CUT)
			return cmd_error("cut: already cut; reset first");
		if (argc > 1 && !random && (strcmp(argv[1], "drop") || argc > 2))
			return cmd_error("cut: drop, or random SEED [sector=N]");
		if (random && (argc < 3 || argc > 4 || parse_u64(argv[2], &seed) < 0))
			return cmd_error("cut random: need SEED");
		if (random && argc == 4 && (strncmp(argv[3], "sector=", 7) ||
					    parse_u64(argv[3] + 7, &sector) < 0))
			return cmd_error("cut random: bad %s", argv[3]);
		return power_cut(random, seed, sector);
	}
	if (!strcmp(argv[0], "reset") && argc == 1) {
		fs.nrules = 0;
		fs.state = FS_LIVE;
		return 0;
	}
	if (!strcmp(argv[0], "sync") && argc == 1) {
		int ret = 0;

		if (fs.state == FS_CUT)
			return cmd_error("sync: cut; reset first");
		for (struct node *n = fs.nodes, *next; n; n = next) {
			int r = cache_flush(n);

			next = n->next;
			if (r < 0 && !ret)
				ret = r;
			node_put(n);
		}
		fs.barriers++;
		return ret;
	}
	if (!strcmp(argv[0], "align") && argc == 2) {
		uint64_t a;

		if (parse_u64(argv[1], &a) < 0 || (a & (a - 1)) || a > (1u << 20))
			return cmd_error("align: need 0 or a power of two up to 1m");
		fs.dio_align = a;
		return 0;
	}
	if (!strcmp(argv[0], "trace") && argc == 2 &&
	    (!strcmp(argv[1], "on") || !strcmp(argv[1], "off"))) {
		fs.trace = !strcmp(argv[1], "on");
		return 0;
	}
	if (!strcmp(argv[0], "stats") && argc == 1) {
		char buf[16384];

		stats_format(buf, sizeof(buf));
		fputs(buf, stderr);
		return 0;
	}
	return cmd_error("unknown command \"%s\"", argv[0]);
}

static int control_write(const char *buf, size_t size)
{
	char text[MAX_CMD + 1], *save = NULL;

	if (size > MAX_CMD)
		return cmd_error("command longer than %d bytes", MAX_CMD);
	memcpy(text, buf, size);
	text[size] = '\0';
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char line[MAX_CMD + 1];
		int r;

		snprintf(line, sizeof(line), "%s", l);
		r = run_command(line);
		if (r < 0) {
			if (r != -EINVAL)
				cmd_error("\"%s\": %s", l, strerror(-r));
			return r;
		}
	}
	return (int)size;
}

static int stats_format(char *buf, size_t size)
{
	size_t len = 0, ncache = 0;
	uint64_t cache_bytes = 0;

#define EMIT(...) \
	do { \
		int k_ = snprintf(buf + len, size - len, __VA_ARGS__); \
		if (k_ > 0) \
			len += (size_t)k_ < size - len ? (size_t)k_ : size - len - 1; \
	} while (0)

	for (struct node *n = fs.nodes; n; n = n->next) {
		ncache += n->ncache;
		cache_bytes += n->cache_bytes;
	}
	EMIT("state %s\n", fs.state == FS_CUT ? "cut" : "live");
	for (int i = 0; i < OP_COUNT; i++)
		EMIT("ops_%s %" PRIu64 "\n", op_names[i], fs.ops[i]);
	for (int i = 0; i < FAULT_COUNT; i++)
		EMIT("faults_%s %" PRIu64 "\n", fault_names[i], fs.faults[i]);
	EMIT("refused_after_cut %" PRIu64 "\n", fs.refused);
	EMIT("barriers %" PRIu64 "\n", fs.barriers);
	EMIT("dsync_writes %" PRIu64 "\n", fs.dsync_writes);
	EMIT("cached_writes %zu\n", ncache);
	EMIT("cached_bytes %" PRIu64 "\n", cache_bytes);
	EMIT("cuts %" PRIu64 "\n", fs.cuts);
	EMIT("last_cut_dropped %" PRIu64 "\n", fs.cut_dropped);
	EMIT("last_cut_dropped_bytes %" PRIu64 "\n", fs.cut_dropped_bytes);
	EMIT("last_cut_kept %" PRIu64 "\n", fs.cut_kept);
	EMIT("last_cut_kept_bytes %" PRIu64 "\n", fs.cut_kept_bytes);
	EMIT("align %" PRIu64 "\n", fs.dio_align);
	EMIT("rules %u\n", fs.nrules);
	for (unsigned i = 0; i < fs.nrules; i++) {
		const struct rule *r = &fs.rules[i];

		EMIT("rule %s ops=0x%x file=%s", fault_names[r->kind], r->ops,
		     r->file[0] ? r->file : "*");
		if (r->ranged)
			EMIT(" off=%" PRIu64 " len=%" PRIu64, r->off, r->len);
		if (r->kind == FAULT_DELAY)
			EMIT(" ms=%u", r->delay_ms);
		EMIT(" skip=%" PRIu64, r->skip);
		if (r->times == UINT64_MAX)
			EMIT(" sticky\n");
		else
			EMIT(" times=%" PRIu64 "\n", r->times);
	}
	EMIT("last_error %s\n", fs.last_error[0] ? fs.last_error : "-");
#undef EMIT
	return (int)len;
}

static int control_read(char *buf, size_t size, off_t off)
{
	char text[16384];
	int len = stats_format(text, sizeof(text));

	if (off >= len)
		return 0;
	if (size > (size_t)(len - off))
		size = (size_t)(len - off);
	memcpy(buf, text + off, size);
	return (int)size;
}

/* --- FUSE operations ----------------------------------------------------- */

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Attributes change under the kernel's feet (cached sizes, cuts). */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->direct_io = 1;
	cfg->use_ino = 1;
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	return NULL;
}

static void control_stat(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_ino = 1;		/* the root's, which never shows as a file */
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct node *n;
	int r;

	if (is_control(path) || (h && h->control)) {
		control_stat(st);
		return 0;
	}
	/* The root's attributes stay readable after a cut: the path walk to
	 * the control file needs them. */
	if (!path || strcmp(path, "/")) {
		r = gate(OP_STAT, path ? rel(path) : h->node->path, false, 0, NULL);
		if (r < 0)
			return r;
	}
	if (h)
		r = fstat(h->fd, st);
	else
		r = fstatat(fs.dirfd, rel(path), st, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return -errno;
	n = S_ISREG(st->st_mode) ? node_find(st->st_dev, st->st_ino) : NULL;
	if (n) {
		uint64_t end = cache_end(n);

		if (end > (uint64_t)st->st_size)
			st->st_size = (off_t)end;
	}
	return 0;
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int r = gate(OP_STAT, rel(path), false, 0, NULL);

	if (r < 0)
		return r;
	n = readlinkat(fs.dirfd, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int fs_mkdir(const char *path, mode_t mode)
{
	int r = gate(OP_META, rel(path), false, 0, NULL);

	if (r < 0)
		return r;
	return mkdirat(fs.dirfd, rel(path), mode) < 0 ? -errno : 0;
}

static int fs_unlink(const char *path)
{
	struct stat st;
	bool known;
	int r;

	if (is_control(path))
		return -EPERM;
	r = gate(OP_META, rel(path), false, 0, NULL);
	if (r < 0)
		return r;
	known = fstatat(fs.dirfd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (unlinkat(fs.dirfd, rel(path), 0) < 0)
		return -errno;
	if (known)
		node_unlinked(&st);
	return 0;
}

static int fs_rmdir(const char *path)
{
	int r = gate(OP_META, rel(path), false, 0, NULL);

	if (r < 0)
		return r;
	return unlinkat(fs.dirfd, rel(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int fs_symlink(const char *target, const char *path)
{
	int r = gate(OP_META, rel(path), false, 0, NULL);

	if (r < 0)
		return r;
	if (is_control(path))
		return -EEXIST;
	return symlinkat(target, fs.dirfd, rel(path)) < 0 ? -errno : 0;
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct stat st;
	bool known;
	int r;

	if (is_control(from) || is_control(to))
		return -EPERM;
	r = gate(OP_META, rel(from), false, 0, NULL);
	if (r < 0)
		return r;
	known = !(flags & RENAME_EXCHANGE) &&
		fstatat(fs.dirfd, rel(to), &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (renameat2(fs.dirfd, rel(from), fs.dirfd, rel(to), flags) < 0)
		return -errno;
	if (known)
		node_unlinked(&st);
	if (flags & RENAME_EXCHANGE) {
		/* Three steps through a name no path can have. */
		nodes_renamed(rel(to), "\x01");
		nodes_renamed(rel(from), rel(to));
		nodes_renamed("\x01", rel(from));
	} else {
		nodes_renamed(rel(from), rel(to));
	}
	return 0;
}

static int fs_link(const char *from, const char *to)
{
	int r = gate(OP_META, rel(to), false, 0, NULL);

	if (r < 0)
		return r;
	if (is_control(from) || is_control(to))
		return -EPERM;
	return linkat(fs.dirfd, rel(from), fs.dirfd, rel(to), 0) < 0 ? -errno : 0;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int r;

	if (is_control(path) || (h && h->control))
		return -EPERM;
	r = gate(OP_META, path ? rel(path) : NULL, false, 0, NULL);
	if (r < 0)
		return r;
	r = h ? fchmod(h->fd, mode) : fchmodat(fs.dirfd, rel(path), mode, 0);
	return r < 0 ? -errno : 0;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int r;

	if (is_control(path) || (h && h->control))
		return -EPERM;
	r = gate(OP_META, path ? rel(path) : NULL, false, 0, NULL);
	if (r < 0)
		return r;
	r = h ? fchown(h->fd, uid, gid)
	      : fchownat(fs.dirfd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
	return r < 0 ? -errno : 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int r;

	if (is_control(path) || (h && h->control))
		return 0;
	r = gate(OP_META, path ? rel(path) : NULL, false, 0, NULL);
	if (r < 0)
		return r;
	r = h ? futimens(h->fd, tv)
	      : utimensat(fs.dirfd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
	return r < 0 ? -errno : 0;
}

/* A truncated file's cached writes past the new end are gone. */
static int truncate_node(int fd, off_t size)
{
	struct stat st;
	struct node *n;

	if (fstat(fd, &st) < 0)
		return -errno;
	n = node_find(st.st_dev, st.st_ino);
	return n ? cache_punch(n, (uint64_t)size, UINT64_MAX) : 0;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int fd, r;

	if (is_control(path) || (h && h->control))
		return 0;	/* "> /.faultfs" truncates first */
	r = gate(OP_META, path ? rel(path) : h ? h->node->path : NULL, false, 0, NULL);
	if (r < 0)
		return r;
	if (!path && !h)
		return -ENOENT;
	fd = h ? h->fd : openat(fs.dirfd, rel(path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = ftruncate(fd, size) < 0 ? -errno : 0;
	if (!r)
		r = truncate_node(fd, size);
	if (!h)
		close(fd);
	return r;
}

/* Open flags for the backing file: the model, not the backing fs, does sync. */
static int backing_flags(int flags)
{
	return (flags & ~(O_DIRECT | O_APPEND | O_SYNC | O_DSYNC | O_CREAT |
			  O_EXCL)) | O_CLOEXEC;
}

static int open_common(const char *path, int fd, int flags,
		       struct fuse_file_info *fi)
{
	struct handle *h = calloc(1, sizeof(*h));
	int acc = flags & O_ACCMODE;
	int r;

	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	r = node_get(fd, path, acc == O_WRONLY || acc == O_RDWR, &h->node);
	if (!r && (flags & O_TRUNC))
		r = cache_punch(h->node, 0, UINT64_MAX);
	if (r < 0) {
		if (h->node) {
			h->node->opens--;
			node_put(h->node);
		}
		close(fd);
		free(h);
		return r;
	}
	trace("open %s flags=0%o", h->node->path, (unsigned)flags);
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	return 0;
}

static int open_control(struct fuse_file_info *fi)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->fd = -1;
	h->control = true;
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	int fd, r;

	if (is_control(path))
		return open_control(fi);
	r = gate(OP_OPEN, rel(path), false, 0, NULL);
	if (r < 0)
		return r;
	fd = openat(fs.dirfd, rel(path), backing_flags(fi->flags));
	if (fd < 0)
		return -errno;
	return open_common(path, fd, fi->flags, fi);
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd, r;

	if (is_control(path))
		return (fi->flags & O_EXCL) ? -EEXIST : open_control(fi);
	r = gate(OP_OPEN, rel(path), false, 0, NULL);
	if (r < 0)
		return r;
	fd = openat(fs.dirfd, rel(path),
		    backing_flags(fi->flags) | (fi->flags & (O_CREAT | O_EXCL)), mode);
	if (fd < 0)
		return -errno;
	return open_common(path, fd, fi->flags, fi);
}

/* What a block device asks of O_DIRECT I/O (the buffer address aside). */
static bool misaligned(const struct fuse_file_info *fi, size_t size, off_t off)
{
	uint64_t a = fs.dio_align;

	return a && (fi->flags & O_DIRECT) && ((uint64_t)off % a || size % a);
}

static int fs_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	size_t want = size, got = 0;
	int r;

	if (h->control)
		return control_read(buf, size, off);
	if (misaligned(fi, size, off)) {
		trace("read %s off=%lld len=%zu: not aligned to %" PRIu64,
		      h->node->path, (long long)off, size, fs.dio_align);
		return -EINVAL;
	}
	r = gate(OP_READ, h->node->path, true, (uint64_t)off, &want);
	trace("read %s off=%lld len=%zu flags=0%o%s", h->node->path,
	      (long long)off, size, (unsigned)fi->flags,
	      r < 0 ? " (fault)" : want < size ? " (short)" : "");
	if (r < 0)
		return r;
	while (got < want) {
		ssize_t n = pread(h->fd, buf + got, want - got, off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (int)cache_overlay(h->node, buf, (uint64_t)off, want, got);
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct node *n = h->node;
	/* O_SYNC is O_DSYNC plus a bit: either makes this write durable. */
	bool dsync = fi->flags & O_DSYNC;
	size_t len = size;
	struct cw *w;
	int r;

	if (h->control)
		return control_write(buf, size);
	if (misaligned(fi, size, off)) {
		trace("write %s off=%lld len=%zu: not aligned to %" PRIu64,
		      n->path, (long long)off, size, fs.dio_align);
		return -EINVAL;
	}
	r = gate(OP_WRITE, n->path, true, (uint64_t)off, &len);
	trace("write %s off=%lld len=%zu flags=0%o%s%s", n->path, (long long)off,
	      size, (unsigned)fi->flags, dsync ? " dsync" : "",
	      r < 0 ? " (fault)" : len < size ? " (short)" : "");
	if (r < 0)
		return r;
	if (dsync) {
		/* Durable now; no older cached version may show or survive. */
		r = cache_punch(n, (uint64_t)off, (uint64_t)off + len);
		if (!r)
			r = pwrite_full(h->fd, buf, len, (uint64_t)off);
		if (!r)
			fs.dsync_writes++;
	} else if (len) {
		w = cw_new(buf, len, (uint64_t)off);
		if (!w)
			return -ENOMEM;
		cache_link(n, w);
	}
	return r < 0 ? r : (int)len;
}

static int fs_statfs(const char *path, struct statvfs *st)
{
	int r = gate(OP_STAT, NULL, false, 0, NULL);

	if (r < 0)
		return r;
	return fstatvfs(fs.dirfd, st) < 0 ? -errno : 0;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	if (!h->control) {
		close(h->fd);
		h->node->opens--;
		node_put(h->node);
	}
	free(h);
	return 0;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int r;

	if (h->control)
		return 0;
	r = gate(OP_FSYNC, h->node->path, false, 0, NULL);
	trace("%s %s (%zu cached writes)%s", datasync ? "fdatasync" : "fsync",
	      h->node->path, h->node->ncache, r < 0 ? " (fault)" : "");
	if (r < 0)
		return r;
	fs.barriers++;
	return cache_flush(h->node);
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	int fd, r = gate(OP_STAT, rel(path), false, 0, NULL);
	struct dir_handle *d;

	if (r < 0)
		return r;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	fd = openat(fs.dirfd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	d->dir = fdopendir(fd);
	if (!d->dir) {
		r = -errno;
		goto out_close;
	}
	d->root = !strcmp(path, "/");
	fi->fh = (uintptr_t)d;
	return 0;
out_close:
	close(fd);
out_free:
	free(d);
	return r;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	struct dirent *e;
	int r = gate(OP_STAT, path ? rel(path) : NULL, false, 0, NULL);

	if (r < 0)
		return r;
	/* Offsets of 0: libfuse gathers the whole listing itself. */
	rewinddir(d->dir);
	while ((errno = 0, e = readdir(d->dir))) {
		struct stat st = { .st_ino = e->d_ino, .st_mode = DTTOIF(e->d_type) };

		if (d->root && !strcmp(e->d_name, CONTROL_NAME))
			continue;
		if (fill(buf, e->d_name, &st, 0, 0))
			break;
	}
	return errno ? -errno : 0;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	closedir(d->dir);
	free(d);
	return 0;
}

/* Names are durable at once in this model: a directory sync does nothing. */
static int fs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	int r = gate(OP_FSYNC, path ? rel(path) : NULL, false, 0, NULL);

	if (r < 0)
		return r;
	fs.barriers++;
	return 0;
}

static int fs_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	size_t l = (size_t)len;
	int r;

	if (h->control)
		return -EOPNOTSUPP;
	/* Collapse and insert move cached writes around: not modelled. */
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	r = gate(OP_FALLOCATE, h->node->path, true, (uint64_t)off, &l);
	trace("fallocate %s mode=0x%x off=%lld len=%lld%s", h->node->path, mode,
	      (long long)off, (long long)len, r < 0 ? " (fault)" : "");
	if (r < 0)
		return r;
	if (fallocate(h->fd, mode, off, len) < 0)
		return -errno;
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return cache_punch(h->node, (uint64_t)off, (uint64_t)(off + len));
	return 0;
}

static const struct fuse_operations ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.truncate = fs_truncate,
	.utimens = fs_utimens,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.statfs = fs_statfs,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.fallocate = fs_fallocate,
};

static void usage(FILE *f)
{
	fprintf(f, "usage: faultfs BACKING_DIR MOUNTPOINT [-f] [-d] [-o OPTION...]\n"
		   "control: write commands to MOUNTPOINT/" CONTROL_NAME
		   ", read it for stats;\n"
		   "see the comment at the top of tests/faultfs/faultfs.c\n");
}

int main(int argc, char **argv)
{
	char *args[64];
	int n = 0, ret;

	if (argc < 3 || argc > 50 || argv[1][0] == '-') {
		usage(argc > 1 && !strcmp(argv[1], "-h") ? stdout : stderr);
		return argc > 1 && !strcmp(argv[1], "-h") ? 0 : 2;
	}
	fs.dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs.dirfd < 0) {
		fprintf(stderr, "faultfs: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	args[n++] = argv[0];
	for (int i = 2; i < argc; i++)
		args[n++] = argv[i];
	/* One thread: faults hit the n-th op in the order they arrive. */
	args[n++] = "-s";
	args[n++] = "-o";
	args[n++] = "fsname=faultfs,subtype=faultfs,default_permissions";
	args[n] = NULL;
	ret = fuse_main(n, args, &ops, NULL);
	for (struct node *nd = fs.nodes, *next; nd; nd = next) {
		next = nd->next;
		node_free(nd);
	}
	close(fs.dirfd);
	return ret;
}
