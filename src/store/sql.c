/*
 * sql.c — SQL text for each operation, in the SQLite and PostgreSQL
 * dialects; see sql.h for the binding order.  Every builder is written once
 * with a dialect argument; the tally_sql_* entry points are SQLite (their
 * text is fixed: stored SQLite databases compare column definitions as
 * text), the tally_pgsql_* ones PostgreSQL.
 */
#include "store/sql.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum dialect { SQLITE, PG } dialect;

/* Names are checked identifiers ([A-Za-z][A-Za-z0-9_]*), so quoting cannot be escaped. */
void tally_sql_name(tally_sql *q, const char *name)
{
    tally_buf_addc(q, '"');
    tally_buf_add(q, name);
    tally_buf_addc(q, '"');
}

static void bound_literal(tally_sql *q, const tally_value *v)
{
    if (v->kind == TALLY_VALUE_INT)
        tally_sql_addf(q, "%lld", (long long)v->u.i);
    else
        tally_sql_addf(q, "%.17g", v->u.f);
}

static const char *true_lit(dialect d) { return d == PG ? "TRUE" : "1"; }
static const char *false_lit(dialect d) { return d == PG ? "FALSE" : "0"; }

static const char *storage_type(dialect d, tally_type t)
{
    switch (t) {
    case TALLY_TYPE_FLOAT: return d == PG ? "double precision" : "REAL";
    case TALLY_TYPE_STRING:
    case TALLY_TYPE_JSON: return d == PG ? "text COLLATE \"C\"" : "TEXT";
    default: return d == PG ? "bigint" : "INTEGER"; /* integer, boolean, datetime (UTC ms), belongsTo (id) */
    }
}

static const char *on_delete_sql(tally_on_delete d)
{
    return d == TALLY_ON_DELETE_CASCADE ? "CASCADE" : d == TALLY_ON_DELETE_SET_NULL ? "SET NULL" : "RESTRICT";
}

/* ---- PostgreSQL names ------------------------------------------------------------------------ */

void tally_pgsql_ident(char out[TALLY_PG_IDENT_MAX + 1], const char *full)
{
    size_t n = strlen(full);
    if (n <= TALLY_PG_IDENT_MAX) {
        memcpy(out, full, n + 1);
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = full; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    memcpy(out, full, 54);
    snprintf(out + 54, TALLY_PG_IDENT_MAX + 1 - 54, "~%08x", h);
}

void tally_pgsql_constraint_name(char out[TALLY_PG_IDENT_MAX + 1], const char *kind, const tally_field *f)
{
    char full[16 + TALLY_NAME_MAX];
    snprintf(full, sizeof full, "%s:%s", kind, f->name);
    tally_pgsql_ident(out, full);
}

void tally_pgsql_index_name(char out[TALLY_PG_IDENT_MAX + 1], const tally_model *m, int field, int key)
{
    char full[TALLY_NAME_MAX * (TALLY_MAX_UNIQUE_FIELDS + 1) + 16];
    int n = snprintf(full, sizeof full, "u:%s", m->name);
    if (key < 0) {
        snprintf(full + n, sizeof full - (size_t)n, ":%s", m->fields[field].name);
    } else {
        const tally_unique_key *u = &m->uniques[key];
        for (int i = 0; i < u->nfields; i++)
            n += snprintf(full + n, sizeof full - (size_t)n, ":%s", m->fields[u->fields[i]].name);
    }
    tally_pgsql_ident(out, full);
}

/* " CONSTRAINT "<name>"": the name as-is on SQLite, within 63 bytes on PostgreSQL. */
static void constraint(dialect d, tally_sql *q, const char *kind, const tally_field *f)
{
    if (d == SQLITE) {
        tally_sql_addf(q, " CONSTRAINT \"%s:%s\"", kind, f->name);
        return;
    }
    char name[TALLY_PG_IDENT_MAX + 1];
    tally_pgsql_constraint_name(name, kind, f);
    tally_sql_addf(q, " CONSTRAINT \"%s\"", name);
}

/* ---- tables ---------------------------------------------------------------------------------- */

static void column_def(dialect d, tally_sql *q, const tally_field *f, int for_alter, int with_fk)
{
    tally_sql_name(q, f->name);
    tally_sql_addf(q, " %s", storage_type(d, f->type));
    /* A required field is NOT NULL when the table is made; a column added later
     * to a table with rows cannot be, so there the API layer alone enforces it. */
    if (f->required && !for_alter)
        tally_sql_add(q, " NOT NULL");
    /* Constraints are named "min:field" etc. so that a failure names its field. */
    if (f->has_min) {
        constraint(d, q, "min", f);
        tally_sql_add(q, " CHECK (");
        tally_sql_name(q, f->name);
        tally_sql_add(q, " >= ");
        bound_literal(q, &f->min);
        tally_sql_add(q, ")");
    }
    if (f->has_max) {
        constraint(d, q, "max", f);
        tally_sql_add(q, " CHECK (");
        tally_sql_name(q, f->name);
        tally_sql_add(q, " <= ");
        bound_literal(q, &f->max);
        tally_sql_add(q, ")");
    }
    if (f->type == TALLY_TYPE_BOOLEAN) {
        constraint(d, q, "bool", f);
        tally_sql_add(q, " CHECK (");
        tally_sql_name(q, f->name);
        tally_sql_add(q, " IN (0, 1))");
    }
    if (f->type == TALLY_TYPE_BELONGS_TO && with_fk) {
        if (d == PG)
            constraint(d, q, "fk", f);
        tally_sql_add(q, " REFERENCES ");
        tally_sql_name(q, f->target);
        tally_sql_addf(q, "(\"id\") ON DELETE %s", on_delete_sql(f->on_delete));
    }
}

void tally_sql_column_def(tally_sql *q, const tally_model *m, const tally_field *f, int for_alter)
{
    (void)m;
    column_def(SQLITE, q, f, for_alter, 1);
}

void tally_pgsql_column_def(tally_sql *q, const tally_model *m, const tally_field *f, int for_alter, int with_fk)
{
    (void)m;
    column_def(PG, q, f, for_alter, with_fk);
}

static void create_table(dialect d, tally_sql *q, const tally_model *m)
{
    tally_sql_add(q, "CREATE TABLE ");
    tally_sql_name(q, m->name);
    /* Ids are never reused, even after the newest row is deleted (SQLite:
     * AUTOINCREMENT; PostgreSQL: an identity sequence). */
    if (d == SQLITE)
        tally_sql_add(q, " (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
                         "\"updatedAt\" INTEGER NOT NULL");
    else
        tally_sql_add(q, " (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \"createdAt\" bigint NOT NULL, "
                         "\"updatedAt\" bigint NOT NULL");
    for (int i = 0; i < m->nfields; i++) {
        if (m->fields[i].column < 0)
            continue;
        tally_sql_add(q, ", ");
        column_def(d, q, &m->fields[i], 0, d == SQLITE);
    }
    tally_sql_add(q, d == SQLITE ? ") STRICT" : ")");
}

void tally_sql_create_table(tally_sql *q, const tally_model *m) { create_table(SQLITE, q, m); }
void tally_pgsql_create_table(tally_sql *q, const tally_model *m) { create_table(PG, q, m); }

void tally_pgsql_foreign_key(tally_sql *q, const tally_model *m, const tally_field *f)
{
    char name[TALLY_PG_IDENT_MAX + 1];
    tally_pgsql_constraint_name(name, "fk", f);
    tally_sql_add(q, "ALTER TABLE ");
    tally_sql_name(q, m->name);
    tally_sql_addf(q, " ADD CONSTRAINT \"%s\" FOREIGN KEY (", name);
    tally_sql_name(q, f->name);
    tally_sql_add(q, ") REFERENCES ");
    tally_sql_name(q, f->target);
    tally_sql_addf(q, "(\"id\") ON DELETE %s", on_delete_sql(f->on_delete));
}

void tally_sql_index_name(char out[TALLY_SQL_INDEX_NAME_MAX], const tally_model *m, int field, int key)
{
    size_t n = (size_t)snprintf(out, TALLY_SQL_INDEX_NAME_MAX, "u:%s", m->name);
    int count = key < 0 ? 1 : m->uniques[key].nfields;
    for (int i = 0; i < count && n < TALLY_SQL_INDEX_NAME_MAX; i++)
        n += (size_t)snprintf(out + n, TALLY_SQL_INDEX_NAME_MAX - n, ":%s",
                              m->fields[key < 0 ? field : m->uniques[key].fields[i]].name);
}

static void unique_index(dialect d, tally_sql *q, const tally_model *m, int field, int key)
{
    /* Unique indexes rather than column constraints, so that ALTER TABLE can add them later. */
    if (d == PG) {
        char name[TALLY_PG_IDENT_MAX + 1];
        tally_pgsql_index_name(name, m, field, key);
        tally_sql_addf(q, "CREATE UNIQUE INDEX IF NOT EXISTS \"%s\" ON ", name);
    } else {
        char name[TALLY_SQL_INDEX_NAME_MAX];
        tally_sql_index_name(name, m, field, key);
        tally_sql_addf(q, "CREATE UNIQUE INDEX IF NOT EXISTS \"%s\" ON ", name);
    }
    tally_sql_name(q, m->name);
    tally_sql_add(q, " (");
    if (key < 0) {
        tally_sql_name(q, m->fields[field].name);
    } else {
        const tally_unique_key *u = &m->uniques[key];
        for (int i = 0; i < u->nfields; i++) {
            if (i)
                tally_sql_add(q, ", ");
            tally_sql_name(q, m->fields[u->fields[i]].name);
        }
    }
    tally_sql_add(q, ")");
}

void tally_sql_unique_index(tally_sql *q, const tally_model *m, int field, int key) { unique_index(SQLITE, q, m, field, key); }

void tally_sql_duplicate_query(tally_sql *q, const tally_model *m, int field, int key)
{
    int n = key < 0 ? 1 : m->uniques[key].nfields;
    const char *names[TALLY_MAX_UNIQUE_FIELDS];
    for (int i = 0; i < n; i++)
        names[i] = m->fields[key < 0 ? field : m->uniques[key].fields[i]].name;
    tally_sql_add(q, "SELECT ");
    for (int i = 0; i < n; i++) {
        tally_sql_name(q, names[i]);
        tally_sql_add(q, ", ");
    }
    tally_sql_add(q, "count(*), min(\"id\") FROM ");
    tally_sql_name(q, m->name);
    for (int i = 0; i < n; i++) { /* NULLs never collide in a unique index */
        tally_sql_add(q, i ? " AND " : " WHERE ");
        tally_sql_name(q, names[i]);
        tally_sql_add(q, " IS NOT NULL");
    }
    tally_sql_add(q, " GROUP BY ");
    for (int i = 0; i < n; i++) {
        if (i)
            tally_sql_add(q, ", ");
        tally_sql_name(q, names[i]);
    }
    tally_sql_add(q, " HAVING count(*) > 1 LIMIT 1");
}
void tally_pgsql_unique_index(tally_sql *q, const tally_model *m, int field, int key) { unique_index(PG, q, m, field, key); }

/* ---- parameters ------------------------------------------------------------------------------ */

void tally_binds_init(tally_binds *b) { b->v = NULL; b->n = b->cap = 0; }
void tally_binds_free(tally_binds *b) { free(b->v); tally_binds_init(b); }

static void param(dialect d, tally_sql *q, tally_binds *b, tally_value v)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->v = realloc(b->v, (size_t)b->cap * sizeof *b->v);
        if (!b->v)
            abort();
    }
    b->v[b->n++] = v;
    tally_buf_addc(q, d == PG ? '$' : '?');
    tally_buf_add_int(q, b->n);
}

void tally_sql_param(tally_sql *q, tally_binds *b, tally_value v) { param(SQLITE, q, b, v); }
void tally_pgsql_param(tally_sql *q, tally_binds *b, tally_value v) { param(PG, q, b, v); }

static void column_list(tally_sql *q, const tally_model *m)
{
    for (int c = 0; c < m->ncolumns; c++) {
        if (c)
            tally_sql_add(q, ", ");
        tally_sql_name(q, tally_model_column_name(m, c));
    }
}

static void col(tally_sql *q, const tally_model *m, int c) { tally_sql_name(q, tally_model_column_name(m, c)); }

static void lock_clause(tally_sql *q, tally_sql_lock lock)
{
    if (lock == TALLY_SQL_LOCK_UPDATE)
        tally_sql_add(q, " FOR UPDATE");
    else if (lock == TALLY_SQL_LOCK_SHARE)
        tally_sql_add(q, " FOR SHARE");
}

static void select_by_id(dialect d, tally_sql *q, tally_binds *b, const tally_model *m, tally_value id,
                         tally_sql_lock lock)
{
    tally_sql_add(q, "SELECT ");
    column_list(q, m);
    tally_sql_add(q, " FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE \"id\" = ");
    param(d, q, b, id);
    lock_clause(q, lock);
}

void tally_sql_select_by_id(tally_sql *q, tally_binds *b, const tally_model *m, tally_value id)
{
    select_by_id(SQLITE, q, b, m, id, TALLY_SQL_LOCK_NONE);
}

void tally_pgsql_select_by_id(tally_sql *q, tally_binds *b, const tally_model *m, tally_value id, tally_sql_lock lock)
{
    select_by_id(PG, q, b, m, id, lock);
}

/* ---- comparisons ----------------------------------------------------------------------------- */

static const char *const cmp_sql[] = {
    [TALLY_CMP_EQ] = " = ", [TALLY_CMP_NE] = " <> ", [TALLY_CMP_LT] = " < ",
    [TALLY_CMP_LE] = " <= ", [TALLY_CMP_GT] = " > ", [TALLY_CMP_GE] = " >= ",
};

/* a op b  <=>  b flipped(op) a */
static tally_cmp_op flipped(tally_cmp_op op)
{
    switch (op) {
    case TALLY_CMP_LT: return TALLY_CMP_GT;
    case TALLY_CMP_LE: return TALLY_CMP_GE;
    case TALLY_CMP_GT: return TALLY_CMP_LT;
    case TALLY_CMP_GE: return TALLY_CMP_LE;
    default: return op;
    }
}

static bool float_column(const tally_model *m, int c) { return tally_model_column_type(m, c) == TALLY_TYPE_FLOAT; }
static bool text_column(const tally_model *m, int c)
{
    tally_type t = tally_model_column_type(m, c);
    return t == TALLY_TYPE_STRING || t == TALLY_TYPE_JSON;
}

/* A value of the other numeric kind than column c's (an integer compared with
 * a float): PostgreSQL would compare both as double precision, inexact past
 * 2^53, so the exact tally_cmp decides.  A REF is bound as it resolves and
 * is taken to match its column. */
static bool mixed(const tally_model *m, int c, const tally_value *v)
{
    if (text_column(m, c))
        return false;
    return float_column(m, c) ? v->kind == TALLY_VALUE_INT : v->kind == TALLY_VALUE_FLOAT;
}

/* SQLite orders every number before every text; PostgreSQL refuses to compare
 * them (a cursor may carry a value of the other kind).  The verdict of
 * "col op v" for a number column and a text value (or the reverse), as SQLite gives it. */
static const char *kind_verdict(dialect d, const tally_model *m, int c, tally_cmp_op op, const tally_value *v)
{
    bool text_col = text_column(m, c);
    bool text_val = v->kind == TALLY_VALUE_TEXT, num_val = v->kind == TALLY_VALUE_INT || v->kind == TALLY_VALUE_FLOAT;
    if (d != PG || !(text_col ? num_val : text_val))
        return NULL;
    bool col_first = !text_col; /* the column's value sorts before v */
    switch (op) {
    case TALLY_CMP_LT:
    case TALLY_CMP_LE: return col_first ? true_lit(d) : false_lit(d);
    case TALLY_CMP_GT:
    case TALLY_CMP_GE: return col_first ? false_lit(d) : true_lit(d);
    case TALLY_CMP_NE: return true_lit(d);
    default: return false_lit(d);
    }
}

/* "col op value" (or its exact form for mixed kinds on PostgreSQL). */
static void cmp_value(dialect d, tally_sql *q, tally_binds *b, const tally_model *m, int c, tally_cmp_op op,
                      tally_value v)
{
    const char *verdict = kind_verdict(d, m, c, op, &v);
    if (verdict) {
        tally_sql_add(q, verdict);
        return;
    }
    if (d == PG && mixed(m, c, &v)) {
        bool fc = float_column(m, c);
        tally_sql_add(q, "tally_cmp(");
        if (fc)
            param(d, q, b, v);
        else
            col(q, m, c);
        tally_sql_add(q, ", ");
        if (fc)
            col(q, m, c);
        else
            param(d, q, b, v);
        tally_sql_add(q, ")");
        tally_sql_add(q, cmp_sql[fc ? flipped(op) : op]);
        tally_sql_add(q, "0");
        return;
    }
    col(q, m, c);
    tally_sql_add(q, cmp_sql[op]);
    param(d, q, b, v);
}

/* "col op other" for two columns of the same row. */
static void cmp_columns(dialect d, tally_sql *q, const tally_model *m, int c, tally_cmp_op op, int other)
{
    bool fc = float_column(m, c), fo = float_column(m, other);
    if (d == PG && fc != fo && !text_column(m, c) && !text_column(m, other)) {
        tally_sql_add(q, "tally_cmp(");
        col(q, m, fc ? other : c);
        tally_sql_add(q, ", ");
        col(q, m, fc ? c : other);
        tally_sql_add(q, ")");
        tally_sql_add(q, cmp_sql[fc ? flipped(op) : op]);
        tally_sql_add(q, "0");
        return;
    }
    col(q, m, c);
    tally_sql_add(q, cmp_sql[op]);
    col(q, m, other);
}

/* ---- filters --------------------------------------------------------------------------------- */

static void filter_in(dialect d, tally_sql *q, tally_binds *b, const tally_model *m, const tally_filter *f)
{
    if (f->nvalues == 0) { /* x IN () is false, x NOT IN () true (for a set x) */
        tally_sql_add(q, f->op == TALLY_CMP_IN ? false_lit(d) : true_lit(d));
        tally_sql_add(q, ")");
        return;
    }
    /* A reference may turn out unset when the step runs, and SQL's x IN (1, NULL)
     * is NULL, not false, when x is not 1: such a list ignores its NULLs, as
     * tally_filter_matches does.  Lists of plain values (never NULL) keep the
     * plain form, which can use an index. */
    bool refs = false, mix = false;
    for (int i = 0; i < f->nvalues; i++) {
        refs |= f->values[i].kind == TALLY_VALUE_REF;
        mix |= d == PG && mixed(m, f->column, &f->values[i]);
    }
    if (mix) { /* PostgreSQL, numbers of both kinds: an OR of exact equalities */
        tally_sql_add(q, f->op == TALLY_CMP_IN ? "coalesce((" : "NOT coalesce((");
        for (int i = 0; i < f->nvalues; i++) {
            if (i)
                tally_sql_add(q, " OR ");
            cmp_value(d, q, b, m, f->column, TALLY_CMP_EQ, f->values[i]);
        }
        tally_sql_add(q, "), ");
        tally_sql_add(q, false_lit(d));
        tally_sql_add(q, "))");
        return;
    }
    if (refs)
        tally_sql_add(q, f->op == TALLY_CMP_IN ? "coalesce(" : "NOT coalesce(");
    col(q, m, f->column);
    tally_sql_add(q, f->op == TALLY_CMP_IN || refs ? " IN (" : " NOT IN (");
    for (int i = 0; i < f->nvalues; i++) {
        if (i)
            tally_sql_add(q, ", ");
        param(d, q, b, f->values[i]);
    }
    if (refs) {
        tally_sql_add(q, "), ");
        tally_sql_add(q, false_lit(d));
        tally_sql_add(q, "))");
    } else {
        tally_sql_add(q, "))");
    }
}

/* Every comparison is guarded by IS NOT NULL so that it is false, never
 * NULL, on an unset column: then NOT and OR behave as two-valued logic. */
static void filter_cmp(dialect d, tally_sql *q, tally_binds *b, const tally_model *m, const tally_filter *f)
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
        filter_in(d, q, b, m, f);
        return;
    }
    if (f->other_column >= 0) {
        cmp_columns(d, q, m, f->column, f->op, f->other_column);
    } else {
        cmp_value(d, q, b, m, f->column, f->op, f->value);
        /* A reference unset when the step runs: false like any comparison with
         * an unset value (not NULL, which NOT would keep NULL). */
        if (f->value.kind == TALLY_VALUE_REF)
            tally_sql_addf(q, d == PG ? " AND $%d IS NOT NULL" : " AND ?%d IS NOT NULL", b->n);
    }
    tally_sql_add(q, ")");
}

static void filter(dialect d, tally_sql *q, tally_binds *b, const tally_model *m, const tally_filter *f)
{
    switch (f->kind) {
    case TALLY_FILTER_TRUE: tally_sql_add(q, true_lit(d)); return;
    case TALLY_FILTER_CMP: filter_cmp(d, q, b, m, f); return;
    case TALLY_FILTER_NOT:
        tally_sql_add(q, "NOT ");
        filter(d, q, b, m, &f->children[0]);
        return;
    case TALLY_FILTER_AND:
    case TALLY_FILTER_OR:
        if (f->nchildren == 0) {
            tally_sql_add(q, f->kind == TALLY_FILTER_AND ? true_lit(d) : false_lit(d));
            return;
        }
        tally_sql_add(q, "(");
        for (int i = 0; i < f->nchildren; i++) {
            if (i)
                tally_sql_add(q, f->kind == TALLY_FILTER_AND ? " AND " : " OR ");
            filter(d, q, b, m, &f->children[i]);
        }
        tally_sql_add(q, ")");
        return;
    }
}

void tally_sql_filter(tally_sql *q, tally_binds *b, const tally_model *m, const tally_filter *f)
{
    filter(SQLITE, q, b, m, f);
}

void tally_pgsql_filter(tally_sql *q, tally_binds *b, const tally_model *m, const tally_filter *f)
{
    filter(PG, q, b, m, f);
}

/* ---- listing --------------------------------------------------------------------------------- */

/*
 * Keyset paging: the rows after the cursor row in sort order.  SQLite sorts
 * NULL first ascending and last descending (PostgreSQL is told to do the
 * same); the cursor's NULLs follow that.
 * For keys k1..kn: OR over i of (k1..k(i-1) tie) AND (ki after).
 */
static void after_cursor(dialect d, tally_sql *q, tally_binds *b, const tally_step *s)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "(");
    for (int i = 0; i < s->nsort; i++) {
        if (i)
            tally_sql_add(q, " OR ");
        tally_sql_add(q, "(");
        for (int j = 0; j < i; j++) {
            if (s->after[j].kind == TALLY_VALUE_NULL) {
                col(q, m, s->sort[j].column);
                tally_sql_add(q, " IS NULL AND ");
            } else {
                cmp_value(d, q, b, m, s->sort[j].column, TALLY_CMP_EQ, s->after[j]);
                tally_sql_add(q, " AND ");
            }
        }
        const tally_value *v = &s->after[i];
        int c = s->sort[i].column;
        if (!s->sort[i].descending) {
            if (v->kind == TALLY_VALUE_NULL) {
                col(q, m, c);
                tally_sql_add(q, " IS NOT NULL");
            } else {
                cmp_value(d, q, b, m, c, TALLY_CMP_GT, *v);
            }
        } else if (v->kind == TALLY_VALUE_NULL) {
            tally_sql_add(q, false_lit(d));
        } else {
            tally_sql_add(q, "(");
            cmp_value(d, q, b, m, c, TALLY_CMP_LT, *v);
            tally_sql_add(q, " OR ");
            col(q, m, c);
            tally_sql_add(q, " IS NULL)");
        }
        tally_sql_add(q, ")");
    }
    tally_sql_add(q, ")");
}

static void list(dialect d, tally_sql *q, tally_binds *b, const tally_step *s, tally_sql_lock lock)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "SELECT ");
    column_list(q, m);
    tally_sql_add(q, " FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE ");
    if (s->where)
        filter(d, q, b, m, s->where);
    else
        tally_sql_add(q, true_lit(d));
    if (s->after) {
        tally_sql_add(q, " AND ");
        after_cursor(d, q, b, s);
    }
    tally_sql_add(q, " ORDER BY ");
    for (int i = 0; i < s->nsort; i++) {
        if (i)
            tally_sql_add(q, ", ");
        col(q, m, s->sort[i].column);
        if (d == PG)
            tally_sql_add(q, s->sort[i].descending ? " DESC NULLS LAST" : " ASC NULLS FIRST");
        else
            tally_sql_add(q, s->sort[i].descending ? " DESC" : " ASC");
    }
    tally_sql_add(q, " LIMIT ");
    tally_buf_add_int(q, s->first + 1);
    lock_clause(q, lock);
}

void tally_sql_list(tally_sql *q, tally_binds *b, const tally_step *s) { list(SQLITE, q, b, s, TALLY_SQL_LOCK_NONE); }
void tally_pgsql_list(tally_sql *q, tally_binds *b, const tally_step *s, tally_sql_lock lock) { list(PG, q, b, s, lock); }

/* ---- writes ---------------------------------------------------------------------------------- */

/* ", c = expr" for each assignment and each field's atomics.  qualified: the
 * column read is written "table"."c" (PostgreSQL's upsert, where a bare name
 * could also mean the excluded row). */
static void assignments(dialect d, tally_sql *q, tally_binds *b, const tally_model *m, const tally_assign *sets,
                        int nsets, const tally_atomic *atomics, int natomics, bool qualified)
{
    for (int i = 0; i < nsets; i++) {
        tally_sql_add(q, ", ");
        col(q, m, sets[i].column);
        tally_sql_add(q, " = ");
        param(d, q, b, sets[i].value);
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
        if (qualified) {
            tally_sql_name(q, m->name);
            tally_sql_add(q, ".");
        }
        col(q, m, c);
        for (int k = i; k < j; k++) {
            tally_sql_add(q, ", ");
            param(d, q, b, atomics[k].amount);
            tally_sql_add(q, ", ");
            tally_buf_add_int(q, c);
            tally_sql_add(q, ")"); /* the column number names the field in errors */
        }
        i = j;
    }
}

static void insert(dialect d, tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms)
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
    param(d, q, b, tally_value_int(now_ms));
    tally_sql_add(q, ", ");
    param(d, q, b, tally_value_int(now_ms));
    for (int i = 0; i < s->nsets; i++) {
        tally_sql_add(q, ", ");
        param(d, q, b, s->sets[i].value);
    }
    tally_sql_add(q, ")");
    if (s->op == TALLY_OP_UPSERT) {
        tally_sql_add(q, " ON CONFLICT (");
        for (int i = 0; i < s->non; i++) {
            if (i)
                tally_sql_add(q, ", ");
            col(q, m, s->on[i]);
        }
        tally_sql_add(q, ") DO UPDATE SET \"updatedAt\" = ");
        param(d, q, b, tally_value_int(now_ms));
        assignments(d, q, b, m, s->usets, s->nusets, s->atomics, s->natomics, d == PG);
        if (d == SQLITE) {
            tally_sql_add(q, " RETURNING \"id\"");
            return;
        }
    }
    if (d == PG) {
        tally_sql_add(q, " RETURNING ");
        column_list(q, m);
        if (s->op == TALLY_OP_UPSERT)
            tally_sql_add(q, ", (xmax = 0)"); /* a row the upsert inserted has no xmax */
    }
}

void tally_sql_insert(tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms) { insert(SQLITE, q, b, s, now_ms); }
void tally_pgsql_insert(tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms) { insert(PG, q, b, s, now_ms); }

static void update(dialect d, tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "UPDATE ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " SET \"updatedAt\" = ");
    param(d, q, b, tally_value_int(now_ms));
    assignments(d, q, b, m, s->sets, s->nsets, s->atomics, s->natomics, false);
    tally_sql_add(q, " WHERE ");
    if (s->op == TALLY_OP_UPDATE) {
        tally_sql_add(q, "\"id\" = ");
        param(d, q, b, s->id);
        if (s->where) {
            tally_sql_add(q, " AND ");
            filter(d, q, b, m, s->where);
        }
        if (d == PG) {
            tally_sql_add(q, " RETURNING ");
            column_list(q, m);
        }
        return;
    }
    filter(d, q, b, m, s->where);
}

void tally_sql_update(tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms) { update(SQLITE, q, b, s, now_ms); }
void tally_pgsql_update(tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms) { update(PG, q, b, s, now_ms); }

/* The new value of column c after the step's assignments or atomics, as an
 * expression.  On PostgreSQL without tally_add/tally_sub, which may raise (and
 * so abort the transaction): integers in numeric, which cannot overflow, and
 * an unset operand gives NULL, which crosses nothing. */
static bool new_value(dialect d, tally_sql *q, tally_binds *b, const tally_step *s, int c)
{
    for (int i = 0; i < s->nsets; i++)
        if (s->sets[i].column == c) {
            param(d, q, b, s->sets[i].value);
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
    if (d == PG) {
        for (int k = last; k >= first; k--)
            tally_sql_add(q, "(");
        col(q, s->model, c);
        if (!float_column(s->model, c))
            tally_sql_add(q, "::numeric");
        for (int k = first; k <= last; k++) {
            tally_sql_add(q, s->atomics[k].kind == TALLY_ATOMIC_INCREMENT ? " + " : " - ");
            param(d, q, b, s->atomics[k].amount);
            tally_sql_add(q, ")");
        }
        return true;
    }
    for (int k = last; k >= first; k--)
        tally_sql_add(q, s->atomics[k].kind == TALLY_ATOMIC_INCREMENT ? "tally_add(" : "tally_sub(");
    col(q, s->model, c);
    for (int k = first; k <= last; k++) {
        tally_sql_add(q, ", ");
        param(d, q, b, s->atomics[k].amount);
        tally_sql_add(q, ", ");
        tally_buf_add_int(q, c);
        tally_sql_add(q, ")");
    }
    return true;
}

static void count_crossing(dialect d, tally_sql *q, tally_binds *b, const tally_step *s)
{
    const tally_model *m = s->model;
    tally_sql_add(q, "SELECT count(*) FROM ");
    tally_sql_name(q, m->name);
    tally_sql_add(q, " WHERE ");
    filter(d, q, b, m, s->where);
    tally_sql_add(q, " AND (");
    tally_sql_add(q, false_lit(d));
    for (int fi = 0; fi < m->nfields; fi++) {
        const tally_field *f = &m->fields[fi];
        for (int bound = 0; bound < 2; bound++) {
            if (!(bound ? f->has_max : f->has_min))
                continue;
            tally_sql add;
            tally_sql_init(&add);
            int mark = b->n;
            tally_sql_add(&add, " OR ");
            if (!new_value(d, &add, b, s, f->column)) {
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

void tally_sql_count_crossing(tally_sql *q, tally_binds *b, const tally_step *s) { count_crossing(SQLITE, q, b, s); }
void tally_pgsql_count_crossing(tally_sql *q, tally_binds *b, const tally_step *s) { count_crossing(PG, q, b, s); }

static void delete_rows(dialect d, tally_sql *q, tally_binds *b, const tally_step *s)
{
    tally_sql_add(q, "DELETE FROM ");
    tally_sql_name(q, s->model->name);
    tally_sql_add(q, " WHERE ");
    if (s->op == TALLY_OP_DELETE) {
        tally_sql_add(q, "\"id\" = ");
        param(d, q, b, s->id);
    } else {
        filter(d, q, b, s->model, s->where);
    }
}

void tally_sql_delete(tally_sql *q, tally_binds *b, const tally_step *s) { delete_rows(SQLITE, q, b, s); }
void tally_pgsql_delete(tally_sql *q, tally_binds *b, const tally_step *s) { delete_rows(PG, q, b, s); }
