/* SPDX-License-Identifier: MIT */
/*
 * No client can break the daemon (issue 10):
 * - 1000 hostile connections of assorted kinds (empty packets carrying
 *   fds, too many fds, garbage, never a Hello, half-open, fds on the wrong
 *   request) leave the daemon's fd count where it was, and it serves on;
 * - a connection that never says Hello is closed with ETIMEDOUT;
 * - a daemon with RLIMIT_NOFILE 64 serves what that leaves room for and
 *   refuses the rest cleanly, logged once, before accept could fail;
 * - a 4 GiB sparse region registers (and is released) while another
 *   client's put+get round trips never wait 50 ms (the bound);
 * - each exhaustion, by a hog running as one real user, gets the hog its
 *   quota error naming tenant and limit, while another user's put+get
 *   round trip still succeeds (its latency reported): idle connections,
 *   regions over many connections, registered bytes, requests in flight.
 * The tenant parts need root (useradd, setresuid) and skip otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "kvswap-protocol.h"
#include "tap.h"
#include "users.h"

#define HOSTILE		1000
#define OPEN_AT_ONCE	48
#define HELLO_MS	400

/* --- helpers ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static int fd_count(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Sends len bytes (maybe 0) with nfds copies of memfds in SCM_RIGHTS. */
static int send_with_fds(int sock, const void *buf, size_t len, int nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * 8)];
	} u;
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[8], r;

	for (int i = 0; i < nfds; i++)
		fds[i] = memfd_create("hostile", MFD_CLOEXEC);
	memset(&u, 0, sizeof(u));
	m.msg_control = u.b;
	m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	r = sendmsg(sock, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return r;
}

/* One put + get of 64 KiB through r; returns its time in ms or -errno. */
static double round_trip(struct kvswap *k, struct kvswap_region *r,
			 const char *key, uint64_t seed)
{
	uint8_t *a = kvswap_region_addr(r);
	struct kvswap_seg_out so = { 0, 64 * KiB };
	struct kvswap_seg_in si = { 0, 64 * KiB };
	uint64_t t0 = now_ns();
	int ret;

	fill_seeded(a, 64 * KiB, seed);
	ret = kvswap_put(k, key, strlen(key), r, &so, 1, NULL, 0);
	if (ret == 0)
		ret = kvswap_get(k, key, strlen(key), r, &si, 1);
	if (ret < 0)
		return ret;
	if (memcmp(a, a + 64 * KiB, 64 * KiB))
		return -EIO;
	return (double)(now_ns() - t0) / 1e6;
}

/* --- 1000 hostile connections ---------------------------------------------- */

enum kind { K_EMPTY_FDS, K_MANY_FDS, K_GARBAGE, K_NO_HELLO, K_HALF_OPEN,
	    K_WRONG_FDS, K_NKINDS };

static void hostile(struct harness *d)
{
	int open_fds[OPEN_AT_ONCE], head = 0, n = 0, base, now = -1;
	unsigned failed = 0;
	uint8_t junk[200];
	struct rng rng;
	uint64_t deadline;

	for (int i = 0; i < OPEN_AT_ONCE; i++)
		open_fds[i] = -1;
	rng_init(&rng, harness_seed());
	/* The fewest of a few looks: a connection may be going away. */
	base = fd_count(d->pid);
	for (int i = 0; i < 10; i++) {
		usleep(50000);
		now = fd_count(d->pid);
		if (now < base)
			base = now;
	}
	ok(base > 0, "the daemon has %d fds open before", base);
	/* The first empty packet with fds: refused, its fds closed. */
	{
		Kvswap__V1__Event *ev = NULL;
		int s;

		if (raw_connect(d->socket, &s) == 0) {
			int r;

			send_with_fds(s, "", 0, 4);
			r = raw_recv(s, 5000, &ev);
			ok(r == 0 && ev->error && ev->error->code == EBADMSG,
			   "an empty packet carrying 4 fds: EBADMSG (%s)",
			   ev && ev->error ? ev->error->message : "no error");
			ok(raw_wait_closed(s, 5000, NULL), "... and closed");
			raw_event_free(ev);
			close(s);
		}
	}
	for (int i = 0; i < HOSTILE; i++) {
		enum kind kind = (enum kind)(i % K_NKINDS);
		int s;

		if (open_fds[head] >= 0) {
			close(open_fds[head]);
			open_fds[head] = -1;
			n--;
		}
		if (raw_connect(d->socket, &s) < 0) {
			failed++;
			continue;
		}
		switch (kind) {
		case K_EMPTY_FDS:
			send_with_fds(s, "", 0, 4);
			break;
		case K_MANY_FDS:
			send_with_fds(s, "x", 1, 7);
			break;
		case K_GARBAGE:
			rng_fill(&rng, junk, sizeof(junk));
			send_with_fds(s, junk, rng_range(&rng, 1, sizeof(junk)), 1);
			break;
		case K_NO_HELLO:
			break;
		case K_HALF_OPEN:
			shutdown(s, SHUT_WR);
			break;
		case K_WRONG_FDS: {
			/* A valid Hello, then a Stat carrying 2 fds. */
			Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
			Kvswap__V1__Stat st = KVSWAP__V1__STAT__INIT;
			uint8_t buf[64];
			size_t len;

			if (raw_hello(s, KVS_PROTOCOL_VERSION) != 0)
				failed++;
			req.has_id = 1;
			req.id = 2;
			req.body_case = KVSWAP__V1__REQUEST__BODY_STAT;
			req.stat = &st;
			len = kvswap__v1__request__pack(&req, buf);
			send_with_fds(s, buf, len, 2);
			break;
		}
		default:
			break;
		}
		open_fds[head] = s;
		head = (head + 1) % OPEN_AT_ONCE;
		n++;
	}
	for (int i = 0; i < OPEN_AT_ONCE; i++)
		if (open_fds[i] >= 0)
			close(open_fds[i]);
	is_uint(failed, 0, "%d hostile connections of %d kinds made", HOSTILE,
		K_NKINDS);
	deadline = mono_ms() + 10000;
	while (mono_ms() < deadline && (now = fd_count(d->pid)) > base)
		usleep(20000);
	ok(now <= base, "the daemon's fd count is back to its baseline %d "
	   "(%d)", base, now);
	ok(harness_alive(d), "the daemon is alive");
}

static void hello_timeout(struct harness *d)
{
	Kvswap__V1__Event *ev = NULL;
	uint64_t t0 = mono_ms(), dt;
	int s, r;

	if (raw_connect(d->socket, &s) < 0) {
		ok(0, "connect for the Hello timeout");
		return;
	}
	r = raw_recv(s, 5000, &ev);
	dt = mono_ms() - t0;
	ok(r == 0 && ev->error && ev->error->code == ETIMEDOUT,
	   "a connection without Hello: ETIMEDOUT after %llu ms (%s)",
	   (unsigned long long)dt, ev && ev->error ? ev->error->message : "none");
	ok(dt >= HELLO_MS - 50 && dt < 5000, "... not before hello-timeout %d ms",
	   HELLO_MS);
	ok(raw_wait_closed(s, 5000, NULL), "... and closed");
	raw_event_free(ev);
	close(s);
}

/*
 * A daemon started with RLIMIT_NOFILE 64 (hard and soft): it serves as
 * many clients as that leaves room for, refuses the rest cleanly (one log
 * line per burst) before accept could fail, and serves again once they go.
 */
static void fd_limit(void)
{
	static const char *const args[] = { "--hello-timeout", "5000", NULL };
	struct harness_opts o = { .extra_args = args, .store_size = 64 * MiB };
	struct rlimit low = { 64, 64 };
	unsigned served = 0, refused = 0, lines = 0, max = 0;
	static char log[1 << 20];
	int socks[48], n = 0, s;
	struct harness *d;
	const char *q;

	/*
	 * The daemon inherits it. Raising the hard limit back needs
	 * CAP_SYS_RESOURCE, which root in a container may lack: this runs
	 * last.
	 */
	if (setrlimit(RLIMIT_NOFILE, &low) < 0)
		bail_out("setrlimit: %s", strerror(errno));
	s = harness_start(&o, &d);
	if (s < 0)
		bail_out("cannot start kvswapd with RLIMIT_NOFILE 64");
	while (n < 48 && raw_connect(d->socket, &socks[n]) == 0) {
		if (raw_hello(socks[n], KVS_PROTOCOL_VERSION) == 0)
			served++;
		else
			refused++;
		n++;
	}
	harness_read_log(d, log, sizeof(log));
	q = strstr(log, "at most ");
	if (q)
		max = (unsigned)strtoul(q + 8, NULL, 10);
	for (q = log; (q = strstr(q, "refusing clients")); q++)
		lines++;
	ok(max > 0 && max < 64, "RLIMIT_NOFILE 64: the daemon says it serves at "
	   "most %u clients", max);
	is_uint(served, max, "... serves %u of %d clients", served, n);
	ok(refused == (unsigned)n - served && refused > 0,
	   "... refuses the other %u cleanly", refused);
	is_uint(lines, 1, "... with one log line for the burst");
	ok(!strstr(log, "accept: "), "... accept never failed");
	for (int i = 0; i < n; i++)
		close(socks[i]);
	usleep(300000);
	if (raw_connect(d->socket, &s) == 0) {
		ok(raw_hello(s, KVS_PROTOCOL_VERSION) == 0,
		   "... and serves a new client once they left");
		close(s);
	} else {
		ok(0, "connect after the burst");
	}
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
}

/* --- a 4 GiB sparse region while another client swaps -------------------- */

struct pinger {
	struct harness *d;
	atomic_bool stop;
	atomic_bool started;
	atomic_int phase;	/* 0: baseline, 1: the big region */
	unsigned rounds;
	double max_ms, sum_ms;
	double base_max_ms, base_sum_ms;
	double max_ms_release;	/* the max during the release alone */
	unsigned base_rounds;
	int err;
};

static void *pinger_main(void *arg)
{
	struct pinger *p = arg;
	struct kvswap_region *r;
	struct kvswap *k;
	char key[32];

	if (kvswap_connect(p->d->socket, &k) < 0) {
		p->err = -ECONNREFUSED;
		return NULL;
	}
	if (kvswap_region_create(k, 128 * KiB, &r) < 0) {
		p->err = -ENOMEM;
		kvswap_close(k);
		return NULL;
	}
	while (!atomic_load(&p->stop)) {
		double ms;

		snprintf(key, sizeof(key), "ping-%u", p->rounds % 16);
		ms = round_trip(k, r, key, p->rounds);
		if (ms < 0) {
			p->err = (int)ms;
			break;
		}
		if (p->rounds++ > 2)	/* the first ones warm up */
			atomic_store(&p->started, true);
		if (!atomic_load(&p->started))
			continue;
		if (atomic_load(&p->phase) == 0) {
			p->base_rounds++;
			p->base_sum_ms += ms;
			if (ms > p->base_max_ms)
				p->base_max_ms = ms;
			continue;
		}
		if (ms > p->max_ms)
			p->max_ms = ms;
		if (atomic_load(&p->phase) == 2 && ms > p->max_ms_release)
			p->max_ms_release = ms;
		p->sum_ms += ms;
	}
	kvswap_close(k);
	return NULL;
}

static void big_region(struct harness *d)
{
	struct pinger p = { .d = d };
	struct kvswap_region *r = NULL;
	uint64_t t0, t1, t2;
	unsigned before;
	struct kvswap *k;
	pthread_t th;
	int ret;

	if (harness_connect(d, &k) < 0) {
		ok(0, "connect for the big region");
		return;
	}
	pthread_create(&th, NULL, pinger_main, &p);
	while (!atomic_load(&p.started) && !p.err)
		usleep(1000);
	/* The same round trips with nothing else going on: this machine's noise. */
	usleep(4000000);
	atomic_store(&p.phase, 1);
	before = p.rounds;
	t0 = mono_ms();
	ret = kvswap_region_create(k, 4ull << 30, &r);
	t1 = mono_ms();
	is_int(ret, 0, "a 4 GiB sparse region registers (%llu ms): %s",
	       (unsigned long long)(t1 - t0), ret ? kvswap_last_error(k) : "ok");
	atomic_store(&p.phase, 2);
	if (r)
		kvswap_region_release(k, r);
	kvswap_close(k);
	usleep(100000);		/* the release's unmap, off the loop */
	t2 = mono_ms();
	atomic_store(&p.stop, true);
	pthread_join(th, NULL);
	is_int(p.err, 0, "another client's put+get round trips all succeed");
	diag("before, for 4 s: %u put+get round trips of 64 KiB, mean %.2f ms, "
	     "max %.2f ms", p.base_rounds,
	     p.base_rounds ? p.base_sum_ms / p.base_rounds : 0.0, p.base_max_ms);
	diag("during the registration and release (%llu ms): %u put+get "
	     "round trips of 64 KiB, mean %.2f ms, max %.2f ms",
	     (unsigned long long)(t2 - t0), p.rounds - before,
	     p.rounds > before ? p.sum_ms / (p.rounds - before) : 0.0, p.max_ms);
	diag("... of which the release (and unmap): max %.2f ms",
	     p.max_ms_release);
	ok(p.rounds - before >= 5, "... %u of them while it registered",
	   p.rounds - before);
	{
		static char log[1 << 20];

		unsigned worst = 0, n = 0;
		const char *q = log;

		/* The daemon logs each step that held its loop 20 ms or more. */
		harness_read_log(d, log, sizeof(log));
		while ((q = strstr(q, "held the loop "))) {
			unsigned v = (unsigned)strtoul(q + 14, NULL, 10);

			worst = v > worst ? v : worst;
			n++;
			q += 14;
		}
		diag("registration steps that held the daemon's loop 20 ms or "
		     "more: %u, the longest %u ms", n, worst);
		ok(worst < 50, "no registration step held the loop 50 ms (its "
		   "own measure)");
	}
	/*
	 * The bound, as the other client sees it. On a machine busy
	 * enough that the same round trips already wait 50 ms with nothing
	 * else going on, the bound says nothing about the daemon: skipped,
	 * saying so (the figures above are reported either way).
	 */
	if (p.base_max_ms < 50)
		ok(p.max_ms < 50, "... none waited 50 ms (max %.2f ms)", p.max_ms);
	else
		skip("the 50 ms bound: this machine's noise alone reached "
		     "%.2f ms before the registration (during: %.2f ms)",
		     p.base_max_ms, p.max_ms);
}

/* --- tenants: a hog and a victim, as real users ----------------------------- */

enum hog { HOG_CONNS, HOG_REGIONS, HOG_BYTES, HOG_INFLIGHT };

struct limits {
	unsigned conns, regions, inflight;
	uint64_t region_bytes;
	bool configured;	/* passed to the daemon (else its defaults) */
};

struct report {
	int code;		/* the hog's refusal (positive errno), or -1 */
	int ok_count;		/* what it got before the refusal */
	double ms;		/* the victim's round trip */
	char msg[400];
};

struct child {
	const char *socket;
	enum hog hog;
	const struct limits *lim;
	int report_fd;		/* write end */
	int release_fd;		/* read end: the hog holds until this closes */
	int release_wr;		/* its write end: the parent's, closed in children */
};

static void report_send(int fd, const struct report *rep)
{
	(void)!write(fd, rep, sizeof(*rep));
}

/* Hello on a raw connection; the error code (positive) and message. */
static int hello_code(int s, char *msg, size_t len)
{
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Hello h = KVSWAP__V1__HELLO__INIT;
	struct raw_result res;
	int code;

	h.has_version = 1;
	h.version = KVS_PROTOCOL_VERSION;
	req.has_id = 1;
	req.id = 1;
	req.body_case = KVSWAP__V1__REQUEST__BODY_HELLO;
	req.hello = &h;
	if (raw_send(s, &req, -1) < 0 || raw_collect(s, 1, 10000, &res) < 0)
		return -1;
	code = res.code < 0 ? -res.code : res.code;
	snprintf(msg, len, "%s", res.message ? res.message : "");
	raw_result_clear(&res);
	return code;
}

/* Registers a memfd of size bytes; the error code (positive) and message. */
static int register_code(int s, uint64_t id, uint64_t size, char *msg,
			 size_t len)
{
	struct raw_result res;
	int memfd, code;

	if (memfd_make(size, F_SEAL_SHRINK | F_SEAL_GROW, &memfd, NULL) < 0)
		return -1;
	code = raw_send_register(s, id, size, memfd);
	close(memfd);
	if (code < 0 || raw_collect(s, id, 20000, &res) < 0)
		return -1;
	code = res.code < 0 ? -res.code : res.code;
	snprintf(msg, len, "%s", res.message ? res.message : "");
	raw_result_clear(&res);
	return code;
}

static int hog_main(void *arg)
{
	const struct child *ch = arg;
	const struct limits *lim = ch->lim;
	struct report rep = { .code = -1 };
	int *socks = calloc(2048, sizeof(int));
	unsigned nsocks = 0;
	char buf;

	close(ch->release_wr);
	switch (ch->hog) {
	case HOG_CONNS:
		/* Idle connections, each past Hello, then one more. */
		for (unsigned i = 0; i <= lim->conns; i++) {
			int s, code;

			if (raw_connect(ch->socket, &s) < 0)
				break;
			socks[nsocks++] = s;
			code = hello_code(s, rep.msg, sizeof(rep.msg));
			if (code) {
				rep.code = code;
				break;
			}
			rep.ok_count++;
		}
		break;
	case HOG_REGIONS:
		/* Tiny regions over as many connections as it takes. */
		for (unsigned i = 0; rep.code < 0 && i <= lim->regions; i++) {
			int code;

			if (i % KVS_MAX_REGIONS == 0) {
				if (raw_open(ch->socket, &socks[nsocks]) < 0)
					break;
				nsocks++;
			}
			code = register_code(socks[nsocks - 1], 10 + i, 4096,
					     rep.msg, sizeof(rep.msg));
			if (code)
				rep.code = code;
			else
				rep.ok_count++;
		}
		break;
	case HOG_BYTES:
		/* 1 MiB, then as much as its whole quota: over by 1 MiB. */
		if (raw_open(ch->socket, &socks[nsocks]) < 0)
			break;
		nsocks++;
		if (register_code(socks[0], 10, 1 * MiB, rep.msg,
				  sizeof(rep.msg)) == 0) {
			rep.ok_count++;
			rep.code = register_code(socks[0], 11, lim->region_bytes,
						 rep.msg, sizeof(rep.msg));
		}
		break;
	case HOG_INFLIGHT: {
		/* Swap-ins of 16 MiB sent at once: more than its quota. */
		struct kvswap_seg_out so = { 0, 16 * MiB };
		struct kvswap_seg_in si = { 0, 16 * MiB };
		unsigned n = lim->inflight * 3;
		struct raw_result res;
		int memfd;

		if (raw_open(ch->socket, &socks[nsocks]) < 0)
			break;
		nsocks++;
		if (memfd_make(32 * MiB, F_SEAL_SHRINK | F_SEAL_GROW, &memfd, NULL) < 0)
			break;
		raw_send_register(socks[0], 2, 32 * MiB, memfd);
		close(memfd);
		if (raw_collect(socks[0], 2, 20000, &res) < 0 || res.code)
			break;
		raw_result_clear(&res);
		raw_send_swap_out(socks[0], 3, "big", 3, 1, &so, 1, NULL, 0, 0);
		if (raw_collect(socks[0], 3, 20000, &res) < 0 || res.code)
			break;
		raw_result_clear(&res);
		for (unsigned i = 0; i < n; i++)
			raw_send_swap_in(socks[0], 100 + i, "big", 3, 1, &si, 1);
		/* Their events interleave: count the final ones. */
		for (unsigned done = 0; done < n;) {
			Kvswap__V1__Event *ev;

			if (raw_recv(socks[0], 20000, &ev) < 0)
				break;
			if (ev->body_case == KVSWAP__V1__EVENT__BODY_SWAP_IN) {
				rep.ok_count++;
				done++;
			} else if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR &&
				   !ev->error->has_segment) {
				if (rep.code < 0) {
					rep.code = (int)ev->error->code;
					snprintf(rep.msg, sizeof(rep.msg), "%s",
						 ev->error->message);
				}
				done++;
			}
			raw_event_free(ev);
		}
		break;
	}
	}
	report_send(ch->report_fd, &rep);
	/* Hold everything until the victim is done. */
	(void)!read(ch->release_fd, &buf, 1);
	for (unsigned i = 0; i < nsocks; i++)
		close(socks[i]);
	free(socks);
	return 0;
}

static int victim_main(void *arg)
{
	const struct child *ch = arg;
	struct report rep = { .code = 0 };
	struct kvswap_region *r;
	struct kvswap *k;
	double ms;

	close(ch->release_wr);
	rep.code = kvswap_connect(ch->socket, &k);
	if (rep.code == 0) {
		rep.code = kvswap_region_create(k, 128 * KiB, &r);
		if (rep.code == 0) {
			ms = round_trip(k, r, "victim", 7);
			if (ms < 0)
				rep.code = (int)ms;
			else
				rep.ms = ms;
		}
		snprintf(rep.msg, sizeof(rep.msg), "%s",
			 rep.code ? kvswap_last_error(k) : "");
		kvswap_close(k);
	} else {
		snprintf(rep.msg, sizeof(rep.msg), "connect: %s",
			 strerror(-rep.code));
	}
	report_send(ch->report_fd, &rep);
	return 0;
}

/* A child's report, waiting 120 s at most (a child that died sends none). */
static int read_report(int fd, struct report *rep)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 120000) != 1)
		return -ETIMEDOUT;
	return read(fd, rep, sizeof(*rep)) == sizeof(*rep) ? 0 : -EIO;
}

static const char *const hog_names[] = {
	"idle connections", "regions over many connections",
	"registered bytes (memlock)", "requests in flight",
};
static const char *const hog_limits[] = {
	"tenant-max-connections", "tenant-max-regions",
	"tenant-max-region-bytes", "tenant-max-inflight",
};

static void exhaust(struct harness *d, enum hog hog, const struct limits *lim,
		    uid_t hog_uid, gid_t hog_gid, uid_t vuid, gid_t vgid)
{
	int rp[2], hp[2];
	struct child ch = { d->socket, hog, lim, -1, -1, -1 };
	struct report hr = { .code = -1 }, vr = { .code = -1 };
	char tenant[64];
	pid_t hpid, vpid;

	int base = fd_count(d->pid);
	uint64_t deadline;

	if (pipe(rp) < 0 || pipe(hp) < 0)
		bail_out("pipe: %s", strerror(errno));
	ch.report_fd = rp[1];
	ch.release_fd = hp[0];
	ch.release_wr = hp[1];
	hpid = users_fork(hog_uid, hog_gid, hog_main, &ch);
	close(hp[0]);
	if (read_report(rp[0], &hr) < 0)
		hr.code = -1;
	vpid = users_fork(vuid, vgid, victim_main, &ch);
	if (read_report(rp[0], &vr) < 0)
		vr.code = -1;
	close(hp[1]);		/* the hog lets go */
	users_wait(vpid);
	users_wait(hpid);
	close(rp[0]);
	close(rp[1]);
	/*
	 * The hog's connections are freed (their fds closed) only once its
	 * regions are released: wait for that before the next hog.
	 */
	deadline = mono_ms() + 10000;
	while (fd_count(d->pid) > base && mono_ms() < deadline)
		usleep(10000);
	snprintf(tenant, sizeof(tenant), "tenant 'uid-%u'", (unsigned)hog_uid);
	is_int(hr.code, EDQUOT, "%s: the hog gets EDQUOT after %d (%s)",
	       hog_names[hog], hr.ok_count, hr.msg);
	ok(strstr(hr.msg, tenant) && strstr(hr.msg, hog_limits[hog]),
	   "... naming %s and %s", tenant, hog_limits[hog]);
	is_int(vr.code, 0, "... another tenant's put+get succeeds %s", vr.msg);
	diag("%s: the other tenant's put+get round trip took %.2f ms",
	     hog_names[hog], vr.ms);
}

static bool daemon_has_option(const char *name)
{
	const char *bin = getenv("KVSWAPD") ? getenv("KVSWAPD") : "build/kvswapd";
	char cmd[512], line[512];
	bool found = false;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s --help 2>&1", bin);
	f = popen(cmd, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, name))
			found = true;
	pclose(f);
	return found;
}

static void tenants(void)
{
	/* Small limits if the daemon takes them (tenant10); else defaults. */
	static const char *const args[] = {
		"--tenant-max-connections", "8", "--tenant-max-regions", "40",
		"--tenant-max-region-bytes", "64M", "--tenant-max-inflight", "4",
		"--hello-timeout", "5000", NULL,
	};
	struct limits lim = { 256, 1024, 4096, 64ull << 30, false };
	struct harness_opts o = { 0 };
	uid_t hu, vu;
	gid_t hg, vg;
	struct harness *d;

	if (!users_can()) {
		skip("tenant exhaustion: not root (needs useradd and setresuid)");
		return;
	}
	if (users_ensure("kvswap-hostile-a", &hu, &hg) < 0 ||
	    users_ensure("kvswap-hostile-b", &vu, &vg) < 0) {
		skip("tenant exhaustion: useradd failed");
		return;
	}
	if (daemon_has_option("tenant-max-inflight")) {
		lim = (struct limits){ 8, 40, 4, 64 << 20, true };
		o.extra_args = args;
	}
	o.store_size = 64 * MiB;
	if (harness_start(&o, &d) < 0)
		bail_out("cannot start kvswapd");
	/* Other users reach the socket: its folder is 0755. */
	chmod(d->socket, 0666);
	diag("limits: %s", lim.configured ? "configured small" : "the defaults");
	exhaust(d, HOG_CONNS, &lim, hu, hg, vu, vg);
	exhaust(d, HOG_REGIONS, &lim, hu, hg, vu, vg);
	exhaust(d, HOG_BYTES, &lim, hu, hg, vu, vg);
	if (lim.configured)
		exhaust(d, HOG_INFLIGHT, &lim, hu, hg, vu, vg);
	else
		skip("requests in flight: the daemon takes no "
		     "--tenant-max-inflight (its default, 4096, is too many to "
		     "hold here)");
	ok(harness_alive(d), "the daemon is alive after the hogs");
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
}

int main(void)
{
	/*
	 * Cache mode: a durable put waits for fdatasync, whose latency on a
	 * shared disk is noise that says nothing about the loop.
	 */
	static const char *const args[] = {
		"--hello-timeout", "400", "--durability", "cache", NULL,
	};
	struct harness_opts o = { .extra_args = args, .store_size = 64 * MiB };
	struct harness *d;

	harness_init("test-hostile");
	if (harness_start(&o, &d) < 0)
		bail_out("cannot start kvswapd");
	hostile(d);
	hello_timeout(d);
	big_region(d);
	is_int(harness_stop(d), 0, "kvswapd exits 0 on SIGTERM");
	harness_free(d);
	tenants();
	fd_limit();	/* last: this process keeps the low limit */
	done_testing();
}
