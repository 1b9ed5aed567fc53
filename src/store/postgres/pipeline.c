/*
 * pipeline.c — the pure bookkeeping of pipeline.h: queued transaction
 * statements and the prepared-statement cache.  No libpq calls, no I/O.
 */
#include "store/postgres/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- transaction statements ------------------------------------------------------------------ */

void tally_pg_tx_reset(tally_pg_tx *t) { memset(t, 0, sizeof *t); }

static bool push(tally_pg_tx *t, tally_pg_ctl c)
{
    if (t->npending >= TALLY_PG_PENDING_MAX)
        return false;
    t->pending[t->npending++] = c;
    return true;
}

static bool last_is(const tally_pg_tx *t, tally_pg_ctl c) { return t->npending > 0 && t->pending[t->npending - 1] == c; }

bool tally_pg_tx_begin(tally_pg_tx *t)
{
    tally_pg_tx_reset(t);
    t->txn = true;
    return push(t, TALLY_PG_CTL_BEGIN);
}

bool tally_pg_tx_savepoint(tally_pg_tx *t)
{
    if (!push(t, TALLY_PG_CTL_SAVEPOINT))
        return false;
    t->wanted++;
    return true;
}

bool tally_pg_tx_release(tally_pg_tx *t)
{
    if (last_is(t, TALLY_PG_CTL_SAVEPOINT)) { /* never reached the server: nothing ran in it */
        t->npending--;
    } else if (!push(t, TALLY_PG_CTL_RELEASE)) {
        return false;
    }
    if (t->wanted > 0)
        t->wanted--;
    return true;
}

bool tally_pg_tx_rollback_to(tally_pg_tx *t)
{
    if (last_is(t, TALLY_PG_CTL_SAVEPOINT)) /* nothing ran in it: nothing to undo; it stays open */
        return true;
    if (!push(t, TALLY_PG_CTL_ROLLBACK_TO))
        return false;
    t->aborted = false; /* rescued, once the queued ROLLBACK TO runs (if it fails: broken) */
    return true;
}

bool tally_pg_tx_on_server(const tally_pg_tx *t) { return t->txn && t->begun; }

void tally_pg_tx_sent(tally_pg_tx *t, int n, const tally_pg_outcome *outcomes, tally_pg_outcome stmt,
                      tally_pg_server_tx server)
{
    if (n > t->npending)
        n = t->npending;
    for (int i = 0; i < n; i++) {
        if (outcomes[i] != TALLY_PG_OK) {
            t->broken = true;
            continue;
        }
        switch (t->pending[i]) {
        case TALLY_PG_CTL_BEGIN: t->begun = true; break;
        case TALLY_PG_CTL_SAVEPOINT: t->savepoints++; break;
        case TALLY_PG_CTL_RELEASE:
            if (t->savepoints > 0)
                t->savepoints--;
            break;
        case TALLY_PG_CTL_ROLLBACK_TO: break; /* the savepoint stays open */
        }
    }
    memmove(t->pending, t->pending + n, (size_t)(t->npending - n) * sizeof *t->pending);
    t->npending -= n;
    if (!t->txn)
        return;
    bool rescue_queued = false;
    for (int i = 0; i < t->npending; i++)
        if (t->pending[i] == TALLY_PG_CTL_ROLLBACK_TO)
            rescue_queued = true;
    switch (server) {
    case TALLY_PG_SERVER_INERROR: t->aborted = !rescue_queued; break;
    case TALLY_PG_SERVER_INTRANS: t->aborted = false; break;
    case TALLY_PG_SERVER_IDLE: /* our transaction is gone on the server (if it ever got there) */
        if (t->begun)
            t->broken = true;
        break;
    case TALLY_PG_SERVER_UNKNOWN: t->broken = true; break;
    }
    if (stmt == TALLY_PG_FAILED && server == TALLY_PG_SERVER_UNKNOWN)
        t->aborted = true;
}

void tally_pg_tx_ended(tally_pg_tx *t) { tally_pg_tx_reset(t); }

bool tally_pg_tx_usable(const tally_pg_tx *t)
{
    return t->txn && !t->broken && (!t->aborted || t->savepoints > 0);
}

const char *tally_pg_ctl_sql(tally_pg_ctl c)
{
    switch (c) {
    case TALLY_PG_CTL_BEGIN: return "BEGIN";
    case TALLY_PG_CTL_SAVEPOINT: return "SAVEPOINT r";
    case TALLY_PG_CTL_RELEASE: return "RELEASE SAVEPOINT r";
    case TALLY_PG_CTL_ROLLBACK_TO: return "ROLLBACK TO SAVEPOINT r";
    }
    return "";
}

/* ---- prepared statements ----------------------------------------------------------------------- */

#define SLOTS (2 * TALLY_PG_STMTS_MAX)

static uint64_t hash_of(const char *sql, size_t len, const tally_pg_oid *types, int ntypes)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)sql[i]) * 1099511628211ull;
    for (int i = 0; i < ntypes; i++)
        h = (h ^ types[i]) * 1099511628211ull;
    return h;
}

void tally_pg_stmts_init(tally_pg_stmts *c) { memset(c, 0, sizeof *c); }

void tally_pg_stmts_clear(tally_pg_stmts *c)
{
    for (int i = 0; i < TALLY_PG_STMTS_MAX; i++)
        free(c->entries[i].sql);
    uint64_t next = c->next_name, hits = c->hits, misses = c->misses, evictions = c->evictions;
    memset(c, 0, sizeof *c);
    c->next_name = next; /* names are never reused on one connection */
    c->hits = hits;
    c->misses = misses;
    c->evictions = evictions;
}

static void index_put(tally_pg_stmts *c, int e)
{
    size_t slot = (size_t)(c->entries[e].hash & (SLOTS - 1));
    while (c->index[slot])
        slot = (slot + 1) & (SLOTS - 1);
    c->index[slot] = (int16_t)(e + 1);
}

static void reindex(tally_pg_stmts *c)
{
    memset(c->index, 0, sizeof c->index);
    for (int e = 0; e < TALLY_PG_STMTS_MAX; e++)
        if (c->entries[e].sql)
            index_put(c, e);
}

static void forget(tally_pg_stmts *c, tally_pg_stmt *s)
{
    free(s->sql);
    memset(s, 0, sizeof *s);
    c->count--;
    reindex(c);
}

tally_pg_stmt *tally_pg_stmts_get(tally_pg_stmts *c, const char *sql, size_t len, const tally_pg_oid *types,
                                  int ntypes)
{
    if (ntypes > TALLY_PG_STMT_TYPES_MAX || ntypes < 0)
        return NULL;
    uint64_t h = hash_of(sql, len, types, ntypes);
    for (size_t slot = (size_t)(h & (SLOTS - 1)); c->index[slot]; slot = (slot + 1) & (SLOTS - 1)) {
        tally_pg_stmt *s = &c->entries[c->index[slot] - 1];
        if (s->hash == h && s->len == len && s->ntypes == ntypes && memcmp(s->sql, sql, len) == 0 &&
            (ntypes == 0 || memcmp(s->types, types, (size_t)ntypes * sizeof *types) == 0)) {
            s->used = ++c->clock;
            c->hits++;
            return s;
        }
    }
    c->misses++;
    int free_e = -1;
    if (c->count < TALLY_PG_STMTS_MAX) {
        for (int e = 0; e < TALLY_PG_STMTS_MAX && free_e < 0; e++)
            if (!c->entries[e].sql)
                free_e = e;
    } else { /* evict the least recently used, if its name can be queued for DEALLOCATE */
        int lru = -1;
        for (int e = 0; e < TALLY_PG_STMTS_MAX; e++)
            if (lru < 0 || c->entries[e].used < c->entries[lru].used)
                lru = e;
        tally_pg_stmt *v = &c->entries[lru];
        if (v->prepared) {
            if (c->ndealloc >= TALLY_PG_DEALLOC_MAX)
                return NULL;
            memcpy(c->dealloc[c->ndealloc++], v->name, sizeof v->name);
        }
        c->evictions++;
        forget(c, v);
        free_e = lru;
    }
    tally_pg_stmt *s = &c->entries[free_e];
    s->sql = malloc(len + 1);
    if (!s->sql)
        abort();
    memcpy(s->sql, sql, len);
    s->sql[len] = '\0';
    s->len = len;
    s->hash = h;
    s->ntypes = ntypes;
    if (ntypes)
        memcpy(s->types, types, (size_t)ntypes * sizeof *types);
    snprintf(s->name, sizeof s->name, "t%llu", (unsigned long long)++c->next_name);
    s->prepared = false;
    s->used = ++c->clock;
    c->count++;
    index_put(c, free_e);
    return s;
}

void tally_pg_stmts_drop(tally_pg_stmts *c, tally_pg_stmt *s)
{
    if (s && s->sql)
        forget(c, s);
}

void tally_pg_stmts_deallocated(tally_pg_stmts *c, int n)
{
    if (n > c->ndealloc)
        n = c->ndealloc;
    memmove(c->dealloc, c->dealloc + n, (size_t)(c->ndealloc - n) * sizeof c->dealloc[0]);
    c->ndealloc -= n;
}
