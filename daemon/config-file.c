/* SPDX-License-Identifier: MIT */
/*
 * kvswapd's configuration files (config.h, config_load): INI files read
 * with inih into the options of config.c's table ([kvswapd]) and the
 * tenant rules ([tenant NAME], docs/TENANTS.md).
 *
 * The file is parsed by inih (Debian's libinih, built with its defaults:
 * 200-byte line buffer, no line number in the handler). This file feeds it
 * one line per reader call, so that the reader knows the line inih is on,
 * and refuses lines that would not fit instead of letting inih split them.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tenant.h"

#define SECTION		"kvswapd"
#define TENANT_SECTION	"tenant "

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	if (len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* One file being parsed: what the reader and the handler share. */
struct load {
	struct config *cfg;
	const char *path;
	FILE *f;
	char *line;		/* the line inih is on, from getline() */
	size_t cap;
	unsigned lineno;
	/*
	 * inih treats an indented line that follows an option's line (with no
	 * section header in between) as a continuation of that option's
	 * value: prev_key mirrors its memory of that option, and cont says
	 * whether the current line is such a continuation.
	 */
	char prev_key[64];
	bool cont;
	int ret;		/* first error, its text in err */
	int read_errno;
	char *err;
	size_t len;
};

/* The file's error: "path:line: what", kept only if it is the first. */
__attribute__((format(printf, 3, 4)))
static int load_fail(struct load *l, int ret, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	if (l->ret)
		return l->ret;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	l->ret = fail(l->err, l->len, ret, "%s:%u: %s", l->path, l->lineno, what);
	return l->ret;
}

/*
 * inih's fgets-style reader: hands over one whole line per call, so that
 * l->lineno is the line of every handler call that follows. A line that
 * would not fit inih's buffer, a NUL byte, an unknown section or an earlier
 * error ends the input.
 */
static char *load_read(char *buf, int size, void *stream)
{
	struct load *l = stream;
	const char *p;
	ssize_t n;

	if (l->ret)
		return NULL;
	errno = 0;
	n = getline(&l->line, &l->cap, l->f);
	if (n < 0) {
		if (ferror(l->f))
			l->read_errno = errno ? errno : EIO;
		return NULL;
	}
	l->lineno++;
	if (n >= size) {
		load_fail(l, -EINVAL, "the line is longer than %d characters "
			  "(a long store list can go on over indented lines)",
			  size - 2);
		return NULL;
	}
	if (strlen(l->line) != (size_t)n) {
		load_fail(l, -EINVAL, "the line holds a NUL byte");
		return NULL;
	}
	p = l->line;
	if (l->lineno == 1 && !memcmp(p, "\xef\xbb\xbf", 3))
		p += 3;
	l->cont = (*p == ' ' || *p == '\t') && *l->prev_key;
	p += strspn(p, " \t");
	if (!l->cont && *p == '[') {
		size_t nlen = strcspn(p + 1, "]");

		/* A header without "]" is left to inih, which refuses it. */
		if (p[1 + nlen] == ']') {
			const char *tn = p + 1 + strlen(TENANT_SECTION);
			size_t tlen = nlen - strlen(TENANT_SECTION);
			bool tenant = nlen > strlen(TENANT_SECTION) &&
				      !memcmp(p + 1, TENANT_SECTION,
					      strlen(TENANT_SECTION));

			if (tenant && !tenant_name_valid(tn, tlen)) {
				load_fail(l, -EINVAL, "[%.*s]: '%.*s' is not a "
					  "tenant name (1 to %d of A-Z a-z 0-9 . _ -)",
					  (int)nlen, p + 1, (int)tlen, tn,
					  TENANT_NAME_MAX);
				return NULL;
			}
			if (!tenant && (nlen != strlen(SECTION) ||
					memcmp(p + 1, SECTION, nlen))) {
				load_fail(l, -EINVAL, "[%.*s]: unknown section "
					  "(the sections are [" SECTION "] and "
					  "[tenant NAME])", (int)nlen, p + 1);
				return NULL;
			}
			*l->prev_key = '\0';
		}
	}
	memcpy(buf, l->line, (size_t)n + 1);
	return buf;
}

/* --- [tenant NAME] sections ---------------------------------------------- */

static struct config_tenant *tenant_section(struct config *cfg,
					    const char *name)
{
	struct config_tenant *t;

	for (size_t i = 0; i < cfg->ntenants; i++)
		if (!strcmp(cfg->tenants[i].name, name))
			return &cfg->tenants[i];
	t = realloc(cfg->tenants, (cfg->ntenants + 1) * sizeof(*t));
	if (!t)
		return NULL;
	cfg->tenants = t;
	t += cfg->ntenants++;
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	return t;
}

/* The section, other than `self`, that already takes uid (or gid). */
static const char *taken(const struct config *cfg, bool gid, unsigned id,
			 const struct config_tenant *self)
{
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct config_tenant *t = &cfg->tenants[i];
		size_t n = gid ? t->ngids : t->nuids;

		for (size_t k = 0; k < n; k++)
			if ((gid ? (unsigned)t->gids[k] : (unsigned)t->uids[k]) ==
				    id && t != self)
				return t->name;
	}
	return NULL;
}

/* One item of uids=, users= or groups=: added to the section's list. */
static int tenant_id(struct load *l, struct config_tenant *t, const char *key,
		     const char *item)
{
	bool gid = !strcmp(key, "groups");
	unsigned long v = 0;
	const char *other;
	char *end;
	void *p;

	if (!strcmp(key, "uids")) {
		errno = 0;
		v = strtoul(item, &end, 10);
		if (*item < '0' || *item > '9' || *end || errno ||
		    v >= (uid_t)-1)
			return load_fail(l, -EINVAL, "uids: '%s' is not a uid",
					 item);
	} else if (!gid) {
		struct passwd *pw = getpwnam(item);

		if (!pw)
			return load_fail(l, -EINVAL, "users: no user '%s' on "
					 "this host", item);
		v = pw->pw_uid;
	} else {
		struct group *gr = getgrnam(item);

		if (!gr)
			return load_fail(l, -EINVAL, "groups: no group '%s' on "
					 "this host", item);
		v = gr->gr_gid;
	}
	other = taken(l->cfg, gid, (unsigned)v, t);
	if (other)
		return load_fail(l, -EINVAL, "%s: %s %lu (%s) is already in "
				 "[tenant %s]", key, gid ? "gid" : "uid", v, item,
				 other);
	if (gid) {
		p = realloc(t->gids, (t->ngids + 1) * sizeof(*t->gids));
		if (p) {
			t->gids = p;
			t->gids[t->ngids++] = (gid_t)v;
		}
	} else {
		p = realloc(t->uids, (t->nuids + 1) * sizeof(*t->uids));
		if (p) {
			t->uids = p;
			t->uids[t->nuids++] = (uid_t)v;
		}
	}
	return p ? 0 : load_fail(l, -ENOMEM, "out of memory");
}

/*
 * A line of [tenant NAME]: uids, users or groups (comma- or
 * blank-separated), or a tenant-max-* limit for this tenant alone.
 */
static int tenant_option(struct load *l, const char *name, const char *key,
			 const char *value)
{
	struct config_tenant *t = tenant_section(l->cfg, name);
	size_t off, size;
	int r;

	if (!t)
		return load_fail(l, -ENOMEM, "out of memory");
	if (!strcmp(key, "uids") || !strcmp(key, "users") ||
	    !strcmp(key, "groups")) {
		char *list = strdup(value), *save = NULL, *item;

		if (!list)
			return load_fail(l, -ENOMEM, "out of memory");
		r = 0;
		for (item = strtok_r(list, ", \t", &save); item && !r;
		     item = strtok_r(NULL, ", \t", &save))
			r = tenant_id(l, t, key, item);
		free(list);
		return r;
	}
	if (config_limit_field(key, &off, &size) == 0) {
		struct config scratch;
		char msg[400];

		config_defaults(&scratch);
		r = config_set(&scratch, key, value, msg, sizeof(msg));
		if (r < 0)
			return load_fail(l, r, "%s", msg);
		memcpy((char *)&t->lim + off, (char *)&scratch.tenant_def + off,
		       size);
		t->set |= 1u << (off / 4);
		return 0;
	}
	return load_fail(l, -EINVAL, "%s: not a [tenant] setting (uids, users, "
			 "groups, tenant-max-*)", key);
}

/* inih's handler: one option line, or one continuation line. */
static int load_option(void *user, const char *section, const char *name,
		       const char *value)
{
	struct load *l = user;
	char *joined;
	const char *cur;
	int r;

	if (!strncmp(section, TENANT_SECTION, strlen(TENANT_SECTION))) {
		/* A continued uids/users/groups line adds to the list. */
		snprintf(l->prev_key, sizeof(l->prev_key), "%s", name);
		return !tenant_option(l, section + strlen(TENANT_SECTION), name,
				      value);
	} else if (l->cont) {
		/* name is the option of the line being continued. */
		if (!config_is_list(name))
			return !load_fail(l, -EINVAL, "an indented line continues "
					  "the value of %s, which takes one line: "
					  "remove the indentation", name);
		/* "  store-size = 2G" under a store list is an option, not a path. */
		if (strchr(value, '='))
			return !load_fail(l, -EINVAL, "an indented line continues "
					  "the value of %s but holds '=': remove the "
					  "indentation", name);
		cur = config_string(l->cfg, name);
		if (asprintf(&joined, "%s%s%s", cur,
			     *cur && cur[strlen(cur) - 1] != ',' ? "," : "",
			     value) < 0)
			return !load_fail(l, -ENOMEM, "out of memory");
		r = config_set(l->cfg, name, joined, l->err, l->len);
		free(joined);
	} else if (strcmp(section, SECTION)) {
		return !load_fail(l, -EINVAL, "%s: %s", name, *section ?
				  "unknown section" :
				  "option before the [" SECTION "] section");
	} else {
		snprintf(l->prev_key, sizeof(l->prev_key), "%s", name);
		r = config_set(l->cfg, name, value, l->err, l->len);
	}
	if (r < 0) {
		/*
		 * config_set()'s message names the option and the value. An
		 * unknown option makes the file invalid, not missing.
		 */
		char what[512];

		snprintf(what, sizeof(what), "%s", l->err);
		return !load_fail(l, r == -ENOENT ? -EINVAL : r, "%s", what);
	}
	return 1;
}

static int load_file(struct config *cfg, const char *path, bool must_exist,
		     char *err, size_t len)
{
	struct load l = {
		.cfg = cfg,
		.path = path,
		.err = err,
		.len = len,
	};
	int r;

	l.f = fopen(path, "re");
	if (!l.f) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return fail(err, len, -errno, "%s: %s", path, strerror(errno));
	}
	r = ini_parse_stream(load_read, &l, load_option, &l);
	/*
	 * inih goes on after a syntax error and returns the first bad line;
	 * the reader stops at the first of ours. Report whichever came first.
	 */
	if (r > 0 && (!l.ret || (unsigned)r < l.lineno)) {
		l.ret = 0;
		l.lineno = (unsigned)r;
		load_fail(&l, -EINVAL, "syntax error: expected 'option = value', "
			  "[" SECTION "], [tenant NAME] or a comment");
	} else if (!l.ret && l.read_errno) {
		l.ret = fail(err, len, -l.read_errno, "%s: %s", path,
			     strerror(l.read_errno));
	} else if (!l.ret && r < 0) {
		l.ret = fail(err, len, -ENOMEM, "%s: out of memory", path);
	}
	free(l.line);
	fclose(l.f);
	return l.ret;
}

static int conf_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 5 && !strcmp(d->d_name + n - 5, ".conf");
}

/* Byte order, whatever the locale: "10-a.conf" < "20-b.conf" < "a.conf". */
static int conf_order(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int config_load(struct config *cfg, const char *path, bool must_exist,
		char *err, size_t len)
{
	struct dirent **names = NULL;
	char *dir, *file;
	int n, r;

	r = load_file(cfg, path, must_exist, err, len);
	if (r < 0)
		return r;
	if (asprintf(&dir, "%s.d", path) < 0)
		return fail(err, len, -ENOMEM, "out of memory");
	n = scandir(dir, &names, conf_filter, conf_order);
	if (n < 0) {
		r = errno == ENOENT ? 0 : fail(err, len, -errno, "%s: %s", dir,
					       strerror(errno));
		goto out_free_dir;
	}
	for (int i = 0; i < n; i++) {
		if (!r && asprintf(&file, "%s/%s", dir, names[i]->d_name) < 0)
			r = fail(err, len, -ENOMEM, "out of memory");
		else if (!r) {
			r = load_file(cfg, file, true, err, len);
			free(file);
		}
		free(names[i]);
	}
	free(names);
out_free_dir:
	free(dir);
	return r;
}
