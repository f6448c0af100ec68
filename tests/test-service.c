/* SPDX-License-Identifier: MIT */
/*
 * kvswapd as a systemd service, without systemd as PID 1:
 *   - socket activation through systemd-socket-activate --seqpacket with
 *     the fd named "control": a client connects, swaps a segment out and
 *     back in;
 *   - the notify protocol on a datagram socket this test owns: READY=1,
 *     STATUS=, WATCHDOG=1 pings while WATCHDOG_USEC is set (never further
 *     apart than the watchdog timeout), RELOADING=1 with MONOTONIC_USEC and
 *     READY=1 again on SIGHUP, STOPPING=1 on SIGTERM;
 *   - SIGHUP rereads --config: reloadable options change, others are named
 *     as needing a restart, and a broken file changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

/* Next notify datagram within timeout_ms, NUL-terminated, or -ETIMEDOUT. */
static int notify_next(int fd, int timeout_ms, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	n = recv(fd, buf, len - 1, 0);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* Waits for a datagram containing `what`; returns its arrival or 0. */
static uint64_t notify_wait(int fd, const char *what, int timeout_ms, char *buf,
			    size_t len)
{
	uint64_t end = mono_ms() + (uint64_t)timeout_ms;

	while (mono_ms() < end)
		if (notify_next(fd, (int)(end - mono_ms()), buf, len) == 0 &&
		    strstr(buf, what))
			return mono_ms();
	return 0;
}

static bool log_has(const struct harness *h, const char *what)
{
	static char log[65536];

	return harness_read_log(h, log, sizeof(log)) > 0 && strstr(log, what);
}

static void test_notify(void)
{
	static const char *const env[] = { "WATCHDOG_USEC=1000000", NULL };
	char buf[512], conf[4200];
	const char *extra[] = { "--config", conf, NULL };
	uint64_t last = 0, gap = 0;
	unsigned pings = 0;
	struct harness *h;
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/kvswapd.conf", harness_dir());
	f = fopen(conf, "w");
	fprintf(f, "[kvswapd]\nlog-level = info\nqueue-depth = 64\n");
	fclose(f);
	harness_env = env;
	if (!is_int(harness_start(&(struct harness_opts){ .extra_args = extra },
				  &h), 0, "kvswapd starts with WATCHDOG_USEC=1s"))
		return;
	harness_env = NULL;
	ok(notify_wait(h->notify_fd, "STATUS=", 6000, buf, sizeof(buf)) != 0,
	   "STATUS= with a summary: %s", buf);
	/* Logged before the first STATUS= the timer sends. */
	ok(log_has(h, "watchdog: pinging every 500 ms"),
	   "it pings at half the watchdog interval");
	ok(strstr(buf, "MiB used") && strstr(buf, "entries"),
	   "the summary names use and entries");
	/* Three seconds of pings: never further apart than the timeout. */
	for (uint64_t end = mono_ms() + 3000; mono_ms() < end;) {
		uint64_t t = notify_wait(h->notify_fd, "WATCHDOG=1",
					 (int)(end - mono_ms()), buf, sizeof(buf));

		if (!t)
			break;
		if (last && t - last > gap)
			gap = t - last;
		last = t;
		pings++;
	}
	ok(pings >= 3, "%u WATCHDOG=1 pings in 3 s", pings);
	ok(gap < 1000, "the longest gap between pings, %llu ms, is under the "
	   "1 s watchdog timeout", (unsigned long long)gap);

	/* SIGHUP: one reloadable change, one that needs a restart. */
	f = fopen(conf, "w");
	fprintf(f, "[kvswapd]\nlog-level = debug\nqueue-depth = 32\n"
		   "durability = cache\n");
	fclose(f);
	kill(h->pid, SIGHUP);
	ok(notify_wait(h->notify_fd, "RELOADING=1", 3000, buf, sizeof(buf)) &&
	   strstr(buf, "MONOTONIC_USEC="), "SIGHUP: RELOADING=1 with MONOTONIC_USEC");
	ok(notify_wait(h->notify_fd, "READY=1", 3000, buf, sizeof(buf)) != 0,
	   "then READY=1 again");
	usleep(100000);
	ok(log_has(h, "reload: log-level changed"), "log-level reloaded");
	ok(log_has(h, "reload: durability changed"), "durability reloaded");
	ok(log_has(h, "queue-depth changed; it takes effect at the next restart"),
	   "queue-depth named as needing a restart");
	{
		struct kvswap_stat st;

		ok(harness_stat(h, &st) == 0 && !st.durable && st.queue_depth == 64,
		   "Stat: durability is cache now, queue depth unchanged (64)");
	}
	f = fopen(conf, "w");
	fprintf(f, "[kvswapd]\nlog-level = loud\n");
	fclose(f);
	kill(h->pid, SIGHUP);
	notify_wait(h->notify_fd, "READY=1", 3000, buf, sizeof(buf));
	usleep(100000);
	ok(log_has(h, "kvswapd.conf:2: log-level") &&
	   log_has(h, "keeping the running configuration"),
	   "a broken file is refused with file:line and changes nothing");
	ok(harness_alive(h), "still running");

	kill(h->pid, SIGTERM);
	ok(notify_wait(h->notify_fd, "STOPPING=1", 5000, buf, sizeof(buf)) != 0,
	   "SIGTERM: STOPPING=1");
	is_int(harness_wait_exit(h, 10000), 0, "exits");
	ok(WIFEXITED(h->status) && WEXITSTATUS(h->status) == 0, "with status 0");
	harness_free(h);
}

static void test_socket_activation(void)
{
	char sock[200], store[4200], logp[4200];
	struct kvswap_region *r;
	struct kvswap_seg_out out = { 0, 10000 };
	struct kvswap_seg_in in = { 0, 0 };
	struct kvswap *k = NULL;
	uint8_t *want;
	pid_t pid;
	int ret, status;

	if (access("/usr/bin/systemd-socket-activate", X_OK)) {
		skip("systemd-socket-activate is not installed");
		return;
	}
	char abs[4096];

	/* systemd-socket-activate takes only absolute paths. */
	if (!realpath(harness_dir(), abs) ||
	    snprintf(sock, sizeof(sock), "%s/activated.sock", abs) >= (int)sizeof(sock)) {
		skip("test folder path too long for a socket");
		return;
	}
	snprintf(store, sizeof(store), "%s/activated.kvs", harness_dir());
	snprintf(logp, sizeof(logp), "%s/activated.log", harness_dir());
	pid = fork();
	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 2);
		dup2(fd, 1);
		unsetenv("NOTIFY_SOCKET");
		execl("/usr/bin/systemd-socket-activate", "systemd-socket-activate",
		      "--seqpacket", "--fdname=control", "-l", sock,
		      getenv("KVSWAPD") ? getenv("KVSWAPD") : "build/kvswapd",
		      "--store", store, "--store-size", "16M",
		      "--socket", "/nonexistent/must-not-be-used.sock", (char *)NULL);
		_exit(127);
	}
	/* systemd-socket-activate listens first, then starts kvswapd on the
	 * first connection and hands it the listening socket. */
	for (int i = 0; i < 200; i++) {
		if (!access(sock, F_OK))
			break;
		usleep(20000);
	}
	ret = kvswap_connect(sock, &k);
	if (!is_int(ret, 0, "a client connects through the activated socket")) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	want = malloc(10000);
	fill_seeded(want, 10000, 42);
	ret = kvswap_region_create(k, 16384, &r);
	if (ret == 0) {
		memcpy(kvswap_region_addr(r), want, 10000);
		ret = kvswap_put(k, "activated", 9, r, &out, 1, NULL, 0);
	}
	is_int(ret, 0, "swaps a segment out");
	if (ret == 0) {
		memset(kvswap_region_addr(r), 0, 16384);
		is_int(kvswap_get(k, "activated", 9, r, &in, 1), 0, "and back in");
		is_mem(kvswap_region_addr(r), want, 10000, "byte-exact");
	}
	kvswap_close(k);
	free(want);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "SIGTERM: exits 0 (status %d)", status);
	{
		char log[4096] = "";
		FILE *f = fopen(logp, "r");

		if (f) {
			fread(log, 1, sizeof(log) - 1, f);
			fclose(f);
		}
		ok(strstr(log, "socket from systemd") != NULL,
		   "the log says the socket came from systemd");
	}
}

int main(void)
{
	harness_init("test-service");
	test_notify();
	test_socket_activation();
	done_testing();
}
