/* SPDX-License-Identifier: MIT */
/*
 * The daemon's command line and lifetime: startup errors exit 1 with one
 * clear line and no READY=1 (bad sizes, bad options, unusable paths, and
 * io_uring refused by a seccomp filter as in a container); a stale socket
 * file is replaced; an existing store is reopened; SIGINT and SIGTERM end
 * it with status 0, also with clients connected and transfers running.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "harness.h"
#include "tap.h"

#define TIMEOUT_MS 10000
/* The contract: "Exit status 1 with one clear line on stderr on startup errors". */
#define STARTUP_EXIT 1

/*
 * Counts the error lines of a log, copying the last one to `line`: those
 * with a priority prefix <0> to <3> (sd-daemon style), and those with none.
 * Notices and info lines (<4> to <7>) may come before the error.
 */
static unsigned error_lines(const char *log, char *line, size_t size)
{
	unsigned n = 0;

	*line = '\0';
	while (*log) {
		const char *end = strchrnul(log, '\n');

		if (end > log && (log[0] != '<' ||
				  (log[1] >= '0' && log[1] <= '3'))) {
			n++;
			snprintf(line, size, "%.*s", (int)(end - log), log);
		}
		log = *end ? end + 1 : end;
	}
	return n;
}

/*
 * Runs kvswapd with args and checks that it exits with STARTUP_EXIT without
 * READY=1, with stderr naming `needle` (case-insensitive), in one error
 * line if one_line.
 */
static void startup_error(const char *what, const char *const *args,
			  unsigned flags, const char *needle, bool one_line)
{
	static char log[65536];
	char line[1024];
	struct harness *h;
	char status[64];
	int r;

	r = harness_spawn(args, flags, &h);
	if (!is_int(r, 0, "%s: spawn", what))
		return;
	r = harness_wait_ready(h, TIMEOUT_MS);
	if (!is_int(r, -ECHILD, "%s: exits without READY=1", what)) {
		harness_free(h);
		return;
	}
	ok(WIFEXITED(h->status) && WEXITSTATUS(h->status) == STARTUP_EXIT,
	   "%s: exit status %d (%s)", what, STARTUP_EXIT,
	   harness_status_str(h->status, status, sizeof(status)));
	harness_read_log(h, log, sizeof(log));
	if (one_line) {
		if (!is_int(error_lines(log, line, sizeof(line)), 1,
			    "%s: one error line on stderr: %s", what, line))
			harness_show_log(h, 10);
	} else {
		error_lines(log, line, sizeof(line));
	}
	if (!ok(strcasestr(one_line ? line : log, needle) != NULL,
		"%s: the error names '%s'", what, needle))
		harness_show_log(h, 10);
	harness_free(h);
}

static void test_startup_errors(void)
{
#define BASE "--socket", "@DIR/kvswapd.sock", "--store", "@DIR/store0.kvs"
	startup_error("--store-size 12X",
		      (const char *[]){ BASE, "--store-size", "12X", NULL }, 0,
		      "12X", true);
	startup_error("--store-size 0",
		      (const char *[]){ BASE, "--store-size", "0", NULL }, 0,
		      "size", true);
	startup_error("--queue-depth 0",
		      (const char *[]){ BASE, "--store-size", "16M",
					"--queue-depth", "0", NULL }, 0,
		      "queue-depth", true);
	startup_error("--queue-depth 100000",
		      (const char *[]){ BASE, "--store-size", "16M",
					"--queue-depth", "100000", NULL }, 0,
		      "queue-depth", true);
	startup_error("--log-level loud",
		      (const char *[]){ BASE, "--store-size", "16M",
					"--log-level", "loud", NULL }, 0,
		      "loud", true);
	startup_error("an unknown option",
		      (const char *[]){ BASE, "--store-size", "16M",
					"--frobnicate", NULL }, 0,
		      "frobnicate", false);
	startup_error("a store in a missing folder",
		      (const char *[]){ "--socket", "@DIR/kvswapd.sock",
					"--store", "@DIR/missing/store0.kvs",
					"--store-size", "16M", NULL }, 0,
		      "missing/store0.kvs", true);
	startup_error("a socket in a missing folder",
		      (const char *[]){ "--socket", "@DIR/missing/kvswapd.sock",
					"--store", "@DIR/store0.kvs",
					"--store-size", "16M", NULL }, 0,
		      "missing/kvswapd.sock", true);
	startup_error("io_uring refused by seccomp",
		      (const char *[]){ BASE, "--store-size", "16M", NULL },
		      HARNESS_DENY_IO_URING, "io_uring", true);
#undef BASE
}

/* Leaves a socket file at path with nobody listening, as after a crash. */
static int make_stale_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1) < 0)
		r = -errno;
	close(fd);
	return r;
}

static void test_stale_socket_and_reopen(void)
{
	char sock[PATH_MAX], store[PATH_MAX];
	const char *args[] = { "--socket", sock, "--store", store,
			       "--store-size", "16M", NULL };
	struct kvswap_stat st = { 0 };
	struct kvswap *k;
	struct harness *h;
	struct stat sb1 = { 0 }, sb2;
	int r;

	snprintf(sock, sizeof(sock), "%s/stale.sock", harness_dir());
	snprintf(store, sizeof(store), "%s/shared-store.kvs", harness_dir());
	if (!is_int(make_stale_socket(sock), 0, "a stale socket file is left"))
		return;
	r = harness_spawn(args, 0, &h);
	if (r == 0)
		r = harness_wait_ready(h, TIMEOUT_MS);
	if (!is_int(r, 0, "starts over a stale socket file")) {
		harness_show_log(h, 10);
		harness_free(h);
		return;
	}
	r = kvswap_connect(sock, &k);
	ok(r == 0 && kvswap_stat(k, &st) == 0,
	   "and serves clients on it");
	if (r == 0)
		kvswap_close(k);
	is_int(stat(store, &sb1), 0, "the store file was created");
	ok(sb1.st_size >= (off_t)st.capacity,
	   "store file of %lld bytes holds the capacity %" PRIu64,
	   (long long)sb1.st_size, st.capacity);
	is_int(harness_stop(h), 0, "exits 0 on SIGTERM");
	harness_free(h);

	/* The same store again: reopened, not refused. */
	r = harness_spawn(args, 0, &h);
	if (r == 0)
		r = harness_wait_ready(h, TIMEOUT_MS);
	if (!is_int(r, 0, "starts again on the existing store")) {
		harness_show_log(h, 10);
		harness_free(h);
		return;
	}
	r = kvswap_connect(sock, &k);
	ok(r == 0 && kvswap_stat(k, &st) == 0 && st.store_files == 1,
	   "and serves clients");
	if (r == 0)
		kvswap_close(k);
	ok(stat(store, &sb2) == 0 && sb2.st_size == sb1.st_size,
	   "the store file keeps its size");
	/* SIGINT ends it like SIGTERM. */
	kill(h->pid, SIGINT);
	r = harness_wait_exit(h, TIMEOUT_MS);
	ok(r == 0 && WIFEXITED(h->status) && WEXITSTATUS(h->status) == 0,
	   "exits 0 on SIGINT");
	harness_free(h);
}

/* A second daemon on a store file that one already serves is refused. */
static void test_store_in_use(void)
{
	char store[PATH_MAX];
	const char *args[] = { "--socket", "@DIR/kvswapd.sock", "--store",
			       store, "--store-size", "16M", NULL };
	struct harness *a;
	int r;

	snprintf(store, sizeof(store), "%s/in-use.kvs", harness_dir());
	r = harness_spawn(args, 0, &a);
	if (r == 0)
		r = harness_wait_ready(a, TIMEOUT_MS);
	if (!is_int(r, 0, "store in use: the first daemon starts")) {
		harness_free(a);
		return;
	}
	startup_error("store in use: a second daemon on it", args, 0,
		      "in-use.kvs", true);
	ok(harness_alive(a), "store in use: the first daemon is unaffected");
	is_int(harness_stop(a), 0, "store in use: the first daemon exits 0");
	harness_free(a);
}

/*
 * SIGTERM with clients connected, one of them in the middle of a large
 * swap-out: the daemon still exits 0, and the clients see their
 * connection end instead of waiting forever.
 */
static void test_term_with_clients(void)
{
	enum { N = 256 };
	const uint64_t size = 64 * MiB;
	struct kvswap_seg_out segs[N];
	struct kvswap_region *r1;
	struct kvswap_req *req;
	struct kvswap_stat st;
	struct kvswap *k1, *k2;
	struct harness *h;
	int r;

	if (harness_start(&(struct harness_opts){ .store_size = 128 * MiB,
						  .queue_depth = 2 }, &h) < 0) {
		ok(0, "start kvswapd");
		return;
	}
	if (harness_connect(h, &k1) < 0 || harness_connect(h, &k2) < 0)
		bail_out("connect");
	r = kvswap_region_create(k1, size, &r1);
	if (!is_int(r, 0, "a client with a 64 MiB region"))
		bail_out("region: %s", kvswap_last_error(k1));
	fill_seeded(kvswap_region_addr(r1), size, harness_seed());
	for (uint32_t i = 0; i < N; i++) {
		segs[i].offset = i * (size / N);
		segs[i].length = size / N;
	}
	r = kvswap_swap_out(k1, "busy", 4, r1, segs, N, NULL, 0, 0, &req);
	is_int(r, 0, "a 64 MiB swap-out started");
	if (r == 0) {
		uint32_t idx;

		/* Wait until it really runs. */
		kvswap_wait_segment(k1, req, TIMEOUT_MS, &idx);
	}
	is_int(harness_stop(h), 0, "SIGTERM during the transfer: exit status 0");
	if (r == 0) {
		r = kvswap_wait(k1, req, TIMEOUT_MS);
		ok(r != -ETIMEDOUT, "the busy client's request ends (%s)",
		   r ? strerror(-r) : "completed");
		kvswap_req_free(req);
	}
	r = kvswap_stat(k2, &st);
	ok(r < 0 && r != -ETIMEDOUT,
	   "the idle client sees its connection closed (%s)", strerror(-r));
	kvswap_region_release(k1, r1);
	kvswap_close(k1);
	kvswap_close(k2);
	harness_free(h);
}

int main(void)
{
	harness_init("test-startup");
	test_startup_errors();
	test_stale_socket_and_reopen();
	test_store_in_use();
	test_term_with_clients();
	done_testing();
}
