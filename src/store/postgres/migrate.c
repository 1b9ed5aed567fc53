/*
 * migrate.c — the PostgreSQL side of a migration (store/migration.h decides
 * what changes, with the same rules and messages as on SQLite; this runs
 * it).  Also here: the tables behind locks, limits and idempotency keys, and
 * the SQL functions the statements call (tally_add / tally_sub: checked
 * arithmetic; tally_cmp: an exact comparison of a bigint with a double).
 * Lock names and limit keys are bytea, as are the idempotency table's
 * method, path and key: they come from a URL path or a header and need not
 * be UTF-8 (SQLite stores any bytes); bytea also orders bytewise, as the
 * lock list wants.
 *
 * Everything runs in one transaction under an advisory lock, so servers
 * starting at once on a new schema never race, and a refused migration
 * changes nothing.  New tables are made first without their foreign keys,
 * which are added once every table exists (so models may link in any order,
 * even in a cycle).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/migration.h"
#include "store/postgres/internal.h"
#include "store/sql.h"

/*
 * Checked arithmetic, in plpgsql without exception blocks (an exception
 * block is a subtransaction).  A NULL operand raises 'tally:null:<column>'
 * and a bigint overflow 'tally:overflow:<column>' (checked before adding, by
 * nested IFs: SQL does not promise to evaluate AND from the left),
 * which errors.c turns into the field's error as on SQLite.  Doubles add as
 * IEEE doubles (PostgreSQL itself refuses an overflow to infinity).
 */
static const char FUNCTIONS[] =
    "CREATE OR REPLACE FUNCTION tally_add(a bigint, b bigint, col integer) RETURNS bigint "
    "LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$ BEGIN "
    "IF a IS NULL OR b IS NULL THEN RAISE EXCEPTION USING MESSAGE = 'tally:null:' || col, ERRCODE = '22004'; END IF; "
    "IF b > 0 THEN IF a > 9223372036854775807 - b THEN "
    "RAISE EXCEPTION USING MESSAGE = 'tally:overflow:' || col, ERRCODE = '22003'; END IF; "
    "ELSIF a < (-9223372036854775807 - 1) - b THEN "
    "RAISE EXCEPTION USING MESSAGE = 'tally:overflow:' || col, ERRCODE = '22003'; END IF; "
    "RETURN a + b; END $f$; "
    "CREATE OR REPLACE FUNCTION tally_sub(a bigint, b bigint, col integer) RETURNS bigint "
    "LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$ BEGIN "
    "IF a IS NULL OR b IS NULL THEN RAISE EXCEPTION USING MESSAGE = 'tally:null:' || col, ERRCODE = '22004'; END IF; "
    "IF b < 0 THEN IF a > 9223372036854775807 + b THEN "
    "RAISE EXCEPTION USING MESSAGE = 'tally:overflow:' || col, ERRCODE = '22003'; END IF; "
    "ELSIF a < (-9223372036854775807 - 1) + b THEN "
    "RAISE EXCEPTION USING MESSAGE = 'tally:overflow:' || col, ERRCODE = '22003'; END IF; "
    "RETURN a - b; END $f$; "
    "CREATE OR REPLACE FUNCTION tally_add(a double precision, b double precision, col integer) "
    "RETURNS double precision LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$ BEGIN "
    "IF a IS NULL OR b IS NULL THEN RAISE EXCEPTION USING MESSAGE = 'tally:null:' || col, ERRCODE = '22004'; END IF; "
    "RETURN a + b; END $f$; "
    "CREATE OR REPLACE FUNCTION tally_sub(a double precision, b double precision, col integer) "
    "RETURNS double precision LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$ BEGIN "
    "IF a IS NULL OR b IS NULL THEN RAISE EXCEPTION USING MESSAGE = 'tally:null:' || col, ERRCODE = '22004'; END IF; "
    "RETURN a - b; END $f$; "
    /* The sign of a - b, exactly (PostgreSQL would compare as doubles, inexact
     * past 2^53): below 2^63 floor(b) is an exact bigint. */
    "CREATE OR REPLACE FUNCTION tally_cmp(a bigint, b double precision) RETURNS integer "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$ SELECT CASE "
    "WHEN b >= 9223372036854775808::double precision THEN -1 "
    "WHEN b < -9223372036854775808::double precision THEN 1 "
    "WHEN a < floor(b)::bigint THEN -1 WHEN a > floor(b)::bigint THEN 1 "
    "WHEN b = floor(b) THEN 0 ELSE -1 END $f$";

static const char TABLES[] =
    "CREATE TABLE IF NOT EXISTS tally_fields (model text COLLATE \"C\" NOT NULL, field text COLLATE \"C\" NOT NULL, "
    "type text NOT NULL, def text NOT NULL, uniq boolean NOT NULL, PRIMARY KEY (model, field)); "
    "CREATE TABLE IF NOT EXISTS tally_locks (name bytea PRIMARY KEY, fence bigint NOT NULL, "
    "token text, expires_at bigint NOT NULL); "
    "CREATE TABLE IF NOT EXISTS tally_limits (name text COLLATE \"C\" NOT NULL, key bytea NOT NULL, "
    "tat double precision NOT NULL, PRIMARY KEY (name, key)); "
    "CREATE INDEX IF NOT EXISTS tally_limits_tat ON tally_limits (tat); "
    /* the latest clock a key was judged by, so that its state moves only forward (limits.c) */
    "ALTER TABLE tally_limits ADD COLUMN IF NOT EXISTS seen double precision NOT NULL DEFAULT 0; "
    "CREATE TABLE IF NOT EXISTS tally_idempotency (method bytea NOT NULL, path bytea NOT NULL, key bytea NOT NULL, "
    "hash bytea NOT NULL, status integer NOT NULL, body bytea NOT NULL, created_at bigint NOT NULL, "
    "PRIMARY KEY (method, path, key)); "
    "CREATE INDEX IF NOT EXISTS tally_idempotency_created ON tally_idempotency (created_at); "
    /* One row per committed batch, written in the batch's own transaction: a
     * COMMIT whose answer was lost with the connection is looked up here
     * (connection.c), since a transaction id may be reused by a promoted standby. */
    "CREATE TABLE IF NOT EXISTS tally_batches (id bytea PRIMARY KEY, created_at bigint NOT NULL); "
    "CREATE INDEX IF NOT EXISTS tally_batches_created ON tally_batches (created_at); "
    /* Each schema the database was migrated to, by digest (store/migration.h). */
    "CREATE TABLE IF NOT EXISTS tally_schema_versions (version bigint PRIMARY KEY, digest text NOT NULL, "
    "migrated_at bigint NOT NULL)";

static tally_value text(const char *s) { return tally_value_text(s, strlen(s)); }

/* 1 if the table exists in the current schema, 0 if not, or -code. */
static int table_exists(void *conn, const char *name, tally_error *err)
{
    tally_pg *st = conn;
    tally_value v = text(name);
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL,
                            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1",
                            &v, 1, &r, &d);
    int found = rc == 0 && PQntuples(r) > 0;
    PQclear(r);
    if (rc)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot list the tables: %s", d.message);
    return found;
}

static int record_field(void *conn, const tally_model *m, const tally_field *f, tally_error *err)
{
    tally_pg *st = conn;
    tally_sql def;
    tally_sql_init(&def);
    tally_pgsql_column_def(&def, m, f, 0, 1);
    tally_value v[5] = {text(m->name), text(f->name), text(tally_type_name(f->type)), text(def.s),
                        tally_value_int(f->unique)};
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL,
                            "INSERT INTO tally_fields (model, field, type, def, uniq) VALUES ($1, $2, $3, $4, $5 <> 0) "
                            "ON CONFLICT (model, field) DO UPDATE SET uniq = excluded.uniq",
                            v, 5, &r, &d);
    if (rc)
        rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot record field %s.%s: %s", m->name, f->name, d.message);
    PQclear(r);
    tally_sql_free(&def);
    return rc;
}

static int exec_sql(tally_pg *st, tally_sql *q, tally_error *err)
{
    int rc = tally_pg_exec(st, q->s, err);
    tally_sql_free(q);
    return rc;
}

static void column_def(tally_sql *q, const tally_model *m, const tally_field *f)
{
    tally_pgsql_column_def(q, m, f, 0, 1);
}

static int add_unique(void *conn, const tally_model *m, int field, int key, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_pgsql_unique_index(&q, m, field, key);
    return exec_sql(conn, &q, err);
}

static int find_duplicate(void *conn, const tally_model *m, int field, int key, char *out, size_t cap, long long *rows,
                          long long *example_id, tally_error *err)
{
    tally_pg *st = conn;
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_duplicate_query(&q, m, field, key);
    PGresult *r = PQexec(st->conn, q.s);
    tally_sql_free(&q);
    int found = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        found = tally_fail(err, TALLY_INTERNAL, NULL, "cannot look for duplicates in %s: %s", m->name,
                           PQresultErrorMessage(r));
    } else if (PQntuples(r) == 1) {
        int n = PQnfields(r) - 2; /* the values, then the count and the lowest id */
        out[0] = '\0';
        for (int i = 0; i < n; i++)
            snprintf(out + strlen(out), cap - strlen(out), "%s'%.60s'", i ? ", " : "", PQgetvalue(r, 0, i));
        *rows = strtoll(PQgetvalue(r, 0, n), NULL, 10);
        *example_id = strtoll(PQgetvalue(r, 0, n + 1), NULL, 10);
        found = 1;
    }
    PQclear(r);
    return found;
}

static int has_rows(void *conn, const tally_model *m, tally_error *err)
{
    tally_pg *st = conn;
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "SELECT 1 FROM ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " LIMIT 1");
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL, q.s, NULL, 0, &r, &d);
    tally_sql_free(&q);
    if (rc)
        rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot read %s: %s", m->name, d.message);
    else
        rc = PQntuples(r) > 0;
    PQclear(r);
    return rc;
}

static int has_unique(void *conn, const tally_model *m, int field, int key, tally_error *err)
{
    tally_pg *st = conn;
    char index[TALLY_PG_IDENT_MAX + 1];
    tally_pgsql_index_name(index, m, field, key);
    tally_value v = text(index);
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL,
                            "SELECT 1 FROM pg_class WHERE relname = $1 AND relkind = 'i' "
                            "AND relnamespace = current_schema()::regnamespace",
                            &v, 1, &r, &d);
    if (rc)
        rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot read the indexes of %s: %s", m->name, d.message);
    else
        rc = PQntuples(r) > 0;
    PQclear(r);
    return rc;
}

static int drop_unique(void *conn, const tally_model *m, int field, tally_error *err)
{
    char index[TALLY_PG_IDENT_MAX + 1];
    tally_pgsql_index_name(index, m, field, -1);
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_addf(&q, "DROP INDEX IF EXISTS \"%s\"", index);
    return exec_sql(conn, &q, err);
}

static int create_table(void *conn, const tally_model *m, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_pgsql_create_table(&q, m);
    return exec_sql(conn, &q, err);
}

/* The foreign keys of a model created by this migration, once every table exists. */
static int link_model(void *conn, const tally_model *m, tally_error *err)
{
    tally_pg *st = conn;
    for (int i = 0; i < m->nfields; i++) {
        if (m->fields[i].type != TALLY_TYPE_BELONGS_TO)
            continue;
        tally_sql q;
        tally_sql_init(&q);
        tally_pgsql_foreign_key(&q, m, &m->fields[i]);
        if (exec_sql(st, &q, err))
            return -(int)err->code;
    }
    return 0;
}

static int add_column(void *conn, const tally_model *m, const tally_field *f, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "ALTER TABLE ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " ADD COLUMN ");
    tally_pgsql_column_def(&q, m, f, 1, 1);
    tally_migration_default(&q, f);
    return exec_sql(conn, &q, err);
}

static char *dup_value(const PGresult *r, int row, int c)
{
    char *s = strndup(PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c));
    if (!s)
        abort();
    return s;
}

/* The stored fields of `model` (or, with model NULL, one row per stored model). Returns the count or -code. */
static int read_stored(void *conn, const char *model, tally_stored_field **out, tally_error *err)
{
    tally_pg *st = conn;
    tally_value v = model ? text(model) : tally_value_null();
    PGresult *r;
    tally_pg_diag d;
    *out = NULL;
    if (tally_pg_query(st, NULL,
                       model ? "SELECT field, type, def, uniq FROM tally_fields WHERE model = $1 ORDER BY field"
                             : "SELECT DISTINCT model FROM tally_fields ORDER BY model",
                       &v, model ? 1 : 0, &r, &d)) {
        int rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot read tally_fields: %s", d.message);
        PQclear(r);
        return rc;
    }
    int n = PQntuples(r);
    tally_stored_field *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
    if (!rows)
        abort();
    for (int i = 0; i < n; i++) {
        rows[i].name = dup_value(r, i, 0);
        if (model) {
            rows[i].type = dup_value(r, i, 1);
            rows[i].def = dup_value(r, i, 2);
            rows[i].uniq = (int)tally_pg_int(r, i, 3);
        }
    }
    PQclear(r);
    *out = rows;
    return n;
}

static int forget_stored(void *conn, const char *model, const char *field, tally_error *err)
{
    tally_pg *st = conn;
    tally_value v[2] = {text(model), field ? text(field) : tally_value_null()};
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL,
                            field ? "DELETE FROM tally_fields WHERE model = $1 AND field = $2"
                                  : "DELETE FROM tally_fields WHERE model = $1",
                            v, field ? 2 : 1, &r, &d);
    if (rc)
        rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot update tally_fields: %s", d.message);
    PQclear(r);
    return rc;
}

/* A stored field's column (PostgreSQL drops its indexes and constraints with it). */
static int drop_column(void *conn, const tally_model *m, const char *name, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "ALTER TABLE ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " DROP COLUMN ");
    tally_sql_name(&q, name);
    return exec_sql(conn, &q, err);
}

static int drop_table(void *conn, const char *model, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "DROP TABLE ");
    tally_sql_name(&q, model);
    tally_sql_add(&q, " CASCADE"); /* the links of other dropped models to it */
    return exec_sql(conn, &q, err);
}

/* The recorded schema versions (see migration.h). */
static int read_versions(void *conn, const char *digest, int64_t *latest, int64_t *latest_at_ms, int64_t *mine,
                         tally_error *err)
{
    tally_pg *st = conn;
    tally_value v = text(digest);
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL,
                            "SELECT coalesce((SELECT max(version) FROM tally_schema_versions), 0), "
                            "coalesce((SELECT migrated_at FROM tally_schema_versions ORDER BY version DESC LIMIT 1), 0), "
                            "coalesce((SELECT max(version) FROM tally_schema_versions WHERE digest = $1), 0)",
                            &v, 1, &r, &d);
    if (rc)
        rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot read tally_schema_versions: %s", d.message);
    else {
        *latest = tally_pg_int(r, 0, 0);
        *latest_at_ms = tally_pg_int(r, 0, 1);
        *mine = tally_pg_int(r, 0, 2);
    }
    PQclear(r);
    return rc;
}

static int record_version(void *conn, int64_t version, const char *digest, int64_t at_ms, tally_error *err)
{
    tally_pg *st = conn;
    tally_value v[3] = {tally_value_int(version), text(digest), tally_value_int(at_ms)};
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL,
                            "INSERT INTO tally_schema_versions (version, digest, migrated_at) VALUES ($1, $2, $3)", v,
                            3, &r, &d);
    if (rc)
        rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot record the schema version: %s", d.message);
    PQclear(r);
    return rc;
}

static const tally_migration_ops PG_MIGRATION = {
    .table_exists = table_exists,
    .read_stored = read_stored,
    .record_field = record_field,
    .forget_stored = forget_stored,
    .column_def = column_def,
    .create_table = create_table,
    .link_model = link_model,
    .add_column = add_column,
    .drop_column = drop_column,
    .drop_table = drop_table,
    .add_unique = add_unique,
    .drop_unique = drop_unique,
    .read_versions = read_versions,
    .record_version = record_version,
    .find_duplicate = find_duplicate,
    .has_unique = has_unique,
    .has_rows = has_rows,
};

int tally_pg_meta_lock(tally_pg *st, const char *name, bool wait, tally_error *err)
{
    tally_value v = text(name);
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL,
                            wait ? "SELECT name FROM tally_meta WHERE name = $1 FOR UPDATE"
                                 : "SELECT name FROM tally_meta WHERE name = $1 FOR UPDATE SKIP LOCKED",
                            &v, 1, &r, &d);
    if (rc)
        rc = tally_pg_fail(&d, "lock its meta row", err);
    else
        rc = PQntuples(r) == 1;
    PQclear(r);
    return rc;
}

/* Portable mode: the rows that stand in for advisory locks, made before the
 * migration's transaction.  Servers starting at once may race on CREATE
 * TABLE IF NOT EXISTS (one of them gets a unique violation on the catalog),
 * so a failure is tried again: the table is there by then. */
static int make_meta(tally_pg *st, tally_error *err)
{
    static const char sql[] = "CREATE TABLE IF NOT EXISTS tally_meta (name text COLLATE \"C\" PRIMARY KEY); "
                              "INSERT INTO tally_meta (name) VALUES ('migrate'), ('sweep'), ('feed') ON CONFLICT DO NOTHING";
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        if ((rc = tally_pg_exec(st, sql, err)) == 0 || rc == -TALLY_UNAVAILABLE)
            return rc;
        struct timespec pause = {0, 20 * 1000000L * (attempt + 1)};
        nanosleep(&pause, NULL);
    }
    return rc;
}

int tally_pg_migrate(tally_store *base, unsigned flags, tally_buf *changes, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    const tally_schema *schema = st->schema;
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", (long long)TALLY_PG_MIGRATE_LOCK);
    if (st->portable && make_meta(st, err))
        return -(int)err->code;
    if (tally_pg_exec(st, "BEGIN", err))
        return -(int)err->code;
    /* Servers starting at once wait here for each other, however long a migration takes. */
    int rc = tally_pg_exec(st, "SET LOCAL lock_timeout = 0", err);
    if (rc == 0 && st->portable)
        rc = tally_pg_meta_lock(st, "migrate", true, err) == 1 ? 0 : -(int)err->code;
    else if (rc == 0)
        rc = tally_pg_exec(st, lock, err);
    if (rc == 0)
        rc = tally_pg_exec(st, TABLES, err);
    if (rc == 0) /* API keys */
        rc = tally_pg_exec(st, tally_pg_keys_tables, err);
    if (rc == 0)
        rc = tally_pg_exec(st, FUNCTIONS, err);
    if (rc == 0) /* the change feed's outbox and log */
        rc = tally_pg_exec(st, tally_pg_feed_tables, err);
    if (rc == 0)
        rc = tally_migration_apply(&PG_MIGRATION, st, schema, flags & TALLY_MIGRATE_DESTRUCTIVE, NULL, changes, err);
    if (rc == 0) /* after the tables: the triggers that fill the outbox */
        rc = tally_pg_feed_install(st, err);
    if (rc == 0 && !(flags & TALLY_MIGRATE_CHECK_ONLY))
        rc = tally_pg_exec(st, "COMMIT", err);
    else
        tally_pg_exec(st, "ROLLBACK", NULL);
    return rc;
}
