/*
 * migrate.c — makes the PostgreSQL tables match the schema at start-up, on
 * the model of sqlite/migrate.c (same rules, same messages).
 *
 * What each table was made from is kept in tally_fields (model, field, type,
 * column definition, unique).  A new model is created, a new field added
 * (ALTER TABLE ADD COLUMN with its default filled into existing rows), a
 * field that became unique gets its index; a model or field the schema no
 * longer has is refused unless allow_destructive (which drops it); a changed
 * type or changed options are always refused.  Also here: the tables behind
 * locks, limits and idempotency keys, and the SQL functions the statements
 * call (tally_add / tally_sub: checked arithmetic; tally_cmp: an exact
 * comparison of a bigint with a double).  Lock names and limit keys are bytea:
 * as are the idempotency table's method, path and key:
 * they come from a URL path or a header and need not be UTF-8 (SQLite stores any bytes);
 * bytea also orders bytewise, as the lock list wants.
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
    "CREATE TABLE IF NOT EXISTS tally_idempotency (method bytea NOT NULL, path bytea NOT NULL, key bytea NOT NULL, "
    "hash bytea NOT NULL, status integer NOT NULL, body bytea NOT NULL, created_at bigint NOT NULL, "
    "PRIMARY KEY (method, path, key)); "
    "CREATE INDEX IF NOT EXISTS tally_idempotency_created ON tally_idempotency (created_at)";

static tally_value text(const char *s) { return tally_value_text(s, strlen(s)); }

/* 1 if the table exists in the current schema, 0 if not, or -code. */
static int table_exists(tally_pg *st, const char *name, tally_error *err)
{
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
    else if (v->kind == TALLY_VALUE_TEXT) { /* a schema string, quoted with '' doubled (standard strings) */
        tally_sql_add(q, " DEFAULT '");
        for (size_t i = 0; i < v->u.text.len; i++)
            tally_sql_addf(q, "%s", v->u.text.ptr[i] == '\'' ? "''" : (char[]){v->u.text.ptr[i], 0});
        tally_sql_add(q, "'");
    }
}

static int record_field(tally_pg *st, const tally_model *m, const tally_field *f, tally_error *err)
{
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

/* The reason a step failed, copied out of err before err is filled again. */
typedef struct reason {
    char text[sizeof ((tally_error *)0)->message];
} reason;

static reason reason_of(const tally_error *err)
{
    reason r;
    snprintf(r.text, sizeof r.text, "%s", err ? err->message : "");
    return r;
}

static int add_unique(tally_pg *st, const tally_model *m, int field, int key, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_pgsql_unique_index(&q, m, field, key);
    if (exec_sql(st, &q, err) == 0)
        return 0;
    reason why = reason_of(err);
    return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                      "model '%s': cannot make %s unique: the stored records already hold duplicates (%s)", m->name,
                      key < 0 ? m->fields[field].name : "the compound key", why.text);
}

static int create_model(tally_pg *st, const tally_model *m, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_pgsql_create_table(&q, m);
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

/* The foreign keys of a model created by this migration, once every table exists. */
static int add_foreign_keys(tally_pg *st, const tally_model *m, tally_error *err)
{
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

static int add_field(tally_pg *st, const tally_model *m, const tally_field *f, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "ALTER TABLE ");
    tally_sql_name(&q, m->name);
    tally_sql_add(&q, " ADD COLUMN ");
    tally_pgsql_column_def(&q, m, f, 1, 1);
    alter_default(&q, f);
    if (exec_sql(st, &q, err)) {
        reason why = reason_of(err);
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s', field '%s': cannot add the field: %s", m->name,
                          f->name, why.text);
    }
    return record_field(st, m, f, err);
}

/* One row of tally_fields. */
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

static char *dup_value(const PGresult *r, int row, int c)
{
    char *s = strndup(PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c));
    if (!s)
        abort();
    return s;
}

/* The stored fields of `model` (or, with model NULL, one row per stored model). Returns the count or -code. */
static int read_stored(tally_pg *st, const char *model, stored_field **out, tally_error *err)
{
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
    stored_field *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
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

static int forget_stored(tally_pg *st, const char *model, const char *field, tally_error *err)
{
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

/* Drops a stored field the schema no longer has (PostgreSQL drops its indexes and constraints with it). */
static int drop_field(tally_pg *st, const tally_model *m, const char *name, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
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

/* Compares the stored fields of an existing model with the schema's. */
static int migrate_model(tally_pg *st, const tally_model *m, bool allow_destructive, tally_error *err)
{
    stored_field *rows;
    int nrows = read_stored(st, m->name, &rows, err);
    if (nrows < 0)
        return nrows;
    int rc = 0;
    bool *seen = calloc((size_t)m->nfields + 1, sizeof *seen);
    if (!seen)
        abort();
    for (int i = 0; rc == 0 && i < nrows; i++) {
        const char *name = rows[i].name, *type = rows[i].type, *olddef = rows[i].def;
        int olduniq = rows[i].uniq;
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
        tally_pgsql_column_def(&def, m, f, 0, 1);
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
            char index[TALLY_PG_IDENT_MAX + 1];
            tally_pgsql_index_name(index, m, fi, -1);
            tally_sql q;
            tally_sql_init(&q);
            tally_sql_addf(&q, "DROP INDEX IF EXISTS \"%s\"", index);
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
static int dropped_models(tally_pg *st, bool allow_destructive, tally_error *err)
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
        tally_sql_add(&q, " CASCADE"); /* the links of other dropped models to it */
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

int tally_pg_migrate(tally_store *base, bool allow_destructive, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    const tally_schema *schema = st->schema;
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", (long long)TALLY_PG_MIGRATE_LOCK);
    if (tally_pg_exec(st, "BEGIN", err))
        return -(int)err->code;
    bool *created = calloc((size_t)schema->nmodels + 1, sizeof *created);
    if (!created)
        abort();
    int rc = tally_pg_exec(st, lock, err);
    if (rc == 0)
        rc = tally_pg_exec(st, TABLES, err);
    if (rc == 0)
        rc = tally_pg_exec(st, FUNCTIONS, err);
    if (rc == 0)
        rc = dropped_models(st, allow_destructive, err);
    for (int i = 0; rc == 0 && i < schema->nmodels; i++) {
        int exists = table_exists(st, schema->models[i].name, err);
        if (exists < 0)
            rc = exists;
        else if (!exists && (rc = create_model(st, &schema->models[i], err)) == 0)
            created[i] = true;
    }
    for (int i = 0; rc == 0 && i < schema->nmodels; i++)
        if (!created[i])
            rc = migrate_model(st, &schema->models[i], allow_destructive, err);
    for (int i = 0; rc == 0 && i < schema->nmodels; i++)
        if (created[i])
            rc = add_foreign_keys(st, &schema->models[i], err);
    for (int i = 0; rc == 0 && i < schema->nmodels; i++) {
        const tally_model *m = &schema->models[i];
        for (int k = 0; rc == 0 && k < m->nuniques; k++)
            rc = add_unique(st, m, -1, k, err);
    }
    free(created);
    if (rc == 0)
        rc = tally_pg_exec(st, "COMMIT", err);
    if (rc)
        tally_pg_exec(st, "ROLLBACK", NULL);
    return rc;
}
