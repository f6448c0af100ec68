/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CONFIG_H
#define KVSWAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* A share of the store instead of a size: CONFIG_SHARE_PCT | percent. */
#define CONFIG_SHARE_PCT	(1ull << 63)

/* A tenant's limits as configured (tenant.h has them resolved). */
struct config_limits {
	uint64_t bytes;		/* a size, or CONFIG_SHARE_PCT | percent */
	uint64_t pinned;	/* likewise */
	uint64_t leased;	/* likewise */
	uint32_t lease_ms;
	uint32_t conns;
	uint32_t regions;
	uint64_t region_bytes;
	uint32_t inflight;
};

/*
 * A [tenant NAME] section: the peers it takes (uids, and the uids of
 * users= and the gids of groups=, resolved when the file is read) and the
 * limits it sets; the others are the tenant-max-* options'.
 */
struct config_tenant {
	char name[33];
	uid_t *uids;
	size_t nuids;
	gid_t *gids;
	size_t ngids;
	struct config_limits lim;
	uint32_t set;		/* bit: offset in lim / 8 of a limit set */
};

/* The running settings; the config module fills them. */
struct config {
	const char *socket_path;
	const char *store_paths;
	uint64_t store_size;
	uint32_t queue_depth;
	int log_level;
	int cache;		/* default durability: cache (1) or durable (0) */
	int verify;		/* check CRC32C on swap-in */
	const char *admin_group;	/* "": none */
	struct config_limits tenant_def;	/* tenant-max-* */
	/* The [tenant NAME] sections, in file order (config-file.c). */
	struct config_tenant *tenants;
	size_t ntenants;
	uint64_t queue_bytes;	/* segment I/O at the devices (xfer.c) */
	uint32_t hello_timeout_ms;	/* a connection's time to say Hello */
	/*
	 * Command line only (kvswapd.c), never from a file, and not in
	 * config.c's table: start on what survived a damaged store.
	 */
	bool salvage;
	/* Likewise (kvswapd --migrate-tenant=NAME): migrate a format 3 store. */
	const char *migrate_tenant;
};

/*
 * kvswapd's options: one table in config.c names each option, its type,
 * range, default and whether SIGHUP may change it. The command line and the
 * INI file (/etc/kvswapd/kvswapd.conf, section [kvswapd]) both set options
 * through config_set(), so they accept exactly the same values.
 *
 * A struct config owns the strings config_set() stores in it: set its
 * string fields only through config_defaults() and config_set(), free them
 * with config_free(), and do not keep a shallow copy past config_free().
 */

/* Fills cfg with the built-in defaults; allocates nothing. */
void config_defaults(struct config *cfg);

/*
 * Sets option `key` (a long option name without dashes, e.g. "store-size")
 * from its text. Returns 0; -ENOENT for an unknown option; -EINVAL for a
 * bad value; -ENOMEM. On failure cfg is unchanged and err holds one line
 * naming the option and the bad value, e.g.
 * "queue-depth: 'abc' is not a number in 1..4096".
 */
int config_set(struct config *cfg, const char *key, const char *value,
	       char *err, size_t len);

/*
 * Loads the INI file `path`, then every *.conf file in the folder
 * `path`.d in lexical (byte) order, each overriding what came before. A
 * missing file or folder is fine unless must_exist (which applies to `path`
 * only). Returns 0 or a
 * negative errno with one line in err naming file, line and option, e.g.
 * "/etc/kvswapd/kvswapd.conf:7: queue-depth: 'abc' is not a number in
 * 1..4096". On failure cfg may hold some of the file's settings: load into
 * a scratch config (config_defaults() first) and keep the old one on error.
 */
int config_load(struct config *cfg, const char *path, bool must_exist,
		char *err, size_t len);

/* Whether option `key` can change while running (SIGHUP); false if unknown. */
bool config_reloadable(const char *key);

/*
 * Stores in keys[] the names of up to n options whose values differ between
 * a and b, in table order, and returns how many differ (possibly more than
 * n). For SIGHUP: apply the reloadable ones, log the others.
 */
size_t config_diff(const struct config *a, const struct config *b,
		   const char **keys, size_t n);

/* Prints one "  --name VALUE  help" block per option, for --help. */
void config_usage(FILE *f);

/*
 * Frees the strings config_set() allocated and points those fields back at
 * their defaults.
 */
void config_free(struct config *cfg);

/*
 * For config-file.c, which reads the files: whether option `key` is a
 * list that goes on over indented lines; a string option's value; and
 * where a tenant-max-* option lives in struct config_limits (-ENOENT if
 * it is no such option).
 */
bool config_is_list(const char *key);
const char *config_string(const struct config *cfg, const char *key);
int config_limit_field(const char *key, size_t *ret_off, size_t *ret_size);

/* config-file.c: the [tenant] sections, compared, and freed. */
bool config_tenants_equal(const struct config *a, const struct config *b);
void config_tenants_free(struct config *cfg);

/*
 * A limit resolved against the store's capacity: a size as it is, a
 * share as that percent of capacity (rounded down to 4 KiB, at least 4
 * KiB).
 */
uint64_t config_share(uint64_t v, uint64_t capacity);

#endif
