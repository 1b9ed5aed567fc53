/*
 * errors.c — PostgreSQL's answer to a failed statement, in Tally's terms.
 *
 * Pure functions of the diagnostics (SQLSTATE, constraint, column, message)
 * and the step: no statement runs here, because after an error the
 * transaction is aborted until ROLLBACK TO.  Constraint and index names are
 * the ones store/sql.c gives ("min:field", "u:model:a:b", "fk:field", within
 * 63 bytes), so a failure names its field back from the schema.  Messages and
 * paths are those of the SQLite backend (sqlite/connection.c map_error), so
 * a client sees the same answer on either backend.
 */
#include <stdio.h>
#include <string.h>

#include "store/postgres/internal.h"
#include "store/step_errors.h"
#include "store/sql.h"

static bool is(const char *sqlstate, const char *want) { return sqlstate && strcmp(sqlstate, want) == 0; }
static bool in_class(const char *sqlstate, const char *cls) { return sqlstate && strncmp(sqlstate, cls, 2) == 0; }

/* The field whose constraint of some kind is called name, or -1. */
static int field_of_constraint(const tally_model *m, const char *name, const char **kind)
{
    static const char *const kinds[] = {"min", "max", "bool", "fk"};
    char want[TALLY_PG_IDENT_MAX + 1];
    for (int fi = 0; name && fi < m->nfields; fi++)
        for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
            tally_pgsql_constraint_name(want, kinds[k], &m->fields[fi]);
            if (strcmp(want, name) == 0) {
                *kind = kinds[k];
                return fi;
            }
        }
    return -1;
}

/* "email" or "userId,window": the fields of the unique index called name. */
static void fields_of_index(const tally_model *m, const char *name, char *out, size_t cap)
{
    char want[TALLY_PG_IDENT_MAX + 1];
    out[0] = '\0';
    for (int fi = 0; name && fi < m->nfields; fi++) {
        if (!m->fields[fi].unique)
            continue;
        tally_pgsql_index_name(want, m, fi, -1);
        if (strcmp(want, name) == 0) {
            snprintf(out, cap, "%s", m->fields[fi].name);
            return;
        }
    }
    for (int k = 0; name && k < m->nuniques; k++) {
        tally_pgsql_index_name(want, m, -1, k);
        if (strcmp(want, name) != 0)
            continue;
        size_t n = 0;
        for (int i = 0; i < m->uniques[k].nfields && n < cap; i++)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "," : "", m->fields[m->uniques[k].fields[i]].name);
        return;
    }
}

static int invariant(tally_plan *plan, const tally_step *s, const tally_pg_diag *d, tally_error *err)
{
    const tally_model *m = s->model;
    const char *kind = NULL;
    int fi = field_of_constraint(m, d->constraint, &kind);
    if (fi >= 0 && (strcmp(kind, "min") == 0 || strcmp(kind, "max") == 0))
        return tally_step_invariant(plan, s, &m->fields[fi], strcmp(kind, "min") == 0, err);
    /* As SQLite words it: "CHECK constraint failed: bool:good". */
    return tally_fail(err, TALLY_INVARIANT, s->path, "a constraint would be violated: CHECK constraint failed: %s%s%s",
                      fi >= 0 ? kind : (d->constraint ? d->constraint : "?"), fi >= 0 ? ":" : "",
                      fi >= 0 ? m->fields[fi].name : "");
}

/* A create/update linked a record that does not exist: which link, from the constraint's name. */
static int missing_link(tally_plan *plan, const tally_step *s, const tally_pg_diag *d, tally_error *err)
{
    const char *kind = NULL;
    int fi = field_of_constraint(s->model, d->constraint, &kind);
    if (fi >= 0 && strcmp(kind, "fk") == 0) {
        const tally_field *f = &s->model->fields[fi];
        for (int pass = 0; pass < 2; pass++) {
            int n = pass ? s->nusets : s->nsets;
            const tally_assign *a = pass ? s->usets : s->sets; /* an upsert links in either part */
            for (int i = 0; i < n; i++) {
                if (a[i].column != f->column)
                    continue;
                tally_value v = tally_plan_resolve(plan, &a[i].value);
                return tally_fail(err, TALLY_VALIDATION, tally_step_join_path(plan, s, f->name),
                                  "%s: there is no %s with id %lld to link to; create it first or link an existing one",
                                  f->name, f->target, v.kind == TALLY_VALUE_INT ? (long long)v.u.i : 0LL);
            }
        }
    }
    return tally_fail(err, TALLY_VALIDATION, s->path, "a linked record does not exist");
}

int tally_pg_map_error(tally_plan *plan, const tally_step *s, const tally_pg_diag *d, tally_error *err)
{
    const tally_model *m = s->model;
    const char *msg = d->message ? d->message : "";
    const char *st = d->sqlstate;
    int col;
    if (d->lost || !st || in_class(st, "08") || is(st, "57P01") || is(st, "57P02") || is(st, "57P03") ||
        in_class(st, "53") || in_class(st, "58") || is(st, "25P02") || is(st, "25006"))
        return tally_pg_fail(d, "complete the write", err);
    if (is(st, "40001") || is(st, "40P01") || is(st, "55P03"))
        return tally_pg_fail(d, "complete the write", err);
    if (m && sscanf(msg, "tally:overflow:%d", &col) == 1 && col >= 0 && col < m->ncolumns)
        return tally_fail(err, TALLY_OVERFLOW, tally_step_column_path(plan, s, tally_model_column_name(m, col)),
                          "%s: the result would not fit a signed 64-bit integer; nothing was changed",
                          tally_model_column_name(m, col));
    if (m && sscanf(msg, "tally:null:%d", &col) == 1 && col >= 0 && col < m->ncolumns)
        return tally_fail(err, TALLY_VALIDATION, tally_step_column_path(plan, s, tally_model_column_name(m, col)),
                          "%s is not set, so it cannot be incremented or decremented; set it to a number first",
                          tally_model_column_name(m, col));
    if (is(st, "22003"))
        return tally_fail(err, TALLY_OVERFLOW, s->path[0] ? s->path : NULL,
                          "a value would not fit a signed 64-bit integer; nothing was changed");
    if (m && is(st, "23514"))
        return invariant(plan, s, d, err);
    if (m && is(st, "23505")) {
        char fields[256];
        fields_of_index(m, d->constraint, fields, sizeof fields);
        return tally_fail(err, TALLY_UNIQUE_VIOLATION, tally_step_join_path(plan, s, fields),
                          "another %s already has this %s (%s must be unique); choose another value", m->name,
                          strchr(fields, ',') ? "combination of values" : "value", fields);
    }
    if (m && is(st, "23503")) {
        tally_value idv = tally_plan_resolve(plan, &s->id);
        if (s->op == TALLY_OP_DELETE)
            return tally_fail(err, TALLY_CONFLICT, s->path, "%s %lld is still linked from other records", m->name,
                              idv.kind == TALLY_VALUE_INT ? (long long)idv.u.i : 0LL);
        if (s->op == TALLY_OP_DELETE_MANY)
            return tally_fail(err, TALLY_CONFLICT, s->path,
                              "some matching %s records are still linked from other records with onDelete restrict; "
                              "nothing was deleted. Delete or relink those first", m->name);
        return missing_link(plan, s, d, err);
    }
    if (is(st, "23502")) {
        const char *field = d->column ? d->column : "";
        return tally_fail(err, TALLY_VALIDATION, tally_step_join_path(plan, s, field), "%s is required and cannot be null",
                          field);
    }
    if (is(st, "22021") || is(st, "22P05") || is(st, "54000"))
        return tally_fail(err, TALLY_VALIDATION, s->path,
                          "a value cannot be stored: text must be valid UTF-8 without NUL characters (\\u0000)");
    if (is(st, "57014"))
        return tally_fail(err, TALLY_TIMEOUT, NULL, "the database cancelled the statement (a timeout); retry");
    return tally_fail(err, TALLY_INTERNAL, s->path[0] ? s->path : NULL,
                      "the database refused the statement (SQLSTATE %s); the server log has the details", st);
}

int tally_pg_fail(const tally_pg_diag *d, const char *what, tally_error *err)
{
    const char *st = d->sqlstate;
    if (!d->lost && (is(st, "40001") || is(st, "40P01") || is(st, "55P03"))) {
        int rc = tally_fail(err, TALLY_CONFLICT, NULL,
                            "the database gave up on this change because of a concurrent one (%s); nothing was "
                            "applied: run it again",
                            is(st, "40001") ? "serialization failure" : is(st, "40P01") ? "deadlock" : "lock timeout");
        if (err)
            err->rerun = is(st, "55P03") ? TALLY_RERUN_WAIT : TALLY_RERUN_CONFLICT;
        return rc;
    }
    if (d->lost || !st || in_class(st, "08"))
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not %s (the connection was lost); retry",
                          what);
    if (is(st, "57P01") || is(st, "57P02") || is(st, "57P03"))
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not %s (it is shutting down); retry", what);
    if (in_class(st, "53"))
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not %s (out of disk or memory); retry",
                          what);
    if (is(st, "25P02"))
        return tally_fail(err, TALLY_UNAVAILABLE, NULL,
                          "the database could not %s (the transaction was aborted by an earlier error); retry", what);
    tally_pg_log(d, NULL);
    return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not %s (SQLSTATE %s); retry", what, st);
}
