/* Unit tests for api/filter decoding against the one-model schema of
 * filter_util.h: every operator, AND / OR / NOT, field-to-field comparisons,
 * the null rules, every field type, the 32-level and 10,000-value limits,
 * unknown fields and operators and wrong types refused as BAD_REQUEST with
 * the path of the mistake.  What a decoded filter selects, in C and in SQL,
 * is in test_filter_eval.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/filter.h"
#include "core/filter.h"
#include "core/schema.h"
#include "filter_util.h"

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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
