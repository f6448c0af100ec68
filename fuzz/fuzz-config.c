/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: kvswapd's configuration, from the real daemon sources
 * (daemon/config.c, inih). The first input byte picks the entry point:
 *
 *   even: the rest is an INI file, written to a temporary file and loaded
 *   with config_load() (as kvswapd loads /etc/kvswapd/kvswapd.conf);
 *
 *   odd: the rest is NUL-separated pairs "key\0value\0...", each set with
 *   config_set() (as the command line sets options).
 *
 * Then config_diff() against the defaults and config_free(). Beyond the
 * sanitizers (LeakSanitizer included: every string config_set() stores
 * must be freed), a refusal must come with a message, and a failed
 * config_set() must leave the config unchanged; a breach aborts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[512], path[600];

__attribute__((noreturn))
static void breach(const char *what)
{
	fprintf(stderr, "fuzz-config: %s\n", what);
	abort();
}

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("KVSWAP_FUZZ_DIR");

	(void)argc;
	(void)argv;
	log_max_level = LOG_CRIT;
	snprintf(dir, sizeof(dir), "%s/kvswap-fuzz-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		perror("fuzz-config: mkdtemp");
		abort();
	}
	snprintf(path, sizeof(path), "%s/kvswapd.conf", dir);
	atexit(cleanup);
	return 0;
}

static void load(const uint8_t *p, size_t len, struct config *cfg)
{
	char err[512] = "";
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, p, len) != (ssize_t)len) {
		perror("fuzz-config: writing the file");
		abort();
	}
	close(fd);
	if (config_load(cfg, path, true, err, sizeof(err)) < 0 && !err[0])
		breach("config_load refused without a message");
}

/* Field by field: padding bytes carry no meaning. */
static bool same(const struct config *a, const struct config *b)
{
	return a->socket_path == b->socket_path &&
	       a->store_paths == b->store_paths &&
	       a->store_size == b->store_size &&
	       a->queue_depth == b->queue_depth &&
	       a->log_level == b->log_level && a->cache == b->cache &&
	       a->verify == b->verify && a->salvage == b->salvage;
}

static void set(const uint8_t *p, size_t len, struct config *cfg)
{
	/* A NUL-terminated copy: the last value ends at the input's end. */
	char *s = malloc(len + 2), *end, *key, *value;

	if (!s)
		return;
	memcpy(s, p, len);
	s[len] = s[len + 1] = '\0';
	end = s + len;
	for (key = s; key < end;) {
		struct config before = *cfg;
		char err[512] = "";
		int r;

		value = key + strlen(key) + 1;
		if (value > end)
			value = end;
		r = config_set(cfg, key, value, err, sizeof(err));
		if (r < 0 && !err[0])
			breach("config_set refused without a message");
		if (r < 0 && !same(&before, cfg))
			breach("a refused config_set changed the config");
		key = value + strlen(value) + 1;
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg, def;
	const char *keys[16];

	if (!size)
		return 0;
	config_defaults(&cfg);
	config_defaults(&def);
	if (data[0] & 1)
		set(data + 1, size - 1, &cfg);
	else
		load(data + 1, size - 1, &cfg);
	config_diff(&cfg, &def, keys, sizeof(keys) / sizeof(keys[0]));
	config_free(&cfg);
	config_free(&def);
	return 0;
}
