/* SPDX-License-Identifier: MIT */
/*
 * kvswapd: swaps KV-cache segments between clients' shared memory and
 * preallocated O_DIRECT store files, for inference servers on this host.
 * This file is the daemon's lifetime: options, start, serve, stop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "conn.h"
#include "journal.h"
#include "log.h"
#include "server.h"

/* A command-line option, applied after the configuration files. */
struct arg {
	const char *key;
	const char *value;
};

static struct {
	const char *config_path;	/* --config, or NULL: no file */
	struct arg *args;
	size_t nargs;
	bool check;			/* --check: check the store and exit */
	bool salvage;			/* --salvage */
	char *check_paths;		/* --check FILE...: joined by commas */
	const char *migrate_tenant;	/* --migrate-tenant NAME */
} cmdline;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: kvswapd [OPTION]...\n"
		"Serve KV-cache swap-out and swap-in over an AF_UNIX socket.\n\n"
		"  --config FILE            read options from FILE and FILE.d/*.conf\n"
		"                           (no file is read without it)\n");
	config_usage(f);
	fprintf(f,
		"  --check [FILE...]        check the store (FILE..., or --store)\n"
		"                           offline and exit: 0 consistent, 1 damaged,\n"
		"                           2 cannot open it; changes nothing\n"
		"  --salvage                start on a damaged store: replay what\n"
		"                           survived and log what was lost\n"
		"  --migrate-tenant NAME    give every entry of a store of format\n"
		"                           3 or 2 to tenant NAME, write it as\n"
		"                           format 4, and exit\n"
		"  -h, --help               this text\n"
		"  --version                print the version\n\n"
		"Command-line options override the files; see kvswapd(8).\n");
}

/* Appends a store file named after --check to cmdline.check_paths. */
static int add_check_path(const char *path)
{
	size_t old = cmdline.check_paths ? strlen(cmdline.check_paths) : 0;
	char *p = realloc(cmdline.check_paths, old + strlen(path) + 2);

	if (!p)
		return -ENOMEM;
	sprintf(p + old, "%s%s", old ? "," : "", path);
	cmdline.check_paths = p;
	return 0;
}

/*
 * Collects the options; they are applied by load_config() on top of the
 * files. Every option but --config, --help, --version and the two modes
 * --check and --salvage (which take no value and are never read from a
 * file) is a config key. Names after --check are store files.
 */
static int parse_args(int argc, char **argv)
{
	cmdline.args = calloc((size_t)argc, sizeof(*cmdline.args));
	if (!cmdline.args)
		return -ENOMEM;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *key;
		char name[64];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(a, "--version")) {
			printf("kvswapd %s\n", KVSWAP_VERSION);
			exit(0);
		}
		if (!strcmp(a, "--check") || !strcmp(a, "--salvage")) {
			*(a[2] == 'c' ? &cmdline.check : &cmdline.salvage) = true;
			continue;
		}
		if (cmdline.check && strncmp(a, "--", 2)) {
			if (add_check_path(a) < 0)
				return -ENOMEM;
			continue;
		}
		if (strncmp(a, "--", 2) || !a[2]) {
			log_err("unexpected argument '%s'", a);
			return -EINVAL;
		}
		key = a + 2;
		eq = strchr(key, '=');
		snprintf(name, sizeof(name), "%.*s",
			 (int)(eq ? (size_t)(eq - key) : strlen(key)), key);
		if (!eq && i + 1 >= argc) {
			log_err("--%s needs a value", name);
			return -EINVAL;
		}
		if (!strcmp(name, "config")) {
			cmdline.config_path = eq ? eq + 1 : argv[++i];
			continue;
		}
		if (!strcmp(name, "migrate-tenant")) {
			cmdline.migrate_tenant = eq ? eq + 1 : argv[++i];
			continue;
		}
		cmdline.args[cmdline.nargs].key = strndup(key, strlen(name));
		cmdline.args[cmdline.nargs++].value = eq ? eq + 1 : argv[++i];
	}
	return 0;
}

/* Defaults, then the files, then the command line. */
static int load_config(struct config *cfg, char *err, size_t len)
{
	int r = 0;

	config_defaults(cfg);
	if (cmdline.config_path)
		r = config_load(cfg, cmdline.config_path, true, err, len);
	for (size_t i = 0; !r && i < cmdline.nargs; i++) {
		char msg[400];

		r = config_set(cfg, cmdline.args[i].key, cmdline.args[i].value, msg,
			       sizeof(msg));
		if (r == -ENOENT)
			snprintf(err, len, "unknown option --%s", cmdline.args[i].key);
		else if (r < 0)
			snprintf(err, len, "--%s", msg);
	}
	return r;
}

static struct config cfg;

/*
 * SIGHUP: the configuration again; what can change while running does,
 * the log names the rest. A configuration with an error changes nothing.
 */
static void reload(struct server *srv)
{
	struct config next;
	const char *keys[16];
	char err[512] = "";
	size_t n;

	if (load_config(&next, err, sizeof(err)) < 0) {
		log_err("reload: %s; keeping the running configuration", err);
		config_free(&next);
		return;
	}
	n = config_diff(&cfg, &next, keys, 16);
	for (size_t i = 0; i < n && i < 16; i++) {
		if (!config_reloadable(keys[i])) {
			log_warn("reload: %s changed; it takes effect at the next "
				 "restart", keys[i]);
			continue;
		}
		log_notice("reload: %s changed", keys[i]);
	}
	/* Only ints are reloadable: no string changes hands. */
	cfg.log_level = srv->cfg.log_level = next.log_level;
	cfg.cache = srv->cfg.cache = next.cache;
	cfg.verify = srv->cfg.verify = next.verify;
	log_max_level = cfg.log_level;
	if (!n)
		log_notice("reload: nothing changed");
	config_free(&next);
}

int main(int argc, char **argv)
{
	static struct server srv;
	bool created = false;
	char err[512] = "";
	int listen_fd, ret;

	/* Every startup error, bad options included, exits 1 (systemd). */
	if (parse_args(argc, argv) < 0)
		return cmdline.check ? 2 : 1;
	if (cmdline.check && cmdline.salvage) {
		log_err("--check and --salvage: one or the other");
		return 2;
	}
	if (load_config(&cfg, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return cmdline.check ? 2 : 1;
	}
	log_max_level = cfg.log_level;
	if (cmdline.check) {
		ret = check_store(cmdline.check_paths ? cmdline.check_paths :
				  cfg.store_paths, stdout);
		config_free(&cfg);
		return ret;
	}
	cfg.salvage = cmdline.salvage;
	cfg.migrate_tenant = cmdline.migrate_tenant;
	ret = server_init(&srv, &cfg, err, sizeof(err));
	srv.reload = reload;
	if (ret < 0) {
		log_err("%s", *err ? err : strerror(-ret));
		goto out_fini;
	}
	if (cfg.migrate_tenant) {
		/* Recovery migrated and wrote the format 4 checkpoint. */
		log_notice("migrated %s to store format 4: %llu entries of tenant "
			   "'%s'; start kvswapd as usual", srv.store.files[0].path,
			   (unsigned long long)srv.cat.index.count,
			   cfg.migrate_tenant);
		goto out_fini;
	}
	listen_fd = conn_listen(cfg.socket_path, &created, err, sizeof(err));
	if (listen_fd < 0) {
		ret = listen_fd;
		log_err("%s", err);
		goto out_fini;
	}
	log_notice("kvswapd %s ready: socket %s, %u store file(s), %llu MiB, "
		   "queue depth %u", KVSWAP_VERSION,
		   created ? cfg.socket_path : "from systemd", srv.store.nfiles,
		   (unsigned long long)(srv.store.capacity >> 20), cfg.queue_depth);
	sd_notifyf(0, "READY=1\nSTATUS=serving %llu MiB in %u file(s)",
		   (unsigned long long)(srv.store.capacity >> 20), srv.store.nfiles);
	ret = server_run(&srv, listen_fd);
	if (created)
		unlink(cfg.socket_path);
	close(listen_fd);
	if (ret == 0) {
		/* Every request has finished: one checkpoint of everything. */
		ret = server_checkpoint(&srv, err, sizeof(err));
		if (ret < 0)
			log_err("%s", err);
		else
			log_notice("kvswapd stopped: checkpoint of %llu entries written",
				   (unsigned long long)srv.cat.index.count);
	}
out_fini:
	server_fini(&srv);
	config_free(&cfg);
	return ret < 0 ? 1 : 0;
}
