/* SPDX-License-Identifier: MIT */
/* faultfs for the C tests: see faultmount.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data.h"
#include "faultmount.h"

static struct faultmount *live;		/* the mount to undo at exit */
static struct harness *live_daemon;
static pid_t owner_pid;

/* Runs argv with stdout and stderr to `out`; returns its exit status. */
static int run(char *const argv[], const char *out)
{
	int status, fd;
	pid_t p = fork();

	if (p < 0)
		return -errno;
	if (p == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(p, &status, 0) != p)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The first line of `path` that holds `what`, or the last line. */
static void file_line(const char *path, const char *what, char *buf, size_t size)
{
	char line[512];
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (*line)
			snprintf(buf, size, "%s", line);
		if (what && strstr(line, what))
			break;
	}
	fclose(f);
}

static bool reaped(struct faultmount *m, int *status)
{
	if (!m->pid)
		return true;
	if (waitpid(m->pid, status, WNOHANG) == m->pid) {
		m->pid = 0;
		return true;
	}
	return false;
}

static void faultmount_atexit(void)
{
	if (getpid() != owner_pid || !live)
		return;
	if (live_daemon)
		harness_kill(live_daemon);
	faultmount_stop(live);
}

struct faultmount *faultmount_start(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');
	char bin[PATH_MAX], dir[PATH_MAX], why[512];
	struct faultmount *m;
	int status = 0;

	if (slash)
		snprintf(bin, sizeof(bin), "%.*s/faultfs", (int)(slash - argv0), argv0);
	else
		snprintf(bin, sizeof(bin), "build/tests/faultfs");
	if (access(bin, X_OK) < 0)
		skip_all("%s not built: it needs libfuse3 (pkg-config fuse3; "
			 "tools/deps.sh installs it)", bin);
	if (access("/dev/fuse", F_OK) < 0)
		skip_all("/dev/fuse is missing (no FUSE in this kernel or container)");
	if (system("command -v fusermount3 >/dev/null 2>&1") != 0)
		skip_all("fusermount3 is missing (Debian package fuse3)");
	if (!realpath(harness_dir(), dir))
		bail_out("realpath %s: %s", harness_dir(), strerror(errno));
	m = calloc(1, sizeof(*m));
	if (!m)
		bail_out("out of memory");
	if (snprintf(m->back, sizeof(m->back), "%s/back", dir) >= (int)sizeof(m->back) ||
	    snprintf(m->mnt, sizeof(m->mnt), "%s/mnt", dir) >= (int)sizeof(m->mnt) ||
	    snprintf(m->ctl, sizeof(m->ctl), "%s/.faultfs", m->mnt) >= (int)sizeof(m->ctl) ||
	    snprintf(m->log, sizeof(m->log), "%s/faultfs.log", dir) >= (int)sizeof(m->log))
		bail_out("test folder path too long: %s", dir);
	if ((mkdir(m->back, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(m->mnt, 0755) < 0 && errno != EEXIST))
		bail_out("mkdir under %s: %s", dir, strerror(errno));

	owner_pid = getpid();
	m->pid = fork();
	if (m->pid < 0)
		bail_out("fork: %s", strerror(errno));
	if (m->pid == 0) {
		int fd = open(m->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		/* A test that dies takes faultfs along; SIGTERM unmounts. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, m->back, m->mnt, "-f", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 200 && access(m->ctl, F_OK) < 0; i++) {
		if (reaped(m, &status))
			break;
		usleep(25000);
	}
	if (access(m->ctl, F_OK) < 0) {
		if (m->pid) {
			kill(m->pid, SIGTERM);
			waitpid(m->pid, &status, 0);
		}
		file_line(m->log, NULL, why, sizeof(why));
		if (strstr(why, "ermission") || strstr(why, "not permitted") ||
		    strstr(why, "/dev/fuse") || strstr(why, "No such device"))
			skip_all("cannot mount FUSE here: %s", why);
		bail_out("faultfs did not mount on %s: %s", m->mnt,
			 *why ? why : "no message");
	}
	live = m;
	atexit(faultmount_atexit);
	return m;
}

void faultmount_daemon(struct harness *h)
{
	live_daemon = h;
}

int faultmount_cmd(struct faultmount *m, const char *fmt, ...)
{
	char line[1024], why[512];
	va_list ap;
	ssize_t n;
	int fd, len, r = 0;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(line) - 1)
		return -EINVAL;
	line[len++] = '\n';
	fd = open(m->ctl, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		r = -errno;
	else if ((n = write(fd, line, (size_t)len)) != len)
		r = n < 0 ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		file_line(m->ctl, "last_error", why, sizeof(why));
		diag("faultfs refused \"%.*s\": %s (%s)", len - 1, line,
		     strerror(-r), why);
	}
	return r;
}

uint64_t faultmount_stat(struct faultmount *m, const char *key)
{
	char line[512], k[64];
	uint64_t v, ret = UINT64_MAX;
	FILE *f = fopen(m->ctl, "re");

	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %" SCNu64, k, &v) == 2 && !strcmp(k, key))
			ret = v;
	fclose(f);
	return ret;
}

int faultmount_stop(struct faultmount *m)
{
	char out[PATH_MAX + 16], why[512];
	char *um[] = { "fusermount3", "-u", m ? m->mnt : NULL, NULL };
	char *lazy[] = { "fusermount3", "-uz", m ? m->mnt : NULL, NULL };
	int status = 0, r = -1;

	if (!m)
		return 0;
	if (live == m)
		live = NULL;
	snprintf(out, sizeof(out), "%s.umount", m->log);
	/* A dead daemon's ring lets go of its files a moment after it exits. */
	for (int i = 0; i < 200; i++) {
		r = run(um, out);
		file_line(out, NULL, why, sizeof(why));
		if (!r || !strstr(why, "busy"))
			break;
		usleep(25000);
	}
	if (r) {
		diag("fusermount3 -u %s: %s", m->mnt, why);
		run(lazy, out);
		if (m->pid)
			kill(m->pid, SIGTERM);
	}
	if (m->pid && waitpid(m->pid, &status, 0) == m->pid)
		m->pid = 0;
	if (!r && (!WIFEXITED(status) || WEXITSTATUS(status))) {
		file_line(m->log, NULL, why, sizeof(why));
		diag("faultfs exited with status 0x%x: %s", status, why);
		r = -1;
	}
	free(m);
	return r ? -1 : 0;
}
