/* Unit tests for api/decode's ids and paging cursors against the shop schema
 * and a small schema with every scalar type: tally_decode_id (only the bytes
 * given, overflow and junk refused, the output untouched on refusal), and
 * tally_cursor_encode / tally_cursor_decode (URL-safe round trips for every
 * kind of sort key and value, a cursor refused under another sort, garbage
 * and over-long cursors refused as BAD_REQUEST at "after").  The shared
 * helpers are in decode_util.h. */
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
#include "decode_util.h"

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
        cmocka_unit_test(test_decode_id),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_garbage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
