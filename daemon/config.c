/* SPDX-License-Identifier: MIT */
/*
 * kvswapd's options, from the command line and from INI files.
 *
 * Every option is one row of the table below: its name (the long option
 * without dashes, and the key in the file), its type, the field of struct
 * config it fills, its range, its default and whether SIGHUP may change it.
 * Adding an option means adding a field to struct config and a row here;
 * the parsers, the messages, config_diff() and config_usage() follow.
 *
 * The file is parsed by inih (Debian's libinih, built with its defaults:
 * 200-byte line buffer, no line number in the handler). This file feeds it
 * one line per reader call, so that the reader knows the line inih is on,
 * and refuses lines that would not fit instead of letting inih split them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <syslog.h>

#include "config.h"
#include "defs.h"
#include "store.h"

enum opt_type {
	OPT_PATH,	/* const char *; max: longest path in bytes */
	OPT_PATH_LIST,	/* const char *, comma-separated; max: most paths */
	OPT_SIZE,	/* uint64_t bytes, K/M/G/T suffixes; a multiple of step */
	OPT_UINT,	/* uint32_t, decimal */
	OPT_ENUM,	/* int, one of names[] */
	OPT_SHARE,	/* uint64_t: as OPT_SIZE, or "N%" of the store
			 * (CONFIG_SHARE_PCT | N, N in 1..100) */
};

struct opt_name {
	const char *name;
	int value;
};

struct opt {
	const char *name;
	enum opt_type type;
	size_t offset;
	uint64_t min, max, step;
	const char *def_str;		/* OPT_PATH, OPT_PATH_LIST */
	uint64_t def_num;		/* OPT_SIZE, OPT_UINT, OPT_ENUM */
	const struct opt_name *names;	/* OPT_ENUM, ends with a NULL name */
	bool reloadable;
	const char *arg;		/* for config_usage() */
	const char *help;
};

/*
 * offsetof() of a struct config field, refused at compile time unless the
 * field has type T: a row cannot write the wrong width.
 */
#define FIELD(f, T) (offsetof(struct config, f) + 0 * sizeof(struct { \
	_Static_assert(__builtin_types_compatible_p( \
		__typeof__(((struct config *)0)->f), T), \
		"struct config field " #f " is not of type " #T); \
	int dummy; }))

static const struct opt_name log_levels[] = {
	{ "err", LOG_ERR },
	{ "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE },
	{ "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
	{ NULL, 0 },
};

static const struct opt_name durabilities[] = {
	{ "durable", 0 },
	{ "cache", 1 },
	{ NULL, 0 },
};

static const struct opt_name on_off[] = {
	{ "off", 0 },
	{ "on", 1 },
	{ NULL, 0 },
};

static const struct opt options[] = {
	{
		.name = "socket", .type = OPT_PATH,
		.offset = FIELD(socket_path, const char *),
		.max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
		.def_str = "/run/kvswap/kvswapd.sock",
		.arg = "PATH",
		.help = "control socket, when not passed by systemd",
	},
	{
		.name = "store", .type = OPT_PATH_LIST,
		.offset = FIELD(store_paths, const char *),
		.max = STORE_MAX_FILES,
		.def_str = "/var/lib/kvswap/store0.kvs",
		.arg = "PATH[,PATH...]",
		.help = "store files, one per NVMe device",
	},
	{
		.name = "store-size", .type = OPT_SIZE,
		.offset = FIELD(store_size, uint64_t),
		.min = 8ull << 20, .max = 1ull << 50,
		.step = STORE_BLOCK,
		.def_num = 4ull << 30,
		.arg = "SIZE",
		.help = "size of each store file, e.g. 512G",
	},
	{
		.name = "queue-depth", .type = OPT_UINT,
		.offset = FIELD(queue_depth, uint32_t),
		.min = 1, .max = 4096,
		.def_num = 128,
		.arg = "N",
		.help = "segment I/Os in flight",
	},
	{
		.name = "log-level", .type = OPT_ENUM,
		.offset = FIELD(log_level, int),
		.names = log_levels,
		.def_num = LOG_INFO,
		.reloadable = true,
		.arg = "LEVEL",
		.help = "err, warning, notice, info or debug",
	},
	{
		.name = "durability", .type = OPT_ENUM,
		.offset = FIELD(cache, int),
		.names = durabilities,
		.def_num = 0,
		.reloadable = true,
		.arg = "MODE",
		.help = "durable or cache (when swap-outs are acknowledged)",
	},
	{
		.name = "verify", .type = OPT_ENUM,
		.offset = FIELD(verify, int),
		.names = on_off,
		.def_num = 1,
		.reloadable = true,
		.arg = "on|off",
		.help = "check each segment's CRC32C on swap-in",
	},
	/* Tenants (docs/TENANTS.md); [tenant NAME] sections override these. */
	{
		.name = "admin-group", .type = OPT_PATH,
		.offset = FIELD(admin_group, const char *),
		.max = 64, .def_str = "",
		.arg = "GROUP",
		.help = "its members may list, stat and delete across tenants",
	},
	{
		.name = "tenant-max-bytes", .type = OPT_SHARE,
		.offset = FIELD(tenant_def.bytes, uint64_t),
		.min = STORE_BLOCK, .max = 1ull << 56, .step = STORE_BLOCK,
		.def_num = CONFIG_SHARE_PCT | 100,
		.arg = "SIZE|N%",
		.help = "bytes a tenant may store (its own LRU entries go first)",
	},
	{
		.name = "tenant-max-pinned", .type = OPT_SHARE,
		.offset = FIELD(tenant_def.pinned, uint64_t),
		.min = STORE_BLOCK, .max = 1ull << 56, .step = STORE_BLOCK,
		.def_num = CONFIG_SHARE_PCT | 50,
		.arg = "SIZE|N%",
		.help = "bytes of pinned entries a tenant may hold",
	},
	{
		.name = "tenant-max-leased", .type = OPT_SHARE,
		.offset = FIELD(tenant_def.leased, uint64_t),
		.min = STORE_BLOCK, .max = 1ull << 56, .step = STORE_BLOCK,
		.def_num = CONFIG_SHARE_PCT | 50,
		.arg = "SIZE|N%",
		.help = "bytes of entries a tenant may hold leases on",
	},
	{
		.name = "tenant-max-lease-ms", .type = OPT_UINT,
		.offset = FIELD(tenant_def.lease_ms, uint32_t),
		.min = 1, .max = KVS_MAX_LEASE_MS, .def_num = KVS_MAX_LEASE_MS,
		.arg = "MS",
		.help = "longest lease; longer Lookup.lease_ms is clamped to it",
	},
	{
		.name = "tenant-max-connections", .type = OPT_UINT,
		.offset = FIELD(tenant_def.conns, uint32_t),
		.min = 1, .max = KVS_MAX_CLIENTS, .def_num = 256,
		.arg = "N",
		.help = "connections of one tenant",
	},
	{
		.name = "tenant-max-regions", .type = OPT_UINT,
		.offset = FIELD(tenant_def.regions, uint32_t),
		.min = 1, .max = 1u << 20, .def_num = 1024,
		.arg = "N",
		.help = "registered regions of one tenant, all its connections",
	},
	{
		.name = "tenant-max-region-bytes", .type = OPT_SIZE,
		.offset = FIELD(tenant_def.region_bytes, uint64_t),
		.min = STORE_BLOCK, .max = 1ull << 50, .step = STORE_BLOCK,
		.def_num = 64ull << 30,
		.arg = "SIZE",
		.help = "registered (pinned) region bytes of one tenant",
	},
	{
		.name = "tenant-max-inflight", .type = OPT_UINT,
		.offset = FIELD(tenant_def.inflight, uint32_t),
		.min = 1, .max = 1u << 20, .def_num = 4096,
		.arg = "N",
		.help = "requests in flight of one tenant",
	},
	{
		.name = "queue-bytes", .type = OPT_SIZE,
		.offset = FIELD(queue_bytes, uint64_t),
		.min = 64ull << 10, .max = 1ull << 30,
		.step = STORE_BLOCK,
		.def_num = 16ull << 20,
		.arg = "SIZE",
		.help = "bytes of segment I/O at the devices at once, shared fairly",
	},
	{
		.name = "hello-timeout", .type = OPT_UINT,
		.offset = FIELD(hello_timeout_ms, uint32_t),
		.min = 100, .max = 600000,
		.def_num = 5000,
		.arg = "MS",
		.help = "close connections that send no Hello within MS ms",
	},
};


#define NOPTIONS	(sizeof(options) / sizeof(options[0]))
#define SECTION		"kvswapd"

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

static const struct opt *opt_find(const char *key)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (!strcmp(options[i].name, key))
			return &options[i];
	return NULL;
}

static void *field(struct config *cfg, const struct opt *o)
{
	return (char *)cfg + o->offset;
}

static const void *cfield(const struct config *cfg, const struct opt *o)
{
	return (const char *)cfg + o->offset;
}

static bool is_string(const struct opt *o)
{
	return o->type == OPT_PATH || o->type == OPT_PATH_LIST;
}

/* "4G", "1028K", "4097": the largest suffix that divides v exactly. */
static void format_size(uint64_t v, char *buf, size_t len)
{
	static const char suffix[] = "KMGT";
	int i = -1;

	while (v && i < 3 && !(v & 1023)) {
		v >>= 10;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)v, suffix[i]);
}

/*
 * Parses decimal digits with an optional K, M, G or T suffix (powers of
 * 1024, either case), itself optionally followed by "iB" or "B". Returns 0,
 * -EINVAL if s is not of that form, or -ERANGE if it does not fit 64 bits.
 */
static int parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	const char *suffix = "kmgt", *p;
	int shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end && (p = strchr(suffix, tolower((unsigned char)*end)))) {
		shift = 10 * (int)(p - suffix + 1);
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
	}
	if (*end)
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int set_size(const struct opt *o, const char *value, uint64_t *ret,
		    char *err, size_t len)
{
	char min[32], max[32], step[32];
	uint64_t v = 0;
	int r;

	r = parse_size(value, &v);
	if (r == -EINVAL)
		return fail(err, len, -EINVAL, "%s: '%s' is not a size (bytes, "
			    "or a number with a K, M, G or T suffix)", o->name,
			    value);
	format_size(o->min, min, sizeof(min));
	format_size(o->max, max, sizeof(max));
	if (r < 0 || v < o->min || v > o->max)
		return fail(err, len, -EINVAL, "%s: '%s' is not a size in %s..%s",
			    o->name, value, min, max);
	format_size(o->step, step, sizeof(step));
	if (o->step && v % o->step)
		return fail(err, len, -EINVAL, "%s: '%s' is not a multiple of %s",
			    o->name, value, step);
	*ret = v;
	return 0;
}

static int set_share(const struct opt *o, const char *value, uint64_t *ret,
		     char *err, size_t len)
{
	size_t n = strlen(value);
	unsigned long v;
	char *end;

	if (!n || value[n - 1] != '%')
		return set_size(o, value, ret, err, len);
	errno = 0;
	v = strtoul(value, &end, 10);
	if (*value < '0' || *value > '9' || end != value + n - 1 || errno ||
	    v < 1 || v > 100)
		return fail(err, len, -EINVAL, "%s: '%s' is not a share of the "
			    "store in 1%%..100%%", o->name, value);
	*ret = CONFIG_SHARE_PCT | v;
	return 0;
}

static int set_uint(const struct opt *o, const char *value, uint32_t *ret,
		    char *err, size_t len)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(value, &end, 10);
	if (*value < '0' || *value > '9' || *end || errno ||
	    v < o->min || v > o->max)
		return fail(err, len, -EINVAL, "%s: '%s' is not a number in "
			    "%llu..%llu", o->name, value,
			    (unsigned long long)o->min,
			    (unsigned long long)o->max);
	*ret = (uint32_t)v;
	return 0;
}

static int set_enum(const struct opt *o, const char *value, int *ret,
		    char *err, size_t len)
{
	char list[256] = "";
	size_t used = 0;

	for (const struct opt_name *n = o->names; n->name; n++) {
		if (!strcmp(n->name, value)) {
			*ret = n->value;
			return 0;
		}
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
					 used ? ", " : "", n->name);
		if (used >= sizeof(list))
			break;
	}
	return fail(err, len, -EINVAL, "%s: '%s' is not one of %s", o->name,
		    value, list);
}

static int set_path(const struct opt *o, const char *value, char **ret,
		    char *err, size_t len)
{
	/* Empty only where that is the default: "none" (admin-group). */
	if (!*value && (!o->def_str || *o->def_str))
		return fail(err, len, -EINVAL, "%s: the path is empty", o->name);
	if (strlen(value) > o->max)
		return fail(err, len, -EINVAL, "%s: '%s' is longer than %llu "
			    "bytes", o->name, value, (unsigned long long)o->max);
	*ret = strdup(value);
	return *ret ? 0 : fail(err, len, -ENOMEM, "%s: out of memory", o->name);
}

/*
 * A comma-separated list of paths: blanks around each are dropped, one
 * trailing comma is allowed, and each path must be unique. The result is
 * the list rejoined by single commas.
 */
static int set_path_list(const struct opt *o, const char *value, char **ret,
			 char *err, size_t len)
{
	const char *p = value, *start, *end;
	size_t n = 0, plen;
	char *out, *w;
	bool last;

	out = malloc(strlen(value) + 1);
	if (!out)
		return fail(err, len, -ENOMEM, "%s: out of memory", o->name);
	w = out;
	*w = '\0';
	for (;;) {
		start = p + strspn(p, " \t");
		end = p + strcspn(p, ",");
		last = !*end;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		plen = (size_t)(end - start);
		if (!plen && last && n)
			break;		/* "a," */
		if (!plen)
			goto out_bad_empty;
		if (++n > o->max)
			goto out_bad_count;
		/* The same path twice would open one file as two. */
		for (const char *q = out; *q; q += strcspn(q, ","), q += !!*q)
			if (strcspn(q, ",") == plen && !memcmp(q, start, plen))
				goto out_bad_twice;
		if (w > out)
			*w++ = ',';
		memcpy(w, start, plen);
		w += plen;
		*w = '\0';
		if (last)
			break;
		p += strcspn(p, ",") + 1;
	}
	*ret = out;
	return 0;

out_bad_empty:
	free(out);
	return fail(err, len, -EINVAL, "%s: empty file name in '%s'", o->name,
		    value);
out_bad_count:
	free(out);
	return fail(err, len, -EINVAL, "%s: '%s' names more than %llu files",
		    o->name, value, (unsigned long long)o->max);
out_bad_twice:
	free(out);
	return fail(err, len, -EINVAL, "%s: '%s' names %.*s twice", o->name,
		    value, (int)plen, start);
}

void config_defaults(struct config *cfg)
{
	/* A field without a row (only salvage: kvswapd.c sets it) is zero. */
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct opt *o = &options[i];
		void *f = field(cfg, o);

		switch (o->type) {
		case OPT_PATH:
		case OPT_PATH_LIST:
			*(const char **)f = o->def_str;
			break;
		case OPT_SIZE:
		case OPT_SHARE:
			*(uint64_t *)f = o->def_num;
			break;
		case OPT_UINT:
			*(uint32_t *)f = (uint32_t)o->def_num;
			break;
		case OPT_ENUM:
			*(int *)f = (int)o->def_num;
			break;
		}
	}
}

/* Frees a string field unless it is the default, which is not allocated. */
static void free_string(struct config *cfg, const struct opt *o)
{
	const char **f = field(cfg, o);

	if (*f != o->def_str)
		free((char *)*f);
	*f = o->def_str;
}

int config_set(struct config *cfg, const char *key, const char *value,
	       char *err, size_t len)
{
	const struct opt *o = opt_find(key);
	char *str = NULL, alt[64];
	uint64_t size = 0;
	uint32_t u = 0;
	int r = 0, e = 0;

	if (!o) {
		/* "store_size" is a likely slip for "store-size": say so. */
		snprintf(alt, sizeof(alt), "%s", key);
		for (char *c = alt; *c; c++)
			if (*c == '_')
				*c = '-';
		if (strcmp(alt, key) && opt_find(alt))
			return fail(err, len, -ENOENT, "%s: unknown option (did "
				    "you mean %s?)", key, alt);
		return fail(err, len, -ENOENT, "%s: unknown option", key);
	}
	switch (o->type) {
	case OPT_PATH:
		r = set_path(o, value, &str, err, len);
		break;
	case OPT_PATH_LIST:
		r = set_path_list(o, value, &str, err, len);
		break;
	case OPT_SIZE:
	case OPT_SHARE:
		r = o->type == OPT_SIZE ? set_size(o, value, &size, err, len) :
		    set_share(o, value, &size, err, len);
		if (!r)
			*(uint64_t *)field(cfg, o) = size;
		break;
	case OPT_UINT:
		r = set_uint(o, value, &u, err, len);
		if (!r)
			*(uint32_t *)field(cfg, o) = u;
		break;
	case OPT_ENUM:
		r = set_enum(o, value, &e, err, len);
		if (!r)
			*(int *)field(cfg, o) = e;
		break;
	}
	if (!r && str) {
		free_string(cfg, o);
		*(const char **)field(cfg, o) = str;
	}
	return r;
}

bool config_reloadable(const char *key)
{
	const struct opt *o = opt_find(key);

	return o && o->reloadable;
}

static bool opt_equal(const struct opt *o, const struct config *a,
		      const struct config *b)
{
	const void *fa = cfield(a, o), *fb = cfield(b, o);
	const char *sa, *sb;

	switch (o->type) {
	case OPT_PATH:
	case OPT_PATH_LIST:
		sa = *(const char *const *)fa;
		sb = *(const char *const *)fb;
		return sa == sb || (sa && sb && !strcmp(sa, sb));
	case OPT_SIZE:
	case OPT_SHARE:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case OPT_UINT:
		return *(const uint32_t *)fa == *(const uint32_t *)fb;
	case OPT_ENUM:
		return *(const int *)fa == *(const int *)fb;
	}
	return false;
}

size_t config_diff(const struct config *a, const struct config *b,
		   const char **keys, size_t n)
{
	size_t count = 0;

	if (!config_tenants_equal(a, b)) {
		if (count < n)
			keys[count] = "[tenant] sections";
		count++;
	}

	for (size_t i = 0; i < NOPTIONS; i++) {
		if (opt_equal(&options[i], a, b))
			continue;
		if (count < n)
			keys[count] = options[i].name;
		count++;
	}
	return count;
}

void config_usage(FILE *f)
{
	char left[64], def[64];

	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct opt *o = &options[i];

		snprintf(left, sizeof(left), "--%s %s", o->name, o->arg);
		switch (o->type) {
		case OPT_PATH:
		case OPT_PATH_LIST:
			snprintf(def, sizeof(def), "%s", o->def_str);
			break;
		case OPT_SIZE:
			format_size(o->def_num, def, sizeof(def));
			break;
		case OPT_SHARE:
			snprintf(def, sizeof(def), "%llu%% of the store",
				 (unsigned long long)(o->def_num &
						      ~CONFIG_SHARE_PCT));
			break;
		case OPT_UINT:
			snprintf(def, sizeof(def), "%llu, at most %llu",
				 (unsigned long long)o->def_num,
				 (unsigned long long)o->max);
			break;
		case OPT_ENUM:
			snprintf(def, sizeof(def), "?");
			for (const struct opt_name *n = o->names; n->name; n++)
				if (n->value == (int)o->def_num)
					snprintf(def, sizeof(def), "%s", n->name);
			break;
		}
		fprintf(f, "  %-24s %s\n  %-24s (default %s%s)\n", left, o->help,
			"", def, o->reloadable ? "; SIGHUP reloads it" : "");
	}
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (is_string(&options[i]))
			free_string(cfg, &options[i]);
	config_tenants_free(cfg);
}

/* For config-file.c: option `key` takes a list over indented lines. */
bool config_is_list(const char *key)
{
	const struct opt *o = opt_find(key);

	return o && o->type == OPT_PATH_LIST;
}

const char *config_string(const struct config *cfg, const char *key)
{
	const struct opt *o = opt_find(key);

	return o && is_string(o) ? *(const char *const *)cfield(cfg, o) : NULL;
}

/*
 * A limit option's value in cfg and its place in struct config_limits, for
 * [tenant] sections: returns the byte offset of the field in
 * struct config_limits and its size, or -ENOENT.
 */
int config_limit_field(const char *key, size_t *ret_off, size_t *ret_size)
{
	const struct opt *o = opt_find(key);
	size_t base = offsetof(struct config, tenant_def);

	if (!o || o->offset < base ||
	    o->offset >= base + sizeof(struct config_limits))
		return -ENOENT;
	*ret_off = o->offset - base;
	*ret_size = o->type == OPT_UINT ? sizeof(uint32_t) : sizeof(uint64_t);
	return 0;
}

/* --- [tenant] sections (config-file.c reads them) ----------------------- */

bool config_tenants_equal(const struct config *a, const struct config *b)
{
	if (a->ntenants != b->ntenants)
		return false;
	for (size_t i = 0; i < a->ntenants; i++) {
		const struct config_tenant *x = &a->tenants[i], *y = &b->tenants[i];

		if (strcmp(x->name, y->name) || x->nuids != y->nuids ||
		    x->ngids != y->ngids || x->set != y->set ||
		    memcmp(&x->lim, &y->lim, sizeof(x->lim)) ||
		    (x->nuids && memcmp(x->uids, y->uids,
					x->nuids * sizeof(*x->uids))) ||
		    (x->ngids && memcmp(x->gids, y->gids,
					x->ngids * sizeof(*x->gids))))
			return false;
	}
	return true;
}

void config_tenants_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->ntenants; i++) {
		free(cfg->tenants[i].uids);
		free(cfg->tenants[i].gids);
	}
	free(cfg->tenants);
	cfg->tenants = NULL;
	cfg->ntenants = 0;
}

uint64_t config_share(uint64_t v, uint64_t capacity)
{
	if (!(v & CONFIG_SHARE_PCT))
		return v;
	/* capacity < 2^57 and the share <= 100: no overflow. */
	v = capacity * (v & ~CONFIG_SHARE_PCT) / 100 / 4096 * 4096;
	return v ? v : 4096;
}
