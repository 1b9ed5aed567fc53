/* Unit tests for api/decode: request JSON to plan steps against the shop
 * schema (plus a small schema with every scalar type).  Creates: defaults
 * filled, required fields missing or null (VALIDATION with the field's path),
 * unknown and server-owned fields (BAD_REQUEST), wrong types, maxLength
 * counted in code points, NUL in strings, links, nested belongsTo creates (a
 * step first, then the record with a REF to it), hasMany children (the parent
 * first, then each child with a REF to it, error paths like images[2].url).
 * Updates: plain sets, _atomics (single, lists in order, {} for 1,
 * decrement, float amounts, non-numeric fields, set-and-atomic, id, malformed
 * shapes), nested creates.  Then tally_decode_id and the paging cursors
 * (round trips and garbage refused).  Every plan is freed, so ASan checks the
 * arena too.  A known bug is a skipped test with a BUG comment. */
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
#include "core/base64url.h"
#include "core/schema.h"
#include "shop_json.h"
#include "test_util.h"

static const char KINDS_JSON[] =
    "{\"models\": {\"thing\": {\"fields\": {"
    " \"on\": {\"type\": \"boolean\", \"default\": false},"
    " \"temp\": {\"type\": \"float\", \"min\": -1.5, \"max\": 1.5},"
    " \"when\": {\"type\": \"datetime\"},"
    " \"meta\": {\"type\": \"json\"},"
    " \"label\": {\"type\": \"string\", \"default\": \"none\"},"
    " \"count\": {\"type\": \"integer\"}}}}}";

static tally_schema *shop, *kinds;

static int setup(void **state)
{
    (void)state;
    if (parse_schema(SHOP_JSON, &shop) != 0 || parse_schema(KINDS_JSON, &kinds) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tally_schema_free(shop);
    tally_schema_free(kinds);
    return 0;
}

/* Runs create or update on a fresh plan; returns the decoder's result. */
typedef struct outcome {
    tally_plan *plan;
    int rc;
    tally_error err;
} outcome;

static outcome create(const tally_schema *s, const char *model, const char *body)
{
    outcome o;
    o.plan = tally_plan_new(s);
    tally_error_clear(&o.err);
    json_t *j = J(body);
    o.rc = tally_decode_create(o.plan, M(s, model), j, "", &o.err);
    json_decref(j);
    return o;
}

static outcome update(const tally_schema *s, const char *model, int64_t id, const char *body)
{
    outcome o;
    o.plan = tally_plan_new(s);
    tally_error_clear(&o.err);
    json_t *j = J(body);
    o.rc = tally_decode_patch(o.plan, M(s, model), tally_value_int(id), j, &o.err);
    json_decref(j);
    return o;
}

static void expect_ok(outcome *o, int want_rc)
{
    if (o->rc != want_rc)
        fail_msg("decode returned %d (want %d): %s %s (path '%s')", o->rc, want_rc, tally_code_name(o->err.code),
                 o->err.message, o->err.path);
}

/* The decoder failed with code and path; the message names what is in needle. */
static void expect_fail(outcome *o, tally_code code, const char *path, const char *needle)
{
    if (o->rc >= 0)
        fail_msg("decode succeeded (%d), expected %s at '%s'", o->rc, tally_code_name(code), path);
    if (o->rc != -(int)code || o->err.code != code)
        fail_msg("got %s (rc %d) at '%s': %s; expected %s", tally_code_name(o->err.code), o->rc, o->err.path,
                 o->err.message, tally_code_name(code));
    if (strcmp(o->err.path, path) != 0)
        fail_msg("path '%s', expected '%s' (%s)", o->err.path, path, o->err.message);
    if (needle && !strstr(o->err.message, needle))
        fail_msg("message lacks '%s': %s", needle, o->err.message);
    assert_true(o->err.message[0] != '\0');
}

static void done(outcome *o) { tally_plan_free(o->plan); }

static const tally_assign *find_set(const tally_step *s, int column)
{
    const tally_assign *found = NULL;
    for (int i = 0; i < s->nsets; i++)
        if (s->sets[i].column == column) {
            if (found)
                fail_msg("column %d set twice", column);
            found = &s->sets[i];
        }
    return found;
}

static const tally_assign *must_set(const tally_step *s, int column)
{
    const tally_assign *a = find_set(s, column);
    if (!a)
        fail_msg("column %d (%s) not set", column, tally_model_column_name(s->model, column));
    return a;
}

static void assert_text(const tally_value *v, const char *want)
{
    assert_int_equal(v->kind, TALLY_VALUE_TEXT);
    assert_int_equal(v->u.text.len, strlen(want));
    assert_memory_equal(v->u.text.ptr, want, strlen(want));
    assert_int_equal(v->u.text.ptr[v->u.text.len], '\0'); /* copied with a NUL */
}

static void assert_ref(const tally_value *v, int step)
{
    assert_int_equal(v->kind, TALLY_VALUE_REF);
    assert_int_equal(v->u.ref.step, step);
    assert_int_equal(v->u.ref.column, TALLY_COL_ID);
}

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
    /* ... never for an integer field (400 or 422 both fit DESIGN.md; the path names the field). */
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

/* ---- ids and cursors ---------------------------------------------------------- */

static void id_ok(const char *s, int64_t want)
{
    /* An exact-size heap copy, so ASan sees any read past len. */
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    int64_t got = -77;
    if (tally_decode_id(copy, n, &got) != 0)
        fail_msg("id \"%s\" refused", s);
    free(copy);
    assert_int_equal(got, want);
}

static void id_bad(const char *s, size_t n)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    int64_t got = -77;
    if (tally_decode_id(copy, n, &got) == 0)
        fail_msg("id \"%.*s\" accepted as %lld", (int)n, s, (long long)got);
    free(copy);
    assert_int_equal(got, -77); /* untouched */
}

static void test_decode_id(void **state)
{
    (void)state;
    id_ok("1", 1);
    id_ok("42", 42);
    id_ok("9223372036854775807", INT64_MAX);
    id_ok("9223372036854775806", INT64_MAX - 1);
    id_ok("1000000000000000000", 1000000000000000000LL);
    static const char *const bad[] = {"0", "-1", "abc", "1x", "x1", "", "9223372036854775808", "9999999999999999999",
                                      "18446744073709551616", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "00000000000000000000",
                                      "92233720368547758070"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        id_bad(bad[i], strlen(bad[i]));
    id_bad("12\0", 3); /* an embedded NUL is not a digit */
    /* Only len bytes count. */
    int64_t got = 0;
    assert_int_equal(tally_decode_id("123abc", 3, &got), 0);
    assert_int_equal(got, 123);
}

/* A listing step of model m with sort spec sq ('-quoted JSON, or NULL for none). */
static tally_step *list_step(tally_plan *plan, const tally_model *m, const char *sq)
{
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_LIST, m);
    json_t *sort = sq ? J(sq) : NULL;
    tally_error err;
    if (tally_decode_sort(plan, s, sort, &err))
        fail_msg("sort %s refused: %s", sq, err.message);
    json_decref(sort);
    return s;
}

/* A record of m with every column unset. */
static tally_record blank_record(tally_arena *arena, const tally_model *m)
{
    tally_record r;
    r.cols = tally_arena_alloc(arena, (size_t)m->ncolumns * sizeof *r.cols);
    for (int c = 0; c < m->ncolumns; c++)
        r.cols[c] = tally_value_null();
    return r;
}

static void assert_url_safe(const char *c)
{
    assert_true(strlen(c) > 0);
    /* URL-safe as it is: base64url has no '+', '/', '=' or '%'. */
    for (const char *p = c; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            fail_msg("cursor has '%c': %s", *p, c);
}

static void assert_same_value(const tally_value *got, const tally_value *want)
{
    assert_int_equal(got->kind, want->kind);
    switch (want->kind) {
    case TALLY_VALUE_INT: assert_int_equal(got->u.i, want->u.i); break;
    case TALLY_VALUE_FLOAT: assert_memory_equal(&got->u.f, &want->u.f, sizeof want->u.f); break; /* bit for bit */
    case TALLY_VALUE_TEXT:
        assert_int_equal(got->u.text.len, want->u.text.len);
        assert_memory_equal(got->u.text.ptr, want->u.text.ptr, want->u.text.len);
        break;
    default: break;
    }
}

static void test_cursor_round_trip(void **state)
{
    (void)state;
    const tally_model *c = M(shop, "customer");
    tally_arena arena;
    tally_arena_init(&arena);
    const int64_t ids[] = {1, 2, 50, 1000, 123456789, 4294967296LL, INT64_MAX - 1, INT64_MAX};
    const char *prev = NULL;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        /* The default sort: id ascending, one key. */
        tally_plan *plan = tally_plan_new(shop);
        tally_step *s = list_step(plan, c, NULL);
        assert_int_equal(s->nsort, 1);
        assert_int_equal(s->sort[0].column, TALLY_COL_ID);
        assert_false(s->sort[0].descending);
        tally_record last = blank_record(&arena, c);
        last.cols[TALLY_COL_ID] = tally_value_int(ids[i]);
        const char *cur = tally_cursor_encode(&arena, s, &last);
        assert_non_null(cur);
        assert_url_safe(cur);
        assert_true(strlen(cur) <= 80);
        assert_null(s->after);
        tally_error err;
        assert_int_equal(tally_cursor_decode(plan, s, cur, strlen(cur), &err), 0);
        assert_non_null(s->after);
        assert_int_equal(s->after[0].kind, TALLY_VALUE_INT);
        assert_int_equal(s->after[0].u.i, ids[i]);
        if (prev)
            assert_string_not_equal(prev, cur);
        prev = cur;
        tally_plan_free(plan);
    }

    /* Several keys, every kind of value; id is always the last key. */
    const tally_model *t = M(kinds, "thing");
    static const char *const texts[] = {"", "plain", "with \"quotes\" and \\ and /", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
                                        "line\nbreak"};
    static const double floats[] = {0.1, -1.25, 1e300, -0.0, 5e-324, 1.0};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        for (size_t f = 0; f < sizeof floats / sizeof floats[0]; f++) {
            tally_plan *plan = tally_plan_new(kinds);
            tally_step *s = list_step(plan, t, "[{'label': 'descending'}, {'temp': 'ascending'}, {'count': 'descending'},"
                                                " {'when': 'ascending'}]");
            assert_int_equal(s->nsort, 5);
            assert_int_equal(s->sort[4].column, TALLY_COL_ID);
            tally_record last = blank_record(&arena, t);
            last.cols[TALLY_COL_ID] = tally_value_int(77);
            last.cols[col(t, "label")] = tally_value_text(texts[k], strlen(texts[k]));
            last.cols[col(t, "temp")] = tally_value_float(floats[f]);
            last.cols[col(t, "count")] = f % 2 ? tally_value_null() : tally_value_int(INT64_MIN + (int64_t)f);
            last.cols[col(t, "when")] = tally_value_int(1706702400000LL);
            const char *cur = tally_cursor_encode(&arena, s, &last);
            assert_url_safe(cur);
            tally_error err;
            if (tally_cursor_decode(plan, s, cur, strlen(cur), &err))
                fail_msg("own cursor refused: %s", err.message);
            for (int i = 0; i < s->nsort; i++)
                assert_same_value(&s->after[i], &last.cols[s->sort[i].column]);
            /* Text values are the plan's copies. */
            assert_ptr_not_equal(s->after[0].u.text.ptr, texts[k]);
            tally_plan_free(plan);
        }
    }

    /* A cursor belongs to its sort: another direction, key, order or number of keys is a 400 at "after". */
    static const char *const other[] = {
        "{'label': 'ascending'}", "[{'label': 'descending'}, {'temp': 'descending'}]", "{'temp': 'ascending'}",
        "[{'temp': 'ascending'}, {'label': 'descending'}]", NULL, "{'id': 'descending'}",
        "[{'label': 'descending'}, {'temp': 'ascending'}, {'count': 'descending'}]",
    };
    tally_plan *plan = tally_plan_new(kinds);
    tally_step *s = list_step(plan, t, "[{'label': 'descending'}, {'temp': 'ascending'}]");
    tally_record last = blank_record(&arena, t);
    last.cols[TALLY_COL_ID] = tally_value_int(3);
    last.cols[col(t, "label")] = tally_value_text("x", 1);
    const char *cur = tally_cursor_encode(&arena, s, &last);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        tally_step *o2 = list_step(plan, t, other[i]);
        tally_error err;
        assert_int_equal(tally_cursor_decode(plan, o2, cur, strlen(cur), &err), -TALLY_BAD_REQUEST);
        assert_string_equal(err.path, "after");
        assert_non_null(strstr(err.message, "same sort"));
    }
    /* ... and is fine with the same sort on another step (the next page). */
    tally_step *again = list_step(plan, t, "[{'label': 'descending'}, {'temp': 'ascending'}, {'id': 'ascending'}]");
    tally_error err;
    assert_int_equal(tally_cursor_decode(plan, again, cur, strlen(cur), &err), 0);
    assert_int_equal(again->after[2].u.i, 3);
    assert_int_equal(again->after[1].kind, TALLY_VALUE_NULL);
    tally_plan_free(plan);
    tally_arena_free(&arena);
}

/* A cursor for the default sort (id ascending) of customer; refused with a 400 at "after". */
static void cursor_bad_n(const char *s, size_t n)
{
    tally_plan *plan = tally_plan_new(shop);
    tally_step *step = list_step(plan, M(shop, "customer"), NULL);
    tally_error err;
    tally_error_clear(&err);
    int rc = tally_cursor_decode(plan, step, s, n, &err);
    if (rc == 0)
        fail_msg("cursor \"%.*s\" accepted", (int)n, s);
    assert_int_equal(rc, -TALLY_BAD_REQUEST);
    assert_int_equal(err.code, TALLY_BAD_REQUEST);
    assert_string_equal(err.path, "after");
    assert_non_null(strstr(err.message, "cursor"));
    tally_plan_free(plan);
}

static void cursor_bad(const char *s) { cursor_bad_n(s, strlen(s)); }

/* The base64url of raw text ('-quoted): a cursor in the right encoding with the wrong content. */
static void cursor_of_bad(const char *sq)
{
    char raw[256], enc[512];
    snprintf(raw, sizeof raw, "%s", sq);
    for (char *p = raw; *p; p++)
        if (*p == '\'')
            *p = '"';
    tally_base64url_encode(raw, strlen(raw), enc);
    cursor_bad(enc);
}

static void test_cursor_garbage(void **state)
{
    (void)state;
    /* The good cursor the mangled ones below start from. */
    tally_plan *good = tally_plan_new(shop);
    tally_step *gs = list_step(good, M(shop, "customer"), NULL);
    tally_error gerr;
    assert_int_equal(tally_cursor_decode(good, gs, "eyJrIjpbImlkKyJdLCJ2IjpbMV19", 28, &gerr), 0);
    assert_int_equal(gs->after[0].u.i, 1);
    tally_plan_free(good);
    cursor_bad("");
    cursor_bad("x");
    cursor_bad("!!!!");
    cursor_bad("abc");
    cursor_bad("42");
    cursor_bad("eyJrIjpbImlkKyJdLCJ2IjpbMV19=");  /* a good cursor with padding */
    cursor_bad("eyJrIjpbImlkKyJdLCJ2IjpbMV1+");   /* '+' is plain base64 */
    cursor_bad("eyJrIjpbImlkKyJdLCJ2IjpbMV19\n");
    cursor_bad("eyJrIjpbImlkKyJdLCJ2IjpbMV19eyJrIjpbImlkKyJdLCJ2IjpbMV19"); /* two cursors */
    cursor_bad_n("eyJrIjpbImlkKyJdLCJ2IjpbMV19", 27);                      /* cut short */
    cursor_of_bad("id:1");          /* the old format */
    cursor_of_bad("");
    cursor_of_bad("null");
    cursor_of_bad("[]");
    cursor_of_bad("{}");
    cursor_of_bad("{'k': ['id+']}");
    cursor_of_bad("{'v': [1]}");
    cursor_of_bad("{'k': 'id+', 'v': 1}");
    cursor_of_bad("{'k': ['id+'], 'v': []}");
    cursor_of_bad("{'k': [], 'v': []}");
    cursor_of_bad("{'k': ['id+', 'id+'], 'v': [1, 1]}");
    cursor_of_bad("{'k': ['id-'], 'v': [1]}");
    cursor_of_bad("{'k': ['ID+'], 'v': [1]}");
    cursor_of_bad("{'k': ['id'], 'v': [1]}");
    cursor_of_bad("{'k': ['id++'], 'v': [1]}");
    cursor_of_bad("{'k': ['name+'], 'v': [1]}");
    cursor_of_bad("{'k': [1], 'v': [1]}");
    cursor_of_bad("{'k': ['id+'], 'v': ['1']}");
    cursor_of_bad("{'k': ['id+'], 'v': [1.5]}");
    cursor_of_bad("{'k': ['id+'], 'v': [null]}");
    cursor_of_bad("{'k': ['id+'], 'v': [true]}");
    cursor_of_bad("{'k': ['id+'], 'v': [9223372036854775808]}");
    cursor_of_bad("{'k': ['id+'], 'v': [1]");
    /* A non-id key takes no object, list or boolean. */
    tally_plan *plan = tally_plan_new(shop);
    tally_step *s = list_step(plan, M(shop, "customer"), "{'name': 'ascending'}");
    static const char *const values[] = {"{}", "[]", "true", "false"};
    for (size_t i = 0; i < 4; i++) {
        char raw[128], enc[256];
        snprintf(raw, sizeof raw, "{\"k\":[\"name+\",\"id+\"],\"v\":[%s,1]}", values[i]);
        tally_base64url_encode(raw, strlen(raw), enc);
        tally_error err;
        assert_int_equal(tally_cursor_decode(plan, s, enc, strlen(enc), &err), -TALLY_BAD_REQUEST);
        assert_string_equal(err.path, "after");
    }
    tally_plan_free(plan);
    /* Far longer than any cursor: refused before decoding. */
    size_t n = 70000;
    char *huge = malloc(n);
    memset(huge, 'A', n);
    cursor_bad_n(huge, n);
    free(huge);

    /* A valid one, to be sure the helpers are right. */
    char enc[64];
    tally_base64url_encode("{\"k\":[\"id+\"],\"v\":[17]}", 22, enc);
    assert_string_equal(enc, "eyJrIjpbImlkKyJdLCJ2IjpbMTddfQ");
    plan = tally_plan_new(shop);
    s = list_step(plan, M(shop, "customer"), NULL);
    tally_error err;
    assert_int_equal(tally_cursor_decode(plan, s, enc, strlen(enc), &err), 0);
    assert_int_equal(s->after[0].kind, TALLY_VALUE_INT);
    assert_int_equal(s->after[0].u.i, 17);
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
        cmocka_unit_test(test_update_sets),
        cmocka_unit_test(test_update_nested_create),
        cmocka_unit_test(test_atomics_single),
        cmocka_unit_test(test_atomics_default_one),
        cmocka_unit_test(test_atomics_list_in_order),
        cmocka_unit_test(test_atomics_float),
        cmocka_unit_test(test_atomics_wrong_field),
        cmocka_unit_test(test_atomics_set_and_changed),
        cmocka_unit_test(test_atomics_malformed),
        cmocka_unit_test(test_nested_step_path_owned),
        cmocka_unit_test(test_decode_id),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_garbage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
