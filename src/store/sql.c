/* sql.c — SQL text for each operation; see sql.h for the binding order. */
#include "store/sql.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names are checked identifiers ([A-Za-z][A-Za-z0-9_]*), so quoting cannot be escaped. */
void tally_sql_name(tally_sql *q, const char *name) { tally_sql_addf(q, "\"%s\"", name); }

static void bound_literal(tally_sql *q, const tally_value *v)
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
        bound_literal(q, &f->min);
        tally_sql_add(q, ")");
    }
    if (f->has_max) {
        tally_sql_addf(q, " CONSTRAINT \"max:%s\" CHECK (", f->name);
        tally_sql_name(q, f->name);
        tally_sql_add(q, " <= ");
        bound_literal(q, &f->max);
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

void tally_binds_init(tally_binds *b) { b->v = NULL; b->n = b->cap = 0; }
void tally_binds_free(tally_binds *b) { free(b->v); tally_binds_init(b); }

void tally_sql_param(tally_sql *q, tally_binds *b, tally_value v)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->v = realloc(b->v, (size_t)b->cap * sizeof *b->v);
        if (!b->v)
            abort();
    }
    b->v[b->n++] = v;
    tally_sql_addf(q, "?%d", b->n);
}

static void column_list(tally_sql *q, const tally_model *m)
{
    for (int c = 0; c < m->ncolumns; c++) {
        if (c)
            tally_sql_add(q, ", ");
        tally_sql_name(q, tally_model_column_name(m, c));
    }
}

static void col(tally_sql *q, const tally_model *m, int c) { tally_sql_name(q, tally_model_column_name(m, c)); }

void tally_sql_select_by_id(tally_sql *q, tally_binds *b, const tally_model *m, tally_value id)
{
    tally_sql_add(q, "SELECT ");
    column_list(q, m);
    tally_sql_add(q, " FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE \"id\" = ");
    tally_sql_param(q, b, id);
}

/* ---- filters ---------------------------------------------------------------- */

static const char *const cmp_sql[] = {
    [TALLY_CMP_EQ] = " = ", [TALLY_CMP_NE] = " <> ", [TALLY_CMP_LT] = " < ",
    [TALLY_CMP_LE] = " <= ", [TALLY_CMP_GT] = " > ", [TALLY_CMP_GE] = " >= ",
};

/* Every comparison is guarded by IS NOT NULL so that it is false, never
 * NULL, on an unset column: then NOT and OR behave as two-valued logic. */
static void filter_cmp(tally_sql *q, tally_binds *b, const tally_model *m, const tally_filter *f)
{
    if (f->op == TALLY_CMP_IS_SET || ((f->op == TALLY_CMP_EQ || f->op == TALLY_CMP_NE) &&
                                      f->other_column < 0 && f->value.kind == TALLY_VALUE_NULL)) {
        bool set = f->op == TALLY_CMP_IS_SET ? f->value.u.i != 0 : f->op == TALLY_CMP_NE;
        tally_sql_add(q, "(");
        col(q, m, f->column);
        tally_sql_add(q, set ? " IS NOT NULL)" : " IS NULL)");
        return;
    }
    tally_sql_add(q, "(");
    col(q, m, f->column);
    tally_sql_add(q, " IS NOT NULL AND ");
    if (f->other_column >= 0) {
        col(q, m, f->other_column);
        tally_sql_add(q, " IS NOT NULL AND ");
    }
    if (f->op == TALLY_CMP_IN || f->op == TALLY_CMP_NOT_IN) {
        if (f->nvalues == 0) { /* x IN () is false, x NOT IN () true (for a set x) */
            tally_sql_add(q, f->op == TALLY_CMP_IN ? "0)" : "1)");
            return;
        }
        /* A reference may turn out unset when the step runs, and SQL's x IN (1, NULL)
         * is NULL, not false, when x is not 1: such a list ignores its NULLs, as
         * tally_filter_matches does.  Lists of plain values (never NULL) keep the
         * plain form, which can use an index. */
        bool refs = false;
        for (int i = 0; i < f->nvalues; i++)
            refs |= f->values[i].kind == TALLY_VALUE_REF;
        if (refs)
            tally_sql_add(q, f->op == TALLY_CMP_IN ? "coalesce(" : "NOT coalesce(");
        col(q, m, f->column);
        tally_sql_add(q, f->op == TALLY_CMP_IN || refs ? " IN (" : " NOT IN (");
        for (int i = 0; i < f->nvalues; i++) {
            if (i)
                tally_sql_add(q, ", ");
            tally_sql_param(q, b, f->values[i]);
        }
        tally_sql_add(q, refs ? "), 0))" : "))");
        return;
    }
    col(q, m, f->column);
    tally_sql_add(q, cmp_sql[f->op]);
    if (f->other_column >= 0) {
        col(q, m, f->other_column);
    } else {
        tally_sql_param(q, b, f->value);
        /* A reference unset when the step runs: false like any comparison with
         * an unset value (not NULL, which NOT would keep NULL). */
        if (f->value.kind == TALLY_VALUE_REF)
            tally_sql_addf(q, " AND ?%d IS NOT NULL", b->n);
    }
    tally_sql_add(q, ")");
}

void tally_sql_filter(tally_sql *q, tally_binds *b, const tally_model *m, const tally_filter *f)
{
    switch (f->kind) {
    case TALLY_FILTER_TRUE: tally_sql_add(q, "1"); return;
    case TALLY_FILTER_CMP: filter_cmp(q, b, m, f); return;
    case TALLY_FILTER_NOT:
        tally_sql_add(q, "NOT ");
        tally_sql_filter(q, b, m, &f->children[0]);
        return;
    case TALLY_FILTER_AND:
    case TALLY_FILTER_OR:
        if (f->nchildren == 0) {
            tally_sql_add(q, f->kind == TALLY_FILTER_AND ? "1" : "0");
            return;
        }
        tally_sql_add(q, "(");
        for (int i = 0; i < f->nchildren; i++) {
            if (i)
                tally_sql_add(q, f->kind == TALLY_FILTER_AND ? " AND " : " OR ");
            tally_sql_filter(q, b, m, &f->children[i]);
        }
        tally_sql_add(q, ")");
        return;
    }
}

/* ---- listing ------------------------------------------------------------------ */

/*
 * Keyset paging: the rows after the cursor row in sort order.  SQLite sorts
 * NULL first ascending and last descending; the cursor's NULLs follow that.
 * For keys k1..kn: OR over i of (k1..k(i-1) tie) AND (ki after).
 */
static void after_cursor(tally_sql *q, tally_binds *b, const tally_step *s)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "(");
    for (int i = 0; i < s->nsort; i++) {
        if (i)
            tally_sql_add(q, " OR ");
        tally_sql_add(q, "(");
        for (int j = 0; j < i; j++) {
            col(q, m, s->sort[j].column);
            if (s->after[j].kind == TALLY_VALUE_NULL)
                tally_sql_add(q, " IS NULL AND ");
            else {
                tally_sql_add(q, " = ");
                tally_sql_param(q, b, s->after[j]);
                tally_sql_add(q, " AND ");
            }
        }
        const tally_value *v = &s->after[i];
        int c = s->sort[i].column;
        if (!s->sort[i].descending) {
            col(q, m, c);
            if (v->kind == TALLY_VALUE_NULL)
                tally_sql_add(q, " IS NOT NULL");
            else {
                tally_sql_add(q, " > ");
                tally_sql_param(q, b, *v);
            }
        } else if (v->kind == TALLY_VALUE_NULL) {
            tally_sql_add(q, "0");
        } else {
            tally_sql_add(q, "(");
            col(q, m, c);
            tally_sql_add(q, " < ");
            tally_sql_param(q, b, *v);
            tally_sql_add(q, " OR ");
            col(q, m, c);
            tally_sql_add(q, " IS NULL)");
        }
        tally_sql_add(q, ")");
    }
    tally_sql_add(q, ")");
}

void tally_sql_list(tally_sql *q, tally_binds *b, const tally_step *s)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "SELECT ");
    column_list(q, m);
    tally_sql_add(q, " FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE ");
    if (s->where)
        tally_sql_filter(q, b, m, s->where);
    else
        tally_sql_add(q, "1");
    if (s->after) {
        tally_sql_add(q, " AND ");
        after_cursor(q, b, s);
    }
    tally_sql_add(q, " ORDER BY ");
    for (int i = 0; i < s->nsort; i++) {
        if (i)
            tally_sql_add(q, ", ");
        col(q, m, s->sort[i].column);
        tally_sql_add(q, s->sort[i].descending ? " DESC" : " ASC");
    }
    tally_sql_addf(q, " LIMIT %d", s->first + 1);
}

/* ---- writes ---------------------------------------------------------------------- */

/* ", c = expr" for each assignment and each field's atomics. */
static void assignments(tally_sql *q, tally_binds *b, const tally_model *m, const tally_assign *sets, int nsets,
                        const tally_atomic *atomics, int natomics)
{
    for (int i = 0; i < nsets; i++) {
        tally_sql_add(q, ", ");
        col(q, m, sets[i].column);
        tally_sql_add(q, " = ");
        tally_sql_param(q, b, sets[i].value);
    }
    for (int i = 0; i < natomics;) {
        int c = atomics[i].column, j = i;
        while (j < natomics && atomics[j].column == c)
            j++;
        tally_sql_add(q, ", ");
        col(q, m, c);
        tally_sql_add(q, " = ");
        for (int k = j - 1; k >= i; k--)
            tally_sql_add(q, atomics[k].kind == TALLY_ATOMIC_INCREMENT ? "tally_add(" : "tally_sub(");
        col(q, m, c);
        for (int k = i; k < j; k++) {
            tally_sql_add(q, ", ");
            tally_sql_param(q, b, atomics[k].amount);
            tally_sql_addf(q, ", %d)", c); /* the column number names the field in errors */
        }
        i = j;
    }
}

void tally_sql_insert(tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "INSERT INTO ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " (\"createdAt\", \"updatedAt\"");
    for (int i = 0; i < s->nsets; i++) {
        tally_sql_add(q, ", ");
        col(q, m, s->sets[i].column);
    }
    tally_sql_add(q, ") VALUES (");
    tally_sql_param(q, b, tally_value_int(now_ms));
    tally_sql_add(q, ", ");
    tally_sql_param(q, b, tally_value_int(now_ms));
    for (int i = 0; i < s->nsets; i++) {
        tally_sql_add(q, ", ");
        tally_sql_param(q, b, s->sets[i].value);
    }
    tally_sql_add(q, ")");
    if (s->op != TALLY_OP_UPSERT)
        return;
    tally_sql_add(q, " ON CONFLICT (");
    for (int i = 0; i < s->non; i++) {
        if (i)
            tally_sql_add(q, ", ");
        col(q, m, s->on[i]);
    }
    tally_sql_add(q, ") DO UPDATE SET \"updatedAt\" = ");
    tally_sql_param(q, b, tally_value_int(now_ms));
    assignments(q, b, m, s->usets, s->nusets, s->atomics, s->natomics);
    tally_sql_add(q, " RETURNING \"id\"");
}

void tally_sql_update(tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "UPDATE ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " SET \"updatedAt\" = ");
    tally_sql_param(q, b, tally_value_int(now_ms));
    assignments(q, b, m, s->sets, s->nsets, s->atomics, s->natomics);
    tally_sql_add(q, " WHERE ");
    if (s->op == TALLY_OP_UPDATE) {
        tally_sql_add(q, "\"id\" = ");
        tally_sql_param(q, b, s->id);
        if (!s->where)
            return;
        tally_sql_add(q, " AND ");
    }
    tally_sql_filter(q, b, m, s->where);
}

/* The new value of column c after the step's assignments or atomics, as an expression. */
static bool new_value(tally_sql *q, tally_binds *b, const tally_step *s, int c)
{
    for (int i = 0; i < s->nsets; i++)
        if (s->sets[i].column == c) {
            tally_sql_param(q, b, s->sets[i].value);
            return true;
        }
    int first = -1, last = -1;
    for (int i = 0; i < s->natomics; i++)
        if (s->atomics[i].column == c) {
            if (first < 0)
                first = i;
            last = i;
        }
    if (first < 0)
        return false;
    for (int k = last; k >= first; k--)
        tally_sql_add(q, s->atomics[k].kind == TALLY_ATOMIC_INCREMENT ? "tally_add(" : "tally_sub(");
    col(q, s->model, c);
    for (int k = first; k <= last; k++) {
        tally_sql_add(q, ", ");
        tally_sql_param(q, b, s->atomics[k].amount);
        tally_sql_addf(q, ", %d)", c);
    }
    return true;
}

void tally_sql_count_crossing(tally_sql *q, tally_binds *b, const tally_step *s)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "SELECT count(*) FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE ");
    tally_sql_filter(q, b, m, s->where);
    tally_sql_add(q, " AND (0");
    for (int fi = 0; fi < m->nfields; fi++) {
        const tally_field *f = &m->fields[fi];
        for (int bound = 0; bound < 2; bound++) {
            if (!(bound ? f->has_max : f->has_min))
                continue;
            tally_sql add;
            tally_sql_init(&add);
            int mark = b->n;
            tally_sql_add(&add, " OR ");
            if (!new_value(&add, b, s, f->column)) {
                b->n = mark;
                tally_sql_free(&add);
                continue;
            }
            tally_sql_add(&add, bound ? " > " : " < ");
            tally_sql_add(q, add.s);
            tally_sql_free(&add);
            bound_literal(q, bound ? &f->max : &f->min);
        }
    }
    tally_sql_add(q, ")");
}

void tally_sql_delete(tally_sql *q, tally_binds *b, const tally_step *s)
{
    tally_sql_add(q, "DELETE FROM ");
    tally_sql_name(q, s->model->name);
    tally_sql_add(q, " WHERE ");
    if (s->op == TALLY_OP_DELETE) {
        tally_sql_add(q, "\"id\" = ");
        tally_sql_param(q, b, s->id);
    } else {
        tally_sql_filter(q, b, s->model, s->where);
    }
}
