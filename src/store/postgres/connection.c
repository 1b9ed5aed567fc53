/*
 * connection.c — the PostgreSQL backend of store/backend.h: one libpq
 * connection per tally_store, owned by one thread (writer, reader or session
 * runner) and driven with synchronous calls.  This file owns opening (the
 * session settings and the durability checks), reconnecting between
 * transactions, transactions and savepoints, the query helper that binds
 * every value as a typed parameter, reading binary results, and the ops
 * table with its capabilities.  Record steps are in steps.c, errors in
 * errors.c, the rest in their own files (see internal.h).
 */
#include "store/postgres/internal.h"

#include "core/buf.h"

#include <endian.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- URLs ------------------------------------------------------------------------------------ */

void tally_pg_redact_url(const char *url, char *out, size_t cap)
{
    tally_buf b;
    tally_buf_init(&b);
    const char *p = url, *scheme = strstr(url, "://");
    if (scheme) {
        const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?");
        const char *at = NULL;
        for (const char *q = auth; q < end; q++)
            if (*q == '@')
                at = q;
        tally_buf_addn(&b, url, (size_t)(auth - url));
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            tally_buf_addn(&b, auth, (size_t)((colon ? colon : at) - auth));
            p = at;
        } else {
            p = auth;
        }
    }
    /* password=... among the URL's parameters */
    while (*p) {
        if (p > url && (p[-1] == '?' || p[-1] == '&') && strncmp(p, "password=", 9) == 0) {
            tally_buf_add(&b, "password=***");
            p += 9 + strcspn(p + 9, "&");
            continue;
        }
        tally_buf_addc(&b, *p++);
    }
    snprintf(out, cap, "%s", b.s ? b.s : "");
    tally_buf_free(&b);
}

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
    PGresult *res = PQexecParams(st->conn, sql, n, types, values, lengths, formats, 1);
    if (n > SMALL_PARAMS) {
        free(types);
        free(values);
        free(lengths);
        free(formats);
        free(nums);
    }
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
    PGresult *res = PQexec(st->conn, sql);
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

bool tally_pg_locking(const tally_pg *st)
{
    return st->role != TALLY_STORE_READER && PQtransactionStatus(st->conn) == PQTRANS_INTRANS;
}

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
 * durability a fact rather than a hope (DESIGN.md §4). */
static int setup(tally_pg *st, tally_error *err)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SET synchronous_commit = %s; SET idle_in_transaction_session_timeout = '60s'; "
             "SET client_min_messages = warning; SET default_transaction_isolation = 'read committed'; "
             "SET default_transaction_read_only = %s",
             st->relaxed ? "off" : "on", st->role == TALLY_STORE_READER ? "on" : "off");
    if (tally_pg_exec(st, sql, err))
        return -(int)err->code;
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
    tally_pg_redact_url(target, st->where, sizeof st->where);
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
    if (PQstatus(st->conn) == CONNECTION_OK)
        return 0;
    PQreset(st->conn);
    st->txn = false;
    st->depth = 0;
    if (PQstatus(st->conn) != CONNECTION_OK)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database at %s cannot be reached; retry", st->where);
    return setup(st, err);
}

/* ---- transactions ----------------------------------------------------------------------------- */

static int tx(tally_pg *st, const char *sql, const char *tag, tally_error *err)
{
    PGresult *res = PQexec(st->conn, sql);
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), tag) == 0;
    int rc = 0;
    if (!ok) {
        tally_pg_diag d;
        tally_pg_diag_of(st, res, &d);
        if (res && PQresultStatus(res) == PGRES_COMMAND_OK) /* COMMIT of an aborted transaction: "ROLLBACK" */
            rc = tally_fail(err, TALLY_UNAVAILABLE, NULL,
                            "the database rolled the transaction back instead of committing it; nothing was applied, "
                            "retry");
        else if (d.sqlstate && (strcmp(d.sqlstate, "40001") == 0 || strcmp(d.sqlstate, "40P01") == 0))
            rc = tally_pg_fail(&d, "commit", err);
        else {
            tally_pg_log(&d, sql);
            rc = tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not run %s (%s); retry", sql,
                            d.lost ? "connection lost" : d.sqlstate ? d.sqlstate : "no answer");
        }
    }
    PQclear(res);
    return rc;
}

static int pg_begin(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    if (ensure_connected(st, err))
        return -(int)err->code;
    int rc = tx(st, "BEGIN", "BEGIN", err);
    st->txn = rc == 0;
    st->depth = 0;
    return rc;
}

static int pg_commit(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    int rc = tx(st, "COMMIT", "COMMIT", err);
    if (rc == 0 || PQtransactionStatus(st->conn) == PQTRANS_IDLE) {
        st->txn = false;
        st->depth = 0;
    }
    return rc;
}

static void pg_rollback(tally_store *base)
{
    tally_pg *st = (tally_pg *)base;
    PGTransactionStatusType t = PQtransactionStatus(st->conn);
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
        PQclear(PQexec(st->conn, "ROLLBACK"));
    st->txn = false;
    st->depth = 0;
}

static int pg_savepoint(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    int rc = tx(st, "SAVEPOINT r", "SAVEPOINT", err);
    if (rc == 0)
        st->depth++;
    return rc;
}

static int pg_release(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    int rc = tx(st, "RELEASE SAVEPOINT r", "RELEASE", err);
    if (rc == 0 && st->depth > 0)
        st->depth--;
    return rc;
}

static int pg_rollback_to(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    return tx(st, "ROLLBACK TO SAVEPOINT r", "ROLLBACK", err); /* the savepoint stays open */
}

/* An aborted transaction is still usable while a savepoint can rescue it. */
static bool pg_in_transaction(tally_store *base)
{
    tally_pg *st = (tally_pg *)base;
    if (PQstatus(st->conn) != CONNECTION_OK)
        return false;
    switch (PQtransactionStatus(st->conn)) {
    case PQTRANS_INTRANS: return true;
    case PQTRANS_INERROR: return st->depth > 0;
    default: return false;
    }
}

/* ---- steps ------------------------------------------------------------------------------------- */

static int pg_run_step(tally_store *base, tally_plan *plan, int i, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    if (!st->txn && ensure_connected(st, err)) /* a reader between statements may reconnect */
        return -(int)err->code;
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
 * Capabilities.  batch_max 64: more than 64 writing savepoints in one
 * transaction overflow PostgreSQL's per-backend subtransaction cache and slow
 * every session (DESIGN.md §4).  One lane until exec/ drives several.
 */
const tally_backend_ops tally_postgres_backend = {
    .name = "postgresql",
    .caps = {.lanes = 1, .batch_max = 64, .reads_in_place = false, .session_owns_writer = false,
             .locks_what_it_reads = true, .cross_server_wakeups = false},
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
    .maintain = NULL,
    .metrics = NULL,
};
