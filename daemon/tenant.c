/* SPDX-License-Identifier: MIT */
/*
 * The tenant table: names, ids, limits and usage counters, and the mapping
 * from a peer's credentials to its tenant. What a tenant may do is decided
 * by the modules that own each resource; this file only keeps the table.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tenant.h"

bool tenant_name_valid(const char *name, size_t len)
{
	if (len < 1 || len > TENANT_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return false;
	}
	return true;
}

struct tenant *tenants_find(const struct tenants *t, const char *name,
			    size_t len)
{
	/*
	 * A list: tenants are few (one per service user) and looked up on
	 * connect and on replay, never per segment.
	 */
	for (struct tenant *tn = t->list; tn; tn = tn->next)
		if (tn->name_len == len && !memcmp(tn->name, name, len))
			return tn;
	return NULL;
}

struct tenant *tenants_by_id(const struct tenants *t, uint32_t id)
{
	return id < t->count ? t->by_id[id] : NULL;
}

static const struct tenant_rule *rule_named(const struct tenants *t,
					    const char *name, size_t len)
{
	for (size_t i = 0; i < t->nrules; i++)
		if (strlen(t->rules[i].name) == len &&
		    !memcmp(t->rules[i].name, name, len))
			return &t->rules[i];
	return NULL;
}

int tenants_get(struct tenants *t, const char *name, size_t len,
		struct tenant **ret)
{
	const struct tenant_rule *rule;
	struct tenant *tn;

	if (!tenant_name_valid(name, len))
		return -EINVAL;
	tn = tenants_find(t, name, len);
	if (tn) {
		*ret = tn;
		return 0;
	}
	if (t->count >= TENANT_MAX)
		return -ENOSPC;
	if (t->count == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 16;
		struct tenant **by_id = realloc(t->by_id, cap * sizeof(*by_id));

		if (!by_id)
			return -ENOMEM;
		t->by_id = by_id;
		t->cap = cap;
	}
	/* Owner: the table; tenants_fini() frees it. */
	tn = calloc(1, sizeof(*tn));
	if (!tn)
		return -ENOMEM;
	tn->id = t->count;
	tn->name_len = (uint8_t)len;
	memcpy(tn->name, name, len);
	rule = rule_named(t, name, len);
	tn->configured = rule != NULL;
	tn->lim = rule ? rule->lim : t->def;
	tn->next = t->list;
	t->list = tn;
	t->by_id[t->count++] = tn;
	*ret = tn;
	return 0;
}

int tenants_init(struct tenants *t, const struct tenant_limits *def,
		 gid_t admin_gid, const struct tenant_rule *rules, size_t nrules)
{
	struct tenant *tn;
	int r;

	*t = (struct tenants){
		.def = *def,
		.admin_gid = admin_gid,
		.self_uid = geteuid(),
		.rules = rules,
		.nrules = nrules,
	};
	for (size_t i = 0; i < nrules; i++) {
		r = tenants_get(t, rules[i].name, strlen(rules[i].name), &tn);
		if (r < 0) {
			tenants_fini(t);
			return r;
		}
	}
	return 0;
}

void tenants_fini(struct tenants *t)
{
	struct tenant *tn;

	if (!t)
		return;
	while ((tn = t->list)) {
		t->list = tn->next;
		free(tn);
	}
	free(t->by_id);
	t->by_id = NULL;
	t->count = t->cap = 0;
}

static bool has_gid(const gid_t *gids, size_t n, gid_t gid)
{
	for (size_t i = 0; i < n; i++)
		if (gids[i] == gid)
			return true;
	return false;
}

static bool has_uid(const uid_t *uids, size_t n, uid_t uid)
{
	for (size_t i = 0; i < n; i++)
		if (uids[i] == uid)
			return true;
	return false;
}

/* Whether the peer's primary or supplementary groups meet gids[]. */
static bool in_groups(const gid_t *gids, size_t n, gid_t gid,
		      const gid_t *groups, size_t ngroups)
{
	if (has_gid(gids, n, gid))
		return true;
	for (size_t i = 0; i < ngroups; i++)
		if (has_gid(gids, n, groups[i]))
			return true;
	return false;
}

int tenants_resolve(struct tenants *t, uid_t uid, gid_t gid,
		    const gid_t *groups, size_t ngroups, struct tenant **ret,
		    bool *ret_admin)
{
	const struct tenant_rule *rule = NULL;
	char name[TENANT_NAME_MAX + 1];
	gid_t admin[1] = { t->admin_gid };
	struct tenant *tn;
	int r, n;

	for (size_t i = 0; i < t->nrules && !rule; i++)
		if (has_uid(t->rules[i].uids, t->rules[i].nuids, uid))
			rule = &t->rules[i];
	for (size_t i = 0; i < t->nrules && !rule; i++)
		if (in_groups(t->rules[i].gids, t->rules[i].ngids, gid, groups,
			      ngroups))
			rule = &t->rules[i];
	if (rule) {
		r = tenants_get(t, rule->name, strlen(rule->name), &tn);
	} else {
		n = snprintf(name, sizeof(name), "uid-%u", (unsigned)uid);
		assert(n > 0 && (size_t)n < sizeof(name));
		r = tenants_get(t, name, (size_t)n, &tn);
	}
	if (r < 0)
		return r;
	*ret = tn;
	*ret_admin = uid == 0 || uid == t->self_uid ||
		     (t->admin_gid != (gid_t)-1 &&
		      in_groups(admin, 1, gid, groups, ngroups));
	return 0;
}
