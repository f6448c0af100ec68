/* SPDX-License-Identifier: MIT */
/* Integration test harness: see harness.h. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <liburing.h>

#include "harness.h"
#include "tap.h"

#define HARNESS_READY_MS	10000
#define HARNESS_STOP_MS		10000
#define RAW_MAX_MESSAGE		65536

static const char *harness_bin;		/* the kvswapd binary */
static char harness_root[PATH_MAX];	/* build/tmp/<name>-<pid> */
static pid_t harness_pid;		/* the test process */
static unsigned harness_instances;
static struct harness *harness_list;	/* daemons not yet freed */

/* snprintf that fails with -ENAMETOOLONG instead of truncating. */
__attribute__((format(printf, 3, 4)))
static int fmt_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The kernel may refuse io_uring (seccomp in containers, or
 * kernel.io_uring_disabled): then nothing here can run, and the program
 * says so instead of failing or passing silently.
 */
static void harness_probe_io_uring(void)
{
	struct io_uring ring;
	int ret;

	ret = io_uring_queue_init(8, &ring, 0);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EACCES)
		skip_all("io_uring refused by the kernel: io_uring_queue_init: %s",
			 strerror(-ret));
	if (ret < 0)
		bail_out("io_uring_queue_init(8) failed: %s", strerror(-ret));
	io_uring_queue_exit(&ring);
}

/* The daemon pins client regions: give it all the memlock we may. */
static void raise_memlock(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
}

/* Whether this process has CAP_IPC_LOCK (then RLIMIT_MEMLOCK is moot). */
static bool have_ipc_lock(void)
{
	char line[256];
	bool have = false;
	FILE *f;

	f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long caps;

		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			have = caps & (1ULL << 14);
	}
	fclose(f);
	return have;
}

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

/* Kills leftover daemons; removes the test folder unless a check failed. */
static void harness_atexit(void)
{
	if (getpid() != harness_pid)
		return;
	while (harness_list)
		harness_free(harness_list);
	if (!*harness_root)
		return;
	if (tap_failures()) {
		diag("test folder kept for inspection: %s", harness_root);
		return;
	}
	if (nftw(harness_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		diag("cannot remove %s: %s", harness_root, strerror(errno));
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

void harness_init(const char *name)
{
	char bindir[PATH_MAX];
	const char *env, *slash;
	struct statfs sfs;
	int ret;

	harness_pid = getpid();
	/* A write to a connection the daemon closed must fail, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	harness_probe_io_uring();

	env = getenv("KVSWAPD");
	harness_bin = env && *env ? env : "build/kvswapd";
	if (access(harness_bin, X_OK) < 0)
		bail_out("daemon binary %s: %s (run make, or set $KVSWAPD)",
			 harness_bin, strerror(errno));

	env = getenv("KVSWAP_TEST_DIR");
	if (env && *env) {
		ret = fmt_path(bindir, sizeof(bindir), "%s", env);
	} else {
		slash = strrchr(harness_bin, '/');
		if (slash)
			ret = fmt_path(bindir, sizeof(bindir), "%.*s/tmp",
				       (int)(slash - harness_bin), harness_bin);
		else
			ret = fmt_path(bindir, sizeof(bindir), "tmp");
	}
	if (ret == 0)
		ret = fmt_path(harness_root, sizeof(harness_root), "%s/%s-%d",
			       bindir, name, (int)harness_pid);
	if (ret < 0)
		bail_out("test folder path too long");
	ret = mkdir_p(harness_root);
	if (ret < 0)
		bail_out("cannot make test folder %s: %s", harness_root,
			 strerror(-ret));
	atexit(harness_atexit);
	if (statfs(harness_root, &sfs) < 0)
		bail_out("statfs %s: %s", harness_root, strerror(errno));
	if (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC)
		bail_out("test folder %s is on tmpfs/ramfs; the store needs a real filesystem with O_DIRECT (set $KVSWAP_TEST_DIR)",
			 harness_root);
	{
		struct rlimit rl;

		if (!have_ipc_lock() && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
		    rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 1024 * MiB)
			diag("RLIMIT_MEMLOCK is %llu bytes without CAP_IPC_LOCK: kvswapd cannot pin the large test regions; run 'ulimit -l unlimited' first (or as root)",
			     (unsigned long long)rl.rlim_max);
	}
	harness_seed();
}

const char *harness_dir(void)
{
	return harness_root;
}

const char *harness_status_str(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)%s",
			 WTERMSIG(status), strsignal(WTERMSIG(status)),
			 WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, size, "wait status 0x%x", status);
	return buf;
}

/* Copies s to out, replacing every "@DIR" by dir. */
static int expand_dir(const char *s, const char *dir, char *out, size_t size)
{
	size_t n = 0, dlen = strlen(dir);

	while (*s) {
		if (strncmp(s, "@DIR", 4) == 0) {
			if (n + dlen >= size)
				return -ENAMETOOLONG;
			memcpy(out + n, dir, dlen);
			n += dlen;
			s += 4;
			continue;
		}
		if (n + 1 >= size)
			return -ENAMETOOLONG;
		out[n++] = *s++;
	}
	out[n] = '\0';
	return 0;
}

/* Binds an abstract datagram socket for sd_notify; returns its fd. */
static int notify_open(unsigned n, char *name, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	snprintf(name, size, "@kvswap-test-%d-%u-%" PRIu64, (int)getpid(), n,
		 now_ms());
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Abstract: sun_path starts with a NUL instead of the '@'. */
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	len = offsetof(struct sockaddr_un, sun_path) + strlen(name);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

/*
 * Makes io_uring_setup() fail with EPERM in this process and what it
 * execs, as a container's seccomp profile does.
 */
static int deny_io_uring(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(f) / sizeof(f[0]),
		.filter = f,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}

const char *const *harness_env;

int harness_spawn(const char *const *args, unsigned flags,
		  struct harness **ret)
{
	char notify[108], argbuf[64][4096];
	char *argv[66];
	struct harness *h;
	unsigned nargs = 0;
	int logfd, ret2;
	pid_t parent = getpid();

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->notify_fd = -1;
	h->n = ++harness_instances;
	ret2 = fmt_path(h->dir, sizeof(h->dir), "%s/d%u", harness_root, h->n);
	if (ret2 == 0)
		ret2 = fmt_path(h->log, sizeof(h->log), "%s/kvswapd.log",
				h->dir);
	if (ret2 == 0)
		ret2 = fmt_path(h->socket, sizeof(h->socket), "%s/kvswapd.sock",
				h->dir);
	if (ret2 < 0) {
		diag("socket path under %s is too long for sun_path", h->dir);
		goto out_free;
	}
	ret2 = mkdir_p(h->dir);
	if (ret2 < 0) {
		diag("mkdir %s: %s", h->dir, strerror(-ret2));
		goto out_free;
	}

	argv[nargs++] = (char *)harness_bin;
	for (; args && *args; args++) {
		if (nargs >= 65) {
			ret2 = -E2BIG;
			goto out_free;
		}
		ret2 = expand_dir(*args, h->dir, argbuf[nargs],
				  sizeof(argbuf[0]));
		if (ret2 < 0)
			goto out_free;
		argv[nargs] = argbuf[nargs];
		nargs++;
	}
	argv[nargs] = NULL;

	h->notify_fd = notify_open(h->n, notify, sizeof(notify));
	if (h->notify_fd < 0) {
		ret2 = h->notify_fd;
		diag("notify socket: %s", strerror(-ret2));
		goto out_free;
	}
	logfd = open(h->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0) {
		ret2 = -errno;
		diag("open %s: %s", h->log, strerror(errno));
		goto out_close_notify;
	}

	h->pid = fork();
	if (h->pid < 0) {
		ret2 = -errno;
		close(logfd);
		goto out_close_notify;
	}
	if (h->pid == 0) {
		sigset_t all;
		int null = open("/dev/null", O_RDONLY);

		/* The daemon must not outlive a crashed test. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (null >= 0)
			dup2(null, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		/* Ignored signals stay ignored across exec: undo ours. */
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		if ((flags & HARNESS_DENY_IO_URING) && deny_io_uring() < 0) {
			fprintf(stderr, "harness: seccomp: %s\n",
				strerror(errno));
			_exit(126);
		}
		raise_memlock();
		setenv("NOTIFY_SOCKET", notify, 1);
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		for (const char *const *e = harness_env; e && *e; e++)
			putenv((char *)*e);
		execv(harness_bin, argv);
		fprintf(stderr, "harness: exec %s: %s\n", harness_bin,
			strerror(errno));
		_exit(127);
	}
	close(logfd);
	h->next = harness_list;
	harness_list = h;
	*ret = h;
	return 0;

out_close_notify:
	close(h->notify_fd);
out_free:
	free(h);
	return ret2;
}

/* Reaps the daemon if it exited. Returns true if it has. */
static bool harness_reap(struct harness *h)
{
	int status;
	pid_t p;

	if (!h->pid)
		return true;
	p = waitpid(h->pid, &status, WNOHANG);
	if (p == h->pid) {
		h->status = status;
		h->pid = 0;
		return true;
	}
	return false;
}

/* Whether one notify datagram holds the line READY=1. */
static bool notify_ready(const char *msg)
{
	const char *p = msg;

	while (p && *p) {
		if (strncmp(p, "READY=1", 7) == 0 &&
		    (p[7] == '\n' || p[7] == '\0'))
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

int harness_wait_ready(struct harness *h, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	char buf[4096];

	for (;;) {
		struct pollfd pfd = { .fd = h->notify_fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 20) > 0) {
			while ((n = recv(h->notify_fd, buf, sizeof(buf) - 1,
					 0)) > 0) {
				buf[n] = '\0';
				if (notify_ready(buf))
					return 0;
			}
		}
		if (harness_reap(h))
			return -ECHILD;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
	}
}

int harness_wait_exit(struct harness *h, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	while (!harness_reap(h)) {
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		usleep(5000);
	}
	return 0;
}

int harness_start(const struct harness_opts *o, struct harness **ret)
{
	static const struct harness_opts defaults;
	char size[32], qd[32], store[4096];
	const char *args[80];
	struct harness *h;
	unsigned nargs = 0, files;
	uint64_t bytes;
	char status[64];
	int r;

	if (!o)
		o = &defaults;
	bytes = o->store_size ? o->store_size : 256 * MiB;
	files = o->store_files ? o->store_files : 1;
	if (bytes % MiB == 0)
		snprintf(size, sizeof(size), "%" PRIu64 "M", bytes / MiB);
	else
		snprintf(size, sizeof(size), "%" PRIu64, bytes);
	store[0] = '\0';
	if (o->store && snprintf(store, sizeof(store), "%s", o->store) >=
			(int)sizeof(store))
		return -ENAMETOOLONG;
	for (unsigned i = 0; !o->store && i < files; i++) {
		size_t len = strlen(store);

		snprintf(store + len, sizeof(store) - len, "%s@DIR/store%u.kvs",
			 i ? "," : "", i);
	}

	args[nargs++] = "--socket";
	args[nargs++] = "@DIR/kvswapd.sock";
	args[nargs++] = "--store";
	args[nargs++] = store;
	args[nargs++] = "--store-size";
	args[nargs++] = size;
	if (o->queue_depth) {
		snprintf(qd, sizeof(qd), "%u", o->queue_depth);
		args[nargs++] = "--queue-depth";
		args[nargs++] = qd;
	}
	if (o->log_level) {
		args[nargs++] = "--log-level";
		args[nargs++] = o->log_level;
	}
	for (const char *const *a = o->extra_args; a && *a; a++) {
		if (nargs >= 78)
			return -E2BIG;
		args[nargs++] = *a;
	}
	args[nargs] = NULL;

	r = harness_spawn(args, 0, &h);
	if (r < 0)
		return r;
	expand_dir(store, h->dir, h->store, sizeof(h->store));

	r = harness_wait_ready(h, HARNESS_READY_MS);
	if (r == -ECHILD) {
		diag("kvswapd exited before READY=1: %s",
		     harness_status_str(h->status, status, sizeof(status)));
		harness_show_log(h, 20);
		goto out_free;
	}
	if (r < 0) {
		diag("kvswapd sent no READY=1 within %d ms", HARNESS_READY_MS);
		harness_show_log(h, 20);
		goto out_free;
	}
	*ret = h;
	return 0;

out_free:
	harness_free(h);
	return r;
}

int harness_stop(struct harness *h)
{
	char status[64];
	int r;

	if (h->pid && kill(h->pid, SIGTERM) < 0)
		diag("kill(SIGTERM): %s", strerror(errno));
	r = harness_wait_exit(h, HARNESS_STOP_MS);
	if (r < 0) {
		diag("kvswapd did not exit within %d ms of SIGTERM; killing it",
		     HARNESS_STOP_MS);
		harness_kill(h);
		harness_show_log(h, 20);
		return -ETIMEDOUT;
	}
	if (!WIFEXITED(h->status) || WEXITSTATUS(h->status) != 0) {
		diag("kvswapd %s", harness_status_str(h->status, status,
						      sizeof(status)));
		harness_show_log(h, 20);
		return -ECHILD;
	}
	return 0;
}

void harness_kill(struct harness *h)
{
	int status;

	if (!h->pid)
		return;
	kill(h->pid, SIGKILL);
	if (waitpid(h->pid, &status, 0) == h->pid)
		h->status = status;
	h->pid = 0;
}

bool harness_alive(struct harness *h)
{
	return !harness_reap(h);
}

void harness_free(struct harness *h)
{
	struct harness **pp;

	if (!h)
		return;
	harness_kill(h);
	for (pp = &harness_list; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	if (h->notify_fd >= 0)
		close(h->notify_fd);
	free(h);
}

ssize_t harness_read_log(const struct harness *h, char *buf, size_t size)
{
	size_t n = 0;
	ssize_t r;
	int fd;

	if (!size)
		return -EINVAL;
	fd = open(h->log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (n + 1 < size) {
		r = read(fd, buf + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

void harness_show_log(const struct harness *h, unsigned max_lines)
{
	static char buf[1 << 20];
	unsigned lines = 0;
	ssize_t n;
	char *p;

	n = harness_read_log(h, buf, sizeof(buf));
	if (n < 0) {
		diag("cannot read %s: %s", h->log, strerror((int)-n));
		return;
	}
	/* Find the start of the last max_lines lines. */
	p = buf + n;
	if (p > buf && p[-1] == '\n')
		p--;
	while (p > buf) {
		if (p[-1] == '\n' && ++lines >= max_lines)
			break;
		p--;
	}
	diag("--- %s (last %u lines) ---", h->log, max_lines);
	for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
		diag("kvswapd: %s", line);
	diag("---");
}

int harness_connect(const struct harness *h, struct kvswap **ret)
{
	int r = kvswap_connect(h->socket, ret);

	if (r < 0)
		diag("kvswap_connect(%s): %s", h->socket, strerror(-r));
	return r;
}

int harness_stat(const struct harness *h, struct kvswap_stat *ret)
{
	struct kvswap *k;
	int r;

	r = harness_connect(h, &k);
	if (r < 0)
		return r;
	r = kvswap_stat(k, ret);
	if (r < 0)
		diag("kvswap_stat: %s: %s", strerror(-r), kvswap_last_error(k));
	kvswap_close(k);
	return r;
}

/* --- data ----------------------------------------------------------------- */

uint64_t harness_seed(void)
{
	static uint64_t seed;
	static bool have;
	const char *env;
	struct timespec ts;

	if (have)
		return seed;
	env = getenv("KVSWAP_TEST_SEED");
	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ULL ^
		       (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
	}
	have = true;
	diag("random seed %" PRIu64 " (KVSWAP_TEST_SEED=%" PRIu64
	     " repeats this run)", seed, seed);
	return seed;
}

void rng_init(struct rng *r, uint64_t seed)
{
	/* splitmix64 of the seed, so that 0 and nearby seeds are fine. */
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	r->s = z ? z : 1;
}

uint64_t rng_next(struct rng *r)
{
	/* xorshift64* */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dULL;
}

uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + rng_next(r) % (hi - lo + 1);
}

void rng_fill(struct rng *r, void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t v;

	while (len >= 8) {
		v = rng_next(r);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		v = rng_next(r);
		memcpy(p, &v, len);
	}
}

void fill_seeded(void *buf, size_t len, uint64_t seed)
{
	struct rng r;

	rng_init(&r, seed);
	rng_fill(&r, buf, len);
}

size_t mem_first_not(const void *buf, size_t len, unsigned char byte)
{
	const unsigned char *p = buf;
	size_t i = 0;

	/* Word at a time: the 64 MiB checks should not dominate the run. */
	if (len >= 8) {
		uint64_t pat;

		memset(&pat, byte, sizeof(pat));
		while (i + 8 <= len) {
			uint64_t v;

			memcpy(&v, p + i, 8);
			if (v != pat)
				break;
			i += 8;
		}
	}
	while (i < len && p[i] == byte)
		i++;
	return i;
}

int memfd_make(size_t size, unsigned seals, int *ret_fd, void **ret_addr)
{
	void *addr = NULL;
	int fd, r;

	if ((seals & F_SEAL_WRITE) && ret_addr)
		return -EINVAL;
	fd = memfd_create("kvswap-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto out_close;
	}
	if (seals && fcntl(fd, F_ADD_SEALS, seals) < 0) {
		r = -errno;
		goto out_close;
	}
	if (ret_addr) {
		addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			    0);
		if (addr == MAP_FAILED) {
			r = -errno;
			goto out_close;
		}
		*ret_addr = addr;
	}
	*ret_fd = fd;
	return 0;

out_close:
	close(fd);
	return r;
}

/* --- raw protocol --------------------------------------------------------- */

int raw_connect(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int raw_send_bytes(int fd, const void *buf, size_t len, int pass_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t n;

	if (pass_fd >= 0) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EIO;
	return 0;
}

int raw_send(int fd, const Kvswap__V1__Request *req, int pass_fd)
{
	size_t len = kvswap__v1__request__get_packed_size(req);
	uint8_t *buf;
	int r;

	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	kvswap__v1__request__pack(req, buf);
	r = raw_send_bytes(fd, buf, len, pass_fd);
	free(buf);
	return r;
}

int raw_recv(int fd, int timeout_ms, Kvswap__V1__Event **ret)
{
	static uint8_t buf[RAW_MAX_MESSAGE + 1];
	char cbuf[CMSG_SPACE(16 * sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	Kvswap__V1__Event *ev;
	struct cmsghdr *c;
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;
	/* The daemon has no reason to send fds: drop any. */
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int *fds = (int *)CMSG_DATA(c);
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++)
				close(fds[i]);
		}
	}
	if (n == 0)
		return -ECONNRESET;
	if ((msg.msg_flags & MSG_TRUNC) || n > RAW_MAX_MESSAGE)
		return -EMSGSIZE;
	ev = kvswap__v1__event__unpack(NULL, (size_t)n, buf);
	if (!ev)
		return -EBADMSG;
	*ret = ev;
	return 0;
}

void raw_event_free(Kvswap__V1__Event *ev)
{
	if (ev)
		kvswap__v1__event__free_unpacked(ev, NULL);
}

const char *raw_event_str(const Kvswap__V1__Event *ev, char *buf, size_t size)
{
	static const char *const names[] = {
		[KVSWAP__V1__EVENT__BODY_HELLO] = "hello",
		[KVSWAP__V1__EVENT__BODY_REGION] = "region",
		[KVSWAP__V1__EVENT__BODY_UNREGISTERED] = "unregistered",
		[KVSWAP__V1__EVENT__BODY_SEGMENT] = "segment",
		[KVSWAP__V1__EVENT__BODY_SWAP_OUT] = "swap_out",
		[KVSWAP__V1__EVENT__BODY_SWAP_IN] = "swap_in",
		[KVSWAP__V1__EVENT__BODY_LOOKUP] = "lookup",
		[KVSWAP__V1__EVENT__BODY_DESCRIBE] = "describe",
		[KVSWAP__V1__EVENT__BODY_DELETE] = "delete",
		[KVSWAP__V1__EVENT__BODY_LIST] = "list",
		[KVSWAP__V1__EVENT__BODY_STAT] = "stat",
	};
	unsigned c = ev->body_case;

	if (c == KVSWAP__V1__EVENT__BODY_ERROR) {
		const char *name = kvswap_errno_name(ev->error->code);

		snprintf(buf, size, "id %" PRIu64 " error %s (%d)%s%s: %s",
			 ev->id, name ? name : "?", ev->error->code,
			 ev->error->has_segment ? " segment " : "",
			 ev->error->has_segment ? "set" : "",
			 ev->error->message ? ev->error->message : "(none)");
	} else if (c < sizeof(names) / sizeof(names[0]) && names[c]) {
		snprintf(buf, size, "id %" PRIu64 " %s", ev->id, names[c]);
	} else {
		snprintf(buf, size, "id %" PRIu64 " body %u", ev->id, c);
	}
	return buf;
}

bool raw_wait_closed(int fd, int timeout_ms, unsigned *ret_events)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	unsigned events = 0;
	bool closed = false;

	for (;;) {
		Kvswap__V1__Event *ev;
		uint64_t now = now_ms();
		int r;

		if (now >= deadline)
			break;
		r = raw_recv(fd, (int)(deadline - now), &ev);
		if (r == -ECONNRESET) {
			closed = true;
			break;
		}
		if (r == -ETIMEDOUT)
			break;
		if (r == 0)
			raw_event_free(ev);
		else if (r != -EBADMSG && r != -EMSGSIZE)
			break;
		events++;
	}
	if (ret_events)
		*ret_events = events;
	return closed;
}

void raw_result_clear(struct raw_result *r)
{
	raw_event_free(r->final);
	free(r->seg_index);
	free(r->seg_code);
	memset(r, 0, sizeof(*r));
}

int raw_collect(int fd, uint64_t id, int timeout_ms, struct raw_result *r)
{
	unsigned cap = 0;
	char desc[512];
	int ret;

	memset(r, 0, sizeof(*r));
	r->message = "";
	for (;;) {
		Kvswap__V1__Event *ev;
		bool seg = false;
		int code = 0;
		uint32_t index = 0;

		ret = raw_recv(fd, timeout_ms, &ev);
		if (ret < 0)
			goto out_clear;
		if (ev->id != id) {
			diag("raw: unexpected event while waiting for id %" PRIu64
			     ": %s", id, raw_event_str(ev, desc, sizeof(desc)));
			r->foreign++;
			raw_event_free(ev);
			continue;
		}
		if (ev->body_case == KVSWAP__V1__EVENT__BODY_SEGMENT) {
			seg = true;
			index = ev->segment->index;
		} else if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR &&
			   ev->error->has_segment) {
			seg = true;
			index = ev->error->segment;
			code = ev->error->code;
		}
		if (!seg) {
			r->final = ev;
			if (ev->body_case == KVSWAP__V1__EVENT__BODY_ERROR) {
				r->code = ev->error->code;
				r->message = ev->error->message ?
					     ev->error->message : "";
			}
			return 0;
		}
		if (r->nseg == cap) {
			unsigned ncap = cap ? cap * 2 : 64;
			uint32_t *ni = realloc(r->seg_index,
					       ncap * sizeof(*ni));
			int *nc;

			if (!ni) {
				raw_event_free(ev);
				ret = -ENOMEM;
				goto out_clear;
			}
			r->seg_index = ni;
			nc = realloc(r->seg_code, ncap * sizeof(*nc));
			if (!nc) {
				raw_event_free(ev);
				ret = -ENOMEM;
				goto out_clear;
			}
			r->seg_code = nc;
			cap = ncap;
		}
		r->seg_index[r->nseg] = index;
		r->seg_code[r->nseg] = code;
		r->nseg++;
		raw_event_free(ev);
	}

out_clear:
	raw_result_clear(r);
	return ret;
}

int raw_hello(int fd, uint32_t version)
{
	Kvswap__V1__Request req = KVSWAP__V1__REQUEST__INIT;
	Kvswap__V1__Hello hello = KVSWAP__V1__HELLO__INIT;
	struct raw_result res;
	int r;

	hello.has_version = 1;
	hello.version = version;
	hello.client_name = (char *)"kvswap-test";
	req.has_id = 1;
	req.id = 1;
	req.body_case = KVSWAP__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	r = raw_send(fd, &req, -1);
	if (r < 0)
		return r;
	r = raw_collect(fd, 1, 10000, &res);
	if (r < 0)
		return r;
	if (res.code)
		r = res.code;
	else if (res.final->body_case != KVSWAP__V1__EVENT__BODY_HELLO)
		r = -EPROTO;
	raw_result_clear(&res);
	return r;
}

int raw_open(const char *path, int *ret_fd)
{
	int fd, r;

	r = raw_connect(path, &fd);
	if (r < 0) {
		diag("raw connect %s: %s", path, strerror(-r));
		return r;
	}
	r = raw_hello(fd, 1);
	if (r != 0) {
		diag("raw hello: %s", r < 0 ? strerror(-r) : strerror(r));
		close(fd);
		return r < 0 ? r : -r;
	}
	*ret_fd = fd;
	return 0;
}

static void raw_req_init(Kvswap__V1__Request *req, uint64_t id)
{
	kvswap__v1__request__init(req);
	req->has_id = 1;
	req->id = id;
}

int raw_send_register(int fd, uint64_t id, uint64_t size, int memfd)
{
	Kvswap__V1__Request req;
	Kvswap__V1__RegisterRegion body = KVSWAP__V1__REGISTER_REGION__INIT;

	raw_req_init(&req, id);
	body.has_size = 1;
	body.size = size;
	req.body_case = KVSWAP__V1__REQUEST__BODY_REGISTER_REGION;
	req.register_region = &body;
	return raw_send(fd, &req, memfd);
}

int raw_send_unregister(int fd, uint64_t id, uint32_t region)
{
	Kvswap__V1__Request req;
	Kvswap__V1__UnregisterRegion body = KVSWAP__V1__UNREGISTER_REGION__INIT;

	raw_req_init(&req, id);
	body.has_region = 1;
	body.region = region;
	req.body_case = KVSWAP__V1__REQUEST__BODY_UNREGISTER_REGION;
	req.unregister_region = &body;
	return raw_send(fd, &req, -1);
}

int raw_send_swap_out(int fd, uint64_t id, const void *key, size_t key_len,
		      uint32_t region, const struct kvswap_seg_out *segs,
		      uint32_t nseg, const void *meta, size_t meta_len,
		      uint32_t flags)
{
	Kvswap__V1__Request req;
	Kvswap__V1__SwapOut body = KVSWAP__V1__SWAP_OUT__INIT;
	Kvswap__V1__SegmentOut *s = NULL, **sp = NULL;
	int r;

	if (nseg) {
		s = calloc(nseg, sizeof(*s));
		sp = calloc(nseg, sizeof(*sp));
		if (!s || !sp) {
			r = -ENOMEM;
			goto out_free;
		}
	}
	for (uint32_t i = 0; i < nseg; i++) {
		kvswap__v1__segment_out__init(&s[i]);
		s[i].has_offset = 1;
		s[i].offset = segs[i].offset;
		s[i].has_length = 1;
		s[i].length = segs[i].length;
		sp[i] = &s[i];
	}
	raw_req_init(&req, id);
	body.has_key = 1;
	body.key.data = (uint8_t *)key;
	body.key.len = key_len;
	body.has_region = 1;
	body.region = region;
	body.n_segments = nseg;
	body.segments = sp;
	if (meta) {
		body.has_metadata = 1;
		body.metadata.data = (uint8_t *)meta;
		body.metadata.len = meta_len;
	}
	body.has_flags = 1;
	body.flags = flags;
	req.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_OUT;
	req.swap_out = &body;
	r = raw_send(fd, &req, -1);
out_free:
	free(sp);
	free(s);
	return r;
}

int raw_send_swap_in(int fd, uint64_t id, const void *key, size_t key_len,
		     uint32_t region, const struct kvswap_seg_in *segs,
		     uint32_t nseg)
{
	Kvswap__V1__Request req;
	Kvswap__V1__SwapIn body = KVSWAP__V1__SWAP_IN__INIT;
	Kvswap__V1__SegmentIn *s = NULL, **sp = NULL;
	int r;

	if (nseg) {
		s = calloc(nseg, sizeof(*s));
		sp = calloc(nseg, sizeof(*sp));
		if (!s || !sp) {
			r = -ENOMEM;
			goto out_free;
		}
	}
	for (uint32_t i = 0; i < nseg; i++) {
		kvswap__v1__segment_in__init(&s[i]);
		s[i].has_index = 1;
		s[i].index = segs[i].index;
		s[i].has_offset = 1;
		s[i].offset = segs[i].offset;
		sp[i] = &s[i];
	}
	raw_req_init(&req, id);
	body.has_key = 1;
	body.key.data = (uint8_t *)key;
	body.key.len = key_len;
	body.has_region = 1;
	body.region = region;
	body.n_segments = nseg;
	body.segments = sp;
	req.body_case = KVSWAP__V1__REQUEST__BODY_SWAP_IN;
	req.swap_in = &body;
	r = raw_send(fd, &req, -1);
out_free:
	free(sp);
	free(s);
	return r;
}

int raw_send_describe(int fd, uint64_t id, const void *key, size_t key_len)
{
	Kvswap__V1__Request req;
	Kvswap__V1__Describe body = KVSWAP__V1__DESCRIBE__INIT;

	raw_req_init(&req, id);
	body.has_key = 1;
	body.key.data = (uint8_t *)key;
	body.key.len = key_len;
	req.body_case = KVSWAP__V1__REQUEST__BODY_DESCRIBE;
	req.describe = &body;
	return raw_send(fd, &req, -1);
}

int raw_send_delete(int fd, uint64_t id, const void *key, size_t key_len)
{
	Kvswap__V1__Request req;
	Kvswap__V1__Delete body = KVSWAP__V1__DELETE__INIT;

	raw_req_init(&req, id);
	body.has_key = 1;
	body.key.data = (uint8_t *)key;
	body.key.len = key_len;
	req.body_case = KVSWAP__V1__REQUEST__BODY_DELETE;
	req.delete_ = &body;
	return raw_send(fd, &req, -1);
}

int raw_send_stat(int fd, uint64_t id)
{
	Kvswap__V1__Request req;
	Kvswap__V1__Stat body = KVSWAP__V1__STAT__INIT;

	raw_req_init(&req, id);
	req.body_case = KVSWAP__V1__REQUEST__BODY_STAT;
	req.stat = &body;
	return raw_send(fd, &req, -1);
}
