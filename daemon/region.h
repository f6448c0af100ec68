/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_REGION_H
#define KVSWAP_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct conn;

/*
 * A client's shared-memory region: a sealed memfd mapped read-write and
 * registered as fixed buffers in slots [slot0, slot0 + nslots), one slot
 * per GiB. `users` counts the xfers using it; it is unregistered only when
 * that is 0, and unmapped only when the kernel has posted the tag of every
 * slot, i.e. really dropped its pages.
 */
struct region {
	struct region *next;	/* in the connection's list */
	struct conn *conn;
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

/*
 * Validates the memfd (seals, size), maps and registers it. Takes ownership
 * of fd in every case. Returns 0 and the region in *ret, or a negative errno
 * with a message for the client in err.
 */
int region_new(struct server *srv, struct conn *c, int fd, uint64_t size,
	       struct region **ret, char *err, size_t errlen);

/*
 * Starts the release: marks the region dying and, once it has no users,
 * clears its buffer slots; region_tag() finishes the job. Call again when
 * the users drop to 0. Returns 0, or a negative errno if the kernel
 * refused: the region then stays mapped (leaked) and the caller drops it.
 */
int region_release(struct server *srv, struct region *r);

/* Handles one buffer-slot tag completion of r. */
void region_tag(struct server *srv, struct region *r);

/*
 * For the byte range at `off` of r, the fixed buffer index and how many
 * bytes of the range stay within that buffer.
 */
static inline uint32_t region_buf(const struct region *r, uint64_t off,
				  uint64_t *ret_room)
{
	uint64_t slot = off / (1ull << 30);

	*ret_room = (slot + 1) * (1ull << 30) - off;
	return r->slot0 + (uint32_t)slot;
}

#endif
