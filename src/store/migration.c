/* migration.c — the decisions of a migration and their messages; see migration.h. */
#include "store/migration.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/datetime.h"

/* Where the migration running on this thread says what it changes (NULL: it
 * says nothing).  Set for the length of one tally_migration_apply, so that
 * the helpers below need not carry it. */
static _Thread_local tally_buf *g_changes;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    if (!g_changes)
        return;
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    tally_buf_add(g_changes, line);
    tally_buf_addc(g_changes, '\n');
}

void tally_stored_fields_free(tally_stored_field *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].type);
        free(rows[i].def);
    }
    free(rows);
}

void tally_migration_default(tally_sql *q, const tally_field *f)
{
    const tally_value *v = &f->default_value;
    if (!f->has_default)
        return;
    if (v->kind == TALLY_VALUE_INT)
        tally_sql_addf(q, " DEFAULT %lld", (long long)v->u.i);
    else if (v->kind == TALLY_VALUE_FLOAT)
        tally_sql_addf(q, " DEFAULT %.17g", v->u.f);
    else if (v->kind == TALLY_VALUE_TEXT) {
        tally_sql_add(q, " DEFAULT '");
        for (size_t i = 0; i < v->u.text.len; i++)
            tally_sql_add(q, v->u.text.ptr[i] == '\'' ? "''" : (char[]){v->u.text.ptr[i], 0});
        tally_sql_add(q, "'");
    }
}

/* The database's reason, copied out of err before err is filled again
 * (err->message must not be both the output and an argument of tally_fail). */
typedef struct reason {
    char text[sizeof ((tally_error *)0)->message];
} reason;

static reason reason_of(const tally_error *err)
{
    reason r;
    snprintf(r.text, sizeof r.text, "%s", err->message);
    return r;
}

static int add_unique(const tally_migration_ops *ops, void *conn, const tally_model *m, int field, int key,
                      tally_error *err)
{
    char what[160] = "", value[200];
    long long rows = 0;
    if (key < 0) {
        snprintf(what, sizeof what, "%s", m->fields[field].name);
    } else {
        for (int i = 0; i < m->uniques[key].nfields; i++)
            snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", i ? ", " : "the compound key (",
                     m->fields[m->uniques[key].fields[i]].name);
        snprintf(what + strlen(what), sizeof what - strlen(what), ")");
    }
    int has = ops->has_unique(conn, m, field, key, err);
    if (has != 0)
        return has < 0 ? has : 0; /* there already: no duplicates can be stored */
    /* Looked for first: on PostgreSQL a failed CREATE INDEX would end the migration's transaction. */
    long long example = 0;
    int found = ops->find_duplicate(conn, m, field, key, value, sizeof value, &rows, &example, err);
    if (found < 0)
        return found;
    if (found)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                          "model '%s': cannot make %s unique: %lld stored records share the value %s (record %lld "
                          "is one; there may be other duplicates); change or delete those records so that no two "
                          "share one, then start again", m->name, what, rows, value, example);
    if (ops->add_unique(conn, m, field, key, err) == 0) {
        note("model '%s': %s made unique", m->name, what);
        return 0;
    }
    reason why = reason_of(err);
    return tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s': cannot make %s unique: the database refused the "
                      "unique index (%s)", m->name, what, why.text);
}

static int create_model(const tally_migration_ops *ops, void *conn, const tally_model *m, tally_error *err)
{
    if (ops->create_table(conn, m, err))
        return -TALLY_INTERNAL;
    note("model '%s' created", m->name);
    for (int i = 0; i < m->nfields; i++) {
        if (m->fields[i].column < 0)
            continue;
        if (ops->record_field(conn, m, &m->fields[i], err) ||
            (m->fields[i].unique && add_unique(ops, conn, m, i, -1, err)))
            return -(int)err->code;
    }
    return 0;
}

static int add_field(const tally_migration_ops *ops, void *conn, const tally_model *m, const tally_field *f,
                     tally_error *err)
{
    /* Old records would hold no value in a required field: refused unless a default fills them. */
    if (f->required && !f->has_default) {
        int rows = ops->has_rows(conn, m, err);
        if (rows < 0)
            return rows;
        if (rows)
            return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                              "model '%s', field '%s': a new required field needs a value in the records already "
                              "stored, and it has no default; give it a \"default\" (the stored records get it), "
                              "or add it without \"required\"", m->name, f->name);
    }
    if (ops->add_column(conn, m, f, err)) {
        reason why = reason_of(err);
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s', field '%s': cannot add the field: %s", m->name,
                          f->name, why.text);
    }
    if (ops->record_field(conn, m, f, err))
        return -(int)err->code;
    note("model '%s': field '%s' added (%s)", m->name, f->name,
         f->has_default ? "existing records get its default" : "null in existing records");
    return f->unique ? add_unique(ops, conn, m, f - m->fields, -1, err) : 0;
}

static int drop_field(const tally_migration_ops *ops, void *conn, const tally_model *m, const char *name,
                      tally_error *err)
{
    if (ops->drop_column(conn, m, name, err)) {
        reason why = reason_of(err);
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s', field '%s': cannot drop the field: %s", m->name,
                          name, why.text);
    }
    note("model '%s': field '%s' dropped, with its values", m->name, name);
    return ops->forget_stored(conn, m->name, name, err);
}

/* One stored field against the schema's field of that name (fi, or -1 when gone). */
static int compare_field(const tally_migration_ops *ops, void *conn, const tally_model *m, const tally_stored_field *row,
                         int fi, bool allow_destructive, tally_error *err)
{
    const char *name = row->name;
    if (fi < 0 || m->fields[fi].column < 0) {
        if (!allow_destructive)
            return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                              "model '%s', field '%s': the field is stored but not in this schema (it was removed "
                              "from it, or another server migrated the database to a newer schema); removing it would "
                              "delete its data. Serve the newer schema, put the field back, or run tally migrate "
                              "--allow-destructive to drop it",
                              m->name, name);
        return drop_field(ops, conn, m, name, err);
    }
    const tally_field *f = &m->fields[fi];
    if (strcmp(row->type, tally_type_name(f->type)) != 0)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                          "model '%s', field '%s': the type changed from %s to %s; stored values would not fit. "
                          "Keep the type, or add a field with a new name", m->name, name, row->type,
                          tally_type_name(f->type));
    tally_sql def;
    tally_sql_init(&def);
    ops->column_def(&def, m, f);
    bool same = strcmp(def.s, row->def) == 0;
    tally_sql_free(&def);
    if (!same)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                          "model '%s', field '%s': its stored constraints (required, min, max, model, onDelete) "
                          "differ from the schema's, and they cannot be changed in place. Keep them, or add a "
                          "field with a new name", m->name, name);
    if (f->unique && !row->uniq)
        return add_unique(ops, conn, m, fi, -1, err) || ops->record_field(conn, m, f, err) ? -(int)err->code : 0;
    if (!f->unique && row->uniq) {
        if (ops->drop_unique(conn, m, fi, err) || ops->record_field(conn, m, f, err))
            return -(int)err->code;
        note("model '%s': %s no longer unique", m->name, name);
    }
    return 0;
}

/* Compares the stored fields of an existing model with the schema's. */
static int migrate_model(const tally_migration_ops *ops, void *conn, const tally_model *m, bool allow_destructive,
                         tally_error *err)
{
    tally_stored_field *rows;
    int nrows = ops->read_stored(conn, m->name, &rows, err);
    if (nrows < 0)
        return nrows;
    int rc = 0;
    bool *seen = calloc((size_t)m->nfields + 1, sizeof *seen);
    if (!seen)
        abort();
    for (int i = 0; rc == 0 && i < nrows; i++) {
        const char *name = rows[i].name;
        /* A stored name is an identifier (it came from a checked schema); anything else is not ours to drop. */
        if (!tally_is_identifier(name, strlen(name))) {
            rc = tally_fail(err, TALLY_INTERNAL, NULL, "model '%s': tally_fields holds a field named '%.64s', which "
                            "is not an identifier", m->name, name);
            break;
        }
        int fi = tally_model_field(m, name, strlen(name));
        if (fi >= 0)
            seen[fi] = true;
        rc = compare_field(ops, conn, m, &rows[i], fi, allow_destructive, err);
    }
    tally_stored_fields_free(rows, nrows);
    for (int fi = 0; rc == 0 && fi < m->nfields; fi++)
        if (!seen[fi] && m->fields[fi].column >= 0)
            rc = add_field(ops, conn, m, &m->fields[fi], err);
    free(seen);
    return rc;
}

/* Models stored before but gone from the schema. */
static int dropped_models(const tally_migration_ops *ops, void *conn, const tally_schema *schema,
                          bool allow_destructive, tally_error *err)
{
    tally_stored_field *rows;
    int nrows = ops->read_stored(conn, NULL, &rows, err);
    if (nrows < 0)
        return nrows;
    int rc = 0;
    for (int i = 0; rc == 0 && i < nrows; i++) {
        const char *name = rows[i].name;
        if (tally_schema_model(schema, name, strlen(name)))
            continue;
        if (!tally_is_identifier(name, strlen(name))) {
            rc = tally_fail(err, TALLY_INTERNAL, NULL, "tally_fields holds a model named '%.64s', which is not an "
                            "identifier", name);
            break;
        }
        if (!allow_destructive) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, NULL,
                            "model '%s': the model is stored but not in this schema (it was removed from it, or "
                            "another server migrated the database to a newer schema); removing it would delete its "
                            "records. Serve the newer schema, put the model back, or run tally migrate "
                            "--allow-destructive to drop it", name);
            break;
        }
        if (ops->drop_table(conn, name, err)) {
            reason why = reason_of(err);
            rc = tally_fail(err, TALLY_BAD_REQUEST, NULL, "model '%s': cannot drop the model: %s", name, why.text);
            break;
        }
        note("model '%s' dropped, with its records", name);
        rc = ops->forget_stored(conn, name, NULL, err);
    }
    tally_stored_fields_free(rows, nrows);
    return rc;
}

/* A schema the database has had before, but not its newest: refused unless destructive. */
static int older_schema(int64_t mine, int64_t latest, int64_t latest_at_ms, tally_error *err)
{
    char at[40];
    at[tally_datetime_format(latest_at_ms, at)] = 0;
    return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                      "this schema is version %lld of the database, which was migrated to version %lld at %s by a "
                      "newer schema; a server with the older schema would not know what the newer one added. Start "
                      "with the newest schema file, or run tally migrate --allow-destructive with this one to take "
                      "the database back to it",
                      (long long)mine, (long long)latest, at);
}

static int apply(const tally_migration_ops *ops, void *conn, const tally_schema *schema, bool allow_destructive,
                 int64_t *version, tally_error *err);

int tally_migration_apply(const tally_migration_ops *ops, void *conn, const tally_schema *schema,
                          bool allow_destructive, int64_t *version, tally_buf *changes, tally_error *err)
{
    g_changes = changes;
    int rc = apply(ops, conn, schema, allow_destructive, version, err);
    g_changes = NULL;
    return rc;
}

static int apply(const tally_migration_ops *ops, void *conn, const tally_schema *schema, bool allow_destructive,
                 int64_t *version, tally_error *err)
{
    int64_t latest = 0, latest_at = 0, mine = 0;
    if (ops->read_versions(conn, schema->digest, &latest, &latest_at, &mine, err))
        return -(int)err->code;
    if (mine && mine < latest && !allow_destructive)
        return older_schema(mine, latest, latest_at, err);
    bool *created = calloc((size_t)schema->nmodels + 1, sizeof *created);
    if (!created)
        abort();
    int rc = dropped_models(ops, conn, schema, allow_destructive, err);
    /* New tables first, so that the links of any model can point at any other. */
    for (int i = 0; rc == 0 && i < schema->nmodels; i++) {
        int exists = ops->table_exists(conn, schema->models[i].name, err);
        if (exists < 0)
            rc = exists;
        else if (!exists && (rc = create_model(ops, conn, &schema->models[i], err)) == 0)
            created[i] = true;
    }
    for (int i = 0; rc == 0 && i < schema->nmodels; i++)
        if (!created[i])
            rc = migrate_model(ops, conn, &schema->models[i], allow_destructive, err);
    for (int i = 0; rc == 0 && ops->link_model && i < schema->nmodels; i++)
        if (created[i])
            rc = ops->link_model(conn, &schema->models[i], err);
    for (int i = 0; rc == 0 && i < schema->nmodels; i++) {
        const tally_model *m = &schema->models[i];
        for (int k = 0; rc == 0 && k < m->nuniques; k++)
            rc = add_unique(ops, conn, m, -1, k, err);
    }
    free(created);
    if (rc == 0 && (mine == 0 || mine != latest)) { /* a new schema, or an older one taken back: the next version */
        rc = ops->record_version(conn, ++latest, schema->digest, tally_now_ms(), err) ? -(int)err->code : 0;
        if (rc == 0)
            note("the schema recorded as version %lld", (long long)latest);
    }
    if (rc == 0 && version)
        *version = latest;
    return rc;
}
