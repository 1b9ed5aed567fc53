/* sql.c — SQL text for each operation; see sql.h for the binding order. */
#include "store/sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names are checked identifiers ([A-Za-z][A-Za-z0-9_]*), so quoting cannot be escaped. */
void tally_sql_name(tally_sql *q, const char *name) { tally_sql_addf(q, "\"%s\"", name); }

static void bound(tally_sql *q, const tally_value *v)
{
    if (v->kind == TALLY_VALUE_INT)
        tally_sql_addf(q, "%lld", (long long)v->u.i);
    else
        tally_sql_addf(q, "%.17g", v->u.f);
}

static const char *storage_type(tally_type t)
{
    switch (t) {
    case TALLY_TYPE_FLOAT: return "REAL";
    case TALLY_TYPE_STRING:
    case TALLY_TYPE_JSON: return "TEXT";
    default: return "INTEGER"; /* integer, boolean, datetime (UTC ms), belongsTo (id) */
    }
}

static const char *on_delete_sql(tally_on_delete d)
{
    return d == TALLY_ON_DELETE_CASCADE ? "CASCADE" : d == TALLY_ON_DELETE_SET_NULL ? "SET NULL" : "RESTRICT";
}

void tally_sql_column_def(tally_sql *q, const tally_model *m, const tally_field *f, int for_alter)
{
    (void)m;
    tally_sql_name(q, f->name);
    tally_sql_addf(q, " %s", storage_type(f->type));
    /* A required field is NOT NULL when the table is made; a column added later
     * to a table with rows cannot be, so there the API layer alone enforces it. */
    if (f->required && !for_alter)
        tally_sql_add(q, " NOT NULL");
    /* Constraints are named "min:field" etc. so that a failure names its field. */
    if (f->has_min) {
        tally_sql_addf(q, " CONSTRAINT \"min:%s\" CHECK (", f->name);
        tally_sql_name(q, f->name);
        tally_sql_add(q, " >= ");
        bound(q, &f->min);
        tally_sql_add(q, ")");
    }
    if (f->has_max) {
        tally_sql_addf(q, " CONSTRAINT \"max:%s\" CHECK (", f->name);
        tally_sql_name(q, f->name);
        tally_sql_add(q, " <= ");
        bound(q, &f->max);
        tally_sql_add(q, ")");
    }
    if (f->type == TALLY_TYPE_BOOLEAN) {
        tally_sql_addf(q, " CONSTRAINT \"bool:%s\" CHECK (", f->name);
        tally_sql_name(q, f->name);
        tally_sql_add(q, " IN (0, 1))");
    }
    if (f->type == TALLY_TYPE_BELONGS_TO) {
        tally_sql_add(q, " REFERENCES ");
        tally_sql_name(q, f->target);
        tally_sql_addf(q, "(\"id\") ON DELETE %s", on_delete_sql(f->on_delete));
    }
}

void tally_sql_create_table(tally_sql *q, const tally_model *m)
{
    tally_sql_add(q, "CREATE TABLE ");
    tally_sql_name(q, m->name);
    /* AUTOINCREMENT: ids are never reused, even after the newest row is deleted. */
    tally_sql_add(q, " (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
                     "\"updatedAt\" INTEGER NOT NULL");
    for (int i = 0; i < m->nfields; i++) {
        if (m->fields[i].column < 0)
            continue;
        tally_sql_add(q, ", ");
        tally_sql_column_def(q, m, &m->fields[i], 0);
    }
    tally_sql_add(q, ") STRICT");
}

void tally_sql_unique_index(tally_sql *q, const tally_model *m, int field, int key)
{
    /* Unique indexes rather than column constraints, so that ALTER TABLE can add them later. */
    if (key < 0) {
        tally_sql_addf(q, "CREATE UNIQUE INDEX IF NOT EXISTS \"u:%s:%s\" ON ", m->name, m->fields[field].name);
        tally_sql_name(q, m->name);
        tally_sql_add(q, " (");
        tally_sql_name(q, m->fields[field].name);
        tally_sql_add(q, ")");
        return;
    }
    const tally_unique_key *u = &m->uniques[key];
    tally_sql_addf(q, "CREATE UNIQUE INDEX IF NOT EXISTS \"u:%s", m->name);
    for (int i = 0; i < u->nfields; i++)
        tally_sql_addf(q, ":%s", m->fields[u->fields[i]].name);
    tally_sql_add(q, "\" ON ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " (");
    for (int i = 0; i < u->nfields; i++) {
        if (i)
            tally_sql_add(q, ", ");
        tally_sql_name(q, m->fields[u->fields[i]].name);
    }
    tally_sql_add(q, ")");
}

static void column_list(tally_sql *q, const tally_model *m)
{
    for (int c = 0; c < m->ncolumns; c++) {
        if (c)
            tally_sql_add(q, ", ");
        tally_sql_name(q, tally_model_column_name(m, c));
    }
}

void tally_sql_select_by_id(tally_sql *q, const tally_model *m)
{
    tally_sql_add(q, "SELECT ");
    column_list(q, m);
    tally_sql_add(q, " FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE \"id\" = ?1");
}

void tally_sql_list(tally_sql *q, const tally_model *m)
{
    tally_sql_add(q, "SELECT ");
    column_list(q, m);
    tally_sql_add(q, " FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE \"id\" > ?1 ORDER BY \"id\" LIMIT ?2");
}

void tally_sql_insert(tally_sql *q, const tally_step *s)
{
    tally_sql_add(q, "INSERT INTO ");
    tally_sql_name(q, s->model->name);
    tally_sql_add(q, " (\"createdAt\", \"updatedAt\"");
    for (int i = 0; i < s->nsets; i++) {
        tally_sql_add(q, ", ");
        tally_sql_name(q, tally_model_column_name(s->model, s->sets[i].column));
    }
    tally_sql_add(q, ") VALUES (?1, ?2");
    for (int i = 0; i < s->nsets; i++)
        tally_sql_addf(q, ", ?%d", i + 3);
    tally_sql_add(q, ")");
}

void tally_sql_update(tally_sql *q, const tally_step *s)
{
    const tally_model *m = s->model;
    int p = 1;
    tally_sql_add(q, "UPDATE ");
    tally_sql_name(q, m->name);
    tally_sql_addf(q, " SET \"updatedAt\" = ?%d", p++);
    for (int i = 0; i < s->nsets; i++) {
        tally_sql_add(q, ", ");
        tally_sql_name(q, tally_model_column_name(m, s->sets[i].column));
        tally_sql_addf(q, " = ?%d", p++);
    }
    /* A field's operations nest in order: [inc 5, dec 2] on c is
     * tally_sub(tally_add(c, ?, col), ?, col).  The column number lets an
     * overflow or unset-field error name its field. */
    for (int i = 0; i < s->natomics;) {
        int col = s->atomics[i].column, j = i;
        while (j < s->natomics && s->atomics[j].column == col)
            j++;
        const char *name = tally_model_column_name(m, col);
        tally_sql_add(q, ", ");
        tally_sql_name(q, name);
        tally_sql_add(q, " = ");
        for (int k = j - 1; k >= i; k--)
            tally_sql_add(q, s->atomics[k].kind == TALLY_ATOMIC_INCREMENT ? "tally_add(" : "tally_sub(");
        tally_sql_name(q, name);
        for (int k = i; k < j; k++)
            tally_sql_addf(q, ", ?%d, %d)", p++, col);
        i = j;
    }
    tally_sql_addf(q, " WHERE \"id\" = ?%d", p);
}

void tally_sql_delete(tally_sql *q, const tally_model *m)
{
    tally_sql_add(q, "DELETE FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE \"id\" = ?1");
}
