/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

/* On-disk superblock at offset 0 of each file, little-endian. */
struct superblock {
	char magic[8];
	uint32_t version;
	uint32_t block_size;
	uint64_t file_size;
	uint32_t file_index;
	uint32_t nfiles;
	uint8_t store_id[16];
	uint64_t data_start;
};

static int fail(char *err, size_t len, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return ret;
}

/* The device's O_DIRECT alignment must divide our block size. */
static int check_dio(int fd, const char *path, char *err, size_t len)
{
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0)
		return fail(err, len, -errno, "statx %s: %m", path);
	if (!(stx.stx_mask & STATX_DIOALIGN))
		return 0;	/* not reported: the superblock I/O will tell */
	if (!stx.stx_dio_offset_align)
		return fail(err, len, -EINVAL,
			    "%s: filesystem does not support O_DIRECT", path);
	if (STORE_BLOCK % stx.stx_dio_offset_align ||
	    STORE_BLOCK % stx.stx_dio_mem_align)
		return fail(err, len, -EINVAL,
			    "%s: O_DIRECT alignment %u/%u does not divide %u",
			    path, stx.stx_dio_offset_align,
			    stx.stx_dio_mem_align, STORE_BLOCK);
#endif
	return 0;
}

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf = (const char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Creates a file: preallocate, then write it once, so later writes land in
 * written extents and need no metadata conversion at completion.
 */
static int create_file(struct store_file *f, uint32_t index, uint32_t nfiles,
		       const uint8_t id[16], char *err, size_t len)
{
	const size_t chunk = 1u << 20;
	struct superblock *sb;
	void *buf;
	int r;

	r = posix_fallocate(f->fd, 0, (off_t)f->size);
	if (r)
		return fail(err, len, -r, "fallocate %s (%llu bytes): %s",
			    f->path, (unsigned long long)f->size, strerror(r));
	if (posix_memalign(&buf, STORE_BLOCK, chunk))
		return fail(err, len, -ENOMEM, "out of memory");
	memset(buf, 0, chunk);
	for (uint64_t off = STORE_HEADER_BYTES; off < f->size; off += chunk) {
		size_t n = f->size - off < chunk ? f->size - off : chunk;

		r = write_full(f->fd, buf, n, off);
		if (r < 0) {
			fail(err, len, r, "writing %s at %llu: %s", f->path,
			     (unsigned long long)off, strerror(-r));
			goto out_free;
		}
	}
	sb = buf;
	memcpy(sb->magic, STORE_MAGIC, 8);
	sb->version = STORE_VERSION;
	sb->block_size = STORE_BLOCK;
	sb->file_size = f->size;
	sb->file_index = index;
	sb->nfiles = nfiles;
	memcpy(sb->store_id, id, 16);
	sb->data_start = STORE_HEADER_BYTES;
	r = write_full(f->fd, buf, STORE_HEADER_BYTES, 0);
	if (!r && fdatasync(f->fd) < 0)
		r = -errno;
	if (r < 0)
		fail(err, len, r, "writing superblock of %s: %s", f->path,
		     strerror(-r));
out_free:
	free(buf);
	return r;
}

static int check_file(struct store_file *f, uint32_t index, uint32_t nfiles,
		      uint8_t id[16], bool have_id, char *err, size_t len)
{
	struct superblock sb;
	void *buf;
	ssize_t n;
	int r = 0;

	if (posix_memalign(&buf, STORE_BLOCK, STORE_BLOCK))
		return fail(err, len, -ENOMEM, "out of memory");
	n = pread(f->fd, buf, STORE_BLOCK, 0);
	if (n < 0) {
		r = fail(err, len, -errno, "reading superblock of %s: %m", f->path);
		goto out_free;
	}
	if (n != STORE_BLOCK) {
		r = fail(err, len, -EINVAL, "%s: truncated store file (%zd bytes)",
			 f->path, n);
		goto out_free;
	}
	memcpy(&sb, buf, sizeof(sb));
	if (memcmp(sb.magic, STORE_MAGIC, 8)) {
		r = fail(err, len, -EINVAL, "%s: not a kvswap store (bad magic)",
			 f->path);
	} else if (sb.version != STORE_VERSION) {
		r = fail(err, len, -EPROTONOSUPPORT,
			 "%s: store format version %u, this kvswapd reads version %u",
			 f->path, sb.version, STORE_VERSION);
	} else if (sb.block_size != STORE_BLOCK ||
		   sb.data_start != STORE_HEADER_BYTES) {
		r = fail(err, len, -EINVAL, "%s: unsupported block size %u",
			 f->path, sb.block_size);
	} else if (sb.file_size != f->size) {
		r = fail(err, len, -EINVAL,
			 "%s: store file is %llu bytes, --store-size asks for %llu; "
			 "use the same size or remove the file",
			 f->path, (unsigned long long)sb.file_size,
			 (unsigned long long)f->size);
	} else if (sb.file_index != index || sb.nfiles != nfiles ||
		   (have_id && memcmp(sb.store_id, id, 16))) {
		r = fail(err, len, -EINVAL,
			 "%s: file %u of a %u-file store, but named as file %u of %u; "
			 "list the files in their original order",
			 f->path, sb.file_index, sb.nfiles, index, nfiles);
	} else {
		memcpy(id, sb.store_id, 16);
	}
out_free:
	free(buf);
	return r;
}

/*
 * Creates f->path under a temporary name and renames it into place only
 * once written, so a crash mid-creation never leaves a file that looks
 * like a store.
 */
static int create_path(struct store_file *f, uint32_t index, uint32_t nfiles,
		       const uint8_t id[16], char *err, size_t len)
{
	char tmp[4096];
	int r;

	if (snprintf(tmp, sizeof(tmp), "%s.creating", f->path) >= (int)sizeof(tmp))
		return fail(err, len, -ENAMETOOLONG, "%s: path too long", f->path);
	f->fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
	if (f->fd < 0 && errno == EINVAL)
		return fail(err, len, -EINVAL,
			    "%s: the filesystem refuses O_DIRECT; put the store on a "
			    "filesystem that supports it (not tmpfs)", f->path);
	if (f->fd < 0)
		return fail(err, len, -errno, "create %s: %m", tmp);
	r = check_dio(f->fd, f->path, err, len);
	if (!r) {
		log_notice("creating store file %s (%llu MiB)", f->path,
			   (unsigned long long)(f->size >> 20));
		r = create_file(f, index, nfiles, id, err, len);
	}
	if (!r && rename(tmp, f->path) < 0)
		r = fail(err, len, -errno, "rename %s: %m", tmp);
	if (r < 0)
		unlink(tmp);
	return r;
}

static int open_file(struct store_file *f, uint32_t index, uint32_t nfiles,
		     uint8_t id[16], bool *have_id, char *err, size_t len)
{
	struct stat st;
	int r;

	f->fd = open(f->path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (f->fd < 0 && errno == ENOENT) {
		if (!*have_id && getrandom(id, 16, 0) != 16)
			return fail(err, len, -errno, "getrandom: %m");
		*have_id = true;
		r = create_path(f, index, nfiles, id, err, len);
		if (r < 0)
			return r;
	} else if (f->fd < 0 && errno == EINVAL) {
		return fail(err, len, -EINVAL,
			    "%s: the filesystem refuses O_DIRECT; put the store on a "
			    "filesystem that supports it (not tmpfs)", f->path);
	} else if (f->fd < 0) {
		return fail(err, len, -errno, "open %s: %m", f->path);
	} else {
		if (fstat(f->fd, &st) < 0)
			return fail(err, len, -errno, "fstat %s: %m", f->path);
		if (!S_ISREG(st.st_mode))
			return fail(err, len, -EINVAL, "%s: not a regular file",
				    f->path);
		if ((uint64_t)st.st_size < STORE_BLOCK)
			return fail(err, len, -EINVAL,
				    "%s: truncated store file (%lld bytes)", f->path,
				    (long long)st.st_size);
		r = check_dio(f->fd, f->path, err, len);
		if (r < 0)
			return r;
		/* The superblock's own size check names the file's size. */
		r = check_file(f, index, nfiles, id, *have_id, err, len);
		if (r < 0)
			return r;
		if ((uint64_t)st.st_size != f->size)
			return fail(err, len, -EINVAL,
				    "%s: store file is %lld bytes, but its superblock "
				    "says %llu: truncated?", f->path,
				    (long long)st.st_size, (unsigned long long)f->size);
		*have_id = true;
	}
	/*
	 * A daemon that just exited may still hold the lock for a moment: its
	 * ring, which has the file registered, is torn down asynchronously.
	 */
	for (int i = 0; i < 50 && flock(f->fd, LOCK_EX | LOCK_NB) < 0 &&
	     errno == EWOULDBLOCK; i++)
		usleep(20000);
	if (flock(f->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return fail(err, len, -EBUSY, "%s: store file is in use by "
				    "another kvswapd", f->path);
		return fail(err, len, -errno, "flock %s: %m", f->path);
	}
	return 0;
}

int store_open(struct store *s, const char *paths, uint64_t size,
	       char *err, size_t len)
{
	uint8_t id[16] = { 0 };
	bool have_id = false;
	char *list, *p, *save = NULL;
	uint32_t n = 1;
	int r = 0;

	memset(s, 0, sizeof(*s));
	s->block = STORE_BLOCK;
	if (size % STORE_BLOCK || size < STORE_HEADER_BYTES + STORE_BLOCK)
		return fail(err, len, -EINVAL,
			    "--store-size must be a multiple of %u and at least %u bytes",
			    STORE_BLOCK, STORE_HEADER_BYTES + STORE_BLOCK);
	for (const char *c = paths; *c; c++)
		n += *c == ',';
	if (n > STORE_MAX_FILES)
		return fail(err, len, -EINVAL, "at most %d store files",
			    STORE_MAX_FILES);
	s->files = calloc(n, sizeof(*s->files));
	list = strdup(paths);
	if (!s->files || !list) {
		free(list);
		return fail(err, len, -ENOMEM, "out of memory");
	}
	for (p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		struct store_file *f = &s->files[s->nfiles];

		f->fd = -1;
		f->size = size;
		f->path = strdup(p);
		s->nfiles++;
		if (!f->path) {
			r = fail(err, len, -ENOMEM, "out of memory");
			break;
		}
	}
	free(list);
	if (!r && s->nfiles != n)
		r = fail(err, len, -EINVAL, "--store: empty file name in \"%s\"", paths);
	for (uint32_t i = 0; !r && i < s->nfiles; i++) {
		struct store_file *f = &s->files[i];

		for (uint32_t j = 0; j < i && !r; j++)
			if (!strcmp(s->files[j].path, f->path))
				r = fail(err, len, -EINVAL,
					 "--store names %s twice", f->path);
		if (!r)
			r = open_file(f, i, s->nfiles, id, &have_id, err, len);
		if (!r)
			r = alloc_init(&f->alloc, STORE_HEADER_BYTES / STORE_BLOCK,
				       (size - STORE_HEADER_BYTES) / STORE_BLOCK);
		if (!r)
			s->capacity += size - STORE_HEADER_BYTES;
	}
	if (r < 0)
		store_close(s);
	return r;
}

void store_close(struct store *s)
{
	for (uint32_t i = 0; i < s->nfiles; i++) {
		/* Unlock now: the ring may keep the file open a little longer. */
		if (s->files[i].fd >= 0) {
			flock(s->files[i].fd, LOCK_UN);
			close(s->files[i].fd);
		}
		alloc_fini(&s->files[i].alloc);
		free(s->files[i].path);
	}
	free(s->files);
	memset(s, 0, sizeof(*s));
}

uint64_t store_avail(const struct store *s)
{
	uint64_t blocks = 0;

	for (uint32_t i = 0; i < s->nfiles; i++)
		blocks += s->files[i].alloc.avail;
	return blocks * s->block;
}

int store_alloc(struct store *s, uint64_t bytes, uint32_t pref,
		struct sext *out, unsigned max)
{
	uint64_t want = (bytes + s->block - 1) / s->block;
	struct extent x[16];
	unsigned n = 0;

	if (want > store_avail(s) / s->block)
		return -ENOSPC;
	for (uint32_t k = 0; k < s->nfiles && want && n < max; k++) {
		uint32_t fi = (pref + k) % s->nfiles;
		struct alloc *a = &s->files[fi].alloc;

		while (want && n < max && a->avail) {
			unsigned lim = max - n < 16 ? max - n : 16;
			uint64_t got;
			int m;

			/* Keep each piece within the 32-bit extent length. */
			m = alloc_get(a, want < UINT32_MAX ? want : UINT32_MAX, x,
				      lim, &got);
			for (int i = 0; i < m; i++)
				out[n++] = (struct sext){ x[i].start,
							  (uint32_t)x[i].len, fi };
			want -= got;
			if (!m)
				break;
		}
	}
	if (want) {
		store_free(s, out, n);
		return -ENOSPC;
	}
	return (int)n;
}

void store_free(struct store *s, const struct sext *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int r = alloc_put(&s->files[x[i].file].alloc, x[i].block,
				  x[i].nblocks);

		if (r < 0)
			log_err("store: freeing blocks %llu+%u of file %u failed: %s",
				(unsigned long long)x[i].block, x[i].nblocks,
				x[i].file, strerror(-r));
	}
}

void store_entry_put(struct store *s, struct entry *e)
{
	if (!e || --e->refs)
		return;
	store_free(s, e->ext, e->next);
	free(e);
}
