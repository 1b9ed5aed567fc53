/* Unit tests for api/transaction: POST /api/transaction bodies decoded into
 * one plan against the shop schema.  Every step form (create with nested
 * records, get, find, update with where, delete, upsert, updateMany,
 * deleteMany) becomes its plan steps with the transaction step's first and
 * answering plan step; "as" names (copied, unique, identifiers, visible to
 * later steps only); {"$ref": "name.field"} resolved at decode time to a REF
 * of (answering step, column) wherever a value goes (fields, links, ids,
 * atomics amounts, filters), with an unknown name, unknown field or a value
 * of the wrong type refused as BAD_REQUEST naming the step (err.step and its
 * "as"); "expect" on a record and on a count; the max-steps limit; and a
 * string that merely starts with '$' kept as a string.  Then a few
 * transactions run on a real store (exec/run.h): references take the
 * earlier steps' values, and a failed expect names its step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/decode.h"
#include "api/transaction.h"
#include "core/schema.h"
#include "exec/run.h"
#include "store/backend.h"
#include "shop_json.h"
#include "test_util.h"

static tally_schema *shop;

static int setup(void **state)
{
    (void)state;
    return parse_schema(SHOP_JSON, &shop);
}

static int teardown(void **state)
{
    (void)state;
    tally_schema_free(shop);
    return 0;
}

/* The column of model.field in the shop. */
static int shop_col(const char *model, const char *field)
{
    return col(M(shop, model), field);
}

/* Decodes a transaction body; the JSON is freed before the caller looks at the plan. */
static int decode(const char *sq, int max_steps, tally_plan **out, tally_error *err)
{
    *out = tally_plan_new(shop);
    json_t *body = J(sq);
    tally_error_clear(err);
    int rc = tally_decode_transaction(*out, body, max_steps, err);
    json_decref(body);
    return rc;
}

static tally_plan *decode_ok(const char *sq)
{
    tally_plan *plan;
    tally_error err;
    if (decode(sq, TALLY_TXN_DEFAULT_MAX_STEPS, &plan, &err))
        fail_msg("transaction refused: %s %s (path '%s', step %d): %s", tally_code_name(err.code), err.message,
                 err.path, err.step, sq);
    return plan;
}

/* Refused with code at path (NULL: any), naming step `step` (its as: step_as); the message holds needle. */
static void refused(const char *sq, tally_code code, int step, const char *step_as, const char *path, const char *needle)
{
    tally_plan *plan;
    tally_error err;
    int rc = decode(sq, TALLY_TXN_DEFAULT_MAX_STEPS, &plan, &err);
    if (rc == 0)
        fail_msg("transaction accepted: %s", sq);
    if (rc != -(int)code || err.code != code)
        fail_msg("%s (%s) for %s, want %s", tally_code_name(err.code), err.message, sq, tally_code_name(code));
    if (err.step != step)
        fail_msg("step %d, want %d (%s) for %s", err.step, step, err.message, sq);
    assert_string_equal(err.step_as, step_as);
    if (path && strcmp(err.path, path) != 0)
        fail_msg("path '%s', want '%s' (%s) for %s", err.path, path, err.message, sq);
    if (needle && !strstr(err.message, needle))
        fail_msg("message lacks '%s': %s", needle, err.message);
    tally_plan_free(plan);
}

static const tally_assign *must_set(const tally_step *s, int column)
{
    for (int i = 0; i < s->nsets; i++)
        if (s->sets[i].column == column)
            return &s->sets[i];
    fail_msg("column %d not set", column);
    return NULL;
}

static void assert_ref(const tally_value *v, int step, int column)
{
    if (v->kind != TALLY_VALUE_REF)
        fail_msg("value of kind %d, want a REF", v->kind);
    assert_int_equal(v->u.ref.step, step);
    assert_int_equal(v->u.ref.column, column);
}

/* ---- step forms ------------------------------------------------------------------ */

static void test_step_forms(void **state)
{
    (void)state;
    tally_plan *plan = decode_ok(
        "{'steps': ["
        " {'create': 'ticket', 'data': {'event': {'create': {'availableTicketCount': 3}}}},"
        " {'get': 'customer', 'id': 4},"
        " {'find': 'product', 'filter': {'stock': {'greaterThan': 0}}, 'sort': {'stock': 'descending'}, 'first': 5},"
        " {'update': 'product', 'id': 5, 'data': {'_atomics': {'stock': {'decrement': 2}}},"
        "  'where': {'stock': {'greaterThanOrEqual': 2}}},"
        " {'delete': 'image', 'id': 6},"
        " {'upsert': 'rateLimit', 'on': ['userId', 'window'], 'create': {'userId': 'u', 'window': 1},"
        "  'update': {'_atomics': {'requests': {'increment': 1}}}},"
        " {'updateMany': 'course', 'filter': {}, 'set': {'name': 'x'}, '_atomics': {'slotsTaken': {'increment': 1}}},"
        " {'deleteMany': 'post', 'filter': {'title': {'equals': 'old'}}}"
        "]}");
    /* The nested event is a step of its own before the ticket. */
    static const struct {
        tally_op op;
        const char *model;
    } steps[] = {
        {TALLY_OP_CREATE, "event"}, {TALLY_OP_CREATE, "ticket"}, {TALLY_OP_GET, "customer"},
        {TALLY_OP_LIST, "product"}, {TALLY_OP_UPDATE, "product"}, {TALLY_OP_DELETE, "image"},
        {TALLY_OP_UPSERT, "rateLimit"}, {TALLY_OP_UPDATE_MANY, "course"}, {TALLY_OP_DELETE_MANY, "post"},
    };
    assert_int_equal(plan->nsteps, 9);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(plan->steps[i].op, steps[i].op);
        assert_ptr_equal(plan->steps[i].model, M(shop, steps[i].model));
    }
    assert_int_equal(plan->ntxn, 8);
    static const int first[] = {0, 2, 3, 4, 5, 6, 7, 8}, answer[] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int t = 0; t < 8; t++) {
        assert_int_equal(plan->txn[t].first, first[t]);
        assert_int_equal(plan->txn[t].answer, answer[t]);
        assert_null(plan->txn[t].as);
        assert_null(plan->txn[t].expect);
        assert_int_equal(tally_plan_txn_step(plan, answer[t]), t);
    }
    assert_int_equal(tally_plan_txn_step(plan, 0), 0); /* the nested create belongs to step 0 */
    assert_int_equal(plan->answer_step, 8);
    assert_true(plan->writes);
    /* What each form carries. */
    assert_ref(&must_set(&plan->steps[1], shop_col("ticket", "event"))->value, 0, TALLY_COL_ID);
    assert_string_equal(plan->steps[0].path, "data.event");
    assert_int_equal(plan->steps[2].id.u.i, 4);
    const tally_step *find = &plan->steps[3];
    assert_int_equal(find->first, 5);
    assert_int_equal(find->nsort, 2);
    assert_true(find->sort[0].descending);
    assert_int_equal(find->sort[1].column, TALLY_COL_ID);
    assert_non_null(find->where);
    const tally_step *upd = &plan->steps[4];
    assert_int_equal(upd->id.u.i, 5);
    assert_int_equal(upd->natomics, 1);
    assert_non_null(upd->where);
    assert_int_equal(upd->where->op, TALLY_CMP_GE);
    assert_int_equal(plan->steps[5].id.u.i, 6);
    assert_int_equal(plan->steps[6].non, 2);
    assert_int_equal(plan->steps[6].natomics, 1);
    assert_int_equal(plan->steps[7].nsets, 1);
    assert_int_equal(plan->steps[7].natomics, 1);
    assert_int_equal(plan->steps[8].where->kind, TALLY_FILTER_CMP);
    tally_plan_free(plan);

    /* Reads only: the transaction need not go to the writer. */
    plan = decode_ok("{'steps': [{'get': 'customer', 'id': 1}, {'find': 'customer'}]}");
    assert_false(plan->writes);
    assert_int_equal(plan->steps[1].first, TALLY_LIST_DEFAULT);
    tally_plan_free(plan);
}

static void test_step_shapes_refused(void **state)
{
    (void)state;
    refused("{'steps': []}", TALLY_BAD_REQUEST, -1, "", "steps", "at least one");
    refused("{'steps': {}}", TALLY_BAD_REQUEST, -1, "", "steps", NULL);
    refused("{'step': []}", TALLY_BAD_REQUEST, -1, "", "steps", NULL);
    refused("{'steps': [], 'x': 1}", TALLY_BAD_REQUEST, -1, "", "steps", NULL);
    refused("[]", TALLY_BAD_REQUEST, -1, "", "steps", NULL);
    refused("{'steps': [5]}", TALLY_BAD_REQUEST, 0, "", "", "object");
    refused("{'steps': [{'get': 'customer', 'id': 1}, {}]}", TALLY_BAD_REQUEST, 1, "", "", "names its operation");
    refused("{'steps': [{'get': 'customer', 'delete': 'customer', 'id': 1}]}", TALLY_BAD_REQUEST, 0, "", NULL,
            "does one thing");
    refused("{'steps': [{'get': 'nobody', 'id': 1}]}", TALLY_NOT_FOUND, 0, "", "get", "'nobody'");
    refused("{'steps': [{'get': 5, 'id': 1}]}", TALLY_NOT_FOUND, 0, "", "get", NULL);
    refused("{'steps': [{'get': 'customer', 'id': 1, 'data': {}}]}", TALLY_BAD_REQUEST, 0, "", "data", "takes no 'data'");
    refused("{'steps': [{'get': 'customer', 'id': 0}]}", TALLY_BAD_REQUEST, 0, "", "id", "positive");
    refused("{'steps': [{'get': 'customer'}]}", TALLY_BAD_REQUEST, 0, "", "id", NULL);
    refused("{'steps': [{'delete': 'customer', 'id': '1'}]}", TALLY_BAD_REQUEST, 0, "", "id", NULL);
    refused("{'steps': [{'create': 'customer'}]}", TALLY_BAD_REQUEST, 0, "", "data", "needs \"data\"");
    refused("{'steps': [{'create': 'customer', 'data': {'name': 'a'}, 'id': 3}]}", TALLY_BAD_REQUEST, 0, "", "id", NULL);
    refused("{'steps': [{'update': 'customer', 'id': 1, 'data': 5}]}", TALLY_BAD_REQUEST, 0, "", "data", NULL);
    refused("{'steps': [{'find': 'customer', 'first': 0}]}", TALLY_BAD_REQUEST, 0, "", "first", NULL);
    refused("{'steps': [{'deleteMany': 'customer'}]}", TALLY_BAD_REQUEST, 0, "", "filter", NULL);
    /* checkLock: a lock name and a token, nothing else */
    refused("{'steps': [{'checkLock': 5, 'token': 't'}]}", TALLY_BAD_REQUEST, 0, "", "checkLock", NULL);
    refused("{'steps': [{'checkLock': 'l'}]}", TALLY_BAD_REQUEST, 0, "", "token", "token is required");
    refused("{'steps': [{'checkLock': 'l', 'token': 't', 'ttlMs': 5}]}", TALLY_BAD_REQUEST, 0, "", "ttlMs", NULL);
    refused("{'steps': [{'checkLock': '', 'token': 't'}]}", TALLY_BAD_REQUEST, 0, "", "name", NULL);
    /* A mistake inside a step's data: the step, its name and the path inside it. */
    refused("{'steps': [{'get': 'customer', 'id': 1}, {'as': 'c', 'create': 'customer', 'data': {'nmae': 'x'}}]}",
            TALLY_BAD_REQUEST, 1, "c", "data.nmae", "'nmae'");
    refused("{'steps': [{'as': 'c', 'create': 'customer', 'data': {'name': 5}}]}", TALLY_VALIDATION, 0, "c",
            "data.name", NULL);
}

/* ---- names ------------------------------------------------------------------------- */

static void test_as_names(void **state)
{
    (void)state;
    tally_plan *plan = decode_ok("{'steps': [{'as': 'p', 'create': 'post', 'data': {'title': 'T'}},"
                                 " {'get': 'post', 'id': 1}, {'as': 'Second_2', 'get': 'post', 'id': 2}]}");
    assert_string_equal(plan->txn[0].as, "p"); /* the plan's copy: the JSON is gone */
    assert_null(plan->txn[1].as);
    assert_string_equal(plan->txn[2].as, "Second_2");
    tally_plan_free(plan);
    char long_ok[64], long_bad[65], sq[256];
    memset(long_ok, 'n', 63);
    long_ok[63] = '\0';
    memset(long_bad, 'n', 64);
    long_bad[64] = '\0';
    snprintf(sq, sizeof sq, "{'steps': [{'as': '%s', 'get': 'post', 'id': 1}]}", long_ok);
    plan = decode_ok(sq);
    assert_string_equal(plan->txn[0].as, long_ok);
    tally_plan_free(plan);
    snprintf(sq, sizeof sq, "{'steps': [{'as': '%s', 'get': 'post', 'id': 1}]}", long_bad);
    refused(sq, TALLY_BAD_REQUEST, 0, long_ok /* step_as holds 63 bytes of it */, "as", NULL);
    static const char *const bad[] = {"''", "'1p'", "'p-q'", "'p.q'", "5", "null", "{}", "'p q'"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(sq, sizeof sq, "{'steps': [{'get': 'post', 'id': 1}, {'as': %s, 'get': 'post', 'id': 1}]}", bad[i]);
        tally_plan *p;
        tally_error err;
        assert_int_equal(decode(sq, 10, &p, &err), -TALLY_BAD_REQUEST);
        assert_int_equal(err.step, 1);
        assert_string_equal(err.path, "as");
        tally_plan_free(p);
    }
    /* Unique within the transaction. */
    refused("{'steps': [{'as': 'p', 'get': 'post', 'id': 1}, {'as': 'q', 'get': 'post', 'id': 1},"
            " {'as': 'p', 'get': 'post', 'id': 2}]}",
            TALLY_BAD_REQUEST, 2, "p", "as", "already used by step 0");
}

/* ---- references ------------------------------------------------------------------------ */

static void test_refs_resolve(void **state)
{
    (void)state;
    tally_plan *plan = decode_ok(
        "{'steps': ["
        " {'as': 'p', 'create': 'post', 'data': {'title': 'A new post'}},"
        " {'as': 'i', 'create': 'image', 'data': {'url': {'$ref': 'p.title'}, 'post': {'_link': {'$ref': 'p.id'}}}},"
        " {'create': 'image', 'data': {'url': 'u', 'post': {'$ref': 'i.post'}}},"
        " {'as': 'e', 'create': 'ticket', 'data': {'event': {'create': {}}}},"
        " {'get': 'event', 'id': {'$ref': 'e.event'}},"
        " {'as': 'c', 'update': 'course', 'id': {'$ref': 'p.id'},"
        "  'data': {'_atomics': {'slotsTaken': {'increment': {'$ref': 'e.id'}}}},"
        "  'where': {'maxStudents': {'greaterThan': {'$ref': 'e.id'}}}},"
        " {'as': 'm', 'updateMany': 'product', 'filter': {'sku': {'equals': {'$ref': 'p.title'}}},"
        "  '_atomics': {'stock': {'increment': 1}}},"
        " {'as': 'd', 'delete': 'product', 'id': {'$ref': 'm.count'}},"
        " {'find': 'product', 'filter': {'id': {'in': [{'$ref': 'd.id'}, {'$ref': 'm.count'}]},"
        "  'createdAt': {'lessThan': {'$ref': 'p.updatedAt'}}}},"
        " {'update': 'course', 'id': 1, 'data': {'name': {'$ref': 'p.title'}, 'maxStudents': {'$ref': 'c.slotsTaken'}}}"
        "]}");
    assert_int_equal(plan->nsteps, 11);
    /* A REF names the step that answers the named transaction step, and a column. */
    assert_ref(&must_set(&plan->steps[1], shop_col("image", "url"))->value, 0, shop_col("post", "title"));
    assert_ref(&must_set(&plan->steps[1], shop_col("image", "post"))->value, 0, TALLY_COL_ID);
    assert_ref(&must_set(&plan->steps[2], shop_col("image", "post"))->value, 1, shop_col("image", "post"));
    /* e answers with the ticket (plan step 4), not its nested event (3). */
    assert_int_equal(plan->txn[3].first, 3);
    assert_int_equal(plan->txn[3].answer, 4);
    assert_ref(&plan->steps[5].id, 4, shop_col("ticket", "event"));
    const tally_step *c = &plan->steps[6];
    assert_ref(&c->id, 0, TALLY_COL_ID);
    assert_ref(&c->atomics[0].amount, 4, TALLY_COL_ID);
    assert_ref(&c->where->value, 4, TALLY_COL_ID);
    assert_ref(&plan->steps[7].where->value, 0, shop_col("post", "title"));
    /* updateMany offers its count. */
    assert_ref(&plan->steps[8].id, 7, TALLY_REF_COUNT);
    const tally_filter *f = plan->steps[9].where;
    assert_int_equal(f->kind, TALLY_FILTER_AND);
    assert_ref(&f->children[0].values[0], 8, TALLY_COL_ID);
    assert_ref(&f->children[0].values[1], 7, TALLY_REF_COUNT);
    assert_ref(&f->children[1].value, 0, TALLY_COL_UPDATED_AT);
    assert_ref(&must_set(&plan->steps[10], shop_col("course", "name"))->value, 0, shop_col("post", "title"));
    assert_ref(&must_set(&plan->steps[10], shop_col("course", "maxStudents"))->value, 6, shop_col("course", "slotsTaken"));
    tally_plan_free(plan);
}

static void test_refs_refused(void **state)
{
    (void)state;
    static const char P[] = "{'as': 'p', 'create': 'post', 'data': {'title': 'T'}}";
    static const struct {
        const char *step;
        tally_code code;
        const char *path, *needle;
    } cases[] = {
        /* Unknown names, including a step's own and a later one's. */
        {"{'as': 'x', 'create': 'image', 'data': {'url': {'$ref': 'q.title'}}}", TALLY_BAD_REQUEST, "data.url",
         "no earlier step is named 'q'"},
        {"{'as': 'x', 'create': 'image', 'data': {'url': {'$ref': 'x.url'}}}", TALLY_BAD_REQUEST, "data.url",
         "no earlier step is named 'x'"},
        {"{'as': 'x', 'get': 'post', 'id': {'$ref': 'P.id'}}", TALLY_BAD_REQUEST, "id", "'P'"},
        /* Unknown fields. */
        {"{'as': 'x', 'create': 'image', 'data': {'url': {'$ref': 'p.url'}}}", TALLY_BAD_REQUEST, "data.url",
         "has no field 'url'"},
        {"{'as': 'x', 'get': 'post', 'id': {'$ref': 'p.'}}", TALLY_BAD_REQUEST, "id", "has no field ''"},
        {"{'as': 'x', 'get': 'post', 'id': {'$ref': 'p.images'}}", TALLY_BAD_REQUEST, "id", "'images'"},
        /* The wrong type. */
        {"{'as': 'x', 'create': 'post', 'data': {'title': {'$ref': 'p.id'}}}", TALLY_BAD_REQUEST, "data.title",
         "gives an integer value where a string is expected"},
        {"{'as': 'x', 'create': 'image', 'data': {'url': 'u', 'post': {'$ref': 'p.title'}}}", TALLY_BAD_REQUEST,
         "data.post", "string"},
        {"{'as': 'x', 'get': 'post', 'id': {'$ref': 'p.title'}}", TALLY_BAD_REQUEST, "id", "integer"},
        {"{'as': 'x', 'get': 'post', 'id': {'$ref': 'p.createdAt'}}", TALLY_BAD_REQUEST, "id", "integer"},
        {"{'as': 'x', 'update': 'course', 'id': 1, 'data': {'_atomics': {'slotsTaken': {'increment': {'$ref': 'p.title'}}}}}",
         TALLY_BAD_REQUEST, NULL, "string"},
        {"{'as': 'x', 'find': 'post', 'filter': {'id': {'equals': {'$ref': 'p.title'}}}}", TALLY_BAD_REQUEST,
         "filter.id.equals", "another type"},
        /* Malformed references. */
        {"{'as': 'x', 'get': 'post', 'id': {'$ref': 'pid'}}", TALLY_BAD_REQUEST, "id", "name.field"},
        {"{'as': 'x', 'get': 'post', 'id': {'$ref': 5}}", TALLY_BAD_REQUEST, "id", "name.field"},
        {"{'as': 'x', 'get': 'post', 'id': {'$ref': 'p.id', 'x': 1}}", TALLY_BAD_REQUEST, "id", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sq[1024];
        snprintf(sq, sizeof sq, "{'steps': [%s, {'get': 'post', 'id': 1}, %s]}", P, cases[i].step);
        refused(sq, cases[i].code, 2, "x", cases[i].path, cases[i].needle);
    }
    /* What each kind of step offers. */
    refused("{'steps': [{'as': 'f', 'find': 'post'}, {'get': 'post', 'id': {'$ref': 'f.id'}}]}", TALLY_BAD_REQUEST, 1,
            "", "id", "cannot be referenced");
    refused("{'steps': [{'as': 'd', 'delete': 'post', 'id': 3}, {'create': 'post', 'data': {'title': {'$ref': 'd.title'}}}]}",
            TALLY_BAD_REQUEST, 1, "", "data.title", "only \"id\"");
    refused("{'steps': [{'as': 'm', 'deleteMany': 'post', 'filter': {}}, {'get': 'post', 'id': {'$ref': 'm.id'}}]}",
            TALLY_BAD_REQUEST, 1, "", "id", "only \"count\"");
    tally_plan *plan = decode_ok("{'steps': [{'as': 'd', 'delete': 'post', 'id': 3}, {'get': 'post', 'id': {'$ref': 'd.id'}},"
                                 " {'as': 'm', 'deleteMany': 'post', 'filter': {}},"
                                 " {'update': 'product', 'id': 1, 'data': {'stock': {'$ref': 'm.count'}}}]}");
    assert_ref(&plan->steps[1].id, 0, TALLY_COL_ID);
    assert_ref(&plan->steps[3].sets[0].value, 2, TALLY_REF_COUNT);
    tally_plan_free(plan);
}

static void test_dollar_strings_stay_strings(void **state)
{
    (void)state;
    /* Only an object {"$ref": "..."} is a reference: no stored string is ever taken for one. */
    static const char *const texts[] = {"$ref", "$p.id", "{\"$ref\": \"p.id\"}", "p.id", "$"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *body = J("{'steps': [{'as': 'p', 'create': 'post', 'data': {'title': 'T'}},"
                         " {'create': 'post', 'data': {'title': null}},"
                         " {'find': 'post', 'filter': {'title': {'equals': null}}}]}");
        json_t *steps = json_object_get(body, "steps");
        json_object_set_new(json_object_get(json_array_get(steps, 1), "data"), "title", json_string(texts[i]));
        json_object_set_new(json_object_get(json_object_get(json_array_get(steps, 2), "filter"), "title"), "equals",
                            json_string(texts[i]));
        tally_plan *plan = tally_plan_new(shop);
        tally_error err;
        if (tally_decode_transaction(plan, body, 10, &err))
            fail_msg("refused: %s", err.message);
        json_decref(body);
        const tally_value *v = &must_set(&plan->steps[1], shop_col("post", "title"))->value;
        assert_int_equal(v->kind, TALLY_VALUE_TEXT);
        assert_int_equal(v->u.text.len, strlen(texts[i]));
        assert_memory_equal(v->u.text.ptr, texts[i], strlen(texts[i]));
        const tally_value *fv = &plan->steps[2].where->value;
        assert_int_equal(fv->kind, TALLY_VALUE_TEXT);
        assert_memory_equal(fv->u.text.ptr, texts[i], strlen(texts[i]));
        tally_plan_free(plan);
    }
    /* An object with "$ref" and more is no reference either: a string field refuses an object. */
    refused("{'steps': [{'as': 'p', 'create': 'post', 'data': {'title': 'T'}},"
            " {'create': 'post', 'data': {'title': {'$ref': 'p.title', 'x': 1}}}]}",
            TALLY_VALIDATION, 1, "", "data.title", NULL);
}

/* ---- expect ------------------------------------------------------------------------------ */

static void test_expect(void **state)
{
    (void)state;
    tally_plan *plan = decode_ok(
        "{'steps': ["
        " {'as': 'p', 'create': 'post', 'data': {'title': 'T'}, 'expect': {'title': {'equals': 'T'}}},"
        " {'as': 'm', 'updateMany': 'course', 'filter': {}, 'set': {'name': 'x'}, 'expect': {'count': {'equals': 1}}},"
        " {'deleteMany': 'image', 'filter': {}, 'expect': {'NOT': {'count': {'greaterThan': {'$ref': 'm.count'}}}}},"
        " {'update': 'product', 'id': 1, 'data': {'_atomics': {'stock': {'decrement': 1}}},"
        "  'expect': {'stock': {'greaterThanOrEqual': 10}}},"
        " {'get': 'post', 'id': {'$ref': 'p.id'}}"
        "]}");
    const tally_txn_step *t = plan->txn;
    assert_non_null(t[0].expect);
    assert_false(t[0].expect_on_count);
    assert_int_equal(t[0].expect->column, shop_col("post", "title"));
    /* On a count: {"count": n} is column 3 of a pseudo-record. */
    assert_true(t[1].expect_on_count);
    assert_int_equal(t[1].expect->kind, TALLY_FILTER_CMP);
    assert_int_equal(t[1].expect->column, TALLY_COL_FIRST_FIELD);
    assert_int_equal(t[1].expect->op, TALLY_CMP_EQ);
    assert_int_equal(t[1].expect->value.u.i, 1);
    assert_true(t[2].expect_on_count);
    assert_int_equal(t[2].expect->kind, TALLY_FILTER_NOT);
    assert_ref(&t[2].expect->children[0].value, 1, TALLY_REF_COUNT);
    assert_false(t[3].expect_on_count);
    assert_int_equal(t[3].expect->column, shop_col("product", "stock"));
    assert_null(t[4].expect);
    tally_plan_free(plan);

    refused("{'steps': [{'find': 'post', 'expect': {}}]}", TALLY_BAD_REQUEST, 0, "", "expect", "record or a count");
    refused("{'steps': [{'as': 'd', 'delete': 'post', 'id': 1, 'expect': {}}]}", TALLY_BAD_REQUEST, 0, "d", "expect",
            NULL);
    refused("{'steps': [{'updateMany': 'course', 'filter': {}, 'set': {'name': 'x'}, 'expect': {'counts': {'equals': 1}}}]}",
            TALLY_BAD_REQUEST, 0, "", "expect.counts", "'counts'");
    refused("{'steps': [{'updateMany': 'course', 'filter': {}, 'set': {'name': 'x'}, 'expect': {'count': {'equals': 'x'}}}]}",
            TALLY_BAD_REQUEST, 0, "", "expect.count.equals", NULL);
    refused("{'steps': [{'create': 'post', 'data': {'title': 'T'}, 'expect': {'count': {'equals': 1}}}]}",
            TALLY_BAD_REQUEST, 0, "", "expect.count", NULL);
    refused("{'steps': [{'create': 'post', 'data': {'title': 'T'}, 'expect': 5}]}", TALLY_BAD_REQUEST, 0, "", "expect",
            NULL);
}

/* ---- the limit --------------------------------------------------------------------------- */

/* {"steps": [n gets]} */
static json_t *gets(int n)
{
    json_t *steps = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(steps, json_pack("{s:s, s:i}", "get", "customer", "id", i + 1));
    return json_pack("{s:o}", "steps", steps);
}

static void test_max_steps(void **state)
{
    (void)state;
    static const struct {
        int n, max;
        bool ok;
    } cases[] = {{1, 1, true}, {2, 1, false}, {3, 3, true}, {4, 3, false},
                 {TALLY_TXN_DEFAULT_MAX_STEPS, TALLY_TXN_DEFAULT_MAX_STEPS, true},
                 {TALLY_TXN_DEFAULT_MAX_STEPS + 1, TALLY_TXN_DEFAULT_MAX_STEPS, false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *body = gets(cases[i].n);
        tally_plan *plan = tally_plan_new(shop);
        tally_error err;
        tally_error_clear(&err);
        int rc = tally_decode_transaction(plan, body, cases[i].max, &err);
        json_decref(body);
        if (cases[i].ok) {
            if (rc)
                fail_msg("%d steps refused at max %d: %s", cases[i].n, cases[i].max, err.message);
            assert_int_equal(plan->ntxn, cases[i].n);
            assert_int_equal(plan->nsteps, cases[i].n);
            assert_int_equal(plan->txn[cases[i].n - 1].answer, cases[i].n - 1);
        } else {
            assert_int_equal(rc, -TALLY_BAD_REQUEST);
            assert_string_equal(err.path, "steps");
            assert_int_equal(err.step, -1);
            char want[64];
            snprintf(want, sizeof want, "at most %d steps", cases[i].max);
            assert_non_null(strstr(err.message, want));
            assert_int_equal(plan->nsteps, 0); /* refused before any step is decoded */
        }
        tally_plan_free(plan);
    }
}

/* ---- run on a store ------------------------------------------------------------------------- */

static char g_dir[PATH_MAX];

static tally_store *open_store(void)
{
    if (make_temp_dir(g_dir, sizeof g_dir, "tally-txn-"))
        fail_msg("mkdtemp");
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/tally.db", g_dir);
    tally_store_options so = {.role = TALLY_STORE_WRITER};
    tally_store *st = NULL;
    tally_error err;
    if (tally_store_open(path, shop, &so, &st, &err) || tally_store_migrate(st, 0, &err))
        fail_msg("store: %s", err.message);
    return st;
}

static void close_store(tally_store *st)
{
    tally_store_close(st);
    remove_temp_dir(g_dir);
}

/* Decodes and runs a transaction in its own SQLite transaction (rolled back on failure). */
static int run_txn(tally_store *st, const char *sq, tally_plan **out, tally_error *err)
{
    tally_plan *plan = decode_ok(sq);
    plan->now_ms = 1706702400000LL;
    tally_error_clear(err);
    assert_int_equal(tally_store_begin(st, err), 0);
    int rc = tally_run_plan(st, plan, err);
    if (rc == 0)
        assert_int_equal(tally_store_commit(st, err), 0);
    else
        tally_store_rollback(st);
    *out = plan;
    return rc;
}

static void test_run(void **state)
{
    (void)state;
    tally_store *st = open_store();
    tally_plan *plan;
    tally_error err;
    /* References take the earlier steps' values when the steps run; expect holds. */
    int rc = run_txn(st,
                     "{'steps': ["
                     " {'as': 'p', 'create': 'post', 'data': {'title': 'T'}},"
                     " {'as': 'i', 'create': 'image', 'data': {'url': {'$ref': 'p.title'}, 'post': {'_link': {'$ref': 'p.id'}}}},"
                     " {'get': 'image', 'id': {'$ref': 'i.id'}, 'expect': {'post': {'equals': {'$ref': 'p.id'}}, 'url': {'equals': 'T'}}},"
                     " {'as': 'm', 'updateMany': 'image', 'filter': {'post': {'equals': {'$ref': 'p.id'}}}, 'set': {'url': 'v'},"
                     "  'expect': {'count': {'equals': 1}}},"
                     " {'create': 'course', 'data': {'slotsTaken': {'$ref': 'm.count'}}}"
                     "]}",
                     &plan, &err);
    if (rc)
        fail_msg("run: %s (step %d)", err.message, err.step);
    const tally_record *img = &plan->results[plan->txn[2].answer].record;
    assert_int_equal(img->cols[shop_col("image", "post")].u.i, plan->results[0].record.cols[TALLY_COL_ID].u.i);
    assert_int_equal(img->cols[shop_col("image", "url")].u.text.len, 1);
    assert_int_equal(plan->results[3].count, 1);
    assert_int_equal(plan->results[4].record.cols[shop_col("course", "slotsTaken")].u.i, 1);
    tally_plan_free(plan);

    /* A failed expect on a count names its step and "as"; nothing of it stays. */
    rc = run_txn(st,
                 "{'steps': [{'as': 'c', 'create': 'course', 'data': {}},"
                 " {'as': 'm', 'updateMany': 'course', 'filter': {}, '_atomics': {'slotsTaken': {'increment': 1}},"
                 "  'expect': {'count': {'equals': 1}}}]}",
                 &plan, &err);
    assert_int_equal(rc, -TALLY_EXPECTATION_FAILED);
    assert_int_equal(err.step, 1);
    assert_string_equal(err.step_as, "m");
    assert_string_equal(err.path, "expect");
    assert_int_equal(plan->failed_step, 1);
    assert_int_equal(plan->results[1].count, 2); /* both courses matched */
    tally_plan_free(plan);
    rc = run_txn(st, "{'steps': [{'find': 'course'}]}", &plan, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(plan->results[0].nrecords, 1);
    tally_plan_free(plan);

    /* Upserts anywhere in a transaction: the first inserts, the second updates the same record. */
    rc = run_txn(st,
                 "{'steps': [{'find': 'rateLimit'},"
                 " {'as': 'a', 'upsert': 'rateLimit', 'on': ['userId', 'window'], 'create': {'userId': 'u', 'window': 1},"
                 "  'update': {'_atomics': {'requests': {'increment': 1}}}},"
                 " {'as': 'b', 'upsert': 'rateLimit', 'on': ['userId', 'window'], 'create': {'userId': 'u', 'window': 1},"
                 "  'update': {'_atomics': {'requests': {'increment': 1}}}, 'expect': {'id': {'equals': {'$ref': 'a.id'}}}}]}",
                 &plan, &err);
    if (rc)
        fail_msg("upserts: %s (step %d)", err.message, err.step);
    assert_true(plan->results[1].created);
    assert_false(plan->results[2].created);
    assert_int_equal(plan->results[1].record.cols[shop_col("rateLimit", "requests")].u.i, 0);
    assert_int_equal(plan->results[2].record.cols[shop_col("rateLimit", "requests")].u.i, 1);
    tally_plan_free(plan);

    /* A link through a reference to a count, to a record that does not exist. */
    rc = run_txn(st, "{'steps': [{'as': 'm', 'deleteMany': 'post', 'filter': {'title': {'equals': 'none'}}},"
                     " {'create': 'image', 'data': {'url': 'u', 'post': {'$ref': 'm.count'}}}]}",
                 &plan, &err);
    assert_int_equal(rc, -TALLY_VALIDATION);
    assert_int_equal(err.step, 1);
    assert_string_equal(err.path, "data.post");
    assert_non_null(strstr(err.message, "no post with id 0"));
    tally_plan_free(plan);

    /* Deleting through a reference what another record still links to: the message names the id. */
    rc = run_txn(st, "{'steps': [{'as': 'e', 'create': 'event', 'data': {}},"
                     " {'create': 'ticket', 'data': {'event': {'$ref': 'e.id'}}},"
                     " {'as': 'gone', 'delete': 'event', 'id': {'$ref': 'e.id'}}]}",
                 &plan, &err);
    assert_int_equal(rc, -TALLY_CONFLICT);
    assert_int_equal(err.step, 2);
    assert_string_equal(err.step_as, "gone");
    char want[64];
    snprintf(want, sizeof want, "event %lld is still linked from 1 ticket",
             (long long)plan->results[0].record.cols[TALLY_COL_ID].u.i);
    if (!strstr(err.message, want))
        fail_msg("message lacks '%s': %s", want, err.message);
    tally_plan_free(plan);

    /* A reference to an unset value used as an id finds nothing. */
    rc = run_txn(st, "{'steps': [{'as': 'i', 'create': 'image', 'data': {'url': 'x'}}, {'get': 'post', 'id': {'$ref': 'i.post'}}]}",
                 &plan, &err);
    assert_int_equal(rc, -TALLY_NOT_FOUND);
    assert_int_equal(err.step, 1);
    tally_plan_free(plan);
    close_store(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_forms),
        cmocka_unit_test(test_step_shapes_refused),
        cmocka_unit_test(test_as_names),
        cmocka_unit_test(test_refs_resolve),
        cmocka_unit_test(test_refs_refused),
        cmocka_unit_test(test_dollar_strings_stay_strings),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_max_steps),
        cmocka_unit_test(test_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
