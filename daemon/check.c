/* SPDX-License-Identifier: MIT */
/*
 * kvswapd --check (check.h): the store read the way startup reads it
 * (recover.c, replay.c, store.c), nothing written, every finding on one
 * line: "ok", "note" (what a crash leaves and startup handles) or "DAMAGE"
 * (what a crash cannot explain, or what would serve wrong bytes). The exit
 * status counts the DAMAGE lines: 0 none, 1 some.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "defs.h"
#include "index.h"
#include "recover.h"
#include "replay.h"
#include "store.h"
#include "tenant.h"

struct check {
	FILE *out;
	struct store st;
	struct index ix;
	struct recover_plan plan;
	unsigned problems;
	unsigned shown;		/* DAMAGE lines about entries printed */
};

/* Entry problems beyond this many are counted, not each printed. */
#define CHECK_SHOW_MAX	100

__attribute__((format(printf, 3, 4)))
static void say(struct check *c, const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(c->out, "%-6s ", what);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
}

static const char *key_str(const uint8_t *k, size_t n, char *buf, size_t len)
{
	recover_key_str(k, n, buf, len);
	return buf;
}

static void check_superblocks(struct check *c)
{
	const struct rlog *live = c->plan.newer ? NULL : &c->plan.log;
	char line[512];

	for (uint32_t i = 0; i < c->st.nfiles; i++) {
		const struct store_file *f = &c->st.files[i];
		int r = recover_slots(&c->st, i, live, line, sizeof(line));

		if (r == 2)
			c->problems++;
		if (r)
			say(c, r == 2 ? "DAMAGE" : "note", "%s", line);
		else
			say(c, "ok", "%s: superblock slots valid (version %u, "
			    "generation %" PRIu64 ")", f->path,
			    f->slot[f->live].version, f->slot[f->live].gen);
	}
}

static void check_log(struct check *c)
{
	const struct recover_plan *p = &c->plan;
	const struct rlog *lg = &p->log;
	const char *path = c->st.files[0].path;
	char line[640];

	if (c->st.sb_lost || p->newer) {
		/* A lost superblock is counted with the slots above. */
		c->problems += p->newer;
		say(c, p->newer ? "DAMAGE" : "note", "%s", p->what);
		say(c, "note", "%s: reading log half %u (generation %" PRIu64 "), "
		    "where kvswapd --salvage would start", path, lg->half,
		    lg->gen);
	}
	if (!lg->nblk && c->st.sb_lost) {
		say(c, "note", "%s: neither log half starts with a checkpoint: "
		    "nothing to salvage", path);
		return;
	}
	say(c, lg->ndamage ? "note" : "ok", "%s: log half %u, generation %"
	    PRIu64 "%s: checkpoint of %" PRIu64 " blocks%s, %" PRIu64
	    " commits after it, %zu valid blocks; the log ends at block %"
	    PRIu64, path, lg->half, lg->v2 ? c->st.sb_gen : lg->gen,
	    lg->v2 ? " (format version 2)" :
	    "", lg->ck_blocks, lg->v2 || lg->ck_complete || !lg->ck_blocks ?
	    "" : " (incomplete)", lg->commits, lg->nblk, lg->end);
	for (size_t i = 0; i < lg->nhole; i++) {
		if (!lg->hole[i].damage)
			continue;
		c->problems++;
		recover_describe(&c->st, lg, &lg->hole[i], line, sizeof(line));
		say(c, "DAMAGE", "%s", line);
	}
	if (lg->torn)
		say(c, "note", "%s: %" PRIu64 " valid blocks after the end: what a "
		    "crash left of a commit never acknowledged", path, lg->torn);
	if (p->other_valid && !p->newer && !c->st.sb_lost &&
	    (int32_t)(p->other.gen - (uint32_t)c->st.sb_gen) > 0)
		say(c, "note", "%s: the other log half holds a checkpoint of "
		    "generation %" PRIu32 " whose superblock flip a crash cut: "
		    "ignored", path, p->other.gen);
}

static void loss(void *arg, const struct rloss *l)
{
	struct check *c = arg;
	char line[2048];

	recover_loss_line(&c->st, l, line, sizeof(line));
	if (!l->hole) {
		/* A refused record: dropped PUTs are counted once below. */
		c->problems += l->stop;
		say(c, "DAMAGE", "%s", line);
		return;
	}
	say(c, "note", "salvage: %s", line);
}

/* Extents in range, no block claimed twice; the free space per file. */
static int check_extents(struct check *c)
{
	struct claim *cl;
	size_t n;
	unsigned bad = 0;
	int r = recover_claims(&c->ix, &cl, &n);

	if (r < 0)
		return r;
	for (uint32_t f = 0, i = 0; f < c->st.nfiles; f++) {
		const struct alloc *a = &c->st.files[f].alloc;
		uint64_t used = 0, reach = 0, extents = 0;
		const struct claim *prev = NULL;

		for (; i < n && cl[i].x.file == f; i++) {
			const struct sext *x = &cl[i].x;
			char k1[300], k2[300];

			extents++;
			if (!store_extent_valid(&c->st, x)) {
				if (bad++ < CHECK_SHOW_MAX)
					say(c, "DAMAGE", "entry \"%s\": blocks %" PRIu64
					    "+%u of %s are outside its data area",
					    key_str(cl[i].e->key, cl[i].e->key_len, k1,
						    sizeof(k1)), x->block, x->nblocks,
					    c->st.files[f].path);
				continue;
			}
			if (prev && x->block < reach) {
				if (bad++ < CHECK_SHOW_MAX)
					say(c, "DAMAGE", "entries \"%s\" and \"%s\" "
					    "both claim block %" PRIu64 " of %s",
					    key_str(prev->e->key, prev->e->key_len,
						    k1, sizeof(k1)),
					    key_str(cl[i].e->key, cl[i].e->key_len,
						    k2, sizeof(k2)), x->block,
					    c->st.files[f].path);
			}
			used += x->block + x->nblocks > reach ? x->block + x->nblocks -
				(x->block > reach ? x->block : reach) : 0;
			if (x->block + x->nblocks > reach) {
				reach = x->block + x->nblocks;
				prev = &cl[i];
			}
		}
		say(c, "ok", "%s: %" PRIu64 " of %" PRIu64 " data blocks used by %"
		    PRIu64 " extents, %" PRIu64 " free", c->st.files[f].path, used,
		    a->total, extents, a->total - used);
	}
	if (bad) {
		c->problems += bad;
		if (bad > CHECK_SHOW_MAX)
			say(c, "DAMAGE", "%u extent problems in all", bad);
	} else {
		say(c, "ok", "every extent lies in its file's data area, no block "
		    "is claimed twice");
	}
	free(cl);
	return 0;
}

static void bad_seg(void *arg, struct entry *e, uint32_t seg, int err,
		    uint32_t got)
{
	struct check *c = arg;
	char key[300];

	c->problems++;
	if (c->shown++ >= CHECK_SHOW_MAX)
		return;
	if (err == -EBADMSG)
		say(c, "DAMAGE", "entry \"%s\": segment %u (%" PRIu64 " bytes): "
		    "CRC mismatch: stored 0x%08x, read 0x%08x",
		    key_str(e->key, e->key_len, key, sizeof(key)), seg,
		    e->segs[seg].len, e->segs[seg].crc, got);
	else
		say(c, "DAMAGE", "entry \"%s\": segment %u: cannot read it: %s",
		    key_str(e->key, e->key_len, key, sizeof(key)), seg,
		    strerror(-err));
}

static int check_data(struct check *c)
{
	uint64_t segs = 0, bytes = 0;
	unsigned before = c->problems;
	int r = recover_verify(&c->st, &c->ix, bad_seg, c, &segs, &bytes);

	if (r < 0)
		return r;
	if (c->shown > CHECK_SHOW_MAX)
		say(c, "DAMAGE", "%u segments in all fail their check",
		    c->problems - before);
	say(c, c->problems > before ? "note" : "ok", "%" PRIu64 " entries, %"
	    PRIu64 " segments, %" PRIu64 " bytes read back and checked against "
	    "their CRC32C", c->ix.count, segs, bytes);
	return 0;
}

/* Entries and bytes of one tenant, for the report. */
struct tcount {
	char name[TENANT_NAME_MAX + 1];
	uint64_t entries;
	uint64_t bytes;
};

struct tcounts {
	struct tcount *v;
	size_t n;
	uint64_t orphans;	/* keys that name no tenant */
	bool nomem;
};

static void count_tenant(struct entry *e, void *arg)
{
	struct tcounts *t = arg;
	const uint8_t *nul = memchr(e->key, '\0', e->key_len < TENANT_NAME_MAX + 1 ?
					      e->key_len : TENANT_NAME_MAX + 1);
	size_t n = nul ? (size_t)(nul - e->key) : 0, i;
	struct tcount *v;

	if (!nul || !tenant_name_valid((const char *)e->key, n) ||
	    e->key_len - n - 1 < 1 || e->key_len - n - 1 > KVS_MAX_KEY) {
		t->orphans++;
		return;
	}
	for (i = 0; i < t->n; i++)
		if (strlen(t->v[i].name) == n && !memcmp(t->v[i].name, e->key, n))
			break;
	if (i == t->n) {
		v = realloc(t->v, (t->n + 1) * sizeof(*v));
		if (!v) {
			t->nomem = true;
			return;
		}
		t->v = v;
		memset(&v[t->n], 0, sizeof(v[t->n]));
		memcpy(v[t->n].name, e->key, n);
		t->n++;
	}
	t->v[i].entries++;
	t->v[i].bytes += e->size;
}

/*
 * Format 4: every key names its tenant; one line per tenant. Formats 3
 * and 2 name none: the daemon serves them only once migrated.
 */
static void check_tenants(struct check *c)
{
	struct tcounts t = { 0 };
	uint64_t cursor = 0;

	if (!c->st.sb_lost && c->st.sb_version < STORE_VERSION) {
		say(c, "note", "store format version %u keeps no tenants: kvswapd "
		    "serves it only after kvswapd --migrate-tenant=NAME gives its "
		    "entries to tenant NAME", c->st.sb_version);
		return;
	}
	do
		cursor = index_scan(&c->ix, cursor, count_tenant, &t);
	while (cursor);
	for (size_t i = 0; i < t.n && i < CHECK_SHOW_MAX; i++)
		say(c, "ok", "tenant '%s': %" PRIu64 " entries, %" PRIu64 " bytes",
		    t.v[i].name, t.v[i].entries, t.v[i].bytes);
	if (t.n > CHECK_SHOW_MAX)
		say(c, "ok", "%zu tenants in all", t.n);
	if (t.nomem)
		say(c, "note", "out of memory counting entries by tenant");
	if (t.orphans) {
		c->problems++;
		say(c, "DAMAGE", "%" PRIu64 " entries have keys that name no tenant: "
		    "startup drops them", t.orphans);
	}
	free(t.v);
}

int check_store(const char *paths, FILE *out)
{
	struct check c = { .out = out };
	struct replay_stats rs = { 0 };
	char err[640] = "";
	bool around;
	int r;

	r = store_open(&c.st, paths, 0, STORE_CHECK, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "kvswapd --check: %s\n", err);
		return 2;
	}
	if (index_init(&c.ix) < 0) {
		fprintf(stderr, "kvswapd --check: out of memory\n");
		store_close(&c.st);
		return 2;
	}
	fprintf(out, "kvswapd --check: %s (%u files)\n", paths, c.st.nfiles);
	/* The salvage view: where the damage leaves a choice, the newest. */
	r = recover_plan(&c.st, true, &c.plan, err, sizeof(err));
	if (r < 0)
		goto out_fail;
	check_superblocks(&c);
	check_log(&c);
	/* Without damage, what the daemon would serve; with it, what salvage would. */
	around = c.plan.damage > 0;
	r = replay_records(&c.plan.log, &c.ix, c.st.nfiles, around, loss, &c, &rs);
	if (r < 0) {
		snprintf(err, sizeof(err), "replaying the log: %s", strerror(-r));
		goto out_fail;
	}
	if (rs.dropped) {
		c.problems++;
		say(&c, "DAMAGE", "%" PRIu64 " PUT records have contents that do not "
		    "check (extents or lengths): their entries would be dropped",
		    rs.dropped);
	}
	say(&c, "ok", "%" PRIu64 " records replayed: %" PRIu64 " entries",
	    rs.records, c.ix.count);
	check_tenants(&c);
	r = check_extents(&c);
	if (r == 0)
		r = check_data(&c);
	if (r < 0) {
		snprintf(err, sizeof(err), "%s", strerror(-r));
		goto out_fail;
	}
	if (c.problems)
		fprintf(out, "DAMAGED: %u problems; %s\n", c.problems,
			c.plan.damage ? "kvswapd refuses to start on this store; "
			"kvswapd --salvage starts on what survived (the entries "
			"above) and logs what is lost" : "kvswapd starts on it "
			"(damaged superblock slots are rewritten; entries whose "
			"data fails its CRC are dropped when read)");
	else
		fprintf(out, "consistent\n");
	r = c.problems ? 1 : 0;
	goto out_close;

out_fail:
	fprintf(stderr, "kvswapd --check: %s\n", err);
	r = 2;
out_close:
	recover_plan_free(&c.plan);
	index_clear(&c.ix);
	index_fini(&c.ix);
	store_close(&c.st);
	return r;
}
