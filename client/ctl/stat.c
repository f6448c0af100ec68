/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl stat: the daemon's statistics as a table, as JSON (--json) or
 * in the Prometheus text format (--prometheus).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

/* "3d 4h 5m 6s", leading zero units left out. */
static const char *human_duration(uint64_t ms, char buf[static HUMAN_LEN])
{
	uint64_t s = ms / 1000;
	uint64_t d = s / 86400;
	unsigned int h = (unsigned int)(s / 3600 % 24);
	unsigned int m = (unsigned int)(s / 60 % 60);
	unsigned int sec = (unsigned int)(s % 60);

	if (d)
		snprintf(buf, HUMAN_LEN, "%" PRIu64 "d %uh %um %us", d, h, m, sec);
	else if (h)
		snprintf(buf, HUMAN_LEN, "%uh %um %us", h, m, sec);
	else if (m)
		snprintf(buf, HUMAN_LEN, "%um %us", m, sec);
	else
		snprintf(buf, HUMAN_LEN, "%u.%03us", sec, (unsigned int)(ms % 1000));
	return buf;
}

/* The tenant's figures, NULL from a daemon that keeps no tenants. */
static void tenant_print_table(const struct kvswap_tenant_stat *t)
{
	char a[HUMAN_LEN], b[HUMAN_LEN];

	if (!t)
		return;
	printf("%-12s %s%s\n", "tenant", t->tenant, t->admin ? " (you are an "
	       "admin)" : "");
	printf("%-12s %" PRIu64 "\n", "  entries", t->entries);
	printf("%-12s %s of %s\n", "  stored", human_size(t->bytes, a),
	       human_size(t->max_bytes, b));
	printf("%-12s %s of %s\n", "  pinned", human_size(t->pinned, a),
	       human_size(t->max_pinned, b));
	printf("%-12s %s of %s, leases up to %" PRIu32 " ms\n", "  leased",
	       human_size(t->leased, a), human_size(t->max_leased, b),
	       t->max_lease_ms);
	printf("%-12s %" PRIu32 " of %" PRIu32 "\n", "  connections",
	       t->connections, t->max_connections);
	printf("%-12s %" PRIu32 " of %" PRIu32 ", %s of %s\n", "  regions",
	       t->regions, t->max_regions, human_size(t->region_bytes, a),
	       human_size(t->max_region_bytes, b));
	printf("%-12s %" PRIu32 " of %" PRIu32 "\n", "  in flight",
	       t->in_flight, t->max_in_flight);
	printf("%-12s %" PRIu64 " evictions, %" PRIu64 " quota refusals\n",
	       "  events", t->evictions, t->quota_refusals);
}

static void tenant_print_json(const struct kvswap_tenant_stat *t)
{
	if (!t)
		return;
	printf(",\n  \"tenant\": {\"name\": ");
	json_string(stdout, t->tenant, strlen(t->tenant));
	printf(", \"admin\": %s, \"entries\": %" PRIu64 ", \"bytes\": %" PRIu64
	       ", \"pinned\": %" PRIu64 ", \"leased\": %" PRIu64
	       ", \"connections\": %" PRIu32 ", \"regions\": %" PRIu32
	       ", \"region_bytes\": %" PRIu64 ", \"in_flight\": %" PRIu32
	       ", \"evictions\": %" PRIu64 ", \"quota_refusals\": %" PRIu64
	       ", \"max_bytes\": %" PRIu64 ", \"max_pinned\": %" PRIu64
	       ", \"max_leased\": %" PRIu64 ", \"max_lease_ms\": %" PRIu32
	       ", \"max_connections\": %" PRIu32 ", \"max_regions\": %" PRIu32
	       ", \"max_region_bytes\": %" PRIu64 ", \"max_in_flight\": %"
	       PRIu32 "}", t->admin ? "true" : "false", t->entries, t->bytes,
	       t->pinned, t->leased, t->connections, t->regions, t->region_bytes,
	       t->in_flight, t->evictions, t->quota_refusals, t->max_bytes,
	       t->max_pinned, t->max_leased, t->max_lease_ms,
	       t->max_connections, t->max_regions, t->max_region_bytes,
	       t->max_in_flight);
}

static void stat_print_json(const struct kvswap_stat *s,
			    const struct kvswap_tenant_stat *t)
{
	printf("{\n"
	       "  \"capacity\": %" PRIu64 ",\n"
	       "  \"used\": %" PRIu64 ",\n"
	       "  \"entries\": %" PRIu64 ",\n"
	       "  \"bytes_in\": %" PRIu64 ",\n"
	       "  \"bytes_out\": %" PRIu64 ",\n"
	       "  \"requests\": %" PRIu64 ",\n"
	       "  \"errors\": %" PRIu64 ",\n"
	       "  \"in_flight\": %" PRIu32 ",\n"
	       "  \"clients\": %" PRIu32 ",\n"
	       "  \"regions\": %" PRIu32 ",\n"
	       "  \"store_files\": %" PRIu32 ",\n"
	       "  \"queue_depth\": %" PRIu32 ",\n"
	       "  \"cpu_user_us\": %" PRIu64 ",\n"
	       "  \"cpu_system_us\": %" PRIu64 ",\n"
	       "  \"uptime_ms\": %" PRIu64 ",\n"
	       "  \"evictions\": %" PRIu64 ",\n"
	       "  \"pinned\": %" PRIu64 ",\n"
	       "  \"durable\": %s,\n"
	       "  \"verify\": %s,\n"
	       "  \"journal_commits\": %" PRIu64 ",\n"
	       "  \"checkpoints\": %" PRIu64 ",\n"
	       "  \"log_half_bytes\": %" PRIu64 ",\n"
	       "  \"log_bytes_used\": %" PRIu64 ",\n"
	       "  \"checkpoint_bytes\": %" PRIu64 ",\n"
	       "  \"checkpoint_limit\": %" PRIu64 ",\n"
	       "  \"metadata_refusals\": %" PRIu64 ",\n"
	       "  \"checksum_errors\": %" PRIu64 ",\n"
	       "  \"io_errors\": %" PRIu64,
	       s->capacity, s->used, s->entries, s->bytes_in, s->bytes_out,
	       s->requests, s->errors, s->in_flight, s->clients, s->regions,
	       s->store_files, s->queue_depth, s->cpu_user_us,
	       s->cpu_system_us, s->uptime_ms, s->evictions, s->pinned,
	       s->durable ? "true" : "false", s->verify ? "true" : "false",
	       s->journal_commits, s->checkpoints, s->log_half_bytes,
	       s->log_bytes_used, s->checkpoint_bytes, s->checkpoint_limit,
	       s->metadata_refusals, s->checksum_errors, s->io_errors);
	tenant_print_json(t);
	printf("\n}\n");
}

static void stat_print_table(const struct ctl *c, const struct kvswap_stat *s)
{
	const struct kvswap_limits *lim = kvswap_limits(c->k);
	char a[HUMAN_LEN], b[HUMAN_LEN];

	printf("%-12s %.*s\n", "daemon", (int)sizeof(lim->daemon),
	       lim->daemon);
	printf("%-12s %s\n", "socket", c->socket_path);
	printf("%-12s %s\n", "capacity", human_size(s->capacity, a));
	printf("%-12s %s (%.1f%%)\n", "used", human_size(s->used, a),
	       s->capacity ? 100.0 * (double)s->used / (double)s->capacity : 0);
	printf("%-12s %" PRIu64 "\n", "entries", s->entries);
	printf("%-12s %s\n", "swapped out", human_size(s->bytes_in, a));
	printf("%-12s %s\n", "swapped in", human_size(s->bytes_out, a));
	printf("%-12s %" PRIu64 "\n", "requests", s->requests);
	printf("%-12s %" PRIu64 "\n", "errors", s->errors);
	printf("%-12s %" PRIu32 "\n", "in flight", s->in_flight);
	printf("%-12s %" PRIu32 "\n", "clients", s->clients);
	printf("%-12s %" PRIu32 "\n", "regions", s->regions);
	printf("%-12s %" PRIu32 "\n", "store files", s->store_files);
	printf("%-12s %" PRIu32 "\n", "queue depth", s->queue_depth);
	printf("%-12s %s user, %s system\n", "cpu",
	       human_duration(s->cpu_user_us / 1000, a),
	       human_duration(s->cpu_system_us / 1000, b));
	printf("%-12s %s\n", "uptime", human_duration(s->uptime_ms, a));
	printf("%-12s %s, checksums %s\n", "durability",
	       s->durable ? "durable" : "cache", s->verify ? "verified" : "off");
	printf("%-12s %s\n", "pinned", human_size(s->pinned, a));
	printf("%-12s %" PRIu64 "\n", "evictions", s->evictions);
	printf("%-12s %" PRIu64 " commits, %" PRIu64 " checkpoints\n", "journal",
	       s->journal_commits, s->checkpoints);
	printf("%-12s %" PRIu64 " checksum, %" PRIu64 " I/O\n", "bad reads",
	       s->checksum_errors, s->io_errors);
	printf("%-12s %s of a %s half used\n", "metadata log",
	       human_size(s->log_bytes_used, a), human_size(s->log_half_bytes, b));
	printf("%-12s %s of %s (%.1f%%), %" PRIu64 " swap-outs refused\n",
	       "checkpoint", human_size(s->checkpoint_bytes, a),
	       human_size(s->checkpoint_limit, b),
	       s->checkpoint_limit ? 100.0 * (double)s->checkpoint_bytes /
				     (double)s->checkpoint_limit : 0,
	       s->metadata_refusals);
}

/*
 * The Prometheus text format, for node_exporter's textfile collector:
 * kvswapctl stat --prometheus > /var/lib/node_exporter/kvswap.prom.$$ &&
 * mv it into place. No network listener in the daemon.
 */
static void prom(const char *name, const char *type, const char *help,
		 double v)
{
	printf("# HELP kvswap_%s %s\n# TYPE kvswap_%s %s\nkvswap_%s %.17g\n",
	       name, help, name, type, name, v);
}

static void stat_print_prometheus(const struct kvswap_stat *s)
{
	prom("up", "gauge", "Whether kvswapd answered.", 1);
	prom("capacity_bytes", "gauge", "Store capacity for data.",
	     (double)s->capacity);
	prom("used_bytes", "gauge", "Store space in use, block-rounded.",
	     (double)s->used);
	prom("pinned_bytes", "gauge", "Bytes of pinned entries.",
	     (double)s->pinned);
	prom("entries", "gauge", "Stored entries.", (double)s->entries);
	prom("swapped_out_bytes_total", "counter",
	     "Bytes swapped out (written to the store).", (double)s->bytes_in);
	prom("swapped_in_bytes_total", "counter",
	     "Bytes swapped in (read from the store).", (double)s->bytes_out);
	prom("requests_total", "counter", "Requests handled.",
	     (double)s->requests);
	prom("errors_total", "counter", "Error events sent.", (double)s->errors);
	prom("evictions_total", "counter", "Entries evicted for room.",
	     (double)s->evictions);
	prom("checksum_errors_total", "counter",
	     "Segments that failed their CRC32C on swap-in.",
	     (double)s->checksum_errors);
	prom("io_errors_total", "counter",
	     "Store I/O that failed: segments and metadata log writes.",
	     (double)s->io_errors);
	prom("journal_commits_total", "counter", "Metadata log commits.",
	     (double)s->journal_commits);
	prom("checkpoints_total", "counter", "Metadata checkpoints.",
	     (double)s->checkpoints);
	prom("log_half_bytes", "gauge", "Size of one metadata log half.",
	     (double)s->log_half_bytes);
	prom("log_used_bytes", "gauge", "Bytes of the live metadata log half "
	     "in use.", (double)s->log_bytes_used);
	prom("checkpoint_bytes", "gauge", "Record bytes a checkpoint of the "
	     "index needs.", (double)s->checkpoint_bytes);
	prom("checkpoint_limit_bytes", "gauge", "Checkpoint size past which "
	     "swap-outs are refused.", (double)s->checkpoint_limit);
	prom("metadata_refusals_total", "counter", "Swap-outs refused because "
	     "the metadata log is full.", (double)s->metadata_refusals);
	prom("in_flight", "gauge", "Segment I/O chains in flight.",
	     (double)s->in_flight);
	prom("queue_depth", "gauge", "Configured queue depth.",
	     (double)s->queue_depth);
	prom("clients", "gauge", "Connected clients.", (double)s->clients);
	prom("regions", "gauge", "Registered client regions.",
	     (double)s->regions);
	prom("store_files", "gauge", "Store files.", (double)s->store_files);
	printf("# HELP kvswap_cpu_seconds_total kvswapd's CPU time.\n"
	       "# TYPE kvswap_cpu_seconds_total counter\n"
	       "kvswap_cpu_seconds_total{mode=\"user\"} %.6f\n"
	       "kvswap_cpu_seconds_total{mode=\"system\"} %.6f\n",
	       (double)s->cpu_user_us / 1e6, (double)s->cpu_system_us / 1e6);
	prom("uptime_seconds", "gauge", "Seconds since kvswapd started.",
	     (double)s->uptime_ms / 1e3);
}

int stat_main(struct ctl *c)
{
	struct kvswap_tenant_stat t;
	struct kvswap_stat s;
	bool have_tenant;
	int ret;

	if (c->prometheus && c->json)
		return usage_error(c, "--json and --prometheus exclude each other");
	if (ctl_connect(c)) {
		/* Scrapers still get a sample that says the daemon is down. */
		if (c->prometheus)
			printf("# TYPE kvswap_up gauge\nkvswap_up 0\n");
		return EXIT_FAILURE;
	}
	ret = kvswap_stat(c->k, &s);
	if (ret < 0) {
		if (c->prometheus)
			printf("# TYPE kvswap_up gauge\nkvswap_up 0\n");
		ret = fail_kv(c, ret, "stat");
		goto out_close;
	}
	/* The tenant's figures, where the daemon keeps tenants. */
	ret = kvswap_tenant_stat(c->k, c->tenant, &t);
	if (ret < 0 && (ret != -EOPNOTSUPP || c->tenant)) {
		ret = fail_kv(c, ret, "stat --tenant");
		goto out_close;
	}
	have_tenant = ret == 0;
	if (c->prometheus)
		stat_print_prometheus(&s);
	else if (c->json)
		stat_print_json(&s, have_tenant ? &t : NULL);
	else
		stat_print_table(c, &s);
	if (!c->prometheus && !c->json)
		tenant_print_table(have_tenant ? &t : NULL);
	ret = EXIT_SUCCESS;
out_close:
	kvswap_close(c->k);
	c->k = NULL;
	return ret;
}
