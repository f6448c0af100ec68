/* SPDX-License-Identifier: MIT */
/* The kvswapd under test: see daemon.h. */
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
#include <unistd.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <liburing.h>

#include "daemon.h"
#include "data.h"
#include "tap.h"

#define HARNESS_READY_MS	10000
#define HARNESS_STOP_MS		10000

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
		 mono_ms());
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
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
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
		if (mono_ms() >= deadline)
			return -ETIMEDOUT;
	}
}

int harness_wait_exit(struct harness *h, int timeout_ms)
{
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;

	while (!harness_reap(h)) {
		if (mono_ms() >= deadline)
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
