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
#include "store/sqlite/internal.h"

static int table_exists(tally_sqlite *st, const char *name)
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

static int record_field(tally_sqlite *st, const tally_model *m, const tally_field *f, tally_error *err)
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

static int exec_sql(tally_sqlite *st, tally_sql *q, tally_error *err)
{
    int rc = tally_sqlite_exec(st, q->s, err);
    tally_sql_free(q);
    return rc;
}

/* The reason a step failed, copied out of err before err is filled again
 * (err->message must not be both the output and an argument of tally_fail). */
typedef struct reason {
    char text[sizeof ((tally_error *)0)->message];
} reason;

static reason reason_of(const tally_error *err)
{
    reason r;
    snprintf(r.text, sizeof r.text, "%s", err ? err->message : "");
    return r;
}

static int add_unique(tally_sqlite *st, const tally_model *m, int field, int key, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_unique_index(&q, m, field, key);
    if (exec_sql(st, &q, err) == 0)
        return 0;
    reason why = reason_of(err);
    return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                      "model '%s': cannot make %s unique: the stored records already hold duplicates (%s)", m->name,
                      key < 0 ? m->fields[field].name : "the compound key", why.text);
}

static int create_model(tally_sqlite *st, const tally_model *m, tally_error *err)
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

static int add_field(tally_sqlite *st, const tally_model *m, const tally_field *f, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "ALTER TABLE ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " ADD COLUMN ");
    tally_sql_column_def(&q, m, f, 1);
    alter_default(&q, f);
    if (exec_sql(st, &q, err)) {
        reason why = reason_of(err);
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s', field '%s': cannot add the field: %s", m->name,
                          f->name, why.text);
    }
    return record_field(st, m, f, err);
}

/* One row of tally_fields, copied out of its statement. */
typedef struct stored_field {
    char *name, *type, *def;
    int uniq;
} stored_field;

static void free_stored(stored_field *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].type);
        free(rows[i].def);
    }
    free(rows);
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
static int read_stored(tally_sqlite *st, const char *model, stored_field **out, tally_error *err)
{
    sqlite3_stmt *stmt;
    const char *sql = model ? "SELECT field, type, def, uniq FROM tally_fields WHERE model = ?1"
                            : "SELECT DISTINCT model FROM tally_fields";
    *out = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot read tally_fields: %s", sqlite3_errmsg(st->db));
    if (model)
        sqlite3_bind_text(stmt, 1, model, -1, SQLITE_STATIC);
    stored_field *rows = NULL;
    int n = 0, cap = 0, rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            stored_field *grown = realloc(rows, (size_t)cap * sizeof *rows);
            if (!grown)
                abort();
            rows = grown;
        }
        stored_field *r = &rows[n++];
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
        free_stored(rows, n);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot read tally_fields: %s", sqlite3_errstr(rc));
    }
    *out = rows;
    return n;
}

/* Removes a row of tally_fields (a field, or with field NULL every field of a model). */
static int forget_stored(tally_sqlite *st, const char *model, const char *field, tally_error *err)
{
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
 * Drops a stored field the schema no longer has: every index over its column
 * (its own unique index, and any compound key left in place after it left
 * the schema: SQLite cannot drop an indexed column), its column, its record.
 */
static int drop_field(tally_sqlite *st, const tally_model *m, const char *name, tally_error *err)
{
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
    if (exec_sql(st, &q, err)) {
        reason why = reason_of(err);
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s', field '%s': cannot drop the field: %s", m->name,
                          name, why.text);
    }
    return forget_stored(st, m->name, name, err);
}

/* Compares the stored fields of one model with the schema's. */
static int migrate_model(tally_sqlite *st, const tally_model *m, bool allow_destructive, tally_error *err)
{
    if (!table_exists(st, m->name))
        return create_model(st, m, err);
    stored_field *rows;
    int nrows = read_stored(st, m->name, &rows, err);
    if (nrows < 0)
        return nrows;
    int rc = 0;
    bool *seen = calloc((size_t)m->nfields + 1, sizeof *seen);
    for (int i = 0; rc == 0 && i < nrows; i++) {
        const char *name = rows[i].name, *type = rows[i].type, *olddef = rows[i].def;
        int olduniq = rows[i].uniq;
        /* A stored name is an identifier (it came from a checked schema); anything else is not ours to drop. */
        if (!tally_is_identifier(name, strlen(name))) {
            rc = tally_fail(err, TALLY_INTERNAL, NULL, "model '%s': tally_fields holds a field named '%.64s', which "
                            "is not an identifier", m->name, name);
            break;
        }
        int fi = tally_model_field(m, name, strlen(name));
        if (fi < 0 || m->fields[fi].column < 0) {
            if (!allow_destructive) {
                rc = tally_fail(err, TALLY_BAD_REQUEST, NULL,
                                "model '%s', field '%s': the field is stored but no longer in the schema; removing it "
                                "would delete its data. Put it back, or start with --allow-destructive to drop it",
                                m->name, name);
                break;
            }
            rc = drop_field(st, m, name, err);
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
    free_stored(rows, nrows);
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
static int dropped_models(tally_sqlite *st, bool allow_destructive, tally_error *err)
{
    stored_field *rows;
    int nrows = read_stored(st, NULL, &rows, err);
    if (nrows < 0)
        return nrows;
    int rc = 0;
    for (int i = 0; rc == 0 && i < nrows; i++) {
        const char *name = rows[i].name;
        if (tally_schema_model(st->schema, name, strlen(name)))
            continue;
        if (!tally_is_identifier(name, strlen(name))) {
            rc = tally_fail(err, TALLY_INTERNAL, NULL, "tally_fields holds a model named '%.64s', which is not an "
                            "identifier", name);
            break;
        }
        if (!allow_destructive) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, NULL,
                            "model '%s': the model is stored but no longer in the schema; removing it would delete "
                            "its records. Put it back, or start with --allow-destructive to drop it", name);
            break;
        }
        tally_sql q;
        tally_sql_init(&q);
        tally_sql_add(&q, "DROP TABLE ");
        tally_sql_name(&q, name);
        if (exec_sql(st, &q, err)) {
            reason why = reason_of(err);
            rc = tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s': cannot drop the model: %s", name, why.text);
            break;
        }
        rc = forget_stored(st, name, NULL, err);
    }
    free_stored(rows, nrows);
    return rc;
}

int tally_sqlite_migrate(tally_store *base, bool allow_destructive, tally_error *err)
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
