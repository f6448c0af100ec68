/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"
#include "store.h"

/*
 * On-disk superblock, little-endian, at block 0 and block 1 of a file
 * (docs/STORE_FORMAT.md). Versions 3 and 4 write the same superblock to
 * both slots; version 2 wrote file 0's generation g to slot g % 2 and only
 * slot 0 of the other files.
 */
struct superblock {
	char magic[8];
	uint32_t version;
	uint32_t block_size;
	uint64_t file_size;
	uint32_t file_index;
	uint32_t nfiles;
	uint8_t store_id[16];
	uint64_t data_start;
	uint64_t meta_start;	/* file 0: the log halves */
	uint64_t meta_half;
	uint64_t gen;
	uint64_t nonce;		/* tags the live half's log blocks */
	uint32_t active;	/* live half: 0 or 1 */
	uint32_t crc;		/* v2: of bytes 0..91; v3: of all 128, this 0 */
	uint64_t ck_blocks;	/* v3, file 0: the live half's checkpoint */
	uint8_t zero[24];
};

_Static_assert(sizeof(struct superblock) == STORE_SB_BYTES, "superblock size");
_Static_assert(offsetof(struct superblock, crc) == 92, "superblock crc");

static uint32_t sb_crc(const struct superblock *sb, uint32_t version)
{
	static const uint8_t zero[4];
	const size_t at = offsetof(struct superblock, crc);
	uint32_t crc = crc32c(0, sb, at);

	if (version == STORE_VERSION_OLD)
		return crc;
	crc = crc32c(crc, zero, sizeof(zero));
	return crc32c(crc, (const uint8_t *)sb + at + 4, sizeof(*sb) - at - 4);
}

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

static uint64_t data_start(const struct store *s, uint32_t index)
{
	return index ? STORE_HEADER_BYTES : s->meta_start + 2 * s->meta_half;
}

/*
 * Encodes file `index`'s superblock for log state (gen, nonce, active,
 * ck_blocks) into a block-sized buffer: what both its slots hold.
 */
static void sb_encode(const struct store *s, uint32_t index, uint64_t gen,
		      uint64_t nonce, uint32_t active, uint64_t ck_blocks,
		      void *block)
{
	struct superblock sb;

	memset(&sb, 0, sizeof(sb));
	memcpy(sb.magic, STORE_MAGIC, 8);
	sb.version = STORE_VERSION;
	sb.block_size = STORE_BLOCK;
	sb.file_size = s->files[index].size;
	sb.file_index = index;
	sb.nfiles = s->nfiles;
	memcpy(sb.store_id, s->id, 16);
	sb.data_start = data_start(s, index);
	sb.meta_start = s->meta_start;
	sb.meta_half = s->meta_half;
	sb.gen = gen;
	sb.nonce = nonce;
	sb.active = active;
	sb.ck_blocks = ck_blocks;
	sb.crc = sb_crc(&sb, STORE_VERSION);
	memset(block, 0, STORE_BLOCK);
	memcpy(block, &sb, sizeof(sb));
}

uint64_t store_log_offset(const struct store *s, uint32_t half)
{
	assert(half <= 1);
	return s->meta_start + half * s->meta_half;
}

uint64_t store_log_blocks(const struct store *s)
{
	return s->meta_half / STORE_BLOCK;
}

uint64_t store_sb_offset(uint32_t slot)
{
	assert(slot <= 1);
	return (uint64_t)slot * STORE_BLOCK;
}

void store_sb_prepare(const struct store *s, uint32_t half, uint64_t nonce,
		      uint64_t ck_blocks, void *block)
{
	assert(half <= 1);
	sb_encode(s, 0, s->sb_gen + 1, nonce, half, ck_blocks, block);
}

void store_sb_commit(struct store *s, uint32_t half, uint64_t nonce,
		     uint64_t ck_blocks)
{
	assert(half <= 1);
	s->sb_gen++;
	s->sb_nonce = nonce;
	s->sb_active = half;
	s->sb_ck_blocks = ck_blocks;
	s->sb_version = STORE_VERSION;
	s->sb_lost = false;
	for (int i = 0; i < 2; i++)
		s->files[0].slot[i] = (struct store_slot){ SLOT_VALID,
							   STORE_VERSION,
							   s->sb_gen };
	s->files[0].live = 0;
}

void store_sb_adopt(struct store *s, uint32_t half, uint64_t nonce,
		    uint64_t gen)
{
	assert(half <= 1 && s->mode == STORE_SALVAGE);
	s->sb_active = half;
	s->sb_nonce = nonce;
	s->sb_gen = gen;
	s->sb_version = STORE_VERSION;
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
 * Writes a new file once over (preallocated by fallocate first), so later
 * writes land in written extents and need no metadata conversion at
 * completion; then its superblock.
 */
static int create_file(struct store *s, uint32_t index, char *err, size_t len)
{
	struct store_file *f = &s->files[index];
	const size_t chunk = 1u << 20;
	void *buf;
	int r;

	r = posix_fallocate(f->fd, 0, (off_t)f->size);
	if (r)
		return fail(err, len, -r, "fallocate %s (%llu bytes): %s",
			    f->path, (unsigned long long)f->size, strerror(r));
	if (posix_memalign(&buf, STORE_BLOCK, chunk))
		return fail(err, len, -ENOMEM, "out of memory");
	memset(buf, 0, chunk);
	for (uint64_t off = 0; off < f->size; off += chunk) {
		size_t n = f->size - off < chunk ? f->size - off : chunk;

		/* Under systemd: a large store takes a while to write once. */
		if (off % (1ull << 30) == 0)
			sd_notify(0, "EXTEND_TIMEOUT_USEC=60000000");

		r = write_full(f->fd, buf, n, off);
		if (r < 0) {
			fail(err, len, r, "writing %s at %llu: %s", f->path,
			     (unsigned long long)off, strerror(-r));
			goto out_free;
		}
	}
	sb_encode(s, index, 0, 0, 0, 0, buf);
	r = write_full(f->fd, buf, STORE_BLOCK, store_sb_offset(0));
	if (!r)
		r = write_full(f->fd, buf, STORE_BLOCK, store_sb_offset(1));
	if (!r && fdatasync(f->fd) < 0)
		r = -errno;
	if (r < 0)
		fail(err, len, r, "writing superblock of %s: %s", f->path,
		     strerror(-r));
out_free:
	free(buf);
	return r;
}

/* Makes a rename in the folder of `path` durable. */
static int sync_dir(const char *path)
{
	char *dir = strdup(path);
	char *slash;
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	free(dir);
	return r;
}

/*
 * Creates f->path under a temporary name and renames it once written; the
 * folder is synced after, so that the name survives a power cut.
 */
static int create_path(struct store *s, uint32_t index, char *err, size_t len)
{
	struct store_file *f = &s->files[index];
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
		r = create_file(s, index, err, len);
	}
	if (!r && rename(tmp, f->path) < 0)
		r = fail(err, len, -errno, "rename %s: %m", tmp);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	r = sync_dir(f->path);
	if (r < 0)
		return fail(err, len, r, "%s: syncing its folder after the "
			    "rename: %s", f->path, strerror(-r));
	for (int i = 0; i < 2; i++)
		f->slot[i] = (struct store_slot){ SLOT_VALID, STORE_VERSION, 0 };
	if (index == 0)
		s->sb_version = STORE_VERSION;
	return 0;
}

static bool version_known(uint32_t v)
{
	return v == STORE_VERSION || v == STORE_VERSION_V3 ||
	       v == STORE_VERSION_OLD;
}

/* What one slot block holds; *sb is its superblock (valid or not). */
static struct store_slot slot_read(const uint8_t *blk, struct superblock *sb)
{
	static const uint8_t zero[STORE_SB_BYTES];

	memcpy(sb, blk, sizeof(*sb));
	if (!memcmp(blk, zero, sizeof(zero)))
		return (struct store_slot){ SLOT_EMPTY, 0, 0 };
	if (memcmp(sb->magic, STORE_MAGIC, 8) || !version_known(sb->version) ||
	    sb->crc != sb_crc(sb, sb->version))
		return (struct store_slot){ SLOT_DAMAGED, 0, 0 };
	return (struct store_slot){ SLOT_VALID, sb->version, sb->gen };
}

/*
 * A superblock of a format this kvswapd does not read: magic right,
 * version unknown, and no slot valid (a single slot with a stray version
 * next to a valid one is damage, not another format).
 */
static int foreign_version(const struct store_file *f,
			   const struct superblock *sb, char *err, size_t len)
{
	for (int i = 0; i < 2; i++) {
		if (memcmp(sb[i].magic, STORE_MAGIC, 8) ||
		    version_known(sb[i].version))
			continue;
		if (sb[i].version < STORE_VERSION_OLD)
			return fail(err, len, -EPROTONOSUPPORT,
				    "%s: store format version %u, this kvswapd "
				    "reads versions %u to %u; remove the store "
				    "files to start a new store", f->path,
				    sb[i].version, STORE_VERSION_OLD, STORE_VERSION);
		return fail(err, len, -EPROTONOSUPPORT,
			    "%s: store format version %u, this kvswapd reads "
			    "versions %u to %u; use the kvswapd that wrote it",
			    f->path, sb[i].version, STORE_VERSION_OLD,
			    STORE_VERSION);
	}
	return 0;
}

/* Checks the live superblock of file `index` against the store so far. */
static int check_live(struct store *s, uint32_t index,
		      const struct superblock *live, bool *have_id,
		      char *err, size_t len)
{
	struct store_file *f = &s->files[index];

	if (live->block_size != STORE_BLOCK)
		return fail(err, len, -EINVAL, "%s: unsupported block size %u",
			    f->path, live->block_size);
	if (live->file_size != f->size)
		return fail(err, len, -EINVAL,
			    "%s: store file is %llu bytes, --store-size asks for "
			    "%llu; use the same size or remove the store", f->path,
			    (unsigned long long)live->file_size,
			    (unsigned long long)f->size);
	if (live->file_index != index || live->nfiles != s->nfiles ||
	    (*have_id && memcmp(live->store_id, s->id, 16)))
		return fail(err, len, -EINVAL,
			    "%s: file %u of a %u-file store, but named as file %u "
			    "of %u; list the files in their original order", f->path,
			    live->file_index, live->nfiles, index, s->nfiles);
	if (index == 0) {
		s->meta_start = live->meta_start;
		s->meta_half = live->meta_half;
		s->sb_gen = live->gen;
		s->sb_nonce = live->nonce;
		s->sb_active = live->active;
		s->sb_version = live->version;
		s->sb_ck_blocks = live->version >= STORE_VERSION_V3 ?
				  live->ck_blocks : 0;
		if (live->active > 1 || s->meta_start < STORE_HEADER_BYTES ||
		    s->meta_half < STORE_BLOCK || s->meta_half % STORE_BLOCK ||
		    data_start(s, 0) >= f->size ||
		    live->data_start != data_start(s, 0) ||
		    s->sb_ck_blocks > store_log_blocks(s))
			return fail(err, len, -EINVAL, "%s: superblock has a bad "
				    "metadata layout", f->path);
	}
	memcpy(s->id, live->store_id, 16);
	*have_id = true;
	return 0;
}

/* Log halves: 1/32 of file 0 each, in whole MiB, at least 1 MiB. */
static void meta_layout(struct store *s)
{
	uint64_t half = (s->files[0].size / 32) & ~((1ull << 20) - 1);

	if (half < (1ull << 20))
		half = 1ull << 20;
	s->meta_start = STORE_HEADER_BYTES;
	s->meta_half = half;
}

/*
 * Reads both superblock slots of an existing file and checks the live one:
 * the valid slot of the highest generation. A file with no valid slot is
 * refused, except by STORE_SALVAGE and STORE_CHECK: then file 0's layout
 * is the one a new store of its size gets (sb_lost).
 */
static int check_file(struct store *s, uint32_t index, bool *have_id,
		      char *err, size_t len)
{
	struct store_file *f = &s->files[index];
	struct superblock sb[2];
	void *buf;
	ssize_t n;
	int r;

	if (posix_memalign(&buf, STORE_BLOCK, 2 * STORE_BLOCK))
		return fail(err, len, -ENOMEM, "out of memory");
	n = pread(f->fd, buf, 2 * STORE_BLOCK, 0);
	if (n != 2 * STORE_BLOCK) {
		r = fail(err, len, n < 0 ? -errno : -EINVAL,
			 "%s: cannot read the superblock: %s", f->path,
			 n < 0 ? strerror(errno) : "truncated store file");
		free(buf);
		return r;
	}
	f->live = -1;
	for (int i = 0; i < 2; i++) {
		f->slot[i] = slot_read((uint8_t *)buf + i * STORE_BLOCK, &sb[i]);
		if (f->slot[i].state == SLOT_VALID &&
		    (f->live < 0 || sb[i].gen > sb[f->live].gen))
			f->live = i;
	}
	free(buf);
	if (f->live >= 0)
		return check_live(s, index, &sb[f->live], have_id, err, len);
	r = foreign_version(f, sb, err, len);
	if (r < 0)
		return r;
	if (s->mode == STORE_SERVE)
		return fail(err, len, -EINVAL, "%s: no valid superblock (slot 0 "
			    "%s, slot 1 %s): not a kvswap store, or a damaged one; "
			    "kvswapd --check shows what survives, kvswapd --salvage "
			    "starts on it", f->path,
			    f->slot[0].state == SLOT_EMPTY ? "zeroed" : "damaged",
			    f->slot[1].state == SLOT_EMPTY ? "zeroed" : "damaged");
	if (index == 0) {
		meta_layout(s);
		s->sb_lost = true;
	}
	return 0;
}

static int open_existing(struct store *s, uint32_t index, bool *have_id,
			 char *err, size_t len)
{
	struct store_file *f = &s->files[index];
	bool ro = s->mode == STORE_CHECK;
	struct stat st;
	int r;

	f->fd = open(f->path, (ro ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
	if (f->fd < 0 && errno == EINVAL)
		return fail(err, len, -EINVAL,
			    "%s: the filesystem refuses O_DIRECT; put the store on a "
			    "filesystem that supports it (not tmpfs)", f->path);
	if (f->fd < 0)
		return fail(err, len, -errno, "open %s: %m", f->path);
	if (fstat(f->fd, &st) < 0)
		return fail(err, len, -errno, "fstat %s: %m", f->path);
	if (!S_ISREG(st.st_mode))
		return fail(err, len, -EINVAL, "%s: not a regular file", f->path);
	if ((uint64_t)st.st_size < 2 * STORE_BLOCK)
		return fail(err, len, -EINVAL, "%s: truncated store file (%lld "
			    "bytes)", f->path, (long long)st.st_size);
	if (ro)
		f->size = (uint64_t)st.st_size;
	r = check_dio(f->fd, f->path, err, len);
	if (r < 0)
		return r;
	r = check_file(s, index, have_id, err, len);
	if (r < 0)
		return r;
	if ((uint64_t)st.st_size != f->size)
		return fail(err, len, -EINVAL, "%s: store file is %lld bytes, but "
			    "its superblock says %llu: truncated?", f->path,
			    (long long)st.st_size, (unsigned long long)f->size);
	if (f->size % STORE_BLOCK || f->size <= data_start(s, index))
		return fail(err, len, -EINVAL, "%s: store file of %llu bytes has "
			    "no data area", f->path, (unsigned long long)f->size);
	return 0;
}

bool store_sb_current(const struct store *s, uint32_t index)
{
	const struct store_file *f = &s->files[index];

	return f->slot[0].state == SLOT_VALID && f->slot[1].state == SLOT_VALID &&
	       f->slot[0].version == STORE_VERSION &&
	       f->slot[1].version == STORE_VERSION &&
	       f->slot[0].gen == f->slot[1].gen;
}

int store_sb_rewrite(struct store *s, uint32_t index)
{
	struct store_file *f = &s->files[index];
	void *buf;
	int r = 0;

	assert(index > 0 && s->mode != STORE_CHECK);
	if (posix_memalign(&buf, STORE_BLOCK, STORE_BLOCK))
		return -ENOMEM;
	sb_encode(s, index, 0, 0, 0, 0, buf);
	for (uint32_t i = 0; !r && i < 2; i++) {
		r = write_full(f->fd, buf, STORE_BLOCK, store_sb_offset(i));
		if (!r && fdatasync(f->fd) < 0)
			r = -errno;
		if (!r)
			f->slot[i] = (struct store_slot){ SLOT_VALID,
							  STORE_VERSION, 0 };
	}
	free(buf);
	return r;
}

/*
 * A daemon locks its files exclusively; --check shares its lock with other
 * checks only, so that it never reads a store a daemon is changing.
 */
static int lock_file(struct store_file *f, bool shared, char *err, size_t len)
{
	int op = (shared ? LOCK_SH : LOCK_EX) | LOCK_NB;

	/*
	 * A daemon that just exited may still hold the lock for a moment: its
	 * ring, which has the file registered, is torn down asynchronously.
	 */
	for (int i = 0; i < 100 && flock(f->fd, op) < 0 && errno == EWOULDBLOCK;
	     i++)
		usleep(20000);
	if (flock(f->fd, op) < 0) {
		if (errno == EWOULDBLOCK && shared)
			return fail(err, len, -EBUSY, "%s: store file is in use by "
				    "a running kvswapd; stop it first (the check "
				    "reads a store no daemon has open)", f->path);
		if (errno == EWOULDBLOCK)
			return fail(err, len, -EBUSY, "%s: store file is in use by "
				    "another kvswapd (or kvswapd --check)", f->path);
		return fail(err, len, -errno, "flock %s: %m", f->path);
	}
	return 0;
}

static int split_paths(struct store *s, const char *paths, uint64_t size,
		       char *err, size_t len)
{
	char *list, *p, *save = NULL;
	uint32_t n = 1;

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
		struct store_file *f = &s->files[s->nfiles++];

		f->fd = -1;
		f->size = size;
		f->path = strdup(p);
		if (!f->path) {
			free(list);
			return fail(err, len, -ENOMEM, "out of memory");
		}
	}
	free(list);
	if (s->nfiles != n)
		return fail(err, len, -EINVAL, "--store: empty file name in \"%s\"",
			    paths);
	for (uint32_t i = 0; i < s->nfiles; i++)
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(s->files[j].path, s->files[i].path))
				return fail(err, len, -EINVAL, "--store names %s twice",
					    s->files[i].path);
	return 0;
}

int store_open(struct store *s, const char *paths, uint64_t size,
	       enum store_mode mode, char *err, size_t len)
{
	uint32_t missing = 0, first_missing = 0;
	bool have_id = false;
	int r;

	memset(s, 0, sizeof(*s));
	s->block = STORE_BLOCK;
	s->mode = mode;
	if (mode != STORE_CHECK && (size % STORE_BLOCK || size < 8ull << 20))
		return fail(err, len, -EINVAL,
			    "--store-size must be a multiple of %u and at least 8M",
			    STORE_BLOCK);
	r = split_paths(s, paths, size, err, len);
	for (uint32_t i = 0; !r && i < s->nfiles; i++) {
		if (access(s->files[i].path, F_OK) == 0)
			continue;
		if (errno != ENOENT || mode == STORE_CHECK) {
			r = fail(err, len, -errno, "%s: %m", s->files[i].path);
		} else if (!missing++) {
			first_missing = i;
		}
	}
	/* A store is created whole or not at all: entries span its files. */
	if (!r && missing && missing != s->nfiles)
		r = fail(err, len, -ENOENT, "%s: store file %u of %u is missing; "
			 "the other files hold entries that use it",
			 s->files[first_missing].path, first_missing, s->nfiles);
	if (!r && missing) {
		s->created = true;
		meta_layout(s);
		if (data_start(s, 0) + (1ull << 20) > size)
			r = fail(err, len, -EINVAL, "--store-size is too small");
		if (!r && getrandom(s->id, 16, 0) != 16)
			r = fail(err, len, -errno, "getrandom: %m");
	}
	for (uint32_t i = 0; !r && i < s->nfiles; i++) {
		struct store_file *f = &s->files[i];

		r = s->created ? create_path(s, i, err, len)
			       : open_existing(s, i, &have_id, err, len);
		if (!r)
			r = lock_file(f, mode == STORE_CHECK, err, len);
		if (!r) {
			uint64_t start = data_start(s, i);

			r = alloc_init(&f->alloc, start / STORE_BLOCK,
				       (f->size - start) / STORE_BLOCK);
			s->capacity += f->size - start;
		}
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

bool store_extent_valid(const struct store *s, const struct sext *x)
{
	const struct alloc *a;

	if (x->file >= s->nfiles)
		return false;
	a = &s->files[x->file].alloc;
	return x->block >= a->base && x->block - a->base <= a->total &&
	       x->nblocks <= a->total - (x->block - a->base);
}

int store_space_rebuild(struct store *s, uint32_t file,
			const struct extent *used, size_t n)
{
	assert(file < s->nfiles);
	return alloc_rebuild(&s->files[file].alloc, used, n);
}

void store_entry_put(struct store *s, struct entry *e)
{
	if (!e || --e->refs)
		return;
	if (s->on_entry_free)
		s->on_entry_free(s->on_entry_free_arg, e);
	store_free(s, e->ext, e->next);
	free(e);
}

int store_seg_verify(const struct store *s, const struct entry *e,
		     uint32_t seg, void *buf, size_t len, uint32_t *ret_crc)
{
	const struct sseg *g = &e->segs[seg];
	uint64_t left = g->len;
	uint32_t crc = 0;

	assert(seg < e->nseg && len >= STORE_BLOCK && len % STORE_BLOCK == 0);
	for (uint32_t i = 0; i < g->next && left; i++) {
		const struct sext *x = &e->ext[g->ext + i];
		uint64_t off = x->block * STORE_BLOCK;
		uint64_t bytes = (uint64_t)x->nblocks * STORE_BLOCK;

		if (x->file >= s->nfiles)
			return -EINVAL;
		while (bytes && left) {
			size_t n = bytes < len ? (size_t)bytes : len;
			ssize_t got = pread(s->files[x->file].fd, buf, n, (off_t)off);

			if (got < 0)
				return -errno;
			if ((size_t)got != n)
				return -EIO;
			crc = crc32c(crc, buf, left < n ? (size_t)left : n);
			left -= left < n ? left : n;
			off += n;
			bytes -= n;
		}
	}
	if (left)
		return -EINVAL;	/* its extents are shorter than its length */
	*ret_crc = crc;
	return crc == g->crc ? 0 : -EBADMSG;
}
