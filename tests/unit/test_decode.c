/* Unit tests for api/decode, creates: request JSON to plan steps against the
 * shop schema (plus a small schema with every scalar type).  Defaults filled,
 * required fields missing or null (VALIDATION with the field's path),
 * unknown and server-owned fields (BAD_REQUEST), wrong types, maxLength
 * counted in code points, NUL in strings, links, nested belongsTo creates (a
 * step first, then the record with a REF to it), hasMany children (the parent
 * first, then each child with a REF to it, error paths like images[2].url),
 * and nested steps' paths owned by the plan, not by the request JSON.
 * Updates and _atomics are in test_decode_update.c, ids and paging cursors
 * in test_decode_cursor.c; the shared helpers in decode_util.h.  Every plan
 * is freed, so ASan checks the arena too.  A known bug is a skipped test
 * with a BUG comment. */
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
#include "core/schema.h"
#include "decode_util.h"

/* ---- create ------------------------------------------------------------------ */

static void test_create_defaults(void **state)
{
    (void)state;
    outcome o = create(shop, "customer", "{'name': 'Ada'}");
    expect_ok(&o, 0);
    const tally_model *c = M(shop, "customer");
    assert_int_equal(o.plan->nsteps, 1);
    assert_true(o.plan->writes);
    const tally_step *s = &o.plan->steps[0];
    assert_int_equal(s->op, TALLY_OP_CREATE);
    assert_ptr_equal(s->model, c);
    assert_string_equal(s->path, "");
    assert_int_equal(s->nsets, 2); /* name given, orderCount defaulted; email has neither */
    assert_text(&must_set(s, col(c, "name"))->value, "Ada");
    const tally_assign *oc = must_set(s, col(c, "orderCount"));
    assert_int_equal(oc->value.kind, TALLY_VALUE_INT);
    assert_int_equal(oc->value.u.i, 0);
    assert_null(find_set(s, col(c, "email")));
    assert_null(find_set(s, TALLY_COL_ID));
    assert_null(find_set(s, TALLY_COL_CREATED_AT));
    done(&o);

    /* A given value wins over the default; every default of course is filled. */
    o = create(shop, "course", "{'slotsTaken': 3}");
    expect_ok(&o, 0);
    const tally_model *course = M(shop, "course");
    s = &o.plan->steps[0];
    assert_int_equal(must_set(s, col(course, "slotsTaken"))->value.u.i, 3);
    assert_int_equal(must_set(s, col(course, "maxStudents"))->value.u.i, 30);
    assert_null(find_set(s, col(course, "name")));
    done(&o);

    /* Defaults of other types. */
    o = create(kinds, "thing", "{}");
    expect_ok(&o, 0);
    const tally_model *t = M(kinds, "thing");
    s = &o.plan->steps[0];
    assert_int_equal(s->nsets, 2);
    assert_int_equal(must_set(s, col(t, "on"))->value.kind, TALLY_VALUE_INT);
    assert_int_equal(must_set(s, col(t, "on"))->value.u.i, 0);
    assert_text(&must_set(s, col(t, "label"))->value, "none");
    done(&o);
}

static void test_create_every_type(void **state)
{
    (void)state;
    outcome o = create(kinds, "thing",
                       "{'on': true, 'temp': -1.25, 'when': '2024-01-31T12:00:00Z', 'meta': {'a': [1, null, 'x']},"
                       " 'label': 'hi', 'count': -9223372036854775808}");
    expect_ok(&o, 0);
    const tally_model *t = M(kinds, "thing");
    const tally_step *s = &o.plan->steps[0];
    assert_int_equal(s->nsets, 6);
    assert_int_equal(must_set(s, col(t, "on"))->value.u.i, 1);
    const tally_value *temp = &must_set(s, col(t, "temp"))->value;
    assert_int_equal(temp->kind, TALLY_VALUE_FLOAT);
    assert_true(temp->u.f == -1.25);
    const tally_value *when = &must_set(s, col(t, "when"))->value;
    assert_int_equal(when->kind, TALLY_VALUE_INT);
    assert_int_equal(when->u.i, 1706702400000LL);
    assert_text(&must_set(s, col(t, "meta"))->value, "{\"a\":[1,null,\"x\"]}");
    assert_text(&must_set(s, col(t, "label"))->value, "hi");
    assert_int_equal(must_set(s, col(t, "count"))->value.u.i, INT64_MIN);
    done(&o);

    /* An integer is a fine float; a JSON scalar is a fine json value;
     * min/max are judged by the database, not here. */
    o = create(kinds, "thing", "{'temp': 7, 'meta': 'text', 'when': '2024-01-31T13:00:00+01:00'}");
    expect_ok(&o, 0);
    s = &o.plan->steps[0];
    temp = &must_set(s, col(t, "temp"))->value;
    assert_int_equal(temp->kind, TALLY_VALUE_FLOAT);
    assert_true(temp->u.f == 7.0);
    assert_text(&must_set(s, col(t, "meta"))->value, "\"text\"");
    assert_int_equal(must_set(s, col(t, "when"))->value.u.i, 1706702400000LL);
    done(&o);

    /* null is "unset" for optional fields, whatever their type; a null json
     * field is unset too, not the text "null". */
    o = create(kinds, "thing", "{'on': null, 'temp': null, 'meta': null, 'label': null}");
    expect_ok(&o, 0);
    s = &o.plan->steps[0];
    assert_int_equal(must_set(s, col(t, "on"))->value.kind, TALLY_VALUE_NULL);
    assert_int_equal(must_set(s, col(t, "temp"))->value.kind, TALLY_VALUE_NULL);
    assert_int_equal(must_set(s, col(t, "meta"))->value.kind, TALLY_VALUE_NULL);
    assert_int_equal(must_set(s, col(t, "label"))->value.kind, TALLY_VALUE_NULL); /* given null beats the default */
    done(&o);
}

static void test_create_value_outlives_json(void **state)
{
    (void)state;
    /* Text values are copied into the plan's arena: the JSON can go. */
    tally_plan *plan = tally_plan_new(shop);
    tally_error err;
    json_t *body = json_pack("{s:s, s:s}", "name", "Grace Hopper", "email", "grace@example.com");
    assert_int_equal(tally_decode_create(plan, M(shop, "customer"), body, "", &err), 0);
    const char *before = json_string_value(json_object_get(body, "name"));
    const tally_assign *a = must_set(&plan->steps[0], 3);
    assert_ptr_not_equal(a->value.u.text.ptr, before);
    json_decref(body);
    assert_text(&a->value, "Grace Hopper");
    assert_text(&must_set(&plan->steps[0], 4)->value, "grace@example.com");
    tally_plan_free(plan);
}

static void test_create_required(void **state)
{
    (void)state;
    outcome o = create(shop, "customer", "{}");
    expect_fail(&o, TALLY_VALIDATION, "name", "name is required");
    done(&o);
    o = create(shop, "customer", "{'email': 'a@b.c', 'orderCount': 1}");
    expect_fail(&o, TALLY_VALIDATION, "name", "customer");
    done(&o);
    o = create(shop, "customer", "{'name': null}");
    expect_fail(&o, TALLY_VALIDATION, "name", "required");
    done(&o);
    o = create(shop, "ticket", "{}");
    expect_fail(&o, TALLY_VALIDATION, "event", "event is required");
    done(&o);
    o = create(shop, "ticket", "{'event': null}");
    expect_fail(&o, TALLY_VALIDATION, "event", "required");
    done(&o);
    o = create(shop, "rateLimit", "{'userId': 'u'}");
    expect_fail(&o, TALLY_VALIDATION, "window", "window");
    done(&o);
}

static void test_create_unknown_and_reserved(void **state)
{
    (void)state;
    outcome o = create(shop, "customer", "{'name': 'a', 'nmae': 'b'}");
    expect_fail(&o, TALLY_BAD_REQUEST, "nmae", "'nmae'");
    assert_non_null(strstr(o.err.message, "customer"));
    done(&o);
    o = create(shop, "customer", "{'name': 'a', 'Name': 'b'}");
    expect_fail(&o, TALLY_BAD_REQUEST, "Name", NULL);
    done(&o);
    static const char *const reserved[] = {"id", "createdAt", "updatedAt"};
    for (size_t i = 0; i < 3; i++) {
        char body[128];
        snprintf(body, sizeof body, "{'name': 'a', '%s': 1}", reserved[i]);
        o = create(shop, "customer", body);
        expect_fail(&o, TALLY_BAD_REQUEST, reserved[i], "set by the server");
        done(&o);
    }
    o = create(shop, "customer", "{'name': 'a', '_atomics': {}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_atomics", "not allowed when creating");
    done(&o);
    o = create(shop, "customer", "{'name': 'a', '_link': 1}");
    expect_fail(&o, TALLY_BAD_REQUEST, "_link", NULL);
    done(&o);
    o = create(shop, "customer", "[]");
    expect_fail(&o, TALLY_BAD_REQUEST, "", "JSON object");
    done(&o);
    o = create(shop, "customer", "'Ada'");
    expect_fail(&o, TALLY_BAD_REQUEST, "", "JSON object");
    done(&o);
}

static void test_create_wrong_types(void **state)
{
    (void)state;
    static const struct {
        const char *model, *body, *path;
    } cases[] = {
        {"customer", "{'name': 'a', 'orderCount': '5'}", "orderCount"},
        {"customer", "{'name': 'a', 'orderCount': 1.5}", "orderCount"},
        {"customer", "{'name': 'a', 'orderCount': 1.0}", "orderCount"}, /* a fraction, even a zero one */
        {"customer", "{'name': 'a', 'orderCount': true}", "orderCount"},
        {"customer", "{'name': 'a', 'orderCount': [1]}", "orderCount"},
        {"customer", "{'name': 'a', 'orderCount': {'increment': 1}}", "orderCount"},
        {"customer", "{'name': 5}", "name"},
        {"customer", "{'name': ['a']}", "name"},
        {"customer", "{'name': true}", "name"},
        {"thing", "{'on': 1}", "on"},
        {"thing", "{'on': 0}", "on"},
        {"thing", "{'on': 'true'}", "on"},
        {"thing", "{'temp': '1.5'}", "temp"},
        {"thing", "{'temp': false}", "temp"},
        {"thing", "{'when': 1706702400000}", "when"},
        {"thing", "{'when': '2024-01-31'}", "when"},
        {"thing", "{'when': '2024-01-31T12:00:00'}", "when"},
        {"thing", "{'label': {}}", "label"},
        {"ticket", "{'event': 'x'}", "event"},
        {"ticket", "{'event': 0}", "event"},
        {"ticket", "{'event': -3}", "event"},
        {"ticket", "{'event': 1.5}", "event"},
        {"ticket", "{'event': {'_link': '1'}}", "event"},
        {"ticket", "{'event': {'_link': 0}}", "event"},
        {"ticket", "{'event': {'_link': 1, 'x': 2}}", "event"},
        {"ticket", "{'event': {'create': {}, 'x': 2}}", "event"},
        {"ticket", "{'event': {}}", "event"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tally_schema *s = strcmp(cases[i].model, "thing") == 0 ? kinds : shop;
        outcome o = create(s, cases[i].model, cases[i].body);
        if (o.rc >= 0)
            fail_msg("case %zu accepted: %s", i, cases[i].body);
        expect_fail(&o, TALLY_VALIDATION, cases[i].path, cases[i].path);
        done(&o);
    }
    /* The message says what the field takes and what it got. */
    outcome o = create(shop, "customer", "{'name': 'a', 'orderCount': '5'}");
    expect_fail(&o, TALLY_VALIDATION, "orderCount", "integer");
    assert_non_null(strstr(o.err.message, "a string"));
    done(&o);
}

static void test_create_nul_in_string(void **state)
{
    (void)state;
    tally_plan *plan = tally_plan_new(shop);
    tally_error err;
    json_t *body = json_object();
    json_object_set_new(body, "name", json_stringn("a\0b", 3));
    assert_int_equal(tally_decode_create(plan, M(shop, "customer"), body, "", &err), -TALLY_VALIDATION);
    assert_string_equal(err.path, "name");
    assert_non_null(strstr(err.message, "NUL"));
    json_decref(body);
    tally_plan_free(plan);
}

/* n copies of the UTF-8 character ch as a JSON string value. */
static json_t *repeat(const char *ch, size_t n)
{
    size_t w = strlen(ch);
    char *s = malloc(n * w + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * w, ch, w);
    s[n * w] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}

static void test_create_max_length_code_points(void **state)
{
    (void)state;
    static const char *const chars[] = {"a", "\xc3\xa9" /* é */, "\xe2\x82\xac" /* € */,
                                        "\xf0\x9f\x98\x80" /* 😀 */};
    const tally_model *img = M(shop, "image");
    for (size_t c = 0; c < 4; c++) {
        for (size_t n = 2047; n <= 2049; n++) {
            tally_plan *plan = tally_plan_new(shop);
            tally_error err;
            json_t *body = json_object();
            json_object_set_new(body, "url", repeat(chars[c], n));
            int rc = tally_decode_create(plan, img, body, "", &err);
            if (n <= 2048) {
                if (rc != 0)
                    fail_msg("%zu × %zu-byte chars refused: %s", n, strlen(chars[c]), err.message);
                const tally_value *v = &must_set(&plan->steps[0], col(img, "url"))->value;
                assert_int_equal(v->u.text.len, n * strlen(chars[c])); /* stored as the bytes it is */
            } else {
                assert_int_equal(rc, -TALLY_VALIDATION);
                assert_string_equal(err.path, "url");
                assert_non_null(strstr(err.message, "2049"));
                assert_non_null(strstr(err.message, "2048"));
            }
            json_decref(body);
            tally_plan_free(plan);
        }
    }
    /* No maxLength: a long string is fine. */
    tally_plan *plan = tally_plan_new(shop);
    tally_error err;
    json_t *body = json_object();
    json_object_set_new(body, "name", repeat("\xe2\x82\xac", 100000));
    assert_int_equal(tally_decode_create(plan, M(shop, "customer"), body, "", &err), 0);
    json_decref(body);
    tally_plan_free(plan);
}

static void test_create_links(void **state)
{
    (void)state;
    const tally_model *t = M(shop, "ticket");
    outcome o = create(shop, "ticket", "{'event': {'_link': 5}}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->nsteps, 1);
    const tally_value *v = &must_set(&o.plan->steps[0], col(t, "event"))->value;
    assert_int_equal(v->kind, TALLY_VALUE_INT);
    assert_int_equal(v->u.i, 5);
    done(&o);
    o = create(shop, "ticket", "{'event': 9223372036854775807}");
    expect_ok(&o, 0);
    assert_int_equal(must_set(&o.plan->steps[0], col(t, "event"))->value.u.i, INT64_MAX);
    done(&o);
}

static void test_create_nested_belongs_to(void **state)
{
    (void)state;
    const tally_model *t = M(shop, "ticket"), *e = M(shop, "event");
    outcome o = create(shop, "ticket", "{'event': {'create': {'availableTicketCount': 10}}}");
    expect_ok(&o, 1); /* the ticket is step 1: the event it links to comes first */
    assert_int_equal(o.plan->nsteps, 2);
    const tally_step *s0 = &o.plan->steps[0], *s1 = &o.plan->steps[1];
    assert_int_equal(s0->op, TALLY_OP_CREATE);
    assert_ptr_equal(s0->model, e);
    assert_string_equal(s0->path, "event"); /* the plan's copy: see test_nested_step_path_owned */
    assert_int_equal(must_set(s0, col(e, "availableTicketCount"))->value.u.i, 10);
    assert_int_equal(must_set(s0, col(e, "soldTicketCount"))->value.u.i, 0); /* nested defaults too */
    assert_int_equal(s1->op, TALLY_OP_CREATE);
    assert_ptr_equal(s1->model, t);
    assert_string_equal(s1->path, "");
    assert_ref(&must_set(s1, col(t, "event"))->value, 0);
    done(&o);

    /* Errors inside the nested record carry its path. */
    o = create(shop, "ticket", "{'event': {'create': {'soldTicketCount': 'x'}}}");
    expect_fail(&o, TALLY_VALIDATION, "event.soldTicketCount", NULL);
    done(&o);
    o = create(shop, "ticket", "{'event': {'create': {'bogus': 1}}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "event.bogus", "event has no field 'bogus'");
    done(&o);
    o = create(shop, "ticket", "{'event': {'create': 5}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "event", "JSON object");
    done(&o);
    o = create(shop, "ticket", "{'event': {'create': {'id': 5}}}");
    expect_fail(&o, TALLY_BAD_REQUEST, "event.id", NULL);
    done(&o);

    /* A top-level path prefixes every path (as a transaction step would). */
    tally_plan *plan = tally_plan_new(shop);
    tally_error err;
    json_t *body = J("{'event': {'create': {'soldTicketCount': 'x'}}}");
    assert_int_equal(tally_decode_create(plan, t, body, "steps[3].data", &err), -TALLY_VALIDATION);
    assert_string_equal(err.path, "steps[3].data.event.soldTicketCount");
    json_decref(body);
    tally_plan_free(plan);

    /* An image that creates its post, which creates its own images. */
    o = create(shop, "image", "{'url': 'u0', 'post': {'create': {'title': 't', 'images': [{'create': {'url': 'u1'}}]}}}");
    const tally_model *img = M(shop, "image"), *post = M(shop, "post");
    expect_ok(&o, 2);
    assert_int_equal(o.plan->nsteps, 3);
    assert_ptr_equal(o.plan->steps[0].model, post);
    assert_ptr_equal(o.plan->steps[1].model, img);
    assert_string_equal(o.plan->steps[1].path, "post.images[0]");
    assert_ref(&must_set(&o.plan->steps[1], col(img, "post"))->value, 0);
    assert_text(&must_set(&o.plan->steps[1], col(img, "url"))->value, "u1");
    assert_ptr_equal(o.plan->steps[2].model, img);
    assert_ref(&must_set(&o.plan->steps[2], col(img, "post"))->value, 0);
    assert_text(&must_set(&o.plan->steps[2], col(img, "url"))->value, "u0");
    done(&o);
}

static void test_create_has_many(void **state)
{
    (void)state;
    const tally_model *post = M(shop, "post"), *img = M(shop, "image");
    outcome o = create(shop, "post",
                       "{'images': [{'create': {'url': 'a'}}, {'create': {'url': 'b'}}, {'_link': 7}, 8],"
                       " 'title': 'T'}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->nsteps, 5);
    const tally_step *p = &o.plan->steps[0];
    assert_int_equal(p->op, TALLY_OP_CREATE);
    assert_ptr_equal(p->model, post);
    assert_int_equal(p->nsets, 1); /* title only: images has no column */
    assert_text(&must_set(p, col(post, "title"))->value, "T");
    for (int i = 1; i <= 2; i++) {
        const tally_step *c = &o.plan->steps[i];
        assert_int_equal(c->op, TALLY_OP_CREATE);
        assert_ptr_equal(c->model, img);
        assert_ref(&must_set(c, col(img, "post"))->value, 0);
        assert_text(&must_set(c, col(img, "url"))->value, i == 1 ? "a" : "b");
        assert_string_equal(c->path, i == 1 ? "images[0]" : "images[1]");
    }
    /* Links to existing images become updates that point them at the new post. */
    for (int i = 3; i <= 4; i++) {
        const tally_step *u = &o.plan->steps[i];
        assert_int_equal(u->op, TALLY_OP_UPDATE);
        assert_ptr_equal(u->model, img);
        assert_int_equal(u->id.kind, TALLY_VALUE_INT);
        assert_int_equal(u->id.u.i, i == 3 ? 7 : 8);
        assert_int_equal(u->nsets, 1);
        assert_int_equal(u->natomics, 0);
        assert_int_equal(u->sets[0].column, col(img, "post"));
        assert_ref(&u->sets[0].value, 0);
        assert_string_equal(u->path, i == 3 ? "images[2]" : "images[3]");
    }
    done(&o);

    o = create(shop, "post", "{'title': 'T', 'images': []}");
    expect_ok(&o, 0);
    assert_int_equal(o.plan->nsteps, 1);
    done(&o);
}

static void test_create_has_many_errors(void **state)
{
    (void)state;
    outcome o = create(shop, "post",
                       "{'title': 'T', 'images': [{'create': {'url': 'a'}}, {'create': {'url': 'b'}}, {'create': {}}]}");
    expect_fail(&o, TALLY_VALIDATION, "images[2].url", "url is required");
    done(&o);
    o = create(shop, "post",
               "{'title': 'T', 'images': [{'create': {'url': 'a'}}, {'create': {'url': 'b'}}, {'create': {'url': 5}}]}");
    expect_fail(&o, TALLY_VALIDATION, "images[2].url", NULL);
    done(&o);
    o = create(shop, "post", "{'title': 'T', 'images': [{'create': {'url': 'a'}}, {'create': {'nope': 1}}]}");
    expect_fail(&o, TALLY_BAD_REQUEST, "images[1].nope", NULL);
    done(&o);
    /* The child's link to its parent is the parent's to set. */
    o = create(shop, "post", "{'title': 'T', 'images': [{'create': {'url': 'a', 'post': {'_link': 3}}}]}");
    expect_fail(&o, TALLY_BAD_REQUEST, "images[0].post", "parent");
    done(&o);
    o = create(shop, "post", "{'title': 'T', 'images': [{'create': {'url': 'a'}}, 'x']}");
    expect_fail(&o, TALLY_VALIDATION, "images[1]", NULL);
    done(&o);
    o = create(shop, "post", "{'title': 'T', 'images': [{'_link': 0}]}");
    expect_fail(&o, TALLY_VALIDATION, "images[0]", NULL);
    done(&o);
    o = create(shop, "post", "{'title': 'T', 'images': {'create': {'url': 'a'}}}");
    expect_fail(&o, TALLY_VALIDATION, "images", "list");
    done(&o);
    /* A parent error is found before any child is looked at. */
    o = create(shop, "post", "{'images': [{'create': {}}]}");
    expect_fail(&o, TALLY_VALIDATION, "title", NULL);
    done(&o);
}

static void test_nested_step_path_owned(void **state)
{
    (void)state;
    /* Formerly a BUG: decode.c's sub() returned the JSON key itself at the top
     * level, so a top-level nested create's step->path pointed into the
     * request's JSON, which routes.c frees right after decoding (the store
     * reads step->path to build error paths: a use-after-free).  The path is
     * the plan's own copy, still "event" after the JSON is gone. */
    tally_plan *plan = tally_plan_new(shop);
    tally_error err;
    json_t *body = J("{'event': {'create': {'availableTicketCount': 10}}}");
    assert_int_equal(tally_decode_create(plan, M(shop, "ticket"), body, "", &err), 1);
    json_decref(body);
    assert_string_equal(plan->steps[0].path, "event");
    tally_plan_free(plan);

    plan = tally_plan_new(shop);
    body = J("{'event': {'create': {}}}");
    assert_int_equal(tally_decode_patch(plan, M(shop, "ticket"), tally_value_int(4), body, &err), 1);
    json_decref(body);
    assert_string_equal(plan->steps[0].path, "event");
    tally_plan_free(plan);

    /* An image whose nested post creates its own images: every path survives. */
    plan = tally_plan_new(shop);
    body = J("{'url': 'u0', 'post': {'create': {'title': 't', 'images': [{'create': {'url': 'u1'}}]}}}");
    assert_int_equal(tally_decode_create(plan, M(shop, "image"), body, "", &err), 2);
    json_decref(body);
    assert_string_equal(plan->steps[0].path, "post");
    assert_string_equal(plan->steps[1].path, "post.images[0]");
    assert_string_equal(plan->steps[2].path, "");
    tally_plan_free(plan);

    /* The caller's prefix is copied too. */
    plan = tally_plan_new(shop);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "steps[2].data");
    body = J("{'event': {'create': {}}}");
    assert_int_equal(tally_decode_create(plan, M(shop, "ticket"), body, prefix, &err), 1);
    json_decref(body);
    memset(prefix, 'x', sizeof prefix - 1);
    assert_string_equal(plan->steps[0].path, "steps[2].data.event");
    assert_string_equal(plan->steps[1].path, "steps[2].data");
    tally_plan_free(plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_create_every_type),
        cmocka_unit_test(test_create_value_outlives_json),
        cmocka_unit_test(test_create_required),
        cmocka_unit_test(test_create_unknown_and_reserved),
        cmocka_unit_test(test_create_wrong_types),
        cmocka_unit_test(test_create_nul_in_string),
        cmocka_unit_test(test_create_max_length_code_points),
        cmocka_unit_test(test_create_links),
        cmocka_unit_test(test_create_nested_belongs_to),
        cmocka_unit_test(test_create_has_many),
        cmocka_unit_test(test_create_has_many_errors),
        cmocka_unit_test(test_nested_step_path_owned),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
