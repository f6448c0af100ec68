/* SPDX-License-Identifier: MIT */
/*
 * fsio: does the writes and syncs kvswapd does, one step at a time, for
 * tests/test-faultfs.sh to check faultfs's durability model with.
 *
 *   fsio [-d] [-s] FILE STEP...
 *
 * FILE is opened O_RDWR | O_CREAT, with O_DIRECT under -d and O_DSYNC
 * under -s. Steps run in order; the first that fails prints one line and
 * exits 1:
 *   w:OFF:LEN:BYTE     pwrite LEN bytes of BYTE at OFF
 *   wd:OFF:LEN:BYTE    pwritev2 with RWF_DSYNC
 *   uw:OFF:LEN:BYTE    io_uring write
 *   uwd:OFF:LEN:BYTE   io_uring write with rw_flags RWF_DSYNC (the log's)
 *   fdatasync, fsync   the system calls
 *   ufdatasync         io_uring fsync with IORING_FSYNC_DATASYNC
 *   r:OFF:LEN:BYTE     pread LEN bytes at OFF; each must be BYTE
 * Numbers take C syntax (0x...); BYTE is one number.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* The byte counts of the last short transfer, for the message. */
static long long short_got, short_want;

static int uring_op(struct io_uring *ring, int fd, const char *what,
		    void *buf, size_t len, unsigned long long off, int flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!strcmp(what, "fsync")) {
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	} else {
		io_uring_prep_write(sqe, fd, buf, (unsigned)len, off);
		sqe->rw_flags = flags;
	}
	ret = io_uring_submit(ring);
	if (ret < 0)
		return ret;
	ret = io_uring_wait_cqe(ring, &cqe);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

static int step(struct io_uring *ring, int fd, char *s)
{
	unsigned long long off, len, byte;
	char op[8];
	void *buf;
	int n = 0, ret;

	if (!strcmp(s, "fdatasync"))
		return fdatasync(fd) < 0 ? -errno : 0;
	if (!strcmp(s, "fsync"))
		return fsync(fd) < 0 ? -errno : 0;
	if (!strcmp(s, "ufdatasync"))
		return uring_op(ring, fd, "fsync", NULL, 0, 0, 0);
	if (sscanf(s, "%7[a-z]:%lli:%lli:%lli%n", op, &off, &len, &byte, &n) != 4 ||
	    s[n] || len > (1u << 30))
		return -EINVAL;
	if (posix_memalign(&buf, 4096, len ? len : 1))
		return -ENOMEM;
	memset(buf, (int)byte, len);
	if (!strcmp(op, "w")) {
		ret = (int)pwrite(fd, buf, len, (off_t)off);
	} else if (!strcmp(op, "wd")) {
		struct iovec iov = { buf, len };

		ret = (int)pwritev2(fd, &iov, 1, (off_t)off, RWF_DSYNC);
	} else if (!strcmp(op, "uw")) {
		ret = uring_op(ring, fd, "write", buf, len, off, 0);
	} else if (!strcmp(op, "uwd")) {
		ret = uring_op(ring, fd, "write", buf, len, off, RWF_DSYNC);
	} else if (!strcmp(op, "r")) {
		ret = (int)pread(fd, buf, len, (off_t)off);
		for (unsigned long long i = 0; ret == (int)len && i < len; i++)
			if (((unsigned char *)buf)[i] != (unsigned char)byte)
				ret = -EILSEQ;
	} else {
		ret = -EINVAL;
		errno = EINVAL;
	}
	if (ret == -1)
		ret = -errno;
	free(buf);
	if (ret >= 0 && (unsigned long long)ret != len) {
		short_got = ret;
		short_want = (long long)len;
		return -ENODATA;
	}
	return ret < 0 ? ret : 0;
}

int main(int argc, char **argv)
{
	int flags = O_RDWR | O_CREAT | O_CLOEXEC, opt, fd, ret;
	struct io_uring ring;

	while ((opt = getopt(argc, argv, "ds")) != -1) {
		switch (opt) {
		case 'd': flags |= O_DIRECT; break;
		case 's': flags |= O_DSYNC; break;
		default: goto usage;
		}
	}
	if (optind + 2 > argc)
		goto usage;
	fd = open(argv[optind], flags, 0600);
	if (fd < 0) {
		fprintf(stderr, "fsio: open %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "fsio: io_uring: %s\n", strerror(-ret));
		return 1;
	}
	for (int i = optind + 1; i < argc; i++) {
		ret = step(&ring, fd, argv[i]);
		if (ret == -ENODATA) {
			fprintf(stderr, "fsio: %s: short transfer: %lld of %lld bytes\n",
				argv[i], short_got, short_want);
			return 1;
		}
		if (ret < 0) {
			fprintf(stderr, "fsio: %s: %s\n", argv[i], strerror(-ret));
			return 1;
		}
	}
	io_uring_queue_exit(&ring);
	return close(fd) < 0 ? 1 : 0;
usage:
	fprintf(stderr, "usage: fsio [-d] [-s] FILE STEP...\n");
	return 2;
}
