/*
 * migrate.c — the SQLite side of a migration (store/migration.h decides
 * what changes; this runs it): tally_fields in the database itself, STRICT
 * tables, ALTER TABLE ADD/DROP COLUMN, unique indexes.  Foreign keys are off
 * for the migration and every table changes in one transaction, so a
 * refused migration changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backup.h"
#include "store/migration.h"
#include "store/sql.h"
#include "store/sqlite/internal.h"

static int table_exists(void *conn, const char *name, tally_error *err)
{
    (void)err;
    tally_sqlite *st = conn;
    sqlite3_stmt *stmt;
    sqlite3_prepare_v2(st->db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", -1, &stmt, NULL);
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    int found = sqlite3_step(stmt) == SQLITE_ROW;
    sqlite3_finalize(stmt);
    return found;
}

static int record_field(void *conn, const tally_model *m, const tally_field *f, tally_error *err)
{
    tally_sqlite *st = conn;
    tally_sql def;
    tally_sql_init(&def);
    tally_sql_column_def(&def, m, f, 0);
    sqlite3_stmt *stmt;
    sqlite3_prepare_v2(st->db,
                       "INSERT INTO tally_fields (model, field, type, def, uniq) VALUES (?1, ?2, ?3, ?4, ?5) "
                       "ON CONFLICT (model, field) DO UPDATE SET uniq = excluded.uniq",
                       -1, &stmt, NULL);
    sqlite3_bind_text(stmt, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, f->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, tally_type_name(f->type), -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, def.s, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 5, f->unique);
    int rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    tally_sql_free(&def);
    if (rc != SQLITE_DONE)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot record field %s.%s: %s", m->name, f->name,
                          sqlite3_errmsg(st->db));
    return 0;
}

static int exec_sql(tally_sqlite *st, tally_sql *q, tally_error *err)
{
    int rc = tally_sqlite_exec(st, q->s, err);
    tally_sql_free(q);
    return rc;
}

static void column_def(tally_sql *q, const tally_model *m, const tally_field *f) { tally_sql_column_def(q, m, f, 0); }

static int add_unique(void *conn, const tally_model *m, int field, int key, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_unique_index(&q, m, field, key);
    return exec_sql(conn, &q, err);
}

static int find_duplicate(void *conn, const tally_model *m, int field, int key, char *out, size_t cap, long long *rows,
                          long long *example_id, tally_error *err)
{
    tally_sqlite *st = conn;
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_duplicate_query(&q, m, field, key);
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2(st->db, q.s, -1, &stmt, NULL);
    tally_sql_free(&q);
    if (rc != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot look for duplicates in %s: %s", m->name,
                          sqlite3_errmsg(st->db));
    int found = 0;
    if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int n = sqlite3_column_count(stmt) - 2; /* the values, then the count and the lowest id */
        out[0] = '\0';
        for (int i = 0; i < n; i++) {
            const char *v = (const char *)sqlite3_column_text(stmt, i);
            snprintf(out + strlen(out), cap - strlen(out), "%s'%.60s'", i ? ", " : "", v ? v : "");
        }
        *rows = sqlite3_column_int64(stmt, n);
        *example_id = sqlite3_column_int64(stmt, n + 1);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = tally_fail(err, TALLY_INTERNAL, NULL, "cannot look for duplicates in %s: %s", m->name,
                           sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(stmt);
    return found;
}

static int drop_unique(void *conn, const tally_model *m, int field, tally_error *err)
{
    char name[TALLY_SQL_INDEX_NAME_MAX];
    tally_sql_index_name(name, m, field, -1);
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_addf(&q, "DROP INDEX IF EXISTS \"%s\"", name);
    return exec_sql(conn, &q, err);
}

static int has_rows(void *conn, const tally_model *m, tally_error *err)
{
    tally_sqlite *st = conn;
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "SELECT 1 FROM ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " LIMIT 1");
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2(st->db, q.s, -1, &stmt, NULL);
    tally_sql_free(&q);
    if (rc != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot read %s: %s", m->name, sqlite3_errmsg(st->db));
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : tally_fail(err, TALLY_INTERNAL, NULL, "cannot read %s", m->name);
}

static int has_unique(void *conn, const tally_model *m, int field, int key, tally_error *err)
{
    tally_sqlite *st = conn;
    char name[TALLY_SQL_INDEX_NAME_MAX];
    tally_sql_index_name(name, m, field, key);
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1", -1, &stmt,
                           NULL) != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot read the indexes of %s: %s", m->name,
                          sqlite3_errmsg(st->db));
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0
                                : tally_fail(err, TALLY_INTERNAL, NULL, "cannot read the indexes of %s", m->name);
}

static int create_table(void *conn, const tally_model *m, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_create_table(&q, m);
    return exec_sql(conn, &q, err);
}

static int add_column(void *conn, const tally_model *m, const tally_field *f, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "ALTER TABLE ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " ADD COLUMN ");
    tally_sql_column_def(&q, m, f, 1);
    tally_migration_default(&q, f);
    return exec_sql(conn, &q, err);
}

static int drop_table(void *conn, const char *model, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "DROP TABLE ");
    tally_sql_name(&q, model);
    return exec_sql(conn, &q, err);
}

static char *dup_column(sqlite3_stmt *stmt, int c)
{
    const char *t = (const char *)sqlite3_column_text(stmt, c);
    return strdup(t ? t : "");
}

/*
 * The stored fields of model `model` (or, with model NULL, one row per
 * distinct stored model, its name in .name).  Read whole and the statement
 * finalized before the caller changes anything: SQLite refuses DROP TABLE /
 * DROP INDEX / DROP COLUMN ("database table is locked") while a statement
 * over the schema is still stepping.  Returns the count, or -code.
 */
static int read_stored(void *conn, const char *model, tally_stored_field **out, tally_error *err)
{
    tally_sqlite *st = conn;
    sqlite3_stmt *stmt;
    const char *sql = model ? "SELECT field, type, def, uniq FROM tally_fields WHERE model = ?1"
                            : "SELECT DISTINCT model FROM tally_fields";
    *out = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot read tally_fields: %s", sqlite3_errmsg(st->db));
    if (model)
        sqlite3_bind_text(stmt, 1, model, -1, SQLITE_STATIC);
    tally_stored_field *rows = NULL;
    int n = 0, cap = 0, rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            tally_stored_field *grown = realloc(rows, (size_t)cap * sizeof *rows);
            if (!grown)
                abort();
            rows = grown;
        }
        tally_stored_field *r = &rows[n++];
        memset(r, 0, sizeof *r);
        r->name = dup_column(stmt, 0);
        if (model) {
            r->type = dup_column(stmt, 1);
            r->def = dup_column(stmt, 2);
            r->uniq = sqlite3_column_int(stmt, 3);
        }
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) {
        tally_stored_fields_free(rows, n);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot read tally_fields: %s", sqlite3_errstr(rc));
    }
    *out = rows;
    return n;
}

/* Removes a row of tally_fields (a field, or with field NULL every field of a model). */
static int forget_stored(void *conn, const char *model, const char *field, tally_error *err)
{
    tally_sqlite *st = conn;
    sqlite3_stmt *stmt;
    const char *sql = field ? "DELETE FROM tally_fields WHERE model = ?1 AND field = ?2"
                            : "DELETE FROM tally_fields WHERE model = ?1";
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot update tally_fields: %s", sqlite3_errmsg(st->db));
    sqlite3_bind_text(stmt, 1, model, -1, SQLITE_STATIC);
    if (field)
        sqlite3_bind_text(stmt, 2, field, -1, SQLITE_STATIC);
    int rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot update tally_fields: %s", sqlite3_errmsg(st->db));
    return 0;
}

/*
 * A stored field's column: every index over it first
 * (its own unique index, and any compound key left in place after it left
 * the schema: SQLite cannot drop an indexed column), then the column.
 */
static int drop_column(void *conn, const tally_model *m, const char *name, tally_error *err)
{
    tally_sqlite *st = conn;
    tally_sql q;
    tally_sql_init(&q);
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT DISTINCT s.name FROM sqlite_schema AS s, pragma_index_info(s.name) AS i "
                           "WHERE s.type = 'index' AND s.tbl_name = ?1 AND i.name = ?2",
                           -1, &stmt, NULL) != SQLITE_OK) {
        tally_sql_free(&q);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot list the indexes of %s: %s", m->name,
                          sqlite3_errmsg(st->db));
    }
    sqlite3_bind_text(stmt, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
    /* Collected into the text first, run after the statement is finalized. */
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *index = (const char *)sqlite3_column_text(stmt, 0);
        tally_sql_add(&q, "DROP INDEX \"");
        for (const char *p = index; p && *p; p++)
            tally_sql_add(&q, *p == '"' ? "\"\"" : (char[]){*p, 0});
        tally_sql_add(&q, "\"; ");
    }
    sqlite3_finalize(stmt);
    tally_sql_add(&q, "ALTER TABLE ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " DROP COLUMN ");
    tally_sql_name(&q, name);
    return exec_sql(st, &q, err);
}

/* The recorded schema versions (see migration.h). */
static int read_versions(void *conn, const char *digest, int64_t *latest, int64_t *latest_at_ms, int64_t *mine,
                         tally_error *err)
{
    tally_sqlite *st = conn;
    sqlite3_stmt *stmt;
    const char *sql = "SELECT (SELECT max(version) FROM tally_schema_versions), "
                      "(SELECT migrated_at FROM tally_schema_versions ORDER BY version DESC LIMIT 1), "
                      "(SELECT max(version) FROM tally_schema_versions WHERE digest = ?1)";
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot read tally_schema_versions: %s", sqlite3_errmsg(st->db));
    sqlite3_bind_text(stmt, 1, digest, -1, SQLITE_STATIC);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *latest = sqlite3_column_int64(stmt, 0);
        *latest_at_ms = sqlite3_column_int64(stmt, 1);
        *mine = sqlite3_column_int64(stmt, 2);
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW ? 0 : tally_fail(err, TALLY_INTERNAL, NULL, "cannot read tally_schema_versions: %s",
                                            sqlite3_errstr(rc));
}

static int record_version(void *conn, int64_t version, const char *digest, int64_t at_ms, tally_error *err)
{
    tally_sqlite *st = conn;
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(st->db, "INSERT INTO tally_schema_versions (version, digest, migrated_at) VALUES (?1, ?2, ?3)",
                           -1, &stmt, NULL) != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot record the schema version: %s", sqlite3_errmsg(st->db));
    sqlite3_bind_int64(stmt, 1, version);
    sqlite3_bind_text(stmt, 2, digest, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, at_ms);
    int rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? 0 : tally_fail(err, TALLY_INTERNAL, NULL, "cannot record the schema version: %s",
                                             sqlite3_errstr(rc));
}

static const tally_migration_ops SQLITE_MIGRATION = {
    .table_exists = table_exists,
    .read_stored = read_stored,
    .record_field = record_field,
    .forget_stored = forget_stored,
    .column_def = column_def,
    .create_table = create_table,
    .link_model = NULL, /* REFERENCES are part of CREATE TABLE; foreign keys are off while migrating */
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

/* The floor of the database's restore generation (0 if it was never restored). */
static int64_t restore_floor(tally_sqlite *st)
{
    sqlite3_stmt *stmt;
    int64_t gen = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT coalesce(max(generation), 0) FROM tally_restores", -1, &stmt, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(stmt) == SQLITE_ROW)
            gen = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    return TALLY_RESTORE_FLOOR(gen);
}

int tally_sqlite_migrate(tally_store *base, unsigned flags, tally_buf *changes, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    /* Foreign keys are checked per statement; switch them off so that models
     * can be created in any order and tables dropped, then check at the end. */
    if (tally_sqlite_exec(st, "PRAGMA foreign_keys=OFF", err) || tally_sqlite_exec(st, "BEGIN IMMEDIATE", err))
        return -TALLY_INTERNAL;
    int rc = tally_sqlite_exec(st,
                               "CREATE TABLE IF NOT EXISTS tally_fields (model TEXT NOT NULL, field TEXT NOT NULL, "
                               "type TEXT NOT NULL, def TEXT NOT NULL, uniq INTEGER NOT NULL, "
                               "PRIMARY KEY (model, field)) STRICT",
                               err);
    /* The tables behind locks, rate limits and idempotency keys. */
    if (rc == 0)
        rc = tally_sqlite_exec(st,
                               "CREATE TABLE IF NOT EXISTS tally_locks (name TEXT PRIMARY KEY, fence INTEGER NOT NULL, "
                               "token TEXT, expires_at INTEGER NOT NULL) STRICT; "
                               "CREATE TABLE IF NOT EXISTS tally_limits (name TEXT NOT NULL, key TEXT NOT NULL, "
                               "tat REAL NOT NULL, PRIMARY KEY (name, key)) STRICT; "
                               "CREATE INDEX IF NOT EXISTS tally_limits_tat ON tally_limits (tat); "
                               "CREATE TABLE IF NOT EXISTS tally_idempotency (method TEXT NOT NULL, path TEXT NOT NULL, "
                               "key TEXT NOT NULL, hash BLOB NOT NULL, status INTEGER NOT NULL, body BLOB NOT NULL, "
                               "created_at INTEGER NOT NULL, PRIMARY KEY (method, path, key)) STRICT; "
                               "CREATE INDEX IF NOT EXISTS tally_idempotency_created ON tally_idempotency (created_at); "
                               "CREATE TABLE IF NOT EXISTS tally_schema_versions (version INTEGER PRIMARY KEY, "
                               "digest TEXT NOT NULL, migrated_at INTEGER NOT NULL) STRICT; "
                               /* one row per tally restore into this database (store/backup.h) */
                               "CREATE TABLE IF NOT EXISTS tally_restores (generation INTEGER PRIMARY KEY, "
                               "restored_at INTEGER NOT NULL, source TEXT NOT NULL) STRICT",
                               err);
    if (rc == 0) /* API keys */
        rc = tally_sqlite_exec(st, tally_sqlite_keys_tables, err);
    if (rc == 0) /* the change feed's log; its triggers are made again once the tables are done */
        rc = tally_sqlite_exec(st, tally_sqlite_feed_tables, err);
    if (rc == 0)
        rc = tally_sqlite_feed_uninstall(st, err);
    if (rc == 0)
        rc = tally_migration_apply(&SQLITE_MIGRATION, st, st->schema, flags & TALLY_MIGRATE_DESTRUCTIVE, NULL, changes,
                                   err);
    if (rc == 0) /* after the tables: the triggers that fill the log */
        rc = tally_sqlite_feed_install(st, err);
    if (rc == 0 && !(flags & TALLY_MIGRATE_CHECK_ONLY))
        rc = tally_sqlite_exec(st, "COMMIT", err);
    else
        tally_sqlite_exec(st, "ROLLBACK", NULL);
    tally_sqlite_exec(st, "PRAGMA foreign_keys=ON", NULL);
    if (rc == 0)
        st->fence_floor = restore_floor(st);
    return rc;
}
