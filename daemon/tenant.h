/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_TENANT_H
#define KVSWAP_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Tenants: who a connection's entries, quotas and counters belong to. A
 * KV cache is as private as the prompts it was computed from, so every key
 * lives in its tenant's namespace, and one tenant's use of the daemon
 * (bytes, pins, leases, connections, regions, requests) is capped so that
 * it cannot lock the others out.
 *
 * A connection's tenant comes from its peer credentials (SO_PEERCRED, and
 * SO_PEERGROUPS for its supplementary groups): by default each uid is its
 * own tenant, named "uid-<uid>"; the configuration can map uids and groups
 * to a named tenant so that cooperating servers share one namespace.
 * Tenants are created on first use (a connection, or an entry replayed from
 * the store) and live until the daemon exits: their number is bounded by
 * TENANT_MAX.
 */

/* A tenant's name: [A-Za-z0-9._-], 1 to TENANT_NAME_MAX bytes, no NUL. */
#define TENANT_NAME_MAX	32
/* Tenants known at once (configured, connected or owning entries). */
#define TENANT_MAX	4096

/*
 * Per-tenant limits. 0 never means "unlimited" here: tenants_init() fills
 * each from the configuration or its default.
 */
struct tenant_limits {
	uint64_t bytes;		/* bytes stored */
	uint64_t pinned_bytes;	/* bytes of pinned entries (counted in bytes) */
	uint64_t leased_bytes;	/* bytes of entries under this tenant's leases */
	uint32_t lease_ms;	/* the longest lease */
	uint32_t conns;		/* connections */
	uint32_t regions;	/* registered regions, all its connections */
	uint64_t region_bytes;	/* registered bytes (pinned: RLIMIT_MEMLOCK) */
	uint32_t inflight;	/* requests in flight, all its connections */
};

/*
 * What a tenant uses now. Each counter is kept by the module that owns the
 * resource: catalog.c (bytes, pinned_bytes, leased_bytes, entries), conn.c
 * (conns), region.c (regions, region_bytes), swap.c (inflight).
 */
struct tenant_usage {
	uint64_t bytes;
	uint64_t pinned_bytes;
	uint64_t leased_bytes;
	uint64_t entries;
	uint32_t conns;
	uint32_t regions;
	uint64_t region_bytes;
	uint32_t inflight;
};

struct tenant {
	struct tenant *next;	/* in the table */
	uint32_t id;		/* 0, 1, ... in order of creation; never reused */
	uint8_t name_len;
	char name[TENANT_NAME_MAX + 1];	/* NUL-terminated */
	bool configured;	/* named by the configuration */
	struct tenant_limits lim;
	struct tenant_usage use;
};

/* The table of tenants, and the rules that map peers to them. */
struct tenants {
	struct tenant *list;
	struct tenant **by_id;	/* by_id[id], count of them */
	uint32_t count;
	uint32_t cap;
	struct tenant_limits def;	/* a tenant's limits unless configured */
	gid_t admin_gid;	/* members are admins; (gid_t)-1: none */
	uid_t self_uid;		/* the daemon's own uid: an admin */
	const struct tenant_rule *rules;	/* the configuration's, not owned */
	size_t nrules;
};

/*
 * A configuration rule: peers whose uid is in uids[], or whose primary or
 * supplementary groups meet gids[], belong to the tenant `name`. The first
 * rule that matches wins; uid rules are tried before group rules.
 */
struct tenant_rule {
	char name[TENANT_NAME_MAX + 1];
	uid_t *uids;
	size_t nuids;
	gid_t *gids;
	size_t ngids;
	struct tenant_limits lim;	/* this tenant's limits */
};

/*
 * Sets up an empty table with default limits def, admin group admin_gid
 * ((gid_t)-1 for none) and the rules (the caller keeps them alive until
 * tenants_fini()). The configured tenants are created at once, so that
 * they have ids before any entry is replayed. Returns 0 or -ENOMEM.
 */
int tenants_init(struct tenants *t, const struct tenant_limits *def,
		 gid_t admin_gid, const struct tenant_rule *rules, size_t nrules);
/* Frees every tenant. */
void tenants_fini(struct tenants *t);

/* Whether name[0, len) is a valid tenant name. */
bool tenant_name_valid(const char *name, size_t len);

/* The tenant named name[0, len), or NULL. */
struct tenant *tenants_find(const struct tenants *t, const char *name,
			    size_t len);

/*
 * The tenant named name[0, len), created with the default limits if it does
 * not exist. Returns 0 with *ret set; -EINVAL for an invalid name; -ENOSPC
 * if TENANT_MAX tenants exist; -ENOMEM.
 */
int tenants_get(struct tenants *t, const char *name, size_t len,
		struct tenant **ret);

/* The tenant with this id, or NULL. */
struct tenant *tenants_by_id(const struct tenants *t, uint32_t id);

/*
 * The tenant a peer belongs to (by the rules, else "uid-<uid>") and whether
 * it is an admin (uid 0, the daemon's own uid, or a member of the admin
 * group). groups[]: the peer's supplementary groups (SO_PEERGROUPS).
 * Returns 0 or the error of tenants_get().
 */
int tenants_resolve(struct tenants *t, uid_t uid, gid_t gid,
		    const gid_t *groups, size_t ngroups, struct tenant **ret,
		    bool *ret_admin);

#endif
