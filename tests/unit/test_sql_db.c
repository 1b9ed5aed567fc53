/* Unit tests for store/sql on a real database: every builder's output for
 * every model prepares in an in-memory SQLite database after the
 * create-table statements ran (and in tables built the migration's way, with
 * ALTER TABLE ADD COLUMN), with the parameter count the binding order
 * promises, and runs there with values bound in that order: the results,
 * keyset paging over NULLs and ties, and the SQLite errors the store maps
 * (named CHECK, UNIQUE, NOT NULL, STRICT datatype, foreign keys and ON
 * DELETE, AUTOINCREMENT), are what the store relies on.  The exact text is
 * in test_sql.c; the shared helpers in sql_util.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/decode.h"
#include "api/filter.h"
#include "core/schema.h"
#include "store/sql.h"
#include "sql_util.h"

/* ---- a real database --------------------------------------------------------- */

/* Checked 64-bit arithmetic like the store's tally_add/tally_sub (3 args). */
static void arith(sqlite3_context *ctx, sqlite3_value **argv, int sub)
{
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        sqlite3_result_error(ctx, "null", -1);
        return;
    }
    if (sqlite3_value_type(argv[0]) == SQLITE_INTEGER && sqlite3_value_type(argv[1]) == SQLITE_INTEGER) {
        sqlite3_int64 r, x = sqlite3_value_int64(argv[0]), y = sqlite3_value_int64(argv[1]);
        if (sub ? __builtin_sub_overflow(x, y, &r) : __builtin_add_overflow(x, y, &r)) {
            sqlite3_result_error(ctx, "overflow", -1);
            return;
        }
        sqlite3_result_int64(ctx, r);
        return;
    }
    double x = sqlite3_value_double(argv[0]), y = sqlite3_value_double(argv[1]);
    sqlite3_result_double(ctx, sub ? x - y : x + y);
}
static void fn_add(sqlite3_context *c, int n, sqlite3_value **v) { (void)n; arith(c, v, 0); }
static void fn_sub(sqlite3_context *c, int n, sqlite3_value **v) { (void)n; arith(c, v, 1); }

/* A database with every table and unique index of s. */
static sqlite3 *open_db(const tally_schema *s)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    sqlite3_extended_result_codes(db, 1);
    exec_ok(db, "PRAGMA foreign_keys=ON");
    assert_int_equal(sqlite3_create_function(db, "tally_add", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_add,
                                             NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_create_function(db, "tally_sub", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_sub,
                                             NULL, NULL), SQLITE_OK);
    for (int i = 0; i < s->nmodels; i++) {
        const tally_model *m = &s->models[i];
        tally_sql q;
        tally_sql_init(&q);
        tally_sql_create_table(&q, m);
        exec_ok(db, q.s);
        tally_sql_free(&q);
        for (int fi = 0; fi < m->nfields; fi++)
            if (m->fields[fi].unique) {
                tally_sql_init(&q);
                tally_sql_unique_index(&q, m, fi, -1);
                exec_ok(db, q.s);
                tally_sql_free(&q);
            }
        for (int k = 0; k < m->nuniques; k++) {
            tally_sql_init(&q);
            tally_sql_unique_index(&q, m, -1, k);
            exec_ok(db, q.s);
            /* Running it twice is harmless: IF NOT EXISTS. */
            exec_ok(db, q.s);
            tally_sql_free(&q);
        }
    }
    return db;
}

static sqlite3_stmt *prepare(sqlite3 *db, tally_sql *q, int nparams)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, q->s, -1, &st, NULL) != SQLITE_OK)
        fail_msg("cannot prepare: %s\n  %s", sqlite3_errmsg(db), q->s);
    if (sqlite3_bind_parameter_count(st) != nparams)
        fail_msg("%d parameters, want %d: %s", sqlite3_bind_parameter_count(st), nparams, q->s);
    tally_sql_free(q);
    return st;
}

static void test_every_builder_prepares(void **state)
{
    (void)state;
    const tally_schema *schemas[] = {shop, pets};
    for (int si = 0; si < 2; si++) {
        const tally_schema *s = schemas[si];
        sqlite3 *db = open_db(s);
        for (int mi = 0; mi < s->nmodels; mi++) {
            const tally_model *m = &s->models[mi];
            tally_sql q;
            tally_binds b;
            tally_binds_init(&b);
            tally_sql_init(&q);
            tally_sql_select_by_id(&q, &b, m, tally_value_int(1));
            sqlite3_stmt *st = prepare(db, &q, b.n);
            assert_int_equal(b.n, 1);
            tally_binds_free(&b);
            assert_int_equal(sqlite3_column_count(st), m->ncolumns);
            for (int c = 0; c < m->ncolumns; c++)
                assert_string_equal(sqlite3_column_name(st, c), tally_model_column_name(m, c));
            sqlite3_finalize(st);

            /* A listing sorted by every sortable column, descending, after a cursor row. */
            tally_plan *plan = tally_plan_new(s);
            tally_step *ls = tally_plan_add_step(plan, TALLY_OP_LIST, m);
            ls->first = 10;
            ls->sort = tally_arena_alloc(&plan->arena, (size_t)m->ncolumns * sizeof *ls->sort);
            ls->after = tally_arena_alloc(&plan->arena, (size_t)m->ncolumns * sizeof *ls->after);
            for (int c = m->ncolumns - 1; c >= 0; c--)
                if (tally_model_column_type(m, c) != TALLY_TYPE_JSON) {
                    ls->after[ls->nsort] = c % 2 ? tally_value_null() : tally_value_int(c);
                    ls->sort[ls->nsort++] = (tally_sort_key){c, c % 3 == 0};
                }
            assert_int_equal(ls->sort[ls->nsort - 1].column, TALLY_COL_ID);
            tally_sql_init(&q);
            tally_sql_list(&q, &b, ls);
            st = prepare(db, &q, b.n);
            tally_binds_free(&b);
            assert_int_equal(sqlite3_column_count(st), m->ncolumns);
            sqlite3_finalize(st);
            tally_step *del = tally_plan_add_step(plan, TALLY_OP_DELETE, m);
            del->id = tally_value_int(3);
            tally_sql_init(&q);
            tally_sql_delete(&q, &b, del);
            sqlite3_finalize(prepare(db, &q, 1));
            assert_binds(&b, "i:3");
            tally_plan_free(plan);

            /* Insert and update touching every stored field, atomics on every numeric one. */
            plan = tally_plan_new(s);
            tally_step *ins = tally_plan_add_step(plan, TALLY_OP_CREATE, m);
            ins->sets = tally_arena_alloc(&plan->arena, (size_t)m->ncolumns * sizeof *ins->sets);
            ins->atomics = tally_arena_alloc(&plan->arena, (size_t)m->ncolumns * 2 * sizeof *ins->atomics);
            int natomics = 0;
            for (int fi = 0; fi < m->nfields; fi++) {
                const tally_field *f = &m->fields[fi];
                if (f->column < 0)
                    continue;
                ins->sets[ins->nsets++] = (tally_assign){f->column, tally_value_null()};
                if (f->type == TALLY_TYPE_INTEGER || f->type == TALLY_TYPE_FLOAT) {
                    ins->atomics[natomics++] = (tally_atomic){f->column, TALLY_ATOMIC_INCREMENT, tally_value_int(1)};
                    ins->atomics[natomics++] = (tally_atomic){f->column, TALLY_ATOMIC_DECREMENT, tally_value_int(1)};
                }
            }
            tally_sql_init(&q);
            tally_sql_insert(&q, &b, ins, 1);
            int nsets = ins->nsets;
            assert_int_equal(b.n, 2 + nsets);
            sqlite3_finalize(prepare(db, &q, 2 + nsets));
            tally_binds_free(&b);
            tally_step *upd = tally_plan_add_step(plan, TALLY_OP_UPDATE, m);
            upd->sets = plan->steps[0].sets; /* the first half as sets, the rest left to atomics */
            upd->nsets = nsets / 2;
            upd->atomics = plan->steps[0].atomics;
            upd->natomics = 0;
            for (int k = 0; k < natomics; k++) {
                bool is_set = false;
                for (int j = 0; j < upd->nsets; j++)
                    is_set |= upd->sets[j].column == upd->atomics[k].column;
                if (!is_set)
                    upd->atomics[upd->natomics++] = upd->atomics[k];
            }
            upd->id = tally_value_int(1);
            tally_sql_init(&q);
            tally_sql_update(&q, &b, upd, 1);
            assert_int_equal(b.n, 1 + upd->nsets + upd->natomics + 1);
            sqlite3_finalize(prepare(db, &q, 1 + upd->nsets + upd->natomics + 1));
            tally_binds_free(&b);
            tally_plan_free(plan);
        }
        sqlite3_close(db);
    }
}

/* Tables built the migration's way: the fixed columns first, then every field
 * added with ALTER TABLE ADD COLUMN and the column definition for_alter. */
static void test_alter_path(void **state)
{
    (void)state;
    const tally_schema *schemas[] = {shop, pets};
    for (int si = 0; si < 2; si++) {
        const tally_schema *s = schemas[si];
        sqlite3 *db;
        assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
        exec_ok(db, "PRAGMA foreign_keys=ON");
        for (int mi = 0; mi < s->nmodels; mi++) {
            const tally_model *m = &s->models[mi];
            tally_sql q;
            tally_sql_init(&q);
            tally_sql_addf(&q, "CREATE TABLE \"%s\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, "
                               "\"createdAt\" INTEGER NOT NULL, \"updatedAt\" INTEGER NOT NULL) STRICT", m->name);
            exec_ok(db, q.s);
            tally_sql_free(&q);
            exec_ok(db, "BEGIN");
            for (int fi = 0; fi < m->nfields; fi++) {
                if (m->fields[fi].column < 0)
                    continue;
                tally_sql_init(&q);
                tally_sql_add(&q, "ALTER TABLE ");
                tally_sql_name(&q, m->name);
                tally_sql_add(&q, " ADD COLUMN ");
                tally_sql_column_def(&q, m, &m->fields[fi], 1);
                exec_ok(db, q.s);
                tally_sql_free(&q);
            }
            exec_ok(db, "COMMIT");
            tally_binds b;
            tally_binds_init(&b);
            tally_sql_init(&q);
            tally_sql_select_by_id(&q, &b, m, tally_value_int(1));
            sqlite3_stmt *st = prepare(db, &q, 1);
            tally_binds_free(&b);
            assert_int_equal(sqlite3_column_count(st), m->ncolumns);
            sqlite3_finalize(st);
        }
        /* The constraints came along: a named CHECK still fires. */
        if (s == shop) {
            exec_ok(db, "INSERT INTO product (createdAt, updatedAt, sku, stock) VALUES (1, 1, 'a', 0)");
            assert_int_equal(sqlite3_exec(db, "UPDATE product SET stock = -1", NULL, NULL, NULL), SQLITE_CONSTRAINT);
            assert_string_equal(sqlite3_errmsg(db), "CHECK constraint failed: min:stock");
        }
        sqlite3_close(db);
    }
}

static sqlite3_int64 one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite3_errmsg(db), sql);
    if (sqlite3_step(st) != SQLITE_ROW)
        fail_msg("no row: %s", sql);
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Binds b's values as ?1, ?2, ... (a REF as ref_id: the test passes the
 * earlier step's id) and frees b. */
static void bind_all(sqlite3_stmt *st, tally_binds *b, int64_t ref_id)
{
    for (int i = 0; i < b->n; i++) {
        const tally_value *v = &b->v[i];
        int p = i + 1;
        switch (v->kind) {
        case TALLY_VALUE_INT: sqlite3_bind_int64(st, p, v->u.i); break;
        case TALLY_VALUE_FLOAT: sqlite3_bind_double(st, p, v->u.f); break;
        case TALLY_VALUE_TEXT: sqlite3_bind_text(st, p, v->u.text.ptr, (int)v->u.text.len, SQLITE_TRANSIENT); break;
        case TALLY_VALUE_REF: sqlite3_bind_int64(st, p, ref_id); break;
        default: sqlite3_bind_null(st, p); break;
        }
    }
    tally_binds_free(b);
}

/* Builds a create or update step's statement, binds the values the builder
 * listed, and runs it. */
static int run_step(sqlite3 *db, const tally_step *s, int64_t now, int64_t ref_id)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    if (s->op == TALLY_OP_CREATE)
        tally_sql_insert(&q, &b, s, now);
    else
        tally_sql_update(&q, &b, s, now);
    sqlite3_stmt *st = prepare(db, &q, s->op == TALLY_OP_CREATE ? 2 + s->nsets : 2 + s->nsets + s->natomics);
    bind_all(st, &b, ref_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}

static void test_statements_run(void **state)
{
    (void)state;
    sqlite3 *db = open_db(shop);
    /* Create a product with its default stock, then [inc 5, dec 2] and [dec 1, inc 10]. */
    tally_plan *plan = decode(shop, "product", 0, "{'sku': 'A'}");
    assert_int_equal(run_step(db, &plan->steps[0], 1000, 0), SQLITE_DONE);
    tally_plan_free(plan);
    assert_int_equal(one_int(db, "SELECT id FROM product WHERE sku = 'A'"), 1);
    assert_int_equal(one_int(db, "SELECT stock FROM product WHERE id = 1"), 0);
    assert_int_equal(one_int(db, "SELECT createdAt FROM product WHERE id = 1"), 1000);
    plan = decode(shop, "product", 1, "{'_atomics': {'stock': [{'increment': 5}, {'decrement': 2}]}}");
    assert_int_equal(run_step(db, &plan->steps[0], 2000, 1), SQLITE_DONE);
    tally_plan_free(plan);
    assert_int_equal(one_int(db, "SELECT stock FROM product WHERE id = 1"), 3);
    assert_int_equal(one_int(db, "SELECT updatedAt FROM product WHERE id = 1"), 2000);
    assert_int_equal(one_int(db, "SELECT createdAt FROM product WHERE id = 1"), 1000);

    /* min is judged on the value written, after all of the field's operations. */
    plan = decode(shop, "product", 1, "{'_atomics': {'stock': [{'decrement': 4}, {'increment': 10}]}}");
    assert_int_equal(run_step(db, &plan->steps[0], 3000, 1), SQLITE_DONE);
    tally_plan_free(plan);
    assert_int_equal(one_int(db, "SELECT stock FROM product WHERE id = 1"), 9);

    /* Crossing min fails with the constraint's name in the message (map_error reads it). */
    plan = decode(shop, "product", 1, "{'_atomics': {'stock': {'decrement': 10}}}");
    assert_int_equal(run_step(db, &plan->steps[0], 4000, 1), SQLITE_CONSTRAINT_CHECK);
    assert_string_equal(sqlite3_errmsg(db), "CHECK constraint failed: min:stock");
    tally_plan_free(plan);
    assert_int_equal(one_int(db, "SELECT stock FROM product WHERE id = 1"), 9);

    /* UNIQUE names the table and column(s). */
    plan = decode(shop, "product", 0, "{'sku': 'A'}");
    assert_int_equal(run_step(db, &plan->steps[0], 1000, 0), SQLITE_CONSTRAINT_UNIQUE);
    assert_string_equal(sqlite3_errmsg(db), "UNIQUE constraint failed: product.sku");
    tally_plan_free(plan);
    plan = decode(shop, "rateLimit", 0, "{'userId': 'u', 'window': 1}");
    assert_int_equal(run_step(db, &plan->steps[0], 1000, 0), SQLITE_DONE);
    assert_int_equal(run_step(db, &plan->steps[0], 1000, 0), SQLITE_CONSTRAINT_UNIQUE);
    assert_string_equal(sqlite3_errmsg(db), "UNIQUE constraint failed: rateLimit.userId, rateLimit.window");
    tally_plan_free(plan);

    /* NOT NULL names the column. */
    plan = tally_plan_new(shop);
    tally_plan_add_step(plan, TALLY_OP_CREATE, M(shop, "customer"));
    assert_int_equal(run_step(db, &plan->steps[0], 1000, 0), SQLITE_CONSTRAINT_NOTNULL);
    assert_string_equal(sqlite3_errmsg(db), "NOT NULL constraint failed: customer.name");
    tally_plan_free(plan);

    /* STRICT: no text in an integer column, no silent float from integer arithmetic. */
    assert_int_equal(sqlite3_exec(db, "UPDATE product SET stock = 'many' WHERE id = 1", NULL, NULL, NULL),
                     SQLITE_CONSTRAINT_DATATYPE);
    assert_int_equal(sqlite3_exec(db, "UPDATE product SET stock = 9223372036854775807 + 1 WHERE id = 1", NULL, NULL,
                                  NULL), SQLITE_CONSTRAINT_DATATYPE);
    assert_int_equal(one_int(db, "SELECT stock FROM product WHERE id = 1"), 9);

    /* AUTOINCREMENT: the newest id is not given again after a delete. */
    exec_ok(db, "INSERT INTO product (createdAt, updatedAt, sku, stock) VALUES (1, 1, 'B', 0)");
    assert_int_equal(one_int(db, "SELECT max(id) FROM product"), 2);
    exec_ok(db, "DELETE FROM product WHERE id = 2");
    exec_ok(db, "INSERT INTO product (createdAt, updatedAt, sku, stock) VALUES (1, 1, 'C', 0)");
    assert_int_equal(one_int(db, "SELECT max(id) FROM product"), 3);

    /* Nested create: the event, then the ticket bound to its id. */
    plan = decode(shop, "ticket", 0, "{'event': {'create': {'availableTicketCount': 3}}}");
    assert_int_equal(run_step(db, &plan->steps[0], 1000, 0), SQLITE_DONE);
    int64_t ev = sqlite3_last_insert_rowid(db);
    assert_int_equal(run_step(db, &plan->steps[1], 1000, ev), SQLITE_DONE);
    tally_plan_free(plan);
    assert_int_equal(one_int(db, "SELECT count(*) FROM ticket WHERE event = 1"), 1);
    /* A link to nothing, and deleting what is linked (restrict), both fail. */
    assert_int_equal(sqlite3_exec(db, "INSERT INTO ticket (createdAt, updatedAt, event) VALUES (1, 1, 99)", NULL, NULL,
                                  NULL), SQLITE_CONSTRAINT_FOREIGNKEY);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM event WHERE id = 1", NULL, NULL, NULL) & 0xff, SQLITE_CONSTRAINT);
    assert_string_equal(sqlite3_errmsg(db), "FOREIGN KEY constraint failed");
    assert_int_equal(one_int(db, "SELECT count(*) FROM event"), 1);
    sqlite3_close(db);
}

/* Runs a listing step on db: the ids of the rows it returns (at most cap), and the
 * last row's columns into last (arena-allocated) for the next cursor. */
static int run_list(sqlite3 *db, tally_plan *plan, const tally_step *s, int64_t *ids, int cap, tally_record *last)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_sql_list(&q, &b, s);
    sqlite3_stmt *st = prepare(db, &q, b.n);
    bind_all(st, &b, 0);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < cap) {
        ids[n++] = sqlite3_column_int64(st, 0);
        const tally_model *m = s->model;
        last->cols = tally_arena_alloc(&plan->arena, (size_t)m->ncolumns * sizeof *last->cols);
        for (int c = 0; c < m->ncolumns; c++) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER: last->cols[c] = tally_value_int(sqlite3_column_int64(st, c)); break;
            case SQLITE_FLOAT: last->cols[c] = tally_value_float(sqlite3_column_double(st, c)); break;
            case SQLITE_TEXT: {
                size_t len = (size_t)sqlite3_column_bytes(st, c);
                last->cols[c] = tally_value_text(
                    tally_arena_strndup(&plan->arena, (const char *)sqlite3_column_text(st, c), len), len);
                break;
            }
            default: last->cols[c] = tally_value_null(); break;
            }
        }
    }
    sqlite3_finalize(st);
    return n;
}

/* Keyset paging: every page after the previous page's cursor, for sorts over
 * columns holding NULLs and ties, in both directions, with page sizes 1..4,
 * gives each row exactly once and in the order of the whole listing. */
static void test_keyset_paging(void **state)
{
    (void)state;
    sqlite3 *db = open_db(pets);
    exec_ok(db, "INSERT INTO owner (createdAt, updatedAt, name) VALUES (1, 1, 'o')");
    /* born (nullable) and nick hold NULLs and ties; weight too (nick's unique indexes go for that). */
    exec_ok(db, "DROP INDEX \"u:pet:nick\"; DROP INDEX \"u:pet:rescuer:nick\"");
    exec_ok(db, "INSERT INTO pet (createdAt, updatedAt, rescuer, age, born, weight, nick) VALUES "
                "(1, 1, 1, 0, 2, 0.5, 'b'), (1, 1, 1, 0, NULL, NULL, 'a'), (1, 1, 1, 0, 2, -1.5, NULL), "
                "(1, 1, 1, 0, 5, 0.5, 'b'), (1, 1, 1, 0, NULL, 2.0, 'c'), (1, 1, 1, 0, 2, 0.5, NULL), "
                "(1, 1, 1, 0, -3, NULL, 'a'), (1, 1, 1, 0, 2, 0.5, 'b'), (1, 1, 1, 0, NULL, NULL, NULL), "
                "(1, 1, 1, 0, 30, -1.5, 'a')");
    assert_int_equal(one_int(db, "SELECT count(*) FROM pet"), 10);
    assert_int_equal(one_int(db, "SELECT count(*) FROM pet WHERE born IS NULL"), 3);
    static const char *const sorts[] = {
        NULL,
        "{'id': 'descending'}",
        "{'born': 'ascending'}",
        "{'born': 'descending'}",
        "[{'nick': 'ascending'}, {'weight': 'descending'}]",
        "[{'nick': 'descending'}, {'weight': 'ascending'}]",
        "[{'weight': 'descending'}, {'born': 'descending'}, {'nick': 'ascending'}]",
        "[{'weight': 'ascending'}, {'nick': 'descending'}, {'id': 'descending'}]",
        "[{'born': 'ascending'}, {'weight': 'ascending'}, {'nick': 'ascending'}]",
    };
    const tally_model *pet = M(pets, "pet");
    for (size_t si = 0; si < sizeof sorts / sizeof sorts[0]; si++) {
        tally_plan *plan = tally_plan_new(pets);
        tally_step *all = list_step(plan, pet, sorts[si]);
        all->first = 100;
        int64_t want[16];
        tally_record last = {NULL};
        (void)last;
        int nwant = run_list(db, plan, all, want, 16, &last);
        assert_int_equal(nwant, 10);
        for (int page = 1; page <= 4; page++) {
            int64_t got[16];
            int ngot = 0;
            const char *cursor = NULL;
            for (int round = 0; round < 20; round++) {
                tally_step *s = list_step(plan, pet, sorts[si]);
                s->first = page;
                if (cursor) {
                    tally_error err;
                    if (tally_cursor_decode(plan, s, cursor, strlen(cursor), &err))
                        fail_msg("cursor refused: %s", err.message);
                }
                int64_t ids[8];
                int n = run_list(db, plan, s, ids, 8, &last);
                /* LIMIT first + 1: one row more tells that a next page exists. */
                assert_true(n <= page + 1);
                for (int k = 0; k < n && k < page; k++) {
                    if (ngot == 16)
                        fail_msg("too many rows");
                    got[ngot++] = ids[k];
                }
                if (n <= page)
                    break;
                /* The cursor names the last row of the page (not the extra one). */
                tally_record shown;
                int64_t again[8];
                tally_step *s2 = list_step(plan, pet, sorts[si]);
                s2->first = page;
                if (cursor)
                    tally_cursor_decode(plan, s2, cursor, strlen(cursor), NULL);
                run_list(db, plan, s2, again, page, &shown);
                cursor = tally_cursor_encode(&plan->arena, s2, &shown);
            }
            if (ngot != nwant || memcmp(got, want, (size_t)nwant * sizeof *want) != 0) {
                char g[256] = "", w[256] = "";
                for (int k = 0; k < ngot; k++)
                    snprintf(g + strlen(g), sizeof g - strlen(g), " %lld", (long long)got[k]);
                for (int k = 0; k < nwant; k++)
                    snprintf(w + strlen(w), sizeof w - strlen(w), " %lld", (long long)want[k]);
                fail_msg("sort %s, pages of %d:%s, want%s", sorts[si] ? sorts[si] : "(id)", page, g, w);
            }
        }
        tally_plan_free(plan);
    }
    sqlite3_close(db);
}

static void test_on_delete_and_checks(void **state)
{
    (void)state;
    sqlite3 *db = open_db(pets);
    exec_ok(db, "INSERT INTO owner (createdAt, updatedAt, name) VALUES (1, 1, 'keeper'), (1, 1, 'vet'), (1, 1, 'rescuer')");
    exec_ok(db, "INSERT INTO pet (createdAt, updatedAt, keeper, vet, rescuer, age) VALUES (1, 1, 1, 2, 3, 0)");
    exec_ok(db, "INSERT INTO pet (createdAt, updatedAt, keeper, vet, rescuer, age) VALUES (1, 1, 2, 2, 3, 0)");
    /* SET NULL: deleting the vet unsets the link; CASCADE: deleting the keeper deletes its pet. */
    exec_ok(db, "DELETE FROM owner WHERE id = 2");
    assert_int_equal(one_int(db, "SELECT count(*) FROM pet"), 1);
    assert_int_equal(one_int(db, "SELECT count(*) FROM pet WHERE vet IS NULL"), 1);
    exec_ok(db, "DELETE FROM owner WHERE id = 1");
    assert_int_equal(one_int(db, "SELECT count(*) FROM pet"), 0);
    exec_ok(db, "INSERT INTO pet (createdAt, updatedAt, rescuer, age) VALUES (1, 1, 3, 0)");
    /* RESTRICT. */
    assert_int_equal(sqlite3_exec(db, "DELETE FROM owner WHERE id = 3", NULL, NULL, NULL) & 0xff, SQLITE_CONSTRAINT);

    /* Named CHECKs for max, float bounds and booleans. */
    assert_int_equal(sqlite3_exec(db, "UPDATE pet SET age = 31", NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
    assert_string_equal(sqlite3_errmsg(db), "CHECK constraint failed: max:age");
    assert_int_equal(sqlite3_exec(db, "UPDATE pet SET age = -4", NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
    assert_string_equal(sqlite3_errmsg(db), "CHECK constraint failed: min:age");
    assert_int_equal(sqlite3_exec(db, "UPDATE pet SET weight = -1.5000001", NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
    assert_string_equal(sqlite3_errmsg(db), "CHECK constraint failed: min:weight");
    exec_ok(db, "UPDATE pet SET weight = -1.5");
    exec_ok(db, "UPDATE pet SET weight = 2.25");
    assert_int_equal(sqlite3_exec(db, "UPDATE pet SET good = 2", NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
    assert_string_equal(sqlite3_errmsg(db), "CHECK constraint failed: bool:good");
    /* A float bound printed with %.17g reads back as the same double: 0.1 itself passes max 0.1. */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "UPDATE pet SET ratio = ?1", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_double(st, 1, 0.1);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
    sqlite3_bind_double(st, 1, 0.10000000000000002);
    assert_int_equal(sqlite3_step(st), SQLITE_CONSTRAINT_CHECK);
    sqlite3_finalize(st);
    /* A REAL column takes an integer amount through the float path. */
    int64_t id = one_int(db, "SELECT id FROM pet");
    tally_plan *plan = decode(pets, "pet", id, "{'_atomics': {'weight': [{'decrement': 1}, {'increment': 0.25}]}}");
    assert_int_equal(run_step(db, &plan->steps[0], 5, 0), SQLITE_DONE);
    tally_plan_free(plan);
    sqlite3_stmt *w;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT weight FROM pet", -1, &w, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(w), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(w, 0), SQLITE_FLOAT);
    assert_true(sqlite3_column_double(w, 0) == 1.5);
    sqlite3_finalize(w);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_builder_prepares),
        cmocka_unit_test(test_alter_path),
        cmocka_unit_test(test_statements_run),
        cmocka_unit_test(test_keyset_paging),
        cmocka_unit_test(test_on_delete_and_checks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
