/*
 * copy.c — SQLite to PostgreSQL; see copy.h.
 *
 * The target's tables are made by the PostgreSQL backend's own migration
 * (so they are exactly what a server would make), then filled with COPY …
 * FROM STDIN in text format, model by model, inside one transaction.  Foreign
 * keys are made deferrable for the copy and checked at its end, so models
 * (and rows that point at rows of their own model) may come in any order;
 * each constraint gets its own deferrability back before COMMIT.
 * Values go through COPY's data stream, never into SQL text; names in the
 * text are the schema's checked identifiers, double-quoted.
 */
#include "store/copy.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "store/backend.h"

typedef struct copier {
    sqlite3 *src;
    PGconn *pg;
    const tally_schema *schema;
    char where[300]; /* the target URL without its password, for messages */
    tally_error *err;
} copier;

static int pg_fail(copier *c, const char *what, PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg);
    int rc = tally_fail(c->err, TALLY_UNAVAILABLE, NULL, "cannot %s in %s: %.300s", what, c->where,
                        msg && *msg ? msg : "the connection failed");
    if (res)
        PQclear(res);
    return rc;
}

/* Runs SQL with no values in it; 0 or -code. */
static int pg_exec(copier *c, const char *sql, const char *what)
{
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return pg_fail(c, what, res);
    PQclear(res);
    return 0;
}

/* *n = rows of table in the target (a quoted name from the schema or a fixed one). */
static int pg_count(copier *c, const char *quoted_table, long long *n)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", quoted_table);
    PGresult *res = PQexec(c->pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_fail(c, "count the rows already there", res);
    *n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* Appends text to a COPY text-format line, escaping what the format needs. */
static void copy_text(tally_buf *line, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '\\': tally_buf_add(line, "\\\\"); break;
        case '\t': tally_buf_add(line, "\\t"); break;
        case '\n': tally_buf_add(line, "\\n"); break;
        case '\r': tally_buf_add(line, "\\r"); break;
        default: tally_buf_addc(line, (char)s[i]);
        }
    }
}

/* bytea's hex input form, itself escaped for COPY text: \\x0a1b… */
static void copy_bytea(tally_buf *line, const unsigned char *s, size_t n)
{
    tally_buf_add(line, "\\\\x");
    for (size_t i = 0; i < n; i++)
        tally_buf_addf(line, "%02x", s[i]);
}

/* One SQLite value as a COPY field: NULL as \N, numbers in full precision. */
static void copy_value(tally_buf *line, sqlite3_stmt *stmt, int col, bool bytea)
{
    switch (sqlite3_column_type(stmt, col)) {
    case SQLITE_NULL: tally_buf_add(line, "\\N"); break;
    case SQLITE_INTEGER: tally_buf_addf(line, "%lld", (long long)sqlite3_column_int64(stmt, col)); break;
    case SQLITE_FLOAT: tally_buf_addf(line, "%.17g", sqlite3_column_double(stmt, col)); break;
    default: {
        const unsigned char *p = sqlite3_column_blob(stmt, col);
        size_t n = (size_t)sqlite3_column_bytes(stmt, col);
        if (bytea)
            copy_bytea(line, p ? p : (const unsigned char *)"", n);
        else
            copy_text(line, p ? p : (const unsigned char *)"", n);
    }
    }
}

/* Whether the target column `column` of `table` is bytea (the answers' hash and body may be). */
static bool pg_is_bytea(copier *c, const char *table, const char *column)
{
    const char *vals[2] = {table, column};
    PGresult *res = PQexecParams(c->pg,
                                 "SELECT data_type FROM information_schema.columns WHERE table_schema = "
                                 "current_schema() AND table_name = $1 AND column_name = $2",
                                 2, NULL, vals, NULL, NULL, 0);
    bool bytea = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                 strcmp(PQgetvalue(res, 0, 0), "bytea") == 0;
    PQclear(res);
    return bytea;
}

/*
 * Streams `select` (run on the source) into `copy_into` (COPY … FROM STDIN on
 * the target), one line per row; bytea_cols marks the columns to send as
 * bytea.  *rows counts what went.
 */
static int stream(copier *c, const char *select, const char *copy_into, const bool *bytea_cols, int64_t *rows)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(c->src, select, -1, &stmt, NULL) != SQLITE_OK)
        return tally_fail(c->err, TALLY_BAD_REQUEST, NULL,
                          "the SQLite database does not match the schema (%s); start a server on it with this "
                          "schema once (it migrates), then copy again", sqlite3_errmsg(c->src));
    PGresult *res = PQexec(c->pg, copy_into);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        sqlite3_finalize(stmt);
        return pg_fail(c, "start copying rows", res);
    }
    PQclear(res);
    tally_buf line;
    tally_buf_init(&line);
    int rc, ncols = sqlite3_column_count(stmt);
    bool sent = true;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && sent) {
        line.len = 0;
        for (int i = 0; i < ncols; i++) {
            if (i)
                tally_buf_add(&line, "\t");
            copy_value(&line, stmt, i, bytea_cols && bytea_cols[i]);
        }
        tally_buf_add(&line, "\n");
        sent = PQputCopyData(c->pg, line.s, (int)line.len) == 1;
        (*rows)++;
    }
    tally_buf_free(&line);
    bool read_all = rc == SQLITE_DONE;
    sqlite3_finalize(stmt);
    PQputCopyEnd(c->pg, read_all && sent ? NULL : "the source could not be read to the end");
    res = PQgetResult(c->pg);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        return pg_fail(c, "copy the rows", res);
    PQclear(res);
    while ((res = PQgetResult(c->pg)) != NULL)
        PQclear(res);
    if (!read_all)
        return tally_fail(c->err, TALLY_UNAVAILABLE, NULL, "cannot read the SQLite database: %s",
                          sqlite3_errmsg(c->src));
    return 0;
}

/* The column list of model m, quoted, in storage order. */
static void column_list(tally_buf *q, const tally_model *m)
{
    for (int col = 0; col < m->ncolumns; col++)
        tally_buf_addf(q, "%s\"%s\"", col ? ", " : "", tally_model_column_name(m, col));
}

/* The highest id SQLite ever gave in table (AUTOINCREMENT), 0 if none. */
static long long sqlite_high_id(copier *c, const char *table)
{
    sqlite3_stmt *stmt;
    long long high = 0;
    if (sqlite3_prepare_v2(c->src, "SELECT seq FROM sqlite_sequence WHERE name = ?1", -1, &stmt, NULL) == SQLITE_OK) {
        sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
        if (sqlite3_step(stmt) == SQLITE_ROW)
            high = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    return high;
}

static int copy_model(copier *c, const tally_model *m, int64_t *rows)
{
    tally_buf sel, into;
    tally_buf_init(&sel);
    tally_buf_init(&into);
    tally_buf_add(&sel, "SELECT ");
    column_list(&sel, m);
    tally_buf_addf(&sel, " FROM \"%s\" ORDER BY \"id\"", m->name);
    tally_buf_addf(&into, "COPY \"%s\" (", m->name);
    column_list(&into, m);
    tally_buf_add(&into, ") FROM STDIN");
    int rc = stream(c, sel.s, into.s, NULL, rows);
    tally_buf_free(&sel);
    tally_buf_free(&into);
    if (rc)
        return rc;
    /* The id sequence goes on from the highest id SQLite ever handed out. */
    long long high = sqlite_high_id(c, m->name);
    if (high <= 0)
        return 0;
    char quoted[TALLY_NAME_MAX + 3], num[32];
    snprintf(quoted, sizeof quoted, "\"%s\"", m->name);
    snprintf(num, sizeof num, "%lld", high);
    const char *vals[2] = {quoted, num};
    PGresult *res = PQexecParams(c->pg, "SELECT setval(pg_get_serial_sequence($1, 'id'), $2::bigint)", 2, NULL, vals,
                                 NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_fail(c, "move the id sequence on", res);
    PQclear(res);
    return 0;
}

/* Every foreign key of the current schema, with its deferrability, as ALTER statements to set and restore. */
static int foreign_keys(copier *c, tally_buf *defer, tally_buf *restore)
{
    PGresult *res = PQexec(c->pg,
                           "SELECT quote_ident(t.relname), quote_ident(k.conname), k.condeferrable, k.condeferred "
                           "FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid "
                           "WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_fail(c, "list the foreign keys", res);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *table = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1);
        bool deferrable = PQgetvalue(res, i, 2)[0] == 't', deferred = PQgetvalue(res, i, 3)[0] == 't';
        tally_buf_addf(defer, "ALTER TABLE %s ALTER CONSTRAINT %s DEFERRABLE INITIALLY DEFERRED; ", table, name);
        tally_buf_addf(restore, "ALTER TABLE %s ALTER CONSTRAINT %s %s; ", table, name,
                       !deferrable ? "NOT DEFERRABLE"
                       : deferred  ? "DEFERRABLE INITIALLY DEFERRED"
                                   : "DEFERRABLE INITIALLY IMMEDIATE");
    }
    PQclear(res);
    return 0;
}

static int check_empty(copier *c)
{
    static const char *const fixed[] = {"tally_locks", "tally_limits", "tally_idempotency", "tally_keys"};
    long long n;
    for (int i = 0; i < c->schema->nmodels; i++) {
        char quoted[TALLY_NAME_MAX + 3];
        snprintf(quoted, sizeof quoted, "\"%s\"", c->schema->models[i].name);
        if (pg_count(c, quoted, &n))
            return -(int)c->err->code;
        if (n > 0)
            return tally_fail(c->err, TALLY_CONFLICT, NULL,
                              "%s already holds %lld %s record(s); copy only into an empty database (create a new "
                              "one, or drop this one's tables)", c->where, n, c->schema->models[i].name);
    }
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        if (pg_count(c, fixed[i], &n))
            return -(int)c->err->code;
        if (n > 0)
            return tally_fail(c->err, TALLY_CONFLICT, NULL,
                              "%s already holds locks, limits, stored answers or API keys (%s); copy only into an empty "
                              "database", c->where, fixed[i]);
    }
    return 0;
}

/* API keys with their ids (stored idempotency answers are scoped by key id),
 * the id sequence past SQLite's highest, and whether keys ever existed (so a
 * copy never reopens open mode).  A source from before keys has none. */
static int copy_keys(copier *c, int64_t *rows)
{
    sqlite3_stmt *stmt;
    long long generation = 0, ever = 0;
    if (sqlite3_prepare_v2(c->src, "SELECT generation, ever FROM tally_keys_state WHERE id = 1", -1, &stmt, NULL) !=
        SQLITE_OK)
        return 0; /* no key tables in the source */
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        generation = sqlite3_column_int64(stmt, 0);
        ever = sqlite3_column_int64(stmt, 1);
    }
    sqlite3_finalize(stmt);
    bool bytea[5] = {false, false, false, true, false};
    int rc = stream(c, "SELECT id, name, scopes, hash, created_at FROM tally_keys ORDER BY id",
                    "COPY tally_keys (id, name, scopes, hash, created_at) FROM STDIN", bytea, rows);
    if (rc)
        return rc;
    long long high = sqlite_high_id(c, "tally_keys");
    char num[32], gen[32];
    snprintf(num, sizeof num, "%lld", high > 0 ? high : 1);
    snprintf(gen, sizeof gen, "%lld", generation + 1);
    const char *vals[2] = {num, high > 0 ? "true" : "false"}; /* false: the next id is 1 */
    PGresult *res = PQexecParams(c->pg,
                                 "SELECT setval(pg_get_serial_sequence('tally_keys', 'id'), $1::bigint, $2::boolean)", 2,
                                 NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_fail(c, "move the key id sequence on", res);
    PQclear(res);
    const char *state[2] = {gen, ever ? "true" : "false"};
    res = PQexecParams(c->pg, "UPDATE tally_keys_state SET generation = $1::bigint, ever = $2::boolean WHERE id = 1", 2,
                       NULL, state, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return pg_fail(c, "record the keys' state", res);
    PQclear(res);
    return 0;
}

/* The change feed goes across as it is: its changes (their seqs), its head and
 * how far it was purged, so followers resume on PostgreSQL where they were.
 * The copy's own inserts are not changes: what its triggers put in the
 * outbox goes.  A SQLite database from before the feed has none to copy. */
static int copy_feed(copier *c)
{
    int rc = pg_exec(c, "DELETE FROM tally_outbox WHERE xid = pg_current_xact_id()",
                     "leave the copied records out of the change feed");
    sqlite3_stmt *stmt;
    if (rc || sqlite3_prepare_v2(c->src, "SELECT purged FROM tally_changes_state WHERE id = 1", -1, &stmt, NULL) !=
                  SQLITE_OK)
        return rc;
    int64_t purged = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
    sqlite3_finalize(stmt);
    int64_t head = sqlite_high_id(c, "tally_changes");
    if (head < purged)
        head = purged;
    int64_t rows = 0;
    rc = stream(c, "SELECT seq, model, rid, op, rec, at, merged FROM tally_changes ORDER BY seq",
                "COPY tally_changes (seq, model, rid, op, rec, at, merged) FROM STDIN", NULL, &rows);
    if (rc)
        return rc;
    char h[24], p[24];
    snprintf(h, sizeof h, "%lld", (long long)head);
    snprintf(p, sizeof p, "%lld", (long long)purged);
    const char *vals[2] = {h, p};
    PGresult *res = PQexecParams(c->pg,
                                 "UPDATE tally_feed_state SET value = CASE name WHEN 'head' THEN $1::bigint "
                                 "ELSE $2::bigint END WHERE name IN ('head', 'purged')",
                                 2, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return pg_fail(c, "record the change feed's position", res);
    PQclear(res);
    return 0;
}

static int copy_all(copier *c, tally_copy_counts *counts)
{
    tally_buf defer, restore;
    tally_buf_init(&defer);
    tally_buf_init(&restore);
    int rc = pg_exec(c, "BEGIN", "begin the copy");
    if (rc == 0)
        rc = check_empty(c);
    if (rc == 0)
        rc = foreign_keys(c, &defer, &restore);
    if (rc == 0 && defer.len)
        rc = pg_exec(c, defer.s, "defer the foreign keys for the copy");
    for (int i = 0; rc == 0 && i < c->schema->nmodels; i++)
        rc = copy_model(c, &c->schema->models[i], &counts->records);
    if (rc == 0)
        rc = stream(c, "SELECT name, fence, token, expires_at FROM tally_locks",
                    "COPY tally_locks (name, fence, token, expires_at) FROM STDIN", NULL, &counts->locks);
    if (rc == 0)
        rc = stream(c, "SELECT name, key, tat FROM tally_limits", "COPY tally_limits (name, key, tat) FROM STDIN",
                    NULL, &counts->limits);
    if (rc == 0) {
        bool bytea[7] = {false, false, false, pg_is_bytea(c, "tally_idempotency", "hash"), false,
                         pg_is_bytea(c, "tally_idempotency", "body"), false};
        rc = stream(c, "SELECT method, path, key, hash, status, body, created_at FROM tally_idempotency",
                    "COPY tally_idempotency (method, path, key, hash, status, body, created_at) FROM STDIN", bytea,
                    &counts->answers);
    }
    if (rc == 0)
        rc = copy_keys(c, &counts->keys);
    if (rc == 0)
        rc = copy_feed(c);
    /* Every link is checked here, at once, before the constraints are put back. */
    if (rc == 0 && defer.len)
        rc = pg_exec(c, "SET CONSTRAINTS ALL IMMEDIATE", "check the copied links");
    if (rc == 0 && restore.len)
        rc = pg_exec(c, restore.s, "restore the foreign keys");
    if (rc == 0)
        rc = pg_exec(c, "COMMIT", "commit the copy");
    else
        PQclear(PQexec(c->pg, "ROLLBACK"));
    tally_buf_free(&defer);
    tally_buf_free(&restore);
    return rc;
}

int tally_copy_sqlite_to_postgres(const char *sqlite_file, const char *pg_url, const tally_schema *schema,
                                  tally_copy_counts *counts, tally_error *err)
{
    memset(counts, 0, sizeof *counts);
    copier c = {.schema = schema, .err = err};
    tally_url_redact(pg_url, c.where, sizeof c.where);
    const char *target;
    if (tally_backend_for(pg_url, &target) != &tally_postgres_backend)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "--to takes a postgresql:// URL, not '%s'", c.where);
    if (sqlite3_open_v2(sqlite_file, &c.src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_exec(c.src, "SELECT 1 FROM tally_fields LIMIT 1", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(c.src);
        return tally_fail(err, TALLY_NOT_FOUND, NULL,
                          "%s is not a Tally SQLite database; --from takes the data folder a server served", sqlite_file);
    }
    /* The target's tables, exactly as a server makes them. */
    tally_store *st;
    tally_store_options so = {.role = TALLY_STORE_WRITER};
    int rc = tally_store_open(pg_url, schema, &so, &st, err);
    if (rc == 0) {
        rc = tally_store_migrate(st, 0, err);
        tally_store_close(st);
    }
    if (rc == 0) {
        c.pg = PQconnectdb(target);
        if (PQstatus(c.pg) != CONNECTION_OK)
            rc = pg_fail(&c, "connect", NULL);
        else
            rc = copy_all(&c, counts);
        PQfinish(c.pg);
    }
    sqlite3_close(c.src);
    return rc;
}
