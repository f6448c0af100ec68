/* SPDX-License-Identifier: MIT */
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
#include "server.h"

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

int region_new(struct server *srv, struct conn *c, int fd, uint64_t size,
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
	ret_code = loop_slots_get(&srv->loop, nslots, &r->slot0);
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
	ret_code = io_uring_register_buffers_update_tag(&srv->loop.ring, r->slot0, iov,
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
		if (ret_code && io_uring_register_buffers_update_tag(&srv->loop.ring,
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
	*ret = r;
	srv->nregions++;
	return 0;

out_slots:
	loop_slots_put(&srv->loop, r->slot0, nslots);
out_unmap:
	munmap(r->addr, size);
out_free:
	free(r);
out_close:
	close(fd);
	return ret_code;
}

int region_release(struct server *srv, struct region *r)
{
	struct iovec iov[64];
	__u64 tags[64] = { 0 };
	int ret;

	r->dying = true;
	if (r->users || r->tags_pending)
		return 0;
	memset(iov, 0, sizeof(iov));
	ret = io_uring_register_buffers_update_tag(&srv->loop.ring, r->slot0, iov, tags,
						  r->nslots);
	if (ret < 0) {
		/* Never unmap pages the kernel may still hold: leak instead. */
		log_err("unregistering buffers of region %u: %s; keeping it mapped",
			r->id, strerror(-ret));
		return ret;
	}
	r->tags_pending = r->nslots;
	return 0;
}

void region_tag(struct server *srv, struct region *r)
{
	if (--r->tags_pending)
		return;
	loop_slots_put(&srv->loop, r->slot0, r->nslots);
	munmap(r->addr, r->size);
	if (r->zombie) {
		free(r);
		return;
	}
	close(r->fd);
	conn_region_gone(srv, r, 0);
}
