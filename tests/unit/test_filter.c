/* Unit tests for filters, end to end: api/filter decoding (every operator,
 * AND / OR / NOT, field-to-field comparisons, the null rules, every field
 * type, the 32-level and 10,000-value limits, unknown fields and operators
 * and wrong types refused as BAD_REQUEST with the path of the mistake);
 * core/filter's tally_filter_matches on rows (the two-valued null logic:
 * NOT {x equals 5} matches an unset x, notEquals 5 does not); and
 * store/sql's tally_sql_filter: its exact text and binds, and, run on a real
 * in-memory SQLite table whose rows hold NULLs, ties, 2^53 neighbours and
 * extremes, the very same verdict as tally_filter_matches for every filter
 * (the store filters listings in SQL and a transaction's expect in C: the two
 * must agree), references to an earlier step's unset value included. */
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
#include "test_util.h"

/* Columns: id 0, createdAt 1, updatedAt 2, n 3, m 4, x 5, s 6, t 7, b 8, d 9, j 10, p 11. */
static const char ITEM_JSON[] =
    "{\"models\": {\"item\": {\"fields\": {"
    " \"n\": {\"type\": \"integer\"}, \"m\": {\"type\": \"integer\"}, \"x\": {\"type\": \"float\"},"
    " \"s\": {\"type\": \"string\"}, \"t\": {\"type\": \"string\"}, \"b\": {\"type\": \"boolean\"},"
    " \"d\": {\"type\": \"datetime\"}, \"j\": {\"type\": \"json\"},"
    " \"p\": {\"type\": \"belongsTo\", \"model\": \"item\", \"onDelete\": \"setNull\"}}}}}";
enum { C_N = 3, C_M, C_X, C_S, C_T, C_B, C_D, C_J, C_P, NCOLS };

static tally_schema *schema;
static const tally_model *item;

static int setup(void **state)
{
    (void)state;
    if (parse_schema(ITEM_JSON, &schema) != 0)
        return -1;
    item = &schema->models[0];
    return item->ncolumns == NCOLS ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tally_schema_free(schema);
    return 0;
}

/* Decodes filter sq into plan (the JSON is freed at once: the filter must own what it keeps). */
static int decode(tally_plan *plan, const char *sq, const tally_filter **out, tally_error *err)
{
    json_t *j = J(sq);
    tally_error_clear(err);
    int rc = tally_decode_filter(plan, item, j, "filter", out, err);
    json_decref(j);
    return rc;
}

static const tally_filter *decode_ok(tally_plan *plan, const char *sq)
{
    const tally_filter *f = NULL;
    tally_error err;
    if (decode(plan, sq, &f, &err))
        fail_msg("filter refused: %s (path '%s'): %s", err.message, err.path, sq);
    assert_non_null(f);
    return f;
}

/* Refused with BAD_REQUEST at path; the message holds needle (if any). */
static void refused(const char *sq, const char *path, const char *needle)
{
    tally_plan *plan = tally_plan_new(schema);
    const tally_filter *f = (const tally_filter *)0x1;
    tally_error err;
    int rc = decode(plan, sq, &f, &err);
    if (rc == 0)
        fail_msg("filter accepted: %s", sq);
    if (rc != -TALLY_BAD_REQUEST || err.code != TALLY_BAD_REQUEST)
        fail_msg("%s (rc %d) for %s, want BAD_REQUEST", tally_code_name(err.code), rc, sq);
    if (strcmp(err.path, path) != 0)
        fail_msg("path '%s', want '%s' (%s) for %s", err.path, path, err.message, sq);
    if (needle && !strstr(err.message, needle))
        fail_msg("message lacks '%s': %s", needle, err.message);
    assert_ptr_equal(f, (const tally_filter *)0x1); /* untouched */
    tally_plan_free(plan);
}

static void assert_cmp(const tally_filter *f, int column, tally_cmp_op op)
{
    assert_int_equal(f->kind, TALLY_FILTER_CMP);
    assert_int_equal(f->column, column);
    assert_int_equal(f->op, op);
}

/* ---- decoding ---------------------------------------------------------------- */

static void test_decode_every_operator(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        tally_cmp_op op;
    } ops[] = {
        {"equals", TALLY_CMP_EQ},         {"notEquals", TALLY_CMP_NE},         {"lessThan", TALLY_CMP_LT},
        {"lessThanOrEqual", TALLY_CMP_LE}, {"greaterThan", TALLY_CMP_GT}, {"greaterThanOrEqual", TALLY_CMP_GE},
    };
    tally_plan *plan = tally_plan_new(schema);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char sq[128];
        snprintf(sq, sizeof sq, "{'n': {'%s': -7}}", ops[i].name);
        const tally_filter *f = decode_ok(plan, sq);
        assert_cmp(f, C_N, ops[i].op);
        assert_int_equal(f->other_column, -1);
        assert_int_equal(f->value.kind, TALLY_VALUE_INT);
        assert_int_equal(f->value.u.i, -7);
    }
    const tally_filter *f = decode_ok(plan, "{'n': {'in': [1, 2, 9223372036854775807]}}");
    assert_cmp(f, C_N, TALLY_CMP_IN);
    assert_int_equal(f->nvalues, 3);
    assert_int_equal(f->values[2].u.i, INT64_MAX);
    f = decode_ok(plan, "{'s': {'notIn': ['a', '']}}");
    assert_cmp(f, C_S, TALLY_CMP_NOT_IN);
    assert_int_equal(f->nvalues, 2);
    assert_int_equal(f->values[0].kind, TALLY_VALUE_TEXT);
    assert_int_equal(f->values[1].u.text.len, 0);
    f = decode_ok(plan, "{'n': {'in': []}}");
    assert_int_equal(f->nvalues, 0);
    f = decode_ok(plan, "{'n': {'isSet': true}}");
    assert_cmp(f, C_N, TALLY_CMP_IS_SET);
    assert_int_equal(f->value.u.i, 1);
    f = decode_ok(plan, "{'n': {'isSet': false}}");
    assert_int_equal(f->value.u.i, 0);

    /* Several operators on one field: an AND of comparisons, in the order written. */
    f = decode_ok(plan, "{'n': {'greaterThan': 1, 'lessThanOrEqual': 9}}");
    assert_int_equal(f->kind, TALLY_FILTER_AND);
    assert_int_equal(f->nchildren, 2);
    assert_cmp(&f->children[0], C_N, TALLY_CMP_GT);
    assert_cmp(&f->children[1], C_N, TALLY_CMP_LE);
    assert_int_equal(f->children[1].value.u.i, 9);
    /* Several fields: an AND too. */
    f = decode_ok(plan, "{'n': {'equals': 1}, 's': {'equals': 'x'}}");
    assert_int_equal(f->kind, TALLY_FILTER_AND);
    assert_cmp(&f->children[0], C_N, TALLY_CMP_EQ);
    assert_cmp(&f->children[1], C_S, TALLY_CMP_EQ);
    /* {} is every row. */
    f = decode_ok(plan, "{}");
    assert_int_equal(f->kind, TALLY_FILTER_TRUE);
    /* The server's columns can be filtered too. */
    f = decode_ok(plan, "{'id': {'in': [1, 2]}, 'createdAt': {'lessThan': '2024-01-31T12:00:00Z'}}");
    assert_cmp(&f->children[0], TALLY_COL_ID, TALLY_CMP_IN);
    assert_cmp(&f->children[1], TALLY_COL_CREATED_AT, TALLY_CMP_LT);
    assert_int_equal(f->children[1].value.u.i, 1706702400000LL);
    tally_plan_free(plan);
}

static void test_decode_types(void **state)
{
    (void)state;
    tally_plan *plan = tally_plan_new(schema);
    /* A float field takes integers and fractions; an integer field compares with a fraction too. */
    const tally_filter *f = decode_ok(plan, "{'x': {'equals': 2}}");
    assert_int_equal(f->value.kind, TALLY_VALUE_INT);
    f = decode_ok(plan, "{'x': {'lessThan': 2.5}}");
    assert_int_equal(f->value.kind, TALLY_VALUE_FLOAT);
    assert_true(f->value.u.f == 2.5);
    f = decode_ok(plan, "{'n': {'lessThan': 2.5}}");
    assert_int_equal(f->value.kind, TALLY_VALUE_FLOAT);
    f = decode_ok(plan, "{'b': {'equals': false}}");
    assert_int_equal(f->value.kind, TALLY_VALUE_INT);
    assert_int_equal(f->value.u.i, 0);
    f = decode_ok(plan, "{'d': {'greaterThanOrEqual': '2024-01-31T13:00:00+01:00'}}");
    assert_int_equal(f->value.u.i, 1706702400000LL);
    f = decode_ok(plan, "{'p': {'equals': 4}}");
    assert_int_equal(f->value.u.i, 4);
    /* Text is the plan's copy (the JSON is gone), with its length. */
    f = decode_ok(plan, "{'s': {'equals': 'h\\u00e9'}}");
    assert_int_equal(f->value.u.text.len, 3);
    assert_memory_equal(f->value.u.text.ptr, "h\xc3\xa9", 3);
    /* json: isSet and equals/notEquals null only. */
    f = decode_ok(plan, "{'j': {'isSet': true}}");
    assert_cmp(f, C_J, TALLY_CMP_IS_SET);
    f = decode_ok(plan, "{'j': {'notEquals': null}}");
    assert_cmp(f, C_J, TALLY_CMP_NE);
    assert_int_equal(f->value.kind, TALLY_VALUE_NULL);
    tally_plan_free(plan);

    refused("{'n': {'equals': '5'}}", "filter.n.equals", "number");
    refused("{'n': {'equals': true}}", "filter.n.equals", "number");
    refused("{'n': {'equals': [5]}}", "filter.n.equals", NULL);
    refused("{'x': {'greaterThan': 'x'}}", "filter.x.greaterThan", "number");
    refused("{'s': {'equals': 5}}", "filter.s.equals", "string");
    refused("{'s': {'in': ['a', 5]}}", "filter.s.in[1]", "string");
    refused("{'b': {'equals': 1}}", "filter.b.equals", "true or false");
    refused("{'d': {'equals': 1706702400000}}", "filter.d.equals", "RFC 3339");
    refused("{'d': {'lessThan': '2024-01-31'}}", "filter.d.lessThan", "RFC 3339");
    refused("{'p': {'equals': 'x'}}", "filter.p.equals", "id");
    refused("{'p': {'equals': 1.5}}", "filter.p.equals", "id");
    refused("{'j': {'equals': {'a': 1}}}", "filter.j.equals", "json");
    refused("{'j': {'equals': 'x'}}", "filter.j.equals", "json");
    refused("{'j': {'in': []}}", "filter.j.in", "json");
    refused("{'id': {'equals': 'x'}}", "filter.id.equals", "number");
}

static void test_decode_logic(void **state)
{
    (void)state;
    tally_plan *plan = tally_plan_new(schema);
    const tally_filter *f = decode_ok(plan, "{'OR': [{'n': {'equals': 1}}, {'AND': [{'s': {'isSet': true}},"
                                            " {'NOT': {'b': {'equals': true}}}]}]}");
    assert_int_equal(f->kind, TALLY_FILTER_OR);
    assert_int_equal(f->nchildren, 2);
    assert_cmp(&f->children[0], C_N, TALLY_CMP_EQ);
    const tally_filter *and = &f->children[1];
    assert_int_equal(and->kind, TALLY_FILTER_AND);
    assert_int_equal(and->nchildren, 2);
    assert_cmp(&and->children[0], C_S, TALLY_CMP_IS_SET);
    assert_int_equal(and->children[1].kind, TALLY_FILTER_NOT);
    assert_int_equal(and->children[1].nchildren, 1);
    assert_cmp(&and->children[1].children[0], C_B, TALLY_CMP_EQ);
    /* Empty lists: AND of nothing is true, OR of nothing is false. */
    f = decode_ok(plan, "{'AND': []}");
    assert_int_equal(f->kind, TALLY_FILTER_AND);
    assert_int_equal(f->nchildren, 0);
    f = decode_ok(plan, "{'OR': []}");
    assert_int_equal(f->kind, TALLY_FILTER_OR);
    assert_int_equal(f->nchildren, 0);
    /* A combinator beside fields: all of them hold. */
    f = decode_ok(plan, "{'NOT': {'n': {'equals': 1}}, 'm': {'equals': 2}}");
    assert_int_equal(f->kind, TALLY_FILTER_AND);
    assert_int_equal(f->children[0].kind, TALLY_FILTER_NOT);
    assert_cmp(&f->children[1], C_M, TALLY_CMP_EQ);
    tally_plan_free(plan);

    refused("{'AND': {'n': {'equals': 1}}}", "filter.AND", "list");
    refused("{'OR': 5}", "filter.OR", "list");
    refused("{'OR': [{'n': {'equals': 1}}, 5]}", "filter.OR[1]", "object");
    refused("{'OR': [{}, {'AND': [{'n': {'bogus': 1}}]}]}", "filter.OR[1].AND[0].n.bogus", "unknown operator");
    refused("{'NOT': [{'n': {'equals': 1}}]}", "filter.NOT", "object");
    refused("{'NOT': {'nope': {'equals': 1}}}", "filter.NOT.nope", "'nope'");
    refused("5", "filter", "object");
    refused("[]", "filter", "object");
    refused("null", "filter", "object");
    /* Combinators are upper case: "and" is taken for a field. */
    refused("{'and': []}", "filter.and", "upper case");
}

static void test_decode_field_to_field(void **state)
{
    (void)state;
    tally_plan *plan = tally_plan_new(schema);
    const tally_filter *f = decode_ok(plan, "{'n': {'lessThan': {'field': 'm'}}}");
    assert_cmp(f, C_N, TALLY_CMP_LT);
    assert_int_equal(f->other_column, C_M);
    /* Integer and float compare; so do the server's columns and datetimes. */
    f = decode_ok(plan, "{'x': {'greaterThanOrEqual': {'field': 'n'}}}");
    assert_int_equal(f->other_column, C_N);
    f = decode_ok(plan, "{'d': {'lessThan': {'field': 'createdAt'}}}");
    assert_int_equal(f->other_column, TALLY_COL_CREATED_AT);
    f = decode_ok(plan, "{'s': {'notEquals': {'field': 't'}}}");
    assert_int_equal(f->other_column, C_T);
    f = decode_ok(plan, "{'n': {'equals': {'field': 'n'}}}");
    assert_int_equal(f->other_column, C_N);
    /* A link is its target's id: it compares with ids and numbers. */
    f = decode_ok(plan, "{'p': {'lessThan': {'field': 'id'}}}");
    assert_int_equal(f->other_column, TALLY_COL_ID);
    f = decode_ok(plan, "{'n': {'equals': {'field': 'p'}}}");
    assert_int_equal(f->other_column, C_P);
    tally_plan_free(plan);

    refused("{'n': {'lessThan': {'field': 'nope'}}}", "filter.n.lessThan.field", "'nope'");
    refused("{'n': {'lessThan': {'field': 's'}}}", "filter.n.lessThan.field", "cannot compare");
    refused("{'s': {'equals': {'field': 'b'}}}", "filter.s.equals.field", "cannot compare a string field with a boolean field");
    refused("{'p': {'equals': {'field': 's'}}}", "filter.p.equals.field", "cannot compare a belongsTo field with a string field");
    refused("{'n': {'equals': {'field': 'd'}}}", "filter.n.equals.field", "cannot compare an integer field with a datetime field");
    refused("{'n': {'lessThan': {'field': 5}}}", "filter.n.lessThan", "field");
    refused("{'n': {'lessThan': {'field': 'm', 'x': 1}}}", "filter.n.lessThan", "field");
    refused("{'n': {'lessThan': {}}}", "filter.n.lessThan", "field");
    refused("{'j': {'equals': {'field': 'j'}}}", "filter.j.equals", "json");
    /* A list takes values, not fields. */
    refused("{'n': {'in': [{'field': 'm'}]}}", "filter.n.in[0]", "number");
}

static void test_decode_null_rules(void **state)
{
    (void)state;
    tally_plan *plan = tally_plan_new(schema);
    const tally_filter *f = decode_ok(plan, "{'s': {'equals': null}}");
    assert_cmp(f, C_S, TALLY_CMP_EQ);
    assert_int_equal(f->value.kind, TALLY_VALUE_NULL);
    f = decode_ok(plan, "{'n': {'notEquals': null}}");
    assert_cmp(f, C_N, TALLY_CMP_NE);
    assert_int_equal(f->value.kind, TALLY_VALUE_NULL);
    tally_plan_free(plan);
    static const char *const ordered[] = {"lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"};
    for (size_t i = 0; i < 4; i++) {
        char sq[128], path[64];
        snprintf(sq, sizeof sq, "{'n': {'%s': null}}", ordered[i]);
        snprintf(path, sizeof path, "filter.n.%s", ordered[i]);
        refused(sq, path, "isSet");
    }
    refused("{'n': {'in': [1, null]}}", "filter.n.in[1]", "isSet");
    refused("{'n': {'notIn': [null]}}", "filter.n.notIn[0]", "isSet");
    refused("{'n': {'in': null}}", "filter.n.in", "list");
    refused("{'n': {'isSet': null}}", "filter.n.isSet", "true or false");
    refused("{'n': {'isSet': 1}}", "filter.n.isSet", "true or false");
    refused("{'n': null}", "filter.n", "object");
    refused("{'n': {}}", "filter.n", "object");
    refused("{'n': 5}", "filter.n", "object");
}

static void test_decode_unknown(void **state)
{
    (void)state;
    refused("{'nope': {'equals': 1}}", "filter.nope", "item has no field 'nope'");
    refused("{'N': {'equals': 1}}", "filter.N", "'N'");
    refused("{'n': {'gt': 1}}", "filter.n.gt", "unknown operator");
    refused("{'n': {'equals': 1, 'Equals': 1}}", "filter.n.Equals", "unknown operator");
    refused("{'n': {'equal': 1}}", "filter.n.equal", "equals");
    /* A reference outside a transaction names no step. */
    refused("{'n': {'equals': {'$ref': 'a.n'}}}", "filter.n.equals", "no earlier step");
    /* The prefix given is the prefix used. */
    tally_plan *plan = tally_plan_new(schema);
    json_t *j = J("{'OR': [{'n': {'equals': 'x'}}]}");
    const tally_filter *f = NULL;
    tally_error err;
    assert_int_equal(tally_decode_filter(plan, item, j, "_where", &f, &err), -TALLY_BAD_REQUEST);
    assert_string_equal(err.path, "_where.OR[0].n.equals");
    json_decref(j);
    tally_plan_free(plan);
}

/* {"NOT": ... k times ... {"n": {"equals": 1}}}: k + 1 levels of objects. */
static char *nested_not(int k)
{
    size_t cap = (size_t)k * 16 + 64;
    char *s = malloc(cap);
    s[0] = '\0';
    for (int i = 0; i < k; i++)
        strcat(s, "{'NOT': ");
    strcat(s, "{'n': {'equals': 1}}");
    for (int i = 0; i < k; i++)
        strcat(s, "}");
    return s;
}

static void test_decode_limits(void **state)
{
    (void)state;
    /* 32 levels nest; 33 are refused (whatever the combinators). */
    tally_plan *plan = tally_plan_new(schema);
    char *ok = nested_not(TALLY_FILTER_MAX_DEPTH - 1);
    const tally_filter *f = decode_ok(plan, ok);
    int depth = 1;
    while (f->kind == TALLY_FILTER_NOT) {
        f = &f->children[0];
        depth++;
    }
    assert_int_equal(depth, TALLY_FILTER_MAX_DEPTH);
    assert_cmp(f, C_N, TALLY_CMP_EQ);
    free(ok);
    tally_plan_free(plan);
    char *deep = nested_not(TALLY_FILTER_MAX_DEPTH);
    char path[512] = "filter";
    for (int i = 0; i < TALLY_FILTER_MAX_DEPTH; i++)
        strcat(path, ".NOT");
    refused(deep, path, "32 levels");
    free(deep);
    /* Much deeper is refused the same way, not a stack overflow. */
    deep = nested_not(2000); /* jansson's own limit is 2048 */
    plan = tally_plan_new(schema);
    tally_error err;
    assert_int_equal(decode(plan, deep, &f, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "32 levels"));
    tally_plan_free(plan);
    free(deep);
    /* AND and OR lists count as levels too. */
    size_t cap = 64 * 40;
    char *mixed = malloc(cap);
    mixed[0] = '\0';
    for (int i = 0; i < TALLY_FILTER_MAX_DEPTH; i++)
        strcat(mixed, i % 2 ? "{'OR': [" : "{'AND': [");
    strcat(mixed, "{}");
    for (int i = TALLY_FILTER_MAX_DEPTH - 1; i >= 0; i--)
        strcat(mixed, "]}");
    plan = tally_plan_new(schema);
    assert_int_equal(decode(plan, mixed, &f, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "32 levels"));
    tally_plan_free(plan);
    free(mixed);

    /* At most 10,000 values in one filter, all lists and comparisons together. */
    json_t *list = json_array();
    for (int i = 0; i < TALLY_FILTER_MAX_VALUES; i++)
        json_array_append_new(list, json_integer(i));
    json_t *j = json_pack("{s:{s:O}}", "n", "in", list);
    plan = tally_plan_new(schema);
    assert_int_equal(tally_decode_filter(plan, item, j, "filter", &f, &err), 0);
    assert_int_equal(f->nvalues, TALLY_FILTER_MAX_VALUES);
    tally_plan_free(plan);
    json_decref(j);
    j = json_pack("{s:{s:O, s:i}}", "n", "in", list, "notEquals", 3);
    plan = tally_plan_new(schema);
    assert_int_equal(tally_decode_filter(plan, item, j, "filter", &f, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "10000"));
    tally_plan_free(plan);
    json_decref(j);
    json_decref(list);
}

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

    /* The verdicts themselves, for the rules DESIGN.md states. */
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
        cmocka_unit_test(test_decode_every_operator),
        cmocka_unit_test(test_decode_types),
        cmocka_unit_test(test_decode_logic),
        cmocka_unit_test(test_decode_field_to_field),
        cmocka_unit_test(test_decode_null_rules),
        cmocka_unit_test(test_decode_unknown),
        cmocka_unit_test(test_decode_limits),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_sql_text),
        cmocka_unit_test(test_sql_agrees_with_c),
        cmocka_unit_test(test_refs_agree),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
