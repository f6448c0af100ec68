/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_STORE_H
#define KVSWAP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "index.h"

#define STORE_BLOCK		4096u
/*
 * The first MiB of each file is the header area: two superblock slots at
 * blocks 0 and 1, room to grow. File 0 then holds the two halves of the
 * metadata log (journal.c); data follows. docs/STORE_FORMAT.md.
 */
#define STORE_HEADER_BYTES	(1u << 20)
#define STORE_MAGIC		"KVSWAPST"
#define STORE_VERSION		2u
#define STORE_MAX_FILES		64
#define STORE_SB_BYTES		128

struct store_file {
	int fd;
	char *path;
	uint64_t size;
	struct alloc alloc;
};

/*
 * The store: preallocated O_DIRECT files, one per device. Data blocks
 * start after each file's header area; segments are spread round-robin
 * over the files so that one swap-in reads from every device.
 */
struct store {
	struct store_file *files;
	uint32_t nfiles;
	uint32_t block;
	uint64_t capacity;	/* data bytes over all files */
	uint8_t id[16];
	bool created;		/* the files were created by this start */
	/*
	 * File 0's log halves, and its live superblock's log state: written
	 * by store.c only (store_sb_commit()), read by the journal.
	 */
	uint64_t meta_start;
	uint64_t meta_half;
	uint64_t sb_gen;
	uint64_t sb_nonce;
	uint32_t sb_active;
	/* Called as an entry's last reference goes, before its blocks
	 * return (catalog.c counts evicted space coming back). */
	void (*on_entry_free)(void *arg, const struct entry *e);
	void *on_entry_free_arg;
};

/*
 * The metadata log's place in file 0: byte offset of log half `half` (0 or
 * 1), and the number of blocks in a half.
 */
uint64_t store_log_offset(const struct store *s, uint32_t half);
uint64_t store_log_blocks(const struct store *s);

/*
 * Flipping the live log half, in two steps around the write. prepare
 * encodes file 0's superblock of the next generation, naming log half
 * `half` and `nonce`, into `block` (STORE_BLOCK bytes, the caller's, aligned
 * for O_DIRECT) and returns the byte offset in file 0 of the slot it goes
 * to; it changes nothing. Once that write is durable, commit makes it the
 * store's live log state (sb_gen + 1, sb_nonce, sb_active). Only the
 * journal calls these; everyone else reads the sb_* fields.
 */
uint64_t store_sb_prepare(const struct store *s, uint32_t half, uint64_t nonce,
			  void *block);
void store_sb_commit(struct store *s, uint32_t half, uint64_t nonce);

/*
 * Opens the comma-separated list of store files, creating (fallocate, then
 * written once) any that do not exist with `size` bytes each, and checking
 * the superblock of those that do. On failure returns a negative errno and
 * writes a one-line explanation to err. Every fd is O_DIRECT and locked
 * against a second daemon.
 */
int store_open(struct store *s, const char *paths, uint64_t size,
	       char *err, size_t errlen);
void store_close(struct store *s);

/* Free data bytes over all files. */
uint64_t store_avail(const struct store *s);

/*
 * Allocates `bytes` (rounded up to blocks) as at most `max` extents,
 * preferring file `pref`. All or nothing: returns the number of extents, or
 * -ENOSPC when the free space (or `max` pieces of it) does not suffice.
 */
int store_alloc(struct store *s, uint64_t bytes, uint32_t pref,
		struct sext *out, unsigned max);

/* Returns extents to the free space. */
void store_free(struct store *s, const struct sext *x, unsigned n);

/*
 * Whether x lies inside its file's data area (file, block and length
 * checked without overflow): what recovery checks of a logged extent.
 */
bool store_extent_valid(const struct store *s, const struct sext *x);

/*
 * Recovery: file `file`'s free space becomes everything but `used`
 * (sorted by start, disjoint, each valid). Returns 0 or -ENOMEM.
 */
int store_space_rebuild(struct store *s, uint32_t file,
			const struct extent *used, size_t n);

/*
 * Drops one reference to e; the last one returns its extents to the free
 * space and frees it. Accepts NULL.
 */
void store_entry_put(struct store *s, struct entry *e);

#endif
