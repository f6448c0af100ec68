/* SPDX-License-Identifier: MIT */
/* Real users for tenant tests (users.h). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "users.h"

bool users_can(void)
{
	return geteuid() == 0 && access("/usr/sbin/useradd", X_OK) == 0;
}

int users_ensure(const char *name, uid_t *ret_uid, gid_t *ret_gid)
{
	struct passwd *pw = getpwnam(name);
	int status;
	pid_t pid;

	if (!pw) {
		pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			execl("/usr/sbin/useradd", "useradd", "--system",
			      "--no-create-home", "--shell", "/usr/sbin/nologin",
			      name, (char *)NULL);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
		    (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 9)) {
			diag("useradd %s failed (status %d)", name, status);
			return -EIO;
		}
		pw = getpwnam(name);
		if (!pw) {
			diag("user %s missing after useradd", name);
			return -ENOENT;
		}
	}
	*ret_uid = pw->pw_uid;
	*ret_gid = pw->pw_gid;
	return 0;
}

pid_t users_fork(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid)
		return pid;
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		diag("dropping to uid %u: %s", (unsigned)uid, strerror(errno));
		_exit(2);
	}
	_exit(fn(arg));
}

int users_wait(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}
