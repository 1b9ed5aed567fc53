/*
 * connection.c — the PostgreSQL backend of store/backend.h: one libpq
 * connection per tally_store, owned by one thread (writer, reader or session
 * runner).  Each statement is one round trip, in one libpq pipeline with what
 * the transaction ops queued before it (a lazy BEGIN and SAVEPOINT, a
 * deferred RELEASE or ROLLBACK TO: pipeline.h keeps that bookkeeping), and
 * runs as a statement prepared once a connection (cached by SQL text and
 * parameter types), so the writer's request costs one round trip and no
 * parsing instead of three of each.  This file owns opening (the
 * session settings and the durability checks), reconnecting between
 * transactions, transactions and savepoints, the query helper that binds
 * every value as a typed parameter, reading binary results, and the ops
 * table with its capabilities.  Record steps are in steps.c, errors in
 * errors.c, the rest in their own files (see internal.h).
 */
#include "store/postgres/internal.h"

#include "core/buf.h"
#include "core/datetime.h"

#include <endian.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* ---- URLs ------------------------------------------------------------------------------------ */

/* ---- query helper ----------------------------------------------------------------------------- */

void tally_pg_diag_of(tally_pg *st, const PGresult *res, tally_pg_diag *d)
{
    memset(d, 0, sizeof *d);
    if (res) {
        d->sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        d->message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        d->constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        d->column = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
        d->table = PQresultErrorField(res, PG_DIAG_TABLE_NAME);
    }
    d->lost = PQstatus(st->conn) != CONNECTION_OK;
    if (!d->message)
        d->message = PQerrorMessage(st->conn);
}

void tally_pg_log(const tally_pg_diag *d, const char *sql)
{
    fprintf(stderr, "tally: PostgreSQL: %s%s%s%s (in: %.300s)\n", d->sqlstate ? "SQLSTATE " : "",
            d->sqlstate ? d->sqlstate : "", d->sqlstate ? ": " : "", d->message ? d->message : "?", sql ? sql : "");
}

#define SMALL_PARAMS 32

int tally_pg_query(tally_pg *st, const tally_plan *plan, const char *sql, const tally_value *v, int n, PGresult **out,
                   tally_pg_diag *diag)
{
    return tally_pg_query_as(st, plan, sql, v, n, NULL, out, diag);
}

int tally_pg_query_as(tally_pg *st, const tally_plan *plan, const char *sql, const tally_value *v, int n,
                      const Oid *as, PGresult **out, tally_pg_diag *diag)
{
    Oid types_s[SMALL_PARAMS] = {0};
    const char *values_s[SMALL_PARAMS] = {0};
    int lengths_s[SMALL_PARAMS] = {0}, formats_s[SMALL_PARAMS] = {0};
    uint64_t nums_s[SMALL_PARAMS];
    Oid *types = types_s;
    const char **values = values_s;
    int *lengths = lengths_s, *formats = formats_s;
    uint64_t *nums = nums_s;
    if (n > SMALL_PARAMS) {
        types = malloc((size_t)n * sizeof *types);
        values = malloc((size_t)n * sizeof *values);
        lengths = malloc((size_t)n * sizeof *lengths);
        formats = malloc((size_t)n * sizeof *formats);
        nums = malloc((size_t)n * sizeof *nums);
        if (!types || !values || !lengths || !formats || !nums)
            abort();
    }
    for (int i = 0; i < n; i++) {
        tally_value x = v[i].kind == TALLY_VALUE_REF && plan ? tally_plan_resolve(plan, &v[i]) : v[i];
        formats[i] = 1; /* binary: no formatting, no NUL terminator needed */
        switch (x.kind) {
        case TALLY_VALUE_INT:
            types[i] = TALLY_PG_INT8;
            nums[i] = htobe64((uint64_t)x.u.i);
            values[i] = (const char *)&nums[i];
            lengths[i] = 8;
            break;
        case TALLY_VALUE_FLOAT: {
            uint64_t bits;
            memcpy(&bits, &x.u.f, sizeof bits);
            types[i] = TALLY_PG_FLOAT8;
            nums[i] = htobe64(bits);
            values[i] = (const char *)&nums[i];
            lengths[i] = 8;
            break;
        }
        case TALLY_VALUE_TEXT:
            types[i] = TALLY_PG_TEXT;
            values[i] = x.u.text.len ? x.u.text.ptr : "";
            lengths[i] = (int)x.u.text.len;
            break;
        default: /* NULL (or an unresolved REF): typed by where it is used */
            types[i] = 0;
            values[i] = NULL;
            lengths[i] = 0;
            break;
        }
        if (as && as[i])
            types[i] = as[i];
    }
    int rc = tally_pg_run(st, sql, n, types, values, lengths, formats, out, diag);
    if (n > SMALL_PARAMS) {
        free(types);
        free(values);
        free(lengths);
        free(formats);
        free(nums);
    }
    return rc;
}

/* ---- round trips: one pipeline each --------------------------------------------------------------- */

static tally_pg_outcome outcome_of(const PGresult *r)
{
    switch (r ? PQresultStatus(r) : PGRES_FATAL_ERROR) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK: return TALLY_PG_OK;
    case PGRES_PIPELINE_ABORTED: return TALLY_PG_SKIPPED;
    default: return TALLY_PG_FAILED;
    }
}

static tally_pg_server_tx server_tx(PGconn *c)
{
    if (PQstatus(c) != CONNECTION_OK)
        return TALLY_PG_SERVER_UNKNOWN;
    switch (PQtransactionStatus(c)) {
    case PQTRANS_IDLE: return TALLY_PG_SERVER_IDLE;
    case PQTRANS_INTRANS: return TALLY_PG_SERVER_INTRANS;
    case PQTRANS_INERROR: return TALLY_PG_SERVER_INERROR;
    default: return TALLY_PG_SERVER_UNKNOWN;
    }
}

/* The next command's result in a pipeline (its first; the rest up to the NULL
 * that ends the command are dropped), or NULL when none came (connection lost). */
static PGresult *next_result(PGconn *c)
{
    PGresult *r = PQgetResult(c);
    if (!r)
        return NULL;
    if (PQresultStatus(r) == PGRES_PIPELINE_SYNC)
        return r;
    for (PGresult *more; (more = PQgetResult(c)) != NULL;)
        PQclear(more);
    return r;
}

/*
 * One round trip, in one pipeline: the DEALLOCATEs of evicted statements
 * (only outside a transaction of ours that reached the server), the queued
 * transaction statements, then sql (if not NULL) — prepared under its cached
 * name when cache (a PREPARE in the same pipeline on first use) — and one
 * Sync.  Returns sql's result; when a statement before it failed, that
 * failure's result instead (so the caller's diagnostics name the real
 * error), and NULL when no answer came.  The bookkeeping moves on with what
 * the server answered.
 */
/* The transaction statements, prepared on every connection (setup) under these names. */
static const char *const CTL_NAME[] = {
    [TALLY_PG_CTL_BEGIN] = "tally_begin", [TALLY_PG_CTL_SAVEPOINT] = "tally_savepoint",
    [TALLY_PG_CTL_RELEASE] = "tally_release", [TALLY_PG_CTL_ROLLBACK_TO] = "tally_rollback_to",
};

static int prepare_ctl(PGconn *c)
{
    for (int i = 0; i < TALLY_PG_CTL_COUNT; i++) {
        PGresult *r = PQprepare(c, CTL_NAME[i], tally_pg_ctl_sql((tally_pg_ctl)i), 0, NULL);
        int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

static PGresult *round_trip(tally_pg *st, const char *sql, bool cache, int n, const Oid *types,
                            const char *const *values, const int *lengths, const int *formats)
{
    PGconn *c = st->conn;
    tally_pg_tx *tx = &st->tx;
    int ndealloc = tx->txn && tx->begun ? 0 : st->stmts.ndealloc;
    int nctl = tx->npending;
    tally_pg_stmt *e = sql && cache ? tally_pg_stmts_get(&st->stmts, sql, strlen(sql), types, n) : NULL;
    bool prep = e && !e->prepared;
    tally_pg_outcome outcomes[TALLY_PG_PENDING_MAX];
    PGresult *failed = NULL, *res = NULL;
    bool sent = PQstatus(c) == CONNECTION_OK && PQenterPipelineMode(c);
    if (sent) {
        char sqlbuf[48];
        for (int i = 0; i < ndealloc && sent; i++) {
            snprintf(sqlbuf, sizeof sqlbuf, "DEALLOCATE %s", st->stmts.dealloc[i]);
            sent = PQsendQueryParams(c, sqlbuf, 0, NULL, NULL, NULL, NULL, 0);
        }
        if (ndealloc) /* a Sync of their own: a failure there aborts nothing after it */
            sent = PQpipelineSync(c) && sent;
        for (int i = 0; i < nctl && sent; i++) /* prepared by setup() */
            sent = PQsendQueryPrepared(c, CTL_NAME[tx->pending[i]], 0, NULL, NULL, NULL, 0);
        if (sent && prep)
            sent = PQsendPrepare(c, e->name, sql, n, types);
        if (sent && e)
            sent = PQsendQueryPrepared(c, e->name, n, values, lengths, formats, 1);
        else if (sent && sql)
            sent = PQsendQueryParams(c, sql, n, types, values, lengths, formats, 1);
        sent = PQpipelineSync(c) && sent;
    }
    /* The answers, in order; after a lost connection none come (NULL). */
    bool lost = !sent;
    int dealloc_ok = 0;
    for (int i = 0; i < ndealloc; i++) {
        PGresult *r = lost ? NULL : next_result(c);
        lost = lost || !r;
        if (outcome_of(r) == TALLY_PG_OK && dealloc_ok == i)
            dealloc_ok++;
        PQclear(r);
    }
    if (ndealloc && !lost) { /* their Sync */
        PGresult *r = PQgetResult(c);
        lost = !r || PQresultStatus(r) != PGRES_PIPELINE_SYNC;
        PQclear(r);
    }
    for (int i = 0; i < nctl; i++) {
        PGresult *r = lost ? NULL : next_result(c);
        lost = lost || !r;
        outcomes[i] = outcome_of(r);
        if (!failed && outcomes[i] == TALLY_PG_FAILED && r)
            failed = r, r = NULL;
        PQclear(r);
    }
    if (prep) {
        PGresult *r = lost ? NULL : next_result(c);
        lost = lost || !r;
        if (outcome_of(r) == TALLY_PG_OK) {
            e->prepared = true;
        } else {
            tally_pg_stmts_drop(&st->stmts, e);
            if (!failed && r)
                failed = r, r = NULL;
        }
        PQclear(r);
    }
    if (sql) {
        res = lost ? NULL : next_result(c);
        lost = lost || !res;
    }
    if (!lost) { /* the Sync's answer; anything else before it is not ours */
        for (PGresult *r; (r = PQgetResult(c)) != NULL;) {
            bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
            PQclear(r);
            if (sync)
                break;
            if (PQstatus(c) != CONNECTION_OK)
                break;
        }
    }
    if (PQpipelineStatus(c) != PQ_PIPELINE_OFF && !PQexitPipelineMode(c))
        lost = true; /* results left over: the connection is not usable as it is */
    /* A DEALLOCATE that failed found no such statement (or ran in an aborted
     * migration, leaving one behind): either way, never send it again. */
    tally_pg_stmts_deallocated(&st->stmts, lost ? dealloc_ok : ndealloc);
    tally_pg_server_tx server = lost ? TALLY_PG_SERVER_UNKNOWN : server_tx(c);
    tally_pg_tx_sent(tx, nctl, outcomes, sql ? outcome_of(res) : TALLY_PG_OK, server);
    if (failed) {
        PQclear(res);
        return failed;
    }
    return res;
}

/* Sends what is queued, if anything, before a statement that goes another way (PQexec). */
static int flush(tally_pg *st)
{
    if (st->tx.npending == 0)
        return 0;
    PGresult *r = round_trip(st, NULL, false, 0, NULL, NULL, NULL, NULL);
    int rc = r ? -1 : 0; /* a result here is a failure's */
    PQclear(r);
    return st->tx.broken ? -1 : rc;
}

int tally_pg_run(tally_pg *st, const char *sql, int n, const Oid *types, const char *const *values,
                 const int *lengths, const int *formats, PGresult **out, tally_pg_diag *diag)
{
    PGresult *res = round_trip(st, sql, true, n, types, values, lengths, formats);
    *out = res;
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
        return 0;
    if (diag)
        tally_pg_diag_of(st, res, diag);
    return -1;
}

int tally_pg_exec(tally_pg *st, const char *sql, tally_error *err)
{
    if (flush(st))
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not run the transaction's statements; "
                          "retry");
    PGresult *res = PQexec(st->conn, sql);
    if (st->tx.txn) /* e.g. a ROLLBACK TO of steps.c's own savepoint rescues an aborted transaction */
        tally_pg_tx_sent(&st->tx, 0, NULL, TALLY_PG_OK, server_tx(st->conn));
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        tally_pg_diag d;
        tally_pg_diag_of(st, res, &d);
        rc = d.lost ? tally_fail(err, TALLY_UNAVAILABLE, NULL, "the PostgreSQL connection to %s was lost; retry",
                                 st->where)
                    : tally_fail(err, TALLY_INTERNAL, NULL, "PostgreSQL: %s (in: %.200s)", d.message ? d.message : "?",
                                 sql);
    }
    PQclear(res);
    return rc;
}

/* ---- reading binary results ----------------------------------------------------------------- */

int64_t tally_pg_int(const PGresult *res, int row, int c)
{
    const char *p = PQgetvalue(res, row, c);
    switch (PQftype(res, c)) {
    case TALLY_PG_INT8: { uint64_t x; memcpy(&x, p, 8); return (int64_t)be64toh(x); }
    case TALLY_PG_INT4: { uint32_t x; memcpy(&x, p, 4); return (int32_t)be32toh(x); }
    case TALLY_PG_INT2: { uint16_t x; memcpy(&x, p, 2); return (int16_t)be16toh(x); }
    case TALLY_PG_BOOL: return p[0] != 0;
    default: return 0;
    }
}

double tally_pg_float(const PGresult *res, int row, int c)
{
    const char *p = PQgetvalue(res, row, c);
    if (PQftype(res, c) == TALLY_PG_FLOAT4) {
        uint32_t x;
        float f;
        memcpy(&x, p, 4);
        x = be32toh(x);
        memcpy(&f, &x, 4);
        return f;
    }
    if (PQftype(res, c) != TALLY_PG_FLOAT8)
        return (double)tally_pg_int(res, row, c);
    uint64_t x;
    double f;
    memcpy(&x, p, 8);
    x = be64toh(x);
    memcpy(&f, &x, 8);
    return f;
}

/* As sqlite/connection.c reads a row: integers INT, doubles FLOAT, text TEXT, NULL NULL. */
void tally_pg_read_record(const PGresult *res, int row, int first, const tally_model *m, tally_arena *arena,
                          tally_record *out)
{
    out->cols = tally_arena_alloc(arena, (size_t)m->ncolumns * sizeof *out->cols);
    for (int c = 0; c < m->ncolumns; c++) {
        int rc = first + c;
        if (PQgetisnull(res, row, rc)) {
            out->cols[c] = tally_value_null();
            continue;
        }
        switch (PQftype(res, rc)) {
        case TALLY_PG_INT8:
        case TALLY_PG_INT4:
        case TALLY_PG_INT2:
        case TALLY_PG_BOOL: out->cols[c] = tally_value_int(tally_pg_int(res, row, rc)); break;
        case TALLY_PG_FLOAT8:
        case TALLY_PG_FLOAT4: out->cols[c] = tally_value_float(tally_pg_float(res, row, rc)); break;
        default: {
            size_t n = (size_t)PQgetlength(res, row, rc);
            out->cols[c] = tally_value_text(tally_arena_strndup(arena, PQgetvalue(res, row, rc), n), n);
            break;
        }
        }
    }
}

bool tally_pg_in_txn(const tally_pg *st) { return st->tx.txn && !st->tx.aborted && !st->tx.broken; }

bool tally_pg_locking(const tally_pg *st) { return st->role != TALLY_STORE_READER && tally_pg_in_txn(st); }

/* ---- opening ------------------------------------------------------------------------------------ */

static int show(tally_pg *st, const char *name, char *out, size_t cap)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SHOW %s", name);
    PGresult *res = PQexec(st->conn, sql);
    int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    snprintf(out, cap, "%s", ok ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return ok ? 0 : -1;
}

/* The session settings, on every (re)connection, and the checks that make
 * durability a fact rather than a hope (docs/architecture.md, "Durability"). */
static int setup(tally_pg *st, tally_error *err)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SET synchronous_commit = %s; SET idle_in_transaction_session_timeout = '60s'; "
             "SET client_min_messages = warning; SET default_transaction_isolation = 'read committed'; "
             "SET default_transaction_read_only = %s; SET lock_timeout = '%s'",
             st->relaxed ? "off" : "on", st->role == TALLY_STORE_READER ? "on" : "off",
             /* A writer lane waits for a row another lane, server or open transaction holds only
              * this long (well above a commit's latency), then runs the request again later
              * (55P03): the rest of its batch goes on.  An interactive transaction waits. */
             st->role == TALLY_STORE_WRITER ? TALLY_PG_LOCK_TIMEOUT : "0");
    if (tally_pg_exec(st, sql, err))
        return -(int)err->code;
    if (prepare_ctl(st->conn))
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "PostgreSQL at %s could not prepare the transaction "
                          "statements: %s", st->where, PQerrorMessage(st->conn));
    char buf[64];
    if (show(st, "server_encoding", buf, sizeof buf) || (strcmp(buf, "UTF8") != 0 && strcmp(buf, "SQL_ASCII") != 0))
        return tally_fail(err, TALLY_INTERNAL, NULL,
                          "the PostgreSQL database at %s has encoding %s; Tally stores UTF-8 text and needs a UTF8 "
                          "database (CREATE DATABASE … ENCODING 'UTF8')", st->where, buf);
    if (st->relaxed)
        return 0;
    if (show(st, "fsync", buf, sizeof buf) || strcmp(buf, "on") != 0)
        return tally_fail(err, TALLY_INTERNAL, NULL,
                          "PostgreSQL at %s reports fsync=%s: an answered write could be lost in a crash; refusing to "
                          "serve. Turn fsync on in postgresql.conf, or choose --durability-relaxed", st->where,
                          buf[0] ? buf : "(unknown)");
    if (show(st, "synchronous_commit", buf, sizeof buf) || strcmp(buf, "on") != 0)
        return tally_fail(err, TALLY_INTERNAL, NULL,
                          "PostgreSQL at %s reports synchronous_commit=%s, not on; refusing to serve", st->where, buf);
    return 0;
}

static void pg_close(tally_store *base)
{
    tally_pg *st = (tally_pg *)base;
    if (!st)
        return;
    PQfinish(st->conn);
    tally_pg_stmts_clear(&st->stmts);
    free(st);
}

static void quiet(void *arg, const char *message) { (void)arg; (void)message; }

static int pg_open(const char *target, const tally_schema *schema, const tally_store_options *opt, tally_store **out,
                   tally_error *err)
{
    extern const tally_backend_ops tally_postgres_backend;
    *out = NULL;
    tally_pg *st = calloc(1, sizeof *st);
    if (!st)
        abort();
    st->base.ops = &tally_postgres_backend;
    st->schema = schema;
    st->role = opt->role;
    st->relaxed = opt->relaxed_durability;
    st->portable = opt->portable;
    st->changes_retention_ms = opt->changes_retention_ms;
    st->changes_max_rows = opt->changes_max_rows;
    tally_url_redact(target, st->where, sizeof st->where);
    /* Defaults first (the URL may override them), then what Tally needs. */
    const char *keys[] = {"fallback_application_name", "connect_timeout", "keepalives", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "dbname", "client_encoding", NULL};
    const char *vals[] = {"tally", "10", "1", "30", "10", "3", target, "UTF8", NULL};
    st->conn = PQconnectdbParams(keys, vals, 1);
    if (!st->conn || PQstatus(st->conn) != CONNECTION_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", st->conn ? PQerrorMessage(st->conn) : "out of memory");
        why[strcspn(why, "\n")] = '\0';
        tally_fail(err, TALLY_UNAVAILABLE, NULL,
                   "cannot connect to PostgreSQL at %s (%s). Check that the server runs and accepts TCP connections "
                   "there, and the user, password (or ~/.pgpass) and database name", st->where, why);
        pg_close(&st->base);
        return -TALLY_UNAVAILABLE;
    }
    PQsetNoticeProcessor(st->conn, quiet, NULL);
    if (setup(st, err)) {
        int rc = -(int)err->code;
        pg_close(&st->base);
        return rc;
    }
    *out = &st->base;
    return 0;
}

/* Between transactions, a lost connection is made again (and set up again). */
static int ensure_connected(tally_pg *st, tally_error *err)
{
    if (PQstatus(st->conn) == CONNECTION_OK && PQpipelineStatus(st->conn) == PQ_PIPELINE_OFF)
        return 0; /* (a pipeline left with answers unread is made again too: PQreset ends it) */
    PQreset(st->conn);
    tally_pg_tx_reset(&st->tx);
    tally_pg_stmts_clear(&st->stmts); /* the new session has none of them */
    if (PQstatus(st->conn) != CONNECTION_OK)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database at %s cannot be reached; retry", st->where);
    return setup(st, err);
}

/* ---- transactions ----------------------------------------------------------------------------- */

/* BEGIN, SAVEPOINT, RELEASE and ROLLBACK TO are only queued (pipeline.h): they
 * go out with the next statement, or with COMMIT.  A queue that is full is
 * sent on its own first (never, the way the writer asks; a bound all the same). */
static int queued(tally_pg *st, bool (*op)(tally_pg_tx *), tally_error *err)
{
    if (op(&st->tx))
        return 0;
    if (flush(st) == 0 && op(&st->tx))
        return 0;
    return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not run the transaction's statements; retry");
}

static int pg_begin(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    if (ensure_connected(st, err))
        return -(int)err->code;
    tally_pg_tx_begin(&st->tx);
    st->batch_recorded = false;
    return 0;
}

/* After a connection lost during COMMIT: whether that transaction committed,
 * by its batch id, on a new connection.  1 committed, 0 not, -1 unknown. */
static int committed(tally_pg *st, const unsigned char id[16])
{
    tally_error ignored;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (ensure_connected(st, &ignored) != 0) {
            usleep(100000u << attempt);
            continue;
        }
        const char *values[1] = {(const char *)id};
        const int lengths[1] = {16}, formats[1] = {1};
        const Oid types[1] = {TALLY_PG_BYTEA};
        PGresult *r;
        int rc = tally_pg_run(st, "SELECT 1 FROM tally_batches WHERE id = $1", 1, types, values, lengths, formats, &r,
                              NULL);
        int found = rc == 0 ? PQntuples(r) > 0 : -1;
        PQclear(r);
        if (found >= 0)
            return found;
    }
    return -1;
}

/* COMMIT, with what is queued before it; only a "COMMIT" tag is a commit (an
 * aborted transaction answers "ROLLBACK").  A writer batch carries a batch
 * id (written with its clock read, pg_clock_ms): if the connection is lost
 * during COMMIT, the outcome is looked up by it on a new connection before
 * answering either way (docs/architecture.md, "PostgreSQL: many
 * servers on one database"). */
static int pg_commit(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    if (!st->tx.txn || (!tally_pg_tx_on_server(&st->tx) && !st->tx.broken)) {
        tally_pg_tx_ended(&st->tx); /* nothing reached the server: nothing to commit */
        return 0;
    }
    bool tracked = st->batch_recorded && !st->tx.broken && tally_pg_tx_usable(&st->tx);
    st->batch_recorded = false;
    bool broken = st->tx.broken;
    PGresult *res = broken ? NULL : round_trip(st, "COMMIT", false, 0, NULL, NULL, NULL, NULL);
    if (tracked && !res && PQstatus(st->conn) != CONNECTION_OK) { /* no answer: did it commit? */
        int known = committed(st, st->batch_id);
        tally_pg_tx_ended(&st->tx);
        if (known == 1)
            return 0;
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, known == 0
                          ? "the connection to the database was lost during COMMIT, which did not happen; nothing "
                            "was applied, retry"
                          : "the connection to the database was lost during COMMIT and it cannot be reached to tell "
                            "whether it happened; retry (an Idempotency-Key makes the retry safe)");
    }
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "COMMIT") == 0;
    int rc = 0;
    if (!ok) {
        tally_pg_diag d;
        tally_pg_diag_of(st, res, &d);
        if (broken)
            rc = tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not run the transaction's statements; "
                            "nothing was applied, retry");
        else if (res && PQresultStatus(res) == PGRES_COMMAND_OK) /* COMMIT of an aborted transaction: "ROLLBACK" */
            rc = tally_fail(err, TALLY_UNAVAILABLE, NULL,
                            "the database rolled the transaction back instead of committing it; nothing was applied, "
                            "retry");
        else if (d.sqlstate && (strcmp(d.sqlstate, "40001") == 0 || strcmp(d.sqlstate, "40P01") == 0))
            rc = tally_pg_fail(&d, "commit", err);
        else {
            tally_pg_log(&d, "COMMIT");
            rc = tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not run COMMIT (%s); retry",
                            d.lost ? "connection lost" : d.sqlstate ? d.sqlstate : "no answer");
        }
    }
    PQclear(res);
    /* Ended unless the server still holds it open (then rollback ends it). */
    if (ok || PQstatus(st->conn) != CONNECTION_OK || PQtransactionStatus(st->conn) == PQTRANS_IDLE)
        tally_pg_tx_ended(&st->tx);
    else
        st->tx.broken = true;
    return rc;
}

static void pg_rollback(tally_store *base)
{
    tally_pg *st = (tally_pg *)base;
    PGTransactionStatusType t = PQtransactionStatus(st->conn);
    if (PQstatus(st->conn) == CONNECTION_OK && PQpipelineStatus(st->conn) == PQ_PIPELINE_OFF &&
        (t == PQTRANS_INTRANS || t == PQTRANS_INERROR))
        PQclear(PQexec(st->conn, "ROLLBACK"));
    tally_pg_tx_ended(&st->tx);
    st->batch_recorded = false;
}

static int pg_savepoint(tally_store *base, tally_error *err)
{
    return queued((tally_pg *)base, tally_pg_tx_savepoint, err);
}

static int pg_release(tally_store *base, tally_error *err)
{
    return queued((tally_pg *)base, tally_pg_tx_release, err);
}

static int pg_rollback_to(tally_store *base, tally_error *err)
{
    return queued((tally_pg *)base, tally_pg_tx_rollback_to, err); /* the savepoint stays open */
}

/* An aborted transaction is still usable while a savepoint can rescue it;
 * one whose queued statements failed is not. */
static bool pg_in_transaction(tally_store *base)
{
    tally_pg *st = (tally_pg *)base;
    return PQstatus(st->conn) == CONNECTION_OK && tally_pg_tx_usable(&st->tx);
}

/* ---- the database's clock and health ------------------------------------------------------------ */

/*
 * The database's clock, so that every server judges leases and limits alike.
 * A writer reads it once per batch, as the batch's first statement, which also
 * writes the batch's random id into tally_batches: the same round trip
 * records what pg_commit looks up if its COMMIT's answer is lost.
 */
static int pg_clock_ms(tally_store *base, int64_t *now_ms, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    bool record = st->role == TALLY_STORE_WRITER && st->tx.txn && !st->batch_recorded;
    if (record)
        for (size_t got = 0; got < sizeof st->batch_id;) {
            ssize_t n = getrandom(st->batch_id + got, sizeof st->batch_id - got, 0);
            if (n > 0)
                got += (size_t)n;
        }
    const char *values[1] = {(const char *)st->batch_id};
    const int lengths[1] = {(int)sizeof st->batch_id}, formats[1] = {1};
    const Oid types[1] = {TALLY_PG_BYTEA};
    PGresult *r;
    tally_pg_diag d;
    if (tally_pg_run(st, record ? "INSERT INTO tally_batches (id, created_at) VALUES "
                                  "($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) RETURNING created_at"
                                : "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                     record ? 1 : 0, types, values, lengths, formats, &r, &d)) {
        PQclear(r);
        return tally_pg_fail(&d, "read its clock", err);
    }
    *now_ms = tally_pg_int(r, 0, 0);
    st->batch_recorded = record || st->batch_recorded;
    PQclear(r);
    return 0;
}

/* Between transactions: the connection answers, or is made again; and how
 * many synchronous standbys confirm each commit (with none, a failover to an
 * asynchronous standby may lose the last acknowledged writes). */
static int pg_probe(tally_store *base, tally_db_state *out, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    if (st->tx.txn)
        return 0; /* in use: its own statements tell */
    if (ensure_connected(st, err))
        return -(int)err->code;
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_run(st,
                          "SELECT count(*) FILTER (WHERE sync_state IN ('sync', 'quorum'))::bigint "
                          "FROM pg_stat_replication",
                          0, NULL, NULL, NULL, NULL, &r, &d);
    out->sync_standbys = rc == 0 && PQntuples(r) == 1 ? (int)tally_pg_int(r, 0, 0) : -1;
    PQclear(r);
    if (rc)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database at %s does not answer (%s)", st->where,
                          d.lost ? "connection lost" : d.sqlstate ? d.sqlstate : "no answer");
    return 0;
}

/* ---- steps ------------------------------------------------------------------------------------- */

static int run_one_step(tally_pg *st, tally_plan *plan, int i, tally_error *err);

static int pg_run_step(tally_store *base, tally_plan *plan, int i, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    if (!st->tx.txn && ensure_connected(st, err)) /* a reader between statements may reconnect */
        return -(int)err->code;
    int rc = run_one_step(st, plan, i, err);
    /* A connection that died while idle (the database restarted) is found out
     * by the first statement on it.  Outside a transaction that statement is
     * a read, safe to run again once on a new connection. */
    if (rc == -TALLY_UNAVAILABLE && !st->tx.txn && PQstatus(st->conn) != CONNECTION_OK &&
        ensure_connected(st, err) == 0) {
        memset(&plan->results[i], 0, sizeof plan->results[i]); /* nothing of the first try stays */
        rc = run_one_step(st, plan, i, err);
    }
    return rc;
}

static int run_one_step(tally_pg *st, tally_plan *plan, int i, tally_error *err)
{
    const tally_step *s = &plan->steps[i];
    tally_step_result *res = &plan->results[i];
    switch (s->op) {
    case TALLY_OP_LIMIT: return tally_pg_limit(st, plan, s, res, err);
    case TALLY_OP_LOCK_ACQUIRE:
    case TALLY_OP_LOCK_RENEW:
    case TALLY_OP_LOCK_RELEASE:
    case TALLY_OP_LOCK_CHECK:
    case TALLY_OP_LOCK_LIST: return tally_pg_lock(st, plan, s, res, err);
    default: return tally_pg_record_step(st, plan, i, err);
    }
}

/*
 * Capabilities.  Four lanes: a request goes to the lane of its first key, so
 * a hot row's writes share one lane's batches, and other rows go on in the
 * others.  batch_max 64: more than 64 writing savepoints in one transaction
 * overflow PostgreSQL's per-backend subtransaction cache and slow every
 * session (docs/architecture.md, "Backends").  Shared: other servers may write the same database;
 * their lock releases reach this one as hints (hints.c).
 */
const tally_backend_ops tally_postgres_backend = {
    .name = "postgresql",
    .caps = {.lanes = 4, .batch_max = 64, .reads_in_place = false, .session_owns_writer = false,
             .locks_what_it_reads = true, .shared = true, .cross_server_wakeups = true},
    .open = pg_open,
    .close = pg_close,
    .migrate = tally_pg_migrate,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .release = pg_release,
    .rollback_to = pg_rollback_to,
    .in_transaction = pg_in_transaction,
    .run_step = pg_run_step,
    .idem_get = tally_pg_idem_get,
    .idem_put = tally_pg_idem_put,
    .sweep = tally_pg_sweep,
    .feed_read = tally_pg_feed_read,
    .feed_state = tally_pg_feed_state,
    .feed_sequence = tally_pg_feed_sequence,
    .feed_merge = tally_pg_feed_merge,
    .keys_prepare = tally_pg_keys_prepare,
    .keys_state = tally_pg_keys_state,
    .keys_list = tally_pg_keys_list,
    .keys_create = tally_pg_keys_create,
    .keys_revoke = tally_pg_keys_revoke,
    .clock_ms = pg_clock_ms,
    .probe = pg_probe,
    .maintain = NULL,
    .metrics = NULL,
    .hint_listen = tally_pg_hint_listen,
    .hint_send = tally_pg_hint_send,
    .hint_take = tally_pg_hint_take,
};
