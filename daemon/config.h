/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_CONFIG_H
#define KVSWAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The running settings; the config module fills them. */
struct config {
	const char *socket_path;
	const char *store_paths;
	uint64_t store_size;
	uint32_t queue_depth;
	int log_level;
	int cache;		/* default durability: cache (1) or durable (0) */
	int verify;		/* check CRC32C on swap-in */
	uint32_t hello_timeout_ms;	/* a connection's time to say Hello */
	/*
	 * Command line only (kvswapd.c), never from a file, and not in
	 * config.c's table: start on what survived a damaged store.
	 */
	bool salvage;
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

#endif
