/* SPDX-License-Identifier: MIT */
/*
 * Tenants with real users (issue 10): kvswapd runs as its own system user,
 * and clients are forked children that become unprivileged users A, B, C
 * (A and C mapped to one tenant by a [tenant] section) and an admin (a
 * member of the admin group). Checks that B cannot list, look up, read,
 * overwrite, delete, pin or lease A's entries or learn that they exist
 * (its replies are those of an absent key), that A and C share entries,
 * that the admin sees and deletes across tenants, that a pinning hog gets
 * EDQUOT naming its quota while another tenant's put+get still succeeds
 * (latency reported), and that entries keep their tenant across a
 * restart.
 *
 * Needs root (useradd, setresuid); skips otherwise. Users and the group
 * it creates are removed at exit; existing ones are reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define STORE_SIZE	(64u << 20)
#define ESZ		(256u << 10)	/* bytes of each of A's and B's entries */
#define HOG_SZ		(1u << 20)
#define ADMIN_GROUP	"kvswap-admin"

struct user {
	const char *name;
	const char *extra;	/* useradd options */
	uid_t uid;
	gid_t gid;
	bool made;
};

static struct user u_daemon = { "kvt-daemon", "--system", 0, 0, false };
static struct user u_a = { "kvt-a", "", 0, 0, false };
static struct user u_b = { "kvt-b", "", 0, 0, false };
static struct user u_c = { "kvt-c", "", 0, 0, false };
static struct user u_adm = { "kvt-admin", "-G " ADMIN_GROUP, 0, 0, false };
static bool group_made;

/* What a child reports: numbers and strings, in memory shared with us. */
struct out {
	long long v[32];
	char s[8][512];
};

static struct out *out;

static struct {
	pid_t pid;
	char dir[4096];
	char sock[108];
	char store[4200];
	char conf[4200];
	char log[4200];
} dmn;

__attribute__((format(printf, 1, 2)))
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static bool user_fill(struct user *u)
{
	struct passwd *pw = getpwnam(u->name);

	if (!pw)
		return false;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return true;
}

static void user_make(struct user *u)
{
	if (!user_fill(u)) {
		if (sh("useradd --no-create-home --shell /usr/sbin/nologin %s %s",
		       u->extra, u->name) != 0 || !user_fill(u))
			bail_out("useradd %s failed", u->name);
		u->made = true;
	}
}

static void cleanup(void)
{
	struct user *all[] = { &u_daemon, &u_a, &u_b, &u_c, &u_adm };

	if (dmn.pid > 0) {
		kill(dmn.pid, SIGKILL);
		waitpid(dmn.pid, NULL, 0);
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i]->made)
			sh("userdel %s", all[i]->name);
	if (group_made)
		sh("groupdel " ADMIN_GROUP);
}

static void show_log(void)
{
	char buf[4096];
	int fd = open(dmn.log, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	off_t end;

	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	lseek(fd, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0,
	      SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		diag("kvswapd's log (end):\n%s", buf);
	}
}

/* Drops every privilege to u's: groups, gid, uid. */
static void become(const struct user *u)
{
	if (initgroups(u->name, u->gid) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
	    setresuid(u->uid, u->uid, u->uid) < 0)
		_exit(99);
}

/* kvswapd as the daemon user; returns once its socket answers. */
static int daemon_start(void)
{
	const char *bin = getenv("KVSWAPD") ? getenv("KVSWAPD") : "build/kvswapd";
	struct rlimit inf = { RLIM_INFINITY, RLIM_INFINITY };
	struct kvswap *k;

	dmn.pid = fork();
	if (dmn.pid < 0)
		return -errno;
	if (dmn.pid == 0) {
		int fd = open(dmn.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			      0644);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(98);
		/* Registered buffers count against RLIMIT_MEMLOCK. */
		setrlimit(RLIMIT_MEMLOCK, &inf);
		become(&u_daemon);
		execl(bin, bin, "--config", dmn.conf, "--socket", dmn.sock,
		      "--store", dmn.store, "--store-size", "64M", NULL);
		_exit(97);
	}
	for (int i = 0; i < 1000; i++) {
		if (waitpid(dmn.pid, NULL, WNOHANG) == dmn.pid) {
			dmn.pid = 0;
			show_log();
			return -ECHILD;
		}
		if (kvswap_connect(dmn.sock, &k) == 0) {
			kvswap_close(k);
			/* The socket is 0660 and the daemon user's: open it up. */
			return chmod(dmn.sock, 0666) < 0 ? -errno : 0;
		}
		usleep(10000);
	}
	show_log();
	return -ETIMEDOUT;
}

/* SIGTERM; returns its exit status (-1: did not exit in 20 s). */
static int daemon_stop(void)
{
	int status;

	kill(dmn.pid, SIGTERM);
	for (int i = 0; i < 2000; i++) {
		if (waitpid(dmn.pid, &status, WNOHANG) == dmn.pid) {
			dmn.pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		}
		usleep(10000);
	}
	return -1;
}

typedef void role_fn(struct kvswap *k, struct out *o);

/* Runs fn as user u, connected to the daemon; its exit status. */
static int as_user(const struct user *u, role_fn *fn)
{
	struct kvswap *k;
	int status, r;
	pid_t pid;

	memset(out, 0, sizeof(*out));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bail_out("fork: %s", strerror(errno));
	if (pid == 0) {
		become(u);
		r = kvswap_connect(dmn.sock, &k);
		if (r < 0) {
			snprintf(out->s[7], sizeof(out->s[7]), "connect as %s: %s",
				 u->name, strerror(-r));
			_exit(2);
		}
		fn(k, out);
		kvswap_close(k);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		bail_out("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		diag("%s's child: %s", u->name, out->s[7]);
		return -1;
	}
	return 0;
}

/* --- what the children do ------------------------------------------------ */

/* Stores key: `size` bytes of `fill`, with flags. 0 or -errno. */
static int put(struct kvswap *k, const char *key, uint8_t fill, size_t size,
	       uint32_t flags)
{
	struct kvswap_seg_out seg = { 0, size };
	struct kvswap_region *r;
	struct kvswap_req *q;
	int err;

	err = kvswap_region_create(k, size, &r);
	if (err < 0)
		return err;
	memset(kvswap_region_addr(r), fill, size);
	err = kvswap_swap_out(k, key, strlen(key), r, &seg, 1, NULL, 0, flags,
			      &q);
	if (err == 0) {
		err = kvswap_wait(k, q, 30000);
		kvswap_req_free(q);
	}
	kvswap_region_release(k, r);
	return err;
}

/*
 * Reads key's first segment; 0 and *ret_ok whether every byte is `fill`,
 * or -errno.
 */
static int get(struct kvswap *k, const char *key, uint8_t fill, size_t size,
	       long long *ret_ok)
{
	struct kvswap_seg_in seg = { 0, 0 };
	struct kvswap_region *r;
	const uint8_t *p;
	int err;

	err = kvswap_region_create(k, size, &r);
	if (err < 0)
		return err;
	memset(kvswap_region_addr(r), fill ^ 0xff, size);
	err = kvswap_get(k, key, strlen(key), r, &seg, 1);
	if (err == 0) {
		p = kvswap_region_addr(r);
		*ret_ok = 1;
		for (size_t i = 0; i < size; i++)
			if (p[i] != fill)
				*ret_ok = 0;
	}
	kvswap_region_release(k, r);
	return err;
}

/* Entries listed in tenant's namespace (NULL: our own), or -errno. */
static long long count(struct kvswap *k, const char *tenant)
{
	uint64_t cursor = 0;
	long long n = 0;

	do {
		struct kvswap_entry *e;
		uint32_t got;
		int r = kvswap_list_tenant(k, tenant, &cursor, 100, &e, &got);

		if (r < 0)
			return r;
		n += got;
		kvswap_entries_free(e, got);
	} while (cursor);
	return n;
}

static void err_of(struct kvswap *k, struct out *o, int i)
{
	snprintf(o->s[i], sizeof(o->s[i]), "%s", kvswap_last_error(k));
}

static void a_writes(struct kvswap *k, struct out *o)
{
	o->v[0] = !strcmp(kvswap_tenant(k), "shared");
	o->v[1] = put(k, "secret-1", 0xa1, ESZ, 0);
	o->v[2] = put(k, "secret-2", 0xa2, ESZ, KVSWAP_PINNED);
	o->v[3] = kvswap_is_admin(k);
	o->v[4] = count(k, NULL);
}

static void b_probes(struct kvswap *k, struct out *o)
{
	const void *keys[1] = { "secret-1" };
	size_t lens[1] = { 8 };
	struct kvswap_entry e;
	struct kvswap_tenant_stat t;
	struct kvswap_stat s;
	long long same = 0;

	snprintf(o->s[0], sizeof(o->s[0]), "%s", kvswap_tenant(k));
	o->v[0] = count(k, NULL);
	o->v[1] = kvswap_lookup(k, keys, lens, 1, NULL);
	o->v[2] = kvswap_lookup_lease(k, keys, lens, 1, 60000, NULL);
	o->v[3] = kvswap_describe(k, "secret-1", 8, &e);
	err_of(k, o, 1);
	o->v[4] = kvswap_describe(k, "no-such-1", 9, &e);
	err_of(k, o, 2);
	o->v[5] = get(k, "secret-1", 0xa1, ESZ, &same);
	err_of(k, o, 3);
	o->v[6] = get(k, "no-such-1", 0xa1, ESZ, &same);
	err_of(k, o, 4);
	o->v[7] = kvswap_delete(k, "secret-1", 8);
	err_of(k, o, 5);
	o->v[8] = kvswap_delete(k, "no-such-1", 9);
	err_of(k, o, 6);
	/* Its own entries under A's names: its namespace, not A's. */
	o->v[9] = put(k, "secret-1", 0xb1, ESZ, 0);
	o->v[10] = put(k, "secret-2", 0xb2, ESZ, KVSWAP_PINNED);
	o->v[11] = count(k, "shared");
	o->v[12] = kvswap_tenant_stat(k, "shared", &t);
	o->v[13] = kvswap_delete_tenant(k, "shared", "secret-1", 8);
	o->v[14] = kvswap_stat(k, &s) == 0 ? (long long)s.entries : -1;
	o->v[15] = kvswap_stat(k, &s) == 0 ? (long long)s.requests : -1;
	o->v[16] = kvswap_tenant_stat(k, NULL, &t) == 0 ? (long long)t.entries : -1;
	o->v[17] = (long long)t.pinned;
	o->v[18] = same;
}

static void a_checks(struct kvswap *k, struct out *o)
{
	struct kvswap_tenant_stat t;

	o->v[0] = get(k, "secret-1", 0xa1, ESZ, &o->v[1]);
	o->v[2] = get(k, "secret-2", 0xa2, ESZ, &o->v[3]);
	o->v[4] = kvswap_tenant_stat(k, NULL, &t);
	o->v[5] = (long long)t.pinned;
	o->v[6] = (long long)t.entries;
	o->v[7] = (long long)t.leased;
}

static void c_shares(struct kvswap *k, struct out *o)
{
	o->v[0] = !strcmp(kvswap_tenant(k), "shared");
	o->v[1] = get(k, "secret-1", 0xa1, ESZ, &o->v[2]);
	o->v[3] = count(k, NULL);
	o->v[4] = put(k, "from-c", 0xc1, ESZ, 0);
}

static void a_reads_c(struct kvswap *k, struct out *o)
{
	o->v[0] = get(k, "from-c", 0xc1, ESZ, &o->v[1]);
}

static char b_tenant[40];

static void admin_sees(struct kvswap *k, struct out *o)
{
	struct kvswap_tenant_stat t;
	struct kvswap_stat s;

	o->v[0] = kvswap_is_admin(k);
	o->v[1] = count(k, "shared");
	o->v[2] = count(k, b_tenant);
	o->v[3] = kvswap_tenant_stat(k, "shared", &t) == 0 ? (long long)t.entries : -1;
	o->v[4] = kvswap_tenant_stat(k, b_tenant, &t) == 0 ? (long long)t.entries : -1;
	o->v[5] = count(k, NULL);
	o->v[6] = kvswap_delete_tenant(k, b_tenant, "secret-1", 8);
	o->v[7] = count(k, b_tenant);
	o->v[8] = kvswap_tenant_stat(k, "no-such-tenant", &t);
	o->v[9] = kvswap_stat(k, &s) == 0 ? (long long)s.entries : -1;
}

/* Leases 8 entries of its own: the leased-bytes quota (1 MiB) stops it. */
static void b_leases(struct kvswap *k, struct out *o)
{
	const void *keys[8];
	size_t lens[8];
	char names[8][24];
	struct kvswap_tenant_stat t0, t1;

	o->v[0] = kvswap_tenant_stat(k, NULL, &t0);
	for (int i = 0; i < 8; i++) {
		snprintf(names[i], sizeof(names[i]), "lease-%d", i);
		keys[i] = names[i];
		lens[i] = strlen(names[i]);
		if (put(k, names[i], 0x11, ESZ, 0) < 0)
			o->v[1]++;
	}
	o->v[2] = kvswap_lookup_lease(k, keys, lens, 8, 60000, NULL);
	o->v[3] = kvswap_tenant_stat(k, NULL, &t1);
	o->v[4] = (long long)t1.leased;
	o->v[5] = (long long)t1.max_leased;
	o->v[6] = (long long)(t1.quota_refusals - t0.quota_refusals);
	o->v[7] = (long long)t1.max_lease_ms;
}

/* Pins until refused, then fills the store twice over, unpinned. */
static void b_hogs(struct kvswap *k, struct out *o)
{
	struct kvswap_tenant_stat t;
	char key[32];
	int r = 0;

	for (o->v[0] = 0; o->v[0] < 1000; o->v[0]++) {
		snprintf(key, sizeof(key), "pin-%lld", o->v[0]);
		r = put(k, key, 0x5a, HOG_SZ, KVSWAP_PINNED);
		if (r < 0)
			break;
	}
	o->v[1] = r;
	err_of(k, o, 0);
	for (o->v[3] = 0; o->v[3] < 2 * STORE_SIZE / HOG_SZ; o->v[3]++) {
		snprintf(key, sizeof(key), "fill-%lld", o->v[3]);
		if (put(k, key, 0x6b, HOG_SZ, 0) < 0) {
			o->v[2]++;
			err_of(k, o, 1);
		}
	}
	o->v[4] = kvswap_tenant_stat(k, NULL, &t);
	o->v[5] = (long long)t.evictions;
	o->v[6] = (long long)t.pinned;
	o->v[7] = (long long)t.max_pinned;
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *victim_key;

static void a_victim(struct kvswap *k, struct out *o)
{
	const void *keys[1] = { "secret-1" };
	size_t lens[1] = { 8 };
	long long t0 = now_us();

	o->v[0] = put(k, victim_key, 0x77, HOG_SZ, 0);
	err_of(k, o, 0);
	o->v[1] = get(k, victim_key, 0x77, HOG_SZ, &o->v[2]);
	o->v[3] = now_us() - t0;
	o->v[4] = kvswap_lookup(k, keys, lens, 1, NULL);
}

static void a_after_restart(struct kvswap *k, struct out *o)
{
	struct kvswap_tenant_stat t;

	o->v[0] = get(k, "secret-1", 0xa1, ESZ, &o->v[1]);
	o->v[2] = get(k, "from-c", 0xc1, ESZ, &o->v[3]);
	o->v[4] = kvswap_tenant_stat(k, NULL, &t);
	o->v[5] = (long long)t.pinned;
}

static void b_after_restart(struct kvswap *k, struct out *o)
{
	struct kvswap_tenant_stat t;
	struct kvswap_entry e;

	o->v[0] = kvswap_describe(k, "secret-1", 8, &e);
	o->v[1] = get(k, "secret-2", 0xb2, ESZ, &o->v[2]);
	o->v[3] = kvswap_tenant_stat(k, NULL, &t);
	o->v[4] = (long long)t.pinned;
}

/* --- the test -------------------------------------------------------------- */

static void setup(void)
{
	FILE *f;

	if (!getgrnam(ADMIN_GROUP)) {
		if (sh("groupadd " ADMIN_GROUP) != 0)
			bail_out("groupadd " ADMIN_GROUP " failed");
		group_made = true;
	}
	user_make(&u_daemon);
	user_make(&u_a);
	user_make(&u_b);
	user_make(&u_c);
	user_make(&u_adm);
	if (sh("usermod -a -G " ADMIN_GROUP " %s", u_adm.name) != 0)
		bail_out("usermod -G " ADMIN_GROUP " %s failed", u_adm.name);
	snprintf(b_tenant, sizeof(b_tenant), "uid-%u", (unsigned)u_b.uid);
	snprintf(dmn.dir, sizeof(dmn.dir), "%s/d", harness_dir());
	if (snprintf(dmn.sock, sizeof(dmn.sock), "%s/sock", dmn.dir) >=
	    (int)sizeof(dmn.sock))
		bail_out("%s/sock: too long for a socket path", dmn.dir);
	snprintf(dmn.store, sizeof(dmn.store), "%s/store.kvs", dmn.dir);
	snprintf(dmn.conf, sizeof(dmn.conf), "%s/kvswapd.conf", dmn.dir);
	snprintf(dmn.log, sizeof(dmn.log), "%s/kvswapd.log", harness_dir());
	if (mkdir(dmn.dir, 0755) < 0 ||
	    chown(dmn.dir, u_daemon.uid, u_daemon.gid) < 0)
		bail_out("%s: %s", dmn.dir, strerror(errno));
	/* The daemon user needs to reach its folder; clients its socket. */
	chmod(harness_dir(), 0755);
	f = fopen(dmn.conf, "we");
	if (!f)
		bail_out("%s: %s", dmn.conf, strerror(errno));
	fprintf(f, "[kvswapd]\nadmin-group = " ADMIN_GROUP "\n"
		"tenant-max-pinned = 25%%\ntenant-max-leased = 1M\n"
		"log-level = info\n\n[tenant shared]\nusers = %s, %s\n"
		"tenant-max-leased = 50%%\n", u_a.name, u_c.name);
	fclose(f);
	out = mmap(NULL, sizeof(*out), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (out == MAP_FAILED)
		bail_out("mmap: %s", strerror(errno));
}

static void isolation(void)
{
	if (as_user(&u_a, a_writes) < 0)
		bail_out("user A's child failed");
	ok(out->v[0], "A is tenant 'shared' ([tenant shared] users = kvt-a, kvt-c)");
	is_int(out->v[1], 0, "A stores secret-1");
	is_int(out->v[2], 0, "A stores secret-2, pinned");
	ok(!out->v[3], "A is no admin");
	is_int(out->v[4], 2, "A lists its 2 entries");

	if (as_user(&u_b, b_probes) < 0)
		bail_out("user B's child failed");
	is_str(out->s[0], b_tenant, "B is its own tenant, uid-<uid>");
	is_int(out->v[0], 0, "B lists nothing of A's");
	is_int(out->v[1], 0, "B's Lookup of secret-1: not present");
	is_int(out->v[2], 0, "B's leasing Lookup of secret-1: not present, "
	       "nothing leased");
	is_int(out->v[3], -ENOENT, "B's Describe of secret-1: ENOENT");
	is_str(out->s[1], out->s[2], "... the very reply an absent key gets");
	is_int(out->v[5], -ENOENT, "B's SwapIn of secret-1: ENOENT");
	is_str(out->s[3], out->s[4], "... the very reply an absent key gets");
	is_int(out->v[7], -ENOENT, "B's Delete of secret-1: ENOENT");
	is_str(out->s[5], out->s[6], "... the very reply an absent key gets");
	is_int(out->v[6], -ENOENT, "(an absent key: ENOENT too)");
	is_int(out->v[9], 0, "B's SwapOut under secret-1 succeeds, in its own "
	       "namespace");
	is_int(out->v[10], 0, "B's pinned SwapOut under secret-2 (A's pinned "
	       "key) too");
	is_int(out->v[11], -EPERM, "B may not list tenant 'shared': EPERM");
	is_int(out->v[12], -EPERM, "B may not stat tenant 'shared': EPERM");
	is_int(out->v[13], -EPERM, "B may not delete in tenant 'shared': EPERM");
	is_int(out->v[14], 2, "B's Stat: entries are its own 2, not the "
	       "daemon's 4");
	is_int(out->v[15], 0, "B's Stat: no daemon-wide request count");
	is_int(out->v[16], 2, "B's tenant Stat: 2 entries");
	is_int(out->v[17], ESZ, "B's tenant Stat: its own pin only");

	if (as_user(&u_a, a_checks) < 0)
		bail_out("user A's child failed");
	ok(out->v[0] == 0 && out->v[1], "A reads secret-1 back, its own bytes "
	   "(B's overwrite went to B's namespace)");
	ok(out->v[2] == 0 && out->v[3], "A reads secret-2 back, its own bytes");
	is_int(out->v[5], ESZ, "A's secret-2 is still pinned (tenant pinned "
	       "bytes %lld)", out->v[5]);
	is_int(out->v[6], 2, "A still has 2 entries");
	is_int(out->v[7], 0, "nothing of A's is leased (B's leasing Lookup "
	       "took nothing)");

	if (as_user(&u_c, c_shares) < 0)
		bail_out("user C's child failed");
	ok(out->v[0], "C is tenant 'shared' too");
	ok(out->v[1] == 0 && out->v[2], "C reads A's secret-1, byte-exact");
	is_int(out->v[3], 2, "C lists A's 2 entries");
	is_int(out->v[4], 0, "C stores from-c");
	if (as_user(&u_a, a_reads_c) < 0)
		bail_out("user A's child failed");
	ok(out->v[0] == 0 && out->v[1], "A reads C's from-c, byte-exact");

	if (as_user(&u_adm, admin_sees) < 0)
		bail_out("the admin's child failed");
	ok(out->v[0], "the member of " ADMIN_GROUP " is an admin");
	is_int(out->v[1], 3, "the admin lists tenant 'shared': 3 entries");
	is_int(out->v[2], 2, "the admin lists B's tenant: 2 entries");
	is_int(out->v[3], 3, "the admin's Stat of tenant 'shared': 3 entries");
	is_int(out->v[4], 2, "the admin's Stat of B's tenant: 2 entries");
	is_int(out->v[5], 0, "the admin's own namespace is empty");
	is_int(out->v[6], 0, "the admin deletes B's secret-1");
	is_int(out->v[7], 1, "B's tenant has 1 entry left");
	is_int(out->v[8], -ENOENT, "Stat of an unknown tenant: ENOENT");
	is_int(out->v[9], 4, "the admin's Stat: all 4 entries of the daemon");
}

static void quotas(void)
{
	long long base;
	char want[96];

	if (as_user(&u_b, b_leases) < 0)
		bail_out("user B's child failed");
	is_int(out->v[1], 0, "B stores 8 entries of 256 KiB");
	is_int(out->v[2], 8, "B's Lookup finds all 8 (the Lookup succeeds)");
	is_int(out->v[5], 1 << 20, "B's leased-bytes quota is 1 MiB "
	       "(tenant-max-leased = 1M)");
	is_int(out->v[4], 1 << 20, "B leases 4 of them, 1 MiB: the 5th would "
	       "pass the quota");
	is_int(out->v[6], 1, "one quota refusal counted");
	is_int(out->v[7], 60000, "the longest lease is tenant-max-lease-ms");

	/* The reference: A's round trip before B hogs, in this run. */
	victim_key = "baseline";
	if (as_user(&u_a, a_victim) < 0)
		bail_out("user A's child failed");
	ok(out->v[0] == 0 && out->v[1] == 0 && out->v[2], "A's put+get of 1 MiB "
	   "before B hogs: byte-exact");
	base = out->v[3];
	if (as_user(&u_b, b_hogs) < 0)
		bail_out("user B's child failed");
	diag("B pinned %lld entries of 1 MiB before: %s", out->v[0], out->s[0]);
	is_int(out->v[1], -EDQUOT, "B's pinning ends with EDQUOT");
	snprintf(want, sizeof(want), "tenant '%s': pinned bytes", b_tenant);
	ok(strstr(out->s[0], want) && strstr(out->s[0], "tenant-max-pinned"),
	   "the error names the tenant, the quota and its option");
	ok(out->v[6] <= out->v[7] && out->v[7] > 0,
	   "B's pinned bytes %lld stay within its quota %lld", out->v[6],
	   out->v[7]);
	is_int(out->v[2], 0, "B's %lld unpinned puts (twice the store) all "
	       "succeed, evicting", out->v[3]);
	if (out->v[2])
		diag("B's last refusal: %s", out->s[1]);
	ok(out->v[5] > 0, "B's entries were evicted (%lld)", out->v[5]);

	victim_key = "victim";
	if (as_user(&u_a, a_victim) < 0)
		bail_out("user A's child failed");
	if (!is_int(out->v[0], 0, "with the store full of B's entries, A's put "
		    "of 1 MiB succeeds"))
		diag("%s", out->s[0]);
	ok(out->v[1] == 0 && out->v[2], "and A's get returns it byte-exact");
	diag("A's put+get round trip of 1 MiB (regions, put, get; durable): %lld "
	     "us with the store full of B's entries, %lld us before B hogged "
	     "(ratio %.2f; kvswapd as %s, 64 MiB store)", out->v[3], base,
	     base ? (double)out->v[3] / (double)base : 0.0, u_daemon.name);
	is_int(out->v[4], 1, "A's older secret-1 is still stored (eviction "
	       "took from B, the tenant using the most)");
}

static void restart(void)
{
	is_int(daemon_stop(), 0, "kvswapd exits 0 on SIGTERM");
	if (!is_int(daemon_start(), 0, "kvswapd restarts on its store"))
		bail_out("cannot restart kvswapd");
	if (as_user(&u_a, a_after_restart) < 0)
		bail_out("user A's child failed");
	ok(out->v[0] == 0 && out->v[1], "after the restart A reads secret-1, "
	   "byte-exact");
	ok(out->v[2] == 0 && out->v[3], "and C's from-c, in the same tenant");
	is_int(out->v[5], ESZ, "A's tenant's pinned bytes are counted again");
	if (as_user(&u_b, b_after_restart) < 0)
		bail_out("user B's child failed");
	is_int(out->v[0], -ENOENT, "B's secret-1, deleted by the admin, stays "
	       "gone; A's is not B's");
	ok(out->v[1] == 0 && out->v[2], "B reads its own pinned secret-2, its "
	   "bytes (not A's)");
	ok(out->v[4] > 0, "B's pinned bytes (%lld) are counted again",
	   out->v[4]);
}

/* kvswapd --check on the stopped daemon's store: a line per tenant. */
static void check_report(void)
{
	const char *bin = getenv("KVSWAPD") ? getenv("KVSWAPD") : "build/kvswapd";
	char cmd[8400], buf[65536], want[96];
	size_t n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s --check --store %s 2>&1", bin, dmn.store);
	p = popen(cmd, "r");
	if (!p)
		bail_out("popen: %s", strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	is_int(pclose(p), 0, "kvswapd --check finds the store consistent");
	ok(strstr(buf, "tenant 'shared': 5 entries") != NULL,
	   "--check reports tenant 'shared': 5 entries");
	snprintf(want, sizeof(want), "tenant '%s': ", b_tenant);
	if (!ok(strstr(buf, want) != NULL, "--check reports B's tenant"))
		diag("%s", buf);
}

int main(void)
{
	if (geteuid() != 0)
		skip_all("needs root: it makes users (useradd) and runs clients "
			 "and kvswapd as them");
	harness_init("test-tenant");
	atexit(cleanup);
	setup();
	if (!is_int(daemon_start(), 0, "kvswapd starts as user %s",
		    u_daemon.name))
		bail_out("cannot start kvswapd");
	isolation();
	quotas();
	restart();
	is_int(daemon_stop(), 0, "kvswapd exits 0 on SIGTERM at the end");
	check_report();
	done_testing();
}
