/* SPDX-License-Identifier: MIT */
/*
 * The listening socket (conn.h): taken from systemd or created, the
 * multishot accept, each peer's tenant, and the limits that keep any
 * client from breaking the daemon: connections within RLIMIT_NOFILE
 * (refused cleanly before accept could fail), a tenant's connection
 * quota, accept errors paused and logged once per burst, and the Hello
 * deadline of new connections.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "tenant.h"

/* Supplementary groups asked of SO_PEERGROUPS. */
#define NGROUPS_MAX_PEER 64
/*
 * fds kept free below RLIMIT_NOFILE: a packet's SCM_RIGHTS fds (received
 * before they are checked), a region's memfd while it is mapped, the
 * store's and the journal's occasional ones.
 */
#define CONN_FD_RESERVE (2 * CONN_MAX_FDS + 24)
/* Connections of tenants over their quota, kept to be told so. */
#define CONN_MAX_OVER_QUOTA 16
/* The pause after an accept error, doubled per failure up to the max. */
#define ACCEPT_BACKOFF_MS 50
#define ACCEPT_BACKOFF_MAX_MS 2000

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

int conn_listen(const char *path, bool *ret_created, char *err, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char **names = NULL;
	mode_t old;
	int n, fd;

	/* Socket activation: take the fd named "control" (or the only one). */
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		snprintf(err, len, "sd_listen_fds: %s", strerror(-n));
		return n;
	}
	fd = -1;
	for (int i = 0; i < n; i++) {
		if (fd < 0 && (n == 1 || !strcmp(names[i], "control")))
			fd = SD_LISTEN_FDS_START + i;
		else
			close(SD_LISTEN_FDS_START + i);
	}
	strv_free(names);
	if (n > 0 && fd < 0) {
		snprintf(err, len, "systemd passed %d sockets, none named "
			 "\"control\" (FileDescriptorName=control)", n);
		return -EINVAL;
	}
	if (fd >= 0) {
		if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
			snprintf(err, len, "the socket systemd passed is not a "
				 "listening AF_UNIX SOCK_SEQPACKET socket");
			return -EINVAL;
		}
		*ret_created = false;
		return fd;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, len, "socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, len, "socket: %s", strerror(errno));
		return -errno;
	}
	/* A stale socket is replaced; a live one means a daemon runs there. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		snprintf(err, len, "%s: another kvswapd is listening there", path);
		close(fd);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED)
		unlink(path);
	old = umask(0117);
	n = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (n < 0 || listen(fd, 128) < 0) {
		int e = errno;

		snprintf(err, len, "%s %s: %s", n < 0 ? "bind" : "listen", path,
			 strerror(e));
		close(fd);
		return -e;
	}
	*ret_created = true;
	return fd;
}

static void accept_arm(struct conns *t)
{
	struct io_uring_sqe *sqe = loop_sqe(t->loop);

	io_uring_prep_multishot_accept(sqe, t->listen_fd, NULL, NULL,
				       SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_ACCEPT));
	t->accept_armed = true;
}

/*
 * The timer of Hello deadlines and of the accept backoff, armed for the
 * earliest of them; one armed for a later time also fires (its sweep
 * finds nothing due and re-arms).
 */
static void timer_arm(struct conns *t, uint64_t when)
{
	uint64_t now = now_ms(), ms = when > now ? when - now : 1;
	struct io_uring_sqe *sqe;

	if (t->timer_ms && t->timer_ms <= when)
		return;
	t->timer_ts.tv_sec = (long long)(ms / 1000);
	t->timer_ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	sqe = loop_sqe(t->loop);
	io_uring_prep_timeout(sqe, &t->timer_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_CONN_TIMER));
	t->timer_ms = when;
}

/*
 * An accept failed (EMFILE, ENFILE, ENOBUFS, ENOMEM...): the pending
 * connections stay in the listen backlog, and accepting again at once
 * would fail again at once. Pause, doubling the pause while it fails, and
 * log once per burst, never per failure.
 */
static void accept_failed(struct conns *t, int err)
{
	if (!t->backoff_ms) {
		t->backoff_ms = ACCEPT_BACKOFF_MS;
		log_warn("accept: %s (%u clients connected); pausing accepts, "
			 "retrying every %u..%u ms", strerror(err), t->count,
			 ACCEPT_BACKOFF_MS, ACCEPT_BACKOFF_MAX_MS);
	} else if (t->backoff_ms < ACCEPT_BACKOFF_MAX_MS) {
		t->backoff_ms *= 2;
	}
	t->accept_errors++;
	if (t->accept_armed) {
		/* A multishot accept that goes on after an error: stop it. */
		struct io_uring_sqe *sqe = loop_sqe(t->loop);

		io_uring_prep_cancel64(sqe, ud_make(NULL, UD_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_NONE));
	}
	t->timer_ms = 0;	/* the backoff may be earlier than it */
	timer_arm(t, now_ms() + t->backoff_ms);
}

/* Whether conns_timer() should re-arm the accept. */
static bool accept_paused(const struct conns *t)
{
	return t->backoff_ms && !t->accept_armed && !t->quit;
}

/*
 * Refuses a connection the daemon has no room for: one best-effort error
 * packet (the client may see EPIPE instead), then closed; logged once per
 * burst of refusals.
 */
static void refuse_full(struct conns *t, int fd, const char *why)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__Error e = KVSWAP__V1__ERROR__INIT;
	uint8_t buf[256];
	size_t n;

	e.has_code = 1;
	e.code = EUSERS;
	e.message = (char *)why;
	ev.has_id = 1;
	ev.body_case = KVSWAP__V1__EVENT__BODY_ERROR;
	ev.error = &e;
	n = kvswap__v1__event__get_packed_size(&ev);
	if (n <= sizeof(buf)) {
		kvswap__v1__event__pack(&ev, buf);
		(void)!send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	close(fd);
	if (!t->refused_conns++)
		log_warn("refusing clients: %s", why);
}

static void accept_done(struct conns *t, const struct io_uring_cqe *cqe)
{
	struct ucred cred = { 0 };
	socklen_t len = sizeof(cred);
	gid_t groups[NGROUPS_MAX_PEER];
	socklen_t glen = sizeof(groups);
	struct tenant *tn;
	bool admin, over = false;
	struct conn *c;
	int fd = cqe->res, r;
	char why[160];

	if (!(cqe->flags & IORING_CQE_F_MORE))
		t->accept_armed = false;
	if (fd < 0) {
		if (fd != -ECANCELED && !t->quit)
			accept_failed(t, -fd);
		else if (!t->accept_armed && !t->quit && !t->backoff_ms)
			accept_arm(t);
		return;
	}
	if (t->backoff_ms) {
		log_notice("accepting again after %llu failed accepts",
			   (unsigned long long)t->accept_errors);
		t->backoff_ms = 0;
		t->accept_errors = 0;
	}
	if (!t->accept_armed && !t->quit)
		accept_arm(t);
	if (t->quit) {
		close(fd);
		return;
	}
	if (t->count >= t->max_conns) {
		snprintf(why, sizeof(why), "%u clients connected, the daemon's "
			 "limit (%u: RLIMIT_NOFILE and %u connections at most)",
			 t->count, t->max_conns, KVS_MAX_CLIENTS);
		refuse_full(t, fd, why);
		return;
	}
	if (t->refused_conns) {
		log_notice("accepting clients again after refusing %llu",
			   (unsigned long long)t->refused_conns);
		t->refused_conns = 0;
	}
	/*
	 * The peer's tenant, from the kernel's record of who connected:
	 * SO_PEERCRED (uid, primary gid) and SO_PEERGROUPS (supplementary
	 * groups, for group rules and the admin group). A peer with more
	 * groups than we ask for is judged on its uid and primary gid.
	 */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("refusing a client: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0)
		glen = 0;
	r = tenants_resolve(t->tenants, cred.uid, cred.gid, groups,
			    glen / sizeof(gid_t), &tn, &admin);
	if (r < 0) {
		log_warn("refusing a client of uid %u: no tenant: %s",
			 (unsigned)cred.uid, strerror(-r));
		close(fd);
		return;
	}
	/*
	 * Over its tenant's quota: kept until its first request (Hello),
	 * which is answered with the refusal, so that the client sees why;
	 * a few at a time, the rest closed at once.
	 */
	if (tn->use.conns >= tn->lim.conns) {
		if (t->over_quota >= CONN_MAX_OVER_QUOTA) {
			snprintf(why, sizeof(why), "tenant '%s': %u connections, "
				 "its quota (tenant-max-connections)", tn->name,
				 tn->use.conns);
			refuse_full(t, fd, why);
			return;
		}
		over = true;
	}
	c = conn_new(t, fd, cred.pid, cred.uid, tn, admin, over);
	if (c)
		timer_arm(t, c->accepted_ms + t->hello_timeout_ms);
}

/*
 * The timer: connections that have not said Hello in time are closed,
 * the accept is re-armed after its pause; then armed for what is next.
 */
static void conns_timer(struct conns *t)
{
	uint64_t now = now_ms(), next = 0;
	struct conn *c, *cn;
	char msg[96];

	t->timer_ms = 0;
	if (accept_paused(t)) {
		accept_arm(t);
		/* Still failing: its error comes back and pauses again. */
	}
	for (c = t->list; c; c = cn) {
		uint64_t due = c->accepted_ms + t->hello_timeout_ms;

		cn = c->next;
		if (c->state != CONN_NEW)
			continue;
		if (due > now) {
			if (!next || due < next)
				next = due;
			continue;
		}
		snprintf(msg, sizeof(msg), "no hello within %u ms",
			 t->hello_timeout_ms);
		conn_fatal(c, ETIMEDOUT, msg);
	}
	if (next)
		timer_arm(t, next);
}

static void on_cqe(void *ctx, enum ud_type type, void *p,
		   const struct io_uring_cqe *cqe)
{
	(void)p;
	if (type == UD_ACCEPT)
		accept_done(ctx, cqe);
	else
		conns_timer(ctx);
}

static unsigned fds_in_use(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	if (!d)
		return 64;	/* no /proc: a generous guess */
	while (readdir(d))
		n++;
	closedir(d);
	return n > 3 ? n - 3 : 0;	/* ".", ".." and the DIR's own fd */
}

void conns_start(struct conns *t, int fd, uint32_t hello_timeout_ms)
{
	unsigned base = fds_in_use();
	uint64_t want = (uint64_t)base + CONN_FD_RESERVE + KVS_MAX_CLIENTS;
	struct rlimit rl;

	/*
	 * Each connection holds one fd. Room for all of them if the hard
	 * limit allows (the soft limit of 1024 is a default for select()
	 * users, which this is not); otherwise fewer connections, refused
	 * cleanly before accept could fail.
	 */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				getrlimit(RLIMIT_NOFILE, &rl);
		}
	} else {
		rl.rlim_cur = 1024;
	}
	t->max_conns = KVS_MAX_CLIENTS;
	if (rl.rlim_cur < want) {
		uint64_t room = rl.rlim_cur > base + CONN_FD_RESERVE + 1
				? rl.rlim_cur - base - CONN_FD_RESERVE : 1;

		t->max_conns = (uint32_t)room;
		log_warn("RLIMIT_NOFILE %llu with %u fds in use: at most %u "
			 "clients (LimitNOFILE=%llu would allow %u)",
			 (unsigned long long)rl.rlim_cur, base, t->max_conns,
			 (unsigned long long)want, KVS_MAX_CLIENTS);
	}
	t->hello_timeout_ms = hello_timeout_ms;
	t->listen_fd = fd;
	loop_on(t->loop, UD_ACCEPT, on_cqe, t);
	loop_on(t->loop, UD_CONN_TIMER, on_cqe, t);
	accept_arm(t);
}
