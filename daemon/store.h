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
/* Format 4: keys are composite, "tenant\0key" (docs/STORE_FORMAT.md). */
#define STORE_VERSION		4u
/*
 * Formats 3 and 2 keep no tenants: read only by kvswapd --migrate-tenant
 * (and --check). Format 2 is also read with its own log rules.
 */
#define STORE_VERSION_V3	3u
#define STORE_VERSION_OLD	2u
#define STORE_MAX_FILES		64
#define STORE_SB_BYTES		128

/* What a superblock slot holds. */
enum store_slot_state {
	SLOT_VALID,
	SLOT_EMPTY,		/* all zeros: never written (version 2), or wiped */
	SLOT_DAMAGED,		/* not a valid superblock */
};

struct store_slot {
	enum store_slot_state state;
	uint32_t version;	/* SLOT_VALID: 2, 3 or 4 */
	uint64_t gen;
};

struct store_file {
	int fd;
	char *path;
	uint64_t size;
	struct alloc alloc;
	struct store_slot slot[2];	/* as found at open (not when created) */
	int live;		/* the slot in use, -1: none valid */
};

/* How store_open() treats the files. */
enum store_mode {
	STORE_SERVE,		/* create what is missing; refuse any damage */
	STORE_SALVAGE,		/* as SERVE, but a store whose first file has
				 * lost both superblocks still opens */
	STORE_CHECK,		/* read only, shared lock, never create; file
				 * sizes from the files; damage opens */
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
	enum store_mode mode;
	/*
	 * File 0's log halves, and its live superblock's log state: written
	 * by store.c only (store_sb_commit()), read by the journal. sb_lost:
	 * no valid superblock in file 0 (STORE_SALVAGE, STORE_CHECK only);
	 * the layout is then the one a new store of this size gets, and the
	 * log state is unknown (zeros).
	 */
	uint64_t meta_start;
	uint64_t meta_half;
	uint64_t sb_gen;
	uint64_t sb_nonce;
	uint32_t sb_active;
	uint32_t sb_version;	/* the live superblock's format version */
	uint64_t sb_ck_blocks;	/* blocks of the checkpoint the live half
				 * starts with (0: unknown, version 2) */
	bool sb_lost;
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
 * Flipping the live log half, in three steps around the writes. prepare
 * encodes file 0's superblock of the next generation, naming log half
 * `half`, its `nonce` and the `ck_blocks` blocks of its checkpoint, into
 * `block` (STORE_BLOCK bytes, the caller's, aligned for O_DIRECT); it
 * changes nothing. The same block is written to both slots, slot 0 first
 * (store_sb_offset()), each durable before the next is written, so that
 * every crash leaves at least one valid slot of the newest generation
 * that was acknowledged. Once both are durable, commit makes it the
 * store's live log state (sb_gen + 1 and the rest). Only the journal calls
 * these; everyone else reads the sb_* fields.
 */
void store_sb_prepare(const struct store *s, uint32_t half, uint64_t nonce,
		      uint64_t ck_blocks, void *block);
void store_sb_commit(struct store *s, uint32_t half, uint64_t nonce,
		     uint64_t ck_blocks);

/*
 * Salvage: makes log half `half` (its epoch's nonce) the live one, in
 * memory only, at generation `gen`, where no valid superblock names it;
 * the startup checkpoint then writes generation gen + 1 to the other half
 * and to both slots. gen must be the newest generation found anywhere.
 */
void store_sb_adopt(struct store *s, uint32_t half, uint64_t nonce,
		    uint64_t gen);

/* Byte offset of superblock slot `slot` (0 or 1) in a file. */
uint64_t store_sb_offset(uint32_t slot);

/*
 * Whether file `index`'s superblock slots both hold the current format's
 * superblock, as store_sb_rewrite() writes it (file 0: the flips do).
 */
bool store_sb_current(const struct store *s, uint32_t index);

/*
 * Writes file `index` (not 0)'s superblock into both of its slots, one
 * after the other, each durable before the next: after a version 2 store
 * was upgraded, or a slot found damaged. Returns 0 or a negative errno.
 */
int store_sb_rewrite(struct store *s, uint32_t index);

/*
 * Opens the comma-separated list of store files. STORE_SERVE and
 * STORE_SALVAGE create (fallocate, then written once) any that do not
 * exist with `size` bytes each, and check the superblocks of those that
 * do; STORE_CHECK opens them read only and takes their size from the
 * files. On failure returns a negative errno and writes a one-line
 * explanation to err. Every fd is O_DIRECT and locked against a daemon
 * (exclusively; STORE_CHECK: shared, -EBUSY while a daemon runs).
 */
int store_open(struct store *s, const char *paths, uint64_t size,
	       enum store_mode mode, char *err, size_t errlen);
void store_close(struct store *s);

/*
 * Reads segment `seg` of e from the store and checks its CRC32C, through
 * `buf` (STORE_BLOCK-aligned, `len` bytes, a multiple of STORE_BLOCK).
 * Returns 0, -EBADMSG (the bytes differ; *ret_crc is what was read), or
 * a negative errno of the read.
 */
int store_seg_verify(const struct store *s, const struct entry *e,
		     uint32_t seg, void *buf, size_t len, uint32_t *ret_crc);

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
