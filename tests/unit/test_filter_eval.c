/* Unit tests for what a decoded filter selects, on the one-model schema of
 * filter_util.h: core/filter's tally_filter_matches on rows (the two-valued
 * null logic: NOT {x equals 5} matches an unset x, notEquals 5 does not);
 * and store/sql's tally_sql_filter: its exact text and binds, and, run on a
 * real in-memory SQLite table whose rows hold NULLs, ties, 2^53 neighbours
 * and extremes, the very same verdict as tally_filter_matches for every
 * filter (the store filters listings in SQL and a transaction's expect in C:
 * the two must agree), references to an earlier step's unset value included.
 * Decoding itself is in test_filter_decode.c. */
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

#include "api/filter.h"
#include "core/filter.h"
#include "core/schema.h"
#include "store/sql.h"
#include "filter_util.h"

/* ---- matching in C ------------------------------------------------------------- */

/* A row with every column unset but id. */
static void blank(tally_value *cols, int64_t id)
{
    for (int c = 0; c < NCOLS; c++)
        cols[c] = tally_value_null();
    cols[TALLY_COL_ID] = tally_value_int(id);
}

static bool matches(const char *sq, const tally_value *cols)
{
    tally_plan *plan = tally_plan_new(schema);
    bool r = tally_filter_matches(plan, decode_ok(plan, sq), cols);
    tally_plan_free(plan);
    return r;
}

static void test_matches(void **state)
{
    (void)state;
    tally_value five[NCOLS], unset[NCOLS];
    blank(five, 1);
    blank(unset, 2);
    five[C_N] = tally_value_int(5);
    five[C_M] = tally_value_int(7);
    five[C_X] = tally_value_float(5.0);
    five[C_S] = tally_value_text("ab", 2);
    five[C_T] = tally_value_text("ab\0", 3);
    five[C_B] = tally_value_int(1);
    /* Each operator on a set value. */
    assert_true(matches("{'n': {'equals': 5}}", five));
    assert_false(matches("{'n': {'notEquals': 5}}", five));
    assert_true(matches("{'n': {'notEquals': 4}}", five));
    assert_true(matches("{'n': {'lessThan': 6}}", five));
    assert_false(matches("{'n': {'lessThan': 5}}", five));
    assert_true(matches("{'n': {'lessThanOrEqual': 5}}", five));
    assert_true(matches("{'n': {'greaterThan': 4.5}}", five));
    assert_false(matches("{'n': {'greaterThan': 5}}", five));
    assert_true(matches("{'n': {'greaterThanOrEqual': 5}}", five));
    assert_true(matches("{'n': {'in': [1, 5]}}", five));
    assert_false(matches("{'n': {'in': []}}", five));
    assert_false(matches("{'n': {'notIn': [1, 5]}}", five));
    assert_true(matches("{'n': {'notIn': []}}", five));
    assert_true(matches("{'n': {'isSet': true}}", five));
    assert_false(matches("{'n': {'isSet': false}}", five));
    assert_true(matches("{'x': {'equals': 5}}", five));
    assert_true(matches("{'n': {'equals': 5.0}}", five));
    assert_true(matches("{'s': {'lessThan': 'abc'}}", five)); /* bytewise: a prefix sorts first */
    assert_true(matches("{'s': {'lessThan': 'b'}}", five));
    assert_false(matches("{'s': {'equals': 'AB'}}", five));
    assert_true(matches("{'s': {'lessThan': {'field': 't'}}}", five)); /* "ab" < "ab\0" */
    assert_true(matches("{'b': {'equals': true}}", five));
    assert_true(matches("{'n': {'lessThan': {'field': 'm'}}}", five));
    assert_true(matches("{'n': {'equals': {'field': 'x'}}}", five));
    /* An unset value: only isSet false and equals null match; NOT of anything else does. */
    assert_false(matches("{'n': {'equals': 5}}", unset));
    assert_false(matches("{'n': {'notEquals': 5}}", unset));
    assert_true(matches("{'NOT': {'n': {'equals': 5}}}", unset));
    assert_true(matches("{'NOT': {'n': {'notEquals': 5}}}", unset));
    assert_false(matches("{'n': {'lessThan': 6}}", unset));
    assert_false(matches("{'n': {'greaterThanOrEqual': -9223372036854775808}}", unset));
    assert_false(matches("{'n': {'in': [5]}}", unset));
    assert_false(matches("{'n': {'notIn': [5]}}", unset));
    assert_false(matches("{'n': {'notIn': []}}", unset));
    assert_true(matches("{'NOT': {'n': {'in': [5]}}}", unset));
    assert_true(matches("{'n': {'equals': null}}", unset));
    assert_false(matches("{'n': {'notEquals': null}}", unset));
    assert_false(matches("{'n': {'equals': null}}", five));
    assert_true(matches("{'n': {'notEquals': null}}", five));
    assert_true(matches("{'n': {'isSet': false}}", unset));
    /* Field to field: an unset side makes the comparison false, its NOT true. */
    unset[C_M] = tally_value_int(1);
    assert_false(matches("{'n': {'lessThan': {'field': 'm'}}}", unset));
    assert_false(matches("{'m': {'greaterThan': {'field': 'n'}}}", unset));
    assert_false(matches("{'m': {'notEquals': {'field': 'n'}}}", unset));
    assert_true(matches("{'NOT': {'m': {'equals': {'field': 'n'}}}}", unset));
    /* Logic. */
    assert_true(matches("{}", unset));
    assert_true(matches("{'AND': []}", unset));
    assert_false(matches("{'OR': []}", unset));
    assert_true(matches("{'OR': [{'n': {'equals': 1}}, {'n': {'isSet': false}}]}", unset));
    assert_false(matches("{'AND': [{'n': {'isSet': false}}, {'m': {'equals': 2}}]}", unset));
    assert_true(matches("{'NOT': {'NOT': {'n': {'equals': 5}}}}", five));
    assert_true(matches("{'n': {'greaterThan': 1, 'lessThan': 9}}", five));
    assert_false(matches("{'n': {'greaterThan': 1, 'lessThan': 5}}", five));
    /* Integers compare exactly, also against a float that cannot tell neighbours apart. */
    tally_value big[NCOLS];
    blank(big, 3);
    big[C_N] = tally_value_int(9007199254740993LL);
    big[C_M] = tally_value_int(9007199254740992LL);
    big[C_X] = tally_value_float(9007199254740992.0);
    assert_true(matches("{'n': {'greaterThan': {'field': 'm'}}}", big));
    assert_true(matches("{'n': {'greaterThan': 9007199254740992}}", big));
    assert_false(matches("{'n': {'equals': 9007199254740992.0}}", big));
    assert_true(matches("{'n': {'greaterThan': 9007199254740992.0}}", big));
    assert_false(matches("{'x': {'equals': {'field': 'n'}}}", big));
    assert_true(matches("{'x': {'equals': {'field': 'm'}}}", big));
    assert_true(matches("{'x': {'lessThan': {'field': 'n'}}}", big));
    big[C_N] = tally_value_int(INT64_MAX);
    assert_true(matches("{'n': {'lessThan': 9223372036854775808.0}}", big));
    assert_false(matches("{'n': {'equals': 9223372036854775808.0}}", big));
    big[C_N] = tally_value_int(INT64_MIN);
    assert_true(matches("{'n': {'equals': -9223372036854775808.0}}", big));
    assert_true(matches("{'n': {'greaterThan': -1e300}}", big));
}

/* ---- the SQL, and agreement with the C verdict ------------------------------------- */

static void test_sql_text(void **state)
{
    (void)state;
    static const struct {
        const char *filter, *sql, *binds;
    } cases[] = {
        {"{}", "1", ""},
        {"{'n': {'equals': 5}}", "(\"n\" IS NOT NULL AND \"n\" = ?1)", "5"},
        {"{'n': {'notEquals': 5}}", "(\"n\" IS NOT NULL AND \"n\" <> ?1)", "5"},
        {"{'n': {'lessThan': 5}}", "(\"n\" IS NOT NULL AND \"n\" < ?1)", "5"},
        {"{'n': {'lessThanOrEqual': 5}}", "(\"n\" IS NOT NULL AND \"n\" <= ?1)", "5"},
        {"{'n': {'greaterThan': 5}}", "(\"n\" IS NOT NULL AND \"n\" > ?1)", "5"},
        {"{'n': {'greaterThanOrEqual': 5}}", "(\"n\" IS NOT NULL AND \"n\" >= ?1)", "5"},
        {"{'n': {'in': [1, 2]}}", "(\"n\" IS NOT NULL AND \"n\" IN (?1, ?2))", "1 2"},
        {"{'n': {'notIn': [1]}}", "(\"n\" IS NOT NULL AND \"n\" NOT IN (?1))", "1"},
        {"{'n': {'in': []}}", "(\"n\" IS NOT NULL AND 0)", ""},
        {"{'n': {'notIn': []}}", "(\"n\" IS NOT NULL AND 1)", ""},
        {"{'n': {'isSet': true}}", "(\"n\" IS NOT NULL)", ""},
        {"{'n': {'isSet': false}}", "(\"n\" IS NULL)", ""},
        {"{'n': {'equals': null}}", "(\"n\" IS NULL)", ""},
        {"{'n': {'notEquals': null}}", "(\"n\" IS NOT NULL)", ""},
        {"{'n': {'lessThan': {'field': 'm'}}}", "(\"n\" IS NOT NULL AND \"m\" IS NOT NULL AND \"n\" < \"m\")", ""},
        {"{'NOT': {'n': {'equals': 5}}}", "NOT (\"n\" IS NOT NULL AND \"n\" = ?1)", "5"},
        {"{'AND': []}", "1", ""},
        {"{'OR': []}", "0", ""},
        {"{'OR': [{'n': {'equals': 1}}, {'NOT': {'s': {'in': ['a']}}}]}",
         "((\"n\" IS NOT NULL AND \"n\" = ?1) OR NOT (\"s\" IS NOT NULL AND \"s\" IN (?2)))", "1 a"},
        {"{'n': {'greaterThan': 1, 'lessThan': 9}, 'b': {'equals': true}}",
         "(((\"n\" IS NOT NULL AND \"n\" > ?1) AND (\"n\" IS NOT NULL AND \"n\" < ?2)) AND "
         "(\"b\" IS NOT NULL AND \"b\" = ?3))", "1 9 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tally_plan *plan = tally_plan_new(schema);
        const tally_filter *f = decode_ok(plan, cases[i].filter);
        tally_sql q;
        tally_binds b;
        tally_sql_init(&q);
        tally_binds_init(&b);
        tally_sql_filter(&q, &b, item, f);
        if (strcmp(q.s, cases[i].sql) != 0)
            fail_msg("%s:\n got: %s\nwant: %s", cases[i].filter, q.s, cases[i].sql);
        char got[128] = "";
        for (int k = 0; k < b.n; k++) {
            const tally_value *v = &b.v[k];
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s", k ? " " : "");
            if (v->kind == TALLY_VALUE_INT)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%lld", (long long)v->u.i);
            else if (v->kind == TALLY_VALUE_TEXT)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%.*s", (int)v->u.text.len, v->u.text.ptr);
            else
                snprintf(got + strlen(got), sizeof got - strlen(got), "?");
        }
        if (strcmp(got, cases[i].binds) != 0)
            fail_msg("%s: binds '%s', want '%s'", cases[i].filter, got, cases[i].binds);
        tally_sql_free(&q);
        tally_binds_free(&b);
        tally_plan_free(plan);
    }
}

/* The table's rows: NULLs, ties, 2^53 neighbours, extremes (n, m, x, s, t, b, d, j, p). */
static const char *const ROWS[] = {
    "5, 5, 5.0, 'a', 'a', 1, 0, '{}', NULL",
    "NULL, 3, NULL, NULL, 'b', NULL, NULL, NULL, 1",
    "-2, 7, 2.5, 'b', 'B', 0, 1706702400000, '[1]', 1",
    "9007199254740993, 9007199254740992, 9007199254740992.0, 'ab', 'a', 1, -1, NULL, 2",
    "5, NULL, -0.5, '', '', 0, NULL, '\"x\"', 3",
    "0, 0, 0.0, 'h\xc3\xa9', 'e', NULL, 5, NULL, NULL",
    "9223372036854775807, -9223372036854775808, 1e300, 'zz', NULL, 1, NULL, NULL, 6",
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL",
    "-9223372036854775808, 9223372036854775807, -1e300, 'a\xc3\xa9', 'a', 0, 1706702400000, '{}', 8",
    "2, 2, 2.0, 'B', 'b', 1, 2, NULL, 9",
};
enum { NROWS = sizeof ROWS / sizeof ROWS[0] };

/* Filters whose SQL and C verdicts must agree on ROWS. */
static const char *const AGREE[] = {
    "{}",
    "{'n': {'equals': 5}}",
    "{'n': {'notEquals': 5}}",
    "{'NOT': {'n': {'equals': 5}}}",
    "{'NOT': {'n': {'notEquals': 5}}}",
    "{'n': {'lessThan': 5}}",
    "{'n': {'lessThanOrEqual': 5}}",
    "{'n': {'greaterThan': 0}}",
    "{'n': {'greaterThanOrEqual': 0}}",
    "{'NOT': {'n': {'greaterThanOrEqual': 0}}}",
    "{'n': {'in': [5, 0, -2]}}",
    "{'n': {'notIn': [5, 0, -2]}}",
    "{'NOT': {'n': {'notIn': [5]}}}",
    "{'n': {'in': []}}",
    "{'n': {'notIn': []}}",
    "{'NOT': {'n': {'in': []}}}",
    "{'n': {'isSet': true}}",
    "{'n': {'isSet': false}}",
    "{'n': {'equals': null}}",
    "{'n': {'notEquals': null}}",
    "{'NOT': {'n': {'equals': null}}}",
    "{'n': {'equals': 9007199254740992.0}}",
    "{'n': {'greaterThan': 9007199254740992.0}}",
    "{'n': {'lessThan': 9223372036854775808.0}}",
    "{'n': {'equals': -9223372036854775808.0}}",
    "{'n': {'lessThan': 2.5}}",
    "{'n': {'greaterThan': 9007199254740992}}",
    "{'n': {'equals': 9223372036854775807}}",
    "{'x': {'equals': 5}}",
    "{'x': {'lessThan': 0}}",
    "{'x': {'greaterThan': 9007199254740992}}",
    "{'x': {'equals': -0.0}}",
    "{'x': {'in': [5, 2.5, 0]}}",
    "{'n': {'lessThan': {'field': 'm'}}}",
    "{'n': {'equals': {'field': 'm'}}}",
    "{'n': {'notEquals': {'field': 'm'}}}",
    "{'NOT': {'n': {'notEquals': {'field': 'm'}}}}",
    "{'x': {'equals': {'field': 'n'}}}",
    "{'x': {'lessThan': {'field': 'n'}}}",
    "{'x': {'greaterThanOrEqual': {'field': 'm'}}}",
    "{'n': {'greaterThanOrEqual': {'field': 'id'}}}",
    "{'s': {'equals': 'a'}}",
    "{'s': {'lessThan': 'b'}}",
    "{'s': {'greaterThan': 'a'}}",
    "{'s': {'lessThanOrEqual': ''}}",
    "{'s': {'in': ['a', 'B', 'h\\u00e9']}}",
    "{'s': {'notIn': ['a']}}",
    "{'s': {'lessThan': {'field': 't'}}}",
    "{'s': {'equals': {'field': 't'}}}",
    "{'NOT': {'s': {'equals': {'field': 't'}}}}",
    "{'b': {'equals': true}}",
    "{'b': {'notEquals': true}}",
    "{'NOT': {'b': {'equals': false}}}",
    "{'d': {'greaterThan': '1970-01-01T00:00:00Z'}}",
    "{'d': {'equals': '2024-01-31T12:00:00Z'}}",
    "{'d': {'lessThan': {'field': 'createdAt'}}}",
    "{'j': {'isSet': true}}",
    "{'j': {'equals': null}}",
    "{'NOT': {'j': {'notEquals': null}}}",
    "{'p': {'equals': 1}}",
    "{'p': {'in': [1, 2, 3]}}",
    "{'p': {'notEquals': 1}}",
    "{'p': {'equals': {'field': 'id'}}}",
    "{'p': {'lessThan': {'field': 'id'}}}",
    "{'id': {'greaterThan': 3}, 'createdAt': {'lessThan': '1970-01-01T00:00:00.080Z'}}",
    "{'AND': []}",
    "{'OR': []}",
    "{'NOT': {'OR': []}}",
    "{'NOT': {}}",
    "{'OR': [{'n': {'equals': 5}}, {'s': {'isSet': false}}]}",
    "{'OR': [{'n': {'lessThan': 0}}, {'NOT': {'m': {'greaterThan': 2}}}]}",
    "{'AND': [{'NOT': {'n': {'equals': 5}}}, {'NOT': {'s': {'equals': 'a'}}}]}",
    "{'NOT': {'AND': [{'n': {'greaterThan': 0}}, {'x': {'lessThan': 3}}]}}",
    "{'NOT': {'OR': [{'n': {'greaterThan': 0}}, {'x': {'lessThan': 3}}]}}",
    "{'NOT': {'NOT': {'n': {'equals': 5}}}}",
    "{'NOT': {'NOT': {'NOT': {'n': {'equals': 5}}}}}",
    "{'n': {'greaterThan': -3, 'lessThan': 6}, 'NOT': {'b': {'equals': true}}}",
    "{'OR': [{'AND': [{'n': {'isSet': true}}, {'m': {'isSet': false}}]}, {'NOT': {'t': {'in': ['a', 'b']}}}]}",
};

/* Every row of the table as tally_values, in id order (arena-allocated in plan). */
static tally_value *read_rows(sqlite3 *db, tally_plan *plan)
{
    tally_value *rows = tally_arena_alloc(&plan->arena, (size_t)NROWS * NCOLS * sizeof *rows);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT * FROM item ORDER BY id", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_column_count(st), NCOLS);
    int r = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(r < NROWS);
        tally_value *cols = &rows[r++ * NCOLS];
        for (int c = 0; c < NCOLS; c++) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER: cols[c] = tally_value_int(sqlite3_column_int64(st, c)); break;
            case SQLITE_FLOAT: cols[c] = tally_value_float(sqlite3_column_double(st, c)); break;
            case SQLITE_TEXT: {
                size_t n = (size_t)sqlite3_column_bytes(st, c);
                cols[c] = tally_value_text(tally_arena_strndup(&plan->arena, (const char *)sqlite3_column_text(st, c), n), n);
                break;
            }
            default: cols[c] = tally_value_null(); break;
            }
        }
    }
    sqlite3_finalize(st);
    assert_int_equal(r, NROWS);
    return rows;
}

static sqlite3 *open_items(void)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_create_table(&q, item);
    assert_int_equal(sqlite3_exec(db, q.s, NULL, NULL, NULL), SQLITE_OK);
    tally_sql_free(&q);
    for (int i = 0; i < NROWS; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "INSERT INTO item VALUES (%d, %d, %d, %s)", i + 1, (i + 1) * 10, (i + 1) * 10, ROWS[i]);
        exec_ok(db, sql);
    }
    return db;
}

/* Binds b as ?1, ?2, ..., each REF resolved through plan (as the store does). */
static void bind_resolved(sqlite3_stmt *st, const tally_binds *b, const tally_plan *plan)
{
    for (int i = 0; i < b->n; i++) {
        tally_value v = tally_plan_resolve(plan, &b->v[i]);
        switch (v.kind) {
        case TALLY_VALUE_INT: sqlite3_bind_int64(st, i + 1, v.u.i); break;
        case TALLY_VALUE_FLOAT: sqlite3_bind_double(st, i + 1, v.u.f); break;
        case TALLY_VALUE_TEXT: sqlite3_bind_text(st, i + 1, v.u.text.ptr, (int)v.u.text.len, SQLITE_TRANSIENT); break;
        default: sqlite3_bind_null(st, i + 1); break;
        }
    }
}

/* The ids SQL selects with f, and those tally_filter_matches accepts, as bit sets; fails on a difference. */
static unsigned check_agreement(sqlite3 *db, tally_plan *plan, const tally_value *rows, const tally_filter *f,
                                const char *what)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_sql_add(&q, "SELECT id FROM item WHERE ");
    tally_sql_filter(&q, &b, item, f);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, q.s, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite3_errmsg(db), q.s);
    assert_int_equal(sqlite3_bind_parameter_count(st), b.n);
    bind_resolved(st, &b, plan);
    unsigned sql = 0, c = 0;
    while (sqlite3_step(st) == SQLITE_ROW)
        sql |= 1u << (sqlite3_column_int64(st, 0) - 1);
    sqlite3_finalize(st);
    for (int r = 0; r < NROWS; r++)
        if (tally_filter_matches(plan, f, &rows[r * NCOLS]))
            c |= 1u << r;
    if (sql != c) {
        char diff[256] = "";
        for (int r = 0; r < NROWS; r++)
            if (((sql ^ c) >> r) & 1)
                snprintf(diff + strlen(diff), sizeof diff - strlen(diff), " row %d: SQL %s, C %s;", r + 1,
                         (sql >> r) & 1 ? "yes" : "no", (c >> r) & 1 ? "yes" : "no");
        fail_msg("%s: SQL and C disagree:%s\n  SQL: %s", what, diff, q.s);
    }
    tally_sql_free(&q);
    tally_binds_free(&b);
    return sql;
}

static unsigned ids(const int *list)
{
    unsigned set = 0;
    for (; *list; list++)
        set |= 1u << (*list - 1);
    return set;
}

static void test_sql_agrees_with_c(void **state)
{
    (void)state;
    sqlite3 *db = open_items();
    tally_plan *rows_plan = tally_plan_new(schema);
    const tally_value *rows = read_rows(db, rows_plan);
    for (size_t i = 0; i < sizeof AGREE / sizeof AGREE[0]; i++) {
        tally_plan *plan = tally_plan_new(schema);
        check_agreement(db, plan, rows, decode_ok(plan, AGREE[i]), AGREE[i]);
        tally_plan_free(plan);
    }
    /* Every comparison on every column against every row's own value of it. */
    static const char *const ops[] = {"equals", "notEquals", "lessThan", "lessThanOrEqual", "greaterThan",
                                      "greaterThanOrEqual"};
    static const char *const fields[] = {"n", "m", "x", "s", "t", "b", "d", "p"};
    static const int field_cols[] = {C_N, C_M, C_X, C_S, C_T, C_B, C_D, C_P};
    int checked = 0;
    for (size_t fi = 0; fi < 8; fi++)
        for (int r = 0; r < NROWS; r++) {
            tally_value v = rows[r * NCOLS + field_cols[fi]];
            if (v.kind == TALLY_VALUE_NULL)
                continue;
            for (size_t o = 0; o < 6; o++)
                for (int negate = 0; negate < 2; negate++) {
                    tally_plan *plan = tally_plan_new(schema);
                    tally_filter *cmp = tally_arena_zalloc(&plan->arena, sizeof *cmp);
                    cmp->kind = TALLY_FILTER_CMP;
                    cmp->column = field_cols[fi];
                    cmp->op = (tally_cmp_op)o;
                    cmp->other_column = -1;
                    cmp->value = v;
                    tally_filter not = {.kind = TALLY_FILTER_NOT, .children = cmp, .nchildren = 1};
                    char what[128];
                    snprintf(what, sizeof what, "%s%s %s row %d's value", negate ? "NOT " : "", fields[fi], ops[o],
                             r + 1);
                    check_agreement(db, plan, rows, negate ? &not : cmp, what);
                    tally_plan_free(plan);
                    checked++;
                }
        }
    assert_true(checked > 500);

    /* The verdicts themselves, for the rules README.md, "Filters, sorting and paging" states. */
    static const struct {
        const char *filter;
        int ids[NROWS + 1];
    } want[] = {
        {"{'n': {'equals': 5}}", {1, 5}},
        {"{'NOT': {'n': {'equals': 5}}}", {2, 3, 4, 6, 7, 8, 9, 10}}, /* unset n (2, 8) included */
        {"{'n': {'notEquals': 5}}", {3, 4, 6, 7, 9, 10}},             /* unset n excluded */
        {"{'n': {'equals': null}}", {2, 8}},
        {"{'n': {'notEquals': null}}", {1, 3, 4, 5, 6, 7, 9, 10}},
        {"{'n': {'notIn': []}}", {1, 3, 4, 5, 6, 7, 9, 10}},
        {"{'n': {'in': []}}", {0}},
        {"{'NOT': {'n': {'in': [5]}}}", {2, 3, 4, 6, 7, 8, 9, 10}},
        {"{'n': {'lessThan': {'field': 'm'}}}", {3, 9}},
        {"{'NOT': {'n': {'lessThan': {'field': 'm'}}}}", {1, 2, 4, 5, 6, 7, 8, 10}},
        {"{'n': {'equals': 9007199254740992.0}}", {0}}, /* 2^53 + 1 is not 2^53 */
        {"{'x': {'equals': {'field': 'n'}}}", {1, 6, 10}},
        {"{'x': {'equals': {'field': 'm'}}}", {1, 4, 6, 10}},
        {"{'s': {'lessThan': 'b'}}", {1, 4, 5, 9, 10}}, /* bytewise: 'B' < 'a' < 'ab' < 'b' */
        {"{'b': {'notEquals': true}}", {3, 5, 9}},
        {"{'j': {'isSet': true}}", {1, 3, 5, 9}},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        tally_plan *plan = tally_plan_new(schema);
        unsigned got = check_agreement(db, plan, rows, decode_ok(plan, want[i].filter), want[i].filter);
        if (got != ids(want[i].ids))
            fail_msg("%s: rows 0x%x, want 0x%x", want[i].filter, got, ids(want[i].ids));
        tally_plan_free(plan);
    }
    tally_plan_free(rows_plan);
    sqlite3_close(db);
}

/* A transaction plan whose step 0 ("prev", a get of item) returned a record
 * with n = 5, s = 'a' and everything else unset. */
static tally_plan *plan_after_get(void)
{
    tally_plan *plan = tally_plan_new(schema);
    tally_plan_add_step(plan, TALLY_OP_GET, item)->id = tally_value_int(1);
    plan->txn = tally_arena_zalloc(&plan->arena, 4 * sizeof *plan->txn);
    plan->txn_cap = 4;
    plan->txn[0] = (tally_txn_step){.as = "prev", .first = 0, .answer = 0};
    plan->ntxn = 1;
    tally_plan_prepare_results(plan);
    tally_value *cols = tally_arena_alloc(&plan->arena, NCOLS * sizeof *cols);
    blank(cols, 1);
    cols[C_N] = tally_value_int(5);
    cols[C_S] = tally_value_text("a", 1);
    plan->results[0].record.cols = cols;
    return plan;
}

static void test_refs_agree(void **state)
{
    (void)state;
    /* A reference takes its value when the step runs; an unset referenced
     * value compares like null in a comparison: false, and its NOT true, in
     * SQL as in C. */
    static const char *const filters[] = {
        "{'n': {'equals': {'$ref': 'prev.n'}}}",
        "{'NOT': {'n': {'equals': {'$ref': 'prev.n'}}}}",
        "{'m': {'equals': {'$ref': 'prev.m'}}}",
        "{'NOT': {'m': {'equals': {'$ref': 'prev.m'}}}}",
        "{'NOT': {'m': {'notEquals': {'$ref': 'prev.m'}}}}",
        "{'NOT': {'m': {'lessThan': {'$ref': 'prev.x'}}}}",
        "{'s': {'lessThanOrEqual': {'$ref': 'prev.s'}}}",
        "{'NOT': {'s': {'greaterThan': {'$ref': 'prev.t'}}}}",
        "{'n': {'in': [{'$ref': 'prev.n'}, 0]}}",
        "{'n': {'in': [{'$ref': 'prev.m'}, 0]}}",
        "{'NOT': {'n': {'in': [{'$ref': 'prev.m'}, 0]}}}",
        "{'n': {'notIn': [{'$ref': 'prev.m'}, 0]}}",
        "{'NOT': {'n': {'notIn': [{'$ref': 'prev.m'}]}}}",
        "{'n': {'notIn': [{'$ref': 'prev.n'}]}}",
        "{'p': {'equals': {'$ref': 'prev.id'}}}",
        "{'OR': [{'n': {'lessThan': {'$ref': 'prev.m'}}}, {'NOT': {'x': {'greaterThan': {'$ref': 'prev.x'}}}}]}",
    };
    sqlite3 *db = open_items();
    tally_plan *rows_plan = tally_plan_new(schema);
    const tally_value *rows = read_rows(db, rows_plan);
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        tally_plan *plan = plan_after_get();
        const tally_filter *f = decode_ok(plan, filters[i]);
        check_agreement(db, plan, rows, f, filters[i]);
        tally_plan_free(plan);
    }
    /* The reference's own checks: an unknown step or field, or a value of another type. */
    tally_plan *plan = plan_after_get();
    const tally_filter *f;
    tally_error err;
    assert_int_equal(decode(plan, "{'n': {'equals': {'$ref': 'nope.n'}}}", &f, &err), -TALLY_BAD_REQUEST);
    assert_string_equal(err.path, "filter.n.equals");
    assert_int_equal(decode(plan, "{'n': {'equals': {'$ref': 'prev.nope'}}}", &f, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "'nope'"));
    assert_int_equal(decode(plan, "{'n': {'equals': {'$ref': 'prev.s'}}}", &f, &err), -TALLY_BAD_REQUEST);
    assert_string_equal(err.path, "filter.n.equals");
    assert_int_equal(decode(plan, "{'n': {'in': [{'$ref': 'prev.s'}]}}", &f, &err), -TALLY_BAD_REQUEST);
    assert_string_equal(err.path, "filter.n.in[0]");
    f = decode_ok(plan, "{'n': {'equals': {'$ref': 'prev.n'}}}");
    assert_int_equal(f->value.kind, TALLY_VALUE_REF);
    assert_int_equal(f->value.u.ref.step, 0);
    assert_int_equal(f->value.u.ref.column, C_N);
    tally_plan_free(plan);
    /* The SQL of references: a comparison also asks its parameter to be set;
     * a list ignores the NULLs in it. */
    static const struct {
        const char *filter, *sql;
    } text[] = {
        {"{'n': {'equals': {'$ref': 'prev.n'}}}", "(\"n\" IS NOT NULL AND \"n\" = ?1 AND ?1 IS NOT NULL)"},
        {"{'s': {'greaterThan': 'a', 'lessThan': {'$ref': 'prev.s'}}}",
         "((\"s\" IS NOT NULL AND \"s\" > ?1) AND (\"s\" IS NOT NULL AND \"s\" < ?2 AND ?2 IS NOT NULL))"},
        {"{'n': {'in': [{'$ref': 'prev.m'}, 0]}}", "(\"n\" IS NOT NULL AND coalesce(\"n\" IN (?1, ?2), 0))"},
        {"{'n': {'notIn': [{'$ref': 'prev.m'}]}}", "(\"n\" IS NOT NULL AND NOT coalesce(\"n\" IN (?1), 0))"},
    };
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++) {
        plan = plan_after_get();
        f = decode_ok(plan, text[i].filter);
        tally_sql q;
        tally_binds b;
        tally_sql_init(&q);
        tally_binds_init(&b);
        tally_sql_filter(&q, &b, item, f);
        if (strcmp(q.s, text[i].sql) != 0)
            fail_msg("%s:\n got: %s\nwant: %s", text[i].filter, q.s, text[i].sql);
        tally_sql_free(&q);
        tally_binds_free(&b);
        tally_plan_free(plan);
    }
    tally_plan_free(rows_plan);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_sql_text),
        cmocka_unit_test(test_sql_agrees_with_c),
        cmocka_unit_test(test_refs_agree),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
