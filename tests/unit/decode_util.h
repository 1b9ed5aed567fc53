/* decode_util.h — what the api/decode suites (test_decode, test_decode_update,
 * test_decode_cursor) share: the shop schema and a small schema with every
 * scalar type, parsed by the group setup; create and update on a fresh plan
 * with the decoder's outcome checked; a step's sets looked up by column.
 * Include it after <cmocka.h>; all functions are static inline. */
#ifndef TALLY_TEST_DECODE_UTIL_H
#define TALLY_TEST_DECODE_UTIL_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/decode.h"
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

static inline int setup(void **state)
{
    (void)state;
    if (parse_schema(SHOP_JSON, &shop) != 0 || parse_schema(KINDS_JSON, &kinds) != 0)
        return -1;
    return 0;
}

static inline int teardown(void **state)
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

static inline outcome create(const tally_schema *s, const char *model, const char *body)
{
    outcome o;
    o.plan = tally_plan_new(s);
    tally_error_clear(&o.err);
    json_t *j = J(body);
    o.rc = tally_decode_create(o.plan, M(s, model), j, "", &o.err);
    json_decref(j);
    return o;
}

static inline outcome update(const tally_schema *s, const char *model, int64_t id, const char *body)
{
    outcome o;
    o.plan = tally_plan_new(s);
    tally_error_clear(&o.err);
    json_t *j = J(body);
    o.rc = tally_decode_patch(o.plan, M(s, model), tally_value_int(id), j, &o.err);
    json_decref(j);
    return o;
}

static inline void expect_ok(outcome *o, int want_rc)
{
    if (o->rc != want_rc)
        fail_msg("decode returned %d (want %d): %s %s (path '%s')", o->rc, want_rc, tally_code_name(o->err.code),
                 o->err.message, o->err.path);
}

/* The decoder failed with code and path; the message names what is in needle. */
static inline void expect_fail(outcome *o, tally_code code, const char *path, const char *needle)
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

static inline void done(outcome *o) { tally_plan_free(o->plan); }

static inline const tally_assign *find_set(const tally_step *s, int column)
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

static inline const tally_assign *must_set(const tally_step *s, int column)
{
    const tally_assign *a = find_set(s, column);
    if (!a)
        fail_msg("column %d (%s) not set", column, tally_model_column_name(s->model, column));
    return a;
}

static inline void assert_text(const tally_value *v, const char *want)
{
    assert_int_equal(v->kind, TALLY_VALUE_TEXT);
    assert_int_equal(v->u.text.len, strlen(want));
    assert_memory_equal(v->u.text.ptr, want, strlen(want));
    assert_int_equal(v->u.text.ptr[v->u.text.len], '\0'); /* copied with a NUL */
}

static inline void assert_ref(const tally_value *v, int step)
{
    assert_int_equal(v->kind, TALLY_VALUE_REF);
    assert_int_equal(v->u.ref.step, step);
    assert_int_equal(v->u.ref.column, TALLY_COL_ID);
}

#endif
