/* Unit tests for api/decode, updates (tally_decode_patch) against the shop
 * schema and a small schema with every scalar type: plain sets (no defaults,
 * required fields not set to null, server-owned, unknown and hasMany fields
 * refused, _where guards), nested creates, and _atomics (single, lists in
 * order, {} for 1, decrement, float amounts, non-numeric fields,
 * set-and-atomic, id, malformed shapes).  Creates are in test_decode.c; the
 * shared helpers in decode_util.h.  Every plan is freed, so ASan checks the
 * arena too. */
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

#include "api/decode.h"
#include "api/filter.h"
#include "core/schema.h"
#include "decode_util.h"

/* ---- update ------------------------------------------------------------------ */

static void test_update_sets(void **state)
{
    (void)state;
    const tally_model *c = M(shop, "customer");
    outcome o = update(shop, "customer", 9, "{'name': 'B', 'email': null}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->nsteps, 1);
    assert_true(o.plan->writes);
    const tally_step *s = &o.plan->steps[0];
    assert_int_equal(s->op, TALLY_OP_UPDATE);
    assert_ptr_equal(s->model, c);
    assert_int_equal(s->id.kind, TALLY_VALUE_INT);
    assert_int_equal(s->id.u.i, 9);
    assert_int_equal(s->nsets, 2); /* no defaults on update */
    assert_int_equal(s->natomics, 0);
    assert_text(&must_set(s, col(c, "name"))->value, "B");
    assert_int_equal(must_set(s, col(c, "email"))->value.kind, TALLY_VALUE_NULL);
    done(&o);

    /* An empty patch is an update that only touches updatedAt. */
    o = update(shop, "customer", 1, "{}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->steps[0].nsets, 0);
    assert_int_equal(o.plan->steps[0].natomics, 0);
    done(&o);

    /* Required fields may be left out of a patch, not set to null. */
    o = update(shop, "customer", 1, "{'name': null}");
    expect_fail(&o, TALLY_VALIDATION, "name", "required");
    done(&o);
    o = update(shop, "customer", 1, "{'orderCount': 'many'}");
    expect_fail(&o, TALLY_VALIDATION, "orderCount", NULL);
    done(&o);
    o = update(shop, "customer", 1, "{'nope': 1}");
    expect_fail(&o, TALLY_BAD_REQUEST, "nope", "'nope'");
    done(&o);
    o = update(shop, "customer", 1, "{'id': 2}");
    expect_fail(&o, TALLY_BAD_REQUEST, "id", "set by the server");
    done(&o);
    o = update(shop, "customer", 1, "{'updatedAt': '2024-01-31T12:00:00Z'}");
    expect_fail(&o, TALLY_BAD_REQUEST, "updatedAt", NULL);
    done(&o);
    /* Keys starting with '_' other than _atomics and _where are refused;
     * _where must be a filter object. */
    o = update(shop, "customer", 1, "{'_wehre': {}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_wehre", "_where");
    done(&o);
    o = update(shop, "customer", 1, "{'_where': 5}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_where", "filter");
    done(&o);
    o = update(shop, "customer", 1, "{'_where': {'nmae': {'equals': 'x'}}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_where.nmae", "'nmae'");
    done(&o);
    o = update(shop, "customer", 1, "{'name': 'x', '_where': {'orderCount': {'greaterThan': 2}}}");
    expect_ok(&o, 0);
    assert_non_null(o.plan->steps[0].where);
    assert_int_equal(o.plan->steps[0].where->kind, TALLY_FILTER_CMP);
    assert_int_equal(o.plan->steps[0].where->op, TALLY_CMP_GT);
    done(&o);
    o = update(shop, "customer", 1, "{'name': 'x'}");
    expect_ok(&o, 0);
    assert_null(o.plan->steps[0].where); /* no guard: none in the plan */
    done(&o);
    o = update(shop, "post", 1, "{'images': []}");
    expect_fail(&o, TALLY_BAD_REQUEST, "images", "hasMany");
    done(&o);
    o = update(shop, "customer", 1, "[{'name': 'x'}]");
    expect_fail(&o, TALLY_BAD_REQUEST, "", "JSON object");
    done(&o);
    o = update(shop, "image", 1, "{'url': 'x', 'post': {'_link': 4}}");
    expect_ok(&o, 0);
    assert_int_equal(must_set(&o.plan->steps[0], col(M(shop, "image"), "post"))->value.u.i, 4);
    done(&o);
}

static void test_update_nested_create(void **state)
{
    (void)state;
    const tally_model *t = M(shop, "ticket"), *e = M(shop, "event");
    outcome o = update(shop, "ticket", 12, "{'event': {'create': {'soldTicketCount': 2}}}");
    expect_ok(&o, 1);
    assert_int_equal(o.plan->nsteps, 2);
    assert_int_equal(o.plan->steps[0].op, TALLY_OP_CREATE);
    assert_ptr_equal(o.plan->steps[0].model, e);
    assert_int_equal(o.plan->steps[1].op, TALLY_OP_UPDATE);
    assert_int_equal(o.plan->steps[1].id.u.i, 12);
    assert_ref(&must_set(&o.plan->steps[1], col(t, "event"))->value, 0);
    done(&o);
    o = update(shop, "ticket", 12, "{'event': {'create': {'soldTicketCount': 2.5}}}");
    expect_fail(&o, TALLY_VALIDATION, "event.soldTicketCount", NULL);
    done(&o);
}

static void test_atomics_single(void **state)
{
    (void)state;
    const tally_model *c = M(shop, "customer");
    outcome o = update(shop, "customer", 3, "{'_atomics': {'orderCount': {'increment': 5}}}");
    expect_ok(&o, 0);
    const tally_step *s = &o.plan->steps[0];
    assert_int_equal(s->nsets, 0);
    assert_int_equal(s->natomics, 1);
    assert_int_equal(s->atomics[0].column, col(c, "orderCount"));
    assert_int_equal(s->atomics[0].kind, TALLY_ATOMIC_INCREMENT);
    assert_int_equal(s->atomics[0].amount.kind, TALLY_VALUE_INT);
    assert_int_equal(s->atomics[0].amount.u.i, 5);
    done(&o);

    o = update(shop, "customer", 3, "{'_atomics': {'orderCount': {'decrement': 9223372036854775807}}}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->steps[0].atomics[0].kind, TALLY_ATOMIC_DECREMENT);
    assert_int_equal(o.plan->steps[0].atomics[0].amount.u.i, INT64_MAX);
    done(&o);

    /* Negative and zero amounts are amounts; the database judges the result. */
    o = update(shop, "customer", 3, "{'_atomics': {'orderCount': {'increment': -2}}}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->steps[0].atomics[0].amount.u.i, -2);
    done(&o);
    o = update(shop, "customer", 3, "{'_atomics': {'orderCount': {'decrement': 0}}}");
    expect_ok(&o, 0);
    done(&o);
    /* An empty _atomics changes nothing. */
    o = update(shop, "customer", 3, "{'_atomics': {}}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->steps[0].natomics, 0);
    done(&o);
}

static void test_atomics_default_one(void **state)
{
    (void)state;
    outcome o = update(shop, "product", 1, "{'_atomics': {'stock': {'increment': {}}}}");
    expect_ok(&o, 0);
    const tally_step *s = &o.plan->steps[0];
    assert_int_equal(s->natomics, 1);
    assert_int_equal(s->atomics[0].kind, TALLY_ATOMIC_INCREMENT);
    assert_int_equal(s->atomics[0].amount.kind, TALLY_VALUE_INT);
    assert_int_equal(s->atomics[0].amount.u.i, 1);
    done(&o);
    o = update(shop, "product", 1, "{'_atomics': {'stock': {'decrement': {}}}}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->steps[0].atomics[0].kind, TALLY_ATOMIC_DECREMENT);
    assert_int_equal(o.plan->steps[0].atomics[0].amount.u.i, 1);
    done(&o);
    /* A float field's {} is 1 as well. */
    o = update(kinds, "thing", 1, "{'_atomics': {'temp': {'increment': {}}}}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->steps[0].atomics[0].amount.kind, TALLY_VALUE_INT);
    assert_int_equal(o.plan->steps[0].atomics[0].amount.u.i, 1);
    done(&o);
}

static void test_atomics_list_in_order(void **state)
{
    (void)state;
    const tally_model *p = M(shop, "product");
    outcome o = update(shop, "product", 1,
                       "{'sku': 'X', '_atomics': {'stock': [{'increment': 5}, {'decrement': 2}, {'increment': {}},"
                       " {'decrement': 7}]}}");
    expect_ok(&o, 0);
    const tally_step *s = &o.plan->steps[0];
    assert_int_equal(s->nsets, 1);
    assert_int_equal(s->natomics, 4);
    static const struct {
        tally_atomic_kind kind;
        int64_t amount;
    } want[] = {{TALLY_ATOMIC_INCREMENT, 5}, {TALLY_ATOMIC_DECREMENT, 2}, {TALLY_ATOMIC_INCREMENT, 1},
                {TALLY_ATOMIC_DECREMENT, 7}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s->atomics[i].column, col(p, "stock"));
        assert_int_equal(s->atomics[i].kind, want[i].kind);
        assert_int_equal(s->atomics[i].amount.u.i, want[i].amount);
    }
    done(&o);

    /* Several fields: each field's operations adjacent and in order. */
    const tally_model *e = M(shop, "event");
    o = update(shop, "event", 1,
               "{'_atomics': {'soldTicketCount': {'increment': 1}, 'availableTicketCount': [{'decrement': 1},"
               " {'decrement': 3}]}}");
    expect_ok(&o, 0);
    s = &o.plan->steps[0];
    assert_int_equal(s->natomics, 3);
    assert_int_equal(s->atomics[0].column, col(e, "soldTicketCount"));
    assert_int_equal(s->atomics[1].column, col(e, "availableTicketCount"));
    assert_int_equal(s->atomics[2].column, col(e, "availableTicketCount"));
    assert_int_equal(s->atomics[1].amount.u.i, 1);
    assert_int_equal(s->atomics[2].amount.u.i, 3);
    done(&o);
}

static void test_atomics_float(void **state)
{
    (void)state;
    /* A fraction is an amount for a float field ... */
    outcome o = update(kinds, "thing", 1, "{'_atomics': {'temp': [{'increment': 0.25}, {'decrement': 2}]}}");
    expect_ok(&o, 0);
    const tally_step *s = &o.plan->steps[0];
    assert_int_equal(s->atomics[0].amount.kind, TALLY_VALUE_FLOAT);
    assert_true(s->atomics[0].amount.u.f == 0.25);
    assert_int_equal(s->atomics[1].amount.kind, TALLY_VALUE_INT);
    assert_int_equal(s->atomics[1].amount.u.i, 2);
    done(&o);
    /* ... never for an integer field (400 or 422 both fit README.md, "Errors"; the path names the field). */
    o = update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1.5}}}");
    assert_true(o.rc == -TALLY_BAD_REQUEST || o.rc == -TALLY_VALIDATION);
    assert_string_equal(o.err.path, "_atomics.orderCount");
    assert_non_null(strstr(o.err.message, "whole number"));
    done(&o);
    o = update(shop, "customer", 1, "{'_atomics': {'orderCount': [{'increment': 1}, {'decrement': 0.5}]}}");
    assert_true(o.rc == -TALLY_BAD_REQUEST || o.rc == -TALLY_VALIDATION);
    assert_string_equal(o.err.path, "_atomics.orderCount[1]");
    done(&o);
}

static void test_atomics_wrong_field(void **state)
{
    (void)state;
    outcome o = update(shop, "customer", 1, "{'_atomics': {'name': {'increment': 1}}}");
    expect_fail(&o, TALLY_VALIDATION, "_atomics.name", "string");
    done(&o);
    o = update(kinds, "thing", 1, "{'_atomics': {'on': {'increment': 1}}}");
    expect_fail(&o, TALLY_VALIDATION, "_atomics.on", "boolean");
    done(&o);
    o = update(kinds, "thing", 1, "{'_atomics': {'when': {'increment': 1}}}");
    expect_fail(&o, TALLY_VALIDATION, "_atomics.when", NULL);
    done(&o);
    o = update(shop, "ticket", 1, "{'_atomics': {'event': {'increment': 1}}}");
    expect_fail(&o, TALLY_VALIDATION, "_atomics.event", NULL);
    done(&o);
    o = update(shop, "post", 1, "{'_atomics': {'images': {'increment': 1}}}");
    expect_fail(&o, TALLY_VALIDATION, "_atomics.images", NULL);
    done(&o);
    o = update(shop, "customer", 1, "{'_atomics': {'nope': {'increment': 1}}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_atomics.nope", "'nope'");
    done(&o);
    o = update(shop, "customer", 1, "{'_atomics': {'id': {'increment': 1}}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_atomics.id", NULL);
    done(&o);
    o = update(shop, "customer", 1, "{'_atomics': {'createdAt': {'increment': 1}}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_atomics.createdAt", NULL);
    done(&o);
}

static void test_atomics_set_and_changed(void **state)
{
    (void)state;
    outcome o = update(shop, "customer", 1, "{'orderCount': 1, '_atomics': {'orderCount': {'increment': 1}}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_atomics.orderCount", "both set and changed");
    done(&o);
    /* The order of the keys does not matter. */
    o = update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}, 'orderCount': 1}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_atomics.orderCount", "both set and changed");
    done(&o);
    /* Different fields are fine together. */
    o = update(shop, "customer", 1, "{'name': 'x', '_atomics': {'orderCount': {'increment': 1}}}");
    expect_ok(&o, 0);
    done(&o);
}

static void test_atomics_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *body, *path;
    } cases[] = {
        {"{'_atomics': 5}", "_atomics"},
        {"{'_atomics': []}", "_atomics"},
        {"{'_atomics': null}", "_atomics"},
        {"{'_atomics': {'orderCount': 5}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': {'multiply': 2}}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': {}}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': {'increment': 1, 'decrement': 1}}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': {'increment': '5'}}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': {'increment': true}}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': {'increment': null}}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': {'increment': [1]}}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': {'increment': {'by': 1}}}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': []}}", "_atomics.orderCount"},
        {"{'_atomics': {'orderCount': [5]}}", "_atomics.orderCount[0]"},
        {"{'_atomics': {'orderCount': [{'increment': 1}, {'increment': 'x'}]}}", "_atomics.orderCount[1]"},
        {"{'_atomics': {'orderCount': [{'increment': 1}, [{'increment': 1}]]}}", "_atomics.orderCount[1]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outcome o = update(shop, "customer", 1, cases[i].body);
        if (o.rc >= 0)
            fail_msg("accepted: %s", cases[i].body);
        expect_fail(&o, TALLY_BAD_REQUEST, cases[i].path, NULL);
        done(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_sets),
        cmocka_unit_test(test_update_nested_create),
        cmocka_unit_test(test_atomics_single),
        cmocka_unit_test(test_atomics_default_one),
        cmocka_unit_test(test_atomics_list_in_order),
        cmocka_unit_test(test_atomics_float),
        cmocka_unit_test(test_atomics_wrong_field),
        cmocka_unit_test(test_atomics_set_and_changed),
        cmocka_unit_test(test_atomics_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
