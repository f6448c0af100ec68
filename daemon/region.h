/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_REGION_H
#define KVSWAP_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct conn;

/*
 * A client's shared-memory region: a sealed memfd mapped read-write and
 * registered as fixed buffers in slots [slot0, slot0 + nslots), one slot
 * per GiB. `users` counts the swaps using it; it is unregistered only when
 * that is 0, and unmapped only when the kernel has posted the tag of every
 * slot, i.e. really dropped its pages.
 *
 * Owner: region.c. region_new() links it into its connection's list and
 * holds the connection; region_gone() (after the last tag, or a refused
 * release) answers a pending UnregisterRegion, unlinks and frees it, and
 * drops the hold.
 */
struct region {
	struct region *next;	/* in the connection's list */
	struct conn *conn;
	struct regions *rs;
	uint32_t id;
	int fd;
	uint8_t *addr;
	uint64_t size;
	uint32_t slot0;
	uint32_t nslots;
	uint32_t users;
	uint32_t tags_pending;
	bool dying;		/* unregister asked: no new users */
	bool reply;		/* send UnregisterReply when released */
	bool zombie;		/* failed registration: freed by its tags */
	uint64_t reply_id;
} __attribute__((aligned(16)));

/* Every client's regions: the buffer table they live in. */
struct regions {
	struct loop *loop;
	uint32_t count;
};

/* Registers the buffer-tag handler with the loop. */
void regions_init(struct regions *rs, struct loop *lp);

/*
 * Validates the memfd (seals, size), maps and registers it, and gives it
 * the connection's next id. Takes ownership of fd in every case. Returns
 * 0 and the region in *ret, or a negative errno with a message for the
 * client in err.
 */
int region_new(struct regions *rs, struct conn *c, int fd, uint64_t size,
	       struct region **ret, char *err, size_t errlen);

/* A region of c with this id that is not being released, or NULL. */
struct region *region_find(struct conn *c, uint32_t id);

/*
 * Starts the release: marks the region dying and, once it has no users,
 * clears its buffer slots; the tags finish the job. If the kernel refuses,
 * the region stays mapped (leaked, never unmapped under the kernel's feet)
 * and is dropped from the connection at once.
 */
void region_release(struct region *r);

/* Releases every region of a closing connection. */
void region_release_all(struct conn *c);

/* A swap starts / stops using r; the last user lets a release proceed. */
void region_use(struct region *r);
void region_unuse(struct region *r);

/*
 * For the byte range at `off` of r, the fixed buffer index and how many
 * bytes of the range stay within that buffer.
 */
static inline uint32_t region_buf(const struct region *r, uint64_t off,
				  uint64_t *ret_room)
{
	uint64_t slot = off / LOOP_SLOT_BYTES;

	*ret_room = (slot + 1) * LOOP_SLOT_BYTES - off;
	return r->slot0 + (uint32_t)slot;
}

#endif
