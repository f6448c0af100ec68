/* SPDX-License-Identifier: MIT */
/*
 * kvswapd: swaps KV-cache segments between clients' shared memory and
 * preallocated O_DIRECT store files, for inference servers on this host.
 * This file is the daemon's lifetime: options, start, serve, stop.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conn.h"
#include "journal.h"
#include "log.h"
#include "server.h"

#define DEFAULT_SOCKET		"/run/kvswap/kvswapd.sock"
#define DEFAULT_STORE		"/var/lib/kvswap/store0.kvs"
#define DEFAULT_STORE_SIZE	(4ull << 30)
#define DEFAULT_QUEUE_DEPTH	128
#define MAX_QUEUE_DEPTH		4096

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: kvswapd [OPTION]...\n"
		"Serve KV-cache swap-out and swap-in over an AF_UNIX socket.\n\n"
		"  --socket PATH          control socket (default %s)\n"
		"  --store PATH[,PATH...] store files, one per NVMe device\n"
		"                         (default %s)\n"
		"  --store-size SIZE      size of each store file, e.g. 4G (default 4G)\n"
		"  --queue-depth N        segments in flight, 1..%d (default %d)\n"
		"  --durability MODE      durable (default): a swap-out's final event\n"
		"                         comes once data and metadata are on stable\n"
		"                         storage; cache: once the data is written\n"
		"  --verify on|off        check each segment's CRC32C on swap-in\n"
		"                         (default on)\n"
		"  --log-level LEVEL      err, warning, notice, info or debug\n"
		"                         (default info)\n"
		"  -h, --help             this text\n"
		"  --version              print the version\n",
		DEFAULT_SOCKET, DEFAULT_STORE, MAX_QUEUE_DEPTH,
		DEFAULT_QUEUE_DEPTH);
}

/* Parses "4G", "512M", "1048576", "1GiB". Returns 0 or -EINVAL. */
static int parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	enum { OPT_SOCKET = 256, OPT_STORE, OPT_STORE_SIZE, OPT_QUEUE_DEPTH,
	       OPT_LOG_LEVEL, OPT_VERSION, OPT_DURABILITY, OPT_VERIFY };
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "store", required_argument, NULL, OPT_STORE },
		{ "store-size", required_argument, NULL, OPT_STORE_SIZE },
		{ "queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "durability", required_argument, NULL, OPT_DURABILITY },
		{ "verify", required_argument, NULL, OPT_VERIFY },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long n;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			cfg->socket_path = optarg;
			break;
		case OPT_STORE:
			cfg->store_paths = optarg;
			break;
		case OPT_STORE_SIZE:
			if (parse_size(optarg, &cfg->store_size) < 0) {
				log_err("--store-size %s: not a size (e.g. 4G, 512M)", optarg);
				return -EINVAL;
			}
			break;
		case OPT_QUEUE_DEPTH:
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || !n || n > MAX_QUEUE_DEPTH) {
				log_err("--queue-depth %s: must be 1..%d", optarg,
					MAX_QUEUE_DEPTH);
				return -EINVAL;
			}
			cfg->queue_depth = (uint32_t)n;
			break;
		case OPT_LOG_LEVEL:
			c = log_parse_level(optarg);
			if (c < 0) {
				log_err("--log-level %s: use err, warning, notice, "
					"info or debug", optarg);
				return -EINVAL;
			}
			log_max_level = c;
			break;
		case OPT_DURABILITY:
			if (strcmp(optarg, "durable") && strcmp(optarg, "cache")) {
				log_err("--durability %s: use durable or cache", optarg);
				return -EINVAL;
			}
			cfg->cache = !strcmp(optarg, "cache");
			break;
		case OPT_VERIFY:
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				log_err("--verify %s: use on or off", optarg);
				return -EINVAL;
			}
			cfg->verify = !strcmp(optarg, "on");
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("kvswapd %s\n", KVSWAP_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg = {
		.socket_path = DEFAULT_SOCKET,
		.store_paths = DEFAULT_STORE,
		.store_size = DEFAULT_STORE_SIZE,
		.queue_depth = DEFAULT_QUEUE_DEPTH,
		.verify = true,
	};
	static struct server srv;
	bool created = false;
	char err[512] = "";
	int ret;

	/* Every startup error, bad options included, exits 1 (systemd). */
	if (parse_args(argc, argv, &cfg) < 0)
		return 1;
	ret = server_init(&srv, &cfg, err, sizeof(err));
	if (ret < 0) {
		log_err("%s", *err ? err : strerror(-ret));
		goto out_fini;
	}
	srv.listen_fd = conn_listen(cfg.socket_path, &created, err, sizeof(err));
	if (srv.listen_fd < 0) {
		ret = srv.listen_fd;
		log_err("%s", err);
		goto out_fini;
	}
	log_notice("kvswapd %s ready: socket %s, %u store file(s), %llu MiB, "
		   "queue depth %u", KVSWAP_VERSION,
		   created ? cfg.socket_path : "from systemd", srv.store.nfiles,
		   (unsigned long long)(srv.store.capacity >> 20), cfg.queue_depth);
	sd_notifyf(0, "READY=1\nSTATUS=serving %llu MiB in %u file(s)",
		   (unsigned long long)(srv.store.capacity >> 20), srv.store.nfiles);
	ret = server_run(&srv);
	if (created)
		unlink(cfg.socket_path);
	close(srv.listen_fd);
	if (ret == 0) {
		/* Every request has finished: one checkpoint of everything. */
		ret = journal_checkpoint_sync(&srv, err, sizeof(err));
		if (ret < 0)
			log_err("%s", err);
		else
			log_notice("kvswapd stopped: checkpoint of %llu entries written",
				   (unsigned long long)srv.index.count);
	}
out_fini:
	server_fini(&srv);
	return ret < 0 ? 1 : 0;
}
