/*
 * steps.c — the record steps of a plan on PostgreSQL: get, list, create,
 * upsert, update (guarded), updateMany, delete, deleteMany.  Each is one
 * statement built by store/sql.c (PostgreSQL dialect) with every value bound;
 * writes answer with RETURNING, so no second read is needed.  Inside a
 * transaction a read locks what it reads (FOR UPDATE).  The answers, errors
 * and their precedence are those of sqlite/connection.c; where SQLite looks
 * things up after a failure, this file looks before (an error aborts a
 * PostgreSQL transaction, so nothing can be asked after it):
 *   - delete: the restricting links are counted first (one statement);
 *   - updateMany on a bounded field: the rows that would cross are counted
 *     first (error-free arithmetic); only when some would does the update run
 *     in a savepoint of its own, to fail with SQLite's exact error and be
 *     rolled back (a rolled-back subtransaction leaves PostgreSQL's cache).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/internal.h"
#include "store/sql.h"
#include "store/step_errors.h"

/* Runs the built statement (and frees q and b); on failure the error in Tally's terms. */
static int run(tally_pg *st, tally_plan *plan, const tally_step *s, tally_sql *q, tally_binds *b, PGresult **out,
               tally_error *err)
{
    tally_pg_diag d;
    int rc = tally_pg_query(st, plan, q->s, b->v, b->n, out, &d);
    if (rc) {
        rc = tally_pg_map_error(plan, s, &d, err);
        if (err && err->code == TALLY_INTERNAL)
            tally_pg_log(&d, q->s);
    }
    tally_sql_free(q);
    tally_binds_free(b);
    return rc;
}

static int64_t changed(const PGresult *res) { return strtoll(PQcmdTuples((PGresult *)res), NULL, 10); }

static int read_by_id(tally_pg *st, tally_plan *plan, const tally_step *s, int64_t id, tally_sql_lock lock,
                      tally_record *out, tally_error *err)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_pgsql_select_by_id(&q, &b, s->model, tally_value_int(id), lock);
    PGresult *res;
    int rc = run(st, plan, s, &q, &b, &res, err);
    if (rc == 0 && PQntuples(res) == 0)
        rc = tally_step_not_found(err, s, id);
    else if (rc == 0)
        tally_pg_read_record(res, 0, 0, s->model, &plan->arena, out);
    PQclear(res);
    return rc;
}

static tally_sql_lock read_lock(const tally_pg *st)
{
    return tally_pg_locking(st) ? TALLY_SQL_LOCK_UPDATE : TALLY_SQL_LOCK_NONE;
}

static int run_get(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    return read_by_id(st, plan, s, tally_step_id(plan, &s->id), read_lock(st), &res->record, err);
}

static int run_list(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_pgsql_list(&q, &b, s, read_lock(st));
    PGresult *r;
    int rc = run(st, plan, s, &q, &b, &r, err);
    if (rc == 0) {
        int n = PQntuples(r);
        res->has_next = n > s->first;
        if (n > s->first)
            n = s->first;
        res->records = tally_arena_alloc(&plan->arena, (size_t)(s->first + 1) * sizeof *res->records);
        for (int i = 0; i < n; i++)
            tally_pg_read_record(r, i, 0, s->model, &plan->arena, &res->records[res->nrecords++]);
    }
    PQclear(r);
    return rc;
}

static int run_create(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_pgsql_insert(&q, &b, s, plan->now_ms);
    PGresult *r;
    int rc = run(st, plan, s, &q, &b, &r, err);
    if (rc == 0 && PQntuples(r) == 1) {
        tally_pg_read_record(r, 0, 0, s->model, &plan->arena, &res->record);
        if (s->op == TALLY_OP_UPSERT)
            res->created = tally_pg_int(r, 0, s->model->ncolumns) != 0;
    } else if (rc == 0) {
        rc = tally_fail(err, TALLY_INTERNAL, s->path[0] ? s->path : NULL, "the insert returned no record");
    }
    PQclear(r);
    return rc;
}

static int run_update(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_pgsql_update(&q, &b, s, plan->now_ms);
    PGresult *r;
    int rc = run(st, plan, s, &q, &b, &r, err);
    bool done = rc == 0 && PQntuples(r) == 1;
    if (done)
        tally_pg_read_record(r, 0, 0, s->model, &plan->arena, &res->record);
    PQclear(r);
    if (rc || done)
        return rc;
    /* Nothing changed: the record as it stands (waiting for a writer of it to
     * finish), or NOT_FOUND — the precedence of SQLite's verdict. */
    int64_t id = tally_step_id(plan, &s->id);
    if ((rc = read_by_id(st, plan, s, id, TALLY_SQL_LOCK_SHARE, &res->record, err)) != 0)
        return rc;
    return tally_fail(err, TALLY_GUARD_FAILED, s->where_path ? s->where_path : "_where",
                      "%s %lld does not match the _where guard; nothing was changed (\"current\" is the record "
                      "as it stands)", s->model->name, (long long)id);
}

/* Whether the step writes a column with a min or max (only then can it cross one). */
static bool touches_bound(const tally_step *s)
{
    for (int fi = 0; fi < s->model->nfields; fi++) {
        const tally_field *f = &s->model->fields[fi];
        if (!f->has_min && !f->has_max)
            continue;
        for (int i = 0; i < s->nsets; i++)
            if (s->sets[i].column == f->column)
                return true;
        for (int i = 0; i < s->natomics; i++)
            if (s->atomics[i].column == f->column)
                return true;
    }
    return false;
}

static int run_update_many(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res,
                           tally_error *err)
{
    tally_sql q;
    tally_binds b;
    PGresult *r;
    long long crossing = 0;
    if (touches_bound(s)) {
        tally_sql_init(&q);
        tally_binds_init(&b);
        tally_pgsql_count_crossing(&q, &b, s);
        int rc = run(st, plan, s, &q, &b, &r, err);
        if (rc == 0)
            crossing = tally_pg_int(r, 0, 0);
        PQclear(r);
        if (rc)
            return rc;
    }
    /* Rows would cross: run it in a savepoint of its own, for SQLite's exact error, then undo it. */
    bool own = crossing > 0 && tally_pg_in_txn(st);
    if (own && tally_pg_exec(st, "SAVEPOINT tally_many", err))
        return -(int)err->code;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_pgsql_update(&q, &b, s, plan->now_ms);
    int rc = run(st, plan, s, &q, &b, &r, err);
    if (rc == 0)
        res->count = changed(r);
    PQclear(r);
    if (own) {
        tally_error ignored;
        if (rc)
            tally_pg_exec(st, "ROLLBACK TO SAVEPOINT tally_many", &ignored);
        tally_pg_exec(st, "RELEASE SAVEPOINT tally_many", &ignored);
    }
    if (rc == -TALLY_INVARIANT && crossing > 0) {
        size_t len = strlen(err->message);
        snprintf(err->message + len, sizeof err->message - len, " (%lld matching row%s would cross it)", crossing,
                 crossing == 1 ? "" : "s");
    }
    return rc;
}

/* Before a delete: the first model linking to the record with onDelete
 * restrict, counted as SQLite counts them after its failure.  0 when none. */
static int restricting_links(tally_pg *st, tally_plan *plan, const tally_step *s, int64_t id, tally_error *err)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_sql_add(&q, "SELECT ");
    int n = 0;
    const tally_field *which[TALLY_MAX_FIELDS];
    const tally_model *whose[TALLY_MAX_FIELDS];
    for (int mi = 0; mi < st->schema->nmodels && n < TALLY_MAX_FIELDS; mi++) {
        const tally_model *m = &st->schema->models[mi];
        for (int fi = 0; fi < m->nfields && n < TALLY_MAX_FIELDS; fi++) {
            const tally_field *f = &m->fields[fi];
            if (f->type != TALLY_TYPE_BELONGS_TO || f->target_model != s->model->index ||
                f->on_delete != TALLY_ON_DELETE_RESTRICT)
                continue;
            tally_sql_add(&q, n ? ", (SELECT count(*) FROM " : "(SELECT count(*) FROM ");
            tally_sql_name(&q, m->name);
            tally_sql_add(&q, " WHERE ");
            tally_sql_name(&q, f->name);
            tally_sql_add(&q, n ? " = $1)" : " = ");
            if (!n) {
                tally_pgsql_param(&q, &b, tally_value_int(id));
                tally_sql_add(&q, ")");
            }
            which[n] = f;
            whose[n++] = m;
        }
    }
    if (n == 0) {
        tally_sql_free(&q);
        tally_binds_free(&b);
        return 0;
    }
    PGresult *r;
    int rc = run(st, plan, s, &q, &b, &r, err);
    for (int i = 0; rc == 0 && i < n; i++) {
        long long count = tally_pg_int(r, 0, i);
        if (count > 0)
            rc = tally_fail(err, TALLY_CONFLICT, s->path,
                            "%s %lld is still linked from %lld %s record(s) (field '%s', onDelete restrict); "
                            "delete or relink those first", s->model->name, (long long)id, count, whose[i]->name,
                            which[i]->name);
    }
    PQclear(r);
    return rc;
}

static int run_delete(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    int64_t id = s->op == TALLY_OP_DELETE ? tally_step_id(plan, &s->id) : 0;
    int rc;
    if (s->op == TALLY_OP_DELETE && (rc = restricting_links(st, plan, s, id, err)) != 0)
        return rc;
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_pgsql_delete(&q, &b, s);
    PGresult *r;
    rc = run(st, plan, s, &q, &b, &r, err);
    if (rc == 0)
        res->count = changed(r);
    PQclear(r);
    if (rc || s->op == TALLY_OP_DELETE_MANY)
        return rc;
    res->id = id;
    /* A later transaction step may reference "name.id" of a delete. */
    res->record.cols = tally_arena_zalloc(&plan->arena, sizeof *res->record.cols);
    res->record.cols[TALLY_COL_ID] = tally_value_int(res->id);
    return res->count ? 0 : tally_step_not_found(err, s, res->id);
}

int tally_pg_record_step(tally_pg *st, tally_plan *plan, int i, tally_error *err)
{
    const tally_step *s = &plan->steps[i];
    tally_step_result *res = &plan->results[i];
    switch (s->op) {
    case TALLY_OP_GET: return run_get(st, plan, s, res, err);
    case TALLY_OP_LIST: return run_list(st, plan, s, res, err);
    case TALLY_OP_CREATE:
    case TALLY_OP_UPSERT: return run_create(st, plan, s, res, err);
    case TALLY_OP_UPDATE: return run_update(st, plan, s, res, err);
    case TALLY_OP_UPDATE_MANY: return run_update_many(st, plan, s, res, err);
    case TALLY_OP_DELETE:
    case TALLY_OP_DELETE_MANY: return run_delete(st, plan, s, res, err);
    default: return tally_fail(err, TALLY_INTERNAL, NULL, "unknown step kind %d", (int)s->op);
    }
}
