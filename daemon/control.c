/* SPDX-License-Identifier: MIT */
/*
 * Requests that move no data (control.h), and the dispatch of the ones
 * that do to xfer.c. This is the top of the request layer: it may use
 * every module, and no module calls it but through the connection
 * table's callbacks.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "server.h"
#include "swap.h"
#include "tenant.h"

#define EV_INIT(ev, req)						\
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;			\
	ev.has_id = 1;							\
	ev.id = (req)->id

static void hello(struct server *srv, struct conn *c, Request *req)
{
	Kvswap__V1__HelloReply h = KVSWAP__V1__HELLO_REPLY__INIT;
	const Kvswap__V1__Hello *m = req->hello;
	char err[128];
	EV_INIT(ev, req);

	if (m->version != KVS_PROTOCOL_VERSION) {
		snprintf(err, sizeof(err), "hello.version %u is not supported; "
			 "this daemon speaks version %d", m->version,
			 KVS_PROTOCOL_VERSION);
		if (conn_send_error(c, req->id, EPROTONOSUPPORT, -1, err) == 0)
			conn_close_after_send(c, "unsupported protocol version");
		return;
	}
	if (c->state == CONN_NEW && m->client_name && *m->client_name) {
		size_t len = strlen(c->name);

		snprintf(c->name + len, sizeof(c->name) - len, " %.24s",
			 m->client_name);
	}
	conn_ready(c);
	h.has_version = h.has_max_message_size = h.has_max_key_length = 1;
	h.has_max_metadata_length = h.has_max_segments = h.has_max_regions = 1;
	h.has_alignment = h.has_block_size = h.has_capacity = 1;
	h.has_store_files = h.has_max_lookup_keys = 1;
	h.version = KVS_PROTOCOL_VERSION;
	h.daemon = (char *)"kvswapd " KVSWAP_VERSION;
	h.max_message_size = KVS_MAX_MESSAGE;
	h.max_key_length = KVS_MAX_KEY;
	h.max_metadata_length = KVS_MAX_METADATA;
	h.max_segments = KVS_MAX_SEGMENTS;
	h.max_regions = KVS_MAX_REGIONS;
	h.max_lookup_keys = KVS_MAX_LOOKUP;
	h.has_max_batch_entries = h.has_max_batch_segments = h.has_max_groups = 1;
	h.max_batch_entries = KVS_MAX_BATCH_ENTRIES;
	h.max_batch_segments = KVS_MAX_BATCH_SEGMENTS;
	h.max_groups = KVS_MAX_GROUPS;
	h.alignment = KVS_ALIGN;
	h.block_size = srv->store.block;
	h.capacity = srv->store.capacity;
	h.store_files = srv->store.nfiles;
	h.tenant = c->tenant->name;
	h.has_admin = 1;
	h.admin = c->admin;
	ev.body_case = KVSWAP__V1__EVENT__BODY_HELLO;
	ev.hello = &h;
	conn_send(c, &ev);
	log_debug("client %s: hello", c->name);
}

static void register_region(struct server *srv, struct conn *c, Request *req,
			    int fd)
{
	char err[256];
	int ret;

	if (c->nregions >= KVS_MAX_REGIONS) {
		close(fd);
		snprintf(err, sizeof(err), "register_region: this connection "
			 "already has %d regions", KVS_MAX_REGIONS);
		conn_send_error(c, req->id, EMFILE, -1, err);
		return;
	}
	/* region.c answers once every slot is registered. */
	ret = region_new(&srv->regions, c, fd, req->register_region->size,
			 req->id, err, sizeof(err));
	if (ret < 0)
		conn_send_error(c, req->id, ret, -1, err);
}

static void unregister_region(struct conn *c, Request *req)
{
	uint32_t id = req->unregister_region->region;
	struct region *r = region_find(c, id);
	char err[128];

	if (!r) {
		snprintf(err, sizeof(err), "unregister_region.region %u: no such "
			 "region on this connection", id);
		conn_send_error(c, req->id, ENOENT, -1, err);
		return;
	}
	r->reply = true;
	r->reply_id = req->id;
	region_release(r);
}

/*
 * Lookup: which keys are present and how many lead. With lease_ms, the
 * hit prefix (and only it: the client reads no further) is leased to this
 * connection until its SwapIn reads each entry; with release, this
 * connection's leases on the keys end instead.
 */
static void lookup(struct server *srv, struct conn *c, Request *req)
{
	const Kvswap__V1__Lookup *m = req->lookup;
	Kvswap__V1__LookupReply lr = KVSWAP__V1__LOOKUP_REPLY__INIT;
	protobuf_c_boolean present[KVS_MAX_LOOKUP];
	/* Clamped, not refused: the tenant's longest lease (TENANTS.md). */
	uint32_t ms = m->lease_ms < c->tenant->lim.lease_ms ? m->lease_ms :
		      c->tenant->lim.lease_ms;
	uint64_t until = ms ? now_ms() + ms : 0;
	bool prefix = true, release = m->has_release && m->release;
	char refused[256] = "";
	EV_INIT(ev, req);

	lr.has_prefix = 1;
	lr.has_leased = lr.has_lease_ms = until && !release;
	lr.lease_ms = ms;
	for (size_t i = 0; i < m->n_keys; i++) {
		struct entry *e = catalog_get(&srv->cat, c->tenant,
					      m->keys[i].data, m->keys[i].len);

		present[i] = e != NULL;
		prefix = prefix && present[i];
		lr.prefix += prefix;
		if (e) {
			srv->st.lookup_hits++;
			srv->st.lookup_hit_bytes += e->size;
		} else {
			srv->st.lookup_misses++;
		}
		if (e && release)
			catalog_unlease(&srv->cat, e, &c->leases);
		else if (e && prefix && until && !*refused &&
			 catalog_lease(&srv->cat, e, &c->leases, until, refused,
				       sizeof(refused)) == 0)
			lr.leased++;
	}
	if (*refused)
		lr.lease_refused = refused;
	lr.n_present = m->n_keys;
	lr.present = present;
	ev.body_case = KVSWAP__V1__EVENT__BODY_LOOKUP;
	ev.lookup = &lr;
	conn_send(c, &ev);
}

static void not_found(struct conn *c, Request *req, const char *field)
{
	conn_send_error(c, req->id, ENOENT, -1, field);
}

/* Fills info with e's layout; lengths must hold e->nseg values. */
static void entry_info(Kvswap__V1__EntryInfo *info, const struct entry *e,
		       uint64_t *lengths)
{
	kvswap__v1__entry_info__init(info);
	for (uint32_t i = 0; i < e->nseg; i++)
		lengths[i] = e->segs[i].len;
	info->has_key = info->has_size = info->has_segments = 1;
	info->has_metadata = 1;
	info->key = (ProtobufCBinaryData){ entry_ckey_len(e),
					   (uint8_t *)entry_ckey(e) };
	info->size = e->size;
	info->segments = e->nseg;
	info->n_lengths = e->nseg;
	info->lengths = lengths;
	info->metadata = (ProtobufCBinaryData){ e->meta_len, e->meta };
}

/* Describe.keys: a ListReply of the entries present, in request order. */
static void describe_batch(struct server *srv, struct conn *c, Request *req)
{
	const Kvswap__V1__Describe *m = req->describe;
	Kvswap__V1__ListReply lr = KVSWAP__V1__LIST_REPLY__INIT;
	Kvswap__V1__EntryInfo *info = calloc(m->n_keys, sizeof(*info));
	Kvswap__V1__EntryInfo **ptrs = calloc(m->n_keys, sizeof(*ptrs));
	uint64_t *lengths = NULL;
	size_t n = 0, nl = 0, bytes = 64;
	EV_INIT(ev, req);

	for (size_t i = 0; i < m->n_keys; i++) {
		struct entry *e = catalog_get(&srv->cat, c->tenant,
					      m->keys[i].data, m->keys[i].len);

		if (e) {
			nl += e->nseg;
			bytes += 32 + e->key_len + e->meta_len + 10ull * e->nseg;
		}
	}
	if (bytes > KVS_MAX_MESSAGE) {
		conn_send_error(c, req->id, E2BIG, -1, "describe.keys: the entries "
				"do not fit in one reply: ask for fewer keys");
		goto out_free;
	}
	lengths = calloc(nl ? nl : 1, sizeof(*lengths));
	if (!info || !ptrs || !lengths) {
		conn_send_error(c, req->id, ENOMEM, -1, "describe: out of memory");
		goto out_free;
	}
	nl = 0;
	for (size_t i = 0; i < m->n_keys; i++) {
		struct entry *e = catalog_get(&srv->cat, c->tenant,
					      m->keys[i].data, m->keys[i].len);

		if (!e)
			continue;
		entry_info(&info[n], e, lengths + nl);
		nl += e->nseg;
		ptrs[n] = &info[n];
		n++;
	}
	lr.has_cursor = 1;
	lr.cursor = 0;
	lr.n_entries = n;
	lr.entries = ptrs;
	ev.body_case = KVSWAP__V1__EVENT__BODY_LIST;
	ev.list = &lr;
	conn_send(c, &ev);
out_free:
	free(info);
	free(ptrs);
	free(lengths);
}

static void describe(struct server *srv, struct conn *c, Request *req)
{
	const Kvswap__V1__Describe *m = req->describe;
	Kvswap__V1__EntryInfo info;
	uint64_t lengths[KVS_MAX_SEGMENTS];
	struct entry *e;
	EV_INIT(ev, req);

	if (m->n_keys) {
		describe_batch(srv, c, req);
		return;
	}
	e = catalog_get(&srv->cat, c->tenant, m->key.data, m->key.len);
	if (!e) {
		not_found(c, req, "describe.key: no such entry");
		return;
	}
	entry_info(&info, e, lengths);
	ev.body_case = KVSWAP__V1__EVENT__BODY_DESCRIBE;
	ev.describe = &info;
	conn_send(c, &ev);
}

/*
 * The tenant a request's `tenant` field names: the caller's own if unset
 * or its own name; another only for an admin (EPERM, sent, otherwise).
 * Returns 0 with *ret set (NULL: no such tenant, so no entries), or -1
 * once the error is sent.
 */
static int target(struct server *srv, struct conn *c, Request *req,
		  const char *name, const char *what, struct tenant **ret)
{
	char err[160];

	if (!name || !strcmp(name, c->tenant->name)) {
		*ret = c->tenant;
		return 0;
	}
	if (!c->admin) {
		snprintf(err, sizeof(err), "%s '%s': only an admin may name "
			 "another tenant (this connection is tenant '%s')",
			 what, name, c->tenant->name);
		conn_send_error(c, req->id, EPERM, -1, err);
		return -1;
	}
	*ret = tenants_find(&srv->tenants, name, strlen(name));
	return 0;
}

/*
 * A delete waiting for its record to be durable holds its connection.
 * Owner: delete(); freed by delete_done() or at once if nothing waits.
 */
struct pending_reply {
	struct conn *c;
	uint64_t id;
	bool batch;
	size_t n;
	protobuf_c_boolean deleted[];	/* Delete.keys: per key */
};

static void send_delete_reply(const struct pending_reply *p)
{
	Kvswap__V1__Event ev = KVSWAP__V1__EVENT__INIT;
	Kvswap__V1__DeleteReply dr = KVSWAP__V1__DELETE_REPLY__INIT;

	if (p->batch) {
		dr.n_deleted = p->n;
		dr.deleted = (protobuf_c_boolean *)p->deleted;
	}
	ev.has_id = 1;
	ev.id = p->id;
	ev.body_case = KVSWAP__V1__EVENT__BODY_DELETE;
	ev.delete_ = &dr;
	conn_send(p->c, &ev);
}

static void delete_done(void *arg, int err)
{
	struct pending_reply *p = arg;

	if (!conn_closing(p->c)) {
		if (err)
			conn_send_error(p->c, p->id, err, -1, "delete: the entry "
					"is gone, but the metadata write failed: it "
					"may come back after a crash");
		else
			send_delete_reply(p);
	}
	conn_xfer_end(p->c);
	free(p);
}

/*
 * Delete.key, or each of Delete.keys. In durable mode the reply waits for
 * the DEL records: records queued together commit in order, in one group,
 * so waiting for the last one waits for them all.
 */
static void delete(struct server *srv, struct conn *c, Request *req)
{
	const Kvswap__V1__Delete *m = req->delete_;
	const ProtobufCBinaryData *keys = m->n_keys ? m->keys : &m->key;
	size_t n = m->n_keys ? m->n_keys : 1;
	struct pending_reply *p;
	struct tenant *tn;
	ssize_t last = -1;
	bool wait;

	if (target(srv, c, req, m->tenant, "delete.tenant", &tn) < 0)
		return;
	p = calloc(1, sizeof(*p) + n * sizeof(p->deleted[0]));
	if (!p) {
		conn_send_error(c, req->id, ENOMEM, -1, "delete: out of memory");
		return;
	}
	*p = (struct pending_reply){ c, req->id, m->n_keys > 0, n };
	for (size_t i = 0; i < n; i++) {
		p->deleted[i] = tn && catalog_get(&srv->cat, tn, keys[i].data,
						  keys[i].len) != NULL;
		if (p->deleted[i])
			last = (ssize_t)i;
	}
	if (!p->batch && last < 0) {
		free(p);
		not_found(c, req, "delete.key: no such entry");
		return;
	}
	wait = !srv->cfg.cache && last >= 0;
	if (wait)
		conn_xfer_begin(c);
	for (size_t i = 0; i < n; i++) {
		bool mine = wait && (ssize_t)i == last;

		if (!p->deleted[i])
			continue;
		if (catalog_delete(&srv->cat, tn, keys[i].data, keys[i].len,
				   mine ? delete_done : NULL, mine ? p : NULL) != 0 &&
		    mine) {
			conn_xfer_end(c);
			wait = false;
		}
	}
	if (!wait) {
		send_delete_reply(p);
		free(p);
	}
}

/*
 * A listing page is bounded by the message size, not only by the limit:
 * each entry costs its key plus a few bytes of framing.
 */
#define LIST_ENTRY_OVERHEAD 32
#define LIST_BUDGET (KVS_MAX_MESSAGE - 64)
/*
 * Buckets one page scans at most: the table is shared by every tenant,
 * so a page of a small tenant's entries may otherwise read it all.
 */
#define LIST_SCAN_BUCKETS 16384

struct list_page {
	const struct tenant *tn;	/* whose entries */
	Kvswap__V1__EntryInfo *info;
	Kvswap__V1__EntryInfo **ptrs;
	size_t n;
	size_t bytes;
};

static void list_add(struct entry *e, void *arg)
{
	struct list_page *p = arg;
	Kvswap__V1__EntryInfo *i = &p->info[p->n];

	if (e->tenant != p->tn)
		return;
	kvswap__v1__entry_info__init(i);
	i->has_key = i->has_size = i->has_segments = 1;
	i->key = (ProtobufCBinaryData){ entry_ckey_len(e),
					(uint8_t *)entry_ckey(e) };
	i->size = e->size;
	i->segments = e->nseg;
	p->ptrs[p->n++] = i;
	p->bytes += e->key_len + LIST_ENTRY_OVERHEAD;
}

/* The tenant's entries in the bucket at cursor: can a page take it? */
struct bucket_count {
	const struct tenant *tn;
	size_t n;
	size_t bytes;
};

static void count_bucket(struct entry *e, void *arg)
{
	struct bucket_count *b = arg;

	if (e->tenant != b->tn)
		return;
	b->n++;
	b->bytes += e->key_len + LIST_ENTRY_OVERHEAD;
}

static void list(struct server *srv, struct conn *c, Request *req)
{
	Kvswap__V1__ListReply lr = KVSWAP__V1__LIST_REPLY__INIT;
	uint32_t limit = req->list->has_limit ? req->list->limit : 100;
	uint64_t cursor = req->list->cursor;
	struct list_page p = { 0 };
	uint32_t scanned = 0;
	struct tenant *tn;
	EV_INIT(ev, req);

	if (target(srv, c, req, req->list->tenant, "list.tenant", &tn) < 0)
		return;
	p.tn = tn;
	if (!p.tn)
		cursor = 0;	/* an unknown tenant: nothing to list */

	/* Whole buckets only; a bucket holds a few entries at load <= 1. */
	p.info = calloc(limit + 64, sizeof(*p.info));
	p.ptrs = calloc(limit + 64, sizeof(*p.ptrs));
	if (!p.info || !p.ptrs) {
		conn_send_error(c, req->id, ENOMEM, -1,
				"list: out of memory");
		goto out_free;
	}
	while (p.tn && p.n < limit && scanned++ < LIST_SCAN_BUCKETS) {
		struct bucket_count need = { p.tn, 0, 0 };

		catalog_scan(&srv->cat, cursor, count_bucket, &need);
		if (p.n && (p.n + need.n > limit || p.bytes + need.bytes > LIST_BUDGET))
			break;
		if (need.n > 64 || need.bytes > LIST_BUDGET) {
			/* Only a hash attack could fill one bucket so. */
			conn_send_error(c, req->id, EOVERFLOW, -1,
					"list: a hash bucket is too full to list");
			goto out_free;
		}
		cursor = catalog_scan(&srv->cat, cursor, list_add, &p);
		if (!cursor)
			break;
	}
	lr.has_cursor = 1;
	lr.cursor = cursor;
	lr.n_entries = p.n;
	lr.entries = p.ptrs;
	ev.body_case = KVSWAP__V1__EVENT__BODY_LIST;
	ev.list = &lr;
	conn_send(c, &ev);
out_free:
	free(p.info);
	free(p.ptrs);
}

static uint64_t tv_us(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

/* The tenant's usage, counters and limits (StatReply.tenant_*). */
static void stat_tenant(Kvswap__V1__StatReply *s, const struct tenant *tn)
{
	s->tenant = (char *)tn->name;
	s->has_tenant_entries = s->has_tenant_bytes = s->has_tenant_pinned = 1;
	s->has_tenant_leased = s->has_tenant_connections = 1;
	s->has_tenant_regions = s->has_tenant_region_bytes = 1;
	s->has_tenant_in_flight = s->has_tenant_evictions = 1;
	s->has_tenant_quota_refusals = 1;
	s->tenant_entries = tn->use.entries;
	s->tenant_bytes = tn->use.bytes;
	s->tenant_pinned = tn->use.pinned_bytes;
	s->tenant_leased = tn->use.leased_bytes;
	s->tenant_connections = tn->use.conns;
	s->tenant_regions = tn->use.regions;
	s->tenant_region_bytes = tn->use.region_bytes;
	s->tenant_in_flight = tn->use.inflight;
	s->tenant_evictions = tn->stat.evictions;
	s->tenant_quota_refusals = tn->stat.quota_refusals;
	s->has_tenant_max_bytes = s->has_tenant_max_pinned = 1;
	s->has_tenant_max_leased = s->has_tenant_max_lease_ms = 1;
	s->has_tenant_max_connections = s->has_tenant_max_regions = 1;
	s->has_tenant_max_region_bytes = s->has_tenant_max_in_flight = 1;
	s->tenant_max_bytes = tn->lim.bytes;
	s->tenant_max_pinned = tn->lim.pinned_bytes;
	s->tenant_max_leased = tn->lim.leased_bytes;
	s->tenant_max_lease_ms = tn->lim.lease_ms;
	s->tenant_max_connections = tn->lim.conns;
	s->tenant_max_regions = tn->lim.regions;
	s->tenant_max_region_bytes = tn->lim.region_bytes;
	s->tenant_max_in_flight = tn->lim.inflight;
}

/*
 * What a tenant that is not an admin sees: the store's shape and its own
 * tenant; the daemon-wide counters would tell it of other tenants'
 * entries and activity, so they are left out, and entries, used and
 * pinned are its own.
 */
static void stat_confine(Kvswap__V1__StatReply *s, const struct tenant *tn)
{
	s->entries = tn->use.entries;
	s->used = tn->use.bytes;
	s->pinned = tn->use.pinned_bytes;
	s->has_bytes_in = s->has_bytes_out = s->has_requests = 0;
	s->has_errors = s->has_in_flight = s->has_clients = 0;
	s->has_regions = s->has_cpu_user_us = s->has_cpu_system_us = 0;
	s->has_evictions = s->has_journal_commits = s->has_checkpoints = 0;
	s->has_checksum_errors = s->has_io_errors = 0;
	s->has_log_bytes_used = s->has_checkpoint_bytes = 0;
	s->has_metadata_refusals = s->has_lookup_hits = 0;
	s->has_lookup_misses = s->has_lookup_hit_bytes = s->has_batches = 0;
	s->has_batch_entries = s->has_batch_segments = s->has_group_events = 0;
	s->has_leases_granted = s->has_leases_consumed = 0;
	s->has_leases_released = s->has_leases_expired = 0;
	s->has_leases_dropped = s->has_evicting = 0;
}

static void stat_(struct server *srv, struct conn *c, Request *req)
{
	Kvswap__V1__StatReply s = KVSWAP__V1__STAT_REPLY__INIT;
	struct rusage ru = { 0 };
	struct tenant *tn;
	char err[96];
	EV_INIT(ev, req);

	if (target(srv, c, req, req->stat->tenant, "stat.tenant", &tn) < 0)
		return;
	if (!tn) {
		snprintf(err, sizeof(err), "stat.tenant '%s': no such tenant",
			 req->stat->tenant);
		conn_send_error(c, req->id, ENOENT, -1, err);
		return;
	}
	getrusage(RUSAGE_SELF, &ru);
	s.has_capacity = s.has_used = s.has_entries = s.has_bytes_in = 1;
	s.has_bytes_out = s.has_requests = s.has_errors = s.has_in_flight = 1;
	s.has_clients = s.has_regions = s.has_store_files = s.has_queue_depth = 1;
	s.has_cpu_user_us = s.has_cpu_system_us = s.has_uptime_ms = 1;
	s.capacity = srv->store.capacity;
	s.used = srv->store.capacity - store_avail(&srv->store);
	s.entries = srv->cat.index.count;
	s.bytes_in = srv->st.bytes_in;
	s.bytes_out = srv->st.bytes_out;
	s.requests = srv->st.requests;
	s.errors = srv->st.errors;
	s.in_flight = srv->xfers.inflight;
	s.clients = srv->conns.count;
	s.regions = srv->regions.count;
	s.store_files = srv->store.nfiles;
	s.queue_depth = srv->cfg.queue_depth;
	s.cpu_user_us = tv_us(ru.ru_utime);
	s.cpu_system_us = tv_us(ru.ru_stime);
	s.uptime_ms = now_ms() - srv->start_ms;
	s.has_evictions = s.has_pinned = s.has_durable = s.has_verify = 1;
	s.has_journal_commits = s.has_checkpoints = 1;
	s.has_checksum_errors = s.has_io_errors = 1;
	s.evictions = srv->st.evictions;
	s.pinned = srv->cat.index.pinned_bytes;
	s.durable = !srv->cfg.cache;
	s.verify = srv->cfg.verify;
	s.journal_commits = srv->jr.commits;
	s.checkpoints = srv->jr.checkpoints;
	s.checksum_errors = srv->st.checksum_errors;
	/* Store I/O that failed: data segments and metadata writes. */
	s.io_errors = srv->st.io_errors + srv->jr.io_errors;
	s.has_log_half_bytes = s.has_log_bytes_used = 1;
	s.has_checkpoint_bytes = s.has_checkpoint_limit = 1;
	s.has_metadata_refusals = 1;
	s.log_half_bytes = srv->store.meta_half;
	s.log_bytes_used = journal_log_used(&srv->jr);
	s.checkpoint_bytes = catalog_checkpoint_bytes(&srv->cat);
	s.checkpoint_limit = srv->cat.meta.limit;
	s.metadata_refusals = srv->st.meta_refusals;
	s.has_lookup_hits = s.has_lookup_misses = s.has_lookup_hit_bytes = 1;
	s.has_batches = s.has_batch_entries = s.has_batch_segments = 1;
	s.has_group_events = s.has_leases_granted = s.has_leases_consumed = 1;
	s.has_leases_released = s.has_leases_expired = s.has_leases_dropped = 1;
	s.has_evicting = 1;
	s.lookup_hits = srv->st.lookup_hits;
	s.lookup_misses = srv->st.lookup_misses;
	s.lookup_hit_bytes = srv->st.lookup_hit_bytes;
	s.batches = srv->st.batches;
	s.batch_entries = srv->st.batch_entries;
	s.batch_segments = srv->st.batch_segments;
	s.group_events = srv->st.group_events;
	s.leases_granted = srv->st.leases_granted;
	s.leases_consumed = srv->st.leases_consumed;
	s.leases_released = srv->st.leases_released;
	s.leases_expired = srv->st.leases_expired;
	s.leases_dropped = srv->st.leases_dropped;
	s.evicting = srv->cat.evicting;
	stat_tenant(&s, tn);
	s.has_admin = 1;
	s.admin = c->admin;
	if (c->admin) {
		s.has_tenants = 1;
		s.tenants = srv->tenants.count;
	} else {
		stat_confine(&s, c->tenant);
	}
	ev.body_case = KVSWAP__V1__EVENT__BODY_STAT;
	ev.stat = &s;
	conn_send(c, &ev);
}

void control_request(void *ctx, struct conn *c, Request *req, int fd)
{
	struct server *srv = ctx;

	switch (req->body_case) {
	case KVSWAP__V1__REQUEST__BODY_SWAP_OUT:
		swap_out(&srv->xfers, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_SWAP_IN:
		swap_in(&srv->xfers, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_SWAP_OUT_BATCH:
		swap_out_batch(&srv->xfers, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_SWAP_IN_BATCH:
		swap_in_batch(&srv->xfers, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_CANCEL:
		swap_cancel(&srv->xfers, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_HELLO:
		hello(srv, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_REGISTER_REGION:
		register_region(srv, c, req, fd);
		fd = -1;
		break;
	case KVSWAP__V1__REQUEST__BODY_UNREGISTER_REGION:
		unregister_region(c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_LOOKUP:
		lookup(srv, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_DESCRIBE:
		describe(srv, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_DELETE:
		delete(srv, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_LIST:
		list(srv, c, req);
		break;
	case KVSWAP__V1__REQUEST__BODY_STAT:
		stat_(srv, c, req);
		break;
	default:
		/* wire_check() let through only known bodies. */
		assert(!"control: unchecked request body");
		break;
	}
	if (fd >= 0)
		close(fd);
}

void control_conn_closing(void *ctx, struct conn *c)
{
	struct server *srv = ctx;

	catalog_unlease_all(&srv->cat, &c->leases);
	swap_conn_abort(&srv->xfers, c);
}

void control_conn_drained(void *ctx, struct conn *c)
{
	region_release_all(c);
}
