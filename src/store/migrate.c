/*
 * migrate.c — makes the SQLite tables match the schema at start-up.
 *
 * What each table was made from is kept in tally_fields (model, field, type,
 * column definition, unique).  On start: a new model is created, a new field
 * is added (ALTER TABLE ADD COLUMN, with its default filled into existing
 * rows), a field that became unique gets its index.  Destructive changes are
 * refused with a message that says what and why: a model or field that the
 * schema no longer has (allowed with --allow-destructive, which drops it), a
 * changed type or changed options of an existing field (never: SQLite cannot
 * change a column's constraints in place; add a new field instead).
 * Everything runs in one transaction: a refused migration changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"
#include "store/sqlite_internal.h"

static int table_exists(tally_store *st, const char *name)
{
    sqlite3_stmt *stmt;
    sqlite3_prepare_v2(st->db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", -1, &stmt, NULL);
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    int found = sqlite3_step(stmt) == SQLITE_ROW;
    sqlite3_finalize(stmt);
    return found;
}

/* DEFAULT clause for ALTER TABLE ADD COLUMN, so existing rows get the field's default. */
static void alter_default(tally_sql *q, const tally_field *f)
{
    const tally_value *v = &f->default_value;
    if (!f->has_default)
        return;
    if (v->kind == TALLY_VALUE_INT)
        tally_sql_addf(q, " DEFAULT %lld", (long long)v->u.i);
    else if (v->kind == TALLY_VALUE_FLOAT)
        tally_sql_addf(q, " DEFAULT %.17g", v->u.f);
    else if (v->kind == TALLY_VALUE_TEXT) { /* a schema string, quoted with '' doubled */
        tally_sql_add(q, " DEFAULT '");
        for (size_t i = 0; i < v->u.text.len; i++)
            tally_sql_addf(q, "%s", v->u.text.ptr[i] == '\'' ? "''" : (char[]){v->u.text.ptr[i], 0});
        tally_sql_add(q, "'");
    }
}

static int record_field(tally_store *st, const tally_model *m, const tally_field *f, tally_error *err)
{
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

static int exec_sql(tally_store *st, tally_sql *q, tally_error *err)
{
    int rc = tally_sqlite_exec(st, q->s, err);
    tally_sql_free(q);
    return rc;
}

static int add_unique(tally_store *st, const tally_model *m, int field, int key, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_unique_index(&q, m, field, key);
    if (exec_sql(st, &q, err) == 0)
        return 0;
    return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                      "model '%s': cannot make %s unique: the stored records already hold duplicates (%s)", m->name,
                      key < 0 ? m->fields[field].name : "the compound key", err->message);
}

static int create_model(tally_store *st, const tally_model *m, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_create_table(&q, m);
    if (exec_sql(st, &q, err))
        return -TALLY_INTERNAL;
    for (int i = 0; i < m->nfields; i++) {
        if (m->fields[i].column < 0)
            continue;
        if (record_field(st, m, &m->fields[i], err) || (m->fields[i].unique && add_unique(st, m, i, -1, err)))
            return -(int)err->code;
    }
    return 0;
}

static int add_field(tally_store *st, const tally_model *m, const tally_field *f, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "ALTER TABLE ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " ADD COLUMN ");
    tally_sql_column_def(&q, m, f, 1);
    alter_default(&q, f);
    if (exec_sql(st, &q, err))
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s', field '%s': cannot add the field: %s", m->name,
                          f->name, err->message);
    return record_field(st, m, f, err);
}

/* Compares the stored fields of one model with the schema's. */
static int migrate_model(tally_store *st, const tally_model *m, bool allow_destructive, tally_error *err)
{
    if (!table_exists(st, m->name))
        return create_model(st, m, err);
    sqlite3_stmt *stmt;
    sqlite3_prepare_v2(st->db, "SELECT field, type, def, uniq FROM tally_fields WHERE model = ?1", -1, &stmt, NULL);
    sqlite3_bind_text(stmt, 1, m->name, -1, SQLITE_STATIC);
    int rc = 0;
    bool *seen = calloc((size_t)m->nfields + 1, sizeof *seen);
    while (rc == 0 && sqlite3_step(stmt) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 0);
        const char *type = (const char *)sqlite3_column_text(stmt, 1);
        const char *olddef = (const char *)sqlite3_column_text(stmt, 2);
        int olduniq = sqlite3_column_int(stmt, 3);
        int fi = tally_model_field(m, name, strlen(name));
        if (fi < 0 || m->fields[fi].column < 0) {
            if (!allow_destructive) {
                rc = tally_fail(err, TALLY_BAD_REQUEST, NULL,
                                "model '%s', field '%s': the field is stored but no longer in the schema; removing it "
                                "would delete its data. Put it back, or start with --allow-destructive to drop it",
                                m->name, name);
                break;
            }
            tally_sql q;
            tally_sql_init(&q);
            tally_sql_addf(&q, "DROP INDEX IF EXISTS \"u:%s:%s\"; ALTER TABLE \"%s\" DROP COLUMN \"%s\"; "
                               "DELETE FROM tally_fields WHERE model = '%s' AND field = '%s'",
                           m->name, name, m->name, name, m->name, name);
            if (exec_sql(st, &q, err))
                rc = tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s', field '%s': cannot drop the field: %s",
                                m->name, name, err->message);
            continue;
        }
        const tally_field *f = &m->fields[fi];
        seen[fi] = true;
        if (strcmp(type, tally_type_name(f->type)) != 0) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, NULL,
                            "model '%s', field '%s': the type changed from %s to %s; stored values would not fit. "
                            "Keep the type, or add a field with a new name", m->name, name, type,
                            tally_type_name(f->type));
            break;
        }
        tally_sql def;
        tally_sql_init(&def);
        tally_sql_column_def(&def, m, f, 0);
        bool same = strcmp(def.s, olddef) == 0;
        tally_sql_free(&def);
        if (!same) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, NULL,
                            "model '%s', field '%s': its stored constraints (required, min, max, model, onDelete) "
                            "differ from the schema's, and they cannot be changed in place. Keep them, or add a "
                            "field with a new name", m->name, name);
            break;
        }
        if (f->unique && !olduniq)
            rc = add_unique(st, m, fi, -1, err) || record_field(st, m, f, err) ? -(int)err->code : 0;
        else if (!f->unique && olduniq) {
            tally_sql q;
            tally_sql_init(&q);
            tally_sql_addf(&q, "DROP INDEX IF EXISTS \"u:%s:%s\"", m->name, name);
            rc = exec_sql(st, &q, err) || record_field(st, m, f, err) ? -(int)err->code : 0;
        }
    }
    sqlite3_finalize(stmt);
    for (int fi = 0; rc == 0 && fi < m->nfields; fi++)
        if (!seen[fi] && m->fields[fi].column >= 0) {
            rc = add_field(st, m, &m->fields[fi], err);
            if (rc == 0 && m->fields[fi].unique)
                rc = add_unique(st, m, fi, -1, err);
        }
    free(seen);
    return rc;
}

/* Models stored before but gone from the schema. */
static int dropped_models(tally_store *st, bool allow_destructive, tally_error *err)
{
    sqlite3_stmt *stmt;
    sqlite3_prepare_v2(st->db, "SELECT DISTINCT model FROM tally_fields", -1, &stmt, NULL);
    int rc = 0;
    while (rc == 0 && sqlite3_step(stmt) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 0);
        if (tally_schema_model(st->schema, name, strlen(name)))
            continue;
        if (!allow_destructive) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, NULL,
                            "model '%s': the model is stored but no longer in the schema; removing it would delete "
                            "its records. Put it back, or start with --allow-destructive to drop it", name);
            break;
        }
        tally_sql q;
        tally_sql_init(&q);
        tally_sql_addf(&q, "DROP TABLE \"%s\"; DELETE FROM tally_fields WHERE model = '%s'", name, name);
        rc = exec_sql(st, &q, err);
    }
    sqlite3_finalize(stmt);
    return rc;
}

int tally_store_migrate(tally_store *st, bool allow_destructive, tally_error *err)
{
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
                               "CREATE INDEX IF NOT EXISTS tally_idempotency_created ON tally_idempotency (created_at)",
                               err);
    if (rc == 0)
        rc = dropped_models(st, allow_destructive, err);
    for (int i = 0; rc == 0 && i < st->schema->nmodels; i++) {
        const tally_model *m = &st->schema->models[i];
        rc = migrate_model(st, m, allow_destructive, err);
        for (int k = 0; rc == 0 && k < m->nuniques; k++)
            rc = add_unique(st, m, -1, k, err);
    }
    if (rc == 0)
        rc = tally_sqlite_exec(st, "COMMIT", err);
    if (rc)
        tally_sqlite_exec(st, "ROLLBACK", NULL);
    tally_sqlite_exec(st, "PRAGMA foreign_keys=ON", NULL);
    return rc;
}
