/* Unit tests for exec/route: requests are routed by the first key they
 * touch (the same row, lock or limit key always to the same lane; ids spread
 * evenly), and requests without a key before they run (creates, filters, a
 * $ref id) have none, so the engine takes the next lane in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/decode.h"
#include "api/locks.h"
#include "api/transaction.h"
#include "exec/route.h"
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

/* The key of a PATCH of model/id with body (single-quoted JSON); *has whether there is one. */
static uint64_t patch_key(const char *model, int64_t id, const char *body, bool *has)
{
    tally_plan *plan = tally_plan_new(shop);
    tally_error err;
    json_t *j = J(body);
    assert_int_equal(tally_decode_patch(plan, M(shop, model), tally_value_int(id), j, &err), 0);
    json_decref(j);
    uint64_t h = 0;
    *has = tally_route_key(plan, &h);
    tally_plan_free(plan);
    return h;
}

static uint64_t key_of(tally_plan *plan)
{
    uint64_t h = 0;
    assert_true(tally_route_key(plan, &h));
    tally_plan_free(plan);
    return h;
}

static bool has_key(tally_plan *plan)
{
    uint64_t h;
    bool has = tally_route_key(plan, &h);
    tally_plan_free(plan);
    return has;
}

static tally_plan *decoded(int (*decode)(tally_plan *, const tally_model *, json_t *, tally_error *), const char *model,
                           const char *body)
{
    tally_plan *plan = tally_plan_new(shop);
    tally_error err;
    json_t *j = J(body);
    assert_int_equal(decode(plan, M(shop, model), j, &err), 0);
    json_decref(j);
    return plan;
}

static tally_plan *transaction(const char *body)
{
    tally_plan *plan = tally_plan_new(shop);
    tally_error err;
    json_t *j = J(body);
    int rc = tally_decode_transaction(plan, j, 100, &err);
    if (rc)
        fail_msg("transaction refused: %s", err.message);
    json_decref(j);
    return plan;
}

static void same_row_same_key(void **state)
{
    (void)state;
    bool has;
    uint64_t a = patch_key("product", 7, "{'_atomics': {'stock': {'increment': 1}}}", &has);
    assert_true(has);
    /* Another change of the same row, with a guard: the same key. */
    uint64_t b = patch_key("product", 7, "{'stock': 3, '_where': {'stock': {'greaterThan': 0}}}", &has);
    assert_true(has);
    assert_true(a == b);
    /* Another row, or the same id in another model: another key. */
    assert_true(a != patch_key("product", 8, "{'stock': 1}", &has));
    assert_true(a != patch_key("customer", 7, "{'orderCount': 1}", &has));
}

static void ids_spread_evenly(void **state)
{
    (void)state;
    int lanes[4] = {0};
    bool has;
    for (int64_t id = 1; id <= 4000; id++)
        lanes[patch_key("product", id, "{'stock': 1}", &has) % 4]++;
    for (int i = 0; i < 4; i++)
        if (lanes[i] < 850 || lanes[i] > 1150)
            fail_msg("lane %d got %d of 4000 consecutive ids", i, lanes[i]);
}

static void upserts_by_their_on_values(void **state)
{
    (void)state;
    const char *ada = "{'on': ['userId', 'window'], 'create': {'userId': 'ada', 'window': 5, 'requests': 1}, "
                      "'update': {'_atomics': {'requests': {'increment': 1}}}}";
    const char *bob = "{'on': ['userId', 'window'], 'create': {'userId': 'bob', 'window': 5, 'requests': 1}, "
                      "'update': {'_atomics': {'requests': {'increment': 1}}}}";
    uint64_t a1 = key_of(decoded(tally_decode_upsert, "rateLimit", ada));
    uint64_t a2 = key_of(decoded(tally_decode_upsert, "rateLimit", ada));
    uint64_t b = key_of(decoded(tally_decode_upsert, "rateLimit", bob));
    assert_true(a1 == a2);
    assert_true(a1 != b);
}

static void locks_by_name(void **state)
{
    (void)state;
    tally_error err;
    tally_plan *acq = tally_plan_new(shop), *rel = tally_plan_new(shop), *other = tally_plan_new(shop);
    json_t *a = J("{'ttlMs': 1000}"), *r = J("{'token': '0123456789abcdef0123456789abcdef'}");
    assert_int_equal(tally_decode_lock(acq, "job", 3, "acquire", a, &err), 0);
    assert_int_equal(tally_decode_lock(rel, "job", 3, "release", r, &err), 0);
    assert_int_equal(tally_decode_lock(other, "jobs", 4, "acquire", a, &err), 0);
    json_decref(a);
    json_decref(r);
    uint64_t ka = key_of(acq), kr = key_of(rel), ko = key_of(other);
    assert_true(ka == kr); /* a release reaches the lane where the name's waiters wait */
    assert_true(ka != ko);
}

static void no_key_before_running(void **state)
{
    (void)state;
    /* A create has no key (it makes a new one): the next lane in turn. */
    tally_plan *c = tally_plan_new(shop);
    tally_error err;
    json_t *j = J("{'sku': 'new', 'stock': 1}");
    assert_int_equal(tally_decode_create(c, M(shop, "product"), j, "", &err), 0);
    json_decref(j);
    assert_false(has_key(c));
    /* A bulk change by filter touches rows no one can name in advance. */
    assert_false(has_key(decoded(tally_decode_update_many, "product",
                                 "{'filter': {'stock': {'lessThan': 3}}, '_atomics': {'stock': {'increment': 1}}}")));
    /* A transaction whose first step's id is a $ref to nothing earlier cannot be decoded; one that creates first has no key. */
    assert_false(has_key(transaction("{'steps': [{'as': 'p', 'create': 'post', 'data': {'title': 't'}}, "
                                     "{'update': 'post', 'id': {'$ref': 'p.id'}, 'data': {'title': 'u'}}]}")));
}

static void transaction_by_first_step(void **state)
{
    (void)state;
    bool has;
    uint64_t row = patch_key("product", 5, "{'stock': 1}", &has);
    uint64_t t = key_of(transaction("{'steps': [{'update': 'product', 'id': 5, 'data': {'_atomics': {'stock': "
                                    "{'decrement': 2}}}}, {'create': 'ticket', 'data': {'event': {'_link': 1}}}]}"));
    assert_true(t == row);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_row_same_key),
        cmocka_unit_test(ids_spread_evenly),
        cmocka_unit_test(upserts_by_their_on_values),
        cmocka_unit_test(locks_by_name),
        cmocka_unit_test(no_key_before_running),
        cmocka_unit_test(transaction_by_first_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
