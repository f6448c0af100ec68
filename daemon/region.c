/* SPDX-License-Identifier: MIT */
/*
 * Client regions (region.h): sealed memfds mapped and registered as fixed
 * buffers without blocking the loop (the pager thread faults the pages
 * in, the loop pins one slot per step), within the tenant's quotas, and
 * released only once the kernel has let go of their pages.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "region.h"
#include "tenant.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* A tenant's share of the buffer table: no tenant can fill it alone. */
#define REGION_TENANT_SLOTS	(LOOP_BUF_SLOTS / 4)
/* The loop pins slots for at most this long per step (at least one). */
#define REGION_STEP_US		1000
/* ... and rests this long between steps, serving the other clients. */
#define REGION_REST_NS		1000000
/* The pager faults in this much at a time. */
#define PAGER_CHUNK		(4ull << 20)
/* ... and unmaps this much at a time (~3 ms). */
#define PAGER_UNMAP		(64ull << 20)
/* Most slots of one region (64 GiB). */
#define REGION_MAX_SLOTS	((uint32_t)((64ull << 30) / LOOP_SLOT_BYTES))

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A mapping for the pager to unmap: munmap of a GiB takes ~50 ms. */
struct region_unmap {
	struct region_unmap *next;
	void *addr;
	size_t size;
};

static int check_memfd(int fd, uint64_t size, char *err, size_t len)
{
	struct stat st;
	int seals;

	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0) {
		snprintf(err, len, "register_region: the fd is not a memfd that "
			 "supports sealing (%s)", strerror(errno));
		return -EPERM;
	}
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
		snprintf(err, len, "register_region: the memfd lacks %s%s%s",
			 seals & F_SEAL_SHRINK ? "" : "F_SEAL_SHRINK",
			 !(seals & (F_SEAL_SHRINK | F_SEAL_GROW)) ? " and " : "",
			 seals & F_SEAL_GROW ? "" : "F_SEAL_GROW");
		return -EPERM;
	}
	if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) {
		snprintf(err, len, "register_region: the memfd is write-sealed; "
			 "swap-in needs to write it");
		return -EPERM;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, len, "register_region: fstat: %s", strerror(errno));
		return -errno;
	}
	if ((uint64_t)st.st_size != size) {
		snprintf(err, len, "register_region.size %llu does not match the "
			 "memfd's size %lld", (unsigned long long)size,
			 (long long)st.st_size);
		return -EINVAL;
	}
	return 0;
}

/* --- the pager thread ------------------------------------------------ */

static void pager_signal(struct regions *rs)
{
	uint64_t one = 1;

	/* A blocking eventfd write only waits if the counter would overflow. */
	(void)!write(rs->efd, &one, sizeof(one));
}

/*
 * Faults in one slot of r. MADV_POPULATE_WRITE (Linux 5.14) allocates
 * what the client has not touched, as the pinning would, but here, off
 * the loop. Returns 0 or -errno (EFAULT: a hole it could not fill, e.g.
 * beyond the memfd's size or out of memory).
 */
static int pager_fault(struct region *r, uint32_t slot)
{
	uint64_t off = (uint64_t)slot * LOOP_SLOT_BYTES;
	uint64_t len = r->size - off < LOOP_SLOT_BYTES ? r->size - off
						      : LOOP_SLOT_BYTES;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	len = (len + page - 1) & ~(page - 1);
	/*
	 * In pieces: the fault holds the daemon's mmap lock for reading, and
	 * a writer waiting behind it (an mmap, a munmap) would hold up every
	 * later reader, the loop's page faults among them.
	 */
	for (uint64_t done = 0; done < len; done += PAGER_CHUNK) {
		uint64_t n = len - done < PAGER_CHUNK ? len - done : PAGER_CHUNK;

		if (madvise(r->addr + off + done, n, MADV_POPULATE_WRITE) < 0) {
			/* An old kernel: pinning faults them in, on the loop. */
			if (errno == EINVAL)
				return 0;
			return -errno;
		}
	}
	return 0;
}

static void *pager_main(void *arg)
{
	struct regions *rs = arg;

	/*
	 * SCHED_BATCH: CPU-bound work that the waking loop preempts at once,
	 * at the same weight (a lower priority could leave it preempted while
	 * it holds the daemon's mmap lock, holding up the loop's own mmap or
	 * brk: priority inversion).
	 */
	{
		struct sched_param sp = { 0 };

		if (sched_setscheduler((pid_t)gettid(), SCHED_BATCH, &sp) < 0)
			log_info("region pager: SCHED_BATCH: %s", strerror(errno));
	}

	pthread_mutex_lock(&rs->lock);
	for (;;) {
		struct region_unmap *u = rs->unmaps;
		struct region *r = rs->queue;

		if (u) {
			rs->unmaps = u->next;
			pthread_mutex_unlock(&rs->lock);
			/*
			 * In pieces: munmap holds the mmap lock for writing,
			 * and the loop's own mmap, brk and page faults wait.
			 */
			for (size_t off = 0; off < u->size; off += PAGER_UNMAP) {
				size_t n = u->size - off < PAGER_UNMAP
					   ? u->size - off : PAGER_UNMAP;

				munmap((uint8_t *)u->addr + off, n);
			}
			free(u);
			pthread_mutex_lock(&rs->lock);
			continue;
		}
		if (r) {
			uint32_t slot = r->populated;
			int err = 0;

			if (!r->cancel && slot < r->nslots) {
				pthread_mutex_unlock(&rs->lock);
				err = pager_fault(r, slot);
				pthread_mutex_lock(&rs->lock);
				if (!err)
					r->populated = slot + 1;
				else
					r->page_err = err;
			}
			if (r->cancel || err || r->populated == r->nslots) {
				rs->queue = r->qnext;
				r->qnext = NULL;
				/* The loop may free r from now on. */
				r->paged = true;
			}
			pager_signal(rs);
			continue;
		}
		if (rs->stop)
			break;
		pthread_cond_wait(&rs->cond, &rs->lock);
	}
	pthread_mutex_unlock(&rs->lock);
	return NULL;
}

static void pager_unmap(struct regions *rs, void *addr, size_t size)
{
	/* Owner: the pager, which frees it once unmapped. */
	struct region_unmap *u = malloc(sizeof(*u));

	if (!u) {
		munmap(addr, size);	/* slow, but correct */
		return;
	}
	u->addr = addr;
	u->size = size;
	pthread_mutex_lock(&rs->lock);
	u->next = rs->unmaps;
	rs->unmaps = u;
	pthread_cond_signal(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
}

static void pager_queue(struct regions *rs, struct region *r)
{
	struct region **pp;

	pthread_mutex_lock(&rs->lock);
	for (pp = &rs->queue; *pp; pp = &(*pp)->qnext)
		;
	*pp = r;
	pthread_cond_signal(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
}

/* --- registration, step by step on the loop ---------------------------- */

static void efd_arm(struct regions *rs)
{
	struct io_uring_sqe *sqe = loop_sqe(rs->loop);

	io_uring_prep_read(sqe, rs->efd, &rs->efd_val, sizeof(rs->efd_val), 0);
	io_uring_sqe_set_data64(sqe, ud_make(&rs->efd_val, UD_REGION));
}

/*
 * Comes back after a rest: a client's round trip spans a few batches of
 * the loop, and a step before each of them would add up.
 */
static void step_arm(struct regions *rs)
{
	static struct __kernel_timespec rest = { .tv_nsec = REGION_REST_NS };
	struct io_uring_sqe *sqe;

	if (rs->step_armed)
		return;
	sqe = loop_sqe(rs->loop);
	io_uring_prep_timeout(sqe, &rest, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_REGION));
	rs->step_armed = true;
}

static void quota_put(struct region *r)
{
	struct tenant *tn = r->tenant;

	assert(tn->use.regions > 0 && tn->use.region_bytes >= r->size);
	tn->use.regions--;
	tn->use.region_bytes -= r->size;
	r->rs->tenant_slots[tn->id] -= r->nslots;
}

/*
 * The region is released (err 0), the kernel refused (err < 0), or its
 * registration failed (r->fail): answer what is pending, unlink, free,
 * drop the connection's hold.
 */
static void region_gone(struct region *r, int err)
{
	struct conn *c = r->conn;
	struct region **pp;

	if (r->fail && !conn_closing(c)) {
		char msg[200];
		struct rlimit rl = { 0 };

		getrlimit(RLIMIT_MEMLOCK, &rl);
		if (r->fail == -ENOMEM)
			snprintf(msg, sizeof(msg), "register_region: the daemon "
				 "cannot pin %llu bytes (RLIMIT_MEMLOCK %llu "
				 "bytes): raise LimitMEMLOCK= or ulimit -l",
				 (unsigned long long)r->size,
				 (unsigned long long)rl.rlim_cur);
		else
			snprintf(msg, sizeof(msg), "register_region: %s: %s",
				 r->ready < r->nslots && r->populated <= r->ready
				 ? "faulting in its pages" : "registering buffers",
				 strerror(-r->fail));
		log_warn("client %s: %s", conn_name(c), msg);
		conn_send_error(c, r->reg_id, r->fail, -1, msg);
	} else if (r->reply && !conn_closing(c)) {
		if (err < 0) {
			conn_send_error(c, r->reply_id, err, -1,
					"unregister_region: the kernel refused "
					"to release the buffers");
		} else {
			Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
			Kvswap__V1__UnregisterReply u = KVSWAP__V1__UNREGISTER_REPLY__INIT;

			u.has_region = 1;
			u.region = r->id;
			ev.has_id = 1;
			ev.id = r->reply_id;
			ev.body_case = KVSWAP__V1__EVENT__BODY_UNREGISTERED;
			ev.unregistered = &u;
			conn_send(c, &ev);
		}
	}
	for (pp = &c->regions; *pp != r; pp = &(*pp)->next)
		assert(*pp);
	*pp = r->next;
	c->nregions--;
	r->rs->count--;
	quota_put(r);
	free(r);
	conn_put(c);
}

/*
 * Starts clearing the registered slots, a few per step (unpinning a GiB
 * takes ~5 ms); the last tag frees the region.
 */
static void unregister(struct region *r)
{
	struct regions *rs = r->rs;

	r->state = REGION_TAGS;
	if (!r->ready) {
		loop_slots_put(rs->loop, r->slot0, r->nslots);
		pager_unmap(rs, r->addr, r->size);
		region_gone(r, 0);
		return;
	}
	r->lnext = rs->loading;
	rs->loading = r;
	step_arm(rs);
}

static void loading_unlink(struct region *r);

/* Every cleared slot's tag is in: the kernel let go of the pages. */
static void released(struct region *r)
{
	if (r->release_err) {
		region_gone(r, r->release_err);
		return;
	}
	loop_slots_put(r->rs->loop, r->slot0, r->nslots);
	pager_unmap(r->rs, r->addr, r->size);
	region_gone(r, 0);
}

/*
 * Clears r's next slots while the step has time; false once it is done
 * with r (every slot cleared, or the kernel refused: then the region is
 * leaked mapped, never unmapped under the kernel's feet).
 */
static bool clear_some(struct region *r, uint64_t t0, uint32_t *work)
{
	while (r->cleared < r->ready &&
	       (!*work || now_us() - t0 < REGION_STEP_US)) {
		struct iovec iov = { 0 };
		__u64 tag = 0;
		int ret;

		ret = io_uring_register_buffers_update_tag(&r->rs->loop->ring,
				r->slot0 + r->cleared, &iov, &tag, 1);
		if (ret != 1) {
			log_err("unregistering buffers of region %u: %s; "
				"keeping it mapped", r->id,
				ret < 0 ? strerror(-ret) : "refused");
			r->release_err = ret < 0 ? ret : -EIO;
			/* Only the slots cleared will post their tags. */
			r->ready = r->cleared;
			break;
		}
		r->cleared++;
		r->tags_pending++;
		(*work)++;
	}
	if (r->cleared < r->ready)
		return true;
	loading_unlink(r);
	if (!r->tags_pending)
		released(r);
	return false;
}

static void loading_unlink(struct region *r)
{
	struct region **pp;

	for (pp = &r->rs->loading; *pp != r; pp = &(*pp)->lnext)
		assert(*pp);
	*pp = r->lnext;
	r->lnext = NULL;
}

static void registered(struct region *r)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__RegionReply rr = KVSWAP__V1__REGION_REPLY__INIT;

	r->state = REGION_LIVE;
	rr.has_region = rr.has_size = 1;
	rr.region = r->id;
	rr.size = r->size;
	ev.has_id = 1;
	ev.id = r->reg_id;
	ev.body_case = KVSWAP__V1__EVENT__BODY_REGION;
	ev.region = &rr;
	conn_send(r->conn, &ev);
}

/*
 * One step: for each region loading, pins the slots the pager has faulted
 * in, and for each one released, clears its slots, within REGION_STEP_US
 * in all (at least one slot per step); finishes, fails or releases
 * regions.
 */
static void regions_step(struct regions *rs)
{
	uint64_t t0 = now_us();
	struct region *r, *next;
	uint32_t pinned = 0;
	bool more = false;

	for (r = rs->loading; r; r = next) {
		uint32_t populated;
		bool paged;
		int err;

		next = r->lnext;
		if (r->state == REGION_TAGS) {
			if (clear_some(r, t0, &pinned))
				more = true;
			continue;
		}
		pthread_mutex_lock(&rs->lock);
		populated = r->populated;
		paged = r->paged;
		err = r->page_err;
		pthread_mutex_unlock(&rs->lock);
		while (!r->dying && !r->fail && r->ready < populated &&
		       (!pinned || now_us() - t0 < REGION_STEP_US)) {
			uint64_t off = (uint64_t)r->ready * LOOP_SLOT_BYTES;
			struct iovec iov = {
				r->addr + off,
				r->size - off < LOOP_SLOT_BYTES ? r->size - off
							       : LOOP_SLOT_BYTES,
			};
			__u64 tag = ud_make(r, UD_BUFTAG);
			int ret;

			ret = io_uring_register_buffers_update_tag(
				&rs->loop->ring, r->slot0 + r->ready, &iov,
				&tag, 1);
			if (ret != 1) {
				r->fail = ret < 0 ? ret : -ENOMEM;
				break;
			}
			r->ready++;
			pinned++;
		}
		if (!r->fail && !r->dying && err)
			r->fail = err;
		if (r->fail || r->dying) {
			/* Stop the pager, then release what was registered. */
			if (!paged) {
				pthread_mutex_lock(&rs->lock);
				r->cancel = true;
				pthread_mutex_unlock(&rs->lock);
				continue;
			}
			loading_unlink(r);
			r->dying = true;
			unregister(r);
			more = true;
			continue;
		}
		if (r->ready == r->nslots) {
			assert(paged);
			loading_unlink(r);
			registered(r);
			continue;
		}
		if (r->ready < populated)
			more = true;
	}
	if (more)
		step_arm(rs);
	/* Should not happen: say so, an operator may see a stalled client. */
	if (now_us() - t0 > 20000)
		log_notice("regions: a registration step held the loop %llu ms",
			   (unsigned long long)((now_us() - t0) / 1000));
}

static void on_region(void *ctx, enum ud_type type, void *p,
		      const struct io_uring_cqe *cqe)
{
	struct regions *rs = ctx;

	if (p) {
		if (cqe->res < 0 && cqe->res != -ECANCELED)
			log_err("reading the pager's eventfd: %s",
				strerror(-cqe->res));
		efd_arm(rs);
	} else {
		rs->step_armed = false;
	}
	regions_step(rs);
}

/* --- requests ---------------------------------------------------------- */

/* The tenant's quotas for one more region of size bytes in nslots slots. */
static int quota_check(struct regions *rs, struct conn *c, uint64_t size,
		       uint32_t nslots, char *err, size_t len)
{
	struct tenant *tn = c->tenant;
	const struct tenant_limits *lim = &tn->lim;

	if (tn->use.regions + 1 > lim->regions)
		return conn_refuse(c, CONN_REFUSED_REGIONS, err, len,
				   "%u regions, its quota (tenant-max-regions "
				   "%u)", tn->use.regions, lim->regions);
	if (tn->use.region_bytes + size > lim->region_bytes)
		return conn_refuse(c, CONN_REFUSED_REGION_BYTES, err, len,
				   "registered bytes %llu + %llu over its quota "
				   "%llu (tenant-max-region-bytes)",
				   (unsigned long long)tn->use.region_bytes,
				   (unsigned long long)size,
				   (unsigned long long)lim->region_bytes);
	if (rs->tenant_slots[tn->id] + nslots > REGION_TENANT_SLOTS)
		return conn_refuse(c, CONN_REFUSED_SLOTS, err, len,
				   "buffer slots %u + %u over its share %u of "
				   "the daemon's table (a region takes one per "
				   "%llu MiB)", rs->tenant_slots[tn->id], nslots,
				   REGION_TENANT_SLOTS,
				   (unsigned long long)(LOOP_SLOT_BYTES >> 20));
	return 0;
}

int region_new(struct regions *rs, struct conn *c, int fd, uint64_t size,
	       uint64_t req_id, char *err, size_t len)
{
	struct region *r;
	uint32_t nslots;
	int ret;

	ret = check_memfd(fd, size, err, len);
	if (ret < 0)
		goto out_close;
	nslots = (uint32_t)((size + LOOP_SLOT_BYTES - 1) / LOOP_SLOT_BYTES);
	if (nslots > REGION_MAX_SLOTS) {
		snprintf(err, len, "register_region.size %llu: at most 64 GiB per "
			 "region", (unsigned long long)size);
		ret = -EINVAL;
		goto out_close;
	}
	ret = quota_check(rs, c, size, nslots, err, len);
	if (ret < 0)
		goto out_close;
	/* Owner: region.c, until region_gone(). */
	r = aligned_alloc(16, sizeof(*r));
	if (!r) {
		snprintf(err, len, "out of memory");
		ret = -ENOMEM;
		goto out_close;
	}
	memset(r, 0, sizeof(*r));
	r->conn = c;
	r->rs = rs;
	r->tenant = c->tenant;
	r->size = size;
	r->nslots = nslots;
	r->reg_id = req_id;
	r->addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->addr == MAP_FAILED) {
		ret = -errno;
		snprintf(err, len, "register_region: mmap of %llu bytes: %s",
			 (unsigned long long)size, strerror(errno));
		goto out_free;
	}
	ret = loop_slots_get(rs->loop, nslots, &r->slot0);
	if (ret < 0) {
		snprintf(err, len, "register_region: the daemon's buffer table "
			 "is full (%d slots of %llu MiB)", LOOP_BUF_SLOTS - 1,
			 (unsigned long long)(LOOP_SLOT_BYTES >> 20));
		ret = -EMFILE;
		goto out_unmap;
	}
	/* The mapping keeps the memory: the fd would only count against
	 * RLIMIT_NOFILE. */
	close(fd);
	c->tenant->use.regions++;
	c->tenant->use.region_bytes += size;
	rs->tenant_slots[c->tenant->id] += nslots;
	r->id = ++c->region_serial;
	r->next = c->regions;
	c->regions = r;
	c->nregions++;
	rs->count++;
	conn_hold(c);
	r->state = REGION_LOADING;
	r->lnext = rs->loading;
	rs->loading = r;
	pager_queue(rs, r);
	return 0;

out_unmap:
	munmap(r->addr, size);
out_free:
	free(r);
out_close:
	close(fd);
	return ret;
}

struct region *region_find(struct conn *c, uint32_t id)
{
	for (struct region *r = c->regions; r; r = r->next)
		if (r->id == id)
			return r->state == REGION_LIVE && !r->dying ? r : NULL;
	return NULL;
}

void region_release(struct region *r)
{
	r->dying = true;
	if (r->state == REGION_LOADING) {
		/* The next step stops the pager and releases it. */
		pthread_mutex_lock(&r->rs->lock);
		r->cancel = true;
		pthread_mutex_unlock(&r->rs->lock);
		pager_signal(r->rs);
		return;
	}
	if (r->state == REGION_TAGS)
		return;
	r->state = REGION_DYING;
	if (r->users)
		return;
	unregister(r);
}

void region_release_all(struct conn *c)
{
	struct region *r, *next;

	for (r = c->regions; r; r = next) {
		next = r->next;
		region_release(r);
	}
}

void region_use(struct region *r)
{
	assert(!r->dying && r->state == REGION_LIVE);
	r->users++;
}

void region_unuse(struct region *r)
{
	assert(r->users > 0);
	r->users--;
	/* A closing connection releases all its regions once drained. */
	if (r->dying && !r->users && !conn_closing(r->conn))
		region_release(r);
}

static void tag_done(void *ctx, enum ud_type type, void *p,
		     const struct io_uring_cqe *cqe)
{
	struct region *r = p;

	assert(r->tags_pending > 0);
	if (--r->tags_pending || r->cleared < r->ready)
		return;
	released(r);
}

int regions_init(struct regions *rs, struct loop *lp, char *err, size_t len)
{
	sigset_t all, old;
	int ret;

	memset(rs, 0, sizeof(*rs));
	rs->loop = lp;
	rs->efd = -1;
	rs->tenant_slots = calloc(TENANT_MAX, sizeof(*rs->tenant_slots));
	if (!rs->tenant_slots) {
		snprintf(err, len, "regions: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&rs->lock, NULL);
	pthread_cond_init(&rs->cond, NULL);
	rs->efd = eventfd(0, EFD_CLOEXEC);
	if (rs->efd < 0) {
		snprintf(err, len, "eventfd: %s", strerror(errno));
		return -errno;
	}
	/* Signals are the loop's (signalfd): the pager blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&rs->pager, NULL, pager_main, rs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		snprintf(err, len, "starting the region pager thread: %s",
			 strerror(ret));
		return -ret;
	}
	rs->started = true;
	loop_on(lp, UD_BUFTAG, tag_done, rs);
	loop_on(lp, UD_REGION, on_region, rs);
	return 0;
}

void regions_start(struct regions *rs)
{
	efd_arm(rs);
}

void regions_fini(struct regions *rs)
{
	if (!rs->loop)
		return;
	if (rs->started) {
		pthread_mutex_lock(&rs->lock);
		rs->stop = true;
		for (struct region *r = rs->queue; r; r = r->qnext)
			r->cancel = true;
		pthread_cond_signal(&rs->cond);
		pthread_mutex_unlock(&rs->lock);
		pthread_join(rs->pager, NULL);
		rs->started = false;
	}
	if (rs->efd >= 0)
		close(rs->efd);
	rs->efd = -1;
	pthread_cond_destroy(&rs->cond);
	pthread_mutex_destroy(&rs->lock);
	free(rs->tenant_slots);
	rs->tenant_slots = NULL;
	rs->loop = NULL;
}
