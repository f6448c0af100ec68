/* SPDX-License-Identifier: MIT */
/*
 * Client regions (region.h): sealed memfds mapped and registered as fixed
 * buffers, released only once the kernel has let go of their pages.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "region.h"

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

int region_new(struct regions *rs, struct conn *c, int fd, uint64_t size,
	       struct region **ret, char *err, size_t len)
{
	struct iovec iov[64];
	__u64 tags[64];
	struct region *r;
	uint32_t nslots;
	int ret_code;

	ret_code = check_memfd(fd, size, err, len);
	if (ret_code < 0)
		goto out_close;
	nslots = (uint32_t)((size + LOOP_SLOT_BYTES - 1) / LOOP_SLOT_BYTES);
	if (nslots > 64) {
		snprintf(err, len, "register_region.size %llu: at most 64 GiB per "
			 "region", (unsigned long long)size);
		ret_code = -EINVAL;
		goto out_close;
	}
	r = aligned_alloc(16, sizeof(*r));
	if (!r) {
		snprintf(err, len, "out of memory");
		ret_code = -ENOMEM;
		goto out_close;
	}
	memset(r, 0, sizeof(*r));
	r->conn = c;
	r->rs = rs;
	r->fd = fd;
	r->size = size;
	r->nslots = nslots;
	r->addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->addr == MAP_FAILED) {
		ret_code = -errno;
		snprintf(err, len, "register_region: mmap of %llu bytes: %s",
			 (unsigned long long)size, strerror(errno));
		goto out_free;
	}
	ret_code = loop_slots_get(rs->loop, nslots, &r->slot0);
	if (ret_code < 0) {
		snprintf(err, len, "register_region: the daemon's buffer table "
			 "is full (%d slots of 1 GiB)", LOOP_BUF_SLOTS - 1);
		ret_code = -EMFILE;
		goto out_unmap;
	}
	for (uint32_t i = 0; i < nslots; i++) {
		uint64_t off = (uint64_t)i * LOOP_SLOT_BYTES;

		iov[i].iov_base = r->addr + off;
		iov[i].iov_len = size - off < LOOP_SLOT_BYTES ? size - off
							     : LOOP_SLOT_BYTES;
		tags[i] = ud_make(r, UD_BUFTAG);
	}
	/* Pins and faults in every page: CPU work, bounded by the size. */
	ret_code = io_uring_register_buffers_update_tag(&rs->loop->ring, r->slot0, iov,
						       tags, nslots);
	if (ret_code >= 0 && (uint32_t)ret_code < nslots) {
		/*
		 * Only some slots took. Clear them; the region is freed when
		 * their tags arrive, never before the kernel lets go.
		 */
		struct iovec empty[64] = { { 0 } };
		__u64 notag[64] = { 0 };

		snprintf(err, len, "register_region: the kernel registered only %d "
			 "of %u slots of 1 GiB", ret_code, nslots);
		r->zombie = true;
		r->tags_pending = (uint32_t)ret_code;
		if (ret_code && io_uring_register_buffers_update_tag(&rs->loop->ring,
				r->slot0, empty, notag, (unsigned)ret_code) < 0) {
			log_err("clearing a partly registered region failed; "
				"keeping it mapped");
			r->tags_pending = 0;
			close(fd);
			return -ENOMEM;
		}
		if (!ret_code) {
			ret_code = -ENOMEM;
			goto out_slots;
		}
		close(fd);
		r->fd = -1;
		return -ENOMEM;
	}
	if (ret_code < 0) {
		struct rlimit rl = { 0 };

		getrlimit(RLIMIT_MEMLOCK, &rl);
		if (ret_code == -ENOMEM)
			snprintf(err, len, "register_region: the daemon cannot pin "
				 "%llu bytes (RLIMIT_MEMLOCK %llu bytes): raise "
				 "LimitMEMLOCK= or ulimit -l", (unsigned long long)size,
				 (unsigned long long)rl.rlim_cur);
		else
			snprintf(err, len, "register_region: registering buffers: %s",
				 strerror(-ret_code));
		log_warn("client %s: %s", conn_name(c), err);
		goto out_slots;
	}
	r->id = ++c->region_serial;
	r->next = c->regions;
	c->regions = r;
	c->nregions++;
	rs->count++;
	conn_hold(c);
	*ret = r;
	return 0;

out_slots:
	loop_slots_put(rs->loop, r->slot0, nslots);
out_unmap:
	munmap(r->addr, size);
out_free:
	free(r);
out_close:
	close(fd);
	return ret_code;
}

/*
 * The region is released (err 0) or the kernel refused (err < 0): answer
 * a pending UnregisterRegion, unlink, free, drop the connection's hold.
 */
static void region_gone(struct region *r, int err)
{
	struct conn *c = r->conn;
	struct region **pp;

	if (r->reply && !conn_closing(c)) {
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
	free(r);
	conn_put(c);
}

struct region *region_find(struct conn *c, uint32_t id)
{
	for (struct region *r = c->regions; r; r = r->next)
		if (r->id == id)
			return r->dying ? NULL : r;
	return NULL;
}

void region_release(struct region *r)
{
	struct iovec iov[64];
	__u64 tags[64] = { 0 };
	int ret;

	r->dying = true;
	if (r->users || r->tags_pending)
		return;
	memset(iov, 0, sizeof(iov));
	ret = io_uring_register_buffers_update_tag(&r->rs->loop->ring, r->slot0,
						  iov, tags, r->nslots);
	if (ret < 0) {
		/* Never unmap pages the kernel may still hold: leak instead. */
		log_err("unregistering buffers of region %u: %s; keeping it mapped",
			r->id, strerror(-ret));
		region_gone(r, ret);
		return;
	}
	r->tags_pending = r->nslots;
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
	assert(!r->dying);
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
	if (--r->tags_pending)
		return;
	loop_slots_put(r->rs->loop, r->slot0, r->nslots);
	munmap(r->addr, r->size);
	if (r->zombie) {
		free(r);
		return;
	}
	close(r->fd);
	region_gone(r, 0);
}

void regions_init(struct regions *rs, struct loop *lp)
{
	rs->loop = lp;
	rs->count = 0;
	loop_on(lp, UD_BUFTAG, tag_done, rs);
}
