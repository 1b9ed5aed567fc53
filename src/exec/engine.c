/* engine.c — one open database and its workers; see engine.h. */
#include "exec/engine.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "exec/feed.h"
#include "exec/lock_hints.h"
#include "exec/keyring.h"
#include "exec/metrics.h"
#include "exec/reader.h"
#include "exec/route.h"
#include "exec/run.h"
#include "exec/session.h"
#include "exec/session_pool.h"

struct tally_engine {
    const tally_schema *schema;
    const tally_backend_ops *ops;
    char *db;                       /* the URL, owned (runners reconnect with it) */
    tally_store_options store_opt;
    tally_writer **lanes;           /* one writer (thread + connection + batch) per lane */
    int nlanes;
    atomic_uint next_lane;          /* for requests with no key: the next lane in turn */
    tally_reader *reader;
    tally_session_pool *sessions;   /* NULL where sessions own the writer */
    tally_lock_hints *hints;        /* NULL where the backend has none, or --portable */
    tally_keyring *keyring;         /* the API key table's cache */
    tally_feed *feed;               /* the change feed's followers (and PostgreSQL's sequencer) */
};

struct tally_engine_local {
    tally_store *store; /* a read-only connection of a backend that reads in place */
};

/* A lane released lock `name` in a committed batch (its writer thread): tell the other servers. */
static void released(void *ctx, const char *name, size_t len)
{
    tally_engine *e = ctx;
    tally_lock_hints_released(e->hints, name, len);
}

/* The hints thread heard that `name` was released somewhere: its lane's first waiter tries now. */
static void hinted(void *ctx, const char *name, size_t len)
{
    tally_engine *e = ctx;
    tally_writer *w = e->lanes[e->nlanes == 1 ? 0 : tally_route_lock(name, len) % (uint64_t)e->nlanes];
    if (w)
        tally_writer_hint(w, name, len);
}

/* A lane committed writes: the feed looks at once rather than at its next poll. */
static void committed(void *ctx)
{
    tally_engine *e = ctx;
    tally_feed_poke(e->feed);
}

static int open_writer(const tally_schema *schema, const tally_engine_options *opt, tally_store **out,
                       tally_error *err)
{
    tally_store_options so = {.role = TALLY_STORE_WRITER, .relaxed_durability = opt->relaxed_durability,
                              .portable = opt->portable, .changes_retention_ms = opt->changes_retention_ms,
                              .changes_max_rows = opt->changes_max_rows};
    if (tally_store_open(opt->db, schema, &so, out, err))
        return -(int)err->code;
    unsigned flags = (opt->allow_destructive ? TALLY_MIGRATE_DESTRUCTIVE : 0) | (opt->check_only ? TALLY_MIGRATE_CHECK_ONLY : 0);
    if (tally_store_migrate_noting(*out, flags, opt->migration_changes, err)) {
        tally_error why = *err;
        tally_fail(err, why.code, NULL, "schema change refused: %s", why.message);
        tally_store_close(*out);
        *out = NULL;
        return -(int)err->code;
    }
    return 0;
}

int tally_engine_migrate(const tally_schema *schema, const tally_engine_options *opt, tally_error *err)
{
    tally_store *st;
    if (open_writer(schema, opt, &st, err))
        return -(int)err->code;
    tally_store_close(st);
    return 0;
}

int tally_engine_open(const tally_schema *schema, const tally_engine_options *opt, tally_engine **out,
                      tally_error *err)
{
    *out = NULL;
    tally_engine *e = calloc(1, sizeof *e);
    if (!e)
        abort();
    const char *target;
    e->schema = schema;
    e->ops = tally_backend_for(opt->db, &target);
    e->db = strdup(opt->db);
    e->store_opt = (tally_store_options){.relaxed_durability = opt->relaxed_durability, .portable = opt->portable,
                                         .changes_retention_ms = opt->changes_retention_ms,
                                         .changes_max_rows = opt->changes_max_rows};
    const tally_backend_caps *caps = &e->ops->caps;
    /* Another server's lock releases reach this one's waiters as hints; its own go out after COMMIT. */
    tally_writer_options wopt = opt->writer;
    if (caps->cross_server_wakeups && !opt->portable && e->ops->hint_listen) {
        if (tally_lock_hints_start(e->db, schema, &e->store_opt, hinted, e, &e->hints, err))
            goto fail;
        wopt.on_release = released;
        wopt.release_ctx = e;
    }
    wopt.on_commit = committed;
    wopt.commit_ctx = e;
    /* Past-retention changes go within a quarter of the retention (and at least every minute). */
    if (!wopt.sweep_every_ms) {
        int64_t keep = opt->changes_retention_ms > 0 ? opt->changes_retention_ms : 24LL * 3600 * 1000;
        wopt.sweep_every_ms = keep / 4 < 60000 ? (uint64_t)(keep / 4 > 50 ? keep / 4 : 50) : 60000;
        if (opt->changes_max_rows > 0 && wopt.sweep_every_ms > 1000) /* bounded by rows: looked at every second */
            wopt.sweep_every_ms = 1000;
    }
    /* One lane where the backend has one writer (SQLite); else --lanes, or the backend's default. */
    e->nlanes = caps->lanes <= 1 ? 1 : opt->lanes > 0 ? opt->lanes : caps->lanes;
    e->lanes = calloc((size_t)e->nlanes, sizeof *e->lanes);
    if (!e->lanes)
        abort();
    for (int i = 0; i < e->nlanes; i++) {
        tally_store *wstore = NULL;
        /* The first lane migrates; the others find the schema in place. */
        tally_engine_options lane_opt = *opt;
        int rc = i == 0 ? open_writer(schema, &lane_opt, &wstore, err)
                        : tally_store_open(e->db, schema, &(tally_store_options){.role = TALLY_STORE_WRITER,
                                           .relaxed_durability = opt->relaxed_durability, .portable = opt->portable,
                                           .changes_retention_ms = opt->changes_retention_ms,
                                           .changes_max_rows = opt->changes_max_rows},
                                           &wstore, err);
        if (rc)
            goto fail;
        if (tally_writer_start(wstore, &wopt, &e->lanes[i], err)) {
            tally_store_close(wstore);
            goto fail;
        }
    }
    int nreaders = opt->readers > 0 ? opt->readers : caps->reads_in_place ? 1 : 2;
    tally_store *rstores[16];
    if (nreaders > 16)
        nreaders = 16;
    tally_store_options ro = {.role = TALLY_STORE_READER, .relaxed_durability = opt->relaxed_durability,
                              .portable = opt->portable};
    for (int i = 0; i < nreaders; i++)
        if (tally_store_open(e->db, schema, &ro, &rstores[i], err)) {
            while (i-- > 0)
                tally_store_close(rstores[i]);
            goto fail;
        }
    if (tally_reader_start(rstores, nreaders, 10000, &e->reader, err))
        goto fail;
    if (!caps->session_owns_writer) {
        uint64_t wait = opt->begin_wait_ms ? opt->begin_wait_ms
                                           : opt->writer.queue_timeout_ms ? opt->writer.queue_timeout_ms : 5000;
        if (tally_session_pool_start(e->db, schema, &e->store_opt, opt->sessions > 0 ? opt->sessions : 16, wait,
                                     &e->sessions, err))
            goto fail;
    }
    if (tally_keyring_start(e->db, schema, &e->store_opt, &e->keyring, err))
        goto fail;
    if (tally_feed_start(e->db, schema, &e->store_opt, opt->changes_poll_ms, &e->feed, err))
        goto fail;
    *out = e;
    return 0;
fail:
    tally_engine_close(e);
    return -(int)err->code;
}

const tally_backend_ops *tally_engine_backend(const tally_engine *e) { return e->ops; }

tally_keyring *tally_engine_keyring(tally_engine *e) { return e->keyring; }

bool tally_engine_healthy(tally_engine *e, char *reason, size_t cap, tally_db_state *state)
{
    for (int i = 0; i < e->nlanes; i++)
        if (!tally_writer_healthy(e->lanes[i], reason, cap, i == 0 ? state : NULL))
            return false;
    return true;
}

/* The lane of the first key the job touches, or the next lane in turn. */
static tally_writer *lane_of(tally_engine *e, const tally_job *job)
{
    if (e->nlanes == 1)
        return e->lanes[0];
    uint64_t h;
    unsigned i = tally_route_key(job->plan, &h) ? (unsigned)(h % (uint64_t)e->nlanes)
                                                : atomic_fetch_add(&e->next_lane, 1) % (unsigned)e->nlanes;
    return e->lanes[i];
}

int tally_engine_submit(tally_engine *e, tally_job *job)
{
    switch (job->kind) {
    case TALLY_JOB_BEGIN:
        return e->sessions ? tally_session_pool_submit(e->sessions, job) : tally_writer_submit(e->lanes[0], job);
    case TALLY_JOB_STEP:
    case TALLY_JOB_COMMIT:
    case TALLY_JOB_ROLLBACK:
        return tally_session_push(job);
    default:
        if (job->plan->nsteps == 1 && job->plan->steps[0].op == TALLY_OP_CHANGES)
            return e->feed ? tally_feed_submit(e->feed, job) : -TALLY_OVERLOADED;
        return job->plan->writes ? tally_writer_submit(lane_of(e, job), job) : tally_reader_submit(e->reader, job);
    }
}

int tally_engine_local_open(tally_engine *e, tally_engine_local **out, tally_error *err)
{
    *out = NULL;
    if (!e->ops->caps.reads_in_place)
        return 0;
    tally_engine_local *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    tally_store_options ro = {.role = TALLY_STORE_READER};
    if (tally_store_open(e->db, e->schema, &ro, &l->store, err)) {
        free(l);
        return -(int)err->code;
    }
    *out = l;
    return 0;
}

void tally_engine_local_close(tally_engine_local *l)
{
    if (!l)
        return;
    tally_store_close(l->store);
    free(l);
}

bool tally_engine_read_here(tally_engine_local *l, tally_job *job)
{
    if (!l)
        return false;
    tally_read_here(l->store, job);
    return true;
}

char *tally_engine_metrics(tally_engine *e, size_t *len)
{
    tally_writer_stats lanes[e->nlanes];
    size_t depth = 0;
    for (int i = 0; i < e->nlanes; i++) {
        lanes[i] = tally_writer_get_stats(e->lanes[i]);
        depth += lanes[i].queue_depth;
    }
    tally_metrics_gauges g = {.backend = e->ops, .write_queue_depth = depth,
                              .read_queue_depth = tally_reader_queue_depth(e->reader),
                              .open_sessions = e->sessions ? tally_session_pool_busy(e->sessions) : 0,
                              .lanes = lanes, .nlanes = e->nlanes, .hints = tally_lock_hints_get_stats(e->hints),
                              .feed = tally_feed_get_stats(e->feed)};
    return tally_metrics_render(&g, len);
}

void tally_engine_feed_stats(tally_engine *e, tally_feed_stats *out) { *out = tally_feed_get_stats(e->feed); }

void tally_engine_stop(tally_engine *e)
{
    if (!e)
        return;
    /* Sessions first: a commit still to come may be waited on by writes. */
    tally_session_pool_stop(e->sessions);
    tally_keyring_stop(e->keyring);
    for (int i = 0; e->lanes && i < e->nlanes; i++)
        tally_writer_stop(e->lanes[i]);
    tally_lock_hints_stop(e->hints); /* after the lanes: nothing is released any more */
    tally_feed_stop(e->feed); /* after the lanes: held polls get the last commits */
    tally_reader_stop(e->reader);
}

void tally_engine_close(tally_engine *e)
{
    if (!e)
        return;
    tally_engine_stop(e);
    tally_session_pool_free(e->sessions);
    tally_keyring_free(e->keyring);
    tally_lock_hints_free(e->hints); /* stopped above; /metrics read its stats until the loops ended */
    tally_feed_free(e->feed);
    e->feed = NULL;
    for (int i = 0; e->lanes && i < e->nlanes; i++)
        tally_writer_free(e->lanes[i]); /* closes the writer connection: SQLite checkpoints on close */
    free(e->lanes);
    tally_reader_free(e->reader);
    free(e->db);
    free(e);
}
