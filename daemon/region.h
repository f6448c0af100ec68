/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_REGION_H
#define KVSWAP_REGION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct conn;
struct tenant;

/*
 * A client's shared-memory region: a sealed memfd mapped read-write and
 * registered as fixed buffers in slots [slot0, slot0 + nslots), one slot
 * per LOOP_SLOT_BYTES. `users` counts the swaps using it; it is
 * unregistered only when that is 0, and unmapped only when the kernel has
 * posted the tag of every registered slot, i.e. really dropped its pages.
 *
 * Registration never blocks the loop for long, whatever the size: faulting
 * the pages in costs about 0.5 s per GiB of untouched memory, so the pager
 * thread does it (MADV_POPULATE_WRITE), slot by slot, and the loop then
 * pins one slot of resident pages per step (about 1.3 ms for 64 MiB of
 * 4 KiB pages), resting 1 ms between steps, answering RegisterRegion after the last. Unmapping
 * (about 50 ms per GiB) is the pager's too.
 *
 * Owner: region.c. region_new() links it into its connection's list and
 * holds the connection; region_gone() (after the last tag, a refused
 * release or a failed registration) answers a pending UnregisterRegion,
 * unlinks and frees it, and drops the hold.
 */
enum region_state {
	REGION_LOADING,		/* pages faulted in and slots registered */
	REGION_LIVE,		/* answered: swaps may use it */
	REGION_DYING,		/* release asked: waits for users, the pager */
	REGION_TAGS,		/* slots cleared: waits for their tags */
};

struct region {
	struct region *next;	/* in the connection's list */
	struct region *lnext;	/* in the list of regions loading or clearing */
	struct region *qnext;	/* in the pager's queue, under its lock */
	struct conn *conn;
	struct regions *rs;
	struct tenant *tenant;
	uint32_t id;
	enum region_state state;
	uint8_t *addr;
	uint64_t size;
	uint32_t slot0;
	uint32_t nslots;
	uint32_t users;
	uint32_t ready;		/* slots registered, the first ones */
	uint32_t cleared;	/* slots cleared by the release, the first ones */
	uint32_t tags_pending;
	int release_err;	/* the kernel refused to clear a slot */
	bool dying;		/* unregister asked: no new users */
	bool reply;		/* send UnregisterReply when released */
	uint64_t reply_id;
	uint64_t reg_id;	/* the RegisterRegion request */
	int fail;		/* a failed registration's error, or 0 */
	/* Shared with the pager, under regions.lock. */
	uint32_t populated;	/* slots faulted in */
	bool paged;		/* the pager is done with it */
	bool cancel;		/* the pager should stop */
	int page_err;		/* the pager's error, or 0 */
} __attribute__((aligned(16)));

struct region_unmap;

/* Every client's regions: the buffer table they live in, and the pager. */
struct regions {
	struct loop *loop;
	uint32_t count;
	uint32_t *tenant_slots;	/* slots held, by tenant id */
	struct region *loading;	/* slots being registered or cleared */
	bool step_armed;	/* a zero timeout for the next step */
	bool started;		/* the pager thread runs */
	int efd;		/* the pager's "slots faulted in" eventfd */
	_Alignas(16) uint64_t efd_val;
	/* The pager's work, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t pager;
	struct region *queue;	/* regions to fault in, in order */
	struct region_unmap *unmaps;	/* mappings to unmap */
	bool stop;
};

/*
 * Registers the handlers with the loop and starts the pager thread.
 * Returns 0 or a negative errno with a message in err; call
 * regions_fini() either way.
 */
int regions_init(struct regions *rs, struct loop *lp, char *err, size_t len);

/* Arms the read of the pager's eventfd: once the ring is enabled. */
void regions_start(struct regions *rs);

/* Stops the pager (after the unmaps queued) and frees what is left. */
void regions_fini(struct regions *rs);

/*
 * Validates the memfd (seals, size) and the tenant's quotas, maps it and
 * starts its registration, under the connection's next id; the
 * RegionReply (or an Error) for request req_id follows once every slot is
 * registered. Takes ownership of fd in every case. Returns 0, or a
 * negative errno (-EDQUOT: a tenant quota) with a message for the client
 * in err.
 */
int region_new(struct regions *rs, struct conn *c, int fd, uint64_t size,
	       uint64_t req_id, char *err, size_t errlen);

/* A live region of c with this id that is not being released, or NULL. */
struct region *region_find(struct conn *c, uint32_t id);

/*
 * Starts the release: marks the region dying and, once it has no users
 * (and the pager is done with it), clears its buffer slots; the tags
 * finish the job. If the kernel refuses, the region stays mapped (leaked,
 * never unmapped under the kernel's feet) and is dropped from the
 * connection at once.
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
